//! Ledger benchmark (issue: foundation and tamper-evident ledger).
//!
//! Measures, in one run and on the same bytes:
//! - raw single-core SHA-256 over every entry (the yardstick),
//! - append + seal throughput with durable group commit (1,000-event batches,
//!   one fdatasync each, 16,384-event segments), with and without the time
//!   spent waiting in fsync,
//! - `verify` throughput over the resulting data directory,
//! - inclusion proof generation latency on a log of PROOF_EVENTS events,
//! - resident memory while the log grows,
//! - encryption at rest (segment format 3, AES-256-GCM per entry): append +
//!   seal with and without a KEK, alternately in ATREST_ROUNDS rounds of
//!   EVENTS events each, medians and the ratio, bytes/event, verify,
//! - compaction (segment format 2): bytes/event on disk before and after,
//!   compaction throughput on one core, and the cost of decoding one entry,
//!   on COMPACT_EVENTS generated events shaped like the search bench's
//!   (users with roles and addresses, patients, resources, messages); the
//!   same entries encrypted (format 3, which is not compacted) for size.
//!
//! Run: `cargo bench --bench ledger` (env: SEALTRAIL_BENCH_EVENTS, default 2M;
//! SEALTRAIL_BENCH_PROOF_EVENTS, default 10M; SEALTRAIL_BENCH_COMPACT_EVENTS,
//! default 500k; SEALTRAIL_BENCH_ATREST_ROUNDS, default 3, 0 skips it;
//! SEALTRAIL_BENCH_DIR, default ./target/bench-data).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)] // test code

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sealtrail::event::{Entry, Event, Timestamp, Via};
use sealtrail::ledger::atrest::{self, Kek};
use sealtrail::ledger::compactor::{Compaction, CompactorOptions};
use sealtrail::ledger::keys::NoteSigner;
use sealtrail::ledger::log::LedgerPaths;
use sealtrail::ledger::log::{Ledger, LedgerEntry, SealPolicy};
use sealtrail::ledger::proof::LedgerReader;
use sealtrail::ledger::segment::{FrameFormat, FrameReader, SEAL_MARKER};
use sealtrail::ledger::verify::verify_data_dir;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::{Duration, Instant};

const BATCH: usize = 1000;
const POOL: usize = 4096;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A pool of distinct ~300-byte canonical entries, cycled during appends so
/// that generating events is not part of what is measured.
fn entry_pool() -> Vec<LedgerEntry> {
    (0..POOL as u64)
        .map(|i| {
            let json = format!(
                concat!(
                    r#"{{"id":"evt-{:08}","time":"2026-11-{:02}T{:02}:{:02}:11.{:03}Z","category":"access","action":"view","outcome":"success","#,
                    r#""actor":{{"user":"u{:04}","role":"clinician","ip":"10.20.1.{}"}},"#,
                    r#""patient":{{"id":"MRN-{:07}"}},"source":{{"system":"ehr"}}}}"#
                ),
                i, 1 + i % 28, i % 24, i % 60, i % 1000, i % 97, i % 250, i % 5003
            );
            let entry = Entry {
                received: Timestamp::now(),
                via: Via { kind: "http".into(), peer: Some("10.20.0.5".into()), principal: None },
                event: Event::from_json(json.as_bytes()).expect("valid bench event"),
                enriched: None,
            };
            LedgerEntry { time_ms: entry.event.time.unix_ms(), bytes: entry.canonical_bytes() }
        })
        .collect()
}

fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn dir_bytes(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

struct AppendResult {
    wall: Duration,
    fsync: Duration,
    fsyncs: u64,
    seals: u64,
    seal_time: Duration,
    max_seal: Duration,
    bytes: u64,
}

/// Appends `n` events in batches (one durable group commit each).
fn append(
    data: &Path,
    signer: NoteSigner,
    pool: &[LedgerEntry],
    n: u64,
    mut on_million: impl FnMut(u64),
) -> AppendResult {
    let (mut ledger, _) = Ledger::open(data, signer, SealPolicy::default()).expect("open ledger");
    let mut batch: Vec<LedgerEntry> = Vec::with_capacity(BATCH);
    let mut written = 0u64;
    let mut bytes = 0u64;
    let mut wall = Duration::ZERO;
    while written < n {
        batch.clear();
        let take = (n - written).min(BATCH as u64);
        for i in 0..take {
            let e = &pool[((written + i) % POOL as u64) as usize];
            bytes += e.bytes.len() as u64;
            batch.push(e.clone());
        }
        let start = Instant::now();
        ledger.append(&batch).expect("append");
        wall += start.elapsed();
        let before = written;
        written += take;
        if written / 1_000_000 != before / 1_000_000 {
            on_million(written);
        }
    }
    let start = Instant::now();
    ledger.seal().expect("final seal");
    wall += start.elapsed();
    let stats = ledger.stats();
    AppendResult {
        wall,
        fsync: stats.fsync_time,
        fsyncs: stats.fsyncs,
        seals: stats.seals,
        seal_time: stats.seal_time,
        max_seal: stats.max_seal_time,
        bytes,
    }
}

/// Append + seal (durable) into fresh data directories with and without a
/// KEK, alternating which goes first, `rounds` times; medians and ratios.
fn at_rest(
    root: &Path,
    signer: &dyn Fn() -> NoteSigner,
    pool: &[LedgerEntry],
    events: u64,
    rounds: u64,
) {
    // [plain, encrypted]: durable events/s, events/s excluding fsync waits.
    let mut durable = [Vec::new(), Vec::new()];
    let mut cpu = [Vec::new(), Vec::new()];
    let mut bytes_per_event = [0.0; 2];
    let mut last = [root.join("atrest-plain"), root.join("atrest-encrypted")];
    for round in 0..rounds {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for k in order {
            let data = root.join(format!("atrest-{k}-{round}"));
            let _ = std::fs::remove_dir_all(&data);
            std::fs::create_dir_all(&data).expect("dir");
            if k == 1 {
                atrest::register(&data, Kek::generate()).expect("register KEK");
            }
            let r = append(&data, signer(), pool, events, |_| {});
            durable[k].push(events as f64 / r.wall.as_secs_f64());
            cpu[k].push(events as f64 / r.wall.saturating_sub(r.fsync).as_secs_f64());
            bytes_per_event[k] = dir_bytes(&data.join("ledger/segments")) as f64 / events as f64;
            std::fs::remove_dir_all(&last[k]).ok();
            last[k] = data;
        }
    }
    let runs = |v: &[f64]| {
        v.iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "at rest, append+seal durable runs (events/s, in order): plaintext {}; encrypted {}",
        runs(&durable[0]),
        runs(&durable[1])
    );
    let (d0, d1) = (median(&mut durable[0]), median(&mut durable[1]));
    let (c0, c1) = (median(&mut cpu[0]), median(&mut cpu[1]));
    println!(
        "at rest, append+seal durable ({rounds} rounds of {events} events, alternating, medians): plaintext {d0:.0} events/s, encrypted {d1:.0} events/s ({:.2}x)",
        d1 / d0
    );
    println!(
        "at rest, append+seal excluding fsync waits: plaintext {c0:.0} events/s, encrypted {c1:.0} events/s ({:.2}x)",
        c1 / c0
    );
    println!(
        "at rest, segment files: plaintext {:.0} bytes/event, encrypted {:.0} bytes/event (uncompacted)",
        bytes_per_event[0], bytes_per_event[1]
    );
    // Verify both (page cache warm), alternately, median of 3 each.
    let verifier = signer().verifier();
    let mut verify = [Vec::new(), Vec::new()];
    for _ in 0..3 {
        for k in [0, 1] {
            let start = Instant::now();
            let report = verify_data_dir(&last[k], &verifier, None).expect("verify runs");
            assert!(report.ok && report.events == events, "{:?}", report.errors);
            verify[k].push(events as f64 / start.elapsed().as_secs_f64());
        }
    }
    let (v0, v1) = (median(&mut verify[0]), median(&mut verify[1]));
    println!(
        "at rest, verify (2 threads): plaintext {v0:.0} events/s, encrypted {v1:.0} events/s ({:.2}x)",
        v1 / v0
    );
    for dir in &last {
        std::fs::remove_dir_all(dir).ok();
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    // `cargo bench` passes --bench; under `cargo test --all-targets` it does
    // not, and a small smoke run checks that the benchmark still works.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let events = if smoke {
        20_000
    } else {
        env_u64("SEALTRAIL_BENCH_EVENTS", 2_000_000)
    };
    let proof_events = if smoke {
        40_000
    } else {
        env_u64("SEALTRAIL_BENCH_PROOF_EVENTS", 10_000_000)
    };
    let root = std::env::var("SEALTRAIL_BENCH_DIR").unwrap_or_else(|_| {
        if smoke {
            "target/bench-smoke".into()
        } else {
            "target/bench-data".into()
        }
    });
    let root = Path::new(&root);
    let _ = std::fs::remove_dir_all(root);
    std::fs::create_dir_all(root).expect("bench dir");
    let key = NoteSigner::generate("bench.example/log").expect("key");
    let (pem, verifier) = (key.to_pkcs8_pem().expect("pem"), key.verifier());
    let same_signer = || NoteSigner::from_pkcs8_pem("bench.example/log", &pem).expect("key");

    let pool = entry_pool();
    let avg = pool.iter().map(|e| e.bytes.len()).sum::<usize>() as f64 / POOL as f64;
    println!(
        "machine: {} cores; entries average {avg:.0} bytes",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // 1. Raw SHA-256, single core, one hash per entry over the same bytes (3 rounds, median).
    let mut sha_rates = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        let mut acc = 0u8;
        for i in 0..events {
            let d = Sha256::digest(&pool[(i % POOL as u64) as usize].bytes);
            acc ^= d[0];
        }
        std::hint::black_box(acc);
        sha_rates.push(events as f64 / start.elapsed().as_secs_f64());
    }
    let sha_eps = median(&mut sha_rates);
    let sha_mbs = sha_eps * avg / 1e6;
    println!("raw sha256 (1 core, per entry): {sha_eps:.0} events/s, {sha_mbs:.0} MB/s");

    // 2. Append + seal with durable group commit.
    let data = root.join("append");
    let r = append(&data, same_signer(), &pool, events, |_| {});
    let eps = events as f64 / r.wall.as_secs_f64();
    let cpu = r.wall.saturating_sub(r.fsync);
    let eps_cpu = events as f64 / cpu.as_secs_f64();
    println!(
        "append+seal durable: {eps:.0} events/s, {:.0} MB/s ({} fsyncs, {} seals averaging {:.1} ms (longest {:.1} ms), {:.1} s waiting in fsync of {:.1} s)",
        r.bytes as f64 / r.wall.as_secs_f64() / 1e6,
        r.fsyncs,
        r.seals,
        r.seal_time.as_secs_f64() * 1e3 / r.seals.max(1) as f64,
        r.max_seal.as_secs_f64() * 1e3,
        r.fsync.as_secs_f64(),
        r.wall.as_secs_f64()
    );
    println!(
        "append+seal excluding fsync waits: {eps_cpu:.0} events/s, {:.0} MB/s = {:.2}x raw sha256",
        r.bytes as f64 / cpu.as_secs_f64() / 1e6,
        eps_cpu / sha_eps
    );

    // 3. Verify the whole directory (page cache warm: it was just written).
    let seg_bytes = dir_bytes(&data.join("ledger/segments"));
    let mut verify_rates = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        let report = verify_data_dir(&data, &verifier, None).expect("verify runs");
        assert!(
            report.ok && report.events == events,
            "bench ledger must verify: {:?}",
            report.errors
        );
        verify_rates.push(events as f64 / start.elapsed().as_secs_f64());
    }
    let v_eps = median(&mut verify_rates);
    println!(
        "verify: {v_eps:.0} events/s, {:.0} MB/s of segment files = {:.2}x raw sha256",
        v_eps * seg_bytes as f64 / events as f64 / 1e6,
        v_eps / sha_eps
    );
    std::fs::remove_dir_all(&data).ok();

    // 3b. Encryption at rest: the same appends with and without a KEK.
    let rounds = if smoke {
        1
    } else {
        env_u64("SEALTRAIL_BENCH_ATREST_ROUNDS", 3)
    };
    if rounds > 0 {
        at_rest(root, &same_signer, &pool, events, rounds);
    }

    // 4. Proof generation at PROOF_EVENTS, with memory sampled as the log grows.
    let data = root.join("proofs");
    let mut rss = Vec::new();
    let t = Instant::now();
    let r = append(&data, same_signer(), &pool, proof_events, |n| {
        if n % 2_000_000 == 0 || n == 1_000_000 {
            rss.push((n, rss_kib().0));
        }
    });
    println!(
        "built {proof_events} events in {:.1} s ({:.0} events/s durable)",
        t.elapsed().as_secs_f64(),
        proof_events as f64 / r.wall.as_secs_f64()
    );
    println!(
        "resident memory while appending: {}",
        rss.iter()
            .map(|(n, kib)| format!("{}M events: {} MiB", n / 1_000_000, kib / 1024))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let reader = LedgerReader::open(&data).expect("reader");
    let mut lat = Vec::new();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..2000 {
        // xorshift: deterministic spread of indices over the whole log
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let index = x % proof_events;
        let start = Instant::now();
        let proof = reader.inclusion_proof(index).expect("proof");
        lat.push(start.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(proof);
    }
    let p50 = median(&mut lat);
    let p99 = percentile(&mut lat, 0.99);
    println!(
        "inclusion proof generation at {proof_events} events: p50 {p50:.3} ms, p99 {p99:.3} ms"
    );
    let (_, hwm) = rss_kib();
    println!("peak resident memory of the whole run: {} MiB", hwm / 1024);
    std::fs::remove_dir_all(&data).ok();

    // 5. Compaction.
    let compact_events = if smoke {
        20_000
    } else {
        env_u64("SEALTRAIL_BENCH_COMPACT_EVENTS", 500_000)
    };
    compaction(root, &same_signer, compact_events);
    std::fs::remove_dir_all(root).ok();
}

// ---------------------------------------------------------------------------
// Compaction on realistic entries.

/// (role, head count) as in the search bench's practice.
const ROLES: [(&str, u32); 8] = [
    ("physician", 55),
    ("nurse", 85),
    ("medical_assistant", 50),
    ("front_desk", 40),
    ("billing", 30),
    ("lab_tech", 15),
    ("radiology_tech", 10),
    ("it_admin", 15),
];
const RESOURCES: [(&str, &str); 12] = [
    ("encounter_note", "encounter note"),
    ("lab_result", "lab result"),
    ("medication_list", "medication list"),
    ("imaging_report", "imaging report"),
    ("demographics", "demographics"),
    ("insurance_card", "insurance card"),
    ("allergy_list", "allergy list"),
    ("immunization_record", "immunization record"),
    ("billing_statement", "billing statement"),
    ("referral_letter", "referral letter"),
    ("discharge_summary", "discharge summary"),
    ("problem_list", "problem list"),
];
const SYSTEMS: [(&str, &str); 4] = [
    ("ehr", "10.20.0.5"),
    ("pacs", "10.20.0.6"),
    ("lis", "10.20.0.7"),
    ("sso", "10.20.0.2"),
];

/// `n` canonical entries with the search bench's mix: 12.5% sign-in/out,
/// ~87% patient record access (resource, reason, message, print/export
/// attrs), 0.5% account administration; times over a year, received 5 ms to
/// 1 s later, random ids where real systems have them.
fn realistic_entries(n: u64) -> Vec<LedgerEntry> {
    let mut rng = ChaCha8Rng::seed_from_u64(0x5ea1_7a12);
    let users: Vec<(String, &str, String)> = ROLES
        .iter()
        .enumerate()
        .flat_map(|(r, &(role, count))| {
            (0..count).map(move |k| (role, format!("10.20.{}.{}", 10 + r, 10 + k)))
        })
        .enumerate()
        .map(|(i, (role, ip))| (format!("u{:04}", i + 1), role, ip))
        .collect();
    let start_ms: i64 = 1_764_547_200_000;
    let span_ms: i64 = 365 * 86_400_000;
    (0..n)
        .map(|i| {
            let time_ms = start_ms + (i as i128 * span_ms as i128 / n as i128) as i64;
            let (user, role, ip) = &users[rng.gen_range(0..users.len())];
            let time = Timestamp::from_unix_ms(time_ms).expect("time").to_string();
            let roll: f64 = rng.r#gen();
            let system;
            let body = if roll < 0.125 {
                system = 3;
                let (action, outcome, message) = match rng.gen_range(0..10) {
                    0..=4 => ("login", "success", "User signed in"),
                    5 => ("login", "failure", "Sign-in failed: wrong password"),
                    6..=8 => ("logout", "success", "User signed out"),
                    _ => ("password_change", "success", "User changed password"),
                };
                format!(
                    r#""category":"auth","action":"{action}","outcome":"{outcome}","actor":{{"user":"{user}","role":"{role}","ip":"{ip}"}},"source":{{"system":"sso"}},"message":"{message}""#
                )
            } else if roll < 0.995 {
                let u: f64 = rng.r#gen();
                let patient = format!("MRN-{:07}", (u * u * 50_000.0) as u32 + 1);
                let (kind, words) = RESOURCES[rng.gen_range(0..RESOURCES.len())];
                let a: f64 = rng.r#gen();
                let (verb, action) = match a {
                    a if a < 0.80 => ("Viewed", "view"),
                    a if a < 0.90 => ("Updated", "update"),
                    a if a < 0.93 => ("Created", "create"),
                    a if a < 0.97 => ("Printed", "print"),
                    _ => ("Exported", "export"),
                };
                system = match kind {
                    "imaging_report" => 1,
                    "lab_result" => 2,
                    _ => 0,
                };
                let reason = match *role {
                    "billing" | "front_desk" => "payment",
                    "it_admin" => "operations",
                    _ => "treatment",
                };
                let attrs = match action {
                    "print" => format!(r#","attrs":{{"format":"paper","pages":{}}}"#, rng.gen_range(1..40)),
                    "export" => format!(r#","attrs":{{"format":"pdf","pages":{}}}"#, rng.gen_range(1..40)),
                    _ => String::new(),
                };
                format!(
                    r#""category":"access","action":"{action}","outcome":"success","actor":{{"user":"{user}","role":"{role}","ip":"{ip}"}},"patient":{{"id":"{patient}"}},"resource":{{"type":"{kind}","id":"{}-{:08}"}},"source":{{"system":"{}"}},"reason":"{reason}","message":"{verb} {words}"{attrs}"#,
                    &kind[..3],
                    rng.gen_range(0..1u32 << 26),
                    SYSTEMS[system].0
                )
            } else {
                system = 3;
                let target = &users[rng.gen_range(0..users.len())];
                format!(
                    r#""category":"admin","action":"role_grant","outcome":"success","actor":{{"user":"{user}","role":"{role}","ip":"{ip}"}},"target_user":"{}","source":{{"system":"sso"}},"message":"Granted role {} to account""#,
                    target.0, target.1
                )
            };
            let json = format!(r#"{{"time":"{time}",{body}}}"#);
            let entry = Entry {
                received: Timestamp::from_unix_ms(time_ms + 5 + (i * 7919) as i64 % 1000)
                    .expect("time"),
                via: Via {
                    kind: "http".into(),
                    peer: Some(SYSTEMS[system].1.into()),
                    principal: None,
                },
                event: Event::from_json(json.as_bytes()).expect("valid bench event"),
                enriched: None,
            };
            LedgerEntry {
                time_ms,
                bytes: entry.canonical_bytes(),
            }
        })
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}

fn compaction(root: &Path, signer: &dyn Fn() -> NoteSigner, n: u64) {
    let entries = realistic_entries(n);
    let avg = entries.iter().map(|e| e.bytes.len()).sum::<usize>() as f64 / n as f64;
    let plain = root.join("compact-plain");
    {
        let (mut ledger, _) =
            Ledger::open(&plain, signer(), SealPolicy::default()).expect("open ledger");
        for chunk in entries.chunks(BATCH) {
            ledger.append(chunk).expect("append");
        }
        ledger.close().expect("close");
    }
    // The same entries encrypted (segment format 3): not compacted.
    let encrypted = root.join("compact-encrypted");
    {
        std::fs::create_dir_all(&encrypted).expect("dir");
        atrest::register(&encrypted, Kek::generate()).expect("register KEK");
        let (mut ledger, _) =
            Ledger::open(&encrypted, signer(), SealPolicy::default()).expect("open ledger");
        for chunk in entries.chunks(BATCH) {
            ledger.append(chunk).expect("append");
        }
        ledger.close().expect("close");
    }
    drop(entries);
    let before = dir_bytes(&plain.join("ledger/segments"));
    println!(
        "encrypted (format 3, not compacted), same {n} generated events: {:.0} bytes/event on disk (segment files; + {} bytes of wrapped data keys)",
        dir_bytes(&encrypted.join("ledger/segments")) as f64 / n as f64,
        dir_bytes(&atrest::keys_dir(&encrypted))
    );
    std::fs::remove_dir_all(&encrypted).ok();
    let mut rates = Vec::new();
    let mut after = 0;
    let mut dict_bytes = 0;
    for round in 0..3 {
        let data = root.join(format!("compact-{round}"));
        let _ = std::fs::remove_dir_all(&data);
        copy_dir(&plain, &data);
        let mut c = Compaction::new(LedgerPaths::new(&data), CompactorOptions::default());
        let start = Instant::now();
        let done = c.pass(&|| false).expect("compaction");
        rates.push(n as f64 / start.elapsed().as_secs_f64());
        assert!(done > 0, "nothing compacted");
        after = dir_bytes(&data.join("ledger/segments"));
        dict_bytes = dir_bytes(&data.join("ledger/dicts"));
        if round < 2 {
            std::fs::remove_dir_all(&data).ok();
        }
    }
    let data = root.join("compact-2");
    // Verify reads every entry: compare the two formats (median of 3 each).
    let verify_eps = |dir: &Path| {
        let mut rates = Vec::new();
        for _ in 0..3 {
            let start = Instant::now();
            let report = verify_data_dir(dir, &signer().verifier(), None).expect("verify runs");
            assert!(report.ok && report.events == n, "{:?}", report.errors);
            rates.push(n as f64 / start.elapsed().as_secs_f64());
        }
        median(&mut rates)
    };
    let (v_plain, v_compact) = (verify_eps(&plain), verify_eps(&data));
    println!(
        "compaction ({n} generated events averaging {avg:.0} bytes, 16,384-event segments): {:.0} -> {:.0} bytes/event on disk (segment files; + {dict_bytes} bytes of dictionary), {:.0} events/s on one core (median of 3, dictionary training included)",
        before as f64 / n as f64,
        after as f64 / n as f64,
        median(&mut rates)
    );
    println!(
        "verify: {v_plain:.0} events/s uncompressed, {v_compact:.0} events/s compacted ({:.2}x)",
        v_compact / v_plain
    );

    // Decoding one entry alone, as a search hit read by index does: the
    // stored frames of the last segment, decoded one by one.
    let segs = LedgerPaths::new(&data).segments;
    let last = std::fs::read_dir(&segs)
        .expect("segments")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .max()
        .expect("a segment");
    let reader = FrameReader::open(&last).expect("segment");
    assert!(matches!(reader.header.format, FrameFormat::Zstd { .. }));
    let codec = reader.codec().clone();
    let header_len = reader.position() as usize;
    drop(reader);
    let bytes = std::fs::read(&last).expect("read");
    let mut frames = Vec::new();
    let mut pos = header_len;
    loop {
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().expect("4 bytes"));
        if len == SEAL_MARKER {
            break;
        }
        frames.push(&bytes[pos + 8..pos + 8 + len as usize]);
        pos += 8 + len as usize;
    }
    let mut out = Vec::new();
    let mut per_entry = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        for f in &frames {
            codec.decode_into(f, &mut out).expect("decode");
        }
        per_entry.push(start.elapsed().as_secs_f64() * 1e9 / frames.len() as f64);
    }
    println!(
        "decoding one compressed entry: {:.0} ns (median of 5 passes over {} entries)",
        median(&mut per_entry),
        frames.len()
    );
}

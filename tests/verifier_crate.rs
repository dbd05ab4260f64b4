//! The standalone verifier crate (`crates/sealtrail-verify`) on what the
//! service writes: ledgers written by the real writer (clean, compacted,
//! encrypted, crashed with an open segment, key-rotated, witnessed, and
//! tampered in the ways tests/integration/tamper.rs knows), proofs and
//! bundles. The service's `verify_data_dir`, proof and bundle checks are
//! now wrappers over the crate, so "both" also checks that the wrappers
//! (key, KEK and witness-policy conversion, result types) lose nothing: the
//! same verdict, verified event count, error kinds and messages.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

use sealtrail::event::{Entry, Event, Timestamp, Via};
use sealtrail::ledger::keys::{self, NoteSigner, NoteVerifier};
use sealtrail::ledger::log::{Ledger, LedgerEntry, LedgerPaths, SealPolicy};
use sealtrail::ledger::verify::{VerifyReport, verify_data_dir, verify_data_dir_witnessed};
use sealtrail::ledger::witnessed::WitnessPolicy;
use sealtrail_verify as sv;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

const ORIGIN: &str = "clinic.example/sealtrail";

struct Keys {
    key: PathBuf,
    vkey: PathBuf,
    verifier: NoteVerifier,
}

impl Keys {
    fn signer(&self) -> NoteSigner {
        keys::load_signer(&self.key).unwrap()
    }
    /// The same key as the crate's verifier, parsed from the vkey file.
    fn crate_verifier(&self) -> sv::NoteVerifier {
        let text = std::fs::read_to_string(&self.vkey).unwrap();
        sv::NoteVerifier::from_vkey(text.trim_end()).unwrap()
    }
}

fn keys(dir: &Path) -> Keys {
    std::fs::create_dir_all(dir).unwrap();
    let files = keys::write_key_files(dir, ORIGIN).unwrap();
    Keys {
        verifier: keys::load_verifier(&files.vkey).unwrap(),
        key: files.signing_key,
        vkey: files.vkey,
    }
}

fn entry(i: u64) -> LedgerEntry {
    let json = format!(
        r#"{{"id":"evt-{i:08}","time":"2026-11-{day:02}T{h:02}:{m:02}:11.{ms:03}Z","category":"access","action":"view","outcome":"success","actor":{{"user":"u{u:04}","role":"clinician"}},"patient":{{"id":"MRN-{p:07}"}},"resource":{{"type":"chart","id":"enc-{i}"}},"source":{{"system":"ehr","host":"app-01"}},"reason":"treatment","message":"Viewed encounter note"}}"#,
        day = 1 + (i / 86_400) % 28,
        h = (i / 3600) % 24,
        m = (i / 60) % 60,
        ms = i % 1000,
        u = i % 97,
        p = i % 5003,
    );
    let event = Event::from_json(json.as_bytes()).unwrap();
    let entry = Entry {
        received: Timestamp::parse("2026-11-27T14:03:11.5Z").unwrap(),
        via: Via {
            kind: "import".into(),
            peer: Some("test".into()),
            principal: None,
        },
        event,
        enriched: None,
    };
    LedgerEntry {
        time_ms: entry.event.time.unix_ms(),
        bytes: entry.canonical_bytes(),
    }
}

fn policy(max_events: u64) -> SealPolicy {
    SealPolicy {
        max_events,
        max_age: Duration::from_secs(3600),
    }
}

/// Appends events `from..to` to the ledger in `data` (sealing every `per`).
fn append(data: &Path, k: &Keys, from: u64, to: u64, per: u64, close: bool) {
    let (mut ledger, _) = Ledger::open(data, k.signer(), policy(per)).unwrap();
    let entries: Vec<LedgerEntry> = (from..to).map(entry).collect();
    for chunk in entries.chunks(7) {
        ledger.append(chunk).unwrap();
    }
    if close {
        ledger.close().unwrap();
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    k: Keys,
    data: PathBuf,
}

fn fixture(n: u64, per: u64) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(&dir.path().join("keys"));
    let data = dir.path().join("data");
    append(&data, &k, 0, n, per, true);
    Fixture { _dir: dir, k, data }
}

fn seg(data: &Path, n: u64) -> PathBuf {
    data.join("ledger/segments").join(format!("{n:012}.seg"))
}

/// The report without the free-text `detail`s (the crate words a few
/// messages differently; kinds, places and counts must be equal).
fn comparable(r: &impl serde::Serialize) -> Value {
    let mut v = serde_json::to_value(r).unwrap();
    for e in v["errors"].as_array_mut().unwrap() {
        e.as_object_mut().unwrap().remove("detail");
    }
    v.as_object_mut().unwrap().remove("warnings");
    v
}

/// Runs both verifiers; asserts the same report; returns it.
fn both(data: &Path, k: &Keys, kek: Option<&sv::atrest::Kek>, since: Option<&str>) -> VerifyReport {
    both_witnessed(data, k, kek, since, None)
}

/// A witness policy for the service and the same one for the crate.
type Policies<'a> = (&'a WitnessPolicy, &'a sv::WitnessPolicy);

/// [`both`], with a witness policy.
fn both_witnessed(
    data: &Path,
    k: &Keys,
    kek: Option<&sv::atrest::Kek>,
    since: Option<&str>,
    witness: Option<Policies<'_>>,
) -> VerifyReport {
    let old = verify_data_dir_witnessed(data, &k.verifier, since, witness.map(|w| w.0)).unwrap();
    let mut calls = Vec::new();
    let mut progress = |p: sv::Progress| calls.push(p);
    let new = sv::verify_dir(
        data,
        &k.crate_verifier(),
        sv::VerifyOptions {
            since,
            kek,
            threads: 0,
            progress: Some(&mut progress),
            witness: witness.map(|w| w.1),
        },
    )
    .unwrap();
    assert_eq!(
        comparable(&new),
        comparable(&old),
        "crate vs service on {}",
        data.display()
    );
    assert_eq!(
        new.warnings.len(),
        old.warnings.len(),
        "{:?} vs {:?}",
        new.warnings,
        old.warnings
    );
    // Progress ends at every sealed segment and byte.
    if let Some(last) = calls.last() {
        assert_eq!(last.segments_done, last.segments_total);
        assert_eq!(last.bytes_done, last.bytes_total);
        assert!(calls.windows(2).all(|w| w[0].bytes_done <= w[1].bytes_done));
    }
    old
}

fn kinds(r: &VerifyReport) -> Vec<&'static str> {
    r.errors.iter().map(|e| e.kind).collect()
}

fn flip(path: &Path, offset: usize) {
    let mut b = std::fs::read(path).unwrap();
    b[offset] ^= 0x01;
    std::fs::write(path, b).unwrap();
}

#[test]
fn clean_ledger_and_an_open_segment_agree() {
    let f = fixture(500, 100);
    let r = both(&f.data, &f.k, None, None);
    assert!(r.ok, "{r:?}");
    assert_eq!(r.events, 500);
    // A crash with events appended but not sealed.
    append(&f.data, &f.k, 500, 530, 100, false);
    let r = both(&f.data, &f.k, None, None);
    assert!(r.ok, "{r:?}");
    assert_eq!(r.unsealed_events, 30);
    // The checkpoint the auditor kept still matches.
    let cp = std::fs::read_to_string(f.data.join("ledger/checkpoint")).unwrap();
    append(&f.data, &f.k, 530, 700, 100, true);
    let r = both(&f.data, &f.k, None, Some(&cp));
    assert!(r.ok && r.since.is_some(), "{r:?}");
    // Single-threaded (as in a browser): the same report.
    let single = sv::verify_dir(
        &f.data,
        &f.k.crate_verifier(),
        sv::VerifyOptions {
            threads: 1,
            since: Some(&cp),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(comparable(&single), comparable(&r));
}

/// A live service seals its open segment while a verification runs (the
/// console's integrity run): the report says so in words, without an error
/// or a server path, and stays ok.
#[test]
fn an_open_segment_sealed_during_the_run_is_a_plain_warning() {
    let f = fixture(500, 100);
    append(&f.data, &f.k, 500, 530, 100, false);
    let segments = f.data.join("ledger/segments");
    let open = std::fs::read_dir(&segments)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "open"))
        .unwrap();
    // After the sealed segments were checked, before the open one is read.
    let mut seal = |_: sv::Progress| {
        if open.exists() {
            std::fs::rename(&open, open.with_extension("seg")).unwrap();
        }
    };
    let r = sv::verify_dir(
        &f.data,
        &f.k.crate_verifier(),
        sv::VerifyOptions {
            progress: Some(&mut seal),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(r.ok, "{r:?}");
    assert_eq!(r.unsealed_events, 0);
    let warning = r
        .warnings
        .iter()
        .find(|w| w.contains("was sealed while this ran"))
        .unwrap_or_else(|| panic!("{:?}", r.warnings));
    assert!(!warning.contains('/'), "{warning}");
}

#[test]
fn tampered_ledgers_get_the_same_kinds() {
    type Tamper = fn(&Path);
    let cases: &[(&str, Tamper, &[&str])] = &[
        ("entry byte", |d| flip(&seg(d, 1), 200), &["entry_corrupt"]),
        (
            "deleted segment",
            |d| std::fs::remove_file(seg(d, 2)).unwrap(),
            &["missing_segment"],
        ),
        (
            "no checkpoint",
            |d| std::fs::remove_file(d.join("ledger/checkpoint")).unwrap(),
            &["no_checkpoint"],
        ),
        (
            "checkpoint byte",
            |d| {
                let p = d.join("ledger/checkpoint");
                let mut t = std::fs::read_to_string(&p).unwrap();
                t = t.replacen('\n', "\n\u{0}", 0);
                let i = t.find('\n').unwrap() + 1;
                let mut b = t.into_bytes();
                b[i] = if b[i] == b'9' { b'8' } else { b'9' };
                std::fs::write(p, b).unwrap();
            },
            &["checkpoint_signature"],
        ),
        (
            "footer byte",
            |d| {
                let len = std::fs::metadata(seg(d, 3)).unwrap().len() as usize;
                flip(&seg(d, 3), len - 40);
            },
            &[],
        ),
        (
            "truncated file",
            |d| {
                let p = seg(d, 4);
                let b = std::fs::read(&p).unwrap();
                std::fs::write(&p, &b[..b.len() / 2]).unwrap();
            },
            &[],
        ),
        (
            "swapped segments",
            |d| {
                std::fs::rename(seg(d, 1), d.join("x")).unwrap();
                std::fs::rename(seg(d, 2), seg(d, 1)).unwrap();
                std::fs::rename(d.join("x"), seg(d, 2)).unwrap();
            },
            &["misplaced"],
        ),
        (
            "rewritten tree leaf",
            |d| {
                let p = d.join("ledger/tree/level-00");
                flip(&p, 16 + 32 * 2 + 5);
            },
            &["record_rewritten"],
        ),
        ("header byte", |d| flip(&seg(d, 0), 20), &["header"]),
        (
            "stray segment",
            |d| std::fs::copy(seg(d, 4), seg(d, 7)).map(|_| ()).unwrap(),
            &[],
        ),
    ];
    for (name, tamper, want) in cases {
        let f = fixture(500, 100);
        tamper(&f.data);
        let r = both(&f.data, &f.k, None, None);
        assert!(!r.ok, "{name}: {r:?}");
        for w in *want {
            assert!(kinds(&r).contains(w), "{name}: {:?}", kinds(&r));
        }
    }
}

#[test]
fn a_forged_tail_behind_an_older_checkpoint_fails_in_both() {
    let f = fixture(200, 100);
    let old_cp = std::fs::read(f.data.join("ledger/checkpoint")).unwrap();
    append(&f.data, &f.k, 200, 500, 100, true);
    std::fs::write(f.data.join("ledger/checkpoint"), old_cp).unwrap();
    let r = both(&f.data, &f.k, None, None);
    assert!(kinds(&r).contains(&"unsigned_tail"), "{r:?}");
    assert_eq!(r.events, 200);
    // Another key: the checkpoint and every segment's origin are refused.
    let other = keys(&f._dir.path().join("other"));
    let r = verify_data_dir(&f.data, &other.verifier, None).unwrap();
    let new = sv::verify_dir(&f.data, &other.crate_verifier(), Default::default()).unwrap();
    assert_eq!(comparable(&new), comparable(&r));
}

#[test]
fn compacted_ledgers_agree_and_a_damaged_dictionary_is_found() {
    use sealtrail::ledger::compactor::{Compaction, CompactorOptions};
    let f = fixture(500, 100);
    let opts = CompactorOptions {
        min_samples: 64,
        dict_size: 4096,
        ..CompactorOptions::default()
    };
    let mut c = Compaction::new(LedgerPaths::new(&f.data), opts);
    assert_eq!(c.pass(&|| false).unwrap(), 5);
    let r = both(&f.data, &f.k, None, None);
    assert!(r.ok && r.events == 500, "{r:?}");
    // A flipped byte in a compressed frame.
    flip(&seg(&f.data, 2), 300);
    let r = both(&f.data, &f.k, None, None);
    assert!(!r.ok);
    // A dictionary that no longer matches its name.
    let dicts = f.data.join("ledger/dicts");
    let dict = std::fs::read_dir(&dicts)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    flip(&dict, 100);
    let r = both(&f.data, &f.k, None, None);
    assert!(kinds(&r).contains(&"dictionary"), "{:?}", kinds(&r));
}

#[test]
fn encrypted_ledgers_agree_with_and_without_the_kek() {
    use sealtrail::ledger::atrest;
    let dir = tempfile::tempdir().unwrap();
    let k = keys(&dir.path().join("keys"));
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let kek_bytes = [7u8; 32];
    atrest::register(&data, atrest::Kek::parse(&kek_bytes, "test").unwrap()).unwrap();
    append(&data, &k, 0, 300, 100, true);
    let seg0 = std::fs::read(seg(&data, 0)).unwrap();
    assert!(!seg0.windows(4).any(|w| w == b"MRN-"), "not encrypted");
    let kek = sv::atrest::Kek::parse(&kek_bytes).unwrap();
    let r = both(&data, &k, Some(&kek), None);
    assert!(
        r.ok && r.events == 300 && r.payloads_unchecked == 0,
        "{r:?}"
    );

    // The same directory where no KEK is registered: structure only.
    let copy = dir.path().join("copy");
    copy_dir(&data, &copy);
    let r = both(&copy, &k, None, None);
    assert!(r.ok && r.payloads_unchecked == 300, "{r:?}");

    // A flipped ciphertext byte: found with the KEK, not without.
    flip(&seg(&data, 1), 400);
    let r = both(&data, &k, Some(&kek), None);
    assert!(!r.ok, "{r:?}");
    // The wrong KEK: every segment's key is refused.
    let wrong = sv::atrest::Kek::parse(&[8u8; 32]).unwrap();
    let new = sv::verify_dir(
        &copy,
        &k.crate_verifier(),
        sv::VerifyOptions {
            kek: Some(&wrong),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(!new.ok && new.segments == 0, "{new:?}");
    assert!(
        new.errors.iter().filter(|e| e.kind == "key").count() == 3,
        "{new:?}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn proofs_from_the_service_verify_with_the_crate_and_altered_ones_fail_in_both() {
    use sealtrail::ledger::proof::{
        LedgerReader, verify_consistency_proof, verify_inclusion_proof,
    };
    let f = fixture(300, 100);
    let old_cp = std::fs::read_to_string(f.data.join("ledger/checkpoint")).unwrap();
    append(&f.data, &f.k, 300, 700, 100, true);
    let reader = LedgerReader::open(&f.data).unwrap();
    let cv = f.k.crate_verifier();
    for index in [0u64, 63, 64, 299, 650, 699] {
        let p = reader.inclusion_proof(index).unwrap();
        let json = serde_json::to_vec(&p).unwrap();
        let sv::proof::ProofDocument::Inclusion(doc) = sv::proof::parse_proof(&json).unwrap()
        else {
            panic!("not an inclusion proof")
        };
        let v = sv::proof::verify_inclusion_proof(&doc, &cv).unwrap();
        assert_eq!(v.index, index);
        assert_eq!(v.entry, p.entry.as_bytes());
        // Altered: the entry, a path hash, the index, the checkpoint.
        let mut alts = Vec::new();
        let mut a = p.clone();
        a.entry = a.entry.replacen("view", "edit", 1);
        alts.push(a);
        let mut a = p.clone();
        if let Some(h) = a.segment.path.first_mut() {
            *h = h.replacen(&h[..1], if &h[..1] == "A" { "B" } else { "A" }, 1);
        }
        alts.push(a);
        let mut a = p.clone();
        a.index += 1;
        alts.push(a);
        let mut a = p.clone();
        a.checkpoint = old_cp.clone();
        alts.push(a);
        for a in alts {
            let old = verify_inclusion_proof(&a, &f.k.verifier);
            let json = serde_json::to_vec(&a).unwrap();
            let sv::proof::ProofDocument::Inclusion(doc) = sv::proof::parse_proof(&json).unwrap()
            else {
                panic!()
            };
            let new = sv::proof::verify_inclusion_proof(&doc, &cv);
            assert!(old.is_err() && new.is_err(), "{index}: {old:?} {new:?}");
            assert_eq!(old.unwrap_err().to_string(), new.unwrap_err().to_string());
        }
    }
    let p = reader.consistency_proof(3).unwrap();
    let doc = match sv::proof::parse_proof(&serde_json::to_vec(&p).unwrap()).unwrap() {
        sv::proof::ProofDocument::Consistency(d) => d,
        _ => panic!(),
    };
    let v = sv::proof::verify_consistency_proof(&doc, &cv, Some(&old_cp)).unwrap();
    assert_eq!((v.old_size, v.new_size), (3, 7));
    let mut a = p.clone();
    a.old_size = 2;
    let old = verify_consistency_proof(&a, &f.k.verifier, None).unwrap_err();
    let doc = match sv::proof::parse_proof(&serde_json::to_vec(&a).unwrap()).unwrap() {
        sv::proof::ProofDocument::Consistency(d) => d,
        _ => panic!(),
    };
    let new = sv::proof::verify_consistency_proof(&doc, &cv, None).unwrap_err();
    assert_eq!(old.to_string(), new.to_string());
    // Strict parsing: a duplicate member, trailing data, an unknown member.
    let text = serde_json::to_string(&p).unwrap();
    for bad in [
        text.replacen("{", "{\"old_size\":3,", 1),
        format!("{text} {{}}"),
        text.replacen("{", "{\"extra\":1,", 1),
        text.replacen("\"old_size\":3", "\"old_size\":3.0", 1),
    ] {
        assert!(sv::proof::parse_proof(bad.as_bytes()).is_err(), "{bad}");
    }
}

/// A bundle's report without the free-text details.
fn bundle_json(mut v: Value) -> Value {
    for e in v["errors"].as_array_mut().unwrap() {
        e.as_object_mut().unwrap().remove("detail");
    }
    v
}

#[test]
fn bundles_from_export_verify_with_the_crate_and_altered_ones_fail_alike() {
    use sealtrail::ledger::bundle::{BundleQuery, build_bundle, check_bundle};
    use sealtrail::ledger::proof::LedgerReader;
    let f = fixture(300, 100);
    let reader = LedgerReader::open(&f.data).unwrap();
    let query = BundleQuery {
        q: "patient.id:\"MRN-0000007\" \u{1b}[31m".into(),
        from: Some("2026-11-01T00:00:00Z".into()),
        to: None,
        requested_by: Some("auditor@example.org".into()),
        created: "2026-12-07T10:00:00+01:00".into(),
    };
    let mut tar = Vec::new();
    build_bundle(&reader, &f.k.signer(), &query, &[3, 64, 150, 299], &mut tar).unwrap();
    let cv = f.k.crate_verifier();
    let check = |bytes: &[u8]| {
        let old = check_bundle(bytes, &f.k.verifier);
        let new = sv::bundle::check_bundle(bytes, &cv);
        assert_eq!(bundle_json(new.to_json()), bundle_json(old.to_json()));
        assert_eq!(old.ok(), new.ok());
        new
    };
    let r = check(&tar);
    let v = r.verified.as_ref().unwrap();
    assert_eq!(
        v.entries.iter().map(|e| e.index).collect::<Vec<_>>(),
        [3, 64, 150, 299]
    );
    assert_eq!(v.query.q, query.q);

    // Every byte of the archive flipped in turn (sampled): never accepted by
    // either, and the same kinds where both can read that far.
    let mut rejected = 0;
    for i in (0..tar.len()).step_by(151) {
        let mut b = tar.clone();
        b[i] ^= 0x04;
        let old = check_bundle(&b[..], &f.k.verifier);
        let new = sv::bundle::check_bundle(&b[..], &cv);
        if i >= tar.len() - 1024 {
            // In the end-of-archive blocks: the crate refuses any data there.
            assert!(!new.ok(), "byte {i}");
        } else {
            assert_eq!(
                bundle_json(new.to_json()),
                bundle_json(old.to_json()),
                "byte {i}"
            );
        }
        if !new.ok() {
            rejected += 1;
        }
    }
    assert!(rejected > 0);
    // Truncated, and with data after the end-of-archive blocks (which only
    // the crate refuses).
    let r = check(&tar[..tar.len() / 2]);
    assert!(!r.ok());
    let mut trailing = tar.clone();
    trailing.extend_from_slice(b"hidden");
    let new = sv::bundle::check_bundle(&trailing[..], &cv);
    assert!(
        !new.ok() && new.errors[0].kind == "trailing_data",
        "{:?}",
        new.to_json()
    );
    let mut zeros = tar.clone();
    zeros.extend_from_slice(&[0; 10240]);
    assert!(sv::bundle::check_bundle(&zeros[..], &cv).ok());
}

/// Writes a ledger for the crate's bench (`benches/verify.rs`):
/// `SEALTRAIL_BENCH_LEDGER=DIR SEALTRAIL_BENCH_EVENTS=N cargo test --test
/// verifier_crate make_bench_ledger -- --ignored`; with
/// `SEALTRAIL_BENCH_COMPACT=1` the sealed segments are then compacted.
#[test]
#[ignore = "makes bench data on request"]
fn make_bench_ledger() {
    use sealtrail::ledger::compactor::{Compaction, CompactorOptions};
    let dir = PathBuf::from(std::env::var("SEALTRAIL_BENCH_LEDGER").unwrap());
    let n: u64 = std::env::var("SEALTRAIL_BENCH_EVENTS").map_or(100_000, |v| v.parse().unwrap());
    let k = keys(&dir.join("keys"));
    let data = dir.join("data");
    append(&data, &k, 0, n, 4096, true);
    if std::env::var("SEALTRAIL_BENCH_COMPACT").is_ok() {
        let mut c = Compaction::new(LedgerPaths::new(&data), CompactorOptions::default());
        c.pass(&|| false).unwrap();
    }
    let r = both(&data, &k, None, None);
    assert!(r.ok && r.events == n, "{r:?}");
}

/// Runs the `sealtrail` binary; returns (exit code, stdout).
fn cli(args: &[&std::ffi::OsStr]) -> (i32, Vec<u8>) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sealtrail"))
        .args(args)
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), out.stdout)
}

#[test]
fn the_cli_report_and_cli_proofs_agree_with_the_crate() {
    let f = fixture(300, 100);
    flip(&seg(&f.data, 2), 300);
    let (code, out) = cli(&[
        "verify".as_ref(),
        "--data".as_ref(),
        f.data.as_os_str(),
        "--vkey".as_ref(),
        f.k.vkey.as_os_str(),
        "--json".as_ref(),
    ]);
    assert_eq!(code, 1, "{}", String::from_utf8_lossy(&out));
    let from_cli: Value = serde_json::from_slice(&out).unwrap();
    let new = sv::verify_dir(&f.data, &f.k.crate_verifier(), Default::default()).unwrap();
    assert_eq!(comparable(&new), {
        let mut v = from_cli;
        for e in v["errors"].as_array_mut().unwrap() {
            e.as_object_mut().unwrap().remove("detail");
        }
        v.as_object_mut().unwrap().remove("warnings");
        v
    });
    // `sealtrail proof` files verify with the crate (event 50 is in an intact segment).
    let (code, out) = cli(&[
        "proof".as_ref(),
        "--data".as_ref(),
        f.data.as_os_str(),
        "--index".as_ref(),
        "50".as_ref(),
    ]);
    assert_eq!(code, 0);
    let sv::proof::ProofDocument::Inclusion(p) = sv::proof::parse_proof(&out).unwrap() else {
        panic!()
    };
    assert_eq!(
        sv::proof::verify_inclusion_proof(&p, &f.k.crate_verifier())
            .unwrap()
            .index,
        50
    );
    let (code, out) = cli(&[
        "proof".as_ref(),
        "--data".as_ref(),
        f.data.as_os_str(),
        "--consistency-from".as_ref(),
        "1".as_ref(),
    ]);
    assert_eq!(code, 0);
    let sv::proof::ProofDocument::Consistency(p) = sv::proof::parse_proof(&out).unwrap() else {
        panic!()
    };
    assert_eq!(
        sv::proof::verify_consistency_proof(&p, &f.k.crate_verifier(), None)
            .unwrap()
            .new_size,
        3
    );
}

/// A log whose key was rotated after 300 events, then written on with the
/// new key to 500.
fn rotated() -> (Fixture, Keys) {
    use sealtrail::ledger::rotate::rotate_signing_key;
    let f = fixture(300, 100);
    let new = keys(&f._dir.path().join("new"));
    rotate_signing_key(&f.data, f.k.signer(), &new.signer(), policy(100)).unwrap();
    append(&f.data, &new, 300, 500, 100, true);
    (f, new)
}

#[test]
fn a_rotated_log_agrees_from_either_key_and_tampered_histories_fail_alike() {
    let (f, new) = rotated();
    // From the first key: the transition is followed; from the new key: the
    // checkpoint after it is trusted directly.
    let r = both(&f.data, &f.k, None, None);
    assert!(r.ok, "{r:?}");
    assert_eq!(r.key_transitions.len(), 1);
    assert_eq!(r.events, 501);
    assert!(both(&f.data, &new, None, None).ok);
    let history = f.data.join("ledger/key-history.json");
    let text = std::fs::read_to_string(&history).unwrap();
    type Tamper = fn(&Path, &str);
    let cases: &[(&str, Tamper)] = &[
        ("history removed", |h, _| std::fs::remove_file(h).unwrap()),
        ("history not JSON", |h, _| std::fs::write(h, "{").unwrap()),
        // The logged entry no longer matches the note.
        ("entry edited", |h, t| {
            std::fs::write(h, t.replacen("key_rotation", "key_rotatio", 1)).unwrap()
        }),
        // An unknown member.
        ("member added", |h, t| {
            std::fs::write(h, t.replacen('{', "{\"x\":1,", 1)).unwrap()
        }),
        ("transition dropped", |h, _| {
            std::fs::write(h, "{\"transitions\":[]}").unwrap()
        }),
    ];
    for (name, tamper) in cases {
        tamper(&history, &text);
        let r = both(&f.data, &f.k, None, None);
        assert!(!r.ok, "{name}: {r:?}");
        std::fs::write(&history, &text).unwrap();
    }
    // The transition's segment altered: the handoff checks fail in both.
    let seg3 = seg(&f.data, 3);
    let bytes = std::fs::read(&seg3).unwrap();
    flip(&seg3, 120);
    let r = both(&f.data, &f.k, None, None);
    assert!(!r.ok, "{r:?}");
    std::fs::write(&seg3, bytes).unwrap();
    // A checkpoint of the new size signed by the retired key.
    let cp = std::fs::read_to_string(f.data.join("ledger/checkpoint")).unwrap();
    let body = &cp[..cp.find("\n\n").unwrap() + 1];
    let forged = sealtrail::ledger::note::sign_note(body, &f.k.signer()).unwrap();
    std::fs::write(f.data.join("ledger/checkpoint"), forged).unwrap();
    let r = both(&f.data, &f.k, None, None);
    assert!(kinds(&r).contains(&"retired_key"), "{r:?}");
}

#[test]
fn proofs_and_bundles_of_a_rotated_log_verify_with_the_crate_from_the_first_key() {
    use sealtrail::ledger::bundle::{BundleQuery, build_bundle, check_bundle};
    use sealtrail::ledger::proof::{LedgerReader, verify_inclusion_proof};
    let (f, new) = rotated();
    let reader = LedgerReader::open(&f.data).unwrap();
    let cv = f.k.crate_verifier();
    for index in [5u64, 300, 450] {
        let p = reader.inclusion_proof(index).unwrap();
        assert!(p.key_history.is_some());
        let json = serde_json::to_vec(&p).unwrap();
        let sv::proof::ProofDocument::Inclusion(doc) = sv::proof::parse_proof(&json).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            sv::proof::verify_inclusion_proof(&doc, &cv).unwrap().index,
            index
        );
        // Without the history the first key cannot reach the new one.
        let mut a = p.clone();
        a.key_history = None;
        let mut d = doc.clone();
        d.key_history = None;
        let old = verify_inclusion_proof(&a, &f.k.verifier).unwrap_err();
        let new_err = sv::proof::verify_inclusion_proof(&d, &cv).unwrap_err();
        assert_eq!(old.to_string(), new_err.to_string());
    }
    let p = reader.consistency_proof(2).unwrap();
    let sv::proof::ProofDocument::Consistency(doc) =
        sv::proof::parse_proof(&serde_json::to_vec(&p).unwrap()).unwrap()
    else {
        panic!()
    };
    assert_eq!(
        sv::proof::verify_consistency_proof(&doc, &cv, None)
            .unwrap()
            .new_size,
        6
    );
    let query = BundleQuery {
        q: "category:access".into(),
        from: None,
        to: None,
        requested_by: None,
        created: "2026-12-07T10:00:00Z".into(),
    };
    let mut tar = Vec::new();
    build_bundle(&reader, &new.signer(), &query, &[3, 299, 450], &mut tar).unwrap();
    for (verifier, crate_verifier) in [(&f.k.verifier, &cv), (&new.verifier, &new.crate_verifier())]
    {
        let old = check_bundle(&tar[..], verifier);
        let r = sv::bundle::check_bundle(&tar[..], crate_verifier);
        assert!(r.ok(), "{:?}", r.to_json());
        assert_eq!(bundle_json(r.to_json()), bundle_json(old.to_json()));
    }
    // Any byte flipped: the same verdict and kinds.
    for i in (0..tar.len() - 1024).step_by(211) {
        let mut b = tar.clone();
        b[i] ^= 0x04;
        let old = check_bundle(&b[..], &f.k.verifier);
        let new_r = sv::bundle::check_bundle(&b[..], &cv);
        assert_eq!(
            bundle_json(new_r.to_json()),
            bundle_json(old.to_json()),
            "byte {i}"
        );
    }
}

#[test]
fn a_witnessed_log_agrees_on_quorum_and_mismatch() {
    use sealtrail::ledger::cosignature::WitnessSigner;
    let f = fixture(300, 100);
    let (a, b, c) = (
        WitnessSigner::generate("w.example/a").unwrap(),
        WitnessSigner::generate("w.example/b").unwrap(),
        WitnessSigner::generate("w.example/c").unwrap(),
    );
    let policies = |ws: &[&WitnessSigner], quorum: usize| {
        let service = WitnessPolicy {
            witnesses: ws.iter().map(|w| w.verifier()).collect(),
            quorum,
        };
        let krate = sv::WitnessPolicy {
            witnesses: ws
                .iter()
                .map(|w| sv::NoteVerifier::from_witness_vkey(&w.verifier().to_vkey()).unwrap())
                .collect(),
            quorum,
        };
        (service, krate)
    };
    let witnessed = f.data.join("ledger/checkpoint.witnessed");
    let cosign = |cp: &str, ws: &[&WitnessSigner]| {
        let body = &cp[..cp.find("\n\n").unwrap() + 1];
        let lines: String = ws
            .iter()
            .map(|w| w.cosign(body, 1_765_000_000).unwrap())
            .collect();
        std::fs::write(&witnessed, format!("{cp}{lines}")).unwrap();
    };
    let cp = std::fs::read_to_string(f.data.join("ledger/checkpoint")).unwrap();
    // No cosigned checkpoint yet.
    let (s, k) = policies(&[&a, &b], 1);
    let r = both_witnessed(&f.data, &f.k, None, None, Some((&s, &k)));
    assert_eq!(kinds(&r), ["witness_quorum"]);
    cosign(&cp, &[&a, &b]);
    append(&f.data, &f.k, 300, 400, 100, true);
    for (ws, quorum, ok) in [
        (&[&a, &b][..], 2, true),
        (&[&b, &a, &c][..], 2, true),
        (&[&a, &c][..], 2, false),
        (&[&c][..], 1, false),
        (&[&a][..], 2, false),
    ] {
        let (s, k) = policies(ws, quorum);
        let r = both_witnessed(&f.data, &f.k, None, None, Some((&s, &k)));
        assert_eq!(r.ok, ok, "{r:?}");
        if ok {
            assert_eq!(r.witnessed.as_ref().unwrap().size, 3);
        } else {
            assert_eq!(kinds(&r), ["witness_quorum"]);
        }
    }
    // A cosigned checkpoint the log does not extend (signed by the log key).
    let body = format!("{ORIGIN}\n4\n{}\n", "A".repeat(43) + "=");
    let fake = sealtrail::ledger::note::sign_note(&body, &f.k.signer()).unwrap();
    cosign(&fake, &[&a, &b]);
    let (s, k) = policies(&[&a, &b], 2);
    let r = both_witnessed(&f.data, &f.k, None, None, Some((&s, &k)));
    assert_eq!(kinds(&r), ["witness_mismatch"]);
    // A cosignature line altered: refused by both.
    cosign(&cp, &[&a, &b]);
    let text = std::fs::read_to_string(&witnessed).unwrap();
    let at = text.rfind(' ').unwrap() + 10;
    let mut bytes = text.into_bytes();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    std::fs::write(&witnessed, bytes).unwrap();
    let r = both_witnessed(&f.data, &f.k, None, None, Some((&s, &k)));
    assert_eq!(kinds(&r), ["witness_quorum"]);
}

#[test]
fn the_crate_reports_the_same_warnings_for_stray_open_segments_and_a_damaged_tree() {
    let f = fixture(300, 100);
    let open = f
        .data
        .join("ledger/segments")
        .join(format!("{:012}.open", 9));
    std::fs::copy(seg(&f.data, 1), &open).unwrap();
    let r = both(&f.data, &f.k, None, None);
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("unexpected open segment")),
        "{r:?}"
    );
    std::fs::remove_file(&open).unwrap();
    let tree = f.data.join("ledger/tree/level-00");
    let bytes = std::fs::read(&tree).unwrap();
    flip(&tree, 2);
    let r = both(&f.data, &f.k, None, None);
    assert!(
        r.ok && r.warnings.iter().any(|w| w.contains("malformed")),
        "{r:?}"
    );
    std::fs::write(&tree, &bytes[..16 + 32]).unwrap();
    let r = both(&f.data, &f.k, None, None);
    assert!(
        r.ok && r.warnings.iter().any(|w| w.contains("holds 1 of 3")),
        "{r:?}"
    );
}

#[test]
fn an_entry_with_a_duplicate_member_is_refused_by_both() {
    let f = fixture(100, 100);
    let (mut ledger, _) = Ledger::open(&f.data, f.k.signer(), policy(100)).unwrap();
    let mut e = entry(100);
    let text = String::from_utf8(e.bytes).unwrap();
    e.bytes = text.replacen('{', "{\"dup\":1,\"dup\":2,", 1).into_bytes();
    ledger.append(&[e, entry(101)]).unwrap();
    ledger.close().unwrap();
    let r = both(&f.data, &f.k, None, None);
    assert!(!r.ok, "{r:?}");
    assert_eq!(kinds(&r), ["entry"]);
    assert_eq!(r.errors[0].index, Some(100));
}

//! Detection benchmark (issue #5): single-core throughput of the rule engine
//! with a representative rule pack (21 detection rules, 6 correlations incl.
//! a chained one) over generated, enriched practice events, and the memory
//! that correlation state takes for 100,000 distinct groups.
//!
//! Stage 3 is the detector's path: stored entry bytes through the shipped
//! pack (`rules/`), `EntryView` against the owned `Entry` parse.
//!
//! Run: `cargo bench --bench rules`. Env: SEALTRAIL_BENCH_EVENTS (default
//! 2,000,000), SEALTRAIL_BENCH_ROUNDS (stage 3, default 3),
//! SEALTRAIL_BENCH_STAGE=service (stage 3 only), SEALTRAIL_BENCH_PATH=view
//! (stage 3's view path only, for profiling). Without `--bench` (as under `cargo test --all-targets`) a
//! smoke run of 50,000 events (and 10,000 groups) checks that the benchmark
//! still works.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)] // test code

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sealtrail::event::{
    Actor, Category, Enriched, Entry, Event, Outcome, Patient, PatientInfo, Resource, Source,
    StaffInfo, Timestamp, Via,
};
use sealtrail::rules::{AlertCandidate, Engine, EngineConfig, EntryView, RuleSet};
use serde_json::{Map, Value};

const SEED: u64 = 0x5ea1_7a11;
const USERS: usize = 300;
const PATIENTS: u32 = 50_000;
/// 2025-12-01T14:00:00Z (office hours, so after-hours rules fire rarely).
const START_MS: i64 = 1_764_597_600_000;
/// Event time advances 10 ms per event on average (100 events/s, a busy
/// practice), so correlations see realistic densities.
const STEP_MS: i64 = 10;

const LAST_NAMES: [&str; 12] = [
    "smith", "johnson", "williams", "brown", "jones", "garcia", "miller", "davis", "lopez",
    "wilson", "moore", "taylor",
];
const ROLES: [&str; 6] = [
    "physician",
    "nurse",
    "medical_assistant",
    "front_desk",
    "billing",
    "it_admin",
];
const RESOURCES: [&str; 6] = [
    "encounter_note",
    "lab_result",
    "medication_list",
    "imaging_report",
    "demographics",
    "billing_statement",
];

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Deterministic enriched entries: logins and failures (with password
/// guessing from outside addresses), chart views, prints, exports, break
/// glass, account administration.
fn generate(n: usize) -> Vec<Entry> {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let users: Vec<(String, &str, &str, String)> = (0..USERS)
        .map(|i| {
            (
                format!("u{:04}", i + 1),
                ROLES[i % ROLES.len()],
                LAST_NAMES[(i * 7) % LAST_NAMES.len()],
                format!("10.20.{}.{}", i / 200, i % 200 + 10),
            )
        })
        .collect();
    let attackers: Vec<String> = (0..50)
        .map(|i| format!("203.0.{}.{}", i / 10, i % 250 + 1))
        .collect();
    let mut t = START_MS;
    let mut out = Vec::with_capacity(n);
    for nth in 0..n {
        t += rng.gen_range(0..2 * STEP_MS);
        let (user, role, last, ip) = &users[rng.gen_range(0..USERS)];
        let mut user = user.clone();
        let mut ip = ip.clone();
        let mut e = Event::new(
            Timestamp::from_unix_ms(t).expect("time"),
            Category::Access,
            "view",
            Outcome::Success,
        );
        let roll: f64 = rng.r#gen();
        let mut staff = true;
        if roll < 0.12 {
            e.category = Category::Auth;
            let k: f64 = rng.r#gen();
            if k < 0.6 {
                e.action = "login".into();
                e.message = Some("User signed in".into());
            } else if k < 0.8 {
                e.action = "login".into();
                e.outcome = Outcome::Failure;
                e.message = Some("Sign-in failed: wrong password".into());
                if rng.gen_bool(0.5) {
                    ip = attackers[rng.gen_range(0..attackers.len())].clone();
                    if rng.gen_bool(0.5) {
                        user = format!("admin{}", rng.gen_range(0..40));
                        staff = false;
                        e.message = Some("Sign-in failed: unknown user".into());
                    }
                }
            } else if k < 0.98 {
                e.action = "logout".into();
            } else {
                e.action = "account_lockout".into();
                e.outcome = Outcome::Failure;
            }
        } else if roll < 0.995 {
            let a: f64 = rng.r#gen();
            e.action = if a < 0.85 {
                "view"
            } else if a < 0.93 {
                "update"
            } else if a < 0.96 {
                "print"
            } else if a < 0.995 {
                "export"
            } else {
                "break_glass"
            }
            .into();
            let u: f64 = rng.r#gen();
            let pid = (u * u * f64::from(PATIENTS)) as u32 + 1;
            e.patient = Some(Patient {
                id: format!("MRN-{pid:07}"),
            });
            let kind = RESOURCES[rng.gen_range(0..RESOURCES.len())];
            e.resource = Some(Resource {
                kind: kind.into(),
                id: Some(format!("{}-{}", &kind[..3], rng.gen_range(0..1u32 << 24))),
            });
            e.reason = Some(
                if e.action == "break_glass" {
                    "break_glass"
                } else {
                    "treatment"
                }
                .into(),
            );
            e.message = Some(format!("{} {}", e.action, kind.replace('_', " ")));
            if e.action == "print" || e.action == "export" {
                let mut m = Map::new();
                m.insert("pages".into(), Value::from(rng.gen_range(1..40u32)));
                e.attrs = Some(m);
                if e.action == "export" {
                    e.records = Some(rng.gen_range(1..2_000));
                }
            }
        } else {
            e.category = Category::Admin;
            e.action = [
                "role_grant",
                "role_revoke",
                "user_disable",
                "permission_change",
            ][rng.gen_range(0..4)]
            .into();
            // Accounts are disabled when people leave: a leaver's account,
            // which does not sign in again. (Disabling active staff at
            // random made every later sign-in of theirs a "login to a
            // disabled account" alert: 126k alerts per 2M events, no
            // practice's traffic.)
            e.target_user = Some(if e.action == "user_disable" {
                format!("leaver{}", rng.gen_range(0..10_000u32))
            } else {
                users[rng.gen_range(0..USERS)].0.clone()
            });
        }
        e.actor = Some(Actor {
            user: Some(user),
            ip: Some(ip),
            ..Actor::default()
        });
        e.source = Some(Source {
            system: "ehr".into(),
            host: None,
        });
        let patient_info = e.patient.as_ref().map(|p| PatientInfo {
            // One patient in 16 shares a staff member's plain last name.
            last_name: Some(if p.id.ends_with('0') {
                LAST_NAMES[p.id.len() % LAST_NAMES.len()].to_owned()
            } else {
                format!(
                    "{}-{}",
                    LAST_NAMES[p.id.len() % LAST_NAMES.len()],
                    &p.id[8..]
                )
            }),
            home_zip: None,
            vip: p.id.ends_with("07"),
            employee_user: p.id.ends_with("123").then(|| "u0042".into()),
        });
        let enriched = Enriched {
            actor: staff.then(|| StaffInfo {
                last_name: Some((*last).into()),
                role: Some((*role).into()),
                ..StaffInfo::default()
            }),
            target_user: None,
            patient: patient_info,
            network: None,
        };
        out.push(Entry {
            received: Timestamp::from_unix_ms(t + 5 + (nth as i64 * 7919) % 1000).expect("time"),
            via: Via {
                kind: "http".into(),
                peer: Some("10.20.0.5".into()),
                principal: None,
            },
            event: e,
            enriched: (!enriched.is_empty()).then_some(enriched),
        });
    }
    out
}

fn rule(id: &str, title: &str, level: &str, detection: &str) -> String {
    format!(
        "title: {title}\nid: {id}\nname: {id}\nlevel: {level}\nlogsource:\n  product: sealtrail\ndetection:\n{detection}\n---\n"
    )
}

/// The representative pack: 21 detection rules, 6 correlations.
fn rule_pack() -> String {
    let mut s = String::new();
    let d = [
        (
            "failed_login",
            "Failed login",
            "low",
            "  s:\n    category: auth\n    action: login\n    outcome: failure\n  condition: s",
        ),
        (
            "successful_login",
            "Login",
            "informational",
            "  s:\n    category: auth\n    action: login\n    outcome: success\n  condition: s",
        ),
        (
            "chart_view",
            "Chart view",
            "informational",
            "  s:\n    category: access\n    action: view\n    patient.id|exists: true\n  condition: s",
        ),
        (
            "export",
            "Export",
            "low",
            "  s:\n    action: [export, download]\n  condition: s",
        ),
        (
            "role_grant",
            "Role granted",
            "low",
            "  s:\n    category: admin\n    action: role_grant\n  condition: s",
        ),
        (
            "vip_access",
            "VIP record accessed",
            "high",
            "  s:\n    category: access\n    patient.vip: true\n  condition: s",
        ),
        (
            "self_access",
            "Own record accessed",
            "high",
            "  s:\n    actor.user|fieldref: patient.employee_user\n  condition: s",
        ),
        (
            "family_access",
            "Same last name",
            "medium",
            "  s:\n    category: access\n    actor.last_name|fieldref: patient.last_name\n  filter:\n    actor.role: [physician, nurse]\n  condition: s and not filter",
        ),
        (
            "break_glass",
            "Break glass",
            "high",
            "  s:\n    reason: break_glass\n  condition: s",
        ),
        (
            "break_glass_nojust",
            "Break glass without justification",
            "high",
            "  s:\n    reason: break_glass\n  j:\n    attrs.justification|exists: true\n  condition: s and not j",
        ),
        (
            "after_hours",
            "After-hours access",
            "medium",
            "  sel_access:\n    category: access\n  time_late:\n    time|hour|gte: 22\n  time_early:\n    time|hour|lt: 6\n  condition: sel_access and 1 of time_*",
        ),
        (
            "big_export",
            "Large export",
            "high",
            "  s:\n    action: export\n    records|gte: 1500\n  condition: s",
        ),
        (
            "external_login",
            "Login from outside",
            "medium",
            "  s:\n    category: auth\n    action: login\n  internal:\n    actor.ip|cidr: [10.0.0.0/8, 192.168.0.0/16, 'fd00::/8']\n  condition: s and not internal",
        ),
        (
            "svc_login",
            "Service account login",
            "high",
            "  s:\n    action: login\n    actor.user|startswith: svc-\n  condition: s",
        ),
        (
            "grant_no_ticket",
            "Role grant without ticket",
            "medium",
            "  s:\n    action: role_grant\n  t:\n    attrs.change_ticket|exists: true\n  condition: s and not t",
        ),
        (
            "audit_change",
            "Audit configuration changed",
            "critical",
            "  s:\n    action: [audit_config_change, retention_change]\n  condition: s",
        ),
        (
            "lockout",
            "Account lockout",
            "low",
            "  s:\n    action: account_lockout\n  condition: s",
        ),
        (
            "unknown_user",
            "Unknown user",
            "low",
            "  s:\n    message|contains: unknown user\n  condition: s",
        ),
        (
            "print_many",
            "Large print",
            "medium",
            "  s:\n    action: print\n    attrs.pages|gt: 35\n  condition: s",
        ),
        (
            "lab_export_re",
            "Lab or imaging export",
            "medium",
            "  s:\n    message|re: '^export (lab|imaging) '\n  condition: s",
        ),
        (
            "non_it_admin",
            "Admin change by non-IT",
            "medium",
            "  s:\n    category: admin\n  it:\n    actor.role: it_admin\n  condition: s and not it",
        ),
    ];
    for (id, title, level, det) in d {
        s.push_str(&rule(id, title, level, det));
    }
    s.push_str("title: Brute force\nid: brute_force\nname: brute_force\nlevel: medium\ncorrelation:\n  type: event_count\n  rules: [failed_login]\n  group-by: [actor.user]\n  timespan: 5m\n  condition: {gte: 5}\n---\n");
    s.push_str("title: Password spray\nid: spray\nlevel: high\ncorrelation:\n  type: value_count\n  rules: [failed_login]\n  group-by: [actor.ip]\n  timespan: 10m\n  condition: {field: actor.user, gte: 5}\n---\n");
    s.push_str("title: Brute force then success\nid: brute_success\nlevel: critical\ncorrelation:\n  type: temporal_ordered\n  rules: [brute_force, successful_login]\n  group-by: [actor.user]\n  timespan: 15m\n---\n");
    s.push_str("title: Mass lookup\nid: mass_lookup\nlevel: high\ncorrelation:\n  type: value_count\n  rules: [chart_view]\n  group-by: [actor.user]\n  timespan: 1h\n  condition: {field: patient.id, gte: 400}\n---\n");
    s.push_str("title: Export burst\nid: export_burst\nlevel: high\ncorrelation:\n  type: event_count\n  rules: [export]\n  group-by: [actor.user]\n  timespan: 1h\n  condition: {gte: 25}\n---\n");
    s.push_str("title: Grant then access by grantee\nid: grant_then_use\nlevel: medium\ncorrelation:\n  type: temporal_ordered\n  rules: [role_grant, export]\n  group-by: [person]\n  timespan: 30m\n  aliases:\n    person:\n      role_grant: target_user\n      export: actor.user\n");
    s
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// CPU seconds (user + system) this process has used, from /proc (10 ms
/// resolution): events per CPU second is steadier than wall clock on a
/// shared machine.
fn cpu_secs() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0)
        })
        .unwrap_or(0.0)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    format!("{cpu}, {cores} cores visible")
}

/// 0. Memory of 100,000 distinct groups (one hit each, nothing fires),
///    measured first so freed memory of later steps cannot hide it.
fn state_memory(smoke: bool) {
    let groups = if smoke { 10_000 } else { 100_000 };
    let one = RuleSet::from_yaml(
    "mem.yml",
    "title: c\nid: c\ncorrelation:\n  type: event_count\n  rules: [f]\n  group-by: [actor.user]\n  timespan: 1d\n  condition: {gte: 1000}\n---\ntitle: f\nid: f\ndetection:\n  s:\n    action: login\n  condition: s\n",
)
.expect("rule");
    let probe: Vec<Entry> = (0..groups)
        .map(|i| {
            let mut e = Event::new(
                Timestamp::from_unix_ms(START_MS + i as i64).expect("time"),
                Category::Auth,
                "login",
                Outcome::Failure,
            );
            e.actor = Some(Actor {
                user: Some(format!("user-{i:07}")),
                ..Actor::default()
            });
            Entry {
                received: Timestamp::from_unix_ms(START_MS).expect("time"),
                via: Via {
                    kind: "http".into(),
                    peer: None,
                    principal: None,
                },
                event: e,
                enriched: None,
            }
        })
        .collect();
    let mut engine = Engine::new(
        Arc::new(one),
        EngineConfig {
            allowed_lateness_ms: 0,
            ..EngineConfig::default()
        },
    );
    let before = rss_kib();
    let mut sink = Vec::new();
    for (i, e) in probe.iter().enumerate() {
        engine.process(i as u64, e, &mut sink);
    }
    let after = rss_kib();
    let st = engine.stats();
    assert_eq!(st.groups, groups);
    println!(
        "correlation state for {} groups: RSS +{} KiB ({:.0} bytes/group)",
        st.groups,
        after.saturating_sub(before),
        after.saturating_sub(before) as f64 * 1024.0 / groups as f64
    );
}

fn main() {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let n = if smoke {
        50_000
    } else {
        env_u64("SEALTRAIL_BENCH_EVENTS", 2_000_000) as usize
    };
    println!("machine: {}", machine());
    let service_only = std::env::var("SEALTRAIL_BENCH_STAGE").is_ok_and(|v| v == "service");
    if !service_only {
        state_memory(smoke);
    }
    let pack = rule_pack();
    let rules = Arc::new(RuleSet::from_yaml("pack.yml", &pack).expect("rule pack loads"));
    println!(
        "rule pack: {} detection rules, {} correlations",
        rules.detection_rules().count(),
        rules.correlation_rules().count()
    );
    let t = Instant::now();
    let entries = generate(n);
    let bytes: Vec<Vec<u8>> = entries.iter().map(Entry::canonical_bytes).collect();
    let avg = bytes.iter().map(Vec::len).sum::<usize>() / n.max(1);
    println!(
        "events: {n} generated in {:.1} s (seed {SEED:#x}), {avg} bytes/entry on average, event time span {:.1} h",
        t.elapsed().as_secs_f64(),
        (entries.last().map_or(0, |e| e.event.time.unix_ms()) - START_MS) as f64 / 3.6e6
    );

    if service_only {
        // Only stage 3 (for profiling the detector's path).
        service_path(&bytes, smoke);
        return;
    }
    // 1. Parsed entries through the engine (one thread).
    let cfg = EngineConfig::default();
    let mut engine = Engine::new(Arc::clone(&rules), cfg.clone());
    let mut alerts: Vec<AlertCandidate> = Vec::new();
    let mut lat = Vec::with_capacity(n);
    let cpu0 = cpu_secs();
    let t = Instant::now();
    for (i, e) in entries.iter().enumerate() {
        let s = Instant::now();
        engine.process(i as u64, e, &mut alerts);
        lat.push(s.elapsed().as_nanos() as u64);
    }
    engine.flush(&mut alerts);
    let secs = t.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu0;
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize];
    println!(
        "engine.process on parsed entries: {:.0} events/s wall ({:.2} s), {:.0} events per cpu second; per event p50 {} ns, p99 {} ns, max {} ns",
        n as f64 / secs,
        secs,
        n as f64 / cpu.max(0.01),
        pct(0.5),
        pct(0.99),
        lat.last().copied().unwrap_or(0)
    );
    let mut by_rule: BTreeMap<&str, usize> = BTreeMap::new();
    for a in &alerts {
        *by_rule.entry(a.rule_id.as_str()).or_default() += 1;
    }
    println!("alerts: {} {:?}", alerts.len(), by_rule);
    println!("stats: {:?}", engine.stats());
    // brute_force feeds brute_success and does not alert on its own.
    for id in ["spray", "brute_success", "vip_access", "grant_then_use"] {
        assert!(smoke || by_rule.contains_key(id), "rule {id} never fired");
    }

    // 2. From stored bytes: parse + validate the entry, then evaluate (what
    //    a ledger consumer does).
    let mut engine = Engine::new(Arc::clone(&rules), cfg);
    let mut alerts2 = Vec::new();
    let t = Instant::now();
    for (i, b) in bytes.iter().enumerate() {
        let e = Entry::from_canonical_bytes(b).expect("entry");
        engine.process(i as u64, &e, &mut alerts2);
    }
    engine.flush(&mut alerts2);
    let secs2 = t.elapsed().as_secs_f64();
    assert_eq!(alerts, alerts2, "same input, same alerts");
    let t = Instant::now();
    for b in &bytes {
        std::hint::black_box(Entry::from_canonical_bytes(b).expect("entry"));
    }
    let parse = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for b in &bytes {
        std::hint::black_box(serde_json::from_slice::<Entry>(b).expect("entry"));
    }
    let plain = t.elapsed().as_secs_f64();
    println!(
        "Entry::from_canonical_bytes + engine.process: {:.0} events/s; from_canonical_bytes alone {:.0} events/s; serde_json::from_slice::<Entry> alone {:.0} events/s",
        n as f64 / secs2,
        n as f64 / parse,
        n as f64 / plain
    );

    // 3. The service's path: stored bytes through the shipped rule pack
    //    (`rules/`), as the detector runs it, against the parse it used
    //    before (an owned `Entry`). Rounds alternate so both see the same
    //    machine load; medians are reported.
    service_path(&bytes, smoke);
}

/// Events per second (wall) and per CPU second of `f` over `n` events.
fn timed(n: usize, f: impl FnOnce()) -> (f64, f64) {
    let cpu0 = cpu_secs();
    let t = Instant::now();
    f();
    let wall = t.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu0;
    (n as f64 / wall, n as f64 / cpu.max(0.01))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn service_path(bytes: &[Vec<u8>], smoke: bool) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let rules = Arc::new(RuleSet::load_dir(&dir).expect("shipped rule pack loads"));
    println!(
        "shipped pack ({}): {} detection rules, {} correlations",
        dir.display(),
        rules.detection_rules().count(),
        rules.correlation_rules().count()
    );
    let n = bytes.len();
    let rounds = if smoke {
        1
    } else {
        env_u64("SEALTRAIL_BENCH_ROUNDS", 3) as usize
    };
    let cfg = EngineConfig::default();
    let run_owned = |alerts: &mut Vec<AlertCandidate>| {
        let mut engine = Engine::new(Arc::clone(&rules), cfg.clone());
        for (i, b) in bytes.iter().enumerate() {
            let e = Entry::from_ledger_bytes(b).expect("entry");
            engine.process(i as u64, &e, alerts);
        }
        engine.flush(alerts);
    };
    let run_view = |alerts: &mut Vec<AlertCandidate>| {
        let mut engine = Engine::new(Arc::clone(&rules), cfg.clone());
        for (i, b) in bytes.iter().enumerate() {
            let e = EntryView::from_ledger_bytes(b).expect("entry");
            engine.process_view(i as u64, &e, alerts);
        }
        engine.flush(alerts);
    };
    let mut results: BTreeMap<&str, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    let mut record = |name, (wall, cpu): (f64, f64)| {
        let r = results.entry(name).or_default();
        r.0.push(wall);
        r.1.push(cpu);
    };
    let mut a1 = Vec::new();
    let mut a2 = Vec::new();
    if std::env::var("SEALTRAIL_BENCH_PATH").is_ok_and(|v| v == "view") {
        // Profiling: only the detector's path.
        let r = timed(n, || run_view(&mut a2));
        println!(
            "view path: {:.0} events/s wall, {:.0} per cpu second",
            r.0, r.1
        );
        return;
    }
    for _ in 0..rounds {
        a1.clear();
        a2.clear();
        record(
            "Entry::from_ledger_bytes + process (before)",
            timed(n, || run_owned(&mut a1)),
        );
        record(
            "EntryView::from_ledger_bytes + process_view (detector now)",
            timed(n, || run_view(&mut a2)),
        );
        record(
            "Entry::from_ledger_bytes alone",
            timed(n, || {
                for b in bytes {
                    std::hint::black_box(Entry::from_ledger_bytes(b).expect("entry"));
                }
            }),
        );
        record(
            "EntryView::from_ledger_bytes alone",
            timed(n, || {
                for b in bytes {
                    std::hint::black_box(EntryView::from_ledger_bytes(b).expect("entry"));
                }
            }),
        );
    }
    assert_eq!(a1, a2, "same bytes, same alerts either way");
    let mut by_rule: BTreeMap<&str, usize> = BTreeMap::new();
    for a in &a2 {
        *by_rule.entry(a.title.as_str()).or_default() += 1;
    }
    println!("shipped pack alerts: {} {:?}", a2.len(), by_rule);
    for (name, (wall, cpu)) in results {
        println!(
            "{name}: median of {rounds}: {:.0} events/s wall, {:.0} events per cpu second",
            median(wall),
            median(cpu)
        );
    }
}

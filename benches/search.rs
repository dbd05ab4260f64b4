//! Search benchmark (issue: search). On a generated year of a practice's
//! audit events, in one run and side by side with PostgreSQL holding the same
//! events in an indexed "audit table":
//! - indexing throughput (events/s) of the sealtrail indexer over the ledger,
//!   beside PostgreSQL's COPY + CREATE INDEX of the same rows,
//! - bytes per event: ledger + index versus table + indexes,
//! - p50/p99 latency of four analyst queries (q1..q4, see `Queries`),
//! - ingest-to-searchable delay of the real `sealtrail serve` at 10,000
//!   events/s (when the server has `GET /v1/search`).
//!
//! Run: `bash bench/search-postgres.sh` (prints `SEALTRAIL_PG=...`), then
//! `SEALTRAIL_PG=... cargo bench --bench search`. Env: SEALTRAIL_BENCH_EVENTS
//! (default 10,000,000), SEALTRAIL_BENCH_QUERIES (per query, default 200),
//! SEALTRAIL_BENCH_NRT_ONLY (run only the ingest-to-searchable phase),
//! SEALTRAIL_BENCH_DIR (default ./target/bench-search),
//! SEALTRAIL_BENCH_NRT_SECONDS (default 20). Without `--bench` (as under
//! `cargo test --all-targets`) a smoke run of 50,000 events checks that the
//! benchmark still works; it skips PostgreSQL when SEALTRAIL_PG is unset.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)] // test code

use rand::distributions::{Distribution, WeightedIndex};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sealtrail::event::{
    Actor, Category, Entry, Event, Outcome, Patient, Resource, Source, Timestamp, Via,
};
use sealtrail::index::{AggRequest, Indexer, SearchIndex, SearchRequest, index_dir};
use sealtrail::ledger::compactor::{Compaction, CompactorOptions};
use sealtrail::ledger::keys::NoteSigner;
use sealtrail::ledger::log::{Ledger, LedgerEntry, LedgerPaths, SealPolicy};
use serde_json::{Map, Value};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
#[path = "support/serve.rs"]
mod serve;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const SEED: u64 = 0x5ea1_7a11;
const BATCH: usize = 1000;
const USERS: usize = 300;
const PATIENTS: u32 = 50_000;
const DAY_MS: i64 = 86_400_000;
/// 2025-12-01T00:00:00Z: the generated year starts here.
const START_MS: i64 = 1_764_547_200_000;
const SPAN_MS: i64 = 365 * DAY_MS;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------
// The practice and its events.

const ROLES: [(&str, &str, u32); 8] = [
    // (role, department, head count)
    ("physician", "clinical", 55),
    ("nurse", "clinical", 85),
    ("medical_assistant", "clinical", 50),
    ("front_desk", "front_office", 40),
    ("billing", "billing", 30),
    ("lab_tech", "laboratory", 15),
    ("radiology_tech", "radiology", 10),
    ("it_admin", "it", 15),
];

/// (resource type, words used in messages)
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

/// Words q4 looks for: common and rare, none a substring of another word in
/// any message, so `ILIKE '%word%'` and the tokenized match count the same.
const WORDS: [&str; 12] = [
    "encounter",
    "immunization",
    "allergy",
    "discharge",
    "referral",
    "insurance",
    "imaging",
    "printed",
    "exported",
    "glass",
    "password",
    "lockout",
];

const SYSTEMS: [(&str, &str); 4] = [
    ("ehr", "10.20.0.5"),
    ("pacs", "10.20.0.6"),
    ("lis", "10.20.0.7"),
    ("sso", "10.20.0.2"),
];

struct User {
    name: String,
    role: &'static str,
    ip: String,
}

struct Practice {
    users: Vec<User>,
    /// Activity weight of each user (some are much busier than others).
    activity: WeightedIndex<u32>,
    /// Addresses that guess passwords.
    attackers: Vec<String>,
}

impl Practice {
    fn new() -> Practice {
        let mut rng = ChaCha8Rng::seed_from_u64(SEED);
        let mut users = Vec::with_capacity(USERS);
        let mut weights = Vec::with_capacity(USERS);
        for (r, &(role, _dept, count)) in ROLES.iter().enumerate() {
            for k in 0..count {
                let n = users.len() + 1;
                users.push(User {
                    name: format!("u{n:04}"),
                    role,
                    ip: format!("10.20.{}.{}", 10 + r, 10 + k),
                });
                weights.push(match role {
                    "physician" | "nurse" | "medical_assistant" => rng.gen_range(20..100),
                    "front_desk" | "billing" => rng.gen_range(10..60),
                    _ => rng.gen_range(2..20),
                });
            }
        }
        assert_eq!(users.len(), USERS);
        let attackers = (0..200)
            .map(|_| {
                format!(
                    "{}.{}.{}.{}",
                    rng.gen_range(23..223),
                    rng.gen_range(0..256),
                    rng.gen_range(0..256),
                    rng.gen_range(1..255)
                )
            })
            .collect();
        Practice {
            users,
            activity: WeightedIndex::new(weights).expect("weights"),
            attackers,
        }
    }
}

/// A patient id from the practice's skewed distribution (a few patients
/// with many visits, a long tail with few).
fn patient(rng: &mut ChaCha8Rng) -> String {
    let u: f64 = rng.r#gen();
    format!("MRN-{:07}", (u * u * PATIENTS as f64) as u32 + 1)
}

/// One generated event with exactly the columns of the PostgreSQL table.
struct Gen {
    time_ms: i64,
    category: Category,
    action: &'static str,
    outcome: Outcome,
    user: String,
    role: Option<&'static str>,
    ip: String,
    patient: Option<String>,
    resource: Option<(&'static str, String)>,
    system: usize,
    reason: Option<&'static str>,
    target_user: Option<String>,
    message: String,
    attrs: Option<Map<String, Value>>,
}

/// Deterministic stream of `n` events, evenly spread over the year in
/// arrival (= ledger index) order.
struct Generator<'a> {
    p: &'a Practice,
    rng: ChaCha8Rng,
    i: u64,
    n: u64,
}

impl<'a> Generator<'a> {
    fn new(p: &'a Practice, n: u64) -> Generator<'a> {
        Generator {
            p,
            rng: ChaCha8Rng::seed_from_u64(SEED + 1),
            i: 0,
            n,
        }
    }
}

fn time_of(i: u64, n: u64) -> i64 {
    START_MS + (i as i128 * SPAN_MS as i128 / n as i128) as i64
}

impl Iterator for Generator<'_> {
    type Item = Gen;

    fn next(&mut self) -> Option<Gen> {
        if self.i >= self.n {
            return None;
        }
        let time_ms = time_of(self.i, self.n);
        self.i += 1;
        let rng = &mut self.rng;
        let u = &self.p.users[self.p.activity.sample(rng)];
        let mut g = Gen {
            time_ms,
            category: Category::Access,
            action: "view",
            outcome: Outcome::Success,
            user: u.name.clone(),
            role: Some(u.role),
            ip: u.ip.clone(),
            patient: None,
            resource: None,
            system: 0,
            reason: None,
            target_user: None,
            message: String::new(),
            attrs: None,
        };
        let roll: f64 = rng.r#gen();
        if roll < 0.125 {
            // Authentication through the practice's single sign-on.
            g.category = Category::Auth;
            g.system = 3;
            let kind: f64 = rng.r#gen();
            if kind < 0.50 {
                g.action = "login";
                g.message = "User signed in".into();
            } else if kind < 0.62 {
                g.action = "login";
                g.outcome = Outcome::Failure;
                if rng.gen_bool(0.4) {
                    // password guessing from outside, often unknown names
                    g.ip = self.p.attackers[rng.gen_range(0..self.p.attackers.len())].clone();
                    if rng.gen_bool(0.5) {
                        g.user = format!("admin{}", rng.gen_range(0..50));
                        g.role = None;
                        g.message = "Sign-in failed: unknown user".into();
                    } else {
                        g.message = "Sign-in failed: wrong password".into();
                    }
                } else {
                    g.message = "Sign-in failed: wrong password".into();
                }
            } else if kind < 0.95 {
                g.action = "logout";
                g.message = "User signed out".into();
            } else if kind < 0.99 {
                g.action = "password_change";
                g.message = "User changed password".into();
            } else {
                g.action = "account_lockout";
                g.outcome = Outcome::Failure;
                g.message = "Account lockout after repeated failures".into();
            }
        } else if roll < 0.995 {
            g.patient = Some(patient(rng));
            let (r, verb, action) = {
                let a: f64 = rng.r#gen();
                let r = rng.gen_range(0..RESOURCES.len());
                if a < 0.80 {
                    (r, "Viewed", "view")
                } else if a < 0.90 {
                    (r, "Updated", "update")
                } else if a < 0.93 {
                    (r, "Created", "create")
                } else if a < 0.97 {
                    (r, "Printed", "print")
                } else if a < 0.995 {
                    (r, "Exported", "export")
                } else {
                    (0, "Emergency access (break glass) to", "break_glass")
                }
            };
            g.action = action;
            let (kind, words) = RESOURCES[r];
            g.resource = Some((
                kind,
                format!("{}-{:08}", &kind[..3], rng.gen_range(0..1u32 << 26)),
            ));
            g.system = match kind {
                "imaging_report" => 1,
                "lab_result" => 2,
                _ => 0,
            };
            g.reason = Some(match (action, u.role) {
                ("break_glass", _) => "break_glass",
                (_, "billing" | "front_desk") => "payment",
                (
                    _,
                    "physician" | "nurse" | "medical_assistant" | "lab_tech" | "radiology_tech",
                ) => "treatment",
                _ => "operations",
            });
            g.message = format!("{verb} {words}");
            if action == "print" || action == "export" {
                let mut m = Map::new();
                m.insert(
                    "format".into(),
                    Value::from(if action == "print" { "paper" } else { "pdf" }),
                );
                m.insert("pages".into(), Value::from(rng.gen_range(1..40u32)));
                g.attrs = Some(m);
            }
        } else {
            // Administration of accounts.
            g.category = Category::Admin;
            g.system = 3;
            let target = &self.p.users[rng.gen_range(0..USERS)];
            g.target_user = Some(target.name.clone());
            let (action, message) = match rng.gen_range(0..4) {
                0 => (
                    "role_grant",
                    format!("Granted role {} to account", target.role),
                ),
                1 => (
                    "role_revoke",
                    format!("Revoked role {} from account", target.role),
                ),
                2 => ("user_disable", "Disabled account".to_owned()),
                _ => (
                    "permission_change",
                    "Changed permissions of account".to_owned(),
                ),
            };
            g.action = action;
            g.message = message;
        }
        Some(g)
    }
}

impl Gen {
    fn entry(&self, nth: u64) -> Entry {
        let event = Event {
            id: None,
            time: Timestamp::from_unix_ms(self.time_ms).expect("time"),
            category: self.category,
            action: self.action.to_owned(),
            outcome: self.outcome,
            actor: Some(Actor {
                user: Some(self.user.clone()),
                role: self.role.map(str::to_owned),
                ip: Some(self.ip.clone()),
                ..Actor::default()
            }),
            patient: self.patient.clone().map(|id| Patient { id }),
            resource: self.resource.as_ref().map(|(kind, id)| Resource {
                kind: (*kind).to_owned(),
                id: Some(id.clone()),
            }),
            target_user: self.target_user.clone(),
            source: Some(Source {
                system: SYSTEMS[self.system].0.to_owned(),
                host: None,
            }),
            reason: self.reason.map(str::to_owned),
            records: None,
            message: Some(self.message.clone()),
            attrs: self.attrs.clone(),
        };
        Entry {
            // acknowledged 5..1,004 ms after it happened
            received: Timestamp::from_unix_ms(self.time_ms + 5 + (nth * 7919) as i64 % 1000)
                .expect("time"),
            via: Via {
                kind: "http".into(),
                peer: Some(SYSTEMS[self.system].1.into()),
                principal: None,
            },
            event,
            enriched: None,
        }
    }

    /// `attrs` as the practice's table stores it: the event's attrs, plus
    /// `target_user`, which has no column of its own in that table.
    fn pg_attrs(&self) -> Option<String> {
        let mut attrs = self.attrs.clone();
        if let Some(target) = &self.target_user {
            attrs
                .get_or_insert_with(Map::new)
                .insert("target_user".into(), Value::from(target.as_str()));
        }
        attrs.map(|a| serde_json::to_string(&a).expect("json"))
    }

    /// One line of `COPY audit_events FROM STDIN` (text format). No
    /// generated value holds a tab, newline or backslash.
    fn copy_row(&self, idx: u64, out: &mut String) {
        let opt = |v: Option<&str>| v.unwrap_or("\\N").to_owned();
        let t = time::OffsetDateTime::from_unix_timestamp_nanos(self.time_ms as i128 * 1_000_000)
            .expect("time");
        let _ = writeln!(
            out,
            "{idx}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            t.format(&time::format_description::well_known::Rfc3339)
                .expect("rfc3339"),
            self.category.as_str(),
            self.action,
            self.outcome.as_str(),
            self.user,
            opt(self.role),
            self.ip,
            opt(self.patient.as_deref()),
            opt(self.resource.as_ref().map(|r| r.0)),
            opt(self.resource.as_ref().map(|r| r.1.as_str())),
            SYSTEMS[self.system].0,
            opt(self.reason),
            self.message,
            opt(self.pg_attrs().as_deref()),
        );
    }
}

// ---------------------------------------------------------------------------
// Measurements.

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn tree_bytes(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| tree_bytes(&e.path()))
                .sum()
        })
        .unwrap_or(0)
}

fn peak_rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        / 1024
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown cpu".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{} cores ({cpu}), {:.1} GiB RAM, Linux {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        mem as f64 / 1024.0 / 1024.0,
        kernel.trim()
    )
}

/// The parameters of one run of each query, drawn from a seeded RNG so both
/// systems get the same ones.
struct Params {
    /// q1: user, window end
    q1: Vec<(String, i64)>,
    /// q2: patient, window end
    q2: Vec<(String, i64)>,
    /// q3: window end
    q3: Vec<i64>,
    /// q4: word, window end
    q4: Vec<(&'static str, i64)>,
}

impl Params {
    fn new(p: &Practice, n: usize) -> Params {
        let mut rng = ChaCha8Rng::seed_from_u64(SEED + 2);
        let end = START_MS + SPAN_MS;
        let within = |rng: &mut ChaCha8Rng, window: i64| rng.gen_range(START_MS + window..=end);
        Params {
            q1: (0..n)
                .map(|_| {
                    let u = p.users[rng.gen_range(0..USERS)].name.clone();
                    (u, within(&mut rng, 30 * DAY_MS))
                })
                .collect(),
            q2: (0..n)
                .map(|_| (patient(&mut rng), rng.gen_range(end - 30 * DAY_MS..=end)))
                .collect(),
            q3: (0..n).map(|_| within(&mut rng, DAY_MS)).collect(),
            q4: (0..n)
                .map(|_| {
                    (
                        WORDS[rng.gen_range(0..WORDS.len())],
                        within(&mut rng, 7 * DAY_MS),
                    )
                })
                .collect(),
        }
    }
}

/// What one query returned, compared between the systems.
#[derive(Debug, PartialEq)]
struct Answer {
    /// q1, q2: rows returned; q3: groups; q4: rows returned
    rows: u64,
    /// q1: newest index; q2: rows; q3: sum of counts; q4: total matches
    check: u64,
}

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_unix_ms(ms).expect("time")
}

struct Sealtrail {
    index: SearchIndex,
}

impl Sealtrail {
    fn q1(&self, user: &str, end: i64) -> Answer {
        let r = self
            .index
            .search(&SearchRequest {
                q: format!("actor.user:{user}"),
                from: Some(ts(end - 30 * DAY_MS)),
                to: Some(ts(end)),
                limit: 100,
                ..SearchRequest::default()
            })
            .expect("q1");
        Answer {
            rows: r.hits.len() as u64,
            check: r.hits.first().map_or(0, |h| h.index),
        }
    }

    fn q2(&self, patient: &str, end: i64) -> Answer {
        // One pass, as the patient-access report and exports fetch.
        let hits = self
            .index
            .search_all(
                &SearchRequest {
                    q: format!("patient.id:\"{patient}\" AND category:access"),
                    from: Some(ts(end - 365 * DAY_MS)),
                    to: Some(ts(end)),
                    ..SearchRequest::default()
                },
                1_000_000,
            )
            .expect("q2");
        let rows = hits.len() as u64;
        std::hint::black_box(&hits);
        Answer { rows, check: rows }
    }

    fn q3(&self, end: i64) -> Answer {
        let r = self
            .index
            .search(&SearchRequest {
                q: "action:login AND outcome:failure".into(),
                from: Some(ts(end - DAY_MS)),
                to: Some(ts(end)),
                limit: 0,
                cursor: None,
                aggs: vec![AggRequest::Terms {
                    field: "actor.ip".into(),
                    size: 100,
                }],
            })
            .expect("q3");
        let buckets = r.aggs[0]["buckets"].as_array().cloned().unwrap_or_default();
        Answer {
            rows: buckets.len() as u64,
            check: buckets
                .iter()
                .map(|b| b["doc_count"].as_u64().unwrap_or(0))
                .sum(),
        }
    }

    fn q4(&self, word: &str, end: i64) -> Answer {
        let r = self
            .index
            .search(&SearchRequest {
                q: format!("message:{word}"),
                from: Some(ts(end - 7 * DAY_MS)),
                to: Some(ts(end)),
                limit: 100,
                ..SearchRequest::default()
            })
            .expect("q4");
        Answer {
            rows: r.hits.len() as u64,
            check: r.total,
        }
    }
}

// ---------------------------------------------------------------------------
// PostgreSQL.

struct Pg {
    client: postgres::Client,
    q1: postgres::Statement,
    q2: postgres::Statement,
    q3: postgres::Statement,
    q4: postgres::Statement,
}

const PG_COLUMNS: &str = "idx, time, category, action, outcome, actor_user, actor_role, actor_ip, patient_id, resource_type, resource_id, source_system, reason, message, attrs";

fn sys(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms as u64)
}

/// Decodes every column of a row, as an application showing it would.
fn pg_row(row: &postgres::Row) -> u64 {
    let idx: i64 = row.get(0);
    let _: SystemTime = row.get(1);
    for c in [2, 3, 4, 5] {
        let _: &str = row.get(c);
    }
    let _: Option<&str> = row.get(6);
    let _: std::net::IpAddr = row.get(7);
    for c in 8..=12 {
        let _: Option<&str> = row.get(c);
    }
    let _: &str = row.get(13);
    let _: Option<Value> = row.get(14);
    idx as u64
}

impl Pg {
    fn connect(url: &str) -> Pg {
        let mut client =
            postgres::Client::connect(url, postgres::NoTls).expect("connect to SEALTRAIL_PG");
        client
            .batch_execute(
                "DROP TABLE IF EXISTS audit_events;
                 CREATE TABLE audit_events (
                    idx bigint PRIMARY KEY,
                    time timestamptz NOT NULL,
                    category text NOT NULL,
                    action text NOT NULL,
                    outcome text NOT NULL,
                    actor_user text,
                    actor_role text,
                    actor_ip inet,
                    patient_id text,
                    resource_type text,
                    resource_id text,
                    source_system text,
                    reason text,
                    message text,
                    attrs jsonb);
                 ALTER TABLE audit_events DROP CONSTRAINT audit_events_pkey;",
            )
            .expect("create table");
        let q = |c: &mut postgres::Client, sql: &str| c.prepare(sql).expect("prepare");
        // prepared after the table exists (the statements need its columns)
        let q1 = q(
            &mut client,
            &format!(
                "SELECT {PG_COLUMNS} FROM audit_events WHERE actor_user = $1 AND time >= $2 AND time < $3 ORDER BY time DESC LIMIT 100"
            ),
        );
        let q2 = q(
            &mut client,
            &format!(
                "SELECT {PG_COLUMNS} FROM audit_events WHERE patient_id = $1 AND category = 'access' AND time >= $2 AND time < $3 ORDER BY time DESC"
            ),
        );
        let q3 = q(
            &mut client,
            "SELECT actor_ip, count(*) FROM audit_events WHERE action = 'login' AND outcome = 'failure' AND time >= $1 AND time < $2 GROUP BY actor_ip ORDER BY count(*) DESC, actor_ip LIMIT 100",
        );
        let q4 = q(
            &mut client,
            &format!(
                "SELECT {PG_COLUMNS}, count(*) OVER () FROM audit_events WHERE time >= $1 AND time < $2 AND message ILIKE $3 ORDER BY time DESC LIMIT 100"
            ),
        );
        Pg {
            client,
            q1,
            q2,
            q3,
            q4,
        }
    }

    /// Loads the events with COPY, then builds the indexes; returns (COPY
    /// seconds, index build seconds).
    fn load(&mut self, p: &Practice, n: u64) -> (f64, f64) {
        let start = Instant::now();
        let mut w = self
            .client
            .copy_in(&format!("COPY audit_events ({PG_COLUMNS}) FROM STDIN"))
            .expect("copy in");
        let mut buf = String::with_capacity(1 << 20);
        for (idx, g) in Generator::new(p, n).enumerate() {
            g.copy_row(idx as u64, &mut buf);
            if buf.len() > (1 << 20) - 4096 {
                w.write_all(buf.as_bytes()).expect("copy");
                buf.clear();
            }
        }
        w.write_all(buf.as_bytes()).expect("copy");
        w.finish().expect("copy finish");
        let copy = start.elapsed().as_secs_f64();
        let start = Instant::now();
        self.client
            .batch_execute(
                "ALTER TABLE audit_events ADD PRIMARY KEY (idx);
                 CREATE INDEX audit_user_time ON audit_events (actor_user, time DESC);
                 CREATE INDEX audit_patient_time ON audit_events (patient_id, time);
                 CREATE INDEX audit_action_outcome_time ON audit_events (action, outcome, time);
                 CREATE INDEX audit_time ON audit_events (time);",
            )
            .expect("indexes");
        // VACUUM cannot run in the implicit transaction of a multi-statement batch
        self.client
            .batch_execute("VACUUM (ANALYZE) audit_events")
            .expect("vacuum analyze");
        (copy, start.elapsed().as_secs_f64())
    }

    /// (table bytes, index bytes, total bytes)
    fn sizes(&mut self) -> (u64, u64, u64) {
        let row = self
            .client
            .query_one(
                "SELECT pg_table_size('audit_events'), pg_indexes_size('audit_events'), pg_total_relation_size('audit_events')",
                &[],
            )
            .expect("sizes");
        let g = |i| row.get::<_, i64>(i) as u64;
        (g(0), g(1), g(2))
    }

    fn version(&mut self) -> String {
        self.client
            .query_one("SELECT version()", &[])
            .map(|r| r.get::<_, String>(0))
            .unwrap_or_default()
    }

    fn q1(&mut self, user: &str, end: i64) -> Answer {
        let rows = self
            .client
            .query(&self.q1, &[&user, &sys(end - 30 * DAY_MS), &sys(end)])
            .expect("q1");
        let newest = rows.iter().map(pg_row).next().unwrap_or(0);
        rows.iter().skip(1).for_each(|r| {
            pg_row(r);
        });
        Answer {
            rows: rows.len() as u64,
            check: newest,
        }
    }

    fn q2(&mut self, patient: &str, end: i64) -> Answer {
        let rows = self
            .client
            .query(&self.q2, &[&patient, &sys(end - 365 * DAY_MS), &sys(end)])
            .expect("q2");
        rows.iter().for_each(|r| {
            pg_row(r);
        });
        Answer {
            rows: rows.len() as u64,
            check: rows.len() as u64,
        }
    }

    fn q3(&mut self, end: i64) -> Answer {
        let rows = self
            .client
            .query(&self.q3, &[&sys(end - DAY_MS), &sys(end)])
            .expect("q3");
        Answer {
            rows: rows.len() as u64,
            check: rows.iter().map(|r| r.get::<_, i64>(1) as u64).sum(),
        }
    }

    fn q4(&mut self, word: &str, end: i64) -> Answer {
        let rows = self
            .client
            .query(
                &self.q4,
                &[&sys(end - 7 * DAY_MS), &sys(end), &format!("%{word}%")],
            )
            .expect("q4");
        rows.iter().for_each(|r| {
            pg_row(r);
        });
        Answer {
            rows: rows.len() as u64,
            check: rows.first().map_or(0, |r| r.get::<_, i64>(15) as u64),
        }
    }
}

// ---------------------------------------------------------------------------

struct Latencies {
    name: &'static str,
    ours: Vec<f64>,
    theirs: Vec<f64>,
    agree: usize,
    disagree: Vec<String>,
    rows: u64,
}

fn time_ms<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let start = Instant::now();
    let r = f();
    (r, start.elapsed().as_secs_f64() * 1e3)
}

fn main() {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let n = if smoke {
        50_000
    } else {
        env_u64("SEALTRAIL_BENCH_EVENTS", 10_000_000)
    };
    let queries = if smoke {
        20
    } else {
        env_u64("SEALTRAIL_BENCH_QUERIES", 200) as usize
    };
    let pg_url = std::env::var("SEALTRAIL_PG").ok().filter(|v| !v.is_empty());
    if pg_url.is_none() && !smoke {
        eprintln!(
            "SEALTRAIL_PG is unset: run `bash bench/search-postgres.sh` and export what it prints"
        );
        std::process::exit(2);
    }
    let root = PathBuf::from(std::env::var("SEALTRAIL_BENCH_DIR").unwrap_or_else(|_| {
        if smoke {
            "target/bench-search-smoke".into()
        } else {
            "target/bench-search".into()
        }
    }));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).expect("bench dir");
    println!("machine: {}", machine());
    if std::env::var_os("SEALTRAIL_BENCH_NRT_ONLY").is_some() {
        // Only the ingest-to-searchable phase (it needs no generated data).
        ingest_to_searchable(&root, smoke);
        return;
    }
    println!(
        "events: {n} generated (seed {SEED:#x}): {USERS} users, {PATIENTS} patients, one year from 2025-12-01; {queries} runs per query"
    );
    let practice = Practice::new();

    // 1. sealtrail: append to the ledger (1,000-event durable batches).
    let data = root.join("data");
    let start = Instant::now();
    let mut entry_bytes = 0u64;
    {
        let signer = NoteSigner::generate("bench.example/log").expect("key");
        let (mut ledger, _) =
            Ledger::open(&data, signer, SealPolicy::default()).expect("open ledger");
        let mut batch = Vec::with_capacity(BATCH);
        for (i, g) in Generator::new(&practice, n).enumerate() {
            let entry = g.entry(i as u64);
            if i % 997 == 0 {
                entry.event.validate().expect("generated events are valid");
            }
            let bytes = entry.canonical_bytes();
            entry_bytes += bytes.len() as u64;
            batch.push(LedgerEntry {
                time_ms: g.time_ms,
                bytes,
            });
            if batch.len() == BATCH {
                ledger.append(&batch).expect("append");
                batch.clear();
            }
        }
        if !batch.is_empty() {
            ledger.append(&batch).expect("append");
        }
        ledger.seal().expect("seal");
    }
    println!(
        "ledger: {n} events appended in {:.1} s including generation; canonical entries average {:.0} bytes",
        start.elapsed().as_secs_f64(),
        entry_bytes as f64 / n as f64
    );
    // As the service's compactor does after each seal: sealed segments
    // become per-entry zstd frames with a shared dictionary.
    let start = Instant::now();
    let compacted = Compaction::new(LedgerPaths::new(&data), CompactorOptions::default())
        .pass(&|| false)
        .expect("compaction");
    println!(
        "ledger compaction: {compacted} segments in {:.1} s",
        start.elapsed().as_secs_f64()
    );

    // 2. sealtrail: index the ledger (the service's indexer, committing every
    //    100,000 events, merges included: `close` waits for them).
    let idx_dir = index_dir(&data);
    let start = Instant::now();
    let mut indexer = Indexer::open(&idx_dir, &data).expect("open indexer");
    loop {
        let added = indexer.catch_up_bounded(n, 100_000).expect("index");
        indexer.commit().expect("commit");
        if added == 0 || indexer.cursor() >= n {
            break;
        }
    }
    assert_eq!(indexer.cursor(), n, "indexed every event");
    indexer.close().expect("close indexer");
    let index_secs = start.elapsed().as_secs_f64();
    let ledger_bytes = tree_bytes(&data.join("ledger"));
    let index_bytes = tree_bytes(&idx_dir);
    let segments = std::fs::read_dir(&idx_dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "store"))
                .count()
        })
        .unwrap_or(0);
    println!(
        "sealtrail indexing: {:.0} events/s ({n} events in {index_secs:.1} s, 1 writer thread, {segments} segments after merges; peak rss of the bench process so far {} MiB)",
        n as f64 / index_secs,
        peak_rss_mib()
    );
    println!(
        "sealtrail bytes/event: ledger {:.1} + index {:.1} = {:.1} ({:.2} GB total)",
        ledger_bytes as f64 / n as f64,
        index_bytes as f64 / n as f64,
        (ledger_bytes + index_bytes) as f64 / n as f64,
        (ledger_bytes + index_bytes) as f64 / 1e9
    );
    let ours_total = ledger_bytes + index_bytes;

    // 3. PostgreSQL: the same events in the practice's audit table.
    let mut pg = pg_url.as_deref().map(Pg::connect);
    if let Some(pg) = pg.as_mut() {
        println!("postgresql: {}", pg.version());
        let (copy, build) = pg.load(&practice, n);
        let (table, indexes, total) = pg.sizes();
        println!(
            "postgresql load: COPY {:.0} events/s ({copy:.1} s), then primary key + 4 indexes + VACUUM ANALYZE in {build:.1} s: {:.0} events/s overall",
            n as f64 / copy,
            n as f64 / (copy + build)
        );
        println!(
            "postgresql bytes/event: table {:.1} + indexes {:.1} = {:.1} ({:.2} GB total); sealtrail/postgresql = {:.2}",
            table as f64 / n as f64,
            indexes as f64 / n as f64,
            total as f64 / n as f64,
            total as f64 / 1e9,
            ours_total as f64 / total as f64
        );
    } else {
        println!("postgresql: skipped (SEALTRAIL_PG unset; smoke run only)");
    }

    // 4. The four analyst queries, side by side with the same parameters,
    //    alternating which system goes first.
    let ours = Sealtrail {
        index: SearchIndex::open(&idx_dir, &data).expect("open search index"),
    };
    let params = Params::new(&practice, queries);
    let warm = queries.min(10);
    let mut results: Vec<Latencies> = ["q1", "q2", "q3", "q4"]
        .into_iter()
        .map(|name| Latencies {
            name,
            ours: Vec::new(),
            theirs: Vec::new(),
            agree: 0,
            disagree: Vec::new(),
            rows: 0,
        })
        .collect();
    for i in 0..warm + queries {
        let k = i % queries;
        for (q, lat) in results.iter_mut().enumerate() {
            let run_ours = |s: &Sealtrail| match q {
                0 => s.q1(&params.q1[k].0, params.q1[k].1),
                1 => s.q2(&params.q2[k].0, params.q2[k].1),
                2 => s.q3(params.q3[k]),
                _ => s.q4(params.q4[k].0, params.q4[k].1),
            };
            let run_pg = |p: &mut Pg| match q {
                0 => p.q1(&params.q1[k].0, params.q1[k].1),
                1 => p.q2(&params.q2[k].0, params.q2[k].1),
                2 => p.q3(params.q3[k]),
                _ => p.q4(params.q4[k].0, params.q4[k].1),
            };
            let ((a, ta), theirs) = if i % 2 == 0 {
                let a = time_ms(|| run_ours(&ours));
                (a, pg.as_mut().map(|p| time_ms(|| run_pg(p))))
            } else {
                let b = pg.as_mut().map(|p| time_ms(|| run_pg(p)));
                (time_ms(|| run_ours(&ours)), b)
            };
            if i < warm {
                continue;
            }
            lat.ours.push(ta);
            lat.rows += a.rows;
            if let Some((b, tb)) = theirs {
                lat.theirs.push(tb);
                if a == b {
                    lat.agree += 1;
                } else if lat.disagree.len() < 3 {
                    lat.disagree
                        .push(format!("run {k}: sealtrail {a:?}, postgresql {b:?}"));
                }
            }
        }
    }
    let what = [
        "q1 actor.user:U, last 30 days, newest 100 events",
        "q2 patient.id:P AND category:access, one year, every event",
        "q3 action:login AND outcome:failure, last 24 h, count by actor.ip",
        "q4 message:WORD, last 7 days, newest 100 events + total",
    ];
    for (lat, what) in results.iter_mut().zip(what) {
        let (o50, o99) = (
            percentile(&mut lat.ours, 0.5),
            percentile(&mut lat.ours, 0.99),
        );
        let rows = lat.rows as f64 / lat.ours.len() as f64;
        if lat.theirs.is_empty() {
            println!(
                "{}: {what}: sealtrail p50 {o50:.2} ms p99 {o99:.2} ms ({rows:.0} rows/groups per run)",
                lat.name
            );
            continue;
        }
        let (t50, t99) = (
            percentile(&mut lat.theirs, 0.5),
            percentile(&mut lat.theirs, 0.99),
        );
        println!(
            "{}: {what}: sealtrail p50 {o50:.2} ms p99 {o99:.2} ms | postgresql p50 {t50:.2} ms p99 {t99:.2} ms | p99 postgresql/sealtrail {:.1}x | {rows:.0} rows/groups per run; answers agree in {}/{}",
            lat.name,
            t99 / o99,
            lat.agree,
            lat.ours.len()
        );
        for d in &lat.disagree {
            println!("  differs: {d}");
        }
    }
    drop(ours);
    drop(pg);

    // 5. Ingest-to-searchable with the real server.
    ingest_to_searchable(&root, smoke);
    println!("peak rss of the bench process: {} MiB", peak_rss_mib());
    if std::env::var_os("SEALTRAIL_BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&root);
    }
}

fn ingest_to_searchable(root: &Path, smoke: bool) {
    let nrt_seconds = if smoke {
        3
    } else {
        env_u64("SEALTRAIL_BENCH_NRT_SECONDS", 20)
    };
    nrt::run(
        &root.join("nrt"),
        nrt_seconds,
        if smoke { 2_000 } else { 10_000 },
    );
}

mod nrt {
    //! Ingest-to-searchable: posts events at a fixed rate to `sealtrail
    //! serve` and polls `GET /v1/search?q=id:MARKER` for one marker per
    //! batch until it is found.

    use super::*;
    use std::collections::VecDeque;
    use std::sync::mpsc;

    /// A client sending the bench server's token.
    fn authed_client() -> reqwest::blocking::Client {
        reqwest::blocking::Client::builder()
            .default_headers(
                [(
                    reqwest::header::AUTHORIZATION,
                    serve::bearer().parse().expect("header"),
                )]
                .into_iter()
                .collect(),
            )
            .build()
            .expect("client")
    }

    /// `total` of `GET /v1/search?q=...`, or the status when it is not 200.
    fn search_total(http: &reqwest::blocking::Client, addr: &str, q: &str) -> Result<u64, String> {
        let resp = http
            .get(format!("http://{addr}/v1/search"))
            .query(&[("q", q), ("limit", "1")])
            .send()
            .map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("status {}", resp.status()));
        }
        let v: Value = resp.json().map_err(|e| e.to_string())?;
        v["total"]
            .as_u64()
            .ok_or_else(|| format!("no total in {v}"))
    }

    pub fn run(dir: &Path, seconds: u64, rate: u64) {
        std::fs::create_dir_all(dir).expect("dir");
        let bin = PathBuf::from(env!("CARGO_BIN_EXE_sealtrail"));
        let server = serve::start(&bin, dir);
        let http = authed_client();
        if let Err(e) = search_total(&http, &server.addr, "*") {
            println!(
                "ingest-to-searchable: skipped: this `sealtrail serve` does not answer GET /v1/search ({e}); it needs the indexer running inside serve"
            );
            serve::stop(server);
            return;
        }
        let p = Practice::new();
        let batches = seconds * rate / BATCH as u64;
        let interval = Duration::from_secs_f64(BATCH as f64 / rate as f64);
        let (tx, rx) = mpsc::channel::<(String, Instant)>();
        let addr = server.addr.clone();
        let poller = std::thread::spawn(move || {
            let http = authed_client();
            let mut pending: VecDeque<(String, Instant)> = VecDeque::new();
            let mut delays = Vec::new();
            let mut open = true;
            while open || !pending.is_empty() {
                loop {
                    match rx.try_recv() {
                        Ok(m) => pending.push_back(m),
                        Err(mpsc::TryRecvError::Empty) => break,
                        Err(mpsc::TryRecvError::Disconnected) => {
                            open = false;
                            break;
                        }
                    }
                }
                // one round over every pending marker
                let mut still = VecDeque::with_capacity(pending.len());
                for (marker, acked) in pending.drain(..) {
                    match search_total(&http, &addr, &format!("id:{marker}")) {
                        Ok(t) if t > 0 => delays.push(acked.elapsed().as_secs_f64() * 1e3),
                        _ if acked.elapsed() > Duration::from_secs(60) => {
                            delays.push(f64::INFINITY)
                        }
                        _ => still.push_back((marker, acked)),
                    }
                }
                pending = still;
                std::thread::sleep(Duration::from_millis(5));
            }
            delays
        });
        let template: Vec<Event> = Generator::new(&p, BATCH as u64)
            .enumerate()
            .map(|(i, g)| g.entry(i as u64).event)
            .collect();
        let mut next = Instant::now();
        let mut acks = Vec::new();
        let start = Instant::now();
        for b in 0..batches {
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            }
            next += interval;
            let mut body = String::with_capacity(BATCH * 300);
            let marker = format!("mk{b:08}");
            let now = Timestamp::now().unix_ms();
            for (i, e) in template.iter().enumerate() {
                let mut e = e.clone();
                e.id = Some(if i == 0 {
                    marker.clone()
                } else {
                    format!("ev{b:08}x{i:04}")
                });
                e.time = Timestamp::from_unix_ms(now - 1000 + i as i64).expect("time");
                body.push_str(&serde_json::to_string(&e).expect("json"));
                body.push('\n');
            }
            let sent = Instant::now();
            let resp = http
                .post(format!("http://{}/v1/events", server.addr))
                .header("content-type", "application/x-ndjson")
                .body(body)
                .send()
                .expect("post");
            assert!(resp.status().is_success(), "post: {}", resp.status());
            let acked = Instant::now();
            acks.push((acked - sent).as_secs_f64() * 1e3);
            let _ = tx.send((marker, acked));
        }
        // the last batch's interval is part of the run
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        let elapsed = start.elapsed().as_secs_f64();
        drop(tx);
        let mut delays = poller.join().expect("poller");
        let lost = delays.iter().filter(|d| d.is_infinite()).count();
        println!(
            "ingest-to-searchable at {rate} events/s ({:.0} achieved, {} events, {} markers, poll round <= 5 ms + one search per pending marker): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms{}; ack p50 {:.1} ms p99 {:.1} ms",
            (batches * BATCH as u64) as f64 / elapsed,
            batches * BATCH as u64,
            delays.len(),
            percentile(&mut delays, 0.5),
            percentile(&mut delays, 0.99),
            percentile(&mut delays, 1.0),
            if lost > 0 {
                format!(", {lost} never found within 60 s")
            } else {
                String::new()
            },
            percentile(&mut acks, 0.5),
            percentile(&mut acks, 0.99),
        );
        serve::stop(server);
    }
}

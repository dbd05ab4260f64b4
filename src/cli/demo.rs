//! `sealtrail demo [--data DIR] [--listen ADDR]`: the newcomer's first
//! command. A fresh data directory with a generated signing key, two people
//! (an admin who also holds the reading roles, and an analyst), the rule
//! pack, `serve` in this process with one-time sign-in links on, and a
//! synthetic practice (`sealtrail gen`, incidents included) streamed in
//! through the HTTP ingest endpoint like any sender: the last hour at once,
//! then live, with current timestamps. Prints the console URL and a
//! one-time sign-in link; runs until Ctrl-C.

use crate::auth::people::{links, users};
use crate::auth::{Role, RoleSet, tokens};
use crate::config::{Config, RawConfig};
use crate::event::{Event, Timestamp};
use crate::r#gen as gen_;
use crate::ledger::keys;
use anyhow::{Context, Result, bail};
use rand_core::{OsRng, RngCore};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Practice time that passes per second of demo time.
pub const SPEEDUP: i64 = 60;
/// Demo time filled at once before the live stream starts.
pub const BACKFILL_MS: i64 = 60 * 60 * 1000;
/// Events in one ingest request.
const BATCH: usize = 500;
/// The signed-in admin (with the reading roles) and a plain analyst.
pub const ADMIN: &str = "admin";
pub const ANALYST: &str = "analyst";

/// The rule pack, embedded so the demo needs no checkout.
const RULE_PACK: &[(&str, &str)] = &[
    (
        "after_hours_access.yml",
        include_str!("../../rules/after_hours_access.yml"),
    ),
    (
        "audit_tampering.yml",
        include_str!("../../rules/audit_tampering.yml"),
    ),
    (
        "break_glass.yml",
        include_str!("../../rules/break_glass.yml"),
    ),
    (
        "coworker_record.yml",
        include_str!("../../rules/coworker_record.yml"),
    ),
    (
        "disabled_account_login.yml",
        include_str!("../../rules/disabled_account_login.yml"),
    ),
    (
        "dormant_account.yml",
        include_str!("../../rules/dormant_account.yml"),
    ),
    (
        "failed_login_burst.yml",
        include_str!("../../rules/failed_login_burst.yml"),
    ),
    (
        "large_export.yml",
        include_str!("../../rules/large_export.yml"),
    ),
    (
        "lockout_storm.yml",
        include_str!("../../rules/lockout_storm.yml"),
    ),
    (
        "login_after_failures.yml",
        include_str!("../../rules/login_after_failures.yml"),
    ),
    ("new_ip.yml", include_str!("../../rules/new_ip.yml")),
    (
        "password_spray.yml",
        include_str!("../../rules/password_spray.yml"),
    ),
    (
        "patient_volume.yml",
        include_str!("../../rules/patient_volume.yml"),
    ),
    (
        "phi_volume_baseline.yml",
        include_str!("../../rules/phi_volume_baseline.yml"),
    ),
    (
        "privilege_escalation.yml",
        include_str!("../../rules/privilege_escalation.yml"),
    ),
    (
        "same_last_name.yml",
        include_str!("../../rules/same_last_name.yml"),
    ),
    (
        "source_silent.yml",
        include_str!("../../rules/source_silent.yml"),
    ),
    (
        "vip_no_treatment.yml",
        include_str!("../../rules/vip_no_treatment.yml"),
    ),
    (
        "witness_refused.yml",
        include_str!("../../rules/witness_refused.yml"),
    ),
    (
        "playbooks/brute-force-page.yml",
        include_str!("../../rules/playbooks/brute-force-page.yml"),
    ),
    (
        "playbooks/page-oncall.yml",
        include_str!("../../rules/playbooks/page-oncall.yml"),
    ),
    (
        "playbooks/privacy-review.yml",
        include_str!("../../rules/playbooks/privacy-review.yml"),
    ),
    (
        "playbooks/record-only.yml",
        include_str!("../../rules/playbooks/record-only.yml"),
    ),
];

/// Where the demo keeps its files.
struct Layout {
    data: PathBuf,
    key_file: PathBuf,
    lookups: PathBuf,
    rules: PathBuf,
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// `dir`, which must be missing or empty; a new temporary folder when `None`.
fn fresh_dir(dir: Option<PathBuf>) -> Result<PathBuf> {
    let dir = match dir {
        Some(d) => d,
        None => std::env::temp_dir().join(format!("sealtrail-demo-{}", random_hex(6))),
    };
    match std::fs::read_dir(&dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "{} is not empty: the demo starts from a fresh data directory",
                    dir.display()
                );
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    }
    Ok(dir)
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Keys, rules, lookups and people in `dir`.
fn prepare(dir: &Path, practice: &gen_::Output) -> Result<Layout> {
    let layout = Layout {
        data: dir.to_path_buf(),
        key_file: dir.join("keys").join(keys::SIGNING_KEY_FILE),
        lookups: dir.join("lookups"),
        rules: dir.join("rules"),
    };
    std::fs::create_dir_all(dir.join("keys")).context("creating the key folder")?;
    keys::write_key_files(&dir.join("keys"), "localhost/sealtrail-demo")
        .context("creating the signing key")?;
    for (name, text) in RULE_PACK {
        write(&layout.rules.join(name), text)?;
    }
    write(&layout.lookups.join("staff.csv"), &practice.staff_csv)?;
    write(&layout.lookups.join("patients.csv"), &practice.patients_csv)?;
    write(&layout.lookups.join("networks.csv"), &practice.networks_csv)?;
    let reader_roles = RoleSet::of(&[Role::Admin, Role::Analyst, Role::Responder, Role::Auditor]);
    for (name, roles) in [
        (ADMIN, reader_roles),
        (ANALYST, RoleSet::of(&[Role::Analyst])),
    ] {
        // Nobody knows these passwords: people sign in with one-time links
        // (or after `sealtrail user reset`).
        users::add(dir, name, roles, &random_hex(24))
            .with_context(|| format!("adding the demo user {name}"))?;
    }
    Ok(layout)
}

fn config(layout: &Layout, listen: SocketAddr) -> Result<Config> {
    let mut raw = RawConfig {
        data_dir: layout.data.clone(),
        ..Default::default()
    };
    raw.ledger.key_file = layout.key_file.clone();
    raw.http.listen = listen;
    raw.syslog.listen = String::new();
    raw.lookups.dir = layout.lookups.clone();
    raw.rules.dir = layout.rules.clone();
    raw.console.sign_in_links = true;
    Config::validate(raw, Path::new("<demo>")).context("the demo configuration")
}

/// A synthetic practice of four days starting on a Monday at least a week
/// ago: the feed shows its first two and a half days at once, so whatever
/// today's weekday, the demo opens on working days (clinic hours, visits,
/// privacy incidents), not on a quiet weekend.
fn practice(seed: u64) -> Result<gen_::Output> {
    let day = 86_400_000;
    let start = Timestamp::from_unix_ms(first_monday_day(Timestamp::now().unix_ms() / day) * day)
        .map_err(|e| anyhow::anyhow!("start of the practice: {e}"))?;
    let config = gen_::GenConfig {
        days: 4,
        users: 150,
        patients: 2000,
        seed,
        start,
    };
    Ok(gen_::generate(&config)?)
}

/// The latest Monday (days since 1970-01-01) at least a week before `today`.
fn first_monday_day(today: i64) -> i64 {
    // 1970-01-01 was a Thursday: day 4, and every 7th after it, is a Monday.
    let week_ago = today - 7;
    week_ago - (week_ago - 4).rem_euclid(7)
}

/// Runs the demo; `seed` picks the practice (random when `None`).
pub fn run(dir: Option<PathBuf>, listen: SocketAddr, seed: Option<u64>) -> Result<ExitCode> {
    let dir = fresh_dir(dir)?;
    let seed = seed.unwrap_or_else(|| OsRng.next_u64() >> 16);
    let first = practice(seed)?;
    let layout = prepare(&dir, &first)?;
    let ingest = tokens::create(
        &layout.data,
        Some("demo-feed"),
        RoleSet::of(&[Role::Ingest]),
        None,
    )
    .context("creating the demo's ingest token")?
    .secret;
    let config = config(&layout, listen)?;
    // Alerts are the console's to show; the terminal keeps the URL readable.
    super::init_logging_at("warn,sealtrail::detect=error,sealtrail::response=error");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sealtrail")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        let signals = shutdown.clone();
        tokio::spawn(async move {
            crate::serve::wait_for_signal().await;
            eprintln!("stopping: draining and sealing");
            signals.cancel();
        });
        let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
        let feed = tokio::spawn(feed(bound_rx, ingest, first.events, seed, shutdown.clone()));
        let data = layout.data.clone();
        let result = crate::serve::run_until(config, shutdown.clone(), move |bound| {
            announce(&data, bound.http);
            let _ = bound_tx.send(bound.http);
        })
        .await;
        shutdown.cancel();
        let _ = feed.await;
        result
    })?;
    eprintln!("the demo's data stays in {}", dir.display());
    Ok(ExitCode::SUCCESS)
}

/// Prints the console's address and a one-time sign-in link for the admin
/// (a closed stdout is no reason to stop the demo).
fn announce(data: &Path, http: SocketAddr) {
    use std::io::Write;
    let url = format!("http://{http}");
    let link = links::mint(data, ADMIN, Timestamp::now().unix_ms());
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "sealtrail demo: data in {}", data.display());
    let _ = writeln!(out, "console:  {url}/");
    match link {
        Ok(token) => {
            let _ = writeln!(
                out,
                "sign in:  {url}/v1/session/link/{token}  (one use, 10 minutes)"
            );
        }
        Err(e) => eprintln!("could not make a sign-in link: {e}"),
    }
    let _ = writeln!(
        out,
        "more links: sealtrail user link --data {} NAME   (people: {ADMIN}, {ANALYST})",
        data.display()
    );
    let _ = writeln!(out, "stop with Ctrl-C");
    let _ = out.flush();
}

/// Streams the practice into the service: the first hour of demo time at
/// once, the rest as its time comes, each event stamped with the current
/// time (practice time runs [`SPEEDUP`] times faster). When a practice ends,
/// the next one (another seed) follows.
async fn feed(
    bound: tokio::sync::oneshot::Receiver<SocketAddr>,
    token: String,
    mut events: Vec<Event>,
    mut seed: u64,
    shutdown: CancellationToken,
) {
    let Ok(addr) = bound.await else { return };
    let endpoint = format!("http://{addr}/v1/events");
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "demo feed: no HTTP client");
            return;
        }
    };
    let mut anchor = Timestamp::now().unix_ms() - BACKFILL_MS;
    loop {
        let Some(first) = events.first().map(|e| e.time.unix_ms()) else {
            return;
        };
        let last = events.last().map_or(first, |e| e.time.unix_ms());
        let demo_time = |t: i64| anchor + (t - first) / SPEEDUP;
        let mut next = 0;
        while next < events.len() {
            let now = Timestamp::now().unix_ms();
            let mut batch = Vec::new();
            while next < events.len() && batch.len() < BATCH {
                let at = demo_time(events[next].time.unix_ms());
                if at > now {
                    break;
                }
                let mut e = events[next].clone();
                if let Ok(t) = Timestamp::from_unix_ms(at) {
                    e.time = t;
                }
                // Appointments say when the visit is: on the same clock, so
                // the privacy rules' explanations still line up.
                if let Some(v) = e.attrs.as_mut().and_then(|a| a.get_mut("scheduled_for"))
                    && let Some(t) = v.as_str().and_then(|s| Timestamp::parse(s).ok())
                    && let Ok(mapped) = Timestamp::from_unix_ms(demo_time(t.unix_ms()))
                {
                    *v = serde_json::Value::String(mapped.to_string());
                }
                batch.push(e);
                next += 1;
            }
            if batch.is_empty() {
                let wait = events
                    .get(next)
                    .map_or(0, |e| demo_time(e.time.unix_ms()) - now)
                    .clamp(10, 1000);
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
                }
                continue;
            }
            if !send(&client, &endpoint, &token, &batch, &shutdown).await {
                return;
            }
        }
        // The next practice picks up where this one's time ended.
        anchor = demo_time(last) + 1000;
        seed = seed.wrapping_add(1);
        events = match tokio::task::spawn_blocking(move || practice(seed)).await {
            Ok(Ok(p)) => p.events,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "demo feed: generating the next practice");
                return;
            }
            Err(_) => return,
        };
    }
}

/// Posts one NDJSON batch, waiting out 503s; false when the demo stops or
/// the service refuses the batch for good.
async fn send(
    client: &reqwest::Client,
    endpoint: &str,
    token: &str,
    batch: &[Event],
    shutdown: &CancellationToken,
) -> bool {
    let mut body = Vec::with_capacity(batch.len() * 400);
    for e in batch {
        if serde_json::to_writer(&mut body, e).is_err() {
            return false;
        }
        body.push(b'\n');
    }
    loop {
        if shutdown.is_cancelled() {
            return false;
        }
        let sent = client
            .post(endpoint)
            .bearer_auth(token)
            .header("content-type", "application/x-ndjson")
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => return true,
            Ok(r) if r.status().as_u16() == 400 => {
                // Kept lines are stored; the rejected ones are recorded.
                tracing::warn!("demo feed: some generated events were rejected");
                return true;
            }
            Ok(r) if r.status().as_u16() == 503 || r.status().as_u16() == 429 => {}
            Ok(r) => {
                tracing::error!(status = %r.status(), "demo feed: the service refused a batch");
                return false;
            }
            Err(e) => tracing::warn!(error = %e, "demo feed: sending a batch"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_practice_starts_on_a_monday_at_least_a_week_ago() {
        // 2026-12-07 is a Monday (day 20,794); 1970-01-05 was the first Monday.
        assert_eq!(first_monday_day(4 + 7), 4);
        for today in 20_790..20_810 {
            let m = first_monday_day(today);
            assert_eq!((m - 20_794).rem_euclid(7), 0, "{today} -> {m} is a Monday");
            assert!((today - 13..=today - 7).contains(&m), "{today} -> {m}");
        }
    }

    #[test]
    fn the_demo_starts_only_in_a_missing_or_empty_folder() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("new");
        assert_eq!(fresh_dir(Some(missing.clone())).unwrap(), missing);
        assert!(missing.is_dir());
        assert_eq!(fresh_dir(Some(missing.clone())).unwrap(), missing);
        std::fs::write(missing.join("ledger"), "x").unwrap();
        let err = fresh_dir(Some(missing)).unwrap_err().to_string();
        assert!(err.contains("is not empty"), "{err}");
    }

    #[test]
    fn the_embedded_rule_pack_is_the_shipped_one() {
        let shipped = |dir: &Path| -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".yml"))
                .collect();
            names.sort();
            names
        };
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        let mut want: Vec<String> = shipped(&root);
        want.extend(
            shipped(&root.join("playbooks"))
                .into_iter()
                .map(|n| format!("playbooks/{n}")),
        );
        want.sort();
        let mut have: Vec<String> = RULE_PACK.iter().map(|(n, _)| (*n).to_owned()).collect();
        have.sort();
        assert_eq!(have, want, "a rule file missing from the demo's RULE_PACK");
    }
}

//! Detection state snapshots in a real `sealtrail serve`: a restart after
//! SIGTERM or SIGKILL loads the snapshot and replays only the entries after
//! it, a correlation begun before the restart still fires after it, and a
//! damaged, foreign or outdated snapshot falls back to the full replay with
//! the same alert.

use crate::util::*;
use reqwest::blocking::Client;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// A snapshot every `every` entries (and on a clean stop).
fn config(dir: &Path, k: &Keys, every: u64) -> String {
    let rules = rules_folder(&dir.join("rules"), DETECTION_RULES);
    detection_config(
        dir,
        k,
        &rules,
        "500ms",
        &format!("snapshot_entries = {every}\nsnapshot_interval = \"1h\"\n"),
    )
}

fn snapshot_file(dir: &Path) -> PathBuf {
    dir.join("data/snapshots/detection.snapshot")
}

fn failed(id: &str) -> Value {
    live_event(id, "u5", json!({}))
}

/// A successful login of another user: no rule matches it.
fn filler(id: &str) -> Value {
    live_event(id, "u9", json!({"outcome": "success"}))
}

/// Posts events one request each; returns their ledger indices.
fn post(c: &Client, url: &str, events: &[Value]) -> Vec<u64> {
    events
        .iter()
        .map(|e| post_events(c, url, e)["first_index"].as_u64().unwrap())
        .collect()
}

fn metrics(c: &Client, url: &str) -> String {
    c.get(format!("{url}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap()
}

fn snap_stat(c: &Client, url: &str, stat: &str) -> Option<f64> {
    metric_value(
        &metrics(c, url),
        &format!("sealtrail_detection_snapshot{{stat=\"{stat}\"}}"),
    )
}

fn brute_force(c: &Client, server: &Server) -> Vec<Value> {
    get_json(c, &format!("{}/v1/alerts?rule=brute-force", server.http))["alerts"]
        .as_array()
        .unwrap()
        .clone()
}

/// Waits for the one brute-force alert; checks it holds exactly `idx`.
fn fires_with(c: &Client, server: &Server, idx: &[u64]) {
    let a = server.wait_for("the brute-force alert", || {
        let a = brute_force(c, server);
        (!a.is_empty()).then_some(a)
    });
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0]["count"], 5, "{a:?}");
    let got: Vec<u64> = a[0]["event_indices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(got, idx);
}

/// `field=value` of the log line holding `message`.
fn log_field(log: &str, message: &str, field: &str) -> Option<u64> {
    let line = log.lines().find(|l| l.contains(message))?;
    let at = line.find(&format!("{field}="))? + field.len() + 1;
    line[at..]
        .split(|ch: char| !ch.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

const LOADED: &str = "detection state loaded from the snapshot";
const FULL: &str = "full replay of the window";

#[test]
fn a_restart_loads_the_snapshot_and_replays_only_the_entries_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let cfg = config(dir.path(), &k, 20);
    let c = client_with(&test_token(&dir.path().join("data")));

    // Two failures, then enough other events for a periodic snapshot,
    // then one more failure after it; SIGKILL (no snapshot at the stop).
    let server = Server::start(dir.path(), &cfg);
    let mut idx = post(&c, &server.http, &[failed("f-0"), failed("f-1")]);
    let fillers: Vec<Value> = (0..24).map(|i| filler(&format!("x-{i}"))).collect();
    post(&c, &server.http, &fillers);
    let covered = server.wait_for("a periodic snapshot", || {
        snap_stat(&c, &server.http, "writes")
            .filter(|w| *w >= 1.0)
            .and_then(|_| snap_stat(&c, &server.http, "position"))
    }) as u64;
    assert!(covered >= 20, "{covered}");
    idx.extend(post(&c, &server.http, &[failed("f-2")]));
    let end = idx[2] + 1;
    server.wait_for("detection to read the last failure", || {
        metric_value(&metrics(&c, &server.http), "sealtrail_detection_position")
            .filter(|p| *p as u64 >= end)
    });
    assert!(snapshot_file(dir.path()).exists());
    server.kill();

    // The restart loads the snapshot and replays only what followed it
    // (the last failure at least; the service's own entries too).
    let server = Server::start(dir.path(), &cfg);
    let log = server.log_text();
    assert!(log.contains(LOADED), "{log}");
    assert!(!log.contains(FULL), "{log}");
    assert_eq!(
        log_field(&log, LOADED, "snapshot_position"),
        Some(covered - 1),
        "{log}"
    );
    assert_eq!(log_field(&log, LOADED, "from"), Some(covered), "{log}");
    let replayed = snap_stat(&c, &server.http, "replayed_at_start").unwrap() as u64;
    assert_eq!(Some(replayed), log_field(&log, LOADED, "replayed"), "{log}");
    assert!(replayed >= end - covered, "{replayed} {end} {covered}");
    assert!(replayed < end, "{replayed} {end}");
    assert_eq!(snap_stat(&c, &server.http, "loaded"), Some(1.0));
    assert!(brute_force(&c, &server).is_empty());

    // Two more failures complete the window begun before the restart: the
    // first two came from the snapshot, the third from the replay.
    idx.extend(post(&c, &server.http, &[failed("f-3"), failed("f-4")]));
    fires_with(&c, &server, &idx);

    // SIGTERM writes a last snapshot at the end; the next start replays
    // nothing of the events (at most the service's own last entries).
    assert_eq!(server.terminate(), Some(0));
    let server = Server::start(dir.path(), &cfg);
    let log = server.log_text();
    assert!(log.contains(LOADED), "{log}");
    assert!(
        snap_stat(&c, &server.http, "replayed_at_start").unwrap() <= 2.0,
        "{log}"
    );
    // The alert is known: not appended again.
    post(&c, &server.http, &[filler("after")]);
    assert_eq!(brute_force(&c, &server).len(), 1);
    assert_eq!(server.terminate(), Some(0));
    verify_ok(&dir.path().join("data"), &k);
}

/// Three failures and some other events, stopped with SIGTERM (a snapshot
/// at the end); returns the failures' indices.
fn three_failures(dir: &Path, cfg: &str, c: &Client) -> Vec<u64> {
    let server = Server::start(dir, cfg);
    let mut idx = post(c, &server.http, &[failed("f-0"), failed("f-1")]);
    post(c, &server.http, &[filler("x-0"), filler("x-1")]);
    idx.extend(post(c, &server.http, &[failed("f-2")]));
    assert_eq!(server.terminate(), Some(0));
    assert!(snapshot_file(dir).exists());
    idx
}

/// Restarts over `dir`, expects the full replay (the snapshot refused with
/// `why` in the log), completes the window and checks the alert.
fn falls_back(dir: &Path, cfg: &str, c: &Client, mut idx: Vec<u64>, why: &str) {
    let server = Server::start(dir, cfg);
    let log = server.log_text();
    assert!(log.contains(FULL), "{log}");
    assert!(log.contains(why), "{why}: {log}");
    assert!(!log.contains(LOADED), "{log}");
    assert_eq!(snap_stat(c, &server.http, "loaded"), Some(0.0));
    idx.extend(post(c, &server.http, &[failed("f-3"), failed("f-4")]));
    fires_with(c, &server, &idx);
    // Killed: the snapshot stays as it was for the next case.
    server.kill();
}

#[test]
fn a_damaged_foreign_or_outdated_snapshot_falls_back_to_the_full_replay_with_the_same_alert() {
    let run = |name: &str| {
        let dir = tempfile::tempdir().unwrap();
        let k = keys(dir.path());
        let cfg = config(dir.path(), &k, 1000);
        let c = client_with(&test_token(&dir.path().join("data")));
        let idx = three_failures(dir.path(), &cfg, &c);
        eprintln!("case {name}");
        (dir, cfg, c, idx)
    };

    // Damaged: one byte of the engine's state changed.
    let (dir, cfg, c, idx) = run("damaged");
    let path = snapshot_file(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    falls_back(dir.path(), &cfg, &c, idx, "checksum mismatch");

    // Foreign: a valid snapshot of another ledger with as many entries
    // (same rules, same position; other event ids, so another leaf hash).
    let (dir, cfg, c, idx) = run("foreign");
    let other = tempfile::tempdir().unwrap();
    let ko = keys(other.path());
    let cfg_o = config(other.path(), &ko, 1000);
    let co = client_with(&test_token(&other.path().join("data")));
    let s = Server::start(other.path(), &cfg_o);
    post(
        &co,
        &s.http,
        &[failed("o-0"), failed("o-1"), filler("o-x0")],
    );
    post(&co, &s.http, &[filler("o-x1"), failed("o-2")]);
    assert_eq!(s.terminate(), Some(0));
    std::fs::copy(snapshot_file(other.path()), snapshot_file(dir.path())).unwrap();
    falls_back(
        dir.path(),
        &cfg,
        &c,
        idx,
        "not the one the snapshot was taken after",
    );

    // Outdated: the rules changed since (a comment is a change too).
    let (dir, cfg, c, idx) = run("rules");
    let pack = dir.path().join("rules/pack.yml");
    let text = std::fs::read_to_string(&pack).unwrap();
    std::fs::write(&pack, format!("# changed\n{text}")).unwrap();
    falls_back(dir.path(), &cfg, &c, idx, "built with other rules");
}

/// A failed then a successful login of one account, in order: fires only
/// once the detector's clock passes both (the allowed lateness).
const ORDERED: &str = r#"title: Failed login
id: failed
level: low
detection:
  sel:
    category: auth
    action: login
    outcome: failure
  condition: sel
---
title: Successful login
id: succeeded
level: low
detection:
  sel:
    category: auth
    action: login
    outcome: success
  condition: sel
---
title: Success after a failure
id: success-after-failure
level: high
correlation:
  type: temporal_ordered
  rules:
    - failed
    - succeeded
  group-by:
    - actor.user
  timespan: 10m
"#;

/// A correlation that waits for the clock, cut by a restart: its hits wait
/// in the snapshot's reorder buffer, the restart loads them, and the clock
/// moving on after the restart (idle timer, the service's own entries)
/// applies them and fires it, with no new event from a source.
#[test]
fn a_correlation_waiting_for_the_clock_fires_after_a_restart_from_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let rules = rules_folder(&dir.path().join("rules"), ORDERED);
    let cfg = detection_config(dir.path(), &k, &rules, "4s", "");
    let c = client_with(&test_token(&dir.path().join("data")));
    let server = Server::start(dir.path(), &cfg);
    let idx = post(
        &c,
        &server.http,
        &[
            live_event("o-0", "u7", json!({})),
            live_event("o-1", "u7", json!({"outcome": "success"})),
        ],
    );
    // Stopped well within the 4 s lateness: the hits wait in the snapshot.
    assert_eq!(server.terminate(), Some(0));
    let server = Server::start(dir.path(), &cfg);
    let log = server.log_text();
    assert!(log.contains(LOADED), "{log}");
    let a = server.wait_for("the ordered correlation", || {
        let a = get_json(
            &c,
            &format!("{}/v1/alerts?rule=success-after-failure", server.http),
        )["alerts"]
            .as_array()
            .unwrap()
            .clone();
        (!a.is_empty()).then_some(a)
    });
    assert_eq!(a.len(), 1, "{a:?}");
    let got: Vec<u64> = a[0]["event_indices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(got, idx);
    assert_eq!(server.terminate(), Some(0));
}

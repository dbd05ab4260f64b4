//! Detection in a real `sealtrail serve`: rules from a folder, alerts as
//! ledger events listed by `GET /v1/alerts`, suppression, rule reloads,
//! start-up errors, and a SIGKILL in the middle of a correlation window.

use crate::util::*;
use reqwest::blocking::Client;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

fn rules_dir(dir: &Path) -> PathBuf {
    rules_folder(&dir.join("rules"), DETECTION_RULES)
}

fn config(dir: &Path, k: &Keys, rules: &Path) -> String {
    detection_config(dir, k, rules, "500ms", "")
}

fn failed_login(id: &str, user: &str) -> Value {
    live_event(id, user, json!({}))
}

fn break_glass(id: &str, user: &str) -> Value {
    live_event(
        id,
        user,
        json!({"category": "access", "action": "view", "outcome": "success",
               "reason": "break_glass", "patient": {"id": "MRN-1"}}),
    )
}

/// Posts events one request each; returns their ledger indices.
fn post(c: &Client, url: &str, events: &[Value]) -> Vec<u64> {
    events
        .iter()
        .map(|e| post_events(c, url, e)["first_index"].as_u64().unwrap())
        .collect()
}

fn alerts(c: &Client, url: &str, rule: Option<&str>) -> Vec<Value> {
    let query = rule.map(|r| format!("?rule={r}")).unwrap_or_default();
    get_json(c, &format!("{url}/v1/alerts{query}"))["alerts"]
        .as_array()
        .unwrap()
        .clone()
}

fn wait_alerts(c: &Client, server: &Server, rule: &str, n: usize) -> Vec<Value> {
    server.wait_for(&format!("{n} {rule} alerts"), || {
        let a = alerts(c, &server.http, Some(rule));
        (a.len() == n).then_some(a)
    })
}

/// One series of `/metrics`, 0 when it is not there.
fn metric(c: &Client, url: &str, name: &str) -> f64 {
    let text = c
        .get(format!("{url}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    metric_value(&text, name).unwrap_or(0.0)
}

fn get_event(c: &Client, url: &str, i: u64) -> Value {
    get_json(c, &format!("{url}/v1/events/{i}"))
}

fn indices(alert: &Value) -> Vec<u64> {
    alert["event_indices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect()
}

#[test]
fn detections_and_correlations_become_ledger_alerts_once() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let rules = rules_dir(dir.path());
    let server = Server::start(dir.path(), &config(dir.path(), &k, &rules));
    let c = server.client();
    let url = server.http.clone();

    // A detection rule: one alert per matching event, no group.
    let glass = post(&c, &url, &[break_glass("bg-1", "u7")]);
    let a = wait_alerts(&c, &server, "break-glass", 1);
    assert_eq!(a[0]["title"], "Break-glass access");
    assert_eq!(a[0]["severity"], "high");
    assert_eq!(a[0]["count"], 1);
    assert_eq!(a[0]["group"], json!({}));
    assert_eq!(indices(&a[0]), glass);

    // Four failed logins do not fire; the fifth does (at once: event_count
    // gte fires before the lateness has passed).
    let logins: Vec<Value> = (0..5)
        .map(|i| failed_login(&format!("fl-{i}"), "u1"))
        .collect();
    let mut idx = post(&c, &url, &logins[..4]);
    // Another user's failures are another group.
    post(&c, &url, &[failed_login("other-0", "u2")]);
    idx.extend(post(&c, &url, &logins[4..]));
    let a = wait_alerts(&c, &server, "brute-force", 1);
    let alert = &a[0];
    assert_eq!(alert["rule_id"], "brute-force");
    assert_eq!(alert["group"], json!({"actor.user": "u1"}));
    assert_eq!(alert["count"], 5);
    assert_eq!(indices(alert), idx);
    assert!(alert["id"].as_str().unwrap().starts_with("alert-"));
    for i in indices(alert) {
        let e = get_event(&c, &url, i);
        assert_eq!(e["event"]["actor"]["user"], "u1");
        assert_eq!(e["event"]["outcome"], "failure");
    }
    // The alert is itself a ledger event, linked by its index.
    let stored = get_event(&c, &url, alert["index"].as_u64().unwrap());
    assert_eq!(stored["event"]["category"], "system");
    assert_eq!(stored["event"]["action"], "alert");
    assert_eq!(stored["event"]["source"]["system"], "sealtrail");
    assert_eq!(stored["event"]["message"], "Repeated failed logins");
    assert_eq!(stored["event"]["attrs"]["id"], alert["id"]);

    // A second burst for the same user within the suppression window is
    // suppressed (counted), not a second alert.
    let again: Vec<Value> = (0..5)
        .map(|i| failed_login(&format!("fl2-{i}"), "u1"))
        .collect();
    post(&c, &url, &again);
    server.wait_for("a suppressed alert", || {
        (metric(&c, &url, "sealtrail_alerts_suppressed_total") >= 1.0).then_some(())
    });
    // A second break-glass access is its own alert (detections are not
    // suppressed).
    post(&c, &url, &[break_glass("bg-2", "u8")]);
    wait_alerts(&c, &server, "break-glass", 2);
    assert_eq!(alerts(&c, &url, Some("brute-force")).len(), 1);
    let all = alerts(&c, &url, None);
    assert_eq!(all.len(), 3, "{all:?}");
    // Newest first.
    assert_eq!(all[0]["rule_id"], "break-glass");
    assert!(all[0]["index"].as_u64() > all[1]["index"].as_u64());
    assert_eq!(metric(&c, &url, "sealtrail_alerts_total"), 3.0);
    assert!(metric(&c, &url, "sealtrail_detection_events_total") >= 17.0);
    assert_eq!(
        metric(&c, &url, "sealtrail_alert_latency_seconds_count"),
        3.0
    );

    // Ingest-to-alert latency (received of the completing event to the
    // alert being durable), for the record.
    let sum = metric(&c, &url, "sealtrail_alert_latency_seconds_sum");
    eprintln!(
        "mean ingest-to-alert latency over 3 alerts: {:.3}s",
        sum / 3.0
    );

    assert_eq!(server.terminate(), Some(0));
    verify_ok(&dir.path().join("data"), &k);
}

#[test]
fn an_invalid_rule_set_stops_the_start_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let rules = rules_dir(dir.path());
    std::fs::write(
        rules.join("bad.yml"),
        "title: Bad\nid: bad\ndetection:\n  sel:\n    actor.usr: x\n  condition: sel\n",
    )
    .unwrap();
    let cfg = dir.path().join("serve.toml");
    std::fs::write(&cfg, config(dir.path(), &k, &rules)).unwrap();
    let out = std::process::Command::new(bin())
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("bad.yml:5:"), "{stderr}");
    assert!(stderr.contains("actor.usr"), "{stderr}");

    // `--rules` overrides the config's folder.
    let good = rules_folder(&dir.path().join("good"), DETECTION_RULES);
    std::fs::write(&cfg, config(dir.path(), &k, &good)).unwrap();
    let out = std::process::Command::new(bin())
        .args(["serve", "--config"])
        .arg(&cfg)
        .arg("--rules")
        .arg(&rules)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("bad.yml:5:"), "{stderr}");
}

#[test]
fn a_broken_reload_keeps_the_running_rules() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let rules = rules_dir(dir.path());
    let server = Server::start(dir.path(), &config(dir.path(), &k, &rules));
    let c = server.client();
    let url = server.http.clone();

    std::fs::write(
        rules.join("broken.yml"),
        "title: Broken\nid: broken\ndetection:\n  sel:\n    action|nope: x\n  condition: sel\n",
    )
    .unwrap();
    server.wait_for("the rejected reload", || {
        (metric(&c, &url, "sealtrail_rule_load_errors_total") >= 1.0).then_some(())
    });
    let log = server.log_text();
    assert!(log.contains("broken.yml:5:"), "{log}");
    assert_eq!(metric(&c, &url, "sealtrail_detection_rules"), 3.0);

    // Still serving, with the old rules.
    post(&c, &url, &[break_glass("bg-1", "u7")]);
    wait_alerts(&c, &server, "break-glass", 1);

    // A valid change replaces the set: the broken file goes, a new rule comes.
    std::fs::remove_file(rules.join("broken.yml")).unwrap();
    std::fs::write(
        rules.join("export.yml"),
        "title: Export\nid: export\nlevel: medium\ndetection:\n  sel:\n    action: export\n  condition: sel\n",
    )
    .unwrap();
    server.wait_for("the reload", || {
        (metric(&c, &url, "sealtrail_detection_rules") == 4.0).then_some(())
    });
    post(
        &c,
        &url,
        &[live_event(
            "ex-1",
            "u3",
            json!({"category": "access", "action": "export", "outcome": "success"}),
        )],
    );
    wait_alerts(&c, &server, "export", 1);
}

#[test]
fn a_sigkill_mid_window_still_alerts_once_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let rules = rules_dir(dir.path());
    let cfg = config(dir.path(), &k, &rules);
    let c = client_with(&test_token(&dir.path().join("data")));

    // Three of five failures, durable, then SIGKILL.
    let server = Server::start(dir.path(), &cfg);
    let first: Vec<Value> = (0..3)
        .map(|i| failed_login(&format!("k-{i}"), "u5"))
        .collect();
    let mut idx = post(&c, &server.http, &first);
    server.kill();

    // After the restart the window is rebuilt from the ledger: two more
    // failures complete it.
    let server = Server::start(dir.path(), &cfg);
    assert!(
        server.log_text().contains("sealtrail is serving"),
        "{}",
        server.log_text()
    );
    let rest: Vec<Value> = (3..5)
        .map(|i| failed_login(&format!("k-{i}"), "u5"))
        .collect();
    idx.extend(post(&c, &server.http, &rest));
    let a = wait_alerts(&c, &server, "brute-force", 1);
    assert_eq!(a[0]["count"], 5);
    assert_eq!(indices(&a[0]), idx);
    server.kill();

    // Another restart (killed right after the alert) replays a window that
    // holds the alert: it is not appended again.
    let server = Server::start(dir.path(), &cfg);
    post(&c, &server.http, &[break_glass("bg-after", "u5")]);
    wait_alerts(&c, &server, "break-glass", 1);
    let a = alerts(&c, &server.http, Some("brute-force"));
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(server.terminate(), Some(0));
    verify_ok(&dir.path().join("data"), &k);
}

#[test]
fn import_runs_the_rules_and_appends_alerts_before_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let rules = rules_dir(dir.path());
    let data = dir.path().join("data");
    let mut input = String::new();
    for e in [break_glass("bg-1", "u7")]
        .into_iter()
        .chain((0..5).map(|i| failed_login(&format!("f-{i}"), "u1")))
    {
        input.push_str(&e.to_string());
        input.push('\n');
    }
    let file = dir.path().join("events.ndjson");
    std::fs::write(&file, input).unwrap();
    let out = std::process::Command::new(bin())
        .args(["import", "--data"])
        .arg(&data)
        .arg("--key")
        .arg(&k.key)
        .arg("--rules")
        .arg(&rules)
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let alerts: Vec<Value> = stored_entries(&data)
        .into_iter()
        .filter(|e| e["event"]["action"] == "alert")
        .collect();
    // The detection fires at once; the correlation waits for the lateness
    // buffer, which an import that ends right away leaves to the next start.
    assert!(
        alerts
            .iter()
            .any(|a| a["event"]["attrs"]["rule_id"] == "break-glass"
                && a["event"]["attrs"]["event_indices"] == json!([0])),
        "{alerts:?}"
    );
    assert_eq!(
        alerts
            .iter()
            .filter(|a| a["event"]["attrs"]["rule_id"] == "break-glass")
            .count(),
        1
    );
}

#[test]
fn a_source_three_minutes_late_alerts_while_another_streams_live() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let rules = rules_dir(dir.path());
    let server = Server::start(dir.path(), &config(dir.path(), &k, &rules));
    let c = server.client();
    let url = server.http.clone();
    let now = || sealtrail::event::Timestamp::now().unix_ms();
    let at = |ms: i64| {
        sealtrail::event::Timestamp::from_unix_ms(ms)
            .unwrap()
            .to_string()
    };
    // A live source: the EHR's logins as they happen (successes, no alert).
    let live = |i: usize| {
        live_event(
            &format!("live-{i}"),
            &format!("staff-{}", i % 7),
            json!({"outcome": "success"}),
        )
    };
    for i in 0..20 {
        post(&c, &url, &[live(i)]);
    }
    // A relay delivers two bursts three minutes after they happened: 15
    // failed logins of late-1, and of late-2 30 s later.
    let start = now() - 180_000;
    let mut sent = 20;
    for (user, offset) in [("late-1", 0), ("late-2", 30_000)] {
        let burst: Vec<Value> = (0..15)
            .map(|k| {
                json!({
                    "id": format!("{user}-{k}"), "time": at(start + offset + k * 1_000),
                    "category": "auth", "action": "login", "outcome": "failure",
                    "actor": {"user": user, "ip": "10.0.0.9"},
                    "source": {"system": "relay"},
                })
            })
            .collect();
        let (status, _) = post_json(&c, &format!("{url}/v1/events"), &Value::Array(burst));
        assert_eq!(status, 200);
        // The live source keeps streaming in between.
        for _ in 0..5 {
            post(&c, &url, &[live(sent)]);
            sent += 1;
        }
    }
    let a = wait_alerts(&c, &server, "brute-force", 2);
    let mut users: Vec<&str> = a
        .iter()
        .map(|x| x["group"]["actor.user"].as_str().unwrap())
        .collect();
    users.sort_unstable();
    assert_eq!(users, ["late-1", "late-2"]);
    for x in &a {
        // Raised on arrival, named as late; its events are the burst's.
        assert_eq!(x["late"], true, "{x}");
        let user = x["group"]["actor.user"].as_str().unwrap();
        for i in indices(x) {
            assert_eq!(get_event(&c, &url, i)["event"]["actor"]["user"], user);
        }
    }
    assert_eq!(
        metric(
            &c,
            &url,
            "sealtrail_detection_engine{stat=\"late_dropped\"}"
        ),
        0.0
    );
    assert!(
        metric(
            &c,
            &url,
            "sealtrail_detection_engine{stat=\"late_applied\"}"
        ) >= 10.0
    );
    assert_eq!(server.terminate(), Some(0));
    verify_ok(&dir.path().join("data"), &k);
}

#[test]
fn late_hits_beyond_the_retention_are_reported_as_a_warning_event() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let rules = rules_dir(dir.path());
    let server = Server::start(dir.path(), &config(dir.path(), &k, &rules));
    let c = server.client();
    let url = server.http.clone();
    // A live source sets the clock to now.
    post(&c, &url, &[failed_login("live-1", "u1")]);
    // A new source delivers a failed login from two hours ago: more than the
    // late retention (1 h) behind the clock, so it is not correlated, and
    // that is said, per rule and source.
    let old = sealtrail::event::Timestamp::from_unix_ms(
        sealtrail::event::Timestamp::now().unix_ms() - 2 * 3_600_000,
    )
    .unwrap()
    .to_string();
    let (status, _) = post_json(
        &c,
        &format!("{url}/v1/events"),
        &json!({"id": "old-1", "time": old, "category": "auth", "action": "login",
                "outcome": "failure", "actor": {"user": "u2"}, "source": {"system": "uploader"}}),
    );
    assert_eq!(status, 200);
    let warning = server.wait_for("a detection_late_dropped event", || {
        let r = get_json(
            &c,
            &format!("{url}/v1/search?q=action:detection_late_dropped&limit=10"),
        );
        r["hits"].as_array().and_then(|h| h.first().cloned())
    });
    let attrs = &warning["event"]["attrs"];
    assert_eq!(attrs["source"], "uploader", "{warning}");
    assert_eq!(attrs["rule"], "brute-force", "{warning}");
    assert_eq!(attrs["count"], 1, "{warning}");
    assert_eq!(warning["event"]["category"], "system");
    assert!(
        metric(
            &c,
            &url,
            "sealtrail_detection_engine{stat=\"late_dropped\"}"
        ) >= 1.0
    );
    assert_eq!(server.terminate(), Some(0));
}

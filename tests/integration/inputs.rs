//! Input hardening probe findings (issue #13), against a real `sealtrail serve`.

use crate::util::*;
use reqwest::blocking::Client;
use serde_json::Value;

fn post_raw(c: &Client, url: &str, body: &str, content_type: Option<&str>) -> (u16, Value) {
    let mut req = c.post(url).body(body.to_owned());
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let r = req.send().unwrap();
    (r.status().as_u16(), r.json().unwrap_or(Value::Null))
}

/// A cross-site form can only send `text/plain`, urlencoded or multipart
/// bodies: all refused with 415 and recorded; JSON types are taken.
#[test]
fn ingest_requires_a_json_content_type_and_records_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let data = dir.path().join("data");
    let server = Server::start(dir.path(), &serve_config(&data, &k, ""));
    let c = server.client();
    let events = format!("{}/v1/events", server.http);
    let fhir = format!("{}/fhir/AuditEvent", server.http);
    let mut refused = 0;
    for ct in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=xyz"),
        None,
    ] {
        let (status, v) = post_raw(&c, &events, &event_json(1), ct);
        assert_eq!(status, 415, "{ct:?}: {v}");
        let error = v["error"].as_str().unwrap();
        assert!(error.contains("application/x-ndjson"), "{error}");
        refused += 1;
    }
    let (status, v) = post_raw(&c, &fhir, "{}", Some("text/plain"));
    assert_eq!(status, 415, "{v}");
    assert_eq!(v["resourceType"], "OperationOutcome");
    assert_eq!(v["issue"][0]["code"], "not-supported");
    refused += 1;
    for (i, ct) in [
        "application/json",
        "application/x-ndjson",
        "application/ndjson",
        "application/json; charset=utf-8",
        "application/vnd.sealtrail+json",
    ]
    .iter()
    .enumerate()
    {
        let (status, v) = post_raw(&c, &events, &event_json(10 + i as u64), Some(ct));
        assert_eq!(status, 200, "{ct}: {v}");
    }
    assert_eq!(server.terminate(), Some(0));
    let entries = sent_entries(&data);
    let rejected: Vec<_> = entries
        .iter()
        .filter(|e| e["event"]["action"] == "ingest_rejected")
        .collect();
    assert_eq!(rejected.len(), refused, "{entries:?}");
    assert!(rejected.iter().all(|e| {
        e["event"]["message"]
            .as_str()
            .unwrap()
            .contains("content-type")
    }));
    assert_eq!(entries.len() - rejected.len(), 5);
}

/// Clients cannot write the service's own actions: the line is refused
/// (400 naming it) and recorded; the service's alerts still are written.
#[test]
fn clients_cannot_send_service_actions() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let data = dir.path().join("data");
    let server = Server::start(dir.path(), &serve_config(&data, &k, ""));
    let c = server.client();
    let events = format!("{}/v1/events", server.http);
    let actions = [
        "alert",
        "incident_update",
        "checkpoint",
        "siem_search",
        "siem_export",
        "detection_late_dropped",
        "ingest_rejected",
        "source_silent",
    ];
    let body: String = actions
        .iter()
        .map(|a| {
            format!(
                r#"{{"time":"2026-11-27T14:03:11Z","category":"system","action":"{a}","outcome":"success","message":"forged"}}"#
            ) + "\n"
        })
        .chain(std::iter::once(event_json(1) + "\n"))
        .collect();
    let (status, v) = post_raw(&c, &events, &body, Some("application/x-ndjson"));
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["accepted"], 1, "{v}");
    let rejected = v["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), actions.len(), "{v}");
    for (r, a) in rejected.iter().zip(actions) {
        let error = r["error"].as_str().unwrap();
        assert!(
            error.contains(&format!("`system/{a}` is written by sealtrail itself")),
            "{error}"
        );
    }
    // A search is the service's own siem_search: still written (via `api`).
    let _ = get_json(&c, &format!("{}/v1/search?q=action:view", server.http));
    assert_eq!(server.terminate(), Some(0));
    let entries = sent_entries(&data);
    let forged = entries
        .iter()
        .filter(|e| e["event"]["message"] == "forged")
        .count();
    assert_eq!(forged, 0, "a forged service event was stored");
    assert_eq!(
        entries
            .iter()
            .filter(|e| e["event"]["action"] == "ingest_rejected" && e["via"]["kind"] == "http")
            .count(),
        actions.len()
    );
    assert!(
        entries
            .iter()
            .any(|e| e["event"]["action"] == "siem_search" && e["via"]["kind"] == "api"),
        "the service's own audit record is missing"
    );
}

/// Marked values the service's own log must never show.
const CANARIES: [&str; 9] = [
    "MRN-CANARY-7731",
    "Zzcanary Patient",
    "canary-msg-5512",
    "canary-attr-9901",
    "canary-rej-3307",
    "canary-syslog-6620",
    "canary-415-2208",
    "zzcanary-user-4410",
    "canary-query-8814",
];

/// Views of one patient grouped by `patient.id`, and a playbook that opens
/// an incident: the alert and incident paths run with PHI in the group.
const PATIENT_RULES: &str = r#"title: Chart view
id: chart-view
level: low
detection:
  sel:
    category: access
    action: view
  condition: sel
---
title: Many views of one chart
id: chart-views
level: high
playbook: open
correlation:
  type: event_count
  rules:
    - chart-view
  group-by:
    - patient.id
  timespan: 10m
  condition:
    gte: 3
"#;

/// Issue #13: "no PHI in the service's own logs". Events, rejections, a
/// refused body, syslog text, a search, a report and a silence all carry
/// marked values; an alert and an incident grouped by the patient fire; the
/// process runs at `RUST_LOG=debug` (every crate) and none of the marks
/// appears in its stderr or stdout.
#[test]
fn the_service_log_carries_no_phi_even_at_debug() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(&dir.path().join("keys"));
    let rules = rules_folder(&dir.path().join("rules"), PATIENT_RULES);
    std::fs::create_dir_all(rules.join("playbooks")).unwrap();
    std::fs::write(
        rules.join("playbooks/open.yml"),
        "name: open\nsteps:\n  - open_incident\n",
    )
    .unwrap();
    let cfg = detection_config(dir.path(), &k, &rules, "200ms", "");
    let server = Server::start_logging(dir.path(), &cfg, "debug");
    let c = server.client();
    let url = server.http.clone();
    let now = sealtrail::event::Timestamp::now().to_string();
    let view = |i: usize| {
        serde_json::json!({
            "id": format!("canary-{i}"), "time": now, "category": "access", "action": "view",
            "outcome": "success",
            "actor": {"user": "zzcanary-user-4410", "ip": "10.0.0.9"},
            "patient": {"id": "MRN-CANARY-7731"},
            "resource": {"type": "chart", "id": "enc-1"},
            "source": {"system": "ehr"},
            "message": "canary-msg-5512 viewed Zzcanary Patient",
            "attrs": {"note": "canary-attr-9901", "name": "Zzcanary Patient"}
        })
        .to_string()
    };
    let mut body: String = (0..4).map(|i| view(i) + "\n").collect();
    body.push_str("{\"time\":\"not a time\",\"canary\":\"canary-rej-3307\"}\n");
    body.push_str("canary-rej-3307 is not json\n");
    let (status, v) = post_raw(
        &c,
        &format!("{url}/v1/events"),
        &body,
        Some("application/x-ndjson"),
    );
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["accepted"], 4, "{v}");
    let (status, _) = post_raw(
        &c,
        &format!("{url}/v1/events"),
        "canary-415-2208 MRN-CANARY-7731",
        Some("text/plain"),
    );
    assert_eq!(status, 415);

    // Syslog: plain text and a JSON event, over UDP.
    let log = server.log_text();
    let udp = log
        .split("syslog_udp=Some(")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .expect("syslog udp address in the log")
        .to_owned();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let now5424 = sealtrail::event::Timestamp::now().to_string();
    sock.send_to(
        format!("<14>1 {now5424} app-01 ehr - - - canary-syslog-6620 for MRN-CANARY-7731")
            .as_bytes(),
        &udp,
    )
    .unwrap();
    sock.send_to(
        format!("<14>1 {now5424} app-01 ehr - - - {}", view(9)).as_bytes(),
        &udp,
    )
    .unwrap();

    // The alert grouped by the patient, and its incident.
    server.wait_for("the alert", || {
        let v = get_json(&c, &format!("{url}/v1/alerts"));
        (v["alerts"].as_array()?.iter())
            .any(|a| a["rule_id"] == "chart-views")
            .then_some(())
    });
    server.wait_for("the incident", || {
        let v = get_json(&c, &format!("{url}/v1/incidents"));
        (!v["incidents"].as_array()?.is_empty()).then_some(())
    });
    server.wait_for("the syslog events", || {
        let v = get_json(&c, &format!("{url}/v1/search?q=source.system:ehr&limit=0"));
        (v["total"].as_u64()? >= 6).then_some(())
    });

    // Searches, a bad query, a report and a silence naming the patient.
    let _ = c
        .get(format!("{url}/v1/search?q=patient.id:MRN-CANARY-7731"))
        .send()
        .unwrap();
    let _ = c
        .get(format!("{url}/v1/search?q=message:(canary-query-8814"))
        .send()
        .unwrap();
    let _ = c
        .get(format!(
            "{url}/v1/reports/patient-access?patient=MRN-CANARY-7731&format=csv"
        ))
        .send()
        .unwrap();
    let (status, v) = post_json(
        &c,
        &format!("{url}/v1/silences"),
        &serde_json::json!({
            "matchers": [{"field": "patient.id", "value": "MRN-CANARY-7731"},
                         {"field": "title", "regex": "canary-query-8814("}],
            "duration": "1h", "created_by": "zzcanary-user-4410",
        }),
    );
    assert!(
        status == 400 || status == 201 || status == 200,
        "{status} {v}"
    );

    let log_path = server.log.clone();
    assert_eq!(server.terminate(), Some(0));
    let stderr = std::fs::read_to_string(&log_path).unwrap();
    let stdout = std::fs::read_to_string(log_path.with_extension("out")).unwrap();
    // The paths ran and logged (so the check below can fail).
    assert!(
        stderr.contains("alert: Many views of one chart"),
        "{stderr}"
    );
    assert!(stderr.contains("DEBUG"), "not at debug level");
    for canary in CANARIES {
        for (name, text) in [("stderr", &stderr), ("stdout", &stdout)] {
            let lines: Vec<&str> = text.lines().filter(|l| l.contains(canary)).collect();
            assert!(
                lines.is_empty(),
                "{canary} in the service's {name}:\n{lines:#?}"
            );
        }
    }
}

/// Probe finding: `ends_at: 9999-12-31` muted a rule for good. A silence
/// lasts at most 30 days and starts within 30 days of now; others are 400
/// and nothing is recorded for them.
#[test]
fn silences_far_in_the_future_or_past_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(&dir.path().join("keys"));
    let rules = rules_folder(&dir.path().join("rules"), DETECTION_RULES);
    let cfg = detection_config(dir.path(), &k, &rules, "200ms", "");
    let server = Server::start(dir.path(), &cfg);
    let c = server.client();
    let url = format!("{}/v1/silences", server.http);
    let m = serde_json::json!([{"field": "rule_id", "value": "brute-force"}]);
    let day_ms = 86_400_000i64;
    let at = |offset_ms: i64| {
        sealtrail::event::Timestamp::from_unix_ms(
            sealtrail::event::Timestamp::now().unix_ms() + offset_ms,
        )
        .unwrap()
        .to_string()
    };
    for (body, why) in [
        (
            serde_json::json!({"matchers": m, "ends_at": "9999-12-31T00:00:00Z"}),
            "at most 30 days",
        ),
        (
            serde_json::json!({"matchers": m, "duration": "3650d"}),
            "at most 30 days",
        ),
        (
            serde_json::json!({"matchers": m, "starts_at": at(40 * day_ms), "duration": "1h"}),
            "future",
        ),
        (
            serde_json::json!({"matchers": m, "starts_at": "2000-01-01T00:00:00Z", "ends_at": at(3_600_000)}),
            "",
        ),
        (
            serde_json::json!({"matchers": m, "ends_at": "1999-01-01T00:00:00Z"}),
            "past",
        ),
    ] {
        let (status, v) = post_json(&c, &url, &body);
        assert_eq!(status, 400, "{body}: {v}");
        assert!(v["error"].as_str().unwrap().contains(why), "{body}: {v}");
    }
    for body in [
        serde_json::json!({"matchers": m, "duration": "2h"}),
        serde_json::json!({"matchers": m, "duration": "30d"}),
        serde_json::json!({"matchers": m, "ends_at": at(29 * day_ms)}),
    ] {
        let (status, v) = post_json(&c, &url, &body);
        assert_eq!(status, 201, "{body}: {v}");
    }
    let listed = get_json(&c, &url);
    assert_eq!(listed["silences"].as_array().unwrap().len(), 3, "{listed}");
    assert_eq!(server.terminate(), Some(0));
}

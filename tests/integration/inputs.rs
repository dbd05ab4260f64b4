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
    let c = Client::new();
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
    let entries = stored_entries(&data);
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
    let c = Client::new();
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
    let entries = stored_entries(&data);
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

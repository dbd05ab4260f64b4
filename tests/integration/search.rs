//! Search, reports and proofs over a real `sealtrail serve`, on generated data
//! whose answers are known.

use crate::util::*;
use reqwest::blocking::Client;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

fn post_ndjson(c: &Client, url: &str, events: &[String]) {
    let body: String = events.iter().map(|e| e.clone() + "\n").collect();
    let r = c
        .post(format!("{url}/v1/events"))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().unwrap());
}

fn search(c: &Client, url: &str, q: &str, extra: &[(&str, String)]) -> (u16, Value) {
    let mut params: Vec<(&str, String)> = vec![("q", q.to_owned())];
    params.extend(extra.iter().cloned());
    let r = c
        .get(format!("{url}/v1/search"))
        .query(&params)
        .send()
        .unwrap();
    (r.status().as_u16(), r.json().unwrap())
}

/// Waits until `q` has `want` hits (the index commits about twice a second).
fn wait_total(c: &Client, server: &Server, q: &str, want: u64) {
    let url = &server.http;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, v) = search(c, url, q, &[("limit", "0".into())]);
        if v["total"].as_u64() == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{q}: total {} never reached {want}",
            v["total"]
        );
        std::thread::sleep(Duration::from_millis(50)); // polling a condition
    }
}

#[test]
fn search_pagination_aggregations_reports_proofs_and_self_audit() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let data = dir.path().join("data");
    let server = Server::start(dir.path(), &serve_config(&data, &k, ""));
    let c = server.client();
    let url = server.http.clone();

    // 1,000 events: user u{i%97}, patient MRN-{i%5003}, ip 10.20.1.{i%250}.
    let events: Vec<String> = (0..1000).map(event_json).collect();
    for chunk in events.chunks(250) {
        post_ndjson(&c, &url, chunk);
    }
    wait_total(&c, &server, "category:access", 1000);

    // Known counts per user.
    for user in [0u64, 5, 96] {
        let want = (0..1000u64).filter(|i| i % 97 == user).count() as u64;
        let (status, v) = search(
            &c,
            &url,
            &format!("actor.user:u{user:04}"),
            &[("limit", "0".into())],
        );
        assert_eq!(status, 200);
        assert_eq!(v["total"].as_u64(), Some(want), "user {user}");
    }
    // The exact event list of one patient, newest first.
    let (_, v) = search(&c, &url, "patient.id:MRN-0000007 AND action:view", &[]);
    let got: Vec<u64> = v["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["index"].as_u64().unwrap())
        .collect();
    // Event 7 sits one index later: index 0 records the test token's creation.
    assert_eq!(got, vec![7 + TOKEN_RECORDS], "{v}");
    // AND NOT means what an analyst expects.
    let (_, v) = search(
        &c,
        &url,
        "category:access AND NOT actor.user:u0000",
        &[("limit", "0".into())],
    );
    let want = (0..1000u64).filter(|i| i % 97 != 0).count() as u64;
    assert_eq!(v["total"].as_u64(), Some(want));

    // Pagination is stable while events keep arriving: no gaps, no repeats.
    let mut seen = Vec::new();
    let mut cursor: Option<u64> = None;
    let mut extra = 1000u64;
    loop {
        let mut params = vec![("limit", "90".to_owned())];
        if let Some(cur) = cursor {
            params.push(("cursor", cur.to_string()));
        }
        let (_, page) = search(&c, &url, "category:access AND source.system:ehr", &params);
        let hits = page["hits"].as_array().unwrap();
        seen.extend(hits.iter().map(|h| h["index"].as_u64().unwrap()));
        // New events between pages.
        post_ndjson(&c, &url, &[event_json(extra)]);
        extra += 1;
        match page["cursor"].as_u64() {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let expected_first_page_top = seen[0];
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "newest first, strictly"
    );
    let unique: HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no repeats");
    // Down to index 1: index 0 records the test token's creation.
    assert_eq!(
        seen.len() as u64,
        expected_first_page_top + 1 - TOKEN_RECORDS,
        "no gaps down to the first event"
    );

    // Counts by field and a date histogram (once the late events are searchable).
    wait_total(&c, &server, "category:access", extra);
    let r = c
        .post(format!("{url}/v1/search"))
        .json(&json!({"q": "category:access", "to": "2026-11-02T00:00:00Z", "limit": 0,
                      "aggs": [{"terms": {"field": "actor.ip", "size": 500}}, {"date_histogram": {"interval": "1h"}}]}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().unwrap();
    let mut by_ip: HashMap<String, u64> = HashMap::new();
    let day_one: Vec<u64> = (0..1000u64)
        .chain(1000..extra)
        .filter(|i| 1 + (i / 86_400) % 28 == 1)
        .collect();
    for i in &day_one {
        *by_ip.entry(format!("10.20.1.{}", i % 250)).or_default() += 1;
    }
    let buckets = v["aggs"][0]["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), by_ip.len());
    for b in buckets {
        assert_eq!(
            b["doc_count"].as_u64(),
            by_ip.get(b["key"].as_str().unwrap()).copied(),
            "{b}"
        );
    }
    let hist_total: u64 = v["aggs"][1]["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["doc_count"].as_u64().unwrap())
        .sum();
    assert_eq!(hist_total, day_one.len() as u64);

    // Bad queries: position and reason; unknown fields named.
    let (status, v) = search(&c, &url, "action:(view", &[]);
    assert_eq!(status, 400);
    assert!(v["error"].as_str().unwrap().contains("position"), "{v}");
    let (status, v) = search(&c, &url, "actor.colour:red", &[]);
    assert_eq!(status, 400);
    assert!(v["error"].as_str().unwrap().contains("actor.colour"), "{v}");

    // One event and its proof, which verifies offline.
    let ev: Value = c
        .get(format!("{url}/v1/events/{}", 7 + TOKEN_RECORDS))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(ev["event"]["id"], "evt-00000007");
    let deadline = Instant::now() + Duration::from_secs(10);
    let proof = loop {
        let r = c
            .get(format!("{url}/v1/events/{}/proof", 7 + TOKEN_RECORDS))
            .send()
            .unwrap();
        if r.status().as_u16() == 200 {
            break r.text().unwrap();
        }
        assert_eq!(
            r.status().as_u16(),
            409,
            "not sealed yet is the only acceptable wait"
        );
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50)); // polling a condition
    };
    let proof: sealtrail::ledger::proof::InclusionProof = serde_json::from_str(&proof).unwrap();
    sealtrail::ledger::proof::verify_inclusion_proof(&proof, &k.verifier).unwrap();
    let cp = c
        .get(format!("{url}/v1/checkpoint"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(cp.starts_with(ORIGIN));

    // Patient-access report in three formats.
    let patient = "MRN-0000011";
    let want: Vec<u64> = (0..extra)
        .filter(|i| i % 5003 == 11)
        .map(|i| i + TOKEN_RECORDS)
        .collect();
    let r: Value = c
        .get(format!("{url}/v1/reports/patient-access"))
        .query(&[("patient", patient), ("format", "json")])
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(r["total"].as_u64(), Some(want.len() as u64), "{r}");
    let mut rows: Vec<u64> = r["accesses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["index"].as_u64().unwrap())
        .collect();
    rows.sort_unstable();
    assert_eq!(rows, want);
    assert_eq!(r["users"][0]["role"], "clinician");
    let csv = c
        .get(format!("{url}/v1/reports/patient-access"))
        .query(&[("patient", patient), ("format", "csv")])
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(csv.lines().count(), want.len() + 1);
    let html = c
        .get(format!("{url}/v1/reports/patient-access"))
        .query(&[("patient", patient), ("format", "html")])
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(html.contains("<table>") && html.contains(patient));

    // The CLI against the running service.
    let out = std::process::Command::new(bin())
        .args(["search", "--url", &url, "--json", "actor.user:u0005"])
        .env("SEALTRAIL_TOKEN", &server.token)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["total"].as_u64().unwrap() >= 10);

    // An evidence bundle for the patient, verified offline; tampering is caught.
    let r = c
        .post(format!("{url}/v1/export"))
        .json(&json!({"q": format!("patient.id:{patient}")}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-tar");
    let tar = r.bytes().unwrap().to_vec();
    let bundle = dir.path().join("evidence.tar");
    std::fs::write(&bundle, &tar).unwrap();
    let verify = |file: &std::path::Path| {
        std::process::Command::new(bin())
            .args([
                "verify",
                "--bundle",
                file.to_str().unwrap(),
                "--vkey",
                k.vkey.to_str().unwrap(),
                "--json",
            ])
            .output()
            .unwrap()
    };
    let out = verify(&bundle);
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["events"].as_u64(), Some(want.len() as u64), "{v}");
    let pos = tar
        .windows(8)
        .position(|w| w == b"cardiolo")
        .expect("an event in the archive");
    let mut bad = tar.clone();
    bad[pos] = b'K';
    let tampered = dir.path().join("tampered.tar");
    std::fs::write(&tampered, &bad).unwrap();
    assert_eq!(verify(&tampered).status.code(), Some(1));

    assert_eq!(server.terminate(), Some(0));

    // Every search and report was recorded, with what was asked.
    let audits: Vec<Value> = stored_entries(&data)
        .into_iter()
        .filter(|e| e["event"]["action"] == "siem_search")
        .collect();
    assert!(audits.len() >= 10, "{}", audits.len());
    assert!(
        audits
            .iter()
            .any(|e| e["event"]["attrs"]["q"] == "actor.user:u0005")
    );
    assert!(
        audits
            .iter()
            .any(|e| e["event"]["attrs"]["patient"] == patient)
    );
    assert!(
        audits
            .iter()
            .all(|e| e["event"]["actor"]["ip"] == "127.0.0.1")
    );
    // Recorded under the token that asked.
    assert!(
        audits
            .iter()
            .all(|e| e["event"]["actor"]["user"] == "token:test-all"
                && e["via"]["principal"] == "token:test-all")
    );
    let stored = stored_entries(&data);
    let actions: std::collections::BTreeSet<&str> = stored
        .iter()
        .filter_map(|e| e["event"]["action"].as_str())
        .collect();
    assert!(
        stored.iter().any(|e| e["event"]["action"] == "siem_export"
            && e["event"]["attrs"]["q"] == format!("patient.id:{patient}")),
        "no siem_export among {actions:?}"
    );

    // Offline: search and reindex on the data directory.
    let out = std::process::Command::new(bin())
        .args([
            "search",
            "--data",
            data.to_str().unwrap(),
            "--json",
            "actor.user:u0005",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let before: Value = serde_json::from_slice(&out.stdout).unwrap();
    let out = std::process::Command::new(bin())
        .args(["reindex", "--data", data.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = std::process::Command::new(bin())
        .args([
            "search",
            "--data",
            data.to_str().unwrap(),
            "--json",
            "actor.user:u0005",
        ])
        .output()
        .unwrap();
    let after: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(before["total"], after["total"]);
}

#[test]
fn hostile_search_requests_get_client_errors_and_the_service_lives_on() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let data = dir.path().join("data");
    let server = Server::start(dir.path(), &serve_config(&data, &k, ""));
    let c = server.client();
    let url = server.http.clone();
    post_ndjson(&c, &url, &[event_json(1)]);
    wait_total(&c, &server, "category:access", 1);
    // A 20 MB body is refused before it is read.
    let huge = json!({"q": "a".repeat(20 << 20)});
    // The server answers 413 and closes the connection without reading the
    // rest, so the client may see its own write fail first (broken pipe);
    // a 400 would mean the body was read and parsed.
    match c.post(format!("{url}/v1/search")).json(&huge).send() {
        Ok(r) => assert_eq!(r.status().as_u16(), 413),
        Err(e) => assert!(e.is_request() && !e.is_timeout(), "{e:?}"),
    }
    // These killed the process through the query grammar's recursion.
    for q in [
        format!("{}action:view", "NOT ".repeat(600)),
        format!("{}action:view{}", "(".repeat(1_000), ")".repeat(1_000)),
    ] {
        let (status, v) = search(&c, &url, &q, &[]);
        assert_eq!(status, 400, "{v}");
    }
    let (status, v) = search(&c, &url, "category:access", &[]);
    assert_eq!(status, 200);
    assert_eq!(v["total"].as_u64(), Some(1));
    assert_eq!(server.terminate(), Some(0));
}

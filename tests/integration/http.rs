//! The HTTP ingest endpoint over real sockets, against a real `sealtrail serve`.

use crate::util::*;
use reqwest::blocking::Client;
use serde_json::Value;
use std::io::Write;

fn post(client: &Client, url: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut req = client.post(format!("{url}/v1/events")).body(body);
    // NDJSON unless the test names its own content type.
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        req = req.header("content-type", "application/x-ndjson");
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

fn ndjson(range: std::ops::Range<u64>) -> String {
    range.map(|i| event_json(i) + "\n").collect()
}

#[test]
fn ndjson_gzip_zstd_arrays_bad_lines_and_retries() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let data = dir.path().join("data");
    let server = Server::start(dir.path(), &serve_config(&data, &k, ""));
    let c = server.client();
    let url = server.http.clone();

    // Plain NDJSON with two bad lines: 400 naming them, the valid lines kept.
    let mut body = ndjson(0..10);
    body.push_str(
        "{\"time\":\"2026-11-27T14:03:11Z\",\"category\":\"auth\",\"action\":\"login\"}\n",
    );
    body.push_str("not json\n");
    let (status, v) = post(
        &c,
        &url,
        body.into_bytes(),
        &[("content-type", "application/x-ndjson")],
    );
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["accepted"], 10);
    assert_eq!(v["first_index"], TOKEN_RECORDS);
    let rejected = v["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 2);
    assert_eq!(rejected[0]["line"], 11);
    assert!(
        rejected[0]["error"].as_str().unwrap().contains("outcome"),
        "{v}"
    );
    assert_eq!(rejected[1]["line"], 12);

    // gzip and zstd bodies.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(ndjson(100..150).as_bytes()).unwrap();
    let (status, v) = post(
        &c,
        &url,
        gz.finish().unwrap(),
        &[("content-encoding", "gzip")],
    );
    assert_eq!((status, v["accepted"].as_u64()), (200, Some(50)), "{v}");
    let zs = zstd::encode_all(ndjson(200..250).as_bytes(), 3).unwrap();
    let (status, v) = post(&c, &url, zs, &[("content-encoding", "zstd")]);
    assert_eq!((status, v["accepted"].as_u64()), (200, Some(50)), "{v}");

    // A JSON array and a single object.
    let arr = format!("[{},{}]", event_json(300), event_json(301));
    let (status, v) = post(
        &c,
        &url,
        arr.into_bytes(),
        &[("content-type", "application/json")],
    );
    assert_eq!((status, v["accepted"].as_u64()), (200, Some(2)), "{v}");
    let (status, _) = post(&c, &url, event_json(302).into_bytes(), &[]);
    assert_eq!(status, 200);

    // A retry of the gzip batch: acknowledged, stored once.
    let (status, v) = post(&c, &url, ndjson(100..150).into_bytes(), &[]);
    assert_eq!(status, 200);
    assert_eq!(
        (v["accepted"].as_u64(), v["duplicates"].as_u64()),
        (Some(50), Some(50)),
        "{v}"
    );

    // Truncated gzip, a decompression bomb, an unknown encoding.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(ndjson(400..450).as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    let (status, v) = post(
        &c,
        &url,
        gz[..gz.len() / 2].to_vec(),
        &[("content-encoding", "gzip")],
    );
    assert_eq!(status, 400, "{v}");
    let bomb = zstd::encode_all(&vec![b' '; 200 << 20][..], 19).unwrap();
    let (status, v) = post(&c, &url, bomb, &[("content-encoding", "zstd")]);
    assert_eq!(status, 413, "{v}");
    let (status, _) = post(&c, &url, b"x".to_vec(), &[("content-encoding", "br")]);
    assert_eq!(status, 415);
    // Invalid UTF-8 is a bad line, not a crash.
    let (status, v) = post(&c, &url, b"\xff\xfe{}\n".to_vec(), &[]);
    assert_eq!(status, 400, "{v}");

    let metrics = c
        .get(format!("{url}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("sealtrail_events_duplicate_total{source=\"http\"} 50"),
        "{metrics}"
    );
    assert!(
        c.get(format!("{url}/healthz"))
            .send()
            .unwrap()
            .status()
            .is_success()
    );

    assert_eq!(server.terminate(), Some(0), "graceful shutdown exits 0");
    let report = sealtrail::ledger::verify::verify_data_dir(&data, &k.verifier, None).unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.unsealed_events, 0, "shutdown seals everything");
    let entries = sent_entries(&data);
    let stored_ids: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["event"]["id"].as_str())
        .collect();
    // 10 + 50 + 50 + 3 accepted events, each stored once.
    assert_eq!(stored_ids.len(), 113);
    let rejects = entries
        .iter()
        .filter(|e| e["event"]["action"] == "ingest_rejected")
        .count();
    // two bad lines, the truncated gzip, the bomb, the encoding, the bad UTF-8 line
    assert_eq!(rejects, 6, "every refused input is recorded");
    assert!(
        entries
            .iter()
            .all(|e| e["via"]["kind"] == "http" && e["via"]["peer"] == "127.0.0.1")
    );
}

#[test]
fn oversize_bodies_and_lines_are_refused_with_413_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let data = dir.path().join("data");
    let mut cfg = serve_config(&data, &k, "");
    cfg.push_str("max_body_bytes = 100000\nmax_line_bytes = 2000\n");
    let server = Server::start(dir.path(), &cfg);
    let c = server.client();
    let (status, v) = post(&c, &server.http, vec![b'{'; 200_000], &[]);
    assert_eq!(status, 413, "{v}");
    let long = format!("{}\n{}\n", event_json(1), "x".repeat(5000));
    let (status, v) = post(&c, &server.http, long.into_bytes(), &[]);
    assert_eq!(status, 413, "{v}");
    assert!(v["error"].as_str().unwrap().contains("line 2"), "{v}");
    assert_eq!(server.terminate(), Some(0));
    let entries = sent_entries(&data);
    assert_eq!(entries.len(), 2);
    assert!(
        entries
            .iter()
            .all(|e| e["event"]["action"] == "ingest_rejected")
    );
}

#[test]
fn fhir_audit_events_and_bundles_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let data = dir.path().join("data");
    let server = Server::start(dir.path(), &serve_config(&data, &k, ""));
    let c = server.client();
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fhir");
    let post_fhir = |body: Vec<u8>| {
        let r = c
            .post(format!("{}/fhir/AuditEvent", server.http))
            .header("content-type", "application/fhir+json")
            .body(body)
            .send()
            .unwrap();
        let status = r.status().as_u16();
        let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
        (status, ct, r.json::<Value>().unwrap())
    };
    let mut expected_events = Vec::new();
    for name in ["rest-read-patient", "login", "break-glass", "export"] {
        let (status, ct, v) =
            post_fhir(std::fs::read(fixtures.join(format!("{name}.json"))).unwrap());
        assert_eq!(status, 201, "{name}: {v}");
        assert_eq!(ct, "application/fhir+json");
        assert_eq!(v["resourceType"], "OperationOutcome");
        expected_events.push(
            serde_json::from_slice::<Value>(
                &std::fs::read(fixtures.join(format!("{name}.expected.json"))).unwrap(),
            )
            .unwrap(),
        );
    }
    // A bundle mixing valid and invalid AuditEvents: 400 naming the bad ones, good ones kept.
    let (status, _, v) = post_fhir(std::fs::read(fixtures.join("bundle-mixed.json")).unwrap());
    assert_eq!(status, 400, "{v}");
    let issues = v["issue"].as_array().unwrap();
    assert!(
        issues
            .iter()
            .any(|i| i["severity"] == "error" && i["expression"].is_array()),
        "{v}"
    );
    // Not FHIR at all.
    let (status, _, v) = post_fhir(b"{\"resourceType\":\"Patient\"}".to_vec());
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["issue"][0]["code"], "invalid");
    assert_eq!(server.terminate(), Some(0));

    let entries = sent_entries(&data);
    for want in &expected_events {
        assert!(
            entries.iter().any(|e| &e["event"] == want),
            "stored events lack {want}"
        );
    }
    assert!(entries.iter().all(|e| e["via"]["kind"] == "fhir"));
    assert!(
        entries
            .iter()
            .any(|e| e["event"]["action"] == "ingest_rejected")
    );
}

#[test]
fn a_source_that_stops_while_others_continue_is_reported_silent() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let data = dir.path().join("data");
    let mut cfg = serve_config(&data, &k, "");
    cfg.push_str("[silence]\ncheck_interval = \"100ms\"\nfloor = \"10m\"\nmin_weeks = 0.5\n");
    let server = Server::start(dir.path(), &cfg);
    let c = server.client();
    // Eight days of a 24/7 lab system and EHR, every two minutes; the lab
    // stops on the last day at 10:00 while the EHR goes on until 14:00.
    let start = 1_795_000_000i64; // seconds
    let mut body = String::new();
    for step in 0..(8 * 24 * 30) {
        let t = start + step * 120;
        for system in ["lab", "ehr"] {
            if system == "lab" && step > (7 * 24 + 10) * 30 {
                continue;
            }
            let time = sealtrail::event::Timestamp::from_unix_ms(t * 1000).unwrap();
            body.push_str(&format!(
                "{{\"time\":\"{time}\",\"category\":\"integration\",\"action\":\"data_feed\",\"outcome\":\"success\",\"source\":{{\"system\":\"{system}\"}}}}\n"
            ));
        }
    }
    for chunk in body.lines().collect::<Vec<_>>().chunks(5000) {
        let (status, v) = post(
            &c,
            &server.http,
            (chunk.join("\n") + "\n").into_bytes(),
            &[],
        );
        assert_eq!(status, 200, "{v}");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let m = c
            .get(format!("{}/metrics", server.http))
            .send()
            .unwrap()
            .text()
            .unwrap();
        if m.contains("sealtrail_source_silent_total 1") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no source_silent reported: {}",
            server.log_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(50)); // polling a condition
    }
    assert_eq!(server.terminate(), Some(0));
    let silent: Vec<Value> = stored_entries(&data)
        .into_iter()
        .filter(|e| e["event"]["action"] == "source_silent")
        .collect();
    assert_eq!(silent.len(), 1, "{silent:?}");
    assert_eq!(silent[0]["event"]["source"]["system"], "lab");
    assert_eq!(silent[0]["event"]["category"], "system");
    assert!(
        data.join("state/silence.json").exists(),
        "the learned model is saved"
    );
}

#[test]
fn events_are_enriched_from_lookups_and_phi_is_masked_before_sealing() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let data = dir.path().join("data");
    let lookups = dir.path().join("lookups");
    std::fs::create_dir_all(&lookups).unwrap();
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/lookups/good");
    for f in ["staff.csv", "patients.csv"] {
        std::fs::copy(fixtures.join(f), lookups.join(f)).unwrap();
    }
    let mut cfg = serve_config(&data, &k, "");
    cfg.push_str(&format!(
        "[lookups]\ndir = {:?}\nreload_seconds = 1\n",
        lookups.to_str().unwrap()
    ));
    let server = Server::start(dir.path(), &cfg);
    let c = server.client();
    let event = r#"{"id":"m-1","time":"2026-11-27T14:03:11Z","category":"access","action":"view","outcome":"success","actor":{"user":"u0042"},"patient":{"id":"MRN-0012345"},"message":"called patient at 555-123-4567 about SSN 123-45-6789","attrs":{"note":"email jane.doe@example.org","dob":"1980-02-29","mrn":"MRN-0012345"}}"#;
    let (status, v) = post(&c, &server.http, event.as_bytes().to_vec(), &[]);
    assert_eq!(status, 200, "{v}");
    // The same SSN in another event gives the same token (joinable without plaintext).
    let other = r#"{"id":"m-2","time":"2026-11-27T14:04:11Z","category":"access","action":"view","outcome":"success","message":"SSN 123-45-6789 again"}"#;
    let (status, _) = post(&c, &server.http, other.as_bytes().to_vec(), &[]);
    assert_eq!(status, 200);
    // A lookup edit is picked up without a restart.
    let mut staff = std::fs::read_to_string(lookups.join("staff.csv")).unwrap();
    staff.push_str("u0999,Zed,Newhire,nurse,icu,02141,2026-11-01,\n");
    std::fs::write(lookups.join("staff.csv"), staff).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut n = 3;
    loop {
        let e = format!(
            r#"{{"id":"m-{n}","time":"2026-11-27T14:05:11Z","category":"auth","action":"login","outcome":"success","actor":{{"user":"u0999"}}}}"#
        );
        post(&c, &server.http, e.into_bytes(), &[]);
        let found = stored_entries(&data)
            .iter()
            .any(|e| e["enriched"]["actor"]["last_name"] == "Newhire");
        if found {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "lookup change not picked up: {}",
            server.log_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(200)); // polling a condition
        n += 1;
    }
    assert_eq!(server.terminate(), Some(0));

    let entries = stored_entries(&data);
    let first = entries.iter().find(|e| e["event"]["id"] == "m-1").unwrap();
    assert_eq!(first["enriched"]["actor"]["last_name"], "Okafor");
    assert_eq!(first["enriched"]["patient"]["employee_user"], "u0042");
    let text = serde_json::to_string(first).unwrap();
    for secret in [
        "555-123-4567",
        "123-45-6789",
        "jane.doe@example.org",
        "1980-02-29",
    ] {
        assert!(!text.contains(secret), "{secret} stored in clear: {text}");
    }
    assert!(
        text.contains("[ssn:") && text.contains("[phone:") && text.contains("[email:"),
        "{text}"
    );
    assert_eq!(
        first["event"]["attrs"]["mrn"], "MRN-0012345",
        "ids are not PHI patterns"
    );
    let token = |e: &Value| {
        let m = e["event"]["message"].as_str().unwrap().to_owned();
        m[m.find("[ssn:").unwrap()..]
            .split(']')
            .next()
            .unwrap()
            .to_owned()
    };
    let second = entries.iter().find(|e| e["event"]["id"] == "m-2").unwrap();
    assert_eq!(token(first), token(second));
}

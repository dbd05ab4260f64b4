//! `sealtrail gen`: the files it writes, determinism, usage errors, and
//! `--send` into a real `sealtrail serve` with the generated lookups.

use crate::util::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const FILES: [&str; 6] = [
    "events.ndjson",
    "staff.csv",
    "patients.csv",
    "networks.csv",
    "labels.ndjson",
    "summary.json",
];

fn run_gen(out: &Path, seed: u64, days: u32, extra: &[&str]) -> Output {
    Command::new(bin())
        .args(["gen", "--days", &days.to_string(), "--users", "20"])
        .args(["--patients", "300", "--seed", &seed.to_string(), "--out"])
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

fn ids(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("events.ndjson"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["id"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[test]
fn gen_writes_the_same_bytes_for_the_same_seed() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    for (out, seed) in [(&a, 9), (&b, 9), (&c, 10)] {
        let o = run_gen(out, seed, 30, &[]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stderr).contains("labeled incidents"));
    }
    for f in FILES {
        let x = std::fs::read(a.join(f)).unwrap();
        assert!(!x.is_empty(), "{f} is empty");
        assert_eq!(x, std::fs::read(b.join(f)).unwrap(), "{f} differs");
    }
    assert_ne!(
        std::fs::read(a.join("events.ndjson")).unwrap(),
        std::fs::read(c.join("events.ndjson")).unwrap()
    );
    // The contracted lookup headers.
    let staff = std::fs::read_to_string(a.join("staff.csv")).unwrap();
    assert_eq!(
        staff.lines().next(),
        Some("user,name,last_name,role,department,home_zip,hired,terminated")
    );
    let patients = std::fs::read_to_string(a.join("patients.csv")).unwrap();
    assert_eq!(
        patients.lines().next(),
        Some("patient,last_name,home_zip,vip,employee_user")
    );
    // Labels point at events that exist; the summary counts them per family.
    let all: BTreeSet<String> = ids(&a).into_iter().collect();
    let labels = std::fs::read_to_string(a.join("labels.ndjson")).unwrap();
    let mut families = BTreeSet::new();
    for line in labels.lines() {
        let l: Value = serde_json::from_str(line).unwrap();
        for key in ["incident", "family", "first_time", "last_time"] {
            assert!(l[key].is_string(), "{key} in {l}");
        }
        assert!(l["group"].is_object());
        let evs = l["event_ids"].as_array().unwrap();
        assert!(!evs.is_empty());
        for id in evs {
            assert!(all.contains(id.as_str().unwrap()), "{id} of {l}");
        }
        families.insert(l["family"].as_str().unwrap().to_owned());
    }
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["incidents"], labels.lines().count());
    let listed = summary["families"].as_object().unwrap();
    assert_eq!(listed.len(), 17);
    for f in &families {
        assert!(listed[f]["incidents"].as_u64().unwrap() >= 1, "{f}");
    }
    // 30 days are enough for every family.
    assert_eq!(families.len(), 17, "{families:?}");
}

#[test]
fn gen_usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(bin())
        .args(["gen", "--days", "3", "--users", "3", "--patients", "300"])
        .args(["--seed", "1", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--users"));
    // --rate needs --send.
    let o = run_gen(dir.path(), 1, 2, &["--rate", "10"]);
    assert_eq!(o.status.code(), Some(2));
    let o = run_gen(dir.path(), 1, 2, &["--start", "yesterday"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--start"));
    // Nothing listens there: a clear error, not a hang.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let o = run_gen(dir.path(), 1, 2, &["--send", &url]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("sending to") && err.contains(&url), "{err}");
}

#[test]
fn gen_send_delivers_every_event_to_a_real_server() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let data = dir.path().join("data");
    let out = dir.path().join("practice");
    // The lookups the generator is about to write; the server reloads them.
    std::fs::create_dir_all(&out).unwrap();
    let mut cfg = serve_config(&data, &k, "");
    cfg.push_str(&format!(
        "[lookups]\ndir = {:?}\nreload_seconds = 1\n",
        out.to_str().unwrap()
    ));
    let server = Server::start(dir.path(), &cfg);
    // Lookups first (a run without --send), so enrichment sees them.
    let o = run_gen(&out, 3, 2, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Wait for the server to have reloaded the generated tables.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !server
        .log_text()
        .lines()
        .any(|l| l.contains("lookups loaded") && !l.contains("staff=0"))
    {
        assert!(
            Instant::now() < deadline,
            "lookups never reloaded: {}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(50)); // polling a condition
    }
    let expected = ids(&out);
    let rate = 2000.0;
    let started = Instant::now();
    let o = Command::new(bin())
        .args(["gen", "--days", "2", "--users", "20"])
        .args(["--patients", "300", "--seed", "3", "--out"])
        .arg(&out)
        .args(["--send", &server.http, "--rate", "2000"])
        .env("SEALTRAIL_TOKEN", &server.token)
        .output()
        .unwrap();
    let took = started.elapsed();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("sent {} events", expected.len())),
        "{err}"
    );
    // Paced at about the rate asked for.
    let floor = Duration::from_secs_f64(expected.len() as f64 / rate * 0.7);
    assert!(took >= floor, "{took:?} for {} events", expected.len());

    // Searchable by id.
    let client = server.client();
    let probe = &expected[expected.len() / 2];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v: Value = client
            .get(format!("{}/v1/search", server.http))
            .query(&[("q", format!("id:{probe}"))])
            .send()
            .unwrap()
            .json()
            .unwrap();
        if v["total"] == 1 {
            assert_eq!(v["hits"][0]["event"]["id"], probe.as_str());
            break;
        }
        assert!(Instant::now() < deadline, "{probe} not searchable: {v}");
        std::thread::sleep(Duration::from_millis(200)); // polling a condition
    }
    assert_eq!(server.terminate(), Some(0));

    // Every generated event stored exactly once, enriched from the lookups.
    let entries = stored_entries(&data);
    let stored: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["event"]["id"].as_str())
        .filter(|id| id.starts_with("gen-"))
        .collect();
    assert_eq!(stored.len(), expected.len());
    assert_eq!(
        stored.iter().copied().collect::<BTreeSet<_>>(),
        expected.iter().map(String::as_str).collect::<BTreeSet<_>>()
    );
    let enriched = entries
        .iter()
        .filter(|e| {
            e["event"]["category"] == "access" && e["enriched"]["actor"]["last_name"].is_string()
        })
        .count();
    assert!(enriched > 100, "{enriched} enriched access events");
    assert!(
        entries
            .iter()
            .any(|e| e["enriched"]["patient"]["last_name"].is_string()),
        "no patient enrichment"
    );
}

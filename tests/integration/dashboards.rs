//! The shipped dashboards (`dashboards/*.json`): their definitions are
//! valid (format, ids, queries through the service's own parser, fields of
//! the event schema), every panel answers with data from a real server fed
//! with a practice's sample, and the Grafana dashboard names only metrics
//! that a running server exports.

use crate::util::*;
use reqwest::blocking::Client;
use sealtrail::dashboards::{self, Dashboard, PanelKind};
use sealtrail::event::Timestamp;
use sealtrail::index::SearchIndex;
use sealtrail::index::schema::Fields;
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

fn dashboards_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards")
}

/// A search index over an empty in-memory index: only its query parser is used.
fn parser(dir: &Path) -> SearchIndex {
    let index = tantivy::Index::create_in_ram(Fields::new().schema);
    SearchIndex::new(index, dir).unwrap()
}

const REQUIRED: [&str; 5] = [
    "hipaa-overview",
    "authentication",
    "ephi-access",
    "admin-changes",
    "integrity",
];

#[test]
fn shipped_dashboards_parse_and_name_real_fields() {
    let dir = tempfile::tempdir().unwrap();
    let boards = dashboards::load_dir(&dashboards_dir()).unwrap();
    let ids: HashSet<&str> = boards.iter().map(|d| d.id.as_str()).collect();
    for id in REQUIRED {
        assert!(ids.contains(id), "dashboard {id} is missing");
    }
    let problems = dashboards::check(&boards, &parser(dir.path()));
    assert!(problems.is_empty(), "{problems:#?}");
    // The file name is the id, so the console can link to `<id>.json`.
    for d in &boards {
        assert!(
            dashboards_dir().join(format!("{}.json", d.id)).is_file(),
            "{}",
            d.id
        );
    }
}

#[test]
fn the_dashboard_check_finds_each_kind_of_mistake() {
    let dir = tempfile::tempdir().unwrap();
    let index = parser(dir.path());
    let board = |panels: Value| {
        json!({"id": "x", "title": "X", "range": "24h", "panels": panels}).to_string()
    };
    let problems_of = |text: &str| {
        let d = Dashboard::parse(text).unwrap();
        dashboards::check(&[d.clone(), d], &index)
    };
    let ok = board(json!([{"id": "p", "title": "P", "kind": "stat", "query": "category:auth"}]));
    let twice = problems_of(&ok);
    assert_eq!(twice.len(), 1, "{twice:?}");
    assert!(twice[0].contains("used twice"), "{twice:?}");
    for (panel, want) in [
        (
            json!({"id": "p", "title": "P", "kind": "stat", "query": "actor.usr:u1"}),
            "actor.usr",
        ),
        (
            json!({"id": "p", "title": "P", "kind": "stat", "query": "action:(login"}),
            "query",
        ),
        (
            json!({"id": "p", "title": "P", "kind": "top", "query": "*"}),
            "needs field",
        ),
        (
            json!({"id": "p", "title": "P", "kind": "top", "query": "*", "field": "actor.nam"}),
            "actor.nam",
        ),
        (
            json!({"id": "p", "title": "P", "kind": "stat", "query": "*", "field": "action"}),
            "top panels only",
        ),
        (
            json!({"id": "p", "title": "P", "kind": "timeseries", "query": "*", "range": "30d", "interval": "1m"}),
            "buckets",
        ),
    ] {
        let d = Dashboard::parse(&board(json!([panel]))).unwrap();
        let problems = dashboards::check(&[d], &index);
        assert!(
            problems.iter().any(|p| p.contains(want)),
            "{panel}: {problems:?}"
        );
    }
    for bad in [
        json!({"id": "p", "title": "P", "kind": "pie", "query": "*"}),
        json!({"id": "p", "title": "P", "kind": "stat", "query": "*", "range": "5s"}),
        json!({"id": "p", "title": "P", "kind": "stat", "query": "*", "colour": "red"}),
    ] {
        assert!(Dashboard::parse(&board(json!([bad]))).is_err(), "{bad}");
    }
}

/// Panels whose data the sample cannot hold: they need a witness that
/// refuses or a publishing target, or a source silent for longer than its
/// learned rhythm (days of history). Their queries are still run.
const NEEDS_CONFIGURATION: [&str; 2] = ["integrity/witness", "integrity/silent"];

/// A small practice's last hour, in the vocabulary of DESIGN.md (nothing
/// `sealtrail gen` specific): sign-ins, ePHI access, administration,
/// integrations.
fn sample(now_ms: i64) -> Vec<Value> {
    let mut events = Vec::new();
    let t = |minutes_ago: i64| {
        Timestamp::from_unix_ms(now_ms - minutes_ago * 60_000)
            .unwrap()
            .to_string()
    };
    let staff = [
        ("dr.lee", "physician", "cardiology", "10.1.2.11"),
        ("n.okafor", "nurse", "cardiology", "10.1.2.12"),
        ("front.desk", "front_desk", "reception", "10.1.3.20"),
        ("billing1", "billing", "billing", "10.1.4.30"),
    ];
    for (i, (user, role, dept, ip)) in staff.iter().enumerate() {
        let actor =
            json!({"user": user, "role": role, "department": dept, "ip": ip, "mfa": i != 2});
        events.push(
            json!({"time": t(50 - i as i64), "category": "auth", "action": "login",
            "outcome": "success", "actor": actor, "source": {"system": "ehr", "host": "ehr-app"}}),
        );
        for p in 0..3 {
            events.push(json!({"time": t(40 - p), "category": "access", "action": "view",
                "outcome": "success", "actor": actor, "patient": {"id": format!("P{}", 100 + p + i as i64)},
                "resource": {"type": "chart", "id": format!("enc-{i}{p}")}, "reason": "treatment",
                "source": {"system": "ehr"}, "records": 1}));
        }
    }
    // Someone guessing a nurse's password from outside.
    for k in 0..6 {
        events.push(
            json!({"time": t(30 - k), "category": "auth", "action": "login", "outcome": "failure",
            "actor": {"user": "n.okafor", "ip": "203.0.113.7"}, "source": {"system": "portal"},
            "message": "bad password"}),
        );
    }
    events.push(
        json!({"time": t(24), "category": "auth", "action": "account_lockout", "outcome": "success",
        "actor": {"user": "n.okafor"}, "source": {"system": "portal"}}),
    );
    events.push(
        json!({"time": t(22), "category": "auth", "action": "password_reset", "outcome": "success",
        "actor": {"user": "it.admin"}, "target_user": "n.okafor", "source": {"system": "idp"}}),
    );
    events.push(
        json!({"time": t(20), "category": "access", "action": "view", "outcome": "success",
        "actor": {"user": "dr.lee", "role": "physician", "department": "cardiology"},
        "patient": {"id": "P900"}, "resource": {"type": "chart"}, "reason": "break_glass",
        "attrs": {"justification": "unconscious patient in ED"}, "source": {"system": "ehr"}}),
    );
    events.push(json!({"time": t(18), "category": "access", "action": "export", "outcome": "success",
        "actor": {"user": "billing1", "role": "billing", "department": "billing"},
        "resource": {"type": "claims_report"}, "records": 420, "reason": "payment", "source": {"system": "billing"}}));
    events.push(json!({"time": t(17), "category": "access", "action": "print", "outcome": "success",
        "actor": {"user": "front.desk", "department": "reception"}, "patient": {"id": "P101"},
        "resource": {"type": "schedule"}, "records": 12, "reason": "operations", "source": {"system": "pm"}}));
    events.push(
        json!({"time": t(16), "category": "access", "action": "view", "outcome": "failure",
        "actor": {"user": "front.desk", "department": "reception"}, "patient": {"id": "P102"},
        "resource": {"type": "chart"}, "source": {"system": "ehr"}, "message": "not permitted"}),
    );
    for (m, action, target, ticket) in [
        (15, "user_create", "new.hire", Some("CHG-1201")),
        (14, "role_grant", "new.hire", Some("CHG-1201")),
        (13, "user_disable", "old.temp", None),
        (12, "audit_config_change", "", None),
    ] {
        let mut e = json!({"time": t(m), "category": "admin", "action": action, "outcome": "success",
            "actor": {"user": "it.admin", "role": "admin"}, "source": {"system": "idp"}});
        if !target.is_empty() {
            e["target_user"] = json!(target);
        }
        if let Some(ticket) = ticket {
            e["attrs"] = json!({"change_ticket": ticket});
        }
        events.push(e);
    }
    events.push(
        json!({"time": t(10), "category": "integration", "action": "api_call", "outcome": "success",
        "actor": {"user": "svc-lab"}, "source": {"system": "lab"}}),
    );
    events
}

fn search(c: &Client, url: &str, body: &Value) -> Value {
    let (status, v) = post_json(c, &format!("{url}/v1/search"), body);
    assert_eq!(status, 200, "{body}: {v}");
    v
}

/// How much data a panel's answer holds: total, rows or bucket counts.
fn amount(kind: PanelKind, v: &Value) -> u64 {
    let buckets = || {
        v["aggs"][0]["buckets"].as_array().map_or(0, |b| {
            b.iter().filter_map(|b| b["doc_count"].as_u64()).sum()
        })
    };
    match kind {
        PanelKind::Stat => v["total"].as_u64().unwrap_or(0),
        PanelKind::Table => v["hits"].as_array().map_or(0, |h| h.len() as u64),
        PanelKind::Top | PanelKind::Timeseries => buckets(),
    }
}

#[test]
fn every_panel_answers_with_data_over_the_http_api() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let rules = rules_folder(&dir.path().join("rules"), DETECTION_RULES);
    let server = Server::start(
        dir.path(),
        &detection_config(dir.path(), &k, &rules, "500ms", ""),
    );
    let c = server.client();
    let url = server.http.clone();
    let now_ms = Timestamp::now().unix_ms();
    let events = sample(now_ms);
    post_events(&c, &url, &Value::Array(events.clone()));
    // A line a source got wrong: recorded as system/ingest_rejected.
    let (status, _) = post_json(
        &c,
        &format!("{url}/v1/events"),
        &json!({"time": "yesterday", "category": "auth", "action": "login", "outcome": "success"}),
    );
    assert_eq!(status, 400);
    // Everything searchable, and the rules' alerts raised.
    server.wait_for("the sample indexed and alerts raised", || {
        let all = search(
            &c,
            &url,
            &json!({"q": "category:system AND action:alert", "limit": 0}),
        );
        let sent = search(&c, &url, &json!({"q": "NOT category:system", "limit": 0}));
        (all["total"].as_u64() >= Some(2) && sent["total"].as_u64() >= Some(events.len() as u64))
            .then_some(())
    });
    let boards = dashboards::load_dir(&dashboards_dir()).unwrap();
    let mut empty = Vec::new();
    let mut checked = 0;
    for d in &boards {
        for p in &d.panels {
            let name = format!("{}/{}", d.id, p.id);
            let v = search(&c, &url, &p.search_body(d, Timestamp::now()));
            checked += 1;
            if amount(p.kind, &v) == 0 && !NEEDS_CONFIGURATION.contains(&name.as_str()) {
                empty.push(format!("{name} ({:?} {:?}): {v}", p.kind, p.query));
            }
            // A top panel's buckets are values of its field.
            if p.kind == PanelKind::Top {
                assert!(
                    v["aggs"][0]["buckets"][0]["key"].is_string()
                        || v["aggs"][0]["buckets"][0]["key"].is_number(),
                    "{name}: {v}"
                );
            }
        }
    }
    assert!(checked >= 30, "{checked} panels");
    assert!(
        empty.is_empty(),
        "panels without data:\n{}",
        empty.join("\n")
    );
    // Spot checks that the answers are the sample's, not just non-empty.
    let by_name = |id: &str, panel: &str| {
        let d = boards.iter().find(|d| d.id == id).unwrap();
        let p = d.panels.iter().find(|p| p.id == panel).unwrap();
        search(&c, &url, &p.search_body(d, Timestamp::now()))
    };
    assert_eq!(
        by_name("authentication", "failed-by-ip")["aggs"][0]["buckets"][0]["key"],
        "203.0.113.7"
    );
    assert_eq!(by_name("authentication", "no-mfa")["total"], 1);
    assert_eq!(by_name("admin-changes", "no-ticket")["total"], 2);
    assert_eq!(
        by_name("ephi-access", "bulk")["hits"][0]["event"]["records"],
        420
    );
    assert_eq!(by_name("hipaa-overview", "break-glass")["total"], 1);
}

/// Metric names in PromQL text: `sealtrail_` identifiers.
fn promql_metrics(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(at) = expr[i..].find("sealtrail_") {
        let start = i + at;
        let boundary =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        if boundary {
            out.insert(expr[start..end].to_owned());
        }
        i = end;
    }
    out
}

fn collect_exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("expr", Value::String(s)) => out.push(s.clone()),
                    _ => collect_exprs(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_exprs(x, out)),
        _ => {}
    }
}

#[test]
fn the_grafana_dashboard_names_only_exported_metrics() {
    let text = std::fs::read_to_string(dashboards_dir().join("grafana/sealtrail.json")).unwrap();
    let grafana: Value = serde_json::from_str(&text).unwrap();
    assert!(
        grafana["schemaVersion"].as_u64() >= Some(36),
        "schemaVersion"
    );
    let vars = grafana["templating"]["list"].as_array().unwrap();
    assert!(
        vars.iter().any(|v| v["name"] == "datasource"
            && v["type"] == "datasource"
            && v["query"] == "prometheus"),
        "no ${{datasource}} Prometheus variable"
    );
    let mut exprs = Vec::new();
    collect_exprs(&grafana["panels"], &mut exprs);
    assert!(exprs.len() >= 15, "{} expressions", exprs.len());
    // Every panel queries the variable's data source.
    for p in grafana["panels"].as_array().unwrap() {
        if p["type"] != "row" {
            assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        }
    }
    let named: BTreeSet<String> = exprs.iter().flat_map(|e| promql_metrics(e)).collect();
    assert!(named.len() >= 20, "{named:?}");

    // A server with rules and an (unreachable) witness, fed some events, a
    // rejected line and a refused request, so every family has a series.
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let rules = rules_folder(&dir.path().join("rules"), DETECTION_RULES);
    let wdir = dir.path().join("witness");
    let wvkey = super::witness::witness_keygen(&wdir, "auditor.example/w1");
    let witness = format!(
        "[[witness]]\nurl = \"http://127.0.0.1:9\"\nvkey_file = {:?}\ntimeout = \"1s\"\n",
        wvkey.to_str().unwrap()
    );
    let server = Server::start(
        dir.path(),
        &detection_config(dir.path(), &k, &rules, "500ms", &witness),
    );
    let c = server.client();
    let url = server.http.clone();
    post_events(&c, &url, &Value::Array(sample(Timestamp::now().unix_ms())));
    // An action outside the vocabulary: stored and counted.
    post_events(
        &c,
        &url,
        &json!({"time": Timestamp::now().to_string(), "category": "integration",
                "action": "fax_sent", "outcome": "success"}),
    );
    let (status, _) = post_json(
        &c,
        &format!("{url}/v1/events"),
        &json!({"category": "auth"}),
    );
    assert_eq!(status, 400);
    let refused = client_with("not-a-token")
        .get(format!("{url}/v1/search"))
        .send()
        .unwrap();
    assert_eq!(refused.status().as_u16(), 401, "unknown token");
    // Counters of the first checkpoint and witness round appear shortly.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let text = c
            .get(format!("{url}/metrics"))
            .send()
            .unwrap()
            .text()
            .unwrap();
        let rendered: BTreeSet<String> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(['{', ' ']).next())
            .map(str::to_owned)
            .collect();
        let missing: Vec<&String> = named
            .iter()
            .filter(|n| !exported_as(n, &rendered))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the Grafana dashboard names metrics /metrics does not export: {missing:?}\n{text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100)); // polling a condition
    }
}

/// Whether the metric a PromQL expression names is among the rendered
/// series names (a histogram `x` renders `x_bucket`, `x_sum`, `x_count`).
fn exported_as(name: &str, rendered: &BTreeSet<String>) -> bool {
    rendered.contains(name)
        || ["_bucket", "_sum", "_count"].iter().any(|s| {
            name.strip_suffix(s)
                .is_some_and(|base| rendered.contains(&format!("{base}_bucket")))
        })
}

//! The JSON Schema and the Rust decoder must agree on every document:
//! each case goes through both and both verdicts must match the expected one.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)] // test code

use std::path::{Path, PathBuf};

use sealtrail::event::Event;
use sealtrail::event::limits::*;
use serde_json::{Value, json};

fn schema_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/event.schema.json")
}

fn validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(schema_path()).unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    jsonschema::draft202012::meta::validate(&schema).unwrap();
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&schema)
        .unwrap()
}

fn base() -> Value {
    json!({"time": "2026-11-27T14:03:11Z", "category": "access", "action": "view", "outcome": "success"})
}

/// `base()` with dotted `path` set to `value` (objects created on the way).
fn set(path: &str, value: Value) -> String {
    let mut doc = base();
    let mut cur = &mut doc;
    let parts: Vec<&str> = path.split('.').collect();
    let (last, parents) = parts.split_last().unwrap();
    for p in parents {
        cur = cur
            .as_object_mut()
            .unwrap()
            .entry(p.to_string())
            .or_insert_with(|| json!({}));
    }
    cur.as_object_mut().unwrap().insert(last.to_string(), value);
    doc.to_string()
}

fn remove(key: &str) -> String {
    let mut doc = base();
    doc.as_object_mut().unwrap().remove(key);
    doc.to_string()
}

fn attrs_nested(containers: usize) -> Value {
    // `containers` levels of objects/arrays counting attrs itself.
    let mut v = json!("leaf");
    for i in 1..containers {
        v = if i % 2 == 0 {
            json!([v])
        } else {
            json!({"k": v})
        };
    }
    json!({"k": v})
}

fn cases() -> Vec<(String, String, bool)> {
    let mut c: Vec<(String, String, bool)> = Vec::new();
    let mut ok = |name: &str, doc: String| c.push((name.to_owned(), doc, true));
    // Valid: every category, every outcome, optional fields and limits at the edge.
    ok("minimal", base().to_string());
    for (cat, action) in [
        ("auth", "login"),
        ("access", "export"),
        ("admin", "user_disable"),
        ("integration", "fhir_read"),
        ("system", "ingest_rejected"),
    ] {
        let mut d = base();
        d["category"] = json!(cat);
        d["action"] = json!(action);
        ok(&format!("category {cat}"), d.to_string());
    }
    ok("outcome failure", set("outcome", json!("failure")));
    ok("outcome unknown", set("outcome", json!("unknown")));
    ok(
        "unknown action accepted",
        set("action", json!("teleport_2")),
    );
    ok(
        "time with offset and fraction",
        set("time", json!("2026-11-27T15:03:11.120+01:00")),
    );
    ok(
        "time lowercase t and z",
        set("time", json!("2026-11-27t14:03:11z")),
    );
    ok(
        "time -00:00",
        set("time", json!("2026-11-27T14:03:11-00:00")),
    );
    ok(
        "time leap second utc",
        set("time", json!("2016-12-31T23:59:60Z")),
    );
    ok(
        "time leap second via offset",
        set("time", json!("2017-01-01T00:59:60+01:00")),
    );
    ok(
        "time 1970 epoch",
        set("time", json!("1970-01-01T00:00:00Z")),
    );
    ok(
        "time 9999 end",
        set("time", json!("9999-12-31T23:59:59.999999999+00:00")),
    );
    ok(
        "time 1970-01-02 with offset",
        set("time", json!("1970-01-02T00:30:00+01:00")),
    );
    ok("id at limit", set("id", json!("i".repeat(MAX_ID_CHARS))));
    ok(
        "id multibyte at limit",
        set("id", json!("é".repeat(MAX_ID_CHARS))),
    );
    ok(
        "action at limit",
        set("action", json!("a".repeat(MAX_ACTION_CHARS))),
    );
    ok("ipv6", set("actor.ip", json!("fe80::1")));
    ok(
        "ipv4-mapped ipv6",
        set("actor.ip", json!("::ffff:192.0.2.1")),
    );
    ok(
        "short string at limit",
        set("actor.user", json!("u".repeat(MAX_SHORT_CHARS))),
    );
    ok("records zero", set("records", json!(0)));
    ok("records max", set("records", json!(MAX_RECORDS)));
    ok("records integral float", set("records", json!(2.0)));
    ok("message empty", set("message", json!("")));
    ok(
        "message at limit",
        set("message", json!("m".repeat(MAX_MESSAGE_CHARS))),
    );
    ok("attrs empty", set("attrs", json!({})));
    ok(
        "attrs all json types",
        set(
            "attrs",
            json!({"s": "x", "n": 1.5, "i": -3, "b": true, "z": null, "a": [1, "two"], "o": {"p": "q"}}),
        ),
    );
    ok(
        "attrs at depth limit",
        set("attrs", attrs_nested(MAX_ATTRS_DEPTH)),
    );
    ok(
        "attrs string at limit",
        set("attrs", json!({"s": "x".repeat(MAX_ATTRS_STRING_CHARS)})),
    );
    ok(
        "attrs items at limit",
        set("attrs", json!({"l": vec![0; MAX_ATTRS_ITEMS]})),
    );

    let mut bad = |name: &str, doc: String| c.push((name.to_owned(), doc, false));
    for key in ["time", "category", "action", "outcome"] {
        bad(&format!("missing {key}"), remove(key));
    }
    bad("patient without id", set("patient", json!({})));
    bad(
        "resource without type",
        set("resource", json!({"id": "r1"})),
    );
    bad("source without system", set("source", json!({"host": "h"})));
    bad("unknown top-level key", set("user", json!("u1")));
    for obj in ["actor", "patient", "resource", "source"] {
        bad(
            &format!("unknown key in {obj}"),
            set(&format!("{obj}.extra"), json!(1)),
        );
    }
    bad("document is an array", json!([base()]).to_string());
    bad("document is a string", json!("event").to_string());
    bad("actor is an array", set("actor", json!(["u1"])));
    bad("actor is null", set("actor", json!(null)));
    bad("message is null", set("message", json!(null)));
    bad("time is a number", set("time", json!(1_764_252_191)));
    bad("ip is a number", set("actor.ip", json!(5)));
    bad("mfa is a string", set("actor.mfa", json!("yes")));
    bad("records is a string", set("records", json!("1")));
    bad("records negative", set("records", json!(-1)));
    bad("records fractional", set("records", json!(1.5)));
    bad(
        "records above 2^53-1",
        set("records", json!(MAX_RECORDS + 1)),
    );
    bad("attrs is an array", set("attrs", json!([1])));
    bad("category unknown", set("category", json!("network")));
    bad("category uppercase", set("category", json!("Auth")));
    bad("outcome unknown value", set("outcome", json!("ok")));
    bad("outcome is a number", set("outcome", json!(0)));
    for t in [
        "2026-11-27T14:03:11",
        "2026-11-27 14:03:11Z",
        "2026-11-27",
        "2026-02-30T14:03:11Z",
        "2026-11-27T24:00:00Z",
        "2026-11-27T14:03:11+0100",
        "2026-11-27T14:03:11.Z",
        "2026-06-15T12:59:60Z",
        "1969-12-31T23:59:59Z",
        "0001-01-01T00:00:00Z",
        "1970-01-01T00:30:00+01:00",
        "9999-12-31T23:30:00-01:00",
        "yesterday",
        "",
    ] {
        bad(&format!("time {t:?}"), set("time", json!(t)));
    }
    for a in [
        "",
        "View",
        "9lives",
        "_x",
        "dash-ed",
        "has space",
        "view\n",
        "a".repeat(MAX_ACTION_CHARS + 1).as_str(),
    ] {
        bad(&format!("action {a:?}"), set("action", json!(a)));
    }
    for ip in [
        "10.20.1",
        "10.20.1.256",
        "010.20.1.17",
        "example.org",
        "[::1]",
        "fe80::1%eth0",
        "10.0.0.1:443",
        "",
    ] {
        bad(&format!("ip {ip:?}"), set("actor.ip", json!(ip)));
    }
    bad("id empty", set("id", json!("")));
    bad(
        "id too long",
        set("id", json!("i".repeat(MAX_ID_CHARS + 1))),
    );
    bad("short string empty", set("patient.id", json!("")));
    bad(
        "short string too long",
        set("source.system", json!("s".repeat(MAX_SHORT_CHARS + 1))),
    );
    bad(
        "reason too long",
        set("reason", json!("r".repeat(MAX_SHORT_CHARS + 1))),
    );
    bad(
        "message too long",
        set("message", json!("m".repeat(MAX_MESSAGE_CHARS + 1))),
    );
    bad(
        "attrs too deep",
        set("attrs", attrs_nested(MAX_ATTRS_DEPTH + 1)),
    );
    bad(
        "attrs too many members",
        set(
            "attrs",
            (0..=MAX_ATTRS_ENTRIES)
                .map(|i| (format!("k{i}"), json!(i)))
                .collect(),
        ),
    );
    bad(
        "attrs nested too many members",
        set(
            "attrs",
            json!({"o": (0..=MAX_ATTRS_ENTRIES).map(|i| (format!("k{i}"), json!(i))).collect::<serde_json::Map<_, _>>()}),
        ),
    );
    bad(
        "attrs too many items",
        set("attrs", json!({"l": vec![0; MAX_ATTRS_ITEMS + 1]})),
    );
    bad(
        "attrs string too long",
        set(
            "attrs",
            json!({"s": "x".repeat(MAX_ATTRS_STRING_CHARS + 1)}),
        ),
    );
    bad(
        "attrs nested string too long",
        set(
            "attrs",
            json!({"l": [{"s": "x".repeat(MAX_ATTRS_STRING_CHARS + 1)}]}),
        ),
    );
    bad("attrs empty key", set("attrs", json!({"": 1})));
    bad(
        "attrs key too long",
        set("attrs", json!({"k".repeat(MAX_ATTRS_KEY_CHARS + 1): 1})),
    );
    c
}

fn fixture_cases() -> Vec<(String, String, bool)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/events");
    let mut out = Vec::new();
    for (sub, expected) in [("valid", true), ("invalid", false)] {
        let mut files: Vec<_> = std::fs::read_dir(dir.join(sub))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no fixtures in {sub}");
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            out.push((
                format!("{sub}/{}", f.file_name().unwrap().to_string_lossy()),
                text,
                expected,
            ));
        }
    }
    out
}

fn schema_verdict(v: &jsonschema::Validator, doc: &str) -> Result<(), String> {
    let value: Value = serde_json::from_str(doc).map_err(|e| format!("not json: {e}"))?;
    let errors: Vec<String> = v
        .iter_errors(&value)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

#[test]
fn schema_and_decoder_agree() {
    let v = validator();
    let all: Vec<_> = cases().into_iter().chain(fixture_cases()).collect();
    assert!(all.len() >= 40, "only {} cases", all.len());
    let mut failures = Vec::new();
    for (name, doc, expected) in &all {
        let schema = schema_verdict(&v, doc);
        let rust = Event::from_json(doc.as_bytes())
            .map(|_| ())
            .map_err(|e| e.to_string());
        if schema.is_ok() != *expected || rust.is_ok() != *expected {
            failures.push(format!(
                "{name}: expected valid={expected}, schema={schema:?}, rust={rust:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases disagree:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}

#[test]
fn format_assertion_is_on() {
    // Without format assertion a bad ip would pass the schema and the
    // agreement test above would be vacuous for formats.
    let v = validator();
    assert!(schema_verdict(&v, &set("actor.ip", json!("nope"))).is_err());
    assert!(schema_verdict(&v, &set("time", json!("2026-13-01T00:00:00Z"))).is_err());
}

#[test]
fn schema_states_the_rust_limits() {
    let text = std::fs::read_to_string(schema_path()).unwrap();
    let s: Value = serde_json::from_str(&text).unwrap();
    let p = &s["properties"];
    assert_eq!(p["id"]["maxLength"], json!(MAX_ID_CHARS));
    assert_eq!(p["action"]["maxLength"], json!(MAX_ACTION_CHARS));
    assert_eq!(p["message"]["maxLength"], json!(MAX_MESSAGE_CHARS));
    assert_eq!(p["records"]["maximum"], json!(MAX_RECORDS));
    assert_eq!(s["$defs"]["short"]["maxLength"], json!(MAX_SHORT_CHARS));
    assert_eq!(p["attrs"]["maxProperties"], json!(MAX_ATTRS_ENTRIES));
    assert_eq!(
        p["attrs"]["propertyNames"]["maxLength"],
        json!(MAX_ATTRS_KEY_CHARS)
    );
    let deepest = &s["$defs"][format!("attrs_{MAX_ATTRS_DEPTH}")];
    assert_eq!(deepest["maxItems"], json!(MAX_ATTRS_ITEMS));
    assert_eq!(deepest["maxLength"], json!(MAX_ATTRS_STRING_CHARS));
    assert_eq!(deepest["items"]["$ref"], json!("#/$defs/attrs_scalar"));
    assert!(
        s["$defs"]
            .get(format!("attrs_{}", MAX_ATTRS_DEPTH + 1))
            .is_none()
    );
    assert!(
        s["description"]
            .as_str()
            .unwrap()
            .contains(&MAX_EVENT_BYTES.to_string())
    );
}

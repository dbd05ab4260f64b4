//! Unit tests of parsing, validation and canonical bytes.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::limits::*;
use super::*;

fn full() -> Value {
    json!({
        "id": "evt-7f3c",
        "time": "2026-11-27T14:03:11.123Z",
        "category": "access",
        "action": "view",
        "outcome": "success",
        "actor": {"user": "u0042", "role": "clinician", "department": "cardiology",
                  "ip": "10.20.1.17", "session": "s-9a1", "device": "ws-14", "mfa": true},
        "patient": {"id": "MRN-0012345"},
        "resource": {"type": "chart", "id": "enc-991"},
        "target_user": "u0077",
        "source": {"system": "ehr", "host": "app-01"},
        "reason": "treatment",
        "records": 1,
        "message": "Viewed encounter note",
        "attrs": {"any": "extra"}
    })
}

fn minimal() -> Value {
    json!({"time": "2026-11-27T14:03:11Z", "category": "auth", "action": "login", "outcome": "failure"})
}

fn parse(v: &Value) -> Result<Event, EventError> {
    Event::from_json(v.to_string().as_bytes())
}

/// Sets `path` (dotted) in a copy of `base`, creating objects on the way.
fn with(base: Value, path: &str, value: Value) -> Value {
    let mut doc = base;
    let mut cur = &mut doc;
    let parts: Vec<&str> = path.split('.').collect();
    for part in &parts[..parts.len() - 1] {
        cur = cur
            .as_object_mut()
            .unwrap()
            .entry(part.to_string())
            .or_insert_with(|| json!({}));
    }
    cur.as_object_mut()
        .unwrap()
        .insert(parts[parts.len() - 1].to_string(), value);
    doc
}

fn without(base: Value, key: &str) -> Value {
    let mut doc = base;
    doc.as_object_mut().unwrap().remove(key);
    doc
}

#[track_caller]
fn assert_invalid_at(doc: &Value, path: &str) -> String {
    match parse(doc) {
        Err(EventError::Invalid { path: p, reason }) => {
            assert_eq!(p, path, "reason: {reason}");
            assert!(!reason.ends_with('.'), "{reason}");
            assert!(
                reason.starts_with(|c: char| !c.is_uppercase()),
                "lowercase: {reason}"
            );
            assert!(!reason.contains("struct "), "type names leak: {reason}");
            reason
        }
        other => panic!("expected invalid at {path}, got {other:?}"),
    }
}

#[test]
fn accepts_full_and_minimal() {
    let e = parse(&full()).unwrap();
    assert_eq!(e.category, Category::Access);
    assert_eq!(e.actor.as_ref().unwrap().ip.as_deref(), Some("10.20.1.17"));
    assert_eq!(e.resource.as_ref().unwrap().kind, "chart");
    let m = parse(&minimal()).unwrap();
    assert_eq!(m.outcome, Outcome::Failure);
    assert!(m.actor.is_none() && m.attrs.is_none());
}

#[test]
fn serde_error_paths() {
    assert_invalid_at(&with(minimal(), "actor.ip", json!(5)), "actor.ip");
    assert_invalid_at(&with(minimal(), "actor.mfa", json!("yes")), "actor.mfa");
    assert_invalid_at(&with(minimal(), "records", json!(-1)), "records");
    assert_invalid_at(&with(minimal(), "records", json!(1.5)), "records");
    assert_invalid_at(&with(minimal(), "category", json!("network")), "category");
    assert_invalid_at(&with(minimal(), "outcome", json!("ok")), "outcome");
    assert_invalid_at(&with(minimal(), "time", json!("yesterday")), "time");
    assert_invalid_at(&with(minimal(), "time", json!(1_700_000_000)), "time");
    assert_invalid_at(&with(minimal(), "attrs", json!([1])), "attrs");
    assert_invalid_at(&with(minimal(), "actor", json!(null)), "actor");
    assert_invalid_at(&with(minimal(), "message", json!(null)), "message");
    // serde derives would take an array as a struct by position; we don't.
    assert_invalid_at(&with(minimal(), "actor", json!(["u1"])), "actor");
    assert_invalid_at(&with(minimal(), "patient", json!(["p1"])), "patient");
    assert_invalid_at(&with(minimal(), "outcome", json!(1)), "outcome");
}

#[test]
fn unknown_fields_name_their_path() {
    let r = assert_invalid_at(&with(minimal(), "colour", json!("red")), "colour");
    assert!(r.contains("unknown field"), "{r}");
    assert_invalid_at(&with(minimal(), "actor.shoe", json!(1)), "actor.shoe");
    assert_invalid_at(&with(minimal(), "patient.name", json!("x")), "patient.name");
}

#[test]
fn missing_fields_name_their_path() {
    for key in ["time", "category", "action", "outcome"] {
        let r = assert_invalid_at(&without(minimal(), key), key);
        assert_eq!(r, "missing required field");
    }
    assert_invalid_at(&with(minimal(), "patient", json!({})), "patient.id");
    assert_invalid_at(
        &with(minimal(), "resource", json!({"id": "x"})),
        "resource.type",
    );
    assert_invalid_at(
        &with(minimal(), "source", json!({"host": "x"})),
        "source.system",
    );
}

#[test]
fn not_an_object_is_invalid_document() {
    assert_invalid_at(&json!([1, 2]), "");
    assert_invalid_at(&json!("event"), "");
}

#[test]
fn utf8_syntax_size_and_trailing_data() {
    assert_eq!(
        Event::from_json(b"{\"action\": \"\xff\"}"),
        Err(EventError::NotUtf8 { valid_up_to: 12 })
    );
    match Event::from_json(b"{\n\"time\": }") {
        Err(EventError::Syntax { line, reason, .. }) => {
            assert_eq!(line, 2);
            assert!(!reason.contains("line"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        Event::from_json(b"{\"time\": \"2026"),
        Err(EventError::Syntax { .. })
    ));
    let mut two = minimal().to_string();
    two.push_str(" {}");
    assert!(matches!(
        Event::from_json(two.as_bytes()),
        Err(EventError::Syntax { .. })
    ));
    let big = vec![b' '; MAX_EVENT_BYTES + 1];
    assert_eq!(
        Event::from_json(&big),
        Err(EventError::TooLarge {
            size: MAX_EVENT_BYTES + 1,
            max: MAX_EVENT_BYTES
        })
    );
    assert!(matches!(
        Event::from_json(b""),
        Err(EventError::Syntax { .. })
    ));
}

#[test]
fn duplicate_top_level_field_is_rejected() {
    let doc = br#"{"time":"2026-11-27T14:03:11Z","category":"auth","action":"login","action":"logout","outcome":"success"}"#;
    let err = Event::from_json(doc).unwrap_err();
    assert!(err.to_string().contains("duplicate field"), "{err}");
}

#[test]
fn id_length() {
    assert_invalid_at(&with(minimal(), "id", json!("")), "id");
    assert!(parse(&with(minimal(), "id", json!("a".repeat(MAX_ID_CHARS)))).is_ok());
    assert_invalid_at(
        &with(minimal(), "id", json!("a".repeat(MAX_ID_CHARS + 1))),
        "id",
    );
    // Characters, not bytes: 128 two-byte characters are fine.
    assert!(parse(&with(minimal(), "id", json!("é".repeat(MAX_ID_CHARS)))).is_ok());
}

#[test]
fn action_rules() {
    for ok in ["login", "a", "x9_y", "custom_action_2"] {
        assert!(parse(&with(minimal(), "action", json!(ok))).is_ok(), "{ok}");
    }
    for bad in [
        "",
        "Login",
        "9lives",
        "_x",
        "has space",
        "dash-ed",
        "view\n",
        "é",
    ] {
        assert_invalid_at(&with(minimal(), "action", json!(bad)), "action");
    }
    assert!(
        parse(&with(
            minimal(),
            "action",
            json!("a".repeat(MAX_ACTION_CHARS))
        ))
        .is_ok()
    );
    assert_invalid_at(
        &with(minimal(), "action", json!("a".repeat(MAX_ACTION_CHARS + 1))),
        "action",
    );
}

#[test]
fn ip_rules() {
    for ok in ["10.20.1.17", "::1", "2001:db8::7", "::ffff:10.0.0.1"] {
        assert!(
            parse(&with(minimal(), "actor.ip", json!(ok))).is_ok(),
            "{ok}"
        );
    }
    for bad in [
        "",
        "10.20.1",
        "10.20.1.256",
        "010.1.1.1",
        "host.example",
        "[::1]",
        "fe80::1%eth0",
        " 10.0.0.1",
    ] {
        assert_invalid_at(&with(minimal(), "actor.ip", json!(bad)), "actor.ip");
    }
}

#[test]
fn short_string_rules() {
    for path in [
        "actor.user",
        "actor.role",
        "actor.department",
        "actor.session",
        "actor.device",
        "patient.id",
        "resource.type",
        "resource.id",
        "target_user",
        "source.system",
        "source.host",
        "reason",
    ] {
        let mut base = minimal();
        // Give required siblings a value so only `path` is at fault.
        base = with(base, "resource.type", json!("chart"));
        base = with(base, "source.system", json!("ehr"));
        base = with(base, "patient.id", json!("p1"));
        assert!(
            parse(&with(
                base.clone(),
                path,
                json!("x".repeat(MAX_SHORT_CHARS))
            ))
            .is_ok(),
            "{path}"
        );
        assert_invalid_at(
            &with(base.clone(), path, json!("x".repeat(MAX_SHORT_CHARS + 1))),
            path,
        );
        assert_invalid_at(&with(base, path, json!("")), path);
    }
}

#[test]
fn message_and_records_limits() {
    assert!(parse(&with(minimal(), "message", json!(""))).is_ok());
    assert!(
        parse(&with(
            minimal(),
            "message",
            json!("m".repeat(MAX_MESSAGE_CHARS))
        ))
        .is_ok()
    );
    assert_invalid_at(
        &with(
            minimal(),
            "message",
            json!("m".repeat(MAX_MESSAGE_CHARS + 1)),
        ),
        "message",
    );
    assert_eq!(
        parse(&with(minimal(), "records", json!(MAX_RECORDS)))
            .unwrap()
            .records,
        Some(MAX_RECORDS)
    );
    assert_invalid_at(
        &with(minimal(), "records", json!(MAX_RECORDS + 1)),
        "records",
    );
    assert_invalid_at(&with(minimal(), "records", json!(u64::MAX)), "records");
    // JSON Schema counts 3.0 as an integer; so do we, stored as 3.
    assert_eq!(
        parse(&with(minimal(), "records", json!(3.0)))
            .unwrap()
            .records,
        Some(3)
    );
}

fn nested(depth: usize) -> Value {
    // `depth` containers including attrs itself.
    let mut v = json!(1);
    for i in 1..depth {
        v = if i % 2 == 0 {
            json!([v])
        } else {
            json!({"k": v})
        };
    }
    json!({"k": v})
}

#[test]
fn attrs_limits() {
    assert!(parse(&with(minimal(), "attrs", nested(MAX_ATTRS_DEPTH))).is_ok());
    let err = parse(&with(minimal(), "attrs", nested(MAX_ATTRS_DEPTH + 1))).unwrap_err();
    assert!(err.path().unwrap().starts_with("attrs.k"), "{err}");

    let many: Map<String, Value> = (0..=MAX_ATTRS_ENTRIES)
        .map(|i| (format!("k{i}"), json!(i)))
        .collect();
    assert_invalid_at(
        &with(minimal(), "attrs", Value::Object(many.clone())),
        "attrs",
    );
    let mut fits = many;
    fits.remove("k0");
    assert!(parse(&with(minimal(), "attrs", Value::Object(fits))).is_ok());

    assert_invalid_at(
        &with(
            minimal(),
            "attrs",
            json!({"list": vec![0; MAX_ATTRS_ITEMS + 1]}),
        ),
        "attrs.list",
    );
    assert!(
        parse(&with(
            minimal(),
            "attrs",
            json!({"list": vec![0; MAX_ATTRS_ITEMS]})
        ))
        .is_ok()
    );
    assert_invalid_at(
        &with(
            minimal(),
            "attrs",
            json!({"a": {"s": "x".repeat(MAX_ATTRS_STRING_CHARS + 1)}}),
        ),
        "attrs.a.s",
    );
    assert_invalid_at(
        &with(
            minimal(),
            "attrs",
            json!({"l": [1, "x".repeat(MAX_ATTRS_STRING_CHARS + 1)]}),
        ),
        "attrs.l[1]",
    );
    assert_invalid_at(&with(minimal(), "attrs", json!({"": 1})), "attrs.");
    assert_invalid_at(
        &with(
            minimal(),
            "attrs",
            json!({"k".repeat(MAX_ATTRS_KEY_CHARS + 1): 1}),
        ),
        &format!("attrs.{}", "k".repeat(MAX_ATTRS_KEY_CHARS + 1)),
    );
}

#[test]
fn known_actions_follow_design() {
    assert!(is_known_action(Category::Access, "break_glass"));
    assert!(is_known_action(Category::System, "ingest_rejected"));
    assert!(!is_known_action(Category::Auth, "view"));
    assert!(!is_known_action(Category::Access, "teleport"));
    for c in Category::ALL {
        for a in known_actions(c) {
            assert!(super::validate::check_snake_case("action", a, MAX_ACTION_CHARS).is_ok());
        }
    }
}

fn entry_for(event: Event) -> Entry {
    Entry {
        received: Timestamp::parse("2026-11-27T14:03:12.5Z").unwrap(),
        via: Via {
            kind: "http".into(),
            peer: Some("10.0.0.9:51234".into()),
            principal: None,
        },
        event,
        enriched: None,
    }
}

#[test]
fn canonical_bytes_fixed_order_and_form() {
    let raw = br#"{"outcome":"success","action":"view","category":"access","time":"2026-11-27T15:03:11.120+01:00","attrs":{"z":1,"a":{"y":true,"b":null}},"actor":{"mfa":false,"user":"u1"}}"#;
    let entry = entry_for(Event::from_json(raw).unwrap());
    let bytes = entry.canonical_bytes();
    assert_eq!(
        String::from_utf8(bytes.clone()).unwrap(),
        r#"{"received":"2026-11-27T14:03:12.5Z","via":{"kind":"http","peer":"10.0.0.9:51234"},"event":{"time":"2026-11-27T14:03:11.12Z","category":"access","action":"view","outcome":"success","actor":{"user":"u1","mfa":false},"attrs":{"a":{"b":null,"y":true},"z":1}}}"#
    );
    assert_eq!(Entry::from_canonical_bytes(&bytes).unwrap(), entry);
}

#[test]
fn full_event_round_trips_through_entry() {
    let entry = entry_for(parse(&full()).unwrap());
    let bytes = entry.canonical_bytes();
    let back = Entry::from_canonical_bytes(&bytes).unwrap();
    assert_eq!(back, entry);
    assert_eq!(back.canonical_bytes(), bytes);
}

#[test]
fn enriched_follows_the_event_and_round_trips() {
    let mut entry = entry_for(parse(&minimal()).unwrap());
    entry.enriched = Some(Enriched {
        actor: Some(StaffInfo {
            last_name: Some("Okafor".into()),
            terminated: Some("2026-01-31".into()),
            ..StaffInfo::default()
        }),
        target_user: None,
        patient: Some(PatientInfo {
            last_name: Some("Okafor".into()),
            home_zip: None,
            vip: true,
            employee_user: Some("u0042".into()),
        }),
        network: None,
    });
    let text = String::from_utf8(entry.canonical_bytes()).unwrap();
    assert!(
        text.ends_with(
            r#""outcome":"failure"},"enriched":{"actor":{"last_name":"Okafor","terminated":"2026-01-31"},"patient":{"last_name":"Okafor","vip":true,"employee_user":"u0042"}}}"#
        ),
        "{text}"
    );
    assert_eq!(Entry::from_canonical_bytes(text.as_bytes()).unwrap(), entry);
    // The fast scans still find the event's own fields.
    assert_eq!(
        entry_time_ms(text.as_bytes()),
        Some(entry.event.time.unix_ms())
    );
}

#[test]
fn enriched_is_strict() {
    let text = String::from_utf8(entry_for(parse(&minimal()).unwrap()).canonical_bytes()).unwrap();
    let with_enriched = |e: &str| format!("{},\"enriched\":{e}}}", &text[..text.len() - 1]);
    let ok = with_enriched(r#"{"patient":{"vip":false}}"#);
    assert!(Entry::from_canonical_bytes(ok.as_bytes()).is_ok(), "{ok}");
    for (bad, path) in [
        (r#"{}"#, "enriched"),
        (r#"null"#, "enriched"),
        (r#"{"patient":{}}"#, "enriched.patient.vip"),
        (
            r#"{"patient":{"vip":false,"ssn":"x"}}"#,
            "enriched.patient.ssn",
        ),
        (r#"{"actor":{"name":null}}"#, "enriched.actor.name"),
        (r#"{"actor":{"name":""}}"#, "enriched.actor.name"),
        (
            r#"{"actor":{"hired":"2026-02-30"}}"#,
            "enriched.actor.hired",
        ),
        (r#"{"actor":[]}"#, "enriched.actor"),
    ] {
        let doc = with_enriched(bad);
        assert_eq!(
            Entry::from_canonical_bytes(doc.as_bytes())
                .unwrap_err()
                .path(),
            Some(path),
            "{doc}"
        );
    }
}

#[test]
fn non_canonical_entry_bytes_are_rejected() {
    let bytes = entry_for(parse(&minimal()).unwrap()).canonical_bytes();
    let text = String::from_utf8(bytes).unwrap();
    // Whitespace, field order, non-UTC offsets: all parse, none canonical.
    let spaced = text.replacen(",", ", ", 1);
    let reordered = text.replacen(
        r#""category":"auth","action":"login""#,
        r#""action":"login","category":"auth""#,
        1,
    );
    let offset = text.replacen("14:03:11Z", "15:03:11+01:00", 1);
    for t in [spaced, reordered, offset] {
        assert_ne!(t, text);
        assert_eq!(
            Entry::from_canonical_bytes(t.as_bytes()),
            Err(EventError::NotCanonical),
            "{t}"
        );
    }
}

#[test]
fn entry_errors_name_event_paths() {
    let text = String::from_utf8(entry_for(parse(&minimal()).unwrap()).canonical_bytes()).unwrap();
    let bad_action = text.replace(r#""action":"login""#, r#""action":"Login""#);
    assert_eq!(
        Entry::from_canonical_bytes(bad_action.as_bytes())
            .unwrap_err()
            .path(),
        Some("event.action")
    );
    let bad_type = text.replace(r#""outcome":"failure""#, r#""outcome":1"#);
    assert_eq!(
        Entry::from_canonical_bytes(bad_type.as_bytes())
            .unwrap_err()
            .path(),
        Some("event.outcome")
    );
    let bad_kind = text.replace(r#""kind":"http""#, r#""kind":"HTTP""#);
    assert_eq!(
        Entry::from_canonical_bytes(bad_kind.as_bytes())
            .unwrap_err()
            .path(),
        Some("via.kind")
    );
    let extra = text.replacen('{', r#"{"extra":1,"#, 1);
    assert_eq!(
        Entry::from_canonical_bytes(extra.as_bytes())
            .unwrap_err()
            .path(),
        Some("extra")
    );
}

#[test]
fn ingest_rejected_records_raw_and_reason() {
    let t = Timestamp::parse("2026-11-27T14:03:11Z").unwrap();
    let e = Event::ingest_rejected(
        b"{\"time\": nope \xff}",
        "malformed json at line 1 column 10",
        t,
    );
    e.validate().unwrap();
    assert_eq!(
        (e.category, e.action.as_str(), e.outcome),
        (Category::System, "ingest_rejected", Outcome::Failure)
    );
    let attrs = e.attrs.as_ref().unwrap();
    assert_eq!(attrs["raw"], json!("{\"time\": nope \u{fffd}}"));
    assert_eq!(attrs["error"], json!("malformed json at line 1 column 10"));
    assert_eq!(
        e.message.as_deref(),
        Some("malformed json at line 1 column 10")
    );
}

#[test]
fn ingest_rejected_truncates_and_still_validates() {
    let t = Timestamp::now();
    let raw = vec![b'x'; MAX_EVENT_BYTES * 2];
    let reason = "r".repeat(MAX_MESSAGE_CHARS * 2);
    let e = Event::ingest_rejected(&raw, &reason, t);
    e.validate().unwrap();
    let attrs = e.attrs.as_ref().unwrap();
    let kept = attrs["raw"].as_str().unwrap();
    assert!(kept.starts_with(&"x".repeat(MAX_REJECTED_RAW_BYTES)));
    assert!(
        kept.ends_with(&format!(
            "…[truncated {} bytes]",
            raw.len() - MAX_REJECTED_RAW_BYTES
        )),
        "{kept:.50}"
    );
    assert!(e.message.as_ref().unwrap().chars().count() < MAX_REJECTED_REASON_CHARS + 40);
    // It must survive the ledger round trip too.
    let entry = entry_for(e);
    assert_eq!(
        Entry::from_canonical_bytes(&entry.canonical_bytes()).unwrap(),
        entry
    );
}

#[test]
fn error_messages_are_lowercase_without_period() {
    let errs = [
        parse(&with(minimal(), "actor.ip", json!(5))).unwrap_err(),
        Event::from_json(b"\xff").unwrap_err(),
        Event::from_json(b"{").unwrap_err(),
        Event::from_json(&vec![b' '; MAX_EVENT_BYTES + 1]).unwrap_err(),
        EventError::NotCanonical,
        parse(&without(minimal(), "time")).unwrap_err(),
    ];
    for e in errs {
        let s = e.to_string();
        assert!(!s.ends_with('.'), "{s}");
        assert!(s.starts_with(|c: char| c.is_lowercase()), "{s}");
    }
    assert_eq!(
        parse(&with(minimal(), "actor.ip", json!("x")))
            .unwrap_err()
            .to_string(),
        "invalid event field `actor.ip`: must be an ipv4 or ipv6 address"
    );
}

// --- property test: canonical bytes are a fixed point -----------------------

fn short_str() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 _\\-\\.é\"\\\\/\u{1F600}\u{0}\n]{1,20}"
}

fn opt<T: std::fmt::Debug + Clone + 'static>(
    s: impl Strategy<Value = T> + 'static,
) -> impl Strategy<Value = Option<T>> {
    prop_oneof![Just(None), s.prop_map(Some)]
}

fn timestamp() -> impl Strategy<Value = Timestamp> {
    (0i64..=253_402_300_799, 0u32..1_000_000_000).prop_map(|(secs, nanos)| {
        let odt = time::OffsetDateTime::from_unix_timestamp(secs)
            .unwrap()
            .replace_nanosecond(nanos)
            .unwrap();
        Timestamp::from_offset_date_time(odt).unwrap()
    })
}

fn attr_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        short_str().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(short_str(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn event() -> impl Strategy<Value = Event> {
    let actor = (
        opt(short_str()),
        opt(short_str()),
        opt(short_str()),
        opt(any::<std::net::IpAddr>().prop_map(|ip| ip.to_string())),
        opt(short_str()),
        opt(short_str()),
        opt(any::<bool>()),
    )
        .prop_map(|(user, role, department, ip, session, device, mfa)| Actor {
            user,
            role,
            department,
            ip,
            session,
            device,
            mfa,
        });
    let head = (
        opt("[a-z0-9\\-]{1,40}"),
        timestamp(),
        prop::sample::select(Category::ALL.to_vec()),
        "[a-z][a-z0-9_]{0,30}",
        prop::sample::select(vec![Outcome::Success, Outcome::Failure, Outcome::Unknown]),
        opt(actor),
        opt(short_str().prop_map(|id| Patient { id })),
    );
    let tail = (
        opt((short_str(), opt(short_str())).prop_map(|(kind, id)| Resource { kind, id })),
        opt(short_str()),
        opt((short_str(), opt(short_str())).prop_map(|(system, host)| Source { system, host })),
        opt(short_str()),
        opt(0..=MAX_RECORDS),
        opt(".{0,40}"),
        opt(prop::collection::btree_map(short_str(), attr_value(), 0..6)
            .prop_map(|m| m.into_iter().collect::<Map<_, _>>())),
    );
    (head, tail).prop_map(
        |(
            (id, time, category, action, outcome, actor, patient),
            (resource, target_user, source, reason, records, message, attrs),
        )| Event {
            id,
            time,
            category,
            action,
            outcome,
            actor,
            patient,
            resource,
            target_user,
            source,
            reason,
            records,
            message,
            attrs,
        },
    )
}

/// Directory text: like `short_str` without control characters.
fn directory_str() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 _\\-\\.é\"\\\\/\u{1F600}]{1,20}"
}

fn date() -> impl Strategy<Value = String> {
    (1i32..=9999, 1u8..=12, 1u8..=31).prop_map(|(y, m, d)| {
        let month = time::Month::try_from(m).unwrap();
        let d = d.min(time::util::days_in_month(month, y));
        format!("{y:04}-{m:02}-{d:02}")
    })
}

fn staff_info() -> impl Strategy<Value = StaffInfo> {
    (
        opt(directory_str()),
        opt(directory_str()),
        opt(directory_str()),
        opt(directory_str()),
        opt(directory_str()),
        opt(date()),
        opt(date()),
    )
        .prop_map(
            |(name, last_name, role, department, home_zip, hired, terminated)| StaffInfo {
                name,
                last_name,
                role,
                department,
                home_zip,
                hired,
                terminated,
            },
        )
}

fn enriched() -> impl Strategy<Value = Enriched> {
    let patient = (
        opt(directory_str()),
        opt(directory_str()),
        any::<bool>(),
        opt(directory_str()),
    )
        .prop_map(|(last_name, home_zip, vip, employee_user)| PatientInfo {
            last_name,
            home_zip,
            vip,
            employee_user,
        });
    (
        opt(staff_info()),
        opt(staff_info()),
        opt(patient),
        opt(directory_str()),
    )
        .prop_map(|(actor, target_user, patient, network)| Enriched {
            actor,
            target_user,
            patient,
            network,
        })
        .prop_filter("stored enrichment is never empty", |e| !e.is_empty())
}

fn entry() -> impl Strategy<Value = Entry> {
    (
        timestamp(),
        "[a-z][a-z_]{0,15}",
        opt(short_str()),
        opt(short_str()),
        event(),
        opt(enriched()),
    )
        .prop_map(|(received, kind, peer, principal, event, enriched)| Entry {
            received,
            via: Via {
                kind,
                peer,
                principal,
            },
            event,
            enriched,
        })
}

proptest! {
    #[test]
    fn canonical_bytes_are_a_fixed_point(entry in entry()) {
        let bytes = entry.canonical_bytes();
        let back = Entry::from_canonical_bytes(&bytes)
            .map_err(|e| TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&bytes))))?;
        prop_assert_eq!(back.canonical_bytes(), bytes);
    }

    #[test]
    fn timestamp_text_is_a_fixed_point(t in timestamp()) {
        let s = t.to_string();
        let back = Timestamp::parse(&s).map_err(|e| TestCaseError::fail(format!("{s}: {e}")))?;
        prop_assert_eq!(back, t);
        prop_assert_eq!(back.to_string(), s);
    }

    #[test]
    fn from_json_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = Event::from_json(&bytes);
        let _ = Entry::from_canonical_bytes(&bytes);
    }
}

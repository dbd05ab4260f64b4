use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::event::{Enriched, Entry, Event, PatientInfo, StaffInfo, Timestamp, Via};

/// 2026-11-27T14:03:11Z (a Friday, ISO week 48).
const T0: i64 = 1_795_788_191_000;

fn entry_at(ms: i64, mut ev: Value) -> Entry {
    let obj = ev.as_object_mut().unwrap();
    obj.insert(
        "time".into(),
        json!(Timestamp::from_unix_ms(ms).unwrap().to_string()),
    );
    obj.entry("category").or_insert(json!("access"));
    obj.entry("action").or_insert(json!("view"));
    obj.entry("outcome").or_insert(json!("success"));
    let event = Event::from_json(ev.to_string().as_bytes()).unwrap();
    Entry {
        received: Timestamp::from_unix_ms(ms).unwrap(),
        via: Via {
            kind: "http".into(),
            peer: Some("10.0.0.9".into()),
            principal: None,
        },
        event,
        enriched: None,
    }
}

fn entry(ev: Value) -> Entry {
    entry_at(T0, ev)
}

fn rule(detection: &str) -> RuleSet {
    let text = format!("title: t\nid: r1\ndetection:\n{detection}");
    RuleSet::from_yaml("t.yml", &text).unwrap_or_else(|e| panic!("{e:?}\n{text}"))
}

fn hits(rules: &RuleSet, e: &Entry) -> bool {
    let mut engine = Engine::new(Arc::new(rules.clone()), EngineConfig::default());
    let mut out = Vec::new();
    engine.process(7, e, &mut out);
    !out.is_empty()
}

fn load_err(text: &str) -> LoadError {
    let errs = RuleSet::from_yaml("bad.yml", text).unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:?}");
    errs.into_iter().next().unwrap()
}

// ---------------------------------------------------------------------------
// Modifiers and values.

#[test]
fn equality_is_case_insensitive_unless_cased() {
    let r = rule("  sel:\n    actor.user: U0042\n  condition: sel\n");
    assert!(hits(&r, &entry(json!({"actor": {"user": "u0042"}}))));
    assert!(!hits(&r, &entry(json!({"actor": {"user": "u00421"}}))));
    assert!(!hits(&r, &entry(json!({}))));
    let r = rule("  sel:\n    actor.user|cased: U0042\n  condition: sel\n");
    assert!(!hits(&r, &entry(json!({"actor": {"user": "u0042"}}))));
    assert!(hits(&r, &entry(json!({"actor": {"user": "U0042"}}))));
    // Non-ASCII folding.
    let r = rule("  sel:\n    message|contains: ÄRZTIN\n  condition: sel\n");
    assert!(hits(&r, &entry(json!({"message": "die ärztin sah"}))));
}

#[test]
fn contains_startswith_endswith_and_wildcards() {
    let e = entry(json!({"message": "Exported Chart of patient", "actor": {"user": "svc-backup"}}));
    for (d, want) in [
        ("message|contains: CHART", true),
        ("message|contains: chartz", false),
        ("message|startswith: export", true),
        ("message|startswith: chart", false),
        ("message|endswith: PATIENT", true),
        ("message|endswith: export", false),
        ("actor.user: svc-*", true),
        ("actor.user: '*backup'", true),
        ("actor.user: '*c-b*'", true),
        ("actor.user: 'svc-?ackup'", true),
        ("actor.user: 'svc-?ckup'", false),
        ("actor.user: 'svc*up'", true),
        ("actor.user: 'svc\\*'", false),
        ("message|contains|all: [export, patient]", true),
        ("message|contains|all: [export, nurse]", false),
        ("message|contains: [nurse, chart]", true),
    ] {
        let r = rule(&format!("  sel:\n    {d}\n  condition: sel\n"));
        assert_eq!(hits(&r, &e), want, "{d}");
    }
    let star = entry(json!({"actor": {"user": "svc*"}}));
    let r = rule("  sel:\n    actor.user: 'svc\\*'\n  condition: sel\n");
    assert!(hits(&r, &star));
}

#[test]
fn regex_is_case_sensitive_unless_i() {
    let e = entry(json!({"message": "Viewed Encounter 991"}));
    let r = rule("  sel:\n    message|re: 'Encounter \\d+$'\n  condition: sel\n");
    assert!(hits(&r, &e));
    let r = rule("  sel:\n    message|re: 'encounter \\d+$'\n  condition: sel\n");
    assert!(!hits(&r, &e));
    let r = rule("  sel:\n    message|re|i: 'encounter \\d+$'\n  condition: sel\n");
    assert!(hits(&r, &e));
}

#[test]
fn cidr_v4_and_v6() {
    let r = rule("  sel:\n    actor.ip|cidr: [10.20.0.0/16, 'fd00::/8']\n  condition: sel\n");
    assert!(hits(&r, &entry(json!({"actor": {"ip": "10.20.1.17"}}))));
    assert!(!hits(&r, &entry(json!({"actor": {"ip": "10.21.1.17"}}))));
    assert!(hits(&r, &entry(json!({"actor": {"ip": "fd12:3456::1"}}))));
    assert!(!hits(&r, &entry(json!({"actor": {"ip": "2001:db8::1"}}))));
    assert!(!hits(&r, &entry(json!({}))));
    let r = rule("  sel:\n    actor.ip|cidr: 192.168.1.5\n  condition: sel\n");
    assert!(hits(&r, &entry(json!({"actor": {"ip": "192.168.1.5"}}))));
    assert!(!hits(&r, &entry(json!({"actor": {"ip": "192.168.1.6"}}))));
    // Not an address: no match.
    let r = rule("  sel:\n    attrs.peer|cidr: 0.0.0.0/0\n  condition: sel\n");
    assert!(!hits(&r, &entry(json!({"attrs": {"peer": "host-1"}}))));
    assert!(hits(&r, &entry(json!({"attrs": {"peer": "1.2.3.4"}}))));
}

#[test]
fn exists_and_null() {
    let with = entry(json!({"reason": "break_glass"}));
    let without = entry(json!({}));
    let r = rule("  sel:\n    reason|exists: true\n  condition: sel\n");
    assert!(hits(&r, &with) && !hits(&r, &without));
    let r = rule("  sel:\n    reason|exists: false\n  condition: sel\n");
    assert!(!hits(&r, &with) && hits(&r, &without));
    let r = rule("  sel:\n    reason: null\n  condition: sel\n");
    assert!(!hits(&r, &with) && hits(&r, &without));
    let r = rule("  sel:\n    attrs.justification: null\n  condition: sel\n");
    assert!(hits(&r, &entry(json!({"attrs": {"justification": null}}))));
}

#[test]
fn numeric_comparisons() {
    let e = entry(json!({"action": "export", "records": 500}));
    for (d, want) in [
        ("records|gt: 499", true),
        ("records|gt: 500", false),
        ("records|gte: 500", true),
        ("records|lt: 500", false),
        ("records|lte: 500", true),
        ("records|lt: 1000.5", true),
        ("records: 500", true),
        ("records: 501", false),
        ("attrs.size|gt: 10", false),
    ] {
        let r = rule(&format!("  sel:\n    {d}\n  condition: sel\n"));
        assert_eq!(hits(&r, &e), want, "{d}");
    }
    let r = rule("  sel:\n    attrs.size|gte: 10\n  condition: sel\n");
    assert!(hits(&r, &entry(json!({"attrs": {"size": "12"}}))));
    assert!(hits(&r, &entry(json!({"attrs": {"size": 10.5}}))));
}

#[test]
fn fieldref_compares_fields_of_one_event() {
    let mut e = entry(json!({"actor": {"user": "u0042"}, "patient": {"id": "MRN-1"}}));
    e.enriched = Some(Enriched {
        patient: Some(PatientInfo {
            employee_user: Some("U0042".into()),
            ..PatientInfo::default()
        }),
        ..Enriched::default()
    });
    let r = rule("  sel:\n    actor.user|fieldref: patient.employee_user\n  condition: sel\n");
    assert!(hits(&r, &e));
    let r =
        rule("  sel:\n    actor.user|fieldref|cased: patient.employee_user\n  condition: sel\n");
    assert!(!hits(&r, &e));
    let r = rule("  sel:\n    patient.id|fieldref: actor.user\n  condition: sel\n");
    assert!(!hits(&r, &e));
    let r = rule("  sel:\n    attrs.note|fieldref|contains: actor.user\n  condition: sel\n");
    let e2 = entry(json!({"actor": {"user": "u7"}, "attrs": {"note": "by U7 today"}}));
    assert!(hits(&r, &e2));
    // A missing referenced field never matches.
    let r = rule("  sel:\n    actor.user|fieldref: target_user\n  condition: sel\n");
    assert!(!hits(&r, &e2));
}

#[test]
fn time_parts_in_utc() {
    // T0 = 2026-11-27T14:03:11Z.
    let e = entry(json!({}));
    for (d, want) in [
        ("time|hour: 14", true),
        ("time|hour: 15", false),
        ("time|minute: 3", true),
        ("time|day: 27", true),
        ("time|week: 48", true),
        ("time|month: 11", true),
        ("time|year: 2026", true),
        ("time|hour|gte: 22", false),
        ("time|hour|lt: 6", false),
        ("time|hour: [0, 1, 14]", true),
        ("received|hour: 14", true),
        ("attrs.scheduled_for|hour: 9", true),
        ("attrs.scheduled_for|day: 1", true),
    ] {
        let r = rule(&format!("  sel:\n    {d}\n  condition: sel\n"));
        let e = entry_at(
            T0,
            json!({"attrs": {"scheduled_for": "2026-12-01T09:30:00Z"}}),
        );
        assert_eq!(hits(&r, &e), want, "{d}");
    }
    let night = entry_at(T0 + 9 * 3_600_000, json!({})); // 23:03 UTC
    let r = rule("  sel:\n    time|hour|gte: 22\n  condition: sel\n");
    assert!(hits(&r, &night) && !hits(&r, &e));
    // Text that is no time never matches.
    let r = rule("  sel:\n    message|hour: 1\n  condition: sel\n");
    assert!(!hits(&r, &entry(json!({"message": "x"}))));
}

#[test]
fn enriched_fields_merge_with_event_precedence() {
    let mut e = entry(
        json!({"actor": {"user": "u1", "role": "nurse"}, "patient": {"id": "P1"},
                             "target_user": "u2"}),
    );
    e.enriched = Some(Enriched {
        actor: Some(StaffInfo {
            role: Some("physician".into()),
            department: Some("cardiology".into()),
            last_name: Some("Smith".into()),
            ..StaffInfo::default()
        }),
        target_user: Some(StaffInfo {
            role: Some("it_admin".into()),
            ..StaffInfo::default()
        }),
        patient: Some(PatientInfo {
            last_name: Some("smith".into()),
            vip: true,
            ..PatientInfo::default()
        }),
        network: None,
    });
    for (d, want) in [
        ("actor.role: nurse", true),
        ("actor.role: physician", false),
        ("actor.department: cardiology", true),
        ("patient.vip: true", true),
        ("patient.vip: false", false),
        ("target_user.role: it_admin", true),
        ("target_user: u2", true),
        ("actor.last_name|fieldref: patient.last_name", true),
        ("via.kind: http", true),
        ("via.peer|cidr: 10.0.0.0/8", true),
        ("category: access", true),
        ("outcome: success", true),
    ] {
        let r = rule(&format!("  sel:\n    {d}\n  condition: sel\n"));
        assert_eq!(hits(&r, &e), want, "{d}");
    }
}

#[test]
fn attrs_paths_and_arrays() {
    let e = entry(json!({"attrs": {"a.b": "dotted", "n": {"k": "nested"}, "list": ["x", "Y"]}}));
    for (d, want) in [
        ("attrs.a.b: dotted", true),
        ("attrs.n.k: NESTED", true),
        ("attrs.n.z: nested", false),
        ("attrs.list: y", true),
        ("attrs.list: z", false),
        ("attrs.list|exists: true", true),
    ] {
        let r = rule(&format!("  sel:\n    {d}\n  condition: sel\n"));
        assert_eq!(hits(&r, &e), want, "{d}");
    }
}

#[test]
fn selection_maps_and_lists() {
    // A map is AND, a list of maps is OR, a value list is OR.
    let r = rule(
        "  sel:\n    - action: export\n      records|gte: 100\n    - action: print\n  condition: sel\n",
    );
    assert!(hits(
        &r,
        &entry(json!({"action": "export", "records": 100}))
    ));
    assert!(!hits(
        &r,
        &entry(json!({"action": "export", "records": 99}))
    ));
    assert!(hits(&r, &entry(json!({"action": "print"}))));
    let r = rule("  sel:\n    action: [export, print]\n  condition: sel\n");
    assert!(hits(&r, &entry(json!({"action": "print"}))));
    assert!(!hits(&r, &entry(json!({"action": "view"}))));
}

// ---------------------------------------------------------------------------
// Conditions.

fn cond_rule(condition: &str) -> RuleSet {
    rule(&format!(
        "  sel_a:\n    action: export\n  sel_b:\n    actor.user: u1\n  filter:\n    reason: treatment\n  condition: {condition}\n"
    ))
}

#[test]
fn category_prefilter_keeps_every_match() {
    use crate::event::Category;
    let cases: [(&str, &[&str]); 7] = [
        (
            "  s:\n    category|startswith: a\n  condition: s\n",
            &["auth", "access", "admin"],
        ),
        ("  s:\n    category: ACCESS\n  condition: s\n", &["access"]),
        ("  s:\n    category|cased: ACCESS\n  condition: s\n", &[]),
        (
            "  s:\n    category: auth\n  condition: not s\n",
            &["access", "admin", "integration", "system"],
        ),
        (
            "  s:\n    category|re: '^(auth|admin)$'\n  condition: s\n",
            &["auth", "admin"],
        ),
        (
            "  a:\n    category: auth\n  b:\n    action: view\n  condition: 1 of them\n",
            &["auth", "access", "admin", "integration", "system"],
        ),
        (
            "  a:\n    - category: auth\n    - category: system\n  b:\n    category: [system, admin]\n  condition: a and b\n",
            &["system"],
        ),
    ];
    for (detection, expected) in cases {
        let r = rule(detection);
        for c in Category::ALL {
            let e = entry(json!({"category": c.as_str(), "action": "view"}));
            assert_eq!(
                hits(&r, &e),
                expected.contains(&c.as_str()),
                "{detection} on {}",
                c.as_str()
            );
        }
    }
}

#[test]
fn view_from_stored_bytes_reads_what_the_parsed_entry_has() {
    use super::field::{Field, KNOWN_FIELDS};
    let mut e = entry(json!({
        "id": "ev-\"1\"",
        "category": "auth",
        "action": "login",
        "outcome": "failure",
        "actor": {"user": "u\u{e9}\\x", "role": "nurse", "ip": "10.0.0.1", "mfa": true},
        "patient": {"id": "MRN-1"},
        "resource": {"type": "chart", "id": "c-1"},
        "target_user": "u2",
        "source": {"system": "ehr", "host": "h1"},
        "reason": "treatment",
        "records": 12,
        "message": "line\nbreak \"quoted\"",
        "attrs": {"pages": 3, "a.b": "dotted", "n": {"x": [1, "two"]}, "f": 1.5}
    }));
    e.enriched = Some(Enriched {
        actor: Some(StaffInfo {
            last_name: Some("Smith".into()),
            department: Some("er".into()),
            ..StaffInfo::default()
        }),
        target_user: Some(StaffInfo {
            role: Some("admin".into()),
            ..StaffInfo::default()
        }),
        patient: Some(PatientInfo {
            last_name: Some("Jones".into()),
            home_zip: None,
            vip: true,
            employee_user: Some("u9".into()),
        }),
        network: Some("staff wifi".into()),
    });
    let bytes = e.canonical_bytes();
    let stored = EntryView::from_ledger_bytes(&bytes).unwrap();
    let parsed = EntryView::from_entry(&e);
    assert_eq!(stored.time_ms, parsed.time_ms);
    let attrs = [
        "attrs.pages",
        "attrs.a.b",
        "attrs.n.x",
        "attrs.n",
        "attrs.f",
        "attrs.none",
    ];
    let fields = KNOWN_FIELDS
        .iter()
        .map(|(n, _)| *n)
        .chain(attrs)
        .map(|n| (n, Field::parse(n).unwrap()));
    let mut present = 0;
    for (name, f) in fields {
        assert_eq!(f.get(&stored), f.get(&parsed), "{name}");
        present += usize::from(f.get(&stored).is_some());
    }
    assert!(present > 30, "{present}");
    assert!(EntryView::from_ledger_bytes(b"{\"received\":1}").is_err());
    assert!(EntryView::from_ledger_bytes(b"\xff\xfe").is_err());
}

#[test]
fn condition_forms() {
    let a_b = entry(json!({"action": "export", "actor": {"user": "u1"}}));
    let a = entry(json!({"action": "export", "actor": {"user": "u2"}}));
    let a_f = entry(json!({"action": "export", "actor": {"user": "u2"}, "reason": "treatment"}));
    let none = entry(json!({"actor": {"user": "u2"}}));
    let f = entry(json!({"reason": "treatment"}));
    let cases: [(&str, [bool; 5]); 12] = [
        ("sel_a and sel_b", [true, false, false, false, false]),
        ("sel_a or sel_b", [true, true, true, false, false]),
        ("sel_a and not filter", [true, true, false, false, false]),
        ("1 of sel_*", [true, true, true, false, false]),
        ("all of sel_*", [true, false, false, false, false]),
        ("1 of them", [true, true, true, false, true]),
        ("all of them", [false, false, false, false, false]),
        ("not 1 of sel*", [false, false, false, true, true]),
        // and binds tighter than or; not tighter than and.
        (
            "filter or sel_a and sel_b",
            [true, false, true, false, true],
        ),
        (
            "(filter or sel_a) and sel_b",
            [true, false, false, false, false],
        ),
        ("not filter and sel_a", [true, true, false, false, false]),
        ("not (filter or sel_a)", [false, false, false, true, false]),
    ];
    for (c, want) in cases {
        let r = cond_rule(c);
        let got = [&a_b, &a, &a_f, &none, &f].map(|e| hits(&r, e));
        assert_eq!(got, want, "{c}");
    }
}

// ---------------------------------------------------------------------------
// Load errors: file, line, column, reason.

#[test]
fn load_errors_name_file_line_and_reason() {
    let e = load_err("title: t\nid: x\ndetection:\n  sel:\n    action: [a, b\n  condition: sel\n");
    assert_eq!(e.file.to_str(), Some("bad.yml"));
    assert!(e.reason.contains("yaml syntax"), "{e}");
    assert!(e.line.is_some());

    let e = load_err("title: t\nid: x\ndetection:\n  sel:\n    actor.usr: a\n  condition: sel\n");
    assert_eq!((e.line, e.column), (Some(5), Some(5)), "{e}");
    assert!(e.reason.contains("unknown field `actor.usr`"), "{e}");
    assert_eq!(e.to_string(), "bad.yml:5:5: unknown field `actor.usr`");

    let e =
        load_err("title: t\nid: x\ndetection:\n  sel:\n    action|contans: a\n  condition: sel\n");
    assert_eq!(e.line, Some(5));
    assert!(e.reason.contains("unknown modifier `contans`"), "{e}");

    let e =
        load_err("title: t\nid: x\ndetection:\n  sel:\n    action: a\n  condition: sel or other\n");
    assert_eq!(e.line, Some(6));
    assert!(e.reason.contains("undefined selection `other`"), "{e}");

    let e = load_err("title: t\nid: x\ndetection:\n  sel:\n    action: a\n  condition: 1 of x*\n");
    assert!(e.reason.contains("no selection matches"), "{e}");

    let e = load_err(
        "title: c\nid: c\ncorrelation:\n  type: event_count\n  rules: [x]\n  timespan: 5x\n  condition: {gte: 2}\n---\ntitle: x\nid: x\ndetection:\n  s:\n    action: a\n  condition: s\n",
    );
    assert_eq!(e.line, Some(6));
    assert!(e.reason.contains("invalid timespan `5x`"), "{e}");

    let e = load_err(
        "title: c\nid: c\ncorrelation:\n  type: event_count\n  rules:\n    - nope\n  timespan: 5m\n  condition: {gte: 2}\n",
    );
    assert_eq!((e.line, e.column), (Some(6), Some(7)), "{e}");
    assert!(e.reason.contains("unknown rule `nope`"), "{e}");
}

#[test]
fn other_load_errors() {
    for (text, needle) in [
        (
            "title: t\ndetection:\n  s:\n    action: a\n  condition: s\n",
            "id or a name",
        ),
        (
            "id: t\ndetection:\n  s:\n    action: a\n  condition: s\n",
            "no title",
        ),
        (
            "title: t\nid: t\ndetection:\n  s:\n    action: a\n",
            "no condition",
        ),
        (
            "title: t\nid: t\nlevel: severe\ndetection:\n  s:\n    action: a\n  condition: s\n",
            "level",
        ),
        (
            "title: t\nid: t\nlogsource:\n  product: windows\ndetection:\n  s:\n    action: a\n  condition: s\n",
            "sealtrail",
        ),
        (
            "title: t\nid: t\ndetection:\n  s:\n    records|gt: many\n  condition: s\n",
            "not a number",
        ),
        (
            "title: t\nid: t\ndetection:\n  s:\n    actor.ip|cidr: 10.0.0.0/33\n  condition: s\n",
            "ip network",
        ),
        (
            "title: t\nid: t\ndetection:\n  s:\n    message|re: '('\n  condition: s\n",
            "invalid regex",
        ),
        (
            "title: t\nid: t\ndetection:\n  s:\n    action|contains|startswith: a\n  condition: s\n",
            "cannot be combined",
        ),
        (
            "title: t\nid: t\ndetection:\n  s:\n    action|exists: maybe\n  condition: s\n",
            "true or false",
        ),
        (
            "title: t\nid: t\ndetection:\n  s:\n    - a\n  condition: s\n",
            "keyword",
        ),
        (
            "title: t\nid: t\ndetection:\n  s:\n    action: a\n  condition: s | count() > 5\n",
            "correlation rule",
        ),
        (
            "title: t\nid: t\ndetection:\n  s:\n    action: a\n  condition: (s\n",
            "missing `)`",
        ),
        (
            "title: t\nid: t\ndetection:\n  s:\n    action|fieldref: nofield\n  condition: s\n",
            "unknown field",
        ),
        (
            "title: t\nid: t\ndetection:\n  s:\n    time|hour|contains: 1\n  condition: s\n",
            "time modifier",
        ),
        (
            "title: t\nid: t\ndetection:\n  s:\n    action: a\n  condition: s\n---\ntitle: u\nid: t\ndetection:\n  s:\n    action: a\n  condition: s\n",
            "duplicate rule id",
        ),
        (
            "title: c\nid: c\ncorrelation:\n  type: value_count\n  rules: [c]\n  timespan: 5m\n  condition: {gte: 2}\n",
            "condition.field",
        ),
        (
            "title: c\nid: c\ncorrelation:\n  type: event_count\n  rules: [c]\n  timespan: 5m\n  condition: {gte: 2}\n",
            "itself",
        ),
        (
            "title: c\nid: c\ncorrelation:\n  type: event_count\n  rules: [c]\n  timespan: 0s\n  condition: {gte: 2}\n",
            "invalid timespan",
        ),
        (
            "title: c\nid: c\ncorrelation:\n  type: event_count\n  rules: [c]\n  timespan: 32d\n  condition: {gte: 2}\n",
            "invalid timespan",
        ),
        (
            "title: c\nid: c\ncorrelation:\n  type: counting\n  rules: [c]\n  timespan: 1m\n",
            "correlation type",
        ),
        (
            "title: c\nid: c\ncorrelation:\n  type: event_count\n  rules: [c]\n  timespan: 1m\n  condition: {most: 3}\n",
            "unknown condition",
        ),
    ] {
        let errs = RuleSet::from_yaml("bad.yml", text).unwrap_err();
        assert!(
            errs.iter()
                .any(|e| e.reason.contains(needle) && e.line.is_some()),
            "{needle}: {errs:?}"
        );
    }
}

#[test]
fn all_errors_are_reported_and_nothing_loads() {
    let text = "title: a\nid: a\ndetection:\n  s:\n    nope: 1\n  condition: s\n---\ntitle: b\nid: b\ndetection:\n  s:\n    action|bad: 1\n  condition: s\n---\ntitle: ok\nid: ok\ndetection:\n  s:\n    action: a\n  condition: s\n";
    let errs = RuleSet::from_yaml("many.yml", text).unwrap_err();
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert_eq!(errs[0].line, Some(5));
    assert_eq!(errs[1].line, Some(12));
}

#[test]
fn timespans() {
    assert_eq!(parse_timespan("30s"), Some(30_000));
    assert_eq!(parse_timespan("5m"), Some(300_000));
    assert_eq!(parse_timespan("2h"), Some(7_200_000));
    assert_eq!(parse_timespan("1d"), Some(86_400_000));
    for bad in [
        "",
        "m",
        "5",
        "5M",
        "-5m",
        "1.5h",
        "5 m",
        "0m",
        "32d",
        "99999999999s",
    ] {
        assert_eq!(parse_timespan(bad), None, "{bad}");
    }
}

// ---------------------------------------------------------------------------
// Correlations.

const FAILED: &str = "title: Failed login\nid: failed-login\nname: failed_login\ndetection:\n  s:\n    category: auth\n    action: login\n    outcome: failure\n  condition: s\n";
const SUCCESS: &str = "title: Login\nid: ok-login\nname: successful_login\ndetection:\n  s:\n    category: auth\n    action: login\n    outcome: success\n  condition: s\n";

fn login(ms: i64, user: &str, ok: bool) -> Entry {
    entry_at(
        ms,
        json!({"category": "auth", "action": "login", "outcome": if ok {"success"} else {"failure"},
               "actor": {"user": user, "ip": "10.1.1.1"}}),
    )
}

fn count_rule(span: &str, cond: &str) -> String {
    format!(
        "title: Brute force\nid: brute\nlevel: high\ncorrelation:\n  type: event_count\n  rules: [failed_login]\n  group-by: [actor.user]\n  timespan: {span}\n  condition: {cond}\n---\n{FAILED}"
    )
}

fn run(rules: &str, cfg: EngineConfig, input: &[(u64, Entry)]) -> (Vec<AlertCandidate>, Engine) {
    let set = RuleSet::from_yaml("c.yml", rules).unwrap_or_else(|e| panic!("{e:?}"));
    let mut engine = Engine::new(Arc::new(set), cfg);
    let mut out = Vec::new();
    for (i, e) in input {
        engine.process(*i, e, &mut out);
    }
    engine.flush(&mut out);
    (out, engine)
}

/// No lateness and no late application: a hit behind the clock is dropped
/// (and counted), state expires as soon as the clock passes it.
fn no_lateness() -> EngineConfig {
    EngineConfig {
        allowed_lateness_ms: 0,
        late_retention_ms: 0,
        ..EngineConfig::default()
    }
}

#[test]
fn event_count_window_edges_are_inclusive() {
    let rules = count_rule("10s", "{gte: 3}");
    let at = |offs: [i64; 3]| -> Vec<(u64, Entry)> {
        offs.iter()
            .enumerate()
            .map(|(i, o)| (i as u64, login(T0 + o, "u1", false)))
            .collect()
    };
    let (out, _) = run(&rules, no_lateness(), &at([0, 5_000, 10_000]));
    assert_eq!(out.len(), 1, "{out:?}");
    let a = &out[0];
    assert_eq!(a.rule_id, "brute");
    assert_eq!(a.level, Level::High);
    assert_eq!(a.count, 3);
    assert_eq!(a.event_indices, vec![0, 1, 2]);
    assert_eq!(a.first_time.unix_ms(), T0);
    assert_eq!(a.last_time.unix_ms(), T0 + 10_000);
    assert_eq!(a.group.get("actor.user").map(String::as_str), Some("u1"));
    // One millisecond more and the first event is outside the window.
    let (out, _) = run(&rules, no_lateness(), &at([0, 5_000, 10_001]));
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn base_rules_of_correlations_do_not_alert_alone_unless_generated() {
    let rules = count_rule("10s", "{gte: 2}");
    let (out, _) = run(&rules, no_lateness(), &[(0, login(T0, "u1", false))]);
    assert!(out.is_empty());
    let rules = rules.replace(
        "  condition: {gte: 2}",
        "  condition: {gte: 2}\n  generate: true",
    );
    let (out, _) = run(&rules, no_lateness(), &[(0, login(T0, "u1", false))]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].rule_id, "failed-login");
    assert_eq!(out[0].count, 1);
    assert_eq!(out[0].event_indices, vec![0]);
}

#[test]
fn groups_are_separate_and_fire_once_per_burst() {
    let rules = count_rule("1m", "{gte: 2}");
    let input: Vec<(u64, Entry)> = [("a", 0), ("b", 1), ("a", 2), ("a", 3), ("a", 4), ("b", 70)]
        .iter()
        .enumerate()
        .map(|(i, (u, s))| (i as u64, login(T0 + s * 1_000, u, false)))
        .collect();
    let (out, _) = run(&rules, no_lateness(), &input);
    let users: Vec<_> = out.iter().map(|a| a.group["actor.user"].clone()).collect();
    // a fires at its 2nd and 4th event (window cleared after each firing);
    // b's events are 69 s apart.
    assert_eq!(users, ["a", "a"]);
    assert_eq!(out[1].event_indices, vec![3, 4]);
}

#[test]
fn out_of_order_within_lateness_matches_sorted_and_beyond_is_counted() {
    let rules = count_rule("10s", "{gte: 3}");
    let cfg = EngineConfig {
        allowed_lateness_ms: 5_000,
        ..EngineConfig::default()
    };
    let sorted: Vec<(u64, Entry)> = [0, 2_000, 4_000, 30_000]
        .iter()
        .enumerate()
        .map(|(i, o)| (i as u64, login(T0 + o, "u1", false)))
        .collect();
    let shuffled = vec![
        sorted[1].clone(),
        sorted[0].clone(),
        sorted[2].clone(),
        sorted[3].clone(),
    ];
    let (a, _) = run(&rules, cfg.clone(), &sorted);
    let (b, eng) = run(&rules, cfg.clone(), &shuffled);
    assert_eq!(a.len(), 1);
    assert_eq!(a, b);
    assert_eq!(eng.stats().late_hits, 0);
    // The 0 s event arrives after a 30 s one: beyond the 5 s lateness.
    let late = vec![
        sorted[1].clone(),
        sorted[2].clone(),
        sorted[3].clone(),
        sorted[0].clone(),
    ];
    // Applied late, to the state it belongs to: the same alert, marked late.
    let (c, eng) = run(&rules, cfg.clone(), &late);
    assert_eq!(c.len(), 1, "{c:?}");
    assert!(c[0].late);
    assert_eq!(c[0].event_indices, a[0].event_indices);
    assert_eq!(c[0].first_time, a[0].first_time);
    let s = eng.stats();
    assert_eq!((s.late_hits, s.late_applied, s.late_dropped), (1, 1, 0));
    // Beyond the retention: dropped, counted per rule and source.
    let cfg = EngineConfig {
        late_retention_ms: 20_000,
        ..cfg
    };
    let (c, mut eng) = run(&rules, cfg, &late);
    assert!(c.is_empty(), "{c:?}");
    let s = eng.stats();
    assert_eq!((s.late_hits, s.late_applied, s.late_dropped), (1, 0, 1));
    let drops = eng.take_late_drops();
    assert_eq!(drops.values().sum::<u64>(), 1);
    assert!(drops.keys().all(|(rule, _)| rule == "brute"), "{drops:?}");
    assert!(eng.take_late_drops().is_empty());
}

#[test]
fn lateness_holds_ordered_correlation_alerts_until_the_watermark() {
    // temporal_ordered depends on the order of every earlier event: it
    // waits for the watermark.
    let set = Arc::new(RuleSet::from_yaml("c.yml", &temporal_rules("temporal_ordered")).unwrap());
    let cfg = EngineConfig {
        allowed_lateness_ms: 3_000,
        ..EngineConfig::default()
    };
    let mut engine = Engine::new(set, cfg);
    let mut out = Vec::new();
    engine.process(0, &login(T0, "u1", false), &mut out);
    engine.process(1, &login(T0 + 1_000, "u1", true), &mut out);
    assert!(out.is_empty());
    assert_eq!(engine.stats().pending, 2);
    engine.advance(T0 + 3_999, &mut out);
    assert!(out.is_empty());
    engine.advance(T0 + 4_000, &mut out);
    assert_eq!(out.len(), 1);
}

#[test]
fn monotone_correlations_fire_before_the_watermark_once() {
    let cfg = EngineConfig {
        allowed_lateness_ms: 3_000,
        ..EngineConfig::default()
    };
    for rules in [
        count_rule("10s", "{gte: 2}"),
        count_rule("10s", "{gt: 1}"),
        temporal_rules("temporal"),
    ] {
        let set = Arc::new(RuleSet::from_yaml("c.yml", &rules).unwrap());
        let mut engine = Engine::new(set, cfg.clone());
        let mut out = Vec::new();
        engine.process(0, &login(T0, "u1", false), &mut out);
        assert!(out.is_empty());
        let ok = rules.contains("temporal");
        engine.process(1, &login(T0 + 1_000, "u1", ok), &mut out);
        // Still waiting in the reorder buffer, already reported.
        assert_eq!(engine.stats().pending, 2, "{rules}");
        assert_eq!(out.len(), 1, "{rules}");
        assert_eq!(out[0].event_indices, vec![0, 1]);
        assert_eq!(out[0].count, 2);
        // The ordered evaluation reaches the same alert: not reported again.
        engine.advance(T0 + 10_000, &mut out);
        engine.flush(&mut out);
        assert_eq!(out.len(), 1, "{rules}: {out:?}");
    }
    // A condition with an upper bound is not monotone: it waits (for its
    // window to close, see the window-close tests).
    let rules = count_rule("10s", "{gte: 2, lte: 3}");
    let set = Arc::new(RuleSet::from_yaml("c.yml", &rules).unwrap());
    let mut engine = Engine::new(set, cfg);
    let mut out = Vec::new();
    engine.process(0, &login(T0, "u1", false), &mut out);
    engine.process(1, &login(T0 + 1_000, "u1", false), &mut out);
    assert!(out.is_empty());
    engine.advance(T0 + 4_000, &mut out);
    assert!(out.is_empty());
    engine.advance(T0 + 60_000, &mut out);
    engine.flush(&mut out);
    assert_eq!(out.len(), 1);
}

/// (rule, group, first event): what the alert id is made of.
fn identity(a: &AlertCandidate) -> (String, Vec<(String, String)>, Option<u64>) {
    (
        a.rule_id.clone(),
        a.group.clone().into_iter().collect(),
        a.event_indices.first().copied(),
    )
}

#[test]
fn eager_out_of_order_burst_gives_one_alert_with_the_in_order_id() {
    use rand::SeedableRng;
    use rand::seq::SliceRandom;
    let rules = count_rule("10m", "{gte: 8}");
    let cfg = EngineConfig {
        allowed_lateness_ms: 10_000,
        ..EngineConfig::default()
    };
    // Ledger indices are arrival order; event times are what the burst
    // happened at: index i carries the time of burst event perm[i].
    let run_perm = |perm: &[usize]| {
        let set = Arc::new(RuleSet::from_yaml("c.yml", &rules).unwrap());
        let mut engine = Engine::new(set, cfg.clone());
        let mut out = Vec::new();
        let mut at_arrival = None;
        for (i, &p) in perm.iter().enumerate() {
            engine.process(i as u64, &login(T0 + p as i64 * 500, "u1", false), &mut out);
            // Another user's noise in between.
            engine.process(
                100 + i as u64,
                &login(T0 + p as i64 * 500, "u2", true),
                &mut out,
            );
            if at_arrival.is_none() && !out.is_empty() {
                at_arrival = Some(i);
            }
        }
        let before_watermark = out.len();
        engine.advance(T0 + 60_000, &mut out);
        engine.flush(&mut out);
        (out, at_arrival, before_watermark)
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    // In order, ledger index i is burst event i.
    let by_time = |a: &AlertCandidate, perm: &[usize]| -> Vec<usize> {
        let mut v: Vec<usize> = a.event_indices.iter().map(|&i| perm[i as usize]).collect();
        v.sort_unstable();
        v
    };
    // A burst of exactly the threshold: the look-ahead fires when the last
    // hit arrives, whatever the order, on exactly the ordered alert.
    let in_order: Vec<usize> = (0..8).collect();
    let (reference, _, _) = run_perm(&in_order);
    assert_eq!(reference.len(), 1, "{reference:?}");
    for _ in 0..30 {
        let mut perm = in_order.clone();
        perm.shuffle(&mut rng);
        let (out, fired_at, early) = run_perm(&perm);
        assert_eq!(out.len(), 1, "{perm:?}: {out:?}");
        assert_eq!(
            (fired_at, early),
            (Some(7), 1),
            "{perm:?}: at the 8th arrival"
        );
        assert_eq!(by_time(&out[0], &perm), by_time(&reference[0], &in_order));
        assert_eq!(
            (out[0].first_time, out[0].last_time, out[0].count),
            (reference[0].first_time, reference[0].last_time, 8)
        );
    }
    // A longer burst: still one alert (the look-ahead's firings and the
    // ordered one share events); its first event is the earliest one known
    // when it fired, so its id is the in-order one when that event had
    // arrived by then.
    let in_order: Vec<usize> = (0..11).collect();
    let (reference, _, _) = run_perm(&in_order);
    assert_eq!(reference.len(), 1, "{reference:?}");
    let mut same_id = 0;
    for _ in 0..30 {
        let mut perm = in_order.clone();
        perm.shuffle(&mut rng);
        let (out, fired_at, early) = run_perm(&perm);
        assert_eq!(out.len(), 1, "{perm:?}: {out:?}");
        assert_eq!(early, 1, "{perm:?}");
        assert_eq!(out[0].count, 8);
        let known_first = perm[..=fired_at.unwrap_or(0)].iter().min().copied();
        assert_eq!(by_time(&out[0], &perm).first().copied(), known_first);
        if known_first == Some(0) {
            same_id += 1;
            assert_eq!(out[0].first_time, reference[0].first_time);
        }
    }
    assert!(same_id > 0);
}

#[test]
fn eager_alerts_are_the_same_after_a_restart_replay() {
    // A restart re-reads the window from the ledger in the same order: the
    // eager alert comes out again with the same identity (the service drops
    // it by id), and only once.
    let rules = count_rule("10m", "{gte: 5}");
    let set = Arc::new(RuleSet::from_yaml("c.yml", &rules).unwrap());
    let cfg = EngineConfig {
        allowed_lateness_ms: 2_000,
        ..EngineConfig::default()
    };
    let input: Vec<(u64, Entry)> = [3, 0, 1, 4, 2, 5, 6]
        .iter()
        .enumerate()
        .map(|(i, s)| (i as u64, login(T0 + s * 100, "u1", false)))
        .collect();
    let mut live = Engine::new(Arc::clone(&set), cfg.clone());
    let mut before_crash = Vec::new();
    for (i, e) in &input[..5] {
        live.process(*i, e, &mut before_crash);
    }
    assert_eq!(before_crash.len(), 1, "fired before the watermark");
    // Killed here, before the watermark passed the burst. The new run
    // replays the window and continues.
    let mut restarted = Engine::new(set, cfg);
    let mut after = Vec::new();
    for (i, e) in &input {
        restarted.process(*i, e, &mut after);
    }
    restarted.advance(T0 + 60_000, &mut after);
    restarted.flush(&mut after);
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(identity(&after[0]), identity(&before_crash[0]));
    assert_eq!(after[0], before_crash[0]);
}

#[test]
fn a_late_earlier_hit_after_an_eager_alert_is_the_same_alert() {
    // Hits at 100..=500 ms fire at once; the 0 ms hit (earlier, within the
    // lateness) arrives after that: the ordered evaluation fires on
    // 0..=400 ms, which shares events with the early alert: not reported
    // again. Two separate bursts stay two alerts.
    let rules = count_rule("10m", "{gte: 5}");
    let cfg = EngineConfig {
        allowed_lateness_ms: 10_000,
        ..EngineConfig::default()
    };
    let input: Vec<(u64, Entry)> = [1, 2, 3, 4, 5, 0]
        .iter()
        .enumerate()
        .map(|(i, s)| (i as u64, login(T0 + s * 100, "u1", false)))
        .collect();
    let (out, _) = run(&rules, cfg.clone(), &input);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].event_indices, vec![0, 1, 2, 3, 4]);
    let rules = count_rule("10s", "{gte: 2}");
    let input: Vec<(u64, Entry)> = [0, 20, 21, 5]
        .iter()
        .enumerate()
        .map(|(i, s)| (i as u64, login(T0 + s * 1_000, "u1", false)))
        .collect();
    let cfg = EngineConfig {
        allowed_lateness_ms: 30_000,
        ..EngineConfig::default()
    };
    let (out, _) = run(&rules, cfg, &input);
    let events: Vec<Vec<u64>> = out.iter().map(|a| a.event_indices.clone()).collect();
    assert_eq!(events, vec![vec![1, 2], vec![0, 3]]);
}

#[test]
fn idle_groups_expire() {
    let rules = count_rule("10s", "{gte: 5}");
    let set = Arc::new(RuleSet::from_yaml("c.yml", &rules).unwrap());
    let mut engine = Engine::new(set, no_lateness());
    let mut out = Vec::new();
    for (i, u) in ["a", "b", "c"].iter().enumerate() {
        engine.process(i as u64, &login(T0, u, false), &mut out);
    }
    assert_eq!(engine.stats().groups, 3);
    engine.advance(T0 + 10_000, &mut out);
    assert_eq!(engine.stats().groups, 3, "still inside the timespan");
    engine.process(9, &login(T0 + 10_001, "d", false), &mut out);
    let s = engine.stats();
    assert_eq!((s.groups, s.expired_groups), (1, 3));
    engine.advance(T0 + 30_000, &mut out);
    assert_eq!(engine.stats().groups, 0);
}

#[test]
fn group_cap_evicts_the_oldest_and_counts_it() {
    let rules = count_rule("1h", "{gte: 2}");
    let cfg = EngineConfig {
        allowed_lateness_ms: 0,
        max_groups_per_rule: 2,
        ..EngineConfig::default()
    };
    let input: Vec<(u64, Entry)> = [("a", 0), ("b", 1), ("c", 2), ("a", 3), ("c", 4)]
        .iter()
        .enumerate()
        .map(|(i, (u, s))| (i as u64, login(T0 + s * 1_000, u, false)))
        .collect();
    let (out, eng) = run(&rules, cfg, &input);
    // c evicts a (idle longest); a's second event starts afresh and evicts
    // b; c's second event completes c.
    let users: Vec<_> = out.iter().map(|a| a.group["actor.user"].clone()).collect();
    assert_eq!(users, ["c"]);
    assert_eq!(eng.stats().evicted_groups, 2);
    assert!(eng.stats().groups <= 2);
}

#[test]
fn hits_per_group_are_bounded() {
    let rules = count_rule("1h", "{gte: 1000}");
    let cfg = EngineConfig {
        allowed_lateness_ms: 0,
        max_hits_per_group: 10,
        ..EngineConfig::default()
    };
    let input: Vec<(u64, Entry)> = (0..25)
        .map(|i| (i, login(T0 + i as i64, "a", false)))
        .collect();
    let (out, eng) = run(&rules, cfg, &input);
    assert!(out.is_empty());
    assert_eq!(eng.stats().dropped_hits, 15);
}

#[test]
fn value_count_counts_distinct_values_in_the_window() {
    let rules = "title: Many patients\nid: many-patients\ncorrelation:\n  type: value_count\n  rules: [chart_view]\n  group-by: [actor.user]\n  timespan: 10m\n  condition:\n    field: patient.id\n    gte: 3\n---\ntitle: v\nid: chart-view\nname: chart_view\ndetection:\n  s:\n    action: view\n  condition: s\n".to_string();
    let view = |ms: i64, u: &str, p: &str| {
        entry_at(
            ms,
            json!({"action": "view", "actor": {"user": u}, "patient": {"id": p}}),
        )
    };
    let min = 60_000;
    let input = vec![
        (0, view(T0, "u1", "P1")),
        (1, view(T0 + min, "u1", "P1")),
        (2, view(T0 + 2 * min, "u1", "P2")),
        (3, view(T0 + 3 * min, "u2", "P3")),
        // P1's hits are older than 10 min here, P2 exactly 10 min
        // (inside): P2, P3, P4 -> 3.
        (4, view(T0 + 12 * min, "u1", "P3")),
        (5, view(T0 + 12 * min, "u1", "P3")),
        (6, view(T0 + 12 * min, "u1", "P4")),
    ];
    let (out, _) = run(&rules, no_lateness(), &input);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].count, 3);
    assert_eq!(out[0].event_indices, vec![2, 4, 5, 6]);
    // Had P1 not left the window it would have fired at index 4.
    assert_eq!(out[0].last_time.unix_ms(), T0 + 12 * min);
}

fn temporal_rules(kind: &str) -> String {
    format!(
        "title: Fail then success\nid: fail-success\ncorrelation:\n  type: {kind}\n  rules: [failed_login, successful_login]\n  group-by: [actor.user]\n  timespan: 5m\n---\n{FAILED}---\n{SUCCESS}"
    )
}

#[test]
fn temporal_any_order_and_temporal_ordered_order_matters() {
    let fail_then_ok = vec![
        (0, login(T0, "u1", false)),
        (1, login(T0 + 1_000, "u1", true)),
    ];
    let ok_then_fail = vec![
        (0, login(T0, "u1", true)),
        (1, login(T0 + 1_000, "u1", false)),
    ];
    let (out, _) = run(&temporal_rules("temporal"), no_lateness(), &fail_then_ok);
    assert_eq!(out.len(), 1);
    let (out, _) = run(&temporal_rules("temporal"), no_lateness(), &ok_then_fail);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].count, 2);
    let (out, _) = run(
        &temporal_rules("temporal_ordered"),
        no_lateness(),
        &fail_then_ok,
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].event_indices, vec![0, 1]);
    let (out, _) = run(
        &temporal_rules("temporal_ordered"),
        no_lateness(),
        &ok_then_fail,
    );
    assert!(out.is_empty(), "{out:?}");
    // Different users never combine; outside the timespan neither.
    let two_users = vec![(0, login(T0, "u1", false)), (1, login(T0 + 1, "u2", true))];
    let (out, _) = run(&temporal_rules("temporal"), no_lateness(), &two_users);
    assert!(out.is_empty());
    let far = vec![
        (0, login(T0, "u1", false)),
        (1, login(T0 + 300_001, "u1", true)),
    ];
    let (out, _) = run(&temporal_rules("temporal_ordered"), no_lateness(), &far);
    assert!(out.is_empty());
}

#[test]
fn chained_correlation_many_failures_then_success() {
    let rules = format!(
        "title: Brute force succeeded\nid: brute-ok\nlevel: critical\ncorrelation:\n  type: temporal_ordered\n  rules: [many_failed, successful_login]\n  group-by: [actor.user]\n  timespan: 10m\n---\ntitle: Many failed\nid: many-failed\nname: many_failed\ncorrelation:\n  type: event_count\n  rules: [failed_login]\n  group-by: [actor.user, actor.ip]\n  timespan: 10m\n  condition: {{gte: 3}}\n---\n{FAILED}---\n{SUCCESS}"
    );
    let mut input: Vec<(u64, Entry)> = (0..3)
        .map(|i| (i, login(T0 + i as i64 * 1_000, "u1", false)))
        .collect();
    input.push((3, login(T0 + 60_000, "u1", true)));
    input.push((4, login(T0 + 61_000, "u2", true)));
    let (out, _) = run(&rules, no_lateness(), &input);
    assert_eq!(out.len(), 1, "{out:?}");
    let a = &out[0];
    assert_eq!(a.rule_id, "brute-ok");
    assert_eq!(a.level, Level::Critical);
    assert_eq!(a.event_indices, vec![0, 1, 2, 3]);
    assert_eq!(a.first_time.unix_ms(), T0);
    assert_eq!(a.group.len(), 1);
    // Success alone, or before the failures: nothing.
    let mut rev = vec![(0, login(T0, "u1", true))];
    rev.extend((1..4).map(|i| (i, login(T0 + i as i64 * 1_000, "u1", false))));
    let (out, _) = run(&rules, no_lateness(), &rev);
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn chained_group_by_must_come_from_the_inner_correlation() {
    let rules = format!(
        "title: Outer\nid: outer\ncorrelation:\n  type: event_count\n  rules: [inner]\n  group-by: [actor.ip]\n  timespan: 10m\n  condition: {{gte: 2}}\n---\ntitle: Inner\nid: inner\ncorrelation:\n  type: event_count\n  rules: [failed_login]\n  group-by: [actor.user]\n  timespan: 10m\n  condition: {{gte: 3}}\n---\n{FAILED}"
    );
    let errs = RuleSet::from_yaml("c.yml", &rules).unwrap_err();
    assert!(errs[0].reason.contains("not a group-by field"), "{errs:?}");
    assert_eq!(errs[0].line, Some(6));
}

#[test]
fn aliases_map_group_fields_per_rule() {
    let rules = "title: Admin acts on patient's record\nid: alias\ncorrelation:\n  type: temporal\n  rules: [grant, self_view]\n  group-by: [person]\n  timespan: 1h\n  aliases:\n    person:\n      grant: target_user\n      self_view: actor.user\n---\ntitle: g\nid: g\nname: grant\ndetection:\n  s:\n    action: role_grant\n  condition: s\n---\ntitle: v\nid: v\nname: self_view\ndetection:\n  s:\n    action: view\n  condition: s\n";
    let input = vec![
        (
            0,
            entry_at(
                T0,
                json!({"category": "admin", "action": "role_grant", "actor": {"user": "admin1"}, "target_user": "u9"}),
            ),
        ),
        (
            1,
            entry_at(T0 + 5, json!({"action": "view", "actor": {"user": "u8"}})),
        ),
        (
            2,
            entry_at(T0 + 9, json!({"action": "view", "actor": {"user": "u9"}})),
        ),
    ];
    let (out, _) = run(rules, no_lateness(), &input);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].group.get("person").map(String::as_str), Some("u9"));
    assert_eq!(out[0].event_indices, vec![0, 2]);
}

#[test]
fn reorder_buffer_cap_forces_early_application() {
    let rules = count_rule("10s", "{gte: 100}");
    let cfg = EngineConfig {
        allowed_lateness_ms: 60_000,
        max_pending: 4,
        ..EngineConfig::default()
    };
    let input: Vec<(u64, Entry)> = (0..10)
        .map(|i| (i, login(T0 + i as i64, "a", false)))
        .collect();
    let set = Arc::new(RuleSet::from_yaml("c.yml", &rules).unwrap());
    let mut engine = Engine::new(set, cfg);
    let mut out = Vec::new();
    for (i, e) in &input {
        engine.process(*i, e, &mut out);
        assert!(engine.stats().pending <= 4);
    }
    assert_eq!(engine.stats().forced_hits, 6);
    // Anything older than the applied hits is late now.
    engine.process(99, &login(T0, "a", false), &mut out);
    assert_eq!(engine.stats().late_hits, 1);
}

#[test]
fn replay_rebuilds_state_without_alerts() {
    let rules = count_rule("10m", "{gte: 3}");
    let set = Arc::new(RuleSet::from_yaml("c.yml", &rules).unwrap());
    let mut engine = Engine::new(set, no_lateness());
    engine.replay(0, &login(T0, "u1", false));
    engine.replay(1, &login(T0 + 1_000, "u1", false));
    let mut out = Vec::new();
    engine.process(2, &login(T0 + 2_000, "u1", false), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].event_indices, vec![0, 1, 2]);
}

#[test]
fn deduplicator_suppresses_within_the_window() {
    let a = |ms: i64, user: &str| AlertCandidate {
        rule_id: "r".into(),
        title: "t".into(),
        level: Level::High,
        group: [("actor.user".to_owned(), user.to_owned())].into(),
        first_time: Timestamp::from_unix_ms(ms).unwrap(),
        last_time: Timestamp::from_unix_ms(ms).unwrap(),
        count: 1,
        event_indices: vec![],
        late: false,
        explanations_tried: Vec::new(),
    };
    let mut d = Deduplicator::new(60_000, 2);
    assert!(d.admit(&a(T0, "u1")));
    assert!(!d.admit(&a(T0 + 59_999, "u1")));
    assert!(d.admit(&a(T0 + 1, "u2")));
    assert!(d.admit(&a(T0 + 60_000, "u1")));
    assert!(d.admit(&a(T0 + 2, "u3")), "cap forgets the oldest key");
    assert_eq!(d.len(), 2);
    assert_eq!(d.forgotten(), 1);
}

#[test]
fn rule_metadata_is_exposed() {
    let set = RuleSet::from_yaml(
        "m.yml",
        &format!("{}---\n{}", count_rule("5m", "{gte: 2}"), SUCCESS),
    )
    .unwrap();
    let det: Vec<_> = set
        .detection_rules()
        .map(|m| (m.id.as_str(), m.standalone))
        .collect();
    assert_eq!(det, [("failed-login", false), ("ok-login", true)]);
    let (m, kind) = set.correlation_rules().next().unwrap();
    assert_eq!(
        (m.id.as_str(), kind, m.line),
        ("brute", CorrelationType::EventCount, 1)
    );
    assert_eq!(set.max_timespan_ms(), 300_000);
}

#[test]
fn count_condition_ranges_and_eq() {
    // 2 < count <= 3 over the whole window: judged when it closes.
    let rules = count_rule("1m", "{gt: 2, lte: 3}");
    let input: Vec<(u64, Entry)> = (0..4)
        .map(|i| (i, login(T0 + i as i64, "a", false)))
        .chain([(9, login(T0 + 60_001, "z", true))])
        .collect();
    let three: Vec<(u64, Entry)> = [&input[..3], &input[4..]].concat();
    let (out, _) = run(&rules, no_lateness(), &three);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].count, 3);
    assert_eq!(out[0].event_indices, vec![0, 1, 2]);
    // Four in the window: above the range, although three were in it.
    let (out, _) = run(&rules, no_lateness(), &input);
    assert!(out.is_empty(), "{out:?}");
    let two: Vec<(u64, Entry)> = [&input[..2], &input[4..]].concat();
    let (out, _) = run(&rules, no_lateness(), &two);
    assert!(out.is_empty());
    let rules = count_rule("1m", "{eq: 2}");
    let (out, _) = run(&rules, no_lateness(), &two);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].event_indices, vec![0, 1]);
    let (out, _) = run(&rules, no_lateness(), &three);
    assert!(out.is_empty());
}

#[test]
fn same_input_gives_the_same_alerts() {
    let rules = format!("{}---\n{SUCCESS}", count_rule("1m", "{gte: 2}"));
    let input: Vec<(u64, Entry)> = (0..40)
        .map(|i| {
            (
                i,
                login(
                    T0 + (i as i64 % 7) * 900,
                    ["a", "b", "c"][i as usize % 3],
                    i % 4 == 0,
                ),
            )
        })
        .collect();
    let cfg = EngineConfig {
        allowed_lateness_ms: 10_000,
        ..EngineConfig::default()
    };
    let (a, _) = run(&rules, cfg.clone(), &input);
    let (b, _) = run(&rules, cfg, &input);
    assert!(!a.is_empty());
    assert_eq!(a, b);
}

// ---------------------------------------------------------------------------
// first_seen (sealtrail extension).

const DAY: i64 = 86_400_000;

fn new_ip_rule(learning: &str) -> String {
    format!(
        "title: New IP\nid: new-ip\ncorrelation:\n  type: first_seen\n  rules: [successful_login]\n  group-by: [actor.user]\n  field: actor.ip\n  history: 30d\n{learning}---\n{SUCCESS}"
    )
}

const DORMANT: &str = "title: Dormant\nid: dormant\ncorrelation:\n  type: first_seen\n  rules: [successful_login]\n  group-by: [actor.user]\n  history: 30d\n  gap: 14d\n---\n";

fn login_from(ms: i64, user: &str, ip: &str) -> Entry {
    entry_at(
        ms,
        json!({"category": "auth", "action": "login", "outcome": "success",
               "actor": {"user": user, "ip": ip}}),
    )
}

fn fired(alerts: &[AlertCandidate]) -> Vec<(u64, String)> {
    alerts
        .iter()
        .map(|a| {
            (
                a.event_indices[0],
                a.group.values().cloned().collect::<Vec<_>>().join("/"),
            )
        })
        .collect()
}

#[test]
fn first_seen_fires_on_a_first_value_only() {
    let rules = new_ip_rule("");
    let input = [
        (0, login_from(0, "u1", "10.0.0.1")),
        (1, login_from(DAY, "u1", "10.0.0.1")),
        (2, login_from(2 * DAY, "u1", "10.0.0.2")),
        (3, login_from(3 * DAY, "u1", "10.0.0.2")),
        (4, login_from(3 * DAY, "u2", "10.0.0.1")),
        // A login without the field is not remembered and does not fire.
        (
            5,
            entry_at(
                4 * DAY,
                json!({"category": "auth", "action": "login", "outcome": "success",
                       "actor": {"user": "u1"}}),
            ),
        ),
    ];
    let (out, engine) = run(&rules, no_lateness(), &input);
    assert_eq!(
        fired(&out),
        vec![
            (0, "10.0.0.1/u1".into()),
            (2, "10.0.0.2/u1".into()),
            (4, "10.0.0.1/u2".into())
        ]
    );
    let a = &out[0];
    assert_eq!(a.rule_id, "new-ip");
    assert_eq!(a.count, 1);
    assert_eq!(a.group.get("actor.user").map(String::as_str), Some("u1"));
    assert_eq!(
        a.group.get("actor.ip").map(String::as_str),
        Some("10.0.0.1")
    );
    assert_eq!(engine.stats().groups, 2);
}

#[test]
fn first_seen_value_is_new_again_after_the_history() {
    let rules = new_ip_rule("");
    let input = [
        (0, login_from(0, "u1", "10.0.0.9")),
        (1, login_from(DAY, "u1", "10.0.0.1")),
        // Exactly 30 days after the last sighting: still known.
        (2, login_from(30 * DAY, "u1", "10.0.0.9")),
        (3, login_from(40 * DAY, "u1", "10.0.0.1")),
        // 30 days and 1 ms after index 2: forgotten.
        (4, login_from(60 * DAY + 1, "u1", "10.0.0.9")),
    ];
    let (out, _) = run(&rules, no_lateness(), &input);
    let idx: Vec<u64> = fired(&out).into_iter().map(|(i, _)| i).collect();
    assert_eq!(idx, vec![0, 1, 3, 4]);
}

#[test]
fn first_seen_learning_period_suppresses_alerts_per_group() {
    let rules = new_ip_rule("  learning: 7d\n");
    let input = [
        (0, login_from(0, "u1", "10.0.0.1")),
        (1, login_from(6 * DAY, "u1", "10.0.0.2")),
        (2, login_from(7 * DAY - 1, "u1", "10.0.0.3")),
        // Learnt: 7 days after the group's first hit.
        (3, login_from(7 * DAY, "u1", "10.0.0.4")),
        (4, login_from(8 * DAY, "u1", "10.0.0.2")),
        // A user first seen on day 8 learns on its own.
        (5, login_from(8 * DAY, "u2", "10.0.0.5")),
        (6, login_from(9 * DAY, "u2", "10.0.0.6")),
        (7, login_from(15 * DAY, "u2", "10.0.0.7")),
    ];
    let (out, _) = run(&rules, no_lateness(), &input);
    let idx: Vec<u64> = fired(&out).into_iter().map(|(i, _)| i).collect();
    assert_eq!(idx, vec![3, 7]);
}

#[test]
fn first_seen_dormant_gap_boundary() {
    let rules = format!("{DORMANT}{SUCCESS}");
    let input = [
        // The first event of a group never fires.
        (0, login_from(0, "u1", "10.0.0.1")),
        (1, login_from(0, "u2", "10.0.0.2")),
        // 14 days minus 1 ms: not dormant.
        (2, login_from(14 * DAY - 1, "u1", "10.0.0.1")),
        // Exactly 14 days after u2's previous hit: dormant.
        (3, login_from(14 * DAY, "u2", "10.0.0.2")),
        (4, login_from(14 * DAY + 1, "u2", "10.0.0.2")),
        // Exactly 14 days after u1's previous hit.
        (5, login_from(28 * DAY - 1, "u1", "10.0.0.1")),
    ];
    let (out, _) = run(&rules, no_lateness(), &input);
    assert_eq!(fired(&out), vec![(3, "u2".into()), (5, "u1".into())]);
}

#[test]
fn first_seen_out_of_order_within_lateness_matches_sorted() {
    let rules = format!("{DORMANT}{SUCCESS}");
    let cfg = EngineConfig {
        allowed_lateness_ms: DAY,
        ..EngineConfig::default()
    };
    let sorted = [
        (0, login_from(0, "u1", "10.0.0.1")),
        (1, login_from(15 * DAY, "u1", "10.0.0.1")),
        (2, login_from(15 * DAY + 3_600_000, "u1", "10.0.0.1")),
    ];
    // The day-15 login arrives an hour late (after index 2): applied in
    // event-time order, it is still the one that ends the dormancy.
    let shuffled = [sorted[0].clone(), sorted[2].clone(), sorted[1].clone()];
    let (a, _) = run(&rules, cfg.clone(), &sorted);
    let (b, eb) = run(&rules, cfg, &shuffled);
    assert_eq!(fired(&a), vec![(1, "u1".into())]);
    assert_eq!(a, b);
    assert_eq!(eb.stats().late_hits, 0);

    let rules = new_ip_rule("");
    let cfg = EngineConfig {
        allowed_lateness_ms: 10_000,
        ..EngineConfig::default()
    };
    let sorted = [
        (0, login_from(1_000, "u1", "10.0.0.1")),
        (1, login_from(2_000, "u1", "10.0.0.1")),
    ];
    let shuffled = [sorted[1].clone(), sorted[0].clone()];
    let (a, _) = run(&rules, cfg.clone(), &sorted);
    let (b, _) = run(&rules, cfg, &shuffled);
    assert_eq!(fired(&a), vec![(0, "10.0.0.1/u1".into())]);
    assert_eq!(a, b);
}

#[test]
fn first_seen_values_per_group_are_bounded() {
    let rules = new_ip_rule("");
    let cfg = EngineConfig {
        allowed_lateness_ms: 0,
        max_hits_per_group: 2,
        ..EngineConfig::default()
    };
    let input = [
        (0, login_from(0, "u1", "10.0.0.1")),
        (1, login_from(1_000, "u1", "10.0.0.2")),
        (2, login_from(2_000, "u1", "10.0.0.3")),
        // .1 was the least recently seen and was evicted: new again.
        (3, login_from(3_000, "u1", "10.0.0.1")),
        (4, login_from(4_000, "u1", "10.0.0.3")),
    ];
    let (out, engine) = run(&rules, cfg, &input);
    let idx: Vec<u64> = fired(&out).into_iter().map(|(i, _)| i).collect();
    assert_eq!(idx, vec![0, 1, 2, 3]);
    assert_eq!(engine.stats().evicted_values, 2);
}

#[test]
fn first_seen_load_errors() {
    let base = "title: t\nid: t\ncorrelation:\n  type: first_seen\n  rules: [successful_login]\n  group-by: [actor.user]\n";
    for (body, needle, line) in [
        ("  field: actor.ip\n", "no `history`", 4),
        (
            "  field: actor.ip\n  history: 40d\n",
            "invalid history `40d`",
            8,
        ),
        ("  field: actor.nope\n  history: 30d\n", "unknown field", 7),
        ("  history: 30d\n", "needs `field`", 4),
        (
            "  field: actor.ip\n  history: 30d\n  gap: 14d\n",
            "`gap` is for",
            9,
        ),
        ("  history: 7d\n  gap: 14d\n", "must not exceed", 8),
        ("  history: 30d\n  gap: 14x\n", "invalid gap", 8),
        (
            "  field: actor.ip\n  history: 30d\n  learning: -1d\n",
            "invalid learning",
            9,
        ),
        (
            "  field: actor.ip\n  history: 30d\n  timespan: 1d\n",
            "not used by first_seen",
            9,
        ),
    ] {
        let e = load_err(&format!("{base}{body}---\n{SUCCESS}"));
        assert!(e.reason.contains(needle), "{body}: {e}");
        assert_eq!(e.line, Some(line), "{body}: {e}");
    }
    let e = load_err(&count_rule("1m", "{gte: 2}\n  history: 1d"));
    assert!(e.reason.contains("only for first_seen"), "{e}");
}

mod extensions;

fn failed_from(ms: i64, user: &str, system: &str, arrival: i64) -> Entry {
    let mut e = entry_at(
        ms,
        json!({"category": "auth", "action": "login", "outcome": "failure",
               "actor": {"user": user}, "source": {"system": system}}),
    );
    e.received = Timestamp::from_unix_ms(arrival).unwrap();
    e
}

#[test]
fn a_source_three_minutes_late_still_raises_its_bursts() {
    // The identity provider streams in real time; a relay delivers a burst
    // of 15 failed logins for u1 three minutes after they happened, and a
    // second burst for u2 that happened 30 s after the first.
    let rules = count_rule("10m", "{gte: 8}");
    let set = Arc::new(RuleSet::from_yaml("c.yml", &rules).unwrap());
    let mut engine = Engine::new(set, EngineConfig::default());
    let mut out = Vec::new();
    let mut i = 0u64;
    let live = |engine: &mut Engine, t: i64, out: &mut Vec<AlertCandidate>, i: &mut u64| {
        engine.process(*i, &failed_from(t, "someone", "idp", t), out);
        *i += 1;
    };
    for s in 0..200 {
        live(&mut engine, T0 + s * 1_000, &mut out, &mut i);
    }
    // Service entries (an alert event) carry the wall clock and no source.
    let mut own = entry_at(
        T0 + 3_600_000,
        json!({"category": "system", "action": "alert"}),
    );
    own.via.kind = "sealtrail".into();
    engine.process(i, &own, &mut out);
    i += 1;
    let burst_at = T0 + 200_000 - 180_000;
    let mut bursts = Vec::new();
    for (user, start) in [("u1", burst_at), ("u2", burst_at + 30_000)] {
        for k in 0..15 {
            let t = start + k * 1_000;
            engine.process(i, &failed_from(t, user, "relay", t + 180_000), &mut out);
            bursts.push(i);
            i += 1;
            live(&mut engine, t + 180_000, &mut out, &mut i);
        }
    }
    engine.advance(T0 + 300_000, &mut out);
    let users: Vec<&str> = out
        .iter()
        .filter_map(|a| a.group.get("actor.user").map(String::as_str))
        .filter(|u| *u != "someone")
        .collect();
    assert_eq!(users, ["u1", "u2"], "{out:?}");
    for a in out.iter().filter(|a| a.group["actor.user"] != "someone") {
        assert_eq!(a.count, 8);
        assert!(a.event_indices.iter().all(|e| bursts.contains(e)));
    }
    assert_eq!(engine.stats().late_dropped, 0);
}

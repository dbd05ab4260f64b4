//! Per-user baselines through loading and the engine: `habit`, `dormant`,
//! baseline `peers`, `gt/gte/lt/lte` with `fieldref`, `actor.ip_prefix`, `actor.ip_block`
//! and `actor.network`. Their state is unit-tested in their modules.

use std::sync::Arc;

use serde_json::{Value, json};

use super::view::EntryView;
use super::*;
use crate::event::{Enriched, Entry, Event, StaffInfo, Timestamp, Via};

/// 2026-03-02T00:00:00Z, a Monday.
const T0: i64 = 1_772_409_600_000;
const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;

fn entry(ms: i64, mut ev: Value) -> Entry {
    let obj = ev.as_object_mut().unwrap();
    obj.insert(
        "time".into(),
        json!(Timestamp::from_unix_ms(ms).unwrap().to_string()),
    );
    obj.entry("category").or_insert(json!("access"));
    obj.entry("action").or_insert(json!("view"));
    obj.entry("outcome").or_insert(json!("success"));
    Entry {
        received: Timestamp::from_unix_ms(ms).unwrap(),
        via: Via {
            kind: "http".into(),
            peer: None,
            principal: None,
        },
        event: Event::from_json(ev.to_string().as_bytes()).unwrap(),
        enriched: None,
    }
}

fn load_err(text: &str) -> String {
    let errs = RuleSet::from_yaml("bad.yml", text).unwrap_err();
    errs.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

fn run(rules: &str, entries: &[Entry]) -> Vec<AlertCandidate> {
    let set = RuleSet::from_yaml("r.yml", rules).unwrap_or_else(|e| panic!("{e:?}"));
    let mut engine = Engine::new(Arc::new(set), EngineConfig::default());
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        engine.process(i as u64, e, &mut out);
    }
    engine.flush(&mut out);
    out
}

const HABIT: &str = "title: h\nid: h\ncorrelation:\n  type: habit\n  rules: [chk]\n  learn: [act]\n  group-by: [actor.user]\n  history: 28d\n  learning: 2d\n  min_days: 2\n  profile: hour_of_day\n---\ntitle: c\nname: chk\ndetection:\n  s:\n    patient.id|exists: true\n  condition: s\n---\ntitle: a\nname: act\ndetection:\n  s:\n    actor.user|exists: true\n  condition: s\n";

#[test]
fn habit_through_the_engine() {
    let mut es = Vec::new();
    for d in 0..4 {
        for u in ["day", "night"] {
            let h = if u == "day" { 9 } else { 22 };
            es.push(entry(
                T0 + d * DAY + h * HOUR,
                json!({"actor": {"user": u}}),
            ));
        }
    }
    let n = es.len() as u64;
    for u in ["day", "night"] {
        es.push(entry(
            T0 + 4 * DAY + 22 * HOUR + 30 * 60_000,
            json!({"actor": {"user": u}, "patient": {"id": "P1"}}),
        ));
    }
    let out = run(HABIT, &es);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(
        out[0].group.get("actor.user").map(String::as_str),
        Some("day")
    );
    assert_eq!((out[0].count, out[0].event_indices.clone()), (1, vec![n]));
    let set = RuleSet::from_yaml("r.yml", HABIT).unwrap();
    assert_eq!(set.max_timespan_ms(), 28 * DAY);
}

#[test]
fn extension_load_errors() {
    let habit = |extra: &str| {
        load_err(&format!(
            "title: h\nid: h\ncorrelation:\n  type: habit\n  rules: [c]\n  group-by: [actor.user]\n{extra}---\ntitle: c\nname: c\ndetection:\n  s:\n    actor.user: x\n  condition: s\n"
        ))
    };
    assert!(habit("  history: 28d\n").contains("correlation has no `learn`"));
    assert!(habit("  learn: [c2]\n").contains("habit has no `history`"));
    let e = habit("  learn: [c]\n  history: 28d\n");
    assert!(e.contains("listed twice"), "{e}");
    let e = habit("  learn: [c]\n  history: 28d\n  tolerance: 13h\n");
    assert!(
        e.contains("bad.yml:9:14: tolerance must be 0 to 12h in steps of 15m"),
        "{e}"
    );
    let e = habit("  learn: [c]\n  history: 28d\n  min_days: 29\n");
    assert!(e.contains("min_days must be"), "{e}");
    let e = habit("  learn: [c]\n  history: 36h\n");
    assert!(e.contains("whole days"), "{e}");
    let e = habit("  learn: [c]\n  history: 28d\n  profile: hour_of_month\n");
    assert!(
        e.contains("profile must be hour_of_day or hour_of_week"),
        "{e}"
    );
    let e = habit("  learn: [c]\n  history: 7d\n  learning: 8d\n");
    assert!(e.contains("`learning` must not exceed `history`"), "{e}");

    let other = |ty: &str, extra: &str| {
        load_err(&format!(
            "title: h\nid: h\ncorrelation:\n  type: {ty}\n  rules: [c]\n  group-by: [actor.user]\n{extra}---\ntitle: c\nname: c\ndetection:\n  s:\n    actor.user: x\n  condition: s\n"
        ))
    };
    let e = other(
        "event_count",
        "  timespan: 1h\n  condition: {gte: 2}\n  learn: [c]\n",
    );
    assert!(e.contains("`learn` is only for habit"), "{e}");
    let e = other(
        "first_seen",
        "  history: 30d\n  gap: 14d\n  since: actor.hired\n",
    );
    assert!(e.contains("`since` is only for dormant"), "{e}");
    let e = other("absence", "  timespan: 1h\n  peers: actor.department\n");
    assert!(e.contains("`peers` is not used by absence"), "{e}");
    let e = other("dormant", "  history: 10d\n  gap: 14d\n");
    assert!(e.contains("`gap` must not exceed `history`"), "{e}");
    let e = other(
        "dormant",
        "  history: 30d\n  gap: 14d\n  since: actor.hird\n",
    );
    assert!(e.contains("unknown field `actor.hird`"), "{e}");
    let e = other("dormant", "  history: 30d\n");
    assert!(e.contains("dormant has no `gap`"), "{e}");
    let e = other(
        "baseline",
        "  timespan: 1d\n  history: 7\n  factor: 3\n  peers: actor.dept\n",
    );
    assert!(e.contains("unknown field `actor.dept`"), "{e}");

    let e = load_err(
        "title: t\nid: t\ndetection:\n  s:\n    time|hour|gt|fieldref: actor.hired\n  condition: s\n",
    );
    assert!(
        e.contains("fieldref does not combine with a time modifier"),
        "{e}"
    );
    let e = load_err(
        "title: t\nid: t\ndetection:\n  s:\n    time|re|fieldref: actor.hired\n  condition: s\n",
    );
    assert!(e.contains("fieldref combines only with"), "{e}");
}

#[test]
fn fieldref_orders_an_event_time_after_a_directory_date() {
    let rules = "title: t\nid: t\ndetection:\n  s:\n    time|gt|fieldref: actor.terminated\n  condition: s\n";
    let staff = |terminated: Option<&str>| {
        Some(Enriched {
            actor: Some(StaffInfo {
                terminated: terminated.map(Into::into),
                ..StaffInfo::default()
            }),
            ..Enriched::default()
        })
    };
    let mut on_last_day = entry(T0 + 23 * HOUR, json!({"actor": {"user": "u1"}}));
    on_last_day.enriched = staff(Some("2026-03-02"));
    let mut after = entry(T0 + DAY, json!({"actor": {"user": "u1"}}));
    after.enriched = staff(Some("2026-03-02"));
    let mut employed = entry(T0 + DAY, json!({"actor": {"user": "u1"}}));
    employed.enriched = staff(None);
    let out = run(rules, &[on_last_day, after, employed]);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].event_indices, vec![1]);
}

#[test]
fn ip_prefix_and_network_fields() {
    let prefix = field::Field::parse("actor.ip_prefix").unwrap();
    let block = field::Field::parse("actor.ip_block").unwrap();
    let network = field::Field::parse("actor.network").unwrap();
    for (ip, want, want_block) in [
        ("203.0.113.77", "203.0.113.0/24", "203.0.0.0/16"),
        ("::ffff:198.51.100.7", "198.51.100.0/24", "198.51.0.0/16"),
        ("2001:db8:1:2::5", "2001:db8:1::/48", "2001:db8::/32"),
        ("2001:db9:ffff:2::5", "2001:db9:ffff::/48", "2001:db9::/32"),
    ] {
        let e = entry(T0, json!({"actor": {"user": "u", "ip": ip}}));
        let v = EntryView::from_entry(&e);
        assert_eq!(prefix.get(&v).unwrap().text(), want);
        assert_eq!(block.get(&v).unwrap().text(), want_block);
        assert!(network.get(&v).is_none());
    }
    // Two phone sessions on one carrier: other /24s, one /16.
    let phone = |ip: &str| entry(T0, json!({"actor": {"user": "u", "ip": ip}}));
    let (a, b) = (phone("172.58.3.9"), phone("172.58.201.77"));
    let (va, vb) = (EntryView::from_entry(&a), EntryView::from_entry(&b));
    assert_ne!(
        prefix.get(&va).unwrap().text(),
        prefix.get(&vb).unwrap().text()
    );
    assert_eq!(
        block.get(&va).unwrap().text(),
        block.get(&vb).unwrap().text()
    );
    let mut e = entry(T0, json!({"actor": {"user": "u", "ip": "10.99.0.4"}}));
    e.enriched = Some(Enriched {
        network: Some("vpn".into()),
        ..Enriched::default()
    });
    let bytes = e.canonical_bytes();
    let stored = EntryView::from_ledger_bytes(&bytes).unwrap();
    assert_eq!(network.get(&stored).unwrap().text(), "vpn");
    assert_eq!(prefix.get(&stored).unwrap().text(), "10.99.0.0/24");
}

/// first_seen `observe`: the observed rule's hits start the learning period
/// and remember values, but never fire.
const OBSERVE: &str = "title: n\nid: n\ncorrelation:\n  type: first_seen\n  rules: [outside]\n  observe: [inside]\n  group-by: [actor.user]\n  field: actor.ip_block\n  history: 30d\n  learning: 7d\n---\ntitle: o\nname: outside\ndetection:\n  s:\n    actor.ip|startswith: '185.'\n  condition: s\n---\ntitle: i\nname: inside\ndetection:\n  s:\n    actor.ip|startswith: '10.'\n  condition: s\n";

#[test]
fn first_seen_observe_starts_learning_and_never_fires() {
    let at = |ms, ip: &str| entry(ms, json!({"actor": {"user": "u", "ip": ip}}));
    // Office only for 8 days, then outside: learnt, so it fires. The
    // observed office login of another /16 on day 9 never fires.
    let out = run(
        OBSERVE,
        &[
            at(T0, "10.20.1.5"),
            at(T0 + 8 * DAY, "185.3.1.9"),
            at(T0 + 9 * DAY, "10.99.0.4"),
        ],
    );
    assert_eq!(
        out.iter()
            .map(|a| a.event_indices.clone())
            .collect::<Vec<_>>(),
        vec![vec![1]],
        "{out:?}"
    );
    // Without the office logins the outside login is the group's first.
    let out = run(OBSERVE, &[at(T0 + 8 * DAY, "185.3.1.9")]);
    assert!(out.is_empty(), "{out:?}");
    let e = load_err(&OBSERVE.replace("observe: [inside]", "observe: [outside]"));
    assert!(e.contains("listed twice in this first_seen"), "{e}");
    let e = load_err(&HABIT.replace("  learn: [act]\n", "  learn: [act]\n  observe: [act]\n"));
    assert!(e.contains("`observe` is only for first_seen"), "{e}");
}

use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::event::{Entry, Event, Via};
use crate::rules::{AlertCandidate, Engine, EngineConfig, RuleSet};

/// 2026-11-27T14:03:11Z.
const T0: i64 = 1_795_788_191_000;
const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;

fn ts(ms: i64) -> String {
    Timestamp::from_unix_ms(ms).unwrap().to_string()
}

fn entry(ms: i64, mut ev: Value) -> Entry {
    let obj = ev.as_object_mut().unwrap();
    obj.insert("time".into(), json!(ts(ms)));
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

/// A chart access of `user` (department `dept`) to `patient`.
fn access(user: &str, dept: &str, patient: &str) -> Value {
    json!({"actor": {"user": user, "department": dept}, "patient": {"id": patient},
           "resource": {"type": "demographics"}})
}

/// An access/`action` of `resource` by `user` to `patient`, with `attrs`.
fn act(user: &str, patient: &str, action: &str, resource: &str, attrs: Value) -> Value {
    json!({"action": action, "actor": {"user": user}, "patient": {"id": patient},
           "resource": {"type": resource}, "attrs": attrs})
}

fn booking(clinician: &str, patient: &str, at: i64, dept: Option<&str>) -> Value {
    let mut attrs = json!({"clinician": clinician, "scheduled_for": ts(at)});
    if let Some(d) = dept {
        attrs["department"] = json!(d);
    }
    act("svc-portal", patient, "create", "appointment", attrs)
}

fn rules(with: &str) -> Arc<RuleSet> {
    let text = format!(
        "title: t\nid: r1\ndetection:\n  sel:\n    category: access\n    patient.id|exists: true\n    \
         actor.user|startswith: u\n  condition: sel\nexplain:\n  with: [{with}]\n  window: 30d\n  grace: 15m\n"
    );
    Arc::new(RuleSet::from_yaml("t.yml", &text).unwrap_or_else(|e| panic!("{e:?}")))
}

/// Runs `events` in the given order, then flushes; the alerts.
fn run(with: &str, events: &[(i64, Value)]) -> Vec<AlertCandidate> {
    let mut engine = Engine::new(rules(with), EngineConfig::default());
    let mut out = Vec::new();
    for (i, (t, ev)) in events.iter().enumerate() {
        engine.process(i as u64, &entry(*t, ev.clone()), &mut out);
    }
    engine.flush(&mut out);
    out
}

/// The ledger indices of the alerted accesses.
fn alerted(with: &str, events: &[(i64, Value)]) -> Vec<u64> {
    run(with, events)
        .iter()
        .map(|a| a.event_indices[0])
        .collect()
}

#[test]
fn kinds_parse_by_id() {
    for k in Kind::ALL {
        assert_eq!(Kind::parse(k.id()), Some(k));
    }
    assert_eq!(Kind::parse("treatment"), None);
}

#[test]
fn clinician_of_a_visit_within_the_window() {
    let w = "treatment.clinician";
    let book = (T0 - 5 * DAY, booking("u1", "p1", T0 + 2 * DAY, None));
    assert_eq!(
        alerted(w, &[book.clone(), (T0, access("u1", "d", "p1"))]),
        Vec::<u64>::new()
    );
    // Another user, another patient: unexplained.
    assert_eq!(
        alerted(w, &[book.clone(), (T0, access("u2", "d", "p1"))]),
        vec![1]
    );
    assert_eq!(
        alerted(w, &[book.clone(), (T0, access("u1", "d", "p2"))]),
        vec![1]
    );
    // Scheduled 30 days from the access counts, 30 days and 1 ms not.
    let edge = (T0 - DAY, booking("u1", "p1", T0 + 30 * DAY, None));
    assert!(alerted(w, &[edge, (T0, access("u1", "d", "p1"))]).is_empty());
    let out = (T0 - DAY, booking("u1", "p1", T0 + 30 * DAY + 1, None));
    assert_eq!(alerted(w, &[out, (T0, access("u1", "d", "p1"))]), vec![1]);
    // Booked after the access: within the grace it counts, later not.
    let soon = (T0 + 10 * MIN, booking("u1", "p1", T0 + DAY, None));
    assert!(alerted(w, &[(T0, access("u1", "d", "p1")), soon]).is_empty());
    let late = (T0 + HOUR, booking("u1", "p1", T0 + DAY, None));
    assert_eq!(alerted(w, &[(T0, access("u1", "d", "p1")), late]), vec![0]);
    // The alert says what was tried and names the user and patient.
    let a = run(w, &[(T0, access("u2", "d", "p1"))]);
    assert_eq!(a[0].explanations_tried, vec!["treatment.clinician"]);
    assert_eq!(a[0].group["actor.user"], "u2");
    assert_eq!(a[0].group["patient.id"], "p1");
}

#[test]
fn department_of_a_visit_on_the_access_day() {
    let w = "treatment.department";
    let book = (
        T0 - 5 * DAY,
        booking("u1", "p1", T0 + 3 * HOUR, Some("cardio")),
    );
    assert!(alerted(w, &[book.clone(), (T0, access("u2", "cardio", "p1"))]).is_empty());
    assert_eq!(
        alerted(w, &[book.clone(), (T0, access("u2", "ortho", "p1"))]),
        vec![1]
    );
    // A user without a department is never explained by it.
    let none = json!({"actor": {"user": "u2"}, "patient": {"id": "p1"}});
    assert_eq!(alerted(w, &[book, (T0, none)]), vec![1]);
    // Another day (beyond visit_day, 12 h).
    let far = (
        T0 - 5 * DAY,
        booking("u1", "p1", T0 + 13 * HOUR, Some("cardio")),
    );
    assert_eq!(
        alerted(w, &[far, (T0, access("u2", "cardio", "p1"))]),
        vec![1]
    );
    // Without attrs.department: the clinician's department, from their
    // own events' enrichment.
    let plain = (T0 - 5 * DAY, booking("u1", "p1", T0 + HOUR, None));
    let seen = (T0 - DAY, access("u1", "cardio", "p9"));
    let events = [plain.clone(), seen, (T0, access("u2", "cardio", "p1"))];
    assert_eq!(alerted(w, &events), vec![1], "u1 itself is unexplained");
    assert_eq!(
        alerted(w, &[plain, (T0, access("u2", "cardio", "p1"))]),
        vec![1]
    );
}

#[test]
fn care_team_acted_on_the_visit() {
    let w = "treatment.care_team";
    let enc = |user: &str, action: &str| {
        act(
            user,
            "p1",
            action,
            "encounter",
            json!({"clinician": "u1", "scheduled_for": ts(T0 - 2 * HOUR)}),
        )
    };
    // Rooming two hours before; the encounter event itself is explained.
    assert!(
        alerted(
            w,
            &[
                (T0 - 2 * HOUR, enc("u2", "create")),
                (T0, access("u2", "d", "p1"))
            ]
        )
        .is_empty()
    );
    // Check-in: an update of the appointment.
    let checkin = act("u3", "p1", "update", "appointment", json!({}));
    assert!(alerted(w, &[(T0 - HOUR, checkin), (T0, access("u3", "d", "p1"))]).is_empty());
    // Viewing the encounter is not acting on it.
    assert_eq!(
        alerted(
            w,
            &[
                (T0 - HOUR, enc("u2", "view")),
                (T0, access("u2", "d", "p1"))
            ]
        ),
        vec![0, 1]
    );
    // Listed in attrs.care_team.
    let team = act(
        "u1",
        "p1",
        "update",
        "encounter",
        json!({"care_team": ["u4", "u5"]}),
    );
    assert!(
        alerted(
            w,
            &[(T0 - HOUR, team.clone()), (T0, access("u5", "d", "p1"))]
        )
        .is_empty()
    );
    // More than a visit day before the access.
    assert_eq!(
        alerted(w, &[(T0 - 13 * HOUR, team), (T0, access("u5", "d", "p1"))]),
        vec![1]
    );
}

#[test]
fn record_created_or_updated_within_the_window() {
    let w = "treatment.record";
    for (kind, want) in [
        ("note", true),
        ("encounter_note", true),
        ("Lab_Order", true),
        ("prescription", true),
        ("referral", true),
        ("message", true),
        ("result", true),
        ("footnotes", false),
        ("vitals", false),
    ] {
        assert_eq!(is_record(kind), want, "{kind}");
    }
    let note = |action: &str| act("u1", "p1", action, "lab_order", json!({}));
    assert!(
        alerted(
            w,
            &[
                (T0 - 20 * DAY, note("create")),
                (T0, access("u1", "d", "p1"))
            ]
        )
        .is_empty()
    );
    assert!(
        alerted(
            w,
            &[
                (T0 - 20 * DAY, note("update")),
                (T0, access("u1", "d", "p1"))
            ]
        )
        .is_empty()
    );
    // Viewing a record is no relationship; 31 days is out of the window.
    assert_eq!(
        alerted(
            w,
            &[(T0 - DAY, note("view")), (T0, access("u1", "d", "p1"))]
        ),
        vec![0, 1]
    );
    assert_eq!(
        alerted(
            w,
            &[
                (T0 - 31 * DAY, note("create")),
                (T0, access("u1", "d", "p1"))
            ]
        ),
        vec![1]
    );
    // Another user's record does not explain this user.
    assert_eq!(
        alerted(
            w,
            &[(T0 - DAY, note("create")), (T0, access("u2", "d", "p1"))]
        ),
        vec![1]
    );
}

#[test]
fn claim_of_the_patient() {
    let w = "payment.claim";
    let denied = act("u7", "p1", "update", "claim", json!({"status": "denied"}));
    assert!(alerted(w, &[(T0 - 3 * DAY, denied), (T0, access("u7", "d", "p1"))]).is_empty());
    let submit = json!({"category": "integration", "action": "claim_submit",
                        "actor": {"user": "u8"}, "patient": {"id": "p1"}});
    assert!(
        alerted(
            w,
            &[(T0 - DAY, submit.clone()), (T0, access("u8", "d", "p1"))]
        )
        .is_empty()
    );
    assert_eq!(
        alerted(w, &[(T0 - DAY, submit), (T0, access("u9", "d", "p1"))]),
        vec![1]
    );
}

#[test]
fn repeat_of_an_explained_access() {
    let w = "treatment.record, operations.repeat";
    let note = (T0 - 25 * DAY, act("u1", "p1", "create", "note", json!({})));
    // Explained by the note (25 d), then 20 days later only by the repeat.
    let events = [
        note.clone(),
        (T0, access("u1", "d", "p1")),
        (T0 + 20 * DAY, access("u1", "d", "p1")),
    ];
    assert!(alerted(w, &events).is_empty());
    let a = run("treatment.record", &events);
    assert_eq!(a.len(), 1, "without the repeat the second access alerts");
    // An unexplained earlier access does not explain a repeat.
    let events = [
        (T0, access("u1", "d", "p1")),
        (T0 + DAY, access("u1", "d", "p1")),
    ];
    assert_eq!(alerted(w, &events), vec![0, 1]);
    // The earlier access more than the window before.
    let events = [
        note,
        (T0, access("u1", "d", "p1")),
        (T0 + 31 * DAY, access("u1", "d", "p1")),
    ];
    assert_eq!(alerted(w, &events), vec![2]);
}

#[test]
fn the_verdict_waits_for_the_grace_and_takes_a_late_fact() {
    let r = rules("treatment.record");
    let other = |t: i64| {
        (
            t,
            json!({"category": "auth", "action": "login", "actor": {"user": "x"}}),
        )
    };
    let note = act("u1", "p1", "create", "note", json!({}));
    // The note (event time T0 + 5 min) comes from a late source, after
    // another source's event at T0 + 14 min: the verdict still waits.
    let mut engine = Engine::new(Arc::clone(&r), EngineConfig::default());
    let mut out = Vec::new();
    engine.process(0, &entry(T0, access("u1", "d", "p1")), &mut out);
    let (t, e) = other(T0 + 14 * MIN);
    engine.process(1, &entry(t, e), &mut out);
    assert!(out.is_empty(), "judged before access + grace");
    engine.process(2, &entry(T0 + 5 * MIN, note.clone()), &mut out);
    let (t, e) = other(T0 + 16 * MIN);
    engine.process(3, &entry(t, e), &mut out);
    assert!(out.is_empty(), "the late note explains the access: {out:?}");
    let s = engine.explain_stats().unwrap();
    assert_eq!((s.rule_checks, s.unexplained), (1, 0));

    // The same note after the watermark passed access + grace: too late.
    let mut engine = Engine::new(Arc::clone(&r), EngineConfig::default());
    let mut out = Vec::new();
    engine.process(0, &entry(T0, access("u1", "d", "p1")), &mut out);
    let (t, e) = other(T0 + 16 * MIN);
    engine.process(1, &entry(t, e), &mut out);
    assert_eq!(out.len(), 1, "judged once the watermark passed T0 + 15 min");
    engine.process(2, &entry(T0 + 5 * MIN, note), &mut out);
    assert_eq!(out.len(), 1);
}

#[test]
fn arrival_order_within_the_grace_does_not_change_verdicts() {
    let w = "treatment.clinician, treatment.care_team, treatment.record, operations.repeat";
    let events = vec![
        (T0 - DAY, booking("u1", "p1", T0, None)),
        (T0, access("u1", "d", "p1")),
        (T0 + MIN, access("u2", "d", "p1")),
        (
            T0 + 2 * MIN,
            act("u2", "p1", "update", "encounter", json!({})),
        ),
        (T0 + 3 * MIN, access("u3", "d", "p1")),
        (T0 + 4 * MIN, access("u4", "d", "p2")),
        (T0 + 10 * MIN, act("u4", "p2", "create", "order", json!({}))),
    ];
    let want: Vec<String> = run(w, &events)
        .iter()
        .map(|a| a.group["actor.user"].clone())
        .collect();
    assert_eq!(want, vec!["u3"]);
    let mut rev = events.clone();
    rev.reverse();
    let got: Vec<String> = run(w, &rev)
        .iter()
        .map(|a| a.group["actor.user"].clone())
        .collect();
    assert_eq!(got, want);
}

#[test]
fn a_correlation_counts_only_unexplained_matches() {
    let text = "title: t\nid: vol\ncorrelation:\n  type: value_count\n  rules: [acc]\n  \
                group-by: [actor.user]\n  timespan: 1h\n  condition:\n    field: patient.id\n    gte: 3\n\
                ---\ntitle: a\nid: acc\nname: acc\ndetection:\n  sel:\n    category: access\n  \
                condition: sel\nexplain:\n  with: [payment.claim]\n";
    let r = Arc::new(RuleSet::from_yaml("v.yml", text).unwrap());
    let claim = |p: &str| act("u7", p, "view", "claim", json!({}));
    let mut engine = Engine::new(Arc::clone(&r), EngineConfig::default());
    let mut out = Vec::new();
    for (i, p) in ["p1", "p2", "p3", "p4"].iter().enumerate() {
        engine.process(i as u64, &entry(T0 + i as i64 * MIN, claim(p)), &mut out);
    }
    engine.flush(&mut out);
    assert!(out.is_empty(), "claims are explained: {out:?}");
    let mut engine = Engine::new(r, EngineConfig::default());
    for (i, p) in ["p1", "p2", "p3"].iter().enumerate() {
        engine.process(
            i as u64,
            &entry(T0 + i as i64 * MIN, access("u7", "d", p)),
            &mut out,
        );
    }
    engine.flush(&mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].count, 3);
    assert_eq!(out[0].explanations_tried, vec!["payment.claim"]);
}

fn explainer(cfg: ExplainConfig) -> Explainer<()> {
    let ex = Explain {
        kinds: Kind::ALL.to_vec(),
        window_ms: DEFAULT_WINDOW_MS,
        grace_ms: 0,
        visit_day_ms: DEFAULT_VISIT_DAY_MS,
    };
    Explainer::new([&ex], cfg).unwrap()
}

fn observe(x: &mut Explainer<()>, t: i64, ev: Value) {
    let e = entry(t, ev);
    x.observe(&EntryView::from_entry(&e), t);
}

#[test]
fn pairs_patients_and_users_are_bounded_least_recently_used_first() {
    let mut x = explainer(ExplainConfig {
        max_pairs: 2,
        max_patients: 2,
        max_users: 2,
        max_visits: 2,
        max_pending: 10,
    });
    for (i, p) in ["p1", "p2", "p3"].iter().enumerate() {
        observe(
            &mut x,
            T0 + i as i64,
            act("u1", p, "create", "note", json!({})),
        );
    }
    let s = x.stats();
    assert_eq!(s.evicted_pairs, 1);
    assert_eq!(x.pairs.len(), 2);
    let k = |u: &str, p: &str| (key(u), key(p));
    assert!(
        x.pairs.get(&k("u1", "p1")).is_none(),
        "the least recently used goes"
    );
    assert!(x.pairs.get(&k("u1", "p3")).is_some());
    // Touching p2 keeps it over p3.
    observe(
        &mut x,
        T0 + 10,
        act("u1", "p2", "update", "note", json!({})),
    );
    observe(
        &mut x,
        T0 + 11,
        act("u1", "p4", "update", "note", json!({})),
    );
    assert!(x.pairs.get(&k("u1", "p2")).is_some());
    assert!(x.pairs.get(&k("u1", "p3")).is_none());
    // Visits per patient: the one scheduled farthest from now is dropped;
    // a visit's encounter after its appointment is the same visit.
    let before = x.stats().dropped_facts;
    for d in [3, 1, 2] {
        observe(&mut x, T0, booking("u1", "p1", T0 + d * DAY, None));
    }
    assert_eq!(x.stats().dropped_facts, before + 1);
    let visits = x.patients.get(&key("p1")).unwrap();
    assert!(visits.iter().all(|v| v.scheduled != T0 + 3 * DAY));
    let enc = act(
        "u2",
        "p1",
        "create",
        "encounter",
        json!({"clinician": "u1", "scheduled_for": ts(T0 + DAY), "department": "c"}),
    );
    observe(&mut x, T0 + DAY, enc);
    let visits = x.patients.get(&key("p1")).unwrap();
    assert_eq!(visits.len(), 2);
    let v = visits.iter().find(|v| v.scheduled == T0 + DAY).unwrap();
    assert_eq!((v.booked, v.department), (T0, key("c")));
    assert_eq!(x.stats().dropped_facts, before + 1);
    for p in ["p5", "p6"] {
        observe(&mut x, T0, booking("u1", p, T0, None));
    }
    assert_eq!(x.stats().evicted_patients, 1);
    for u in ["u2", "u3", "u4"] {
        observe(&mut x, T0, access(u, "d", "p1"));
    }
    assert!(x.stats().evicted_users >= 1);
    assert!(x.users.len() <= 2);
    // The order queue stays bounded by its compaction.
    for i in 0..1_000 {
        observe(&mut x, T0 + i, act("u1", "p2", "update", "note", json!({})));
    }
    assert!(x.pairs.order.len() <= 2 * x.pairs.len() + 64);
    assert!(
        x.over_capacity(),
        "accesses waiting for a verdict are counted"
    );
}

#[test]
fn fact_spans_merge_and_keep_the_newest() {
    let mut f = PairFacts::default();
    let merge = 10;
    for t in [100, 105, 112, 200, 300] {
        f.add(RECORD, t, merge);
    }
    // [100, 112] dropped for [200] and [300].
    assert!(!f.any(RECORD, 110, 0, 0));
    assert!(f.any(RECORD, 200, 0, 0));
    assert!(f.any(RECORD, 300, 0, 0));
    assert!(!f.any(RECORD, 250, 10, 10));
    let mut f = PairFacts::default();
    for t in [100, 130, 115] {
        f.add(RECORD, t, 15);
    }
    assert_eq!(f.spans[RECORD][0], Span { lo: 100, hi: 130 });
    // A window inside the span always holds a fact (gaps <= merge).
    assert!(f.any(RECORD, 122, 8, 7));
}

#[test]
fn memory_per_key() {
    use std::mem::size_of;
    // A hashbrown slot (key, value, LRU stamp, control byte) at 7/8 load,
    // plus at most two order-queue entries.
    let slot = |k: usize, v: usize| (k + v + 8 + 1) * 8 / 7 + 2 * (k + 8);
    let pair = slot(16, size_of::<PairFacts>());
    let mut x = explainer(ExplainConfig::default());
    for d in [1, 2] {
        observe(&mut x, T0, booking("u1", "p1", T0 + d * DAY, None));
    }
    let heap = x.patients.get(&key("p1")).unwrap().capacity() * size_of::<Visit>();
    assert_eq!(heap, 2 * size_of::<Visit>(), "visits are allocated exactly");
    // Two visits on the heap (plus the allocator's header).
    let patient = slot(8, size_of::<Vec<Visit>>()) + heap + 16;
    assert_eq!(size_of::<PairFacts>(), 128);
    assert!(pair <= 230, "pair {pair} bytes");
    assert!(patient <= 170, "patient {patient} bytes");
    let total = 100_000 * patient + ExplainConfig::default().max_pairs * pair + 1_000 * slot(8, 8);
    assert!(total < 64 << 20, "{total} bytes");
}

fn load_err(text: &str) -> String {
    let errs = RuleSet::from_yaml("bad.yml", text).unwrap_err();
    errs[0].to_string()
}

#[test]
fn load_errors_name_file_line_and_column() {
    let base = "title: t\nid: r1\ndetection:\n  sel:\n    category: access\n  condition: sel\n";
    let e = load_err(&format!(
        "{base}explain:\n  with: [treatment.clinician, treatment.nurse]\n"
    ));
    assert!(e.starts_with("bad.yml:8:"), "{e}");
    assert!(e.contains("unknown explanation `treatment.nurse`"), "{e}");
    let e = load_err(&format!(
        "{base}explain:\n  with: [payment.claim]\n  window: 40d\n"
    ));
    assert!(
        e.starts_with("bad.yml:9:11:") && e.contains("invalid window `40d`"),
        "{e}"
    );
    let e = load_err(&format!(
        "{base}explain:\n  with: [payment.claim]\n  grace: 2d\n"
    ));
    assert!(
        e.starts_with("bad.yml:9:10:") && e.contains("invalid grace"),
        "{e}"
    );
    let e = load_err(&format!("{base}explain:\n  with: []\n"));
    assert!(e.contains("`with` is empty"), "{e}");
    let e = load_err(&format!(
        "{base}explain:\n  with: [payment.claim, payment.claim]\n"
    ));
    assert!(e.contains("listed twice"), "{e}");
    let e = load_err(&format!(
        "{base}explain:\n  with: [payment.claim]\n  lead: 1d\n"
    ));
    assert!(
        e.starts_with("bad.yml:9:3:") && e.contains("unknown explain attribute `lead`"),
        "{e}"
    );
    let e = load_err(&format!("{base}explain: payment.claim\n"));
    assert!(e.contains("explain must be a map"), "{e}");
    let e = load_err(
        "title: c\nid: c1\ncorrelation:\n  type: event_count\n  rules: [x]\n  timespan: 1h\n  \
         condition:\n    gte: 2\nexplain:\n  with: [payment.claim]\n",
    );
    assert!(
        e.starts_with("bad.yml:10:") && e.contains("for detection rules"),
        "{e}"
    );
    // A correlation may mix rules with and without explain (verdict hits
    // take their place in time).
    RuleSet::from_yaml("mixed.yml", &format!(
        "title: c\nid: c1\ncorrelation:\n  type: event_count\n  rules: [a, b]\n  group-by: [actor.user]\n  \
         timespan: 1h\n  condition:\n    gte: 2\n---\ntitle: a\nid: a\n{}explain:\n  with: [payment.claim]\n\
         ---\ntitle: b\nid: b\n{}",
        &base[16..],
        &base[16..]
    ))
    .unwrap();
    // grace 0 and the defaults load.
    let ok = RuleSet::from_yaml(
        "ok.yml",
        &format!("{base}explain:\n  with: payment.claim\n  grace: 0\n"),
    )
    .unwrap();
    let ex = ok.detections[0].explain.as_ref().unwrap();
    assert_eq!((ex.grace_ms, ex.window_ms), (0, DEFAULT_WINDOW_MS));
    assert_eq!(ok.max_timespan_ms(), DEFAULT_WINDOW_MS);
}

#[test]
fn a_partial_replay_keeps_explain_rules_blind_for_their_window() {
    let mut engine = Engine::new(rules("treatment.record"), EngineConfig::default());
    engine.set_partial_history();
    let mut out = Vec::new();
    engine.process(0, &entry(T0, access("u1", "d", "p1")), &mut out);
    engine.process(1, &entry(T0 + DAY, access("u1", "d", "p1")), &mut out);
    engine.flush(&mut out);
    assert!(out.is_empty(), "facts may lie before the replay: {out:?}");
    engine.process(2, &entry(T0 + 31 * DAY, access("u1", "d", "p2")), &mut out);
    engine.flush(&mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].event_indices, vec![2]);
}

#[test]
fn a_waiting_access_is_small() {
    // The explainer's own verdicts wait for every patient access.
    assert!(std::mem::size_of::<Queued<()>>() <= 56);
}

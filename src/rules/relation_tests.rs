//! `relation` and `state`: window edges, ordering and lateness, restarts,
//! bounds and load errors.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::event::{Entry, Event, Timestamp, Via};
use crate::rules::{AlertCandidate, Engine, EngineConfig, LoadError, RuleSet};

/// 2026-11-27T14:03:11Z.
const T0: i64 = 1_795_788_191_000;
const DAY: i64 = 86_400_000;
const W: i64 = 30 * DAY;

const VIP: &str = "title: VIP without treatment
id: vip
correlation:
  type: relation
  rules: [chart]
  relation: [booking]
  group-by: [patient.id, actor.user]
  aliases:
    actor.user:
      chart: actor.user
      booking: attrs.clinician
  time: attrs.scheduled_for
  window: 30d
  lead: 14d
---
title: chart
id: chart
name: chart
detection:
  s:
    category: access
    action: view
  condition: s
---
title: booking
id: booking
name: booking
detection:
  s:
    category: access
    action: create
  condition: s
";

const DISABLED: &str = "title: Disabled login
id: disabled
correlation:
  type: state
  rules: [login]
  set: [disable]
  clear: [enable]
  group-by: [account]
  aliases:
    account:
      login: actor.user
      disable: target_user
      enable: target_user
  history: 30d
---
title: login
id: login
name: login
detection:
  s:
    category: auth
    action: login
  condition: s
---
title: disable
id: disable
name: disable
detection:
  s:
    action: user_disable
  condition: s
---
title: enable
id: enable
name: enable
detection:
  s:
    action: user_enable
  condition: s
";

fn ts(ms: i64) -> String {
    Timestamp::from_unix_ms(ms).unwrap().to_string()
}

fn entry_at(ms: i64, mut ev: Value) -> Entry {
    let obj = ev.as_object_mut().unwrap();
    obj.insert("time".into(), json!(ts(ms)));
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

/// A chart view of patient `p` by `user`.
fn view(ms: i64, user: &str, p: &str) -> Entry {
    entry_at(
        ms,
        json!({"category": "access", "action": "view", "actor": {"user": user}, "patient": {"id": p}}),
    )
}

/// An appointment of `p` with `clinician` at `at` (`None`: no scheduled_for).
fn booking(ms: i64, p: &str, clinician: &str, at: Option<&str>) -> Entry {
    let mut attrs = json!({"clinician": clinician});
    if let Some(a) = at {
        attrs["scheduled_for"] = json!(a);
    }
    entry_at(
        ms,
        json!({"category": "access", "action": "create", "actor": {"user": "svc-portal"},
               "patient": {"id": p}, "resource": {"type": "appointment"}, "attrs": attrs}),
    )
}

fn admin(ms: i64, action: &str, target: &str) -> Entry {
    entry_at(
        ms,
        json!({"category": "admin", "action": action, "actor": {"user": "it1"}, "target_user": target}),
    )
}

fn login(ms: i64, user: &str) -> Entry {
    entry_at(
        ms,
        json!({"category": "auth", "action": "login", "actor": {"user": user}}),
    )
}

fn cfg(lateness_ms: i64) -> EngineConfig {
    EngineConfig {
        allowed_lateness_ms: lateness_ms,
        ..EngineConfig::default()
    }
}

fn engine(rules: &str, cfg: EngineConfig) -> Engine {
    let set = RuleSet::from_yaml("j.yml", rules).unwrap_or_else(|e| panic!("{e:?}"));
    Engine::new(Arc::new(set), cfg)
}

fn run(rules: &str, cfg: EngineConfig, input: &[(u64, Entry)]) -> (Vec<AlertCandidate>, Engine) {
    let mut e = engine(rules, cfg);
    let mut out = Vec::new();
    for (i, en) in input {
        e.process(*i, en, &mut out);
    }
    e.flush(&mut out);
    (out, e)
}

/// (events, group values joined by `/`) of each alert.
fn fired(out: &[AlertCandidate]) -> Vec<(Vec<u64>, String)> {
    out.iter()
        .map(|a| {
            let g: Vec<&str> = a.group.values().map(String::as_str).collect();
            (a.event_indices.clone(), g.join("/"))
        })
        .collect()
}

fn load_err(text: &str) -> LoadError {
    let errs = RuleSet::from_yaml("bad.yml", text).unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:?}");
    errs.into_iter().next().unwrap()
}

#[test]
fn relation_window_edges_are_inclusive_either_side() {
    // Visit S; booked well before the first check.
    let s = T0 + 40 * DAY;
    let book = booking(T0, "p1", "dr1", Some(&ts(s)));
    let checks = [s - W - 1, s - W, s - 5, s + W, s + W + 1];
    let mut input = vec![(0, book)];
    for (k, &t) in checks.iter().enumerate() {
        input.push((k as u64 + 1, view(t, "dr1", "p1")));
    }
    let (out, _) = run(VIP, cfg(0), &input);
    // One ms outside either side fires; exactly ±30 days does not.
    assert_eq!(
        fired(&out),
        vec![(vec![1], "dr1/p1".into()), (vec![5], "dr1/p1".into())]
    );
    assert_eq!(out[0].count, 1);
    assert_eq!(out[0].rule_id, "vip");
}

#[test]
fn relation_joins_patient_and_clinician_only() {
    let book = booking(T0, "p1", "dr1", Some(&ts(T0 + DAY)));
    let input = [
        (0, book),
        (1, view(T0 + DAY, "dr1", "p1")),
        // Another physician, and the clinician on another patient.
        (2, view(T0 + DAY, "dr2", "p1")),
        (3, view(T0 + DAY, "dr1", "p2")),
    ];
    let (out, _) = run(VIP, cfg(0), &input);
    assert_eq!(
        fired(&out),
        vec![(vec![2], "dr2/p1".into()), (vec![3], "dr1/p2".into())]
    );
}

#[test]
fn relation_time_defaults_to_the_event_time_and_bad_times_are_counted() {
    let input = [
        // No scheduled_for: the booking's own time.
        (0, booking(T0, "p1", "dr1", None)),
        (1, view(T0 + W, "dr1", "p1")),
        (2, booking(T0 + W, "p2", "dr1", Some("next tuesday"))),
        (3, view(T0 + W + 1, "dr1", "p2")),
        // No user: nothing to join on.
        (
            4,
            entry_at(
                T0 + W + 2,
                json!({"category": "access", "action": "view", "patient": {"id": "p1"}}),
            ),
        ),
    ];
    let (out, e) = run(VIP, cfg(0), &input);
    assert_eq!(fired(&out), vec![(vec![3], "dr1/p2".into())]);
    assert_eq!(e.stats().unjoined_hits, 2);
}

#[test]
fn relation_booking_late_within_lateness_counts_and_beyond_does_not() {
    let lateness = 5_000;
    let book = |ms| booking(ms, "p1", "dr1", Some(&ts(T0)));
    // The booking (a second before the view) arrives after it, within the
    // lateness: applied first, same as in time order.
    let sorted = [(0, book(T0 - 1_000)), (1, view(T0, "dr1", "p1"))];
    let late = [(1, view(T0, "dr1", "p1")), (0, book(T0 - 1_000))];
    let (a, _) = run(VIP, cfg(lateness), &sorted);
    let (b, eb) = run(VIP, cfg(lateness), &late);
    assert!(a.is_empty());
    assert_eq!(a, b);
    assert_eq!(eb.stats().late_hits, 0);
    // A booking made after the view (event time) does not cover it.
    let after = [(0, view(T0, "dr1", "p1")), (1, book(T0 + 1_000))];
    let (c, _) = run(VIP, cfg(lateness), &after);
    assert_eq!(fired(&c), vec![(vec![0], "dr1/p1".into())]);
    // Beyond the lateness: the view was decided (it fired), the booking is late.
    let beyond = [
        (1, view(T0, "dr1", "p1")),
        (2, view(T0 + 10_000, "x", "p9")),
        (0, book(T0 - 1_000)),
    ];
    let mut e = engine(VIP, cfg(lateness));
    let mut out = Vec::new();
    for (i, en) in &beyond {
        e.process(*i, en, &mut out);
    }
    assert_eq!(fired(&out), vec![(vec![1], "dr1/p1".into())]);
    assert_eq!(e.stats().late_hits, 1);
    // Alerts wait for the watermark.
    let mut e = engine(VIP, cfg(lateness));
    let mut out = Vec::new();
    e.process(0, &view(T0, "x", "p1"), &mut out);
    assert!(out.is_empty());
    e.advance(T0 + lateness, &mut out);
    assert_eq!(out.len(), 1);
}

#[test]
fn state_set_clear_and_history_edge() {
    let input = [
        (0, admin(T0, "user_disable", "u1")),
        (1, login(T0 + DAY, "u1")),
        // Re-enabled between the disable and the next login: benign.
        (2, admin(T0 + 2 * DAY, "user_enable", "u1")),
        (3, login(T0 + 3 * DAY, "u1")),
        // Another account, disabled exactly 30 days before the login: fires;
        // a ms later it is forgotten.
        (4, admin(T0 + 3 * DAY, "user_disable", "u2")),
        (5, login(T0 + 33 * DAY, "u2")),
        (6, login(T0 + 33 * DAY + 1, "u2")),
        (7, login(T0 + 34 * DAY, "u3")),
    ];
    let (out, e) = run(DISABLED, cfg(0), &input);
    assert_eq!(
        fired(&out),
        vec![(vec![0, 1], "u1".into()), (vec![4, 5], "u2".into())]
    );
    assert_eq!(out[0].count, 2);
    assert_eq!(out[1].first_time.unix_ms(), T0 + 3 * DAY);
    assert_eq!(e.stats().groups, 0, "cleared and expired");
    assert!(e.stats().expired_groups >= 1);
}

#[test]
fn state_order_within_lateness_does_not_matter() {
    let sorted = [
        (0, admin(T0, "user_disable", "u1")),
        (1, admin(T0 + 1_000, "user_enable", "u1")),
        (2, login(T0 + 2_000, "u1")),
    ];
    // The enable arrives last, within the lateness: still applied before the login.
    let shuffled = [sorted[0].clone(), sorted[2].clone(), sorted[1].clone()];
    let (a, _) = run(DISABLED, cfg(5_000), &sorted);
    let (b, _) = run(DISABLED, cfg(5_000), &shuffled);
    assert!(a.is_empty());
    assert_eq!(a, b);
}

#[test]
fn restart_in_the_middle_rebuilds_by_replay() {
    let input = [
        (0, booking(T0, "p1", "dr1", Some(&ts(T0 + 10 * DAY)))),
        (1, admin(T0 + DAY, "user_disable", "u1")),
        (2, view(T0 + 2 * DAY, "dr2", "p1")),
        // Restart here.
        (3, view(T0 + 10 * DAY, "dr1", "p1")),
        (4, view(T0 + 11 * DAY, "dr2", "p1")),
        (5, login(T0 + 12 * DAY, "u1")),
    ];
    let rules = format!("{VIP}---\n{DISABLED}");
    let (whole, _) = run(&rules, cfg(0), &input);
    // A new engine replays the ledger's window (which covers `window + lead`
    // and the state history here), then continues.
    let mut e = engine(&rules, cfg(0));
    for (i, en) in &input[..3] {
        e.replay(*i, en);
    }
    let mut out = Vec::new();
    for (i, en) in &input[3..] {
        e.process(*i, en, &mut out);
    }
    e.flush(&mut out);
    let tail: Vec<_> = whole
        .into_iter()
        .filter(|a| a.event_indices.iter().any(|&i| i >= 3))
        .collect();
    assert_eq!(out, tail);
    assert_eq!(
        fired(&out),
        vec![(vec![4], "dr2/p1".into()), (vec![1, 5], "u1".into())]
    );
}

#[test]
fn partial_history_keeps_relation_checks_silent_until_the_span_is_covered() {
    // The replay starts after the booking (the window was set too short):
    // without the hint the clinician's visit would alert.
    let input = [
        (1, view(T0, "x", "p9")),
        (2, view(T0 + DAY, "dr1", "p1")),
        (3, view(T0 + 44 * DAY - 1, "dr2", "p1")),
        (4, view(T0 + 44 * DAY, "dr2", "p1")),
    ];
    let (noisy, _) = run(VIP, cfg(0), &input);
    assert_eq!(noisy.len(), 4);
    let mut e = engine(VIP, cfg(0));
    e.set_partial_history();
    let mut out = Vec::new();
    for (i, en) in &input {
        e.process(*i, en, &mut out);
    }
    // Checks fire from the first event time plus window + lead (44 days).
    assert_eq!(fired(&out), vec![(vec![4], "dr2/p1".into())]);
    // `state` needs no warm-up: a missing disable can only hide an alert.
    let mut e = engine(DISABLED, cfg(0));
    e.set_partial_history();
    let mut out = Vec::new();
    e.process(0, &admin(T0, "user_disable", "u1"), &mut out);
    e.process(1, &login(T0 + 1, "u1"), &mut out);
    assert_eq!(out.len(), 1);
}

#[test]
fn keys_and_relations_per_key_are_bounded() {
    let c = EngineConfig {
        allowed_lateness_ms: 0,
        max_groups_per_rule: 2,
        max_hits_per_group: 2,
        late_retention_ms: 0,
        ..EngineConfig::default()
    };
    let at = |d: i64| Some(ts(T0 + d * DAY));
    let input = [
        (0, booking(T0, "p1", "dr1", at(1).as_deref())),
        (1, booking(T0, "p2", "dr1", at(2).as_deref())),
        // A third key evicts the one that expires first (p1).
        (2, booking(T0, "p3", "dr1", at(3).as_deref())),
        (3, view(T0 + DAY, "dr1", "p1")),
        // Three relations of one key: the earliest is dropped.
        (4, booking(T0 + DAY, "p3", "dr1", at(4).as_deref())),
        (5, booking(T0 + DAY, "p3", "dr1", at(5).as_deref())),
    ];
    let (out, e) = run(VIP, c, &input);
    // Eviction trades memory for a possible false alert.
    assert_eq!(fired(&out), vec![(vec![3], "dr1/p1".into())]);
    let s = e.stats();
    assert_eq!(s.evicted_groups, 1);
    assert_eq!(s.dropped_hits, 1);
    assert_eq!(s.groups, 2);
    // Everything expires once the watermark passes the newest relation
    // time plus the window.
    let mut e = e;
    let mut out = Vec::new();
    e.advance(T0 + 2 * DAY + W, &mut out);
    assert_eq!(e.stats().groups, 2);
    e.advance(T0 + 2 * DAY + W + 1, &mut out);
    assert_eq!(e.stats().groups, 1);
    e.advance(T0 + 5 * DAY + W + 1, &mut out);
    assert_eq!(e.stats().groups, 0);
    assert!(out.is_empty());
}

#[test]
fn replay_span_is_window_plus_lead_or_history() {
    let set = RuleSet::from_yaml("j.yml", VIP).unwrap();
    assert_eq!(set.max_timespan_ms(), 44 * DAY);
    let set = RuleSet::from_yaml("j.yml", DISABLED).unwrap();
    assert_eq!(set.max_timespan_ms(), 30 * DAY);
    // Default window 30 days, no lead.
    let set = RuleSet::from_yaml(
        "j.yml",
        &VIP.replace("  window: 30d\n", "")
            .replace("  lead: 14d\n", ""),
    )
    .unwrap();
    assert_eq!(set.max_timespan_ms(), 30 * DAY);
}

#[test]
fn bad_knobs_are_load_errors_with_line_and_column() {
    for (from, to, needle, line, col) in [
        (
            "  window: 30d",
            "  window: 40d",
            "invalid window `40d`",
            13,
            11,
        ),
        ("  lead: 14d", "  lead: soon", "invalid lead", 14, 9),
        (
            "  time: attrs.scheduled_for",
            "  time: actor.nope",
            "unknown field `actor.nope`",
            12,
            9,
        ),
        (
            "  relation: [booking]",
            "  relation: []",
            "`relation` is empty",
            6,
            13,
        ),
        (
            "  relation: [booking]\n",
            "",
            "correlation has no `relation`",
            4,
            7,
        ),
        (
            "  relation: [booking]",
            "  relation: [chart]",
            "listed twice",
            5,
            11,
        ),
        (
            "  relation: [booking]",
            "  relation: [nope]",
            "unknown rule `nope`",
            6,
            14,
        ),
        (
            "  lead: 14d",
            "  lead: 14d\n  timespan: 1d",
            "not used by relation",
            15,
            13,
        ),
        (
            "  lead: 14d",
            "  lead: 14d\n  history: 1d",
            "not used by relation",
            15,
            12,
        ),
        (
            "  lead: 14d",
            "  lead: 14d\n  set: [booking]",
            "not used by relation",
            15,
            8,
        ),
        (
            "  lead: 14d",
            "  lead: 14d\n  wait: 1d",
            "unknown correlation attribute",
            15,
            3,
        ),
    ] {
        assert!(VIP.contains(from), "{from}");
        let e = load_err(&VIP.replacen(from, to, 1));
        assert!(e.reason.contains(needle), "{to}: {e}");
        assert_eq!((e.line, e.column), (Some(line), Some(col)), "{to}: {e}");
        assert!(
            e.to_string()
                .starts_with(&format!("bad.yml:{line}:{col}: ")),
            "{e}"
        );
    }
    for (from, to, needle, line) in [
        ("  history: 30d\n", "", "state has no `history`", 4),
        ("  history: 30d", "  history: 32d", "invalid history", 14),
        ("  set: [disable]\n", "", "correlation has no `set`", 4),
        (
            "  history: 30d",
            "  history: 30d\n  window: 1d",
            "not used by state",
            15,
        ),
        (
            "  history: 30d",
            "  history: 30d\n  time: time",
            "not used by state",
            15,
        ),
    ] {
        assert!(DISABLED.contains(from), "{from}");
        let e = load_err(&DISABLED.replacen(from, to, 1));
        assert!(e.reason.contains(needle), "{to}: {e}");
        assert_eq!(e.line, Some(line), "{to}: {e}");
    }
    // Join knobs on other types, and joins over correlations.
    let e = load_err(
        "title: c\nid: c\ncorrelation:\n  type: event_count\n  rules: [chart]\n  timespan: 1m\n  condition: {gte: 2}\n  window: 1d\n---\ntitle: chart\nid: chart\nname: chart\ndetection:\n  s:\n    action: view\n  condition: s\n",
    );
    assert!(e.reason.contains("only for relation and state"), "{e}");
    assert_eq!(e.line, Some(8));
    let chained = format!(
        "{VIP}---\ntitle: outer\nid: outer\ncorrelation:\n  type: state\n  rules: [chart]\n  set: [vip]\n  group-by: [actor.user]\n  history: 1d\n"
    );
    let e = load_err(&chained);
    assert!(e.reason.contains("state over another correlation"), "{e}");
}

#[test]
fn shuffled_within_lateness_gives_the_sorted_alerts() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    const LATENESS: i64 = 5_000;
    let rules = format!("{VIP}---\n{DISABLED}");
    let go = |input: &[(u64, Entry)]| {
        let (out, e) = run(&rules, cfg(LATENESS), input);
        (out, e.stats().late_hits)
    };
    let offsets = [-W - 1, -W, -3_000, 0, 2_000, W, W + 1];
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases: 150,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &[11; 32]),
    );
    // (gap in ms, kind, who, patient, scheduled offset, arrival jitter in ms)
    let events = prop::collection::vec(
        (
            0i64..3_000,
            0u8..5,
            0u8..2,
            0u8..2,
            0usize..7,
            0i64..LATENESS,
        ),
        1..80,
    );
    runner
        .run(&events, |evs| {
            let mut t = T0;
            let mut sorted = Vec::new();
            let mut keys = Vec::new();
            for (i, &(gap, kind, who, p, off, jitter)) in evs.iter().enumerate() {
                t += gap;
                let (dr, acct, pat) = (format!("dr{who}"), format!("a{who}"), format!("p{p}"));
                let e = match kind {
                    0 => booking(t, &pat, &dr, Some(&ts(t + offsets[off]))),
                    1 => view(t, &dr, &pat),
                    2 => admin(t, "user_disable", &acct),
                    3 => admin(t, "user_enable", &acct),
                    _ => login(t, &acct),
                };
                sorted.push((i as u64, e));
                keys.push((t + jitter, i));
            }
            keys.sort();
            let shuffled: Vec<(u64, Entry)> =
                keys.iter().map(|&(_, i)| sorted[i].clone()).collect();
            let (a, late_a) = go(&sorted);
            let (b, late_b) = go(&shuffled);
            prop_assert_eq!(late_a, 0);
            prop_assert_eq!(late_b, 0);
            prop_assert_eq!(a, b);
            Ok(())
        })
        .unwrap();
}

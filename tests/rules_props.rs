//! Properties: input shuffled within the allowed lateness gives the alerts of
//! the same input in time order: exactly for a correlation that waits for
//! the watermark (temporal_ordered); for one that fires eagerly
//! (event_count gte), the same number of alerts per group, each standing
//! for the in-order alert it shares events with (engine/eager.rs). And
//! sources that each deliver late (event time is per source) give the
//! alerts of time order.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)] // test code

use std::sync::Arc;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use sealtrail::event::{Entry, Event, Timestamp, Via};
use sealtrail::rules::{AlertCandidate, Engine, EngineConfig, RuleSet};

const T0: i64 = 1_795_788_191_000;
const LATENESS: i64 = 5_000;

const RULES: &str = "title: Brute force\nid: brute\ncorrelation:\n  type: event_count\n  rules: [failed_login]\n  group-by: [actor.user]\n  timespan: 20s\n  condition: {gte: 3}\n---\ntitle: Failed login\nid: failed-login\nname: failed_login\ndetection:\n  s:\n    action: login\n    outcome: failure\n  condition: s\n---\ntitle: Fail then success\nid: fail-ok\ncorrelation:\n  type: temporal_ordered\n  rules: [failed_login, ok_login]\n  group-by: [actor.user]\n  timespan: 20s\n---\ntitle: Login\nid: ok-login\nname: ok_login\ndetection:\n  s:\n    action: login\n    outcome: success\n  condition: s\n";

/// Alerts of one rule.
fn of(alerts: &[AlertCandidate], rule: &str) -> Vec<AlertCandidate> {
    alerts
        .iter()
        .filter(|a| a.rule_id == rule)
        .cloned()
        .collect()
}

fn login(ms: i64, user: u8, ok: bool) -> Entry {
    let ev = serde_json::json!({
        "time": Timestamp::from_unix_ms(ms).unwrap().to_string(),
        "category": "auth", "action": "login",
        "outcome": if ok { "success" } else { "failure" },
        "actor": {"user": format!("u{user}")},
    });
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

fn run(input: &[(u64, Entry)]) -> (Vec<AlertCandidate>, u64) {
    run_with(input, EngineConfig::default().late_retention_ms)
}

fn run_with(input: &[(u64, Entry)], late_retention_ms: i64) -> (Vec<AlertCandidate>, u64) {
    let set = Arc::new(RuleSet::from_yaml("p.yml", RULES).unwrap());
    let cfg = EngineConfig {
        allowed_lateness_ms: LATENESS,
        late_retention_ms,
        ..EngineConfig::default()
    };
    let mut engine = Engine::new(set, cfg);
    let mut out = Vec::new();
    for (i, e) in input {
        engine.process(*i, e, &mut out);
    }
    engine.flush(&mut out);
    (out, engine.stats().late_hits)
}

#[test]
fn shuffled_within_lateness_gives_the_sorted_alerts() {
    let cfg = Config {
        cases: 200,
        ..Config::default()
    };
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]);
    let mut runner = TestRunner::new_with_rng(cfg, rng);
    // (gap to the previous event in ms, user, success, arrival jitter in ms)
    let events = prop::collection::vec(
        (
            0i64..4_000,
            0u8..3,
            prop::bool::weighted(0.2),
            0i64..LATENESS,
        ),
        1..120,
    );
    runner
        .run(&events, |evs| {
            let mut t = T0;
            let mut sorted = Vec::new();
            let mut keys = Vec::new();
            for (i, (gap, user, ok, jitter)) in evs.iter().enumerate() {
                t += gap;
                sorted.push((i as u64, login(t, *user, *ok)));
                // Arrival order: by time plus a jitter below the lateness, so
                // no event arrives more than the lateness behind the newest.
                keys.push((t + jitter, i));
            }
            keys.sort();
            let shuffled: Vec<(u64, Entry)> =
                keys.iter().map(|&(_, i)| sorted[i].clone()).collect();
            let (a, late_a) = run(&sorted);
            let (b, late_b) = run(&shuffled);
            prop_assert_eq!(late_a, 0);
            prop_assert_eq!(late_b, 0);
            // Waits for the watermark: exactly the in-order alerts.
            prop_assert_eq!(of(&a, "fail-ok"), of(&b, "fail-ok"));
            // Fires eagerly: per group as many alerts, each sharing events
            // with the in-order one it stands for, same count.
            let (mut ea, mut eb) = (of(&a, "brute"), of(&b, "brute"));
            ea.sort_by_key(|x| (x.group.clone(), x.event_indices.clone()));
            eb.sort_by_key(|x| (x.group.clone(), x.event_indices.clone()));
            prop_assert_eq!(ea.len(), eb.len());
            for x in &ea {
                prop_assert!(
                    eb.iter().any(|y| y.group == x.group
                        && y.count == x.count
                        && y.event_indices.iter().any(|i| x.event_indices.contains(i))),
                    "{:?} not in {:?}",
                    x,
                    eb
                );
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn the_property_can_fail_beyond_the_lateness() {
    // Guard that the comparison above is meaningful: moving one event by more
    // than the lateness changes the alerts.
    let sorted: Vec<(u64, Entry)> = [0, 1_000, 2_000, 30_000]
        .iter()
        .enumerate()
        .map(|(i, o)| (i as u64, login(T0 + o, 1, false)))
        .collect();
    let moved = vec![
        sorted[1].clone(),
        sorted[2].clone(),
        sorted[3].clone(),
        sorted[0].clone(),
    ];
    let (a, _) = run(&sorted);
    let (b, late) = run_with(&moved, 0);
    assert_eq!(a.len(), 1);
    assert!(b.is_empty());
    // One late hit per correlation the failed login feeds.
    assert_eq!(late, 2);
    // Within the late retention the late hit is still applied: the same
    // alert, marked late.
    let (c, late) = run(&moved);
    assert_eq!(late, 2);
    assert_eq!(c.len(), 1);
    assert!(c[0].late);
    assert_eq!(unflag(&c), a);
}

/// Alerts without the `late` mark (what differs is when they were raised,
/// not what they say).
fn unflag(alerts: &[AlertCandidate]) -> Vec<AlertCandidate> {
    alerts
        .iter()
        .cloned()
        .map(|mut a| {
            a.late = false;
            a
        })
        .collect()
}

/// A failed or successful login of `user` of source `source`, arriving at
/// `arrival`.
fn login_of(ms: i64, source: u8, user: u8, ok: bool, arrival: i64) -> Entry {
    let ev = serde_json::json!({
        "time": Timestamp::from_unix_ms(ms).unwrap().to_string(),
        "category": "auth", "action": "login",
        "outcome": if ok { "success" } else { "failure" },
        "actor": {"user": format!("s{source}-u{user}")},
        "source": {"system": format!("source-{source}")},
    });
    Entry {
        received: Timestamp::from_unix_ms(arrival).unwrap(),
        via: Via {
            kind: "http".into(),
            peer: None,
            principal: None,
        },
        event: Event::from_json(ev.to_string().as_bytes()).unwrap(),
        enriched: None,
    }
}

#[test]
fn sources_delivering_late_give_the_alerts_of_time_order() {
    // Event time is per source: each source delivers its events up to 20
    // minutes late (far beyond the 5 s lateness, within the late
    // retention), in its own order within the lateness, interleaved with
    // the others in arrival order; sources pause long enough to go idle.
    // The alerts are those of the same events in time order (the `late`
    // mark aside).
    let cfg = Config {
        cases: 150,
        ..Config::default()
    };
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[11; 32]);
    let mut runner = TestRunner::new_with_rng(cfg, rng);
    // (gap in ms, a long pause, source, user, success, jitter in ms)
    let events = prop::collection::vec(
        (
            0i64..4_000,
            prop::bool::weighted(0.05),
            0u8..3,
            0u8..3,
            prop::bool::weighted(0.2),
            0i64..LATENESS,
        ),
        1..150,
    );
    let delays = prop::collection::vec(0i64..20 * 60_000, 3);
    runner
        .run(&(events, delays), |(evs, delay)| {
            let mut t = T0;
            let mut sorted = Vec::new();
            let mut arrivals = Vec::new();
            for (i, (gap, pause, source, user, ok, jitter)) in evs.iter().enumerate() {
                t += gap + if *pause { 8 * 60_000 } else { 0 };
                sorted.push((i as u64, login_of(t, *source, *user, *ok, t)));
                let arrival = t + delay[usize::from(*source)] + jitter;
                arrivals.push((arrival, i, login_of(t, *source, *user, *ok, arrival)));
            }
            arrivals.sort_by_key(|(a, i, _)| (*a, *i));
            let late_order: Vec<(u64, Entry)> = arrivals
                .into_iter()
                .map(|(_, i, e)| (i as u64, e))
                .collect();
            let (a, late_a) = run(&sorted);
            let (b, _) = run(&late_order);
            prop_assert_eq!(late_a, 0);
            let b = unflag(&b);
            // The same alerts; arrival decides the order they come out in.
            let (mut oa, mut ob) = (of(&a, "fail-ok"), of(&b, "fail-ok"));
            oa.sort_by_key(|x| (x.group.clone(), x.event_indices.clone()));
            ob.sort_by_key(|x| (x.group.clone(), x.event_indices.clone()));
            prop_assert_eq!(oa, ob);
            let (mut ea, mut eb) = (of(&a, "brute"), of(&b, "brute"));
            ea.sort_by_key(|x| (x.group.clone(), x.event_indices.clone()));
            eb.sort_by_key(|x| (x.group.clone(), x.event_indices.clone()));
            prop_assert_eq!(ea.len(), eb.len(), "{:?}\n{:?}", ea, eb);
            for x in &ea {
                prop_assert!(
                    eb.iter().any(|y| y.group == x.group
                        && y.count == x.count
                        && y.event_indices.iter().any(|i| x.event_indices.contains(i))),
                    "{:?} not in {:?}",
                    x,
                    eb
                );
            }
            Ok(())
        })
        .unwrap();
}

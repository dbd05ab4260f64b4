//! Property: input shuffled within the allowed lateness gives the alerts of
//! the same input in time order: exactly for a correlation that waits for
//! the watermark (temporal_ordered); for one that fires eagerly
//! (event_count gte), the same number of alerts per group, each standing
//! for the in-order alert it shares events with (engine/eager.rs).

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
    let set = Arc::new(RuleSet::from_yaml("p.yml", RULES).unwrap());
    let cfg = EngineConfig {
        allowed_lateness_ms: LATENESS,
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
    let (b, late) = run(&moved);
    assert_eq!(a.len(), 1);
    assert!(b.is_empty());
    // One late hit per correlation the failed login feeds.
    assert_eq!(late, 2);
}

//! absence, baseline and upper-bounded (window-close) correlations.

use super::*;

const SEC: i64 = 1_000;
const HOUR: i64 = 3_600_000;
/// A whole hour (2026-11-27T14:00:00Z), so baseline windows align with it.
const H0: i64 = T0 - T0 % HOUR;

const ACTIVITY: &str = "title: Activity\nid: activity\nname: activity\ndetection:\n  s:\n    source.system|exists: true\n  condition: s\n";

fn from(ms: i64, system: &str) -> Entry {
    entry_at(
        ms,
        json!({"category": "integration", "action": "data_feed", "source": {"system": system}}),
    )
}

fn absence_rule(knobs: &str) -> String {
    format!(
        "title: Silent\nid: silent\ncorrelation:\n  type: absence\n  rules: [activity]\n  group-by: [source.system]\n{knobs}---\n{ACTIVITY}"
    )
}

fn engine(rules: &str, cfg: EngineConfig) -> Engine {
    let set = RuleSet::from_yaml("x.yml", rules).unwrap_or_else(|e| panic!("{e:?}"));
    Engine::new(Arc::new(set), cfg)
}

fn feed(engine: &mut Engine, input: &[(u64, Entry)]) -> Vec<AlertCandidate> {
    let mut out = Vec::new();
    for (i, e) in input {
        engine.process(*i, e, &mut out);
    }
    out
}

/// (first event, group values) of each alert.
fn silences(out: &[AlertCandidate]) -> Vec<(u64, String)> {
    fired(out)
}

// ---------------------------------------------------------------------------
// absence

#[test]
fn absence_fires_one_ms_past_the_timespan_not_at_it() {
    let rules = absence_rule("  timespan: 10s\n");
    // `lis` is last heard at T0; `ehr` keeps the watermark moving.
    let mut e = engine(&rules, no_lateness());
    let out = feed(
        &mut e,
        &[(0, from(T0, "lis")), (1, from(T0 + 10 * SEC, "ehr"))],
    );
    assert!(out.is_empty(), "exactly the timespan is not a silence yet");
    let out = feed(&mut e, &[(2, from(T0 + 10 * SEC + 1, "ehr"))]);
    assert_eq!(silences(&out), vec![(0, "lis".into())]);
    let a = &out[0];
    assert_eq!(a.rule_id, "silent");
    assert_eq!(a.count, 0);
    assert_eq!(a.first_time.unix_ms(), T0);
    assert_eq!(a.last_time.unix_ms(), T0 + 10 * SEC);
    // One alert per silence, however long it lasts.
    let out = feed(&mut e, &[(3, from(T0 + 60 * SEC, "ehr"))]);
    assert!(silences(&out).iter().all(|(_, g)| g != "lis"), "{out:?}");

    // A hit exactly at the timespan ends the silence in time.
    let mut e = engine(&rules, no_lateness());
    let out = feed(
        &mut e,
        &[
            (0, from(T0, "lis")),
            (1, from(T0 + 10 * SEC, "lis")),
            (2, from(T0 + 20 * SEC, "ehr")),
        ],
    );
    assert!(out.is_empty(), "{out:?}");
    let out = feed(&mut e, &[(3, from(T0 + 20 * SEC + 1, "ehr"))]);
    assert_eq!(silences(&out), vec![(1, "lis".into())]);
}

#[test]
fn absence_re_arms_when_the_group_sends_again() {
    let rules = absence_rule("  timespan: 10s\n");
    let mut e = engine(&rules, no_lateness());
    let mut out = feed(
        &mut e,
        &[
            (0, from(T0, "lis")),
            (1, from(T0 + 30 * SEC, "lis")),
            (2, from(T0 + 31 * SEC, "lis")),
        ],
    );
    // The returning hit closes the first silence: it fires before it.
    assert_eq!(silences(&out), vec![(0, "lis".into())]);
    out.clear();
    e.advance(T0 + 41 * SEC + 1, &mut out);
    assert_eq!(silences(&out), vec![(2, "lis".into())]);
}

#[test]
fn absence_fires_on_a_quiet_stream_through_advance() {
    let rules = absence_rule("  timespan: 1h\n");
    let cfg = EngineConfig {
        allowed_lateness_ms: 2 * SEC,
        ..EngineConfig::default()
    };
    let mut e = engine(&rules, cfg);
    let mut out = feed(&mut e, &[(5, from(T0, "lis"))]);
    // The watermark lags processing time by the lateness.
    e.advance(T0 + HOUR + 2 * SEC, &mut out);
    assert!(out.is_empty());
    e.advance(T0 + HOUR + 2 * SEC + 1, &mut out);
    assert_eq!(silences(&out), vec![(5, "lis".into())]);
    assert_eq!(e.stats().groups, 0, "forgotten once reported");
    assert_eq!(e.stats().timers, 0);
}

#[test]
fn absence_out_of_order_within_lateness_matches_sorted() {
    let rules = absence_rule("  timespan: 10s\n");
    let cfg = EngineConfig {
        allowed_lateness_ms: 5 * SEC,
        ..EngineConfig::default()
    };
    let sorted = [
        (0, from(T0, "lis")),
        (1, from(T0 + 9 * SEC, "lis")),
        (2, from(T0 + 12 * SEC, "ehr")),
        (3, from(T0 + 25 * SEC, "ehr")),
    ];
    // The 9 s event arrives after the 12 s one (3 s late, within 5 s): it
    // still ends the first silence in time, so only the one after it fires.
    let shuffled = [
        sorted[0].clone(),
        sorted[2].clone(),
        sorted[1].clone(),
        sorted[3].clone(),
    ];
    let mut a = engine(&rules, cfg.clone());
    let mut b = engine(&rules, cfg);
    let (mut oa, mut ob) = (feed(&mut a, &sorted), feed(&mut b, &shuffled));
    // lis delivered 3 s late, so the clock waits 3 s longer for it.
    a.advance(T0 + 33 * SEC, &mut oa);
    b.advance(T0 + 33 * SEC, &mut ob);
    // ehr was silent from 12 s to 25 s, longer than 10 s, too.
    assert_eq!(silences(&oa), vec![(1, "lis".into()), (2, "ehr".into())]);
    assert_eq!(oa, ob);
    assert_eq!(b.stats().late_hits, 0);
}

#[test]
fn absence_min_count_history_and_learning_decide_who_is_watched() {
    // Two hits within 1 m are needed.
    let rules = absence_rule("  timespan: 10s\n  history: 1m\n  min_count: 2\n");
    let mut e = engine(&rules, no_lateness());
    let out = feed(
        &mut e,
        &[
            (0, from(T0, "once")),
            (1, from(T0, "twice")),
            (2, from(T0 + 5 * SEC, "twice")),
            (3, from(T0 + 2 * 60 * SEC, "ehr")),
        ],
    );
    assert_eq!(silences(&out), vec![(2, "twice".into())]);
    // Hits further apart than history do not add up.
    let out = feed(
        &mut e,
        &[
            (4, from(T0 + 3 * 60 * SEC, "slow")),
            (5, from(T0 + 4 * 60 * SEC + 1, "slow")),
            (6, from(T0 + 6 * 60 * SEC, "ehr")),
        ],
    );
    assert!(out.iter().all(|a| a.group["source.system"] != "slow"));

    // learning: the first hit must be 1 m older than the last.
    let rules = absence_rule("  timespan: 10s\n  history: 2m\n  learning: 1m\n");
    let mut e = engine(&rules, no_lateness());
    let mut input: Vec<(u64, Entry)> = (0..7)
        .map(|i| (i, from(T0 + i as i64 * 10 * SEC, "new")))
        .collect();
    input.push((7, from(T0 + 59 * SEC, "young")));
    input.push((8, from(T0 + 5 * 60 * SEC, "ehr")));
    input.insert(0, (9, from(T0 - SEC, "young")));
    let out = feed(&mut e, &input);
    assert_eq!(silences(&out), vec![(6, "new".into())]);
}

#[test]
fn absence_gap_factor_scales_with_the_groups_longest_gap() {
    // Threshold: 3 x the longest gap within 1 h, at least 10 s, at most 1 h.
    let rules = absence_rule("  timespan: 10s\n  history: 1h\n  gap_factor: 3\n");
    let mut e = engine(&rules, no_lateness());
    // A gap of 5 s (threshold 15 s), then one of 14 s: threshold 42 s.
    let out = feed(
        &mut e,
        &[
            (0, from(T0, "lis")),
            (1, from(T0 + 5 * SEC, "lis")),
            (2, from(T0 + 19 * SEC, "lis")),
            (3, from(T0 + 61 * SEC, "ehr")),
        ],
    );
    assert!(out.is_empty(), "exactly 3 x 14 s: {out:?}");
    let out = feed(&mut e, &[(4, from(T0 + 61 * SEC + 1, "ehr"))]);
    assert_eq!(silences(&out), vec![(2, "lis".into())]);
    // The reported gap is not learnt as normal: still 42 s, not 3 x 81 s.
    let mut out = feed(&mut e, &[(5, from(T0 + 100 * SEC, "lis"))]);
    e.advance(T0 + 142 * SEC, &mut out);
    let lis = |out: &[AlertCandidate]| -> Vec<(u64, String)> {
        silences(out)
            .into_iter()
            .filter(|(_, g)| g == "lis")
            .collect()
    };
    assert!(lis(&out).is_empty(), "{out:?}");
    e.advance(T0 + 142 * SEC + 1, &mut out);
    assert_eq!(lis(&out), vec![(5, "lis".into())]);
    // Gaps older than history no longer count: capped at history anyway.
    let rules = absence_rule("  timespan: 10s\n  history: 1m\n  gap_factor: 100\n");
    let mut e = engine(&rules, no_lateness());
    let mut out = feed(&mut e, &[(0, from(T0, "a")), (1, from(T0 + SEC, "a"))]);
    e.advance(T0 + SEC + 60 * SEC + 1, &mut out);
    assert_eq!(silences(&out), vec![(1, "a".into())]);
}

#[test]
fn absence_restart_in_the_middle_of_a_silence_alerts_exactly_once() {
    let rules = absence_rule("  timespan: 1h\n  history: 2h\n  min_count: 2\n");
    let set = Arc::new(RuleSet::from_yaml("x.yml", &rules).unwrap());
    let replay_ms = set.max_timespan_ms();
    assert_eq!(
        replay_ms,
        5 * HOUR,
        "history, the silence, then the delivery delay it may wait for (at most history)"
    );
    let input: Vec<(u64, Entry)> = vec![
        (0, from(T0 - 90 * 60 * SEC, "lis")),
        (1, from(T0 - 30 * 60 * SEC, "lis")),
        (2, from(T0, "ehr")),
    ];
    let whole = {
        let mut e = Engine::new(Arc::clone(&set), no_lateness());
        let mut out = feed(&mut e, &input);
        e.advance(T0 + 31 * 60 * SEC, &mut out);
        out
    };
    assert_eq!(silences(&whole), vec![(1, "lis".into())]);
    // Restart at T0 (before the deadline at T0 + 30 min): the new engine
    // replays the window (alerts dropped) and then runs live.
    let mut e = Engine::new(Arc::clone(&set), no_lateness());
    for (i, ev) in &input {
        if ev.event.time.unix_ms() >= T0 - replay_ms {
            e.replay(*i, ev);
        }
    }
    let mut live = Vec::new();
    e.advance(T0 + 31 * 60 * SEC, &mut live);
    assert_eq!(live, whole, "no missed alert");
    // Restart after the alert: the replay fires it (dropped) and the live
    // run does not repeat it.
    let mut e = Engine::new(Arc::clone(&set), no_lateness());
    let mut later = input.clone();
    later.push((3, from(T0 + 40 * 60 * SEC, "ehr")));
    for (i, ev) in &later {
        e.replay(*i, ev);
    }
    let mut live = Vec::new();
    // Before ehr's own silence (T0 + 100 min).
    e.advance(T0 + 90 * 60 * SEC, &mut live);
    assert!(live.is_empty(), "no duplicate: {live:?}");
}

#[test]
fn absence_state_is_bounded() {
    let rules = absence_rule("  timespan: 10s\n  history: 1m\n");
    let cfg = EngineConfig {
        allowed_lateness_ms: 0,
        max_groups_per_rule: 2,
        ..EngineConfig::default()
    };
    let mut e = engine(&rules, cfg);
    let mut out = feed(
        &mut e,
        &[
            (0, from(T0, "a")),
            (1, from(T0 + SEC, "b")),
            (2, from(T0 + 2 * SEC, "c")),
        ],
    );
    assert_eq!(e.stats().evicted_groups, 1);
    // Only a's watch was evicted (the activity rule groups nothing else).
    e.advance(T0 + 13 * SEC, &mut out);
    assert_eq!(silences(&out), vec![(1, "b".into()), (2, "c".into())]);
    // Reported groups are forgotten after history; nothing is left.
    e.advance(T0 + 2 * 60 * SEC, &mut out);
    assert_eq!(e.stats().groups, 0);
    assert_eq!(e.stats().timers, 0);
}

#[test]
fn absence_load_errors() {
    let base = "title: t\nid: t\ncorrelation:\n  type: absence\n  rules: [activity]\n  group-by: [source.system]\n";
    for (body, needle, line) in [
        ("  history: 1h\n", "no `timespan`", 4),
        ("  timespan: 40d\n", "invalid timespan `40d`", 7),
        ("  timespan: 1h\n  history: 30m\n", "not be shorter", 8),
        ("  timespan: 1h\n  min_count: 0\n", "min_count must be", 8),
        ("  timespan: 1h\n  gap_factor: x\n", "gap_factor must be", 8),
        (
            "  timespan: 1h\n  gap_factor: 0.5\n",
            "gap_factor must be",
            8,
        ),
        (
            "  timespan: 1h\n  learning: 2h\n",
            "must not exceed `history`",
            8,
        ),
        (
            "  timespan: 1h\n  condition: {gte: 1}\n",
            "not used by absence",
            8,
        ),
        ("  timespan: 1h\n  factor: 3\n", "not used by absence", 8),
    ] {
        let e = load_err(&format!("{base}{body}---\n{ACTIVITY}"));
        assert!(e.reason.contains(needle), "{body}: {e}");
        assert_eq!(e.line, Some(line), "{body}: {e}");
        assert!(e.to_string().starts_with("bad.yml:"), "{e}");
    }
    let e = load_err(&count_rule("1m", "{gte: 2}\n  gap_factor: 2"));
    assert!(e.reason.contains("only for absence"), "{e}");
}

// ---------------------------------------------------------------------------
// baseline

fn baseline_rule(knobs: &str) -> String {
    format!(
        "title: Volume\nid: volume\ncorrelation:\n  type: baseline\n  rules: [activity]\n  group-by: [source.system]\n  timespan: 10s\n{knobs}---\n{ACTIVITY}"
    )
}

/// `counts[w]` hits of `system` in window `w` (10 s windows from H0), one
/// per 100 ms from the window's start; indices from `first`.
fn windows(system: &str, counts: &[u64], first: u64) -> Vec<(u64, Entry)> {
    let mut out = Vec::new();
    for (w, &n) in counts.iter().enumerate() {
        for k in 0..n {
            let t = H0 + w as i64 * 10 * SEC + k as i64 * 100;
            out.push((first + out.len() as u64, from(t, system)));
        }
    }
    out
}

#[test]
fn baseline_fires_when_the_window_closes_above_factor_times_median() {
    let rules = baseline_rule("  history: 3\n  factor: 2\n  min_count: 3\n");
    let mut e = engine(&rules, no_lateness());
    // History 2, 1, 2 (median 2); then 5 > 2 x 2.
    let input = windows("pm", &[2, 1, 2, 5], 0);
    let mut out = feed(&mut e, &input);
    assert!(out.is_empty());
    // The window [H0 + 30 s, H0 + 40 s - 1 ms] closes at H0 + 40 s.
    e.advance(H0 + 40 * SEC - 1, &mut out);
    assert!(out.is_empty());
    e.advance(H0 + 40 * SEC, &mut out);
    assert_eq!(out.len(), 1, "{out:?}");
    let a = &out[0];
    assert_eq!(a.count, 5);
    assert_eq!(a.event_indices, vec![5, 6, 7, 8, 9]);
    assert_eq!(a.first_time.unix_ms(), H0 + 30 * SEC);
    assert_eq!(a.group["source.system"], "pm");
}

#[test]
fn baseline_needs_a_full_history_strictly_more_and_min_count() {
    let rules = baseline_rule("  history: 3\n  factor: 2\n  min_count: 3\n");
    for (counts, fires) in [
        // Only two windows of history.
        (&[2, 2, 9][..], false),
        // 4 is not more than 2 x 2.
        (&[2, 2, 2, 4][..], false),
        (&[2, 2, 2, 5][..], true),
        // An empty window counts 0: median of 0, 0, 1 is 0; 2 < min_count.
        (&[1, 0, 0, 2][..], false),
        (&[1, 0, 0, 3][..], true),
    ] {
        let mut e = engine(&rules, no_lateness());
        let mut out = feed(&mut e, &windows("pm", counts, 0));
        e.advance(H0 + 100 * SEC, &mut out);
        assert_eq!(out.len(), usize::from(fires), "{counts:?}: {out:?}");
    }
}

#[test]
fn baseline_closes_windows_on_later_hits_and_out_of_order_within_lateness() {
    let rules = baseline_rule("  history: 2\n  factor: 1\n");
    let cfg = EngineConfig {
        allowed_lateness_ms: 3 * SEC,
        ..EngineConfig::default()
    };
    let sorted = windows("pm", &[1, 1, 3, 1], 0);
    let mut shuffled = sorted.clone();
    // The last hit of window 2 (H0 + 20.2 s) arrives after window 3's
    // (H0 + 30 s): 9.8 s late is beyond the lateness, so counted late, but
    // window 2 is still open (the clock is at 27 s): it is applied to it.
    // A hit 1 s late is within the lateness.
    shuffled.swap(4, 5);
    let mut a = engine(&rules, cfg.clone());
    let mut b = engine(&rules, cfg);
    let mut oa = feed(&mut a, &sorted);
    let mut ob = feed(&mut b, &shuffled);
    a.advance(H0 + 45 * SEC, &mut oa);
    b.advance(H0 + 45 * SEC, &mut ob);
    assert_eq!(oa.len(), 1);
    assert_eq!(oa[0].count, 3);
    assert_eq!(ob, oa, "the late hit is applied to its open window");
    assert_eq!((b.stats().late_hits, b.stats().late_applied), (1, 1));
    // Once its window was judged, a late hit is dropped and counted.
    let mut d = engine(&rules, a.config().clone());
    let first: Vec<(u64, Entry)> = [0, 1, 2, 3, 5].iter().map(|&i| sorted[i].clone()).collect();
    let mut od = feed(&mut d, &first);
    d.advance(H0 + 45 * SEC, &mut od);
    let before = d.stats().late_dropped;
    feed(&mut d, &sorted[4..5]);
    assert_eq!(d.stats().late_dropped, before + 1);
    let near: Vec<(u64, Entry)> = vec![
        sorted[0].clone(),
        sorted[1].clone(),
        sorted[3].clone(),
        sorted[2].clone(),
        sorted[4].clone(),
        sorted[5].clone(),
    ];
    let mut c = engine(&rules, a.config().clone());
    let mut oc = feed(&mut c, &near);
    c.advance(H0 + 45 * SEC, &mut oc);
    assert_eq!(oc, oa);
    assert_eq!(c.stats().late_hits, 0);
}

#[test]
fn baseline_restart_in_the_middle_of_a_window_alerts_exactly_once() {
    let rules = baseline_rule("  history: 3\n  factor: 2\n");
    let set = Arc::new(RuleSet::from_yaml("x.yml", &rules).unwrap());
    assert_eq!(set.max_timespan_ms(), 40 * SEC);
    let input = windows("pm", &[2, 2, 2, 6], 0);
    let end = H0 + 50 * SEC;
    let whole = {
        let mut e = Engine::new(Arc::clone(&set), no_lateness());
        let mut out = feed(&mut e, &input);
        e.advance(end, &mut out);
        out
    };
    assert_eq!(whole.len(), 1);
    // Restart in window 3 after its third hit: replay from now - 40 s.
    let now = input[8].1.event.time.unix_ms();
    let mut e = Engine::new(Arc::clone(&set), no_lateness());
    for (i, ev) in &input[..9] {
        if ev.event.time.unix_ms() >= now - set.max_timespan_ms() {
            e.replay(*i, ev);
        }
    }
    let mut live = feed(&mut e, &input[9..]);
    e.advance(end, &mut live);
    assert_eq!(live, whole, "no missed alert");
    // Restart after the window closed: replay fires it, live does not.
    let mut e = Engine::new(Arc::clone(&set), no_lateness());
    for (i, ev) in &input {
        e.replay(*i, ev);
    }
    e.replay(99, &from(end, "other"));
    let mut live = Vec::new();
    e.advance(end + 60 * SEC, &mut live);
    assert!(live.is_empty(), "{live:?}");
}

#[test]
fn baseline_state_is_bounded() {
    let rules = baseline_rule("  history: 2\n  factor: 2\n");
    let cfg = EngineConfig {
        allowed_lateness_ms: 0,
        max_groups_per_rule: 2,
        ..EngineConfig::default()
    };
    let mut e = engine(&rules, cfg);
    let mut out = feed(
        &mut e,
        &[
            (0, from(H0, "a")),
            (1, from(H0 + 1, "b")),
            (2, from(H0 + 2, "c")),
        ],
    );
    assert_eq!(e.stats().evicted_groups, 1);
    assert_eq!(e.stats().groups, 2);
    // Idle for the whole history (2 windows after the first): forgotten.
    e.advance(H0 + 30 * SEC - 1, &mut out);
    assert_eq!(e.stats().groups, 2);
    e.advance(H0 + 30 * SEC, &mut out);
    assert_eq!(e.stats().groups, 0);
    assert_eq!(e.stats().timers, 0);
    assert!(out.is_empty());
}

#[test]
fn baseline_load_errors() {
    let base = "title: t\nid: t\ncorrelation:\n  type: baseline\n  rules: [activity]\n  group-by: [source.system]\n";
    for (body, needle, line) in [
        ("  history: 3\n  factor: 2\n", "no `timespan`", 4),
        ("  timespan: 1h\n  factor: 2\n", "no `history`", 4),
        ("  timespan: 1h\n  history: 3\n", "no `factor`", 4),
        (
            "  timespan: 1h\n  history: 90m\n  factor: 2\n",
            "not a multiple",
            8,
        ),
        (
            "  timespan: 1h\n  history: 0\n  factor: 2\n",
            "history must be",
            8,
        ),
        (
            "  timespan: 1d\n  history: 32\n  factor: 2\n",
            "at most 31d",
            8,
        ),
        (
            "  timespan: 1h\n  history: 3x\n  factor: 2\n",
            "invalid history",
            8,
        ),
        (
            "  timespan: 1h\n  history: 3\n  factor: 0.5\n",
            "factor must be",
            9,
        ),
        (
            "  timespan: 1h\n  history: 3\n  factor: 2\n  min_count: -1\n",
            "min_count must be",
            10,
        ),
        (
            "  timespan: 1h\n  history: 3\n  factor: 2\n  gap_factor: 2\n",
            "not used by baseline",
            10,
        ),
    ] {
        let e = load_err(&format!("{base}{body}---\n{ACTIVITY}"));
        assert!(e.reason.contains(needle), "{body}: {e}");
        assert_eq!(e.line, Some(line), "{body}: {e}");
    }
    // A duration history is a number of windows.
    let set = RuleSet::from_yaml(
        "ok.yml",
        &format!("{base}  timespan: 1h\n  history: 1d\n  factor: 3\n---\n{ACTIVITY}"),
    )
    .unwrap();
    assert_eq!(set.max_timespan_ms(), 25 * HOUR);
}

// ---------------------------------------------------------------------------
// Upper-bounded conditions (lt, lte, eq): judged when the window closes.

#[test]
fn lt_only_correlation_waits_for_the_window_to_close() {
    // Fewer than 3 failures of a user within 10 s of the first one.
    let rules = count_rule("10s", "{lt: 3}");
    let mut e = engine(&rules, no_lateness());
    let out = feed(
        &mut e,
        &[
            (0, login(T0, "few", false)),
            (1, login(T0 + SEC, "few", false)),
            (2, login(T0 + SEC, "many", false)),
            (3, login(T0 + 2 * SEC, "many", false)),
            (4, login(T0 + 3 * SEC, "many", false)),
        ],
    );
    assert!(out.is_empty(), "the first hit no longer fires: {out:?}");
    let mut out = Vec::new();
    // Window of `few`: [T0, T0 + 10 s]; closed one ms later.
    e.advance(T0 + 10 * SEC, &mut out);
    assert!(out.is_empty());
    e.advance(T0 + 10 * SEC + 1, &mut out);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].group["actor.user"], "few");
    assert_eq!(out[0].count, 2);
    assert_eq!(out[0].event_indices, vec![0, 1]);
    // `many` passed the bound: it never fires, and keeps no hits.
    e.advance(T0 + 60 * SEC, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(e.stats().groups, 0);
    assert_eq!(e.stats().timers, 0);
}

#[test]
fn upper_bounded_window_is_judged_before_a_later_hit_of_the_group() {
    let rules = count_rule("10s", "{lte: 2}");
    let cfg = EngineConfig {
        allowed_lateness_ms: 2 * SEC,
        ..EngineConfig::default()
    };
    let sorted = [
        (0, login(T0, "a", false)),
        (1, login(T0 + 10 * SEC, "a", false)),
        (2, login(T0 + 10 * SEC + 1, "a", false)),
        (3, login(T0 + 30 * SEC, "b", false)),
    ];
    // Within the lateness, arrival order does not matter.
    let shuffled = [
        sorted[0].clone(),
        sorted[2].clone(),
        sorted[1].clone(),
        sorted[3].clone(),
    ];
    let mut a = engine(&rules, cfg.clone());
    let mut b = engine(&rules, cfg);
    let oa = feed(&mut a, &sorted);
    assert_eq!(oa, feed(&mut b, &shuffled));
    // [T0, T0 + 10 s] holds 0 and 1; the hit 1 ms later opens a new window.
    let got: Vec<(Vec<u64>, u64)> = oa
        .iter()
        .map(|x| (x.event_indices.clone(), x.count))
        .collect();
    assert_eq!(got, vec![(vec![0, 1], 2), (vec![2], 1)]);
}

#[test]
fn upper_bounded_restart_in_the_middle_of_a_window() {
    let rules = count_rule("10m", "{lt: 3}");
    let set = Arc::new(RuleSet::from_yaml("c.yml", &rules).unwrap());
    let input = [
        (0, login(T0, "a", false)),
        (1, login(T0 + 60 * SEC, "a", false)),
    ];
    let mut e = Engine::new(Arc::clone(&set), no_lateness());
    for (i, ev) in &input {
        e.replay(*i, ev);
    }
    let mut out = Vec::new();
    e.advance(T0 + 10 * 60 * SEC + 1, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].event_indices, vec![0, 1]);
}

#[test]
fn absence_gap_by_hour_reports_a_business_hours_feed_stopping_in_the_morning() {
    // A billing feed sends every 5 minutes from 08:00 to 17:00 on weekdays:
    // its nights (15 h) and weekends (63 h) are normal gaps, but they begin
    // at 17:00. A stop at 09:00 is judged against 09:00's gaps (5 min).
    let knobs = "  timespan: 1h\n  history: 14d\n  gap_factor: 5\n  learning: 1d\n";
    let by_hour = absence_rule(&format!("{knobs}  gap_by: hour\n"));
    let overall = absence_rule(knobs);
    const DAY: i64 = 86_400_000;
    // Monday 2026-11-02 00:00 UTC.
    let monday = 1_793_577_600_000;
    let mut input = Vec::new();
    let mut i = 0u64;
    for d in 0..16 {
        let day = monday + d * DAY;
        let weekend = matches!(d % 7, 5 | 6);
        // The outage: the second Wednesday from 09:00 to 12:30.
        let outage = d == 9;
        if weekend {
            continue;
        }
        let mut t = day + 8 * 3_600_000;
        while t <= day + 17 * 3_600_000 {
            let h = (t - day) / 60_000;
            if !(outage && (9 * 60..12 * 60 + 30).contains(&h)) {
                input.push((i, from(t, "billing")));
                i += 1;
            }
            t += 5 * 60_000;
        }
    }
    let run = |rules: &str| {
        let mut e = engine(rules, no_lateness());
        let mut out = feed(&mut e, &input);
        e.flush(&mut out);
        out.iter()
            .map(|a| (a.first_time.unix_ms() - monday) / 60_000)
            .collect::<Vec<_>>()
    };
    // Reported once, an hour into the outage (09:00 + 1 h threshold).
    assert_eq!(run(&by_hour), vec![9 * 24 * 60 + 9 * 60 - 5]);
    // Judged against its longest gap overall (the weekend), it is not.
    assert!(run(&overall).is_empty());
    // gap_by needs gap_factor and takes only `hour`.
    for (knob, why) in [
        ("  timespan: 1h\n  gap_by: hour\n", "needs `gap_factor`"),
        (
            "  timespan: 1h\n  gap_factor: 5\n  gap_by: day\n",
            "must be `hour`",
        ),
    ] {
        let err = RuleSet::from_yaml("x.yml", &absence_rule(knob)).unwrap_err();
        assert!(format!("{err:?}").contains(why), "{err:?}");
    }
}

/// Arrival-ordered entries: `ehr` in real time every minute, `lab` every 10
/// minutes delivered in hourly batches 3 minutes after each full hour,
/// nothing of `lab` for `outage` (hours from `h0`), for `hours` hours.
fn batch_feed(h0: i64, hours: i64, outage: std::ops::Range<i64>) -> Vec<(u64, Entry)> {
    let mut raw: Vec<(i64, i64, &str)> = Vec::new();
    for m in 0..hours * 60 {
        let t = h0 + m * 60_000;
        raw.push((t, t, "ehr"));
        if m % 10 == 0 && !outage.contains(&(m / 60)) {
            let t = t + 30 * SEC;
            raw.push((h0 + (m / 60 + 1) * HOUR + 3 * 60_000, t, "lab"));
        }
    }
    raw.sort_unstable();
    raw.into_iter()
        .enumerate()
        .map(|(i, (received, t, system))| {
            let mut e = from(t, system);
            e.received = Timestamp::from_unix_ms(received).unwrap();
            (i as u64, e)
        })
        .collect()
}

#[test]
fn absence_waits_for_a_batch_sources_own_delivery_delay() {
    // The clock follows the real-time source while `lab` is idle between
    // its batches, so a deadline of last hit + 1 h passes before the batch
    // that fills the gap arrives: every hour would be a silence. Judged
    // against its own delivery delay (up to 63 min here), it is not.
    let rules = absence_rule("  timespan: 1h\n");
    let cfg = EngineConfig {
        // The batch's oldest events are 63 min behind the clock.
        late_retention_ms: 2 * HOUR,
        ..EngineConfig::default()
    };
    let input = batch_feed(H0, 48, 0..0);
    let mut e = engine(&rules, cfg.clone());
    let out = feed(&mut e, &input);
    assert!(silences(&out).is_empty(), "{:?}", silences(&out));

    // An outage of 4 h is reported once, an hour later than a real-time
    // source would be, naming the last event before it.
    let input = batch_feed(H0, 48, 30..34);
    let last_lab = input
        .iter()
        .filter(|(_, en)| {
            en.event.source.as_ref().is_some_and(|s| s.system == "lab")
                && en.event.time.unix_ms() < H0 + 30 * HOUR
        })
        .max_by_key(|(_, en)| en.event.time.unix_ms())
        .map(|(i, en)| (*i, en.event.time.unix_ms()))
        .unwrap();
    let mut e = engine(&rules, cfg);
    let out = feed(&mut e, &input);
    assert_eq!(silences(&out), vec![(last_lab.0, "lab".into())]);
    let waited = out[0].last_time.unix_ms() - last_lab.1;
    assert!(
        (HOUR + 50 * 60_000..3 * HOUR).contains(&waited),
        "reported {waited} ms after its last event"
    );
}

#[test]
fn absence_gap_by_hour_does_not_report_a_business_hours_feeds_weekends() {
    // 06:00-20:00 on weekdays, every 5 minutes: the night gap (10 h) times
    // 5 is shorter than the weekend (58 h), which must still not be a
    // silence (it falls outside the hours the feed sends in), nor become
    // one by being reported once and then never learnt.
    let rules = absence_rule(
        "  timespan: 1h\n  history: 7d\n  gap_factor: 5\n  learning: 1d\n  gap_by: hour\n",
    );
    const DAY: i64 = 86_400_000;
    // Monday 2026-11-02 00:00 UTC.
    let monday = 1_793_577_600_000;
    let mut input = Vec::new();
    let mut i = 0u64;
    for d in 0..26 {
        if matches!(d % 7, 5 | 6) {
            continue;
        }
        let day = monday + d * DAY;
        let mut t = day + 6 * HOUR;
        while t < day + 20 * HOUR {
            // The outage: the third Tuesday from 09:00 to 12:30.
            let outage = d == 15 && (day + 9 * HOUR..day + 12 * HOUR + 30 * 60_000).contains(&t);
            if !outage {
                input.push((i, from(t, "billing")));
                i += 1;
            }
            t += 5 * 60_000;
        }
    }
    let mut e = engine(&rules, no_lateness());
    let out = feed(&mut e, &input);
    let at: Vec<i64> = out
        .iter()
        .map(|a| (a.first_time.unix_ms() - monday) / 60_000)
        .collect();
    assert_eq!(at, vec![15 * 24 * 60 + 9 * 60 - 5]);
}

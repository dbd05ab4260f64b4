//! `absence` (a sealtrail extension): a group that was active sends no hit
//! for a span.
//!
//! ```yaml
//! correlation:
//!   type: absence
//!   rules: [source_activity]
//!   group-by: [source.system]
//!   timespan: 1h      # the shortest silence reported
//!   history: 7d       # optional (default: timespan): what min_count and gap_factor look back on
//!   min_count: 24     # optional (default 1): hits within history before the silence
//!   gap_factor: 5     # optional: the silence must also exceed 5 x the group's longest gap within history
//!   learning: 1d      # optional: the group's first hit must be this much older than its last
//!   gap_by: hour      # optional, with gap_factor: compare with the longest gaps that began at
//!                     # the same hour of the day (+-1 h, weekdays and weekends apart, UTC)
//! ```
//!
//! Per group: the time and event of its last hit, the times of its last
//! `min_count` hits, the longest gaps between its hits within `history` (a
//! monotonic queue, only with `gap_factor`), its first hit, and one timer.
//! At each hit the group is *watched* when it has `min_count` hits within
//! `history` ending at this hit and its first hit is at least `learning`
//! old; its silence threshold is `timespan`, or with `gap_factor`
//! `gap_factor x longest gap` kept between `timespan` and `history`. A
//! watched group's timer is `last hit + threshold`; when the watermark
//! passes it (strictly: a hit at exactly the threshold ends the silence in
//! time) the rule fires once, with the last hit's event, and the group stays
//! silent until its next hit, which re-arms it (the silent gap is not
//! learnt as a normal gap). A group with no hit for `history` (or for the
//! threshold, when longer) is forgotten, so it learns again when it comes
//! back. Groups per rule are capped (`max_groups_per_rule`, the idle longest
//! evicted); gaps kept per group by `max_hits_per_group`.
//!
//! With `gap_by: hour` the longest gaps are kept per *slot* (hour of the UTC
//! day, weekdays and weekends apart: 48 slots), by the hour the gap began,
//! and a silence is judged against the longest gap that began in its own
//! slot or the two beside it. A business-hours feed's nights and weekends
//! are long normal gaps, but they begin in the evening: a feed that stops
//! at 09:00 on a weekday is compared with its 09:00 gaps (minutes), not
//! with its weekend (days). A slot never seen falls back to the longest gap
//! overall, so a source active at a new hour is not reported at once. The
//! silence then counts only in the group's *usual* hours (slots in which it
//! sent on at least half of the days of their class on which it sent at
//! all, within history): checked when the timer fires, which moves the
//! deadline on when the silence ran through hours the group does not send
//! in (its weekend, a person-driven source's evening).
//!
//! *Delivery delay*: each hit carries how late its entry arrived (arrival
//! minus event time beyond the engine's allowed lateness). Per group the
//! longest delay of its hits within [`DELAY_WINDOW_MS`] is added to the
//! deadline, so a source that delivers in hourly batches (quiet in arrival
//! time between batches, while the engine's clock follows the active
//! sources) is judged against its own delivery: reported an hour later,
//! never falsely.

use std::collections::VecDeque;

use super::detection::{At, at};
use super::engine::{EngineStats, Fired, GroupKey};
use super::groups::Groups;
use super::load::refuse_keys;
use super::load::{CorrelationRule, duration};
use super::timers::{TimerId, Timers};
use super::yaml::Node;

/// Largest `min_count`: the times of that many hits are kept per group.
pub const MAX_MIN_COUNT: u64 = 10_000;

/// Settings of an `absence` correlation (its `timespan_ms` is the shortest
/// silence reported).
#[derive(Debug, Clone, PartialEq)]
pub struct Absence {
    pub history_ms: i64,
    pub min_count: u64,
    pub gap_factor: Option<f64>,
    pub learning_ms: i64,
    /// `gap_by: hour`: longest gaps per hour-of-day slot.
    pub by_hour: bool,
}

/// Slots of `gap_by: hour`: 24 hours of weekdays, then 24 of weekends.
const SLOTS: usize = 48;
/// A slot and its neighbours are trusted once gaps began there on this many
/// distinct days within history; before, the longest gap overall is used.
const SLOT_MIN_DAYS: usize = 3;

/// How long (event time of the group's hits) a delivery delay is
/// remembered: a source that delivers in hourly batches shows its longest
/// delay every hour, and a one-off backfill stops pushing the deadline out
/// a day later.
pub const DELAY_WINDOW_MS: i64 = 86_400_000;

const HOUR_MS: i64 = 3_600_000;

/// A hit as absence sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AbsenceHit {
    /// Event time.
    pub time: i64,
    pub event: Option<u64>,
    /// Arrival minus event time of its entry beyond the engine's allowed
    /// lateness (>= 0).
    pub delay: i64,
}

/// The slot of unix time `ms` (UTC): hour of the day, weekends after weekdays.
fn slot(ms: i64) -> usize {
    let day = ms.div_euclid(86_400_000);
    // 1970-01-01 was a Thursday: day 2 is a Saturday.
    let weekend = matches!(day.rem_euclid(7), 2 | 3);
    let hour = usize::try_from(ms.rem_euclid(86_400_000) / 3_600_000).unwrap_or(0);
    hour + if weekend { 24 } else { 0 }
}

impl Absence {
    /// How far back a replay must start: the longest silence plus what a
    /// group's watch depends on before its last hit.
    pub(crate) fn replay_ms(&self, timespan_ms: i64) -> i64 {
        let lookback = if self.min_count > 1 || self.gap_factor.is_some() {
            self.history_ms.max(self.learning_ms)
        } else {
            self.learning_ms
        };
        let silence = if self.gap_factor.is_some() {
            self.history_ms
        } else {
            timespan_ms
        };
        lookback
            .saturating_add(silence)
            .saturating_add(self.max_delay_ms())
    }

    /// The longest delivery delay that pushes a deadline out: a day, or
    /// `history` when shorter (a backfill is not a delivery pattern).
    fn max_delay_ms(&self) -> i64 {
        self.history_ms.min(DELAY_WINDOW_MS)
    }
}

/// `timespan`, `history`, `min_count`, `gap_factor` and `learning`.
pub(crate) fn parse(c: &Node) -> Result<(i64, Absence), At> {
    refuse_keys(c, ["condition", "field", "gap", "factor", "peers"], |key| {
        format!(
            "`{key}` is not used by absence (use timespan, history, min_count, gap_factor, \
             learning)"
        )
    })?;
    let timespan_ms =
        duration(c, "timespan")?.ok_or_else(|| at(c.pos, "absence has no `timespan`"))?;
    let history_ms = duration(c, "history")?.unwrap_or(timespan_ms);
    if history_ms < timespan_ms
        && let Some(n) = c.get("history")
    {
        return Err(at(n.pos, "`history` must not be shorter than `timespan`"));
    }
    let min_count = match c.get("min_count") {
        None => 1,
        Some(n) => n
            .as_str()
            .and_then(|s| s.parse::<u64>().ok())
            .filter(|v| (1..=MAX_MIN_COUNT).contains(v))
            .ok_or_else(|| {
                at(
                    n.pos,
                    format!("min_count must be an integer from 1 to {MAX_MIN_COUNT}"),
                )
            })?,
    };
    let gap_factor = match c.get("gap_factor") {
        None => None,
        Some(n) => Some(
            n.as_str()
                .and_then(|s| s.parse::<f64>().ok())
                .filter(|v| v.is_finite() && *v >= 1.0 && *v <= 1000.0)
                .ok_or_else(|| at(n.pos, "gap_factor must be a number from 1 to 1000"))?,
        ),
    };
    let by_hour = match c.get("gap_by") {
        None => false,
        Some(n) if n.as_str() == Some("hour") => {
            if gap_factor.is_none() {
                return Err(at(n.pos, "`gap_by` needs `gap_factor`"));
            }
            true
        }
        Some(n) => return Err(at(n.pos, "gap_by must be `hour`")),
    };
    let learning_ms = duration(c, "learning")?.unwrap_or(0);
    if learning_ms > history_ms
        && let Some(n) = c.get("learning")
    {
        return Err(at(n.pos, "`learning` must not exceed `history`"));
    }
    Ok((
        timespan_ms,
        Absence {
            history_ms,
            min_count,
            gap_factor,
            learning_ms,
            by_hour,
        },
    ))
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Watch {
    first: i64,
    last: i64,
    last_event: Option<u64>,
    /// Times of the last `min_count` hits, oldest first.
    recent: VecDeque<i64>,
    /// (end, length) of gaps within history, lengths strictly decreasing:
    /// the front is the longest.
    gaps: VecDeque<(i64, i64)>,
    /// `gap_by: hour`: the same per slot of the gap's start (empty
    /// otherwise).
    slot_gaps: Vec<VecDeque<(i64, i64)>>,
    /// `gap_by: hour`: per slot, the distinct days (unix day numbers,
    /// ascending, within history) on which a gap began there.
    slot_days: Vec<VecDeque<i64>>,
    /// (time, delay) of hits within [`DELAY_WINDOW_MS`] of the last, delays
    /// strictly decreasing: the front is the longest delivery delay.
    delays: VecDeque<(i64, i64)>,
    /// The silence threshold set at the last hit.
    threshold: i64,
    /// Reported silent, not heard since.
    silent: bool,
    /// Whether `deadline` is the silence deadline (else the time to forget).
    armed: bool,
    deadline: i64,
    /// The scheduled timer: at or before `deadline` (moved lazily, when it
    /// fires early, so most hits touch no timer).
    timer: TimerId,
}

/// The absence state of one rule.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct State {
    groups: Groups<Watch>,
}

impl State {
    pub(crate) fn len(&self) -> usize {
        self.groups.len()
    }

    /// Applies a hit (hits come in event-time order, late ones aside).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn hit(
        &mut self,
        corr: &CorrelationRule,
        ci: usize,
        key: GroupKey,
        h: &AbsenceHit,
        (max_groups, max_gaps): (usize, usize),
        timers: &mut Timers,
        stats: &mut EngineStats,
    ) {
        let Some(rule) = &corr.absence else { return };
        let (t, event) = (h.time, h.event);
        let touched = self.groups.hit(&key, t, max_groups, || Watch {
            first: t,
            last: t,
            last_event: None,
            recent: VecDeque::new(),
            gaps: VecDeque::new(),
            delays: VecDeque::new(),
            threshold: 0,
            slot_gaps: if rule.by_hour {
                vec![VecDeque::new(); SLOTS]
            } else {
                Vec::new()
            },
            slot_days: if rule.by_hour {
                vec![VecDeque::new(); SLOTS]
            } else {
                Vec::new()
            },
            silent: false,
            armed: false,
            deadline: i64::MIN,
            timer: (i64::MIN, 0, 0),
        });
        if let Some(w) = touched.evicted {
            timers.cancel(w.timer);
            stats.evicted_groups += 1;
        }
        let w = touched.value;
        // Its delivery delay counts even when the hit is late (a batch's
        // oldest events are the latest delivered), as of the group's last.
        push_delay(
            &mut w.delays,
            t.max(w.last),
            h.delay.clamp(0, rule.max_delay_ms()),
        );
        if touched.previous.is_some() && t < w.last {
            // A late hit: a later one of the group is already applied, so
            // it changes neither the group's last hit nor its silence
            // threshold; only the wait for what its source delivers late.
            if w.armed {
                let d = w.last.saturating_add(w.threshold).saturating_add(delay(w));
                w.deadline = w.deadline.max(d);
            }
            return;
        }
        if touched.previous.is_some() && !w.silent && rule.gap_factor.is_some() {
            push_gap(&mut w.gaps, t, t - w.last, max_gaps, stats);
            if let Some(q) = w.slot_gaps.get_mut(slot(w.last)) {
                push_gap(q, t, t - w.last, max_gaps, stats);
            }
            if let Some(d) = w.slot_days.get_mut(slot(w.last)) {
                let day = w.last.div_euclid(86_400_000);
                if d.back() != Some(&day) {
                    d.push_back(day);
                }
            }
        }
        w.last = t;
        w.last_event = event;
        w.silent = false;
        // Bounded by MAX_MIN_COUNT at load.
        let keep = usize::try_from(rule.min_count).unwrap_or(usize::MAX);
        w.recent.push_back(t);
        while w.recent.len() > keep {
            w.recent.pop_front();
        }
        while w
            .gaps
            .front()
            .is_some_and(|&(end, _)| end < t - rule.history_ms)
        {
            w.gaps.pop_front();
        }
        for q in &mut w.slot_gaps {
            while q.front().is_some_and(|&(end, _)| end < t - rule.history_ms) {
                q.pop_front();
            }
        }
        let oldest_day = (t - rule.history_ms).div_euclid(86_400_000);
        for d in &mut w.slot_days {
            while d.front().is_some_and(|&day| day < oldest_day) {
                d.pop_front();
            }
        }
        let threshold = threshold(rule, corr.timespan_ms, w);
        w.threshold = threshold;
        w.armed = w.recent.len() >= keep
            && w.recent.front().is_some_and(|&r| r >= t - rule.history_ms)
            && t - w.first >= rule.learning_ms;
        // A source that delivers late (a relay, hourly batches) is judged
        // against its own delivery: the hit that ends a silence in time
        // may arrive that much after the watermark passed its event time.
        w.deadline = if w.armed {
            t + threshold
        } else {
            t + rule.history_ms.max(threshold)
        }
        .saturating_add(delay(w));
        if w.timer.0 > w.deadline || w.timer.0 == i64::MIN {
            timers.cancel(w.timer);
            w.timer = timers.schedule(w.deadline, ci, key);
        }
    }

    /// A timer of this rule fired: the silence alert, or forgetting.
    pub(crate) fn fire(
        &mut self,
        corr: &CorrelationRule,
        id: TimerId,
        key: &GroupKey,
        timers: &mut Timers,
    ) -> Option<Fired> {
        let rule = corr.absence.as_ref()?;
        let w = self.groups.get_mut(key)?;
        if w.timer != id {
            return None; // stale (never left behind, but cheap to check)
        }
        if w.deadline > id.0 {
            // Hits came since it was set: wait for the current deadline.
            w.timer = timers.schedule(w.deadline, id.1, key.clone());
            return None;
        }
        if !w.armed {
            self.groups.remove(key);
            return None;
        }
        if rule.by_hour {
            // The silence counts only in the hours the group usually sends
            // in (a business-hours feed's weekend is no silence).
            let cap = w.threshold.max(rule.history_ms);
            let d = usual_deadline(w, w.last, w.threshold, cap).saturating_add(delay(w));
            if d > id.0 {
                w.deadline = d;
                w.timer = timers.schedule(d, id.1, key.clone());
                return None;
            }
        }
        let fired = Fired {
            first: w.last,
            last: id.0,
            count: 0,
            events: w.last_event.into_iter().collect(),
        };
        w.armed = false;
        w.silent = true;
        let forget = w.last + rule.history_ms;
        if forget > id.0 {
            w.deadline = forget;
            w.timer = timers.schedule(forget, id.1, key.clone());
        } else {
            self.groups.remove(key);
        }
        Some(fired)
    }
}

/// The silence a watched group must exceed.
fn threshold(rule: &Absence, timespan_ms: i64, w: &Watch) -> i64 {
    let Some(f) = rule.gap_factor else {
        return timespan_ms;
    };
    let overall = w.gaps.front().map_or(0, |&(_, len)| len);
    // The silence begins at the last hit: its slot and the two beside it
    // (the same day class), when any gap began there.
    let longest = if w.slot_gaps.is_empty() {
        overall
    } else {
        let s = slot(w.last);
        let (base, hour) = (s - s % 24, s % 24);
        let trio = [base + (hour + 23) % 24, s, base + (hour + 1) % 24];
        let mut days: Vec<i64> = trio
            .iter()
            .filter_map(|&i| w.slot_days.get(i))
            .flatten()
            .copied()
            .collect();
        days.sort_unstable();
        days.dedup();
        if days.len() < SLOT_MIN_DAYS {
            overall
        } else {
            trio.iter()
                .filter_map(|&i| w.slot_gaps.get(i)?.front().map(|&(_, len)| len))
                .max()
                .unwrap_or(overall)
        }
    };
    // Lengths are below 2^53 ms, so the float product is exact enough.
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
    let scaled = (longest as f64 * f).ceil().min(i64::MAX as f64) as i64;
    scaled.clamp(timespan_ms, rule.history_ms)
}

/// The longest delivery delay of the group's recent hits.
fn delay(w: &Watch) -> i64 {
    w.delays.front().map_or(0, |&(_, d)| d)
}

/// Adds a delay at `time` (not before the previous one's) to the sliding
/// maximum over [`DELAY_WINDOW_MS`].
fn push_delay(delays: &mut VecDeque<(i64, i64)>, time: i64, d: i64) {
    while delays.back().is_some_and(|&(_, x)| x <= d) {
        delays.pop_back();
    }
    delays.push_back((time, d));
    while delays
        .front()
        .is_some_and(|&(at, _)| at < time - DELAY_WINDOW_MS)
    {
        delays.pop_front();
    }
}

/// `gap_by: hour`: the slots the group usually sends in: those in which it
/// sent on at least half of the days of their day class (weekdays,
/// weekends) on which it sent at all, within history.
fn usual_slots(w: &Watch) -> [bool; SLOTS] {
    let mut usual = [false; SLOTS];
    for base in [0, 24] {
        let Some(class) = w.slot_days.get(base..base + 24) else {
            continue;
        };
        let mut days: Vec<i64> = class.iter().flatten().copied().collect();
        days.sort_unstable();
        days.dedup();
        for (k, d) in class.iter().enumerate() {
            usual[base + k] = !d.is_empty() && 2 * d.len() >= days.len();
        }
    }
    usual
}

/// `gap_by: hour`: when a silence that began at `start` has lasted `need`
/// counting only the hours the group usually sends in ([`usual_slots`]):
/// a business-hours feed's nights and weekends, and a human-driven
/// source's quiet hours, do not count. At most `cap` after `start` (what
/// the replay window covers); `start + need` when the group has no usual
/// slot.
fn usual_deadline(w: &Watch, start: i64, need: i64, cap: i64) -> i64 {
    let usual = usual_slots(w);
    if !usual.contains(&true) {
        return start.saturating_add(need);
    }
    let (mut at, mut left) = (start, need.max(0));
    let cap = start.saturating_add(cap.max(need));
    while at < cap {
        let end = (at.div_euclid(HOUR_MS) + 1) * HOUR_MS;
        if usual[slot(at)] {
            if end - at >= left {
                return at + left;
            }
            left -= end - at;
        }
        at = end;
    }
    cap
}

/// Adds a gap to the sliding maximum: shorter or equal gaps before it can
/// never be the longest again.
fn push_gap(
    gaps: &mut VecDeque<(i64, i64)>,
    end: i64,
    len: i64,
    cap: usize,
    stats: &mut EngineStats,
) {
    while gaps.back().is_some_and(|&(_, l)| l <= len) {
        gaps.pop_back();
    }
    gaps.push_back((end, len));
    if gaps.len() > cap.max(1) {
        gaps.pop_front();
        stats.dropped_hits += 1;
    }
}

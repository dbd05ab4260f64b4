//! Eager firing: correlation alerts that do not wait out the lateness.
//!
//! Ordered evaluation (the reorder buffer, then the group windows in event
//! time order) stays the single source of state: this module only looks
//! ahead. When a hit of an *eager* correlation arrives, the group's applied
//! window plus its hits still waiting in the buffer are run through the
//! same window rules the ordered evaluation will apply (slide, push, cap,
//! measure, clear on firing). What that fires is reported at once and
//! remembered; the ordered evaluation's firing that shares an event with a
//! remembered alert of the same group is that alert, and is not reported
//! again (each early alert stands for one ordered firing).
//!
//! What comes out, compared with waiting for the watermark:
//! - Every hit of the window known when the look-ahead fires (in order, or
//!   reordered but complete, e.g. a burst of exactly the threshold): the
//!   same alert (same events, same id), only earlier.
//! - A hit of the group that arrives after the look-ahead fired, within the
//!   lateness, with an earlier (event time, ledger index) than the hit it
//!   fired on: the ordered firing may move or take other events. When it
//!   shares an event with the early alert, the early alert is the one
//!   reported (its first event, hence its id, can differ from what
//!   in-order arrival gives); when it does not (another burst), it is
//!   reported too. Rarely (a shifted second firing of one group reached
//!   after the watermark passed the early one) an alert for the same burst
//!   is reported twice; the service's suppression window covers grouped
//!   correlations.
//! - Replays read the ledger in the same order, so a restart reproduces the
//!   same early alerts (and ids) for the service to recognise.
//!
//! Eager correlations: `event_count`, `value_count` and `temporal` whose
//! condition is only `gt`/`gte` (more hits can only make it hold), fed by
//! detection rules only (chained hits are made by the ordered evaluation),
//! and alerting on their own. `temporal_ordered` and `first_seen` depend on
//! the order of all earlier events and wait for the watermark.

use std::collections::VecDeque;

use super::{GroupKey, HitKey, MAX_ALERT_EVENTS, Map, Value};
use crate::rules::load::{CorrelationRule, CorrelationType, Source};

/// One hit of a watched correlation still in the reorder buffer.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Waiting {
    key: HitKey,
    value: Option<Value>,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct GroupWaiting {
    /// Ascending by key.
    hits: Vec<Waiting>,
    /// The last hit a look-ahead fired on (still waiting): later hits need
    /// only be run from there, with an empty window.
    fired_at: Option<HitKey>,
}

/// An alert reported early, until the ordered evaluation reaches it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Fired {
    ci: usize,
    group: GroupKey,
    /// Its events, sorted (to find firings that share one).
    events: Vec<u64>,
    /// Event time of the hit it fired on.
    time: i64,
}

impl Fired {
    fn overlaps(&self, ci: usize, group: &GroupKey, events: &[u64]) -> bool {
        self.ci == ci
            && self.group == *group
            && events.iter().any(|e| self.events.binary_search(e).is_ok())
    }
}

/// A firing found by a look-ahead.
pub(super) struct Firing {
    pub first_time: i64,
    pub last_time: i64,
    pub count: u64,
    pub events: Vec<u64>,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct Eager {
    /// Per correlation: `Some` when it fires eagerly.
    #[serde(with = "crate::rules::snap::vec_opt_pairs")]
    watched: Vec<Option<Map<GroupKey, GroupWaiting>>>,
    fired: Vec<Fired>,
}

impl Eager {
    /// How many correlations it has a slot for (a snapshot's check).
    pub(super) fn watched_len(&self) -> usize {
        self.watched.len()
    }
}

/// Whether a correlation may fire before the watermark (module docs).
pub(super) fn is_eager(c: &CorrelationRule) -> bool {
    let cond = &c.condition;
    matches!(
        c.kind,
        CorrelationType::EventCount | CorrelationType::ValueCount | CorrelationType::Temporal
    ) && c.first_seen.is_none()
        && c.join.is_none()
        && c.absence.is_none()
        && c.baseline.is_none()
        && c.habit.is_none()
        && c.dormant.is_none()
        && !c.explain_fed
        && c.meta.standalone
        && (cond.gt.is_some() || cond.gte.is_some())
        && cond.lt.is_none()
        && cond.lte.is_none()
        && cond.eq.is_none()
        && c.members
            .iter()
            .all(|m| matches!(m.source, Source::Detection(_)))
}

/// A hit of the simulated window.
struct Sim<'a> {
    time: i64,
    first_time: i64,
    member: usize,
    events: &'a [u64],
    value: Option<&'a str>,
}

impl Eager {
    pub(super) fn new(correlations: &[CorrelationRule]) -> Eager {
        Eager {
            watched: correlations
                .iter()
                .map(|c| is_eager(c).then(Map::default))
                .collect(),
            fired: Vec::new(),
        }
    }

    pub(super) fn watches(&self, ci: usize) -> bool {
        self.watched.get(ci).is_some_and(Option::is_some)
    }

    /// A hit entered the reorder buffer.
    pub(super) fn wait(&mut self, key: HitKey, group: &GroupKey, value: Option<&Value>) {
        let Some(Some(map)) = self.watched.get_mut(key.2) else {
            return;
        };
        let g = match map.get_mut(group) {
            Some(g) => g,
            None => map.entry(group.clone()).or_default(),
        };
        let at = g.hits.partition_point(|w| w.key < key);
        g.hits.insert(
            at,
            Waiting {
                key,
                value: value.cloned(),
            },
        );
    }

    /// A hit left the reorder buffer (applied in order).
    pub(super) fn applied(&mut self, key: HitKey, group: &GroupKey) {
        let Some(Some(map)) = self.watched.get_mut(key.2) else {
            return;
        };
        let Some(g) = map.get_mut(group) else { return };
        if let Some(at) = g.hits.iter().position(|w| w.key == key) {
            g.hits.remove(at);
        }
        if g.fired_at.is_some_and(|f| f <= key) {
            g.fired_at = None;
        }
        if g.hits.is_empty() {
            map.remove(group);
        }
    }

    /// Runs the look-ahead for a group that just got `new` (still waiting);
    /// returns the firings not reported before.
    pub(super) fn look_ahead(
        &mut self,
        corr: &CorrelationRule,
        new: HitKey,
        group: &GroupKey,
        applied: Option<&VecDeque<super::Hit>>,
        applied_values: usize,
        max_hits: usize,
    ) -> Vec<Firing> {
        let ci = new.2;
        let Some(Some(map)) = self.watched.get_mut(ci) else {
            return Vec::new();
        };
        let Some(g) = map.get_mut(group) else {
            return Vec::new();
        };
        // After an earlier look-ahead fired on `f`, the ordered evaluation
        // clears the window there; a hit after `f` changes nothing before it.
        let from = g.fired_at.filter(|f| *f < new);
        let start = from.map_or(0, |f| g.hits.partition_point(|w| w.key <= f));
        let applied = if from.is_some() { None } else { applied };
        // Cheap bound first: the measure can be at most this.
        let waiting = (g.hits.len() - start) as u64;
        let base = match corr.kind {
            CorrelationType::ValueCount => applied.map_or(0, |_| applied_values as u64),
            _ => applied.map_or(0, |h| h.len() as u64),
        };
        let mut bound = base + waiting;
        if corr.kind == CorrelationType::Temporal {
            bound = bound.min(corr.members.len() as u64);
        }
        if !corr.condition.holds(bound) {
            return Vec::new();
        }
        let mut window: VecDeque<Sim<'_>> = VecDeque::new();
        if let Some(hits) = applied {
            window.extend(hits.iter().map(|h| Sim {
                time: h.time,
                first_time: h.first_time,
                member: h.member,
                events: h.events.as_slice(),
                value: h.value.as_deref(),
            }));
        }
        let mut values: Map<&str, u32> = Map::default();
        for v in window.iter().filter_map(|h| h.value) {
            *values.entry(v).or_insert(0) += 1;
        }
        let mut found = Vec::new();
        let mut last_fire = None;
        for w in &g.hits[start..] {
            let t = w.key.0;
            while window
                .front()
                .is_some_and(|h| h.time < t - corr.timespan_ms)
            {
                pop(&mut window, &mut values);
            }
            let sim = Sim {
                time: t,
                first_time: t,
                member: w.key.3,
                events: std::slice::from_ref(&w.key.1),
                value: w.value.as_deref(),
            };
            if let Some(v) = sim.value {
                *values.entry(v).or_insert(0) += 1;
            }
            window.push_back(sim);
            if window.len() > max_hits {
                pop(&mut window, &mut values);
            }
            let Some(count) = measure(corr, &window, values.len()) else {
                continue;
            };
            let first_time = window.iter().map(|h| h.first_time).min().unwrap_or(t);
            let events: Vec<u64> = window
                .iter()
                .flat_map(|h| h.events.iter().copied())
                .take(MAX_ALERT_EVENTS)
                .collect();
            found.push(Firing {
                first_time,
                last_time: t,
                count,
                events,
            });
            last_fire = Some(w.key);
            window.clear();
            values.clear();
        }
        drop(window);
        if last_fire.is_some() {
            g.fired_at = last_fire;
        } else if from.is_none() {
            g.fired_at = None;
        }
        // A firing that shares an event with one already reported is that
        // alert seen with more (or reordered) hits: reported once.
        found.retain(|f| {
            let known = self.fired.iter().any(|x| x.overlaps(ci, group, &f.events));
            if !known {
                let mut events = f.events.clone();
                events.sort_unstable();
                self.fired.push(Fired {
                    ci,
                    group: group.clone(),
                    events,
                    time: f.last_time,
                });
            }
            !known
        });
        found
    }

    /// Whether an alert the ordered evaluation fired was reported early:
    /// an early alert of the same group shares an event with it (and is
    /// forgotten, so it stands for one ordered alert only).
    pub(super) fn claim(&mut self, ci: usize, group: &GroupKey, events: &[u64]) -> bool {
        if !self.watches(ci) || self.fired.is_empty() {
            return false;
        }
        match self
            .fired
            .iter()
            .position(|x| x.overlaps(ci, group, events))
        {
            Some(at) => {
                self.fired.swap_remove(at);
                true
            }
            None => false,
        }
    }

    /// Forgets early alerts the ordered evaluation has passed without
    /// firing them (a late hit changed the window); `None`: all.
    pub(super) fn passed(&mut self, watermark: Option<i64>) {
        if !self.fired.is_empty() {
            self.fired.retain(|f| watermark.is_some_and(|w| f.time > w));
        }
    }
}

fn pop(window: &mut VecDeque<Sim<'_>>, values: &mut Map<&str, u32>) {
    if let Some(h) = window.pop_front()
        && let Some(v) = h.value
        && let Some(n) = values.get_mut(v)
    {
        *n -= 1;
        if *n == 0 {
            values.remove(v);
        }
    }
}

/// The engine's `measure` over a simulated window.
fn measure(corr: &CorrelationRule, window: &VecDeque<Sim<'_>>, distinct: usize) -> Option<u64> {
    let hits = window.len() as u64;
    let (measured, reported) = match corr.kind {
        CorrelationType::EventCount => (hits, hits),
        CorrelationType::ValueCount => (distinct as u64, distinct as u64),
        CorrelationType::Temporal => {
            let mut seen = vec![false; corr.members.len()];
            for h in window {
                if let Some(s) = seen.get_mut(h.member) {
                    *s = true;
                }
            }
            (seen.iter().filter(|s| **s).count() as u64, hits)
        }
        _ => return None,
    };
    corr.condition.holds(measured).then_some(reported)
}

impl super::Engine {
    /// Look-ahead for the groups the current entry added waiting hits to.
    pub(super) fn look_ahead(&mut self, out: &mut Vec<super::AlertCandidate>) {
        let rules = std::sync::Arc::clone(&self.rules);
        let mut touched = std::mem::take(&mut self.touched);
        for (key, group) in touched.drain(..) {
            let ci = key.2;
            let corr = &rules.correlations[ci];
            let g = self.state[ci].groups.get(&group);
            let firings = self.eager.look_ahead(
                corr,
                key,
                &group,
                g.map(|g| &g.hits),
                g.map_or(0, |g| g.values.len()),
                self.cfg.max_hits_per_group,
            );
            for f in firings {
                out.push(super::alert(
                    &corr.meta,
                    super::group_map(corr, &group),
                    f.first_time,
                    f.last_time,
                    f.count,
                    f.events,
                ));
            }
        }
        // Keep the buffer's allocation for the next entry.
        self.touched = touched;
    }
}

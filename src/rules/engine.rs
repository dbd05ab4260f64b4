//! Evaluation of a [`RuleSet`] over a stream of entries.
//!
//! Detection rules are evaluated on each entry as it arrives. A match of a
//! rule that feeds correlations becomes a *hit* that waits in a reorder
//! buffer until the engine's clock (watermark) passes it; hits are then
//! applied to correlation state in (event time, ledger index) order, so the
//! same events give the same alerts whatever their arrival order within the
//! lateness.
//!
//! Event time is per source (`engine/sources.rs`): the clock is the event
//! time of the slowest active source (`source.system`, else the listener
//! kind) minus the allowed lateness; a source idle for `source_idle_ms`
//! stops holding it back, and the service's own entries (alerts, incident
//! updates, silence reports, self-audit) are no source. A hit behind the
//! clock (or behind a hit already applied) is *late*: it waits for its own
//! source's watermark (so a late source is still applied in its own order)
//! and is then applied straight to the state it belongs to (an out-of-order
//! hit takes its place in its group's window), its alerts marked
//! [`AlertCandidate::late`]. Late hits more than `late_retention_ms` behind
//! the clock are dropped and counted per rule and source
//! ([`Engine::take_late_drops`]). Standalone detection alerts are never late.
//!
//! Correlation state is per rule and group-by key: the hits inside the
//! timespan (a sliding window ending at the newest hit, both ends
//! inclusive). A correlation fires when its condition holds after a hit is
//! applied; the group's window is then cleared, so a burst gives one alert.
//! Bounds: groups per rule (`max_groups_per_rule`; the group idle longest is
//! evicted and counted), hits per group (`max_hits_per_group`; the oldest
//! is dropped and counted), the reorder buffer (`max_pending`; the oldest
//! hits are applied early and counted). Groups whose newest hit left the
//! timespan are expired as time advances.
//!
//! `first_seen` (a sealtrail extension) keeps, per group, the time of its
//! first hit and, with `field`, a map value -> last seen time (at most
//! `max_hits_per_group` values: expired ones, then the least recently seen,
//! are dropped and counted in [`EngineStats::evicted_values`]). It fires,
//! without clearing the group, on a hit whose value was not seen within
//! `history` (both ends inclusive) once the group's first hit is at least
//! `learning` old; without `field` (dormant mode) on a hit whose group's
//! previous hit is at least `gap` old. Hits of its `observe` members are
//! applied the same way (they start the learning period and remember their
//! values) but never fire. Its `timespan_ms` is `history`: a
//! group with no hit for that long is expired like any other.
//!
//! `absence` and `baseline` (sealtrail extensions, `absence.rs` and
//! `baseline.rs`) and correlations whose condition has an upper bound
//! (`lt`, `lte`, `eq`: judged over the whole window, which starts at the
//! group's first hit, when the window closes, not on the first hit that
//! satisfies them) act when time passes rather than on a hit: they keep
//! event-time deadlines (`timers.rs`) that fire once the watermark is past
//! them, interleaved with the hits in event-time order. [`Engine::advance`]
//! moves the watermark when no events come, so a stream that went quiet
//! still closes windows and reports silences.
//! `relation` and `state` (sealtrail extensions, state joins) keep their
//! state in [`super::relation`]; their members' hits take the same reorder
//! buffer, and the rule's `timespan_ms` is its replay span.
//!
//! Group state lives in [`super::groups::Groups`] (one lookup per hit, a
//! lazily refreshed idle order); the reorder buffer is `reorder.rs`.
//!
//! Rebuilding after a restart or reload: replay the ledger from
//! `now - (RuleSet::max_timespan_ms + allowed_lateness_ms)` with
//! [`Engine::replay`] (alerts dropped), then continue with
//! [`Engine::process`].

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use super::Level;
use super::explain::{ExplainConfig, ExplainStats, Explainer, ExplainerState, ExplainerStateRef};
use super::groups::Groups;
pub(crate) use super::groups::{GroupKey, Map};
use super::load::{CorrelationRule, CorrelationType, FirstSeen, GroupSource, RuleMeta, RuleSet};
use super::relation::{JoinHit, JoinState};
use super::timers::{TimerId, Timers};
use super::view::EntryView;
use super::{absence, baseline, dormant, habit};
use crate::event::{Entry, Timestamp};

mod eager;
mod explained;
mod reorder;
mod sources;

use reorder::{Pending, Reorder};
use sources::Sources;

/// Most event indices kept in one alert.
pub const MAX_ALERT_EVENTS: usize = 100;

/// Engine limits and streaming settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// How far (ms of event time) an event may arrive behind the newest one
    /// and still be correlated in order. Correlation alerts wait this long.
    pub allowed_lateness_ms: i64,
    /// A source with no entry for this long (arrival time) no longer holds
    /// the engine's clock back (`engine/sources.rs`).
    pub source_idle_ms: i64,
    /// How far (ms of event time) behind the clock a late hit is still
    /// applied to the correlation state it belongs to (state is kept this
    /// much longer for it); older ones are dropped and counted per rule and
    /// source.
    pub late_retention_ms: i64,
    pub max_groups_per_rule: usize,
    pub max_hits_per_group: usize,
    pub max_pending: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            allowed_lateness_ms: 2_000,
            source_idle_ms: 5 * 60_000,
            late_retention_ms: 60 * 60_000,
            max_groups_per_rule: 100_000,
            max_hits_per_group: 10_000,
            max_pending: 100_000,
        }
    }
}

/// One firing, shaped to become the alert object of `GET /v1/alerts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertCandidate {
    pub rule_id: String,
    pub title: String,
    pub level: Level,
    /// group-by field -> value (fields the events lacked are left out).
    pub group: BTreeMap<String, String>,
    pub first_time: Timestamp,
    pub last_time: Timestamp,
    /// Detection: 1. event_count and temporal: the events in the window.
    /// value_count: the distinct values.
    pub count: u64,
    /// Ledger indices of the events, oldest first, at most
    /// [`MAX_ALERT_EVENTS`].
    pub event_indices: Vec<u64>,
    /// Fired by a hit that arrived behind the engine's clock (applied late
    /// to the state it belongs to).
    pub late: bool,
    /// Rules with `explain` (and correlations they feed): the explanation
    /// kinds tried and not found (`treatment.clinician`, ...); else empty.
    pub explanations_tried: Vec<String>,
}

/// Counters for metrics and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EngineStats {
    pub events: u64,
    pub detections: u64,
    /// Hits that arrived behind the engine's clock (or behind a hit
    /// already applied): `late_applied + late_dropped`.
    pub late_hits: u64,
    /// Late hits applied to the state they belong to.
    pub late_applied: u64,
    /// Late hits older than `late_retention_ms` behind the clock: not
    /// applied, counted per rule and source ([`Engine::take_late_drops`]).
    pub late_dropped: u64,
    /// Sources whose event time is tracked.
    pub sources: usize,
    /// Hits applied before the watermark because the buffer was full.
    pub forced_hits: u64,
    pub evicted_groups: u64,
    pub expired_groups: u64,
    /// Hits dropped from a full group window.
    pub dropped_hits: u64,
    /// first_seen values dropped from a full group (least recently seen).
    pub evicted_values: u64,
    /// relation/state hits not applied: a key field missing, or a relation
    /// time that is no timestamp.
    pub unjoined_hits: u64,
    pub pending: usize,
    pub groups: usize,
    /// Deadlines waiting (absence, baseline and upper-bounded windows).
    pub timers: usize,
}

/// Version of what [`Engine::save_state`] writes: part of a snapshot's
/// rules digest, so a build whose state means something else refuses an
/// older snapshot. Bump it with any change to the state's types or meaning.
pub const STATE_VERSION: u32 = 1;

/// Why an engine's state could not be saved or restored.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("the engine is in the middle of an entry")]
    Busy,
    #[error("the state does not fit this rule set")]
    Rules,
    #[error("engine state: {0}")]
    Format(String),
}

/// A JSON error without the text it met: state values are patient and
/// user ids (PHI), and the message is logged.
pub fn json_error(e: &serde_json::Error) -> String {
    format!(
        "{:?} error at line {} column {}",
        e.classify(),
        e.line(),
        e.column()
    )
}

/// [`Engine::save_state`]: the engine's own state, borrowed.
#[derive(serde::Serialize)]
struct StateRef<'a> {
    pending: &'a Reorder,
    sources: &'a Sources,
    clock: Option<i64>,
    applied: Option<HitKey>,
    late: Vec<(&'a str, &'a Reorder)>,
    late_drops: Vec<(&'a (String, String), &'a u64)>,
    state: &'a [CorrState],
    timers: &'a Timers,
    stats: &'a EngineStats,
    eager: &'a eager::Eager,
    partial: Option<Option<i64>>,
    explain: Option<ExplainerStateRef<'a, explained::Deferred>>,
}

/// [`Engine::restore_state`]: the same, read back.
#[derive(serde::Deserialize)]
struct StateOwned {
    pending: Reorder,
    sources: Sources,
    clock: Option<i64>,
    applied: Option<HitKey>,
    late: Vec<(Box<str>, Reorder)>,
    late_drops: Vec<((String, String), u64)>,
    state: Vec<CorrState>,
    timers: Timers,
    stats: EngineStats,
    eager: eager::Eager,
    partial: Option<Option<i64>>,
    explain: Option<ExplainerState<explained::Deferred>>,
}

/// A counted (value_count) or remembered (first_seen) value, shared by the
/// reorder buffer, the look-ahead, the window and the value map.
pub(crate) type Value = Arc<str>;

/// Ordering of hits: event time, ledger index, correlation, member.
type HitKey = (i64, u64, usize, usize);

#[derive(Debug, serde::Serialize, serde::Deserialize)]
enum Events {
    One(u64),
    Many(Box<[u64]>),
}

impl Events {
    fn as_slice(&self) -> &[u64] {
        match self {
            Events::One(i) => std::slice::from_ref(i),
            Events::Many(v) => v,
        }
    }
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Hit {
    time: i64,
    first_time: i64,
    member: usize,
    events: Events,
    value: Option<Value>,
    /// Arrival minus event time of the hit's entry beyond the allowed
    /// lateness (0 for chained hits).
    delay: i64,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Group {
    /// first_seen: time of the group's first hit (learning).
    first: i64,
    last: i64,
    hits: VecDeque<Hit>,
    /// value_count: distinct value -> hits carrying it.
    #[serde(with = "crate::rules::snap::pairs")]
    values: Map<Value, u32>,
    /// first_seen: value -> last time seen.
    #[serde(with = "crate::rules::snap::pairs")]
    seen: Map<Value, i64>,
    /// Conditions with an upper bound: the window's closing deadline.
    timer: Option<TimerId>,
    /// Conditions with an upper bound: passed it in this window (hits are
    /// no longer kept; the window cannot fire).
    spoiled: bool,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct CorrState {
    /// Groups by newest hit: expiry and eviction order.
    groups: Groups<Group>,
    /// relation and state rules.
    join: JoinState,
    absence: absence::State,
    baseline: baseline::State,
    habit: habit::State,
    dormant: dormant::State,
}

/// The rule engine: detection, reorder buffer and correlation state.
#[derive(Debug)]
pub struct Engine {
    rules: Arc<RuleSet>,
    cfg: EngineConfig,
    pending: Reorder,
    /// The current entry's hits, sorted before they join `pending`.
    entry_hits: Vec<Pending>,
    /// Per-source event time (`engine/sources.rs`).
    sources: Sources,
    /// The engine's clock (watermark): the event time of the slowest active
    /// source minus the allowed lateness; never moves back.
    clock: Option<i64>,
    applied: Option<HitKey>,
    /// Late hits per source, waiting for their own source's watermark (so
    /// a late source's events are still applied in their own order).
    late: hashbrown::HashMap<Box<str>, Reorder>,
    /// Hits of the service's own entries (no source), applied at once.
    own_hits: Vec<Pending>,
    /// Late hits not applied, by (rule id, source); bounded.
    late_drops: BTreeMap<(String, String), u64>,
    state: Vec<CorrState>,
    timers: Timers,
    stats: EngineStats,
    /// Correlation alerts reported before the watermark (`eager.rs`).
    eager: eager::Eager,
    /// Hits of eager correlations the current entry added.
    touched: Vec<(HitKey, GroupKey)>,
    /// Set by [`Engine::set_partial_history`]: the first event time seen.
    partial: Option<Option<i64>>,
    /// Explanations, when a rule has `explain` (`explained.rs`).
    explain: Option<Explainer<explained::Deferred>>,
}

impl Engine {
    pub fn new(rules: Arc<RuleSet>, cfg: EngineConfig) -> Engine {
        let state = (0..rules.correlations.len())
            .map(|_| CorrState::default())
            .collect();
        let explain = Explainer::new(
            rules.detections.iter().filter_map(|d| d.explain.as_ref()),
            ExplainConfig::default(),
        );
        Engine {
            explain,
            eager: eager::Eager::new(&rules.correlations),
            rules,
            cfg,
            pending: Reorder::default(),
            entry_hits: Vec::new(),
            sources: Sources::default(),
            clock: None,
            applied: None,
            late: hashbrown::HashMap::new(),
            own_hits: Vec::new(),
            late_drops: BTreeMap::new(),
            touched: Vec::new(),
            state,
            timers: Timers::default(),
            stats: EngineStats::default(),
            partial: None,
        }
    }

    /// Tells the engine that its input starts after the ledger's beginning
    /// (a replay of the recent window): `relation` checks whose window
    /// reaches before the first event it is given stay silent, as their
    /// relations may lie in the part not replayed.
    pub fn set_partial_history(&mut self) {
        self.partial.get_or_insert(None);
    }

    pub fn rules(&self) -> &Arc<RuleSet> {
        &self.rules
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    pub fn stats(&self) -> EngineStats {
        let mut s = self.stats.clone();
        s.pending = self.pending.len() + self.late.values().map(Reorder::len).sum::<usize>();
        s.groups = self
            .state
            .iter()
            .map(|c| {
                c.groups.len()
                    + c.absence.len()
                    + c.baseline.len()
                    + c.join.len()
                    + c.habit.len()
                    + c.dormant.len()
            })
            .sum();
        s.timers = self.timers.len();
        s.sources = self.sources.len();
        s
    }

    /// Late hits dropped since the last call, per (rule id, source), for
    /// the service to report as a `system` warning event.
    pub fn take_late_drops(&mut self) -> BTreeMap<(String, String), u64> {
        std::mem::take(&mut self.late_drops)
    }

    /// The engine's clock (watermark), once an entry was seen.
    pub fn watermark(&self) -> Option<i64> {
        self.clock
    }

    /// The explanations' counters, when a rule has `explain`.
    pub fn explain_stats(&self) -> Option<ExplainStats> {
        self.explain.as_ref().map(Explainer::stats)
    }

    /// The state the stream built (reorder buffers, sources, correlation
    /// state, timers, explanations), as JSON for a snapshot
    /// (`crate::detect::snapshot`). The rules and limits are not in it:
    /// [`Engine::restore_state`] takes it back into an engine made from the
    /// same rule set and config. Between entries only (the engine is
    /// never mid-entry when its owner calls this).
    pub fn save_state(&self) -> Result<Vec<u8>, StateError> {
        if !self.entry_hits.is_empty() || !self.own_hits.is_empty() || !self.touched.is_empty() {
            return Err(StateError::Busy);
        }
        let state = StateRef {
            pending: &self.pending,
            sources: &self.sources,
            clock: self.clock,
            applied: self.applied,
            late: self.late.iter().map(|(k, v)| (&**k, v)).collect(),
            late_drops: self.late_drops.iter().collect(),
            state: &self.state,
            timers: &self.timers,
            stats: &self.stats,
            eager: &self.eager,
            partial: self.partial,
            explain: self.explain.as_ref().map(Explainer::state),
        };
        serde_json::to_vec(&state).map_err(|e| StateError::Format(json_error(&e)))
    }

    /// Replaces this (new) engine's state with a snapshot's
    /// [`Engine::save_state`]. Refused, leaving the engine as it was, when
    /// the state does not fit the engine's rule set.
    pub fn restore_state(&mut self, bytes: &[u8]) -> Result<(), StateError> {
        let s: StateOwned =
            serde_json::from_slice(bytes).map_err(|e| StateError::Format(json_error(&e)))?;
        if s.state.len() != self.state.len()
            || s.eager.watched_len() != self.eager.watched_len()
            || s.explain.is_some() != self.explain.is_some()
        {
            return Err(StateError::Rules);
        }
        if let (Some(x), Some(saved)) = (self.explain.as_mut(), s.explain) {
            x.restore(saved)
                .map_err(|e| StateError::Format(e.to_owned()))?;
        }
        self.pending = s.pending;
        self.sources = s.sources;
        self.clock = s.clock;
        self.applied = s.applied;
        self.late = s.late.into_iter().collect();
        self.late_drops = s.late_drops.into_iter().collect();
        self.state = s.state;
        self.timers = s.timers;
        self.stats = s.stats;
        self.eager = s.eager;
        self.partial = s.partial;
        Ok(())
    }

    /// Evaluates one entry (its ledger `index`), appending alerts to `out`:
    /// standalone detection alerts at once, correlation alerts once the
    /// watermark passes the hits that complete them.
    pub fn process(&mut self, index: u64, entry: &Entry, out: &mut Vec<AlertCandidate>) {
        self.process_view(index, &EntryView::from_entry(entry), out);
    }

    /// [`Engine::process`] of an entry's view (e.g. read straight from
    /// its stored bytes with [`EntryView::from_ledger_bytes`]).
    pub fn process_view(
        &mut self,
        index: u64,
        entry: &EntryView<'_>,
        out: &mut Vec<AlertCandidate>,
    ) {
        self.stats.events += 1;
        let time = entry.time_ms;
        if let Some(first @ None) = &mut self.partial {
            *first = Some(time);
        }
        let source = source_of(entry);
        self.sources.arrive(entry.received.unix_ms());
        if let Some(name) = source {
            self.sources.observe(name, time);
        }
        self.tick();
        // How late its source delivered this entry beyond the allowed
        // lateness: behind the stream's frontier (the newest event time of
        // any source), so a batch's old events have a large delay while a
        // backfill, whose arrival is months after its events, has none;
        // within the lateness the watermark already waits for it.
        let lateness = self.cfg.allowed_lateness_ms;
        let delay = self.sources.frontier().map_or(0, |f| {
            f.saturating_sub(time).saturating_sub(lateness).max(0)
        });
        // Late: behind the clock, or behind a hit already applied (after a
        // forced release). Applied at once to the state they belong to
        // while it is retained; older ones are dropped and counted.
        let behind = self.clock.is_some_and(|c| time < c);
        let too_old = self
            .clock
            .is_some_and(|c| time < c.saturating_sub(self.cfg.late_retention_ms));
        if let Some(x) = &mut self.explain {
            x.observe(entry, time);
        }
        let rules = Arc::clone(&self.rules);
        for (di, rule) in rules.detections.iter().enumerate() {
            if !rule.detection.matches(entry) {
                continue;
            }
            self.stats.detections += 1;
            // With `explain`: alert and hits wait for the verdict.
            let deferred = rule.explain.is_some() && self.explain.is_some();
            let start = self.entry_hits.len();
            if rule.meta.standalone && !deferred {
                out.push(alert(
                    &rule.meta,
                    BTreeMap::new(),
                    time,
                    time,
                    1,
                    vec![index],
                ));
            }
            for &(ci, mi) in &rules.detection_feeds[di] {
                let corr = &rules.correlations[ci];
                let key = (time, index, ci, mi);
                let late = behind || self.applied.is_some_and(|a| key < a);
                // A source with late hits waiting keeps its own order: its
                // next hits wait behind them.
                // The service's own entries carry the SIEM's clock, not a
                // source's event time: their hits are applied at once,
                // outside the event-time order (they would otherwise fire
                // every deadline up to the wall clock).
                let own = source.is_none();
                // A rule with `explain` holds its hits for the verdict, which
                // applies them straight to their state (late or not).
                let queued =
                    !deferred && (own || late || source.is_some_and(|n| self.late.contains_key(n)));
                if late && too_old && !own {
                    self.stats.late_hits += 1;
                    self.drop_late(&corr.meta.id, source);
                    continue;
                }
                let group = corr.members[mi]
                    .group
                    .iter()
                    .map(|g| match g {
                        GroupSource::Field(f) => f.get(entry).map(|v| v.text().into()),
                        GroupSource::Inner(_) => None,
                    })
                    .collect();
                let value = corr
                    .value_field
                    .as_ref()
                    .and_then(|f| f.get(entry))
                    .map(|v| v.text().into());
                if queued {
                    if late && !own {
                        self.stats.late_hits += 1;
                    }
                    let p = Pending {
                        key,
                        group,
                        value,
                        delay,
                    };
                    match source {
                        Some(name) => match self.late.get_mut(name) {
                            Some(r) => r.push(p),
                            None => {
                                let mut r = Reorder::default();
                                r.push(p);
                                self.late.insert(name.into(), r);
                            }
                        },
                        None => self.own_hits.push(p),
                    }
                    continue;
                }
                if self.eager.watches(ci) {
                    self.eager.wait(key, &group, value.as_ref());
                    self.touched.push((key, group.clone()));
                }
                self.entry_hits.push(Pending {
                    key,
                    group,
                    value,
                    delay,
                });
            }
            if deferred {
                self.defer(di, index, entry, start, out);
            }
        }
        // In key order, so in-order events never take the heap.
        self.entry_hits.sort_unstable_by_key(|p| p.key);
        for p in self.entry_hits.drain(..) {
            self.pending.push(p);
        }
        self.release(out);
        if !self.own_hits.is_empty() {
            for p in std::mem::take(&mut self.own_hits) {
                self.apply_pending(p, out);
            }
        }
        // Every source's late hits that its own watermark passed, not only
        // this entry's: a quiet source's watermark moves on with arrival,
        // so the rest of an hourly batch must not wait for the next batch
        // (an absence deadline would pass it meanwhile).
        self.release_all_late(out);
        if !self.touched.is_empty() {
            self.look_ahead(out);
        }
    }

    /// Moves the clock to the slowest active source's event time minus the
    /// allowed lateness (never back).
    fn tick(&mut self) {
        let Some(t) = self.sources.event_time(self.cfg.source_idle_ms) else {
            return;
        };
        let c = t.saturating_sub(self.cfg.allowed_lateness_ms);
        self.clock = Some(self.clock.map_or(c, |x| x.max(c)));
    }

    /// Counts a late hit too old to apply, per rule and source.
    fn drop_late(&mut self, rule_id: &str, source: Option<&str>) {
        self.stats.late_dropped += 1;
        let source = source.unwrap_or("sealtrail");
        let key = (rule_id.to_owned(), source.to_owned());
        let key =
            if self.late_drops.len() >= MAX_LATE_DROP_KEYS && !self.late_drops.contains_key(&key) {
                ("(other rules)".to_owned(), "(other sources)".to_owned())
            } else {
                key
            };
        *self.late_drops.entry(key).or_insert(0) += 1;
    }

    /// Applies source `name`'s late hits that its own watermark passed, in
    /// their order.
    fn release_late(&mut self, name: &str, out: &mut Vec<AlertCandidate>) {
        let wm = self
            .sources
            .event_time_of(name)
            .map(|t| t.saturating_sub(self.cfg.allowed_lateness_ms));
        loop {
            let Some(r) = self.late.get_mut(name) else {
                return;
            };
            let ready = match r.first() {
                Some(k) => r.len() > self.cfg.max_pending || wm.is_none_or(|w| k.0 <= w),
                None => false,
            };
            if !ready {
                if r.len() == 0 {
                    self.late.remove(name);
                }
                return;
            }
            if let Some(p) = r.pop() {
                self.apply_late(p, out);
            }
        }
    }

    /// Applies the first late hit of source `name`.
    fn pop_late(&mut self, name: &str, out: &mut Vec<AlertCandidate>) {
        let Some(r) = self.late.get_mut(name) else {
            return;
        };
        let p = r.pop();
        if r.len() == 0 {
            self.late.remove(name);
        }
        if let Some(p) = p {
            self.apply_late(p, out);
        }
    }

    /// [`Engine::release_late`] of every source.
    fn release_all_late(&mut self, out: &mut Vec<AlertCandidate>) {
        if self.late.is_empty() {
            return;
        }
        let mut names: Vec<Box<str>> = self.late.keys().cloned().collect();
        names.sort();
        for n in names {
            self.release_late(&n, out);
        }
    }

    /// Applies a late hit straight to its correlation's state; what it
    /// fires is marked late.
    fn apply_late(&mut self, p: Pending, out: &mut Vec<AlertCandidate>) {
        self.stats.late_applied += 1;
        let start = out.len();
        self.apply_pending(p, out);
        for a in out.iter_mut().skip(start) {
            a.late = true;
        }
    }

    /// [`Engine::process`] without alerts: for rebuilding state from the
    /// ledger's recent window.
    pub fn replay(&mut self, index: u64, entry: &Entry) {
        self.replay_view(index, &EntryView::from_entry(entry));
    }

    /// [`Engine::replay`] of an entry's view.
    pub fn replay_view(&mut self, index: u64, entry: &EntryView<'_>) {
        let mut sink = Vec::new();
        self.process_view(index, entry, &mut sink);
    }

    /// Moves the arrival clock to `now_ms` (the SIEM's time now, on the
    /// clock of the entries' `received`; the service calls this on a timer
    /// so alerts are not held back while no events arrive): quiet sources
    /// move on with it, idle ones stop holding the clock back, and what the
    /// new watermark passes is applied and expired.
    pub fn advance(&mut self, now_ms: i64, out: &mut Vec<AlertCandidate>) {
        self.sources.arrive(now_ms);
        self.tick();
        self.release(out);
        self.release_all_late(out);
        self.expire_all();
    }

    /// Applies every waiting hit (end of a replay or of a test input).
    /// Deadlines before a hit fire first; later ones stay: the end of the
    /// input says nothing about the time after it.
    pub fn flush(&mut self, out: &mut Vec<AlertCandidate>) {
        // On-time and late hits merged in key order.
        loop {
            let late = self
                .late
                .iter()
                .filter_map(|(n, r)| r.first().map(|k| (k, n.clone())))
                .min();
            match (self.pending.first(), late) {
                (Some(k), Some((l, name))) if l < k => self.pop_late(&name, out),
                (None, Some((_, name))) => self.pop_late(&name, out),
                (Some(_), _) => {
                    if let Some(p) = self.pending.pop() {
                        self.fire_timers(p.key.0, out);
                        self.apply(p, out);
                    }
                }
                (None, None) => break,
            }
        }
        // The input is complete: no fact can still come.
        while self.judge_due(None, out) {}
        self.eager.passed(None);
    }

    /// Fires every deadline before `t`, earliest first.
    /// Explanation verdicts due before `t` take their place in that order.
    fn fire_timers(&mut self, t: i64, out: &mut Vec<AlertCandidate>) {
        loop {
            let verdict = self.explain.as_ref().and_then(Explainer::next_deadline);
            let verdict = verdict.filter(|&d| d < t);
            while let Some((id, key)) = self.timers.pop_before(verdict.unwrap_or(t)) {
                self.fire(id, key, out);
            }
            if verdict.is_none() || !self.judge_due(Some(t), out) {
                break;
            }
        }
    }

    fn fire(&mut self, id: TimerId, key: GroupKey, out: &mut Vec<AlertCandidate>) {
        let rules = Arc::clone(&self.rules);
        let ci = id.1;
        let corr = &rules.correlations[ci];
        let st = &mut self.state[ci];
        let fired = match corr.kind {
            CorrelationType::Absence => st.absence.fire(corr, id, &key, &mut self.timers),
            CorrelationType::Baseline => st.baseline.fire(corr, id, &key, &mut self.timers),
            _ => close_window(corr, st, id, &key),
        };
        if let Some(f) = fired {
            self.emit_fired(ci, &key, f, out);
        }
    }

    /// Reports a firing of correlation `ci` for `key` as its alert.
    fn emit_fired(&mut self, ci: usize, key: &GroupKey, f: Fired, out: &mut Vec<AlertCandidate>) {
        let corr = &self.rules.correlations[ci];
        let a = alert(
            &corr.meta,
            group_map(corr, key),
            f.first,
            f.last,
            f.count,
            f.events,
        );
        self.emit(ci, key, a, f.first, f.last, out);
    }

    fn release(&mut self, out: &mut Vec<AlertCandidate>) {
        let Some(watermark) = self.clock else { return };
        loop {
            let over = self.pending.len() > self.cfg.max_pending;
            match self.pending.first() {
                Some(k) if k.0 <= watermark || over => {}
                _ => break,
            }
            if let Some(p) = self.pending.pop() {
                if over && p.key.0 > watermark {
                    self.stats.forced_hits += 1;
                }
                self.fire_timers(p.key.0, out);
                self.apply(p, out);
            }
        }
        // Never before an applied hit: a forced one may be past the watermark.
        let applied = self.applied.map_or(watermark, |a| a.0);
        self.fire_timers(watermark.max(applied), out);
        self.eager.passed(Some(watermark));
    }

    /// Expires groups that no hit at or after the watermark can extend.
    /// State is kept `late_retention_ms` longer for late hits.
    fn expire_all(&mut self) {
        let Some(clock) = self.clock else { return };
        let now = clock.saturating_sub(self.cfg.late_retention_ms);
        for ci in 0..self.state.len() {
            let span = self.rules.correlations[ci].timespan_ms;
            expire(
                &mut self.state[ci],
                now - span,
                &mut self.timers,
                &mut self.stats,
            );
            self.state[ci].join.expire(now, &mut self.stats);
            self.state[ci].habit.expire(now - span, &mut self.stats);
            self.state[ci].dormant.expire(now - span, &mut self.stats);
        }
    }

    fn apply(&mut self, p: Pending, out: &mut Vec<AlertCandidate>) {
        self.applied = Some(p.key);
        self.eager.applied(p.key, &p.group);
        self.apply_pending(p, out);
    }

    /// Applies a detection rule's hit to the correlation it feeds (no
    /// ordering bookkeeping: [`Engine::apply`] does that for on-time hits).
    fn apply_pending(&mut self, p: Pending, out: &mut Vec<AlertCandidate>) {
        let (time, index, ci, mi) = p.key;
        let hit = Hit {
            time,
            first_time: time,
            member: mi,
            events: Events::One(index),
            value: p.value,
            delay: p.delay,
        };
        self.apply_hit(ci, p.group, hit, out);
    }

    fn apply_hit(&mut self, ci: usize, key: GroupKey, hit: Hit, out: &mut Vec<AlertCandidate>) {
        let rules = Arc::clone(&self.rules);
        let corr = &rules.correlations[ci];
        let t = hit.time;
        if let Some(join) = &corr.join {
            let jh = JoinHit {
                time: t,
                member: hit.member,
                index: hit.events.as_slice().first().copied().unwrap_or_default(),
                value: hit.value.as_deref(),
            };
            let since = self.partial.flatten();
            let st = &mut self.state[ci].join;
            if let Some(f) = st.apply(join, &key, &jh, since, &self.cfg, &mut self.stats) {
                let f = Fired {
                    first: f.first_ms,
                    last: t,
                    count: f.count,
                    events: f.events,
                };
                self.emit_fired(ci, &key, f, out);
            }
            return;
        }
        if let Some(h) = &corr.habit {
            let index = hit.events.as_slice().first().copied().unwrap_or_default();
            let max = self.cfg.max_groups_per_rule;
            let st = &mut self.state[ci].habit;
            if let Some(f) = st.apply(h, &key, t, hit.member, index, max, &mut self.stats) {
                self.emit_fired(ci, &key, f, out);
            }
            return;
        }
        if let Some(d) = &corr.dormant {
            let dh = dormant::DormantHit {
                time: t,
                member: hit.member,
                index: hit.events.as_slice().first().copied().unwrap_or_default(),
                since: hit.value.as_deref(),
            };
            let max = self.cfg.max_groups_per_rule;
            let st = &mut self.state[ci].dormant;
            if let Some(f) = st.apply(d, &key, &dh, max, &mut self.stats) {
                self.emit_fired(ci, &key, f, out);
            }
            return;
        }
        if corr.first_seen.is_some() && corr.value_field.is_some() && hit.value.is_none() {
            // first_seen of a field the event lacks: nothing to remember.
            return;
        }
        let st = &mut self.state[ci];
        let last_event = hit.events.as_slice().last().copied();
        match corr.kind {
            CorrelationType::Absence => {
                let cap = (self.cfg.max_groups_per_rule, self.cfg.max_hits_per_group);
                let timers = &mut self.timers;
                let h = absence::AbsenceHit {
                    time: t,
                    event: last_event,
                    delay: hit.delay,
                };
                st.absence
                    .hit(corr, ci, key, &h, cap, timers, &mut self.stats);
                return;
            }
            CorrelationType::Baseline => {
                let first_event = hit.events.as_slice();
                let max_groups = self.cfg.max_groups_per_rule;
                let timers = &mut self.timers;
                st.baseline.hit(
                    corr,
                    ci,
                    key,
                    t,
                    first_event,
                    hit.value.as_ref(),
                    max_groups,
                    timers,
                    &mut self.stats,
                );
                return;
            }
            _ => {}
        }
        let deferred = corr.condition.bounded_above();
        if deferred
            && let Some(g) = st.groups.get(&key)
            && let Some(id) = g.timer
            && t > id.0
        {
            // Its window closed (normally fired by its timer first).
            self.timers.cancel(id);
            if let Some(f) = close_window(corr, st, id, &key) {
                self.emit_fired(ci, &key, f, out);
            }
        }
        let st = &mut self.state[ci];
        // Kept `late_retention_ms` longer for late hits of the group.
        let before = t - corr.timespan_ms - self.cfg.late_retention_ms;
        expire(st, before, &mut self.timers, &mut self.stats);
        let touched = st
            .groups
            .hit(&key, t, self.cfg.max_groups_per_rule, Group::default);
        if let Some(evicted) = touched.evicted {
            if let Some(id) = evicted.timer {
                self.timers.cancel(id);
            }
            self.stats.evicted_groups += 1;
        }
        let group = touched.value;
        let previous = match touched.previous {
            Some(p) => p,
            None => {
                group.first = t;
                if deferred {
                    // The window is [first hit, first hit + timespan].
                    group.timer = Some(self.timers.schedule(t + corr.timespan_ms, ci, key.clone()));
                }
                t
            }
        };
        group.last = group.last.max(t);
        if let Some(fs) = &corr.first_seen {
            let fired = first_seen(
                fs,
                corr.timespan_ms,
                self.cfg.max_hits_per_group,
                group,
                previous,
                &hit,
                &mut self.stats,
            );
            if fired {
                let mut group_map = group_map(corr, &key);
                if let (Some(f), Some(v)) = (fs.field.as_ref(), hit.value.as_ref()) {
                    group_map.insert(f.clone(), v.to_string());
                }
                let events = hit
                    .events
                    .as_slice()
                    .iter()
                    .take(MAX_ALERT_EVENTS)
                    .copied()
                    .collect();
                let a = alert(&corr.meta, group_map, hit.first_time, t, 1, events);
                self.emit(ci, &key, a, hit.first_time, t, out);
            }
            return;
        }
        if deferred {
            // Judged when the window closes; once past the upper bound it
            // cannot hold again (every measure only grows in a window).
            if group.spoiled {
                return;
            }
            add_hit(group, hit, self.cfg.max_hits_per_group, &mut self.stats);
            if corr.condition.exceeded(measured(corr, group).0) {
                group.spoiled = true;
                group.hits.clear();
                group.values.clear();
            }
            return;
        }
        if group.hits.back().is_some_and(|b| t < b.time) {
            // Out of order for this group (a late hit): into its place in
            // time, then the first window through it that holds fires.
            let fired = insert_late(
                corr,
                group,
                hit,
                self.cfg.max_hits_per_group,
                &mut self.stats,
            );
            let empty = group.hits.is_empty();
            if let Some(f) = fired {
                if empty {
                    st.groups.remove(&key);
                }
                self.emit_fired(ci, &key, f, out);
            }
            return;
        }
        // Slide the window: keep hits with time >= t - timespan.
        while group
            .hits
            .front()
            .is_some_and(|h| h.time < t - corr.timespan_ms)
        {
            pop_front(group);
        }
        add_hit(group, hit, self.cfg.max_hits_per_group, &mut self.stats);
        let Some(count) = measure(corr, group) else {
            return;
        };
        let (first, events) = window_events(group, t);
        // Fired: the window starts afresh.
        st.groups.remove(&key);
        let a = alert(&corr.meta, group_map(corr, &key), first, t, count, events);
        self.emit(ci, &key, a, first, t, out);
    }

    /// Feeds a firing to the correlations chained on it and reports it when
    /// the rule alerts on its own.
    fn emit(
        &mut self,
        ci: usize,
        key: &GroupKey,
        a: AlertCandidate,
        first: i64,
        t: i64,
        out: &mut Vec<AlertCandidate>,
    ) {
        let rules = Arc::clone(&self.rules);
        let corr = &rules.correlations[ci];
        for &(cj, mj) in &rules.correlation_feeds[ci] {
            let outer = &rules.correlations[cj].members[mj];
            let gk: GroupKey = outer
                .group
                .iter()
                .map(|g| match g {
                    GroupSource::Inner(k) => key.get(*k).cloned().flatten(),
                    GroupSource::Field(_) => None,
                })
                .collect();
            let chained = Hit {
                time: t,
                first_time: first,
                member: mj,
                events: Events::Many(a.event_indices.clone().into_boxed_slice()),
                value: None,
                delay: 0,
            };
            self.apply_hit(cj, gk, chained, out);
        }
        if corr.meta.standalone && !self.eager.claim(ci, key, &a.event_indices) {
            let mut a = a;
            if corr.explain_fed {
                a.explanations_tried = explained::tried(&rules, ci);
            }
            out.push(a);
        }
    }
}

/// The alert's group: group-by field -> value (absent values left out).
fn group_map(corr: &CorrelationRule, key: &GroupKey) -> BTreeMap<String, String> {
    corr.group_by
        .iter()
        .zip(key.iter())
        .filter_map(|(n, v)| v.as_ref().map(|v| (n.clone(), v.to_string())))
        .collect()
}

/// Applies a first_seen hit to its group (already touched: `last` is the
/// hit's time, `previous` the group's last hit before it, or the hit's time
/// for a new group); whether it fires.
fn first_seen(
    fs: &FirstSeen,
    history_ms: i64,
    cap: usize,
    group: &mut Group,
    previous: i64,
    hit: &Hit,
    stats: &mut EngineStats,
) -> bool {
    let t = hit.time;
    let learnt = t - group.first >= fs.learning_ms;
    let Some(v) = &hit.value else {
        // Dormant mode: the group must have had an earlier hit.
        return learnt
            && hit.member < fs.checked
            && previous < t
            && fs.gap_ms.is_some_and(|gap| t - previous >= gap);
    };
    let known = group
        .seen
        .get(v)
        .is_some_and(|&last| t - last <= history_ms);
    group.seen.insert(v.clone(), t);
    if group.seen.len() > cap {
        group.seen.retain(|_, last| t - *last <= history_ms);
    }
    while group.seen.len() > cap.max(1) {
        let oldest = group
            .seen
            .iter()
            .min_by(|a, b| (a.1, a.0).cmp(&(b.1, b.0)))
            .map(|(k, _)| k.clone());
        match oldest {
            Some(k) => {
                group.seen.remove(&k);
                stats.evicted_values += 1;
            }
            None => break,
        }
    }
    !known && learnt && hit.member < fs.checked
}

/// The engine-side result of a firing extension or closing window.
pub(crate) struct Fired {
    pub first: i64,
    pub last: i64,
    pub count: u64,
    pub events: Vec<u64>,
}

/// Inserts an out-of-order hit in time order and checks the windows that
/// end at it or after it, earliest first: the first whose condition holds
/// fires, and its hits and every earlier one are consumed (as the in-order
/// evaluation clears a group when it fires).
fn insert_late(
    corr: &CorrelationRule,
    group: &mut Group,
    hit: Hit,
    cap: usize,
    stats: &mut EngineStats,
) -> Option<Fired> {
    let t = hit.time;
    if let Some(v) = &hit.value {
        *group.values.entry(v.clone()).or_insert(0) += 1;
    }
    let pos = group.hits.partition_point(|h| h.time <= t);
    group.hits.insert(pos, hit);
    if group.hits.len() > cap {
        pop_front(group);
        stats.dropped_hits += 1;
    }
    let from = group.hits.partition_point(|h| h.time < t);
    for end in from..group.hits.len() {
        let te = group.hits[end].time;
        let lo = group
            .hits
            .partition_point(|h| h.time < te - corr.timespan_ms);
        let window: Vec<&Hit> = group.hits.range(lo..=end).collect();
        let (measured, reported) = measured_hits(corr, &window);
        if !corr.condition.holds(measured) {
            continue;
        }
        let first = window.iter().map(|h| h.first_time).min().unwrap_or(te);
        let events = window
            .iter()
            .flat_map(|h| h.events.as_slice())
            .take(MAX_ALERT_EVENTS)
            .copied()
            .collect();
        for _ in 0..=end {
            pop_front(group);
        }
        return Some(Fired {
            first,
            last: te,
            count: reported,
            events,
        });
    }
    None
}

/// [`measured`] over some of a group's hits (a window around a late hit).
fn measured_hits(corr: &CorrelationRule, hits: &[&Hit]) -> (u64, u64) {
    let n = hits.len() as u64;
    match corr.kind {
        CorrelationType::EventCount => (n, n),
        CorrelationType::ValueCount => {
            let mut values: Vec<&Value> = hits.iter().filter_map(|h| h.value.as_ref()).collect();
            values.sort_unstable();
            values.dedup();
            (values.len() as u64, values.len() as u64)
        }
        CorrelationType::Temporal => {
            let mut seen = vec![false; corr.members.len()];
            for h in hits {
                seen[h.member] = true;
            }
            (seen.iter().filter(|s| **s).count() as u64, n)
        }
        CorrelationType::TemporalOrdered => {
            let mut k = 0;
            for h in hits {
                if h.member == k {
                    k += 1;
                    if k == corr.members.len() {
                        break;
                    }
                }
            }
            (k as u64, n)
        }
        CorrelationType::FirstSeen
        | CorrelationType::Absence
        | CorrelationType::Baseline
        | CorrelationType::Relation
        | CorrelationType::State
        | CorrelationType::Habit
        | CorrelationType::Dormant => (0, 0),
    }
}

fn add_hit(group: &mut Group, hit: Hit, cap: usize, stats: &mut EngineStats) {
    if let Some(v) = &hit.value {
        *group.values.entry(v.clone()).or_insert(0) += 1;
    }
    group.hits.push_back(hit);
    if group.hits.len() > cap {
        pop_front(group);
        stats.dropped_hits += 1;
    }
}

/// The window's first time (`t` when empty) and its first events.
fn window_events(group: &Group, t: i64) -> (i64, Vec<u64>) {
    let first = group.hits.iter().map(|h| h.first_time).min().unwrap_or(t);
    let mut events = Vec::new();
    'outer: for h in &group.hits {
        for &i in h.events.as_slice() {
            if events.len() >= MAX_ALERT_EVENTS {
                break 'outer;
            }
            events.push(i);
        }
    }
    (first, events)
}

/// Closes the window of an upper-bounded correlation's group (its timer
/// `id` fired): the group is removed, and fires when its count over the
/// whole window holds.
fn close_window(
    corr: &CorrelationRule,
    st: &mut CorrState,
    id: TimerId,
    key: &GroupKey,
) -> Option<Fired> {
    let g = st.groups.get(key)?;
    if g.timer != Some(id) {
        return None; // a stale timer of an earlier window
    }
    let g = st.groups.remove(key)?;
    if g.spoiled {
        return None;
    }
    let count = measure(corr, &g)?;
    let (first, events) = window_events(&g, g.last);
    Some(Fired {
        first,
        last: g.last,
        count,
        events,
    })
}

fn pop_front(group: &mut Group) {
    if let Some(h) = group.hits.pop_front()
        && let Some(v) = h.value
        && let Some(n) = group.values.get_mut(&v)
    {
        *n -= 1;
        if *n == 0 {
            group.values.remove(&v);
        }
    }
}

/// Removes groups whose newest hit is older than `before` (a group whose
/// window is still open keeps its deadline, which fires first).
fn expire(st: &mut CorrState, before: i64, timers: &mut Timers, stats: &mut EngineStats) {
    while let Some((_, g)) = st.groups.pop_idle_before(before) {
        if let Some(id) = g.timer {
            timers.cancel(id);
        }
        stats.expired_groups += 1;
    }
}

/// The count the condition is checked against, when it holds.
fn measure(corr: &CorrelationRule, group: &Group) -> Option<u64> {
    if matches!(
        corr.kind,
        CorrelationType::FirstSeen
            | CorrelationType::Absence
            | CorrelationType::Baseline
            | CorrelationType::Relation
            | CorrelationType::State
            | CorrelationType::Habit
            | CorrelationType::Dormant
    ) {
        return None;
    }
    let (measured, reported) = measured(corr, group);
    corr.condition.holds(measured).then_some(reported)
}

/// (the count the condition is checked against, the count reported).
fn measured(corr: &CorrelationRule, group: &Group) -> (u64, u64) {
    let hits = group.hits.len() as u64;
    match corr.kind {
        CorrelationType::EventCount => (hits, hits),
        CorrelationType::ValueCount => {
            let n = group.values.len() as u64;
            (n, n)
        }
        CorrelationType::Temporal => {
            let mut seen = vec![false; corr.members.len()];
            for h in &group.hits {
                seen[h.member] = true;
            }
            (seen.iter().filter(|s| **s).count() as u64, hits)
        }
        // Applied by their own logic, never measured.
        CorrelationType::FirstSeen
        | CorrelationType::Absence
        | CorrelationType::Baseline
        | CorrelationType::Relation
        | CorrelationType::State
        | CorrelationType::Habit
        | CorrelationType::Dormant => (0, 0),
        CorrelationType::TemporalOrdered => {
            // Longest prefix of the member list found in order (greedy
            // earliest match is optimal for a fixed sequence).
            let mut k = 0;
            for h in &group.hits {
                if h.member == k {
                    k += 1;
                    if k == corr.members.len() {
                        break;
                    }
                }
            }
            (k as u64, hits)
        }
    }
}

fn alert(
    meta: &RuleMeta,
    group: BTreeMap<String, String>,
    first_ms: i64,
    last_ms: i64,
    count: u64,
    event_indices: Vec<u64>,
) -> AlertCandidate {
    // Invariant: every time here is `Timestamp::unix_ms` of an event's
    // valid timestamp (1970..=9999), which converts back without error.
    #[allow(clippy::expect_used)]
    let ts = |ms| Timestamp::from_unix_ms(ms).expect("event times are in range");
    AlertCandidate {
        rule_id: meta.id.clone(),
        title: meta.title.clone(),
        level: meta.level,
        group,
        first_time: ts(first_ms),
        last_time: ts(last_ms),
        count,
        event_indices,
        late: false,
        explanations_tried: Vec::new(),
    }
}

/// The source whose event time an entry belongs to: `source.system`, else
/// the listener kind. `None` for the service's own entries (alerts,
/// incident updates, silence reports, self-audit), whose times are the
/// SIEM's wall clock, not a source's.
fn source_of<'a>(e: &'a EntryView<'_>) -> Option<&'a str> {
    let own = *e.via.kind == *"sealtrail"
        || (e.event.category == crate::event::Category::System && e.event.source.is_none());
    if own {
        return None;
    }
    Some(e.event.source.as_ref().map_or(&*e.via.kind, |s| &*s.system))
}

/// Most (rule, source) pairs of dropped late hits kept between reports.
const MAX_LATE_DROP_KEYS: usize = 1_024;

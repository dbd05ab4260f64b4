//! Source silence: notices when a known `source.system` stops sending for
//! longer than it normally does at that hour of the week, and says so with a
//! `system/source_silent` event ([`silent_event`]). Pure logic: time is passed
//! in, nothing here reads a clock or does I/O.
//!
//! # What is tracked
//!
//! For each source (at most [`SilenceConfig::max_sources`]; the one heard
//! longest ago, by wall clock, is evicted first):
//! - when it was last heard, in **event time** (the newest `time` of its
//!   events, so a backfill or replay is judged by when things happened) and
//!   in **wall-clock time** (when the SIEM received it, so a live outage is
//!   noticed even when nothing else arrives);
//! - its activity by **hour of the week** (168 buckets, Monday 00:00 first,
//!   in the practice's local time given by [`SilenceConfig::utc_offset_minutes`]):
//!   a decayed count of events per bucket and a decayed count of hours of that
//!   bucket the source has been watched. The rate of a bucket is
//!   `count / hours`; both decay by half every
//!   [`SilenceConfig::half_life_weeks`] weeks, so old habits fade. Hours are
//!   counted in event time, from the source's first event to its newest.
//!
//! # The rule
//!
//! A bucket whose rate is below [`SilenceConfig::min_rate_per_hour`] is
//! *normally quiet*. Over the silent stretch (from the last time heard to
//! now) only the hours of buckets that are not normally quiet count:
//! `active` is the time spent in such hours and `expected` is the number of
//! events the source normally sends in them (`sum of rate x time`). The source
//! is silent when it has at least [`SilenceConfig::min_weeks`] of history and
//!
//! ```text
//! active >= floor   and   expected >= factor
//! ```
//!
//! At a constant rate this is the issue's `gap > max(floor, factor x
//! expected gap)`; across hours it weighs each hour by its own habit, so the
//! nights and weekends of a business-hours system add nothing, and Monday's
//! first event is not late because Friday evening was long ago. With the
//! defaults (`factor` 6) a source that normally sends at a steady rate is
//! reported after about six missed events, when the chance of that gap by
//! luck is e^-6, about 0.25%.
//!
//! [`SilenceModel::check`] judges each source twice:
//! - **wall clock**: from its last wall-clock time heard to `now_wall_ms`;
//! - **event time**: from its newest event time to the newest event time of
//!   the *other* sources (capped at `now_event_ms` when given), so a replayed
//!   day of logs shows a source that stopped mid-day while others went on.
//!
//! A silence is reported once (wall clock first when both fire) and
//! re-armed when the source is heard again.
//!
//! Event times more than [`SilenceConfig::max_skew`] after the wall-clock
//! time they were received at are taken as that wall-clock time plus the skew,
//! so a source with a clock years ahead cannot make every other source look
//! silent. Events more than a week older than the source's newest do not
//! change its statistics (they still count as being heard).
//!
//! Known limits: a source that uploads in batches (hourly, say) looks silent
//! by wall clock between batches if its events are dense; raise `factor` or
//! `floor` for such deployments. Changing `utc_offset_minutes` on a persisted
//! model shifts the learned week by that offset until old habits decay.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::event::limits::MAX_SHORT_CHARS;
use crate::event::{Category, Event, Outcome, Source, Timestamp};

/// Buckets of the week, one per hour.
pub const HOURS_PER_WEEK: usize = 168;
const HOUR_MS: i64 = 3_600_000;
const WEEK_MS: i64 = HOUR_MS * HOURS_PER_WEEK as i64;
/// Version of the persisted state's JSON layout.
pub const STATE_VERSION: u32 = 1;
/// Upper bound on [`SilenceConfig::max_sources`].
pub const MAX_SOURCES_LIMIT: usize = 100_000;

/// Settings of the silence model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SilenceConfig {
    /// Shortest silence ever reported, counted in hours that are not
    /// normally quiet. Seconds, or text such as `"15m"`, `"90s"`, `"2h"`.
    #[serde(with = "duration_text")]
    pub floor: Duration,
    /// Events normally expected in the silent stretch before it is reported.
    pub factor: f64,
    /// Weeks of history (first to newest event) needed before a source can be
    /// reported silent.
    pub min_weeks: f64,
    /// A bucket with fewer events per hour than this is normally quiet.
    pub min_rate_per_hour: f64,
    /// Weeks after which an hour's habit counts half as much.
    pub half_life_weeks: f64,
    /// Offset of the practice's local time from UTC, in minutes, so that
    /// "Monday 08:00" is the practice's.
    pub utc_offset_minutes: i32,
    /// Most sources tracked; the one heard longest ago is evicted first.
    pub max_sources: usize,
    /// How far an event time may lie after its wall-clock arrival.
    #[serde(with = "duration_text")]
    pub max_skew: Duration,
    /// How often the service checks for silent sources (and saves the model).
    #[serde(with = "duration_text")]
    pub check_interval: Duration,
}

impl Default for SilenceConfig {
    fn default() -> Self {
        Self {
            floor: Duration::from_secs(15 * 60),
            factor: 6.0,
            min_weeks: 1.0,
            min_rate_per_hour: 1.0,
            half_life_weeks: 4.0,
            utc_offset_minutes: 0,
            max_sources: 1_000,
            max_skew: Duration::from_secs(5 * 60),
            check_interval: Duration::from_secs(30),
        }
    }
}

/// Why a configuration or a persisted state is not usable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SilenceError {
    #[error("silence config `{field}` {reason}")]
    Config { field: &'static str, reason: String },
    #[error("silence state {0}")]
    State(String),
}

impl SilenceConfig {
    /// Checks ranges; every number must be finite.
    pub fn validate(&self) -> Result<(), SilenceError> {
        let positive = |field: &'static str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(SilenceError::Config {
                    field,
                    reason: format!("must be a positive number, not {v}"),
                })
            }
        };
        if self.check_interval.is_zero() {
            return Err(SilenceError::Config {
                field: "check_interval",
                reason: "must be longer than zero".into(),
            });
        }
        positive("factor", self.factor)?;
        positive("min_rate_per_hour", self.min_rate_per_hour)?;
        positive("half_life_weeks", self.half_life_weeks)?;
        if !(self.min_weeks.is_finite() && self.min_weeks >= 0.0) {
            return Err(SilenceError::Config {
                field: "min_weeks",
                reason: format!("must be a number of at least 0, not {}", self.min_weeks),
            });
        }
        if self.utc_offset_minutes.abs() > 18 * 60 {
            return Err(SilenceError::Config {
                field: "utc_offset_minutes",
                reason: "must be between -1080 and 1080".to_owned(),
            });
        }
        if !(1..=MAX_SOURCES_LIMIT).contains(&self.max_sources) {
            return Err(SilenceError::Config {
                field: "max_sources",
                reason: format!("must be between 1 and {MAX_SOURCES_LIMIT}"),
            });
        }
        Ok(())
    }

    fn floor_ms(&self) -> i64 {
        i64::try_from(self.floor.as_millis()).unwrap_or(i64::MAX)
    }

    fn skew_ms(&self) -> i64 {
        i64::try_from(self.max_skew.as_millis()).unwrap_or(i64::MAX)
    }

    /// Weekly decay factor, in (0, 1).
    fn decay(&self) -> f64 {
        0.5f64.powf(1.0 / self.half_life_weeks)
    }

    /// Absolute local hour index of a unix time in milliseconds.
    fn hour(&self, ms: i64) -> i64 {
        ms.saturating_add(i64::from(self.utc_offset_minutes) * 60_000)
            .div_euclid(HOUR_MS)
    }

    /// Start (unix ms) of the local hour with index `hour`.
    fn hour_start_ms(&self, hour: i64) -> i64 {
        hour.saturating_mul(HOUR_MS)
            .saturating_sub(i64::from(self.utc_offset_minutes) * 60_000)
    }
}

/// The bucket (0 = Monday 00:00-01:00) of an absolute hour index. The unix
/// epoch was a Thursday, 72 hours after a Monday 00:00.
fn bucket(hour: i64) -> usize {
    // rem_euclid by 168 is in 0..168, so the cast is lossless.
    (hour + 72).rem_euclid(HOURS_PER_WEEK as i64) as usize
}

/// Which clock a silence was judged by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    WallClock,
    EventTime,
}

impl Basis {
    pub fn as_str(self) -> &'static str {
        match self {
            Basis::WallClock => "wall_clock",
            Basis::EventTime => "event_time",
        }
    }
}

/// A source that has just become silent.
#[derive(Debug, Clone, PartialEq)]
pub struct SilentSource {
    pub source: String,
    /// Unix ms of the last time heard, on the clock of `basis`.
    pub last_heard_ms: i64,
    /// From `last_heard_ms` to the time it was judged at.
    pub silent_for: Duration,
    /// The mean gap between events normally expected over the silent
    /// stretch's hours that are not normally quiet.
    pub expected_gap: Duration,
    pub basis: Basis,
}

/// What is known of one source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceState {
    last_event_ms: i64,
    last_wall_ms: i64,
    /// Local hour index of the first event.
    first_hour: i64,
    /// Local hour index of the newest event: the hour in progress, whose
    /// events are in `pending` until it completes.
    clock_hour: i64,
    /// Events in `clock_hour` so far.
    pending: f64,
    /// Decayed events per bucket over completed hours; `HOURS_PER_WEEK` long.
    counts: Vec<f64>,
    /// Decayed completed hours watched per bucket; `HOURS_PER_WEEK` long.
    exposure: Vec<f64>,
    /// Reported silent and not heard since.
    silent: bool,
}

impl SourceState {
    fn new(config: &SilenceConfig, event_ms: i64, wall_ms: i64) -> Self {
        let hour = config.hour(event_ms);
        Self {
            last_event_ms: event_ms,
            last_wall_ms: wall_ms,
            first_hour: hour,
            clock_hour: hour,
            pending: 0.0,
            counts: vec![0.0; HOURS_PER_WEEK],
            exposure: vec![0.0; HOURS_PER_WEEK],
            silent: false,
        }
    }

    /// Completes the hours from `clock_hour` up to (not including)
    /// `to_hour`: each is counted as watched, `pending` joins its bucket, and
    /// each bucket decays once per week that passes it. Only completed hours
    /// feed the rates, so a half-finished hour does not look quiet.
    fn advance(&mut self, to_hour: i64, decay: f64) {
        let n = to_hour - self.clock_hour;
        if n <= 0 {
            return;
        }
        let week = HOURS_PER_WEEK as i64;
        let (full, rem) = (n / week, n % week);
        let mut passes = [full; HOURS_PER_WEEK];
        for j in 0..rem {
            passes[bucket(self.clock_hour + j)] += 1;
        }
        for (b, &k) in passes.iter().enumerate() {
            if k == 0 {
                continue;
            }
            // At most ~1.5 million weeks fit in the timestamp range, so
            // `k as f64` is exact.
            let dk = decay.powf(k as f64);
            // exposure after k passes of x -> x * d + 1.
            self.exposure[b] = self.exposure[b] * dk + (1.0 - dk) / (1.0 - decay);
            self.counts[b] *= dk;
        }
        // The completed `clock_hour` was the first of its bucket's passes.
        let first = bucket(self.clock_hour);
        let later_passes = passes[first].saturating_sub(1);
        self.counts[first] += self.pending * decay.powf(later_passes as f64);
        self.pending = 0.0;
        self.clock_hour = to_hour;
    }

    fn rate(&self, b: usize) -> f64 {
        let hours = self.exposure[b];
        if hours > 0.0 {
            self.counts[b] / hours
        } else {
            0.0
        }
    }

    fn history_weeks(&self) -> f64 {
        (self.clock_hour - self.first_hour) as f64 / HOURS_PER_WEEK as f64
    }
}

/// Learned per-source habits and last-heard times. Serialize it to persist
/// the state (JSON, with a `version`); deserializing checks its shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ModelRepr")]
pub struct SilenceModel {
    version: u32,
    config: SilenceConfig,
    sources: BTreeMap<String, SourceState>,
}

/// The persisted shape, checked before it becomes a [`SilenceModel`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelRepr {
    version: u32,
    config: SilenceConfig,
    sources: BTreeMap<String, SourceState>,
}

impl TryFrom<ModelRepr> for SilenceModel {
    type Error = SilenceError;
    fn try_from(repr: ModelRepr) -> Result<Self, SilenceError> {
        if repr.version != STATE_VERSION {
            return Err(SilenceError::State(format!(
                "version {} is not supported (expected {STATE_VERSION})",
                repr.version
            )));
        }
        repr.config.validate()?;
        if repr.sources.len() > repr.config.max_sources {
            return Err(SilenceError::State(format!(
                "has {} sources, more than max_sources {}",
                repr.sources.len(),
                repr.config.max_sources
            )));
        }
        for (name, s) in &repr.sources {
            let ok_name = !name.is_empty() && name.chars().count() <= MAX_SHORT_CHARS;
            let ok_vec = |v: &[f64]| {
                v.len() == HOURS_PER_WEEK && v.iter().all(|x| x.is_finite() && *x >= 0.0)
            };
            let well_formed = ok_name
                && ok_vec(&s.counts)
                && ok_vec(&s.exposure)
                && s.pending.is_finite()
                && s.pending >= 0.0
                && s.first_hour <= s.clock_hour;
            if !well_formed {
                return Err(SilenceError::State(format!(
                    "source `{}` is malformed",
                    name.chars().take(64).collect::<String>()
                )));
            }
        }
        Ok(Self {
            version: repr.version,
            config: repr.config,
            sources: repr.sources,
        })
    }
}

impl SilenceModel {
    pub fn new(config: SilenceConfig) -> Result<Self, SilenceError> {
        config.validate()?;
        Ok(Self {
            version: STATE_VERSION,
            config,
            sources: BTreeMap::new(),
        })
    }

    pub fn config(&self) -> &SilenceConfig {
        &self.config
    }

    /// Replaces the settings (e.g. after restoring a persisted state).
    /// Lowering `max_sources` evicts the sources heard longest ago.
    pub fn set_config(&mut self, config: SilenceConfig) -> Result<(), SilenceError> {
        config.validate()?;
        self.config = config;
        while self.sources.len() > self.config.max_sources {
            self.evict_oldest();
        }
        Ok(())
    }

    /// Number of sources tracked.
    pub fn len(&self) -> usize {
        self.sources.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// Whether `source` is tracked.
    pub fn contains(&self, source: &str) -> bool {
        self.sources.contains_key(source)
    }

    /// Stops tracking a source (decommissioned, say).
    pub fn forget(&mut self, source: &str) -> bool {
        self.sources.remove(source).is_some()
    }

    /// Records that `source` was heard: an event that happened at
    /// `event_ms` arrived at `wall_ms` (both unix ms). Names that are empty
    /// or longer than a `source.system` may be are ignored.
    pub fn observe(&mut self, source: &str, event_ms: i64, wall_ms: i64) {
        if source.is_empty() || source.chars().count() > MAX_SHORT_CHARS {
            return;
        }
        let event_ms = event_ms.min(wall_ms.saturating_add(self.config.skew_ms()));
        let decay = self.config.decay();
        let hour = self.config.hour(event_ms);
        if !self.sources.contains_key(source) {
            if self.sources.len() >= self.config.max_sources {
                self.evict_oldest();
            }
            self.sources.insert(
                source.to_owned(),
                SourceState::new(&self.config, event_ms, wall_ms),
            );
        }
        let Some(state) = self.sources.get_mut(source) else {
            return; // inserted just above
        };
        state.advance(hour, decay);
        if hour == state.clock_hour {
            state.pending += 1.0;
        } else if hour > state.clock_hour - HOURS_PER_WEEK as i64 && hour >= state.first_hour {
            // Late, but within the last week: its hour is complete.
            state.counts[bucket(hour)] += 1.0;
        }
        state.last_event_ms = state.last_event_ms.max(event_ms);
        state.last_wall_ms = state.last_wall_ms.max(wall_ms);
        state.silent = false;
    }

    /// The sources that became silent since the last check, each reported
    /// once until heard again. `now_event_ms`, when given, caps the event
    /// time the event-time basis judges up to.
    pub fn check(&mut self, now_wall_ms: i64, now_event_ms: Option<i64>) -> Vec<SilentSource> {
        // The newest event time of all sources. For the source that has it
        // the stretch is empty, so this is the newest of the *other* sources
        // wherever it matters.
        let newest = self.sources.values().map(|s| s.last_event_ms).max();
        let event_ref = match (newest, now_event_ms) {
            (Some(n), Some(cap)) => Some(n.min(cap)),
            (n, _) => n,
        };
        let mut found = Vec::new();
        for (name, s) in &self.sources {
            if s.silent || s.history_weeks() < self.config.min_weeks {
                continue;
            }
            let wall = self
                .judge(s, s.last_wall_ms, now_wall_ms)
                .map(|gap| (Basis::WallClock, s.last_wall_ms, now_wall_ms, gap));
            let event = || {
                let to = event_ref?;
                self.judge(s, s.last_event_ms, to)
                    .map(|gap| (Basis::EventTime, s.last_event_ms, to, gap))
            };
            if let Some((basis, from, to, expected_gap)) = wall.or_else(event) {
                found.push(SilentSource {
                    source: name.clone(),
                    last_heard_ms: from,
                    silent_for: Duration::from_millis(u64::try_from(to - from).unwrap_or(0)),
                    expected_gap,
                    basis,
                });
            }
        }
        for s in &found {
            if let Some(state) = self.sources.get_mut(&s.source) {
                state.silent = true;
            }
        }
        found
    }

    /// Whether the stretch `from..to` is a silence for `s`; if so, the
    /// expected mean gap over its active hours.
    fn judge(&self, s: &SourceState, from: i64, to: i64) -> Option<Duration> {
        if to <= from {
            return None;
        }
        let (expected, active_ms) = self.expected_events(s, from, to);
        if active_ms < self.config.floor_ms() || expected < self.config.factor {
            return None;
        }
        let gap_ms = active_ms as f64 / expected;
        // `expected >= factor > 0`, so gap_ms is finite and at most active_ms.
        Some(Duration::from_millis(gap_ms.round() as u64))
    }

    /// Events normally sent in `from..to` and the milliseconds of that
    /// stretch in hours that are not normally quiet.
    fn expected_events(&self, s: &SourceState, mut from: i64, to: i64) -> (f64, i64) {
        let min_rate = self.config.min_rate_per_hour;
        let mut expected = 0.0;
        let mut active_ms: i64 = 0;
        let full_weeks = (to - from) / WEEK_MS;
        if full_weeks > 0 {
            let (mut week_expected, mut week_active_hours) = (0.0, 0i64);
            for b in 0..HOURS_PER_WEEK {
                let rate = s.rate(b);
                if rate >= min_rate {
                    week_expected += rate;
                    week_active_hours += 1;
                }
            }
            expected += week_expected * full_weeks as f64;
            active_ms = active_ms.saturating_add(
                week_active_hours
                    .saturating_mul(HOUR_MS)
                    .saturating_mul(full_weeks),
            );
            from += full_weeks * WEEK_MS;
        }
        // Less than a week left: at most 169 hours.
        let mut hour = self.config.hour(from);
        let last = self.config.hour(to);
        while hour <= last {
            let start = self.config.hour_start_ms(hour).max(from);
            let end = self.config.hour_start_ms(hour + 1).min(to);
            let rate = s.rate(bucket(hour));
            if end > start && rate >= min_rate {
                expected += rate * (end - start) as f64 / HOUR_MS as f64;
                active_ms = active_ms.saturating_add(end - start);
            }
            hour += 1;
        }
        (expected, active_ms)
    }

    fn evict_oldest(&mut self) {
        let oldest = self
            .sources
            .iter()
            .min_by_key(|(name, s)| (s.last_wall_ms, s.last_event_ms, name.as_str()))
            .map(|(name, _)| name.clone());
        if let Some(name) = oldest {
            self.sources.remove(&name);
        }
    }
}

/// The `system/source_silent` event for a silence found at `now`.
pub fn silent_event(silent: &SilentSource, now: Timestamp) -> Event {
    let last_heard = Timestamp::from_unix_ms(silent.last_heard_ms)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| silent.last_heard_ms.to_string());
    let clock = match silent.basis {
        Basis::WallClock => "by wall clock",
        Basis::EventTime => "by event time, against the other sources",
    };
    let message = format!(
        "no events from `{}` for {} ({clock}); at these hours it usually sends one about every {}; last heard {last_heard}",
        silent.source,
        human(silent.silent_for),
        human(silent.expected_gap),
    );
    let mut attrs = Map::new();
    attrs.insert("last_heard".to_owned(), Value::String(last_heard));
    attrs.insert(
        "silent_for_seconds".to_owned(),
        json!(silent.silent_for.as_secs()),
    );
    attrs.insert(
        "expected_gap_seconds".to_owned(),
        json!(silent.expected_gap.as_secs()),
    );
    attrs.insert("basis".to_owned(), json!(silent.basis.as_str()));
    Event {
        id: None,
        time: now,
        category: Category::System,
        action: "source_silent".to_owned(),
        outcome: Outcome::Unknown,
        actor: None,
        patient: None,
        resource: None,
        target_user: None,
        source: Some(Source {
            system: silent.source.clone(),
            host: None,
        }),
        reason: None,
        records: None,
        message: Some(message),
        attrs: Some(attrs),
    }
}

/// `3d 4h`, `2h 05m`, `17m`, `45s`.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, minutes, seconds) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {minutes:02}m")
    } else if minutes > 0 {
        format!("{minutes}m")
    } else {
        format!("{seconds}s")
    }
}

/// Durations in config: written as `"900s"`; read from a number of seconds
/// or text with a unit `s`, `m`, `h` or `d`.
/// Parses `500ms`, `90s`, `15m`, `2h`, `1d` (the config's duration syntax).
pub fn parse_duration(text: &str) -> Option<Duration> {
    duration_text::parse(text)
}

pub(crate) mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        if d.subsec_millis() == 0 {
            s.collect_str(&format_args!("{}s", d.as_secs()))
        } else {
            s.collect_str(&format_args!("{}ms", d.as_millis()))
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(u64),
        Text(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        match Raw::deserialize(d)? {
            Raw::Secs(s) => Ok(Duration::from_secs(s)),
            Raw::Text(t) => parse(&t).ok_or_else(|| {
                D::Error::custom(format!(
                    "`{t}` is not a duration such as 500ms, 90s, 15m, 2h or 1d"
                ))
            }),
        }
    }

    pub(crate) fn parse(t: &str) -> Option<Duration> {
        let t = t.trim();
        if let Some(ms) = t.strip_suffix("ms") {
            return ms.parse().ok().map(Duration::from_millis);
        }
        let unit_len = t.chars().last()?.len_utf8();
        let (n, unit) = t.split_at(t.len() - unit_len);
        let n: u64 = n.parse().ok()?;
        let mult = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return None,
        };
        n.checked_mul(mult).map(Duration::from_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const H: i64 = HOUR_MS;
    const DAY: i64 = 24 * H;
    const WEEK: i64 = WEEK_MS;

    /// 2026-01-05 00:00 UTC, a Monday.
    fn monday() -> i64 {
        Timestamp::parse("2026-01-05T00:00:00Z").unwrap().unix_ms()
    }

    fn model() -> SilenceModel {
        SilenceModel::new(SilenceConfig::default()).unwrap()
    }

    /// Deterministic gaps of 1 to 3 minutes.
    struct Gaps(u64);
    impl Gaps {
        fn next(&mut self) -> i64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            MIN + ((self.0 >> 33) % 120_000) as i64
        }
    }

    /// Events of a business-hours system on `days` (0 = Monday of week 0),
    /// 08:00 to 18:00, each day cut at `until` hours (e.g. 10.0).
    fn business_hours(days: &[(i64, f64)], seed: u64) -> Vec<i64> {
        let mut gaps = Gaps(seed);
        let mut out = Vec::new();
        for &(day, until) in days {
            let start = monday() + day * DAY + 8 * H;
            let end = monday() + day * DAY + (until * H as f64) as i64;
            let mut t = start;
            while t <= end {
                out.push(t);
                t += gaps.next();
            }
        }
        out
    }

    fn every(from: i64, to: i64, step: i64) -> Vec<i64> {
        (0..)
            .map(|i| from + i * step)
            .take_while(|t| *t < to)
            .collect()
    }

    /// Live operation of one source (wall = event time): observes its events
    /// and checks every `step` up to `end`; returns the reports.
    fn live(
        m: &mut SilenceModel,
        source: &str,
        events: &[i64],
        end: i64,
        step: i64,
    ) -> Vec<(i64, SilentSource)> {
        let mut alarms = Vec::new();
        let mut next = 0;
        let mut t = events[0];
        while t <= end {
            while next < events.len() && events[next] <= t {
                m.observe(source, events[next], events[next]);
                next += 1;
            }
            alarms.extend(m.check(t, None).into_iter().map(|s| (t, s)));
            t += step;
        }
        alarms
    }

    fn weekdays(weeks: i64) -> Vec<(i64, f64)> {
        (0..weeks)
            .flat_map(|w| (0..5).map(move |d| (w * 7 + d, 18.0)))
            .collect()
    }

    #[test]
    fn buckets_start_monday_local_time() {
        assert_eq!(bucket(SilenceConfig::default().hour(monday())), 0);
        assert_eq!(bucket(SilenceConfig::default().hour(monday() + 10 * H)), 10);
        assert_eq!(bucket(SilenceConfig::default().hour(monday() - H)), 167);
        let est = SilenceConfig {
            utc_offset_minutes: -300,
            ..SilenceConfig::default()
        };
        assert_eq!(
            bucket(est.hour(monday() + 5 * H)),
            0,
            "05:00Z is midnight in UTC-5"
        );
        assert_eq!(
            est.hour_start_ms(est.hour(monday() + 5 * H + 30 * MIN)),
            monday() + 5 * H
        );
    }

    #[test]
    fn business_hours_source_alarms_only_when_it_stops_in_hours() {
        let mut m = model();
        // Three weeks of history, then week 3: Monday full, Tuesday until
        // 10:00, nothing until Wednesday, Wednesday full, nothing after.
        let mut days = weekdays(3);
        days.extend([(21, 18.0), (22, 10.0), (23, 18.0)]);
        let events = business_hours(&days, 7);
        let end = monday() + 3 * WEEK + 5 * DAY; // Saturday of week 3
        let alarms = live(&mut m, "ehr", &events, end, MIN);

        let tue_last = *events
            .iter()
            .filter(|t| **t < monday() + 3 * WEEK + DAY + 11 * H)
            .max()
            .unwrap();
        let wed_last = *events.last().unwrap();
        let times: Vec<i64> = alarms.iter().map(|(t, _)| *t).collect();
        assert_eq!(times.len(), 2, "exactly one alarm per silence: {alarms:#?}");
        // Tuesday: after the 15-minute floor, well before lunch.
        let tue_10 = monday() + 3 * WEEK + DAY + 10 * H;
        assert!(
            times[0] >= tue_last + 15 * MIN && times[0] <= tue_10 + 17 * MIN,
            "{}",
            times[0] - tue_10
        );
        // Thursday: re-armed by Wednesday's events, alarms early on Thursday,
        // not Wednesday night.
        let thu_8 = monday() + 3 * WEEK + 3 * DAY + 8 * H;
        assert!(
            times[1] >= thu_8 && times[1] <= thu_8 + 17 * MIN,
            "{}",
            times[1] - thu_8
        );

        let (_, first) = &alarms[0];
        assert_eq!(first.source, "ehr");
        assert_eq!(first.basis, Basis::WallClock);
        assert_eq!(first.last_heard_ms, tue_last);
        assert_eq!(
            first.silent_for,
            Duration::from_millis((times[0] - tue_last) as u64)
        );
        let gap = first.expected_gap.as_secs();
        assert!(
            (90..=150).contains(&gap),
            "expected gap {gap}s for events every 1-3 min"
        );
        assert_eq!(alarms[1].1.last_heard_ms, wed_last);
    }

    #[test]
    fn twenty_four_seven_source_alarms_at_night() {
        let mut m = model();
        let stop = monday() + 2 * WEEK + 2 * DAY + 2 * H + 30 * MIN; // Wednesday 02:30
        let events = every(monday(), stop + 1, 5 * MIN);
        let alarms = live(&mut m, "lab", &events, stop + 6 * H, MIN);
        assert_eq!(alarms.len(), 1, "{alarms:#?}");
        let three = monday() + 2 * WEEK + 2 * DAY + 3 * H;
        assert!(
            (three - MIN..=three + MIN).contains(&alarms[0].0),
            "{}",
            alarms[0].0 - three
        );
        assert_eq!(alarms[0].1.expected_gap.as_secs(), 300);
    }

    #[test]
    fn normally_quiet_hours_do_not_count_even_with_a_trickle() {
        // Busy on weekdays 08:00-18:00, and an hourly heartbeat at all times,
        // under a min_rate_per_hour of 2.
        let mut events = business_hours(&weekdays(3), 5);
        let end_of_history = monday() + 2 * WEEK + 4 * DAY + 18 * H; // Friday 18:00, week 2
        events.extend(every(monday() + 30 * MIN, end_of_history, H));
        events.retain(|t| *t <= end_of_history);
        events.sort();
        let mut m = SilenceModel::new(SilenceConfig {
            min_rate_per_hour: 2.0,
            ..SilenceConfig::default()
        })
        .unwrap();
        // Silent from Friday evening: 62 heartbeat hours (62 expected
        // beats) must not alarm; Monday morning must.
        let alarms = live(&mut m, "pm", &events, monday() + 3 * WEEK + 9 * H, MIN);
        assert_eq!(alarms.len(), 1, "{alarms:#?}");
        let monday_8 = monday() + 3 * WEEK + 8 * H;
        assert!(
            (monday_8..=monday_8 + 17 * MIN).contains(&alarms[0].0),
            "{}",
            alarms[0].0 - monday_8
        );
    }

    #[test]
    fn too_little_history_does_not_alarm() {
        let mut m = model();
        let events = every(monday(), monday() + 3 * DAY, 5 * MIN);
        let alarms = live(&mut m, "new", &events, monday() + 3 * WEEK, 10 * MIN);
        assert_eq!(alarms, vec![]);
        // The same with min_weeks 0 alarms: the gate is what held it back.
        let mut m = SilenceModel::new(SilenceConfig {
            min_weeks: 0.0,
            ..SilenceConfig::default()
        })
        .unwrap();
        assert_eq!(
            live(&mut m, "new", &events, monday() + 3 * WEEK, 10 * MIN).len(),
            1
        );
    }

    #[test]
    fn replay_flags_a_source_that_stopped_mid_day() {
        let mut m = model();
        let end = monday() + 2 * WEEK + 2 * DAY + 23 * H + 59 * MIN; // Wednesday night
        let lab_stop = monday() + 2 * WEEK + 2 * DAY + 12 * H; // Wednesday noon
        let mut events: Vec<(i64, &str)> = Vec::new();
        events.extend(
            every(monday(), end, 5 * MIN)
                .into_iter()
                .map(|t| (t, "ehr")),
        );
        events.extend(
            every(monday() + 7 * MIN, lab_stop, 10 * MIN)
                .into_iter()
                .map(|t| (t, "lab")),
        );
        let mut days = weekdays(2);
        days.extend([(14, 18.0), (15, 18.0), (16, 18.0)]);
        events.extend(business_hours(&days, 3).into_iter().map(|t| (t, "pm")));
        events.sort();

        // A replay months later: wall clock advances 1 ms per event.
        let wall0 = monday() + 40 * WEEK;
        let mut alarms = Vec::new();
        for (i, (t, source)) in events.iter().enumerate() {
            let wall = wall0 + i as i64;
            m.observe(source, *t, wall);
            if i % 20 == 0 {
                alarms.extend(m.check(wall, None).into_iter().map(|s| (*t, s)));
            }
        }
        alarms.extend(
            m.check(wall0 + events.len() as i64, None)
                .into_iter()
                .map(|s| (end, s)),
        );
        assert_eq!(alarms.len(), 1, "{alarms:#?}");
        let (at, lab) = &alarms[0];
        assert_eq!((lab.source.as_str(), lab.basis), ("lab", Basis::EventTime));
        assert!(lab.last_heard_ms < lab_stop && lab.last_heard_ms >= lab_stop - 10 * MIN);
        assert!(
            *at > lab_stop && *at < lab_stop + 3 * H,
            "flagged {} after noon",
            at - lab_stop
        );

        // Capping the event time judged up to (e.g. a replay cursor) holds it back.
        let mut m2 = m.clone();
        m2.observe("lab", lab_stop - MIN, wall0);
        assert_eq!(
            m2.check(wall0 + events.len() as i64, Some(lab_stop)),
            vec![]
        );
    }

    #[test]
    fn future_event_times_are_clamped() {
        let mut m = model();
        for t in every(monday(), monday() + 2 * WEEK, 5 * MIN) {
            m.observe("a", t, t);
            m.observe("b", t, t);
        }
        let now = monday() + 2 * WEEK;
        // b's clock is ten years ahead.
        m.observe("b", now + 520 * WEEK, now);
        assert_eq!(m.check(now, None), vec![]);
    }

    fn trained() -> SilenceModel {
        let mut m = model();
        for t in business_hours(&weekdays(2), 11) {
            m.observe("ehr", t, t);
        }
        for t in every(monday(), monday() + 2 * WEEK, 5 * MIN) {
            m.observe("lab", t, t);
        }
        m
    }

    #[test]
    fn state_round_trips_through_json() {
        let mut m = trained();
        let json = serde_json::to_string(&m).unwrap();
        let mut back: SilenceModel = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
        // The restored model judges as the original does.
        let tuesday = monday() + 2 * WEEK + DAY + 11 * H;
        let a = m.check(tuesday, None);
        assert_eq!(a.len(), 2, "both silent on Tuesday 11:00: {a:#?}");
        assert_eq!(back.check(tuesday, None), a);
        assert_eq!(back.check(tuesday + H, None), vec![], "reported once");
    }

    #[test]
    fn malformed_state_is_refused() {
        let good: Value = serde_json::to_value(trained()).unwrap();
        type Edit = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(&str, Edit)> = vec![
            ("version", Box::new(|v| v["version"] = json!(2))),
            (
                "short counts",
                Box::new(|v| v["sources"]["ehr"]["counts"] = json!([1.0, 2.0])),
            ),
            (
                "negative",
                Box::new(|v| v["sources"]["lab"]["exposure"][3] = json!(-1.0)),
            ),
            (
                "empty name",
                Box::new(|v| v["sources"][""] = v["sources"]["lab"].clone()),
            ),
            (
                "hours",
                Box::new(|v| v["sources"]["lab"]["first_hour"] = json!(i64::MAX)),
            ),
            ("config", Box::new(|v| v["config"]["factor"] = json!(0.0))),
            (
                "too many",
                Box::new(|v| v["config"]["max_sources"] = json!(1)),
            ),
            ("unknown key", Box::new(|v| v["extra"] = json!(1))),
        ];
        assert!(serde_json::from_value::<SilenceModel>(good.clone()).is_ok());
        for (what, edit) in cases {
            let mut v = good.clone();
            edit(&mut v);
            assert!(serde_json::from_value::<SilenceModel>(v).is_err(), "{what}");
        }
    }

    #[test]
    fn memory_is_bounded() {
        let mut m = SilenceModel::new(SilenceConfig {
            max_sources: 10,
            ..SilenceConfig::default()
        })
        .unwrap();
        for i in 0..25 {
            m.observe(&format!("s{i}"), monday() + i * MIN, monday() + i * MIN);
        }
        assert_eq!(m.len(), 10);
        assert!(m.contains("s24") && m.contains("s15") && !m.contains("s14"));
        // Hearing an old source again keeps it over a newer quiet one.
        m.observe("s15", monday() + H, monday() + H);
        m.observe("new", monday() + H, monday() + H);
        assert!(m.contains("s15") && !m.contains("s16"));

        let mut m = model();
        for i in 0..1_500 {
            m.observe(&format!("s{i}"), monday() + i, monday() + i);
        }
        assert_eq!(m.len(), 1_000);
        m.observe("", monday(), monday());
        m.observe(&"x".repeat(MAX_SHORT_CHARS + 1), monday(), monday());
        assert_eq!(m.len(), 1_000);
        assert!(!m.contains(""));
        m.set_config(SilenceConfig {
            max_sources: 3,
            ..SilenceConfig::default()
        })
        .unwrap();
        assert_eq!(m.len(), 3);
        assert!(m.contains("s1499"));
    }

    #[test]
    fn silent_event_is_a_valid_system_event() {
        let s = SilentSource {
            source: "ehr".into(),
            last_heard_ms: monday() + 10 * H,
            silent_for: Duration::from_secs(17 * 60),
            expected_gap: Duration::from_secs(120),
            basis: Basis::EventTime,
        };
        let now = Timestamp::from_unix_ms(monday() + 10 * H + 17 * MIN).unwrap();
        let e = silent_event(&s, now);
        e.validate().unwrap();
        assert_eq!(
            (e.category, e.action.as_str(), e.outcome),
            (Category::System, "source_silent", Outcome::Unknown)
        );
        assert_eq!(e.time, now);
        assert_eq!(e.source.as_ref().map(|s| s.system.as_str()), Some("ehr"));
        let attrs = e.attrs.as_ref().unwrap();
        assert_eq!(attrs["last_heard"], "2026-01-05T10:00:00Z");
        assert_eq!(attrs["silent_for_seconds"], 1020);
        assert_eq!(attrs["expected_gap_seconds"], 120);
        assert_eq!(attrs["basis"], "event_time");
        let message = e.message.unwrap();
        assert!(
            message.contains("`ehr` for 17m") && message.contains("every 2m"),
            "{message}"
        );
    }

    #[test]
    fn config_parses_durations_and_checks_ranges() {
        let c: SilenceConfig = serde_json::from_str(r#"{"floor": "20m", "max_skew": 30}"#).unwrap();
        assert_eq!(c.floor, Duration::from_secs(1200));
        assert_eq!(c.max_skew, Duration::from_secs(30));
        assert_eq!(c.factor, 6.0);
        assert_eq!(serde_json::to_value(&c).unwrap()["floor"], "1200s");
        for bad in [
            r#"{"floor": "15x"}"#,
            r#"{"floor": "15µ"}"#,
            r#"{"floor": -1}"#,
            r#"{"flor": 1}"#,
        ] {
            assert!(serde_json::from_str::<SilenceConfig>(bad).is_err(), "{bad}");
        }
        for bad in [
            SilenceConfig {
                factor: f64::NAN,
                ..SilenceConfig::default()
            },
            SilenceConfig {
                min_rate_per_hour: 0.0,
                ..SilenceConfig::default()
            },
            SilenceConfig {
                half_life_weeks: -1.0,
                ..SilenceConfig::default()
            },
            SilenceConfig {
                min_weeks: f64::INFINITY,
                ..SilenceConfig::default()
            },
            SilenceConfig {
                utc_offset_minutes: 1500,
                ..SilenceConfig::default()
            },
            SilenceConfig {
                max_sources: 0,
                ..SilenceConfig::default()
            },
        ] {
            assert!(SilenceModel::new(bad.clone()).is_err(), "{bad:?}");
        }
        assert_eq!(human(Duration::from_secs(3 * 86_400 + 4 * 3600)), "3d 4h");
        assert_eq!(human(Duration::from_secs(2 * 3600 + 5 * 60)), "2h 05m");
        assert_eq!(human(Duration::from_secs(45)), "45s");
    }

    #[test]
    fn decay_fades_old_habits() {
        let mut s = SourceState::new(&SilenceConfig::default(), monday(), monday());
        s.counts[0] = 10.0;
        s.exposure[0] = 1.0;
        s.pending = 2.0;
        let d = SilenceConfig::default().decay();
        s.advance(s.clock_hour + 4 * HOURS_PER_WEEK as i64, d);
        // Four weeks at a four-week half-life: half the old count, plus the
        // pending hour's events decayed over the three later weeks; the
        // exposure of bucket 0 is 1 * d^4 + (1 + d + d^2 + d^3).
        let want = 5.0 + 2.0 * d.powi(3);
        assert!((s.counts[0] - want).abs() < 1e-9, "{}", s.counts[0]);
        assert_eq!(s.pending, 0.0);
        let geometric = (1.0 - 0.5) / (1.0 - d);
        assert!((s.exposure[0] - (0.5 + geometric)).abs() < 1e-9);
        assert!((s.exposure[1] - geometric).abs() < 1e-9);
        assert!((s.rate(1) - 0.0).abs() < 1e-12);
    }
}

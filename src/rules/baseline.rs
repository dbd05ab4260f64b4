//! `baseline` (a sealtrail extension): a group's count in a window far above
//! its own trailing median.
//!
//! ```yaml
//! correlation:
//!   type: baseline
//!   rules: [phi_access]
//!   group-by: [actor.user]
//!   timespan: 1d     # the window; windows are aligned to the unix epoch (UTC days for 1d)
//!   history: 14      # previous windows the median is taken over (or a duration: 14d)
//!   factor: 3        # fire when count > factor x median
//!   min_count: 200   # optional (default 1): and count >= min_count
//!   peers: actor.department  # optional: also judge against the group's peers
//! ```
//!
//! With `peers`, each hit names its group's peer value (the field's value,
//! e.g. the user's department), and every closed window with hits is kept
//! as a sample of that peer value (at most [`MAX_PEER_SAMPLES`] per value,
//! within the history). A window is then judged against `factor x` the
//! larger of the group's own median and the *peer median*: the median of
//! the other groups' samples of that peer value in the previous `history`
//! windows (windows with hits only: what a peer does on a working day). A group without a full history is judged by
//! the peer median alone, so a new user is judged from their first day;
//! without peer samples it is still learning, as without `peers`.
//!
//! Per group: the open window's index, count, first and last hit and first
//! events, and the counts of up to `history` previous windows (a window
//! without hits counts 0). When the watermark passes the end of a window
//! with hits, the window is judged: with a full history (the group was seen
//! `history` windows before), it fires when `count >= min_count` and
//! `count > factor x median` (the mean of the two middle values for an even
//! history). A group idle for `history` windows is forgotten, and learns
//! again when it comes back. Groups per rule are capped
//! (`max_groups_per_rule`, the idle longest evicted).

use std::collections::VecDeque;

use super::engine::{Map, Value};
use super::field::Field;
use super::load::refuse_keys;
use super::yaml::Pos;

use super::detection::{At, at};
use super::engine::{EngineStats, Fired, GroupKey, MAX_ALERT_EVENTS};
use super::groups::Groups;
use super::load::{CorrelationRule, MAX_TIMESPAN_MS, duration, parse_timespan};
use super::timers::{TimerId, Timers};
use super::yaml::Node;

/// Most previous windows kept per group.
pub const MAX_HISTORY_WINDOWS: u64 = 1_000;
/// Most windows kept per peer value (`peers`); the oldest are dropped.
pub const MAX_PEER_SAMPLES: usize = 5_000;
/// Most peer values kept per rule: values without a sample in the history
/// are dropped first; past that, a new value is not sampled.
pub const MAX_PEER_VALUES: usize = 10_000;

/// Settings of a `baseline` correlation (its `timespan_ms` is the window).
#[derive(Debug, Clone, PartialEq)]
pub struct Baseline {
    /// Previous windows the median is taken over.
    pub windows: u64,
    pub factor: f64,
    pub min_count: u64,
    /// `peers`: the field naming the group's peers, as written.
    pub peers: Option<String>,
}

impl Baseline {
    /// The history's windows plus the open one.
    pub(crate) fn replay_ms(&self, timespan_ms: i64) -> i64 {
        i64::try_from(self.windows + 1)
            .unwrap_or(i64::MAX)
            .saturating_mul(timespan_ms)
    }
}

/// The `peers` field and where it is written.
type PeersField = Option<(Field, Pos)>;

/// `timespan`, `history`, `factor`, `min_count` and `peers` (the peers
/// field is the correlation's value field).
pub(crate) fn parse(c: &Node) -> Result<(i64, Baseline, PeersField), At> {
    let unused = [
        "condition",
        "field",
        "gap",
        "gap_factor",
        "gap_by",
        "learning",
    ];
    refuse_keys(c, unused, |key| {
        format!("`{key}` is not used by baseline (use timespan, history, factor, min_count)")
    })?;
    let timespan_ms =
        duration(c, "timespan")?.ok_or_else(|| at(c.pos, "baseline has no `timespan`"))?;
    let h = c
        .get("history")
        .ok_or_else(|| at(c.pos, "baseline has no `history`"))?;
    let text = h.as_str().unwrap_or_default();
    let windows = if let Ok(n) = text.parse::<u64>() {
        n
    } else {
        let ms = parse_timespan(text).ok_or_else(|| {
            at(
                h.pos,
                format!(
                    "invalid history `{text}`: a number of windows, or a duration (s, m, h, d) \
                     that is a multiple of the timespan"
                ),
            )
        })?;
        if ms % timespan_ms != 0 {
            return Err(at(
                h.pos,
                format!("history `{text}` is not a multiple of the timespan"),
            ));
        }
        // Both positive, so the quotient is too.
        u64::try_from(ms / timespan_ms).unwrap_or(0)
    };
    let span_windows = u64::try_from(MAX_TIMESPAN_MS / timespan_ms).unwrap_or(0);
    if windows == 0 || windows > MAX_HISTORY_WINDOWS || windows > span_windows {
        return Err(at(
            h.pos,
            format!("history must be 1 to {MAX_HISTORY_WINDOWS} windows and at most 31d in all"),
        ));
    }
    let f = c
        .get("factor")
        .ok_or_else(|| at(c.pos, "baseline has no `factor`"))?;
    let factor = f
        .as_str()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 1.0 && *v <= 1_000_000.0)
        .ok_or_else(|| at(f.pos, "factor must be a number from 1 to 1000000"))?;
    let min_count = match c.get("min_count") {
        None => 1,
        Some(n) => n
            .as_str()
            .and_then(|s| s.parse::<u64>().ok())
            .filter(|v| *v >= 1)
            .ok_or_else(|| at(n.pos, "min_count must be a positive integer"))?,
    };
    let peers = match c.get("peers") {
        None => None,
        Some(n) => {
            let name = n
                .as_str()
                .ok_or_else(|| at(n.pos, "`peers` must be a field name"))?;
            let f =
                Field::parse(name).ok_or_else(|| at(n.pos, format!("unknown field `{name}`")))?;
            Some((name.to_owned(), (f, n.pos)))
        }
    };
    let (peers, peer_field) = peers.map_or((None, None), |(n, f)| (Some(n), Some(f)));
    Ok((
        timespan_ms,
        Baseline {
            windows,
            factor,
            min_count,
            peers,
        },
        peer_field,
    ))
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Series {
    /// Index of the newest window with hits (`time.div_euclid(timespan)`).
    window: i64,
    /// Whether `window` is still open (not judged yet).
    open: bool,
    count: u64,
    first: i64,
    last: i64,
    events: Vec<u64>,
    /// Counts of the windows before `window` (or up to it, once judged),
    /// oldest first, at most `windows`.
    past: VecDeque<u64>,
    /// The window's end, or (judged) the time to forget the group.
    timer: TimerId,
    /// `peers`: the group's peer value (its latest hit's).
    peer: Option<Value>,
}

/// The closed windows of one peer value.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct PeerSamples {
    /// (window index, count, group), oldest first.
    samples: VecDeque<(i64, u64, GroupKey)>,
}

/// The baseline state of one rule.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct State {
    groups: Groups<Series>,
    /// `peers`: samples per peer value (at most `max_groups` values).
    #[serde(with = "crate::rules::snap::pairs")]
    peers: Map<Value, PeerSamples>,
}

impl State {
    pub(crate) fn len(&self) -> usize {
        self.groups.len()
    }

    /// Applies a hit at `t` carrying `events` (hits come in event-time
    /// order, and a window's timer fires before any later hit).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn hit(
        &mut self,
        corr: &CorrelationRule,
        ci: usize,
        key: GroupKey,
        t: i64,
        events: &[u64],
        peer: Option<&Value>,
        max_groups: usize,
        timers: &mut Timers,
        stats: &mut EngineStats,
    ) {
        let Some(rule) = &corr.baseline else { return };
        let span = corr.timespan_ms;
        let k = t.div_euclid(span);
        let touched = self.groups.hit(&key, t, max_groups, || Series {
            window: k,
            open: false,
            count: 0,
            first: t,
            last: t,
            events: Vec::new(),
            past: VecDeque::new(),
            timer: (0, 0, 0),
            peer: None,
        });
        if let Some(s) = touched.evicted {
            timers.cancel(s.timer);
            stats.evicted_groups += 1;
        }
        let s = touched.value;
        if touched.previous.is_some() && (k < s.window || (k == s.window && !s.open)) {
            // A late hit of a window already judged: not counted again.
            stats.late_dropped += 1;
            return;
        }
        s.last = s.last.max(t);
        if let Some(p) = peer
            && s.peer.as_ref() != Some(p)
        {
            s.peer = Some(p.clone());
        }
        if !(s.open && k <= s.window) {
            if s.open {
                // Its window ended without its timer (not expected: timers
                // fire before later hits); judged as no alert.
                close(s, rule.windows);
            }
            timers.cancel(s.timer);
            if s.count > 0 || !s.past.is_empty() {
                // Empty windows between the last judged one and this.
                let empty = u64::try_from(k - s.window - 1).unwrap_or(0);
                for _ in 0..empty.min(rule.windows) {
                    push(&mut s.past, 0, rule.windows);
                }
            }
            s.window = k;
            s.open = true;
            s.count = 0;
            s.first = t;
            s.events.clear();
            s.timer = timers.schedule((k + 1) * span - 1, ci, key);
        }
        s.count += 1;
        for &e in events {
            if s.events.len() >= MAX_ALERT_EVENTS {
                break;
            }
            s.events.push(e);
        }
    }

    /// A timer of this rule fired: a window closes, or the group is forgotten.
    pub(crate) fn fire(
        &mut self,
        corr: &CorrelationRule,
        id: TimerId,
        key: &GroupKey,
        timers: &mut Timers,
    ) -> Option<Fired> {
        let rule = corr.baseline.as_ref()?;
        let s = self.groups.get_mut(key)?;
        if s.timer != id {
            return None; // stale (never left behind, but cheap to check)
        }
        if !s.open {
            // Idle for the whole history: forget it.
            self.groups.remove(key);
            return None;
        }
        let full = s.past.len() as u64 >= rule.windows;
        let own = full.then(|| median(&s.past));
        let peer = match &s.peer {
            Some(p) if rule.peers.is_some() => {
                peer_median(&self.peers, p, key, s.window, rule.windows)
            }
            _ => None,
        };
        // The larger of the two; a group without its own history is judged
        // by its peers alone, and learns while there are none.
        let threshold = match (own, peer) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        #[allow(clippy::cast_precision_loss)] // counts far below 2^52
        let over = threshold.is_some_and(|m| s.count as f64 > rule.factor * m);
        if rule.peers.is_some()
            && let Some(p) = &s.peer
        {
            let sample = (s.window, s.count, key.clone());
            add_peer_sample(&mut self.peers, p, sample, rule.windows);
        }
        let fired = (over && s.count >= rule.min_count).then(|| Fired {
            first: s.first,
            last: s.last,
            count: s.count,
            events: s.events.clone(),
        });
        close(s, rule.windows);
        let windows = i64::try_from(rule.windows).unwrap_or(i64::MAX);
        let forget = (s.window + 1)
            .saturating_add(windows)
            .saturating_mul(corr.timespan_ms)
            - 1;
        s.timer = timers.schedule(forget, id.1, key.clone());
        fired
    }
}

/// The median of the windows in `[window - windows, window)` of the other
/// groups of peer value `p`, `None` without any.
fn peer_median(
    peers: &Map<Value, PeerSamples>,
    p: &Value,
    key: &GroupKey,
    window: i64,
    windows: u64,
) -> Option<f64> {
    let ps = peers.get(p)?;
    let from = window.saturating_sub(i64::try_from(windows).unwrap_or(i64::MAX));
    let v: VecDeque<u64> = ps
        .samples
        .iter()
        .filter(|(w, _, k)| *w >= from && *w < window && k != key)
        .map(|(_, c, _)| *c)
        .collect();
    (!v.is_empty()).then(|| median(&v))
}

/// Keeps a closed window's count as a sample of its peer value.
fn add_peer_sample(
    peers: &mut Map<Value, PeerSamples>,
    p: &Value,
    sample: (i64, u64, GroupKey),
    windows: u64,
) {
    let window = sample.0;
    let from = window.saturating_sub(i64::try_from(windows).unwrap_or(i64::MAX));
    if !peers.contains_key(p) && peers.len() >= MAX_PEER_VALUES {
        peers.retain(|_, ps| ps.samples.back().is_some_and(|(w, _, _)| *w >= from));
        if peers.len() >= MAX_PEER_VALUES {
            return;
        }
    }
    let ps = peers.entry(p.clone()).or_default();
    while ps.samples.front().is_some_and(|(w, _, _)| *w < from)
        || ps.samples.len() >= MAX_PEER_SAMPLES
    {
        ps.samples.pop_front();
    }
    ps.samples.push_back(sample);
}

/// Judges the open window into the history.
fn close(s: &mut Series, windows: u64) {
    push(&mut s.past, s.count, windows);
    s.open = false;
    s.count = 0;
    s.events.clear();
}

fn push(past: &mut VecDeque<u64>, n: u64, windows: u64) {
    past.push_back(n);
    while past.len() as u64 > windows {
        past.pop_front();
    }
}

#[allow(clippy::cast_precision_loss)] // counts far below 2^52
fn median(past: &VecDeque<u64>) -> f64 {
    if past.is_empty() {
        return 0.0;
    }
    let mut v: Vec<u64> = past.iter().copied().collect();
    v.sort_unstable();
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid] as f64
    } else {
        (v[mid - 1] as f64 + v[mid] as f64) / 2.0
    }
}

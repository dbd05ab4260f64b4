//! Event time per source: the engine's clock is the minimum over the
//! sources that are active, as Flink and Beam do with per-input
//! watermarks, so one source that delivers late (a batch uploader, a
//! buffering relay, a backfill of last month) does not make every other
//! source's hits "late", and a source in real time does not make the late
//! one's hits "late".
//!
//! Two clocks meet here. *Arrival* is the SIEM's own clock: the newest
//! `received` time of any entry processed (the acknowledgement time, so a
//! replay of the ledger sees the arrivals the live run saw). *Event time* is
//! the sources' clocks. Each source keeps its *lag*: its newest event time
//! minus the arrival at which it reached it. While a source is quiet its
//! event time is assumed to move on with arrival (`arrival + lag`): a quiet
//! source in real time does not hold the clock back, while a relay that
//! delivers three minutes late holds it three minutes back for as long as it
//! is active. A source is idle, and not counted, when nothing of it arrived
//! for `idle_ms` of arrival time (a backfill that ended must not hold the
//! clock a month back), or while the other sources moved event time on by
//! more than `idle_ms` (the *frontier*, the newest event time of any source,
//! capped at arrival): an import or a catch-up delivers days of events in
//! seconds, and a source that sends a few events a day must not hold every
//! other source's hits back until its next one. With no active source the
//! clock is arrival itself.
//!
//! Per entry the cost is one map lookup and one ordered-set update; the
//! minimum is the first active entry of the set (idle ones met on the way
//! are dropped and come back with their next event).

use std::collections::BTreeSet;

use hashbrown::HashMap;

/// Most sources tracked; beyond it the one idle longest is forgotten (it
/// comes back, as a new source, with its next event).
pub(crate) const MAX_SOURCES: usize = 4_096;

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Source {
    name: Box<str>,
    /// Newest event time seen.
    newest: i64,
    /// Newest event time minus the arrival at which it was seen.
    lag: i64,
    /// Arrival of the source's last entry (idleness).
    seen: i64,
    /// The frontier when its last entry arrived (idleness in event time).
    seen_frontier: i64,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct Sources {
    /// Slots; a forgotten source leaves a hole reused by the next new one.
    slots: Vec<Option<Source>>,
    free: Vec<usize>,
    #[serde(with = "crate::rules::snap::pairs")]
    by_name: HashMap<Box<str>, usize>,
    /// (lag, slot) of every source that may be active, smallest lag first.
    lags: BTreeSet<(i64, usize)>,
    arrival: Option<i64>,
    /// Newest event time of any source, each capped at its arrival.
    frontier: i64,
}

impl Sources {
    /// An entry arrived at `received` (any entry, the service's own too:
    /// arrival is the SIEM's clock, not a source's).
    pub fn arrive(&mut self, received: i64) {
        self.arrival = Some(self.arrival.map_or(received, |a| a.max(received)));
    }

    /// An entry of source `name` with event time `time` arrived (after
    /// [`Sources::arrive`]).
    pub fn observe(&mut self, name: &str, time: i64) {
        let arrival = self.arrival.unwrap_or(time);
        self.frontier = self.frontier.max(time.min(arrival));
        let frontier = self.frontier;
        if let Some(&slot) = self.by_name.get(name)
            && let Some(Some(s)) = self.slots.get_mut(slot)
        {
            s.seen = arrival;
            s.seen_frontier = frontier;
            // An event older than the source's newest leaves its lag: the
            // source is where it was, moving on with arrival since then.
            if time >= s.newest {
                s.newest = time;
                let lag = time - arrival;
                if lag != s.lag {
                    self.lags.remove(&(s.lag, slot));
                    s.lag = lag;
                }
            }
            // Back in the minimum when it was dropped as idle.
            self.lags.insert((s.lag, slot));
            return;
        }
        if self.by_name.len() >= MAX_SOURCES {
            self.forget_idlest();
        }
        let s = Source {
            name: name.into(),
            newest: time,
            lag: time - arrival,
            seen: arrival,
            seen_frontier: frontier,
        };
        let slot = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(None);
                self.slots.len() - 1
            }
        };
        self.lags.insert((s.lag, slot));
        self.by_name.insert(s.name.clone(), slot);
        if let Some(x) = self.slots.get_mut(slot) {
            *x = Some(s);
        }
    }

    /// Event time now: arrival plus the smallest lag of an active source
    /// (one whose last entry arrived at most `idle_ms` ago, in arrival time
    /// and in the frontier's event time), or arrival when none is.
    pub fn event_time(&mut self, idle_ms: i64) -> Option<i64> {
        let arrival = self.arrival?;
        while let Some(&(lag, slot)) = self.lags.first() {
            let active = self
                .slots
                .get(slot)
                .and_then(Option::as_ref)
                .is_some_and(|s| {
                    arrival - s.seen <= idle_ms && self.frontier - s.seen_frontier <= idle_ms
                });
            if active {
                return Some(arrival.saturating_add(lag.min(0)));
            }
            // Idle: out of the minimum until its next entry.
            self.lags.pop_first();
        }
        Some(arrival)
    }

    /// The newest event time of any source (each capped at its arrival):
    /// how far the stream has got in event time. An entry this much older
    /// was delivered late, whether the stream is live or a backfill.
    pub fn frontier(&self) -> Option<i64> {
        self.arrival.map(|_| self.frontier)
    }

    /// Source `name`'s own event time now (`arrival + lag`), when known.
    pub fn event_time_of(&self, name: &str) -> Option<i64> {
        let arrival = self.arrival?;
        let s = self.slots.get(*self.by_name.get(name)?)?.as_ref()?;
        // Moving on with arrival, or with the stream's event time when that
        // moved more: an import delivers hours of events in seconds, and a
        // batch's tail must not wait for the source's next batch (the
        // absence deadline of its earlier events would pass meanwhile).
        let by_arrival = arrival.saturating_add(s.lag.min(0));
        let by_frontier = s
            .newest
            .saturating_add((self.frontier - s.seen_frontier).max(0));
        Some(by_arrival.max(by_frontier.min(arrival)))
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    fn forget_idlest(&mut self) {
        let Some(slot) = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (s.seen, i)))
            .min()
            .map(|(_, i)| i)
        else {
            return;
        };
        if let Some(s) = self.slots.get_mut(slot).and_then(Option::take) {
            self.lags.remove(&(s.lag, slot));
            self.by_name.remove(&s.name);
            self.free.push(slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: i64 = 60_000;

    #[test]
    fn real_time_sources_follow_arrival() {
        let mut s = Sources::default();
        s.arrive(1_000);
        s.observe("ehr", 1_000);
        s.arrive(5_000);
        s.observe("idp", 5_000);
        // ehr is quiet but was in real time: it moves on with arrival.
        assert_eq!(s.event_time(IDLE), Some(5_000));
    }

    #[test]
    fn a_late_source_holds_the_clock_back_while_active() {
        let mut s = Sources::default();
        s.arrive(200_000);
        s.observe("ehr", 200_000);
        s.observe("relay", 20_000); // three minutes late
        s.arrive(200_500);
        s.observe("ehr", 200_500);
        assert_eq!(s.event_time(IDLE), Some(20_500));
        // An older event of the relay does not move it back further.
        s.arrive(201_000);
        s.observe("relay", 10_000);
        assert_eq!(s.event_time(IDLE), Some(21_000));
        // Idle: no longer counted.
        s.arrive(200_000 + IDLE + 1);
        s.observe("ehr", 200_000 + IDLE + 1);
        assert_eq!(s.event_time(IDLE), Some(200_000 + IDLE + 1 - 180_000));
        s.arrive(201_000 + IDLE + 1);
        s.observe("ehr", 201_000 + IDLE + 1);
        assert_eq!(s.event_time(IDLE), Some(201_000 + IDLE + 1));
        // Back with its next event.
        s.observe("relay", 30_000);
        assert!(s.event_time(IDLE).is_some_and(|t| t < 40_000));
    }

    #[test]
    fn a_quiet_sources_own_time_moves_on_with_the_stream_in_an_import() {
        // Received months later, all within a second: the lab's batch
        // ends at 10:20, the EHR streams on for an hour of event time.
        let mut s = Sources::default();
        let now = 300 * 86_400_000;
        s.arrive(now);
        s.observe("lis", 10_000);
        assert_eq!(s.event_time_of("lis"), Some(10_000));
        for k in 0..100 {
            s.arrive(now + k);
            s.observe("ehr", 10_000 + k * 36_000);
        }
        assert!(s.event_time_of("lis").unwrap() >= 10_000 + 99 * 36_000);
    }

    #[test]
    fn a_sparse_source_does_not_hold_an_import_back() {
        // An import delivers two days of events in two seconds: the
        // console sends one event, the EHR streams on.
        let mut s = Sources::default();
        let day = 86_400_000;
        // Received months after the events happened.
        let now = 300 * day;
        s.arrive(now);
        s.observe("console", 10);
        for k in 0..2_000 {
            s.arrive(now + k);
            s.observe("ehr", 10 + k * day / 1_000);
        }
        let t = s.event_time(IDLE).unwrap();
        assert!(t > day, "{t}");
    }

    #[test]
    fn future_times_do_not_pass_arrival_and_sources_are_bounded() {
        let mut s = Sources::default();
        s.arrive(1_000);
        s.observe("skewed", 90_000);
        assert_eq!(s.event_time(IDLE), Some(1_000));
        for i in 0..(MAX_SOURCES + 10) {
            s.arrive(2_000 + i as i64);
            s.observe(&format!("s{i}"), 2_000 + i as i64);
        }
        assert_eq!(s.len(), MAX_SOURCES);
        assert!(s.lags.len() <= MAX_SOURCES);
    }
}

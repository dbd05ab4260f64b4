//! Event-time deadlines of correlation state: when an absence's silence is
//! long enough, when a baseline window or a deferred count window closes.
//!
//! A timer fires once the watermark is strictly past its deadline (so a hit
//! at exactly the deadline, which is not late yet, is applied first), and
//! before any hit later than the deadline is applied: the engine interleaves
//! timers with released hits in event-time order, so firing does not depend
//! on arrival order or on how often the watermark moves.

use std::collections::BTreeMap;

use super::engine::GroupKey;

/// (deadline, correlation, sequence): the firing order, unique per timer.
pub(crate) type TimerId = (i64, usize, u64);

/// Pending deadlines of every correlation, earliest first. Each timer names
/// the group it belongs to; the owner keeps the id to cancel or check it.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Timers {
    #[serde(with = "super::snap::pairs")]
    queue: BTreeMap<TimerId, GroupKey>,
    seq: u64,
}

impl Timers {
    pub(crate) fn schedule(&mut self, deadline: i64, ci: usize, key: GroupKey) -> TimerId {
        self.seq += 1;
        let id = (deadline, ci, self.seq);
        self.queue.insert(id, key);
        id
    }

    pub(crate) fn cancel(&mut self, id: TimerId) {
        self.queue.remove(&id);
    }

    /// Removes and returns the earliest timer whose deadline is before `t`.
    pub(crate) fn pop_before(&mut self, t: i64) -> Option<(TimerId, GroupKey)> {
        let (&id, _) = self.queue.first_key_value()?;
        if id.0 >= t {
            return None;
        }
        self.queue.pop_first()
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }
}

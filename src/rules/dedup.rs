//! A pure suppression window: one alert per rule and group key within a
//! window of event time. The service decides what a suppressed alert does
//! (e.g. bump the open alert's count); this only answers yes or no.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::AlertCandidate;

type Key = (String, BTreeMap<String, String>);

/// Remembers when each (rule, group) last alerted; bounded to `max_keys`
/// (the key that alerted longest ago is forgotten first).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Deduplicator {
    window_ms: i64,
    max_keys: usize,
    #[serde(with = "crate::rules::snap::pairs")]
    last: HashMap<Key, (i64, u64)>,
    order: BTreeSet<(i64, u64)>,
    #[serde(with = "crate::rules::snap::pairs")]
    by_order: HashMap<u64, Key>,
    seq: u64,
    forgotten: u64,
}

impl Deduplicator {
    pub fn new(window_ms: i64, max_keys: usize) -> Deduplicator {
        Deduplicator {
            window_ms,
            max_keys: max_keys.max(1),
            last: HashMap::new(),
            order: BTreeSet::new(),
            by_order: HashMap::new(),
            seq: 0,
            forgotten: 0,
        }
    }

    /// True when the alert is new: no alert of the same rule and group whose
    /// `last_time` is within the window before this one's. A suppressed
    /// alert does not extend the window.
    pub fn admit(&mut self, alert: &AlertCandidate) -> bool {
        let t = alert.last_time.unix_ms();
        let key = (alert.rule_id.clone(), alert.group.clone());
        if let Some(&(prev, seq)) = self.last.get(&key) {
            if t >= prev && t - prev < self.window_ms {
                return false;
            }
            self.order.remove(&(prev, seq));
            self.by_order.remove(&seq);
        } else if self.last.len() >= self.max_keys
            && let Some(oldest) = self.order.pop_first()
            && let Some(k) = self.by_order.remove(&oldest.1)
        {
            self.last.remove(&k);
            self.forgotten += 1;
        }
        self.seq += 1;
        self.order.insert((t, self.seq));
        self.by_order.insert(self.seq, key.clone());
        self.last.insert(key, (t, self.seq));
        true
    }

    /// Keys remembered now.
    pub fn len(&self) -> usize {
        self.last.len()
    }

    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }

    /// Keys dropped because the cap was reached.
    pub fn forgotten(&self) -> u64 {
        self.forgotten
    }
}

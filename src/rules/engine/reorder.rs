//! The reorder buffer: hits waiting for the watermark, taken out in
//! [`HitKey`] order.
//!
//! Events nearly always arrive in event-time order, so a hit is usually
//! not before the newest one waiting. Those go to a sorted run (a deque:
//! push and pop are O(1)); only hits that arrive out of order go to a heap.
//! The smaller of the two fronts comes out first, so the order is the same
//! as a single heap's. The heap was a tenth of the engine when every hit
//! took it.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use super::{GroupKey, HitKey, Value};

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct Pending {
    pub key: HitKey,
    pub group: GroupKey,
    pub value: Option<Value>,
    /// Arrival minus event time when the entry was processed, beyond the
    /// allowed lateness (>= 0): how late its source delivered it
    /// (`absence` waits that much longer).
    pub delay: i64,
}

impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        self.key == o.key
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.key.cmp(&o.key)
    }
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct Reorder {
    /// Ascending by key.
    run: VecDeque<Pending>,
    /// Hits that came before the run's newest.
    late: BinaryHeap<Reverse<Pending>>,
}

impl Reorder {
    pub fn len(&self) -> usize {
        self.run.len() + self.late.len()
    }

    pub fn push(&mut self, p: Pending) {
        match self.run.back() {
            Some(b) if p.key < b.key => self.late.push(Reverse(p)),
            _ => self.run.push_back(p),
        }
    }

    /// The smallest key waiting.
    pub fn first(&self) -> Option<HitKey> {
        match (self.run.front(), self.late.peek()) {
            (Some(r), Some(Reverse(l))) => Some(r.key.min(l.key)),
            (Some(r), None) => Some(r.key),
            (None, Some(Reverse(l))) => Some(l.key),
            (None, None) => None,
        }
    }

    /// Removes the hit with the smallest key.
    pub fn pop(&mut self) -> Option<Pending> {
        let from_late = match (self.run.front(), self.late.peek()) {
            (Some(r), Some(Reverse(l))) => l.key < r.key,
            (None, Some(_)) => true,
            _ => false,
        };
        if from_late {
            self.late.pop().map(|Reverse(p)| p)
        } else {
            self.run.pop_front()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn hit(key: HitKey) -> Pending {
        Pending {
            key,
            group: [None].into_iter().collect(),
            value: None,
            delay: 0,
        }
    }

    /// Mostly ordered input with stragglers and interleaved pops comes out
    /// in the same order as from one heap.
    #[test]
    fn pops_in_key_order_like_a_heap() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let mut buf = Reorder::default();
        let mut heap = BinaryHeap::new();
        let mut index = 0u64;
        for round in 0..50_000 {
            index += 1;
            let time = round as i64 * 10
                - if rng.gen_range(0..8) == 0 {
                    rng.gen_range(0..500)
                } else {
                    0
                };
            let key = (time, index, rng.gen_range(0..3), 0);
            buf.push(hit(key));
            heap.push(Reverse(key));
            assert_eq!(buf.len(), heap.len());
            for _ in 0..rng.gen_range(0..3) {
                assert_eq!(buf.first(), heap.peek().map(|r| r.0));
                assert_eq!(buf.pop().map(|p| p.key), heap.pop().map(|r| r.0));
            }
        }
        while let Some(Reverse(k)) = heap.pop() {
            assert_eq!(buf.pop().map(|p| p.key), Some(k));
        }
        assert!(buf.pop().is_none() && buf.first().is_none());
    }
}

//! Per-rule group state: the group-by key and a bounded map of groups
//! ordered by their newest hit, shared by count windows, `first_seen`,
//! `absence` and `baseline`.
//!
//! Nearly every event is a hit of some group (the source-silence and
//! baseline rules take almost all of them), so a hit must cost one hash
//! lookup and nothing else:
//! - a [`GroupKey`] carries its hash, computed once when the hit is made,
//!   so the reorder buffer, the look-ahead and the state maps never hash
//!   its strings again;
//! - the idle order (for expiry and eviction) is a min-heap with at most one
//!   live entry per group, left behind when the group is hit again and
//!   refreshed only when it reaches the top. Keeping an exact order on every
//!   hit (a `BTreeMap` remove and insert) was a sixth of the engine.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::ops::Deref;

use hashbrown::hash_map::EntryRef;
use std::sync::{Arc, OnceLock};

/// Hash maps of per-event state: foldhash (randomly seeded) instead of
/// SipHash, which was a fifth of the engine's time; keys are bounded per
/// rule (`max_groups_per_rule`, `max_hits_per_group`).
pub(crate) type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// One process-wide random seed for the hashes keys carry: group values come
/// from events, so the seed must not be predictable (hash flooding).
fn key_hasher() -> &'static foldhash::fast::RandomState {
    static SEED: OnceLock<foldhash::fast::RandomState> = OnceLock::new();
    SEED.get_or_init(foldhash::fast::RandomState::default)
}

/// A correlation group: its group-by values in order (`None`: the events
/// lack the field). Cloning is a reference count; equal keys made apart are
/// equal (the hash first, then the values).
#[derive(Clone)]
pub(crate) struct GroupKey {
    hash: u64,
    values: Arc<[Option<Box<str>>]>,
}

impl FromIterator<Option<Box<str>>> for GroupKey {
    fn from_iter<I: IntoIterator<Item = Option<Box<str>>>>(iter: I) -> Self {
        let values: Arc<[Option<Box<str>>]> = iter.into_iter().collect();
        GroupKey {
            hash: key_hasher().hash_one(&*values),
            values,
        }
    }
}

/// For `entry_ref`: a new group's key is a clone (a reference count).
impl From<&GroupKey> for GroupKey {
    fn from(k: &GroupKey) -> Self {
        k.clone()
    }
}

impl Deref for GroupKey {
    type Target = [Option<Box<str>>];
    fn deref(&self) -> &Self::Target {
        &self.values
    }
}

impl PartialEq for GroupKey {
    fn eq(&self, o: &Self) -> bool {
        self.hash == o.hash && (Arc::ptr_eq(&self.values, &o.values) || self.values == o.values)
    }
}
impl Eq for GroupKey {}

impl Hash for GroupKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// Snapshots keep the values only: the hash is the process's own (its seed
/// is random) and is computed again when a key is read back.
impl serde::Serialize for GroupKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.values.iter())
    }
}

impl<'de> serde::Deserialize<'de> for GroupKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let values: Vec<Option<Box<str>>> = serde::Deserialize::deserialize(d)?;
        Ok(values.into_iter().collect())
    }
}

impl std::fmt::Debug for GroupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.values.iter()).finish()
    }
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Tracked<V> {
    value: V,
    /// The newest hit's time.
    last: i64,
    /// The sequence of the group's live idle entry.
    entry: u64,
}

/// Groups of one rule, at most `cap` of them, each with the time of its
/// newest hit. The idle heap holds `(time, seq, key)`: a group's live entry
/// (its `entry` seq) has a time at or before its newest hit, so the top
/// live entry whose time is the group's newest hit is the group idle longest.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(bound(
    serialize = "V: serde::Serialize",
    deserialize = "V: serde::Deserialize<'de>"
))]
pub(crate) struct Groups<V> {
    /// hashbrown for `entry_ref` (std's `entry` takes an owned key).
    #[serde(with = "super::snap::pairs")]
    map: hashbrown::HashMap<GroupKey, Tracked<V>, foldhash::fast::RandomState>,
    idle: BinaryHeap<Reverse<(i64, u64, IdleKey)>>,
    seq: u64,
}

/// A key in the idle heap: ordered by nothing (the time and seq before it
/// are unique), so the heap never compares strings.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct IdleKey(GroupKey);
impl PartialEq for IdleKey {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for IdleKey {}
impl PartialOrd for IdleKey {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for IdleKey {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

impl<V> Default for Groups<V> {
    fn default() -> Self {
        Groups {
            map: hashbrown::HashMap::default(),
            idle: BinaryHeap::new(),
            seq: 0,
        }
    }
}

/// The result of [`Groups::hit`].
pub(crate) struct Hit<'a, V> {
    pub value: &'a mut V,
    /// The group's newest hit before this one (`None`: a new group).
    pub previous: Option<i64>,
    /// The group evicted to make room for a new one.
    pub evicted: Option<V>,
}

impl<V> Groups<V> {
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn get(&self, key: &GroupKey) -> Option<&V> {
        self.map.get(key).map(|t| &t.value)
    }

    pub(crate) fn get_mut(&mut self, key: &GroupKey) -> Option<&mut V> {
        self.map.get_mut(key).map(|t| &mut t.value)
    }

    /// Removes a group (its idle entry goes stale and is skipped later).
    pub(crate) fn remove(&mut self, key: &GroupKey) -> Option<V> {
        let v = self.map.remove(key).map(|t| t.value);
        self.compact();
        v
    }

    /// Records a hit of `key` at `t`, creating the group with `new` when it
    /// is missing (first evicting the group idle longest when there are
    /// `cap` already). The newest hit time only moves forward.
    pub(crate) fn hit(
        &mut self,
        key: &GroupKey,
        t: i64,
        cap: usize,
        new: impl FnOnce() -> V,
    ) -> Hit<'_, V> {
        let evicted = if self.map.len() >= cap.max(1) && !self.map.contains_key(key) {
            self.pop_idle_before(i64::MAX).map(|(_, v)| v)
        } else {
            None
        };
        self.seq += 1;
        let seq = self.seq;
        // One lookup; the key is cloned only for a new group.
        match self.map.entry_ref(key) {
            EntryRef::Occupied(o) => {
                let g = o.into_mut();
                let previous = g.last;
                g.last = g.last.max(t);
                Hit {
                    value: &mut g.value,
                    previous: Some(previous),
                    evicted,
                }
            }
            EntryRef::Vacant(v) => {
                self.idle.push(Reverse((t, seq, IdleKey(key.clone()))));
                let g = v.insert(Tracked {
                    value: new(),
                    last: t,
                    entry: seq,
                });
                Hit {
                    value: &mut g.value,
                    previous: None,
                    evicted,
                }
            }
        }
    }

    /// Removes and returns the group idle longest when its newest hit is
    /// before `before`.
    pub(crate) fn pop_idle_before(&mut self, before: i64) -> Option<(GroupKey, V)> {
        loop {
            let Reverse((t, seq, _)) = self.idle.peek()?;
            if *t >= before {
                return None;
            }
            let (t, seq) = (*t, *seq);
            let Reverse((_, _, IdleKey(key))) = self.idle.pop()?;
            let Some(g) = self.map.get_mut(&key) else {
                continue; // removed since
            };
            if g.entry != seq {
                continue; // removed and made again since
            }
            if t == g.last {
                // Up to date, so no group was hit less recently.
                let g = self.map.remove(&key)?;
                return Some((key, g.value));
            }
            // Hit since the entry was made: its entry moves to its newest hit.
            self.seq += 1;
            g.entry = self.seq;
            self.idle.push(Reverse((g.last, self.seq, IdleKey(key))));
        }
    }

    /// Rebuilds the idle heap when stale entries (of removed groups)
    /// outnumber live ones, so it stays within twice the groups.
    fn compact(&mut self) {
        if self.idle.len() <= 2 * self.map.len() + 64 {
            return;
        }
        let mut live = Vec::with_capacity(self.map.len());
        for (k, g) in &mut self.map {
            self.seq += 1;
            g.entry = self.seq;
            live.push(Reverse((g.last, self.seq, IdleKey(k.clone()))));
        }
        self.idle = BinaryHeap::from(live);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> GroupKey {
        [Some(Box::<str>::from(s))].into_iter().collect()
    }

    #[test]
    fn keys_made_apart_are_equal_and_hash_alike() {
        let (a, b) = (key("alice"), key("alice"));
        assert_eq!(a, b);
        assert_eq!(a.hash, b.hash);
        assert_ne!(a, key("bob"));
        let none: GroupKey = [None].into_iter().collect();
        assert_ne!(none, key(""));
        let mut m: Map<GroupKey, u8> = Map::default();
        m.insert(a, 1);
        assert_eq!(m.get(&b), Some(&1));
    }

    #[test]
    fn expiry_follows_the_newest_hit() {
        let mut g: Groups<u32> = Groups::default();
        g.hit(&key("a"), 10, 100, || 0);
        g.hit(&key("b"), 20, 100, || 0);
        *g.hit(&key("a"), 30, 100, || 0).value += 1;
        // a's entry says 10 but a was hit at 30: b goes first.
        assert_eq!(g.pop_idle_before(25).map(|(k, _)| k), Some(key("b")));
        assert!(g.pop_idle_before(25).is_none());
        assert_eq!(g.len(), 1);
        assert_eq!(g.pop_idle_before(31), Some((key("a"), 1)));
        assert!(g.pop_idle_before(i64::MAX).is_none());
    }

    #[test]
    fn eviction_takes_the_group_idle_longest() {
        let mut g: Groups<&str> = Groups::default();
        g.hit(&key("a"), 1, 2, || "a");
        g.hit(&key("b"), 2, 2, || "b");
        g.hit(&key("a"), 3, 2, || "a");
        let h = g.hit(&key("c"), 4, 2, || "c");
        assert_eq!(h.evicted, Some("b"));
        assert_eq!(h.previous, None);
        assert_eq!(g.len(), 2);
        assert!(g.get(&key("b")).is_none());
        let h = g.hit(&key("a"), 5, 2, || "x");
        assert_eq!((h.previous, h.evicted), (Some(3), None));
    }

    #[test]
    fn a_group_removed_and_made_again_is_not_expired_by_its_old_entry() {
        let mut g: Groups<u8> = Groups::default();
        g.hit(&key("a"), 1, 10, || 1);
        assert_eq!(g.remove(&key("a")), Some(1));
        g.hit(&key("a"), 50, 10, || 2);
        assert!(g.pop_idle_before(10).is_none());
        assert_eq!(g.get(&key("a")), Some(&2));
        assert!(g.pop_idle_before(50).is_none());
        assert_eq!(g.pop_idle_before(51), Some((key("a"), 2)));
    }

    #[test]
    fn stale_entries_stay_bounded() {
        let mut g: Groups<u8> = Groups::default();
        g.hit(&key("keep"), 0, 10, || 0);
        for t in 0..10_000 {
            g.hit(&key("x"), t, 10, || 0);
            g.remove(&key("x"));
        }
        assert!(g.idle.len() <= 2 * g.len() + 65, "{}", g.idle.len());
        assert_eq!(g.pop_idle_before(1).map(|(k, _)| k), Some(key("keep")));
    }

    /// Against a brute-force model: expiry and eviction give the same
    /// groups as ordering by newest hit (ties by first touch).
    #[test]
    fn matches_an_exact_order() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut g: Groups<()> = Groups::default();
        let mut model: Vec<(String, i64)> = Vec::new();
        let mut t = 0;
        for _ in 0..20_000 {
            t += rng.gen_range(0..3);
            let name = format!("k{}", rng.gen_range(0..40));
            match rng.gen_range(0..10) {
                0 => {
                    let before = t - rng.gen_range(0..30);
                    let mut expect: Vec<String> = model
                        .iter()
                        .filter(|(_, l)| *l < before)
                        .map(|(k, _)| k.clone())
                        .collect();
                    expect.sort();
                    let mut got = Vec::new();
                    while let Some((k, _)) = g.pop_idle_before(before) {
                        got.push(k[0].as_deref().unwrap_or_default().to_string());
                    }
                    got.sort();
                    assert_eq!(got, expect);
                    model.retain(|(_, l)| *l >= before);
                }
                1 => {
                    assert_eq!(g.remove(&key(&name)).is_some(), {
                        let n = model.len();
                        model.retain(|(k, _)| *k != name);
                        n != model.len()
                    });
                }
                _ => {
                    let h = g.hit(&key(&name), t, 25, || ());
                    let (previous, evicted) = (h.previous, h.evicted.is_some());
                    if let Some(m) = model.iter_mut().find(|(k, _)| *k == name) {
                        assert_eq!(previous, Some(m.1));
                        assert!(!evicted);
                        m.1 = t;
                    } else {
                        assert_eq!(previous, None);
                        assert_eq!(evicted, model.len() == 25);
                        if evicted {
                            // The one that went had the oldest newest hit
                            // (ties: any of them).
                            let oldest = model.iter().map(|(_, l)| *l).min();
                            let gone = model.iter().position(|(k, _)| g.get(&key(k)).is_none());
                            let p = gone.unwrap_or_else(|| panic!("nothing evicted"));
                            assert_eq!(Some(model[p].1), oldest);
                            model.remove(p);
                        }
                        model.push((name, t));
                    }
                    assert_eq!(g.len(), model.len());
                }
            }
        }
    }
}

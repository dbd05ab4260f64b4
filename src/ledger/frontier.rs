//! A compact range over the leaves appended so far: the roots of the perfect
//! subtrees that make up the first `n` leaves, O(log n) hashes in all. It gives
//! the RFC 6962 root of a growing tree without keeping its leaves, which is how
//! `verify` walks a log of any length in constant memory.

use super::hash::{EMPTY_ROOT, Hash, node_hash};

#[derive(Clone, Debug, Default)]
pub struct Frontier {
    /// Perfect subtree roots, largest (leftmost) first.
    peaks: Vec<Hash>,
    size: u64,
}

impl Frontier {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn push(&mut self, leaf: Hash) {
        let mut hash = leaf;
        // Each trailing one bit of the old size is a peak that merges with the new leaf.
        let mut merges = self.size.trailing_ones();
        while merges > 0 {
            // A peak exists for every one bit of `size`, so pop cannot fail here.
            let Some(left) = self.peaks.pop() else { break };
            hash = node_hash(&left, &hash);
            merges -= 1;
        }
        self.peaks.push(hash);
        self.size += 1;
    }

    /// Root of the leaves pushed so far: peaks folded from the right, since the
    /// RFC 6962 split point is always the largest peak.
    pub fn root(&self) -> Hash {
        let mut iter = self.peaks.iter().rev();
        let Some(last) = iter.next() else {
            return EMPTY_ROOT;
        };
        iter.fold(*last, |acc, peak| node_hash(peak, &acc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::hash::{leaf_hash, merkle_root};

    #[test]
    fn root_matches_rs_merkle_for_every_size() {
        let leaves: Vec<Hash> = (0u32..520).map(|i| leaf_hash(&i.to_le_bytes())).collect();
        let mut f = Frontier::new();
        assert_eq!(f.root(), EMPTY_ROOT);
        for (i, l) in leaves.iter().enumerate() {
            f.push(*l);
            assert_eq!(f.size(), i as u64 + 1);
            assert_eq!(f.root(), merkle_root(&leaves[..=i]), "size {}", i + 1);
            assert_eq!(f.peaks.len() as u32, f.size().count_ones());
        }
    }
}

//! RFC 6962 hashing (LEDGER.md §2 "Hashes"): leaves are `SHA-256(0x00 ||
//! data)`, interior nodes `SHA-256(0x01 || left || right)`, and the tree
//! over `n` leaves splits at the largest power of two below `n`.

use sha2::{Digest, Sha256};

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// Root of the empty tree: `SHA-256("")` (RFC 6962 §2.1).
pub const EMPTY_ROOT: Hash = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// `SHA-256(0x00 || data)`: the hash of one leaf.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`: the hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Plain SHA-256 (record chaining `prev`, key ids, dictionary names).
pub fn sha256(data: &[u8]) -> Hash {
    Sha256::digest(data).into()
}

/// Merkle tree hash of `leaves`, computed bottom-up in `scratch`. Pairing
/// neighbours level by level and promoting a lone right-most node unchanged
/// gives exactly the RFC 6962 split at the largest power of two.
pub fn root_of_leaves(leaves: &[Hash], scratch: &mut Vec<Hash>) -> Hash {
    scratch.clear();
    scratch.extend_from_slice(leaves);
    let mut n = scratch.len();
    if n == 0 {
        return EMPTY_ROOT;
    }
    while n > 1 {
        let mut w = 0;
        let mut i = 0;
        while i + 1 < n {
            scratch[w] = node_hash(&scratch[i], &scratch[i + 1]);
            w += 1;
            i += 2;
        }
        if i < n {
            scratch[w] = scratch[i];
            w += 1;
        }
        n = w;
    }
    scratch[0]
}

/// [`root_of_leaves`] with its own scratch space.
pub fn merkle_root(leaves: &[Hash]) -> Hash {
    root_of_leaves(leaves, &mut Vec::with_capacity(leaves.len()))
}

/// The roots of the perfect subtrees over the leaves pushed so far (a
/// "compact range"): the RFC 6962 root of a growing tree in O(log n) memory.
#[derive(Clone, Debug, Default)]
pub struct Frontier {
    /// Perfect subtree roots, largest (leftmost) first.
    peaks: Vec<Hash>,
    size: u64,
}

impl Frontier {
    pub fn push(&mut self, leaf: Hash) {
        let mut hash = leaf;
        // Each trailing one bit of the old size is a peak that merges.
        for _ in 0..self.size.trailing_ones() {
            let Some(left) = self.peaks.pop() else { break };
            hash = node_hash(&left, &hash);
        }
        self.peaks.push(hash);
        self.size += 1;
    }

    /// Root of the leaves so far: peaks folded from the right.
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

    /// The recursive definition of RFC 6962 §2.1, for comparison.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => EMPTY_ROOT,
            1 => leaves[0],
            n => {
                let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    #[test]
    fn roots_match_the_recursive_definition_and_the_frontier() {
        assert_eq!(EMPTY_ROOT, sha256(b""));
        let mut f = Frontier::default();
        let mut leaves = Vec::new();
        for i in 0u32..70 {
            assert_eq!(f.root(), mth(&leaves));
            assert_eq!(merkle_root(&leaves), mth(&leaves));
            let l = leaf_hash(&i.to_be_bytes());
            leaves.push(l);
            f.push(l);
        }
        // Domain separation: a leaf is never an interior node.
        assert_ne!(leaf_hash(&[1; 64]), sha256(&[1; 64]));
    }
}

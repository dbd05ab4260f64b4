//! RFC 9162 Merkle proofs. Verification (§2.1.3.2, §2.1.4.2) is the
//! verifier crate's (`sealtrail_verify::merkle`, re-exported here: one
//! implementation, checked against the transparency-dev vectors by
//! tests/conformance.rs); this module adds generation (§2.1.3.1, §2.1.4.1).
//!
//! Generation asks a [`SubtreeHashes`] source for the hashes of exactly the
//! subtrees the RFC names, so the ledger can serve them from disk.

pub use sealtrail_verify::merkle::{
    ProofError, TreeConsistency, TreeInclusion, consistency_proof_len, inclusion_proof_len,
    root_from_inclusion_proof, verify_consistency, verify_inclusion,
};

use super::hash::{Hash, merkle_root};

/// A source of subtree hashes for proof generation.
pub trait SubtreeHashes {
    type Error;
    /// RFC 6962 Merkle tree hash of leaves `[start, end)`, `start < end`.
    /// Requested ranges are always either an aligned complete subtree
    /// `[j * 2^k, (j + 1) * 2^k)` or a range ending at the tree size.
    fn subtree_hash(&mut self, start: u64, end: u64) -> Result<Hash, Self::Error>;
}

/// Why a proof could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum GenError<E> {
    #[error("leaf index {index} is out of range for tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("size1 {size1} is greater than size2 {size2}")]
    Size1GreaterThanSize2 { size1: u64, size2: u64 },
    #[error("consistency with the empty tree proves nothing")]
    Size1Zero,
    #[error("reading subtree hash")]
    Source(#[source] E),
}

/// The inclusion path of `leaf_index` in the tree of `tree_size` leaves,
/// leaf to root (RFC 9162 §2.1.3.1 PATH).
pub fn inclusion_proof<S: SubtreeHashes>(
    leaf_index: u64,
    tree_size: u64,
    s: &mut S,
) -> Result<Vec<Hash>, GenError<S::Error>> {
    if leaf_index >= tree_size {
        return Err(GenError::IndexOutOfRange {
            index: leaf_index,
            size: tree_size,
        });
    }
    // PATH(m, D[start:end]) unrolled top-down; siblings come out root first.
    let (mut m, mut start, end) = (leaf_index, 0u64, tree_size);
    let mut n = end - start;
    let mut path = Vec::with_capacity(inclusion_proof_len(leaf_index, tree_size));
    while n > 1 {
        let k = super::hash::split_point(n);
        if m < k {
            path.push(
                s.subtree_hash(start + k, start + n)
                    .map_err(GenError::Source)?,
            );
            n = k;
        } else {
            path.push(s.subtree_hash(start, start + k).map_err(GenError::Source)?);
            m -= k;
            start += k;
            n -= k;
        }
    }
    path.reverse();
    Ok(path)
}

/// The consistency proof from the tree of `size1` leaves to the tree of
/// `size2` leaves (RFC 9162 §2.1.4.1 PROOF/SUBPROOF). Empty if the sizes are
/// equal.
pub fn consistency_proof<S: SubtreeHashes>(
    size1: u64,
    size2: u64,
    s: &mut S,
) -> Result<Vec<Hash>, GenError<S::Error>> {
    match (size1, size2) {
        (s1, s2) if s1 > s2 => return Err(GenError::Size1GreaterThanSize2 { size1, size2 }),
        (0, _) => return Err(GenError::Size1Zero),
        (s1, s2) if s1 == s2 => return Ok(Vec::new()),
        _ => {}
    }
    // SUBPROOF(m, D[start:start+n], b) unrolled top-down.
    let (mut m, mut start, mut n, mut b) = (size1, 0u64, size2, true);
    let mut proof = Vec::with_capacity(consistency_proof_len(size1, size2));
    while m != n {
        let k = super::hash::split_point(n);
        if m <= k {
            proof.push(
                s.subtree_hash(start + k, start + n)
                    .map_err(GenError::Source)?,
            );
            n = k;
        } else {
            proof.push(s.subtree_hash(start, start + k).map_err(GenError::Source)?);
            m -= k;
            start += k;
            n -= k;
            b = false;
        }
    }
    if !b {
        proof.push(s.subtree_hash(start, start + n).map_err(GenError::Source)?);
    }
    proof.reverse();
    Ok(proof)
}

/// Leaf hashes held in memory, as a [`SubtreeHashes`] source for tests and
/// small trees.
#[derive(Clone, Copy, Debug)]
pub struct LeafHashes<'a>(pub &'a [Hash]);

/// A subtree range outside the leaves held by [`LeafHashes`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("subtree [{start}, {end}) is outside the {len} leaves held")]
pub struct RangeError {
    pub start: u64,
    pub end: u64,
    pub len: usize,
}

impl SubtreeHashes for LeafHashes<'_> {
    type Error = RangeError;

    fn subtree_hash(&mut self, start: u64, end: u64) -> Result<Hash, RangeError> {
        let err = || RangeError {
            start,
            end,
            len: self.0.len(),
        };
        let from = usize::try_from(start).map_err(|_| err())?;
        let to = usize::try_from(end).map_err(|_| err())?;
        match self.0.get(from..to) {
            Some(leaves) if !leaves.is_empty() => Ok(merkle_root(leaves)),
            _ => Err(err()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::hash::EMPTY_ROOT;
    use crate::ledger::hash::leaf_hash;
    use proptest::prelude::*;

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    /// Records every range asked for and checks it is one the RFC names.
    struct Checked<'a> {
        leaves: LeafHashes<'a>,
        tree_size: u64,
    }

    impl SubtreeHashes for Checked<'_> {
        type Error = RangeError;
        fn subtree_hash(&mut self, start: u64, end: u64) -> Result<Hash, RangeError> {
            let len = end - start;
            let aligned = len.is_power_of_two() && start.is_multiple_of(len);
            assert!(
                aligned || end == self.tree_size,
                "range [{start}, {end}) is neither aligned nor at the right edge of {}",
                self.tree_size
            );
            self.leaves.subtree_hash(start, end)
        }
    }

    #[test]
    fn every_inclusion_proof_up_to_64_verifies() {
        let all = leaves(64);
        for size in 1..=64u64 {
            let tree = &all[..size as usize];
            let root = merkle_root(tree);
            let mut src = Checked {
                leaves: LeafHashes(tree),
                tree_size: size,
            };
            for index in 0..size {
                let proof = inclusion_proof(index, size, &mut src).unwrap();
                assert_eq!(proof.len(), inclusion_proof_len(index, size));
                let v = verify_inclusion(index, size, &tree[index as usize], &proof, &root)
                    .unwrap_or_else(|e| panic!("index {index} size {size}: {e}"));
                assert_eq!((v.leaf_index, v.tree_size, v.root), (index, size, root));
            }
            assert!(matches!(
                inclusion_proof(size, size, &mut src),
                Err(GenError::IndexOutOfRange { .. })
            ));
        }
    }

    #[test]
    fn every_consistency_proof_up_to_64_verifies() {
        let all = leaves(64);
        for size2 in 1..=64u64 {
            let tree = &all[..size2 as usize];
            let root2 = merkle_root(tree);
            let mut src = Checked {
                leaves: LeafHashes(tree),
                tree_size: size2,
            };
            for size1 in 1..=size2 {
                let root1 = merkle_root(&tree[..size1 as usize]);
                let proof = consistency_proof(size1, size2, &mut src).unwrap();
                if size1 < size2 {
                    assert_eq!(proof.len(), consistency_proof_len(size1, size2));
                }
                let v = verify_consistency(size1, size2, &proof, &root1, &root2)
                    .unwrap_or_else(|e| panic!("size1 {size1} size2 {size2}: {e}"));
                assert_eq!((v.size1, v.size2), (size1, size2));
            }
            assert!(matches!(
                consistency_proof(0, size2, &mut src),
                Err(GenError::Size1Zero)
            ));
            assert!(matches!(
                consistency_proof(size2 + 1, size2, &mut src),
                Err(GenError::Size1GreaterThanSize2 { .. })
            ));
        }
    }

    #[test]
    fn edge_cases_have_their_own_errors() {
        let no: [Hash; 0] = [];
        let h = [7u8; 32];
        assert_eq!(
            verify_inclusion(0, 0, &h, &no, &EMPTY_ROOT),
            Err(ProofError::EmptyTree)
        );
        assert_eq!(
            verify_inclusion(3, 3, &h, &no, &h),
            Err(ProofError::IndexOutOfRange { index: 3, size: 3 })
        );
        assert_eq!(
            verify_inclusion(0, 1, &h[..31], &no, &h),
            Err(ProofError::WrongHashLength {
                what: "leaf hash".into(),
                len: 31
            })
        );
        assert_eq!(
            verify_inclusion(0, 2, &h, &[&h[..]], &h[..0]),
            Err(ProofError::WrongHashLength {
                what: "root".into(),
                len: 0
            })
        );
        assert_eq!(
            verify_inclusion(0, 2, &h, &no, &h),
            Err(ProofError::ProofLength { got: 0, want: 1 })
        );
        assert_eq!(
            verify_inclusion(0, 1, &h, &[h], &h),
            Err(ProofError::ProofLength { got: 1, want: 0 })
        );
        assert_eq!(
            verify_inclusion(0, 1, &h, &no, &[8u8; 32]),
            Err(ProofError::RootMismatch("root"))
        );
        assert_eq!(
            verify_consistency(2, 1, &no, &h, &h),
            Err(ProofError::Size1GreaterThanSize2 { size1: 2, size2: 1 })
        );
        assert_eq!(
            verify_consistency(1, 1, &[h], &h, &h),
            Err(ProofError::NonEmptyProofForEqualSizes { len: 1 })
        );
        assert_eq!(
            verify_consistency(0, 0, &no, &h, &h),
            Err(ProofError::EmptyTreeRootNotEmptyHash)
        );
        assert!(verify_consistency(0, 0, &no, &EMPTY_ROOT, &EMPTY_ROOT).is_ok());
        assert_eq!(
            verify_consistency(1, 1, &no, &h, &[8u8; 32]),
            Err(ProofError::EqualSizesRootsDiffer)
        );
        assert_eq!(
            verify_consistency(0, 1, &[h], &EMPTY_ROOT, &h),
            Err(ProofError::Size1Zero)
        );
        assert_eq!(
            verify_consistency(1, 2, &no, &h, &h),
            Err(ProofError::EmptyProof)
        );
        assert_eq!(
            verify_consistency(1, 2, &[&h[..], &h[..]], &h, &h),
            Err(ProofError::ProofLength { got: 2, want: 1 })
        );
        assert_eq!(
            verify_consistency(3, 4, &[&h[..]], &h, &h),
            Err(ProofError::ProofLength { got: 1, want: 3 })
        );
        assert_eq!(
            verify_consistency(1, 2, &[&h[..]], &h, &h[..5]),
            Err(ProofError::WrongHashLength {
                what: "root2".into(),
                len: 5
            })
        );
        assert_eq!(
            verify_consistency(1, 2, &[&h[..3]], &h, &h),
            Err(ProofError::WrongHashLength {
                what: "proof hash 0".into(),
                len: 3
            })
        );
        let tree = leaves(4);
        let root3 = merkle_root(&tree[..3]);
        let root4 = merkle_root(&tree);
        let proof = consistency_proof(3, 4, &mut LeafHashes(&tree)).unwrap();
        assert!(verify_consistency(3, 4, &proof, &root3, &root4).is_ok());
        assert_eq!(
            verify_consistency(3, 4, &proof, &h, &root4),
            Err(ProofError::RootMismatch("root1"))
        );
        assert_eq!(
            verify_consistency(3, 4, &proof, &root3, &h),
            Err(ProofError::RootMismatch("root2"))
        );
        // A proof longer than any tree allows is rejected before it is read.
        let huge = vec![h; 10_000];
        assert_eq!(
            verify_inclusion(5, u64::MAX, &h, &huge, &h),
            Err(ProofError::ProofLength {
                got: 10_000,
                want: 64
            })
        );
    }

    #[test]
    fn huge_trees_do_not_overflow() {
        // Only the proof length is computed; no subtree is hashed.
        assert_eq!(inclusion_proof_len(u64::MAX - 1, u64::MAX), 63);
        assert_eq!(inclusion_proof_len(5, u64::MAX), 64);
        assert_eq!(inclusion_proof_len(0, u64::MAX), 64);
        assert!(consistency_proof_len(u64::MAX - 1, u64::MAX) <= 65);
        assert!(consistency_proof_len(1, u64::MAX) <= 65);
    }

    /// Which side each proof hash joins on, bottom up (true = left), derived
    /// from the generation recursion rather than the verifier: two index/size
    /// pairs with the same shape make the verifier compute the same thing, so
    /// only pairs whose shape differs must be rejected.
    fn inclusion_shape(index: u64, size: u64) -> Option<Vec<bool>> {
        if index >= size {
            return None;
        }
        let (mut m, mut n, mut shape) = (index, size, Vec::new());
        while n > 1 {
            let k = crate::ledger::hash::split_point(n);
            if m < k {
                shape.push(false);
                n = k;
            } else {
                shape.push(true);
                m -= k;
                n -= k;
            }
        }
        shape.reverse();
        Some(shape)
    }

    /// As `inclusion_shape`, plus whether the old root is the seed.
    fn consistency_shape(size1: u64, size2: u64) -> Option<(bool, Vec<bool>)> {
        if size1 == 0 || size1 >= size2 {
            return None;
        }
        let (mut m, mut n, mut b, mut shape) = (size1, size2, true, Vec::new());
        while m != n {
            let k = crate::ledger::hash::split_point(n);
            if m <= k {
                shape.push(false);
                n = k;
            } else {
                shape.push(true);
                m -= k;
                n -= k;
                b = false;
            }
        }
        shape.reverse();
        Some((b, shape))
    }

    #[derive(Clone, Debug)]
    enum Change {
        FlipLeaf(usize),
        FlipRoot(usize),
        FlipProof(usize, usize),
        Drop(usize),
        Insert(usize, [u8; 32]),
        Index(u64),
        Size(u64),
    }

    fn change() -> impl Strategy<Value = Change> {
        prop_oneof![
            (0..256usize).prop_map(Change::FlipLeaf),
            (0..256usize).prop_map(Change::FlipRoot),
            (any::<usize>(), 0..256usize).prop_map(|(i, b)| Change::FlipProof(i, b)),
            any::<usize>().prop_map(Change::Drop),
            (any::<usize>(), any::<[u8; 32]>()).prop_map(|(i, h)| Change::Insert(i, h)),
            (0..3000u64).prop_map(Change::Index),
            (0..3000u64).prop_map(Change::Size),
        ]
    }

    fn flip(h: &mut Hash, bit: usize) {
        h[bit / 8] ^= 1 << (bit % 8);
    }

    proptest! {
        #[test]
        fn inclusion_round_trips_and_rejects_any_change(
            size in 1..2000u64, index_seed in any::<u64>(), ch in change(),
        ) {
            let tree = leaves(size);
            let index = index_seed % size;
            let root = merkle_root(&tree);
            let mut leaf = tree[index as usize];
            let mut proof = inclusion_proof(index, size, &mut LeafHashes(&tree)).unwrap();
            prop_assert!(verify_inclusion(index, size, &leaf, &proof, &root).is_ok());

            let (mut i2, mut s2, mut root2) = (index, size, root);
            match ch {
                Change::FlipLeaf(b) => flip(&mut leaf, b),
                Change::FlipRoot(b) => flip(&mut root2, b),
                Change::FlipProof(i, b) => {
                    prop_assume!(!proof.is_empty());
                    let n = proof.len();
                    flip(&mut proof[i % n], b);
                }
                Change::Drop(i) => {
                    prop_assume!(!proof.is_empty());
                    let n = proof.len();
                    proof.remove(i % n);
                }
                Change::Insert(i, h) => {
                    let n = proof.len();
                    proof.insert(i % (n + 1), h);
                }
                Change::Index(i) => i2 = i,
                Change::Size(s) => s2 = s,
            }
            let unchanged = (i2, s2) == (index, size)
                || inclusion_shape(i2, s2) == inclusion_shape(index, size);
            prop_assume!(!matches!(ch, Change::Index(_) | Change::Size(_)) || !unchanged);
            prop_assert!(verify_inclusion(i2, s2, &leaf, &proof, &root2).is_err());
        }

        #[test]
        fn consistency_round_trips_and_rejects_any_change(
            size2 in 2..2000u64, size1_seed in any::<u64>(), ch in change(),
        ) {
            let tree = leaves(size2);
            let size1 = 1 + size1_seed % (size2 - 1);
            let mut root1 = merkle_root(&tree[..size1 as usize]);
            let root2 = merkle_root(&tree);
            let mut proof = consistency_proof(size1, size2, &mut LeafHashes(&tree)).unwrap();
            prop_assert!(verify_consistency(size1, size2, &proof, &root1, &root2).is_ok());

            let (mut s1, mut s2, mut r2) = (size1, size2, root2);
            match ch {
                Change::FlipLeaf(b) => flip(&mut root1, b),
                Change::FlipRoot(b) => flip(&mut r2, b),
                Change::FlipProof(i, b) => {
                    let n = proof.len();
                    flip(&mut proof[i % n], b);
                }
                Change::Drop(i) => {
                    let n = proof.len();
                    proof.remove(i % n);
                }
                Change::Insert(i, h) => {
                    let n = proof.len();
                    proof.insert(i % (n + 1), h);
                }
                Change::Index(s) => s1 = s,
                Change::Size(s) => s2 = s,
            }
            let unchanged = (s1, s2) == (size1, size2)
                || consistency_shape(s1, s2) == consistency_shape(size1, size2);
            prop_assume!(!matches!(ch, Change::Index(_) | Change::Size(_)) || !unchanged);
            prop_assert!(verify_consistency(s1, s2, &proof, &root1, &r2).is_err());
        }
    }
}

//! RFC 9162 Merkle proof verification (LEDGER.md §2, RFC 9162 §2.1.3.2
//! inclusion and §2.1.4.2 consistency), written out step by step after the
//! RFC. Proof lengths are checked exactly against the tree shape before
//! anything is hashed; success returns a `Verified<TreeInclusion>` /
//! `Verified<TreeConsistency>`.

use crate::hash::{EMPTY_ROOT, Hash, node_hash};
use crate::verified::Verified;

/// Why a proof was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("leaf index {index} is out of range for tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("tree size is zero: the empty tree has no leaves")]
    EmptyTree,
    /// `what`: "leaf hash", "root", "root1", "root2" or "proof hash N".
    #[error("{what} has {len} bytes, want 32")]
    WrongHashLength { what: String, len: usize },
    #[error("proof has {got} hashes, want {want}")]
    ProofLength { got: usize, want: usize },
    /// Which root: "root", "root1" or "root2".
    #[error("computed {0} does not match the given {0}")]
    RootMismatch(&'static str),
    #[error("size1 {size1} is greater than size2 {size2}")]
    Size1GreaterThanSize2 { size1: u64, size2: u64 },
    #[error("sizes are equal but the proof has {len} hashes, want none")]
    NonEmptyProofForEqualSizes { len: usize },
    #[error("sizes are equal but the roots differ")]
    EqualSizesRootsDiffer,
    #[error("size is zero but a root is not the empty tree hash")]
    EmptyTreeRootNotEmptyHash,
    #[error("consistency with the empty tree proves nothing")]
    Size1Zero,
    #[error("proof is empty")]
    EmptyProof,
}

/// Leaf `leaf_index` is in the tree of `tree_size` leaves with `root`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeInclusion {
    pub leaf_index: u64,
    pub tree_size: u64,
    pub root: Hash,
}

/// The tree of `size1` leaves is a prefix of the tree of `size2` leaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeConsistency {
    pub size1: u64,
    pub size2: u64,
}

fn to_hash(bytes: &[u8], what: &str) -> Result<Hash, ProofError> {
    Hash::try_from(bytes)
        .map_err(|_| ProofError::WrongHashLength { what: what.to_owned(), len: bytes.len() })
}

fn proof_to_hashes(proof: &[impl AsRef<[u8]>]) -> Result<Vec<Hash>, ProofError> {
    let hash = |(i, p): (usize, &[u8])| to_hash(p, &format!("proof hash {i}"));
    proof.iter().map(AsRef::as_ref).enumerate().map(hash).collect()
}

fn check_proof_len(got: usize, want: usize) -> Result<(), ProofError> {
    if got == want { Ok(()) } else { Err(ProofError::ProofLength { got, want }) }
}

/// The index and size make a tree position, and the proof has its length.
fn check_inclusion_shape(index: u64, size: u64, proof_len: usize) -> Result<(), ProofError> {
    match size {
        0 => Err(ProofError::EmptyTree),
        _ if index >= size => Err(ProofError::IndexOutOfRange { index, size }),
        _ => check_proof_len(proof_len, inclusion_proof_len(index, size)),
    }
}

/// Number of bits needed to write `x` (0 for 0).
fn bit_len(x: u64) -> usize {
    (u64::BITS - x.leading_zeros()) as usize
}

/// Length of the inclusion path of `index` in a tree of `size > index`
/// leaves: the levels below the point where the paths to `index` and to the
/// last leaf split, plus one left sibling for each set bit above it.
pub fn inclusion_proof_len(index: u64, size: u64) -> usize {
    let inner = bit_len(index ^ (size - 1));
    // inner can be 64, where a plain shift would overflow.
    let border = index.checked_shr(inner as u32).unwrap_or(0).count_ones() as usize;
    inner + border
}

/// Length of the consistency proof from `size1` to `size2`
/// (`0 < size1 < size2`): the inclusion path of leaf `size1 - 1` in the
/// bigger tree, minus the levels inside the complete subtree that ends at
/// `size1`, plus that subtree's hash unless it is the whole old tree.
pub fn consistency_proof_len(size1: u64, size2: u64) -> usize {
    let inner = bit_len((size1 - 1) ^ (size2 - 1));
    let border = (size1 - 1).checked_shr(inner as u32).unwrap_or(0).count_ones() as usize;
    // trailing_zeros < inner: size1 < size2, so the paths split above that subtree.
    let seed_in_proof = usize::from(!size1.is_power_of_two());
    seed_in_proof + (inner - size1.trailing_zeros() as usize) + border
}

/// Whether the next proof hash is a left sibling (`fn_` is a right child,
/// or the last node of its level); then, for a left sibling, right-shift
/// both until `fn_` is odd or zero (RFC 9162 §2.1.3.2 step 4b).
fn left_sibling(fn_: &mut u64, sn: &mut u64) -> bool {
    let left = *fn_ & 1 == 1 || *fn_ == *sn;
    while left && *fn_ & 1 == 0 && *fn_ != 0 {
        *fn_ >>= 1;
        *sn >>= 1;
    }
    left
}

/// The root implied by an inclusion proof (RFC 9162 §2.1.3.2 steps 1–5);
/// the caller compares it with the root it trusts.
pub fn root_from_inclusion_proof(
    leaf_index: u64,
    tree_size: u64,
    leaf_hash: &Hash,
    proof: &[Hash],
) -> Result<Hash, ProofError> {
    // Bounds the loop below by the proof the tree shape allows (≤ 128).
    check_inclusion_shape(leaf_index, tree_size, proof.len())?;
    let (mut fn_, mut sn, mut r) = (leaf_index, tree_size - 1, *leaf_hash);
    let want = inclusion_proof_len(leaf_index, tree_size);
    let wrong_len = || ProofError::ProofLength { got: proof.len(), want };
    for p in proof {
        // Steps 4a and 5: unreachable after the exact length check, kept as the RFC has them.
        if sn == 0 {
            return Err(wrong_len());
        }
        r = if left_sibling(&mut fn_, &mut sn) { node_hash(p, &r) } else { node_hash(&r, p) };
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(wrong_len());
    }
    Ok(r)
}

/// Verify that `leaf_hash` is leaf `leaf_index` of the tree of `tree_size`
/// leaves whose root is `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    leaf_index: u64,
    tree_size: u64,
    leaf_hash: &[u8],
    proof: &[impl AsRef<[u8]>],
    root: &[u8],
) -> Result<Verified<TreeInclusion>, ProofError> {
    // Structure first, so a huge proof is rejected before it is copied.
    check_inclusion_shape(leaf_index, tree_size, proof.len())?;
    let leaf = to_hash(leaf_hash, "leaf hash")?;
    let root = to_hash(root, "root")?;
    let proof = proof_to_hashes(proof)?;
    if root_from_inclusion_proof(leaf_index, tree_size, &leaf, &proof)? != root {
        return Err(ProofError::RootMismatch("root"));
    }
    Ok(Verified::new(TreeInclusion { leaf_index, tree_size, root }))
}

/// Verify that the tree of `size1` leaves with root `root1` is a prefix of
/// the tree of `size2` leaves with root `root2` (RFC 9162 §2.1.4.2).
///
/// For equal non-zero sizes the roots are compared byte for byte without a
/// length check, as RFC 9162 says and the transparency-dev vectors pin; the
/// marker then only says "nothing changed", not that the roots are hashes.
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    proof: &[impl AsRef<[u8]>],
    root1: &[u8],
    root2: &[u8],
) -> Result<Verified<TreeConsistency>, ProofError> {
    let verified = || Verified::new(TreeConsistency { size1, size2 });
    match (size1, size2, proof.len()) {
        (s1, s2, _) if s1 > s2 => return Err(ProofError::Size1GreaterThanSize2 { size1, size2 }),
        (s1, s2, len) if s1 == s2 && len != 0 => {
            return Err(ProofError::NonEmptyProofForEqualSizes { len });
        }
        (0, 0, _) if root1 != EMPTY_ROOT || root2 != EMPTY_ROOT => {
            return Err(ProofError::EmptyTreeRootNotEmptyHash);
        }
        (s1, s2, _) if s1 == s2 && root1 != root2 => return Err(ProofError::EqualSizesRootsDiffer),
        (s1, s2, _) if s1 == s2 => return Ok(verified()),
        (0, _, _) => return Err(ProofError::Size1Zero),
        (_, _, 0) => return Err(ProofError::EmptyProof),
        _ => {}
    }
    // Now 0 < size1 < size2 and the proof is non-empty.
    check_proof_len(proof.len(), consistency_proof_len(size1, size2))?;
    let root1 = to_hash(root1, "root1")?;
    let root2 = to_hash(root2, "root2")?;
    let proof = proof_to_hashes(proof)?;
    // Step 2: when size1 is a power of two the old root is itself the seed
    // and is not repeated in the proof.
    let (seed, rest) = match proof.split_first() {
        _ if size1.is_power_of_two() => (root1, &proof[..]),
        Some((first, rest)) => (*first, rest),
        None => return Err(ProofError::EmptyProof),
    };
    // Steps 3–5.
    let mut fn_ = (size1 - 1) >> (size1 - 1).trailing_ones();
    let mut sn = (size2 - 1) >> (size1 - 1).trailing_ones();
    let (mut fr, mut sr) = (seed, seed);
    // Steps 6 and 7; `sn` checks are unreachable after the exact length check.
    let want = consistency_proof_len(size1, size2);
    let wrong_len = || ProofError::ProofLength { got: proof.len(), want };
    for c in rest {
        if sn == 0 {
            return Err(wrong_len());
        }
        if left_sibling(&mut fn_, &mut sn) {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    match (fr == root1, sr == root2) {
        _ if sn != 0 => Err(wrong_len()),
        (false, _) => Err(ProofError::RootMismatch("root1")),
        (true, false) => Err(ProofError::RootMismatch("root2")),
        (true, true) => Ok(verified()),
    }
}

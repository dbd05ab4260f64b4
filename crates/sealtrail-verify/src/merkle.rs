//! RFC 9162 Merkle proof verification (LEDGER.md §2, RFC 9162 §2.1.3.2
//! inclusion and §2.1.4.2 consistency), written out step by step after the
//! RFC. Every way a proof can be wrong has its own [`ProofError`]; success
//! returns a `Verified<TreeInclusion>` / `Verified<TreeConsistency>`.
//! Proof lengths are checked exactly against the tree shape before hashing.

use std::fmt;

use crate::hash::{EMPTY_ROOT, Hash, node_hash};
use crate::verified::Verified;

const HASH_LEN: usize = 32;

/// Which input of a verification call a hash came from, for error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashInput {
    Leaf,
    Root,
    Root1,
    Root2,
    /// Element of the proof, by position.
    Proof(usize),
}

impl fmt::Display for HashInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HashInput::Leaf => f.write_str("leaf hash"),
            HashInput::Root => f.write_str("root"),
            HashInput::Root1 => f.write_str("root1"),
            HashInput::Root2 => f.write_str("root2"),
            HashInput::Proof(i) => write!(f, "proof hash {i}"),
        }
    }
}

/// Why a proof was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("leaf index {index} is out of range for tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("tree size is zero: the empty tree has no leaves")]
    EmptyTree,
    #[error("{input} has {len} bytes, want {HASH_LEN}")]
    WrongHashLength { input: HashInput, len: usize },
    #[error("proof has {got} hashes, want {want}")]
    ProofTooShort { got: usize, want: usize },
    #[error("proof has {got} hashes, want {want}")]
    ProofTooLong { got: usize, want: usize },
    #[error("computed root does not match the given root")]
    RootMismatch,
    #[error("computed root1 does not match the given root1")]
    Root1Mismatch,
    #[error("computed root2 does not match the given root2")]
    Root2Mismatch,
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

fn to_hash(bytes: &[u8], input: HashInput) -> Result<Hash, ProofError> {
    Hash::try_from(bytes).map_err(|_| ProofError::WrongHashLength { input, len: bytes.len() })
}

fn proof_to_hashes(proof: &[impl AsRef<[u8]>]) -> Result<Vec<Hash>, ProofError> {
    proof.iter().enumerate().map(|(i, p)| to_hash(p.as_ref(), HashInput::Proof(i))).collect()
}

fn check_proof_len(got: usize, want: usize) -> Result<(), ProofError> {
    match got.cmp(&want) {
        std::cmp::Ordering::Less => Err(ProofError::ProofTooShort { got, want }),
        std::cmp::Ordering::Greater => Err(ProofError::ProofTooLong { got, want }),
        std::cmp::Ordering::Equal => Ok(()),
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

/// Right-shift `fn_` and `sn` together until `fn_` is odd or zero.
fn shift_while_even(fn_: &mut u64, sn: &mut u64) {
    while *fn_ & 1 == 0 && *fn_ != 0 {
        *fn_ >>= 1;
        *sn >>= 1;
    }
}

/// The root implied by an inclusion proof (RFC 9162 §2.1.3.2 steps 1–4).
/// The caller compares it with the root it trusts.
pub fn root_from_inclusion_proof(
    leaf_index: u64,
    tree_size: u64,
    leaf_hash: &Hash,
    proof: &[Hash],
) -> Result<Hash, ProofError> {
    match tree_size {
        0 => return Err(ProofError::EmptyTree),
        _ if leaf_index >= tree_size => {
            return Err(ProofError::IndexOutOfRange { index: leaf_index, size: tree_size });
        }
        _ => {}
    }
    // Bounds the loop below by the proof the tree shape allows (≤ 128).
    check_proof_len(proof.len(), inclusion_proof_len(leaf_index, tree_size))?;

    let mut fn_ = leaf_index;
    let mut sn = tree_size - 1;
    let mut r = *leaf_hash;
    for p in proof {
        if sn == 0 {
            // Unreachable after the length check; kept as the RFC's step 4a.
            return Err(ProofError::ProofTooLong {
                got: proof.len(),
                want: inclusion_proof_len(leaf_index, tree_size),
            });
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            shift_while_even(&mut fn_, &mut sn);
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        // Unreachable after the length check; kept as the RFC's step 5.
        return Err(ProofError::ProofTooShort {
            got: proof.len(),
            want: inclusion_proof_len(leaf_index, tree_size),
        });
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
    match tree_size {
        0 => return Err(ProofError::EmptyTree),
        _ if leaf_index >= tree_size => {
            return Err(ProofError::IndexOutOfRange { index: leaf_index, size: tree_size });
        }
        _ => {}
    }
    check_proof_len(proof.len(), inclusion_proof_len(leaf_index, tree_size))?;
    let leaf = to_hash(leaf_hash, HashInput::Leaf)?;
    let root = to_hash(root, HashInput::Root)?;
    let proof = proof_to_hashes(proof)?;

    let computed = root_from_inclusion_proof(leaf_index, tree_size, &leaf, &proof)?;
    if computed != root {
        return Err(ProofError::RootMismatch);
    }
    Ok(Verified::new(TreeInclusion { leaf_index, tree_size, root }))
}

/// Length of the consistency proof from `size1` to `size2`
/// (`0 < size1 < size2`): the inclusion path of leaf `size1 - 1` in the
/// bigger tree, minus the levels inside the complete subtree that ends at
/// `size1`, plus that subtree's hash unless it is the whole old tree.
pub fn consistency_proof_len(size1: u64, size2: u64) -> usize {
    let inner = bit_len((size1 - 1) ^ (size2 - 1));
    // inner can be 64, where a plain shift would overflow.
    let border = (size1 - 1).checked_shr(inner as u32).unwrap_or(0).count_ones() as usize;
    let shift = size1.trailing_zeros() as usize;
    // shift < inner because size1 < size2 (the paths split above that subtree).
    let seed_in_proof = usize::from(!size1.is_power_of_two());
    seed_in_proof + (inner - shift) + border
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
        (s1, s2, _) if s1 > s2 => {
            return Err(ProofError::Size1GreaterThanSize2 { size1, size2 });
        }
        (s1, s2, len) if s1 == s2 && len != 0 => {
            return Err(ProofError::NonEmptyProofForEqualSizes { len });
        }
        (0, 0, _) => {
            return if root1 != EMPTY_ROOT || root2 != EMPTY_ROOT {
                Err(ProofError::EmptyTreeRootNotEmptyHash)
            } else {
                Ok(verified())
            };
        }
        (s1, s2, _) if s1 == s2 => {
            return if root1 != root2 {
                Err(ProofError::EqualSizesRootsDiffer)
            } else {
                Ok(verified())
            };
        }
        (0, _, _) => return Err(ProofError::Size1Zero),
        (_, _, 0) => return Err(ProofError::EmptyProof),
        _ => {}
    }
    // Now 0 < size1 < size2 and the proof is non-empty.
    check_proof_len(proof.len(), consistency_proof_len(size1, size2))?;
    let root1 = to_hash(root1, HashInput::Root1)?;
    let root2 = to_hash(root2, HashInput::Root2)?;
    let proof = proof_to_hashes(proof)?;

    // Step 2: when size1 is a power of two the old root is itself the seed
    // and is not repeated in the proof.
    let (seed, rest) = if size1.is_power_of_two() {
        (root1, proof.as_slice())
    } else {
        match proof.split_first() {
            Some((first, rest)) => (*first, rest),
            // The length check above requires at least one hash here.
            None => return Err(ProofError::EmptyProof),
        }
    };

    // Steps 3–4.
    let mut fn_ = size1 - 1;
    let mut sn = size2 - 1;
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    // Step 5.
    let mut fr = seed;
    let mut sr = seed;
    // Step 6.
    for c in rest {
        if sn == 0 {
            // Unreachable after the length check; kept as the RFC's step 6a.
            return Err(ProofError::ProofTooLong {
                got: proof.len(),
                want: consistency_proof_len(size1, size2),
            });
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            shift_while_even(&mut fn_, &mut sn);
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    // Step 7.
    match (sn, fr == root1, sr == root2) {
        // Unreachable after the length check; kept as the RFC's step 7.
        (1.., _, _) => Err(ProofError::ProofTooShort {
            got: proof.len(),
            want: consistency_proof_len(size1, size2),
        }),
        (0, false, _) => Err(ProofError::Root1Mismatch),
        (0, true, false) => Err(ProofError::Root2Mismatch),
        (0, true, true) => Ok(verified()),
    }
}

//! RFC 6962 / RFC 9162 hashing. The leaf and node hashes, the empty root and
//! the verifier's bottom-up root are the verifier crate's
//! (`sealtrail_verify::hash`, LEDGER.md §2), so the writer and every
//! verifier hash alike; this module adds what only the writer needs:
//! `rs_merkle`'s hasher, which builds the segment trees and proofs.

pub use sealtrail_verify::hash::{EMPTY_ROOT, Hash, leaf_hash, node_hash, root_of_leaves, sha256};

/// Length of every hash in the ledger (SHA-256).
pub const HASH_LEN: usize = 32;

/// The RFC 6962 hasher for `rs_merkle`: leaves are given already hashed
/// (`leaf_hash`), interior nodes get the `0x01` prefix, and a lone right-most
/// node is promoted unchanged. Building bottom-up with promotion yields exactly
/// the RFC 6962 tree shape (largest-power-of-two split), which the known-answer
/// tests below pin against the recursive definition.
#[derive(Clone, Copy, Debug)]
pub struct Rfc6962;

impl rs_merkle::Hasher for Rfc6962 {
    type Hash = Hash;

    fn hash(data: &[u8]) -> Hash {
        sha256(data)
    }

    fn concat_and_hash(left: &Hash, right: Option<&Hash>) -> Hash {
        match right {
            Some(right) => node_hash(left, right),
            None => *left,
        }
    }
}

/// Merkle tree hash of a list of leaf hashes, computed with `rs_merkle`.
pub fn merkle_root(leaves: &[Hash]) -> Hash {
    rs_merkle::MerkleTree::<Rfc6962>::from_leaves(leaves)
        .root()
        .unwrap_or(EMPTY_ROOT)
}

/// The largest power of two strictly smaller than `n` (`n >= 2`): the RFC 6962
/// split point `k`.
pub fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6962 §2.1 taken literally, as the reference the fast paths are
    /// checked against.
    fn reference_mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => EMPTY_ROOT,
            1 => leaves[0],
            n => {
                let k = split_point(n as u64) as usize;
                node_hash(&reference_mth(&leaves[..k]), &reference_mth(&leaves[k..]))
            }
        }
    }

    fn hex32(s: &str) -> Hash {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).unwrap();
        out
    }

    /// The eight leaves used by RFC 6962 test suites (transparency-dev).
    fn classic_leaves() -> Vec<Vec<u8>> {
        [
            "",
            "00",
            "10",
            "2021",
            "3031",
            "40414243",
            "5051525354555657",
            "606162636465666768696a6b6c6d6e6f",
        ]
        .iter()
        .map(|h| hex::decode(h).unwrap())
        .collect()
    }

    #[test]
    fn empty_tree_hash_is_sha256_of_nothing() {
        assert_eq!(
            EMPTY_ROOT,
            hex32("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
        assert_eq!(EMPTY_ROOT, sha256(b""));
        assert_eq!(merkle_root(&[]), EMPTY_ROOT);
    }

    #[test]
    fn known_answer_roots_for_small_trees() {
        // Roots of the first n classic leaves, from the RFC 6962 reference
        // implementation's test data.
        let want = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        let leaves: Vec<Hash> = classic_leaves().iter().map(|d| leaf_hash(d)).collect();
        for (n, want) in want.iter().enumerate() {
            let got = merkle_root(&leaves[..=n]);
            assert_eq!(hex::encode(got), *want, "root of {} leaves", n + 1);
            assert_eq!(got, reference_mth(&leaves[..=n]));
        }
    }

    #[test]
    fn rs_merkle_shape_matches_rfc6962_for_every_size_up_to_300() {
        let leaves: Vec<Hash> = (0u32..300).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let mut scratch = Vec::new();
        for n in 0..=leaves.len() {
            assert_eq!(
                root_of_leaves(&leaves[..n], &mut scratch),
                reference_mth(&leaves[..n])
            );
            assert_eq!(
                merkle_root(&leaves[..n]),
                reference_mth(&leaves[..n]),
                "n={n}"
            );
        }
    }

    #[test]
    fn split_point_is_largest_power_of_two_below_n() {
        assert_eq!(split_point(2), 1);
        assert_eq!(split_point(3), 2);
        assert_eq!(split_point(4), 2);
        assert_eq!(split_point(5), 4);
        assert_eq!(split_point(8), 4);
        assert_eq!(split_point(9), 8);
        assert_eq!(split_point(1 << 40), 1 << 39);
    }
}

//! The ledger: write-ahead log, sealed segments, Merkle trees, signed
//! checkpoints, proofs and verification. No tokio and no HTTP here.

pub mod hash;
pub mod keys;
pub mod merkle;
pub mod note;

//! The ledger: write-ahead log, sealed segments, Merkle trees, signed
//! checkpoints, proofs and verification. No tokio and no HTTP here.
//!
//! Modules in the order data passes through them: `segment` (file format of
//! the open and sealed segments), `log` (the writer: append, seal, recover),
//! `writer` (group commit thread), `record` + `tree_store` (the
//! log tree of segment records), `note` + `keys` (signed checkpoints),
//! `proof` (building and checking proofs), `verify` (whole-directory audit),
//! with `hash` and `merkle` as the RFC 6962 / 9162 core. `compact` and
//! `compactor` rewrite sealed segments into the compressed format (v2) with
//! shared zstd dictionaries from `dicts`.

pub mod atrest;
pub mod atrest_config;
pub mod bundle;
pub mod compact;
pub mod compactor;
pub mod cosignature;
pub mod dicts;
pub mod entries;
pub mod hash;
pub mod health;
pub mod key_history;
pub mod keys;
pub mod log;
pub mod merkle;
pub mod note;
pub mod proof;
pub mod record;
pub mod rotate;
pub mod segment;
pub mod tree_store;
pub mod verify;
pub mod witnessed;
pub mod writer;

//! sealtrail: a tamper-evident audit-log SIEM for medical practices.
//!
//! Data flows down this list (see ARCHITECTURE.md):
//! `sources` (import, later HTTP/FHIR/syslog) -> `event` (the normalized model
//! and canonical bytes) -> `transforms` (enrich from the practice's
//! directories, mask PHI) -> `ledger` (write-ahead log, sealed segments, Merkle
//! trees, signed checkpoints, proofs, verification). `cli` and `config` are the
//! edges.
#![forbid(unsafe_code)]

pub mod api;
pub mod cli;
pub mod config;
pub mod detect;
pub mod event;
pub mod r#gen;
pub mod index;
pub mod ledger;
pub mod pipeline;
pub mod report;
pub mod rules;
pub mod serve;
pub mod sources;
pub mod tls;
pub mod transforms;

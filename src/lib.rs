//! sealtrail: a tamper-evident audit-log SIEM for medical practices.
//!
//! Data flows down this list (see ARCHITECTURE.md):
//! `sources` (HTTP, FHIR, syslog, import) -> `event` (the normalized model
//! and canonical bytes) -> `transforms` (enrich from the practice's
//! directories, mask PHI) -> `pipeline` (bounded stages, durable
//! acknowledgement) -> `ledger` (write-ahead log, compressed sealed segments,
//! Merkle trees, signed checkpoints, proofs, verification) -> consumers of the
//! durable ledger: `index` (search) + `report`, and `detect` (runs the `rules`
//! engine, appends alerts) -> `api`. `gen` makes synthetic input; `backup`
//! copies, checks and restores a data directory; `cli`, `config` and
//! `serve` are the edges.
#![forbid(unsafe_code)]
// Unit tests may read whole fixture files (clippy.toml bans it elsewhere).
#![cfg_attr(test, allow(clippy::disallowed_methods))]

pub mod api;
pub mod auth;
pub mod backup;
pub mod bounded;
pub mod cli;
pub mod config;
pub mod dashboards;
pub mod detect;
pub mod event;
#[doc(hidden)]
pub mod fuzzing;
pub mod r#gen;
pub mod html;
pub mod index;
pub mod ledger;
pub mod net;
pub mod pipeline;
pub mod report;
pub mod response;
pub mod rules;
pub mod serve;
pub mod sources;
pub mod tls;
pub mod transforms;
pub mod witness;

//! Integration tests for the ledger: one binary, a module per topic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)] // test code

mod access;
mod alerts;
mod atrest;
mod backup;
mod catchup;
mod cli;
mod compress;
mod crash;
mod dashboards;
mod docs_cli;
mod exports;
mod r#gen;
mod heal;
mod http;
mod incidents;
mod inputs;
mod integrity;
mod ledger;
mod listeners;
mod people;
mod rotate;
mod rules_cli;
mod search;
mod snapshot;
mod tamper;
mod util;
mod vectors;
mod witness;

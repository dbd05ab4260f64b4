//! Integration tests for the ledger: one binary, a module per topic.

mod cli;
mod compress;
mod crash;
mod r#gen;
mod rules_cli;
mod http;
mod ledger;
mod search;
mod tamper;
mod util;

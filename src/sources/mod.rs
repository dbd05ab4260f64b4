//! Where events come from. Each source turns its input into validated entries
//! and hands them to the ledger writer, acknowledging only what is durable.

pub mod fhir;
pub mod http;
pub mod import;
pub mod syslog;

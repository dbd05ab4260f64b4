//! sealtrail: a tamper-evident audit-log SIEM for medical practices.
#![forbid(unsafe_code)]

pub mod event;
pub mod ledger;

//! Metrics of the gate: refusals by reason, and audit records of refusals
//! that could not be written.

use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

pub struct AuthMetrics {
    /// Refused requests by reason (`unknown_token`, `role`, `rate_limited`, ...).
    pub failures: IntCounterVec,
    /// Refusal records dropped (too many at once, or the ledger refused them).
    pub records_dropped: IntCounter,
}

#[allow(clippy::panic)] // names are literals; a test renders them
pub fn register(registry: &Registry) -> AuthMetrics {
    let failures = IntCounterVec::new(
        Opts::new(
            "auth_failures_total",
            "requests refused by authentication, authorization or rate limits",
        ),
        &["reason"],
    )
    .unwrap_or_else(|e| panic!("auth_failures_total: {e}"));
    let records_dropped = IntCounter::new(
        "auth_records_dropped_total",
        "audit records of refused requests not written (too many at once, or the ledger refused them)",
    )
    .unwrap_or_else(|e| panic!("auth_records_dropped_total: {e}"));
    for c in [
        Box::new(failures.clone()) as Box<dyn prometheus::core::Collector>,
        Box::new(records_dropped.clone()),
    ] {
        registry
            .register(c)
            .unwrap_or_else(|e| panic!("register: {e}"));
    }
    AuthMetrics {
        failures,
        records_dropped,
    }
}

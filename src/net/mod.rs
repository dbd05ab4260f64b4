//! Network listener hardening shared by the HTTP API and syslog: connection
//! tables with total and per-address caps ([`limit`]), TLS configurations
//! reloaded when their files change ([`reload`]), the HTTP accept loop with
//! TLS, timeouts and limits ([`http`]), and rate-limited refusal logging.

pub mod http;
pub mod limit;
pub mod reload;

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Listener metrics, registered with the service's registry.
pub struct ListenerMetrics {
    /// HTTP connections closed on accept, by `reason` (`total`, `per_ip`).
    pub http_refused: IntCounterVec,
    /// HTTP connections open now.
    pub http_open: IntGauge,
    /// Syslog TCP/TLS connections closed on accept, by `reason`.
    pub syslog_refused: IntCounterVec,
    /// Idle syslog connections closed to make room for a new one.
    pub syslog_evicted: IntCounter,
}

impl ListenerMetrics {
    /// Registers the listener metrics. Names are literals, so failure is a bug.
    #[allow(clippy::panic)]
    pub fn register(registry: &Registry) -> ListenerMetrics {
        let vec = |name: &str, help: &str| {
            let c = IntCounterVec::new(Opts::new(name, help), &["reason"])
                .unwrap_or_else(|e| panic!("metric {name}: {e}"));
            registry
                .register(Box::new(c.clone()))
                .unwrap_or_else(|e| panic!("metric {name}: {e}"));
            c
        };
        let http_refused = vec(
            "http_connections_refused_total",
            "HTTP connections closed on accept (over the total or per-address cap)",
        );
        let syslog_refused = vec(
            "syslog_connections_refused_total",
            "syslog TCP/TLS connections closed on accept (over the per-address cap)",
        );
        // Known reasons start at 0, so rate() sees their first increase.
        for reason in ["total", "per_ip", "fd_reserve"] {
            http_refused.with_label_values(&[reason]);
        }
        let http_open = IntGauge::new("http_connections_open", "HTTP connections open")
            .unwrap_or_else(|e| panic!("http_connections_open: {e}"));
        let syslog_evicted = IntCounter::new(
            "syslog_connections_evicted_total",
            "idle syslog connections closed to admit a new one at the connection cap",
        )
        .unwrap_or_else(|e| panic!("syslog_connections_evicted_total: {e}"));
        for c in [
            Box::new(http_open.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(syslog_evicted.clone()),
        ] {
            registry
                .register(c)
                .unwrap_or_else(|e| panic!("register: {e}"));
        }
        ListenerMetrics {
            http_refused,
            http_open,
            syslog_refused,
            syslog_evicted,
        }
    }
}

/// How often a [`RateLog`] may write a line.
pub const RATE_LOG_EVERY: Duration = Duration::from_secs(60);

/// Counts events (refused connections) and logs at most one line per
/// [`RATE_LOG_EVERY`] with the count since the last line, so a flood
/// cannot flood the log.
pub struct RateLog {
    what: &'static str,
    state: Mutex<(Option<Instant>, u64)>,
}

impl RateLog {
    pub fn new(what: &'static str) -> RateLog {
        RateLog {
            what,
            state: Mutex::new((None, 0)),
        }
    }

    /// Counts one; logs when the last line is old enough.
    pub fn note(&self, reason: &str) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        s.1 += 1;
        let due = s.0.is_none_or(|t| t.elapsed() >= RATE_LOG_EVERY);
        if due {
            let count = s.1;
            *s = (Some(Instant::now()), 0);
            drop(s);
            tracing::warn!(
                count,
                last_reason = reason,
                "{} (at most one line a minute; count since the last line)",
                self.what
            );
        }
    }
}

//! Prometheus metrics of the ingest pipeline, rendered at `/metrics`.

use crate::ledger::compactor::CompactorStatus;
use crate::ledger::health::{ERROR_KINDS, LedgerHealth};
use crate::ledger::writer::WriterStatus;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

pub struct Metrics {
    registry: Registry,
    pub received: IntCounterVec,
    pub received_bytes: IntCounterVec,
    pub accepted: IntCounterVec,
    pub rejected: IntCounterVec,
    pub duplicates: IntCounterVec,
    pub unknown_actions: IntCounterVec,
    pub busy: IntCounterVec,
    pub queue_depth: IntGaugeVec,
    pub ack_latency: HistogramVec,
    pub seal_lag: prometheus::Gauge,
    pub sealed_events: IntGauge,
    pub appended_events: IntGauge,
    /// Entries the search index holds (its cursor, set after each commit):
    /// `appended_events - indexed_events` is the index lag.
    pub indexed_events: IntGauge,
    /// HTTP responses by status class (`2xx`, `3xx`, `4xx`, `5xx`).
    pub http_responses: IntCounterVec,
    pub fsync_seconds: prometheus::Gauge,
    pub silent_sources: IntCounter,
    pub compacted_segments: IntGauge,
    pub compaction_bytes: IntGaugeVec,
    /// The ledger writer's progress, read at render time.
    pub writer: OnceLock<Arc<WriterStatus>>,
    /// The compactor's totals, read at render time (absent when off).
    pub compactor: OnceLock<Arc<CompactorStatus>>,
    /// Whether the ledger can write, read by sources and at render time.
    pub health: OnceLock<Arc<LedgerHealth>>,
    /// `ledger_write_errors_total{kind}`, from `health` at render time.
    pub ledger_write_errors: IntCounterVec,
    /// `ledger_writable`: 1, or 0 while writes fail and are retried.
    pub ledger_writable: IntGauge,
    /// Events a source dropped because the ledger could not write
    /// (`dropped_total{source}`: UDP syslog cannot push back).
    pub dropped: IntCounterVec,
    /// Detection (the rules consumer).
    pub detect: DetectMetrics,
    /// Incident response (`src/response/`).
    pub response: ResponseMetrics,
    /// Authentication and authorization (`src/auth/`).
    pub auth: crate::auth::metrics::AuthMetrics,
    /// HTTP and syslog connection limits (`src/net/`).
    pub listeners: crate::net::ListenerMetrics,
    /// Witness submissions (`src/witness/submit.rs`).
    pub witness: crate::witness::submit::WitnessMetrics,
}

/// Metrics of the rules consumer (`src/detect/`).
pub struct DetectMetrics {
    /// Events run through the rules.
    pub evaluated: IntCounter,
    /// Alerts appended to the ledger.
    pub alerts: IntCounter,
    /// Alerts dropped by the suppression window (same rule and group).
    pub suppressed: IntCounter,
    /// Rule sets rejected at a reload (the previous set stays active).
    pub load_errors: IntCounter,
    /// Rules active now.
    pub rules: IntGauge,
    /// Engine counters of the active engine (reset when a reload replaces it).
    pub engine: IntGaugeVec,
    /// From an event's `received` to its alert being durable in the ledger.
    pub latency: prometheus::Histogram,
    /// Ledger entries the rules consumer has read (its start-up replay
    /// included): `appended_events - detection_position` is its lag.
    pub position: IntGauge,
    /// The detection state snapshot (`detect/snapshot.rs`), by `stat`:
    /// `position` (entries it covers), `written_unix_seconds`, `bytes`,
    /// `age_seconds`, `replayed_at_start` (entries the last start replayed),
    /// `loaded` (1: the last start began from a snapshot), `writes`,
    /// `write_failures`.
    pub snapshot: IntGaugeVec,
}

#[allow(clippy::panic)]
fn detect_metrics(registry: &Registry) -> DetectMetrics {
    let c = |name: &str, help: &str| {
        let m = IntCounter::new(name, help).unwrap_or_else(|e| panic!("metric {name}: {e}"));
        registry
            .register(Box::new(m.clone()))
            .unwrap_or_else(|e| panic!("metric {name}: {e}"));
        m
    };
    let rules = IntGauge::new("detection_rules", "detection and correlation rules active")
        .unwrap_or_else(|e| panic!("detection_rules: {e}"));
    let engine = IntGaugeVec::new(
        Opts::new(
            "detection_engine",
            "counters of the active rule engine (late_hits, evicted_groups, forced_hits, dropped_hits, expired_groups, unjoined_hits, groups, pending)",
        ),
        &["stat"],
    )
    .unwrap_or_else(|e| panic!("detection_engine: {e}"));
    let latency = prometheus::Histogram::with_opts(
        HistogramOpts::new(
            "alert_latency_seconds",
            "from the received time of the event that completed an alert to the alert being durable",
        )
        .buckets(vec![
            0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.5,
            2.0, 2.5, 3.0, 5.0, 10.0, 30.0, 60.0,
        ]),
    )
    .unwrap_or_else(|e| panic!("alert_latency: {e}"));
    let position = IntGauge::new(
        "detection_position",
        "ledger entries the rules consumer has read (appended_events - detection_position is its lag)",
    )
    .unwrap_or_else(|e| panic!("detection_position: {e}"));
    let snapshot = IntGaugeVec::new(
        Opts::new(
            "detection_snapshot",
            "the detection state snapshot (position, written_unix_seconds, bytes, age_seconds, replayed_at_start, loaded, writes, write_failures)",
        ),
        &["stat"],
    )
    .unwrap_or_else(|e| panic!("detection_snapshot: {e}"));
    for m in [
        Box::new(snapshot.clone()) as Box<dyn prometheus::core::Collector>,
        Box::new(rules.clone()),
        Box::new(engine.clone()),
        Box::new(latency.clone()),
        Box::new(position.clone()),
    ] {
        registry
            .register(m)
            .unwrap_or_else(|e| panic!("register: {e}"));
    }
    DetectMetrics {
        evaluated: c("detection_events_total", "events evaluated by the rules"),
        alerts: c("alerts_total", "alerts appended to the ledger"),
        suppressed: c(
            "alerts_suppressed_total",
            "alerts dropped as duplicates within the suppression window",
        ),
        load_errors: c(
            "rule_load_errors_total",
            "rule sets rejected on reload (the previous set stays active)",
        ),
        rules,
        engine,
        latency,
        position,
        snapshot,
    }
}

/// Metrics of the response engine (`src/response/`), counted as the engine
/// applies each change (live only: the replay on start counts nothing).
pub struct ResponseMetrics {
    /// Delivery attempts by `channel` (email, webhook) and `outcome`
    /// (delivered, retrying, failed).
    pub attempts: IntCounterVec,
    pub opened: IntCounter,
    /// By `via` (api, link).
    pub acknowledged: IntCounterVec,
    /// By `reason` (api, quiet).
    pub resolved: IntCounterVec,
    /// By `reason` (ack_timeout, ack_timeout_last_level).
    pub escalations: IntCounterVec,
    /// Alerts a silence kept from notifying (still recorded).
    pub silenced: IntCounter,
    /// Incidents not resolved (open or acknowledged).
    pub open: IntGauge,
    /// By `channel`: from the alert being durable in the ledger to the
    /// server accepting the incident's first notification (includes
    /// `group_wait` and retries).
    pub latency: HistogramVec,
}

#[allow(clippy::panic)]
fn response_metrics(registry: &Registry) -> ResponseMetrics {
    let c = |name: &str, help: &str| {
        let m = IntCounter::new(name, help).unwrap_or_else(|e| panic!("metric {name}: {e}"));
        registry
            .register(Box::new(m.clone()))
            .unwrap_or_else(|e| panic!("metric {name}: {e}"));
        m
    };
    let open = IntGauge::new(
        "incidents_open",
        "incidents not resolved (open or acknowledged)",
    )
    .unwrap_or_else(|e| panic!("incidents_open: {e}"));
    let latency = HistogramVec::new(
        HistogramOpts::new(
            "notification_latency_seconds",
            "from an alert being durable to the first notification of its incident being accepted (smtp 250 or http 2xx), group_wait included",
        )
        .buckets(vec![
            0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0,
            60.0, 120.0, 300.0, 600.0,
        ]),
        &["channel"],
    )
    .unwrap_or_else(|e| panic!("notification_latency: {e}"));
    for m in [
        Box::new(open.clone()) as Box<dyn prometheus::core::Collector>,
        Box::new(latency.clone()),
    ] {
        registry
            .register(m)
            .unwrap_or_else(|e| panic!("register: {e}"));
    }
    ResponseMetrics {
        attempts: counter(
            registry,
            "notification_attempts_total",
            "email and webhook delivery attempts by outcome",
            &["channel", "outcome"],
        ),
        opened: c("incidents_opened_total", "incidents opened"),
        acknowledged: counter(
            registry,
            "incidents_acknowledged_total",
            "incidents acknowledged (api, or link: the email's one-click link)",
            &["via"],
        ),
        resolved: counter(
            registry,
            "incidents_resolved_total",
            "incidents resolved (api, or quiet: resolve_after passed)",
            &["reason"],
        ),
        escalations: counter(
            registry,
            "incident_escalations_total",
            "unacknowledged incidents escalated to the next on-call level (or the last level re-notified)",
            &["reason"],
        ),
        silenced: c(
            "notifications_silenced_total",
            "alerts a silence kept from notifying (the alert and the incident are still recorded)",
        ),
        open,
        latency,
    }
}

// Metric names and labels are literals checked by a unit test: a bad one is
// a programming error found before release.
#[allow(clippy::panic)]
fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels)
        // Names and labels are literals checked by the unit test below.
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    registry
        .register(Box::new(c.clone()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    c
}

impl Metrics {
    #[allow(clippy::panic)]
    pub fn new() -> Arc<Self> {
        let registry = Registry::new_custom(Some("sealtrail".into()), None)
            .unwrap_or_else(|e| panic!("registry: {e}"));
        let queue_depth = IntGaugeVec::new(
            Opts::new("queue_depth", "items waiting in a pipeline stage"),
            &["stage"],
        )
        .unwrap_or_else(|e| panic!("queue_depth: {e}"));
        let ack_latency = HistogramVec::new(
            HistogramOpts::new(
                "ack_latency_seconds",
                "time from receiving a batch to acknowledging it durable",
            )
            .buckets(vec![
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
            ]),
            &["source"],
        )
        .unwrap_or_else(|e| panic!("ack_latency: {e}"));
        let seal_lag = prometheus::Gauge::new(
            "seal_lag_seconds",
            "age of the oldest acknowledged event not yet sealed under a signed checkpoint",
        )
        .unwrap_or_else(|e| panic!("seal_lag: {e}"));
        let sealed_events =
            IntGauge::new("sealed_events", "events covered by the latest checkpoint")
                .unwrap_or_else(|e| panic!("sealed_events: {e}"));
        let appended_events =
            IntGauge::new("appended_events", "events in the ledger (sealed or not)")
                .unwrap_or_else(|e| panic!("appended_events: {e}"));
        let indexed_events = IntGauge::new(
            "indexed_events",
            "entries in the search index (appended_events - indexed_events is the index lag)",
        )
        .unwrap_or_else(|e| panic!("indexed_events: {e}"));
        let fsync_seconds = prometheus::Gauge::new(
            "fsync_seconds_total",
            "time the ledger writer waited in fsync",
        )
        .unwrap_or_else(|e| panic!("fsync_seconds: {e}"));
        let silent_sources = IntCounter::new("source_silent_total", "source_silent events raised")
            .unwrap_or_else(|e| panic!("source_silent: {e}"));
        let compacted_segments = IntGauge::new(
            "compacted_segments",
            "sealed segments compressed by the compactor since start",
        )
        .unwrap_or_else(|e| panic!("compacted_segments: {e}"));
        let ledger_writable = IntGauge::new(
            "ledger_writable",
            "1 while the ledger can write, 0 while a failed write is being retried",
        )
        .unwrap_or_else(|e| panic!("ledger_writable: {e}"));
        ledger_writable.set(1);
        let compaction_bytes = IntGaugeVec::new(
            Opts::new(
                "compaction_file_bytes",
                "sizes of the segment files compacted since start, before and after",
            ),
            &["state"],
        )
        .unwrap_or_else(|e| panic!("compaction_file_bytes: {e}"));
        for c in [
            Box::new(queue_depth.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(ack_latency.clone()),
            Box::new(seal_lag.clone()),
            Box::new(sealed_events.clone()),
            Box::new(appended_events.clone()),
            Box::new(indexed_events.clone()),
            Box::new(fsync_seconds.clone()),
            Box::new(silent_sources.clone()),
            Box::new(compacted_segments.clone()),
            Box::new(compaction_bytes.clone()),
            Box::new(ledger_writable.clone()),
        ] {
            registry
                .register(c)
                .unwrap_or_else(|e| panic!("register: {e}"));
        }
        let ledger_write_errors = counter(
            &registry,
            "ledger_write_errors_total",
            "failed ledger writes (each retried), by kind: enospc, emfile, eio, other",
            &["kind"],
        );
        for kind in ERROR_KINDS {
            ledger_write_errors.with_label_values(&[kind]);
        }
        let dropped = counter(
            &registry,
            "dropped_total",
            "events dropped because the ledger could not write (UDP syslog)",
            &["source"],
        );
        let http_responses = counter(
            &registry,
            "http_responses_total",
            "HTTP API responses by status class",
            &["class"],
        );
        for class in ["2xx", "3xx", "4xx", "5xx"] {
            http_responses.with_label_values(&[class]);
        }
        let busy = counter(
            &registry,
            "busy_total",
            "requests refused because the pipeline was full",
            &["source"],
        );
        // Known label values start at 0, so rate() sees their first increase.
        for source in ["http", "fhir"] {
            busy.with_label_values(&[source]);
        }
        dropped.with_label_values(&["syslog_udp"]);
        let response = response_metrics(&registry);
        for channel in ["email", "webhook"] {
            response.latency.with_label_values(&[channel]);
            for outcome in ["delivered", "retrying", "failed"] {
                response.attempts.with_label_values(&[channel, outcome]);
            }
        }
        for via in ["api", "link"] {
            response.acknowledged.with_label_values(&[via]);
        }
        for reason in ["api", "quiet"] {
            response.resolved.with_label_values(&[reason]);
        }
        for reason in ["ack_timeout", "ack_timeout_last_level"] {
            response.escalations.with_label_values(&[reason]);
        }
        Arc::new(Metrics {
            health: OnceLock::new(),
            indexed_events,
            http_responses,
            ledger_write_errors,
            ledger_writable,
            dropped,
            received: counter(
                &registry,
                "events_received_total",
                "events offered by senders",
                &["source"],
            ),
            received_bytes: counter(
                &registry,
                "bytes_received_total",
                "request or message bytes received",
                &["source"],
            ),
            accepted: counter(
                &registry,
                "events_accepted_total",
                "events stored",
                &["source"],
            ),
            rejected: counter(
                &registry,
                "events_rejected_total",
                "inputs rejected (and recorded as ingest_rejected)",
                &["source"],
            ),
            duplicates: counter(
                &registry,
                "events_duplicate_total",
                "retried events already stored",
                &["source"],
            ),
            unknown_actions: counter(
                &registry,
                "unknown_actions_total",
                "events with an action outside the vocabulary",
                &["category"],
            ),
            busy,
            queue_depth,
            ack_latency,
            seal_lag,
            sealed_events,
            appended_events,
            fsync_seconds,
            silent_sources,
            compacted_segments,
            compaction_bytes,
            detect: detect_metrics(&registry),
            response,
            auth: crate::auth::metrics::register(&registry),
            listeners: crate::net::ListenerMetrics::register(&registry),
            witness: crate::witness::submit::register(&registry),
            registry,
            writer: OnceLock::new(),
            compactor: OnceLock::new(),
        })
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        if let Some(w) = self.writer.get() {
            self.appended_events
                .set(w.next_index.load(Ordering::Relaxed) as i64);
            self.sealed_events
                .set(w.sealed_events.load(Ordering::Relaxed) as i64);
            let oldest = w.oldest_unsealed_unix_ms.load(Ordering::Relaxed);
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            let lag = if oldest == 0 {
                0
            } else {
                now.saturating_sub(oldest)
            };
            self.seal_lag.set(lag as f64 / 1000.0);
            self.fsync_seconds
                .set(w.fsync_nanos.load(Ordering::Relaxed) as f64 / 1e9);
        }
        if let Some(h) = self.health.get() {
            self.ledger_writable.set(i64::from(h.writable()));
            for (kind, n) in ERROR_KINDS.iter().zip(h.errors()) {
                let c = self.ledger_write_errors.with_label_values(&[kind]);
                // The health counts are the truth; the counter catches up.
                c.inc_by(n.saturating_sub(c.get()));
            }
        }
        if let Some(c) = self.compactor.get() {
            self.compacted_segments
                .set(c.segments.load(Ordering::Relaxed) as i64);
            for (state, v) in [
                ("before", &c.file_bytes_before),
                ("after", &c.file_bytes_after),
            ] {
                self.compaction_bytes
                    .with_label_values(&[state])
                    .set(v.load(Ordering::Relaxed) as i64);
            }
        }
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for the text format.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_registers_and_renders() {
        let m = Metrics::new();
        m.received.with_label_values(&["http"]).inc();
        m.ack_latency.with_label_values(&["http"]).observe(0.003);
        let text = m.render();
        assert!(
            text.contains("sealtrail_events_received_total{source=\"http\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("sealtrail_ack_latency_seconds_bucket"),
            "{text}"
        );
        m.detect.alerts.inc();
        m.detect.engine.with_label_values(&["late_hits"]).set(2);
        let text = m.render();
        assert!(text.contains("sealtrail_alerts_total 1"), "{text}");
        assert!(
            text.contains("sealtrail_detection_engine{stat=\"late_hits\"} 2"),
            "{text}"
        );
        m.response
            .attempts
            .with_label_values(&["email", "delivered"])
            .inc();
        m.response.open.set(3);
        m.response
            .latency
            .with_label_values(&["webhook"])
            .observe(0.2);
        let text = m.render();
        for want in [
            "sealtrail_notification_attempts_total{channel=\"email\",outcome=\"delivered\"} 1",
            "sealtrail_incidents_open 3",
            "sealtrail_notification_latency_seconds_count{channel=\"webhook\"} 1",
            "sealtrail_incidents_opened_total 0",
            "sealtrail_notifications_silenced_total 0",
        ] {
            assert!(text.contains(want), "{want}: {text}");
        }
    }
}

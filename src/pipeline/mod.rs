//! The ingest topology: sources -> transforms -> appender -> ledger writer.
//!
//! ```text
//!  source task ──(IngestBatch)──> prepare (spawn_blocking: validate, transforms,
//!                                  canonical bytes) ──(bounded queue)──> appender thread
//!                                  (dedupe ids, assign indices) ──> ledger writer thread
//!                                  (group commit) ──fsync──> reply ──> source acknowledges
//! ```
//!
//! Every queue is bounded. A source that can wait (TCP) waits for room, which
//! stops it reading from its socket; a source that cannot (HTTP) is told
//! `Busy` at once and answers 503 with `Retry-After`.

pub mod appender;
pub mod dedupe;
pub mod fd_reserve;
pub mod metrics;
pub mod silence;

use crate::event::reserved::is_service_via;
use crate::event::{Entry, Event, Timestamp, Via, is_known_action, limits::MAX_ENTRY_BYTES};
use crate::ledger::log::LedgerEntry;
use std::sync::Arc;
use std::time::Instant;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

pub use appender::{Appender, AppenderConfig};
pub use metrics::Metrics;

/// One input unit offered by a source.
// Most items are events; boxing them to shrink the rare rejection is not worth
// an allocation per event.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Item {
    /// A parsed and validated event.
    Event(Event),
    /// Input that could not be made into an event: stored as
    /// `system/ingest_rejected` with the (masked) raw input and the reason.
    Rejected { raw: Vec<u8>, reason: String },
}

/// Items from one request, connection burst or file chunk, acknowledged together.
#[derive(Debug)]
pub struct IngestBatch {
    pub via: Via,
    pub items: Vec<Item>,
}

/// What happened to each item, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemOutcome {
    /// Stored at this global index.
    Stored(u64),
    /// Its client id was already stored, at this index; not stored again.
    Duplicate(u64),
    /// Rejected; the rejection record is stored at this index.
    Rejected(u64),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Receipt {
    pub outcomes: Vec<ItemOutcome>,
}

impl Receipt {
    pub fn accepted(&self) -> u64 {
        self.count(|o| matches!(o, ItemOutcome::Stored(_) | ItemOutcome::Duplicate(_)))
    }
    pub fn duplicates(&self) -> u64 {
        self.count(|o| matches!(o, ItemOutcome::Duplicate(_)))
    }
    pub fn rejected(&self) -> u64 {
        self.count(|o| matches!(o, ItemOutcome::Rejected(_)))
    }
    /// Index of the first entry this batch stored, if it stored any.
    pub fn first_index(&self) -> Option<u64> {
        self.outcomes.iter().find_map(|o| match o {
            ItemOutcome::Stored(i) | ItemOutcome::Rejected(i) => Some(*i),
            ItemOutcome::Duplicate(_) => None,
        })
    }
    fn count(&self, f: impl Fn(&ItemOutcome) -> bool) -> u64 {
        self.outcomes.iter().filter(|o| f(o)).count() as u64
    }
}

#[derive(Clone, Debug, Error)]
pub enum PipelineError {
    #[error("the ingest queue is full; retry shortly")]
    Busy,
    #[error("the service is shutting down")]
    Closed,
    #[error("the ledger failed: {0}")]
    Ledger(String),
    /// The ledger cannot write now (disk full, out of file handles, I/O
    /// errors) and retries: try again later.
    #[error("the ledger cannot write ({0}); retry later")]
    Unavailable(String),
}

/// A transform applied to every entry before it is sealed (enrichment,
/// masking). Runs on a blocking thread, one batch at a time.
pub trait Transform: Send + Sync {
    fn apply(&self, entry: &mut Entry);
}

/// An entry ready for the appender.
pub(crate) struct Prepared {
    pub entry: LedgerEntry,
    /// Client id, for exactly-once on retries (rejections have none).
    pub id: Option<String>,
    pub rejected: bool,
    /// `source.system` and event time, for source-silence tracking.
    pub source: Option<String>,
}

pub(crate) struct Job {
    pub items: Vec<Prepared>,
    pub reply: oneshot::Sender<Result<Vec<ItemOutcome>, PipelineError>>,
}

/// The handle sources submit through. Cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    tx: mpsc::Sender<Job>,
    transforms: Arc<Vec<Box<dyn Transform>>>,
    metrics: Arc<Metrics>,
}

impl Pipeline {
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Why the ledger cannot write now, if it cannot.
    pub fn unwritable_reason(&self) -> Option<String> {
        let h = self.metrics.health.get()?;
        if h.writable() {
            return None;
        }
        Some(h.reason().unwrap_or_else(|| "write failed".into()))
    }

    /// Submits a batch, waiting for room in the queue (backpressure for
    /// sources that can pause, such as a TCP reader).
    pub async fn submit(&self, batch: IngestBatch) -> Result<Receipt, PipelineError> {
        let permit = self.tx.reserve().await.map_err(|_| PipelineError::Closed)?;
        self.run(batch, permit).await
    }

    /// Submits a batch only if the queue has room now; `Busy` otherwise.
    pub async fn try_submit(&self, batch: IngestBatch) -> Result<Receipt, PipelineError> {
        // A failing ledger acknowledges nothing until it heals: say so now
        // rather than let the request wait in a queue that does not move.
        if let Some(reason) = self.unwritable_reason() {
            self.metrics
                .busy
                .with_label_values(&[&batch.via.kind])
                .inc();
            return Err(PipelineError::Unavailable(reason));
        }
        let permit = match self.tx.try_reserve() {
            Ok(p) => p,
            Err(mpsc::error::TrySendError::Full(())) => {
                self.metrics
                    .busy
                    .with_label_values(&[&batch.via.kind])
                    .inc();
                return Err(PipelineError::Busy);
            }
            Err(mpsc::error::TrySendError::Closed(())) => return Err(PipelineError::Closed),
        };
        self.run(batch, permit).await
    }

    async fn run(
        &self,
        batch: IngestBatch,
        permit: mpsc::Permit<'_, Job>,
    ) -> Result<Receipt, PipelineError> {
        let started = Instant::now();
        let kind = batch.via.kind.clone();
        let transforms = self.transforms.clone();
        let metrics = self.metrics.clone();
        // Validation results are in; transforms and canonical encoding are
        // CPU work, kept off the async workers.
        let items = tokio::task::spawn_blocking(move || prepare(batch, &transforms, &metrics))
            .await
            .map_err(|e| PipelineError::Ledger(format!("transform task failed: {e}")))?;
        let (reply, wait) = oneshot::channel();
        permit.send(Job { items, reply });
        let outcomes = wait.await.map_err(|_| PipelineError::Closed)??;
        self.metrics
            .ack_latency
            .with_label_values(&[&kind])
            .observe(started.elapsed().as_secs_f64());
        let receipt = Receipt { outcomes };
        let m = &self.metrics;
        m.accepted
            .with_label_values(&[&kind])
            .inc_by(receipt.accepted() - receipt.duplicates());
        m.duplicates
            .with_label_values(&[&kind])
            .inc_by(receipt.duplicates());
        m.rejected
            .with_label_values(&[&kind])
            .inc_by(receipt.rejected());
        Ok(receipt)
    }
}

/// Turns a batch into entries: events through the transforms, rejections
/// into `system/ingest_rejected` events (also transformed, so their raw input
/// is masked), everything into canonical bytes.
fn prepare(
    batch: IngestBatch,
    transforms: &[Box<dyn Transform>],
    metrics: &Metrics,
) -> Vec<Prepared> {
    let received = Timestamp::now();
    let via = batch.via;
    let from_service = is_service_via(&via.kind);
    metrics
        .received
        .with_label_values(&[&via.kind])
        .inc_by(batch.items.len() as u64);
    batch
        .items
        .into_iter()
        .map(|item| {
            let (event, rejected) = match item {
                // Sources refuse service-only actions themselves; this is the
                // backstop for any path that did not.
                Item::Event(event) if !from_service => match event.check_not_service_action() {
                    Ok(()) => (event, false),
                    Err(e) => {
                        let raw = serde_json::to_vec(&event).unwrap_or_default();
                        (Event::ingest_rejected(&raw, &e.to_string(), received), true)
                    }
                },
                Item::Event(event) => (event, false),
                Item::Rejected { raw, reason } => {
                    (Event::ingest_rejected(&raw, &reason, received), true)
                }
            };
            if !rejected && !is_known_action(event.category, &event.action) {
                metrics
                    .unknown_actions
                    .with_label_values(&[event.category.as_str()])
                    .inc();
            }
            let mut entry = Entry {
                received,
                via: via.clone(),
                event,
                enriched: None,
            };
            for t in transforms {
                t.apply(&mut entry);
            }
            let mut bytes = entry.canonical_bytes();
            let mut rejected = rejected;
            if bytes.len() > MAX_ENTRY_BYTES {
                // Canonical form grew past the ledger's limit: record why instead.
                let reason = format!(
                    "event is {} bytes once stored, over the {MAX_ENTRY_BYTES}-byte limit",
                    bytes.len()
                );
                let mut small = Entry {
                    received,
                    via: via.clone(),
                    event: Event::ingest_rejected(&bytes, &reason, received),
                    enriched: None,
                };
                for t in transforms {
                    t.apply(&mut small);
                }
                bytes = small.canonical_bytes();
                entry = small;
                rejected = true;
            }
            Prepared {
                id: if rejected {
                    None
                } else {
                    entry.event.id.clone()
                },
                // A source_silent event names the silent source; it must not
                // count as hearing from it. The service's own events (alerts)
                // are not a source either.
                source: entry
                    .event
                    .source
                    .as_ref()
                    .filter(|_| {
                        entry.event.action != "source_silent" && entry.via.kind != "sealtrail"
                    })
                    .map(|s| s.system.clone()),
                entry: LedgerEntry {
                    time_ms: entry.event.time.unix_ms(),
                    bytes,
                },
                rejected,
            }
        })
        .collect()
}

/// Builds the pipeline handle and its appender over a running ledger writer.
pub fn build(
    appender: &Appender,
    transforms: Vec<Box<dyn Transform>>,
    metrics: Arc<Metrics>,
) -> Pipeline {
    Pipeline {
        tx: appender.sender(),
        transforms: Arc::new(transforms),
        metrics,
    }
}

/// A pipeline whose appender is gone (a failed or stopped service): every
/// submit answers `Closed`. For tests of what must not happen without a
/// durable record.
#[cfg(test)]
pub(crate) fn closed_pipeline() -> Pipeline {
    let (tx, rx) = mpsc::channel(1);
    drop(rx);
    Pipeline {
        tx,
        transforms: Arc::new(Vec::new()),
        metrics: Metrics::new(),
    }
}

/// A pipeline over a ledger that never answers, already full: for tests of
/// how sources push back. Returns the appender to keep alive.
#[cfg(test)]
pub(crate) async fn stalled_pipeline() -> (
    Pipeline,
    Appender,
    std::sync::mpsc::Receiver<crate::ledger::writer::Request>,
) {
    let (handle, requests) = crate::ledger::writer::LedgerHandle::unserviced(1);
    let metrics = Metrics::new();
    let config = AppenderConfig {
        queue: 1,
        dedupe_window: 100,
    };
    #[allow(clippy::unwrap_used)] // test helper
    let appender = Appender::spawn(
        handle,
        0,
        dedupe::DedupeWindow::new(100),
        &config,
        metrics.clone(),
        None,
    )
    .unwrap();
    let pipeline = build(&appender, Vec::new(), metrics);
    for i in 0..4 {
        let p = pipeline.clone();
        let json = format!(
            r#"{{"id":"fill-{i}","time":"2026-11-27T14:03:11Z","category":"auth","action":"login","outcome":"success"}}"#
        );
        #[allow(clippy::unwrap_used)]
        let event = Event::from_json(json.as_bytes()).unwrap();
        let via = Via {
            kind: "test".into(),
            peer: None,
            principal: None,
        };
        tokio::spawn(async move {
            p.submit(IngestBatch {
                via,
                items: vec![Item::Event(event)],
            })
            .await
        });
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    (pipeline, appender, requests)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::writer::{Appended, LedgerHandle, Request};
    use crate::pipeline::dedupe::DedupeWindow;

    fn batch(id: &str) -> IngestBatch {
        let json = format!(
            r#"{{"id":"{id}","time":"2026-11-27T14:03:11Z","category":"auth","action":"login","outcome":"success"}}"#
        );
        IngestBatch {
            via: Via {
                kind: "http".into(),
                peer: None,
                principal: None,
            },
            items: vec![Item::Event(Event::from_json(json.as_bytes()).unwrap())],
        }
    }

    /// With the ledger stalled, queues fill up: `try_submit` answers `Busy`
    /// (HTTP turns that into 503) while `submit` waits (TCP stops reading);
    /// once the ledger answers, every waiting batch is acknowledged in order.
    #[test]
    fn service_actions_from_a_source_become_rejections_and_the_services_own_pass() {
        let alert = crate::event::Event::new(
            Timestamp::parse("2026-11-27T14:03:11Z").unwrap(),
            crate::event::Category::System,
            "alert",
            crate::event::Outcome::Success,
        );
        let prepared = |kind: &str| {
            let batch = IngestBatch {
                via: Via {
                    kind: kind.into(),
                    peer: None,
                    principal: None,
                },
                items: vec![Item::Event(alert.clone())],
            };
            let p = prepare(batch, &[], &Metrics::new()).pop().unwrap();
            let entry: serde_json::Value = serde_json::from_slice(&p.entry.bytes).unwrap();
            (p.rejected, entry)
        };
        for kind in ["http", "syslog_tcp", "import", "fhir"] {
            let (rejected, entry) = prepared(kind);
            assert!(rejected, "{kind}");
            assert_eq!(entry["event"]["action"], "ingest_rejected");
            assert!(
                entry["event"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("`system/alert` is written by sealtrail itself")
            );
        }
        for kind in ["sealtrail", "api"] {
            let (rejected, entry) = prepared(kind);
            assert!(!rejected, "{kind}");
            assert_eq!(entry["event"]["action"], "alert");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stalled_ledger_pushes_back_to_the_sources() {
        let (handle, requests) = LedgerHandle::unserviced(1);
        let metrics = Metrics::new();
        let config = AppenderConfig {
            queue: 1,
            dedupe_window: 100,
        };
        let appender = Appender::spawn(
            handle,
            0,
            DedupeWindow::new(100),
            &config,
            metrics.clone(),
            None,
        )
        .unwrap();
        let pipeline = build(&appender, Vec::new(), metrics.clone());
        // Waiting submitters: one in the writer's queue, one blocking the
        // appender on it, one in the appender queue, one waiting for room.
        let mut waiting = Vec::new();
        for i in 0..4 {
            let p = pipeline.clone();
            waiting.push(tokio::spawn(async move {
                p.submit(batch(&format!("w-{i}"))).await
            }));
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let busy = pipeline.try_submit(batch("probe")).await;
        assert!(
            matches!(busy, Err(PipelineError::Busy)),
            "a full pipeline must answer Busy: {busy:?}"
        );
        assert!(
            waiting.iter().all(|w| !w.is_finished()),
            "nothing is acknowledged before the ledger answers"
        );
        // The ledger catches up: answer every request in order.
        let answer = std::thread::spawn(move || {
            let mut next = 0;
            while let Ok(request) = requests.recv() {
                if let Request::Append { entries, reply } = request {
                    let count = entries.len() as u64;
                    reply(Ok(Appended {
                        first_index: next,
                        count,
                    }));
                    next += count;
                }
            }
        });
        for w in waiting {
            let receipt = w.await.unwrap().unwrap();
            assert_eq!(receipt.accepted(), 1);
        }
        assert!(
            metrics
                .render()
                .contains("sealtrail_busy_total{source=\"http\"}")
        );
        drop(pipeline);
        appender.join();
        answer.join().unwrap();
    }
}

//! The appender: the one place where entries get their global index.
//!
//! A dedicated thread (it may block on the ledger writer's bounded queue,
//! which must never stall an async worker) takes prepared batches in order,
//! answers retried client ids from the dedupe window, assigns indices and
//! hands the rest to the ledger writer; the source's reply is sent from the
//! writer's callback, i.e. only once the entries are durable.

use super::dedupe::{DedupeWindow, id_key};
use super::metrics::Metrics;
use super::{ItemOutcome, Job, PipelineError};
use crate::ledger::writer::{AppendError, Appended, LedgerHandle};
use std::sync::Arc;
use std::thread::JoinHandle;
use tokio::sync::mpsc;

/// Called for every stored (not rejected) event: `source.system`, event time (ms).
pub type Observer = Arc<dyn Fn(&str, i64) + Send + Sync>;

#[derive(Clone, Debug)]
pub struct AppenderConfig {
    /// Prepared batches waiting for the appender.
    pub queue: usize,
    /// Client ids remembered for exactly-once on retries.
    pub dedupe_window: usize,
}

impl Default for AppenderConfig {
    fn default() -> Self {
        AppenderConfig {
            queue: 64,
            dedupe_window: 1_000_000,
        }
    }
}

pub struct Appender {
    tx: mpsc::Sender<Job>,
    thread: JoinHandle<()>,
}

impl Appender {
    /// Starts the appender. `next_index` is the ledger's next global index
    /// (the appender is its only writer, so it can assign indices itself).
    pub fn spawn(
        ledger: LedgerHandle,
        next_index: u64,
        window: DedupeWindow,
        config: &AppenderConfig,
        metrics: Arc<Metrics>,
        observer: Option<Observer>,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        let thread = std::thread::Builder::new()
            .name("ingest-appender".into())
            .spawn(move || run(rx, ledger, next_index, window, metrics, observer))?;
        Ok(Appender { tx, thread })
    }

    pub(crate) fn sender(&self) -> mpsc::Sender<Job> {
        self.tx.clone()
    }

    /// Waits for the appender to finish once every pipeline handle is gone.
    pub fn join(self) {
        drop(self.tx);
        // A panic in the appender has already failed its pending replies.
        let _ = self.thread.join();
    }
}

fn run(
    mut rx: mpsc::Receiver<Job>,
    ledger: LedgerHandle,
    mut next_index: u64,
    mut window: DedupeWindow,
    metrics: Arc<Metrics>,
    observer: Option<Observer>,
) {
    let depth = metrics.queue_depth.with_label_values(&["appender"]);
    while let Some(job) = rx.blocking_recv() {
        depth.set(rx.len() as i64);
        let first = next_index;
        let mut outcomes = Vec::with_capacity(job.items.len());
        let mut entries = Vec::with_capacity(job.items.len());
        for p in job.items {
            if let Some(id) = &p.id {
                let key = id_key(id);
                if let Some(at) = window.get(key) {
                    outcomes.push(ItemOutcome::Duplicate(at));
                    continue;
                }
                window.insert(key, next_index);
            }
            outcomes.push(if p.rejected {
                ItemOutcome::Rejected(next_index)
            } else {
                ItemOutcome::Stored(next_index)
            });
            if let (Some(observe), Some(source), false) = (&observer, &p.source, p.rejected) {
                observe(source, p.entry.time_ms);
            }
            next_index += 1;
            entries.push(p.entry);
        }
        let count = next_index - first;
        let reply = job.reply;
        // Even a batch of only duplicates goes through the writer: its (empty)
        // request is answered after every earlier request is durable, so a
        // retry is never acknowledged before the original.
        let submitted = ledger.submit(
            entries,
            Box::new(move |result: Result<Appended, AppendError>| {
                let answer = match result {
                    Ok(a) if count > 0 && a.first_index != first => {
                        Err(PipelineError::Ledger(format!(
                            "ledger stored the batch at {}, the appender expected {first}",
                            a.first_index
                        )))
                    }
                    Ok(_) => Ok(outcomes),
                    Err(e) => Err(PipelineError::Ledger(e.to_string())),
                };
                // The source may have gone away (client disconnected); the
                // entries are stored regardless.
                let _ = reply.send(answer);
            }),
        );
        if submitted.is_err() {
            // The writer is gone: the reply was dropped with the request, so
            // the source sees `Closed`. Nothing more can be stored.
            break;
        }
    }
}

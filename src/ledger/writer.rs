//! Group commit: one thread owns the `Ledger`; appenders hand it batches over
//! a bounded channel and are answered once their entries are durable. Every
//! batch that arrived while the previous fsync ran shares the next fsync.
//!
//! Answers go through a callback so that any caller can wait its own way: the
//! CLI blocks on a std channel, the async pipeline completes a oneshot.

use super::log::{Ledger, LedgerEntry, LedgerError};
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::thread::{self, JoinHandle};
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use thiserror::Error;

/// Most entries written before one fsync, so a flood cannot delay the first
/// acknowledgements indefinitely.
const MAX_GROUP_ENTRIES: usize = 65_536;

/// Where the appended entries landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    pub first_index: u64,
    pub count: u64,
}

#[derive(Clone, Debug, Error)]
pub enum AppendError {
    #[error("the ledger writer has stopped")]
    Closed,
    #[error("the ledger queue is full")]
    Full,
    #[error(transparent)]
    Failed(Arc<LedgerError>),
}

pub type Reply = Box<dyn FnOnce(Result<Appended, AppendError>) + Send>;

/// Called by the writer thread after it sealed one or more segments.
pub type SealHook = Box<dyn Fn() + Send>;

pub(crate) enum Request {
    Append {
        entries: Vec<LedgerEntry>,
        reply: Reply,
    },
    Seal {
        reply: Box<dyn FnOnce(Result<(), AppendError>) + Send>,
    },
}

/// A cloneable way to append to the ledger owned by a `LedgerWriter`.
#[derive(Clone)]
pub struct LedgerHandle {
    tx: SyncSender<Request>,
}

impl LedgerHandle {
    /// A handle whose requests nobody serves, so tests can fill the queues
    /// behind it and answer requests by hand.
    #[cfg(test)]
    pub(crate) fn unserviced(capacity: usize) -> (LedgerHandle, Receiver<Request>) {
        let (tx, rx) = mpsc::sync_channel(capacity);
        (LedgerHandle { tx }, rx)
    }

    /// Queues a batch, waiting for room; `reply` runs once it is durable.
    pub fn submit(&self, entries: Vec<LedgerEntry>, reply: Reply) -> Result<(), AppendError> {
        self.tx
            .send(Request::Append { entries, reply })
            .map_err(|_| AppendError::Closed)
    }

    /// Appends and blocks until the entries are durable.
    pub fn append_blocking(&self, entries: Vec<LedgerEntry>) -> Result<Appended, AppendError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.submit(
            entries,
            Box::new(move |r| {
                // The receiver only goes away if the caller stopped waiting.
                let _ = tx.send(r);
            }),
        )?;
        rx.recv().map_err(|_| AppendError::Closed)?
    }

    /// Seals the open segment now and blocks until the checkpoint is written.
    pub fn seal_blocking(&self) -> Result<(), AppendError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.tx
            .send(Request::Seal {
                reply: Box::new(move |r| {
                    let _ = tx.send(r);
                }),
            })
            .map_err(|_| AppendError::Closed)?;
        rx.recv().map_err(|_| AppendError::Closed)?
    }
}

/// The writer's progress, published for metrics without touching the ledger.
#[derive(Debug, Default)]
pub struct WriterStatus {
    /// Global index the next entry gets.
    pub next_index: AtomicU64,
    /// Events covered by the latest signed checkpoint.
    pub sealed_events: AtomicU64,
    /// Wall-clock time (Unix ms) the oldest unsealed entry was appended; 0 if none.
    pub oldest_unsealed_unix_ms: AtomicU64,
    /// Time spent waiting in fsync, nanoseconds.
    pub fsync_nanos: AtomicU64,
}

impl WriterStatus {
    fn publish(&self, ledger: &Ledger) {
        self.next_index
            .store(ledger.next_index(), Ordering::Relaxed);
        self.sealed_events
            .store(ledger.sealed_events(), Ordering::Relaxed);
        let oldest = ledger.unsealed_since().map_or(0, |t| {
            let age = t.elapsed();
            SystemTime::now()
                .checked_sub(age)
                .and_then(|w| w.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_millis() as u64)
        });
        self.oldest_unsealed_unix_ms
            .store(oldest, Ordering::Relaxed);
        self.fsync_nanos.store(
            ledger.stats().fsync_time.as_nanos() as u64,
            Ordering::Relaxed,
        );
    }
}

/// The thread that owns the ledger.
pub struct LedgerWriter {
    handle: LedgerHandle,
    thread: JoinHandle<Result<(), LedgerError>>,
    status: Arc<WriterStatus>,
}

impl LedgerWriter {
    /// Starts the writer; `queue` bounds the number of waiting batches.
    pub fn spawn(ledger: Ledger, queue: usize) -> std::io::Result<Self> {
        Self::spawn_with_seal_hook(ledger, queue, None)
    }

    /// Like `spawn`; `on_seal` runs on the writer thread after each batch of
    /// work that sealed a segment, so it must not block (the compactor's
    /// notifier only tries a bounded send).
    pub fn spawn_with_seal_hook(
        ledger: Ledger,
        queue: usize,
        on_seal: Option<SealHook>,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::sync_channel(queue.max(1));
        let status = Arc::new(WriterStatus::default());
        status.publish(&ledger);
        let published = status.clone();
        let thread = thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || run(ledger, rx, &published, on_seal))?;
        Ok(LedgerWriter {
            handle: LedgerHandle { tx },
            thread,
            status,
        })
    }

    pub fn status(&self) -> Arc<WriterStatus> {
        self.status.clone()
    }

    pub fn handle(&self) -> LedgerHandle {
        self.handle.clone()
    }

    /// Stops accepting, drains what is queued, seals and joins the thread.
    /// Other handles must be dropped first, or this waits for them.
    pub fn shutdown(self) -> Result<(), LedgerError> {
        drop(self.handle);
        match self.thread.join() {
            Ok(r) => r,
            Err(_) => Err(LedgerError::Poisoned),
        }
    }
}

fn run(
    mut ledger: Ledger,
    rx: Receiver<Request>,
    status: &WriterStatus,
    on_seal: Option<SealHook>,
) -> Result<(), LedgerError> {
    // Batches written since the last fsync, waiting for it to be acknowledged.
    let mut group: Vec<(Reply, Range<u64>)> = Vec::new();
    let mut sealed = ledger.sealed_segments();
    let mut published = |ledger: &Ledger| {
        status.publish(ledger);
        if ledger.sealed_segments() != sealed {
            sealed = ledger.sealed_segments();
            if let Some(hook) = &on_seal {
                hook();
            }
        }
    };
    loop {
        let first = match ledger.seal_deadline() {
            Some(deadline) => {
                match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(r) => r,
                    Err(RecvTimeoutError::Timeout) => {
                        if let Err(e) = ledger.seal_if_due(Instant::now()) {
                            return fail_group(rx, Vec::new(), e);
                        }
                        published(&ledger);
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            None => match rx.recv() {
                Ok(r) => r,
                Err(_) => break,
            },
        };
        // Gather everything already waiting into one group commit.
        let mut pending = Some(first);
        let mut written = 0usize;
        let mut failure = None;
        while let Some(request) = pending.take() {
            match request {
                Request::Append { entries, reply } => {
                    written += entries.len();
                    match ledger.write(&entries) {
                        Ok(range) => group.push((reply, range)),
                        Err(e) => {
                            group.push((reply, 0..0));
                            failure = Some(e);
                            break;
                        }
                    }
                }
                Request::Seal { reply } => {
                    // Entries written before the seal must be durable first.
                    match ledger.sync().and_then(|_| ledger.seal()) {
                        Ok(_) => reply(Ok(())),
                        Err(e) => {
                            let e = Arc::new(e);
                            reply(Err(AppendError::Failed(e.clone())));
                            failure = Some(LedgerError::Poisoned);
                            break;
                        }
                    }
                }
            }
            if written < MAX_GROUP_ENTRIES {
                pending = rx.try_recv().ok();
            }
        }
        // A failed write leaves the file in an unknown state: nobody in the
        // group is acknowledged and the writer stops; restart recovery cuts the
        // unacknowledged tail.
        let outcome = match failure {
            Some(e) => Err(e),
            None => ledger.sync(),
        };
        if let Err(e) = outcome {
            return fail_group(rx, std::mem::take(&mut group), e);
        }
        for (reply, range) in group.drain(..) {
            reply(Ok(Appended {
                first_index: range.start,
                count: range.end - range.start,
            }));
        }
        if let Err(e) = ledger.seal_if_due(Instant::now()) {
            return fail_group(rx, Vec::new(), e);
        }
        published(&ledger);
    }
    ledger.close()
}

/// After a write or fsync failure nothing more can be trusted to be durable
/// (fsync errors are not retryable on Linux): answer everyone with the error,
/// keep answering until every handle is gone, and report the failure.
fn fail_group(
    rx: Receiver<Request>,
    group: Vec<(Reply, Range<u64>)>,
    e: LedgerError,
) -> Result<(), LedgerError> {
    let err = Arc::new(e);
    for (reply, _) in group {
        reply(Err(AppendError::Failed(err.clone())));
    }
    drain_with_error(rx, &err);
    Err(Arc::try_unwrap(err).unwrap_or(LedgerError::Poisoned))
}

fn drain_with_error(rx: Receiver<Request>, err: &Arc<LedgerError>) {
    // Keep answering until every handle is dropped, so no caller waits forever.
    while let Ok(request) = rx.recv() {
        match request {
            Request::Append { reply, .. } => reply(Err(AppendError::Failed(err.clone()))),
            Request::Seal { reply } => reply(Err(AppendError::Failed(err.clone()))),
        }
    }
}

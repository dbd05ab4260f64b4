//! Group commit: one thread owns the `Ledger`; appenders hand it batches over
//! a bounded channel and are answered once their entries are durable. Every
//! batch that arrived while the previous fsync ran shares the next fsync.
//!
//! Answers go through a callback so that any caller can wait its own way: the
//! CLI blocks on a std channel, the async pipeline completes a oneshot.
//!
//! A failed write or fsync (disk full, out of file handles, I/O error) does
//! not stop the writer: nobody in the group is answered, the ledger is
//! reopened with everything past the last successful fsync cut (a failed
//! fsync may have dropped dirty pages, so nothing after it is trusted), and
//! the group is written again from memory, with backoff, until it works.
//! Meanwhile the writer reads no new requests, so the bounded queues behind
//! it fill and the sources push back (HTTP 503, TCP stops reading); `health`
//! tells readiness, metrics and sources why.

use super::health::{Backoff, LedgerHealth, Outage};
use super::log::{Ledger, LedgerEntry, LedgerError, LedgerParts};
use super::segment::MAX_ENTRY_LEN;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use thiserror::Error;

/// How long a stopping writer keeps retrying a failed write before it
/// gives the waiting batches up (they were never acknowledged).
const STOP_GRACE: Duration = Duration::from_secs(5);

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
    health: Arc<LedgerHealth>,
    stopping: Arc<AtomicBool>,
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
        let health = Arc::new(LedgerHealth::default());
        let stopping = Arc::new(AtomicBool::new(false));
        let writer = Writer {
            durable: ledger.next_index(),
            sealed: ledger.sealed_segments(),
            ledger: Some(ledger),
            parts: None,
            status: status.clone(),
            health: health.clone(),
            stopping: stopping.clone(),
            on_seal,
            outage: Outage::new("ledger write"),
        };
        let thread = thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || writer.run(rx))?;
        Ok(LedgerWriter {
            handle: LedgerHandle { tx },
            thread,
            status,
            health,
            stopping,
        })
    }

    /// Whether the ledger can write now, and why not.
    pub fn health(&self) -> Arc<LedgerHealth> {
        self.health.clone()
    }

    /// Tells the writer the service is stopping: a write failing now is
    /// retried for a short grace period only, then the waiting batches are
    /// answered with the error, so shutdown cannot hang on a full disk.
    pub fn begin_stop(&self) {
        self.stopping.store(true, Ordering::Release);
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
        self.begin_stop();
        drop(self.handle);
        match self.thread.join() {
            Ok(r) => r,
            Err(_) => Err(LedgerError::Poisoned),
        }
    }
}

/// A batch waiting for its fsync: where it goes, and whom to tell.
struct Pending {
    first: u64,
    entries: Vec<LedgerEntry>,
    reply: Reply,
}

/// Seal requests waiting for the group's commit.
type SealReply = Box<dyn FnOnce(Result<(), AppendError>) + Send>;

struct Writer {
    /// `None` while a failed ledger waits to be reopened from `parts`.
    ledger: Option<Ledger>,
    parts: Option<LedgerParts>,
    /// Next index after the last successful fsync: everything before it is
    /// durable and may be acknowledged; nothing after it is trusted.
    durable: u64,
    sealed: u64,
    status: Arc<WriterStatus>,
    health: Arc<LedgerHealth>,
    stopping: Arc<AtomicBool>,
    on_seal: Option<SealHook>,
    outage: Outage,
}

impl Writer {
    fn run(mut self, rx: Receiver<Request>) -> Result<(), LedgerError> {
        loop {
            let deadline = self.ledger.as_ref().and_then(Ledger::seal_deadline);
            let first = match deadline {
                Some(deadline) => {
                    match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                        Ok(r) => r,
                        Err(RecvTimeoutError::Timeout) => {
                            if let Err(e) = self.until_done(|l| l.seal_if_due(Instant::now())) {
                                return fail_group(rx, Vec::new(), Vec::new(), e);
                            }
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
            let mut group: Vec<Pending> = Vec::new();
            let mut seals: Vec<SealReply> = Vec::new();
            let mut next = self.durable;
            let mut written = 0usize;
            let mut pending = Some(first);
            while let Some(request) = pending.take() {
                match request {
                    Request::Append { entries, reply } => match check(&entries) {
                        Ok(()) => {
                            written += entries.len();
                            group.push(Pending {
                                first: next,
                                entries,
                                reply,
                            });
                            next = group
                                .last()
                                .map_or(next, |p| p.first + p.entries.len() as u64);
                        }
                        Err(e) => reply(Err(AppendError::Failed(Arc::new(e)))),
                    },
                    Request::Seal { reply } => seals.push(reply),
                }
                if written < MAX_GROUP_ENTRIES {
                    pending = rx.try_recv().ok();
                }
            }
            let seal_now = !seals.is_empty();
            let committed = self.until_done(|l| {
                for p in &group {
                    let at = l.next_index();
                    let end = p.first + p.entries.len() as u64;
                    if at >= end {
                        continue; // durable before a failure cut what followed
                    }
                    if at < p.first {
                        return Err(LedgerError::Damaged(format!(
                            "the ledger is at index {at} but the next batch starts at {}",
                            p.first
                        )));
                    }
                    // Bounded by `end - p.first` = the batch length.
                    let skip = (at - p.first) as usize;
                    l.write(&p.entries[skip..])?;
                }
                l.sync()?;
                if seal_now {
                    l.seal()?;
                }
                l.seal_if_due(Instant::now())
            });
            if let Err(e) = committed {
                return fail_group(rx, group, seals, e);
            }
            for p in group {
                (p.reply)(Ok(Appended {
                    first_index: p.first,
                    count: p.entries.len() as u64,
                }));
            }
            for reply in seals {
                reply(Ok(()));
            }
        }
        // The clean stop: seal what is open (retried like any write).
        self.until_done(|l| {
            l.sync()?;
            l.seal().map(|_| ())
        })?;
        Ok(())
    }

    /// Runs `op` (which must leave everything it wrote durable) until it
    /// succeeds. After a failure the ledger is reopened at the last durable
    /// index and `op` runs again from there. Gives up only when stopping.
    fn until_done<T>(
        &mut self,
        mut op: impl FnMut(&mut Ledger) -> Result<T, LedgerError>,
    ) -> Result<T, LedgerError> {
        let mut backoff = Backoff::default();
        let mut stop_deadline: Option<Instant> = None;
        loop {
            let last = match self.ledger.as_mut() {
                Some(l) => match op(l) {
                    Ok(v) => {
                        self.durable = l.next_index();
                        self.publish();
                        if self.outage.is_failing() {
                            self.outage.succeeded();
                            self.health.recovered();
                        }
                        return Ok(v);
                    }
                    Err(e) => e,
                },
                None => match self.reopen() {
                    Ok(()) => continue,
                    Err(e) => e,
                },
            };
            self.outage.failed(&last);
            self.health.failed(&last);
            if let Some(l) = self.ledger.take() {
                // Closes the files (freeing handles); the lock stays held.
                self.parts = Some(l.into_parts());
            }
            if self.stopping.load(Ordering::Acquire) {
                let deadline = *stop_deadline.get_or_insert_with(|| Instant::now() + STOP_GRACE);
                if Instant::now() >= deadline {
                    // Best effort: cut what was written but never
                    // acknowledged, so a restart does not find it.
                    if let Some(parts) = self.parts.take() {
                        let _ = Ledger::reopen(parts, self.durable);
                    }
                    tracing::error!(error = %last, "stopping while the ledger cannot write: \
                        batches not yet acknowledged are given up; everything acknowledged is durable");
                    return Err(last);
                }
            }
            thread::sleep(backoff.next_delay());
        }
    }

    /// Reopens the failed ledger at the last durable index.
    fn reopen(&mut self) -> Result<(), LedgerError> {
        let Some(parts) = self.parts.take() else {
            return Err(LedgerError::Poisoned);
        };
        match Ledger::reopen(parts, self.durable) {
            Ok((ledger, recovery)) => {
                tracing::debug!(?recovery, "ledger reopened after a failed write");
                // A seal whose footer was fsynced before the failure made
                // its entries durable; the rest of the group is written again.
                self.durable = ledger.next_index();
                self.ledger = Some(ledger);
                Ok(())
            }
            Err(failed) => {
                let (e, parts) = *failed;
                self.parts = Some(parts);
                Err(e)
            }
        }
    }

    fn publish(&mut self) {
        let Some(ledger) = self.ledger.as_ref() else {
            return;
        };
        self.status.publish(ledger);
        if ledger.sealed_segments() != self.sealed {
            self.sealed = ledger.sealed_segments();
            if let Some(hook) = &self.on_seal {
                hook();
            }
        }
    }
}

/// Entries the ledger refuses whatever the disk does: answered at once
/// rather than retried.
fn check(entries: &[LedgerEntry]) -> Result<(), LedgerError> {
    for e in entries {
        if e.bytes.is_empty() {
            return Err(LedgerError::EmptyEntry);
        }
        if e.bytes.len() > MAX_ENTRY_LEN as usize {
            return Err(LedgerError::EntryTooLarge(e.bytes.len()));
        }
    }
    Ok(())
}

/// The writer gave up (stopping while the ledger cannot write): answer
/// everyone with the error, keep answering until every handle is gone, and
/// report the failure. Nothing answered here was acknowledged.
fn fail_group(
    rx: Receiver<Request>,
    group: Vec<Pending>,
    seals: Vec<SealReply>,
    e: LedgerError,
) -> Result<(), LedgerError> {
    let err = Arc::new(e);
    for p in group {
        (p.reply)(Err(AppendError::Failed(err.clone())));
    }
    for reply in seals {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::entries::EntryReader;
    use crate::ledger::keys::NoteSigner;
    use crate::ledger::log::{SealPolicy, faults};
    use crate::ledger::verify::verify_data_dir;
    use std::path::Path;

    const ENOSPC: i32 = 28;
    const EMFILE: i32 = 24;
    const EIO: i32 = 5;

    fn entry(i: u64) -> LedgerEntry {
        LedgerEntry {
            time_ms: 1_700_000_000_000 + i as i64,
            bytes: format!(
                r#"{{"event":{{"time":"2023-11-14T22:13:20.{i:03}Z","n":{i}}},"pad":"{}"}}"#,
                "x".repeat((i % 50) as usize)
            )
            .into_bytes(),
        }
    }

    fn batch(range: std::ops::Range<u64>) -> Vec<LedgerEntry> {
        range.map(entry).collect()
    }

    const NAME: &str = "t.example/heal";

    fn spawn(dir: &Path, max_events: u64) -> (LedgerWriter, NoteSigner) {
        let signer = NoteSigner::generate(NAME).unwrap();
        let again = NoteSigner::from_pkcs8_pem(NAME, &signer.to_pkcs8_pem().unwrap()).unwrap();
        let policy = SealPolicy {
            max_events,
            max_age: Duration::from_secs(3600),
        };
        let (ledger, _) = Ledger::open(dir, signer, policy).unwrap();
        (LedgerWriter::spawn(ledger, 16).unwrap(), again)
    }

    /// Every entry 0..n is stored exactly once, in order, and the directory verifies.
    fn assert_exactly(dir: &Path, n: u64, signer: &NoteSigner) {
        let reader = EntryReader::open(dir);
        for i in 0..n {
            assert_eq!(reader.read(i).unwrap(), entry(i).bytes, "entry {i}");
        }
        assert!(reader.read(n).is_err(), "nothing past {n}");
        let report = verify_data_dir(dir, &signer.verifier(), None).unwrap();
        assert!(report.ok, "{report:?}");
        assert_eq!(report.events, n);
    }

    /// A torn write (half a batch on disk), failed fsyncs and a reopen
    /// failing for want of file handles: the batch is acknowledged only once
    /// written, every entry is stored once, health reports and recovers.
    #[test]
    fn failed_writes_and_fsyncs_are_retried_until_they_heal() {
        let tmp = tempfile::tempdir().unwrap();
        let (writer, signer) = spawn(tmp.path(), 1000);
        let h = writer.handle();
        let health = writer.health();
        assert_eq!(h.append_blocking(batch(0..10)).unwrap().first_index, 0);

        faults::inject(tmp.path(), "write", 2, ENOSPC);
        faults::inject(tmp.path(), "reopen", 2, EMFILE);
        let a = h.append_blocking(batch(10..30)).unwrap();
        assert_eq!((a.first_index, a.count), (10, 20));
        assert!(health.writable());
        assert_eq!(health.errors(), [2, 2, 0, 0]);

        faults::inject(tmp.path(), "sync", 3, EIO);
        let a = h.append_blocking(batch(30..35)).unwrap();
        assert_eq!((a.first_index, a.count), (30, 5));
        assert_eq!(health.errors()[2], 3);

        drop(h);
        writer.shutdown().unwrap();
        assert_exactly(tmp.path(), 35, &signer);
    }

    /// A seal that fails after its footer was written (and a write that
    /// fails across a segment boundary): nothing is duplicated or lost.
    #[test]
    fn a_failed_seal_heals_without_duplicates() {
        let tmp = tempfile::tempdir().unwrap();
        let (writer, signer) = spawn(tmp.path(), 8);
        let h = writer.handle();
        h.append_blocking(batch(0..5)).unwrap();
        faults::inject(tmp.path(), "seal", 2, ENOSPC);
        // 5..20 fills the open segment (seal at 8, fails twice) and the next one.
        let a = h.append_blocking(batch(5..20)).unwrap();
        assert_eq!((a.first_index, a.count), (5, 15));
        faults::inject(tmp.path(), "write", 1, EIO);
        faults::inject(tmp.path(), "seal", 1, EIO);
        h.seal_blocking().unwrap();
        h.append_blocking(batch(20..21)).unwrap();
        drop(h);
        writer.shutdown().unwrap();
        assert_exactly(tmp.path(), 21, &signer);
    }

    /// While the ledger cannot write, the writer reads no new requests, so
    /// the bounded queue fills (the sources' backpressure); a stopping
    /// writer gives the unacknowledged batches up with an error and keeps
    /// what was acknowledged.
    #[test]
    fn stopping_while_failing_refuses_what_was_not_acknowledged() {
        let tmp = tempfile::tempdir().unwrap();
        let (writer, signer) = spawn(tmp.path(), 1000);
        let h = writer.handle();
        h.append_blocking(batch(0..3)).unwrap();
        faults::inject(tmp.path(), "sync", u32::MAX, ENOSPC);
        let waiting = {
            let h = h.clone();
            std::thread::spawn(move || h.append_blocking(batch(3..4)))
        };
        let health = writer.health();
        let start = Instant::now();
        while health.writable() {
            assert!(start.elapsed() < Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(health.reason().as_deref(), Some("No space left on device"));
        drop(h);
        writer.begin_stop();
        let result = writer.shutdown();
        assert!(
            result.is_err(),
            "stopping while failing reports the failure"
        );
        assert!(waiting.join().unwrap().is_err(), "never acknowledged");
        faults::inject(tmp.path(), "sync", 0, 0);
        // What was acknowledged is there after a restart (which seals it).
        let signer2 = NoteSigner::from_pkcs8_pem(NAME, &signer.to_pkcs8_pem().unwrap()).unwrap();
        let (ledger, _) = Ledger::open(tmp.path(), signer2, SealPolicy::default()).unwrap();
        assert_eq!(ledger.next_index(), 3);
    }
}

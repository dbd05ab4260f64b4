//! The compactor: a thread beside the ledger writer that compacts sealed
//! version 1 segments into version 2 (`compact.rs`) and chooses the shared
//! zstd dictionary.
//!
//! Dictionary policy:
//! - no dictionary yet (new ledger, or none found in the newest compacted
//!   segment's header): wait until the pending version 1 segments hold at
//!   least `min_samples` entries, train a `DICT_SIZE` dictionary on the newest
//!   of them (at most `max_samples` entries / `max_sample_bytes`), then
//!   compact them all; until then segments stay version 1;
//! - the current dictionary is reused for the following segments, across
//!   restarts (it is the one the newest compacted segment names);
//! - every `check_window` entries, the stored/original ratio of the entries
//!   compacted since the last check is compared with the baseline: the
//!   ratio of the first window the dictionary compressed (after training as
//!   after a restart). When it is worse by `retrain_factor`, a new dictionary
//!   is trained on the most recent entries and used from the next segment on.
//!   The baseline is never the ratio on the training set itself: a
//!   dictionary always compresses its own samples better than the entries
//!   after them (unique ids, times and sequence numbers), so that baseline
//!   had every later window look worse and retrained at every check, which
//!   cost a seventh of the service's CPU under load.
//!
//! It is woken by the writer after each seal (a non-blocking, coalescing
//! notification) and scans all sealed segments at start, so an old data
//! directory or one left by a crash gets compacted too. On shutdown it
//! finishes within `stop_grace`; a segment it abandons stays version 1 (and
//! an interrupted `.compact` file is deleted at the next open).

use super::compact::{self, CompactError, CompactStats, DICT_SIZE, Dictionary, PlainSegment};
use super::dicts::DictStore;
use super::log::{LedgerPaths, list_segments};
use super::segment::{Footer, FrameFormat, SegmentHeader};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs::File;
use std::io::BufReader;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct CompactorOptions {
    /// Entries needed before the first dictionary is trained.
    pub min_samples: usize,
    /// Most entries (and bytes) a dictionary is trained on.
    pub max_samples: usize,
    pub max_sample_bytes: usize,
    /// Target dictionary size.
    pub dict_size: usize,
    /// Retrain when a window compresses this much worse than the baseline.
    pub retrain_factor: f64,
    /// Entries per ratio check.
    pub check_window: u64,
    /// How long shutdown may keep compacting before it abandons the rest.
    pub stop_grace: Duration,
    /// Most of a core the background thread may use while the service runs:
    /// after each segment it rests in proportion to the time it worked, so
    /// a backlog (a restart after a burst) does not starve the indexer and
    /// the rule engine. Steady ingest at 10,000 events/s needs about 6%.
    pub max_duty: f64,
    /// Sealed version 1 segments left waiting while the writer keeps
    /// sealing (`busy`): compaction only saves disk space, so during a burst
    /// it leaves the cores to ingestion, indexing and detection, and catches
    /// up once no segment was sealed for `idle_after`. Beyond this many it
    /// compacts anyway (at `max_duty`), so sustained load cannot grow the
    /// uncompressed backlog, and the disk, without bound.
    pub defer_segments: usize,
    /// How long after the last seal the writer counts as idle.
    pub idle_after: Duration,
}

impl Default for CompactorOptions {
    fn default() -> Self {
        CompactorOptions {
            min_samples: 4096,
            max_samples: 16_384,
            max_sample_bytes: 16 << 20,
            dict_size: DICT_SIZE,
            retrain_factor: 1.25,
            check_window: 4096,
            stop_grace: Duration::from_secs(5),
            max_duty: 0.25,
            defer_segments: 64,
            idle_after: Duration::from_secs(2),
        }
    }
}

/// Totals, for metrics.
#[derive(Debug, Default)]
pub struct CompactorStatus {
    pub segments: AtomicU64,
    pub entries: AtomicU64,
    pub file_bytes_before: AtomicU64,
    pub file_bytes_after: AtomicU64,
    pub dictionaries_trained: AtomicU64,
    pub failures: AtomicU64,
}

struct Current {
    dict: Dictionary,
    /// Stored/original ratio the dictionary is expected to reach.
    baseline: Option<f64>,
}

/// The compaction state of one ledger; `pass` does the work synchronously
/// (the thread calls it; tests and benchmarks can too).
pub struct Compaction {
    paths: LedgerPaths,
    dicts: DictStore,
    opts: CompactorOptions,
    current: Option<Current>,
    looked_for_current: bool,
    /// Most recent entries compacted, for retraining.
    recent: VecDeque<Vec<u8>>,
    recent_bytes: usize,
    window: (u64, u64, u64),
    /// Sealed segments below this number have been looked at: they are
    /// compacted, skipped, or in `plain`.
    scanned_below: u64,
    /// Version 1 sealed segments waiting, with their entry counts.
    plain: BTreeMap<u64, u64>,
    /// Segments that failed to compact; not retried until restart.
    skipped: BTreeSet<u64>,
    status: Arc<CompactorStatus>,
    /// The last pass left segments for later because the writer was busy.
    deferred: bool,
}

impl Compaction {
    pub fn new(paths: LedgerPaths, opts: CompactorOptions) -> Compaction {
        Compaction {
            dicts: DictStore::new(&paths.dicts),
            paths,
            opts,
            current: None,
            looked_for_current: false,
            recent: VecDeque::new(),
            recent_bytes: 0,
            window: (0, 0, 0),
            scanned_below: 0,
            plain: BTreeMap::new(),
            skipped: BTreeSet::new(),
            status: Arc::new(CompactorStatus::default()),
            deferred: false,
        }
    }

    /// Whether the last pass left pending segments for an idle moment.
    pub fn deferred(&self) -> bool {
        self.deferred
    }

    pub fn status(&self) -> Arc<CompactorStatus> {
        self.status.clone()
    }

    /// Hash of the dictionary new segments are compacted with, if any.
    pub fn current_dict(&self) -> Option<[u8; 32]> {
        self.current.as_ref().map(|c| *c.dict.hash())
    }

    fn header(&self, n: u64) -> Option<SegmentHeader> {
        let path = self.paths.segment(n, true);
        let file = File::open(&path).ok()?;
        SegmentHeader::read(&path, &mut BufReader::new(file))
            .ok()
            .map(|(h, _)| h)
    }

    /// Entry count of sealed segment `n` if it is version 1.
    fn plain_count(&self, n: u64) -> Option<u64> {
        let path = self.paths.segment(n, true);
        let file = File::open(&path).ok()?;
        let (header, _) = SegmentHeader::read(&path, &mut BufReader::new(&file)).ok()?;
        if header.format != FrameFormat::Plain {
            return None;
        }
        let mut file = file;
        Footer::read(&path, &mut file).ok().map(|f| f.record.count)
    }

    /// The dictionary named by the newest compacted segment.
    fn find_current(&mut self, sealed: &[u64]) {
        self.looked_for_current = true;
        for &n in sealed.iter().rev() {
            if let Some(FrameFormat::Zstd { dict }) = self.header(n).map(|h| h.format) {
                if dict == [0; 32] {
                    continue;
                }
                match self.dicts.read_bytes(&dict) {
                    Ok(bytes) => {
                        self.current = Some(Current {
                            dict: Dictionary::from_bytes(bytes),
                            baseline: None,
                        });
                    }
                    Err(e) => tracing::warn!(error = %e, "not reusing the current dictionary"),
                }
                return;
            }
        }
    }

    fn train(&mut self, samples: &[Vec<u8>]) -> Result<(), CompactError> {
        let started = Instant::now();
        let dict = Dictionary::train(samples, self.opts.dict_size)?;
        let (after, before) = dict.measure(samples)?;
        self.dicts.write(dict.bytes())?;
        tracing::info!(
            dict = %hex::encode(dict.hash()),
            samples = samples.len(),
            bytes = dict.bytes().len(),
            training_set_ratio = after as f64 / before.max(1) as f64,
            took_ms = started.elapsed().as_millis() as u64,
            "trained a compression dictionary"
        );
        self.status
            .dictionaries_trained
            .fetch_add(1, Ordering::Relaxed);
        // The baseline comes from the first window after this one.
        self.current = Some(Current {
            dict,
            baseline: None,
        });
        self.window = (0, 0, 0);
        Ok(())
    }

    fn remember(&mut self, entries: Vec<Vec<u8>>) {
        for e in entries {
            self.recent_bytes += e.len();
            self.recent.push_back(e);
        }
        while self.recent.len() > self.opts.max_samples
            || self.recent_bytes > self.opts.max_sample_bytes
        {
            match self.recent.pop_front() {
                Some(e) => self.recent_bytes -= e.len(),
                None => break,
            }
        }
    }

    /// Compares the last window's ratio with the baseline; retrains when
    /// it got noticeably worse.
    fn check_ratio(&mut self, stats: &CompactStats) -> Result<(), CompactError> {
        let w = &mut self.window;
        w.0 += stats.entries;
        w.1 += stats.entry_bytes;
        w.2 += stats.stored_bytes;
        if w.0 < self.opts.check_window {
            return Ok(());
        }
        let ratio = w.2 as f64 / w.1.max(1) as f64;
        *w = (0, 0, 0);
        let Some(current) = self.current.as_mut() else {
            return Ok(());
        };
        match current.baseline {
            None => current.baseline = Some(ratio),
            Some(b) if ratio > b * self.opts.retrain_factor => {
                tracing::info!(
                    ratio,
                    baseline = b,
                    "entries compress worse than the dictionary did on its training set: retraining"
                );
                let samples: Vec<Vec<u8>> = self.recent.iter().cloned().collect();
                if samples.len() >= self.opts.min_samples {
                    self.train(&samples)?;
                }
            }
            Some(_) => {}
        }
        Ok(())
    }

    /// Compacts every sealed version 1 segment it can; `abort` is asked
    /// between segments. Returns the number of segments compacted.
    pub fn pass(&mut self, abort: &dyn Fn() -> bool) -> Result<u64, CompactError> {
        self.pass_paced(abort, &|| true, 1.0, &|| false)
    }

    /// [`Compaction::pass`], resting after each segment so that the thread
    /// works at most `duty` of the time; `hurry` ends a rest early
    /// (shutdown). While `busy` holds, the last `defer_segments` pending
    /// segments are left for later ([`Compaction::deferred`]).
    pub fn pass_paced(
        &mut self,
        abort: &dyn Fn() -> bool,
        hurry: &dyn Fn() -> bool,
        duty: f64,
        busy: &dyn Fn() -> bool,
    ) -> Result<u64, CompactError> {
        self.deferred = false;
        let (sealed, _) = list_segments(&self.paths.segments).map_err(|e| CompactError::Check {
            path: self.paths.segments.clone(),
            reason: e.to_string(),
        })?;
        if !self.looked_for_current {
            self.find_current(&sealed);
        }
        for &n in sealed.iter().filter(|n| **n >= self.scanned_below) {
            if let Some(count) = self.plain_count(n) {
                self.plain.insert(n, count);
            }
        }
        self.scanned_below = sealed.last().map_or(0, |n| n + 1);
        let pending: Vec<u64> = self
            .plain
            .keys()
            .copied()
            .filter(|n| !self.skipped.contains(n))
            .collect();
        if pending.is_empty() {
            return Ok(0);
        }
        let waiting: u64 = self.plain.values().sum();
        if self.current.is_none() && waiting < self.opts.min_samples as u64 {
            return Ok(0);
        }
        if self.current.is_none() {
            let samples = self.samples(&pending);
            if samples.len() < self.opts.min_samples {
                return Ok(0);
            }
            if let Err(e) = self.train(&samples) {
                // Too few distinct samples, say: try again with more.
                tracing::warn!(error = %e, "could not train a dictionary yet");
                return Ok(0);
            }
        }
        let mut done = 0;
        let mut worked = Duration::ZERO;
        for (i, &n) in pending.iter().enumerate() {
            if abort() {
                break;
            }
            if pending.len() - i <= self.opts.defer_segments && busy() {
                self.deferred = true;
                break;
            }
            let Some(current) = self.current.as_ref() else {
                break;
            };
            if done > 0 {
                rest(worked, duty, hurry);
            }
            let started = Instant::now();
            let path = self.paths.segment(n, true);
            let tmp = self.paths.compacting(n);
            let result = compact::compact_segment(&path, &tmp, &current.dict, &self.dicts);
            worked = started.elapsed();
            match result {
                Ok((stats, seg)) => {
                    done += 1;
                    self.plain.remove(&n);
                    let s = &self.status;
                    s.segments.fetch_add(1, Ordering::Relaxed);
                    s.entries.fetch_add(stats.entries, Ordering::Relaxed);
                    s.file_bytes_before
                        .fetch_add(stats.file_before, Ordering::Relaxed);
                    s.file_bytes_after
                        .fetch_add(stats.file_after, Ordering::Relaxed);
                    tracing::debug!(segment = n, ?stats, "compacted");
                    self.remember(seg.entries);
                    self.check_ratio(&stats)?;
                }
                Err(e) => {
                    tracing::error!(segment = n, error = %e, "segment not compacted; it stays uncompressed");
                    self.status.failures.fetch_add(1, Ordering::Relaxed);
                    self.skipped.insert(n);
                    self.plain.remove(&n);
                }
            }
        }
        Ok(done)
    }

    /// Entries of the newest pending segments, up to the sampling bounds.
    fn samples(&self, pending: &[u64]) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mut bytes = 0usize;
        for &n in pending.iter().rev() {
            let Ok(seg) = PlainSegment::read(&self.paths.segment(n, true)) else {
                continue;
            };
            for e in seg.entries.into_iter().rev() {
                if out.len() >= self.opts.max_samples
                    || bytes + e.len() > self.opts.max_sample_bytes
                {
                    return out;
                }
                bytes += e.len();
                out.push(e);
            }
        }
        out
    }
}

enum Msg {
    Sealed,
    Stop,
}

/// The compactor thread.
pub struct Compactor {
    tx: SyncSender<Msg>,
    thread: JoinHandle<()>,
    stop: Arc<OnceLock<Instant>>,
    status: Arc<CompactorStatus>,
    last_seal: Arc<SealClock>,
}

/// When the writer last sealed, as milliseconds since the compactor started.
struct SealClock {
    start: Instant,
    last_ms: AtomicU64,
}

impl SealClock {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
    fn sealed(&self) {
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
    }
    fn quiet_for(&self, d: Duration) -> bool {
        let since = self
            .now_ms()
            .saturating_sub(self.last_ms.load(Ordering::Relaxed));
        u128::from(since) >= d.as_millis()
    }
}

impl Compactor {
    pub fn spawn(paths: LedgerPaths, opts: CompactorOptions) -> std::io::Result<Compactor> {
        let (tx, rx) = mpsc::sync_channel(1);
        let stop = Arc::new(OnceLock::new());
        let last_seal = Arc::new(SealClock {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        });
        let compaction = Compaction::new(paths, opts);
        let status = compaction.status();
        let (stopping, clock) = (stop.clone(), last_seal.clone());
        let thread = thread::Builder::new()
            .name("ledger-compactor".into())
            .spawn(move || run(compaction, &rx, &stopping, &clock))?;
        Ok(Compactor {
            tx,
            thread,
            stop,
            status,
            last_seal,
        })
    }

    pub fn status(&self) -> Arc<CompactorStatus> {
        self.status.clone()
    }

    /// A callback for the writer: never blocks (a wake-up already queued
    /// covers this one too).
    pub fn notifier(&self) -> Box<dyn Fn() + Send> {
        let (tx, clock) = (self.tx.clone(), self.last_seal.clone());
        Box::new(move || {
            clock.sealed();
            match tx.try_send(Msg::Sealed) {
                Ok(()) | Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {}
            }
        })
    }

    /// One last pass over what is sealed (bounded by the grace period),
    /// then the thread ends.
    pub fn shutdown(self) {
        let _ = self.stop.set(Instant::now());
        // A full queue already holds a wake-up; the thread sees `stop` after it.
        let _ = self.tx.try_send(Msg::Stop);
        drop(self.tx);
        if self.thread.join().is_err() {
            tracing::error!("the compactor thread panicked; sealed segments stay uncompressed");
        }
    }
}

/// Rests after `worked` so that work is at most `duty` of the time, in
/// short steps so that `hurry` ends it promptly.
fn rest(worked: Duration, duty: f64, hurry: &dyn Fn() -> bool) {
    if !(duty > 0.0 && duty < 1.0) {
        return;
    }
    let until = Instant::now() + worked.mul_f64((1.0 - duty) / duty);
    while !hurry() {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        thread::sleep(left.min(Duration::from_millis(20)));
    }
}

fn run(mut c: Compaction, rx: &Receiver<Msg>, stop: &OnceLock<Instant>, clock: &SealClock) {
    let (grace, duty, idle) = (c.opts.stop_grace, c.opts.max_duty, c.opts.idle_after);
    let abort = || stop.get().is_some_and(|t| t.elapsed() >= grace);
    let hurry = || stop.get().is_some();
    let busy = || !clock.quiet_for(idle) && stop.get().is_none();
    let pass = |c: &mut Compaction| {
        if let Err(e) = c.pass_paced(&abort, &hurry, duty, &busy) {
            tracing::error!(error = %e, "compaction pass failed");
        }
    };
    pass(&mut c);
    loop {
        // Woken by a seal, or (with segments deferred) once the writer has
        // been quiet long enough to catch up.
        let wait = if c.deferred() {
            idle
        } else {
            Duration::from_secs(3600)
        };
        match rx.recv_timeout(wait) {
            Ok(Msg::Sealed) if stop.get().is_none() => pass(&mut c),
            Err(RecvTimeoutError::Timeout) => pass(&mut c),
            Ok(_) | Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    // Shutdown: what the last seal produced, within the grace period (no
    // rests: `hurry` holds; nothing deferred: `busy` is false).
    pass(&mut c);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Entries like a syslog stream's: a shared shape around a sequence
    /// number, a time and a token that are new in every entry.
    fn stream(from: u64, n: u64) -> Vec<Vec<u8>> {
        (from..from + n)
            .map(|i| {
                let token = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 16;
                format!(
                    r#"{{"received":"2026-12-08T03:52:{:02}.{:03}Z","event":{{"action":"syslog","message":"seq: {i:010}, token: {token:012x}, host app-{:02} PADDPADDPADDPADD"}}}}"#,
                    i % 60,
                    i % 1000,
                    i % 7
                )
                .into_bytes()
            })
            .collect()
    }

    fn window(stored_per_byte: f64, entries: u64) -> CompactStats {
        CompactStats {
            entries,
            entry_bytes: 1_000_000,
            stored_bytes: (stored_per_byte * 1_000_000.0) as u64,
            file_before: 0,
            file_after: 0,
        }
    }

    #[test]
    fn the_baseline_is_the_first_window_after_training_not_the_training_set() {
        let dir = tempfile::tempdir().unwrap();
        let paths = LedgerPaths::new(dir.path());
        std::fs::create_dir_all(&paths.dicts).unwrap();
        let opts = CompactorOptions {
            min_samples: 500,
            check_window: 1_000,
            ..CompactorOptions::default()
        };
        let mut c = Compaction::new(paths, opts);
        let trained = |c: &Compaction| c.status.dictionaries_trained.load(Ordering::Relaxed);
        let samples = stream(0, 2_000);
        c.remember(samples.clone());
        c.train(&samples).unwrap();
        assert_eq!(trained(&c), 1);
        // The entries after the training set compress worse than the set
        // itself did (new tokens): that is the dictionary's normal ratio.
        let dict = &c.current.as_ref().unwrap().dict;
        let (a, b) = dict.measure(&samples).unwrap();
        let in_sample = a as f64 / b as f64;
        let (a, b) = dict.measure(&stream(2_000, 2_000)).unwrap();
        let after = a as f64 / b as f64;
        assert!(after > in_sample, "{after} vs {in_sample}");
        let normal = in_sample * 1.4;
        for _ in 0..5 {
            c.check_ratio(&window(normal, 1_000)).unwrap();
        }
        assert_eq!(trained(&c), 1, "a steady stream retrained");
        // Data that really changed still gets a new dictionary.
        c.check_ratio(&window(normal * 1.4, 1_000)).unwrap();
        assert_eq!(trained(&c), 2, "a worse stream did not retrain");
    }

    #[test]
    fn rests_in_proportion_to_work_unless_hurried() {
        // A quarter duty: 40 ms of work asks for 120 ms of rest.
        let t = Instant::now();
        rest(Duration::from_millis(40), 0.25, &|| false);
        assert!(
            t.elapsed() >= Duration::from_millis(120),
            "{:?}",
            t.elapsed()
        );
        // Shutdown cuts it short; full duty never rests.
        let t = Instant::now();
        rest(Duration::from_secs(60), 0.25, &|| true);
        rest(Duration::from_secs(60), 1.0, &|| false);
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}

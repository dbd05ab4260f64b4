//! The writer's view of the ledger: the open segment (write-ahead log), sealing,
//! the log tree and the latest signed checkpoint, and crash recovery.
//!
//! Data directory layout (see docs/LEDGER.md):
//! ```text
//! DATA/LOCK                          held by the one process that writes DATA
//! DATA/ledger/segments/NNNNNNNNNNNN.seg    sealed segments
//! DATA/ledger/segments/NNNNNNNNNNNN.open   the open segment (write-ahead log)
//! DATA/ledger/dicts/<sha256>.zdict    zstd dictionaries of compacted segments
//! DATA/ledger/tree/level-LL          log tree nodes (derived, repaired on open)
//! DATA/ledger/segments.idx           first global index of each sealed segment (derived)
//! DATA/ledger/checkpoint             latest signed checkpoint (C2SP signed note)
//! ```

use super::atrest::{Keyring, SegmentCipher};
use super::hash::Hash;
use super::keys::NoteSigner;
use super::note::{self, Checkpoint, NoteError};
use super::record::{MAX_ORIGIN_LEN, SegmentRecord};
use super::segment::{
    self, FRAME_HEADER_LEN, Footer, FrameReader, MAX_ENTRY_LEN, MAX_SEGMENT_EVENTS, SegmentError,
    SegmentHeader, Tail,
};
use super::tree_store::{SegmentIndex, TreeStore, TreeStoreError};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::ops::Range;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long opening waits for the data directory's lock before reporting it
/// in use.
const LOCK_WAIT: Duration = Duration::from_secs(2);
use thiserror::Error;

/// Failures injected by tests at named points of a data directory's writes
/// (`write` leaves half a batch on disk, `sync` and `seal` fail before
/// their fsync, `reopen` fails like running out of file handles).
#[cfg(test)]
pub(crate) mod faults {
    use std::io;
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    static FAULTS: Mutex<Vec<(PathBuf, &'static str, u32, i32)>> = Mutex::new(Vec::new());

    /// The next `times` passes through `point` in `data` fail with OS error `errno`.
    pub(crate) fn inject(data: &Path, point: &'static str, times: u32, errno: i32) {
        if let Ok(mut f) = FAULTS.lock() {
            f.push((data.to_owned(), point, times, errno));
        }
    }

    pub(super) fn hit(data: &Path, point: &str) -> Option<io::Error> {
        let mut f = FAULTS.lock().ok()?;
        let slot = f
            .iter_mut()
            .find(|(d, p, n, _)| d == data && *p == point && *n > 0)?;
        slot.2 -= 1;
        Some(io::Error::from_raw_os_error(slot.3))
    }
}

/// Length of a segment header without its origin.
const HEADER_FIXED_LEN: u64 = 64;

#[derive(Debug, Error)]
pub enum LedgerError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("data directory {0} is in use by another process")]
    Locked(PathBuf),
    #[error(transparent)]
    Segment(#[from] SegmentError),
    #[error(transparent)]
    Tree(#[from] TreeStoreError),
    #[error("checkpoint: {0}")]
    Note(#[from] NoteError),
    #[error("ledger is damaged: {0}")]
    Damaged(String),
    #[error("ledger origin is {ledger:?} but the signing key is named {key:?}")]
    OriginMismatch { ledger: String, key: String },
    #[error("entry of {0} bytes is larger than the {MAX_ENTRY_LEN}-byte limit")]
    EntryTooLarge(usize),
    #[error("entry is empty")]
    EmptyEntry,
    #[error(transparent)]
    Key(#[from] super::atrest::AtRestError),
    #[error("invalid ledger option: {0}")]
    Options(String),
    #[error("ledger writer stopped after an earlier failure; restart to recover")]
    Poisoned,
    #[error("key history: {0}")]
    KeyHistory(#[from] super::key_history::KeyHistoryError),
}

impl LedgerError {
    fn io(path: &Path, source: io::Error) -> Self {
        LedgerError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// Where the writer's time goes, for metrics and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LedgerStats {
    /// fsync / fdatasync calls made (file and directory).
    pub fsyncs: u64,
    /// Wall time spent waiting in them.
    pub fsync_time: Duration,
    pub seals: u64,
    /// Wall time spent sealing (footer, fsyncs, tree, checkpoint), all told.
    pub seal_time: Duration,
    /// The longest single seal.
    pub max_seal_time: Duration,
}

impl LedgerStats {
    /// Runs `f`, an operation that waits for the disk, and accounts its time.
    fn durable<T>(&mut self, f: impl FnOnce() -> Result<T, LedgerError>) -> Result<T, LedgerError> {
        let start = Instant::now();
        let r = f();
        self.fsyncs += 1;
        self.fsync_time += start.elapsed();
        r
    }
}

/// When the open segment is sealed.
#[derive(Clone, Debug)]
pub struct SealPolicy {
    pub max_events: u64,
    pub max_age: Duration,
}

impl Default for SealPolicy {
    fn default() -> Self {
        SealPolicy {
            max_events: 16_384,
            max_age: Duration::from_millis(1000),
        }
    }
}

impl SealPolicy {
    pub fn validate(&self) -> Result<(), LedgerError> {
        if self.max_events == 0 || self.max_events > MAX_SEGMENT_EVENTS {
            return Err(LedgerError::Options(format!(
                "seal_max_events must be between 1 and {MAX_SEGMENT_EVENTS}"
            )));
        }
        if self.max_age.is_zero() {
            return Err(LedgerError::Options(
                "seal_max_age_ms must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// One entry to append: its canonical bytes and the event's own time.
#[derive(Clone, Debug)]
pub struct LedgerEntry {
    pub bytes: Vec<u8>,
    pub time_ms: i64,
}

/// What `open` found and repaired.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Entries found in the open segment (acknowledged before the restart).
    pub open_entries: u64,
    /// Bytes cut from a torn tail of the open segment (never acknowledged).
    pub torn_bytes_cut: u64,
    /// Why the tail was cut, when it was.
    pub torn_reason: Option<String>,
    /// A seal interrupted by the crash was completed.
    pub completed_seal: bool,
    /// The checkpoint was re-signed because it lagged the sealed segments.
    pub resigned_checkpoint: bool,
}

/// Paths inside a data directory.
#[derive(Clone, Debug)]
pub struct LedgerPaths {
    pub data: PathBuf,
    pub ledger: PathBuf,
    pub segments: PathBuf,
    /// zstd dictionaries named by compacted (v2) segment headers.
    pub dicts: PathBuf,
    pub tree: PathBuf,
    pub index: PathBuf,
    pub checkpoint: PathBuf,
    pub lock: PathBuf,
}

impl LedgerPaths {
    pub fn new(data_dir: &Path) -> Self {
        let ledger = data_dir.join("ledger");
        LedgerPaths {
            data: data_dir.to_owned(),
            segments: ledger.join("segments"),
            dicts: ledger.join("dicts"),
            tree: ledger.join("tree"),
            index: ledger.join("segments.idx"),
            checkpoint: ledger.join("checkpoint"),
            lock: data_dir.join("LOCK"),
            ledger,
        }
    }

    pub fn segment(&self, number: u64, sealed: bool) -> PathBuf {
        self.segments.join(segment::file_name(number, sealed))
    }

    /// Where compaction writes the new file of sealed segment `number`.
    pub fn compacting(&self, number: u64) -> PathBuf {
        self.segments.join(format!(
            "{}{}",
            segment::file_name(number, true),
            segment::COMPACT_SUFFIX
        ))
    }
}

/// Deletes what an interrupted compaction left behind: `N.seg.compact`
/// files (never renamed, so `N.seg` is intact) and dictionary temporaries.
fn remove_compaction_leftovers(paths: &LedgerPaths) -> Result<(), LedgerError> {
    let dir = &paths.segments;
    for entry in fs::read_dir(dir).map_err(|e| LedgerError::io(dir, e))? {
        let entry = entry.map_err(|e| LedgerError::io(dir, e))?;
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.ends_with(segment::COMPACT_SUFFIX))
        {
            fs::remove_file(entry.path()).map_err(|e| LedgerError::io(&entry.path(), e))?;
        }
    }
    super::dicts::DictStore::new(&paths.dicts)
        .remove_temporaries()
        .map_err(|e| LedgerError::Damaged(e.to_string()))
}

/// Lists segment files: sealed numbers (sorted) and the open one, if any.
pub fn list_segments(dir: &Path) -> Result<(Vec<u64>, Vec<u64>), LedgerError> {
    let mut sealed = Vec::new();
    let mut open = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((sealed, open)),
        Err(e) => return Err(LedgerError::io(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| LedgerError::io(dir, e))?;
        if let Some((n, is_sealed)) = entry
            .file_name()
            .to_str()
            .and_then(segment::parse_file_name)
        {
            if is_sealed {
                sealed.push(n);
            } else {
                open.push(n);
            }
        }
    }
    sealed.sort_unstable();
    open.sort_unstable();
    Ok((sealed, open))
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), LedgerError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| LedgerError::io(dir, e))
}

struct OpenSegment {
    header: SegmentHeader,
    path: PathBuf,
    file: File,
    len: u64,
    leaves: Vec<Hash>,
    offsets: Vec<u64>,
    min_time_ms: i64,
    max_time_ms: i64,
    /// When the oldest unsealed entry was appended (drives sealing by age).
    oldest: Option<Instant>,
    /// Bytes written since the last fsync.
    dirty: bool,
    /// Encrypts frames as they are written (version 3 segments).
    cipher: Option<Arc<SegmentCipher>>,
}

impl OpenSegment {
    /// Creates the segment file; for an encrypted segment its data key is
    /// made durable first, so a header never names a key that is not there.
    fn create(
        path: PathBuf,
        header: SegmentHeader,
        keys: Option<&Keyring>,
    ) -> Result<Self, LedgerError> {
        let cipher = match (header.format, keys) {
            (segment::FrameFormat::Encrypted { number }, Some(k)) => Some(k.create(number)?),
            (segment::FrameFormat::Encrypted { number }, None) => {
                return Err(super::atrest::AtRestError::NoKek { number }.into());
            }
            _ => None,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| LedgerError::io(&path, e))?;
        let bytes = header.to_bytes();
        file.write_all(&bytes)
            .and_then(|_| file.sync_all())
            .map_err(|e| LedgerError::io(&path, e))?;
        Ok(OpenSegment {
            header,
            path,
            file,
            len: bytes.len() as u64,
            leaves: Vec::new(),
            offsets: Vec::new(),
            min_time_ms: i64::MAX,
            max_time_ms: i64::MIN,
            oldest: None,
            dirty: false,
            cipher,
        })
    }

    fn count(&self) -> u64 {
        self.leaves.len() as u64
    }

    fn note_time(&mut self, time_ms: i64) {
        self.min_time_ms = self.min_time_ms.min(time_ms);
        self.max_time_ms = self.max_time_ms.max(time_ms);
    }
}

/// What a closed `Ledger` keeps for `Ledger::reopen`: above all the
/// directory lock, so no other process can take the directory meanwhile.
pub struct LedgerParts {
    data: PathBuf,
    lock: File,
    signer: NoteSigner,
    policy: SealPolicy,
}

/// A failed (re)open: the error, and the parts for the next attempt.
pub type ReopenFailed = Box<(LedgerError, LedgerParts)>;

/// The single writer of a data directory's ledger.
pub struct Ledger {
    paths: LedgerPaths,
    _lock: File,
    signer: NoteSigner,
    policy: SealPolicy,
    tree: TreeStore,
    index: SegmentIndex,
    /// Record of the last sealed segment (for `prev` and the next first index).
    last_record: Option<SegmentRecord>,
    open: OpenSegment,
    checkpoint: String,
    /// Reused frame buffer, so appends do not allocate per batch.
    buf: Vec<u8>,
    /// Ciphertext of one entry, reused.
    sealed_buf: Vec<u8>,
    stats: LedgerStats,
    /// Set when a KEK is registered for this data directory: new segments
    /// are encrypted (version 3).
    keys: Option<Arc<Keyring>>,
}

impl Ledger {
    /// Opens (creating if needed) the ledger in `data_dir`, taking the
    /// directory lock and recovering from any crash.
    pub fn open(
        data_dir: &Path,
        signer: NoteSigner,
        policy: SealPolicy,
    ) -> Result<(Self, Recovery), LedgerError> {
        policy.validate()?;
        let origin = signer.name().to_owned();
        if origin.is_empty() || origin.len() > MAX_ORIGIN_LEN {
            return Err(LedgerError::Options(format!(
                "origin must be 1 to {MAX_ORIGIN_LEN} bytes"
            )));
        }
        let paths = LedgerPaths::new(data_dir);
        fs::create_dir_all(&paths.segments).map_err(|e| LedgerError::io(&paths.segments, e))?;
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&paths.lock)
            .map_err(|e| LedgerError::io(&paths.lock, e))?;
        // The lock may be held a moment longer than its writer: a previous
        // process still exiting (a restart), or, within one process, a child
        // forked just as the lock was released (it shares the lock until it
        // execs). Wait briefly before calling the directory in use.
        let waited = Instant::now();
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(fs::TryLockError::WouldBlock) if waited.elapsed() < LOCK_WAIT => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(LedgerError::Locked(data_dir.to_owned()));
                }
                Err(fs::TryLockError::Error(e)) => return Err(LedgerError::io(&paths.lock, e)),
            }
        }
        let parts = LedgerParts {
            data: data_dir.to_owned(),
            lock,
            signer,
            policy,
        };
        Self::open_locked(parts, None).map_err(|failed| failed.0)
    }

    /// Opens again, with the lock still held, after a failed write:
    /// everything past `durable` (the next index after the last successful
    /// fsync) was never acknowledged and is cut, and a `.open` segment's
    /// footer is cut rather than trusted (its fsync may have failed), so the
    /// caller can write the unacknowledged batches again from memory. On
    /// failure the parts come back for the next attempt.
    pub fn reopen(parts: LedgerParts, durable: u64) -> Result<(Self, Recovery), ReopenFailed> {
        Self::open_locked(parts, Some(durable))
    }

    /// Gives up the open files (all but the lock) for a later `reopen`.
    pub fn into_parts(self) -> LedgerParts {
        LedgerParts {
            data: self.paths.data,
            lock: self._lock,
            signer: self.signer,
            policy: self.policy,
        }
    }

    fn open_locked(
        parts: LedgerParts,
        durable: Option<u64>,
    ) -> Result<(Self, Recovery), ReopenFailed> {
        let found = match Self::recover_files(&parts, durable) {
            Ok(f) => f,
            Err(e) => return Err(Box::new((e, parts))),
        };
        let (tree, index, last_record, open, mut recovery, keys) = found;
        let LedgerParts {
            data,
            lock,
            signer,
            policy,
        } = parts;
        let paths = LedgerPaths::new(&data);
        let mut ledger = Ledger::assemble(
            paths,
            lock,
            signer,
            policy,
            tree,
            index,
            last_record,
            open,
            keys,
        )?;
        if let Err(e) = ledger.ensure_checkpoint(&mut recovery) {
            return Err(Box::new((e, ledger.into_parts())));
        }
        // Encryption turned on or off since the open segment was made.
        if let Err(e) = ledger.switch_format() {
            return Err(Box::new((e, ledger.into_parts())));
        }
        Ok((ledger, recovery))
    }

    /// Reads the data directory back into the writer's state, repairing
    /// what a crash (or, with `durable`, a failed write) left behind.
    #[allow(clippy::type_complexity)]
    fn recover_files(
        parts: &LedgerParts,
        durable: Option<u64>,
    ) -> Result<
        (
            TreeStore,
            SegmentIndex,
            Option<SegmentRecord>,
            OpenSegment,
            Recovery,
            Option<Arc<Keyring>>,
        ),
        LedgerError,
    > {
        let paths = LedgerPaths::new(&parts.data);
        let origin = parts.signer.name().to_owned();
        #[cfg(test)]
        if let Some(e) = faults::hit(&paths.data, "reopen") {
            return Err(LedgerError::io(&paths.segments, e));
        }

        let mut recovery = Recovery::default();
        // On a reopen the compactor may be writing its `.compact` file now.
        if durable.is_none() {
            remove_compaction_leftovers(&paths)?;
        }
        let keys = super::atrest::keyring_for_ledger_dir(&paths.ledger);
        if let Some(k) = &keys {
            // A wrong KEK, or a rotation left half done, stops the start here.
            k.check_all()?;
        }
        let (sealed, open_files) = list_segments(&paths.segments)?;
        for (i, n) in sealed.iter().enumerate() {
            if *n != i as u64 {
                return Err(LedgerError::Damaged(format!(
                    "segment {i} is missing (found {n} after it)"
                )));
            }
        }
        let sealed_count = sealed.len() as u64;
        if open_files.len() > 1 || open_files.first().is_some_and(|n| *n != sealed_count) {
            return Err(LedgerError::Damaged(format!(
                "unexpected open segment(s) {open_files:?} after {sealed_count} sealed segments"
            )));
        }

        let last_record = match sealed_count {
            0 => None,
            n => {
                let path = paths.segment(n - 1, true);
                let mut f = File::open(&path).map_err(|e| LedgerError::io(&path, e))?;
                let record = Footer::read(&path, &mut f)?.record;
                if record.origin != origin {
                    return Err(LedgerError::OriginMismatch {
                        ledger: record.origin,
                        key: origin,
                    });
                }
                Some(record)
            }
        };

        let mut tree = TreeStore::open(&paths.tree)?;
        let mut index = SegmentIndex::open(&paths.index)?;
        if tree.size() > sealed_count || index.len() > sealed_count {
            return Err(LedgerError::Damaged(format!(
                "the log tree records {} segments but only {sealed_count} sealed segment files exist",
                tree.size().max(index.len())
            )));
        }
        // Catch up derived files interrupted by a crash during a seal.
        index.truncate(index.len().min(tree.size()))?;
        tree.truncate(index.len())?;
        for n in tree.size()..sealed_count {
            let path = paths.segment(n, true);
            let mut f = File::open(&path).map_err(|e| LedgerError::io(&path, e))?;
            let record = Footer::read(&path, &mut f)?.record;
            tree.append(&record.leaf_hash())?;
            index.push(record.first_index)?;
        }
        tree.sync()?;
        index.sync()?;

        let mut ledger_open = None;
        if let Some(n) = open_files.first() {
            let path = paths.segment(*n, false);
            let header_len = HEADER_FIXED_LEN + origin.len() as u64;
            ledger_open =
                recover_open_segment(&path, header_len, durable, &mut recovery, keys.as_deref())?;
        }

        let encrypt = keys.is_some();
        let next_header = |last: &Option<SegmentRecord>| {
            let number = last.as_ref().map_or(0, |r| r.number + 1);
            SegmentHeader {
                origin: origin.clone(),
                number,
                first_index: last.as_ref().map_or(0, |r| r.end_index()),
                prev: last.as_ref().map_or([0; 32], |r| r.chain_hash()),
                format: new_format(encrypt, number),
            }
        };
        // A recovered open segment keeps its format (one written before
        // encryption was turned on, or off, is sealed as it is).
        let continues = |seg: &OpenSegment, last: &Option<SegmentRecord>| {
            seg.header
                == SegmentHeader {
                    format: seg.header.format,
                    ..next_header(last)
                }
        };
        let open = match ledger_open {
            Some(RecoveredOpen::Open(seg)) => {
                if !continues(&seg, &last_record) {
                    return Err(LedgerError::Damaged(format!(
                        "{}: header does not continue the sealed log",
                        seg.path.display()
                    )));
                }
                seg
            }
            Some(RecoveredOpen::Sealed(seg, footer)) => {
                // The crash hit after the footer was durable: finish that seal,
                // but only for a segment that continues the log.
                let rec = &footer.record;
                if !continues(&seg, &last_record)
                    || rec.number != seg.header.number
                    || rec.first_index != seg.header.first_index
                    || rec.prev != seg.header.prev
                    || rec.origin != seg.header.origin
                    || (rec.min_time_ms, rec.max_time_ms) != (seg.min_time_ms, seg.max_time_ms)
                    || footer.block_offsets
                        != seg
                            .offsets
                            .iter()
                            .step_by(1 << segment::BLOCK_SHIFT)
                            .copied()
                            .collect::<Vec<_>>()
                {
                    return Err(LedgerError::Damaged(format!(
                        "{}: sealed footer does not continue the log",
                        seg.path.display()
                    )));
                }
                recovery.completed_seal = true;
                let number = seg.header.number;
                drop(seg);
                fs::rename(paths.segment(number, false), paths.segment(number, true))
                    .map_err(|e| LedgerError::io(&paths.segments, e))?;
                sync_dir(&paths.segments)?;
                tree.append(&footer.record.leaf_hash())?;
                index.push(footer.record.first_index)?;
                tree.sync()?;
                index.sync()?;
                let last = Some(footer.record);
                let header = next_header(&last);
                let seg = OpenSegment::create(
                    paths.segment(header.number, false),
                    header,
                    keys.as_deref(),
                )?;
                sync_dir(&paths.segments)?;
                return Ok((tree, index, last, seg, recovery, keys));
            }
            None => {
                let header = next_header(&last_record);
                let seg = OpenSegment::create(
                    paths.segment(header.number, false),
                    header,
                    keys.as_deref(),
                )?;
                sync_dir(&paths.segments)?;
                seg
            }
        };
        recovery.open_entries = open.count();
        Ok((tree, index, last_record, open, recovery, keys))
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        paths: LedgerPaths,
        lock: File,
        signer: NoteSigner,
        policy: SealPolicy,
        tree: TreeStore,
        index: SegmentIndex,
        last_record: Option<SegmentRecord>,
        mut open: OpenSegment,
        keys: Option<Arc<Keyring>>,
    ) -> Result<Self, ReopenFailed> {
        if open.header.origin != signer.name() {
            let e = LedgerError::OriginMismatch {
                ledger: open.header.origin.clone(),
                key: signer.name().to_owned(),
            };
            return Err(Box::new((
                e,
                LedgerParts {
                    data: paths.data,
                    lock,
                    signer,
                    policy,
                },
            )));
        }
        if open.count() > 0 {
            // Entries that survived a restart are sealed at the first chance.
            open.oldest = Some(
                Instant::now()
                    .checked_sub(policy.max_age)
                    .unwrap_or_else(Instant::now),
            );
        }
        Ok(Ledger {
            paths,
            _lock: lock,
            signer,
            policy,
            tree,
            index,
            last_record,
            open,
            checkpoint: String::new(),
            buf: Vec::with_capacity(1 << 20),
            sealed_buf: Vec::new(),
            stats: LedgerStats::default(),
            keys,
        })
    }

    /// Makes sure the checkpoint file covers every sealed segment.
    /// Encryption was turned on (or off) since the open segment was
    /// created: no new entry goes into it. An empty one is recreated in the
    /// new format, one with entries is sealed now (the next is created in
    /// the new format).
    fn switch_format(&mut self) -> Result<(), LedgerError> {
        let encrypted = matches!(
            self.open.header.format,
            segment::FrameFormat::Encrypted { .. }
        );
        if encrypted == self.keys.is_some() {
            return Ok(());
        }
        if self.open.count() > 0 {
            self.seal()?;
            return Ok(());
        }
        let header = SegmentHeader {
            format: new_format(self.keys.is_some(), self.open.header.number),
            ..self.open.header.clone()
        };
        let path = self.open.path.clone();
        fs::remove_file(&path).map_err(|e| LedgerError::io(&path, e))?;
        self.open = OpenSegment::create(path, header, self.keys.as_deref())?;
        sync_dir(&self.paths.segments)
    }

    fn ensure_checkpoint(&mut self, recovery: &mut Recovery) -> Result<(), LedgerError> {
        let size = self.tree.size();
        let existing =
            match crate::bounded::read_to_string(&self.paths.checkpoint, note::MAX_NOTE_LEN as u64)
            {
                Ok(text) => Some(text),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(LedgerError::io(&self.paths.checkpoint, e)),
            };
        // After a key rotation the checkpoint may still be the old key's.
        let keys = super::key_history::writer_chain(&self.paths.ledger, &self.signer.verifier())?;
        if let Some(text) = existing {
            let cp = &keys
                .open_checkpoint(&text)
                .map_err(|e| LedgerError::KeyHistory(e.into()))?;
            if cp.size > size {
                return Err(LedgerError::Damaged(format!(
                    "the checkpoint covers {} segments but only {size} exist",
                    cp.size
                )));
            }
            // Never sign over history that no longer matches what was signed.
            if cp.root != self.tree.root(cp.size)? {
                return Err(LedgerError::Damaged(format!(
                    "the first {} sealed segments do not match the signed checkpoint",
                    cp.size
                )));
            }
            if cp.size == size {
                self.checkpoint = text;
                return Ok(());
            }
        }
        // Right after a key rotation the checkpoint of this size is the
        // retired key's, kept in the history: put it back, never re-sign it.
        if let Some(h) = keys.handoffs().last().filter(|h| h.transition.size == size) {
            if h.root != self.tree.root(size)? {
                return Err(LedgerError::Damaged(
                    "the log does not match the retired key's last checkpoint".into(),
                ));
            }
            super::rotate::restore_checkpoint(&self.paths, &h.checkpoint)?;
            self.checkpoint = h.checkpoint.clone();
            return Ok(());
        }
        recovery.resigned_checkpoint = size > 0;
        self.write_checkpoint()
    }

    fn write_checkpoint(&mut self) -> Result<(), LedgerError> {
        let size = self.tree.size();
        let cp = Checkpoint {
            origin: self.signer.name().to_owned(),
            size,
            root: self.tree.root(size)?,
            extensions: Vec::new(),
        };
        let text = note::sign_checkpoint(&cp, &self.signer)?;
        let tmp = self.paths.ledger.join("checkpoint.tmp");
        let mut f = File::create(&tmp).map_err(|e| LedgerError::io(&tmp, e))?;
        f.write_all(text.as_bytes())
            .map_err(|e| LedgerError::io(&tmp, e))?;
        self.stats
            .durable(|| f.sync_all().map_err(|e| LedgerError::io(&tmp, e)))?;
        fs::rename(&tmp, &self.paths.checkpoint)
            .map_err(|e| LedgerError::io(&self.paths.checkpoint, e))?;
        self.stats.durable(|| sync_dir(&self.paths.ledger))?;
        self.checkpoint = text;
        Ok(())
    }

    pub fn paths(&self) -> &LedgerPaths {
        &self.paths
    }

    pub fn origin(&self) -> &str {
        self.signer.name()
    }

    /// Global index the next appended entry gets.
    pub fn next_index(&self) -> u64 {
        self.open.header.first_index + self.open.count()
    }

    /// Number of sealed segments (the log tree size).
    pub fn sealed_segments(&self) -> u64 {
        self.tree.size()
    }

    /// Global index one past the last sealed event.
    pub fn sealed_events(&self) -> u64 {
        self.open.header.first_index
    }

    /// The latest signed checkpoint note.
    pub fn checkpoint(&self) -> &str {
        &self.checkpoint
    }

    pub fn tree(&self) -> &TreeStore {
        &self.tree
    }

    pub fn segment_index(&self) -> &SegmentIndex {
        &self.index
    }

    /// Writes entries to the open segment, sealing whenever it fills. The data
    /// is NOT durable until `sync`; callers acknowledge only after that.
    pub fn write(&mut self, entries: &[LedgerEntry]) -> Result<Range<u64>, LedgerError> {
        for e in entries {
            if e.bytes.is_empty() {
                return Err(LedgerError::EmptyEntry);
            }
            if e.bytes.len() > MAX_ENTRY_LEN as usize {
                return Err(LedgerError::EntryTooLarge(e.bytes.len()));
            }
        }
        let start = self.next_index();
        let mut rest = entries;
        while !rest.is_empty() {
            let room = (self.policy.max_events - self.open.count()) as usize;
            let (now, later) = rest.split_at(room.min(rest.len()));
            self.write_frames(now)?;
            rest = later;
            if self.open.count() >= self.policy.max_events {
                self.seal()?;
            }
        }
        Ok(start..self.next_index())
    }

    fn write_frames(&mut self, entries: &[LedgerEntry]) -> Result<(), LedgerError> {
        if entries.is_empty() {
            return Ok(());
        }
        self.buf.clear();
        let base = self.open.len;
        for e in entries {
            self.open.offsets.push(base + self.buf.len() as u64);
            let leaf = super::hash::leaf_hash(&e.bytes);
            match &self.open.cipher {
                Some(cipher) => {
                    self.sealed_buf.clear();
                    cipher.seal_frame(&e.bytes, &leaf, &mut self.sealed_buf)?;
                    segment::encode_frame(&self.sealed_buf, &mut self.buf);
                }
                None => segment::encode_frame(&e.bytes, &mut self.buf),
            }
            self.open.leaves.push(leaf);
            self.open.note_time(e.time_ms);
        }
        #[cfg(test)]
        if let Some(e) = faults::hit(&self.paths.data, "write") {
            // A torn write: half the batch reached the file.
            let half = &self.buf[..self.buf.len() / 2];
            let _ = self.open.file.write_all_at(half, base);
            return Err(LedgerError::io(&self.open.path, e));
        }
        self.open
            .file
            .write_all_at(&self.buf, base)
            .map_err(|e| LedgerError::io(&self.open.path, e))?;
        self.open.len += self.buf.len() as u64;
        self.open.dirty = true;
        if self.open.oldest.is_none() {
            self.open.oldest = Some(Instant::now());
        }
        Ok(())
    }

    /// Makes everything written so far durable (one fdatasync: group commit).
    pub fn sync(&mut self) -> Result<(), LedgerError> {
        if self.open.dirty {
            #[cfg(test)]
            if let Some(e) = faults::hit(&self.paths.data, "sync") {
                return Err(LedgerError::io(&self.open.path, e));
            }
            let open = &self.open;
            self.stats.durable(|| {
                open.file
                    .sync_data()
                    .map_err(|e| LedgerError::io(&open.path, e))
            })?;
            self.open.dirty = false;
        }
        Ok(())
    }

    /// `write` then `sync`: returns only once the entries are durable.
    pub fn append(&mut self, entries: &[LedgerEntry]) -> Result<Range<u64>, LedgerError> {
        let range = self.write(entries)?;
        self.sync()?;
        Ok(range)
    }

    /// When the oldest entry not yet sealed was appended.
    pub fn unsealed_since(&self) -> Option<Instant> {
        self.open.oldest
    }

    /// When the open segment must be sealed by age, if it holds entries.
    pub fn seal_deadline(&self) -> Option<Instant> {
        self.open.oldest.map(|t| t + self.policy.max_age)
    }

    /// Seals the open segment if its age limit has passed.
    pub fn seal_if_due(&mut self, now: Instant) -> Result<bool, LedgerError> {
        match self.seal_deadline() {
            Some(deadline) if deadline <= now => self.seal(),
            _ => Ok(false),
        }
    }

    /// Seals the open segment (if it holds any entry): footer, rename, log
    /// tree, signed checkpoint, new open segment. Returns whether it sealed.
    pub fn seal(&mut self) -> Result<bool, LedgerError> {
        if self.open.count() == 0 {
            return Ok(false);
        }
        let started = Instant::now();
        let header = self.open.header.clone();
        let footer = Footer::build(
            SegmentRecord {
                origin: header.origin.clone(),
                number: header.number,
                first_index: header.first_index,
                count: self.open.count(),
                min_time_ms: self.open.min_time_ms,
                max_time_ms: self.open.max_time_ms,
                root: [0; 32], // set by Footer::build from the entries
                prev: header.prev,
            },
            &self.open.leaves,
            &self.open.offsets,
        );
        let bytes = footer.to_bytes(self.open.len);
        // 1. footer durable in the open file
        self.open
            .file
            .write_all_at(&bytes, self.open.len)
            .map_err(|e| LedgerError::io(&self.open.path, e))?;
        #[cfg(test)]
        if let Some(e) = faults::hit(&self.paths.data, "seal") {
            return Err(LedgerError::io(&self.open.path, e));
        }
        let open = &self.open;
        self.stats.durable(|| {
            open.file
                .sync_data()
                .map_err(|e| LedgerError::io(&open.path, e))
        })?;
        // 2. the file becomes a sealed segment
        let sealed_path = self.paths.segment(header.number, true);
        fs::rename(&self.open.path, &sealed_path).map_err(|e| LedgerError::io(&sealed_path, e))?;
        self.stats.durable(|| sync_dir(&self.paths.segments))?;
        // 3. derived log tree and index
        self.tree.append(&footer.record.leaf_hash())?;
        self.index.push(footer.record.first_index)?;
        let (tree, index) = (&self.tree, &self.index);
        self.stats.durable(|| {
            tree.sync()?;
            index.sync()?;
            Ok(())
        })?;
        // 4. a new signed checkpoint
        self.write_checkpoint()?;
        // 5. the next open segment
        let next = SegmentHeader {
            origin: header.origin,
            number: header.number + 1,
            first_index: footer.record.end_index(),
            prev: footer.record.chain_hash(),
            format: new_format(self.keys.is_some(), header.number + 1),
        };
        let path = self.paths.segment(next.number, false);
        let keys = self.keys.as_deref();
        self.open = self
            .stats
            .durable(|| OpenSegment::create(path, next, keys))?;
        self.stats.durable(|| sync_dir(&self.paths.segments))?;
        self.stats.seals += 1;
        let took = started.elapsed();
        self.stats.seal_time += took;
        self.stats.max_seal_time = self.stats.max_seal_time.max(took);
        self.last_record = Some(footer.record);
        Ok(true)
    }

    pub fn stats(&self) -> LedgerStats {
        self.stats
    }

    /// Record of the last sealed segment.
    pub fn last_record(&self) -> Option<&SegmentRecord> {
        self.last_record.as_ref()
    }

    /// Seals what is open and makes it durable: the clean way to stop.
    pub fn close(mut self) -> Result<(), LedgerError> {
        self.sync()?;
        self.seal()?;
        Ok(())
    }
}

/// Format of a new segment: encrypted when a KEK is registered.
fn new_format(encrypt: bool, number: u64) -> segment::FrameFormat {
    if encrypt {
        segment::FrameFormat::Encrypted { number }
    } else {
        segment::FrameFormat::Plain
    }
}

enum RecoveredOpen {
    Open(OpenSegment),
    Sealed(OpenSegment, Box<Footer>),
}

/// Rebuilds the in-memory state of the open segment from its file, cutting a
/// torn tail. Refuses to cut when valid frames follow the damage, since that is
/// corruption of acknowledged data rather than an interrupted write.
///
/// With `durable` (a reopen after a failed write), frames from that global
/// index on and any footer are cut: they were never acknowledged, and a
/// failed fsync may have left them readable from the page cache but not on
/// disk. An open segment left without frames is recreated, since its own
/// header's fsync may be the one that failed.
fn recover_open_segment(
    path: &Path,
    header_len: u64,
    durable: Option<u64>,
    recovery: &mut Recovery,
    keys: Option<&Keyring>,
) -> Result<Option<RecoveredOpen>, LedgerError> {
    let len = fs::metadata(path)
        .map_err(|e| LedgerError::io(path, e))?
        .len();
    let mut reader = match FrameReader::open(path) {
        Ok(r) => r,
        Err(
            SegmentError::Header { .. }
            | SegmentError::HeaderChecksum { .. }
            | SegmentError::Magic { .. },
        ) if len <= header_len => {
            // No room for a frame after the header: the crash hit while a new
            // segment's header was being written and nothing was ever appended
            // to it, so it is removed and recreated.
            fs::remove_file(path).map_err(|e| LedgerError::io(path, e))?;
            recovery.torn_bytes_cut = len;
            recovery.torn_reason = Some("torn segment header".into());
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    let keep = durable.map(|d| d.saturating_sub(reader.header.first_index));
    let mut leaves = Vec::new();
    let mut offsets = Vec::new();
    let mut min_time_ms = i64::MAX;
    let mut max_time_ms = i64::MIN;
    let mut cut_at = None;
    while let Some(frame) = reader.next_frame()? {
        if keep == Some(leaves.len() as u64) {
            cut_at = Some(frame.offset);
            break;
        }
        leaves.push(super::hash::leaf_hash(&frame.payload));
        offsets.push(frame.offset);
        let t = crate::event::entry_time_ms(&frame.payload).ok_or_else(|| {
            LedgerError::Damaged(format!(
                "{}: entry at offset {} has no readable event time",
                path.display(),
                frame.offset
            ))
        })?;
        min_time_ms = min_time_ms.min(t);
        max_time_ms = max_time_ms.max(t);
    }
    let end = cut_at.unwrap_or_else(|| reader.position());
    let header = reader.header.clone();
    let cipher = match (header.format, keys) {
        (segment::FrameFormat::Encrypted { number }, Some(k)) => Some(k.cipher(number)?),
        _ => None,
    };
    let tail = reader.into_tail();
    if let Some(keep) = keep {
        if keep > leaves.len() as u64 {
            return Err(LedgerError::Damaged(format!(
                "{}: holds {} entries, but {keep} were made durable",
                path.display(),
                leaves.len()
            )));
        }
        recovery.torn_bytes_cut = len - end;
        if recovery.torn_bytes_cut > 0 {
            recovery.torn_reason = Some("unacknowledged writes of a failed group commit".into());
        }
        if leaves.is_empty() {
            fs::remove_file(path).map_err(|e| LedgerError::io(path, e))?;
            return Ok(None);
        }
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| LedgerError::io(path, e))?;
    let mut seg = OpenSegment {
        header,
        path: path.to_owned(),
        file,
        len: end,
        leaves,
        offsets,
        min_time_ms,
        max_time_ms,
        oldest: None,
        dirty: false,
        cipher,
    };
    if keep.is_some() {
        // After a failed write: nothing past the durable end is trusted,
        // not even a footer.
        seg.file
            .set_len(end)
            .and_then(|_| seg.file.sync_all())
            .map_err(|e| LedgerError::io(path, e))?;
        return Ok(Some(RecoveredOpen::Open(seg)));
    }
    match tail {
        Some(Tail::Open) | None => Ok(Some(RecoveredOpen::Open(seg))),
        Some(Tail::Sealed(footer)) => {
            let consistent = footer.record.count == seg.count()
                && footer.record.first_index == seg.header.first_index
                && footer.record.root == super::hash::merkle_root(&footer.block_roots)
                && footer.block_roots
                    == seg
                        .leaves
                        .chunks(1 << segment::BLOCK_SHIFT)
                        .map(super::hash::merkle_root)
                        .collect::<Vec<_>>();
            if !consistent {
                return Err(LedgerError::Damaged(format!(
                    "{}: footer does not match the segment's entries",
                    path.display()
                )));
            }
            Ok(Some(RecoveredOpen::Sealed(seg, footer)))
        }
        Some(Tail::Torn { offset, reason }) => {
            if valid_frame_follows(path, offset)? {
                return Err(LedgerError::Damaged(format!(
                    "{}: entry at offset {offset} is corrupt ({reason}) and valid entries follow it; \
                     refusing to cut acknowledged events",
                    path.display()
                )));
            }
            recovery.torn_bytes_cut = len - offset;
            recovery.torn_reason = Some(reason);
            seg.file
                .set_len(offset)
                .and_then(|_| seg.file.sync_all())
                .map_err(|e| LedgerError::io(path, e))?;
            seg.len = offset;
            Ok(Some(RecoveredOpen::Open(seg)))
        }
    }
}

/// Whether a complete, checksummed frame starts right after the (damaged)
/// frame at `offset`, judged by that frame's length field.
fn valid_frame_follows(path: &Path, offset: u64) -> Result<bool, LedgerError> {
    let file = File::open(path).map_err(|e| LedgerError::io(path, e))?;
    let len = file.metadata().map_err(|e| LedgerError::io(path, e))?.len();
    let read_u32s = |at: u64| -> Option<(u32, u32)> {
        let mut b = [0u8; 8];
        file.read_exact_at(&mut b, at).ok()?;
        Some((
            u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        ))
    };
    let Some((damaged_len, _)) = read_u32s(offset) else {
        return Ok(false);
    };
    if damaged_len == 0 || damaged_len > segment::MAX_FRAME_LEN {
        return Ok(false);
    }
    let next = offset + FRAME_HEADER_LEN + damaged_len as u64;
    let Some((next_len, next_crc)) = read_u32s(next) else {
        return Ok(false);
    };
    if next_len == 0
        || next_len > segment::MAX_FRAME_LEN
        || next + FRAME_HEADER_LEN + next_len as u64 > len
    {
        return Ok(false);
    }
    let mut payload = vec![0u8; next_len as usize];
    if file
        .read_exact_at(&mut payload, next + FRAME_HEADER_LEN)
        .is_err()
    {
        return Ok(false);
    }
    Ok(crc32c::crc32c(&payload) == next_crc)
}

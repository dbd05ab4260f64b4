//! Verifying a whole data directory (LEDGER.md §9 "Verification") with only
//! the log's public key: every entry rehashed, every block root, segment
//! root and record recomputed, the record chain and the log tree rebuilt and
//! compared with the signed checkpoint (and with an older checkpoint the
//! auditor kept, `since`). Events no genuine signed checkpoint covers are
//! never counted as verified; more uncovered sealed segments than a crash
//! between sealing and signing can leave is an `unsigned_tail`.
//!
//! Layout read: `ledger/checkpoint`, `ledger/segments/NNNNNNNNNNNN.seg`
//! (and at most one `.open`), `ledger/dicts/<sha256 hex>.zdict`,
//! `ledger/keys/NNNNNNNNNNNN.key`, `ledger/tree/level-00` (the leaf level of
//! the writer's log tree, compared to catch a rewritten record).
//!
//! Integrity problems become `Issue`s in the report; `DirError` is only for
//! not being able to run at all.

use crate::atrest::{AtRestError, KEY_RECORD_LEN, Kek};
use crate::hash::{Frontier, Hash, leaf_hash, root_of_leaves, sha256};
use crate::keys::{self, Handoff, KeyChain, KeyHistoryError};
use crate::note::{self, Checkpoint, NoteVerifier};
use crate::record::SegmentRecord;
use crate::segment::{
    BLOCK_SHIFT, Codec, Footer, FrameFormat, FrameReader, MAX_DICT_LEN, MAX_SEGMENT_EVENTS,
    SegmentError, SegmentHeader, Tail,
};
use crate::verified::Verified;
use crate::witnessed::{self, WitnessPolicy, WitnessedSummary};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Issues kept in a report; beyond this only the count grows.
const MAX_ISSUES: usize = 1000;
/// Segments checked concurrently per window (bounds memory).
const WINDOW: u64 = 32;
/// Sealed segments a crash can leave without a covering checkpoint: the
/// writer renames the sealed file before it signs the new checkpoint and
/// re-signs at its next start, so at most the last one.
pub const CRASH_WINDOW_SEGMENTS: u64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum DirError {
    #[error("{0} is not a sealtrail data directory (no ledger/ folder)")]
    NotADataDir(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Issue {
    pub segment: Option<u64>,
    pub index: Option<u64>,
    pub kind: &'static str,
    pub detail: String,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct CheckpointSummary {
    pub size: u64,
    pub root: String,
}

/// Events `first_index..end_index` (segments `first_segment..end_segment`)
/// that no genuine signed checkpoint covers: `uncovered` (sealed) or
/// `unsealed` (the open segment).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct UnverifiedRange {
    pub first_segment: u64,
    pub end_segment: u64,
    pub first_index: u64,
    pub end_index: u64,
    pub reason: &'static str,
}

/// The `sealtrail verify --json` report.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct VerifyReport {
    pub ok: bool,
    /// Sealed segments found.
    pub segments: u64,
    /// Events in sealed segments covered by the genuine signed checkpoint.
    pub events: u64,
    pub first_time: Option<String>,
    pub last_time: Option<String>,
    pub checkpoint: Option<CheckpointSummary>,
    pub since: Option<CheckpointSummary>,
    /// Events of the open segment: durable, not yet provable.
    pub unsealed_events: u64,
    /// Sealed segments beyond the checkpoint: their events are not counted.
    pub uncovered_segments: u64,
    pub unverified: Vec<UnverifiedRange>,
    pub errors: Vec<Issue>,
    pub errors_omitted: u64,
    pub warnings: Vec<String>,
    /// Events of encrypted segments checked without the KEK (stored leaf
    /// hashes only, not the payloads nor their times).
    pub payloads_unchecked: u64,
    /// With a witness policy: the cosigned checkpoint the log extends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub witnessed: Option<WitnessedSummary>,
    /// Signing-key transitions followed from the given key (§14).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub key_transitions: Vec<KeyTransitionSummary>,
    /// The signed checkpoint that covers every counted event, when `ok`.
    #[serde(skip)]
    verified: Option<Verified<Checkpoint>>,
}

/// One trusted key transition, as `verify` reports it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct KeyTransitionSummary {
    /// Checkpoints of this size and smaller are the old key's.
    pub size: u64,
    /// The logged transition event.
    pub index: u64,
    pub old_key_id: String,
    pub new_key_id: String,
}

impl VerifyReport {
    /// The genuine signed checkpoint the whole verified log is under: only
    /// present when the report is `ok`, and only `verify_dir` sets it.
    pub fn verified(&self) -> Option<&Verified<Checkpoint>> {
        self.verified.as_ref()
    }
}

impl VerifyReport {
    fn issue(
        &mut self,
        segment: Option<u64>,
        index: Option<u64>,
        kind: &'static str,
        detail: String,
    ) {
        if self.errors.len() < MAX_ISSUES {
            self.errors.push(Issue { segment, index, kind, detail });
        } else {
            self.errors_omitted += 1;
        }
    }
}

/// How far a verification is, for a progress bar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    pub segments_done: u64,
    pub segments_total: u64,
    pub bytes_done: u64,
    pub bytes_total: u64,
}

/// Options of [`verify_dir`].
#[derive(Default)]
pub struct VerifyOptions<'a> {
    /// Text of an older signed checkpoint the log must still extend.
    pub since: Option<&'a str>,
    /// Key-encryption key: decrypt and rehash format-3 entries.
    pub kek: Option<&'a Kek>,
    /// Threads checking segments (0: up to 4, as the machine allows).
    pub threads: usize,
    /// Called after each window of segments.
    pub progress: Option<&'a mut dyn FnMut(Progress)>,
    /// Also require `ledger/checkpoint.witnessed`, cosigned by a quorum.
    pub witness: Option<&'a WitnessPolicy>,
}

/// The log as of one segment: its tree root and the events and times so far.
struct Prefix {
    root: Hash,
    end_index: u64,
    min_t: i64,
    max_t: i64,
}

/// The result of checking one segment file on its own.
struct SegmentCheck {
    number: u64,
    header: Option<SegmentHeader>,
    record: Option<SegmentRecord>,
    issues: Vec<Issue>,
    unchecked: u64,
}

/// Dictionaries and data keys of one directory, each read once.
struct Resolver<'a> {
    ledger: PathBuf,
    kek: Option<&'a Kek>,
    dicts: Mutex<HashMap<Hash, Arc<Vec<u8>>>>,
}

/// Reads at most `max` bytes of `path` (more is an error).
pub(crate) fn read_bounded(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    #[allow(clippy::disallowed_methods)] // bounded by `take`
    File::open(path)?.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(std::io::Error::other(format!(
            "{} is larger than {max} bytes",
            path.display()
        )));
    }
    Ok(bytes)
}

impl Resolver<'_> {
    fn dict(&self, hash: &Hash) -> Result<Arc<Vec<u8>>, String> {
        if let Some(d) = self.dicts.lock().ok().and_then(|c| c.get(hash).cloned()) {
            return Ok(d);
        }
        let name = crate::hex(hash);
        let path = self.ledger.join("dicts").join(format!("{name}.zdict"));
        let bytes = read_bounded(&path, MAX_DICT_LEN).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                format!("dictionary {name} is missing ({} does not exist)", path.display())
            }
            _ => format!("{}: {e}", path.display()),
        })?;
        if bytes.is_empty() {
            return Err(format!("dictionary {} is empty", path.display()));
        }
        if sha256(&bytes) != *hash {
            return Err(format!("dictionary {name} does not match its name"));
        }
        let bytes = Arc::new(bytes);
        if let Ok(mut cache) = self.dicts.lock() {
            // Few dictionaries exist; the bound only guards a hostile directory.
            if cache.len() >= 256 {
                cache.clear();
            }
            cache.insert(*hash, bytes.clone());
        }
        Ok(bytes)
    }

    fn codec(&self, header: &SegmentHeader) -> Result<Codec, SegmentError> {
        let number = header.number;
        match header.format {
            FrameFormat::Plain => Ok(Codec::Plain),
            FrameFormat::Zstd { dict } if dict == [0; 32] => Ok(Codec::Zstd(None)),
            FrameFormat::Zstd { dict } => {
                Ok(Codec::Zstd(Some(self.dict(&dict).map_err(SegmentError::Dictionary)?)))
            }
            // Without the KEK only the structure and stored leaves are checked.
            FrameFormat::Encrypted => match self.kek {
                None => Ok(Codec::Sealed(None)),
                Some(kek) => {
                    let path = self.ledger.join("keys").join(format!("{number:012}.key"));
                    let rec =
                        read_bounded(&path, KEY_RECORD_LEN as u64).map_err(|e| match e.kind() {
                            std::io::ErrorKind::NotFound => {
                                AtRestError::MissingKey { number }.into()
                            }
                            _ => SegmentError::Io(format!("{}: {e}", path.display())),
                        })?;
                    Ok(Codec::Sealed(Some(Arc::new(kek.open_record(number, &rec)?))))
                }
            },
        }
    }

    fn open(&self, path: &Path) -> Result<(FrameReader<BufReader<File>>, u64), SegmentError> {
        let io = |e: std::io::Error| SegmentError::Io(format!("{}: {e}", path.display()));
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let (header, header_len) = SegmentHeader::read(&mut reader)?;
        let codec = self.codec(&header)?;
        Ok((FrameReader::new(reader, header, header_len, len, codec)?, len))
    }
}

/// Checks one sealed segment on its own.
fn check_segment(res: &Resolver<'_>, path: &Path, number: u64) -> SegmentCheck {
    let mut out =
        SegmentCheck { number, header: None, record: None, issues: Vec::new(), unchecked: 0 };
    let mut issue = |index: Option<u64>, kind: &'static str, detail: String| {
        out.issues.push(Issue { segment: Some(number), index, kind, detail })
    };
    let mut reader = match res.open(path) {
        Ok((r, _)) => r,
        Err(e) => {
            issue(None, e.kind(), format!("{}: {e}", path.display()));
            return out;
        }
    };
    let header = reader.header.clone();
    // Streamed in blocks of 64 entries: one root per block is kept.
    let block = 1usize << BLOCK_SHIFT;
    let mut block_leaves: Vec<Hash> = Vec::with_capacity(block);
    let mut block_roots: Vec<Hash> = Vec::new();
    let mut block_starts: Vec<u64> = Vec::new();
    let mut frame_offsets: Vec<u64> = Vec::new();
    let mut scratch = Vec::with_capacity(block);
    let mut payload = Vec::new();
    let mut count = 0u64;
    let (mut min_t, mut max_t) = (i64::MAX, i64::MIN);
    let readable = reader.has_entries();
    loop {
        match reader.next_frame_into(&mut payload) {
            Ok(Some(offset)) => {
                if count >= MAX_SEGMENT_EVENTS {
                    issue(None, "entry", format!("more than {MAX_SEGMENT_EVENTS} entries"));
                    break;
                }
                if block_leaves.is_empty() {
                    block_starts.push(offset);
                }
                frame_offsets.push(offset - block_starts.last().copied().unwrap_or(offset));
                let leaf = match (readable, reader.leaf()) {
                    // Encrypted, no KEK: only the stored leaf hash.
                    (false, Some(stored)) => {
                        out.unchecked += 1;
                        stored
                    }
                    (_, stored) => {
                        let leaf = leaf_hash(&payload);
                        // Decrypted entries must hash to the leaf stored beside them.
                        if stored.is_some_and(|s| s != leaf) {
                            issue(
                                Some(header.first_index + count),
                                "entry_altered",
                                format!(
                                    "entry at offset {offset} does not hash to the leaf stored with it"
                                ),
                            );
                        }
                        leaf
                    }
                };
                block_leaves.push(leaf);
                if block_leaves.len() == block {
                    block_roots.push(root_of_leaves(&block_leaves, &mut scratch));
                    block_leaves.clear();
                }
                // One JSON rule (§12): a duplicate `time` would let two
                // readers see two different events under one hash.
                let (checked, time) =
                    if readable { crate::time::check_entry(&payload) } else { (Ok(()), None) };
                if let Err(e) = checked {
                    issue(
                        Some(header.first_index + count),
                        "entry",
                        format!("entry at offset {offset} {e}"),
                    );
                }
                match time {
                    Some(t) => {
                        min_t = min_t.min(t);
                        max_t = max_t.max(t);
                    }
                    None if readable => issue(
                        Some(header.first_index + count),
                        "entry",
                        format!("entry at offset {offset} has no readable event time"),
                    ),
                    None => {}
                }
                count += 1;
            }
            Ok(None) => break,
            Err(e) => {
                issue(None, "io", format!("{}: {e}", path.display()));
                break;
            }
        }
    }
    if !block_leaves.is_empty() {
        block_roots.push(root_of_leaves(&block_leaves, &mut scratch));
    }
    let footer = match reader.tail() {
        Some(Tail::Sealed(footer)) => footer.clone(),
        Some(Tail::Torn { offset, reason }) => {
            issue(
                Some(header.first_index + count),
                "entry_corrupt",
                format!("bytes at offset {offset} are not a valid entry or footer: {reason}"),
            );
            // The footer is found from the end (§4.5) and may be intact: its
            // record keeps the log tree computable, so one damaged frame is
            // not also reported as a checkpoint mismatch.
            out.record = File::open(path)
                .ok()
                .and_then(|mut f| Footer::read_from_end(&mut f).ok())
                .map(|f| f.record)
                .filter(|r| r.number == header.number && r.first_index == header.first_index);
            out.header = Some(header);
            return out;
        }
        _ => {
            issue(None, "not_sealed", "sealed segment file has no footer".into());
            out.header = Some(header);
            return out;
        }
    };
    let rec = &footer.record;
    if rec.number != header.number
        || rec.first_index != header.first_index
        || rec.prev != header.prev
        || rec.origin != header.origin
    {
        issue(None, "record", "segment record disagrees with the segment header".into());
    }
    if rec.count != count {
        issue(
            None,
            "record",
            format!("record counts {} events, the file holds {count}", rec.count),
        );
    }
    // A block root mismatch names the (up to) 64 events it covers.
    for (b, computed) in block_roots.iter().enumerate() {
        if footer.block_roots.get(b) != Some(computed) {
            let first = header.first_index + (b * block) as u64;
            let end = (first + block as u64).min(header.first_index + count);
            issue(
                Some(first),
                "entry_altered",
                format!("events {first}..{end} do not hash to the block root sealed in the footer"),
            );
        }
    }
    if footer.block_roots.len() != block_roots.len() {
        issue(None, "index", "the footer's block index does not cover the entries".into());
    }
    // The block roots are complete aligned subtrees: the tree over them is the segment root.
    if root_of_leaves(&footer.block_roots, &mut scratch) != rec.root {
        issue(
            None,
            "segment_root",
            "segment root in the record does not match the sealed block roots".into(),
        );
    }
    if footer.block_offsets != block_starts {
        issue(None, "index", "block offsets in the footer do not match the entries".into());
    }
    if let Some(index) = &footer.frame_offsets
        && !index.iter().map(|&o| u64::from(o)).eq(frame_offsets.iter().copied())
    {
        issue(None, "index", "the footer's frame index does not match the entries".into());
    }
    if count > 0 && readable && (rec.min_time_ms != min_t || rec.max_time_ms != max_t) {
        issue(None, "record", "record's first/last event times do not match the entries".into());
    }
    out.header = Some(header);
    out.record = Some(footer.record.clone());
    out
}

/// Checks `numbers` on up to `threads` threads; results sorted by number.
fn check_window(
    res: &Resolver<'_>,
    dir: &Path,
    numbers: &[u64],
    threads: usize,
) -> Vec<SegmentCheck> {
    let path = |n: u64| dir.join(format!("{n:012}.seg"));
    let mut results: Vec<SegmentCheck> = if threads <= 1 {
        numbers.iter().map(|&n| check_segment(res, &path(n), n)).collect()
    } else {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let results = Mutex::new(Vec::with_capacity(numbers.len()));
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(&n) = numbers.get(i) else { break };
                        let check = check_segment(res, &path(n), n);
                        // Poisoned: another checker panicked; its segment is reported missing.
                        if let Ok(mut r) = results.lock() {
                            r.push(check);
                        }
                    }
                });
            }
        });
        results.into_inner().unwrap_or_default()
    };
    results.sort_by_key(|c| c.number);
    results
}

/// Sealed segments as (number, file length), and open segment numbers.
type Listing = (Vec<(u64, u64)>, Vec<u64>);

/// Segment numbers in `dir`: (sealed, open), sorted. Names are exactly
/// twelve digits and `.seg` or `.open`; anything else is ignored.
fn list_segments(dir: &Path) -> Result<Listing, DirError> {
    let (mut sealed, mut open) = (Vec::new(), Vec::new());
    let io = |source| DirError::Io { path: dir.to_owned(), source };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((sealed, open)),
        Err(e) => return Err(io(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io)?;
        let name = entry.file_name();
        let Some((stem, ext)) = name.to_str().and_then(|n| n.split_once('.')) else {
            continue;
        };
        if stem.len() != 12 || !stem.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(n) = stem.parse::<u64>() else { continue };
        match ext {
            "seg" => sealed.push((n, entry.metadata().map(|m| m.len()).unwrap_or(0))),
            "open" => open.push(n),
            _ => {}
        }
    }
    sealed.sort_unstable();
    open.sort_unstable();
    Ok((sealed, open))
}

/// Leaf `i` of the writer's log tree (`ledger/tree/level-00`: a 16-byte
/// header "SEALTRE\0" | version 1 u16 | width 32 u16 | level 0 u16 | 0 u16,
/// then 32-byte leaves). `None` if the file is absent or not of that form.
struct StoredTree {
    file: File,
    size: u64,
}

impl StoredTree {
    /// `Err(())` when `tree/` exists but its leaf level is absent or malformed.
    fn open(ledger: &Path) -> Result<Option<StoredTree>, ()> {
        let dir = ledger.join("tree");
        let Ok(mut file) = File::open(dir.join("level-00")) else {
            return if dir.exists() { Err(()) } else { Ok(None) };
        };
        let len = file.metadata().map_err(|_| ())?.len();
        if len < 16 {
            return Ok(Some(StoredTree { file, size: 0 }));
        }
        let mut header = [0u8; 16];
        file.read_exact(&mut header).map_err(|_| ())?;
        let want = *b"SEALTRE\0\x00\x01\x00\x20\x00\x00\x00\x00";
        if header != want {
            return Err(());
        }
        Ok(Some(StoredTree { file, size: (len - 16) / 32 }))
    }

    fn leaf(&mut self, i: u64) -> Option<Hash> {
        if i >= self.size {
            return None;
        }
        let mut h = [0u8; 32];
        self.file.seek(SeekFrom::Start(16 + i * 32)).ok()?;
        self.file.read_exact(&mut h).ok()?;
        Some(h)
    }
}

fn read_checkpoint(path: &Path, keys: &KeyChain) -> Result<Checkpoint, (&'static str, String)> {
    let bytes = read_bounded(path, note::MAX_NOTE_LEN as u64).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            ("no_checkpoint", "the ledger has no signed checkpoint".to_owned())
        }
        _ => ("io", format!("{}: {e}", path.display())),
    })?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| ("checkpoint_signature", note::NoteError::NotUtf8.to_string()))?;
    keys.open_checkpoint(text).map_err(|e| (e.kind(), e.to_string()))
}

/// The key history in `ledger/`, followed from `verifier` (a missing file
/// is a log that never rotated its key).
fn read_key_chain(ledger: &Path, verifier: &NoteVerifier) -> Result<KeyChain, KeyHistoryError> {
    let path = ledger.join(keys::KEY_HISTORY_FILE);
    match read_bounded(&path, keys::MAX_KEY_HISTORY_LEN) {
        Ok(bytes) => KeyChain::follow(verifier, &keys::parse_history(&bytes)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KeyChain::single(verifier)),
        Err(e) => Err(KeyHistoryError::Json(format!("{}: {e}", path.display()))),
    }
}

/// A key transition must match the log: the old key's last checkpoint is
/// the log at its size, and its last segment is the logged entry alone.
fn check_handoff(report: &mut VerifyReport, h: &Handoff, record: &SegmentRecord, root: Hash) {
    let (segment, index) = (Some(record.number), Some(h.transition.index));
    if root != h.root {
        let size = h.transition.size;
        let detail =
            format!("the first {size} segments do not match the retired key's last checkpoint");
        report.issue(segment, index, "key_transition", detail);
    }
    if let Err(e) = keys::check_entry_segment(h, record) {
        report.issue(segment, index, e.kind(), e.to_string());
    }
}

/// Verifies the ledger of the data directory `data_dir` against the log's
/// key `verifier`.
pub fn verify_dir(
    data_dir: &Path,
    verifier: &NoteVerifier,
    mut opts: VerifyOptions<'_>,
) -> Result<VerifyReport, DirError> {
    let ledger = data_dir.join("ledger");
    if !ledger.is_dir() {
        return Err(DirError::NotADataDir(data_dir.to_owned()));
    }
    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()).min(4),
        n => n,
    };
    let mut report = VerifyReport::default();
    // Signing keys: `verifier` and the rotations the key history follows from it.
    let keys = read_key_chain(&ledger, verifier).unwrap_or_else(|e| {
        report.issue(None, None, e.kind(), e.to_string());
        KeyChain::single(verifier)
    });
    report.key_transitions = keys
        .handoffs()
        .iter()
        .map(|h| KeyTransitionSummary {
            size: h.transition.size,
            index: h.transition.index,
            old_key_id: crate::hex(&h.transition.old.key_id()),
            new_key_id: crate::hex(&h.transition.new.key_id()),
        })
        .collect();
    // The checkpoint is read first: segments sealed meanwhile are only "not yet covered".
    let cp_path = ledger.join("checkpoint");
    let checkpoint = match read_checkpoint(&cp_path, &keys) {
        Ok(c) => Some(c),
        Err((kind, detail)) => {
            report.issue(None, None, kind, detail);
            None
        }
    };
    let old = match opts.since.map(|text| keys.open_checkpoint(text)) {
        Some(Ok(cp)) => Some(cp),
        Some(Err(e)) => {
            let kind = match e.kind() {
                "checkpoint_signature" => "since_signature",
                kind => kind,
            };
            report.issue(None, None, kind, format!("older checkpoint: {e}"));
            None
        }
        None => None,
    };
    let witnessed = opts.witness.map(|policy| witnessed::load(&ledger, &keys, policy));

    let seg_dir = ledger.join("segments");
    let (sealed, open) = list_segments(&seg_dir)?;
    let highest = sealed.last().map_or(0, |(n, _)| n + 1);
    let bytes_total = sealed.iter().map(|(_, l)| l).sum();
    // A derived file, so not an error; but say when a check did not run.
    let mut stored_tree = StoredTree::open(&ledger).unwrap_or_else(|()| {
        report.warnings.push(
            "tree/level-00 is malformed: record_rewritten was not checked (the writer rebuilds it)"
                .into(),
        );
        None
    });
    if let Some(t) = stored_tree.as_ref().filter(|t| t.size < highest) {
        report.warnings.push(format!(
            "tree/level-00 holds {} of {highest} segment records: record_rewritten was not checked for the rest",
            t.size
        ));
    }
    let res = Resolver { ledger: ledger.clone(), kek: opts.kek, dicts: Mutex::new(HashMap::new()) };
    let mut frontier = Frontier::default();
    // The log tree after each segment, so any checkpoint size can be compared.
    let mut prefix =
        vec![Prefix { root: frontier.root(), end_index: 0, min_t: i64::MAX, max_t: i64::MIN }];
    let mut prev: Option<SegmentRecord> = None;
    let mut chain_known = true;
    let (mut min_t, mut max_t) = (i64::MAX, i64::MIN);
    let root_at = |prefix: &[Prefix], size: u64| {
        usize::try_from(size).ok().and_then(|i| prefix.get(i)).map(|p| p.root)
    };
    let mut present = sealed.iter().copied().peekable();
    let mut progress = Progress {
        segments_done: 0,
        segments_total: sealed.len() as u64,
        bytes_done: 0,
        bytes_total,
    };

    let mut start = 0u64;
    while start < highest {
        let end = (start + WINDOW).min(highest);
        let mut numbers = Vec::new();
        while let Some((n, len)) = present.next_if(|(n, _)| *n < end) {
            numbers.push(n);
            progress.bytes_done += len;
        }
        let checks = check_window(&res, &seg_dir, &numbers, threads);
        progress.segments_done += numbers.len() as u64;
        if let Some(f) = opts.progress.as_mut() {
            f(progress);
        }
        let mut checks = checks.into_iter().peekable();
        for s in start..end {
            let Some(check) = checks.next_if(|c| c.number == s) else {
                report.issue(Some(s), None, "missing_segment", format!("segment {s} is missing"));
                chain_known = false;
                continue;
            };
            for i in check.issues {
                report.issue(i.segment, i.index, i.kind, i.detail);
            }
            report.payloads_unchecked += check.unchecked;
            let Some(header) = check.header else {
                chain_known = false;
                continue;
            };
            if header.number != s {
                report.issue(
                    Some(s),
                    None,
                    "misplaced",
                    format!("the file of segment {s} holds segment {}", header.number),
                );
            }
            if header.origin != verifier.name() {
                report.issue(
                    Some(s),
                    None,
                    "origin",
                    format!(
                        "segment belongs to log {:?}, not {:?}",
                        header.origin,
                        verifier.name()
                    ),
                );
            }
            if chain_known {
                let want_first = prev.as_ref().map_or(0, |r| r.end_index());
                let want_prev = prev.as_ref().map_or([0; 32], |r| r.chain_hash());
                if header.first_index != want_first {
                    report.issue(
                        Some(s),
                        Some(header.first_index),
                        "sequence",
                        format!(
                            "segment starts at event {}, expected {want_first}",
                            header.first_index
                        ),
                    );
                }
                if header.prev != want_prev {
                    report.issue(
                        Some(s),
                        None,
                        "chain",
                        "prev does not match the hash of the previous segment record".into(),
                    );
                }
            }
            let Some(record) = check.record else {
                chain_known = false;
                continue;
            };
            chain_known = true;
            let leaf = record.leaf_hash();
            if stored_tree.as_mut().and_then(|t| t.leaf(s)).is_some_and(|stored| stored != leaf) {
                report.issue(
                    Some(s),
                    None,
                    "record_rewritten",
                    "segment record differs from the one recorded in the log tree when it was sealed".into(),
                );
            }
            frontier.push(leaf);
            for h in keys.handoffs().iter().filter(|h| h.transition.size == s + 1) {
                check_handoff(&mut report, h, &record, frontier.root());
            }
            min_t = min_t.min(record.min_time_ms);
            max_t = max_t.max(record.max_time_ms);
            prefix.push(Prefix {
                root: frontier.root(),
                end_index: record.end_index(),
                min_t,
                max_t,
            });
            report.segments += 1;
            prev = Some(record);
        }
        start = end;
    }

    // A service sealing meanwhile may have signed a newer checkpoint: read
    // it again before calling a long uncovered tail unsigned.
    let mut checkpoint = checkpoint;
    if let Some(c) = &checkpoint
        && highest.saturating_sub(c.size) > CRASH_WINDOW_SEGMENTS
        && let Ok(newer) = read_checkpoint(&cp_path, &keys)
        && newer.size > c.size
        && root_at(&prefix, newer.size) == Some(newer.root)
    {
        checkpoint = Some(newer);
    }
    let mut covered = 0u64;
    if let Some(cp) = &checkpoint {
        let root_at_checkpoint = root_at(&prefix, cp.size);
        report.checkpoint = Some(CheckpointSummary { size: cp.size, root: B64.encode(cp.root) });
        if cp.size > highest {
            report.issue(
                Some(highest),
                None,
                "truncated",
                format!("the checkpoint covers {} segments but the log has {highest}", cp.size),
            );
        } else if root_at_checkpoint != Some(cp.root) {
            report.issue(
                None,
                None,
                "checkpoint_mismatch",
                format!("the first {} segments do not hash to the signed checkpoint root", cp.size),
            );
        } else {
            covered = cp.size;
        }
    }
    // Only events of segments a genuine signed checkpoint covers count.
    let verified_size = usize::try_from(covered).unwrap_or(usize::MAX).min(prefix.len() - 1);
    let (verified, last) = (&prefix[verified_size], &prefix[prefix.len() - 1]);
    report.events = verified.end_index;
    (min_t, max_t) = (verified.min_t, verified.max_t);
    report.uncovered_segments = highest.saturating_sub(covered);
    if report.uncovered_segments > 0 {
        report.unverified.push(UnverifiedRange {
            first_segment: covered,
            end_segment: highest,
            first_index: verified.end_index,
            end_index: last.end_index.max(verified.end_index),
            reason: "uncovered",
        });
    }
    // Only a checkpoint that matched the log can have a tail nobody signed;
    // a mismatch is its own failure and leaves every segment unverified.
    let matched = checkpoint.as_ref().is_some_and(|c| c.size == covered);
    if matched && report.uncovered_segments > CRASH_WINDOW_SEGMENTS {
        report.issue(
            Some(covered),
            None,
            "unsigned_tail",
            format!(
                "segments {covered}..{highest} are not covered by the signed checkpoint; a crash between sealing \
                 and signing leaves at most {CRASH_WINDOW_SEGMENTS}, so they were appended without the signing key"
            ),
        );
    } else if report.uncovered_segments > 0 && matched {
        report.warnings.push(format!(
            "{} sealed segment(s) are newer than the checkpoint and not yet covered by a signature; \
             their events are not counted as verified",
            report.uncovered_segments
        ));
    }
    for h in keys.handoffs().iter().filter(|h| h.transition.size > highest) {
        report.issue(
            None,
            Some(h.transition.index),
            "key_transition",
            format!(
                "the key history rotates at size {} but the log has {highest} segments",
                h.transition.size
            ),
        );
    }
    if let Some(old) = &old {
        report.since = Some(CheckpointSummary { size: old.size, root: B64.encode(old.root) });
        if old.size > highest || checkpoint.as_ref().is_some_and(|c| c.size < old.size) {
            report.issue(
                Some(highest.min(old.size)),
                None,
                "truncated",
                format!(
                    "the log is shorter than the older checkpoint: it had {} segments, now {}",
                    old.size,
                    checkpoint.as_ref().map_or(highest, |c| c.size.min(highest))
                ),
            );
        } else if root_at(&prefix, old.size) != Some(old.root) {
            report.issue(
                None,
                None,
                "rewritten",
                format!("the first {} segments no longer match the older checkpoint", old.size),
            );
        }
    }

    if let Some(w) = witnessed {
        let (summary, issue) = witnessed::finish(w, |size| root_at(&prefix, size), highest);
        report.witnessed = summary;
        if let Some((kind, detail)) = issue {
            report.issue(None, None, kind, detail);
        }
    }
    // The open segment: durable but not sealed, so only its framing is read.
    // The writer refuses a directory with any other `.open` file (§8.3).
    if open.len() > 1 || open.first().is_some_and(|&n| n != highest) {
        report.warnings.push(format!(
            "unexpected open segment(s) {open:?} after {highest} sealed segments: the writer refuses to open this directory"
        ));
    }
    if let Some(n) = open.first() {
        match res.open(&seg_dir.join(format!("{n:012}.open"))) {
            Ok((mut reader, _)) => {
                let mut payload = Vec::new();
                while let Ok(Some(_)) = reader.next_frame_into(&mut payload) {
                    report.unsealed_events += 1;
                }
                if report.unsealed_events > 0 {
                    let first_index = reader.header.first_index;
                    report.unverified.push(UnverifiedRange {
                        first_segment: *n,
                        end_segment: *n + 1,
                        first_index,
                        end_index: first_index.saturating_add(report.unsealed_events),
                        reason: "unsealed",
                    });
                }
                if let Some(Tail::Torn { offset, reason }) = reader.tail() {
                    report.warnings.push(format!(
                        "open segment {n} ends in an unacknowledged torn write at offset {offset} ({reason}); \
                         the writer cuts it on its next start"
                    ));
                }
            }
            Err(e) => report.warnings.push(format!("open segment {n}: {e}")),
        }
    }
    if report.payloads_unchecked > 0 {
        report.warnings.push(format!(
            "payloads not checked: {} events are encrypted at rest and no key-encryption key was given (--kek); \
             their stored leaf hashes, the segment roots, the record chain and the signatures were checked, \
             the ciphertexts and event times were not",
            report.payloads_unchecked
        ));
    }
    if report.events > 0 {
        report.first_time = crate::time::format_ms(min_t);
        report.last_time = crate::time::format_ms(max_t);
    }
    report.ok = report.errors.is_empty() && report.errors_omitted == 0;
    if report.ok {
        report.verified = checkpoint.map(Verified::new);
    }
    Ok(report)
}

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
    BLOCK_SHIFT, Codec, Footer, FrameReader, MAX_DICT_LEN, MAX_SEGMENT_EVENTS, SegmentError,
    SegmentHeader, Tail, ZstdDecoder,
};
use crate::verified::Verified;
use crate::witnessed::{self, WitnessPolicy, WitnessedSummary};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, ErrorKind::NotFound, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
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
    Io { path: PathBuf, source: std::io::Error },
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

    fn issue(&mut self, seg: Option<u64>, index: Option<u64>, kind: &'static str, detail: String) {
        if self.errors.len() < MAX_ISSUES {
            self.errors.push(Issue { segment: seg, index, kind, detail });
        } else {
            self.errors_omitted += 1;
        }
    }
}

/// How far a verification is, for a progress bar.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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

/// Reads at most `max` bytes of `path` (more is an error).
pub(crate) fn read_bounded(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    #[allow(clippy::disallowed_methods)] // bounded by `take`
    File::open(path)?.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        let detail = format!("{} is larger than {max} bytes", path.display());
        return Err(std::io::Error::other(detail));
    }
    Ok(bytes)
}

/// Dictionaries and data keys of one directory, each read once.
struct Resolver<'a> {
    ledger: PathBuf,
    kek: Option<&'a Kek>,
    dicts: Mutex<HashMap<Hash, Arc<Vec<u8>>>>,
}

impl Resolver<'_> {
    /// The dictionary named `hash` (`ledger/dicts/<hex>.zdict`), hash-checked.
    fn dict(&self, hash: &Hash) -> Result<Arc<Vec<u8>>, SegmentError> {
        if let Some(d) = self.dicts.lock().ok().and_then(|c| c.get(hash).cloned()) {
            return Ok(d);
        }
        let bad = |detail| SegmentError("dictionary", detail);
        let name = crate::hex(hash);
        let path = self.ledger.join("dicts").join(format!("{name}.zdict"));
        let bytes = read_bounded(&path, MAX_DICT_LEN).map_err(|e| match e.kind() {
            NotFound => format!("dictionary {name} is missing ({} does not exist)", path.display()),
            _ => format!("{}: {e}", path.display()),
        });
        let bytes = bytes.map_err(bad)?;
        if bytes.is_empty() {
            return Err(bad(format!("dictionary {} is empty", path.display())));
        }
        if sha256(&bytes) != *hash {
            return Err(bad(format!("dictionary {name} does not match its name")));
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

    /// How the frames of a segment are decoded, as its header says.
    fn codec(&self, header: &SegmentHeader) -> Result<Codec, SegmentError> {
        let number = header.number;
        let dict = match (header.version, self.kek) {
            (1, _) => return Ok(Codec::Plain),
            (2, _) if header.dict == [0; 32] => None,
            (2, _) => Some(self.dict(&header.dict)?),
            // Version 3 without the KEK: only the structure and stored leaves are checked.
            (_, None) => return Ok(Codec::Sealed(None)),
            (_, Some(kek)) => {
                let path = self.ledger.join("keys").join(format!("{number:012}.key"));
                let rec =
                    read_bounded(&path, KEY_RECORD_LEN as u64).map_err(|e| match e.kind() {
                        NotFound => {
                            SegmentError("key", AtRestError::MissingKey { number }.to_string())
                        }
                        _ => SegmentError("io", format!("{}: {e}", path.display())),
                    })?;
                let cipher = kek.open_record(number, &rec);
                let cipher = cipher.map_err(|e| SegmentError("key", e.to_string()))?;
                return Ok(Codec::Sealed(Some(Box::new(cipher))));
            }
        };
        let zstd = ZstdDecoder::new(dict.as_deref().map(Vec::as_slice));
        Ok(Codec::Zstd(Box::new(zstd.map_err(|e| SegmentError("dictionary", e))?)))
    }

    fn open(&self, path: &Path) -> Result<FrameReader<BufReader<File>>, SegmentError> {
        let io = |e: std::io::Error| SegmentError("io", format!("{}: {e}", path.display()));
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        FrameReader::open(BufReader::with_capacity(1 << 20, file), len, |h| self.codec(h))
    }
}

/// Checks one sealed segment on its own.
fn check_segment(res: &Resolver<'_>, path: &Path, number: u64) -> SegmentCheck {
    let mut out =
        SegmentCheck { number, header: None, record: None, issues: Vec::new(), unchecked: 0 };
    let mut issue = |index: Option<u64>, kind: &'static str, detail: String| {
        out.issues.push(Issue { segment: Some(number), index, kind, detail })
    };
    // A segment that does not open (io, header, dictionary, key) is one issue.
    let opened =
        res.open(path).map_err(|e| issue(None, e.kind(), format!("{}: {e}", path.display())));
    let Ok(mut reader) = opened else { return out };
    let header = reader.header.clone();
    out.header = Some(header.clone());
    // Streamed in blocks of 64 entries: one root per block is kept.
    let block = 1usize << BLOCK_SHIFT;
    let mut block_leaves: Vec<Hash> = Vec::with_capacity(block);
    let (mut block_roots, mut block_starts, mut frame_offsets) =
        (Vec::new(), Vec::new(), Vec::new());
    let mut scratch = Vec::with_capacity(block);
    let mut payload = Vec::new();
    let mut count = 0u64;
    let (mut min_t, mut max_t) = (i64::MAX, i64::MIN);
    let readable = reader.has_entries();
    loop {
        let next = reader.next_frame_into(&mut payload);
        let next = next.map_err(|e| issue(None, "io", format!("{}: {e}", path.display())));
        let Ok(Some(offset)) = next else { break };
        if count >= MAX_SEGMENT_EVENTS {
            issue(None, "entry", format!("more than {MAX_SEGMENT_EVENTS} entries"));
            break;
        }
        let index = Some(header.first_index + count);
        if block_leaves.is_empty() {
            block_starts.push(offset);
        }
        frame_offsets.push(offset - block_starts.last().copied().unwrap_or(offset));
        let leaf = match reader.leaf {
            // Encrypted, no KEK: only the stored leaf hash.
            Some(stored) if !readable => stored,
            // Decrypted entries must hash to the leaf stored beside them.
            stored => {
                let leaf = leaf_hash(&payload);
                if stored.is_some_and(|s| s != leaf) {
                    let detail = format!(
                        "entry at offset {offset} does not hash to the leaf stored with it"
                    );
                    issue(index, "entry_altered", detail);
                }
                leaf
            }
        };
        block_leaves.push(leaf);
        if block_leaves.len() == block {
            block_roots.push(root_of_leaves(&block_leaves, &mut scratch));
            block_leaves.clear();
        }
        if readable {
            // One JSON rule (§12): a duplicate `time` would let two
            // readers see two different events under one hash.
            // The check finds the event time on the way: one scan per entry.
            let (checked, time) = crate::time::check_entry(&payload);
            if let Err(e) = checked {
                issue(index, "entry", format!("entry at offset {offset} {e}"));
            }
            match time {
                Some(t) => (min_t, max_t) = (min_t.min(t), max_t.max(t)),
                None => issue(
                    index,
                    "entry",
                    format!("entry at offset {offset} has no readable event time"),
                ),
            }
        }
        count += 1;
    }
    if !block_leaves.is_empty() {
        block_roots.push(root_of_leaves(&block_leaves, &mut scratch));
    }
    // Encrypted without the KEK: every entry's payload went unchecked.
    out.unchecked = if readable { 0 } else { count };
    let footer = match reader.tail.take() {
        Some(Tail::Sealed(footer)) => footer,
        Some(Tail::Torn { offset, reason }) => {
            let detail =
                format!("bytes at offset {offset} are not a valid entry or footer: {reason}");
            issue(Some(header.first_index + count), "entry_corrupt", detail);
            // The footer is found from the end (§4.5) and may be intact: its
            // record keeps the log tree computable, so one damaged frame is
            // not also reported as a checkpoint mismatch.
            out.record = File::open(path)
                .ok()
                .and_then(|mut f| Footer::read_from_end(&mut f).ok())
                .map(|f| f.record)
                .filter(|r| r.number == header.number && r.first_index == header.first_index);
            return out;
        }
        _ => {
            issue(None, "not_sealed", "sealed segment file has no footer".into());
            return out;
        }
    };
    let rec = &footer.record;
    if (rec.number, rec.first_index, rec.prev, &rec.origin)
        != (header.number, header.first_index, header.prev, &header.origin)
    {
        issue(None, "record", "segment record disagrees with the segment header".into());
    }
    if rec.count != count {
        let detail = format!("record counts {} events, the file holds {count}", rec.count);
        issue(None, "record", detail);
    }
    // A block root mismatch names the (up to) 64 events it covers.
    for (b, computed) in block_roots.iter().enumerate() {
        if footer.block_roots.get(b) != Some(computed) {
            let first = header.first_index + (b * block) as u64;
            let end = (first + block as u64).min(header.first_index + count);
            let detail =
                format!("events {first}..{end} do not hash to the block root sealed in the footer");
            issue(Some(first), "entry_altered", detail);
        }
    }
    // The index in the footer must locate exactly these frames.
    let same_frames =
        |i: &Vec<u32>| i.iter().map(|&o| u64::from(o)).eq(frame_offsets.iter().copied());
    if footer.block_roots.len() != block_roots.len()
        || footer.block_offsets != block_starts
        || !footer.frame_offsets.as_ref().is_none_or(same_frames)
    {
        issue(None, "index", "the footer's block or frame index does not match the entries".into());
    }
    // The block roots are complete aligned subtrees: the tree over them is the segment root.
    if root_of_leaves(&footer.block_roots, &mut scratch) != rec.root {
        let detail = "segment root in the record does not match the sealed block roots";
        issue(None, "segment_root", detail.into());
    }
    if count > 0 && readable && (rec.min_time_ms != min_t || rec.max_time_ms != max_t) {
        issue(None, "record", "record's first/last event times do not match the entries".into());
    }
    out.record = Some(footer.record);
    out
}

/// Checks `numbers` (sorted) on up to `threads` threads, in order. Each
/// thread takes the next unchecked segment, so one slowed by other load
/// does not leave the others idle at the end of the window.
fn check_window(
    res: &Resolver<'_>,
    dir: &Path,
    numbers: &[u64],
    threads: usize,
) -> Vec<SegmentCheck> {
    let check = |n: u64| check_segment(res, &dir.join(format!("{n:012}.seg")), n);
    if threads <= 1 {
        return numbers.iter().map(|&n| check(n)).collect();
    }
    let next = AtomicUsize::new(0);
    let work = || {
        let mut out = Vec::new();
        while let Some(&n) = numbers.get(next.fetch_add(1, Ordering::Relaxed)) {
            out.push(check(n));
        }
        out
    };
    let mut checks: Vec<_> = std::thread::scope(|s| {
        let parts: Vec<_> = (0..threads.min(numbers.len())).map(|_| s.spawn(work)).collect();
        // A checker that panicked leaves its segments reported missing.
        parts.into_iter().flat_map(|p| p.join().unwrap_or_default()).collect()
    });
    checks.sort_unstable_by_key(|c| c.number);
    checks
}

/// Sealed segments as (number, file length), and open segment numbers.
type Listing = (Vec<(u64, u64)>, Vec<u64>);

/// Segment numbers in `dir`: (sealed, open), sorted. Names are exactly
/// twelve digits and `.seg` or `.open`; anything else is ignored.
fn list_segments(dir: &Path) -> Result<Listing, DirError> {
    let (mut sealed, mut open) = (Vec::new(), Vec::new());
    let io = |source| DirError::Io { path: dir.to_owned(), source };
    let entries = match std::fs::read_dir(dir) {
        Err(e) if e.kind() == NotFound => return Ok((sealed, open)),
        entries => entries.map_err(io)?,
    };
    for entry in entries {
        let entry = entry.map_err(io)?;
        let name = entry.file_name();
        let Some((stem, ext)) = name.to_str().and_then(|n| n.split_once('.')) else { continue };
        let twelve_digits = stem.len() == 12 && stem.bytes().all(|b| b.is_ascii_digit());
        let Some(n) = stem.parse::<u64>().ok().filter(|_| twelve_digits) else { continue };
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
/// then 32-byte leaves).
struct StoredTree {
    file: File,
    size: u64,
}

impl StoredTree {
    /// `Ok(None)` without `tree/`; `Err(())` when `tree/` exists but its
    /// leaf level is absent or malformed.
    fn open(ledger: &Path) -> Result<Option<StoredTree>, ()> {
        let dir = ledger.join("tree");
        let Ok(mut file) = File::open(dir.join("level-00")) else {
            return if dir.exists() { Err(()) } else { Ok(None) };
        };
        let len = file.metadata().map_err(|_| ())?.len();
        let mut header = [0u8; 16];
        let want = *b"SEALTRE\0\x00\x01\x00\x20\x00\x00\x00\x00";
        if len >= 16 && (file.read_exact(&mut header).is_err() || header != want) {
            return Err(());
        }
        Ok(Some(StoredTree { file, size: len.saturating_sub(16) / 32 }))
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
        NotFound => ("no_checkpoint", "the ledger has no signed checkpoint".to_owned()),
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
        Err(e) if e.kind() == NotFound => Ok(KeyChain::single(verifier)),
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
    let auto = || std::thread::available_parallelism().map_or(1, |n| n.get()).min(4);
    let threads = if opts.threads == 0 { auto() } else { opts.threads };
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
    // The checkpoint is read first: segments sealed meanwhile are only "not
    // yet covered". A checkpoint that does not open is reported, then absent.
    let cp_path = ledger.join("checkpoint");
    let mut checkpoint = read_checkpoint(&cp_path, &keys)
        .map_err(|(kind, detail)| report.issue(None, None, kind, detail))
        .ok();
    let old = match opts.since.map(|text| keys.open_checkpoint(text)) {
        Some(Err(e)) => {
            let kind =
                if e.kind() == "checkpoint_signature" { "since_signature" } else { e.kind() };
            report.issue(None, None, kind, format!("older checkpoint: {e}"));
            None
        }
        old => old.and_then(Result::ok),
    };
    let witnessed = opts.witness.map(|policy| witnessed::load(&ledger, &keys, policy));

    let seg_dir = ledger.join("segments");
    let (sealed, open) = list_segments(&seg_dir)?;
    let highest = sealed.last().map_or(0, |(n, _)| n + 1);
    // A derived file, so not an error; but say when a check did not run.
    let mut stored_tree = StoredTree::open(&ledger).unwrap_or_else(|()| {
        let w =
            "tree/level-00 is malformed: record_rewritten was not checked (the writer rebuilds it)";
        report.warnings.push(w.into());
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
    let root_at = |prefix: &[Prefix], size: u64| {
        usize::try_from(size).ok().and_then(|i| prefix.get(i)).map(|p| p.root)
    };
    // The next segment's first event and `prev`, while the chain is known.
    let mut expect = Some((0, [0; 32]));
    let (mut min_t, mut max_t) = (i64::MAX, i64::MIN);
    let mut present = sealed.iter().copied().peekable();
    let (segments_total, bytes_total) = (sealed.len() as u64, sealed.iter().map(|(_, l)| l).sum());
    let mut progress = Progress { segments_total, bytes_total, ..Default::default() };

    for start in (0..highest).step_by(WINDOW as usize) {
        let end = (start + WINDOW).min(highest);
        let mut numbers = Vec::new();
        while let Some((n, len)) = present.next_if(|(n, _)| *n < end) {
            numbers.push(n);
            progress.bytes_done += len;
        }
        let mut checks = check_window(&res, &seg_dir, &numbers, threads).into_iter().peekable();
        progress.segments_done += numbers.len() as u64;
        if let Some(f) = opts.progress.as_mut() {
            f(progress);
        }
        for s in start..end {
            let Some(check) = checks.next_if(|c| c.number == s) else {
                report.issue(Some(s), None, "missing_segment", format!("segment {s} is missing"));
                expect = None;
                continue;
            };
            for i in check.issues {
                report.issue(i.segment, i.index, i.kind, i.detail);
            }
            report.payloads_unchecked += check.unchecked;
            let Some(header) = check.header else {
                expect = None;
                continue;
            };
            if header.number != s {
                let detail = format!("the file of segment {s} holds segment {}", header.number);
                report.issue(Some(s), None, "misplaced", detail);
            }
            if header.origin != verifier.name() {
                let (origin, name) = (&header.origin, verifier.name());
                let detail = format!("segment belongs to log {origin:?}, not {name:?}");
                report.issue(Some(s), None, "origin", detail);
            }
            if let Some((want_first, want_prev)) = expect {
                let first = header.first_index;
                if first != want_first {
                    let detail = format!("segment starts at event {first}, expected {want_first}");
                    report.issue(Some(s), Some(first), "sequence", detail);
                }
                if header.prev != want_prev {
                    let detail = "prev does not match the hash of the previous segment record";
                    report.issue(Some(s), None, "chain", detail.into());
                }
            }
            let Some(record) = check.record else {
                expect = None;
                continue;
            };
            expect = Some((record.end_index(), record.chain_hash()));
            let leaf = record.leaf_hash();
            if stored_tree.as_mut().and_then(|t| t.leaf(s)).is_some_and(|stored| stored != leaf) {
                let detail = "segment record differs from the one recorded in the log tree when it was sealed";
                report.issue(Some(s), None, "record_rewritten", detail.into());
            }
            frontier.push(leaf);
            for h in keys.handoffs().iter().filter(|h| h.transition.size == s + 1) {
                check_handoff(&mut report, h, &record, frontier.root());
            }
            (min_t, max_t) = (min_t.min(record.min_time_ms), max_t.max(record.max_time_ms));
            let end_index = record.end_index();
            prefix.push(Prefix { root: frontier.root(), end_index, min_t, max_t });
            report.segments += 1;
        }
    }

    // A service sealing meanwhile may have signed a newer checkpoint: read
    // it again before calling a long uncovered tail unsigned.
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
        report.checkpoint = Some(CheckpointSummary { size: cp.size, root: B64.encode(cp.root) });
        if cp.size > highest {
            let detail =
                format!("the checkpoint covers {} segments but the log has {highest}", cp.size);
            report.issue(Some(highest), None, "truncated", detail);
        } else if root_at(&prefix, cp.size) != Some(cp.root) {
            let detail =
                format!("the first {} segments do not hash to the signed checkpoint root", cp.size);
            report.issue(None, None, "checkpoint_mismatch", detail);
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
        let detail = format!(
            "segments {covered}..{highest} are not covered by the signed checkpoint; a crash between sealing \
             and signing leaves at most {CRASH_WINDOW_SEGMENTS}, so they were appended without the signing key"
        );
        report.issue(Some(covered), None, "unsigned_tail", detail);
    } else if report.uncovered_segments > 0 && matched {
        report.warnings.push(format!(
            "{} sealed segment(s) are newer than the checkpoint and not yet covered by a signature; \
             their events are not counted as verified",
            report.uncovered_segments
        ));
    }
    for h in keys.handoffs().iter().filter(|h| h.transition.size > highest) {
        let size = h.transition.size;
        let detail =
            format!("the key history rotates at size {size} but the log has {highest} segments");
        report.issue(None, Some(h.transition.index), "key_transition", detail);
    }
    if let Some(old) = &old {
        report.since = Some(CheckpointSummary { size: old.size, root: B64.encode(old.root) });
        if old.size > highest || checkpoint.as_ref().is_some_and(|c| c.size < old.size) {
            let now = checkpoint.as_ref().map_or(highest, |c| c.size.min(highest));
            let detail = format!(
                "the log is shorter than the older checkpoint: it had {} segments, now {now}",
                old.size
            );
            report.issue(Some(highest.min(old.size)), None, "truncated", detail);
        } else if root_at(&prefix, old.size) != Some(old.root) {
            let detail =
                format!("the first {} segments no longer match the older checkpoint", old.size);
            report.issue(None, None, "rewritten", detail);
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
            Ok(mut reader) => {
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
                if let Some(Tail::Torn { offset, reason }) = &reader.tail {
                    report.warnings.push(format!(
                        "open segment {n} ends in an unacknowledged torn write at offset {offset} ({reason}); \
                         the writer cuts it on its next start"
                    ));
                }
            }
            // A live writer sealed it after the listing: no fault, and no
            // server path in a report the console shows.
            Err(_) if seg_dir.join(format!("{n:012}.seg")).exists() => {
                report.warnings.push(format!(
                    "open segment {n} was sealed while this ran; verify again to include its events"
                ))
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

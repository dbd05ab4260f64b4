//! Offline verification of a whole data directory with only the log's public
//! key: every entry rehashed, every segment root and record recomputed, the
//! record chain and the log tree rebuilt and compared with the signed
//! checkpoint (and, with `since`, with an older checkpoint the auditor kept).
//!
//! Integrity problems are collected as `Issue`s naming the segment and, where
//! it can be known, the event; `VerifyError` is only for not being able to run.

use super::dicts::{DictError, DictStore};
use super::frontier::Frontier;
use super::hash::{Hash, leaf_hash, root_of_leaves};
use super::key_history::{self, Handoff, KeyChain};
use super::keys::NoteVerifier;
use super::log::{LedgerPaths, list_segments};
use super::note;
use super::record::SegmentRecord;
use super::segment::{
    BLOCK_SHIFT, Footer, FrameReader, MAX_SEGMENT_EVENTS, SegmentError, SegmentHeader, Tail,
};
use super::tree_store::TreeStore;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Issues kept in a report; beyond this only the count grows.
const MAX_ISSUES: usize = 1000;
/// Segments checked concurrently per window (bounds memory).
const WINDOW: u64 = 32;

#[derive(Debug, Error)]
pub enum VerifyError {
    #[error("{0} is not a sealtrail data directory (no ledger/ folder)")]
    NotADataDir(PathBuf),
    #[error(transparent)]
    Ledger(#[from] super::log::LedgerError),
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
/// that no genuine signed checkpoint covers.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct UnverifiedRange {
    pub first_segment: u64,
    pub end_segment: u64,
    pub first_index: u64,
    pub end_index: u64,
    /// `uncovered` (sealed, no signature covers it) or `unsealed` (the open
    /// segment: durable, not yet provable).
    pub reason: &'static str,
}

/// Sealed segments a crash can leave without a covering checkpoint: the
/// writer renames the sealed file (seal step 2) before it signs the new
/// checkpoint (step 4), and re-signs at its next start, so at most the last
/// segment. More than this is not a crash: it is a tail nobody signed.
pub const CRASH_WINDOW_SEGMENTS: u64 = 1;

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct VerifyReport {
    pub ok: bool,
    /// Sealed segments found.
    pub segments: u64,
    /// Events verified: in sealed segments covered by the genuine signed
    /// checkpoint (never events no signature covers).
    pub events: u64,
    pub first_time: Option<String>,
    pub last_time: Option<String>,
    pub checkpoint: Option<CheckpointSummary>,
    /// The older checkpoint given with `since`, when it was checked.
    pub since: Option<CheckpointSummary>,
    /// Events written but not sealed yet (open segment): durable, not yet provable.
    pub unsealed_events: u64,
    /// Sealed segments newer than the checkpoint (a crash before re-signing,
    /// or a tail appended without the key): their events are not counted.
    pub uncovered_segments: u64,
    /// Ranges of events that are not verified: sealed but not covered by a
    /// genuine signed checkpoint, or not sealed yet.
    pub unverified: Vec<UnverifiedRange>,
    pub errors: Vec<Issue>,
    /// Issues beyond the first MAX_ISSUES that were counted but not listed.
    pub errors_omitted: u64,
    pub warnings: Vec<String>,
    /// Events of encrypted segments (format 3) checked without the KEK:
    /// their stored leaf hashes were checked against the block roots, but
    /// not the payloads against the leaf hashes (nor their event times).
    pub payloads_unchecked: u64,
    /// With witness keys: the cosigned checkpoint the log extends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub witnessed: Option<super::witnessed::WitnessedSummary>,
    /// Signing-key transitions followed from the given key (LEDGER.md §14).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub key_transitions: Vec<KeyTransitionSummary>,
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
    fn issue(
        &mut self,
        segment: Option<u64>,
        index: Option<u64>,
        kind: &'static str,
        detail: String,
    ) {
        if self.errors.len() < MAX_ISSUES {
            self.errors.push(Issue {
                segment,
                index,
                kind,
                detail,
            });
        } else {
            self.errors_omitted += 1;
        }
    }
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
    /// Encrypted entries whose payload could not be read (no KEK).
    unchecked: u64,
}

fn check_segment(path: &Path, number: u64, dicts: &DictStore) -> SegmentCheck {
    let mut out = SegmentCheck {
        number,
        header: None,
        record: None,
        issues: Vec::new(),
        unchecked: 0,
    };
    let mut issue = |index: Option<u64>, kind: &'static str, detail: String| {
        out.issues.push(Issue {
            segment: Some(number),
            index,
            kind,
            detail,
        })
    };
    let mut reader = match FrameReader::open_opts(path, dicts, true) {
        Ok(r) => r,
        Err(e) => {
            let kind = match e {
                SegmentError::Io { .. } => "io",
                SegmentError::Dict {
                    source: DictError::Key(_),
                    ..
                } => "key",
                SegmentError::Dict { .. } => "dictionary",
                _ => "header",
            };
            issue(None, kind, e.to_string());
            return out;
        }
    };
    let header = reader.header.clone();
    // Streamed in blocks of 64 entries: memory stays constant per segment
    // apart from one root per block.
    let block = 1usize << BLOCK_SHIFT;
    let mut block_leaves: Vec<Hash> = Vec::with_capacity(block);
    let mut block_roots: Vec<Hash> = Vec::new();
    let mut block_starts: Vec<u64> = Vec::new();
    // Each frame's offset from its block's first frame (the footer's frame
    // index, when it has one, must say the same).
    let mut frame_offsets: Vec<u64> = Vec::new();
    let mut scratch = Vec::with_capacity(block);
    let mut payload = Vec::new();
    let mut count = 0u64;
    let (mut min_t, mut max_t) = (i64::MAX, i64::MIN);
    let readable = reader.has_entries();
    let mut unchecked = 0u64;
    loop {
        match reader.next_frame_into(&mut payload) {
            Ok(Some(offset)) => {
                if count >= MAX_SEGMENT_EVENTS {
                    issue(
                        None,
                        "entry",
                        format!("more than {MAX_SEGMENT_EVENTS} entries"),
                    );
                    break;
                }
                if block_leaves.is_empty() {
                    block_starts.push(offset);
                }
                frame_offsets.push(offset - block_starts.last().copied().unwrap_or(offset));
                let leaf = match (readable, reader.leaf()) {
                    // Encrypted, no KEK: only the stored leaf hash.
                    (false, Some(stored)) => {
                        unchecked += 1;
                        stored
                    }
                    (_, stored) => {
                        let leaf = leaf_hash(&payload);
                        // Encrypted with the KEK: the decrypted entry must
                        // hash to the leaf stored beside it.
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
                // One JSON rule (LEDGER.md §12): a duplicate `time` would let
                // two readers see two different events under one hash.
                if readable && let Err(e) = super::strict_json::check(&payload) {
                    issue(
                        Some(header.first_index + count),
                        "entry",
                        format!("entry at offset {offset} {e}"),
                    );
                }
                match readable.then(|| crate::event::entry_time_ms(&payload)) {
                    None => {}
                    Some(Some(t)) => {
                        min_t = min_t.min(t);
                        max_t = max_t.max(t);
                    }
                    Some(None) => issue(
                        Some(header.first_index + count),
                        "entry",
                        format!("entry at offset {offset} has no readable event time"),
                    ),
                }
                count += 1;
            }
            Ok(None) => break,
            Err(e) => {
                issue(None, "io", e.to_string());
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
            out.record = std::fs::File::open(path)
                .ok()
                .and_then(|mut f| Footer::read(path, &mut f).ok())
                .map(|f| f.record)
                .filter(|r| r.number == header.number && r.first_index == header.first_index);
            out.header = Some(header);
            return out;
        }
        _ => {
            issue(
                None,
                "not_sealed",
                "sealed segment file has no footer".into(),
            );
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
        issue(
            None,
            "record",
            "segment record disagrees with the segment header".into(),
        );
    }
    if rec.count != count {
        issue(
            None,
            "record",
            format!("record counts {} events, the file holds {count}", rec.count),
        );
    }
    // Each recomputed block root against the sealed one: a mismatch names the
    // (up to) 64 events it covers.
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
        issue(
            None,
            "index",
            "the footer's block index does not cover the entries".into(),
        );
    }
    if root_of_leaves(&footer.block_roots, &mut scratch) != rec.root {
        issue(
            None,
            "segment_root",
            "segment root in the record does not match the sealed block roots".into(),
        );
    }
    if footer.block_offsets != block_starts {
        issue(
            None,
            "index",
            "block offsets in the footer do not match the entries".into(),
        );
    }
    if let Some(index) = &footer.frame_offsets
        && !index
            .iter()
            .map(|&o| u64::from(o))
            .eq(frame_offsets.iter().copied())
    {
        issue(
            None,
            "index",
            "the footer's frame index does not match the entries".into(),
        );
    }
    if count > 0 && readable && (rec.min_time_ms != min_t || rec.max_time_ms != max_t) {
        issue(
            None,
            "record",
            "record's first/last event times do not match the entries".into(),
        );
    }
    out.header = Some(header);
    out.record = Some(footer.record.clone());
    out.unchecked = unchecked;
    out
}

/// Checks the sealed segments in windows on a few threads.
fn check_window(
    paths: &LedgerPaths,
    dicts: &DictStore,
    numbers: &[u64],
    threads: usize,
) -> Vec<SegmentCheck> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::with_capacity(numbers.len()));
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(n) = numbers.get(i) else { break };
                    let check = check_segment(&paths.segment(*n, true), *n, dicts);
                    // A poisoned lock means another checker panicked; its
                    // segment is then reported missing by the caller.
                    if let Ok(mut r) = results.lock() {
                        r.push(check);
                    }
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_default();
    results.sort_by_key(|c| c.number);
    results
}

fn format_ms(ms: i64) -> Option<String> {
    crate::event::Timestamp::from_unix_ms(ms)
        .ok()
        .map(|t| t.to_string())
}

/// A key transition in the history must match the log: the old key's last
/// checkpoint is the log at its size, and its last segment is the entry.
fn check_handoff(report: &mut VerifyReport, h: &Handoff, record: &SegmentRecord, root: Hash) {
    let segment = Some(record.number);
    if root != h.root {
        report.issue(
            segment,
            Some(h.transition.index),
            "key_transition",
            format!(
                "the first {} segments do not match the retired key's last checkpoint",
                h.transition.size
            ),
        );
    }
    if let Err(e) = key_history::check_entry_segment(h, record) {
        report.issue(segment, Some(h.transition.index), e.kind(), e.to_string());
    }
}

/// Verifies the ledger in `data_dir` against `verifier`. `since` is the text of
/// an older signed checkpoint the log must still extend.
pub fn verify_data_dir(
    data_dir: &Path,
    verifier: &NoteVerifier,
    since: Option<&str>,
) -> Result<VerifyReport, VerifyError> {
    verify_data_dir_witnessed(data_dir, verifier, since, None)
}

/// [`verify_data_dir`], also requiring a checkpoint cosigned by a quorum of
/// `witness` that the log extends (`ledger/checkpoint.witnessed`).
pub fn verify_data_dir_witnessed(
    data_dir: &Path,
    verifier: &NoteVerifier,
    since: Option<&str>,
    witness: Option<&super::witnessed::WitnessPolicy>,
) -> Result<VerifyReport, VerifyError> {
    let paths = LedgerPaths::new(data_dir);
    if !paths.ledger.is_dir() {
        return Err(VerifyError::NotADataDir(data_dir.to_owned()));
    }
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(4);
    let mut report = VerifyReport {
        ok: false,
        segments: 0,
        events: 0,
        first_time: None,
        last_time: None,
        checkpoint: None,
        since: None,
        unsealed_events: 0,
        uncovered_segments: 0,
        unverified: Vec::new(),
        errors: Vec::new(),
        errors_omitted: 0,
        warnings: Vec::new(),
        payloads_unchecked: 0,
        witnessed: None,
        key_transitions: Vec::new(),
    };

    // Signing keys: `verifier` and the rotations the key history follows from it.
    let keys = key_history::verifier_chain(&paths.ledger, verifier).unwrap_or_else(|e| {
        report.issue(None, None, e.kind(), e.to_string());
        KeyChain::single(verifier)
    });
    report.key_transitions = keys
        .handoffs()
        .iter()
        .map(|h| KeyTransitionSummary {
            size: h.transition.size,
            index: h.transition.index,
            old_key_id: hex::encode(h.transition.old.key_id()),
            new_key_id: hex::encode(h.transition.new.key_id()),
        })
        .collect();
    // The checkpoint is read first, so segments sealed while we run are simply
    // reported as not yet covered.
    let checkpoint =
        match crate::bounded::read_to_string(&paths.checkpoint, note::MAX_NOTE_LEN as u64) {
            Ok(text) => match keys.open_checkpoint(&text) {
                Ok(cp) => Some(cp),
                Err(e) => {
                    report.issue(None, None, e.kind(), e.to_string());
                    None
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                report.issue(
                    None,
                    None,
                    "no_checkpoint",
                    "the ledger has no signed checkpoint".into(),
                );
                None
            }
            Err(e) => {
                report.issue(
                    None,
                    None,
                    "io",
                    format!("{}: {e}", paths.checkpoint.display()),
                );
                None
            }
        };
    let old = match since.map(|text| keys.open_checkpoint(text)) {
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

    let (sealed, open) = list_segments(&paths.segments)?;
    let highest = sealed.last().map_or(0, |n| n + 1);
    let stored_tree = TreeStore::open_read_only(&paths.tree).ok();
    // A derived file, so not an error; but say when a check did not run.
    match &stored_tree {
        None if paths.tree.exists() => report.warnings.push(
            "tree/level-00 is malformed: record_rewritten was not checked (the writer rebuilds it)"
                .into(),
        ),
        Some(t) if t.size() < highest => report.warnings.push(format!(
            "tree/level-00 holds {} of {highest} segment records: record_rewritten was not checked for the rest",
            t.size()
        )),
        _ => {}
    }
    // Each dictionary is read and hash-checked once per run.
    let dicts = DictStore::new(&paths.dicts);
    let mut frontier = Frontier::new();
    // The log tree after each segment, so any checkpoint's size can be
    // compared afterwards (56 bytes per segment).
    let mut prefix = vec![Prefix {
        root: frontier.root(),
        end_index: 0,
        min_t: i64::MAX,
        max_t: i64::MIN,
    }];
    // The cosigned checkpoint is the log key's of its size (after a rotation
    // it may be the old key's or the new one's).
    let witnessed_key = crate::bounded::read_to_string(
        &paths.ledger.join(super::witnessed::WITNESSED_FILE),
        note::MAX_NOTE_LEN as u64,
    )
    .ok()
    .and_then(|text| note::parse_unverified_checkpoint(&text).ok())
    .and_then(|cp| keys.key_for(cp.size).ok())
    .unwrap_or(keys.current());
    let witnessed = witness.map(|w| super::witnessed::load(&paths.ledger, witnessed_key, w));
    let mut prev: Option<SegmentRecord> = None;
    let mut chain_known = true;
    let (mut min_t, mut max_t) = (i64::MAX, i64::MIN);
    let root_at = |prefix: &[Prefix], size: u64| {
        usize::try_from(size)
            .ok()
            .and_then(|i| prefix.get(i))
            .map(|p| p.root)
    };
    let mut present = sealed.iter().peekable();

    let mut start = 0u64;
    while start < highest {
        let end = (start + WINDOW).min(highest);
        let mut numbers = Vec::new();
        while let Some(n) = present.next_if(|n| **n < end) {
            numbers.push(*n);
        }
        let checks = check_window(&paths, &dicts, &numbers, threads);
        let mut checks = checks.into_iter().peekable();
        for s in start..end {
            let Some(check) = checks.next_if(|c| c.number == s) else {
                report.issue(
                    Some(s),
                    None,
                    "missing_segment",
                    format!("segment {s} is missing"),
                );
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
            if let Some(stored) = stored_tree
                .as_ref()
                .filter(|t| t.size() > s)
                .and_then(|t| t.node(0, s).ok())
                && stored != leaf
            {
                report.issue(
                    Some(s),
                    None,
                    "record_rewritten",
                    "segment record differs from the one recorded in the log tree when it was sealed".into(),
                );
            }
            frontier.push(leaf);
            for h in keys.handoffs() {
                if h.transition.size == frontier.size() {
                    check_handoff(&mut report, h, &record, frontier.root());
                }
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

    // A service sealing while this ran may have signed a newer checkpoint:
    // read it again before calling a long uncovered tail unsigned.
    let mut checkpoint = checkpoint;
    if checkpoint
        .as_ref()
        .is_some_and(|c| highest.saturating_sub(c.size) > CRASH_WINDOW_SEGMENTS)
        && let Ok(text) =
            crate::bounded::read_to_string(&paths.checkpoint, note::MAX_NOTE_LEN as u64)
        && let Ok(newer) = keys.open_checkpoint(&text)
        && checkpoint.as_ref().is_some_and(|c| newer.size > c.size)
        && root_at(&prefix, newer.size) == Some(newer.root)
    {
        checkpoint = Some(newer);
    }
    let root_at_checkpoint = checkpoint.as_ref().and_then(|c| root_at(&prefix, c.size));
    let root_at_since = old.as_ref().and_then(|c| root_at(&prefix, c.size));
    // Segments a genuine signed checkpoint covers: only their events count.
    let mut covered = 0u64;
    if let Some(cp) = &checkpoint {
        report.checkpoint = Some(CheckpointSummary {
            size: cp.size,
            root: B64.encode(cp.root),
        });
        if cp.size > highest {
            report.issue(
                Some(highest),
                None,
                "truncated",
                format!(
                    "the checkpoint covers {} segments but the log has {highest}",
                    cp.size
                ),
            );
        } else if root_at_checkpoint != Some(cp.root) {
            report.issue(
                None,
                None,
                "checkpoint_mismatch",
                format!(
                    "the first {} segments do not hash to the signed checkpoint root",
                    cp.size
                ),
            );
        }
        if cp.size <= highest && root_at_checkpoint == Some(cp.root) {
            covered = cp.size;
        }
    }
    let verified_size = usize::try_from(covered)
        .unwrap_or(usize::MAX)
        .min(prefix.len() - 1);
    // `prefix` starts with the empty log and `verified_size < prefix.len()`.
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
    if checkpoint.as_ref().is_some_and(|c| c.size == covered)
        && report.uncovered_segments > CRASH_WINDOW_SEGMENTS
    {
        report.issue(
            Some(covered),
            None,
            "unsigned_tail",
            format!(
                "segments {covered}..{highest} are not covered by the signed checkpoint; a crash between sealing \
                 and signing leaves at most {CRASH_WINDOW_SEGMENTS}, so they were appended without the signing key"
            ),
        );
    } else if report.uncovered_segments > 0
        && checkpoint.as_ref().is_some_and(|c| c.size == covered)
    {
        report.warnings.push(format!(
            "{} sealed segment(s) are newer than the checkpoint and not yet covered by a signature; \
             their events are not counted as verified",
            report.uncovered_segments
        ));
    }
    for h in keys
        .handoffs()
        .iter()
        .filter(|h| h.transition.size > highest)
    {
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
        report.since = Some(CheckpointSummary {
            size: old.size,
            root: B64.encode(old.root),
        });
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
        } else if root_at_since != Some(old.root) {
            report.issue(
                None,
                None,
                "rewritten",
                format!(
                    "the first {} segments no longer match the older checkpoint",
                    old.size
                ),
            );
        }
    }

    if let Some(w) = witnessed {
        let root_at_witnessed = w.as_ref().ok().and_then(|w| root_at(&prefix, w.size()));
        let (summary, issue) = super::witnessed::finish(w, root_at_witnessed, highest);
        report.witnessed = summary;
        if let Some((kind, detail)) = issue {
            report.issue(None, None, kind, detail);
        }
    }
    // The open segment: durable but not yet sealed, so only its framing is checked.
    // The writer refuses a directory with any other `.open` file (§8.3).
    if open.len() > 1 || open.first().is_some_and(|&n| n != highest) {
        report.warnings.push(format!(
            "unexpected open segment(s) {open:?} after {highest} sealed segments: the writer refuses to open this directory"
        ));
    }
    if let Some(n) = open.first() {
        let path = paths.segment(*n, false);
        match FrameReader::open_opts(&path, &dicts, true) {
            Ok(mut reader) => {
                while let Ok(Some(_)) = reader.next_frame() {
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
        report.first_time = format_ms(min_t);
        report.last_time = format_ms(max_t);
    }
    report.ok = report.errors.is_empty() && report.errors_omitted == 0;
    Ok(report)
}

//! Inclusion and consistency proof documents (LEDGER.md §7 "Proofs"),
//! checked offline with nothing but the proof and the log's public key.
//!
//! An inclusion proof chains three steps: entry -> segment root (RFC 9162
//! path in the segment tree), segment record -> log root (path in the log
//! tree), log root -> signed checkpoint. A consistency proof shows an older
//! (size, root) is a prefix of the checkpointed log. Documents are read
//! under the strict JSON rule (`json`) with no unknown members.

use crate::hash::{Hash, leaf_hash};
use crate::keys::{KeyChain, KeyHistory, KeyHistoryError, TransitionRecord};
use crate::merkle;
use crate::note::{Checkpoint, NoteVerifier};
use crate::record::{RecordError, SegmentRecord};
use crate::verified::Verified;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use std::fmt::Display;

pub const INCLUSION_FORMAT: &str = "sealtrail-inclusion-proof/v1";
pub const CONSISTENCY_FORMAT: &str = "sealtrail-consistency-proof/v1";
/// A path in a tree of at most 2^64 leaves has at most 64 hashes.
const MAX_PATH: usize = 64;
/// Largest proof document read (a checkpoint note is at most 1 MiB).
pub const MAX_PROOF_LEN: usize = 4 << 20;

/// Why a proof did not verify.
#[derive(Debug, thiserror::Error)]
pub enum ProofCheckError {
    #[error("segment record: {0}")]
    Record(#[from] RecordError),
    #[error(transparent)]
    KeyHistory(#[from] KeyHistoryError),
    /// Any other check that failed, in words.
    #[error("{0}")]
    Invalid(String),
}

/// Fails with `why` unless `ok`.
fn ensure(ok: bool, why: impl FnOnce() -> String) -> Result<(), ProofCheckError> {
    if ok { Ok(()) } else { Err(ProofCheckError::Invalid(why())) }
}

/// For `map_err`: the error `e` as `"{what}: {e}"`.
fn failed<E: Display>(what: &str) -> impl FnOnce(E) -> ProofCheckError + '_ {
    move |e| ProofCheckError::Invalid(format!("{what}: {e}"))
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SegmentStep {
    /// Base64 of the segment record bytes.
    pub record: String,
    /// Position of the entry inside its segment.
    pub leaf_index: u64,
    pub path: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LogStep {
    /// The segment number: the record's position in the log tree.
    pub leaf_index: u64,
    pub tree_size: u64,
    pub path: Vec<String>,
}

/// Everything needed to show, offline, that one entry is in the signed log.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct InclusionProof {
    pub format: String,
    /// Global index of the event.
    pub index: u64,
    /// The entry's canonical bytes (UTF-8 JSON) exactly as hashed.
    pub entry: String,
    pub segment: SegmentStep,
    pub log: LogStep,
    /// The signed checkpoint note the proof ends at.
    pub checkpoint: String,
    /// The log's key transitions (§14), so a verifier holding the first key
    /// reaches the checkpoint's; absent when the key never changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_history: Option<Vec<TransitionRecord>>,
}

/// Shows that the log of `old_size` segments with `old_root` is a prefix of
/// the checkpointed log.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyProof {
    pub format: String,
    pub old_size: u64,
    pub old_root: String,
    pub new_size: u64,
    pub new_root: String,
    pub path: Vec<String>,
    pub checkpoint: String,
    /// As in [`InclusionProof`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_history: Option<Vec<TransitionRecord>>,
}

fn decode_hash(s: &str, field: &str) -> Result<Hash, ProofCheckError> {
    let hash = B64.decode(s).ok().and_then(|b| Hash::try_from(b).ok());
    let why = || format!("{field} is not valid base64 of a 32-byte hash");
    hash.ok_or_else(|| ProofCheckError::Invalid(why()))
}

fn decode_path(path: &[String], field: &str) -> Result<Vec<Hash>, ProofCheckError> {
    ensure(path.len() <= MAX_PATH, || format!("{field} has more than {MAX_PATH} hashes"))?;
    path.iter().map(|h| decode_hash(h, field)).collect()
}

/// The signing keys a proof is checked with: `verifier` (the first key, or
/// any later one) and the transitions the proof carries.
fn proof_chain(
    carried: Option<&[TransitionRecord]>,
    verifier: &NoteVerifier,
) -> Result<KeyChain, KeyHistoryError> {
    KeyChain::follow(verifier, &KeyHistory { transitions: carried.unwrap_or_default().to_vec() })
}

/// Opens a checkpoint (`what`: "checkpoint" or "old checkpoint") with the
/// key current at its size; a plain signature failure keeps the error it has
/// without a key history.
fn open_with(keys: &KeyChain, text: &str, what: &str) -> Result<Checkpoint, ProofCheckError> {
    keys.open_checkpoint(text).map_err(|e| match e {
        KeyHistoryError::Checkpoint(n) => failed(what)(n),
        e => e.into(),
    })
}

/// Checks an inclusion proof offline against the log's public key (the
/// first key, or a later one, with the transitions the proof carries).
pub fn verify_inclusion_proof(
    proof: &InclusionProof,
    verifier: &NoteVerifier,
) -> Result<Verified<Inclusion>, ProofCheckError> {
    verify_inclusion_with_keys(proof, &proof_chain(proof.key_history.as_deref(), verifier)?)
}

/// As [`verify_inclusion_proof`] with an already verified key history (an
/// evidence bundle's); the proof's own `key_history` is not used.
pub fn verify_inclusion_with_keys(
    proof: &InclusionProof,
    keys: &KeyChain,
) -> Result<Verified<Inclusion>, ProofCheckError> {
    ensure(proof.format == INCLUSION_FORMAT, || format!("not a {INCLUSION_FORMAT}"))?;
    let cp = open_with(keys, &proof.checkpoint, "checkpoint")?;
    let record_bytes = B64.decode(&proof.segment.record).map_err(|_| RecordError::Truncated)?;
    let record = SegmentRecord::from_bytes(&record_bytes)?;
    ensure(record.origin == cp.origin, || {
        format!("segment record belongs to log {:?}, checkpoint to {:?}", record.origin, cp.origin)
    })?;
    let (index, first, end) = (proof.index, record.first_index, record.end_index());
    ensure((first..end).contains(&index), || {
        format!("event {index} is not in segment {} (events {first}..{end})", record.number)
    })?;
    let leaf_in_segment = index - first;
    // (field, its value, what it must match, that value)
    let positions = [
        ("segment leaf index", proof.segment.leaf_index, "event index", leaf_in_segment),
        ("log leaf index", proof.log.leaf_index, "segment number", record.number),
        ("log tree size", proof.log.tree_size, "the checkpoint size", cp.size),
    ];
    for (field, got, what, want) in positions {
        ensure(got == want, || format!("{field} {got} does not match {what} {want}"))?;
    }
    let entry = proof.entry.as_bytes();
    let seg_path = decode_path(&proof.segment.path, "segment.path")?;
    let leaf = leaf_hash(entry);
    let seg_root =
        merkle::root_from_inclusion_proof(leaf_in_segment, record.count, &leaf, &seg_path)
            .map_err(failed("entry is not included in its segment"))?;
    ensure(seg_root == record.root, || {
        "entry hashes to a segment root that differs from the segment record's".into()
    })?;
    let log_path = decode_path(&proof.log.path, "log.path")?;
    let leaf = leaf_hash(&record_bytes);
    merkle::verify_inclusion(record.number, cp.size, &leaf, &log_path, &cp.root)
        .map_err(failed("segment record is not included in the checkpointed log"))?;
    Ok(Verified::new(Inclusion { index, entry: entry.to_vec(), checkpoint: cp }))
}

/// Checks a consistency proof offline. With `old_checkpoint`, the old size and
/// root are taken from that signed note instead of the proof's own fields.
pub fn verify_consistency_proof(
    proof: &ConsistencyProof,
    verifier: &NoteVerifier,
    old_checkpoint: Option<&str>,
) -> Result<Verified<Consistency>, ProofCheckError> {
    ensure(proof.format == CONSISTENCY_FORMAT, || format!("not a {CONSISTENCY_FORMAT}"))?;
    let keys = proof_chain(proof.key_history.as_deref(), verifier)?;
    let new = open_with(&keys, &proof.checkpoint, "checkpoint")?;
    let (old_size, old_root) = match old_checkpoint {
        Some(text) => {
            let old = open_with(&keys, text, "old checkpoint")?;
            ensure(old.origin == new.origin, || {
                format!("old checkpoint is for log {:?}, new for {:?}", old.origin, new.origin)
            })?;
            (old.size, old.root)
        }
        None => (proof.old_size, decode_hash(&proof.old_root, "old_root")?),
    };
    let got = proof.new_size;
    ensure(got == new.size, || {
        format!("log tree size {got} does not match the checkpoint size {}", new.size)
    })?;
    // The proof's own copies of the roots and sizes must agree with what is
    // actually checked, so a reader of the file is never shown other values.
    let disagree = |what: &str| format!("proof fields disagree: {what}");
    ensure(decode_hash(&proof.new_root, "new_root")? == new.root, || {
        disagree("new_root differs from the checkpoint root")
    })?;
    let same_old =
        proof.old_size == old_size && decode_hash(&proof.old_root, "old_root")? == old_root;
    ensure(same_old, || disagree("old_size/old_root differ from the older checkpoint"))?;
    let path = decode_path(&proof.path, "path")?;
    merkle::verify_consistency(old_size, new.size, &path, &old_root, &new.root)
        .map_err(failed("old root is not a prefix of the checkpointed log"))?;
    Ok(Verified::new(Consistency { old_size, new_size: new.size }))
}

/// An event shown to be in the signed log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inclusion {
    pub index: u64,
    /// The entry's bytes exactly as hashed.
    pub entry: Vec<u8>,
    pub checkpoint: Checkpoint,
}

/// An older log shown to be a prefix of the checkpointed one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Consistency {
    pub old_size: u64,
    pub new_size: u64,
}

/// A parsed proof document of either kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProofDocument {
    Inclusion(InclusionProof),
    Consistency(ConsistencyProof),
}

/// Parses a proof document: strict JSON, `format` selects the kind, no
/// unknown or missing members, integers only where integers belong.
pub fn parse_proof(bytes: &[u8]) -> Result<ProofDocument, ProofCheckError> {
    if bytes.len() > MAX_PROOF_LEN {
        return Err(failed("not a proof")(format!("more than {MAX_PROOF_LEN} bytes")));
    }
    let value = crate::json::parse_strict(bytes).map_err(failed("not a proof"))?;
    match value.get("format").and_then(|f| f.as_str()) {
        Some(INCLUSION_FORMAT) => serde_json::from_value(value).map(ProofDocument::Inclusion),
        Some(CONSISTENCY_FORMAT) => serde_json::from_value(value).map(ProofDocument::Consistency),
        _ => return Err(ProofCheckError::Invalid("not a sealtrail proof".into())),
    }
    .map_err(failed("not a proof"))
}

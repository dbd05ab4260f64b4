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
use crate::merkle::{self, ProofError};
use crate::note::{Checkpoint, NoteError, NoteVerifier};
use crate::record::{RecordError, SegmentRecord};
use crate::verified::Verified;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;

pub const INCLUSION_FORMAT: &str = "sealtrail-inclusion-proof/v1";
pub const CONSISTENCY_FORMAT: &str = "sealtrail-consistency-proof/v1";
/// A path in a tree of at most 2^64 leaves has at most 64 hashes.
const MAX_PATH: usize = 64;
/// Largest proof document read (a checkpoint note is at most 1 MiB).
pub const MAX_PROOF_LEN: usize = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ProofCheckError {
    #[error("not a {0}")]
    Format(&'static str),
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] NoteError),
    #[error("{field} is not valid base64 of a 32-byte hash")]
    Hash { field: &'static str },
    #[error("{0} has more than {MAX_PATH} hashes")]
    PathTooLong(&'static str),
    #[error("segment record: {0}")]
    Record(#[from] RecordError),
    #[error("segment record belongs to log {record:?}, checkpoint to {checkpoint:?}")]
    Origin { record: String, checkpoint: String },
    #[error("event {index} is not in segment {segment} (events {first}..{end})")]
    IndexOutsideSegment { index: u64, segment: u64, first: u64, end: u64 },
    #[error("segment leaf index {got} does not match event index (want {want})")]
    LeafIndex { got: u64, want: u64 },
    #[error("log leaf index {got} does not match segment number {want}")]
    LogLeafIndex { got: u64, want: u64 },
    #[error("log tree size {proof} does not match the checkpoint size {checkpoint}")]
    TreeSize { proof: u64, checkpoint: u64 },
    #[error("entry is not included in its segment: {0}")]
    SegmentPath(ProofError),
    #[error("entry hashes to a segment root that differs from the segment record's")]
    SegmentRoot,
    #[error("segment record is not included in the checkpointed log: {0}")]
    LogPath(ProofError),
    #[error("old root is not a prefix of the checkpointed log: {0}")]
    Consistency(ProofError),
    #[error("old checkpoint: {0}")]
    OldCheckpoint(NoteError),
    #[error("proof fields disagree: {0}")]
    Mismatch(&'static str),
    #[error("not a proof: {0}")]
    Json(String),
    #[error("old checkpoint is for log {old:?}, new for {new:?}")]
    OldOrigin { old: String, new: String },
    #[error(transparent)]
    KeyHistory(#[from] KeyHistoryError),
}

#[derive(Clone, Debug, serde::Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SegmentStep {
    /// Base64 of the segment record bytes.
    pub record: String,
    /// Position of the entry inside its segment.
    pub leaf_index: u64,
    pub path: Vec<String>,
}

#[derive(Clone, Debug, serde::Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LogStep {
    /// The segment number: the record's position in the log tree.
    pub leaf_index: u64,
    pub tree_size: u64,
    pub path: Vec<String>,
}

/// Everything needed to show, offline, that one entry is in the signed log.
#[derive(Clone, Debug, serde::Serialize, Deserialize, PartialEq, Eq)]
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
#[derive(Clone, Debug, serde::Serialize, Deserialize, PartialEq, Eq)]
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

fn decode_hash(s: &str, field: &'static str) -> Result<Hash, ProofCheckError> {
    let bytes = B64.decode(s).map_err(|_| ProofCheckError::Hash { field })?;
    bytes.try_into().map_err(|_| ProofCheckError::Hash { field })
}

fn decode_path(path: &[String], field: &'static str) -> Result<Vec<Hash>, ProofCheckError> {
    if path.len() > MAX_PATH {
        return Err(ProofCheckError::PathTooLong(field));
    }
    path.iter().map(|h| decode_hash(h, field)).collect()
}

/// The signing keys a proof is checked with: `verifier` (the first key, or
/// any later one) and the transitions the proof carries.
fn proof_chain(
    carried: Option<&[TransitionRecord]>,
    verifier: &NoteVerifier,
) -> Result<KeyChain, KeyHistoryError> {
    match carried {
        None | Some([]) => Ok(KeyChain::single(verifier)),
        Some(t) => KeyChain::follow(verifier, &KeyHistory { transitions: t.to_vec() }),
    }
}

/// Opens a checkpoint with the key current at its size; a plain signature
/// failure keeps the error it has without a key history.
fn open_with(
    keys: &KeyChain,
    text: &str,
    bad_note: fn(NoteError) -> ProofCheckError,
) -> Result<Checkpoint, ProofCheckError> {
    keys.open_checkpoint(text).map_err(|e| match e {
        KeyHistoryError::Checkpoint(n) => bad_note(n),
        e => ProofCheckError::KeyHistory(e),
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
    if proof.format != INCLUSION_FORMAT {
        return Err(ProofCheckError::Format(INCLUSION_FORMAT));
    }
    let cp = open_with(keys, &proof.checkpoint, ProofCheckError::Checkpoint)?;
    let record_bytes = B64
        .decode(&proof.segment.record)
        .map_err(|_| ProofCheckError::Record(RecordError::Truncated))?;
    let record = SegmentRecord::from_bytes(&record_bytes)?;
    if record.origin != cp.origin {
        return Err(ProofCheckError::Origin { record: record.origin, checkpoint: cp.origin });
    }
    if proof.index < record.first_index || proof.index >= record.end_index() {
        return Err(ProofCheckError::IndexOutsideSegment {
            index: proof.index,
            segment: record.number,
            first: record.first_index,
            end: record.end_index(),
        });
    }
    let leaf_in_segment = proof.index - record.first_index;
    if proof.segment.leaf_index != leaf_in_segment {
        return Err(ProofCheckError::LeafIndex {
            got: proof.segment.leaf_index,
            want: leaf_in_segment,
        });
    }
    if proof.log.leaf_index != record.number {
        return Err(ProofCheckError::LogLeafIndex {
            got: proof.log.leaf_index,
            want: record.number,
        });
    }
    if proof.log.tree_size != cp.size {
        return Err(ProofCheckError::TreeSize { proof: proof.log.tree_size, checkpoint: cp.size });
    }
    let entry = proof.entry.as_bytes();
    let seg_path = decode_path(&proof.segment.path, "segment.path")?;
    let seg_root = merkle::root_from_inclusion_proof(
        leaf_in_segment,
        record.count,
        &leaf_hash(entry),
        &seg_path,
    )
    .map_err(ProofCheckError::SegmentPath)?;
    if seg_root != record.root {
        return Err(ProofCheckError::SegmentRoot);
    }
    let log_path = decode_path(&proof.log.path, "log.path")?;
    merkle::verify_inclusion(
        record.number,
        cp.size,
        &leaf_hash(&record_bytes),
        &log_path,
        &cp.root,
    )
    .map_err(ProofCheckError::LogPath)?;
    Ok(Verified::new(Inclusion { index: proof.index, entry: entry.to_vec(), checkpoint: cp }))
}

/// Checks a consistency proof offline. With `old_checkpoint`, the old size and
/// root are taken from that signed note instead of the proof's own fields.
pub fn verify_consistency_proof(
    proof: &ConsistencyProof,
    verifier: &NoteVerifier,
    old_checkpoint: Option<&str>,
) -> Result<Verified<Consistency>, ProofCheckError> {
    if proof.format != CONSISTENCY_FORMAT {
        return Err(ProofCheckError::Format(CONSISTENCY_FORMAT));
    }
    let keys = proof_chain(proof.key_history.as_deref(), verifier)?;
    let new = open_with(&keys, &proof.checkpoint, ProofCheckError::Checkpoint)?;
    let (old_size, old_root) = match old_checkpoint {
        Some(text) => {
            let old = open_with(&keys, text, ProofCheckError::OldCheckpoint)?;
            if old.origin != new.origin {
                return Err(ProofCheckError::OldOrigin { old: old.origin, new: new.origin });
            }
            (old.size, old.root)
        }
        None => (proof.old_size, decode_hash(&proof.old_root, "old_root")?),
    };
    if proof.new_size != new.size {
        return Err(ProofCheckError::TreeSize { proof: proof.new_size, checkpoint: new.size });
    }
    // The proof's own copies of the roots and sizes must agree with what is
    // actually checked, so a reader of the file is never shown other values.
    if decode_hash(&proof.new_root, "new_root")? != new.root {
        return Err(ProofCheckError::Mismatch("new_root differs from the checkpoint root"));
    }
    if proof.old_size != old_size || decode_hash(&proof.old_root, "old_root")? != old_root {
        return Err(ProofCheckError::Mismatch(
            "old_size/old_root differ from the older checkpoint",
        ));
    }
    let path = decode_path(&proof.path, "path")?;
    merkle::verify_consistency(old_size, new.size, &path, &old_root, &new.root)
        .map_err(ProofCheckError::Consistency)?;
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
        return Err(ProofCheckError::Json(format!("more than {MAX_PROOF_LEN} bytes")));
    }
    let value =
        crate::json::parse_strict(bytes).map_err(|e| ProofCheckError::Json(e.to_string()))?;
    let json = |e: serde_json::Error| ProofCheckError::Json(e.to_string());
    match value.get("format").and_then(|f| f.as_str()) {
        Some(INCLUSION_FORMAT) => {
            Ok(ProofDocument::Inclusion(InclusionProof::deserialize(value).map_err(json)?))
        }
        Some(CONSISTENCY_FORMAT) => {
            Ok(ProofDocument::Consistency(ConsistencyProof::deserialize(value).map_err(json)?))
        }
        _ => Err(ProofCheckError::Format("sealtrail proof")),
    }
}

//! Inclusion and consistency proofs: built from a data directory by
//! `LedgerReader`, checked offline by `verify_inclusion_proof` /
//! `verify_consistency_proof` (the verifier crate's checks) with nothing but
//! the proof and a public key.
//!
//! An inclusion proof chains three steps: entry -> segment root (path in the
//! segment tree), segment record -> log root (path in the log tree), log root
//! -> signed checkpoint. The JSON shape is documented in docs/LEDGER.md.

use super::dicts::DictStore;
use super::hash::{Hash, Rfc6962};
use super::key_history::{self, KeyHistoryError, TransitionRecord};
use super::keys::NoteVerifier;
use super::log::LedgerPaths;
use super::merkle;
use super::note::{self, Checkpoint, NoteError};
use super::segment::{
    self, BLOCK_SHIFT, Footer, FrameCodec, FrameReader, SegmentError, SegmentHeader,
};
use super::tree_store::{SegmentIndex, TreeStore, TreeStoreError};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use std::fs::File;
use std::path::Path;
use thiserror::Error;

// The proof documents are the verifier crate's (one definition for the
// builder here and every checker).
pub use sealtrail_verify::proof::{
    CONSISTENCY_FORMAT, ConsistencyProof, INCLUSION_FORMAT, InclusionProof, LogStep, SegmentStep,
};

#[derive(Debug, Error)]
pub enum ProofBuildError {
    #[error("event {index} does not exist (the log holds {end} events)")]
    NoSuchEvent { index: u64, end: u64 },
    #[error(
        "event {0} is not sealed yet; it is covered by the next checkpoint (within about a second)"
    )]
    NotSealed(u64),
    #[error("the ledger has no checkpoint yet")]
    NoCheckpoint,
    #[error("tree sizes must satisfy 0 < old <= new <= {latest}; got {old} and {new}")]
    BadSizes { old: u64, new: u64, latest: u64 },
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Segment(#[from] SegmentError),
    #[error(transparent)]
    Tree(#[from] TreeStoreError),
    #[error("checkpoint: {0}")]
    Note(#[from] NoteError),
    #[error("stored data is inconsistent: {0}")]
    Inconsistent(String),
    #[error(transparent)]
    KeyHistory(#[from] KeyHistoryError),
}

/// Why a proof did not verify: the verifier crate's reason.
#[derive(Debug, Error)]
pub enum ProofCheckError {
    #[error(transparent)]
    Check(#[from] sealtrail_verify::proof::ProofCheckError),
    #[error("log key: {0}")]
    Key(String),
}

/// Marker returned by a successful inclusion check; only this module makes one.
#[derive(Debug)]
pub struct VerifiedInclusion {
    index: u64,
    entry: Vec<u8>,
    checkpoint: Checkpoint,
}

impl VerifiedInclusion {
    pub fn index(&self) -> u64 {
        self.index
    }
    pub fn entry(&self) -> &[u8] {
        &self.entry
    }
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }
}

/// Marker returned by a successful consistency check.
#[derive(Debug)]
pub struct VerifiedConsistency {
    pub old_size: u64,
    pub new_size: u64,
}

/// Read-only access to a data directory for building proofs; safe to use
/// beside a running writer.
pub struct LedgerReader {
    paths: LedgerPaths,
    tree: TreeStore,
    index: SegmentIndex,
    checkpoint_text: String,
    checkpoint: Checkpoint,
    /// Dictionaries of compacted segments, loaded once per reader.
    dicts: DictStore,
    /// Key transitions, carried by the proofs built here.
    key_history: Vec<TransitionRecord>,
}

impl LedgerReader {
    pub fn open(data_dir: &Path) -> Result<Self, ProofBuildError> {
        let paths = LedgerPaths::new(data_dir);
        let checkpoint_text =
            match crate::bounded::read_to_string(&paths.checkpoint, note::MAX_NOTE_LEN as u64) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(ProofBuildError::NoCheckpoint);
                }
                Err(source) => {
                    return Err(ProofBuildError::Io {
                        path: paths.checkpoint.clone(),
                        source,
                    });
                }
            };
        let checkpoint = note::parse_unverified_checkpoint(&checkpoint_text)?;
        let tree = TreeStore::open_read_only(&paths.tree)?;
        let index = SegmentIndex::open_read_only(&paths.index)?;
        if tree.size() < checkpoint.size || index.len() < checkpoint.size {
            return Err(ProofBuildError::Inconsistent(format!(
                "checkpoint covers {} segments, the log tree files only {}",
                checkpoint.size,
                tree.size().min(index.len())
            )));
        }
        let key_history = key_history::load_history(&paths.ledger)?.transitions;
        Ok(LedgerReader {
            key_history,
            dicts: DictStore::new(&paths.dicts),
            paths,
            tree,
            index,
            checkpoint_text,
            checkpoint,
        })
    }

    pub fn checkpoint_text(&self) -> &str {
        &self.checkpoint_text
    }

    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    pub fn paths(&self) -> &LedgerPaths {
        &self.paths
    }

    /// The log's key transitions (empty if the key never changed).
    pub fn key_history(&self) -> &[TransitionRecord] {
        &self.key_history
    }

    fn carried_history(&self) -> Option<Vec<TransitionRecord>> {
        (!self.key_history.is_empty()).then(|| self.key_history.clone())
    }

    /// How the frames of the segment open in `file` are stored (its header).
    fn codec(&self, path: &Path, file: &mut File) -> Result<FrameCodec, ProofBuildError> {
        use std::io::{Seek, SeekFrom};
        file.seek(SeekFrom::Start(0))
            .map_err(|source| ProofBuildError::Io {
                path: path.to_owned(),
                source,
            })?;
        let (header, _) = SegmentHeader::read(path, &mut std::io::BufReader::new(&*file))?;
        self.dicts.codec(header.format).map_err(|source| {
            ProofBuildError::Segment(SegmentError::Dict {
                path: path.to_owned(),
                source,
            })
        })
    }

    /// Footer of sealed segment `number`.
    pub fn footer(&self, number: u64) -> Result<(File, Footer), ProofBuildError> {
        let path = self.paths.segment(number, true);
        let mut file = File::open(&path).map_err(|source| ProofBuildError::Io {
            path: path.clone(),
            source,
        })?;
        let footer = Footer::read(&path, &mut file)?;
        Ok((file, footer))
    }

    /// Global index one past the last event the checkpoint covers.
    pub fn covered_events(&self) -> Result<u64, ProofBuildError> {
        match self.checkpoint.size {
            0 => Ok(0),
            n => Ok(self.footer(n - 1)?.1.record.end_index()),
        }
    }

    /// Reads one sealed entry's canonical bytes.
    pub fn entry(&self, index: u64) -> Result<Vec<u8>, ProofBuildError> {
        let (_, entry, _, _, _) = self.locate(index)?;
        Ok(entry)
    }

    /// Past the last sealed segment, an event is either in the open segment
    /// (not sealed yet) or does not exist at all.
    fn unsealed_or_missing(&self, index: u64, sealed_end: u64) -> ProofBuildError {
        let open = self.paths.segment(self.index.len(), false);
        if !open.exists() {
            // Sealed since this reader opened (a live writer): retry.
            if self.paths.segment(self.index.len(), true).exists() {
                return ProofBuildError::NotSealed(index);
            }
            return ProofBuildError::NoSuchEvent {
                index,
                end: sealed_end,
            };
        }
        let Ok(mut frames) = FrameReader::open_with(&open, &self.dicts) else {
            return ProofBuildError::NotSealed(index);
        };
        let mut end = frames.header.first_index;
        loop {
            match frames.next_frame() {
                Ok(Some(_)) => end += 1,
                Ok(None) => break,
                // Unreadable here (e.g. encrypted): do not claim it is missing.
                Err(_) => return ProofBuildError::NotSealed(index),
            }
        }
        if index < end {
            ProofBuildError::NotSealed(index)
        } else {
            ProofBuildError::NoSuchEvent { index, end }
        }
    }

    /// Finds an event: (segment footer, entry bytes, block entries, position in block, segment number).
    #[allow(clippy::type_complexity)]
    fn locate(
        &self,
        index: u64,
    ) -> Result<(Footer, Vec<u8>, Vec<Vec<u8>>, usize, u64), ProofBuildError> {
        let size = self.checkpoint.size;
        let Some(number) = self.index.segment_of(index, u64::MAX)? else {
            return Err(ProofBuildError::NoSuchEvent { index, end: 0 });
        };
        let (mut file, footer) = self.footer(number)?;
        if index >= footer.record.end_index() {
            return Err(if number + 1 >= self.index.len() {
                self.unsealed_or_missing(index, footer.record.end_index())
            } else {
                ProofBuildError::Inconsistent(format!(
                    "segment index places event {index} in segment {number}"
                ))
            });
        }
        if number >= size {
            return Err(ProofBuildError::NotSealed(index));
        }
        let leaf = index - footer.record.first_index;
        let block = (leaf >> BLOCK_SHIFT) as usize;
        let in_block = (leaf & ((1 << BLOCK_SHIFT) - 1)) as usize;
        let block_start = (block as u64) << BLOCK_SHIFT;
        let block_len = (footer.record.count - block_start).min(1 << BLOCK_SHIFT) as usize;
        let offset = *footer.block_offsets.get(block).ok_or_else(|| {
            ProofBuildError::Inconsistent(format!("segment {number} has no block {block}"))
        })?;
        let path = self.paths.segment(number, true);
        let codec = self.codec(&path, &mut file)?;
        let entries = segment::read_block(&path, &mut file, &codec, offset, block_len)?;
        let entry = entries.get(in_block).cloned().ok_or_else(|| {
            ProofBuildError::Inconsistent(format!("block {block} of segment {number} is short"))
        })?;
        Ok((footer, entry, entries, in_block, number))
    }

    /// Builds the inclusion proof of event `index` against the latest checkpoint.
    pub fn inclusion_proof(&self, index: u64) -> Result<InclusionProof, ProofBuildError> {
        let (footer, entry, block_entries, in_block, number) = self.locate(index)?;
        let block = ((index - footer.record.first_index) >> BLOCK_SHIFT) as usize;
        // Path inside the 64-entry block, then from the block root to the segment root.
        let block_tree = segment::block_tree(&block_entries);
        if block_tree.root() != footer.block_roots.get(block).copied() {
            return Err(ProofBuildError::Inconsistent(format!(
                "segment {number}: block {block} does not hash to its recorded root"
            )));
        }
        let top = rs_merkle::MerkleTree::<Rfc6962>::from_leaves(&footer.block_roots);
        let mut seg_path: Vec<Hash> = block_tree.proof(&[in_block]).proof_hashes().to_vec();
        seg_path.extend_from_slice(top.proof(&[block]).proof_hashes());
        let mut tree = TreeStoreRef(&self.tree);
        let log_path = merkle::inclusion_proof(number, self.checkpoint.size, &mut tree)
            .map_err(|e| ProofBuildError::Inconsistent(format!("log path: {e}")))?;
        let entry = String::from_utf8(entry)
            .map_err(|_| ProofBuildError::Inconsistent(format!("event {index} is not utf-8")))?;
        Ok(InclusionProof {
            format: INCLUSION_FORMAT.into(),
            index,
            entry,
            segment: SegmentStep {
                record: B64.encode(footer.record.to_bytes()),
                leaf_index: index - footer.record.first_index,
                path: seg_path.iter().map(|h| B64.encode(h)).collect(),
            },
            log: LogStep {
                leaf_index: number,
                tree_size: self.checkpoint.size,
                path: log_path.iter().map(|h| B64.encode(h)).collect(),
            },
            checkpoint: self.checkpoint_text.clone(),
            key_history: self.carried_history(),
        })
    }

    /// Consistency proof from the log of `old_size` segments to the latest checkpoint.
    pub fn consistency_proof(&self, old_size: u64) -> Result<ConsistencyProof, ProofBuildError> {
        let new_size = self.checkpoint.size;
        if old_size == 0 || old_size > new_size {
            return Err(ProofBuildError::BadSizes {
                old: old_size,
                new: new_size,
                latest: new_size,
            });
        }
        let mut tree = TreeStoreRef(&self.tree);
        let path = merkle::consistency_proof(old_size, new_size, &mut tree)
            .map_err(|e| ProofBuildError::Inconsistent(format!("consistency path: {e}")))?;
        Ok(ConsistencyProof {
            format: CONSISTENCY_FORMAT.into(),
            old_size,
            old_root: B64.encode(self.tree.root(old_size)?),
            new_size,
            new_root: B64.encode(self.checkpoint.root),
            path: path.iter().map(|h| B64.encode(h)).collect(),
            checkpoint: self.checkpoint_text.clone(),
            key_history: self.carried_history(),
        })
    }
}

/// Read-only adapter so proofs can be generated from a shared tree store.
struct TreeStoreRef<'a>(&'a TreeStore);

impl merkle::SubtreeHashes for TreeStoreRef<'_> {
    type Error = TreeStoreError;
    fn subtree_hash(&mut self, start: u64, end: u64) -> Result<Hash, TreeStoreError> {
        self.0.range_hash(start, end)
    }
}

/// The crate's form of a proof document (the same JSON shape).
fn crate_key(verifier: &NoteVerifier) -> Result<sealtrail_verify::NoteVerifier, ProofCheckError> {
    super::verify::crate_verifier(verifier).map_err(|e| ProofCheckError::Key(e.to_string()))
}

/// Checks an inclusion proof offline against the log's public key (the
/// first key, or a later one, with the transitions the proof carries): the
/// verifier crate's check.
pub fn verify_inclusion_proof(
    proof: &InclusionProof,
    verifier: &NoteVerifier,
) -> Result<VerifiedInclusion, ProofCheckError> {
    let v =
        sealtrail_verify::proof::verify_inclusion_proof(proof, &crate_key(verifier)?)?.into_inner();
    Ok(VerifiedInclusion {
        index: v.index,
        entry: v.entry,
        checkpoint: super::verify::service_checkpoint(v.checkpoint),
    })
}

/// Checks a consistency proof offline (the verifier crate's check). With
/// `old_checkpoint`, the old size and root are taken from that signed note
/// instead of the proof's own fields.
pub fn verify_consistency_proof(
    proof: &ConsistencyProof,
    verifier: &NoteVerifier,
    old_checkpoint: Option<&str>,
) -> Result<VerifiedConsistency, ProofCheckError> {
    let v = sealtrail_verify::proof::verify_consistency_proof(
        proof,
        &crate_key(verifier)?,
        old_checkpoint,
    )?;
    Ok(VerifiedConsistency {
        old_size: v.old_size,
        new_size: v.new_size,
    })
}

//! Offline verification of a whole data directory: the standalone verifier
//! crate's check (`crates/sealtrail-verify`, module `dir`), called with the
//! service's key types. The checks themselves exist only in the crate; this
//! adapter converts keys, the witness policy and a KEK registered for the
//! directory, and re-exports the report.

use super::keys::NoteVerifier;
use super::witnessed::WitnessPolicy;
use std::path::{Path, PathBuf};
use thiserror::Error;

pub use sealtrail_verify::dir::{
    CRASH_WINDOW_SEGMENTS, CheckpointSummary, Issue, KeyTransitionSummary, Progress,
    UnverifiedRange, VerifyReport,
};
pub use sealtrail_verify::witnessed::WitnessedSummary;

#[derive(Debug, Error)]
pub enum VerifyError {
    #[error("{0} is not a sealtrail data directory (no ledger/ folder)")]
    NotADataDir(PathBuf),
    #[error(transparent)]
    Dir(sealtrail_verify::dir::DirError),
    #[error("key {0}: {1}")]
    Key(String, String),
}

/// The log's key as the crate's type (parsed from its vkey line).
pub fn crate_verifier(v: &NoteVerifier) -> Result<sealtrail_verify::NoteVerifier, VerifyError> {
    let vkey = v.to_vkey();
    sealtrail_verify::NoteVerifier::from_vkey(&vkey)
        .map_err(|e| VerifyError::Key(vkey, e.to_string()))
}

/// The witness policy as the crate's type.
pub fn crate_policy(p: &WitnessPolicy) -> Result<sealtrail_verify::WitnessPolicy, VerifyError> {
    let witnesses = p
        .witnesses
        .iter()
        .map(|w| {
            let vkey = w.to_vkey();
            sealtrail_verify::NoteVerifier::from_witness_vkey(&vkey)
                .map_err(|e| VerifyError::Key(vkey, e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(sealtrail_verify::WitnessPolicy {
        witnesses,
        quorum: p.quorum,
    })
}

/// A checkpoint the crate verified, as the service's type.
pub fn service_checkpoint(c: sealtrail_verify::note::Checkpoint) -> super::note::Checkpoint {
    super::note::Checkpoint {
        origin: c.origin,
        size: c.size,
        root: c.root,
        extensions: c.extensions,
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
    witness: Option<&WitnessPolicy>,
) -> Result<VerifyReport, VerifyError> {
    verify_data_dir_with(data_dir, verifier, since, witness, None)
}

/// [`verify_data_dir_witnessed`] reporting progress after each window of
/// segments. Encrypted payloads are checked with the KEK registered for the
/// directory in this process (`atrest::register`), if any.
pub fn verify_data_dir_with(
    data_dir: &Path,
    verifier: &NoteVerifier,
    since: Option<&str>,
    witness: Option<&WitnessPolicy>,
    mut progress: Option<&mut dyn FnMut(Progress)>,
) -> Result<VerifyReport, VerifyError> {
    let ledger = data_dir.join("ledger");
    if !ledger.is_dir() {
        return Err(VerifyError::NotADataDir(data_dir.to_owned()));
    }
    let kek = super::atrest::keyring_for_ledger_dir(&ledger).and_then(|r| r.verifier_kek());
    let witness = witness.map(crate_policy).transpose()?;
    let opts = sealtrail_verify::VerifyOptions {
        since,
        kek: kek.as_ref(),
        threads: 0,
        progress: Some(&mut |p| {
            if let Some(f) = progress.as_mut() {
                f(p)
            }
        }),
        witness: witness.as_ref(),
    };
    sealtrail_verify::verify_dir(data_dir, &crate_verifier(verifier)?, opts).map_err(|e| match e {
        sealtrail_verify::dir::DirError::NotADataDir(p) => VerifyError::NotADataDir(p),
        e => VerifyError::Dir(e),
    })
}

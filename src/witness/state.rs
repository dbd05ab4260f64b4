//! What a witness remembers per log: the latest checkpoint it cosigned, kept
//! as the log-signed note in `STATE/<hex SHA-256(origin)>.checkpoint`,
//! replaced atomically and verified with the log key when loaded.

use crate::ledger::hash::{EMPTY_ROOT, Hash, sha256};
use crate::ledger::keys::NoteVerifier;
use crate::ledger::note::{MAX_NOTE_LEN, NoteError};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: stored checkpoint does not verify with the log key(s): {source}")]
    Corrupt { path: PathBuf, source: NoteError },
    #[error("{path}: could not be replaced: {detail}")]
    Write { path: PathBuf, detail: String },
    #[error("more than {max} logs")]
    TooManyLogs { max: usize },
    #[error("a log without a key")]
    NoKey,
}

/// The latest size and root cosigned for one log (size 0, empty root when
/// none yet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Latest {
    pub size: u64,
    pub root: Hash,
}

impl Latest {
    pub const EMPTY: Latest = Latest {
        size: 0,
        root: EMPTY_ROOT,
    };
}

/// One log's state file.
#[derive(Debug)]
pub struct LogState {
    path: PathBuf,
    latest: Latest,
}

impl LogState {
    /// Opens (or starts) the state of the log `verifier` names in `dir`.
    /// `verifiers`: the keys of one origin (more than one across a signing-key
    /// rotation); the stored note must verify with one of them.
    pub fn load(dir: &Path, verifiers: &[NoteVerifier]) -> Result<Self, StateError> {
        let Some(first) = verifiers.first() else {
            return Err(StateError::NoKey);
        };
        let path = dir.join(format!(
            "{}.checkpoint",
            hex::encode(sha256(first.name().as_bytes()))
        ));
        let latest = match crate::bounded::read_to_string(&path, MAX_NOTE_LEN as u64) {
            Ok(text) => {
                let cp = super::server::open_with_any(&text, verifiers).map_err(|source| {
                    StateError::Corrupt {
                        path: path.clone(),
                        source,
                    }
                })?;
                Latest {
                    size: cp.size,
                    root: cp.root,
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Latest::EMPTY,
            Err(source) => return Err(StateError::Io { path, source }),
        };
        Ok(Self { path, latest })
    }

    pub fn latest(&self) -> Latest {
        self.latest
    }

    /// Durably records `note` (already verified, of size/root `latest`)
    /// before it is cosigned.
    pub fn store(&mut self, note: &str, latest: Latest) -> Result<(), StateError> {
        crate::auth::journal::write_atomic(&self.path, note.as_bytes()).map_err(|e| {
            StateError::Write {
                path: self.path.clone(),
                detail: e.to_string(),
            }
        })?;
        self.latest = latest;
        Ok(())
    }
}

//! Signing-key history: the transitions from a log's first key to its
//! current one, and the rule for which key signs a checkpoint of a size.
//!
//! A transition is a C2SP signed note (body below) signed by the OLD key
//! (authority) and by the NEW key (proof of possession):
//!
//! ```text
//! sealtrail key transition v1
//! <origin>
//! <size S>
//! <entry index I>
//! <old vkey>
//! <new vkey>
//! ```
//!
//! The note is logged as event I (`admin/key_rotation`, attribute
//! `key_transition`), alone in segment S-1, and the OLD key's checkpoint of
//! size S (its last one) is kept beside it, so OLD vouches for the history up
//! to and including the handover. Checkpoints of size <= S are signed by OLD,
//! of size > S by NEW. The history lives in `DATA/ledger/key-history.json`
//! (see docs/LEDGER.md, "Key history").
//!
//! The format and every check (transition notes, `KeyChain`, handoff and
//! entry checks) are the verifier crate's (`sealtrail_verify::keys`); this
//! module keeps the writer's side: signing a transition, the writer's own
//! chain, and reading and writing the history file.

use std::io::Write;
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::keys::{NoteSigner, NoteVerifier};
use super::note::{self, NoteError};

pub use sealtrail_verify::keys::{
    Handoff, KEY_HISTORY_FILE, KeyChain, KeyHistory, MAX_KEY_HISTORY_LEN, MAX_TRANSITIONS,
    TRANSITION_HEADER, Transition, TransitionRecord, check_entry_segment, open_transition,
};

/// Attribute of the logged `admin/key_rotation` event holding the note.
pub const ENTRY_ATTR: &str = "key_transition";

#[derive(Debug, Error)]
pub enum KeyHistoryError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The history or a checkpoint failed one of the verifier crate's checks.
    #[error(transparent)]
    Verify(#[from] sealtrail_verify::keys::KeyHistoryError),
    #[error("key {0}: {1}")]
    Key(String, String),
    #[error(
        "signing key {given} is not the log's current key {current} (see {KEY_HISTORY_FILE}): \
         point [ledger] key_file at the current key"
    )]
    NotCurrentKey { given: String, current: String },
}

impl KeyHistoryError {
    /// The `kind` of a report's issue for this error.
    pub fn kind(&self) -> &'static str {
        match self {
            KeyHistoryError::Verify(e) => e.kind(),
            _ => "key_history",
        }
    }
}

/// `v` as the verifier crate's key (through its vkey line).
pub fn crate_key(v: &NoteVerifier) -> Result<sealtrail_verify::NoteVerifier, KeyHistoryError> {
    let vkey = v.to_vkey();
    sealtrail_verify::NoteVerifier::from_vkey(&vkey)
        .map_err(|e| KeyHistoryError::Key(vkey, e.to_string()))
}

/// Signs the transition's body with `old` and adds `new`'s signature.
pub fn sign_transition(
    t: &Transition,
    old: &NoteSigner,
    new: &NoteSigner,
) -> Result<String, NoteError> {
    let body = t.to_body();
    let by_old = note::sign_note(&body, old)?;
    let by_new = note::sign_note(&body, new)?;
    // Both notes are `body \n sigline \n`: keep the new key's line.
    let line = by_new
        .get(body.len() + 1..)
        .ok_or(NoteError::NoSignatureBlock)?;
    Ok(format!("{by_old}{line}"))
}

/// The writer's view: its own history followed from its first key, whose
/// current key must be `signer` (else `NotCurrentKey`, naming both ids).
pub fn writer_chain(ledger_dir: &Path, signer: &NoteVerifier) -> Result<KeyChain, KeyHistoryError> {
    own_chain(&load_history(ledger_dir)?, signer)
}

/// `history` followed from its own first key; its current key must be
/// `signer` (the writer's, or a bundle builder's).
pub fn own_chain(history: &KeyHistory, signer: &NoteVerifier) -> Result<KeyChain, KeyHistoryError> {
    let signer = crate_key(signer)?;
    let first = match history.transitions.first() {
        None => return Ok(KeyChain::single(&signer)),
        Some(rec) => open_transition(0, &rec.note)?.old,
    };
    let chain = KeyChain::follow(&first, history)?;
    if chain.current() != &signer {
        return Err(KeyHistoryError::NotCurrentKey {
            given: hex::encode(signer.key_id()),
            current: hex::encode(chain.current().key_id()),
        });
    }
    Ok(chain)
}

/// Path of the history file in the ledger folder `DATA/ledger/`.
pub fn history_path(ledger_dir: &Path) -> PathBuf {
    ledger_dir.join(KEY_HISTORY_FILE)
}

/// Parses a history file's bytes: strict JSON, unknown members refused.
pub fn parse_history(bytes: &[u8]) -> Result<KeyHistory, KeyHistoryError> {
    Ok(sealtrail_verify::keys::parse_history(bytes)?)
}

/// Reads `DATA/ledger/key-history.json`; a missing file is an empty history.
pub fn load_history(ledger_dir: &Path) -> Result<KeyHistory, KeyHistoryError> {
    let path = history_path(ledger_dir);
    match crate::bounded::read_to_string(&path, MAX_KEY_HISTORY_LEN) {
        Ok(text) => parse_history(text.as_bytes()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KeyHistory::default()),
        Err(source) => Err(KeyHistoryError::Io { path, source }),
    }
}

/// Replaces the history file atomically (temporary file, fsync, rename,
/// fsync of the folder).
pub fn write_history(ledger_dir: &Path, history: &KeyHistory) -> Result<(), KeyHistoryError> {
    let path = history_path(ledger_dir);
    let tmp = ledger_dir.join(format!("{KEY_HISTORY_FILE}.tmp"));
    let io = |p: &Path| {
        let p = p.to_owned();
        move |source| KeyHistoryError::Io { path: p, source }
    };
    let mut text = serde_json::to_string_pretty(history).map_err(|e| {
        KeyHistoryError::Verify(sealtrail_verify::keys::KeyHistoryError::Json(e.to_string()))
    })?;
    text.push('\n');
    let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(text.as_bytes()).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    std::fs::File::open(ledger_dir)
        .and_then(|d| d.sync_all())
        .map_err(io(ledger_dir))
}

#[cfg(test)]
mod tests;

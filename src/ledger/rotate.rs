//! Signing-key rotation (`sealtrail key rotate`): under the directory lock,
//! the old key signs a transition to the new one, the transition is logged
//! as an `admin/key_rotation` event alone in its own segment, sealed under
//! the old key, and the key history gains the transition with the old key's
//! last checkpoint. From then on the writer accepts only the new key.
//!
//! Crash safety: until the history file is renamed into place the old key
//! stays current; a crash after sealing leaves a logged transition that no
//! history names, which verification ignores, and rotating again is safe.

use std::io::Write;
use std::path::Path;

use serde::Serialize;
use thiserror::Error;

use super::key_history::{self, ENTRY_ATTR, KeyHistoryError, Transition, TransitionRecord};
use super::keys::{KeyError, NoteSigner};
use super::log::{Ledger, LedgerEntry, LedgerError, LedgerPaths, SealPolicy, sync_dir};
use super::note::NoteError;
use crate::event::{Category, Entry, Event, Outcome, Source, Timestamp, Via};

/// `action` of the logged transition (as for KEK rotation).
pub const ROTATION_ACTION: &str = "key_rotation";

#[derive(Debug, Error)]
pub enum RotateError {
    #[error(
        "data directory {0} is in use: stop the service, rotate, point [ledger] key_file at the new key, start"
    )]
    InUse(std::path::PathBuf),
    #[error("opening the ledger with the old key: {0}")]
    Open(#[source] LedgerError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    History(#[from] KeyHistoryError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("signing the transition: {0}")]
    Sign(#[from] NoteError),
    #[error("the new key is named {new:?} but the log's origin is {origin:?}")]
    Origin { origin: String, new: String },
    #[error("the new key {0} is the old key or was used by this log before")]
    KeyReused(String),
    #[error("the transition entry landed at event {got} (segment {segments}), expected {want}")]
    Misplaced { got: u64, want: u64, segments: u64 },
}

/// What `key rotate` prints.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Rotation {
    pub origin: String,
    pub old_key_id: String,
    pub new_key_id: String,
    pub new_vkey: String,
    /// Checkpoints of this size and smaller are the old key's.
    pub size: u64,
    /// Global index of the logged transition.
    pub index: u64,
}

/// Rotates the signing key of the ledger in `data` from `old` to `new`.
pub fn rotate_signing_key(
    data: &Path,
    old: NoteSigner,
    new: &NoteSigner,
    policy: SealPolicy,
) -> Result<Rotation, RotateError> {
    if new.name() != old.name() {
        return Err(RotateError::Origin {
            origin: old.name().to_owned(),
            new: new.name().to_owned(),
        });
    }
    let (old_v, new_v) = (old.verifier(), new.verifier());
    // The history's checks take the verifier crate's key type.
    let (old_c, new_c) = (
        key_history::crate_key(&old_v)?,
        key_history::crate_key(&new_v)?,
    );
    // The ledger takes the old key; a copy signs the transition.
    let old_copy = NoteSigner::from_pkcs8_pem(old.name(), &old.to_pkcs8_pem()?)?;
    // Opening checks that `old` is the current key and signs the checkpoint.
    let (mut ledger, _) = Ledger::open(data, old, policy).map_err(|e| match e {
        LedgerError::Locked(p) => RotateError::InUse(p),
        e => RotateError::Open(e),
    })?;
    let ledger_dir = ledger.paths().ledger.clone();
    let mut history = key_history::load_history(&ledger_dir)?;
    let chain = key_history::writer_chain(&ledger_dir, &old_v)?;
    if chain.contains(&new_c) || new_v.key_id() == old_v.key_id() {
        return Err(RotateError::KeyReused(hex::encode(new_v.key_id())));
    }
    // The transition goes alone into a fresh segment.
    ledger.seal()?;
    let transition = Transition {
        origin: old_v.name().to_owned(),
        size: ledger.sealed_segments() + 1,
        index: ledger.next_index(),
        old: old_c,
        new: new_c,
    };
    let note = key_history::sign_transition(&transition, &old_copy, new)?;
    let entry = transition_entry(&transition, &note);
    let bytes = entry.canonical_bytes();
    let got = ledger
        .append(&[LedgerEntry {
            time_ms: entry.event.time.unix_ms(),
            bytes: bytes.clone(),
        }])?
        .start;
    ledger.seal()?;
    if got != transition.index || ledger.sealed_segments() != transition.size {
        return Err(RotateError::Misplaced {
            got,
            want: transition.index,
            segments: ledger.sealed_segments(),
        });
    }
    history.transitions.push(TransitionRecord {
        note,
        checkpoint: ledger.checkpoint().to_owned(),
        // Canonical entry bytes are JSON, so UTF-8.
        entry: String::from_utf8_lossy(&bytes).into_owned(),
    });
    key_history::write_history(&ledger_dir, &history)?;
    ledger.close()?;
    Ok(Rotation {
        origin: transition.origin,
        old_key_id: hex::encode(old_v.key_id()),
        new_key_id: hex::encode(new_v.key_id()),
        new_vkey: new_v.to_vkey(),
        size: transition.size,
        index: transition.index,
    })
}

/// Writes `text` (the retired key's last checkpoint) as the checkpoint file,
/// atomically, when the writer finds it missing right after a rotation.
pub(crate) fn restore_checkpoint(paths: &LedgerPaths, text: &str) -> Result<(), LedgerError> {
    let tmp = paths.ledger.join("checkpoint.tmp");
    let io = |p: &Path| {
        let p = p.to_owned();
        move |source| LedgerError::Io { path: p, source }
    };
    let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(text.as_bytes()).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, &paths.checkpoint).map_err(io(&paths.checkpoint))?;
    sync_dir(&paths.ledger)
}

/// The `admin/key_rotation` event that logs the transition.
fn transition_entry(t: &Transition, note: &str) -> Entry {
    let now = Timestamp::now();
    let mut e = Event::new(now, Category::Admin, ROTATION_ACTION, Outcome::Success);
    e.source = Some(Source {
        system: "sealtrail".into(),
        host: None,
    });
    e.message = Some(format!(
        "signing key rotated from {} to {}: checkpoints after size {} are signed by the new key",
        hex::encode(t.old.key_id()),
        hex::encode(t.new.key_id()),
        t.size
    ));
    e.attrs = serde_json::json!({
        ENTRY_ATTR: note,
        "old_key_id": hex::encode(t.old.key_id()),
        "new_key_id": hex::encode(t.new.key_id()),
        "new_vkey": t.new.to_vkey(),
    })
    .as_object()
    .cloned();
    Entry {
        received: now,
        via: Via {
            kind: "cli".into(),
            peer: None,
            principal: None,
        },
        event: e,
        enriched: None,
    }
}

#[cfg(test)]
mod tests;

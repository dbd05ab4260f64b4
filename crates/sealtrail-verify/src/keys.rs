//! Signing-key history (LEDGER.md §14): the transitions from a log's first
//! key to its current one, and which key signs a checkpoint of a size.
//!
//! A transition is a signed note signed by the OLD key (authority) and the
//! NEW key (proof of possession), with the body
//! `sealtrail key transition v1\n<origin>\n<size S>\n<index I>\n<old vkey>\n<new vkey>\n`.
//! It is logged as event I alone in segment S-1, and the old key's
//! checkpoint of size S is kept beside it. Checkpoints of size <= S are the
//! old key's, of size > S the new key's. The history file is
//! `DATA/ledger/key-history.json`; proofs carry it as `key_history`, bundles
//! as the member `key-history.json`.

use crate::hash::{Hash, leaf_hash};
use crate::note::{self, Checkpoint, NoteError, NoteVerifier};
use crate::record::SegmentRecord;
use serde::{Deserialize, Serialize};

/// File name of the key history inside `DATA/ledger/`.
pub const KEY_HISTORY_FILE: &str = "key-history.json";
/// First line of a transition note's body.
pub const TRANSITION_HEADER: &str = "sealtrail key transition v1";
/// A history is a few KiB per transition; bound it before reading.
pub const MAX_KEY_HISTORY_LEN: u64 = 1 << 20;
/// More transitions than this is not a history we accept.
pub const MAX_TRANSITIONS: usize = 256;
/// A transition entry is one small event.
const MAX_ENTRY_LEN: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum KeyHistoryError {
    #[error("key history is not valid JSON of the expected form: {0}")]
    Json(String),
    #[error("key history has {count} transitions, more than {MAX_TRANSITIONS}")]
    TooMany { count: usize },
    #[error("transition {n}: {source}")]
    Note {
        n: usize,
        #[source]
        source: NoteError,
    },
    #[error("transition {n}: malformed body: {reason}")]
    Body { n: usize, reason: &'static str },
    #[error("transition {n}: {reason}")]
    Chain { n: usize, reason: String },
    #[error("transition {n}: not signed by the key it retires ({key_id}): {source}")]
    ForgedTransition {
        n: usize,
        key_id: String,
        #[source]
        source: NoteError,
    },
    #[error("transition {n}: the old key's last checkpoint: {reason}")]
    Handoff { n: usize, reason: String },
    #[error("key {key_id} is not in the log's key history (first key {first}, current {current})")]
    UnknownKey { key_id: String, first: String, current: String },
    #[error(
        "checkpoint of size {size} is signed by key {key_id}, which was retired at size {retired_at}"
    )]
    RetiredKey { size: u64, key_id: String, retired_at: u64 },
    #[error(
        "checkpoint of size {size} predates the trusted key (trust starts after size {trusted_after})"
    )]
    BeforeTrust { size: u64, trusted_after: u64 },
    #[error("checkpoint: {0}")]
    Checkpoint(#[source] NoteError),
    #[error("transition entry {index}: {reason}")]
    Entry { index: u64, reason: String },
}

impl KeyHistoryError {
    /// The `kind` of the verify report's issue for this error.
    pub fn kind(&self) -> &'static str {
        match self {
            KeyHistoryError::RetiredKey { .. } => "retired_key",
            KeyHistoryError::BeforeTrust { .. } => "before_trusted_key",
            KeyHistoryError::Checkpoint(_) => "checkpoint_signature",
            KeyHistoryError::UnknownKey { .. } => "unknown_key",
            KeyHistoryError::ForgedTransition { .. } => "forged_transition",
            KeyHistoryError::Entry { .. } => "key_transition_entry",
            KeyHistoryError::Handoff { .. } => "key_transition",
            _ => "key_history",
        }
    }
}

/// One stored transition: the signed note, the old key's checkpoint of size
/// S, and the canonical bytes of the logged entry (UTF-8 JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransitionRecord {
    pub note: String,
    pub checkpoint: String,
    pub entry: String,
}

/// The key history file: transitions, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyHistory {
    pub transitions: Vec<TransitionRecord>,
}

/// The parsed body of a transition note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub origin: String,
    pub size: u64,
    pub index: u64,
    pub old: NoteVerifier,
    pub new: NoteVerifier,
}

impl Transition {
    pub fn to_body(&self) -> String {
        format!(
            "{TRANSITION_HEADER}\n{}\n{}\n{}\n{}\n{}\n",
            self.origin,
            self.size,
            self.index,
            self.old.to_vkey(),
            self.new.to_vkey()
        )
    }

    /// Strict parse: exactly six newline-terminated lines, canonical decimals.
    fn parse_body(n: usize, body: &str) -> Result<Self, KeyHistoryError> {
        let bad = |reason| KeyHistoryError::Body { n, reason };
        let lines: Vec<&str> =
            body.strip_suffix('\n').ok_or(bad("no final newline"))?.split('\n').collect();
        let [header, origin, size, index, old, new] = lines.as_slice() else {
            return Err(bad("want exactly 6 lines"));
        };
        if *header != TRANSITION_HEADER {
            return Err(bad("first line is not the transition header"));
        }
        let t = Transition {
            origin: (*origin).to_owned(),
            size: parse_decimal(size).ok_or(bad("size is not a canonical decimal"))?,
            index: parse_decimal(index).ok_or(bad("index is not a canonical decimal"))?,
            old: NoteVerifier::from_vkey(old).map_err(|_| bad("old key is not a vkey"))?,
            new: NoteVerifier::from_vkey(new).map_err(|_| bad("new key is not a vkey"))?,
        };
        if t.old.name() != t.origin || t.new.name() != t.origin {
            return Err(bad("a key's name is not the origin"));
        }
        if t.old.key_id() == t.new.key_id() || t.old.verifying_key() == t.new.verifying_key() {
            return Err(bad("old and new key are the same"));
        }
        if t.size == 0 {
            return Err(bad("size 0"));
        }
        Ok(t)
    }
}

fn parse_decimal(s: &str) -> Option<u64> {
    let canonical = !s.is_empty()
        && s.len() <= 20
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'));
    if canonical { s.parse().ok() } else { None }
}

/// The signed text of a note, unverified (to learn which key to check with).
fn note_body(note: &str) -> Option<&str> {
    let split = note.rfind("\n\n")?;
    note.get(..=split)
}

/// Opens transition note `n`: signed by the key it retires and by the one
/// it introduces.
pub fn open_transition(n: usize, text: &str) -> Result<Transition, KeyHistoryError> {
    let unverified =
        note_body(text).ok_or(KeyHistoryError::Note { n, source: NoteError::NoSignatureBlock })?;
    let t = Transition::parse_body(n, unverified)?;
    let by_old = note::open_note(text, &t.old).map_err(|source| {
        KeyHistoryError::ForgedTransition { n, key_id: crate::hex(&t.old.key_id()), source }
    })?;
    let by_new =
        note::open_note(text, &t.new).map_err(|source| KeyHistoryError::Note { n, source })?;
    if by_old != unverified || by_new != unverified {
        return Err(KeyHistoryError::Body { n, reason: "signed text differs from the body" });
    }
    Ok(t)
}

/// What the directory verifier checks per trusted transition.
#[derive(Clone, Debug)]
pub struct Handoff {
    pub transition: Transition,
    /// Root of the old key's checkpoint of size `transition.size`.
    pub root: Hash,
    /// That checkpoint's signed note.
    pub checkpoint: String,
    /// The logged entry's canonical bytes.
    pub entry: Vec<u8>,
}

/// A verified key history, followed from a trust anchor.
#[derive(Clone, Debug)]
pub struct KeyChain {
    /// Keys in order; `keys[k]` signs sizes in `(ends[k-1], ends[k]]`.
    keys: Vec<NoteVerifier>,
    /// `ends[k]` is the size at which `keys[k]` was retired (last is open).
    ends: Vec<u64>,
    /// Index in `keys` of the trust anchor: earlier keys are not trusted.
    anchor: usize,
    anchor_key: NoteVerifier,
    handoffs: Vec<Handoff>,
    records: Vec<TransitionRecord>,
}

impl KeyChain {
    /// A log that never rotated its key.
    pub fn single(key: &NoteVerifier) -> Self {
        KeyChain {
            keys: vec![key.clone()],
            ends: Vec::new(),
            anchor: 0,
            anchor_key: key.clone(),
            handoffs: Vec::new(),
            records: Vec::new(),
        }
    }

    /// Follows `history` from `anchor`, which must be its first key or one
    /// it introduced. Every transition must be signed by the key it retires
    /// (the previous one's new key) and its new key, with growing sizes and
    /// indices. Transitions from the anchor on must carry the retiring
    /// key's checkpoint of their size and their logged entry.
    pub fn follow(anchor: &NoteVerifier, history: &KeyHistory) -> Result<Self, KeyHistoryError> {
        if history.transitions.len() > MAX_TRANSITIONS {
            return Err(KeyHistoryError::TooMany { count: history.transitions.len() });
        }
        let mut chain = KeyChain::single(anchor);
        let mut parsed: Vec<Transition> = Vec::with_capacity(history.transitions.len());
        for (n, rec) in history.transitions.iter().enumerate() {
            let t = open_transition(n, &rec.note)?;
            if let Some(prev) = parsed.last() {
                let chain_err = |reason: String| KeyHistoryError::Chain { n, reason };
                if t.old != prev.new {
                    return Err(chain_err(format!(
                        "retires key {} but the current key is {}",
                        crate::hex(&t.old.key_id()),
                        crate::hex(&prev.new.key_id())
                    )));
                }
                if t.origin != prev.origin {
                    return Err(chain_err("origin changes".into()));
                }
                if parsed.iter().any(|p| p.old == t.new) {
                    return Err(chain_err(format!(
                        "key {} was used before",
                        crate::hex(&t.new.key_id())
                    )));
                }
                if t.size <= prev.size || t.index <= prev.index {
                    return Err(chain_err("size and index must grow".into()));
                }
            }
            parsed.push(t);
        }
        let Some(first) = parsed.first() else {
            return Ok(chain);
        };
        chain.keys = std::iter::once(first.old.clone())
            .chain(parsed.iter().map(|t| t.new.clone()))
            .collect();
        chain.ends = parsed.iter().map(|t| t.size).collect();
        chain.anchor = chain.keys.iter().position(|k| k == anchor).ok_or_else(|| {
            KeyHistoryError::UnknownKey {
                key_id: crate::hex(&anchor.key_id()),
                first: crate::hex(&first.old.key_id()),
                current: crate::hex(&chain.current().key_id()),
            }
        })?;
        for (n, (t, rec)) in parsed.into_iter().zip(&history.transitions).enumerate() {
            if n < chain.anchor {
                continue;
            }
            let handoff = |reason: String| KeyHistoryError::Handoff { n, reason };
            let cp = note::open_checkpoint(&rec.checkpoint, &t.old)
                .map_err(|e| handoff(e.to_string()))?
                .into_inner();
            if cp.size != t.size {
                return Err(handoff(format!(
                    "has size {}, the transition takes effect at {}",
                    cp.size, t.size
                )));
            }
            if rec.entry.len() > MAX_ENTRY_LEN {
                return Err(KeyHistoryError::Entry { index: t.index, reason: "too large".into() });
            }
            check_entry_bytes(&t, &rec.note, rec.entry.as_bytes())?;
            chain.handoffs.push(Handoff {
                transition: t,
                root: cp.root,
                checkpoint: rec.checkpoint.clone(),
                entry: rec.entry.clone().into_bytes(),
            });
        }
        chain.records = history.transitions.clone();
        Ok(chain)
    }

    /// Whether `key` is one of the history's keys.
    pub fn contains(&self, key: &NoteVerifier) -> bool {
        self.keys.contains(key)
    }

    /// The key that signs checkpoints now.
    pub fn current(&self) -> &NoteVerifier {
        self.keys.last().unwrap_or(&self.anchor_key)
    }

    pub fn anchor(&self) -> &NoteVerifier {
        &self.anchor_key
    }

    /// Transitions whose retiring key is trusted, oldest first.
    pub fn handoffs(&self) -> &[Handoff] {
        &self.handoffs
    }

    /// The history as read (for proofs and bundles to carry).
    pub fn records(&self) -> &[TransitionRecord] {
        &self.records
    }

    /// Position in `keys` of the key for a checkpoint of `size`.
    fn position_for(&self, size: u64) -> usize {
        self.ends.iter().take_while(|&&end| size > end).count()
    }

    /// The key that must sign a checkpoint of `size`.
    pub fn key_for(&self, size: u64) -> Result<&NoteVerifier, KeyHistoryError> {
        let k = self.position_for(size);
        if k < self.anchor {
            return Err(KeyHistoryError::BeforeTrust {
                size,
                trusted_after: self.ends.get(self.anchor.wrapping_sub(1)).copied().unwrap_or(0),
            });
        }
        Ok(self.keys.get(k).unwrap_or(&self.anchor_key))
    }

    /// Verifies a checkpoint note with the key current at its size; a
    /// checkpoint signed by a retired key gets its own error.
    pub fn open_checkpoint(&self, text: &str) -> Result<Checkpoint, KeyHistoryError> {
        if self.ends.is_empty() {
            // Never rotated: exactly the single-key check.
            return note::open_checkpoint(text, &self.anchor_key)
                .map(|v| v.into_inner())
                .map_err(KeyHistoryError::Checkpoint);
        }
        let size =
            note::parse_unverified_checkpoint(text).map_err(KeyHistoryError::Checkpoint)?.size;
        let key = self.key_for(size)?;
        match note::open_checkpoint(text, key) {
            Ok(v) => Ok(v.into_inner()),
            Err(e) => {
                let k = self.position_for(size);
                for (old, end) in self.keys.iter().zip(&self.ends).take(k) {
                    if note::open_checkpoint(text, old).is_ok() {
                        return Err(KeyHistoryError::RetiredKey {
                            size,
                            key_id: crate::hex(&old.key_id()),
                            retired_at: *end,
                        });
                    }
                }
                Err(KeyHistoryError::Checkpoint(e))
            }
        }
    }
}

/// The parts of an entry (§3.1) the transition check reads. Derived structs
/// refuse a duplicate of any of these members, so the check cannot read
/// another value than the event parser.
#[derive(Deserialize)]
struct EntryView {
    event: EventView,
}

#[derive(Deserialize)]
struct EventView {
    category: String,
    action: String,
    attrs: Option<AttrsView>,
}

#[derive(Deserialize)]
struct AttrsView {
    key_transition: Option<String>,
}

/// The entry must be an `admin/key_rotation` event whose `key_transition`
/// attribute is exactly the transition note.
fn check_entry_bytes(t: &Transition, note: &str, entry: &[u8]) -> Result<(), KeyHistoryError> {
    let bad = |reason: &str| KeyHistoryError::Entry { index: t.index, reason: reason.to_owned() };
    let view: EntryView = serde_json::from_slice(entry).map_err(|_| bad("not an entry"))?;
    let event = view.event;
    if event.category != "admin" || event.action != "key_rotation" {
        return Err(bad("not an admin/key_rotation event"));
    }
    if event.attrs.and_then(|a| a.key_transition).as_deref() != Some(note) {
        return Err(bad("does not carry this transition note"));
    }
    Ok(())
}

/// Checks that sealed segment `S-1`'s record holds exactly the transition
/// entry, at the index the note names (a one-entry segment's root is the
/// entry's leaf hash, RFC 6962).
pub fn check_entry_segment(h: &Handoff, record: &SegmentRecord) -> Result<(), KeyHistoryError> {
    let t = &h.transition;
    let bad = |reason: String| KeyHistoryError::Entry { index: t.index, reason };
    if record.first_index != t.index || record.count != 1 {
        return Err(bad(format!(
            "segment {} holds events {}..{}, the transition names event {} alone",
            t.size - 1,
            record.first_index,
            record.end_index(),
            t.index
        )));
    }
    if record.root != leaf_hash(&h.entry) {
        return Err(bad(format!("segment {} does not hold the transition entry", t.size - 1)));
    }
    Ok(())
}

/// Parses a history file's bytes: strict JSON, unknown members refused.
pub fn parse_history(bytes: &[u8]) -> Result<KeyHistory, KeyHistoryError> {
    if bytes.len() as u64 > MAX_KEY_HISTORY_LEN {
        return Err(KeyHistoryError::Json("too large".into()));
    }
    let h: KeyHistory =
        serde_json::from_slice(bytes).map_err(|e| KeyHistoryError::Json(e.to_string()))?;
    if h.transitions.len() > MAX_TRANSITIONS {
        return Err(KeyHistoryError::TooMany { count: h.transitions.len() });
    }
    Ok(h)
}

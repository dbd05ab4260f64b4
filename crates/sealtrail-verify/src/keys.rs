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

/// Why a key history, or a checkpoint it assigns a key to, was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyHistoryError {
    /// The history file is unreadable or not of its JSON form.
    #[error("key history is not valid JSON of the expected form: {0}")]
    Json(String),
    /// A checkpoint does not verify with the key of its size.
    #[error("checkpoint: {0}")]
    Checkpoint(#[source] NoteError),
    /// Any other rule; `kind` is the verify report's issue kind.
    #[error("{detail}")]
    Invalid { kind: &'static str, detail: String },
}

/// `KeyHistoryError::Invalid` of `kind`, its detail formatted as by `format!`.
macro_rules! invalid {
    ($kind:literal, $($detail:tt)+) => {
        KeyHistoryError::Invalid { kind: $kind, detail: format!($($detail)+) }
    };
}

impl KeyHistoryError {
    /// The `kind` of the verify report's issue for this error.
    pub fn kind(&self) -> &'static str {
        match self {
            KeyHistoryError::Json(_) => "key_history",
            KeyHistoryError::Checkpoint(_) => "checkpoint_signature",
            KeyHistoryError::Invalid { kind, .. } => kind,
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
        let (old, new) = (self.old.to_vkey(), self.new.to_vkey());
        let (origin, size, index) = (&self.origin, self.size, self.index);
        format!("{TRANSITION_HEADER}\n{origin}\n{size}\n{index}\n{old}\n{new}\n")
    }

    /// Strict parse: exactly six newline-terminated lines, canonical decimals.
    fn parse_body(n: usize, body: &str) -> Result<Self, KeyHistoryError> {
        let bad = |why: &str| invalid!("key_history", "transition {n}: malformed body: {why}");
        let lines: Vec<&str> =
            body.strip_suffix('\n').ok_or_else(|| bad("no final newline"))?.split('\n').collect();
        let [header, origin, size, index, old, new] = lines.as_slice() else {
            return Err(bad("want exactly 6 lines"));
        };
        if *header != TRANSITION_HEADER {
            return Err(bad("first line is not the transition header"));
        }
        let decimal = |s, why| note::parse_decimal(s, "").map_err(|_| bad(why));
        let vkey = |s, why| NoteVerifier::from_vkey(s).map_err(|_| bad(why));
        let t = Transition {
            origin: (*origin).to_owned(),
            size: decimal(size, "size is not a canonical decimal")?,
            index: decimal(index, "index is not a canonical decimal")?,
            old: vkey(old, "old key is not a vkey")?,
            new: vkey(new, "new key is not a vkey")?,
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

/// Opens transition note `n`: signed by the key it retires and by the one
/// it introduces.
pub fn open_transition(n: usize, text: &str) -> Result<Transition, KeyHistoryError> {
    let note_err = |e: NoteError| invalid!("key_history", "transition {n}: {e}");
    let unverified = note::unverified_text(text).map_err(note_err)?;
    let t = Transition::parse_body(n, unverified)?;
    let id = crate::hex(&t.old.key_id());
    // `open_note` checks the signatures over exactly the text parsed above.
    note::open_note(text, &t.old).map_err(|e| {
        invalid!(
            "forged_transition",
            "transition {n}: not signed by the key it retires ({id}): {e}"
        )
    })?;
    note::open_note(text, &t.new).map_err(note_err)?;
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
    /// Keys in order (never empty); `keys[k]` signs sizes in `(ends[k-1], ends[k]]`.
    keys: Vec<NoteVerifier>,
    /// `ends[k]` is the size at which `keys[k]` was retired (last is open).
    ends: Vec<u64>,
    /// Index in `keys` of the trust anchor: earlier keys are not trusted.
    anchor: usize,
    handoffs: Vec<Handoff>,
}

impl KeyChain {
    /// A log that never rotated its key.
    pub fn single(key: &NoteVerifier) -> Self {
        KeyChain { keys: vec![key.clone()], ends: Vec::new(), anchor: 0, handoffs: Vec::new() }
    }

    /// Follows `history` from `anchor`, which must be its first key or one
    /// it introduced. Every transition must be signed by the key it retires
    /// (the previous one's new key) and its new key, with growing sizes and
    /// indices. Transitions from the anchor on must carry the retiring
    /// key's checkpoint of their size and their logged entry.
    pub fn follow(anchor: &NoteVerifier, history: &KeyHistory) -> Result<Self, KeyHistoryError> {
        check_count(history)?;
        let mut parsed: Vec<Transition> = Vec::with_capacity(history.transitions.len());
        for (n, rec) in history.transitions.iter().enumerate() {
            let t = open_transition(n, &rec.note)?;
            let hex = |k: &NoteVerifier| crate::hex(&k.key_id());
            let why = match parsed.last() {
                Some(prev) if t.old != prev.new => {
                    format!("retires key {} but the current key is {}", hex(&t.old), hex(&prev.new))
                }
                Some(prev) if t.origin != prev.origin => "origin changes".into(),
                _ if parsed.iter().any(|p| p.old == t.new) => {
                    format!("key {} was used before", hex(&t.new))
                }
                Some(prev) if t.size <= prev.size || t.index <= prev.index => {
                    "size and index must grow".into()
                }
                _ => {
                    parsed.push(t);
                    continue;
                }
            };
            return Err(invalid!("key_history", "transition {n}: {why}"));
        }
        let Some(first) = parsed.first() else {
            return Ok(KeyChain::single(anchor));
        };
        let keys: Vec<NoteVerifier> = std::iter::once(first.old.clone())
            .chain(parsed.iter().map(|t| t.new.clone()))
            .collect();
        let Some(anchor_at) = keys.iter().position(|k| k == anchor) else {
            let [key, first, current] =
                [anchor, &keys[0], &keys[keys.len() - 1]].map(|k| crate::hex(&k.key_id()));
            return Err(invalid!(
                "unknown_key",
                "key {key} is not in the log's key history (first key {first}, current {current})"
            ));
        };
        let mut chain = KeyChain {
            keys,
            ends: parsed.iter().map(|t| t.size).collect(),
            anchor: anchor_at,
            handoffs: Vec::new(),
        };
        for (n, (t, rec)) in
            parsed.into_iter().zip(&history.transitions).enumerate().skip(anchor_at)
        {
            let handoff = |why: String| {
                invalid!("key_transition", "transition {n}: the old key's last checkpoint: {why}")
            };
            let cp = note::open_checkpoint(&rec.checkpoint, &t.old)
                .map_err(|e| handoff(e.to_string()))?;
            if cp.size != t.size {
                let why =
                    format!("has size {}, the transition takes effect at {}", cp.size, t.size);
                return Err(handoff(why));
            }
            check_entry_bytes(&t, &rec.note, rec.entry.as_bytes())?;
            let (root, checkpoint, entry) =
                (cp.root, rec.checkpoint.clone(), rec.entry.clone().into_bytes());
            chain.handoffs.push(Handoff { transition: t, root, checkpoint, entry });
        }
        Ok(chain)
    }

    /// Whether `key` is one of the history's keys.
    pub fn contains(&self, key: &NoteVerifier) -> bool {
        self.keys.contains(key)
    }

    /// The key that signs checkpoints now.
    pub fn current(&self) -> &NoteVerifier {
        &self.keys[self.keys.len() - 1]
    }

    /// Transitions whose retiring key is trusted, oldest first.
    pub fn handoffs(&self) -> &[Handoff] {
        &self.handoffs
    }

    /// Position in `keys` of the key for a checkpoint of `size`.
    fn position_for(&self, size: u64) -> usize {
        self.ends.iter().take_while(|&&end| size > end).count()
    }

    /// The key that must sign a checkpoint of `size`.
    pub fn key_for(&self, size: u64) -> Result<&NoteVerifier, KeyHistoryError> {
        let k = self.position_for(size);
        if k < self.anchor {
            let after = self.ends[self.anchor - 1];
            return Err(invalid!(
                "before_trusted_key",
                "checkpoint of size {size} predates the trusted key (trust starts after size {after})"
            ));
        }
        Ok(&self.keys[k])
    }

    /// Verifies a checkpoint note with the key current at its size; a
    /// checkpoint signed by a retired key gets its own error.
    pub fn open_checkpoint(&self, text: &str) -> Result<Checkpoint, KeyHistoryError> {
        let open = |key: &NoteVerifier| note::open_checkpoint(text, key).map(|v| v.into_inner());
        if self.ends.is_empty() {
            // Never rotated: exactly the single-key check.
            return open(&self.keys[0]).map_err(KeyHistoryError::Checkpoint);
        }
        let size =
            note::parse_unverified_checkpoint(text).map_err(KeyHistoryError::Checkpoint)?.size;
        let e = match open(self.key_for(size)?) {
            Ok(checkpoint) => return Ok(checkpoint),
            Err(e) => e,
        };
        let retired = self.keys.iter().zip(&self.ends).take(self.position_for(size));
        match retired.into_iter().find(|(old, _)| open(old).is_ok()) {
            Some((old, end)) => Err(invalid!(
                "retired_key",
                "checkpoint of size {size} is signed by key {}, which was retired at size {end}",
                crate::hex(&old.key_id())
            )),
            None => Err(KeyHistoryError::Checkpoint(e)),
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

/// The entry must be a small `admin/key_rotation` event whose
/// `key_transition` attribute is exactly the transition note.
fn check_entry_bytes(t: &Transition, note: &str, entry: &[u8]) -> Result<(), KeyHistoryError> {
    let index = t.index;
    let bad = |why: &str| invalid!("key_transition_entry", "transition entry {index}: {why}");
    if entry.len() > MAX_ENTRY_LEN {
        return Err(bad("too large"));
    }
    let event = serde_json::from_slice::<EntryView>(entry).map_err(|_| bad("not an entry"))?.event;
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
    let (index, segment) = (h.transition.index, h.transition.size - 1);
    let why = if record.first_index != index || record.count != 1 {
        let (first, end) = (record.first_index, record.end_index());
        format!(
            "segment {segment} holds events {first}..{end}, the transition names event {index} alone"
        )
    } else if record.root != leaf_hash(&h.entry) {
        format!("segment {segment} does not hold the transition entry")
    } else {
        return Ok(());
    };
    Err(invalid!("key_transition_entry", "transition entry {index}: {why}"))
}

fn check_count(h: &KeyHistory) -> Result<(), KeyHistoryError> {
    match h.transitions.len() {
        n if n > MAX_TRANSITIONS => Err(invalid!(
            "key_history",
            "key history has {n} transitions, more than {MAX_TRANSITIONS}"
        )),
        _ => Ok(()),
    }
}

/// Parses a history file's bytes: strict JSON, unknown members refused.
pub fn parse_history(bytes: &[u8]) -> Result<KeyHistory, KeyHistoryError> {
    if bytes.len() as u64 > MAX_KEY_HISTORY_LEN {
        return Err(KeyHistoryError::Json("too large".into()));
    }
    let h: KeyHistory =
        serde_json::from_slice(bytes).map_err(|e| KeyHistoryError::Json(e.to_string()))?;
    check_count(&h)?;
    Ok(h)
}

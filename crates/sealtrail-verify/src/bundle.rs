//! Evidence bundles (LEDGER.md §11): a ustar archive of `README.txt`,
//! `signing.vkey`, `checkpoint`, `manifest` (a signed note, §11.2) and
//! `events.ndjson` (one inclusion proof per line, compact JSON as sealtrail
//! writes it, ascending index, last member). Every problem is listed with
//! its member, event index and kind, as `sealtrail verify-bundle --json`
//! prints them.

use crate::hash::{Hash, leaf_hash};
use crate::keys::{self, KeyChain, KeyHistoryError};
use crate::note::{self, Checkpoint, NoteError, NoteVerifier};
use crate::proof::{self, InclusionProof, ProofCheckError};
use crate::tar::{TarError, TarReader};
use crate::verified::Verified;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};

pub const MANIFEST_HEADER: &str = "sealtrail evidence bundle v1";
/// Most events one bundle holds.
pub const MAX_BUNDLE_EVENTS: u64 = 100_000;

pub const README_MEMBER: &str = "README.txt";
pub const VKEY_MEMBER: &str = "signing.vkey";
pub const CHECKPOINT_MEMBER: &str = "checkpoint";
pub const MANIFEST_MEMBER: &str = "manifest";
pub const EVENTS_MEMBER: &str = "events.ndjson";
/// Optional: the log's key transitions when its signing key was rotated
/// (§14); must precede `signing.vkey`.
pub const KEY_HISTORY_MEMBER: &str = "key-history.json";

/// Largest `README.txt` accepted.
pub const MAX_README: u64 = 64 << 10;
/// Largest `signing.vkey` accepted (a vkey line is at most ~320 bytes).
pub const MAX_VKEY: u64 = 1 << 10;
/// Largest `manifest` accepted (the query fields are bounded, see below).
pub const MAX_MANIFEST: u64 = 64 << 10;
/// Largest `events.ndjson` accepted or written.
pub const MAX_EVENTS_FILE: u64 = 1 << 30;
/// Longest line of `events.ndjson`: a 1 MiB entry is at most 2 MiB once
/// JSON-escaped, plus paths, record and the checkpoint note.
pub const MAX_PROOF_LINE: u64 = 4 << 20;

/// Bounds of the query fields, so that manifest and README stay small.
pub const MAX_QUERY_LEN: usize = 4096;
pub const MAX_REQUESTED_BY_LEN: usize = 256;
pub const MAX_TIME_LEN: usize = 64;

/// Most problems listed in a report; the rest are counted.
pub const MAX_ISSUES: usize = 1000;

/// The members of a bundle in the order sealtrail writes them, with the
/// largest size accepted for each. `events.ndjson` must come last.
const MEMBERS: [(&str, u64); 6] = [
    (README_MEMBER, MAX_README),
    (KEY_HISTORY_MEMBER, keys::MAX_KEY_HISTORY_LEN),
    (VKEY_MEMBER, MAX_VKEY),
    (CHECKPOINT_MEMBER, note::MAX_NOTE_LEN as u64),
    (MANIFEST_MEMBER, MAX_MANIFEST),
    (EVENTS_MEMBER, MAX_EVENTS_FILE),
];
const EVENTS_SLOT: usize = 5;
const KEY_HISTORY_SLOT: usize = 1;

/// Everything that can go wrong checking a bundle. Each problem names the member and, for events, the global index.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("a bundle holds at most {max} events; got {count}")]
    TooManyEvents { count: u64, max: u64 },
    #[error("query field {field}: {reason}")]
    Query { field: &'static str, reason: String },

    #[error("archive is unreadable: {0}")]
    Archive(String),
    #[error("data after the end of the archive")]
    TrailingData,
    #[error("member {name:?} is not part of an evidence bundle")]
    UnexpectedMember { name: String },
    #[error("member {name} is not a regular file")]
    MemberType { name: &'static str },
    #[error("member {name} appears more than once")]
    DuplicateMember { name: &'static str },
    #[error("member {name} is missing")]
    MissingMember { name: &'static str },
    #[error("member {name} comes after events.ndjson, which must be the last member")]
    MemberOrder { name: &'static str },
    #[error("member {name} is {size} bytes, more than the {max}-byte limit")]
    MemberTooLarge { name: &'static str, size: u64, max: u64 },
    #[error("member {name} is cut short: the archive ends {missing} bytes early")]
    Truncated { name: &'static str, missing: u64 },
    #[error(
        "signing.vkey is not the key being verified with: bundle has {found:?}, expected {expected:?}"
    )]
    Vkey { found: String, expected: String },
    #[error("checkpoint: {0}")]
    Checkpoint(#[source] NoteError),
    #[error("manifest signature: {0}")]
    ManifestSignature(#[source] NoteError),
    #[error("manifest line {line}: {reason}")]
    ManifestFormat { line: usize, reason: String },
    #[error("manifest is for log {manifest:?}, the key is for {key:?}")]
    ManifestOrigin { manifest: String, key: String },
    #[error(
        "manifest is for checkpoint size {manifest_size} root {manifest_root}, the bundle's checkpoint is size {size} root {root}"
    )]
    CheckpointMismatch { manifest_size: u64, manifest_root: String, size: u64, root: String },
    #[error("events.ndjson line {line}: {reason}")]
    EventLine { line: u64, reason: String },
    #[error("event {index}: {source}")]
    EventProof {
        index: u64,
        #[source]
        source: ProofCheckError,
    },
    #[error("event {index}: its proof ends at a different checkpoint than the bundle's")]
    EventCheckpoint { index: u64 },
    #[error("event {index}: comes after event {previous}; events must be in ascending index order")]
    EventOrder { index: u64, previous: u64 },
    #[error("event {index}: appears more than once")]
    DuplicateEvent { index: u64 },
    #[error(
        "manifest lists {manifest} events, events.ndjson holds {found}: events were added or removed"
    )]
    EventCount { manifest: u64, found: u64 },
    #[error(
        "events do not match the manifest's events-sha256: an event was added, removed or replaced"
    )]
    EventDigest,
    #[error("key history: {0}")]
    KeyHistory(#[source] KeyHistoryError),
    #[error("member {KEY_HISTORY_MEMBER} must come before signing.vkey, checkpoint and manifest")]
    KeyHistoryOrder,
}

impl BundleError {
    /// Short machine-readable name of the problem, as in `--json` output.
    pub fn kind(&self) -> &'static str {
        use BundleError::*;
        match self {
            TooManyEvents { .. } => "too_many_events",
            Query { .. } => "query",
            Archive(_) => "archive",
            TrailingData => "trailing_data",
            UnexpectedMember { .. } => "unexpected_member",
            MemberType { .. } => "member_type",
            DuplicateMember { .. } => "duplicate_member",
            MissingMember { .. } => "missing_member",
            MemberOrder { .. } => "member_order",
            MemberTooLarge { .. } => "member_too_large",
            Truncated { .. } => "truncated",
            Vkey { .. } => "vkey",
            Checkpoint(_) => "checkpoint_signature",
            ManifestSignature(_) => "manifest_signature",
            ManifestFormat { .. } => "manifest_format",
            ManifestOrigin { .. } => "manifest_origin",
            CheckpointMismatch { .. } => "checkpoint_mismatch",
            EventLine { .. } => "event_line",
            EventProof { .. } => "event_proof",
            EventCheckpoint { .. } => "event_checkpoint",
            EventOrder { .. } => "event_order",
            DuplicateEvent { .. } => "duplicate_event",
            EventCount { .. } => "event_count",
            EventDigest => "event_digest",
            KeyHistory(e) => e.kind(),
            KeyHistoryOrder => "member_order",
        }
    }

    /// The bundle member the problem is in, when there is one.
    pub fn member(&self) -> Option<&'static str> {
        use BundleError::*;
        match self {
            MemberType { name }
            | DuplicateMember { name }
            | MissingMember { name }
            | MemberOrder { name }
            | MemberTooLarge { name, .. }
            | Truncated { name, .. } => Some(name),
            Vkey { .. } => Some(VKEY_MEMBER),
            KeyHistory(_) | KeyHistoryOrder => Some(KEY_HISTORY_MEMBER),
            Checkpoint(_) => Some(CHECKPOINT_MEMBER),
            ManifestSignature(_) | ManifestFormat { .. } | ManifestOrigin { .. } => {
                Some(MANIFEST_MEMBER)
            }
            CheckpointMismatch { .. } => Some(MANIFEST_MEMBER),
            EventLine { .. }
            | EventProof { .. }
            | EventCheckpoint { .. }
            | EventOrder { .. }
            | DuplicateEvent { .. }
            | EventCount { .. }
            | EventDigest
            | TooManyEvents { .. } => Some(EVENTS_MEMBER),
            _ => None,
        }
    }

    /// The global index of the event concerned, when there is one.
    pub fn index(&self) -> Option<u64> {
        use BundleError::*;
        match self {
            EventProof { index, .. }
            | EventCheckpoint { index }
            | EventOrder { index, .. }
            | DuplicateEvent { index } => Some(*index),
            _ => None,
        }
    }
}

/// What produced a bundle: the search query, its time range, who asked and
/// when. All of it is signed in the manifest.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleQuery {
    /// The search query text, as given (at most 4096 bytes).
    pub q: String,
    /// Start of the time range (RFC 3339), if any.
    #[serde(default)]
    pub from: Option<String>,
    /// End of the time range (RFC 3339), if any.
    #[serde(default)]
    pub to: Option<String>,
    /// Who asked for the bundle (at most 256 bytes).
    #[serde(default)]
    pub requested_by: Option<String>,
    /// When the bundle was created (RFC 3339).
    pub created: String,
}

impl BundleQuery {
    /// Checks the bounds and that times are RFC 3339.
    pub fn validate(&self) -> Result<(), BundleError> {
        if self.q.len() > MAX_QUERY_LEN {
            return Err(BundleError::Query {
                field: "q",
                reason: format!("longer than {MAX_QUERY_LEN} bytes"),
            });
        }
        if let Some(r) = &self.requested_by
            && r.len() > MAX_REQUESTED_BY_LEN
        {
            return Err(BundleError::Query {
                field: "requested_by",
                reason: format!("longer than {MAX_REQUESTED_BY_LEN} bytes"),
            });
        }
        let times = [
            ("from", self.from.as_deref()),
            ("to", self.to.as_deref()),
            ("created", Some(self.created.as_str())),
        ];
        for (field, value) in times {
            if let Some(v) = value {
                parse_time(field, v)?;
            }
        }
        Ok(())
    }
}

fn parse_time(field: &'static str, value: &str) -> Result<(), BundleError> {
    if value.len() > MAX_TIME_LEN {
        return Err(BundleError::Query {
            field,
            reason: format!("longer than {MAX_TIME_LEN} bytes"),
        });
    }
    match crate::time::rfc3339_any_year(value.as_bytes()) {
        true => Ok(()),
        false => Err(BundleError::Query { field, reason: "not an RFC 3339 time".into() }),
    }
}

/// One proven event of a verified bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleEntry {
    pub index: u64,
    /// The entry's canonical bytes, exactly as hashed.
    pub entry: Vec<u8>,
    pub leaf_hash: Hash,
}

/// A bundle that passed every check.
#[derive(Clone, Debug)]
pub struct Bundle {
    pub query: BundleQuery,
    pub origin: String,
    pub checkpoint: Checkpoint,
    /// The signed checkpoint note, exactly as in the bundle.
    pub checkpoint_text: String,
    /// The events in ascending index order.
    pub entries: Vec<BundleEntry>,
    pub events_sha256: Hash,
}

/// The outcome of checking a bundle: every problem found (up to
/// [`MAX_ISSUES`]), and the verified bundle when there were none.
#[derive(Debug)]
pub struct BundleReport {
    /// Present exactly when `errors` is empty.
    pub verified: Option<Verified<Bundle>>,
    /// The query from the manifest, when the manifest's signature verified.
    pub query: Option<BundleQuery>,
    /// The bundle's checkpoint, when its signature verified.
    pub checkpoint: Option<Checkpoint>,
    /// Number of event proofs that verified.
    pub events: u64,
    pub errors: Vec<BundleError>,
    /// Problems found beyond the first [`MAX_ISSUES`].
    pub errors_omitted: u64,
}

impl BundleReport {
    pub fn ok(&self) -> bool {
        self.verified.is_some()
    }

    /// `{"ok", "events", "checkpoint": {"size", "root"} | null, "query": {...} | null,
    ///   "errors": [{"member", "index", "kind", "detail"}], "errors_omitted"}`
    pub fn to_json(&self) -> serde_json::Value {
        let errors: Vec<serde_json::Value> = self
            .errors
            .iter()
            .map(|e| {
                serde_json::json!({
                    "member": e.member(),
                    "index": e.index(),
                    "kind": e.kind(),
                    "detail": e.to_string(),
                })
            })
            .collect();
        serde_json::json!({
            "ok": self.ok(),
            "events": self.events,
            "checkpoint": self.checkpoint.as_ref().map(|c| serde_json::json!({
                "size": c.size,
                "root": B64.encode(c.root),
            })),
            "query": self.query,
            "errors": errors,
            "errors_omitted": self.errors_omitted,
        })
    }
}

/// The signed statement of a bundle. Its text has exactly one spelling.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Manifest {
    origin: String,
    query: BundleQuery,
    checkpoint_size: u64,
    checkpoint_root: Hash,
    events: u64,
    events_sha256: Hash,
}

/// Keys of the manifest lines after the header, in order.
const MANIFEST_KEYS: [&str; 10] = [
    "origin",
    "query",
    "from",
    "to",
    "requested-by",
    "created",
    "checkpoint-size",
    "checkpoint-root",
    "events",
    "events-sha256",
];

/// A string as a JSON string literal on one line, with every control
/// character escaped (signed notes allow no control characters): `"`, `\`,
/// `\b \t \n \f \r`, and `\u00xx` (lower-case hex) for the other characters
/// of Unicode category Cc (U+0000..U+001F, U+007F..U+009F). Everything else
/// is raw UTF-8.
fn encode_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn encode_opt(s: &Option<String>) -> String {
    s.as_deref().map_or_else(|| "null".to_owned(), encode_str)
}

impl Manifest {
    fn to_text(&self) -> String {
        let q = &self.query;
        format!(
            "{MANIFEST_HEADER}\n\
             origin {}\n\
             query {}\n\
             from {}\n\
             to {}\n\
             requested-by {}\n\
             created {}\n\
             checkpoint-size {}\n\
             checkpoint-root {}\n\
             events {}\n\
             events-sha256 {}\n",
            self.origin,
            encode_str(&q.q),
            encode_opt(&q.from),
            encode_opt(&q.to),
            encode_opt(&q.requested_by),
            encode_str(&q.created),
            self.checkpoint_size,
            B64.encode(self.checkpoint_root),
            self.events,
            crate::hex(&self.events_sha256),
        )
    }

    /// Parses the signed text. Accepts only the text `to_text` produces.
    fn parse(text: &str) -> Result<Self, BundleError> {
        let bad = |line: usize, reason: String| BundleError::ManifestFormat { line, reason };
        let Some(body) = text.strip_suffix('\n') else {
            return Err(bad(0, "text does not end with a newline".into()));
        };
        let lines: Vec<&str> = body.split('\n').collect();
        if lines.len() != MANIFEST_KEYS.len() + 1 {
            return Err(bad(
                0,
                format!("has {} lines, want {}", lines.len(), MANIFEST_KEYS.len() + 1),
            ));
        }
        if lines[0] != MANIFEST_HEADER {
            return Err(bad(1, format!("is not {MANIFEST_HEADER:?}")));
        }
        let mut values = [""; MANIFEST_KEYS.len()];
        for (i, key) in MANIFEST_KEYS.iter().enumerate() {
            let line = lines[i + 1];
            values[i] = line
                .strip_prefix(key)
                .and_then(|rest| rest.strip_prefix(' '))
                .ok_or_else(|| bad(i + 2, format!("want `{key} <value>`")))?;
        }
        let line_of = |key: &str| MANIFEST_KEYS.iter().position(|k| *k == key).unwrap_or(0) + 2;
        let string = |key: &str, v: &str| -> Result<String, BundleError> {
            serde_json::from_str::<String>(v)
                .map_err(|e| bad(line_of(key), format!("{key} is not a JSON string: {e}")))
        };
        let opt_string = |key: &str, v: &str| -> Result<Option<String>, BundleError> {
            if v == "null" { Ok(None) } else { string(key, v).map(Some) }
        };
        let number = |key: &str, v: &str| -> Result<u64, BundleError> {
            v.parse::<u64>()
                .map_err(|_| bad(line_of(key), format!("{key} is not a decimal number")))
        };
        let hash = |key: &str, v: &str, decoded: Option<Vec<u8>>| -> Result<Hash, BundleError> {
            decoded
                .and_then(|d| Hash::try_from(d.as_slice()).ok())
                .ok_or_else(|| bad(line_of(key), format!("{key} is not a 32-byte hash: {v:?}")))
        };
        let [origin, q, from, to, requested_by, created, size, root, events, digest] = values;
        let manifest = Manifest {
            origin: origin.to_owned(),
            query: BundleQuery {
                q: string("query", q)?,
                from: opt_string("from", from)?,
                to: opt_string("to", to)?,
                requested_by: opt_string("requested-by", requested_by)?,
                created: string("created", created)?,
            },
            checkpoint_size: number("checkpoint-size", size)?,
            checkpoint_root: hash("checkpoint-root", root, B64.decode(root).ok())?,
            events: number("events", events)?,
            events_sha256: hash(
                "events-sha256",
                digest,
                crate::unhex::<32>(digest).map(|h| h.to_vec()),
            )?,
        };
        // One spelling only: re-encode and compare, so that no byte of the
        // text can change without being detected.
        let canonical = manifest.to_text();
        if canonical != text {
            let line = canonical
                .split('\n')
                .zip(text.split('\n'))
                .position(|(a, b)| a != b)
                .map_or(0, |i| i + 1);
            return Err(bad(line, "not in canonical form".into()));
        }
        manifest.query.validate().map_err(|e| bad(0, e.to_string()))?;
        Ok(manifest)
    }
}

/// SHA-256 over `index (u64 big-endian) || leaf hash` of each event, in
/// ascending index order.
fn events_digest<'a>(pairs: impl IntoIterator<Item = &'a (u64, Hash)>) -> Hash {
    let mut h = Sha256::new();
    for (index, leaf) in pairs {
        h.update(index.to_be_bytes());
        h.update(leaf);
    }
    h.finalize().into()
}

// ---------------------------------------------------------------------------
// Building
/// Checks a bundle and lists every problem found (up to [`MAX_ISSUES`]).
pub fn check_bundle(input: impl Read, verifier: &NoteVerifier) -> BundleReport {
    let mut checker = Checker::new(verifier);
    if let Err(e) = checker.read_archive(input) {
        checker.fatal = true;
        checker.push(e);
    }
    checker.finish()
}

struct Checker<'v> {
    verifier: &'v NoteVerifier,
    /// `verifier` and the transitions of the key-history member.
    keys: KeyChain,
    seen: [bool; 6],
    fatal: bool,
    checkpoint_text: Option<String>,
    checkpoint: Option<Checkpoint>,
    manifest: Option<Manifest>,
    /// (index, leaf hash) of every parsed proof, verified or not.
    pairs: Vec<(u64, Hash)>,
    entries: Vec<BundleEntry>,
    errors: Vec<BundleError>,
    errors_omitted: u64,
}

impl<'v> Checker<'v> {
    fn new(verifier: &'v NoteVerifier) -> Self {
        Checker {
            verifier,
            keys: KeyChain::single(verifier),
            seen: [false; 6],
            fatal: false,
            checkpoint_text: None,
            checkpoint: None,
            manifest: None,
            pairs: Vec::new(),
            entries: Vec::new(),
            errors: Vec::new(),
            errors_omitted: 0,
        }
    }

    fn push(&mut self, e: BundleError) {
        if self.errors.len() < MAX_ISSUES {
            self.errors.push(e);
        } else {
            self.errors_omitted += 1;
        }
    }

    /// Walks the archive. Errors returned are fatal (the archive cannot be
    /// read further); problems inside a member are pushed and reading goes on.
    fn read_archive(&mut self, input: impl Read) -> Result<(), BundleError> {
        let mut archive = TarReader::new(input);
        let archive_err = |e: TarError| match e {
            TarError::TrailingData => BundleError::TrailingData,
            e => BundleError::Archive(e.to_string()),
        };
        while let Some(header) = archive.next_header().map_err(archive_err)? {
            let Some(slot) =
                MEMBERS.iter().position(|(name, _)| name.as_bytes() == header.name.as_slice())
            else {
                let name: String =
                    String::from_utf8_lossy(&header.name).chars().take(100).collect();
                return Err(BundleError::UnexpectedMember { name });
            };
            let (name, max) = MEMBERS[slot];
            if self.seen[slot] {
                return Err(BundleError::DuplicateMember { name });
            }
            if self.seen[EVENTS_SLOT] {
                return Err(BundleError::MemberOrder { name });
            }
            if slot == KEY_HISTORY_SLOT && self.seen[KEY_HISTORY_SLOT + 1..].contains(&true) {
                return Err(BundleError::KeyHistoryOrder);
            }
            self.seen[slot] = true;
            if !header.is_regular() {
                return Err(BundleError::MemberType { name });
            }
            let size = header.size;
            if size > max {
                return Err(BundleError::MemberTooLarge { name, size, max });
            }
            if slot == EVENTS_SLOT {
                self.read_events(&mut archive.data(size), size)?;
            } else if slot != 0 {
                // README.txt (slot 0) is informational: bounded, never read.
                let bytes = read_member(&mut archive.data(size), name, size)?;
                self.check_member(name, bytes);
            }
        }
        Ok(())
    }

    fn check_member(&mut self, name: &'static str, bytes: Vec<u8>) {
        match name {
            KEY_HISTORY_MEMBER => {
                match keys::parse_history(&bytes).and_then(|h| KeyChain::follow(self.verifier, &h))
                {
                    Ok(keys) => self.keys = keys,
                    Err(e) => self.push(BundleError::KeyHistory(e)),
                }
            }
            VKEY_MEMBER => {
                // The bundle's signer: the key current after the transitions.
                let vkey = self.keys.current().to_vkey();
                if bytes != format!("{vkey}\n").as_bytes() {
                    let found: String = String::from_utf8_lossy(&bytes).chars().take(400).collect();
                    self.push(BundleError::Vkey {
                        found: found.trim_end().to_owned(),
                        expected: vkey,
                    });
                }
            }
            CHECKPOINT_MEMBER => {
                let opened = std::str::from_utf8(&bytes)
                    .map_err(|_| BundleError::Checkpoint(NoteError::NotUtf8))
                    .and_then(|text| {
                        self.keys.open_checkpoint(text).map_err(|e| match e {
                            KeyHistoryError::Checkpoint(n) => BundleError::Checkpoint(n),
                            e => BundleError::KeyHistory(e),
                        })
                    });
                match opened {
                    Ok(cp) => self.checkpoint = Some(cp),
                    Err(e) => self.push(e),
                }
                // Kept even when invalid, to compare the proofs' copies with.
                self.checkpoint_text = String::from_utf8(bytes).ok();
            }
            MANIFEST_MEMBER => {
                let text = match String::from_utf8(bytes) {
                    Ok(t) => t,
                    Err(_) => return self.push(BundleError::ManifestSignature(NoteError::NotUtf8)),
                };
                let body = match note::open_note(&text, self.keys.current()) {
                    Ok(body) => body,
                    Err(e) => return self.push(BundleError::ManifestSignature(e)),
                };
                match Manifest::parse(body) {
                    Ok(m) if m.origin != self.verifier.name() => {
                        self.push(BundleError::ManifestOrigin {
                            manifest: m.origin,
                            key: self.verifier.name().to_owned(),
                        })
                    }
                    Ok(m) => self.manifest = Some(m),
                    Err(e) => self.push(e),
                }
            }
            _ => {}
        }
    }

    fn read_events(&mut self, entry: &mut impl Read, size: u64) -> Result<(), BundleError> {
        let mut reader = BufReader::new(entry.take(size));
        let mut line = Vec::new();
        let mut consumed = 0u64;
        let mut line_no = 0u64;
        let mut seen = HashSet::new();
        let mut previous: Option<u64> = None;
        loop {
            line.clear();
            let n = (&mut reader)
                .take(MAX_PROOF_LINE + 1)
                .read_until(b'\n', &mut line)
                .map_err(|e| BundleError::Archive(e.to_string()))?;
            if n == 0 {
                break;
            }
            consumed += n as u64;
            line_no += 1;
            if line.len() as u64 > MAX_PROOF_LINE {
                return Err(BundleError::EventLine {
                    line: line_no,
                    reason: format!("longer than {MAX_PROOF_LINE} bytes"),
                });
            }
            if line_no > MAX_BUNDLE_EVENTS {
                return Err(BundleError::TooManyEvents { count: line_no, max: MAX_BUNDLE_EVENTS });
            }
            let Some(body) = line.strip_suffix(b"\n") else {
                if consumed < size {
                    break; // cut short; reported below
                }
                self.push(BundleError::EventLine {
                    line: line_no,
                    reason: "does not end with a newline".into(),
                });
                continue;
            };
            if let Some(index) = self.check_event(line_no, body) {
                if !seen.insert(index) {
                    self.push(BundleError::DuplicateEvent { index });
                } else if let Some(p) = previous.filter(|&p| index < p) {
                    self.push(BundleError::EventOrder { index, previous: p });
                }
                previous = previous.max(Some(index));
            }
        }
        if consumed < size {
            return Err(BundleError::Truncated { name: EVENTS_MEMBER, missing: size - consumed });
        }
        Ok(())
    }

    /// Checks one line of events.ndjson; returns the index it claims.
    fn check_event(&mut self, line_no: u64, body: &[u8]) -> Option<u64> {
        let parsed = crate::json::parse_strict(body)
            .map_err(|e| e.to_string())
            .and_then(|v| InclusionProof::deserialize(v).map_err(|e| e.to_string()));
        let proof: InclusionProof = match parsed {
            Ok(p) => p,
            Err(e) => {
                self.push(BundleError::EventLine {
                    line: line_no,
                    reason: format!("not an inclusion proof: {e}"),
                });
                return None;
            }
        };
        // Byte-exact: the line must be what sealtrail writes for this proof.
        match serde_json::to_vec(&proof) {
            Ok(canonical) if canonical == body => {}
            _ => self.push(BundleError::EventLine {
                line: line_no,
                reason: format!(
                    "proof of event {} is not in canonical form (compact JSON as sealtrail writes it)",
                    proof.index
                ),
            }),
        }
        // The bundle carries the key history once (`key-history.json`); a
        // proof line's own would ride along outside `events-sha256` (§11.4).
        if proof.key_history.is_some() {
            self.push(BundleError::EventLine {
                line: line_no,
                reason: format!("proof of event {} carries a key_history member", proof.index),
            });
        }
        let index = proof.index;
        self.pairs.push((index, leaf_hash(proof.entry.as_bytes())));
        // A missing checkpoint member is reported once, not per event.
        if let Some(text) = &self.checkpoint_text
            && *text != proof.checkpoint
        {
            self.push(BundleError::EventCheckpoint { index });
        }
        match proof::verify_inclusion_with_keys(&proof, &self.keys) {
            Ok(v) => self.entries.push(BundleEntry {
                index,
                leaf_hash: leaf_hash(&v.entry),
                entry: proof.entry.into_bytes(),
            }),
            Err(source) => self.push(BundleError::EventProof { index, source }),
        }
        Some(index)
    }

    fn finish(mut self) -> BundleReport {
        if !self.fatal {
            for (slot, (name, _)) in MEMBERS.iter().enumerate() {
                if !self.seen[slot] && slot != KEY_HISTORY_SLOT {
                    self.push(BundleError::MissingMember { name });
                }
            }
        }
        if let (Some(m), Some(cp)) = (&self.manifest, &self.checkpoint)
            && (m.checkpoint_size != cp.size || m.checkpoint_root != cp.root)
        {
            let e = BundleError::CheckpointMismatch {
                manifest_size: m.checkpoint_size,
                manifest_root: B64.encode(m.checkpoint_root),
                size: cp.size,
                root: B64.encode(cp.root),
            };
            self.push(e);
        }
        if let Some(m) = &self.manifest
            && self.seen[EVENTS_SLOT]
            && !self.fatal
        {
            let found = self.pairs.len() as u64;
            let (expected, digest) = (m.events, m.events_sha256);
            if expected != found {
                self.push(BundleError::EventCount { manifest: expected, found });
            }
            let mut sorted = self.pairs.clone();
            sorted.sort_unstable_by_key(|(i, _)| *i);
            if events_digest(&sorted) != digest {
                self.push(BundleError::EventDigest);
            }
        }
        let events = self.entries.len() as u64;
        let query = self.manifest.as_ref().map(|m| m.query.clone());
        let verified = match (&self.manifest, &self.checkpoint, &self.checkpoint_text) {
            (Some(m), Some(cp), Some(text)) if self.errors.is_empty() && !self.fatal => {
                Some(Verified::new(Bundle {
                    query: m.query.clone(),
                    origin: m.origin.clone(),
                    checkpoint: cp.clone(),
                    checkpoint_text: text.clone(),
                    entries: std::mem::take(&mut self.entries),
                    events_sha256: m.events_sha256,
                }))
            }
            _ => None,
        };
        BundleReport {
            verified,
            query,
            checkpoint: self.checkpoint,
            events,
            errors: self.errors,
            errors_omitted: self.errors_omitted,
        }
    }
}

/// Reads a whole member whose size was bounded by the caller.
fn read_member(
    entry: &mut impl Read,
    name: &'static str,
    size: u64,
) -> Result<Vec<u8>, BundleError> {
    let mut buf = Vec::new();
    #[allow(clippy::disallowed_methods)] // bounded by `take(size)`, checked by the caller
    entry.take(size).read_to_end(&mut buf).map_err(|e| BundleError::Archive(e.to_string()))?;
    let got = buf.len() as u64;
    if got < size {
        return Err(BundleError::Truncated { name, missing: size - got });
    }
    Ok(buf)
}

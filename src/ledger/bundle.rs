//! Evidence bundles: the events a query matched, each with an inclusion proof
//! ending at one signed checkpoint, plus a signed manifest that fixes the
//! query and the exact set of events, packed as a tar file. An auditor checks
//! it offline with only the log's public key (`sealtrail verify --bundle`).
//!
//! The format is normative in docs/LEDGER.md §11. In short, the members are
//! `README.txt` (informational, never checked), `signing.vkey`, `checkpoint`,
//! `manifest` and, last, `events.ndjson`; every member is bounded before it is
//! read, and `manifest` and `events.ndjson` are byte-exact: any change to a
//! byte of either is detected.

use super::hash::{Hash, leaf_hash};
use super::key_history::{self, KeyHistory, KeyHistoryError};
use super::keys::{NoteSigner, NoteVerifier};
use super::note::{self, Checkpoint, NoteError};
use super::proof::{LedgerReader, ProofBuildError};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use thiserror::Error;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// First line of the manifest text; names the format and its version.
pub const MANIFEST_HEADER: &str = "sealtrail evidence bundle v1";
/// Most events one bundle holds.
pub const MAX_BUNDLE_EVENTS: u64 = 100_000;

pub const README_MEMBER: &str = "README.txt";
pub const VKEY_MEMBER: &str = "signing.vkey";
pub const CHECKPOINT_MEMBER: &str = "checkpoint";
pub const MANIFEST_MEMBER: &str = "manifest";
pub const EVENTS_MEMBER: &str = "events.ndjson";
/// Optional: the log's key transitions, present when its signing key was
/// rotated (docs/LEDGER.md, "Key history"); must precede `signing.vkey`.
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

/// Zero padding accepted after the end-of-archive block (tar writers pad
/// archives to records of up to 10 KiB).
pub const MAX_TAR_PADDING: u64 = 64 << 10;

/// Most problems listed in a report; the rest are counted.
pub const MAX_ISSUES: usize = 1000;

/// The members of a bundle in the order sealtrail writes them, with the
/// largest size accepted for each. `events.ndjson` must come last.
const MEMBERS: [(&str, u64); 6] = [
    (README_MEMBER, MAX_README),
    (KEY_HISTORY_MEMBER, key_history::MAX_KEY_HISTORY_LEN),
    (VKEY_MEMBER, MAX_VKEY),
    (CHECKPOINT_MEMBER, note::MAX_NOTE_LEN as u64),
    (MANIFEST_MEMBER, MAX_MANIFEST),
    (EVENTS_MEMBER, MAX_EVENTS_FILE),
];

/// Everything that can go wrong building or checking a bundle. When checking,
/// each problem names the member and, for events, the global index.
#[derive(Debug, Error)]
pub enum BundleError {
    #[error(
        "event {0} is not sealed yet; it is covered by the next checkpoint (within about a second)"
    )]
    NotSealed(u64),
    #[error("a bundle holds at most {max} events; got {count}")]
    TooManyEvents { count: u64, max: u64 },
    #[error("query field {field}: {reason}")]
    Query { field: &'static str, reason: String },
    #[error("signing key is named {key:?} but the log is {origin:?}")]
    KeyName { key: String, origin: String },
    #[error("reading the ledger: {0}")]
    Ledger(#[source] ProofBuildError),
    #[error("building the proof of event {index}: {source}")]
    BuildProof {
        index: u64,
        #[source]
        source: ProofBuildError,
    },
    #[error("signing the manifest: {0}")]
    Sign(#[source] NoteError),
    #[error("writing the bundle: {0}")]
    Write(#[source] std::io::Error),

    #[error("member {name} is {size} bytes, more than the {max}-byte limit")]
    MemberTooLarge {
        name: &'static str,
        size: u64,
        max: u64,
    },
    #[error("checkpoint: {0}")]
    Checkpoint(#[source] NoteError),
    #[error("key history: {0}")]
    KeyHistory(#[source] KeyHistoryError),
    /// A problem the verifier crate found checking a bundle.
    #[error(transparent)]
    Check(sealtrail_verify::bundle::BundleError),
    #[error("log key: {0}")]
    Key(String),
}

impl BundleError {
    /// Short machine-readable name of the problem, as in `--json` output.
    pub fn kind(&self) -> &'static str {
        use BundleError::*;
        match self {
            NotSealed(_) => "not_sealed",
            TooManyEvents { .. } => "too_many_events",
            Query { .. } => "query",
            KeyName { .. } => "key_name",
            Ledger(_) => "ledger",
            BuildProof { .. } => "build_proof",
            Sign(_) => "sign",
            Write(_) => "write",
            MemberTooLarge { .. } => "member_too_large",
            Checkpoint(_) => "checkpoint_signature",
            KeyHistory(e) => e.kind(),
            Check(e) => e.kind,
            Key(_) => "vkey",
        }
    }

    /// The bundle member the problem is in, when there is one.
    pub fn member(&self) -> Option<&'static str> {
        match self {
            BundleError::Check(e) => e.member,
            BundleError::MemberTooLarge { name, .. } => Some(name),
            BundleError::TooManyEvents { .. } => Some(EVENTS_MEMBER),
            BundleError::KeyHistory(_) => Some(KEY_HISTORY_MEMBER),
            BundleError::Checkpoint(_) => Some(CHECKPOINT_MEMBER),
            _ => None,
        }
    }

    /// The global index of the event concerned, when there is one.
    pub fn index(&self) -> Option<u64> {
        match self {
            BundleError::NotSealed(index) | BundleError::BuildProof { index, .. } => Some(*index),
            BundleError::Check(e) => e.index,
            _ => None,
        }
    }
}

/// What produced a bundle: the search query, its time range, who asked and
/// when. All of it is signed in the manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

fn parse_time(field: &'static str, value: &str) -> Result<OffsetDateTime, BundleError> {
    if value.len() > MAX_TIME_LEN {
        return Err(BundleError::Query {
            field,
            reason: format!("longer than {MAX_TIME_LEN} bytes"),
        });
    }
    OffsetDateTime::parse(value, &Rfc3339).map_err(|e| BundleError::Query {
        field,
        reason: format!("not an RFC 3339 time: {e}"),
    })
}

/// What `build_bundle` wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleSummary {
    pub events: u64,
    /// The checkpoint every proof ends at.
    pub checkpoint: Checkpoint,
    /// SHA-256 over (index, leaf hash) of the events, as in the manifest.
    pub events_sha256: Hash,
}

/// One proven event of a verified bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleEntry {
    pub index: u64,
    /// The entry's canonical bytes, exactly as hashed.
    pub entry: Vec<u8>,
}

/// A bundle that passed every check. Only this module constructs it.
#[derive(Clone, Debug)]
pub struct VerifiedBundle {
    query: BundleQuery,
    origin: String,
    checkpoint: Checkpoint,
    checkpoint_text: String,
    entries: Vec<BundleEntry>,
    events_sha256: Hash,
}

impl VerifiedBundle {
    pub fn query(&self) -> &BundleQuery {
        &self.query
    }
    pub fn origin(&self) -> &str {
        &self.origin
    }
    pub fn count(&self) -> u64 {
        self.entries.len() as u64
    }
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }
    /// The signed checkpoint note, exactly as in the bundle.
    pub fn checkpoint_text(&self) -> &str {
        &self.checkpoint_text
    }
    /// The events in ascending index order.
    pub fn entries(&self) -> &[BundleEntry] {
        &self.entries
    }
    pub fn events_sha256(&self) -> &Hash {
        &self.events_sha256
    }
}

/// The outcome of checking a bundle: every problem found (up to
/// [`MAX_ISSUES`]), and the verified bundle when there were none.
#[derive(Debug)]
pub struct BundleReport {
    /// Present exactly when `errors` is empty.
    pub verified: Option<VerifiedBundle>,
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

// ---------------------------------------------------------------------------
// The manifest text (docs/LEDGER.md §11.2)

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
            hex::encode(self.events_sha256),
        )
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

/// Writes an evidence bundle (a tar archive) for the events at `indices`
/// (sorted and deduplicated here) to `out`. Every proof ends at the reader's
/// current checkpoint; an index that checkpoint does not cover yet gives
/// [`BundleError::NotSealed`] — wait for the next seal and retry.
pub fn build_bundle(
    reader: &LedgerReader,
    signer: &NoteSigner,
    query: &BundleQuery,
    indices: &[u64],
    out: impl Write,
) -> Result<BundleSummary, BundleError> {
    build_bundle_with(reader, signer, query, indices, out, &mut |_| {})
}

/// Events between two progress reports of [`build_bundle_with`].
pub const PROGRESS_EVERY: u64 = 256;

/// How far [`build_bundle_with`] is: proofs built of the events it proves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BundleProgress {
    pub proofs_done: u64,
    pub proofs_total: u64,
    /// Bytes of `events.ndjson` so far (the bulk of the bundle).
    pub bytes: u64,
}

/// [`build_bundle`], reporting its progress every [`PROGRESS_EVERY`]
/// proofs and once at the end (counts never go down; the last report has
/// `proofs_done == proofs_total`).
pub fn build_bundle_with(
    reader: &LedgerReader,
    signer: &NoteSigner,
    query: &BundleQuery,
    indices: &[u64],
    out: impl Write,
    progress: &mut dyn FnMut(BundleProgress),
) -> Result<BundleSummary, BundleError> {
    query.validate()?;
    let verifier = signer.verifier();
    // Never hand out a bundle whose checkpoint the auditor's key rejects
    // (after a key rotation: the key current at the checkpoint's size).
    let history = KeyHistory {
        transitions: reader.key_history().to_vec(),
    };
    let keys = key_history::own_chain(&history, &verifier).map_err(BundleError::KeyHistory)?;
    let checkpoint = keys
        .open_checkpoint(reader.checkpoint_text())
        .map_err(|e| BundleError::KeyHistory(KeyHistoryError::Verify(e)))?;
    if checkpoint.origin != signer.name() {
        return Err(BundleError::KeyName {
            key: signer.name().to_owned(),
            origin: checkpoint.origin,
        });
    }
    let mut sorted = indices.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.len() as u64 > MAX_BUNDLE_EVENTS {
        return Err(BundleError::TooManyEvents {
            count: sorted.len() as u64,
            max: MAX_BUNDLE_EVENTS,
        });
    }
    let covered = reader.covered_events().map_err(BundleError::Ledger)?;
    if let Some(&index) = sorted.iter().find(|&&i| i >= covered) {
        return Err(BundleError::NotSealed(index));
    }

    let mut events = Vec::new();
    let mut pairs = Vec::with_capacity(sorted.len());
    for &index in &sorted {
        let mut proof = reader.inclusion_proof(index).map_err(|e| match e {
            ProofBuildError::NotSealed(i) => BundleError::NotSealed(i),
            source => BundleError::BuildProof { index, source },
        })?;
        // The bundle carries the key history once, not per event.
        proof.key_history = None;
        pairs.push((index, leaf_hash(proof.entry.as_bytes())));
        serde_json::to_writer(&mut events, &proof)
            .map_err(|e| BundleError::Write(std::io::Error::other(e)))?;
        events.push(b'\n');
        if events.len() as u64 > MAX_EVENTS_FILE {
            return Err(BundleError::MemberTooLarge {
                name: EVENTS_MEMBER,
                size: events.len() as u64,
                max: MAX_EVENTS_FILE,
            });
        }
        let done = pairs.len() as u64;
        if done.is_multiple_of(PROGRESS_EVERY) && done < sorted.len() as u64 {
            progress(BundleProgress {
                proofs_done: done,
                proofs_total: sorted.len() as u64,
                bytes: events.len() as u64,
            });
        }
    }
    progress(BundleProgress {
        proofs_done: pairs.len() as u64,
        proofs_total: sorted.len() as u64,
        bytes: events.len() as u64,
    });
    let manifest = Manifest {
        origin: checkpoint.origin.clone(),
        query: query.clone(),
        checkpoint_size: checkpoint.size,
        checkpoint_root: checkpoint.root,
        events: pairs.len() as u64,
        events_sha256: events_digest(&pairs),
    };
    let manifest_note = note::sign_note(&manifest.to_text(), signer).map_err(BundleError::Sign)?;
    let readme = readme_text(&manifest, pairs.first(), pairs.last());
    let vkey = format!("{}\n", verifier.to_vkey());

    // Validated above; bundles dated before 1970 get mtime 0.
    let mtime = parse_time("created", &query.created)?
        .unix_timestamp()
        .clamp(0, 0o7777_7777_7777) as u64;
    let mut builder = tar::Builder::new(out);
    let history_json = match history.transitions.is_empty() {
        true => Vec::new(),
        false => serde_json::to_vec(&history)
            .map_err(|e| BundleError::Write(std::io::Error::other(e)))?,
    };
    let members: [(&str, &[u8]); 6] = [
        (README_MEMBER, readme.as_bytes()),
        (KEY_HISTORY_MEMBER, &history_json),
        (VKEY_MEMBER, vkey.as_bytes()),
        (CHECKPOINT_MEMBER, reader.checkpoint_text().as_bytes()),
        (MANIFEST_MEMBER, manifest_note.as_bytes()),
        (EVENTS_MEMBER, &events),
    ];
    for ((name, data), (_, max)) in members.iter().zip(MEMBERS) {
        if *name == KEY_HISTORY_MEMBER && data.is_empty() {
            continue; // the key was never rotated
        }
        if data.len() as u64 > max {
            return Err(BundleError::MemberTooLarge {
                name,
                size: data.len() as u64,
                max,
            });
        }
        let mut header = tar::Header::new_ustar();
        header.set_path(name).map_err(BundleError::Write)?;
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(mtime);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        builder.append(&header, *data).map_err(BundleError::Write)?;
    }
    let mut out = builder.into_inner().map_err(BundleError::Write)?;
    out.flush().map_err(BundleError::Write)?;
    Ok(BundleSummary {
        events: manifest.events,
        checkpoint: super::verify::service_checkpoint(checkpoint),
        events_sha256: manifest.events_sha256,
    })
}

fn readme_text(m: &Manifest, first: Option<&(u64, Hash)>, last: Option<&(u64, Hash)>) -> String {
    let q = &m.query;
    let or = |v: &Option<String>, none: &str| v.as_deref().map_or(none.to_owned(), encode_str);
    let range = match (first, last) {
        (Some((a, _)), Some((b, _))) => format!(" (global indices {a} to {b})"),
        _ => String::new(),
    };
    format!(
        r#"sealtrail evidence bundle
=========================

This archive is evidence exported from the sealtrail audit log {origin}.
It holds the events that the query below matched when the bundle was created,
each with a proof that it is in the signed log, unaltered. A signed manifest
states the query and the exact set of events, so that adding, removing or
changing any event, or changing the query, is detected.

Query:         {query}
From:          {from}
To:            {to}
Requested by:  {requested_by}
Created:       {created}
Events:        {events}{range}
Checkpoint:    {size} segments, root {root}

This README is informational only: it is not signed and verification
ignores it. The signed statements are in `checkpoint` and `manifest`.

Members
-------
README.txt     this text
signing.vkey   the log's public key (C2SP vkey). Do not rely on this copy:
               compare it with the key you obtained independently from the
               log operator, and verify with that key.
checkpoint     the signed checkpoint (C2SP signed note) every proof ends at
manifest       a signed note, by the same key, stating the query, the
               checkpoint, the number of events and a SHA-256 digest over
               their indices and leaf hashes
events.ndjson  one inclusion proof (JSON) per line, in ascending index order

Verify with sealtrail
---------------------
    sealtrail verify --bundle THIS_FILE --vkey signing.vkey [--json]

using the signing.vkey you obtained independently. Exit code 0: the bundle
verified; 1: it did not (each problem is named); 2: usage or I/O error.

Verify by hand (see docs/LEDGER.md §6, §7 and §11 of sealtrail)
--------------
1. Verify `checkpoint` as a C2SP signed note with your key (§6.2): size and
   root of the log.
2. Verify `manifest` as a signed note with the same key. Its text is
   line-oriented (§11.2): the header line `{header}`, then
   origin, query, from, to, requested-by, created, checkpoint-size,
   checkpoint-root, events and events-sha256. Check that checkpoint-size and
   checkpoint-root equal the checkpoint's.
3. For each line of `events.ndjson`, verify the inclusion proof (§7.1) and
   check that its `checkpoint` member is byte-for-byte the `checkpoint` file.
   Indices must be strictly ascending.
4. Count the lines: the count must equal `events`. Compute SHA-256 over the
   concatenation, in index order, of each event's index as 8 bytes big-endian
   followed by its 32-byte leaf hash SHA-256(0x00 || entry bytes); the
   lower-case hex digest must equal `events-sha256`.
"#,
        origin = m.origin,
        query = encode_str(&q.q),
        from = or(&q.from, "(not limited)"),
        to = or(&q.to, "(not limited)"),
        requested_by = or(&q.requested_by, "(not given)"),
        created = encode_str(&q.created),
        events = m.events,
        size = m.checkpoint_size,
        root = B64.encode(m.checkpoint_root),
        header = MANIFEST_HEADER,
    )
}

// ---------------------------------------------------------------------------
// Checking: the verifier crate's (`sealtrail_verify::bundle`), with the
// service's key and result types.

/// Checks a bundle read from `input` with the log's public key and returns
/// the verified bundle, or the first problem found.
pub fn verify_bundle(
    input: impl Read,
    verifier: &NoteVerifier,
) -> Result<VerifiedBundle, BundleError> {
    let report = check_bundle(input, verifier);
    match report.verified {
        Some(v) => Ok(v),
        // A report without a verified bundle always holds an error.
        None => Err(report
            .errors
            .into_iter()
            .next()
            .unwrap_or(BundleError::Key("the bundle was not verified".into()))),
    }
}

/// Checks a bundle and lists every problem found (up to [`MAX_ISSUES`]).
pub fn check_bundle(input: impl Read, verifier: &NoteVerifier) -> BundleReport {
    let mut report = BundleReport {
        verified: None,
        query: None,
        checkpoint: None,
        events: 0,
        errors: Vec::new(),
        errors_omitted: 0,
    };
    let v = match crate::ledger::verify::crate_verifier(verifier) {
        Ok(v) => v,
        Err(e) => {
            report.errors.push(BundleError::Key(e.to_string()));
            return report;
        }
    };
    let r = sealtrail_verify::bundle::check_bundle(input, &v);
    let query = |q: sealtrail_verify::bundle::BundleQuery| BundleQuery {
        q: q.q,
        from: q.from,
        to: q.to,
        requested_by: q.requested_by,
        created: q.created,
    };
    report.verified = r.verified.map(|b| {
        let b = b.into_inner();
        VerifiedBundle {
            query: query(b.query),
            origin: b.checkpoint.origin.clone(),
            checkpoint: crate::ledger::verify::service_checkpoint(b.checkpoint),
            checkpoint_text: b.checkpoint_text,
            entries: b
                .entries
                .into_iter()
                .map(|e| BundleEntry {
                    index: e.index,
                    entry: e.entry,
                })
                .collect(),
            events_sha256: b.events_sha256,
        }
    });
    report.query = r.query.map(query);
    report.checkpoint = r.checkpoint.map(crate::ledger::verify::service_checkpoint);
    report.events = r.events;
    report.errors = r.errors.into_iter().map(BundleError::Check).collect();
    report.errors_omitted = r.errors_omitted;
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query() -> BundleQuery {
        BundleQuery {
            q: "patient.id:\"MRN-0012345\"\n\u{7f}\u{85}é\u{2028}".into(),
            from: Some("2026-01-01T00:00:00Z".into()),
            to: None,
            requested_by: Some("auditor@example.org".into()),
            created: "2026-11-27T14:03:11Z".into(),
        }
    }

    fn manifest() -> Manifest {
        Manifest {
            origin: "clinic.example/sealtrail".into(),
            query: query(),
            checkpoint_size: 12,
            checkpoint_root: [7; 32],
            events: 3,
            events_sha256: [9; 32],
        }
    }

    #[test]
    fn manifest_text_is_one_line_per_field_without_control_characters() {
        let text = manifest().to_text();
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{text}");
        assert_eq!(text.lines().count(), 11);
        assert!(text.starts_with(MANIFEST_HEADER));
    }

    #[test]
    fn query_bounds() {
        let mut q = query();
        q.created = "yesterday".into();
        assert!(matches!(
            q.validate(),
            Err(BundleError::Query {
                field: "created",
                ..
            })
        ));
        let mut q = query();
        q.q = "x".repeat(MAX_QUERY_LEN + 1);
        assert!(q.validate().is_err());
    }

    #[test]
    fn empty_digest_is_sha256_of_nothing() {
        assert_eq!(events_digest(&[]), crate::ledger::hash::EMPTY_ROOT);
    }
}

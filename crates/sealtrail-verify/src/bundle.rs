//! Evidence bundles (LEDGER.md §11): a ustar archive of `README.txt`,
//! `signing.vkey`, `checkpoint`, `manifest` (a signed note, §11.2) and
//! `events.ndjson` (one inclusion proof per line, compact JSON as sealtrail
//! writes it, ascending index, last member). Every problem is listed with
//! its member, event index and kind, as `sealtrail verify-bundle --json`
//! prints them (the kinds are those of §11.4).

use crate::hash::{Hash, leaf_hash};
use crate::keys::{self, KeyChain, KeyHistoryError};
use crate::note::{self, Checkpoint, NoteError, NoteVerifier};
use crate::proof::{self, InclusionProof};
use crate::tar::{self, TarReader};
use crate::verified::Verified;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::fmt::Display;
use std::io::{BufRead, BufReader, Read};

/// First line of the manifest text; names the format and its version.
pub const MANIFEST_HEADER: &str = "sealtrail evidence bundle v1";
/// Most events one bundle holds.
pub const MAX_BUNDLE_EVENTS: u64 = 100_000;
/// Longest line of `events.ndjson`: a 1 MiB entry is at most 2 MiB once
/// JSON-escaped, plus paths, record and the checkpoint note.
pub const MAX_PROOF_LINE: u64 = 4 << 20;
/// Most problems listed in a report; the rest are counted.
pub const MAX_ISSUES: usize = 1000;

pub const README_MEMBER: &str = "README.txt";
pub const VKEY_MEMBER: &str = "signing.vkey";
pub const CHECKPOINT_MEMBER: &str = "checkpoint";
pub const MANIFEST_MEMBER: &str = "manifest";
pub const EVENTS_MEMBER: &str = "events.ndjson";
/// Optional: the log's key transitions when its signing key was rotated
/// (§14); must precede `signing.vkey`.
pub const KEY_HISTORY_MEMBER: &str = "key-history.json";

/// The members of a bundle in the order sealtrail writes them, with the
/// largest size accepted for each. `events.ndjson` must come last.
const MEMBERS: [(&str, u64); 6] = [
    (README_MEMBER, 64 << 10),
    (KEY_HISTORY_MEMBER, keys::MAX_KEY_HISTORY_LEN),
    // A vkey line is at most ~320 bytes.
    (VKEY_MEMBER, 1 << 10),
    (CHECKPOINT_MEMBER, note::MAX_NOTE_LEN as u64),
    // The query fields are bounded (`BundleQuery::validate`).
    (MANIFEST_MEMBER, 64 << 10),
    (EVENTS_MEMBER, 1 << 30),
];

/// A problem found in a bundle: its kind (as in `--json` output and
/// LEDGER.md §11.4), the member it is in and the global index of the event
/// it concerns, when there are ones.
#[derive(Debug, thiserror::Error, serde::Serialize)]
#[error("{detail}")]
pub struct BundleError {
    pub member: Option<&'static str>,
    pub index: Option<u64>,
    pub kind: &'static str,
    pub detail: String,
}

impl BundleError {
    pub(crate) fn new(kind: &'static str, member: Option<&'static str>, detail: String) -> Self {
        BundleError { kind, member, index: None, detail }
    }

    /// The archive cannot be read (further).
    pub(crate) fn archive(e: impl Display) -> Self {
        Self::new("archive", None, format!("archive is unreadable: {e}"))
    }

    fn event(kind: &'static str, index: u64, detail: impl Display) -> Self {
        let detail = format!("event {index}: {detail}");
        BundleError { kind, member: Some(EVENTS_MEMBER), index: Some(index), detail }
    }

    fn key_history(e: KeyHistoryError) -> Self {
        Self::new(e.kind(), Some(KEY_HISTORY_MEMBER), format!("key history: {e}"))
    }
}

fn truncated(name: &'static str, missing: u64) -> BundleError {
    let detail = format!("member {name} is cut short: the archive ends {missing} bytes early");
    BundleError::new("truncated", Some(name), detail)
}

fn line_error(line: u64, reason: impl Display) -> BundleError {
    let detail = format!("events.ndjson line {line}: {reason}");
    BundleError::new("event_line", Some(EVENTS_MEMBER), detail)
}

/// What produced a bundle: the search query, its time range, who asked and
/// when. All of it is signed in the manifest.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BundleQuery {
    /// The search query text, as given (at most 4096 bytes).
    pub q: String,
    /// Start of the time range (RFC 3339), if any.
    pub from: Option<String>,
    /// End of the time range (RFC 3339), if any.
    pub to: Option<String>,
    /// Who asked for the bundle (at most 256 bytes).
    pub requested_by: Option<String>,
    /// When the bundle was created (RFC 3339).
    pub created: String,
}

impl BundleQuery {
    /// Checks the bounds of §11.2 (so that manifest and README stay small)
    /// and that the times are RFC 3339.
    pub fn validate(&self) -> Result<(), BundleError> {
        // (field, value, most bytes, is a time)
        let fields = [
            ("q", Some(&self.q), 4096, false),
            ("requested_by", self.requested_by.as_ref(), 256, false),
            ("from", self.from.as_ref(), 64, true),
            ("to", self.to.as_ref(), 64, true),
            ("created", Some(&self.created), 64, true),
        ];
        for (field, value, max, time) in fields {
            let Some(v) = value else { continue };
            let reason = if v.len() > max {
                format!("longer than {max} bytes")
            } else if time && !crate::time::rfc3339_any_year(v.as_bytes()) {
                "not an RFC 3339 time".into()
            } else {
                continue;
            };
            return Err(BundleError::new("query", None, format!("query field {field}: {reason}")));
        }
        Ok(())
    }
}

/// One proven event of a verified bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleEntry {
    pub index: u64,
    /// The entry's canonical bytes, exactly as hashed.
    pub entry: Vec<u8>,
}

/// A bundle that passed every check.
#[derive(Clone, Debug)]
pub struct Bundle {
    pub query: BundleQuery,
    /// Its origin is the log's (and the manifest's).
    pub checkpoint: Checkpoint,
    /// The signed checkpoint note, exactly as in the bundle.
    pub checkpoint_text: String,
    /// The events in ascending index order.
    pub entries: Vec<BundleEntry>,
    pub events_sha256: Hash,
}

/// The outcome of checking a bundle: every problem found (up to
/// [`MAX_ISSUES`]), and the verified bundle when there were none.
#[derive(Debug, Default)]
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
        let checkpoint = (self.checkpoint.as_ref())
            .map(|c| serde_json::json!({"size": c.size, "root": B64.encode(c.root)}));
        serde_json::json!({
            "ok": self.ok(),
            "events": self.events,
            "checkpoint": checkpoint,
            "query": self.query,
            "errors": self.errors,
            "errors_omitted": self.errors_omitted,
        })
    }
}

/// The signed statement of a bundle (§11.2). Its text has exactly one spelling.
struct Manifest {
    query: BundleQuery,
    checkpoint_size: u64,
    checkpoint_root: Hash,
    events: u64,
    events_sha256: Hash,
}

/// A string as a JSON string literal on one line (§11.2): serde_json's
/// escapes (`\"`, `\\`, `\b \t \n \f \r`, lower-case `\u00xx` for the rest of
/// U+0000..U+001F), plus `\u00xx` for U+007F..U+009F, the other characters
/// of Unicode category Cc, which serde_json leaves raw. A signed note may hold
/// no control character.
fn encode_str(s: &str) -> String {
    let json = serde_json::to_string(s).unwrap_or_default();
    json.chars()
        .map(|c| if c.is_control() { format!("\\u{:04x}", u32::from(c)) } else { c.to_string() })
        .collect()
}

/// Keys of the manifest lines after the header, in order.
const MANIFEST_KEYS: &str = "origin query from to requested-by created checkpoint-size checkpoint-root events events-sha256";

impl Manifest {
    /// Parses the signed text of a manifest of log `origin`. Every value must
    /// be in its one spelling (decoded and encoded again, it is unchanged),
    /// so that no byte of the text can change undetected.
    fn parse(text: &str, origin: &str) -> Result<Self, BundleError> {
        let bad = |line: usize, reason: String| {
            let detail = format!("manifest line {line}: {reason}");
            BundleError::new("manifest_format", Some(MANIFEST_MEMBER), detail)
        };
        let lines: Vec<&str> = text.split('\n').collect();
        if lines.len() != 12 || lines[0] != MANIFEST_HEADER || !lines[11].is_empty() {
            let want = format!("{MANIFEST_HEADER:?} and 10 lines, each ending with a newline");
            return Err(bad(0, format!("is not {want}")));
        }
        // `v[i]` is the value of key `keys[i]`, on line `i + 2`.
        let keys: Vec<&str> = MANIFEST_KEYS.split(' ').collect();
        let mut v = [""; 10];
        for (i, key) in keys.iter().enumerate() {
            let value = lines[i + 1].strip_prefix(key).and_then(|rest| rest.strip_prefix(' '));
            v[i] = value.ok_or_else(|| bad(i + 2, format!("want `{key} <value>`")))?;
        }
        let not = |i: usize, what: &str| bad(i + 2, format!("{} is not {what}", keys[i]));
        let string = |i: usize| {
            let s = serde_json::from_str::<String>(v[i]).ok();
            s.filter(|s| encode_str(s) == v[i])
                .ok_or_else(|| not(i, "a JSON string as §11.2 spells it"))
        };
        let opt_string = |i: usize| if v[i] == "null" { Ok(None) } else { string(i).map(Some) };
        let number =
            |i: usize| note::parse_decimal(v[i], "").map_err(|_| not(i, "a decimal number"));
        // Standard base64 and `unhex` accept one spelling of each value only.
        let root = B64.decode(v[7]).ok().and_then(|r| Hash::try_from(r).ok());
        let sha256: Option<Hash> = crate::unhex(v[9]);
        let manifest = Manifest {
            query: BundleQuery {
                q: string(1)?,
                from: opt_string(2)?,
                to: opt_string(3)?,
                requested_by: opt_string(4)?,
                created: string(5)?,
            },
            checkpoint_size: number(6)?,
            checkpoint_root: root.ok_or_else(|| not(7, "base64 of a 32-byte hash"))?,
            events: number(8)?,
            events_sha256: sha256.ok_or_else(|| not(9, "64 lower-case hex digits"))?,
        };
        manifest.query.validate().map_err(|e| bad(0, e.to_string()))?;
        if v[0] != origin {
            let detail = format!("manifest is for log {:?}, the key is for {origin:?}", v[0]);
            return Err(BundleError::new("manifest_origin", Some(MANIFEST_MEMBER), detail));
        }
        Ok(manifest)
    }
}

/// Checks a bundle and lists every problem found (up to [`MAX_ISSUES`]).
pub fn check_bundle(input: impl Read, verifier: &NoteVerifier) -> BundleReport {
    let mut checker = Checker {
        verifier,
        keys: KeyChain::single(verifier),
        seen: Vec::new(),
        checkpoint_text: None,
        manifest: None,
        pairs: Vec::new(),
        entries: Vec::new(),
        report: BundleReport::default(),
    };
    // An error returned means the archive could not be read to its end.
    let fatal = checker.read_archive(input).map_err(|e| checker.push(e)).is_err();
    checker.finish(fatal)
}

struct Checker<'v> {
    verifier: &'v NoteVerifier,
    /// `verifier` and the transitions of the key-history member.
    keys: KeyChain,
    /// The members read so far, in order.
    seen: Vec<&'static str>,
    /// Kept even when invalid, to compare the proofs' copies with.
    checkpoint_text: Option<String>,
    manifest: Option<Manifest>,
    /// (index, leaf hash) of every parsed proof, verified or not.
    pairs: Vec<(u64, Hash)>,
    entries: Vec<BundleEntry>,
    /// Filled in as the checks go.
    report: BundleReport,
}

impl Checker<'_> {
    fn fail(&mut self, kind: &'static str, member: &'static str, detail: String) {
        self.push(BundleError::new(kind, Some(member), detail));
    }

    fn push(&mut self, e: BundleError) {
        if self.report.errors.len() < MAX_ISSUES {
            self.report.errors.push(e);
        } else {
            self.report.errors_omitted += 1;
        }
    }

    /// Walks the archive. Errors returned are fatal (the archive cannot be
    /// read further); problems inside a member are pushed and reading goes on.
    fn read_archive(&mut self, input: impl Read) -> Result<(), BundleError> {
        let mut archive = TarReader::new(input);
        while let Some(header) = archive.next_header()? {
            let Some(&(name, max)) = MEMBERS.iter().find(|(n, _)| n.as_bytes() == header.name)
            else {
                let name: String =
                    String::from_utf8_lossy(&header.name).chars().take(100).collect();
                let detail = format!("member {name:?} is not part of an evidence bundle");
                return Err(BundleError::new("unexpected_member", None, detail));
            };
            let size = header.size;
            let fail = |kind, what: &str| {
                Err(BundleError::new(kind, Some(name), format!("member {name} {what}")))
            };
            if self.seen.contains(&name) {
                return fail("duplicate_member", "appears more than once");
            }
            if self.seen.contains(&EVENTS_MEMBER) {
                return fail(
                    "member_order",
                    "comes after events.ndjson, which must be the last member",
                );
            }
            if name == KEY_HISTORY_MEMBER && self.seen.iter().any(|&n| n != README_MEMBER) {
                return fail(
                    "member_order",
                    "must come before signing.vkey, checkpoint and manifest",
                );
            }
            if !header.is_regular() {
                return fail("member_type", "is not a regular file");
            }
            if size > max {
                return fail(
                    "member_too_large",
                    &format!("is {size} bytes, more than the {max}-byte limit"),
                );
            }
            self.seen.push(name);
            match name {
                // Informational: bounded, never read.
                README_MEMBER => {}
                EVENTS_MEMBER => self.read_events(archive.data(size), size)?,
                _ => {
                    let bytes = tar::read_up_to(archive.data(size), size)?;
                    if (bytes.len() as u64) < size {
                        return Err(truncated(name, size - bytes.len() as u64));
                    }
                    self.check_member(name, bytes);
                }
            }
        }
        Ok(())
    }

    fn check_member(&mut self, name: &'static str, bytes: Vec<u8>) {
        match name {
            KEY_HISTORY_MEMBER => {
                let keys = keys::parse_history(&bytes);
                match keys.and_then(|h| KeyChain::follow(self.verifier, &h)) {
                    Ok(keys) => self.keys = keys,
                    Err(e) => self.push(BundleError::key_history(e)),
                }
            }
            VKEY_MEMBER => {
                // The bundle's signer: the key current after the transitions.
                let vkey = self.keys.current().to_vkey();
                if bytes != format!("{vkey}\n").as_bytes() {
                    let found: String = String::from_utf8_lossy(&bytes).chars().take(400).collect();
                    let found = found.trim_end();
                    let detail = format!("bundle has {found:?}, expected {vkey:?}");
                    self.fail(
                        "vkey",
                        name,
                        format!("{name} is not the key being verified with: {detail}"),
                    );
                }
            }
            CHECKPOINT_MEMBER => {
                let text = String::from_utf8(bytes).ok();
                let opened = (text.as_deref())
                    .ok_or(KeyHistoryError::Checkpoint(NoteError::NotUtf8))
                    .and_then(|text| self.keys.open_checkpoint(text));
                match opened {
                    Ok(cp) => self.report.checkpoint = Some(cp),
                    Err(KeyHistoryError::Checkpoint(e)) => {
                        self.fail("checkpoint_signature", name, format!("checkpoint: {e}"))
                    }
                    Err(e) => self.push(BundleError::key_history(e)),
                }
                self.checkpoint_text = text;
            }
            MANIFEST_MEMBER => {
                let text = std::str::from_utf8(&bytes).map_err(|_| NoteError::NotUtf8);
                match text.and_then(|text| note::open_note(text, self.keys.current())) {
                    Ok(body) => match Manifest::parse(body, self.verifier.name()) {
                        Ok(m) => self.manifest = Some(m),
                        Err(e) => self.push(e),
                    },
                    Err(e) => {
                        self.fail("manifest_signature", name, format!("manifest signature: {e}"))
                    }
                }
            }
            _ => {}
        }
    }

    fn read_events(&mut self, data: impl Read, size: u64) -> Result<(), BundleError> {
        let mut reader = BufReader::new(data.take(size));
        let mut line = Vec::new();
        let mut line_no = 0u64;
        let mut seen = HashSet::new();
        let mut previous: Option<u64> = None;
        loop {
            line.clear();
            let n = (&mut reader)
                .take(MAX_PROOF_LINE + 1)
                .read_until(b'\n', &mut line)
                .map_err(BundleError::archive)?;
            if n == 0 {
                break;
            }
            line_no += 1;
            if line.len() as u64 > MAX_PROOF_LINE {
                return Err(line_error(line_no, format!("longer than {MAX_PROOF_LINE} bytes")));
            }
            if line_no > MAX_BUNDLE_EVENTS {
                let detail =
                    format!("a bundle holds at most {MAX_BUNDLE_EVENTS} events; got {line_no}");
                return Err(BundleError::new("too_many_events", Some(EVENTS_MEMBER), detail));
            }
            // A line without its newline is the last one read.
            let Some(body) = line.strip_suffix(b"\n") else {
                // When the member is cut short, that is reported below.
                if reader.get_ref().limit() == 0 {
                    self.push(line_error(line_no, "does not end with a newline"));
                }
                break;
            };
            let Some(index) = self.check_event(line_no, body) else {
                continue;
            };
            if !seen.insert(index) {
                self.push(BundleError::event("duplicate_event", index, "appears more than once"));
            } else if let Some(p) = previous.filter(|&p| index < p) {
                let detail =
                    format!("comes after event {p}; events must be in ascending index order");
                self.push(BundleError::event("event_order", index, detail));
            }
            previous = previous.max(Some(index));
        }
        // At the end of the input, the bytes not read are all missing.
        match reader.get_ref().limit() {
            0 => Ok(()),
            missing => Err(truncated(EVENTS_MEMBER, missing)),
        }
    }

    /// Checks one line of events.ndjson; returns the index it claims.
    fn check_event(&mut self, line_no: u64, body: &[u8]) -> Option<u64> {
        let parsed = crate::json::parse_strict(body)
            .map_err(|e| e.to_string())
            .and_then(|v| serde_json::from_value::<InclusionProof>(v).map_err(|e| e.to_string()));
        let proof = match parsed {
            Ok(p) => p,
            Err(e) => {
                self.push(line_error(line_no, format!("not an inclusion proof: {e}")));
                return None;
            }
        };
        let index = proof.index;
        // Byte-exact: the line must be what sealtrail writes for this proof.
        if serde_json::to_vec(&proof).ok().as_deref() != Some(body) {
            let reason = format!(
                "proof of event {index} is not in canonical form (compact JSON as sealtrail writes it)"
            );
            self.push(line_error(line_no, reason));
        }
        // The bundle carries the key history once (`key-history.json`); a
        // proof line's own would ride along outside `events-sha256` (§11.4).
        if proof.key_history.is_some() {
            let reason = format!("proof of event {index} carries a key_history member");
            self.push(line_error(line_no, reason));
        }
        self.pairs.push((index, leaf_hash(proof.entry.as_bytes())));
        // A missing checkpoint member is reported once, not per event.
        if self.checkpoint_text.as_ref().is_some_and(|text| *text != proof.checkpoint) {
            let detail = "its proof ends at a different checkpoint than the bundle's";
            self.push(BundleError::event("event_checkpoint", index, detail));
        }
        match proof::verify_inclusion_with_keys(&proof, &self.keys) {
            Ok(_) => self.entries.push(BundleEntry { index, entry: proof.entry.into_bytes() }),
            Err(e) => self.push(BundleError::event("event_proof", index, e)),
        }
        Some(index)
    }

    fn finish(mut self, fatal: bool) -> BundleReport {
        for (name, _) in MEMBERS {
            if !fatal && !self.seen.contains(&name) && name != KEY_HISTORY_MEMBER {
                self.fail("missing_member", name, format!("member {name} is missing"));
            }
        }
        if let (Some(m), Some(cp)) = (&self.manifest, &self.report.checkpoint)
            && (m.checkpoint_size != cp.size || m.checkpoint_root != cp.root)
        {
            let at = |size: u64, root: &Hash| format!("size {size} root {}", B64.encode(root));
            let (theirs, ours) = (at(m.checkpoint_size, &m.checkpoint_root), at(cp.size, &cp.root));
            let detail =
                format!("manifest is for checkpoint {theirs}, the bundle's checkpoint is {ours}");
            self.fail("checkpoint_mismatch", MANIFEST_MEMBER, detail);
        }
        if let Some(m) = &self.manifest
            && self.seen.contains(&EVENTS_MEMBER)
            && !fatal
        {
            let (expected, digest) = (m.events, m.events_sha256);
            let found = self.pairs.len() as u64;
            if expected != found {
                let detail = format!(
                    "manifest lists {expected} events, events.ndjson holds {found}: events were added or removed"
                );
                self.fail("event_count", EVENTS_MEMBER, detail);
            }
            // SHA-256 over `index (u64 big-endian) || leaf hash` of each
            // event, in ascending index order.
            self.pairs.sort_unstable_by_key(|(index, _)| *index);
            let mut h = Sha256::new();
            for (index, leaf) in &self.pairs {
                h.update(index.to_be_bytes());
                h.update(leaf);
            }
            if Hash::from(h.finalize()) != digest {
                let detail = "events do not match the manifest's events-sha256: an event was added, removed or replaced".into();
                self.fail("event_digest", EVENTS_MEMBER, detail);
            }
        }
        let mut report = self.report;
        report.events = self.entries.len() as u64;
        report.query = self.manifest.as_ref().map(|m| m.query.clone());
        if let (Some(m), Some(cp), Some(text)) =
            (self.manifest, &report.checkpoint, self.checkpoint_text)
            && report.errors.is_empty()
        {
            report.verified = Some(Verified::new(Bundle {
                query: m.query,
                checkpoint: cp.clone(),
                checkpoint_text: text,
                entries: self.entries,
                events_sha256: m.events_sha256,
            }));
        }
        report
    }
}

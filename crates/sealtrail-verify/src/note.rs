//! C2SP `signed-note`, `tlog-checkpoint` and `tlog-cosignature`
//! (LEDGER.md §5 "Checkpoints"; witness cosignatures: C2SP
//! tlog-cosignature `cosignature/v1`).
//!
//! A note is UTF-8 text ending in a newline, a blank line, and signature
//! lines `— <name> <base64(key id || signature)>`. A checkpoint is a note
//! whose text is `origin\nsize\nbase64(root)\n` plus extension lines. A
//! verifier key ("vkey") is `<name>+<8 hex key id>+<base64(type || key)>`
//! with type 0x01 (Ed25519 note signer) or 0x04 (cosignature/v1 witness);
//! the key id is `SHA-256(name || 0x0A || type || key)[..4]`.

use crate::hash::{Hash, sha256};
use crate::verified::Verified;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, VerifyingKey};

/// Largest note accepted or produced.
pub const MAX_NOTE_LEN: usize = 1 << 20;
/// Most signature lines accepted on one note.
const MAX_SIGNATURES: usize = 100;

/// Why a note, checkpoint or vkey was rejected; the message names the rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("note is not utf-8")]
    NotUtf8,
    #[error("{0}")]
    Invalid(String),
}

fn err(message: impl Into<String>) -> NoteError {
    NoteError::Invalid(message.into())
}

/// The body of a C2SP `tlog-checkpoint`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    /// Extension lines, without their newlines.
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// Parse a checkpoint body, accepting only the one canonical encoding.
    pub fn parse_body(body: &str) -> Result<Self, NoteError> {
        let body = body
            .strip_suffix('\n')
            .ok_or_else(|| err("checkpoint body does not end with a newline"))?;
        let lines: Vec<&str> = body.split('\n').collect();
        for (i, line) in lines.iter().enumerate() {
            let what = if line.is_empty() { "is empty" } else { "contains a control character" };
            if line.is_empty() || line.chars().any(char::is_control) {
                return Err(err(format!("checkpoint body line {} {what}", i + 1)));
            }
        }
        let [origin, size, root, extensions @ ..] = lines.as_slice() else {
            let n = lines.len();
            return Err(err(format!("checkpoint body has {n} lines, want at least 3")));
        };
        let size = parse_decimal(size, "checkpoint size")?;
        // STANDARD requires padding and zero trailing bits, so each root has
        // exactly one accepted spelling; 44 characters, bounded before decoding.
        let raw = Some(root)
            .filter(|r| r.len() <= 64)
            .and_then(|r| STANDARD.decode(r).ok())
            .ok_or_else(|| err("checkpoint root is not standard base64"))?;
        Ok(Self {
            origin: (*origin).to_owned(),
            size,
            root: Hash::try_from(raw.as_slice())
                .map_err(|_| err(format!("checkpoint root has {} bytes, want 32", raw.len())))?,
            extensions: extensions.iter().map(|e| (*e).to_owned()).collect(),
        })
    }
}

/// A canonical decimal `u64` (no sign, no leading zero); `what` names it.
pub(crate) fn parse_decimal(s: &str, what: &str) -> Result<u64, NoteError> {
    match s.as_bytes() {
        b if b.is_empty() || !b.iter().all(u8::is_ascii_digit) => {
            Err(err(format!("{what} is not a decimal number")))
        }
        [b'0', _, ..] => Err(err(format!("{what} has a leading zero"))),
        _ => s.parse().map_err(|_| err(format!("{what} does not fit in 64 bits"))),
    }
}

fn check_len(note: &str) -> Result<(), NoteError> {
    match note.len() {
        len if len > MAX_NOTE_LEN => {
            Err(err(format!("note is {len} bytes, more than {MAX_NOTE_LEN}")))
        }
        _ => Ok(()),
    }
}

/// The text of a note (up to and including the newline before the last
/// blank line), its signatures NOT checked: only to learn which key to
/// check them with.
pub(crate) fn unverified_text(note: &str) -> Result<&str, NoteError> {
    let split = note.rfind("\n\n");
    split
        .map(|s| &note[..=s])
        .ok_or_else(|| err("note has no blank line before the signature block"))
}

/// A note's signed text (ending in a newline) and its signature lines
/// (without the final newline), after checking the note's form.
fn split_note(note: &str) -> Result<(&str, &str), NoteError> {
    check_len(note)?;
    if let Some((i, _)) = note.char_indices().find(|&(_, c)| c.is_control() && c != '\n') {
        return Err(err(format!("note contains a control character at byte {i}")));
    }
    // Keep the text's final newline; it is part of what was signed.
    let text = unverified_text(note)?;
    let sigs = &note[text.len() + 1..];
    let sigs = sigs
        .strip_suffix('\n')
        .ok_or_else(|| err("signature block does not end with a newline"))?;
    Ok((text, sigs))
}

/// Signature line `no` (from 1): the key name and the decoded
/// `key id (4) || signature` bytes, at least 5 of them.
fn signature_line(no: usize, line: &str) -> Result<(&str, Vec<u8>), NoteError> {
    if no > MAX_SIGNATURES {
        return Err(err(format!("note has more than {MAX_SIGNATURES} signature lines")));
    }
    let bad = |what: &str| err(format!("signature line {no} {what}"));
    let rest = line
        .strip_prefix("\u{2014} ")
        .ok_or_else(|| bad("does not start with an em dash and space"))?;
    let (name, b64) =
        rest.split_once(' ').ok_or_else(|| bad("has no space between name and signature"))?;
    if !valid_name(name) {
        return Err(bad("has an invalid key name"));
    }
    let blob = STANDARD.decode(b64).map_err(|_| bad("is not standard base64"))?;
    if blob.len() < 5 {
        return Err(bad(&format!("has {} bytes, too short for key id and signature", blob.len())));
    }
    Ok((name, blob))
}

/// A signature that is not the Ed25519 signature its key's type wants.
fn wrong_length(no: usize, blob: &[u8]) -> NoteError {
    err(format!("signature line {no} by our key has {} bytes, want 68", blob.len()))
}

/// Check the note's signature by `verifier` and return its text (the
/// signed bytes, ending in a newline). Public for notes that are not
/// checkpoints, such as evidence-bundle manifests.
pub fn open_note<'a>(note: &'a str, verifier: &NoteVerifier) -> Result<&'a str, NoteError> {
    let (text, sigs) = split_note(note)?;
    let mut ours = 0usize;
    for (i, line) in sigs.split('\n').enumerate() {
        let (name, blob) = signature_line(i + 1, line)?;
        // Signatures by other keys are allowed and ignored (C2SP signed-note).
        if name != verifier.name || blob[..4] != verifier.key_id {
            continue;
        }
        let sig = Signature::from_slice(&blob[4..]).map_err(|_| wrong_length(i + 1, &blob))?;
        // Strict: rejects non-canonical signatures and small-order keys.
        if verifier.key.verify_strict(text.as_bytes(), &sig).is_err() {
            return Err(err(format!("signature by key {name} does not verify")));
        }
        ours += 1;
    }
    if ours == 0 {
        let (name, id) = (&verifier.name, crate::hex(&verifier.key_id));
        return Err(err(format!("no signature by key {name} ({id})")));
    }
    Ok(text)
}

/// Verify a signed checkpoint note against `verifier` and parse it. The
/// checkpoint's origin must be the verifier's key name.
pub fn open_checkpoint(
    note: &str,
    verifier: &NoteVerifier,
) -> Result<Verified<Checkpoint>, NoteError> {
    let checkpoint = Checkpoint::parse_body(open_note(note, verifier)?)?;
    if checkpoint.origin != verifier.name {
        let (origin, name) = (&checkpoint.origin, &verifier.name);
        return Err(err(format!("checkpoint origin {origin:?} does not match key name {name:?}")));
    }
    Ok(Verified::new(checkpoint))
}

/// The checkpoint body of a note WITHOUT checking any signature: only to
/// learn its size, and so which key of a key history must have signed it.
pub fn parse_unverified_checkpoint(note: &str) -> Result<Checkpoint, NoteError> {
    check_len(note)?;
    Checkpoint::parse_body(unverified_text(note)?)
}

/// C2SP key name rules (non-empty, no Unicode whitespace, no '+'), plus no
/// control characters, which could not survive a note line.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c.is_control() || c == '+')
}

/// `SHA-256(name || 0x0A || type || public key)[..4]`.
pub fn key_id(name: &str, alg: u8, key: &[u8; 32]) -> [u8; 4] {
    let [a, b, c, d, ..] = sha256(&[name.as_bytes(), b"\n", &[alg], &key[..]].concat());
    [a, b, c, d]
}

/// A named Ed25519 public key parsed from a vkey line: the log's key
/// (`NoteVerifier::from_vkey`) or a witness key (`from_witness_vkey`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    alg: u8,
    key_id: [u8; 4],
    key: VerifyingKey,
}

impl NoteVerifier {
    /// Parses the log's `<name>+<key id>+<base64(0x01 || key)>`.
    pub fn from_vkey(line: &str) -> Result<Self, NoteError> {
        Self::parse(line, 0x01)
    }

    /// Parses a witness's `<name>+<key id>+<base64(0x04 || key)>`
    /// (C2SP `cosignature/v1`).
    pub fn from_witness_vkey(line: &str) -> Result<Self, NoteError> {
        Self::parse(line, 0x04)
    }

    fn parse(line: &str, want_alg: u8) -> Result<Self, NoteError> {
        // The name has no '+' but base64 may, so split at most twice.
        let parts: Vec<&str> = line.splitn(3, '+').collect();
        let [name, id_hex, key_b64] = parts[..] else {
            return Err(err("vkey must be <name>+<key id>+<key>"));
        };
        if !valid_name(name) {
            return Err(err(
                "invalid key name: must be non-empty without whitespace, control characters or '+'",
            ));
        }
        let got_id = crate::unhex::<4>(id_hex)
            .ok_or_else(|| err("vkey key id must be 8 lowercase hex digits"))?;
        // base64 of 33 bytes is 44 characters; bound before decoding.
        let raw = Some(key_b64)
            .filter(|k| k.len() == 44)
            .and_then(|k| STANDARD.decode(k).ok())
            .ok_or_else(|| err("vkey key is not standard base64"))?;
        let pk: [u8; 32] = raw
            .get(1..)
            .and_then(|pk| pk.try_into().ok())
            .ok_or_else(|| err(format!("vkey key has {} bytes, want 33", raw.len())))?;
        let alg = raw[0];
        if alg != want_alg {
            return Err(err(format!("vkey algorithm {alg:#04x} is not {want_alg:#04x}")));
        }
        let key = VerifyingKey::from_bytes(&pk)
            .map_err(|_| err("vkey public key is not a valid ed25519 point"))?;
        let key_id = key_id(name, alg, &pk);
        if key_id != got_id {
            let want = crate::hex(&key_id);
            return Err(err(format!("vkey key id {id_hex} does not match the key, want {want}")));
        }
        Ok(Self { name: name.to_owned(), alg, key_id, key })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The vkey line this verifier was parsed from.
    pub fn to_vkey(&self) -> String {
        let raw = [&[self.alg][..], &self.key.as_bytes()[..]].concat();
        format!("{}+{}+{}", self.name, crate::hex(&self.key_id), STANDARD.encode(raw))
    }

    pub fn key_id(&self) -> [u8; 4] {
        self.key_id
    }

    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.key
    }
}

/// A witness cosignature that verified: who cosigned and when (Unix seconds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cosignature {
    pub witness: String,
    pub time: u64,
}

/// Checks the `cosignature/v1` lines of a checkpoint note that the log's
/// key already verified (`checkpoint`) against each witness in `witnesses`,
/// and returns the witnesses whose cosignature verifies (at most one each).
/// A line by a known witness that does not verify is an error: it is
/// forged or damaged, not merely absent.
///
/// The signed message is `cosignature/v1\ntime <T>\n` followed by the
/// checkpoint body; the signature line's bytes are
/// `key id (4) || T (8, big-endian) || Ed25519 signature (64)`.
pub fn verify_cosignatures(
    note: &str,
    checkpoint: &Verified<Checkpoint>,
    witnesses: &[NoteVerifier],
) -> Result<Vec<Verified<Cosignature>>, NoteError> {
    let (text, sigs) = split_note(note)?;
    // Cosignatures count only for the checkpoint the log's key signed.
    if Checkpoint::parse_body(text)? != **checkpoint {
        return Err(err("the cosigned note is not the verified checkpoint"));
    }
    let mut out: Vec<Verified<Cosignature>> = Vec::new();
    for (i, line) in sigs.split('\n').enumerate() {
        let (name, blob) = signature_line(i + 1, line)?;
        let Some(w) = witnesses.iter().find(|w| w.name == name && blob[..4] == w.key_id) else {
            continue;
        };
        let (time, sig) =
            blob[4..].split_first_chunk::<8>().ok_or_else(|| wrong_length(i + 1, &blob))?;
        let sig = Signature::from_slice(sig).map_err(|_| wrong_length(i + 1, &blob))?;
        let time = u64::from_be_bytes(*time);
        let msg = format!("cosignature/v1\ntime {time}\n{text}");
        if w.key.verify_strict(msg.as_bytes(), &sig).is_err() {
            return Err(err(format!("signature by key {name} does not verify")));
        }
        if !out.iter().any(|c| c.witness == name) {
            out.push(Verified::new(Cosignature { witness: name.to_owned(), time }));
        }
    }
    Ok(out)
}

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
pub const MAX_SIGNATURES: usize = 100;

const SIG_PREFIX: &str = "\u{2014} ";
/// Key id (4) plus Ed25519 signature (64).
const ED25519_SIG_LEN: usize = 68;

/// Why a note or checkpoint was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("note is {len} bytes, more than {max}")]
    TooLarge { len: usize, max: usize },
    #[error("note is not utf-8")]
    NotUtf8,
    #[error("note contains a control character at byte {offset}")]
    ControlCharacter { offset: usize },
    #[error("note text is empty")]
    EmptyText,
    #[error("note text does not end with a newline")]
    TextMissingNewline,
    #[error("note has no blank line before the signature block")]
    NoSignatureBlock,
    #[error("signature block does not end with a newline")]
    SignaturesMissingNewline,
    #[error("note has more than {max} signature lines")]
    TooManySignatures { max: usize },
    #[error("signature line {line} does not start with an em dash and space")]
    SignatureLinePrefix { line: usize },
    #[error("signature line {line} has no space between name and signature")]
    SignatureLineFields { line: usize },
    #[error("signature line {line} has an invalid key name")]
    SignatureLineName { line: usize },
    #[error("signature line {line} is not standard base64")]
    SignatureBase64 { line: usize },
    #[error("signature line {line} has {len} bytes, too short for key id and signature")]
    SignatureTooShort { line: usize, len: usize },
    #[error("signature line {line} by our key has {len} bytes, want {ED25519_SIG_LEN}")]
    SignatureLength { line: usize, len: usize },
    #[error("no signature by key {name} ({key_id})")]
    NoSignatureByKey { name: String, key_id: String },
    #[error("signature by key {name} does not verify")]
    BadSignature { name: String },
    #[error("checkpoint body does not end with a newline")]
    BodyMissingNewline,
    #[error("checkpoint body has {lines} lines, want at least 3")]
    BodyTooFewLines { lines: usize },
    #[error("checkpoint body line {line} is empty")]
    BodyEmptyLine { line: usize },
    #[error("checkpoint body line {line} contains a control character")]
    BodyControlCharacter { line: usize },
    #[error("checkpoint size is not a decimal number")]
    SizeNotDecimal,
    #[error("checkpoint size has a leading zero")]
    SizeLeadingZero,
    #[error("checkpoint size does not fit in 64 bits")]
    SizeOverflow,
    #[error("checkpoint root is not standard base64")]
    RootBase64,
    #[error("checkpoint root has {len} bytes, want 32")]
    RootLength { len: usize },
    #[error("checkpoint does not survive encoding: a field holds a newline")]
    NotCanonical,
    #[error("the cosigned note is not the verified checkpoint")]
    NotTheCheckpoint,
    #[error("checkpoint origin {origin:?} does not match key name {name:?}")]
    OriginMismatch { origin: String, name: String },
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
        let Some(body) = body.strip_suffix('\n') else {
            return Err(NoteError::BodyMissingNewline);
        };
        let lines: Vec<&str> = body.split('\n').collect();
        for (i, line) in lines.iter().enumerate() {
            if line.is_empty() {
                return Err(NoteError::BodyEmptyLine { line: i + 1 });
            }
            if line.chars().any(char::is_control) {
                return Err(NoteError::BodyControlCharacter { line: i + 1 });
            }
        }
        let [origin, size, root, extensions @ ..] = lines.as_slice() else {
            return Err(NoteError::BodyTooFewLines { lines: lines.len() });
        };
        Ok(Self {
            origin: (*origin).to_owned(),
            size: parse_size(size)?,
            root: parse_root(root)?,
            extensions: extensions.iter().map(|e| (*e).to_owned()).collect(),
        })
    }
}

fn parse_size(s: &str) -> Result<u64, NoteError> {
    match s.as_bytes() {
        [] => Err(NoteError::SizeNotDecimal),
        b if !b.iter().all(u8::is_ascii_digit) => Err(NoteError::SizeNotDecimal),
        [b'0', _, ..] => Err(NoteError::SizeLeadingZero),
        _ => s.parse().map_err(|_| NoteError::SizeOverflow),
    }
}

fn parse_root(s: &str) -> Result<Hash, NoteError> {
    // base64 of 32 bytes is 44 characters; bound before decoding.
    if s.len() > 64 {
        return Err(NoteError::RootBase64);
    }
    // STANDARD requires padding and zero trailing bits, so each root has
    // exactly one accepted spelling.
    let raw = STANDARD.decode(s).map_err(|_| NoteError::RootBase64)?;
    Hash::try_from(raw.as_slice()).map_err(|_| NoteError::RootLength { len: raw.len() })
}

/// Offset of the first control character other than newline, if any.
fn control_char_offset(s: &str) -> Option<usize> {
    s.char_indices().find(|&(_, c)| c.is_control() && c != '\n').map(|(i, _)| i)
}

/// Check the note's signature by `verifier` and return its text (the
/// signed bytes, ending in a newline). Public for notes that are not
/// checkpoints, such as evidence-bundle manifests.
pub fn open_note<'a>(note: &'a str, verifier: &NoteVerifier) -> Result<&'a str, NoteError> {
    if note.len() > MAX_NOTE_LEN {
        return Err(NoteError::TooLarge { len: note.len(), max: MAX_NOTE_LEN });
    }
    if let Some(offset) = control_char_offset(note) {
        return Err(NoteError::ControlCharacter { offset });
    }
    let Some(split) = note.rfind("\n\n") else {
        return Err(NoteError::NoSignatureBlock);
    };
    // Keep the text's final newline; it is part of what was signed. Both
    // bounds sit on ASCII newlines inside the note, so `get` always succeeds.
    let (Some(text), Some(sigs)) = (note.get(..=split), note.get(split + 2..)) else {
        return Err(NoteError::NoSignatureBlock);
    };
    let Some(sigs) = sigs.strip_suffix('\n') else {
        return Err(NoteError::SignaturesMissingNewline);
    };

    let mut ours = 0usize;
    for (i, line) in sigs.split('\n').enumerate() {
        let line_no = i + 1;
        if line_no > MAX_SIGNATURES {
            return Err(NoteError::TooManySignatures { max: MAX_SIGNATURES });
        }
        let Some(rest) = line.strip_prefix(SIG_PREFIX) else {
            return Err(NoteError::SignatureLinePrefix { line: line_no });
        };
        let Some((name, b64)) = rest.split_once(' ') else {
            return Err(NoteError::SignatureLineFields { line: line_no });
        };
        if !valid_name(name) {
            return Err(NoteError::SignatureLineName { line: line_no });
        }
        let blob =
            STANDARD.decode(b64).map_err(|_| NoteError::SignatureBase64 { line: line_no })?;
        let Some((key_id, sig)) = blob.split_first_chunk::<4>() else {
            return Err(NoteError::SignatureTooShort { line: line_no, len: blob.len() });
        };
        if sig.is_empty() {
            return Err(NoteError::SignatureTooShort { line: line_no, len: blob.len() });
        }
        // Signatures by other keys are allowed and ignored (C2SP signed-note).
        if name != verifier.name() || *key_id != verifier.key_id() {
            continue;
        }
        let sig = Signature::from_slice(sig)
            .map_err(|_| NoteError::SignatureLength { line: line_no, len: blob.len() })?;
        // Strict: rejects non-canonical signatures and small-order keys.
        if verifier.verifying_key().verify_strict(text.as_bytes(), &sig).is_err() {
            return Err(NoteError::BadSignature { name: name.to_owned() });
        }
        ours += 1;
    }
    if ours == 0 {
        return Err(NoteError::NoSignatureByKey {
            name: verifier.name().to_owned(),
            key_id: crate::hex(&verifier.key_id()),
        });
    }
    Ok(text)
}

/// Verify a signed checkpoint note against `verifier` and parse it. The
/// checkpoint's origin must be the verifier's key name.
pub fn open_checkpoint(
    note: &str,
    verifier: &NoteVerifier,
) -> Result<Verified<Checkpoint>, NoteError> {
    let text = open_note(note, verifier)?;
    let checkpoint = Checkpoint::parse_body(text)?;
    if checkpoint.origin != verifier.name() {
        return Err(NoteError::OriginMismatch {
            origin: checkpoint.origin,
            name: verifier.name().to_owned(),
        });
    }
    Ok(Verified::new(checkpoint))
}

/// As [`open_checkpoint`], for a note read as bytes from disk or network.
pub fn open_checkpoint_bytes(
    note: &[u8],
    verifier: &NoteVerifier,
) -> Result<Verified<Checkpoint>, NoteError> {
    if note.len() > MAX_NOTE_LEN {
        return Err(NoteError::TooLarge { len: note.len(), max: MAX_NOTE_LEN });
    }
    let note = std::str::from_utf8(note).map_err(|_| NoteError::NotUtf8)?;
    open_checkpoint(note, verifier)
}

/// The checkpoint body of a note WITHOUT checking any signature: only to
/// learn its size, and so which key of a key history must have signed it.
pub fn parse_unverified_checkpoint(note: &str) -> Result<Checkpoint, NoteError> {
    if note.len() > MAX_NOTE_LEN {
        return Err(NoteError::TooLarge { len: note.len(), max: MAX_NOTE_LEN });
    }
    let text = note.rfind("\n\n").and_then(|split| note.get(..=split));
    Checkpoint::parse_body(text.ok_or(NoteError::NoSignatureBlock)?)
}

/// Key type byte of an Ed25519 note signer (the log's key).
pub const ALG_ED25519: u8 = 0x01;
/// Key type byte of a C2SP `cosignature/v1` witness key.
pub const ALG_COSIGNATURE_V1: u8 = 0x04;

/// Why a vkey was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("invalid key name: must be non-empty without whitespace, control characters or '+'")]
    InvalidName,
    #[error("vkey must be <name>+<key id>+<key>")]
    VkeyFields,
    #[error("vkey key id must be 8 lowercase hex digits")]
    VkeyKeyIdHex,
    #[error("vkey key is not standard base64")]
    VkeyBase64,
    #[error("vkey key has {len} bytes, want 33")]
    VkeyLength { len: usize },
    #[error("vkey algorithm {alg:#04x} is not {want:#04x}")]
    VkeyAlgorithm { alg: u8, want: u8 },
    #[error("vkey public key is not a valid ed25519 point")]
    VkeyPublicKey,
    #[error("vkey key id {got} does not match the key, want {want}")]
    VkeyKeyIdMismatch { got: String, want: String },
}

/// C2SP key name rules (non-empty, no Unicode whitespace, no '+'), plus no
/// control characters, which could not survive a note line.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c.is_control() || c == '+')
}

/// `SHA-256(name || 0x0A || type || public key)[..4]`.
pub fn key_id(name: &str, alg: u8, key: &[u8; 32]) -> [u8; 4] {
    let mut buf = Vec::with_capacity(name.len() + 34);
    buf.extend_from_slice(name.as_bytes());
    buf.push(b'\n');
    buf.push(alg);
    buf.extend_from_slice(key);
    let [a, b, c, d, ..] = sha256(&buf);
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
    pub fn from_vkey(line: &str) -> Result<Self, KeyError> {
        Self::parse(line, ALG_ED25519)
    }

    /// Parses a witness's `<name>+<key id>+<base64(0x04 || key)>`.
    pub fn from_witness_vkey(line: &str) -> Result<Self, KeyError> {
        Self::parse(line, ALG_COSIGNATURE_V1)
    }

    fn parse(line: &str, want_alg: u8) -> Result<Self, KeyError> {
        // The name has no '+' but base64 may, so split at most twice.
        let mut parts = line.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(KeyError::VkeyFields);
        };
        if !valid_name(name) {
            return Err(KeyError::InvalidName);
        }
        let got_id = crate::unhex::<4>(id_hex).ok_or(KeyError::VkeyKeyIdHex)?;
        // base64 of 33 bytes is 44 characters; bound before decoding.
        if key_b64.len() != 44 {
            return Err(KeyError::VkeyBase64);
        }
        let raw = STANDARD.decode(key_b64).map_err(|_| KeyError::VkeyBase64)?;
        let Some((&alg, pk)) = raw.split_first() else {
            return Err(KeyError::VkeyLength { len: 0 });
        };
        let pk: [u8; 32] = pk.try_into().map_err(|_| KeyError::VkeyLength { len: raw.len() })?;
        if alg != want_alg {
            return Err(KeyError::VkeyAlgorithm { alg, want: want_alg });
        }
        let key = VerifyingKey::from_bytes(&pk).map_err(|_| KeyError::VkeyPublicKey)?;
        let want_id = key_id(name, alg, &pk);
        if want_id != got_id {
            return Err(KeyError::VkeyKeyIdMismatch {
                got: id_hex.to_owned(),
                want: crate::hex(&want_id),
            });
        }
        Ok(Self { name: name.to_owned(), alg, key_id: want_id, key })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The vkey line this verifier was parsed from.
    pub fn to_vkey(&self) -> String {
        let mut raw = vec![self.alg];
        raw.extend_from_slice(self.key.as_bytes());
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
    let Some(split) = note.rfind("\n\n") else {
        return Err(NoteError::NoSignatureBlock);
    };
    let (Some(text), Some(sigs)) = (note.get(..=split), note.get(split + 2..)) else {
        return Err(NoteError::NoSignatureBlock);
    };
    // Cosignatures count only for the checkpoint the log's key signed.
    if Checkpoint::parse_body(text)? != **checkpoint {
        return Err(NoteError::NotTheCheckpoint);
    }
    let sigs = sigs.strip_suffix('\n').unwrap_or(sigs);
    let mut out: Vec<Verified<Cosignature>> = Vec::new();
    for (i, line) in sigs.split('\n').enumerate().take(MAX_SIGNATURES) {
        let line_no = i + 1;
        let Some((name, b64)) = line.strip_prefix(SIG_PREFIX).and_then(|r| r.split_once(' '))
        else {
            return Err(NoteError::SignatureLineFields { line: line_no });
        };
        let Ok(blob) = STANDARD.decode(b64) else {
            return Err(NoteError::SignatureBase64 { line: line_no });
        };
        let Some(w) =
            witnesses.iter().find(|w| w.name() == name && blob.get(..4) == Some(&w.key_id()[..]))
        else {
            continue;
        };
        let (Some(time), Some(sig)) = (blob.get(4..12), blob.get(12..)) else {
            return Err(NoteError::SignatureLength { line: line_no, len: blob.len() });
        };
        let mut t = [0u8; 8];
        t.copy_from_slice(time);
        let time = u64::from_be_bytes(t);
        let sig = Signature::from_slice(sig)
            .map_err(|_| NoteError::SignatureLength { line: line_no, len: blob.len() })?;
        let msg = format!("cosignature/v1\ntime {time}\n{text}");
        if w.verifying_key().verify_strict(msg.as_bytes(), &sig).is_err() {
            return Err(NoteError::BadSignature { name: name.to_owned() });
        }
        if !out.iter().any(|c| c.witness == name) {
            out.push(Verified::new(Cosignature { witness: name.to_owned(), time }));
        }
    }
    Ok(out)
}

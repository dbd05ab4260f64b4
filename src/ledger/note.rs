//! C2SP `signed-note` and `tlog-checkpoint`.
//!
//! A note is UTF-8 text ending in a newline, a blank line, and signature
//! lines `— <name> <base64(key id || signature)>`. A checkpoint is a note
//! whose text is `origin\nsize\nbase64(root)\n` plus extension lines.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::Signature;

use super::hash::Hash;
use super::keys::{NoteSigner, NoteVerifier};

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
    /// `origin\nsize\nbase64(root)\n` followed by one line per extension.
    pub fn to_body(&self) -> String {
        let mut body = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        );
        for ext in &self.extensions {
            body.push_str(ext);
            body.push('\n');
        }
        body
    }

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

/// A checkpoint whose note carried a valid signature by the expected key and
/// whose origin is that key's name. Only [`open_checkpoint`] constructs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedCheckpoint {
    checkpoint: Checkpoint,
}

impl VerifiedCheckpoint {
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    pub fn into_checkpoint(self) -> Checkpoint {
        self.checkpoint
    }
}

/// Offset of the first control character other than newline, if any.
fn control_char_offset(s: &str) -> Option<usize> {
    s.char_indices()
        .find(|&(_, c)| c.is_control() && c != '\n')
        .map(|(i, _)| i)
}

/// Sign `text` (which must end with a newline) and append the signature line.
pub fn sign_note(text: &str, signer: &NoteSigner) -> Result<String, NoteError> {
    if text.is_empty() {
        return Err(NoteError::EmptyText);
    }
    if !text.ends_with('\n') {
        return Err(NoteError::TextMissingNewline);
    }
    if let Some(offset) = control_char_offset(text) {
        return Err(NoteError::ControlCharacter { offset });
    }
    let mut blob = Vec::with_capacity(ED25519_SIG_LEN);
    blob.extend_from_slice(&signer.key_id());
    blob.extend_from_slice(&signer.sign(text.as_bytes()));
    let note = format!(
        "{text}\n{SIG_PREFIX}{} {}\n",
        signer.name(),
        STANDARD.encode(blob)
    );
    if note.len() > MAX_NOTE_LEN {
        return Err(NoteError::TooLarge {
            len: note.len(),
            max: MAX_NOTE_LEN,
        });
    }
    Ok(note)
}

/// Sign a checkpoint whose origin is the signer's name.
pub fn sign_checkpoint(cp: &Checkpoint, signer: &NoteSigner) -> Result<String, NoteError> {
    if cp.origin != signer.name() {
        return Err(NoteError::OriginMismatch {
            origin: cp.origin.clone(),
            name: signer.name().to_owned(),
        });
    }
    let body = cp.to_body();
    // Refuse what open_checkpoint would refuse or read back differently.
    if Checkpoint::parse_body(&body)? != *cp {
        return Err(NoteError::NotCanonical);
    }
    sign_note(&body, signer)
}

/// Check the note's signature by `verifier` and return its text (the
/// signed bytes, ending in a newline). Public for notes that are not
/// checkpoints, such as evidence-bundle manifests.
pub fn open_note<'a>(note: &'a str, verifier: &NoteVerifier) -> Result<&'a str, NoteError> {
    if note.len() > MAX_NOTE_LEN {
        return Err(NoteError::TooLarge {
            len: note.len(),
            max: MAX_NOTE_LEN,
        });
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
            return Err(NoteError::TooManySignatures {
                max: MAX_SIGNATURES,
            });
        }
        let Some(rest) = line.strip_prefix(SIG_PREFIX) else {
            return Err(NoteError::SignatureLinePrefix { line: line_no });
        };
        let Some((name, b64)) = rest.split_once(' ') else {
            return Err(NoteError::SignatureLineFields { line: line_no });
        };
        if super::keys::check_name(name).is_err() {
            return Err(NoteError::SignatureLineName { line: line_no });
        }
        let blob = STANDARD
            .decode(b64)
            .map_err(|_| NoteError::SignatureBase64 { line: line_no })?;
        let Some((key_id, sig)) = blob.split_first_chunk::<4>() else {
            return Err(NoteError::SignatureTooShort {
                line: line_no,
                len: blob.len(),
            });
        };
        if sig.is_empty() {
            return Err(NoteError::SignatureTooShort {
                line: line_no,
                len: blob.len(),
            });
        }
        // Signatures by other keys are allowed and ignored (C2SP signed-note).
        if name != verifier.name() || *key_id != verifier.key_id() {
            continue;
        }
        let sig = Signature::from_slice(sig).map_err(|_| NoteError::SignatureLength {
            line: line_no,
            len: blob.len(),
        })?;
        // Strict: rejects non-canonical signatures and small-order keys.
        if verifier
            .verifying_key()
            .verify_strict(text.as_bytes(), &sig)
            .is_err()
        {
            return Err(NoteError::BadSignature {
                name: name.to_owned(),
            });
        }
        ours += 1;
    }
    if ours == 0 {
        return Err(NoteError::NoSignatureByKey {
            name: verifier.name().to_owned(),
            key_id: hex::encode(verifier.key_id()),
        });
    }
    Ok(text)
}

/// Verify a signed checkpoint note against `verifier` and parse it. The
/// checkpoint's origin must be the verifier's key name.
pub fn open_checkpoint(
    note: &str,
    verifier: &NoteVerifier,
) -> Result<VerifiedCheckpoint, NoteError> {
    let text = open_note(note, verifier)?;
    let checkpoint = Checkpoint::parse_body(text)?;
    if checkpoint.origin != verifier.name() {
        return Err(NoteError::OriginMismatch {
            origin: checkpoint.origin,
            name: verifier.name().to_owned(),
        });
    }
    Ok(VerifiedCheckpoint { checkpoint })
}

/// As [`open_checkpoint`], for a note read as bytes from disk or network.
pub fn open_checkpoint_bytes(
    note: &[u8],
    verifier: &NoteVerifier,
) -> Result<VerifiedCheckpoint, NoteError> {
    if note.len() > MAX_NOTE_LEN {
        return Err(NoteError::TooLarge {
            len: note.len(),
            max: MAX_NOTE_LEN,
        });
    }
    let note = std::str::from_utf8(note).map_err(|_| NoteError::NotUtf8)?;
    open_checkpoint(note, verifier)
}

/// Parses the checkpoint of a signed note WITHOUT checking any signature:
/// for the writer's own bookkeeping and for building proofs, whose consumer
/// verifies the note. Never use the result as evidence.
pub fn parse_unverified_checkpoint(note: &str) -> Result<Checkpoint, NoteError> {
    if note.len() > MAX_NOTE_LEN {
        return Err(NoteError::TooLarge {
            len: note.len(),
            max: MAX_NOTE_LEN,
        });
    }
    let Some(split) = note.rfind("\n\n") else {
        return Err(NoteError::NoSignatureBlock);
    };
    Checkpoint::parse_body(&note[..split + 1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::hash::sha256;

    const ORIGIN: &str = "sealtrail.example/practice-1";

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            origin: ORIGIN.into(),
            size: 1234,
            root: sha256(b"root"),
            extensions: vec!["ext one".into()],
        }
    }

    #[test]
    fn round_trip() {
        let signer = NoteSigner::generate(ORIGIN).unwrap();
        let note = sign_checkpoint(&checkpoint(), &signer).unwrap();
        let v = open_checkpoint(&note, &signer.verifier()).unwrap();
        assert_eq!(*v.checkpoint(), checkpoint());
        assert!(note.starts_with(&format!("{ORIGIN}\n1234\n")));
        assert!(note.contains(&format!("\n\n\u{2014} {ORIGIN} ")));
    }

    /// The example of golang.org/x/mod/sumdb/note: same key, same text, so
    /// Ed25519's deterministic signature must give the same note byte for
    /// byte, and that note must open.
    #[test]
    fn go_sumdb_note_known_answer() {
        let skey = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
        let raw = STANDARD.decode(skey).unwrap();
        assert_eq!(raw[0], 0x01);
        let seed: [u8; 32] = raw[1..].try_into().unwrap();
        let signer = NoteSigner::from_seed("PeterNeumann", &seed).unwrap();
        let vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
        assert_eq!(signer.verifier().to_vkey(), vkey);
        let text = "If you think cryptography is the answer to your problem,\n\
                    then you don't know what your problem is.\n";
        let want = format!(
            "{text}\n\u{2014} PeterNeumann \
             x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
        );
        assert_eq!(sign_note(text, &signer).unwrap(), want);
        let verifier = NoteVerifier::from_vkey(vkey).unwrap();
        assert_eq!(open_note(&want, &verifier).unwrap(), text);
    }

    #[test]
    fn every_byte_flip_is_rejected() {
        let signer = NoteSigner::generate(ORIGIN).unwrap();
        let verifier = signer.verifier();
        let note = sign_checkpoint(&checkpoint(), &signer)
            .unwrap()
            .into_bytes();
        assert!(open_checkpoint_bytes(&note, &verifier).is_ok());
        for pos in 0..note.len() {
            for mask in [0x01u8, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xff] {
                let mut bad = note.clone();
                bad[pos] ^= mask;
                assert!(
                    open_checkpoint_bytes(&bad, &verifier).is_err(),
                    "flip {mask:#04x} at byte {pos} accepted"
                );
            }
        }
        // Truncation and extension too.
        for len in 0..note.len() {
            assert!(
                open_checkpoint_bytes(&note[..len], &verifier).is_err(),
                "{len}"
            );
        }
        let mut longer = note.clone();
        longer.push(b'\n');
        assert!(open_checkpoint_bytes(&longer, &verifier).is_err());
    }

    #[test]
    fn unknown_key_is_rejected() {
        let signer = NoteSigner::generate(ORIGIN).unwrap();
        let other = NoteSigner::generate(ORIGIN).unwrap();
        let note = sign_checkpoint(&checkpoint(), &other).unwrap();
        assert!(matches!(
            open_checkpoint(&note, &signer.verifier()),
            Err(NoteError::NoSignatureByKey { .. })
        ));
    }

    #[test]
    fn extra_signature_by_another_key_still_opens() {
        let signer = NoteSigner::generate(ORIGIN).unwrap();
        let witness = NoteSigner::generate("witness.example").unwrap();
        let note = sign_checkpoint(&checkpoint(), &signer).unwrap();
        let body = checkpoint().to_body();
        let witness_note = sign_note(&body, &witness).unwrap();
        let witness_line = &witness_note[body.len() + 1..];
        // Other signature before and after ours.
        let after = format!("{note}{witness_line}");
        let (text, ours) = note.split_at(body.len() + 1);
        let before = format!("{text}{witness_line}{ours}");
        for n in [after, before] {
            let v = open_checkpoint(&n, &signer.verifier()).unwrap();
            assert_eq!(*v.checkpoint(), checkpoint());
        }
        // A bad signature claiming our key is an error even next to a good one.
        let b64 = ours.trim_end().rsplit_once(' ').unwrap().1;
        let mut blob = STANDARD.decode(b64).unwrap();
        blob[10] ^= 1;
        let forged = format!("{note}\u{2014} {ORIGIN} {}\n", STANDARD.encode(blob));
        assert_eq!(
            open_checkpoint(&forged, &signer.verifier()),
            Err(NoteError::BadSignature {
                name: ORIGIN.into()
            })
        );
    }

    #[test]
    fn origin_must_match_key_name() {
        let signer = NoteSigner::generate("other.example").unwrap();
        let note = sign_note(&checkpoint().to_body(), &signer).unwrap();
        assert!(matches!(
            open_checkpoint(&note, &signer.verifier()),
            Err(NoteError::OriginMismatch { .. })
        ));
        assert!(matches!(
            sign_checkpoint(&checkpoint(), &signer),
            Err(NoteError::OriginMismatch { .. })
        ));
    }

    #[test]
    fn body_parsing_is_strict() {
        let root = STANDARD.encode(sha256(b"root"));
        assert!(Checkpoint::parse_body(&format!("o\n0\n{root}\n")).is_ok());
        let cases = [
            (format!("o\n1\n{root}"), NoteError::BodyMissingNewline),
            ("o\n1\n".to_owned(), NoteError::BodyTooFewLines { lines: 2 }),
            (
                format!("o\n\n{root}\n"),
                NoteError::BodyEmptyLine { line: 2 },
            ),
            (
                format!("o\n1\n{root}\n\n"),
                NoteError::BodyEmptyLine { line: 4 },
            ),
            (
                format!("o\n1\n{root}\nx\ty\n"),
                NoteError::BodyControlCharacter { line: 4 },
            ),
            (format!("o\n01\n{root}\n"), NoteError::SizeLeadingZero),
            (format!("o\n00\n{root}\n"), NoteError::SizeLeadingZero),
            (format!("o\n+1\n{root}\n"), NoteError::SizeNotDecimal),
            (format!("o\n-0\n{root}\n"), NoteError::SizeNotDecimal),
            (format!("o\n 1\n{root}\n"), NoteError::SizeNotDecimal),
            (
                format!("o\n18446744073709551616\n{root}\n"),
                NoteError::SizeOverflow,
            ),
            (
                format!("o\n1\n{}\n", root.trim_end_matches('=')),
                NoteError::RootBase64,
            ),
            (
                format!("o\n1\n{}\n", &root[..43].replace('=', "")),
                NoteError::RootBase64,
            ),
            (
                format!("o\n1\n{}\n", STANDARD.encode([0u8; 31])),
                NoteError::RootLength { len: 31 },
            ),
            (
                format!("o\n1\n{}\n", STANDARD.encode([0u8; 33])),
                NoteError::RootLength { len: 33 },
            ),
        ];
        for (body, want) in cases {
            assert_eq!(Checkpoint::parse_body(&body), Err(want), "{body:?}");
        }
        assert!(
            Checkpoint::parse_body(
                "o\n18446744073709551615\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
            )
            .is_ok()
        );
        // Non-zero trailing bits would give a second spelling of the same root.
        assert_eq!(
            Checkpoint::parse_body("o\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=\n"),
            Err(NoteError::RootBase64)
        );
    }

    #[test]
    fn malformed_notes_have_their_own_errors() {
        let signer = NoteSigner::generate(ORIGIN).unwrap();
        let v = signer.verifier();
        let note = sign_checkpoint(&checkpoint(), &signer).unwrap();
        let (text, sig) = note.split_at(checkpoint().to_body().len() + 1);
        let cases = [
            (text.to_owned(), NoteError::SignaturesMissingNewline),
            (note.replace("\n\n", "\n"), NoteError::NoSignatureBlock),
            (
                note.trim_end_matches('\n').to_owned(),
                NoteError::SignaturesMissingNewline,
            ),
            (
                format!("{text}- {ORIGIN} AAAA\n"),
                NoteError::SignatureLinePrefix { line: 1 },
            ),
            (
                format!("{text}\u{2014} {ORIGIN}\n"),
                NoteError::SignatureLineFields { line: 1 },
            ),
            (
                format!("{text}\u{2014} a+b AAAAAAAA\n"),
                NoteError::SignatureLineName { line: 1 },
            ),
            (
                format!("{text}\u{2014} x AAAA*AAA\n"),
                NoteError::SignatureBase64 { line: 1 },
            ),
            (
                format!("{text}\u{2014} x AAAAAA==\n"),
                NoteError::SignatureTooShort { line: 1, len: 4 },
            ),
            (
                format!("{note}x\u{1}\n"),
                NoteError::ControlCharacter {
                    offset: note.len() + 1,
                },
            ),
        ];
        for (n, want) in cases {
            assert_eq!(open_checkpoint(&n, &v), Err(want), "{n:?}");
        }
        let too_many = format!("{note}{}", sig.repeat(MAX_SIGNATURES));
        assert_eq!(
            open_checkpoint(&too_many, &v),
            Err(NoteError::TooManySignatures {
                max: MAX_SIGNATURES
            })
        );
        let huge = "a".repeat(MAX_NOTE_LEN + 1);
        assert!(matches!(
            open_checkpoint(&huge, &v),
            Err(NoteError::TooLarge { .. })
        ));
        assert_eq!(
            sign_note("no newline", &signer),
            Err(NoteError::TextMissingNewline)
        );
        assert_eq!(sign_note("", &signer), Err(NoteError::EmptyText));
        let mut cp = checkpoint();
        cp.extensions.push("a\nb".into());
        assert_eq!(sign_checkpoint(&cp, &signer), Err(NoteError::NotCanonical));
    }
}

//! C2SP `tlog-cosignature` (`cosignature/v1`, Ed25519): witness keys, vkeys of
//! type 0x04, cosigning a checkpoint body and checking a quorum of
//! cosignatures on a signed checkpoint note.
//!
//! A cosignature is a signed-note signature line `— <name> base64(key id ||
//! timestamp || signature)` where key id = `SHA-256(name || 0x0A || 0x04 ||
//! public key)[..4]`, timestamp is a big-endian u64 (POSIX seconds) and the
//! Ed25519 signature covers `cosignature/v1\ntime <T>\n` + the checkpoint
//! body. Self-contained (no I/O, no async): it moves into the verifier crate.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::spki::der::zeroize::Zeroizing;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand_core::OsRng;

use super::hash::sha256;
use super::keys::{KeyError, NoteVerifier, check_name, parse_vkey};
use super::note::{self, Checkpoint, MAX_NOTE_LEN, MAX_SIGNATURES, NoteError};

/// Signature type byte of `cosignature/v1` Ed25519 keys.
pub const ALG_COSIGNATURE_V1: u8 = 0x04;
/// Largest timestamp a cosignature may carry (2^63 - 1).
pub const MAX_TIMESTAMP: u64 = i64::MAX as u64;
/// Most witness keys one check takes (bounds the work per note).
pub const MAX_WITNESSES: usize = 64;

const SIG_PREFIX: &str = "\u{2014} ";
/// Key id (4), timestamp (8), Ed25519 signature (64).
const COSIGNATURE_LEN: usize = 76;

#[derive(Debug, thiserror::Error)]
pub enum CosignatureError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("witness key is not PKCS#8 Ed25519")]
    Pkcs8,
    #[error("cosignature timestamp {0} is zero or above 2^63-1")]
    Timestamp(u64),
    #[error(transparent)]
    Note(#[from] NoteError),
    #[error("signature line {line}: {reason}")]
    Line { line: usize, reason: &'static str },
    #[error("cosignature by witness {name} does not verify")]
    BadCosignature { name: String },
    #[error("two witness keys are named {name}")]
    DuplicateWitness { name: String },
    #[error("more than {MAX_WITNESSES} witness keys")]
    TooManyWitnesses,
    #[error("quorum {quorum} cannot be met by {witnesses} witness key(s)")]
    QuorumUnreachable { quorum: usize, witnesses: usize },
    #[error("{got} of the required {want} witnesses cosigned")]
    Quorum { got: usize, want: usize },
}

/// `SHA-256(name || 0x0A || 0x04 || public key)[..4]`.
pub fn key_id(name: &str, key: &VerifyingKey) -> [u8; 4] {
    let mut buf = Vec::with_capacity(name.len() + 2 + 32);
    buf.extend_from_slice(name.as_bytes());
    buf.push(b'\n');
    buf.push(ALG_COSIGNATURE_V1);
    buf.extend_from_slice(key.as_bytes());
    let [a, b, c, d, ..] = sha256(&buf);
    [a, b, c, d]
}

/// The bytes a `cosignature/v1` signature covers.
pub fn signed_message(body: &str, timestamp: u64) -> Vec<u8> {
    format!("cosignature/v1\ntime {timestamp}\n{body}").into_bytes()
}

/// A witness's Ed25519 cosigning key.
pub struct WitnessSigner {
    name: String,
    key: SigningKey,
}

impl std::fmt::Debug for WitnessSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.debug_struct("WitnessSigner")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl WitnessSigner {
    pub fn generate(name: &str) -> Result<Self, CosignatureError> {
        check_name(name)?;
        Ok(Self {
            name: name.to_owned(),
            key: SigningKey::generate(&mut OsRng),
        })
    }

    pub fn from_pkcs8_pem(name: &str, pem: &str) -> Result<Self, CosignatureError> {
        check_name(name)?;
        let key = SigningKey::from_pkcs8_pem(pem).map_err(|_| CosignatureError::Pkcs8)?;
        Ok(Self {
            name: name.to_owned(),
            key,
        })
    }

    #[cfg(test)]
    pub(crate) fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self, CosignatureError> {
        check_name(name)?;
        Ok(Self {
            name: name.to_owned(),
            key: SigningKey::from_bytes(seed),
        })
    }

    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, CosignatureError> {
        self.key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|_| CosignatureError::Pkcs8)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn verifier(&self) -> WitnessVerifier {
        let key = self.key.verifying_key();
        WitnessVerifier {
            key_id: key_id(&self.name, &key),
            name: self.name.clone(),
            key,
        }
    }

    /// The signature line (with its newline) cosigning `body`, a checkpoint
    /// body ending in a newline, at `timestamp`.
    pub fn cosign(&self, body: &str, timestamp: u64) -> Result<String, CosignatureError> {
        if timestamp == 0 || timestamp > MAX_TIMESTAMP {
            return Err(CosignatureError::Timestamp(timestamp));
        }
        // Only a well-formed checkpoint body is ever cosigned.
        Checkpoint::parse_body(body)?;
        let sig = self.key.sign(&signed_message(body, timestamp));
        let mut blob = Vec::with_capacity(COSIGNATURE_LEN);
        blob.extend_from_slice(&key_id(&self.name, &self.key.verifying_key()));
        blob.extend_from_slice(&timestamp.to_be_bytes());
        blob.extend_from_slice(&sig.to_bytes());
        Ok(format!(
            "{SIG_PREFIX}{} {}\n",
            self.name,
            STANDARD.encode(blob)
        ))
    }
}

/// A witness's public key, from a vkey `<name>+<key id>+base64(0x04 || key)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessVerifier {
    name: String,
    key_id: [u8; 4],
    key: VerifyingKey,
}

impl WitnessVerifier {
    pub fn from_vkey(line: &str) -> Result<Self, CosignatureError> {
        let (name, key_id, key) = parse_vkey(line, ALG_COSIGNATURE_V1, key_id)?;
        Ok(Self { name, key_id, key })
    }

    pub fn to_vkey(&self) -> String {
        let mut raw = Vec::with_capacity(33);
        raw.push(ALG_COSIGNATURE_V1);
        raw.extend_from_slice(self.key.as_bytes());
        format!(
            "{}+{}+{}",
            self.name,
            hex::encode(self.key_id),
            STANDARD.encode(raw)
        )
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> [u8; 4] {
        self.key_id
    }

    /// Checks one signature blob (key id || timestamp || signature) over
    /// `body`; returns the timestamp.
    fn verify_blob(&self, body: &str, blob: &[u8]) -> Result<u64, CosignatureError> {
        let bad = || CosignatureError::BadCosignature {
            name: self.name.clone(),
        };
        let Some((id, rest)) = blob.split_first_chunk::<4>() else {
            return Err(bad());
        };
        let Some((ts, sig)) = rest.split_first_chunk::<8>() else {
            return Err(bad());
        };
        if *id != self.key_id || sig.len() != 64 {
            return Err(bad());
        }
        let timestamp = u64::from_be_bytes(*ts);
        if timestamp == 0 || timestamp > MAX_TIMESTAMP {
            return Err(CosignatureError::Timestamp(timestamp));
        }
        let sig = Signature::from_slice(sig).map_err(|_| bad())?;
        self.key
            .verify_strict(&signed_message(body, timestamp), &sig)
            .map_err(|_| bad())?;
        Ok(timestamp)
    }
}

/// One signature line of a note, decoded but not verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureLine {
    pub name: String,
    pub blob: Vec<u8>,
}

/// Splits a signed note into its text (ending in a newline) and its
/// signature lines, with the rules of `note::open_note`: bounded size and
/// line count, no control characters, `— name base64` lines.
pub fn split_note(note: &str) -> Result<(&str, Vec<SignatureLine>), CosignatureError> {
    if note.len() > MAX_NOTE_LEN {
        return Err(NoteError::TooLarge {
            len: note.len(),
            max: MAX_NOTE_LEN,
        }
        .into());
    }
    if let Some((offset, _)) = note
        .char_indices()
        .find(|&(_, c)| c.is_control() && c != '\n')
    {
        return Err(NoteError::ControlCharacter { offset }.into());
    }
    let Some(split) = note.rfind("\n\n") else {
        return Err(NoteError::NoSignatureBlock.into());
    };
    let (Some(text), Some(sigs)) = (note.get(..=split), note.get(split + 2..)) else {
        return Err(NoteError::NoSignatureBlock.into());
    };
    let Some(sigs) = sigs.strip_suffix('\n') else {
        return Err(NoteError::SignaturesMissingNewline.into());
    };
    let mut lines = Vec::new();
    for (i, line) in sigs.split('\n').enumerate() {
        let line_no = i + 1;
        if line_no > MAX_SIGNATURES {
            return Err(NoteError::TooManySignatures {
                max: MAX_SIGNATURES,
            }
            .into());
        }
        lines.push(parse_line(line, line_no)?);
    }
    Ok((text, lines))
}

fn parse_line(line: &str, line_no: usize) -> Result<SignatureLine, CosignatureError> {
    let err = |reason| CosignatureError::Line {
        line: line_no,
        reason,
    };
    let rest = line
        .strip_prefix(SIG_PREFIX)
        .ok_or(err("does not start with an em dash and space"))?;
    let (name, b64) = rest
        .split_once(' ')
        .ok_or(err("has no space between name and signature"))?;
    check_name(name).map_err(|_| err("has an invalid key name"))?;
    let blob = STANDARD
        .decode(b64)
        .map_err(|_| err("is not standard base64"))?;
    if blob.len() < 5 {
        return Err(err("is too short for a key id and a signature"));
    }
    Ok(SignatureLine {
        name: name.to_owned(),
        blob,
    })
}

/// A witness that validly cosigned a note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cosigner {
    pub name: String,
    /// The latest timestamp among its valid cosignatures on the note.
    pub timestamp: u64,
}

/// Which of `witnesses` validly cosigned `note` (in the order of
/// `witnesses`, each at most once). Lines by other keys are ignored, as
/// signed-note says; a line naming a listed witness's name and key id whose
/// signature does not verify makes the whole note invalid.
pub fn cosigners(
    note: &str,
    witnesses: &[WitnessVerifier],
) -> Result<Vec<Cosigner>, CosignatureError> {
    check_witness_set(witnesses)?;
    let (text, lines) = split_note(note)?;
    let mut found: Vec<Option<u64>> = vec![None; witnesses.len()];
    for line in &lines {
        let Some(i) = witnesses
            .iter()
            .position(|w| w.name == line.name && line.blob.get(..4) == Some(&w.key_id[..]))
        else {
            continue;
        };
        let (Some(w), Some(slot)) = (witnesses.get(i), found.get_mut(i)) else {
            continue;
        };
        let t = w.verify_blob(text, &line.blob)?;
        *slot = Some(slot.map_or(t, |old| old.max(t)));
    }
    Ok(witnesses
        .iter()
        .zip(found)
        .filter_map(|(w, t)| {
            t.map(|timestamp| Cosigner {
                name: w.name.clone(),
                timestamp,
            })
        })
        .collect())
}

fn check_witness_set(witnesses: &[WitnessVerifier]) -> Result<(), CosignatureError> {
    if witnesses.len() > MAX_WITNESSES {
        return Err(CosignatureError::TooManyWitnesses);
    }
    for (i, w) in witnesses.iter().enumerate() {
        if witnesses.iter().skip(i + 1).any(|o| o.name == w.name) {
            return Err(CosignatureError::DuplicateWitness {
                name: w.name.clone(),
            });
        }
    }
    Ok(())
}

/// A checkpoint signed by the log key and cosigned by a quorum of witnesses.
/// Only [`open_witnessed_checkpoint`] constructs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessedCheckpoint {
    checkpoint: Checkpoint,
    cosigners: Vec<Cosigner>,
}

impl WitnessedCheckpoint {
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    pub fn cosigners(&self) -> &[Cosigner] {
        &self.cosigners
    }
}

/// Verifies the log's signature on `note`, then requires at least `quorum`
/// distinct `witnesses` to have cosigned it.
pub fn open_witnessed_checkpoint(
    note: &str,
    log: &NoteVerifier,
    witnesses: &[WitnessVerifier],
    quorum: usize,
) -> Result<WitnessedCheckpoint, CosignatureError> {
    if quorum > witnesses.len() {
        return Err(CosignatureError::QuorumUnreachable {
            quorum,
            witnesses: witnesses.len(),
        });
    }
    let checkpoint = note::open_checkpoint(note, log)?.into_checkpoint();
    let cosigners = cosigners(note, witnesses)?;
    if cosigners.len() < quorum {
        return Err(CosignatureError::Quorum {
            got: cosigners.len(),
            want: quorum,
        });
    }
    Ok(WitnessedCheckpoint {
        checkpoint,
        cosigners,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::keys::NoteSigner;

    const ORIGIN: &str = "sealtrail.example/log";
    const T: u64 = 1_700_000_000;

    fn body(size: u64) -> String {
        Checkpoint {
            origin: ORIGIN.into(),
            size,
            root: sha256(&size.to_be_bytes()),
            extensions: vec![],
        }
        .to_body()
    }

    fn log() -> NoteSigner {
        NoteSigner::from_seed(ORIGIN, &[7; 32]).unwrap()
    }

    fn witness(name: &str, seed: u8) -> WitnessSigner {
        WitnessSigner::from_seed(name, &[seed; 32]).unwrap()
    }

    fn signed(size: u64) -> String {
        note::sign_note(&body(size), &log()).unwrap()
    }

    #[test]
    fn round_trip_and_quorum() {
        let (a, b) = (witness("w.example/a", 1), witness("w.example/b", 2));
        let note = format!(
            "{}{}{}",
            signed(5),
            a.cosign(&body(5), T).unwrap(),
            b.cosign(&body(5), T + 1).unwrap()
        );
        let ws = [a.verifier(), b.verifier()];
        let got = open_witnessed_checkpoint(&note, &log().verifier(), &ws, 2).unwrap();
        assert_eq!(got.checkpoint().size, 5);
        let names: Vec<_> = got.cosigners().iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["w.example/a", "w.example/b"]);
        assert_eq!(got.cosigners()[1].timestamp, T + 1);
        // The log's own note check still passes with cosignature lines on it.
        assert!(note::open_checkpoint(&note, &log().verifier()).is_ok());
    }

    /// Computed independently from the text of tlog-cosignature with Python
    /// and pyca/cryptography (seed 0x01 x 32): same key, same message, so
    /// Ed25519's deterministic signature must give the same line.
    #[test]
    fn known_answer_from_an_independent_implementation() {
        let a = witness("w.example/a", 1);
        let vkey = "w.example/a+733b0f1e+BIqI4910CfGV/VLbLTy6XXLKZwm/HZQSG/N0iAG0D29c";
        assert_eq!(a.verifier().to_vkey(), vkey);
        let line = "\u{2014} w.example/a czsPHgAAAABlU/EA1uHrVRS0sD/rQ+lft9OGPVnZJmkaiyP9q3iLo0\
                    ZRUsmhrpqTR8VB5mZeVXd1XFKGbexe1+iWPZQZfEY0zrUnAg==\n";
        assert_eq!(a.cosign(&body(5), T).unwrap(), line);
        let v = WitnessVerifier::from_vkey(vkey).unwrap();
        let got = cosigners(&format!("{}{line}", signed(5)), &[v]).unwrap();
        assert_eq!(got[0].timestamp, T);
    }

    #[test]
    fn cosignature_layout() {
        let a = witness("w.example/a", 1);
        let line = a.cosign(&body(5), T).unwrap();
        let b64 = line
            .strip_prefix("\u{2014} w.example/a ")
            .unwrap()
            .strip_suffix('\n')
            .unwrap();
        let blob = STANDARD.decode(b64).unwrap();
        assert_eq!(blob.len(), 76);
        assert_eq!(blob[..4], a.verifier().key_id());
        assert_eq!(blob[4..12], T.to_be_bytes());
        // The key id commits to type 0x04, not the note type 0x01.
        let log_style = crate::ledger::keys::key_id("w.example/a", &a.key.verifying_key());
        assert_ne!(log_style, a.verifier().key_id());
        let msg = signed_message(&body(5), T);
        assert!(msg.starts_with(b"cosignature/v1\ntime 1700000000\nsealtrail.example/log\n5\n"));
    }

    #[test]
    fn vkey_round_trip_and_refusals() {
        let v = witness("w.example/a", 1).verifier();
        let line = v.to_vkey();
        assert_eq!(WitnessVerifier::from_vkey(&line).unwrap(), v);
        // A log (type 0x01) vkey is not a witness vkey.
        let log_vkey = log().verifier().to_vkey();
        assert!(matches!(
            WitnessVerifier::from_vkey(&log_vkey),
            Err(CosignatureError::Key(KeyError::VkeyAlgorithm { alg: 1 }))
        ));
        // Wrong key id, wrong name, bad hex, bad base64.
        let (name, rest) = line.split_once('+').unwrap();
        let (_, key) = rest.split_once('+').unwrap();
        assert!(WitnessVerifier::from_vkey(&format!("{name}+00000000+{key}")).is_err());
        assert!(WitnessVerifier::from_vkey(&format!("w.example/b+{rest}")).is_err());
        assert!(WitnessVerifier::from_vkey(&format!("{name}+ABCDEF01+{key}")).is_err());
        assert!(WitnessVerifier::from_vkey(&format!("{name}+{}", &rest[..20])).is_err());
        assert!(WitnessVerifier::from_vkey("w.example/a").is_err());
        assert!(WitnessVerifier::from_vkey("").is_err());
    }

    #[test]
    fn pkcs8_round_trip() {
        let a = WitnessSigner::generate("w.example/a").unwrap();
        let pem = a.to_pkcs8_pem().unwrap();
        let back = WitnessSigner::from_pkcs8_pem("w.example/a", &pem).unwrap();
        assert_eq!(back.verifier(), a.verifier());
        assert!(WitnessSigner::from_pkcs8_pem("w.example/a", "junk").is_err());
        assert!(WitnessSigner::generate("bad name").is_err());
    }

    fn check(note: &str, ws: &[WitnessVerifier]) -> Result<Vec<Cosigner>, CosignatureError> {
        cosigners(note, ws)
    }

    #[test]
    fn wrong_key_is_not_a_cosigner() {
        let a = witness("w.example/a", 1);
        // Same name, another key: a different key id, so the line is ignored.
        let impostor = witness("w.example/a", 9);
        let note = format!("{}{}", signed(5), impostor.cosign(&body(5), T).unwrap());
        assert!(check(&note, &[a.verifier()]).unwrap().is_empty());
        let err = open_witnessed_checkpoint(&note, &log().verifier(), &[a.verifier()], 1);
        assert!(matches!(
            err,
            Err(CosignatureError::Quorum { got: 0, want: 1 })
        ));
    }

    #[test]
    fn wrong_name_is_not_a_cosigner() {
        let a = witness("w.example/a", 1);
        let line = a.cosign(&body(5), T).unwrap();
        let renamed = line.replace("w.example/a", "w.example/z");
        let note = format!("{}{renamed}", signed(5));
        assert!(check(&note, &[a.verifier()]).unwrap().is_empty());
    }

    /// A line with a known name and key id that fails to verify.
    fn forged_line(a: &WitnessSigner, mutate: impl Fn(&mut Vec<u8>)) -> String {
        let line = a.cosign(&body(5), T).unwrap();
        let b64 = line.rsplit_once(' ').unwrap().1.trim_end();
        let mut blob = STANDARD.decode(b64).unwrap();
        mutate(&mut blob);
        format!("\u{2014} {} {}\n", a.name(), STANDARD.encode(blob))
    }

    #[test]
    fn changed_timestamp_fails() {
        let a = witness("w.example/a", 1);
        let line = forged_line(&a, |b| b[11] ^= 1);
        let note = format!("{}{line}", signed(5));
        assert!(matches!(
            check(&note, &[a.verifier()]),
            Err(CosignatureError::BadCosignature { .. })
        ));
    }

    #[test]
    fn zero_and_huge_timestamps_refused() {
        let a = witness("w.example/a", 1);
        assert!(a.cosign(&body(5), 0).is_err());
        assert!(a.cosign(&body(5), MAX_TIMESTAMP + 1).is_err());
        assert!(a.cosign(&body(5), MAX_TIMESTAMP).is_ok());
        for ts in [0u64, u64::MAX] {
            let line = forged_line(&a, |b| b[4..12].copy_from_slice(&ts.to_be_bytes()));
            let note = format!("{}{line}", signed(5));
            let got = check(&note, &[a.verifier()]);
            assert!(matches!(got, Err(CosignatureError::Timestamp(t)) if t == ts));
        }
    }

    #[test]
    fn swapped_body_fails() {
        let a = witness("w.example/a", 1);
        // A cosignature of size 5 moved onto the note of size 6.
        let note = format!("{}{}", signed(6), a.cosign(&body(5), T).unwrap());
        assert!(matches!(
            check(&note, &[a.verifier()]),
            Err(CosignatureError::BadCosignature { .. })
        ));
    }

    #[test]
    fn flipped_signature_and_truncated_lines_fail() {
        let a = witness("w.example/a", 1);
        let flipped = forged_line(&a, |b| b[40] ^= 0x80);
        let short = forged_line(&a, |b| b.truncate(70));
        let long = forged_line(&a, |b| b.push(0));
        let only_id = forged_line(&a, |b| b.truncate(6));
        for line in [flipped, short, long, only_id] {
            let note = format!("{}{line}", signed(5));
            assert!(
                matches!(
                    check(&note, &[a.verifier()]),
                    Err(CosignatureError::BadCosignature { .. })
                ),
                "{line}"
            );
        }
        // A line cut in its base64, or missing its final newline.
        let line = a.cosign(&body(5), T).unwrap();
        let cut = format!("{}{}\n", signed(5), &line[..line.len() - 10]);
        assert!(check(&cut, &[a.verifier()]).is_err());
        let unterminated = format!("{}{}", signed(5), line.trim_end());
        assert!(check(&unterminated, &[a.verifier()]).is_err());
    }

    #[test]
    fn duplicate_lines_count_once() {
        let a = witness("w.example/a", 1);
        let line = a.cosign(&body(5), T).unwrap();
        let later = a.cosign(&body(5), T + 5).unwrap();
        let note = format!("{}{line}{line}{later}", signed(5));
        let got = check(&note, &[a.verifier()]).unwrap();
        assert_eq!(
            got,
            vec![Cosigner {
                name: "w.example/a".into(),
                timestamp: T + 5
            }]
        );
        let b = witness("w.example/b", 2);
        assert!(matches!(
            open_witnessed_checkpoint(&note, &log().verifier(), &[a.verifier(), b.verifier()], 2),
            Err(CosignatureError::Quorum { got: 1, want: 2 })
        ));
    }

    #[test]
    fn unknown_lines_ignored() {
        let a = witness("w.example/a", 1);
        let other = witness("other.example/x", 3);
        let note = format!(
            "{}{}\u{2014} stranger.example AAAAAAAAAAAA\n{}",
            signed(5),
            other.cosign(&body(5), T).unwrap(),
            a.cosign(&body(5), T).unwrap()
        );
        assert_eq!(check(&note, &[a.verifier()]).unwrap().len(), 1);
    }

    #[test]
    fn witness_set_rules() {
        let a = witness("w.example/a", 1);
        let a2 = witness("w.example/a", 2);
        let note = format!("{}{}", signed(5), a.cosign(&body(5), T).unwrap());
        assert!(matches!(
            check(&note, &[a.verifier(), a2.verifier()]),
            Err(CosignatureError::DuplicateWitness { .. })
        ));
        assert!(matches!(
            open_witnessed_checkpoint(&note, &log().verifier(), &[a.verifier()], 2),
            Err(CosignatureError::QuorumUnreachable {
                quorum: 2,
                witnesses: 1
            })
        ));
    }

    #[test]
    fn log_signature_still_required() {
        let a = witness("w.example/a", 1);
        let other_log = NoteSigner::from_seed(ORIGIN, &[8; 32]).unwrap();
        let note = format!(
            "{}{}",
            note::sign_note(&body(5), &other_log).unwrap(),
            a.cosign(&body(5), T).unwrap()
        );
        assert!(matches!(
            open_witnessed_checkpoint(&note, &log().verifier(), &[a.verifier()], 1),
            Err(CosignatureError::Note(NoteError::NoSignatureByKey { .. }))
        ));
    }

    #[test]
    fn cosign_refuses_non_checkpoint_text() {
        let a = witness("w.example/a", 1);
        assert!(a.cosign("not a checkpoint\n", T).is_err());
        assert!(a.cosign("", T).is_err());
    }

    #[test]
    fn malformed_notes_refused() {
        let a = witness("w.example/a", 1);
        let ws = [a.verifier()];
        assert!(check("no blank line\n", &ws).is_err());
        assert!(check(&format!("{}\u{2014} x\n", signed(5)), &ws).is_err());
        assert!(check(&format!("{}- x AAAAAAAA\n", signed(5)), &ws).is_err());
        assert!(check(&format!("{}\u{2014} x !!!!\n", signed(5)), &ws).is_err());
        assert!(check(&format!("{}\u{2014} x AAAA\n", signed(5)), &ws).is_err());
        let huge = "a".repeat(MAX_NOTE_LEN + 1);
        assert!(check(&huge, &ws).is_err());
        let ctl = signed(5).replace(ORIGIN, "sealtrail.example/\u{1b}log");
        assert!(check(&ctl, &ws).is_err());
    }
}

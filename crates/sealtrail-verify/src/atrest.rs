//! Encryption at rest (LEDGER.md §4.9), reading side only.
//!
//! Each format-3 segment has its own data key (DEK), stored wrapped by the
//! key-encryption key (KEK) in `ledger/keys/NNNNNNNNNNNN.key`:
//!
//! ```text
//! magic "SEALKEY\0" | version u16 (=1) | reserved u16 (=0) | number u64
//! | kek id [8] | nonce [12] | AES-256-GCM(KEK, nonce, DEK, aad = bytes 0..28) [48]
//! | crc32c(bytes 0..88) u32                                   (92 bytes)
//! ```
//! A frame's stored payload is `leaf hash [32] || nonce [12] ||
//! AES-256-GCM(DEK, nonce, entry, aad = "SEALFRM\0" || number u64 || leaf)`.
//! The KEK id is `SHA-256("sealtrail kek id v1\n" || KEK)[..8]`.

use crate::hash::{Hash, sha256};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

pub const KEY_RECORD_LEN: usize = 92;
/// Stored frame bytes beyond the entry: leaf hash, nonce, tag.
pub const FRAME_OVERHEAD: u32 = 32 + 12 + 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AtRestError {
    #[error("key-encryption key: {0}")]
    KekFormat(&'static str),
    #[error("segment {number}: key record is malformed: {reason}")]
    Record { number: u64, reason: String },
    #[error("segment {number}: its data key is missing")]
    MissingKey { number: u64 },
    #[error(
        "segment {number}: its data key is wrapped with another key-encryption key (kek id {found}, given {given})"
    )]
    WrongKek { number: u64, found: String, given: String },
    #[error(
        "segment {number}: the data key does not unwrap with the key-encryption key (record altered)"
    )]
    Unwrap { number: u64 },
}

/// A key-encryption key.
pub struct Kek {
    key: [u8; 32],
    id: [u8; 8],
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Kek(id {})", crate::hex(&self.id))
    }
}

impl Kek {
    /// Exactly 32 bytes are the key itself; otherwise standard padded
    /// base64 of 32 bytes, surrounding whitespace allowed.
    pub fn parse(bytes: &[u8]) -> Result<Kek, AtRestError> {
        let key: [u8; 32] = match bytes.try_into() {
            Ok(key) => key,
            Err(_) => {
                let format = AtRestError::KekFormat;
                let text = std::str::from_utf8(bytes)
                    .map_err(|_| format("neither 32 raw bytes nor base64"))?;
                let raw = B64
                    .decode(text.trim())
                    .map_err(|_| format("neither 32 raw bytes nor base64 of 32 bytes"))?;
                raw.try_into().map_err(|_| format("base64 does not decode to 32 bytes"))?
            }
        };
        let mut id = [0u8; 8];
        id.copy_from_slice(&sha256(&[&b"sealtrail kek id v1\n"[..], &key].concat())[..8]);
        Ok(Kek { key, id })
    }

    pub fn id(&self) -> [u8; 8] {
        self.id
    }

    /// Parses the key record of segment `number` and unwraps its DEK.
    pub fn open_record(&self, number: u64, rec: &[u8]) -> Result<SegmentCipher, AtRestError> {
        let bad = |reason: &str| AtRestError::Record { number, reason: reason.to_owned() };
        let rec: &[u8; KEY_RECORD_LEN] = rec
            .try_into()
            .map_err(|_| bad(&format!("{} bytes, not {KEY_RECORD_LEN}", rec.len())))?;
        // (holds, else the reason), in the order checked.
        let rules = [
            (&rec[..8] == b"SEALKEY\0", "bad magic"),
            (crc32c::crc32c(&rec[..88]).to_be_bytes() == rec[88..], "checksum mismatch"),
            (rec[8..12] == [0, 1, 0, 0], "unsupported version"),
            (rec[12..20] == number.to_be_bytes(), "it is the key of another segment"),
        ];
        if let Some((_, reason)) = rules.iter().find(|(holds, _)| !holds) {
            return Err(bad(reason));
        }
        if rec[20..28] != self.id {
            let (found, given) = (crate::hex(&rec[20..28]), crate::hex(&self.id));
            return Err(AtRestError::WrongKek { number, found, given });
        }
        let payload = Payload { msg: &rec[40..88], aad: &rec[..28] };
        let dek = aead(&self.key).decrypt(Nonce::from_slice(&rec[28..40]), payload);
        match dek.map(<[u8; 32]>::try_from) {
            Ok(Ok(dek)) => Ok(SegmentCipher { number, aead: aead(&dek) }),
            _ => Err(AtRestError::Unwrap { number }),
        }
    }
}

fn aead(key: &[u8; 32]) -> Aes256Gcm {
    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key))
}

/// The leaf hash stored at the start of an encrypted frame's payload
/// (`None` if the payload is too short to hold an entry).
pub fn stored_leaf(stored: &[u8]) -> Option<Hash> {
    if stored.len() <= FRAME_OVERHEAD as usize {
        return None;
    }
    stored[..32].try_into().ok()
}

/// The frame cipher of one encrypted segment.
pub struct SegmentCipher {
    number: u64,
    aead: Aes256Gcm,
}

impl SegmentCipher {
    /// Decrypts a stored payload into `out`. Any altered byte (leaf, nonce,
    /// ciphertext, tag) or a frame from another segment fails.
    pub fn open_frame(&self, stored: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        out.clear();
        let leaf = stored_leaf(stored)
            .ok_or_else(|| format!("encrypted frame of {} bytes is too short", stored.len()))?;
        let aad = [&b"SEALFRM\0"[..], &self.number.to_be_bytes(), &leaf].concat();
        let payload = Payload { msg: &stored[44..], aad: &aad };
        *out = self.aead.decrypt(Nonce::from_slice(&stored[32..44]), payload).map_err(|_| {
            "encrypted entry does not authenticate (altered, or from another segment)".to_owned()
        })?;
        Ok(())
    }
}

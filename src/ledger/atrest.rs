//! Encryption at rest of segment payloads (docs/LEDGER.md §4.9).
//!
//! Each encrypted segment (format version 3) has its own random 256-bit data
//! key (DEK). The DEK is stored wrapped (AES-256-GCM) by the key-encryption
//! key (KEK) in `ledger/keys/NNNNNNNNNNNN.key`, a small record that rotation
//! replaces atomically without touching the segment. Every frame stores
//! `leaf hash || nonce || AES-256-GCM(DEK, nonce, entry, AAD)`: the leaf hash
//! (over the plaintext entry, as in every version) stays readable so that
//! `verify` without the KEK still checks block roots, records, the chain and
//! checkpoints; with the KEK every entry is decrypted and rehashed.
//!
//! Readers find the KEK through a per-process registry keyed by the data
//! directory (`register`), so the many readers (`EntryReader`, the indexer,
//! proofs, verify) need no new parameters: `DictStore` asks the registry.

use super::hash::Hash;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use thiserror::Error;
use zeroize::{Zeroize, Zeroizing};

/// Environment variable holding the KEK as base64 of 32 bytes.
pub const KEK_ENV: &str = "SEALTRAIL_KEK";
/// Magic of a key record.
pub const KEY_MAGIC: &[u8; 8] = b"SEALKEY\0";
pub const KEY_RECORD_VERSION: u16 = 1;
/// Bytes of a key record (LEDGER.md §4.9).
pub const KEY_RECORD_LEN: usize = 92;
/// Bytes of a key record covered by the wrap's associated data.
const KEY_AAD_LEN: usize = 28;
pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;
/// Stored frame bytes beyond the entry: leaf hash, nonce, tag.
pub const FRAME_OVERHEAD: u32 = (32 + NONCE_LEN + TAG_LEN) as u32;
/// Domain separation of the frame associated data.
const FRAME_AAD_TAG: &[u8; 8] = b"SEALFRM\0";
/// Largest KEK file read (raw 32 bytes or a base64 line).
const MAX_KEK_FILE: u64 = 1024;
/// Data keys kept unwrapped in memory per keyring; beyond it the cache is
/// cleared (a reader touching many old segments re-reads their records).
const MAX_CACHED_DEKS: usize = 4096;

#[derive(Debug, Error)]
pub enum AtRestError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{what}: {reason}")]
    KekFormat { what: String, reason: String },
    #[error(
        "the key-encryption key file {kek} is inside the data directory {data}: keep it elsewhere (another volume, a secrets mount), or a stolen disk holds both"
    )]
    KekInsideData { kek: PathBuf, data: PathBuf },
    #[error("{path}: key record is malformed: {reason}")]
    Record { path: PathBuf, reason: String },
    #[error(
        "segment {number} is encrypted at rest and no key-encryption key was given ([ledger] encryption_key_file, {KEK_ENV}, or --kek)"
    )]
    NoKek { number: u64 },
    #[error("segment {number}: its data key {path} is missing")]
    MissingKey { number: u64, path: PathBuf },
    #[error(
        "segment {number}: its data key is wrapped with another key-encryption key (kek id {found}, given {given}); wrong KEK, or an unfinished `sealtrail key rotate-kek`"
    )]
    WrongKek {
        number: u64,
        found: String,
        given: String,
    },
    #[error(
        "segment {number}: the data key does not unwrap with the key-encryption key (record altered)"
    )]
    Unwrap { number: u64 },
    #[error("encryption failed")]
    Encrypt,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> AtRestError + '_ {
    move |source| AtRestError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A key-encryption key: 32 bytes, zeroed when dropped.
pub struct Kek {
    key: Zeroizing<[u8; 32]>,
    id: [u8; 8],
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Kek(id {})", hex::encode(self.id))
    }
}

impl Kek {
    fn from_key(key: Zeroizing<[u8; 32]>) -> Kek {
        let mut h = Sha256::new();
        h.update(b"sealtrail kek id v1\n");
        h.update(key.as_ref());
        let digest = h.finalize();
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        Kek { key, id }
    }

    /// A new random KEK.
    pub fn generate() -> Kek {
        let mut key = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(key.as_mut());
        Kek::from_key(key)
    }

    /// Parses a KEK: exactly 32 bytes are the key itself (base64 of 32
    /// bytes is 44 characters, so the two never meet); otherwise base64
    /// (standard, padded) of 32 bytes with surrounding whitespace allowed.
    pub fn parse(bytes: &[u8], what: &str) -> Result<Kek, AtRestError> {
        let bad = |reason: &str| AtRestError::KekFormat {
            what: what.to_owned(),
            reason: reason.to_owned(),
        };
        let mut key = Zeroizing::new([0u8; 32]);
        if bytes.len() == 32 {
            key.copy_from_slice(bytes);
            return Ok(Kek::from_key(key));
        }
        let text =
            std::str::from_utf8(bytes).map_err(|_| bad("neither 32 raw bytes nor base64"))?;
        let decoded = Zeroizing::new(
            B64.decode(text.trim())
                .map_err(|_| bad("neither 32 raw bytes nor base64 of 32 bytes"))?,
        );
        if decoded.len() != 32 {
            return Err(bad("base64 does not decode to 32 bytes"));
        }
        key.copy_from_slice(&decoded);
        Ok(Kek::from_key(key))
    }

    /// Reads a KEK file (bounded).
    pub fn load_file(path: &Path) -> Result<Kek, AtRestError> {
        let file = File::open(path).map_err(io_err(path))?;
        let mut bytes = Zeroizing::new(Vec::new());
        #[allow(clippy::disallowed_methods)] // bounded by `take`
        file.take(MAX_KEK_FILE + 1)
            .read_to_end(&mut bytes)
            .map_err(io_err(path))?;
        if bytes.len() as u64 > MAX_KEK_FILE {
            return Err(AtRestError::KekFormat {
                what: path.display().to_string(),
                reason: "file is too large for a key".into(),
            });
        }
        Kek::parse(&bytes, &path.display().to_string())
    }

    /// The KEK in `SEALTRAIL_KEK`, if set.
    pub fn from_env() -> Result<Option<Kek>, AtRestError> {
        match std::env::var(KEK_ENV) {
            Ok(v) => {
                let v = Zeroizing::new(v);
                Kek::parse(v.as_bytes(), KEK_ENV).map(Some)
            }
            Err(_) => Ok(None),
        }
    }

    /// Writes a new file holding the key as a base64 line, mode 0600; an
    /// existing file is never overwritten.
    pub fn write_new_file(&self, path: &Path) -> Result<(), AtRestError> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io_err(path))?;
        let mut line = Zeroizing::new(B64.encode(self.key.as_ref()));
        line.push('\n');
        f.write_all(line.as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(io_err(path))
    }

    /// Public identifier of this key (first 8 bytes of a domain-separated
    /// SHA-256): tells which KEK wrapped a record without revealing it.
    pub fn id(&self) -> [u8; 8] {
        self.id
    }

    pub fn id_hex(&self) -> String {
        hex::encode(self.id)
    }

    fn aead(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(self.key.as_ref()))
    }

    /// A key record for segment `number` holding `dek` wrapped by this KEK.
    fn wrap(&self, number: u64, dek: &[u8; 32]) -> Result<[u8; KEY_RECORD_LEN], AtRestError> {
        let mut rec = [0u8; KEY_RECORD_LEN];
        rec[..8].copy_from_slice(KEY_MAGIC);
        rec[8..10].copy_from_slice(&KEY_RECORD_VERSION.to_be_bytes());
        rec[12..20].copy_from_slice(&number.to_be_bytes());
        rec[20..28].copy_from_slice(&self.id);
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        rec[28..40].copy_from_slice(&nonce);
        let wrapped = self
            .aead()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: dek,
                    aad: &rec[..KEY_AAD_LEN],
                },
            )
            .map_err(|_| AtRestError::Encrypt)?;
        if wrapped.len() != 48 {
            return Err(AtRestError::Encrypt);
        }
        rec[40..88].copy_from_slice(&wrapped);
        let crc = crc32c::crc32c(&rec[..88]);
        rec[88..].copy_from_slice(&crc.to_be_bytes());
        Ok(rec)
    }
}

/// A parsed key record (not yet unwrapped).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRecord {
    pub number: u64,
    pub kek_id: [u8; 8],
    bytes: [u8; KEY_RECORD_LEN],
}

impl KeyRecord {
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<KeyRecord, AtRestError> {
        let bad = |reason: &str| AtRestError::Record {
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        let bytes: [u8; KEY_RECORD_LEN] = bytes
            .try_into()
            .map_err(|_| bad(&format!("{} bytes, not {KEY_RECORD_LEN}", bytes.len())))?;
        if &bytes[..8] != KEY_MAGIC {
            return Err(bad("bad magic"));
        }
        let crc = u32::from_be_bytes([bytes[88], bytes[89], bytes[90], bytes[91]]);
        if crc32c::crc32c(&bytes[..88]) != crc {
            return Err(bad("checksum mismatch"));
        }
        if u16::from_be_bytes([bytes[8], bytes[9]]) != KEY_RECORD_VERSION || bytes[10..12] != [0, 0]
        {
            return Err(bad("unsupported version"));
        }
        let mut number = [0u8; 8];
        number.copy_from_slice(&bytes[12..20]);
        let mut kek_id = [0u8; 8];
        kek_id.copy_from_slice(&bytes[20..28]);
        Ok(KeyRecord {
            number: u64::from_be_bytes(number),
            kek_id,
            bytes,
        })
    }

    pub fn read(path: &Path) -> Result<KeyRecord, AtRestError> {
        let file = File::open(path).map_err(io_err(path))?;
        let mut bytes = Vec::with_capacity(KEY_RECORD_LEN);
        #[allow(clippy::disallowed_methods)] // bounded by `take`
        file.take(KEY_RECORD_LEN as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(io_err(path))?;
        KeyRecord::parse(path, &bytes)
    }

    /// The DEK, if `kek` wrapped this record.
    fn unwrap(&self, kek: &Kek) -> Result<Zeroizing<[u8; 32]>, AtRestError> {
        if self.kek_id != kek.id {
            return Err(AtRestError::WrongKek {
                number: self.number,
                found: hex::encode(self.kek_id),
                given: kek.id_hex(),
            });
        }
        let mut plain = kek
            .aead()
            .decrypt(
                Nonce::from_slice(&self.bytes[28..40]),
                Payload {
                    msg: &self.bytes[40..88],
                    aad: &self.bytes[..KEY_AAD_LEN],
                },
            )
            .map_err(|_| AtRestError::Unwrap {
                number: self.number,
            })?;
        let mut dek = Zeroizing::new([0u8; 32]);
        if plain.len() != 32 {
            plain.zeroize();
            return Err(AtRestError::Unwrap {
                number: self.number,
            });
        }
        dek.copy_from_slice(&plain);
        plain.zeroize();
        Ok(dek)
    }
}

/// The frame cipher of one encrypted segment. `Aes256Gcm` (with the
/// `zeroize` feature) wipes its key schedule when dropped.
pub struct SegmentCipher {
    number: u64,
    aead: Aes256Gcm,
}

impl std::fmt::Debug for SegmentCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SegmentCipher(segment {})", self.number)
    }
}

fn frame_aad(number: u64, leaf: &[u8]) -> [u8; 48] {
    let mut aad = [0u8; 48];
    aad[..8].copy_from_slice(FRAME_AAD_TAG);
    aad[8..16].copy_from_slice(&number.to_be_bytes());
    aad[16..].copy_from_slice(leaf);
    aad
}

/// The leaf hash stored at the start of an encrypted frame's payload.
pub fn stored_leaf(stored: &[u8]) -> Option<Hash> {
    if stored.len() < FRAME_OVERHEAD as usize + 1 {
        return None;
    }
    stored[..32].try_into().ok()
}

impl SegmentCipher {
    fn new(number: u64, dek: &[u8; 32]) -> SegmentCipher {
        SegmentCipher {
            number,
            aead: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(dek)),
        }
    }

    /// Appends the stored payload of `entry` (whose leaf hash is `leaf`) to
    /// `out`: `leaf || nonce || ciphertext || tag`. The nonce is 96 random
    /// bits from the OS for every frame (see LEDGER.md §4.9 for why not a
    /// counter).
    pub fn seal_frame(
        &self,
        entry: &[u8],
        leaf: &Hash,
        out: &mut Vec<u8>,
    ) -> Result<(), AtRestError> {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let ct = self
            .aead
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: entry,
                    aad: &frame_aad(self.number, leaf),
                },
            )
            .map_err(|_| AtRestError::Encrypt)?;
        out.extend_from_slice(leaf);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(())
    }

    /// Decrypts a stored payload into `out` (replacing its contents) and
    /// returns the stored leaf hash. Any altered byte (leaf, nonce,
    /// ciphertext, tag) or a frame from another segment fails.
    pub fn open_frame(&self, stored: &[u8], out: &mut Vec<u8>) -> Result<Hash, String> {
        out.clear();
        let leaf = stored_leaf(stored)
            .ok_or_else(|| format!("encrypted frame of {} bytes is too short", stored.len()))?;
        let nonce = &stored[32..32 + NONCE_LEN];
        let plain = self
            .aead
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: &stored[32 + NONCE_LEN..],
                    aad: &frame_aad(self.number, &leaf),
                },
            )
            .map_err(|_| {
                "encrypted entry does not authenticate (altered, or from another segment)"
                    .to_owned()
            })?;
        *out = plain;
        Ok(leaf)
    }
}

/// The KEK of one data directory and the data keys of its segments.
pub struct Keyring {
    kek: Kek,
    dir: PathBuf,
    cache: Mutex<HashMap<u64, Arc<SegmentCipher>>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keyring({:?}, {})", self.kek, self.dir.display())
    }
}

/// `ledger/keys` of a data directory.
pub fn keys_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("ledger").join("keys")
}

/// Path of segment `number`'s key record.
pub fn key_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:012}.key"))
}

/// Key records in `dir`: (segment number, path), sorted.
pub fn list_key_records(dir: &Path) -> Result<Vec<(u64, PathBuf)>, AtRestError> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => {
            return Err(AtRestError::Io {
                path: dir.to_owned(),
                source: e,
            });
        }
    };
    for entry in entries {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".key")) else {
            continue;
        };
        if stem.len() == 12
            && stem.bytes().all(|b| b.is_ascii_digit())
            && let Ok(n) = stem.parse()
        {
            out.push((n, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Writes `bytes` to `path` atomically: temporary file, fsync, rename,
/// directory fsync. A crash leaves the old or the new file, never a mix.
fn replace_file(path: &Path, bytes: &[u8]) -> Result<(), AtRestError> {
    let tmp = path.with_extension("key.tmp");
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))?;
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(dir))?;
    }
    Ok(())
}

impl Keyring {
    pub fn new(kek: Kek, data_dir: &Path) -> Keyring {
        Keyring {
            kek,
            dir: keys_dir(data_dir),
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn kek_id_hex(&self) -> String {
        self.kek.id_hex()
    }

    /// The KEK as the verifier crate's type, for `verify`.
    pub fn verifier_kek(&self) -> Option<sealtrail_verify::atrest::Kek> {
        sealtrail_verify::atrest::Kek::parse(self.kek.key.as_ref()).ok()
    }

    fn cached(&self, number: u64, cipher: SegmentCipher) -> Arc<SegmentCipher> {
        let cipher = Arc::new(cipher);
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= MAX_CACHED_DEKS {
                cache.clear();
            }
            cache.insert(number, cipher.clone());
        }
        cipher
    }

    /// The cipher of existing segment `number` (its key record unwrapped).
    pub fn cipher(&self, number: u64) -> Result<Arc<SegmentCipher>, AtRestError> {
        if let Some(c) = self.cache.lock().ok().and_then(|c| c.get(&number).cloned()) {
            return Ok(c);
        }
        let path = key_path(&self.dir, number);
        let rec = match KeyRecord::read(&path) {
            Err(AtRestError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Err(AtRestError::MissingKey { number, path });
            }
            r => r?,
        };
        if rec.number != number {
            return Err(AtRestError::Record {
                path,
                reason: format!("it is the key of segment {}", rec.number),
            });
        }
        let dek = rec.unwrap(&self.kek)?;
        Ok(self.cached(number, SegmentCipher::new(number, &dek)))
    }

    /// A data key for new segment `number`, durable before the segment's
    /// header is written. A record left by a crash before the header was
    /// written is reused.
    pub fn create(&self, number: u64) -> Result<Arc<SegmentCipher>, AtRestError> {
        let path = key_path(&self.dir, number);
        if path.exists() {
            return self.cipher(number);
        }
        fs::create_dir_all(&self.dir).map_err(io_err(&self.dir))?;
        let mut dek = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(dek.as_mut());
        let rec = self.kek.wrap(number, &dek)?;
        replace_file(&path, &rec)?;
        Ok(self.cached(number, SegmentCipher::new(number, &dek)))
    }

    /// Checks that every key record unwraps with this KEK (a wrong KEK or an
    /// unfinished rotation is reported at start, not as unreadable events
    /// later). Returns how many there are.
    pub fn check_all(&self) -> Result<u64, AtRestError> {
        let records = list_key_records(&self.dir)?;
        for (number, path) in &records {
            let rec = KeyRecord::read(path)?;
            if rec.number != *number {
                return Err(AtRestError::Record {
                    path: path.clone(),
                    reason: format!("it is the key of segment {}", rec.number),
                });
            }
            rec.unwrap(&self.kek)?;
        }
        Ok(records.len() as u64)
    }
}

/// What `rotate_kek` did, for the operator and for the audit event.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct KeyRotation {
    pub old_kek_id: String,
    pub new_kek_id: String,
    /// Records re-wrapped by this run.
    pub rewrapped: u64,
    /// Records already wrapped by the new KEK (an earlier, interrupted run).
    pub already_new: u64,
}

/// Re-wraps every segment's data key from `old` to `new` in `data_dir`; the
/// segments themselves are not touched. Each record is replaced atomically,
/// so a crash leaves each one wrapped by either KEK; a re-run finishes the
/// job (records already wrapped by `new` are skipped). The caller holds the
/// data directory's lock (no writer may create records meanwhile).
pub fn rotate_kek(data_dir: &Path, old: &Kek, new: &Kek) -> Result<KeyRotation, AtRestError> {
    let dir = keys_dir(data_dir);
    let mut out = KeyRotation {
        old_kek_id: old.id_hex(),
        new_kek_id: new.id_hex(),
        ..KeyRotation::default()
    };
    // Temporaries of an interrupted run: never renamed, so never in use.
    if let Ok(entries) = fs::read_dir(&dir) {
        for e in entries.flatten() {
            if e.file_name()
                .to_str()
                .is_some_and(|n| n.ends_with(".key.tmp"))
            {
                fs::remove_file(e.path()).map_err(io_err(&e.path()))?;
            }
        }
    }
    for (number, path) in list_key_records(&dir)? {
        let rec = KeyRecord::read(&path)?;
        if rec.number != number {
            return Err(AtRestError::Record {
                path,
                reason: format!("it is the key of segment {}", rec.number),
            });
        }
        if rec.kek_id == new.id {
            // Proves the new KEK really opens it before counting it done.
            rec.unwrap(new)?;
            out.already_new += 1;
            continue;
        }
        let dek = rec.unwrap(old)?;
        let rewrapped = new.wrap(number, &dek)?;
        replace_file(&path, &rewrapped)?;
        out.rewrapped += 1;
    }
    Ok(out)
}

/// Refuses a KEK file inside the data directory.
pub fn check_kek_location(kek_file: &Path, data_dir: &Path) -> Result<(), AtRestError> {
    let kek = fs::canonicalize(kek_file).map_err(io_err(kek_file))?;
    let Ok(data) = fs::canonicalize(data_dir) else {
        return Ok(()); // no data directory yet: nothing can be inside it
    };
    if kek.starts_with(&data) {
        return Err(AtRestError::KekInsideData {
            kek: kek_file.to_owned(),
            data: data_dir.to_owned(),
        });
    }
    Ok(())
}

/// Keyrings by canonical data directory, for readers in this process.
static REGISTRY: Mutex<Vec<(PathBuf, Arc<Keyring>)>> = Mutex::new(Vec::new());

/// Makes `kek` the key of `data_dir` (which must exist) for every reader
/// and writer in this process; replaces an earlier one.
pub fn register(data_dir: &Path, kek: Kek) -> Result<Arc<Keyring>, AtRestError> {
    let canonical = fs::canonicalize(data_dir).map_err(io_err(data_dir))?;
    let ring = Arc::new(Keyring::new(kek, &canonical));
    if let Ok(mut reg) = REGISTRY.lock() {
        reg.retain(|(p, _)| p != &canonical);
        reg.push((canonical, ring.clone()));
    }
    Ok(ring)
}

/// The keyring registered for the data directory whose `ledger/` folder is
/// `ledger_dir`, if any.
pub fn keyring_for_ledger_dir(ledger_dir: &Path) -> Option<Arc<Keyring>> {
    let reg = REGISTRY.lock().ok()?;
    if reg.is_empty() {
        return None;
    }
    let data = fs::canonicalize(ledger_dir.parent()?).ok()?;
    reg.iter().find(|(p, _)| p == &data).map(|(_, r)| r.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kek_parses_raw_and_base64_and_rejects_the_rest() {
        let k = Kek::generate();
        let b64 = B64.encode(k.key.as_ref());
        assert_eq!(Kek::parse(b64.as_bytes(), "t").unwrap().id(), k.id());
        assert_eq!(
            Kek::parse(format!("{b64}\n").as_bytes(), "t").unwrap().id(),
            k.id()
        );
        assert_eq!(Kek::parse(k.key.as_ref(), "t").unwrap().id(), k.id());
        assert!(Kek::parse(b"short", "t").is_err());
        assert!(Kek::parse(B64.encode([1u8; 31]).as_bytes(), "t").is_err());
    }

    #[test]
    fn frames_round_trip_and_bind_segment_and_leaf() {
        let c = SegmentCipher::new(7, &[3; 32]);
        let entry = br#"{"event":{"time":"2026-01-01T00:00:00Z"}}"#;
        let leaf = super::super::hash::leaf_hash(entry);
        let mut stored = Vec::new();
        c.seal_frame(entry, &leaf, &mut stored).unwrap();
        assert_eq!(stored.len(), entry.len() + FRAME_OVERHEAD as usize);
        let mut out = Vec::new();
        assert_eq!(c.open_frame(&stored, &mut out).unwrap(), leaf);
        assert_eq!(out, entry);
        for i in 0..stored.len() {
            let mut b = stored.clone();
            b[i] ^= 1;
            assert!(c.open_frame(&b, &mut out).is_err(), "byte {i}");
        }
        // Same DEK, another segment number: refused.
        assert!(
            SegmentCipher::new(8, &[3; 32])
                .open_frame(&stored, &mut out)
                .is_err()
        );
        // Two frames of the same entry never share a nonce.
        let mut again = Vec::new();
        c.seal_frame(entry, &leaf, &mut again).unwrap();
        assert_ne!(stored[32..44], again[32..44]);
    }

    #[test]
    fn rotation_rewraps_and_is_resumable() {
        let tmp = tempfile::tempdir().unwrap();
        let old = Kek::generate();
        let new = Kek::generate();
        let ring = Keyring::new(Kek::parse(old.key.as_ref(), "t").unwrap(), tmp.path());
        let c0 = ring.create(0).unwrap();
        ring.create(1).unwrap();
        let mut stored = Vec::new();
        c0.seal_frame(b"x", &[0; 32], &mut stored).unwrap();
        // Simulate a crash after the first record: rotate only record 0 by hand.
        let dir = keys_dir(tmp.path());
        let rec = KeyRecord::read(&key_path(&dir, 0)).unwrap();
        let dek = rec.unwrap(&old).unwrap();
        replace_file(&key_path(&dir, 0), &new.wrap(0, &dek).unwrap()).unwrap();
        fs::write(dir.join("000000000001.key.tmp"), b"torn").unwrap();
        let r = rotate_kek(tmp.path(), &old, &new).unwrap();
        assert_eq!((r.rewrapped, r.already_new), (1, 1));
        let fresh = Keyring::new(Kek::parse(new.key.as_ref(), "t").unwrap(), tmp.path());
        assert_eq!(fresh.check_all().unwrap(), 2);
        let mut out = Vec::new();
        fresh
            .cipher(0)
            .unwrap()
            .open_frame(&stored, &mut out)
            .unwrap();
        assert_eq!(out, b"x");
        let stale = Keyring::new(old, tmp.path());
        assert!(matches!(
            stale.check_all(),
            Err(AtRestError::WrongKek { .. })
        ));
        assert!(!dir.join("000000000001.key.tmp").exists());
    }
}

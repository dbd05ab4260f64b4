//! zstd dictionaries of compacted (version 2) segments: content-addressed
//! files `ledger/dicts/<sha256 hex>.zdict`, shared by many segments, written
//! atomically before any segment that names them.
//!
//! A `DictStore` loads a dictionary once per hash (bounded read, hash
//! checked) and keeps the prepared decoder, so readers resolve a segment's
//! `FrameCodec` from its header cheaply.

use super::hash::Hash;
use super::segment::{FrameCodec, FrameFormat};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use thiserror::Error;
use zstd::dict::DecoderDictionary;

/// File name extension of a dictionary.
pub const DICT_EXT: &str = "zdict";
/// Largest dictionary file accepted; checked before reading.
pub const MAX_DICT_LEN: u64 = 256 << 10;

#[derive(Debug, Error)]
pub enum DictError {
    #[error("dictionary {hash} is missing ({path} does not exist)")]
    Missing { path: PathBuf, hash: String },
    #[error("dictionary {hash} does not match its name ({path} hashes to {actual})")]
    Mismatch {
        path: PathBuf,
        hash: String,
        actual: String,
    },
    #[error("dictionary {path} is {len} bytes, over the {MAX_DICT_LEN}-byte limit")]
    TooLarge { path: PathBuf, len: u64 },
    #[error("dictionary {path} is empty")]
    Empty { path: PathBuf },
    #[error(transparent)]
    Key(#[from] super::atrest::AtRestError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl DictError {
    fn io(path: &Path, source: io::Error) -> Self {
        DictError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// SHA-256 of a dictionary's bytes: its name.
pub fn dict_hash(bytes: &[u8]) -> Hash {
    Sha256::digest(bytes).into()
}

/// The dictionaries of one data directory, with a cache of prepared decoders.
pub struct DictStore {
    dir: PathBuf,
    /// The data directory's KEK and data keys, when one was registered in
    /// this process (`atrest::register`): decrypts version 3 segments.
    keys: Option<Arc<super::atrest::Keyring>>,
    cache: Mutex<HashMap<Hash, Arc<DecoderDictionary<'static>>>>,
}

impl DictStore {
    /// The store in `dir` (`DATA/ledger/dicts`).
    pub fn new(dir: &Path) -> DictStore {
        DictStore {
            keys: dir.parent().and_then(super::atrest::keyring_for_ledger_dir),
            dir: dir.to_owned(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The store beside the segment file `segment` (`../dicts` of its
    /// directory), for readers that only have a segment's path.
    pub fn for_segment(segment: &Path) -> DictStore {
        let segments = segment.parent().unwrap_or(Path::new("."));
        let ledger = segments.parent().unwrap_or(Path::new("."));
        DictStore::new(&ledger.join("dicts"))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of the dictionary named `hash`.
    pub fn path(&self, hash: &Hash) -> PathBuf {
        self.dir.join(format!("{}.{DICT_EXT}", hex::encode(hash)))
    }

    /// Reads the dictionary named `hash`: bounded, and checked against its name.
    pub fn read_bytes(&self, hash: &Hash) -> Result<Vec<u8>, DictError> {
        let path = self.path(hash);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(DictError::Missing {
                    path,
                    hash: hex::encode(hash),
                });
            }
            Err(e) => return Err(DictError::io(&path, e)),
        };
        let len = file.metadata().map_err(|e| DictError::io(&path, e))?.len();
        if len > MAX_DICT_LEN {
            return Err(DictError::TooLarge { path, len });
        }
        let mut bytes = Vec::with_capacity(len as usize);
        // `take` bounds the read even if the file grows after the check.
        #[allow(clippy::disallowed_methods)] // bounded by `take`
        file.take(MAX_DICT_LEN + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| DictError::io(&path, e))?;
        if bytes.len() as u64 > MAX_DICT_LEN {
            return Err(DictError::TooLarge {
                path,
                len: bytes.len() as u64,
            });
        }
        if bytes.is_empty() {
            return Err(DictError::Empty { path });
        }
        let actual = dict_hash(&bytes);
        if &actual != hash {
            return Err(DictError::Mismatch {
                path,
                hash: hex::encode(hash),
                actual: hex::encode(actual),
            });
        }
        Ok(bytes)
    }

    /// The prepared decoder of dictionary `hash` (loaded once per store).
    pub fn decoder(&self, hash: &Hash) -> Result<Arc<DecoderDictionary<'static>>, DictError> {
        if let Some(d) = self.cache.lock().ok().and_then(|c| c.get(hash).cloned()) {
            return Ok(d);
        }
        let bytes = self.read_bytes(hash)?;
        let dict = Arc::new(DecoderDictionary::copy(&bytes));
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(*hash, dict.clone());
        }
        Ok(dict)
    }

    /// How to decode the payloads of a segment in `format`.
    pub fn codec(&self, format: FrameFormat) -> Result<FrameCodec, DictError> {
        match format {
            FrameFormat::Plain => Ok(FrameCodec::Plain),
            FrameFormat::Zstd { dict } if dict == [0; 32] => Ok(FrameCodec::Zstd(None)),
            FrameFormat::Zstd { dict } => Ok(FrameCodec::Zstd(Some(self.decoder(&dict)?))),
            FrameFormat::Encrypted { number } => match &self.keys {
                Some(keys) => Ok(FrameCodec::Sealed(Some(keys.cipher(number)?))),
                None => Err(super::atrest::AtRestError::NoKek { number }.into()),
            },
        }
    }

    /// Stores `bytes` as a dictionary (tmp file, fsync, rename, directory
    /// fsync), unless it is already there; returns its name.
    pub fn write(&self, bytes: &[u8]) -> Result<Hash, DictError> {
        let hash = dict_hash(bytes);
        if bytes.is_empty() {
            return Err(DictError::Empty {
                path: self.path(&hash),
            });
        }
        if bytes.len() as u64 > MAX_DICT_LEN {
            return Err(DictError::TooLarge {
                path: self.path(&hash),
                len: bytes.len() as u64,
            });
        }
        if self.read_bytes(&hash).is_ok() {
            return Ok(hash);
        }
        fs::create_dir_all(&self.dir).map_err(|e| DictError::io(&self.dir, e))?;
        let path = self.path(&hash);
        let tmp = self
            .dir
            .join(format!("{}.{DICT_EXT}.tmp", hex::encode(hash)));
        let mut f = File::create(&tmp).map_err(|e| DictError::io(&tmp, e))?;
        f.write_all(bytes)
            .and_then(|_| f.sync_all())
            .map_err(|e| DictError::io(&tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| DictError::io(&path, e))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| DictError::io(&self.dir, e))?;
        Ok(hash)
    }

    /// Deletes leftover temporary files of an interrupted `write`.
    pub fn remove_temporaries(&self) -> Result<(), DictError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(DictError::io(&self.dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| DictError::io(&self.dir, e))?;
            if entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.ends_with(".tmp"))
            {
                fs::remove_file(entry.path()).map_err(|e| DictError::io(&entry.path(), e))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionaries_are_content_addressed_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let store = DictStore::new(&dir.path().join("dicts"));
        let hash = store.write(b"some dictionary bytes").unwrap();
        assert_eq!(hash, dict_hash(b"some dictionary bytes"));
        assert_eq!(store.read_bytes(&hash).unwrap(), b"some dictionary bytes");
        // Altered: refused, naming the hash.
        std::fs::write(store.path(&hash), b"other bytes").unwrap();
        let e = DictStore::new(store.dir()).read_bytes(&hash).unwrap_err();
        assert!(matches!(e, DictError::Mismatch { .. }), "{e}");
        assert!(e.to_string().contains(&hex::encode(hash)), "{e}");
        // Oversized: refused before reading.
        std::fs::write(store.path(&hash), vec![0u8; MAX_DICT_LEN as usize + 1]).unwrap();
        assert!(matches!(
            store.read_bytes(&hash),
            Err(DictError::TooLarge { .. })
        ));
        // Missing.
        std::fs::remove_file(store.path(&hash)).unwrap();
        let Err(e) = store.decoder(&hash) else {
            panic!("a missing dictionary loaded")
        };
        assert!(matches!(e, DictError::Missing { .. }), "{e}");
        // All zeros means "no dictionary" and needs no file.
        assert!(matches!(
            store.codec(FrameFormat::Zstd { dict: [0; 32] }),
            Ok(FrameCodec::Zstd(None))
        ));
    }
}

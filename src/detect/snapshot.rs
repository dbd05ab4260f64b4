//! Detection state snapshots: the rule engine's state, the suppression
//! window and the known alert ids, with the ledger position they cover, so
//! a restart loads them and replays only the entries after that position
//! instead of the whole replay window.
//!
//! File `DATA/snapshots/detection.snapshot` (0600), written atomically
//! (temporary file, fsync, rename, fsync of the folder):
//!
//! ```text
//!  magic "SEALSNAP" | version u16 | kind u8 (1 detection) | 5 zero bytes
//!  position u64      index of the last ledger entry applied
//!  leaf [32]         leaf hash of that entry, SHA-256(0x00 || entry bytes)
//!  rules [32]        digest of the rule files and the settings state depends on
//!  written_ms i64    when it was written (unix ms)
//!  engine_len u64 | detector_len u64
//!  engine            Engine::save_state (JSON)
//!  detector          suppression window and known alert ids (JSON)
//!  sha256 [32]       of everything before it
//! ```
//! (integers big-endian). A snapshot is used only when every check holds:
//! magic, version, kind, lengths (bounded before anything is read), the
//! checksum, the rules digest, the position inside the ledger as it is
//! now and the leaf hash of the entry there (a snapshot of another
//! ledger, or of a ledger restored or rewritten since, is refused), and
//! the state fitting the engine. Otherwise the detector logs why and
//! replays the window as before.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::index::LedgerFollower;
use crate::ledger::hash::{Hash, leaf_hash};
use crate::rules::Deduplicator;

pub const DIR: &str = "snapshots";
pub const FILE: &str = "detection.snapshot";
pub const MAGIC: &[u8; 8] = b"SEALSNAP";
pub const VERSION: u16 = 1;
pub const KIND_DETECTION: u8 = 1;
/// Largest snapshot read back. The engine's state is bounded by its own
/// limits (groups per rule, hits per group, pending hits, explanation
/// keys); a file beyond this is refused, not read.
pub const MAX_BYTES: u64 = 2 << 30;
const HEADER: usize = 8 + 2 + 1 + 5 + 8 + 32 + 32 + 8 + 8 + 8;
const TRAILER: usize = 32;

#[derive(Debug, Error)]
pub enum SnapshotError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing {0}")]
    Write(String),
    #[error("not a snapshot: {0}")]
    Format(&'static str),
    #[error("format version {0} (this build reads {VERSION})")]
    Version(u16),
    #[error("checksum mismatch: the file is damaged")]
    Checksum,
    #[error("built with other rules or settings")]
    Rules,
    #[error("covers entry {position}, but the ledger ends before it (at {end})")]
    Beyond { position: u64, end: u64 },
    #[error(
        "entry {0} of the ledger is not the one the snapshot was taken after (another or a rewritten ledger)"
    )]
    Leaf(u64),
    #[error("reading entry {index} of the ledger: {reason}")]
    Ledger { index: u64, reason: String },
    #[error("detector state: {0}")]
    State(String),
}

/// The state of the detection consumer besides the engine's.
#[derive(Serialize, Deserialize)]
pub struct DetectorState {
    /// Alert ids already in the ledger, oldest first.
    pub known: Vec<String>,
    pub dedup: Deduplicator,
    /// The newest `received` time applied: the idle timer moves the
    /// engine's clock on from it (as after a replay of the entries).
    pub newest_received: Option<i64>,
}

/// [`DetectorState`], borrowed for writing.
#[derive(Serialize)]
pub struct DetectorStateRef<'a> {
    pub known: &'a std::collections::VecDeque<String>,
    pub dedup: &'a Deduplicator,
    pub newest_received: Option<i64>,
}

/// One decoded snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Index of the last ledger entry applied.
    pub position: u64,
    pub leaf: Hash,
    pub rules: [u8; 32],
    pub written_ms: i64,
    pub engine: Vec<u8>,
    pub detector: Vec<u8>,
}

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(DIR).join(FILE)
}

impl Snapshot {
    pub fn encode(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(HEADER + self.engine.len() + self.detector.len() + TRAILER);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.push(KIND_DETECTION);
        out.extend_from_slice(&[0; 5]);
        out.extend_from_slice(&self.position.to_be_bytes());
        out.extend_from_slice(&self.leaf);
        out.extend_from_slice(&self.rules);
        out.extend_from_slice(&self.written_ms.to_be_bytes());
        out.extend_from_slice(&(self.engine.len() as u64).to_be_bytes());
        out.extend_from_slice(&(self.detector.len() as u64).to_be_bytes());
        out.extend_from_slice(&self.engine);
        out.extend_from_slice(&self.detector);
        let sum: [u8; 32] = Sha256::digest(&out).into();
        out.extend_from_slice(&sum);
        out
    }

    /// Checks magic, version, kind, lengths and checksum.
    pub fn decode(bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
        if bytes.len() < HEADER + TRAILER {
            return Err(SnapshotError::Format("shorter than its header"));
        }
        let (head, rest) = bytes.split_at(HEADER);
        if &head[..8] != MAGIC {
            return Err(SnapshotError::Format("bad magic"));
        }
        let version = u16::from_be_bytes([head[8], head[9]]);
        if version != VERSION {
            return Err(SnapshotError::Version(version));
        }
        if head[10] != KIND_DETECTION || head[11..16] != [0; 5] {
            return Err(SnapshotError::Format("not a detection snapshot"));
        }
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&head[at..at + 8]);
            u64::from_be_bytes(b)
        };
        let mut leaf = [0u8; 32];
        leaf.copy_from_slice(&head[24..56]);
        let mut rules = [0u8; 32];
        rules.copy_from_slice(&head[56..88]);
        let position = u64_at(16);
        let written_ms = u64_at(88) as i64;
        let (engine_len, detector_len) = (u64_at(96), u64_at(104));
        let body = engine_len
            .checked_add(detector_len)
            .filter(|&n| n == (rest.len() - TRAILER) as u64)
            .ok_or(SnapshotError::Format("lengths do not match the file"))?;
        let (covered, sum) = bytes.split_at(bytes.len() - TRAILER);
        let want: [u8; 32] = Sha256::digest(covered).into();
        if want.as_slice() != sum {
            return Err(SnapshotError::Checksum);
        }
        let body = &rest[..body as usize];
        let (engine, detector) = body.split_at(engine_len as usize);
        Ok(Snapshot {
            position,
            leaf,
            rules,
            written_ms,
            engine: engine.to_vec(),
            detector: detector.to_vec(),
        })
    }

    /// Writes atomically (temporary file, fsync, rename, folder fsync).
    pub fn write(&self, data_dir: &Path) -> Result<u64, SnapshotError> {
        let dir = data_dir.join(DIR);
        std::fs::create_dir_all(&dir).map_err(|source| SnapshotError::Io {
            path: dir.clone(),
            source,
        })?;
        let bytes = self.encode();
        if bytes.len() as u64 > MAX_BYTES {
            // It would be refused when read: not written.
            return Err(SnapshotError::Format("larger than the limit"));
        }
        crate::auth::journal::write_atomic(&path(data_dir), &bytes)
            .map_err(|e| SnapshotError::Write(e.to_string()))?;
        Ok(bytes.len() as u64)
    }

    /// The snapshot in `data_dir`, `None` when there is none. Decoded and
    /// checked (not yet against the ledger: [`Snapshot::check_ledger`]).
    pub fn read(data_dir: &Path) -> Result<Option<Snapshot>, SnapshotError> {
        let p = path(data_dir);
        let io = |source| SnapshotError::Io {
            path: p.clone(),
            source,
        };
        let f = match std::fs::File::open(&p) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        let len = f.metadata().map_err(io)?.len();
        if len > MAX_BYTES {
            return Err(SnapshotError::Format("larger than the limit"));
        }
        let bytes = crate::bounded::read_bounded(f, MAX_BYTES).map_err(io)?;
        Snapshot::decode(&bytes).map(Some)
    }

    /// Whether the ledger, as it is now, holds the entry the snapshot was
    /// taken after: its position is below `end` (the durable end) and the
    /// entry's leaf hash is the one recorded.
    pub fn check_ledger(&self, data_dir: &Path, end: u64) -> Result<(), SnapshotError> {
        if self.position >= end {
            return Err(SnapshotError::Beyond {
                position: self.position,
                end,
            });
        }
        let leaf = entry_leaf(data_dir, self.position)?;
        if leaf != self.leaf {
            return Err(SnapshotError::Leaf(self.position));
        }
        Ok(())
    }
}

/// The leaf hash of entry `index` as the ledger holds it now.
pub fn entry_leaf(data_dir: &Path, index: u64) -> Result<Hash, SnapshotError> {
    let mut follower = LedgerFollower::new(data_dir, index);
    let mut buf = Vec::new();
    match follower.next_entry(index + 1, &mut buf) {
        Ok(Some(i)) if i == index => Ok(leaf_hash(&buf)),
        Ok(_) => Err(SnapshotError::Ledger {
            index,
            reason: "not readable".into(),
        }),
        Err(e) => Err(SnapshotError::Ledger {
            index,
            reason: e.to_string(),
        }),
    }
}

/// Digest of what the state depends on besides the ledger: the rule files
/// (relative path, length and content, in path order) and the settings
/// (`settings`, e.g. the engine config and suppression window). `None`
/// when a file cannot be read (then no snapshot is written).
pub fn rules_digest(dir: &Path, settings: &str) -> Option<[u8; 32]> {
    let mut h = Sha256::new();
    h.update(b"sealtrail detection rules v1\n");
    h.update((settings.len() as u64).to_be_bytes());
    h.update(settings.as_bytes());
    for (file, _, _) in super::fingerprint(dir).unwrap_or_default() {
        let rel = file.strip_prefix(dir).unwrap_or(&file);
        let name = rel.to_string_lossy();
        let f = std::fs::File::open(&file).ok()?;
        let bytes = crate::bounded::read_bounded(f, crate::rules::MAX_RULE_FILE_BYTES).ok()?;
        h.update((name.len() as u64).to_be_bytes());
        h.update(name.as_bytes());
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(&bytes);
    }
    Some(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Snapshot {
        Snapshot {
            position: 41,
            leaf: [7; 32],
            rules: [9; 32],
            written_ms: 1_800_000_000_000,
            engine: br#"{"engine":1}"#.to_vec(),
            detector: br#"{"known":[]}"#.to_vec(),
        }
    }

    #[test]
    fn encodes_and_decodes() {
        let s = sample();
        let bytes = s.encode();
        assert_eq!(Snapshot::decode(&bytes).unwrap(), s);
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Snapshot::read(dir.path()).unwrap(), None);
        let n = s.write(dir.path()).unwrap();
        assert_eq!(n, bytes.len() as u64);
        assert_eq!(Snapshot::read(dir.path()).unwrap(), Some(s));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn every_damaged_byte_is_refused() {
        let bytes = sample().encode();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x20;
            assert!(Snapshot::decode(&b).is_err(), "byte {i} flipped");
        }
        for n in 0..bytes.len() {
            assert!(Snapshot::decode(&bytes[..n]).is_err(), "cut at {n}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Snapshot::decode(&longer).is_err());
        let mut v2 = bytes.clone();
        v2[9] = 2;
        assert!(matches!(
            Snapshot::decode(&v2),
            Err(SnapshotError::Version(2))
        ));
        // A huge length is refused before anything is allocated.
        let mut huge = bytes;
        huge[96..104].copy_from_slice(&u64::MAX.to_be_bytes());
        assert!(matches!(
            Snapshot::decode(&huge),
            Err(SnapshotError::Format(_))
        ));
    }

    #[test]
    fn the_rules_digest_follows_content_and_settings() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yml"), "x").unwrap();
        let one = rules_digest(dir.path(), "s").unwrap();
        assert_eq!(rules_digest(dir.path(), "s").unwrap(), one);
        assert_ne!(rules_digest(dir.path(), "t").unwrap(), one);
        std::fs::write(dir.path().join("a.yml"), "y").unwrap();
        assert_ne!(rules_digest(dir.path(), "s").unwrap(), one);
        std::fs::write(dir.path().join("a.yml"), "x").unwrap();
        assert_eq!(rules_digest(dir.path(), "s").unwrap(), one);
        std::fs::rename(dir.path().join("a.yml"), dir.path().join("b.yml")).unwrap();
        assert_ne!(rules_digest(dir.path(), "s").unwrap(), one);
    }
}

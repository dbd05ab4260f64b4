//! The log tree on disk: every complete, aligned subtree hash of the tree of
//! segment records, level by level, in append-only files. Any subtree hash an
//! RFC 9162 proof needs is then O(log n) reads, and the writer keeps no
//! per-segment state in memory however long the log grows.
//!
//! These files are derived data: they can always be rebuilt from the sealed
//! segments, and `open` repairs a torn or short tail after a crash.

use super::hash::{EMPTY_ROOT, HASH_LEN, Hash, node_hash, split_point};
use super::merkle::SubtreeHashes;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use thiserror::Error;

const LEVEL_MAGIC: &[u8; 8] = b"SEALTRE\0";
const INDEX_MAGIC: &[u8; 8] = b"SEALIDX\0";
const FILE_VERSION: u16 = 1;
const HEADER_LEN: u64 = 16;
/// Levels of a tree of up to 2^64 leaves.
const MAX_LEVELS: usize = 64;

#[derive(Debug, Error)]
pub enum TreeStoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: not a sealtrail {what} file")]
    Magic { path: PathBuf, what: &'static str },
    #[error("{path}: holds {have} entries, more than the {want} sealed segments")]
    AheadOfLog { path: PathBuf, have: u64, want: u64 },
    #[error("subtree [{start}, {end}) is outside the tree of size {size}")]
    Range { start: u64, end: u64, size: u64 },
}

/// An append-only file of fixed-width items behind a 16-byte header
/// (magic, version, item width, tag).
struct FixedFile {
    path: PathBuf,
    file: File,
    width: u64,
    count: u64,
}

impl FixedFile {
    fn open(
        path: &Path,
        magic: &[u8; 8],
        width: u16,
        tag: u16,
        mode: Mode,
    ) -> Result<Self, TreeStoreError> {
        let io_err = |source| TreeStoreError::Io {
            path: path.to_owned(),
            source,
        };
        let writable = mode == Mode::ReadWrite;
        let mut file = OpenOptions::new()
            .read(true)
            .write(writable)
            .create(writable)
            .truncate(false)
            .open(path)
            .map_err(io_err)?;
        let mut header = [0u8; HEADER_LEN as usize];
        header[..8].copy_from_slice(magic);
        header[8..10].copy_from_slice(&FILE_VERSION.to_be_bytes());
        header[10..12].copy_from_slice(&width.to_be_bytes());
        header[12..14].copy_from_slice(&tag.to_be_bytes());
        let len = file.metadata().map_err(io_err)?.len();
        if len < HEADER_LEN && !writable {
            return Ok(FixedFile {
                path: path.to_owned(),
                file,
                width: width as u64,
                count: 0,
            });
        }
        if len < HEADER_LEN {
            // New (or torn before its header was complete): start it afresh.
            file.set_len(0).map_err(io_err)?;
            file.write_all(&header).map_err(io_err)?;
        } else {
            let mut found = [0u8; HEADER_LEN as usize];
            file.read_exact(&mut found).map_err(io_err)?;
            if found != header {
                return Err(TreeStoreError::Magic {
                    path: path.to_owned(),
                    what: if magic == LEVEL_MAGIC {
                        "log tree"
                    } else {
                        "segment index"
                    },
                });
            }
        }
        let len = file.metadata().map_err(io_err)?.len();
        let width = width as u64;
        let count = (len - HEADER_LEN) / width;
        // A torn partial item at the end is cut (readers just ignore it).
        if writable && HEADER_LEN + count * width != len {
            file.set_len(HEADER_LEN + count * width).map_err(io_err)?;
        }
        Ok(FixedFile {
            path: path.to_owned(),
            file,
            width,
            count,
        })
    }

    fn io(&self, source: io::Error) -> TreeStoreError {
        TreeStoreError::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn get(&self, i: u64, buf: &mut [u8]) -> Result<(), TreeStoreError> {
        debug_assert!(i < self.count && buf.len() as u64 == self.width);
        self.file
            .read_exact_at(buf, HEADER_LEN + i * self.width)
            .map_err(|e| self.io(e))
    }

    fn push(&mut self, item: &[u8]) -> Result<(), TreeStoreError> {
        debug_assert_eq!(item.len() as u64, self.width);
        self.file
            .write_all_at(item, HEADER_LEN + self.count * self.width)
            .map_err(|e| self.io(e))?;
        self.count += 1;
        Ok(())
    }

    fn truncate(&mut self, count: u64) -> Result<(), TreeStoreError> {
        self.file
            .set_len(HEADER_LEN + count * self.width)
            .map_err(|e| self.io(e))?;
        self.count = count;
        Ok(())
    }

    fn sync(&self) -> Result<(), TreeStoreError> {
        self.file.sync_data().map_err(|e| self.io(e))
    }
}

/// Whether a store may be repaired and appended to, or only read (by tools
/// that run beside a live writer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    ReadWrite,
    ReadOnly,
}

/// Complete subtree hashes of the log tree, level 0 being the record leaf hashes.
pub struct TreeStore {
    dir: PathBuf,
    levels: Vec<FixedFile>,
}

impl TreeStore {
    /// Opens (creating if needed) the store in `dir` and repairs it so that
    /// level `l` holds exactly `size >> l` nodes, where `size` is the number of
    /// leaves on level 0.
    pub fn open(dir: &Path) -> Result<Self, TreeStoreError> {
        Self::open_mode(dir, Mode::ReadWrite)
    }

    /// Opens without creating or repairing anything.
    pub fn open_read_only(dir: &Path) -> Result<Self, TreeStoreError> {
        Self::open_mode(dir, Mode::ReadOnly)
    }

    fn open_mode(dir: &Path, mode: Mode) -> Result<Self, TreeStoreError> {
        if mode == Mode::ReadOnly {
            let mut store = TreeStore {
                dir: dir.to_owned(),
                levels: vec![FixedFile::open(
                    &level_path(dir, 0),
                    LEVEL_MAGIC,
                    HASH_LEN as u16,
                    0,
                    mode,
                )?],
            };
            let mut level = 1;
            while level < MAX_LEVELS && level_path(dir, level).exists() {
                store.levels.push(FixedFile::open(
                    &level_path(dir, level),
                    LEVEL_MAGIC,
                    HASH_LEN as u16,
                    level as u16,
                    mode,
                )?);
                level += 1;
            }
            return Ok(store);
        }
        std::fs::create_dir_all(dir).map_err(|source| TreeStoreError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let mut store = TreeStore {
            dir: dir.to_owned(),
            levels: vec![FixedFile::open(
                &level_path(dir, 0),
                LEVEL_MAGIC,
                HASH_LEN as u16,
                0,
                mode,
            )?],
        };
        let size = store.size();
        let mut level = 1;
        while level < MAX_LEVELS && (size >> level > 0 || level_path(dir, level).exists()) {
            let mut f = FixedFile::open(
                &level_path(dir, level),
                LEVEL_MAGIC,
                HASH_LEN as u16,
                level as u16,
                mode,
            )?;
            let want = size >> level;
            if f.count > want {
                f.truncate(want)?;
            }
            store.levels.push(f);
            // Recompute missing nodes of this level from the one below.
            while store.levels[level].count < want {
                let i = store.levels[level].count;
                let left = store.node(level - 1, 2 * i)?;
                let right = store.node(level - 1, 2 * i + 1)?;
                store.levels[level].push(&node_hash(&left, &right))?;
            }
            level += 1;
        }
        Ok(store)
    }

    /// Number of leaves (sealed segments).
    pub fn size(&self) -> u64 {
        self.levels[0].count
    }

    /// Cuts the tree back to `size` leaves (used when the log itself is shorter,
    /// which only happens if a crash left the store ahead of a seal).
    pub fn truncate(&mut self, size: u64) -> Result<(), TreeStoreError> {
        for (l, f) in self.levels.iter_mut().enumerate() {
            f.truncate(size >> l)?;
        }
        Ok(())
    }

    /// Hash of the complete subtree at `level`, index `i`.
    pub fn node(&self, level: usize, i: u64) -> Result<Hash, TreeStoreError> {
        let f = self
            .levels
            .get(level)
            .filter(|f| i < f.count)
            .ok_or(TreeStoreError::Range {
                start: i << level,
                end: (i + 1) << level,
                size: self.size(),
            })?;
        let mut h = [0u8; HASH_LEN];
        f.get(i, &mut h)?;
        Ok(h)
    }

    /// Appends one leaf and every subtree it completes. Not durable until `sync`.
    pub fn append(&mut self, leaf: &Hash) -> Result<(), TreeStoreError> {
        self.levels[0].push(leaf)?;
        let mut level = 0;
        let mut index = self.levels[0].count - 1;
        let mut hash = *leaf;
        while index % 2 == 1 {
            let left = self.node(level, index - 1)?;
            hash = node_hash(&left, &hash);
            level += 1;
            index /= 2;
            if self.levels.len() <= level {
                self.levels.push(FixedFile::open(
                    &level_path(&self.dir, level),
                    LEVEL_MAGIC,
                    HASH_LEN as u16,
                    level as u16,
                    Mode::ReadWrite,
                )?);
            }
            self.levels[level].push(&hash)?;
        }
        Ok(())
    }

    pub fn sync(&self) -> Result<(), TreeStoreError> {
        for f in &self.levels {
            f.sync()?;
        }
        Ok(())
    }

    /// RFC 6962 MTH of leaves `[start, end)`, assembled from stored complete subtrees.
    pub fn range_hash(&self, start: u64, end: u64) -> Result<Hash, TreeStoreError> {
        if start >= end || end > self.size() {
            return Err(TreeStoreError::Range {
                start,
                end,
                size: self.size(),
            });
        }
        let n = end - start;
        if n.is_power_of_two() && start.is_multiple_of(n) {
            return self.node(n.trailing_zeros() as usize, start / n);
        }
        let k = split_point(n);
        Ok(node_hash(
            &self.range_hash(start, start + k)?,
            &self.range_hash(start + k, end)?,
        ))
    }

    /// Root of the tree of the first `size` leaves.
    pub fn root(&self, size: u64) -> Result<Hash, TreeStoreError> {
        if size == 0 {
            return Ok(EMPTY_ROOT);
        }
        self.range_hash(0, size)
    }
}

impl SubtreeHashes for TreeStore {
    type Error = TreeStoreError;

    fn subtree_hash(&mut self, start: u64, end: u64) -> Result<Hash, TreeStoreError> {
        self.range_hash(start, end)
    }
}

fn level_path(dir: &Path, level: usize) -> PathBuf {
    dir.join(format!("level-{level:02}"))
}

/// Global index of each sealed segment's first event, so the segment holding
/// an event is found by binary search on disk.
pub struct SegmentIndex {
    file: FixedFile,
}

impl SegmentIndex {
    pub fn open(path: &Path) -> Result<Self, TreeStoreError> {
        Ok(SegmentIndex {
            file: FixedFile::open(path, INDEX_MAGIC, 8, 0, Mode::ReadWrite)?,
        })
    }

    pub fn open_read_only(path: &Path) -> Result<Self, TreeStoreError> {
        Ok(SegmentIndex {
            file: FixedFile::open(path, INDEX_MAGIC, 8, 0, Mode::ReadOnly)?,
        })
    }

    pub fn len(&self) -> u64 {
        self.file.count
    }

    pub fn is_empty(&self) -> bool {
        self.file.count == 0
    }

    pub fn first_index(&self, segment: u64) -> Result<u64, TreeStoreError> {
        let mut b = [0u8; 8];
        self.file.get(segment, &mut b)?;
        Ok(u64::from_be_bytes(b))
    }

    pub fn push(&mut self, first_index: u64) -> Result<(), TreeStoreError> {
        self.file.push(&first_index.to_be_bytes())
    }

    pub fn truncate(&mut self, count: u64) -> Result<(), TreeStoreError> {
        self.file.truncate(count)
    }

    pub fn sync(&self) -> Result<(), TreeStoreError> {
        self.file.sync()
    }

    /// The segment whose range contains global `index`, if any sealed one does
    /// (`end` is one past the last sealed event).
    pub fn segment_of(&self, index: u64, end: u64) -> Result<Option<u64>, TreeStoreError> {
        if self.is_empty() || index >= end {
            return Ok(None);
        }
        // Largest segment whose first index is <= index.
        let (mut lo, mut hi) = (0u64, self.len());
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.first_index(mid)? <= index {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Ok(Some(lo))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::hash::{leaf_hash, merkle_root};

    fn leaves(n: u32) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    #[test]
    fn roots_of_every_prefix_match_rs_merkle() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = TreeStore::open(dir.path()).unwrap();
        let all = leaves(70);
        for (i, l) in all.iter().enumerate() {
            store.append(l).unwrap();
            assert_eq!(store.size(), i as u64 + 1);
        }
        for n in 0..=70u64 {
            assert_eq!(
                store.root(n).unwrap(),
                merkle_root(&all[..n as usize]),
                "n={n}"
            );
        }
        for (s, e) in [(0, 1), (5, 6), (8, 16), (16, 70), (64, 70), (3, 9)] {
            assert_eq!(
                store.range_hash(s, e).unwrap(),
                merkle_root(&all[s as usize..e as usize])
            );
        }
        assert!(store.range_hash(0, 71).is_err());
        assert!(store.range_hash(3, 3).is_err());
    }

    #[test]
    fn reopen_repairs_short_and_torn_levels() {
        let dir = tempfile::tempdir().unwrap();
        let all = leaves(37);
        {
            let mut store = TreeStore::open(dir.path()).unwrap();
            for l in &all {
                store.append(l).unwrap();
            }
        }
        // Simulate a crash that lost the upper levels and tore level 0 mid-hash.
        std::fs::remove_file(level_path(dir.path(), 3)).unwrap();
        let f = OpenOptions::new()
            .write(true)
            .open(level_path(dir.path(), 1))
            .unwrap();
        f.set_len(HEADER_LEN + 32 * 5 + 7).unwrap();
        let f0 = OpenOptions::new()
            .write(true)
            .open(level_path(dir.path(), 0))
            .unwrap();
        f0.set_len(HEADER_LEN + 32 * 36 + 3).unwrap();
        let store = TreeStore::open(dir.path()).unwrap();
        assert_eq!(store.size(), 36);
        for n in 0..=36u64 {
            assert_eq!(
                store.root(n).unwrap(),
                merkle_root(&all[..n as usize]),
                "n={n}"
            );
        }
    }

    #[test]
    fn rejects_foreign_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(level_path(dir.path(), 0), b"definitely not a level file").unwrap();
        assert!(matches!(
            TreeStore::open(dir.path()),
            Err(TreeStoreError::Magic { .. })
        ));
    }

    #[test]
    fn segment_index_finds_the_segment_of_an_event() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = SegmentIndex::open(&dir.path().join("idx")).unwrap();
        assert_eq!(idx.segment_of(0, 0).unwrap(), None);
        for first in [0u64, 10, 11, 50] {
            idx.push(first).unwrap();
        }
        let end = 60;
        assert_eq!(idx.segment_of(0, end).unwrap(), Some(0));
        assert_eq!(idx.segment_of(9, end).unwrap(), Some(0));
        assert_eq!(idx.segment_of(10, end).unwrap(), Some(1));
        assert_eq!(idx.segment_of(11, end).unwrap(), Some(2));
        assert_eq!(idx.segment_of(49, end).unwrap(), Some(2));
        assert_eq!(idx.segment_of(59, end).unwrap(), Some(3));
        assert_eq!(idx.segment_of(60, end).unwrap(), None);
    }
}

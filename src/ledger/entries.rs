//! Random access to entries by global index, beside a live writer.
//!
//! Search hits, reports and exports render events straight from the ledger
//! (the search index keeps no second copy of them). A sealed segment's
//! footer indexes every 64th frame, so one entry costs one positional read
//! of at most a block plus a walk over at most 63 frame headers. The open
//! segment has no footer yet: its block offsets are learnt by walking its
//! frames once, incrementally, as reads reach further into it.
//!
//! Files are read with `pread` on descriptors kept in a bounded cache. A
//! segment renamed from `.open` to `.seg` when it is sealed keeps its
//! offsets, so a descriptor opened before the rename stays valid. Payloads
//! are decoded with the codec of the file's own header (compacted, version 2
//! segments hold zstd frames); compaction renames a new file over `N.seg`,
//! and a cached descriptor keeps reading the old one, whose offsets and
//! entries are those it cached.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use tantivy::directory::{Directory, MmapDirectory, OwnedBytes};
use thiserror::Error;

use super::dicts::DictStore;
use super::log::{LedgerError, LedgerPaths, list_segments};
use super::segment::{
    BLOCK_SHIFT, FRAME_HEADER_LEN, Footer, FrameCodec, MAX_FRAME_LEN, MAX_SEGMENT_EVENTS,
    SEAL_MARKER, SegmentError, SegmentHeader,
};
use super::tree_store::{SegmentIndex, TreeStoreError};

/// Sealed segments whose footer and descriptor are kept open.
const CACHED_SEGMENTS: usize = 1024;
/// Most segment first indices kept in memory (8 bytes each).
const MAX_FIRSTS: u64 = 1 << 21;
/// Largest single read; longer blocks are read frame by frame.
const MAX_READ: u64 = 1 << 20;
const BLOCK: u64 = 1 << BLOCK_SHIFT;
/// Up to this many wanted entries of one block are read one exact read each
/// (with a frame index); more, and the whole block is read once.
const EXACT_READS_PER_BLOCK: usize = 8;
/// Frames up to this size are read into a stack buffer.
const SMALL_FRAME: usize = 4096;

#[derive(Debug, Error)]
pub enum EntryReadError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Segment(#[from] SegmentError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    TreeStore(#[from] TreeStoreError),
    #[error("event {index} is not in the ledger")]
    NotFound { index: u64 },
    #[error("{path}: entry frame at offset {offset} is unreadable: {reason}")]
    Frame {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
}

fn io_err(path: &Path, source: io::Error) -> EntryReadError {
    EntryReadError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A sealed segment's descriptor and block index.
struct Sealed {
    path: PathBuf,
    file: File,
    /// How this file's payloads decode (from its header).
    codec: FrameCodec,
    first_index: u64,
    count: u64,
    /// Offset of the first frame of each block, then the end of the frames.
    bounds: Vec<u64>,
    /// The footer's frame index (offset of each frame within its block),
    /// when it has one: then a few entries of a block are read exactly.
    frames: Option<Vec<u32>>,
    /// Inode of the file, for version 1 files that compaction may replace.
    inode: u64,
    /// The whole file, memory-mapped, for compacted files (which never
    /// change): entries are then sliced out instead of read with `pread`.
    mapped: Option<OwnedBytes>,
}

impl Sealed {
    /// Whether compaction replaced the file since it was opened. A stale
    /// descriptor still reads the right entries, but it keeps the replaced
    /// file's space on disk while cached. Compacted files never change.
    fn replaced(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        matches!(self.codec, FrameCodec::Plain)
            && std::fs::metadata(&self.path).is_ok_and(|m| m.ino() != self.inode)
    }
}

impl Sealed {
    /// Entries at positions `wanted` (sorted) of block `block`.
    fn read_block(&self, block: u64, wanted: &[usize]) -> Result<Vec<Vec<u8>>, EntryReadError> {
        let b = block as usize;
        let (Some(&start), Some(&end)) = (self.bounds.get(b), self.bounds.get(b + 1)) else {
            return Err(EntryReadError::Frame {
                path: self.path.clone(),
                offset: 0,
                reason: format!("no block {block} in the footer"),
            });
        };
        if let Some(frames) = &self.frames
            && (wanted.len() <= EXACT_READS_PER_BLOCK || self.mapped.is_some())
        {
            let base = (block as usize) << BLOCK_SHIFT;
            return wanted
                .iter()
                .map(|&k| {
                    let at = |i: usize| frames.get(base + i).map(|&o| start + u64::from(o));
                    let from = at(k).ok_or_else(|| self.frame_err(start, "no such frame"))?;
                    // The next frame of the block, or the block's end.
                    let to = if k + 1 < BLOCK as usize {
                        at(k + 1).unwrap_or(end)
                    } else {
                        end
                    };
                    if to > end {
                        return Err(self.frame_err(from, "frame index points past its block"));
                    }
                    match &self.mapped {
                        Some(bytes) => {
                            let frame = usize::try_from(from)
                                .ok()
                                .zip(usize::try_from(to).ok())
                                .and_then(|(from, to)| bytes.as_slice().get(from..to))
                                .ok_or_else(|| {
                                    self.frame_err(from, "frame past the end of the file")
                                })?;
                            decode_frame(&self.path, &self.codec, from, frame)
                        }
                        None => read_frame_exact(&self.file, &self.path, &self.codec, from, to),
                    }
                })
                .collect();
        }
        read_block_entries(&self.file, &self.path, &self.codec, start, end, wanted)
    }

    fn frame_err(&self, offset: u64, reason: &str) -> EntryReadError {
        EntryReadError::Frame {
            path: self.path.clone(),
            offset,
            reason: reason.into(),
        }
    }
}

/// What is known of the open segment's frames so far.
struct Open {
    path: PathBuf,
    file: File,
    codec: FrameCodec,
    first_index: u64,
    /// Offset of every 64th frame walked so far.
    blocks: Vec<u64>,
    /// Frames walked, and the offset just past them.
    walked: u64,
    walk_pos: u64,
}

struct State {
    /// `segments.idx`, reopened when an index lies past its last segment.
    index: Option<SegmentIndex>,
    /// Its first indices in memory, while there are at most
    /// [`MAX_FIRSTS`] (otherwise it is searched on disk).
    firsts: Vec<u64>,
    loaded: bool,
    sealed: HashMap<u64, Arc<Sealed>>,
}

/// Reads entries of the ledger in a data directory; cheap to share between
/// threads (reads of different segments run in parallel).
pub struct EntryReader {
    paths: LedgerPaths,
    /// Dictionaries of compacted segments, loaded once.
    dicts: DictStore,
    state: Mutex<State>,
    open: Mutex<Option<Open>>,
    /// Maps compacted segment files (tantivy's mmap cache over `segments/`,
    /// the mechanism that already maps the search index); `None` when the
    /// folder cannot be opened, and then files are read with `pread`.
    mapper: OnceLock<Option<MmapDirectory>>,
}

impl State {
    /// The sealed segment whose first index is the largest <= `index`.
    fn segment_of(&self, index: u64) -> Result<Option<u64>, EntryReadError> {
        let Some(ix) = &self.index else {
            return Ok(None);
        };
        if self.firsts.len() as u64 == ix.len() {
            return Ok(self
                .firsts
                .partition_point(|&first| first <= index)
                .checked_sub(1)
                .map(|n| n as u64));
        }
        Ok(ix.segment_of(index, u64::MAX)?)
    }
}

/// Where an entry lives.
enum Place {
    Sealed(Arc<Sealed>),
    /// In the open segment (or one sealed after the last refresh).
    Open,
}

impl EntryReader {
    pub fn open(data_dir: &Path) -> EntryReader {
        let paths = LedgerPaths::new(data_dir);
        EntryReader {
            dicts: DictStore::new(&paths.dicts),
            paths,
            state: Mutex::new(State {
                index: None,
                firsts: Vec::new(),
                loaded: false,
                sealed: HashMap::new(),
            }),
            open: Mutex::new(None),
            mapper: OnceLock::new(),
        }
    }

    /// The canonical bytes of one entry.
    pub fn read(&self, index: u64) -> Result<Vec<u8>, EntryReadError> {
        let mut out = self.read_many(&[index])?;
        out.pop().ok_or(EntryReadError::NotFound { index })
    }

    /// The canonical bytes of each entry in `indices`, in the order asked.
    /// Entries of one block are read together, so asking for many at once
    /// (in any order) is cheaper than one by one.
    pub fn read_many(&self, indices: &[u64]) -> Result<Vec<Vec<u8>>, EntryReadError> {
        let mut order: Vec<usize> = (0..indices.len()).collect();
        order.sort_unstable_by_key(|&i| indices[i]);
        let mut out: Vec<Vec<u8>> = vec![Vec::new(); indices.len()];
        let mut i = 0;
        while i < order.len() {
            let index = indices[order[i]];
            match self.place(index)? {
                Place::Sealed(seg) => {
                    // Every asked entry of this segment, block by block;
                    // the entries of one block are read in one go.
                    let end = seg.first_index + seg.count;
                    let mut wanted = Vec::new();
                    while i < order.len() && indices[order[i]] < end {
                        let block = (indices[order[i]] - seg.first_index) >> BLOCK_SHIFT;
                        wanted.clear();
                        let mut j = i;
                        while j < order.len() {
                            let x = indices[order[j]];
                            if x >= end || (x - seg.first_index) >> BLOCK_SHIFT != block {
                                break;
                            }
                            wanted.push(((x - seg.first_index) & (BLOCK - 1)) as usize);
                            j += 1;
                        }
                        let entries = seg.read_block(block, &wanted)?;
                        for (k, entry) in entries.into_iter().enumerate() {
                            out[order[i + k]] = entry;
                        }
                        i = j;
                    }
                }
                Place::Open => {
                    out[order[i]] = match self.read_open(index) {
                        Ok(e) => e,
                        // Sealed between the two lookups: it is in the
                        // segment index now.
                        Err(EntryReadError::NotFound { .. }) => match self.place(index)? {
                            Place::Sealed(seg) => {
                                let leaf = index - seg.first_index;
                                seg.read_block(
                                    leaf >> BLOCK_SHIFT,
                                    &[(leaf & (BLOCK - 1)) as usize],
                                )?
                                .pop()
                                .ok_or(EntryReadError::NotFound { index })?
                            }
                            Place::Open => return Err(EntryReadError::NotFound { index }),
                        },
                        Err(e) => return Err(e),
                    };
                    i += 1;
                }
            }
        }
        Ok(out)
    }

    fn lock_state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves only caches behind, which
        // stay consistent (entries are inserted whole).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Finds the sealed segment holding `index`, or decides it is newer
    /// than every sealed segment.
    fn place(&self, index: u64) -> Result<Place, EntryReadError> {
        for refresh in [false, true] {
            let mut state = self.lock_state();
            if refresh || !state.loaded {
                self.refresh_firsts(&mut state)?;
            }
            let Some(number) = state.segment_of(index)? else {
                if refresh {
                    return Ok(Place::Open);
                }
                continue;
            };
            let seg = match state.sealed.get(&number) {
                Some(s) if !s.replaced() => s.clone(),
                _ => {
                    let s = Arc::new(self.load_sealed(number)?);
                    if state.sealed.len() >= CACHED_SEGMENTS {
                        state.sealed.clear();
                    }
                    state.sealed.insert(number, s.clone());
                    s
                }
            };
            if index < seg.first_index {
                // Before the first stored segment (removed by retention).
                return Err(EntryReadError::NotFound { index });
            }
            if index < seg.first_index + seg.count {
                return Ok(Place::Sealed(seg));
            }
            // Past the last sealed segment we know of: the open segment, or
            // one sealed since the segment index was read.
            if refresh {
                return Ok(Place::Open);
            }
        }
        Ok(Place::Open)
    }

    /// Reads the segment index entries added since the last call (all of
    /// them when it shrank, which only recovery does).
    fn refresh_firsts(&self, state: &mut State) -> Result<(), EntryReadError> {
        let ix = match SegmentIndex::open_read_only(&self.paths.index) {
            Ok(ix) => ix,
            Err(TreeStoreError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                state.loaded = true;
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        if ix.len() < state.firsts.len() as u64 || ix.len() > MAX_FIRSTS {
            state.firsts.clear();
            state.sealed.clear();
        }
        if ix.len() <= MAX_FIRSTS {
            for n in state.firsts.len() as u64..ix.len() {
                state.firsts.push(ix.first_index(n)?);
            }
        }
        state.index = Some(ix);
        state.loaded = true;
        Ok(())
    }

    fn load_sealed(&self, number: u64) -> Result<Sealed, EntryReadError> {
        let path = self.paths.segment(number, true);
        let mut file = File::open(&path).map_err(|e| io_err(&path, e))?;
        let (header, _) = SegmentHeader::read(&path, &mut &file)?;
        let codec = self.codec(&path, &header)?;
        // The footer starts where the frames end.
        let (footer, frames_end) = Footer::read_located(&path, &mut file)?;
        let meta = file.metadata().map_err(|e| io_err(&path, e))?;
        let mut bounds = footer.block_offsets;
        bounds.push(frames_end);
        if bounds.windows(2).any(|w| w[0] > w[1]) {
            return Err(EntryReadError::Frame {
                path,
                offset: 0,
                reason: "block index is not increasing".into(),
            });
        }
        let mapped = match codec {
            FrameCodec::Zstd(_) => self.map(&path, meta.len()),
            FrameCodec::Plain | FrameCodec::Sealed(_) => None,
        };
        Ok(Sealed {
            mapped,
            path,
            file,
            codec,
            first_index: footer.record.first_index,
            count: footer.record.count,
            bounds,
            frames: footer.frame_offsets,
            inode: std::os::unix::fs::MetadataExt::ino(&meta),
        })
    }

    /// The whole of a compacted segment file, memory-mapped, if it can be.
    /// Only compacted files are mapped: they are never rewritten (a version
    /// 1 file is replaced by compaction, and a cached mapping of the old
    /// file would be returned for the new one), and retention deletes but
    /// never truncates them. Any failure falls back to `pread`.
    fn map(&self, path: &Path, len: u64) -> Option<OwnedBytes> {
        let mapper = self
            .mapper
            .get_or_init(|| MmapDirectory::open(&self.paths.segments).ok())
            .as_ref()?;
        let bytes = mapper
            .open_read(Path::new(path.file_name()?))
            .ok()?
            .read_bytes()
            .ok()?;
        (bytes.len() as u64 == len).then_some(bytes)
    }

    /// Reads an entry of the open segment, learning its block offsets.
    fn read_open(&self, index: u64) -> Result<Vec<u8>, EntryReadError> {
        let mut guard = self.open.lock().unwrap_or_else(|p| p.into_inner());
        for attempt in 0..2 {
            let stale = match guard.as_ref() {
                Some(o) => index < o.first_index,
                None => true,
            };
            if stale || attempt == 1 {
                *guard = self.open_newest()?;
            }
            let Some(open) = guard.as_mut() else {
                return Err(EntryReadError::NotFound { index });
            };
            if index < open.first_index {
                return Err(EntryReadError::NotFound { index });
            }
            let k = index - open.first_index;
            if k >= MAX_SEGMENT_EVENTS {
                continue;
            }
            if !open.walk_to(k)? {
                // The segment ended (sealed) before `index`: look again.
                continue;
            }
            let start = open.blocks[(k >> BLOCK_SHIFT) as usize];
            let mut entries = read_block_entries(
                &open.file,
                &open.path,
                &open.codec,
                start,
                start,
                &[(k & (BLOCK - 1)) as usize],
            )?;
            return entries.pop().ok_or(EntryReadError::NotFound { index });
        }
        Err(EntryReadError::NotFound { index })
    }

    fn codec(&self, path: &Path, header: &SegmentHeader) -> Result<FrameCodec, EntryReadError> {
        self.dicts.codec(header.format).map_err(|source| {
            EntryReadError::Segment(SegmentError::Dict {
                path: path.to_owned(),
                source,
            })
        })
    }

    /// The newest segment file (open, or sealed since), from its header.
    fn open_newest(&self) -> Result<Option<Open>, EntryReadError> {
        let (sealed, open) = list_segments(&self.paths.segments)?;
        let Some(number) = open.into_iter().chain(sealed).max() else {
            return Ok(None);
        };
        for sealed in [false, true] {
            let path = self.paths.segment(number, sealed);
            let file = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(&path, e)),
            };
            let (header, header_len) = SegmentHeader::read(&path, &mut &file)?;
            let codec = self.codec(&path, &header)?;
            return Ok(Some(Open {
                path,
                file,
                codec,
                first_index: header.first_index,
                blocks: Vec::new(),
                walked: 0,
                walk_pos: header_len,
            }));
        }
        Ok(None)
    }
}

impl Open {
    /// Walks frame headers until frame `k` is known; false when the
    /// segment's frames end before it (sealed, or not yet written).
    fn walk_to(&mut self, k: u64) -> Result<bool, EntryReadError> {
        while self.walked <= k {
            let mut head = [0u8; FRAME_HEADER_LEN as usize];
            if !read_full(&self.file, &self.path, self.walk_pos, &mut head)? {
                return Ok(false);
            }
            let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
            if len == SEAL_MARKER {
                return Ok(false);
            }
            if len == 0 || len > MAX_FRAME_LEN {
                return Err(EntryReadError::Frame {
                    path: self.path.clone(),
                    offset: self.walk_pos,
                    reason: format!("frame length {len} out of range"),
                });
            }
            if self.walked.is_multiple_of(BLOCK) {
                self.blocks.push(self.walk_pos);
            }
            self.walked += 1;
            self.walk_pos += FRAME_HEADER_LEN + len as u64;
        }
        Ok(true)
    }
}

/// Reads `buf.len()` bytes at `pos`; false when the file is shorter.
fn read_full(file: &File, path: &Path, pos: u64, buf: &mut [u8]) -> Result<bool, EntryReadError> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], pos + filled as u64) {
            Ok(0) => return Ok(false),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err(path, e)),
        }
    }
    Ok(true)
}

/// Reads and decodes the one frame that spans `[from, to)` exactly (from a
/// footer's frame index): its length must fill the span.
fn read_frame_exact(
    file: &File,
    path: &Path,
    codec: &FrameCodec,
    from: u64,
    to: u64,
) -> Result<Vec<u8>, EntryReadError> {
    let frame_err = |reason: String| EntryReadError::Frame {
        path: path.to_owned(),
        offset: from,
        reason,
    };
    let span = to
        .checked_sub(from)
        .filter(|&n| n > FRAME_HEADER_LEN && n <= FRAME_HEADER_LEN + u64::from(MAX_FRAME_LEN))
        .ok_or_else(|| frame_err(format!("frame index gives a span of {from}..{to}")))?
        as usize;
    let mut small = [0u8; SMALL_FRAME];
    let mut large = Vec::new();
    let buf: &mut [u8] = if span <= SMALL_FRAME {
        &mut small[..span]
    } else {
        large.resize(span, 0);
        &mut large
    };
    if !read_full(file, path, from, buf)? {
        return Err(frame_err("frame past the end of the file".into()));
    }
    decode_frame(path, codec, from, buf)
}

/// Checks and decodes one whole frame (header and payload) found at `at`.
fn decode_frame(
    path: &Path,
    codec: &FrameCodec,
    at: u64,
    frame: &[u8],
) -> Result<Vec<u8>, EntryReadError> {
    let frame_err = |reason: String| EntryReadError::Frame {
        path: path.to_owned(),
        offset: at,
        reason,
    };
    if frame.len() as u64 <= FRAME_HEADER_LEN {
        return Err(frame_err(
            "frame index gives a span shorter than a frame".into(),
        ));
    }
    let (head, stored) = frame.split_at(FRAME_HEADER_LEN as usize);
    if stored.len() > MAX_FRAME_LEN as usize {
        return Err(frame_err(
            "frame index gives a span longer than a frame".into(),
        ));
    }
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    let crc = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
    if len as usize != stored.len() {
        return Err(frame_err(format!(
            "frame length {len} disagrees with the frame index ({} bytes)",
            stored.len()
        )));
    }
    if crc32c::crc32c(stored) != crc {
        return Err(frame_err("frame checksum mismatch".into()));
    }
    let mut entry = Vec::new();
    codec
        .decode_into(stored, &mut entry)
        .map_err(|e| frame_err(e.to_string()))?;
    entry.shrink_to_fit();
    Ok(entry)
}

/// Decodes the frames at positions `wanted` (sorted, within one block)
/// of the block whose frames span `[start, end)`. `end == start` means the
/// end is unknown (open segment): frames are then read one at a time.
fn read_block_entries(
    file: &File,
    path: &Path,
    codec: &FrameCodec,
    start: u64,
    end: u64,
    wanted: &[usize],
) -> Result<Vec<Vec<u8>>, EntryReadError> {
    let Some(&last) = wanted.last() else {
        return Ok(Vec::new());
    };
    let frame_err = |offset: u64, reason: String| EntryReadError::Frame {
        path: path.to_owned(),
        offset,
        reason,
    };
    // One read of the whole block when its size is known and small.
    let span = end.saturating_sub(start);
    let block = if span > 0 && span <= MAX_READ {
        let mut buf = vec![0u8; span as usize];
        if !read_full(file, path, start, &mut buf)? {
            return Err(frame_err(
                start,
                "segment is shorter than its block index".into(),
            ));
        }
        Some(buf)
    } else {
        None
    };
    let mut out = Vec::with_capacity(wanted.len());
    let mut want = wanted.iter().peekable();
    let mut pos = start;
    for k in 0..=last {
        let head: [u8; FRAME_HEADER_LEN as usize] = match &block {
            Some(b) => {
                let at = (pos - start) as usize;
                b.get(at..at + FRAME_HEADER_LEN as usize)
                    .and_then(|h| h.try_into().ok())
                    .ok_or_else(|| frame_err(pos, "block ends inside a frame header".into()))?
            }
            None => {
                let mut h = [0u8; FRAME_HEADER_LEN as usize];
                if !read_full(file, path, pos, &mut h)? {
                    return Err(frame_err(
                        pos,
                        "frame header past the end of the file".into(),
                    ));
                }
                h
            }
        };
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let crc = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        if len == 0 || len > MAX_FRAME_LEN {
            return Err(frame_err(pos, format!("frame length {len} out of range")));
        }
        let body = pos + FRAME_HEADER_LEN;
        if want.peek().is_some_and(|&&w| w == k) {
            let single;
            let stored: &[u8] = match &block {
                Some(b) => {
                    let at = (body - start) as usize;
                    b.get(at..at + len as usize)
                        .ok_or_else(|| frame_err(pos, "block ends inside a frame".into()))?
                }
                None => {
                    let mut p = vec![0u8; len as usize];
                    if !read_full(file, path, body, &mut p)? {
                        return Err(frame_err(pos, "frame past the end of the file".into()));
                    }
                    single = p;
                    &single
                }
            };
            if crc32c::crc32c(stored) != crc {
                return Err(frame_err(pos, "frame checksum mismatch".into()));
            }
            let mut payload = Vec::new();
            codec
                .decode_into(stored, &mut payload)
                .map_err(|e| frame_err(pos, e.to_string()))?;
            // A frame without a declared size was decoded into a 1 MiB buffer.
            payload.shrink_to_fit();
            // The same entry may be asked for more than once.
            while want.next_if(|&&w| w == k).is_some() {
                out.push(payload.clone());
            }
        }
        pos = body + len as u64;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::keys::NoteSigner;
    use crate::ledger::log::{Ledger, LedgerEntry, SealPolicy};
    use std::time::Duration;

    fn entry(i: u64) -> Vec<u8> {
        // Varying lengths, so block offsets are not a multiple of anything.
        format!(
            r#"{{"i":{i},"pad":"{}"}}"#,
            "x".repeat((i * 7 % 300) as usize)
        )
        .into_bytes()
    }

    fn ledger(dir: &Path, max_events: u64) -> Ledger {
        let policy = SealPolicy {
            max_events,
            max_age: Duration::from_secs(3600),
        };
        Ledger::open(dir, NoteSigner::generate("t.example/log").unwrap(), policy)
            .unwrap()
            .0
    }

    fn append(ledger: &mut Ledger, range: std::ops::Range<u64>) {
        let batch: Vec<LedgerEntry> = range
            .map(|i| LedgerEntry {
                time_ms: i as i64,
                bytes: entry(i),
            })
            .collect();
        for chunk in batch.chunks(13) {
            ledger.append(chunk).unwrap();
        }
    }

    #[test]
    fn reads_every_entry_of_sealed_and_open_segments_in_any_order() {
        let tmp = tempfile::tempdir().unwrap();
        let mut l = ledger(tmp.path(), 150);
        // 2 sealed segments of 150 (blocks of 64: 64+64+22), 100 open.
        append(&mut l, 0..400);
        let reader = EntryReader::open(tmp.path());
        for i in 0..400 {
            assert_eq!(reader.read(i).unwrap(), entry(i), "entry {i}");
        }
        let asked: Vec<u64> = (0..400).rev().step_by(3).chain([5, 5, 399, 0]).collect();
        let got = reader.read_many(&asked).unwrap();
        for (i, bytes) in asked.iter().zip(got) {
            assert_eq!(bytes, entry(*i));
        }
        assert!(matches!(
            reader.read(400),
            Err(EntryReadError::NotFound { index: 400 })
        ));
        // The open segment grows, is sealed, and a new one starts, while the
        // reader keeps its caches.
        append(&mut l, 400..700);
        for i in (0..700).rev() {
            assert_eq!(reader.read(i).unwrap(), entry(i), "entry {i}");
        }
        l.close().unwrap();
    }

    #[test]
    fn reads_compacted_segments_including_across_the_rename() {
        use crate::ledger::compactor::{Compaction, CompactorOptions};
        let tmp = tempfile::tempdir().unwrap();
        let mut l = ledger(tmp.path(), 150);
        append(&mut l, 0..400);
        // A reader that cached segment 0 (and walked the open one) before
        // compaction renamed new files over the sealed ones.
        let early = EntryReader::open(tmp.path());
        assert_eq!(early.read(10).unwrap(), entry(10));
        l.close().unwrap();
        let mut c = Compaction::new(
            LedgerPaths::new(tmp.path()),
            CompactorOptions {
                min_samples: 64,
                dict_size: 2048,
                ..CompactorOptions::default()
            },
        );
        assert_eq!(c.pass(&|| false).unwrap(), 3);
        let header = |n| {
            let path = LedgerPaths::new(tmp.path()).segment(n, true);
            SegmentHeader::read(&path, &mut File::open(&path).unwrap())
                .unwrap()
                .0
        };
        for n in 0..3 {
            assert!(matches!(
                header(n).format,
                crate::ledger::segment::FrameFormat::Zstd { .. }
            ));
        }
        for reader in [&early, &EntryReader::open(tmp.path())] {
            for i in (0..400).rev() {
                assert_eq!(reader.read(i).unwrap(), entry(i), "entry {i}");
            }
            let asked: Vec<u64> = (0..400).step_by(7).chain([399, 0, 0]).collect();
            let got = reader.read_many(&asked).unwrap();
            for (i, bytes) in asked.iter().zip(got) {
                assert_eq!(bytes, entry(*i));
            }
        }
        // A compressed frame that no longer decodes is an error, not bytes.
        let path = LedgerPaths::new(tmp.path()).segment(1, true);
        let mut bytes = std::fs::read(&path).unwrap();
        let at = SegmentHeader::read(&path, &mut File::open(&path).unwrap())
            .unwrap()
            .1 as usize;
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        for b in &mut bytes[at + 8..at + 8 + len] {
            *b = 0x5a;
        }
        let crc = crc32c::crc32c(&bytes[at + 8..at + 8 + len]);
        bytes[at + 4..at + 8].copy_from_slice(&crc.to_be_bytes());
        std::fs::write(&path, bytes).unwrap();
        let err = EntryReader::open(tmp.path())
            .read(150)
            .unwrap_err()
            .to_string();
        assert!(err.contains("zstd") || err.contains("frame"), "{err}");
    }

    #[test]
    fn compacted_reads_follow_the_frame_index_and_refuse_a_wrong_one() {
        use crate::ledger::compactor::{Compaction, CompactorOptions};
        let tmp = tempfile::tempdir().unwrap();
        let signer = NoteSigner::generate("t.example/log").unwrap();
        let verifier = signer.verifier();
        let policy = SealPolicy {
            max_events: 200,
            max_age: Duration::from_secs(3600),
        };
        let mut l = Ledger::open(tmp.path(), signer, policy).unwrap().0;
        append(&mut l, 0..200);
        l.close().unwrap();
        let options = CompactorOptions {
            min_samples: 64,
            dict_size: 2048,
            ..CompactorOptions::default()
        };
        let mut c = Compaction::new(LedgerPaths::new(tmp.path()), options);
        assert_eq!(c.pass(&|| false).unwrap(), 1);
        let path = LedgerPaths::new(tmp.path()).segment(0, true);
        let (mut footer, at) =
            Footer::read_located(&path, &mut File::open(&path).unwrap()).unwrap();
        let index = footer
            .frame_offsets
            .clone()
            .expect("compaction writes a frame index");
        assert_eq!(index.len(), 200);
        // Every entry, one exact read each.
        let reader = EntryReader::open(tmp.path());
        for i in (0..200).rev() {
            assert_eq!(reader.read(i).unwrap(), entry(i), "entry {i}");
        }
        let report = crate::ledger::verify::verify_data_dir(tmp.path(), &verifier, None).unwrap();
        // (The test entries are not events, so only the index is judged.)
        let index_issues = |r: &crate::ledger::verify::VerifyReport| {
            r.errors
                .iter()
                .filter(|e| e.kind == "index")
                .map(|e| e.detail.clone())
                .collect::<Vec<_>>()
        };
        assert!(
            index_issues(&report).is_empty(),
            "{:?}",
            index_issues(&report)
        );

        // Frame 70's offset moved by one byte (still increasing, checksum
        // of the footer fixed up): frames 69 and 70 no longer read, their
        // neighbours do, and verify names the frame index.
        footer.frame_offsets.as_mut().unwrap()[70] += 1;
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.truncate(at as usize);
        bytes.extend_from_slice(&footer.to_bytes(at));
        std::fs::write(&path, bytes).unwrap();
        let reader = EntryReader::open(tmp.path());
        assert_eq!(reader.read(68).unwrap(), entry(68));
        assert_eq!(reader.read(71).unwrap(), entry(71));
        for i in [69, 70] {
            let err = reader.read(i).unwrap_err().to_string();
            assert!(err.contains("frame"), "{err}");
        }
        let report = crate::ledger::verify::verify_data_dir(tmp.path(), &verifier, None).unwrap();
        let issues = index_issues(&report);
        assert!(
            issues.iter().any(|d| d.contains("frame index")),
            "{issues:?}"
        );
    }

    #[test]
    fn a_corrupt_frame_is_an_error_not_wrong_bytes() {
        let tmp = tempfile::tempdir().unwrap();
        let mut l = ledger(tmp.path(), 100);
        append(&mut l, 0..100);
        l.close().unwrap();
        let path = LedgerPaths::new(tmp.path()).segment(0, true);
        let mut bytes = std::fs::read(&path).unwrap();
        let needle = b"\"i\":42,";
        let at = bytes
            .windows(needle.len())
            .position(|w| w == needle)
            .unwrap();
        bytes[at + 4] = b'7';
        std::fs::write(&path, bytes).unwrap();
        let reader = EntryReader::open(tmp.path());
        assert_eq!(reader.read(41).unwrap(), entry(41));
        let err = reader.read(42).unwrap_err().to_string();
        assert!(err.contains("checksum"), "{err}");
    }
}

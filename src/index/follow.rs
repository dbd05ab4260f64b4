//! Reads ledger entries in global-index order from any starting index,
//! across sealed segments and the growing open segment, beside a live
//! writer.
//!
//! Reads are positional (`pread`) into a bounded read-ahead buffer, so a file
//! that grows while it is read is fine, and the open segment's rename to
//! `.seg` when it is sealed does not matter: the follower keeps its file
//! descriptor, and the footer the writer appends before the rename tells it
//! to move on to the next segment. The follower never returns an entry at or
//! past the caller's `limit` (the writer's durable next index), and stops at
//! a partial or torn frame: `next_entry` answers `None` and the next call
//! retries from the same place.
//!
//! Compacted (version 2) segments are decoded through the codec their header
//! names. Compaction renames a new file over a sealed segment; a follower
//! that already holds the old file keeps reading it (same entries), and any
//! segment it opens later is read per its own header.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::ledger::dicts::DictStore;
use crate::ledger::log::{LedgerError, LedgerPaths, list_segments};
use crate::ledger::segment::{
    self, BLOCK_SHIFT, FRAME_HEADER_LEN, Footer, FrameCodec, MAX_FRAME_LEN, SEAL_MARKER,
    SegmentError, SegmentHeader,
};

/// Read-ahead size: large enough for sequential throughput, small enough
/// that the follower's memory does not depend on the ledger.
const CHUNK: usize = 256 << 10;

#[derive(Debug, Error)]
pub enum FollowError {
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
    #[error("{path}: segment starts at index {found}, expected {expected}")]
    Gap {
        path: PathBuf,
        expected: u64,
        found: u64,
    },
    #[error("index {index} is before the first stored segment (starts at {first})")]
    Before { index: u64, first: u64 },
}

fn io_err(path: &Path, source: io::Error) -> FollowError {
    FollowError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The segment being read.
struct Current {
    number: u64,
    path: PathBuf,
    file: File,
    /// How this file's payloads decode (from its header).
    codec: FrameCodec,
    /// File offset of the frame at global index `at`.
    pos: u64,
    at: u64,
}

/// What lies at a file offset.
enum Found {
    Frame {
        len: u32,
    },
    Sealed,
    /// Not (yet) a whole valid frame: end of the written data, or torn.
    Incomplete(Option<String>),
}

/// A cursor over the ledger's entries; see the module docs.
pub struct LedgerFollower {
    segments: PathBuf,
    dicts: DictStore,
    next: u64,
    current: Option<Current>,
    /// Segment to open next once it exists (after a sealed one ended).
    pending: Option<(u64, u64)>,
    chunk: Vec<u8>,
    chunk_start: u64,
    stalled: Option<String>,
}

impl LedgerFollower {
    /// A follower that will return entries from global index `start` on.
    /// Nothing is read until `next_entry`.
    pub fn new(data_dir: &Path, start: u64) -> LedgerFollower {
        let paths = LedgerPaths::new(data_dir);
        LedgerFollower {
            dicts: DictStore::new(&paths.dicts),
            segments: paths.segments,
            next: start,
            current: None,
            pending: None,
            chunk: Vec::new(),
            chunk_start: 0,
            stalled: None,
        }
    }

    /// Global index of the next entry `next_entry` returns.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// Why the last `next_entry` stopped before `limit`, when it met a frame
    /// that is not whole or not valid (a write in progress, or a torn tail
    /// the writer will cut on its next start). `None` when it only reached
    /// the end of what is written.
    pub fn stalled(&self) -> Option<&str> {
        self.stalled.as_deref()
    }

    /// Reads the next entry into `out` and returns its global index, or
    /// `None` when `limit` is reached or nothing more is readable yet.
    pub fn next_entry(
        &mut self,
        limit: u64,
        out: &mut Vec<u8>,
    ) -> Result<Option<u64>, FollowError> {
        self.stalled = None;
        if self.next >= limit {
            return Ok(None);
        }
        loop {
            if self.current.is_none() && !self.open_next()? {
                return Ok(None);
            }
            // Invariant: `open_next` returned true, so a segment is current.
            let Some(cur) = self.current.as_mut() else {
                return Ok(None);
            };
            let pos = cur.pos;
            match probe(
                &cur.file,
                &cur.path,
                pos,
                &mut self.chunk,
                &mut self.chunk_start,
            )? {
                Found::Frame { len } => {
                    let start = (pos + FRAME_HEADER_LEN - self.chunk_start) as usize;
                    let at = cur.at;
                    cur.pos += FRAME_HEADER_LEN + u64::from(len);
                    cur.at += 1;
                    if at < self.next {
                        continue;
                    }
                    let stored = &self.chunk[start..start + len as usize];
                    match &cur.codec {
                        FrameCodec::Plain => {
                            out.clear();
                            out.extend_from_slice(stored);
                        }
                        codec => {
                            codec
                                .decode_into(stored, out)
                                .map_err(|e| SegmentError::Frame {
                                    path: cur.path.clone(),
                                    offset: pos,
                                    reason: e.to_string(),
                                })?
                        }
                    }
                    self.next = at + 1;
                    return Ok(Some(at));
                }
                Found::Sealed => {
                    self.pending = Some((cur.number + 1, cur.at));
                    self.current = None;
                }
                Found::Incomplete(reason) => {
                    // Re-read from disk next time: bytes past the last whole
                    // frame may still change (a write in progress, or a torn
                    // tail cut and rewritten after a restart).
                    self.chunk.clear();
                    self.stalled = reason;
                    return Ok(None);
                }
            }
        }
    }

    /// Makes the segment holding `next` current; false if it does not exist yet.
    fn open_next(&mut self) -> Result<bool, FollowError> {
        if let Some((number, expected)) = self.pending {
            let Some((path, file, header, header_len)) = open_segment(&self.segments, number)?
            else {
                return Ok(false);
            };
            if header.first_index != expected {
                return Err(FollowError::Gap {
                    path,
                    expected,
                    found: header.first_index,
                });
            }
            let codec = self.codec(&path, &header)?;
            self.pending = None;
            // The read-ahead buffer belongs to the previous file.
            self.chunk.clear();
            self.current = Some(Current {
                number,
                path,
                file,
                codec,
                pos: header_len,
                at: header.first_index,
            });
            return Ok(true);
        }
        self.locate()
    }

    fn codec(&self, path: &Path, header: &SegmentHeader) -> Result<FrameCodec, FollowError> {
        self.dicts.codec(header.format).map_err(|source| {
            FollowError::Segment(SegmentError::Dict {
                path: path.to_owned(),
                source,
            })
        })
    }

    /// Finds the segment holding `next` by binary search over the segment
    /// headers (each names its first index): O(log n) small reads.
    fn locate(&mut self) -> Result<bool, FollowError> {
        let (sealed, open) = list_segments(&self.segments)?;
        let mut numbers: Vec<u64> = sealed.into_iter().chain(open).collect();
        numbers.sort_unstable();
        numbers.dedup();
        if numbers.is_empty() {
            return Ok(false);
        }
        // Largest segment whose first index is <= next.
        let (mut lo, mut hi) = (0usize, numbers.len());
        let mut found = None;
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match open_segment(&self.segments, numbers[mid])? {
                Some((path, file, header, header_len)) if header.first_index <= self.next => {
                    found = Some((numbers[mid], path, file, header, header_len));
                    lo = mid + 1;
                }
                Some(_) => hi = mid,
                // Removed since listing (retention): look later.
                None => lo = mid + 1,
            }
        }
        let Some((number, path, mut file, header, header_len)) = found else {
            return match open_segment(&self.segments, numbers[0])? {
                Some((_, _, h, _)) => Err(FollowError::Before {
                    index: self.next,
                    first: h.first_index,
                }),
                None => Ok(false),
            };
        };
        let mut pos = header_len;
        let mut at = header.first_index;
        // In a sealed segment, jump to the block holding `next`.
        let skip = self.next - at;
        if skip >= 1 << BLOCK_SHIFT
            && let Ok(footer) = Footer::read(&path, &mut file)
        {
            let block = skip >> BLOCK_SHIFT;
            if let Some(&offset) = usize::try_from(block)
                .ok()
                .and_then(|b| footer.block_offsets.get(b))
            {
                pos = offset;
                at += block << BLOCK_SHIFT;
            }
        }
        let codec = self.codec(&path, &header)?;
        self.chunk.clear();
        self.current = Some(Current {
            number,
            path,
            file,
            codec,
            pos,
            at,
        });
        Ok(true)
    }
}

/// Opens segment `number` (sealed or open; the rename may happen between
/// the two tries) and reads its header.
fn open_segment(
    dir: &Path,
    number: u64,
) -> Result<Option<(PathBuf, File, SegmentHeader, u64)>, FollowError> {
    for sealed in [true, false, true] {
        let path = dir.join(segment::file_name(number, sealed));
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(&path, e)),
        };
        let (header, len) = match SegmentHeader::read(&path, &mut &file) {
            Ok(h) => h,
            // A segment being created: its header is written and synced
            // before any entry, so a short header means "not yet".
            Err(SegmentError::Header { .. }) if !sealed => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        return Ok(Some((path, file, header, len)));
    }
    Ok(None)
}

/// Looks at the frame at `pos`, reading it into `chunk` when needed (the
/// chunk then covers at least the whole frame).
fn probe(
    file: &File,
    path: &Path,
    pos: u64,
    chunk: &mut Vec<u8>,
    chunk_start: &mut u64,
) -> Result<Found, FollowError> {
    let head = match window(
        file,
        path,
        pos,
        FRAME_HEADER_LEN as usize,
        chunk,
        chunk_start,
    )? {
        Some(h) => h,
        None => return Ok(Found::Incomplete(None)),
    };
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    let crc = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
    if len == SEAL_MARKER {
        return Ok(Found::Sealed);
    }
    if len == 0 || len > MAX_FRAME_LEN {
        return Ok(Found::Incomplete(Some(format!(
            "{}: frame length {len} at offset {pos} is out of range",
            path.display()
        ))));
    }
    let total = FRAME_HEADER_LEN as usize + len as usize;
    let Some(frame) = window(file, path, pos, total, chunk, chunk_start)? else {
        return Ok(Found::Incomplete(None));
    };
    if crc32c::crc32c(&frame[FRAME_HEADER_LEN as usize..]) != crc {
        return Ok(Found::Incomplete(Some(format!(
            "{}: frame checksum mismatch at offset {pos}",
            path.display()
        ))));
    }
    Ok(Found::Frame { len })
}

/// `n` bytes of the file at `pos`, from the read-ahead buffer or read into
/// it; `None` when the file is shorter.
fn window<'a>(
    file: &File,
    path: &Path,
    pos: u64,
    n: usize,
    chunk: &'a mut Vec<u8>,
    chunk_start: &mut u64,
) -> Result<Option<&'a [u8]>, FollowError> {
    let have = pos >= *chunk_start && pos + n as u64 <= *chunk_start + chunk.len() as u64;
    if !have {
        chunk.clear();
        chunk.resize(n.max(CHUNK), 0);
        let mut filled = 0;
        while filled < chunk.len() {
            match file.read_at(&mut chunk[filled..], pos + filled as u64) {
                Ok(0) => break,
                Ok(k) => filled += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_err(path, e)),
            }
        }
        chunk.truncate(filled);
        *chunk_start = pos;
        if filled < n {
            return Ok(None);
        }
    }
    let off = (pos - *chunk_start) as usize;
    Ok(Some(&chunk[off..off + n]))
}

/// One past the last readable entry of the ledger in `data_dir` (0 when it
/// is empty): the first index of the newest segment plus the whole frames
/// that follow its header. Reads at most one segment.
pub fn ledger_end(data_dir: &Path) -> Result<u64, FollowError> {
    let segments = LedgerPaths::new(data_dir).segments;
    let (sealed, open) = list_segments(&segments)?;
    let Some(&last) = sealed.iter().chain(open.iter()).max() else {
        return Ok(0);
    };
    let Some((_, _, header, _)) = open_segment(&segments, last)? else {
        return Ok(0);
    };
    let mut follower = LedgerFollower::new(data_dir, header.first_index);
    let mut buf = Vec::new();
    while follower.next_entry(u64::MAX, &mut buf)?.is_some() {}
    Ok(follower.position())
}

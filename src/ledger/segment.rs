//! Segment files: the write-ahead log of the open segment and, once sealed,
//! the immutable container of its entries.
//!
//! ```text
//! header  : magic "SEALSEG\0" | version u16 | origin_len u16 | origin
//!           | number u64 | first_index u64 | prev [32] | dict [32] (v2 only)
//!           | crc32c u32
//! frames  : len u32 (1..=MAX_ENTRY_LEN) | crc32c(payload) u32 | payload     (repeated)
//! footer  : SEAL_MARKER u32 | record_len u16 | record | block_shift u8
//!           | block_count u32 | block offsets u64 * n | block roots [32] * n
//!           | crc32c(marker..roots) u32
//! trailer : footer_offset u64 | magic "SEALEND\0"
//! ```
//! All integers are big-endian. A file without footer is open (or torn);
//! `docs/LEDGER.md` is the normative description.
//!
//! Version 1 payloads are the entries themselves. Version 2 (written only by
//! compaction, `compact.rs`, for sealed segments) stores each entry as one
//! zstd frame, with the dictionary named by `dict` (SHA-256 of a file in
//! `ledger/dicts/`; all zeros = no dictionary). Hashes, records and the footer
//! are over the uncompressed entries in both versions: compression is storage
//! only. `FrameCodec` turns stored payloads back into entries.

use super::atrest::{self, SegmentCipher};
use super::dicts::{DictError, DictStore};
use super::hash::{Hash, Rfc6962, leaf_hash};
use super::record::{ByteReader, MAX_ORIGIN_LEN, RecordError, SegmentRecord};
use std::cell::RefCell;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;
use zstd::dict::DecoderDictionary;
use zstd::zstd_safe;

pub const SEGMENT_MAGIC: &[u8; 8] = b"SEALSEG\0";
pub const TRAILER_MAGIC: &[u8; 8] = b"SEALEND\0";
/// Format of open and freshly sealed segments: payloads are the entries.
pub const SEGMENT_VERSION: u16 = 1;
/// Format of compacted sealed segments: payloads are zstd frames.
pub const SEGMENT_VERSION_COMPRESSED: u16 = 2;
/// Format of encrypted segments (open and sealed): payloads are
/// `leaf hash || nonce || AES-256-GCM(entry)` (LEDGER.md §4.9).
pub const SEGMENT_VERSION_ENCRYPTED: u16 = 3;
/// Largest entry the ledger stores. Lengths read from disk above it are corrupt.
pub const MAX_ENTRY_LEN: u32 = 1 << 20;
/// Largest stored frame payload of any version (an encrypted frame of a
/// maximal entry).
pub const MAX_FRAME_LEN: u32 = MAX_ENTRY_LEN + atrest::FRAME_OVERHEAD;
/// Length value that introduces the footer instead of an entry frame.
pub const SEAL_MARKER: u32 = u32::MAX;
/// Set in the footer's block-shift byte when a frame index follows the block
/// roots (LEDGER.md §4.3; compacted segments carry one).
pub const FRAME_INDEX_FLAG: u8 = 0x80;
/// Entries are grouped in blocks of `2^BLOCK_SHIFT` for the proof index.
pub const BLOCK_SHIFT: u8 = 6;
pub const FRAME_HEADER_LEN: u64 = 8;
pub const TRAILER_LEN: u64 = 16;
/// Upper bound on events per segment (bounds footer and in-memory sizes).
pub const MAX_SEGMENT_EVENTS: u64 = 1 << 22;

#[derive(Debug, Error)]
pub enum SegmentError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: not a sealtrail segment (bad magic)")]
    Magic { path: PathBuf },
    #[error("{path}: segment format version {version} is not supported")]
    Version { path: PathBuf, version: u16 },
    #[error("{path}: header checksum mismatch")]
    HeaderChecksum { path: PathBuf },
    #[error("{path}: header is malformed: {reason}")]
    Header { path: PathBuf, reason: String },
    #[error("{path}: entry frame at offset {offset} is corrupt: {reason}")]
    Frame {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("{path}: footer is corrupt: {reason}")]
    Footer { path: PathBuf, reason: String },
    #[error("{path}: segment is not sealed")]
    NotSealed { path: PathBuf },
    #[error("{path}: {source}")]
    Dict {
        path: PathBuf,
        #[source]
        source: DictError,
    },
}

impl SegmentError {
    pub(crate) fn io(path: &Path, source: io::Error) -> Self {
        SegmentError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// File name of segment `number`, open or sealed.
pub fn file_name(number: u64, sealed: bool) -> String {
    format!("{number:012}.{}", if sealed { "seg" } else { "open" })
}

/// Suffix of the temporary file compaction writes beside `N.seg`
/// (`N.seg.compact`); a leftover one is deleted when the ledger opens.
pub const COMPACT_SUFFIX: &str = ".compact";

/// Parses a segment file name back into (number, sealed). Other files in the
/// directory (`.compact` leftovers included) give `None`.
pub fn parse_file_name(name: &str) -> Option<(u64, bool)> {
    let (stem, ext) = name.split_once('.')?;
    if stem.len() != 12 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let sealed = match ext {
        "seg" => true,
        "open" => false,
        _ => return None,
    };
    Some((stem.parse().ok()?, sealed))
}

/// How a segment stores its entries, as its header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameFormat {
    /// Version 1: each payload is the entry.
    Plain,
    /// Version 2: each payload is one zstd frame of the entry, compressed
    /// with the dictionary whose SHA-256 is `dict` (all zeros: none).
    Zstd { dict: Hash },
    /// Version 3: each payload is an encrypted entry; `number` repeats the
    /// header's segment number (it selects the data key).
    Encrypted { number: u64 },
}

impl FrameFormat {
    pub fn version(&self) -> u16 {
        match self {
            FrameFormat::Plain => SEGMENT_VERSION,
            FrameFormat::Zstd { .. } => SEGMENT_VERSION_COMPRESSED,
            FrameFormat::Encrypted { .. } => SEGMENT_VERSION_ENCRYPTED,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    pub origin: String,
    pub number: u64,
    pub first_index: u64,
    pub prev: Hash,
    /// Version 1 (`Plain`) or 2 (`Zstd`).
    pub format: FrameFormat,
}

impl SegmentHeader {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(96 + self.origin.len());
        out.extend_from_slice(SEGMENT_MAGIC);
        out.extend_from_slice(&self.format.version().to_be_bytes());
        // Origin length is bounded by MAX_ORIGIN_LEN when the ledger is created.
        out.extend_from_slice(&(self.origin.len() as u16).to_be_bytes());
        out.extend_from_slice(self.origin.as_bytes());
        out.extend_from_slice(&self.number.to_be_bytes());
        out.extend_from_slice(&self.first_index.to_be_bytes());
        out.extend_from_slice(&self.prev);
        if let FrameFormat::Zstd { dict } = &self.format {
            out.extend_from_slice(dict);
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// Reads and checks the header at the start of `reader`; returns it and its length.
    pub fn read(path: &Path, reader: &mut impl Read) -> Result<(Self, u64), SegmentError> {
        let mut fixed = [0u8; 12];
        read_exact_or(reader, &mut fixed, path, |_| SegmentError::Header {
            path: path.to_owned(),
            reason: "file is shorter than a header".into(),
        })?;
        if &fixed[..8] != SEGMENT_MAGIC {
            return Err(SegmentError::Magic {
                path: path.to_owned(),
            });
        }
        let version = u16::from_be_bytes([fixed[8], fixed[9]]);
        let dict_len = match version {
            SEGMENT_VERSION | SEGMENT_VERSION_ENCRYPTED => 0,
            SEGMENT_VERSION_COMPRESSED => 32,
            _ => {
                return Err(SegmentError::Version {
                    path: path.to_owned(),
                    version,
                });
            }
        };
        let origin_len = u16::from_be_bytes([fixed[10], fixed[11]]) as usize;
        if origin_len == 0 || origin_len > MAX_ORIGIN_LEN {
            return Err(SegmentError::Header {
                path: path.to_owned(),
                reason: format!("origin length {origin_len} out of range"),
            });
        }
        let mut rest = vec![0u8; origin_len + 8 + 8 + 32 + dict_len + 4];
        read_exact_or(reader, &mut rest, path, |_| SegmentError::Header {
            path: path.to_owned(),
            reason: "header is truncated".into(),
        })?;
        let mut all = fixed.to_vec();
        all.extend_from_slice(&rest);
        let body_len = all.len() - 4;
        let stored_crc = u32::from_be_bytes([
            all[body_len],
            all[body_len + 1],
            all[body_len + 2],
            all[body_len + 3],
        ]);
        if crc32c::crc32c(&all[..body_len]) != stored_crc {
            return Err(SegmentError::HeaderChecksum {
                path: path.to_owned(),
            });
        }
        let header_err = |e: RecordError| SegmentError::Header {
            path: path.to_owned(),
            reason: e.to_string(),
        };
        let mut r = ByteReader::new(&rest);
        let origin = std::str::from_utf8(r.take(origin_len).map_err(header_err)?)
            .map_err(|_| SegmentError::Header {
                path: path.to_owned(),
                reason: "origin is not utf-8".into(),
            })?
            .to_owned();
        let number = r.u64().map_err(header_err)?;
        let first_index = r.u64().map_err(header_err)?;
        let prev = r.hash().map_err(header_err)?;
        let format = match version {
            SEGMENT_VERSION => FrameFormat::Plain,
            SEGMENT_VERSION_ENCRYPTED => FrameFormat::Encrypted { number },
            _ => FrameFormat::Zstd {
                dict: r.hash().map_err(header_err)?,
            },
        };
        Ok((
            SegmentHeader {
                origin,
                number,
                first_index,
                prev,
                format,
            },
            all.len() as u64,
        ))
    }
}

fn read_exact_or(
    reader: &mut impl Read,
    buf: &mut [u8],
    path: &Path,
    short: impl FnOnce(&io::Error) -> SegmentError,
) -> Result<(), SegmentError> {
    reader.read_exact(buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            short(&e)
        } else {
            SegmentError::io(path, e)
        }
    })
}

/// Encodes one entry frame.
pub fn encode_frame(payload: &[u8], out: &mut Vec<u8>) {
    // Callers reject payloads over MAX_ENTRY_LEN before encoding.
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    out.extend_from_slice(payload);
}

/// Why a stored payload could not be turned back into an entry.
#[derive(Debug, Error)]
#[error("{0}")]
pub struct CodecError(String);

thread_local! {
    /// One decompression context per thread, reused: creating one costs
    /// more than decoding a ~400-byte entry.
    static DCTX: RefCell<zstd_safe::DCtx<'static>> = RefCell::new(zstd_safe::DCtx::create());
}

/// Turns a frame's stored payload into the entry bytes, per the segment's
/// format. Cheap to clone (the prepared dictionary is shared).
#[derive(Clone)]
pub enum FrameCodec {
    /// Version 1: the payload is the entry.
    Plain,
    /// Version 2: the payload is one zstd frame, with this dictionary if any.
    Zstd(Option<Arc<DecoderDictionary<'static>>>),
    /// Version 3: the payload is an encrypted entry; `None` when no KEK was
    /// given (only the stored leaf hashes can be read: `verify`).
    Sealed(Option<Arc<SegmentCipher>>),
}

impl std::fmt::Debug for FrameCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameCodec::Plain => f.write_str("Plain"),
            FrameCodec::Zstd(d) => write!(f, "Zstd(dict: {})", d.is_some()),
            FrameCodec::Sealed(c) => write!(f, "Sealed(key: {})", c.is_some()),
        }
    }
}

impl FrameCodec {
    /// Largest stored payload a frame of this codec may have.
    pub fn max_stored_len(&self) -> u32 {
        match self {
            FrameCodec::Sealed(_) => MAX_FRAME_LEN,
            _ => MAX_ENTRY_LEN,
        }
    }

    /// Decodes `stored` into `out` (replacing its contents). The result is
    /// bounded: an entry of 0 or more than `MAX_ENTRY_LEN` bytes, trailing
    /// bytes after the zstd frame, or anything zstd refuses is an error, so
    /// garbage and decompression bombs cost at most 1 MiB of buffer.
    pub fn decode_into(&self, stored: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.clear();
        let dict = match self {
            FrameCodec::Plain => {
                out.extend_from_slice(stored);
                return Ok(());
            }
            FrameCodec::Zstd(dict) => dict,
            FrameCodec::Sealed(Some(cipher)) => {
                cipher.open_frame(stored, out).map_err(CodecError)?;
                if out.is_empty() || out.len() > MAX_ENTRY_LEN as usize {
                    return Err(CodecError(format!(
                        "encrypted entry of {} bytes is out of range",
                        out.len()
                    )));
                }
                return Ok(());
            }
            FrameCodec::Sealed(None) => {
                return Err(CodecError(
                    "the entry is encrypted at rest and no key-encryption key was given".into(),
                ));
            }
        };
        let max = MAX_ENTRY_LEN as usize;
        // Frames written by the compactor declare their size: decode into
        // exactly that much (a frame that holds more fails to decode).
        let declared = match zstd_safe::get_frame_content_size(stored) {
            Ok(Some(n)) if n == 0 || n > max as u64 => {
                return Err(CodecError(format!(
                    "zstd frame declares {n} bytes of content (allowed 1..={max})"
                )));
            }
            // Bounded by `max` just above.
            Ok(Some(n)) => n as usize,
            Ok(None) => max,
            Err(_) => return Err(CodecError("not a zstd frame".into())),
        };
        match zstd_safe::find_frame_compressed_size(stored) {
            Ok(n) if n == stored.len() => {}
            Ok(n) => {
                return Err(CodecError(format!(
                    "{} bytes follow the zstd frame",
                    stored.len() - n
                )));
            }
            Err(code) => {
                return Err(CodecError(format!(
                    "bad zstd frame: {}",
                    zstd_safe::get_error_name(code)
                )));
            }
        }
        // Output is written into spare capacity only: more than `declared`
        // (at most `max`) bytes fails instead of growing the buffer.
        out.reserve_exact(declared);
        let result = DCTX.with(|cell| {
            let mut dctx = cell.borrow_mut();
            match dict {
                Some(d) => dctx.decompress_using_ddict(out, stored, d.as_ddict()),
                None => dctx.decompress(out, stored),
            }
        });
        match result {
            Ok(0) => Err(CodecError("zstd frame holds an empty entry".into())),
            Ok(n) if n > max => Err(CodecError(format!(
                "entry of {n} bytes is over the {max}-byte limit"
            ))),
            Ok(_) => Ok(()),
            Err(code) => {
                out.clear();
                Err(CodecError(format!(
                    "zstd frame does not decompress: {}",
                    zstd_safe::get_error_name(code)
                )))
            }
        }
    }
}

/// The proof index and record stored in a sealed segment's footer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Footer {
    pub record: SegmentRecord,
    pub block_shift: u8,
    /// File offset of the first frame of each block.
    pub block_offsets: Vec<u64>,
    /// RFC 6962 root of each block's leaves.
    pub block_roots: Vec<Hash>,
    /// Offset of every frame from the first frame of its block, when the
    /// footer carries a frame index (compacted segments): one entry is then
    /// one exact read instead of a block read and a walk.
    pub frame_offsets: Option<Vec<u32>>,
}

impl Footer {
    /// Builds the footer for a segment from its leaf hashes and frame
    /// offsets. The record's `root` is set here, from the block roots, so a
    /// footer can never disagree with its own index.
    pub fn build(mut record: SegmentRecord, leaves: &[Hash], frame_offsets: &[u64]) -> Footer {
        let block = 1usize << BLOCK_SHIFT;
        let block_roots: Vec<Hash> = leaves.chunks(block).map(super::hash::merkle_root).collect();
        record.root = Self::root_from_blocks(&block_roots);
        let block_offsets = frame_offsets.iter().step_by(block).copied().collect();
        Footer {
            record,
            block_shift: BLOCK_SHIFT,
            block_offsets,
            block_roots,
            frame_offsets: None,
        }
    }

    /// [`Footer::build`] plus a frame index of `frame_offsets` (one file
    /// offset per entry, as given to `build`).
    pub fn build_indexed(record: SegmentRecord, leaves: &[Hash], frame_offsets: &[u64]) -> Footer {
        let mut footer = Footer::build(record, leaves, frame_offsets);
        let relative = frame_offsets
            .iter()
            .enumerate()
            .map(|(i, &offset)| {
                let block_start = footer.block_offsets[i >> BLOCK_SHIFT];
                // A block is at most 64 frames of at most 8 + 2^20 bytes,
                // so an offset within it is below 2^27.
                u32::try_from(offset - block_start).unwrap_or(u32::MAX)
            })
            .collect();
        footer.frame_offsets = Some(relative);
        footer
    }

    /// Segment root from the block roots: the blocks are complete aligned
    /// subtrees of the segment tree, so the tree over them is its top.
    pub fn root_from_blocks(block_roots: &[Hash]) -> Hash {
        super::hash::merkle_root(block_roots)
    }

    /// Serialises marker, footer body, checksum and trailer; `offset` is where
    /// the marker will be written.
    pub fn to_bytes(&self, offset: u64) -> Vec<u8> {
        let record = self.record.to_bytes();
        let n = self.block_roots.len();
        let frames = self.frame_offsets.as_deref().unwrap_or_default();
        let mut out =
            Vec::with_capacity(4 + 2 + record.len() + 5 + n * 40 + frames.len() * 4 + 4 + 16);
        out.extend_from_slice(&SEAL_MARKER.to_be_bytes());
        // Record length is bounded by MAX_ORIGIN_LEN + fixed fields.
        out.extend_from_slice(&(record.len() as u16).to_be_bytes());
        out.extend_from_slice(&record);
        let flag = if self.frame_offsets.is_some() {
            FRAME_INDEX_FLAG
        } else {
            0
        };
        out.push(self.block_shift | flag);
        // Block count is bounded by MAX_SEGMENT_EVENTS >> BLOCK_SHIFT.
        out.extend_from_slice(&(n as u32).to_be_bytes());
        for o in &self.block_offsets {
            out.extend_from_slice(&o.to_be_bytes());
        }
        for r in &self.block_roots {
            out.extend_from_slice(r);
        }
        for o in frames {
            out.extend_from_slice(&o.to_be_bytes());
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out.extend_from_slice(&offset.to_be_bytes());
        out.extend_from_slice(TRAILER_MAGIC);
        out
    }

    /// Parses a footer from the bytes starting at the seal marker up to the end
    /// of the file (trailer included).
    pub fn from_bytes(path: &Path, bytes: &[u8], offset: u64) -> Result<Footer, SegmentError> {
        let bad = |reason: String| SegmentError::Footer {
            path: path.to_owned(),
            reason,
        };
        if bytes.len() < 4 + 2 + 1 + 4 + 4 + TRAILER_LEN as usize {
            return Err(bad("footer is truncated".into()));
        }
        let (body, trailer) = bytes.split_at(bytes.len() - TRAILER_LEN as usize);
        if &trailer[8..] != TRAILER_MAGIC {
            return Err(bad("trailer magic missing".into()));
        }
        let trailer_offset =
            u64::from_be_bytes(trailer[..8].try_into().map_err(|_| bad("trailer".into()))?);
        if trailer_offset != offset {
            return Err(bad(format!(
                "trailer points at offset {trailer_offset}, footer starts at {offset}"
            )));
        }
        let (covered, crc) = body.split_at(body.len() - 4);
        let stored = u32::from_be_bytes(crc.try_into().map_err(|_| bad("checksum".into()))?);
        if crc32c::crc32c(covered) != stored {
            return Err(bad("checksum mismatch".into()));
        }
        let err = |e: RecordError| bad(e.to_string());
        let mut r = ByteReader::new(covered);
        if r.u32().map_err(err)? != SEAL_MARKER {
            return Err(bad("seal marker missing".into()));
        }
        let record_len = r.u16().map_err(err)? as usize;
        let record = SegmentRecord::from_bytes(r.take(record_len).map_err(err)?).map_err(err)?;
        let shift_byte = r.u8().map_err(err)?;
        let indexed = shift_byte & FRAME_INDEX_FLAG != 0;
        let block_shift = shift_byte & !FRAME_INDEX_FLAG;
        if block_shift != BLOCK_SHIFT {
            return Err(bad(format!(
                "block shift {block_shift} is not {BLOCK_SHIFT}"
            )));
        }
        let block_count = r.u32().map_err(err)? as u64;
        let want_blocks = record.count.div_ceil(1 << BLOCK_SHIFT);
        if record.count > MAX_SEGMENT_EVENTS || block_count != want_blocks {
            return Err(bad(format!(
                "{block_count} blocks for {} events",
                record.count
            )));
        }
        let index_len = if indexed { record.count * 4 } else { 0 };
        if r.remaining() as u64 != block_count * 40 + index_len {
            return Err(bad("block index length mismatch".into()));
        }
        let block_offsets = (0..block_count)
            .map(|_| r.u64())
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        let block_roots = (0..block_count)
            .map(|_| r.hash())
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        let frame_offsets = if indexed {
            let offsets = (0..record.count)
                .map(|_| r.u32())
                .collect::<Result<Vec<_>, _>>()
                .map_err(err)?;
            check_frame_index(&offsets, &block_offsets).map_err(bad)?;
            Some(offsets)
        } else {
            None
        };
        Ok(Footer {
            record,
            block_shift,
            block_offsets,
            block_roots,
            frame_offsets,
        })
    }

    /// Reads the footer of a sealed segment file via its trailer.
    pub fn read(path: &Path, file: &mut File) -> Result<Footer, SegmentError> {
        Ok(Footer::read_located(path, file)?.0)
    }

    /// The footer and its file offset, which is where the frames end.
    pub fn read_located(path: &Path, file: &mut File) -> Result<(Footer, u64), SegmentError> {
        let len = file
            .metadata()
            .map_err(|e| SegmentError::io(path, e))?
            .len();
        if len < TRAILER_LEN {
            return Err(SegmentError::NotSealed {
                path: path.to_owned(),
            });
        }
        let mut trailer = [0u8; TRAILER_LEN as usize];
        file.seek(SeekFrom::Start(len - TRAILER_LEN))
            .and_then(|_| file.read_exact(&mut trailer))
            .map_err(|e| SegmentError::io(path, e))?;
        if &trailer[8..] != TRAILER_MAGIC {
            return Err(SegmentError::NotSealed {
                path: path.to_owned(),
            });
        }
        let offset =
            u64::from_be_bytes(
                trailer[..8]
                    .try_into()
                    .map_err(|_| SegmentError::NotSealed {
                        path: path.to_owned(),
                    })?,
            );
        // Bound the footer size before allocating: it can never exceed the
        // index of a maximal segment.
        let max_footer = 4
            + 2
            + 1024
            + 1
            + 4
            + (MAX_SEGMENT_EVENTS >> BLOCK_SHIFT) * 40
            + MAX_SEGMENT_EVENTS * 4
            + 4
            + TRAILER_LEN;
        if offset >= len || len - offset > max_footer {
            return Err(SegmentError::Footer {
                path: path.to_owned(),
                reason: format!("footer offset {offset} is out of range"),
            });
        }
        let mut bytes = vec![0u8; (len - offset) as usize];
        file.seek(SeekFrom::Start(offset))
            .and_then(|_| file.read_exact(&mut bytes))
            .map_err(|e| SegmentError::io(path, e))?;
        Ok((Footer::from_bytes(path, &bytes, offset)?, offset))
    }
}

/// A frame index is well formed: each block's first frame at offset 0 and
/// offsets within a block increasing by at least a frame header and one
/// byte. (That it points at the frames is checked by whoever walks them.)
fn check_frame_index(offsets: &[u32], block_offsets: &[u64]) -> Result<(), String> {
    for (b, block) in offsets.chunks(1 << BLOCK_SHIFT).enumerate() {
        if block.first() != Some(&0) {
            return Err(format!("frame index: block {b} does not start at offset 0"));
        }
        if block
            .windows(2)
            .any(|w| u64::from(w[1]) < u64::from(w[0]) + FRAME_HEADER_LEN + 1)
        {
            return Err(format!("frame index: offsets in block {b} do not increase"));
        }
    }
    if offsets.len().div_ceil(1 << BLOCK_SHIFT) != block_offsets.len() {
        return Err("frame index does not cover the blocks".into());
    }
    Ok(())
}

/// One entry as read back from a segment.
#[derive(Debug)]
pub struct Frame {
    pub offset: u64,
    pub payload: Vec<u8>,
}

/// What sequential reading of a segment found after the last good frame.
#[derive(Debug)]
pub enum Tail {
    /// Clean end of file, no footer: an open segment.
    Open,
    /// A footer starts at this offset (parsed and checked).
    Sealed(Box<Footer>),
    /// Bytes from `offset` on are not a valid frame or footer.
    Torn { offset: u64, reason: String },
}

/// Sequential, bounded reader over a segment's frames; returns entries
/// (decoded, whatever the segment's format).
pub struct FrameReader {
    path: PathBuf,
    reader: BufReader<File>,
    pub header: SegmentHeader,
    codec: FrameCodec,
    /// Stored payload of a compressed frame, before decoding.
    stored: Vec<u8>,
    /// Leaf hash stored in the last encrypted frame read.
    leaf: Option<Hash>,
    pos: u64,
    len: u64,
    tail: Option<Tail>,
}

impl FrameReader {
    /// Opens a segment, resolving a v2 segment's dictionary in the
    /// `ledger/dicts/` directory beside `ledger/segments/`.
    pub fn open(path: &Path) -> Result<Self, SegmentError> {
        Self::open_with(path, &DictStore::for_segment(path))
    }

    /// Opens a segment, resolving dictionaries through `dicts` (whose cache
    /// is then shared between segments).
    pub fn open_with(path: &Path, dicts: &DictStore) -> Result<Self, SegmentError> {
        Self::open_opts(path, dicts, false)
    }

    /// Like `open_with`; with `structure_only`, an encrypted segment opens
    /// even without its key: frames then yield no entry bytes, only their
    /// stored leaf hashes (`leaf()`), for `verify` without the KEK.
    pub fn open_opts(
        path: &Path,
        dicts: &DictStore,
        structure_only: bool,
    ) -> Result<Self, SegmentError> {
        let file = File::open(path).map_err(|e| SegmentError::io(path, e))?;
        let len = file
            .metadata()
            .map_err(|e| SegmentError::io(path, e))?
            .len();
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let (header, header_len) = SegmentHeader::read(path, &mut reader)?;
        let codec = match dicts.codec(header.format) {
            Err(DictError::Key(atrest::AtRestError::NoKek { .. })) if structure_only => {
                FrameCodec::Sealed(None)
            }
            r => r.map_err(|source| SegmentError::Dict {
                path: path.to_owned(),
                source,
            })?,
        };
        Ok(FrameReader {
            path: path.to_owned(),
            reader,
            header,
            codec,
            stored: Vec::new(),
            leaf: None,
            pos: header_len,
            len,
            tail: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Offset just past the last frame returned.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Returns the next entry, or `None` at the end of the frames; then
    /// `tail()` says what follows.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, SegmentError> {
        let mut payload = Vec::new();
        Ok(self
            .next_frame_into(&mut payload)?
            .map(|offset| Frame { offset, payload }))
    }

    /// Like `next_frame`, reading the entry into `payload` (reused between
    /// calls by hot loops such as `verify`); returns the frame's offset. A
    /// compressed frame that does not decode ends the frames like a bad
    /// checksum does (`Tail::Torn`).
    pub fn next_frame_into(&mut self, payload: &mut Vec<u8>) -> Result<Option<u64>, SegmentError> {
        if self.tail.is_some() {
            return Ok(None);
        }
        let remaining = self.len - self.pos;
        if remaining == 0 {
            self.tail = Some(Tail::Open);
            return Ok(None);
        }
        if remaining < FRAME_HEADER_LEN {
            return self.torn(format!("{remaining} stray bytes after the last frame"));
        }
        let mut head = [0u8; 8];
        self.reader
            .read_exact(&mut head)
            .map_err(|e| SegmentError::io(&self.path, e))?;
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let crc = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        if len == SEAL_MARKER {
            return self.read_footer(head);
        }
        if len == 0 || len > self.codec.max_stored_len() {
            return self.torn(format!("frame length {len} out of range"));
        }
        if (len as u64) > remaining - FRAME_HEADER_LEN {
            return self.torn(format!(
                "frame of {len} bytes runs past the end of the file"
            ));
        }
        let compressed = !matches!(self.codec, FrameCodec::Plain);
        let buf = if compressed {
            &mut self.stored
        } else {
            &mut *payload
        };
        buf.clear();
        buf.resize(len as usize, 0);
        self.reader
            .read_exact(buf)
            .map_err(|e| SegmentError::io(&self.path, e))?;
        if crc32c::crc32c(buf) != crc {
            return self.torn("frame checksum mismatch".into());
        }
        if let FrameCodec::Sealed(cipher) = &self.codec {
            self.leaf = atrest::stored_leaf(&self.stored);
            if self.leaf.is_none() {
                return self.torn(format!("encrypted frame of {len} bytes is too short"));
            }
            if cipher.is_none() {
                payload.clear();
            } else if let Err(e) = self.codec.decode_into(&self.stored, payload) {
                return self.torn(e.to_string());
            }
        } else if compressed && let Err(e) = self.codec.decode_into(&self.stored, payload) {
            return self.torn(e.to_string());
        }
        let offset = self.pos;
        self.pos += FRAME_HEADER_LEN + len as u64;
        Ok(Some(offset))
    }

    fn torn<T>(&mut self, reason: String) -> Result<Option<T>, SegmentError> {
        self.tail = Some(Tail::Torn {
            offset: self.pos,
            reason,
        });
        Ok(None)
    }

    fn read_footer<T>(&mut self, head: [u8; 8]) -> Result<Option<T>, SegmentError> {
        let remaining = self.len - self.pos;
        let max_footer = 4096 + (MAX_SEGMENT_EVENTS >> BLOCK_SHIFT) * 40 + MAX_SEGMENT_EVENTS * 4;
        if remaining > max_footer {
            return self.torn("seal marker followed by too many bytes".into());
        }
        let mut bytes = head.to_vec();
        bytes.resize(remaining as usize, 0);
        self.reader
            .read_exact(&mut bytes[8..])
            .map_err(|e| SegmentError::io(&self.path, e))?;
        match Footer::from_bytes(&self.path, &bytes, self.pos) {
            Ok(footer) => self.tail = Some(Tail::Sealed(Box::new(footer))),
            Err(e) => {
                self.tail = Some(Tail::Torn {
                    offset: self.pos,
                    reason: e.to_string(),
                })
            }
        }
        Ok(None)
    }

    /// What followed the frames; `None` until `next_frame` returned `None`.
    pub fn tail(&self) -> Option<&Tail> {
        self.tail.as_ref()
    }

    pub fn into_tail(self) -> Option<Tail> {
        self.tail
    }

    /// How this segment's payloads are decoded.
    pub fn codec(&self) -> &FrameCodec {
        &self.codec
    }

    /// The leaf hash of the last frame read: stored in encrypted frames,
    /// `None` for other versions (hash the entry).
    pub fn leaf(&self) -> Option<Hash> {
        self.leaf
    }

    /// Whether frames yield their entry bytes (false: encrypted, no key).
    pub fn has_entries(&self) -> bool {
        !matches!(self.codec, FrameCodec::Sealed(None))
    }
}

/// Reads (and decodes with `codec`) the entries of one block of a sealed
/// segment, for proofs.
pub fn read_block(
    path: &Path,
    file: &mut File,
    codec: &FrameCodec,
    start_offset: u64,
    count: usize,
) -> Result<Vec<Vec<u8>>, SegmentError> {
    file.seek(SeekFrom::Start(start_offset))
        .map_err(|e| SegmentError::io(path, e))?;
    let mut reader = BufReader::with_capacity(64 << 10, file);
    let mut out = Vec::with_capacity(count);
    let mut offset = start_offset;
    let mut entry = Vec::new();
    for _ in 0..count {
        let mut head = [0u8; 8];
        reader
            .read_exact(&mut head)
            .map_err(|e| SegmentError::io(path, e))?;
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let crc = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        if len == 0 || len > codec.max_stored_len() {
            return Err(SegmentError::Frame {
                path: path.to_owned(),
                offset,
                reason: format!("frame length {len} out of range"),
            });
        }
        let mut payload = vec![0u8; len as usize];
        reader
            .read_exact(&mut payload)
            .map_err(|e| SegmentError::io(path, e))?;
        if crc32c::crc32c(&payload) != crc {
            return Err(SegmentError::Frame {
                path: path.to_owned(),
                offset,
                reason: "frame checksum mismatch".into(),
            });
        }
        if !matches!(codec, FrameCodec::Plain) {
            codec
                .decode_into(&payload, &mut entry)
                .map_err(|e| SegmentError::Frame {
                    path: path.to_owned(),
                    offset,
                    reason: e.to_string(),
                })?;
            payload = entry.as_slice().to_vec();
        }
        offset += FRAME_HEADER_LEN + len as u64;
        out.push(payload);
    }
    Ok(out)
}

/// Leaf hashes of a block of entries plus an `rs_merkle` tree over them.
pub fn block_tree(entries: &[Vec<u8>]) -> rs_merkle::MerkleTree<Rfc6962> {
    let leaves: Vec<Hash> = entries.iter().map(|e| leaf_hash(e)).collect();
    rs_merkle::MerkleTree::<Rfc6962>::from_leaves(&leaves)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip() {
        assert_eq!(file_name(42, true), "000000000042.seg");
        assert_eq!(parse_file_name("000000000042.seg"), Some((42, true)));
        assert_eq!(parse_file_name("000000000042.open"), Some((42, false)));
        assert_eq!(parse_file_name("42.seg"), None);
        assert_eq!(parse_file_name("00000000004x.seg"), None);
        assert_eq!(parse_file_name("000000000042.tmp"), None);
        assert_eq!(parse_file_name("000000000042.seg.compact"), None);
    }

    #[test]
    fn header_round_trips_and_detects_any_flipped_byte() {
        for format in [
            FrameFormat::Plain,
            FrameFormat::Zstd { dict: [9; 32] },
            FrameFormat::Encrypted { number: 3 },
        ] {
            let h = SegmentHeader {
                origin: "o.example/log".into(),
                number: 3,
                first_index: 99,
                prev: [7; 32],
                format,
            };
            let bytes = h.to_bytes();
            let dict_len = if matches!(format, FrameFormat::Zstd { .. }) {
                32
            } else {
                0
            };
            let want_len = 64 + h.origin.len() + dict_len;
            assert_eq!(bytes.len(), want_len);
            assert_eq!(u16::from_be_bytes([bytes[8], bytes[9]]), format.version());
            let path = Path::new("x");
            let (back, n) = SegmentHeader::read(path, &mut &bytes[..]).unwrap();
            assert_eq!(back, h);
            assert_eq!(n as usize, bytes.len());
            for i in 0..bytes.len() {
                let mut b = bytes.clone();
                b[i] ^= 0x20;
                assert!(SegmentHeader::read(path, &mut &b[..]).is_err(), "byte {i}");
            }
            // Truncated anywhere: refused.
            for cut in 0..bytes.len() {
                assert!(SegmentHeader::read(path, &mut &bytes[..cut]).is_err());
            }
        }
        // Version 4 is refused even with a valid CRC.
        let mut b = SegmentHeader {
            origin: "o".into(),
            number: 0,
            first_index: 0,
            prev: [0; 32],
            format: FrameFormat::Plain,
        }
        .to_bytes();
        b[9] = 4;
        let end = b.len() - 4;
        let crc = crc32c::crc32c(&b[..end]);
        b[end..].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            SegmentHeader::read(Path::new("x"), &mut &b[..]),
            Err(SegmentError::Version { version: 4, .. })
        ));
    }

    #[test]
    fn codec_round_trips_and_bounds_its_output() {
        let entry = br#"{"event":{"id":"a","time":"2026-11-27T14:03:11Z"}}"#.to_vec();
        let dict_bytes = entry.repeat(8);
        let dict = Arc::new(DecoderDictionary::copy(&dict_bytes));
        let with_dict = FrameCodec::Zstd(Some(dict));
        let plain_zstd = FrameCodec::Zstd(None);
        let mut out = Vec::new();

        let mut c = zstd::bulk::Compressor::with_dictionary(3, &dict_bytes).unwrap();
        let stored = c.compress(&entry).unwrap();
        with_dict.decode_into(&stored, &mut out).unwrap();
        assert_eq!(out, entry);
        let stored = zstd::bulk::compress(&entry, 3).unwrap();
        plain_zstd.decode_into(&stored, &mut out).unwrap();
        assert_eq!(out, entry);
        FrameCodec::Plain.decode_into(&stored, &mut out).unwrap();
        assert_eq!(out, stored);

        // One byte over the limit (declared size and actual output): refused.
        let big = vec![b'a'; MAX_ENTRY_LEN as usize + 1];
        let bomb = zstd::bulk::compress(&big, 3).unwrap();
        assert!(bomb.len() < 1000);
        let e = plain_zstd.decode_into(&bomb, &mut out).unwrap_err();
        assert!(e.to_string().contains("declares"), "{e}");
        // ... also without a declared content size (streaming encoder).
        let mut enc = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
        enc.include_contentsize(false).unwrap();
        std::io::Write::write_all(&mut enc, &big).unwrap();
        let bomb = enc.finish().unwrap();
        assert!(plain_zstd.decode_into(&bomb, &mut out).is_err());
        assert!(out.capacity() <= 2 * MAX_ENTRY_LEN as usize);
        // Exactly at the limit: fine.
        let max = vec![b'a'; MAX_ENTRY_LEN as usize];
        plain_zstd
            .decode_into(&zstd::bulk::compress(&max, 3).unwrap(), &mut out)
            .unwrap();
        assert_eq!(out.len(), MAX_ENTRY_LEN as usize);
        // Empty content, garbage, trailing bytes, a second frame, wrong dictionary.
        let empty = zstd::bulk::compress(b"", 3).unwrap();
        assert!(plain_zstd.decode_into(&empty, &mut out).is_err());
        assert!(
            plain_zstd
                .decode_into(b"not zstd at all", &mut out)
                .is_err()
        );
        let mut trailing = zstd::bulk::compress(&entry, 3).unwrap();
        trailing.push(0);
        assert!(plain_zstd.decode_into(&trailing, &mut out).is_err());
        let mut two = zstd::bulk::compress(&entry, 3).unwrap();
        two.extend_from_slice(&two.clone());
        assert!(plain_zstd.decode_into(&two, &mut out).is_err());
        let stored = c.compress(&entry).unwrap();
        assert!(plain_zstd.decode_into(&stored, &mut out).is_err());
        for i in 0..stored.len() {
            let mut b = stored.clone();
            b[i] ^= 0x55;
            // Either refused, or (rarely) a different entry: never a panic,
            // never more than the limit.
            if with_dict.decode_into(&b, &mut out).is_ok() {
                assert!(!out.is_empty() && out.len() <= MAX_ENTRY_LEN as usize);
            }
        }
    }

    #[test]
    fn footer_round_trips() {
        let leaves: Vec<Hash> = (0u32..130).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let offsets: Vec<u64> = (0..130).map(|i| 100 + i * 20).collect();
        let record = SegmentRecord {
            origin: "o".into(),
            number: 0,
            first_index: 0,
            count: 130,
            min_time_ms: 1,
            max_time_ms: 2,
            root: super::super::hash::merkle_root(&leaves),
            prev: [0; 32],
        };
        let footer = Footer::build(record, &leaves, &offsets);
        assert_eq!(footer.block_roots.len(), 3);
        assert_eq!(
            footer.block_offsets,
            vec![100, 100 + 64 * 20, 100 + 128 * 20]
        );
        assert_eq!(
            Footer::root_from_blocks(&footer.block_roots),
            footer.record.root
        );
        let bytes = footer.to_bytes(5000);
        assert_eq!(
            Footer::from_bytes(Path::new("x"), &bytes, 5000).unwrap(),
            footer
        );
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 1;
            assert!(
                Footer::from_bytes(Path::new("x"), &b, 5000).is_err(),
                "byte {i}"
            );
        }
    }
}

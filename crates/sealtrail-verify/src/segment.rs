//! Segment files (LEDGER.md §4 "Segments"), formats 1, 2 and 3.
//!
//! ```text
//! header  : magic "SEALSEG\0" | version u16 | origin_len u16 | origin
//!           | number u64 | first_index u64 | prev [32] | dict [32] (v2 only)
//!           | crc32c(header so far) u32
//! frames  : len u32 | crc32c(payload) u32 | payload                  (repeated)
//! footer  : 0xFFFFFFFF | record_len u16 | record | shift u8 | block_count u32
//!           | block offsets u64 * n | block roots [32] * n
//!           | frame offsets u32 * count (only if shift & 0x80)
//!           | crc32c(marker .. end of index) u32
//! trailer : footer_offset u64 | magic "SEALEND\0"
//! ```
//! Big-endian. Version 1 payloads are the entries; version 2 payloads are
//! one zstd frame each (dictionary `dict`, a SHA-256 naming a file in
//! `ledger/dicts/`, zeros = none); version 3 payloads are encrypted
//! (`atrest`). Hashes and records are always over the plain entries. Blocks
//! are 64 entries (`shift` 6); the frame index gives each frame's offset
//! from its block's first frame.

use crate::atrest::{self, SegmentCipher};
use crate::hash::Hash;
use crate::record::{ByteReader, MAX_ORIGIN_LEN, RecordError, SegmentRecord};
use std::io::{self, Read, Seek, SeekFrom};

/// Largest entry; a longer length read from disk is corruption.
pub const MAX_ENTRY_LEN: u32 = 1 << 20;
/// Length value that introduces the footer instead of a frame.
const SEAL_MARKER: u32 = u32::MAX;
/// Set in the footer's `shift` byte when a frame index follows the blocks.
const FRAME_INDEX_FLAG: u8 = 0x80;
pub const BLOCK_SHIFT: u8 = 6;
const FRAME_HEADER_LEN: u64 = 8;
const TRAILER_LEN: u64 = 16;
/// Upper bound on events per segment (bounds footer and memory).
pub const MAX_SEGMENT_EVENTS: u64 = 1 << 22;
/// Largest dictionary file accepted.
pub const MAX_DICT_LEN: u64 = 256 << 10;
/// Largest footer a maximal segment can have (bounds the read).
const MAX_FOOTER_LEN: u64 =
    4096 + (MAX_SEGMENT_EVENTS >> BLOCK_SHIFT) * 40 + MAX_SEGMENT_EVENTS * 4;

/// Why a segment (or a footer) could not be read: the report kind (`io`,
/// `header`, `dictionary` or `key`) and what was wrong.
#[derive(Debug, thiserror::Error)]
#[error("{1}")]
pub struct SegmentError(pub &'static str, pub String);

impl SegmentError {
    pub fn kind(&self) -> &'static str {
        self.0
    }
}

/// A field of a header or footer that does not parse.
impl From<RecordError> for SegmentError {
    fn from(e: RecordError) -> Self {
        SegmentError("header", e.to_string())
    }
}

impl From<io::Error> for SegmentError {
    fn from(e: io::Error) -> Self {
        SegmentError("io", e.to_string())
    }
}

/// `ensure!(condition, "message", args..)`: unless `condition` holds, a
/// malformed header or footer (in `FrameReader`: torn bytes).
macro_rules! ensure {
    ($ok:expr, $($msg:tt)+) => {
        if !$ok {
            return Err(SegmentError("header", format!($($msg)+)));
        }
    };
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    pub origin: String,
    pub number: u64,
    pub first_index: u64,
    pub prev: Hash,
    /// 1: plain entries, 2: zstd frames, 3: encrypted entries.
    pub version: u16,
    /// Version 2: the dictionary's SHA-256 (zeros: none).
    pub dict: Hash,
}

impl SegmentHeader {
    /// Reads and checks the header; returns it and its length.
    pub fn read(r: &mut impl Read) -> Result<(Self, u64), SegmentError> {
        let read_exact = |r: &mut dyn Read, buf: &mut [u8], short: &str| {
            r.read_exact(buf).map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => SegmentError("header", short.to_owned()),
                _ => e.into(),
            })
        };
        let mut all = vec![0u8; 12];
        read_exact(r, &mut all, "file is shorter than a header")?;
        let version = u16::from_be_bytes([all[8], all[9]]);
        let origin_len = usize::from(u16::from_be_bytes([all[10], all[11]]));
        ensure!(&all[..8] == b"SEALSEG\0", "not a sealtrail segment (bad magic)");
        ensure!((1..=3).contains(&version), "segment format version {version} is not supported");
        let origin_ok = (1..=MAX_ORIGIN_LEN).contains(&origin_len);
        ensure!(origin_ok, "origin length {origin_len} out of range");
        let dict_len = if version == 2 { 32 } else { 0 };
        all.resize(12 + origin_len + 48 + dict_len + 4, 0);
        read_exact(r, &mut all[12..], "header is truncated")?;
        let (body, crc) = all.split_at(all.len() - 4);
        ensure!(crc32c::crc32c(body) == ByteReader::new(crc).u32()?, "header checksum mismatch");
        let mut b = ByteReader::new(&body[12..]);
        let origin = String::from_utf8(b.take(origin_len)?.to_vec());
        let origin = origin.map_err(|_| SegmentError("header", "origin is not utf-8".into()))?;
        let (number, first_index, prev) = (b.u64()?, b.u64()?, b.hash()?);
        let dict = if version == 2 { b.hash()? } else { [0; 32] };
        Ok((SegmentHeader { origin, number, first_index, prev, version, dict }, all.len() as u64))
    }
}

/// The proof index and record in a sealed segment's footer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Footer {
    pub record: SegmentRecord,
    /// File offset of the first frame of each block.
    pub block_offsets: Vec<u64>,
    /// RFC 6962 root of each block's leaves.
    pub block_roots: Vec<Hash>,
    /// Each frame's offset from its block's first frame (compacted segments).
    pub frame_offsets: Option<Vec<u32>>,
}

impl Footer {
    /// Parses the bytes from the seal marker at file offset `offset` to the
    /// end of the file (trailer included).
    pub fn from_bytes(bytes: &[u8], offset: u64) -> Result<Footer, SegmentError> {
        ensure!(bytes.len() >= 4 + 2 + 1 + 4 + 4 + TRAILER_LEN as usize, "footer is truncated");
        let (body, trailer) = bytes.split_at(bytes.len() - TRAILER_LEN as usize);
        let at = ByteReader::new(trailer).u64()?;
        ensure!(&trailer[8..] == b"SEALEND\0", "trailer magic missing");
        ensure!(at == offset, "trailer points at offset {at}, footer starts at {offset}");
        let (covered, crc) = body.split_at(body.len() - 4);
        ensure!(crc32c::crc32c(covered) == ByteReader::new(crc).u32()?, "checksum mismatch");
        let mut r = ByteReader::new(covered);
        ensure!(r.u32()? == SEAL_MARKER, "seal marker missing");
        let record_len = usize::from(r.u16()?);
        let record = SegmentRecord::from_bytes(r.take(record_len)?)?;
        let shift = r.u8()?;
        let (indexed, shift) = (shift & FRAME_INDEX_FLAG != 0, shift & !FRAME_INDEX_FLAG);
        ensure!(shift == BLOCK_SHIFT, "block shift {shift} is not {BLOCK_SHIFT}");
        let (blocks, count) = (u64::from(r.u32()?), record.count);
        let blocks_ok = count <= MAX_SEGMENT_EVENTS && blocks == count.div_ceil(64);
        ensure!(blocks_ok, "{blocks} blocks for {count} events");
        let index_len = if indexed { count * 4 } else { 0 };
        ensure!(r.remaining() as u64 == blocks * 40 + index_len, "block index length mismatch");
        let block_offsets = (0..blocks).map(|_| r.u64()).collect::<Result<Vec<_>, _>>()?;
        let block_roots = (0..blocks).map(|_| r.hash()).collect::<Result<Vec<_>, _>>()?;
        let mut frame_offsets = None;
        if indexed {
            let offsets = (0..count).map(|_| r.u32()).collect::<Result<Vec<_>, _>>()?;
            check_frame_index(&offsets, block_offsets.len())?;
            frame_offsets = Some(offsets);
        }
        Ok(Footer { record, block_offsets, block_roots, frame_offsets })
    }

    /// Finds the footer from the end of a sealed file (§4.5: the trailer
    /// names its offset), without reading the frames before it.
    pub fn read_from_end(file: &mut (impl Read + Seek)) -> Result<Footer, SegmentError> {
        let len = file.seek(SeekFrom::End(0))?;
        ensure!(len >= TRAILER_LEN, "file is shorter than a trailer");
        let mut offset = [0u8; 8];
        file.seek(SeekFrom::Start(len - TRAILER_LEN))?;
        file.read_exact(&mut offset)?;
        let offset = u64::from_be_bytes(offset);
        // Bounded before allocating: no footer exceeds a maximal segment's.
        let in_range = offset < len && len - offset <= MAX_FOOTER_LEN;
        ensure!(in_range, "footer offset {offset} is out of range");
        let mut bytes = vec![0u8; (len - offset) as usize];
        file.seek(SeekFrom::Start(offset))?;
        file.read_exact(&mut bytes)?;
        Footer::from_bytes(&bytes, offset)
    }
}

/// A frame index is well formed: each block starts at offset 0 and offsets
/// grow by at least a frame header and one byte. (That they point at the
/// frames is checked by the reader that walks them.)
fn check_frame_index(offsets: &[u32], blocks: usize) -> Result<(), SegmentError> {
    for (b, block) in offsets.chunks(64).enumerate() {
        ensure!(block.first() == Some(&0), "frame index: block {b} does not start at offset 0");
        let grows = |w: &[u32]| u64::from(w[1]) > u64::from(w[0]) + FRAME_HEADER_LEN;
        ensure!(block.windows(2).all(grows), "frame index: offsets in block {b} do not increase");
    }
    ensure!(offsets.len().div_ceil(64) == blocks, "frame index does not cover the blocks");
    Ok(())
}

/// Turns a stored payload back into the entry.
pub enum Codec {
    /// Version 1: the payload is the entry.
    Plain,
    /// Version 2: one zstd frame (decoder with the segment's dictionary).
    Zstd(Box<ZstdDecoder>),
    /// Version 3: encrypted; `None` without the KEK (only the stored leaf
    /// hashes can be checked then).
    Sealed(Option<Box<SegmentCipher>>),
}

/// Decodes zstd frames: one per entry, 1..=MAX_ENTRY_LEN bytes of output,
/// nothing after the frame. Output beyond the limit fails instead of
/// growing, so garbage and decompression bombs cost at most ~1 MiB.
pub struct ZstdDecoder {
    #[cfg(feature = "native-zstd")]
    dctx: zstd::zstd_safe::DCtx<'static>,
    #[cfg(feature = "native-zstd")]
    ddict: Option<zstd::dict::DecoderDictionary<'static>>,
    #[cfg(not(feature = "native-zstd"))]
    dec: ruzstd::decoding::FrameDecoder,
}

impl ZstdDecoder {
    pub fn new(dict: Option<&[u8]>) -> Result<Self, String> {
        #[cfg(feature = "native-zstd")]
        {
            Ok(ZstdDecoder {
                dctx: zstd::zstd_safe::DCtx::create(),
                ddict: dict.map(zstd::dict::DecoderDictionary::copy),
            })
        }
        #[cfg(not(feature = "native-zstd"))]
        {
            let mut dec = ruzstd::decoding::FrameDecoder::new();
            if let Some(d) = dict {
                // decode_dict indexes the first 8 bytes without checking.
                if d.len() < 8 {
                    return Err("dictionary is too short".into());
                }
                let d = ruzstd::decoding::Dictionary::decode_dict(d)
                    .map_err(|e| format!("dictionary does not parse: {e}"))?;
                dec.add_dict(d).map_err(|e| e.to_string())?;
            }
            Ok(ZstdDecoder { dec })
        }
    }

    pub fn decode(&mut self, stored: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        out.clear();
        let max = MAX_ENTRY_LEN as usize;
        #[cfg(feature = "native-zstd")]
        {
            use zstd::zstd_safe;
            let declared = match zstd_safe::get_frame_content_size(stored) {
                Ok(Some(n)) if n == 0 || n > max as u64 => {
                    return Err(format!(
                        "zstd frame declares {n} bytes of content (allowed 1..={max})"
                    ));
                }
                Ok(Some(n)) => n as usize,
                Ok(None) => max,
                Err(_) => return Err("not a zstd frame".into()),
            };
            match zstd_safe::find_frame_compressed_size(stored) {
                Ok(n) if n == stored.len() => {}
                Ok(n) => return Err(format!("{} bytes follow the zstd frame", stored.len() - n)),
                Err(c) => return Err(format!("bad zstd frame: {}", zstd_safe::get_error_name(c))),
            }
            // Only spare capacity is written: more than `declared` fails.
            out.reserve_exact(declared);
            let r = match &self.ddict {
                Some(d) => self.dctx.decompress_using_ddict(out, stored, d.as_ddict()),
                None => self.dctx.decompress(out, stored),
            };
            match r {
                Ok(0) => Err("zstd frame holds an empty entry".into()),
                Ok(n) if n > max => Err(format!("entry of {n} bytes is over the {max}-byte limit")),
                Ok(_) => Ok(()),
                Err(c) => {
                    out.clear();
                    Err(format!("zstd frame does not decompress: {}", zstd_safe::get_error_name(c)))
                }
            }
        }
        #[cfg(not(feature = "native-zstd"))]
        {
            use ruzstd::decoding::BlockDecodingStrategy;
            let bad = |e: ruzstd::decoding::errors::FrameDecoderError| {
                format!("zstd frame does not decompress: {e}")
            };
            // The decoder reserves the frame's window before anything else.
            match zstd_window(stored) {
                Some(w) if w <= MAX_ZSTD_WINDOW => {}
                Some(w) => return Err(format!("zstd frame asks for a {w}-byte window")),
                None => return Err("not a zstd frame".into()),
            }
            let mut src = stored;
            self.dec.init(&mut src).map_err(bad)?;
            let declared = self.dec.content_size();
            if declared > max as u64 {
                return Err(format!(
                    "zstd frame declares {declared} bytes of content (allowed 1..={max})"
                ));
            }
            loop {
                let done = self
                    .dec
                    .decode_blocks(&mut src, BlockDecodingStrategy::UptoBytes(64 << 10))
                    .map_err(bad)?;
                if let Some(bytes) = self.dec.collect() {
                    out.extend_from_slice(&bytes);
                }
                if out.len() > max {
                    out.clear();
                    return Err(format!("entry is over the {max}-byte limit"));
                }
                if done {
                    break;
                }
            }
            if !src.is_empty() {
                return Err(format!("{} bytes follow the zstd frame", src.len()));
            }
            if out.is_empty() || (declared != 0 && out.len() as u64 != declared) {
                return Err("zstd frame holds an empty entry or not its declared size".into());
            }
            Ok(())
        }
    }
}

/// Largest zstd window accepted (the compactor's frames use at most 1 MiB).
#[cfg(not(feature = "native-zstd"))]
const MAX_ZSTD_WINDOW: u64 = 8 << 20;

/// The window a zstd frame asks for (RFC 8878 §3.1.1.1): its content size
/// when Single_Segment is set, else from the window descriptor.
#[cfg(not(feature = "native-zstd"))]
fn zstd_window(f: &[u8]) -> Option<u64> {
    if f.get(..4)? != [0x28, 0xB5, 0x2F, 0xFD] {
        return None;
    }
    let fhd = *f.get(4)?;
    if fhd & 0x20 == 0 {
        let wd = *f.get(5)?;
        let base = 1u64 << (10 + (wd >> 3));
        return Some(base + base / 8 * u64::from(wd & 7));
    }
    let dict_len = [0, 1, 2, 4][usize::from(fhd & 3)];
    let fcs_len = [1, 2, 4, 8][usize::from(fhd >> 6)];
    let mut v = [0u8; 8];
    v[..fcs_len].copy_from_slice(f.get(5 + dict_len..5 + dict_len + fcs_len)?);
    let n = u64::from_le_bytes(v);
    Some(if fcs_len == 2 { n + 256 } else { n })
}

/// What reading a segment's frames found after the last good frame.
#[derive(Debug)]
pub enum Tail {
    /// Clean end of file, no footer: an open segment.
    Open,
    /// A footer starts here (parsed and checked).
    Sealed(Box<Footer>),
    /// Bytes from `offset` on are not a valid frame or footer.
    Torn { offset: u64, reason: String },
}

/// Sequential, bounded reader over the frames of one segment; yields the
/// entries (decoded whatever the format).
pub struct FrameReader<R: Read> {
    reader: R,
    pub header: SegmentHeader,
    codec: Codec,
    stored: Vec<u8>,
    /// The leaf hash stored in the last encrypted frame read.
    pub leaf: Option<Hash>,
    pos: u64,
    len: u64,
    /// What followed the frames; `None` until the frames ended.
    pub tail: Option<Tail>,
}

impl<R: Read> FrameReader<R> {
    /// Reads the header of a file of `len` bytes; `codec` says how its
    /// frames are decoded.
    pub fn open(
        mut reader: R,
        len: u64,
        codec: impl FnOnce(&SegmentHeader) -> Result<Codec, SegmentError>,
    ) -> Result<Self, SegmentError> {
        let (header, pos) = SegmentHeader::read(&mut reader)?;
        let codec = codec(&header)?;
        let (stored, leaf, tail) = (Vec::new(), None, None);
        Ok(FrameReader { reader, header, codec, stored, leaf, pos, len, tail })
    }

    /// Reads the next entry into `payload` and returns its frame's offset,
    /// or `None` at the end of the frames (then `tail` says what follows).
    /// A frame that does not decode ends the frames like a bad checksum.
    pub fn next_frame_into(&mut self, payload: &mut Vec<u8>) -> Result<Option<u64>, SegmentError> {
        let offset = self.pos;
        if self.tail.is_some() {
            return Ok(None);
        }
        match self.read_frame(payload) {
            Ok(Some(stored_len)) => {
                self.pos += FRAME_HEADER_LEN + stored_len;
                Ok(Some(offset))
            }
            Ok(None) => Ok(None),
            Err(e) if e.kind() == "io" => Err(e),
            Err(SegmentError(_, reason)) => {
                self.tail = Some(Tail::Torn { offset, reason });
                Ok(None)
            }
        }
    }

    /// Reads the frame at `pos`: its stored length, or `None` (and `tail`
    /// set) at the end of the file or a footer. Any error but `io` means
    /// the bytes from `pos` on are torn.
    fn read_frame(&mut self, payload: &mut Vec<u8>) -> Result<Option<u64>, SegmentError> {
        let remaining = self.len.saturating_sub(self.pos);
        if remaining == 0 {
            self.tail = Some(Tail::Open);
            return Ok(None);
        }
        ensure!(remaining >= FRAME_HEADER_LEN, "{remaining} stray bytes after the last frame");
        let mut head = [0u8; 8];
        self.reader.read_exact(&mut head)?;
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let crc = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        if len == SEAL_MARKER {
            ensure!(remaining <= MAX_FOOTER_LEN, "seal marker followed by too many bytes");
            let mut bytes = head.to_vec();
            bytes.resize(remaining as usize, 0);
            self.reader.read_exact(&mut bytes[8..])?;
            let footer = Footer::from_bytes(&bytes, self.pos);
            let footer =
                footer.map_err(|e| SegmentError("header", format!("footer is corrupt: {e}")))?;
            self.tail = Some(Tail::Sealed(Box::new(footer)));
            return Ok(None);
        }
        let sealed = matches!(self.codec, Codec::Sealed(_));
        let max = MAX_ENTRY_LEN + if sealed { atrest::FRAME_OVERHEAD } else { 0 };
        ensure!(len > 0 && len <= max, "frame length {len} out of range");
        let fits = u64::from(len) <= remaining - FRAME_HEADER_LEN;
        ensure!(fits, "frame of {len} bytes runs past the end of the file");
        let buf = if matches!(self.codec, Codec::Plain) { &mut *payload } else { &mut self.stored };
        buf.clear();
        buf.resize(len as usize, 0);
        self.reader.read_exact(buf)?;
        ensure!(crc32c::crc32c(buf) == crc, "frame checksum mismatch");
        self.decode(payload).map_err(|reason| SegmentError("header", reason))?;
        Ok(Some(u64::from(len)))
    }

    /// Decodes the stored payload just read into the entry.
    fn decode(&mut self, payload: &mut Vec<u8>) -> Result<(), String> {
        let stored = &self.stored;
        match &mut self.codec {
            Codec::Plain => Ok(()),
            Codec::Zstd(z) => z.decode(stored, payload),
            Codec::Sealed(cipher) => {
                self.leaf = atrest::stored_leaf(stored);
                payload.clear();
                if self.leaf.is_none() {
                    return Err(format!("encrypted frame of {} bytes is too short", stored.len()));
                }
                if let Some(c) = cipher {
                    c.open_frame(stored, payload)?;
                    if payload.is_empty() || payload.len() > MAX_ENTRY_LEN as usize {
                        let n = payload.len();
                        return Err(format!("encrypted entry of {n} bytes is out of range"));
                    }
                }
                Ok(())
            }
        }
    }

    /// Whether frames yield their entry bytes (false: encrypted, no KEK).
    pub fn has_entries(&self) -> bool {
        !matches!(self.codec, Codec::Sealed(None))
    }
}

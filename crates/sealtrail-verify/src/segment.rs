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
use std::sync::Arc;

pub const SEGMENT_MAGIC: &[u8; 8] = b"SEALSEG\0";
pub const TRAILER_MAGIC: &[u8; 8] = b"SEALEND\0";
/// Largest entry; a longer length read from disk is corruption.
pub const MAX_ENTRY_LEN: u32 = 1 << 20;
/// Length value that introduces the footer instead of a frame.
pub const SEAL_MARKER: u32 = u32::MAX;
pub const FRAME_INDEX_FLAG: u8 = 0x80;
pub const BLOCK_SHIFT: u8 = 6;
pub const FRAME_HEADER_LEN: u64 = 8;
pub const TRAILER_LEN: u64 = 16;
/// Upper bound on events per segment (bounds footer and memory).
pub const MAX_SEGMENT_EVENTS: u64 = 1 << 22;
/// Largest dictionary file accepted.
pub const MAX_DICT_LEN: u64 = 256 << 10;

/// Why a segment could not be opened at all. `kind()` is the report kind.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    Header(String),
    #[error("{0}")]
    Dictionary(String),
    #[error(transparent)]
    Key(#[from] atrest::AtRestError),
}

impl SegmentError {
    pub fn kind(&self) -> &'static str {
        match self {
            SegmentError::Io(_) => "io",
            SegmentError::Header(_) => "header",
            SegmentError::Dictionary(_) => "dictionary",
            SegmentError::Key(_) => "key",
        }
    }
}

/// How a segment stores its entries, as its header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameFormat {
    /// Version 1: each payload is the entry.
    Plain,
    /// Version 2: each payload is a zstd frame (with dictionary `dict`).
    Zstd { dict: Hash },
    /// Version 3: each payload is an encrypted entry.
    Encrypted,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    pub origin: String,
    pub number: u64,
    pub first_index: u64,
    pub prev: Hash,
    pub format: FrameFormat,
}

fn read_exact(r: &mut impl Read, buf: &mut [u8], short: &str) -> Result<(), SegmentError> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => SegmentError::Header(short.to_owned()),
        _ => SegmentError::Io(e.to_string()),
    })
}

impl SegmentHeader {
    /// Reads and checks the header; returns it and its length.
    pub fn read(r: &mut impl Read) -> Result<(Self, u64), SegmentError> {
        let mut all = vec![0u8; 12];
        read_exact(r, &mut all, "file is shorter than a header")?;
        if &all[..8] != SEGMENT_MAGIC {
            return Err(SegmentError::Header("not a sealtrail segment (bad magic)".into()));
        }
        let version = u16::from_be_bytes([all[8], all[9]]);
        let dict_len = match version {
            1 | 3 => 0,
            2 => 32,
            _ => {
                return Err(SegmentError::Header(format!(
                    "segment format version {version} is not supported"
                )));
            }
        };
        let origin_len = usize::from(u16::from_be_bytes([all[10], all[11]]));
        if origin_len == 0 || origin_len > MAX_ORIGIN_LEN {
            return Err(SegmentError::Header(format!("origin length {origin_len} out of range")));
        }
        all.resize(12 + origin_len + 48 + dict_len + 4, 0);
        read_exact(r, &mut all[12..], "header is truncated")?;
        let body_len = all.len() - 4;
        let (body, crc) = all.split_at(body_len);
        if crc32c::crc32c(body) != u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]) {
            return Err(SegmentError::Header("header checksum mismatch".into()));
        }
        let bad = |e: RecordError| SegmentError::Header(e.to_string());
        let mut b = ByteReader::new(&body[12..]);
        let origin = std::str::from_utf8(b.take(origin_len).map_err(bad)?)
            .map_err(|_| SegmentError::Header("origin is not utf-8".into()))?
            .to_owned();
        let number = b.u64().map_err(bad)?;
        let first_index = b.u64().map_err(bad)?;
        let prev = b.hash().map_err(bad)?;
        let format = match version {
            1 => FrameFormat::Plain,
            3 => FrameFormat::Encrypted,
            _ => FrameFormat::Zstd { dict: b.hash().map_err(bad)? },
        };
        let header = SegmentHeader { origin, number, first_index, prev, format };
        Ok((header, all.len() as u64))
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

/// Largest footer a maximal segment can have (bounds the read).
pub const MAX_FOOTER_LEN: u64 =
    4096 + (MAX_SEGMENT_EVENTS >> BLOCK_SHIFT) * 40 + MAX_SEGMENT_EVENTS * 4;

impl Footer {
    /// Parses the bytes from the seal marker at file offset `offset` to the
    /// end of the file (trailer included).
    pub fn from_bytes(bytes: &[u8], offset: u64) -> Result<Footer, String> {
        if bytes.len() < 4 + 2 + 1 + 4 + 4 + TRAILER_LEN as usize {
            return Err("footer is truncated".into());
        }
        let (body, trailer) = bytes.split_at(bytes.len() - TRAILER_LEN as usize);
        if &trailer[8..] != TRAILER_MAGIC {
            return Err("trailer magic missing".into());
        }
        let mut t = [0u8; 8];
        t.copy_from_slice(&trailer[..8]);
        let trailer_offset = u64::from_be_bytes(t);
        if trailer_offset != offset {
            return Err(format!(
                "trailer points at offset {trailer_offset}, footer starts at {offset}"
            ));
        }
        let (covered, crc) = body.split_at(body.len() - 4);
        if crc32c::crc32c(covered) != u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]) {
            return Err("checksum mismatch".into());
        }
        let err = |e: RecordError| e.to_string();
        let mut r = ByteReader::new(covered);
        if r.u32().map_err(err)? != SEAL_MARKER {
            return Err("seal marker missing".into());
        }
        let record_len = usize::from(r.u16().map_err(err)?);
        let record = SegmentRecord::from_bytes(r.take(record_len).map_err(err)?).map_err(err)?;
        let shift = r.u8().map_err(err)?;
        let indexed = shift & FRAME_INDEX_FLAG != 0;
        if shift & !FRAME_INDEX_FLAG != BLOCK_SHIFT {
            return Err(format!("block shift {} is not {BLOCK_SHIFT}", shift & !FRAME_INDEX_FLAG));
        }
        let block_count = u64::from(r.u32().map_err(err)?);
        if record.count > MAX_SEGMENT_EVENTS || block_count != record.count.div_ceil(64) {
            return Err(format!("{block_count} blocks for {} events", record.count));
        }
        let index_len = if indexed { record.count * 4 } else { 0 };
        if r.remaining() as u64 != block_count * 40 + index_len {
            return Err("block index length mismatch".into());
        }
        let block_offsets =
            (0..block_count).map(|_| r.u64()).collect::<Result<Vec<_>, _>>().map_err(err)?;
        let block_roots =
            (0..block_count).map(|_| r.hash()).collect::<Result<Vec<_>, _>>().map_err(err)?;
        let frame_offsets = if indexed {
            let offsets =
                (0..record.count).map(|_| r.u32()).collect::<Result<Vec<_>, _>>().map_err(err)?;
            check_frame_index(&offsets, block_offsets.len())?;
            Some(offsets)
        } else {
            None
        };
        Ok(Footer { record, block_offsets, block_roots, frame_offsets })
    }
}

impl Footer {
    /// Finds the footer from the end of a sealed file (§4.5: the trailer
    /// names its offset), without reading the frames before it.
    pub fn read_from_end(file: &mut (impl Read + Seek)) -> Result<Footer, String> {
        let io = |e: std::io::Error| e.to_string();
        let len = file.seek(SeekFrom::End(0)).map_err(io)?;
        let mut trailer = [0u8; TRAILER_LEN as usize];
        if len < TRAILER_LEN {
            return Err("file is shorter than a trailer".into());
        }
        file.seek(SeekFrom::Start(len - TRAILER_LEN)).map_err(io)?;
        file.read_exact(&mut trailer).map_err(io)?;
        let mut t = [0u8; 8];
        t.copy_from_slice(&trailer[..8]);
        let offset = u64::from_be_bytes(t);
        // Bounded before allocating: no footer exceeds a maximal segment's.
        if offset >= len || len - offset > MAX_FOOTER_LEN {
            return Err(format!("footer offset {offset} is out of range"));
        }
        let mut bytes = vec![0u8; (len - offset) as usize];
        file.seek(SeekFrom::Start(offset)).map_err(io)?;
        file.read_exact(&mut bytes).map_err(io)?;
        Footer::from_bytes(&bytes, offset)
    }
}

/// A frame index is well formed: each block starts at offset 0 and offsets
/// grow by at least a frame header and one byte. (That they point at the
/// frames is checked by the reader that walks them.)
fn check_frame_index(offsets: &[u32], blocks: usize) -> Result<(), String> {
    for (b, block) in offsets.chunks(64).enumerate() {
        if block.first() != Some(&0) {
            return Err(format!("frame index: block {b} does not start at offset 0"));
        }
        if block.windows(2).any(|w| u64::from(w[1]) < u64::from(w[0]) + FRAME_HEADER_LEN + 1) {
            return Err(format!("frame index: offsets in block {b} do not increase"));
        }
    }
    if offsets.len().div_ceil(64) != blocks {
        return Err("frame index does not cover the blocks".into());
    }
    Ok(())
}

/// Turns a stored payload back into the entry.
#[derive(Clone)]
pub enum Codec {
    /// Version 1: the payload is the entry.
    Plain,
    /// Version 2: one zstd frame, with this dictionary (bytes, hash-checked).
    Zstd(Option<Arc<Vec<u8>>>),
    /// Version 3: encrypted; `None` without the KEK (only the stored leaf
    /// hashes can be checked then).
    Sealed(Option<Arc<SegmentCipher>>),
}

impl Codec {
    fn max_stored_len(&self) -> u32 {
        match self {
            Codec::Sealed(_) => MAX_ENTRY_LEN + atrest::FRAME_OVERHEAD,
            _ => MAX_ENTRY_LEN,
        }
    }
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
    zstd: Option<ZstdDecoder>,
    stored: Vec<u8>,
    leaf: Option<Hash>,
    pos: u64,
    len: u64,
    tail: Option<Tail>,
}

impl<R: Read> FrameReader<R> {
    /// `reader` is positioned just after the header (`header_len` bytes);
    /// `len` is the file's length.
    pub fn new(
        reader: R,
        header: SegmentHeader,
        header_len: u64,
        len: u64,
        codec: Codec,
    ) -> Result<Self, SegmentError> {
        let zstd = match &codec {
            Codec::Zstd(dict) => Some(
                ZstdDecoder::new(dict.as_deref().map(Vec::as_slice))
                    .map_err(SegmentError::Dictionary)?,
            ),
            _ => None,
        };
        Ok(FrameReader {
            reader,
            header,
            codec,
            zstd,
            stored: Vec::new(),
            leaf: None,
            pos: header_len,
            len,
            tail: None,
        })
    }

    /// Reads the next entry into `payload` and returns its frame's offset,
    /// or `None` at the end of the frames (then `tail()` says what follows).
    /// A frame that does not decode ends the frames like a bad checksum.
    pub fn next_frame_into(&mut self, payload: &mut Vec<u8>) -> Result<Option<u64>, String> {
        if self.tail.is_some() {
            return Ok(None);
        }
        let io = |e: io::Error| e.to_string();
        let remaining = self.len.saturating_sub(self.pos);
        if remaining == 0 {
            self.tail = Some(Tail::Open);
            return Ok(None);
        }
        if remaining < FRAME_HEADER_LEN {
            return self.torn(format!("{remaining} stray bytes after the last frame"));
        }
        let mut head = [0u8; 8];
        self.reader.read_exact(&mut head).map_err(io)?;
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let crc = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        if len == SEAL_MARKER {
            return self.read_footer(head);
        }
        if len == 0 || len > self.codec.max_stored_len() {
            return self.torn(format!("frame length {len} out of range"));
        }
        if u64::from(len) > remaining - FRAME_HEADER_LEN {
            return self.torn(format!("frame of {len} bytes runs past the end of the file"));
        }
        let plain = matches!(self.codec, Codec::Plain);
        let buf = if plain { &mut *payload } else { &mut self.stored };
        buf.clear();
        buf.resize(len as usize, 0);
        self.reader.read_exact(buf).map_err(io)?;
        if crc32c::crc32c(buf) != crc {
            return self.torn("frame checksum mismatch".into());
        }
        let decoded = match (&self.codec, &mut self.zstd) {
            (Codec::Plain, _) => Ok(()),
            (Codec::Zstd(_), Some(z)) => z.decode(&self.stored, payload),
            (Codec::Zstd(_), None) => Err("no zstd decoder".into()),
            (Codec::Sealed(cipher), _) => {
                self.leaf = atrest::stored_leaf(&self.stored);
                match (self.leaf, cipher) {
                    (None, _) => Err(format!("encrypted frame of {len} bytes is too short")),
                    (Some(_), None) => {
                        payload.clear();
                        Ok(())
                    }
                    (Some(_), Some(c)) => c.open_frame(&self.stored, payload).and_then(|()| {
                        if payload.is_empty() || payload.len() > MAX_ENTRY_LEN as usize {
                            Err(format!(
                                "encrypted entry of {} bytes is out of range",
                                payload.len()
                            ))
                        } else {
                            Ok(())
                        }
                    }),
                }
            }
        };
        if let Err(reason) = decoded {
            return self.torn(reason);
        }
        let offset = self.pos;
        self.pos += FRAME_HEADER_LEN + u64::from(len);
        Ok(Some(offset))
    }

    fn torn<T>(&mut self, reason: String) -> Result<Option<T>, String> {
        self.tail = Some(Tail::Torn { offset: self.pos, reason });
        Ok(None)
    }

    fn read_footer<T>(&mut self, head: [u8; 8]) -> Result<Option<T>, String> {
        let remaining = self.len - self.pos;
        if remaining > MAX_FOOTER_LEN {
            return self.torn("seal marker followed by too many bytes".into());
        }
        let mut bytes = head.to_vec();
        bytes.resize(remaining as usize, 0);
        self.reader.read_exact(&mut bytes[8..]).map_err(|e| e.to_string())?;
        self.tail = Some(match Footer::from_bytes(&bytes, self.pos) {
            Ok(footer) => Tail::Sealed(Box::new(footer)),
            Err(reason) => {
                Tail::Torn { offset: self.pos, reason: format!("footer is corrupt: {reason}") }
            }
        });
        Ok(None)
    }

    /// What followed the frames; `None` until the frames ended.
    pub fn tail(&self) -> Option<&Tail> {
        self.tail.as_ref()
    }

    /// The leaf hash stored in the last encrypted frame read.
    pub fn leaf(&self) -> Option<Hash> {
        self.leaf
    }

    /// Whether frames yield their entry bytes (false: encrypted, no KEK).
    pub fn has_entries(&self) -> bool {
        !matches!(self.codec, Codec::Sealed(None))
    }
}

//! The segment record (LEDGER.md §3 "Segment records"): the fixed binary
//! summary of one sealed segment that is a leaf of the log tree.
//!
//! ```text
//! version u8 (=1) | origin_len u16 | origin | number u64 | first_index u64
//! | count u64 | min_time_ms i64 | max_time_ms i64 | root [32] | prev [32]
//! ```
//! Big-endian. `prev` is `SHA-256(record bytes)` of the previous segment
//! (zeros for segment 0); the log-tree leaf is `leaf_hash(record bytes)`.

use crate::hash::{Hash, leaf_hash, sha256};
use thiserror::Error;

/// Version byte at the start of every record.
pub const RECORD_VERSION: u8 = 1;
/// Longest origin accepted (bytes). Origins are short names like `example.org/log`.
pub const MAX_ORIGIN_LEN: usize = 255;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("segment record is truncated")]
    Truncated,
    #[error("segment record has {0} trailing bytes")]
    TrailingBytes(usize),
    #[error("segment record version {0} is not supported")]
    Version(u8),
    #[error("segment record origin is empty or longer than {MAX_ORIGIN_LEN} bytes")]
    OriginLength,
    #[error("segment record origin is not utf-8")]
    OriginUtf8,
    #[error("segment record has no events")]
    Empty,
}

/// One sealed segment, as committed to by the log tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentRecord {
    pub origin: String,
    /// Position of the segment in the log (0-based): its leaf index in the log tree.
    pub number: u64,
    /// Global index of the segment's first event.
    pub first_index: u64,
    /// Number of events in the segment (at least 1).
    pub count: u64,
    /// Earliest and latest event `time` in the segment, Unix milliseconds.
    pub min_time_ms: i64,
    pub max_time_ms: i64,
    /// RFC 6962 root of the segment's entries.
    pub root: Hash,
    /// SHA-256 of the previous record's bytes; zeros for segment 0.
    pub prev: Hash,
}

impl SegmentRecord {
    pub fn to_bytes(&self) -> Vec<u8> {
        let origin = self.origin.as_bytes();
        let mut out = Vec::with_capacity(1 + 2 + origin.len() + 5 * 8 + 64);
        out.push(RECORD_VERSION);
        // Origins are validated at ledger creation to fit in MAX_ORIGIN_LEN.
        out.extend_from_slice(&(origin.len() as u16).to_be_bytes());
        out.extend_from_slice(origin);
        out.extend_from_slice(&self.number.to_be_bytes());
        out.extend_from_slice(&self.first_index.to_be_bytes());
        out.extend_from_slice(&self.count.to_be_bytes());
        out.extend_from_slice(&self.min_time_ms.to_be_bytes());
        out.extend_from_slice(&self.max_time_ms.to_be_bytes());
        out.extend_from_slice(&self.root);
        out.extend_from_slice(&self.prev);
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, RecordError> {
        let mut r = ByteReader::new(bytes);
        let version = r.u8()?;
        if version != RECORD_VERSION {
            return Err(RecordError::Version(version));
        }
        let origin_len = r.u16()? as usize;
        if origin_len == 0 || origin_len > MAX_ORIGIN_LEN {
            return Err(RecordError::OriginLength);
        }
        let origin = std::str::from_utf8(r.take(origin_len)?)
            .map_err(|_| RecordError::OriginUtf8)?
            .to_owned();
        let record = SegmentRecord {
            origin,
            number: r.u64()?,
            first_index: r.u64()?,
            count: r.u64()?,
            min_time_ms: r.u64()? as i64,
            max_time_ms: r.u64()? as i64,
            root: r.hash()?,
            prev: r.hash()?,
        };
        if r.remaining() != 0 {
            return Err(RecordError::TrailingBytes(r.remaining()));
        }
        if record.count == 0 {
            return Err(RecordError::Empty);
        }
        Ok(record)
    }

    /// The record's leaf hash in the log tree.
    pub fn leaf_hash(&self) -> Hash {
        leaf_hash(&self.to_bytes())
    }

    /// What the next record's `prev` must be.
    pub fn chain_hash(&self) -> Hash {
        sha256(&self.to_bytes())
    }

    /// Global index one past the segment's last event.
    pub fn end_index(&self) -> u64 {
        self.first_index + self.count
    }
}

/// A bounds-checked cursor over untrusted bytes.
pub struct ByteReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> ByteReader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        if n > self.remaining() {
            return Err(RecordError::Truncated);
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, RecordError> {
        Ok(self.take(1)?[0])
    }

    pub fn u16(&mut self) -> Result<u16, RecordError> {
        let mut b = [0u8; 2];
        b.copy_from_slice(self.take(2)?);
        Ok(u16::from_be_bytes(b))
    }

    pub fn u32(&mut self) -> Result<u32, RecordError> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(b))
    }

    pub fn u64(&mut self) -> Result<u64, RecordError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(b))
    }

    pub fn hash(&mut self) -> Result<Hash, RecordError> {
        let mut h = [0u8; 32];
        h.copy_from_slice(self.take(32)?);
        Ok(h)
    }
}

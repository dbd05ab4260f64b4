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

/// Version byte at the start of every record.
pub const RECORD_VERSION: u8 = 1;
/// Longest origin accepted (bytes). Origins are short names like `example.org/log`.
pub const MAX_ORIGIN_LEN: usize = 255;

/// Why a segment record was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("segment record is truncated")]
    Truncated,
    /// Any other rule, named by the message (after "segment record ").
    #[error("segment record {0}")]
    Invalid(String),
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
        // Origins are validated at ledger creation to fit in MAX_ORIGIN_LEN.
        let origin_len = (self.origin.len() as u16).to_be_bytes();
        let mut out = [&[RECORD_VERSION][..], &origin_len, self.origin.as_bytes()].concat();
        let (min, max) = (self.min_time_ms as u64, self.max_time_ms as u64);
        for n in [self.number, self.first_index, self.count, min, max] {
            out.extend_from_slice(&n.to_be_bytes());
        }
        [out, self.root.to_vec(), self.prev.to_vec()].concat()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, RecordError> {
        let bad = |what: &str| Err(RecordError::Invalid(what.to_owned()));
        let mut r = ByteReader::new(bytes);
        let version = r.u8()?;
        if version != RECORD_VERSION {
            return bad(&format!("version {version} is not supported"));
        }
        let origin_len = usize::from(r.u16()?);
        if origin_len == 0 || origin_len > MAX_ORIGIN_LEN {
            return bad(&format!("origin is empty or longer than {MAX_ORIGIN_LEN} bytes"));
        }
        let Ok(origin) = std::str::from_utf8(r.take(origin_len)?) else {
            return bad("origin is not utf-8");
        };
        let record = SegmentRecord {
            origin: origin.to_owned(),
            number: r.u64()?,
            first_index: r.u64()?,
            count: r.u64()?,
            min_time_ms: r.u64()? as i64,
            max_time_ms: r.u64()? as i64,
            root: r.hash()?,
            prev: r.hash()?,
        };
        match (r.remaining(), record.count) {
            (0, 0) => bad("has no events"),
            (0, _) => Ok(record),
            (n, _) => bad(&format!("has {n} trailing bytes")),
        }
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

/// A bounds-checked cursor over untrusted bytes (big-endian numbers).
pub struct ByteReader<'a> {
    /// The bytes not read yet.
    rest: &'a [u8],
}

impl<'a> ByteReader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    pub fn remaining(&self) -> usize {
        self.rest.len()
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        let (out, rest) = self.rest.split_at_checked(n).ok_or(RecordError::Truncated)?;
        self.rest = rest;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, RecordError> {
        self.array().map(u8::from_be_bytes)
    }

    pub fn u16(&mut self) -> Result<u16, RecordError> {
        self.array().map(u16::from_be_bytes)
    }

    pub fn u32(&mut self) -> Result<u32, RecordError> {
        self.array().map(u32::from_be_bytes)
    }

    pub fn u64(&mut self) -> Result<u64, RecordError> {
        self.array().map(u64::from_be_bytes)
    }

    pub fn hash(&mut self) -> Result<Hash, RecordError> {
        self.array()
    }
}

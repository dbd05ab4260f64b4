//! A minimal ustar reader for evidence bundles (LEDGER.md §11.1): 512-byte
//! headers, octal sizes, data padded to 512 bytes, two zero blocks at the
//! end. Only what a bundle needs: the member's name (`prefix/name` when a
//! ustar prefix is set), type flag and size. Sizes are bounded by the
//! caller before any data is read; base-256 sizes are refused; after the
//! end-of-archive block only zero padding may follow (at most 64 KiB, §11.1).

use std::io::{self, Read};

const BLOCK: u64 = 512;
/// Zero padding accepted after the end-of-archive blocks.
const MAX_TRAILING_ZEROS: u64 = 64 << 10;

#[derive(Debug, thiserror::Error)]
pub enum TarError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("header checksum mismatch")]
    Checksum,
    #[error("header size field is not an octal number")]
    Size,
    #[error("data follows the end-of-archive blocks")]
    TrailingData,
}

/// One member's header.
#[derive(Debug)]
pub struct Header {
    pub name: Vec<u8>,
    /// `b'0'` or `0` for a regular file.
    pub kind: u8,
    pub size: u64,
}

impl Header {
    pub fn is_regular(&self) -> bool {
        matches!(self.kind, b'0' | 0)
    }
}

pub struct TarReader<R> {
    inner: R,
    /// Bytes of the current member's data and padding not read yet.
    left: u64,
    /// Bytes of the current member's data not read yet.
    data_left: u64,
}

/// Fills `buf`; returns how many bytes were read before the end of input.
fn fill(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn field(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    &bytes[..end]
}

impl<R: Read> TarReader<R> {
    pub fn new(inner: R) -> Self {
        TarReader { inner, left: 0, data_left: 0 }
    }

    /// The next member's header, or `None` at the end of the archive.
    pub fn next_header(&mut self) -> Result<Option<Header>, TarError> {
        // The previous member's rest and padding must be there: a cut
        // archive is refused even when only padding is missing.
        let skipped = io::copy(&mut (&mut self.inner).take(self.left), &mut io::sink())?;
        if skipped != self.left {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
        }
        self.left = 0;
        let mut h = [0u8; BLOCK as usize];
        match fill(&mut self.inner, &mut h)? {
            0 => return Ok(None),
            512 => {}
            _ => return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
        }
        if h.iter().all(|&b| b == 0) {
            // End of archive: only zeros may follow.
            let mut rest = Vec::new();
            #[allow(clippy::disallowed_methods)] // bounded by `take`
            (&mut self.inner).take(MAX_TRAILING_ZEROS + 1).read_to_end(&mut rest)?;
            if rest.len() as u64 > MAX_TRAILING_ZEROS || rest.iter().any(|&b| b != 0) {
                return Err(TarError::TrailingData);
            }
            return Ok(None);
        }
        // The checksum is the sum of all header bytes, its own field as spaces.
        let sum: u64 = h
            .iter()
            .enumerate()
            .map(|(i, &b)| if (148..156).contains(&i) { 32 } else { u64::from(b) })
            .sum();
        if octal(&h[148..156]) != Some(sum) {
            return Err(TarError::Checksum);
        }
        let size = octal(&h[124..136]).ok_or(TarError::Size)?;
        let mut name = Vec::new();
        let prefix = field(&h[345..500]);
        if &h[257..263] == b"ustar\0" && !prefix.is_empty() {
            name.extend_from_slice(prefix);
            name.push(b'/');
        }
        name.extend_from_slice(field(&h[..100]));
        self.left = size.div_ceil(BLOCK) * BLOCK;
        self.data_left = size;
        Ok(Some(Header { name, kind: h[156], size }))
    }

    /// Reads up to `max` bytes of the current member's data.
    pub fn data(&mut self, max: u64) -> impl Read + '_ {
        MemberData { tar: self, max }
    }
}

struct MemberData<'a, R> {
    tar: &'a mut TarReader<R>,
    max: u64,
}

impl<R: Read> Read for MemberData<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = (buf.len() as u64).min(self.max).min(self.tar.data_left);
        let n = self.tar.inner.read(&mut buf[..want as usize])?;
        self.max -= n as u64;
        self.tar.left -= n as u64;
        self.tar.data_left -= n as u64;
        Ok(n)
    }
}

/// An octal field: optional leading spaces, digits, then NULs or spaces.
fn octal(f: &[u8]) -> Option<u64> {
    let s = f.iter().skip_while(|&&b| b == b' ');
    let digits: Vec<u8> = s.take_while(|&&b| b != 0 && b != b' ').copied().collect();
    if digits.is_empty() || digits.len() > 12 {
        return None;
    }
    digits
        .iter()
        .try_fold(0u64, |acc, &b| (b'0'..=b'7').contains(&b).then(|| acc * 8 + u64::from(b - b'0')))
}

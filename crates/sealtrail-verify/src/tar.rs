//! A minimal ustar reader for evidence bundles (LEDGER.md §11.1): 512-byte
//! headers, octal sizes, data padded to 512 bytes, two zero blocks at the
//! end. Only what a bundle needs: the member's name (`prefix/name` when a
//! ustar prefix is set), type flag and size. Sizes are bounded by the
//! caller before any data is read; base-256 sizes are refused; after the
//! end-of-archive block only zero padding may follow (at most 64 KiB, §11.1).
//! Errors are the bundle's `archive` and `trailing_data` problems.

use crate::bundle::BundleError;
use std::io::{self, Read};

const BLOCK: u64 = 512;
/// Zero padding accepted after the end-of-archive blocks.
const MAX_TRAILING_ZEROS: u64 = 64 << 10;

/// One member's header.
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
    /// The input; its limit is what is left of the current member's data.
    inner: io::Take<R>,
    /// The current member's padding.
    padding: u64,
}

/// Reads up to `limit` bytes; fewer only at the end of the input.
pub(crate) fn read_up_to(input: impl Read, limit: u64) -> Result<Vec<u8>, BundleError> {
    let mut buf = Vec::new();
    #[allow(clippy::disallowed_methods)] // bounded by `take(limit)`
    input.take(limit).read_to_end(&mut buf).map_err(BundleError::archive)?;
    Ok(buf)
}

impl<R: Read> TarReader<R> {
    pub fn new(inner: R) -> Self {
        TarReader { inner: inner.take(0), padding: 0 }
    }

    /// The next member's header, or `None` at the end of the archive.
    pub fn next_header(&mut self) -> Result<Option<Header>, BundleError> {
        // The previous member's rest and padding must be there: a cut
        // archive is refused even when only padding is missing.
        let rest = self.inner.limit() + self.padding;
        self.padding = 0;
        let cut_short = || BundleError::archive(io::ErrorKind::UnexpectedEof);
        self.inner.set_limit(rest);
        if io::copy(&mut self.inner, &mut io::sink()).map_err(BundleError::archive)? != rest {
            return Err(cut_short());
        }
        // The limit is 0 here: read past it, from the input itself.
        let h = read_up_to(self.inner.get_mut(), BLOCK)?;
        match h.len() {
            0 => return Ok(None),
            512 => {}
            _ => return Err(cut_short()),
        }
        if h.iter().all(|&b| b == 0) {
            // End of archive: only zeros may follow.
            let rest = read_up_to(self.inner.get_mut(), MAX_TRAILING_ZEROS + 1)?;
            if rest.len() as u64 > MAX_TRAILING_ZEROS || rest.iter().any(|&b| b != 0) {
                let detail = "data after the end of the archive".into();
                return Err(BundleError::new("trailing_data", None, detail));
            }
            return Ok(None);
        }
        // The checksum is the sum of all header bytes, its own field as spaces.
        let sum: u64 = (h.iter().enumerate())
            .map(|(i, &b)| if (148..156).contains(&i) { 32 } else { u64::from(b) })
            .sum();
        if octal(&h[148..156]) != Some(sum) {
            return Err(BundleError::archive("header checksum mismatch"));
        }
        let size = octal(&h[124..136])
            .ok_or_else(|| BundleError::archive("header size field is not an octal number"))?;
        let mut name = Vec::new();
        let prefix = field(&h[345..500]);
        if &h[257..263] == b"ustar\0" && !prefix.is_empty() {
            name.extend_from_slice(prefix);
            name.push(b'/');
        }
        name.extend_from_slice(field(&h[..100]));
        self.inner.set_limit(size);
        self.padding = size.div_ceil(BLOCK) * BLOCK - size;
        Ok(Some(Header { name, kind: h[156], size }))
    }

    /// Reads up to `max` bytes of the current member's data.
    pub fn data(&mut self, max: u64) -> impl Read + '_ {
        (&mut self.inner).take(max)
    }
}

/// A header field: the bytes before the first NUL.
fn field(f: &[u8]) -> &[u8] {
    f.split(|&b| b == 0).next().unwrap_or(f)
}

/// An octal field: optional leading spaces, 1 to 12 digits, then a NUL or a
/// space (what follows is ignored).
fn octal(f: &[u8]) -> Option<u64> {
    let f = &f[f.iter().take_while(|&&b| b == b' ').count()..];
    let digits = f.split(|&b| b == 0 || b == b' ').next().unwrap_or(f);
    let valid =
        (1..=12).contains(&digits.len()) && digits.iter().all(|b| (b'0'..=b'7').contains(b));
    valid.then(|| digits.iter().fold(0, |n, &b| n * 8 + u64::from(b - b'0')))
}

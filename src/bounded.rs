//! Reads with a limit: the one place the unbounded `read_to_end` is allowed
//! (clippy.toml bans it elsewhere), always behind `take(max + 1)`.

use std::io::{self, Read};
use std::path::Path;

/// Everything `reader` holds, or `InvalidData` when that is more than `max`
/// bytes (reading stops one byte past the limit).
pub fn read_bounded(reader: impl Read, max: u64) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    #[allow(clippy::disallowed_methods)] // bounded by `take(max + 1)`
    reader.take(max.saturating_add(1)).read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {max} bytes"),
        ));
    }
    Ok(buf)
}

/// The UTF-8 text of the file at `path`, at most `max` bytes; errors keep
/// `std::fs::read_to_string`'s kinds (`NotFound`, `InvalidData`).
pub fn read_to_string(path: &Path, max: u64) -> io::Result<String> {
    let bytes = read_bounded(std::fs::File::open(path)?, max)?;
    String::from_utf8(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_up_to_the_limit_and_refuses_more() {
        assert_eq!(read_bounded(&b"12345"[..], 5).unwrap(), b"12345");
        let e = read_bounded(&b"123456"[..], 5).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, "héllo").unwrap();
        assert_eq!(read_to_string(&p, 6).unwrap(), "héllo");
        assert!(read_to_string(&p, 5).is_err());
        std::fs::write(&p, b"\xff").unwrap();
        assert_eq!(
            read_to_string(&p, 5).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        assert_eq!(
            read_to_string(&dir.path().join("none"), 5)
                .unwrap_err()
                .kind(),
            io::ErrorKind::NotFound
        );
    }
}

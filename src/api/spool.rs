//! The export spool's file format. A bundle waiting in `DATA/exports/` for
//! its one download holds every exported event with its patient, so it is
//! written encrypted with AES-256-GCM under a fresh key per file that lives
//! only in this process's memory: a file a crash left behind, or one read
//! from a copied disk or a backup, cannot be read by anyone.
//!
//! A file is a run of chunks, each `flag (1: 0 more, 1 last) || u32 LE
//! ciphertext length || ciphertext with tag`, at most [`CHUNK`] plaintext
//! bytes per chunk. The nonce is the chunk's number and the flag is the
//! associated data, so a truncated, reordered, spliced or extended file
//! fails to read instead of yielding part of a bundle.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use rand_core::{OsRng, RngCore};
use std::io::{self, Read, Write};
use zeroize::Zeroizing;

/// Plaintext bytes per chunk.
pub(crate) const CHUNK: usize = 64 * 1024;
/// AES-GCM tag.
const TAG: usize = 16;
const MORE: u8 = 0;
const LAST: u8 = 1;

/// The key of one spooled file; dropped (and zeroed) with its job.
pub(crate) struct SpoolKey(Zeroizing<[u8; 32]>);

impl SpoolKey {
    pub(crate) fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(key.as_mut());
        SpoolKey(key)
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(self.0.as_ref()))
    }
}

impl std::fmt::Debug for SpoolKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpoolKey(..)")
    }
}

/// The nonce of chunk `n`: its number, big-endian, in 96 bits. A key
/// encrypts one file, so no nonce repeats under it.
fn nonce(n: u64) -> [u8; 12] {
    let mut out = [0u8; 12];
    out[4..].copy_from_slice(&n.to_be_bytes());
    out
}

fn crypto_error(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// Encrypts what is written into `inner`; [`SpoolWriter::finish`] writes
/// the last chunk and returns the plaintext length.
pub(crate) struct SpoolWriter<W: Write> {
    inner: W,
    cipher: Aes256Gcm,
    buf: Vec<u8>,
    chunks: u64,
    plain_len: u64,
}

impl<W: Write> SpoolWriter<W> {
    pub(crate) fn new(inner: W, key: &SpoolKey) -> Self {
        SpoolWriter {
            inner,
            cipher: key.cipher(),
            buf: Vec::with_capacity(CHUNK + 1),
            chunks: 0,
            plain_len: 0,
        }
    }

    fn seal(&mut self, len: usize, flag: u8) -> io::Result<()> {
        let plain: Vec<u8> = self.buf.drain(..len).collect();
        let payload = Payload {
            msg: &plain,
            aad: &[flag],
        };
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce(self.chunks)), payload)
            .map_err(|_| crypto_error("could not encrypt a spool chunk"))?;
        self.chunks += 1;
        // At most CHUNK + TAG bytes: fits in u32.
        let len = u32::try_from(sealed.len()).map_err(|_| crypto_error("spool chunk too long"))?;
        self.inner.write_all(&[flag])?;
        self.inner.write_all(&len.to_le_bytes())?;
        self.inner.write_all(&sealed)
    }

    /// Seals what is buffered as the last chunk (an empty one for an empty
    /// file) and flushes; returns the writer and the plaintext length.
    pub(crate) fn finish(mut self) -> io::Result<(W, u64)> {
        let rest = self.buf.len();
        self.seal(rest, LAST)?;
        self.inner.flush()?;
        Ok((self.inner, self.plain_len))
    }
}

impl<W: Write> Write for SpoolWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        self.plain_len += data.len() as u64;
        // Strictly more than a chunk: the last chunk is only known at finish.
        while self.buf.len() > CHUNK {
            self.seal(CHUNK, MORE)?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Decrypts a spooled file chunk by chunk.
pub(crate) struct SpoolReader<R: Read> {
    inner: R,
    cipher: Aes256Gcm,
    chunks: u64,
    done: bool,
}

impl<R: Read> SpoolReader<R> {
    pub(crate) fn new(inner: R, key: &SpoolKey) -> Self {
        SpoolReader {
            inner,
            cipher: key.cipher(),
            chunks: 0,
            done: false,
        }
    }

    /// The next chunk's plaintext; `None` after the last chunk, which must
    /// end the file. Any damage is an `InvalidData` error.
    pub(crate) fn next_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut head = [0u8; 5];
        if self.done {
            // Nothing may follow the last chunk.
            return match self.inner.read(&mut head[..1])? {
                0 => Ok(None),
                _ => Err(crypto_error("data after the last spool chunk")),
            };
        }
        self.inner
            .read_exact(&mut head)
            .map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => crypto_error("the spool file is truncated"),
                _ => e,
            })?;
        let [flag, l0, l1, l2, l3] = head;
        let len = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
        if flag > LAST || !(TAG..=CHUNK + TAG).contains(&len) {
            return Err(crypto_error("a spool chunk header is damaged"));
        }
        let mut sealed = vec![0u8; len];
        self.inner
            .read_exact(&mut sealed)
            .map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => crypto_error("the spool file is truncated"),
                _ => e,
            })?;
        let payload = Payload {
            msg: &sealed,
            aad: &[flag],
        };
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(&nonce(self.chunks)), payload)
            .map_err(|_| {
                crypto_error("a spool chunk does not decrypt (damaged or not this file's)")
            })?;
        self.chunks += 1;
        self.done = flag == LAST;
        Ok(Some(plain))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spool(data: &[u8], key: &SpoolKey, writes: usize) -> Vec<u8> {
        let mut w = SpoolWriter::new(Vec::new(), key);
        let step = data.len().div_ceil(writes.max(1)).max(1);
        for part in data.chunks(step) {
            w.write_all(part).unwrap();
        }
        let (out, len) = w.finish().unwrap();
        assert_eq!(len, data.len() as u64);
        out
    }

    fn unspool(file: &[u8], key: &SpoolKey) -> io::Result<Vec<u8>> {
        let mut r = SpoolReader::new(file, key);
        let mut out = Vec::new();
        while let Some(chunk) = r.next_chunk()? {
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn round_trips_at_every_chunk_boundary() {
        let key = SpoolKey::generate();
        for n in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 3 * CHUNK + 17] {
            for writes in [1, 3, 1000] {
                let plain = data(n);
                let file = spool(&plain, &key, writes);
                assert_eq!(
                    unspool(&file, &key).unwrap(),
                    plain,
                    "{n} bytes, {writes} writes"
                );
                // Ciphertext, not plaintext, on disk.
                if n >= 64 {
                    assert!(!file.windows(64).any(|w| w == &plain[..64]));
                }
            }
        }
    }

    #[test]
    fn damage_truncation_extension_and_another_key_are_refused() {
        let key = SpoolKey::generate();
        let plain = data(2 * CHUNK + 100);
        let file = spool(&plain, &key, 1);
        assert!(
            unspool(&file, &SpoolKey::generate()).is_err(),
            "another key"
        );
        for cut in [0, 3, 5, CHUNK, file.len() - 1] {
            assert!(unspool(&file[..cut], &key).is_err(), "truncated at {cut}");
        }
        let mut longer = file.clone();
        longer.push(0);
        assert!(unspool(&longer, &key).is_err(), "extended");
        for at in [0, 1, 6, CHUNK / 2, file.len() - 1] {
            let mut bad = file.clone();
            bad[at] ^= 0x01;
            assert!(unspool(&bad, &key).is_err(), "bit flipped at {at}");
        }
        // A file whose chunks are swapped, or whose last chunk is dropped
        // and the one before it relabelled as last, does not read.
        let first = 5 + CHUNK + TAG;
        let mut swapped = file[first..2 * first].to_vec();
        swapped.extend_from_slice(&file[..first]);
        swapped.extend_from_slice(&file[2 * first..]);
        assert!(unspool(&swapped, &key).is_err(), "reordered");
        let mut relabelled = file[..2 * first].to_vec();
        relabelled[first] = LAST;
        assert!(unspool(&relabelled, &key).is_err(), "cut and relabelled");
    }

    #[test]
    fn a_huge_length_is_refused_before_it_is_allocated() {
        let key = SpoolKey::generate();
        let mut file = vec![MORE];
        file.extend_from_slice(&u32::MAX.to_le_bytes());
        let err = unspool(&file, &key).unwrap_err();
        assert!(err.to_string().contains("damaged"), "{err}");
    }
}

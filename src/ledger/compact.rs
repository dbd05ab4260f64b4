//! Compaction: rewrites a sealed version 1 segment `N.seg` into version 2,
//! each entry one zstd frame compressed with a shared dictionary.
//!
//! Steps: read and re-hash every entry (they must match the footer), write
//! `N.seg.compact` and fsync it, re-read that file through the normal reader
//! and check every decoded entry against the original and the footer's block
//! roots, then rename it over `N.seg` and fsync the directory. A crash
//! leaves either the old file or the new one under `N.seg`, and at most a
//! stray `.compact` file, which `Ledger::open` deletes. The segment record,
//! block roots and everything signed stay byte-for-byte the same; only the
//! block offsets in the footer change.

use super::dicts::{DictError, DictStore, dict_hash};
use super::hash::{Hash, leaf_hash};
use super::log::sync_dir;
use super::segment::{
    Footer, FrameFormat, FrameReader, SegmentError, SegmentHeader, Tail, encode_frame,
};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use thiserror::Error;
use zstd::dict::EncoderDictionary;

/// zstd level for entries: level 3 is the library default; higher levels
/// gain little on ~400-byte inputs with a dictionary.
pub const LEVEL: i32 = 3;
/// Target dictionary size.
pub const DICT_SIZE: usize = 16 << 10;

#[derive(Debug, Error)]
pub enum CompactError {
    #[error(transparent)]
    Segment(#[from] SegmentError),
    #[error(transparent)]
    Dict(#[from] DictError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: only sealed version 1 segments are compacted")]
    NotPlain { path: PathBuf },
    #[error("{path}: not a whole sealed segment ({reason})")]
    NotSealed { path: PathBuf, reason: String },
    #[error("{path}: compacted file failed its check, the original is kept: {reason}")]
    Check { path: PathBuf, reason: String },
    #[error("zstd: {0}")]
    Zstd(String),
    #[error("dictionary training: {0}")]
    Training(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CompactError + '_ {
    move |source| CompactError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A dictionary ready for compression.
pub struct Dictionary {
    hash: Hash,
    bytes: Vec<u8>,
    encoder: EncoderDictionary<'static>,
}

impl Dictionary {
    pub fn from_bytes(bytes: Vec<u8>) -> Dictionary {
        Dictionary {
            hash: dict_hash(&bytes),
            encoder: EncoderDictionary::copy(&bytes, LEVEL),
            bytes,
        }
    }

    /// Trains a dictionary of about `size` bytes on `samples` (entries).
    pub fn train(samples: &[Vec<u8>], size: usize) -> Result<Dictionary, CompactError> {
        let bytes = zstd::dict::from_samples(samples, size)
            .map_err(|e| CompactError::Training(e.to_string()))?;
        Ok(Dictionary::from_bytes(bytes))
    }

    pub fn hash(&self) -> &Hash {
        &self.hash
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Compresses each of `entries` on its own; returns (stored, original) bytes.
    pub fn measure(&self, entries: &[Vec<u8>]) -> Result<(u64, u64), CompactError> {
        let mut c = self.compressor()?;
        let mut out = Vec::new();
        let (mut after, mut before) = (0u64, 0u64);
        for e in entries {
            compress_into(&mut c, e, &mut out)?;
            after += out.len() as u64;
            before += e.len() as u64;
        }
        Ok((after, before))
    }

    fn compressor(&self) -> Result<zstd::bulk::Compressor<'_>, CompactError> {
        zstd::bulk::Compressor::with_prepared_dictionary(&self.encoder)
            .map_err(|e| CompactError::Zstd(e.to_string()))
    }
}

fn compress_into(
    c: &mut zstd::bulk::Compressor<'_>,
    entry: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), CompactError> {
    out.clear();
    out.reserve(zstd::zstd_safe::compress_bound(entry.len()));
    c.compress_to_buffer(entry, out)
        .map_err(|e| CompactError::Zstd(e.to_string()))?;
    Ok(())
}

/// A sealed version 1 segment read whole: header, footer and entries, the
/// entries checked against the footer's block roots.
pub struct PlainSegment {
    pub header: SegmentHeader,
    pub footer: Footer,
    pub entries: Vec<Vec<u8>>,
}

impl PlainSegment {
    pub fn read(path: &Path) -> Result<PlainSegment, CompactError> {
        let mut reader = FrameReader::open(path)?;
        if reader.header.format != FrameFormat::Plain {
            return Err(CompactError::NotPlain {
                path: path.to_owned(),
            });
        }
        let mut entries = Vec::new();
        while let Some(frame) = reader.next_frame()? {
            entries.push(frame.payload);
        }
        let header = reader.header.clone();
        let footer = match reader.into_tail() {
            Some(Tail::Sealed(f)) => *f,
            Some(Tail::Torn { offset, reason }) => {
                return Err(CompactError::NotSealed {
                    path: path.to_owned(),
                    reason: format!("bad bytes at offset {offset}: {reason}"),
                });
            }
            _ => {
                return Err(CompactError::NotSealed {
                    path: path.to_owned(),
                    reason: "no footer".into(),
                });
            }
        };
        check_entries(&footer, &entries).map_err(|reason| CompactError::NotSealed {
            path: path.to_owned(),
            reason,
        })?;
        Ok(PlainSegment {
            header,
            footer,
            entries,
        })
    }

    /// Sum of the entries' lengths.
    pub fn entry_bytes(&self) -> u64 {
        self.entries.iter().map(|e| e.len() as u64).sum()
    }
}

/// Entries hash to the footer's block roots and number its count.
fn check_entries(footer: &Footer, entries: &[Vec<u8>]) -> Result<(), String> {
    if entries.len() as u64 != footer.record.count {
        return Err(format!(
            "{} entries, the record counts {}",
            entries.len(),
            footer.record.count
        ));
    }
    let leaves: Vec<Hash> = entries.iter().map(|e| leaf_hash(e)).collect();
    let roots: Vec<Hash> = leaves
        .chunks(1 << footer.block_shift)
        .map(super::hash::merkle_root)
        .collect();
    if roots != footer.block_roots {
        return Err("entries do not hash to the footer's block roots".into());
    }
    if Footer::root_from_blocks(&roots) != footer.record.root {
        return Err("block roots do not hash to the record's root".into());
    }
    Ok(())
}

/// What one compaction did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactStats {
    pub entries: u64,
    /// Entry bytes (uncompressed payloads).
    pub entry_bytes: u64,
    /// Stored payload bytes after compression.
    pub stored_bytes: u64,
    /// File sizes before and after.
    pub file_before: u64,
    pub file_after: u64,
}

/// Writes the version 2 file of `seg` to `out` (created or replaced) and
/// fsyncs it. The dictionary must already be in the store.
pub fn write_compacted(
    seg: &PlainSegment,
    dict: &Dictionary,
    out: &Path,
) -> Result<CompactStats, CompactError> {
    let header = SegmentHeader {
        format: FrameFormat::Zstd { dict: dict.hash },
        ..seg.header.clone()
    };
    let mut bytes = header.to_bytes();
    let mut offsets = Vec::with_capacity(seg.entries.len());
    let mut leaves = Vec::with_capacity(seg.entries.len());
    let mut c = dict.compressor()?;
    let mut stored = Vec::new();
    let mut stats = CompactStats {
        entries: seg.entries.len() as u64,
        entry_bytes: seg.entry_bytes(),
        ..CompactStats::default()
    };
    for e in &seg.entries {
        compress_into(&mut c, e, &mut stored)?;
        offsets.push(bytes.len() as u64);
        encode_frame(&stored, &mut bytes);
        leaves.push(leaf_hash(e));
        stats.stored_bytes += stored.len() as u64;
    }
    let footer = Footer::build_indexed(seg.footer.record.clone(), &leaves, &offsets);
    if footer.record != seg.footer.record || footer.block_roots != seg.footer.block_roots {
        return Err(CompactError::Check {
            path: out.to_owned(),
            reason: "rebuilt footer differs from the sealed one".into(),
        });
    }
    let at = bytes.len() as u64;
    bytes.extend_from_slice(&footer.to_bytes(at));
    stats.file_after = bytes.len() as u64;
    let mut f = File::create(out).map_err(io_err(out))?;
    f.write_all(&bytes)
        .and_then(|_| f.sync_all())
        .map_err(io_err(out))?;
    Ok(stats)
}

/// Re-reads a compacted file through the normal reader and checks it
/// against the original: same header fields, every entry identical, the
/// same record and block roots, block offsets pointing at the frames.
pub fn check_compacted(
    path: &Path,
    seg: &PlainSegment,
    dicts: &DictStore,
) -> Result<(), CompactError> {
    let fail = |reason: String| CompactError::Check {
        path: path.to_owned(),
        reason,
    };
    let mut reader = FrameReader::open_with(path, dicts).map_err(|e| fail(e.to_string()))?;
    let h = &reader.header;
    if !matches!(h.format, FrameFormat::Zstd { .. })
        || (&h.origin, h.number, h.first_index, h.prev)
            != (
                &seg.header.origin,
                seg.header.number,
                seg.header.first_index,
                seg.header.prev,
            )
    {
        return Err(fail("header differs from the original".into()));
    }
    let mut payload = Vec::new();
    let mut offsets = Vec::with_capacity(seg.entries.len());
    let mut i = 0usize;
    while let Some(offset) = reader
        .next_frame_into(&mut payload)
        .map_err(|e| fail(e.to_string()))?
    {
        if seg.entries.get(i) != Some(&payload) {
            return Err(fail(format!("entry {i} differs from the original")));
        }
        offsets.push(offset);
        i += 1;
    }
    let footer = match reader.into_tail() {
        Some(Tail::Sealed(f)) => f,
        Some(Tail::Torn { offset, reason }) => {
            return Err(fail(format!("bad bytes at offset {offset}: {reason}")));
        }
        _ => return Err(fail("no footer".into())),
    };
    if footer.record != seg.footer.record || footer.block_roots != seg.footer.block_roots {
        return Err(fail("footer differs from the original".into()));
    }
    let starts: Vec<u64> = offsets
        .iter()
        .step_by(1 << footer.block_shift)
        .copied()
        .collect();
    if footer.block_offsets != starts {
        return Err(fail("block offsets do not point at the frames".into()));
    }
    let relative = offsets
        .iter()
        .enumerate()
        .map(|(i, &o)| o - starts[i >> footer.block_shift]);
    match &footer.frame_offsets {
        Some(index) if index.iter().map(|&o| u64::from(o)).eq(relative) => {}
        _ => return Err(fail("frame index does not point at the frames".into())),
    }
    // Independent of the comparison above: decoded entries re-hash to the
    // sealed block roots.
    check_entries(&footer, &seg.entries).map_err(fail)?;
    Ok(())
}

/// Compacts the sealed version 1 segment at `seg_path` with `dict` (stored
/// in `dicts` first if it is not there yet), through `tmp_path`
/// (`N.seg.compact`); returns what it did and the entries it read.
pub fn compact_segment(
    seg_path: &Path,
    tmp_path: &Path,
    dict: &Dictionary,
    dicts: &DictStore,
) -> Result<(CompactStats, PlainSegment), CompactError> {
    let seg = PlainSegment::read(seg_path)?;
    let file_before = fs::metadata(seg_path).map_err(io_err(seg_path))?.len();
    // The dictionary is durable before any segment names it.
    dicts.write(dict.bytes())?;
    let mut stats = write_compacted(&seg, dict, tmp_path)?;
    stats.file_before = file_before;
    if let Err(e) = check_compacted(tmp_path, &seg, dicts) {
        let _ = fs::remove_file(tmp_path);
        return Err(e);
    }
    fs::rename(tmp_path, seg_path).map_err(io_err(seg_path))?;
    if let Some(dir) = seg_path.parent() {
        sync_dir(dir).map_err(|e| CompactError::Check {
            path: seg_path.to_owned(),
            reason: format!("directory fsync after rename: {e}"),
        })?;
    }
    Ok((stats, seg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::keys::NoteSigner;
    use crate::ledger::log::{Ledger, LedgerEntry, LedgerPaths, SealPolicy};
    use crate::ledger::segment::read_block;
    use std::time::Duration;

    pub(crate) fn entry(i: u64) -> LedgerEntry {
        let json = format!(
            r#"{{"event":{{"action":"view","actor":{{"role":"clinician","user":"u{:04}"}},"category":"access","id":"evt-{i}","outcome":"success","patient":{{"id":"MRN-{:07}"}},"time":"2026-11-27T14:{:02}:{:02}.{:03}Z"}},"received":"2026-11-27T14:03:11.5Z","via":{{"kind":"import"}}}}"#,
            i % 97,
            (i * 7919) % 100_003,
            (i / 60) % 60,
            i % 60,
            (i * 7) % 1000
        );
        LedgerEntry {
            time_ms: crate::event::entry_time_ms(json.as_bytes()).unwrap(),
            bytes: json.into_bytes(),
        }
    }

    fn ledger(dir: &Path, n: u64, per: u64) -> LedgerPaths {
        let signer = NoteSigner::generate("test.example/log").unwrap();
        let policy = SealPolicy {
            max_events: per,
            max_age: Duration::from_secs(3600),
        };
        let (mut l, _) = Ledger::open(dir, signer, policy).unwrap();
        l.append(&(0..n).map(entry).collect::<Vec<_>>()).unwrap();
        l.close().unwrap();
        LedgerPaths::new(dir)
    }

    #[test]
    fn compaction_preserves_every_entry_and_every_root() {
        let dir = tempfile::tempdir().unwrap();
        let paths = ledger(dir.path(), 700, 300);
        let samples: Vec<Vec<u8>> = (0..700).map(|i| entry(i).bytes).collect();
        let dict = Dictionary::train(&samples, 4096).unwrap();
        let dicts = DictStore::new(&paths.dicts);
        for n in 0..3 {
            let path = paths.segment(n, true);
            let before = PlainSegment::read(&path).unwrap();
            let (stats, _) = compact_segment(&path, &paths.compacting(n), &dict, &dicts).unwrap();
            assert!(stats.file_after < stats.file_before / 2, "{stats:?}");
            assert!(!paths.compacting(n).exists());
            let mut reader = FrameReader::open(&path).unwrap();
            assert_eq!(
                reader.header.format,
                FrameFormat::Zstd { dict: *dict.hash() }
            );
            let mut got = Vec::new();
            while let Some(f) = reader.next_frame().unwrap() {
                got.push(f.payload);
            }
            assert_eq!(got, before.entries);
            let Some(Tail::Sealed(footer)) = reader.into_tail() else {
                panic!("not sealed")
            };
            assert_eq!(footer.record, before.footer.record);
            assert_eq!(footer.block_roots, before.footer.block_roots);
            // Random access by block, as proofs read.
            let codec = dicts
                .codec(FrameFormat::Zstd { dict: *dict.hash() })
                .unwrap();
            let mut file = File::open(&path).unwrap();
            for (b, &offset) in footer.block_offsets.iter().enumerate() {
                let count = (before.entries.len() - b * 64).min(64);
                let block = read_block(&path, &mut file, &codec, offset, count).unwrap();
                assert_eq!(block, before.entries[b * 64..b * 64 + count]);
            }
            // A v2 segment is not compacted again.
            assert!(matches!(
                PlainSegment::read(&path),
                Err(CompactError::NotPlain { .. })
            ));
        }
    }

    #[test]
    fn the_output_check_refuses_a_corrupted_result() {
        let dir = tempfile::tempdir().unwrap();
        let paths = ledger(dir.path(), 200, 200);
        let samples: Vec<Vec<u8>> = (0..200).map(|i| entry(i).bytes).collect();
        let dict = Dictionary::train(&samples, 2048).unwrap();
        let dicts = DictStore::new(&paths.dicts);
        dicts.write(dict.bytes()).unwrap();
        let path = paths.segment(0, true);
        let seg = PlainSegment::read(&path).unwrap();
        let tmp = paths.compacting(0);
        write_compacted(&seg, &dict, &tmp).unwrap();
        check_compacted(&tmp, &seg, &dicts).unwrap();

        // Entry 5 replaced by another validly framed compressed entry, the
        // footer keeping the sealed roots (offsets fixed up): refused.
        let good = std::fs::read(&tmp).unwrap();
        let mut forged = SegmentHeader {
            format: FrameFormat::Zstd { dict: *dict.hash() },
            ..seg.header.clone()
        }
        .to_bytes();
        let mut c = dict.compressor().unwrap();
        let mut stored = Vec::new();
        let mut offsets = Vec::new();
        for (i, e) in seg.entries.iter().enumerate() {
            let e = if i == 5 { entry(999).bytes } else { e.clone() };
            compress_into(&mut c, &e, &mut stored).unwrap();
            offsets.push(forged.len() as u64);
            encode_frame(&stored, &mut forged);
        }
        // Offsets and frame index for the forged frames; roots as sealed.
        let index = Footer::build_indexed(
            seg.footer.record.clone(),
            &vec![[0u8; 32]; offsets.len()],
            &offsets,
        );
        let footer = Footer {
            block_offsets: index.block_offsets,
            frame_offsets: index.frame_offsets,
            ..seg.footer.clone()
        };
        let at = forged.len() as u64;
        forged.extend_from_slice(&footer.to_bytes(at));
        std::fs::write(&tmp, &forged).unwrap();
        let e = check_compacted(&tmp, &seg, &dicts).unwrap_err();
        assert!(e.to_string().contains("entry 5 differs"), "{e}");
        // A flipped byte anywhere in the frames region: refused.
        let seg = PlainSegment::read(&path).unwrap();
        let hlen = SegmentHeader {
            format: FrameFormat::Zstd { dict: [0; 32] },
            ..seg.header.clone()
        }
        .to_bytes()
        .len();
        for at in [
            hlen + 3,
            hlen + 8,
            hlen + 20,
            good.len() / 2,
            good.len() - 30,
        ] {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            std::fs::write(&tmp, &bad).unwrap();
            let e = check_compacted(&tmp, &seg, &dicts).unwrap_err();
            assert!(matches!(e, CompactError::Check { .. }), "{e}");
        }
        // The output names a dictionary that is not the one stored.
        let wrong = Dictionary::train(&samples[..150], 1024).unwrap();
        write_compacted(&seg, &wrong, &tmp).unwrap();
        assert!(check_compacted(&tmp, &seg, &dicts).is_err());
        // And the original was never touched.
        assert_eq!(
            FrameReader::open(&path).unwrap().header.format,
            FrameFormat::Plain
        );
    }
}

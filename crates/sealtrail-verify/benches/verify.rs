//! Throughput of `verify_dir` against raw SHA-256 of the same segment bytes
//! (issue #14: verify stays >= 0.8x raw SHA-256).
//!
//! Run on a data directory written by sealtrail (for example by the ignored
//! test `make_bench_ledger` in tests/verifier_crate.rs):
//! `SEALTRAIL_VERIFY_BENCH_DIR=DIR SEALTRAIL_VERIFY_BENCH_VKEY=FILE cargo bench -p sealtrail-verify`
//! (add `--no-default-features` for the pure-Rust zstd decoder).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods)]

use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::Instant;

fn main() {
    let (Ok(dir), Ok(vkey)) =
        (std::env::var("SEALTRAIL_VERIFY_BENCH_DIR"), std::env::var("SEALTRAIL_VERIFY_BENCH_VKEY"))
    else {
        println!("skipped: set SEALTRAIL_VERIFY_BENCH_DIR and SEALTRAIL_VERIFY_BENCH_VKEY");
        return;
    };
    let dir = Path::new(&dir);
    let verifier = sealtrail_verify::NoteVerifier::from_vkey(
        std::fs::read_to_string(vkey).unwrap().trim_end(),
    )
    .unwrap();
    // Raw SHA-256 of every segment file, one core, files already in the page cache.
    let mut files: Vec<Vec<u8>> = Vec::new();
    for e in std::fs::read_dir(dir.join("ledger/segments")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "seg") {
            files.push(std::fs::read(p).unwrap());
        }
    }
    let bytes: usize = files.iter().map(Vec::len).sum();
    let mb = bytes as f64 / 1e6;
    // Best of 3 runs each: the machine may be shared.
    let best = |f: &mut dyn FnMut()| {
        (0..3)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .fold(f64::MAX, f64::min)
    };
    let whole = mb
        / best(&mut || {
            for f in &files {
                std::hint::black_box(Sha256::digest(f));
            }
        });
    // As benches/ledger.rs measures it: one SHA-256 per entry-sized piece.
    let sha = mb
        / best(&mut || {
            for f in &files {
                for piece in f.chunks(420) {
                    std::hint::black_box(Sha256::digest(piece));
                }
            }
        });
    println!(
        "{} segments, {mb:.1} MB; raw sha256 (1 core): {whole:.0} MB/s whole files, {sha:.0} MB/s per 420-byte entry",
        files.len()
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for threads in [1, 0] {
        let mut events = 0;
        let secs = best(&mut || {
            let opts = sealtrail_verify::VerifyOptions { threads, ..Default::default() };
            let r = sealtrail_verify::verify_dir(dir, &verifier, opts).unwrap();
            assert!(r.ok, "{:?}", r.errors.first());
            events = r.events;
        });
        let label = if threads == 1 {
            "1 thread".to_owned()
        } else {
            format!("default threads ({cores} cores)")
        };
        println!(
            "verify_dir, {label}: {:.0} events/s, {:.0} MB/s = {:.2}x raw sha256",
            events as f64 / secs,
            mb / secs,
            mb / secs / sha
        );
    }
    stages(dir, best);
}

/// Where one entry's time goes, on one core: the entries of the plain
/// segments, each stage run over all of them. The sum over two cores is
/// the ceiling for `verify_dir` with two threads, whatever the rest costs.
fn stages(dir: &Path, best: impl Fn(&mut dyn FnMut()) -> f64) {
    use sealtrail_verify::hash::{leaf_hash, node_hash};
    use sealtrail_verify::segment::{Codec, FrameReader};
    let mut entries: Vec<Vec<u8>> = Vec::new();
    for e in std::fs::read_dir(dir.join("ledger/segments")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "seg") {
            continue;
        }
        let len = std::fs::metadata(&p).unwrap().len();
        let file = std::io::BufReader::new(std::fs::File::open(&p).unwrap());
        let Ok(mut r) = FrameReader::open(file, len, |_| Ok(Codec::Plain)) else { continue };
        let mut payload = Vec::new();
        while let Ok(Some(_)) = r.next_frame_into(&mut payload) {
            entries.push(payload.clone());
        }
    }
    if entries.is_empty() {
        return;
    }
    let n = entries.len() as f64;
    let bytes = entries.iter().map(Vec::len).sum::<usize>() as f64 / n;
    let per = |f: &mut dyn FnMut()| best(f) * 1e9 / n;
    let leaf = per(&mut || entries.iter().for_each(|e| _ = std::hint::black_box(leaf_hash(e))));
    let h = [7u8; 32];
    let node =
        per(&mut || entries.iter().for_each(|_| _ = std::hint::black_box(node_hash(&h, &h))));
    let check = per(&mut || {
        entries
            .iter()
            .for_each(|e| _ = std::hint::black_box(sealtrail_verify::time::check_entry(e)))
    });
    let crc = per(&mut || entries.iter().for_each(|e| _ = std::hint::black_box(crc32c::crc32c(e))));
    println!(
        "per entry ({n:.0} entries of {bytes:.0} bytes, 1 core): leaf hash {leaf:.0} ns, node hash {node:.0} ns, \
         strict JSON check with event time {check:.0} ns, CRC-32C {crc:.0} ns; \
         two-core ceiling without reading and framing: {:.2}x raw sha256",
        2.0 * leaf / (leaf + node + check + crc)
    );
}

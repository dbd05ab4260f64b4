//! Each check of the crate on inputs made here, with tamper cases: Merkle
//! proofs against the RFC 9162 recursive definitions, signed notes and
//! cosignatures, segment headers and footers, both zstd decoders, tar.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods)]

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer, SigningKey};
use sealtrail_verify::hash::{Hash, leaf_hash, merkle_root, node_hash};
use sealtrail_verify::keys::{
    KeyChain, KeyHistory, TransitionRecord, check_entry_segment, parse_history,
};
use sealtrail_verify::merkle::{verify_consistency, verify_inclusion};
use sealtrail_verify::note::{self, NoteVerifier};
use sealtrail_verify::record::SegmentRecord;
use sealtrail_verify::segment::{Footer, SegmentHeader, ZstdDecoder};

fn leaves(n: u64) -> Vec<Hash> {
    (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
}

fn k(n: usize) -> usize {
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// RFC 9162 §2.1.3.1 PATH(m, D[n]).
fn path(m: usize, d: &[Hash]) -> Vec<Hash> {
    if d.len() <= 1 {
        return vec![];
    }
    let k = k(d.len());
    if m < k {
        let mut p = path(m, &d[..k]);
        p.push(merkle_root(&d[k..]));
        p
    } else {
        let mut p = path(m - k, &d[k..]);
        p.push(merkle_root(&d[..k]));
        p
    }
}

/// RFC 9162 §2.1.4.1 SUBPROOF(m, D[n], b).
fn subproof(m: usize, d: &[Hash], b: bool) -> Vec<Hash> {
    let n = d.len();
    if m == n {
        return if b { vec![] } else { vec![merkle_root(d)] };
    }
    let k = k(n);
    if m <= k {
        let mut p = subproof(m, &d[..k], b);
        p.push(merkle_root(&d[k..]));
        p
    } else {
        let mut p = subproof(m - k, &d[k..], false);
        p.push(merkle_root(&d[..k]));
        p
    }
}

#[test]
fn inclusion_proofs_verify_and_every_alteration_fails() {
    let all = leaves(40);
    for n in 1..=40usize {
        let d = &all[..n];
        let root = merkle_root(d);
        for m in 0..n {
            let p = path(m, d);
            verify_inclusion(m as u64, n as u64, &d[m], &p, &root).unwrap();
            // Any altered proof hash, wrong leaf, index or root fails. (The
            // size is not always bound by the path alone: the signed
            // checkpoint commits to it.)
            for i in 0..p.len() {
                let mut q = p.clone();
                q[i][0] ^= 1;
                assert!(verify_inclusion(m as u64, n as u64, &d[m], &q, &root).is_err());
            }
            let other = leaf_hash(b"x");
            assert!(verify_inclusion(m as u64, n as u64, &other, &p, &root).is_err());
            assert!(verify_inclusion(m as u64 + 1, n as u64, &d[m], &p, &root).is_err());
            assert!(
                verify_inclusion(m as u64, n as u64, &d[m], &p, &node_hash(&root, &root)).is_err()
            );
            let mut long = p.clone();
            long.push(root);
            assert!(verify_inclusion(m as u64, n as u64, &d[m], &long, &root).is_err());
            if !p.is_empty() {
                assert!(verify_inclusion(m as u64, n as u64, &d[m], &p[1..], &root).is_err());
            }
            // Hashes of the wrong length are refused, not truncated.
            assert!(verify_inclusion(m as u64, n as u64, &d[m][..31], &p, &root).is_err());
        }
        assert!(verify_inclusion(n as u64, n as u64, &d[0], &path(0, d), &root).is_err());
    }
    assert!(verify_inclusion(0, 0, &all[0], &[] as &[Hash], &all[0]).is_err());
}

#[test]
fn consistency_proofs_verify_and_every_alteration_fails() {
    let all = leaves(40);
    for n in 1..=40usize {
        let d = &all[..n];
        let root2 = merkle_root(d);
        for m in 1..=n {
            let root1 = merkle_root(&d[..m]);
            let p = if m == n { vec![] } else { subproof(m, d, true) };
            verify_consistency(m as u64, n as u64, &p, &root1, &root2).unwrap();
            for i in 0..p.len() {
                let mut q = p.clone();
                q[i][31] ^= 0x80;
                assert!(verify_consistency(m as u64, n as u64, &q, &root1, &root2).is_err());
            }
            let bad = node_hash(&root1, &root1);
            assert!(verify_consistency(m as u64, n as u64, &p, &bad, &root2).is_err());
            assert!(verify_consistency(m as u64, n as u64, &p, &root1, &bad).is_err());
            if m < n {
                assert!(verify_consistency(m as u64 + 1, n as u64, &p, &root1, &root2).is_err());
                assert!(verify_consistency(m as u64, n as u64, &p[1..], &root1, &root2).is_err());
            }
        }
        // From the empty tree nothing is proven; backwards is refused.
        assert!(verify_consistency(0, n as u64, &[root2], &root2, &root2).is_err());
        if n > 1 {
            assert!(verify_consistency(n as u64, 1, &[] as &[Hash], &root2, &all[0]).is_err());
        }
    }
}

fn vkey(name: &str, alg: u8, key: &SigningKey) -> String {
    let pk = key.verifying_key().to_bytes();
    let id = note::key_id(name, alg, &pk);
    let mut raw = vec![alg];
    raw.extend_from_slice(&pk);
    format!("{name}+{}+{}", sealtrail_verify::hex(&id), B64.encode(raw))
}

fn sig_line(name: &str, alg: u8, key: &SigningKey, prefix: &[u8], msg: &[u8]) -> String {
    let id = note::key_id(name, alg, &key.verifying_key().to_bytes());
    let mut blob = id.to_vec();
    blob.extend_from_slice(prefix);
    blob.extend_from_slice(&key.sign(msg).to_bytes());
    format!("\u{2014} {name} {}\n", B64.encode(blob))
}

const LOG: &str = "clinic.example/log";

fn body(size: u64) -> String {
    format!("{LOG}\n{size}\n{}\n", B64.encode(merkle_root(&leaves(size))))
}

#[test]
fn checkpoints_verify_and_any_altered_byte_fails() {
    let key = SigningKey::generate(&mut rand_core::OsRng);
    let other = SigningKey::generate(&mut rand_core::OsRng);
    let v = NoteVerifier::from_vkey(&vkey(LOG, 0x01, &key)).unwrap();
    assert_eq!(v.to_vkey(), vkey(LOG, 0x01, &key));
    let text = body(5);
    let note = format!(
        "{text}\n{}{}",
        sig_line("someone.else", 0x01, &other, b"", text.as_bytes()),
        sig_line(LOG, 0x01, &key, b"", text.as_bytes())
    );
    let cp = note::open_checkpoint(&note, &v).unwrap();
    assert_eq!((cp.size, cp.root), (5, merkle_root(&leaves(5))));
    for i in 0..note.len() {
        let mut b = note.clone().into_bytes();
        b[i] ^= 0x01;
        if let Ok(s) = String::from_utf8(b) {
            // Flipping a byte of the foreign signature line only breaks that line.
            let foreign = i > text.len()
                && i < note.len() - sig_line(LOG, 1, &key, b"", text.as_bytes()).len();
            if !foreign {
                assert!(note::open_checkpoint(&s, &v).is_err(), "byte {i}");
            }
        }
    }
    // Signed by another key only; by the right key over other text; not canonical.
    let by_other = format!("{text}\n{}", sig_line(LOG, 0x01, &other, b"", text.as_bytes()));
    assert!(note::open_checkpoint(&by_other, &v).is_err());
    for bad_text in [
        format!("{LOG}\n05\n{}\n", B64.encode([0u8; 32])),
        format!("other\n5\n{}\n", B64.encode([0u8; 32])),
    ] {
        let n = format!("{bad_text}\n{}", sig_line(LOG, 0x01, &key, b"", bad_text.as_bytes()));
        assert!(note::open_checkpoint(&n, &v).is_err(), "{bad_text}");
    }
    // Vkeys: wrong id, uppercase id, witness type for a log key, junk.
    let good = vkey(LOG, 0x01, &key);
    let parts: Vec<&str> = good.splitn(3, '+').collect();
    let mut bads = vec![
        format!("{}+00000000+{}", parts[0], parts[2]),
        vkey(LOG, 0x04, &key),
        "a+b".into(),
        format!("bad name+{}+{}", parts[1], parts[2]),
    ];
    // Upper case only differs when the random key id has a letter in it.
    if parts[1] != parts[1].to_uppercase() {
        bads.push(format!("{}+{}+{}", parts[0], parts[1].to_uppercase(), parts[2]));
    }
    for bad in bads {
        assert!(NoteVerifier::from_vkey(&bad).is_err(), "{bad}");
    }
    assert!(NoteVerifier::from_witness_vkey(&good).is_err());
}

#[test]
fn cosignatures_verify_and_forged_ones_fail() {
    let key = SigningKey::generate(&mut rand_core::OsRng);
    let wkey = SigningKey::generate(&mut rand_core::OsRng);
    let v = NoteVerifier::from_vkey(&vkey(LOG, 0x01, &key)).unwrap();
    let w = NoteVerifier::from_witness_vkey(&vkey("witness.example", 0x04, &wkey)).unwrap();
    let text = body(9);
    let t: u64 = 1_765_000_000;
    let cosig = |time: u64, signed_time: u64| {
        let msg = format!("cosignature/v1\ntime {signed_time}\n{text}");
        sig_line("witness.example", 0x04, &wkey, &time.to_be_bytes(), msg.as_bytes())
    };
    let log_line = sig_line(LOG, 0x01, &key, b"", text.as_bytes());
    let note = format!("{text}\n{log_line}{}", cosig(t, t));
    let cp = note::open_checkpoint(&note, &v).unwrap();
    let got = note::verify_cosignatures(&note, &cp, std::slice::from_ref(&w)).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].witness.as_str(), got[0].time), ("witness.example", t));
    // A cosignature whose time was changed after signing is forged.
    let forged = format!("{text}\n{log_line}{}", cosig(t + 1, t));
    assert!(note::verify_cosignatures(&forged, &cp, std::slice::from_ref(&w)).is_err());
    // Over another checkpoint: forged too.
    let other_text = body(10);
    let msg = format!("cosignature/v1\ntime {t}\n{other_text}");
    let moved = format!(
        "{text}\n{log_line}{}",
        sig_line("witness.example", 0x04, &wkey, &t.to_be_bytes(), msg.as_bytes())
    );
    assert!(note::verify_cosignatures(&moved, &cp, std::slice::from_ref(&w)).is_err());
    // Cosignatures of one note do not count for another checkpoint.
    let other_note =
        format!("{other_text}\n{}", sig_line(LOG, 0x01, &key, b"", other_text.as_bytes()));
    let other_cp = note::open_checkpoint(&other_note, &v).unwrap();
    assert!(note::verify_cosignatures(&note, &other_cp, std::slice::from_ref(&w)).is_err());
    // No cosignature by this witness: none counted.
    let plain = format!("{text}\n{log_line}");
    assert!(note::verify_cosignatures(&plain, &cp, &[w]).unwrap().is_empty());
}

fn header_bytes(version: u16, extra: &[u8]) -> Vec<u8> {
    let mut b = b"SEALSEG\0".to_vec();
    b.extend_from_slice(&version.to_be_bytes());
    b.extend_from_slice(&(LOG.len() as u16).to_be_bytes());
    b.extend_from_slice(LOG.as_bytes());
    b.extend_from_slice(&7u64.to_be_bytes());
    b.extend_from_slice(&700u64.to_be_bytes());
    b.extend_from_slice(&[9; 32]);
    b.extend_from_slice(extra);
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_be_bytes());
    b
}

#[test]
fn segment_headers_refuse_any_flipped_byte_or_truncation() {
    for (version, extra) in [(1u16, &[][..]), (2, &[5u8; 32][..]), (3, &[][..])] {
        let b = header_bytes(version, extra);
        let (h, len) = SegmentHeader::read(&mut &b[..]).unwrap();
        assert_eq!(
            (h.number, h.first_index, h.origin.as_str(), len as usize),
            (7, 700, LOG, b.len())
        );
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 0x20;
            assert!(SegmentHeader::read(&mut &c[..]).is_err(), "v{version} byte {i}");
        }
        for cut in 0..b.len() {
            assert!(SegmentHeader::read(&mut &b[..cut]).is_err());
        }
    }
    // Version 4 with a valid checksum: refused.
    let b = header_bytes(4, &[]);
    assert_eq!(SegmentHeader::read(&mut &b[..]).unwrap_err().kind(), "header");
}

fn footer_bytes(count: u64, indexed: bool, offset: u64) -> Vec<u8> {
    let blocks = count.div_ceil(64);
    let ls = leaves(count);
    let roots: Vec<Hash> = ls.chunks(64).map(merkle_root).collect();
    let rec = SegmentRecord {
        origin: LOG.into(),
        number: 0,
        first_index: 0,
        count,
        min_time_ms: 1,
        max_time_ms: 2,
        root: merkle_root(&roots),
        prev: [0; 32],
    }
    .to_bytes();
    let mut b = u32::MAX.to_be_bytes().to_vec();
    b.extend_from_slice(&(rec.len() as u16).to_be_bytes());
    b.extend_from_slice(&rec);
    b.push(if indexed { 0x86 } else { 6 });
    b.extend_from_slice(&(blocks as u32).to_be_bytes());
    for i in 0..blocks {
        b.extend_from_slice(&(100 + i * 64 * 20).to_be_bytes());
    }
    for r in &roots {
        b.extend_from_slice(r);
    }
    if indexed {
        for i in 0..count {
            b.extend_from_slice(&(((i % 64) * 20) as u32).to_be_bytes());
        }
    }
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_be_bytes());
    b.extend_from_slice(&offset.to_be_bytes());
    b.extend_from_slice(b"SEALEND\0");
    b
}

#[test]
fn footers_parse_and_refuse_any_flipped_byte() {
    for indexed in [false, true] {
        let b = footer_bytes(130, indexed, 5000);
        let f = Footer::from_bytes(&b, 5000).unwrap();
        assert_eq!((f.block_roots.len(), f.frame_offsets.is_some()), (3, indexed));
        assert!(Footer::from_bytes(&b, 5001).is_err());
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 1;
            assert!(Footer::from_bytes(&c, 5000).is_err(), "byte {i}");
        }
        assert!(Footer::from_bytes(&b[1..], 5000).is_err());
    }
}

#[test]
fn zstd_frames_decode_within_bounds() {
    let entry = br#"{"event":{"id":"a","time":"2026-11-27T14:03:11Z","action":"view"}}"#.to_vec();
    let samples: Vec<Vec<u8>> = (0..200)
        .map(|i| {
            format!(
                "{{\"event\":{{\"id\":\"e{i}\",\"time\":\"2026-11-27T14:03:{:02}Z\"}}}}",
                i % 60
            )
            .into_bytes()
        })
        .collect();
    let dict = zstd::dict::from_samples(&samples, 2048).unwrap();
    let mut out = Vec::new();
    let mut plain = ZstdDecoder::new(None).unwrap();
    let mut with_dict = ZstdDecoder::new(Some(&dict)).unwrap();
    let stored = zstd::bulk::compress(&entry, 3).unwrap();
    plain.decode(&stored, &mut out).unwrap();
    assert_eq!(out, entry);
    let mut c = zstd::bulk::Compressor::with_dictionary(3, &dict).unwrap();
    let stored_d = c.compress(&entry).unwrap();
    with_dict.decode(&stored_d, &mut out).unwrap();
    assert_eq!(out, entry);
    assert!(plain.decode(&stored_d, &mut out).is_err(), "needs its dictionary");
    // Over 1 MiB (declared, or streamed without a size), empty, garbage,
    // trailing bytes, two frames: refused.
    let big = vec![b'a'; (1 << 20) + 1];
    assert!(plain.decode(&zstd::bulk::compress(&big, 3).unwrap(), &mut out).is_err());
    let mut enc = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
    enc.include_contentsize(false).unwrap();
    std::io::Write::write_all(&mut enc, &big).unwrap();
    assert!(plain.decode(&enc.finish().unwrap(), &mut out).is_err());
    assert!(out.capacity() <= 4 << 20);
    let max = vec![b'a'; 1 << 20];
    plain.decode(&zstd::bulk::compress(&max, 3).unwrap(), &mut out).unwrap();
    assert_eq!(out.len(), 1 << 20);
    assert!(plain.decode(&zstd::bulk::compress(b"", 3).unwrap(), &mut out).is_err());
    assert!(plain.decode(b"not zstd at all", &mut out).is_err());
    let mut trailing = stored.clone();
    trailing.push(0);
    assert!(plain.decode(&trailing, &mut out).is_err());
    let mut two = stored.clone();
    two.extend_from_slice(&stored);
    assert!(plain.decode(&two, &mut out).is_err());
    // A frame asking for a huge window is refused before any allocation.
    let huge = [0x28, 0xB5, 0x2F, 0xFD, 0x00, 0xF8, 0x01, 0x00, 0x00, b'a'];
    assert!(plain.decode(&huge, &mut out).is_err());
    // Flipped bytes: refused or another entry, never a panic or > 1 MiB.
    for i in 0..stored_d.len() {
        let mut b = stored_d.clone();
        b[i] ^= 0x55;
        if with_dict.decode(&b, &mut out).is_ok() {
            assert!(!out.is_empty() && out.len() <= 1 << 20);
        }
    }
}

fn tar_of(members: &[(&str, &[u8], tar::EntryType)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data, kind) in members {
        let mut h = tar::Header::new_ustar();
        h.set_path(name).unwrap();
        h.set_size(data.len() as u64);
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn tar_reader_reads_members_and_refuses_what_a_bundle_cannot_hold() {
    use sealtrail_verify::tar::TarReader;
    use std::io::Read;
    let a = tar_of(&[
        ("a", b"hello", tar::EntryType::Regular),
        ("dir/b", &[7; 700], tar::EntryType::Regular),
    ]);
    let mut r = TarReader::new(&a[..]);
    let h = r.next_header().unwrap().unwrap();
    assert_eq!((h.name.as_slice(), h.size, h.is_regular()), (&b"a"[..], 5, true));
    let mut s = Vec::new();
    r.data(h.size).read_to_end(&mut s).unwrap();
    assert_eq!(s, b"hello");
    // The second member's data is skipped when not read.
    let h = r.next_header().unwrap().unwrap();
    assert_eq!((h.name.as_slice(), h.size), (&b"dir/b"[..], 700));
    assert!(r.next_header().unwrap().is_none());
    // A symlink is not a regular file.
    let l = tar_of(&[("a", b"", tar::EntryType::Symlink)]);
    assert!(!TarReader::new(&l[..]).next_header().unwrap().unwrap().is_regular());
    // A flipped header byte fails the checksum; data after the end is refused.
    let mut bad = a.clone();
    bad[3] ^= 1;
    assert!(TarReader::new(&bad[..]).next_header().is_err());
    let mut trailing = a.clone();
    trailing.push(1);
    let mut r = TarReader::new(&trailing[..]);
    while let Ok(Some(_)) = r.next_header() {}
    assert!(TarReader::new(&trailing[..]).next_header().is_ok());
    let mut r = TarReader::new(&trailing[..]);
    let mut last = r.next_header();
    while let Ok(Some(_)) = last {
        last = r.next_header();
    }
    assert!(last.is_err());
    // A header cut short is an error, not an end.
    assert!(TarReader::new(&a[..100]).next_header().is_err());
}

#[test]
fn records_parse_strictly() {
    let rec = SegmentRecord {
        origin: LOG.into(),
        number: 3,
        first_index: 300,
        count: 100,
        min_time_ms: 5,
        max_time_ms: 9,
        root: [1; 32],
        prev: [2; 32],
    };
    let b = rec.to_bytes();
    assert_eq!(SegmentRecord::from_bytes(&b).unwrap(), rec);
    assert_eq!(rec.end_index(), 400);
    assert_eq!(rec.leaf_hash(), leaf_hash(&b));
    for cut in 0..b.len() {
        assert!(SegmentRecord::from_bytes(&b[..cut]).is_err());
    }
    let mut long = b.clone();
    long.push(0);
    assert!(SegmentRecord::from_bytes(&long).is_err());
    let mut v2 = b.clone();
    v2[0] = 2;
    assert!(SegmentRecord::from_bytes(&v2).is_err());
    let empty = SegmentRecord { count: 0, ..rec.clone() }.to_bytes();
    assert!(SegmentRecord::from_bytes(&empty).is_err());
    let no_origin = SegmentRecord { origin: String::new(), ..rec }.to_bytes();
    assert!(SegmentRecord::from_bytes(&no_origin).is_err());
}

#[test]
fn key_records_and_encrypted_frames_refuse_any_alteration() {
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    use aes_gcm::{Aes256Gcm, Key, Nonce};
    use sealtrail_verify::atrest::{AtRestError, Kek};
    use sha2::Digest;
    let (kek_bytes, dek) = ([7u8; 32], [9u8; 32]);
    let kek = Kek::parse(&kek_bytes).unwrap();
    let b64 = format!("  {}\n", B64.encode(kek_bytes));
    assert_eq!(Kek::parse(b64.as_bytes()).unwrap().id(), kek.id());
    assert!(Kek::parse(b"short").is_err());
    let id: [u8; 8] = sha2::Sha256::new()
        .chain_update(b"sealtrail kek id v1\n")
        .chain_update(kek_bytes)
        .finalize()[..8]
        .try_into()
        .unwrap();
    assert_eq!(kek.id(), id);
    // A key record for segment 4, as LEDGER.md §4.9 lays it out.
    let mut rec = b"SEALKEY\0\x00\x01\x00\x00".to_vec();
    rec.extend_from_slice(&4u64.to_be_bytes());
    rec.extend_from_slice(&id);
    rec.extend_from_slice(&[3; 12]);
    let aead = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&kek_bytes));
    let wrapped =
        aead.encrypt(Nonce::from_slice(&[3; 12]), Payload { msg: &dek, aad: &rec[..28] }).unwrap();
    rec.extend_from_slice(&wrapped);
    let crc = crc32c::crc32c(&rec);
    rec.extend_from_slice(&crc.to_be_bytes());
    let cipher = kek.open_record(4, &rec).unwrap();
    assert!(kek.open_record(5, &rec).is_err(), "the key of another segment");
    let other = Kek::parse(&[8u8; 32]).unwrap();
    assert!(matches!(other.open_record(4, &rec), Err(AtRestError::WrongKek { .. })));
    for i in 0..rec.len() {
        let mut r = rec.clone();
        r[i] ^= 1;
        assert!(kek.open_record(4, &r).is_err(), "byte {i}");
    }
    // Altered bytes whose CRC was fixed up still fail to unwrap.
    let mut r = rec.clone();
    r[50] ^= 1;
    let crc = crc32c::crc32c(&r[..88]);
    r[88..].copy_from_slice(&crc.to_be_bytes());
    assert!(matches!(kek.open_record(4, &r), Err(AtRestError::Unwrap { .. })));
    // A frame: leaf || nonce || AES-256-GCM(DEK, entry, "SEALFRM\0" || number || leaf).
    let entry = b"{\"event\":{}}";
    let leaf = leaf_hash(entry);
    let frame_for = |number: u64| {
        let mut aad = b"SEALFRM\0".to_vec();
        aad.extend_from_slice(&number.to_be_bytes());
        aad.extend_from_slice(&leaf);
        let ct = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&dek))
            .encrypt(Nonce::from_slice(&[5; 12]), Payload { msg: entry, aad: &aad })
            .unwrap();
        let mut f = leaf.to_vec();
        f.extend_from_slice(&[5; 12]);
        f.extend_from_slice(&ct);
        f
    };
    let frame = frame_for(4);
    let mut out = Vec::new();
    cipher.open_frame(&frame, &mut out).unwrap();
    assert_eq!(out, entry);
    assert!(cipher.open_frame(&frame_for(5), &mut out).is_err(), "a frame of another segment");
    for i in 0..frame.len() {
        let mut f = frame.clone();
        f[i] ^= 1;
        assert!(cipher.open_frame(&f, &mut out).is_err(), "byte {i}");
    }
}

/// A signed note of `text` by each of `keys` (log key type).
fn signed(text: &str, keys: &[&SigningKey]) -> String {
    let lines: String = keys.iter().map(|k| sig_line(LOG, 0x01, k, b"", text.as_bytes())).collect();
    format!("{text}\n{lines}")
}

/// A transition record from `old` to `new` at size `size`, event `index`.
fn transition(old: &SigningKey, new: &SigningKey, size: u64, index: u64) -> TransitionRecord {
    let text = format!(
        "sealtrail key transition v1\n{LOG}\n{size}\n{index}\n{}\n{}\n",
        vkey(LOG, 0x01, old),
        vkey(LOG, 0x01, new)
    );
    let note = signed(&text, &[old, new]);
    let entry = serde_json::json!({
        "event": {"category": "admin", "action": "key_rotation", "attrs": {"key_transition": note}}
    })
    .to_string();
    TransitionRecord { note, checkpoint: signed(&body(size), &[old]), entry }
}

#[test]
fn key_histories_are_followed_and_every_alteration_fails() {
    let [a, b, c, d] = [(); 4].map(|()| SigningKey::generate(&mut rand_core::OsRng));
    let v = |k: &SigningKey| NoteVerifier::from_vkey(&vkey(LOG, 0x01, k)).unwrap();
    let history =
        KeyHistory { transitions: vec![transition(&a, &b, 2, 150), transition(&b, &c, 5, 400)] };
    let chain = KeyChain::follow(&v(&a), &history).unwrap();
    assert_eq!(chain.current(), &v(&c));
    assert_eq!(chain.handoffs().len(), 2);
    for (size, key) in [(1, &a), (2, &a), (3, &b), (5, &b), (6, &c), (99, &c)] {
        assert_eq!(chain.key_for(size).unwrap(), &v(key), "size {size}");
    }
    // Checkpoints: by the key of their size; a retired key's is named as such.
    assert_eq!(chain.open_checkpoint(&signed(&body(6), &[&c])).unwrap().size, 6);
    assert_eq!(chain.open_checkpoint(&signed(&body(4), &[&b])).unwrap().size, 4);
    let e = chain.open_checkpoint(&signed(&body(6), &[&a])).unwrap_err();
    assert_eq!(e.kind(), "retired_key");
    assert_eq!(
        chain.open_checkpoint(&signed(&body(6), &[&d])).unwrap_err().kind(),
        "checkpoint_signature"
    );
    // From a later key: earlier sizes are not trusted; an unknown key is refused.
    let from_b = KeyChain::follow(&v(&b), &history).unwrap();
    assert_eq!(from_b.handoffs().len(), 1);
    assert_eq!(from_b.key_for(2).unwrap_err().kind(), "before_trusted_key");
    assert_eq!(KeyChain::follow(&v(&d), &history).unwrap_err().kind(), "unknown_key");
    // No history: exactly the single-key check.
    let single = KeyChain::follow(&v(&a), &KeyHistory::default()).unwrap();
    assert!(single.open_checkpoint(&signed(&body(6), &[&c])).is_err());

    let follow =
        |t: Vec<TransitionRecord>| KeyChain::follow(&v(&a), &KeyHistory { transitions: t });
    let t0 = transition(&a, &b, 2, 150);
    let mut cases: Vec<(&str, Vec<TransitionRecord>, &str)> = vec![
        ("out of order", vec![transition(&b, &c, 5, 400), t0.clone()], "key_history"),
        ("sizes shrink", vec![t0.clone(), transition(&b, &c, 2, 400)], "key_history"),
        ("key reused", vec![t0.clone(), transition(&b, &a, 5, 400)], "key_history"),
        ("gap", vec![t0.clone(), transition(&c, &d, 5, 400)], "key_history"),
    ];
    let mut t = t0.clone();
    t.checkpoint = signed(&body(3), &[&a]);
    cases.push(("handoff checkpoint of another size", vec![t], "key_transition"));
    let mut t = t0.clone();
    t.checkpoint = signed(&body(2), &[&b]);
    cases.push(("handoff checkpoint by the new key", vec![t], "key_transition"));
    let mut t = t0.clone();
    t.entry = t.entry.replace("key_rotation", "login");
    cases.push(("entry of another action", vec![t], "key_transition_entry"));
    let mut t = t0.clone();
    t.entry = t.entry.replace("sealtrail key", "sealtrail  key");
    cases.push(("entry of another note", vec![t], "key_transition_entry"));
    let text = &t0.note[..t0.note.find("\n\n").unwrap() + 1];
    let mut t = t0.clone();
    t.note = signed(text, &[&b]);
    cases.push(("not signed by the old key", vec![t], "forged_transition"));
    let mut t = t0.clone();
    t.note = signed(text, &[&a]);
    cases.push(("not signed by the new key", vec![t], "key_history"));
    for (name, transitions, kind) in cases {
        assert_eq!(follow(transitions).unwrap_err().kind(), kind, "{name}");
    }
    // Any byte of the note flipped is refused.
    for i in 0..t0.note.len() {
        let mut b = t0.note.clone().into_bytes();
        b[i] ^= 0x01;
        if let Ok(note) = String::from_utf8(b) {
            let t = TransitionRecord { note, ..t0.clone() };
            assert!(follow(vec![t]).is_err(), "byte {i}");
        }
    }
    // The history file: strict form.
    let json = serde_json::to_string(&history).unwrap();
    assert_eq!(parse_history(json.as_bytes()).unwrap(), history);
    assert!(parse_history(json.replacen('{', "{\"x\":1,", 1).as_bytes()).is_err());
    assert!(parse_history(b"{}").is_err());
    // The transition's segment holds exactly its entry.
    let h = &chain.handoffs()[0];
    let rec = SegmentRecord {
        origin: LOG.into(),
        number: 1,
        first_index: 150,
        count: 1,
        min_time_ms: 0,
        max_time_ms: 0,
        root: leaf_hash(&h.entry),
        prev: [0; 32],
    };
    assert!(check_entry_segment(h, &rec).is_ok());
    assert!(check_entry_segment(h, &SegmentRecord { count: 2, ..rec.clone() }).is_err());
    assert!(check_entry_segment(h, &SegmentRecord { first_index: 149, ..rec.clone() }).is_err());
    assert!(check_entry_segment(h, &SegmentRecord { root: [0; 32], ..rec }).is_err());
}

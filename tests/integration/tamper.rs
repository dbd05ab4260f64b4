//! Tamper evidence: every kind of alteration an attacker without the signing
//! key can make is caught by `verify`, which names the segment (and the event
//! where that can be known).

use crate::util::*;
use proptest::prelude::*;
use sealtrail::ledger::hash::merkle_root;
use sealtrail::ledger::keys::NoteSigner;
use sealtrail::ledger::log::Ledger;
use sealtrail::ledger::note::{self, Checkpoint};
use sealtrail::ledger::proof::LedgerReader;
use sealtrail::ledger::segment::{Footer, FrameReader, SegmentHeader, encode_frame};
use sealtrail::ledger::verify::{VerifyReport, verify_data_dir};
use std::path::Path;

fn fresh(n: u64, per: u64) -> (tempfile::TempDir, Keys, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let data = dir.path().join("data");
    build_ledger(&data, &k, n, per);
    (dir, k, data)
}

fn verify(data: &Path, k: &Keys) -> VerifyReport {
    verify_data_dir(data, &k.verifier, None).unwrap()
}

fn kinds(r: &VerifyReport) -> Vec<&'static str> {
    r.errors.iter().map(|e| e.kind).collect()
}

fn flip(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_flipped_byte_in_an_entry_names_segment_and_event() {
    let (_d, k, data) = fresh(500, 100);
    let path = segment_path(&data, 2);
    // Find the frame of event 217 (segment 2 starts at 200) and flip a payload byte.
    let mut reader = FrameReader::open(&path).unwrap();
    let mut offset = 0;
    for _ in 0..=17 {
        offset = reader.next_frame().unwrap().unwrap().offset;
    }
    flip(&path, offset + 8 + 40);
    let r = verify(&data, &k);
    assert!(!r.ok);
    let e = r
        .errors
        .iter()
        .find(|e| e.kind == "entry_corrupt")
        .expect("entry_corrupt reported");
    assert_eq!(e.segment, Some(2));
    assert_eq!(e.index, Some(217));
}

#[test]
fn a_flipped_byte_in_header_footer_or_trailer_is_found() {
    for at in [3u64, 20] {
        let (_d, k, data) = fresh(300, 100);
        flip(&segment_path(&data, 1), at);
        let r = verify(&data, &k);
        assert!(!r.ok);
        assert!(r.errors.iter().any(|e| e.segment == Some(1)), "{r:?}");
    }
    for from_end in [1u64, 12, 30, 100] {
        let (_d, k, data) = fresh(300, 100);
        let path = segment_path(&data, 1);
        let len = std::fs::metadata(&path).unwrap().len();
        flip(&path, len - from_end);
        let r = verify(&data, &k);
        assert!(!r.ok, "flip at -{from_end}");
        assert!(r.errors.iter().any(|e| e.segment == Some(1)), "{r:?}");
    }
}

#[test]
fn a_deleted_segment_is_found() {
    let (_d, k, data) = fresh(500, 100);
    std::fs::remove_file(segment_path(&data, 2)).unwrap();
    let r = verify(&data, &k);
    assert!(!r.ok);
    assert!(
        r.errors
            .iter()
            .any(|e| e.kind == "missing_segment" && e.segment == Some(2)),
        "{r:?}"
    );

    let (_d, k, data) = fresh(500, 100);
    std::fs::remove_file(segment_path(&data, 4)).unwrap();
    let r = verify(&data, &k);
    assert!(!r.ok);
    assert!(
        r.errors
            .iter()
            .any(|e| e.kind == "truncated" && e.segment == Some(4)),
        "{r:?}"
    );
}

#[test]
fn two_swapped_segments_are_found() {
    let (_d, k, data) = fresh(500, 100);
    let (a, b) = (segment_path(&data, 1), segment_path(&data, 3));
    let tmp = data.join("swap");
    std::fs::rename(&a, &tmp).unwrap();
    std::fs::rename(&b, &a).unwrap();
    std::fs::rename(&tmp, &b).unwrap();
    let r = verify(&data, &k);
    assert!(!r.ok);
    assert!(
        r.errors
            .iter()
            .any(|e| e.kind == "misplaced" && e.segment == Some(1)),
        "{r:?}"
    );
    assert!(
        r.errors
            .iter()
            .any(|e| e.kind == "misplaced" && e.segment == Some(3)),
        "{r:?}"
    );
}

#[test]
fn a_truncated_tail_is_found_against_an_older_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let data = dir.path().join("data");
    build_ledger(&data, &k, 300, 100);
    let early = LedgerReader::open(&data)
        .unwrap()
        .checkpoint_text()
        .to_owned();
    {
        let (mut ledger, _) = Ledger::open(&data, k.signer(), policy(100)).unwrap();
        ledger
            .append(&(300..500).map(entry).collect::<Vec<_>>())
            .unwrap();
        ledger.close().unwrap();
    }
    // The auditor kept this newer checkpoint.
    let kept = LedgerReader::open(&data)
        .unwrap()
        .checkpoint_text()
        .to_owned();
    // The attacker rolls the log back to its earlier, genuinely signed state.
    for n in 3..5 {
        std::fs::remove_file(segment_path(&data, n)).unwrap();
    }
    std::fs::write(data.join("ledger/checkpoint"), &early).unwrap();
    let plain = verify(&data, &k);
    assert!(
        plain.ok,
        "the rolled-back state is self-consistent: {plain:?}"
    );
    let r = verify_data_dir(&data, &k.verifier, Some(&kept)).unwrap();
    assert!(!r.ok);
    let e = r
        .errors
        .iter()
        .find(|e| e.kind == "truncated")
        .expect("truncation reported");
    assert_eq!(e.segment, Some(3));
}

/// Rewrites event `index` of segment `n` and recomputes everything that can be
/// recomputed without the signing key: block roots, segment root, footer.
fn replace_event_and_reseal(data: &Path, n: u64, index: u64) {
    let path = segment_path(data, n);
    let mut reader = FrameReader::open(&path).unwrap();
    let header: SegmentHeader = reader.header.clone();
    let mut payloads = Vec::new();
    while let Some(f) = reader.next_frame().unwrap() {
        payloads.push(f.payload);
    }
    let footer = match reader.into_tail() {
        Some(sealtrail::ledger::segment::Tail::Sealed(f)) => f,
        other => panic!("not sealed: {other:?}"),
    };
    let i = (index - header.first_index) as usize;
    let forged = String::from_utf8(payloads[i].clone())
        .unwrap()
        .replace("u00", "u99");
    assert_ne!(forged.as_bytes(), payloads[i].as_slice());
    payloads[i] = forged.into_bytes();
    let mut bytes = header.to_bytes();
    let mut offsets = Vec::new();
    let mut leaves = Vec::new();
    for p in &payloads {
        offsets.push(bytes.len() as u64);
        encode_frame(p, &mut bytes);
        leaves.push(sealtrail::ledger::hash::leaf_hash(p));
    }
    let new_footer = Footer::build(footer.record.clone(), &leaves, &offsets);
    assert_eq!(new_footer.record.root, merkle_root(&leaves));
    let at = bytes.len() as u64;
    bytes.extend_from_slice(&new_footer.to_bytes(at));
    std::fs::write(&path, bytes).unwrap();
}

#[test]
fn an_event_replaced_with_its_segment_resealed_is_found() {
    // In a middle segment: the next segment's chain and the checkpoint break.
    let (_d, k, data) = fresh(500, 100);
    replace_event_and_reseal(&data, 1, 150);
    let r = verify(&data, &k);
    assert!(!r.ok);
    assert!(kinds(&r).contains(&"checkpoint_mismatch"), "{r:?}");
    assert!(
        r.errors
            .iter()
            .any(|e| e.segment == Some(1) && e.kind == "record_rewritten"),
        "{r:?}"
    );
    assert!(
        r.errors
            .iter()
            .any(|e| e.segment == Some(2) && e.kind == "chain"),
        "{r:?}"
    );

    // In the last segment, with the derived tree files rebuilt too: only the
    // signature can catch it, and it does.
    let (_d, k, data) = fresh(500, 100);
    replace_event_and_reseal(&data, 4, 420);
    std::fs::remove_dir_all(data.join("ledger/tree")).unwrap();
    std::fs::remove_file(data.join("ledger/segments.idx")).unwrap();
    let r = verify(&data, &k);
    assert!(!r.ok);
    assert!(kinds(&r).contains(&"checkpoint_mismatch"), "{r:?}");
}

#[test]
fn a_checkpoint_signed_by_an_unknown_key_is_refused() {
    let (_d, k, data) = fresh(200, 100);
    let text = LedgerReader::open(&data)
        .unwrap()
        .checkpoint_text()
        .to_owned();
    let body = &text[..text.find("\n\n").unwrap() + 1];
    let cp = Checkpoint::parse_body(body).unwrap();
    // Same name, different key: an impostor signing the genuine tree head.
    let impostor = NoteSigner::generate(ORIGIN).unwrap();
    let forged: String = note::sign_checkpoint(&cp, &impostor).unwrap();
    std::fs::write(data.join("ledger/checkpoint"), forged).unwrap();
    let r = verify(&data, &k);
    assert!(!r.ok);
    assert_eq!(kinds(&r), vec!["checkpoint_signature"]);
}

/// Every file that carries the log's content or its signature.
fn ledger_files(data: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(data.join("ledger/segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.push(data.join("ledger/checkpoint"));
    files.sort();
    files
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    /// Random logs, one random byte changed in a random sealed file: verify fails.
    #[test]
    fn any_single_byte_corruption_is_detected(
        events in 1u64..300,
        per_segment in 4u64..80,
        file_pick in any::<prop::sample::Index>(),
        byte_pick in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let (_d, k, data) = fresh(events, per_segment);
        prop_assert!(verify(&data, &k).ok);
        let files = ledger_files(&data);
        let path = file_pick.get(&files);
        let mut bytes = std::fs::read(path).unwrap();
        let at = byte_pick.index(bytes.len());
        bytes[at] ^= xor;
        std::fs::write(path, &bytes).unwrap();
        let r = verify(&data, &k);
        prop_assert!(!r.ok, "corruption at {}:{} went unnoticed", path.display(), at);
    }
}

/// Appends `n` events to `data` with a key of the attacker's own: the
/// genuine checkpoint is moved aside so the writer opens, then put back.
fn append_forged_tail(data: &Path, n: u64, per: u64) {
    let genuine = std::fs::read(data.join("ledger/checkpoint")).unwrap();
    std::fs::remove_file(data.join("ledger/checkpoint")).unwrap();
    let own = NoteSigner::generate(ORIGIN).unwrap();
    let (mut ledger, _) = Ledger::open(data, own, policy(per)).unwrap();
    let first = ledger.next_index();
    let entries: Vec<_> = (first..first + n).map(entry).collect();
    for chunk in entries.chunks(7) {
        ledger.append(chunk).unwrap();
    }
    ledger.close().unwrap();
    std::fs::write(data.join("ledger/checkpoint"), genuine).unwrap();
}

#[test]
fn a_forged_tail_behind_the_genuine_checkpoint_fails_and_is_not_counted() {
    let (_d, k, data) = fresh(300, 100);
    append_forged_tail(&data, 250, 100);
    let r = verify(&data, &k);
    assert!(!r.ok, "{r:?}");
    assert_eq!(kinds(&r), vec!["unsigned_tail"], "{r:?}");
    // Only the 300 events the genuine signature covers are verified.
    assert_eq!(r.events, 300);
    assert_eq!(r.uncovered_segments, 3);
    let tail = &r.unverified[0];
    assert_eq!(
        (tail.first_segment, tail.end_segment, tail.first_index, tail.end_index),
        (3, 6, 300, 550)
    );
    assert_eq!(tail.reason, "uncovered");

    // The CLI: exit 1, and --json lists the unverified range.
    let out = std::process::Command::new(bin())
        .args(["verify", "--json", "--data"])
        .arg(&data)
        .arg("--vkey")
        .arg(&k.vkey)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["ok"], false);
    assert_eq!(json["events"], 300);
    assert_eq!(json["unverified"][0]["first_index"], 300);
    assert_eq!(json["unverified"][0]["end_index"], 550);
}

#[test]
fn one_segment_sealed_before_a_crash_could_sign_is_a_warning_not_counted() {
    let (_d, k, data) = fresh(300, 100);
    // One segment past the checkpoint: what a crash between seal and sign leaves.
    append_forged_tail(&data, 100, 100);
    let r = verify(&data, &k);
    assert!(r.ok, "{r:?}");
    assert_eq!(r.events, 300);
    assert_eq!(r.uncovered_segments, 1);
    assert_eq!(r.unverified.len(), 1);
    assert!(r.warnings.iter().any(|w| w.contains("not counted")), "{r:?}");
}

#[test]
fn a_forged_tail_is_found_with_since_too() {
    let (_d, k, data) = fresh(300, 100);
    let older = std::fs::read_to_string(data.join("ledger/checkpoint")).unwrap();
    append_forged_tail(&data, 250, 100);
    let r = verify_data_dir(&data, &k.verifier, Some(&older)).unwrap();
    assert!(!r.ok);
    assert!(kinds(&r).contains(&"unsigned_tail"), "{r:?}");
    assert_eq!(r.events, 300);
}

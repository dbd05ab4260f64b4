//! Appending, sealing, proofs and verification on a healthy ledger.

use crate::util::*;
use sealtrail::ledger::log::{Ledger, LedgerError};
use sealtrail::ledger::proof::{LedgerReader, verify_consistency_proof, verify_inclusion_proof};
use sealtrail::ledger::verify::verify_data_dir;
use sealtrail::ledger::writer::LedgerWriter;

#[test]
fn appended_events_seal_verify_and_prove() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let data = dir.path().join("data");
    build_ledger(&data, &k, 1000, 100);

    let report = verify_data_dir(&data, &k.verifier, None).unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.segments, 10);
    assert_eq!(report.events, 1000);
    assert_eq!(report.checkpoint.as_ref().unwrap().size, 10);
    assert_eq!(report.unsealed_events, 0);
    assert!(report.first_time.is_some() && report.last_time.is_some());

    let reader = LedgerReader::open(&data).unwrap();
    for index in (0..1000).step_by(37).chain([0, 63, 64, 99, 100, 999]) {
        let proof = reader.inclusion_proof(index).unwrap();
        let ok = verify_inclusion_proof(&proof, &k.verifier).unwrap();
        assert_eq!(ok.index(), index);
        assert_eq!(ok.entry(), entry(index).bytes.as_slice());
    }
    assert!(reader.inclusion_proof(1000).is_err());
    for old in 1..=10 {
        let proof = reader.consistency_proof(old).unwrap();
        verify_consistency_proof(&proof, &k.verifier, None).unwrap();
    }
}

#[test]
fn a_proof_for_one_event_does_not_prove_another() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let data = dir.path().join("data");
    build_ledger(&data, &k, 300, 130);
    let reader = LedgerReader::open(&data).unwrap();
    let mut proof = reader.inclusion_proof(5).unwrap();
    proof.entry = String::from_utf8(entry(6).bytes).unwrap();
    assert!(verify_inclusion_proof(&proof, &k.verifier).is_err());
    let mut proof = reader.inclusion_proof(5).unwrap();
    proof.index = 6;
    proof.segment.leaf_index = 6;
    assert!(verify_inclusion_proof(&proof, &k.verifier).is_err());
    let mut proof = reader.inclusion_proof(200).unwrap();
    proof.log.path.pop();
    assert!(verify_inclusion_proof(&proof, &k.verifier).is_err());
    let other = keys(&dir.path().join("other"));
    let proof = reader.inclusion_proof(200).unwrap();
    assert!(verify_inclusion_proof(&proof, &other.verifier).is_err());
}

#[test]
fn reopening_continues_the_chain_and_old_checkpoints_stay_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let data = dir.path().join("data");
    build_ledger(&data, &k, 250, 64);
    let old = LedgerReader::open(&data)
        .unwrap()
        .checkpoint_text()
        .to_owned();
    {
        let (mut ledger, recovery) = Ledger::open(&data, k.signer(), policy(64)).unwrap();
        assert_eq!(recovery.open_entries, 0);
        assert_eq!(ledger.next_index(), 250);
        let more: Vec<_> = (250..400).map(entry).collect();
        assert_eq!(ledger.append(&more).unwrap(), 250..400);
        ledger.close().unwrap();
    }
    let report = verify_data_dir(&data, &k.verifier, Some(&old)).unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.events, 400);
    assert_eq!(report.since.as_ref().unwrap().size, 4);
    let proof = LedgerReader::open(&data)
        .unwrap()
        .consistency_proof(4)
        .unwrap();
    verify_consistency_proof(&proof, &k.verifier, Some(&old)).unwrap();
}

#[test]
fn a_second_writer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let data = dir.path().join("data");
    let (_first, _) = Ledger::open(&data, k.signer(), policy(10)).unwrap();
    match Ledger::open(&data, k.signer(), policy(10)) {
        Err(LedgerError::Locked(p)) => assert_eq!(p, data),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("second writer was allowed"),
    }
}

#[test]
fn a_key_for_another_log_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let data = dir.path().join("data");
    build_ledger(&data, &k, 10, 4);
    let other = sealtrail::ledger::keys::NoteSigner::generate("other.example/log").unwrap();
    assert!(matches!(
        Ledger::open(&data, other, policy(4)),
        Err(LedgerError::OriginMismatch { .. })
    ));
}

#[test]
fn group_commit_acknowledges_every_batch_once_durable() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let data = dir.path().join("data");
    let (ledger, _) = Ledger::open(&data, k.signer(), policy(500)).unwrap();
    let writer = LedgerWriter::spawn(ledger, 16).unwrap();
    let mut threads = Vec::new();
    for t in 0..8u64 {
        let handle = writer.handle();
        threads.push(std::thread::spawn(move || {
            let mut got = Vec::new();
            for b in 0..25u64 {
                let batch: Vec<_> = (0..10).map(|i| entry(t * 1000 + b * 10 + i)).collect();
                let a = handle.append_blocking(batch).unwrap();
                assert_eq!(a.count, 10);
                got.push(a.first_index);
            }
            got
        }));
    }
    let mut firsts: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    firsts.sort_unstable();
    // 200 batches of 10, each a distinct contiguous range.
    assert_eq!(firsts, (0..200).map(|b| b * 10).collect::<Vec<_>>());
    writer.shutdown().unwrap();
    let report = verify_data_dir(&data, &k.verifier, None).unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.events, 2000);
    assert_eq!(report.segments, 4);
}

#[test]
fn sealing_by_age_happens_without_new_appends() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let data = dir.path().join("data");
    let policy = sealtrail::ledger::log::SealPolicy {
        max_events: 1000,
        max_age: std::time::Duration::from_millis(20),
    };
    let (ledger, _) = Ledger::open(&data, k.signer(), policy).unwrap();
    let writer = LedgerWriter::spawn(ledger, 4).unwrap();
    writer
        .handle()
        .append_blocking((0..3).map(entry).collect())
        .unwrap();
    // Wait on the condition (a checkpoint covering the events), not a fixed sleep.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Ok(r) = LedgerReader::open(&data)
            && r.checkpoint().size == 1
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "segment was not sealed by age"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    writer.shutdown().unwrap();
}

#[test]
fn recovery_cuts_a_torn_tail_but_keeps_every_durable_entry() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let data = dir.path().join("data");
    let open_path = data.join("ledger/segments/000000000000.open");
    {
        let (mut ledger, _) = Ledger::open(&data, k.signer(), policy(1000)).unwrap();
        ledger
            .append(&(0..10).map(entry).collect::<Vec<_>>())
            .unwrap();
        // Dropped without close: the process "dies" with an open segment.
    }
    // A write torn mid-frame: a length and part of a payload.
    let mut bytes = std::fs::read(&open_path).unwrap();
    let intact = bytes.len();
    bytes.extend_from_slice(&[0, 0, 1, 44, 1, 2, 3, 4, b'{', b'"']);
    std::fs::write(&open_path, &bytes).unwrap();
    let (ledger, recovery) = Ledger::open(&data, k.signer(), policy(1000)).unwrap();
    assert_eq!(recovery.open_entries, 10);
    assert_eq!(recovery.torn_bytes_cut, 10);
    assert_eq!(
        std::fs::metadata(&open_path).unwrap().len() as usize,
        intact
    );
    assert_eq!(ledger.next_index(), 10);
    ledger.close().unwrap();
    let report = verify_data_dir(&data, &k.verifier, None).unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.events, 10);
}

#[test]
fn recovery_refuses_to_cut_acknowledged_entries_behind_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let data = dir.path().join("data");
    let open_path = data.join("ledger/segments/000000000000.open");
    {
        let (mut ledger, _) = Ledger::open(&data, k.signer(), policy(1000)).unwrap();
        ledger
            .append(&(0..10).map(entry).collect::<Vec<_>>())
            .unwrap();
    }
    // Corrupt the payload of entry 3; entries 4.. are intact behind it.
    let mut reader = sealtrail::ledger::segment::FrameReader::open(&open_path).unwrap();
    let mut offset = 0;
    for _ in 0..4 {
        offset = reader.next_frame().unwrap().unwrap().offset;
    }
    let mut bytes = std::fs::read(&open_path).unwrap();
    bytes[offset as usize + 20] ^= 0xff;
    std::fs::write(&open_path, &bytes).unwrap();
    match Ledger::open(&data, k.signer(), policy(1000)) {
        Err(LedgerError::Damaged(msg)) => assert!(msg.contains("refusing"), "{msg}"),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("corrupt open segment was silently cut"),
    }
}

#[test]
fn recovery_recreates_a_segment_whose_header_was_torn() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let data = dir.path().join("data");
    build_ledger(&data, &k, 20, 10);
    // The crash hit while the next open segment's header was being written.
    let open_path = data.join("ledger/segments/000000000002.open");
    let bytes = std::fs::read(&open_path).unwrap();
    std::fs::write(&open_path, &bytes[..bytes.len() / 2]).unwrap();
    let (mut ledger, recovery) = Ledger::open(&data, k.signer(), policy(10)).unwrap();
    assert!(recovery.torn_bytes_cut > 0);
    assert_eq!(ledger.append(&[entry(20)]).unwrap(), 20..21);
    ledger.close().unwrap();
    assert!(verify_data_dir(&data, &k.verifier, None).unwrap().ok);
}

#[test]
fn a_lagging_checkpoint_is_resigned_only_over_unchanged_history() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let data = dir.path().join("data");
    build_ledger(&data, &k, 100, 25);
    let at_four = LedgerReader::open(&data)
        .unwrap()
        .checkpoint_text()
        .to_owned();
    {
        let (mut ledger, _) = Ledger::open(&data, k.signer(), policy(25)).unwrap();
        ledger
            .append(&(100..150).map(entry).collect::<Vec<_>>())
            .unwrap();
        ledger.close().unwrap();
    }
    // A crash between sealing and signing leaves an older checkpoint behind.
    std::fs::write(data.join("ledger/checkpoint"), &at_four).unwrap();
    {
        let (ledger, recovery) = Ledger::open(&data, k.signer(), policy(25)).unwrap();
        assert!(recovery.resigned_checkpoint);
        assert!(ledger.checkpoint().lines().nth(1) == Some("6"));
    }
    // With the history under the old checkpoint changed, the writer refuses to sign.
    std::fs::write(data.join("ledger/checkpoint"), &at_four).unwrap();
    // (the root over the first four records is the level-2 node 0)
    let level2 = data.join("ledger/tree/level-02");
    let mut bytes = std::fs::read(&level2).unwrap();
    bytes[16 + 5] ^= 1; // first node, after the 16-byte header
    std::fs::write(&level2, bytes).unwrap();
    match Ledger::open(&data, k.signer(), policy(25)) {
        Err(LedgerError::Damaged(msg)) => {
            assert!(msg.contains("do not match the signed checkpoint"), "{msg}")
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("signed over rewritten history"),
    }
}

#[test]
fn a_consistency_proof_must_not_misstate_its_roots() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let data = dir.path().join("data");
    build_ledger(&data, &k, 100, 10);
    let reader = LedgerReader::open(&data).unwrap();
    let good = reader.consistency_proof(3).unwrap();
    let mut bad = good.clone();
    bad.new_root = good.old_root.clone();
    assert!(verify_consistency_proof(&bad, &k.verifier, None).is_err());
    let mut bad = good.clone();
    bad.old_size = 4;
    assert!(verify_consistency_proof(&bad, &k.verifier, None).is_err());
    verify_consistency_proof(&good, &k.verifier, None).unwrap();
}

use super::*;
use crate::ledger::key_history::{
    KeyHistory, crate_key, load_history, sign_transition, write_history,
};
use crate::ledger::log::LedgerPaths;
use crate::ledger::note::{self, Checkpoint};
use crate::ledger::tree_store::TreeStore;
use crate::ledger::verify::{VerifyReport, verify_data_dir};

const ORIGIN: &str = "rotate.example/log";

fn key(seed: u8) -> NoteSigner {
    NoteSigner::from_seed(ORIGIN, &[seed; 32]).unwrap()
}

/// Appends `n` events in segments of two, with `signer`, and closes.
fn write(data: &Path, signer: NoteSigner, n: u64) {
    let (mut ledger, _) = Ledger::open(data, signer, SealPolicy::default()).unwrap();
    for i in 0..n {
        let mut e = Event::new(
            Timestamp::now(),
            Category::Admin,
            "config_change",
            Outcome::Success,
        );
        e.message = Some(format!("event {i}"));
        let entry = Entry {
            received: Timestamp::now(),
            via: Via {
                kind: "cli".into(),
                peer: None,
                principal: None,
            },
            event: e,
            enriched: None,
        };
        ledger
            .append(&[LedgerEntry {
                bytes: entry.canonical_bytes(),
                time_ms: entry.event.time.unix_ms(),
            }])
            .unwrap();
        if i % 2 == 1 {
            ledger.seal().unwrap();
        }
    }
    ledger.close().unwrap();
}

fn kinds(r: &VerifyReport) -> Vec<&'static str> {
    r.errors.iter().map(|i| i.kind).collect()
}

/// 5 events under k1, rotation to k2, 4 events under k2.
fn rotated() -> (tempfile::TempDir, Rotation) {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), key(1), 5);
    let rotation = rotate_signing_key(dir.path(), key(1), &key(2), SealPolicy::default()).unwrap();
    write(dir.path(), key(2), 4);
    (dir, rotation)
}

#[test]
fn a_rotated_log_verifies_from_the_first_and_from_the_new_key() {
    let (dir, rotation) = rotated();
    // 5 events in 3 segments, then the transition alone in segment 3.
    assert_eq!((rotation.size, rotation.index), (4, 5));
    for anchor in [key(1), key(2)] {
        let r = verify_data_dir(dir.path(), &anchor.verifier(), None).unwrap();
        assert!(r.ok, "{:?}", r.errors);
        assert_eq!(r.events, 10, "every event, the transition too");
        assert_eq!(r.segments, 6);
        assert_eq!(r.uncovered_segments, 0);
    }
    let r = verify_data_dir(dir.path(), &key(1).verifier(), None).unwrap();
    assert_eq!(r.key_transitions.len(), 1);
    assert_eq!(r.key_transitions[0].size, 4);
    assert_eq!(r.key_transitions[0].new_key_id, rotation.new_key_id);
    let r = verify_data_dir(dir.path(), &key(2).verifier(), None).unwrap();
    assert!(r.key_transitions.is_empty(), "trust starts after it");
    let r = verify_data_dir(dir.path(), &key(3).verifier(), None).unwrap();
    assert!(!r.ok);
    assert!(kinds(&r).contains(&"unknown_key"), "{:?}", r.errors);
}

#[test]
fn an_old_checkpoint_given_with_since_is_checked_with_the_old_key() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), key(1), 4);
    let before = std::fs::read_to_string(LedgerPaths::new(dir.path()).checkpoint).unwrap();
    rotate_signing_key(dir.path(), key(1), &key(2), SealPolicy::default()).unwrap();
    write(dir.path(), key(2), 2);
    let r = verify_data_dir(dir.path(), &key(1).verifier(), Some(&before)).unwrap();
    assert!(r.ok, "{:?}", r.errors);
    assert_eq!(r.since.unwrap().size, 2);
    // Trust starting at the new key cannot vouch for the old checkpoint.
    let r = verify_data_dir(dir.path(), &key(2).verifier(), Some(&before)).unwrap();
    assert!(kinds(&r).contains(&"before_trusted_key"), "{:?}", r.errors);
}

#[test]
fn the_writer_refuses_the_retired_key() {
    let (dir, rotation) = rotated();
    let Err(e) = Ledger::open(dir.path(), key(1), SealPolicy::default()) else {
        panic!("the old key opened the ledger");
    };
    let msg = e.to_string();
    assert!(msg.contains(&rotation.old_key_id), "{msg}");
    assert!(msg.contains(&rotation.new_key_id), "{msg}");
    // Nor may the old key rotate again.
    let err = rotate_signing_key(dir.path(), key(1), &key(3), SealPolicy::default()).unwrap_err();
    assert!(matches!(err, RotateError::Open(_)), "{err}");
}

#[test]
fn rotation_refuses_another_origin_and_reused_keys() {
    let (dir, _) = rotated();
    let other = NoteSigner::from_seed("other.example/log", &[3; 32]).unwrap();
    let err = rotate_signing_key(dir.path(), key(2), &other, SealPolicy::default()).unwrap_err();
    assert!(matches!(err, RotateError::Origin { .. }), "{err}");
    let err = rotate_signing_key(dir.path(), key(2), &key(1), SealPolicy::default()).unwrap_err();
    assert!(matches!(err, RotateError::KeyReused(_)), "{err}");
    let err = rotate_signing_key(dir.path(), key(2), &key(2), SealPolicy::default()).unwrap_err();
    assert!(matches!(err, RotateError::KeyReused(_)), "{err}");
    // A second rotation is followed too.
    rotate_signing_key(dir.path(), key(2), &key(3), SealPolicy::default()).unwrap();
    write(dir.path(), key(3), 2);
    let r = verify_data_dir(dir.path(), &key(1).verifier(), None).unwrap();
    assert!(r.ok, "{:?}", r.errors);
    assert_eq!(r.events, 13);
}

#[test]
fn a_removed_history_fails_verification() {
    let (dir, _) = rotated();
    std::fs::remove_file(LedgerPaths::new(dir.path()).ledger.join("key-history.json")).unwrap();
    let r = verify_data_dir(dir.path(), &key(1).verifier(), None).unwrap();
    assert!(!r.ok);
    assert!(
        kinds(&r).contains(&"checkpoint_signature"),
        "{:?}",
        r.errors
    );
    assert!(Ledger::open(dir.path(), key(1), SealPolicy::default()).is_err());
}

fn sign_checkpoint(data: &Path, size: u64, by: &NoteSigner) -> String {
    let tree = TreeStore::open_read_only(&LedgerPaths::new(data).tree).unwrap();
    let cp = Checkpoint {
        origin: ORIGIN.into(),
        size,
        root: tree.root(size).unwrap(),
        extensions: Vec::new(),
    };
    note::sign_checkpoint(&cp, by).unwrap()
}

#[test]
fn a_checkpoint_by_the_retired_key_after_the_rotation_fails() {
    let (dir, _) = rotated();
    let paths = LedgerPaths::new(dir.path());
    std::fs::write(&paths.checkpoint, sign_checkpoint(dir.path(), 6, &key(1))).unwrap();
    let r = verify_data_dir(dir.path(), &key(1).verifier(), None).unwrap();
    assert_eq!(kinds(&r), ["retired_key"], "{:?}", r.errors);
}

#[test]
fn a_forged_transition_fails() {
    let (dir, _) = rotated();
    let ledger = LedgerPaths::new(dir.path()).ledger;
    let mut h = load_history(&ledger).unwrap();
    // The attacker signs "k2 -> attacker" with their own key only.
    let attacker = key(9);
    let t = Transition {
        origin: ORIGIN.into(),
        size: 6,
        index: 9,
        old: crate_key(&key(2).verifier()).unwrap(),
        new: crate_key(&attacker.verifier()).unwrap(),
    };
    let note = sign_transition(&t, &attacker, &attacker).unwrap();
    h.transitions.push(TransitionRecord {
        checkpoint: sign_checkpoint(dir.path(), 6, &attacker),
        entry: String::new(),
        note,
    });
    write_history(&ledger, &h).unwrap();
    let r = verify_data_dir(dir.path(), &key(1).verifier(), None).unwrap();
    assert!(kinds(&r).contains(&"forged_transition"), "{:?}", r.errors);
}

#[test]
fn a_moved_transition_fails() {
    // Even re-signed by both keys, a transition must sit where it was logged.
    let (dir, rotation) = rotated();
    let ledger = LedgerPaths::new(dir.path()).ledger;
    let h = load_history(&ledger).unwrap();
    let t = Transition {
        origin: ORIGIN.into(),
        size: rotation.size + 1,
        index: rotation.index + 1,
        old: crate_key(&key(1).verifier()).unwrap(),
        new: crate_key(&key(2).verifier()).unwrap(),
    };
    let note = sign_transition(&t, &key(1), &key(2)).unwrap();
    let entry = h.transitions[0].entry.replace(
        &serde_json::to_string(&h.transitions[0].note).unwrap(),
        &serde_json::to_string(&note).unwrap(),
    );
    let moved = KeyHistory {
        transitions: vec![TransitionRecord {
            checkpoint: sign_checkpoint(dir.path(), t.size, &key(1)),
            entry,
            note,
        }],
    };
    write_history(&ledger, &moved).unwrap();
    let r = verify_data_dir(dir.path(), &key(1).verifier(), None).unwrap();
    assert!(!r.ok);
    assert!(
        kinds(&r).contains(&"key_transition_entry"),
        "{:?}",
        r.errors
    );
}

#[test]
fn a_rewritten_history_before_the_rotation_fails() {
    // The old key's last checkpoint pins the log up to the handover.
    let (dir, _) = rotated();
    let ledger = LedgerPaths::new(dir.path()).ledger;
    let mut h = load_history(&ledger).unwrap();
    let mut cp = note::parse_unverified_checkpoint(&h.transitions[0].checkpoint).unwrap();
    cp.root = [7; 32];
    h.transitions[0].checkpoint = note::sign_checkpoint(&cp, &key(1)).unwrap();
    write_history(&ledger, &h).unwrap();
    let r = verify_data_dir(dir.path(), &key(1).verifier(), None).unwrap();
    assert_eq!(kinds(&r), ["key_transition"], "{:?}", r.errors);
}

#[test]
fn proofs_across_the_rotation_verify_from_the_first_key() {
    use crate::ledger::proof::{LedgerReader, verify_consistency_proof, verify_inclusion_proof};
    let (dir, rotation) = rotated();
    let reader = LedgerReader::open(dir.path()).unwrap();
    for index in [0, rotation.index, 9] {
        let proof = reader.inclusion_proof(index).unwrap();
        assert!(proof.key_history.is_some());
        for anchor in [key(1), key(2)] {
            let v = verify_inclusion_proof(&proof, &anchor.verifier()).unwrap();
            assert_eq!(v.index(), index);
        }
        assert!(verify_inclusion_proof(&proof, &key(3).verifier()).is_err());
        // Without the transitions the first key cannot reach the new one.
        let bare = crate::ledger::proof::InclusionProof {
            key_history: None,
            ..proof.clone()
        };
        assert!(verify_inclusion_proof(&bare, &key(1).verifier()).is_err());
        // A transition edited in the proof is caught.
        let mut edited = proof.clone();
        if let Some(h) = edited.key_history.as_mut() {
            h[0].note = h[0].note.replacen("\n4\n", "\n5\n", 1);
        }
        assert!(verify_inclusion_proof(&edited, &key(1).verifier()).is_err());
    }
    // Consistency from the old key's last checkpoint to the new key's.
    let old = load_history(&LedgerPaths::new(dir.path()).ledger)
        .unwrap()
        .transitions[0]
        .checkpoint
        .clone();
    let proof = reader.consistency_proof(rotation.size).unwrap();
    let v = verify_consistency_proof(&proof, &key(1).verifier(), Some(&old)).unwrap();
    assert_eq!((v.old_size, v.new_size), (4, 6));
}

#[test]
fn a_bundle_spanning_the_rotation_verifies_from_the_first_key() {
    use crate::ledger::bundle::{BundleQuery, build_bundle, check_bundle};
    use crate::ledger::proof::LedgerReader;
    let (dir, _) = rotated();
    let reader = LedgerReader::open(dir.path()).unwrap();
    let query = BundleQuery {
        q: "*".into(),
        from: None,
        to: None,
        requested_by: None,
        created: "2026-12-07T19:00:00Z".into(),
    };
    let mut out = Vec::new();
    build_bundle(&reader, &key(2), &query, &[1, 5, 8], &mut out).unwrap();
    for anchor in [key(1), key(2)] {
        let report = check_bundle(out.as_slice(), &anchor.verifier());
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert_eq!(report.events, 3);
        assert!(report.verified.is_some());
    }
    let report = check_bundle(out.as_slice(), &key(3).verifier());
    assert!(report.verified.is_none());
    // The retired key may not build bundles any more.
    let mut out = Vec::new();
    assert!(build_bundle(&reader, &key(1), &query, &[1], &mut out).is_err());
}

#[test]
fn only_the_current_key_may_rotate() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), key(1), 3);
    // A stranger's key with the log's name cannot hand the log over.
    let err = rotate_signing_key(dir.path(), key(7), &key(2), SealPolicy::default()).unwrap_err();
    assert!(matches!(err, RotateError::Open(_)), "{err}");
    assert!(
        load_history(&LedgerPaths::new(dir.path()).ledger)
            .unwrap()
            .transitions
            .is_empty()
    );
    let r = verify_data_dir(dir.path(), &key(1).verifier(), None).unwrap();
    assert!(r.ok, "{:?}", r.errors);
    assert_eq!(r.events, 3, "nothing was logged");
}

#[test]
fn a_crash_before_the_history_is_written_leaves_the_old_key_current() {
    // The state of a crash between the seal and the history rename: the
    // transition is logged and sealed under the old key, no history names it.
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), key(1), 3);
    let first = rotate_signing_key(dir.path(), key(1), &key(2), SealPolicy::default()).unwrap();
    std::fs::remove_file(LedgerPaths::new(dir.path()).ledger.join("key-history.json")).unwrap();
    let r = verify_data_dir(dir.path(), &key(1).verifier(), None).unwrap();
    assert!(
        r.ok,
        "an unnamed transition entry is only an event: {:?}",
        r.errors
    );
    assert!(r.key_transitions.is_empty());
    // Rotating again works, and only the second transition counts.
    let second = rotate_signing_key(dir.path(), key(1), &key(2), SealPolicy::default()).unwrap();
    assert_eq!(second.index, first.index + 1);
    write(dir.path(), key(2), 2);
    let r = verify_data_dir(dir.path(), &key(1).verifier(), None).unwrap();
    assert!(r.ok, "{:?}", r.errors);
    assert_eq!(r.key_transitions.len(), 1);
    assert_eq!(r.key_transitions[0].index, second.index);
}

#[test]
fn a_lost_checkpoint_right_after_a_rotation_is_the_old_keys_again() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), key(1), 3);
    rotate_signing_key(dir.path(), key(1), &key(2), SealPolicy::default()).unwrap();
    let paths = LedgerPaths::new(dir.path());
    let before = std::fs::read_to_string(&paths.checkpoint).unwrap();
    std::fs::remove_file(&paths.checkpoint).unwrap();
    // The new key must not sign the size that belongs to the old one.
    let (ledger, _) = Ledger::open(dir.path(), key(2), SealPolicy::default()).unwrap();
    assert_eq!(ledger.checkpoint(), before);
    ledger.close().unwrap();
    assert_eq!(std::fs::read_to_string(&paths.checkpoint).unwrap(), before);
    write(dir.path(), key(2), 2);
    let r = verify_data_dir(dir.path(), &key(1).verifier(), None).unwrap();
    assert!(r.ok, "{:?}", r.errors);
}

/// The members of a tar archive, in order.
fn members(tar_bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    use std::io::Read;
    let mut archive = tar::Archive::new(tar_bytes);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_str().unwrap().to_owned();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            (name, data)
        })
        .collect()
}

fn pack(members: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in members {
        let mut h = tar::Header::new_ustar();
        h.set_path(name).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append(&h, data.as_slice()).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn a_bundle_without_or_with_a_misplaced_key_history_fails() {
    use crate::ledger::bundle::{BundleQuery, KEY_HISTORY_MEMBER, build_bundle, check_bundle};
    use crate::ledger::proof::LedgerReader;
    let (dir, _) = rotated();
    let reader = LedgerReader::open(dir.path()).unwrap();
    let query = BundleQuery {
        q: "*".into(),
        from: None,
        to: None,
        requested_by: None,
        created: "2026-12-07T19:00:00Z".into(),
    };
    let mut out = Vec::new();
    build_bundle(&reader, &key(2), &query, &[1, 8], &mut out).unwrap();
    let all = members(&out);
    let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[1], KEY_HISTORY_MEMBER, "{names:?}");
    // The proofs inside do not repeat the history.
    let events = &all.last().unwrap().1;
    assert!(!String::from_utf8_lossy(events).contains("key_history"));

    let kinds = |bytes: Vec<u8>| -> Vec<&'static str> {
        check_bundle(bytes.as_slice(), &key(1).verifier())
            .errors
            .iter()
            .map(|e| e.kind())
            .collect()
    };
    // Repacked as is: still fine.
    assert!(kinds(pack(&all)).is_empty());
    // Removed: the first key cannot reach the new key's signatures.
    let without: Vec<_> = all
        .iter()
        .filter(|(n, _)| n != KEY_HISTORY_MEMBER)
        .cloned()
        .collect();
    let k = kinds(pack(&without));
    assert!(
        k.contains(&"vkey") && k.contains(&"manifest_signature"),
        "{k:?}"
    );
    // After signing.vkey: refused.
    let mut late = without.clone();
    late.insert(2, all[1].clone());
    assert!(kinds(pack(&late)).contains(&"member_order"));
    // Edited: a transition that no longer verifies.
    let mut edited = all.clone();
    edited[1].1 = String::from_utf8(edited[1].1.clone())
        .unwrap()
        .replacen("\\n4\\n", "\\n5\\n", 1)
        .into_bytes();
    let k = kinds(pack(&edited));
    assert!(k.contains(&"forged_transition"), "{k:?}");
}

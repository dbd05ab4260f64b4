//! The writer's side of the key history. Every check of a history (chains,
//! forged and malformed transitions, handoffs, entries, checkpoints by the
//! key of their size) is the verifier crate's and tested there
//! (`crates/sealtrail-verify/tests/checks.rs`) and end to end in
//! `src/ledger/rotate/tests.rs`.
use super::*;
use crate::ledger::hash::Hash;
use crate::ledger::note::Checkpoint;

const ORIGIN: &str = "rot.example/log";

fn signer(seed: u8) -> NoteSigner {
    NoteSigner::from_seed(ORIGIN, &[seed; 32]).unwrap()
}

fn checkpoint(size: u64, root: Hash, by: &NoteSigner) -> String {
    let cp = Checkpoint {
        origin: ORIGIN.into(),
        size,
        root,
        extensions: Vec::new(),
    };
    note::sign_checkpoint(&cp, by).unwrap()
}

fn record(old: &NoteSigner, new: &NoteSigner, size: u64, index: u64) -> TransitionRecord {
    let t = Transition {
        origin: ORIGIN.into(),
        size,
        index,
        old: crate_key(&old.verifier()).unwrap(),
        new: crate_key(&new.verifier()).unwrap(),
    };
    let note = sign_transition(&t, old, new).unwrap();
    let entry = serde_json::json!({
        "received": "2026-12-07T19:00:00Z",
        "via": {"kind": "cli"},
        "event": {"category": "admin", "action": "key_rotation", "attrs": {ENTRY_ATTR: &note}},
    })
    .to_string();
    TransitionRecord {
        entry,
        checkpoint: checkpoint(size, [size as u8; 32], old),
        note,
    }
}

#[test]
fn a_signed_transition_opens_with_both_keys_and_the_writer_must_hold_the_current_key() {
    let k = [signer(1), signer(2), signer(3)];
    let h = KeyHistory {
        transitions: vec![record(&k[0], &k[1], 3, 10), record(&k[1], &k[2], 7, 40)],
    };
    let t = open_transition(0, &h.transitions[0].note).unwrap();
    assert_eq!((t.size, t.index), (3, 10));
    assert_eq!(t.new, crate_key(&k[1].verifier()).unwrap());
    let chain = own_chain(&h, &k[2].verifier()).unwrap();
    assert_eq!(chain.handoffs().len(), 2);
    for stale in [&k[0], &k[1]] {
        let e = own_chain(&h, &stale.verifier()).unwrap_err();
        assert!(matches!(e, KeyHistoryError::NotCurrentKey { .. }), "{e}");
    }
    // Signed by the new key alone: the crate refuses it as forged.
    let mut forged = h.clone();
    let body = t.to_body();
    forged.transitions[0].note = note::sign_note(&body, &k[1]).unwrap();
    assert_eq!(
        own_chain(&forged, &k[2].verifier()).unwrap_err().kind(),
        "forged_transition"
    );
    assert!(own_chain(&KeyHistory::default(), &k[0].verifier()).is_ok());
}

#[test]
fn history_files_round_trip_and_a_missing_one_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(load_history(dir.path()).unwrap(), KeyHistory::default());
    let h = KeyHistory {
        transitions: vec![record(&signer(1), &signer(2), 3, 10)],
    };
    write_history(dir.path(), &h).unwrap();
    assert_eq!(load_history(dir.path()).unwrap(), h);
    std::fs::write(history_path(dir.path()), "{\"transitions\":[],\"x\":1}").unwrap();
    assert_eq!(load_history(dir.path()).unwrap_err().kind(), "key_history");
}

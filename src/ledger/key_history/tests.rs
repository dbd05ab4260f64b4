use super::*;
use crate::ledger::hash::Hash;

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

fn entry_for(note: &str) -> String {
    serde_json::json!({
        "received": "2026-12-07T19:00:00Z",
        "via": {"kind": "cli"},
        "event": {"category": "admin", "action": "key_rotation", "attrs": {ENTRY_ATTR: note}},
    })
    .to_string()
}

fn record(old: &NoteSigner, new: &NoteSigner, size: u64, index: u64) -> TransitionRecord {
    let t = Transition {
        origin: ORIGIN.into(),
        size,
        index,
        old: old.verifier(),
        new: new.verifier(),
    };
    let note = t.sign(old, new).unwrap();
    TransitionRecord {
        entry: entry_for(&note),
        checkpoint: checkpoint(size, [size as u8; 32], old),
        note,
    }
}

/// k1 -> k2 at size 3 (event 10), k2 -> k3 at size 7 (event 40).
fn two_rotations() -> (Vec<NoteSigner>, KeyHistory) {
    let k = vec![signer(1), signer(2), signer(3)];
    let h = KeyHistory {
        transitions: vec![record(&k[0], &k[1], 3, 10), record(&k[1], &k[2], 7, 40)],
    };
    (k, h)
}

#[test]
fn follows_the_history_from_the_first_key() {
    let (k, h) = two_rotations();
    let chain = KeyChain::follow(&k[0].verifier(), &h).unwrap();
    assert_eq!(chain.current(), &k[2].verifier());
    for (size, want) in [(0, 0), (1, 0), (3, 0), (4, 1), (7, 1), (8, 2), (1000, 2)] {
        assert_eq!(
            chain.key_for(size).unwrap(),
            &k[want].verifier(),
            "size {size}"
        );
    }
    assert_eq!(chain.handoffs().len(), 2);
    assert_eq!(chain.handoffs()[1].root, [7; 32]);
}

#[test]
fn trust_may_start_at_a_later_key() {
    let (k, h) = two_rotations();
    let chain = KeyChain::follow(&k[1].verifier(), &h).unwrap();
    assert_eq!(chain.current(), &k[2].verifier());
    assert!(matches!(
        chain.key_for(3),
        Err(KeyHistoryError::BeforeTrust {
            size: 3,
            trusted_after: 3
        })
    ));
    assert_eq!(chain.key_for(4).unwrap(), &k[1].verifier());
    assert_eq!(chain.handoffs().len(), 1);
}

#[test]
fn a_key_outside_the_history_is_refused() {
    let (_, h) = two_rotations();
    let err = KeyChain::follow(&signer(9).verifier(), &h).unwrap_err();
    assert!(matches!(err, KeyHistoryError::UnknownKey { .. }), "{err}");
}

#[test]
fn no_history_is_the_key_alone() {
    let k = signer(1);
    let chain = KeyChain::follow(&k.verifier(), &KeyHistory::default()).unwrap();
    assert_eq!(chain.current(), &k.verifier());
    assert_eq!(chain.key_for(5).unwrap(), &k.verifier());
}

#[test]
fn a_transition_signed_by_another_key_is_forged() {
    let (k, mut h) = two_rotations();
    // Claims to retire k3 (current) for the attacker's key, signed by the attacker.
    let attacker = signer(8);
    let t = Transition {
        origin: ORIGIN.into(),
        size: 9,
        index: 50,
        old: k[2].verifier(),
        new: attacker.verifier(),
    };
    let body = t.to_body();
    let note = format!(
        "{}{}",
        note::sign_note(&body, &attacker).unwrap(),
        note::sign_note(&body, &attacker)
            .unwrap()
            .get(body.len() + 1..)
            .unwrap()
    );
    h.transitions.push(TransitionRecord {
        entry: entry_for(&note),
        checkpoint: checkpoint(9, [0; 32], &attacker),
        note,
    });
    let err = KeyChain::follow(&k[0].verifier(), &h).unwrap_err();
    assert!(
        matches!(err, KeyHistoryError::ForgedTransition { n: 2, .. }),
        "{err}"
    );
}

#[test]
fn a_transition_from_a_retired_key_breaks_the_chain() {
    let (k, mut h) = two_rotations();
    // k1 (retired) signs a second transition to an attacker key.
    h.transitions.push(record(&k[0], &signer(8), 9, 50));
    let err = KeyChain::follow(&k[0].verifier(), &h).unwrap_err();
    assert!(matches!(err, KeyHistoryError::Chain { n: 2, .. }), "{err}");
}

#[test]
fn the_new_key_must_sign_too() {
    let k = [signer(1), signer(2)];
    let t = Transition {
        origin: ORIGIN.into(),
        size: 3,
        index: 10,
        old: k[0].verifier(),
        new: k[1].verifier(),
    };
    let note = note::sign_note(&t.to_body(), &k[0]).unwrap();
    let err = open_transition(0, &note).unwrap_err();
    assert!(matches!(err, KeyHistoryError::Note { n: 0, .. }), "{err}");
}

#[test]
fn an_edited_body_fails_both_signatures() {
    let (k, mut h) = two_rotations();
    let rec = &mut h.transitions[0];
    rec.note = rec.note.replacen("\n3\n10\n", "\n4\n10\n", 1);
    rec.entry = entry_for(&rec.note);
    let err = KeyChain::follow(&k[0].verifier(), &h).unwrap_err();
    assert!(
        matches!(err, KeyHistoryError::ForgedTransition { n: 0, .. }),
        "{err}"
    );
}

#[test]
fn malformed_bodies_are_refused() {
    let k = [signer(1), signer(2)];
    let good = Transition {
        origin: ORIGIN.into(),
        size: 3,
        index: 10,
        old: k[0].verifier(),
        new: k[1].verifier(),
    }
    .to_body();
    let cases = [
        good.replace("v1", "v2"),
        good.replacen("\n3\n", "\n03\n", 1),
        good.replacen("\n3\n", "\n+3\n", 1),
        good.replacen("\n3\n", "\n0\n", 1),
        format!("{good}extra\n"),
        good.trim_end().to_owned(),
        good.replacen(ORIGIN, "other.example/log", 1),
        // Same key twice.
        good.replace(&k[1].verifier().to_vkey(), &k[0].verifier().to_vkey()),
    ];
    for body in cases {
        let note = format!("{body}\n— x AAAA\n");
        assert!(open_transition(0, &note).is_err(), "{body:?}");
    }
    assert!(Transition::parse_body(0, &good).is_ok());
}

#[test]
fn sizes_and_indices_must_grow() {
    let k = [signer(1), signer(2), signer(3)];
    let h = KeyHistory {
        transitions: vec![record(&k[0], &k[1], 7, 10), record(&k[1], &k[2], 7, 40)],
    };
    let err = KeyChain::follow(&k[0].verifier(), &h).unwrap_err();
    assert!(matches!(err, KeyHistoryError::Chain { n: 1, .. }), "{err}");
}

#[test]
fn the_handoff_checkpoint_is_the_old_keys_at_the_transition_size() {
    let (k, h) = two_rotations();
    let mut by_new = h.clone();
    by_new.transitions[0].checkpoint = checkpoint(3, [3; 32], &k[1]);
    let err = KeyChain::follow(&k[0].verifier(), &by_new).unwrap_err();
    assert!(
        matches!(err, KeyHistoryError::Handoff { n: 0, .. }),
        "{err}"
    );
    let mut other_size = h;
    other_size.transitions[0].checkpoint = checkpoint(2, [3; 32], &k[0]);
    let err = KeyChain::follow(&k[0].verifier(), &other_size).unwrap_err();
    assert!(
        matches!(err, KeyHistoryError::Handoff { n: 0, .. }),
        "{err}"
    );
}

#[test]
fn the_entry_must_carry_the_note() {
    let (k, h) = two_rotations();
    let mut cases = Vec::new();
    let mut other_note = h.clone();
    other_note.transitions[0].entry = h.transitions[1].entry.clone();
    cases.push(other_note);
    let mut wrong_action = h.clone();
    wrong_action.transitions[0].entry = h.transitions[0].entry.replace("key_rotation", "login");
    cases.push(wrong_action);
    let mut duplicate = h.clone();
    let note_json = serde_json::to_string(&h.transitions[0].note).unwrap();
    duplicate.transitions[0].entry = format!(
        r#"{{"event":{{"category":"admin","action":"key_rotation","attrs":{{"key_transition":"x","key_transition":{note_json}}}}}}}"#
    );
    cases.push(duplicate);
    let mut not_json = h;
    not_json.transitions[0].entry = "{".into();
    cases.push(not_json);
    for h in cases {
        let err = KeyChain::follow(&k[0].verifier(), &h).unwrap_err();
        assert!(
            matches!(err, KeyHistoryError::Entry { index: 10, .. }),
            "{err}"
        );
    }
}

#[test]
fn checkpoints_must_be_signed_by_the_key_of_their_size() {
    let (k, h) = two_rotations();
    let chain = KeyChain::follow(&k[0].verifier(), &h).unwrap();
    assert_eq!(
        chain
            .open_checkpoint(&checkpoint(3, [1; 32], &k[0]))
            .unwrap()
            .size,
        3
    );
    assert_eq!(
        chain
            .open_checkpoint(&checkpoint(5, [1; 32], &k[1]))
            .unwrap()
            .size,
        5
    );
    assert_eq!(
        chain
            .open_checkpoint(&checkpoint(9, [1; 32], &k[2]))
            .unwrap()
            .size,
        9
    );
    // The old key after its retirement.
    let err = chain
        .open_checkpoint(&checkpoint(9, [1; 32], &k[0]))
        .unwrap_err();
    assert!(
        matches!(
            err,
            KeyHistoryError::RetiredKey {
                size: 9,
                retired_at: 3,
                ..
            }
        ),
        "{err}"
    );
    let err = chain
        .open_checkpoint(&checkpoint(8, [1; 32], &k[1]))
        .unwrap_err();
    assert!(
        matches!(
            err,
            KeyHistoryError::RetiredKey {
                size: 8,
                retired_at: 7,
                ..
            }
        ),
        "{err}"
    );
    // A key before it was introduced, and a stranger.
    for text in [
        checkpoint(2, [1; 32], &k[1]),
        checkpoint(9, [1; 32], &signer(8)),
    ] {
        let err = chain.open_checkpoint(&text).unwrap_err();
        assert!(matches!(err, KeyHistoryError::Checkpoint(_)), "{err}");
    }
}

#[test]
fn the_history_file_is_strict_json() {
    let (_, h) = two_rotations();
    let text = serde_json::to_string(&h).unwrap();
    assert_eq!(parse_history(text.as_bytes()).unwrap(), h);
    let dup = r#"{"transitions":[],"transitions":[]}"#;
    assert!(parse_history(dup.as_bytes()).is_err());
    let unknown = r#"{"transitions":[],"x":1}"#;
    assert!(parse_history(unknown.as_bytes()).is_err());
    let extra = r#"{"transitions":[{"note":"a","checkpoint":"b","entry":"c","more":1}]}"#;
    assert!(parse_history(extra.as_bytes()).is_err());
    assert!(parse_history(b"{\"transitions\":[]} x").is_err());
}

#[test]
fn history_files_round_trip_and_a_missing_one_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(load_history(dir.path()).unwrap(), KeyHistory::default());
    let (_, h) = two_rotations();
    write_history(dir.path(), &h).unwrap();
    assert_eq!(load_history(dir.path()).unwrap(), h);
}

#[test]
fn the_entry_segment_holds_the_entry_alone_at_its_index() {
    let (k, h) = two_rotations();
    let chain = KeyChain::follow(&k[0].verifier(), &h).unwrap();
    let handoff = &chain.handoffs()[0];
    let good = SegmentRecord {
        origin: ORIGIN.into(),
        number: 2,
        first_index: 10,
        count: 1,
        min_time_ms: 0,
        max_time_ms: 0,
        root: leaf_hash(&handoff.entry),
        prev: [0; 32],
    };
    check_entry_segment(handoff, &good).unwrap();
    let moved = SegmentRecord {
        first_index: 11,
        ..good.clone()
    };
    let shared = SegmentRecord {
        count: 2,
        ..good.clone()
    };
    let other = SegmentRecord {
        root: [1; 32],
        ..good
    };
    for r in [moved, shared, other] {
        assert!(matches!(
            check_entry_segment(handoff, &r),
            Err(KeyHistoryError::Entry { index: 10, .. })
        ));
    }
}

#[test]
fn a_key_may_not_come_back() {
    let (k, mut h) = two_rotations();
    h.transitions.push(record(&k[2], &k[0], 9, 50));
    let err = KeyChain::follow(&k[0].verifier(), &h).unwrap_err();
    assert!(matches!(err, KeyHistoryError::Chain { n: 2, .. }), "{err}");
}

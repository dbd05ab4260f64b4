//! Signing-key rotation in the middle of a log, through a real `serve`:
//! `key rotate`, restart with the new key, and every verifier (directory,
//! proofs, bundles) following the key history from the first key.

use super::util::*;
use sealtrail::ledger::key_history::{
    KEY_HISTORY_FILE, KeyHistory, Transition, TransitionRecord, crate_key, load_history,
    sign_transition, write_history,
};
use sealtrail::ledger::note::{self, Checkpoint};
use sealtrail::ledger::tree_store::TreeStore;
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const PATIENT: &str = "MRN-ROTATE1";

fn events(range: std::ops::Range<u64>) -> Value {
    let list: Vec<Value> = range
        .map(|i| {
            let mut e: Value = serde_json::from_str(&event_json(i)).unwrap();
            e["patient"]["id"] = json!(PATIENT);
            e
        })
        .collect();
    json!(list)
}

fn run(args: &[&str]) -> Output {
    Command::new(bin()).args(args).output().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn verify_dir(data: &Path, vkey: &Path) -> (Option<i32>, Value) {
    let out = run(&["verify", "--json", "--data", s(data), "--vkey", s(vkey)]);
    let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code(), v)
}

fn error_kinds(v: &Value) -> Vec<String> {
    v["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["kind"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// `serve` must exit on its own (refusing to start), with its stderr.
fn serve_refused(dir: &Path, config: &str) -> (Option<i32>, String) {
    let cfg = dir.join("refused.toml");
    std::fs::write(&cfg, config).unwrap();
    let mut child = Command::new(bin())
        .args(["serve", "--config", s(&cfg)])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("refused.log")).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve with the retired key kept running");
        }
        std::thread::sleep(Duration::from_millis(25)); // polling the child's exit
    };
    let log = std::fs::read_to_string(dir.join("refused.log")).unwrap();
    (status.code(), log)
}

fn resign_checkpoint(data: &Path, size: u64, key_file: &Path) -> String {
    let tree = TreeStore::open_read_only(&data.join("ledger/tree")).unwrap();
    let cp = Checkpoint {
        origin: ORIGIN.into(),
        size,
        root: tree.root(size).unwrap(),
        extensions: Vec::new(),
    };
    let by = sealtrail::ledger::keys::load_signer(key_file).unwrap();
    note::sign_checkpoint(&cp, &by).unwrap()
}

#[test]
fn a_key_rotated_in_the_middle_of_a_log_verifies_from_the_first_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let k1 = keys(&dir.path().join("k1"));
    let k2 = keys(&dir.path().join("k2"));

    // Before: five events under the first key.
    let server = Server::start(dir.path(), &serve_config(&data, &k1, ""));
    post_events(&server.client(), &server.http, &events(0..5));
    // Not while the service runs.
    let out = run(&[
        "key",
        "rotate",
        "--data",
        s(&data),
        "--key",
        s(&k1.key),
        "--new-key",
        s(&k2.key),
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("stop the service"), "{stderr}");
    assert_eq!(server.terminate(), Some(0));

    // The rotation.
    let out = run(&[
        "key",
        "rotate",
        "--data",
        s(&data),
        "--key",
        s(&k1.key),
        "--new-key",
        s(&k2.key),
    ]);
    assert!(out.status.success(), "{out:?}");
    let rotation: Value = serde_json::from_slice(&out.stdout).unwrap();
    let old_id = hex::encode(k1.verifier.key_id());
    let new_id = hex::encode(k2.verifier.key_id());
    assert_eq!(rotation["old_key_id"], old_id.as_str());
    assert_eq!(rotation["new_key_id"], new_id.as_str());
    let transition_index = rotation["index"].as_u64().unwrap();
    assert!(data.join("ledger").join(KEY_HISTORY_FILE).is_file());

    // The old key is refused from now on, naming both keys.
    let (code, log) = serve_refused(dir.path(), &serve_config(&data, &k1, ""));
    assert_ne!(code, Some(0));
    assert!(log.contains(&old_id) && log.contains(&new_id), "{log}");

    // After: the new key signs; five more events.
    let server = Server::start(dir.path(), &serve_config(&data, &k2, ""));
    let c = server.client();
    post_events(&c, &server.http, &events(5..10));
    // The API's proofs carry the key history too.
    let last: Value = server.wait_for("the last event to be provable", || {
        let r = c
            .get(format!(
                "{}/v1/events/{}/proof",
                server.http,
                transition_index + 5
            ))
            .send()
            .unwrap();
        (r.status().as_u16() == 200).then(|| r.json().unwrap())
    });
    assert!(last["key_history"].is_array(), "{last}");
    // The bundle spans the rotation, once the new events are sealed and
    // searchable; it verifies from the first key.
    let bundle = dir.path().join("evidence.tar");
    server.wait_for("a bundle of all ten events", || {
        let r = c
            .post(format!("{}/v1/export", server.http))
            .json(&json!({"q": format!("patient.id:{PATIENT}")}))
            .send()
            .unwrap();
        if r.status().as_u16() != 200 {
            return None;
        }
        std::fs::write(&bundle, r.bytes().unwrap()).unwrap();
        let out = run(&[
            "verify",
            "--bundle",
            s(&bundle),
            "--vkey",
            s(&k1.vkey),
            "--json",
        ]);
        assert!(out.status.success(), "{out:?}");
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        (v["events"].as_u64() == Some(10)).then_some(())
    });
    assert_eq!(server.terminate(), Some(0));

    // The whole directory, from the first key and from the new one.
    let stored = stored_payloads(&data).len() as u64;
    for vkey in [&k1.vkey, &k2.vkey] {
        let (code, v) = verify_dir(&data, vkey);
        assert_eq!(code, Some(0), "{v}");
        assert_eq!(
            v["events"].as_u64(),
            Some(stored),
            "every event is counted: {v}"
        );
        assert_eq!(v["unsealed_events"].as_u64(), Some(0));
    }
    let (_, v) = verify_dir(&data, &k1.vkey);
    assert_eq!(
        v["key_transitions"][0]["index"].as_u64(),
        Some(transition_index),
        "{v}"
    );
    assert_eq!(v["key_transitions"][0]["new_key_id"], new_id.as_str());
    assert!(stored >= TOKEN_RECORDS + 5 + 1 + 5, "{stored}");

    // Proofs of an event before and after the rotation, from the first key.
    let proof_file = dir.path().join("proof.json");
    let last_index = transition_index + 5;
    for index in [TOKEN_RECORDS, last_index] {
        let out = run(&["proof", "--data", s(&data), "--index", &index.to_string()]);
        assert!(out.status.success(), "{out:?}");
        std::fs::write(&proof_file, &out.stdout).unwrap();
        let out = run(&[
            "verify-proof",
            "--vkey",
            s(&k1.vkey),
            "--json",
            s(&proof_file),
        ]);
        assert!(out.status.success(), "event {index}: {out:?}");
        // Without the key history the first key does not reach the new one.
        let mut p: Value = serde_json::from_slice(&std::fs::read(&proof_file).unwrap()).unwrap();
        p.as_object_mut().unwrap().remove("key_history");
        std::fs::write(&proof_file, p.to_string()).unwrap();
        let out = run(&[
            "verify-proof",
            "--vkey",
            s(&k1.vkey),
            "--json",
            s(&proof_file),
        ]);
        assert_eq!(out.status.code(), Some(1), "event {index}: {out:?}");
    }

    // The bundle, from the first key.
    let out = run(&[
        "verify",
        "--bundle",
        s(&bundle),
        "--vkey",
        s(&k1.vkey),
        "--json",
    ]);
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["events"].as_u64(), Some(10), "{v}");

    // Tamper cases, each on a copy: verification fails with exit 1.
    let history = load_history(&data.join("ledger")).unwrap();
    let size = history.transitions[0]
        .checkpoint
        .lines()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap();
    let current = std::fs::read_to_string(data.join("ledger/checkpoint")).unwrap();
    let current_size: u64 = current.lines().nth(1).unwrap().parse().unwrap();
    assert!(current_size > size);
    type Tamper = Box<dyn Fn(&Path)>;
    let attacker = keys(&dir.path().join("attacker"));
    let cases: Vec<(&str, &str, Tamper)> = vec![
        (
            "removed history",
            "checkpoint_signature",
            Box::new(|d: &Path| {
                std::fs::remove_file(d.join("ledger").join(KEY_HISTORY_FILE)).unwrap()
            }),
        ),
        (
            "checkpoint by the retired key after the rotation",
            "retired_key",
            Box::new({
                let k1f = k1.key.clone();
                move |d: &Path| {
                    let text = resign_checkpoint(d, current_size, &k1f);
                    std::fs::write(d.join("ledger/checkpoint"), text).unwrap();
                }
            }),
        ),
        (
            "forged transition",
            "forged_transition",
            Box::new({
                let attacker_key = attacker.key.clone();
                let k2v = k2.verifier.clone();
                move |d: &Path| {
                    let a = sealtrail::ledger::keys::load_signer(&attacker_key).unwrap();
                    let mut h = load_history(&d.join("ledger")).unwrap();
                    let t = Transition {
                        origin: ORIGIN.into(),
                        size: current_size,
                        index: last_index,
                        old: crate_key(&k2v).unwrap(),
                        new: crate_key(&a.verifier()).unwrap(),
                    };
                    h.transitions.push(TransitionRecord {
                        note: sign_transition(&t, &a, &a).unwrap(),
                        checkpoint: String::new(),
                        entry: String::new(),
                    });
                    write_history(&d.join("ledger"), &h).unwrap();
                }
            }),
        ),
        (
            "transition moved (re-signed by both keys)",
            "key_transition_entry",
            Box::new({
                let (k1f, k2f) = (k1.key.clone(), k2.key.clone());
                move |d: &Path| {
                    let old = sealtrail::ledger::keys::load_signer(&k1f).unwrap();
                    let new = sealtrail::ledger::keys::load_signer(&k2f).unwrap();
                    let h = load_history(&d.join("ledger")).unwrap();
                    let t = Transition {
                        origin: ORIGIN.into(),
                        size: size + 1,
                        index: transition_index + 1,
                        old: crate_key(&old.verifier()).unwrap(),
                        new: crate_key(&new.verifier()).unwrap(),
                    };
                    let note = sign_transition(&t, &old, &new).unwrap();
                    let rec = &h.transitions[0];
                    let entry = rec.entry.replace(
                        &serde_json::to_string(&rec.note).unwrap(),
                        &serde_json::to_string(&note).unwrap(),
                    );
                    let tree = TreeStore::open_read_only(&d.join("ledger/tree")).unwrap();
                    let cp = Checkpoint {
                        origin: ORIGIN.into(),
                        size: size + 1,
                        root: tree.root(size + 1).unwrap(),
                        extensions: Vec::new(),
                    };
                    let moved = KeyHistory {
                        transitions: vec![TransitionRecord {
                            note,
                            checkpoint: note::sign_checkpoint(&cp, &old).unwrap(),
                            entry,
                        }],
                    };
                    write_history(&d.join("ledger"), &moved).unwrap();
                }
            }),
        ),
    ];
    for (n, (name, kind, tamper)) in cases.iter().enumerate() {
        let copy = dir.path().join(format!("tampered-{n}"));
        copy_dir(&data, &copy);
        tamper(&copy);
        let (code, v) = verify_dir(&copy, &k1.vkey);
        assert_eq!(code, Some(1), "{name}: {v}");
        assert!(error_kinds(&v).iter().any(|k| k == kind), "{name}: {v}");
    }
}

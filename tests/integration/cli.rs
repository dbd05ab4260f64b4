//! The command-line contract: names, outputs and exit codes from DESIGN.md.

use crate::util::*;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        input.write_all(bytes).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn keygen_writes_private_public_and_vkey_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("keys");
    let o = run(
        &["keygen", "--out", s(&out), "--name", "clinic.example/log"],
        None,
    );
    assert!(o.status.success(), "{o:?}");
    let mode = std::fs::metadata(out.join("signing.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(
        std::fs::read_to_string(out.join("signing.key"))
            .unwrap()
            .contains("BEGIN PRIVATE KEY")
    );
    assert!(
        std::fs::read_to_string(out.join("signing.pub"))
            .unwrap()
            .contains("BEGIN PUBLIC KEY")
    );
    let vkey = std::fs::read_to_string(out.join("signing.vkey")).unwrap();
    assert!(vkey.starts_with("clinic.example/log+"), "{vkey}");
    assert_eq!(stdout(&o).trim(), vkey.trim());
    // Refuses to overwrite an existing key.
    let again = run(&["keygen", "--out", s(&out)], None);
    assert_eq!(again.status.code(), Some(2));
}

#[test]
fn import_keeps_valid_lines_records_rejected_ones_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let data = dir.path().join("data");
    let mut input = String::new();
    for i in 0..50 {
        input.push_str(&event_json(i));
        input.push('\n');
    }
    input.push_str("{\"time\":\"yesterday\",\"category\":\"auth\",\"action\":\"login\",\"outcome\":\"success\"}\n");
    input.push_str("not json at all\n");
    input.push_str(&event_json(50).replace(
        "\"outcome\":\"success\"",
        "\"outcome\":\"success\",\"colour\":\"red\"",
    ));
    input.push('\n');
    let o = run(
        &[
            "import",
            "--data",
            s(&data),
            "--key",
            s(&k.key),
            "--rules",
            "/nonexistent/no-rules",
            "-",
        ],
        Some(input.as_bytes()),
    );
    assert_eq!(
        o.status.code(),
        Some(1),
        "rejected lines make import exit 1: {o:?}"
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("line 51:") && err.contains("time"), "{err}");
    assert!(err.contains("line 52:"), "{err}");
    assert!(err.contains("line 53:") && err.contains("colour"), "{err}");
    assert!(
        stdout(&o).contains("accepted 50 rejected 3"),
        "{}",
        stdout(&o)
    );

    // Verify: JSON report per the contract.
    let o = run(
        &["verify", "--data", s(&data), "--vkey", s(&k.vkey), "--json"],
        None,
    );
    assert!(o.status.success(), "{o:?}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["events"], 53);
    assert!(v["segments"].as_u64().unwrap() >= 1);
    assert!(v["first_time"].is_string() && v["last_time"].is_string());
    assert!(v["checkpoint"]["size"].is_u64() && v["checkpoint"]["root"].is_string());
    assert_eq!(v["errors"], serde_json::json!([]));

    // The rejected line is itself a provable ledger event.
    let o = run(&["proof", "--data", s(&data), "--index", "51"], None);
    assert!(o.status.success(), "{o:?}");
    let proof: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let entry: serde_json::Value = serde_json::from_str(proof["entry"].as_str().unwrap()).unwrap();
    assert_eq!(entry["event"]["category"], "system");
    assert_eq!(entry["event"]["action"], "ingest_rejected");
    assert!(
        entry["event"]["attrs"]["raw"]
            .as_str()
            .unwrap()
            .contains("not json at all")
    );
}

#[test]
fn checkpoint_proof_and_verify_proof_round_trip_and_fail_on_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let data = dir.path().join("data");
    build_ledger(&data, &k, 200, 50);

    let o = run(&["checkpoint", "--data", s(&data)], None);
    assert!(o.status.success());
    let note = stdout(&o);
    let mut lines = note.lines();
    assert_eq!(lines.next(), Some(ORIGIN));
    assert_eq!(lines.next(), Some("4"));
    assert!(
        note.contains("\n\n\u{2014} clinic.example/sealtrail "),
        "{note}"
    );

    let o = run(&["proof", "--data", s(&data), "--id", "evt-00000123"], None);
    assert!(o.status.success(), "{o:?}");
    let proof_file = dir.path().join("proof.json");
    std::fs::write(&proof_file, &o.stdout).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["index"], 123);
    let o = run(
        &["verify-proof", "--vkey", s(&k.vkey), s(&proof_file)],
        None,
    );
    assert!(o.status.success(), "{o:?}");

    // Change one character of the proven event: the proof no longer holds.
    let tampered = String::from_utf8(std::fs::read(&proof_file).unwrap())
        .unwrap()
        .replacen("cardiology", "cardiologx", 1);
    std::fs::write(&proof_file, tampered).unwrap();
    let o = run(
        &[
            "verify-proof",
            "--vkey",
            s(&k.vkey),
            "--json",
            s(&proof_file),
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], false);

    // Consistency from an older size, checked against a kept checkpoint.
    let old_cp = dir.path().join("old.checkpoint");
    std::fs::write(&old_cp, &note).unwrap();
    {
        let (mut ledger, _) =
            sealtrail::ledger::log::Ledger::open(&data, k.signer(), policy(50)).unwrap();
        ledger
            .append(&(200..260).map(entry).collect::<Vec<_>>())
            .unwrap();
        ledger.close().unwrap();
    }
    let o = run(
        &["proof", "--data", s(&data), "--consistency-from", "4"],
        None,
    );
    assert!(o.status.success(), "{o:?}");
    let cons = dir.path().join("cons.json");
    std::fs::write(&cons, &o.stdout).unwrap();
    let o = run(
        &[
            "verify-proof",
            "--vkey",
            s(&k.vkey),
            "--since",
            s(&old_cp),
            s(&cons),
        ],
        None,
    );
    assert!(o.status.success(), "{o:?}");
    let o = run(
        &[
            "verify",
            "--data",
            s(&data),
            "--vkey",
            s(&k.vkey),
            "--since",
            s(&old_cp),
        ],
        None,
    );
    assert!(o.status.success(), "{o:?}");
    assert!(stdout(&o).contains("ledger verification: OK"));
}

#[test]
fn verify_fails_with_exit_1_naming_the_segment() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let data = dir.path().join("data");
    build_ledger(&data, &k, 200, 50);
    let path = segment_path(&data, 2);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x80;
    std::fs::write(&path, bytes).unwrap();
    let o = run(
        &["verify", "--data", s(&data), "--vkey", s(&k.vkey), "--json"],
        None,
    );
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert!(
        v["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["segment"] == 2),
        "{v}"
    );
    let o = run(&["verify", "--data", s(&data), "--vkey", s(&k.vkey)], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("segment 2"), "{}", stdout(&o));
}

#[test]
fn usage_and_io_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(
        &[
            "verify",
            "--data",
            s(dir.path()),
            "--vkey",
            "/nonexistent.vkey",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    let o = run(&["proof", "--data", s(dir.path())], None);
    assert_eq!(o.status.code(), Some(2));
    let o = run(&["no-such-command"], None);
    assert_eq!(o.status.code(), Some(2));
    let bad_proof = dir.path().join("p.json");
    std::fs::write(&bad_proof, "{\"format\":\"something-else\"}").unwrap();
    let k = keys(dir.path());
    let o = run(&["verify-proof", "--vkey", s(&k.vkey), s(&bad_proof)], None);
    // A defect inside the proof is "the check failed", not usage (issue #14).
    assert_eq!(o.status.code(), Some(1));
}

//! Issue #14 items 3-6: one JSON rule, exit codes of verify-proof, no control
//! characters in human output, key files other tools can read.

use crate::util::*;
use sealtrail::ledger::bundle::{self, BundleQuery};
use sealtrail::ledger::log::{Ledger, LedgerEntry};
use sealtrail::ledger::proof::LedgerReader;
use sealtrail::ledger::segment::FrameReader;
use std::path::Path;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(bin()).args(args).output().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// No byte of the output is a control character other than newline.
fn assert_no_controls(o: &Output) {
    for (what, bytes) in [("stdout", &o.stdout), ("stderr", &o.stderr)] {
        let text = String::from_utf8_lossy(bytes);
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{what} echoes a control character: {text:?}"
        );
    }
}

#[test]
fn keygen_writes_a_key_openssl_and_python_cryptography_load() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("keys");
    let o = run(&["keygen", "--out", s(&out), "--name", "clinic.example/log"]);
    assert!(o.status.success(), "{o:?}");
    let key = out.join("signing.key");
    let o = Command::new("openssl")
        .args(["pkey", "-in", s(&key), "-pubout"])
        .output()
        .expect("openssl is installed (.ci/run)");
    assert!(o.status.success(), "openssl refuses the key: {o:?}");
    // The public key OpenSSL derives is the one keygen wrote.
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        std::fs::read_to_string(out.join("signing.pub")).unwrap()
    );
    let script = "import sys\n\
        from cryptography.hazmat.primitives.serialization import load_pem_private_key\n\
        load_pem_private_key(open(sys.argv[1], 'rb').read(), None)\n";
    let o = Command::new("python3")
        .args(["-c", script, s(&key)])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "pyca/cryptography refuses the key: {o:?}"
    );
}

#[test]
fn verify_proof_exits_1_for_any_defect_inside_the_proof_and_2_for_io() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let data = dir.path().join("data");
    build_ledger(&data, &k, 60, 20);
    let o = run(&["proof", "--data", s(&data), "--index", "7"]);
    assert!(o.status.success(), "{o:?}");
    let good = String::from_utf8(o.stdout).unwrap();
    let file = dir.path().join("p.json");
    let check = |bytes: &[u8]| {
        std::fs::write(&file, bytes).unwrap();
        run(&["verify-proof", "--vkey", s(&k.vkey), s(&file)])
    };
    assert_eq!(check(good.as_bytes()).status.code(), Some(0));
    let dup = good.replacen("\"index\": 7,", "\"index\": 7, \"index\": 8,", 1);
    let unknown = good.replacen("\"index\": 7,", "\"index\": 7, \"extra\": 1,", 1);
    let missing = good.replacen("\"index\": 7,", "", 1);
    let float = good.replacen("\"index\": 7,", "\"index\": 7.0,", 1);
    let bom = format!("\u{feff}{good}");
    let trailing = format!("{good}{{}}");
    let mut bad_utf8 = good.clone().into_bytes();
    let at = good.find("cardiology").unwrap();
    bad_utf8[at] = 0xff;
    for (what, bytes) in [
        ("duplicate member", dup.as_bytes()),
        ("unknown member", unknown.as_bytes()),
        ("missing member", missing.as_bytes()),
        ("float index", float.as_bytes()),
        ("BOM", bom.as_bytes()),
        ("trailing data", trailing.as_bytes()),
        ("invalid UTF-8", &bad_utf8),
        ("not JSON", b"{\"format\": "),
        ("unknown format", b"{\"format\": \"x\"}"),
    ] {
        assert_ne!(bytes, good.as_bytes(), "{what}: the edit did not apply");
        let o = check(bytes);
        assert_eq!(o.status.code(), Some(1), "{what}: {o:?}");
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("proof INVALID"),
            "{what}: {o:?}"
        );
    }
    // Not the proof's fault: usage / I/O.
    let o = run(&["verify-proof", "--vkey", s(&k.vkey), "/nonexistent/p.json"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let o = run(&["verify-proof", "--vkey", s(&file), s(&file)]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
}

#[test]
fn proof_of_an_event_past_the_end_says_it_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let data = dir.path().join("data");
    build_ledger(&data, &k, 60, 20);
    assert!(
        run(&["proof", "--data", s(&data), "--index", "59"])
            .status
            .success()
    );
    for index in ["60", "61", "100000"] {
        let o = run(&["proof", "--data", s(&data), "--index", index]);
        assert_eq!(o.status.code(), Some(2), "{o:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("does not exist"), "{index}: {err}");
        assert!(!err.contains("not sealed"), "{index}: {err}");
    }
}

#[test]
fn a_corrupt_frame_is_not_also_a_checkpoint_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let data = dir.path().join("data");
    build_ledger(&data, &k, 60, 20);
    let path = segment_path(&data, 1);
    let mut reader = FrameReader::open(&path).unwrap();
    let offset = reader.next_frame().unwrap().unwrap().offset;
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[offset as usize + 8 + 40] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let o = run(&["verify", "--data", s(&data), "--vkey", s(&k.vkey), "--json"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let kinds: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["entry_corrupt"], "{v}");
    assert_eq!(v["errors"][0]["index"], 20);
}

#[test]
fn an_entry_with_a_duplicate_member_fails_verify() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let data = dir.path().join("data");
    let good = entry(1);
    // Two `time` members: readers keeping the first and the last disagree.
    let text = String::from_utf8(good.bytes.clone()).unwrap();
    let dup = text.replacen(
        "\"time\":",
        "\"time\":\"1999-01-01T00:00:00Z\",\"time\":",
        1,
    );
    assert_ne!(dup, text);
    let (mut ledger, _) = Ledger::open(&data, k.signer(), policy(10)).unwrap();
    ledger
        .append(&[
            entry(0),
            LedgerEntry {
                time_ms: good.time_ms,
                bytes: dup.into_bytes(),
            },
            entry(2),
        ])
        .unwrap();
    ledger.close().unwrap();
    let o = run(&["verify", "--data", s(&data), "--vkey", s(&k.vkey), "--json"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let e = &v["errors"][0];
    assert_eq!(e["kind"], "entry", "{v}");
    assert_eq!(e["index"], 1, "{v}");
    assert!(e["detail"].as_str().unwrap().contains("repeats"), "{v}");
}

#[test]
fn human_output_never_echoes_control_characters() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let data = dir.path().join("data");
    build_ledger(&data, &k, 30, 10);
    let reader = LedgerReader::open(&data).unwrap();
    let query = BundleQuery {
        q: "actor.user:u0001".into(),
        from: None,
        to: None,
        requested_by: None,
        created: "2026-11-28T09:00:00Z".into(),
    };
    let mut good = Vec::new();
    bundle::build_bundle(&reader, &k.signer(), &query, &[1, 2], &mut good).unwrap();
    // A hostile tar member name: clear the screen, retitle the terminal.
    let mut archive = tar::Archive::new(good.as_slice());
    let mut b = tar::Builder::new(Vec::new());
    for (i, e) in archive.entries().unwrap().enumerate() {
        let mut e = e.unwrap();
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut body).unwrap();
        let mut h = e.header().clone();
        if i == 1 {
            h.set_path("\u{1b}[2J\u{1b}]0;pwned\u{7}\u{9b}x").unwrap();
            h.set_cksum();
        }
        b.append(&h, body.as_slice()).unwrap();
    }
    let file = dir.path().join("hostile.tar");
    std::fs::write(&file, b.into_inner().unwrap()).unwrap();
    let o = run(&["verify", "--bundle", s(&file), "--vkey", s(&k.vkey)]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert_no_controls(&o);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("\\u{1b}"),
        "{o:?}"
    );

    // A genuine bundle whose signed query holds DEL and a C1 CSI, which
    // JSON string escaping leaves as they are.
    let hostile = BundleQuery {
        q: "x\u{7f}\u{9b}2J\u{1b}[31m".into(),
        requested_by: Some("po\u{9b}1A".into()),
        ..query
    };
    let mut bytes = Vec::new();
    bundle::build_bundle(&reader, &k.signer(), &hostile, &[1], &mut bytes).unwrap();
    std::fs::write(&file, bytes).unwrap();
    let o = run(&["verify", "--bundle", s(&file), "--vkey", s(&k.vkey)]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_no_controls(&o);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("\\u{9b}2J"),
        "{o:?}"
    );

    // A proof whose format names an escape sequence.
    let p = dir.path().join("p.json");
    std::fs::write(&p, "{\"format\": \"\\u001b[2J\\u009b\"}").unwrap();
    let o = run(&["verify-proof", "--vkey", s(&k.vkey), s(&p)]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert_no_controls(&o);

    // verify and checkpoint of a clean ledger print only plain text.
    let o = run(&["verify", "--data", s(&data), "--vkey", s(&k.vkey)]);
    assert!(o.status.success(), "{o:?}");
    assert_no_controls(&o);
    let o = run(&["checkpoint", "--data", s(&data)]);
    assert!(o.status.success(), "{o:?}");
    assert_no_controls(&o);
}

#[test]
fn a_bundle_accepts_zero_padding_but_not_data_after_the_archive() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let data = dir.path().join("data");
    build_ledger(&data, &k, 30, 10);
    let reader = LedgerReader::open(&data).unwrap();
    let query = BundleQuery {
        q: "*".into(),
        from: None,
        to: None,
        requested_by: None,
        created: "2026-11-28T09:00:00Z".into(),
    };
    let mut good = Vec::new();
    bundle::build_bundle(&reader, &k.signer(), &query, &[3], &mut good).unwrap();
    assert!(bundle::check_bundle(good.as_slice(), &k.verifier).ok());
    // GNU tar pads to 10 KiB records.
    let mut padded = good.clone();
    padded.extend_from_slice(&[0u8; 10240]);
    assert!(bundle::check_bundle(padded.as_slice(), &k.verifier).ok());
    for extra in [&b"hidden"[..], &[0u8; 70 << 10]] {
        let mut bad = good.clone();
        bad.extend_from_slice(extra);
        let r = bundle::check_bundle(bad.as_slice(), &k.verifier);
        assert!(!r.ok());
        let kinds: Vec<_> = r.errors.iter().map(|e| e.kind()).collect();
        assert_eq!(kinds, ["trailing_data"]);
    }
}

#[test]
fn verify_warns_about_a_stray_open_segment_and_a_damaged_log_tree() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let data = dir.path().join("data");
    build_ledger(&data, &k, 30, 10);
    let warnings = |data: &Path| {
        let o = run(&["verify", "--data", s(data), "--vkey", s(&k.vkey), "--json"]);
        assert!(o.status.success(), "{o:?}");
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["warnings"].to_string()
    };
    assert_eq!(warnings(&data), "[]");
    let segments = data.join("ledger/segments");
    std::fs::copy(segment_path(&data, 2), segments.join("000000000009.open")).unwrap();
    let w = warnings(&data);
    assert!(w.contains("unexpected open segment(s) [3, 9]"), "{w}");
    std::fs::remove_file(segments.join("000000000009.open")).unwrap();
    // A level-00 shorter than its header reads as empty.
    std::fs::write(data.join("ledger/tree/level-00"), b"short").unwrap();
    let w = warnings(&data);
    assert!(w.contains("holds 0 of 3 segment records"), "{w}");
    std::fs::write(data.join("ledger/tree/level-00"), [0u8; 64]).unwrap();
    let w = warnings(&data);
    assert!(w.contains("tree/level-00 is malformed"), "{w}");
}

#[test]
fn proof_output_escapes_c1_and_bidi_characters_and_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let data = dir.path().join("data");
    let mut hostile = entry(1);
    let text = String::from_utf8(hostile.bytes).unwrap();
    // JSON escapes C0 itself; DEL, C1 (CSI) and bidi overrides it leaves raw.
    hostile.bytes = text
        .replacen("Viewed", "\u{9b}2J\u{7f}\u{202e}Viewed", 1)
        .into_bytes();
    let (mut ledger, _) = Ledger::open(&data, k.signer(), policy(2)).unwrap();
    ledger.append(&[entry(0), hostile]).unwrap();
    ledger.close().unwrap();
    let o = run(&["proof", "--data", s(&data), "--index", "1"]);
    assert!(o.status.success(), "{o:?}");
    assert_no_controls(&o);
    assert!(!String::from_utf8_lossy(&o.stdout).contains('\u{202e}'));
    let file = dir.path().join("p.json");
    std::fs::write(&file, &o.stdout).unwrap();
    let o = run(&["verify-proof", "--vkey", s(&k.vkey), s(&file)]);
    assert!(o.status.success(), "{o:?}");
    assert_no_controls(&o);
}

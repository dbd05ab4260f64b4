//! The `sealtrail-verify` binary over every conformance vector in
//! `docs/vectors/`: the crate alone (no service) gives each its verdict, its
//! exit code and, for directories, its error kinds and verified count.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods)]

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/vectors")
}

fn run(args: &[&str]) -> (i32, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sealtrail-verify")).args(args).output().unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap(), json, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn every_conformance_vector_gets_its_verdict_from_the_binary() {
    let dir = vectors();
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("vectors.json")).unwrap()).unwrap();
    let list = manifest["vectors"].as_array().unwrap();
    assert!(list.len() >= 40, "the vectors are there");
    let path = |p: &Value| dir.join(p.as_str().unwrap()).to_str().unwrap().to_owned();
    let mut wrong = Vec::new();
    for v in list {
        let (file, vkey) = (path(&v["path"]), path(&v["vkey"]));
        let mut args: Vec<String> = match v["kind"].as_str().unwrap() {
            "dir" => vec!["dir".into(), "--data".into(), file, "--vkey".into(), vkey],
            "proof" => vec!["proof".into(), "--vkey".into(), vkey, file],
            "bundle" => vec!["bundle".into(), "--vkey".into(), vkey, file],
            k => panic!("kind {k}"),
        };
        for w in v["witness_vkeys"].as_array().into_iter().flatten() {
            args.extend(["--witness-vkey".into(), path(w)]);
        }
        if let Some(q) = v["quorum"].as_u64() {
            args.extend(["--witness-quorum".into(), q.to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, out, stderr) = run(&args);
        let want_ok = v["ok"].as_bool().unwrap();
        let name = v["name"].as_str().unwrap();
        if code != if want_ok { 0 } else { 1 } || out["ok"].as_bool() != Some(want_ok) {
            wrong.push(format!("{name}: exit {code}, {out} {stderr}"));
            continue;
        }
        if v["kind"] == "dir" {
            let got: BTreeSet<&str> = out["errors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["kind"].as_str().unwrap())
                .collect();
            let want: BTreeSet<&str> =
                v["errors"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
            if got != want {
                wrong.push(format!("{name}: kinds {got:?}, want {want:?}"));
            }
            if let Some(events) = v["events"].as_u64()
                && out["events"].as_u64() != Some(events)
            {
                wrong.push(format!("{name}: events {}, want {events}", out["events"]));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(run(&[]).0, 2);
    assert_eq!(run(&["dir", "--data", "/nonexistent"]).0, 2, "--vkey is required");
    let vkey = vectors().join("keys/signing.vkey");
    let vkey = vkey.to_str().unwrap();
    assert_eq!(run(&["proof", "--vkey", vkey]).0, 2, "no proof file");
    assert_eq!(run(&["bundle", "--vkey", vkey, "--bogus", "x", "f"]).0, 2);
    let data = vectors().join("dir-witnessed");
    let data = data.to_str().unwrap();
    let w = vectors().join("keys/witness.vkey");
    let w = w.to_str().unwrap();
    assert_eq!(
        run(&["dir", "--data", data, "--vkey", vkey, "--witness-vkey", w, "--witness-quorum", "2"])
            .0,
        2,
        "a quorum above the keys given"
    );
}

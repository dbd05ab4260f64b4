//! The transparency-dev RFC 6962 / RFC 9162 proof vectors, read from
//! `$SEALTRAIL_MERKLE_VECTORS` or `../shared/testdata/merkle`. The test fails,
//! never skips, when the vectors are missing: a verifier that was never run
//! against them is not verified.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)] // test code

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sealtrail::ledger::hash::{Hash, leaf_hash, merkle_root};
use sealtrail::ledger::merkle::{
    LeafHashes, consistency_proof, inclusion_proof, verify_consistency, verify_inclusion,
};
use serde::Deserialize;

/// Counts present when the vectors were pinned (transparency-dev/merkle @ 417fb0c).
const MIN_INCLUSION: usize = 98;
const MIN_CONSISTENCY: usize = 98;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Inclusion {
    leaf_idx: u64,
    tree_size: u64,
    root: String,
    leaf_hash: String,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Consistency {
    size1: u64,
    size2: u64,
    root1: String,
    root2: String,
    proof: Option<Vec<String>>,
    desc: String,
    #[serde(rename = "wantErr")]
    want_err: bool,
}

fn vectors_dir() -> PathBuf {
    match std::env::var_os("SEALTRAIL_MERKLE_VECTORS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/merkle"),
    }
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read vector directory {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            json_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
    out.sort();
}

fn load<T: for<'de> Deserialize<'de>>(kind: &str, min: usize) -> Vec<(PathBuf, T)> {
    let dir = vectors_dir().join(kind);
    let mut files = Vec::new();
    json_files(&dir, &mut files);
    assert!(
        files.len() >= min,
        "{} holds {} {kind} vectors, want at least {min}",
        dir.display(),
        files.len()
    );
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let v =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, v)
        })
        .collect()
}

fn b64(s: &str) -> Vec<u8> {
    STANDARD.decode(s).unwrap()
}

fn b64_all(proof: &Option<Vec<String>>) -> Vec<Vec<u8>> {
    proof.iter().flatten().map(|p| b64(p)).collect()
}

/// Formats one failed vector, or `None` when the outcome is the wanted one.
fn outcome<T, E: std::fmt::Display>(
    path: &Path,
    desc: &str,
    want_err: bool,
    got: Result<T, E>,
) -> Option<String> {
    match (want_err, got) {
        (false, Err(e)) => Some(format!("{} ({desc}): rejected: {e}", path.display())),
        (true, Ok(_)) => Some(format!("{} ({desc}): accepted, want error", path.display())),
        _ => None,
    }
}

#[test]
fn inclusion_vectors() {
    let vectors = load::<Inclusion>("inclusion", MIN_INCLUSION);
    let failures: Vec<String> = vectors
        .iter()
        .filter_map(|(path, v)| {
            let got = verify_inclusion(
                v.leaf_idx,
                v.tree_size,
                &b64(&v.leaf_hash),
                &b64_all(&v.proof),
                &b64(&v.root),
            );
            outcome(path, &v.desc, v.want_err, got)
        })
        .collect();
    assert!(
        failures.is_empty(),
        "failed vectors:\n{}",
        failures.join("\n")
    );
}

#[test]
fn consistency_vectors() {
    let vectors = load::<Consistency>("consistency", MIN_CONSISTENCY);
    let failures: Vec<String> = vectors
        .iter()
        .filter_map(|(path, v)| {
            let got = verify_consistency(
                v.size1,
                v.size2,
                &b64_all(&v.proof),
                &b64(&v.root1),
                &b64(&v.root2),
            );
            outcome(path, &v.desc, v.want_err, got)
        })
        .collect();
    assert!(
        failures.is_empty(),
        "failed vectors:\n{}",
        failures.join("\n")
    );
}

/// The eight leaves the vectors' trees are built from.
fn classic_leaves() -> Vec<Hash> {
    [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
    .iter()
    .map(|h| leaf_hash(&hex::decode(h).unwrap()))
    .collect()
}

/// Our generator reproduces every happy-path proof over the classic leaves
/// byte for byte (vectors over other trees are skipped, and counted).
#[test]
fn generation_reproduces_happy_paths() {
    let leaves = classic_leaves();
    let root_of = |n: u64| merkle_root(&leaves[..n as usize]);
    let mut reproduced = 0;

    for (path, v) in load::<Inclusion>("inclusion", MIN_INCLUSION) {
        if v.want_err || v.tree_size > 8 || b64(&v.root) != root_of(v.tree_size) {
            continue;
        }
        let got = inclusion_proof(v.leaf_idx, v.tree_size, &mut LeafHashes(&leaves)).unwrap();
        let got: Vec<Vec<u8>> = got.iter().map(|h| h.to_vec()).collect();
        assert_eq!(got, b64_all(&v.proof), "{}", path.display());
        assert_eq!(leaves[v.leaf_idx as usize].to_vec(), b64(&v.leaf_hash));
        reproduced += 1;
    }
    for (path, v) in load::<Consistency>("consistency", MIN_CONSISTENCY) {
        if v.want_err || v.size2 > 8 || b64(&v.root2) != root_of(v.size2) {
            continue;
        }
        assert_eq!(b64(&v.root1), root_of(v.size1), "{}", path.display());
        let got = consistency_proof(v.size1, v.size2, &mut LeafHashes(&leaves)).unwrap();
        let got: Vec<Vec<u8>> = got.iter().map(|h| h.to_vec()).collect();
        assert_eq!(got, b64_all(&v.proof), "{}", path.display());
        reproduced += 1;
    }
    // inclusion/{0..4} and consistency/{0..4} happy paths.
    assert!(reproduced >= 10, "reproduced only {reproduced} happy paths");
}

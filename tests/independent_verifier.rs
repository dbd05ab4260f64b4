//! Runs the independent verifier `tests/independent/verify_ledger.py`, written
//! from docs/LEDGER.md alone, against ledgers built by the real CLI: if the
//! document leaves out or misstates anything the formats depend on, these
//! tests fail.
//!
//! They need `python3` with the `cryptography` and `zstandard` modules (`.ci/run` installs them)
//! and FAIL, never skip, when it is missing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)] // test code

use serde_json::Value;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_sealtrail");

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn script() -> PathBuf {
    repo().join("tests/independent/verify_ledger.py")
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn require_python() {
    let out = run(Command::new("python3").args(["-c", "import cryptography, zstandard"]));
    assert!(
        out.status.success(),
        "python3 with the `cryptography` and `zstandard` modules is required for the independent \
         verifier (python3 -m pip install cryptography zstandard): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs the sealtrail binary and returns its stdout; panics unless it succeeds.
fn sealtrail<S: AsRef<OsStr>>(args: &[S]) -> String {
    let out = run(Command::new(BIN).args(args));
    assert!(
        out.status.success(),
        "sealtrail {:?} failed: {}",
        args.iter().map(|a| a.as_ref()).collect::<Vec<_>>(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs the Python verifier; returns its exit code and JSON report.
fn python_verify(mode: &str, target: &Path, vkey: &Path) -> (i32, Value) {
    python_verify_with::<&str>(mode, target, vkey, &[])
}

/// [`python_verify`] with more arguments (`--witness-vkey`, ...).
fn python_verify_with<S: AsRef<OsStr>>(
    mode: &str,
    target: &Path,
    vkey: &Path,
    extra: &[S],
) -> (i32, Value) {
    let out = run(Command::new("python3")
        .arg(script())
        .arg(mode)
        .arg(target)
        .arg("--vkey")
        .arg(vkey)
        .args(extra));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "verifier printed no JSON ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), report)
}

fn assert_ok(code: i32, report: &Value) {
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(code, 0, "{report}");
}

fn assert_fails_with(code: i32, report: &Value, kind: &str) {
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(code, 1, "{report}");
    let kinds: Vec<&str> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(kinds.contains(&kind), "want {kind}, got {report}");
}

fn event_line(i: u64) -> String {
    format!(
        r#"{{"id":"evt-{i}","time":"2026-11-27T14:{m:02}:{s:02}.{ms:03}Z","category":"access","action":"view","outcome":"success","actor":{{"user":"u{u:04}","role":"clinician"}},"patient":{{"id":"MRN-{p:07}"}}}}"#,
        m = (i / 60) % 60,
        s = i % 60,
        ms = (i * 7) % 1000,
        u = i % 97,
        p = i % 5003,
    )
}

/// Imports events `range` with the given segment size; the age limit is an
/// hour so segment boundaries depend on counts alone.
fn import(dir: &Path, data: &Path, key: &Path, range: std::ops::Range<u64>, per_segment: u64) {
    let input = dir.join(format!("events-{}.ndjson", range.start));
    let lines: Vec<String> = range.map(event_line).collect();
    fs::write(&input, lines.join("\n") + "\n").unwrap();
    let config = dir.join(format!("config-{per_segment}.toml"));
    fs::write(
        &config,
        format!("[ledger]\nseal_max_events = {per_segment}\nseal_max_age_ms = 3600000\n"),
    )
    .unwrap();
    let out = sealtrail(&[
        OsStr::new("import"),
        OsStr::new("--data"),
        data.as_os_str(),
        OsStr::new("--key"),
        key.as_os_str(),
        OsStr::new("--config"),
        config.as_os_str(),
        // No detection rules: the ledger holds exactly the imported events.
        OsStr::new("--rules"),
        dir.join("no-rules").as_os_str(),
        input.as_os_str(),
    ]);
    assert!(out.contains("rejected 0"), "{out}");
}

fn segment_path(data: &Path, number: u64) -> PathBuf {
    data.join(format!("ledger/segments/{number:012}.seg"))
}

/// File offset and length of entry frame `i` of a segment (walking the frames).
fn frame(bytes: &[u8], i: usize) -> (usize, usize) {
    let origin_len = u16::from_be_bytes([bytes[10], bytes[11]]) as usize;
    // Version 2 headers carry the 32-byte dictionary hash (LEDGER.md §4.8).
    let dict_len = if bytes[9] == 2 { 32 } else { 0 };
    let mut pos = 64 + dict_len + origin_len;
    for _ in 0..i {
        pos += 8 + u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
    }
    let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
    (pos, len)
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Python present, a temp dir with a fresh key: (dir, data dir, signing
/// key, verifier key).
fn fixture() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    require_python();
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    let data = tmp.path().join("data");
    sealtrail(&[
        OsStr::new("keygen"),
        OsStr::new("--out"),
        keys.as_os_str(),
        OsStr::new("--name"),
        OsStr::new("clinic.example/log"),
    ]);
    let (key, vkey) = (keys.join("signing.key"), keys.join("signing.vkey"));
    (tmp, data, key, vkey)
}

#[test]
fn python_verifier_agrees_with_cli_built_ledger_and_detects_tampering() {
    let (tmp, data, key, vkey) = fixture();
    // 300 events in segments of 50, then 200 in one segment of four blocks
    // (the last one short), so the block index is exercised too.
    import(tmp.path(), &data, &key, 0..300, 50);
    import(tmp.path(), &data, &key, 300..500, 200);

    let rust: Value = serde_json::from_str(&sealtrail(&[
        OsStr::new("verify"),
        OsStr::new("--data"),
        data.as_os_str(),
        OsStr::new("--vkey"),
        vkey.as_os_str(),
        OsStr::new("--json"),
    ]))
    .unwrap();
    assert_eq!(
        (rust["segments"].as_u64(), rust["events"].as_u64()),
        (Some(7), Some(500))
    );

    let (code, report) = python_verify("--data", &data, &vkey);
    assert_ok(code, &report);
    assert_eq!(report["segments"], 7, "{report}");
    assert_eq!(report["events"], 500, "{report}");

    // Inclusion proofs: first and last events, segment boundaries, and
    // events in every block of the multi-block segment.
    for index in [0u64, 49, 50, 299, 300, 363, 364, 430, 499] {
        let proof = tmp.path().join(format!("proof-{index}.json"));
        fs::write(
            &proof,
            sealtrail(&[
                OsStr::new("proof"),
                OsStr::new("--data"),
                data.as_os_str(),
                OsStr::new("--index"),
                OsStr::new(&index.to_string()),
            ]),
        )
        .unwrap();
        let (code, report) = python_verify("--proof", &proof, &vkey);
        assert_ok(code, &report);
        assert_eq!(report["index"], index, "{report}");
    }
    for old in [1u64, 4, 6] {
        let proof = tmp.path().join(format!("consistency-{old}.json"));
        fs::write(
            &proof,
            sealtrail(&[
                OsStr::new("proof"),
                OsStr::new("--data"),
                data.as_os_str(),
                OsStr::new("--consistency-from"),
                OsStr::new(&old.to_string()),
            ]),
        )
        .unwrap();
        let (code, report) = python_verify("--proof", &proof, &vkey);
        assert_ok(code, &report);
    }

    // A proof whose entry was changed by one character must fail.
    let proof_text = fs::read_to_string(tmp.path().join("proof-364.json")).unwrap();
    let forged = tmp.path().join("forged.json");
    fs::write(&forged, proof_text.replacen("evt-364", "evt-365", 1)).unwrap();
    let (code, report) = python_verify("--proof", &forged, &vkey);
    assert_fails_with(code, &report, "proof");

    // One flipped byte inside an entry of a sealed segment: the frame CRC catches it.
    let flipped = tmp.path().join("flipped");
    copy_dir(&data, &flipped);
    let seg = segment_path(&flipped, 2);
    let mut bytes = fs::read(&seg).unwrap();
    let (at, _) = frame(&bytes, 10);
    bytes[at + 8 + 20] ^= 0x01;
    fs::write(&seg, &bytes).unwrap();
    let (code, report) = python_verify("--data", &flipped, &vkey);
    assert_fails_with(code, &report, "entry_corrupt");

    // The same with the CRC recomputed, as a deliberate forger would: the
    // block root in the footer catches it.
    let forged = tmp.path().join("forged");
    copy_dir(&data, &forged);
    let seg = segment_path(&forged, 6);
    let mut bytes = fs::read(&seg).unwrap();
    let (at, len) = frame(&bytes, 70);
    let user = at
        + 8
        + bytes[at + 8..at + 8 + len]
            .windows(6)
            .position(|w| w == b"\"user\"")
            .unwrap();
    bytes[user + 10] ^= 0x01; // a digit of the user id
    let crc = crc32c::crc32c(&bytes[at + 8..at + 8 + len]);
    bytes[at + 4..at + 8].copy_from_slice(&crc.to_be_bytes());
    fs::write(&seg, &bytes).unwrap();
    let (code, report) = python_verify("--data", &forged, &vkey);
    assert_fails_with(code, &report, "entry_altered");
}

#[test]
fn python_verifier_reads_compacted_segments_and_their_dictionaries() {
    let (tmp, data, key, vkey) = fixture();
    // Enough events for the compactor to train a dictionary (4,096).
    import(tmp.path(), &data, &key, 0..5000, 1000);
    for n in 0..5 {
        let bytes = fs::read(segment_path(&data, n)).unwrap();
        assert_eq!(&bytes[8..10], &[0, 2], "segment {n} is not compacted");
    }
    let (code, report) = python_verify("--data", &data, &vkey);
    assert_ok(code, &report);
    assert_eq!(report["events"], 5000, "{report}");
    for index in [0u64, 1999, 4242] {
        let proof = tmp.path().join(format!("proof-{index}.json"));
        fs::write(
            &proof,
            sealtrail(&[
                OsStr::new("proof"),
                OsStr::new("--data"),
                data.as_os_str(),
                OsStr::new("--index"),
                OsStr::new(&index.to_string()),
            ]),
        )
        .unwrap();
        let (code, report) = python_verify("--proof", &proof, &vkey);
        assert_ok(code, &report);
    }

    // A byte of a compressed frame changed and its CRC recomputed.
    let forged = tmp.path().join("forged");
    copy_dir(&data, &forged);
    let seg = segment_path(&forged, 3);
    let mut bytes = fs::read(&seg).unwrap();
    let (at, len) = frame(&bytes, 100);
    bytes[at + 8 + len / 2] ^= 0x04;
    let crc = crc32c::crc32c(&bytes[at + 8..at + 8 + len]);
    bytes[at + 4..at + 8].copy_from_slice(&crc.to_be_bytes());
    fs::write(&seg, &bytes).unwrap();
    let (code, report) = python_verify("--data", &forged, &vkey);
    assert_eq!((code, report["ok"].clone()), (1, false.into()), "{report}");
    let kind = report["errors"][0]["kind"].as_str().unwrap().to_owned();
    // Which kind depends on where the flipped bit lands: zstd frames carry
    // no checksum, so the frame may fail to decode (`entry_corrupt`), decode
    // to bytes that are no entry with a time (`entry`), or decode to other
    // bytes that miss the block root (`entry_altered`). Each is detection.
    assert!(
        ["entry_corrupt", "entry_altered", "entry"].contains(&kind.as_str()),
        "{report}"
    );

    // The footer's frame index moved by one byte for entry 70 of segment 2
    // (footer checksum recomputed): both verifiers name the index.
    let shifted = tmp.path().join("shifted");
    copy_dir(&data, &shifted);
    let seg = segment_path(&shifted, 2);
    let (mut footer, at) =
        sealtrail::ledger::segment::Footer::read_located(&seg, &mut fs::File::open(&seg).unwrap())
            .unwrap();
    footer
        .frame_offsets
        .as_mut()
        .expect("compacted: frame index")[70] += 1;
    let mut bytes = fs::read(&seg).unwrap();
    bytes.truncate(at as usize);
    bytes.extend_from_slice(&footer.to_bytes(at));
    fs::write(&seg, &bytes).unwrap();
    let (code, report) = python_verify("--data", &shifted, &vkey);
    assert_eq!((code, report["ok"].clone()), (1, false.into()), "{report}");
    assert_eq!(report["errors"][0]["kind"], "index", "{report}");

    // The dictionary altered, then missing.
    let altered = tmp.path().join("altered");
    copy_dir(&data, &altered);
    let dict = fs::read_dir(altered.join("ledger/dicts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "zdict"))
        .unwrap();
    let mut bytes = fs::read(&dict).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    fs::write(&dict, &bytes).unwrap();
    let (code, report) = python_verify("--data", &altered, &vkey);
    assert_fails_with(code, &report, "dictionary");
    fs::remove_file(&dict).unwrap();
    let (code, report) = python_verify("--data", &altered, &vkey);
    assert_fails_with(code, &report, "dictionary");
}

/// The worked example in docs/LEDGER.md: both verifiers accept the files the
/// appendix describes.
#[test]
fn python_verifier_accepts_the_documented_example() {
    require_python();
    let example = repo().join("tests/independent/example");
    let vkey = example.join("signing.vkey");
    let data = example.join("data");
    let (code, report) = python_verify("--data", &data, &vkey);
    assert_ok(code, &report);
    assert_eq!(
        (report["segments"].clone(), report["events"].clone()),
        (2.into(), 3.into())
    );
    for proof in ["inclusion-2.json", "consistency-1.json"] {
        let (code, report) = python_verify("--proof", &example.join(proof), &vkey);
        assert_ok(code, &report);
    }
    let rust: Value = serde_json::from_str(&sealtrail(&[
        OsStr::new("verify"),
        OsStr::new("--data"),
        data.as_os_str(),
        OsStr::new("--vkey"),
        vkey.as_os_str(),
        OsStr::new("--json"),
    ]))
    .unwrap();
    assert_eq!(rust["ok"], true, "{rust}");
    assert_eq!(
        rust["checkpoint"]["root"], "xNBQVLGSnGsg7kz1X+yl6P4ORV9R0YJriO3JT7uw0o8=",
        "{rust}"
    );
}

/// Encrypted segments (format 3, LEDGER.md §4.9): without the KEK the Python
/// verifier checks the stored leaf hashes, chain and signature; with it,
/// every entry is decrypted and rehashed. A changed ciphertext byte is only
/// visible with the KEK; a changed stored leaf hash is visible without it.
#[test]
fn python_verifier_reads_encrypted_segments_with_and_without_the_kek() {
    let (tmp, data, key, vkey) = fixture();
    let kek = tmp.path().join("kek");
    sealtrail(&[
        OsStr::new("key"),
        OsStr::new("gen-kek"),
        OsStr::new("--out"),
        kek.as_os_str(),
    ]);
    let input = tmp.path().join("events.ndjson");
    let lines: Vec<String> = (0..70).map(event_line).collect();
    fs::write(&input, lines.join("\n") + "\n").unwrap();
    let config = tmp.path().join("config.toml");
    fs::write(
        &config,
        format!(
            "[ledger]\nseal_max_events = 50\nseal_max_age_ms = 3600000\nencryption_key_file = {:?}\n",
            kek.to_str().unwrap()
        ),
    )
    .unwrap();
    let out = run(Command::new(BIN)
        .args(["import", "--data"])
        .arg(&data)
        .arg("--key")
        .arg(&key)
        .arg("--config")
        .arg(&config)
        .arg("--rules")
        .arg(tmp.path().join("no-rules"))
        .arg(&input));
    assert!(out.status.success(), "{out:?}");
    let with_kek = |data: &Path| {
        let out = run(Command::new("python3")
            .arg(script())
            .arg("--data")
            .arg(data)
            .arg("--vkey")
            .arg(&vkey)
            .arg("--kek")
            .arg(&kek));
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        (out.status.code().unwrap_or(-1), report)
    };
    let (code, report) = python_verify("--data", &data, &vkey);
    assert_ok(code, &report);
    assert_eq!(report["events"], 70, "{report}");
    assert_eq!(report["payloads_unchecked"], 70, "{report}");
    let (code, report) = with_kek(&data);
    assert_ok(code, &report);
    assert_eq!(report["payloads_unchecked"], 0, "{report}");

    // Frame 3 of segment 1: payload = leaf (32) || nonce (12) || ciphertext.
    let tamper = |name: &str, at: usize| {
        let copy = tmp.path().join(name);
        copy_dir(&data, &copy);
        let path = segment_path(&copy, 1);
        let mut bytes = fs::read(&path).unwrap();
        assert_eq!(bytes[9], 3, "format 3");
        let (pos, len) = frame(&bytes, 3);
        bytes[pos + 8 + at] ^= 0x01;
        let crc = crc32c::crc32c(&bytes[pos + 8..pos + 8 + len]);
        bytes[pos + 4..pos + 8].copy_from_slice(&crc.to_be_bytes());
        fs::write(&path, bytes).unwrap();
        copy
    };
    let ciphertext = tamper("ciphertext", 50);
    let (code, report) = python_verify("--data", &ciphertext, &vkey);
    assert_ok(code, &report);
    let (code, report) = with_kek(&ciphertext);
    assert_fails_with(code, &report, "entry_corrupt");
    let leaf = tamper("leaf", 0);
    let (code, report) = python_verify("--data", &leaf, &vkey);
    assert_fails_with(code, &report, "entry_altered");
}

/// docs/vectors/ (LEDGER.md §12, issue #14): the independent verifier gives
/// every vector the verdict sealtrail gives, and the verified event count
/// where the manifest names one (`events`: nothing unsigned counts). It
/// stops at the first error, so its first kind must be one of the vector's
/// (for directories and bundles; `verify-proof` folds most kinds into
/// `proof`). Witness keys and quorum come from the manifest.
#[test]
fn python_verifier_agrees_on_every_conformance_vector() {
    require_python();
    let root = repo().join("docs/vectors");
    let manifest: Value =
        serde_json::from_slice(&fs::read(root.join("vectors.json")).unwrap()).unwrap();
    let mut checked = 0;
    let mut wrong = Vec::new();
    for v in manifest["vectors"].as_array().unwrap() {
        let mode = match v["kind"].as_str().unwrap() {
            "dir" => "--data",
            "proof" => "--proof",
            "bundle" => "--bundle",
            other => panic!("unknown vector kind {other}"),
        };
        let mut extra = Vec::new();
        for w in v["witness_vkeys"].as_array().into_iter().flatten() {
            extra.push(OsStr::new("--witness-vkey").to_owned());
            extra.push(root.join(w.as_str().unwrap()).into_os_string());
        }
        if let Some(q) = v["quorum"].as_u64() {
            extra.push(OsStr::new("--witness-quorum").to_owned());
            extra.push(q.to_string().into());
        }
        let (code, report) = python_verify_with(
            mode,
            &root.join(v["path"].as_str().unwrap()),
            &root.join(v["vkey"].as_str().unwrap()),
            &extra,
        );
        let want = v["ok"].as_bool().unwrap();
        let errors = report["errors"].as_array().map_or(0, Vec::len);
        let kind_ok = want
            || v["kind"] == "proof"
            || v["errors"]
                .as_array()
                .unwrap()
                .contains(&report["errors"][0]["kind"]);
        let events_ok = v.get("events").is_none_or(|n| report["events"] == *n);
        if report["ok"] != want
            || !events_ok
            || code != if want { 0 } else { 1 }
            || (errors == 0) != want
            || !kind_ok
        {
            wrong.push(format!("{}: python says {report}", v["name"]));
        }
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} vectors");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

//! Encryption at rest: payloads encrypted as written, verify with and without
//! the KEK, tampering, KEK rotation (also interrupted), wrong KEK at start,
//! search over an encrypted ledger, and a data directory of the old format.

use crate::util::*;
use reqwest::blocking::Client;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn run(args: &[&str], paths: &[(&str, &Path)]) -> Output {
    let mut c = Command::new(bin());
    c.args(args);
    for (flag, p) in paths {
        c.arg(flag).arg(p);
    }
    c.env_remove("SEALTRAIL_KEK");
    c.output().unwrap()
}

fn import(cfg: &Path, input: &Path) -> Output {
    Command::new(bin())
        .args(["import", "--config"])
        .arg(cfg)
        .arg(input)
        .env_remove("SEALTRAIL_KEK")
        .output()
        .unwrap()
}

/// Every entry of the sealed segments, decrypted in this process with `kek`.
fn decrypted_entries(data: &Path, kek: &Path) -> Vec<Value> {
    use sealtrail::ledger::atrest;
    atrest::register(data, atrest::Kek::load_file(kek).unwrap()).unwrap();
    let mut out = Vec::new();
    for f in segment_files(data) {
        if f.extension().is_some_and(|e| e == "seg") {
            let mut r = sealtrail::ledger::segment::FrameReader::open(&f).unwrap();
            while let Some(frame) = r.next_frame().unwrap() {
                out.push(serde_json::from_slice(&frame.payload).unwrap());
            }
        }
    }
    out
}

fn gen_kek(path: &Path) {
    let out = run(&["key", "gen-kek"], &[("--out", path)]);
    assert!(out.status.success(), "{out:?}");
}

/// `verify --json`, with `--kek` when given: (exit code, report).
fn verify(data: &Path, k: &Keys, kek: Option<&Path>) -> (i32, Value) {
    let mut paths = vec![("--data", data), ("--vkey", k.vkey.as_path())];
    if let Some(kek) = kek {
        paths.push(("--kek", kek));
    }
    let out = run(&["verify", "--json"], &paths);
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("verify printed no report: {out:?}"));
    (out.status.code().unwrap_or(-1), v)
}

fn with_kek(config: String, kek: &Path) -> String {
    config.replace(
        "[ledger]\n",
        &format!(
            "[ledger]\nencryption_key_file = {:?}\n",
            kek.to_str().unwrap()
        ),
    )
}

fn segment_files(data: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(data.join("ledger/segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

fn wait_hits(c: &Client, server: &Server, q: &str, want: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = c
            .get(format!("{}/v1/search", server.http))
            .query(&[("q", q)])
            .send()
            .unwrap();
        let v: Value = r.json().unwrap();
        if v["hits"].as_array().is_some_and(|h| h.len() == want) {
            return v;
        }
        assert!(Instant::now() < deadline, "{q}: {v}");
        std::thread::sleep(Duration::from_millis(50)); // polling a condition
    }
}

/// Flips one ciphertext byte of the first frame of sealed segment 0 and
/// fixes the frame CRC, so only the AEAD can notice.
fn tamper_ciphertext(data: &Path) {
    let path = segment_path(data, 0);
    let mut b = std::fs::read(&path).unwrap();
    assert_eq!(
        u16::from_be_bytes([b[8], b[9]]),
        3,
        "segment 0 is encrypted (format 3)"
    );
    let origin_len = u16::from_be_bytes([b[10], b[11]]) as usize;
    let frame = 64 + origin_len;
    let len = u32::from_be_bytes(b[frame..frame + 4].try_into().unwrap()) as usize;
    let payload = frame + 8;
    b[payload + 32 + 12 + 5] ^= 0x01; // past leaf hash and nonce
    let crc = crc32c::crc32c(&b[payload..payload + len]);
    b[frame + 4..frame + 8].copy_from_slice(&crc.to_be_bytes());
    std::fs::write(&path, b).unwrap();
}

#[test]
fn encrypted_ledger_serves_searches_and_verifies_with_and_without_the_kek() {
    let tmp = tempfile::tempdir().unwrap();
    let k = keys(&tmp.path().join("keys"));
    let kek = tmp.path().join("kek");
    gen_kek(&kek);
    let data = tmp.path().join("data");
    let config = with_kek(serve_config(&data, &k, ""), &kek);
    let server = Server::start(tmp.path(), &config);
    let c = server.client();
    let events: Vec<Value> = (0..40)
        .map(|i| serde_json::from_str(&event_json(i)).unwrap())
        .collect();
    post_events(&c, &server.http, &json!(events));
    // Hits are read back from the (encrypted) ledger, not from the index.
    let v = wait_hits(&c, &server, "patient.id:MRN-0000007", 1);
    assert_eq!(v["hits"][0]["event"]["id"], "evt-00000007", "{v}");
    assert_eq!(server.terminate(), Some(0));

    // Nothing of the events is on disk in clear, sealed or open.
    for f in segment_files(&data) {
        let bytes = std::fs::read(&f).unwrap();
        for needle in [&b"MRN-"[..], b"cardiology", b"evt-000"] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} holds plaintext",
                f.display()
            );
        }
    }
    let (code, v) = verify(&data, &k, None);
    assert_eq!(code, 0, "{v}");
    // The 40 events and the service's own (the search was audited).
    let events = v["events"].as_u64().unwrap();
    assert!(events >= 40, "{v}");
    assert_eq!(v["payloads_unchecked"].as_u64(), Some(events), "{v}");
    assert!(
        v["warnings"].to_string().contains("payloads not checked"),
        "{v}"
    );
    let (code, v) = verify(&data, &k, Some(&kek));
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["payloads_unchecked"], 0, "{v}");
    assert_eq!(v["warnings"], json!([]), "{v}");

    // Proofs are built from decrypted entries (KEK from the environment)
    // and check offline with the vkey alone.
    // Event 3 is at index 4: index 0 records the test token's creation.
    let out = Command::new(bin())
        .args(["proof", "--index", "4", "--data"])
        .arg(&data)
        .env(
            "SEALTRAIL_KEK",
            std::fs::read_to_string(&kek).unwrap().trim(),
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let proof: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        proof["entry"].as_str().unwrap().contains("evt-00000003"),
        "{proof}"
    );
    let proof_file = tmp.path().join("proof.json");
    std::fs::write(&proof_file, &out.stdout).unwrap();
    let out = Command::new(bin())
        .args(["verify-proof", "--vkey"])
        .arg(&k.vkey)
        .arg(&proof_file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = Command::new(bin())
        .args(["proof", "--index", "4", "--data"])
        .arg(&data)
        .env_remove("SEALTRAIL_KEK")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "no KEK, no proof: {out:?}");

    // A ciphertext byte changed (CRC fixed): the leaf hashes still chain,
    // but with the KEK the entry fails and is named.
    tamper_ciphertext(&data);
    let (code, v) = verify(&data, &k, None);
    assert_eq!(code, 0, "without the key only structure is checked: {v}");
    let (code, v) = verify(&data, &k, Some(&kek));
    assert_eq!(code, 1, "{v}");
    let err = &v["errors"][0];
    assert_eq!(err["kind"], "entry_corrupt", "{v}");
    assert_eq!(err["segment"], 0, "{v}");
    assert_eq!(err["index"], 0, "{v}");
    assert!(
        err["detail"].as_str().unwrap().contains("authenticate"),
        "{v}"
    );
}

#[test]
fn wrong_or_missing_kek_at_start_is_a_clear_error_and_kek_inside_data_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let k = keys(&tmp.path().join("keys"));
    let (kek, other) = (tmp.path().join("kek"), tmp.path().join("other"));
    gen_kek(&kek);
    gen_kek(&other);
    let data = tmp.path().join("data");
    let input = tmp.path().join("ev.ndjson");
    std::fs::write(&input, format!("{}\n{}\n", event_json(1), event_json(2))).unwrap();
    let import = |kek_file: Option<&Path>| {
        let mut config = serve_config(&data, &k, "");
        if let Some(f) = kek_file {
            config = with_kek(config, f);
        }
        let cfg = tmp.path().join("import.toml");
        std::fs::write(&cfg, config).unwrap();
        import(&cfg, &input)
    };
    let out = import(Some(&kek));
    assert!(out.status.success(), "{out:?}");
    let out = import(Some(&other));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another key-encryption key"), "{err}");
    let out = import(None);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no key-encryption key was given"), "{err}");
    let inside = data.join("kek");
    std::fs::copy(&kek, &inside).unwrap();
    let out = import(Some(&inside));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("inside the data directory"));
    // Nothing was appended by the refused runs.
    let (code, v) = verify(&data, &k, Some(&kek));
    assert_eq!((code, v["events"].as_u64()), (0, Some(2)), "{v}");
}

#[test]
fn kek_rotation_rewraps_keys_survives_an_interruption_and_is_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let k = keys(&tmp.path().join("keys"));
    let (old, new) = (tmp.path().join("old.kek"), tmp.path().join("new.kek"));
    gen_kek(&old);
    gen_kek(&new);
    let data = tmp.path().join("data");
    let cfg = tmp.path().join("c.toml");
    std::fs::write(
        &cfg,
        with_kek(serve_config(&data, &k, ""), &old).replace(
            "seal_max_age_ms = 50\n",
            "seal_max_age_ms = 50\nseal_max_events = 2\n",
        ),
    )
    .unwrap();
    let input = tmp.path().join("ev.ndjson");
    let lines: String = (0..7).map(|i| event_json(i) + "\n").collect();
    std::fs::write(&input, lines).unwrap();
    let out = import(&cfg, &input);
    assert!(out.status.success(), "{out:?}");
    let keys_dir = data.join("ledger/keys");
    let before: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&keys_dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    assert!(before.len() >= 4, "one data key per segment: {before:?}");
    let sealed_before: Vec<(PathBuf, Vec<u8>)> = segment_files(&data)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();

    let rotate = || {
        run(
            &["key", "rotate-kek"],
            &[("--config", &cfg), ("--kek", &old), ("--new-kek", &new)],
        )
    };
    let out = rotate();
    assert!(out.status.success(), "{out:?}");
    let done: Value =
        serde_json::from_slice(out.stdout.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(
        done["rewrapped"].as_u64(),
        Some(before.len() as u64),
        "{done}"
    );
    // Sealed segments were not rewritten: only their keys.
    for (p, b) in &sealed_before {
        assert!(
            std::fs::read(p).unwrap() == *b,
            "{} was rewritten",
            p.display()
        );
    }
    let (code, v) = verify(&data, &k, Some(&new));
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["events"], 8, "7 events and the key_rotation event: {v}");
    let (code, v) = verify(&data, &k, Some(&old));
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["errors"][0]["kind"], "key", "{v}");
    // The rotation is in the ledger, with the key ids.
    let recorded: Vec<Value> = decrypted_entries(&data, &new)
        .into_iter()
        .filter(|e| e["event"]["action"] == "key_rotation")
        .collect();
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded[0]["event"]["category"], "admin");
    assert_eq!(
        recorded[0]["event"]["attrs"]["new_kek_id"],
        done["new_kek_id"]
    );

    // An interrupted rotation: wrap everything with "old" again and keep
    // those records, rotate to "new", then put all but the first two
    // "old" records back, as if the run had crashed after its second rename.
    let rotated_back = run(
        &["key", "rotate-kek"],
        &[("--config", &cfg), ("--kek", &new), ("--new-kek", &old)],
    );
    assert!(rotated_back.status.success(), "{rotated_back:?}");
    let mut records: Vec<PathBuf> = std::fs::read_dir(&keys_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    records.sort();
    let wrapped_by_old: Vec<Vec<u8>> = records.iter().map(|p| std::fs::read(p).unwrap()).collect();
    assert!(rotate().status.success());
    for (p, b) in records.iter().zip(&wrapped_by_old).skip(2) {
        std::fs::write(p, b).unwrap();
    }
    std::fs::write(keys_dir.join("000000000003.key.tmp"), b"torn").unwrap();
    let (code, _) = verify(&data, &k, Some(&new));
    assert_eq!(
        code, 1,
        "half-rotated: the new key alone does not open everything"
    );
    let out = rotate();
    assert!(out.status.success(), "{out:?}");
    let done: Value =
        serde_json::from_slice(out.stdout.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(
        done["rewrapped"].as_u64(),
        Some(records.len() as u64 - 2),
        "{done}"
    );
    let (code, v) = verify(&data, &k, Some(&new));
    assert_eq!(code, 0, "{v}");
    assert!(!keys_dir.join("000000000003.key.tmp").exists());
}

#[test]
fn old_format_data_directory_verifies_and_keeps_growing_encrypted() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ledger-v1");
    let data = tmp.path().join("data");
    copy_dir(&fixture.join("data"), &data);
    let kdir = tmp.path().join("keys");
    copy_dir(&fixture.join("keys"), &kdir);
    let k = Keys {
        key: kdir.join("signing.key"),
        vkey: kdir.join("signing.vkey"),
        verifier: sealtrail::ledger::keys::load_verifier(&kdir.join("signing.vkey")).unwrap(),
    };
    let (code, v) = verify(&data, &k, None);
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        (v["segments"].as_u64(), v["events"].as_u64()),
        (Some(3), Some(5)),
        "{v}"
    );
    assert_eq!(v["payloads_unchecked"], 0, "{v}");

    // `serve` continues it, with encryption now on.
    let kek = tmp.path().join("kek");
    gen_kek(&kek);
    let server = Server::start(tmp.path(), &with_kek(serve_config(&data, &k, ""), &kek));
    let c = server.client();
    let events: Vec<Value> = (100..103)
        .map(|i| serde_json::from_str(&event_json(i)).unwrap())
        .collect();
    post_events(&c, &server.http, &json!(events));
    // Old (plain) and new (encrypted) events are both searchable.
    wait_hits(&c, &server, "id:old-1 OR id:evt-00000101", 2);
    // No rotation while the service runs (it would wrap new segments' keys
    // with the old KEK meanwhile).
    let kek2 = tmp.path().join("kek2");
    gen_kek(&kek2);
    let out = run(
        &["key", "rotate-kek"],
        &[
            ("--config", &tmp.path().join("serve.toml")),
            ("--kek", &kek),
            ("--new-kek", &kek2),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("stop the service"),
        "{out:?}"
    );
    assert_eq!(server.terminate(), Some(0));
    let (code, v) = verify(&data, &k, Some(&kek));
    assert_eq!(code, 0, "{v}");
    // 5 old events, 3 new ones and the service's own (search audit).
    let events = v["events"].as_u64().unwrap();
    assert!(events >= 8, "{v}");
    let (code, v) = verify(&data, &k, None);
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        v["payloads_unchecked"].as_u64(),
        Some(events - 5),
        "only the new events are encrypted: {v}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// The open segment is encrypted as it is written; after a crash (no
/// seal, a torn half-frame at the end) the writer decrypts the
/// acknowledged frames to recover, cuts the torn bytes and carries on.
#[test]
fn encrypted_open_segment_recovers_after_a_crash_with_a_torn_tail() {
    use sealtrail::ledger::atrest::{self, Kek};
    use sealtrail::ledger::log::Ledger;
    let tmp = tempfile::tempdir().unwrap();
    let k = keys(&tmp.path().join("keys"));
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let kek = tmp.path().join("kek");
    gen_kek(&kek);
    atrest::register(&data, Kek::load_file(&kek).unwrap()).unwrap();
    let (mut ledger, _) = Ledger::open(&data, k.signer(), policy(100)).unwrap();
    ledger
        .append(&(0..5).map(entry).collect::<Vec<_>>())
        .unwrap();
    drop(ledger); // a crash: acknowledged, not sealed
    let open = data.join("ledger/segments/000000000000.open");
    let mut bytes = std::fs::read(&open).unwrap();
    assert!(
        !bytes.windows(4).any(|w| w == b"MRN-"),
        "the open segment holds plaintext"
    );
    bytes.extend_from_slice(&[0, 0, 1, 0, 7, 7, 7]); // a torn append
    std::fs::write(&open, bytes).unwrap();

    let (mut ledger, recovery) = Ledger::open(&data, k.signer(), policy(100)).unwrap();
    assert_eq!(recovery.open_entries, 5, "{recovery:?}");
    assert_eq!(recovery.torn_bytes_cut, 7, "{recovery:?}");
    ledger.append(&[entry(5)]).unwrap();
    ledger.close().unwrap();
    let entries = decrypted_entries(&data, &kek);
    let ids: Vec<&str> = entries
        .iter()
        .map(|e| e["event"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        (0..6).map(|i| format!("evt-{i:08}")).collect::<Vec<_>>()
    );
    let (code, v) = verify(&data, &k, Some(&kek));
    assert_eq!((code, v["events"].as_u64()), (0, Some(6)), "{v}");
}

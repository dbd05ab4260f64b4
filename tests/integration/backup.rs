//! `sealtrail backup`, `backup verify` and `restore` to a directory (issue
//! #17): incremental while `serve` ingests, damaged backups, restore and
//! continue the chain, refusals.

use crate::util::*;
use serde_json::Value;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

fn sealtrail(args: &[&str], paths: &[(&str, &Path)]) -> Output {
    let mut c = Command::new(bin());
    c.args(args);
    for (flag, p) in paths {
        c.arg(flag).arg(p);
    }
    c.env_remove("SEALTRAIL_KEK");
    c.output().unwrap()
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout {} stderr {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn backup(data: &Path, to: &Path) -> Output {
    sealtrail(&["backup", "--json"], &[("--data", data), ("--to", to)])
}

fn backup_ok(data: &Path, to: &Path) -> Value {
    let out = backup(data, to);
    assert!(
        out.status.success(),
        "backup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    json_of(&out)
}

fn backup_verify(to: &Path, k: &Keys) -> Output {
    sealtrail(
        &["backup", "verify", "--json"],
        &[("--to", to), ("--vkey", &k.vkey)],
    )
}

/// Segments covered by the checkpoint in `data` (read as a reader would).
fn checkpoint_size(data: &Path) -> u64 {
    std::fs::read_to_string(data.join("ledger/checkpoint"))
        .ok()
        .and_then(|t| t.lines().nth(1).and_then(|l| l.parse().ok()))
        .unwrap_or(0)
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn events(from: u64, n: u64) -> Value {
    Value::Array(
        (from..from + n)
            .map(|i| serde_json::from_str(&event_json(i)).unwrap())
            .collect(),
    )
}

#[test]
fn incremental_backup_while_serving_copies_only_new_sealed_segments() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(&dir.path().join("keys"));
    let data = dir.path().join("data");
    let target = dir.path().join("target");
    let server = Server::start(dir.path(), &serve_config(&data, &k, ""));
    let client = server.client();
    // Each batch sealed (age limit 50 ms) before the next is sent.
    for b in 0..3 {
        let before = checkpoint_size(&data);
        post_events(&client, &server.http, &events(b * 10, 10));
        server.wait_for("a new checkpoint", || {
            (checkpoint_size(&data) > before).then_some(())
        });
    }

    let first = backup_ok(&data, &target);
    let size1 = first["checkpoint"]["size"].as_u64().unwrap();
    assert!(size1 >= 2, "{first}");
    assert_eq!(first["segments_present"], 0, "{first}");
    assert!(
        first["audit"].as_str().unwrap().contains("manifest only"),
        "{first}"
    );
    let segs = target.join("ledger/segments");
    let names1 = files_in(&segs);
    assert_eq!(names1.len() as u64, size1, "{names1:?}");
    assert!(names1.iter().all(|n| n.ends_with(".seg")), "{names1:?}");
    let inodes: Vec<u64> = names1
        .iter()
        .map(|n| std::fs::metadata(segs.join(n)).unwrap().ino())
        .collect();

    // Ingest goes on during the second backup.
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = {
        let (stop, client, url) = (stop.clone(), client.clone(), server.http.clone());
        std::thread::spawn(move || {
            let mut i = 1000;
            while !stop.load(Ordering::Relaxed) {
                post_events(&client, &url, &events(i, 5));
                i += 5;
            }
            i
        })
    };
    server.wait_for("more sealed segments", || {
        (checkpoint_size(&data) >= size1 + 2).then_some(())
    });
    let second = backup_ok(&data, &target);
    stop.store(true, Ordering::Relaxed);
    let sent = feeder.join().unwrap();
    assert!(sent > 1000);
    let size2 = second["checkpoint"]["size"].as_u64().unwrap();
    assert!(size2 >= size1 + 2, "{second}");
    assert_eq!(second["segments_present"].as_u64(), Some(size1), "{second}");
    let names2 = files_in(&segs);
    assert_eq!(
        names2.len() as u64,
        size2,
        "only covered, sealed segments: {names2:?}"
    );
    assert!(names2.iter().all(|n| n.ends_with(".seg")), "{names2:?}");
    for (n, ino) in names1.iter().zip(&inodes) {
        assert_eq!(
            std::fs::metadata(segs.join(n)).unwrap().ino(),
            *ino,
            "{n} was copied again"
        );
    }
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(target.join("backup-manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["checkpoint"]["size"].as_u64(), Some(size2));
    let seg_bytes: u64 = manifest["files"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.ends_with(".seg"))
        .map(|(_, v)| v["size"].as_u64().unwrap())
        .sum();
    assert!(
        second["copied_bytes"].as_u64().unwrap() < seg_bytes,
        "{second}"
    );
    // No temporary file anywhere in the target.
    for d in [
        target.clone(),
        target.join("ledger"),
        segs.clone(),
        target.join("ledger/keys"),
    ] {
        assert!(
            files_in(&d).iter().all(|n| !n.contains(".backup-tmp")),
            "{d:?}"
        );
    }
    server.terminate();

    // The backup is a data directory of its own and checks out.
    verify_ok(&target, &k);
    let out = backup_verify(&target, &k);
    let v = json_of(&out);
    assert!(out.status.success(), "{v}");
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(
        v["ledger"]["checkpoint"]["size"].as_u64(),
        Some(size2),
        "{v}"
    );
}

#[test]
fn backup_verify_detects_a_corrupted_and_a_truncated_file() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(&dir.path().join("keys"));
    let data = dir.path().join("data");
    let target = dir.path().join("target");
    build_ledger(&data, &k, 40, 8);
    backup_ok(&data, &target);
    let out = backup_verify(&target, &k);
    assert!(out.status.success(), "{}", json_of(&out));

    let seg1 = segment_path(&target, 1);
    let good = std::fs::read(&seg1).unwrap();
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x01;
    std::fs::write(&seg1, &bad).unwrap();
    let out = backup_verify(&target, &k);
    let v = json_of(&out);
    assert_eq!(out.status.code(), Some(1), "{v}");
    assert_eq!(v["ok"], false);
    let errors = v["files"]["errors"].to_string();
    assert!(
        errors.contains("000000000001.seg") && errors.contains("corrupted"),
        "{v}"
    );
    assert_eq!(
        v["ledger"]["ok"], false,
        "the ledger check finds it too: {v}"
    );

    std::fs::write(&seg1, &good).unwrap();
    let seg2 = segment_path(&target, 2);
    let len = std::fs::metadata(&seg2).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg2)
        .unwrap()
        .set_len(len - 10)
        .unwrap();
    let out = backup_verify(&target, &k);
    let v = json_of(&out);
    assert_eq!(out.status.code(), Some(1), "{v}");
    let errors = v["files"]["errors"].to_string();
    assert!(
        errors.contains("000000000002.seg") && errors.contains("truncated"),
        "{v}"
    );

    // A damaged backup is not restored.
    let restored = dir.path().join("restored");
    let out = sealtrail(&["restore"], &[("--from", &target), ("--data", &restored)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("damaged"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!restored.exists());
    assert!(
        files_in(dir.path())
            .iter()
            .all(|n| !n.contains("restoring"))
    );
}

#[test]
fn restore_then_serve_continues_one_unbroken_chain() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(&dir.path().join("keys"));
    let data = dir.path().join("data");
    let target = dir.path().join("target");
    let first = dir.path().join("first");
    std::fs::create_dir_all(&first).unwrap();
    let server = Server::start(&first, &serve_config(&data, &k, ""));
    post_events(&server.client(), &server.http, &events(0, 30));
    assert_eq!(server.terminate(), Some(0));

    // Production's checkpoint when the backup is taken (the admin/backup
    // event recorded afterwards is newer than any backup can be).
    let at_backup = dir.path().join("at-backup.checkpoint");
    std::fs::copy(data.join("ledger/checkpoint"), &at_backup).unwrap();
    // Stopped service + --config: the backup is an admin/backup event.
    let cfg = first.join("serve.toml");
    let out = sealtrail(
        &["backup", "--json"],
        &[("--config", &cfg), ("--to", &target)],
    );
    let v = json_of(&out);
    assert!(out.status.success(), "{v}");
    assert_eq!(v["recorded"], true, "{v}");
    assert!(target.join("config/serve.toml").is_file());
    let backed_up = v["checkpoint"]["size"].as_u64().unwrap();
    assert!(
        stored_entries(&data)
            .iter()
            .any(|e| e["event"]["category"] == "admin" && e["event"]["action"] == "backup")
    );

    let restored = dir.path().join("restored");
    std::fs::create_dir(&restored).unwrap(); // empty is fine
    let second = dir.path().join("second");
    std::fs::create_dir_all(&second).unwrap();
    let cfg2 = second.join("restore.toml");
    std::fs::write(&cfg2, serve_config(&restored, &k, "")).unwrap();
    let out = sealtrail(
        &["restore", "--json"],
        &[
            ("--from", &target),
            ("--data", &restored),
            ("--vkey", &k.vkey),
            ("--config", &cfg2),
        ],
    );
    let v = json_of(&out);
    assert!(out.status.success(), "{v}");
    assert_eq!(v["verified"], true);
    assert_eq!(v["recorded"], true);
    assert_eq!(v["forced_fork"], false);
    // Nothing the backup lacks: no derived files, tokens or index copied.
    assert!(!restored.join("auth/test-token").exists());

    let server = Server::start(&second, &serve_config(&restored, &k, ""));
    post_events(&server.client(), &server.http, &events(100, 30));
    server.wait_for("new segments after the restore", || {
        (checkpoint_size(&restored) > backed_up + 1).then_some(())
    });
    assert_eq!(server.terminate(), Some(0));

    // One chain: the restored log extends the production checkpoint.
    let out = sealtrail(
        &["verify", "--json"],
        &[
            ("--data", &restored),
            ("--vkey", &k.vkey),
            ("--since", &at_backup),
        ],
    );
    let v = json_of(&out);
    assert_eq!(v["ok"], true, "{v}");
    let entries = stored_entries(&restored);
    let ids: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["event"]["id"].as_str())
        .collect();
    assert!(ids.contains(&"evt-00000000") && ids.contains(&"evt-00000129"));
    assert!(
        entries
            .iter()
            .any(|e| e["event"]["action"] == "restore"
                && e["event"]["attrs"]["forced_fork"] == false)
    );
}

#[test]
fn restore_refuses_a_non_empty_directory_and_a_fork() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(&dir.path().join("keys"));
    let data = dir.path().join("data");
    let target = dir.path().join("target");
    build_ledger(&data, &k, 16, 8);
    backup_ok(&data, &target);

    let busy = dir.path().join("busy");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("keep.txt"), b"mine").unwrap();
    let out = sealtrail(&["restore"], &[("--from", &target), ("--data", &busy)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
    assert_eq!(files_in(&busy), vec!["keep.txt".to_owned()]);

    // A checkpoint of the same key that the backup does not extend (another
    // history): the restored copy fails verification, nothing is written.
    let alien = dir.path().join("alien");
    build_ledger(&alien, &k, 16, 16);
    let fresh = dir.path().join("fresh");
    let out = sealtrail(
        &["restore", "--json"],
        &[
            ("--from", &target),
            ("--data", &fresh),
            ("--vkey", &k.vkey),
            ("--since", &alien.join("ledger/checkpoint")),
        ],
    );
    let v = json_of(&out);
    assert_eq!(out.status.code(), Some(1), "{v}");
    assert_eq!(v["ok"], false, "{v}");
    assert!(!fresh.exists());
    assert!(
        files_in(dir.path())
            .iter()
            .all(|n| !n.contains("restoring"))
    );

    // Production moved on; a checkpoint of it was published.
    let (mut ledger, _) =
        sealtrail::ledger::log::Ledger::open(&data, k.signer(), policy(8)).unwrap();
    let more: Vec<_> = (16..32).map(entry).collect();
    ledger.append(&more).unwrap();
    ledger.close().unwrap();
    let published = dir.path().join("published.checkpoint");
    std::fs::copy(data.join("ledger/checkpoint"), &published).unwrap();
    let out = sealtrail(
        &["restore"],
        &[
            ("--from", &target),
            ("--data", &fresh),
            ("--vkey", &k.vkey),
            ("--since", &published),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("fork"));
    assert!(!fresh.exists());
    // --force restores it anyway and records the fork in the restored log.
    let forced = dir.path().join("forced");
    let cfg = dir.path().join("forced.toml");
    std::fs::write(&cfg, serve_config(&forced, &k, "")).unwrap();
    let out = sealtrail(
        &["restore", "--json", "--force"],
        &[
            ("--from", &target),
            ("--data", &forced),
            ("--vkey", &k.vkey),
            ("--since", &published),
            ("--config", &cfg),
        ],
    );
    let v = json_of(&out);
    assert!(out.status.success(), "{v}");
    assert_eq!(v["forced_fork"], true, "{v}");
    assert!(stored_entries(&forced).iter().any(|e| {
        e["event"]["action"] == "restore" && e["event"]["attrs"]["forced_fork"] == true
    }));
    // A backup taken after the published checkpoint restores fine.
    backup_ok(&data, &target);
    let out = sealtrail(
        &["restore", "--json"],
        &[
            ("--from", &target),
            ("--data", &fresh),
            ("--vkey", &k.vkey),
            ("--since", &published),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json_of(&out)["verified"], true);
}

#[test]
fn backup_into_a_target_of_another_ledger_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(&dir.path().join("keys"));
    let data = dir.path().join("data");
    let target = dir.path().join("target");
    build_ledger(&data, &k, 16, 8);
    backup_ok(&data, &target);
    let manifest = std::fs::read(target.join("backup-manifest.json")).unwrap();

    // Same origin and events, another signing key.
    let k2 = keys(&dir.path().join("keys2"));
    let other = dir.path().join("other");
    build_ledger(&other, &k2, 24, 8);
    let out = backup(&other, &target);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("another ledger") && err.contains("signed by"),
        "{err}"
    );

    // Another origin.
    let k3_dir = dir.path().join("keys3");
    std::fs::create_dir_all(&k3_dir).unwrap();
    let files = sealtrail::ledger::keys::write_key_files(&k3_dir, "other.example/log").unwrap();
    let k3 = Keys {
        verifier: sealtrail::ledger::keys::load_verifier(&files.vkey).unwrap(),
        key: files.signing_key,
        vkey: files.vkey,
    };
    let third = dir.path().join("third");
    build_ledger(&third, &k3, 16, 8);
    let out = backup(&third, &target);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("another ledger") && err.contains("origin"),
        "{err}"
    );

    // A directory that is no backup at all.
    let stranger = dir.path().join("stranger");
    std::fs::create_dir(&stranger).unwrap();
    std::fs::write(stranger.join("photo.jpg"), b"x").unwrap();
    let out = backup(&data, &stranger);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a sealtrail backup"));

    // Nothing in the refused target changed.
    assert_eq!(
        std::fs::read(target.join("backup-manifest.json")).unwrap(),
        manifest
    );
    let out = backup_verify(&target, &k);
    assert!(out.status.success(), "{}", json_of(&out));
}

#[test]
fn a_full_target_leaves_no_partial_file_under_a_final_name() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(&dir.path().join("keys"));
    let data = dir.path().join("data");
    let target = dir.path().join("target");
    build_ledger(&data, &k, 24, 8);
    // The temporary file of segment 1 lands on /dev/full: every write
    // fails with ENOSPC, as on a full disk.
    let segs = target.join("ledger/segments");
    std::fs::create_dir_all(&segs).unwrap();
    std::os::unix::fs::symlink("/dev/full", segs.join("000000000001.seg.backup-tmp")).unwrap();
    let out = backup(&data, &target);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no space left"), "{err}");
    assert_eq!(files_in(&segs), vec!["000000000000.seg".to_owned()]);
    assert!(!target.join("ledger/checkpoint").exists());
    assert!(!target.join("backup-manifest.json").exists());
    // Space again: the next run completes the same target.
    let v = backup_ok(&data, &target);
    assert_eq!(v["segments_present"], 1, "{v}");
    assert!(backup_verify(&target, &k).status.success());
    verify_ok(&target, &k);
}

/// Every file under `dir`, recursively.
fn all_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(all_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn an_encrypted_ledger_stays_encrypted_and_the_kek_is_never_copied() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(&dir.path().join("keys"));
    let kek = dir.path().join("kek");
    let out = sealtrail(&["key", "gen-kek"], &[("--out", &kek)]);
    assert!(out.status.success(), "{out:?}");
    let kek_text = std::fs::read_to_string(&kek).unwrap();
    let with_kek = |c: String| {
        c.replace(
            "[ledger]\n",
            &format!(
                "[ledger]\nencryption_key_file = {:?}\n",
                kek.to_str().unwrap()
            ),
        )
    };
    let data = dir.path().join("data");
    let target = dir.path().join("target");
    let server = Server::start(dir.path(), &with_kek(serve_config(&data, &k, "")));
    post_events(&server.client(), &server.http, &events(0, 20));
    assert_eq!(server.terminate(), Some(0));
    let cfg = dir.path().join("serve.toml");
    let out = sealtrail(
        &["backup", "--json"],
        &[("--config", &cfg), ("--to", &target)],
    );
    let v = json_of(&out);
    assert!(out.status.success(), "{v}");
    assert_eq!(v["recorded"], true, "{v}");

    let files = all_files(&target);
    assert!(
        files
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "key"))
    );
    let kek_b64 = kek_text.trim().as_bytes();
    for p in &files {
        let b = std::fs::read(p).unwrap();
        assert!(
            !b.windows(kek_b64.len()).any(|w| w == kek_b64),
            "{p:?} holds the KEK"
        );
        if p.extension().is_some_and(|e| e == "seg") {
            assert!(
                !b.windows(12).any(|w| w == b"Viewed encou"),
                "{p:?} holds plaintext"
            );
        }
    }
    let out = sealtrail(
        &["backup", "verify", "--json"],
        &[("--to", &target), ("--vkey", &k.vkey), ("--kek", &kek)],
    );
    let v = json_of(&out);
    assert!(out.status.success(), "{v}");
    assert_eq!(v["ledger"]["payloads_unchecked"], 0, "{v}");

    // Restored and served with the same KEK, the chain goes on.
    let restored = dir.path().join("restored");
    let out = sealtrail(
        &["restore", "--json"],
        &[
            ("--from", &target),
            ("--data", &restored),
            ("--vkey", &k.vkey),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let second = dir.path().join("second");
    std::fs::create_dir(&second).unwrap();
    let server = Server::start(&second, &with_kek(serve_config(&restored, &k, "")));
    post_events(&server.client(), &server.http, &events(50, 5));
    assert_eq!(server.terminate(), Some(0));
    let out = sealtrail(
        &["verify", "--json"],
        &[("--data", &restored), ("--vkey", &k.vkey), ("--kek", &kek)],
    );
    let v = json_of(&out);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["payloads_unchecked"], 0, "{v}");
}

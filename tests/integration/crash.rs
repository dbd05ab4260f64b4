//! Crash safety with real processes: `sealtrail import` is fed events on stdin
//! and SIGKILLed at random moments (seeded, so runs repeat). After each kill the
//! ledger is reopened (recovery) and every event the process acknowledged must
//! be there exactly once, in order, and the log must verify.

use crate::util::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sealtrail::ledger::log::Ledger;
use sealtrail::ledger::verify::verify_data_dir;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TRIALS: u64 = 60;

/// Every stored event id, in ledger order (sealed segments, then the open one).
fn stored_ids(data: &Path) -> Vec<String> {
    stored_payloads(data)
        .iter()
        .map(|p| sealtrail::event::entry_event_id(p).unwrap())
        .collect()
}

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let data = dir.path().join("data");
    let config = dir.path().join("sealtrail.toml");
    // Tiny segments and a short age so kills land in seals as often as in appends.
    std::fs::write(
        &config,
        "[ledger]\nseal_max_events = 37\nseal_max_age_ms = 3\n",
    )
    .unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(0x5ea1_7a11);
    // Everything stored so far, which later restarts must keep.
    let mut expected: Vec<String> = Vec::new();
    let mut total_acked = 0u64;
    let (mut torn, mut completed_seals, mut resigned) = (0, 0, 0);

    for trial in 0..TRIALS {
        let mut child = Command::new(bin())
            .args(["import", "--progress", "--data"])
            .arg(&data)
            .arg("--key")
            .arg(&k.key)
            .arg("--config")
            .arg(&config)
            .args(["--rules", "/nonexistent/no-rules"])
            .arg("-")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        // Lines acknowledged as durable, from the progress stream.
        let acked = Arc::new(Mutex::new(0u64));
        let acked_reader = acked.clone();
        let progress = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                *acked_reader.lock().unwrap() = v["lines"].as_u64().unwrap();
            }
        });
        let sent_ids: Vec<String> = (0..20_000).map(|i| format!("t{trial:03}-{i:05}")).collect();
        let to_send: Vec<u8> = sent_ids
            .iter()
            .enumerate()
            .flat_map(|(i, id)| {
                let mut line = event_json(trial * 100_000 + i as u64).replacen(
                    &format!("evt-{:08}", trial * 100_000 + i as u64),
                    id,
                    1,
                );
                line.push('\n');
                line.into_bytes()
            })
            .collect();
        let feeder = std::thread::spawn(move || {
            // A trickle first (small group commits, sealing by age), then
            // bursts (large batches, sealing by size), so kills land in both.
            let mut rest: &[u8] = &to_send;
            for _ in 0..300 {
                let Some(end) = rest.iter().position(|b| *b == b'\n') else {
                    break;
                };
                if stdin.write_all(&rest[..=end]).is_err() {
                    return;
                }
                rest = &rest[end + 1..];
                std::thread::sleep(Duration::from_micros(150)); // pacing, not synchronization
            }
            for chunk in rest.chunks(4096) {
                if stdin.write_all(chunk).is_err() {
                    break;
                }
            }
        });
        let delay = Duration::from_micros(rng.gen_range(5_000..150_000));
        std::thread::sleep(delay); // the random kill moment is the point of this test
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        feeder.join().unwrap();
        progress.join().unwrap();
        let n = *acked.lock().unwrap() as usize;
        total_acked += n as u64;

        // Restart: recovery must keep every acknowledged event.
        let (ledger, recovery) = Ledger::open(&data, k.signer(), policy(37)).unwrap();
        torn += u32::from(recovery.torn_bytes_cut > 0);
        completed_seals += u32::from(recovery.completed_seal);
        resigned += u32::from(recovery.resigned_checkpoint);
        let stored = stored_ids(&data);
        assert!(
            stored.len() >= expected.len(),
            "trial {trial}: stored events were lost"
        );
        assert_eq!(
            &stored[..expected.len()],
            &expected[..],
            "trial {trial}: earlier events changed"
        );
        // This trial's events: exactly a prefix of what was sent, at least as
        // long as what was acknowledged (a batch made durable just before the
        // kill may not have had its acknowledgement read).
        let new = &stored[expected.len()..];
        assert!(
            new.len() >= n,
            "trial {trial}: {n} acknowledged, only {} stored",
            new.len()
        );
        assert_eq!(
            new,
            &sent_ids[..new.len()],
            "trial {trial}: stored events out of order or duplicated"
        );
        expected = stored;
        ledger.close().unwrap();
        let report = verify_data_dir(&data, &k.verifier, None).unwrap();
        assert!(report.ok, "trial {trial}: {report:?}");
    }
    eprintln!(
        "{TRIALS} kills: {total_acked} events acknowledged; recovery cut {torn} torn tails, \
         completed {completed_seals} seals, re-signed {resigned} checkpoints"
    );
    assert!(
        total_acked > 0,
        "no trial acknowledged anything; the kills came too early"
    );
}

/// A client sends batches with ids while `sealtrail serve` is SIGKILLed and
/// restarted; it retries whatever was not acknowledged. Afterwards every
/// acknowledged id is in the ledger exactly once and the log verifies.
#[test]
fn server_sigkill_with_retrying_client_stores_every_id_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let data = dir.path().join("data");
    let config = serve_config(&data, &k, "");
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let client = client_with(&test_token(&data));
    let mut acked: Vec<String> = Vec::new();
    let mut pending: Option<Vec<String>> = None;
    let mut next_batch = 0u64;
    for cycle in 0..6 {
        let server = Server::start(dir.path(), &config);
        let url = server.http.clone();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop_client = stop.clone();
        let c = client.clone();
        let mut carry = pending.take();
        let start_batch = next_batch;
        let sender = std::thread::spawn(move || {
            let mut done: Vec<String> = Vec::new();
            let mut b = start_batch;
            loop {
                let ids = carry.take().unwrap_or_else(|| {
                    b += 1;
                    (0..50).map(|i| format!("b{b:05}-{i:02}")).collect()
                });
                let body: String = ids
                    .iter()
                    .enumerate()
                    .map(|(i, id)| {
                        event_json(i as u64).replacen(&format!("evt-{i:08}"), id, 1) + "\n"
                    })
                    .collect();
                match c
                    .post(format!("{url}/v1/events"))
                    .header("content-type", "application/x-ndjson")
                    .body(body)
                    .send()
                {
                    Ok(r) if r.status().is_success() => done.extend(ids),
                    Ok(r) if r.status().as_u16() == 503 => carry = Some(ids),
                    Ok(r) => panic!("unexpected status {}", r.status()),
                    // The server died mid-request: unknown whether stored; retry later.
                    Err(_) => return (done, Some(ids), b),
                }
                if stop_client.load(std::sync::atomic::Ordering::Relaxed) {
                    return (done, carry, b);
                }
            }
        });
        std::thread::sleep(Duration::from_millis(rng.gen_range(100..600))); // the random kill moment
        let server = if cycle < 5 {
            server.kill();
            None
        } else {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            Some(server)
        };
        let (done, left, b) = sender.join().unwrap();
        acked.extend(done);
        pending = left;
        next_batch = b;
        if let Some(server) = server {
            // Deliver the last unacknowledged batch too, then stop cleanly.
            if let Some(ids) = pending.take() {
                let body: String = ids
                    .iter()
                    .enumerate()
                    .map(|(i, id)| {
                        event_json(i as u64).replacen(&format!("evt-{i:08}"), id, 1) + "\n"
                    })
                    .collect();
                let r = client
                    .post(format!("{}/v1/events", server.http))
                    .header("content-type", "application/x-ndjson")
                    .body(body)
                    .send()
                    .unwrap();
                assert!(r.status().is_success());
                acked.extend(ids);
            }
            assert_eq!(server.terminate(), Some(0));
        }
    }
    assert!(
        acked.len() > 500,
        "too little traffic to mean anything: {}",
        acked.len()
    );
    let entries = stored_entries(&data);
    let mut counts = std::collections::HashMap::new();
    for e in &entries {
        if let Some(id) = e["event"]["id"].as_str() {
            *counts.entry(id.to_owned()).or_insert(0u32) += 1;
        }
    }
    for id in &acked {
        assert_eq!(
            counts.get(id),
            Some(&1),
            "acknowledged id {id} stored {:?} times",
            counts.get(id)
        );
    }
    assert!(counts.values().all(|n| *n == 1), "an id was stored twice");
    let report = verify_data_dir(&data, &k.verifier, None).unwrap();
    assert!(report.ok, "{report:?}");
}

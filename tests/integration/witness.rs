//! Witness cosigning end to end: real `sealtrail witness serve` processes, a
//! real `sealtrail serve` with `[[witness]]`, and `verify --witness-vkey`.

use crate::util::{self, Keys, Server, bin, keys, metric_value, serve_config};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sealtrail::ledger::note::{self, Checkpoint};
use sealtrail::ledger::proof::LedgerReader;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `sealtrail witness keygen`: the vkey file.
pub(crate) fn witness_keygen(dir: &Path, name: &str) -> PathBuf {
    let out = std::process::Command::new(bin())
        .args(["witness", "keygen", "--out"])
        .arg(dir)
        .args(["--name", name])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let vkey = dir.join("witness.vkey");
    let printed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(std::fs::read_to_string(&vkey).unwrap(), printed);
    vkey
}

/// A `sealtrail witness serve` child process.
struct WitnessProc {
    child: std::process::Child,
    url: String,
    log: PathBuf,
}

impl WitnessProc {
    fn start(dir: &Path, log_vkey: &Path, listen: &str) -> WitnessProc {
        WitnessProc::start_with(dir, log_vkey, listen, &[])
    }

    #[allow(clippy::zombie_processes)] // `Drop` kills and waits
    fn start_with(dir: &Path, log_vkey: &Path, listen: &str, args: &[&str]) -> WitnessProc {
        let log = dir.join(format!(
            "witness-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let mut child = std::process::Command::new(bin())
            .args(["witness", "serve", "--key"])
            .arg(dir.join("witness.key"))
            .arg("--state")
            .arg(dir.join("state"))
            .arg("--log-vkey")
            .arg(log_vkey)
            .args(["--listen", listen])
            .args(args)
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(pos) = text.find("addr=") {
                let addr = text[pos + 5..].split_whitespace().next().unwrap();
                return WitnessProc {
                    child,
                    url: format!("http://{addr}"),
                    log,
                };
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("witness exited with {status}: {text}");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "witness did not start: {text}"
            );
            std::thread::sleep(Duration::from_millis(20)); // polling a condition
        }
    }

    fn addr(&self) -> String {
        self.url.trim_start_matches("http://").to_owned()
    }

    fn stop(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// POST /add-checkpoint: status, content type, body.
    fn add(&self, body: &str) -> (u16, String, String) {
        let r = reqwest::blocking::Client::new()
            .post(format!("{}/add-checkpoint", self.url))
            .body(body.to_owned())
            .send()
            .unwrap();
        let status = r.status().as_u16();
        let ctype = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, ctype, r.text().unwrap())
    }
}

impl Drop for WitnessProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "witness log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

fn witness_section(url: &str, vkey: &Path) -> String {
    format!(
        "[[witness]]\nurl = {url:?}\nvkey_file = {:?}\ntimeout = \"2s\"\n",
        vkey.to_str().unwrap()
    )
}

/// `sealtrail verify --json` with witness flags: exit code and report.
fn verify(data: &Path, k: &Keys, extra: &[&str]) -> (i32, serde_json::Value) {
    let out = std::process::Command::new(bin())
        .args(["verify", "--json", "--data"])
        .arg(data)
        .arg("--vkey")
        .arg(&k.vkey)
        .args(extra)
        .output()
        .unwrap();
    let code = out.status.code().unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (code, v)
}

fn kinds(v: &serde_json::Value) -> Vec<String> {
    v["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["kind"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The cosigned checkpoint `serve` keeps, once it covers `min_size` (read
/// from the data directory: polling the API would meet its rate limit).
fn wait_witnessed(server: &Server, data: &Path, min_size: u64) -> String {
    let path = data.join("ledger/checkpoint.witnessed");
    server.wait_for("a cosigned checkpoint", || {
        let text = std::fs::read_to_string(&path).ok()?;
        let cp = note::parse_unverified_checkpoint(&text).ok()?;
        (cp.size >= min_size).then_some(text)
    })
}

/// Size of the latest signed checkpoint and the events it covers.
fn latest(data: &Path) -> Option<(u64, u64)> {
    let r = LedgerReader::open(data).ok()?;
    Some((r.checkpoint().size, r.covered_events().ok()?))
}

fn latest_size(server: &Server, data: &Path, more_than: u64) -> u64 {
    server.wait_for("a larger checkpoint", || {
        latest(data).map(|l| l.0).filter(|s| *s > more_than)
    })
}

fn post_some(server: &Server, from: u64, n: u64) {
    let events: Vec<serde_json::Value> = (from..from + n)
        .map(|i| serde_json::from_str(&util::event_json(i)).unwrap())
        .collect();
    util::post_events(&server.client(), &server.http, &json!(events));
}

#[test]
fn serve_gets_cosignatures_and_verify_requires_them() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(&dir.path().join("keys"));
    let w1_dir = dir.path().join("w1");
    let w1_vkey = witness_keygen(&w1_dir, "auditor.example/w1");
    let w2_vkey = witness_keygen(&dir.path().join("w2"), "auditor.example/w2");
    let witness = WitnessProc::start(&w1_dir, &k.vkey, "127.0.0.1:0");
    let data = dir.path().join("data");
    let server = Server::start(
        dir.path(),
        &serve_config(&data, &k, &witness_section(&witness.url, &w1_vkey)),
    );
    post_some(&server, 0, 20);
    // The token's record and the 20 events, all under a signed checkpoint.
    let size = server.wait_for("a checkpoint covering the events", || {
        latest(&data).filter(|l| l.1 >= 21).map(|l| l.0)
    });
    let text = wait_witnessed(&server, &data, size);
    let served = server
        .client()
        .get(format!("{}/v1/checkpoint?witnessed=1", server.http))
        .send()
        .unwrap();
    assert_eq!(served.status().as_u16(), 200);
    let served = served.text().unwrap();
    assert_eq!(
        note::parse_unverified_checkpoint(&served).unwrap().size,
        size
    );
    assert!(text.contains("\u{2014} auditor.example/w1 "), "{text}");
    let metrics = server
        .client()
        .get(format!("{}/metrics", server.http))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let cosigned = metric_value(
        &metrics,
        "sealtrail_witness_submissions_total{outcome=\"cosigned\",witness=\"auditor.example/w1\"}",
    );
    assert!(cosigned.is_some_and(|v| v >= 1.0), "{metrics}");
    let cosigned_size = metric_value(
        &metrics,
        "sealtrail_witness_cosigned_size{witness=\"auditor.example/w1\"}",
    );
    assert!(cosigned_size.is_some_and(|v| v >= size as f64), "{metrics}");
    assert_eq!(server.terminate(), Some(0));
    witness.stop();

    let w1 = w1_vkey.to_str().unwrap();
    let w2 = w2_vkey.to_str().unwrap();
    // The witness cosigned: verify passes and names it.
    let (code, v) = verify(&data, &k, &["--witness-vkey", w1]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["witnessed"]["cosigners"], json!(["auditor.example/w1"]));
    assert!(v["witnessed"]["size"].as_u64().unwrap() >= size);
    // Another witness's key: no quorum.
    let (code, v) = verify(&data, &k, &["--witness-vkey", w2]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(kinds(&v), ["witness_quorum"]);
    // Both keys: all must cosign by default, or the quorum given.
    let (code, v) = verify(&data, &k, &["--witness-vkey", w1, "--witness-vkey", w2]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(kinds(&v), ["witness_quorum"]);
    let (code, v) = verify(
        &data,
        &k,
        &[
            "--witness-vkey",
            w1,
            "--witness-vkey",
            w2,
            "--witness-quorum",
            "2",
        ],
    );
    assert_eq!(code, 1, "{v}");
    let (code, v) = verify(
        &data,
        &k,
        &[
            "--witness-vkey",
            w1,
            "--witness-vkey",
            w2,
            "--witness-quorum",
            "1",
        ],
    );
    assert_eq!(code, 0, "{v}");
    // A quorum larger than the keys given is a usage error.
    let (code, _) = verify(&data, &k, &["--witness-vkey", w1, "--witness-quorum", "2"]);
    assert_eq!(code, 2);
    // Without witness flags the report has no "witnessed" member.
    let (code, v) = verify(&data, &k, &[]);
    assert_eq!(code, 0);
    assert!(v.get("witnessed").is_none(), "{v}");

    // A cosigned checkpoint the log does not extend (the key holder signed
    // another root, and the witness was shown it): witness_mismatch.
    let reader = LedgerReader::open(&data).unwrap();
    let forged = Checkpoint {
        origin: util::ORIGIN.into(),
        size: reader.checkpoint().size,
        root: [7; 32],
        extensions: vec![],
    };
    let signer =
        sealtrail::witness::keys::load_witness_signer(&w1_dir.join("witness.key")).unwrap();
    let forged_note = format!(
        "{}{}",
        note::sign_checkpoint(&forged, &k.signer()).unwrap(),
        signer.cosign(&forged.to_body(), 1_800_000_000).unwrap()
    );
    let witnessed_file = data.join("ledger/checkpoint.witnessed");
    std::fs::write(&witnessed_file, &forged_note).unwrap();
    let (code, v) = verify(&data, &k, &["--witness-vkey", w1]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(kinds(&v), ["witness_mismatch"]);
    // A cosignature line altered on disk: the note is refused.
    let mut bad = text.clone().into_bytes();
    let at = text.rfind("auditor.example/w1 ").unwrap() + 30;
    bad[at] = if bad[at] == b'A' { b'B' } else { b'A' };
    std::fs::write(&witnessed_file, &bad).unwrap();
    let (code, v) = verify(&data, &k, &["--witness-vkey", w1]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(kinds(&v), ["witness_quorum"]);
    // No cosigned checkpoint at all.
    std::fs::remove_file(&witnessed_file).unwrap();
    let (code, v) = verify(&data, &k, &["--witness-vkey", w1]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(kinds(&v), ["witness_quorum"]);
}

/// An add-checkpoint body for the latest checkpoint of `data`, from `old`.
fn request(data: &Path, old: u64) -> String {
    let reader = LedgerReader::open(data).unwrap();
    let mut body = format!("old {old}\n");
    if old > 0 && old < reader.checkpoint().size {
        for h in reader.consistency_proof(old).unwrap().path {
            body.push_str(&h);
            body.push('\n');
        }
    }
    body.push('\n');
    body.push_str(reader.checkpoint_text());
    body
}

#[test]
fn witness_refuses_rollback_fork_and_strangers_and_keeps_state() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(&dir.path().join("keys"));
    let wdir = dir.path().join("w");
    let wvkey = witness_keygen(&wdir, "auditor.example/w");
    let verifier = sealtrail::witness::keys::load_witness_verifier(&wvkey).unwrap();
    // The genuine log: 3 segments. A fork: same key, other history, 5 segments.
    let data = dir.path().join("data");
    util::build_ledger(&data, &k, 30, 10);
    let fork = dir.path().join("fork");
    util::build_ledger(&fork, &k, 35, 7);
    let size = LedgerReader::open(&data).unwrap().checkpoint().size;
    assert_eq!(size, 3);

    let w = WitnessProc::start(&wdir, &k.vkey, "127.0.0.1:0");
    let (status, _, body) = w.add(&request(&data, 0));
    assert_eq!(status, 200, "{body}");
    // The answer is a valid cosignature of that checkpoint.
    let cosigned = format!(
        "{}{body}",
        LedgerReader::open(&data).unwrap().checkpoint_text()
    );
    let who = sealtrail::ledger::cosignature::cosigners(&cosigned, &[verifier]).unwrap();
    assert_eq!(who.len(), 1);
    // The same checkpoint again is cosigned again.
    assert_eq!(w.add(&request(&data, 3)).0, 200);

    // Restarted on the same address: the state is kept.
    let addr = w.addr();
    w.stop();
    let w = WitnessProc::start(&wdir, &k.vkey, &addr);
    let (status, ctype, body) = w.add(&request(&data, 0));
    assert_eq!(
        (status, ctype.as_str(), body.as_str()),
        (409, "text/x.tlog.size", "3\n")
    );

    // A fork from the size it holds: the proof does not lead to its root.
    let (status, _, body) = w.add(&request(&fork, 3));
    assert_eq!(status, 422, "{body}");

    // Rolled back: a genuine-key checkpoint of 2 segments.
    let reader = LedgerReader::open(&data).unwrap();
    let root2 = B64
        .decode(reader.consistency_proof(2).unwrap().old_root)
        .unwrap();
    let rolled = Checkpoint {
        origin: util::ORIGIN.into(),
        size: 2,
        root: root2.try_into().unwrap(),
        extensions: vec![],
    };
    let rolled = note::sign_checkpoint(&rolled, &k.signer()).unwrap();
    assert_eq!(w.add(&format!("old 3\n\n{rolled}")).0, 400);
    assert_eq!(w.add(&format!("old 0\n\n{rolled}")).0, 409);

    // A checkpoint under the log's name but another key: 403.
    let other = keys(&dir.path().join("other-keys"));
    let other_data = dir.path().join("other");
    util::build_ledger(&other_data, &other, 10, 10);
    assert_eq!(w.add(&request(&other_data, 0)).0, 403);
    // A log it does not witness: 404.
    let stranger_signer =
        sealtrail::ledger::keys::NoteSigner::generate("other.example/log").unwrap();
    let cp = Checkpoint {
        origin: "other.example/log".into(),
        size: 0,
        root: sealtrail::ledger::hash::EMPTY_ROOT,
        extensions: vec![],
    };
    let note = note::sign_checkpoint(&cp, &stranger_signer).unwrap();
    assert_eq!(w.add(&format!("old 0\n\n{note}")).0, 404);
    // Malformed bodies: 400; an oversized one is refused too.
    assert_eq!(w.add("garbage").0, 400);
    assert_eq!(w.add(&format!("old 01\n\n{rolled}")).0, 400);
    assert!(w.add(&"x".repeat(200_000)).0 >= 400);

    // After all the refusals it still holds size 3 with the genuine root.
    assert_eq!(w.add(&request(&data, 3)).0, 200);
}

fn free_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

#[test]
fn serve_catches_up_when_the_witness_comes_back_and_after_its_own_restart() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(&dir.path().join("keys"));
    let wdir = dir.path().join("w");
    let wvkey = witness_keygen(&wdir, "auditor.example/w");
    let addr = free_port();
    let data = dir.path().join("data");
    let config = serve_config(
        &data,
        &k,
        &witness_section(&format!("http://{addr}"), &wvkey),
    );
    let server = Server::start(dir.path(), &config);
    post_some(&server, 0, 10);
    // The witness is down: submissions fail and are retried.
    let c = server.client();
    server.wait_for("a failed submission", || {
        let m = c.get(format!("{}/metrics", server.http)).send().ok()?.text().ok()?;
        metric_value(
            &m,
            "sealtrail_witness_submissions_total{outcome=\"unreachable\",witness=\"auditor.example/w\"}",
        )
        .filter(|v| *v >= 1.0)
    });
    assert_eq!(
        c.get(format!("{}/v1/checkpoint?witnessed=1", server.http))
            .send()
            .unwrap()
            .status()
            .as_u16(),
        404
    );
    // It comes up: serve catches up to its latest checkpoint.
    let witness = WitnessProc::start(&wdir, &k.vkey, &addr);
    let size = latest_size(&server, &data, 0);
    wait_witnessed(&server, &data, size);
    // Down again while more is sealed, then up: the proof from the size it
    // held brings it forward.
    witness.stop();
    post_some(&server, 100, 10);
    let grown = latest_size(&server, &data, size);
    let witness = WitnessProc::start(&wdir, &k.vkey, &addr);
    wait_witnessed(&server, &data, grown);
    // serve restarts: it learns the witness's size from a 409 and goes on.
    assert_eq!(server.terminate(), Some(0));
    let server = Server::start(dir.path(), &config);
    post_some(&server, 200, 10);
    let grown2 = latest_size(&server, &data, grown);
    wait_witnessed(&server, &data, grown2);
    let m = server
        .client()
        .get(format!("{}/metrics", server.http))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metric_value(
            &m,
            "sealtrail_witness_submissions_total{outcome=\"conflict\",witness=\"auditor.example/w\"}"
        )
        .is_some_and(|v| v >= 1.0),
        "{m}"
    );
    assert_eq!(server.terminate(), Some(0));
    drop(witness);
    let (code, v) = verify(&data, &k, &["--witness-vkey", wvkey.to_str().unwrap()]);
    assert_eq!(code, 0, "{v}");
}

use crate::incidents::smtp_support;

/// A webhook receiver: answers 200 to every POST and passes on the bodies.
pub(crate) fn webhook_catcher() -> (String, std::sync::mpsc::Receiver<serde_json::Value>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0u8; len];
            reader.read_exact(&mut body).unwrap();
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            if tx.send(serde_json::from_slice(&body).unwrap()).is_err() {
                return;
            }
        }
    });
    (url, rx)
}

#[test]
fn publish_sends_the_checkpoint_by_email_and_webhook_and_records_it() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(&dir.path().join("keys"));
    let sink = smtp_support::Sink::start(&[]);
    let (hook, bodies) = webhook_catcher();
    let data = dir.path().join("data");
    let extra = format!(
        "[smtp]\nhost = \"127.0.0.1\"\nport = {}\nstarttls = \"never\"\nfrom = \"siem@clinic.example\"\n\
         [publish]\nevery = \"1s\"\nemails = [\"auditor@clinic.example\"]\nwebhook = {hook:?}\n",
        sink.port
    );
    let server = Server::start(dir.path(), &serve_config(&data, &k, &extra));
    post_some(&server, 0, 5);
    // The webhook carries the signed checkpoint, which verifies with the log key.
    let body = bodies.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(body["kind"], "sealtrail_checkpoint");
    let checkpoint = body["checkpoint"].as_str().unwrap();
    let cp = note::open_checkpoint(checkpoint, &k.verifier).unwrap();
    assert_eq!(body["size"], cp.checkpoint().size);
    assert!(body["witnessed"].is_null());
    // The email names the log and carries the root.
    let mail = server.wait_for("a published email", || {
        (sink.received() >= 1).then(|| sink.message(1))
    });
    assert_eq!(mail["rcpt_tos"], json!(["auditor@clinic.example"]));
    let subject = mail["subject"].as_str().unwrap();
    assert!(
        subject.starts_with(&format!("sealtrail checkpoint {}", util::ORIGIN)),
        "{subject}"
    );
    let size: u64 = subject.rsplit(' ').next().unwrap().parse().unwrap();
    let text = mail["body"].as_str().unwrap();
    let published = LedgerReader::open(&data).unwrap();
    assert!(size <= published.checkpoint().size);
    assert!(text.contains("segments, root "), "{text}");
    // Each publication is a ledger event.
    let recorded = server.wait_for("the publication in the ledger", || {
        util::stored_entries(&data).into_iter().find(|e| {
            e["event"]["action"] == "checkpoint" && e["event"]["attrs"]["kind"] == "published"
        })
    });
    let attrs = &recorded["event"]["attrs"];
    assert_eq!(attrs["failed"], json!([]), "{recorded}");
    assert_eq!(recorded["event"]["outcome"], "success");
    assert_eq!(server.terminate(), Some(0));
}

#[test]
fn witness_over_https_with_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(&dir.path().join("keys"));
    let wdir = dir.path().join("w");
    let wvkey = witness_keygen(&wdir, "auditor.example/w");
    let certs = dir.path().join("certs");
    let out = std::process::Command::new(bin())
        .args(["cert", "--out"])
        .arg(&certs)
        .args(["--host", "127.0.0.1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (cert, key) = (certs.join("cert.pem"), certs.join("key.pem"));
    let witness = WitnessProc::start_with(
        &wdir,
        &k.vkey,
        "127.0.0.1:0",
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let url = format!("https://{}", witness.addr());
    let data = dir.path().join("data");
    let section = format!(
        "{}ca_file = {:?}\n",
        witness_section(&url, &wvkey),
        cert.to_str().unwrap()
    );
    let server = Server::start(dir.path(), &serve_config(&data, &k, &section));
    post_some(&server, 0, 3);
    let size = latest_size(&server, &data, 0);
    wait_witnessed(&server, &data, size);
    assert_eq!(server.terminate(), Some(0));
    let (code, v) = verify(&data, &k, &["--witness-vkey", wvkey.to_str().unwrap()]);
    let stored = std::fs::read_to_string(data.join("ledger/checkpoint.witnessed"));
    assert_eq!(code, 0, "{v}\nstored: {stored:?}");
}

/// The attack a witness exists for: whoever holds the signing key starts the
/// log over (or rewrites it) and signs again. The witness refuses to cosign
/// the new history, the service records the refusal as a
/// `system/witness_refused` event, and the rule pack's rule alerts on it.
#[test]
fn a_rewritten_history_is_refused_by_the_witness_recorded_and_alerted() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(&dir.path().join("keys"));
    let w_dir = dir.path().join("w");
    let w_vkey = witness_keygen(&w_dir, "auditor.example/w");
    let witness = WitnessProc::start(&w_dir, &k.vkey, "127.0.0.1:0");

    // The genuine log, cosigned by the witness.
    let genuine = dir.path().join("genuine");
    std::fs::create_dir_all(&genuine).unwrap();
    let data = genuine.join("data");
    let server = Server::start(
        &genuine,
        &serve_config(&data, &k, &witness_section(&witness.url, &w_vkey)),
    );
    post_some(&server, 0, 20);
    let size = server.wait_for("a checkpoint covering the events", || {
        latest(&data).filter(|l| l.1 >= 21).map(|l| l.0)
    });
    wait_witnessed(&server, &data, size);
    assert_eq!(server.terminate(), Some(0));

    // Another history signed with the same key, grown past the witnessed size.
    let forked = dir.path().join("forked");
    let rules = forked.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    let rule = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/witness_refused.yml"),
    )
    .unwrap();
    let id = rule
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .unwrap()
        .to_owned();
    // Without its playbook: this test has no on-call levels.
    let rule: String = rule
        .lines()
        .filter(|l| !l.starts_with("playbook:"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(rules.join("witness_refused.yml"), rule).unwrap();
    let fdata = forked.join("data");
    let extra = format!(
        "{}\n[rules]\ndir = {:?}\n",
        witness_section(&witness.url, &w_vkey),
        rules.to_str().unwrap()
    );
    let fork = Server::start(&forked, &serve_config(&fdata, &k, &extra));
    let mut n = 1000;
    while latest(&fdata).is_none_or(|l| l.0 <= size + 1) {
        post_some(&fork, n, 3);
        n += 3;
        latest_size(&fork, &fdata, latest(&fdata).map_or(0, |l| l.0));
    }
    let alert = fork.wait_for("an alert on the witness's refusal", || {
        let v: serde_json::Value = fork
            .client()
            .get(format!("{}/v1/alerts", fork.http))
            .send()
            .ok()?
            .json()
            .ok()?;
        v["alerts"]
            .as_array()?
            .iter()
            .find(|a| a["rule_id"] == id.as_str())
            .cloned()
    });
    assert_eq!(alert["severity"], "critical", "{alert}");
    // The recorded event says who refused and why.
    let refused: Vec<serde_json::Value> = util::stored_entries(&fdata)
        .into_iter()
        .filter(|e| e["event"]["action"] == "witness_refused")
        .collect();
    assert!(!refused.is_empty());
    let attrs = &refused[0]["event"]["attrs"];
    assert_eq!(attrs["witness"], "auditor.example/w", "{attrs}");
    assert_eq!(attrs["status"], 422, "{attrs}");
    // Nothing was cosigned for the forked history.
    assert!(!fdata.join("ledger/checkpoint.witnessed").exists());
    assert_eq!(fork.terminate(), Some(0));
    witness.stop();
}

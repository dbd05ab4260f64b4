//! Failures that heal (issue #13, item 6): a full disk and exhausted file
//! handles make ingest answer 503 with Retry-After and readiness fail; once
//! the cause goes away the service stores again without a restart, and
//! everything acknowledged is in the ledger exactly once.

use crate::util::{
    Server, bin, config_data_dir, event_json, keys, serve_config, stored_entries, test_token,
};
use reqwest::blocking::Client;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmpfs mounted for one test, unmounted when dropped (also on failure).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("running mount");
        // Not skipped: this test needs root (CI runs as root).
        assert!(
            out.status.success(),
            "the disk-full test must mount a tmpfs and needs root: mount failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system holding `path` to the last byte.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    for chunk in [1 << 20, 4096, 1] {
        let buf = vec![0x5a_u8; chunk];
        while f.write_all(&buf).is_ok() {}
    }
    let _ = f.sync_all();
}

fn event(id: &str, i: u64) -> String {
    event_json(i).replace(&format!("evt-{i:08}"), id)
}

/// POSTs one event; the status, or `None` when no answer came in time.
fn post(c: &Client, url: &str, body: String) -> Option<reqwest::blocking::Response> {
    c.post(format!("{url}/v1/events"))
        .header("content-type", "application/json")
        .body(body)
        .timeout(Duration::from_secs(3))
        .send()
        .ok()
}

fn get(c: &Client, url: &str, path: &str) -> (u16, String) {
    let r = c.get(format!("{url}{path}")).send().unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

fn wait_for(what: &str, server: &Server, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; log:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(50)); // polling a condition
    }
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1.0)
}

/// How often each event id is in the ledger.
fn stored_ids(data: &Path) -> HashMap<String, usize> {
    let mut ids = HashMap::new();
    for e in stored_entries(data) {
        if let Some(id) = e["event"]["id"].as_str() {
            *ids.entry(id.to_owned()).or_insert(0) += 1;
        }
    }
    ids
}

/// Everything acknowledged is stored exactly once; nothing is stored twice.
fn assert_exactly_once(data: &Path, acked: &[String]) {
    let ids = stored_ids(data);
    for id in acked {
        assert_eq!(
            ids.get(id),
            Some(&1),
            "acknowledged {id} must be stored once"
        );
    }
    for (id, n) in &ids {
        assert_eq!(*n, 1, "{id} is stored {n} times");
    }
}

fn verify(data: &Path, vkey: &Path) {
    let o = Command::new(bin())
        .args(["verify", "--data"])
        .arg(data)
        .arg("--vkey")
        .arg(vkey)
        .output()
        .unwrap();
    assert!(o.status.success(), "verify failed: {o:?}");
}

/// A 20 MB tmpfs data directory filled to the last byte: ingest answers
/// 503 with Retry-After, /readyz and /healthz say why, the metric and the
/// log show it; freeing the space heals the service without a restart and
/// nothing acknowledged is lost or duplicated.
#[test]
fn a_full_disk_answers_503_and_heals_when_space_is_freed() {
    let tmp = tempfile::tempdir().unwrap();
    let k = keys(&tmp.path().join("keys"));
    let mount = Tmpfs::mount(&tmp.path().join("mnt"), "20m");
    let data = mount.0.join("data");
    let server = Server::start(tmp.path(), &serve_config(&data, &k, ""));
    let url = server.http.clone();
    let c = server.client();
    let mut acked: Vec<String> = Vec::new();
    let mut unanswered: Vec<(String, u64)> = Vec::new();
    let mut n = 0u64;
    let mut send = |c: &Client, acked: &mut Vec<String>, unanswered: &mut Vec<(String, u64)>| {
        n += 1;
        let id = format!("heal-{n:06}");
        let r = post(c, &url, event(&id, n));
        match r.as_ref().map(|r| r.status().as_u16()) {
            Some(200) => acked.push(id),
            Some(_) => {}
            None => unanswered.push((id, n)),
        }
        r
    };
    for _ in 0..20 {
        let r = send(&c, &mut acked, &mut unanswered).unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(get(&c, &url, "/readyz"), (200, "ready\n".into()));

    let filler = mount.0.join("filler");
    fill(&filler);
    // Ingest goes on until the ledger needs a page it cannot get.
    let deadline = Instant::now() + Duration::from_secs(60);
    let refused = loop {
        let r = send(&c, &mut acked, &mut unanswered);
        if let Some(r) = r
            && r.status() == 503
        {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "never refused on a full disk; log:\n{}",
            server.log_text()
        );
    };
    assert_eq!(refused.headers()["retry-after"], "5");
    let (status, body) = get(&c, &url, "/readyz");
    assert_eq!(status, 503);
    assert_eq!(
        body,
        "not ready: ledger cannot write (No space left on device)\n"
    );
    assert_eq!(get(&c, &url, "/healthz").0, 503);
    // A search cannot be audited now, so it is refused rather than answered.
    assert_eq!(get(&c, &url, "/v1/search?q=*").0, 503);
    let (_, metrics) = get(&c, &url, "/metrics");
    assert_eq!(metric(&metrics, "sealtrail_ledger_writable"), 0.0);
    assert!(
        metric(
            &metrics,
            "sealtrail_ledger_write_errors_total{kind=\"enospc\"}"
        ) >= 1.0,
        "{metrics}"
    );
    let log = server.log_text();
    assert!(
        log.contains("ledger write failed") && log.contains("No space left on device"),
        "the failure is logged with the OS error:\n{log}"
    );
    // Still refused while full, and not acknowledged.
    for _ in 0..5 {
        let r = send(&c, &mut acked, &mut unanswered).unwrap();
        assert_eq!(r.status(), 503);
    }

    std::fs::remove_file(&filler).unwrap();
    wait_for("readiness after freeing space", &server, || {
        get(&c, &url, "/readyz").0 == 200
    });
    assert!(
        server.log_text().contains("ledger write recovered"),
        "recovery is logged"
    );
    // Requests that got no answer are retried with the same id: stored once.
    for (id, i) in std::mem::take(&mut unanswered) {
        let r = post(&c, &url, event(&id, i)).unwrap();
        assert_eq!(r.status(), 200, "retry of {id}");
        acked.push(id);
    }
    for _ in 0..20 {
        let r = send(&c, &mut acked, &mut unanswered).unwrap();
        assert_eq!(r.status(), 200, "ingest works again without a restart");
    }
    let (_, metrics) = get(&c, &url, "/metrics");
    assert_eq!(metric(&metrics, "sealtrail_ledger_writable"), 1.0);
    // The indexer (its commits failed on the full disk too) indexes again.
    let newest = acked.last().unwrap().clone();
    wait_for(
        "the indexer to index after the disk was freed",
        &server,
        || search_total(&c, &url, &format!("id:\"{newest}\"")) == Some(1),
    );

    assert_eq!(server.terminate(), Some(0));
    assert_exactly_once(&data, &acked);
    verify(&data, &k.vkey);
}

/// `sealtrail serve` under `prlimit --nofile=N:N`, with the syslog TCP address.
fn start_with_nofile(dir: &Path, config: &str, nofile: u32) -> (Server, String) {
    let cfg = dir.join("serve.toml");
    std::fs::write(&cfg, config).unwrap();
    let token = test_token(&config_data_dir(config));
    let log = dir.join("serve-nofile.log");
    let child = Command::new("prlimit")
        .arg(format!("--nofile={nofile}:{nofile}"))
        .arg("--")
        .arg(bin())
        .args(["serve", "--config"])
        .arg(&cfg)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("prlimit (util-linux) runs the server");
    let mut server = Server {
        child,
        http: String::new(),
        log,
        token,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = server.log_text();
        if let Some(line) = text.lines().find(|l| l.contains("sealtrail is serving")) {
            let field = |name: &str| {
                line.split(name)
                    .nth(1)
                    .unwrap()
                    .split([' ', ')'])
                    .next()
                    .unwrap()
                    .to_owned()
            };
            server.http = format!("http://{}", field("http="));
            return (server, field("syslog_tcp=Some("));
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("server exited with {status}: {text}");
        }
        assert!(Instant::now() < deadline, "server did not start: {text}");
        std::thread::sleep(Duration::from_millis(20)); // polling a condition
    }
}

fn search_total(c: &Client, url: &str, q: &str) -> Option<u64> {
    let r = c
        .get(format!("{url}/v1/search"))
        .query(&[("q", q), ("limit", "0")])
        .send()
        .ok()?;
    let v: serde_json::Value = r.json().ok()?;
    v["total"].as_u64()
}

/// With 256 file handles, far more idle connections than that (HTTP and
/// syslog TCP) are refused at the door instead of taking the ledger's
/// handles: an open connection keeps storing throughout, the ledger never
/// fails; once they close, new connections store again without a restart
/// and the indexer still indexes.
#[test]
fn idle_connections_cannot_take_the_ledgers_file_handles() {
    let tmp = tempfile::tempdir().unwrap();
    let k = keys(&tmp.path().join("keys"));
    let data = tmp.path().join("data");
    let (server, syslog) = start_with_nofile(tmp.path(), &serve_config(&data, &k, ""), 256);
    let url = server.http.clone();
    // One client connected before the flood keeps its connection (pooled).
    let kept = server.client();
    let mut acked = Vec::new();
    let mut store = |c: &Client, id: String, i: u64| -> Option<u16> {
        let status = post(c, &url, event(&id, i)).map(|r| r.status().as_u16());
        if status == Some(200) {
            acked.push(id);
        }
        status
    };
    assert_eq!(store(&kept, "fd-00000".into(), 0), Some(200));

    let http_addr = url.trim_start_matches("http://").to_owned();
    let mut idle = Vec::new();
    for addr in [&http_addr, &syslog] {
        for _ in 0..300 {
            // Bounded: a server that stopped accepting leaves the backlog full.
            let addr: std::net::SocketAddr = addr.parse().unwrap();
            if let Ok(s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
                idle.push(s);
            }
        }
    }
    // The server has taken (or refused) the flood: a new connection is
    // refused (closed unanswered) while the budget is spent.
    let fresh = Client::builder()
        .pool_max_idle_per_host(0)
        .default_headers(
            [(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {}", server.token).parse().unwrap(),
            )]
            .into_iter()
            .collect(),
        )
        .build()
        .unwrap();
    wait_for("new connections to be refused", &server, || {
        post(&fresh, &url, event("fd-probe", 1)).is_none()
    });
    // Seals (a new segment file every 50 ms), checkpoints and index commits
    // go on meanwhile from the reserve: the kept connection stores.
    for i in 1..=20 {
        assert_eq!(
            store(&kept, format!("fd-{i:05}"), i),
            Some(200),
            "log:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(20)); // spread over seals
    }
    let (_, metrics) = get(&kept, &url, "/metrics");
    assert_eq!(metric(&metrics, "sealtrail_ledger_writable"), 1.0);
    assert_eq!(
        metric(
            &metrics,
            "sealtrail_ledger_write_errors_total{kind=\"emfile\"}"
        ),
        0.0,
        "the ledger never ran out of handles:\n{metrics}"
    );

    drop(idle);
    wait_for("new connections to store again", &server, || {
        store(&fresh, "fd-after".into(), 999) == Some(200)
    });
    let r = post(&fresh, &url, event("fd-marker", 1000)).unwrap();
    assert_eq!(r.status(), 200);
    acked.push("fd-marker".into());
    wait_for("the indexer to index a new event", &server, || {
        // (not the message: each search is audited with its query text)
        search_total(&fresh, &url, "id:\"fd-marker\"") == Some(1)
    });

    assert_eq!(server.terminate(), Some(0));
    assert_exactly_once(&data, &acked);
    verify(&data, &k.vkey);
}

/// Stopping while the disk is full does not hang: the service says the
/// ledger could not write, exits non-zero, and a restart (with space) has
/// everything that was acknowledged, once.
#[test]
fn stopping_while_the_disk_is_full_exits_non_zero_and_keeps_what_was_acknowledged() {
    let tmp = tempfile::tempdir().unwrap();
    let k = keys(&tmp.path().join("keys"));
    let mount = Tmpfs::mount(&tmp.path().join("mnt"), "20m");
    let data = mount.0.join("data");
    let config = serve_config(&data, &k, "");
    let server = Server::start(tmp.path(), &config);
    let url = server.http.clone();
    let c = server.client();
    let mut acked = Vec::new();
    for i in 0..10 {
        let id = format!("stop-{i:04}");
        assert_eq!(post(&c, &url, event(&id, i)).unwrap().status(), 200);
        acked.push(id);
    }
    let filler = mount.0.join("filler");
    fill(&filler);
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 10.. {
        let id = format!("stop-{i:04}");
        match post(&c, &url, event(&id, i)).map(|r| r.status().as_u16()) {
            Some(200) => acked.push(id),
            Some(503) => break,
            _ => {}
        }
        assert!(Instant::now() < deadline, "never refused on a full disk");
    }
    let stopped = Instant::now();
    let log = server.log.clone();
    let code = server.terminate();
    assert_ne!(code, Some(0), "a ledger that cannot write is reported");
    assert!(
        stopped.elapsed() < Duration::from_secs(30),
        "shutdown did not hang"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("everything acknowledged is durable"),
        "the stop says what happened:\n{text}"
    );

    std::fs::remove_file(&filler).unwrap();
    let server = Server::start(tmp.path(), &config);
    assert_eq!(server.terminate(), Some(0));
    assert_exactly_once(&data, &acked);
    verify(&data, &k.vkey);
}

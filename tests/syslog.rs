//! Syslog ingestion end to end: the real service on ephemeral ports, fed by
//! util-linux `logger`, raw sockets and a TLS client; stored entries read
//! back from the ledger after a clean stop.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)] // test code

use sealtrail::config::Config;
use sealtrail::ledger::segment::FrameReader;
use sealtrail::serve::Bound;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Longest any condition is waited for before the test fails.
const PATIENCE: Duration = Duration::from_secs(20);

struct Service {
    dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    token: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    bound: Bound,
    /// A `metrics` token for `/metrics`.
    scraper: String,
}

impl Service {
    /// Starts the service with `syslog_toml` as its `[syslog]` section
    /// (`listen` defaults to an ephemeral port here).
    fn start(syslog_toml: &str) -> Service {
        Self::start_in(tempfile::tempdir().unwrap(), syslog_toml)
    }

    fn start_in(dir: tempfile::TempDir, syslog_toml: &str) -> Service {
        let keys = dir.path().join("keys");
        std::fs::create_dir_all(&keys).unwrap();
        let files = sealtrail::ledger::keys::write_key_files(&keys, "test/sealtrail").unwrap();
        let has_listen = syslog_toml
            .lines()
            .any(|l| l.trim_start().starts_with("listen"));
        let listen = if has_listen {
            ""
        } else {
            "listen = \"127.0.0.1:0\"\n"
        };
        // No rules: these tests count the stored entries, and the shipped
        // pack (the default `rules` folder, relative to the crate) would add
        // its own (a fixed-time event from a new source arriving after live
        // ones is a late hit the detector reports).
        let text = format!(
            "data_dir = {data:?}\n[ledger]\nkey_file = {key:?}\nseal_max_age_ms = 20\n\
             [http]\nlisten = \"127.0.0.1:0\"\n[rules]\ndir = {rules:?}\n\
             [syslog]\n{listen}{syslog_toml}\n",
            data = dir.path().join("data"),
            key = files.signing_key,
            rules = dir.path().join("no-rules"),
        );
        let path = dir.path().join("sealtrail.toml");
        std::fs::write(&path, text).unwrap();
        // A scraper's token: /metrics is not open.
        let scraper = sealtrail::auth::tokens::create(
            &dir.path().join("data"),
            Some("scraper"),
            sealtrail::auth::RoleSet::of(&[sealtrail::auth::Role::Metrics]),
            None,
        )
        .unwrap()
        .secret;
        let config = Config::load(Some(&path)).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let token = CancellationToken::new();
        let (tx, rx) = std::sync::mpsc::channel();
        let task = rt.spawn(sealtrail::serve::run_until(
            config,
            token.clone(),
            move |b| {
                let _ = tx.send(b);
            },
        ));
        let bound = match rx.recv_timeout(PATIENCE) {
            Ok(b) => b,
            Err(_) => panic!("service did not start: {:?}", rt.block_on(task)),
        };
        Service {
            dir,
            rt,
            token,
            scraper,
            task: Some(task),
            bound,
        }
    }

    fn port(&self) -> String {
        self.bound.syslog_tcp.unwrap().port().to_string()
    }

    fn metric_sum(&self, prefix: &str) -> u64 {
        let text = reqwest::blocking::Client::new()
            .get(format!("http://{}/metrics", self.bound.http))
            .bearer_auth(&self.scraper)
            .send()
            .unwrap()
            .text()
            .unwrap();
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    /// Entries acknowledged (stored or rejected) from syslog sources.
    fn stored(&self) -> u64 {
        self.metric_sum("sealtrail_events_accepted_total{source=\"syslog")
            + self.metric_sum("sealtrail_events_rejected_total{source=\"syslog")
    }

    fn wait_for(&self, what: &str, mut cond: impl FnMut(&Service) -> bool) {
        let start = Instant::now();
        while !cond(self) {
            assert!(start.elapsed() < PATIENCE, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_stored(&self, n: u64) {
        self.wait_for(&format!("{n} syslog entries"), |s| s.stored() >= n);
    }

    /// Stops cleanly and returns every stored entry in ledger order.
    fn stop(mut self) -> (Vec<Value>, tempfile::TempDir) {
        self.token.cancel();
        let task = self.task.take().unwrap();
        self.rt.block_on(task).unwrap().unwrap();
        (entries(&self.dir.path().join("data")), self.dir)
    }
}

/// The stored entries, without the record of the scraper token's creation.
fn entries(data: &Path) -> Vec<Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(data.join("ledger/segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let mut r = FrameReader::open(&f).unwrap();
        while let Some(frame) = r.next_frame().unwrap() {
            let v: Value = serde_json::from_slice(&frame.payload).unwrap();
            let token_record = v["event"]["id"]
                .as_str()
                .is_some_and(|id| id.starts_with("auth-change-"));
            if !token_record {
                out.push(v);
            }
        }
    }
    out
}

fn logger(args: &[&str], stdin: Option<&str>) {
    let path = Path::new("/usr/bin/logger");
    assert!(
        path.exists(),
        "these tests need util-linux logger: apt-get install -y bsdutils"
    );
    let mut cmd = Command::new(path);
    cmd.args(args);
    let status = match stdin {
        None => cmd.status().unwrap(),
        Some(text) => {
            let mut child = cmd.stdin(std::process::Stdio::piped()).spawn().unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
            child.wait().unwrap()
        }
    };
    assert!(status.success(), "logger {args:?}: {status}");
}

/// The one entry whose event has this `message`.
fn by_message<'a>(entries: &'a [Value], message: &str) -> &'a Value {
    let found: Vec<_> = entries
        .iter()
        .filter(|e| e["event"]["message"] == message)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "entries with message {message:?}: {entries:#?}"
    );
    found[0]
}

fn rejected(entries: &[Value]) -> Vec<&Value> {
    entries
        .iter()
        .filter(|e| e["event"]["action"] == "ingest_rejected")
        .collect()
}

#[test]
fn logger_messages_over_udp_tcp_and_octet_counting_become_events() {
    let svc = Service::start("");
    let port = svc.port();
    let to = ["-n", "127.0.0.1", "-P", port.as_str()];
    let json = r#"{"time":"2026-11-27T14:03:11Z","category":"access","action":"view","outcome":"success","actor":{"user":"u0042"},"patient":{"id":"MRN-0012345"},"source":{"system":"ehr"},"message":"json over tcp"}"#;
    let run = |mode: &[&str], extra: &[&str], msg: &str| {
        let mut args: Vec<&str> = mode.to_vec();
        args.extend_from_slice(&to);
        args.extend_from_slice(extra);
        args.push(msg);
        logger(&args, None);
    };
    run(
        &["--rfc5424", "-d"],
        &["-t", "billing"],
        "plain text over udp",
    );
    run(&["--rfc5424", "-T"], &["-t", "ehr"], json);
    run(
        &["--rfc5424", "--octet-count", "-T"],
        &[
            "-t",
            "portal",
            "--msgid",
            "AUTH",
            "--sd-id",
            "sealtrail@32473",
            "--sd-param",
            r#"category="auth""#,
            "--sd-param",
            r#"action="login""#,
            "--sd-param",
            r#"outcome="failure""#,
            "--sd-param",
            r#"actor.user="u0077""#,
            "--sd-param",
            r#"actor.ip="10.20.1.17""#,
        ],
        "bad password",
    );
    run(
        &["--rfc3164", "-d"],
        &["-t", "sshd", "-i"],
        "rfc3164 over udp",
    );
    run(&["--rfc3164", "-T"], &["-t", "cron"], "rfc3164 over tcp");
    // Several lines on one connection, in both framings.
    let mut args = vec!["--rfc5424", "-T", "-t", "lines"];
    args.extend_from_slice(&to);
    logger(&args, Some("line one\nline two\n"));
    let mut args = vec!["--rfc5424", "--octet-count", "-T", "-t", "counted"];
    args.extend_from_slice(&to);
    logger(&args, Some("counted one\ncounted two\n"));
    svc.wait_stored(9);
    let (entries, _dir) = svc.stop();
    assert_eq!(entries.len(), 9, "{entries:#?}");
    assert!(rejected(&entries).is_empty(), "{entries:#?}");

    let e = by_message(&entries, "plain text over udp");
    assert_eq!(e["via"]["kind"], "syslog_udp");
    assert_eq!(e["via"]["peer"], "127.0.0.1");
    let ev = &e["event"];
    assert_eq!(
        (&ev["category"], &ev["action"], &ev["outcome"]),
        (&"system".into(), &"syslog".into(), &"unknown".into())
    );
    assert_eq!(ev["source"]["system"], "billing");
    assert!(ev["source"]["host"].is_string());
    assert_eq!(ev["attrs"]["facility"], "user");
    assert_eq!(ev["attrs"]["severity"], "notice");
    assert_eq!(ev["attrs"]["format"], "rfc5424");
    assert!(
        ev["attrs"]["raw"]
            .as_str()
            .unwrap()
            .ends_with("plain text over udp")
    );

    let e = by_message(&entries, "json over tcp");
    assert_eq!(e["via"]["kind"], "syslog_tcp");
    let ev = &e["event"];
    assert_eq!(
        (&ev["category"], &ev["action"]),
        (&"access".into(), &"view".into())
    );
    assert_eq!(ev["actor"]["user"], "u0042");
    assert_eq!(ev["patient"]["id"], "MRN-0012345");
    assert_eq!(ev["time"], "2026-11-27T14:03:11Z");
    assert_eq!(
        ev["source"],
        serde_json::json!({"system": "ehr"}),
        "no host invented"
    );
    assert!(ev.get("attrs").is_none());

    let ev = &by_message(&entries, "bad password")["event"];
    assert_eq!(
        (&ev["category"], &ev["action"], &ev["outcome"]),
        (&"auth".into(), &"login".into(), &"failure".into())
    );
    assert_eq!(ev["actor"]["user"], "u0077");
    assert_eq!(ev["actor"]["ip"], "10.20.1.17");
    assert_eq!(ev["source"]["system"], "portal");

    let e = by_message(&entries, "rfc3164 over udp");
    assert_eq!(e["via"]["kind"], "syslog_udp");
    assert_eq!(e["event"]["source"]["system"], "sshd");
    assert_eq!(e["event"]["attrs"]["format"], "rfc3164");
    assert!(e["event"]["attrs"]["procid"].is_string());
    let e = by_message(&entries, "rfc3164 over tcp");
    assert_eq!(e["event"]["source"]["system"], "cron");
    for m in ["line one", "line two", "counted one", "counted two"] {
        assert_eq!(by_message(&entries, m)["via"]["kind"], "syslog_tcp");
    }
}

fn tls_client_config(cert: &Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in sealtrail::tls::load_certs(cert).unwrap() {
        roots.add(c).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(sealtrail::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

fn octet(msg: &str) -> Vec<u8> {
    format!("{} {msg}", msg.len()).into_bytes()
}

#[test]
fn tls_octet_counted_messages_are_stored() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("tls");
    std::fs::create_dir_all(&certs).unwrap();
    let files = sealtrail::tls::write_self_signed(&certs, &["localhost".into()]).unwrap();
    let svc = Service::start_in(
        dir,
        &format!(
            "tls_listen = \"127.0.0.1:0\"\ntls_cert = {:?}\ntls_key = {:?}\n",
            files.cert, files.key
        ),
    );
    let addr = svc.bound.syslog_tls.unwrap();
    let client = tls_client_config(&files.cert);
    let mut first = octet("<86>1 2026-11-27T10:00:00Z app-01 ehr - - - first over tls");
    first.extend(octet(
        r#"<86>1 2026-11-27T10:00:01Z app-01 ehr - - [event@32473 category="access" action="print" outcome="success" actor.user="u0042" records="3"] printed"#,
    ));
    let split = octet("<86>1 - app-01 ehr - - - split across writes");
    svc.rt.block_on(async {
        use tokio::io::AsyncWriteExt;
        let connector = tokio_rustls::TlsConnector::from(client);
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost".to_owned()).unwrap();
        let mut tls = connector.connect(name, tcp).await.unwrap();
        tls.write_all(&first).await.unwrap();
        tls.flush().await.unwrap();
        for part in split.chunks(7) {
            tls.write_all(part).await.unwrap();
            tls.flush().await.unwrap();
        }
        tls.shutdown().await.unwrap();
    });
    svc.wait_stored(3);
    let (entries, _dir) = svc.stop();
    assert_eq!(entries.len(), 3, "{entries:#?}");
    assert!(entries.iter().all(|e| e["via"]["kind"] == "syslog_tls"));
    by_message(&entries, "first over tls");
    by_message(&entries, "split across writes");
    let ev = &by_message(&entries, "printed")["event"];
    assert_eq!(
        (&ev["action"], &ev["records"]),
        (&"print".into(), &3.into())
    );
    assert_eq!(ev["time"], "2026-11-27T10:00:01Z");
}

fn tcp(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s
}

/// Reads until the server closes the connection; fails if it does not.
fn expect_closed(mut s: TcpStream) {
    let mut buf = [0u8; 64];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
            Err(e) => panic!("connection was not closed by the server: {e}"),
        }
    }
}

#[test]
fn garbage_and_oversize_input_is_recorded_as_rejected_and_the_service_stays_up() {
    let svc = Service::start("max_message_bytes = 1024\n");
    let addr = svc.bound.syslog_tcp.unwrap();
    let big = "x".repeat(3000);

    // LF framing: garbage, a good line, an oversize line (skipped to the
    // next newline), a good line.
    let mut s = tcp(addr);
    let stream = format!(
        "hello, not syslog\n<13>1 - h app - - - after garbage\n<13>1 - h app - - - {big}\n<13>1 - h app - - - after oversize\n"
    );
    s.write_all(stream.as_bytes()).unwrap();
    drop(s);
    // Octet counting: an oversize frame is skipped by its length.
    let mut s = tcp(addr);
    let mut stream = octet(&format!("<13>1 - h app - - - {big}"));
    stream.extend(octet("<13>1 - h app - - - after counted oversize"));
    s.write_all(&stream).unwrap();
    drop(s);
    // A broken octet count: recorded, and the connection is closed.
    let mut s = tcp(addr);
    s.write_all(b"12x <13>1 - - - - - -").unwrap();
    expect_closed(s);
    // Not UTF-8, over UDP.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp_addr = svc.bound.syslog_udp.unwrap();
    udp.send_to(b"<13>1 - h app - - - \xff\xfe", udp_addr)
        .unwrap();
    // An oversize datagram.
    udp.send_to(format!("<13>1 - h app - - - {big}").as_bytes(), udp_addr)
        .unwrap();

    svc.wait_stored(9);
    // Still serving.
    let port = svc.port();
    logger(
        &[
            "--rfc5424",
            "-T",
            "-n",
            "127.0.0.1",
            "-P",
            &port,
            "still up",
        ],
        None,
    );
    svc.wait_stored(10);
    assert_eq!(
        svc.metric_sum("sealtrail_events_rejected_total{source=\"syslog_tcp\"}"),
        4
    );
    assert_eq!(
        svc.metric_sum("sealtrail_events_rejected_total{source=\"syslog_udp\"}"),
        2
    );
    let (entries, _dir) = svc.stop();
    let errors: Vec<&str> = rejected(&entries)
        .iter()
        .map(|e| e["event"]["attrs"]["error"].as_str().unwrap())
        .collect();
    assert_eq!(errors.len(), 6, "{entries:#?}");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("does not start with <PRI>")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("longer than the limit of 1024")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("3020 bytes, more than the limit of 1024")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("octet-counted framing")),
        "{errors:?}"
    );
    assert!(errors.iter().any(|e| e.contains("utf-8")), "{errors:?}");
    assert!(
        errors.iter().any(|e| e.contains("datagram is longer than")),
        "{errors:?}"
    );
    let garbage = rejected(&entries)
        .into_iter()
        .find(|e| {
            e["event"]["attrs"]["error"]
                .as_str()
                .unwrap()
                .contains("<PRI>")
        })
        .unwrap();
    assert_eq!(garbage["event"]["attrs"]["raw"], "hello, not syslog");
    for m in [
        "after garbage",
        "after oversize",
        "after counted oversize",
        "still up",
    ] {
        by_message(&entries, m);
    }
}

#[test]
fn idle_connections_are_closed_and_their_partial_line_is_kept() {
    let svc = Service::start("idle_timeout = \"300ms\"\n");
    let addr = svc.bound.syslog_tcp.unwrap();
    let started = Instant::now();
    expect_closed(tcp(addr));
    assert!(started.elapsed() >= Duration::from_millis(250));
    let mut s = tcp(addr);
    s.write_all(b"<13>1 - h app - - - no newline before going quiet")
        .unwrap();
    expect_closed(s);
    svc.wait_stored(1);
    let (entries, _dir) = svc.stop();
    by_message(&entries, "no newline before going quiet");
}

#[test]
fn at_the_connection_limit_the_longest_idle_connection_makes_room() {
    let svc = Service::start("max_connections = 2\n");
    let addr = svc.bound.syslog_tcp.unwrap();
    // Two connections, each known to be served once its message is stored;
    // the first is then the one idle longest.
    let mut held = Vec::new();
    for i in 0..2 {
        let mut s = tcp(addr);
        s.write_all(format!("<13>1 - h app - - - held {i}\n").as_bytes())
            .unwrap();
        svc.wait_stored(i + 1);
        held.push(s);
    }
    let mut third = tcp(addr);
    third.write_all(b"<13>1 - h app - - - third\n").unwrap();
    svc.wait_stored(3);
    let second = held.pop().unwrap();
    expect_closed(held.pop().unwrap());
    // The other two are still served.
    for (mut s, m) in [(second, "second again"), (third, "third again")] {
        s.write_all(format!("<13>1 - h app - - - {m}\n").as_bytes())
            .unwrap();
    }
    svc.wait_stored(5);
    assert_eq!(
        svc.metric_sum("sealtrail_syslog_connections_evicted_total"),
        1
    );
    let (entries, _dir) = svc.stop();
    assert_eq!(entries.len(), 5);
    by_message(&entries, "second again");
}

#[test]
fn connections_over_the_per_address_limit_are_closed() {
    let svc = Service::start("max_connections_per_ip = 2\n");
    let addr = svc.bound.syslog_tcp.unwrap();
    let mut held = Vec::new();
    for i in 0..2 {
        let mut s = tcp(addr);
        s.write_all(format!("<13>1 - h app - - - held {i}\n").as_bytes())
            .unwrap();
        svc.wait_stored(i + 1);
        held.push(s);
    }
    expect_closed(tcp(addr));
    assert_eq!(
        svc.metric_sum("sealtrail_syslog_connections_refused_total{reason=\"per_ip\"}"),
        1
    );
    // Once one closes, its slot is free again.
    drop(held.pop());
    svc.wait_for("a free connection slot", |_| {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let mut buf = [0u8; 1];
        // Held open (read times out) means it was accepted.
        matches!(
            (&s).read(&mut buf),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
        )
    });
    let (entries, _dir) = svc.stop();
    assert_eq!(entries.len(), 2);
}

#[test]
fn a_connection_that_never_sends_is_closed_sooner_than_a_quiet_sender() {
    let svc = Service::start("first_byte_timeout = \"300ms\"\nidle_timeout = \"1h\"\n");
    let addr = svc.bound.syslog_tcp.unwrap();
    let mut talker = tcp(addr);
    talker.write_all(b"<13>1 - h app - - - hello\n").unwrap();
    svc.wait_stored(1);
    let started = Instant::now();
    expect_closed(tcp(addr));
    assert!(started.elapsed() < Duration::from_secs(10));
    // The sender that spoke is still served.
    talker
        .write_all(b"<13>1 - h app - - - still here\n")
        .unwrap();
    svc.wait_stored(2);
    svc.stop();
}

#[test]
fn shutdown_stores_what_connections_already_sent() {
    let svc = Service::start("");
    let addr = svc.bound.syslog_tcp.unwrap();
    let mut s = tcp(addr);
    s.write_all(b"<13>1 - h app - - - before shutdown\n")
        .unwrap();
    svc.wait_stored(1);
    s.write_all(b"<13>1 - h app - - - partial line at shutdown")
        .unwrap();
    let (entries, _dir) = svc.stop();
    expect_closed(s);
    by_message(&entries, "before shutdown");
    by_message(&entries, "partial line at shutdown");
}

#[test]
fn cert_command_writes_a_usable_certificate_and_private_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tls");
    let status = Command::new(env!("CARGO_BIN_EXE_sealtrail"))
        .args(["cert", "--out"])
        .arg(&out)
        .args(["--host", "localhost"])
        .status()
        .unwrap();
    assert!(status.success());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out.join("key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    sealtrail::tls::server_config(&out.join("cert.pem"), &out.join("key.pem")).unwrap();
    // A second run refuses to overwrite.
    let status = Command::new(env!("CARGO_BIN_EXE_sealtrail"))
        .args(["cert", "--out"])
        .arg(&out)
        .args(["--host", "localhost"])
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(2));
}

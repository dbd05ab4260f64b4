//! Shared fixtures: temp data directories, keys, events of a realistic size.

use sealtrail::event::{Entry, Event, Timestamp, Via};
use sealtrail::ledger::keys::{self, NoteSigner, NoteVerifier};
use sealtrail::ledger::log::{Ledger, LedgerEntry, SealPolicy};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const ORIGIN: &str = "clinic.example/sealtrail";

pub struct Keys {
    pub key: PathBuf,
    pub vkey: PathBuf,
    pub verifier: NoteVerifier,
}

impl Keys {
    /// A fresh handle on the signing key (signers are deliberately not Clone).
    pub fn signer(&self) -> NoteSigner {
        keys::load_signer(&self.key).unwrap()
    }
}

pub fn keys(dir: &Path) -> Keys {
    std::fs::create_dir_all(dir).unwrap();
    let files = keys::write_key_files(dir, ORIGIN).unwrap();
    Keys {
        verifier: keys::load_verifier(&files.vkey).unwrap(),
        key: files.signing_key,
        vkey: files.vkey,
    }
}

/// An ePHI access event of about 300 bytes once stored.
pub fn event_json(i: u64) -> String {
    format!(
        concat!(
            r#"{{"id":"evt-{i:08}","time":"2026-11-{day:02}T{h:02}:{m:02}:11.{ms:03}Z","category":"access","action":"view","outcome":"success","#,
            r#""actor":{{"user":"u{u:04}","role":"clinician","department":"cardiology","ip":"10.20.1.{ip}"}},"#,
            r#""patient":{{"id":"MRN-{p:07}"}},"resource":{{"type":"chart","id":"enc-{i}"}},"#,
            r#""source":{{"system":"ehr","host":"app-01"}},"reason":"treatment","message":"Viewed encounter note"}}"#
        ),
        i = i,
        day = 1 + (i / 86_400) % 28,
        h = (i / 3600) % 24,
        m = (i / 60) % 60,
        ms = i % 1000,
        u = i % 97,
        ip = i % 250,
        p = i % 5003,
    )
}

pub fn entry(i: u64) -> LedgerEntry {
    let event = Event::from_json(event_json(i).as_bytes()).unwrap();
    let entry = Entry {
        received: Timestamp::parse("2026-11-27T14:03:11.5Z").unwrap(),
        via: Via {
            kind: "import".into(),
            peer: Some("test".into()),
            principal: None,
        },
        event,
        enriched: None,
    };
    LedgerEntry {
        time_ms: entry.event.time.unix_ms(),
        bytes: entry.canonical_bytes(),
    }
}

pub fn policy(max_events: u64) -> SealPolicy {
    SealPolicy {
        max_events,
        max_age: Duration::from_secs(3600),
    }
}

/// Builds a closed ledger of `n` events in segments of at most `per_segment`.
pub fn build_ledger(data: &Path, k: &Keys, n: u64, per_segment: u64) {
    let (mut ledger, _) = Ledger::open(data, k.signer(), policy(per_segment)).unwrap();
    let entries: Vec<LedgerEntry> = (0..n).map(entry).collect();
    for chunk in entries.chunks(7) {
        ledger.append(chunk).unwrap();
    }
    ledger.close().unwrap();
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_sealtrail")
}

pub fn segment_path(data: &Path, n: u64) -> PathBuf {
    data.join("ledger/segments").join(format!("{n:012}.seg"))
}

/// A `sealtrail serve` child process on an ephemeral port.
pub struct Server {
    pub child: std::process::Child,
    pub http: String,
    pub log: PathBuf,
    /// An API token holding every role (created with `sealtrail token
    /// create` in the data directory before the first start).
    pub token: String,
}

/// The roles of the tests' all-powerful token.
pub const ALL_ROLES: &str = "ingest,analyst,responder,auditor,admin,metrics";

/// Creates a token with `roles` in `data` through the CLI; returns it.
pub fn create_token(data: &Path, name: &str, roles: &str) -> String {
    let out = std::process::Command::new(bin())
        .args(["token", "create", "--data"])
        .arg(data)
        .args(["--role", roles, "--name", name])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "token create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The all-roles test token of `data`, created on first use and kept
/// beside the store (restarts of the same data directory reuse it).
pub fn test_token(data: &Path) -> String {
    let path = data.join("auth").join("test-token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        return t;
    }
    let token = create_token(data, "test-all", ALL_ROLES);
    std::fs::write(&path, &token).unwrap();
    token
}

/// A blocking HTTP client that sends `token` with every request.
pub fn client_with(token: &str) -> reqwest::blocking::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    reqwest::blocking::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// The `data_dir` a serve config names.
pub fn config_data_dir(config: &str) -> PathBuf {
    let value: toml::Value = toml::from_str(config).unwrap();
    PathBuf::from(
        value["data_dir"]
            .as_str()
            .expect("serve config without data_dir"),
    )
}

impl Server {
    /// Starts `sealtrail serve` with `config` (TOML text) and waits until it serves.
    #[allow(clippy::zombie_processes)] // `Drop` kills and waits
    pub fn start(dir: &Path, config: &str) -> Server {
        Server::start_logging(dir, config, "info")
    }

    /// [`Server::start`] with `RUST_LOG=level`; stdout goes to the log too.
    #[allow(clippy::zombie_processes)] // `Drop` kills and waits
    pub fn start_logging(dir: &Path, config: &str, level: &str) -> Server {
        let cfg = dir.join("serve.toml");
        std::fs::write(&cfg, config).unwrap();
        let token = test_token(&config_data_dir(config));
        let log = dir.join(format!(
            "serve-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let mut child = std::process::Command::new(bin())
            .args(["serve", "--config"])
            .arg(&cfg)
            .env("RUST_LOG", level)
            .stdout(std::fs::File::create(log.with_extension("out")).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(pos) = text.find("sealtrail is serving") {
                let line = &text[pos..text[pos..].find('\n').map_or(text.len(), |n| pos + n)];
                let addr = line
                    .split("http=")
                    .nth(1)
                    .unwrap()
                    .split_whitespace()
                    .next()
                    .unwrap();
                return Server {
                    child,
                    http: format!("http://{addr}"),
                    log,
                    token,
                };
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("server exited with {status}: {text}");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "server did not start: {text}"
            );
            std::thread::sleep(Duration::from_millis(20)); // polling a condition
        }
    }

    /// A client sending the all-roles token.
    pub fn client(&self) -> reqwest::blocking::Client {
        client_with(&self.token)
    }

    /// The server's log so far (for failure messages).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM and wait; returns the exit code.
    pub fn terminate(mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        let code = self.child.wait().unwrap().code();
        if code != Some(0) {
            eprintln!("server log:\n{}", self.log_text());
        }
        code
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A test that failed half-way must not leave a server running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Config text for a server on an ephemeral port over `data` with key `k`.
/// Without a `[rules]` section in `extra`, the rules folder is one that does
/// not exist (no rules), so the repository's rule pack does not add alerts.
pub fn serve_config(data: &Path, k: &Keys, extra: &str) -> String {
    let rules = if extra.contains("[rules]") {
        String::new()
    } else {
        format!(
            "[rules]\ndir = {:?}\n",
            data.with_file_name("no-rules").to_str().unwrap()
        )
    };
    format!(
        "data_dir = {:?}\n{extra}\n{rules}[ledger]\nkey_file = {:?}\nseal_max_age_ms = 50\n[syslog]\nlisten = \"127.0.0.1:0\"\n[http]\nlisten = \"127.0.0.1:0\"\n",
        data.to_str().unwrap(),
        k.key.to_str().unwrap()
    )
}

/// Entries a `Server` data directory starts with: index 0 records the
/// creation of the test token (every token change is a ledger event).
pub const TOKEN_RECORDS: u64 = 1;

/// Stored entries without the records of token changes (`auth-change-N`).
pub fn sent_entries(data: &Path) -> Vec<serde_json::Value> {
    stored_entries(data)
        .into_iter()
        .filter(|e| {
            !e["event"]["id"]
                .as_str()
                .is_some_and(|id| id.starts_with("auth-change-"))
        })
        .collect()
}

/// Every stored entry's bytes (sealed segments, then the open one), in order.
pub fn stored_payloads(data: &Path) -> Vec<Vec<u8>> {
    let dir = data.join("ledger/segments");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let mut r = sealtrail::ledger::segment::FrameReader::open(&f).unwrap();
        while let Some(frame) = r.next_frame().unwrap() {
            out.push(frame.payload);
        }
    }
    out
}

/// Every stored entry (sealed and open segments), in order, as JSON.
pub fn stored_entries(data: &Path) -> Vec<serde_json::Value> {
    stored_payloads(data)
        .iter()
        .map(|p| serde_json::from_slice(p).unwrap())
        .collect()
}

/// The rule pack the detection and response tests share: a detection
/// without a group, and a brute-force correlation over failed logins.
pub const DETECTION_RULES: &str = r#"title: Break-glass access
id: break-glass
level: high
detection:
  sel:
    reason: break_glass
  condition: sel
---
title: Failed login
id: failed-login
level: low
detection:
  sel:
    category: auth
    action: login
    outcome: failure
  condition: sel
---
title: Repeated failed logins
id: brute-force
level: high
correlation:
  type: event_count
  rules:
    - failed-login
  group-by:
    - actor.user
  timespan: 10m
  condition:
    gte: 5
"#;

/// Writes `pack` as `folder/pack.yml` (creating the folder); returns `folder`.
pub fn rules_folder(folder: &Path, pack: &str) -> PathBuf {
    std::fs::create_dir_all(folder).unwrap();
    std::fs::write(folder.join("pack.yml"), pack).unwrap();
    folder.to_path_buf()
}

/// `serve_config` over `dir/data` with the rules in `rules` (reloaded every
/// second, a group's alerts suppressed for an hour) and further `sections`.
pub fn detection_config(
    dir: &Path,
    k: &Keys,
    rules: &Path,
    lateness: &str,
    sections: &str,
) -> String {
    serve_config(
        &dir.join("data"),
        k,
        &format!(
            "[rules]\ndir = {:?}\nreload_seconds = 1\nallowed_lateness = {lateness:?}\nsuppression = \"1h\"\n{sections}",
            rules.to_str().unwrap()
        ),
    )
}

/// An event at the current time (so idle time moves the watermark as it
/// would for a live source): a failed login of `user`, with `fields` added
/// or replacing the defaults.
pub fn live_event(id: &str, user: &str, fields: serde_json::Value) -> serde_json::Value {
    let mut e = serde_json::json!({
        "id": id,
        "time": sealtrail::event::Timestamp::now().to_string(),
        "category": "auth", "action": "login", "outcome": "failure",
        "actor": {"user": user, "ip": "10.0.0.9"},
        "source": {"system": "ehr"},
    });
    if let (Some(o), Some(x)) = (e.as_object_mut(), fields.as_object()) {
        o.extend(x.clone());
    }
    e
}

impl Server {
    /// Polls `ok` until it gives a value; fails after 30 s with the log.
    pub fn wait_for<T>(&self, what: &str, mut ok: impl FnMut() -> Option<T>) -> T {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(v) = ok() {
                return v;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(25)); // polling a condition
        }
    }
}

/// `GET url`, which must answer 200; the JSON body.
pub fn get_json(c: &reqwest::blocking::Client, url: &str) -> serde_json::Value {
    let r = c.get(url).send().unwrap();
    assert_eq!(r.status().as_u16(), 200, "GET {url}");
    r.json().unwrap()
}

/// `POST url` with a JSON body: the status and the JSON answer (null if none).
pub fn post_json(
    c: &reqwest::blocking::Client,
    url: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let r = c.post(url).json(body).send().unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(serde_json::Value::Null))
}

/// Posts `body` (one event or an array) to `/v1/events`, which must answer
/// 200; the JSON answer.
pub fn post_events(
    c: &reqwest::blocking::Client,
    url: &str,
    body: &serde_json::Value,
) -> serde_json::Value {
    let (status, v) = post_json(c, &format!("{url}/v1/events"), body);
    assert_eq!(status, 200, "{v}");
    v
}

/// The value of one series in `/metrics` text (name with its labels, exactly
/// as rendered), or `None` when it is not there.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// `sealtrail verify --json` finds the ledger in `data` intact.
pub fn verify_ok(data: &Path, k: &Keys) {
    let out = std::process::Command::new(bin())
        .args(["verify", "--json", "--data"])
        .arg(data)
        .arg("--vkey")
        .arg(&k.vkey)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true, "{v}");
}

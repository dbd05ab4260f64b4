//! `sealtrail serve` as a child process for the benches (ingest, search):
//! a fresh key and data folder, HTTP and syslog on free ports, started and
//! stopped with SIGTERM.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The token of the server started last (the benches run one at a time).
static TOKEN: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

/// `Authorization` header value for the server started last.
#[allow(dead_code)] // not every bench sends its own HTTP requests
pub fn bearer() -> String {
    format!("Bearer {}", TOKEN.lock().expect("token lock"))
}

pub struct Server {
    pub child: Child,
    /// The HTTP address the server reported it listens on.
    pub addr: String,
}

#[allow(clippy::zombie_processes)] // `stop` terminates and waits; a failed start aborts the bench
pub fn start(bin: &Path, dir: &Path) -> Server {
    let keys = dir.join("keys");
    let status = Command::new(bin)
        .args(["keygen", "--out"])
        .arg(&keys)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("keygen");
    assert!(status.success());
    let out = Command::new(bin)
        .args(["token", "create", "--data"])
        .arg(dir.join("data"))
        .args(["--name", "bench", "--role", "ingest,analyst,metrics"])
        .output()
        .expect("token create");
    assert!(out.status.success(), "token create failed");
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    *TOKEN.lock().expect("token lock") = token;
    let cfg = dir.join("bench.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = {:?}\n[ledger]\nkey_file = {:?}\n[syslog]\nlisten = \"127.0.0.1:0\"\nmax_connections = 64\n[http]\nlisten = \"127.0.0.1:0\"\n",
            dir.join("data"),
            keys.join("signing.key")
        ),
    )
    .expect("config");
    let log = dir.join("serve.log");
    let child = Command::new(bin)
        .args(["serve", "--config"])
        .arg(&cfg)
        .env("RUST_LOG", "warn,sealtrail::serve=info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("serve");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(addr) = text
            .lines()
            .find(|l| l.contains("sealtrail is serving"))
            .and_then(|l| l.split("http=").nth(1))
            .and_then(|a| a.split_whitespace().next())
        {
            return Server {
                child,
                addr: addr.to_owned(),
            };
        }
        assert!(Instant::now() < deadline, "server did not start: {text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn stop(mut server: Server) {
    let _ = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status();
    let _ = server.child.wait();
}

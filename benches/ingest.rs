//! Ingest benchmark: sustained events/s into the ledger with durable
//! acknowledgement over HTTP NDJSON (1,000-event batches), acknowledgement
//! latency at half that rate, server CPU and peak RSS.
//!
//! Run: `cargo bench --bench ingest` (env: SEALTRAIL_BENCH_SECONDS, default 20;
//! SEALTRAIL_BENCH_CONNECTIONS, default 8). The server is the release
//! `sealtrail serve` binary in its own process, so its CPU and memory are
//! measured apart from this load generator.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)] // test code

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
#[path = "support/serve.rs"]
mod serve;
use std::time::{Duration, Instant};

const BATCH: usize = 1000;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn event(i: u64) -> String {
    format!(
        concat!(
            r#"{{"id":"ld-{:010}","time":"2026-11-{:02}T{:02}:{:02}:11.{:03}Z","category":"access","action":"view","outcome":"success","#,
            r#""actor":{{"user":"u{:04}","role":"clinician","ip":"10.20.1.{}"}},"#,
            r#""patient":{{"id":"MRN-{:07}"}},"source":{{"system":"ehr"}}}}"#
        ),
        i,
        1 + i % 28,
        i % 24,
        i % 60,
        i % 1000,
        i % 97,
        i % 250,
        i % 5003
    )
}

/// Minimal HTTP/1.1 keep-alive client: the load generator must cost little CPU.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    bearer: String,
}

impl Conn {
    fn new(addr: &str) -> Conn {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).ok();
        Conn {
            stream,
            buf: Vec::with_capacity(4096),
            bearer: serve::bearer(),
        }
    }

    /// POSTs one body and returns the status code once the response is read.
    fn post(&mut self, host: &str, body: &[u8]) -> u16 {
        let head = format!(
            "POST /v1/events HTTP/1.1\r\nHost: {host}\r\nAuthorization: {}\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n",
            self.bearer,
            body.len()
        );
        self.stream.write_all(head.as_bytes()).expect("write");
        self.stream.write_all(body).expect("write body");
        self.buf.clear();
        let mut chunk = [0u8; 4096];
        loop {
            let n = self.stream.read(&mut chunk).expect("read");
            assert!(n > 0, "server closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while self.buf.len() < end + 4 + len {
                    let n = self.stream.read(&mut chunk).expect("read body");
                    assert!(n > 0);
                    self.buf.extend_from_slice(&chunk[..n]);
                }
                return head[9..12].parse().unwrap_or(0);
            }
        }
    }
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

/// (utime + stime in seconds, peak RSS in MiB) of a process.
fn proc_usage(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = 100.0; // CLK_TCK on Linux
    let cpu = fields
        .get(11)
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    (cpu / ticks, hwm / 1024)
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// Runs `connections` senders for `seconds`; `rate` (events/s, 0 = as fast as
/// possible) paces them open-loop. Returns (events acked, elapsed, latencies ms).
fn load(
    addr: &str,
    bodies: &Arc<Vec<Vec<u8>>>,
    connections: usize,
    seconds: u64,
    rate: u64,
) -> (u64, f64, Vec<f64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let lat = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let threads: Vec<_> = (0..connections)
        .map(|t| {
            let (stop, acked, lat, bodies, addr) = (
                stop.clone(),
                acked.clone(),
                lat.clone(),
                bodies.clone(),
                addr.to_owned(),
            );
            std::thread::spawn(move || {
                let mut conn = Conn::new(&addr);
                let mut mine = Vec::new();
                let interval = if rate == 0 {
                    Duration::ZERO
                } else {
                    Duration::from_secs_f64(BATCH as f64 * connections as f64 / rate as f64)
                };
                let mut next = Instant::now() + interval.mul_f64(t as f64 / connections as f64);
                let mut k = t;
                while !stop.load(Ordering::Relaxed) {
                    if rate > 0 {
                        let now = Instant::now();
                        if next > now {
                            std::thread::sleep(next - now);
                        }
                        next += interval;
                    }
                    let body = &bodies[k % bodies.len()];
                    k += connections;
                    let sent = Instant::now();
                    let status = conn.post(&addr, body);
                    if status == 200 {
                        mine.push(sent.elapsed().as_secs_f64() * 1e3);
                        acked.fetch_add(BATCH as u64, Ordering::Relaxed);
                    } else if status == 503 {
                        std::thread::sleep(Duration::from_millis(5));
                    } else {
                        panic!("status {status}");
                    }
                }
                lat.lock().map(|mut l| l.extend(mine)).ok();
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("sender");
    }
    let elapsed = start.elapsed().as_secs_f64();
    let lat = std::mem::take(&mut *lat.lock().expect("lat"));
    (acked.load(Ordering::Relaxed), elapsed, lat)
}

fn main() {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let seconds = if smoke {
        2
    } else {
        env_u64("SEALTRAIL_BENCH_SECONDS", 20)
    };
    let connections = env_u64("SEALTRAIL_BENCH_CONNECTIONS", 8) as usize;
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_sealtrail"));
    // Absolute: rsyslog's configuration needs absolute paths.
    let root = std::env::current_dir().expect("cwd").join(if smoke {
        "target/bench-ingest-smoke"
    } else {
        "target/bench-ingest"
    });
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).expect("dir");

    // Distinct ids in every body (ids are deduplicated), built before timing.
    let n_bodies = if smoke { 64 } else { 4096 };
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..n_bodies as u64)
            .map(|b| {
                (0..BATCH as u64)
                    .map(|i| event(b * BATCH as u64 + i) + "\n")
                    .collect::<String>()
                    .into_bytes()
            })
            .collect(),
    );
    let avg = bodies[0].len() as f64 / BATCH as f64;
    println!(
        "machine: {} cores; NDJSON events of {avg:.0} bytes, {BATCH} per request, {connections} connections",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // 1. Saturation: as fast as the server acknowledges durably.
    let dir = root.join("max");
    std::fs::create_dir_all(&dir).expect("dir");
    let server = serve::start(&bin, &dir);
    let pid = server.child.id();
    let (cpu0, _) = proc_usage(pid);
    let (events, elapsed, mut lat) = load(&server.addr, &bodies, connections, seconds, 0);
    let (cpu1, rss) = proc_usage(pid);
    let max_rate = events as f64 / elapsed;
    println!(
        "http ndjson max: {max_rate:.0} events/s durable ({events} events in {elapsed:.1} s); ack p50 {:.1} ms p99 {:.1} ms; server cpu {:.2} cores; server peak rss {rss} MiB",
        percentile(&mut lat, 0.5),
        percentile(&mut lat, 0.99),
        (cpu1 - cpu0) / elapsed
    );
    serve::stop(server);

    // 2. Paced runs: acknowledgement latency at half the measured maximum and
    //    at 75,000 events/s (half the 150,000 events/s target).
    for rate in [(max_rate / 2.0) as u64, 75_000] {
        let dir = root.join(format!("paced-{rate}"));
        std::fs::create_dir_all(&dir).expect("dir");
        let server = serve::start(&bin, &dir);
        let pid = server.child.id();
        let (cpu0, _) = proc_usage(pid);
        let (events, elapsed, mut lat) =
            load(&server.addr, &bodies, connections, seconds, rate.max(1000));
        let (cpu1, rss) = proc_usage(pid);
        println!(
            "http ndjson paced at {rate} events/s: {:.0} events/s achieved; ack p50 {:.1} ms p99 {:.1} ms; server cpu {:.2} cores; server peak rss {rss} MiB",
            events as f64 / elapsed,
            percentile(&mut lat, 0.5),
            percentile(&mut lat, 0.99),
            (cpu1 - cpu0) / elapsed
        );
        serve::stop(server);
    }

    // 3. Syslog over TCP: sealtrail (durable, sealed) beside rsyslog writing a
    //    plain file (no fsync, no integrity), the same bytes to both.
    let lines = if smoke {
        20_000
    } else {
        env_u64("SEALTRAIL_BENCH_SYSLOG_LINES", 2_000_000)
    };
    let payload: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..4u64)
            .map(|c| {
                (0..lines / 4)
                    .map(|i| {
                        format!(
                            "<86>1 2026-11-27T14:03:11.123Z app-01 ehr - - - {}\n",
                            event(c * lines + i)
                        )
                    })
                    .collect::<String>()
                    .into_bytes()
            })
            .collect(),
    );
    let sent = (lines / 4) * 4;
    let dir = root.join("syslog");
    std::fs::create_dir_all(&dir).expect("dir");
    let server = serve::start(&bin, &dir);
    let metrics_url = server.addr.clone();
    let syslog_addr = syslog_addr(&dir);
    let pid = server.child.id();
    let (cpu0, _) = proc_usage(pid);
    let start = Instant::now();
    send_tcp(&syslog_addr, &payload);
    wait_until(Duration::from_secs(600), || {
        accepted(&metrics_url, "syslog_tcp") >= sent
    });
    let ours = sent as f64 / start.elapsed().as_secs_f64();
    let (cpu1, rss) = proc_usage(pid);
    println!(
        "syslog tcp (sealtrail, durable + sealed): {ours:.0} events/s ({sent} lines); server cpu {:.2} cores; peak rss {rss} MiB",
        (cpu1 - cpu0) / (sent as f64 / ours)
    );
    serve::stop(server);
    match rsyslog_rate(&dir, &payload, sent) {
        Some(theirs) => println!(
            "syslog tcp (rsyslog 8 to a plain file, same lines): {theirs:.0} messages/s; sealtrail/rsyslog = {:.2} (syslog), {:.2} (http ndjson)",
            ours / theirs,
            max_rate / theirs
        ),
        None => println!("rsyslog not installed (apt-get install rsyslog): no comparison"),
    }
    let _ = std::fs::remove_dir_all(&root);
}

/// The syslog TCP address from the server's log line.
fn syslog_addr(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default();
    text.lines()
        .find(|l| l.contains("sealtrail is serving"))
        .and_then(|l| l.split("syslog_tcp=").nth(1))
        .and_then(|a| a.split_whitespace().next())
        .map(|a| {
            a.trim_start_matches("Some(")
                .trim_end_matches(')')
                .to_owned()
        })
        .expect("syslog tcp address in the log")
}

fn send_tcp(addr: &str, payload: &Arc<Vec<Vec<u8>>>) {
    let threads: Vec<_> = (0..payload.len())
        .map(|c| {
            let (addr, payload) = (addr.to_owned(), payload.clone());
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(&addr).expect("connect syslog");
                for chunk in payload[c].chunks(256 << 10) {
                    s.write_all(chunk).expect("send");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("sender");
    }
}

fn accepted(http: &str, source: &str) -> u64 {
    let Ok(mut s) = TcpStream::connect(http) else {
        return 0;
    };
    let _ = s.write_all(
        format!(
            "GET /metrics HTTP/1.1\r\nHost: {http}\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
            serve::bearer()
        )
        .as_bytes(),
    );
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let key = format!("sealtrail_events_accepted_total{{source=\"{source}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Messages/s of rsyslogd receiving `payload` over TCP into a file, or `None`
/// without rsyslog.
fn rsyslog_rate(dir: &Path, payload: &Arc<Vec<Vec<u8>>>, sent: u64) -> Option<f64> {
    let rsyslogd = ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]
        .into_iter()
        .find(|p| Path::new(p).exists())?;
    let port = TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let work = dir.join("rsyslog");
    std::fs::create_dir_all(&work).ok()?;
    let out = work.join("out.log");
    let conf = work.join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            "global(workDirectory=\"{w}\")\nmodule(load=\"imtcp\")\ninput(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\")\n*.* action(type=\"omfile\" file=\"{o}\")\n",
            w = work.display(),
            o = out.display()
        ),
    )
    .ok()?;
    let mut child = Command::new(rsyslogd)
        .args(["-n", "-f"])
        .arg(&conf)
        .arg("-i")
        .arg(work.join("pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    wait_until(Duration::from_secs(30), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let start = Instant::now();
    send_tcp(&format!("127.0.0.1:{port}"), payload);
    wait_until(Duration::from_secs(600), || count_lines(&out) >= sent);
    let rate = sent as f64 / start.elapsed().as_secs_f64();
    let _ = child.kill();
    let _ = child.wait();
    Some(rate)
}

fn count_lines(path: &Path) -> u64 {
    std::fs::read(path)
        .map(|b| b.iter().filter(|c| **c == b'\n').count() as u64)
        .unwrap_or(0)
}

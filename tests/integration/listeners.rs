//! The network listeners under attack and in operation, over real sockets
//! against a real `sealtrail serve`: HTTPS (versions, suites, HSTS), mutual
//! TLS, certificate reload, security headers, slowloris and connection
//! floods on HTTP, idle-connection lockout and client certificates on syslog.

use crate::util::*;
use reqwest::blocking::Client;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A test certificate authority.
struct Ca {
    cert_pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let cert = p.self_signed(&key).unwrap();
        Ca {
            cert_pem: cert.pem(),
            issuer: rcgen::Issuer::new(p, key),
        }
    }

    /// A certificate with `cn` for `names`: (cert PEM, key PEM, cert DER).
    fn issue(&self, cn: &str, names: &[&str], client: bool) -> (String, String, Vec<u8>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut p = rcgen::CertificateParams::new(names).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        p.extended_key_usages = vec![if client {
            rcgen::ExtendedKeyUsagePurpose::ClientAuth
        } else {
            rcgen::ExtendedKeyUsagePurpose::ServerAuth
        }];
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }
}

/// Server certificate files for 127.0.0.1 and localhost, and the CA's PEM.
struct Pki {
    ca: Ca,
    ca_file: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    server_der: Vec<u8>,
}

fn pki(dir: &Path) -> Pki {
    let ca = Ca::new("test practice ca");
    let tls = dir.join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    let (cert_pem, key_pem, server_der) = ca.issue("sealtrail", &["127.0.0.1", "localhost"], false);
    let (ca_file, cert, key) = (
        tls.join("ca.pem"),
        tls.join("cert.pem"),
        tls.join("key.pem"),
    );
    std::fs::write(&ca_file, &ca.cert_pem).unwrap();
    std::fs::write(&cert, cert_pem).unwrap();
    std::fs::write(&key, key_pem).unwrap();
    Pki {
        ca,
        ca_file,
        cert,
        key,
        server_der,
    }
}

/// `serve_config` plus keys of `[http]` (the last section it writes).
fn config_with_http(data: &Path, k: &Keys, http: &str) -> String {
    serve_config(data, k, "") + http
}

fn https_config(data: &Path, k: &Keys, p: &Pki, extra: &str) -> String {
    config_with_http(
        data,
        k,
        &format!(
            "tls_cert = {:?}\ntls_key = {:?}\n{extra}",
            p.cert.to_str().unwrap(),
            p.key.to_str().unwrap()
        ),
    )
}

fn https_url(server: &Server) -> String {
    server.http.replacen("http://", "https://", 1)
}

fn hostport(server: &Server) -> String {
    server.http.trim_start_matches("http://").to_owned()
}

/// A client trusting `ca`, presenting `identity` (cert + key PEM) if given.
fn tls_client(ca: &str, identity: Option<(&str, &str)>) -> Client {
    tls_client_with(ca, identity, None)
}

/// As `tls_client`, sending the API `token` with every request.
fn tls_client_with(ca: &str, identity: Option<(&str, &str)>, token: Option<&str>) -> Client {
    let mut b = Client::builder();
    if let Some(t) = token {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {t}").parse().unwrap(),
        );
        b = b.default_headers(h);
    }
    let mut b = b
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
        .pool_max_idle_per_host(0)
        .tls_info(true)
        .timeout(Duration::from_secs(20));
    if let Some((cert, key)) = identity {
        b = b.identity(reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap());
    }
    b.build().unwrap()
}

/// `openssl s_client` against `addr` with `args`: (exit ok, stdout + stderr).
fn s_client(addr: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", addr])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("openssl (installed by .ci/run) did not start: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

const SECURITY_HEADERS: [(&str, &str); 4] = [
    (
        "content-security-policy",
        "default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    ),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("x-content-type-options", "nosniff"),
];

fn assert_security_headers(r: &reqwest::blocking::Response) {
    for (name, value) in SECURITY_HEADERS {
        assert_eq!(
            r.headers().get(name).and_then(|v| v.to_str().ok()),
            Some(value),
            "{name} on {}",
            r.url()
        );
    }
}

#[test]
fn https_speaks_tls13_and_modern_tls12_only_with_hsts_and_security_headers() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let p = pki(dir.path());
    let server = Server::start(
        dir.path(),
        &https_config(&dir.path().join("data"), &k, &p, ""),
    );
    let addr = hostport(&server);
    let ca = p.ca_file.to_str().unwrap();

    let (ok, out) = s_client(&addr, &["-tls1_3", "-CAfile", ca, "-alpn", "http/1.1"]);
    assert!(ok && out.contains("TLSv1.3"), "{out}");
    assert!(out.contains("ALPN protocol: http/1.1"), "{out}");
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    // Without a version cap the client offers both: 1.3 is chosen.
    let (ok, out) = s_client(&addr, &["-CAfile", ca]);
    assert!(ok && out.contains("TLSv1.3"), "{out}");
    let (ok, out) = s_client(&addr, &["-tls1_2", "-CAfile", ca]);
    assert!(ok && out.contains("TLSv1.2, Cipher is ECDHE-"), "{out}");
    assert!(out.contains("GCM") || out.contains("CHACHA20"), "{out}");
    // TLS 1.1 (the client's own floor lowered so it really offers it) is
    // refused: the server answers the hello with an alert.
    let (ok, out) = s_client(
        &addr,
        &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0", "-CAfile", ca],
    );
    assert!(!ok, "{out}");
    assert!(out.contains("SSL alert number"), "{out}");
    assert!(out.contains("Cipher is (NONE)"), "{out}");
    // CBC and RSA key exchange suites are not offered.
    for suite in ["AES128-SHA", "ECDHE-RSA-AES128-SHA", "AES128-GCM-SHA256"] {
        let (ok, out) = s_client(&addr, &["-tls1_2", "-cipher", suite, "-CAfile", ca]);
        assert!(!ok, "{suite}: {out}");
    }

    let c = tls_client_with(&p.ca.cert_pem, None, Some(&server.token));
    let url = https_url(&server);
    for path in ["/healthz", "/v1/alerts"] {
        let r = c.get(format!("{url}{path}")).send().unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
        assert_eq!(
            r.headers()
                .get("strict-transport-security")
                .and_then(|v| v.to_str().ok()),
            Some("max-age=31536000"),
            "{path}"
        );
        assert_security_headers(&r);
    }
    // An ingest request over HTTPS is stored.
    let r = c
        .post(format!("{url}/v1/events"))
        .header("content-type", "application/json")
        .body(event_json(1))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers().contains_key("strict-transport-security"));
    // Plain HTTP to the HTTPS port gets no answer.
    assert!(
        Client::new()
            .get(format!("{}/healthz", server.http))
            .send()
            .is_err()
    );
}

#[test]
fn plain_http_responses_carry_the_security_headers_but_no_hsts() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let server = Server::start(dir.path(), &serve_config(&dir.path().join("data"), &k, ""));
    let c = server.client();
    for path in ["/healthz", "/v1/alerts", "/v1/search?q=*"] {
        let r = c.get(format!("{}{path}", server.http)).send().unwrap();
        assert_security_headers(&r);
        assert!(!r.headers().contains_key("strict-transport-security"));
    }
    // A 404 too, and the gate's refusals.
    let r = c.get(format!("{}/nowhere", server.http)).send().unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_security_headers(&r);
    let r = Client::new()
        .get(format!("{}/v1/search?q=*", server.http))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_security_headers(&r);
}

#[test]
fn mutual_tls_ingest_client_is_stored_and_clients_without_certificates_still_connect() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let p = pki(dir.path());
    let data = dir.path().join("data");
    let extra = format!("client_ca = {:?}\n", p.ca_file.to_str().unwrap());
    let server = Server::start(dir.path(), &https_config(&data, &k, &p, &extra));
    let url = https_url(&server);

    let (cert, key, _) =
        p.ca.issue("ehr-relay-01", &["ehr-relay-01.practice.example"], true);
    // The certificate alone is the sender's credential: an ingest principal.
    let c = tls_client(&p.ca.cert_pem, Some((&cert, &key)));
    let r = c
        .post(format!("{url}/v1/events"))
        .header("content-type", "application/json")
        .body(event_json(7))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // ... and nothing more: it may not search.
    let r = c.get(format!("{url}/v1/search?q=*")).send().unwrap();
    assert_eq!(r.status().as_u16(), 403);

    // A bearer-token analyst has no certificate: still connects; without
    // a certificate or a token nothing is taken.
    let anon = tls_client(&p.ca.cert_pem, None);
    assert_eq!(
        anon.get(format!("{url}/healthz"))
            .send()
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    let r = anon
        .post(format!("{url}/v1/events"))
        .header("content-type", "application/json")
        .body(event_json(8))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    // A certificate from another CA is refused at the TLS layer.
    let other = Ca::new("someone else");
    let (cert, key, _) = other.issue("intruder", &["intruder.example"], true);
    let bad = tls_client(&p.ca.cert_pem, Some((&cert, &key)));
    assert!(bad.get(format!("{url}/healthz")).send().is_err());

    assert_eq!(server.terminate(), Some(0));
    let entries = stored_entries(&data);
    assert!(
        entries.iter().any(|e| e["event"]["id"] == "evt-00000007"
            && e["via"]["kind"] == "http"
            && e["via"]["principal"] == "cert:ehr-relay-01"),
        "{entries:#?}"
    );
    assert!(!entries.iter().any(|e| e["event"]["id"] == "evt-00000008"));
}

fn peer_cert(c: &Client, url: &str) -> Option<Vec<u8>> {
    let r = c.get(format!("{url}/healthz")).send().ok()?;
    r.extensions()
        .get::<reqwest::tls::TlsInfo>()?
        .peer_certificate()
        .map(<[u8]>::to_vec)
}

#[test]
fn a_replaced_certificate_is_served_to_new_connections_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let p = pki(dir.path());
    // The HTTPS and the syslog TLS listener share the files.
    let config = https_config(&dir.path().join("data"), &k, &p, "").replacen(
        "[syslog]\n",
        &format!(
            "[syslog]\ntls_listen = \"127.0.0.1:0\"\ntls_cert = {:?}\ntls_key = {:?}\n",
            p.cert.to_str().unwrap(),
            p.key.to_str().unwrap()
        ),
        1,
    );
    let server = Server::start(dir.path(), &config);
    let url = https_url(&server);
    let syslog = syslog_addr(&server, "syslog_tls").to_string();
    let syslog_subject = || {
        let (_, out) = s_client(&syslog, &["-CAfile", p.ca_file.to_str().unwrap()]);
        out.lines()
            .find(|l| l.starts_with("subject="))
            .map(str::to_owned)
            .unwrap_or_default()
    };
    assert!(
        syslog_subject().ends_with("sealtrail"),
        "{}",
        syslog_subject()
    );
    let c = tls_client(&p.ca.cert_pem, None);
    assert_eq!(peer_cert(&c, &url), Some(p.server_der.clone()));

    // A broken file keeps the running certificate.
    std::fs::write(&p.cert, "-----BEGIN CERTIFICATE-----\nbroken\n").unwrap();
    server.wait_for("the reload error", || {
        server
            .log_text()
            .contains("keeping the previous certificate")
            .then_some(())
    });
    assert_eq!(peer_cert(&c, &url), Some(p.server_der.clone()));

    let (cert, key, der) =
        p.ca.issue("sealtrail-renewed", &["127.0.0.1", "localhost"], false);
    std::fs::write(&p.key, key).unwrap();
    std::fs::write(&p.cert, cert).unwrap();
    server.wait_for("the renewed certificate", || {
        (peer_cert(&c, &url).as_ref() == Some(&der)).then_some(())
    });
    server.wait_for("the renewed certificate on syslog", || {
        syslog_subject()
            .ends_with("sealtrail-renewed")
            .then_some(())
    });
    assert!(server.log_text().contains("tls certificate reloaded"));
}

/// Reads until the server closes; the time it took, or `None` if it did not
/// within `limit`.
fn closed_within(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

fn slow_config(data: &Path, k: &Keys) -> String {
    config_with_http(
        data,
        k,
        "header_read_timeout = \"1s\"\nbody_timeout = \"2s\"\nidle_timeout = \"2s\"\n",
    )
}

#[test]
fn slowloris_headers_stalled_bodies_and_idle_keep_alive_are_cut() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let data = dir.path().join("data");
    let server = Server::start(dir.path(), &slow_config(&data, &k));
    let addr = hostport(&server);

    // Headers at a few bytes a second: closed at the header timeout.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(250)))
        .unwrap();
    let request =
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let start = Instant::now();
    let mut closed = false;
    for b in request {
        if s.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 256];
        match s.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    assert!(closed, "a dripping request was never cut");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );

    // A body that stops half-way: the connection is cut at the body timeout.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(
        format!(
            "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n[{{\"time\":",
            server.token
        )
        .as_bytes(),
    )
    .unwrap();
    let took = closed_within(&mut s, Duration::from_secs(8)).expect("stalled body not cut");
    assert!(took >= Duration::from_millis(1500), "{took:?}");

    // An idle keep-alive connection is closed after the idle timeout.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    while !got.ends_with(b"ok\n") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed before answering");
        got.extend_from_slice(&buf[..n]);
    }
    let took = closed_within(&mut s, Duration::from_secs(8)).expect("idle connection not closed");
    assert!(took >= Duration::from_millis(500), "{took:?}");

    // The service still stores events.
    let c = server.client();
    post_events(
        &c,
        &server.http,
        &serde_json::from_str(&event_json(3)).unwrap(),
    );
}

#[test]
fn a_connection_flood_from_one_address_is_refused_and_ingest_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let data = dir.path().join("data");
    let server = Server::start(
        dir.path(),
        &config_with_http(&data, &k, "max_connections_per_ip = 8\n"),
    );
    let addr = hostport(&server);
    let mut flood: Vec<Option<TcpStream>> = (0..40)
        .map(|_| Some(TcpStream::connect(&addr).unwrap()))
        .collect();
    // Refused connections are closed at once; 8 stay open.
    let mut refused = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while refused < 32 && Instant::now() < deadline {
        for slot in flood.iter_mut() {
            let Some(s) = slot else { continue };
            if closed_within(s, Duration::from_millis(50)).is_some() {
                *slot = None;
                refused += 1;
            }
        }
    }
    assert_eq!(refused, 32);
    // A legitimate request from the same address is refused while it lasts.
    assert!(
        Client::new()
            .get(format!("{}/healthz", server.http))
            .send()
            .is_err()
    );
    drop(flood);
    let c = server.client();
    server.wait_for("ingest after the flood", || {
        let r = c
            .post(format!("{}/v1/events", server.http))
            .header("content-type", "application/json")
            .body(event_json(9))
            .send()
            .ok()?;
        (r.status().as_u16() == 200).then_some(())
    });
    let metrics = c
        .get(format!("{}/metrics", server.http))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let n = metric_value(
        &metrics,
        "sealtrail_http_connections_refused_total{reason=\"per_ip\"}",
    )
    .unwrap();
    assert!(n >= 33.0, "{n}");
    let lines = server
        .log_text()
        .lines()
        .filter(|l| l.contains("connections refused"))
        .count();
    assert!((1..=2).contains(&lines), "{lines} refusal lines");
}

/// The syslog address the service logged for `transport` (`syslog_tcp`, `syslog_tls`).
fn syslog_addr(server: &Server, transport: &str) -> SocketAddr {
    let log = server.log_text();
    let key = format!("{transport}=Some(");
    let at = log
        .find(&key)
        .unwrap_or_else(|| panic!("no {key} in {log}"))
        + key.len();
    log[at..at + log[at..].find(')').unwrap()].parse().unwrap()
}

fn syslog_config(data: &Path, k: &Keys, syslog: &str) -> String {
    serve_config(data, k, "").replacen(
        "[syslog]\nlisten = \"127.0.0.1:0\"\n",
        &format!("[syslog]\nlisten = \"127.0.0.1:0\"\n{syslog}"),
        1,
    )
}

fn accepted(c: &Client, server: &Server, source: &str) -> f64 {
    let text = c
        .get(format!("{}/metrics", server.http))
        .send()
        .unwrap()
        .text()
        .unwrap();
    metric_value(
        &text,
        &format!("sealtrail_events_accepted_total{{source=\"{source}\"}}"),
    )
    .unwrap_or(0.0)
}

#[test]
fn idle_syslog_connections_cannot_lock_out_a_sender() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let data = dir.path().join("data");
    let server = Server::start(
        dir.path(),
        &syslog_config(&data, &k, "max_connections = 16\n"),
    );
    let addr = syslog_addr(&server, "syslog_tcp");
    // Many more idle connections than the cap.
    let idle: Vec<TcpStream> = (0..60).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let c = server.client();
    server.wait_for("the idle connections to be accepted", || {
        let t = c
            .get(format!("{}/metrics", server.http))
            .send()
            .ok()?
            .text()
            .ok()?;
        let n = metric_value(&t, "sealtrail_syslog_connections_evicted_total")?;
        (n >= 44.0).then_some(())
    });
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"<13>1 - app-01 ehr - - - a legitimate sender gets through\n")
        .unwrap();
    server.wait_for("the legitimate message", || {
        (accepted(&c, &server, "syslog_tcp") >= 1.0).then_some(())
    });
    drop(idle);
    let log = server.log_text();
    let lines = log
        .lines()
        .filter(|l| l.contains("syslog connection"))
        .count();
    assert!(lines <= 2, "{lines} lines about syslog connections:\n{log}");
    drop(s);
    assert_eq!(server.terminate(), Some(0));
    assert!(
        stored_entries(&data)
            .iter()
            .any(|e| e["event"]["message"] == "a legitimate sender gets through")
    );
}

fn rustls_client(ca_pem: &str, identity: Option<(&str, &str)>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let b = rustls::ClientConfig::builder_with_provider(sealtrail::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match identity {
        None => b.with_no_client_auth(),
        Some((cert, key)) => {
            let certs = rustls_pemfile::certs(&mut cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = rustls_pemfile::private_key(&mut key.as_bytes())
                .unwrap()
                .unwrap();
            b.with_client_auth_cert(certs, key).unwrap()
        }
    })
}

/// Sends one octet-counted message over syslog TLS; whether the server then
/// closed the connection with an error (instead of keeping it open).
fn send_syslog_tls(addr: SocketAddr, config: Arc<rustls::ClientConfig>, msg: &str) -> bool {
    let name = rustls::pki_types::ServerName::try_from("localhost".to_owned()).unwrap();
    let conn = rustls::ClientConnection::new(config, name).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let framed = format!("{} {msg}", msg.len());
    if tls
        .write_all(framed.as_bytes())
        .and_then(|_| tls.flush())
        .is_err()
    {
        return true;
    }
    let mut buf = [0u8; 16];
    // Accepted: the server keeps listening (read times out).
    match tls.read(&mut buf) {
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        // The server sends nothing on syslog: any answer is an alert or a close.
        Ok(_n) => true,
    }
}

#[test]
fn syslog_tls_with_a_client_ca_requires_its_certificates_and_names_the_sender() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let p = pki(dir.path());
    let data = dir.path().join("data");
    let server = Server::start(
        dir.path(),
        &syslog_config(
            &data,
            &k,
            &format!(
                "tls_listen = \"127.0.0.1:0\"\ntls_cert = {:?}\ntls_key = {:?}\ntls_client_ca = {:?}\n",
                p.cert.to_str().unwrap(),
                p.key.to_str().unwrap(),
                p.ca_file.to_str().unwrap()
            ),
        ),
    );
    let addr = syslog_addr(&server, "syslog_tls");
    let (cert, key, _) =
        p.ca.issue("ehr-relay-01", &["ehr-relay-01.practice.example"], true);
    let good = rustls_client(&p.ca.cert_pem, Some((&cert, &key)));
    assert!(!send_syslog_tls(
        addr,
        good,
        "<86>1 - app-01 ehr - - - from the relay"
    ));
    let other = Ca::new("someone else");
    let (cert, key, _) = other.issue("intruder", &["intruder.example"], true);
    let bad = rustls_client(&p.ca.cert_pem, Some((&cert, &key)));
    assert!(send_syslog_tls(
        addr,
        bad,
        "<86>1 - x ehr - - - from another ca"
    ));
    let none = rustls_client(&p.ca.cert_pem, None);
    assert!(send_syslog_tls(
        addr,
        none,
        "<86>1 - x ehr - - - without a certificate"
    ));
    let c = server.client();
    server.wait_for("the relay's message", || {
        (accepted(&c, &server, "syslog_tls") >= 1.0).then_some(())
    });
    assert_eq!(server.terminate(), Some(0));
    let entries = stored_entries(&data);
    let from: Vec<_> = entries
        .iter()
        .filter(|e| e["via"]["kind"] == "syslog_tls")
        .collect();
    assert_eq!(from.len(), 1, "{entries:#?}");
    assert_eq!(from[0]["event"]["message"], "from the relay");
    assert_eq!(from[0]["via"]["principal"], "cert:ehr-relay-01");
}

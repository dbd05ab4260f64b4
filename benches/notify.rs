//! Email transport latency: from `Mailer::send` to the SMTP server's 250
//! after DATA, against a local server (tests/support/smtp_sink.py, aiosmtpd,
//! which writes each message to a file before answering).
//!
//! Variants, interleaved round by round so noise hits all alike:
//! - `Mailer::send`, plain (`starttls = "never"`): a new connection per
//!   message (what sealtrail does), with `TCP_NODELAY`;
//! - lettre's own `AsyncSmtpTransport`, plain, a new connection per message:
//!   what `Mailer` used before it connected by itself, i.e. the same
//!   exchange without `TCP_NODELAY` (the closing `.` waits for the
//!   server's delayed ACK);
//! - `Mailer::send`, STARTTLS required with a private CA (TLS handshake per
//!   message);
//! - one connection kept open (lettre's `AsyncSmtpConnection` over a
//!   `TCP_NODELAY` socket), plain and STARTTLS: what a connection pool
//!   would at best give.
//!
//! `SEALTRAIL_BENCH_MAILS` (default 200) messages per variant.
//! Run: `cargo bench --bench notify` (needs python3 with aiosmtpd).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)] // test code

#[path = "../tests/support/smtp.rs"]
mod smtp_support;

use lettre::transport::smtp::client::Tls;
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, Certificate, CertificateStore, TlsParameters,
};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use sealtrail::response::notify::{EmailMessage, Mailer, SmtpConfig, StartTls, build_message};
use smtp_support::{Pki, Sink};
use std::time::{Duration, Instant};

fn config(port: u16, starttls: StartTls, pki: &Pki) -> SmtpConfig {
    SmtpConfig {
        host: "127.0.0.1".to_owned(),
        port,
        starttls,
        from: "Sealtrail <alerts@clinic.test>".to_owned(),
        timeout: Duration::from_secs(10),
        retries: 0,
        ca_file: (starttls != StartTls::Never).then(|| pki.path("ca.pem")),
        ..SmtpConfig::default()
    }
}

fn message(i: usize) -> EmailMessage {
    EmailMessage {
        to: vec!["oncall@clinic.test".to_owned()],
        subject: format!("[high] Repeated failed logins: u{i:04}"),
        text: format!(
            "Incident inc-{i}: 12 failed logins for u{i:04} in 5 minutes.\n\
             Acknowledge: https://sealtrail.clinic.test/ack/0123456789abcdef\n"
        ),
        html: None,
    }
}

/// A connection kept open, with `TCP_NODELAY` like `Mailer`'s.
async fn connect(port: u16, tls: Option<&TlsParameters>) -> AsyncSmtpConnection {
    let hello = ClientId::default();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let mut conn = AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &hello)
        .await
        .expect("connect");
    if let Some(tls) = tls {
        conn.starttls(tls.clone(), &hello).await.expect("starttls");
    }
    conn
}

struct Series {
    name: &'static str,
    samples: Vec<Duration>,
}

impl Series {
    fn report(&mut self) {
        self.samples.sort();
        let n = self.samples.len();
        let at = |q: usize| self.samples[(n * q / 100).min(n - 1)];
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "| {} | {n} | {:.2} ms | {:.2} ms | {:.2} ms |",
            self.name,
            ms(at(50)),
            ms(at(99)),
            ms(self.samples[n - 1])
        );
    }
}

fn main() {
    let n: usize = std::env::var("SEALTRAIL_BENCH_MAILS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let pki = Pki::new();
    let [cert, key] = pki.server_args();
    let plain = Sink::start(&[]);
    let tls = Sink::start(&["--starttls", &cert, &key]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let plain_mailer = Mailer::new(&config(plain.port, StartTls::Never, &pki)).expect("mailer");
        let tls_mailer = Mailer::new(&config(tls.port, StartTls::Required, &pki)).expect("mailer");
        let pem = std::fs::read(pki.path("ca.pem")).expect("ca");
        let tls_params = TlsParameters::builder("127.0.0.1".to_owned())
            .certificate_store(CertificateStore::None)
            .add_root_certificate(Certificate::from_pem(&pem).expect("ca"))
            .build_rustls()
            .expect("tls");
        let mut plain_conn = connect(plain.port, None).await;
        let mut tls_conn = connect(tls.port, Some(&tls_params)).await;
        let from = "Sealtrail <alerts@clinic.test>".parse().expect("from");

        let lettre_transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
            .port(plain.port)
            .tls(Tls::None)
            .timeout(Some(Duration::from_secs(10)))
            .build();
        let mut series = [
            "Mailer::send, new connection, plain",
            "Mailer::send, new connection, STARTTLS (private CA)",
            "one open connection, plain (pool best case)",
            "one open connection, STARTTLS (pool best case)",
            "lettre AsyncSmtpTransport, new connection, plain (no TCP_NODELAY)",
        ]
        .map(|name| Series {
            name,
            samples: Vec::with_capacity(n),
        });
        let mut ignore = |_| {};
        // Five warm-up rounds, not counted.
        for round in 0..n + 5 {
            let msg = message(round);
            let mut times = [Duration::ZERO; 5];
            for (i, mailer) in [&plain_mailer, &tls_mailer].into_iter().enumerate() {
                let start = Instant::now();
                mailer.send(&msg, &mut ignore).await.expect("delivered");
                times[i] = start.elapsed();
            }
            for (i, conn) in [&mut plain_conn, &mut tls_conn].into_iter().enumerate() {
                let start = Instant::now();
                let m = build_message(&from, &msg).expect("message");
                conn.send(m.envelope(), &m.formatted())
                    .await
                    .expect("delivered");
                times[2 + i] = start.elapsed();
            }
            let m = build_message(&from, &msg).expect("message");
            let start = Instant::now();
            lettre_transport
                .send_raw(m.envelope(), &m.formatted())
                .await
                .expect("delivered");
            times[4] = start.elapsed();
            if round >= 5 {
                for (s, t) in series.iter_mut().zip(times) {
                    s.samples.push(t);
                }
            }
        }
        println!("| transport (alert mail to a local SMTP server) | messages | p50 | p99 | max |");
        println!("| --- | --- | --- | --- | --- |");
        for s in &mut series {
            s.report();
        }
    });
    assert_eq!(plain.received(), 3 * (n + 5));
    assert_eq!(tls.received(), 2 * (n + 5));
}

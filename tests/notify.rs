//! Email and webhook delivery against real servers on loopback: an SMTP
//! server process (Python aiosmtpd, `tests/support/smtp_sink.py`) and an
//! axum HTTP receiver that checks signatures. Needs `python3` with
//! `aiosmtpd` (`.ci/run` installs it).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)] // test code

use sealtrail::response::message::{AlertMessage, EventLine, Facts, tidy};
use sealtrail::response::notify::{
    Attempt, Channel, EmailMessage, Mailer, NotifyError, Outcome, RetryPolicy, SIGNATURE_HEADER,
    SmtpConfig, StartTls, TIMESTAMP_HEADER, WebhookRequest, WebhookSender, timestamp_fresh,
    verify_signature,
};
use sealtrail::response::playbook::{DEFAULT_BODY, DEFAULT_SUBJECT, Template};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::future::Future;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Every attempt a send reported, with when it was reported.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<(Instant, Attempt)>>>);

impl Log {
    fn recorder(&self) -> impl FnMut(Attempt) + Send + use<> {
        let log = Arc::clone(&self.0);
        move |a| log.lock().unwrap().push((Instant::now(), a))
    }
    fn attempts(&self) -> Vec<Attempt> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, a)| a.clone())
            .collect()
    }
    fn outcomes(&self) -> Vec<Outcome> {
        self.attempts().iter().map(|a| a.outcome).collect()
    }
    fn times(&self) -> Vec<Instant> {
        self.0.lock().unwrap().iter().map(|(t, _)| *t).collect()
    }
}

// ---------------------------------------------------------------- SMTP

#[path = "support/smtp.rs"]
mod smtp_support;
use smtp_support::{Pki, Sink};

fn smtp(port: u16, starttls: StartTls) -> SmtpConfig {
    SmtpConfig {
        host: "127.0.0.1".to_owned(),
        port,
        starttls,
        from: "Sealtrail <alerts@clinic.test>".to_owned(),
        timeout: Duration::from_secs(3),
        retries: 2,
        retry_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        // These tests count attempts; `retry_for` has its own test below.
        retry_for: Duration::ZERO,
        ..SmtpConfig::default()
    }
}

fn alert_mail(to: &[&str]) -> EmailMessage {
    EmailMessage {
        to: to.iter().map(|s| (*s).to_owned()).collect(),
        subject: "[high] Repeated failed logins: u0042".to_owned(),
        text: "12 failed logins for u0042 in 5 minutes.\nGrüße, sealtrail\n".to_owned(),
        html: None,
    }
}

fn send_mail(cfg: &SmtpConfig, msg: &EmailMessage) -> (Result<(), NotifyError>, Log) {
    let mailer = Mailer::new(cfg).unwrap();
    let log = Log::default();
    let mut rec = log.recorder();
    let r = block_on(mailer.send(msg, &mut rec));
    (r, log)
}

#[test]
fn plain_delivery_carries_the_headers_and_the_utf8_body() {
    let sink = Sink::start(&[]);
    let msg = alert_mail(&["oncall@clinic.test", "Second Level <second@clinic.test>"]);
    let (r, log) = send_mail(&smtp(sink.port, StartTls::Never), &msg);
    r.unwrap();
    let attempts = log.attempts();
    assert_eq!(attempts.len(), 1);
    let a = &attempts[0];
    assert_eq!(
        (a.channel, a.attempt, a.outcome),
        (Channel::Email, 1, Outcome::Delivered)
    );
    assert_eq!(
        a.target,
        "oncall@clinic.test, Second Level <second@clinic.test>"
    );
    assert!(a.detail.starts_with("250 "), "{}", a.detail);

    let got = sink.message(1);
    assert_eq!(got["mail_from"], "alerts@clinic.test");
    assert_eq!(
        got["rcpt_tos"],
        json!(["oncall@clinic.test", "second@clinic.test"])
    );
    assert_eq!(got["tls"], "none");
    assert_eq!(got["subject"], msg.subject);
    assert_eq!(
        got["body"]
            .as_str()
            .unwrap()
            .replace("\r\n", "\n")
            .trim_end(),
        msg.text.trim_end(),
        "{}",
        got["data"]
    );
    let headers = got["headers"].as_object().unwrap();
    for name in [
        "Date",
        "MIME-Version",
        "Message-ID",
        "From",
        "To",
        "Subject",
        "Content-Type",
    ] {
        assert!(headers.contains_key(name), "{name} missing: {headers:?}");
    }
    assert_eq!(headers["From"], "Sealtrail <alerts@clinic.test>");
    assert!(
        headers["Message-ID"]
            .as_str()
            .unwrap()
            .ends_with("@clinic.test>")
    );
    let content_type = headers["Content-Type"].as_str().unwrap().replace('"', "");
    assert_eq!(content_type.to_lowercase(), "text/plain; charset=utf-8");
}

/// A failed-login burst as the response engine describes it: six failed
/// logins of u0042 (Ann Lee, nurse) from one address.
fn brute_force_message() -> AlertMessage {
    let first = 1_796_000_000_000; // 2026-11-30 00:53:20 UTC
    let events: Vec<EventLine> = (0..5)
        .map(|i| EventLine {
            index: 40 + i,
            time_ms: first + i as i64 * 20_000,
            category: "auth".into(),
            action: "login".into(),
            outcome: "failure".into(),
            user: Some("u0042".into()),
            user_name: Some("Ann Lee".into()),
            role: Some("nurse".into()),
            patient: None,
            resource: None,
            address: Some("203.0.113.9".into()),
            system: Some("ehr".into()),
            message: None,
        })
        .collect();
    let group = [("actor.user".to_owned(), "u0042".to_owned())].into();
    AlertMessage {
        title: "Repeated failed logins".into(),
        severity: "high".into(),
        rule_id: "brute-force".into(),
        description: Some("Five or more failed logins of one account within 10 minutes.".into()),
        incident: "inc-0123".into(),
        playbook: "brute-force-page".into(),
        opened_ms: first + 120_000,
        round: "first".into(),
        level: "primary".into(),
        facts: Facts::gather(&group, &events, 6, 1, (first, first + 100_000)),
        group,
        events,
        event_indices: (40..46).collect(),
        explanations_tried: Vec::new(),
        runbook: Some("1. Call the user.\n2. Disable the account if it was not them.".into()),
        incident_link: "https://siem.clinic.test/#/incidents/inc-0123".into(),
        ack_link: "https://siem.clinic.test/v1/incidents/inc-0123/ack?token=t0k3n".into(),
        now_ms: first + 400_000,
    }
}

#[test]
fn a_brute_force_alert_email_says_what_happened_in_text_and_html() {
    let sink = Sink::start(&[]);
    let m = brute_force_message();
    let msg = EmailMessage {
        to: vec!["oncall@clinic.test".into()],
        subject: m.render(&Template::parse(DEFAULT_SUBJECT).unwrap()),
        text: tidy(&m.render(&Template::parse(DEFAULT_BODY).unwrap())),
        html: Some(m.html()),
    };
    let (r, _) = send_mail(&smtp(sink.port, StartTls::Never), &msg);
    r.unwrap();
    let got = sink.message(1);
    assert_eq!(
        got["content_type"], "multipart/alternative",
        "{}",
        got["data"]
    );
    let text = got["body"].as_str().unwrap().replace("\r\n", "\n");
    let html = got["html"].as_str().unwrap().replace("\r\n", "\n");
    for (part, want) in [
        (
            &text,
            "Five or more failed logins of one account within 10 minutes.",
        ),
        (&text, "User:      u0042 (Ann Lee, nurse)"),
        (&text, "Address:   203.0.113.9"),
        (&text, "Count:     6 events over 100 s"),
        (
            &text,
            "- 2026-11-30 00:53:20 UTC  login failure  user u0042 (Ann Lee, nurse)  from 203.0.113.9  via ehr",
        ),
        (&text, "  ... and 1 more"),
        (
            &text,
            "What to do:\n1. Call the user.\n2. Disable the account",
        ),
        (
            &text,
            "Open the incident:       https://siem.clinic.test/#/incidents/inc-0123",
        ),
        (
            &text,
            "Acknowledge (one click): https://siem.clinic.test/v1/incidents/inc-0123/ack?token=t0k3n",
        ),
        (&text, "Events:    40, 41, 42, 43, 44, 45 (ledger indices)"),
        (
            &html,
            "Five or more failed logins of one account within 10 minutes.",
        ),
        (&html, "<dt>User</dt><dd>u0042 (Ann Lee, nurse)</dd>"),
        (&html, "<dt>Address</dt><dd>203.0.113.9</dd>"),
        (&html, "<dt>Count</dt><dd>6 events over 100 s</dd>"),
        (
            &html,
            "<li>2026-11-30 00:53:20 UTC  login failure  user u0042 (Ann Lee, nurse)  from 203.0.113.9  via ehr</li>",
        ),
        (&html, "1. Call the user.\n2. Disable the account"),
        (
            &html,
            "href=\"https://siem.clinic.test/#/incidents/inc-0123\"",
        ),
        (
            &html,
            "href=\"https://siem.clinic.test/v1/incidents/inc-0123/ack?token=t0k3n\"",
        ),
        (&html, ">HIGH</p>"),
    ] {
        assert!(part.contains(want), "{want:?} missing in\n{part}");
    }
    assert!(!text.contains("<"), "{text}");
}

#[test]
fn required_starttls_with_a_private_ca_and_authentication() {
    let pki = Pki::new();
    let [cert, key] = pki.server_args();
    let sink = Sink::start(&["--starttls", &cert, &key, "--auth", "alerts:correct horse"]);
    let mut cfg = smtp(sink.port, StartTls::Required);
    cfg.ca_file = Some(pki.path("ca.pem"));
    cfg.username = "alerts".to_owned();
    cfg.password = "correct horse".to_owned();
    let (r, log) = send_mail(&cfg, &alert_mail(&["oncall@clinic.test"]));
    r.unwrap();
    assert_eq!(log.outcomes(), [Outcome::Delivered]);
    let got = sink.message(1);
    assert_eq!(got["tls"], "starttls");
    assert_eq!(got["login"], "alerts");

    // Wrong password: 535, permanent, one attempt, the password not echoed.
    cfg.password = "wrong-pass-123".to_owned();
    let (r, log) = send_mail(&cfg, &alert_mail(&["oncall@clinic.test"]));
    assert!(matches!(r, Err(NotifyError::Rejected { .. })), "{r:?}");
    let attempts = log.attempts();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].outcome, Outcome::Failed);
    assert!(attempts[0].detail.contains("535"), "{}", attempts[0].detail);
    assert!(!attempts[0].detail.contains("wrong-pass-123"));
    assert_eq!(sink.received(), 1);

    // The private CA is not in the default (Mozilla) roots: the server's
    // certificate is refused at once, not retried.
    cfg.password = "correct horse".to_owned();
    cfg.ca_file = None;
    assert_certificate_refused(&cfg);
    assert_eq!(sink.received(), 1);
}

/// Sending with `cfg` fails on the first attempt because the server's
/// certificate is not trusted (refused at once, not retried).
fn assert_certificate_refused(cfg: &SmtpConfig) {
    let (r, log) = send_mail(cfg, &alert_mail(&["oncall@clinic.test"]));
    assert!(matches!(r, Err(NotifyError::Rejected { .. })), "{r:?}");
    assert_eq!(log.outcomes(), [Outcome::Failed]);
    assert!(
        log.attempts()[0]
            .detail
            .to_lowercase()
            .contains("certificate"),
        "{:?}",
        log.attempts()
    );
}

#[test]
fn opportunistic_upgrades_when_offered_and_required_refuses_a_plain_server() {
    let pki = Pki::new();
    let [cert, key] = pki.server_args();
    let tls_sink = Sink::start(&["--starttls", &cert, &key]);
    let mut cfg = smtp(tls_sink.port, StartTls::Opportunistic);
    cfg.ca_file = Some(pki.path("ca.pem"));
    let (r, _) = send_mail(&cfg, &alert_mail(&["oncall@clinic.test"]));
    r.unwrap();
    assert_eq!(tls_sink.message(1)["tls"], "starttls");

    let plain_sink = Sink::start(&[]);
    cfg.port = plain_sink.port;
    let (r, _) = send_mail(&cfg, &alert_mail(&["oncall@clinic.test"]));
    r.unwrap();
    assert_eq!(plain_sink.message(1)["tls"], "none");

    cfg.starttls = StartTls::Required;
    let (r, log) = send_mail(&cfg, &alert_mail(&["oncall@clinic.test"]));
    assert!(matches!(r, Err(NotifyError::Rejected { .. })), "{r:?}");
    assert_eq!(log.outcomes(), [Outcome::Failed]);
    assert!(
        log.attempts()[0].detail.contains("STARTTLS"),
        "{:?}",
        log.attempts()
    );
    assert_eq!(plain_sink.received(), 1);
}

#[test]
fn implicit_tls_delivers() {
    let pki = Pki::new();
    let [cert, key] = pki.server_args();
    let sink = Sink::start(&["--implicit-tls", &cert, &key]);
    let mut cfg = smtp(sink.port, StartTls::Tls);
    cfg.ca_file = Some(pki.path("ca.pem"));
    let (r, log) = send_mail(&cfg, &alert_mail(&["oncall@clinic.test"]));
    r.unwrap();
    assert_eq!(log.outcomes(), [Outcome::Delivered]);
    assert_eq!(sink.message(1)["tls"], "implicit");

    // Without the private CA the certificate is refused at once.
    cfg.ca_file = None;
    assert_certificate_refused(&cfg);
    assert_eq!(sink.received(), 1);
}

#[test]
fn a_rejected_recipient_fails_at_once_with_the_server_text() {
    let sink = Sink::start(&["--reject", "gone@clinic.test"]);
    let (r, log) = send_mail(
        &smtp(sink.port, StartTls::Never),
        &alert_mail(&["gone@clinic.test"]),
    );
    assert!(matches!(r, Err(NotifyError::Rejected { .. })), "{r:?}");
    let attempts = log.attempts();
    assert_eq!(attempts.len(), 1, "no retry: {attempts:?}");
    assert_eq!(attempts[0].outcome, Outcome::Failed);
    assert!(attempts[0].detail.contains("550"), "{}", attempts[0].detail);
    assert!(
        attempts[0].detail.contains("recipient rejected"),
        "{}",
        attempts[0].detail
    );
    assert_eq!(sink.received(), 0);
}

#[test]
fn an_invalid_address_is_recorded_as_a_failed_attempt() {
    let cfg = smtp(9, StartTls::Never);
    let (r, log) = send_mail(&cfg, &alert_mail(&["not an address"]));
    assert!(matches!(r, Err(NotifyError::Message(_))), "{r:?}");
    let attempts = log.attempts();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].outcome, Outcome::Failed);
    assert!(attempts[0].detail.contains("not an address"));
}

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn an_unreachable_server_is_retried_with_backoff_then_given_up() {
    let cfg = smtp(closed_port(), StartTls::Never);
    let start = Instant::now();
    let (r, log) = send_mail(&cfg, &alert_mail(&["oncall@clinic.test"]));
    let elapsed = start.elapsed();
    assert!(
        matches!(r, Err(NotifyError::Exhausted { attempts: 3, .. })),
        "{r:?}"
    );
    assert_eq!(
        log.outcomes(),
        [Outcome::Retrying, Outcome::Retrying, Outcome::Failed]
    );
    let attempts = log.attempts();
    assert_eq!(
        attempts.iter().map(|a| a.attempt).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    for a in &attempts {
        assert!(a.detail.to_lowercase().contains("refused"), "{}", a.detail);
    }
    // Backoffs: 25..=50 ms after the first attempt, 50..=100 ms after the
    // second (equal jitter over 50 ms doubling); bounded overall.
    let t = log.times();
    assert!(
        t[1] - t[0] >= Duration::from_millis(25),
        "{:?}",
        t[1] - t[0]
    );
    assert!(
        t[2] - t[1] >= Duration::from_millis(50),
        "{:?}",
        t[2] - t[1]
    );
    assert!(elapsed < cfg.retry_policy().worst_case(), "{elapsed:?}");
}

/// Regression (fault campaign, issue #16: the SMTP server down for 10
/// minutes): with the counted retries used up while the server is still
/// down, delivery goes on until `retry_for`, and the message arrives once
/// it is back, exactly once. It used to end as `failed` after `retries`.
#[test]
fn a_server_down_past_the_counted_retries_gets_the_message_when_it_returns() {
    let port = closed_port();
    let cfg = SmtpConfig {
        retry_for: Duration::from_secs(30),
        ..smtp(port, StartTls::Never)
    };
    assert!(cfg.retry_policy().worst_case() >= Duration::from_secs(30));
    let mailer = Mailer::new(&cfg).unwrap();
    let log = Log::default();
    let mut rec = log.recorder();
    let msg = alert_mail(&["oncall@clinic.test"]);
    let sending = std::thread::spawn(move || block_on(mailer.send(&msg, &mut rec)));
    // The server comes up only after the counted attempts (3) have failed.
    let deadline = Instant::now() + Duration::from_secs(20);
    while log.attempts().len() < 4 {
        assert!(Instant::now() < deadline, "{:?}", log.outcomes());
        std::thread::sleep(Duration::from_millis(20));
    }
    let sink = Sink::start(&["--port", &port.to_string()]);
    sending.join().unwrap().unwrap();
    let outcomes = log.outcomes();
    assert_eq!(outcomes.last(), Some(&Outcome::Delivered), "{outcomes:?}");
    assert!(outcomes.len() > 4, "{outcomes:?}");
    assert!(
        outcomes[..outcomes.len() - 1]
            .iter()
            .all(|o| *o == Outcome::Retrying),
        "{outcomes:?}"
    );
    assert_eq!(
        sink.message(1)["subject"],
        "[high] Repeated failed logins: u0042"
    );
    // The send has returned: no later attempt can add a message.
    assert_eq!(sink.received(), 1);
}

#[test]
fn a_transient_4xx_is_retried_and_then_accepted() {
    let sink = Sink::start(&["--tempfail", "1"]);
    let (r, log) = send_mail(
        &smtp(sink.port, StartTls::Never),
        &alert_mail(&["oncall@clinic.test"]),
    );
    r.unwrap();
    let attempts = log.attempts();
    assert_eq!(log.outcomes(), [Outcome::Retrying, Outcome::Delivered]);
    assert!(attempts[0].detail.contains("451"), "{}", attempts[0].detail);
    assert_eq!(sink.message(1)["rcpt_tos"], json!(["oncall@clinic.test"]));
    assert_eq!(sink.received(), 1);
}

// ---------------------------------------------------------------- webhooks

enum Answer {
    Status(u16),
    RetryAfter(u16, u64),
    Hang,
}

struct Received {
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

#[derive(Clone, Default)]
struct Receiver {
    script: Arc<Mutex<VecDeque<Answer>>>,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    /// Serves `POST /hook` on a loopback port, answering from `script` in
    /// order (200 once it is used up).
    async fn start(script: Vec<Answer>) -> (Receiver, String) {
        use axum::response::IntoResponse;
        let recv = Receiver {
            script: Arc::new(Mutex::new(script.into())),
            ..Receiver::default()
        };
        let state = recv.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let state = state.clone();
                    async move {
                        state.received.lock().unwrap().push(Received {
                            headers,
                            body: body.to_vec(),
                        });
                        let answer = state.script.lock().unwrap().pop_front();
                        let status = |c: u16| axum::http::StatusCode::from_u16(c).unwrap();
                        match answer.unwrap_or(Answer::Status(200)) {
                            Answer::Status(c) => (status(c), "receiver says hi").into_response(),
                            Answer::RetryAfter(c, s) => {
                                (status(c), [("retry-after", s.to_string())]).into_response()
                            }
                            Answer::Hang => std::future::pending().await,
                        }
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook?token=abc", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (recv, url)
    }

    fn take(&self) -> Vec<Received> {
        std::mem::take(&mut self.received.lock().unwrap())
    }
}

fn policy() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        first_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        timeout: Duration::from_millis(500),
        retry_for: Duration::ZERO,
    }
}

const SECRET: &str = "level-2-secret";

fn hook(url: &str) -> WebhookRequest {
    WebhookRequest {
        url: url.to_owned(),
        secret: Some(SECRET.to_owned()),
        body: json!({"incident": "inc-7", "title": "Repeated failed logins", "level": 2}),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The receiver's check, done without sealtrail's code as well.
fn assert_signed(r: &Received) {
    use hmac::Mac;
    let ts = r.headers[TIMESTAMP_HEADER].to_str().unwrap();
    let sig = r.headers[SIGNATURE_HEADER].to_str().unwrap();
    assert!(verify_signature(SECRET, ts, &r.body, sig));
    assert!(timestamp_fresh(ts, now(), Duration::from_secs(300)));
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{ts}.").as_bytes());
    mac.update(&r.body);
    assert_eq!(
        sig,
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    );
    assert_eq!(r.headers["content-type"], "application/json");
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["incident"], "inc-7");
}

async fn post(req: &WebhookRequest, policy: RetryPolicy) -> (Result<(), NotifyError>, Log) {
    let sender = WebhookSender::new(policy).unwrap();
    let log = Log::default();
    let mut rec = log.recorder();
    let r = sender.send(req, &mut rec).await;
    (r, log)
}

#[test]
fn webhook_500_is_retried_until_200_and_every_request_is_signed() {
    block_on(async {
        let (recv, url) = Receiver::start(vec![Answer::Status(500)]).await;
        let (r, log) = post(&hook(&url), policy()).await;
        r.unwrap();
        assert_eq!(log.outcomes(), [Outcome::Retrying, Outcome::Delivered]);
        let attempts = log.attempts();
        assert!(
            attempts[0].detail.starts_with("HTTP 500"),
            "{}",
            attempts[0].detail
        );
        assert!(attempts[0].detail.contains("receiver says hi"));
        assert!(
            attempts[1].detail.starts_with("HTTP 200"),
            "{}",
            attempts[1].detail
        );
        // The recorded target keeps no query string (tokens live there).
        assert!(attempts.iter().all(|a| a.channel == Channel::Webhook
            && a.target.ends_with("/hook")
            && !a.target.contains("token")));
        let got = recv.take();
        assert_eq!(got.len(), 2);
        got.iter().for_each(assert_signed);
        // A tampered body does not verify.
        let ts = got[0].headers[TIMESTAMP_HEADER].to_str().unwrap();
        let sig = got[0].headers[SIGNATURE_HEADER].to_str().unwrap();
        assert!(!verify_signature(
            SECRET,
            ts,
            b"{\"incident\":\"inc-8\"}",
            sig
        ));
    });
}

#[test]
fn webhook_400_is_not_retried() {
    block_on(async {
        let (recv, url) = Receiver::start(vec![Answer::Status(400)]).await;
        let (r, log) = post(&hook(&url), policy()).await;
        assert!(matches!(r, Err(NotifyError::Rejected { .. })), "{r:?}");
        assert_eq!(log.outcomes(), [Outcome::Failed]);
        assert!(log.attempts()[0].detail.starts_with("HTTP 400"));
        assert_eq!(recv.take().len(), 1);
    });
}

#[test]
fn a_hanging_webhook_times_out_and_is_retried() {
    block_on(async {
        let (recv, url) = Receiver::start(vec![Answer::Hang]).await;
        let (r, log) = post(&hook(&url), policy()).await;
        r.unwrap();
        assert_eq!(log.outcomes(), [Outcome::Retrying, Outcome::Delivered]);
        let first = &log.attempts()[0];
        assert!(first.detail.contains("timed out"), "{}", first.detail);
        assert!(first.elapsed_ms >= 500, "{}", first.elapsed_ms);
        let got = recv.take();
        assert_eq!(got.len(), 2);
        got.iter().for_each(assert_signed);
    });
}

#[test]
fn retry_after_is_honoured_up_to_the_max_backoff() {
    block_on(async {
        // The receiver asks for 30 s; the policy's ceiling is 200 ms.
        let (recv, url) = Receiver::start(vec![Answer::RetryAfter(429, 30)]).await;
        let (r, log) = post(&hook(&url), policy()).await;
        r.unwrap();
        assert_eq!(log.outcomes(), [Outcome::Retrying, Outcome::Delivered]);
        let t = log.times();
        let pause = t[1] - t[0];
        assert!(pause >= Duration::from_millis(200), "{pause:?}");
        assert!(pause < Duration::from_secs(5), "{pause:?}");
        assert_eq!(recv.take().len(), 2);
    });
}

#[test]
fn webhook_failures_give_up_after_the_last_attempt() {
    block_on(async {
        let (recv, url) = Receiver::start((0..5).map(|_| Answer::Status(503)).collect()).await;
        let (r, log) = post(&hook(&url), policy()).await;
        assert!(
            matches!(r, Err(NotifyError::Exhausted { attempts: 3, .. })),
            "{r:?}"
        );
        assert_eq!(
            log.outcomes(),
            [Outcome::Retrying, Outcome::Retrying, Outcome::Failed]
        );
        assert_eq!(recv.take().len(), 3);

        let unreachable = format!("http://127.0.0.1:{}/hook", closed_port());
        let (r, log) = post(&hook(&unreachable), policy()).await;
        assert!(matches!(r, Err(NotifyError::Exhausted { .. })), "{r:?}");
        assert_eq!(log.attempts().len(), 3);
        assert!(
            log.attempts()[0].detail.contains("connection"),
            "{:?}",
            log.attempts()
        );
    });
}

#[test]
fn unsigned_webhooks_carry_a_timestamp_but_no_signature() {
    block_on(async {
        let (recv, url) = Receiver::start(vec![]).await;
        let mut req = hook(&url);
        req.secret = None;
        post(&req, policy()).await.0.unwrap();
        let got = recv.take();
        assert!(got[0].headers.contains_key(TIMESTAMP_HEADER));
        assert!(!got[0].headers.contains_key(SIGNATURE_HEADER));

        let mut bad = hook("ftp://example.org/x");
        bad.secret = None;
        let (r, log) = post(&bad, policy()).await;
        assert!(matches!(r, Err(NotifyError::Message(_))), "{r:?}");
        assert_eq!(log.outcomes(), [Outcome::Failed]);
    });
}

#[test]
fn the_readme_python_verifier_accepts_our_signature() {
    block_on(async {
        let (recv, url) = Receiver::start(vec![]).await;
        post(&hook(&url), policy()).await.0.unwrap();
        let got = recv.take();
        let ts = got[0].headers[TIMESTAMP_HEADER]
            .to_str()
            .unwrap()
            .to_owned();
        let sig = got[0].headers[SIGNATURE_HEADER]
            .to_str()
            .unwrap()
            .to_owned();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/verify_webhook.py");
        let run = |secret: &str, body: &[u8]| {
            let mut child = Command::new("python3")
                .arg(&script)
                .args([secret, &ts, &sig])
                .stdin(Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(body).unwrap();
            child.wait().unwrap().success()
        };
        assert!(run(SECRET, &got[0].body));
        assert!(!run("other-secret", &got[0].body));
        assert!(!run(SECRET, b"{}"));
    });
}

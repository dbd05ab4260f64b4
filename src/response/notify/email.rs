//! Email over SMTP with lettre (tokio, rustls): `[smtp]` settings, message
//! building, and the sender with retries.
//!
//! Each attempt opens its own connection (EHLO, STARTTLS or implicit TLS,
//! AUTH, MAIL/RCPT/DATA, QUIT). Alerts are rare and a local relay answers
//! in milliseconds (BENCHMARKS.md "Response"), while a pooled connection
//! can go stale between alerts or be left mid-transaction by a timed-out
//! attempt; a fresh connection per attempt has neither problem.
//!
//! The TCP connection is ours, not lettre's transport's: lettre writes the
//! message and the closing `.` in two writes, and on a socket without
//! `TCP_NODELAY` the second waits for the server's delayed ACK (~40 ms on
//! Linux). `AsyncSmtpTransport` connects its own socket and offers no way
//! to set the option, so [`Mailer`] connects (with `TCP_NODELAY`), wraps
//! implicit TLS itself, and runs the protocol with lettre's
//! `AsyncSmtpConnection` (EHLO, STARTTLS, AUTH, MAIL/RCPT/DATA, QUIT).

use super::{Attempt, Channel, EmailMessage, NotifyError, RetryPolicy, Verdict, fail_early, run};
use crate::pipeline::silence::duration_text;
use lettre::Message;
use lettre::message::header::{ContentType, MIME_VERSION_1_0};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, CertificateStore, TlsParameters,
};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Response;
use serde::Deserialize;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;

/// Longest subject line kept, in characters.
const MAX_SUBJECT_CHARS: usize = 250;
/// Largest body accepted.
const MAX_TEXT_BYTES: usize = 1 << 20;
/// Most recipients of one message.
const MAX_RECIPIENTS: usize = 100;

/// How the connection to the SMTP server is secured (`[smtp] starttls`).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StartTls {
    /// STARTTLS when the server offers it, plain text otherwise.
    #[default]
    Opportunistic,
    /// STARTTLS or no delivery (submission, port 587).
    Required,
    /// TLS from the first byte (implicit TLS, port 465).
    Tls,
    /// Plain text only (a trusted local relay).
    Never,
}

/// `[smtp]`: where and how email is sent.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    /// SMTP server (name or IP address); also the name its certificate must carry.
    pub host: String,
    pub port: u16,
    pub starttls: StartTls,
    /// Authenticate (PLAIN or LOGIN) when set; needs TLS unless `host` is loopback.
    pub username: String,
    pub password: String,
    /// Sender address, `addr@example.org` or `Name <addr@example.org>`.
    pub from: String,
    /// Deadline of one attempt: connect, TLS, AUTH and the whole transaction.
    #[serde(with = "duration_text")]
    pub timeout: Duration,
    /// Attempts after the first when the failure is transient (connection
    /// refused, timeout, 4xx reply).
    pub retries: u32,
    /// Pause after the first failed attempt; it doubles (with jitter) after each.
    #[serde(with = "duration_text")]
    pub retry_backoff: Duration,
    /// Ceiling of one pause.
    #[serde(with = "duration_text")]
    pub max_backoff: Duration,
    /// Transient failures go on being retried (every `max_backoff`) after
    /// `retries` until this long after the first attempt, so a mail server
    /// that is down for a while delays alerts instead of losing them; "0s"
    /// leaves `retries` alone to bound the loop.
    #[serde(with = "duration_text")]
    pub retry_for: Duration,
    /// PEM file of the CA (or CAs) that signed the server's certificate.
    /// When set, only these are trusted; otherwise the Mozilla roots are.
    pub ca_file: Option<PathBuf>,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            host: "127.0.0.1".to_owned(),
            port: 25,
            starttls: StartTls::Opportunistic,
            username: String::new(),
            password: String::new(),
            from: "sealtrail@localhost".to_owned(),
            timeout: Duration::from_secs(10),
            retries: 3,
            retry_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            retry_for: Duration::from_secs(3600),
            ca_file: None,
        }
    }
}

impl fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("starttls", &self.starttls)
            .field("username", &self.username)
            .field(
                "password",
                &if self.password.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .field("from", &self.from)
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("retry_backoff", &self.retry_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("retry_for", &self.retry_for)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

fn invalid(key: &'static str, reason: impl Into<String>) -> NotifyError {
    NotifyError::Config {
        key,
        reason: reason.into(),
    }
}

impl SmtpConfig {
    /// Checks the settings without touching the network; reads `ca_file`.
    pub fn validate(&self) -> Result<(), NotifyError> {
        if self.host.is_empty() || self.host.chars().any(|c| c.is_whitespace() || c == '/') {
            return Err(invalid("host", "must be a host name or IP address"));
        }
        if self.port == 0 {
            return Err(invalid("port", "must be between 1 and 65535"));
        }
        self.from
            .parse::<Mailbox>()
            .map_err(|e| invalid("from", format!("`{}`: {e}", self.from)))?;
        if self.username.is_empty() && !self.password.is_empty() {
            return Err(invalid("password", "is set but username is empty"));
        }
        // A password must not cross the network in clear text: with
        // `never`, or `opportunistic` against a server (or an attacker)
        // that does not offer STARTTLS, it would.
        if !self.username.is_empty()
            && matches!(self.starttls, StartTls::Never | StartTls::Opportunistic)
            && !is_loopback(&self.host)
        {
            return Err(invalid(
                "username",
                "authentication needs starttls = \"required\" or \"tls\" (or a loopback host)",
            ));
        }
        if self.timeout < Duration::from_millis(100) || self.timeout > Duration::from_secs(300) {
            return Err(invalid("timeout", "must be between 100ms and 5m"));
        }
        if self.retries > 20 {
            return Err(invalid("retries", "must be at most 20"));
        }
        if self.retry_backoff.is_zero() || self.retry_backoff > self.max_backoff {
            return Err(invalid(
                "retry_backoff",
                "must be more than 0 and at most max_backoff",
            ));
        }
        if self.max_backoff > Duration::from_secs(3600) {
            return Err(invalid("max_backoff", "must be at most 1h"));
        }
        if self.retry_for > Duration::from_secs(7 * 86_400) {
            return Err(invalid("retry_for", "must be at most 7d"));
        }
        if let Some(ca) = &self.ca_file {
            if self.starttls == StartTls::Never {
                return Err(invalid("ca_file", "is set but starttls = \"never\""));
            }
            crate::tls::load_certs(ca)?;
        }
        Ok(())
    }

    /// The retry policy these settings describe.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            attempts: self.retries.saturating_add(1),
            first_backoff: self.retry_backoff,
            max_backoff: self.max_backoff,
            timeout: self.timeout,
            retry_for: self.retry_for,
        }
    }

    /// rustls settings for implicit TLS, trusting what lettre's
    /// `TlsParameters` trust for STARTTLS: `ca_file`, else the webpki
    /// (Mozilla) roots.
    fn implicit_tls(&self) -> Result<(TlsConnector, ServerName<'static>), NotifyError> {
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca_file {
            Some(ca) => {
                for cert in crate::tls::load_certs(ca)? {
                    roots
                        .add(cert)
                        .map_err(|e| invalid("ca_file", e.to_string()))?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("starttls", e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let name = ServerName::try_from(
            self.host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
        )
        .map_err(|e| invalid("host", format!("not a TLS server name: {e}")))?;
        Ok((TlsConnector::from(Arc::new(config)), name))
    }

    fn tls_parameters(&self) -> Result<TlsParameters, NotifyError> {
        let mut builder = TlsParameters::builder(self.host.clone());
        if let Some(ca) = &self.ca_file {
            builder = builder.certificate_store(CertificateStore::None);
            for cert in crate::tls::load_certs(ca)? {
                let cert = Certificate::from_der(cert.to_vec())
                    .map_err(|e| invalid("ca_file", e.to_string()))?;
                builder = builder.add_root_certificate(cert);
            }
        }
        builder
            .build_rustls()
            .map_err(|e| invalid("ca_file", e.to_string()))
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Builds a UTF-8 message with Date, Message-ID, From, To, Subject and
/// MIME-Version: text/plain, or multipart/alternative (text/plain, then
/// text/html) when the message has `html`. Control characters in the subject become spaces (no header
/// injection); it is cut to 250 characters.
pub fn build_message(from: &Mailbox, msg: &EmailMessage) -> Result<Message, NotifyError> {
    if msg.to.is_empty() {
        return Err(NotifyError::Message("no recipients".to_owned()));
    }
    if msg.to.len() > MAX_RECIPIENTS {
        return Err(NotifyError::Message(format!(
            "{} recipients, at most {MAX_RECIPIENTS}",
            msg.to.len()
        )));
    }
    let size = msg.text.len() + msg.html.as_ref().map_or(0, String::len);
    if size > MAX_TEXT_BYTES {
        return Err(NotifyError::Message(format!(
            "body of {size} bytes, at most {MAX_TEXT_BYTES}"
        )));
    }
    let subject: String = msg
        .subject
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_SUBJECT_CHARS)
        .collect();
    let mut builder = Message::builder()
        .from(from.clone())
        .subject(subject.trim())
        .date_now()
        .message_id(Some(message_id(from)))
        .header(MIME_VERSION_1_0);
    for to in &msg.to {
        let mailbox = to
            .parse::<Mailbox>()
            .map_err(|e| NotifyError::Message(format!("invalid recipient address `{to}`: {e}")))?;
        builder = builder.to(mailbox);
    }
    match &msg.html {
        None => builder
            .header(ContentType::TEXT_PLAIN)
            .body(msg.text.clone()),
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(
            msg.text.clone(),
            html.clone(),
        )),
    }
    .map_err(|e| NotifyError::Message(e.to_string()))
}

/// `<unix-ms.random@sender-domain>`: unique without asking the system for
/// its host name, and the same for every retry of one message.
fn message_id(from: &Mailbox) -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!(
        "<{ms}.{:016x}@{}>",
        rand::random::<u64>(),
        from.email.domain()
    )
}

/// How a connection is secured.
#[derive(Clone)]
enum Security {
    Plain,
    /// STARTTLS when offered (`required: false`) or always.
    StartTls {
        params: TlsParameters,
        required: bool,
    },
    Implicit {
        connector: TlsConnector,
        name: ServerName<'static>,
    },
}

/// Sends email through the `[smtp]` server; cheap to clone.
#[derive(Clone)]
pub struct Mailer {
    host: String,
    port: u16,
    security: Security,
    credentials: Option<Credentials>,
    hello: ClientId,
    from: Mailbox,
    policy: RetryPolicy,
    /// Scrubbed from every detail, in case a server echoes it.
    password: String,
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from.to_string())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// Validates `cfg` and prepares the transport. Reads `ca_file`: call it
    /// at start-up or from a blocking context. Nothing is connected yet.
    pub fn new(cfg: &SmtpConfig) -> Result<Mailer, NotifyError> {
        cfg.validate()?;
        let security = match cfg.starttls {
            StartTls::Never => Security::Plain,
            StartTls::Opportunistic => Security::StartTls {
                params: cfg.tls_parameters()?,
                required: false,
            },
            StartTls::Required => Security::StartTls {
                params: cfg.tls_parameters()?,
                required: true,
            },
            StartTls::Tls => {
                let (connector, name) = cfg.implicit_tls()?;
                Security::Implicit { connector, name }
            }
        };
        let from = cfg
            .from
            .parse::<Mailbox>()
            .map_err(|e| invalid("from", e.to_string()))?;
        Ok(Mailer {
            host: cfg
                .host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port: cfg.port,
            security,
            credentials: (!cfg.username.is_empty())
                .then(|| Credentials::new(cfg.username.clone(), cfg.password.clone())),
            // The machine's host name, as lettre's transport says by default.
            hello: ClientId::default(),
            from,
            policy: cfg.retry_policy(),
            password: cfg.password.clone(),
        })
    }

    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Sends `msg` with retries; `record` is called after every attempt,
    /// before any backoff. `Ok` once the server accepted the message
    /// (250 after DATA). A message that cannot be built (bad address) is
    /// recorded as one failed attempt.
    pub async fn send(
        &self,
        msg: &EmailMessage,
        record: &mut (dyn FnMut(Attempt) + Send),
    ) -> Result<(), NotifyError> {
        let target = msg.to.join(", ");
        let message = match build_message(&self.from, msg) {
            Ok(m) => m,
            Err(e) => return Err(fail_early(Channel::Email, &target, record, &e.to_string())),
        };
        let envelope = message.envelope().clone();
        let raw = message.formatted();
        run(&self.policy, Channel::Email, &target, record, || async {
            match self.transact(&envelope, &raw).await {
                Ok(reply) => {
                    let text: Vec<&str> = reply.message().collect();
                    Verdict::Delivered(format!("{} {}", reply.code(), text.join(" ")))
                }
                Err(Failure::Smtp(e)) => classify(&e, &self.password),
                Err(Failure::Io(e)) => classify_io(&e),
            }
        })
        .await
    }

    /// One attempt: connect, secure, authenticate, send, QUIT.
    async fn transact(
        &self,
        envelope: &lettre::address::Envelope,
        raw: &[u8],
    ) -> Result<Response, Failure> {
        let tcp = connect_tcp(&self.host, self.port)
            .await
            .map_err(Failure::Io)?;
        let stream: Box<dyn AsyncTokioStream> = match &self.security {
            Security::Implicit { connector, name } => Box::new(ImplicitTls(
                connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(Failure::Io)?,
            )),
            Security::Plain | Security::StartTls { .. } => Box::new(tcp),
        };
        let mut conn = AsyncSmtpConnection::connect_with_transport(stream, &self.hello).await?;
        if let Security::StartTls { params, required } = &self.security
            && (*required || conn.can_starttls())
        {
            // Errors with "STARTTLS is not supported" when required and not offered.
            conn.starttls(params.clone(), &self.hello).await?;
        }
        if let Some(c) = &self.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], c).await?;
        }
        let reply = conn.send(envelope, raw).await?;
        // QUIT and close, as lettre's transport does after each message.
        conn.abort().await;
        Ok(reply)
    }
}

/// Why an attempt failed: the SMTP exchange, or our own connect or TLS.
enum Failure {
    Smtp(SmtpError),
    Io(io::Error),
}

impl From<SmtpError> for Failure {
    fn from(e: SmtpError) -> Self {
        Failure::Smtp(e)
    }
}

/// Connects to the first address of `host` that answers, with
/// `TCP_NODELAY` set (see the module docs). The caller's timeout bounds it.
pub(crate) async fn connect_tcp(host: &str, port: u16) -> io::Result<TcpStream> {
    let mut last = None;
    for addr in tokio::net::lookup_host((host, port)).await? {
        match TcpStream::connect(addr).await {
            Ok(tcp) => {
                tcp.set_nodelay(true)?;
                return Ok(tcp);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{host} resolves to no address"),
        )
    }))
}

/// An implicit-TLS connection handed to lettre as a plain stream (lettre
/// only needs bytes in and out; it never upgrades this one).
#[derive(Debug)]
struct ImplicitTls(tokio_rustls::client::TlsStream<TcpStream>);

impl AsyncRead for ImplicitTls {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for ImplicitTls {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for ImplicitTls {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

/// Our own connect and TLS handshake: a refused certificate (a rustls
/// error inside) is permanent; refused, reset, unresolvable and timed-out
/// connections are retried.
fn classify_io(e: &io::Error) -> Verdict {
    let detail = format!("connection error: {e}");
    let tls = e
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some());
    if tls {
        Verdict::Permanent(detail)
    } else {
        Verdict::Transient {
            detail,
            retry_after: None,
        }
    }
}

/// Permanent: a 5xx reply (rejected recipient or sender, failed
/// authentication), a TLS failure (untrusted certificate, no STARTTLS when
/// required) or a client-side refusal. Everything else (connection refused,
/// reset, timeout, 4xx) may pass and is retried.
fn classify(e: &SmtpError, password: &str) -> Verdict {
    let mut detail = e.to_string();
    if !password.is_empty() {
        detail = detail.replace(password, "<redacted>");
    }
    if e.is_permanent() || e.is_tls() || e.is_client() || tls_rejected(e) {
        Verdict::Permanent(detail)
    } else {
        Verdict::Transient {
            detail,
            retry_after: None,
        }
    }
}

/// lettre reports a failed TLS handshake as a connection error; a rustls
/// error (bad certificate, no common protocol) inside it will not go away
/// by retrying.
fn tls_rejected(e: &SmtpError) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(err) = source {
        if err.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        // io::Error hides a custom inner error from `source()`.
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
        {
            return true;
        }
        source = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> SmtpConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn defaults_are_the_documented_contract() {
        let c = parse("");
        assert_eq!(c.host, "127.0.0.1");
        assert_eq!(c.port, 25);
        assert_eq!(c.starttls, StartTls::Opportunistic);
        assert_eq!(c.from, "sealtrail@localhost");
        c.validate().unwrap();
        let p = c.retry_policy();
        assert_eq!(p.attempts, 4);
        assert_eq!(p.timeout, Duration::from_secs(10));
    }

    #[test]
    fn every_starttls_mode_parses_and_builds() {
        for (text, mode) in [
            ("opportunistic", StartTls::Opportunistic),
            ("required", StartTls::Required),
            ("tls", StartTls::Tls),
            ("never", StartTls::Never),
        ] {
            let c = parse(&format!(
                "starttls = \"{text}\"\nusername = \"u\"\nhost = \"localhost\""
            ));
            assert_eq!(c.starttls, mode);
            Mailer::new(&c).unwrap();
        }
        assert!(toml::from_str::<SmtpConfig>("starttls = \"yes\"").is_err());
        assert!(toml::from_str::<SmtpConfig>("bogus = 1").is_err());
    }

    #[test]
    fn rejects_bad_settings_with_their_key() {
        let key = |text: &str| match parse(text).validate() {
            Err(NotifyError::Config { key, .. }) => key,
            other => panic!("{text}: {other:?}"),
        };
        assert_eq!(key("host = \"\""), "host");
        assert_eq!(key("port = 0"), "port");
        assert_eq!(key("from = \"not an address\""), "from");
        assert_eq!(key("password = \"p\""), "password");
        assert_eq!(
            key("host = \"mail.example.org\"\nusername = \"u\"\nstarttls = \"never\""),
            "username"
        );
        assert_eq!(
            key("host = \"mail.example.org\"\nusername = \"u\"\nstarttls = \"opportunistic\""),
            "username"
        );
        assert_eq!(key("timeout = \"10ms\""), "timeout");
        assert_eq!(key("retries = 21"), "retries");
        assert_eq!(
            key("retry_backoff = \"1m\"\nmax_backoff = \"10s\""),
            "retry_backoff"
        );
        assert_eq!(key("max_backoff = \"2h\""), "max_backoff");
        assert_eq!(key("ca_file = \"x.pem\"\nstarttls = \"never\""), "ca_file");
        assert!(matches!(
            parse("ca_file = \"/nonexistent/ca.pem\"").validate(),
            Err(NotifyError::CaFile(_))
        ));
        parse("host = \"mail.example.org\"\nusername = \"u\"\npassword = \"p\"\nstarttls = \"required\"")
            .validate()
            .unwrap();
        parse("host = \"::1\"\nusername = \"u\"\nstarttls = \"never\"")
            .validate()
            .unwrap();
    }

    /// The reason the mailer connects by itself: without TCP_NODELAY the
    /// message's closing `.` waits ~40 ms for the server's delayed ACK.
    #[tokio::test]
    async fn connections_are_made_with_tcp_nodelay() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let tcp = connect_tcp("127.0.0.1", port).await.unwrap();
        assert!(tcp.nodelay().unwrap());
        let tcp = connect_tcp("localhost", port).await.unwrap();
        assert!(tcp.nodelay().unwrap());
        drop(listener);
        let e = connect_tcp("127.0.0.1", port).await.unwrap_err();
        assert!(matches!(classify_io(&e), Verdict::Transient { .. }), "{e}");
    }

    #[test]
    fn debug_never_shows_the_password() {
        let c = parse("username = \"u\"\npassword = \"hunter2\"");
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn messages_carry_the_headers_and_refuse_bad_input() {
        let from: Mailbox = "Sealtrail <alerts@clinic.example>".parse().unwrap();
        let msg = EmailMessage {
            to: vec!["a@clinic.example".into(), "B <b@clinic.example>".into()],
            subject: "Brute force\r\nBcc: evil@example.org".into(),
            text: "Grüße\nline two\n".into(),
            html: None,
        };
        let m = build_message(&from, &msg).unwrap();
        let text = String::from_utf8(m.formatted()).unwrap();
        for header in [
            "Date: ",
            "MIME-Version: 1.0",
            "Message-ID: <",
            "From: ",
            "To: ",
            "Subject: ",
            "Content-Type: text/plain; charset=utf-8",
        ] {
            assert!(text.contains(header), "{header} missing in {text}");
        }
        assert!(text.contains("@clinic.example>\r\n"), "{text}");
        assert!(!text.contains("\r\nBcc:"), "{text}");
        assert_eq!(m.envelope().to().len(), 2);

        let bad = |to: Vec<String>, text: String| {
            build_message(
                &from,
                &EmailMessage {
                    to,
                    subject: "s".into(),
                    text,
                    html: None,
                },
            )
            .is_err()
        };
        // With html: multipart/alternative, the text first, then the HTML.
        let both = EmailMessage {
            html: Some("<p>Gr&uuml;&szlig;e</p>".into()),
            ..msg.clone()
        };
        let text = String::from_utf8(build_message(&from, &both).unwrap().formatted()).unwrap();
        assert!(
            text.contains("Content-Type: multipart/alternative"),
            "{text}"
        );
        let plain = text.find("Content-Type: text/plain").unwrap();
        let html = text.find("Content-Type: text/html").unwrap();
        assert!(plain < html, "{text}");
        // The HTML counts towards the size limit.
        let half = "x".repeat(MAX_TEXT_BYTES / 2 + 1);
        let over = EmailMessage {
            text: half.clone(),
            html: Some(half),
            ..msg.clone()
        };
        assert!(build_message(&from, &over).is_err());

        assert!(bad(vec![], "t".into()));
        assert!(bad(vec!["nobody".into()], "t".into()));
        assert!(bad(vec!["a@x.org".into(); 101], "t".into()));
        assert!(bad(vec!["a@x.org".into()], "x".repeat(MAX_TEXT_BYTES + 1)));
    }
}

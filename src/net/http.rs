//! The HTTP API's own accept loop (hyper, HTTP/1.1), so that TLS, timeouts
//! and connection limits are ours to set:
//!
//! - at most `max_connections` open, `max_connections_per_ip` per address;
//!   more are closed at once, counted in
//!   `sealtrail_http_connections_refused_total{reason}` and logged at most
//!   once a minute;
//! - TLS (optional) with a handshake deadline, the configuration re-read
//!   when its files change, an optional verified client certificate passed
//!   to handlers as [`ClientCertificate`], and HSTS on every response;
//! - request headers within `header_read_timeout`, a body within
//!   `body_timeout` of the request's start (else the body read fails and
//!   the connection closes), a connection with no traffic either way and
//!   no handler running for `idle_timeout` is closed (gracefully, then at
//!   once after `body_timeout` more);
//! - handlers get `ConnectInfo<SocketAddr>` as with `axum::serve`;
//! - on shutdown: stop accepting, let requests in flight finish, return.

use super::ListenerMetrics;
use super::limit::ConnTable;
use super::reload::{ReloadingTls, TlsFiles};
use super::{RateLog, limit::Slot};
use crate::api::ClientCertificate;
use crate::pipeline::fd_reserve;
use crate::tls::ClientAuth;
use axum::Router;
use axum::body::Bytes;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, header};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub const HSTS: &str = "max-age=31536000";

/// `[http]` connection settings, validated.
#[derive(Clone, Debug)]
pub struct ServerSettings {
    /// Certificate, key and client CA files when HTTPS is on.
    pub tls: Option<TlsFiles>,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub header_read_timeout: Duration,
    pub body_timeout: Duration,
    pub idle_timeout: Duration,
    pub tls_handshake_timeout: Duration,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            tls: None,
            max_connections: 1024,
            max_connections_per_ip: 64,
            header_read_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            tls_handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// The `[http]` keys of this module as written.
pub struct RawServer<'a> {
    pub tls_cert: &'a Option<PathBuf>,
    pub tls_key: &'a Option<PathBuf>,
    pub client_ca: &'a Option<PathBuf>,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub header_read_timeout: &'a str,
    pub body_timeout: &'a str,
    pub idle_timeout: &'a str,
    pub tls_handshake_timeout: &'a str,
}

impl RawServer<'_> {
    /// Checks the values; the error names the key.
    pub fn validate(&self) -> Result<ServerSettings, (&'static str, String)> {
        // An empty path is the same as none (`tls_cert = ""`).
        let set = |p: &Option<PathBuf>| p.clone().filter(|p| !p.as_os_str().is_empty());
        let (client_ca, tls_cert, tls_key) =
            (set(self.client_ca), set(self.tls_cert), set(self.tls_key));
        let tls = match (tls_cert, tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert,
                key,
                client: match client_ca {
                    Some(ca) => ClientAuth::Optional(ca),
                    None => ClientAuth::None,
                },
            }),
            (None, None) if client_ca.is_some() => {
                return Err(("http.client_ca", "needs tls_cert and tls_key".into()));
            }
            (None, None) => None,
            _ => return Err(("http.tls_cert", "tls_cert and tls_key go together".into())),
        };
        if !(1..=65_536).contains(&self.max_connections) {
            return Err(("http.max_connections", "must be between 1 and 65536".into()));
        }
        if self.max_connections_per_ip == 0 {
            return Err(("http.max_connections_per_ip", "must be at least 1".into()));
        }
        let d = |key: &'static str, s: &str| {
            crate::sources::syslog::parse_duration(s)
                .filter(|d| (Duration::from_millis(100)..=Duration::from_secs(3600)).contains(d))
                .ok_or_else(|| {
                    (
                        key,
                        format!("{s:?} is not a duration between 100ms and 1h (such as \"10s\")"),
                    )
                })
        };
        Ok(ServerSettings {
            tls,
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            header_read_timeout: d("http.header_read_timeout", self.header_read_timeout)?,
            body_timeout: d("http.body_timeout", self.body_timeout)?,
            idle_timeout: d("http.idle_timeout", self.idle_timeout)?,
            tls_handshake_timeout: d("http.tls_handshake_timeout", self.tls_handshake_timeout)?,
        })
    }
}

/// Loads the TLS files of `settings`, if any (blocking).
pub fn load_tls(
    settings: &ServerSettings,
) -> Result<Option<Arc<ReloadingTls>>, crate::tls::TlsError> {
    settings
        .tls
        .clone()
        .map(|f| ReloadingTls::load(f, &[b"http/1.1"]))
        .transpose()
}

struct Ctx {
    app: Router,
    settings: ServerSettings,
    tls: Option<Arc<ReloadingTls>>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
}

type Metrics = crate::pipeline::Metrics;

/// Serves `app` on `listener` until `shutdown`; returns when every
/// connection has finished.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    settings: ServerSettings,
    tls: Option<Arc<ReloadingTls>>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let tracker = TaskTracker::new();
    if let Some(t) = &tls {
        tracker.spawn(t.clone().watch("http", shutdown.clone()));
    }
    let table = ConnTable::new(settings.max_connections, settings.max_connections_per_ip);
    let refusals = RateLog::new("http connections refused over the connection caps");
    let ctx = Arc::new(Ctx {
        app,
        settings,
        tls,
        metrics,
        shutdown: shutdown.clone(),
    });
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: pause instead of spinning.
                tracing::warn!(error = %e, "http accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let slot = match table.admit(peer.ip(), false) {
            Ok(a) => a.slot,
            Err(reason) => {
                listener_metrics(&ctx.metrics)
                    .http_refused
                    .with_label_values(&[reason.label()])
                    .inc();
                refusals.note(reason.label());
                drop(stream);
                continue;
            }
        };
        // File handles are kept in reserve for the ledger (fd_reserve).
        let Some(fd_permit) = fd_reserve::acquire() else {
            listener_metrics(&ctx.metrics)
                .http_refused
                .with_label_values(&["fd_reserve"])
                .inc();
            refusals.note("fd_reserve");
            drop(stream);
            continue;
        };
        // Acknowledgements are small writes that must leave at once: without
        // TCP_NODELAY, Nagle plus the client's delayed ACK adds ~40 ms to each.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let ctx = ctx.clone();
        tracker.spawn(async move {
            connection(stream, peer, slot, ctx).await;
            drop(fd_permit);
        });
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
}

fn listener_metrics(m: &Metrics) -> &ListenerMetrics {
    &m.listeners
}

/// Counts an open connection while alive.
struct Open<'a>(&'a ListenerMetrics);

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.http_open.dec();
    }
}

async fn connection(stream: tokio::net::TcpStream, peer: SocketAddr, slot: Slot, ctx: Arc<Ctx>) {
    let lm = listener_metrics(&ctx.metrics);
    lm.http_open.inc();
    let _open = Open(lm);
    let Some(tls) = &ctx.tls else {
        return serve_connection(stream, peer, None, false, &slot, &ctx).await;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
    let r = tokio::select! {
        _ = ctx.shutdown.cancelled() => return,
        r = tokio::time::timeout(ctx.settings.tls_handshake_timeout, acceptor.accept(stream)) => r,
    };
    match r {
        Ok(Ok(s)) => {
            let cert = s
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| ClientCertificate::from_der(c.as_ref()));
            serve_connection(s, peer, cert, true, &slot, &ctx).await;
        }
        // Scanners and bad clients: not worth a log line each.
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "https handshake failed"),
        Err(_) => tracing::debug!(%peer, "https handshake timed out"),
    }
}

async fn serve_connection<I>(
    io: I,
    peer: SocketAddr,
    cert: Option<ClientCertificate>,
    https: bool,
    slot: &Slot,
    ctx: &Ctx,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let base = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let io = TokioIo::new(Tracked {
        inner: io,
        base,
        last: last.clone(),
    });
    let app = ctx.app.clone();
    let body_timeout = ctx.settings.body_timeout;
    // Requests being handled: a slow export is not an idle connection.
    let busy = Arc::new(AtomicUsize::new(0));
    let busy_in = busy.clone();
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        let app = app.clone();
        let handling = Handling::new(&busy_in);
        req.extensions_mut().insert(ConnectInfo(peer));
        if let Some(c) = &cert {
            req.extensions_mut().insert(c.clone());
        }
        let req = req.map(|b| axum::body::Body::new(DeadlineBody::new(b, body_timeout)));
        async move {
            let _handling = handling;
            let mut res = tower::ServiceExt::oneshot(app, req).await?;
            if https {
                res.headers_mut().insert(
                    header::STRICT_TRANSPORT_SECURITY,
                    HeaderValue::from_static(HSTS),
                );
            }
            Ok::<_, Infallible>(res)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(ctx.settings.header_read_timeout)
        .keep_alive(true)
        .serve_connection(io, service);
    tokio::pin!(conn);
    let idle = ctx.settings.idle_timeout;
    let mut tick = tokio::time::interval((idle / 4).max(Duration::from_millis(50)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Set once a graceful close began: past it, the connection is dropped.
    let mut close_by: Option<Instant> = None;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "http connection ended with an error");
                }
                return;
            }
            _ = ctx.shutdown.cancelled(), if close_by.is_none() => {
                conn.as_mut().graceful_shutdown();
                close_by = Some(Instant::now() + body_timeout);
            }
            _ = slot.cancel.cancelled(), if close_by.is_none() => {
                conn.as_mut().graceful_shutdown();
                close_by = Some(Instant::now());
            }
            _ = tick.tick() => {
                let quiet = base.elapsed().saturating_sub(Duration::from_millis(last.load(Ordering::Relaxed)));
                if close_by.is_none() && quiet >= idle && busy.load(Ordering::Relaxed) == 0 {
                    conn.as_mut().graceful_shutdown();
                    close_by = Some(Instant::now() + body_timeout);
                }
                if close_by.is_some_and(|t| Instant::now() >= t) {
                    tracing::debug!(%peer, "closing a stalled http connection");
                    return;
                }
            }
        }
    }
}

/// Counts a request while its handler runs.
struct Handling(Arc<AtomicUsize>);

impl Handling {
    fn new(count: &Arc<AtomicUsize>) -> Handling {
        count.fetch_add(1, Ordering::Relaxed);
        Handling(count.clone())
    }
}

impl Drop for Handling {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A stream that records when bytes last moved either way.
struct Tracked<I> {
    inner: I,
    base: Instant,
    last: Arc<AtomicU64>,
}

impl<I> Tracked<I> {
    fn touch(&self) {
        let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Tracked<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.touch();
        }
        r
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Tracked<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.touch();
        }
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A request body that fails once `body_timeout` has passed since the
/// request began, so a stalled or dripping upload cannot hold a
/// connection (and a pipeline handle) forever.
struct DeadlineBody {
    inner: Incoming,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl DeadlineBody {
    fn new(inner: Incoming, timeout: Duration) -> DeadlineBody {
        DeadlineBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the request body did not arrive in time")]
    Timeout,
    #[error(transparent)]
    Hyper(#[from] hyper::Error),
}

impl Body for DeadlineBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if let Poll::Ready(f) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(f.map(|r| r.map_err(BodyError::from)));
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(BodyError::Timeout)));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Extension;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn issue(
        issuer: &rcgen::Issuer<'_, rcgen::KeyPair>,
        cn: &str,
        client: bool,
    ) -> (rcgen::Certificate, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        p.extended_key_usages = vec![if client {
            rcgen::ExtendedKeyUsagePurpose::ClientAuth
        } else {
            rcgen::ExtendedKeyUsagePurpose::ServerAuth
        }];
        (p.signed_by(&key, issuer).unwrap(), key)
    }

    async fn who(
        cert: Option<Extension<ClientCertificate>>,
        ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ) -> String {
        format!(
            "{} from {}",
            cert.map_or("nobody".into(), |c| c.0.subject),
            peer.ip()
        )
    }

    /// A request over mutual TLS reaches the handler with the certificate's
    /// subject and the peer address; one without a certificate too.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_client_certificate_subject_reaches_the_handler() {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let (server_cert, server_key) = issue(&issuer, "sealtrail", false);
        let (client_cert, client_key) = issue(&issuer, "ehr-relay-01", true);
        let path = |n: &str| dir.path().join(n);
        std::fs::write(path("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(path("cert.pem"), server_cert.pem()).unwrap();
        std::fs::write(path("key.pem"), server_key.serialize_pem()).unwrap();
        let settings = ServerSettings {
            tls: Some(TlsFiles {
                cert: path("cert.pem"),
                key: path("key.pem"),
                client: ClientAuth::Optional(path("ca.pem")),
            }),
            ..ServerSettings::default()
        };
        let tls = load_tls(&settings).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve(
            listener,
            Router::new().route("/who", get(who)),
            settings,
            tls,
            crate::pipeline::Metrics::new(),
            shutdown.clone(),
        ));

        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca_cert.der().clone()).unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let with_cert = builder
            .clone()
            .with_client_auth_cert(
                vec![client_cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(client_key.serialize_der().into()),
            )
            .unwrap();
        let without = builder.with_no_client_auth();
        for (config, want) in [
            (with_cert, "ehr-relay-01 from 127.0.0.1"),
            (without, "nobody from 127.0.0.1"),
        ] {
            let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let mut s = connector.connect(name, tcp).await.unwrap();
            s.write_all(b"GET /who HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            let mut text = String::new();
            let _ = s.read_to_string(&mut text).await;
            assert!(text.ends_with(want), "{text}");
            assert!(
                text.contains("strict-transport-security: max-age=31536000"),
                "{text}"
            );
        }
        shutdown.cancel();
        server.await.unwrap();
    }

    /// A handler that works longer than the idle timeout is not cut; the
    /// connection is closed once idle after its answer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_handler_is_not_idle_but_a_quiet_connection_is() {
        let settings = ServerSettings {
            idle_timeout: Duration::from_millis(200),
            // Without the running-handler check the idle close would cut
            // the request at 200 + 300 ms.
            body_timeout: Duration::from_millis(300),
            ..ServerSettings::default()
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let slow = || async {
            tokio::time::sleep(Duration::from_millis(800)).await;
            "done"
        };
        let server = tokio::spawn(serve(
            listener,
            Router::new().route("/slow", get(slow)),
            settings,
            None,
            crate::pipeline::Metrics::new(),
            shutdown.clone(),
        ));
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let mut text = String::new();
        // Keep-alive: the read ends when the server closes the idle connection.
        let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut text)).await;
        assert!(text.ends_with("done"), "{text}");
        assert!(started.elapsed() < Duration::from_secs(5));
        shutdown.cancel();
        server.await.unwrap();
    }
}

//! The syslog sockets: UDP, TCP and TLS (RFC 5425).
//!
//! - UDP: one datagram is one message. After a datagram arrives, whatever
//!   else arrives within [`UDP_GATHER`] (up to [`UDP_BATCH`] datagrams) is
//!   batched with it, one batch per sender address. At most
//!   [`UDP_IN_FLIGHT`] batches wait for the ledger at once; past that the
//!   receive loop waits, and the kernel's socket buffer absorbs (or drops)
//!   what comes meanwhile, as UDP does.
//! - TCP and TLS: one task per connection, at most `max_connections` in all
//!   and `max_connections_per_ip` per address. Over the per-address cap a
//!   new connection is closed at once; at the total cap the connection idle
//!   longest is closed to make room, so idle connections cannot lock out a
//!   sender. Refusals and evictions are counted in metrics and logged at
//!   most once a minute. With `tls_client_ca`, TLS senders must present a
//!   certificate that CA signed; its subject is the events'
//!   `via.principal` (`cert:<subject>`). Framing is detected per connection (see
//!   [`super::framing`]). Each read's frames (plus any more bytes already
//!   waiting, up to [`BATCH_BYTES`]) are submitted and acknowledged by the
//!   ledger before the socket is read again: a full pipeline stops the
//!   reading, and TCP flow control slows the sender. A connection that sends
//!   nothing for `idle_timeout` is closed (`first_byte_timeout` before its
//!   first byte, or its TLS handshake), as is one whose octet counting is
//!   broken (an oversize frame is recorded and skipped instead).
//! - Shutdown: when the token is cancelled, listeners stop accepting and
//!   connections stop waiting for data; what has already arrived (up to
//!   [`BATCH_BYTES`], including a partial last line) is submitted, with
//!   [`SHUTDOWN_GRACE`] to get it stored, and the connection is closed.

use super::SyslogConfig;
use super::framing::Decoder;
use super::mapping;
use crate::event::Via;
use crate::net::RateLog;
use crate::net::limit::{ConnTable, Slot};
use crate::net::reload::{ReloadingTls, TlsFiles};
use crate::pipeline::fd_reserve;
use crate::pipeline::{IngestBatch, Item, Pipeline};
use crate::tls::{ClientAuth, TlsError};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long after a first datagram more are gathered into its batch.
pub const UDP_GATHER: Duration = Duration::from_millis(3);
/// Most datagrams in one UDP batch.
pub const UDP_BATCH: usize = 512;
/// UDP batches waiting for the ledger at once.
pub const UDP_IN_FLIGHT: usize = 4;
/// Bytes read from a connection per read call.
const READ_BUF: usize = 16 * 1024;
/// Bytes read from one connection into one batch, when they are already waiting.
pub const BATCH_BYTES: usize = 256 * 1024;
/// Time given after shutdown to store what was already read.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, Error)]
pub enum SyslogError {
    #[error("listening for syslog on {addr} ({transport}): {source}")]
    Bind {
        addr: SocketAddr,
        transport: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("loading the syslog tls certificate: {0}")]
    Tls(#[from] TlsError),
    #[error("syslog tls setup task failed: {0}")]
    Join(String),
}

/// Running syslog listeners and the addresses they bound.
pub struct SyslogListeners {
    pub udp: Option<SocketAddr>,
    pub tcp: Option<SocketAddr>,
    pub tls: Option<SocketAddr>,
    tracker: TaskTracker,
}

impl SyslogListeners {
    /// Waits until every listener and connection has finished; call after
    /// cancelling the shutdown token. Bounded by [`SHUTDOWN_GRACE`] plus the
    /// time of one read or submission.
    pub async fn wait(self) {
        self.tracker.close();
        self.tracker.wait().await;
    }
}

struct Ctx {
    pipeline: Pipeline,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    max_message_bytes: usize,
    idle_timeout: Duration,
    first_byte_timeout: Duration,
    table: Arc<ConnTable>,
    refusals: RateLog,
    evictions: RateLog,
}

/// Binds every configured listener, then starts their tasks. Nothing runs
/// if any bind fails.
pub async fn start(
    config: &SyslogConfig,
    pipeline: Pipeline,
    shutdown: CancellationToken,
) -> Result<SyslogListeners, SyslogError> {
    let bind_err = |addr, transport| {
        move |source| SyslogError::Bind {
            addr,
            transport,
            source,
        }
    };
    let plain = match config.listen {
        Some(addr) => Some(bind_pair(addr).await?),
        None => None,
    };
    let mut tls = None;
    if let Some(t) = &config.tls {
        let files = TlsFiles {
            cert: t.cert.clone(),
            key: t.key.clone(),
            client: match &t.client_ca {
                Some(ca) => ClientAuth::Required(ca.clone()),
                None => ClientAuth::None,
            },
        };
        let server = tokio::task::spawn_blocking(move || ReloadingTls::load(files, &[]))
            .await
            .map_err(|e| SyslogError::Join(e.to_string()))??;
        let listener = TcpListener::bind(t.listen)
            .await
            .map_err(bind_err(t.listen, "tls"))?;
        tls = Some((listener, server));
    }

    let tracker = TaskTracker::new();
    let ctx = Arc::new(Ctx {
        pipeline,
        shutdown,
        tracker: tracker.clone(),
        max_message_bytes: config.max_message_bytes,
        idle_timeout: config.idle_timeout,
        first_byte_timeout: config.first_byte_timeout,
        table: ConnTable::new(config.max_connections, config.max_connections_per_ip),
        refusals: RateLog::new("syslog connections refused over the per-address cap"),
        evictions: RateLog::new("idle syslog connections closed at the connection cap"),
    });
    let mut out = SyslogListeners {
        udp: None,
        tcp: None,
        tls: None,
        tracker: tracker.clone(),
    };
    let local = |s: std::io::Result<SocketAddr>| s.ok();
    if let Some((udp, tcp)) = plain {
        out.udp = local(udp.local_addr());
        out.tcp = local(tcp.local_addr());
        tracker.spawn(run_udp(udp, ctx.clone()));
        tracker.spawn(accept_loop(tcp, None, ctx.clone()));
    }
    if let Some((listener, server)) = tls {
        out.tls = local(listener.local_addr());
        tracker.spawn(server.clone().watch("syslog_tls", ctx.shutdown.clone()));
        tracker.spawn(accept_loop(listener, Some(server), ctx.clone()));
    }
    tracing::info!(udp = ?out.udp, tcp = ?out.tcp, tls = ?out.tls, "syslog listening");
    Ok(out)
}

/// Binds TCP and UDP on one address. With port 0 the UDP socket takes the
/// port TCP got, trying again with a new port if UDP's is taken.
async fn bind_pair(addr: SocketAddr) -> Result<(UdpSocket, TcpListener), SyslogError> {
    let err = |addr, transport| {
        move |source| SyslogError::Bind {
            addr,
            transport,
            source,
        }
    };
    let mut attempts = 0;
    loop {
        let tcp = TcpListener::bind(addr).await.map_err(err(addr, "tcp"))?;
        let bound = tcp.local_addr().map_err(err(addr, "tcp"))?;
        match UdpSocket::bind(bound).await {
            Ok(udp) => return Ok((udp, tcp)),
            Err(e)
                if addr.port() == 0
                    && e.kind() == std::io::ErrorKind::AddrInUse
                    && attempts < 16 =>
            {
                attempts += 1;
            }
            Err(e) => return Err(err(bound, "udp")(e)),
        }
    }
}

fn via(kind: &str, peer: IpAddr, principal: Option<&str>) -> Via {
    Via {
        kind: kind.to_owned(),
        peer: Some(peer.to_canonical().to_string()),
        principal: principal.map(str::to_owned),
    }
}

/// Submits a batch; after shutdown, gives up once the grace period is over.
/// Returns whether it was stored.
async fn submit(ctx: &Ctx, batch: IngestBatch) -> bool {
    let n = batch.items.len();
    let kind = batch.via.kind.clone();
    let grace_over = async {
        ctx.shutdown.cancelled().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        r = ctx.pipeline.submit(batch) => match r {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, source = %kind, lost = n, "syslog messages could not be stored");
                false
            }
        },
        _ = grace_over => {
            tracing::warn!(source = %kind, lost = n, "shutdown grace period over before syslog messages were stored");
            false
        }
    }
}

async fn run_udp(socket: UdpSocket, ctx: Arc<Ctx>) {
    let max = ctx.max_message_bytes;
    // One byte more than the limit tells an oversize datagram apart.
    let mut buf = vec![0u8; max + 1];
    let in_flight = Arc::new(Semaphore::new(UDP_IN_FLIGHT));
    let bytes = ctx
        .pipeline
        .metrics()
        .received_bytes
        .with_label_values(&["syslog_udp"]);
    loop {
        let first = tokio::select! {
            biased;
            _ = ctx.shutdown.cancelled() => break,
            r = socket.recv_from(&mut buf) => r,
        };
        let (n, peer) = match first {
            Ok(x) => x,
            Err(e) => {
                // ICMP errors surface here on some systems; keep serving.
                tracing::debug!(error = %e, "syslog udp receive failed");
                continue;
            }
        };
        let now = OffsetDateTime::now_utc();
        let mut batches: HashMap<IpAddr, Vec<Item>> = HashMap::new();
        let mut add = |n: usize, peer: SocketAddr, buf: &[u8]| {
            bytes.inc_by(n as u64);
            let item = if n > max {
                Some(Item::Rejected {
                    raw: buf[..n.min(crate::event::limits::MAX_REJECTED_RAW_BYTES)].to_vec(),
                    reason: format!("syslog datagram is longer than the limit of {max} bytes"),
                })
            } else {
                mapping::message_to_item(&buf[..n], now)
            };
            if let Some(item) = item {
                batches.entry(peer.ip()).or_default().push(item);
            }
        };
        add(n, peer, &buf);
        let deadline = Instant::now() + UDP_GATHER;
        for _ in 1..UDP_BATCH {
            match tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await {
                Ok(Ok((n, peer))) => add(n, peer, &buf),
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "syslog udp receive failed");
                    break;
                }
                Err(_) => break,
            }
        }
        for (ip, items) in batches {
            // UDP cannot push back: while the ledger cannot write, datagrams
            // are dropped and counted rather than queued without acknowledgement.
            if ctx.pipeline.unwritable_reason().is_some() {
                ctx.pipeline
                    .metrics()
                    .dropped
                    .with_label_values(&["syslog_udp"])
                    .inc_by(items.len() as u64);
                continue;
            }
            // Closed only if dropped, which it is not while this task runs.
            let Ok(permit) = in_flight.clone().acquire_owned().await else {
                break;
            };
            let ctx2 = ctx.clone();
            ctx.tracker.spawn(async move {
                let batch = IngestBatch {
                    via: via("syslog_udp", ip, None),
                    items,
                };
                submit(&ctx2, batch).await;
                drop(permit);
            });
        }
    }
}

async fn accept_loop(listener: TcpListener, tls: Option<Arc<ReloadingTls>>, ctx: Arc<Ctx>) {
    let kind = if tls.is_some() {
        "syslog_tls"
    } else {
        "syslog_tcp"
    };
    loop {
        let accepted = tokio::select! {
            biased;
            _ = ctx.shutdown.cancelled() => break,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: pause instead of spinning.
                tracing::warn!(error = %e, transport = kind, "syslog accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let listeners = &ctx.pipeline.metrics().listeners;
        let slot = match ctx.table.admit(peer.ip(), true) {
            Ok(a) => {
                if a.evicted {
                    listeners.syslog_evicted.inc();
                    ctx.evictions.note("evicted_idle");
                }
                a.slot
            }
            Err(reason) => {
                listeners
                    .syslog_refused
                    .with_label_values(&[reason.label()])
                    .inc();
                ctx.refusals.note(reason.label());
                drop(stream);
                continue;
            }
        };
        // File handles are kept in reserve for the ledger (fd_reserve).
        let Some(fd_permit) = fd_reserve::acquire() else {
            tracing::debug!(%peer, transport = kind, "syslog connection refused: file handles are kept for the ledger");
            drop(stream);
            continue;
        };
        let ctx2 = ctx.clone();
        let acceptor = tls
            .as_ref()
            .map(|t| tokio_rustls::TlsAcceptor::from(t.current()));
        ctx.tracker.spawn(async move {
            match acceptor {
                None => read_connection(stream, kind, peer, None, &slot, &ctx2).await,
                Some(acceptor) => {
                    if let Some((s, principal)) =
                        handshake(acceptor, stream, peer, &slot, &ctx2).await
                    {
                        read_connection(s, kind, peer, principal.as_deref(), &slot, &ctx2).await;
                    }
                }
            }
            drop(fd_permit);
            drop(slot);
        });
    }
}

/// The TLS stream and, when the client presented a verified certificate,
/// the principal it names (`cert:<subject>`).
async fn handshake(
    acceptor: tokio_rustls::TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    slot: &Slot,
    ctx: &Ctx,
) -> Option<(tokio_rustls::server::TlsStream<TcpStream>, Option<String>)> {
    let limit = ctx.first_byte_timeout.min(ctx.idle_timeout);
    let r = tokio::select! {
        _ = ctx.shutdown.cancelled() => return None,
        _ = slot.cancel.cancelled() => return None,
        r = tokio::time::timeout(limit, acceptor.accept(stream)) => r,
    };
    match r {
        Ok(Ok(s)) => {
            let principal = s
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| crate::api::ClientCertificate::from_der(c.as_ref()))
                .map(|c| format!("cert:{}", c.subject));
            slot.touch();
            Some((s, principal))
        }
        // Debug only: failed handshakes from scanners must not fill the log.
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "syslog tls handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "syslog tls handshake timed out");
            None
        }
    }
}

/// Why a connection stops being read.
#[derive(Debug)]
enum End {
    Eof,
    Idle,
    Shutdown,
    /// Closed to make room at the connection cap.
    Evicted,
    Error(std::io::Error),
}

async fn read_connection<S: AsyncRead + Unpin>(
    mut stream: S,
    kind: &'static str,
    peer: SocketAddr,
    principal: Option<&str>,
    slot: &Slot,
    ctx: &Ctx,
) {
    let mut heard = false;
    let mut decoder = Decoder::new(ctx.max_message_bytes);
    let mut buf = vec![0u8; READ_BUF];
    let mut frames = Vec::new();
    let bytes = ctx
        .pipeline
        .metrics()
        .received_bytes
        .with_label_values(&[kind]);
    loop {
        // Wait for data (or the end of the connection).
        let mut end = tokio::select! {
            biased;
            _ = ctx.shutdown.cancelled() => Some(End::Shutdown),
            _ = slot.cancel.cancelled() => Some(End::Evicted),
            r = tokio::time::timeout(if heard { ctx.idle_timeout } else { ctx.first_byte_timeout.min(ctx.idle_timeout) }, stream.read(&mut buf)) => match r {
                Err(_) => Some(End::Idle),
                Ok(Ok(0)) => Some(End::Eof),
                Ok(Ok(n)) => {
                    heard = true;
                    slot.touch();
                    bytes.inc_by(n as u64);
                    decoder.feed(&buf[..n], &mut frames);
                    None
                }
                Ok(Err(e)) => Some(End::Error(e)),
            },
        };
        // Take what is already waiting, without waiting for more (also on
        // shutdown: bytes the sender already delivered are stored).
        let mut batch_bytes = 0;
        while matches!(end, None | Some(End::Shutdown))
            && !decoder.is_broken()
            && batch_bytes < BATCH_BYTES
        {
            match tokio::time::timeout(Duration::ZERO, stream.read(&mut buf)).await {
                Err(_) => break,
                Ok(Ok(0)) => end = Some(End::Eof),
                Ok(Ok(n)) => {
                    bytes.inc_by(n as u64);
                    batch_bytes += n;
                    decoder.feed(&buf[..n], &mut frames);
                }
                Ok(Err(e)) => end = Some(End::Error(e)),
            }
        }
        if end.is_some() {
            decoder.finish(&mut frames);
        }
        let now = OffsetDateTime::now_utc();
        let items: Vec<Item> = frames
            .drain(..)
            .filter_map(|f| mapping::frame_to_item(f, ctx.max_message_bytes, now))
            .collect();
        if !items.is_empty() {
            let batch = IngestBatch {
                via: via(kind, peer.ip(), principal),
                items,
            };
            if !submit(ctx, batch).await {
                return;
            }
        }
        if decoder.is_broken() && end.is_none() {
            tracing::info!(%peer, transport = kind, "closing a syslog connection with broken framing");
            return;
        }
        match end {
            None => {}
            Some(End::Eof | End::Shutdown | End::Evicted) => return,
            Some(End::Idle) => {
                tracing::debug!(%peer, transport = kind, "closing an idle syslog connection");
                return;
            }
            Some(End::Error(e)) => {
                tracing::info!(%peer, transport = kind, error = %e, "syslog connection failed");
                return;
            }
        }
    }
}

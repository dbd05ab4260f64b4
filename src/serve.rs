//! `sealtrail serve`: wires the running service together — ledger writer,
//! appender, pipeline, HTTP (and syslog) listeners — and shuts it down
//! cleanly: stop accepting, drain, seal, exit.

use crate::api::{self, AppState};
use crate::config::Config;
use crate::ledger::keys;
use crate::ledger::log::Ledger;
use crate::ledger::writer::LedgerWriter;
use crate::pipeline::dedupe::DedupeWindow;
use crate::pipeline::{self, Appender, Metrics};
use crate::sources::http::HttpSource;
use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Runs the service until SIGTERM or SIGINT.
pub async fn run(config: Config) -> Result<()> {
    let shutdown = CancellationToken::new();
    let signals = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested: draining");
        signals.cancel();
    });
    run_until(config, shutdown, |addrs| {
        tracing::info!(http = %addrs.http, syslog_udp = ?addrs.syslog_udp,
            syslog_tcp = ?addrs.syslog_tcp, syslog_tls = ?addrs.syslog_tls, "sealtrail is serving");
    })
    .await
}

/// Addresses actually bound (ports may be 0 in the config).
#[derive(Clone, Copy, Debug)]
pub struct Bound {
    pub http: SocketAddr,
    /// Syslog listeners, when configured (`[syslog]`).
    pub syslog_udp: Option<SocketAddr>,
    pub syslog_tcp: Option<SocketAddr>,
    pub syslog_tls: Option<SocketAddr>,
}

/// Runs the service until `shutdown` is cancelled; `ready` gets the bound addresses.
pub async fn run_until(
    config: Config,
    shutdown: CancellationToken,
    ready: impl FnOnce(Bound),
) -> Result<()> {
    let signer = keys::load_signer(&config.key_file)
        .with_context(|| format!("loading the signing key {}", config.key_file.display()))?;
    let data = config.data_dir.clone();
    let (ledger, recovery) = tokio::task::spawn_blocking({
        let data = data.clone();
        let seal = config.seal.clone();
        move || Ledger::open(&data, signer, seal)
    })
    .await?
    .with_context(|| format!("opening the ledger in {}", data.display()))?;
    if recovery != Default::default() {
        tracing::warn!(?recovery, "recovered the ledger after an unclean stop");
    }
    let next_index = ledger.next_index();
    let window_size = config.ingest.dedupe_window;
    let window = tokio::task::spawn_blocking({
        let data = data.clone();
        move || DedupeWindow::rebuild(&data, window_size)
    })
    .await?
    .context("rebuilding the retry window from the ledger")?;
    tracing::info!(next_index, remembered_ids = window.len(), "ledger open");

    let writer = LedgerWriter::spawn(ledger, 256).context("starting the ledger writer")?;
    let metrics = Metrics::new();
    let _ = metrics.writer.set(writer.status());
    let appender = Appender::spawn(
        writer.handle(),
        next_index,
        window,
        &config.ingest.appender(),
        metrics.clone(),
        None,
    )
    .context("starting the appender")?;
    let pipeline = pipeline::build(&appender, Vec::new(), metrics.clone());

    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("listening on {}", config.http.listen))?;
    let http_addr = listener.local_addr()?;
    let syslog = crate::sources::syslog::start(&config.syslog, pipeline.clone(), shutdown.clone())
        .await
        .context("starting the syslog listeners")?;
    let app = api::app(AppState {
        ingest: HttpSource {
            pipeline: pipeline.clone(),
            limits: Arc::new(config.http.limits.clone()),
        },
        metrics: metrics.clone(),
    });
    let http_shutdown = shutdown.clone();
    let http = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { http_shutdown.cancelled().await })
        .await
    });
    ready(Bound {
        http: http_addr,
        syslog_udp: syslog.udp,
        syslog_tcp: syslog.tcp,
        syslog_tls: syslog.tls,
    });

    shutdown.cancelled().await;
    // Syslog listeners stop accepting; connections store what they read.
    syslog.wait().await;
    // Stop accepting and let in-flight requests finish (they hold pipeline handles).
    http.await?.context("http server")?;
    drop(pipeline);
    tokio::task::spawn_blocking(move || {
        appender.join();
        writer.shutdown()
    })
    .await?
    .context("sealing the ledger on shutdown")?;
    tracing::info!("stopped cleanly; everything acknowledged is sealed");
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            // Without signal handlers the process can still be stopped by
            // ctrl-c through tokio's portable handler.
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

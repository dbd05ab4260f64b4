//! `sealtrail serve`: wires the running service together — ledger writer,
//! appender, pipeline, HTTP (and syslog) listeners — and shuts it down
//! cleanly: stop accepting, drain, seal, exit.

use crate::api::query::QueryState;
use crate::api::{self, AppState};
use crate::config::Config;
use crate::detect::{DetectContext, Detector, load_rules};
use crate::event::Entry;
use crate::event::{Timestamp, Via};
use crate::index::{Indexer, IndexerOptions, SearchIndex, index_dir, run_indexer};
use crate::ledger::compactor::{Compactor, CompactorOptions};
use crate::ledger::keys;
use crate::ledger::log::Ledger;
use crate::ledger::writer::LedgerWriter;
use crate::pipeline::appender::Observer;
use crate::pipeline::dedupe::DedupeWindow;
use crate::pipeline::fd_reserve::{self, FdBudget};
use crate::pipeline::silence::{SilenceConfig, SilenceModel, silent_event};
use crate::pipeline::{self, Appender, IngestBatch, Item, Metrics, Pipeline, Transform};
use crate::response::{Responder, ResponseContext, ResponseSettings};
use crate::sources::http::HttpSource;
use crate::transforms::enrich::{Enricher, LoadReport, enrich};
use crate::transforms::mask::{Masker, load_or_create_key};
use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Runs the service until SIGTERM or SIGINT.
pub async fn run(config: Config) -> Result<()> {
    match fd_reserve::raise_nofile_limit() {
        Ok(limit) => tracing::info!(limit, "open file limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open file limit"),
    }
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

/// The ingest core shared by `serve` and `import`: the ledger writer, the
/// appender, the transforms and the pipeline handle, plus the background
/// tasks that keep derived state fresh (source silence, lookup reloads).
pub struct Core {
    pub pipeline: Pipeline,
    pub metrics: Arc<Metrics>,
    appender: Appender,
    writer: LedgerWriter,
    /// Compacts sealed segments beside the writer (`[ledger] compress`).
    compactor: Option<Compactor>,
    /// Runs the rules over the durable ledger and appends alerts.
    detector: Detector,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Core {
    /// Opens the ledger (recovering from any crash) and starts the pipeline.
    /// Background tasks stop when `shutdown` is cancelled.
    pub async fn start(config: &Config, shutdown: CancellationToken) -> Result<Core> {
        // Rules first: an invalid rule set stops the start before anything runs.
        let rules = {
            let c = config.rules.clone();
            tokio::task::spawn_blocking(move || load_rules(&c))
                .await?
                .context("loading detection rules")?
        };
        let signer = keys::load_signer(&config.key_file)
            .with_context(|| format!("loading the signing key {}", config.key_file.display()))?;
        let data = config.data_dir.clone();
        crate::ledger::atrest_config::enable(&config.encryption_key_file, &data)
            .context("loading the key-encryption key")?;
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

        let (enricher, report) = Enricher::load(config.lookups.dir.clone())
            .with_context(|| format!("loading lookups from {}", config.lookups.dir.display()))?;
        log_lookups(&report);
        let enricher = Arc::new(enricher);
        let mask_key_file = if config.masking.key_file.as_os_str().is_empty() {
            config.key_file.with_file_name("masking.key")
        } else {
            config.masking.key_file.clone()
        };
        let mask_key = load_or_create_key(&mask_key_file)
            .with_context(|| format!("masking key {}", mask_key_file.display()))?;
        let masker = Masker::new(&config.masking, &mask_key).context("masking patterns")?;
        let transforms: Vec<Box<dyn Transform>> = vec![
            Box::new(EnrichTransform(enricher.clone())),
            Box::new(MaskTransform(masker)),
        ];

        // The compactor starts with a scan of every sealed segment, so a data
        // directory from an older version or a crash gets compacted too.
        let compactor = if config.compress {
            Some(
                Compactor::spawn(ledger.paths().clone(), CompactorOptions::default())
                    .context("starting the compactor")?,
            )
        } else {
            None
        };
        let writer = LedgerWriter::spawn_with_seal_hook(
            ledger,
            256,
            compactor.as_ref().map(Compactor::notifier),
        )
        .context("starting the ledger writer")?;
        let metrics = Metrics::new();
        let _ = metrics.writer.set(writer.status());
        let _ = metrics.health.set(writer.health());
        let silence = Arc::new(Mutex::new(load_silence(&data, &config.silence)?));
        let observer: Observer = {
            let silence = silence.clone();
            Arc::new(move |source: &str, event_ms: i64| {
                if let Ok(mut model) = silence.lock() {
                    model.observe(source, event_ms, unix_ms_now());
                }
            })
        };
        let appender = Appender::spawn(
            writer.handle(),
            next_index,
            window,
            &config.ingest.appender(),
            metrics.clone(),
            Some(observer),
        )
        .context("starting the appender")?;
        let pipeline = pipeline::build(&appender, transforms, metrics.clone());
        // Detection follows the durable ledger on its own thread.
        let detector = Detector::start(
            &config.rules,
            rules,
            DetectContext {
                data_dir: data.clone(),
                writer: writer.status(),
                pipeline: pipeline.clone(),
                metrics: metrics.clone(),
                runtime: tokio::runtime::Handle::current(),
            },
        )
        .context("starting detection")?;
        let tasks = vec![
            tokio::spawn(watch_silence(
                silence,
                pipeline.clone(),
                data,
                config.silence.check_interval,
                shutdown.clone(),
            )),
            tokio::spawn(reload_lookups(
                enricher,
                Duration::from_secs(config.lookups.reload_seconds),
                shutdown,
            )),
        ];
        if let Some(c) = &compactor {
            let _ = metrics.compactor.set(c.status());
        }
        Ok(Core {
            pipeline,
            metrics,
            appender,
            writer,
            compactor,
            detector,
            tasks,
        })
    }

    /// Shutdown has begun: a ledger that cannot write stops retrying after a
    /// grace period, so draining cannot hang on a full disk.
    pub fn begin_stop(&self) {
        self.writer.begin_stop();
    }

    /// Waits for the background tasks (cancel their token first), drains the
    /// pipeline and seals the ledger. Every other pipeline handle must be gone.
    pub async fn stop(self) -> Result<()> {
        for t in self.tasks {
            t.await?;
        }
        // Detection's last round may append alerts: before the pipeline closes.
        let detector = self.detector;
        if let Err(e) = tokio::task::spawn_blocking(move || detector.stop()).await? {
            tracing::error!(error = %e, "detection stopped with an error");
        }
        drop(self.pipeline);
        let (appender, writer, compactor) = (self.appender, self.writer, self.compactor);
        tokio::task::spawn_blocking(move || {
            appender.join();
            let sealed = writer.shutdown();
            // After the last seal: the compactor gets a bounded last pass.
            if let Some(c) = compactor {
                c.shutdown();
            }
            sealed
        })
        .await?
        .context(
            "sealing the ledger on shutdown: it could not write, so batches not yet \
             acknowledged were refused; everything acknowledged is durable and is sealed \
             at the next start",
        )?;
        Ok(())
    }
}

/// Runs the service until `shutdown` is cancelled; `ready` gets the bound addresses.
pub async fn run_until(
    config: Config,
    shutdown: CancellationToken,
    ready: impl FnOnce(Bound),
) -> Result<()> {
    let core = Core::start(&config, shutdown.clone()).await?;
    let pipeline = core.pipeline.clone();
    let metrics = core.metrics.clone();

    // The search index follows the ledger on its own thread, never past what
    // the writer has made durable; it commits about twice a second.
    let indexer = {
        let data = config.data_dir.clone();
        tokio::task::spawn_blocking(move || Indexer::open(&index_dir(&data), &data))
            .await?
            .context("opening the search index")?
    };
    if *indexer.recovery() != Default::default() {
        tracing::warn!(recovery = ?indexer.recovery(), "search index repaired");
    }
    let search = Arc::new(
        SearchIndex::new(indexer.index().clone(), &config.data_dir)
            .context("search index reader")?,
    );
    let (stop_indexer, stop_rx) = std::sync::mpsc::channel::<()>();
    let durable = metrics
        .writer
        .get()
        .cloned()
        .context("ledger writer status")?;
    let reloading = search.clone();
    let indexed = metrics.indexed_events.clone();
    indexed.set(i64::try_from(indexer.cursor()).unwrap_or(i64::MAX));
    let durable_status = durable.clone();
    let indexer_thread = std::thread::Builder::new()
        .name("indexer".into())
        .spawn(move || {
            let next = move || {
                durable
                    .next_index
                    .load(std::sync::atomic::Ordering::Acquire)
            };
            // Searches see a commit as soon as it is made.
            let committed = move |cursor: u64| {
                indexed.set(i64::try_from(cursor).unwrap_or(i64::MAX));
                if let Err(e) = reloading.reload() {
                    tracing::warn!(error = %e, "search reader reload failed; it reloads on its own shortly");
                }
            };
            run_indexer(indexer, next, &stop_rx, &IndexerOptions::default(), committed)
                .and_then(|i| i.close())
        })
        .context("starting the indexer")?;

    let http_tls = {
        let settings = config.http.server.clone();
        tokio::task::spawn_blocking(move || crate::net::http::load_tls(&settings))
            .await?
            .context("loading the https certificate")?
    };
    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("listening on {}", config.http.listen))?;
    let http_addr = listener.local_addr()?;
    // Connections share a file-handle budget that leaves a reserve for the
    // ledger and the index (set now that their files are open).
    let budget = FdBudget::for_process(fd_reserve::DEFAULT_RESERVE);
    tracing::info!(
        connections = budget.total(),
        "file handle budget for connections"
    );
    fd_reserve::install(budget);
    // Response follows the alerts in the ledger; ack links point at the
    // address actually bound unless `[response] public_url` says otherwise.
    let responder = if config.response.enabled {
        let mut response = config.response.clone();
        if http_tls.is_some() && response.public_url.is_empty() {
            // The port speaks only TLS: links must say so.
            response.public_url = format!("https://{http_addr}");
        }
        response.fill_public_url(http_addr);
        Some(
            Responder::start(
                ResponseSettings {
                    response,
                    oncall: config.oncall.clone(),
                    smtp: config.smtp.clone(),
                },
                ResponseContext {
                    data_dir: config.data_dir.clone(),
                    rules_dir: config.rules.dir.clone(),
                    reload: Duration::from_secs(config.rules.reload_seconds),
                    writer: durable_status.clone(),
                    pipeline: pipeline.clone(),
                    metrics: metrics.clone(),
                },
            )
            .await
            .context("starting incident response")?,
        )
    } else {
        None
    };
    let syslog = crate::sources::syslog::start(&config.syslog, pipeline.clone(), shutdown.clone())
        .await
        .context("starting the syslog listeners")?;
    // Who may call what. The CLI changes tokens while the service runs:
    // the store is re-read when it changes, and each change is recorded.
    let tokens = {
        let data = config.data_dir.clone();
        Arc::new(
            tokio::task::spawn_blocking(move || crate::auth::tokens::Tokens::open(&data))
                .await?
                .context("reading the API token store")?,
        )
    };
    if tokens.is_empty() {
        tracing::warn!(
            "no API tokens yet: every request but /healthz and /readyz is refused; create one with `sealtrail token create --data DIR --role ROLE`"
        );
    }
    crate::auth::changes::record_new(&config.data_dir, &pipeline)
        .await
        .context("recording access changes made while the service was stopped")?;
    let auth_tasks = [
        tokio::spawn(crate::auth::gate::watch_tokens(
            tokens.clone(),
            Duration::from_secs(1),
            shutdown.clone(),
        )),
        tokio::spawn(crate::auth::changes::watch(
            config.data_dir.clone(),
            pipeline.clone(),
            Duration::from_secs(1),
            shutdown.clone(),
        )),
    ];
    let people =
        crate::auth::people::People::start(&config.data_dir, config.auth.clone(), shutdown.clone())
            .await
            .context("loading the user store (auth/users.json)")?;
    let auth = Arc::new(crate::auth::gate::AuthState::new(
        tokens,
        Some(people.clone()),
        pipeline.clone(),
        config.http.rate,
    ));
    let app = api::app(AppState {
        auth,
        ingest: HttpSource {
            pipeline: pipeline.clone(),
            limits: Arc::new(config.http.limits.clone()),
        },
        metrics: metrics.clone(),
        query: Some(QueryState {
            index: search,
            data_dir: config.data_dir.clone(),
            key_file: config.key_file.clone(),
            pipeline: pipeline.clone(),
        }),
        response: responder.as_ref().map(Responder::handle),
        people: Some(people),
        console: api::ConsoleState {
            vkey: keys::load_signer(&config.key_file)
                .ok()
                .map(|s| s.verifier().to_vkey()),
            sign_in_links: config
                .console
                .sign_in_links
                .then(|| config.data_dir.clone()),
        },
    });
    let http_shutdown = shutdown.clone();
    if http_tls.is_some() {
        tracing::info!(client_ca = ?config.http.server.tls.as_ref().map(|t| &t.client), "http api serves https only");
    }
    let http = tokio::spawn(crate::net::http::serve(
        listener,
        app,
        config.http.server.clone(),
        http_tls,
        metrics.clone(),
        http_shutdown,
    ));
    // Each [[witness]] gets every new checkpoint from a task of its own.
    let witness_tasks = crate::witness::submit::start(
        &config.data_dir,
        &config.witnesses,
        metrics.clone(),
        pipeline.clone(),
        shutdown.clone(),
    )
    .await
    .context("starting witness submission")?;
    let publisher = crate::witness::publish::start(
        &config.data_dir,
        &config.publish,
        &config.smtp,
        pipeline.clone(),
        shutdown.clone(),
    )
    .context("starting checkpoint publishing")?;
    ready(Bound {
        http: http_addr,
        syslog_udp: syslog.udp,
        syslog_tcp: syslog.tcp,
        syslog_tls: syslog.tls,
    });

    shutdown.cancelled().await;
    core.begin_stop();
    // Syslog listeners stop accepting; connections store what they read.
    syslog.wait().await;
    // Stop accepting and let in-flight requests finish (they hold pipeline handles).
    http.await.context("http server")?;
    for task in auth_tasks {
        if let Err(e) = task.await {
            tracing::warn!(error = %e, "an access-control task ended abnormally");
        }
    }
    if let Some(task) = publisher
        && let Err(e) = task.await
    {
        tracing::warn!(error = %e, "the checkpoint publisher ended abnormally");
    }
    for task in witness_tasks {
        if let Err(e) = task.await {
            tracing::warn!(error = %e, "a witness submission task ended abnormally");
        }
    }
    // Response appends its last decisions before the pipeline closes.
    if let Some(r) = responder {
        r.stop().await;
    }
    drop(pipeline);
    // A last indexing round covers everything acknowledged.
    drop(stop_indexer);
    match tokio::task::spawn_blocking(move || indexer_thread.join()).await? {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::error!(error = %e, "indexer stopped with an error; `sealtrail reindex` rebuilds it")
        }
        Err(_) => {
            tracing::error!("indexer thread panicked; `sealtrail reindex` rebuilds the index")
        }
    }
    core.stop().await?;
    tracing::info!("stopped cleanly; everything acknowledged is sealed");
    Ok(())
}

pub(crate) async fn wait_for_signal() {
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

fn unix_ms_now() -> i64 {
    Timestamp::now().unix_ms()
}

fn silence_state_path(data: &Path) -> PathBuf {
    data.join("state").join("silence.json")
}

/// Largest learned silence model read back (it grows with the sources).
const MAX_SILENCE_STATE_BYTES: u64 = 256 << 20;

/// The learned silence model is derived state: a missing or unreadable file
/// means learning starts over, never that the service refuses to start.
fn load_silence(data: &Path, config: &SilenceConfig) -> Result<SilenceModel> {
    let path = silence_state_path(data);
    // Derived state the service wrote; a file past the bound is ignored too.
    if let Ok(text) = crate::bounded::read_to_string(&path, MAX_SILENCE_STATE_BYTES) {
        match serde_json::from_str::<SilenceModel>(&text) {
            Ok(mut model) => {
                model.set_config(config.clone())?;
                return Ok(model);
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable silence state")
            }
        }
    }
    Ok(SilenceModel::new(config.clone())?)
}

fn save_silence(data: &Path, model: &Mutex<SilenceModel>) {
    let Ok(text) = model.lock().map(|m| serde_json::to_vec(&*m)) else {
        return;
    };
    let path = silence_state_path(data);
    let write = || -> std::io::Result<()> {
        let text = text.map_err(std::io::Error::other)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &path)
    };
    if let Err(e) = write() {
        tracing::warn!(path = %path.display(), error = %e, "could not save silence state");
    }
}

/// Periodically appends a `system/source_silent` event for every known source
/// that has gone quiet for longer than it normally is at that hour.
async fn watch_silence(
    model: Arc<Mutex<SilenceModel>>,
    pipeline: Pipeline,
    data: PathBuf,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let silent = match model.lock() {
            Ok(mut m) => m.check(unix_ms_now(), None),
            Err(_) => break,
        };
        if !silent.is_empty() {
            let now = Timestamp::now();
            let items = silent
                .iter()
                .map(|s| Item::Event(silent_event(s, now)))
                .collect();
            let batch = IngestBatch {
                via: Via {
                    kind: "sealtrail".into(),
                    peer: None,
                    principal: None,
                },
                items,
            };
            match pipeline.submit(batch).await {
                Ok(_) => {
                    pipeline
                        .metrics()
                        .silent_sources
                        .inc_by(silent.len() as u64);
                    for s in &silent {
                        tracing::warn!(source = %s.source, silent_for = ?s.silent_for, "source is silent");
                    }
                }
                Err(e) => tracing::error!(error = %e, "could not record silent sources"),
            }
        }
        let (m, d) = (model.clone(), data.clone());
        let _ = tokio::task::spawn_blocking(move || save_silence(&d, &m)).await;
    }
    let _ = tokio::task::spawn_blocking(move || save_silence(&data, &model)).await;
}

/// Enrichment as a pipeline transform: directory data beside the event.
struct EnrichTransform(Arc<Enricher>);

impl Transform for EnrichTransform {
    fn apply(&self, entry: &mut Entry) {
        entry.enriched = enrich(&self.0.snapshot(), &entry.event);
    }
}

/// PHI masking as a pipeline transform (after enrichment, before sealing).
struct MaskTransform(Masker);

impl Transform for MaskTransform {
    fn apply(&self, entry: &mut Entry) {
        self.0.mask_event(&mut entry.event);
    }
}

fn log_lookups(report: &LoadReport) {
    tracing::info!(
        staff = report.staff_rows,
        patients = report.patient_rows,
        networks = report.network_rows,
        skipped = report.skipped_rows,
        "lookups loaded"
    );
    for note in &report.notes {
        tracing::warn!(file = %note.file.display(), line = ?note.line, "{}", note.message);
    }
}

/// Picks up edits to the lookup CSVs without a restart.
async fn reload_lookups(enricher: Arc<Enricher>, every: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let e = enricher.clone();
        match tokio::task::spawn_blocking(move || e.reload_if_changed()).await {
            Ok(Ok(Some(report))) => log_lookups(&report),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "lookup reload failed; keeping the previous tables")
            }
            Err(e) => tracing::error!(error = %e, "lookup reload task failed"),
        }
    }
}

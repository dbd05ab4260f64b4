//! The response engine: one async task that owns the incident state and is
//! the only writer of `system/incident_update` events.
//!
//! ```text
//!  ledger ─> follower thread (system/alert only) ─┐
//!  API (ack, resolve, note, links, silences) ─────┼─> engine task ─> Book (state) ─> pipeline (ledger events)
//!  round tasks (one Attempt at a time) ───────────┘        │ timers: group_wait, group_interval,
//!                                                          │ ack timeouts, resolve_after, silence ends
//!                                                          └─> round tasks ─> Mailer / WebhookSender
//! ```
//!
//! Every change is applied to the state and appended as an event; replies
//! and notifications go out only once the events are durable. On start the
//! state is rebuilt by replaying the ledger's recent window, alerts the
//! previous run did not handle are handled, rounds it did not finish are
//! finished and deadlines that passed during the downtime fire at once.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::ResponseError;
use super::config::{OncallConfig, ResponseConfig};
use super::message::{AlertMessage, EventLine, Facts, MAX_EVENT_LINES, tidy};
use super::notify::{
    Attempt, EmailMessage, Mailer, RetryPolicy, SmtpConfig, WebhookRequest, WebhookSender,
};
use super::playbook::{NotifyStep, Playbook, PlaybookSet, Recipient};
use super::record::{IncidentKey, RoundKind, SERVICE_ACTOR, SilenceRecord, Update};
use super::silence::MAX_SILENCES;
use super::state::{Book, Due, Incident, Lifecycle, incident_id};
use super::token::{TokenError, TokenKey};
use crate::detect::alert::{Alert, is_alert_entry, service_via};
use crate::detect::replay_start;
use crate::event::{Entry, Timestamp};
use crate::index::LedgerFollower;
use crate::ledger::entries::EntryReader;
use crate::ledger::writer::WriterStatus;
use crate::pipeline::metrics::Metrics;
use crate::pipeline::{IngestBatch, Item, Pipeline};

/// Messages waiting for the engine (alerts from the follower, API calls).
const QUEUE: usize = 1024;
/// Most messages handled before the events they make are appended.
const MAX_PER_ROUND: usize = 512;
/// Most events in one append.
const MAX_BATCH: usize = 500;
/// Alerts of the replayed window kept to fill in message details.
const MAX_REPLAY_ALERTS: usize = 100_000;
/// Follower poll interval when caught up.
const POLL: Duration = Duration::from_millis(50);
/// Longest note, name or comment accepted from the API.
pub const MAX_TEXT: usize = 4096;

/// An API error: status and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

fn api_err(status: u16, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        message: message.into(),
    }
}

pub type Reply = oneshot::Sender<Result<Value, ApiError>>;

/// What the API asks of the engine.
#[derive(Debug)]
pub enum Command {
    Ack {
        id: String,
        by: String,
        note: Option<String>,
        assignee: Option<String>,
    },
    Resolve {
        id: String,
        by: String,
        note: Option<String>,
    },
    Note {
        id: String,
        by: String,
        note: String,
        assignee: Option<String>,
    },
    LinkAck {
        id: String,
        token: String,
    },
    /// A silence checked by `api::silences::silence_from_body` (the
    /// preview's check too); the engine adds only the count limit.
    CreateSilence {
        record: SilenceRecord,
    },
    DeleteSilence {
        id: String,
        by: String,
    },
}

enum Msg {
    /// An alert, its ledger `received` time (unix ms) and its first events
    /// (index, stored entry) for the messages.
    Alert(Box<Alert>, i64, Vec<(u64, Vec<u8>)>),
    Api(Command, Reply),
    Playbooks(Arc<PlaybookSet>),
}

/// One attempt of a round, from a round task.
struct AttemptMsg {
    incident: String,
    round: u32,
    kind: RoundKind,
    round_at: i64,
    step: u32,
    level: String,
    attempt: Attempt,
}

/// Read access for the API and the handle to send commands.
#[derive(Clone)]
pub struct ResponseHandle {
    tx: mpsc::Sender<Msg>,
    shared: Arc<Shared>,
}

pub struct Shared {
    book: Mutex<Book>,
    pub oncall: OncallConfig,
    pub config: ResponseConfig,
}

impl Shared {
    pub fn book(&self) -> MutexGuard<'_, Book> {
        // A panic while holding the lock leaves consistent-enough state
        // (every mutation is a single apply); keep serving.
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ResponseHandle {
    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Sends a command and waits for its durable outcome.
    pub async fn call(&self, cmd: Command) -> Result<Value, ApiError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Api(cmd, reply))
            .await
            .map_err(|_| api_err(503, "the response engine is stopping"))?;
        rx.await
            .unwrap_or_else(|_| Err(api_err(503, "the response engine is stopping")))
    }
}

/// What the engine needs from the service.
pub struct ResponseContext {
    pub data_dir: PathBuf,
    pub rules_dir: PathBuf,
    pub reload: Duration,
    pub writer: Arc<WriterStatus>,
    pub pipeline: Pipeline,
    /// `/metrics`: the engine's counters are `metrics.response`.
    pub metrics: Arc<Metrics>,
}

/// The running engine.
pub struct Responder {
    handle: ResponseHandle,
    task: tokio::task::JoinHandle<()>,
    follower: Option<std::thread::JoinHandle<()>>,
    stop_follower: Arc<AtomicBool>,
    reload: tokio::task::JoinHandle<()>,
    shutdown: CancellationToken,
}

/// Settings of the engine.
#[derive(Clone, Debug)]
pub struct ResponseSettings {
    pub response: ResponseConfig,
    pub oncall: OncallConfig,
    pub smtp: SmtpConfig,
}

fn now_ms() -> i64 {
    Timestamp::now().unix_ms()
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Loads the playbooks for start-up (blocking): errors name file:line.
pub fn load_playbooks(
    rules_dir: &Path,
    oncall: &OncallConfig,
) -> Result<PlaybookSet, ResponseError> {
    PlaybookSet::load(rules_dir, oncall).map_err(|errors| ResponseError::Playbooks {
        dir: rules_dir.join(crate::rules::PLAYBOOKS_DIR),
        errors,
    })
}

impl Responder {
    pub async fn start(
        settings: ResponseSettings,
        ctx: ResponseContext,
    ) -> Result<Responder, ResponseError> {
        let playbooks = {
            let (dir, oncall) = (ctx.rules_dir.clone(), settings.oncall.clone());
            tokio::task::spawn_blocking(move || load_playbooks(&dir, &oncall))
                .await
                .map_err(|e| ResponseError::Task(e.to_string()))??
        };
        tracing::info!(
            playbooks = playbooks.len(),
            levels = settings.oncall.levels.len(),
            "response playbooks loaded"
        );
        let uses_levels = playbooks.playbooks.values().any(|p| {
            p.notify.iter().any(|s| {
                matches!(
                    s,
                    NotifyStep::Email {
                        to: Recipient::Current,
                        ..
                    } | NotifyStep::Webhook {
                        to: Recipient::Current
                    }
                )
            })
        });
        if uses_levels && settings.oncall.levels.is_empty() {
            tracing::warn!(
                "playbooks notify the on-call level but [[oncall.levels]] is empty: those notifications are recorded as failed"
            );
        }
        let key = {
            let d = ctx.data_dir.clone();
            tokio::task::spawn_blocking(move || TokenKey::load_or_create(&d))
                .await
                .map_err(|e| ResponseError::Task(e.to_string()))?
                .map_err(|e| ResponseError::Key(e.to_string()))?
        };
        let mailer = Mailer::new(&settings.smtp).map_err(|e| ResponseError::Smtp(e.to_string()))?;
        let webhooks = WebhookSender::new(RetryPolicy {
            attempts: settings.response.webhook_retries.saturating_add(1),
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            timeout: settings.response.webhook_timeout,
            retry_for: settings.response.webhook_retry_for,
        })
        .map_err(|e| ResponseError::Smtp(e.to_string()))?;

        let (replayed, pending) = {
            let data = ctx.data_dir.clone();
            let end = ctx.writer.next_index.load(Ordering::Acquire);
            let window = ms(settings.response.replay_window);
            tokio::task::spawn_blocking(move || {
                let mut replayed = replay(&data, end, window)?;
                // Messages of rounds after a restart show the events too;
                // resolved incidents send no more rounds, so are not read.
                let entries = EntryReader::open(&data);
                for inc in replayed.book.incidents.values_mut() {
                    if inc.state == Lifecycle::Resolved {
                        continue;
                    }
                    if let Some(a) = inc.last_alert.as_mut() {
                        a.first_events = first_events(&entries, &a.event_indices);
                    }
                }
                let pending: Vec<_> = std::mem::take(&mut replayed.pending)
                    .into_iter()
                    .map(|(a, at)| {
                        let events = first_events(&entries, &a.event_indices);
                        (a, at, events)
                    })
                    .collect();
                Ok::<_, ResponseError>((replayed, pending))
            })
            .await
            .map_err(|e| ResponseError::Task(e.to_string()))??
        };
        tracing::info!(
            incidents = replayed.book.incidents.len(),
            open = replayed.book.open_count(),
            silences = replayed.book.silences.len(),
            unhandled_alerts = pending.len(),
            from = replayed.from,
            to = replayed.end,
            "response state rebuilt from the ledger"
        );
        let shared = Arc::new(Shared {
            book: Mutex::new(replayed.book),
            oncall: settings.oncall.clone(),
            config: settings.response.clone(),
        });
        let (tx, rx) = mpsc::channel(QUEUE);
        let handle = ResponseHandle {
            tx: tx.clone(),
            shared: shared.clone(),
        };
        let shutdown = CancellationToken::new();
        let (attempt_tx, attempt_rx) = mpsc::unbounded_channel();
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let mut engine = Engine {
            shared,
            playbooks: Arc::new(playbooks),
            key: Arc::new(key),
            mailer,
            webhooks,
            pipeline: ctx.pipeline.clone(),
            rx,
            attempt_tx,
            attempt_rx,
            done_tx,
            done_rx,
            out: Vec::new(),
            replies: Vec::new(),
            rounds: Vec::new(),
            in_flight: HashSet::new(),
            sched: BTreeSet::new(),
            sched_of: HashMap::new(),
            sends: Arc::new(Semaphore::new(settings.response.max_concurrent_sends)),
            tasks: tokio::task::JoinSet::new(),
            shutdown: shutdown.clone(),
            metrics: ctx.metrics.clone(),
            first_alert_at: HashMap::new(),
        };
        engine.reschedule_all();
        for (a, received, events) in pending {
            engine.handle_alert(&a, received, events);
        }
        engine
            .metrics
            .response
            .open
            .set(open_gauge(&engine.shared.book()));
        let task = tokio::spawn(async move { engine.run().await });

        let stop_follower = Arc::new(AtomicBool::new(false));
        let follower = {
            let (stop, data, writer, tx) = (
                stop_follower.clone(),
                ctx.data_dir.clone(),
                ctx.writer.clone(),
                tx.clone(),
            );
            let start = replayed.end;
            std::thread::Builder::new()
                .name("response-follow".into())
                .spawn(move || follow_alerts(&data, start, &writer, &tx, &stop))
                .map_err(|e| ResponseError::Task(e.to_string()))?
        };
        let reload = tokio::spawn(reload_playbooks(
            ctx.rules_dir.clone(),
            settings.oncall.clone(),
            ctx.reload,
            tx,
            shutdown.clone(),
        ));
        Ok(Responder {
            handle,
            task,
            follower: Some(follower),
            stop_follower,
            reload,
            shutdown,
        })
    }

    pub fn handle(&self) -> ResponseHandle {
        self.handle.clone()
    }

    /// Stops following, appends what is pending and stops; rounds being
    /// sent are abandoned (their recorded attempts make the next start
    /// finish them).
    pub async fn stop(mut self) {
        self.stop_follower.store(true, Ordering::Release);
        if let Some(f) = self.follower.take() {
            let _ = tokio::task::spawn_blocking(move || f.join()).await;
        }
        self.shutdown.cancel();
        let _ = self.reload.await;
        drop(self.handle);
        if self.task.await.is_err() {
            tracing::error!("the response engine panicked");
        }
    }
}

struct Replayed {
    book: Book,
    /// Alerts with no `opened`/`alert_added`, and their `received` times.
    pending: Vec<(Alert, i64)>,
    from: u64,
    end: u64,
}

/// `"category":"system","action":"` then `alert"` or `incident_update"`:
/// a cheap test on the stored bytes before parsing.
fn interesting(bytes: &[u8]) -> bool {
    const PREFIX: &[u8] = b"\"category\":\"system\",\"action\":\"";
    let head = &bytes[..bytes.len().min(512)];
    head.windows(PREFIX.len())
        .position(|w| w == PREFIX)
        .is_some_and(|p| {
            let rest = &head[p + PREFIX.len()..];
            rest.starts_with(b"alert\"") || rest.starts_with(b"incident_update\"")
        })
}

/// Rebuilds the state from the ledger's window (blocking).
fn replay(data: &Path, end: u64, window_ms: i64) -> Result<Replayed, ResponseError> {
    let from = replay_start(data, now_ms().saturating_sub(window_ms))
        .map_err(|e| ResponseError::Replay(e.to_string()))?
        .min(end);
    let mut follower = LedgerFollower::new(data, from);
    let mut buf = Vec::new();
    let mut book = Book::default();
    let mut alerts: HashMap<String, (Alert, i64)> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut idle = 0;
    while follower.position() < end {
        let Some(_) = follower
            .next_entry(end, &mut buf)
            .map_err(|e| ResponseError::Replay(e.to_string()))?
        else {
            idle += 1;
            if idle > 200 {
                tracing::warn!(
                    at = follower.position(),
                    end,
                    "response replay stopped early"
                );
                break;
            }
            std::thread::sleep(Duration::from_millis(10)); // a segment being sealed
            continue;
        };
        if !interesting(&buf) {
            continue;
        }
        let Ok(entry) = Entry::from_ledger_bytes(&buf) else {
            continue;
        };
        if let Some(a) = Alert::from_entry(&entry) {
            if alerts.len() < MAX_REPLAY_ALERTS {
                order.push(a.id.clone());
                alerts.insert(a.id.clone(), (a, entry.received.unix_ms()));
            }
            continue;
        }
        if let Some(u) = Update::from_entry(&entry) {
            let alert = match &u {
                Update::Opened { alert, .. } | Update::AlertAdded { alert, .. } => {
                    alerts.get(alert).map(|(a, _)| a)
                }
                _ => None,
            };
            book.apply(&u, entry.event.time.unix_ms(), alert, true);
        }
    }
    let pending = order
        .into_iter()
        .filter(|id| !book.is_handled(id))
        .filter_map(|id| alerts.remove(&id))
        .collect();
    Ok(Replayed {
        book,
        pending,
        from,
        end,
    })
}

/// The first [`MAX_EVENT_LINES`] events an alert names (index, stored
/// entry), for its messages; blocking reads, so only on blocking threads.
fn first_events(entries: &EntryReader, indices: &[u64]) -> Vec<(u64, Vec<u8>)> {
    let first = &indices[..indices.len().min(MAX_EVENT_LINES)];
    match entries.read_many(first) {
        Ok(raw) => first.iter().copied().zip(raw).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "could not read an alert's events for its messages");
            Vec::new()
        }
    }
}

/// Follows the durable ledger from `start` and hands alerts to the engine.
fn follow_alerts(
    data: &Path,
    start: u64,
    writer: &WriterStatus,
    tx: &mpsc::Sender<Msg>,
    stop: &AtomicBool,
) {
    let mut follower = LedgerFollower::new(data, start);
    // The alert's first events, for its messages: read here, on this
    // thread, so the engine task never waits on the disk.
    let entries = EntryReader::open(data);
    let mut buf = Vec::new();
    loop {
        let stopping = stop.load(Ordering::Acquire);
        let limit = writer.next_index.load(Ordering::Acquire);
        loop {
            match follower.next_entry(limit, &mut buf) {
                Ok(Some(index)) => {
                    if !interesting(&buf) {
                        continue;
                    }
                    let Ok(entry) = Entry::from_ledger_bytes(&buf) else {
                        continue;
                    };
                    let Some(a) = is_alert_entry(&entry)
                        .then(|| Alert::from_entry(&entry))
                        .flatten()
                    else {
                        continue;
                    };
                    let events = first_events(&entries, &a.event_indices);
                    let received = entry.received.unix_ms();
                    if tx
                        .blocking_send(Msg::Alert(Box::new(a), received, events))
                        .is_err()
                    {
                        tracing::debug!(index, "response engine gone; follower stops");
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(at = follower.position(), error = %e, "response could not read the ledger; retrying");
                    let at = follower.position();
                    follower = LedgerFollower::new(data, at);
                    std::thread::sleep(Duration::from_secs(1));
                    break;
                }
            }
        }
        if stopping {
            return;
        }
        std::thread::sleep(POLL);
    }
}

async fn reload_playbooks(
    rules_dir: PathBuf,
    oncall: OncallConfig,
    every: Duration,
    tx: mpsc::Sender<Msg>,
    shutdown: CancellationToken,
) {
    let fp = |d: &Path| {
        (
            crate::detect::fingerprint(d),
            crate::detect::fingerprint(&d.join(crate::rules::PLAYBOOKS_DIR)),
        )
    };
    let mut last = {
        let d = rules_dir.clone();
        tokio::task::spawn_blocking(move || fp(&d)).await.ok()
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let (d, o) = (rules_dir.clone(), oncall.clone());
        let Ok((now, loaded)) = tokio::task::spawn_blocking(move || {
            let now = fp(&d);
            (now, PlaybookSet::load(&d, &o))
        })
        .await
        else {
            continue;
        };
        if last.as_ref() == Some(&now) {
            continue;
        }
        last = Some(now);
        match loaded {
            Ok(set) => {
                tracing::info!(playbooks = set.len(), "response playbooks reloaded");
                if tx.send(Msg::Playbooks(Arc::new(set))).await.is_err() {
                    return;
                }
            }
            Err(errors) => {
                for e in &errors {
                    tracing::error!(error = %e, "playbook set rejected; the previous playbooks stay active");
                }
            }
        }
    }
}

/// A step of a round, ready to send.
enum Prepared {
    Email(EmailMessage),
    Webhook(WebhookRequest),
    /// Nothing to send to (recorded as a failed attempt).
    Unroutable {
        channel: super::notify::Channel,
        reason: String,
    },
}

struct RoundJob {
    incident: String,
    round: u32,
    kind: RoundKind,
    round_at: i64,
    level: String,
    steps: Vec<(u32, Prepared)>,
}

struct Engine {
    shared: Arc<Shared>,
    playbooks: Arc<PlaybookSet>,
    key: Arc<TokenKey>,
    mailer: Mailer,
    webhooks: WebhookSender,
    pipeline: Pipeline,
    rx: mpsc::Receiver<Msg>,
    // Unbounded, but bounded in practice: at most `max_concurrent_sends`
    // rounds run, each of at most MAX_NOTIFY_STEPS steps with a bounded
    // number of attempts, and the engine drains it every loop.
    attempt_tx: mpsc::UnboundedSender<AttemptMsg>,
    attempt_rx: mpsc::UnboundedReceiver<AttemptMsg>,
    done_tx: mpsc::UnboundedSender<(String, u32)>,
    done_rx: mpsc::UnboundedReceiver<(String, u32)>,
    /// Updates applied but not yet appended, with their time.
    out: Vec<(Update, i64)>,
    /// Replies waiting for `out` to be durable.
    replies: Vec<(Reply, Result<Value, ApiError>)>,
    /// Rounds to start once `out` is durable.
    rounds: Vec<RoundJob>,
    in_flight: HashSet<String>,
    sched: BTreeSet<(i64, String)>,
    sched_of: HashMap<String, (i64, Due)>,
    sends: Arc<Semaphore>,
    tasks: tokio::task::JoinSet<()>,
    shutdown: CancellationToken,
    metrics: Arc<Metrics>,
    /// Incidents whose first notification is owed: the `received` time of
    /// the alert that made it owed (notification latency). Entries go when
    /// the first round ends or the incident is acknowledged or resolved;
    /// at most `max_open_incidents`.
    first_alert_at: HashMap<String, i64>,
}

/// The open-incidents gauge's value.
fn open_gauge(book: &Book) -> i64 {
    i64::try_from(book.open_count()).unwrap_or(i64::MAX)
}

impl Engine {
    async fn run(&mut self) {
        loop {
            let wake = self.next_wake();
            let sleep = tokio::time::sleep(Duration::from_millis(
                u64::try_from(wake.saturating_sub(now_ms()))
                    .unwrap_or(0)
                    .min(3_600_000),
            ));
            tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => break,
                Some(a) = self.attempt_rx.recv() => self.on_attempt(a),
                Some((id, round)) = self.done_rx.recv() => self.on_round_done(&id, round),
                m = self.rx.recv() => match m {
                    Some(m) => self.on_msg(m),
                    None => break,
                },
                _ = sleep => {}
                Some(_) = self.tasks.join_next(), if !self.tasks.is_empty() => {}
            }
            let mut n = 0;
            while n < MAX_PER_ROUND {
                if let Ok(a) = self.attempt_rx.try_recv() {
                    self.on_attempt(a);
                } else if let Ok((id, round)) = self.done_rx.try_recv() {
                    self.on_round_done(&id, round);
                } else if let Ok(m) = self.rx.try_recv() {
                    self.on_msg(m);
                } else {
                    break;
                }
                n += 1;
            }
            self.run_due(now_ms());
            self.metrics
                .response
                .open
                .set(open_gauge(&self.shared.book()));
            self.flush().await;
        }
        // Last appends: what was decided and what rounds recorded so far.
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        while let Ok(a) = self.attempt_rx.try_recv() {
            self.on_attempt(a);
        }
        self.rounds.clear();
        self.flush().await;
        tracing::info!("response engine stopped");
    }

    fn next_wake(&self) -> i64 {
        let mut wake = now_ms().saturating_add(60_000);
        if let Some((at, _)) = self.sched.first() {
            wake = wake.min(*at);
        }
        let now = now_ms();
        for s in self.shared.book().silences.iter() {
            let end = s.record.ends_at.unix_ms();
            let start = s.record.starts_at.unix_ms();
            wake = wake.min(end);
            if start > now {
                wake = wake.min(start);
            }
        }
        wake
    }

    fn push(&mut self, u: Update, at: i64, alert: Option<&Alert>) -> Option<String> {
        let changed = self.shared.book().apply(&u, at, alert, false);
        self.count(&u);
        self.out.push((u, at));
        if let Some(id) = &changed {
            self.touch(id);
        }
        changed
    }

    /// Counts a live change in `/metrics`.
    fn count(&mut self, u: &Update) {
        let m = &self.metrics.response;
        match u {
            Update::Opened { silenced_by, .. } | Update::AlertAdded { silenced_by, .. } => {
                if matches!(u, Update::Opened { .. }) {
                    m.opened.inc();
                }
                if silenced_by.is_some() {
                    m.silenced.inc();
                }
            }
            Update::Notified {
                channel, outcome, ..
            } => m
                .attempts
                .with_label_values(&[channel.as_str(), outcome.as_str()])
                .inc(),
            Update::Acknowledged { incident, via, .. } => {
                m.acknowledged.with_label_values(&[via.as_str()]).inc();
                self.first_alert_at.remove(incident);
            }
            Update::Resolved {
                incident, reason, ..
            } => {
                m.resolved.with_label_values(&[reason.as_str()]).inc();
                self.first_alert_at.remove(incident);
            }
            Update::Escalated { reason, .. } => {
                m.escalations.with_label_values(&[reason.as_str()]).inc();
            }
            Update::Note { .. }
            | Update::SilenceCreated { .. }
            | Update::SilenceDeleted { .. }
            | Update::SilenceExpired { .. }
            | Update::AckTokenUsed { .. } => {}
        }
    }

    fn touch(&mut self, id: &str) {
        if let Some((at, _)) = self.sched_of.remove(id) {
            self.sched.remove(&(at, id.to_owned()));
        }
        let due = {
            let book = self.shared.book();
            book.incidents.get(id).and_then(|i| {
                i.next_due(
                    &self.playbooks,
                    &self.shared.oncall,
                    &self.shared.config,
                    self.in_flight.contains(id),
                )
            })
        };
        if let Some((at, d)) = due {
            self.sched.insert((at, id.to_owned()));
            self.sched_of.insert(id.to_owned(), (at, d));
        }
    }

    fn reschedule_all(&mut self) {
        let ids: Vec<String> = self
            .shared
            .book()
            .incidents
            .values()
            .filter(|i| i.state != Lifecycle::Resolved)
            .map(|i| i.id.clone())
            .collect();
        self.sched.clear();
        self.sched_of.clear();
        for id in ids {
            self.touch(&id);
        }
    }

    fn on_msg(&mut self, m: Msg) {
        match m {
            Msg::Alert(a, received, events) => self.handle_alert(&a, received, events),
            Msg::Api(cmd, reply) => {
                let r = self.command(cmd);
                self.replies.push((reply, r));
            }
            Msg::Playbooks(p) => {
                self.playbooks = p;
                self.reschedule_all();
            }
        }
    }

    fn handle_alert(&mut self, alert: &Alert, received: i64, events: Vec<(u64, Vec<u8>)>) {
        let now = now_ms();
        let (pb_name, handled) = {
            let book = self.shared.book();
            (
                self.playbooks
                    .for_alert(&alert.rule_id, &alert.severity)
                    .map(|p| p.name.clone()),
                book.is_handled(&alert.id),
            )
        };
        if handled {
            return;
        }
        let Some(playbook) = pb_name else {
            // No playbook: the alert event is the whole record.
            self.shared.book().mark_handled(&alert.id);
            return;
        };
        let mut key = IncidentKey {
            playbook: playbook.clone(),
            rule_id: alert.rule_id.clone(),
            group: alert.group.clone(),
        };
        let (existing, silenced_by, open) = {
            let book = self.shared.book();
            let existing = book
                .open_incident_for(&key)
                .map(|i| (i.id.clone(), i.alerts));
            (
                existing,
                book.silenced_by(alert, &playbook, now).map(str::to_owned),
                book.open_count(),
            )
        };
        let mut overflow = false;
        let existing = match existing {
            Some(e) => Some(e),
            None if open >= self.shared.config.max_open_incidents => {
                overflow = true;
                key = IncidentKey {
                    playbook: playbook.clone(),
                    rule_id: "*".into(),
                    group: Default::default(),
                };
                self.shared
                    .book()
                    .open_incident_for(&key)
                    .map(|i| (i.id.clone(), i.alerts))
            }
            None => None,
        };
        let silenced = silenced_by.is_some();
        let u = match existing {
            Some((incident, n)) => Update::AlertAdded {
                incident,
                key,
                title: alert.title.clone(),
                severity: alert.severity.clone(),
                alert: alert.id.clone(),
                alerts: n + 1,
                silenced_by,
            },
            None => Update::Opened {
                incident: incident_id(&key, &alert.id),
                key,
                title: if overflow {
                    format!("Too many open incidents: alerts of playbook {playbook}")
                } else {
                    alert.title.clone()
                },
                severity: alert.severity.clone(),
                alert: alert.id.clone(),
                silenced_by,
                overflow,
            },
        };
        let changed = self.push(u, now, Some(alert));
        if let Some(id) = &changed {
            self.shared.book().set_first_events(id, events);
        }
        if let Some(id) = changed
            && !silenced
        {
            self.note_first_alert(&id, &playbook, received);
        }
    }

    /// Remembers when the alert that made an incident's first notification
    /// owed was recorded, for the latency histogram.
    fn note_first_alert(&mut self, id: &str, playbook: &str, received: i64) {
        if self.first_alert_at.contains_key(id)
            || self.first_alert_at.len() >= self.shared.config.max_open_incidents
            || self
                .playbooks
                .get(playbook)
                .is_none_or(|p| p.notify.is_empty())
        {
            return;
        }
        let owed_first = self
            .shared
            .book()
            .incidents
            .get(id)
            .is_some_and(|i| i.rounds == 0 && matches!(i.owed, Some((RoundKind::First, _))));
        if owed_first {
            self.first_alert_at.insert(id.to_owned(), received);
        }
    }

    fn command(&mut self, cmd: Command) -> Result<Value, ApiError> {
        let now = now_ms();
        match cmd {
            Command::Ack {
                id,
                by,
                note,
                assignee,
            } => {
                self.check_ackable(&id)?;
                self.push(
                    Update::Acknowledged {
                        incident: id.clone(),
                        by,
                        via: "api".into(),
                        note,
                        assignee,
                    },
                    now,
                    None,
                );
                self.view(&id)
            }
            Command::Resolve { id, by, note } => {
                let state = self.state_of(&id)?;
                if state == Lifecycle::Resolved {
                    return Err(api_err(409, format!("incident {id} is already resolved")));
                }
                self.push(
                    Update::Resolved {
                        incident: id.clone(),
                        by,
                        reason: "api".into(),
                        note,
                    },
                    now,
                    None,
                );
                self.view(&id)
            }
            Command::Note {
                id,
                by,
                note,
                assignee,
            } => {
                self.state_of(&id)?;
                self.push(
                    Update::Note {
                        incident: id.clone(),
                        by,
                        note,
                        assignee,
                    },
                    now,
                    None,
                );
                self.view(&id)
            }
            Command::LinkAck { id, token } => self.link_ack(id, &token, now),
            Command::CreateSilence { record } => {
                if self.shared.book().silences.len() >= MAX_SILENCES {
                    return Err(api_err(
                        409,
                        format!("at most {MAX_SILENCES} silences; delete some first"),
                    ));
                }
                self.push(
                    Update::SilenceCreated {
                        silence: record.clone(),
                    },
                    now,
                    None,
                );
                Ok(silence_view(&record))
            }
            Command::DeleteSilence { id, by } => {
                let found = self.shared.book().silences.iter().any(|s| s.id() == id);
                if !found {
                    return Err(api_err(404, format!("no active silence {id}")));
                }
                self.push(
                    Update::SilenceDeleted {
                        silence: id.clone(),
                        by,
                    },
                    now,
                    None,
                );
                Ok(json!({"id": id, "deleted": true}))
            }
        }
    }

    fn state_of(&self, id: &str) -> Result<Lifecycle, ApiError> {
        self.shared
            .book()
            .incidents
            .get(id)
            .map(|i| i.state)
            .ok_or_else(|| api_err(404, format!("no incident {id}")))
    }

    fn check_ackable(&self, id: &str) -> Result<(), ApiError> {
        let book = self.shared.book();
        let inc = book
            .incidents
            .get(id)
            .ok_or_else(|| api_err(404, format!("no incident {id}")))?;
        match inc.state {
            Lifecycle::Open => Ok(()),
            Lifecycle::Acknowledged => Err(api_err(
                409,
                format!(
                    "incident {id} is already acknowledged{}",
                    inc.acknowledged
                        .as_ref()
                        .map(|(_, by)| format!(" by {by}"))
                        .unwrap_or_default()
                ),
            )),
            Lifecycle::Resolved => Err(api_err(
                409,
                format!("incident {id} is resolved; it cannot be acknowledged"),
            )),
        }
    }

    fn view(&self, id: &str) -> Result<Value, ApiError> {
        let book = self.shared.book();
        book.incidents
            .get(id)
            .map(|i| i.view(&self.shared.oncall, true))
            .ok_or_else(|| api_err(404, format!("no incident {id}")))
    }

    fn link_ack(&mut self, id: String, token: &str, now: i64) -> Result<Value, ApiError> {
        let refuse = |this: &mut Engine,
                      nonce: String,
                      level: String,
                      reason: &str,
                      status: u16,
                      msg: String| {
            this.push(
                Update::AckTokenUsed {
                    incident: id.clone(),
                    token: nonce,
                    level,
                    accepted: false,
                    reason: Some(reason.to_owned()),
                },
                now,
                None,
            );
            Err(api_err(status, msg))
        };
        let t = match self.key.verify(token, &id, now / 1000) {
            Ok(t) => t,
            Err(e) => {
                let status = match e {
                    TokenError::Expired => 410,
                    _ => 403,
                };
                return refuse(
                    self,
                    String::new(),
                    String::new(),
                    e.code(),
                    status,
                    e.to_string(),
                );
            }
        };
        if self.shared.book().used_tokens.contains_key(&t.nonce) {
            return refuse(
                self,
                t.nonce,
                t.level,
                "used",
                409,
                "this acknowledgement link was already used".into(),
            );
        }
        if let Err(e) = self.check_ackable(&id) {
            let reason = if e.status == 404 {
                "unknown_incident"
            } else {
                "not_open"
            };
            return refuse(self, t.nonce, t.level, reason, e.status, e.message);
        }
        self.push(
            Update::AckTokenUsed {
                incident: id.clone(),
                token: t.nonce,
                level: t.level.clone(),
                accepted: true,
                reason: None,
            },
            now,
            None,
        );
        self.push(
            Update::Acknowledged {
                incident: id.clone(),
                by: format!("link:{}", t.level),
                via: "link".into(),
                note: None,
                assignee: None,
            },
            now,
            None,
        );
        self.view(&id)
    }

    fn on_attempt(&mut self, a: AttemptMsg) {
        let at = now_ms();
        if a.kind == RoundKind::First
            && a.attempt.outcome == super::notify::Outcome::Delivered
            && let Some(since) = self.first_alert_at.get(&a.incident)
        {
            let channel = match a.attempt.channel {
                super::notify::Channel::Email => "email",
                super::notify::Channel::Webhook => "webhook",
            };
            self.metrics
                .response
                .latency
                .with_label_values(&[channel])
                .observe(at.saturating_sub(*since).max(0) as f64 / 1000.0);
        }
        self.push(
            Update::Notified {
                incident: a.incident,
                round: a.round,
                round_kind: a.kind,
                round_at: a.round_at,
                step: a.step,
                level: a.level,
                channel: serde_json::to_value(a.attempt.channel)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                target: a.attempt.target,
                attempt: a.attempt.attempt,
                outcome: serde_json::to_value(a.attempt.outcome)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                detail: a.attempt.detail,
                elapsed_ms: a.attempt.elapsed_ms,
            },
            at,
            None,
        );
    }

    fn on_round_done(&mut self, id: &str, round: u32) {
        self.in_flight.remove(id);
        // The first round is over: later rounds are not first notifications.
        self.first_alert_at.remove(id);
        if let Some(inc) = self.shared.book().incidents.get_mut(id)
            && inc.progress.as_ref().is_some_and(|p| p.round == round)
        {
            inc.progress = None;
        }
        self.touch(id);
    }

    /// Acts on every incident whose time has come, and on silence ends.
    fn run_due(&mut self, now: i64) {
        let expired: Vec<String> = self
            .shared
            .book()
            .silences
            .iter()
            .filter(|s| s.record.ends_at.unix_ms() <= now)
            .map(|s| s.id().to_owned())
            .collect();
        for id in expired {
            self.push(Update::SilenceExpired { silence: id }, now, None);
        }
        while let Some((at, id)) = self.sched.first().cloned() {
            if at > now {
                break;
            }
            self.sched.remove(&(at, id.clone()));
            let Some((_, due)) = self.sched_of.remove(&id) else {
                continue;
            };
            self.act(&id, due, now);
            self.touch(&id);
        }
    }

    fn act(&mut self, id: &str, due: Due, now: i64) {
        let Some(inc) = self.shared.book().incidents.get(id).cloned() else {
            return;
        };
        let Some(pb) = self.playbooks.get(&inc.key.playbook).cloned() else {
            return;
        };
        match due {
            Due::ResolveQuiet => {
                self.push(
                    Update::Resolved {
                        incident: id.to_owned(),
                        by: SERVICE_ACTOR.into(),
                        reason: "quiet".into(),
                        note: pb
                            .resolve_after
                            .map(|d| format!("no new alert for {}", short_duration(d))),
                    },
                    now,
                    None,
                );
            }
            Due::Escalate => {
                let levels = &self.shared.oncall.levels;
                let from = inc.level_index.min(levels.len().saturating_sub(1));
                let to = (from + 1).min(levels.len().saturating_sub(1));
                let name = |i: usize| levels.get(i).map(|l| l.name.clone()).unwrap_or_default();
                self.push(
                    Update::Escalated {
                        incident: id.to_owned(),
                        from: name(from),
                        to: name(to),
                        to_index: to,
                        reason: if from == to {
                            "ack_timeout_last_level".into()
                        } else {
                            "ack_timeout".into()
                        },
                    },
                    now,
                    None,
                );
            }
            Due::Notify(kind) => {
                let round = inc.rounds + 1;
                if let Some(i) = self.shared.book().incidents.get_mut(id) {
                    i.begin_round(round, kind, now, false);
                }
                let job = self.prepare(&inc, &pb, round, kind, now, 0);
                self.in_flight.insert(id.to_owned());
                self.rounds.push(job);
            }
            Due::Resume => {
                let Some(p) = inc.progress.clone() else {
                    return;
                };
                if let Some(i) = self.shared.book().incidents.get_mut(id)
                    && let Some(pp) = i.progress.as_mut()
                {
                    pp.from_replay = false;
                }
                let mut resumed = inc.clone();
                resumed.level_index = p.level_index;
                let job = self.prepare(&resumed, &pb, p.round, p.kind, p.round_at, p.done);
                if job.steps.is_empty() {
                    self.on_round_done(id, p.round);
                    return;
                }
                tracing::info!(
                    incident = id,
                    round = p.round,
                    steps = job.steps.len(),
                    "finishing a notification round the previous run started"
                );
                self.in_flight.insert(id.to_owned());
                self.rounds.push(job);
            }
        }
    }

    /// Builds the messages of a round (steps in `done` are skipped).
    fn prepare(
        &self,
        inc: &Incident,
        pb: &Playbook,
        round: u32,
        kind: RoundKind,
        round_at: i64,
        done: u32,
    ) -> RoundJob {
        let levels = &self.shared.oncall.levels;
        let current = levels.get(inc.level_index);
        let current_name = current.map(|l| l.name.clone()).unwrap_or_default();
        let expires = (now_ms() + ms(self.shared.config.token_ttl)) / 1000;
        let base = self.message_base(inc, pb, kind);
        let mut steps = Vec::new();
        for (i, step) in pb.notify.iter().enumerate() {
            let i = i as u32;
            if done & (1u32 << i) != 0 {
                continue;
            }
            let level_for = |r: &Recipient| match r {
                Recipient::Current => current,
                Recipient::Level(n) => levels.iter().find(|l| &l.name == n),
                _ => None,
            };
            let prepared = match step {
                NotifyStep::Email { to, subject, body } => {
                    let (addrs, level_name) = match to {
                        Recipient::Addresses(a) => (a.clone(), current_name.clone()),
                        r => match level_for(r) {
                            Some(l) => (l.emails.clone(), l.name.clone()),
                            None => (Vec::new(), current_name.clone()),
                        },
                    };
                    if addrs.is_empty() {
                        Prepared::Unroutable {
                            channel: super::notify::Channel::Email,
                            reason: if levels.is_empty() {
                                "no [[oncall.levels]] configured".into()
                            } else {
                                format!("on-call level {level_name:?} has no emails")
                            },
                        }
                    } else {
                        let msg = AlertMessage {
                            level: level_name.clone(),
                            ack_link: self.ack_link(&inc.id, &level_name, expires),
                            ..base.clone()
                        };
                        Prepared::Email(EmailMessage {
                            to: addrs,
                            subject: msg.render(subject).replace(['\r', '\n'], " "),
                            text: tidy(&msg.render(body)),
                            html: Some(msg.html()),
                        })
                    }
                }
                NotifyStep::Webhook { to } => {
                    let (url, secret, level_name) = match to {
                        Recipient::Url { url, secret } => {
                            (url.clone(), secret.clone(), current_name.clone())
                        }
                        r => match level_for(r) {
                            Some(l) => (
                                l.webhook.clone(),
                                Some(l.webhook_secret.clone()).filter(|s| !s.is_empty()),
                                l.name.clone(),
                            ),
                            None => (String::new(), None, current_name.clone()),
                        },
                    };
                    if url.is_empty() {
                        Prepared::Unroutable {
                            channel: super::notify::Channel::Webhook,
                            reason: format!("on-call level {level_name:?} has no webhook"),
                        }
                    } else {
                        let link = self.ack_link(&inc.id, &level_name, expires);
                        let msg = AlertMessage {
                            level: level_name.clone(),
                            ack_link: link.clone(),
                            ..base.clone()
                        };
                        let mut incident = inc.view(&self.shared.oncall, false);
                        incident["group"] = json!(masked_group(inc, pb.include_phi));
                        let mut body = json!({
                            "kind": kind.as_str(),
                            "round": round,
                            "level": level_name,
                            "incident": incident,
                            "latest_alert": inc.last_alert.as_ref().map(|a| json!({
                                "first_time": ms_text(a.first_time),
                                "last_time": ms_text(a.last_time),
                                "count": a.count,
                                "event_indices": a.event_indices,
                            })),
                            "ack_url": link,
                        });
                        if let Value::Object(fields) = &mut body {
                            fields.extend(msg.json_fields());
                        }
                        Prepared::Webhook(WebhookRequest { url, secret, body })
                    }
                }
            };
            steps.push((i, prepared));
        }
        // A level configures the channels it wants (emails, a webhook, or
        // both): steps for a channel it lacks are skipped. Only a round
        // with nothing to send at all is recorded, as a failed attempt.
        if steps
            .iter()
            .any(|(_, p)| !matches!(p, Prepared::Unroutable { .. }))
        {
            steps.retain(|(_, p)| !matches!(p, Prepared::Unroutable { .. }));
        } else {
            steps.truncate(1);
        }
        RoundJob {
            incident: inc.id.clone(),
            round,
            kind,
            round_at,
            level: current_name,
            steps,
        }
    }

    /// What every message of a round says (the level and ack link are
    /// filled per step); the latest alert's first events were read by the
    /// ledger follower.
    fn message_base(&self, inc: &Incident, pb: &Playbook, kind: RoundKind) -> AlertMessage {
        let a = inc.last_alert.as_ref();
        let events: Vec<EventLine> = a
            .map(|a| a.first_events.as_slice())
            .unwrap_or_default()
            .iter()
            .filter_map(|(i, bytes)| {
                let entry = Entry::from_ledger_bytes(bytes).ok()?;
                Some(EventLine::of(*i, &entry, pb.include_phi))
            })
            .collect();
        let group = masked_group(inc, pb.include_phi);
        let span = a.map_or((inc.opened_at, inc.last_alert_at), |a| {
            (a.first_time, a.last_time)
        });
        let count = a.map_or(inc.alerts, |a| a.count);
        AlertMessage {
            title: inc.title.clone(),
            severity: inc.severity.clone(),
            rule_id: inc.key.rule_id.clone(),
            description: self
                .playbooks
                .rule_description(&inc.key.rule_id)
                .map(str::to_owned),
            incident: inc.id.clone(),
            playbook: inc.key.playbook.clone(),
            opened_ms: inc.opened_at,
            round: kind.as_str().to_owned(),
            level: String::new(),
            facts: Facts::gather(&group, &events, count, inc.alerts, span),
            group,
            events,
            event_indices: a.map(|a| a.event_indices.clone()).unwrap_or_default(),
            explanations_tried: a.map(|a| a.explanations_tried.clone()).unwrap_or_default(),
            runbook: pb.runbook.clone(),
            incident_link: format!("{}/#/incidents/{}", self.shared.config.public_url, inc.id),
            ack_link: String::new(),
            now_ms: now_ms(),
        }
    }

    fn ack_link(&self, incident: &str, level: &str, expires: i64) -> String {
        format!(
            "{}/v1/incidents/{incident}/ack?token={}",
            self.shared.config.public_url,
            self.key.mint(incident, level, expires)
        )
    }

    /// Appends what was decided, then answers and starts rounds.
    async fn flush(&mut self) {
        let out = std::mem::take(&mut self.out);
        let mut failed = None;
        for chunk in out.chunks(MAX_BATCH) {
            let batch = IngestBatch {
                via: service_via(),
                items: chunk
                    .iter()
                    .map(|(u, at)| {
                        let t = Timestamp::from_unix_ms(*at).unwrap_or_else(|_| Timestamp::now());
                        Item::Event(u.to_event(t))
                    })
                    .collect(),
            };
            if let Err(e) = self.pipeline.submit(batch).await {
                tracing::error!(error = %e, events = chunk.len(), "could not record incident updates");
                failed = Some(e.to_string());
            }
        }
        for (reply, r) in self.replies.drain(..) {
            let r = match (&failed, r) {
                (Some(e), Ok(_)) => Err(api_err(503, format!("could not record the change: {e}"))),
                (_, r) => r,
            };
            let _ = reply.send(r);
        }
        for job in std::mem::take(&mut self.rounds) {
            self.spawn_round(job);
        }
    }

    fn spawn_round(&mut self, job: RoundJob) {
        let (mailer, webhooks, sends) = (
            self.mailer.clone(),
            self.webhooks.clone(),
            self.sends.clone(),
        );
        let (attempts, done) = (self.attempt_tx.clone(), self.done_tx.clone());
        self.tasks.spawn(async move {
            let Ok(_permit) = sends.acquire_owned().await else {
                return;
            };
            for (step, prepared) in job.steps {
                let attempts = attempts.clone();
                let (incident, level) = (job.incident.clone(), job.level.clone());
                let mut record = move |attempt: Attempt| {
                    let _ = attempts.send(AttemptMsg {
                        incident: incident.clone(),
                        round: job.round,
                        kind: job.kind,
                        round_at: job.round_at,
                        step,
                        level: level.clone(),
                        attempt,
                    });
                };
                let r = match &prepared {
                    Prepared::Email(m) => mailer.send(m, &mut record).await,
                    Prepared::Webhook(w) => webhooks.send(w, &mut record).await,
                    Prepared::Unroutable { channel, reason } => {
                        record(Attempt {
                            channel: *channel,
                            target: String::new(),
                            attempt: 1,
                            outcome: super::notify::Outcome::Failed,
                            detail: reason.clone(),
                            elapsed_ms: 0,
                        });
                        Ok(())
                    }
                };
                if let Err(e) = r {
                    tracing::warn!(incident = %job.incident, round = job.round, step, error = %e, "notification failed");
                }
            }
            let _ = done.send((job.incident, job.round));
        });
    }
}

fn ms_text(ms: i64) -> Value {
    Value::String(ms_string(ms))
}

fn ms_string(ms: i64) -> String {
    Timestamp::from_unix_ms(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// Minimum necessary: patient fields shown as `[masked]` unless the
/// playbook opts in (`include_phi: true`).
fn masked_group(inc: &Incident, include_phi: bool) -> std::collections::BTreeMap<String, String> {
    inc.key
        .group
        .iter()
        .map(|(k, v)| {
            let phi = k == "patient" || k.starts_with("patient.");
            (
                k.clone(),
                if phi && !include_phi {
                    "[masked]".to_owned()
                } else {
                    v.clone()
                },
            )
        })
        .collect()
}

pub fn silence_view(s: &SilenceRecord) -> Value {
    json!({
        "id": s.id,
        "matchers": s.matchers,
        "starts_at": s.starts_at.to_string(),
        "ends_at": s.ends_at.to_string(),
        "created_by": s.created_by,
        "comment": s.comment,
    })
}

/// `90s` -> `1m30s`-free short forms: the largest whole unit.
fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    if d.subsec_millis() != 0 || s == 0 {
        format!("{}ms", d.as_millis())
    } else if s.is_multiple_of(86_400) {
        format!("{}d", s / 86_400)
    } else if s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_byte_filter_finds_alerts_and_updates_only() {
        assert!(interesting(
            br#"{"id":"x","time":"t","category":"system","action":"alert","outcome":"success"}"#
        ));
        assert!(interesting(
            br#"{"time":"t","category":"system","action":"incident_update","outcome":"success"}"#
        ));
        assert!(!interesting(
            br#"{"time":"t","category":"system","action":"alerts","outcome":"success"}"#
        ));
        assert!(!interesting(
            br#"{"time":"t","category":"auth","action":"alert","outcome":"success"}"#
        ));
    }
}

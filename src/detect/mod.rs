//! Detection in the running service: a consumer of the ledger, like the
//! indexer, that runs the rules (`crate::rules`) over every durable entry
//! and appends what fires as `system/alert` events through the pipeline.
//!
//! ```text
//!  ledger (durable entries) ─> LedgerFollower ─> EntryView::from_ledger_bytes ─> Engine::process_view
//!        ^                                                                        │ AlertCandidate
//!        │                                 alert id (rule, group, first event) <──┘
//!        └── pipeline.submit(system/alert) <── Deduplicator (rule, group, window)
//! ```
//!
//! - One dedicated thread (blocking reads; it reaches the async pipeline
//!   through the runtime handle). It skips the service's own alert events,
//!   so alerts never feed back into detection.
//! - Event time is per source (`rules/engine/sources.rs`): the engine's
//!   clock is the slowest active source's, the service's own entries are
//!   no source. When no event arrives, arrival time is moved on a timer
//!   (the newest `received` plus the wall time since), so quiet sources
//!   move on and idle ones stop holding the clock back, and correlation
//!   alerts are not held back by the lateness buffer. Late hits dropped
//!   past `late_retention` are reported as a `system/detection_late_dropped`
//!   warning event per rule and source.
//! - On start it rebuilds state from the ledger's recent window (the
//!   segments whose newest event time is inside `replay_window`): alerts
//!   found there seed the suppression window and the set of known alert ids,
//!   and what the window's events fire is emitted unless its id is already
//!   stored, so an alert the previous run did not get to append (killed
//!   mid-window) is appended now, and nothing is appended twice.
//! - The rules directory is polled for changes; a set that fails to load is
//!   logged (file:line:reason) and counted, the previous one stays active; a
//!   valid one replaces the engine after a silent replay of the window.

pub mod alert;
pub mod snapshot;

/// `action` of the warning event for late hits not applied.
pub const LATE_DROPPED_ACTION: &str = "detection_late_dropped";

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Deserializer};
use thiserror::Error;

use crate::event::{Category, Entry, Event, Outcome, Timestamp};
use crate::index::{FollowError, LedgerFollower};
use crate::ledger::log::{LedgerPaths, list_segments};
use crate::ledger::segment::{self, Footer};
use crate::ledger::writer::WriterStatus;
use crate::pipeline::silence::duration_text;
use crate::pipeline::{IngestBatch, Item, Metrics, Pipeline};
use crate::rules::{
    AlertCandidate, Deduplicator, Engine, EngineConfig, EntryView, LoadError, MAX_RULE_FILES,
    RuleSet,
};
use alert::{Alert, as_candidate, is_alert_entry, is_alert_view, service_via};

/// `[rules]`: detection rules and how the service runs them.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// Folder of Sigma rule files (`.yml`/`.yaml`, recursively). Missing: no
    /// rules (it is picked up when it appears).
    pub dir: PathBuf,
    /// How often the folder is checked for changes, in seconds.
    pub reload_seconds: u64,
    /// How far behind its source's newest event (event time) an event may
    /// arrive and still be correlated in order; correlation alerts wait
    /// this long.
    #[serde(with = "duration_text")]
    pub allowed_lateness: Duration,
    /// A source (`source.system`) with nothing new for this long stops
    /// holding the detector's clock back (event time is per source: the
    /// clock is the slowest active source's).
    #[serde(with = "duration_text")]
    pub source_idle: Duration,
    /// Hits that arrive later than the clock are still applied to their
    /// correlation state while it is this recent (their alerts are marked
    /// `late`); older ones are dropped, counted per rule and source and
    /// reported as a `system/detection_late_dropped` event.
    #[serde(with = "duration_text")]
    pub late_retention: Duration,
    /// One alert per rule and group key (correlation rules) within this much
    /// event time; later firings are dropped and counted
    /// (`sealtrail_alerts_suppressed_total`). Detection rules' alerts (no
    /// group) are never suppressed: each event is its own case.
    #[serde(with = "duration_text")]
    pub suppression: Duration,
    /// How much of the ledger (event time before now) is replayed on start
    /// and reload to rebuild correlation state. Default: the rule set's
    /// longest timespan plus `allowed_lateness`.
    #[serde(deserialize_with = "opt_duration")]
    pub replay_window: Option<Duration>,
    /// A detection state snapshot (`DATA/snapshots/detection.snapshot`) is
    /// written after this many entries were read since the last one, so a
    /// restart replays only what follows it. 0: no snapshots (every start
    /// replays the window).
    pub snapshot_entries: u64,
    /// ... or after this much time with anything new read; and on a clean
    /// shutdown.
    #[serde(with = "duration_text")]
    pub snapshot_interval: Duration,
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            dir: PathBuf::from("rules"),
            reload_seconds: 5,
            allowed_lateness: Duration::from_secs(2),
            source_idle: Duration::from_secs(300),
            late_retention: Duration::from_secs(3600),
            suppression: Duration::from_secs(3600),
            replay_window: None,
            snapshot_entries: 100_000,
            snapshot_interval: Duration::from_secs(300),
        }
    }
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration_text::deserialize(d).map(Some)
}

impl RulesConfig {
    pub fn validate(&self) -> Result<(), (&'static str, &'static str)> {
        if self.reload_seconds == 0 {
            return Err(("rules.reload_seconds", "must be at least 1"));
        }
        if self.allowed_lateness > Duration::from_secs(3600) {
            return Err(("rules.allowed_lateness", "must be at most 1h"));
        }
        if self.source_idle < Duration::from_secs(1)
            || self.source_idle > Duration::from_secs(86_400)
        {
            return Err(("rules.source_idle", "must be between 1s and 24h"));
        }
        if self.late_retention > Duration::from_secs(7 * 86_400) {
            return Err(("rules.late_retention", "must be at most 7d"));
        }
        if self.suppression > Duration::from_secs(30 * 86_400) {
            return Err(("rules.suppression", "must be at most 30d"));
        }
        if self.snapshot_interval < Duration::from_secs(1) {
            return Err(("rules.snapshot_interval", "must be at least 1s"));
        }
        if self
            .replay_window
            .is_some_and(|w| w > Duration::from_secs(7 * 86_400))
        {
            return Err(("rules.replay_window", "must be at most 7d"));
        }
        Ok(())
    }

    fn engine(&self) -> EngineConfig {
        EngineConfig {
            allowed_lateness_ms: ms(self.allowed_lateness),
            source_idle_ms: ms(self.source_idle),
            late_retention_ms: ms(self.late_retention),
            ..EngineConfig::default()
        }
    }

    /// What detection state depends on besides the rules and the ledger
    /// (in the snapshot's rules digest).
    fn state_settings(&self) -> String {
        format!(
            "state_version={} snapshot_version={} {:?} suppression_ms={} dedup_keys={MAX_DEDUP_KEYS} known_ids={MAX_KNOWN_IDS}",
            crate::rules::ENGINE_STATE_VERSION,
            snapshot::VERSION,
            self.engine(),
            ms(self.suppression)
        )
    }

    /// The rules digest of a snapshot (`None`: the files changed while
    /// they were read, so none is written until the next reload).
    fn digest_around(&self, load: impl FnOnce() -> Loaded) -> (Loaded, Option<[u8; 32]>) {
        let before = snapshot::rules_digest(&self.dir, &self.state_settings());
        let loaded = load();
        let after = snapshot::rules_digest(&self.dir, &self.state_settings());
        let digest = before.filter(|b| Some(*b) == after);
        (loaded, digest)
    }

    fn replay_ms(&self, rules: &RuleSet) -> i64 {
        match self.replay_window {
            Some(w) => ms(w),
            None => rules
                .max_timespan_ms()
                .saturating_add(ms(self.allowed_lateness)),
        }
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[derive(Debug, Error)]
pub enum DetectError {
    #[error("rules in {dir}: {}", join_errors(.errors))]
    Rules {
        dir: PathBuf,
        errors: Vec<LoadError>,
    },
    #[error("reading the ledger: {0}")]
    Follow(#[from] FollowError),
    #[error("{path}: {reason}")]
    Segment { path: PathBuf, reason: String },
    #[error("starting the detection thread: {0}")]
    Spawn(std::io::Error),
}

fn join_errors(errors: &[LoadError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Most entries read per round, so a backlog is worked through in steps and
/// a stop request or a reload is seen.
const MAX_PER_ROUND: usize = 10_000;
/// Poll interval when caught up: bounds how long an alert waits once its
/// event is durable.
const POLL: Duration = Duration::from_millis(50);
/// Entries between two position reports during the start-up replay.
const POSITION_EVERY: u64 = 4096;
/// `received` times of the most recent entries, for the latency histogram.
const RECENT_RECEIVED: usize = 65_536;
/// Alert ids remembered to drop re-firings (after a restart or reload).
const MAX_KNOWN_IDS: usize = 100_000;
/// Suppression keys (rule, group) remembered.
const MAX_DEDUP_KEYS: usize = 100_000;
/// Sealed segments looked at, newest first, to find where a replay starts.
const MAX_SCAN_SEGMENTS: usize = 1_000_000;

/// The running consumer; `stop` ends it after a last round.
pub struct Detector {
    stop: SyncSender<()>,
    thread: JoinHandle<Result<(), DetectError>>,
}

/// What the detector needs from the service.
pub struct DetectContext {
    pub data_dir: PathBuf,
    pub writer: Arc<WriterStatus>,
    pub pipeline: Pipeline,
    pub metrics: Arc<Metrics>,
    pub runtime: tokio::runtime::Handle,
}

/// The rule set a detector starts with (see [`load_rules`]).
pub struct InitialRules {
    rules: RuleSet,
    fingerprint: Option<Fingerprint>,
    digest: Option<[u8; 32]>,
}

impl InitialRules {
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// Loads the rules folder for start-up: an invalid set is an error naming
/// every file:line:column: reason; a missing folder means no rules. Blocking.
pub fn load_rules(config: &RulesConfig) -> Result<InitialRules, DetectError> {
    let (loaded, digest) = config.digest_around(|| load(&config.dir));
    match loaded {
        Loaded::Missing => {
            tracing::info!(dir = %config.dir.display(), "no rules folder: detection has no rules until it appears");
            Ok(InitialRules {
                rules: RuleSet::default(),
                fingerprint: None,
                digest: None,
            })
        }
        Loaded::Set(rules, fp) => {
            tracing::info!(dir = %config.dir.display(), rules = rules.len(), "detection rules loaded");
            Ok(InitialRules {
                rules,
                fingerprint: Some(fp),
                digest,
            })
        }
        Loaded::Invalid(errors) => Err(DetectError::Rules {
            dir: config.dir.clone(),
            errors,
        }),
    }
}

impl Detector {
    /// Starts the consumer thread with the rules from [`load_rules`].
    pub fn start(
        config: &RulesConfig,
        initial: InitialRules,
        ctx: DetectContext,
    ) -> Result<Detector, DetectError> {
        ctx.metrics.detect.rules.set(initial.rules.len() as i64);
        let (stop, stop_rx) = std::sync::mpsc::sync_channel(1);
        let config = config.clone();
        let thread = std::thread::Builder::new()
            .name("detect".into())
            .spawn(move || {
                let mut c = Consumer::new(config, ctx, initial.rules, initial.fingerprint);
                c.digest = initial.digest;
                let r = c.run(&stop_rx);
                if let Err(e) = &r {
                    tracing::error!(error = %e, "detection stopped");
                }
                r
            })
            .map_err(DetectError::Spawn)?;
        Ok(Detector { stop, thread })
    }

    /// Asks for a last round (up to the durable end) and waits. Blocking.
    pub fn stop(self) -> Result<(), DetectError> {
        let _ = self.stop.try_send(());
        match self.thread.join() {
            Ok(r) => r,
            Err(_) => {
                tracing::error!("detection thread panicked");
                Ok(())
            }
        }
    }
}

/// The rule files' names, sizes and modification times: a change in any
/// means reload.
pub(crate) type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

enum Loaded {
    Missing,
    Set(RuleSet, Fingerprint),
    Invalid(Vec<LoadError>),
}

fn load(dir: &Path) -> Loaded {
    let Some(fp) = fingerprint(dir) else {
        return Loaded::Missing;
    };
    match RuleSet::load_dir(dir) {
        Ok(set) => Loaded::Set(set, fp),
        Err(errors) => Loaded::Invalid(errors),
    }
}

/// `None` when `dir` does not exist. Bounded like the loader (depth, files).
pub(crate) fn fingerprint(dir: &Path) -> Option<Fingerprint> {
    if !dir.is_dir() {
        return None;
    }
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_owned(), 0usize)];
    while let Some((d, depth)) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            out.push((d, u64::MAX, None));
            continue;
        };
        for e in rd.flatten() {
            if out.len() > MAX_RULE_FILES {
                return Some(out);
            }
            let path = e.path();
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                // Playbooks are the response engine's (it watches them).
                if depth == 0 && e.file_name() == crate::rules::PLAYBOOKS_DIR {
                    continue;
                }
                if depth < 16 {
                    stack.push((path, depth + 1));
                }
            } else if path.extension().is_some_and(|x| x == "yml" || x == "yaml") {
                out.push((path, meta.len(), meta.modified().ok()));
            }
        }
    }
    out.sort();
    Some(out)
}

/// Where a replay of the event time since `since_ms` starts: the first
/// index of the oldest sealed segment (scanning back from the newest) whose
/// newest event time is at or after `since_ms`; the open segment's first
/// index when no sealed one is. Reads one footer per segment looked at.
pub fn replay_start(data_dir: &Path, since_ms: i64) -> Result<u64, DetectError> {
    let dir = LedgerPaths::new(data_dir).segments;
    let (mut sealed, _) = list_segments(&dir).map_err(FollowError::from)?;
    sealed.sort_unstable();
    let mut start = None;
    for &n in sealed.iter().rev().take(MAX_SCAN_SEGMENTS) {
        let path = dir.join(segment::file_name(n, true));
        let record = std::fs::File::open(&path)
            .map_err(|e| e.to_string())
            .and_then(|mut f| Footer::read(&path, &mut f).map_err(|e| e.to_string()))
            .map_err(|reason| DetectError::Segment {
                path: path.clone(),
                reason,
            })?
            .record;
        if record.max_time_ms < since_ms {
            return Ok(start.unwrap_or_else(|| record.end_index()));
        }
        start = Some(record.first_index);
    }
    // Every sealed segment is in the window (or there are none).
    Ok(start.unwrap_or(0))
}

/// Ring of insertion-ordered ids with a cap.
#[derive(Default)]
struct KnownIds {
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl KnownIds {
    fn from_ordered(ids: Vec<String>) -> KnownIds {
        let mut k = KnownIds::default();
        for id in ids {
            k.insert(id);
        }
        k
    }

    fn insert(&mut self, id: String) {
        if self.set.insert(id.clone()) {
            self.order.push_back(id);
            if self.order.len() > MAX_KNOWN_IDS
                && let Some(old) = self.order.pop_front()
            {
                self.set.remove(&old);
            }
        }
    }
}

struct Consumer {
    config: RulesConfig,
    ctx: DetectContext,
    engine: Engine,
    fingerprint: Option<Fingerprint>,
    dedup: Deduplicator,
    known: KnownIds,
    follower: LedgerFollower,
    /// Logs a lasting read failure once, not per retry.
    read_outage: crate::ledger::health::Outage,
    buf: Vec<u8>,
    candidates: Vec<AlertCandidate>,
    /// (ledger index, received ms) of recent entries, ascending.
    recent: VecDeque<(u64, i64)>,
    /// Newest event time processed, and when it was processed.
    newest: Option<(i64, Instant)>,
    next_reload: Instant,
    /// Digest of the active rules for snapshots (`None`: none written).
    digest: Option<[u8; 32]>,
    /// Ledger position (next index) the last snapshot covers, and when it
    /// was written.
    snapshot_at: (u64, Instant),
    /// An alert append failed since the start: the state holds alerts the
    /// ledger does not, so no snapshot is written (the next start replays
    /// and appends them).
    emit_failed: bool,
    /// The snapshot write under way (checksum, file, fsyncs).
    writer: Option<JoinHandle<()>>,
}

fn now_ms() -> i64 {
    Timestamp::now().unix_ms()
}

impl Consumer {
    fn new(
        config: RulesConfig,
        ctx: DetectContext,
        rules: RuleSet,
        fingerprint: Option<Fingerprint>,
    ) -> Consumer {
        let engine = Engine::new(Arc::new(rules), config.engine());
        let follower = LedgerFollower::new(&ctx.data_dir, 0);
        Consumer {
            read_outage: crate::ledger::health::Outage::new("detection reading the ledger"),
            dedup: Deduplicator::new(ms(config.suppression), MAX_DEDUP_KEYS),
            next_reload: Instant::now() + Duration::from_secs(config.reload_seconds),
            config,
            ctx,
            engine,
            fingerprint,
            known: KnownIds::default(),
            follower,
            buf: Vec::new(),
            candidates: Vec::new(),
            recent: VecDeque::new(),
            newest: None,
            digest: None,
            snapshot_at: (0, Instant::now()),
            emit_failed: false,
            writer: None,
        }
    }

    fn durable(&self) -> u64 {
        self.ctx.writer.next_index.load(Ordering::Acquire)
    }

    fn run(&mut self, stop: &Receiver<()>) -> Result<(), DetectError> {
        if !self.start_from_snapshot()? {
            self.start_from_window()?;
        }
        let mut wait = POLL;
        loop {
            let stopping = match stop.recv_timeout(wait) {
                Ok(()) | Err(RecvTimeoutError::Disconnected) => true,
                Err(RecvTimeoutError::Timeout) => false,
            };
            if !stopping && Instant::now() >= self.next_reload {
                if let Err(e) = self.reload_if_changed() {
                    // Out of handles or a read failing: keep the running
                    // rules and try the reload again next time.
                    tracing::error!(error = %e, "rule reload failed; the previous rules stay active");
                    self.fingerprint = None;
                }
                self.next_reload = Instant::now() + Duration::from_secs(self.config.reload_seconds);
            }
            let limit = self.durable();
            let max = if stopping { usize::MAX } else { MAX_PER_ROUND };
            let mut read = 0;
            let mut failed = false;
            while read < max {
                match self.follower.next_entry(limit, &mut self.buf) {
                    Ok(Some(i)) => {
                        self.evaluate(i);
                        read += 1;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        // Retried from the same index after a pause (a
                        // segment being compacted or sealed underneath).
                        // Logged once, then once a minute (not per retry).
                        self.read_outage.failed(&e);
                        let at = self.follower.position();
                        self.follower = LedgerFollower::new(&self.ctx.data_dir, at);
                        failed = true;
                        break;
                    }
                }
            }
            if !failed {
                self.read_outage.succeeded();
            }
            if read == 0
                && let Some((t, at)) = self.newest
            {
                // Idle: arrival (the `received` clock) moves on with the
                // wall clock; quiet sources with it, idle ones drop out.
                let now = t.saturating_add(ms(at.elapsed()));
                self.engine.advance(now, &mut self.candidates);
            }
            self.emit();
            self.report_late_drops();
            self.publish_stats();
            self.publish_position();
            self.snapshot_if_due(stopping);
            if stopping {
                return Ok(());
            }
            wait = if failed {
                Duration::from_secs(1)
            } else if read >= MAX_PER_ROUND {
                Duration::ZERO
            } else {
                POLL
            };
        }
    }

    /// Runs one entry through the rules (not the service's own alerts).
    fn evaluate(&mut self, index: u64) {
        if self.engine.rules().is_empty() {
            return;
        }
        // The rules read the stored bytes through a borrowed view: no owned
        // copy of the entry is built (rules/view.rs).
        let entry = match EntryView::from_ledger_bytes(&self.buf) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(index, error = %e, "detection skipped an unreadable entry");
                return;
            }
        };
        if is_alert_view(&entry) {
            return;
        }
        self.ctx.metrics.detect.evaluated.inc();
        self.engine
            .process_view(index, &entry, &mut self.candidates);
        self.note(index, entry.received.unix_ms());
    }

    fn note(&mut self, index: u64, received_ms: i64) {
        self.recent.push_back((index, received_ms));
        if self.recent.len() > RECENT_RECEIVED {
            self.recent.pop_front();
        }
        if self.newest.is_none_or(|(n, _)| received_ms >= n) {
            self.newest = Some((received_ms, Instant::now()));
        }
    }

    /// Rebuilds state from the recent window and appends what the previous
    /// run did not (see the module docs).
    fn start_from_window(&mut self) -> Result<(), DetectError> {
        let end = self.durable();
        if self.engine.rules().is_empty() {
            self.follower = LedgerFollower::new(&self.ctx.data_dir, end);
            self.publish_position();
            return Ok(());
        }
        let window = self.config.replay_ms(self.engine.rules());
        let start = replay_start(&self.ctx.data_dir, now_ms().saturating_sub(window))?.min(end);
        if start > 0 {
            // Older entries are not replayed (relation rules warm up).
            self.engine.set_partial_history();
        }
        let started = Instant::now();
        let stored = self.replay_range(start, end)?;
        tracing::info!(
            from = start,
            to = end,
            replayed = end - start,
            alerts_in_window = stored,
            pending = self.candidates.len(),
            took_ms = started.elapsed().as_millis() as u64,
            "detection state rebuilt from the ledger: full replay of the window (no usable snapshot)"
        );
        self.ctx
            .metrics
            .detect
            .snapshot
            .with_label_values(&["replayed_at_start"])
            .set(i64::try_from(end - start).unwrap_or(i64::MAX));
        self.emit();
        Ok(())
    }

    /// Runs the entries `start..end` through the rules (alerts found there
    /// become known and seed the suppression window); the alerts they fire
    /// wait in `candidates`. Returns how many stored alerts it met.
    fn replay_range(&mut self, start: u64, end: u64) -> Result<usize, DetectError> {
        self.follower = LedgerFollower::new(&self.ctx.data_dir, start);
        self.publish_position();
        let mut stored = Vec::new();
        let mut idle_rounds = 0;
        while self.follower.position() < end {
            if self.follower.position().is_multiple_of(POSITION_EVERY) {
                self.publish_position();
            }
            let Some(index) = self.follower.next_entry(end, &mut self.buf)? else {
                // Durable entries are readable; a short wait covers a
                // segment being renamed as it is sealed.
                idle_rounds += 1;
                if idle_rounds > 200 {
                    tracing::warn!(at = self.follower.position(), end, "replay stopped early");
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            let Ok(entry) = Entry::from_ledger_bytes(&self.buf) else {
                continue;
            };
            if is_alert_entry(&entry) {
                if let Some(a) = Alert::from_entry(&entry) {
                    self.known.insert(a.id.clone());
                    stored.push(as_candidate(&a));
                }
                continue;
            }
            self.engine.process(index, &entry, &mut self.candidates);
            self.note(index, entry.received.unix_ms());
        }
        for s in stored.iter().filter(|s| !s.group.is_empty()) {
            self.dedup.admit(s);
        }
        Ok(stored.len())
    }

    /// Starts from the snapshot in the data directory when one is usable
    /// (module `snapshot`: every check), replaying only the entries after
    /// it. `false`: none, or unusable (logged with the reason); the
    /// caller replays the window.
    fn start_from_snapshot(&mut self) -> Result<bool, DetectError> {
        let end = self.durable();
        let metrics = Arc::clone(&self.ctx.metrics);
        let g = &metrics.detect.snapshot;
        g.with_label_values(&["loaded"]).set(0);
        if self.engine.rules().is_empty() || self.config.snapshot_entries == 0 {
            return Ok(false);
        }
        let data = self.ctx.data_dir.clone();
        let started = Instant::now();
        let snap = match snapshot::Snapshot::read(&data) {
            Ok(Some(s)) => s,
            Ok(None) => {
                tracing::info!("no detection snapshot: replaying the window");
                return Ok(false);
            }
            Err(e) => {
                tracing::warn!(error = %e, "detection snapshot unusable: replaying the window");
                return Ok(false);
            }
        };
        let checked = if self.digest != Some(snap.rules) {
            Err(snapshot::SnapshotError::Rules)
        } else {
            snap.check_ledger(&data, end)
        };
        let restored = checked.and_then(|()| {
            let state: snapshot::DetectorState = serde_json::from_slice(&snap.detector)
                .map_err(|e| snapshot::SnapshotError::State(crate::rules::state_json_error(&e)))?;
            let mut engine = Engine::new(Arc::clone(self.engine.rules()), self.config.engine());
            engine
                .restore_state(&snap.engine)
                .map_err(|e| snapshot::SnapshotError::State(e.to_string()))?;
            Ok((engine, state))
        });
        let (engine, state) = match restored {
            Ok(r) => r,
            Err(e) => {
                // Rule changes drop the whole snapshot: the engine's state
                // is laid out by the rule set (correlation and member
                // positions, the explanations' union of every rule), so
                // only a replay gives what a replay gives.
                tracing::warn!(error = %e, position = snap.position,
                    "detection snapshot refused: replaying the window");
                return Ok(false);
            }
        };
        self.engine = engine;
        self.known = KnownIds::from_ordered(state.known);
        self.dedup = state.dedup;
        self.newest = state.newest_received.map(|t| (t, Instant::now()));
        let start = snap.position + 1;
        let replayed = self.replay_range(start, end)?;
        g.with_label_values(&["loaded"]).set(1);
        g.with_label_values(&["replayed_at_start"])
            .set(i64::try_from(end - start).unwrap_or(i64::MAX));
        g.with_label_values(&["position"])
            .set(i64::try_from(start).unwrap_or(i64::MAX));
        g.with_label_values(&["written_unix_seconds"])
            .set(snap.written_ms / 1000);
        self.snapshot_at = (start, Instant::now());
        tracing::info!(
            snapshot_position = snap.position,
            from = start,
            to = end,
            replayed = end - start,
            alerts_after_snapshot = replayed,
            pending = self.candidates.len(),
            took_ms = started.elapsed().as_millis() as u64,
            "detection state loaded from the snapshot; replayed only the entries after it"
        );
        self.emit();
        Ok(true)
    }

    /// Writes a snapshot when enough entries or time passed since the last
    /// (or at a clean stop), from this thread: the state is between
    /// entries, and ingest goes on (it never waits for detection).
    fn snapshot_if_due(&mut self, stopping: bool) {
        let metrics = Arc::clone(&self.ctx.metrics);
        let g = &metrics.detect.snapshot;
        let (at, when) = self.snapshot_at;
        if at > 0 {
            g.with_label_values(&["age_seconds"])
                .set(i64::try_from(when.elapsed().as_secs()).unwrap_or(i64::MAX));
        }
        let position = self.follower.position();
        if self.config.snapshot_entries == 0
            || position <= at
            || self.engine.rules().is_empty()
            || self.emit_failed
        {
            if stopping {
                self.join_snapshot_writer();
            }
            return;
        }
        let due = stopping
            || position - at >= self.config.snapshot_entries
            || when.elapsed() >= self.config.snapshot_interval;
        if !due {
            return;
        }
        if stopping {
            // The last one waits for any write still under way.
            self.join_snapshot_writer();
        } else if self.writer.as_ref().is_some_and(|w| !w.is_finished()) {
            // The previous write is still going: try again next round.
            return;
        }
        let Some(digest) = self.digest else {
            return;
        };
        let data = self.ctx.data_dir.clone();
        if crate::ledger::atrest::keyring_for_ledger_dir(&LedgerPaths::new(&data).ledger).is_some()
        {
            // The state holds patient and user ids; with encryption at
            // rest it is not written in clear (starts replay the window).
            self.snapshot_at = (position, Instant::now());
            return;
        }
        // Serialized here, between two entries (a consistent state); the
        // checksum, write and fsyncs on their own thread, so detection
        // pauses only for the serialization.
        let started = Instant::now();
        let state = self.serialize_state();
        self.snapshot_at = (position, Instant::now());
        let (engine, detector) = match state {
            Ok(s) => s,
            Err(e) => {
                g.with_label_values(&["write_failures"]).inc();
                tracing::warn!(error = %e, "detection snapshot not written");
                return;
            }
        };
        let serialize_ms = started.elapsed().as_millis() as u64;
        let last = position - 1;
        let spawned = std::thread::Builder::new()
            .name("detect-snapshot".into())
            .spawn(move || {
                let g = &metrics.detect.snapshot;
                let result = snapshot::entry_leaf(&data, last).and_then(|leaf| {
                    snapshot::Snapshot {
                        position: last,
                        leaf,
                        rules: digest,
                        written_ms: now_ms(),
                        engine,
                        detector,
                    }
                    .write(&data)
                });
                match result {
                    Ok(bytes) => {
                        g.with_label_values(&["writes"]).inc();
                        g.with_label_values(&["position"])
                            .set(i64::try_from(position).unwrap_or(i64::MAX));
                        g.with_label_values(&["bytes"])
                            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
                        g.with_label_values(&["written_unix_seconds"])
                            .set(now_ms() / 1000);
                        g.with_label_values(&["age_seconds"]).set(0);
                        tracing::info!(
                            position,
                            bytes,
                            serialize_ms,
                            took_ms = started.elapsed().as_millis() as u64,
                            "detection snapshot written"
                        );
                    }
                    Err(e) => {
                        g.with_label_values(&["write_failures"]).inc();
                        tracing::warn!(error = %e, "detection snapshot not written");
                    }
                }
            });
        match spawned {
            Ok(h) => self.writer = Some(h),
            Err(e) => {
                self.ctx
                    .metrics
                    .detect
                    .snapshot
                    .with_label_values(&["write_failures"])
                    .inc();
                tracing::warn!(error = %e, "detection snapshot not written: no thread");
            }
        }
        if stopping {
            self.join_snapshot_writer();
        }
    }

    /// Waits for the snapshot write under way, if any.
    fn join_snapshot_writer(&mut self) {
        if let Some(w) = self.writer.take()
            && w.join().is_err()
        {
            tracing::error!("the detection snapshot writer panicked");
        }
    }

    /// The engine's and the consumer's state, serialized (on this thread).
    fn serialize_state(&self) -> Result<(Vec<u8>, Vec<u8>), snapshot::SnapshotError> {
        let engine = self
            .engine
            .save_state()
            .map_err(|e| snapshot::SnapshotError::State(e.to_string()))?;
        let detector = serde_json::to_vec(&snapshot::DetectorStateRef {
            known: &self.known.order,
            dedup: &self.dedup,
            newest_received: self.newest.map(|(t, _)| t),
        })
        .map_err(|e| snapshot::SnapshotError::State(crate::rules::state_json_error(&e)))?;
        Ok((engine, detector))
    }

    fn reload_if_changed(&mut self) -> Result<(), DetectError> {
        let fp = fingerprint(&self.config.dir);
        if fp == self.fingerprint {
            return Ok(());
        }
        let (loaded, digest) = self.config.digest_around(|| load(&self.config.dir));
        let rules = match loaded {
            Loaded::Missing => RuleSet::default(),
            Loaded::Set(rules, _) => rules,
            Loaded::Invalid(errors) => {
                self.fingerprint = fp;
                self.ctx.metrics.detect.load_errors.inc();
                for e in &errors {
                    tracing::error!(error = %e, "rule set rejected; the previous rules stay active");
                }
                return Ok(());
            }
        };
        self.fingerprint = fp;
        let at = self.follower.position();
        let mut engine = Engine::new(Arc::new(rules), self.config.engine());
        if !engine.rules().is_empty() {
            let since = now_ms().saturating_sub(self.config.replay_ms(engine.rules()));
            let start = replay_start(&self.ctx.data_dir, since)?.min(at);
            if start > 0 {
                engine.set_partial_history();
            }
            let mut follower = LedgerFollower::new(&self.ctx.data_dir, start);
            let mut buf = Vec::new();
            while let Some(index) = follower.next_entry(at, &mut buf)? {
                if let Ok(entry) = EntryView::from_ledger_bytes(&buf)
                    && !is_alert_view(&entry)
                {
                    engine.replay_view(index, &entry);
                }
            }
        }
        tracing::info!(dir = %self.config.dir.display(), rules = engine.rules().len(), "detection rules reloaded");
        self.ctx
            .metrics
            .detect
            .rules
            .set(engine.rules().len() as i64);
        self.engine = engine;
        self.digest = digest;
        Ok(())
    }

    /// Deduplicates the candidates and appends the alerts (durable on return).
    fn emit(&mut self) {
        if self.candidates.is_empty() {
            return;
        }
        let mut alerts = Vec::new();
        for c in self.candidates.drain(..) {
            let last_index = c.event_indices.iter().copied().max();
            let alert = Alert::from_candidate(c);
            if self.known.set.contains(&alert.id) {
                continue;
            }
            // Suppression is by rule and group key: correlations. A detection
            // rule's alerts have no group, and each of its events (say, one
            // break-glass access) is its own case, so they are not suppressed.
            if !alert.group.is_empty() && !self.dedup.admit(&as_candidate(&alert)) {
                self.ctx.metrics.detect.suppressed.inc();
                // The group's values are PHI (patient ids, users): never logged.
                tracing::debug!(rule = %alert.rule_id, alert = %alert.id, "alert suppressed");
                continue;
            }
            self.known.insert(alert.id.clone());
            alerts.push((alert, last_index));
        }
        if alerts.is_empty() {
            return;
        }
        let now = Timestamp::now();
        let batch = IngestBatch {
            via: service_via(),
            items: alerts
                .iter()
                .map(|(a, _)| Item::Event(a.to_event(now)))
                .collect(),
        };
        let pipeline = self.ctx.pipeline.clone();
        match self
            .ctx
            .runtime
            .block_on(async move { pipeline.submit(batch).await })
        {
            Ok(receipt) => {
                let done = now_ms();
                self.ctx.metrics.detect.alerts.inc_by(alerts.len() as u64);
                for ((a, last), outcome) in alerts.iter().zip(&receipt.outcomes) {
                    // Ids and the rule's own title only: the group's values
                    // (patient ids, users) are PHI and stay in the ledger.
                    tracing::warn!(alert = %a.id, rule = %a.rule_id, severity = %a.severity,
                        count = a.count, ?outcome, "alert: {}", a.title);
                    if let Some(received) = last.and_then(|i| self.received_of(i)) {
                        self.ctx
                            .metrics
                            .detect
                            .latency
                            .observe((done - received).max(0) as f64 / 1000.0);
                    }
                }
            }
            Err(e) => {
                self.emit_failed = true;
                tracing::error!(error = %e, alerts = alerts.len(), "could not append alerts");
            }
        }
    }

    fn received_of(&self, index: u64) -> Option<i64> {
        let pos = self.recent.binary_search_by_key(&index, |r| r.0).ok()?;
        self.recent.get(pos).map(|r| r.1)
    }

    /// Late hits too old to apply are never dropped silently: one `system`
    /// warning event per rule and source since the last report.
    fn report_late_drops(&mut self) {
        let drops = self.engine.take_late_drops();
        if drops.is_empty() {
            return;
        }
        let now = Timestamp::now();
        let retention = ms(self.config.late_retention);
        let items = drops
            .into_iter()
            .map(|((rule, source), count)| {
                tracing::warn!(%rule, %source, count, "late events not applied to detection state");
                let mut e = Event::new(now, Category::System, LATE_DROPPED_ACTION, Outcome::Failure);
                e.source = Some(crate::event::Source {
                    system: alert::SERVICE_VIA.to_owned(),
                    host: None,
                });
                e.message = Some(format!(
                    "{count} late hits of rule {rule} from source {source} were more than {retention} ms behind the detector's clock and were not applied"
                ));
                e.attrs = serde_json::json!({
                    "severity": "warning",
                    "rule": rule,
                    "source": source,
                    "count": count,
                    "late_retention_ms": retention,
                })
                .as_object()
                .cloned();
                Item::Event(e)
            })
            .collect();
        let batch = IngestBatch {
            via: service_via(),
            items,
        };
        let pipeline = self.ctx.pipeline.clone();
        if let Err(e) = self
            .ctx
            .runtime
            .block_on(async move { pipeline.submit(batch).await })
        {
            tracing::error!(error = %e, "could not record dropped late hits");
        }
    }

    /// Where the consumer is, for `/metrics` and the console's catch-up bar.
    fn publish_position(&self) {
        let at = i64::try_from(self.follower.position()).unwrap_or(i64::MAX);
        self.ctx.metrics.detect.position.set(at);
    }

    fn publish_stats(&self) {
        let s = self.engine.stats();
        let g = &self.ctx.metrics.detect.engine;
        for (name, v) in [
            ("late_hits", s.late_hits),
            ("late_applied", s.late_applied),
            ("late_dropped", s.late_dropped),
            ("sources", s.sources as u64),
            ("evicted_groups", s.evicted_groups),
            ("forced_hits", s.forced_hits),
            ("dropped_hits", s.dropped_hits),
            ("expired_groups", s.expired_groups),
            ("unjoined_hits", s.unjoined_hits),
            ("groups", s.groups as u64),
            ("pending", s.pending as u64),
        ] {
            g.with_label_values(&[name])
                .set(i64::try_from(v).unwrap_or(i64::MAX));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Category, Event, Outcome, Via};
    use crate::ledger::log::{Ledger, LedgerEntry, SealPolicy};

    fn entry(time_ms: i64) -> LedgerEntry {
        let t = Timestamp::from_unix_ms(time_ms).unwrap();
        let e = Entry {
            received: t,
            via: Via {
                kind: "test".into(),
                peer: None,
                principal: None,
            },
            event: Event::new(t, Category::Auth, "login", Outcome::Success),
            enriched: None,
        };
        LedgerEntry {
            time_ms,
            bytes: e.canonical_bytes(),
        }
    }

    #[test]
    fn replay_starts_at_the_oldest_segment_inside_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let files = crate::ledger::keys::write_key_files(dir.path(), "t/o").unwrap();
        let signer = crate::ledger::keys::load_signer(&files.signing_key).unwrap();
        let data = dir.path().join("data");
        let policy = SealPolicy {
            max_events: 1000,
            max_age: Duration::from_secs(3600),
        };
        let (mut ledger, _) = Ledger::open(&data, signer, policy).unwrap();
        // Segments of 3 events at minutes 0, 10, 20 and 30 (and an open tail).
        for m in 0..4i64 {
            let base = 1_800_000_000_000 + m * 600_000;
            ledger
                .append(&[entry(base), entry(base + 1000), entry(base + 2000)])
                .unwrap();
            ledger.seal().unwrap();
        }
        ledger.append(&[entry(1_800_000_000_000)]).unwrap();
        ledger.sync().unwrap();
        let at = |m: i64| replay_start(&data, 1_800_000_000_000 + m * 600_000).unwrap();
        assert_eq!(at(-1), 0);
        assert_eq!(at(0), 0);
        assert_eq!(at(1), 3);
        assert_eq!(at(3), 9);
        // Nothing sealed inside the window: the open segment.
        assert_eq!(at(5), 12);
    }

    #[test]
    fn fingerprints_see_added_changed_and_removed_rule_files() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(fingerprint(&dir.path().join("none")), None);
        let empty = fingerprint(dir.path()).unwrap();
        std::fs::write(dir.path().join("a.yml"), "x").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        let one = fingerprint(dir.path()).unwrap();
        assert_eq!(one.len(), 1);
        assert_ne!(empty, one);
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b.yaml"), "yy").unwrap();
        assert_eq!(fingerprint(dir.path()).unwrap().len(), 2);
        std::fs::write(dir.path().join("a.yml"), "xyz").unwrap();
        assert_ne!(fingerprint(dir.path()).unwrap()[0], one[0]);
    }

    #[test]
    fn snapshot_settings_default_parse_and_validate() {
        let d = RulesConfig::default();
        assert_eq!(d.snapshot_entries, 100_000);
        assert_eq!(d.snapshot_interval, Duration::from_secs(300));
        let c: RulesConfig =
            toml::from_str("snapshot_entries = 0\nsnapshot_interval = \"10s\"\n").unwrap();
        assert_eq!(c.snapshot_entries, 0);
        assert_eq!(c.snapshot_interval, Duration::from_secs(10));
        assert!(c.validate().is_ok());
        let c: RulesConfig = toml::from_str("snapshot_interval = \"500ms\"\n").unwrap();
        assert_eq!(
            c.validate(),
            Err(("rules.snapshot_interval", "must be at least 1s"))
        );
        // The state depends on these settings: a change makes another digest.
        let shorter = RulesConfig {
            suppression: Duration::from_secs(60),
            ..RulesConfig::default()
        };
        assert_ne!(d.state_settings(), shorter.state_settings());
        let later = RulesConfig {
            allowed_lateness: Duration::from_secs(3),
            ..RulesConfig::default()
        };
        assert_ne!(d.state_settings(), later.state_settings());
        assert_eq!(d.state_settings(), RulesConfig::default().state_settings());
    }

    #[test]
    fn config_defaults_the_replay_window_to_the_longest_timespan_plus_lateness() {
        let rules = RuleSet::from_yaml(
            "r.yml",
            "title: c\nid: c\ncorrelation:\n  type: event_count\n  rules: [x]\n  timespan: 10m\n  condition: {gte: 2}\n---\ntitle: x\nid: x\ndetection:\n  s:\n    action: a\n  condition: s\n",
        )
        .unwrap();
        let mut c = RulesConfig::default();
        assert_eq!(c.replay_ms(&rules), 602_000);
        c.replay_window = Some(Duration::from_secs(60));
        assert_eq!(c.replay_ms(&rules), 60_000);
        assert!(c.validate().is_ok());
        c.reload_seconds = 0;
        assert!(c.validate().is_err());
    }
}

//! `sealtrail rules check | test | replay | eval`: validating a rule
//! directory, running its fixtures, replaying a ledger window through it, and
//! scoring it against `sealtrail gen` labels.
//!
//! Fixtures live in `DIR/tests/<rule-file-stem>.json` (see `rules/README.md`):
//!
//! ```json
//! {"cases": [
//!   {"name": "eight failures in ten minutes",
//!    "events": [{"time": "...", "category": "auth", ...}, ...],
//!    "expect": [{"rule": "<rule id>", "group": {"actor.user": "u1"}, "count": 8}]},
//!   {"name": "one mistyped password (benign)", "events": [...], "expect": []}
//! ]}
//! ```
//!
//! Each case runs through a fresh [`Engine`] over the whole directory's rule
//! set (events enriched with `DIR/tests/lookups/` when present), is flushed,
//! and the alerts of the rules defined in `DIR/<stem>.yml` must equal `expect`
//! as a multiset of (rule, group, count[, events]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::EXIT_CHECK_FAILED;
use crate::config::Config;
use crate::event::{Entry, Event, Timestamp, Via};
use crate::pipeline::silence::{SilenceConfig, SilenceModel, silent_event};
use crate::response::OncallConfig;
use crate::response::playbook::PlaybookSet;
use crate::rules::{AlertCandidate, Engine, EngineConfig, LoadError, RuleMeta, RuleSet};
use crate::transforms::{Lookups, enrich};

/// The default rule directory.
const DEFAULT_DIR: &str = "rules";
/// Largest fixture or labels file read.
const MAX_FIXTURE_BYTES: u64 = 16 << 20;
/// Tag prefix naming the `sealtrail gen` incident family a rule detects.
pub const FAMILY_TAG: &str = "sealtrail.family.";
/// Tag prefix marking a rule as an approximation of its family.
pub const GAP_TAG: &str = "sealtrail.gap.";
/// Ledger indices of events `eval` synthesizes (the silence monitor's
/// `source_silent` events) start here, far above any input line.
const SYNTHETIC_BASE: u64 = 1 << 48;
/// How often (event time) `eval` asks the silence monitor, like the service's timer.
const SILENCE_CHECK_MS: i64 = 60_000;

#[derive(Subcommand, Debug)]
pub enum RulesCommand {
    /// Load every rule file and every playbook in DIR/playbooks/; print each
    /// error as file:line:col: reason.
    Check {
        /// Rule directory (default: the configuration's `[rules] dir`, else rules).
        dir: Option<PathBuf>,
        /// Configuration whose `[[oncall.levels]]` playbooks may name (as
        /// `serve --config` would load them); without it no level is configured.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Run the fixtures in DIR/tests/ and compare the alerts with their expectations.
    Test {
        /// Rule directory (default: rules).
        dir: Option<PathBuf>,
    },
    /// Run the rules over the ledger's events in a time range and print the alerts (writes nothing).
    Replay(ReplayArgs),
    /// Score the rules against `sealtrail gen` output: precision and recall per incident family.
    Eval(EvalArgs),
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    #[arg(long)]
    data: PathBuf,
    /// RFC 3339 start of the event-time window (inclusive).
    #[arg(long)]
    from: String,
    /// RFC 3339 end of the event-time window (exclusive).
    #[arg(long)]
    to: String,
    /// Rule directory (default: rules).
    #[arg(long)]
    rules: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// events.ndjson written by `sealtrail gen` (run through the rules).
    #[arg(long, required_unless_present = "data", conflicts_with = "data")]
    events: Option<PathBuf>,
    /// Instead: a data directory that `sealtrail serve` or `import` wrote
    /// from gen's events (matched to the labels by event id).
    #[arg(long)]
    data: Option<PathBuf>,
    /// With --data: score the alerts the service appended to the ledger
    /// (`ledger`), or replay the ledger through the rules (`replay`).
    #[arg(long, value_enum, default_value = "replay", requires = "data")]
    alerts: AlertsFrom,
    /// labels.ndjson written by `sealtrail gen`.
    #[arg(long)]
    labels: PathBuf,
    /// Lookup tables folder (default: the events file's folder).
    #[arg(long)]
    lookups: Option<PathBuf>,
    /// Rule directory (default: rules).
    #[arg(long)]
    rules: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

/// Where `rules eval --data` takes its alerts from.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertsFrom {
    Ledger,
    Replay,
}

pub fn run(cmd: RulesCommand) -> Result<ExitCode> {
    match cmd {
        RulesCommand::Check { dir, config } => check(dir, config.as_deref()),
        RulesCommand::Test { dir } => test(&dir.unwrap_or_else(|| DEFAULT_DIR.into())),
        RulesCommand::Replay(args) => replay(&args),
        RulesCommand::Eval(args) => eval(&args),
    }
}

fn ensure_dir(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        bail!("{}: not a rule directory", dir.display());
    }
    Ok(())
}

/// Loads a rule directory; `Err(code)` after printing the load errors.
fn load(dir: &Path) -> Result<std::result::Result<RuleSet, ExitCode>> {
    ensure_dir(dir)?;
    match RuleSet::load_dir(dir) {
        Ok(set) => Ok(Ok(set)),
        Err(errors) => {
            for e in &errors {
                println!("{e}");
            }
            eprintln!("{}: {} error(s)", dir.display(), errors.len());
            Ok(Err(ExitCode::from(EXIT_CHECK_FAILED)))
        }
    }
}

fn all_metas(set: &RuleSet) -> Vec<&RuleMeta> {
    set.detection_rules()
        .chain(set.correlation_rules().map(|(m, _)| m))
        .collect()
}

/// Rules and playbooks, loaded as `serve` loads them (`PlaybookSet::load`'s
/// steps: playbook files, rules, then the rules' `playbook:` names), with
/// every error of each step reported.
fn check(dir: Option<PathBuf>, config: Option<&Path>) -> Result<ExitCode> {
    let (dir, oncall) = match config {
        Some(path) => {
            let c = Config::load(Some(path))?;
            (dir.unwrap_or(c.rules.dir), c.oncall)
        }
        None => (
            dir.unwrap_or_else(|| DEFAULT_DIR.into()),
            OncallConfig::default(),
        ),
    };
    ensure_dir(&dir)?;
    let failed = |errors: Vec<LoadError>| {
        for e in &errors {
            println!("{e}");
        }
        if config.is_none() && errors.iter().any(|e| e.reason.contains("on-call level")) {
            eprintln!("note: on-call levels come from the configuration; pass --config FILE");
        }
        eprintln!("{}: {} error(s)", dir.display(), errors.len());
        Ok(ExitCode::from(EXIT_CHECK_FAILED))
    };
    let (set, playbooks) = match (
        RuleSet::load_dir(&dir),
        PlaybookSet::load_files(&dir, &oncall),
    ) {
        (Ok(rules), Ok(mut playbooks)) => match playbooks.link_rules(&rules) {
            Ok(()) => (rules, playbooks),
            Err(errors) => return failed(errors),
        },
        (rules, playbooks) => {
            let mut errors = rules.err().unwrap_or_default();
            errors.extend(playbooks.err().unwrap_or_default());
            return failed(errors);
        }
    };
    let detections = set.detection_rules().count();
    let correlations = set.correlation_rules().count();
    let alerting = all_metas(&set).iter().filter(|m| m.standalone).count();
    let files: BTreeSet<&Path> = all_metas(&set).iter().map(|m| m.file.as_path()).collect();
    let named = all_metas(&set)
        .iter()
        .filter(|m| m.playbook.is_some())
        .count();
    println!(
        "ok: {} rules in {} files ({detections} detection, {correlations} correlation; {alerting} raise alerts); {} playbooks ({named} rules name one)",
        set.len(),
        files.len(),
        playbooks.len(),
    );
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------- fixtures

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    /// For readers of the fixture; the runner does not use it.
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    events: Vec<Value>,
    expect: Vec<Expected>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    rule: String,
    #[serde(default)]
    group: BTreeMap<String, String>,
    count: u64,
    /// Positions (0-based) of the alert's events in the case, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    events: Option<Vec<u64>>,
    /// The explanations the alert tried and did not find, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    explanations_tried: Option<Vec<String>>,
}

fn read_limited(path: &Path) -> Result<String> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    if len > MAX_FIXTURE_BYTES {
        bail!(
            "{} is larger than {MAX_FIXTURE_BYTES} bytes",
            path.display()
        );
    }
    #[allow(clippy::disallowed_methods)] // size checked just above
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn entry_of(event: Event, lookups: Option<&Lookups>, via: &Via) -> Entry {
    let enriched = lookups.and_then(|l| enrich(l, &event));
    Entry {
        received: event.time,
        via: via.clone(),
        event,
        enriched,
    }
}

fn load_lookups(dir: &Path) -> Result<Lookups> {
    let (lookups, report) =
        Lookups::load(dir).with_context(|| format!("loading lookups from {}", dir.display()))?;
    for note in &report.notes {
        eprintln!("lookups: {note}");
    }
    Ok(lookups)
}

/// Runs one case; `Ok(None)` when it passed, `Ok(Some(why))` when it failed.
fn run_case(
    rules: &Arc<RuleSet>,
    ids: &BTreeSet<&str>,
    lookups: Option<&Lookups>,
    case: &Case,
) -> Result<Option<String>> {
    let via = Via {
        kind: "fixture".into(),
        peer: None,
        principal: None,
    };
    let mut engine = Engine::new(Arc::clone(rules), EngineConfig::default());
    let mut alerts = Vec::new();
    for (i, v) in case.events.iter().enumerate() {
        let bytes = serde_json::to_vec(v)?;
        let event = match Event::from_json(&bytes) {
            Ok(e) => e,
            Err(e) => return Ok(Some(format!("event {i} is not a valid event: {e}"))),
        };
        engine.process(i as u64, &entry_of(event, lookups, &via), &mut alerts);
    }
    engine.flush(&mut alerts);
    let mut got: Vec<Expected> = alerts
        .iter()
        .filter(|a| ids.contains(a.rule_id.as_str()))
        .map(|a| Expected {
            rule: a.rule_id.clone(),
            group: a.group.clone(),
            count: a.count,
            events: Some(a.event_indices.clone()),
            explanations_tried: Some(a.explanations_tried.clone()),
        })
        .collect();
    got.sort();
    // A multiset match; expectations that name their events go first, since
    // one without events accepts any.
    let mut want = case.expect.clone();
    want.sort_by_key(|w| w.events.is_none());
    let mut left = got.clone();
    let mut unmatched = 0usize;
    for w in &want {
        let pos = left.iter().position(|g| {
            g.rule == w.rule
                && g.group == w.group
                && g.count == w.count
                && w.events
                    .as_ref()
                    .is_none_or(|e| Some(e) == g.events.as_ref())
                && w.explanations_tried
                    .as_ref()
                    .is_none_or(|e| Some(e) == g.explanations_tried.as_ref())
        });
        match pos {
            Some(i) => {
                left.remove(i);
            }
            None => unmatched += 1,
        }
    }
    if unmatched == 0 && left.is_empty() {
        return Ok(None);
    }
    want.sort();
    Ok(Some(format!(
        "expected {}\n      got      {}",
        serde_json::to_string(&want)?,
        serde_json::to_string(&got)?
    )))
}

fn test(dir: &Path) -> Result<ExitCode> {
    let set = match load(dir)? {
        Ok(set) => Arc::new(set),
        Err(code) => return Ok(code),
    };
    let tests = dir.join("tests");
    let lookups_dir = tests.join("lookups");
    let lookups = if lookups_dir.is_dir() {
        Some(load_lookups(&lookups_dir)?)
    } else {
        None
    };
    // Rule ids by the stem of the file that defines them.
    let mut by_stem: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    let metas = all_metas(&set);
    for m in &metas {
        let stem = m
            .file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        by_stem.entry(stem).or_default().insert(m.id.as_str());
    }
    let mut fixtures: BTreeMap<String, PathBuf> = BTreeMap::new();
    if tests.is_dir() {
        for e in
            std::fs::read_dir(&tests).with_context(|| format!("reading {}", tests.display()))?
        {
            let path = e?.path();
            if path.extension().and_then(|x| x.to_str()) == Some("json")
                && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
            {
                fixtures.insert(stem.to_owned(), path.clone());
            }
        }
    }
    let (mut passed, mut failed, mut untested) = (0usize, 0usize, 0usize);
    for stem in fixtures.keys() {
        if !by_stem.contains_key(stem) {
            println!("FAIL {stem}: fixture names no rule file {stem}.yml");
            failed += 1;
        }
    }
    for (stem, ids) in &by_stem {
        let Some(path) = fixtures.get(stem) else {
            println!("SKIP {stem}: no fixture tests/{stem}.json");
            untested += 1;
            continue;
        };
        let fixture: Fixture = match serde_json::from_str(&read_limited(path)?) {
            Ok(f) => f,
            Err(e) => {
                println!("FAIL {stem}: {}: {e}", path.display());
                failed += 1;
                continue;
            }
        };
        let mut problems = Vec::new();
        for case in &fixture.cases {
            if let Some(why) = run_case(&set, ids, lookups.as_ref(), case)? {
                problems.push(format!("  case {:?}: {why}", case.name));
            }
        }
        if problems.is_empty() {
            println!("ok   {stem} ({} cases)", fixture.cases.len());
            passed += 1;
        } else {
            println!("FAIL {stem}");
            for p in &problems {
                println!("{p}");
            }
            failed += 1;
        }
    }
    println!("{passed} passed, {failed} failed, {untested} without fixtures");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_CHECK_FAILED)
    })
}

// ---------------------------------------------------------------- replay

fn alert_json(a: &AlertCandidate) -> Value {
    json!({
        "rule_id": a.rule_id,
        "title": a.title,
        "severity": a.level.as_str(),
        "group": a.group,
        "first_time": a.first_time.to_string(),
        "last_time": a.last_time.to_string(),
        "count": a.count,
        "event_indices": a.event_indices,
        "explanations_tried": a.explanations_tried,
    })
}

fn alert_line(a: &AlertCandidate) -> String {
    let group: Vec<String> = a.group.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let tried = if a.explanations_tried.is_empty() {
        String::new()
    } else {
        format!(" unexplained({})", a.explanations_tried.join(","))
    };
    format!(
        "{} {:<13} {} [{}] count={} events={:?}{tried} {}",
        a.first_time,
        a.level.as_str(),
        a.title,
        group.join(" "),
        a.count,
        a.event_indices,
        a.rule_id
    )
}

fn parse_time(flag: &str, s: &str) -> Result<Timestamp> {
    Timestamp::parse(s).map_err(|e| anyhow::anyhow!("{flag} {s:?}: {e}"))
}

/// Ledger entries between two progress reports of `rules replay` and
/// `rules eval --data`.
const REPLAY_PROGRESS_EVERY: u64 = 4096;

/// Reads the ledger of `data` from its first entry to its end as of the
/// call, handing each entry to `each`, and calls `progress(done, total)`
/// before the first, after every `every` entries and after the last:
/// `done` never goes down and ends at the entries read (the total, unless
/// the ledger ends early at a frame it cannot read: then the reason).
fn for_each_entry(
    data: &Path,
    every: u64,
    mut each: impl FnMut(u64, Entry),
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Option<String>> {
    let end = crate::index::ledger_end(data).context("reading the ledger")?;
    let mut follower = crate::index::LedgerFollower::new(data, 0);
    let (mut buf, mut done) = (Vec::new(), 0u64);
    progress(0, end);
    while let Some(index) = follower
        .next_entry(end, &mut buf)
        .context("reading the ledger")?
    {
        let entry = Entry::from_ledger_bytes(&buf)
            .with_context(|| format!("ledger entry {index} does not parse"))?;
        each(index, entry);
        done += 1;
        if done.is_multiple_of(every.max(1)) {
            progress(done, end);
        }
    }
    progress(done, end);
    Ok(follower.stalled().map(|why| why.to_string()))
}

fn replay(args: &ReplayArgs) -> Result<ExitCode> {
    let from = parse_time("--from", &args.from)?.unix_ms();
    let to = parse_time("--to", &args.to)?.unix_ms();
    if to <= from {
        bail!("--to must be after --from");
    }
    let dir = args.rules.clone().unwrap_or_else(|| DEFAULT_DIR.into());
    let set = match load(&dir)? {
        Ok(set) => Arc::new(set),
        Err(code) => return Ok(code),
    };
    if !args.data.is_dir() {
        bail!("{}: no data directory", args.data.display());
    }
    super::key::env_kek(Some(&args.data))?;
    let mut engine = Engine::new(set, EngineConfig::default());
    let (mut alerts, mut events) = (Vec::new(), 0u64);
    let bar = super::progress::EventProgress::new(true, "replaying");
    let stalled = for_each_entry(
        &args.data,
        REPLAY_PROGRESS_EVERY,
        |index, entry| {
            let t = entry.event.time.unix_ms();
            if t < from || t >= to {
                if t < from {
                    // History before `from` is not seen (relation rules warm up).
                    engine.set_partial_history();
                }
                return;
            }
            events += 1;
            engine.process(index, &entry, &mut alerts);
        },
        &mut |done, total| bar.update(done, total),
    )?;
    drop(bar);
    if let Some(why) = stalled {
        eprintln!("warning: stopped early: {why}");
    }
    engine.flush(&mut alerts);
    alerts.sort_by(|a, b| {
        (a.first_time, &a.rule_id, &a.event_indices).cmp(&(
            b.first_time,
            &b.rule_id,
            &b.event_indices,
        ))
    });
    if args.json {
        let out = json!({
            "from": args.from,
            "to": args.to,
            "events": events,
            "alerts": alerts.iter().map(alert_json).collect::<Vec<_>>(),
        });
        println!("{out}");
    } else {
        for a in &alerts {
            println!("{}", alert_line(a));
        }
        eprintln!("{} alerts from {events} events", alerts.len());
    }
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------- eval

#[derive(Debug, Default, Serialize)]
struct FamilyScore {
    family: String,
    /// Whether the family's rule is marked as an approximation (`sealtrail.gap.*`).
    gap: bool,
    rules: Vec<String>,
    labeled: usize,
    detected: usize,
    alerts: usize,
    true_positives: usize,
    false_positives: usize,
    precision: Option<f64>,
    recall: Option<f64>,
}

struct LabelSpan {
    family: String,
    events: BTreeSet<u64>,
    first: i64,
    last: i64,
}

/// What an evaluation run produced, before it is scored.
struct EvalRun {
    alerts: Vec<AlertCandidate>,
    /// gen event id -> index (line number, or ledger index).
    ids: HashMap<String, u64>,
    events: u64,
    synthesized: usize,
    first_ms: i64,
    last_ms: i64,
    /// The explanations' counters, when the rules ran (and one has `explain`).
    explained: Option<crate::rules::ExplainStats>,
}

/// gen's events file through a fresh engine (and the silence monitor), in
/// file order (gen writes delivery order).
fn eval_events(events: &Path, set: &Arc<RuleSet>, lookups: &Lookups) -> Result<EvalRun> {
    let (mut first_ms, mut last_ms) = (i64::MAX, i64::MIN);

    let file =
        std::fs::File::open(events).with_context(|| format!("opening {}", events.display()))?;
    let via = Via {
        kind: "import".into(),
        peer: Some(events.display().to_string()),
        principal: None,
    };
    let mut engine = Engine::new(Arc::clone(set), EngineConfig::default());
    let mut silence = SilenceModel::new(SilenceConfig::default())
        .map_err(|e| anyhow::anyhow!("silence monitor: {e}"))?;
    let mut next_check: Option<i64> = None;
    let mut ids: HashMap<String, u64> = HashMap::new();
    let mut synthetic: Vec<i64> = Vec::new();
    let mut alerts = Vec::new();
    let mut n = 0u64;
    let mut line = String::new();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    loop {
        line.clear();
        if reader
            .read_line(&mut line)
            .with_context(|| format!("reading {}", events.display()))?
            == 0
        {
            break;
        }
        if line.trim().is_empty() {
            continue;
        }
        let event = Event::from_json(line.trim_end().as_bytes())
            .with_context(|| format!("{} line {}", events.display(), n + 1))?;
        let t = event.time.unix_ms();
        first_ms = first_ms.min(t);
        last_ms = last_ms.max(t);
        // The service's silence monitor, run on event time.
        if next_check.is_none_or(|c| t >= c) {
            for s in silence.check(t, Some(t)) {
                let at = Timestamp::from_unix_ms(t)?;
                let silent = Entry {
                    received: at,
                    via: Via {
                        kind: "sealtrail".into(),
                        peer: None,
                        principal: None,
                    },
                    event: silent_event(&s, at),
                    enriched: None,
                };
                let index = SYNTHETIC_BASE + synthetic.len() as u64;
                synthetic.push(t);
                engine.process(index, &silent, &mut alerts);
            }
            next_check = Some(t + SILENCE_CHECK_MS);
        }
        if let Some(src) = event.source.as_ref() {
            silence.observe(&src.system, t, t);
        }
        if let Some(id) = &event.id {
            ids.insert(id.clone(), n);
        }
        engine.process(n, &entry_of(event, Some(lookups), &via), &mut alerts);
        n += 1;
    }
    engine.flush(&mut alerts);
    Ok(EvalRun {
        alerts,
        ids,
        events: n,
        synthesized: synthetic.len(),
        first_ms,
        last_ms,
        explained: engine.explain_stats(),
    })
}

/// A data directory written by `serve` or `import`: the alerts the service
/// appended (`ledger`), or the client events replayed through the rules
/// (`replay`: what `rules replay` over the whole ledger gives).
fn eval_ledger(data: &Path, set: &Arc<RuleSet>, from: AlertsFrom) -> Result<EvalRun> {
    if !data.is_dir() {
        bail!("{}: no data directory", data.display());
    }
    super::key::env_kek(Some(data))?;
    let mut engine = Engine::new(Arc::clone(set), EngineConfig::default());
    let mut alerts = Vec::new();
    let mut ids = HashMap::new();
    let (mut events, mut first_ms, mut last_ms) = (0u64, i64::MAX, i64::MIN);
    let bar = super::progress::EventProgress::new(
        true,
        match from {
            AlertsFrom::Replay => "replaying",
            AlertsFrom::Ledger => "reading",
        },
    );
    let stalled = for_each_entry(
        data,
        REPLAY_PROGRESS_EVERY,
        |index, entry| {
            if let Some(a) = crate::detect::alert::Alert::from_entry(&entry) {
                if from == AlertsFrom::Ledger {
                    alerts.push(crate::detect::alert::as_candidate(&a));
                }
                return;
            }
            if entry.via.kind != crate::detect::alert::SERVICE_VIA {
                events += 1;
                let t = entry.event.time.unix_ms();
                first_ms = first_ms.min(t);
                last_ms = last_ms.max(t);
                if let Some(id) = &entry.event.id {
                    ids.insert(id.clone(), index);
                }
            }
            if from == AlertsFrom::Replay {
                engine.process(index, &entry, &mut alerts);
            }
        },
        &mut |done, total| bar.update(done, total),
    )?;
    drop(bar);
    if let Some(why) = stalled {
        eprintln!("warning: stopped early: {why}");
    }
    engine.flush(&mut alerts);
    Ok(EvalRun {
        alerts,
        ids,
        events,
        synthesized: 0,
        first_ms,
        last_ms,
        explained: (from == AlertsFrom::Replay)
            .then(|| engine.explain_stats())
            .flatten(),
    })
}

fn eval(args: &EvalArgs) -> Result<ExitCode> {
    let dir = args.rules.clone().unwrap_or_else(|| DEFAULT_DIR.into());
    let set = match load(&dir)? {
        Ok(set) => Arc::new(set),
        Err(code) => return Ok(code),
    };
    // rule id -> family, and which families are marked as gaps.
    let mut family_of: HashMap<String, String> = HashMap::new();
    let mut scores: BTreeMap<String, FamilyScore> = BTreeMap::new();
    for m in all_metas(&set) {
        let gap = m.tags.iter().any(|t| t.starts_with(GAP_TAG));
        for t in &m.tags {
            if let Some(f) = t.strip_prefix(FAMILY_TAG) {
                family_of.insert(m.id.clone(), f.to_owned());
                let s = scores.entry(f.to_owned()).or_default();
                s.gap |= gap;
                s.rules.push(m.id.clone());
            }
        }
    }
    for f in crate::r#gen::Family::ALL {
        scores.entry(f.id().to_owned()).or_default();
    }
    let lookups_dir = args.lookups.clone().unwrap_or_else(|| {
        args.events
            .as_deref()
            .or(args.data.as_deref())
            .and_then(Path::parent)
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    });
    let lookups = load_lookups(&lookups_dir)?;
    let run = match (&args.events, &args.data) {
        (Some(events), _) => eval_events(events, &set, &lookups)?,
        (None, Some(data)) => eval_ledger(data, &set, args.alerts)?,
        (None, None) => bail!("give --events or --data"),
    };
    let EvalRun {
        alerts,
        ids,
        events: n,
        synthesized,
        first_ms,
        last_ms,
        explained,
    } = run;
    let labels_text = read_limited(&args.labels)?;
    let mut labels = Vec::new();
    for (i, l) in labels_text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        let rec: crate::r#gen::LabelRecord = serde_json::from_str(l)
            .with_context(|| format!("{} line {}", args.labels.display(), i + 1))?;
        let events = rec
            .event_ids
            .iter()
            .filter_map(|id| ids.get(id).copied())
            .collect();
        labels.push(LabelSpan {
            family: rec.family.clone(),
            events,
            first: parse_time("first_time", &rec.first_time)?.unix_ms(),
            last: parse_time("last_time", &rec.last_time)?.unix_ms(),
        });
        scores.entry(rec.family).or_default().labeled += 1;
    }
    let mut detected = vec![false; labels.len()];
    let mut untagged = 0usize;
    for a in &alerts {
        let Some(family) = family_of.get(&a.rule_id) else {
            untagged += 1;
            continue;
        };
        let real: Vec<u64> = a
            .event_indices
            .iter()
            .copied()
            .filter(|&i| i < SYNTHETIC_BASE)
            .collect();
        let mut hit = false;
        for (k, l) in labels.iter().enumerate() {
            if &l.family != family {
                continue;
            }
            let overlaps = if real.is_empty() {
                // Only synthesized events (a silence): match by time.
                a.first_time.unix_ms() >= l.first && a.first_time.unix_ms() <= l.last
            } else {
                real.iter().any(|i| l.events.contains(i))
            };
            if overlaps {
                hit = true;
                detected[k] = true;
            }
        }
        let s = scores.entry(family.clone()).or_default();
        s.alerts += 1;
        if hit {
            s.true_positives += 1;
        } else {
            s.false_positives += 1;
        }
    }
    for (k, l) in labels.iter().enumerate() {
        if detected[k] {
            scores.entry(l.family.clone()).or_default().detected += 1;
        }
    }
    #[allow(clippy::cast_precision_loss)] // counts far below 2^52
    for (name, s) in &mut scores {
        s.family.clone_from(name);
        s.precision = (s.alerts > 0).then(|| s.true_positives as f64 / s.alerts as f64);
        s.recall = (s.labeled > 0).then(|| s.detected as f64 / s.labeled as f64);
    }
    // Alerts per day of event time, and false ones (on no labeled incident,
    // untagged rules included) per day per 60 staff: the benign noise a
    // practice's reviewer sees.
    #[allow(clippy::cast_precision_loss)] // counts and days far below 2^52
    let (days, per_day, false_per_day_60) = {
        let days = if last_ms > first_ms {
            ((last_ms - first_ms) as f64 / 86_400_000.0).max(1.0)
        } else {
            1.0
        };
        let false_alerts: usize =
            scores.values().map(|s| s.false_positives).sum::<usize>() + untagged;
        let staff = lookups.staff_len().max(1) as f64;
        (
            days,
            alerts.len() as f64 / days,
            false_alerts as f64 / days * 60.0 / staff,
        )
    };
    if args.json {
        let mut out = json!({
            "events": n,
            "days": days,
            "alerts_per_day": per_day,
            "false_alerts_per_day_per_60_staff": false_per_day_60,
            "synthesized_events": synthesized,
            "labels": labels.len(),
            "alerts": alerts.len(),
            "untagged_alerts": untagged,
            "families": scores.values().collect::<Vec<_>>(),
        });
        if let (Some(x), Some(o)) = (&explained, out.as_object_mut()) {
            o.insert("access_events".into(), json!(x.access_events));
            o.insert("explained_accesses".into(), json!(x.explained_accesses));
            o.insert(
                "explained_by_kind".into(),
                json!(x.kinds().collect::<BTreeMap<_, _>>()),
            );
        }
        println!("{out}");
    } else {
        let pct = |x: Option<f64>| x.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
        println!(
            "{:<24} {:>7} {:>8} {:>6} {:>4} {:>4} {:>9} {:>6}  note",
            "family", "labeled", "detected", "alerts", "tp", "fp", "precision", "recall"
        );
        for s in scores.values() {
            println!(
                "{:<24} {:>7} {:>8} {:>6} {:>4} {:>4} {:>9} {:>6}  {}",
                s.family,
                s.labeled,
                s.detected,
                s.alerts,
                s.true_positives,
                s.false_positives,
                pct(s.precision),
                pct(s.recall),
                if s.rules.is_empty() {
                    "no rule"
                } else if s.gap {
                    "approximation (gap)"
                } else {
                    ""
                }
            );
        }
        println!(
            "{n} events ({} synthesized source_silent), {} labels, {} alerts ({untagged} from rules without a family tag)",
            synthesized,
            labels.len(),
            alerts.len()
        );
        println!(
            "{days:.1} days: {per_day:.1} alerts a day, {false_per_day_60:.2} false alerts a day per 60 staff"
        );
        if let Some(x) = &explained {
            #[allow(clippy::cast_precision_loss)] // counts far below 2^52
            let share = x.explained_accesses as f64 / x.access_events.max(1) as f64;
            let kinds: Vec<String> = x.kinds().map(|(k, n)| format!("{k}={n}")).collect();
            println!(
                "{} patient accesses, {} explained ({:.1}%): {}",
                x.access_events,
                x.explained_accesses,
                100.0 * share,
                kinds.join(" ")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::keys::NoteSigner;
    use crate::ledger::log::{Ledger, LedgerEntry, SealPolicy};

    fn ledger_of(data: &Path, n: u64) {
        let policy = SealPolicy {
            max_events: 10,
            max_age: std::time::Duration::from_secs(3600),
        };
        let signer = NoteSigner::generate("test.example/progress").unwrap();
        let mut ledger = Ledger::open(data, signer, policy).unwrap().0;
        let entries: Vec<LedgerEntry> = (0..n)
            .map(|i| {
                let time = Timestamp::from_unix_ms(1_764_000_000_000 + i as i64 * 1000).unwrap();
                let json = format!(
                    r#"{{"time":"{time}","category":"auth","action":"login","outcome":"success","actor":{{"user":"u{i}"}}}}"#
                );
                let entry = Entry {
                    received: time,
                    via: Via {
                        kind: "import".into(),
                        peer: None,
                        principal: None,
                    },
                    event: Event::from_json(json.as_bytes()).unwrap(),
                    enriched: None,
                };
                LedgerEntry {
                    time_ms: entry.event.time.unix_ms(),
                    bytes: entry.canonical_bytes(),
                }
            })
            .collect();
        for chunk in entries.chunks(7) {
            ledger.append(chunk).unwrap();
        }
        ledger.close().unwrap();
    }

    #[test]
    fn replay_progress_is_called_per_batch_with_monotone_counts_ending_at_the_total() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        ledger_of(&data, 23);
        let (mut seen, mut calls) = (Vec::new(), Vec::new());
        let stalled = for_each_entry(&data, 5, |index, _| seen.push(index), &mut |done, total| {
            calls.push((done, total))
        })
        .unwrap();
        assert_eq!(stalled, None);
        assert_eq!(seen, (0..23).collect::<Vec<_>>());
        // Before the first, per batch of 5, and after the last.
        assert_eq!(
            calls,
            [(0, 23), (5, 23), (10, 23), (15, 23), (20, 23), (23, 23)]
        );
    }
}

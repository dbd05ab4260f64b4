//! Explanations: why a user may legitimately open a patient's record
//! (explanation-based auditing, Fabbri & LeFevre, VLDB 2011), kept from the
//! event stream and the staff directory's enrichment, and the `explain`
//! attribute of a detection rule that consults them (a sealtrail extension).
//!
//! Kinds (the ids alerts name):
//! - `treatment.clinician`: the user is `attrs.clinician` of an appointment
//!   or encounter of the patient whose `attrs.scheduled_for` lies within
//!   `window` of the access.
//! - `treatment.department`: the patient has a visit scheduled within
//!   `visit_day` of the access whose department (`attrs.department`, else
//!   the clinician's directory department) is the user's department.
//! - `treatment.care_team`: the user acted on (created or updated: check-in,
//!   rooming, vitals) the patient's appointment or encounter, or is listed
//!   in one's `attrs.care_team`, within `visit_day` before the access.
//! - `treatment.record`: the user created or updated an order, result,
//!   message, referral, prescription or note of the patient within `window`.
//! - `payment.claim`: the user acted on a claim of the patient (resource
//!   type `claim`, or action `claim_submit`) within `window`.
//! - `operations.repeat`: the user's earlier access to the patient within
//!   `window` was explained by one of the other kinds (every patient access
//!   is judged by the explainer itself with the rules' longest window,
//!   grace and visit day and the union of their kinds: that verdict also
//!   gives the share of accesses explained).
//!
//! A fact counts for an access at `t` when its event time is at most
//! `t + grace`: facts are stored with their times as they arrive, whatever
//! the order, and an access is judged once the engine's watermark passes
//! `t + grace` (so a fact from a late source that arrived by then counts,
//! and the verdict does not depend on arrival order). A visit booked after
//! `t + grace` does not explain the access.
//!
//! State is bounded and keyed by 64-bit hashes of the ids (process-wide
//! random seed; a collision, about 1 in 10^9 at these sizes, could only
//! explain an access wrongly): per patient its recent visits, per user its
//! department, per (user, patient) pair the times of its facts as spans
//! (facts closer than the shortest window merge into one span, which gives
//! the same verdicts as keeping every time). Each map has a cap and evicts
//! the least recently used key, counted in [`ExplainStats`].
//! Sizes (`memory_per_key` in the tests, x86-64, map slots at 7/8 load
//! and the LRU queue): a patient about 160 bytes with two visits, a pair
//! about 220 bytes; 100,000 patients and the default cap of 200,000 pairs
//! (1,000 staff, a few relationships per patient) take about 60 MB.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::hash::{BuildHasher, Hash};
use std::sync::OnceLock;

use super::detection::{At, at};
use super::engine::Map;
use super::field::{Field, FieldValue};
use super::load::{duration, parse_timespan};
use super::view::EntryView;
use super::yaml::{Node, NodeKind};
use crate::event::Timestamp;

/// One kind of explanation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Clinician,
    Department,
    CareTeam,
    Record,
    Claim,
    Repeat,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Clinician,
        Kind::Department,
        Kind::CareTeam,
        Kind::Record,
        Kind::Claim,
        Kind::Repeat,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Kind::Clinician => "treatment.clinician",
            Kind::Department => "treatment.department",
            Kind::CareTeam => "treatment.care_team",
            Kind::Record => "treatment.record",
            Kind::Claim => "payment.claim",
            Kind::Repeat => "operations.repeat",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.id() == s)
    }
}

/// Default `window`: a relationship counts 30 days either side.
pub const DEFAULT_WINDOW_MS: i64 = 30 * 86_400_000;
/// Default `grace`: facts up to 15 minutes after the access count.
pub const DEFAULT_GRACE_MS: i64 = 15 * 60_000;
/// Default `visit_day`: department and care team facts within 12 hours
/// (a practice's visit day, whatever its time zone).
pub const DEFAULT_VISIT_DAY_MS: i64 = 12 * 3_600_000;
/// Longest `grace` (the verdict, and so the alert, waits this long).
pub const MAX_GRACE_MS: i64 = 86_400_000;

/// Resource types that are clinical records (`treatment.record`); a type
/// ending in `_<one of these>` (`lab_order`, `encounter_note`) counts too.
pub const RECORD_TYPES: [&str; 6] = [
    "order",
    "result",
    "message",
    "referral",
    "prescription",
    "note",
];

/// The `explain` attribute of a detection rule: the rule matches only when
/// none of `kinds` explains the access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explain {
    /// In the order written.
    pub kinds: Vec<Kind>,
    pub window_ms: i64,
    pub grace_ms: i64,
    pub visit_day_ms: i64,
}

impl Explain {
    /// The ids of its kinds, as alerts list them.
    pub fn tried(&self) -> Vec<String> {
        self.kinds.iter().map(|k| k.id().to_owned()).collect()
    }
}

/// Parses a rule's `explain` map.
pub(super) fn parse(n: &Node) -> Result<Explain, At> {
    let NodeKind::Map(entries) = &n.kind else {
        return Err(at(n.pos, "explain must be a map with `with`"));
    };
    for (k, _) in entries {
        let key = k.as_str().unwrap_or_default();
        if !["with", "window", "grace", "visit_day"].contains(&key) {
            return Err(at(
                k.pos,
                format!("unknown explain attribute `{key}` (with, window, grace, visit_day)"),
            ));
        }
    }
    let with = n
        .get("with")
        .ok_or_else(|| at(n.pos, "explain has no `with`"))?;
    let items: Vec<&Node> = match &with.kind {
        NodeKind::Seq(items) if !items.is_empty() => items.iter().collect(),
        NodeKind::Seq(_) => return Err(at(with.pos, "`with` is empty")),
        NodeKind::Scalar { .. } => vec![with],
        _ => return Err(at(with.pos, "`with` must be a list of explanation kinds")),
    };
    let mut kinds = Vec::new();
    for i in items {
        let s = i.as_str().unwrap_or_default();
        let k = Kind::parse(s).ok_or_else(|| {
            at(
                i.pos,
                format!(
                    "unknown explanation `{s}`: use {}",
                    Kind::ALL.map(Kind::id).join(", ")
                ),
            )
        })?;
        if kinds.contains(&k) {
            return Err(at(i.pos, format!("explanation `{s}` is listed twice")));
        }
        kinds.push(k);
    }
    let window_ms = duration(n, "window")?.unwrap_or(DEFAULT_WINDOW_MS);
    let visit_day_ms = duration(n, "visit_day")?.unwrap_or(DEFAULT_VISIT_DAY_MS);
    let grace_ms = match n.get("grace") {
        None => DEFAULT_GRACE_MS,
        Some(g) if g.as_str() == Some("0") => 0,
        Some(g) => g
            .as_str()
            .and_then(parse_timespan)
            .filter(|&v| v <= MAX_GRACE_MS)
            .ok_or_else(|| {
                at(
                    g.pos,
                    format!(
                        "invalid grace `{}`: 0, or a positive number and s, m, h or d, at most 1d",
                        g.as_str().unwrap_or_default()
                    ),
                )
            })?,
    };
    Ok(Explain {
        kinds,
        window_ms,
        grace_ms,
        visit_day_ms,
    })
}

/// Bounds of the explainer's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExplainConfig {
    pub max_patients: usize,
    pub max_pairs: usize,
    pub max_users: usize,
    /// Visits kept per patient (the one scheduled farthest from the
    /// newest booking dropped first).
    pub max_visits: usize,
    /// Accesses waiting for their verdict (the earliest judged early).
    pub max_pending: usize,
}

impl Default for ExplainConfig {
    fn default() -> Self {
        ExplainConfig {
            max_patients: 100_000,
            max_pairs: 200_000,
            max_users: 10_000,
            max_visits: 16,
            max_pending: 200_000,
        }
    }
}

/// Counters: what was judged and explained, and what the bounds cost.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExplainStats {
    /// Patient accesses judged (category `access` with a user and patient).
    pub access_events: u64,
    /// Of those, explained by at least one kind the rules use.
    pub explained_accesses: u64,
    /// Per kind (order of [`Kind::ALL`]): accesses it explains.
    pub by_kind: [u64; 6],
    /// Rule matches judged, and of those found unexplained (alerted).
    pub rule_checks: u64,
    pub unexplained: u64,
    pub evicted_patients: u64,
    pub evicted_pairs: u64,
    pub evicted_users: u64,
    /// Visits or fact spans dropped from a full key (oldest first).
    pub dropped_facts: u64,
    /// Verdicts made before the watermark because too many waited.
    pub forced: u64,
    pub pending: usize,
    /// Keys held now: patients with visits, (user, patient) pairs, users.
    pub patients: usize,
    pub pairs: usize,
    pub users: usize,
}

impl ExplainStats {
    /// `(kind id, accesses it explains)`.
    pub fn kinds(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Kind::ALL.iter().map(|k| k.id()).zip(self.by_kind)
    }
}

/// The process's random key seed. Keys are kept (hashed) in the state a
/// snapshot holds, so a restart that loads one adopts its seed
/// ([`adopt_seed`]) before any key is made.
static SEED: OnceLock<u64> = OnceLock::new();

fn seed() -> u64 {
    *SEED.get_or_init(|| foldhash::quality::RandomState::default().hash_one(0u64))
}

/// Makes `s` the process's key seed unless keys were made already; whether
/// the process's seed is `s` (else a snapshot's keys cannot be used).
pub(crate) fn adopt_seed(s: u64) -> bool {
    *SEED.get_or_init(|| s) == s
}

fn hasher() -> &'static foldhash::quality::FixedState {
    static HASHER: OnceLock<foldhash::quality::FixedState> = OnceLock::new();
    HASHER.get_or_init(|| foldhash::quality::FixedState::with_seed(seed()))
}

/// An id's key: never 0 (0 means "none").
fn key(s: &str) -> u64 {
    hasher().hash_one(s).max(1)
}

/// A least-recently-used bounded map. Touches append to an order queue;
/// stale queue entries are skipped on eviction and compacted away.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(bound(
    serialize = "K: serde::Serialize, V: serde::Serialize",
    deserialize = "K: serde::Deserialize<'de> + Hash + Eq, V: serde::Deserialize<'de>"
))]
struct Lru<K, V> {
    #[serde(with = "crate::rules::snap::pairs")]
    map: Map<K, (V, u64)>,
    order: VecDeque<(K, u64)>,
    tick: u64,
}

impl<K: Hash + Eq + Copy, V> Default for Lru<K, V> {
    fn default() -> Self {
        Lru {
            map: Map::default(),
            order: VecDeque::new(),
            tick: 0,
        }
    }
}

impl<K: Hash + Eq + Copy, V> Lru<K, V> {
    fn len(&self) -> usize {
        self.map.len()
    }

    fn get(&self, k: &K) -> Option<&V> {
        self.map.get(k).map(|(v, _)| v)
    }

    /// The value of `k`, created with `new` when missing; whether a key
    /// was evicted to make room.
    fn touch(&mut self, k: K, cap: usize, new: impl FnOnce() -> V) -> (&mut V, bool) {
        self.tick += 1;
        let tick = self.tick;
        let mut evicted = false;
        if !self.map.contains_key(&k) && self.map.len() >= cap.max(1) {
            while let Some((old, t)) = self.order.pop_front() {
                if self.map.get(&old).is_some_and(|(_, s)| *s == t) {
                    self.map.remove(&old);
                    evicted = true;
                    break;
                }
            }
        }
        self.order.push_back((k, tick));
        if self.order.len() > 2 * self.map.len() + 64 {
            let map = &self.map;
            self.order
                .retain(|(k2, t)| map.get(k2).is_some_and(|(_, s)| s == t));
        }
        let slot = self.map.entry(k).or_insert_with(|| (new(), tick));
        slot.1 = tick;
        (&mut slot.0, evicted)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Visit {
    scheduled: i64,
    /// Event time of the booking (or of the encounter's record).
    booked: i64,
    clinician: u64,
    /// `attrs.department`'s key, 0 when the event has none.
    department: u64,
}

/// Facts of one (user, patient) pair, as spans of fact times.
const SPANS: usize = 2;
/// Fact kinds kept per pair.
const CARE: usize = 0;
const RECORD: usize = 1;
const CLAIM: usize = 2;
const REPEAT: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Span {
    lo: i64,
    hi: i64,
}

const EMPTY: Span = Span {
    lo: i64::MAX,
    hi: i64::MIN,
};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct PairFacts {
    spans: [[Span; SPANS]; 4],
}

impl Default for PairFacts {
    fn default() -> Self {
        PairFacts {
            spans: [[EMPTY; SPANS]; 4],
        }
    }
}

impl PairFacts {
    /// Adds fact time `t` of kind `k`, merging spans closer than `merge`;
    /// whether a span was dropped (full: the oldest goes).
    fn add(&mut self, k: usize, t: i64, merge: i64) -> bool {
        let spans = &mut self.spans[k];
        let mut all: Vec<Span> = spans.iter().copied().filter(|s| s.lo <= s.hi).collect();
        all.push(Span { lo: t, hi: t });
        all.sort_unstable_by_key(|s| s.lo);
        let mut merged: Vec<Span> = Vec::with_capacity(all.len());
        for s in all {
            match merged.last_mut() {
                Some(m) if s.lo.saturating_sub(m.hi) <= merge => m.hi = m.hi.max(s.hi),
                _ => merged.push(s),
            }
        }
        let dropped = merged.len() > SPANS;
        let keep = &merged[merged.len().saturating_sub(SPANS)..];
        *spans = [EMPTY; SPANS];
        spans[..keep.len()].copy_from_slice(keep);
        dropped
    }

    /// Whether a fact `f` of kind `k` has `t - before <= f <= t + after`
    /// (exact while spans merge facts at most `before + after` apart).
    fn any(&self, k: usize, t: i64, before: i64, after: i64) -> bool {
        self.spans[k]
            .iter()
            .any(|s| s.lo <= s.hi && s.lo <= t.saturating_add(after) && t - before <= s.hi)
    }
}

/// Accesses waiting for their verdict, by (deadline, arrival): a sorted run
/// for the usual in-order arrivals (O(1)) and a heap for the others, as the
/// engine's reorder buffer does.
#[derive(serde::Serialize, serde::Deserialize)]
struct Queue<T> {
    run: VecDeque<Queued<T>>,
    late: BinaryHeap<Reverse<Queued<T>>>,
}

impl<T> Default for Queue<T> {
    fn default() -> Self {
        Queue {
            run: VecDeque::new(),
            late: BinaryHeap::new(),
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Queued<T> {
    key: (i64, u64),
    job: Job<T>,
}

impl<T> PartialEq for Queued<T> {
    fn eq(&self, o: &Self) -> bool {
        self.key == o.key
    }
}
impl<T> Eq for Queued<T> {}
impl<T> PartialOrd for Queued<T> {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl<T> Ord for Queued<T> {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.key.cmp(&o.key)
    }
}

impl<T> Queue<T> {
    fn len(&self) -> usize {
        self.run.len() + self.late.len()
    }

    fn push(&mut self, key: (i64, u64), job: Job<T>) {
        let q = Queued { key, job };
        match self.run.back() {
            Some(b) if key < b.key => self.late.push(Reverse(q)),
            _ => self.run.push_back(q),
        }
    }

    fn first(&self) -> Option<(i64, u64)> {
        match (self.run.front(), self.late.peek()) {
            (Some(r), Some(Reverse(l))) => Some(r.key.min(l.key)),
            (Some(r), None) => Some(r.key),
            (None, Some(Reverse(l))) => Some(l.key),
            (None, None) => None,
        }
    }

    fn pop(&mut self) -> Option<Job<T>> {
        let from_late = match (self.run.front(), self.late.peek()) {
            (Some(r), Some(Reverse(l))) => l.key < r.key,
            (None, Some(_)) => true,
            _ => false,
        };
        let q = if from_late {
            self.late.pop().map(|Reverse(q)| q)
        } else {
            self.run.pop_front()
        };
        q.map(|q| q.job)
    }
}

/// The distances of one verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Params {
    window_ms: i64,
    grace_ms: i64,
    visit_day_ms: i64,
}

impl Params {
    fn of(ex: &Explain) -> Params {
        Params {
            window_ms: ex.window_ms,
            grace_ms: ex.grace_ms,
            visit_day_ms: ex.visit_day_ms,
        }
    }
}

/// What [`Explainer::judge_next`] did.
pub(crate) enum Judged<T> {
    /// No verdict was due.
    Nothing,
    /// One of the explainer's own verdicts (statistics, repeat facts).
    Own,
    /// A rule's verdict.
    Rule(Verdict<T>),
}

/// One access waiting for its verdict.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Job<T> {
    pub time: i64,
    user: u64,
    patient: u64,
    department: u64,
    /// `None`: the explainer's own verdict (statistics, repeat facts);
    /// otherwise the rule's and what it carries (`explain` of the rule).
    /// Boxed: most jobs are the explainer's own, and stay small.
    pub rule: Option<Box<(usize, T)>>,
}

/// The outcome of a rule's job.
pub(crate) struct Verdict<T> {
    pub time: i64,
    pub rule: usize,
    pub payload: T,
    pub explained: bool,
}

/// Field names the explainer reads.
struct Fields {
    category: Field,
    action: Field,
    user: Field,
    department: Field,
    patient: Field,
    resource: Field,
    clinician: Field,
    scheduled: Field,
    visit_department: Field,
    care_team: Field,
}

impl Fields {
    fn new() -> Option<Fields> {
        Some(Fields {
            category: Field::parse("category")?,
            action: Field::parse("action")?,
            user: Field::parse("actor.user")?,
            department: Field::parse("actor.department")?,
            patient: Field::parse("patient.id")?,
            resource: Field::parse("resource.type")?,
            clinician: Field::parse("attrs.clinician")?,
            scheduled: Field::parse("attrs.scheduled_for")?,
            visit_department: Field::parse("attrs.department")?,
            care_team: Field::parse("attrs.care_team")?,
        })
    }
}

fn str_of<'a>(f: &Field, e: &'a EntryView<'_>) -> Option<&'a str> {
    match f.get(e)? {
        FieldValue::Str(s) if !s.is_empty() => Some(s),
        _ => None,
    }
}

/// `kind` is a record type or ends in `_type`/`-type` (ASCII case ignored).
fn is_record(kind: &str) -> bool {
    let k = kind.as_bytes();
    RECORD_TYPES.iter().any(|r| {
        let r = r.as_bytes();
        k.len() >= r.len()
            && k[k.len() - r.len()..].eq_ignore_ascii_case(r)
            && (k.len() == r.len() || matches!(k[k.len() - r.len() - 1], b'_' | b'-'))
    })
}

/// [`Explainer::state`], borrowed for writing.
#[derive(serde::Serialize)]
pub(crate) struct ExplainerStateRef<'a, T> {
    seed: u64,
    users: &'a Lru<u64, u64>,
    patients: &'a Lru<u64, Vec<Visit>>,
    pairs: &'a Lru<(u64, u64), PairFacts>,
    queue: &'a Queue<T>,
    seq: u64,
    stats: &'a ExplainStats,
}

/// [`Explainer::state`], read back.
#[derive(serde::Deserialize)]
pub(crate) struct ExplainerState<T> {
    seed: u64,
    users: Lru<u64, u64>,
    patients: Lru<u64, Vec<Visit>>,
    pairs: Lru<(u64, u64), PairFacts>,
    queue: Queue<T>,
    seq: u64,
    stats: ExplainStats,
}

/// The explanations component: facts from the stream, accesses waiting
/// for their verdict, and the verdicts. `T` is what a rule's job carries
/// (the engine's hits for the correlations the rule feeds).
pub(crate) struct Explainer<T> {
    cfg: ExplainConfig,
    fields: Option<Fields>,
    /// The explainer's own verdicts: the union of the rules' kinds, their
    /// longest window, grace and visit day.
    kinds: Vec<Kind>,
    general: Params,
    /// Span merge distances per fact kind (care, record, claim, repeat):
    /// the shortest distance any rule looks, so merging loses nothing.
    merge: [i64; 4],
    users: Lru<u64, u64>,
    patients: Lru<u64, Vec<Visit>>,
    pairs: Lru<(u64, u64), PairFacts>,
    queue: Queue<T>,
    seq: u64,
    stats: ExplainStats,
}

impl<T> std::fmt::Debug for Explainer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Explainer")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<T> Explainer<T> {
    /// An explainer for the rules' `explain` attributes; `None` when no
    /// rule has one (then nothing is kept).
    pub fn new<'a>(
        rules: impl IntoIterator<Item = &'a Explain>,
        cfg: ExplainConfig,
    ) -> Option<Explainer<T>> {
        let rules: Vec<&Explain> = rules.into_iter().collect();
        if rules.is_empty() {
            return None;
        }
        let mut kinds: Vec<Kind> = rules.iter().flat_map(|r| r.kinds.iter().copied()).collect();
        kinds.sort_unstable();
        kinds.dedup();
        let max = |f: fn(&Explain) -> i64| rules.iter().map(|r| f(r)).max().unwrap_or(0);
        let min = |f: fn(&Explain) -> i64| rules.iter().map(|r| f(r)).min().unwrap_or(0);
        let window = min(|r| r.window_ms);
        Some(Explainer {
            cfg,
            fields: Fields::new(),
            kinds,
            general: Params {
                window_ms: max(|r| r.window_ms),
                grace_ms: max(|r| r.grace_ms),
                visit_day_ms: max(|r| r.visit_day_ms),
            },
            merge: [min(|r| r.visit_day_ms), window, window, window - 1],
            users: Lru::default(),
            patients: Lru::default(),
            pairs: Lru::default(),
            queue: Queue::default(),
            seq: 0,
            stats: ExplainStats::default(),
        })
    }

    /// What the stream built, for a snapshot (the rest is the rules').
    pub(crate) fn state(&self) -> ExplainerStateRef<'_, T> {
        ExplainerStateRef {
            seed: seed(),
            users: &self.users,
            patients: &self.patients,
            pairs: &self.pairs,
            queue: &self.queue,
            seq: self.seq,
            stats: &self.stats,
        }
    }

    /// Takes back a snapshot's [`Explainer::state`]; refused when the
    /// process already makes keys with another seed.
    pub(crate) fn restore(&mut self, s: ExplainerState<T>) -> Result<(), &'static str> {
        if !adopt_seed(s.seed) {
            return Err("the explanations' key seed differs from this process's");
        }
        self.users = s.users;
        self.patients = s.patients;
        self.pairs = s.pairs;
        self.queue = s.queue;
        self.seq = s.seq;
        self.stats = s.stats;
        Ok(())
    }

    pub fn stats(&self) -> ExplainStats {
        let mut s = self.stats.clone();
        s.pending = self.queue.len();
        s.patients = self.patients.len();
        s.pairs = self.pairs.len();
        s.users = self.users.len();
        s
    }

    /// The earliest verdict deadline waiting.
    pub fn next_deadline(&self) -> Option<i64> {
        self.queue.first().map(|k| k.0)
    }

    fn pair(&mut self, user: u64, patient: u64) -> &mut PairFacts {
        let (p, evicted) =
            self.pairs
                .touch((user, patient), self.cfg.max_pairs, PairFacts::default);
        self.stats.evicted_pairs += u64::from(evicted);
        p
    }

    fn add_fact(&mut self, user: u64, patient: u64, k: usize, t: i64) {
        let merge = self.merge[k];
        if self.pair(user, patient).add(k, t, merge) {
            self.stats.dropped_facts += 1;
        }
    }

    /// Records the facts `e` (event time `t`) states, and queues the
    /// explainer's own verdict of it when it is a patient access.
    pub fn observe(&mut self, e: &EntryView<'_>, t: i64) {
        let Some(f) = self.fields.take() else { return };
        self.observe_with(&f, e, t);
        self.fields = Some(f);
    }

    fn observe_with(&mut self, f: &Fields, e: &EntryView<'_>, t: i64) {
        let user = str_of(&f.user, e).map(key);
        let department = str_of(&f.department, e).map_or(0, key);
        if let Some(u) = user
            && department != 0
        {
            let (d, evicted) = self.users.touch(u, self.cfg.max_users, || 0);
            *d = department;
            self.stats.evicted_users += u64::from(evicted);
        }
        let Some(patient) = str_of(&f.patient, e).map(key) else {
            return;
        };
        let category = str_of(&f.category, e).unwrap_or_default();
        let action = str_of(&f.action, e).unwrap_or_default();
        let resource = str_of(&f.resource, e).unwrap_or_default();
        let access = category == "access";
        if resource == "appointment" || resource == "encounter" {
            if let (Some(c), Some(s)) = (str_of(&f.clinician, e), str_of(&f.scheduled, e))
                && let Ok(s) = Timestamp::parse(s)
            {
                let v = Visit {
                    scheduled: s.unix_ms(),
                    booked: t,
                    clinician: key(c),
                    department: str_of(&f.visit_department, e).map_or(0, key),
                };
                self.add_visit(patient, v, t);
            }
            // Acting on the visit (check-in, rooming, vitals), not viewing.
            if access
                && matches!(action, "create" | "update")
                && let Some(u) = user
            {
                self.add_fact(u, patient, CARE, t);
            }
            if let Some(FieldValue::Json(serde_json::Value::Array(team))) = f.care_team.get(e) {
                let members: Vec<u64> = team.iter().filter_map(|m| m.as_str()).map(key).collect();
                for m in members {
                    self.add_fact(m, patient, CARE, t);
                }
            }
        }
        if let Some(u) = user {
            if access && matches!(action, "create" | "update") && is_record(resource) {
                self.add_fact(u, patient, RECORD, t);
            }
            if resource == "claim" || action == "claim_submit" {
                self.add_fact(u, patient, CLAIM, t);
            }
            if access {
                self.push(
                    t + self.general.grace_ms,
                    Job {
                        time: t,
                        user: u,
                        patient,
                        department,
                        rule: None,
                    },
                );
            }
        }
    }

    /// Adds visit `v` of `patient`, seen at event time `now`.
    fn add_visit(&mut self, patient: u64, v: Visit, now: i64) {
        let cap = self.cfg.max_visits.max(1);
        let (visits, evicted) = self
            .patients
            .touch(patient, self.cfg.max_patients, Vec::new);
        self.stats.evicted_patients += u64::from(evicted);
        // The same visit again (its appointment, then its encounter): the
        // earliest booking counts, and a department once given.
        if let Some(w) = visits
            .iter_mut()
            .find(|w| w.scheduled == v.scheduled && w.clinician == v.clinician)
        {
            w.booked = w.booked.min(v.booked);
            if w.department == 0 {
                w.department = v.department;
            }
            return;
        }
        // Exactly: most patients have one or two visits in a window.
        visits.reserve_exact(1);
        visits.push(v);
        if visits.len() > cap {
            // The visit farthest from now is the one least likely to matter
            // (a full list of future bookings keeps today's).
            if let Some(i) = visits
                .iter()
                .enumerate()
                .max_by_key(|(_, v)| ((v.scheduled - now).abs(), v.booked))
                .map(|(i, _)| i)
            {
                visits.swap_remove(i);
                self.stats.dropped_facts += 1;
            }
        }
    }

    fn push(&mut self, deadline: i64, job: Job<T>) {
        self.seq += 1;
        self.queue.push((deadline, self.seq), job);
    }

    /// Queues a rule's verdict of access `e` (event time `t`); the rule
    /// carries `payload` and is judged with `ex` once the watermark passes
    /// `t + grace`. `Err(payload)` when `e` names no user or patient:
    /// nothing can explain it.
    pub fn check(
        &mut self,
        e: &EntryView<'_>,
        t: i64,
        ex: &Explain,
        rule: usize,
        payload: T,
    ) -> Result<(), T> {
        let Some(f) = self.fields.as_ref() else {
            return Err(payload);
        };
        let (Some(user), Some(patient)) = (str_of(&f.user, e), str_of(&f.patient, e)) else {
            return Err(payload);
        };
        let job = Job {
            time: t,
            user: key(user),
            patient: key(patient),
            department: str_of(&f.department, e).map_or(0, key),
            rule: Some(Box::new((rule, payload))),
        };
        self.push(t + ex.grace_ms, job);
        Ok(())
    }

    /// Judges the earliest waiting access when its deadline is before
    /// `before` (`None`: whatever its deadline); `explain_of` gives a
    /// rule's `explain`.
    pub fn judge_next<'r>(
        &mut self,
        before: Option<i64>,
        explain_of: impl Fn(usize) -> Option<&'r Explain>,
    ) -> Judged<T> {
        let Some((deadline, _)) = self.queue.first() else {
            return Judged::Nothing;
        };
        if before.is_some_and(|b| deadline >= b) {
            return Judged::Nothing;
        }
        match self.queue.pop() {
            Some(job) => self.judge(job, explain_of),
            None => Judged::Nothing,
        }
    }

    /// Whether more than `max_pending` accesses wait (the caller then
    /// judges the earliest early and counts it with [`Self::count_forced`]).
    pub fn over_capacity(&self) -> bool {
        self.queue.len() > self.cfg.max_pending
    }

    pub fn count_forced(&mut self) {
        self.stats.forced += 1;
    }

    fn judge<'r>(
        &mut self,
        job: Job<T>,
        explain_of: impl Fn(usize) -> Option<&'r Explain>,
    ) -> Judged<T> {
        let about = About {
            t: job.time,
            user: job.user,
            dept: job.department,
            visits: self.patients.get(&job.patient).map(Vec::as_slice),
            facts: self.pairs.get(&(job.user, job.patient)),
        };
        let Some((rule, payload)) = job.rule.map(|b| *b) else {
            self.stats.access_events += 1;
            let (mut any, mut primary) = (false, false);
            for (i, k) in Kind::ALL.iter().enumerate() {
                if self.kinds.contains(k) && self.holds(*k, self.general, &about) {
                    self.stats.by_kind[i] += 1;
                    any = true;
                    primary |= *k != Kind::Repeat;
                }
            }
            self.stats.explained_accesses += u64::from(any);
            if primary {
                self.add_fact(job.user, job.patient, REPEAT, job.time);
            }
            return Judged::Own;
        };
        let explained = explain_of(rule).is_some_and(|ex| {
            ex.kinds
                .iter()
                .any(|k| self.holds(*k, Params::of(ex), &about))
        });
        self.stats.rule_checks += 1;
        self.stats.unexplained += u64::from(!explained);
        Judged::Rule(Verdict {
            time: job.time,
            rule,
            payload,
            explained,
        })
    }

    /// Whether kind `k` explains the access `a`.
    fn holds(&self, k: Kind, p: Params, a: &About<'_>) -> bool {
        let t = a.t;
        let latest = t.saturating_add(p.grace_ms);
        let visits = a.visits.unwrap_or_default();
        match k {
            Kind::Clinician => visits.iter().any(|v| {
                v.clinician == a.user
                    && v.booked <= latest
                    && (v.scheduled - t).abs() <= p.window_ms
            }),
            Kind::Department => {
                a.dept != 0
                    && visits.iter().any(|v| {
                        v.booked <= latest
                            && (v.scheduled - t).abs() <= p.visit_day_ms
                            && a.dept
                                == if v.department != 0 {
                                    v.department
                                } else {
                                    self.users.get(&v.clinician).copied().unwrap_or(0)
                                }
                    })
            }
            Kind::CareTeam | Kind::Record | Kind::Claim | Kind::Repeat => {
                let Some(facts) = a.facts else {
                    return false;
                };
                match k {
                    Kind::CareTeam => facts.any(CARE, t, p.visit_day_ms, p.grace_ms),
                    Kind::Record => facts.any(RECORD, t, p.window_ms, p.grace_ms),
                    Kind::Claim => facts.any(CLAIM, t, p.window_ms, p.grace_ms),
                    // An earlier explained access: a in [t - window, t).
                    _ => facts.any(REPEAT, t - 1, p.window_ms - 1, 0),
                }
            }
        }
    }
}

/// The access being judged and what is known of its patient and pair.
struct About<'a> {
    t: i64,
    user: u64,
    dept: u64,
    visits: Option<&'a [Visit]>,
    facts: Option<&'a PairFacts>,
}

#[cfg(test)]
#[path = "explain_tests.rs"]
mod tests;

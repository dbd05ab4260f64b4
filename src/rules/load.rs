//! Loading rule files into a compiled [`RuleSet`]: every `.yml`/`.yaml`
//! file of a directory (recursively, in path order), each possibly holding
//! several YAML documents. Loading is all-or-nothing: any error anywhere
//! gives the full list of errors and no rule set, so a bad reload leaves the
//! running set in place.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::absence::Absence;
use super::baseline::Baseline;
use super::detection::{At, Detection, at, compile};
use super::dormant::Dormant;
use super::explain::{self, Explain};
use super::field::Field;
use super::habit::Habit;
use super::relation::{self, Join};
use super::yaml::{Node, NodeKind, Pos, parse_documents};
use super::{Level, LoadError};

/// Largest rule file read.
pub const MAX_RULE_FILE_BYTES: u64 = 1 << 20;
/// Most rule files in one directory tree.
pub const MAX_RULE_FILES: usize = 10_000;
/// Deepest directory nesting walked.
const MAX_DIR_DEPTH: usize = 8;
/// Folder of response playbooks inside the rules folder, skipped by the
/// rule loader (`crate::response::playbook` reads it).
pub const PLAYBOOKS_DIR: &str = "playbooks";
/// Longest correlation timespan (31 days), which bounds how long state lives.
pub const MAX_TIMESPAN_MS: i64 = 31 * 86_400_000;

/// What every rule carries for alerts and listings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleMeta {
    /// The rule's `id`, or its `name` when it has no id.
    pub id: String,
    pub name: Option<String>,
    pub title: String,
    pub description: Option<String>,
    pub level: Level,
    pub tags: Vec<String>,
    /// sealtrail extension: the response playbook this rule's alerts start
    /// (`playbook: NAME`, a file in `playbooks/`); `None` means the
    /// playbook that matches the alert's severity.
    pub playbook: Option<String>,
    /// Where the `playbook:` value is (for errors about the name).
    pub playbook_pos: Option<Pos>,
    /// The file and line of the document.
    pub file: PathBuf,
    pub line: usize,
    /// Whether a firing of this rule is reported as an alert. False for rules
    /// that only feed correlations (Sigma `generate: false`, the default).
    pub standalone: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorrelationType {
    EventCount,
    ValueCount,
    Temporal,
    TemporalOrdered,
    /// sealtrail extension: a value (or, without `field`, any activity)
    /// not seen for the group within a history window.
    FirstSeen,
    /// sealtrail extension: a checked event with no recorded relation of
    /// its key near its time (`super::relation`).
    Relation,
    /// sealtrail extension: a checked event while its key's state is set
    /// (`super::relation`).
    State,
    /// sealtrail extension: no hit of a group for a span (`absence.rs`).
    Absence,
    /// sealtrail extension: a group's count in a window far above its own
    /// trailing median (`baseline.rs`).
    Baseline,
    /// sealtrail extension: a checked event at an hour its group does not
    /// work, learnt per group (`habit.rs`).
    Habit,
    /// sealtrail extension: an account active again after a long silence,
    /// or first seen long after its hire date (`dormant.rs`).
    Dormant,
}

impl CorrelationType {
    pub fn as_str(self) -> &'static str {
        match self {
            CorrelationType::EventCount => "event_count",
            CorrelationType::ValueCount => "value_count",
            CorrelationType::Temporal => "temporal",
            CorrelationType::TemporalOrdered => "temporal_ordered",
            CorrelationType::FirstSeen => "first_seen",
            CorrelationType::Relation => "relation",
            CorrelationType::State => "state",
            CorrelationType::Absence => "absence",
            CorrelationType::Baseline => "baseline",
            CorrelationType::Habit => "habit",
            CorrelationType::Dormant => "dormant",
        }
    }
}

/// `condition` of a correlation: every bound given must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CountCondition {
    pub gt: Option<u64>,
    pub gte: Option<u64>,
    pub lt: Option<u64>,
    pub lte: Option<u64>,
    pub eq: Option<u64>,
}

impl CountCondition {
    pub fn holds(&self, n: u64) -> bool {
        self.gt.is_none_or(|v| n > v)
            && self.gte.is_none_or(|v| n >= v)
            && self.lt.is_none_or(|v| n < v)
            && self.lte.is_none_or(|v| n <= v)
            && self.eq.is_none_or(|v| n == v)
    }

    /// Whether the condition has an upper bound (`lt`, `lte`, `eq`): then
    /// more hits can make it false again, so it is judged over the whole
    /// window when the window closes instead of on the hit that first
    /// satisfies it.
    pub fn bounded_above(&self) -> bool {
        self.lt.is_some() || self.lte.is_some() || self.eq.is_some()
    }

    /// Whether no count of `n` or more can satisfy the condition (the
    /// upper bound is passed).
    pub fn exceeded(&self, n: u64) -> bool {
        self.lt.is_some_and(|v| n >= v)
            || self.lte.is_some_and(|v| n > v)
            || self.eq.is_some_and(|v| n > v)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Detection(usize),
    Correlation(usize),
}

/// Where one group-by value of a member comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupSource {
    /// A field of the matched event.
    Field(Field),
    /// The n-th group value of the firing inner correlation.
    Inner(usize),
}

/// One rule a correlation refers to.
#[derive(Debug, Clone)]
pub struct Member {
    pub source: Source,
    pub group: Vec<GroupSource>,
}

#[derive(Debug, Clone)]
pub struct DetectionRule {
    pub meta: RuleMeta,
    pub detection: Detection,
    /// sealtrail extension: matches only when no listed explanation holds
    /// (`super::explain`).
    pub explain: Option<Explain>,
}

#[derive(Debug, Clone)]
pub struct CorrelationRule {
    pub meta: RuleMeta,
    pub kind: CorrelationType,
    pub members: Vec<Member>,
    pub group_by: Vec<String>,
    pub timespan_ms: i64,
    pub condition: CountCondition,
    /// The counted field of `value_count`; the remembered field of
    /// `first_seen`.
    pub value_field: Option<Field>,
    /// `first_seen` only.
    pub first_seen: Option<FirstSeen>,
    /// `relation` and `state` only.
    pub join: Option<Join>,
    /// `absence` only.
    pub absence: Option<Absence>,
    /// `baseline` only.
    pub baseline: Option<Baseline>,
    /// `habit` only.
    pub habit: Option<Habit>,
    /// `dormant` only.
    pub dormant: Option<Dormant>,
    /// Fed by a detection rule with `explain`: its hits come when the
    /// verdict is made (never eager).
    pub explain_fed: bool,
}

impl CorrelationRule {
    /// How far back a replay must start to rebuild this rule's state.
    pub fn replay_ms(&self) -> i64 {
        if let Some(a) = &self.absence {
            return a.replay_ms(self.timespan_ms);
        }
        if let Some(b) = &self.baseline {
            return b.replay_ms(self.timespan_ms);
        }
        self.timespan_ms
    }
}

/// Settings of a `first_seen` correlation (its `timespan_ms` is `history`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstSeen {
    /// The remembered field's name as written (`None` in dormant mode).
    pub field: Option<String>,
    /// No alert until the group's first hit is at least this old.
    pub learning_ms: i64,
    /// Dormant mode (no `field`): alert when the group's previous hit is at
    /// least this old.
    pub gap_ms: Option<i64>,
    /// Members before this index are checked (`rules`); the rest
    /// (`observe`) only start the group's learning period and remember
    /// their values, they never alert.
    pub checked: usize,
}

/// A compiled, validated set of rules.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    pub(crate) detections: Vec<DetectionRule>,
    pub(crate) correlations: Vec<CorrelationRule>,
    /// For each detection rule, the (correlation, member) pairs fed by it.
    pub(crate) detection_feeds: Vec<Vec<(usize, usize)>>,
    /// For each correlation, the (correlation, member) pairs fed by it.
    pub(crate) correlation_feeds: Vec<Vec<(usize, usize)>>,
}

impl RuleSet {
    /// Loads every `.yml`/`.yaml` file under `dir`.
    pub fn load_dir(dir: &Path) -> Result<RuleSet, Vec<LoadError>> {
        let mut files = Vec::new();
        collect_files(dir, 0, &mut files).map_err(|e| vec![e])?;
        files.sort();
        let mut sources = Vec::with_capacity(files.len());
        let mut errors = Vec::new();
        for f in files {
            match read_bounded(&f) {
                Ok(text) => sources.push((f, text)),
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        RuleSet::from_sources(&sources)
    }

    /// Compiles rules from (file name, YAML text) pairs; the names are only
    /// used in errors and rule metadata.
    pub fn from_sources(sources: &[(PathBuf, String)]) -> Result<RuleSet, Vec<LoadError>> {
        let mut errors = Vec::new();
        let mut docs = Vec::new();
        for (file, text) in sources {
            match parse_documents(text) {
                Ok(d) => docs.extend(d.into_iter().map(|n| (file.clone(), n))),
                Err(e) => errors.push(LoadError::at(file, e.pos, e.reason)),
            }
        }
        if !errors.is_empty() {
            // Still report what is wrong inside the files that parsed; rule
            // references are not checked, as the missing rule may be in a
            // file that did not parse.
            if let Err(more) = build(&docs, false) {
                errors.extend(more);
            }
            return Err(errors);
        }
        build(&docs, true)
    }

    /// Compiles rules from one YAML text (tests, `rules test` fixtures).
    pub fn from_yaml(file: &str, text: &str) -> Result<RuleSet, Vec<LoadError>> {
        RuleSet::from_sources(&[(PathBuf::from(file), text.to_owned())])
    }

    pub fn detection_rules(&self) -> impl Iterator<Item = &RuleMeta> {
        self.detections.iter().map(|r| &r.meta)
    }

    pub fn correlation_rules(&self) -> impl Iterator<Item = (&RuleMeta, CorrelationType)> {
        self.correlations.iter().map(|r| (&r.meta, r.kind))
    }

    /// Number of rules of both kinds.
    pub fn len(&self) -> usize {
        self.detections.len() + self.correlations.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The longest correlation timespan (0 when there are none): how far
    /// back a replay must start to rebuild correlation state. For absence
    /// and baseline rules it is the span their state depends on (history
    /// plus silence, or every window of the history plus the current one).
    pub fn max_timespan_ms(&self) -> i64 {
        let explained = self
            .detections
            .iter()
            .filter_map(|d| d.explain.as_ref())
            .map(|e| e.window_ms + e.grace_ms);
        self.correlations
            .iter()
            .map(CorrelationRule::replay_ms)
            .chain(explained)
            .max()
            .unwrap_or(0)
    }
}

fn collect_files(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<(), LoadError> {
    if depth > MAX_DIR_DEPTH {
        return Err(LoadError::file(dir, "rule directories nested too deeply"));
    }
    let rd = std::fs::read_dir(dir).map_err(|e| LoadError::file(dir, e.to_string()))?;
    for entry in rd {
        let entry = entry.map_err(|e| LoadError::file(dir, e.to_string()))?;
        let path = entry.path();
        let ft = entry
            .file_type()
            .map_err(|e| LoadError::file(&path, e.to_string()))?;
        if ft.is_dir() {
            // Response playbooks live beside the rules but are not rules.
            if depth == 0 && entry.file_name() == PLAYBOOKS_DIR {
                continue;
            }
            collect_files(&path, depth + 1, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yml" | "yaml")
        ) {
            if out.len() >= MAX_RULE_FILES {
                return Err(LoadError::file(
                    dir,
                    format!("more than {MAX_RULE_FILES} rule files"),
                ));
            }
            out.push(path);
        }
    }
    Ok(())
}

fn read_bounded(path: &Path) -> Result<String, LoadError> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| LoadError::file(path, e.to_string()))?;
    let mut buf = Vec::new();
    #[allow(clippy::disallowed_methods)] // bounded by `take`
    f.take(MAX_RULE_FILE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| LoadError::file(path, e.to_string()))?;
    if buf.len() as u64 > MAX_RULE_FILE_BYTES {
        return Err(LoadError::file(
            path,
            format!("larger than {MAX_RULE_FILE_BYTES} bytes"),
        ));
    }
    String::from_utf8(buf).map_err(|_| LoadError::file(path, "not utf-8"))
}

/// A correlation as written, before rule references are resolved.
struct RawCorrelation<'a> {
    meta: RuleMeta,
    kind: CorrelationType,
    rules: Vec<&'a Node>,
    group_by: Vec<&'a Node>,
    aliases: Option<&'a Node>,
    timespan_ms: i64,
    condition: CountCondition,
    value_field: Option<(Field, Pos)>,
    first_seen: Option<FirstSeen>,
    join: Option<Join>,
    absence: Option<Absence>,
    baseline: Option<Baseline>,
    habit: Option<Habit>,
    dormant: Option<Dormant>,
    generate: bool,
}

enum Raw<'a> {
    Detection(Box<DetectionRule>),
    Correlation(Box<RawCorrelation<'a>>),
}

fn build(docs: &[(PathBuf, Node)], check_refs: bool) -> Result<RuleSet, Vec<LoadError>> {
    let mut errors = Vec::new();
    let mut raws: Vec<(&PathBuf, Raw<'_>)> = Vec::new();
    for (file, doc) in docs {
        match parse_doc(file, doc) {
            Ok(Some(r)) => raws.push((file, r)),
            Ok(None) => {}
            Err(e) => errors.push(LoadError::at(file, e.pos, e.reason)),
        }
    }
    // Names and ids -> (is correlation, index).
    let mut by_ref: HashMap<String, Source> = HashMap::new();
    let (mut nd, mut nc) = (0, 0);
    let mut ids: HashMap<String, (PathBuf, usize)> = HashMap::new();
    for (file, r) in &raws {
        let (meta, src) = match r {
            Raw::Detection(d) => {
                nd += 1;
                (&d.meta, Source::Detection(nd - 1))
            }
            Raw::Correlation(c) => {
                nc += 1;
                (&c.meta, Source::Correlation(nc - 1))
            }
        };
        if let Some((f, line)) = ids.get(&meta.id) {
            errors.push(LoadError::at(
                file,
                Pos {
                    line: meta.line,
                    col: 1,
                },
                format!(
                    "duplicate rule id `{}` (also at {}:{line})",
                    meta.id,
                    f.display()
                ),
            ));
            continue;
        }
        ids.insert(meta.id.clone(), (meta.file.clone(), meta.line));
        by_ref.insert(meta.id.clone(), src);
        if let Some(n) = &meta.name {
            by_ref.entry(n.clone()).or_insert(src);
        }
    }
    if !check_refs {
        return Err(errors);
    }
    let mut set = RuleSet::default();
    let mut raw_corrs = Vec::new();
    for (file, r) in raws {
        match r {
            Raw::Detection(d) => set.detections.push(*d),
            Raw::Correlation(c) => raw_corrs.push((file, c)),
        }
    }
    set.detection_feeds = vec![Vec::new(); set.detections.len()];
    set.correlation_feeds = vec![Vec::new(); raw_corrs.len()];
    // Correlations are resolved in file order; a member correlation's group
    // list is needed, so take group_by names from the raw forms.
    let group_names: Vec<Vec<String>> = raw_corrs
        .iter()
        .map(|(_, c)| {
            c.group_by
                .iter()
                .map(|n| n.as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .collect();
    let mut generated_detections = vec![false; set.detections.len()];
    let mut generated_corrs = vec![false; raw_corrs.len()];
    let mut referenced_detections = vec![false; set.detections.len()];
    let mut referenced_corrs = vec![false; raw_corrs.len()];
    for (ci, (file, c)) in raw_corrs.iter().enumerate() {
        match resolve(ci, c, &by_ref, &set, &group_names) {
            Ok(rule) => {
                for (mi, m) in rule.members.iter().enumerate() {
                    match m.source {
                        Source::Detection(d) => {
                            set.detection_feeds[d].push((ci, mi));
                            referenced_detections[d] = true;
                            generated_detections[d] |= c.generate;
                        }
                        Source::Correlation(o) => {
                            set.correlation_feeds[o].push((ci, mi));
                            referenced_corrs[o] = true;
                            generated_corrs[o] |= c.generate;
                        }
                    }
                }
                set.correlations.push(rule);
            }
            Err(e) => errors.push(LoadError::at(file, e.pos, e.reason)),
        }
    }
    if errors.is_empty() {
        errors.extend(explain_feeds(&mut set));
    }
    if errors.is_empty()
        && let Some(ci) = find_cycle(&set)
    {
        let m = &set.correlations[ci].meta;
        errors.push(LoadError::at(
            &m.file,
            Pos {
                line: m.line,
                col: 1,
            },
            format!("correlation `{}` refers to itself through a chain", m.id),
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    for (i, d) in set.detections.iter_mut().enumerate() {
        d.meta.standalone = !referenced_detections[i] || generated_detections[i];
    }
    for (i, c) in set.correlations.iter_mut().enumerate() {
        c.meta.standalone = !referenced_corrs[i] || generated_corrs[i];
    }
    Ok(set)
}

/// Marks correlations fed by `explain` rules (never eager: their hits come
/// at the verdict, event time + grace, and take their place in time in
/// their group's window, `engine::insert_late`); such a correlation may mix
/// members with and without `explain`, but not take another correlation.
fn explain_feeds(set: &mut RuleSet) -> Vec<LoadError> {
    let mut errors = Vec::new();
    for c in &mut set.correlations {
        let graces: Vec<Option<i64>> = c
            .members
            .iter()
            .filter_map(|m| match m.source {
                Source::Detection(d) => {
                    Some(set.detections[d].explain.as_ref().map(|e| e.grace_ms))
                }
                Source::Correlation(_) => None,
            })
            .collect();
        c.explain_fed = graces.iter().any(Option::is_some);
        let mixed = c
            .members
            .iter()
            .any(|m| matches!(m.source, Source::Correlation(_)));
        if c.explain_fed && mixed {
            errors.push(LoadError::at(
                &c.meta.file,
                Pos {
                    line: c.meta.line,
                    col: 1,
                },
                format!(
                    "correlation `{}` is fed by a rule with `explain`: its members must be \
                     detection rules, not correlations",
                    c.meta.id
                ),
            ));
        }
    }
    errors
}

/// The first of `keys` present in map `c` is an error at its position,
/// worded by `why` (an attribute another correlation type uses).
pub(super) fn refuse_keys<'k>(
    c: &Node,
    keys: impl IntoIterator<Item = &'k str>,
    why: impl Fn(&str) -> String,
) -> Result<(), At> {
    match keys
        .into_iter()
        .find_map(|key| c.get(key).map(|n| (key, n)))
    {
        Some((key, n)) => Err(at(n.pos, why(key))),
        None => Ok(()),
    }
}

/// A correlation that reaches itself through its members.
fn find_cycle(set: &RuleSet) -> Option<usize> {
    let n = set.correlations.len();
    // 0 unvisited, 1 on stack, 2 done.
    let mut state = vec![0u8; n];
    fn visit(set: &RuleSet, i: usize, state: &mut [u8]) -> bool {
        if state[i] == 1 {
            return true;
        }
        if state[i] == 2 {
            return false;
        }
        state[i] = 1;
        for m in &set.correlations[i].members {
            if let Source::Correlation(o) = m.source
                && visit(set, o, state)
            {
                return true;
            }
        }
        state[i] = 2;
        false
    }
    (0..n).find(|&i| state[i] == 0 && visit(set, i, &mut state))
}

fn resolve(
    ci: usize,
    c: &RawCorrelation<'_>,
    by_ref: &HashMap<String, Source>,
    set: &RuleSet,
    group_names: &[Vec<String>],
) -> Result<CorrelationRule, At> {
    let mut members = Vec::new();
    for r in &c.rules {
        let name = r.as_str().unwrap_or_default();
        let source = *by_ref.get(name).ok_or_else(|| {
            at(
                r.pos,
                format!("correlation refers to unknown rule `{name}`"),
            )
        })?;
        if source == Source::Correlation(ci) {
            return Err(at(r.pos, "a correlation cannot refer to itself"));
        }
        if let (Source::Correlation(_), Some(_)) = (source, &c.value_field) {
            return Err(at(
                r.pos,
                "value_count over another correlation is not supported",
            ));
        }
        if let (Source::Correlation(_), CorrelationType::FirstSeen) = (source, c.kind) {
            return Err(at(
                r.pos,
                "first_seen over another correlation is not supported",
            ));
        }
        if let (Source::Correlation(_), true) = (
            source,
            c.join.is_some() || c.habit.is_some() || c.dormant.is_some(),
        ) {
            return Err(at(
                r.pos,
                format!(
                    "{} over another correlation is not supported",
                    c.kind.as_str()
                ),
            ));
        }
        let member_name = match source {
            Source::Detection(d) => set.detections[d].meta.name.clone(),
            Source::Correlation(_) => None,
        };
        let mut group = Vec::new();
        for g in &c.group_by {
            let gname = g.as_str().unwrap_or_default();
            let aliased = alias_for(c.aliases, gname, name, member_name.as_deref(), g.pos)?;
            let field_name = aliased.as_deref().unwrap_or(gname);
            group.push(match source {
                Source::Detection(_) => {
                    GroupSource::Field(Field::parse(field_name).ok_or_else(|| {
                        at(g.pos, format!("unknown group-by field `{field_name}`"))
                    })?)
                }
                Source::Correlation(o) => GroupSource::Inner(
                    group_names[o]
                        .iter()
                        .position(|n| n == field_name)
                        .ok_or_else(|| {
                            at(
                                g.pos,
                                format!(
                                    "group-by `{field_name}` is not a group-by field of \
                                     correlation `{name}`"
                                ),
                            )
                        })?,
                ),
            });
        }
        members.push(Member { source, group });
    }
    Ok(CorrelationRule {
        meta: c.meta.clone(),
        kind: c.kind,
        members,
        group_by: c
            .group_by
            .iter()
            .map(|n| n.as_str().unwrap_or_default().to_owned())
            .collect(),
        timespan_ms: c.timespan_ms,
        condition: c.condition.clone(),
        value_field: c.value_field.as_ref().map(|(f, _)| f.clone()),
        first_seen: c.first_seen.clone(),
        join: c.join.clone(),
        absence: c.absence.clone(),
        baseline: c.baseline.clone(),
        habit: c.habit.clone(),
        dormant: c.dormant.clone(),
        explain_fed: false,
    })
}

/// The field an alias maps to for one member, `None` when `group` is no alias.
fn alias_for(
    aliases: Option<&Node>,
    group: &str,
    member_ref: &str,
    member_name: Option<&str>,
    pos: Pos,
) -> Result<Option<String>, At> {
    let Some(map) = aliases.and_then(|a| a.get(group)) else {
        return Ok(None);
    };
    let hit = map
        .get(member_ref)
        .or_else(|| member_name.and_then(|n| map.get(n)));
    match hit.and_then(Node::as_str) {
        Some(f) => Ok(Some(f.to_owned())),
        None => Err(at(
            pos,
            format!("alias `{group}` names no field for rule `{member_ref}`"),
        )),
    }
}

fn str_of<'a>(doc: &'a Node, key: &str) -> Result<Option<&'a str>, At> {
    match doc.get(key) {
        None => Ok(None),
        Some(n) if n.is_null() => Ok(None),
        Some(n) => n
            .as_str()
            .map(Some)
            .ok_or_else(|| at(n.pos, format!("`{key}` must be a string"))),
    }
}

fn meta(file: &Path, doc: &Node) -> Result<RuleMeta, At> {
    let title = str_of(doc, "title")?
        .ok_or_else(|| at(doc.pos, "rule has no title"))?
        .to_owned();
    let id = str_of(doc, "id")?.map(str::to_owned);
    let name = str_of(doc, "name")?.map(str::to_owned);
    let Some(rid) = id.clone().or_else(|| name.clone()) else {
        return Err(at(doc.pos, "rule needs an id or a name"));
    };
    let level = match doc.get("level") {
        None => Level::Medium,
        Some(n) => n.as_str().and_then(Level::parse).ok_or_else(|| {
            at(
                n.pos,
                "level must be informational, low, medium, high or critical",
            )
        })?,
    };
    let tags = match doc.get("tags") {
        None => Vec::new(),
        Some(Node {
            kind: NodeKind::Seq(items),
            ..
        }) => items
            .iter()
            .map(|t| {
                t.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| at(t.pos, "tags must be strings"))
            })
            .collect::<Result<_, _>>()?,
        Some(n) => return Err(at(n.pos, "tags must be a list")),
    };
    Ok(RuleMeta {
        id: rid,
        name,
        title,
        description: str_of(doc, "description")?.map(str::to_owned),
        level,
        tags,
        playbook: str_of(doc, "playbook")?.map(str::to_owned),
        playbook_pos: doc.get("playbook").map(|n| n.pos),
        file: file.to_owned(),
        line: doc.pos.line,
        standalone: true,
    })
}

fn parse_doc<'a>(file: &Path, doc: &'a Node) -> Result<Option<Raw<'a>>, At> {
    if doc.is_null() {
        return Ok(None); // an empty document, e.g. a trailing `---`
    }
    if !matches!(doc.kind, NodeKind::Map(_)) {
        return Err(at(doc.pos, "a rule document must be a map"));
    }
    if doc.get("filter").is_some() {
        return Err(at(doc.pos, "sigma filter rules are not supported"));
    }
    if let Some(c) = doc.get("correlation") {
        if let Some(e) = doc.get("explain") {
            return Err(at(
                e.pos,
                "`explain` is for detection rules (a correlation counts its members' unexplained matches)",
            ));
        }
        return parse_correlation(file, doc, c).map(|c| Some(Raw::Correlation(Box::new(c))));
    }
    let Some(det) = doc.get("detection") else {
        return Err(at(
            doc.pos,
            "not a sigma rule: no detection or correlation section",
        ));
    };
    if let Some(ls) = doc.get("logsource")
        && let Some(p) = ls.get("product")
        && p.as_str() != Some("sealtrail")
    {
        return Err(at(p.pos, "logsource product must be sealtrail (or absent)"));
    }
    let meta = meta(file, doc)?;
    let detection: Detection = compile(det)?;
    let explain = doc.get("explain").map(explain::parse).transpose()?;
    Ok(Some(Raw::Detection(Box::new(DetectionRule {
        meta,
        detection,
        explain,
    }))))
}

/// Parses `5s`, `10m`, `1h`, `2d` (lowercase unit, as the Sigma
/// specification writes it) into milliseconds.
pub fn parse_timespan(s: &str) -> Option<i64> {
    let unit = s.chars().last()?;
    let digits = &s[..s.len() - unit.len_utf8()];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 9 {
        return None;
    }
    let n: i64 = digits.parse().ok()?;
    let ms = match unit {
        's' => 1_000,
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => 86_400_000,
        _ => return None,
    };
    let v = n.checked_mul(ms)?;
    (v > 0 && v <= MAX_TIMESPAN_MS).then_some(v)
}

fn parse_correlation<'a>(
    file: &Path,
    doc: &'a Node,
    c: &'a Node,
) -> Result<RawCorrelation<'a>, At> {
    let mut meta = meta(file, doc)?;
    meta.standalone = true;
    let NodeKind::Map(_) = &c.kind else {
        return Err(at(c.pos, "correlation must be a map"));
    };
    if let NodeKind::Map(entries) = &c.kind {
        for (k, _) in entries {
            let key = k.as_str().unwrap_or_default();
            if ![
                "type",
                "rules",
                "group-by",
                "timespan",
                "condition",
                "aliases",
                "generate",
                "field",
                "history",
                "learning",
                "observe",
                "gap",
                "min_count",
                "gap_factor",
                "gap_by",
                "factor",
                "peers",
            ]
            .contains(&key)
                && !relation::JOIN_KEYS.contains(&key)
                && !super::habit::HABIT_KEYS.contains(&key)
                && !super::dormant::DORMANT_KEYS.contains(&key)
            {
                return Err(at(k.pos, format!("unknown correlation attribute `{key}`")));
            }
        }
    }
    let ty = c
        .get("type")
        .ok_or_else(|| at(c.pos, "correlation has no type"))?;
    let kind = match ty.as_str() {
        Some("event_count") => CorrelationType::EventCount,
        Some("value_count") => CorrelationType::ValueCount,
        Some("temporal") => CorrelationType::Temporal,
        Some("temporal_ordered") => CorrelationType::TemporalOrdered,
        Some("first_seen") => CorrelationType::FirstSeen,
        Some("relation") => CorrelationType::Relation,
        Some("state") => CorrelationType::State,
        Some("absence") => CorrelationType::Absence,
        Some("baseline") => CorrelationType::Baseline,
        Some("habit") => CorrelationType::Habit,
        Some("dormant") => CorrelationType::Dormant,
        _ => {
            return Err(at(
                ty.pos,
                "correlation type must be event_count, value_count, temporal, temporal_ordered, \
                 first_seen, relation, state, absence, baseline, habit or dormant",
            ));
        }
    };
    let list = |key: &str, required: bool| -> Result<Vec<&'a Node>, At> {
        match c.get(key) {
            None if required => Err(at(c.pos, format!("correlation has no `{key}`"))),
            None => Ok(Vec::new()),
            Some(
                n @ Node {
                    kind: NodeKind::Scalar { .. },
                    ..
                },
            ) => Ok(vec![n]),
            Some(Node {
                kind: NodeKind::Seq(items),
                pos,
            }) => {
                if let Some(bad) = items.iter().find(|i| i.as_str().is_none()) {
                    return Err(at(bad.pos, format!("`{key}` entries must be strings")));
                }
                if required && items.is_empty() {
                    return Err(at(*pos, format!("`{key}` is empty")));
                }
                Ok(items.iter().collect())
            }
            Some(n) => Err(at(n.pos, format!("`{key}` must be a list"))),
        }
    };
    let rules = list("rules", true)?;
    if kind != CorrelationType::FirstSeen
        && let Some(n) = c.get("observe")
    {
        return Err(at(n.pos, "`observe` is only for first_seen"));
    }
    let group_by = list("group-by", false)?;
    let generate = match c.get("generate").or_else(|| doc.get("generate")) {
        None => false,
        Some(g) => g
            .as_bool()
            .ok_or_else(|| at(g.pos, "generate must be true or false"))?,
    };
    let aliases = c.get("aliases");
    if let Some(a) = aliases
        && !matches!(a.kind, NodeKind::Map(_))
    {
        return Err(at(a.pos, "aliases must be a map"));
    }
    let join = matches!(kind, CorrelationType::Relation | CorrelationType::State);
    if !join {
        refuse_keys(c, relation::JOIN_KEYS, |key| {
            format!("`{key}` is only for relation and state")
        })?;
    }
    if kind != CorrelationType::Habit {
        refuse_keys(c, super::habit::HABIT_KEYS, |key| {
            format!("`{key}` is only for habit")
        })?;
    } else {
        let spec = super::habit::parse(c, rules, &list)?;
        return Ok(RawCorrelation {
            meta,
            kind,
            rules: spec.rules,
            group_by,
            aliases,
            timespan_ms: spec.history_ms,
            condition: CountCondition::default(),
            value_field: None,
            first_seen: None,
            join: None,
            absence: None,
            baseline: None,
            habit: Some(spec.habit),
            dormant: None,
            generate,
        });
    }
    if kind != CorrelationType::Dormant {
        refuse_keys(c, super::dormant::DORMANT_KEYS, |key| {
            format!("`{key}` is only for dormant")
        })?;
    } else {
        let spec = super::dormant::parse(c, rules, &list)?;
        return Ok(RawCorrelation {
            meta,
            kind,
            rules: spec.rules,
            group_by,
            aliases,
            timespan_ms: spec.history_ms,
            condition: CountCondition::default(),
            value_field: spec.since,
            first_seen: None,
            join: None,
            absence: None,
            baseline: None,
            habit: None,
            dormant: Some(spec.dormant),
            generate,
        });
    }
    if kind == CorrelationType::FirstSeen {
        let (timespan_ms, value_field, mut first_seen) = parse_first_seen(c)?;
        let mut rules = rules;
        first_seen.checked = rules.len();
        for r in list("observe", false)? {
            let n = r.as_str().unwrap_or_default();
            if rules.iter().any(|o| o.as_str() == Some(n)) {
                return Err(at(
                    r.pos,
                    format!("rule `{n}` is listed twice in this first_seen"),
                ));
            }
            rules.push(r);
        }
        return Ok(RawCorrelation {
            meta,
            kind,
            rules,
            group_by,
            aliases,
            timespan_ms,
            condition: CountCondition::default(),
            value_field,
            first_seen: Some(first_seen),
            join: None,
            absence: None,
            baseline: None,
            habit: None,
            dormant: None,
            generate,
        });
    }
    if join {
        let spec = relation::parse(c, kind, rules, &list)?;
        return Ok(RawCorrelation {
            meta,
            kind,
            rules: spec.rules,
            group_by,
            aliases,
            timespan_ms: spec.join.span_ms(),
            condition: CountCondition::default(),
            value_field: spec.time_field,
            first_seen: None,
            join: Some(spec.join),
            absence: None,
            baseline: None,
            habit: None,
            dormant: None,
            generate,
        });
    }
    if matches!(kind, CorrelationType::Absence | CorrelationType::Baseline) {
        let (timespan_ms, absence, baseline, value_field) = if kind == CorrelationType::Absence {
            let (ts, a) = super::absence::parse(c)?;
            (ts, Some(a), None, None)
        } else {
            let (ts, b, peers) = super::baseline::parse(c)?;
            (ts, None, Some(b), peers)
        };
        return Ok(RawCorrelation {
            meta,
            kind,
            rules,
            group_by,
            aliases,
            timespan_ms,
            condition: CountCondition::default(),
            value_field,
            first_seen: None,
            join: None,
            absence,
            baseline,
            habit: None,
            dormant: None,
            generate,
        });
    }
    for (key, types) in [
        ("field", "first_seen"),
        ("history", "first_seen, state, absence and baseline"),
        ("learning", "first_seen"),
        ("gap", "first_seen"),
        ("min_count", "absence and baseline"),
        ("gap_factor", "absence"),
        ("gap_by", "absence"),
        ("factor", "baseline"),
        ("peers", "baseline"),
    ] {
        if let Some(n) = c.get(key) {
            return Err(at(n.pos, format!("`{key}` is only for {types}")));
        }
    }
    let ts = c
        .get("timespan")
        .ok_or_else(|| at(c.pos, "correlation has no timespan"))?;
    let timespan_ms = ts.as_str().and_then(parse_timespan).ok_or_else(|| {
        at(
            ts.pos,
            format!(
                "invalid timespan `{}`: a positive number and s, m, h or d, at most 31d",
                ts.as_str().unwrap_or_default()
            ),
        )
    })?;
    let mut condition = CountCondition::default();
    let mut value_field = None;
    match c.get("condition") {
        None => {
            if matches!(
                kind,
                CorrelationType::EventCount | CorrelationType::ValueCount
            ) {
                return Err(at(c.pos, "correlation has no condition"));
            }
        }
        Some(Node {
            kind: NodeKind::Map(entries),
            pos,
        }) => {
            if entries.is_empty() {
                return Err(at(*pos, "condition is empty"));
            }
            for (k, v) in entries {
                let key = k.as_str().unwrap_or_default();
                if key == "field" {
                    let name = v.as_str().unwrap_or_default();
                    let f = Field::parse(name)
                        .ok_or_else(|| at(v.pos, format!("unknown field `{name}`")))?;
                    value_field = Some((f, v.pos));
                    continue;
                }
                let n: u64 = v
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| at(v.pos, "condition values must be non-negative integers"))?;
                let slot = match key {
                    "gt" => &mut condition.gt,
                    "gte" => &mut condition.gte,
                    "lt" => &mut condition.lt,
                    "lte" => &mut condition.lte,
                    "eq" => &mut condition.eq,
                    _ => {
                        return Err(at(
                            k.pos,
                            format!("unknown condition `{key}`: use gt, gte, lt, lte, eq"),
                        ));
                    }
                };
                *slot = Some(n);
            }
            if condition == CountCondition::default() {
                return Err(at(*pos, "condition has no bound (gt, gte, lt, lte, eq)"));
            }
        }
        Some(n) => return Err(at(n.pos, "condition must be a map such as {gte: 10}")),
    }
    match (kind, &value_field) {
        (CorrelationType::ValueCount, None) => {
            return Err(at(c.pos, "value_count needs condition.field"));
        }
        (CorrelationType::ValueCount, Some(_)) => {}
        (_, Some((_, pos))) => {
            return Err(at(*pos, "condition.field is only for value_count"));
        }
        _ => {}
    }
    if matches!(
        kind,
        CorrelationType::Temporal | CorrelationType::TemporalOrdered
    ) && c.get("condition").is_none()
    {
        condition.gte = Some(rules.len() as u64);
    }
    Ok(RawCorrelation {
        meta,
        kind,
        rules,
        group_by,
        aliases,
        timespan_ms,
        condition,
        value_field,
        first_seen: None,
        join: None,
        absence: None,
        baseline: None,
        habit: None,
        dormant: None,
        generate,
    })
}

/// A duration of an extension (first_seen, absence, relation, state): like
/// a timespan (at most 31d, as it bounds how long state lives and how far a
/// rebuild replays).
pub(crate) fn duration(c: &Node, key: &str) -> Result<Option<i64>, At> {
    let Some(n) = c.get(key) else {
        return Ok(None);
    };
    n.as_str()
        .and_then(parse_timespan)
        .map(Some)
        .ok_or_else(|| {
            at(
                n.pos,
                format!(
                    "invalid {key} `{}`: a positive number and s, m, h or d, at most 31d",
                    n.as_str().unwrap_or_default()
                ),
            )
        })
}

/// A first_seen correlation's history (ms), remembered field and settings.
type FirstSeenParts = (i64, Option<(Field, Pos)>, FirstSeen);

/// `history`, `field`, `learning` and `gap` of a first_seen correlation.
fn parse_first_seen(c: &Node) -> Result<FirstSeenParts, At> {
    let unused = [
        "timespan",
        "condition",
        "min_count",
        "gap_factor",
        "factor",
        "peers",
    ];
    refuse_keys(c, unused, |key| {
        format!("`{key}` is not used by first_seen (use history, learning, gap)")
    })?;
    let history_ms =
        duration(c, "history")?.ok_or_else(|| at(c.pos, "first_seen has no `history`"))?;
    let learning_ms = duration(c, "learning")?.unwrap_or(0);
    let value_field = match c.get("field") {
        None => None,
        Some(v) => {
            let name = v
                .as_str()
                .ok_or_else(|| at(v.pos, "`field` must be a field name"))?;
            let f =
                Field::parse(name).ok_or_else(|| at(v.pos, format!("unknown field `{name}`")))?;
            Some((f, v.pos))
        }
    };
    let gap_ms = duration(c, "gap")?;
    match (&value_field, gap_ms) {
        (Some(_), Some(_)) => {
            if let Some(n) = c.get("gap") {
                return Err(at(
                    n.pos,
                    "`gap` is for the dormant mode of first_seen (without `field`)",
                ));
            }
        }
        (None, None) => {
            return Err(at(
                c.pos,
                "first_seen needs `field` (new value) or `gap` (first activity after a gap)",
            ));
        }
        (None, Some(g)) if g > history_ms => {
            if let Some(n) = c.get("gap") {
                return Err(at(
                    n.pos,
                    "`gap` must not exceed `history` (a group is forgotten after history)",
                ));
            }
        }
        _ => {}
    }
    Ok((
        history_ms,
        value_field,
        FirstSeen {
            field: c.get("field").and_then(Node::as_str).map(str::to_owned),
            learning_ms,
            gap_ms,
            checked: usize::MAX,
        },
    ))
}

//! Playbooks: YAML files in `<rules dir>/playbooks/` that say what an alert
//! starts. Loaded with the rules and reloaded with them, all-or-nothing: a
//! set with any error is rejected with file:line:column: reason and the
//! previous set stays active.
//!
//! ```yaml
//! name: page-oncall                 # rules say `playbook: page-oncall`
//! description: Page the on-call responder, escalate when nobody answers
//! match:
//!   severity: [critical, high]      # default for alerts of these severities
//! include_phi: false                # patient fields masked in messages
//! runbook: |                        # optional: "What to do", quoted in every message
//!   Call the user; if they did not do this, lock the account.
//! group_wait: 30s                   # optional, overrides [response]
//! group_interval: 5m
//! steps:
//!   - open_incident
//!   - email:
//!       level: current              # current | a level name; or `to: [addresses]`
//!       subject: "[{{severity}}] {{title}}"
//!   - webhook:
//!       level: current              # the level's webhook; or `url:` + `secret:`
//!   - wait_ack                      # or `wait_ack: 10m`; default the level's ack_timeout
//!   - escalate
//!   - resolve_after: 24h
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::config::{OncallConfig, valid_address, valid_name, valid_url};
use crate::pipeline::silence::parse_duration;
use crate::rules::yaml::{Node, NodeKind, Pos, parse_documents};
use crate::rules::{Level, LoadError, PLAYBOOKS_DIR, RuleSet};

/// Most playbook files read.
const MAX_PLAYBOOK_FILES: usize = 1000;
/// Largest playbook file.
const MAX_PLAYBOOK_BYTES: u64 = 256 * 1024;
/// Most notification steps in one playbook.
pub const MAX_NOTIFY_STEPS: usize = 16;
/// Longest template.
const MAX_TEMPLATE_CHARS: usize = 16 * 1024;

/// A placeholder of a subject or body template (`{{name}}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Var {
    Title,
    RuleId,
    Severity,
    Group,
    Count,
    FirstTime,
    LastTime,
    EventIndices,
    Incident,
    AckLink,
    Level,
    Round,
    Playbook,
    OpenedAt,
    Description,
    Facts,
    EventLines,
    Explanation,
    Runbook,
    IncidentLink,
}

const VARS: &[(&str, Var)] = &[
    ("title", Var::Title),
    ("rule", Var::RuleId),
    ("rule_id", Var::RuleId),
    ("severity", Var::Severity),
    ("group", Var::Group),
    ("count", Var::Count),
    ("first_time", Var::FirstTime),
    ("last_time", Var::LastTime),
    ("event_indices", Var::EventIndices),
    ("incident", Var::Incident),
    ("ack_link", Var::AckLink),
    ("level", Var::Level),
    ("round", Var::Round),
    ("playbook", Var::Playbook),
    ("opened_at", Var::OpenedAt),
    ("description", Var::Description),
    ("facts", Var::Facts),
    ("event_lines", Var::EventLines),
    ("explanation", Var::Explanation),
    ("runbook", Var::Runbook),
    ("incident_link", Var::IncidentLink),
];

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Lit(String),
    Var(Var),
}

/// A parsed template; unknown placeholders are load errors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template(Vec<Piece>);

impl Template {
    pub fn parse(text: &str) -> Result<Template, String> {
        if text.chars().count() > MAX_TEMPLATE_CHARS {
            return Err(format!(
                "template longer than {MAX_TEMPLATE_CHARS} characters"
            ));
        }
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                pieces.push(Piece::Lit(rest[..open].to_owned()));
            }
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| "`{{` without `}}`".to_owned())?;
            let name = after[..close].trim();
            let var = VARS
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| *v)
                .ok_or_else(|| {
                    format!(
                        "unknown placeholder `{{{{{name}}}}}` (known: {})",
                        VARS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                    )
                })?;
            pieces.push(Piece::Var(var));
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Lit(rest.to_owned()));
        }
        Ok(Template(pieces))
    }

    pub fn render(&self, value: impl Fn(Var) -> String) -> String {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Piece::Lit(s) => out.push_str(s),
                Piece::Var(v) => out.push_str(&value(*v)),
            }
        }
        out
    }
}

pub const DEFAULT_SUBJECT: &str = "[sealtrail {{severity}}] {{title}} ({{incident}})";
pub const DEFAULT_BODY: &str = "{{title}} ({{severity}})

{{description}}

{{facts}}

First events:
{{event_lines}}

{{explanation}}

What to do:
{{runbook}}

Open the incident:       {{incident_link}}
Acknowledge (one click): {{ack_link}}

Incident:  {{incident}} ({{round}} notification to {{level}})
Rule:      {{rule}}
Severity:  {{severity}}
Group:     {{group}}
Alerts:    {{count}} (first {{first_time}}, latest {{last_time}})
Events:    {{event_indices}} (ledger indices)
Opened:    {{opened_at}}
";

/// Longest runbook text.
const MAX_RUNBOOK_CHARS: usize = 8 * 1024;

/// Who a step notifies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recipient {
    /// The incident's current on-call level.
    Current,
    /// A named `[[oncall.levels]]` entry.
    Level(String),
    /// Literal email addresses.
    Addresses(Vec<String>),
    /// A literal webhook URL and its secret.
    Url { url: String, secret: Option<String> },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotifyStep {
    Email {
        to: Recipient,
        subject: Template,
        body: Template,
    },
    Webhook {
        to: Recipient,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Playbook {
    pub name: String,
    pub description: Option<String>,
    pub severities: Vec<Level>,
    pub include_phi: bool,
    /// `runbook:`: what the person who gets the alert should do, quoted in
    /// every email and webhook.
    pub runbook: Option<String>,
    pub group_wait: Option<Duration>,
    pub group_interval: Option<Duration>,
    /// Email and webhook steps, in file order; a round runs all of them.
    pub notify: Vec<NotifyStep>,
    /// `wait_ack`: `Some(None)` waits the level's `ack_timeout`.
    pub wait_ack: Option<Option<Duration>>,
    pub resolve_after: Option<Duration>,
    pub file: PathBuf,
    pub line: usize,
}

/// The playbooks and which one each alert starts.
#[derive(Clone, Debug, Default)]
pub struct PlaybookSet {
    pub playbooks: BTreeMap<String, Arc<Playbook>>,
    by_severity: HashMap<Level, String>,
    by_rule: HashMap<String, String>,
    /// Rule id -> the rule's `description`, for messages.
    descriptions: HashMap<String, String>,
}

impl PlaybookSet {
    /// The playbook an alert of `rule_id` with `severity` starts: the rule's
    /// own, else the one matching the severity, else none (recorded only).
    pub fn for_alert(&self, rule_id: &str, severity: &str) -> Option<&Arc<Playbook>> {
        let name = self
            .by_rule
            .get(rule_id)
            .or_else(|| Level::parse(severity).and_then(|l| self.by_severity.get(&l)))?;
        self.playbooks.get(name)
    }

    /// The `description` of rule `rule_id`, when the rule has one.
    pub fn rule_description(&self, rule_id: &str) -> Option<&str> {
        self.descriptions.get(rule_id).map(String::as_str)
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Playbook>> {
        self.playbooks.get(name)
    }

    pub fn len(&self) -> usize {
        self.playbooks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.playbooks.is_empty()
    }

    /// Loads `<rules_dir>/playbooks/` and the rules' `playbook:` references.
    /// A missing rules or playbooks folder is an empty set. What `serve`
    /// loads (start and reload) and `sealtrail rules check` reports.
    pub fn load(rules_dir: &Path, oncall: &OncallConfig) -> Result<PlaybookSet, Vec<LoadError>> {
        let mut set = PlaybookSet::load_files(rules_dir, oncall)?;
        if rules_dir.is_dir() {
            let rules = RuleSet::load_dir(rules_dir)?;
            set.link_rules(&rules)?;
        }
        Ok(set)
    }

    /// Loads `<rules_dir>/playbooks/` alone (no rule references resolved);
    /// every file's errors are collected.
    pub fn load_files(
        rules_dir: &Path,
        oncall: &OncallConfig,
    ) -> Result<PlaybookSet, Vec<LoadError>> {
        let dir = rules_dir.join(PLAYBOOKS_DIR);
        let mut sources = Vec::new();
        let mut errors = Vec::new();
        if dir.is_dir() {
            let mut files = Vec::new();
            collect(&dir, 0, &mut files).map_err(|e| vec![e])?;
            files.sort();
            for f in files {
                match read_bounded(&f) {
                    Ok(t) => sources.push((f, t)),
                    Err(e) => errors.push(e),
                }
            }
        }
        match PlaybookSet::from_sources(&sources, oncall) {
            Ok(set) if errors.is_empty() => Ok(set),
            Ok(_) => Err(errors),
            Err(more) => {
                errors.extend(more);
                Err(errors)
            }
        }
    }

    /// Compiles playbooks from (file, YAML text) pairs.
    pub fn from_sources(
        sources: &[(PathBuf, String)],
        oncall: &OncallConfig,
    ) -> Result<PlaybookSet, Vec<LoadError>> {
        let mut errors = Vec::new();
        let mut set = PlaybookSet::default();
        let mut where_: HashMap<String, (PathBuf, usize)> = HashMap::new();
        for (file, text) in sources {
            let docs = match parse_documents(text) {
                Ok(d) => d,
                Err(e) => {
                    errors.push(LoadError::at(file, e.pos, e.reason));
                    continue;
                }
            };
            for doc in docs.iter().filter(|d| !d.is_null()) {
                match parse_playbook(file, doc, oncall) {
                    Ok(p) => {
                        if let Some((f, l)) = where_.get(&p.name) {
                            errors.push(LoadError::at(
                                file,
                                doc.pos,
                                format!(
                                    "duplicate playbook `{}` (also at {}:{l})",
                                    p.name,
                                    f.display()
                                ),
                            ));
                            continue;
                        }
                        for s in &p.severities {
                            if let Some(other) = set.by_severity.get(s) {
                                errors.push(LoadError::at(
                                    file,
                                    doc.pos,
                                    format!(
                                        "severity {} already matched by playbook `{other}`",
                                        s.as_str()
                                    ),
                                ));
                            } else {
                                set.by_severity.insert(*s, p.name.clone());
                            }
                        }
                        where_.insert(p.name.clone(), (file.clone(), doc.pos.line));
                        set.playbooks.insert(p.name.clone(), Arc::new(p));
                    }
                    Err((pos, reason)) => errors.push(LoadError::at(file, pos, reason)),
                }
            }
        }
        if errors.is_empty() {
            Ok(set)
        } else {
            Err(errors)
        }
    }

    /// Resolves the rules' `playbook:` attributes; unknown names are errors
    /// at the rule.
    pub fn link_rules(&mut self, rules: &RuleSet) -> Result<(), Vec<LoadError>> {
        let mut errors = Vec::new();
        let metas = rules
            .detection_rules()
            .chain(rules.correlation_rules().map(|(m, _)| m));
        for m in metas {
            if let Some(d) = m
                .description
                .as_deref()
                .map(str::trim)
                .filter(|d| !d.is_empty())
            {
                self.descriptions.insert(m.id.clone(), d.to_owned());
            }
            if let Some(p) = &m.playbook {
                if self.playbooks.contains_key(p) {
                    self.by_rule.insert(m.id.clone(), p.clone());
                } else {
                    errors.push(LoadError::at(
                        &m.file,
                        m.playbook_pos.unwrap_or(Pos {
                            line: m.line,
                            col: 1,
                        }),
                        format!(
                            "rule `{}` names unknown playbook `{p}` (known: {})",
                            m.id,
                            if self.playbooks.is_empty() {
                                "none".to_owned()
                            } else {
                                self.playbooks
                                    .keys()
                                    .cloned()
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            }
                        ),
                    ));
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

fn collect(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<(), LoadError> {
    if depth > 4 {
        return Err(LoadError::file(dir, "playbook folders nested too deeply"));
    }
    let rd = std::fs::read_dir(dir).map_err(|e| LoadError::file(dir, e.to_string()))?;
    for entry in rd {
        let entry = entry.map_err(|e| LoadError::file(dir, e.to_string()))?;
        let path = entry.path();
        if path.is_dir() {
            collect(&path, depth + 1, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yml" | "yaml")
        ) {
            if out.len() >= MAX_PLAYBOOK_FILES {
                return Err(LoadError::file(
                    dir,
                    format!("more than {MAX_PLAYBOOK_FILES} playbook files"),
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
    f.take(MAX_PLAYBOOK_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| LoadError::file(path, e.to_string()))?;
    if buf.len() as u64 > MAX_PLAYBOOK_BYTES {
        return Err(LoadError::file(
            path,
            format!("larger than {MAX_PLAYBOOK_BYTES} bytes"),
        ));
    }
    String::from_utf8(buf).map_err(|_| LoadError::file(path, "not utf-8"))
}

type At = (Pos, String);

fn err<T>(pos: Pos, reason: impl Into<String>) -> Result<T, At> {
    Err((pos, reason.into()))
}

fn check_keys(node: &Node, allowed: &[&str], what: &str) -> Result<(), At> {
    if let NodeKind::Map(entries) = &node.kind {
        for (k, _) in entries {
            let key = k.as_str().unwrap_or_default();
            if !allowed.contains(&key) {
                return err(
                    k.pos,
                    format!(
                        "unknown {what} key `{key}` (expected one of: {})",
                        allowed.join(", ")
                    ),
                );
            }
        }
        Ok(())
    } else {
        err(node.pos, format!("{what} must be a map"))
    }
}

fn string<'a>(n: &'a Node, what: &str) -> Result<&'a str, At> {
    match &n.kind {
        NodeKind::Scalar { text, .. } if !n.is_null() => Ok(text),
        _ => err(n.pos, format!("`{what}` must be a string")),
    }
}

fn duration(n: &Node, what: &str) -> Result<Duration, At> {
    let text = string(n, what)?;
    parse_duration(text)
        .filter(|d| !d.is_zero() && *d <= Duration::from_secs(366 * 86_400))
        .ok_or_else(|| {
            (
                n.pos,
                format!("`{what}`: `{text}` is not a duration such as 500ms, 90s, 15m, 2h or 1d"),
            )
        })
}

fn level_ref(n: &Node, oncall: &OncallConfig) -> Result<Recipient, At> {
    let name = string(n, "level")?;
    if name == "current" {
        return Ok(Recipient::Current);
    }
    if oncall.index_of(name).is_none() {
        return err(
            n.pos,
            format!(
                "unknown on-call level `{name}` (configured: {}; or `current`)",
                if oncall.levels.is_empty() {
                    "none".to_owned()
                } else {
                    oncall
                        .levels
                        .iter()
                        .map(|l| l.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
        );
    }
    Ok(Recipient::Level(name.to_owned()))
}

fn template(n: Option<&Node>, default: &str, what: &str) -> Result<Template, At> {
    match n {
        None => Template::parse(default).map_err(|e| (Pos { line: 0, col: 0 }, e)),
        Some(n) => Template::parse(string(n, what)?).map_err(|e| (n.pos, format!("`{what}`: {e}"))),
    }
}

fn parse_email(n: &Node, oncall: &OncallConfig) -> Result<NotifyStep, At> {
    check_keys(n, &["level", "to", "subject", "body"], "email step")?;
    let to = match (n.get("level"), n.get("to")) {
        (Some(l), None) => level_ref(l, oncall)?,
        (None, Some(t)) => {
            let list: Vec<&Node> = match &t.kind {
                NodeKind::Seq(items) => items.iter().collect(),
                NodeKind::Scalar { .. } => vec![t],
                NodeKind::Map(_) => return err(t.pos, "`to` must be a list of addresses"),
            };
            if list.is_empty() || list.len() > 50 {
                return err(t.pos, "`to` must list 1 to 50 addresses");
            }
            let mut out = Vec::new();
            for a in list {
                let s = string(a, "to")?;
                if !valid_address(s) {
                    return err(a.pos, format!("`{s}` is not an email address"));
                }
                out.push(s.to_owned());
            }
            Recipient::Addresses(out)
        }
        _ => return err(n.pos, "an email step needs exactly one of `level` and `to`"),
    };
    Ok(NotifyStep::Email {
        to,
        subject: template(n.get("subject"), DEFAULT_SUBJECT, "subject")?,
        body: template(n.get("body"), DEFAULT_BODY, "body")?,
    })
}

fn parse_webhook(n: &Node, oncall: &OncallConfig) -> Result<NotifyStep, At> {
    check_keys(n, &["level", "url", "secret"], "webhook step")?;
    let to = match (n.get("level"), n.get("url")) {
        (Some(l), None) => {
            if let Some(s) = n.get("secret") {
                return err(
                    s.pos,
                    "`secret` goes with `url`; a level's is `webhook_secret`",
                );
            }
            level_ref(l, oncall)?
        }
        (None, Some(u)) => {
            let url = string(u, "url")?;
            if !valid_url(url) {
                return err(u.pos, "`url` must be an http:// or https:// URL");
            }
            let secret = n
                .get("secret")
                .map(|s| string(s, "secret").map(str::to_owned))
                .transpose()?;
            Recipient::Url {
                url: url.to_owned(),
                secret,
            }
        }
        _ => {
            return err(
                n.pos,
                "a webhook step needs exactly one of `level` and `url`",
            );
        }
    };
    Ok(NotifyStep::Webhook { to })
}

fn parse_playbook(file: &Path, doc: &Node, oncall: &OncallConfig) -> Result<Playbook, At> {
    check_keys(
        doc,
        &[
            "name",
            "description",
            "match",
            "include_phi",
            "runbook",
            "group_wait",
            "group_interval",
            "steps",
        ],
        "playbook",
    )?;
    let name_node = doc
        .get("name")
        .ok_or_else(|| (doc.pos, "playbook has no `name`".to_owned()))?;
    let name = string(name_node, "name")?;
    if !valid_name(name) {
        return err(name_node.pos, "`name` must be 1-64 letters, digits, - or _");
    }
    let mut severities = Vec::new();
    if let Some(m) = doc.get("match") {
        check_keys(m, &["severity"], "match")?;
        if let Some(s) = m.get("severity") {
            let items: Vec<&Node> = match &s.kind {
                NodeKind::Seq(items) => items.iter().collect(),
                _ => vec![s],
            };
            for i in items {
                let l = string(i, "severity")?;
                severities.push(Level::parse(l).ok_or_else(|| {
                    (
                        i.pos,
                        "severity must be informational, low, medium, high or critical".to_owned(),
                    )
                })?);
            }
        }
    }
    let include_phi = match doc.get("include_phi") {
        None => false,
        Some(b) => b
            .as_bool()
            .ok_or_else(|| (b.pos, "`include_phi` must be true or false".to_owned()))?,
    };
    let steps_node = doc
        .get("steps")
        .ok_or_else(|| (doc.pos, "playbook has no `steps`".to_owned()))?;
    let NodeKind::Seq(steps) = &steps_node.kind else {
        return err(steps_node.pos, "`steps` must be a list");
    };
    let mut p = Playbook {
        name: name.to_owned(),
        description: doc
            .get("description")
            .map(|d| string(d, "description").map(str::to_owned))
            .transpose()?,
        severities,
        include_phi,
        runbook: doc
            .get("runbook")
            .map(|r| {
                let text = string(r, "runbook")?.trim();
                if text.chars().count() > MAX_RUNBOOK_CHARS {
                    return err(
                        r.pos,
                        format!("`runbook` longer than {MAX_RUNBOOK_CHARS} characters"),
                    );
                }
                Ok(text.to_owned())
            })
            .transpose()?
            .filter(|t| !t.is_empty()),
        group_wait: doc
            .get("group_wait")
            .map(|d| duration(d, "group_wait"))
            .transpose()?,
        group_interval: doc
            .get("group_interval")
            .map(|d| duration(d, "group_interval"))
            .transpose()?,
        notify: Vec::new(),
        wait_ack: None,
        resolve_after: None,
        file: file.to_owned(),
        line: doc.pos.line,
    };
    let mut opened = false;
    let mut escalate_at: Option<Pos> = None;
    let mut wait_at: Option<Pos> = None;
    for (i, s) in steps.iter().enumerate() {
        let (kind, arg) = match &s.kind {
            NodeKind::Scalar { text, .. } => (text.as_str(), None),
            NodeKind::Map(entries) if entries.len() == 1 => (
                entries[0].0.as_str().unwrap_or_default(),
                Some(&entries[0].1),
            ),
            _ => {
                return err(
                    s.pos,
                    "a step is a name (`open_incident`) or a map with one key (`email: {...}`)",
                );
            }
        };
        let arg = arg.filter(|a| !a.is_null());
        match kind {
            "open_incident" => {
                if opened {
                    return err(s.pos, "`open_incident` appears twice");
                }
                if let Some(a) = arg {
                    return err(a.pos, "`open_incident` takes no settings");
                }
                opened = true;
            }
            "email" | "webhook" => {
                let a = arg.ok_or_else(|| (s.pos, format!("`{kind}` needs settings")))?;
                if p.notify.len() >= MAX_NOTIFY_STEPS {
                    return err(
                        s.pos,
                        format!("more than {MAX_NOTIFY_STEPS} notification steps"),
                    );
                }
                p.notify.push(if kind == "email" {
                    parse_email(a, oncall)?
                } else {
                    parse_webhook(a, oncall)?
                });
            }
            "wait_ack" => {
                if wait_at.is_some() {
                    return err(s.pos, "`wait_ack` appears twice");
                }
                p.wait_ack = Some(arg.map(|a| duration(a, "wait_ack")).transpose()?);
                wait_at = Some(s.pos);
                match steps.get(i + 1) {
                    Some(n) if n.as_str() == Some("escalate") => {}
                    _ => return err(s.pos, "`wait_ack` must be followed by `escalate`"),
                }
            }
            "escalate" => {
                if let Some(a) = arg {
                    return err(
                        a.pos,
                        "`escalate` takes no settings (it goes to the next level)",
                    );
                }
                if escalate_at.is_some() {
                    return err(s.pos, "`escalate` appears twice");
                }
                escalate_at = Some(s.pos);
            }
            "resolve_after" => {
                if p.resolve_after.is_some() {
                    return err(s.pos, "`resolve_after` appears twice");
                }
                let a =
                    arg.ok_or_else(|| (s.pos, "`resolve_after` needs a duration".to_owned()))?;
                p.resolve_after = Some(duration(a, "resolve_after")?);
            }
            other => {
                return err(
                    s.pos,
                    format!(
                        "unknown step `{other}` (expected open_incident, email, webhook, wait_ack, \
                         escalate or resolve_after)"
                    ),
                );
            }
        }
    }
    if !opened {
        return err(
            steps_node.pos,
            "steps need `open_incident`: notifications, acknowledgement and escalation belong to an incident",
        );
    }
    if let Some(pos) = escalate_at
        && wait_at.is_none()
    {
        return err(pos, "`escalate` must follow `wait_ack`");
    }
    if let Some(pos) = wait_at
        && p.notify.is_empty()
    {
        return err(
            pos,
            "`wait_ack` needs an email or webhook step to acknowledge",
        );
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::response::config::OncallLevel;

    fn oncall() -> OncallConfig {
        OncallConfig {
            levels: vec![
                OncallLevel {
                    name: "primary".into(),
                    emails: vec!["a@x.org".into()],
                    ..OncallLevel::default()
                },
                OncallLevel {
                    name: "secondary".into(),
                    ..OncallLevel::default()
                },
            ],
        }
    }

    fn load(text: &str) -> Result<PlaybookSet, Vec<LoadError>> {
        PlaybookSet::from_sources(&[(PathBuf::from("p.yml"), text.to_owned())], &oncall())
    }

    const GOOD: &str = "name: page
match: {severity: [high, critical]}
steps:
  - open_incident
  - email:
      level: current
      subject: \"{{severity}}: {{title}}\"
  - email: {to: [boss@x.org]}
  - webhook: {url: \"http://127.0.0.1:9/h\", secret: s3}
  - wait_ack: 10m
  - escalate
  - resolve_after: 1h
---
name: record
match: {severity: low}
steps: [open_incident, {resolve_after: 1d}]
";

    #[test]
    fn a_full_playbook_loads() {
        let set = load(GOOD).unwrap();
        let p = set.get("page").unwrap();
        assert_eq!(p.notify.len(), 3);
        assert_eq!(p.wait_ack, Some(Some(Duration::from_secs(600))));
        assert_eq!(p.resolve_after, Some(Duration::from_secs(3600)));
        assert_eq!(set.for_alert("any", "critical").unwrap().name, "page");
        assert_eq!(set.for_alert("any", "low").unwrap().name, "record");
        assert!(set.for_alert("any", "medium").is_none());
        let NotifyStep::Email { subject, .. } = &p.notify[0] else {
            panic!()
        };
        let s = subject.render(|v| format!("{v:?}"));
        assert_eq!(s, "Severity: Title");
    }

    #[test]
    fn errors_name_the_line_and_reason() {
        let cases = [
            ("name: a\nsteps: [email]\n", 2, "needs settings"),
            (
                "name: a\nsteps:\n  - open_incident\n  - email: {level: tertiary}\n",
                4,
                "unknown on-call level `tertiary`",
            ),
            (
                "name: a\nsteps:\n  - open_incident\n  - email: {level: current, subject: \"{{nope}}\"}\n",
                4,
                "unknown placeholder",
            ),
            (
                "name: a\nsteps:\n  - open_incident\n  - email: {to: [x]}\n",
                4,
                "not an email address",
            ),
            (
                "name: a\nsteps:\n  - open_incident\n  - email: {to: [a@b]}\n  - wait_ack\n",
                5,
                "followed by `escalate`",
            ),
            (
                "name: a\nsteps: [open_incident, wait_ack, escalate]\n",
                2,
                "needs an email or webhook",
            ),
            ("name: a\nsteps: [email_all]\n", 2, "unknown step"),
            (
                "name: a\nsteps: [{resolve_after: soon}]\n",
                2,
                "not a duration",
            ),
            ("name: a\nstep: []\n", 2, "unknown playbook key"),
            (
                "name: a\nsteps: [{email: {to: [a@b]}}]\n",
                2,
                "need `open_incident`",
            ),
            (
                "name: a\nmatch: {severity: urgent}\nsteps: [open_incident]\n",
                2,
                "severity must be",
            ),
        ];
        for (text, line, reason) in cases {
            let e = load(text).unwrap_err();
            assert_eq!(e[0].line, Some(line), "{text}: {e:?}");
            assert!(e[0].reason.contains(reason), "{text}: {e:?}");
        }
        let e = load("name: a\nmatch: {severity: low}\nsteps: [open_incident]\n---\nname: b\nmatch: {severity: low}\nsteps: [open_incident]\n").unwrap_err();
        assert!(e[0].reason.contains("already matched"), "{e:?}");
        let e = load("name: a\nsteps: [open_incident]\n---\nname: a\nsteps: [open_incident]\n")
            .unwrap_err();
        assert!(e[0].reason.contains("duplicate playbook"), "{e:?}");
    }

    #[test]
    fn the_shipped_pack_and_playbooks_load_and_cover_every_severity() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        let set = PlaybookSet::load(&dir, &OncallConfig::default()).unwrap();
        for s in ["critical", "high", "medium", "low", "informational"] {
            assert!(set.for_alert("no-such-rule", s).is_some(), "{s}");
        }
        // failed_login_burst names its playbook.
        let p = set
            .for_alert("031f78a8-6891-4b5a-a6e3-b4a10d1e6708", "high")
            .unwrap();
        assert_eq!(p.name, "brute-force-page");
        assert_eq!(
            set.for_alert("no-such-rule", "medium").unwrap().name,
            "privacy-review"
        );
        // Every shipped playbook says what to do; rule descriptions reach messages.
        for p in set.playbooks.values() {
            let r = p.runbook.as_deref().unwrap_or_default();
            assert!(r.lines().count() >= 2, "{}: {r:?}", p.name);
        }
        assert!(
            p.runbook
                .as_deref()
                .unwrap()
                .starts_with("1. Call the user")
        );
        assert!(
            set.rule_description("031f78a8-6891-4b5a-a6e3-b4a10d1e6708")
                .is_some_and(|d| !d.is_empty())
        );
    }

    #[test]
    fn a_runbook_is_a_trimmed_multi_line_string() {
        let set = load(
            "name: a\nrunbook: |\n  Call them.\n  Then lock it.\nsteps: [open_incident]\n---\nname: b\nsteps: [open_incident]\n",
        )
        .unwrap();
        assert_eq!(
            set.get("a").unwrap().runbook.as_deref(),
            Some("Call them.\nThen lock it.")
        );
        assert_eq!(set.get("b").unwrap().runbook, None);
        let e = load("name: a\nrunbook: [x]\nsteps: [open_incident]\n").unwrap_err();
        assert!(e[0].reason.contains("`runbook` must be a string"), "{e:?}");
        let long = format!(
            "name: a\nrunbook: {}\nsteps: [open_incident]\n",
            "x".repeat(9000)
        );
        let e = load(&long).unwrap_err();
        assert!(e[0].reason.contains("longer than"), "{e:?}");
    }

    #[test]
    fn rules_name_playbooks_and_unknown_names_are_errors() {
        let mut set = load(GOOD).unwrap();
        let rules = RuleSet::from_yaml(
            "r.yml",
            "title: t\nid: r1\nlevel: low\nplaybook: page\ndetection:\n  s:\n    action: a\n  condition: s\n",
        )
        .unwrap();
        set.link_rules(&rules).unwrap();
        assert_eq!(set.for_alert("r1", "low").unwrap().name, "page");
        let bad = RuleSet::from_yaml(
            "r.yml",
            "title: t\nid: r1\nplaybook: nope\ndetection:\n  s:\n    action: a\n  condition: s\n",
        )
        .unwrap();
        let e = set.link_rules(&bad).unwrap_err();
        assert!(
            e[0].to_string().starts_with(
                "r.yml:3:11: rule `r1` names unknown playbook `nope` (known: page, record)"
            ),
            "{e:?}"
        );
    }
}

//! Alert messages a person can act on from a phone: what happened, in words.
//!
//! [`AlertMessage`] gathers what a notification says about an incident's
//! latest alert: the rule's title and description, the group's facts (user
//! with name and role, source address, patient, count, time span), the
//! first events as one-line summaries, the privacy explanation that was not
//! found, the playbook's runbook and the two links (incident page, one-click
//! acknowledge). It renders as the placeholders of the plain-text template
//! (`{{facts}}`, `{{event_lines}}`, ...), as a self-contained HTML part and
//! as the structured fields of a webhook.
//!
//! Minimum necessary: with the playbook's `include_phi: false` no patient id
//! and no event message (free text a source may fill with anything) is put
//! in a message; the patient shows as `[masked]`.
//!
//! Every value comes from events and is attacker-influenced (user names,
//! messages): the HTML escapes each one ([`escape`]).

use crate::html::escape;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Value, json};

use super::playbook::{Template, Var};
use crate::event::{Entry, Timestamp};

/// Events shown as lines; the rest are counted and listed by ledger index.
pub const MAX_EVENT_LINES: usize = 5;
/// Longest value of one field in an event line, in characters.
const MAX_FIELD_CHARS: usize = 120;
/// What a hidden patient id shows as.
pub const MASKED: &str = "[masked]";

/// One event as a readable line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventLine {
    pub index: u64,
    pub time_ms: i64,
    pub category: String,
    pub action: String,
    pub outcome: String,
    pub user: Option<String>,
    pub user_name: Option<String>,
    pub role: Option<String>,
    pub patient: Option<String>,
    pub resource: Option<String>,
    pub address: Option<String>,
    pub system: Option<String>,
    /// The event's message; only with `include_phi`.
    pub message: Option<String>,
}

/// One line of text: control characters as spaces, cut to `MAX_FIELD_CHARS`.
fn clean(s: &str) -> String {
    let t: String = s
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_FIELD_CHARS + 1)
        .collect();
    if t.chars().count() > MAX_FIELD_CHARS {
        let mut cut: String = t.chars().take(MAX_FIELD_CHARS - 1).collect();
        cut.push('…');
        cut
    } else {
        t
    }
}

fn opt(s: Option<&str>) -> Option<String> {
    s.map(clean).filter(|s| !s.is_empty())
}

impl EventLine {
    /// The line of ledger entry `index`; patient ids and the message only
    /// with `include_phi`.
    pub fn of(index: u64, entry: &Entry, include_phi: bool) -> EventLine {
        let e = &entry.event;
        let staff = entry.enriched.as_ref().and_then(|x| x.actor.as_ref());
        let actor = e.actor.as_ref();
        EventLine {
            index,
            time_ms: e.time.unix_ms(),
            category: e.category.as_str().to_owned(),
            action: clean(&e.action),
            outcome: e.outcome.as_str().to_owned(),
            user: opt(actor.and_then(|a| a.user.as_deref())),
            user_name: opt(staff.and_then(|s| s.name.as_deref())),
            role: opt(actor
                .and_then(|a| a.role.as_deref())
                .or_else(|| staff.and_then(|s| s.role.as_deref()))),
            patient: e.patient.as_ref().map(|p| {
                if include_phi {
                    clean(&p.id)
                } else {
                    MASKED.to_owned()
                }
            }),
            resource: e.resource.as_ref().map(|r| match (&r.id, include_phi) {
                (Some(id), true) => clean(&format!("{} {id}", r.kind)),
                _ => clean(&r.kind),
            }),
            address: opt(actor.and_then(|a| a.ip.as_deref())),
            system: e.source.as_ref().map(|s| clean(&s.system)),
            message: if include_phi {
                opt(e.message.as_deref())
            } else {
                None
            },
        }
    }

    fn who(&self) -> Option<String> {
        let user = self.user.as_deref()?;
        Some(
            match person(self.user_name.as_deref(), self.role.as_deref()) {
                Some(p) => format!("{user} ({p})"),
                None => user.to_owned(),
            },
        )
    }

    /// `2026-12-07 22:40:01 UTC  login failure  user u0042 (Ann Lee, nurse)  from 10.0.0.5 ...`
    pub fn text(&self) -> String {
        let mut out = format!("{}  {} {}", utc(self.time_ms), self.action, self.outcome);
        if let Some(w) = self.who() {
            let _ = write!(out, "  user {w}");
        }
        if let Some(p) = &self.patient {
            let _ = write!(out, "  patient {p}");
        }
        if let Some(r) = &self.resource {
            let _ = write!(out, "  resource {r}");
        }
        if let Some(a) = &self.address {
            let _ = write!(out, "  from {a}");
        }
        if let Some(s) = &self.system {
            let _ = write!(out, "  via {s}");
        }
        if let Some(m) = &self.message {
            let _ = write!(out, "  \"{m}\"");
        }
        out
    }

    pub fn json(&self) -> Value {
        json!({
            "index": self.index,
            "time": utc(self.time_ms),
            "category": self.category,
            "action": self.action,
            "outcome": self.outcome,
            "user": self.user,
            "user_name": self.user_name,
            "role": self.role,
            "patient": self.patient,
            "resource": self.resource,
            "source_ip": self.address,
            "source_system": self.system,
            "message": self.message,
            "text": self.text(),
        })
    }
}

fn person(name: Option<&str>, role: Option<&str>) -> Option<String> {
    match (name, role) {
        (Some(n), Some(r)) => Some(format!("{n}, {r}")),
        (Some(x), None) | (None, Some(x)) => Some(x.to_owned()),
        (None, None) => None,
    }
}

/// The facts of an incident's latest alert.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    pub user: Option<String>,
    pub user_name: Option<String>,
    pub role: Option<String>,
    /// Source addresses, first seen first.
    pub addresses: Vec<String>,
    pub patient: Option<String>,
    /// Events of the latest alert.
    pub count: u64,
    /// Alerts of the incident.
    pub alerts: u64,
    pub first_ms: i64,
    pub last_ms: i64,
}

impl Facts {
    /// From the alert group (already masked) and the events read.
    pub fn gather(
        group: &BTreeMap<String, String>,
        events: &[EventLine],
        count: u64,
        alerts: u64,
        (first_ms, last_ms): (i64, i64),
    ) -> Facts {
        let user = group
            .get("actor.user")
            .map(|u| clean(u))
            .or_else(|| events.iter().find_map(|e| e.user.clone()));
        let mine = |e: &&EventLine| user.is_some() && e.user == user;
        let user_name = events.iter().filter(mine).find_map(|e| e.user_name.clone());
        let role = group
            .get("actor.role")
            .map(|r| clean(r))
            .or_else(|| events.iter().filter(mine).find_map(|e| e.role.clone()));
        let mut addresses: Vec<String> = Vec::new();
        for a in group
            .get("actor.ip")
            .map(|a| clean(a))
            .into_iter()
            .chain(events.iter().filter_map(|e| e.address.clone()))
        {
            if !addresses.contains(&a) {
                addresses.push(a);
            }
        }
        let patient = group
            .iter()
            .find(|(k, _)| *k == "patient" || k.starts_with("patient."))
            .map(|(_, v)| clean(v))
            .or_else(|| events.iter().find_map(|e| e.patient.clone()));
        Facts {
            user,
            user_name,
            role,
            addresses,
            patient,
            count,
            alerts,
            first_ms,
            last_ms,
        }
    }

    /// (label, value) rows as messages show them; `now_ms` for "5 min ago".
    pub fn rows(&self, now_ms: i64) -> Vec<(&'static str, String)> {
        let mut rows = Vec::new();
        if let Some(u) = &self.user {
            rows.push((
                "User",
                match person(self.user_name.as_deref(), self.role.as_deref()) {
                    Some(p) => format!("{u} ({p})"),
                    None => u.clone(),
                },
            ));
        }
        if !self.addresses.is_empty() {
            rows.push(("Address", self.addresses.join(", ")));
        }
        if let Some(p) = &self.patient {
            rows.push(("Patient", p.clone()));
        }
        let span = self.last_ms.saturating_sub(self.first_ms);
        let mut count = format!(
            "{} event{}",
            self.count,
            if self.count == 1 { "" } else { "s" }
        );
        if span > 0 {
            let _ = write!(count, " over {}", duration_words(span));
        }
        if self.alerts > 1 {
            let _ = write!(count, " ({} alerts in this incident)", self.alerts);
        }
        rows.push(("Count", count));
        rows.push(("First", when(self.first_ms, now_ms)));
        rows.push(("Latest", when(self.last_ms, now_ms)));
        rows
    }

    pub fn json(&self) -> Value {
        json!({
            "user": self.user,
            "user_name": self.user_name,
            "role": self.role,
            "source_ips": self.addresses,
            "patient": self.patient,
            "count": self.count,
            "alerts": self.alerts,
            "first_time": utc(self.first_ms),
            "last_time": utc(self.last_ms),
            "span_seconds": self.last_ms.saturating_sub(self.first_ms) / 1000,
        })
    }
}

/// Everything a notification says about an incident.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertMessage {
    pub title: String,
    pub severity: String,
    pub rule_id: String,
    pub description: Option<String>,
    pub incident: String,
    pub playbook: String,
    /// When the incident opened (unix ms).
    pub opened_ms: i64,
    pub round: String,
    pub level: String,
    pub facts: Facts,
    /// The alert group, patient fields already masked unless `include_phi`.
    pub group: BTreeMap<String, String>,
    /// The first events (up to [`MAX_EVENT_LINES`]).
    pub events: Vec<EventLine>,
    /// All ledger indices of the latest alert (a reference).
    pub event_indices: Vec<u64>,
    /// Privacy rules: the explanations looked for and not found.
    pub explanations_tried: Vec<String>,
    pub runbook: Option<String>,
    pub incident_link: String,
    pub ack_link: String,
    /// When the message is made (unix ms), for relative times.
    pub now_ms: i64,
}

impl AlertMessage {
    /// A subject or body template filled in (the caller tidies a body).
    pub fn render(&self, t: &Template) -> String {
        t.render(|v| self.value(v))
    }

    /// The value of a placeholder.
    pub fn value(&self, v: Var) -> String {
        let stamp = |ms: i64| {
            Timestamp::from_unix_ms(ms)
                .map(|t| t.to_string())
                .unwrap_or_default()
        };
        match v {
            Var::Title => self.title.clone(),
            Var::RuleId => self.rule_id.clone(),
            Var::Severity => self.severity.clone(),
            Var::Group if self.group.is_empty() => "-".into(),
            Var::Group => self
                .group
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", "),
            Var::Count => self.facts.alerts.to_string(),
            Var::FirstTime => stamp(self.facts.first_ms),
            Var::LastTime => stamp(self.facts.last_ms),
            Var::EventIndices => self
                .event_indices
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            Var::Incident => self.incident.clone(),
            Var::AckLink => self.ack_link.clone(),
            Var::Level => self.level.clone(),
            Var::Round => self.round.clone(),
            Var::Playbook => self.playbook.clone(),
            Var::OpenedAt => stamp(self.opened_ms),
            Var::Description => self.description.clone().unwrap_or_default(),
            Var::Facts => self.facts_text(),
            Var::EventLines => self.event_lines_text(),
            Var::Explanation => self.explanation(),
            Var::Runbook => self.runbook_text(),
            Var::IncidentLink => self.incident_link.clone(),
        }
    }

    /// `{{facts}}`: one `Label:     value` line per fact.
    pub fn facts_text(&self) -> String {
        self.facts
            .rows(self.now_ms)
            .iter()
            .map(|(k, v)| format!("{:<10} {v}", format!("{k}:")))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `{{event_lines}}`: the first events, one per line, and how many more.
    pub fn event_lines_text(&self) -> String {
        if self.events.is_empty() {
            return "  (the events could not be read; see the ledger indices below)".to_owned();
        }
        let mut out: Vec<String> = self
            .events
            .iter()
            .map(|e| format!("- {}", e.text()))
            .collect();
        if let Some(more) = self.more_events() {
            out.push(format!("  ... and {more} more"));
        }
        out.join("\n")
    }

    fn more_events(&self) -> Option<u64> {
        let more = self.facts.count.saturating_sub(self.events.len() as u64);
        (more > 0).then_some(more)
    }

    /// `{{explanation}}`: a sentence, empty for rules without `explain`.
    pub fn explanation(&self) -> String {
        if self.explanations_tried.is_empty() {
            return String::new();
        }
        format!(
            "No explanation found: sealtrail looked for {} and found none for this access.",
            self.explanations_tried
                .iter()
                .map(|e| clean(e))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }

    /// `{{runbook}}`: the playbook's text, or a pointer to the incident.
    pub fn runbook_text(&self) -> String {
        self.runbook.clone().unwrap_or_else(|| {
            "This playbook has no runbook: open the incident, review the events and \
             follow your practice's procedure."
                .to_owned()
        })
    }

    /// One line: `[high] Repeated failed logins: user u0042, from 10.0.0.5, 6 events`.
    pub fn summary(&self) -> String {
        let mut s = format!("[{}] {}", self.severity, self.title);
        let mut parts = Vec::new();
        if let Some(u) = &self.facts.user {
            parts.push(format!("user {u}"));
        }
        if let Some(a) = self.facts.addresses.first() {
            parts.push(format!("from {a}"));
        }
        if let Some(p) = &self.facts.patient {
            parts.push(format!("patient {p}"));
        }
        parts.push(format!(
            "{} event{}",
            self.facts.count,
            if self.facts.count == 1 { "" } else { "s" }
        ));
        let _ = write!(s, ": {}", parts.join(", "));
        s
    }

    /// The webhook fields this message adds.
    pub fn json_fields(&self) -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        m.insert("summary".into(), json!(self.summary()));
        m.insert("description".into(), json!(self.description));
        m.insert("facts".into(), self.facts.json());
        m.insert(
            "events".into(),
            Value::Array(self.events.iter().map(EventLine::json).collect()),
        );
        m.insert(
            "explanation".into(),
            if self.explanations_tried.is_empty() {
                Value::Null
            } else {
                json!({"tried": self.explanations_tried, "text": self.explanation()})
            },
        );
        m.insert("runbook".into(), json!(self.runbook));
        m.insert(
            "links".into(),
            json!({"incident": self.incident_link, "ack": self.ack_link}),
        );
        m
    }

    /// The text/html part: one column, inline CSS, no script, no external
    /// resource; every inserted value escaped.
    pub fn html(&self) -> String {
        let sev = self.severity.to_ascii_lowercase();
        let sev_class = match sev.as_str() {
            "critical" | "high" | "medium" | "low" => sev.as_str(),
            _ => "info",
        };
        let mut h = String::with_capacity(4096);
        h.push_str(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        );
        let _ = write!(h, "<title>{}</title>", escape(&self.summary()));
        h.push_str(STYLE);
        h.push_str("</head><body><div class=\"wrap\">\n");
        let _ = write!(
            h,
            "<p class=\"sev sev-{sev_class}\">{}</p>\n<h1>{}</h1>\n",
            escape(&self.severity.to_uppercase()),
            escape(&self.title)
        );
        if let Some(d) = &self.description {
            let _ = writeln!(h, "<p class=\"desc\">{}</p>", escape(d));
        }
        let _ = writeln!(
            h,
            "<p class=\"buttons\"><a class=\"btn btn-open\" href=\"{}\">Open the incident</a>\
             <a class=\"btn btn-ack\" href=\"{}\">Acknowledge</a></p>",
            escape(&self.incident_link),
            escape(&self.ack_link)
        );
        h.push_str("<h2>Facts</h2>\n<dl class=\"facts\">");
        for (k, v) in self.facts.rows(self.now_ms) {
            let _ = write!(h, "<dt>{}</dt><dd>{}</dd>", escape(k), escape(&v));
        }
        h.push_str("</dl>\n<h2>First events</h2>\n<ul class=\"events\">");
        if self.events.is_empty() {
            h.push_str("<li>The events could not be read; see the ledger indices.</li>");
        }
        for e in &self.events {
            let _ = write!(h, "<li>{}</li>", escape(&e.text()));
        }
        if let Some(more) = self.more_events() {
            let _ = write!(h, "<li class=\"more\">... and {more} more</li>");
        }
        h.push_str("</ul>\n");
        let explanation = self.explanation();
        if !explanation.is_empty() {
            let _ = writeln!(
                h,
                "<h2>What was missing</h2>\n<p class=\"explanation\">{}</p>",
                escape(&explanation)
            );
        }
        let _ = writeln!(
            h,
            "<h2>What to do</h2>\n<div class=\"runbook\">{}</div>",
            escape(&self.runbook_text())
        );
        let _ = write!(
            h,
            "<p class=\"ref\">Incident {} &middot; rule {} &middot; {} notification to {}<br>\
             Ledger indices: {}</p>\n</div></body></html>\n",
            escape(&self.incident),
            escape(&self.rule_id),
            escape(&self.round),
            escape(&self.level),
            escape(
                &self
                    .event_indices
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        );
        h
    }
}

const STYLE: &str = "<style>\
body{margin:0;padding:0;background:#f3f4f6;color:#111827;\
font-family:-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;font-size:16px;line-height:1.45}\
.wrap{max-width:600px;margin:0 auto;padding:16px;background:#ffffff}\
h1{font-size:22px;margin:8px 0}h2{font-size:17px;margin:20px 0 6px;border-bottom:1px solid #e5e7eb}\
.sev{display:inline-block;margin:0;padding:2px 10px;border-radius:4px;font-weight:bold;color:#fff;background:#6b7280}\
.sev-critical{background:#7f1d1d}.sev-high{background:#b91c1c}.sev-medium{background:#b45309}.sev-low{background:#1d4ed8}\
.buttons{margin:16px 0}\
.btn{display:block;margin:8px 0;padding:12px 16px;border-radius:6px;text-align:center;font-weight:bold;text-decoration:none}\
.btn-open{background:#1f2937;color:#ffffff}.btn-ack{background:#047857;color:#ffffff}\
dl.facts{margin:0}dt{font-weight:bold;margin-top:6px}dd{margin:0 0 0 12px;word-break:break-word}\
ul.events{padding-left:18px}ul.events li{margin:4px 0;font-family:Menlo,Consolas,monospace;font-size:13px;word-break:break-word}\
.runbook{white-space:pre-wrap}.ref{margin-top:24px;color:#6b7280;font-size:12px;word-break:break-all}\
</style>";

/// `2026-12-07 22:40:01 UTC`.
pub fn utc(ms: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => "-".to_owned(),
    }
}

/// `2026-12-07 22:40:01 UTC (5 min ago)`.
pub fn when(ms: i64, now_ms: i64) -> String {
    let ago = now_ms.saturating_sub(ms);
    let rel = if ago.abs() < 5_000 {
        "just now".to_owned()
    } else if ago > 0 {
        format!("{} ago", duration_words(ago))
    } else {
        format!("in {}", duration_words(-ago))
    };
    format!("{} ({rel})", utc(ms))
}

/// The largest whole unit: `45 s`, `5 min`, `3 h`, `2 days`.
pub fn duration_words(ms: i64) -> String {
    let s = ms / 1000;
    if s < 120 {
        format!("{s} s")
    } else if s < 7200 {
        format!("{} min", s / 60)
    } else if s < 172_800 {
        format!("{} h", s / 3600)
    } else {
        format!("{} days", s / 86_400)
    }
}

/// Blank runs of three or more newlines cut to one blank line (an empty
/// placeholder leaves no hole in the plain text).
pub fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = false;
    for line in text.split_inclusive('\n') {
        let is_blank = line.trim().is_empty();
        if is_blank && blank {
            continue;
        }
        blank = is_blank;
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::response::playbook::DEFAULT_BODY;

    const HOSTILE: &str = "<script>alert(\"x\")</script> & 'q'";

    fn entry(i: u64, include_patient: bool) -> Entry {
        let mut v = json!({
            "received": "2026-12-07T22:40:30Z",
            "via": {"kind": "http"},
            "event": {
                "time": format!("2026-12-07T22:4{i}:01Z"),
                "category": "auth", "action": "login", "outcome": "failure",
                "actor": {"user": "u0042", "ip": "203.0.113.9"},
                "source": {"system": "ehr"},
                "message": "bad password for chart P-7781",
            },
            "enriched": {"actor": {"name": HOSTILE, "role": "nurse"}},
        });
        if include_patient {
            v["event"]["patient"] = json!({"id": "P-7781"});
            v["event"]["resource"] = json!({"type": "chart", "id": "P-7781-chart"});
        }
        serde_json::from_value(v).unwrap()
    }

    fn message(include_phi: bool) -> AlertMessage {
        let events: Vec<EventLine> = (0..3)
            .map(|i| EventLine::of(10 + i, &entry(i, true), include_phi))
            .collect();
        let mut group = BTreeMap::new();
        group.insert("actor.user".to_owned(), "u0042".to_owned());
        let first = events[0].time_ms;
        let last = events[2].time_ms;
        AlertMessage {
            title: "Repeated failed logins <b>".into(),
            severity: "high".into(),
            rule_id: "brute-force".into(),
            description: Some("Many failed logins for one account & a short time.".into()),
            incident: "inc-1".into(),
            playbook: "brute-force-page".into(),
            opened_ms: last,
            round: "first".into(),
            level: "primary".into(),
            facts: Facts::gather(&group, &events, 8, 1, (first, last)),
            group,
            events,
            event_indices: (10..18).collect(),
            explanations_tried: Vec::new(),
            runbook: Some("1. Call the user.\n2. Lock the account \"now\".".into()),
            incident_link: "https://siem.clinic.test/#/incidents/inc-1".into(),
            ack_link: "https://siem.clinic.test/v1/incidents/inc-1/ack?token=a&b=1".into(),
            now_ms: last + 300_000,
        }
    }

    #[test]
    fn plain_text_says_what_happened() {
        let m = message(true);
        let facts = m.facts_text();
        assert!(
            facts.contains(&format!("User:      u0042 ({HOSTILE}, nurse)")),
            "{facts}"
        );
        assert!(facts.contains("Address:   203.0.113.9"), "{facts}");
        assert!(facts.contains("Patient:   P-7781"), "{facts}");
        assert!(facts.contains("Count:     8 events over 2 min"), "{facts}");
        assert!(
            facts.contains("Latest:    2026-12-07 22:42:01 UTC (5 min ago)"),
            "{facts}"
        );
        let lines = m.event_lines_text();
        assert!(
            lines.starts_with("- 2026-12-07 22:40:01 UTC  login failure  user u0042 ("),
            "{lines}"
        );
        assert!(lines.contains("patient P-7781"), "{lines}");
        assert!(lines.contains("resource chart P-7781-chart"), "{lines}");
        assert!(lines.contains("from 203.0.113.9  via ehr"), "{lines}");
        assert!(lines.contains("... and 5 more"), "{lines}");
        assert_eq!(lines.lines().count(), 4);
        assert_eq!(m.explanation(), "");
        assert_eq!(
            m.summary(),
            "[high] Repeated failed logins <b>: user u0042, from 203.0.113.9, patient P-7781, 8 events"
        );
    }

    #[test]
    fn html_is_one_self_contained_column_with_every_value_escaped() {
        let mut m = message(true);
        m.explanations_tried = vec!["treatment.<i>clinician</i>".into()];
        let h = m.html();
        // The hostile name, title and link are text, never markup.
        assert!(!h.contains("<script"), "{h}");
        assert!(!h.contains("<b>") && !h.contains("<i>"), "{h}");
        assert!(
            h.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;q&#39;"),
            "{h}"
        );
        assert!(h.contains("Repeated failed logins &lt;b&gt;"), "{h}");
        assert!(
            h.contains("href=\"https://siem.clinic.test/v1/incidents/inc-1/ack?token=a&amp;b=1\""),
            "{h}"
        );
        assert!(h.contains("href=\"https://siem.clinic.test/#/incidents/inc-1\""));
        // Nothing loaded from outside, nothing run.
        for bad in [
            "src=",
            "<link",
            "<img",
            "url(",
            "@import",
            "<script",
            "javascript:",
        ] {
            assert!(!h.contains(bad), "{bad} in {h}");
        }
        assert_eq!(h.matches("<a ").count(), 2, "{h}");
        assert!(h.contains("max-width:600px"));
        assert!(h.contains("class=\"sev sev-high\">HIGH</p>"));
        assert!(h.contains("<dt>User</dt><dd>u0042 ("));
        assert_eq!(h.matches("<li>").count(), 3);
        assert!(h.contains("What was missing"));
        assert!(h.contains("treatment.&lt;i&gt;clinician&lt;/i&gt;"));
        assert!(h.contains("Lock the account &quot;now&quot;."));
        assert!(h.contains("Many failed logins for one account &amp; a short time."));
        assert!(h.contains("Ledger indices: 10, 11, 12, 13, 14, 15, 16, 17"));
    }

    #[test]
    fn without_include_phi_no_patient_id_or_message_appears_anywhere() {
        let m = message(false);
        let json = Value::Object(m.json_fields()).to_string();
        for text in [
            m.facts_text(),
            m.event_lines_text(),
            m.summary(),
            m.html(),
            json.clone(),
        ] {
            assert!(!text.contains("P-7781"), "{text}");
            assert!(!text.contains("bad password"), "{text}");
        }
        assert!(m.facts_text().contains("Patient:   [masked]"));
        assert!(
            m.event_lines_text()
                .contains("patient [masked]  resource chart  from")
        );
        // With it, they are there (the test above can fail).
        let m = message(true);
        assert!(
            Value::Object(m.json_fields())
                .to_string()
                .contains("P-7781")
        );
        assert!(
            m.event_lines_text()
                .contains("\"bad password for chart P-7781\"")
        );
    }

    #[test]
    fn the_default_body_keeps_the_old_lines_and_adds_the_new_pieces() {
        let m = message(false);
        let body = tidy(&m.render(&Template::parse(DEFAULT_BODY).unwrap()));
        for want in [
            "Repeated failed logins <b> (high)\n\nMany failed logins",
            "User:      u0042 (",
            "First events:\n- 2026-12-07 22:40:01 UTC  login failure  user u0042",
            "What to do:\n1. Call the user.\n2. Lock the account \"now\".",
            "Open the incident:       https://siem.clinic.test/#/incidents/inc-1",
            "Acknowledge (one click): https://siem.clinic.test/v1/incidents/inc-1/ack?token=a&b=1",
            "Incident:  inc-1 (first notification to primary)",
            "Rule:      brute-force",
            "Group:     actor.user=u0042",
            "Alerts:    1 (first 2026-12-07T22:40:01",
            "Events:    10, 11, 12, 13, 14, 15, 16, 17 (ledger indices)",
        ] {
            assert!(body.contains(want), "{want:?} not in\n{body}");
        }
        // No privacy explanation: no hole where it would be.
        assert!(!body.contains("\n\n\n"), "{body}");
        assert!(!body.contains("P-7781"), "{body}");
    }

    #[test]
    fn webhook_fields_are_structured() {
        let mut m = message(true);
        m.explanations_tried = vec!["treatment.clinician".into(), "payment.claim".into()];
        let v = Value::Object(m.json_fields());
        assert_eq!(v["facts"]["user"], "u0042");
        assert_eq!(v["facts"]["role"], "nurse");
        assert_eq!(v["facts"]["source_ips"], json!(["203.0.113.9"]));
        assert_eq!(v["facts"]["count"], 8);
        assert_eq!(v["facts"]["first_time"], "2026-12-07 22:40:01 UTC");
        assert_eq!(v["facts"]["span_seconds"], 120);
        assert_eq!(v["events"].as_array().unwrap().len(), 3);
        assert_eq!(v["events"][1]["action"], "login");
        assert_eq!(v["events"][1]["outcome"], "failure");
        assert_eq!(v["events"][1]["index"], 11);
        assert_eq!(v["events"][1]["time"], "2026-12-07 22:41:01 UTC");
        assert_eq!(
            v["explanation"]["tried"],
            json!(["treatment.clinician", "payment.claim"])
        );
        assert!(
            v["explanation"]["text"]
                .as_str()
                .unwrap()
                .contains("looked for treatment.clinician, payment.claim")
        );
        assert_eq!(v["links"]["incident"], m.incident_link);
        assert_eq!(v["links"]["ack"], m.ack_link);
        assert_eq!(v["runbook"], json!(m.runbook));
        assert!(v["summary"].as_str().unwrap().starts_with("[high] "));
    }

    #[test]
    fn times_blank_lines_and_cut_fields() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(when(0, 2_000), "1970-01-01 00:00:00 UTC (just now)");
        assert_eq!(when(0, 90_000), "1970-01-01 00:00:00 UTC (90 s ago)");
        assert_eq!(when(0, 3 * 3_600_000), "1970-01-01 00:00:00 UTC (3 h ago)");
        assert_eq!(when(600_000, 0), "1970-01-01 00:10:00 UTC (in 10 min)");
        assert_eq!(duration_words(5 * 86_400_000), "5 days");
        assert_eq!(tidy("a\n\n\n\nb\n  \n\nc\n"), "a\n\nb\n  \nc\n");
        let long = clean(&format!("x\ny{}", "z".repeat(500)));
        assert_eq!(long.chars().count(), MAX_FIELD_CHARS);
        assert!(long.starts_with("x y") && long.ends_with('…'));
    }
}

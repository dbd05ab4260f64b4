//! Incident state: a fold over the response record (`record::Update`), so
//! the same code rebuilds it from the ledger after a restart and keeps it
//! live. Also decides what is due next for an incident (a notification
//! round, an escalation, a quiet resolution); the engine acts on that.

use std::collections::{BTreeSet, HashMap, VecDeque};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::config::{OncallConfig, ResponseConfig};
use super::playbook::{Playbook, PlaybookSet};
use super::record::{IncidentKey, RoundKind, Update};
use super::silence::{Signature, Silence};
use crate::detect::alert::Alert;
use crate::event::Timestamp;

/// Incidents kept in memory (resolved ones are dropped oldest first).
pub const MAX_INCIDENTS: usize = 100_000;
/// Notes kept per incident (all are in the ledger).
pub const MAX_NOTES: usize = 200;
/// Alert ids listed per incident (the newest).
pub const MAX_RECENT_ALERTS: usize = 20;
/// Alert ids remembered as handled.
const MAX_HANDLED: usize = 200_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifecycle {
    Open,
    Acknowledged,
    Resolved,
}

impl Lifecycle {
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Open => "open",
            Lifecycle::Acknowledged => "acknowledged",
            Lifecycle::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<Lifecycle> {
        [
            Lifecycle::Open,
            Lifecycle::Acknowledged,
            Lifecycle::Resolved,
        ]
        .into_iter()
        .find(|l| l.as_str() == s)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteEntry {
    pub at: i64,
    pub by: String,
    pub text: String,
}

/// The newest alert of an incident, for message templates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertSummary {
    pub first_time: i64,
    pub last_time: i64,
    pub count: u64,
    pub event_indices: Vec<u64>,
    /// Privacy rules: the explanations looked for and not found.
    pub explanations_tried: Vec<String>,
    /// The first events the alert names (ledger index, stored entry), read
    /// by the ledger follower's thread so the engine never reads the disk.
    pub first_events: Vec<(u64, Vec<u8>)>,
}

impl AlertSummary {
    pub fn of(a: &Alert) -> AlertSummary {
        AlertSummary {
            first_time: a.first_time.unix_ms(),
            last_time: a.last_time.unix_ms(),
            count: a.count,
            event_indices: a.event_indices.clone(),
            explanations_tried: a.explanations_tried.clone(),
            first_events: Vec::new(),
        }
    }
}

/// A round of notifications in progress (or cut short by a stop).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    pub round: u32,
    pub kind: RoundKind,
    pub level_index: usize,
    pub round_at: i64,
    /// Steps with a final outcome (delivered or failed), as bits.
    pub done: u32,
    /// Rebuilt from the ledger: the previous run may not have finished it.
    pub from_replay: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incident {
    pub id: String,
    pub key: IncidentKey,
    pub title: String,
    pub severity: String,
    pub state: Lifecycle,
    pub overflow: bool,
    pub opened_at: i64,
    pub acknowledged: Option<(i64, String)>,
    pub resolved: Option<(i64, String, String)>,
    pub assignee: Option<String>,
    pub notes: Vec<NoteEntry>,
    pub alerts: u64,
    pub silenced_alerts: u64,
    pub last_alert_at: i64,
    pub recent_alerts: VecDeque<String>,
    pub last_alert: Option<AlertSummary>,
    pub level_index: usize,
    pub rounds: u32,
    pub last_round_at: Option<i64>,
    pub delivered: u32,
    pub failed: u32,
    pub escalations: u32,
    /// A notification owed (kind, since when).
    pub owed: Option<(RoundKind, i64)>,
    /// When the acknowledgement timer started (the last paging round).
    pub ack_base: Option<i64>,
    pub progress: Option<Progress>,
}

/// What is due for an incident.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Due {
    Notify(RoundKind),
    Escalate,
    ResolveQuiet,
    /// Finish a round the previous run started.
    Resume,
}

/// The incidents, silences and used acknowledgement links.
#[derive(Default)]
pub struct Book {
    pub incidents: HashMap<String, Incident>,
    open_by_key: HashMap<IncidentKey, String>,
    /// (opened_at, id): listing order.
    order: BTreeSet<(i64, String)>,
    pub silences: Vec<Silence>,
    /// Used token nonces and when they were used.
    pub used_tokens: HashMap<String, i64>,
    handled: HashMap<String, ()>,
    handled_order: VecDeque<String>,
}

fn ms_text(ms: i64) -> Value {
    Timestamp::from_unix_ms(ms)
        .map(|t| Value::String(t.to_string()))
        .unwrap_or(Value::Null)
}

/// Deterministic: re-handling the same alert after a crash opens the same id.
pub fn incident_id(key: &IncidentKey, alert_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"sealtrail-incident-v1\0");
    h.update(key.playbook.as_bytes());
    h.update([0]);
    h.update(key.rule_id.as_bytes());
    h.update([0]);
    for (k, v) in &key.group {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    h.update([0xff]);
    h.update(alert_id.as_bytes());
    format!("inc-{}", hex::encode(&h.finalize()[..12]))
}

impl Incident {
    /// What a silence tests of it: the rule, severity, title, playbook and
    /// group its alerts share.
    pub fn signature(&self) -> Signature<'_> {
        Signature {
            rule_id: &self.key.rule_id,
            severity: &self.severity,
            title: &self.title,
            playbook: &self.key.playbook,
            group: &self.key.group,
        }
    }

    /// The JSON the API shows.
    pub fn view(&self, oncall: &OncallConfig, full: bool) -> Value {
        let mut v = json!({
            "id": self.id,
            "state": self.state.as_str(),
            "playbook": self.key.playbook,
            "rule_id": self.key.rule_id,
            "group": self.key.group,
            "title": self.title,
            "severity": self.severity,
            "opened_at": ms_text(self.opened_at),
            "alerts": self.alerts,
            "silenced_alerts": self.silenced_alerts,
            "last_alert_at": ms_text(self.last_alert_at),
            "level": oncall.levels.get(self.level_index).map(|l| l.name.clone()),
            "assignee": self.assignee,
            "notifications": {"rounds": self.rounds, "delivered": self.delivered, "failed": self.failed,
                              "last_at": self.last_round_at.map(ms_text)},
            "escalations": self.escalations,
            "acknowledged_at": self.acknowledged.as_ref().map(|a| ms_text(a.0)),
            "acknowledged_by": self.acknowledged.as_ref().map(|a| a.1.clone()),
            "resolved_at": self.resolved.as_ref().map(|r| ms_text(r.0)),
            "resolved_by": self.resolved.as_ref().map(|r| r.1.clone()),
            "resolve_reason": self.resolved.as_ref().map(|r| r.2.clone()),
        });
        if self.overflow {
            v["overflow"] = Value::Bool(true);
        }
        if full && let Some(o) = v.as_object_mut() {
            o.insert(
                "notes".into(),
                self.notes
                    .iter()
                    .map(|n| json!({"at": ms_text(n.at), "by": n.by, "note": n.text}))
                    .collect(),
            );
            o.insert("recent_alerts".into(), json!(self.recent_alerts));
        }
        v
    }

    fn new(id: &str, key: IncidentKey, title: &str, severity: &str, at: i64) -> Incident {
        Incident {
            id: id.to_owned(),
            key,
            title: title.to_owned(),
            severity: severity.to_owned(),
            state: Lifecycle::Open,
            overflow: false,
            opened_at: at,
            acknowledged: None,
            resolved: None,
            assignee: None,
            notes: Vec::new(),
            alerts: 0,
            silenced_alerts: 0,
            last_alert_at: at,
            recent_alerts: VecDeque::new(),
            last_alert: None,
            level_index: 0,
            rounds: 0,
            last_round_at: None,
            delivered: 0,
            failed: 0,
            escalations: 0,
            owed: None,
            ack_base: None,
            progress: None,
        }
    }

    fn add_alert(
        &mut self,
        alert_id: &str,
        silenced: bool,
        at: i64,
        summary: Option<AlertSummary>,
    ) {
        self.alerts += 1;
        self.last_alert_at = at;
        if self.recent_alerts.len() >= MAX_RECENT_ALERTS {
            self.recent_alerts.pop_front();
        }
        self.recent_alerts.push_back(alert_id.to_owned());
        if summary.is_some() {
            self.last_alert = summary;
        }
        if silenced {
            self.silenced_alerts += 1;
            return;
        }
        if self.state != Lifecycle::Open {
            return; // acknowledged: recorded, nobody re-paged
        }
        if self.owed.is_none() {
            let kind = if self.rounds == 0 {
                RoundKind::First
            } else {
                RoundKind::Update
            };
            self.owed = Some((kind, at));
        }
    }

    /// Starts round `round` (live, or a replayed `notified` event's round).
    pub fn begin_round(&mut self, round: u32, kind: RoundKind, round_at: i64, from_replay: bool) {
        if round <= self.rounds {
            return;
        }
        self.rounds = round;
        self.last_round_at = Some(round_at);
        if kind.pages() {
            self.ack_base = Some(round_at);
        }
        if self.owed.is_some_and(|(_, since)| since <= round_at) {
            self.owed = None;
        }
        self.progress = Some(Progress {
            round,
            kind,
            level_index: self.level_index,
            round_at,
            done: 0,
            from_replay,
        });
    }

    fn note(&mut self, at: i64, by: &str, text: Option<&str>, assignee: Option<&str>) {
        if let Some(t) = text.filter(|t| !t.is_empty()) {
            if self.notes.len() >= MAX_NOTES {
                self.notes.remove(0);
            }
            self.notes.push(NoteEntry {
                at,
                by: by.to_owned(),
                text: t.to_owned(),
            });
        }
        if let Some(a) = assignee.filter(|a| !a.is_empty()) {
            self.assignee = Some(a.to_owned());
        }
    }

    /// The acknowledgement timeout at the incident's level.
    fn ack_timeout_ms(&self, pb: &Playbook, oncall: &OncallConfig) -> Option<i64> {
        let d = match pb.wait_ack? {
            Some(d) => d,
            None => oncall.levels.get(self.level_index)?.ack_timeout,
        };
        Some(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }

    /// The next thing due and when (unix ms), given the current playbooks
    /// and config; `busy` when a round is being sent (nothing but a quiet
    /// resolution waits on it).
    pub fn next_due(
        &self,
        playbooks: &PlaybookSet,
        oncall: &OncallConfig,
        cfg: &ResponseConfig,
        busy: bool,
    ) -> Option<(i64, Due)> {
        if self.state == Lifecycle::Resolved {
            return None;
        }
        let pb = playbooks.get(&self.key.playbook)?;
        let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let mut best: Option<(i64, Due)> = None;
        let mut consider = |at: i64, due: Due| {
            if best.is_none_or(|(b, _)| at < b) {
                best = Some((at, due));
            }
        };
        if let Some(r) = pb.resolve_after {
            consider(self.last_alert_at.saturating_add(ms(r)), Due::ResolveQuiet);
        }
        if busy || pb.notify.is_empty() {
            return best;
        }
        if let Some(p) = &self.progress
            && p.from_replay
        {
            consider(p.round_at, Due::Resume);
            return best;
        }
        if self.state == Lifecycle::Open {
            match self.owed {
                Some((RoundKind::First, since)) => consider(
                    since.saturating_add(ms(pb.group_wait.unwrap_or(cfg.group_wait))),
                    Due::Notify(RoundKind::First),
                ),
                Some((RoundKind::Update, since)) => {
                    let interval = ms(pb.group_interval.unwrap_or(cfg.group_interval));
                    let at = self
                        .last_round_at
                        .map_or(since, |l| l.saturating_add(interval).max(since));
                    consider(at, Due::Notify(RoundKind::Update));
                }
                Some((kind, since)) => consider(since, Due::Notify(kind)),
                None => {}
            }
            if !oncall.levels.is_empty()
                && let (Some(base), Some(t)) = (self.ack_base, self.ack_timeout_ms(pb, oncall))
            {
                consider(base.saturating_add(t), Due::Escalate);
            }
        }
        best
    }
}

impl Book {
    pub fn open_incident_for(&self, key: &IncidentKey) -> Option<&Incident> {
        self.open_by_key
            .get(key)
            .and_then(|id| self.incidents.get(id))
    }

    pub fn open_count(&self) -> usize {
        self.open_by_key.len()
    }

    pub fn is_handled(&self, alert_id: &str) -> bool {
        self.handled.contains_key(alert_id)
    }

    /// Attaches the first events of the incident's newest alert.
    pub fn set_first_events(&mut self, incident: &str, events: Vec<(u64, Vec<u8>)>) {
        if let Some(a) = self
            .incidents
            .get_mut(incident)
            .and_then(|i| i.last_alert.as_mut())
        {
            a.first_events = events;
        }
    }

    pub fn mark_handled(&mut self, alert_id: &str) {
        if self.handled.insert(alert_id.to_owned(), ()).is_none() {
            self.handled_order.push_back(alert_id.to_owned());
            if self.handled_order.len() > MAX_HANDLED
                && let Some(old) = self.handled_order.pop_front()
            {
                self.handled.remove(&old);
            }
        }
    }

    /// The active silence matching `alert`, if any.
    pub fn silenced_by(&self, alert: &Alert, playbook: &str, now: i64) -> Option<&str> {
        self.silences
            .iter()
            .find(|s| s.active_at(now) && s.matches(alert, playbook))
            .map(Silence::id)
    }

    /// Incidents newest first from `cursor` (exclusive).
    pub fn list(&self, cursor: Option<&(i64, String)>) -> impl Iterator<Item = &Incident> {
        let upper = match cursor {
            Some(c) => std::ops::Bound::Excluded(c.clone()),
            None => std::ops::Bound::Unbounded,
        };
        self.order
            .range((std::ops::Bound::Unbounded, upper))
            .rev()
            .filter_map(|(_, id)| self.incidents.get(id))
    }

    /// Applies one recorded update that happened at `at` (unix ms).
    /// `alert` is the alert an `opened`/`alert_added` names, when known.
    /// Returns the incident it changed.
    pub fn apply(
        &mut self,
        u: &Update,
        at: i64,
        alert: Option<&Alert>,
        replay: bool,
    ) -> Option<String> {
        let summary = alert.map(AlertSummary::of);
        match u {
            Update::Opened {
                incident,
                key,
                title,
                severity,
                alert: alert_id,
                silenced_by,
                overflow,
            } => {
                self.mark_handled(alert_id);
                if self.incidents.contains_key(incident) {
                    return None;
                }
                let mut inc = Incident::new(incident, key.clone(), title, severity, at);
                inc.overflow = *overflow;
                inc.add_alert(alert_id, silenced_by.is_some(), at, summary);
                self.open_by_key.insert(key.clone(), incident.clone());
                self.order.insert((at, incident.clone()));
                self.incidents.insert(incident.clone(), inc);
                self.evict();
                Some(incident.clone())
            }
            Update::AlertAdded {
                incident,
                key,
                title,
                severity,
                alert: alert_id,
                silenced_by,
                ..
            } => {
                self.mark_handled(alert_id);
                if !self.incidents.contains_key(incident) {
                    // Opened before the replayed window: start from here.
                    let inc = Incident::new(incident, key.clone(), title, severity, at);
                    self.open_by_key.insert(key.clone(), incident.clone());
                    self.order.insert((at, incident.clone()));
                    self.incidents.insert(incident.clone(), inc);
                }
                let inc = self.incidents.get_mut(incident)?;
                inc.add_alert(alert_id, silenced_by.is_some(), at, summary);
                Some(incident.clone())
            }
            Update::Notified {
                incident,
                round,
                round_kind,
                round_at,
                step,
                outcome,
                ..
            } => {
                let inc = self.incidents.get_mut(incident)?;
                inc.begin_round(*round, *round_kind, *round_at, replay);
                if outcome != "retrying"
                    && let Some(p) = inc.progress.as_mut().filter(|p| p.round == *round)
                {
                    p.done |= 1u32.checked_shl(*step).unwrap_or(0);
                }
                match outcome.as_str() {
                    "delivered" => inc.delivered += 1,
                    "failed" => inc.failed += 1,
                    _ => {}
                }
                Some(incident.clone())
            }
            Update::Acknowledged {
                incident,
                by,
                note,
                assignee,
                ..
            } => {
                let inc = self.incidents.get_mut(incident)?;
                if inc.state != Lifecycle::Open {
                    return None;
                }
                inc.state = Lifecycle::Acknowledged;
                inc.acknowledged = Some((at, by.clone()));
                inc.note(at, by, note.as_deref(), assignee.as_deref());
                inc.owed = None;
                inc.ack_base = None;
                Some(incident.clone())
            }
            Update::Escalated {
                incident,
                from,
                to,
                to_index,
                ..
            } => {
                let inc = self.incidents.get_mut(incident)?;
                inc.level_index = *to_index;
                inc.escalations += 1;
                let kind = if from == to {
                    RoundKind::Reminder
                } else {
                    RoundKind::Escalation
                };
                inc.owed = Some((kind, at));
                inc.ack_base = None;
                Some(incident.clone())
            }
            Update::Note {
                incident,
                by,
                note,
                assignee,
            } => {
                let inc = self.incidents.get_mut(incident)?;
                inc.note(at, by, Some(note), assignee.as_deref());
                Some(incident.clone())
            }
            Update::Resolved {
                incident,
                by,
                reason,
                note,
            } => {
                let inc = self.incidents.get_mut(incident)?;
                if inc.state == Lifecycle::Resolved {
                    return None;
                }
                inc.state = Lifecycle::Resolved;
                inc.resolved = Some((at, by.clone(), reason.clone()));
                inc.note(at, by, note.as_deref(), None);
                inc.owed = None;
                inc.ack_base = None;
                inc.progress = None;
                if self.open_by_key.get(&inc.key) == Some(incident) {
                    self.open_by_key.remove(&inc.key);
                }
                Some(incident.clone())
            }
            Update::SilenceCreated { silence } => {
                match Silence::new(silence.clone()) {
                    Ok(s) => {
                        self.silences.retain(|x| x.id() != s.id());
                        self.silences.push(s);
                    }
                    Err(e) => {
                        // The error can quote a matcher's value (PHI): not logged.
                        let _ = e;
                        tracing::warn!(silence = %silence.id, "recorded silence does not compile; ignored")
                    }
                }
                None
            }
            Update::SilenceDeleted { silence, .. } | Update::SilenceExpired { silence } => {
                self.silences.retain(|s| s.id() != silence);
                None
            }
            Update::AckTokenUsed {
                token, accepted, ..
            } => {
                if *accepted {
                    self.used_tokens.insert(token.clone(), at);
                }
                None
            }
        }
    }

    /// Forgets used tokens older than any token can live.
    pub fn prune_tokens(&mut self, now: i64, ttl_ms: i64) {
        self.used_tokens
            .retain(|_, at| now.saturating_sub(*at) <= ttl_ms);
    }

    /// Drops the oldest resolved incidents past [`MAX_INCIDENTS`], and
    /// resolved ones older than `keep_ms` when `now` is given.
    pub fn evict_older(&mut self, now: i64, keep_ms: i64) {
        let old: Vec<String> = self
            .incidents
            .values()
            .filter(|i| {
                i.resolved
                    .as_ref()
                    .is_some_and(|r| now.saturating_sub(r.0) > keep_ms)
            })
            .map(|i| i.id.clone())
            .collect();
        for id in old {
            self.remove(&id);
        }
    }

    fn evict(&mut self) {
        if self.incidents.len() <= MAX_INCIDENTS {
            return;
        }
        let victim = self
            .order
            .iter()
            .find(|(_, id)| {
                self.incidents
                    .get(id)
                    .is_some_and(|i| i.state == Lifecycle::Resolved)
            })
            .map(|(_, id)| id.clone());
        if let Some(id) = victim {
            self.remove(&id);
        }
    }

    fn remove(&mut self, id: &str) {
        if let Some(inc) = self.incidents.remove(id) {
            self.order.remove(&(inc.opened_at, inc.id.clone()));
            if self.open_by_key.get(&inc.key).map(String::as_str) == Some(id) {
                self.open_by_key.remove(&inc.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::response::config::OncallLevel;
    use std::path::PathBuf;
    use std::time::Duration;

    fn key() -> IncidentKey {
        IncidentKey {
            playbook: "page".into(),
            rule_id: "r".into(),
            group: [("actor.user".to_owned(), "u1".to_owned())].into(),
        }
    }

    fn setup() -> (PlaybookSet, OncallConfig, ResponseConfig) {
        let oncall = OncallConfig {
            levels: vec![
                OncallLevel {
                    name: "primary".into(),
                    ack_timeout: Duration::from_secs(60),
                    ..OncallLevel::default()
                },
                OncallLevel {
                    name: "secondary".into(),
                    ack_timeout: Duration::from_secs(120),
                    ..OncallLevel::default()
                },
            ],
        };
        let pbs = PlaybookSet::from_sources(
            &[(
                PathBuf::from("p.yml"),
                "name: page\nsteps: [open_incident, {email: {level: current}}, wait_ack, escalate, {resolve_after: 1h}]\n".into(),
            )],
            &oncall,
        )
        .unwrap();
        let cfg = ResponseConfig {
            group_wait: Duration::from_secs(30),
            group_interval: Duration::from_secs(300),
            ..ResponseConfig::default()
        };
        (pbs, oncall, cfg)
    }

    fn opened(alert: &str, silenced: bool) -> Update {
        Update::Opened {
            incident: "inc-1".into(),
            key: key(),
            title: "T".into(),
            severity: "high".into(),
            alert: alert.into(),
            silenced_by: silenced.then(|| "s1".to_owned()),
            overflow: false,
        }
    }

    fn added(alert: &str, n: u64) -> Update {
        Update::AlertAdded {
            incident: "inc-1".into(),
            key: key(),
            title: "T".into(),
            severity: "high".into(),
            alert: alert.into(),
            alerts: n,
            silenced_by: None,
        }
    }

    fn notified(round: u32, kind: RoundKind, at: i64, outcome: &str) -> Update {
        Update::Notified {
            incident: "inc-1".into(),
            round,
            round_kind: kind,
            round_at: at,
            step: 0,
            level: "primary".into(),
            channel: "email".into(),
            target: "x".into(),
            attempt: 1,
            outcome: outcome.into(),
            detail: String::new(),
            elapsed_ms: 1,
        }
    }

    #[test]
    fn the_lifecycle_schedules_wait_update_escalation_and_quiet_resolution() {
        let (pbs, oncall, cfg) = setup();
        let mut b = Book::default();
        let due = |b: &Book| b.incidents["inc-1"].next_due(&pbs, &oncall, &cfg, false);
        b.apply(&opened("a1", false), 1_000, None, false);
        assert_eq!(due(&b), Some((31_000, Due::Notify(RoundKind::First))));
        // A burst during group_wait: still one first round.
        b.apply(&added("a2", 2), 5_000, None, false);
        assert_eq!(due(&b), Some((31_000, Due::Notify(RoundKind::First))));
        b.apply(
            &notified(1, RoundKind::First, 31_000, "delivered"),
            31_500,
            None,
            false,
        );
        // Acknowledgement timer: primary's 60 s from the round.
        assert_eq!(due(&b), Some((91_000, Due::Escalate)));
        // A new alert: an update at most one group_interval after the round.
        b.apply(&added("a3", 3), 40_000, None, false);
        assert_eq!(due(&b), Some((91_000, Due::Escalate)));
        b.apply(
            &Update::Escalated {
                incident: "inc-1".into(),
                from: "primary".into(),
                to: "secondary".into(),
                to_index: 1,
                reason: "ack_timeout".into(),
            },
            91_000,
            None,
            false,
        );
        assert_eq!(due(&b), Some((91_000, Due::Notify(RoundKind::Escalation))));
        b.incidents
            .get_mut("inc-1")
            .unwrap()
            .begin_round(2, RoundKind::Escalation, 91_100, false);
        // The update owed since 40 s was covered by the escalation round.
        assert_eq!(due(&b), Some((211_100, Due::Escalate)));
        b.apply(
            &Update::Acknowledged {
                incident: "inc-1".into(),
                by: "ann".into(),
                via: "api".into(),
                note: Some("looking".into()),
                assignee: Some("ann".into()),
            },
            100_000,
            None,
            false,
        );
        // Only the quiet resolution is left: 1 h after the last alert.
        assert_eq!(due(&b), Some((3_640_000, Due::ResolveQuiet)));
        let inc = &b.incidents["inc-1"];
        assert_eq!(
            (inc.state, inc.assignee.as_deref(), inc.notes.len()),
            (Lifecycle::Acknowledged, Some("ann"), 1)
        );
        b.apply(
            &Update::Resolved {
                incident: "inc-1".into(),
                by: "sealtrail".into(),
                reason: "quiet".into(),
                note: None,
            },
            3_640_000,
            None,
            false,
        );
        assert_eq!(due(&b), None);
        assert!(b.open_incident_for(&key()).is_none());
    }

    #[test]
    fn a_round_cut_short_is_resumed_after_replay_and_silenced_alerts_page_nobody() {
        let (pbs, oncall, cfg) = setup();
        let mut b = Book::default();
        b.apply(&opened("a1", false), 1_000, None, true);
        b.apply(
            &notified(1, RoundKind::First, 31_000, "retrying"),
            31_500,
            None,
            true,
        );
        let inc = &b.incidents["inc-1"];
        assert_eq!(
            inc.next_due(&pbs, &oncall, &cfg, false),
            Some((31_000, Due::Resume))
        );
        let mut b = Book::default();
        b.apply(&opened("a1", true), 1_000, None, false);
        assert_eq!(
            b.incidents["inc-1"].next_due(&pbs, &oncall, &cfg, false),
            Some((3_601_000, Due::ResolveQuiet))
        );
        assert!(b.is_handled("a1"));
    }
}

//! The response record: every incident change is one `system/incident_update`
//! event in the ledger (DESIGN.md's action), `attrs.kind` saying what
//! happened. The live state is a fold over these events, so a restart
//! rebuilds it by replaying them and `verify` covers the response record.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::detect::alert::SERVICE_VIA;
use crate::event::{Actor, Category, Entry, Event, Outcome, Resource, Source, Timestamp};

/// `action` of the response record's events.
pub const INCIDENT_ACTION: &str = "incident_update";
/// `actor.user` of what the service does by itself.
pub const SERVICE_ACTOR: &str = "sealtrail";

/// What an incident groups by: one open incident per key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IncidentKey {
    pub playbook: String,
    pub rule_id: String,
    pub group: BTreeMap<String, String>,
}

/// Why a notification round is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoundKind {
    /// The incident's first notification (after `group_wait`).
    First,
    /// New alerts of an open incident (at most one per `group_interval`).
    Update,
    /// Escalated to the next on-call level.
    Escalation,
    /// The last level timed out again: re-notified.
    Reminder,
}

impl RoundKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RoundKind::First => "first",
            RoundKind::Update => "update",
            RoundKind::Escalation => "escalation",
            RoundKind::Reminder => "reminder",
        }
    }

    /// Rounds that (re)start the acknowledgement timer.
    pub fn pages(self) -> bool {
        !matches!(self, RoundKind::Update)
    }
}

/// A silence matcher: `field` equals `value`, or matches `regex` (whole value).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matcher {
    /// `rule_id`, `severity`, `title`, `playbook`, or a group field
    /// (`actor.user`, also written `group.actor.user`).
    pub field: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
}

/// A silence as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SilenceRecord {
    pub id: String,
    pub matchers: Vec<Matcher>,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub created_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// `attrs` of a `system/incident_update` event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Update {
    Opened {
        incident: String,
        #[serde(flatten)]
        key: IncidentKey,
        title: String,
        severity: String,
        alert: String,
        /// The silence that matched the opening alert, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        silenced_by: Option<String>,
        /// Set when the incident collects the groups past `max_open_incidents`.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        overflow: bool,
    },
    AlertAdded {
        incident: String,
        #[serde(flatten)]
        key: IncidentKey,
        title: String,
        severity: String,
        alert: String,
        alerts: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        silenced_by: Option<String>,
    },
    /// One delivery attempt (the notify layer's `Attempt`, plus its round).
    Notified {
        incident: String,
        round: u32,
        round_kind: RoundKind,
        /// When the round started (unix ms): the acknowledgement timer's start.
        round_at: i64,
        step: u32,
        level: String,
        channel: String,
        target: String,
        attempt: u32,
        outcome: String,
        detail: String,
        elapsed_ms: u64,
    },
    Acknowledged {
        incident: String,
        by: String,
        /// `api` or `link`.
        via: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        assignee: Option<String>,
    },
    Escalated {
        incident: String,
        from: String,
        to: String,
        /// Index of `to` in `[[oncall.levels]]`.
        to_index: usize,
        /// `ack_timeout`, or `ack_timeout_last_level` (re-notifying the last level).
        reason: String,
    },
    Note {
        incident: String,
        by: String,
        note: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        assignee: Option<String>,
    },
    Resolved {
        incident: String,
        by: String,
        /// `api`, or `quiet` (`resolve_after` passed without a new alert).
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    SilenceCreated {
        silence: SilenceRecord,
    },
    SilenceDeleted {
        silence: String,
        by: String,
    },
    SilenceExpired {
        silence: String,
    },
    AckTokenUsed {
        incident: String,
        /// The token's nonce (its id), never the token.
        token: String,
        level: String,
        accepted: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

impl Update {
    pub fn kind(&self) -> &'static str {
        match self {
            Update::Opened { .. } => "opened",
            Update::AlertAdded { .. } => "alert_added",
            Update::Notified { .. } => "notified",
            Update::Acknowledged { .. } => "acknowledged",
            Update::Escalated { .. } => "escalated",
            Update::Note { .. } => "note",
            Update::Resolved { .. } => "resolved",
            Update::SilenceCreated { .. } => "silence_created",
            Update::SilenceDeleted { .. } => "silence_deleted",
            Update::SilenceExpired { .. } => "silence_expired",
            Update::AckTokenUsed { .. } => "ack_token_used",
        }
    }

    pub fn incident(&self) -> Option<&str> {
        match self {
            Update::Opened { incident, .. }
            | Update::AlertAdded { incident, .. }
            | Update::Notified { incident, .. }
            | Update::Acknowledged { incident, .. }
            | Update::Escalated { incident, .. }
            | Update::Note { incident, .. }
            | Update::Resolved { incident, .. }
            | Update::AckTokenUsed { incident, .. } => Some(incident),
            Update::SilenceCreated { .. }
            | Update::SilenceDeleted { .. }
            | Update::SilenceExpired { .. } => None,
        }
    }

    fn actor(&self) -> &str {
        match self {
            Update::Acknowledged { by, .. }
            | Update::Note { by, .. }
            | Update::Resolved { by, .. }
            | Update::SilenceDeleted { by, .. } => by,
            Update::SilenceCreated { silence } => &silence.created_by,
            _ => SERVICE_ACTOR,
        }
    }

    fn failed(&self) -> bool {
        match self {
            Update::Notified { outcome, .. } => outcome == "failed",
            Update::AckTokenUsed { accepted, .. } => !accepted,
            _ => false,
        }
    }

    fn summary(&self) -> String {
        match self {
            Update::Opened {
                incident, title, ..
            } => format!("incident {incident} opened: {title}"),
            Update::AlertAdded {
                incident, alerts, ..
            } => format!("incident {incident}: alert {alerts} added"),
            Update::Notified {
                incident,
                channel,
                attempt,
                outcome,
                level,
                ..
            } => format!("incident {incident}: {channel} to {level}, attempt {attempt}: {outcome}"),
            Update::Acknowledged { incident, by, .. } => {
                format!("incident {incident} acknowledged by {by}")
            }
            Update::Escalated {
                incident, from, to, ..
            } => format!("incident {incident} escalated from {from} to {to}"),
            Update::Note { incident, by, .. } => format!("incident {incident}: note by {by}"),
            Update::Resolved { incident, by, .. } => {
                format!("incident {incident} resolved by {by}")
            }
            Update::SilenceCreated { silence } => format!("silence {} created", silence.id),
            Update::SilenceDeleted { silence, .. } => format!("silence {silence} deleted"),
            Update::SilenceExpired { silence } => format!("silence {silence} expired"),
            Update::AckTokenUsed {
                incident, accepted, ..
            } => format!(
                "incident {incident}: acknowledgement link {}",
                if *accepted { "used" } else { "refused" }
            ),
        }
    }

    /// The ledger event recording this update at `now`.
    pub fn to_event(&self, now: Timestamp) -> Event {
        let outcome = if self.failed() {
            Outcome::Failure
        } else {
            Outcome::Success
        };
        let mut e = Event::new(now, Category::System, INCIDENT_ACTION, outcome);
        e.actor = Some(Actor {
            user: Some(bounded(self.actor(), 256)),
            ..Actor::default()
        });
        e.source = Some(Source {
            system: SERVICE_VIA.to_owned(),
            host: None,
        });
        e.resource = match self.incident() {
            Some(id) => Some(Resource {
                kind: "incident".into(),
                id: Some(id.to_owned()),
            }),
            None => Some(Resource {
                kind: "silence".into(),
                id: match self {
                    Update::SilenceCreated { silence } => Some(silence.id.clone()),
                    Update::SilenceDeleted { silence, .. } | Update::SilenceExpired { silence } => {
                        Some(silence.clone())
                    }
                    _ => None,
                },
            }),
        };
        e.message = Some(bounded(&self.summary(), 1024));
        e.attrs = serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_object().cloned());
        e
    }

    /// The update an entry records, when it is one of the service's own.
    pub fn from_entry(entry: &Entry) -> Option<Update> {
        if !is_update_entry(entry) {
            return None;
        }
        let attrs = entry.event.attrs.as_ref()?;
        serde_json::from_value(serde_json::Value::Object(attrs.clone())).ok()
    }
}

pub fn is_update_entry(entry: &Entry) -> bool {
    entry.event.category == Category::System
        && entry.event.action == INCIDENT_ACTION
        && entry.via.kind == SERVICE_VIA
}

/// `s` cut to at most `n` characters.
pub fn bounded(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::alert::service_via;

    #[test]
    fn updates_round_trip_through_a_valid_event() {
        let key = IncidentKey {
            playbook: "page".into(),
            rule_id: "r".into(),
            group: [("actor.user".to_owned(), "u1".to_owned())].into(),
        };
        let all = vec![
            Update::Opened {
                incident: "inc-1".into(),
                key: key.clone(),
                title: "T".into(),
                severity: "high".into(),
                alert: "alert-1".into(),
                silenced_by: None,
                overflow: false,
            },
            Update::Notified {
                incident: "inc-1".into(),
                round: 1,
                round_kind: RoundKind::First,
                round_at: 5,
                step: 1,
                level: "primary".into(),
                channel: "email".into(),
                target: "a, b".into(),
                attempt: 2,
                outcome: "failed".into(),
                detail: "550".into(),
                elapsed_ms: 3,
            },
            Update::Acknowledged {
                incident: "inc-1".into(),
                by: "ann".into(),
                via: "api".into(),
                note: Some("on it".into()),
                assignee: None,
            },
        ];
        let now = Timestamp::parse("2026-11-27T10:00:00Z").unwrap();
        for u in all {
            let event = u.to_event(now);
            let parsed = Event::from_json(&serde_json::to_vec(&event).unwrap()).unwrap();
            let entry = Entry {
                received: now,
                via: service_via(),
                event: parsed,
                enriched: None,
            };
            assert_eq!(Update::from_entry(&entry).as_ref(), Some(&u));
            assert_eq!(entry.event.attrs.as_ref().unwrap()["kind"], u.kind());
        }
    }
}

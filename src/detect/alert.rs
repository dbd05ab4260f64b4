//! The alert object (DESIGN.md "Contracts": `GET /v1/alerts`) and its
//! ledger form, a `system/alert` event that carries the whole object in
//! `attrs`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::event::limits::MAX_ATTRS_ITEMS;
use crate::event::{Category, Entry, Event, Outcome, Resource, Source, Timestamp, Via};
use crate::rules::{AlertCandidate, EntryView};

/// `via.kind` of the events the service appends itself; only these
/// `system/alert` events are alerts (a client may send look-alikes).
pub const SERVICE_VIA: &str = "sealtrail";
/// `action` of an alert event.
pub const ALERT_ACTION: &str = "alert";
/// `resource.type` of an alert event; `resource.id` is the rule id, a
/// keyword field, so alerts can be searched by rule exactly.
pub const RULE_RESOURCE: &str = "rule";

/// One alert, as `GET /v1/alerts` shows it (without the ledger index).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub id: String,
    pub rule_id: String,
    pub title: String,
    pub severity: String,
    pub group: BTreeMap<String, String>,
    pub first_time: Timestamp,
    pub last_time: Timestamp,
    pub count: u64,
    /// Ledger indices of the events, oldest first; at most
    /// [`MAX_ATTRS_ITEMS`] (an event's `attrs` arrays are limited to that).
    pub event_indices: Vec<u64>,
    /// Fired by events that arrived behind the detector's clock (a source
    /// that delivered late): raised when they arrived, not when they
    /// happened.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub late: bool,
    /// Rules with `explain`: the explanations tried and not found
    /// (`treatment.clinician`, ...); absent for other rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub explanations_tried: Vec<String>,
}

/// Deterministic id: the same rule, group and first event give the same id,
/// so a replay after a restart recognises alerts already in the ledger.
pub fn alert_id(c: &AlertCandidate) -> String {
    let mut h = Sha256::new();
    h.update(b"sealtrail-alert-v1\0");
    h.update(c.rule_id.as_bytes());
    h.update([0]);
    for (k, v) in &c.group {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    h.update([0xff]);
    h.update(
        c.event_indices
            .first()
            .copied()
            .unwrap_or(u64::MAX)
            .to_be_bytes(),
    );
    let digest = h.finalize();
    format!("alert-{}", hex::encode(&digest[..16]))
}

impl Alert {
    pub fn from_candidate(c: AlertCandidate) -> Alert {
        let id = alert_id(&c);
        let mut event_indices = c.event_indices;
        event_indices.truncate(MAX_ATTRS_ITEMS);
        Alert {
            id,
            rule_id: c.rule_id,
            title: c.title,
            severity: c.level.as_str().to_owned(),
            group: c.group,
            first_time: c.first_time,
            last_time: c.last_time,
            count: c.count,
            event_indices,
            late: c.late,
            explanations_tried: c.explanations_tried,
        }
    }

    /// The `system/alert` event that records this alert in the ledger,
    /// raised at `now`. Its client id is the alert id, so the appender
    /// also stores a retried alert once.
    pub fn to_event(&self, now: Timestamp) -> Event {
        let mut e = Event::new(now, Category::System, ALERT_ACTION, Outcome::Success);
        e.id = Some(self.id.clone());
        e.source = Some(Source {
            system: SERVICE_VIA.to_owned(),
            host: None,
        });
        e.resource = Some(Resource {
            kind: RULE_RESOURCE.to_owned(),
            id: Some(self.rule_id.clone()),
        });
        e.message = Some(self.title.clone());
        e.attrs = serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_object().cloned());
        e
    }

    /// The alert an entry records, when it is one of the service's alerts.
    pub fn from_entry(entry: &Entry) -> Option<Alert> {
        if !is_alert_entry(entry) {
            return None;
        }
        let attrs = entry.event.attrs.as_ref()?;
        serde_json::from_value(serde_json::Value::Object(attrs.clone())).ok()
    }
}

/// The service's own `system/alert` events: rules skip them, so an alert
/// never feeds back into detection.
pub fn is_alert_entry(entry: &Entry) -> bool {
    entry.event.category == Category::System
        && entry.event.action == ALERT_ACTION
        && entry.via.kind == SERVICE_VIA
}

/// [`is_alert_entry`] of an entry read as a rule view.
pub fn is_alert_view(entry: &EntryView<'_>) -> bool {
    entry.event.category == Category::System
        && *entry.event.action == *ALERT_ACTION
        && *entry.via.kind == *SERVICE_VIA
}

/// `via` of the batches the detector submits.
pub fn service_via() -> Via {
    Via {
        kind: SERVICE_VIA.into(),
        peer: None,
        principal: None,
    }
}

/// The candidate an alert stands for, for seeding the suppression window
/// after a restart.
pub fn as_candidate(a: &Alert) -> AlertCandidate {
    AlertCandidate {
        rule_id: a.rule_id.clone(),
        title: a.title.clone(),
        level: crate::rules::Level::parse(&a.severity).unwrap_or(crate::rules::Level::Medium),
        group: a.group.clone(),
        first_time: a.first_time,
        last_time: a.last_time,
        count: a.count,
        event_indices: a.event_indices.clone(),
        late: a.late,
        explanations_tried: a.explanations_tried.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Level;

    fn candidate(first: u64) -> AlertCandidate {
        AlertCandidate {
            rule_id: "r1".into(),
            title: "T".into(),
            level: Level::High,
            group: [("actor.user".to_owned(), "u1".to_owned())].into(),
            first_time: Timestamp::parse("2026-11-27T10:00:00Z").unwrap(),
            last_time: Timestamp::parse("2026-11-27T10:01:00Z").unwrap(),
            count: 5,
            event_indices: (first..first + 100).collect(),
            late: false,
            explanations_tried: vec!["treatment.clinician".into(), "payment.claim".into()],
        }
    }

    #[test]
    fn ids_are_deterministic_and_depend_on_rule_group_and_first_event() {
        assert_eq!(alert_id(&candidate(3)), alert_id(&candidate(3)));
        assert_ne!(alert_id(&candidate(3)), alert_id(&candidate(4)));
        let mut other = candidate(3);
        other.group.insert("actor.user".into(), "u2".into());
        assert_ne!(alert_id(&candidate(3)), alert_id(&other));
        assert!(alert_id(&candidate(3)).len() <= crate::event::limits::MAX_ID_CHARS);
    }

    #[test]
    fn an_alert_event_round_trips_and_passes_validation() {
        let alert = Alert::from_candidate(candidate(7));
        assert_eq!(alert.event_indices.len(), MAX_ATTRS_ITEMS);
        let event = alert.to_event(Timestamp::parse("2026-11-27T10:02:00Z").unwrap());
        let bytes = serde_json::to_vec(&event).unwrap();
        let parsed = Event::from_json(&bytes).unwrap();
        let entry = Entry {
            received: parsed.time,
            via: service_via(),
            event: parsed,
            enriched: None,
        };
        assert_eq!(Alert::from_entry(&entry), Some(alert));
        let mut forged = entry.clone();
        forged.via.kind = "http".into();
        assert_eq!(Alert::from_entry(&forged), None);
    }
}

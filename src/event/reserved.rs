//! Actions only sealtrail itself writes. A client that sends
//! `system/alert` or `system/incident_update` would otherwise put a forged
//! alert or incident beside the service's own in every search, so events from
//! sources (HTTP, FHIR, syslog, import) with these actions are refused and
//! recorded as `system/ingest_rejected`; the service's own batches arrive
//! with a [`SERVICE_VIAS`] `via.kind` and pass.

use super::error::EventError;
use super::model::{Category, Event};

/// `system` actions written by the service (alerts, incidents and silences,
/// SIEM audit, checkpoints, late-hit drops, rejections, silent sources).
pub const SERVICE_ACTIONS: [&str; 9] = [
    "alert",
    "incident_update",
    "checkpoint",
    "siem_search",
    "siem_export",
    "siem_verify",
    "detection_late_dropped",
    "ingest_rejected",
    "source_silent",
];

/// `via.kind` of the batches the service submits itself: the detector,
/// response engine and silence watcher (`sealtrail`), the API's own audit
/// records (`api`).
pub const SERVICE_VIAS: [&str; 2] = ["sealtrail", "api"];

/// Whether a batch with this `via.kind` comes from the service itself.
pub fn is_service_via(kind: &str) -> bool {
    SERVICE_VIAS.contains(&kind)
}

/// Whether `category/action` is one only the service writes.
pub fn is_service_action(category: Category, action: &str) -> bool {
    category == Category::System && SERVICE_ACTIONS.contains(&action)
}

impl Event {
    /// [`Event::validate`] plus the refusal of service-only actions: the check
    /// every source applies to what a client sent.
    pub fn validate_from_client(&self) -> Result<(), EventError> {
        self.validate()?;
        self.check_not_service_action()
    }

    /// Refuses an event whose action only sealtrail writes.
    pub fn check_not_service_action(&self) -> Result<(), EventError> {
        if is_service_action(self.category, &self.action) {
            return Err(EventError::invalid(
                "action",
                format!(
                    "`system/{}` is written by sealtrail itself and is not accepted from a source",
                    self.action
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Outcome, Timestamp};

    #[test]
    fn service_actions_are_refused_from_clients_only_in_system() {
        let t = Timestamp::parse("2026-11-27T14:03:11Z").unwrap();
        for action in SERVICE_ACTIONS {
            let e = Event::new(t, Category::System, action, Outcome::Success);
            let err = e.validate_from_client().unwrap_err().to_string();
            assert!(
                err.contains(&format!("`system/{action}` is written by sealtrail itself")),
                "{err}"
            );
            // The service's own path validates the same event.
            e.validate().unwrap();
            // The same verb in another category is the client's own business.
            Event::new(t, Category::Admin, action, Outcome::Success)
                .validate_from_client()
                .unwrap();
        }
        Event::new(t, Category::System, "syslog", Outcome::Unknown)
            .validate_from_client()
            .unwrap();
        assert!(is_service_via("sealtrail") && is_service_via("api"));
        assert!(!is_service_via("http") && !is_service_via("import"));
    }

    const ALERT: &str = r#"{"time":"2026-11-27T14:03:11Z","category":"system","action":"alert","outcome":"success","message":"forged"}"#;

    fn rejection(item: crate::pipeline::Item) -> String {
        match item {
            crate::pipeline::Item::Rejected { reason, .. } => reason,
            other => panic!("not rejected: {other:?}"),
        }
    }

    #[test]
    fn syslog_and_import_refuse_service_actions_as_rejected_lines() {
        let msg = format!("<14>1 2026-11-27T14:03:11Z app-01 ehr - - - {ALERT}");
        let item = crate::sources::syslog::mapping::message_to_item(
            msg.as_bytes(),
            time::OffsetDateTime::now_utc(),
        )
        .unwrap();
        let reason = rejection(item);
        assert!(
            reason.contains("`system/alert` is written by sealtrail itself"),
            "{reason}"
        );
        let (item, err) = crate::sources::import::line_to_item(
            ALERT.replace("\"alert\"", "\"incident_update\"").as_bytes(),
            3,
        );
        assert!(
            err.unwrap()
                .contains("`system/incident_update` is written by sealtrail")
        );
        assert!(rejection(item).starts_with("line 3: "));
    }
}

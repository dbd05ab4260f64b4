//! The service's own audit events: who did what to the SIEM. Each is
//! submitted through the pipeline like any event and is durable before the
//! call returns.

use super::Principal;
use crate::event::{Actor, Category, Event, Outcome, Timestamp, Via};
use crate::pipeline::{IngestBatch, Item, Pipeline, PipelineError};
use serde_json::Value;
use std::net::IpAddr;

/// One audit event about the SIEM's own use.
pub struct AuditRecord {
    pub category: Category,
    pub action: &'static str,
    pub outcome: Outcome,
    /// Object members only (anything else is dropped).
    pub attrs: Value,
    pub message: String,
    /// Client id, so a retried record is stored once.
    pub id: Option<String>,
}

/// Appends `record` made by `principal` (if known) from `peer`, waiting for
/// room in the pipeline and for the entry to be durable.
pub async fn record(
    pipeline: &Pipeline,
    peer: Option<IpAddr>,
    principal: Option<&Principal>,
    record: AuditRecord,
) -> Result<(), PipelineError> {
    // A ledger that cannot write would hold the caller until it heals:
    // refuse at once (the caller answers 503).
    if let Some(reason) = pipeline.unwritable_reason() {
        return Err(PipelineError::Unavailable(reason));
    }
    let mut event = Event::new(
        Timestamp::now(),
        record.category,
        record.action,
        record.outcome,
    );
    let principal_name = principal.map(Principal::qualified_name);
    event.id = record.id;
    event.actor = Some(Actor {
        user: principal_name.clone(),
        ip: peer.map(|p| p.to_string()),
        ..Actor::default()
    });
    event.message = Some(record.message);
    event.attrs = record.attrs.as_object().cloned();
    let batch = IngestBatch {
        via: Via {
            kind: "api".into(),
            peer: peer.map(|p| p.to_string()),
            principal: principal_name,
        },
        items: vec![Item::Event(event)],
    };
    pipeline.submit(batch).await.map(|_| ())
}

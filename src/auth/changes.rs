//! Puts the change journal (`journal.rs`) in the ledger: every token, user
//! and key change made with the CLI becomes an audit event.

use super::journal::{self, Change};
use super::record::{AuditRecord, record};
use crate::event::Outcome;
use crate::pipeline::Pipeline;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ChangesError {
    #[error(transparent)]
    Store(#[from] journal::StoreError),
    #[error("recording change {seq}: {message}")]
    Record { seq: u64, message: String },
    #[error("journal task: {0}")]
    Task(String),
}

fn event_for(change: &Change) -> AuditRecord {
    let (category, action) = change.event_kind();
    let mut attrs = json!({
        "op": change.op,
        "subject": change.subject,
        "by_os_user": change.by,
        "changed_at": change.time,
        "journal_seq": change.seq,
    });
    if !change.roles.is_empty() {
        attrs["roles"] = json!(change.roles);
    }
    if let Some(e) = &change.expires {
        attrs["expires"] = json!(e);
    }
    AuditRecord {
        category,
        action,
        outcome: Outcome::Success,
        attrs,
        message: format!(
            "{} {} (by {} on the server)",
            change.op, change.subject, change.by
        ),
        id: Some(format!("auth-change-{}", change.seq)),
    }
}

/// Records every journal change not yet in the ledger; returns how many.
pub async fn record_new(data: &Path, pipeline: &Pipeline) -> Result<usize, ChangesError> {
    let dir = super::auth_dir(data);
    let read_dir: PathBuf = dir.clone();
    let (changes, done) = tokio::task::spawn_blocking(move || {
        Ok::<_, journal::StoreError>((journal::read_all(&read_dir)?, journal::recorded(&read_dir)?))
    })
    .await
    .map_err(|e| ChangesError::Task(e.to_string()))??;
    let mut n = 0;
    for change in changes.into_iter().filter(|c| c.seq > done) {
        let seq = change.seq;
        record(pipeline, None, None, event_for(&change))
            .await
            .map_err(|e| ChangesError::Record {
                seq,
                message: e.to_string(),
            })?;
        let d = dir.clone();
        tokio::task::spawn_blocking(move || journal::set_recorded(&d, seq))
            .await
            .map_err(|e| ChangesError::Task(e.to_string()))??;
        n += 1;
    }
    Ok(n)
}

/// Records new changes every `every` until `shutdown`.
pub async fn watch(
    data: PathBuf,
    pipeline: Pipeline,
    every: Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    let journal = journal::journal_path(&super::auth_dir(&data));
    // The journal only grows: it is read again only when its length or
    // modification time moved (or the last attempt failed).
    let mut seen = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let stamp = tokio::fs::metadata(&journal)
            .await
            .ok()
            .map(|m| (m.len(), m.modified().ok()));
        if stamp.is_some() && stamp == seen && !failing {
            continue;
        }
        match record_new(&data, &pipeline).await {
            Ok(n) => {
                if n > 0 {
                    tracing::info!(changes = n, "access changes recorded in the ledger");
                }
                failing = false;
                seen = stamp;
            }
            Err(e) if !failing => {
                tracing::error!(error = %e, "access changes could not be recorded yet; retrying");
                failing = true;
            }
            Err(_) => {}
        }
    }
}

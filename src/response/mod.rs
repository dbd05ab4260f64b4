//! Incident response: alerts -> incidents -> playbooks (email, webhook).
//!
//! ```text
//!  system/alert (ledger) ─> engine ─> playbook for the rule (or severity)
//!                              │      ─> incident per (playbook, rule, group)
//!                              │         group_wait / group_interval
//!                              │      ─> rounds: email + webhook to the on-call level (ack link)
//!                              │         wait_ack ─> escalate to the next level ─> ...
//!                              └─> system/incident_update (ledger): every change and attempt
//! ```
//!
//! - [`playbook`]: the YAML playbooks in `<rules dir>/playbooks/`.
//! - [`state`]: incidents as a fold over the recorded updates, and what is due.
//! - [`record`]: the `system/incident_update` events.
//! - [`engine`]: the running engine (follower, timers, sends, API commands).
//! - [`message`]: what a notification says (facts, event lines, runbook, links; text, HTML, JSON).
//! - [`silence`], [`token`]: silences and acknowledgement links.
//! - [`preview`]: what a silence would mute, before it is created.
//! - [`notify`]: delivery (SMTP, webhooks).

pub mod config;
pub mod engine;
pub mod message;
pub mod notify;
pub mod playbook;
pub mod preview;
pub mod record;
pub mod silence;
pub mod state;
pub mod token;

use std::path::PathBuf;

use thiserror::Error;

pub use config::{OncallConfig, OncallLevel, ResponseConfig};
pub use engine::{
    ApiError, Command, Responder, ResponseContext, ResponseHandle, ResponseSettings, load_playbooks,
};

#[derive(Debug, Error)]
pub enum ResponseError {
    #[error("playbooks in {dir}: {}", join(.errors))]
    Playbooks {
        dir: PathBuf,
        errors: Vec<crate::rules::LoadError>,
    },
    #[error("acknowledgement link key: {0}")]
    Key(String),
    #[error("smtp: {0}")]
    Smtp(String),
    #[error("rebuilding incidents from the ledger: {0}")]
    Replay(String),
    #[error("response task: {0}")]
    Task(String),
}

fn join(errors: &[crate::rules::LoadError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

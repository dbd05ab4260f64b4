//! Delivery transports (email over SMTP, signed webhooks).
//!
//! TEMPORARY: this module is a small stand-in with exactly the interface
//! agreed in `response-interface.md`, so the response engine compiles and its
//! tests run against a real SMTP server process. The `notify` branch brings
//! the real module (lettre, STARTTLS/TLS, authentication); when merging, take
//! that branch's `src/response/notify/` whole.

pub mod email;
mod webhook;

use std::time::Duration;

use serde::Serialize;
use thiserror::Error;

pub use email::{Mailer, SmtpConfig};
pub use webhook::WebhookSender;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Email,
    Webhook,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Delivered,
    Retrying,
    Failed,
}

/// One delivery attempt, recorded in the ledger by the caller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Attempt {
    pub channel: Channel,
    /// Recipient list joined by ", " or the webhook URL (no secrets).
    pub target: String,
    /// 1-based.
    pub attempt: u32,
    pub outcome: Outcome,
    /// Server reply / HTTP status / error text, bounded to 500 chars.
    pub detail: String,
    pub elapsed_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailMessage {
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct WebhookRequest {
    pub url: String,
    pub secret: Option<String>,
    pub body: serde_json::Value,
}

/// Retry policy shared by both channels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Error)]
pub enum NotifyError {
    #[error("smtp configuration: {0}")]
    Config(String),
    #[error("delivery failed after {attempts} attempts: {detail}")]
    GaveUp { attempts: u32, detail: String },
    #[error("rejected: {0}")]
    Rejected(String),
}

/// `detail` bounded to 500 characters.
pub(crate) fn bounded(s: &str) -> String {
    s.chars().take(500).collect()
}

/// Backoff before attempt `n + 1` (n >= 1): doubling, capped.
pub(crate) fn backoff(policy: &RetryPolicy, n: u32) -> Duration {
    let factor = 1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX);
    policy
        .first_backoff
        .saturating_mul(factor)
        .min(policy.max_backoff)
}

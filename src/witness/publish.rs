//! `[publish]`: send the latest signed checkpoint (and the witnessed one, when
//! kept) out on a schedule, by email through `[smtp]` and/or a webhook, so
//! someone outside the server always holds a recent one. Each publication is
//! recorded in the ledger as a `system/checkpoint` event (`attrs.kind =
//! "published"`) saying what was sent where and whether it was delivered.

use crate::auth::record::{AuditRecord, record};
use crate::event::{Category, Outcome};
use crate::ledger::log::LedgerPaths;
use crate::ledger::note::{self, MAX_NOTE_LEN};
use crate::ledger::witnessed::WITNESSED_FILE;
use crate::pipeline::Pipeline;
use crate::response::notify::{
    Attempt, EmailMessage, Mailer, SmtpConfig, WebhookRequest, WebhookSender,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Most email recipients.
pub const MAX_EMAILS: usize = 32;

/// `[publish]` as written; `every = ""` (the default) is off.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublishConfig {
    /// How often, such as "24h" (at least 1s).
    pub every: String,
    pub emails: Vec<String>,
    pub webhook: String,
    /// Signs the webhook body (HMAC, as the on-call webhooks).
    pub webhook_secret: String,
}

impl PublishConfig {
    /// The interval, or None when publishing is off; the error names the key.
    pub fn validate(&self) -> Result<Option<Duration>, (&'static str, String)> {
        if self.every.is_empty() {
            if !self.emails.is_empty() || !self.webhook.is_empty() {
                return Err(("publish.every", "is needed with emails or webhook".into()));
            }
            return Ok(None);
        }
        let every = crate::sources::syslog::parse_duration(&self.every)
            .filter(|d| *d >= Duration::from_secs(1))
            .ok_or_else(|| {
                (
                    "publish.every",
                    format!(
                        "{:?} is not a duration of at least 1s (such as \"24h\")",
                        self.every
                    ),
                )
            })?;
        if self.emails.is_empty() && self.webhook.is_empty() {
            return Err(("publish", "needs emails or a webhook".into()));
        }
        if self.emails.len() > MAX_EMAILS {
            return Err(("publish.emails", format!("at most {MAX_EMAILS} addresses")));
        }
        let http = ["http://", "https://"];
        if !self.webhook.is_empty() && !http.iter().any(|p| self.webhook.starts_with(p)) {
            return Err(("publish.webhook", "must be an http(s) URL".into()));
        }
        Ok(Some(every))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("[publish]: {0}")]
    Setup(String),
}

struct Publisher {
    data_dir: PathBuf,
    config: PublishConfig,
    mailer: Option<Mailer>,
    webhook: Option<WebhookSender>,
    pipeline: Pipeline,
}

/// Starts the publishing task when `[publish]` is on.
pub fn start(
    data_dir: &Path,
    config: &PublishConfig,
    smtp: &SmtpConfig,
    pipeline: Pipeline,
    shutdown: CancellationToken,
) -> Result<Option<tokio::task::JoinHandle<()>>, PublishError> {
    let Some(every) = config
        .validate()
        .map_err(|(k, r)| PublishError::Setup(format!("{k}: {r}")))?
    else {
        return Ok(None);
    };
    let mailer = if config.emails.is_empty() {
        None
    } else {
        Some(Mailer::new(smtp).map_err(|e| PublishError::Setup(format!("[smtp]: {e}")))?)
    };
    let webhook = if config.webhook.is_empty() {
        None
    } else {
        Some(
            WebhookSender::new(smtp.retry_policy())
                .map_err(|e| PublishError::Setup(e.to_string()))?,
        )
    };
    let p = Publisher {
        data_dir: data_dir.to_owned(),
        config: config.clone(),
        mailer,
        webhook,
        pipeline,
    };
    Ok(Some(tokio::spawn(run(p, every, shutdown))))
}

async fn run(p: Publisher, every: Duration, shutdown: CancellationToken) {
    let mut seq = 0u64;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        seq += 1;
        // Retries must not hold up a shutdown.
        let result = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = p.publish_once(seq) => r,
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "checkpoint publication failed");
        }
    }
}

fn read(path: PathBuf) -> Option<String> {
    crate::bounded::read_to_string(&path, MAX_NOTE_LEN as u64).ok()
}

impl Publisher {
    async fn publish_once(&self, seq: u64) -> Result<(), String> {
        let paths = LedgerPaths::new(&self.data_dir);
        let files = (paths.checkpoint.clone(), paths.ledger.join(WITNESSED_FILE));
        let (checkpoint, witnessed) =
            tokio::task::spawn_blocking(move || (read(files.0), read(files.1)))
                .await
                .map_err(|e| e.to_string())?;
        let checkpoint = checkpoint.ok_or("no signed checkpoint yet")?;
        let cp = note::parse_unverified_checkpoint(&checkpoint).map_err(|e| e.to_string())?;
        let root = B64.encode(cp.root);
        let mut attempts: Vec<Attempt> = Vec::new();
        let mut delivered = Vec::new();
        let mut failed = Vec::new();
        if let Some(mailer) = &self.mailer {
            let mut text = format!(
                "The latest signed checkpoint of the audit log {origin}: {size} segments, root {root}.\n\
                 Keep this message: with `sealtrail verify --since` (or a consistency proof) it shows\n\
                 the log still extends what it was at this point.\n\n{checkpoint}",
                origin = cp.origin,
                size = cp.size,
            );
            if let Some(w) = &witnessed {
                text.push_str("\nThe latest checkpoint cosigned by witnesses:\n\n");
                text.push_str(w);
            }
            let msg = EmailMessage {
                to: self.config.emails.clone(),
                subject: format!("sealtrail checkpoint {} size {}", cp.origin, cp.size),
                text,
                html: None,
            };
            let result = mailer.send(&msg, &mut |a| attempts.push(a)).await;
            match result {
                Ok(()) => delivered.push("email"),
                Err(_) => failed.push("email"),
            }
        }
        if let Some(sender) = &self.webhook {
            let req = WebhookRequest {
                url: self.config.webhook.clone(),
                secret: (!self.config.webhook_secret.is_empty())
                    .then(|| self.config.webhook_secret.clone()),
                body: json!({
                    "kind": "sealtrail_checkpoint",
                    "origin": cp.origin,
                    "size": cp.size,
                    "root": root,
                    "checkpoint": checkpoint,
                    "witnessed": witnessed,
                }),
            };
            match sender.send(&req, &mut |a| attempts.push(a)).await {
                Ok(()) => delivered.push("webhook"),
                Err(_) => failed.push("webhook"),
            }
        }
        let outcome = if failed.is_empty() {
            Outcome::Success
        } else {
            Outcome::Failure
        };
        let rec = AuditRecord {
            category: Category::System,
            action: "checkpoint",
            outcome,
            attrs: json!({
                "kind": "published",
                "size": cp.size,
                "root": root,
                "witnessed": witnessed.is_some(),
                "delivered": delivered,
                "failed": failed,
                "attempts": attempts.len(),
            }),
            message: format!(
                "checkpoint of {} segments published ({})",
                cp.size,
                if failed.is_empty() {
                    "delivered"
                } else {
                    "not delivered everywhere"
                }
            ),
            id: Some(format!(
                "checkpoint-published-{}-{}-{seq}",
                cp.size,
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis())
            )),
        };
        record(&self.pipeline, None, None, rec)
            .await
            .map_err(|e| format!("recording the publication: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> PublishConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn validation() {
        assert_eq!(parse("").validate(), Ok(None));
        assert_eq!(
            parse("every = \"24h\"\nemails = [\"a@b.example\"]").validate(),
            Ok(Some(Duration::from_secs(86_400)))
        );
        for (text, key) in [
            ("emails = [\"a@b.example\"]", "publish.every"),
            ("every = \"1h\"", "publish"),
            ("every = \"500ms\"\nwebhook = \"http://x\"", "publish.every"),
            ("every = \"soon\"\nwebhook = \"http://x\"", "publish.every"),
            ("every = \"1h\"\nwebhook = \"ftp://x\"", "publish.webhook"),
        ] {
            assert_eq!(parse(text).validate().unwrap_err().0, key, "{text}");
        }
        assert!(toml::from_str::<PublishConfig>("evry = \"1h\"").is_err());
    }
}

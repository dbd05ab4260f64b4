//! Delivery of notifications: email over SMTP (`email.rs`, lettre) and
//! signed JSON webhooks (`webhook.rs`, reqwest), with one retry loop for both.
//!
//! A sender reports every attempt through a `record` callback before it
//! sleeps for the next one, so the caller can put each attempt in the ledger
//! as it happens; a crash between attempts loses no record. Permanent
//! failures (an SMTP 5xx reply, an HTTP 4xx other than 429, a TLS or
//! configuration problem) end the loop at once; transient ones (connection
//! refused, timeouts, SMTP 4xx, HTTP 5xx and 429) are retried with
//! exponential backoff and jitter, bounded by the policy: at least
//! `attempts` times, and on (at the backoff ceiling) until `retry_for` has
//! passed since the first attempt, so a mail server down for ten minutes
//! delays a notification instead of losing it (issue #16's fault campaign).

mod email;
mod webhook;

pub use email::{Mailer, SmtpConfig, StartTls, build_message};
pub use webhook::{
    SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookSender, sign, timestamp_fresh, verify_signature,
};

use serde::Serialize;
use std::future::Future;
use std::time::Duration;
// tokio's clock: the same as std's, but test time can be paused.
use thiserror::Error;
use tokio::time::Instant;

/// Longest `Attempt::detail`, in characters.
pub const MAX_DETAIL_CHARS: usize = 500;

/// One delivery attempt, recorded in the ledger by the caller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Attempt {
    pub channel: Channel,
    /// Recipients joined by ", ", or the webhook URL without credentials
    /// and query string.
    pub target: String,
    /// 1-based.
    pub attempt: u32,
    pub outcome: Outcome,
    /// Server reply, HTTP status or error text; at most
    /// [`MAX_DETAIL_CHARS`] characters, never a password or secret.
    pub detail: String,
    pub elapsed_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Email,
    Webhook,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Accepted by the server (SMTP 250 after DATA, HTTP 2xx).
    Delivered,
    /// Failed, another attempt follows after a backoff.
    Retrying,
    /// Failed and no attempt follows: permanent rejection or the last attempt.
    Failed,
}

/// An email (UTF-8) to one or more recipients: plain text, and with `html`
/// a multipart/alternative of the text and the HTML.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailMessage {
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
    /// A self-contained HTML rendering of the same message.
    pub html: Option<String>,
}

/// A JSON POST, signed when `secret` is set (see [`sign`]).
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookRequest {
    pub url: String,
    pub secret: Option<String>,
    pub body: serde_json::Value,
}

/// Retry policy shared by both channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, at least 1.
    pub attempts: u32,
    /// Backoff after the first failed attempt; doubles after each one.
    pub first_backoff: Duration,
    /// Ceiling of one backoff (also of an HTTP `Retry-After`).
    pub max_backoff: Duration,
    /// Deadline of one attempt, connecting included.
    pub timeout: Duration,
    /// Transient failures are retried past `attempts` until this long after
    /// the first attempt started (zero: `attempts` alone bounds the loop).
    pub retry_for: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            retry_for: Duration::ZERO,
        }
    }
}

impl RetryPolicy {
    /// The pause after failed attempt `attempt` (1-based): the exponential
    /// step `first_backoff * 2^(attempt-1)`, capped at `max_backoff`, of
    /// which the upper half is scaled by `jitter` (0.0..=1.0) so senders
    /// that failed together do not retry together ("equal jitter": never
    /// less than half the step).
    pub fn backoff(&self, attempt: u32, jitter: f64) -> Duration {
        let shift = attempt.saturating_sub(1).min(31);
        let step = self
            .first_backoff
            .saturating_mul(1u32 << shift)
            .min(self.max_backoff);
        let half = step / 2;
        half + half.mul_f64(jitter.clamp(0.0, 1.0))
    }

    /// Longest time [`run`] can take: every attempt times out and every
    /// backoff is at its ceiling. Tests and callers bound waits with it.
    pub fn worst_case(&self) -> Duration {
        let attempts = self.attempts.max(1);
        let counted =
            self.timeout.saturating_mul(attempts) + self.max_backoff.saturating_mul(attempts - 1);
        if self.retry_for.is_zero() {
            counted
        } else {
            // The last retry starts before `retry_for` ends: one backoff and
            // one attempt more at most.
            counted.max(self.retry_for + self.max_backoff + self.timeout)
        }
    }

    /// Whether a transient failure of attempt `n` (1-based), `elapsed`
    /// after the first attempt started, is the last one.
    fn gives_up(&self, n: u32, elapsed: Duration) -> bool {
        n >= self.attempts.max(1) && elapsed >= self.retry_for
    }
}

#[derive(Debug, Error)]
pub enum NotifyError {
    #[error("smtp.{key}: {reason}")]
    Config { key: &'static str, reason: String },
    #[error("smtp.ca_file: {0}")]
    CaFile(#[from] crate::tls::TlsError),
    #[error("invalid message: {0}")]
    Message(String),
    #[error("http client: {0}")]
    Client(String),
    /// The server refused for good (SMTP 5xx, HTTP 4xx, TLS): not retried.
    #[error("rejected: {detail}")]
    Rejected { detail: String },
    /// Every attempt failed with a transient error.
    #[error("gave up after {attempts} attempts: {detail}")]
    Exhausted { attempts: u32, detail: String },
}

/// What one attempt came to, as a channel sees it.
#[derive(Debug)]
pub(crate) enum Verdict {
    Delivered(String),
    Transient {
        detail: String,
        /// The server asked for this pause (HTTP `Retry-After`).
        retry_after: Option<Duration>,
    },
    Permanent(String),
}

/// The retry loop of both channels: runs `attempt` up to `policy.attempts`
/// times, each under `policy.timeout`, and calls `record` after each.
pub(crate) async fn run<F, Fut>(
    policy: &RetryPolicy,
    channel: Channel,
    target: &str,
    record: &mut (dyn FnMut(Attempt) + Send),
    mut attempt: F,
) -> Result<(), NotifyError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Verdict>,
{
    let first = Instant::now();
    let mut n: u32 = 0;
    loop {
        n = n.saturating_add(1);
        let start = Instant::now();
        // Dropping the attempt on timeout closes its connection: nothing of
        // it outlives the deadline.
        let verdict = match tokio::time::timeout(policy.timeout, attempt()).await {
            Ok(v) => v,
            Err(_) => Verdict::Transient {
                detail: format!("timed out after {} ms", policy.timeout.as_millis()),
                retry_after: None,
            },
        };
        let elapsed_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut report = |outcome: Outcome, detail: &str| {
            record(Attempt {
                channel,
                target: target.to_owned(),
                attempt: n,
                outcome,
                detail: bounded(detail),
                elapsed_ms,
            })
        };
        match verdict {
            Verdict::Delivered(detail) => {
                report(Outcome::Delivered, &detail);
                return Ok(());
            }
            Verdict::Permanent(detail) => {
                report(Outcome::Failed, &detail);
                return Err(NotifyError::Rejected {
                    detail: bounded(&detail),
                });
            }
            Verdict::Transient {
                detail,
                retry_after,
            } => {
                if policy.gives_up(n, first.elapsed()) {
                    report(Outcome::Failed, &detail);
                    return Err(NotifyError::Exhausted {
                        attempts: n,
                        detail: bounded(&detail),
                    });
                }
                report(Outcome::Retrying, &detail);
                let computed = policy.backoff(n, rand::random::<f64>());
                // A server's Retry-After is honoured up to our own ceiling,
                // so one receiver cannot stall a notification for hours.
                let pause =
                    retry_after.map_or(computed, |r| r.max(computed).min(policy.max_backoff));
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// Records a failure that happened before any attempt could start (a bad
/// address, an invalid URL) as one failed attempt, so the ledger shows it.
pub(crate) fn fail_early(
    channel: Channel,
    target: &str,
    record: &mut (dyn FnMut(Attempt) + Send),
    detail: &str,
) -> NotifyError {
    record(Attempt {
        channel,
        target: target.to_owned(),
        attempt: 1,
        outcome: Outcome::Failed,
        detail: bounded(detail),
        elapsed_ms: 0,
    });
    NotifyError::Message(bounded(detail))
}

/// `text` cut to [`MAX_DETAIL_CHARS`] characters, control characters as
/// spaces (a detail is one line in the ledger and in logs).
pub(crate) fn bounded(text: &str) -> String {
    let mut out: String = text
        .trim()
        .chars()
        .take(MAX_DETAIL_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.trim().chars().count() > MAX_DETAIL_CHARS {
        // Keep the bound exact while showing the cut.
        out.pop();
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn policy(attempts: u32) -> RetryPolicy {
        RetryPolicy {
            attempts,
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(350),
            timeout: Duration::from_millis(200),
            retry_for: Duration::ZERO,
        }
    }

    #[test]
    fn backoff_doubles_is_capped_and_keeps_half_the_step() {
        let p = policy(10);
        assert_eq!(p.backoff(1, 0.0), Duration::from_millis(50));
        assert_eq!(p.backoff(1, 1.0), Duration::from_millis(100));
        assert_eq!(p.backoff(2, 1.0), Duration::from_millis(200));
        assert_eq!(p.backoff(3, 1.0), Duration::from_millis(350));
        assert_eq!(p.backoff(3, 0.0), Duration::from_millis(175));
        assert_eq!(p.backoff(u32::MAX, 0.5), p.backoff(40, 0.5));
        for j in [0.0, 0.3, 0.7, 1.0, 7.0, -1.0] {
            let b = p.backoff(2, j);
            assert!(b >= Duration::from_millis(100) && b <= Duration::from_millis(200));
        }
        assert_eq!(p.worst_case(), Duration::from_millis(200 * 10 + 350 * 9));
    }

    #[test]
    fn detail_is_bounded_and_one_line() {
        assert_eq!(bounded(" 250 ok\r\n"), "250 ok");
        assert_eq!(bounded("a\nb"), "a b");
        let long = "é".repeat(MAX_DETAIL_CHARS + 20);
        let b = bounded(&long);
        assert_eq!(b.chars().count(), MAX_DETAIL_CHARS);
        assert!(b.ends_with('…'));
        assert_eq!(
            bounded(&"x".repeat(MAX_DETAIL_CHARS)).chars().count(),
            MAX_DETAIL_CHARS
        );
    }

    fn collect() -> (Arc<Mutex<Vec<Attempt>>>, impl FnMut(Attempt) + Send) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        (seen, move |a| sink.lock().unwrap().push(a))
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_retry_until_the_last_attempt() {
        let (seen, mut rec) = collect();
        let r = run(&policy(3), Channel::Email, "a@x", &mut rec, || async {
            Verdict::Transient {
                detail: "421 busy".into(),
                retry_after: None,
            }
        })
        .await;
        assert!(matches!(r, Err(NotifyError::Exhausted { attempts: 3, .. })));
        let seen = seen.lock().unwrap();
        let outcomes: Vec<_> = seen.iter().map(|a| (a.attempt, a.outcome)).collect();
        assert_eq!(
            outcomes,
            [
                (1, Outcome::Retrying),
                (2, Outcome::Retrying),
                (3, Outcome::Failed)
            ]
        );
        assert!(
            seen.iter()
                .all(|a| a.detail == "421 busy" && a.target == "a@x")
        );
    }

    /// Regression (fault campaign, issue #16): a mail server down longer
    /// than the counted retries used to end the round as `failed` after
    /// ~7 s, so alerts raised during a 10-minute outage were never sent.
    #[tokio::test(start_paused = true)]
    async fn transient_failures_retry_on_until_retry_for_then_deliver_or_give_up() {
        let p = RetryPolicy {
            retry_for: Duration::from_secs(10),
            ..policy(2)
        };
        // Down for good: attempts go on at the backoff ceiling until
        // retry_for has passed, then one failed attempt ends the loop.
        let (seen, mut rec) = collect();
        let start = tokio::time::Instant::now();
        let r = run(&p, Channel::Email, "a@x", &mut rec, || async {
            Verdict::Transient {
                detail: "connection refused".into(),
                retry_after: None,
            }
        })
        .await;
        let n = seen.lock().unwrap().len();
        assert!(
            matches!(r, Err(NotifyError::Exhausted { attempts, .. }) if attempts as usize == n),
            "{r:?}"
        );
        assert!(n > 20, "only {n} attempts in 10 s of 175..350 ms backoffs");
        assert!(start.elapsed() >= Duration::from_secs(10));
        assert!(start.elapsed() <= p.worst_case(), "{:?}", start.elapsed());
        let outcomes: Vec<_> = seen.lock().unwrap().iter().map(|a| a.outcome).collect();
        assert!(outcomes[..n - 1].iter().all(|o| *o == Outcome::Retrying));
        assert_eq!(outcomes[n - 1], Outcome::Failed);

        // Back after 8 s: delivered on the first attempt after that.
        let (seen, mut rec) = collect();
        let start = tokio::time::Instant::now();
        let r = run(&p, Channel::Email, "a@x", &mut rec, || {
            let up = start.elapsed() >= Duration::from_secs(8);
            async move {
                if up {
                    Verdict::Delivered("250 ok".into())
                } else {
                    Verdict::Transient {
                        detail: "connection refused".into(),
                        retry_after: None,
                    }
                }
            }
        })
        .await;
        assert!(r.is_ok(), "{r:?}");
        let seen = seen.lock().unwrap();
        assert_eq!(seen.last().map(|a| a.outcome), Some(Outcome::Delivered));
        assert!(
            seen[..seen.len() - 1]
                .iter()
                .all(|a| a.outcome == Outcome::Retrying)
        );
        assert!(
            start.elapsed() < Duration::from_secs(9),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_failure_and_success_stop_at_once() {
        let (seen, mut rec) = collect();
        let r = run(&policy(5), Channel::Webhook, "u", &mut rec, || async {
            Verdict::Permanent("HTTP 400".into())
        })
        .await;
        assert!(matches!(r, Err(NotifyError::Rejected { .. })));
        assert_eq!(seen.lock().unwrap().len(), 1);
        assert_eq!(seen.lock().unwrap()[0].outcome, Outcome::Failed);

        let (seen, mut rec) = collect();
        let mut calls = 0;
        let r = run(&policy(5), Channel::Webhook, "u", &mut rec, || {
            calls += 1;
            let first = calls == 1;
            async move {
                if first {
                    Verdict::Transient {
                        detail: "HTTP 503".into(),
                        retry_after: None,
                    }
                } else {
                    Verdict::Delivered("HTTP 200".into())
                }
            }
        })
        .await;
        assert!(r.is_ok());
        let outcomes: Vec<_> = seen.lock().unwrap().iter().map(|a| a.outcome).collect();
        assert_eq!(outcomes, [Outcome::Retrying, Outcome::Delivered]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_attempt_times_out_and_retry_after_is_capped() {
        let (seen, mut rec) = collect();
        let start = tokio::time::Instant::now();
        let mut calls = 0;
        let r = run(&policy(2), Channel::Webhook, "u", &mut rec, || {
            calls += 1;
            let first = calls == 1;
            async move {
                if first {
                    Verdict::Transient {
                        detail: "HTTP 429".into(),
                        retry_after: Some(Duration::from_secs(3600)),
                    }
                } else {
                    std::future::pending::<Verdict>().await
                }
            }
        })
        .await;
        assert!(matches!(r, Err(NotifyError::Exhausted { .. })));
        // 350 ms backoff ceiling (not an hour) + the 200 ms attempt timeout.
        assert_eq!(start.elapsed(), Duration::from_millis(550));
        let seen = seen.lock().unwrap();
        assert_eq!(seen[1].detail, "timed out after 200 ms");
        assert_eq!(seen[1].elapsed_ms, 200);
    }

    #[test]
    fn attempts_serialize_as_the_ledger_expects() {
        let a = Attempt {
            channel: Channel::Email,
            target: "a@x, b@x".into(),
            attempt: 2,
            outcome: Outcome::Retrying,
            detail: "421".into(),
            elapsed_ms: 7,
        };
        assert_eq!(
            serde_json::to_value(&a).unwrap(),
            serde_json::json!({"channel": "email", "target": "a@x, b@x", "attempt": 2,
                "outcome": "retrying", "detail": "421", "elapsed_ms": 7})
        );
    }
}

//! TEMPORARY stand-in (see `mod.rs`): signed JSON POSTs with retries.

use std::time::Instant;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{
    Attempt, Channel, NotifyError, Outcome, RetryPolicy, WebhookRequest, backoff, bounded,
};

#[derive(Clone)]
pub struct WebhookSender {
    policy: RetryPolicy,
}

impl WebhookSender {
    pub fn new(policy: RetryPolicy) -> Result<WebhookSender, NotifyError> {
        Ok(WebhookSender { policy })
    }

    pub async fn send(
        &self,
        req: &WebhookRequest,
        record: &mut (dyn FnMut(Attempt) + Send),
    ) -> Result<(), NotifyError> {
        let body = serde_json::to_vec(&req.body).map_err(|e| NotifyError::Config(e.to_string()))?;
        let mut n = 0;
        loop {
            n += 1;
            let started = Instant::now();
            let (url, secret, body2, timeout) = (
                req.url.clone(),
                req.secret.clone(),
                body.clone(),
                self.policy.timeout,
            );
            let r =
                tokio::task::spawn_blocking(move || post(&url, secret.as_deref(), &body2, timeout))
                    .await
                    .unwrap_or_else(|e| Err((e.to_string(), false)));
            let (delivered, detail, permanent) = match r {
                Ok(s) => (true, s, false),
                Err((d, p)) => (false, d, p),
            };
            let last = delivered || permanent || n >= self.policy.attempts;
            let outcome = match (delivered, last) {
                (true, _) => Outcome::Delivered,
                (false, true) => Outcome::Failed,
                (false, false) => Outcome::Retrying,
            };
            record(Attempt {
                channel: Channel::Webhook,
                target: req.url.clone(),
                attempt: n,
                outcome,
                detail: bounded(&detail),
                elapsed_ms: started.elapsed().as_millis() as u64,
            });
            match outcome {
                Outcome::Delivered => return Ok(()),
                Outcome::Failed if permanent => return Err(NotifyError::Rejected(detail)),
                Outcome::Failed => {
                    return Err(NotifyError::GaveUp {
                        attempts: n,
                        detail,
                    });
                }
                Outcome::Retrying => tokio::time::sleep(backoff(&self.policy, n)).await,
            }
        }
    }
}

fn post(
    url: &str,
    secret: Option<&str>,
    body: &[u8],
    timeout: std::time::Duration,
) -> Result<String, (String, bool)> {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build(),
    );
    let mut r = agent.post(url).header("Content-Type", "application/json");
    if let Some(secret) = secret {
        let ts = crate::event::Timestamp::now().unix_ms() / 1000;
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|e| (e.to_string(), true))?;
        mac.update(format!("{ts}.").as_bytes());
        mac.update(body);
        let sig = hex::encode(mac.finalize().into_bytes());
        r = r
            .header("X-Sealtrail-Timestamp", ts.to_string())
            .header("X-Sealtrail-Signature", format!("sha256={sig}"));
    }
    match r.send(body) {
        Ok(resp) => {
            let status = resp.status().as_u16();
            if (200..300).contains(&status) {
                Ok(format!("HTTP {status}"))
            } else {
                // 4xx other than 408/429 will not get better by retrying.
                let permanent = (400..500).contains(&status) && status != 408 && status != 429;
                Err((format!("HTTP {status}"), permanent))
            }
        }
        Err(e) => Err((e.to_string(), false)),
    }
}

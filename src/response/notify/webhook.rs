//! Signed JSON webhooks (reqwest, rustls) and the signature scheme receivers
//! check.
//!
//! Each attempt carries `X-Sealtrail-Timestamp: <unix seconds>` and, when
//! the request has a secret, `X-Sealtrail-Signature: sha256=<hex>` where
//! the hex is HMAC-SHA-256(secret, "<timestamp>.<body bytes>") (the scheme
//! Stripe and Slack use). The timestamp is fresh per attempt, so a receiver
//! can refuse old deliveries (replays) with [`timestamp_fresh`].

use super::{Attempt, Channel, NotifyError, RetryPolicy, Verdict, WebhookRequest, fail_early, run};
use hmac::{Hmac, Mac};
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use sha2::Sha256;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const TIMESTAMP_HEADER: &str = "X-Sealtrail-Timestamp";
pub const SIGNATURE_HEADER: &str = "X-Sealtrail-Signature";

/// Bytes of a response body quoted in an attempt's detail.
const MAX_QUOTED_BODY: usize = 200;

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length (long ones are hashed first), so this
    // constructor cannot fail.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `X-Sealtrail-Signature` value: `sha256=<lower-case hex>`.
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
    )
}

/// Whether `header` (an `X-Sealtrail-Signature` value) is the signature of
/// `timestamp` and `body` under `secret`. The comparison is constant-time.
/// Check the timestamp's age separately ([`timestamp_fresh`]).
pub fn verify_signature(secret: &str, timestamp: &str, body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    mac(secret, timestamp, body).verify_slice(&sig).is_ok()
}

/// Whether `timestamp` (unix seconds, as sent) lies within `window` of
/// `now_unix` either way. Receivers refuse stale or replayed deliveries with
/// it; a window of 5 minutes is usual.
pub fn timestamp_fresh(timestamp: &str, now_unix: u64, window: Duration) -> bool {
    timestamp
        .trim()
        .parse::<u64>()
        .is_ok_and(|t| t.abs_diff(now_unix) <= window.as_secs())
}

/// Posts webhooks; cheap to clone (one connection pool inside).
#[derive(Clone, Debug)]
pub struct WebhookSender {
    client: reqwest::Client,
    policy: RetryPolicy,
}

impl WebhookSender {
    /// Redirects are not followed: a webhook goes where it was configured.
    pub fn new(policy: RetryPolicy) -> Result<WebhookSender, NotifyError> {
        let client = reqwest::Client::builder()
            .connect_timeout(policy.timeout)
            .timeout(policy.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("sealtrail/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| NotifyError::Client(error_text(&e)))?;
        Ok(WebhookSender { client, policy })
    }

    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Posts `req.body` as JSON with retries; `record` is called after every
    /// attempt, before any backoff. `Ok` on a 2xx answer. Retried: connection
    /// errors, timeouts, 5xx and 429 (its `Retry-After` honoured up to the
    /// policy's `max_backoff`); any other answer is final.
    pub async fn send(
        &self,
        req: &WebhookRequest,
        record: &mut (dyn FnMut(Attempt) + Send),
    ) -> Result<(), NotifyError> {
        let url = match parse_url(&req.url) {
            Ok(u) => u,
            Err(reason) => {
                return Err(fail_early(
                    Channel::Webhook,
                    &redact(&req.url),
                    record,
                    &reason,
                ));
            }
        };
        let target = redact(&req.url);
        let body = match serde_json::to_vec(&req.body) {
            Ok(b) => b,
            Err(e) => {
                return Err(fail_early(
                    Channel::Webhook,
                    &target,
                    record,
                    &e.to_string(),
                ));
            }
        };
        let secret = req.secret.as_deref().filter(|s| !s.is_empty());
        run(&self.policy, Channel::Webhook, &target, record, || {
            self.attempt(url.clone(), secret, &body)
        })
        .await
    }

    async fn attempt(&self, url: Url, secret: Option<&str>, body: &[u8]) -> Verdict {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .to_string();
        let mut request = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .header(TIMESTAMP_HEADER, &timestamp);
        if let Some(secret) = secret {
            request = request.header(SIGNATURE_HEADER, sign(secret, &timestamp, body));
        }
        let response = match request.body(body.to_vec()).send().await {
            Ok(r) => r,
            Err(e) if e.is_builder() => return Verdict::Permanent(error_text(&e)),
            Err(e) => {
                return Verdict::Transient {
                    detail: error_text(&e),
                    retry_after: None,
                };
            }
        };
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let quoted = quote_body(response).await;
        let detail = if quoted.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {quoted}")
        };
        if status.is_success() {
            Verdict::Delivered(detail)
        } else if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            Verdict::Transient {
                detail,
                retry_after,
            }
        } else {
            Verdict::Permanent(detail)
        }
    }
}

fn parse_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("invalid webhook url: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("invalid webhook url: must be http(s)://host/...".to_owned());
    }
    Ok(url)
}

/// The URL as recorded: no user name, password, query or fragment (where
/// tokens tend to live).
fn redact(text: &str) -> String {
    match Url::parse(text) {
        Ok(mut url) => {
            // Only fails for URLs that cannot have credentials (no host),
            // which then have none to remove.
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.set_query(None);
            url.set_fragment(None);
            url.to_string()
        }
        Err(_) => "<invalid url>".to_owned(),
    }
}

/// `Retry-After` as delta-seconds or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when =
        time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    let wait = when - time::OffsetDateTime::now_utc();
    Some(wait.try_into().unwrap_or(Duration::ZERO))
}

/// The first bytes of a response body, read no further than that.
async fn quote_body(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < MAX_QUOTED_BODY {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    bytes.truncate(MAX_QUOTED_BODY);
    String::from_utf8_lossy(&bytes).trim().to_owned()
}

/// An error with its causes ("error sending request: connection refused"),
/// without the URL reqwest puts in its message (it may carry a token).
fn error_text(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "connection failed".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(e);
    while let Some(err) = source {
        let _ = write!(text, ": {err}");
        source = err.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_for_the_same_secret_time_and_body() {
        let sig = sign("s3cret", "1700000000", b"{\"a\":1}");
        assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64);
        assert!(verify_signature("s3cret", "1700000000", b"{\"a\":1}", &sig));
        assert!(!verify_signature("other", "1700000000", b"{\"a\":1}", &sig));
        assert!(!verify_signature(
            "s3cret",
            "1700000001",
            b"{\"a\":1}",
            &sig
        ));
        assert!(!verify_signature(
            "s3cret",
            "1700000000",
            b"{\"a\":2}",
            &sig
        ));
        assert!(!verify_signature(
            "s3cret",
            "1700000000",
            b"{\"a\":1}",
            &sig[7..]
        ));
        assert!(!verify_signature(
            "s3cret",
            "1700000000",
            b"{\"a\":1}",
            "sha256=zz"
        ));
        assert!(!verify_signature(
            "s3cret",
            "1700000000",
            b"{\"a\":1}",
            "sha256="
        ));
    }

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        let mut m = <HmacSha256 as Mac>::new_from_slice(b"Jefe").unwrap();
        m.update(b"1700000000.{\"x\":true}");
        assert_eq!(
            sign("Jefe", "1700000000", b"{\"x\":true}"),
            format!("sha256={}", hex::encode(m.finalize().into_bytes()))
        );
    }

    #[test]
    fn timestamps_outside_the_window_are_stale() {
        let w = Duration::from_secs(300);
        assert!(timestamp_fresh("1000", 1000, w));
        assert!(timestamp_fresh("1300", 1000, w));
        assert!(timestamp_fresh("700", 1000, w));
        assert!(!timestamp_fresh("699", 1000, w));
        assert!(!timestamp_fresh("1301", 1000, w));
        assert!(!timestamp_fresh("soon", 1000, w));
        assert!(!timestamp_fresh("-5", 1000, w));
    }

    #[test]
    fn recorded_urls_lose_credentials_and_query() {
        assert_eq!(
            redact("https://user:pw@hooks.example.org:8443/a/b?token=x#f"),
            "https://hooks.example.org:8443/a/b"
        );
        assert_eq!(redact("not a url"), "<invalid url>");
        assert!(parse_url("ftp://x/").is_err());
        assert!(parse_url("http://127.0.0.1:9/x").is_ok());
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            RETRY_AFTER,
            "Sun, 06 Nov 1994 08:49:37 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, "whenever".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }
}

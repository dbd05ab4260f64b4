//! TEMPORARY stand-in (see `mod.rs`): `[smtp]` and a plain SMTP client
//! (no TLS, no authentication) with retries.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::{Attempt, Channel, EmailMessage, NotifyError, Outcome, RetryPolicy, backoff, bounded};
use crate::pipeline::silence::duration_text;

/// `[smtp]` (DESIGN.md keys plus retry settings).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    /// "opportunistic" | "required" | "tls" | "never".
    pub starttls: String,
    pub username: String,
    pub password: String,
    pub from: String,
    #[serde(with = "duration_text")]
    pub timeout: Duration,
    pub retries: u32,
    #[serde(with = "duration_text")]
    pub retry_backoff: Duration,
    #[serde(with = "duration_text")]
    pub max_backoff: Duration,
    pub ca_file: Option<PathBuf>,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            host: "127.0.0.1".into(),
            port: 25,
            starttls: "opportunistic".into(),
            username: String::new(),
            password: String::new(),
            from: "sealtrail@localhost".into(),
            timeout: Duration::from_secs(10),
            retries: 3,
            retry_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            ca_file: None,
        }
    }
}

#[derive(Clone)]
pub struct Mailer {
    host: String,
    port: u16,
    from: String,
    policy: RetryPolicy,
}

impl Mailer {
    pub fn new(cfg: &SmtpConfig) -> Result<Mailer, NotifyError> {
        if matches!(cfg.starttls.as_str(), "required" | "tls") {
            return Err(NotifyError::Config(
                "this build's stand-in mailer speaks plain SMTP only".into(),
            ));
        }
        Ok(Mailer {
            host: cfg.host.clone(),
            port: cfg.port,
            from: cfg.from.clone(),
            policy: RetryPolicy {
                attempts: cfg.retries.saturating_add(1),
                first_backoff: cfg.retry_backoff,
                max_backoff: cfg.max_backoff,
                timeout: cfg.timeout,
            },
        })
    }

    pub async fn send(
        &self,
        msg: &EmailMessage,
        record: &mut (dyn FnMut(Attempt) + Send),
    ) -> Result<(), NotifyError> {
        let target = msg.to.join(", ");
        let mut n = 0;
        loop {
            n += 1;
            let started = Instant::now();
            let r = tokio::time::timeout(self.policy.timeout, self.once(msg)).await;
            let (outcome, detail, permanent) = match r {
                Ok(Ok(reply)) => (Outcome::Delivered, reply, false),
                Ok(Err((detail, permanent))) => (Outcome::Retrying, detail, permanent),
                Err(_) => (Outcome::Retrying, "timed out".to_owned(), false),
            };
            let last = outcome == Outcome::Delivered || permanent || n >= self.policy.attempts;
            let outcome = if outcome == Outcome::Retrying && last {
                Outcome::Failed
            } else {
                outcome
            };
            record(Attempt {
                channel: Channel::Email,
                target: target.clone(),
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

    /// One SMTP transaction; Err((detail, permanent)).
    async fn once(&self, msg: &EmailMessage) -> Result<String, (String, bool)> {
        let stream = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| (format!("connect {}:{}: {e}", self.host, self.port), false))?;
        let (r, mut w) = stream.into_split();
        let mut r = BufReader::new(r);
        expect(&mut r, 220).await?;
        command(&mut r, &mut w, "HELO sealtrail\r\n", 250).await?;
        command(
            &mut r,
            &mut w,
            &format!("MAIL FROM:<{}>\r\n", self.from),
            250,
        )
        .await?;
        for to in &msg.to {
            command(&mut r, &mut w, &format!("RCPT TO:<{to}>\r\n"), 250).await?;
        }
        command(&mut r, &mut w, "DATA\r\n", 354).await?;
        let mut data = format!(
            "From: {}\r\nTo: {}\r\nSubject: {}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
            self.from,
            msg.to.join(", "),
            msg.subject.replace(['\r', '\n'], " ")
        );
        for line in msg.text.lines() {
            // Dot-stuffing (RFC 5321 4.5.2).
            if line.starts_with('.') {
                data.push('.');
            }
            data.push_str(line);
            data.push_str("\r\n");
        }
        data.push_str(".\r\n");
        let reply = command(&mut r, &mut w, &data, 250).await?;
        let _ = w.write_all(b"QUIT\r\n").await;
        Ok(reply)
    }
}

async fn command(
    r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    w: &mut tokio::net::tcp::OwnedWriteHalf,
    line: &str,
    want: u16,
) -> Result<String, (String, bool)> {
    w.write_all(line.as_bytes())
        .await
        .map_err(|e| (e.to_string(), false))?;
    expect(r, want).await
}

/// Reads a (possibly multi-line) reply; 5xx is permanent.
async fn expect(
    r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    want: u16,
) -> Result<String, (String, bool)> {
    let mut text = String::new();
    loop {
        let mut line = String::new();
        let n = r
            .read_line(&mut line)
            .await
            .map_err(|e| (e.to_string(), false))?;
        if n == 0 {
            return Err(("connection closed".into(), false));
        }
        text.push_str(line.trim_end());
        if line.len() < 4 || line.as_bytes()[3] != b'-' {
            break;
        }
        text.push(' ');
        if text.len() > 4096 {
            return Err(("reply too long".into(), false));
        }
    }
    let code: u16 = text.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
    if code == want {
        Ok(text)
    } else {
        Err((text, (500..600).contains(&code)))
    }
}

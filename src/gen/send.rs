//! `gen --send URL --rate R`: posts the generated events to a running
//! server as NDJSON batches at about R events per second.
//!
//! A 503 (the server's pipeline is full) is retried after its `Retry-After`
//! (seconds, capped); any other answer than 200 stops the run with the
//! status and the server's message. Events carry ids, so a batch retried
//! after an uncertain failure is stored once.

use std::time::{Duration, Instant};

use super::GenError;
use crate::event::Event;

/// Largest batch posted at once.
pub const MAX_BATCH: usize = 5000;
/// Consecutive 503 answers tolerated for one batch.
pub const MAX_BUSY_RETRIES: u32 = 120;
/// Longest wait honoured from a `Retry-After`.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct SendOptions {
    /// The server's base URL, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// Events per second (> 0).
    pub rate: f64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SendReport {
    pub events: usize,
    pub batches: usize,
    /// 503 answers that were waited out and retried.
    pub busy_retries: u32,
    pub seconds: f64,
}

/// Sends `events` in order; returns when the server has acknowledged all.
pub fn send_events(events: &[Event], opts: &SendOptions) -> Result<SendReport, GenError> {
    let endpoint = format!("{}/v1/events", opts.url.trim_end_matches('/'));
    let fail = |detail: String| GenError::Send {
        url: endpoint.clone(),
        detail,
    };
    if !(opts.rate.is_finite() && opts.rate > 0.0) {
        return Err(GenError::Usage("--rate must be a positive number".into()));
    }
    // About four requests a second, at least one event each.
    let batch = ((opts.rate / 4.0).ceil() as usize).clamp(1, MAX_BATCH);
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build(),
    );
    // An `ingest` token, from the environment rather than argv (which
    // other users of the machine can read).
    let token = crate::auth::token_from_env();
    let started = Instant::now();
    let mut report = SendReport::default();
    for chunk in events.chunks(batch) {
        let mut body = Vec::with_capacity(chunk.len() * 400);
        for e in chunk {
            serde_json::to_writer(&mut body, e).map_err(|e| fail(e.to_string()))?;
            body.push(b'\n');
        }
        let mut busy = 0;
        loop {
            let mut req = agent.post(&endpoint).content_type("application/x-ndjson");
            if let Some(token) = &token {
                req = req.header("authorization", &format!("Bearer {token}"));
            }
            let mut resp = req.send(&body[..]).map_err(|e| fail(e.to_string()))?;
            let status = resp.status().as_u16();
            if status == 200 {
                break;
            }
            if status == 503 && busy < MAX_BUSY_RETRIES {
                busy += 1;
                report.busy_retries += 1;
                let wait = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map_or(Duration::from_secs(1), Duration::from_secs)
                    .min(MAX_RETRY_AFTER);
                std::thread::sleep(wait);
                continue;
            }
            let text = resp
                .body_mut()
                .with_config()
                .limit(4096)
                .read_to_string()
                .unwrap_or_default();
            return Err(fail(format!(
                "the server answered {status} after {} events: {}",
                report.events,
                text.trim()
            )));
        }
        report.events += chunk.len();
        report.batches += 1;
        // Pace: the n-th event goes out no earlier than n / rate seconds in.
        let due = Duration::from_secs_f64(report.events as f64 / opts.rate);
        let elapsed = started.elapsed();
        if due > elapsed && report.events < events.len() {
            std::thread::sleep(due - elapsed);
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

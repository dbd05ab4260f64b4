//! Whether the ledger can write now, and why not: read by `/readyz`,
//! `/healthz`, `/metrics` and the sources (HTTP answers 503, UDP counts its
//! drops) while the writer thread retries a failed write.
//!
//! `Outage` is the logging side, shared by every thread that retries a
//! transient failure (writer, indexer, detector): one error line when it
//! starts, at most one a minute while it lasts, one info line when it ends.

use std::error::Error as StdError;
use std::io;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Kinds of write error counted in `sealtrail_ledger_write_errors_total`.
pub const ERROR_KINDS: [&str; 4] = ["enospc", "emfile", "eio", "other"];

// Linux errno values (no libc dependency for four numbers).
const EIO: i32 = 5;
const ENFILE: i32 = 23;
const EMFILE: i32 = 24;
const ENOSPC: i32 = 28;
const EDQUOT: i32 = 122;

/// The first OS error in an error's source chain.
pub fn io_error_of<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a io::Error> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            return Some(io);
        }
        cur = err.source();
    }
    None
}

/// The metric kind of an error: index into `ERROR_KINDS`.
pub fn error_kind(e: &(dyn StdError + 'static)) -> usize {
    match io_error_of(e).and_then(io::Error::raw_os_error) {
        Some(ENOSPC | EDQUOT) => 0,
        Some(EMFILE | ENFILE) => 1,
        Some(EIO) => 2,
        _ => 3,
    }
}

/// A short reason for people: the OS error's text without "(os error N)",
/// else the whole message.
pub fn reason(e: &(dyn StdError + 'static)) -> String {
    match io_error_of(e) {
        Some(io) => {
            let text = io.to_string();
            match text.find(" (os error") {
                Some(at) => text[..at].to_owned(),
                None => text,
            }
        }
        None => e.to_string(),
    }
}

/// Shared state of the ledger writer's ability to write.
#[derive(Debug)]
pub struct LedgerHealth {
    writable: AtomicBool,
    reason: Mutex<Option<String>>,
    errors: [AtomicU64; 4],
}

impl Default for LedgerHealth {
    fn default() -> Self {
        LedgerHealth {
            writable: AtomicBool::new(true),
            reason: Mutex::new(None),
            errors: Default::default(),
        }
    }
}

impl LedgerHealth {
    pub fn writable(&self) -> bool {
        self.writable.load(Ordering::Acquire)
    }

    /// Why the ledger cannot write, while it cannot.
    pub fn reason(&self) -> Option<String> {
        if self.writable() {
            return None;
        }
        self.reason.lock().ok().and_then(|r| r.clone())
    }

    /// Write errors so far, by kind (`ERROR_KINDS` order).
    pub fn errors(&self) -> [u64; 4] {
        let mut out = [0; 4];
        for (o, c) in out.iter_mut().zip(&self.errors) {
            *o = c.load(Ordering::Relaxed);
        }
        out
    }

    pub(crate) fn failed(&self, e: &(dyn StdError + 'static)) {
        self.errors[error_kind(e)].fetch_add(1, Ordering::Relaxed);
        if let Ok(mut r) = self.reason.lock() {
            *r = Some(reason(e));
        }
        self.writable.store(false, Ordering::Release);
    }

    pub(crate) fn recovered(&self) {
        self.writable.store(true, Ordering::Release);
    }
}

/// How often a lasting failure is logged again.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// Logs a retried failure without a line per retry.
#[derive(Debug)]
pub struct Outage {
    what: &'static str,
    /// Since when, the failures since the last line, and when that line was.
    state: Option<(Instant, u64, Instant)>,
}

impl Outage {
    pub fn new(what: &'static str) -> Self {
        Outage { what, state: None }
    }

    pub fn is_failing(&self) -> bool {
        self.state.is_some()
    }

    /// Records one failed attempt; logs the first and then once a minute.
    pub fn failed(&mut self, e: &(dyn StdError + 'static)) {
        let now = Instant::now();
        match &mut self.state {
            None => {
                tracing::error!(error = %e, "{} failed; retrying until it works", self.what);
                self.state = Some((now, 0, now));
            }
            Some((since, count, last)) => {
                *count += 1;
                if now.duration_since(*last) >= LOG_EVERY {
                    tracing::error!(error = %e, failing_for = ?now.duration_since(*since),
                        retries = *count, "{} still failing", self.what);
                    *count = 0;
                    *last = now;
                }
            }
        }
    }

    /// Records a success; logs the recovery if there was a failure.
    pub fn succeeded(&mut self) {
        if let Some((since, _, _)) = self.state.take() {
            tracing::info!(failed_for = ?since.elapsed(), "{} recovered", self.what);
        }
    }
}

/// Exponential backoff between retries: 50 ms doubling to 2 s.
#[derive(Debug)]
pub struct Backoff(Duration);

impl Default for Backoff {
    fn default() -> Self {
        Backoff(Duration::from_millis(50))
    }
}

impl Backoff {
    /// The next delay to wait.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.0;
        self.0 = (self.0 * 2).min(Duration::from_secs(2));
        d
    }

    pub fn reset(&mut self) {
        *self = Backoff::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_errors_are_classified_and_named_without_their_number() {
        let e = crate::ledger::log::LedgerError::Io {
            path: "/x".into(),
            source: io::Error::from_raw_os_error(ENOSPC),
        };
        assert_eq!(ERROR_KINDS[error_kind(&e)], "enospc");
        assert_eq!(reason(&e), "No space left on device");
        let e = io::Error::from_raw_os_error(EMFILE);
        assert_eq!(ERROR_KINDS[error_kind(&e)], "emfile");
        let e = io::Error::from_raw_os_error(EIO);
        assert_eq!(ERROR_KINDS[error_kind(&e)], "eio");
        let h = LedgerHealth::default();
        assert!(h.writable() && h.reason().is_none());
        h.failed(&e);
        assert!(!h.writable());
        assert_eq!(h.reason().as_deref(), Some("Input/output error"));
        assert_eq!(h.errors(), [0, 0, 1, 0]);
        h.recovered();
        assert!(h.writable() && h.reason().is_none());
    }
}

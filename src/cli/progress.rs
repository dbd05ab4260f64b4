//! Progress bars of the long CLI commands, on stderr and only when stderr
//! is a terminal (pipes and `--json` stay clean): `verify --data` (bytes
//! and segments checked, fed by the verifier crate's progress hook after
//! each window of segments), `reindex` and `rules replay` / `rules eval
//! --source replay` (ledger events done of the total, fed by the work
//! functions' progress callbacks once per batch). Each shows its rate and
//! an ETA.

use indicatif::{ProgressBar, ProgressStyle};
use sealtrail_verify::Progress;
use std::io::IsTerminal;

const VERIFY_TEMPLATE: &str = "verifying [{bar:30}] {binary_bytes}/{binary_total_bytes} {msg}, {binary_bytes_per_sec}, ETA {eta}";
// `{msg}`: the rate as whole events per second (`{per_sec}` prints four decimals).
const EVENTS_TEMPLATE: &str =
    "{prefix} [{bar:30}] {human_pos}/{human_len} events, {msg}, ETA {eta}";

/// A bar on a terminal, nothing otherwise.
struct Bar {
    bar: Option<ProgressBar>,
}

impl Bar {
    fn new(show: bool, template: &str, prefix: &'static str) -> Self {
        let bar = (show && std::io::stderr().is_terminal()).then(|| {
            let style = ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            ProgressBar::new(0).with_style(style).with_prefix(prefix)
        });
        Bar { bar }
    }

    fn set(&self, done: u64, total: u64, message: Option<String>) {
        if let Some(bar) = &self.bar {
            bar.set_length(total);
            bar.set_position(done);
            if let Some(m) = message {
                bar.set_message(m);
            }
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// `verify --data`'s bar: bytes checked, with the segment count.
pub(crate) struct VerifyProgress(Bar);

impl VerifyProgress {
    pub(crate) fn new(show: bool) -> Self {
        VerifyProgress(Bar::new(show, VERIFY_TEMPLATE, "verifying"))
    }

    pub(crate) fn update(&self, p: Progress) {
        self.0.set(
            p.bytes_done,
            p.bytes_total,
            Some(format!("segments {}/{}", p.segments_done, p.segments_total)),
        );
    }
}

/// A bar of ledger events done of a total (`reindex`, `rules replay`).
pub(crate) struct EventProgress(Bar);

impl EventProgress {
    /// `what` starts the line: "indexing", "replaying".
    pub(crate) fn new(show: bool, what: &'static str) -> Self {
        EventProgress(Bar::new(show, EVENTS_TEMPLATE, what))
    }

    pub(crate) fn update(&self, done: u64, total: u64) {
        self.0.set(done, total, None);
        if let Some(bar) = &self.0.bar {
            bar.set_message(format!("{:.0}/s", bar.per_sec()));
        }
    }

    #[cfg(test)]
    fn shown(&self) -> bool {
        self.0.bar.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_bar_off_a_terminal_and_updates_are_harmless() {
        // Test output is not a terminal: no bar, and updates do nothing.
        let p = VerifyProgress::new(true);
        assert!(p.0.bar.is_none() || std::io::stderr().is_terminal());
        p.update(Progress {
            segments_done: 1,
            segments_total: 2,
            bytes_done: 10,
            bytes_total: 20,
        });
        assert!(VerifyProgress::new(false).0.bar.is_none());
        let e = EventProgress::new(true, "indexing");
        assert!(!e.shown() || std::io::stderr().is_terminal());
        e.update(5, 10);
        assert!(!EventProgress::new(false, "replaying").shown());
    }

    #[test]
    fn the_templates_parse() {
        assert!(ProgressStyle::with_template(VERIFY_TEMPLATE).is_ok());
        assert!(ProgressStyle::with_template(EVENTS_TEMPLATE).is_ok());
    }

    #[test]
    fn a_shown_bar_follows_its_updates() {
        // A hidden draw target: the bar's state without a terminal.
        let bar = Bar {
            bar: Some(ProgressBar::hidden()),
        };
        let p = EventProgress(bar);
        p.update(3, 10);
        p.update(10, 10);
        let inner = p.0.bar.as_ref().unwrap();
        assert_eq!((inner.position(), inner.length()), (10, Some(10)));
    }
}

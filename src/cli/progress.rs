//! `verify --data`'s progress bar: bytes and segments checked, with an ETA,
//! on stderr and only when stderr is a terminal, fed by the verifier
//! crate's progress hook (called after each window of segments).

use indicatif::{ProgressBar, ProgressStyle};
use sealtrail_verify::Progress;
use std::io::IsTerminal;

const TEMPLATE: &str = "verifying [{bar:30}] {binary_bytes}/{binary_total_bytes} {msg}, {binary_bytes_per_sec}, ETA {eta}";

/// A bar on a terminal, nothing otherwise (pipes and `--json` stay clean).
pub(crate) struct VerifyProgress {
    bar: Option<ProgressBar>,
}

impl VerifyProgress {
    pub(crate) fn new(show: bool) -> Self {
        let bar = (show && std::io::stderr().is_terminal()).then(|| {
            let style = ProgressStyle::with_template(TEMPLATE)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            ProgressBar::new(0).with_style(style)
        });
        VerifyProgress { bar }
    }

    pub(crate) fn update(&self, p: Progress) {
        if let Some(bar) = &self.bar {
            bar.set_length(p.bytes_total);
            bar.set_position(p.bytes_done);
            bar.set_message(format!("segments {}/{}", p.segments_done, p.segments_total));
        }
    }
}

impl Drop for VerifyProgress {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_bar_off_a_terminal_and_updates_are_harmless() {
        // Test output is not a terminal: no bar, and updates do nothing.
        let p = VerifyProgress::new(true);
        assert!(p.bar.is_none() || std::io::stderr().is_terminal());
        p.update(Progress {
            segments_done: 1,
            segments_total: 2,
            bytes_done: 10,
            bytes_total: 20,
        });
        assert!(VerifyProgress::new(false).bar.is_none());
    }

    #[test]
    fn the_template_parses() {
        assert!(ProgressStyle::with_template(TEMPLATE).is_ok());
    }
}

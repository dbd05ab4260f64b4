//! Detection: Sigma rules and Sigma correlation rules over the normalized,
//! enriched events.
//!
//! ```text
//!  rule files ─> RuleSet::load_dir ─> RuleSet (compiled, all-or-nothing)
//!                                          │
//!  (index, Entry) ─> Engine::process ─> detection rules ─> AlertCandidate (standalone rules)
//!                                          └─> hits ─> reorder buffer (event time, lateness)
//!                                                      └─> correlation state ─> AlertCandidate
//!                                                                └─> chained correlations
//! ```
//!
//! - [`field`]: the dotted field names rules use, read from an [`Entry`].
//! - [`RuleSet`]: loading and compiling; errors carry file, line and column.
//! - [`Engine`]: evaluation and correlation state, streaming by event time.
//! - `relation`: the `relation` and `state` extensions (state joins: a
//!   treatment relationship, a disabled account), hooked into loading and
//!   the engine.
//! - `explain`: explanations (treatment, payment and operations
//!   relationships kept from the stream) and the `explain` attribute of a
//!   detection rule that consults them before it matches.
//! - [`Deduplicator`]: a suppression window by rule and group.
//!
//! ```
//! use sealtrail::rules::{Engine, EngineConfig, RuleSet};
//! let rules = RuleSet::from_yaml("example.yml", r#"
//! title: Export of many records
//! id: big-export
//! level: high
//! detection:
//!   sel:
//!     action: export
//!     records|gte: 1000
//!   condition: sel
//! "#).unwrap();
//! let mut engine = Engine::new(std::sync::Arc::new(rules), EngineConfig::default());
//! # let _ = &mut engine;
//! ```
//!
//! [`Entry`]: crate::event::Entry

mod absence;
mod baseline;
mod dedup;
mod detection;
mod dormant;
mod engine;
mod explain;
pub mod field;
mod fieldcmp;
mod groups;
mod habit;
mod load;
mod relation;
mod snap;
mod timers;
pub use crate::event::view;
pub(crate) mod yaml;

#[cfg(test)]
mod baselines_tests;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use dedup::Deduplicator;
pub use engine::{
    AlertCandidate, Engine, EngineConfig, EngineStats, MAX_ALERT_EVENTS,
    STATE_VERSION as ENGINE_STATE_VERSION, StateError as EngineStateError,
    json_error as state_json_error,
};
pub use explain::{ExplainConfig, ExplainStats, Kind as ExplanationKind};
pub use load::{
    CorrelationType, MAX_RULE_FILE_BYTES, MAX_RULE_FILES, MAX_TIMESPAN_MS, PLAYBOOKS_DIR, RuleMeta,
    RuleSet, parse_timespan,
};
pub use view::EntryView;

/// Sigma rule level; becomes the alert's severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Informational => "informational",
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
            Level::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Level> {
        [
            Level::Informational,
            Level::Low,
            Level::Medium,
            Level::High,
            Level::Critical,
        ]
        .into_iter()
        .find(|l| l.as_str() == s)
    }
}

/// Why a rule file was rejected, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {reason}", file.display(), position(*line, *column))]
pub struct LoadError {
    pub file: PathBuf,
    /// 1-based; `None` for errors about the file as a whole (I/O, size).
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub reason: String,
}

fn position(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}

impl LoadError {
    pub(crate) fn at(file: &Path, pos: yaml::Pos, reason: String) -> LoadError {
        LoadError {
            file: file.to_owned(),
            line: Some(pos.line),
            column: Some(pos.col),
            reason,
        }
    }

    pub(crate) fn file(file: &Path, reason: impl Into<String>) -> LoadError {
        LoadError {
            file: file.to_owned(),
            line: None,
            column: None,
            reason: reason.into(),
        }
    }
}

//! Errors of the event module.

/// Why bytes are not an acceptable event or entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The document parsed as JSON but a field is missing, unknown, of the
    /// wrong type or breaks a rule. `path` is dotted (`actor.ip`), empty for
    /// the document itself.
    #[error("{}", describe_invalid(path, reason))]
    Invalid { path: String, reason: String },
    /// The input is not UTF-8.
    #[error("input is not valid utf-8 (first bad byte at offset {valid_up_to})")]
    NotUtf8 { valid_up_to: usize },
    /// The input is not well-formed JSON.
    #[error("malformed json at line {line} column {column}: {reason}")]
    Syntax {
        line: usize,
        column: usize,
        reason: String,
    },
    /// The input is larger than an event may be; checked before parsing.
    #[error("event is {size} bytes, more than the limit of {max}")]
    TooLarge { size: usize, max: usize },
    /// Stored entry bytes parse but are not in canonical form.
    #[error("entry bytes are not in canonical form")]
    NotCanonical,
}

impl EventError {
    pub(crate) fn invalid(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// The dotted field path for `Invalid`, `None` for the other variants.
    pub fn path(&self) -> Option<&str> {
        match self {
            Self::Invalid { path, .. } => Some(path),
            _ => None,
        }
    }
}

fn describe_invalid(path: &str, reason: &str) -> String {
    if path.is_empty() {
        format!("invalid event: {reason}")
    } else {
        format!("invalid event field `{path}`: {reason}")
    }
}

/// Maps a serde_json error met while reading `T` into an [`EventError`].
pub(crate) fn from_serde(err: serde_path_to_error::Error<serde_json::Error>) -> EventError {
    use serde_json::error::Category;

    let path = dotted(err.path());
    let inner = err.into_inner();
    let reason = strip_position(&inner);
    match inner.classify() {
        Category::Data => {
            // serde names a missing field in the message, not the path;
            // move it to the path so every error points at its field.
            if let Some(field) = backticked(&reason, "missing field `") {
                return EventError::invalid(join(&path, field), "missing required field");
            }
            EventError::invalid(path, reason)
        }
        Category::Syntax | Category::Eof | Category::Io => EventError::Syntax {
            line: inner.line(),
            column: inner.column(),
            reason,
        },
    }
}

/// Maps an error from the end-of-input check (trailing characters).
pub(crate) fn from_trailing(err: serde_json::Error) -> EventError {
    EventError::Syntax {
        line: err.line(),
        column: err.column(),
        reason: strip_position(&err),
    }
}

fn dotted(path: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for segment in path {
        use serde_path_to_error::Segment;
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push('?');
            }
        }
    }
    out
}

pub(crate) fn join(parent: &str, field: &str) -> String {
    if parent.is_empty() {
        field.to_owned()
    } else {
        format!("{parent}.{field}")
    }
}

fn backticked<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = message.strip_prefix(prefix)?;
    rest.split('`').next()
}

/// serde_json appends " at line L column C" to its messages; we report the
/// position in separate fields (or not at all, for data errors).
fn strip_position(err: &serde_json::Error) -> String {
    let full = err.to_string();
    let suffix = format!(" at line {} column {}", err.line(), err.column());
    full.strip_suffix(&suffix).unwrap_or(&full).to_owned()
}

//! The normalized event (ingest format v1) as Rust types.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::error::{EventError, from_serde, from_trailing};
use super::limits::MAX_EVENT_BYTES;
use super::strict::{self, MapOnly};
use super::timestamp::Timestamp;

/// One audit event as a source sends it. Field order here is the order of
/// the canonical bytes, so do not reorder fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
pub struct Event {
    /// Client id; retries with the same id are stored once.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "strict::present"
    )]
    pub id: Option<String>,
    /// When it happened at the source.
    pub time: Timestamp,
    pub category: Category,
    /// Lowercase snake_case verb, see [`super::is_known_action`].
    pub action: String,
    pub outcome: Outcome,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "strict::opt_object"
    )]
    pub actor: Option<Actor>,
    /// Whose ePHI was touched, when any.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "strict::opt_object"
    )]
    pub patient: Option<Patient>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "strict::opt_object"
    )]
    pub resource: Option<Resource>,
    /// The account acted on (admin events).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "strict::present"
    )]
    pub target_user: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "strict::opt_object"
    )]
    pub source: Option<Source>,
    /// Purpose of use; `break_glass` for emergency access.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "strict::present"
    )]
    pub reason: Option<String>,
    /// How many records an export, print or search returned.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "records"
    )]
    pub records: Option<u64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "strict::present"
    )]
    pub message: Option<String>,
    /// Free-form extra data. `serde_json::Map` is a `BTreeMap` here (no
    /// `preserve_order`), so keys serialize sorted and canonically.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "strict::present"
    )]
    pub attrs: Option<Map<String, Value>>,
}

/// Who did it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
pub struct Actor {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "strict::present"
    )]
    pub user: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "strict::present"
    )]
    pub role: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "strict::present"
    )]
    pub department: Option<String>,
    /// IPv4 or IPv6 address, checked by [`Event::validate`].
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "strict::present"
    )]
    pub ip: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "strict::present"
    )]
    pub session: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "strict::present"
    )]
    pub device: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "strict::present"
    )]
    pub mfa: Option<bool>,
}

/// The patient whose ePHI was touched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
pub struct Patient {
    pub id: String,
}

/// What was touched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
pub struct Resource {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "strict::present"
    )]
    pub id: Option<String>,
}

/// The system that reported the event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
pub struct Source {
    pub system: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "strict::present"
    )]
    pub host: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Auth,
    Access,
    Admin,
    Integration,
    System,
}

impl<'de> Deserialize<'de> for Category {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        strict::enum_from_str(deserializer, &Category::NAMES, Category::from_name)
    }
}

impl Category {
    const NAMES: [&'static str; 5] = ["auth", "access", "admin", "integration", "system"];

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == name)
    }

    pub const ALL: [Category; 5] = [
        Category::Auth,
        Category::Access,
        Category::Admin,
        Category::Integration,
        Category::System,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Auth => "auth",
            Category::Access => "access",
            Category::Admin => "admin",
            Category::Integration => "integration",
            Category::System => "system",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure,
    Unknown,
}

impl Outcome {
    pub const ALL: [Outcome; 3] = [Outcome::Success, Outcome::Failure, Outcome::Unknown];
    const NAMES: [&'static str; 3] = ["success", "failure", "unknown"];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Unknown => "unknown",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == name)
    }
}

impl<'de> Deserialize<'de> for Outcome {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        strict::enum_from_str(deserializer, &Outcome::NAMES, Outcome::from_name)
    }
}

/// `records` as JSON Schema `integer`: integral floats such as `1.0` count
/// as integers there, so accept them here too (stored as `1`).
fn records<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    struct Visitor;
    impl serde::de::Visitor<'_> for Visitor {
        type Value = u64;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a non-negative integer")
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v).map_err(|_| E::custom("must be a non-negative integer"))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<u64, E> {
            // Bounded well below u64::MAX, so the cast below is exact.
            if v.fract() == 0.0 && (0.0..=super::limits::MAX_RECORDS as f64).contains(&v) {
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                Ok(v as u64)
            } else {
                Err(E::custom(format!(
                    "must be an integer between 0 and {}",
                    super::limits::MAX_RECORDS
                )))
            }
        }
    }
    deserializer.deserialize_any(Visitor).map(Some)
}

impl Event {
    /// An event with only the required fields set (for events sealtrail
    /// writes itself); callers fill in the rest.
    pub fn new(time: Timestamp, category: Category, action: &str, outcome: Outcome) -> Event {
        Event {
            id: None,
            time,
            category,
            action: action.to_owned(),
            outcome,
            actor: None,
            patient: None,
            resource: None,
            target_user: None,
            source: None,
            reason: None,
            records: None,
            message: None,
            attrs: None,
        }
    }

    /// Parses and validates one event in ingest format v1.
    pub fn from_json(bytes: &[u8]) -> Result<Event, EventError> {
        let event = Self::parse_json(bytes)?;
        event.validate()?;
        Ok(event)
    }

    /// Parses without the semantic checks of [`Event::validate`].
    fn parse_json(bytes: &[u8]) -> Result<Event, EventError> {
        parse_bounded(bytes, MAX_EVENT_BYTES)
    }

    /// The `system/ingest_rejected` event that records input which could not
    /// be parsed, so nothing is silently dropped.
    pub fn ingest_rejected(raw: &[u8], reason: &str, time: Timestamp) -> Event {
        use super::limits::{MAX_REJECTED_RAW_BYTES, MAX_REJECTED_REASON_CHARS};
        // PHI in `raw` is masked by a later transform (transforms/mask), not here.
        let raw_text = truncate_bytes_lossy(raw, MAX_REJECTED_RAW_BYTES);
        let reason = truncate_chars(reason, MAX_REJECTED_REASON_CHARS);
        let mut attrs = Map::new();
        attrs.insert("raw".to_owned(), Value::String(raw_text));
        attrs.insert("error".to_owned(), Value::String(reason.clone()));
        Event {
            id: None,
            time,
            category: Category::System,
            action: "ingest_rejected".to_owned(),
            outcome: Outcome::Failure,
            actor: None,
            patient: None,
            resource: None,
            target_user: None,
            source: None,
            reason: None,
            records: None,
            message: Some(reason),
            attrs: Some(attrs),
        }
    }
}

/// Size check, UTF-8 check, then JSON into `T` with error paths.
pub(crate) fn parse_bounded<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    max: usize,
) -> Result<T, EventError> {
    if bytes.len() > max {
        return Err(EventError::TooLarge {
            size: bytes.len(),
            max,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| EventError::NotUtf8 {
        valid_up_to: e.valid_up_to(),
    })?;
    let mut de = serde_json::Deserializer::from_str(text);
    let mut track = serde_path_to_error::Track::new();
    let value = T::deserialize(MapOnly(serde_path_to_error::Deserializer::new(
        &mut de, &mut track,
    )))
    .map_err(|e| from_serde(serde_path_to_error::Error::new(track.path(), e)))?;
    de.end().map_err(from_trailing)?;
    Ok(value)
}

/// Marker appended to truncated text; says how much was cut.
fn truncation_marker(cut_bytes: usize) -> String {
    format!("…[truncated {cut_bytes} bytes]")
}

fn truncate_bytes_lossy(raw: &[u8], max: usize) -> String {
    if raw.len() <= max {
        return String::from_utf8_lossy(raw).into_owned();
    }
    // Cutting mid-character leaves a U+FFFD at the end, which is fine for
    // a diagnostic copy.
    let mut out = String::from_utf8_lossy(&raw[..max]).into_owned();
    out.push_str(&truncation_marker(raw.len() - max));
    out
}

fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_owned(),
        Some((at, _)) => {
            let mut out = s[..at].to_owned();
            out.push_str(&truncation_marker(s.len() - at));
            out
        }
    }
}

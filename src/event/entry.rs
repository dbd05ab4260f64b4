//! The stored ledger entry: an event plus the envelope sealtrail fills in.

use serde::{Deserialize, Serialize};

use super::enriched::Enriched;
use super::error::EventError;
use super::limits::{MAX_ENTRY_BYTES, MAX_VIA_KIND_CHARS};
use super::model::{Event, parse_bounded};
use super::strict;
use super::timestamp::Timestamp;
use super::validate::{check_snake_case, opt_short};

/// What the ledger stores for each event. Field order is the canonical
/// order (`received`, `via`, `event`, `enriched`); do not reorder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
pub struct Entry {
    /// When sealtrail acknowledged the event, from its own clock.
    pub received: Timestamp,
    #[serde(deserialize_with = "strict::object")]
    pub via: Via,
    /// The event exactly as the source sent it (after PHI masking).
    #[serde(deserialize_with = "strict::object")]
    pub event: Event,
    /// What sealtrail joined from the practice's directories; absent when
    /// nothing matched. Kept apart so `event` stays what the source sent.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "strict::opt_object"
    )]
    pub enriched: Option<Enriched>,
}

/// How the event arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
pub struct Via {
    /// The listener: `http`, `fhir`, `syslog_udp`, `syslog_tcp`,
    /// `syslog_tls`, `import`.
    pub kind: String,
    /// Peer address as the listener saw it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "strict::present"
    )]
    pub peer: Option<String>,
    /// Authenticated principal (token name, client certificate subject).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "strict::present"
    )]
    pub principal: Option<String>,
}

impl Via {
    pub fn validate(&self) -> Result<(), EventError> {
        check_snake_case("via.kind", &self.kind, MAX_VIA_KIND_CHARS)?;
        opt_short("via.peer", &self.peer)?;
        opt_short("via.principal", &self.principal)
    }
}

impl Entry {
    /// Compact JSON, fields in declaration order, `None` omitted, map keys
    /// sorted, timestamps in canonical UTC form. These are the bytes the
    /// ledger hashes and stores.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        // Invariant: serde_json only fails on non-string map keys or a
        // failing Serialize impl; every key here is a String and every
        // Serialize impl (derives, Timestamp via collect_str) is infallible.
        #[allow(clippy::expect_used)]
        serde_json::to_vec(self).expect("entry serialization is infallible")
    }

    /// Reads stored entry bytes. Rejects anything that is not a valid entry
    /// or not byte-for-byte canonical, so one entry has one representation.
    /// Parses an entry read back from the ledger, for display (search hits,
    /// reports): only the parse, without re-validating the event or
    /// re-encoding it to check canonical form as
    /// [`Entry::from_canonical_bytes`] does. Integrity of stored bytes is
    /// `verify`'s business (frames carry CRCs, leaves are hashed); this
    /// parse is bounded and still rejects what is not an entry.
    pub fn from_ledger_bytes(bytes: &[u8]) -> Result<Entry, EventError> {
        parse_bounded(bytes, MAX_ENTRY_BYTES)
    }

    pub fn from_canonical_bytes(bytes: &[u8]) -> Result<Entry, EventError> {
        let entry: Entry = parse_bounded(bytes, MAX_ENTRY_BYTES)?;
        entry.via.validate()?;
        entry.event.validate().map_err(|e| under("event", e))?;
        if let Some(enriched) = &entry.enriched {
            enriched.validate().map_err(|e| under("enriched", e))?;
        }
        if entry.canonical_bytes() != bytes {
            return Err(EventError::NotCanonical);
        }
        Ok(entry)
    }
}

/// Prefixes an event error's path with the entry field that holds it.
fn under(prefix: &str, e: EventError) -> EventError {
    match e {
        EventError::Invalid { path, reason } if path.is_empty() => EventError::Invalid {
            path: prefix.to_owned(),
            reason,
        },
        EventError::Invalid { path, reason } => EventError::Invalid {
            path: super::error::join(prefix, &path),
            reason,
        },
        other => other,
    }
}

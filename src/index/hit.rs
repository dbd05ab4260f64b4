//! A search hit: one entry read back from the ledger, kept as its
//! canonical bytes and written out without being decoded and re-encoded.
//!
//! Serialized as DESIGN.md's hit: `{"index": i, "received": ..., "via":
//! {...}, "event": {...}, "enriched": {...}}`. The entry's top-level values
//! are copied as raw JSON, so a page of hits costs a scan of each entry,
//! not a parse into owned values and a second encoding. [`Hit::entry`]
//! decodes the whole entry when a caller needs its fields (reports).

use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;

use super::query::QueryError;
use crate::event::{Entry, EventError};

/// The top-level parts of an entry, borrowed from its bytes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Parts<'a> {
    #[serde(borrow)]
    received: &'a RawValue,
    #[serde(borrow)]
    via: &'a RawValue,
    #[serde(borrow)]
    event: &'a RawValue,
    #[serde(borrow, default)]
    enriched: Option<&'a RawValue>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    /// Global ledger index: the event's position and the key of its proof.
    pub index: u64,
    /// The entry's canonical bytes (checked to be an entry-shaped object).
    raw: String,
}

impl Hit {
    /// A hit for the entry at `index` with canonical `bytes`; refuses bytes
    /// that are not a JSON object with an entry's top-level fields.
    pub fn new(index: u64, bytes: Vec<u8>) -> Result<Hit, String> {
        let raw = String::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
        serde_json::from_str::<Parts>(&raw).map_err(|e| e.to_string())?;
        Ok(Hit { index, raw })
    }

    /// The entry's canonical bytes, as stored and hashed.
    pub fn bytes(&self) -> &[u8] {
        self.raw.as_bytes()
    }

    /// Decodes the entry.
    pub fn entry(&self) -> Result<Entry, EventError> {
        Entry::from_ledger_bytes(self.raw.as_bytes())
    }

    /// Decodes every hit's entry, for callers that need the fields.
    pub fn decode_all(hits: &[Hit]) -> Result<Vec<(u64, Entry)>, QueryError> {
        hits.iter()
            .map(|h| {
                h.entry()
                    .map(|e| (h.index, e))
                    .map_err(|e| QueryError::Stored {
                        index: h.index,
                        reason: e.to_string(),
                    })
            })
            .collect()
    }
}

impl Serialize for Hit {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Checked in `Hit::new`, so this parse succeeds.
        let parts: Parts = serde_json::from_str(&self.raw).map_err(serde::ser::Error::custom)?;
        let len = if parts.enriched.is_some() { 5 } else { 4 };
        let mut s = serializer.serialize_struct("Hit", len)?;
        s.serialize_field("index", &self.index)?;
        s.serialize_field("received", parts.received)?;
        s.serialize_field("via", parts.via)?;
        s.serialize_field("event", parts.event)?;
        if let Some(enriched) = parts.enriched {
            s.serialize_field("enriched", enriched)?;
        }
        s.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENTRY: &str = r#"{"received":"2026-11-27T14:03:12.5Z","via":{"kind":"http","peer":"10.0.0.1"},"event":{"time":"2026-11-27T14:03:11.123Z","category":"access","action":"view","outcome":"success","actor":{"user":"u0042"},"records":1500}}"#;

    #[test]
    fn serializes_as_the_decoded_entry_would() {
        let hit = Hit::new(42, ENTRY.as_bytes().to_vec()).unwrap();
        let via_raw = serde_json::to_value(&hit).unwrap();
        // The same hit made by decoding the entry and flattening it.
        let mut want = serde_json::to_value(hit.entry().unwrap()).unwrap();
        want.as_object_mut()
            .unwrap()
            .insert("index".into(), 42.into());
        assert_eq!(via_raw, want);
        let text = serde_json::to_string(&hit).unwrap();
        assert!(
            text.starts_with(r#"{"index":42,"received":"2026-11-27T14:03:12.5Z","via":"#),
            "{text}"
        );
        assert_eq!(hit.bytes(), ENTRY.as_bytes());
    }

    #[test]
    fn enriched_is_kept_when_present() {
        let with = ENTRY.replace(
            r#","event""#,
            r#","enriched":{"patient":{"last_name":"Smith"}},"event""#,
        );
        let hit = Hit::new(1, with.into_bytes()).unwrap();
        let v = serde_json::to_value(&hit).unwrap();
        assert_eq!(v["enriched"]["patient"]["last_name"], "Smith");
    }

    #[test]
    fn what_is_not_an_entry_is_refused() {
        for bad in [
            "",
            "[]",
            "{}",
            r#"{"received":"x","via":{}}"#,
            r#"{"received":"x","via":{},"event":{},"extra":1}"#,
            "{\"received\":\"x\",\"via\":{},\"event\":{}",
        ] {
            assert!(Hit::new(0, bad.as_bytes().to_vec()).is_err(), "{bad}");
        }
        assert!(Hit::new(0, vec![0xff, b'{']).is_err());
    }
}

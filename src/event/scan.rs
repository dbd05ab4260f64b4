//! Cheap reads of one field from stored entry bytes, for the ledger's
//! recovery and verification paths, which need an event's time or id but not
//! the whole validated entry.

use super::timestamp::Timestamp;
use serde::Deserialize;
use std::borrow::Cow;

#[derive(Deserialize)]
struct EntryHead<'a> {
    #[serde(borrow)]
    event: EventHead<'a>,
}

#[derive(Deserialize)]
struct EventHead<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    time: Cow<'a, str>,
}

fn head(bytes: &[u8]) -> Option<EntryHead<'_>> {
    serde_json::from_slice(bytes).ok()
}

/// The event `time` of a stored entry in Unix milliseconds, or `None` if the
/// bytes are not an entry.
pub fn entry_time_ms(bytes: &[u8]) -> Option<i64> {
    let h = head(bytes)?;
    Timestamp::parse(&h.event.time).ok().map(|t| t.unix_ms())
}

/// The client-supplied event id of a stored entry, if it has one.
pub fn entry_event_id(bytes: &[u8]) -> Option<String> {
    head(bytes)?.event.id.map(Cow::into_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Entry, Event, Via};

    #[test]
    fn reads_time_and_id_from_canonical_entries() {
        let event = Event::from_json(
            br#"{"id":"evt-1","time":"2026-11-27T15:03:11.120+01:00","category":"auth","action":"login","outcome":"success"}"#,
        )
        .unwrap();
        let entry = Entry {
            received: Timestamp::parse("2026-11-27T14:03:12Z").unwrap(),
            via: Via {
                kind: "import".into(),
                peer: None,
                principal: None,
            },
            event,
        };
        let bytes = entry.canonical_bytes();
        assert_eq!(entry_time_ms(&bytes), Some(entry.event.time.unix_ms()));
        assert_eq!(entry_event_id(&bytes).as_deref(), Some("evt-1"));
        assert_eq!(entry_time_ms(b"not json"), None);
        assert_eq!(entry_time_ms(br#"{"event":{"time":"yesterday"}}"#), None);
    }
}

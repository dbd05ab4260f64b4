//! Cheap reads of one field from stored entry bytes, for the ledger's
//! recovery and verification paths, which need an event's time or id but not
//! the whole validated entry.
//!
//! Stored entries are canonical JSON (`Entry::canonical_bytes`): top-level keys
//! `received`, `via`, `event` in that order, and inside `event` only `id` can
//! come before `time`. A JSON string cannot contain the raw byte sequence
//! `"event":{` or `"time":"` (every quote inside a string is escaped), so the
//! first occurrences of those patterns are the keys themselves. Bytes that do
//! not fit fall back to a full parse.

use super::timestamp::Timestamp;
use serde::Deserialize;
use std::borrow::Cow;

const EVENT_KEY: &[u8] = b"\"event\":{";
const TIME_KEY: &[u8] = b"\"time\":\"";

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

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The event `time` of a stored entry in Unix milliseconds, or `None` if the
/// bytes are not an entry.
pub fn entry_time_ms(bytes: &[u8]) -> Option<i64> {
    if let Some(ms) = fast_time_ms(bytes) {
        return Some(ms);
    }
    let h = head(bytes)?;
    Timestamp::parse(&h.event.time).ok().map(|t| t.unix_ms())
}

fn fast_time_ms(bytes: &[u8]) -> Option<i64> {
    let event = find(bytes, EVENT_KEY)? + EVENT_KEY.len();
    let rest = bytes.get(event..)?;
    let start = find(rest, TIME_KEY)? + TIME_KEY.len();
    let value = rest.get(start..)?;
    let end = value.iter().position(|b| *b == b'"')?;
    canonical_utc_ms(value.get(..end)?)
}

/// Parses the canonical timestamp form `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z` to Unix
/// milliseconds; anything else is `None` (and takes the full parser).
fn canonical_utc_ms(s: &[u8]) -> Option<i64> {
    fn digits(s: &[u8]) -> Option<i64> {
        s.iter().try_fold(0i64, |acc, b| {
            b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0'))
        })
    }
    if s.len() < 20
        || s[4] != b'-'
        || s[7] != b'-'
        || s[10] != b'T'
        || s[13] != b':'
        || s[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (digits(&s[0..4])?, digits(&s[5..7])?, digits(&s[8..10])?);
    let (hour, minute, second) = (
        digits(&s[11..13])?,
        digits(&s[14..16])?,
        digits(&s[17..19])?,
    );
    let mut millis = 0;
    match &s[19..] {
        b"Z" => {}
        [b'.', frac @ .., b'Z'] if (1..=9).contains(&frac.len()) => {
            let mut f = digits(frac)?;
            for _ in frac.len()..3 {
                f *= 10;
            }
            for _ in 3..frac.len() {
                f /= 10;
            }
            millis = f;
        }
        _ => return None,
    }
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1970..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || day < 1
        || day > month_days[(month - 1) as usize]
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    // Days from 1970-01-01 (H. Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis)
}

/// The client-supplied event id of a stored entry, if it has one.
pub fn entry_event_id(bytes: &[u8]) -> Option<String> {
    head(bytes)?.event.id.map(Cow::into_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Entry, Event, Via};
    use proptest::prelude::*;

    fn entry_with(id: &str, time: &str) -> Vec<u8> {
        let json = format!(
            r#"{{"id":{},"time":"{time}","category":"auth","action":"login","outcome":"success"}}"#,
            serde_json::to_string(id).unwrap()
        );
        let event = Event::from_json(json.as_bytes()).unwrap();
        Entry {
            received: Timestamp::parse("2026-11-27T14:03:12Z").unwrap(),
            via: Via {
                kind: "import".into(),
                peer: Some("\"event\":{\"time\":\"1999-01-01T00:00:00Z\"".into()),
                principal: None,
            },
            event,
            enriched: None,
        }
        .canonical_bytes()
    }

    #[test]
    fn reads_time_and_id_from_canonical_entries() {
        let bytes = entry_with("evt-1", "2026-11-27T15:03:11.120+01:00");
        let want = Timestamp::parse("2026-11-27T14:03:11.12Z")
            .unwrap()
            .unix_ms();
        assert_eq!(fast_time_ms(&bytes), Some(want));
        assert_eq!(entry_time_ms(&bytes), Some(want));
        assert_eq!(entry_event_id(&bytes).as_deref(), Some("evt-1"));
        assert_eq!(entry_time_ms(b"not json"), None);
        assert_eq!(entry_time_ms(br#"{"event":{"time":"yesterday"}}"#), None);
    }

    #[test]
    fn quoted_patterns_inside_strings_do_not_fool_the_scan() {
        let bytes = entry_with(
            "\"time\":\"1980-01-01T00:00:00Z\"",
            "2030-05-06T07:08:09.5Z",
        );
        let want = Timestamp::parse("2030-05-06T07:08:09.5Z")
            .unwrap()
            .unix_ms();
        assert_eq!(entry_time_ms(&bytes), Some(want));
    }

    #[test]
    fn fast_parser_rejects_what_it_does_not_handle() {
        for s in [
            "2026-11-27T14:03:11+01:00",
            "2026-02-30T00:00:00Z",
            "2026-11-27 14:03:11Z",
            "2026-11-27T24:00:00Z",
            "1969-12-31T23:59:59Z",
            "2026-11-27T14:03:11.Z",
            "2026-11-27T14:03:11.1234567890Z",
        ] {
            assert_eq!(canonical_utc_ms(s.as_bytes()), None, "{s}");
        }
    }

    proptest! {
        #[test]
        fn fast_parser_agrees_with_the_full_parser(ms in 0i64..253_402_300_799_999, sub in 0u32..1_000_000) {
            let t = Timestamp::from_unix_ms(ms).unwrap();
            // Add sub-millisecond digits to exercise 4..9 fraction digits.
            let text = t.to_string();
            let with_sub = if sub > 0 && text.ends_with('Z') {
                let base = text.trim_end_matches('Z');
                let base = if base.contains('.') { base.to_owned() } else { format!("{base}.") };
                let frac_len = base.len() - base.find('.').unwrap() - 1;
                format!("{base}{}{}Z", "0".repeat(3usize.saturating_sub(frac_len)), sub)
            } else {
                text
            };
            let full = Timestamp::parse(&with_sub).unwrap();
            prop_assert_eq!(canonical_utc_ms(full.to_string().as_bytes()), Some(full.unix_ms()), "{}", with_sub);
        }
    }
}

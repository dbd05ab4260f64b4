//! RFC 3339 timestamps with one canonical text form.
//!
//! Input may carry any offset; the value is kept as a UTC instant and always
//! written as `YYYY-MM-DDTHH:MM:SS[.fraction]Z` with trailing zeros of the
//! fraction trimmed, so the same instant always gives the same bytes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime, UtcOffset};

/// Earliest accepted year (as written, and of the UTC instant).
pub const MIN_YEAR: i32 = 1970;
/// Latest accepted year (as written, and of the UTC instant).
pub const MAX_YEAR: i32 = 9999;

/// Why a string is not an accepted timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    #[error("not an rfc 3339 date-time with offset")]
    Malformed,
    #[error("year must be between {MIN_YEAR} and {MAX_YEAR}")]
    YearOutOfRange,
    #[error(
        "on 1970-01-01 and 9999-12-31 the offset must be Z or 00:00, so the instant stays in range"
    )]
    BoundaryDayOffset,
    #[error("a leap second is only valid at 23:59:60 utc")]
    LeapSecond,
    #[error("unix time in milliseconds out of range")]
    UnixOutOfRange,
}

/// A UTC instant between 1970-01-01 and 9999-12-31 with nanosecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    /// The current time from the system clock.
    pub fn now() -> Self {
        // A clock set before 1970 would give a value that does not re-parse;
        // clamp to the epoch so the canonical form stays parseable.
        let now = OffsetDateTime::now_utc();
        if now.year() < MIN_YEAR {
            return Self(OffsetDateTime::UNIX_EPOCH);
        }
        Self(now)
    }

    /// The instant `ms` milliseconds after the Unix epoch.
    pub fn from_unix_ms(ms: i64) -> Result<Self, TimestampError> {
        let nanos = i128::from(ms) * 1_000_000;
        let odt = OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .map_err(|_| TimestampError::UnixOutOfRange)?;
        Self::from_utc(odt)
    }

    /// Milliseconds since the Unix epoch (sub-millisecond part truncated).
    pub fn unix_ms(&self) -> i64 {
        // In range 1970..=9999 the value is below 2^48, so it always fits.
        let ms = self.0.unix_timestamp_nanos() / 1_000_000;
        i64::try_from(ms).unwrap_or(i64::MAX)
    }

    /// The instant as a `time` value in UTC.
    pub fn as_offset_date_time(&self) -> OffsetDateTime {
        self.0
    }

    /// Wraps an instant, checking the year range.
    pub fn from_offset_date_time(odt: OffsetDateTime) -> Result<Self, TimestampError> {
        let utc = odt
            .checked_to_offset(UtcOffset::UTC)
            .ok_or(TimestampError::YearOutOfRange)?;
        Self::from_utc(utc)
    }

    fn from_utc(utc: OffsetDateTime) -> Result<Self, TimestampError> {
        if !(MIN_YEAR..=MAX_YEAR).contains(&utc.year()) {
            return Err(TimestampError::YearOutOfRange);
        }
        Ok(Self(utc))
    }

    /// Parses RFC 3339 with the same acceptance as JSON Schema `date-time`
    /// (jsonschema crate) plus the year rules in `schemas/event.schema.json`.
    pub fn parse(s: &str) -> Result<Self, TimestampError> {
        let bytes = s.as_bytes();
        // `time` accepts any byte as the date/time separator; RFC 3339 only T.
        if !matches!(bytes.get(10), Some(b'T' | b't')) {
            return Err(TimestampError::Malformed);
        }
        // `time` only accepts a leap second on the last day of a month; the
        // JSON Schema format accepts 23:59:60 UTC on any day. Parse it as :59
        // and check it ourselves, then store it as the last nanosecond.
        let leap = bytes.get(17..19) == Some(b"60".as_slice());
        let parsed = if leap {
            let mut fixed = s.to_owned();
            // Bytes 17 and 18 are ASCII digits, so 17..19 is on char boundaries.
            fixed.replace_range(17..19, "59");
            OffsetDateTime::parse(&fixed, &Rfc3339)
        } else {
            OffsetDateTime::parse(s, &Rfc3339)
        }
        .map_err(|_| TimestampError::Malformed)?;

        if !(MIN_YEAR..=MAX_YEAR).contains(&parsed.year()) {
            return Err(TimestampError::YearOutOfRange);
        }
        if is_boundary_day(parsed.date()) && parsed.offset() != UtcOffset::UTC {
            return Err(TimestampError::BoundaryDayOffset);
        }
        let mut utc = parsed
            .checked_to_offset(UtcOffset::UTC)
            .ok_or(TimestampError::YearOutOfRange)?;
        if leap {
            if utc.hour() != 23 || utc.minute() != 59 {
                return Err(TimestampError::LeapSecond);
            }
            utc = utc
                .replace_nanosecond(999_999_999)
                .map_err(|_| TimestampError::LeapSecond)?;
        }
        Self::from_utc(utc)
    }
}

fn is_boundary_day(date: Date) -> bool {
    let (y, m, d) = (date.year(), date.month(), date.day());
    (y == MIN_YEAR && m == Month::January && d == 1)
        || (y == MAX_YEAR && m == Month::December && d == 31)
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0;
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )?;
        let nanos = t.nanosecond();
        if nanos != 0 {
            let frac = format!("{nanos:09}");
            write!(f, ".{}", frac.trim_end_matches('0'))?;
        }
        f.write_str("Z")
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an rfc 3339 date-time string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Timestamp, E> {
                Timestamp::parse(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> String {
        Timestamp::parse(s)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .to_string()
    }

    #[test]
    fn canonical_form_is_utc_with_trimmed_fraction() {
        assert_eq!(
            canon("2026-11-27T15:03:11.120+01:00"),
            "2026-11-27T14:03:11.12Z"
        );
        assert_eq!(canon("2026-11-27T14:03:11Z"), "2026-11-27T14:03:11Z");
        assert_eq!(canon("2026-11-27T14:03:11.000Z"), "2026-11-27T14:03:11Z");
        assert_eq!(
            canon("2026-11-27T14:03:11.000000001Z"),
            "2026-11-27T14:03:11.000000001Z"
        );
        // Digits past nanoseconds are dropped, as `time` does.
        assert_eq!(
            canon("2026-11-27T14:03:11.1234567899Z"),
            "2026-11-27T14:03:11.123456789Z"
        );
        assert_eq!(canon("2026-11-27t14:03:11z"), "2026-11-27T14:03:11Z");
        assert_eq!(canon("2026-11-27T00:30:00+01:00"), "2026-11-26T23:30:00Z");
        assert_eq!(canon("2026-11-27T23:30:00-00:00"), "2026-11-27T23:30:00Z");
        assert_eq!(canon("2026-12-31T23:30:00-01:30"), "2027-01-01T01:00:00Z");
    }

    #[test]
    fn same_instant_same_string() {
        let a = canon("2026-11-27T15:03:11.5+01:00");
        let b = canon("2026-11-27T09:03:11.500-05:00");
        assert_eq!(a, b);
    }

    #[test]
    fn leap_second_only_at_end_of_utc_day() {
        assert_eq!(
            canon("2016-12-31T23:59:60Z"),
            "2016-12-31T23:59:59.999999999Z"
        );
        assert_eq!(
            canon("2026-06-15T23:59:60Z"),
            "2026-06-15T23:59:59.999999999Z"
        );
        assert_eq!(
            canon("2017-01-01T00:59:60+01:00"),
            "2016-12-31T23:59:59.999999999Z"
        );
        assert_eq!(
            Timestamp::parse("2026-06-15T12:59:60Z"),
            Err(TimestampError::LeapSecond)
        );
    }

    #[test]
    fn rejects_malformed() {
        for s in [
            "",
            "2026-11-27",
            "2026-11-27 14:03:11Z",
            "2026-11-27x14:03:11Z",
            "2026-11-27T14:03:11",
            "2026-11-27T14:03:11.Z",
            "2026-11-27T14:03:11+0100",
            "2026-11-27T14:03:11+24:00",
            "2026-11-27T14:03:11+01:60",
            "2026-11-27T24:00:00Z",
            "2026-02-30T14:03:11Z",
            "2026-13-01T14:03:11Z",
            "2026-11-27T14:03:11Z ",
            "26-11-27T14:03:11Z",
            "+2026-11-27T14:03:11Z",
        ] {
            assert_eq!(Timestamp::parse(s), Err(TimestampError::Malformed), "{s:?}");
        }
    }

    #[test]
    fn year_range() {
        assert_eq!(
            Timestamp::parse("1969-12-31T23:59:59Z"),
            Err(TimestampError::YearOutOfRange)
        );
        assert_eq!(
            Timestamp::parse("0000-01-01T00:00:00Z"),
            Err(TimestampError::YearOutOfRange)
        );
        assert_eq!(canon("1970-01-01T00:00:00Z"), "1970-01-01T00:00:00Z");
        assert_eq!(
            canon("9999-12-31T23:59:59.999999999Z"),
            "9999-12-31T23:59:59.999999999Z"
        );
        assert_eq!(
            Timestamp::parse("1970-01-01T00:30:00+01:00"),
            Err(TimestampError::BoundaryDayOffset)
        );
        assert_eq!(
            Timestamp::parse("9999-12-31T23:30:00-01:00"),
            Err(TimestampError::BoundaryDayOffset)
        );
        // Written as 1969 but 1970 in UTC: the written year counts, as in the schema.
        assert_eq!(
            Timestamp::parse("1969-12-31T23:30:00-01:00"),
            Err(TimestampError::YearOutOfRange)
        );
    }

    #[test]
    fn unix_ms_round_trip() {
        let t = Timestamp::parse("2026-11-27T14:03:11.123456Z").unwrap();
        assert_eq!(t.unix_ms(), 1_795_788_191_123);
        let back = Timestamp::from_unix_ms(t.unix_ms()).unwrap();
        assert_eq!(back.to_string(), "2026-11-27T14:03:11.123Z");
        assert_eq!(Timestamp::from_unix_ms(0).unwrap().unix_ms(), 0);
        assert_eq!(
            Timestamp::from_unix_ms(-1),
            Err(TimestampError::YearOutOfRange)
        );
        assert!(Timestamp::from_unix_ms(253_402_300_799_999).is_ok());
        assert!(Timestamp::from_unix_ms(253_402_300_800_000).is_err());
        assert!(Timestamp::from_unix_ms(i64::MAX).is_err());
    }

    #[test]
    fn now_is_in_range_and_reparses() {
        let now = Timestamp::now();
        assert_eq!(Timestamp::parse(&now.to_string()), Ok(now));
    }

    #[test]
    fn serde_uses_canonical_string() {
        let t: Timestamp = serde_json::from_str("\"2026-11-27T15:03:11.120+01:00\"").unwrap();
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"2026-11-27T14:03:11.12Z\""
        );
        assert!(serde_json::from_str::<Timestamp>("5").is_err());
    }
}

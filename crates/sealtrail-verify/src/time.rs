//! The event time of a stored entry (LEDGER.md §4.1 "Entries"), for the
//! segment record's `min_time_ms`/`max_time_ms`, and its display form.
//!
//! The time is the top-level `event` object's `time` member, an RFC 3339
//! date-time with an offset, years 1970..=9999 only. The strict JSON check
//! of every entry finds it on the way ([`crate::json::check_entry`]).

use crate::json::{self, JsonError};

/// The strict JSON check of a stored entry and its event time in Unix
/// milliseconds (`None`: no valid time), from one scan of the bytes.
pub fn check_entry(bytes: &[u8]) -> (Result<(), JsonError>, Option<i64>) {
    match json::check_entry(bytes) {
        Ok(Some(raw)) => (Ok(()), rfc3339_ms(raw)),
        Ok(None) => (Ok(()), slow_time_ms(bytes)),
        // An invalid entry's time is still read as the writer read it (by
        // its bytes), so that only the entry is reported, not its record.
        Err(e) => (Err(e), pattern_time_ms(bytes).or_else(|| slow_time_ms(bytes))),
    }
}

/// First occurrence of `needle` (non-empty).
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The first `"time":"` after the first `"event":{`, in the canonical UTC form.
fn pattern_time_ms(bytes: &[u8]) -> Option<i64> {
    let rest = &bytes[find(bytes, b"\"event\":{")? + 9..];
    let value = &rest[find(rest, b"\"time\":\"")? + 8..];
    let s = &value[..value.iter().position(|b| *b == b'"')?];
    (s.last() == Some(&b'Z') && s.get(10) == Some(&b'T')).then(|| rfc3339_ms(s)).flatten()
}

/// An escaped time string: decoded by a full parse.
fn slow_time_ms(bytes: &[u8]) -> Option<i64> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    rfc3339_ms(v.get("event")?.get("time")?.as_str()?.as_bytes())
}

fn digits(s: &[u8]) -> Option<i64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0i64, |acc, b| b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0')))
}

/// Days from 1970-01-01 of a proleptic Gregorian date (H. Hinnant).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468
}

/// 10000-01-01T00:00:00Z in Unix milliseconds (exclusive bound).
const END_MS: i64 = 253_402_300_800_000;

/// Parses RFC 3339 `date-time` (separator `T`/`t`, offset `Z`/`z`/`±HH:MM`,
/// leap second only as 23:59:60 UTC, read as its last nanosecond) to Unix
/// milliseconds in 1970..=9999 (as written, and of the UTC instant).
pub fn rfc3339_ms(s: &[u8]) -> Option<i64> {
    let (ms, year, boundary_offset) = parse(s)?;
    // On the first and last representable days the offset must be zero.
    ((1970..=9999).contains(&year) && !boundary_offset && (0..END_MS).contains(&ms)).then_some(ms)
}

/// (UTC milliseconds, year as written, whether the offset is non-zero on
/// 1970-01-01 or 9999-12-31) of an RFC 3339 date-time of any year.
fn parse(s: &[u8]) -> Option<(i64, i64, bool)> {
    if s.len() < 20
        || s[4] != b'-'
        || s[7] != b'-'
        || !matches!(s[10], b'T' | b't')
        || s[13] != b':'
        || s[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (digits(&s[0..4])?, digits(&s[5..7])?, digits(&s[8..10])?);
    let (hour, minute, second) = (digits(&s[11..13])?, digits(&s[14..16])?, digits(&s[17..19])?);
    let mut rest = &s[19..];
    let mut millis = 0;
    if let [b'.', tail @ ..] = rest {
        let n = tail.iter().take_while(|b| b.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        let frac = &tail[..n];
        millis = digits(&frac[..n.min(3)])? * [100, 10, 1][n.min(3) - 1];
        rest = &tail[n..];
    }
    let offset_min = match rest {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (h, m) = (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?);
            if h > 23 || m > 59 {
                return None;
            }
            if *sign == b'-' { -(h * 60 + m) } else { h * 60 + m }
        }
        _ => return None,
    };
    let leap_year = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [31, if leap_year { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let days_in_month = *month_days.get(usize::try_from(month - 1).ok()?)?;
    if day < 1 || day > days_in_month || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let boundary =
        (year == 1970 && month == 1 && day == 1) || (year == 9999 && month == 12 && day == 31);
    let local = ((days_from_civil(year, month, day) * 24 + hour) * 60 + minute) * 60_000;
    let ms = local + second.min(59) * 1000 - offset_min * 60_000;
    if second == 60 {
        // Only 23:59:60 UTC; stored as the last nanosecond of 23:59:59.
        if ms.rem_euclid(86_400_000) != 86_399_000 {
            return None;
        }
        millis = 999;
    }
    Some((ms + millis, year, boundary && offset_min != 0))
}

/// Whether `s` is an RFC 3339 date-time of any four-digit year (bundle
/// manifests' `from`, `to` and `created`).
pub fn rfc3339_any_year(s: &[u8]) -> bool {
    parse(s).is_some()
}

/// `YYYY-MM-DDTHH:MM:SS[.mmm]Z` (fraction without trailing zeros), or
/// `None` outside 1970..=9999.
pub fn format_ms(ms: i64) -> Option<String> {
    if !(0..END_MS).contains(&ms) {
        return None;
    }
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // Civil date from days (H. Hinnant's civil_from_days).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s, milli) = (rem / 3_600_000, rem / 60_000 % 60, rem / 1000 % 60, rem % 1000);
    let mut out = format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}");
    if milli != 0 {
        let frac = format!("{milli:03}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push('Z');
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry_time_ms(bytes: &[u8]) -> Option<i64> {
        check_entry(bytes).1
    }

    #[test]
    fn canonical_and_offset_times() {
        let e = br#"{"received":"x","event":{"id":"a","time":"2026-11-27T14:03:11.5Z"}}"#;
        let ms = entry_time_ms(e).unwrap();
        assert_eq!(format_ms(ms).unwrap(), "2026-11-27T14:03:11.5Z");
        assert_eq!(rfc3339_ms(b"1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(rfc3339_ms(b"2026-11-27T15:03:11+01:00"), rfc3339_ms(b"2026-11-27T14:03:11Z"));
        assert_eq!(rfc3339_ms(b"2016-12-31T23:59:60Z"), rfc3339_ms(b"2016-12-31T23:59:59.999Z"));
        assert_eq!(
            format_ms(rfc3339_ms(b"9999-12-31T23:59:59Z").unwrap()).unwrap(),
            "9999-12-31T23:59:59Z"
        );
        for bad in [
            &b"1969-12-31T23:59:59Z"[..],
            b"1970-01-01T00:00:00+01:00",
            b"2026-02-29T00:00:00Z",
            b"2026-11-27T14:03:60Z",
            b"2026-11-27 14:03:11Z",
            b"2026-11-27T14:03:11",
            b"2026-11-27T14:03:11.Z",
            b"10000-01-01T00:00:00Z",
        ] {
            assert_eq!(rfc3339_ms(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        // Not an entry, or no time: None.
        assert_eq!(entry_time_ms(b"{\"event\":{}}"), None);
        assert_eq!(entry_time_ms(b"garbage"), None);
        // Non-canonical order falls back to the full parse.
        let e = br#"{"event":{"time":"2026-11-27T15:03:11+01:00","id":"a"}}"#;
        assert_eq!(entry_time_ms(e), rfc3339_ms(b"2026-11-27T14:03:11Z"));
    }
}

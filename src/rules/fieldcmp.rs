//! `field|gt|fieldref: other` (and `gte`, `lt`, `lte`): comparing two
//! fields of the same event, a sealtrail extension to Sigma's `fieldref`
//! (which only tests equality).
//!
//! Numbers compare as numbers. Otherwise both sides are read as spans of
//! time: an RFC 3339 timestamp is an instant, a `YYYY-MM-DD` date (the
//! directory's `hired` and `terminated`) is the whole UTC day. A value is
//! `gt` another when it starts after the other ends, `lt` when it ends
//! before the other starts, `gte` when it ends at or after the other's
//! start, `lte` when it starts at or before the other's end. So
//! `time|gt|fieldref: actor.terminated` holds from the day after the
//! termination date on, and `time|lte|fieldref: actor.terminated` on that
//! day and before. Values of neither kind, or of an absent field, do not
//! match (like every other comparison).

use super::detection::CmpOp;
use super::field::FieldValue;

const DAY_MS: i64 = 86_400_000;

/// Whether `v op o` holds (see the module comment).
pub(crate) fn holds(op: CmpOp, v: &FieldValue<'_>, o: &FieldValue<'_>) -> bool {
    if let (Some(a), Some(b)) = (number(v), number(o)) {
        return op.holds(a, b);
    }
    let (Some((a0, a1)), Some((b0, b1))) = (span(v), span(o)) else {
        return false;
    };
    match op {
        CmpOp::Gt => a0 > b1,
        CmpOp::Gte => a1 >= b0,
        CmpOp::Lt => a1 < b0,
        CmpOp::Lte => a0 <= b1,
    }
}

/// Numbers, and text that is a plain decimal number (not a date).
fn number(v: &FieldValue<'_>) -> Option<f64> {
    match v {
        FieldValue::Int(_) | FieldValue::Float(_) => v.number(),
        FieldValue::Str(s) if !s.contains('-') || s.trim_start().starts_with('-') => {
            s.trim().parse().ok().filter(|n: &f64| n.is_finite())
        }
        _ => None,
    }
}

/// The span (first and last millisecond, inclusive) a value stands for.
fn span(v: &FieldValue<'_>) -> Option<(i64, i64)> {
    if let Some(t) = v.time() {
        let ms = t.unix_ms();
        return Some((ms, ms));
    }
    let FieldValue::Str(s) = v else { return None };
    let start = date_ms(s.trim())?;
    Some((start, start + DAY_MS - 1))
}

/// The start (UTC) of a `YYYY-MM-DD` day.
pub(crate) fn date_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())
            .flatten()
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let month = time::Month::try_from(u8::try_from(m).ok()?).ok()?;
    let date = time::Date::from_calendar_date(i32::try_from(y).ok()?, month, u8::try_from(d).ok()?)
        .ok()?;
    Some(i64::from(date.to_julian_day() - 2_440_588) * DAY_MS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Timestamp;

    fn t(s: &str) -> FieldValue<'static> {
        FieldValue::Time(Timestamp::parse(s).unwrap())
    }

    #[test]
    fn dates_are_whole_days() {
        assert_eq!(date_ms("1970-01-02"), Some(DAY_MS));
        assert_eq!(date_ms("2024-02-30"), None);
        assert_eq!(date_ms("2024-2-03"), None);
        let day = FieldValue::Str("2026-03-01");
        let on = t("2026-03-01T23:59:59.999Z");
        let after = t("2026-03-02T00:00:00Z");
        let before = t("2026-02-28T23:59:59Z");
        assert!(!holds(CmpOp::Gt, &on, &day));
        assert!(holds(CmpOp::Gt, &after, &day));
        assert!(holds(CmpOp::Lte, &on, &day));
        assert!(!holds(CmpOp::Lte, &after, &day));
        assert!(holds(CmpOp::Lt, &before, &day));
        assert!(!holds(CmpOp::Lt, &on, &day));
        assert!(holds(CmpOp::Gte, &on, &day));
        assert!(!holds(CmpOp::Gte, &before, &day));
    }

    #[test]
    fn numbers_and_junk() {
        assert!(holds(CmpOp::Gt, &FieldValue::Int(5), &FieldValue::Str("4")));
        assert!(!holds(
            CmpOp::Gt,
            &FieldValue::Int(3),
            &FieldValue::Str("4")
        ));
        assert!(!holds(
            CmpOp::Gt,
            &t("2026-03-02T00:00:00Z"),
            &FieldValue::Str("x")
        ));
        assert!(holds(
            CmpOp::Lt,
            &FieldValue::Str("2026-01-01T00:00:00Z"),
            &FieldValue::Str("2026-01-02")
        ));
    }
}

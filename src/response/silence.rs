//! Silences: matchers plus a time range. A silenced alert is still recorded
//! (its `system/alert` event exists, and the incident records it with the
//! silence's id) but starts no notification.

use std::collections::BTreeMap;

use regex::Regex;

use super::record::{Matcher, SilenceRecord};
use crate::detect::alert::Alert;

/// The fields a silence can test besides the group's: `rule` is another
/// name for `rule_id`.
pub const SIGNATURE_FIELDS: [&str; 5] = ["rule_id", "rule", "severity", "title", "playbook"];

/// What a silence tests: an alert's (with the playbook it starts) or an
/// incident's rule, severity, title, playbook and group.
#[derive(Clone, Copy, Debug)]
pub struct Signature<'a> {
    pub rule_id: &'a str,
    pub severity: &'a str,
    pub title: &'a str,
    pub playbook: &'a str,
    pub group: &'a BTreeMap<String, String>,
}

impl<'a> Signature<'a> {
    pub fn of_alert(alert: &'a Alert, playbook: &'a str) -> Signature<'a> {
        Signature {
            rule_id: &alert.rule_id,
            severity: &alert.severity,
            title: &alert.title,
            playbook,
            group: &alert.group,
        }
    }

    fn get(&self, field: &str) -> Option<&'a str> {
        match field {
            "rule_id" | "rule" => Some(self.rule_id),
            "severity" => Some(self.severity),
            "title" => Some(self.title),
            "playbook" => Some(self.playbook),
            other => self.group.get(other).map(String::as_str),
        }
    }
}

/// A new silence id: `sil-` and 64 random bits in hex.
pub fn new_id() -> String {
    let mut b = [0u8; 8];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
    format!("sil-{}", hex::encode(b))
}

/// Most silences active or pending at once.
pub const MAX_SILENCES: usize = 1000;
/// Most matchers in one silence.
pub const MAX_MATCHERS: usize = 16;
/// Longest a silence may last, and how far from now its start and end may
/// be: without it, `ends_at: 9999-12-31` mutes a rule for good.
pub const MAX_SILENCE_DURATION: std::time::Duration = std::time::Duration::from_secs(30 * 86_400);
/// Words for [`MAX_SILENCE_DURATION`] in errors.
const MAX_SILENCE_TEXT: &str = "30 days";

/// Checks a new silence's window against [`MAX_SILENCE_DURATION`] at
/// `now_ms`: it ends in the future, at most that far from now and from its
/// start, and starts no further than that from now in either direction.
pub fn check_window(starts_ms: i64, ends_ms: i64, now_ms: i64) -> Result<(), String> {
    let max = i64::try_from(MAX_SILENCE_DURATION.as_millis()).unwrap_or(i64::MAX);
    if ends_ms <= now_ms {
        return Err("`ends_at` is in the past".into());
    }
    if ends_ms <= starts_ms {
        return Err("`ends_at` must be after `starts_at`".into());
    }
    if starts_ms.saturating_sub(now_ms) > max {
        return Err(format!(
            "`starts_at` is more than {MAX_SILENCE_TEXT} in the future"
        ));
    }
    if now_ms.saturating_sub(starts_ms) > max {
        return Err(format!(
            "`starts_at` is more than {MAX_SILENCE_TEXT} in the past"
        ));
    }
    if ends_ms.saturating_sub(now_ms) > max || ends_ms.saturating_sub(starts_ms) > max {
        return Err(format!(
            "a silence lasts at most {MAX_SILENCE_TEXT}: `ends_at` is further away"
        ));
    }
    Ok(())
}

/// Longest regex source accepted.
const MAX_REGEX_CHARS: usize = 1024;

#[derive(Clone, Debug)]
enum Test {
    Equals(String),
    Regex(Regex),
}

#[derive(Clone, Debug)]
pub struct Silence {
    pub record: SilenceRecord,
    tests: Vec<(String, Test)>,
}

impl Silence {
    /// Compiles a silence; the error names the matcher at fault.
    pub fn new(record: SilenceRecord) -> Result<Silence, String> {
        if record.matchers.is_empty() {
            return Err("a silence needs at least one matcher".into());
        }
        if record.matchers.len() > MAX_MATCHERS {
            return Err(format!("at most {MAX_MATCHERS} matchers"));
        }
        if record.ends_at <= record.starts_at {
            return Err("`ends_at` must be after `starts_at`".into());
        }
        let mut tests = Vec::new();
        for (i, m) in record.matchers.iter().enumerate() {
            let field = m.field.strip_prefix("group.").unwrap_or(&m.field);
            if field.is_empty() || field.len() > 128 {
                return Err(format!(
                    "matcher {}: `field` must be 1-128 characters",
                    i + 1
                ));
            }
            let test = match (&m.value, &m.regex) {
                (Some(v), None) => Test::Equals(v.clone()),
                (None, Some(r)) => {
                    if r.chars().count() > MAX_REGEX_CHARS {
                        return Err(format!("matcher {}: regex too long", i + 1));
                    }
                    let re = regex::RegexBuilder::new(&format!("^(?:{r})$"))
                        .size_limit(1 << 20)
                        .build()
                        .map_err(|e| format!("matcher {}: invalid regex: {e}", i + 1))?;
                    Test::Regex(re)
                }
                _ => {
                    return Err(format!(
                        "matcher {}: needs exactly one of `value` and `regex`",
                        i + 1
                    ));
                }
            };
            tests.push((field.to_owned(), test));
        }
        Ok(Silence { record, tests })
    }

    pub fn id(&self) -> &str {
        &self.record.id
    }

    /// The fields the matchers test (`group.` prefixes removed), in order.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.tests.iter().map(|(f, _)| f.as_str())
    }

    /// Whether its time range and `[starts_ms, ends_ms)` share an instant.
    pub fn overlaps_window(&self, starts_ms: i64, ends_ms: i64) -> bool {
        self.record.starts_at.unix_ms() < ends_ms && starts_ms < self.record.ends_at.unix_ms()
    }

    pub fn active_at(&self, now_ms: i64) -> bool {
        self.record.starts_at.unix_ms() <= now_ms && now_ms < self.record.ends_at.unix_ms()
    }

    /// Whether every matcher holds for `alert` (started by `playbook`).
    pub fn matches(&self, alert: &Alert, playbook: &str) -> bool {
        self.matches_signature(&Signature::of_alert(alert, playbook))
    }

    /// Whether every matcher holds for `sig` (an alert's or an incident's).
    pub fn matches_signature(&self, sig: &Signature<'_>) -> bool {
        self.tests
            .iter()
            .all(|(field, test)| match (sig.get(field), test) {
                (None, _) => false,
                (Some(v), Test::Equals(want)) => v == want,
                (Some(v), Test::Regex(re)) => re.is_match(v),
            })
    }
}

/// Builds the matchers a request names; shared by the API and tests.
pub fn matcher(field: &str, value: Option<&str>, regex: Option<&str>) -> Matcher {
    Matcher {
        field: field.to_owned(),
        value: value.map(str::to_owned),
        regex: regex.map(str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Timestamp;

    #[test]
    fn silence_windows_are_capped_in_length_and_distance() {
        let now = Timestamp::parse("2026-12-07T12:00:00Z").unwrap().unix_ms();
        let day = 86_400_000;
        let far = Timestamp::parse("9999-12-31T00:00:00Z").unwrap().unix_ms();
        assert!(check_window(now, now + 2 * 3_600_000, now).is_ok());
        assert!(check_window(now, now + 30 * day, now).is_ok());
        assert!(check_window(now - day, now + 29 * day, now).is_ok());
        let err = check_window(now, far, now).unwrap_err();
        assert!(err.contains("at most 30 days"), "{err}");
        assert!(check_window(now, now + 30 * day + 1, now).is_err());
        // Started long ago, or starting far ahead.
        assert!(
            check_window(now - 31 * day, now + day, now)
                .unwrap_err()
                .contains("past")
        );
        assert!(
            check_window(now + 31 * day, now + 32 * day, now)
                .unwrap_err()
                .contains("future")
        );
        // 29 days ahead, lasting 30: ends 59 days from now.
        assert!(check_window(now + 29 * day, now + 59 * day, now).is_err());
        assert!(
            check_window(now - 2 * day, now - day, now)
                .unwrap_err()
                .contains("past")
        );
        assert!(check_window(i64::MIN, i64::MAX, now).is_err());
    }

    fn alert(user: &str) -> Alert {
        Alert {
            id: "alert-1".into(),
            rule_id: "brute-force".into(),
            title: "T".into(),
            severity: "high".into(),
            group: [("actor.user".to_owned(), user.to_owned())].into(),
            first_time: Timestamp::from_unix_ms(0).unwrap(),
            last_time: Timestamp::from_unix_ms(0).unwrap(),
            count: 1,
            event_indices: vec![1],
            late: false,
            explanations_tried: Vec::new(),
        }
    }

    fn silence(matchers: Vec<Matcher>) -> Result<Silence, String> {
        Silence::new(SilenceRecord {
            id: "s1".into(),
            matchers,
            starts_at: Timestamp::from_unix_ms(1000).unwrap(),
            ends_at: Timestamp::from_unix_ms(2000).unwrap(),
            created_by: "ann".into(),
            comment: None,
        })
    }

    #[test]
    fn matchers_are_anded_and_regexes_match_whole_values() {
        let s = silence(vec![
            matcher("rule_id", Some("brute-force"), None),
            matcher("group.actor.user", None, Some("u00[0-9]+")),
        ])
        .unwrap();
        assert!(s.matches(&alert("u0042"), "page"));
        assert!(!s.matches(&alert("xu0042"), "page"), "anchored");
        assert!(!s.matches(&alert("u0042x"), "page"), "anchored");
        let s2 = silence(vec![matcher("patient.id", Some("x"), None)]).unwrap();
        assert!(
            !s2.matches(&alert("u1"), "page"),
            "a missing field never matches"
        );
        assert!(s.active_at(1000) && s.active_at(1999) && !s.active_at(2000) && !s.active_at(999));
        assert!(silence(vec![]).is_err());
        assert!(
            silence(vec![matcher("rule_id", None, Some("("))])
                .unwrap_err()
                .contains("invalid regex")
        );
        assert!(silence(vec![matcher("rule_id", Some("a"), Some("b"))]).is_err());
    }
}

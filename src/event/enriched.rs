//! What sealtrail joined to an event from the practice's directories
//! (`staff.csv`, `patients.csv`; see `transforms::enrich`). It is stored
//! beside the event in the [`super::Entry`], never inside it: the event stays
//! exactly as the source sent it.

use serde::{Deserialize, Serialize};

use super::error::{EventError, join};
use super::limits::MAX_ENRICHED_CHARS;
use super::strict;
use super::validate::bounded;

/// Directory data for the people an event names. At least one part is set
/// in a stored entry; an event that matched nothing has no `enriched` at all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
pub struct Enriched {
    /// `staff.csv` row of `actor.user`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "strict::opt_object"
    )]
    pub actor: Option<StaffInfo>,
    /// `staff.csv` row of `target_user`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "strict::opt_object"
    )]
    pub target_user: Option<StaffInfo>,
    /// `patients.csv` row of `patient.id`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "strict::opt_object"
    )]
    pub patient: Option<PatientInfo>,
    /// `networks.csv`: the name of the known network holding `actor.ip`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "strict::present"
    )]
    pub network: Option<String>,
}

/// One `staff.csv` row, without the user id (the event has it). Empty cells
/// are `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
pub struct StaffInfo {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "strict::present"
    )]
    pub name: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "strict::present"
    )]
    pub last_name: Option<String>,
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
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "strict::present"
    )]
    pub home_zip: Option<String>,
    /// `YYYY-MM-DD`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "strict::present"
    )]
    pub hired: Option<String>,
    /// `YYYY-MM-DD`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "strict::present"
    )]
    pub terminated: Option<String>,
}

/// One `patients.csv` row, without the patient id (the event has it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
pub struct PatientInfo {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "strict::present"
    )]
    pub last_name: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "strict::present"
    )]
    pub home_zip: Option<String>,
    pub vip: bool,
    /// The patient's own staff user id, when the patient works here.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "strict::present"
    )]
    pub employee_user: Option<String>,
}

impl Enriched {
    /// Whether no part is set (such a value is not stored).
    pub fn is_empty(&self) -> bool {
        self.actor.is_none()
            && self.target_user.is_none()
            && self.patient.is_none()
            && self.network.is_none()
    }

    /// Checks the rules a stored `enriched` follows; paths are relative to it.
    pub fn validate(&self) -> Result<(), EventError> {
        if self.is_empty() {
            return Err(EventError::invalid(
                "",
                "must name at least one of actor, target_user, patient, network",
            ));
        }
        if let Some(s) = &self.actor {
            s.validate("actor")?;
        }
        if let Some(s) = &self.target_user {
            s.validate("target_user")?;
        }
        if let Some(p) = &self.patient {
            p.validate("patient")?;
        }
        check_text("network", &self.network)
    }
}

impl StaffInfo {
    /// Checks field limits; `prefix` is the path of this value.
    pub fn validate(&self, prefix: &str) -> Result<(), EventError> {
        for (field, value) in [
            ("name", &self.name),
            ("last_name", &self.last_name),
            ("role", &self.role),
            ("department", &self.department),
            ("home_zip", &self.home_zip),
        ] {
            check_text(&join(prefix, field), value)?;
        }
        check_date(&join(prefix, "hired"), &self.hired)?;
        check_date(&join(prefix, "terminated"), &self.terminated)
    }
}

impl PatientInfo {
    /// Checks field limits; `prefix` is the path of this value.
    pub fn validate(&self, prefix: &str) -> Result<(), EventError> {
        check_text(&join(prefix, "last_name"), &self.last_name)?;
        check_text(&join(prefix, "home_zip"), &self.home_zip)?;
        check_text(&join(prefix, "employee_user"), &self.employee_user)
    }
}

/// A directory value: 1..=[`MAX_ENRICHED_CHARS`] characters, no control
/// characters. That bounds the JSON of one value to 4 bytes a character,
/// which [`super::limits::MAX_ENRICHED_BYTES`] relies on. Also used by the
/// lookup loader, so a row that would make an invalid entry is skipped.
pub fn check_text(path: &str, value: &Option<String>) -> Result<(), EventError> {
    let Some(s) = value else { return Ok(()) };
    bounded(path, s, 1, MAX_ENRICHED_CHARS)?;
    if s.chars().any(char::is_control) {
        return Err(EventError::invalid(
            path,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// A calendar date written `YYYY-MM-DD`.
fn check_date(path: &str, value: &Option<String>) -> Result<(), EventError> {
    let Some(s) = value else { return Ok(()) };
    if is_iso_date(s) {
        Ok(())
    } else {
        Err(EventError::invalid(
            path,
            "must be a calendar date written yyyy-mm-dd",
        ))
    }
}

/// `YYYY-MM-DD` naming a real day (leap years included).
pub fn is_iso_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let (Some(year), Some(month), Some(day)) = (num(0..4), num(5..7), num(8..10)) else {
        return false;
    };
    let Ok(month) = time::Month::try_from(u8::try_from(month).unwrap_or(0)) else {
        return false;
    };
    #[allow(clippy::cast_possible_wrap)] // year has four digits
    let days = time::util::days_in_month(month, year as i32);
    (1..=u32::from(days)).contains(&day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        for ok in ["2024-02-29", "1999-12-31", "0001-01-01"] {
            assert!(is_iso_date(ok), "{ok}");
        }
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "2024-00-10",
            "2024-1-01",
            "24-01-01",
            "2024/01/01",
            "2024-01-32",
            "２024-01-01",
        ] {
            assert!(!is_iso_date(bad), "{bad}");
        }
    }

    #[test]
    fn validate_names_paths() {
        let e = Enriched {
            actor: Some(StaffInfo {
                hired: Some("2024-02-30".into()),
                ..StaffInfo::default()
            }),
            ..Enriched::default()
        };
        assert_eq!(e.validate().unwrap_err().path(), Some("actor.hired"));
        let e = Enriched {
            patient: Some(PatientInfo {
                last_name: Some("a\u{7}b".into()),
                ..PatientInfo::default()
            }),
            ..Enriched::default()
        };
        assert_eq!(e.validate().unwrap_err().path(), Some("patient.last_name"));
        assert!(Enriched::default().validate().is_err());
    }

    #[test]
    fn largest_value_fits_its_byte_limit() {
        // Four-byte characters are the longest JSON per character once
        // control characters are excluded (`"` and `\\` escape to two).
        let long = || Some("\u{1F600}".repeat(MAX_ENRICHED_CHARS));
        let date = || Some("2024-02-29".to_owned());
        let staff = StaffInfo {
            name: long(),
            last_name: long(),
            role: long(),
            department: long(),
            home_zip: long(),
            hired: date(),
            terminated: date(),
        };
        let e = Enriched {
            actor: Some(staff.clone()),
            target_user: Some(staff),
            patient: Some(PatientInfo {
                last_name: long(),
                home_zip: long(),
                vip: false,
                employee_user: long(),
            }),
            network: long(),
        };
        e.validate().unwrap();
        let member = format!(",\"enriched\":{}", serde_json::to_string(&e).unwrap());
        assert!(
            member.len() <= super::super::limits::MAX_ENRICHED_BYTES,
            "{}",
            member.len()
        );
    }
}

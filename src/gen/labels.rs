//! Incident families, their thresholds, and the labels file.
//!
//! `labels.ndjson` has one JSON object per injected incident, in order of
//! `first_time`:
//!
//! ```json
//! {"incident": "inc-0003", "family": "failed_login_burst",
//!  "event_ids": ["gen-2a-0001234", ...], "first_time": "...", "last_time": "...",
//!  "group": {"actor.user": "u0007"}, "note": "10 failed logins in 6 min from 185.3.1.9"}
//! ```
//!
//! `event_ids` are the events that make up the incident (all of them, not
//! only the one that crosses a threshold); `first_time`/`last_time` are the
//! times of the first and last of them (for `source_silent`: the last event
//! before the silence and the first after it); `group` names the fields a rule
//! groups by, with their values.

use serde::Serialize;

/// Failed logins of one account within [`BURST_WINDOW_MIN`] for a burst.
pub const BURST_FAILURES: usize = 8;
pub const BURST_WINDOW_MIN: i64 = 10;
/// Distinct accounts failing from one IP within [`SPRAY_WINDOW_MIN`].
pub const SPRAY_ACCOUNTS: usize = 10;
pub const SPRAY_WINDOW_MIN: i64 = 15;
/// Failures of one account followed by its successful login, within the window.
pub const FAILURES_BEFORE_SUCCESS: usize = 5;
pub const FAILURES_BEFORE_SUCCESS_WINDOW_MIN: i64 = 15;
/// Distinct accounts locked out within the window.
pub const LOCKOUT_ACCOUNTS: usize = 5;
pub const LOCKOUT_WINDOW_MIN: i64 = 15;
/// The identity provider locks an account at its sixth failure in a row.
pub const LOCKOUT_AFTER_FAILURES: usize = 6;
/// Distinct patients one user touches within the window.
pub const VOLUME_PATIENTS: usize = 30;
pub const VOLUME_WINDOW_MIN: i64 = 60;
/// An export of at least this many records is large at any hour.
pub const LARGE_EXPORT_RECORDS: u64 = 1000;
/// Treatment relationship: an appointment or encounter within this many days.
pub const TREATMENT_DAYS: i64 = 30;
/// No activity for at least this many days makes an account dormant.
pub const DORMANT_DAYS: i64 = 14;
/// First-seen IPs are learnt over the first days of a run.
pub const NEW_IP_LEARNING_DAYS: u32 = 7;
/// Working hours are learnt per user over the first days of a run
/// (`after_hours_access.yml`, habit `learning`).
pub const HABIT_LEARNING_DAYS: u32 = 7;
/// After-hours for chart access and exports: from 20:00 ...
pub const AFTER_HOURS_FROM: i64 = 20;
/// ... to 06:00 (UTC, the practice's local time).
pub const AFTER_HOURS_UNTIL: i64 = 6;

/// Hour of the UTC day of unix time `ms`, 0..24.
pub fn hour_of(ms: i64) -> i64 {
    ms.rem_euclid(24 * 3_600_000) / 3_600_000
}

/// Whether unix time `ms` is after hours (20:00 to 06:00 UTC).
pub fn is_after_hours(ms: i64) -> bool {
    !(AFTER_HOURS_UNTIL..AFTER_HOURS_FROM).contains(&hour_of(ms))
}

/// Roles that work nights (their after-hours chart access is expected).
pub const NIGHT_ROLES: [&str; 1] = ["night_nurse"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    FailedLoginBurst,
    PasswordSpray,
    LoginAfterFailures,
    LockoutStorm,
    SameLastName,
    CoworkerRecord,
    VipNoTreatment,
    PatientVolume,
    LargeExport,
    AfterHoursAccess,
    BreakGlass,
    PrivilegeEscalation,
    AuditTampering,
    DisabledAccountLogin,
    DormantAccount,
    NewIp,
    SourceSilent,
}

impl Family {
    pub const ALL: [Family; 17] = [
        Family::FailedLoginBurst,
        Family::PasswordSpray,
        Family::LoginAfterFailures,
        Family::LockoutStorm,
        Family::SameLastName,
        Family::CoworkerRecord,
        Family::VipNoTreatment,
        Family::PatientVolume,
        Family::LargeExport,
        Family::AfterHoursAccess,
        Family::BreakGlass,
        Family::PrivilegeEscalation,
        Family::AuditTampering,
        Family::DisabledAccountLogin,
        Family::DormantAccount,
        Family::NewIp,
        Family::SourceSilent,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Family::FailedLoginBurst => "failed_login_burst",
            Family::PasswordSpray => "password_spray",
            Family::LoginAfterFailures => "login_after_failures",
            Family::LockoutStorm => "lockout_storm",
            Family::SameLastName => "same_last_name",
            Family::CoworkerRecord => "coworker_record",
            Family::VipNoTreatment => "vip_no_treatment",
            Family::PatientVolume => "patient_volume",
            Family::LargeExport => "large_export",
            Family::AfterHoursAccess => "after_hours_access",
            Family::BreakGlass => "break_glass",
            Family::PrivilegeEscalation => "privilege_escalation",
            Family::AuditTampering => "audit_tampering",
            Family::DisabledAccountLogin => "disabled_account_login",
            Family::DormantAccount => "dormant_account",
            Family::NewIp => "new_ip",
            Family::SourceSilent => "source_silent",
        }
    }

    /// What the family means in this data set (written to `summary.json`).
    pub fn definition(self) -> String {
        match self {
            Family::FailedLoginBurst => format!(
                "auth/login failure of one actor.user at least {BURST_FAILURES} times within {BURST_WINDOW_MIN} min"
            ),
            Family::PasswordSpray => format!(
                "auth/login failures for at least {SPRAY_ACCOUNTS} distinct actor.user from one actor.ip within {SPRAY_WINDOW_MIN} min"
            ),
            Family::LoginAfterFailures => format!(
                "auth/login success of an actor.user after at least {FAILURES_BEFORE_SUCCESS} failures of it, all within {FAILURES_BEFORE_SUCCESS_WINDOW_MIN} min"
            ),
            Family::LockoutStorm => format!(
                "auth/account_lockout of at least {LOCKOUT_ACCOUNTS} distinct actor.user within {LOCKOUT_WINDOW_MIN} min"
            ),
            Family::SameLastName => {
                "category access with patient.id where enriched patient.last_name equals actor.last_name".into()
            }
            Family::CoworkerRecord => {
                "category access with patient.id whose patient.employee_user is set and differs from actor.user".into()
            }
            Family::VipNoTreatment => format!(
                "category access (other than creating the appointment or encounter itself) to a patient.vip patient by a non-svc actor.user that is not attrs.clinician of any access/create appointment|encounter of that patient whose attrs.scheduled_for is within {TREATMENT_DAYS} days"
            ),
            Family::PatientVolume => format!(
                "one non-svc actor.user touching at least {VOLUME_PATIENTS} distinct patient.id within {VOLUME_WINDOW_MIN} min"
            ),
            Family::LargeExport => format!(
                "access/export with records >= {LARGE_EXPORT_RECORDS}, or any access/export by a non-svc user between 20:00 and 06:00 UTC"
            ),
            Family::AfterHoursAccess => format!(
                "category access with patient.id between 20:00 and 06:00 UTC by a non-svc actor.user whose actor.role is not one of {NIGHT_ROLES:?}"
            ),
            Family::BreakGlass => "any event with reason break_glass (access/break_glass and the views under it)".into(),
            Family::PrivilegeEscalation => {
                "admin/role_grant without attrs.change_ticket, or with actor.user == target_user".into()
            }
            Family::AuditTampering => "any admin/audit_config_change or admin/retention_change".into(),
            Family::DisabledAccountLogin => {
                "auth/login of an actor.user that was the target_user of an admin/user_disable and not of a later admin/user_enable".into()
            }
            Family::DormantAccount => format!(
                "the first event of an actor.user after at least {DORMANT_DAYS} days without any event of it"
            ),
            Family::NewIp => format!(
                "auth/login success of an actor.user from an actor.ip it has not logged in from before (learning: the first {NEW_IP_LEARNING_DAYS} days)"
            ),
            Family::SourceSilent => {
                "a source.system that normally sends around the clock (lis, every 10 min) sends nothing for hours".into()
            }
        }
    }
}

/// One injected incident, before event indices become ids.
#[derive(Debug, Clone)]
pub struct Label {
    pub family: Family,
    /// Indices into the generator's event drafts.
    pub events: Vec<usize>,
    pub group: Vec<(&'static str, String)>,
    pub note: String,
}

/// One line of `labels.ndjson`.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct LabelRecord {
    pub incident: String,
    pub family: String,
    pub event_ids: Vec<String>,
    pub first_time: String,
    pub last_time: String,
    pub group: serde_json::Map<String, serde_json::Value>,
    pub note: String,
}

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
//!
//! # Explained accesses
//!
//! The privacy families count only accesses that nothing explains. An
//! access (category `access` with a `patient.id`, by a non-`svc-` user U,
//! at time t) is *explained* when one of these holds, using only events at
//! or before t (the kinds of the shared explanation vocabulary):
//!
//! - scheduling: it is itself the `access/create` of an `appointment` or
//!   `encounter`;
//! - `treatment.clinician`: an `access/create` of an appointment or
//!   encounter of the patient names U in `attrs.clinician`, with
//!   `attrs.scheduled_for` within [`TREATMENT_DAYS`] of t;
//! - `treatment.department`: such a create has `attrs.department` equal to
//!   U's department (staff.csv) and `attrs.scheduled_for` on t's UTC day;
//! - `treatment.care_team`: an access to an encounter of the patient lists U
//!   in `attrs.care_team`, `attrs.scheduled_for` on t's UTC day;
//! - visit workflow: the access is to an `appointment` or `encounter` of the
//!   patient, who has one scheduled on t's UTC day;
//! - `treatment.record`: U created or updated an `order`, `result`,
//!   `message`, `referral`, `prescription` or `note` of the patient within
//!   [`REPEAT_DAYS`] before t;
//! - `payment.claim`: a claim of the patient (`integration/claim_submit` or
//!   an access to a `claim`) within [`PAYMENT_DAYS`] before t, and the
//!   access is to a `claim` or U accessed a claim of the patient earlier on
//!   t's UTC day;
//! - `operations.repeat`: U had an explained access to the patient within
//!   [`REPEAT_DAYS`] before t.
//!
//! # Per-user baselines (issue #12)
//!
//! `same_last_name` needs the shared surname corroborated by the address
//! (the patient's and the user's `home_zip`). `after_hours_access` needs a
//! night access at a time of day outside U's own working hours: on fewer
//! than [`HABIT_MIN_DAYS`] of the [`HABIT_DAYS`] days before t's UTC day
//! did a successful event of U fall within [`HABIT_TOLERANCE_MIN`] of
//! that time of day, or two successive ones at most [`HABIT_SESSION_GAP_H`]
//! apart span it, and U's first successful event is
//! [`HABIT_LEARNING_DAYS`] old (the `habit` correlation of
//! `after_hours_access.yml`, read in continuous time rather than its
//! quarter-hour buckets; incidents keep a margin so both agree).

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
/// Repeat access and clinical records explain for this many days.
pub const REPEAT_DAYS: i64 = 30;
/// A claim explains billing's access for this many days.
pub const PAYMENT_DAYS: i64 = 30;
/// No activity for at least this many days makes an account dormant.
pub const DORMANT_DAYS: i64 = 14;
/// A `user_enable` this recent announces a return from leave.
pub const RETURN_ENABLE_DAYS: i64 = 7;
/// First-seen IPs are learnt over the first days of a run.
pub const NEW_IP_LEARNING_DAYS: u32 = 7;
/// Working hours are learnt per user over the first days of a run
/// (`after_hours_access.yml`, habit `learning`).
pub const HABIT_LEARNING_DAYS: u32 = 7;
/// Working hours look back on this many days before the access's UTC day
/// (`after_hours_access.yml`, habit `history`) ...
pub const HABIT_DAYS: i64 = 28;
/// ... and a time of day is the user's when worked on this many of them
/// (`min_days`) ...
pub const HABIT_MIN_DAYS: usize = 2;
/// ... a day counting when a successful event of the user falls within this
/// many minutes of that time of day (`tolerance`) ...
pub const HABIT_TOLERANCE_MIN: i64 = 30;
/// ... or two of them at most this many hours apart span it (`session_gap`).
pub const HABIT_SESSION_GAP_H: i64 = 8;
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

/// What explains an access (written to `summary.json`; the module doc has
/// the same list): kind, then when it holds.
pub const EXPLANATIONS: [(&str, &str); 8] = [
    (
        "scheduling",
        "the access is itself the access/create of an appointment or encounter",
    ),
    (
        "treatment.clinician",
        "an earlier access/create of an appointment or encounter of the patient names the user in attrs.clinician, attrs.scheduled_for within 30 days of the access",
    ),
    (
        "treatment.department",
        "an earlier access/create of an appointment or encounter of the patient has attrs.department equal to the user's department (staff.csv), attrs.scheduled_for on the access's UTC day",
    ),
    (
        "treatment.care_team",
        "an earlier access to an encounter of the patient lists the user in attrs.care_team, attrs.scheduled_for on the access's UTC day",
    ),
    (
        "visit_workflow",
        "the access is to an appointment or encounter of a patient who has one scheduled on the access's UTC day",
    ),
    (
        "treatment.record",
        "the user created or updated an order, result, message, referral, prescription or note of the patient within the 30 days before",
    ),
    (
        "payment.claim",
        "a claim of the patient (integration/claim_submit or an access to a claim) within the 30 days before, and the access is to a claim or the user accessed a claim of the patient earlier that UTC day",
    ),
    (
        "operations.repeat",
        "the user had an explained access to the patient within the 30 days before",
    ),
];

/// The `/16` network of an IPv4 address (`a.b`), by which phones on a
/// carrier's network count as known.
pub fn net16(ip: &str) -> &str {
    match ip.match_indices('.').nth(1) {
        Some((i, _)) => &ip[..i],
        None => ip,
    }
}

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
                "an unexplained access (no kind of explained_access holds: no treatment, payment or operations explanation) to a patient whose enriched patient.last_name equals actor.last_name and whose patient.home_zip equals actor.home_zip (the surname corroborated by the address: patients.csv and staff.csv home_zip; the lookups have no family link), not the user's own record (patient.employee_user); a shared surname at another ZIP is not this family".into()
            }
            Family::CoworkerRecord => {
                "an unexplained access to a patient whose patient.employee_user is set and differs from actor.user (a coworker seen at a visit by its care team is explained)".into()
            }
            Family::VipNoTreatment => {
                "an unexplained access to a patient.vip patient by a non-svc actor.user (the clinician, department and care team of the VIP's visits, and billing working the VIP's claim, are explained)".into()
            }
            Family::PatientVolume => format!(
                "one non-svc actor.user's unexplained accesses touching at least {VOLUME_PATIENTS} distinct patient.id within {VOLUME_WINDOW_MIN} min (huddles over the day's scheduled patients and claim work queues are explained)"
            ),
            Family::LargeExport => format!(
                "access/export with records >= {LARGE_EXPORT_RECORDS}, or any access/export by a non-svc user between 20:00 and 06:00 UTC"
            ),
            Family::AfterHoursAccess => format!(
                "an unexplained access with patient.id between 20:00 and 06:00 UTC by a non-svc actor.user at a time of day outside the user's own working hours: on fewer than {HABIT_MIN_DAYS} of the {HABIT_DAYS} days before the access's UTC day does a successful event of the user (outcome success) fall within {HABIT_TOLERANCE_MIN} min of that time of day, or do two successive ones at most {HABIT_SESSION_GAP_H} h apart span it; judged once the user's first successful event is {HABIT_LEARNING_DAYS} days old (night staff, on-call clinicians and evening charting are explained by their visits, and their hours are their own)"
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
                "the first event of a staff actor.user after at least {DORMANT_DAYS} days without any event of it (the run's start counts as activity of staff hired before it), unless an admin/user_enable targeted it within the {RETURN_ENABLE_DAYS} days before (a return from leave)"
            ),
            Family::NewIp => format!(
                "auth/login success of an actor.user from an actor.ip outside the practice's networks (10.0.0.0/8) whose /16 network it has not logged in from before (learning: the first {NEW_IP_LEARNING_DAYS} days; phones change address within their carrier's /16)"
            ),
            Family::SourceSilent => {
                "a source.system that sends steadily sends nothing for more than 2 hours within its sending hours: lis (every 10 min, around the clock) or clearinghouse (every 5 min, 06:00-20:00 UTC on weekdays)".into()
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

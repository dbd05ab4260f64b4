//! Injected incidents, one or more of every [`Family`], each labeled.
//!
//! Incidents pick people and patients whose normal work cannot produce the
//! same pattern (see `Practice::benign`), so every occurrence of a family's
//! pattern in the data is labeled. How many: about one per family per ten
//! days (at least one); `lockout_storm` one per fifteen days, `source_silent`
//! one per thirty; `disabled_account_login` twice (a leaver from 16 days
//! on, and an employee's account on a security hold), and
//! `dormant_account` once when the run is long enough for a first week, 17
//! days away and a return (27 to 30 days, by the start's weekday).

use rand::Rng;
use rand::seq::SliceRandom;
use serde_json::json;

use super::clock::{HOUR_MS, MIN_MS, SEC_MS};
use super::labels::{
    AFTER_HOURS_FROM, Family, LOCKOUT_AFTER_FAILURES, NEW_IP_LEARNING_DAYS, hour_of,
};
use super::practice::{PatientKind, Role};
use super::schedule::{admin, admin_on_duty, export, login, ticket};
use super::{Gen, Session, attrs, event, source};
use crate::event::{Category, Outcome};

/// Decisions needed before the normal schedule runs.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// (user, day) whose first login of the shift follows five failures.
    pub login_after_failures: Vec<(usize, u32)>,
    /// Lab system outages `[from, to)`.
    pub silences: Vec<(i64, i64)>,
}

fn per_days(days: u32, every: u32) -> u32 {
    (days / every).max(1)
}

const DAY_ROLES: [Role; 8] = [
    Role::Physician,
    Role::Nurse,
    Role::MedicalAssistant,
    Role::FrontDesk,
    Role::Billing,
    Role::Lab,
    Role::Pharmacist,
    Role::Compliance,
];

/// A user of `roles` (not reserved) working a random day in `days`.
fn worker(g: &mut Gen, roles: &[Role], from_day: u32) -> Option<(usize, u32)> {
    if from_day >= g.days {
        return None;
    }
    let c: Vec<usize> = (0..g.practice.staff.len())
        .filter(|&u| roles.contains(&g.practice.staff[u].role) && !g.practice.reserved.contains(&u))
        .collect();
    for _ in 0..500 {
        let d = g.rng.gen_range(from_day..g.days);
        let u = *c.choose(&mut g.rng)?;
        if g.practice.staff[u].works(&g.clock, d) && g.clock.weekday(d) < 5 {
            return Some((u, d));
        }
    }
    None
}

pub(crate) fn plan(g: &mut Gen) -> Plan {
    let mut plan = Plan::default();
    for _ in 0..per_days(g.days, 10) {
        if let Some(x) = worker(g, &DAY_ROLES, 0) {
            plan.login_after_failures.push(x);
        }
    }
    for _ in 0..per_days(g.days, 30) {
        // A weekday after the first few days, during the day.
        for _ in 0..50 {
            let d = g.rng.gen_range(0..g.days);
            if g.clock.weekday(d) < 5 && (d >= 3 || g.days < 5) {
                let from = g.clock.day_start(d) + 9 * HOUR_MS + g.rng.gen_range(0..180) * MIN_MS;
                let to = from + g.rng.gen_range(4 * 60..8 * 60) * MIN_MS;
                plan.silences.push((from, to));
                break;
            }
        }
    }
    plan
}

/// A random strictly plain patient.
fn plain(g: &mut Gen) -> usize {
    g.practice.plain[g.rng.gen_range(0..g.practice.plain.len())]
}

/// A time within user `u`'s shift on `d`, at least `margin` from its ends.
fn in_shift(g: &mut Gen, u: usize, d: u32, margin: i64) -> i64 {
    let (s, e) = g.practice.staff[u].shift_ms(&g.clock, d);
    g.rng.gen_range(s + margin..e - margin)
}

/// Views of patient `p` by `u` in its session near `t`; retries past a session gap.
fn views(
    g: &mut Gen,
    u: usize,
    d: u32,
    t: i64,
    p: usize,
    n: usize,
    reason: Option<&str>,
) -> Vec<usize> {
    let mut out = Vec::new();
    let mut t = t;
    let mut tries = 0;
    while out.len() < n && tries < 40 {
        tries += 1;
        let kind = [
            "demographics",
            "problem_list",
            "medication_list",
            "lab_result",
        ][out.len() % 4];
        if let Some(i) = g.access(u, d, t, "view", Some(p), kind, "ehr", "Viewed chart") {
            if let Some(r) = reason {
                g.drafts[i].event.reason = Some(r.to_owned());
            }
            out.push(i);
        }
        t += g.rng.gen_range(30..120) * SEC_MS;
    }
    out
}

fn external_ip(g: &mut Gen) -> String {
    let first = [45, 62, 77, 91, 103, 146, 178, 185, 193, 203][g.rng.gen_range(0..10)];
    format!(
        "{first}.{}.{}.{}",
        g.rng.gen_range(0..256),
        g.rng.gen_range(0..256),
        g.rng.gen_range(1..255)
    )
}

fn user(g: &Gen, u: usize) -> String {
    g.practice.staff[u].user.clone()
}

fn patient_id(g: &Gen, p: usize) -> String {
    g.practice.patients[p].id.clone()
}

/// A session of `u` outside its shift: login from `ip`, `body` inside, logout.
pub(crate) fn own_session(
    g: &mut Gen,
    u: usize,
    d: u32,
    from: i64,
    to: i64,
    ip: &str,
) -> (usize, usize) {
    let sid = g.session_id();
    let li = login(g, u, from, ip, Some(&sid), Outcome::Success);
    let mut out = event(to, Category::Auth, "logout", Outcome::Success);
    let mut actor = g.actor(u, Some((&sid, ip)));
    actor.ip = Some(ip.to_owned());
    out.actor = Some(actor);
    out.source = Some(source("sso"));
    let lo = g.push(out);
    g.sessions[u][d as usize].push(Session {
        from,
        to,
        id: sid,
        ip: ip.to_owned(),
    });
    (li, lo)
}

pub(crate) fn inject(g: &mut Gen, _plan: &Plan) {
    let n = per_days(g.days, 10);
    for k in 0..n {
        failed_login_burst(g);
        password_spray(g);
        same_last_name(g, k as usize);
        coworker_record(g, k as usize);
        vip_no_treatment(g, k as usize);
        patient_volume(g);
        large_export(g, k % 2 == 0);
        after_hours_access(g);
        break_glass(g);
        privilege_escalation(g, k % 2 == 0);
        audit_tampering(g, k % 2 == 0);
        new_ip(g);
    }
    for _ in 0..per_days(g.days, 15) {
        lockout_storm(g);
    }
    disabled_account_login(g);
    security_hold_login(g);
}

fn failed_login_burst(g: &mut Gen) {
    let Some((u, d)) = worker(g, &DAY_ROLES, 0) else {
        return;
    };
    let ip = external_ip(g);
    let mut t = g.clock.day_start(d) + g.rng.gen_range(30..270) * MIN_MS;
    let first = t;
    let count = g.rng.gen_range(super::labels::BURST_FAILURES..15);
    let mut ids = Vec::new();
    for i in 0..count {
        ids.push(login(g, u, t, &ip, None, Outcome::Failure));
        if i + 1 == LOCKOUT_AFTER_FAILURES {
            let mut e = event(
                t + SEC_MS,
                Category::Auth,
                "account_lockout",
                Outcome::Success,
            );
            let mut actor = g.actor(u, None);
            actor.ip = Some(ip.clone());
            e.actor = Some(actor);
            e.source = Some(source("sso"));
            e.message = Some("Account locked after repeated failures".into());
            ids.push(g.push(e));
        } else if i >= LOCKOUT_AFTER_FAILURES {
            g.drafts[ids[ids.len() - 1]].event.attrs =
                attrs([("failure", json!("account_locked"))]);
        }
        t += g.rng.gen_range(15..40) * SEC_MS;
    }
    let u_name = user(g, u);
    g.label(
        Family::FailedLoginBurst,
        ids,
        vec![("actor.user", u_name)],
        format!(
            "{count} failed logins in {} min from {ip}",
            (t - first) / MIN_MS + 1
        ),
    );
}

fn password_spray(g: &mut Gen) {
    let ip = external_ip(g);
    let d = g.rng.gen_range(0..g.days);
    let mut t = g.clock.day_start(d) + g.rng.gen_range(60..22 * 60) * MIN_MS;
    let mut targets: Vec<usize> = (0..g.practice.staff.len())
        .filter(|u| !g.practice.reserved.contains(u))
        .collect();
    targets.shuffle(&mut g.rng);
    let want = g.rng.gen_range(12..21).min(targets.len());
    targets.truncate(want);
    let mut ids = Vec::new();
    for &u in &targets {
        for _ in 0..if g.rng.gen_bool(0.3) { 2 } else { 1 } {
            let i = login(g, u, t, &ip, None, Outcome::Failure);
            // The attacker's machine: no session, device or directory fields.
            if let Some(a) = g.drafts[i].event.actor.as_mut() {
                a.session = None;
                a.device = None;
                a.role = None;
                a.department = None;
            }
            ids.push(i);
            t += g.rng.gen_range(10..30) * SEC_MS;
        }
    }
    g.label(
        Family::PasswordSpray,
        ids,
        vec![("actor.ip", ip.clone())],
        format!("{} accounts tried from {ip}", targets.len()),
    );
}

fn lockout_storm(g: &mut Gen) {
    let Some((_, d)) = worker(g, &DAY_ROLES, 0) else {
        return;
    };
    let mut t = g.clock.day_start(d) + 8 * HOUR_MS + g.rng.gen_range(0..120) * MIN_MS;
    let mut users: Vec<usize> = (0..g.practice.staff.len())
        .filter(|u| !g.practice.reserved.contains(u))
        .collect();
    users.shuffle(&mut g.rng);
    users.truncate(g.rng.gen_range(6..10));
    let mut ids = Vec::new();
    for &u in &users {
        let mut e = event(t, Category::Auth, "account_lockout", Outcome::Success);
        e.actor = Some(g.actor(u, None));
        e.source = Some(source("sso"));
        e.attrs = attrs([("cause", json!("failed ldap binds from legacy-scanner"))]);
        e.message = Some("Account locked after repeated failures".into());
        ids.push(g.push(e));
        t += g.rng.gen_range(30..90) * SEC_MS;
    }
    g.label(
        Family::LockoutStorm,
        ids,
        vec![("source.system", "sso".to_owned())],
        format!("{} accounts locked out within minutes", users.len()),
    );
}

/// Picks among `candidates` (user, patient) one whose user works some day.
fn snoop(g: &mut Gen, candidates: &[(usize, usize)], k: usize) -> Option<(usize, usize, u32)> {
    if candidates.is_empty() {
        return None;
    }
    for attempt in 0..200 {
        let (u, p) = candidates[(k + attempt) % candidates.len()];
        if g.practice.reserved.contains(&u) {
            continue;
        }
        let d = g.rng.gen_range(0..g.days);
        if g.practice.staff[u].works(&g.clock, d) && g.clock.weekday(d) < 5 {
            return Some((u, p, d));
        }
    }
    None
}

fn snoop_label(g: &mut Gen, family: Family, u: usize, p: usize, d: u32, note: &str) {
    let t = in_shift(g, u, d, 60 * MIN_MS);
    let n = g.rng.gen_range(1..3);
    let ids = views(g, u, d, t, p, n, None);
    if ids.is_empty() {
        return;
    }
    let (un, pn) = (user(g, u), patient_id(g, p));
    g.label(
        family,
        ids,
        vec![("actor.user", un), ("patient.id", pn)],
        note.to_owned(),
    );
}

fn same_last_name(g: &mut Gen, k: usize) {
    let c: Vec<(usize, usize)> = g
        .practice
        .relatives
        .iter()
        .filter_map(|&p| match g.practice.patients[p].kind {
            PatientKind::Relative { staff } => Some((staff, p)),
            _ => None,
        })
        .collect();
    if let Some((u, p, d)) = snoop(g, &c, k) {
        snoop_label(
            g,
            Family::SameLastName,
            u,
            p,
            d,
            "user opened the chart of a patient with the same last name",
        );
    }
}

fn coworker_record(g: &mut Gen, k: usize) {
    let n = g.practice.staff.len();
    let mut c = Vec::new();
    for &p in &g.practice.employees {
        if let PatientKind::Employee { staff } = g.practice.patients[p].kind {
            for u in 0..n {
                if u != staff && DAY_ROLES.contains(&g.practice.staff[u].role) {
                    c.push((u, p));
                }
            }
        }
    }
    c.shuffle(&mut g.rng);
    if let Some((u, p, d)) = snoop(g, &c, k) {
        snoop_label(
            g,
            Family::CoworkerRecord,
            u,
            p,
            d,
            "user opened a coworker's chart",
        );
    }
}

/// Every second one (k odd) by a physician who is not the VIP's: the hard
/// case for a rule that only looks at roles.
fn vip_no_treatment(g: &mut Gen, k: usize) {
    let roles: &[Role] = if k % 2 == 1 {
        &[Role::Physician]
    } else {
        &[
            Role::Nurse,
            Role::FrontDesk,
            Role::Billing,
            Role::MedicalAssistant,
        ]
    };
    let n = g.practice.staff.len();
    let mut c = Vec::new();
    for &p in &g.practice.vips {
        for u in 0..n {
            if roles.contains(&g.practice.staff[u].role) && !g.practice.benign(u, p) {
                c.push((u, p));
            }
        }
    }
    c.shuffle(&mut g.rng);
    if let Some((u, p, d)) = snoop(g, &c, k) {
        snoop_label(
            g,
            Family::VipNoTreatment,
            u,
            p,
            d,
            "VIP chart opened without a treatment relationship",
        );
    }
}

fn patient_volume(g: &mut Gen) {
    let Some((u, d)) = worker(
        g,
        &[Role::FrontDesk, Role::Billing, Role::MedicalAssistant],
        0,
    ) else {
        return;
    };
    let (s, _) = g.practice.staff[u].shift_ms(&g.clock, d);
    let mut t = s + g.rng.gen_range(30..90) * MIN_MS;
    let want = g.rng.gen_range(35..50);
    let mut seen = Vec::new();
    let mut ids = Vec::new();
    let mut tries = 0;
    while seen.len() < want && tries < 200 {
        tries += 1;
        let p = plain(g);
        if seen.contains(&p) {
            continue;
        }
        if let Some(i) = g.access(
            u,
            d,
            t,
            "view",
            Some(p),
            "demographics",
            "pm",
            "Viewed demographics",
        ) {
            ids.push(i);
            seen.push(p);
        }
        t += g.rng.gen_range(40..70) * SEC_MS;
    }
    let un = user(g, u);
    g.label(
        Family::PatientVolume,
        ids,
        vec![("actor.user", un)],
        format!("{} distinct patients in under an hour", seen.len()),
    );
}

fn large_export(g: &mut Gen, in_hours: bool) {
    let Some((u, d)) = worker(g, &[Role::Billing, Role::Compliance, Role::FrontDesk], 0) else {
        return;
    };
    let i = if in_hours {
        let t = in_shift(g, u, d, 30 * MIN_MS);
        let records = g.rng.gen_range(1500..25_000);
        export(g, u, d, t, records, "Exported patient list")
    } else {
        let from =
            g.clock.day_start(d) + g.rng.gen_range((AFTER_HOURS_FROM + 1) * 60..23 * 60) * MIN_MS;
        let ip = g.practice.staff[u].ip.clone();
        own_session(g, u, d, from, from + 20 * MIN_MS, &ip);
        let records = g.rng.gen_range(40..400);
        export(g, u, d, from + 5 * MIN_MS, records, "Exported patient list")
    };
    if let Some(i) = i {
        let un = user(g, u);
        let note = if in_hours {
            "export of many records"
        } else {
            "export after hours"
        };
        g.label(
            Family::LargeExport,
            vec![i],
            vec![("actor.user", un)],
            note.into(),
        );
    }
}

fn after_hours_access(g: &mut Gen) {
    let Some((u, d)) = worker(
        g,
        &[Role::Nurse, Role::FrontDesk, Role::MedicalAssistant],
        super::labels::HABIT_LEARNING_DAYS,
    ) else {
        return;
    };
    let from = g.clock.day_start(d) + g.rng.gen_range(AFTER_HOURS_FROM * 60 + 30..23 * 60) * MIN_MS;
    let ip = g.practice.staff[u].ip.clone();
    own_session(g, u, d, from, from + 40 * MIN_MS, &ip);
    let mut ids = Vec::new();
    let mut t = from + 2 * MIN_MS;
    for _ in 0..g.rng.gen_range(2..5) {
        let p = plain(g);
        ids.extend(views(g, u, d, t, p, 1, None));
        t += g.rng.gen_range(2..6) * MIN_MS;
    }
    let un = user(g, u);
    g.label(
        Family::AfterHoursAccess,
        ids,
        vec![("actor.user", un)],
        "day-shift user opened charts at night".into(),
    );
}

fn break_glass(g: &mut Gen) {
    let Some((u, d)) = worker(g, &[Role::Physician, Role::Nurse], 0) else {
        return;
    };
    let p = plain(g);
    let t = in_shift(g, u, d, 60 * MIN_MS);
    let Some(bg) = (0..8).find_map(|k| {
        g.access(
            u,
            d,
            t + k * 10 * MIN_MS,
            "break_glass",
            Some(p),
            "chart",
            "ehr",
            "Emergency access to restricted chart",
        )
    }) else {
        return;
    };
    let bt = g.drafts[bg].t;
    g.drafts[bg].event.reason = Some("break_glass".into());
    g.drafts[bg].event.attrs =
        attrs([("justification", json!("patient unconscious in urgent care"))]);
    let mut ids = vec![bg];
    let n = g.rng.gen_range(1..3);
    ids.extend(views(g, u, d, bt + 30 * SEC_MS, p, n, Some("break_glass")));
    let (un, pn) = (user(g, u), patient_id(g, p));
    g.label(
        Family::BreakGlass,
        ids,
        vec![("actor.user", un), ("patient.id", pn)],
        "break-glass access".into(),
    );
}

fn privilege_escalation(g: &mut Gen, no_ticket: bool) {
    let admins = g.practice.of_role(Role::ItAdmin);
    let Some((a, d)) = worker(g, &[Role::ItAdmin], 0) else {
        return;
    };
    let t = in_shift(g, a, d, 60 * MIN_MS);
    let (target, fields, note) = if no_ticket {
        let others: Vec<usize> = (0..g.practice.staff.len())
            .filter(|u| !admins.contains(u) && !g.practice.reserved.contains(u))
            .collect();
        let Some(&o) = others.choose(&mut g.rng) else {
            return;
        };
        (
            o,
            attrs([("role", json!("admin"))]),
            "admin role granted without a change ticket",
        )
    } else {
        let f = attrs([("role", json!("admin")), ("change_ticket", ticket(g))]);
        (a, f, "user granted a role to itself")
    };
    let tu = user(g, target);
    if let Some(i) = admin(
        g,
        a,
        d,
        t,
        "role_grant",
        Some(tu.clone()),
        fields,
        "Granted role",
    ) {
        let un = user(g, a);
        g.label(
            Family::PrivilegeEscalation,
            vec![i],
            vec![("actor.user", un), ("target_user", tu)],
            note.into(),
        );
    }
}

fn audit_tampering(g: &mut Gen, config: bool) {
    let Some((a, d)) = worker(g, &[Role::ItAdmin], 0) else {
        return;
    };
    let t = in_shift(g, a, d, 60 * MIN_MS);
    let (action, fields, msg) = if config {
        (
            "audit_config_change",
            attrs([
                ("setting", json!("audit.ehr.chart_views")),
                ("from", json!("on")),
                ("to", json!("off")),
            ]),
            "Turned off chart-view auditing",
        )
    } else {
        (
            "retention_change",
            attrs([
                ("from", json!("6y")),
                ("to", json!("90d")),
                ("change_ticket", ticket(g)),
            ]),
            "Shortened audit log retention",
        )
    };
    if let Some(i) = admin(g, a, d, t, action, None, fields, msg) {
        let un = user(g, a);
        g.label(
            Family::AuditTampering,
            vec![i],
            vec![("actor.user", un)],
            msg.to_lowercase(),
        );
    }
}

fn new_ip(g: &mut Gen) {
    let Some((u, d)) = worker(g, &DAY_ROLES, NEW_IP_LEARNING_DAYS) else {
        return;
    };
    let ip = external_ip(g);
    let from = g.clock.day_start(d) + g.rng.gen_range(10 * 60..15 * 60) * MIN_MS;
    let to = from + g.rng.gen_range(10..30) * MIN_MS;
    let (li, lo) = own_session(g, u, d, from, to, &ip);
    let mut ids = vec![li];
    let p = plain(g);
    // Views in the new session (the normal one may run at the same time).
    let sid = g.sessions[u][d as usize]
        .last()
        .map(|s| s.id.clone())
        .unwrap_or_default();
    let mut e = event(
        from + 2 * MIN_MS,
        Category::Access,
        "view",
        Outcome::Success,
    );
    let mut actor = g.actor(u, Some((&sid, &ip)));
    actor.device = None;
    e.actor = Some(actor);
    e.patient = g.patient(p);
    e.resource = Some(crate::event::Resource {
        kind: "demographics".into(),
        id: None,
    });
    e.source = Some(source("ehr"));
    e.reason = Some("treatment".into());
    ids.push(g.push(e));
    ids.push(lo);
    let un = user(g, u);
    g.label(
        Family::NewIp,
        ids,
        vec![("actor.user", un), ("actor.ip", ip.clone())],
        format!("first login from {ip}"),
    );
}

fn disabled_account_login(g: &mut Gen) {
    let Some((u, t)) = g.practice.plan.leaver_login else {
        return;
    };
    let Some((a, d)) = admin_on_duty(g, t) else {
        return;
    };
    let un = user(g, u);
    let at = g.clock.day_start(d) + 9 * HOUR_MS + g.rng.gen_range(0..120) * MIN_MS;
    let f = attrs([("change_ticket", ticket(g)), ("why", json!("termination"))]);
    let Some(dis) = admin(
        g,
        a,
        d,
        at,
        "user_disable",
        Some(un.clone()),
        f,
        "Disabled account of a leaver",
    ) else {
        return;
    };
    let Some(back) = (d + 2..g.days).find(|&x| g.clock.weekday(x) < 5) else {
        return;
    };
    let from = g.clock.day_start(back) + g.rng.gen_range(10 * 60..15 * 60) * MIN_MS;
    let ip = g.practice.staff[u].ip.clone();
    let (li, lo) = own_session(g, u, back, from, from + 15 * MIN_MS, &ip);
    let p = plain(g);
    let mut ids = vec![dis, li];
    ids.extend(views(g, u, back, from + 3 * MIN_MS, p, 1, None));
    ids.push(lo);
    g.label(
        Family::DisabledAccountLogin,
        ids,
        vec![("actor.user", un)],
        "login to an account disabled days before".into(),
    );
}

/// An employee's account put on a security hold (disabled, not a leaver:
/// staff.csv has no termination date) logs in while disabled; IT re-enables
/// it after a password reset the same afternoon, and the person works
/// normally the next day. Placed after the person's last login of the day,
/// inside an IT admin's session.
fn security_hold_login(g: &mut Gen) {
    for _ in 0..50 {
        let Some((u, d)) = worker(g, &DAY_ROLES, 1) else {
            return;
        };
        if !(d + 1..g.days).any(|x| g.practice.staff[u].works(&g.clock, x)) {
            continue;
        }
        let Some(last_login) = g.sessions[u][d as usize].iter().map(|s| s.from).max() else {
            continue;
        };
        let admins: Vec<(usize, i64, i64)> = g
            .practice
            .of_role(Role::ItAdmin)
            .into_iter()
            .filter_map(|a| {
                let s = &g.sessions[a][d as usize];
                Some((a, s.first()?.from, s.last()?.to))
            })
            .collect();
        let Some(&(a, a_from, a_to)) = admins.choose(&mut g.rng) else {
            continue;
        };
        let at = (last_login + g.rng.gen_range(10..40) * MIN_MS).max(a_from + 5 * MIN_MS);
        // Disable, login 5-20 min later, re-enable 15-30 min after that.
        if at + 70 * MIN_MS > a_to || hour_of(at + 70 * MIN_MS) >= AFTER_HOURS_FROM {
            continue;
        }
        let un = user(g, u);
        let f = attrs([
            ("change_ticket", ticket(g)),
            ("why", json!("security hold: suspected phishing")),
        ]);
        let Some(dis) = admin(
            g,
            a,
            d,
            at,
            "user_disable",
            Some(un.clone()),
            f,
            "Disabled account (security hold)",
        ) else {
            continue;
        };
        let from = g.drafts[dis].t + g.rng.gen_range(5..20) * MIN_MS;
        let ip = g.practice.staff[u].ip.clone();
        let (li, _) = own_session(g, u, d, from, from + 4 * MIN_MS, &ip);
        let back = from + g.rng.gen_range(15..30) * MIN_MS;
        let f = attrs([
            ("change_ticket", ticket(g)),
            ("why", json!("password reset after security hold")),
        ]);
        admin(
            g,
            a,
            d,
            back,
            "user_enable",
            Some(un.clone()),
            f,
            "Re-enabled account after a password reset",
        );
        g.label(
            Family::DisabledAccountLogin,
            vec![dis, li],
            vec![("actor.user", un)],
            "login to an account on a security hold (disabled, not a leaver)".into(),
        );
        return;
    }
}

/// Labels the dormant user's first event after the absence.
pub(crate) fn label_dormant(g: &mut Gen) {
    let Some((u, _, back)) = g.practice.plan.dormant else {
        return;
    };
    let name = user(g, u);
    let from = g.clock.day_start(back);
    let first = g
        .drafts
        .iter()
        .enumerate()
        .filter(|(_, dr)| !dr.dropped && dr.t >= from)
        .filter(|(_, dr)| {
            dr.event.actor.as_ref().and_then(|a| a.user.as_deref()) == Some(name.as_str())
        })
        .min_by_key(|(i, dr)| (dr.t, *i))
        .map(|(i, _)| i);
    if let Some(i) = first {
        g.label(
            Family::DormantAccount,
            vec![i],
            vec![("actor.user", name)],
            "first activity after more than two weeks without any".into(),
        );
    }
}

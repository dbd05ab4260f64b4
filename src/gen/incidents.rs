//! Injected incidents, one or more of every [`Family`], each labeled.
//!
//! Privacy incidents pick (user, patient, time) that no explanation covers
//! (`facts::Facts`, the conservative side of labels.rs's definition), and
//! normal work never makes an unexplained access to a VIP, a coworker or a
//! patient with the user's surname, nor an unexplained one at night (see
//! `Practice::benign`), so every occurrence of a family's pattern in the
//! data is labeled (after-hours incidents are placed at hours the user
//! does not work, by a margin: labels.rs learns working hours per user). How many: about one per family per ten days (at least
//! one); `lockout_storm` one per fifteen days, the lab system's
//! `source_silent` one per thirty and the clearinghouse's one per ten;
//! `disabled_account_login` twice (a leaver from 16 days on, and an
//! employee's account on a security hold); `dormant_account` once per
//! fifteen days for accounts unused since before the run (16+ days) and
//! once when the run is long enough for a first week, 17 days away and a
//! return (27 to 30 days, by the start's weekday).

use rand::Rng;
use rand::seq::SliceRandom;
use serde_json::json;

use super::clock::{DAY_MS, HOUR_MS, MIN_MS, SEC_MS};
use super::facts::Facts;
use super::labels::{
    AFTER_HOURS_FROM, Family, HABIT_DAYS, HABIT_LEARNING_DAYS, HABIT_SESSION_GAP_H,
    LOCKOUT_AFTER_FAILURES, NEW_IP_LEARNING_DAYS, hour_of,
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
    /// Billing clearinghouse outages `[from, to)`: 3-4.5 h on weekday mornings.
    pub billing_silences: Vec<(i64, i64)>,
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
    for _ in 0..per_days(g.days, 10) {
        for _ in 0..50 {
            let d = g.rng.gen_range(0..g.days);
            let taken = |p: &Plan| {
                p.billing_silences.iter().any(|&(f, _)| {
                    f.div_euclid(super::clock::DAY_MS)
                        == (g.clock.day_start(d)).div_euclid(super::clock::DAY_MS)
                })
            };
            if g.clock.weekday(d) < 5 && d >= 2 && !taken(&plan) {
                let from = g.clock.day_start(d) + g.rng.gen_range(7 * 60 + 30..10 * 60) * MIN_MS;
                let to = from + g.rng.gen_range(3 * 60..4 * 60 + 30) * MIN_MS;
                plan.billing_silences.push((from, to));
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
    let mut facts = Facts::build(g);
    let n = per_days(g.days, 10);
    for k in 0..n {
        let k = k as usize;
        failed_login_burst(g);
        password_spray(g);
        same_last_name(g, &mut facts, k);
        coworker_record(g, &mut facts, k);
        vip_no_treatment(g, &mut facts, k);
        patient_volume(g, &mut facts, k);
        large_export(g, k.is_multiple_of(2));
        after_hours_access(g, &mut facts, k);
        break_glass(g, &facts);
        privilege_escalation(g, k.is_multiple_of(2));
        audit_tampering(g, k.is_multiple_of(2));
        new_ip(g, &facts);
    }
    for _ in 0..per_days(g.days, 15) {
        lockout_storm(g);
    }
    already_dormant(g, &mut facts);
    disabled_account_login(g, &facts);
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
/// A view of `p` by `u` at `t` in its session (or a little later, past a
/// session gap) if the pair is still unexplained then; recorded in `facts`.
fn snoop_view(
    g: &mut Gen,
    facts: &mut Facts,
    u: usize,
    d: u32,
    t: i64,
    p: usize,
    kind: &str,
) -> Option<usize> {
    snoop_more(g, facts, u, d, t, p, kind, true)
}

/// As [`snoop_view`]; `check: false` for the snoop's later views (the
/// first one already touched the pair).
#[allow(clippy::too_many_arguments)]
fn snoop_more(
    g: &mut Gen,
    facts: &mut Facts,
    u: usize,
    d: u32,
    t: i64,
    p: usize,
    kind: &str,
    check: bool,
) -> Option<usize> {
    if check && !facts.unexplained(g, u, p, t, t + 90 * MIN_MS) {
        return None;
    }
    let i = (0..8).find_map(|k| {
        g.access(
            u,
            d,
            t + k * 10 * MIN_MS,
            "view",
            Some(p),
            kind,
            "ehr",
            "Viewed chart",
        )
    })?;
    facts.touch(u, p, g.drafts[i].t);
    Some(i)
}

/// One to three chart views of `p` by `u` around `t`, labeled as `family`.
#[allow(clippy::too_many_arguments)]
fn snoop_at(
    g: &mut Gen,
    facts: &mut Facts,
    family: Family,
    u: usize,
    p: usize,
    d: u32,
    t: i64,
    note: &str,
) -> bool {
    let mut ids = Vec::new();
    let mut at = t;
    for kind in ["demographics", "problem_list", "medication_list"]
        .iter()
        .take(g.rng.gen_range(1..4))
    {
        match snoop_more(g, facts, u, d, at, p, kind, ids.is_empty()) {
            Some(i) => {
                at = g.drafts[i].t + g.rng.gen_range(30..120) * SEC_MS;
                ids.push(i);
            }
            None => break,
        }
    }
    if ids.is_empty() {
        return false;
    }
    let (un, pn) = (user(g, u), patient_id(g, p));
    g.label(
        family,
        ids,
        vec![("actor.user", un), ("patient.id", pn)],
        note.to_owned(),
    );
    true
}

/// Whether `u` opening `p` shows `family`'s pattern and no other privacy
/// family's (one label per incident).
fn only(g: &Gen, u: usize, p: usize, family: Family) -> bool {
    let rec = &g.practice.patients[p];
    let staff = &g.practice.staff[u];
    let same = rec.last_name == staff.last_name && rec.home_zip == staff.home_zip;
    let coworker = matches!(rec.kind, PatientKind::Employee { .. });
    let vip = matches!(rec.kind, PatientKind::Vip { .. });
    same == (family == Family::SameLastName)
        && coworker == (family == Family::CoworkerRecord)
        && vip == (family == Family::VipNoTreatment)
}

/// Tries (user, patient, day) candidates until one is unexplained in the
/// user's shift.
fn snoop_any(
    g: &mut Gen,
    facts: &mut Facts,
    family: Family,
    candidates: &[(usize, usize, Option<u32>)],
    note: &str,
) -> bool {
    for _ in 0..300 {
        let Some(&(u, p, day)) = candidates.get(g.rng.gen_range(0..candidates.len().max(1))) else {
            return false;
        };
        // Night staff would also be after hours: snoops are by day workers.
        if g.practice.reserved.contains(&u)
            || g.practice.own(u, p)
            || g.practice.staff[u].role == Role::NightNurse
            || !only(g, u, p, family)
        {
            continue;
        }
        let d = day.unwrap_or_else(|| g.rng.gen_range(0..g.days));
        if !g.practice.staff[u].works(&g.clock, d) || g.clock.weekday(d) >= 5 {
            continue;
        }
        let t = in_shift(g, u, d, 60 * MIN_MS);
        if snoop_at(g, facts, family, u, p, d, t, note) {
            return true;
        }
    }
    false
}

/// Even k: a relative (same surname and address) opened outside any visit.
/// Odd k: a relative opened on a day they visit another department (the
/// visit explains that department's staff, not the user's). A patient who
/// only shares the user's (common) surname, at another ZIP, is not this
/// family (labels.rs: the surname is corroborated by the address).
fn same_last_name(g: &mut Gen, facts: &mut Facts, k: usize) {
    if k % 2 == 1 {
        let c: Vec<(usize, usize, Option<u32>)> = g
            .day_visits
            .iter()
            .filter_map(|v| match g.practice.patients[v.patient].kind {
                PatientKind::Relative { staff }
                    if g.practice.staff[staff].department != v.department =>
                {
                    Some((staff, v.patient, Some(v.day)))
                }
                _ => None,
            })
            .collect();
        if snoop_any(
            g,
            facts,
            Family::SameLastName,
            &c,
            "user opened the chart of a relative (same surname and address) seen that day by another department",
        ) {
            return;
        }
    }
    let c: Vec<(usize, usize, Option<u32>)> = g
        .practice
        .relatives
        .iter()
        .filter_map(|&p| match g.practice.patients[p].kind {
            PatientKind::Relative { staff } => Some((staff, p, None)),
            _ => None,
        })
        .collect();
    snoop_any(
        g,
        facts,
        Family::SameLastName,
        &c,
        "user opened the chart of a relative (same surname and address) outside any visit",
    );
}

/// Even k: a coworker's chart opened on the coworker's visit day by
/// someone not on the visit's team. Odd k: a coworker with no visit that
/// day slipped into a nurse's morning huddle.
fn coworker_record(g: &mut Gen, facts: &mut Facts, k: usize) {
    if k % 2 == 1 && !g.huddles.is_empty() && !g.practice.employees.is_empty() {
        for _ in 0..100 {
            let h = g.huddles[g.rng.gen_range(0..g.huddles.len())].clone();
            let p = g.practice.employees[g.rng.gen_range(0..g.practice.employees.len())];
            if g.practice.reserved.contains(&h.nurse) || h.to <= h.from {
                continue;
            }
            if !only(g, h.nurse, p, Family::CoworkerRecord) {
                continue;
            }
            let t = g.rng.gen_range(h.from..h.to);
            if let Some(i) = snoop_view(g, facts, h.nurse, h.day, t, p, "problem_list") {
                let (un, pn) = (user(g, h.nurse), patient_id(g, p));
                g.label(
                    Family::CoworkerRecord,
                    vec![i],
                    vec![("actor.user", un), ("patient.id", pn)],
                    "a coworker with no visit that day opened during the morning huddle".into(),
                );
                return;
            }
        }
    }
    let n = g.practice.staff.len();
    let mut c: Vec<(usize, usize, Option<u32>)> = Vec::new();
    for v in &g.day_visits {
        if let PatientKind::Employee { staff } = g.practice.patients[v.patient].kind {
            for u in 0..n {
                let s = &g.practice.staff[u];
                if u != staff && DAY_ROLES.contains(&s.role) && s.department != v.department {
                    c.push((u, v.patient, Some(v.day)));
                }
            }
        }
    }
    if snoop_any(
        g,
        facts,
        Family::CoworkerRecord,
        &c,
        "user outside the visit's team opened a coworker's chart on the coworker's visit day",
    ) {
        return;
    }
    let mut c = Vec::new();
    for &p in &g.practice.employees {
        for u in 0..n {
            if DAY_ROLES.contains(&g.practice.staff[u].role) {
                c.push((u, p, None));
            }
        }
    }
    snoop_any(
        g,
        facts,
        Family::CoworkerRecord,
        &c,
        "user opened a coworker's chart",
    );
}

/// k % 3 == 0: a physician who is not the VIP's; 1: a biller opening the
/// VIP's chart with no claim work; 2: a nurse of another department on the
/// VIP's visit day.
fn vip_no_treatment(g: &mut Gen, facts: &mut Facts, k: usize) {
    let n = g.practice.staff.len();
    let mut c: Vec<(usize, usize, Option<u32>)> = Vec::new();
    let role = [Role::Physician, Role::Billing, Role::Nurse][k % 3];
    if k % 3 == 2 {
        for v in &g.day_visits {
            if matches!(g.practice.patients[v.patient].kind, PatientKind::Vip { .. }) {
                for u in 0..n {
                    let s = &g.practice.staff[u];
                    if s.role == role && s.department != v.department {
                        c.push((u, v.patient, Some(v.day)));
                    }
                }
            }
        }
    }
    if c.is_empty() {
        for &p in &g.practice.vips {
            for u in 0..n {
                if g.practice.staff[u].role == role {
                    c.push((u, p, None));
                }
            }
        }
    }
    let note = match k % 3 {
        0 => "VIP chart opened by a physician who is not the VIP's",
        1 => "VIP chart opened by a biller with no claim of the VIP worked",
        _ => "VIP chart opened by a nurse of another department on the VIP's visit day",
    };
    snoop_any(g, facts, Family::VipNoTreatment, &c, note);
}

/// A random plain patient `u` has no explained access to during `[from, to]`
/// and does not share a surname with.
fn plain_for(g: &mut Gen, facts: &Facts, u: usize, from: i64, to: i64) -> Option<usize> {
    (0..400).find_map(|_| {
        let p = plain(g);
        (g.practice.benign(u, p) && facts.unexplained(g, u, p, from, to)).then_some(p)
    })
}

/// Even: a front desk, billing or assistant user pulls up 35-49 charts in
/// under an hour. Odd: a biller does it with no claims behind them (it
/// looks like a denial batch).
fn patient_volume(g: &mut Gen, facts: &mut Facts, k: usize) {
    let roles: &[Role] = if k % 2 == 1 {
        &[Role::Billing]
    } else {
        &[Role::FrontDesk, Role::Billing, Role::MedicalAssistant]
    };
    let Some((u, d)) = worker(g, roles, 0) else {
        return;
    };
    let (s, _) = g.practice.staff[u].shift_ms(&g.clock, d);
    let mut t = s + g.rng.gen_range(30..90) * MIN_MS;
    let want = g.rng.gen_range(35..50);
    let mut seen = Vec::new();
    let mut ids = Vec::new();
    let mut tries = 0;
    let (kind, system, msg) = if k % 2 == 1 {
        ("insurance_card", "pm", "Viewed insurance card")
    } else {
        ("demographics", "pm", "Viewed demographics")
    };
    while seen.len() < want && tries < 200 {
        tries += 1;
        let Some(p) = plain_for(g, facts, u, t, t + HOUR_MS) else {
            continue;
        };
        if seen.contains(&p) {
            continue;
        }
        if let Some(i) = g.access(u, d, t, "view", Some(p), kind, system, msg) {
            facts.touch(u, p, t);
            ids.push(i);
            seen.push(p);
        }
        t += g.rng.gen_range(40..70) * SEC_MS;
    }
    if seen.len() < super::labels::VOLUME_PATIENTS {
        // A small practice ran out of patients nothing explains for this
        // user: the accesses stay (below the threshold, no incident).
        return;
    }
    let un = user(g, u);
    g.label(
        Family::PatientVolume,
        ids,
        vec![("actor.user", un)],
        format!(
            "{} distinct patients in under an hour, none explained",
            seen.len()
        ),
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

/// Times of `u`'s successful events so far (the working-hours profile of
/// labels.rs's `after_hours_access`), sorted.
fn activity(g: &Gen, u: usize) -> Vec<i64> {
    let name = g.practice.staff[u].user.as_str();
    let mut out: Vec<i64> = g
        .drafts
        .iter()
        .filter(|d| {
            !d.dropped
                && d.event.outcome == Outcome::Success
                && d.event
                    .actor
                    .as_ref()
                    .is_some_and(|a| a.user.as_deref() == Some(name))
        })
        .map(|d| d.t)
        .collect();
    out.sort_unstable();
    out
}

/// An after-hours incident keeps this far from the user's working hours
/// (the habit's 30 min tolerance plus its quarter-hour buckets, and room
/// for work injected later).
const HABIT_MARGIN_MIN: i64 = 90;

/// On how many of the [`HABIT_DAYS`] days before `at` (and earlier on
/// `at`'s own day) `times` come within `margin` of `at`'s time of day, or
/// two successive ones at most the session gap apart span it: the
/// conservative side of labels.rs's working hours (that counts earlier
/// days only, and needs [`HABIT_MIN_DAYS`] of them).
fn worked_days(times: &[i64], at: i64, margin: i64) -> usize {
    (0..=HABIT_DAYS)
        .filter(|&k| {
            let x = at - k * DAY_MS;
            let i = times.partition_point(|&y| y < x);
            let prev = i.checked_sub(1).map(|j| times[j]);
            let next = times.get(i).copied();
            prev.is_some_and(|p| x - p <= margin)
                || next.is_some_and(|n| n - x <= margin)
                || matches!((prev, next), (Some(p), Some(n)) if n - p <= HABIT_SESSION_GAP_H * HOUR_MS)
        })
        .count()
}

/// Length of an after-hours incident's session.
const NIGHT_SESSION_MIN: i64 = 40;

/// Starts of a night session of `u` after working day `d` that lie outside
/// `u`'s working hours (issue #12: hours are learnt per user, so a
/// physician's evening charting and on-call nights are theirs), in time
/// order: 20:00-23:00 or 00:00-05:00 (a session never crosses midnight nor
/// 06:00), once `u` has worked for the learning days.
fn unworked_nights(g: &mut Gen, u: usize, d: u32) -> Vec<i64> {
    let times = activity(g, u);
    let Some(&first) = times.first() else {
        return Vec::new();
    };
    let day = g.clock.day_start(d);
    let last_day = g.clock.day_start(g.days);
    let margin = HABIT_MARGIN_MIN * MIN_MS;
    let session = NIGHT_SESSION_MIN * MIN_MS;
    let mut out = Vec::new();
    for q in (AFTER_HOURS_FROM * 4..23 * 4 + 1).chain(24 * 4..29 * 4 + 1) {
        let from = day + q * 15 * MIN_MS + g.rng.gen_range(0..10) * MIN_MS;
        let to = from + session;
        let busy = [d, d + 1].iter().any(|&x| {
            g.sessions[u].get(x as usize).is_some_and(|ss| {
                ss.iter()
                    .any(|s| s.from < to + margin && from < s.to + margin)
            })
        });
        if to < last_day
            && from - first >= i64::from(HABIT_LEARNING_DAYS) * DAY_MS
            && !busy
            && worked_days(&times, from, margin) == 0
            && worked_days(&times, to, margin) == 0
        {
            out.push(from);
        }
    }
    out
}

/// Even: a day-shift user back at a workstation at night. Odd: a physician
/// from home over the VPN at night opening patients who are not theirs,
/// just past their own evening hours (it looks like evening charting).
/// Both at hours the user does not work (labels.rs: working hours are
/// learnt per user), after the habit learning days.
fn after_hours_access(g: &mut Gen, facts: &mut Facts, k: usize) {
    let home = k % 2 == 1;
    let roles: &[Role] = if home {
        &[Role::Physician]
    } else {
        &[Role::Nurse, Role::FrontDesk, Role::MedicalAssistant]
    };
    let mut pick = None;
    for _ in 0..100 {
        let Some((u, d)) = worker(g, roles, HABIT_LEARNING_DAYS) else {
            return;
        };
        let free = unworked_nights(g, u, d);
        if free.is_empty() {
            continue;
        }
        // The physician's: the first free hours after their evening.
        let i = if home {
            g.rng.gen_range(0..free.len().min(2))
        } else {
            g.rng.gen_range(0..free.len())
        };
        pick = Some((u, d, free[i]));
        break;
    }
    let Some((u, d, from)) = pick else {
        return;
    };
    let ip = if home {
        g.practice.staff[u].vpn_ip.clone()
    } else {
        None
    }
    .unwrap_or_else(|| g.practice.staff[u].ip.clone());
    own_session(g, u, d, from, from + NIGHT_SESSION_MIN * MIN_MS, &ip);
    let mut ids = Vec::new();
    let mut t = from + 2 * MIN_MS;
    for _ in 0..g.rng.gen_range(2..5) {
        if let Some(p) = plain_for(g, facts, u, t, t + 10 * MIN_MS) {
            ids.extend(snoop_view(g, facts, u, d, t, p, "problem_list"));
        }
        t += g.rng.gen_range(2..6) * MIN_MS;
    }
    let un = user(g, u);
    let note = if home {
        "physician opened charts of patients not theirs from home at night, past their own evening hours"
    } else {
        "day-shift user opened charts at night, at hours they do not work"
    };
    g.label(
        Family::AfterHoursAccess,
        ids,
        vec![("actor.user", un)],
        note.into(),
    );
}

/// Accounts unused since before the run (hired long ago, never active in
/// it) used again: a login at the old workstation and a few charts.
fn already_dormant(g: &mut Gen, facts: &mut Facts) {
    for (u, d) in g.practice.plan.already_dormant.clone() {
        let from = g.clock.day_start(d) + g.rng.gen_range(10 * 60..15 * 60) * MIN_MS;
        let to = from + g.rng.gen_range(15..30) * MIN_MS;
        let ip = g.practice.staff[u].ip.clone();
        let (li, lo) = own_session(g, u, d, from, to, &ip);
        let mut ids = vec![li];
        let mut t = from + 2 * MIN_MS;
        for _ in 0..g.rng.gen_range(1..4) {
            if let Some(p) = plain_for(g, facts, u, t, t + 10 * MIN_MS) {
                ids.extend(snoop_view(g, facts, u, d, t, p, "demographics"));
            }
            t += g.rng.gen_range(2..5) * MIN_MS;
        }
        ids.push(lo);
        let un = user(g, u);
        g.label(
            Family::DormantAccount,
            ids,
            vec![("actor.user", un)],
            "an account unused since before the run (hired long ago) logs in".into(),
        );
    }
}
fn break_glass(g: &mut Gen, facts: &Facts) {
    let Some((u, d)) = worker(g, &[Role::Physician, Role::Nurse], 0) else {
        return;
    };
    let t = in_shift(g, u, d, 60 * MIN_MS);
    let Some(p) = plain_for(g, facts, u, t, t + 90 * MIN_MS) else {
        return;
    };
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

fn new_ip(g: &mut Gen, facts: &Facts) {
    let Some((u, d)) = worker(g, &DAY_ROLES, NEW_IP_LEARNING_DAYS) else {
        return;
    };
    let ip = external_ip(g);
    let from = g.clock.day_start(d) + g.rng.gen_range(10 * 60..15 * 60) * MIN_MS;
    let to = from + g.rng.gen_range(10..30) * MIN_MS;
    let (li, lo) = own_session(g, u, d, from, to, &ip);
    let mut ids = vec![li];
    let Some(p) = plain_for(g, facts, u, from, to) else {
        return;
    };
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

fn disabled_account_login(g: &mut Gen, facts: &Facts) {
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
    let Some(p) = plain_for(g, facts, u, from, from + 15 * MIN_MS) else {
        return;
    };
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

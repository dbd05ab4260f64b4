//! Normal work: sessions, appointment-driven chart access, background work
//! per role, night shifts, integrations, IT administration, and the lab
//! feed's outage.

use rand::Rng;
use rand::seq::SliceRandom;
use serde_json::{Value, json};

use super::clock::{HOUR_MS, MIN_MS, SEC_MS, timestamp};
use super::incidents::Plan;
use super::labels::Family;
use super::practice::{
    PatientKind, Role, SERVICES, SVC_BACKUP, SVC_CLAIMS, SVC_EDI, SVC_ERX, SVC_FHIR, SVC_LIS,
    SVC_PORTAL,
};
use super::{ClaimRec, DayVisit, Gen, Huddle, Session, attrs, event, source};
use crate::event::{Category, Outcome, Resource};

/// Builds every working shift's sessions and emits their logins (with the
/// occasional mistyped password), MFA challenges, timeouts and logouts.
/// `plan.login_after_failures` turns one shift's login into that incident.
pub(crate) fn sessions(g: &mut Gen, plan: &Plan) {
    let n_staff = g.practice.staff.len();
    g.sessions = vec![vec![Vec::new(); g.days as usize]; n_staff];
    for u in 0..n_staff {
        for d in 0..g.days {
            if !g.practice.staff[u].works(&g.clock, d) {
                continue;
            }
            let (s, e) = g.practice.staff[u].shift_ms(&g.clock, d);
            let vpn = g.practice.staff[u]
                .vpn
                .as_ref()
                .filter(|(wd, _)| *wd == g.clock.weekday(d))
                .map(|(_, ip)| ip.clone());
            let ip = vpn
                .clone()
                .unwrap_or_else(|| g.practice.staff[u].ip.clone());
            let login_t = s - g.rng.gen_range(0..10 * MIN_MS);
            let end_t = e + g.rng.gen_range(0..20 * MIN_MS);
            let incident = plan.login_after_failures.contains(&(u, d));
            let mut spans = vec![(login_t, end_t)];
            if !incident && g.rng.gen_bool(0.3) {
                let m = g.rng.gen_range(s + HOUR_MS..e - HOUR_MS);
                let back = m + g.rng.gen_range(MIN_MS..8 * MIN_MS);
                spans = vec![(login_t, m), (back, end_t)];
            }
            let last = spans.len() - 1;
            for (i, (from, to)) in spans.into_iter().enumerate() {
                let sid = g.session_id();
                let typos = if incident && i == 0 {
                    super::labels::FAILURES_BEFORE_SUCCESS
                } else {
                    match g.rng.gen_range(0..1000) {
                        0..=39 => 1,
                        40..=49 => 2,
                        _ => 0,
                    }
                };
                let mut ids = Vec::new();
                let step = g.rng.gen_range(15..40) * SEC_MS;
                for k in 0..typos {
                    let t = from - (typos - k) as i64 * step;
                    ids.push(login(g, u, t, &ip, None, Outcome::Failure));
                }
                if vpn.is_some() {
                    let mut m = event(
                        from - 5 * SEC_MS,
                        Category::Auth,
                        "mfa_challenge",
                        Outcome::Success,
                    );
                    m.actor = Some(g.actor(u, Some((&sid, &ip))));
                    m.source = Some(source("sso"));
                    m.attrs = attrs([("method", json!("push"))]);
                    m.message = Some("MFA push approved".into());
                    g.push(m);
                }
                ids.push(login(g, u, from, &ip, Some(&sid), Outcome::Success));
                if incident && i == 0 {
                    let user = g.practice.staff[u].user.clone();
                    g.label(
                        Family::LoginAfterFailures,
                        ids,
                        vec![("actor.user", user)],
                        format!("{typos} failed logins, then a successful one, at the user's workstation"),
                    );
                }
                let action = if i < last || g.rng.gen_bool(0.3) {
                    "session_timeout"
                } else {
                    "logout"
                };
                let mut out = event(to, Category::Auth, action, Outcome::Success);
                out.actor = Some(g.actor(u, Some((&sid, &ip))));
                out.source = Some(source("sso"));
                g.push(out);
                g.sessions[u][d as usize].push(Session {
                    from,
                    to,
                    id: sid,
                    ip: ip.clone(),
                });
            }
        }
    }
}

/// An `auth/login` of staff member `u` from `ip` (with a session when it succeeds).
pub(crate) fn login(
    g: &mut Gen,
    u: usize,
    t: i64,
    ip: &str,
    session: Option<&str>,
    outcome: Outcome,
) -> usize {
    let mut e = event(t, Category::Auth, "login", outcome);
    let mut actor = g.actor(u, session.map(|s| (s, ip)));
    actor.ip = Some(ip.to_owned());
    if outcome == Outcome::Success {
        actor.mfa = Some(true);
        e.message = Some("Signed in".into());
    } else {
        e.message = Some("Sign-in failed".into());
        e.attrs = attrs([("failure", json!("bad_password"))]);
    }
    e.actor = Some(actor);
    e.source = Some(source("sso"));
    g.push(e)
}

const CHART_PARTS: [(&str, &str); 5] = [
    ("problem_list", "Viewed problem list"),
    ("medication_list", "Viewed medication list"),
    ("lab_result", "Viewed lab result"),
    ("allergy_list", "Viewed allergy list"),
    ("imaging_report", "Viewed imaging report"),
];

/// The day's work of everyone, and the service accounts' traffic.
pub(crate) fn work(g: &mut Gen) {
    let physicians = g.practice.of_role(Role::Physician);
    // Recent visits per physician: (day, patient).
    let mut recent: Vec<Vec<(u32, usize)>> = vec![Vec::new(); g.practice.staff.len()];
    for d in 0..g.days {
        let wd = g.clock.weekday(d);
        if wd < 6 {
            for &ph in &physicians {
                if g.practice.staff[ph].works(&g.clock, d) {
                    clinic_day(g, d, ph, &mut recent[ph]);
                }
            }
        }
        for (u, seen) in recent.iter().enumerate() {
            if g.practice.staff[u].works(&g.clock, d) {
                background(g, u, d, seen);
            }
        }
        huddles(g, d);
        denial_batch(g, d);
        for &ph in &physicians {
            if g.practice.staff[ph].works(&g.clock, d) {
                evening_charting(g, d, ph, &recent[ph]);
            }
        }
        on_call_night(g, d, &physicians);
        phone_checks(g, d, &recent);
        services(g, d);
    }
    lifecycle(g);
}

/// The morning huddle: one nurse of each clinical department looks at the
/// chart of every patient the department sees that day (booked before it).
fn huddles(g: &mut Gen, d: u32) {
    if g.clock.weekday(d) >= 5 {
        return;
    }
    let mut depts: Vec<&'static str> = Vec::new();
    for v in g.day_visits.iter().filter(|v| v.day == d) {
        if !depts.contains(&v.department) {
            depts.push(v.department);
        }
    }
    for dept in depts {
        let nurses: Vec<usize> = (0..g.practice.staff.len())
            .filter(|&u| {
                let s = &g.practice.staff[u];
                s.role == Role::Nurse && s.department == dept && s.works(&g.clock, d)
            })
            .collect();
        let Some(nu) = pick(g, &nurses) else {
            continue;
        };
        let (s, _) = g.practice.staff[nu].shift_ms(&g.clock, d);
        let start = s + g.rng.gen_range(5..20) * MIN_MS;
        let patients: Vec<usize> = g
            .day_visits
            .iter()
            .filter(|v| v.day == d && v.department == dept && v.booked_at < start)
            .map(|v| v.patient)
            .collect();
        let mut t = start;
        let mut seen: Vec<usize> = Vec::new();
        for p in patients {
            if seen.contains(&p) || g.practice.own(nu, p) {
                continue;
            }
            seen.push(p);
            g.access(
                nu,
                d,
                t,
                "view",
                Some(p),
                "problem_list",
                "ehr",
                "Huddle: reviewed today's patient",
            );
            t += g.rng.gen_range(10..35) * SEC_MS;
        }
        if !seen.is_empty() {
            g.huddles.push(Huddle {
                nurse: nu,
                day: d,
                from: start,
                to: t,
            });
        }
    }
}

/// About one working day in five, a biller works a batch of 30-45 denied
/// claims of the last weeks in about an hour.
fn denial_batch(g: &mut Gen, d: u32) {
    if g.clock.weekday(d) >= 5 || !g.rng.gen_bool(0.2) {
        return;
    }
    let billers: Vec<usize> = g
        .practice
        .of_role(Role::Billing)
        .into_iter()
        .filter(|&b| g.practice.staff[b].works(&g.clock, d))
        .collect();
    let Some(b) = pick(g, &billers) else {
        return;
    };
    let mut claims: Vec<(usize, String)> = g
        .claims
        .iter()
        .filter(|c| c.day + 2 <= d && c.day + 20 >= d && !g.practice.own(b, c.patient))
        .map(|c| (c.patient, c.id.clone()))
        .collect();
    if claims.len() < 30 {
        return;
    }
    claims.shuffle(&mut g.rng);
    claims.truncate(g.rng.gen_range(30..46));
    let (s, _) = g.practice.staff[b].shift_ms(&g.clock, d);
    let mut t = s + g.rng.gen_range(60..180) * MIN_MS;
    for (p, id) in claims {
        work_claim(g, b, d, t, p, &id, true);
        t += g.rng.gen_range(60..95) * SEC_MS;
    }
}

/// A session of `u` from home (its VPN address, with an MFA push) or from
/// its phone (a new carrier address each time) at `[from, to)`, stored as
/// a session of shift day `d`.
fn remote_session(g: &mut Gen, u: usize, d: u32, from: i64, to: i64, phone: bool) -> bool {
    let ip = match (
        phone,
        g.practice.staff[u].mobile,
        &g.practice.staff[u].vpn_ip,
    ) {
        (true, Some((a, b)), _) => format!(
            "{a}.{b}.{}.{}",
            g.rng.gen_range(0..256),
            g.rng.gen_range(1..255)
        ),
        (false, _, Some(ip)) => ip.clone(),
        _ => return false,
    };
    if !phone {
        let mut m = event(
            from - 5 * SEC_MS,
            Category::Auth,
            "mfa_challenge",
            Outcome::Success,
        );
        m.actor = Some(g.actor(u, None));
        if let Some(a) = m.actor.as_mut() {
            a.ip = Some(ip.clone());
        }
        m.source = Some(source("sso"));
        m.attrs = attrs([("method", json!("push"))]);
        m.message = Some("MFA push approved".into());
        g.push(m);
    }
    let (li, _) = super::incidents::own_session(g, u, d, from, to, &ip);
    if phone && let Some(a) = g.drafts[li].event.actor.as_mut() {
        a.device = Some(format!("phone-{}", g.practice.staff[u].user));
    }
    true
}

/// Some evenings a physician finishes the day's notes from home over the VPN.
fn evening_charting(g: &mut Gen, d: u32, ph: usize, recent: &[(u32, usize)]) {
    let today: Vec<usize> = recent
        .iter()
        .filter(|&&(v, _)| v == d)
        .map(|&(_, p)| p)
        .collect();
    if today.is_empty() || !g.rng.gen_bool(0.3) {
        return;
    }
    let from = g.clock.day_start(d) + g.rng.gen_range(19 * 60 + 30..21 * 60 + 30) * MIN_MS;
    let to = from + g.rng.gen_range(20..40) * MIN_MS;
    if !remote_session(g, ph, d, from, to, false) {
        return;
    }
    let mut t = from + 2 * MIN_MS;
    for _ in 0..g.rng.gen_range(2..7) {
        let p = today[g.rng.gen_range(0..today.len())];
        g.access(
            ph,
            d,
            t,
            "update",
            Some(p),
            "note",
            "ehr",
            "Finished encounter note from home",
        );
        t += g.rng.gen_range(2..5) * MIN_MS;
        if t + MIN_MS >= to {
            break;
        }
    }
}

/// The physician on call for the night after day `d`: the rota's next one
/// who is not away.
fn on_call(g: &Gen, d: u32, physicians: &[usize]) -> Option<usize> {
    let n = physicians.len();
    (0..n)
        .map(|k| physicians[(d as usize + k) % n])
        .find(|&ph| {
            let s = &g.practice.staff[ph];
            !s.absent.iter().any(|&(a, b)| (a..b).contains(&d))
                && s.gone_from.is_none_or(|x| d < x)
                && !g.practice.reserved.contains(&ph)
        })
}

/// Urgent care at night: night nurses (role `nurse`) open encounters whose
/// clinician is the physician on call and whose care team is both; the
/// physician on call opens some of them from home or a phone.
fn on_call_night(g: &mut Gen, d: u32, physicians: &[usize]) {
    let oncall = on_call(g, d, physicians);
    let nurses: Vec<usize> = g
        .practice
        .of_role(Role::NightNurse)
        .into_iter()
        .filter(|&u| g.practice.staff[u].works(&g.clock, d))
        .collect();
    for nu in nurses {
        let (s, e) = g.practice.staff[nu].shift_ms(&g.clock, d);
        let nurse_user = g.practice.staff[nu].user.clone();
        for _ in 0..g.rng.gen_range(3..9) {
            let p = any_patient(g, nu);
            let mut t = g.rng.gen_range(s + 30 * MIN_MS..e - 90 * MIN_MS);
            // Every access of one urgent visit falls on the visit's UTC day.
            let tod = t.rem_euclid(24 * HOUR_MS);
            if tod > 22 * HOUR_MS + 30 * MIN_MS {
                t += 24 * HOUR_MS - tod + 30 * MIN_MS;
            }
            let clinician =
                oncall.map_or_else(|| nurse_user.clone(), |o| g.practice.staff[o].user.clone());
            let mut care_team = vec![nurse_user.clone()];
            if clinician != nurse_user {
                care_team.push(clinician.clone());
            }
            let n = g.next_id();
            let Some(i) = g.access(
                nu,
                d,
                t,
                "create",
                Some(p),
                "encounter",
                "ehr",
                "Opened urgent-care encounter",
            ) else {
                continue;
            };
            g.drafts[i].event.resource = Some(Resource {
                kind: "encounter".into(),
                id: Some(format!("enc-{n}")),
            });
            g.drafts[i].event.attrs = attrs([
                ("clinician", json!(clinician)),
                ("scheduled_for", json!(timestamp(t).to_string())),
                ("department", json!("urgent_care")),
                ("care_team", json!(care_team)),
            ]);
            for _ in 0..g.rng.gen_range(1..4) {
                let (kind, msg) = CHART_PARTS[g.rng.gen_range(0..CHART_PARTS.len())];
                let at = t + g.rng.gen_range(2..30) * MIN_MS;
                g.access(nu, d, at, "view", Some(p), kind, "ehr", msg);
            }
            let at = t + g.rng.gen_range(30..50) * MIN_MS;
            g.access(
                nu,
                d,
                at,
                "update",
                Some(p),
                "note",
                "ehr",
                "Charted urgent-care note",
            );
            if let Some(o) = oncall
                && g.rng.gen_bool(0.4)
            {
                let from = t + g.rng.gen_range(5..15) * MIN_MS;
                let to = from + g.rng.gen_range(10..25) * MIN_MS;
                let phone = g.practice.staff[o].mobile.is_some() && g.rng.gen_bool(0.6);
                if remote_session(g, o, d, from, to, phone) {
                    g.access(
                        o,
                        d,
                        from + MIN_MS,
                        "view",
                        Some(p),
                        "problem_list",
                        "ehr",
                        "On call: reviewed urgent-care patient",
                    );
                    g.access(
                        o,
                        d,
                        from + 4 * MIN_MS,
                        "create",
                        Some(p),
                        "order",
                        "ehr",
                        "On call: ordered by phone",
                    );
                }
            }
        }
    }
}

/// Staff with a phone look at it before their shift now and then (always
/// on their first working day): physicians at a recent patient's results.
fn phone_checks(g: &mut Gen, d: u32, recent: &[Vec<(u32, usize)>]) {
    for (u, seen) in recent.iter().enumerate() {
        let s = &g.practice.staff[u];
        if s.mobile.is_none() || !s.works(&g.clock, d) || g.practice.reserved.contains(&u) {
            continue;
        }
        let first = (0..d).all(|x| !g.practice.staff[u].works(&g.clock, x));
        if !first && !g.rng.gen_bool(0.4) {
            continue;
        }
        let from = g.clock.day_start(d) + g.rng.gen_range(6 * 60 + 15..7 * 60 + 10) * MIN_MS;
        let (shift_start, _) = g.practice.staff[u].shift_ms(&g.clock, d);
        if from + 15 * MIN_MS > shift_start - 10 * MIN_MS {
            continue;
        }
        if !remote_session(g, u, d, from, from + 10 * MIN_MS, true) {
            continue;
        }
        if let Some(&(_, p)) = seen.iter().rev().find(|&&(v, _)| v < d) {
            g.access(
                u,
                d,
                from + 2 * MIN_MS,
                "view",
                Some(p),
                "lab_result",
                "ehr",
                "Checked results on the phone",
            );
        }
    }
}

fn clinic_day(g: &mut Gen, d: u32, ph: usize, recent: &mut Vec<(u32, usize)>) {
    let saturday = g.clock.weekday(d) == 5;
    let (s, e) = g.practice.staff[ph].shift_ms(&g.clock, d);
    let day = g.clock.day_start(d);
    let first = s.max(day + 8 * HOUR_MS);
    let last = (e - 45 * MIN_MS).min(day + if saturday { 12 } else { 17 } * HOUR_MS);
    let n: i64 = if saturday {
        g.rng.gen_range(6..10)
    } else {
        g.rng.gen_range(14..22)
    };
    let spacing = (last - first) / n;
    let my_vips: Vec<usize> = g
        .practice
        .vips
        .iter()
        .copied()
        .filter(|&p| g.practice.patients[p].kind == PatientKind::Vip { physician: ph })
        .collect();
    for i in 0..n {
        let t = first + i * spacing + g.rng.gen_range(0..5 * MIN_MS);
        let roll = g.rng.gen_range(0..100);
        // Any bookable patient, surname or relative of staff or not: the
        // visit explains every access of its care team.
        let p = if !my_vips.is_empty() && roll < 8 {
            my_vips[g.rng.gen_range(0..my_vips.len())]
        } else if roll < 14 && !g.practice.employees.is_empty() {
            let p = g.practice.employees[g.rng.gen_range(0..g.practice.employees.len())];
            if g.practice.own(ph, p) {
                continue;
            }
            p
        } else {
            g.practice.bookable[g.rng.gen_range(0..g.practice.bookable.len())]
        };
        visit(g, d, ph, p, t);
        recent.push((d, p));
    }
    recent.retain(|&(v, _)| v + 14 >= d);
}

/// Staff of `roles` who work day `d`, cover `[from, to]` and may touch `p`
/// in unexplained background work.
fn on_duty(g: &Gen, roles: &[Role], d: u32, from: i64, to: i64, p: Option<usize>) -> Vec<usize> {
    (0..g.practice.staff.len())
        .filter(|&u| {
            let s = &g.practice.staff[u];
            roles.contains(&s.role)
                && s.covers(&g.clock, d, from, to)
                && p.is_none_or(|p| g.practice.benign(u, p))
        })
        .collect()
}

/// Staff of `roles` who work day `d`, cover `[from, to]` and are not patient `p`
/// (explained visit work touches any patient but one's own record).
fn team(g: &Gen, roles: &[Role], d: u32, from: i64, to: i64, p: usize) -> Vec<usize> {
    (0..g.practice.staff.len())
        .filter(|&u| {
            let s = &g.practice.staff[u];
            roles.contains(&s.role) && s.covers(&g.clock, d, from, to) && !g.practice.own(u, p)
        })
        .collect()
}

fn pick(g: &mut Gen, c: &[usize]) -> Option<usize> {
    c.choose(&mut g.rng).copied()
}

/// One visit of patient `p` with physician `ph` at `t` on day `d`: the
/// booking, check-in (`access/update` of the appointment), rooming (the
/// encounter, with its care team), the physician's chart work, note and
/// orders, the evening claim and billing's work on it.
fn visit(g: &mut Gen, d: u32, ph: usize, p: usize, t: i64) {
    let vip = matches!(g.practice.patients[p].kind, PatientKind::Vip { .. });
    let ph_user = g.practice.staff[ph].user.clone();
    let ph_dept = g.practice.staff[ph].department;
    let scheduled = timestamp(t).to_string();

    // The appointment, booked up to two weeks ahead; bookings made before
    // the run arrive as the portal's sync on day 0, before the visit.
    let k = g.rng.gen_range(0..=14);
    let before_run = k > d;
    let c = d.saturating_sub(k);
    let (cs, ce) = if c == d {
        (g.clock.day_start(d) + 7 * HOUR_MS, t - 20 * MIN_MS)
    } else {
        (
            g.clock.day_start(c) + 7 * HOUR_MS,
            g.clock.day_start(c) + 19 * HOUR_MS,
        )
    };
    let desk: Vec<usize> = if before_run || g.rng.gen_bool(0.35) {
        Vec::new()
    } else {
        (0..g.practice.staff.len())
            .filter(|&u| {
                let st = &g.practice.staff[u];
                st.role == Role::FrontDesk && st.works(&g.clock, c) && !g.practice.own(u, p)
            })
            .collect()
    };
    let appt_attrs = attrs([
        ("clinician", json!(ph_user)),
        ("scheduled_for", json!(scheduled)),
        ("department", json!(ph_dept)),
    ]);
    let appt_id = format!("apt-{}", g.next_id());
    let appt_res = Resource {
        kind: "appointment".into(),
        id: Some(appt_id),
    };
    let mut booked = None;
    if let Some(fd) = pick(g, &desk) {
        let (fs, fe) = g.practice.staff[fd].shift_ms(&g.clock, c);
        let (lo, hi) = (fs.max(cs) + MIN_MS, fe.min(ce) - MIN_MS);
        if lo < hi {
            let at = g.rng.gen_range(lo..hi);
            booked = g.access(
                fd,
                c,
                at,
                "create",
                Some(p),
                "appointment",
                "pm",
                "Booked appointment",
            );
        }
    }
    let booked_at = match booked {
        Some(i) => {
            g.drafts[i].event.attrs = appt_attrs;
            g.drafts[i].event.resource = Some(appt_res.clone());
            g.drafts[i].t
        }
        None => {
            let at = if before_run {
                let day0 = g.clock.day_start(0);
                (day0 + g.rng.gen_range(0..6 * 60) * MIN_MS).min(t - 30 * MIN_MS)
            } else if c == d {
                t - g.rng.gen_range(30..120) * MIN_MS
            } else {
                g.clock.day_start(c) + g.rng.gen_range(6 * 60..23 * 60) * MIN_MS
            };
            let mut e = g.service(SVC_PORTAL, at, Category::Access, "create");
            e.patient = g.patient(p);
            e.resource = Some(appt_res.clone());
            e.reason = Some("operations".into());
            e.message = Some(if before_run {
                "Appointment synced from the scheduling system".into()
            } else {
                "Patient booked an appointment online".into()
            });
            e.attrs = appt_attrs;
            g.push(e);
            at
        }
    };
    g.day_visits.push(DayVisit {
        day: d,
        department: ph_dept,
        patient: p,
        booked_at,
    });

    // Check-in at the front desk: an update of the appointment.
    let desk = team(g, &[Role::FrontDesk], d, t - 10 * MIN_MS, t, p);
    if let Some(fd) = pick(g, &desk) {
        let at = t - g.rng.gen_range(2..10) * MIN_MS;
        let checked_in = g.access(
            fd,
            d,
            at,
            "update",
            Some(p),
            "appointment",
            "pm",
            "Checked in patient",
        );
        if let Some(i) = checked_in {
            g.drafts[i].event.resource = Some(appt_res.clone());
            g.drafts[i].event.attrs = attrs([("status", json!("arrived"))]);
        }
        // Explained as a repeat of the check-in.
        if checked_in.is_some() && g.rng.gen_bool(0.3) {
            g.access(
                fd,
                d,
                at + 40 * SEC_MS,
                "update",
                Some(p),
                "insurance_card",
                "pm",
                "Updated insurance card",
            );
        }
    }
    // Rooming by a nurse of the department (or a medical assistant): the
    // encounter names its care team; vitals update the encounter.
    let mut nurses = team(g, &[Role::Nurse], d, t, t + 10 * MIN_MS, p);
    nurses.retain(|&u| g.practice.staff[u].department == ph_dept);
    if nurses.is_empty() {
        nurses = team(
            g,
            &[Role::Nurse, Role::MedicalAssistant],
            d,
            t,
            t + 10 * MIN_MS,
            p,
        );
    }
    let enc_res = Resource {
        kind: "encounter".into(),
        id: Some(format!("enc-{}", g.next_id())),
    };
    let mut encounter = None;
    let mut care_team = vec![ph_user.clone()];
    if let Some(nu) = pick(g, &nurses) {
        care_team.insert(0, g.practice.staff[nu].user.clone());
        let at = t + g.rng.gen_range(1..4) * MIN_MS;
        encounter = g.access(
            nu,
            d,
            at,
            "create",
            Some(p),
            "encounter",
            "ehr",
            "Roomed patient, opened encounter",
        );
        if encounter.is_some() {
            let vt = at + g.rng.gen_range(2..5) * MIN_MS;
            if let Some(i) = g.access(
                nu,
                d,
                vt,
                "update",
                Some(p),
                "encounter",
                "ehr",
                "Recorded vitals",
            ) {
                g.drafts[i].event.resource = Some(enc_res.clone());
            }
        }
    }
    if encounter.is_none() {
        care_team.truncate(1);
        encounter = g.access(
            ph,
            d,
            t + 2 * MIN_MS,
            "create",
            Some(p),
            "encounter",
            "ehr",
            "Opened encounter",
        );
    }
    if let Some(i) = encounter {
        g.drafts[i].event.attrs = attrs([
            ("clinician", json!(ph_user)),
            ("scheduled_for", json!(scheduled)),
            ("department", json!(ph_dept)),
            ("care_team", json!(care_team)),
        ]);
        g.drafts[i].event.resource = Some(enc_res);
    }

    // The physician's part of the visit.
    for _ in 0..g.rng.gen_range(2..5) {
        let (kind, msg) = CHART_PARTS[g.rng.gen_range(0..CHART_PARTS.len())];
        let at = t + g.rng.gen_range(5 * 60..20 * 60) * SEC_MS;
        g.access(ph, d, at, "view", Some(p), kind, "ehr", msg);
    }
    let at = t + g.rng.gen_range(20 * 60..28 * 60) * SEC_MS;
    g.access(
        ph,
        d,
        at,
        "update",
        Some(p),
        "note",
        "ehr",
        "Signed encounter note",
    );
    if g.rng.gen_bool(0.45) {
        let at = t + g.rng.gen_range(22 * 60..27 * 60) * SEC_MS;
        if let Some(i) = g.access(
            ph,
            d,
            at,
            "create",
            Some(p),
            "prescription",
            "erx",
            "Sent e-prescription",
        ) {
            let n = g.next_id();
            let ev = &mut g.drafts[i].event;
            ev.category = Category::Integration;
            ev.action = "eprescribe".into();
            ev.resource = Some(Resource {
                kind: "prescription".into(),
                id: Some(format!("rx-{n}")),
            });
            ev.attrs = attrs([("pharmacy", json!(format!("ncpdp-{:07}", n % 9_999_999)))]);
            let ack_t = at + g.rng.gen_range(2..20) * SEC_MS;
            let mut ack = g.service(SVC_ERX, ack_t, Category::Integration, "api_call");
            ack.patient = g.patient(p);
            ack.resource = Some(Resource {
                kind: "prescription".into(),
                id: Some(format!("rx-{n}")),
            });
            ack.message = Some("Prescription accepted by the network".into());
            g.push(ack);
            if g.rng.gen_bool(0.3) {
                let ph_on = on_duty(
                    g,
                    &[Role::Pharmacist],
                    d,
                    at + 30 * MIN_MS,
                    at + 31 * MIN_MS,
                    Some(p),
                );
                if let Some(rx) = pick(g, &ph_on) {
                    let (_, pe) = g.practice.staff[rx].shift_ms(&g.clock, d);
                    let when = g.rng.gen_range(at + 30 * MIN_MS..pe.max(at + 31 * MIN_MS));
                    g.access(
                        rx,
                        d,
                        when,
                        "view",
                        Some(p),
                        "prescription",
                        "erx",
                        "Reviewed prescription",
                    );
                }
            }
        }
    }
    if vip {
        vip_reviews(g, d, ph, p, t);
    }
    if g.rng.gen_bool(0.25) {
        let at = t + 24 * MIN_MS;
        g.access(ph, d, at, "create", Some(p), "order", "ehr", "Ordered labs");
        let res_t = at + g.rng.gen_range(2 * 60..6 * 60) * MIN_MS;
        let mut result = g.service(SVC_LIS, res_t, Category::Integration, "data_feed");
        result.patient = g.patient(p);
        result.resource = Some(Resource {
            kind: "result".into(),
            id: Some(format!("res-{}", g.next_id())),
        });
        result.records = Some(g.rng.gen_range(1..12));
        result.message = Some("Lab results delivered".into());
        g.push(result);
        let lab = on_duty(
            g,
            &[Role::Lab],
            d,
            at + 30 * MIN_MS,
            at + 90 * MIN_MS,
            Some(p),
        );
        if let Some(l) = pick(g, &lab) {
            let when = at + g.rng.gen_range(30..90) * MIN_MS;
            g.access(
                l,
                d,
                when,
                "view",
                Some(p),
                "order",
                "lis",
                "Received specimen",
            );
        }
    }
    // The claim goes out with the evening batch; billing works it later.
    let day = g.clock.day_start(d);
    let claim_t = day + 18 * HOUR_MS + 30 * MIN_MS + g.rng.gen_range(0..60) * MIN_MS;
    let mut claim = g.service(SVC_CLAIMS, claim_t, Category::Integration, "claim_submit");
    let n = g.next_id();
    let claim_id = format!("clm-{n}");
    claim.patient = g.patient(p);
    claim.resource = Some(Resource {
        kind: "claim".into(),
        id: Some(claim_id.clone()),
    });
    claim.attrs = attrs([(
        "payer",
        json!(["medicare", "aetna", "bcbs", "united"][(n % 4) as usize]),
    )]);
    claim.message = Some("Claim submitted to clearinghouse".into());
    g.push(claim);
    g.claims.push(ClaimRec {
        day: d,
        patient: p,
        id: claim_id.clone(),
    });
    if g.rng.gen_bool(0.4) {
        for next in d + 1..(d + 4).min(g.days) {
            let billers: Vec<usize> = (0..g.practice.staff.len())
                .filter(|&u| {
                    let s = &g.practice.staff[u];
                    s.role == Role::Billing && s.works(&g.clock, next) && !g.practice.own(u, p)
                })
                .collect();
            if let Some(b) = pick(g, &billers) {
                let (bs, be) = g.practice.staff[b].shift_ms(&g.clock, next);
                let at = g.rng.gen_range(bs + 15 * MIN_MS..be - 15 * MIN_MS);
                work_claim(g, b, next, at, p, &claim_id, false);
                break;
            }
        }
    }
    if g.rng.gen_bool(0.2) {
        let at = t + g.rng.gen_range(HOUR_MS..48 * HOUR_MS);
        let mut f = g.service(SVC_FHIR, at, Category::Integration, "fhir_read");
        f.patient = g.patient(p);
        f.resource = Some(Resource {
            kind: "Patient".into(),
            id: Some(g.practice.patients[p].id.clone()),
        });
        f.attrs = attrs([("client", json!("payer-app"))]);
        g.push(f);
    }
}

/// A biller works claim `claim` of patient `p` from the work queue (or a
/// denial batch): the claim, then the chart to code or fix it.
fn work_claim(g: &mut Gen, b: usize, d: u32, at: i64, p: usize, claim: &str, denied: bool) {
    let action = if denied { "update" } else { "view" };
    let msg = if denied {
        "Worked denied claim"
    } else {
        "Reviewed claim in work queue"
    };
    let Some(i) = g.access(b, d, at, action, Some(p), "claim", "pm", msg) else {
        return;
    };
    g.drafts[i].event.resource = Some(Resource {
        kind: "claim".into(),
        id: Some(claim.to_owned()),
    });
    if denied {
        g.drafts[i].event.attrs = attrs([("status", json!("denied"))]);
    }
    if denied || g.rng.gen_bool(0.5) {
        let (kind, msg) = if denied {
            ("insurance_card", "Checked coverage for a denied claim")
        } else {
            ("note", "Read the visit note to code the claim")
        };
        let at = at + g.rng.gen_range(20..60) * SEC_MS;
        g.access(b, d, at, "view", Some(p), kind, "pm", msg);
    }
}
/// A random bookable patient that user `u` may touch.
fn any_patient(g: &mut Gen, u: usize) -> usize {
    loop {
        let p = g.practice.bookable[g.rng.gen_range(0..g.practice.bookable.len())];
        if g.practice.benign(u, p) {
            return p;
        }
    }
}

/// Background work of user `u` on shift day `d`, by role.
fn background(g: &mut Gen, u: usize, d: u32, recent: &[(u32, usize)]) {
    let (s, e) = g.practice.staff[u].shift_ms(&g.clock, d);
    let role = g.practice.staff[u].role;
    let when = |g: &mut Gen| g.rng.gen_range(s + 10 * MIN_MS..e - 10 * MIN_MS);
    match role {
        Role::Physician => {
            for _ in 0..g.rng.gen_range(2..7) {
                if let Some(&(_, p)) = recent.choose(&mut g.rng) {
                    let t = when(g);
                    g.access(
                        u,
                        d,
                        t,
                        "view",
                        Some(p),
                        "lab_result",
                        "ehr",
                        "Reviewed result in inbox",
                    );
                }
            }
            let t = when(g);
            search(g, u, d, t);
        }
        Role::Nurse | Role::MedicalAssistant => {
            for _ in 0..g.rng.gen_range(3..10) {
                let p = any_patient(g, u);
                let t = when(g);
                g.access(
                    u,
                    d,
                    t,
                    "view",
                    Some(p),
                    "medication_list",
                    "ehr",
                    "Phone triage: viewed medications",
                );
                if g.rng.gen_bool(0.3) {
                    g.access(
                        u,
                        d,
                        t + 2 * MIN_MS,
                        "create",
                        Some(p),
                        "message",
                        "ehr",
                        "Queued refill request",
                    );
                }
            }
        }
        // Night nurses' work is urgent care (`on_call_night`).
        Role::NightNurse => {}
        Role::FrontDesk => {
            for _ in 0..g.rng.gen_range(4..9) {
                let t = when(g);
                search(g, u, d, t);
            }
            for _ in 0..g.rng.gen_range(2..6) {
                let p = any_patient(g, u);
                let t = when(g);
                g.access(
                    u,
                    d,
                    t,
                    "view",
                    Some(p),
                    "demographics",
                    "pm",
                    "Phone call: viewed demographics",
                );
            }
        }
        Role::Billing => {
            for _ in 0..g.rng.gen_range(8..20) {
                let p = any_patient(g, u);
                let t = when(g);
                g.access(
                    u,
                    d,
                    t,
                    "view",
                    Some(p),
                    "billing_statement",
                    "pm",
                    "Viewed statement",
                );
            }
            for _ in 0..g.rng.gen_range(0..3) {
                let p = any_patient(g, u);
                let t = when(g);
                if let Some(i) = g.access(
                    u,
                    d,
                    t,
                    "print",
                    Some(p),
                    "billing_statement",
                    "pm",
                    "Printed statement",
                ) {
                    g.drafts[i].event.records = Some(1);
                }
            }
            let first_biller = g
                .practice
                .of_role(Role::Billing)
                .into_iter()
                .find(|&b| g.practice.staff[b].works(&g.clock, d));
            if first_biller == Some(u) {
                let (t, r) = (when(g), g.rng.gen_range(20..800));
                export(g, u, d, t, r, "Exported daily billing report");
            }
        }
        Role::Lab => {
            for _ in 0..g.rng.gen_range(4..10) {
                let p = any_patient(g, u);
                let t = when(g);
                g.access(u, d, t, "view", Some(p), "order", "lis", "Viewed lab order");
            }
        }
        Role::Pharmacist => {
            for _ in 0..g.rng.gen_range(3..8) {
                let p = any_patient(g, u);
                let t = when(g);
                g.access(
                    u,
                    d,
                    t,
                    "view",
                    Some(p),
                    "prescription",
                    "erx",
                    "Reviewed prescription",
                );
            }
        }
        Role::ItAdmin => it_work(g, u, d, s, e),
        Role::Compliance => {
            for _ in 0..g.rng.gen_range(1..4) {
                let t = when(g);
                search(g, u, d, t);
            }
            if g.rng.gen_bool(0.1) {
                let (t, r) = (when(g), g.rng.gen_range(50..300));
                export(g, u, d, t, r, "Exported access report for review");
            }
        }
    }
}

fn search(g: &mut Gen, u: usize, d: u32, t: i64) {
    if let Some(i) = g.access(
        u,
        d,
        t,
        "search",
        None,
        "patient_index",
        "ehr",
        "Searched patients",
    ) {
        g.drafts[i].event.records = Some(g.rng.gen_range(1..25));
    }
}

/// An export of `records` records (no single patient).
pub(crate) fn export(
    g: &mut Gen,
    u: usize,
    d: u32,
    t: i64,
    records: u64,
    msg: &str,
) -> Option<usize> {
    let i = (0..8).find_map(|k| {
        g.access(
            u,
            d,
            t + k * 10 * MIN_MS,
            "export",
            None,
            "report",
            "ehr",
            msg,
        )
    })?;
    g.drafts[i].event.records = Some(records);
    Some(i)
}

/// An admin event by `u` in its session at `t` (or a little later, past a
/// session gap); `None` if the user has no session then.
#[allow(clippy::too_many_arguments)]
pub(crate) fn admin(
    g: &mut Gen,
    u: usize,
    d: u32,
    t: i64,
    action: &str,
    target: Option<String>,
    fields: Option<serde_json::Map<String, Value>>,
    msg: &str,
) -> Option<usize> {
    let (t, sid, ip) = (0..8).find_map(|k| {
        let at = t + k * 10 * MIN_MS;
        g.session_at(u, d, at)
            .map(|s| (at, s.id.clone(), s.ip.clone()))
    })?;
    let mut e = event(t, Category::Admin, action, Outcome::Success);
    e.actor = Some(g.actor(u, Some((&sid, &ip))));
    e.target_user = target;
    e.source = Some(source("admin_console"));
    e.attrs = fields;
    e.message = Some(msg.to_owned());
    Some(g.push(e))
}

pub(crate) fn ticket(g: &mut Gen) -> Value {
    json!(format!("CHG-{}", g.rng.gen_range(10_000..99_999)))
}

fn it_work(g: &mut Gen, u: usize, d: u32, s: i64, e: i64) {
    let n = g.practice.staff.len();
    for _ in 0..g.rng.gen_range(1..4) {
        let target = g.rng.gen_range(0..n);
        if g.practice.reserved.contains(&target) || target == u {
            continue;
        }
        let user = g.practice.staff[target].user.clone();
        let t = g.rng.gen_range(s + 15 * MIN_MS..e - 90 * MIN_MS);
        let fields = if g.rng.gen_bool(0.5) {
            attrs([("change_ticket", ticket(g))])
        } else {
            None
        };
        admin(
            g,
            u,
            d,
            t,
            "password_reset",
            Some(user),
            fields,
            "Reset password at the user's request",
        );
    }
    let roll = g.rng.gen_range(0..100);
    let t = g.rng.gen_range(s + 15 * MIN_MS..e - 90 * MIN_MS);
    let target = g.rng.gen_range(0..n);
    if target == u || g.practice.reserved.contains(&target) {
        return;
    }
    let user = g.practice.staff[target].user.clone();
    let role = ["admin", "scheduler", "billing_supervisor", "chart_auditor"][g.rng.gen_range(0..4)];
    match roll {
        0..=19 => {
            let f = attrs([("role", json!(role)), ("change_ticket", ticket(g))]);
            admin(
                g,
                u,
                d,
                t,
                "role_grant",
                Some(user),
                f,
                "Granted role under change ticket",
            );
        }
        20..=29 => {
            let f = attrs([("role", json!(role)), ("change_ticket", ticket(g))]);
            admin(
                g,
                u,
                d,
                t,
                "role_revoke",
                Some(user),
                f,
                "Revoked role under change ticket",
            );
        }
        30..=39 => {
            let f = attrs([
                ("setting", json!("ehr.session_idle_timeout")),
                ("change_ticket", ticket(g)),
            ]);
            admin(
                g,
                u,
                d,
                t,
                "config_change",
                None,
                f,
                "Changed configuration under change ticket",
            );
        }
        _ => {}
    }
}

/// The VIP's physician outside the visit itself (benign, inside the
/// treatment window): a look at the chart before the visit (the booking is
/// at least 30 minutes before it, so it is already in the data) and a review
/// of results on one of the next working days.
fn vip_reviews(g: &mut Gen, d: u32, ph: usize, p: usize, t: i64) {
    if g.rng.gen_bool(0.5) {
        // Bookings are at least 20 minutes before the visit.
        let at = t - g.rng.gen_range(5..15) * MIN_MS;
        g.access(
            ph,
            d,
            at,
            "view",
            Some(p),
            "problem_list",
            "ehr",
            "Reviewed chart before the visit",
        );
    }
    if g.rng.gen_bool(0.6) {
        let later =
            (d + 2..(d + 11).min(g.days)).find(|&x| g.practice.staff[ph].works(&g.clock, x));
        if let Some(x) = later {
            let (s, e) = g.practice.staff[ph].shift_ms(&g.clock, x);
            let at = g.rng.gen_range(s + 30 * MIN_MS..e - 30 * MIN_MS);
            g.access(
                ph,
                x,
                at,
                "view",
                Some(p),
                "lab_result",
                "ehr",
                "Reviewed results after the visit",
            );
        }
    }
}

/// The first IT admin with a session on day `from` or a later day.
pub(crate) fn admin_on_duty(g: &Gen, from: u32) -> Option<(usize, u32)> {
    let admins = g.practice.of_role(Role::ItAdmin);
    (from..g.days).find_map(|d| {
        admins
            .iter()
            .copied()
            .find(|&a| g.practice.staff[a].works(&g.clock, d))
            .map(|a| (a, d))
    })
}

/// The leaver's account re-enabled for a handover morning (staff.csv still
/// says terminated), a short session, and disabled again: benign, because
/// the login follows a re-enable.
fn handover(g: &mut Gen, u: usize, disabled_on: u32, user: &str) {
    let Some((a, d)) = admin_on_duty(g, disabled_on + 1) else {
        return;
    };
    let at = g.clock.day_start(d) + 9 * HOUR_MS + g.rng.gen_range(0..60) * MIN_MS;
    let f = attrs([("change_ticket", ticket(g)), ("why", json!("handover"))]);
    let Some(en) = admin(
        g,
        a,
        d,
        at,
        "user_enable",
        Some(user.to_owned()),
        f,
        "Re-enabled a leaver's account for a handover",
    ) else {
        return;
    };
    let from = g.drafts[en].t + g.rng.gen_range(10..30) * MIN_MS;
    let to = from + g.rng.gen_range(30..60) * MIN_MS;
    let ip = g.practice.staff[u].ip.clone();
    super::incidents::own_session(g, u, d, from, to, &ip);
    let f = attrs([
        ("change_ticket", ticket(g)),
        ("why", json!("handover done")),
    ]);
    admin(
        g,
        a,
        d,
        to + 10 * MIN_MS,
        "user_disable",
        Some(user.to_owned()),
        f,
        "Disabled account of a leaver after the handover",
    );
}

/// Benign account lifecycle: the leaver's disable (and a handover with a
/// re-enable), the leave's disable and re-enable.
fn lifecycle(g: &mut Gen) {
    if let Some((u, t)) = g.practice.plan.leaver
        && let Some((a, d)) = admin_on_duty(g, t)
    {
        let user = g.practice.staff[u].user.clone();
        let at = g.clock.day_start(d) + 9 * HOUR_MS + g.rng.gen_range(0..120) * MIN_MS;
        let f = attrs([("change_ticket", ticket(g)), ("why", json!("termination"))]);
        let disabled = admin(
            g,
            a,
            d,
            at,
            "user_disable",
            Some(user.clone()),
            f,
            "Disabled account of a leaver",
        );
        if disabled.is_some() {
            handover(g, u, d, &user);
        }
    }
    // The new hire's access is set up by IT the working day before.
    if let Some((u, first)) = g.practice.plan.new_hire
        && let Some((a, d)) = admin_on_duty(g, first.saturating_sub(3))
        && d < first
    {
        let user = g.practice.staff[u].user.clone();
        let role = g.practice.staff[u].role.as_str();
        let at = g.clock.day_start(d) + 11 * HOUR_MS;
        let f = attrs([("role", json!(role)), ("change_ticket", ticket(g))]);
        admin(
            g,
            a,
            d,
            at,
            "role_grant",
            Some(user),
            f,
            "Granted a new hire's role under change ticket",
        );
    }
    // Long leaves: disabled when they start inside the run, re-enabled by IT
    // a few days before the return.
    for (u, from, back) in g.practice.plan.long_leave.clone() {
        let user = g.practice.staff[u].user.clone();
        if from > 0
            && let Some((a, d)) = admin_on_duty(g, from)
        {
            let at = g.clock.day_start(d) + 10 * HOUR_MS;
            let f = attrs([("change_ticket", ticket(g)), ("why", json!("leave"))]);
            admin(
                g,
                a,
                d,
                at,
                "user_disable",
                Some(user.clone()),
                f,
                "Disabled account during leave",
            );
        }
        if let Some((a, d)) = admin_on_duty(g, back.saturating_sub(3).max(from + 1))
            && d < back
        {
            let at = g.clock.day_start(d) + 15 * HOUR_MS;
            let f = attrs([
                ("change_ticket", ticket(g)),
                ("why", json!("return from leave")),
            ]);
            admin(
                g,
                a,
                d,
                at,
                "user_enable",
                Some(user),
                f,
                "Re-enabled account after leave",
            );
        }
    }
    if let Some((u, first)) = g.practice.plan.leave {
        let user = g.practice.staff[u].user.clone();
        if let Some((a, d)) = admin_on_duty(g, first) {
            let at = g.clock.day_start(d) + 9 * HOUR_MS;
            let f = attrs([("change_ticket", ticket(g)), ("why", json!("leave"))]);
            admin(
                g,
                a,
                d,
                at,
                "user_disable",
                Some(user.clone()),
                f,
                "Disabled account during leave",
            );
        }
        if let Some((a, d)) = admin_on_duty(g, first + 4) {
            let at = g.clock.day_start(d) + 14 * HOUR_MS;
            let f = attrs([
                ("change_ticket", ticket(g)),
                ("why", json!("return from leave")),
            ]);
            admin(
                g,
                a,
                d,
                at,
                "user_enable",
                Some(user),
                f,
                "Re-enabled account after leave",
            );
        }
    }
}

/// Service accounts: the lab feed every 10 minutes, FHIR tokens hourly, the
/// nightly backup.
fn services(g: &mut Gen, d: u32) {
    let day = g.clock.day_start(d);
    for k in 0..144 {
        let t = day + k * 10 * MIN_MS + g.rng.gen_range(0..30) * SEC_MS;
        let mut e = g.service(SVC_LIS, t, Category::Integration, "data_feed");
        e.records = Some(g.rng.gen_range(0..40));
        e.message = Some("Instrument results batch".into());
        g.push(e);
    }
    for h in 0..24 {
        let t = day + h * HOUR_MS + g.rng.gen_range(0..120) * SEC_MS;
        let mut e = g.service(SVC_FHIR, t, Category::Auth, "token_issued");
        e.attrs = attrs([
            ("client", json!("payer-app")),
            ("scope", json!("patient/*.read")),
        ]);
        g.push(e);
    }
    // The billing clearinghouse: eligibility and remittance batches every
    // five minutes or so, 06:00-20:00 on weekdays.
    if g.clock.weekday(d) < 5 {
        let mut t = day + 6 * HOUR_MS + g.rng.gen_range(0..120) * SEC_MS;
        while t < day + 20 * HOUR_MS {
            let mut e = g.service(SVC_EDI, t, Category::Integration, "data_feed");
            e.records = Some(g.rng.gen_range(1..30));
            e.message = Some("Eligibility and remittance batch".into());
            g.push(e);
            t += g.rng.gen_range(4 * 60..6 * 60) * SEC_MS;
        }
    }
    let t = day + 2 * HOUR_MS + g.rng.gen_range(0..600) * SEC_MS;
    let mut e = g.service(SVC_BACKUP, t, Category::Admin, "backup");
    e.attrs = attrs([
        ("target", json!("s3://backups/ehr")),
        ("bytes", json!(g.rng.gen_range(1u64 << 30..1u64 << 33))),
    ]);
    e.message = Some("Nightly backup completed".into());
    g.push(e);
}

/// Drops what the lab system and the clearinghouse did not send during
/// their planned outages and what falls after the run; labels each outage.
pub(crate) fn outage(g: &mut Gen, plan: &Plan) {
    let end = g.clock.day_start(g.days);
    for dr in &mut g.drafts {
        if dr.t >= end {
            dr.dropped = true;
        }
    }
    let labeled: std::collections::BTreeSet<usize> = g
        .labels
        .iter()
        .flat_map(|l| l.events.iter().copied())
        .collect();
    let silences: Vec<(usize, i64, i64)> = plan
        .silences
        .iter()
        .map(|&(f, t)| (SVC_LIS, f, t))
        .chain(plan.billing_silences.iter().map(|&(f, t)| (SVC_EDI, f, t)))
        .collect();
    for (svc, from, to) in silences {
        let system = SERVICES[svc].system;
        let mut before: Option<(i64, usize)> = None;
        let mut after: Option<(i64, usize)> = None;
        for (i, dr) in g.drafts.iter_mut().enumerate() {
            if dr.dropped || dr.event.source.as_ref().is_none_or(|s| s.system != system) {
                continue;
            }
            if (from..to).contains(&dr.t) && !labeled.contains(&i) {
                dr.dropped = true;
            } else if dr.t < from && before.is_none_or(|(bt, _)| dr.t > bt) {
                before = Some((dr.t, i));
            } else if dr.t >= to && after.is_none_or(|(at, _)| dr.t < at) {
                after = Some((dr.t, i));
            }
        }
        if let (Some((bt, b)), Some((at, a))) = (before, after) {
            let what = if svc == SVC_EDI {
                "billing clearinghouse feed"
            } else {
                "lab system"
            };
            g.label(
                Family::SourceSilent,
                vec![b, a],
                vec![("source.system", system.to_owned())],
                format!("{what} silent for {} min", (at - bt) / MIN_MS),
            );
        }
    }
}

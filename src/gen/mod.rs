//! `sealtrail gen`: a synthetic medical practice with labeled incidents.
//!
//! The generator simulates a practice over N days and writes what its
//! systems would send to sealtrail, plus the directories and the answers:
//!
//! - `events.ndjson`: events in *delivery* order (see below), each valid
//!   ingest format v1 with its true `time` and a unique `id`
//!   (`gen-<seed hex>-<n>`, n its line), so re-sending stores them once;
//! - `staff.csv`, `patients.csv`: the lookup tables (`serve --lookups DIR`);
//! - `networks.csv`: the practice's own networks (office LAN, VPN pool),
//!   as its IT would configure them (known networks, `actor.network`);
//! - `labels.ndjson`: one line per injected incident ([`labels`] has the
//!   format, the thresholds of every family and what "explained" means);
//! - `summary.json`: counts per category, action and family, the
//!   definition of each family, what explains an access
//!   (`explained_access`) and how each source delivers (`delivery`).
//!
//! Same configuration and seed, same bytes: all randomness comes from one
//! `ChaCha8Rng` (delivery lags from a hash of the seed), and nothing
//! iterates over a hash map.
//!
//! # The model
//!
//! The practice keeps UTC as its local time. Staff (`--users`) have a role
//! and a department: physicians, nurses and medical assistants in three
//! clinical departments, nurses on nights in urgent care (role `nurse`:
//! real directories have no night role), front desk, billing, lab,
//! pharmacists, IT admins and a compliance officer. Each works a shift
//! (early 07:00-15:30, standard 08:00-17:00, late 10:00-19:00 or night
//! 19:00-07:00) on fixed weekdays; some clinicians work Saturday mornings,
//! night nurses four nights a week. Everyone has one department workstation
//! (`10.20.<dept>.<n>`); physicians, billing, IT and compliance have a fixed
//! VPN address (`10.99.x.y`, with an MFA push), billing, IT and compliance
//! work from home one weekday; a third of physicians and IT admins use a
//! phone on a mobile carrier (a new address in the carrier's /16 at every
//! session).
//!
//! Surnames are drawn, for staff and patients alike, from 50 common ones
//! with a Zipf-like skew (about two people in five) and a long tail of rare
//! ones, so staff share surnames with each other and with many patients.
//! Patients (`--patients`) include about 1% VIPs (each with an assigned
//! physician), staff members who are patients, and relatives of staff (the
//! staff member's surname and `home_zip`).
//!
//! A working day is a session: login (sometimes after one or two mistyped
//! passwords), activity, then logout or `session_timeout`, sometimes a
//! timeout and a new login in between. Physicians see 14-22 patients a
//! weekday (fewer on Saturday): any patient, including VIPs (their own),
//! coworkers and patients with their surname. Each visit is the shared
//! explanation vocabulary's workflow: an appointment (`access/create`,
//! `attrs.clinician`, `scheduled_for`, `department`) booked up to two weeks
//! ahead by the front desk or the portal (bookings from before the run
//! arrive as the portal's sync early on day 0); check-in by the front desk
//! (`access/update` of the appointment, sometimes the insurance card);
//! rooming by a nurse of the department (`access/create` of the encounter
//! with `attrs.care_team`, vitals as its update); chart views, a signed
//! `note`, sometimes a `prescription` (with the e-prescribing gateway's
//! answer) and an `order` (the lab's `result` hours later); the claim
//! submitted that evening (`integration/claim_submit`); billing works 40%
//! of claims from the queue on the next working days (`access/view` of the
//! `claim`, then the note). Every morning one nurse per department reviews
//! the chart of each patient the department sees that day (the huddle);
//! about one weekday in five a biller works 30-45 denied claims in an hour
//! (`access/update` of the claim with `attrs.status: denied`, then the
//! insurance card). Some evenings physicians finish the day's notes from
//! home over the VPN. At night, night nurses open urgent-care encounters
//! whose clinician is the physician on call (a rota) and whose care team is
//! both; the physician on call opens some of them from home or a phone.
//! Phone users glance at results before their shift. Background work
//! (phone triage and refill `message`s, front-desk calls, statements,
//! specimens, prescriptions) touches only unexplained-safe patients: never
//! a VIP, a coworker or a patient with one's own surname.
//!
//! Service accounts (`svc-*`) run the lab feed (every 10 minutes, around
//! the clock), the billing clearinghouse feed (every 5 minutes, 06:00-20:00
//! on weekdays), FHIR reads by partner apps, claims, e-prescribing, the
//! patient portal and nightly backups. IT admins reset passwords and grant
//! or revoke roles under change tickets.
//!
//! Planned schedules give benign look-alikes: a 10-day vacation (under the
//! 14-day dormancy threshold); a week of leave with the account disabled and
//! re-enabled before the return; long leaves of 3-6 weeks (one begun before
//! the run), re-enabled by IT days before the return; a new hire first seen
//! weeks into the run (`hired` that day); a leaver disabled,
//! re-enabled for a handover session, disabled again and never seen after;
//! VIPs' physicians look at the chart before the visit and review results
//! days after it.
//!
//! # Delivery
//!
//! `events.ndjson` is in the order events reach sealtrail, not time order:
//! the identity provider (`source.system` `sso`) delivers through a relay
//! 3-5 minutes late, the lab system (`lis`) in hourly batches a few minutes
//! after each full hour, everything else as it happens. Feeding the file in
//! order (`--send`, `import`, `rules eval`) exercises lateness; each event
//! keeps its true `time`.
//!
//! # Incidents
//!
//! Every family of [`Family`], chosen so that no explanation covers them
//! (see [`labels`]) and many resembling benign work: a same-surname
//! patient opened on a day they visit another department, a relative (same
//! surname and address) outside any visit, a coworker's chart opened by
//! someone outside their visit's team or slipped into a morning huddle, a
//! VIP opened by a physician who is not theirs, by a biller with no claim of
//! theirs worked, or by a nurse of another department on their visit day,
//! charts opened at night by a day worker or by a physician from home that
//! are not their patients, a biller pulling up dozens of charts with no
//! claims behind them, accounts unused since before the run used again,
//! and billing clearinghouse outages of 3-4.5 hours on weekday mornings.
//! One disabled account that logs in belongs to an employee on a security
//! hold (no termination date).

mod clock;
mod facts;
mod incidents;
pub mod labels;
mod output;
mod practice;
mod schedule;
mod send;

#[cfg(test)]
mod tests;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value};
use thiserror::Error;

use crate::event::{Actor, Category, Event, Outcome, Patient, Resource, Source, Timestamp};

pub use labels::{Family, LabelRecord};
pub use output::{Output, write_dir};
pub use send::{SendOptions, SendReport, send_events};

use clock::{Clock, DAY_MS, timestamp};
use labels::Label;
use practice::{Practice, SERVICES, Staff};

/// Most days one run may cover (the run is built in memory: a year of 400
/// staff is about 6 million events).
pub const MAX_DAYS: u32 = 366;

#[derive(Debug, Error)]
pub enum GenError {
    #[error("{0}")]
    Usage(String),
    #[error("{path}: {source}", path = path.display())]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("generated event {index} is invalid: {source}")]
    Invalid {
        index: usize,
        #[source]
        source: crate::event::EventError,
    },
    #[error("sending to {url}: {detail}")]
    Send { url: String, detail: String },
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenConfig {
    pub days: u32,
    pub users: u32,
    pub patients: u32,
    pub seed: u64,
    /// Day 0 is the UTC day holding this instant.
    pub start: Timestamp,
}

/// 2026-01-05T00:00:00Z, a Monday: the default first day.
pub const DEFAULT_START: &str = "2026-01-05T00:00:00Z";

/// One generated event and whether a simulated outage swallowed it.
pub(crate) struct Draft {
    pub t: i64,
    pub event: Event,
    pub dropped: bool,
}

/// Generation state shared by the schedule and the incidents.
pub(crate) struct Gen {
    pub rng: ChaCha8Rng,
    pub clock: Clock,
    pub days: u32,
    pub practice: Practice,
    pub drafts: Vec<Draft>,
    pub labels: Vec<Label>,
    /// Sessions of each (user, day): `[login, end)` and the session id.
    pub sessions: Vec<Vec<Vec<Session>>>,
    /// Every visit: the huddles read them.
    pub day_visits: Vec<DayVisit>,
    /// Every submitted claim: billing's queues read them.
    pub claims: Vec<ClaimRec>,
    /// Every morning huddle (incidents hide a chart in one).
    pub huddles: Vec<Huddle>,
    counter: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct DayVisit {
    pub day: u32,
    pub department: &'static str,
    pub patient: usize,
    /// When the appointment's booking event happened.
    pub booked_at: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct ClaimRec {
    pub day: u32,
    pub patient: usize,
    pub id: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Huddle {
    pub nurse: usize,
    pub day: u32,
    pub from: i64,
    pub to: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub from: i64,
    pub to: i64,
    pub id: String,
    pub ip: String,
}

impl Gen {
    pub fn push(&mut self, event: Event) -> usize {
        self.drafts.push(Draft {
            t: event.time.unix_ms(),
            event,
            dropped: false,
        });
        self.drafts.len() - 1
    }

    /// A fresh number for resource and session ids.
    pub fn next_id(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    pub fn session_id(&mut self) -> String {
        let n = self.next_id();
        format!("s-{n:06x}")
    }

    /// The session of user `u` at `t` on shift day `day`, if working then.
    pub fn session_at(&self, u: usize, day: u32, t: i64) -> Option<&Session> {
        self.sessions
            .get(u)?
            .get(day as usize)?
            .iter()
            .find(|s| s.from <= t && t < s.to)
    }

    /// The actor fields of staff member `u` in session `s`.
    pub fn actor(&self, u: usize, session: Option<(&str, &str)>) -> Actor {
        let s: &Staff = &self.practice.staff[u];
        Actor {
            user: Some(s.user.clone()),
            role: Some(s.role.as_str().to_owned()),
            department: Some(s.department.to_owned()),
            ip: Some(session.map_or_else(|| s.ip.clone(), |(_, ip)| ip.to_owned())),
            session: session.map(|(id, _)| id.to_owned()),
            device: Some(s.device.clone()),
            mfa: None,
        }
    }

    /// An access to patient `p`'s `kind` resource by `u` in its session at
    /// `t` on shift day `day`; `None` when the user has no session then.
    #[allow(clippy::too_many_arguments)]
    pub fn access(
        &mut self,
        u: usize,
        day: u32,
        t: i64,
        action: &str,
        p: Option<usize>,
        kind: &str,
        system: &str,
        message: &str,
    ) -> Option<usize> {
        let session = self.session_at(u, day, t)?;
        let (sid, ip) = (session.id.clone(), session.ip.clone());
        let id = self.next_id();
        let mut e = event(t, Category::Access, action, Outcome::Success);
        e.actor = Some(self.actor(u, Some((&sid, &ip))));
        e.patient = p.map(|p| Patient {
            id: self.practice.patients[p].id.clone(),
        });
        e.resource = Some(Resource {
            kind: kind.to_owned(),
            id: Some(format!("{}-{id}", short(kind))),
        });
        e.source = Some(source(system));
        e.reason = p.map(|_| reason_for(self.practice.staff[u].role).to_owned());
        e.message = Some(message.to_owned());
        Some(self.push(e))
    }

    /// An event by service account `svc`.
    pub fn service(&mut self, svc: usize, t: i64, category: Category, action: &str) -> Event {
        let s = &SERVICES[svc];
        let mut e = event(t, category, action, Outcome::Success);
        e.actor = Some(Actor {
            user: Some(s.user.to_owned()),
            role: Some("service".to_owned()),
            ..Actor::default()
        });
        e.source = Some(Source {
            system: s.system.to_owned(),
            host: Some(s.host.to_owned()),
        });
        e
    }

    pub fn patient(&self, p: usize) -> Option<Patient> {
        Some(Patient {
            id: self.practice.patients[p].id.clone(),
        })
    }

    pub fn label(
        &mut self,
        family: Family,
        events: Vec<usize>,
        group: Vec<(&'static str, String)>,
        note: String,
    ) {
        self.labels.push(Label {
            family,
            events,
            group,
            note,
        });
    }
}

/// The usual host of each source system.
pub(crate) fn source(system: &str) -> Source {
    let host = match system {
        "ehr" => "app-01",
        "sso" => "idp-01",
        "pm" => "pm-01",
        "lis" => "lis-01",
        "erx" => "erx-01",
        "admin_console" => "admin-01",
        "portal" => "portal-01",
        _ => "app-02",
    };
    Source {
        system: system.to_owned(),
        host: Some(host.to_owned()),
    }
}

fn reason_for(role: practice::Role) -> &'static str {
    use practice::Role::*;
    match role {
        Billing => "payment",
        FrontDesk => "operations",
        Compliance | ItAdmin => "operations",
        _ => "treatment",
    }
}

/// Resource id prefix: `encounter_note` -> `en`.
fn short(kind: &str) -> String {
    kind.split('_')
        .filter_map(|w| w.chars().next())
        .collect::<String>()
        + if kind.contains('_') { "" } else { "x" }
}

pub(crate) fn event(t: i64, category: Category, action: &str, outcome: Outcome) -> Event {
    Event::new(timestamp(t), category, action, outcome)
}

pub(crate) fn attrs<const N: usize>(pairs: [(&str, Value); N]) -> Option<Map<String, Value>> {
    Some(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// Generates the whole run in memory.
pub fn generate(config: &GenConfig) -> Result<Output, GenError> {
    if !(1..=MAX_DAYS).contains(&config.days) {
        return Err(GenError::Usage(format!(
            "--days must be between 1 and {MAX_DAYS}"
        )));
    }
    let start_ms = config.start.unix_ms();
    if Timestamp::from_unix_ms(start_ms + i64::from(config.days + 2) * DAY_MS).is_err() {
        return Err(GenError::Usage("--start is too late for --days".into()));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let clock = Clock::new(start_ms);
    let mut practice = Practice::build(&mut rng, &clock, config.users, config.patients)?;
    practice.plan(&mut rng, &clock, config.days);
    let mut g = Gen {
        rng,
        clock,
        days: config.days,
        practice,
        drafts: Vec::new(),
        labels: Vec::new(),
        sessions: Vec::new(),
        day_visits: Vec::new(),
        claims: Vec::new(),
        huddles: Vec::new(),
        counter: 0,
    };
    let plan = incidents::plan(&mut g);
    schedule::sessions(&mut g, &plan);
    schedule::work(&mut g);
    incidents::inject(&mut g, &plan);
    schedule::outage(&mut g, &plan);
    incidents::label_dormant(&mut g);
    output::finish(g, config)
}

//! The practice: staff with roles, departments, shifts and workstations;
//! service accounts; patients (a few VIPs, some staff, some relatives of
//! staff); planned absences and leavers.

use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::GenError;
use super::clock::{Clock, DAY_MS, MIN_MS};

/// Smallest practice that still has every role and enough distinct people
/// for every incident family.
pub const MIN_USERS: u32 = 15;
/// Largest practice: staff last names are unique and drawn from a fixed pool.
pub const MAX_USERS: u32 = 400;
pub const MIN_PATIENTS: u32 = 200;
pub const MAX_PATIENTS: u32 = 5_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Physician,
    Nurse,
    NightNurse,
    MedicalAssistant,
    FrontDesk,
    Billing,
    Lab,
    Pharmacist,
    ItAdmin,
    Compliance,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Physician => "physician",
            Role::Nurse => "nurse",
            Role::NightNurse => "night_nurse",
            Role::MedicalAssistant => "medical_assistant",
            Role::FrontDesk => "front_desk",
            Role::Billing => "billing",
            Role::Lab => "lab",
            Role::Pharmacist => "pharmacist",
            Role::ItAdmin => "it_admin",
            Role::Compliance => "compliance",
        }
    }
}

/// (role, share of the staff in per mille, minimum head count)
const ROLE_MIX: [(Role, u32, u32); 10] = [
    (Role::Physician, 170, 2),
    (Role::Nurse, 170, 2),
    (Role::NightNurse, 60, 1),
    (Role::MedicalAssistant, 90, 1),
    (Role::FrontDesk, 130, 2),
    (Role::Billing, 110, 2),
    (Role::Lab, 70, 1),
    (Role::Pharmacist, 50, 1),
    (Role::ItAdmin, 50, 2),
    (Role::Compliance, 30, 1),
];

/// Clinical departments physicians, nurses and medical assistants rotate over.
const CLINICAL: [&str; 3] = ["family_medicine", "pediatrics", "cardiology"];

/// Working hours as minutes after local midnight (the practice runs on UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shift {
    pub start_min: i64,
    pub end_min: i64,
}

pub const EARLY: Shift = Shift {
    start_min: 7 * 60,
    end_min: 15 * 60 + 30,
};
pub const STANDARD: Shift = Shift {
    start_min: 8 * 60,
    end_min: 17 * 60,
};
pub const LATE: Shift = Shift {
    start_min: 10 * 60,
    end_min: 19 * 60,
};
/// 19:00 to 07:00 the next morning.
pub const NIGHT: Shift = Shift {
    start_min: 19 * 60,
    end_min: 31 * 60,
};

#[derive(Debug, Clone)]
pub struct Staff {
    pub user: String,
    pub first_name: &'static str,
    pub last_name: String,
    pub role: Role,
    pub department: &'static str,
    pub home_zip: String,
    pub hired: String,
    /// Last day of employment (`YYYY-MM-DD`), for leavers.
    pub terminated: Option<String>,
    pub shift: Shift,
    /// Working days, Monday = 0.
    pub weekdays: [bool; 7],
    /// The department workstation's address and name.
    pub ip: String,
    pub device: String,
    /// Work-from-home weekday over the VPN, with the user's fixed VPN address.
    pub vpn: Option<(usize, String)>,
    /// Days (run day indices, half-open) without any activity.
    pub absent: Vec<(u32, u32)>,
    /// First run day on which the user no longer works (leavers).
    pub gone_from: Option<u32>,
}

impl Staff {
    /// Whether the user works a shift that starts on run day `day`.
    pub fn works(&self, clock: &Clock, day: u32) -> bool {
        self.weekdays[clock.weekday(day)]
            && !self.absent.iter().any(|&(a, b)| (a..b).contains(&day))
            && self.gone_from.is_none_or(|g| day < g)
    }

    /// Shift start and end (ms) of run day `day`.
    pub fn shift_ms(&self, clock: &Clock, day: u32) -> (i64, i64) {
        let d = clock.day_start(day);
        (
            d + self.shift.start_min * MIN_MS,
            d + self.shift.end_min * MIN_MS,
        )
    }

    /// Whether `[from, to]` lies within this user's shift on `day`.
    pub fn covers(&self, clock: &Clock, day: u32, from: i64, to: i64) -> bool {
        let (s, e) = self.shift_ms(clock, day);
        self.works(clock, day) && s <= from && to <= e
    }
}

#[derive(Debug, Clone)]
pub struct Service {
    pub user: &'static str,
    pub system: &'static str,
    pub host: &'static str,
}

pub const SVC_LIS: usize = 0;
pub const SVC_FHIR: usize = 1;
pub const SVC_CLAIMS: usize = 2;
pub const SVC_ERX: usize = 3;
pub const SVC_PORTAL: usize = 4;
pub const SVC_BACKUP: usize = 5;

pub const SERVICES: [Service; 6] = [
    Service {
        user: "svc-lis",
        system: "lis",
        host: "lis-01",
    },
    Service {
        user: "svc-fhir",
        system: "fhir_gateway",
        host: "fhir-01",
    },
    Service {
        user: "svc-claims",
        system: "pm",
        host: "pm-01",
    },
    Service {
        user: "svc-erx",
        system: "erx",
        host: "erx-01",
    },
    Service {
        user: "svc-portal",
        system: "portal",
        host: "portal-01",
    },
    Service {
        user: "svc-backup",
        system: "ehr",
        host: "app-01",
    },
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatientKind {
    /// Nobody on staff shares the last name; no special flags.
    Plain,
    /// Flagged VIP; only the assigned physician sees the chart.
    Vip { physician: usize },
    /// A member of staff (index into `Practice::staff`).
    Employee { staff: usize },
    /// Shares the last name of a member of staff (a relative).
    Relative { staff: usize },
}

#[derive(Debug, Clone)]
pub struct PatientRec {
    pub id: String,
    pub last_name: String,
    pub home_zip: String,
    pub kind: PatientKind,
}

pub struct Practice {
    pub staff: Vec<Staff>,
    pub patients: Vec<PatientRec>,
    /// Indices of `Plain` and `Relative` patients (normal appointments).
    pub bookable: Vec<usize>,
    /// Indices of `Plain` patients (incident targets with no side effects).
    pub plain: Vec<usize>,
    pub vips: Vec<usize>,
    pub employees: Vec<usize>,
    pub relatives: Vec<usize>,
    /// Users with a planned absence or departure; incidents leave them alone.
    pub reserved: Vec<usize>,
    /// Special schedules: see [`Plan`].
    pub plan: Plan,
}

/// Planned absences and departures (indices into `Practice::staff`).
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// A 10-day vacation from a Monday (benign: under the 14-day threshold).
    pub vacation: Option<(usize, u32)>,
    /// 17 or more days away, then back (the `dormant_account` incident).
    pub dormant: Option<(usize, u32, u32)>,
    /// Disabled for a week of leave, re-enabled before returning (benign).
    pub leave: Option<(usize, u32)>,
    /// Leaves and is disabled; never seen again (benign).
    pub leaver: Option<(usize, u32)>,
    /// Leaves and is disabled; the account logs in days later (incident).
    pub leaver_login: Option<(usize, u32)>,
}

const FIRST_NAMES: [&str; 24] = [
    "Ava", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Iris", "Jamal", "Kira",
    "Liam", "Maya", "Noah", "Olga", "Priya", "Quentin", "Rosa", "Sam", "Tara", "Umar", "Vera",
    "Wen", "Yusuf",
];
const NAME_HEADS: [&str; 25] = [
    "Al", "Bar", "Cal", "Dan", "El", "Fer", "Gar", "Hal", "Ing", "Jor", "Kel", "Lor", "Mar", "Nor",
    "Ol", "Pen", "Quin", "Ros", "Sal", "Tor", "Ul", "Var", "Wes", "Yor", "Zel",
];
const NAME_TAILS: [&str; 20] = [
    "ton", "son", "berg", "ley", "man", "ford", "ris", "dale", "wood", "ner", "ski", "ova", "ez",
    "ani", "elli", "sen", "ard", "ow", "ick", "ay",
];

fn last_name(k: usize) -> String {
    let head = NAME_HEADS[k % NAME_HEADS.len()];
    let tail = NAME_TAILS[(k / NAME_HEADS.len()) % NAME_TAILS.len()];
    format!("{head}{tail}")
}

const NAME_POOL: usize = NAME_HEADS.len() * NAME_TAILS.len();

fn zip(rng: &mut ChaCha8Rng) -> String {
    format!("{:05}", 2100 + rng.gen_range(0..60))
}

fn date_of(clock: &Clock, ms: i64) -> String {
    clock.date(ms)
}

impl Practice {
    pub fn build(
        rng: &mut ChaCha8Rng,
        clock: &Clock,
        users: u32,
        patients: u32,
    ) -> Result<Practice, GenError> {
        if !(MIN_USERS..=MAX_USERS).contains(&users) {
            return Err(GenError::Usage(format!(
                "--users must be between {MIN_USERS} and {MAX_USERS}"
            )));
        }
        if !(MIN_PATIENTS..=MAX_PATIENTS).contains(&patients) {
            return Err(GenError::Usage(format!(
                "--patients must be between {MIN_PATIENTS} and {MAX_PATIENTS}"
            )));
        }
        let users = users as usize;
        let mut names: Vec<usize> = (0..NAME_POOL).collect();
        names.shuffle(rng);
        let staff = build_staff(rng, clock, users, &names);
        let mut practice = Practice {
            staff,
            patients: Vec::new(),
            bookable: Vec::new(),
            plain: Vec::new(),
            vips: Vec::new(),
            employees: Vec::new(),
            relatives: Vec::new(),
            reserved: Vec::new(),
            plan: Plan::default(),
        };
        practice.build_patients(rng, patients as usize, &names[users..]);
        Ok(practice)
    }

    fn build_patients(&mut self, rng: &mut ChaCha8Rng, n: usize, free_names: &[usize]) {
        let physicians = self.of_role(Role::Physician);
        let n_vip = (n / 100).max(3);
        let n_emp = (self.staff.len() / 5).max(3);
        let n_rel = (self.staff.len() / 10).max(3);
        // Staff who are also patients, and relatives: distinct people. There
        // are fewer of them (a fifth plus a tenth of the staff, at least
        // three each, with at least 15 staff) than staff, so `people` never
        // runs out.
        let mut people: Vec<usize> = (0..self.staff.len()).collect();
        people.shuffle(rng);
        let mut people = people.into_iter();
        for i in 0..n {
            let kind = if i < n_vip {
                PatientKind::Vip {
                    physician: physicians[i % physicians.len()],
                }
            } else if i < n_vip + n_emp {
                PatientKind::Employee {
                    staff: people.next().unwrap_or(0),
                }
            } else if i < n_vip + n_emp + n_rel {
                PatientKind::Relative {
                    staff: people.next().unwrap_or(0),
                }
            } else {
                PatientKind::Plain
            };
            let last_name = match kind {
                PatientKind::Employee { staff } | PatientKind::Relative { staff } => {
                    self.staff[staff].last_name.clone()
                }
                _ => last_name(free_names[rng.gen_range(0..free_names.len())]),
            };
            // Drawn for every patient, so the rest of the world is unchanged;
            // a relative lives with the staff member (same_last_name needs it).
            let drawn = zip(rng);
            let home_zip = match kind {
                PatientKind::Relative { staff } => self.staff[staff].home_zip.clone(),
                _ => drawn,
            };
            self.patients.push(PatientRec {
                id: String::new(),
                last_name,
                home_zip,
                kind,
            });
        }
        // Patient ids are not in creation order, so the kinds do not show in the ids.
        let mut ids: Vec<u32> = (0..n as u32).collect();
        ids.shuffle(rng);
        let base = rng.gen_range(100_000..900_000u32);
        for (p, id) in self.patients.iter_mut().zip(ids) {
            p.id = format!("MRN-{:07}", base + id);
        }
        for (i, p) in self.patients.iter().enumerate() {
            match p.kind {
                PatientKind::Plain => {
                    self.plain.push(i);
                    self.bookable.push(i);
                }
                PatientKind::Relative { .. } => {
                    self.relatives.push(i);
                    self.bookable.push(i);
                }
                PatientKind::Vip { .. } => self.vips.push(i),
                PatientKind::Employee { .. } => self.employees.push(i),
            }
        }
    }

    pub fn of_role(&self, role: Role) -> Vec<usize> {
        (0..self.staff.len())
            .filter(|&i| self.staff[i].role == role)
            .collect()
    }

    /// Whether normal (unlabeled) work may show user `u` touching patient `p`:
    /// never a coworker's or one's own record, never a patient with one's own
    /// last name, and a VIP only for the assigned physician.
    pub fn benign(&self, u: usize, p: usize) -> bool {
        let patient = &self.patients[p];
        if patient.last_name == self.staff[u].last_name {
            return false;
        }
        match patient.kind {
            PatientKind::Plain | PatientKind::Relative { .. } => true,
            PatientKind::Vip { physician } => physician == u,
            PatientKind::Employee { .. } => false,
        }
    }

    /// Chooses the planned absences and departures (needs a few weeks; the
    /// ones that do not fit in `days` are left out).
    pub fn plan(&mut self, rng: &mut ChaCha8Rng, clock: &Clock, days: u32) {
        use Role::*;
        let first_monday = (7..14).find(|&d| clock.weekday(d) == 0).unwrap_or(7);
        let workday_after = |d: u32| (d..d + 3).find(|&x| clock.weekday(x) < 5).unwrap_or(d);
        // The incident first, so that small practices still have it.
        if days >= 16
            && let Some(u) = self.reserve(
                rng,
                &[FrontDesk, Billing, MedicalAssistant, Nurse, Lab, Pharmacist],
            )
        {
            let t = workday_after(rng.gen_range(6..days - 9));
            self.leave_on(clock, u, t);
            self.plan.leaver_login = Some((u, t));
        }
        // Away from the first working day after the first week, 17 days.
        let away = (7..10).find(|&d| clock.weekday(d) < 5).unwrap_or(7);
        let back = (away + 17..away + 20)
            .find(|&d| clock.weekday(d) < 5)
            .unwrap_or(away + 17);
        if back + 1 < days
            && let Some(u) = self.reserve(
                rng,
                &[MedicalAssistant, Billing, Lab, Nurse, FrontDesk, Pharmacist],
            )
        {
            self.staff[u].absent.push((away, back));
            self.plan.dormant = Some((u, away, back));
        }
        if first_monday + 12 < days
            && let Some(u) = self.reserve(rng, &[Nurse, Billing, FrontDesk, MedicalAssistant, Lab])
        {
            self.staff[u].absent.push((first_monday, first_monday + 10));
            self.plan.vacation = Some((u, first_monday));
        }
        if first_monday + 8 < days
            && let Some(u) = self.reserve(
                rng,
                &[Nurse, FrontDesk, Pharmacist, Billing, MedicalAssistant],
            )
        {
            self.staff[u].absent.push((first_monday, first_monday + 7));
            self.plan.leave = Some((u, first_monday));
        }
        if days >= 12
            && let Some(u) = self.reserve(rng, &[FrontDesk, Billing, MedicalAssistant, Nurse])
        {
            let t = workday_after(rng.gen_range(6..days - 4));
            self.leave_on(clock, u, t);
            self.plan.leaver = Some((u, t));
        }
    }

    /// Reserves a Monday-to-Friday worker of one of `roles` for a special
    /// schedule, keeping at least one unreserved worker of each role and
    /// leaving alone staff with a relative among the patients (they are
    /// needed for `same_last_name`).
    fn reserve(&mut self, rng: &mut ChaCha8Rng, roles: &[Role]) -> Option<usize> {
        let free = |p: &Practice, i: usize| {
            !p.reserved.contains(&i)
                && !p
                    .relatives
                    .iter()
                    .any(|&r| p.patients[r].kind == PatientKind::Relative { staff: i })
        };
        let c: Vec<usize> = (0..self.staff.len())
            .filter(|&i| {
                let s = &self.staff[i];
                roles.contains(&s.role)
                    && s.weekdays[..5].iter().all(|&w| w)
                    && free(self, i)
                    && self
                        .of_role(s.role)
                        .into_iter()
                        .filter(|&j| !self.reserved.contains(&j))
                        .count()
                        > 1
            })
            .collect();
        let u = *c.choose(rng)?;
        self.reserved.push(u);
        Some(u)
    }

    fn leave_on(&mut self, clock: &Clock, u: usize, day: u32) {
        let s = &mut self.staff[u];
        s.gone_from = Some(day);
        s.terminated = Some(date_of(clock, clock.day_start(day) - DAY_MS));
    }
}

fn build_staff(rng: &mut ChaCha8Rng, clock: &Clock, users: usize, names: &[usize]) -> Vec<Staff> {
    let mut counts: Vec<u32> = ROLE_MIX
        .iter()
        .map(|&(_, per_mille, min)| ((users as u32 * per_mille + 500) / 1000).max(min))
        .collect();
    // Nurses and physicians absorb the rounding (the largest groups).
    let total: u32 = counts.iter().sum();
    let users32 = users as u32;
    if total > users32 {
        let mut excess = total - users32;
        while excess > 0 {
            let i = if counts[1] > ROLE_MIX[1].2 { 1 } else { 0 };
            counts[i] -= 1;
            excess -= 1;
        }
    } else {
        counts[1] += users32 - total;
    }
    let mut staff = Vec::with_capacity(users);
    let mut dept_hosts: Vec<(&'static str, u32)> = Vec::new();
    let mut vpn_hosts = 0u32;
    for (&(role, _, _), &count) in ROLE_MIX.iter().zip(&counts) {
        for k in 0..count as usize {
            let n = staff.len();
            let department = match role {
                Role::Physician | Role::Nurse | Role::MedicalAssistant => {
                    CLINICAL[k % CLINICAL.len()]
                }
                Role::NightNurse => "urgent_care",
                Role::FrontDesk => "front_office",
                Role::Billing => "billing",
                Role::Lab => "laboratory",
                Role::Pharmacist => "pharmacy",
                Role::ItAdmin => "it",
                Role::Compliance => "compliance",
            };
            let dept_no = match dept_hosts.iter().position(|&(d, _)| d == department) {
                Some(i) => i,
                None => {
                    dept_hosts.push((department, 0));
                    dept_hosts.len() - 1
                }
            };
            dept_hosts[dept_no].1 += 1;
            let host = 10 + dept_hosts[dept_no].1;
            let mut weekdays = [true, true, true, true, true, false, false];
            let shift = match role {
                Role::NightNurse => {
                    weekdays = [false; 7];
                    for j in 0..4 {
                        weekdays[(k * 2 + j) % 7] = true;
                    }
                    NIGHT
                }
                Role::Nurse | Role::Lab => {
                    if k % 2 == 1 {
                        EARLY
                    } else {
                        STANDARD
                    }
                }
                Role::FrontDesk => {
                    if k % 2 == 1 {
                        LATE
                    } else {
                        EARLY
                    }
                }
                _ => STANDARD,
            };
            // A few clinicians and front-desk staff also work Saturday mornings.
            if matches!(role, Role::Physician | Role::Nurse | Role::FrontDesk) && k % 3 == 2 {
                weekdays[5] = true;
            }
            if role == Role::Compliance {
                weekdays[4] = false;
            }
            let vpn = match role {
                Role::Billing => Some(4),
                Role::ItAdmin => Some(2),
                Role::Compliance => Some(1),
                _ => None,
            }
            .map(|wd| {
                vpn_hosts += 1;
                (
                    wd,
                    format!("10.99.{}.{}", vpn_hosts / 200, 10 + vpn_hosts % 200),
                )
            });
            let hired_days = rng.gen_range(60..4000);
            staff.push(Staff {
                user: format!("u{:04}", n + 1),
                first_name: FIRST_NAMES[rng.gen_range(0..FIRST_NAMES.len())],
                last_name: last_name(names[n]),
                role,
                department,
                home_zip: zip(rng),
                hired: date_of(clock, clock.day_start(0) - hired_days * DAY_MS),
                terminated: None,
                shift,
                weekdays,
                ip: format!("10.20.{}.{}", 10 + dept_no, host),
                device: format!("ws-{}-{:02}", department.replace('_', "-"), host - 10),
                vpn,
                absent: Vec::new(),
                gone_from: None,
            });
        }
    }
    staff
}

//! The practice: staff with roles, departments, shifts and workstations;
//! service accounts; patients (a few VIPs, some staff, some relatives of
//! staff), staff and patients sharing common surnames drawn with a skew;
//! planned absences, long leaves, leavers and dormant accounts.

use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::GenError;
use super::clock::{Clock, DAY_MS, MIN_MS};

/// Smallest practice that still has every role and enough distinct people
/// for every incident family.
pub const MIN_USERS: u32 = 15;
/// Largest practice (workstation addresses are numbered per department).
pub const MAX_USERS: u32 = 1000;
pub const MIN_PATIENTS: u32 = 200;
pub const MAX_PATIENTS: u32 = 5_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Physician,
    Nurse,
    /// A nurse on nights in urgent care: `nurse` in the directory and in
    /// events; the variant only tells the schedule who works nights.
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
            // Night nurses are nurses (of urgent care, on nights): real
            // directories have no night role.
            Role::NightNurse => "nurse",
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
    /// The user's fixed VPN address from home (physicians: evening charting
    /// and on-call nights; staff with a work-from-home day: that day).
    pub vpn_ip: Option<String>,
    /// The mobile carrier network (`a.b` of `a.b.x.y`) of a user who checks
    /// charts from a phone: every such session gets a new address in it.
    pub mobile: Option<(u8, u8)>,
    /// Days (run day indices, half-open) without any activity.
    pub absent: Vec<(u32, u32)>,
    /// First run day on which the user no longer works (leavers).
    pub gone_from: Option<u32>,
    /// The user's own record among the patients, if any.
    pub patient: Option<usize>,
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
pub const SVC_EDI: usize = 6;

pub const SERVICES: [Service; 7] = [
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
    Service {
        user: "svc-clearinghouse",
        system: "clearinghouse",
        host: "edi-01",
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
    /// Long leaves (3-6 weeks; the first may have begun before the run):
    /// `(user, first day away, first day back)`; disabled at the start when
    /// it is inside the run, re-enabled by IT the working day before the
    /// return (benign).
    pub long_leave: Vec<(usize, u32, u32)>,
    /// Accounts of staff hired long ago who never work in the run; someone
    /// uses the account on the given day (the `dormant_account` incidents).
    pub already_dormant: Vec<(usize, u32)>,
    /// A new hire (staff.csv `hired` is the first working day, mid-run):
    /// first seen weeks into the run, like a dormant account, but new (benign).
    pub new_hire: Option<(usize, u32)>,
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

/// Common surnames, most common first: staff and patients draw from them
/// with a Zipf-like skew (about two in five people carry one), so many
/// patients share a clinician's surname with no family link.
const COMMON: [&str; 50] = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Hall",
    "Rivera",
    "Campbell",
    "Mitchell",
    "Carter",
    "Roberts",
];
/// Weight of the r-th common surname is `COMMON_WEIGHT / (r + 2)`; each
/// synthetic (rare) surname weighs `RARE_WEIGHT`.
const COMMON_WEIGHT: u32 = 400;
const RARE_WEIGHT: u32 = 4;

/// Samples surnames: cumulative weights over `COMMON` then the rare pool.
pub(crate) struct Surnames {
    cumulative: Vec<u32>,
    rare_order: Vec<usize>,
}

impl Surnames {
    fn new(rng: &mut ChaCha8Rng) -> Surnames {
        let mut rare_order: Vec<usize> = (0..NAME_POOL).collect();
        rare_order.shuffle(rng);
        let mut cumulative = Vec::with_capacity(COMMON.len() + NAME_POOL);
        let mut total = 0u32;
        for r in 0..COMMON.len() as u32 {
            total += COMMON_WEIGHT / (r + 2);
            cumulative.push(total);
        }
        for _ in 0..NAME_POOL {
            total += RARE_WEIGHT;
            cumulative.push(total);
        }
        Surnames {
            cumulative,
            rare_order,
        }
    }

    fn draw(&self, rng: &mut ChaCha8Rng) -> String {
        let total = self.cumulative.last().copied().unwrap_or(1);
        let x = rng.gen_range(0..total);
        let k = self.cumulative.partition_point(|&c| c <= x);
        match COMMON.get(k) {
            Some(n) => (*n).to_owned(),
            None => last_name(self.rare_order[(k - COMMON.len()) % NAME_POOL]),
        }
    }
}

/// The practice's own networks, as its IT would list them in
/// `networks.csv` (`cidr,name`): the department workstations' LAN
/// (`10.20.<dept>.<n>`) and the VPN pool (`10.99.x.y`). Phones on mobile
/// carriers and everything else are outside.
pub const NETWORKS: [(&str, &str); 2] = [("10.20.0.0/16", "office lan"), ("10.99.0.0/16", "vpn")];

/// Mobile carrier networks (`a.b.0.0/16`) staff phones get addresses from.
const CARRIERS: [(u8, u8); 3] = [(172, 58), (174, 205), (107, 77)];

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
        let names = Surnames::new(rng);
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
        practice.build_patients(rng, patients as usize, &names);
        Ok(practice)
    }

    fn build_patients(&mut self, rng: &mut ChaCha8Rng, n: usize, names: &Surnames) {
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
            // Staff who are patients and their relatives live at the staff
            // member's address; everyone else anywhere.
            let (last_name, home_zip) = match kind {
                PatientKind::Employee { staff } | PatientKind::Relative { staff } => (
                    self.staff[staff].last_name.clone(),
                    self.staff[staff].home_zip.clone(),
                ),
                _ => (names.draw(rng), zip(rng)),
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
        for (i, p) in self.patients.iter().enumerate() {
            if let PatientKind::Employee { staff } = p.kind {
                self.staff[staff].patient = Some(i);
            }
        }
    }

    /// Whether patient `p` is staff member `u` (their own record).
    pub fn own(&self, u: usize, p: usize) -> bool {
        self.staff[u].patient == Some(p)
    }

    pub fn of_role(&self, role: Role) -> Vec<usize> {
        (0..self.staff.len())
            .filter(|&i| self.staff[i].role == role)
            .collect()
    }

    /// Whether unexplained background work (phone calls, statements,
    /// specimens) may show user `u` touching patient `p`: never a coworker's
    /// or one's own record, never a patient with one's own last name, never
    /// a VIP. Explained work (visits, huddles, claims) touches them all.
    pub fn benign(&self, u: usize, p: usize) -> bool {
        let patient = &self.patients[p];
        if patient.last_name == self.staff[u].last_name {
            return false;
        }
        match patient.kind {
            PatientKind::Plain | PatientKind::Relative { .. } => true,
            PatientKind::Vip { .. } | PatientKind::Employee { .. } => false,
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
        // Accounts nobody has used since before the run, used again.
        if days >= 16 {
            for _ in 0..days / 15 {
                let Some(u) = self.reserve(
                    rng,
                    &[FrontDesk, Billing, MedicalAssistant, Nurse, Lab, Pharmacist],
                ) else {
                    break;
                };
                self.staff[u].absent.push((0, days));
                let d = workday_after(rng.gen_range(14..days - 2));
                self.plan.already_dormant.push((u, d));
            }
        }
        if days >= 18
            && let Some(u) = self.reserve(rng, &[FrontDesk, Nurse, MedicalAssistant, Billing])
        {
            let first = workday_after(rng.gen_range(14..days - 3));
            self.staff[u].absent.push((0, first));
            self.staff[u].hired = date_of(clock, clock.day_start(first));
            self.plan.new_hire = Some((u, first));
        }
        // Long leaves: one that began before the run, one inside it.
        if days >= 18
            && let Some(u) = self.reserve(rng, &[Nurse, FrontDesk, Billing, MedicalAssistant, Lab])
        {
            let back = workday_after(rng.gen_range(14..(days - 3).min(29)));
            self.staff[u].absent.push((0, back));
            self.plan.long_leave.push((u, 0, back));
        }
        if days >= 30 {
            let from = workday_after(rng.gen_range(2..5));
            let back = workday_after(from + rng.gen_range(21..25));
            if back + 2 < days
                && let Some(u) = self.reserve(
                    rng,
                    &[Nurse, FrontDesk, Billing, MedicalAssistant, Pharmacist],
                )
            {
                self.staff[u].absent.push((from, back));
                self.plan.long_leave.push((u, from, back));
            }
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

fn build_staff(rng: &mut ChaCha8Rng, clock: &Clock, users: usize, names: &Surnames) -> Vec<Staff> {
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
            .map(|wd| (wd, ()));
            // Physicians chart from home in the evening and on call.
            let vpn_ip = (vpn.is_some() || role == Role::Physician).then(|| {
                vpn_hosts += 1;
                format!("10.99.{}.{}", vpn_hosts / 200, 10 + vpn_hosts % 200)
            });
            let vpn = vpn.and_then(|(wd, ())| Some((wd, vpn_ip.clone()?)));
            // A third of physicians and IT admins use their phones.
            let mobile = (matches!(role, Role::Physician | Role::ItAdmin) && k % 3 == 1)
                .then(|| CARRIERS[rng.gen_range(0..CARRIERS.len())]);
            let hired_days = rng.gen_range(60..4000);
            staff.push(Staff {
                user: format!("u{:04}", n + 1),
                first_name: FIRST_NAMES[rng.gen_range(0..FIRST_NAMES.len())],
                last_name: names.draw(rng),
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
                vpn_ip,
                mobile,
                absent: Vec::new(),
                gone_from: None,
                patient: None,
            });
        }
    }
    staff
}

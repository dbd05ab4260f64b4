//! Enrichment: joins events with the practice's directories.
//!
//! Two CSV files with a header row live in the lookups directory:
//!
//! - `staff.csv`: `user,name,last_name,role,department,home_zip,hired,terminated`
//! - `patients.csv`: `patient,last_name,home_zip,vip,employee_user`
//! - `networks.csv` (optional): `cidr,name`, the practice's known networks
//!   (staff Wi-Fi, VPN pool, office LAN). An event whose `actor.ip` lies in
//!   one gets its name as `enriched.network` (`actor.network` in rules; the
//!   longest prefix wins). At most [`MAX_NETWORKS`] rows; a missing file is
//!   no known network, without a note.
//!
//! Columns may come in any order; all must be present and no others. Cells
//! are trimmed; an empty cell is "unknown". Dates are `YYYY-MM-DD`; `vip` is
//! `true`/`false`/`1`/`0`/`yes`/`no` in any case (empty is `false`). Ids are
//! case-sensitive.
//!
//! Loading never aborts on a bad row: the row is skipped and the
//! [`LoadReport`] names the file and line. A missing file is an empty table
//! (noted in the report). Only problems with a whole file (unreadable, too
//! large, too many rows, a wrong header) are errors; [`Enricher::load`]
//! returns them and [`Enricher::reload_if_changed`] keeps the previous
//! tables when they happen.
//!
//! The [`Enricher`] holds an immutable [`Lookups`] snapshot behind an `Arc`
//! that a reload swaps; the pipeline takes [`Enricher::snapshot`] once per
//! batch and calls [`enrich`] per event without any lock. Write new files
//! by renaming a complete file into place, so a reload never sees half a
//! file (if it does, the next change is picked up again).

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use thiserror::Error;

use crate::event::{
    Enriched, Event, EventError, PatientInfo, StaffInfo, check_enriched_text as check_text,
};

/// Largest lookup file read, in bytes.
pub const MAX_LOOKUP_FILE_BYTES: u64 = 256 * 1024 * 1024;
/// Most data rows read from one lookup file.
pub const MAX_LOOKUP_ROWS: usize = 5_000_000;
/// Skipped-row notes kept in one [`LoadReport`] per file; the rest are counted.
pub const MAX_NOTES_PER_FILE: usize = 100;

pub const STAFF_FILE: &str = "staff.csv";
pub const PATIENTS_FILE: &str = "patients.csv";
pub const NETWORKS_FILE: &str = "networks.csv";
/// Most rows of `networks.csv` (every event with an address is looked up).
pub const MAX_NETWORKS: usize = 10_000;

const STAFF_COLUMNS: [&str; 8] = [
    "user",
    "name",
    "last_name",
    "role",
    "department",
    "home_zip",
    "hired",
    "terminated",
];
const PATIENT_COLUMNS: [&str; 5] = ["patient", "last_name", "home_zip", "vip", "employee_user"];

/// A problem with a whole lookup file. Tables already loaded stay in use.
#[derive(Debug, Error)]
pub enum EnrichError {
    #[error("{path}: {source}", path = path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: file is {size} bytes, more than the limit of {max}", path = path.display())]
    TooLarge { path: PathBuf, size: u64, max: u64 },
    #[error("{path}: more than {max} rows", path = path.display())]
    TooManyRows { path: PathBuf, max: usize },
    #[error("{path}: header: {reason}", path = path.display())]
    Header { path: PathBuf, reason: String },
}

/// One thing worth telling the operator about a load: a missing file, a
/// skipped row. Never contains cell values (they may be PHI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadNote {
    pub file: PathBuf,
    /// 1-based line of the skipped row, `None` for a note about the file.
    pub line: Option<u64>,
    pub message: String,
}

impl fmt::Display for LoadNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// What a load found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub staff_rows: usize,
    pub patient_rows: usize,
    /// Known networks loaded from `networks.csv`.
    pub network_rows: usize,
    /// Rows skipped because they were malformed, over both files.
    pub skipped_rows: usize,
    /// Missing files and skipped rows, at most [`MAX_NOTES_PER_FILE`] rows
    /// per file.
    pub notes: Vec<LoadNote>,
}

/// An immutable snapshot of the lookup tables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lookups {
    staff: HashMap<String, StaffInfo>,
    patients: HashMap<String, PatientInfo>,
    networks: super::networks::Networks,
}

impl Lookups {
    /// Reads `staff.csv` and `patients.csv` from `dir`.
    pub fn load(dir: &Path) -> Result<(Lookups, LoadReport), EnrichError> {
        let mut report = LoadReport::default();
        let staff = read_table(
            &dir.join(STAFF_FILE),
            &STAFF_COLUMNS,
            &mut report,
            staff_row,
        )?;
        let patients = read_table(
            &dir.join(PATIENTS_FILE),
            &PATIENT_COLUMNS,
            &mut report,
            patient_row,
        )?;
        let networks = super::networks::load(&dir.join(NETWORKS_FILE), &mut report)?;
        report.staff_rows = staff.len();
        report.patient_rows = patients.len();
        report.network_rows = networks.len();
        Ok((
            Lookups {
                staff,
                patients,
                networks,
            },
            report,
        ))
    }

    /// The name of the known network (`networks.csv`) holding `ip`.
    pub fn network(&self, ip: &str) -> Option<&str> {
        self.networks.find(ip)
    }

    /// The `staff.csv` row of `user` (trimmed, case-sensitive).
    pub fn staff(&self, user: &str) -> Option<&StaffInfo> {
        self.staff.get(user.trim())
    }

    /// The `patients.csv` row of `patient` (trimmed, case-sensitive).
    pub fn patient(&self, patient: &str) -> Option<&PatientInfo> {
        self.patients.get(patient.trim())
    }

    pub fn staff_len(&self) -> usize {
        self.staff.len()
    }

    pub fn patients_len(&self) -> usize {
        self.patients.len()
    }
}

/// Directory data for `event`: `actor.user` and `target_user` in the staff
/// table, `patient.id` in the patient table. `None` when nothing matched.
pub fn enrich(lookups: &Lookups, event: &Event) -> Option<Enriched> {
    let actor = event
        .actor
        .as_ref()
        .and_then(|a| a.user.as_deref())
        .and_then(|u| lookups.staff(u))
        .cloned();
    let target_user = event
        .target_user
        .as_deref()
        .and_then(|u| lookups.staff(u))
        .cloned();
    let patient = event
        .patient
        .as_ref()
        .and_then(|p| lookups.patient(&p.id))
        .cloned();
    let network = event
        .actor
        .as_ref()
        .and_then(|a| a.ip.as_deref())
        .and_then(|ip| lookups.network(ip))
        .map(str::to_owned);
    let enriched = Enriched {
        actor,
        target_user,
        patient,
        network,
    };
    (!enriched.is_empty()).then_some(enriched)
}

/// Size and modification time of each file, `None` when missing: a reload
/// happens when this changes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint([Option<(u64, Option<SystemTime>)>; 3]);

impl Fingerprint {
    fn of(dir: &Path) -> Fingerprint {
        let stat = |name: &str| {
            std::fs::metadata(dir.join(name))
                .ok()
                .map(|m| (m.len(), m.modified().ok()))
        };
        Fingerprint([stat(STAFF_FILE), stat(PATIENTS_FILE), stat(NETWORKS_FILE)])
    }
}

/// The current lookup tables, reloadable while events flow.
#[derive(Debug)]
pub struct Enricher {
    dir: PathBuf,
    current: RwLock<Arc<Lookups>>,
    /// The files as last loaded (or last tried: a failed load is not retried
    /// until the files change again). Also serializes reloads.
    seen: Mutex<Fingerprint>,
}

impl Enricher {
    /// Loads the tables in `dir`.
    pub fn load(dir: impl Into<PathBuf>) -> Result<(Enricher, LoadReport), EnrichError> {
        let dir = dir.into();
        let seen = Fingerprint::of(&dir);
        let (lookups, report) = Lookups::load(&dir)?;
        let enricher = Enricher {
            dir,
            current: RwLock::new(Arc::new(lookups)),
            seen: Mutex::new(seen),
        };
        Ok((enricher, report))
    }

    /// Reloads when a file's size or modification time changed since the
    /// last attempt. `Ok(None)`: nothing changed. On error the previous
    /// tables stay in use, and the same files are not tried again.
    pub fn reload_if_changed(&self) -> Result<Option<LoadReport>, EnrichError> {
        // A poisoned lock still holds a consistent value: it is only ever
        // replaced whole.
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let now = Fingerprint::of(&self.dir);
        if *seen == now {
            return Ok(None);
        }
        *seen = now;
        let (lookups, report) = Lookups::load(&self.dir)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(lookups);
        Ok(Some(report))
    }

    /// The tables in use now; cheap (one `Arc` clone under a short read lock).
    pub fn snapshot(&self) -> Arc<Lookups> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// A parsed row: its id and value, or why it is skipped.
pub(super) type RowResult<T> = Result<(String, T), String>;

/// The cells of one row by column name (header order resolved).
pub(super) struct Row<'a> {
    record: &'a csv::StringRecord,
    index: &'a [usize],
}

impl Row<'_> {
    /// Column `i` of the expected column list, trimmed; empty is `None`.
    pub(super) fn get(&self, i: usize) -> Option<&str> {
        let cell = self.record.get(self.index[i])?.trim();
        (!cell.is_empty()).then_some(cell)
    }

    pub(super) fn text(&self, i: usize) -> Option<String> {
        self.get(i).map(str::to_owned)
    }
}

/// The reason of a field check, for a row note (`column: reason`).
pub(super) fn field_reason(e: EventError) -> String {
    match e {
        EventError::Invalid { path, reason } => format!("{path}: {reason}"),
        other => other.to_string(),
    }
}

fn staff_row(row: &Row<'_>) -> RowResult<StaffInfo> {
    let user = row.text(0).ok_or("user: must not be empty")?;
    let info = StaffInfo {
        name: row.text(1),
        last_name: row.text(2),
        role: row.text(3),
        department: row.text(4),
        home_zip: row.text(5),
        hired: row.text(6),
        terminated: row.text(7),
    };
    check_text("user", &Some(user.clone())).map_err(field_reason)?;
    info.validate("").map_err(field_reason)?;
    Ok((user, info))
}

fn patient_row(row: &Row<'_>) -> RowResult<PatientInfo> {
    let patient = row.text(0).ok_or("patient: must not be empty")?;
    let vip = match row.get(3) {
        None => false,
        Some(v) => parse_vip(v).ok_or("vip: must be true, false, 1, 0, yes or no")?,
    };
    let info = PatientInfo {
        last_name: row.text(1),
        home_zip: row.text(2),
        vip,
        employee_user: row.text(4),
    };
    check_text("patient", &Some(patient.clone())).map_err(field_reason)?;
    info.validate("").map_err(field_reason)?;
    Ok((patient, info))
}

/// `true`/`false`/`1`/`0`/`yes`/`no`, any case.
pub fn parse_vip(s: &str) -> Option<bool> {
    let s = s.trim();
    if ["true", "1", "yes"]
        .iter()
        .any(|t| s.eq_ignore_ascii_case(t))
    {
        Some(true)
    } else if ["false", "0", "no"]
        .iter()
        .any(|t| s.eq_ignore_ascii_case(t))
    {
        Some(false)
    } else {
        None
    }
}

pub(super) fn read_table<T>(
    path: &Path,
    columns: &[&str],
    report: &mut LoadReport,
    parse: fn(&Row<'_>) -> RowResult<T>,
) -> Result<HashMap<String, T>, EnrichError> {
    read_table_max(path, columns, report, parse, MAX_LOOKUP_ROWS)
}

/// [`read_table`] with at most `max_rows` data rows.
pub(super) fn read_table_max<T>(
    path: &Path,
    columns: &[&str],
    report: &mut LoadReport,
    parse: fn(&Row<'_>) -> RowResult<T>,
    max_rows: usize,
) -> Result<HashMap<String, T>, EnrichError> {
    let io = |source| EnrichError::Io {
        path: path.to_owned(),
        source,
    };
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            report.notes.push(LoadNote {
                file: path.to_owned(),
                line: None,
                message: "file not found, table is empty".to_owned(),
            });
            return Ok(HashMap::new());
        }
        Err(e) => return Err(io(e)),
    };
    let size = file.metadata().map_err(io)?.len();
    if size > MAX_LOOKUP_FILE_BYTES {
        return Err(EnrichError::TooLarge {
            path: path.to_owned(),
            size,
            max: MAX_LOOKUP_FILE_BYTES,
        });
    }
    // take(): the file may grow while we read it.
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(BufReader::new(file.take(MAX_LOOKUP_FILE_BYTES)));
    let header = reader.headers().map_err(|e| EnrichError::Header {
        path: path.to_owned(),
        reason: csv_reason(&e),
    })?;
    let index = column_index(header, columns).map_err(|reason| EnrichError::Header {
        path: path.to_owned(),
        reason,
    })?;

    let mut table: HashMap<String, T> = HashMap::new();
    let mut skipped = 0usize;
    let mut rows = 0usize;
    let mut note = |report: &mut LoadReport, line: u64, message: String| {
        report.skipped_rows += 1;
        skipped += 1;
        if skipped <= MAX_NOTES_PER_FILE {
            report.notes.push(LoadNote {
                file: path.to_owned(),
                line: Some(line),
                message,
            });
        }
    };
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map_or(0, csv::Position::line);
                let reason = csv_reason(&e);
                if let csv::ErrorKind::Io(source) = e.into_kind() {
                    return Err(io(source));
                }
                note(report, line, reason);
                continue;
            }
        }
        rows += 1;
        if rows > max_rows {
            return Err(EnrichError::TooManyRows {
                path: path.to_owned(),
                max: max_rows,
            });
        }
        let line = record.position().map_or(0, csv::Position::line);
        if record.iter().all(|c| c.trim().is_empty()) {
            continue; // blank line
        }
        match parse(&Row {
            record: &record,
            index: &index,
        }) {
            Ok((id, value)) => match table.entry(id) {
                std::collections::hash_map::Entry::Occupied(_) => note(
                    report,
                    line,
                    format!(
                        "{} repeats an earlier row's, the earlier row is kept",
                        columns[0]
                    ),
                ),
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(value);
                }
            },
            Err(reason) => note(report, line, reason),
        }
    }
    if reader.position().byte() >= MAX_LOOKUP_FILE_BYTES {
        return Err(EnrichError::TooLarge {
            path: path.to_owned(),
            size: reader.position().byte(),
            max: MAX_LOOKUP_FILE_BYTES,
        });
    }
    if skipped > MAX_NOTES_PER_FILE {
        report.notes.push(LoadNote {
            file: path.to_owned(),
            line: None,
            message: format!("{skipped} rows skipped, the first {MAX_NOTES_PER_FILE} are listed"),
        });
    }
    Ok(table)
}

/// Positions of `columns` in `header`: every column present once, no others.
fn column_index(header: &csv::StringRecord, columns: &[&str]) -> Result<Vec<usize>, String> {
    let names: Vec<&str> = header
        .iter()
        .enumerate()
        // A UTF-8 byte-order mark is not part of the first name.
        .map(|(i, h)| {
            if i == 0 {
                h.trim_start_matches('\u{feff}')
            } else {
                h
            }
            .trim()
        })
        .collect();
    for (i, name) in names.iter().enumerate() {
        if !columns.contains(name) {
            return Err(format!(
                "unknown column `{name}` (expected {})",
                columns.join(",")
            ));
        }
        if names[..i].contains(name) {
            return Err(format!("column `{name}` appears twice"));
        }
    }
    columns
        .iter()
        .map(|c| {
            names
                .iter()
                .position(|n| n == c)
                .ok_or_else(|| format!("missing column `{c}`"))
        })
        .collect()
}

/// A csv error without its position (reported separately) and without cell
/// contents.
fn csv_reason(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("row has {len} fields, the header {expected_len}"),
        csv::ErrorKind::Utf8 { .. } => "row is not valid utf-8".to_owned(),
        _ => e.to_string(),
    }
}

//! Dashboard definitions (`dashboards/*.json`): what the console renders
//! and how each panel is asked of the search API. The format is documented
//! in `dashboards/README.md`; this module is its reader and checker.
//!
//! A panel is a query in the search syntax of `GET /v1/search`, a time
//! range ending now and a kind: `timeseries` (a date histogram of matches),
//! `top` (a terms aggregation over `field`), `stat` (the number of matches)
//! or `table` (the newest matching events). [`Panel::search_body`] is the
//! `POST /v1/search` body that answers it.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};
use thiserror::Error;

use crate::event::Timestamp;
use crate::index::SearchIndex;
use crate::index::query::{MAX_BUCKETS, MAX_LIMIT, query_fields};

/// Largest dashboard file read.
pub const MAX_FILE_BYTES: u64 = 256 * 1024;
/// Default `limit` of `top` panels.
pub const DEFAULT_TOP_LIMIT: usize = 10;
/// Default `limit` of `table` panels.
pub const DEFAULT_TABLE_LIMIT: usize = 20;
/// The event schema, whose fields queries and `field` may name.
const EVENT_SCHEMA: &str = include_str!("../schemas/event.schema.json");

#[derive(Debug, Error)]
pub enum DashboardError {
    #[error("{path}: {reason}")]
    Read { path: String, reason: String },
}

/// A time span written `<n>m`, `<n>h` or `<n>d` (minutes, hours, days).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span(pub Duration);

impl Span {
    pub fn parse(text: &str) -> Option<Span> {
        let unit = match text.chars().last()? {
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return None,
        };
        let digits = &text[..text.len() - 1];
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: u64 = digits.parse().ok()?;
        // At most about 10 years: ranges longer than retention make no sense.
        if n == 0 || n.checked_mul(unit)? > 3660 * 86_400 {
            return None;
        }
        Some(Span(Duration::from_secs(n * unit)))
    }

    /// The text form the search API takes (`30m`, `1h`, `1d`).
    pub fn text(self) -> String {
        let s = self.0.as_secs();
        if s.is_multiple_of(86_400) {
            format!("{}d", s / 86_400)
        } else if s.is_multiple_of(3600) {
            format!("{}h", s / 3600)
        } else {
            format!("{}m", s / 60)
        }
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
        let text = String::deserialize(d)?;
        Span::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{text:?} is not a range like 15m, 24h or 7d (<n>m|h|d, n > 0)"
            ))
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PanelKind {
    /// Counts of matching events per interval.
    Timeseries,
    /// The `limit` most frequent values of `field` among matching events.
    Top,
    /// The number of matching events.
    Stat,
    /// The newest `limit` matching events.
    Table,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Panel {
    pub id: String,
    pub title: String,
    pub kind: PanelKind,
    /// Search query in the syntax of `GET /v1/search`.
    pub query: String,
    /// Overrides the dashboard's range.
    #[serde(default)]
    pub range: Option<Span>,
    /// `top` only: the field counted by.
    #[serde(default)]
    pub field: Option<String>,
    /// `top`: buckets (default 10); `table`: rows (default 20).
    #[serde(default)]
    pub limit: Option<usize>,
    /// `timeseries` only: bucket width (default from the range).
    #[serde(default)]
    pub interval: Option<Span>,
    #[serde(default)]
    pub description: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dashboard {
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub description: String,
    /// Default time range of the panels, ending now.
    pub range: Span,
    pub panels: Vec<Panel>,
}

impl Dashboard {
    pub fn parse(text: &str) -> Result<Dashboard, serde_json::Error> {
        serde_json::from_str(text)
    }
}

impl Panel {
    /// The range the panel shows on `dashboard`.
    pub fn range(&self, dashboard: &Dashboard) -> Span {
        self.range.unwrap_or(dashboard.range)
    }

    /// The histogram interval: the panel's, else one giving 12 to 96
    /// buckets over the range.
    pub fn interval(&self, dashboard: &Dashboard) -> Span {
        if let Some(i) = self.interval {
            return i;
        }
        let secs = self.range(dashboard).0.as_secs();
        let width = match secs {
            s if s <= 6 * 3600 => 5 * 60,
            s if s <= 2 * 86_400 => 3600,
            s if s <= 14 * 86_400 => 6 * 3600,
            _ => 86_400,
        };
        Span(Duration::from_secs(width))
    }

    /// The `POST /v1/search` body answering this panel for a range that
    /// ends at `now`.
    pub fn search_body(&self, dashboard: &Dashboard, now: Timestamp) -> Value {
        let range_ms = i64::try_from(self.range(dashboard).0.as_millis()).unwrap_or(i64::MAX);
        let from = Timestamp::from_unix_ms(now.unix_ms().saturating_sub(range_ms))
            .unwrap_or(now)
            .to_string();
        let mut body = json!({"q": self.query, "from": from, "to": now.to_string(), "limit": 0});
        match self.kind {
            PanelKind::Stat => {}
            PanelKind::Table => {
                body["limit"] = json!(self.limit.unwrap_or(DEFAULT_TABLE_LIMIT));
            }
            PanelKind::Top => {
                body["aggs"] = json!([{"terms": {
                    "field": self.field.clone().unwrap_or_default(),
                    "size": self.limit.unwrap_or(DEFAULT_TOP_LIMIT),
                }}]);
            }
            PanelKind::Timeseries => {
                body["aggs"] =
                    json!([{"date_histogram": {"interval": self.interval(dashboard).text()}}]);
            }
        }
        body
    }
}

/// Reads every `*.json` of `dir` (sorted by file name).
pub fn load_dir(dir: &Path) -> Result<Vec<Dashboard>, DashboardError> {
    let err = |path: &Path, reason: String| DashboardError::Read {
        path: path.display().to_string(),
        reason,
    };
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| err(dir, e.to_string()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json") && p.is_file())
        .collect();
    files.sort();
    let mut out = Vec::with_capacity(files.len());
    for path in files {
        let text = crate::bounded::read_to_string(&path, MAX_FILE_BYTES)
            .map_err(|e| err(&path, e.to_string()))?;
        out.push(Dashboard::parse(&text).map_err(|e| err(&path, e.to_string()))?);
    }
    Ok(out)
}

/// Whether `name` is a field of the event schema (`schemas/event.schema.json`,
/// `attrs.<anything>` included) or of the envelope sealtrail adds (`received`,
/// `index`, `via.kind|peer|principal`, the `enriched.*` lookup fields).
pub fn is_event_field(name: &str) -> bool {
    let name = name.replace("\\.", ".");
    if let Some(rest) = name.strip_prefix("attrs.") {
        return !rest.is_empty();
    }
    if ["received", "index"].contains(&name.as_str()) {
        return true;
    }
    if let Some((object, path)) = name.split_once('.')
        && ["via", "enriched"].contains(&object)
    {
        return crate::index::schema::OBJECT_FIELDS
            .iter()
            .any(|(o, subs)| *o == object && subs.contains(&path));
    }
    static SCHEMA: std::sync::LazyLock<Value> =
        std::sync::LazyLock::new(|| serde_json::from_str(EVENT_SCHEMA).unwrap_or(Value::Null));
    let mut node: &Value = &SCHEMA;
    for part in name.split('.') {
        match node.get("properties").and_then(|p| p.get(part)) {
            Some(next) => node = next,
            None => return false,
        }
    }
    true
}

/// Every problem of `dashboards`: duplicate ids, panels missing what their
/// kind needs, queries the service's parser refuses (`index`), and fields
/// the event schema does not have. Empty when all is well.
pub fn check(dashboards: &[Dashboard], index: &SearchIndex) -> Vec<String> {
    let mut problems = Vec::new();
    let mut ids = HashSet::new();
    for d in dashboards {
        if d.id.is_empty()
            || !d
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            problems.push(format!(
                "dashboard id {:?} is not lowercase letters, digits and -",
                d.id
            ));
        }
        if !ids.insert(d.id.as_str()) {
            problems.push(format!("dashboard id {:?} is used twice", d.id));
        }
        if d.title.trim().is_empty() {
            problems.push(format!("{}: no title", d.id));
        }
        if d.panels.is_empty() {
            problems.push(format!("{}: no panels", d.id));
        }
        let mut panel_ids = HashSet::new();
        for p in &d.panels {
            let at = format!("{}/{}", d.id, p.id);
            if p.id.is_empty() || !panel_ids.insert(p.id.as_str()) {
                problems.push(format!("{at}: panel id empty or used twice"));
            }
            if p.title.trim().is_empty() {
                problems.push(format!("{at}: no title"));
            }
            if let Err(e) = index.parse_only(&p.query) {
                problems.push(format!("{at}: query {:?}: {e}", p.query));
            }
            match query_fields(&p.query) {
                Ok(fields) => {
                    for f in fields.iter().filter(|f| !is_event_field(f)) {
                        problems.push(format!(
                            "{at}: query names {f:?}, which is not an event field"
                        ));
                    }
                }
                Err(e) => problems.push(format!("{at}: query {:?}: {e}", p.query)),
            }
            match (p.kind, &p.field) {
                (PanelKind::Top, None) => problems.push(format!("{at}: a top panel needs field")),
                (PanelKind::Top, Some(f)) if !is_event_field(f) => {
                    problems.push(format!("{at}: field {f:?} is not an event field"));
                }
                (PanelKind::Top, Some(_)) => {}
                (_, Some(_)) => problems.push(format!("{at}: field is for top panels only")),
                (_, None) => {}
            }
            if p.interval.is_some() && p.kind != PanelKind::Timeseries {
                problems.push(format!("{at}: interval is for timeseries panels only"));
            }
            if p.kind == PanelKind::Timeseries {
                let buckets = p.range(d).0.as_secs() / p.interval(d).0.as_secs().max(1);
                if buckets as usize >= MAX_BUCKETS {
                    problems.push(format!(
                        "{at}: {buckets} histogram buckets; the search API returns at most {MAX_BUCKETS}"
                    ));
                }
            }
            match (p.kind, p.limit) {
                (PanelKind::Top, Some(n)) if n == 0 || n > MAX_BUCKETS => {
                    problems.push(format!("{at}: limit must be 1 to {MAX_BUCKETS}"));
                }
                (PanelKind::Table, Some(n)) if n == 0 || n > MAX_LIMIT => {
                    problems.push(format!("{at}: limit must be 1 to {MAX_LIMIT}"));
                }
                (PanelKind::Stat | PanelKind::Timeseries, Some(_)) => {
                    problems.push(format!("{at}: limit is for top and table panels only"));
                }
                _ => {}
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_parse_as_documented() {
        assert_eq!(Span::parse("15m"), Some(Span(Duration::from_secs(900))));
        assert_eq!(Span::parse("24h"), Some(Span(Duration::from_secs(86_400))));
        assert_eq!(Span::parse("7d").map(Span::text), Some("7d".into()));
        for bad in ["", "h", "0h", "5s", "1w", "-1d", "1.5h", "99999d", "+3h"] {
            assert_eq!(Span::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn fields_of_the_event_schema_and_envelope_are_known() {
        for ok in [
            "category",
            "actor.user",
            "actor.mfa",
            "patient.id",
            "resource.type",
            "source.system",
            "records",
            "attrs.change_ticket",
            "via.kind",
            "enriched.patient.vip",
            "received",
        ] {
            assert!(is_event_field(ok), "{ok}");
        }
        for bad in [
            "actor.name",
            "user",
            "attrs.",
            "via.user",
            "enriched.x",
            "actor.user.x",
        ] {
            assert!(!is_event_field(bad), "{bad}");
        }
    }
}

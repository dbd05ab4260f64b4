//! Sigma `detection` sections compiled to matchers: selections (maps =
//! AND of field items, lists of maps = OR), value modifiers, and the
//! `condition` expression.
//!
//! Matching follows the Sigma specification: string comparisons are
//! case-insensitive unless `|cased`; `*` and `?` in plain values are
//! wildcards (`\*`, `\?`, `\\` escape them); `|re` is case-sensitive unless
//! `|re|i`; a list of values is OR, `|all` makes it AND; `field: null` means
//! the field is absent. Time parts (`|minute`, `|hour`, `|day` (of month),
//! `|week` (ISO), `|month`, `|year`) are taken in UTC.

use std::net::IpAddr;

use regex::{Regex, RegexBuilder};

use super::field::{Field, FieldValue, Known};
use super::view::EntryView;
use super::yaml::{Node, NodeKind, Pos};
use crate::event::Category;

/// Largest compiled regex (bytes), so one rule cannot take unbounded memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A compile error at a position in the rule file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct At {
    pub pos: Pos,
    pub reason: String,
}

pub fn at(pos: Pos, reason: impl Into<String>) -> At {
    At {
        pos,
        reason: reason.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StrOp {
    Eq,
    Contains,
    StartsWith,
    EndsWith,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Gt,
    Gte,
    Lt,
    Lte,
}

impl CmpOp {
    pub fn holds(self, a: f64, b: f64) -> bool {
        match self {
            CmpOp::Gt => a > b,
            CmpOp::Gte => a >= b,
            CmpOp::Lt => a < b,
            CmpOp::Lte => a <= b,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimePart {
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Year,
}

/// Literal text to compare, lowercased unless cased.
#[derive(Debug, Clone)]
struct Text {
    s: String,
    cased: bool,
    /// The text as a number, so numeric event values compare without
    /// formatting.
    num: Option<f64>,
}

#[derive(Debug, Clone, Copy)]
enum Cidr {
    V4(u32, u32),
    V6(u128, u128),
}

impl Cidr {
    fn parse(s: &str) -> Option<Cidr> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l.parse::<u32>().ok()?)),
            None => (s, None),
        };
        match addr.parse::<IpAddr>().ok()? {
            IpAddr::V4(a) => {
                let len = len.unwrap_or(32);
                if len > 32 {
                    return None;
                }
                let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
                Some(Cidr::V4(u32::from(a) & mask, mask))
            }
            IpAddr::V6(a) => {
                let len = len.unwrap_or(128);
                if len > 128 {
                    return None;
                }
                let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
                Some(Cidr::V6(u128::from(a) & mask, mask))
            }
        }
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self, ip) {
            (Cidr::V4(net, mask), IpAddr::V4(a)) => u32::from(a) & mask == *net,
            (Cidr::V6(net, mask), IpAddr::V6(a)) => u128::from(a) & mask == *net,
            (Cidr::V4(net, mask), IpAddr::V6(a)) => a
                .to_ipv4_mapped()
                .is_some_and(|a| u32::from(a) & mask == *net),
            (Cidr::V6(..), IpAddr::V4(_)) => false,
        }
    }
}

#[derive(Debug, Clone)]
enum Pattern {
    /// The field is absent (`field: null`).
    Null,
    Exists(bool),
    Str(StrOp, Text),
    Regex(Regex),
    Cidr(Cidr),
    Cmp(CmpOp, f64),
    /// Compare with another field of the same event.
    FieldRef(StrOp, Field, bool),
    /// `gt/gte/lt/lte` with `fieldref`: order against another field
    /// (numbers, timestamps, dates; `fieldcmp.rs`).
    FieldCmp(CmpOp, Field),
}

/// One `field|modifiers: value(s)` entry of a selection.
#[derive(Debug, Clone)]
struct Item {
    field: Field,
    time_part: Option<TimePart>,
    all: bool,
    patterns: Vec<Pattern>,
}

/// A named selection: OR of conjunctions of items.
#[derive(Debug, Clone)]
struct Selection {
    any_of: Vec<Vec<Item>>,
}

#[derive(Debug, Clone)]
enum Cond {
    Sel(usize),
    Not(Box<Cond>),
    And(Vec<Cond>),
    Or(Vec<Cond>),
}

/// A compiled `detection` section.
#[derive(Debug, Clone)]
pub struct Detection {
    selections: Vec<Selection>,
    condition: Cond,
    /// Categories (bit `Category as u8`) an entry can have and match: most
    /// rules name one, so the others are skipped with one test.
    categories: u8,
}

const ALL_CATEGORIES: u8 = u8::MAX;

impl Detection {
    /// Whether the entry matches the condition.
    pub fn matches(&self, entry: &EntryView<'_>) -> bool {
        if self.categories & (1 << entry.event.category as u8) == 0 {
            return false;
        }
        self.eval(&self.condition, entry)
    }

    /// The categories `c` can match: the item semantics evaluated on each
    /// category name, so the filter is exact for what it keeps out.
    fn categories(&self, c: &Cond) -> u8 {
        match c {
            Cond::Sel(i) => self.selections[*i].any_of.iter().fold(0, |m, items| {
                m | items
                    .iter()
                    .fold(ALL_CATEGORIES, |m, item| m & item.categories())
            }),
            Cond::Not(_) => ALL_CATEGORIES,
            Cond::And(cs) => cs
                .iter()
                .fold(ALL_CATEGORIES, |m, c| m & self.categories(c)),
            Cond::Or(cs) => cs.iter().fold(0, |m, c| m | self.categories(c)),
        }
    }

    fn eval(&self, c: &Cond, entry: &EntryView<'_>) -> bool {
        match c {
            Cond::Sel(i) => self.selections[*i].matches(entry),
            Cond::Not(c) => !self.eval(c, entry),
            Cond::And(cs) => cs.iter().all(|c| self.eval(c, entry)),
            Cond::Or(cs) => cs.iter().any(|c| self.eval(c, entry)),
        }
    }
}

impl Selection {
    fn matches(&self, entry: &EntryView<'_>) -> bool {
        self.any_of
            .iter()
            .any(|items| items.iter().all(|i| i.matches(entry)))
    }
}

impl Item {
    /// [`Detection::categories`] of one item: all, unless it tests the
    /// category itself (without a time part or a field reference).
    fn categories(&self) -> u8 {
        if self.field != Field::Known(Known::Category)
            || self.time_part.is_some()
            || self
                .patterns
                .iter()
                .any(|p| matches!(p, Pattern::FieldRef(..) | Pattern::FieldCmp(..)))
        {
            return ALL_CATEGORIES;
        }
        let mut mask = 0;
        for c in Category::ALL {
            let v = Some(FieldValue::Str(c.as_str()));
            let one = |p: &Pattern| p.matches(v, None);
            let hit = if self.all {
                self.patterns.iter().all(one)
            } else {
                self.patterns.iter().any(one)
            };
            if hit {
                mask |= 1 << c as u8;
            }
        }
        mask
    }

    fn matches(&self, entry: &EntryView<'_>) -> bool {
        let mut value = self.field.get(entry);
        if let (Some(part), Some(v)) = (self.time_part, value) {
            value = time_part(part, &v).map(FieldValue::Int);
            if value.is_none() {
                return false;
            }
        }
        let one = |p: &Pattern| p.matches(value, Some(entry));
        if self.all {
            self.patterns.iter().all(one)
        } else {
            self.patterns.iter().any(one)
        }
    }
}

fn time_part(part: TimePart, v: &FieldValue<'_>) -> Option<u64> {
    let t = v.time()?.as_offset_date_time();
    Some(match part {
        TimePart::Minute => u64::from(t.minute()),
        TimePart::Hour => u64::from(t.hour()),
        TimePart::Day => u64::from(t.day()),
        TimePart::Week => u64::from(t.iso_week()),
        TimePart::Month => u64::from(u8::from(t.month())),
        TimePart::Year => u64::try_from(t.year()).unwrap_or(0),
    })
}

impl Pattern {
    /// `entry`: for field references (`None`: they do not match).
    fn matches(&self, value: Option<FieldValue<'_>>, entry: Option<&EntryView<'_>>) -> bool {
        let Some(v) = value else {
            return matches!(self, Pattern::Null | Pattern::Exists(false));
        };
        if let FieldValue::Json(serde_json::Value::Array(items)) = v {
            return match self {
                Pattern::Exists(b) => *b,
                Pattern::Null => false,
                _ => items
                    .iter()
                    .filter_map(FieldValue::from_json)
                    .any(|x| self.matches(Some(x), entry)),
            };
        }
        match self {
            Pattern::Null => false,
            Pattern::Exists(b) => *b,
            Pattern::Str(op, t) => str_match(*op, &t.s, t.cased, t.num, &v),
            Pattern::Regex(re) => re.is_match(&v.text()),
            Pattern::Cidr(net) => match v {
                FieldValue::Str(s) => s.parse::<IpAddr>().is_ok_and(|ip| net.contains(ip)),
                _ => false,
            },
            Pattern::Cmp(op, n) => v.number().is_some_and(|x| op.holds(x, *n)),
            Pattern::FieldCmp(op, other) => entry
                .and_then(|e| other.get(e))
                .is_some_and(|o| super::fieldcmp::holds(*op, &v, &o)),
            Pattern::FieldRef(op, other, cased) => {
                let Some(o) = entry.and_then(|e| other.get(e)) else {
                    return false;
                };
                let o = o.text();
                // ASCII comparisons ignore case on both sides, so only
                // non-ASCII text needs lowercasing first.
                if *cased || o.is_ascii() {
                    str_match(*op, &o, *cased, None, &v)
                } else {
                    str_match(*op, &lower(&o), false, None, &v)
                }
            }
        }
    }
}

fn lower(s: &str) -> String {
    if s.is_ascii() {
        s.to_ascii_lowercase()
    } else {
        s.to_lowercase()
    }
}

/// Compares an event value with `p`. Unless `cased`, `p` must be lowercase
/// or ASCII (ASCII comparisons ignore case on both sides). `num` is `p` as a
/// number, for comparing numeric values without formatting them.
fn str_match(op: StrOp, p: &str, cased: bool, num: Option<f64>, v: &FieldValue<'_>) -> bool {
    if op == StrOp::Eq
        && let (Some(n), Some(x)) = (num, numeric(v))
    {
        return n == x;
    }
    let owned;
    let raw: &str = match v {
        FieldValue::Str(s) => s,
        other => {
            owned = other.text();
            &owned
        }
    };
    if cased {
        return match op {
            StrOp::Eq => raw == p,
            StrOp::Contains => raw.contains(p),
            StrOp::StartsWith => raw.starts_with(p),
            StrOp::EndsWith => raw.ends_with(p),
        };
    }
    if raw.is_ascii() {
        let (r, pb) = (raw.as_bytes(), p.as_bytes());
        return match op {
            StrOp::Eq => r.eq_ignore_ascii_case(pb),
            StrOp::StartsWith => r.len() >= pb.len() && r[..pb.len()].eq_ignore_ascii_case(pb),
            StrOp::EndsWith => {
                r.len() >= pb.len() && r[r.len() - pb.len()..].eq_ignore_ascii_case(pb)
            }
            StrOp::Contains => {
                pb.is_empty() || r.windows(pb.len()).any(|w| w.eq_ignore_ascii_case(pb))
            }
        };
    }
    let l = raw.to_lowercase();
    match op {
        StrOp::Eq => l == p,
        StrOp::Contains => l.contains(p),
        StrOp::StartsWith => l.starts_with(p),
        StrOp::EndsWith => l.ends_with(p),
    }
}

fn numeric(v: &FieldValue<'_>) -> Option<f64> {
    match v {
        FieldValue::Int(_) | FieldValue::Float(_) => v.number(),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Compiling.

/// Modifiers that decide how a value is compared (at most one per item).
const KIND_MODIFIERS: [&str; 10] = [
    "contains",
    "startswith",
    "endswith",
    "re",
    "cidr",
    "exists",
    "gt",
    "gte",
    "lt",
    "lte",
];

const TIME_MODIFIERS: [(&str, TimePart); 6] = [
    ("minute", TimePart::Minute),
    ("hour", TimePart::Hour),
    ("day", TimePart::Day),
    ("week", TimePart::Week),
    ("month", TimePart::Month),
    ("year", TimePart::Year),
];

/// Compiles a `detection` map (selections plus `condition`).
pub fn compile(detection: &Node) -> Result<Detection, At> {
    let NodeKind::Map(entries) = &detection.kind else {
        return Err(at(detection.pos, "detection must be a map"));
    };
    let mut names = Vec::new();
    let mut selections = Vec::new();
    let mut condition = None;
    for (k, v) in entries {
        let name = k.as_str().unwrap_or_default();
        if name == "condition" {
            condition = Some(v);
            continue;
        }
        if name == "timeframe" {
            return Err(at(
                k.pos,
                "timeframe is not supported; use a correlation rule with a timespan",
            ));
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
            || name.is_empty()
        {
            return Err(at(k.pos, format!("invalid selection name `{name}`")));
        }
        selections.push(compile_selection(v)?);
        names.push(name.to_owned());
    }
    let Some(cond) = condition else {
        return Err(at(detection.pos, "detection has no condition"));
    };
    let condition = match &cond.kind {
        NodeKind::Scalar { text, .. } => parse_condition(text, &names, cond.pos)?,
        NodeKind::Seq(items) => {
            let mut any = Vec::new();
            for c in items {
                let Some(text) = c.as_str() else {
                    return Err(at(c.pos, "condition must be a string"));
                };
                any.push(parse_condition(text, &names, c.pos)?);
            }
            if any.is_empty() {
                return Err(at(cond.pos, "condition list is empty"));
            }
            Cond::Or(any)
        }
        NodeKind::Map(_) => return Err(at(cond.pos, "condition must be a string")),
    };
    let mut d = Detection {
        selections,
        condition,
        categories: ALL_CATEGORIES,
    };
    d.categories = d.categories(&d.condition);
    Ok(d)
}

fn compile_selection(node: &Node) -> Result<Selection, At> {
    match &node.kind {
        NodeKind::Map(_) => Ok(Selection {
            any_of: vec![compile_items(node)?],
        }),
        NodeKind::Seq(items) => {
            if items.is_empty() {
                return Err(at(node.pos, "selection list is empty"));
            }
            let mut any_of = Vec::new();
            for m in items {
                if !matches!(m.kind, NodeKind::Map(_)) {
                    return Err(at(
                        m.pos,
                        "keyword selections (lists of plain values) are not supported; \
                         match a field, e.g. message|contains",
                    ));
                }
                any_of.push(compile_items(m)?);
            }
            Ok(Selection { any_of })
        }
        NodeKind::Scalar { .. } => Err(at(
            node.pos,
            "a selection must be a map of fields or a list of such maps",
        )),
    }
}

fn compile_items(node: &Node) -> Result<Vec<Item>, At> {
    let NodeKind::Map(entries) = &node.kind else {
        return Err(at(node.pos, "expected a map of fields"));
    };
    if entries.is_empty() {
        return Err(at(node.pos, "selection is empty"));
    }
    entries.iter().map(|(k, v)| compile_item(k, v)).collect()
}

fn compile_item(key: &Node, value: &Node) -> Result<Item, At> {
    let key_text = key.as_str().unwrap_or_default();
    let mut parts = key_text.split('|');
    let field_name = parts.next().unwrap_or_default();
    let field = Field::parse(field_name)
        .ok_or_else(|| at(key.pos, format!("unknown field `{field_name}`")))?;
    let mut kind: Option<&str> = None;
    let (mut all, mut cased, mut fieldref) = (false, false, false);
    let mut time = None;
    let mut re_flags = String::new();
    for m in parts {
        if KIND_MODIFIERS.contains(&m) {
            if let Some(k) = kind {
                return Err(at(
                    key.pos,
                    format!("modifiers `{k}` and `{m}` cannot be combined"),
                ));
            }
            kind = Some(m);
        } else if let Some((_, p)) = TIME_MODIFIERS.iter().find(|(n, _)| *n == m) {
            if time.is_some() {
                return Err(at(key.pos, "only one time modifier per field"));
            }
            time = Some(*p);
        } else {
            match m {
                "all" => all = true,
                "cased" => cased = true,
                "fieldref" => fieldref = true,
                "i" | "m" | "s" if kind == Some("re") => re_flags.push_str(m),
                "i" | "m" | "s" => {
                    return Err(at(key.pos, format!("modifier `{m}` must follow `re`")));
                }
                _ => return Err(at(key.pos, format!("unknown modifier `{m}`"))),
            }
        }
    }
    if fieldref
        && !matches!(
            kind,
            None | Some("contains" | "startswith" | "endswith" | "gt" | "gte" | "lt" | "lte")
        )
    {
        return Err(at(
            key.pos,
            "fieldref combines only with contains, startswith, endswith, gt, gte, lt or lte",
        ));
    }
    if fieldref && time.is_some() {
        return Err(at(
            key.pos,
            "fieldref does not combine with a time modifier",
        ));
    }
    if time.is_some() && !matches!(kind, None | Some("gt" | "gte" | "lt" | "lte")) {
        return Err(at(
            key.pos,
            "a time modifier combines only with gt, gte, lt or lte",
        ));
    }
    let values: Vec<&Node> = match &value.kind {
        NodeKind::Seq(items) => {
            if items.is_empty() {
                return Err(at(value.pos, "value list is empty"));
            }
            items.iter().collect()
        }
        NodeKind::Scalar { .. } => vec![value],
        NodeKind::Map(_) => {
            return Err(at(value.pos, "a field value must be a scalar or a list"));
        }
    };
    let mut patterns = Vec::with_capacity(values.len());
    for v in values {
        patterns.push(compile_value(v, kind, fieldref, cased, &re_flags)?);
    }
    Ok(Item {
        field,
        time_part: time,
        all,
        patterns,
    })
}

fn compile_value(
    v: &Node,
    kind: Option<&str>,
    fieldref: bool,
    cased: bool,
    re_flags: &str,
) -> Result<Pattern, At> {
    let NodeKind::Scalar { text, .. } = &v.kind else {
        return Err(at(v.pos, "values in a list must be scalars"));
    };
    let op = match kind {
        Some("contains") => StrOp::Contains,
        Some("startswith") => StrOp::StartsWith,
        Some("endswith") => StrOp::EndsWith,
        _ => StrOp::Eq,
    };
    if fieldref {
        let other = Field::parse(text)
            .ok_or_else(|| at(v.pos, format!("fieldref names unknown field `{text}`")))?;
        let cmp = match kind {
            Some("gt") => Some(CmpOp::Gt),
            Some("gte") => Some(CmpOp::Gte),
            Some("lt") => Some(CmpOp::Lt),
            Some("lte") => Some(CmpOp::Lte),
            _ => None,
        };
        if let Some(c) = cmp {
            return Ok(Pattern::FieldCmp(c, other));
        }
        return Ok(Pattern::FieldRef(op, other, cased));
    }
    let number = || -> Result<f64, At> {
        text.trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .ok_or_else(|| at(v.pos, format!("`{text}` is not a number")))
    };
    match kind {
        Some("exists") => v
            .as_bool()
            .map(Pattern::Exists)
            .ok_or_else(|| at(v.pos, "exists takes true or false")),
        Some("gt") => Ok(Pattern::Cmp(CmpOp::Gt, number()?)),
        Some("gte") => Ok(Pattern::Cmp(CmpOp::Gte, number()?)),
        Some("lt") => Ok(Pattern::Cmp(CmpOp::Lt, number()?)),
        Some("lte") => Ok(Pattern::Cmp(CmpOp::Lte, number()?)),
        Some("cidr") => Cidr::parse(text.trim())
            .map(Pattern::Cidr)
            .ok_or_else(|| at(v.pos, format!("`{text}` is not an ip network"))),
        Some("re") => {
            let re = RegexBuilder::new(text)
                .case_insensitive(re_flags.contains('i'))
                .multi_line(re_flags.contains('m'))
                .dot_matches_new_line(re_flags.contains('s'))
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| at(v.pos, format!("invalid regex: {e}")))?;
            Ok(Pattern::Regex(re))
        }
        _ => {
            if v.is_null() {
                return Ok(Pattern::Null);
            }
            string_pattern(op, text, cased).map_err(|reason| at(v.pos, reason))
        }
    }
}

/// A Sigma string value with wildcards: simple shapes become plain string
/// operations, others a regex.
fn string_pattern(op: StrOp, raw: &str, cased: bool) -> Result<Pattern, String> {
    // Chunks of literal text separated by wildcards ('*' or '?').
    let mut chunks: Vec<(Option<char>, String)> = vec![(None, String::new())];
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if matches!(chars.peek(), Some('*' | '?' | '\\')) => {
                if let (Some(n), Some(last)) = (chars.next(), chunks.last_mut()) {
                    last.1.push(n);
                }
            }
            '*' | '?' => chunks.push((Some(c), String::new())),
            c => {
                if let Some(last) = chunks.last_mut() {
                    last.1.push(c);
                }
            }
        }
    }
    let text = |s: &str| Text {
        s: if cased { s.to_owned() } else { lower(s) },
        cased,
        num: s.trim().parse::<f64>().ok().filter(|n| n.is_finite()),
    };
    let stars = |c: &[(Option<char>, String)]| c.iter().all(|(w, _)| *w != Some('?'));
    // Shapes: x, *x, x*, *x* (no '?').
    let simple = match chunks.as_slice() {
        [(None, s)] => Some((op, s.clone())),
        [(None, a), (Some('*'), b)] if a.is_empty() && stars(&chunks) => {
            Some((widen(op, true, false), b.clone()))
        }
        [(None, a), (Some('*'), b)] if b.is_empty() => Some((widen(op, false, true), a.clone())),
        [(None, a), (Some('*'), b), (Some('*'), c)] if a.is_empty() && c.is_empty() => {
            Some((StrOp::Contains, b.clone()))
        }
        _ => None,
    };
    if let Some((op, s)) = simple {
        return Ok(Pattern::Str(op, text(&s)));
    }
    let mut re = String::from(if cased { "(?s)^" } else { "(?is)^" });
    if matches!(op, StrOp::Contains | StrOp::EndsWith) {
        re.push_str(".*");
    }
    for (w, s) in &chunks {
        match w {
            Some('*') => re.push_str(".*"),
            Some(_) => re.push('.'),
            None => {}
        }
        re.push_str(&regex::escape(s));
    }
    if matches!(op, StrOp::Contains | StrOp::StartsWith) {
        re.push_str(".*");
    }
    re.push('$');
    RegexBuilder::new(&re)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map(Pattern::Regex)
        .map_err(|e| format!("invalid wildcard pattern: {e}"))
}

/// The operation after adding a leading (`front`) or trailing (`back`) `*`.
fn widen(op: StrOp, front: bool, back: bool) -> StrOp {
    let (mut f, mut b) = match op {
        StrOp::Eq => (false, false),
        StrOp::Contains => (true, true),
        StrOp::StartsWith => (false, true),
        StrOp::EndsWith => (true, false),
    };
    f |= front;
    b |= back;
    match (f, b) {
        (false, false) => StrOp::Eq,
        (true, true) => StrOp::Contains,
        (false, true) => StrOp::StartsWith,
        (true, false) => StrOp::EndsWith,
    }
}

// ---------------------------------------------------------------------------
// The condition expression.

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Open,
    Close,
}

fn tokenize(s: &str, pos: Pos) -> Result<Vec<(Tok, usize)>, At> {
    let mut out = Vec::new();
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {}
            '(' => out.push((Tok::Open, i)),
            ')' => out.push((Tok::Close, i)),
            '|' => {
                return Err(at(
                    pos,
                    "aggregations in conditions (`| count() ...`) are not supported; \
                     use a correlation rule",
                ));
            }
            c if c.is_ascii_alphanumeric() || matches!(c, '_' | '*' | '-' | '.') => {
                let mut w = String::from(c);
                while let Some(&(_, n)) = chars.peek() {
                    if n.is_ascii_alphanumeric() || matches!(n, '_' | '*' | '-' | '.') {
                        w.push(n);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push((Tok::Word(w), i));
            }
            c => return Err(at(pos, format!("unexpected `{c}` in condition"))),
        }
    }
    Ok(out)
}

struct CondParser<'a> {
    toks: Vec<(Tok, usize)>,
    i: usize,
    names: &'a [String],
    pos: Pos,
    depth: usize,
}

fn parse_condition(text: &str, names: &[String], pos: Pos) -> Result<Cond, At> {
    let toks = tokenize(text, pos)?;
    if toks.is_empty() {
        return Err(at(pos, "condition is empty"));
    }
    let mut p = CondParser {
        toks,
        i: 0,
        names,
        pos,
        depth: 0,
    };
    let c = p.or()?;
    if let Some((t, _)) = p.toks.get(p.i) {
        return Err(p.err(format!("unexpected {} in condition", describe(t))));
    }
    Ok(c)
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Word(w) => format!("`{w}`"),
        Tok::Open => "`(`".into(),
        Tok::Close => "`)`".into(),
    }
}

fn is_word(t: Option<&(Tok, usize)>, w: &str) -> bool {
    matches!(t, Some((Tok::Word(x), _)) if x == w)
}

impl CondParser<'_> {
    fn err(&self, reason: String) -> At {
        at(self.pos, reason)
    }

    fn or(&mut self) -> Result<Cond, At> {
        let mut v = vec![self.and()?];
        while is_word(self.toks.get(self.i), "or") {
            self.i += 1;
            v.push(self.and()?);
        }
        Ok(if v.len() == 1 {
            v.remove(0)
        } else {
            Cond::Or(v)
        })
    }

    fn and(&mut self) -> Result<Cond, At> {
        let mut v = vec![self.not()?];
        while is_word(self.toks.get(self.i), "and") {
            self.i += 1;
            v.push(self.not()?);
        }
        Ok(if v.len() == 1 {
            v.remove(0)
        } else {
            Cond::And(v)
        })
    }

    fn not(&mut self) -> Result<Cond, At> {
        if is_word(self.toks.get(self.i), "not") {
            self.i += 1;
            self.enter()?;
            let c = self.not()?;
            self.depth -= 1;
            return Ok(Cond::Not(Box::new(c)));
        }
        self.primary()
    }

    fn enter(&mut self) -> Result<(), At> {
        self.depth += 1;
        if self.depth > super::yaml::MAX_DEPTH {
            return Err(self.err("condition nested too deeply".into()));
        }
        Ok(())
    }

    fn primary(&mut self) -> Result<Cond, At> {
        let Some((tok, _)) = self.toks.get(self.i).cloned() else {
            return Err(self.err("condition ends too early".into()));
        };
        self.i += 1;
        match tok {
            Tok::Open => {
                self.enter()?;
                let c = self.or()?;
                self.depth -= 1;
                match self.toks.get(self.i) {
                    Some((Tok::Close, _)) => {
                        self.i += 1;
                        Ok(c)
                    }
                    _ => Err(self.err("missing `)` in condition".into())),
                }
            }
            Tok::Close => Err(self.err("unexpected `)` in condition".into())),
            Tok::Word(w) if (w == "1" || w == "all") && is_word(self.toks.get(self.i), "of") => {
                self.i += 1;
                let Some((Tok::Word(target), _)) = self.toks.get(self.i).cloned() else {
                    return Err(self.err(format!("`{w} of` needs a selection pattern or them")));
                };
                self.i += 1;
                let picked: Vec<Cond> = if target == "them" {
                    (0..self.names.len()).map(Cond::Sel).collect()
                } else {
                    (0..self.names.len())
                        .filter(|&i| glob(&target, &self.names[i]))
                        .map(Cond::Sel)
                        .collect()
                };
                if picked.is_empty() {
                    return Err(self.err(format!("no selection matches `{target}`")));
                }
                Ok(if w == "all" {
                    Cond::And(picked)
                } else {
                    Cond::Or(picked)
                })
            }
            Tok::Word(w) if ["and", "or", "of", "them"].contains(&w.as_str()) => {
                Err(self.err(format!("unexpected `{w}` in condition")))
            }
            Tok::Word(w) => match self.names.iter().position(|n| *n == w) {
                Some(i) => Ok(Cond::Sel(i)),
                None => Err(self.err(format!("condition names undefined selection `{w}`"))),
            },
        }
    }
}

/// `*` wildcard match of a selection name pattern.
fn glob(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    if !name.ends_with(last) {
        return false;
    }
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

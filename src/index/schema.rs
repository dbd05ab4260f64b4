//! The tantivy schema of the search index and the mapping from a stored
//! entry to a document.
//!
//! One document per ledger entry. Field names are the event's own field
//! names, so the query syntax is the event's vocabulary:
//!
//! | field | type | how |
//! | --- | --- | --- |
//! | `index` | u64 | fast only: the global ledger index (sort key, cursor, proof link, and where hits are read from) |
//! | `time`, `received` | date (ms) | fast only: event time / acknowledgement time |
//! | `category`, `action`, `outcome`, `target_user`, `reason` | keyword | raw token, fast (terms aggregations) |
//! | `id` | keyword | raw token, not fast (unique per event: a column would be as large as the docstore) |
//! | `records` | u64 | indexed, fast: ranges such as `records:[100 TO *]` |
//! | `actor`, `patient`, `resource`, `source`, `via`, `enriched` | JSON | raw tokenizer, fast: `actor.user:u0042`, terms on `actor.ip` |
//! | `message` | text | default tokenizer with positions (phrases) |
//! | `attrs` | JSON | default tokenizer with positions, not fast |
//!
//! Nothing is stored: hits are read back from the ledger by `index`
//! (`ledger::entries`), which already holds every value, compressed; a
//! second copy in tantivy's doc store was the largest part of the index.
//! Field norms are off everywhere (results are ordered by `index`, never by
//! score), and keyword postings carry no frequencies.

use serde_json::{Map, Value};
use tantivy::schema::{
    DateOptions, DateTimePrecision, Field, INDEXED, IndexRecordOption, JsonObjectOptions,
    NumericOptions, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::schema::{FAST, OwnedValue};
use tantivy::{DateTime, TantivyDocument};

use crate::event::Timestamp;
use crate::event::view::{Attrs, EntryView, StaffView};

/// Bumped whenever the schema or the entry-to-document mapping changes; an
/// index built with another version is rebuilt from the ledger.
pub const SCHEMA_VERSION: u32 = 2;

/// Keyword fields of the event (exact match, raw tokenizer).
pub const KEYWORD_FIELDS: [&str; 6] = [
    "category",
    "action",
    "outcome",
    "target_user",
    "reason",
    "id",
];

/// Object-valued parts of the entry, indexed as JSON fields, and the
/// sub-fields each may have (`None`: any path, as for `enriched`).
pub const OBJECT_FIELDS: [(&str, &[&str]); 6] = [
    (
        "actor",
        &[
            "user",
            "role",
            "department",
            "ip",
            "session",
            "device",
            "mfa",
        ],
    ),
    ("patient", &["id"]),
    ("resource", &["type", "id"]),
    ("source", &["system", "host"]),
    ("via", &["kind", "peer", "principal"]),
    (
        "enriched",
        &[
            "actor.name",
            "actor.last_name",
            "actor.role",
            "actor.department",
            "actor.home_zip",
            "actor.hired",
            "actor.terminated",
            "target_user.name",
            "target_user.last_name",
            "target_user.role",
            "target_user.department",
            "target_user.home_zip",
            "target_user.hired",
            "target_user.terminated",
            "patient.last_name",
            "patient.home_zip",
            "patient.vip",
            "patient.employee_user",
        ],
    ),
];

/// Handles on every field of the schema.
#[derive(Clone, Debug)]
pub struct Fields {
    pub schema: Schema,
    pub index: Field,
    pub time: Field,
    pub received: Field,
    pub category: Field,
    pub action: Field,
    pub outcome: Field,
    pub target_user: Field,
    pub reason: Field,
    pub id: Field,
    pub records: Field,
    pub actor: Field,
    pub patient: Field,
    pub resource: Field,
    pub source: Field,
    pub via: Field,
    pub enriched: Field,
    pub message: Field,
    pub attrs: Field,
}

impl Fields {
    pub fn new() -> Fields {
        let mut b = Schema::builder();
        let keyword = |fast: bool| {
            let o = TextOptions::default().set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer("raw")
                    .set_fieldnorms(false)
                    .set_index_option(IndexRecordOption::Basic),
            );
            if fast { o.set_fast("raw") } else { o }
        };
        let object = JsonObjectOptions::default()
            .set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer("raw")
                    .set_fieldnorms(false)
                    .set_index_option(IndexRecordOption::Basic),
            )
            .set_fast("raw");
        // Unique per event: columns only. A term dictionary over them was a
        // third of the index, and tantivy answers ranges from the column.
        let date = DateOptions::default()
            .set_fast()
            .set_precision(DateTimePrecision::Milliseconds);
        let index = b.add_u64_field("index", NumericOptions::from(FAST));
        let time = b.add_date_field("time", date.clone());
        let received = b.add_date_field("received", date);
        let category = b.add_text_field("category", keyword(true));
        let action = b.add_text_field("action", keyword(true));
        let outcome = b.add_text_field("outcome", keyword(true));
        let target_user = b.add_text_field("target_user", keyword(true));
        let reason = b.add_text_field("reason", keyword(true));
        let id = b.add_text_field("id", keyword(false));
        let records = b.add_u64_field("records", NumericOptions::from(INDEXED | FAST));
        let actor = b.add_json_field("actor", object.clone());
        let patient = b.add_json_field("patient", object.clone());
        let resource = b.add_json_field("resource", object.clone());
        let source = b.add_json_field("source", object.clone());
        let via = b.add_json_field("via", object.clone());
        let enriched = b.add_json_field("enriched", object);
        let text = TextFieldIndexing::default()
            .set_tokenizer("default")
            .set_fieldnorms(false)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions);
        let message = b.add_text_field(
            "message",
            TextOptions::default().set_indexing_options(text.clone()),
        );
        let attrs = b.add_json_field(
            "attrs",
            JsonObjectOptions::default().set_indexing_options(text),
        );
        Fields {
            schema: b.build(),
            index,
            time,
            received,
            category,
            action,
            outcome,
            target_user,
            reason,
            id,
            records,
            actor,
            patient,
            resource,
            source,
            via,
            enriched,
            message,
            attrs,
        }
    }

    /// The document for the entry at global `index` with canonical `bytes`.
    ///
    /// An entry that does not parse (never the case for what the ledger
    /// accepted, but the index must not stall on it) still gets a document
    /// with its index, so the index has no gap; `Err` carries the
    /// reason for the caller to log.
    pub fn document(&self, index: u64, bytes: &[u8]) -> (TantivyDocument, Result<(), String>) {
        match EntryView::from_ledger_bytes(bytes) {
            Ok(view) => {
                let mut doc = TantivyDocument::new();
                doc.add_u64(self.index, index);
                self.fill_view(&mut doc, &view);
                (doc, Ok(()))
            }
            // Not an entry as the ledger writes them: index what the
            // generic JSON reading finds, and say why.
            Err(_) => self.document_from_json(index, bytes),
        }
    }

    /// [`Fields::document`] through a `serde_json` tree of the whole
    /// entry: the path for bytes that are not a well-formed entry, and the
    /// reference the fast path is tested against.
    fn document_from_json(
        &self,
        index: u64,
        bytes: &[u8],
    ) -> (TantivyDocument, Result<(), String>) {
        let mut doc = TantivyDocument::new();
        doc.add_u64(self.index, index);
        let outcome = match serde_json::from_slice::<Map<String, Value>>(bytes) {
            Ok(entry) => self.fill(&mut doc, entry),
            Err(e) => Err(format!("entry {index} is not a json object: {e}")),
        };
        (doc, outcome)
    }

    fn fill(&self, doc: &mut TantivyDocument, mut entry: Map<String, Value>) -> Result<(), String> {
        if let Some(t) = entry.get("received").and_then(Value::as_str) {
            doc.add_date(self.received, parse_date(t)?);
        }
        if let Some(via) = entry.remove("via") {
            self.add_object(doc, self.via, via);
        }
        if let Some(enriched) = entry.remove("enriched") {
            self.add_object(doc, self.enriched, enriched);
        }
        let Some(Value::Object(mut event)) = entry.remove("event") else {
            return Err("entry has no event object".into());
        };
        if let Some(t) = event.get("time").and_then(Value::as_str) {
            doc.add_date(self.time, parse_date(t)?);
        }
        for (name, field) in [
            ("category", self.category),
            ("action", self.action),
            ("outcome", self.outcome),
            ("target_user", self.target_user),
            ("reason", self.reason),
            ("id", self.id),
            ("message", self.message),
        ] {
            if let Some(v) = event.get(name).and_then(Value::as_str) {
                doc.add_text(field, v);
            }
        }
        if let Some(n) = event.get("records").and_then(Value::as_u64) {
            doc.add_u64(self.records, n);
        }
        for (name, field) in [
            ("actor", self.actor),
            ("patient", self.patient),
            ("resource", self.resource),
            ("source", self.source),
            ("attrs", self.attrs),
        ] {
            if let Some(v) = event.remove(name) {
                self.add_object(doc, field, v);
            }
        }
        Ok(())
    }

    /// The document for an entry decoded with [`EntryView`]: the same
    /// terms and columns as [`Fields::document_from_json`], without
    /// building a `serde_json` tree of the whole entry first.
    fn fill_view(&self, doc: &mut TantivyDocument, e: &EntryView<'_>) {
        doc.add_date(self.received, to_date(e.received));
        let via = &e.via;
        self.add_pairs(
            doc,
            self.via,
            [
                ("kind", Some(&*via.kind)),
                ("peer", via.peer.as_deref()),
                ("principal", via.principal.as_deref()),
            ],
        );
        if let Some(en) = &e.enriched {
            let mut object = Vec::new();
            for (name, staff) in [("actor", &en.actor), ("target_user", &en.target_user)] {
                if let Some(s) = staff {
                    object.push((name.to_owned(), staff_value(s)));
                }
            }
            if let Some(p) = &en.patient {
                let mut o = pairs([
                    ("last_name", p.last_name.as_deref()),
                    ("home_zip", p.home_zip.as_deref()),
                ]);
                o.push(("vip".to_owned(), OwnedValue::Bool(p.vip)));
                o.extend(pairs([("employee_user", p.employee_user.as_deref())]));
                object.push(("patient".to_owned(), OwnedValue::Object(o)));
            }
            if let Some(n) = &en.network {
                object.push(("network".to_owned(), text_value(n)));
            }
            doc.add_field_value(self.enriched, &OwnedValue::Object(object));
        }
        let ev = &e.event;
        doc.add_date(self.time, to_date(ev.time));
        doc.add_text(self.category, ev.category.as_str());
        doc.add_text(self.action, &*ev.action);
        doc.add_text(self.outcome, ev.outcome.as_str());
        for (value, field) in [
            (&ev.target_user, self.target_user),
            (&ev.reason, self.reason),
            (&ev.id, self.id),
            (&ev.message, self.message),
        ] {
            if let Some(v) = value {
                doc.add_text(field, &**v);
            }
        }
        if let Some(n) = ev.records {
            doc.add_u64(self.records, n);
        }
        if let Some(a) = &ev.actor {
            let mut o = pairs([
                ("user", a.user.as_deref()),
                ("role", a.role.as_deref()),
                ("department", a.department.as_deref()),
                ("ip", a.ip.as_deref()),
                ("session", a.session.as_deref()),
                ("device", a.device.as_deref()),
            ]);
            if let Some(m) = a.mfa {
                o.push(("mfa".to_owned(), OwnedValue::Bool(m)));
            }
            doc.add_field_value(self.actor, &OwnedValue::Object(o));
        }
        if let Some(p) = &ev.patient {
            self.add_pairs(doc, self.patient, [("id", Some(&*p.id))]);
        }
        if let Some(r) = &ev.resource {
            self.add_pairs(
                doc,
                self.resource,
                [("type", Some(&*r.kind)), ("id", r.id.as_deref())],
            );
        }
        if let Some(s) = &ev.source {
            self.add_pairs(
                doc,
                self.source,
                [("system", Some(&*s.system)), ("host", s.host.as_deref())],
            );
        }
        if let Some(attrs) = attrs_value(&ev.attrs) {
            doc.add_field_value(self.attrs, &attrs);
        }
    }

    fn add_pairs<const N: usize>(
        &self,
        doc: &mut TantivyDocument,
        field: Field,
        items: [(&str, Option<&str>); N],
    ) {
        doc.add_field_value(field, &OwnedValue::Object(pairs(items)));
    }

    fn add_object(&self, doc: &mut TantivyDocument, field: Field, value: Value) {
        if value.is_object() {
            let value = OwnedValue::from(value);
            doc.add_field_value(field, &value);
        }
    }
}

impl Default for Fields {
    fn default() -> Self {
        Fields::new()
    }
}

/// A string as the generic path converts it: tantivy turns RFC 3339
/// date-times inside JSON objects into dates.
fn text_value(text: &str) -> OwnedValue {
    OwnedValue::from(Value::String(text.to_owned()))
}

/// The present members of an object, in order.
fn pairs<const N: usize>(items: [(&str, Option<&str>); N]) -> Vec<(String, OwnedValue)> {
    items
        .into_iter()
        .filter_map(|(k, v)| Some((k.to_owned(), text_value(v?))))
        .collect()
}

fn staff_value(s: &StaffView<'_>) -> OwnedValue {
    OwnedValue::Object(pairs([
        ("name", s.name.as_deref()),
        ("last_name", s.last_name.as_deref()),
        ("role", s.role.as_deref()),
        ("department", s.department.as_deref()),
        ("home_zip", s.home_zip.as_deref()),
        ("hired", s.hired.as_deref()),
        ("terminated", s.terminated.as_deref()),
    ]))
}

/// `attrs`, parsed from its raw JSON now (the view defers it).
fn attrs_value(attrs: &Attrs<'_>) -> Option<OwnedValue> {
    let value = match attrs {
        Attrs::None => return None,
        Attrs::Map(m) => Value::Object((*m).clone()),
        Attrs::Raw(raw, _) => serde_json::from_str::<Value>(raw.get()).ok()?,
    };
    value.is_object().then(|| OwnedValue::from(value))
}

fn parse_date(text: &str) -> Result<DateTime, String> {
    let t = Timestamp::parse(text).map_err(|e| format!("timestamp {text:?}: {e}"))?;
    Ok(to_date(t))
}

/// A timestamp as a tantivy date (millisecond precision, as indexed).
pub fn to_date(t: Timestamp) -> DateTime {
    DateTime::from_timestamp_millis(t.unix_ms())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tantivy::schema::document::Document;

    /// A small deterministic generator (splitmix64).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn some(&mut self) -> bool {
            !self.next().is_multiple_of(3)
        }
        /// Plain words, JSON escapes, non-ASCII, and a date-time (which
        /// tantivy turns into a date inside JSON objects).
        fn text(&mut self) -> String {
            let i = self.next();
            match i % 6 {
                0 => format!("u{:04}", i % 9999),
                1 => format!("say \"hi\"\\ {}\n\ttab", i % 77),
                2 => "Zoë Ångström 医生".to_owned(),
                3 => "2026-11-27T14:03:11.500Z".to_owned(),
                4 => format!("10.0.{}.{}", i % 256, (i >> 8) % 256),
                _ => format!("Viewed encounter note {}", i % 1000),
            }
        }
    }

    fn put(o: &mut Map<String, Value>, rng: &mut Rng, key: &str) {
        if rng.some() {
            o.insert(key.to_owned(), Value::String(rng.text()));
        }
    }

    fn object(rng: &mut Rng, keys: &[&str]) -> Value {
        let mut o = Map::new();
        for k in keys {
            put(&mut o, rng, k);
        }
        Value::Object(o)
    }

    fn staff(rng: &mut Rng) -> Value {
        object(
            rng,
            &[
                "name",
                "last_name",
                "role",
                "department",
                "home_zip",
                "hired",
                "terminated",
            ],
        )
    }

    fn entry(rng: &mut Rng) -> Value {
        let mut event = Map::new();
        event.insert("time".into(), json!("2026-11-27T14:03:11.123456Z"));
        let category = ["access", "auth", "admin", "system"][(rng.next() % 4) as usize];
        event.insert("category".into(), json!(category));
        event.insert("action".into(), json!(rng.text()));
        let outcome = ["success", "failure", "unknown"][(rng.next() % 3) as usize];
        event.insert("outcome".into(), json!(outcome));
        for k in ["id", "target_user", "reason", "message"] {
            put(&mut event, rng, k);
        }
        if rng.some() {
            event.insert("records".into(), json!(rng.next() % 100_000));
        }
        if rng.some() {
            let mut a = object(
                rng,
                &["user", "role", "department", "ip", "session", "device"],
            );
            if rng.some() {
                a["mfa"] = json!(rng.next().is_multiple_of(2));
            }
            event.insert("actor".into(), a);
        }
        if rng.some() {
            event.insert("patient".into(), json!({ "id": rng.text() }));
        }
        if rng.some() {
            let mut r = object(rng, &["id"]);
            r["type"] = json!(rng.text());
            event.insert("resource".into(), r);
        }
        if rng.some() {
            let mut s = object(rng, &["host"]);
            s["system"] = json!(rng.text());
            event.insert("source".into(), s);
        }
        if rng.some() {
            event.insert(
                "attrs".into(),
                json!({
                    "n": rng.next() % 1000, "neg": -5, "f": 1.5, "b": true, "nil": null,
                    "list": ["a", rng.text(), 3], "deep": { "k": rng.text() },
                    "when": "2026-11-27T14:03:11Z",
                }),
            );
        }
        let mut via = object(rng, &["peer", "principal"]);
        via["kind"] = json!("syslog_tcp");
        let mut e = json!({ "received": "2026-11-27T14:03:12.5Z", "via": via, "event": event });
        if rng.some() {
            let mut en = Map::new();
            if rng.some() {
                en.insert("actor".into(), staff(rng));
            }
            if rng.some() {
                en.insert("target_user".into(), staff(rng));
            }
            if rng.some() {
                let mut p = object(rng, &["last_name", "home_zip", "employee_user"]);
                p["vip"] = json!(rng.next().is_multiple_of(2));
                en.insert("patient".into(), p);
            }
            put(&mut en, rng, "network");
            e["enriched"] = Value::Object(en);
        }
        e
    }

    /// A document as comparable JSON (object members sorted by name).
    fn comparable(fields: &Fields, doc: &TantivyDocument) -> Value {
        serde_json::from_str(&doc.to_json(&fields.schema)).unwrap()
    }

    #[test]
    fn documents_from_the_entry_view_equal_the_generic_json_ones() {
        let fields = Fields::new();
        let mut rng = Rng(16);
        for i in 0..3_000 {
            let bytes = serde_json::to_vec(&entry(&mut rng)).unwrap();
            assert!(
                EntryView::from_ledger_bytes(&bytes).is_ok(),
                "{}",
                String::from_utf8_lossy(&bytes)
            );
            let (fast, ok) = fields.document(i, &bytes);
            ok.unwrap();
            let (generic, ok) = fields.document_from_json(i, &bytes);
            ok.unwrap();
            assert_eq!(
                comparable(&fields, &fast),
                comparable(&fields, &generic),
                "{}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }

    #[test]
    fn bytes_that_are_no_entry_still_get_a_document_and_a_reason() {
        let fields = Fields::new();
        for bytes in [&b"not json"[..], b"[1,2]", b"{\"received\":\"x\"}"] {
            let (doc, ok) = fields.document(7, bytes);
            assert!(ok.is_err());
            assert_eq!(
                comparable(&fields, &doc)["index"],
                json!([7]),
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
}

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

fn parse_date(text: &str) -> Result<DateTime, String> {
    let t = Timestamp::parse(text).map_err(|e| format!("timestamp {text:?}: {e}"))?;
    Ok(to_date(t))
}

/// A timestamp as a tantivy date (millisecond precision, as indexed).
pub fn to_date(t: Timestamp) -> DateTime {
    DateTime::from_timestamp_millis(t.unix_ms())
}

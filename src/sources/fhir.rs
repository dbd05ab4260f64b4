//! FHIR R4 `AuditEvent` input: maps a request body (one `AuditEvent`, or a
//! `Bundle` of type `batch` or `collection` holding them) to normalized
//! [`Event`]s. Pure functions, no I/O; the HTTP handler calls [`map_body`]
//! and answers failures with [`operation_outcome`].
//!
//! Every `AuditEvent` gives one [`FhirItem`]: the mapped, validated event, or
//! [`FhirItem::Invalid`] with the entry's JSON and a [`FhirIssue`] whose
//! `expression` is a FHIRPath to the offending element
//! (`Bundle.entry[3].resource.recorded`, `AuditEvent.agent[0].network.address`).
//! Only a body that is unusable as a whole (not JSON, not an `AuditEvent` or
//! `Bundle`, another bundle type, more than [`MAX_BUNDLE_ENTRIES`] entries) is
//! an outer `Err`.
//!
//! # Mapping (R4, <http://hl7.org/fhir/R4/auditevent.html>)
//!
//! | AuditEvent | event |
//! | --- | --- |
//! | `id` (else a bundle entry's `fullUrl` when it is `urn:uuid:…`) | `id` = `fhir-` + that value, so a retried resource is stored once and cannot collide with another source's ids |
//! | `recorded` (required) | `time` |
//! | `type`, `subtype`, `action` | `category`, `action`: table below |
//! | `outcome` `0` / `4`, `8`, `12` / absent | `outcome` `success` / `failure` / `unknown`; the raw code is kept in `attrs.fhir_outcome` |
//! | `outcomeDesc` | `message` |
//! | requestor agent (`requestor: true`, else the first agent) | `actor`: `user` from `who.identifier.value`, else `who.reference`, else `altId`, else `name`; `role` from the first `role` (else `type`) coding code, else its text; `ip` from `network.address` when `network.type` is `2` (must parse as an IP address, else the item is invalid); `device` from `network.address` when `network.type` is `1` |
//! | first entity whose `what.reference` is a `Patient` (or whose `type` is `1` Person and `role` is `1` Patient) | `patient.id`: the reference's id, else `what.identifier.value`; more than one such entity is counted in `attrs.fhir_patients` |
//! | first other entity | `resource`: `type` is the reference's resource type in snake_case (`DocumentReference` -> `document_reference`), or the entity type (`person`, `system_object`, `organization`, `other`); `id` is the reference's id, else `what.identifier.value` |
//! | entity `query` (base64) | `attrs.fhir_query_bytes`: decoded length, summed over entities (the query text may hold PHI and is not copied) |
//! | `source.observer` (required) | `source.system`: its `display`, else `reference`, else `identifier.value` |
//! | `source.site` | `source.host` |
//! | `purposeOfEvent` and the requestor's `purposeOfUse` codes | `reason`: `BTG` anywhere -> `break_glass`; else the first code: `TREAT` -> `treatment`, `ETREAT` -> `emergency_treatment`, `HPAYMT` -> `payment`, `HOPERAT` -> `operations`, any other lowercased |
//! | `type.code`, `subtype[].code`, `action` | `attrs.fhir_type`, `attrs.fhir_subtype` (array), `attrs.fhir_action` |
//!
//! Category and action. DICOM codes (system
//! `http://dicom.nema.org/resources/ontology/DCM`, or no system) and `rest`
//! (system `http://terminology.hl7.org/CodeSystem/audit-event-type`, or no
//! system); REST subtypes are `http://hl7.org/fhir/restful-interaction` codes
//! (or no system):
//!
//! | type | subtype | category / action |
//! | --- | --- | --- |
//! | `110114` User Authentication | `110122` Login / `110123` Logout / other | `auth` / `login` / `logout` / `authenticate` |
//! | `110113` Security Alert | `110127` Emergency Override Started | `access` / `break_glass`, `reason: break_glass` |
//! | `110113` | `110128`-`110131` network, security, hardware, software configuration | `admin` / `config_change` |
//! | `110113` | `110133` / `110134` audit recording stopped / started | `admin` / `audit_config_change` |
//! | `110113` | `110135`-`110137` object, role, user security attributes changed | `admin` / `permission_change` |
//! | `110113` | other | `system` / `security_alert` |
//! | `110100` Application Activity | `110120` / `110121` / other | `admin` / `application_start` / `application_stop` / `application_activity` |
//! | `110108` Network Entry | `110124` / `110125` / other | `system` / `network_attach` / `network_detach` / `network_entry` |
//! | `110106` Export | any | `access` / `export` |
//! | `110107` Import | any | `access` / `create` |
//! | `110105` DICOM Study Deleted | any | `access` / `delete` |
//! | `110112` Query | any | `access` / `search` |
//! | anything else (`rest`, `110110` Patient Record, unknown codes or systems) | REST `read`, `vread`, `history*` | `access` / `view` |
//! | | REST `search`, `search-type`, `search-system` | `access` / `search` |
//! | | REST `create` / `update`, `patch` / `delete` | `access` / `create` / `update` / `delete` |
//! | | none of those: from `action` | `C` `create`, `R` `view`, `U` `update`, `D` `delete`, `E` `search` when an entity carries a `query`, else `execute`; no action: `unknown` |
//!
//! Unknown codes never reject an event; the codes are kept in `attrs`.
//!
//! Strictness: `recorded`, `type` (with a `code`) and `source.observer` are
//! required (the first two by the R4 cardinality and sealtrail's model, the
//! last because source silence is tracked by `source.system`); a wrong JSON
//! type for a mapped element, an `outcome` or `action` outside its value set,
//! an unparseable `recorded`, a `network.type` `2` address that is not an IP,
//! invalid base64 in `query`, too many repetitions of an element, and a mapped
//! value that breaks [`Event::validate`] (too long, say) make the item invalid.
//! `agent` (1..* in R4) and `agent.requestor` (1..1) may be missing: the event
//! is kept, without an actor.

use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value, json};

use crate::event::{
    Actor, Category, Event, EventError, Outcome, Patient, Resource, Source, Timestamp,
};

/// Most entries of a bundle; more make the whole body `too-costly`.
pub const MAX_BUNDLE_ENTRIES: usize = 10_000;
/// Most `agent` elements of one AuditEvent.
pub const MAX_AGENTS: usize = 64;
/// Most `entity` elements of one AuditEvent.
pub const MAX_ENTITIES: usize = 1_000;
/// Most repetitions of `subtype`, `purposeOfEvent`, `role`, `coding`, ...
pub const MAX_REPEATS: usize = 32;

/// DICOM code system of the AuditEvent type and subtype codes.
pub const DICOM_SYSTEM: &str = "http://dicom.nema.org/resources/ontology/DCM";
/// Code system of the `rest` AuditEvent type.
pub const AUDIT_EVENT_TYPE_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/audit-event-type";
/// Code system of the REST subtypes (`read`, `search-type`, ...).
pub const RESTFUL_INTERACTION_SYSTEM: &str = "http://hl7.org/fhir/restful-interaction";

/// Prefix of event ids taken from AuditEvent ids.
pub const ID_PREFIX: &str = "fhir-";

/// One problem, as an OperationOutcome `issue` states it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {diagnostics}")]
pub struct FhirIssue {
    /// Always `error` for now.
    pub severity: &'static str,
    /// FHIR issue type: `structure`, `required`, `value`, `invalid`, `too-costly`.
    pub code: &'static str,
    pub diagnostics: String,
    /// FHIRPath of the element, e.g. `Bundle.entry[3].resource.recorded`.
    pub expression: Option<String>,
}

impl FhirIssue {
    fn new(code: &'static str, diagnostics: impl Into<String>, expression: Option<String>) -> Self {
        Self {
            severity: "error",
            code,
            diagnostics: diagnostics.into(),
            expression,
        }
    }

    fn structure(path: String, expected: &str) -> Self {
        Self::new("structure", format!("must be {expected}"), Some(path))
    }

    fn required(path: String) -> Self {
        Self::new("required", "is required", Some(path))
    }

    fn value(path: String, diagnostics: impl Into<String>) -> Self {
        Self::new("value", diagnostics, Some(path))
    }

    fn too_costly(path: String, n: usize, max: usize) -> Self {
        Self::new(
            "too-costly",
            format!("has {n} repetitions, more than the limit of {max}"),
            Some(path),
        )
    }
}

/// What one AuditEvent of the body became.
#[derive(Debug, Clone, PartialEq)]
// The handler's contract is `Event(Event)`; items live for one request and
// the event is moved on, so boxing would only add an allocation per event.
#[allow(clippy::large_enum_variant)]
pub enum FhirItem {
    Event(Event),
    Invalid {
        /// The AuditEvent's JSON (the bundle entry's `resource`, or the entry
        /// itself when it has none), for the `ingest_rejected` record.
        raw: Vec<u8>,
        issue: FhirIssue,
    },
}

/// Maps a request body: one `AuditEvent`, or a `Bundle` (`batch` or
/// `collection`) of them. `Err` means the body as a whole is unusable.
pub fn map_body(body: &[u8]) -> Result<Vec<FhirItem>, FhirIssue> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| FhirIssue::new("structure", format!("body is not json: {e}"), None))?;
    let Value::Object(obj) = &value else {
        return Err(FhirIssue::new(
            "structure",
            "body must be a json object (a fhir resource)",
            None,
        ));
    };
    match obj.get("resourceType") {
        Some(Value::String(t)) if t == "AuditEvent" => {
            let item = match map_audit_event(obj, "AuditEvent", None) {
                Ok(event) => FhirItem::Event(event),
                Err(issue) => FhirItem::Invalid {
                    raw: body.to_vec(),
                    issue,
                },
            };
            Ok(vec![item])
        }
        Some(Value::String(t)) if t == "Bundle" => map_bundle(obj),
        Some(Value::String(t)) => Err(FhirIssue::new(
            "invalid",
            format!(
                "resourceType `{}` is not accepted here; send an AuditEvent or a Bundle of them",
                clip(t)
            ),
            Some("resourceType".to_owned()),
        )),
        Some(_) => Err(FhirIssue::structure("resourceType".to_owned(), "a string")),
        None => Err(FhirIssue::new(
            "required",
            "resourceType is required",
            Some("resourceType".to_owned()),
        )),
    }
}

/// An R4 `OperationOutcome` listing `issues`. With no issues it carries one
/// `information` issue, since R4 requires at least one.
pub fn operation_outcome(issues: &[FhirIssue]) -> Value {
    let issue: Vec<Value> = if issues.is_empty() {
        vec![json!({
            "severity": "information",
            "code": "informational",
            "diagnostics": "no issues",
        })]
    } else {
        issues
            .iter()
            .map(|i| {
                let mut o = Map::new();
                o.insert("severity".to_owned(), json!(i.severity));
                o.insert("code".to_owned(), json!(i.code));
                o.insert("diagnostics".to_owned(), json!(i.diagnostics));
                if let Some(e) = &i.expression {
                    o.insert("expression".to_owned(), json!([e]));
                }
                Value::Object(o)
            })
            .collect()
    };
    json!({"resourceType": "OperationOutcome", "issue": issue})
}

fn map_bundle(bundle: &Map<String, Value>) -> Result<Vec<FhirItem>, FhirIssue> {
    match bundle.get("type") {
        Some(Value::String(t)) if t == "batch" || t == "collection" => {}
        Some(Value::String(t)) => {
            return Err(FhirIssue::new(
                "invalid",
                format!(
                    "bundle type `{}` is not accepted; use batch or collection",
                    clip(t)
                ),
                Some("Bundle.type".to_owned()),
            ));
        }
        Some(_) => return Err(FhirIssue::structure("Bundle.type".to_owned(), "a string")),
        None => return Err(FhirIssue::required("Bundle.type".to_owned())),
    }
    let entries = match bundle.get("entry") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(entries)) => entries,
        Some(_) => return Err(FhirIssue::structure("Bundle.entry".to_owned(), "an array")),
    };
    if entries.len() > MAX_BUNDLE_ENTRIES {
        return Err(FhirIssue::too_costly(
            "Bundle.entry".to_owned(),
            entries.len(),
            MAX_BUNDLE_ENTRIES,
        ));
    }
    Ok(entries
        .iter()
        .enumerate()
        .map(|(i, entry)| map_entry(i, entry))
        .collect())
}

fn map_entry(i: usize, entry: &Value) -> FhirItem {
    let entry_path = format!("Bundle.entry[{i}]");
    let invalid = |raw: &Value, issue| FhirItem::Invalid {
        // Serializing a `Value` cannot fail: its keys are strings.
        raw: serde_json::to_vec(raw).unwrap_or_default(),
        issue,
    };
    let Value::Object(entry_obj) = entry else {
        return invalid(entry, FhirIssue::structure(entry_path, "an object"));
    };
    let resource = match entry_obj.get("resource") {
        Some(Value::Object(r)) => r,
        Some(other) => {
            return invalid(
                other,
                FhirIssue::structure(format!("{entry_path}.resource"), "an object"),
            );
        }
        None => return invalid(entry, FhirIssue::required(format!("{entry_path}.resource"))),
    };
    let raw = &entry_obj["resource"];
    let base = format!("{entry_path}.resource");
    match resource.get("resourceType") {
        Some(Value::String(t)) if t == "AuditEvent" => {}
        Some(Value::String(t)) => {
            return invalid(
                raw,
                FhirIssue::new(
                    "invalid",
                    format!("resourceType `{}` is not an AuditEvent", clip(t)),
                    Some(format!("{base}.resourceType")),
                ),
            );
        }
        Some(_) => {
            return invalid(
                raw,
                FhirIssue::structure(format!("{base}.resourceType"), "a string"),
            );
        }
        None => return invalid(raw, FhirIssue::required(format!("{base}.resourceType"))),
    }
    let full_url = match entry_obj.get("fullUrl") {
        Some(Value::String(u)) => Some(u.as_str()),
        _ => None,
    };
    match map_audit_event(resource, &base, full_url) {
        Ok(event) => FhirItem::Event(event),
        Err(issue) => invalid(raw, issue),
    }
}

/// Cuts a value quoted in a diagnostic to a readable length.
fn clip(s: &str) -> String {
    const MAX: usize = 64;
    match s.char_indices().nth(MAX) {
        None => s.to_owned(),
        Some((at, _)) => format!("{}…", &s[..at]),
    }
}

/// Typed access to the elements of one resource, with FHIRPath errors.
struct Ctx<'a> {
    base: &'a str,
}

impl Ctx<'_> {
    fn path(&self, rel: &str) -> String {
        format!("{}.{rel}", self.base)
    }

    fn opt_str<'v>(
        &self,
        obj: &'v Map<String, Value>,
        key: &str,
        rel: &str,
    ) -> Result<Option<&'v str>, FhirIssue> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(FhirIssue::structure(self.path(rel), "a string")),
        }
    }

    fn opt_bool(
        &self,
        obj: &Map<String, Value>,
        key: &str,
        rel: &str,
    ) -> Result<Option<bool>, FhirIssue> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(FhirIssue::structure(self.path(rel), "a boolean")),
        }
    }

    fn opt_obj<'v>(
        &self,
        obj: &'v Map<String, Value>,
        key: &str,
        rel: &str,
    ) -> Result<Option<&'v Map<String, Value>>, FhirIssue> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(o)) => Ok(Some(o)),
            Some(_) => Err(FhirIssue::structure(self.path(rel), "an object")),
        }
    }

    /// An array of objects, bounded to `max` items.
    fn arr<'v>(
        &self,
        obj: &'v Map<String, Value>,
        key: &str,
        rel: &str,
        max: usize,
    ) -> Result<Vec<&'v Map<String, Value>>, FhirIssue> {
        let items = match obj.get(key) {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Array(items)) => items,
            Some(_) => return Err(FhirIssue::structure(self.path(rel), "an array")),
        };
        if items.len() > max {
            return Err(FhirIssue::too_costly(self.path(rel), items.len(), max));
        }
        items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::Object(o) => Ok(o),
                _ => Err(FhirIssue::structure(
                    self.path(&format!("{rel}[{i}]")),
                    "an object",
                )),
            })
            .collect()
    }

    fn coding<'v>(&self, obj: &'v Map<String, Value>, rel: &str) -> Result<Coding<'v>, FhirIssue> {
        Ok(Coding {
            system: self.opt_str(obj, "system", &format!("{rel}.system"))?,
            code: self.opt_str(obj, "code", &format!("{rel}.code"))?,
        })
    }

    /// The first coding's code (else the text) of a CodeableConcept.
    fn concept_code<'v>(
        &self,
        obj: &'v Map<String, Value>,
        rel: &str,
    ) -> Result<Option<(&'v str, String)>, FhirIssue> {
        let codings = self.arr(obj, "coding", &format!("{rel}.coding"), MAX_REPEATS)?;
        for (i, c) in codings.iter().enumerate() {
            let crel = format!("{rel}.coding[{i}]");
            if let Some(code) = self.coding(c, &crel)?.code {
                return Ok(Some((code, format!("{crel}.code"))));
            }
        }
        let trel = format!("{rel}.text");
        Ok(self.opt_str(obj, "text", &trel)?.map(|t| (t, trel)))
    }

    /// All codes of a list of CodeableConcepts, with their paths.
    fn concept_codes<'v>(
        &self,
        obj: &'v Map<String, Value>,
        key: &str,
        rel: &str,
        out: &mut Vec<(&'v str, String)>,
    ) -> Result<(), FhirIssue> {
        for (i, concept) in self.arr(obj, key, rel, MAX_REPEATS)?.iter().enumerate() {
            let crel = format!("{rel}[{i}]");
            for (j, c) in self
                .arr(concept, "coding", &format!("{crel}.coding"), MAX_REPEATS)?
                .iter()
                .enumerate()
            {
                let corel = format!("{crel}.coding[{j}]");
                if let Some(code) = self.coding(c, &corel)?.code {
                    out.push((code, format!("{corel}.code")));
                }
            }
        }
        Ok(())
    }
}

#[derive(Clone, Copy)]
struct Coding<'a> {
    system: Option<&'a str>,
    code: Option<&'a str>,
}

impl Coding<'_> {
    /// Whether this coding is `code` in `system` (a missing system matches).
    fn is(&self, system: &str, code: &str) -> bool {
        self.code == Some(code) && self.system.is_none_or(|s| s == system)
    }
}

/// Where each mapped event field came from, to turn an [`EventError`] path
/// into a FHIRPath.
#[derive(Default)]
struct Origins(Vec<(&'static str, String)>);

impl Origins {
    fn set(&mut self, field: &'static str, rel: String) {
        self.0.push((field, rel));
    }

    /// The origin of the longest mapped field that is `path` or contains it.
    fn find(&self, path: &str) -> Option<&str> {
        self.0
            .iter()
            .filter(|(field, _)| {
                path == *field
                    || path
                        .strip_prefix(field)
                        .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
            })
            .max_by_key(|(field, _)| field.len())
            .map(|(_, rel)| rel.as_str())
    }
}

fn map_audit_event(
    obj: &Map<String, Value>,
    base: &str,
    full_url: Option<&str>,
) -> Result<Event, FhirIssue> {
    let cx = Ctx { base };
    let mut origins = Origins::default();
    let mut attrs = Map::new();

    // id: the resource's own id, else a batch entry's urn:uuid fullUrl.
    let id = match cx.opt_str(obj, "id", "id")? {
        Some(id) => {
            origins.set("id", "id".to_owned());
            Some(format!("{ID_PREFIX}{id}"))
        }
        None => full_url.filter(|u| u.starts_with("urn:uuid:")).map(|u| {
            origins.set("id", "fullUrl".to_owned());
            format!("{ID_PREFIX}{u}")
        }),
    };

    let recorded = cx
        .opt_str(obj, "recorded", "recorded")?
        .ok_or_else(|| FhirIssue::required(cx.path("recorded")))?;
    let time = Timestamp::parse(recorded).map_err(|e| {
        FhirIssue::value(cx.path("recorded"), format!("must be a fhir instant: {e}"))
    })?;

    let type_obj = cx
        .opt_obj(obj, "type", "type")?
        .ok_or_else(|| FhirIssue::required(cx.path("type")))?;
    let event_type = cx.coding(type_obj, "type")?;
    let type_code = event_type
        .code
        .ok_or_else(|| FhirIssue::required(cx.path("type.code")))?;
    attrs.insert("fhir_type".to_owned(), json!(type_code));
    origins.set("attrs.fhir_type", "type.code".to_owned());

    let mut subtypes = Vec::new();
    for (i, s) in cx
        .arr(obj, "subtype", "subtype", MAX_REPEATS)?
        .iter()
        .enumerate()
    {
        let coding = cx.coding(s, &format!("subtype[{i}]"))?;
        if coding.code.is_some() {
            subtypes.push(coding);
        }
    }
    if !subtypes.is_empty() {
        let codes: Vec<Value> = subtypes
            .iter()
            .filter_map(|c| c.code)
            .map(|c| json!(c))
            .collect();
        attrs.insert("fhir_subtype".to_owned(), Value::Array(codes));
        origins.set("attrs.fhir_subtype", "subtype".to_owned());
    }

    let action_code = match cx.opt_str(obj, "action", "action")? {
        None => None,
        Some(a @ ("C" | "R" | "U" | "D" | "E")) => Some(a),
        Some(other) => {
            return Err(FhirIssue::value(
                cx.path("action"),
                format!("`{}` is not one of C, R, U, D, E", clip(other)),
            ));
        }
    };
    if let Some(a) = action_code {
        attrs.insert("fhir_action".to_owned(), json!(a));
    }

    let outcome = match cx.opt_str(obj, "outcome", "outcome")? {
        None => Outcome::Unknown,
        Some(code) => {
            let outcome = match code {
                "0" => Outcome::Success,
                "4" | "8" | "12" => Outcome::Failure,
                other => {
                    return Err(FhirIssue::value(
                        cx.path("outcome"),
                        format!("`{}` is not one of 0, 4, 8, 12", clip(other)),
                    ));
                }
            };
            attrs.insert("fhir_outcome".to_owned(), json!(code));
            outcome
        }
    };
    let message = cx
        .opt_str(obj, "outcomeDesc", "outcomeDesc")?
        .map(str::to_owned);
    if message.is_some() {
        origins.set("message", "outcomeDesc".to_owned());
    }

    let mut purposes = Vec::new();
    cx.concept_codes(obj, "purposeOfEvent", "purposeOfEvent", &mut purposes)?;

    // The requestor agent, else the first.
    let agents = cx.arr(obj, "agent", "agent", MAX_AGENTS)?;
    let mut requestor = None;
    for (i, agent) in agents.iter().enumerate() {
        if cx.opt_bool(agent, "requestor", &format!("agent[{i}].requestor"))? == Some(true) {
            requestor = Some((i, *agent));
            break;
        }
    }
    let requestor = requestor.or_else(|| agents.first().map(|a| (0, *a)));
    let actor = match requestor {
        Some((i, agent)) => {
            cx.concept_codes(
                agent,
                "purposeOfUse",
                &format!("agent[{i}].purposeOfUse"),
                &mut purposes,
            )?;
            map_agent(&cx, agent, &format!("agent[{i}]"), &mut origins)?
        }
        None => None,
    };

    let source_obj = cx
        .opt_obj(obj, "source", "source")?
        .ok_or_else(|| FhirIssue::required(cx.path("source")))?;
    let observer = cx
        .opt_obj(source_obj, "observer", "source.observer")?
        .ok_or_else(|| FhirIssue::required(cx.path("source.observer")))?;
    let system = reference_label(
        &cx,
        observer,
        "source.observer",
        &mut origins,
        "source.system",
    )?
    .ok_or_else(|| {
        FhirIssue::new(
            "required",
            "needs a display, reference or identifier.value to name the source system",
            Some(cx.path("source.observer")),
        )
    })?;
    let host = cx
        .opt_str(source_obj, "site", "source.site")?
        .map(str::to_owned);
    if host.is_some() {
        origins.set("source.host", "source.site".to_owned());
    }

    let entities = map_entities(&cx, obj, &mut origins, &mut attrs)?;

    let (category, action, forced_reason) =
        classify(event_type, &subtypes, action_code, entities.has_query);
    let reason = match forced_reason {
        // An emergency override (110127) is break-glass whatever the purposes say.
        Some(forced) => Some(forced.to_owned()),
        None => purpose_reason(&purposes, &mut origins),
    };

    let event = Event {
        id,
        time,
        category,
        action: action.to_owned(),
        outcome,
        actor,
        patient: entities.patient,
        resource: entities.resource,
        target_user: None,
        source: Some(Source { system, host }),
        reason,
        records: None,
        message,
        attrs: Some(attrs),
    };
    event
        .validate_from_client()
        .map_err(|e| validation_issue(&cx, &origins, e))?;
    Ok(event)
}

fn validation_issue(cx: &Ctx<'_>, origins: &Origins, err: EventError) -> FhirIssue {
    match err {
        EventError::Invalid { path, reason } => {
            let expression = match origins.find(&path) {
                Some(rel) => cx.path(rel),
                None => cx.base.to_owned(),
            };
            FhirIssue::value(expression, format!("{reason} (as event field `{path}`)"))
        }
        other => FhirIssue::new("invalid", other.to_string(), Some(cx.base.to_owned())),
    }
}

fn map_agent(
    cx: &Ctx<'_>,
    agent: &Map<String, Value>,
    rel: &str,
    origins: &mut Origins,
) -> Result<Option<Actor>, FhirIssue> {
    let mut actor = Actor::default();
    if let Some(who) = cx.opt_obj(agent, "who", &format!("{rel}.who"))? {
        actor.user = reference_id(cx, who, &format!("{rel}.who"), origins, "actor.user")?;
    }
    if actor.user.is_none() {
        for key in ["altId", "name"] {
            let krel = format!("{rel}.{key}");
            if let Some(v) = cx.opt_str(agent, key, &krel)? {
                actor.user = Some(v.to_owned());
                origins.set("actor.user", krel);
                break;
            }
        }
    }
    for (i, role) in cx
        .arr(agent, "role", &format!("{rel}.role"), MAX_REPEATS)?
        .iter()
        .enumerate()
    {
        if let Some((code, path)) = cx.concept_code(role, &format!("{rel}.role[{i}]"))? {
            actor.role = Some(code.to_owned());
            origins.set("actor.role", path);
            break;
        }
    }
    if actor.role.is_none()
        && let Some(t) = cx.opt_obj(agent, "type", &format!("{rel}.type"))?
        && let Some((code, path)) = cx.concept_code(t, &format!("{rel}.type"))?
    {
        actor.role = Some(code.to_owned());
        origins.set("actor.role", path);
    }
    if let Some(network) = cx.opt_obj(agent, "network", &format!("{rel}.network"))? {
        let nrel = format!("{rel}.network");
        let address = cx.opt_str(network, "address", &format!("{nrel}.address"))?;
        let kind = cx.opt_str(network, "type", &format!("{nrel}.type"))?;
        match (kind, address) {
            (Some("2"), Some(address)) => {
                if address.parse::<IpAddr>().is_err() {
                    return Err(FhirIssue::value(
                        cx.path(&format!("{nrel}.address")),
                        format!(
                            "`{}` is not an ip address (network.type is 2)",
                            clip(address)
                        ),
                    ));
                }
                actor.ip = Some(address.to_owned());
                origins.set("actor.ip", format!("{nrel}.address"));
            }
            (Some("1"), Some(address)) => {
                actor.device = Some(address.to_owned());
                origins.set("actor.device", format!("{nrel}.address"));
            }
            _ => {}
        }
    }
    Ok((actor != Actor::default()).then_some(actor))
}

/// `identifier.value`, else `reference` of a Reference (for agents).
fn reference_id(
    cx: &Ctx<'_>,
    r: &Map<String, Value>,
    rel: &str,
    origins: &mut Origins,
    field: &'static str,
) -> Result<Option<String>, FhirIssue> {
    if let Some(ident) = cx.opt_obj(r, "identifier", &format!("{rel}.identifier"))?
        && let Some(v) = cx.opt_str(ident, "value", &format!("{rel}.identifier.value"))?
    {
        origins.set(field, format!("{rel}.identifier.value"));
        return Ok(Some(v.to_owned()));
    }
    if let Some(v) = cx.opt_str(r, "reference", &format!("{rel}.reference"))? {
        origins.set(field, format!("{rel}.reference"));
        return Ok(Some(v.to_owned()));
    }
    Ok(None)
}

/// `display`, else `reference`, else `identifier.value` of a Reference (for
/// the observer, whose display is the most readable system name).
fn reference_label(
    cx: &Ctx<'_>,
    r: &Map<String, Value>,
    rel: &str,
    origins: &mut Origins,
    field: &'static str,
) -> Result<Option<String>, FhirIssue> {
    for key in ["display", "reference"] {
        let krel = format!("{rel}.{key}");
        if let Some(v) = cx.opt_str(r, key, &krel)? {
            origins.set(field, krel);
            return Ok(Some(v.to_owned()));
        }
    }
    if let Some(ident) = cx.opt_obj(r, "identifier", &format!("{rel}.identifier"))?
        && let Some(v) = cx.opt_str(ident, "value", &format!("{rel}.identifier.value"))?
    {
        origins.set(field, format!("{rel}.identifier.value"));
        return Ok(Some(v.to_owned()));
    }
    Ok(None)
}

struct Entities {
    patient: Option<Patient>,
    resource: Option<Resource>,
    has_query: bool,
}

fn map_entities(
    cx: &Ctx<'_>,
    obj: &Map<String, Value>,
    origins: &mut Origins,
    attrs: &mut Map<String, Value>,
) -> Result<Entities, FhirIssue> {
    let mut out = Entities {
        patient: None,
        resource: None,
        has_query: false,
    };
    let mut patients = 0u64;
    let mut query_bytes = 0u64;
    for (i, entity) in cx
        .arr(obj, "entity", "entity", MAX_ENTITIES)?
        .iter()
        .enumerate()
    {
        let rel = format!("entity[{i}]");
        let what = cx.opt_obj(entity, "what", &format!("{rel}.what"))?;
        let reference = match what {
            Some(w) => cx.opt_str(w, "reference", &format!("{rel}.what.reference"))?,
            None => None,
        };
        let identifier = match what {
            Some(w) => match cx.opt_obj(w, "identifier", &format!("{rel}.what.identifier"))? {
                Some(ident) => {
                    cx.opt_str(ident, "value", &format!("{rel}.what.identifier.value"))?
                }
                None => None,
            },
            None => None,
        };
        let parsed = reference.and_then(parse_reference);
        let entity_type = match cx.opt_obj(entity, "type", &format!("{rel}.type"))? {
            Some(t) => cx.coding(t, &format!("{rel}.type"))?.code,
            None => None,
        };
        let role = match cx.opt_obj(entity, "role", &format!("{rel}.role"))? {
            Some(r) => cx.coding(r, &format!("{rel}.role"))?.code,
            None => None,
        };
        if let Some(query) = cx.opt_str(entity, "query", &format!("{rel}.query"))? {
            let decoded = B64.decode(query).map_err(|e| {
                FhirIssue::value(
                    cx.path(&format!("{rel}.query")),
                    format!("must be base64: {e}"),
                )
            })?;
            out.has_query = true;
            query_bytes = query_bytes.saturating_add(decoded.len() as u64);
        }

        let is_patient = match parsed {
            Some((kind, _)) => kind == "Patient",
            None => entity_type == Some("1") && role == Some("1"),
        };
        // The id part of the reference, else the business identifier.
        let (id, id_rel) = match (parsed, identifier) {
            (Some((_, id)), _) => (Some(id), format!("{rel}.what.reference")),
            (None, Some(v)) => (Some(v), format!("{rel}.what.identifier.value")),
            (None, None) => (None, format!("{rel}.what")),
        };
        if is_patient {
            if let Some(id) = id {
                patients += 1;
                if out.patient.is_none() {
                    out.patient = Some(Patient { id: id.to_owned() });
                    origins.set("patient.id", id_rel);
                }
            }
        } else if out.resource.is_none()
            && (parsed.is_some() || id.is_some() || entity_type.is_some())
        {
            let kind = match parsed {
                Some((kind, _)) => snake_case(kind),
                None => match entity_type {
                    Some("1") => "person".to_owned(),
                    Some("2") => "system_object".to_owned(),
                    Some("3") => "organization".to_owned(),
                    _ => "other".to_owned(),
                },
            };
            origins.set("resource.type", format!("{rel}.what"));
            origins.set("resource.id", id_rel);
            out.resource = Some(Resource {
                kind,
                id: id.map(str::to_owned),
            });
        }
    }
    if patients > 1 {
        attrs.insert("fhir_patients".to_owned(), json!(patients));
    }
    if out.has_query {
        attrs.insert("fhir_query_bytes".to_owned(), json!(query_bytes));
    }
    Ok(out)
}

/// `Type/id` of a literal reference (relative or absolute, with or without
/// `/_history/v`); `None` for contained (`#x`) and `urn:` references.
fn parse_reference(reference: &str) -> Option<(&str, &str)> {
    if reference.starts_with('#') || reference.starts_with("urn:") {
        return None;
    }
    let r = reference.split(['?', '#']).next().unwrap_or(reference);
    let r = match r.find("/_history/") {
        Some(at) => &r[..at],
        None => r,
    };
    let mut parts = r.rsplit('/');
    let id = parts.next().filter(|id| !id.is_empty())?;
    let kind = parts.next()?;
    let mut chars = kind.chars();
    let well_formed = chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_alphanumeric());
    well_formed.then_some((kind, id))
}

/// `DocumentReference` -> `document_reference`.
fn snake_case(kind: &str) -> String {
    let mut out = String::with_capacity(kind.len() + 4);
    for (i, c) in kind.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn purpose_reason(purposes: &[(&str, String)], origins: &mut Origins) -> Option<String> {
    let chosen = purposes
        .iter()
        .find(|(code, _)| *code == "BTG")
        .or_else(|| purposes.first())?;
    origins.set("reason", chosen.1.clone());
    Some(match chosen.0 {
        "BTG" => "break_glass".to_owned(),
        "TREAT" => "treatment".to_owned(),
        "ETREAT" => "emergency_treatment".to_owned(),
        "HPAYMT" => "payment".to_owned(),
        "HOPERAT" => "operations".to_owned(),
        other => other.to_lowercase(),
    })
}

/// Category, action and (for an emergency override) a forced reason; the
/// table in the module docs.
fn classify(
    event_type: Coding<'_>,
    subtypes: &[Coding<'_>],
    action: Option<&str>,
    has_query: bool,
) -> (Category, &'static str, Option<&'static str>) {
    let dicom = |code: &str| event_type.is(DICOM_SYSTEM, code);
    let sub = |code: &str| subtypes.iter().any(|s| s.is(DICOM_SYSTEM, code));
    let sub_any = |codes: &[&str]| codes.iter().any(|c| sub(c));
    if dicom("110114") {
        let action = if sub("110122") {
            "login"
        } else if sub("110123") {
            "logout"
        } else {
            "authenticate"
        };
        return (Category::Auth, action, None);
    }
    if dicom("110113") {
        return if sub("110127") {
            (Category::Access, "break_glass", Some("break_glass"))
        } else if sub_any(&["110128", "110129", "110130", "110131"]) {
            (Category::Admin, "config_change", None)
        } else if sub_any(&["110133", "110134"]) {
            (Category::Admin, "audit_config_change", None)
        } else if sub_any(&["110135", "110136", "110137"]) {
            (Category::Admin, "permission_change", None)
        } else {
            (Category::System, "security_alert", None)
        };
    }
    if dicom("110100") {
        let action = if sub("110120") {
            "application_start"
        } else if sub("110121") {
            "application_stop"
        } else {
            "application_activity"
        };
        return (Category::Admin, action, None);
    }
    if dicom("110108") {
        let action = if sub("110124") {
            "network_attach"
        } else if sub("110125") {
            "network_detach"
        } else {
            "network_entry"
        };
        return (Category::System, action, None);
    }
    let fixed = [
        ("110106", "export"),
        ("110107", "create"),
        ("110105", "delete"),
        ("110112", "search"),
    ];
    if let Some((_, action)) = fixed.iter().find(|(code, _)| dicom(code)) {
        return (Category::Access, action, None);
    }
    let rest = subtypes.iter().find_map(|s| {
        if s.system
            .is_some_and(|sys| sys != RESTFUL_INTERACTION_SYSTEM)
        {
            return None;
        }
        match s.code? {
            "read" | "vread" | "history" | "history-instance" | "history-type"
            | "history-system" => Some("view"),
            "search" | "search-type" | "search-system" => Some("search"),
            "create" => Some("create"),
            "update" | "patch" => Some("update"),
            "delete" => Some("delete"),
            _ => None,
        }
    });
    let action = rest.unwrap_or(match action {
        Some("C") => "create",
        Some("R") => "view",
        Some("U") => "update",
        Some("D") => "delete",
        Some("E") if has_query => "search",
        Some("E") => "execute",
        _ => "unknown",
    });
    (Category::Access, action, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/fhir");

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{FIXTURES}/{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn one(body: &[u8]) -> FhirItem {
        let mut items = map_body(body).expect("body is usable");
        assert_eq!(items.len(), 1);
        items.remove(0)
    }

    fn event_of(body: &[u8]) -> Event {
        match one(body) {
            FhirItem::Event(e) => e,
            FhirItem::Invalid { issue, .. } => panic!("unexpected issue {issue:?}"),
        }
    }

    fn issue_of(body: &[u8]) -> FhirIssue {
        match one(body) {
            FhirItem::Invalid { raw, issue } => {
                assert_eq!(raw, body, "a single resource keeps the body as raw");
                issue
            }
            FhirItem::Event(e) => panic!("unexpected event {e:?}"),
        }
    }

    #[test]
    fn fixtures_map_to_expected_events() {
        for name in [
            "rest-read-patient",
            "login",
            "logout-failure",
            "export",
            "search",
            "break-glass",
            "update-failure-major",
            "delete-serious-failure",
            "security-roles-changed",
        ] {
            let got = event_of(&fixture(&format!("{name}.json")));
            let want = Event::from_json(&fixture(&format!("{name}.expected.json")))
                .unwrap_or_else(|e| panic!("{name}.expected.json: {e}"));
            assert_eq!(got, want, "{name}");
        }
    }

    /// A minimal valid AuditEvent to break one element at a time.
    fn base() -> Value {
        json!({
            "resourceType": "AuditEvent",
            "id": "ae-1",
            "type": {"system": DICOM_SYSTEM, "code": "110110"},
            "action": "R",
            "recorded": "2026-11-27T10:00:00Z",
            "outcome": "0",
            "agent": [{"who": {"identifier": {"value": "u1"}}, "requestor": true}],
            "source": {"observer": {"display": "ehr"}},
            "entity": [{"what": {"reference": "Patient/p-1"}}]
        })
    }

    fn with(edit: impl FnOnce(&mut Value)) -> Vec<u8> {
        let mut v = base();
        edit(&mut v);
        serde_json::to_vec(&v).unwrap()
    }

    fn remove(key: &'static str) -> impl FnOnce(&mut Value) {
        move |v| {
            v.as_object_mut().unwrap().remove(key);
        }
    }

    #[test]
    fn base_is_valid() {
        let e = event_of(&with(|_| {}));
        assert_eq!((e.category, e.action.as_str()), (Category::Access, "view"));
        assert_eq!(e.patient, Some(Patient { id: "p-1".into() }));
    }

    #[test]
    fn invalid_cases_name_the_element() {
        let long = "x".repeat(300);
        let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
            (
                "no recorded",
                with(remove("recorded")),
                "required",
                "AuditEvent.recorded",
            ),
            (
                "date only",
                with(|v| v["recorded"] = json!("2026-11-27")),
                "value",
                "AuditEvent.recorded",
            ),
            (
                "number",
                with(|v| v["recorded"] = json!(5)),
                "structure",
                "AuditEvent.recorded",
            ),
            (
                "no type",
                with(remove("type")),
                "required",
                "AuditEvent.type",
            ),
            (
                "type as array",
                with(|v| v["type"] = json!([])),
                "structure",
                "AuditEvent.type",
            ),
            (
                "type without code",
                with(|v| v["type"] = json!({"system": DICOM_SYSTEM})),
                "required",
                "AuditEvent.type.code",
            ),
            (
                "outcome 3",
                with(|v| v["outcome"] = json!("3")),
                "value",
                "AuditEvent.outcome",
            ),
            (
                "outcome number",
                with(|v| v["outcome"] = json!(0)),
                "structure",
                "AuditEvent.outcome",
            ),
            (
                "action X",
                with(|v| v["action"] = json!("X")),
                "value",
                "AuditEvent.action",
            ),
            (
                "bad ip",
                with(|v| v["agent"][0]["network"] = json!({"address": "10.0.0.300", "type": "2"})),
                "value",
                "AuditEvent.agent[0].network.address",
            ),
            (
                "no source",
                with(remove("source")),
                "required",
                "AuditEvent.source",
            ),
            (
                "empty observer",
                with(|v| v["source"]["observer"] = json!({})),
                "required",
                "AuditEvent.source.observer",
            ),
            (
                "no observer",
                with(|v| v["source"] = json!({"site": "a"})),
                "required",
                "AuditEvent.source.observer",
            ),
            (
                "long user",
                with(|v| v["agent"][0]["who"]["identifier"]["value"] = json!(long)),
                "value",
                "AuditEvent.agent[0].who.identifier.value",
            ),
            (
                "long id",
                with(|v| v["id"] = json!("i".repeat(200))),
                "value",
                "AuditEvent.id",
            ),
            (
                "long site",
                with(|v| v["source"]["site"] = json!(long)),
                "value",
                "AuditEvent.source.site",
            ),
            (
                "long observer",
                with(|v| v["source"]["observer"] = json!({"display": long})),
                "value",
                "AuditEvent.source.observer.display",
            ),
            (
                "long patient id",
                with(|v| v["entity"][0]["what"]["reference"] = json!(format!("Patient/{long}"))),
                "value",
                "AuditEvent.entity[0].what.reference",
            ),
            (
                "long purpose",
                with(|v| v["purposeOfEvent"] = json!([{"coding": [{"code": long}]}])),
                "value",
                "AuditEvent.purposeOfEvent[0].coding[0].code",
            ),
            (
                "too many subtypes",
                with(|v| v["subtype"] = json!(vec![json!({"code": "read"}); MAX_REPEATS + 1])),
                "too-costly",
                "AuditEvent.subtype",
            ),
            (
                "too many agents",
                with(|v| v["agent"] = json!(vec![json!({"requestor": false}); MAX_AGENTS + 1])),
                "too-costly",
                "AuditEvent.agent",
            ),
            (
                "bad query",
                with(|v| v["entity"][0]["query"] = json!("!!not base64")),
                "value",
                "AuditEvent.entity[0].query",
            ),
            (
                "agent object",
                with(|v| v["agent"] = json!({})),
                "structure",
                "AuditEvent.agent",
            ),
            (
                "agent item",
                with(|v| v["agent"] = json!(["u1"])),
                "structure",
                "AuditEvent.agent[0]",
            ),
            (
                "requestor string",
                with(|v| v["agent"][0]["requestor"] = json!("yes")),
                "structure",
                "AuditEvent.agent[0].requestor",
            ),
            (
                "long outcomeDesc",
                with(|v| v["outcomeDesc"] = json!("m".repeat(20_000))),
                "value",
                "AuditEvent.outcomeDesc",
            ),
        ];
        for (what, body, code, expression) in cases {
            let issue = issue_of(&body);
            assert_eq!(issue.severity, "error", "{what}");
            assert_eq!(issue.code, code, "{what}: {issue:?}");
            assert_eq!(
                issue.expression.as_deref(),
                Some(expression),
                "{what}: {issue:?}"
            );
            assert!(!issue.diagnostics.is_empty(), "{what}");
        }
    }

    #[test]
    fn bundle_mixes_valid_and_invalid_entries() {
        let body = fixture("bundle-mixed.json");
        let items = map_body(&body).unwrap();
        assert_eq!(items.len(), 5);
        let FhirItem::Event(login) = &items[0] else {
            panic!("{:?}", items[0])
        };
        assert_eq!(
            (login.category, login.action.as_str()),
            (Category::Auth, "login")
        );
        assert_eq!(
            login.id.as_deref(),
            Some("fhir-urn:uuid:2f1c9a56-3a51-4a55-9f6e-7b0b2f0e3c11"),
            "a batch entry's urn:uuid fullUrl identifies a resource without id"
        );
        let expect_invalid = |i: usize, code: &str, expression: &str| {
            let FhirItem::Invalid { raw, issue } = &items[i] else {
                panic!("entry {i}: {:?}", items[i])
            };
            assert_eq!(
                (issue.code, issue.expression.as_deref()),
                (code, Some(expression)),
                "entry {i}"
            );
            let whole: Value = serde_json::from_slice(&body).unwrap();
            let raw: Value = serde_json::from_slice(raw).unwrap();
            assert_eq!(
                raw, whole["entry"][i]["resource"],
                "entry {i} raw is its resource"
            );
        };
        expect_invalid(1, "value", "Bundle.entry[1].resource.recorded");
        expect_invalid(2, "invalid", "Bundle.entry[2].resource.resourceType");
        expect_invalid(
            3,
            "value",
            "Bundle.entry[3].resource.agent[0].network.address",
        );
        let FhirItem::Event(create) = &items[4] else {
            panic!("{:?}", items[4])
        };
        assert_eq!(create.action, "create");
        assert_eq!(create.actor, None, "no agent is kept as no actor");
        assert_eq!(create.patient, Some(Patient { id: "p-1".into() }));
        assert_eq!(
            create.resource,
            Some(Resource {
                kind: "appointment".into(),
                id: Some("ap-1".into())
            })
        );
    }

    #[test]
    fn bundle_entries_without_resource_or_object() {
        let body = json!({"resourceType": "Bundle", "type": "collection",
                          "entry": [{"fullUrl": "x"}, 7, {"resource": []}]});
        let items = map_body(&serde_json::to_vec(&body).unwrap()).unwrap();
        let codes: Vec<_> = items
            .iter()
            .map(|i| match i {
                FhirItem::Invalid { issue, .. } => (issue.code, issue.expression.clone().unwrap()),
                FhirItem::Event(e) => panic!("{e:?}"),
            })
            .collect();
        assert_eq!(
            codes,
            vec![
                ("required", "Bundle.entry[0].resource".to_owned()),
                ("structure", "Bundle.entry[1]".to_owned()),
                ("structure", "Bundle.entry[2].resource".to_owned()),
            ]
        );
        let empty = json!({"resourceType": "Bundle", "type": "batch"});
        assert_eq!(map_body(&serde_json::to_vec(&empty).unwrap()), Ok(vec![]));
    }

    #[test]
    fn unusable_bodies_are_outer_errors() {
        let too_many = json!({"resourceType": "Bundle", "type": "batch",
                              "entry": vec![json!({}); MAX_BUNDLE_ENTRIES + 1]});
        let cases: Vec<(Vec<u8>, &str, Option<&str>)> = vec![
            (b"not json".to_vec(), "structure", None),
            (vec![0xff, 0xfe], "structure", None),
            (b"[]".to_vec(), "structure", None),
            (br#"{"id": "x"}"#.to_vec(), "required", Some("resourceType")),
            (
                br#"{"resourceType": 1}"#.to_vec(),
                "structure",
                Some("resourceType"),
            ),
            (
                br#"{"resourceType": "Patient", "id": "p"}"#.to_vec(),
                "invalid",
                Some("resourceType"),
            ),
            (
                br#"{"resourceType": "Bundle", "type": "transaction"}"#.to_vec(),
                "invalid",
                Some("Bundle.type"),
            ),
            (
                br#"{"resourceType": "Bundle", "type": "searchset"}"#.to_vec(),
                "invalid",
                Some("Bundle.type"),
            ),
            (
                br#"{"resourceType": "Bundle"}"#.to_vec(),
                "required",
                Some("Bundle.type"),
            ),
            (
                br#"{"resourceType": "Bundle", "type": "batch", "entry": {}}"#.to_vec(),
                "structure",
                Some("Bundle.entry"),
            ),
            (
                serde_json::to_vec(&too_many).unwrap(),
                "too-costly",
                Some("Bundle.entry"),
            ),
        ];
        for (body, code, expression) in cases {
            let issue = map_body(&body).expect_err(&String::from_utf8_lossy(&body));
            assert_eq!(
                (issue.code, issue.expression.as_deref()),
                (code, expression),
                "{issue:?}"
            );
        }
    }

    #[test]
    fn operation_outcome_shape() {
        let issue = FhirIssue::value("AuditEvent.recorded".into(), "must be a fhir instant");
        let oo = operation_outcome(&[issue, FhirIssue::new("structure", "body is not json", None)]);
        assert_eq!(
            oo,
            json!({"resourceType": "OperationOutcome", "issue": [
                {"severity": "error", "code": "value", "diagnostics": "must be a fhir instant",
                 "expression": ["AuditEvent.recorded"]},
                {"severity": "error", "code": "structure", "diagnostics": "body is not json"}
            ]})
        );
        let empty = operation_outcome(&[]);
        assert_eq!(
            empty["issue"].as_array().map(Vec::len),
            Some(1),
            "r4 requires an issue"
        );
        assert_eq!(empty["issue"][0]["severity"], "information");
    }

    fn classified(edit: impl FnOnce(&mut Value)) -> (Category, String, Option<String>) {
        let e = event_of(&with(edit));
        (e.category, e.action, e.reason)
    }

    fn dcm(code: &str) -> Value {
        json!({"system": DICOM_SYSTEM, "code": code})
    }

    #[test]
    fn category_and_action_table() {
        type Case = (
            Value,
            Vec<Value>,
            Option<&'static str>,
            Category,
            &'static str,
        );
        let cases: Vec<Case> = vec![
            (
                dcm("110114"),
                vec![],
                Some("E"),
                Category::Auth,
                "authenticate",
            ),
            (
                dcm("110113"),
                vec![dcm("110127")],
                None,
                Category::Access,
                "break_glass",
            ),
            (
                dcm("110113"),
                vec![dcm("110129")],
                None,
                Category::Admin,
                "config_change",
            ),
            (
                dcm("110113"),
                vec![dcm("110133")],
                None,
                Category::Admin,
                "audit_config_change",
            ),
            (
                dcm("110113"),
                vec![dcm("110137")],
                None,
                Category::Admin,
                "permission_change",
            ),
            (
                dcm("110113"),
                vec![],
                None,
                Category::System,
                "security_alert",
            ),
            (
                dcm("110100"),
                vec![dcm("110120")],
                None,
                Category::Admin,
                "application_start",
            ),
            (
                dcm("110100"),
                vec![dcm("110121")],
                None,
                Category::Admin,
                "application_stop",
            ),
            (
                dcm("110100"),
                vec![],
                None,
                Category::Admin,
                "application_activity",
            ),
            (
                dcm("110108"),
                vec![dcm("110124")],
                None,
                Category::System,
                "network_attach",
            ),
            (dcm("110107"), vec![], Some("C"), Category::Access, "create"),
            (dcm("110105"), vec![], Some("D"), Category::Access, "delete"),
            (dcm("110112"), vec![], Some("E"), Category::Access, "search"),
            (
                json!({"code": "rest"}),
                vec![json!({"code": "vread"})],
                Some("R"),
                Category::Access,
                "view",
            ),
            (
                json!({"code": "rest"}),
                vec![json!({"code": "search-system"})],
                None,
                Category::Access,
                "search",
            ),
            (
                json!({"code": "rest"}),
                vec![json!({"code": "update"})],
                None,
                Category::Access,
                "update",
            ),
            (
                json!({"code": "rest"}),
                vec![json!({"code": "delete"})],
                None,
                Category::Access,
                "delete",
            ),
            (
                json!({"code": "rest"}),
                vec![json!({"code": "operation"})],
                Some("E"),
                Category::Access,
                "execute",
            ),
            // A REST code in a foreign system is not a REST subtype.
            (
                json!({"code": "rest"}),
                vec![json!({"system": "urn:x", "code": "read"})],
                Some("C"),
                Category::Access,
                "create",
            ),
            // DICOM codes in a foreign system are unknown codes.
            (
                json!({"system": "urn:x", "code": "110114"}),
                vec![],
                Some("R"),
                Category::Access,
                "view",
            ),
            (
                json!({"code": "vendor-42"}),
                vec![],
                Some("U"),
                Category::Access,
                "update",
            ),
            (
                json!({"code": "vendor-42"}),
                vec![],
                None,
                Category::Access,
                "unknown",
            ),
        ];
        for (ty, subtypes, action, category, want) in cases {
            let label = format!("{ty} {subtypes:?} {action:?}");
            let got = classified(|v| {
                v["type"] = ty;
                v["subtype"] = Value::Array(subtypes);
                match action {
                    Some(a) => v["action"] = json!(a),
                    None => {
                        v.as_object_mut().unwrap().remove("action");
                    }
                }
            });
            assert_eq!((got.0, got.1.as_str()), (category, want), "{label}");
        }
        let (_, _, reason) = classified(|v| {
            v["type"] = dcm("110113");
            v["subtype"] = json!([dcm("110127")]);
        });
        assert_eq!(reason.as_deref(), Some("break_glass"));
    }

    #[test]
    fn e_with_query_is_search() {
        let q = B64.encode("family=smith");
        let got = classified(|v| {
            v["action"] = json!("E");
            v["entity"][0]["query"] = json!(q);
        });
        assert_eq!(got.1, "search");
    }

    #[test]
    fn requestor_and_reason_choices() {
        // The requestor wins over the first agent; its purposeOfUse counts.
        let e = event_of(&with(|v| {
            v["agent"] = json!([
                {"who": {"reference": "Device/d1"}, "requestor": false},
                {"who": {"reference": "Practitioner/p9"}, "requestor": true,
                 "type": {"text": "doctor"},
                 "purposeOfUse": [{"coding": [{"code": "HPAYMT"}]}]}
            ]);
        }));
        let actor = e.actor.unwrap();
        assert_eq!(actor.user.as_deref(), Some("Practitioner/p9"));
        assert_eq!(actor.role.as_deref(), Some("doctor"));
        assert_eq!(e.reason.as_deref(), Some("payment"));
        // Unknown purposes are lowercased.
        let e = event_of(&with(|v| {
            v["purposeOfEvent"] = json!([{"coding": [{"code": "PUBHLTH"}]}])
        }));
        assert_eq!(e.reason.as_deref(), Some("pubhlth"));
        // altId, then name, when `who` has nothing.
        let e = event_of(&with(|v| {
            v["agent"] = json!([{"name": "Dr. Who", "requestor": true}])
        }));
        assert_eq!(e.actor.and_then(|a| a.user).as_deref(), Some("Dr. Who"));
        // network types other than 1 and 2 are not mapped.
        let e = event_of(&with(|v| {
            v["agent"][0]["network"] = json!({"address": "+1 555 0100", "type": "3"})
        }));
        assert_eq!(e.actor.map(|a| (a.ip, a.device)), Some((None, None)));
    }

    #[test]
    fn references() {
        assert_eq!(parse_reference("Patient/p1"), Some(("Patient", "p1")));
        assert_eq!(
            parse_reference("Patient/p1/_history/2"),
            Some(("Patient", "p1"))
        );
        assert_eq!(
            parse_reference("https://h/fhir/Patient/p1"),
            Some(("Patient", "p1"))
        );
        assert_eq!(parse_reference("Patient?identifier=x"), None);
        assert_eq!(parse_reference("#contained"), None);
        assert_eq!(parse_reference("urn:uuid:1234"), None);
        assert_eq!(parse_reference("patient/p1"), None);
        assert_eq!(parse_reference("Patient/"), None);
        assert_eq!(snake_case("DocumentReference"), "document_reference");
        assert_eq!(snake_case("Patient"), "patient");
    }
}

//! Semantic checks that serde types alone do not express.

use std::net::IpAddr;

use serde_json::{Map, Value};

use super::error::{EventError, join};
use super::limits::*;
use super::model::{Actor, Category, Event};

impl Event {
    /// Checks every rule of ingest format v1 beyond types; returns the first
    /// broken rule with the path of its field.
    pub fn validate(&self) -> Result<(), EventError> {
        if let Some(id) = &self.id {
            bounded("id", id, 1, MAX_ID_CHARS)?;
        }
        check_snake_case("action", &self.action, MAX_ACTION_CHARS)?;
        if let Some(actor) = &self.actor {
            check_actor(actor)?;
        }
        if let Some(patient) = &self.patient {
            short("patient.id", &patient.id)?;
        }
        if let Some(resource) = &self.resource {
            short("resource.type", &resource.kind)?;
            opt_short("resource.id", &resource.id)?;
        }
        opt_short("target_user", &self.target_user)?;
        if let Some(source) = &self.source {
            short("source.system", &source.system)?;
            opt_short("source.host", &source.host)?;
        }
        opt_short("reason", &self.reason)?;
        if let Some(records) = self.records
            && records > MAX_RECORDS
        {
            return Err(EventError::invalid(
                "records",
                format!("must be at most {MAX_RECORDS}"),
            ));
        }
        if let Some(message) = &self.message {
            bounded("message", message, 0, MAX_MESSAGE_CHARS)?;
        }
        if let Some(attrs) = &self.attrs {
            check_object("attrs", attrs, 1)?;
        }
        Ok(())
    }
}

fn check_actor(actor: &Actor) -> Result<(), EventError> {
    opt_short("actor.user", &actor.user)?;
    opt_short("actor.role", &actor.role)?;
    opt_short("actor.department", &actor.department)?;
    opt_short("actor.session", &actor.session)?;
    opt_short("actor.device", &actor.device)?;
    if let Some(ip) = &actor.ip {
        // Same parser as the schema's ipv4/ipv6 formats: dotted quad without
        // leading zeros, or RFC 4291 text without zone or brackets.
        if ip.parse::<IpAddr>().is_err() {
            return Err(EventError::invalid(
                "actor.ip",
                "must be an ipv4 or ipv6 address",
            ));
        }
    }
    Ok(())
}

/// Lowercase snake_case: `^[a-z][a-z0-9_]*$`, 1..=`max` chars.
pub(crate) fn check_snake_case(path: &str, s: &str, max: usize) -> Result<(), EventError> {
    let mut chars = s.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !first_ok || !rest_ok {
        return Err(EventError::invalid(
            path,
            "must be lowercase snake_case (a-z, then a-z, 0-9 or _)",
        ));
    }
    bounded(path, s, 1, max)
}

pub(crate) fn short(path: &str, s: &str) -> Result<(), EventError> {
    bounded(path, s, 1, MAX_SHORT_CHARS)
}

pub(crate) fn opt_short(path: &str, s: &Option<String>) -> Result<(), EventError> {
    match s {
        Some(s) => short(path, s),
        None => Ok(()),
    }
}

pub(crate) fn bounded(path: &str, s: &str, min: usize, max: usize) -> Result<(), EventError> {
    let n = s.chars().count();
    if n < min {
        return Err(EventError::invalid(path, "must not be empty"));
    }
    if n > max {
        return Err(EventError::invalid(
            path,
            format!("is {n} characters, more than the limit of {max}"),
        ));
    }
    Ok(())
}

fn check_object(path: &str, map: &Map<String, Value>, depth: usize) -> Result<(), EventError> {
    if depth > MAX_ATTRS_DEPTH {
        return Err(too_deep(path));
    }
    if map.len() > MAX_ATTRS_ENTRIES {
        return Err(EventError::invalid(
            path,
            format!(
                "has {} members, more than the limit of {MAX_ATTRS_ENTRIES}",
                map.len()
            ),
        ));
    }
    for (key, value) in map {
        let child = join(path, key);
        bounded(&child, key, 1, MAX_ATTRS_KEY_CHARS).map_err(|e| match e {
            EventError::Invalid { reason, .. } => {
                EventError::invalid(child.clone(), format!("key {reason}"))
            }
            other => other,
        })?;
        check_value(&child, value, depth + 1)?;
    }
    Ok(())
}

fn check_value(path: &str, value: &Value, depth: usize) -> Result<(), EventError> {
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
        Value::String(s) => bounded(path, s, 0, MAX_ATTRS_STRING_CHARS),
        Value::Object(map) => check_object(path, map, depth),
        Value::Array(items) => {
            if depth > MAX_ATTRS_DEPTH {
                return Err(too_deep(path));
            }
            if items.len() > MAX_ATTRS_ITEMS {
                return Err(EventError::invalid(
                    path,
                    format!(
                        "has {} items, more than the limit of {MAX_ATTRS_ITEMS}",
                        items.len()
                    ),
                ));
            }
            for (i, item) in items.iter().enumerate() {
                check_value(&format!("{path}[{i}]"), item, depth + 1)?;
            }
            Ok(())
        }
    }
}

fn too_deep(path: &str) -> EventError {
    EventError::invalid(
        path,
        format!("nests objects and arrays deeper than {MAX_ATTRS_DEPTH} levels"),
    )
}

/// Whether `action` is in the DESIGN.md vocabulary of `category`. Unknown
/// actions are accepted at ingest; this only feeds metrics.
pub fn is_known_action(category: Category, action: &str) -> bool {
    known_actions(category).contains(&action)
}

/// The DESIGN.md vocabulary of one category.
pub fn known_actions(category: Category) -> &'static [&'static str] {
    match category {
        Category::Auth => &[
            "login",
            "logout",
            "mfa_challenge",
            "password_change",
            "password_reset",
            "session_timeout",
            "account_lockout",
            "token_issued",
        ],
        Category::Access => &[
            "view",
            "search",
            "create",
            "update",
            "delete",
            "export",
            "print",
            "download",
            "break_glass",
        ],
        Category::Admin => &[
            "user_create",
            "user_disable",
            "user_enable",
            "user_delete",
            "role_grant",
            "role_revoke",
            "permission_change",
            "config_change",
            "audit_config_change",
            "retention_change",
            "key_rotation",
            "backup",
            "restore",
        ],
        Category::Integration => &[
            "api_call",
            "eprescribe",
            "claim_submit",
            "fhir_read",
            "data_feed",
        ],
        Category::System => &[
            "ingest_rejected",
            "source_silent",
            // syslog text that carried no event, kept as sent
            "syslog",
            "siem_search",
            "siem_export",
            "siem_verify",
            "alert",
            "incident_update",
            "checkpoint",
        ],
    }
}

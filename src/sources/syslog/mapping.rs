//! From a syslog frame to a pipeline item, in this order of preference:
//!
//! 1. MSG is a JSON object that is a valid normalized event: that event, as
//!    sent (nothing from the syslog header is added to it).
//! 2. An SD-ELEMENT named `sealtrail` or `event` (with or without an
//!    `@enterprise` suffix) whose params are event fields (`category`,
//!    `action`, `actor.user`, `patient.id`, `records`, ...): an event built
//!    from them. `time` defaults to the syslog timestamp (or the receive
//!    time), `message` to MSG, `source` to APP-NAME and HOSTNAME; params that
//!    are not event fields go to `attrs`.
//! 3. Any other message: a `system/syslog` event with outcome `unknown`,
//!    `source.system` = APP-NAME (or TAG), `source.host` = HOSTNAME, the MSG
//!    as `message`, and facility, severity, procid, msgid, other structured
//!    data and the raw line in `attrs`. When 1 or 2 was attempted and the
//!    event was invalid, `attrs.event_error` says why.
//! 4. Frames that are not syslog (no PRI, bad UTF-8, oversize, broken
//!    framing): `Item::Rejected` with the raw bytes and the reason.

use super::framing::Frame;
use super::parse::{self, Message, SdElement};
use crate::event::limits::{MAX_ATTRS_ENTRIES, MAX_ATTRS_STRING_CHARS, MAX_MESSAGE_CHARS};
use crate::event::{Category, Event, Outcome, Source, Timestamp};
use crate::pipeline::Item;
use serde_json::{Map, Value};
use time::OffsetDateTime;

/// The action of syslog messages kept as text.
pub const SYSLOG_ACTION: &str = "syslog";

/// Structured-data elements and params kept in `attrs.sd` of a text message.
const MAX_SD_ELEMENTS: usize = 16;
const MAX_SD_PARAMS: usize = 32;

/// Turns one decoded frame into an item; `None` for frames with no content.
pub fn frame_to_item(frame: Frame, max: usize, now: OffsetDateTime) -> Option<Item> {
    match frame {
        Frame::Message(bytes) => message_to_item(&bytes, now),
        Frame::Oversize { head, declared } => Some(Item::Rejected {
            raw: head,
            reason: match declared {
                Some(n) => format!("syslog message is {n} bytes, more than the limit of {max}"),
                None => format!(
                    "syslog message is longer than the limit of {max} bytes; skipped to the next line"
                ),
            },
        }),
        Frame::Invalid { head, reason } => Some(Item::Rejected {
            raw: head,
            reason: format!("syslog framing: {reason}; connection closed"),
        }),
    }
}

/// One whole message (a datagram or a decoded frame).
pub fn message_to_item(bytes: &[u8], now: OffsetDateTime) -> Option<Item> {
    if bytes.iter().all(|b| b.is_ascii_whitespace() || *b == 0) {
        return None;
    }
    Some(match parse::parse(bytes, now) {
        Ok(msg) => {
            // A valid frame is UTF-8 (the parser checked).
            let raw = String::from_utf8_lossy(bytes);
            let event = to_event(&msg, raw.trim_end_matches(['\n', '\r', '\0']));
            match event.validate_from_client() {
                Ok(()) => Item::Event(event),
                // Every field above is bounded, so this is not expected; the
                // input is still recorded.
                Err(e) => Item::Rejected {
                    raw: bytes.to_vec(),
                    reason: format!("syslog message could not be stored as an event: {e}"),
                },
            }
        }
        Err(e) => Item::Rejected {
            raw: bytes.to_vec(),
            reason: e.to_string(),
        },
    })
}

/// The event a parsed message becomes (rules 1 to 3 above).
pub fn to_event(msg: &Message, raw: &str) -> Event {
    let mut event_error = None;
    let body = msg.msg.trim();
    if body.starts_with('{') {
        match Event::from_json(body.as_bytes()) {
            Ok(event) => return event,
            Err(e) => event_error = Some(format!("message is not a valid event: {e}")),
        }
    }
    if let Some(sd) = msg.structured_data.iter().find(|e| is_event_sd(&e.id)) {
        match sd_event(msg, sd) {
            Ok(event) => return event,
            Err(e) => {
                event_error = Some(format!(
                    "structured data [{}] is not a valid event: {e}",
                    sd.id
                ))
            }
        }
    }
    text_event(msg, raw, event_error)
}

fn is_event_sd(id: &str) -> bool {
    let name = id.split('@').next().unwrap_or(id);
    name == "sealtrail" || name == "event"
}

fn time_of(msg: &Message) -> Timestamp {
    msg.timestamp.unwrap_or_else(Timestamp::now)
}

fn sd_event(msg: &Message, sd: &SdElement) -> Result<Event, crate::event::EventError> {
    let mut obj = Map::new();
    let mut attrs = Map::new();
    for (name, value) in &sd.params {
        let text = Value::String(value.clone());
        match name.as_str() {
            "id" | "time" | "category" | "action" | "outcome" | "target_user" | "reason"
            | "message" => {
                obj.insert(name.clone(), text);
            }
            // A number when it is one; otherwise the string, which
            // validation then names as the wrong type.
            "records" => {
                let v = value.parse::<u64>().map_or(text, Value::from);
                obj.insert(name.clone(), v);
            }
            "actor.mfa" => {
                let v = match value.as_str() {
                    "true" | "1" => Value::Bool(true),
                    "false" | "0" => Value::Bool(false),
                    _ => text,
                };
                nested(&mut obj, "actor", "mfa", v);
            }
            "actor.user" | "actor.role" | "actor.department" | "actor.ip" | "actor.session"
            | "actor.device" | "patient.id" | "resource.type" | "resource.id" | "source.system"
            | "source.host" => {
                // These names all contain one dot.
                if let Some((outer, inner)) = name.split_once('.') {
                    nested(&mut obj, outer, inner, text);
                }
            }
            other => {
                let key = other.strip_prefix("attrs.").unwrap_or(other);
                attrs.insert(key.to_owned(), text);
            }
        }
    }
    obj.entry("time")
        .or_insert_with(|| Value::String(time_of(msg).to_string()));
    if !msg.msg.is_empty() {
        obj.entry("message")
            .or_insert_with(|| Value::String(truncate(&msg.msg, MAX_MESSAGE_CHARS)));
    }
    if !obj.contains_key("source")
        && let Some(app) = &msg.app_name
    {
        let mut source = Map::new();
        source.insert("system".into(), Value::String(app.clone()));
        if let Some(host) = &msg.hostname {
            source.insert("host".into(), Value::String(host.clone()));
        }
        obj.insert("source".into(), Value::Object(source));
    }
    if !attrs.is_empty() {
        obj.insert("attrs".into(), Value::Object(attrs));
    }
    // Serializing a Value cannot fail (all keys are strings).
    let bytes = serde_json::to_vec(&Value::Object(obj)).unwrap_or_default();
    Event::from_json(&bytes)
}

fn nested(obj: &mut Map<String, Value>, outer: &str, inner: &str, value: Value) {
    let entry = obj
        .entry(outer.to_owned())
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(map) = entry {
        map.insert(inner.to_owned(), value);
    }
}

fn text_event(msg: &Message, raw: &str, event_error: Option<String>) -> Event {
    let mut attrs = Map::new();
    let s = |v: &str| Value::String(v.to_owned());
    attrs.insert("format".into(), s(msg.format.as_str()));
    attrs.insert("facility".into(), s(facility_name(msg.facility)));
    attrs.insert("severity".into(), s(severity_name(msg.severity)));
    if let Some(p) = &msg.procid {
        attrs.insert("procid".into(), s(p));
    }
    if let Some(m) = &msg.msgid {
        attrs.insert("msgid".into(), s(m));
    }
    let source = match (&msg.app_name, &msg.hostname) {
        (Some(app), host) => Some(Source {
            system: app.clone(),
            host: host.clone(),
        }),
        (None, Some(host)) => {
            attrs.insert("hostname".into(), s(host));
            None
        }
        (None, None) => None,
    };
    if !msg.structured_data.is_empty() {
        attrs.insert("sd".into(), Value::Object(sd_attrs(&msg.structured_data)));
    }
    if let Some(e) = event_error {
        attrs.insert("event_error".into(), Value::String(truncate(&e, 1024)));
    }
    attrs.insert(
        "raw".into(),
        Value::String(truncate(raw, MAX_ATTRS_STRING_CHARS)),
    );
    Event {
        id: None,
        time: time_of(msg),
        category: Category::System,
        action: SYSLOG_ACTION.to_owned(),
        outcome: Outcome::Unknown,
        actor: None,
        patient: None,
        resource: None,
        target_user: None,
        source,
        reason: None,
        records: None,
        message: (!msg.msg.is_empty()).then(|| truncate(&msg.msg, MAX_MESSAGE_CHARS)),
        attrs: Some(attrs),
    }
}

/// `{sd-id: {param: value}}`, bounded to what `attrs` may hold; later
/// duplicates of an id or param win.
fn sd_attrs(elements: &[SdElement]) -> Map<String, Value> {
    let mut out = Map::new();
    for e in elements.iter().take(MAX_SD_ELEMENTS.min(MAX_ATTRS_ENTRIES)) {
        let entry = out
            .entry(e.id.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(params) = entry {
            for (name, value) in e.params.iter().take(MAX_SD_PARAMS) {
                if params.len() >= MAX_SD_PARAMS && !params.contains_key(name) {
                    break;
                }
                params.insert(
                    name.clone(),
                    Value::String(truncate(value, MAX_ATTRS_STRING_CHARS)),
                );
            }
        }
    }
    out
}

/// At most `max` characters, the cut marked (the marker counts toward `max`).
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    const MARKER_ROOM: usize = 40;
    let keep = max.saturating_sub(MARKER_ROOM);
    let at = s.char_indices().nth(keep).map_or(s.len(), |(i, _)| i);
    format!("{}…[truncated {} bytes]", &s[..at], s.len() - at)
}

fn facility_name(f: u8) -> &'static str {
    const NAMES: [&str; 24] = [
        "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
        "authpriv", "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2",
        "local3", "local4", "local5", "local6", "local7",
    ];
    NAMES.get(usize::from(f)).copied().unwrap_or("unknown")
}

fn severity_name(s: u8) -> &'static str {
    const NAMES: [&str; 8] = [
        "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
    ];
    NAMES.get(usize::from(s)).copied().unwrap_or("unknown")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> OffsetDateTime {
        time::macros::datetime!(2026-11-27 12:00 UTC)
    }

    fn event(line: &str) -> Event {
        match message_to_item(line.as_bytes(), now()) {
            Some(Item::Event(e)) => e,
            other => panic!("{line}: {other:?}"),
        }
    }

    fn attr<'a>(e: &'a Event, k: &str) -> Option<&'a str> {
        e.attrs.as_ref()?.get(k)?.as_str()
    }

    #[test]
    fn json_messages_are_events_as_sent() {
        let e = event(
            r#"<86>1 2026-11-27T10:00:00Z host ehr - - - {"time":"2026-11-27T09:00:00Z","category":"auth","action":"login","outcome":"success","actor":{"user":"u1"},"source":{"system":"ehr"}}"#,
        );
        assert_eq!(e.category, Category::Auth);
        assert_eq!(e.time.to_string(), "2026-11-27T09:00:00Z");
        assert_eq!(
            e.source.as_ref().unwrap().host,
            None,
            "host is not invented"
        );
        assert_eq!(e.attrs, None);
    }

    #[test]
    fn invalid_json_events_are_kept_as_text_with_the_error() {
        let e = event(
            r#"<86>1 2026-11-27T10:00:00Z host ehr - - - {"time":"2026-11-27T09:00:00Z","category":"auth","action":"login","outcome":"maybe"}"#,
        );
        assert_eq!(e.action, SYSLOG_ACTION);
        assert!(attr(&e, "event_error").unwrap().contains("outcome"));
    }

    #[test]
    fn structured_data_maps_to_event_fields() {
        let e = event(
            r#"<86>1 2026-11-27T10:00:00.5Z app-01 ehr 42 M1 [timeQuality tzKnown="1"][sealtrail@32473 category="access" action="export" outcome="success" actor.user="u7" actor.ip="10.0.0.1" actor.mfa="true" patient.id="MRN-1" resource.type="chart" records="12" clinic="north"] exported charts"#,
        );
        assert_eq!(e.category, Category::Access);
        assert_eq!(e.action, "export");
        assert_eq!(e.time.to_string(), "2026-11-27T10:00:00.5Z");
        let actor = e.actor.as_ref().unwrap();
        assert_eq!(actor.user.as_deref(), Some("u7"));
        assert_eq!(actor.mfa, Some(true));
        assert_eq!(e.patient.as_ref().unwrap().id, "MRN-1");
        assert_eq!(e.records, Some(12));
        assert_eq!(e.message.as_deref(), Some("exported charts"));
        let source = e.source.as_ref().unwrap();
        assert_eq!(
            (source.system.as_str(), source.host.as_deref()),
            ("ehr", Some("app-01"))
        );
        assert_eq!(attr(&e, "clinic"), Some("north"));
    }

    #[test]
    fn incomplete_structured_data_events_fall_back_to_text() {
        let e = event(r#"<86>1 - - - - - [event@1 action="login"] hi"#);
        assert_eq!(e.category, Category::System);
        assert!(attr(&e, "event_error").unwrap().contains("category"));
        assert_eq!(
            e.attrs.as_ref().unwrap()["sd"]["event@1"]["action"],
            "login"
        );
    }

    #[test]
    fn plain_text_becomes_a_system_event() {
        let line = "<38>Nov 27 11:59:00 gw sshd[77]: Accepted publickey for bob";
        let e = event(line);
        assert_eq!(
            (e.category, e.action.as_str(), e.outcome),
            (Category::System, "syslog", Outcome::Unknown)
        );
        assert_eq!(e.time.to_string(), "2026-11-27T11:59:00Z");
        let source = e.source.as_ref().unwrap();
        assert_eq!(
            (source.system.as_str(), source.host.as_deref()),
            ("sshd", Some("gw"))
        );
        assert_eq!(e.message.as_deref(), Some("Accepted publickey for bob"));
        assert_eq!(attr(&e, "facility"), Some("auth"));
        assert_eq!(attr(&e, "severity"), Some("info"));
        assert_eq!(attr(&e, "procid"), Some("77"));
        assert_eq!(attr(&e, "raw"), Some(line));
    }

    #[test]
    fn long_messages_are_bounded() {
        let line = format!("<13>1 - h app - - - {}", "é".repeat(40_000));
        let e = event(&line);
        assert!(e.message.as_ref().unwrap().chars().count() <= MAX_MESSAGE_CHARS);
        assert!(attr(&e, "raw").unwrap().chars().count() <= MAX_ATTRS_STRING_CHARS);
        e.validate().unwrap();
    }

    #[test]
    fn garbage_is_rejected_and_blank_frames_ignored() {
        for (raw, why) in [
            (&b"hello"[..], "<PRI>"),
            (b"<999>x", "out of range"),
            (b"<13>1 \xff", "utf-8"),
        ] {
            match message_to_item(raw, now()) {
                Some(Item::Rejected { raw: r, reason }) => {
                    assert_eq!(r, raw);
                    assert!(reason.contains(why), "{reason}");
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(message_to_item(b"\n\0", now()).is_none());
    }
}

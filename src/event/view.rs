//! One entry's fields, borrowed: either from a parsed [`Entry`] or straight
//! from the stored ledger bytes ([`EntryView::from_ledger_bytes`]), the
//! path the service runs. The rules and the search index both read entries
//! through it.
//!
//! Reading stored bytes into an owned [`Entry`] allocates every string and
//! parses `attrs` into a map; rules read a handful of fields. The view
//! borrows strings from the bytes (a string is copied only when it has JSON
//! escapes), keeps `attrs` as raw JSON that is parsed on the first rule that
//! reads an `attrs.*` field, and converts each timestamp once. The ledger
//! validated every entry when writing it, so this parse checks only what it
//! reads: the values rules see are the same as from [`Entry`]'s parse.

use std::borrow::Cow;
use std::cell::OnceCell;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::event::{Category, Entry, EventError, Outcome, PatientInfo, StaffInfo, Timestamp};

type Text<'a> = Option<Str<'a>>;

/// A JSON string borrowed from the input when it has no escapes (serde
/// borrows a bare `Cow<str>` field but not one inside an `Option`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Str<'a>(pub Cow<'a, str>);

impl std::ops::Deref for Str<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// The entry's fields under the names rules use (see [`crate::rules::field`]).
#[derive(Debug)]
pub struct EntryView<'a> {
    pub received: Timestamp,
    pub via: ViaView<'a>,
    pub event: EventView<'a>,
    pub enriched: Option<EnrichedView<'a>>,
    /// `event.time` in Unix milliseconds (converted once).
    pub time_ms: i64,
}

#[derive(Debug, Deserialize)]
pub struct ViaView<'a> {
    #[serde(borrow)]
    pub kind: Str<'a>,
    #[serde(borrow, default)]
    pub peer: Text<'a>,
    #[serde(borrow, default)]
    pub principal: Text<'a>,
}

#[derive(Debug, Deserialize)]
pub struct EventView<'a> {
    #[serde(borrow, default)]
    pub id: Text<'a>,
    pub time: Timestamp,
    pub category: Category,
    #[serde(borrow)]
    pub action: Str<'a>,
    pub outcome: Outcome,
    #[serde(borrow, default)]
    pub actor: Option<ActorView<'a>>,
    #[serde(borrow, default)]
    pub patient: Option<PatientView<'a>>,
    #[serde(borrow, default)]
    pub resource: Option<ResourceView<'a>>,
    #[serde(borrow, default)]
    pub target_user: Text<'a>,
    #[serde(borrow, default)]
    pub source: Option<SourceView<'a>>,
    #[serde(borrow, default)]
    pub reason: Text<'a>,
    #[serde(default)]
    pub records: Option<u64>,
    #[serde(borrow, default)]
    pub message: Text<'a>,
    #[serde(borrow, default)]
    pub attrs: Attrs<'a>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ActorView<'a> {
    #[serde(borrow, default)]
    pub user: Text<'a>,
    #[serde(borrow, default)]
    pub role: Text<'a>,
    #[serde(borrow, default)]
    pub department: Text<'a>,
    #[serde(borrow, default)]
    pub ip: Text<'a>,
    #[serde(borrow, default)]
    pub session: Text<'a>,
    #[serde(borrow, default)]
    pub device: Text<'a>,
    #[serde(default)]
    pub mfa: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub struct PatientView<'a> {
    #[serde(borrow)]
    pub id: Str<'a>,
}

#[derive(Debug, Deserialize)]
pub struct ResourceView<'a> {
    #[serde(borrow, rename = "type")]
    pub kind: Str<'a>,
    #[serde(borrow, default)]
    pub id: Text<'a>,
}

#[derive(Debug, Deserialize)]
pub struct SourceView<'a> {
    #[serde(borrow)]
    pub system: Str<'a>,
    #[serde(borrow, default)]
    pub host: Text<'a>,
}

#[derive(Debug, Default, Deserialize)]
pub struct EnrichedView<'a> {
    #[serde(borrow, default)]
    pub actor: Option<StaffView<'a>>,
    #[serde(borrow, default)]
    pub target_user: Option<StaffView<'a>>,
    #[serde(borrow, default)]
    pub patient: Option<PatientInfoView<'a>>,
    #[serde(borrow, default)]
    pub network: Text<'a>,
}

#[derive(Debug, Default, Deserialize)]
pub struct StaffView<'a> {
    #[serde(borrow, default)]
    pub name: Text<'a>,
    #[serde(borrow, default)]
    pub last_name: Text<'a>,
    #[serde(borrow, default)]
    pub role: Text<'a>,
    #[serde(borrow, default)]
    pub department: Text<'a>,
    #[serde(borrow, default)]
    pub home_zip: Text<'a>,
    #[serde(borrow, default)]
    pub hired: Text<'a>,
    #[serde(borrow, default)]
    pub terminated: Text<'a>,
}

#[derive(Debug, Deserialize)]
pub struct PatientInfoView<'a> {
    #[serde(borrow, default)]
    pub last_name: Text<'a>,
    #[serde(borrow, default)]
    pub home_zip: Text<'a>,
    pub vip: bool,
    #[serde(borrow, default)]
    pub employee_user: Text<'a>,
}

/// `event.attrs`: a parsed map, or the raw JSON text parsed on first use.
#[derive(Debug, Default)]
pub enum Attrs<'a> {
    #[default]
    None,
    Map(&'a Map<String, Value>),
    Raw(&'a RawValue, OnceCell<Option<Map<String, Value>>>),
}

impl<'de: 'a, 'a> Deserialize<'de> for Attrs<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <&'a RawValue>::deserialize(d)?;
        Ok(Attrs::Raw(raw, OnceCell::new()))
    }
}

impl Attrs<'_> {
    /// The attributes, `None` when absent (or, for raw text, not an object:
    /// a stored entry's `attrs` always is one).
    pub fn map(&self) -> Option<&Map<String, Value>> {
        match self {
            Attrs::None => None,
            Attrs::Map(m) => Some(m),
            Attrs::Raw(raw, cell) => cell
                .get_or_init(|| serde_json::from_str(raw.get()).ok())
                .as_ref(),
        }
    }
}

/// The envelope as stored: parsed without path tracking or strictness
/// checks (see the module docs).
#[derive(Deserialize)]
struct Stored<'a> {
    received: Timestamp,
    #[serde(borrow)]
    via: ViaView<'a>,
    #[serde(borrow)]
    event: EventView<'a>,
    #[serde(borrow, default)]
    enriched: Option<EnrichedView<'a>>,
}

impl<'a> EntryView<'a> {
    /// Reads stored entry bytes (a ledger entry's canonical JSON), borrowing
    /// from them. Bounded like [`Entry::from_ledger_bytes`].
    pub fn from_ledger_bytes(bytes: &'a [u8]) -> Result<EntryView<'a>, EventError> {
        let max = crate::event::limits::MAX_ENTRY_BYTES;
        if bytes.len() > max {
            return Err(EventError::TooLarge {
                size: bytes.len(),
                max,
            });
        }
        // UTF-8 is checked once for the whole entry, not per string (the
        // slice reader re-checks each string; a quarter of the parse).
        let Ok(text) = std::str::from_utf8(bytes) else {
            return Err(Entry::from_ledger_bytes(bytes)
                .err()
                .unwrap_or(EventError::NotCanonical));
        };
        let s: Stored<'a> = match serde_json::from_str(text) {
            Ok(s) => s,
            // Not an entry: the full parse says exactly why.
            Err(_) => {
                return Err(Entry::from_ledger_bytes(bytes)
                    .err()
                    .unwrap_or(EventError::NotCanonical));
            }
        };
        Ok(EntryView {
            time_ms: s.event.time.unix_ms(),
            received: s.received,
            via: s.via,
            event: s.event,
            enriched: s.enriched,
        })
    }

    /// Borrows a parsed entry.
    pub fn from_entry(e: &'a Entry) -> EntryView<'a> {
        let ev = &e.event;
        EntryView {
            received: e.received,
            via: ViaView {
                kind: b(&e.via.kind),
                peer: t(&e.via.peer),
                principal: t(&e.via.principal),
            },
            event: EventView {
                id: t(&ev.id),
                time: ev.time,
                category: ev.category,
                action: b(&ev.action),
                outcome: ev.outcome,
                actor: ev.actor.as_ref().map(|a| ActorView {
                    user: t(&a.user),
                    role: t(&a.role),
                    department: t(&a.department),
                    ip: t(&a.ip),
                    session: t(&a.session),
                    device: t(&a.device),
                    mfa: a.mfa,
                }),
                patient: ev.patient.as_ref().map(|p| PatientView { id: b(&p.id) }),
                resource: ev.resource.as_ref().map(|r| ResourceView {
                    kind: b(&r.kind),
                    id: t(&r.id),
                }),
                target_user: t(&ev.target_user),
                source: ev.source.as_ref().map(|s| SourceView {
                    system: b(&s.system),
                    host: t(&s.host),
                }),
                reason: t(&ev.reason),
                records: ev.records,
                message: t(&ev.message),
                attrs: ev.attrs.as_ref().map_or(Attrs::None, Attrs::Map),
            },
            enriched: e.enriched.as_ref().map(|x| EnrichedView {
                actor: x.actor.as_ref().map(staff),
                target_user: x.target_user.as_ref().map(staff),
                patient: x.patient.as_ref().map(patient_info),
                network: t(&x.network),
            }),
            time_ms: ev.time.unix_ms(),
        }
    }
}

fn b(s: &str) -> Str<'_> {
    Str(Cow::Borrowed(s))
}

fn t(s: &Option<String>) -> Text<'_> {
    s.as_deref().map(b)
}

fn staff(i: &StaffInfo) -> StaffView<'_> {
    StaffView {
        name: t(&i.name),
        last_name: t(&i.last_name),
        role: t(&i.role),
        department: t(&i.department),
        home_zip: t(&i.home_zip),
        hired: t(&i.hired),
        terminated: t(&i.terminated),
    }
}

fn patient_info(p: &PatientInfo) -> PatientInfoView<'_> {
    PatientInfoView {
        last_name: t(&p.last_name),
        home_zip: t(&p.home_zip),
        vip: p.vip,
        employee_user: t(&p.employee_user),
    }
}

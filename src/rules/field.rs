//! The field view rules see: an entry's event, envelope and enrichment
//! under dotted names. Names are resolved to a [`Field`] once, at load; an
//! event's value is then read straight from the [`EntryView`] (borrowed from
//! a parsed [`Entry`](crate::event::Entry) or from the stored bytes; nothing
//! is copied per rule).
//!
//! Enrichment is merged under the event's own names: `actor.role` and
//! `actor.department` are the event's value when it has one and the
//! directory's otherwise; `actor.last_name`, `patient.vip`, `target_user.role`
//! and the other directory columns exist only in the enrichment.

use std::borrow::Cow;

use serde_json::Value;

use super::view::{EntryView, StaffView, Str};
use crate::event::Timestamp;

/// A field of the fixed schema (event, envelope, enrichment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    Id,
    Time,
    Category,
    Action,
    Outcome,
    ActorUser,
    ActorRole,
    ActorDepartment,
    ActorIp,
    /// The network of `actor.ip` a mobile address stays in: its /24 (v4,
    /// v4-mapped v6 included) or /48 (v6), computed when read.
    ActorIpPrefix,
    /// The wider block of `actor.ip` a carrier or ISP hands addresses out
    /// from: its /16 (v4, v4-mapped v6 included) or /32 (v6).
    ActorIpBlock,
    /// `networks.csv`: the name of the known network holding `actor.ip`.
    ActorNetwork,
    ActorSession,
    ActorDevice,
    ActorMfa,
    ActorName,
    ActorLastName,
    ActorHomeZip,
    ActorHired,
    ActorTerminated,
    PatientId,
    PatientLastName,
    PatientHomeZip,
    PatientVip,
    PatientEmployeeUser,
    ResourceType,
    ResourceId,
    TargetUser,
    TargetName,
    TargetLastName,
    TargetRole,
    TargetDepartment,
    TargetHomeZip,
    TargetHired,
    TargetTerminated,
    SourceSystem,
    SourceHost,
    Reason,
    Records,
    Message,
    Received,
    ViaKind,
    ViaPeer,
    ViaPrincipal,
}

/// Every fixed field name a rule may use (besides `attrs.*`).
pub const KNOWN_FIELDS: [(&str, Known); 44] = [
    ("id", Known::Id),
    ("time", Known::Time),
    ("category", Known::Category),
    ("action", Known::Action),
    ("outcome", Known::Outcome),
    ("actor.user", Known::ActorUser),
    ("actor.role", Known::ActorRole),
    ("actor.department", Known::ActorDepartment),
    ("actor.ip", Known::ActorIp),
    ("actor.ip_prefix", Known::ActorIpPrefix),
    ("actor.ip_block", Known::ActorIpBlock),
    ("actor.network", Known::ActorNetwork),
    ("actor.session", Known::ActorSession),
    ("actor.device", Known::ActorDevice),
    ("actor.mfa", Known::ActorMfa),
    ("actor.name", Known::ActorName),
    ("actor.last_name", Known::ActorLastName),
    ("actor.home_zip", Known::ActorHomeZip),
    ("actor.hired", Known::ActorHired),
    ("actor.terminated", Known::ActorTerminated),
    ("patient.id", Known::PatientId),
    ("patient.last_name", Known::PatientLastName),
    ("patient.home_zip", Known::PatientHomeZip),
    ("patient.vip", Known::PatientVip),
    ("patient.employee_user", Known::PatientEmployeeUser),
    ("resource.type", Known::ResourceType),
    ("resource.id", Known::ResourceId),
    ("target_user", Known::TargetUser),
    ("target_user.name", Known::TargetName),
    ("target_user.last_name", Known::TargetLastName),
    ("target_user.role", Known::TargetRole),
    ("target_user.department", Known::TargetDepartment),
    ("target_user.home_zip", Known::TargetHomeZip),
    ("target_user.hired", Known::TargetHired),
    ("target_user.terminated", Known::TargetTerminated),
    ("source.system", Known::SourceSystem),
    ("source.host", Known::SourceHost),
    ("reason", Known::Reason),
    ("records", Known::Records),
    ("message", Known::Message),
    ("received", Known::Received),
    ("via.kind", Known::ViaKind),
    ("via.peer", Known::ViaPeer),
    ("via.principal", Known::ViaPrincipal),
];

/// A resolved field name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Known(Known),
    /// `attrs.<path>`: the key as written after `attrs.` (a key containing
    /// dots is tried whole first, then as a path into nested objects).
    Attr(Box<str>),
}

impl Field {
    /// Resolves a dotted name; `None` for names outside the schema.
    pub fn parse(name: &str) -> Option<Field> {
        if let Some(rest) = name.strip_prefix("attrs.") {
            return (!rest.is_empty() && !rest.split('.').any(str::is_empty))
                .then(|| Field::Attr(rest.into()));
        }
        KNOWN_FIELDS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, k)| Field::Known(*k))
    }

    /// The value of this field in `entry`, `None` when absent or null.
    pub fn get<'a>(&self, entry: &'a EntryView<'_>) -> Option<FieldValue<'a>> {
        match self {
            Field::Known(k) => known(*k, entry),
            Field::Attr(path) => {
                let attrs = entry.event.attrs.map()?;
                let v = match attrs.get(&**path) {
                    Some(v) => v,
                    None => {
                        let mut parts = path.split('.');
                        let mut v = attrs.get(parts.next()?)?;
                        for p in parts {
                            v = v.as_object()?.get(p)?;
                        }
                        v
                    }
                };
                FieldValue::from_json(v)
            }
        }
    }
}

/// One field value as a rule sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldValue<'a> {
    Str(&'a str),
    Int(u64),
    Float(f64),
    Bool(bool),
    Time(Timestamp),
    /// An `attrs` array or object: array elements are matched one by one.
    Json(&'a Value),
    /// A network computed from an address (`actor.ip_prefix`): the masked
    /// address and prefix length, written `203.0.113.0/24`.
    Net(std::net::IpAddr, u8),
}

impl<'a> FieldValue<'a> {
    pub fn from_json(v: &'a Value) -> Option<FieldValue<'a>> {
        match v {
            Value::Null => None,
            Value::Bool(b) => Some(FieldValue::Bool(*b)),
            Value::String(s) => Some(FieldValue::Str(s)),
            Value::Number(n) => Some(match n.as_u64() {
                Some(u) => FieldValue::Int(u),
                None => FieldValue::Float(n.as_f64().unwrap_or(f64::NAN)),
            }),
            Value::Array(_) | Value::Object(_) => Some(FieldValue::Json(v)),
        }
    }

    /// The value as text (strings borrowed; numbers, booleans and times
    /// formatted; JSON arrays and objects as compact JSON).
    pub fn text(&self) -> Cow<'a, str> {
        match self {
            FieldValue::Str(s) => Cow::Borrowed(s),
            FieldValue::Int(i) => Cow::Owned(i.to_string()),
            FieldValue::Float(f) => Cow::Owned(f.to_string()),
            FieldValue::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
            FieldValue::Time(t) => Cow::Owned(t.to_string()),
            FieldValue::Json(v) => Cow::Owned(v.to_string()),
            FieldValue::Net(a, len) => Cow::Owned(format!("{a}/{len}")),
        }
    }

    /// The value as a number, when it is one or is text that parses as one.
    pub fn number(&self) -> Option<f64> {
        match self {
            #[allow(clippy::cast_precision_loss)] // records are far below 2^53
            FieldValue::Int(i) => Some(*i as f64),
            FieldValue::Float(f) => Some(*f),
            FieldValue::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// The value as an instant: times, and text in RFC 3339.
    pub fn time(&self) -> Option<Timestamp> {
        match self {
            FieldValue::Time(t) => Some(*t),
            FieldValue::Str(s) => Timestamp::parse(s).ok(),
            _ => None,
        }
    }
}

fn s<'a>(v: &'a Option<Str<'_>>) -> Option<FieldValue<'a>> {
    v.as_deref().map(FieldValue::Str)
}

fn staff<'a, 'b>(
    info: Option<&'a StaffView<'b>>,
    pick: fn(&'a StaffView<'b>) -> &'a Option<Str<'b>>,
) -> Option<FieldValue<'a>> {
    info.and_then(|i| s(pick(i)))
}

fn known<'a>(k: Known, entry: &'a EntryView<'_>) -> Option<FieldValue<'a>> {
    let e = &entry.event;
    let actor = e.actor.as_ref();
    let en = entry.enriched.as_ref();
    // Only the arm taken looks these up.
    let en_actor = || en.and_then(|x| x.actor.as_ref());
    let en_target = || en.and_then(|x| x.target_user.as_ref());
    let en_patient = || en.and_then(|x| x.patient.as_ref());
    match k {
        Known::Id => s(&e.id),
        Known::Time => Some(FieldValue::Time(e.time)),
        Known::Category => Some(FieldValue::Str(e.category.as_str())),
        Known::Action => Some(FieldValue::Str(&e.action)),
        Known::Outcome => Some(FieldValue::Str(e.outcome.as_str())),
        Known::ActorUser => actor.and_then(|a| s(&a.user)),
        Known::ActorRole => actor
            .and_then(|a| s(&a.role))
            .or_else(|| staff(en_actor(), |i| &i.role)),
        Known::ActorDepartment => actor
            .and_then(|a| s(&a.department))
            .or_else(|| staff(en_actor(), |i| &i.department)),
        Known::ActorIp => actor.and_then(|a| s(&a.ip)),
        Known::ActorIpPrefix => actor
            .and_then(|a| a.ip.as_deref())
            .and_then(|ip| ip_prefix(ip, 24, 48)),
        Known::ActorIpBlock => actor
            .and_then(|a| a.ip.as_deref())
            .and_then(|ip| ip_prefix(ip, 16, 32)),
        Known::ActorNetwork => en.and_then(|x| s(&x.network)),
        Known::ActorSession => actor.and_then(|a| s(&a.session)),
        Known::ActorDevice => actor.and_then(|a| s(&a.device)),
        Known::ActorMfa => actor.and_then(|a| a.mfa).map(FieldValue::Bool),
        Known::ActorName => staff(en_actor(), |i| &i.name),
        Known::ActorLastName => staff(en_actor(), |i| &i.last_name),
        Known::ActorHomeZip => staff(en_actor(), |i| &i.home_zip),
        Known::ActorHired => staff(en_actor(), |i| &i.hired),
        Known::ActorTerminated => staff(en_actor(), |i| &i.terminated),
        Known::PatientId => e.patient.as_ref().map(|p| FieldValue::Str(&p.id)),
        Known::PatientLastName => en_patient().and_then(|p| s(&p.last_name)),
        Known::PatientHomeZip => en_patient().and_then(|p| s(&p.home_zip)),
        Known::PatientVip => en_patient().map(|p| FieldValue::Bool(p.vip)),
        Known::PatientEmployeeUser => en_patient().and_then(|p| s(&p.employee_user)),
        Known::ResourceType => e.resource.as_ref().map(|r| FieldValue::Str(&r.kind)),
        Known::ResourceId => e.resource.as_ref().and_then(|r| s(&r.id)),
        Known::TargetUser => s(&e.target_user),
        Known::TargetName => staff(en_target(), |i| &i.name),
        Known::TargetLastName => staff(en_target(), |i| &i.last_name),
        Known::TargetRole => staff(en_target(), |i| &i.role),
        Known::TargetDepartment => staff(en_target(), |i| &i.department),
        Known::TargetHomeZip => staff(en_target(), |i| &i.home_zip),
        Known::TargetHired => staff(en_target(), |i| &i.hired),
        Known::TargetTerminated => staff(en_target(), |i| &i.terminated),
        Known::SourceSystem => e.source.as_ref().map(|x| FieldValue::Str(&x.system)),
        Known::SourceHost => e.source.as_ref().and_then(|x| s(&x.host)),
        Known::Reason => s(&e.reason),
        Known::Records => e.records.map(FieldValue::Int),
        Known::Message => s(&e.message),
        Known::Received => Some(FieldValue::Time(entry.received)),
        Known::ViaKind => Some(FieldValue::Str(&entry.via.kind)),
        Known::ViaPeer => s(&entry.via.peer),
        Known::ViaPrincipal => s(&entry.via.principal),
    }
}

/// The network of an address: its first `v4` bits (IPv4 or v4-mapped) or
/// `v6` bits (IPv6), e.g. /24 and /48 (`actor.ip_prefix`: where a phone's
/// address mostly moves within its carrier's gateway) or /16 and /32
/// (`actor.ip_block`: the block a carrier or ISP hands addresses out from).
fn ip_prefix<'a>(ip: &str, v4_bits: u8, v6_bits: u8) -> Option<FieldValue<'a>> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let a: IpAddr = ip.trim().parse().ok()?;
    let v4 = match a {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(v6) => v6.to_ipv4_mapped(),
    };
    Some(match (v4, a) {
        (Some(v4), _) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(v4_bits)).unwrap_or(0);
            FieldValue::Net(IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask)), v4_bits)
        }
        (None, IpAddr::V6(v6)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(v6_bits)).unwrap_or(0);
            FieldValue::Net(IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask)), v6_bits)
        }
        (None, IpAddr::V4(_)) => return None,
    })
}

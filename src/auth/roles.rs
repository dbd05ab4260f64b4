//! Roles: least privilege, one job each. A principal holds a set of them.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Send events only.
    Ingest,
    /// Search, single events, patient-access reports, alerts.
    Analyst,
    /// Alerts, incidents and silences.
    Responder,
    /// Checkpoints, proofs, consistency, evidence bundles.
    Auditor,
    /// Users, tokens, rules, keys.
    Admin,
    /// Read `/metrics` (a Prometheus scraper); nothing else.
    Metrics,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Ingest,
        Role::Analyst,
        Role::Responder,
        Role::Auditor,
        Role::Admin,
        Role::Metrics,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Analyst => "analyst",
            Role::Responder => "responder",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
            Role::Metrics => "metrics",
        }
    }

    const fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown role `{0}` (roles: ingest, analyst, responder, auditor, admin, metrics)")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Role, UnknownRole> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.chars().take(40).collect()))
    }
}

/// A set of roles (a bit set; there are six).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RoleSet(u8);

impl RoleSet {
    pub const EMPTY: RoleSet = RoleSet(0);

    pub const fn of(roles: &[Role]) -> RoleSet {
        let mut bits = 0;
        let mut i = 0;
        while i < roles.len() {
            bits |= roles[i].bit();
            i += 1;
        }
        RoleSet(bits)
    }

    pub fn contains(self, role: Role) -> bool {
        self.0 & role.bit() != 0
    }

    pub fn intersects(self, other: RoleSet) -> bool {
        self.0 & other.0 != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn insert(&mut self, role: Role) {
        self.0 |= role.bit();
    }

    pub fn iter(self) -> impl Iterator<Item = Role> {
        Role::ALL.into_iter().filter(move |r| self.contains(*r))
    }

    /// `analyst,responder`: several roles, comma-separated.
    pub fn parse_list(s: &str) -> Result<RoleSet, UnknownRole> {
        let mut set = RoleSet::EMPTY;
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            set.insert(part.parse()?);
        }
        if set.is_empty() {
            return Err(UnknownRole(String::new()));
        }
        Ok(set)
    }

    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Role::as_str).collect()
    }
}

impl fmt::Display for RoleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(","))
    }
}

impl Serialize for RoleSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.names().serialize(s)
    }
}

impl<'de> Deserialize<'de> for RoleSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<RoleSet, D::Error> {
        let names = Vec::<Role>::deserialize(d)?;
        Ok(RoleSet::of(&names))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_lists_parse_and_print_back() {
        let set = RoleSet::parse_list("responder, analyst").unwrap();
        assert!(set.contains(Role::Analyst) && set.contains(Role::Responder));
        assert!(!set.contains(Role::Admin));
        assert_eq!(set.to_string(), "analyst,responder");
        assert!(RoleSet::parse_list("root").is_err());
        assert!(RoleSet::parse_list("").is_err());
        let json = serde_json::to_string(&set).unwrap();
        assert_eq!(json, r#"["analyst","responder"]"#);
        assert_eq!(serde_json::from_str::<RoleSet>(&json).unwrap(), set);
    }
}

//! State joins, a sealtrail extension to Sigma correlations: facts one rule
//! records per key, checked when another rule's event arrives.
//!
//! - `type: relation`: `relation` rules record a relation for their key
//!   (the group-by fields, aliased per rule) at a time taken from a field
//!   (`time`, e.g. `attrs.scheduled_for`; the event time without it). An
//!   event of a checked rule (`rules`) fires when no relation of its key
//!   lies within `window` of its event time, either side, both ends
//!   inclusive. Example: a VIP chart opened by a user who is not the
//!   clinician of an appointment of that patient within 30 days.
//! - `type: state`: a per-key latest state. `set` rules set it, `clear`
//!   rules clear it, and an event of a checked rule fires while it is set
//!   and the set is at most `history` old. Example: a login of an account
//!   disabled and not re-enabled since.
//!
//! Hits of every member go through the engine's reorder buffer, so records,
//! clears and checks apply in (event time, ledger index) order: a relation
//! counts for a check when its recording event is at or before the checked
//! one, whatever the arrival order within the allowed lateness. Recording
//! members come before checked ones, so an event that both records and is
//! checked sees its own record.
//!
//! State is bounded: keys per rule (`max_groups_per_rule`; the key whose
//! state expires first is evicted, `evicted_groups`) and relation times per
//! key (`max_hits_per_group`; the earliest dropped, `dropped_hits`). A key
//! expires once the watermark passes its newest relation time plus `window`
//! (or its set time plus `history`). It is rebuilt after a restart by the
//! replay of the recent window: the rule's replay span is `window + lead`
//! (relation) or `history` (state). A relation check whose window reaches
//! before the engine's first event, when the engine was told its input
//! starts after the ledger's beginning ([`super::Engine::set_partial_history`]),
//! does not fire: its relations may be in the part not replayed.

use std::collections::{BTreeMap, BTreeSet};

use super::detection::{At, at};
use super::engine::{EngineConfig, EngineStats, GroupKey, Map};
use super::field::Field;
use super::load::refuse_keys;
use super::load::{CorrelationType, duration};
use super::yaml::{Node, Pos};
use crate::event::Timestamp;

/// Default relation window: 30 days either side.
pub const DEFAULT_WINDOW_MS: i64 = 30 * 86_400_000;

/// What a member rule does in a join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Its events are checked and may fire.
    Check,
    /// `relation`: records a relation for its key.
    Record,
    /// `state`: sets the key's state.
    Set,
    /// `state`: clears the key's state.
    Clear,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    Relation { window_ms: i64, lead_ms: i64 },
    State { history_ms: i64 },
}

/// A compiled `relation` or `state` correlation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Join {
    pub kind: JoinKind,
    /// Per member (same order as the correlation's members).
    pub roles: Vec<Role>,
}

impl Join {
    /// How far back a replay must reach to rebuild this rule's state.
    pub fn span_ms(&self) -> i64 {
        match self.kind {
            JoinKind::Relation { window_ms, lead_ms } => window_ms + lead_ms,
            JoinKind::State { history_ms } => history_ms,
        }
    }
}

/// A join correlation as parsed: the member rule nodes (recording ones
/// first, then the checked `rules`), the join and the relation time field.
pub(super) struct JoinSpec<'a> {
    pub rules: Vec<&'a Node>,
    pub join: Join,
    pub time_field: Option<(Field, Pos)>,
}

/// Reads a list of rule names of the correlation map (key, required).
pub(super) type ListReader<'a, 'f> = &'f dyn Fn(&str, bool) -> Result<Vec<&'a Node>, At>;

/// Keys of a correlation map that only joins use.
pub(super) const JOIN_KEYS: [&str; 6] = ["relation", "set", "clear", "time", "window", "lead"];

/// Parses the join attributes of correlation map `c` of type `kind`;
/// `checked` are its `rules`, `list` reads a list of rule names.
pub(super) fn parse<'a>(
    c: &'a Node,
    kind: CorrelationType,
    checked: Vec<&'a Node>,
    list: ListReader<'a, '_>,
) -> Result<JoinSpec<'a>, At> {
    let relation = kind == CorrelationType::Relation;
    let (name, foreign): (&str, &[&str]) = if relation {
        ("relation", &["set", "clear", "history"])
    } else {
        ("state", &["relation", "time", "window", "lead"])
    };
    let unused = [
        "timespan",
        "condition",
        "field",
        "learning",
        "gap",
        "min_count",
        "gap_factor",
        "gap_by",
        "factor",
        "peers",
    ];
    refuse_keys(c, unused.iter().chain(foreign).copied(), |key| {
        format!("`{key}` is not used by {name}")
    })?;
    let mut rules = Vec::new();
    let mut roles = Vec::new();
    let mut add = |nodes: Vec<&'a Node>, role: Role| {
        roles.extend(std::iter::repeat_n(role, nodes.len()));
        rules.extend(nodes);
    };
    let (join_kind, time_field) = if relation {
        add(list("relation", true)?, Role::Record);
        let window_ms = duration(c, "window")?.unwrap_or(DEFAULT_WINDOW_MS);
        let lead_ms = match c.get("lead") {
            Some(n) if n.as_str() == Some("0") => 0,
            _ => duration(c, "lead")?.unwrap_or(0),
        };
        let time_field = match c.get("time") {
            None => None,
            Some(v) => {
                let name = v
                    .as_str()
                    .ok_or_else(|| at(v.pos, "`time` must be a field name"))?;
                let f = Field::parse(name)
                    .ok_or_else(|| at(v.pos, format!("unknown field `{name}`")))?;
                Some((f, v.pos))
            }
        };
        (JoinKind::Relation { window_ms, lead_ms }, time_field)
    } else {
        add(list("set", true)?, Role::Set);
        add(list("clear", false)?, Role::Clear);
        let history_ms =
            duration(c, "history")?.ok_or_else(|| at(c.pos, "state has no `history`"))?;
        (JoinKind::State { history_ms }, None)
    };
    add(checked, Role::Check);
    for (i, r) in rules.iter().enumerate() {
        let n = r.as_str().unwrap_or_default();
        if rules[..i].iter().any(|o| o.as_str() == Some(n)) {
            return Err(at(
                r.pos,
                format!("rule `{n}` is listed twice in this {name}"),
            ));
        }
    }
    Ok(JoinSpec {
        rules,
        join: Join {
            kind: join_kind,
            roles,
        },
        time_field,
    })
}

/// One applied hit of a join member.
pub(super) struct JoinHit<'a> {
    pub time: i64,
    pub member: usize,
    pub index: u64,
    /// The relation time field's text (recording members).
    pub value: Option<&'a str>,
}

/// A firing: the alert's first time, count and events.
pub(super) struct Fired {
    pub first_ms: i64,
    pub count: u64,
    pub events: Vec<u64>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Slot {
    /// Past this (event time of the watermark) the slot cannot matter.
    expires: i64,
    seq: u64,
    /// relation: recorded relation times.
    times: BTreeSet<i64>,
    /// state: the set event (time, ledger index).
    set: Option<(i64, u64)>,
}

/// Per-correlation state of a join.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct JoinState {
    #[serde(with = "crate::rules::snap::pairs")]
    slots: Map<GroupKey, Slot>,
    /// (expires, seq) -> key, soonest first: expiry and eviction order.
    #[serde(with = "crate::rules::snap::pairs")]
    order: BTreeMap<(i64, u64), GroupKey>,
    seq: u64,
}

impl JoinState {
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Drops slots that expire before `now`.
    pub fn expire(&mut self, now: i64, stats: &mut EngineStats) {
        while let Some((&(expires, seq), _)) = self.order.first_key_value() {
            if expires >= now {
                break;
            }
            if let Some(k) = self.order.remove(&(expires, seq)) {
                self.slots.remove(&k);
                stats.expired_groups += 1;
            }
        }
    }

    fn remove(&mut self, key: &GroupKey) {
        if let Some(s) = self.slots.remove(key) {
            self.order.remove(&(s.expires, s.seq));
        }
    }

    /// The slot of `key`, created (evicting the slot that expires soonest
    /// when full) when missing.
    fn slot(&mut self, key: &GroupKey, cap: usize, stats: &mut EngineStats) -> &mut Slot {
        if !self.slots.contains_key(key)
            && self.slots.len() >= cap.max(1)
            && let Some((_, k)) = self.order.pop_first()
        {
            self.slots.remove(&k);
            stats.evicted_groups += 1;
        }
        self.seq += 1;
        let seq = self.seq;
        self.slots.entry(key.clone()).or_insert_with(|| Slot {
            expires: i64::MIN,
            seq,
            times: BTreeSet::new(),
            set: None,
        })
    }

    /// Moves `key`'s place in the expiry order to `expires`.
    fn reorder(&mut self, key: &GroupKey, expires: i64) {
        self.seq += 1;
        let seq = self.seq;
        if let Some(s) = self.slots.get_mut(key) {
            self.order.remove(&(s.expires, s.seq));
            s.expires = expires;
            s.seq = seq;
            self.order.insert((expires, seq), key.clone());
        }
    }

    /// Applies one hit (in (event time, ledger index) order); a firing when
    /// a checked event finds no relation, or its key's state set.
    /// `since`: the first event time of an engine whose input starts after
    /// the ledger's beginning (relation checks before it plus the rule's
    /// span stay silent).
    pub fn apply(
        &mut self,
        join: &Join,
        key: &GroupKey,
        hit: &JoinHit<'_>,
        since: Option<i64>,
        cfg: &EngineConfig,
        stats: &mut EngineStats,
    ) -> Option<Fired> {
        let t = hit.time;
        if key.iter().any(Option::is_none) {
            // A key part the event lacks: nothing to join on.
            stats.unjoined_hits += 1;
            return None;
        }
        self.expire(t, stats);
        let role = join.roles.get(hit.member).copied()?;
        match (join.kind, role) {
            (JoinKind::Relation { window_ms, .. }, Role::Record) => {
                let at = match hit.value {
                    None => t,
                    Some(v) => match Timestamp::parse(v) {
                        Ok(ts) => ts.unix_ms(),
                        Err(_) => {
                            stats.unjoined_hits += 1;
                            return None;
                        }
                    },
                };
                if at + window_ms < t {
                    // No check at or after `t` can reach it.
                    return None;
                }
                let slot = self.slot(key, cfg.max_groups_per_rule, stats);
                slot.times.insert(at);
                if slot.times.len() > cfg.max_hits_per_group.max(1) {
                    slot.times.pop_first();
                    stats.dropped_hits += 1;
                }
                let newest = slot.times.last().copied().unwrap_or(at);
                self.reorder(key, newest + window_ms);
                None
            }
            (JoinKind::Relation { window_ms, lead_ms }, Role::Check) => {
                if since.is_some_and(|s| t - s < window_ms + lead_ms) {
                    return None;
                }
                let related = match self.slots.get_mut(key) {
                    Some(slot) => {
                        // Later checks are not earlier than `t`.
                        slot.times = slot.times.split_off(&(t - window_ms));
                        slot.times.range(..=t + window_ms).next().is_some()
                    }
                    None => false,
                };
                (!related).then(|| Fired {
                    first_ms: t,
                    count: 1,
                    events: vec![hit.index],
                })
            }
            (JoinKind::State { history_ms }, Role::Set) => {
                let slot = self.slot(key, cfg.max_groups_per_rule, stats);
                slot.set = Some((t, hit.index));
                self.reorder(key, t + history_ms);
                None
            }
            (JoinKind::State { .. }, Role::Clear) => {
                self.remove(key);
                None
            }
            (JoinKind::State { history_ms }, Role::Check) => {
                let (set_t, set_i) = self.slots.get(key)?.set?;
                (t - set_t <= history_ms).then(|| Fired {
                    first_ms: set_t,
                    count: 2,
                    events: vec![set_i, hit.index],
                })
            }
            // Roles are assigned by `parse` per kind.
            _ => None,
        }
    }
}

#[cfg(test)]
#[path = "relation_tests.rs"]
mod tests;

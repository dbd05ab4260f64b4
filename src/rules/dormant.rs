//! `dormant` (a sealtrail extension): an account active again after a long
//! silence, including one already silent when the ledger began, judged by
//! the directory's hire date.
//!
//! ```yaml
//! correlation:
//!   type: dormant
//!   rules: [account_activity]          # every event of the account
//!   corroborate: [unusual_activity]    # optional: the returning event must also match one of these
//!   group-by: [actor.user]
//!   since: actor.hired                 # optional: a date or time field (staff.csv hired)
//!   history: 30d                       # a group is remembered this long after its last hit
//!   gap: 14d                           # the silence that makes an account dormant (at most history)
//! ```
//!
//! A hit of `rules` fires (count 1, the event) when its group is *back*:
//! - its previous hit is at least `gap` older (and at most `history`, after
//!   which the group was forgotten), or
//! - with `since`: the group has no remembered hit, the event's `since`
//!   value is at least `gap` before it (hired long ago, not a new account),
//!   and the rule has seen hits for at least `gap` before it (its first hit
//!   is that old). Every event since that first hit went through the rule,
//!   so the account had none for at least `gap`: an account dormant before
//!   the ledger began (or before the rebuild replay's start) is seen at its
//!   first event, however long it slept.
//!
//! With `corroborate`, a return only fires when the same event also
//! matches a corroborating rule (e.g. from outside the practice's known
//! networks, or at night): staff back from leave at their desk in office
//! hours do not alert, a stolen dormant account used from elsewhere does.
//! Hits of a corroborating rule are applied after the same event's
//! activity hit (members are ordered), so the pairing is exact.
//!
//! Bounds: groups per rule (`max_groups_per_rule`, the idle longest
//! evicted, `evicted_groups`: an evicted account looks never seen, so with
//! `since` it may fire early), groups with no hit for `history` forgotten
//! (`expired_groups`); per group only its last hit time.

use super::detection::{At, at};
use super::engine::{EngineStats, Fired, GroupKey};
use super::field::Field;
use super::fieldcmp::date_ms;
use super::groups::Groups;
use super::load::duration;
use super::load::refuse_keys;
use super::yaml::{Node, Pos};
use crate::event::Timestamp;

/// Keys of a correlation map that only `dormant` uses (`gap` and `history`
/// are shared with first_seen).
pub(super) const DORMANT_KEYS: [&str; 2] = ["corroborate", "since"];

/// Settings of a `dormant` correlation (its `timespan_ms` is `history`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dormant {
    pub gap_ms: i64,
    pub history_ms: i64,
    /// `since`: the field as written (its value is the hits' value).
    pub since: Option<String>,
    /// Per member: whether it corroborates (`corroborate`) rather than
    /// counts as activity (`rules`).
    pub corroborates: Vec<bool>,
}

impl Dormant {
    fn corroborated(&self) -> bool {
        self.corroborates.iter().any(|c| *c)
    }
}

/// A dormant correlation as parsed: its member rule nodes (`rules` first,
/// then `corroborate`), history, settings and the `since` field.
pub(super) struct DormantSpec<'a> {
    pub rules: Vec<&'a Node>,
    pub history_ms: i64,
    pub dormant: Dormant,
    pub since: Option<(Field, Pos)>,
}

/// Parses a dormant correlation map `c`; `activity` are its `rules`.
pub(super) fn parse<'a>(
    c: &'a Node,
    activity: Vec<&'a Node>,
    list: super::relation::ListReader<'a, '_>,
) -> Result<DormantSpec<'a>, At> {
    let unused = [
        "timespan",
        "condition",
        "field",
        "learning",
        "min_count",
        "gap_factor",
        "factor",
        "peers",
    ];
    refuse_keys(c, unused, |key| {
        format!("`{key}` is not used by dormant (use history, gap, since, corroborate)")
    })?;
    let history_ms =
        duration(c, "history")?.ok_or_else(|| at(c.pos, "dormant has no `history`"))?;
    let gap_ms = duration(c, "gap")?.ok_or_else(|| at(c.pos, "dormant has no `gap`"))?;
    if gap_ms > history_ms
        && let Some(n) = c.get("gap")
    {
        return Err(at(
            n.pos,
            "`gap` must not exceed `history` (a group is forgotten after history)",
        ));
    }
    let since = match c.get("since") {
        None => None,
        Some(v) => {
            let name = v
                .as_str()
                .ok_or_else(|| at(v.pos, "`since` must be a field name"))?;
            let f =
                Field::parse(name).ok_or_else(|| at(v.pos, format!("unknown field `{name}`")))?;
            Some((name.to_owned(), (f, v.pos)))
        }
    };
    let mut rules = activity;
    let corroborate = list("corroborate", false)?;
    let corroborates: Vec<bool> = std::iter::repeat_n(false, rules.len())
        .chain(std::iter::repeat_n(true, corroborate.len()))
        .collect();
    rules.extend(corroborate);
    for (i, r) in rules.iter().enumerate() {
        let n = r.as_str().unwrap_or_default();
        if rules[..i].iter().any(|o| o.as_str() == Some(n)) {
            return Err(at(
                r.pos,
                format!("rule `{n}` is listed twice in this dormant"),
            ));
        }
    }
    let (since_name, since_field) = since.map_or((None, None), |(n, f)| (Some(n), Some(f)));
    Ok(DormantSpec {
        rules,
        history_ms,
        dormant: Dormant {
            gap_ms,
            history_ms,
            since: since_name,
            corroborates,
        },
        since: since_field,
    })
}

/// A `since` value as an instant: a timestamp, or a date's start (UTC).
fn since_ms(v: &str) -> Option<i64> {
    Timestamp::parse(v)
        .ok()
        .map(|t| t.unix_ms())
        .or_else(|| date_ms(v.trim()))
}

/// The dormant state of one rule.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct State {
    /// Groups by last hit (the value is unused: [`Groups`] keeps the time).
    groups: Groups<()>,
    /// The rule's first hit: how far back it has watched every account.
    first: Option<i64>,
    /// A return waiting for its corroboration: (group, event index).
    waiting: Option<(GroupKey, u64)>,
}

/// One applied hit.
pub(crate) struct DormantHit<'a> {
    pub time: i64,
    pub member: usize,
    pub index: u64,
    /// The `since` field's value.
    pub since: Option<&'a str>,
}

impl State {
    pub(crate) fn len(&self) -> usize {
        self.groups.len()
    }

    /// Applies one hit (in event-time order); a firing when an account is
    /// back (and corroborated, when the rule asks for it).
    pub(crate) fn apply(
        &mut self,
        d: &Dormant,
        key: &GroupKey,
        hit: &DormantHit<'_>,
        max_groups: usize,
        stats: &mut EngineStats,
    ) -> Option<Fired> {
        let t = hit.time;
        let fired = |index| Fired {
            first: t,
            last: t,
            count: 1,
            events: vec![index],
        };
        if d.corroborates.get(hit.member).copied().unwrap_or(false) {
            return match self.waiting.take() {
                Some((k, i)) if i == hit.index && &k == key => Some(fired(i)),
                other => {
                    self.waiting = other;
                    None
                }
            };
        }
        self.waiting = None;
        if key.iter().any(Option::is_none) {
            return None;
        }
        let first = *self.first.get_or_insert(t);
        let touched = self.groups.hit(key, t, max_groups, || ());
        if touched.evicted.is_some() {
            stats.evicted_groups += 1;
        }
        let back = match touched.previous {
            Some(prev) if t - prev <= d.history_ms => t - prev >= d.gap_ms,
            // Never seen, or forgotten: with the directory, an account
            // hired long ago and silent for all the rule has watched.
            _ => {
                t - first >= d.gap_ms
                    && hit
                        .since
                        .and_then(since_ms)
                        .is_some_and(|s| t - s >= d.gap_ms)
            }
        };
        if !back {
            return None;
        }
        if d.corroborated() {
            self.waiting = Some((key.clone(), hit.index));
            return None;
        }
        Some(fired(hit.index))
    }

    /// Forgets groups with no hit since `before`.
    pub(crate) fn expire(&mut self, before: i64, stats: &mut EngineStats) {
        while self.groups.pop_idle_before(before).is_some() {
            stats.expired_groups += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;
    /// 2026-03-02T00:00:00Z.
    const T0: i64 = 1_772_409_600_000;

    fn rule(corroborate: bool) -> Dormant {
        Dormant {
            gap_ms: 14 * DAY,
            history_ms: 30 * DAY,
            since: Some("actor.hired".into()),
            corroborates: if corroborate {
                vec![false, true]
            } else {
                vec![false]
            },
        }
    }

    fn key(u: &str) -> GroupKey {
        std::iter::once(Some(Box::<str>::from(u))).collect()
    }

    fn hit(s: &mut State, d: &Dormant, u: &str, day: i64, member: usize, since: &str) -> bool {
        let mut st = EngineStats::default();
        let h = DormantHit {
            time: T0 + day * DAY,
            member,
            index: u64::try_from(day).unwrap(),
            since: (!since.is_empty()).then_some(since),
        };
        s.apply(d, &key(u), &h, 100, &mut st).is_some()
    }

    #[test]
    fn gap_within_history_and_the_directory_case() {
        let d = rule(false);
        let mut s = State::default();
        // The rule starts watching on day 0.
        assert!(!hit(&mut s, &d, "a", 0, 0, "2020-01-01"));
        assert!(!hit(&mut s, &d, "a", 5, 0, "2020-01-01"));
        assert!(hit(&mut s, &d, "a", 19, 0, "2020-01-01"), "14 days silent");
        // Never seen: before the rule has watched 14 days it cannot tell.
        assert!(!hit(&mut s, &d, "b", 13, 0, "2020-01-01"));
        // Hired long ago, first seen on day 20: dormant since before day 0.
        assert!(hit(&mut s, &d, "c", 20, 0, "2020-01-01"));
        // A new hire is not dormant; without a hire date nothing is known.
        assert!(!hit(&mut s, &d, "e", 20, 0, "2026-03-15"));
        assert!(!hit(&mut s, &d, "f", 20, 0, ""));
        // Silent longer than the history: forgotten, then known by the directory.
        assert!(hit(&mut s, &d, "a", 60, 0, "2020-01-01"));
    }

    #[test]
    fn corroboration_pairs_with_the_same_event() {
        let d = rule(true);
        let mut s = State::default();
        assert!(!hit(&mut s, &d, "a", 0, 0, "2020-01-01"));
        // Back on day 20 at the office: no corroborating hit.
        assert!(!hit(&mut s, &d, "a", 20, 0, "2020-01-01"));
        // Another event later does not pair with that return.
        assert!(!hit(&mut s, &d, "a", 21, 1, "2020-01-01"));
        // Dormant account c used from elsewhere: corroborated.
        assert!(!hit(&mut s, &d, "c", 22, 0, "2020-01-01"));
        assert!(hit(&mut s, &d, "c", 22, 1, "2020-01-01"));
    }

    #[test]
    fn bounded_and_forgotten() {
        let d = rule(false);
        let mut s = State::default();
        let mut st = EngineStats::default();
        for u in 0..10 {
            let h = DormantHit {
                time: T0 + u,
                member: 0,
                index: 0,
                since: None,
            };
            s.apply(&d, &key(&format!("u{u}")), &h, 4, &mut st);
        }
        assert_eq!((s.len(), st.evicted_groups), (4, 6));
        s.expire(T0 + DAY, &mut st);
        assert_eq!((s.len(), st.expired_groups), (0, 4));
    }
}

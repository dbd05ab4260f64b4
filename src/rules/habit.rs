//! `habit` (a sealtrail extension): working hours learned per group (per
//! user), and a checked event at an hour the group does not work.
//!
//! ```yaml
//! correlation:
//!   type: habit
//!   rules: [after_hours_chart_access]  # checked: fires at an hour the user does not work
//!   learn: [user_activity]             # every event of the user: the profile
//!   group-by: [actor.user]
//!   history: 28d          # the days the profile looks back on (at most 31d)
//!   learning: 7d          # optional (default 0, at most history): silent until the user's first activity is this old
//!   min_days: 1           # optional (default 2): an hour is worked when active in it on this many earlier days
//!   session_gap: 2h       # optional (default 1h, 0 to 12h): learnt hits this close mark the time between them worked
//!   tolerance: 30m        # optional (default 1h): times within this of a worked quarter-hour count as worked (0 to 12h, in 15m steps)
//!   profile: hour_of_day  # optional (default hour_of_week): buckets by hour of the day, or of the week
//! ```
//!
//! Per group a profile of quarter-hour buckets (96 of the day, or 672 of
//! the week, UTC), each a 32-bit set of the days (day number mod 32) on
//! which the group had a `learn` hit in that quarter-hour, or between two
//! `learn` hits at most `session_gap` apart (a night shift's sparse events
//! mark the whole shift). (Whole-hour buckets made a 20:40 access "within
//! an hour" of a shift's 19:05.) A `rules` (checked) hit at
//! time `t` on day `D` is judged against the days `D - history .. D - 1`:
//! the hour is worked when the buckets within `tolerance` of `t`'s bucket
//! have hits on at least `min_days` distinct such days. The day of the
//! event itself never counts, so a session cannot make its own hour normal.
//! An unworked hour fires (`count` 1, the checked event), once the group's
//! first hit is `learning` old; a group never seen (no `learn` hit) is
//! still learning and does not fire.
//!
//! So a night or on-call shift becomes normal once it has been worked on
//! `min_days` days of the history, and stops being normal `history` after
//! the last one. `hour_of_day` treats every weekday alike (rotating rosters,
//! on-call weeks); `hour_of_week` also learns the weekdays (a weekday
//! worker's Sunday is unworked) but needs `min_days` weeks of a shift.
//!
//! Bounds: groups per rule (`max_groups_per_rule`, the idle longest
//! evicted, `evicted_groups`); a group with no `learn` hit for `history`
//! is forgotten (`expired_groups`) and learns again. A profile is 96 or 672
//! `u32`s plus 40 bytes ([`Profile::bytes`]): 424 or 2,728 bytes.

use super::detection::{At, at};
use super::engine::{EngineStats, Fired, GroupKey};
use super::groups::Groups;
use super::load::duration;
use super::load::refuse_keys;
use super::yaml::Node;

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;
/// A bucket's width: a quarter of an hour.
const SLOT_MS: i64 = 900_000;
/// Days a bucket's bit set holds (history is at most 31 days, plus today).
const RING_DAYS: i64 = 32;

/// Keys of a correlation map that only `habit` uses.
pub(super) const HABIT_KEYS: [&str; 5] =
    ["learn", "min_days", "tolerance", "profile", "session_gap"];

/// The bucketing of a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileKind {
    HourOfDay,
    HourOfWeek,
}

impl ProfileKind {
    fn buckets(self) -> usize {
        match self {
            ProfileKind::HourOfDay => 96,
            ProfileKind::HourOfWeek => 672,
        }
    }

    /// The bucket of event time `t` (unix ms, UTC; the epoch was a
    /// Thursday, so weekday 0 here is Thursday: only the cycle matters).
    fn bucket(self, t: i64) -> usize {
        let slots = t.div_euclid(SLOT_MS);
        usize::try_from(slots.rem_euclid(self.buckets() as i64)).unwrap_or(0)
    }
}

/// Settings of a `habit` correlation (its `timespan_ms` is `history`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Habit {
    pub history_days: i64,
    pub learning_ms: i64,
    pub min_days: u32,
    /// Learnt hits at most this far apart mark the time between them as
    /// worked too (a shift's quiet stretches).
    pub session_gap_ms: i64,
    /// Quarter-hours either side that count as the same time.
    pub tolerance_slots: usize,
    pub profile: ProfileKind,
    /// Per member (same order as the correlation's members): whether its
    /// hits are learnt (`learn`) rather than checked (`rules`).
    pub learns: Vec<bool>,
}

/// A habit correlation as parsed: its member rule nodes (`learn` first,
/// then the checked `rules`), history and settings.
pub(super) struct HabitSpec<'a> {
    pub rules: Vec<&'a Node>,
    pub history_ms: i64,
    pub habit: Habit,
}

/// Parses the habit attributes of correlation map `c`; `checked` are its
/// `rules`, `list` reads a list of rule names.
pub(super) fn parse<'a>(
    c: &'a Node,
    checked: Vec<&'a Node>,
    list: super::relation::ListReader<'a, '_>,
) -> Result<HabitSpec<'a>, At> {
    let unused = [
        "timespan",
        "condition",
        "field",
        "gap",
        "gap_factor",
        "factor",
        "peers",
    ];
    refuse_keys(c, unused, |key| {
        format!(
            "`{key}` is not used by habit (use learn, history, learning, min_days, tolerance, \
             profile)"
        )
    })?;
    let history_ms = duration(c, "history")?.ok_or_else(|| at(c.pos, "habit has no `history`"))?;
    if history_ms % DAY_MS != 0
        && let Some(n) = c.get("history")
    {
        return Err(at(n.pos, "habit history must be whole days (1d to 31d)"));
    }
    let learning_ms = duration(c, "learning")?.unwrap_or(0);
    if learning_ms > history_ms
        && let Some(n) = c.get("learning")
    {
        return Err(at(n.pos, "`learning` must not exceed `history`"));
    }
    let history_days = history_ms / DAY_MS;
    let min_days = match c.get("min_days") {
        None => 2,
        Some(n) => n
            .as_str()
            .and_then(|s| s.parse::<u32>().ok())
            .filter(|v| *v >= 1 && i64::from(*v) <= history_days)
            .ok_or_else(|| {
                at(
                    n.pos,
                    "min_days must be a whole number from 1 to the history's days",
                )
            })?,
    };
    let session_gap_ms = match c.get("session_gap") {
        Some(n) if n.as_str() == Some("0") => 0,
        None => HOUR_MS,
        Some(n) => {
            let ms = duration(c, "session_gap")?.unwrap_or(0);
            if ms > 12 * HOUR_MS {
                return Err(at(n.pos, "session_gap must be 0 to 12h"));
            }
            ms
        }
    };
    let tolerance_slots = match c.get("tolerance") {
        None => usize::try_from(HOUR_MS / SLOT_MS).unwrap_or(4),
        Some(n) if n.as_str() == Some("0") => 0,
        Some(n) => {
            let ms = duration(c, "tolerance")?.unwrap_or(0);
            if ms % SLOT_MS != 0 || ms > 12 * HOUR_MS {
                return Err(at(
                    n.pos,
                    "tolerance must be 0 to 12h in steps of 15m (e.g. 30m, 1h)",
                ));
            }
            usize::try_from(ms / SLOT_MS).unwrap_or(0)
        }
    };
    let profile = match c.get("profile") {
        None => ProfileKind::HourOfWeek,
        Some(n) => match n.as_str() {
            Some("hour_of_day") => ProfileKind::HourOfDay,
            Some("hour_of_week") => ProfileKind::HourOfWeek,
            _ => return Err(at(n.pos, "profile must be hour_of_day or hour_of_week")),
        },
    };
    let mut rules = list("learn", true)?;
    let learns: Vec<bool> = std::iter::repeat_n(true, rules.len())
        .chain(std::iter::repeat_n(false, checked.len()))
        .collect();
    rules.extend(checked);
    for (i, r) in rules.iter().enumerate() {
        let n = r.as_str().unwrap_or_default();
        if rules[..i].iter().any(|o| o.as_str() == Some(n)) {
            return Err(at(
                r.pos,
                format!("rule `{n}` is listed twice in this habit"),
            ));
        }
    }
    Ok(HabitSpec {
        rules,
        history_ms,
        habit: Habit {
            history_days,
            learning_ms,
            min_days,
            session_gap_ms,
            tolerance_slots,
            profile,
            learns,
        },
    })
}

/// One group's working hours.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Profile {
    /// Time of the group's first learnt hit.
    first: i64,
    /// Time of its newest learnt hit.
    last: i64,
    /// The newest day number the ring holds.
    day: i64,
    /// Per bucket, bit `day mod 32` set when the group was active in it.
    buckets: Box<[u32]>,
}

impl Profile {
    fn new(kind: ProfileKind, t: i64) -> Profile {
        Profile {
            first: t,
            last: t,
            day: t.div_euclid(DAY_MS),
            buckets: vec![0; kind.buckets()].into_boxed_slice(),
        }
    }

    /// Bytes one profile takes (without its key and map slot).
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        std::mem::size_of::<Profile>() + std::mem::size_of_val(&*self.buckets)
    }

    /// Moves the ring to day `d`, clearing the days it reuses.
    fn advance(&mut self, d: i64) {
        if d <= self.day {
            return;
        }
        if d - self.day >= RING_DAYS {
            self.buckets.fill(0);
        } else {
            let mut clear = 0u32;
            for x in self.day + 1..=d {
                clear |= 1 << x.rem_euclid(RING_DAYS);
            }
            for b in self.buckets.iter_mut() {
                *b &= !clear;
            }
        }
        self.day = d;
    }

    /// Marks `t`'s quarter-hour worked, and the ones since the previous
    /// learnt hit when that is at most `gap` before (the same session).
    fn learn(&mut self, kind: ProfileKind, t: i64, gap: i64) {
        self.advance(t.div_euclid(DAY_MS));
        let from = if t >= self.last && t - self.last <= gap {
            self.last
        } else {
            t
        };
        let mut at = from.div_euclid(SLOT_MS) * SLOT_MS;
        while at <= t {
            let d = at.div_euclid(DAY_MS);
            if self.day - d < RING_DAYS {
                self.buckets[kind.bucket(at)] |= 1 << d.rem_euclid(RING_DAYS);
            }
            at += SLOT_MS;
        }
        self.last = self.last.max(t);
    }

    /// Distinct earlier days within history active within tolerance of `t`.
    fn worked_days(&mut self, h: &Habit, t: i64) -> u32 {
        let d = t.div_euclid(DAY_MS);
        self.advance(d);
        let mut days = 0u32;
        for k in 1..=h.history_days.min(RING_DAYS - 1) {
            // Days after `d` (an older check after a newer learn) do not count.
            if self.day - (d - k) < RING_DAYS {
                days |= 1 << (d - k).rem_euclid(RING_DAYS);
            }
        }
        let n = self.buckets.len();
        let b = h.profile.bucket(t);
        let mut seen = 0u32;
        let tol = h.tolerance_slots.min(n / 2);
        for off in 0..=2 * tol {
            let i = (b + n + off - tol) % n;
            seen |= self.buckets[i];
        }
        (seen & days).count_ones()
    }
}

/// The habit state of one rule.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct State {
    groups: Groups<Profile>,
}

impl State {
    pub(crate) fn len(&self) -> usize {
        self.groups.len()
    }

    /// Applies one hit (in event-time order) of member `member`; a firing
    /// for a checked hit at an hour the group does not work.
    #[allow(clippy::too_many_arguments)] // the engine's hit, unpacked
    pub(crate) fn apply(
        &mut self,
        h: &Habit,
        key: &GroupKey,
        t: i64,
        member: usize,
        index: u64,
        max_groups: usize,
        stats: &mut EngineStats,
    ) -> Option<Fired> {
        if key.iter().any(Option::is_none) {
            return None; // no user: nothing to learn or judge
        }
        if h.learns.get(member).copied().unwrap_or(false) {
            let touched = self
                .groups
                .hit(key, t, max_groups, || Profile::new(h.profile, t));
            if touched.evicted.is_some() {
                stats.evicted_groups += 1;
            }
            if touched
                .previous
                .is_some_and(|prev| t - prev > h.history_days * DAY_MS)
            {
                // Away longer than the history (not expired yet, as
                // expiry runs when the watermark moves): learn afresh.
                *touched.value = Profile::new(h.profile, t);
                stats.expired_groups += 1;
            }
            touched.value.learn(h.profile, t, h.session_gap_ms);
            return None;
        }
        let p = self.groups.get_mut(key)?;
        if t - p.first < h.learning_ms {
            return None;
        }
        (p.worked_days(h, t) < h.min_days).then(|| Fired {
            first: t,
            last: t,
            count: 1,
            events: vec![index],
        })
    }

    /// Forgets groups with no learnt hit since `before`.
    pub(crate) fn expire(&mut self, before: i64, stats: &mut EngineStats) {
        while self.groups.pop_idle_before(before).is_some() {
            stats.expired_groups += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn habit(profile: ProfileKind, min_days: u32, tol: usize) -> Habit {
        Habit {
            history_days: 28,
            learning_ms: 7 * DAY_MS,
            min_days,
            session_gap_ms: 0,
            tolerance_slots: tol * 4,
            profile,
            learns: vec![true, false],
        }
    }

    fn key(u: &str) -> GroupKey {
        std::iter::once(Some(Box::<str>::from(u))).collect()
    }

    /// Day `d` (from a Monday, 2026-03-02), hour `hh`, minute `mm`.
    fn at(d: i64, hh: i64, mm: i64) -> i64 {
        1_772_409_600_000 + d * DAY_MS + hh * HOUR_MS + mm * 60_000
    }

    fn check(s: &mut State, h: &Habit, u: &str, t: i64) -> bool {
        let mut st = EngineStats::default();
        s.apply(h, &key(u), t, 1, 0, 1000, &mut st).is_some()
    }

    fn learn(s: &mut State, h: &Habit, u: &str, t: i64) {
        let mut st = EngineStats::default();
        assert!(s.apply(h, &key(u), t, 0, 0, 1000, &mut st).is_none());
    }

    #[test]
    fn day_worker_at_night_fires_night_worker_does_not() {
        let h = habit(ProfileKind::HourOfDay, 2, 1);
        let mut s = State::default();
        for d in 0..14 {
            for hh in 8..17 {
                learn(&mut s, &h, "day", at(d, hh, 5));
            }
            if d % 2 == 0 {
                for hh in [19, 20, 21, 22, 23] {
                    learn(&mut s, &h, "night", at(d, hh, 5));
                }
            }
        }
        // Its own session at night does not make the hour normal.
        learn(&mut s, &h, "day", at(14, 21, 0));
        assert!(check(&mut s, &h, "day", at(14, 21, 2)));
        assert!(!check(&mut s, &h, "day", at(14, 10, 0)));
        // Tolerance (quarter-hours): 17:00 is within an hour of 16:05,
        // 17:20 is not.
        assert!(!check(&mut s, &h, "day", at(14, 17, 0)));
        assert!(check(&mut s, &h, "day", at(14, 17, 20)));
        assert!(check(&mut s, &h, "day", at(14, 19, 30)));
        assert!(!check(&mut s, &h, "night", at(15, 22, 0)));
        // Never seen: still learning.
        assert!(!check(&mut s, &h, "nobody", at(15, 3, 0)));
    }

    #[test]
    fn learning_and_min_days_and_history() {
        let h = habit(ProfileKind::HourOfDay, 2, 0);
        let mut s = State::default();
        learn(&mut s, &h, "u", at(0, 9, 0));
        // Learning: silent for 7 days.
        assert!(!check(&mut s, &h, "u", at(3, 2, 0)));
        learn(&mut s, &h, "u", at(8, 2, 0));
        assert!(check(&mut s, &h, "u", at(9, 2, 0)), "one day is not enough");
        learn(&mut s, &h, "u", at(9, 2, 10));
        assert!(
            !check(&mut s, &h, "u", at(10, 2, 0)),
            "two days make it worked"
        );
        // 28 days after the first of the two, only one remains.
        assert!(!check(&mut s, &h, "u", at(36, 2, 0)));
        assert!(check(&mut s, &h, "u", at(37, 2, 0)));
    }

    #[test]
    fn hour_of_week_learns_weekdays() {
        let h = habit(ProfileKind::HourOfWeek, 2, 1);
        let mut s = State::default();
        for d in 0..21 {
            if d % 7 < 5 {
                learn(&mut s, &h, "u", at(d, 10, 0));
            }
        }
        assert!(!check(&mut s, &h, "u", at(21, 10, 0)), "Monday 10:00");
        assert!(check(&mut s, &h, "u", at(26, 10, 0)), "Saturday 10:00");
        let hd = habit(ProfileKind::HourOfDay, 2, 1);
        let mut s = State::default();
        for d in 0..21 {
            if d % 7 < 5 {
                learn(&mut s, &hd, "u", at(d, 10, 0));
            }
        }
        assert!(!check(&mut s, &hd, "u", at(26, 10, 0)), "any weekday");
    }

    #[test]
    fn bounded_and_forgotten() {
        let h = habit(ProfileKind::HourOfWeek, 1, 1);
        let mut s = State::default();
        let mut st = EngineStats::default();
        for u in 0..10 {
            s.apply(&h, &key(&format!("u{u}")), at(0, 9, u), 0, 0, 4, &mut st);
        }
        assert_eq!(s.len(), 4);
        assert_eq!(st.evicted_groups, 6);
        s.expire(at(1, 0, 0), &mut st);
        assert_eq!(s.len(), 0);
        assert_eq!(st.expired_groups, 4);
        let p = Profile::new(ProfileKind::HourOfWeek, 0);
        assert_eq!(p.bytes(), 40 + 672 * 4);
        let p = Profile::new(ProfileKind::HourOfDay, 0);
        assert_eq!(p.bytes(), 40 + 96 * 4);
    }

    #[test]
    fn a_session_marks_the_time_between_its_events() {
        let mut h = habit(ProfileKind::HourOfDay, 2, 0);
        h.session_gap_ms = 2 * HOUR_MS;
        let mut s = State::default();
        for d in 0..10 {
            learn(&mut s, &h, "u", at(d, 19, 0));
            learn(&mut s, &h, "u", at(d, 20, 50));
            learn(&mut s, &h, "u", at(d, 23, 50));
        }
        assert!(
            !check(&mut s, &h, "u", at(10, 19, 40)),
            "between 19:00 and 20:50"
        );
        assert!(
            check(&mut s, &h, "u", at(10, 22, 0)),
            "a 3-hour gap is no session"
        );
        assert!(!check(&mut s, &h, "u", at(10, 23, 50)));
    }

    #[test]
    fn ring_reuses_days() {
        let h = habit(ProfileKind::HourOfDay, 1, 0);
        let mut s = State::default();
        learn(&mut s, &h, "u", at(0, 3, 0));
        learn(&mut s, &h, "u", at(8, 9, 0));
        assert!(!check(&mut s, &h, "u", at(9, 3, 0)));
        // 32 days later the bit of day 0 is reused by day 32 and cleared.
        learn(&mut s, &h, "u", at(32, 9, 0));
        assert!(check(&mut s, &h, "u", at(33, 3, 0)));
    }

    #[test]
    fn back_after_the_history_learns_again() {
        let h = habit(ProfileKind::HourOfDay, 1, 0);
        let mut s = State::default();
        for d in 0..10 {
            learn(&mut s, &h, "u", at(d, 9, 0));
        }
        assert!(check(&mut s, &h, "u", at(10, 3, 0)));
        learn(&mut s, &h, "u", at(50, 9, 0));
        assert!(!check(&mut s, &h, "u", at(50, 3, 0)), "learning again");
    }
}

//! What a silence would mute, before it is created (`POST
//! /v1/silences/preview`): the incidents the response engine remembers
//! whose signature (rule, severity, title, playbook, group) it matches,
//! split into open ones (their new alerts would stop notifying while the
//! silence is active) and resolved ones (alerts it would have muted in the
//! span the remembered incidents cover); a warning for each matcher field
//! no remembered incident has (a typo catcher); and the silences already
//! recorded whose time range overlaps and that mute the same incidents.
//! Reads the book only: nothing is recorded.

use std::collections::BTreeSet;

use serde::Serialize;

use super::record::Matcher;
use super::silence::{SIGNATURE_FIELDS, Silence};
use super::state::{Book, Incident, Lifecycle};
use crate::event::Timestamp;

/// Incidents listed per kind (open, past); the counts cover them all.
pub const MAX_LISTED: usize = 20;

#[derive(Debug, Serialize)]
pub struct Preview {
    /// Incidents the engine remembers (open and resolved).
    pub remembered: usize,
    /// From the oldest remembered incident's opening to the newest alert.
    pub window: Option<Window>,
    pub open: Matched,
    pub past: Matched,
    pub warnings: Vec<String>,
    pub overlaps: Vec<Overlap>,
}

#[derive(Debug, Serialize)]
pub struct Window {
    pub from: String,
    pub to: String,
}

/// Matching incidents of one kind: how many, their alerts, the newest few.
#[derive(Debug, Default, Serialize)]
pub struct Matched {
    pub incidents: usize,
    pub alerts: u64,
    /// Newest last alert first, at most [`MAX_LISTED`].
    pub listed: Vec<Listed>,
}

#[derive(Debug, Serialize)]
pub struct Listed {
    pub id: String,
    pub title: String,
    pub state: &'static str,
    pub severity: String,
    pub rule_id: String,
    pub playbook: String,
    pub group: std::collections::BTreeMap<String, String>,
    pub alerts: u64,
    pub silenced_alerts: u64,
    pub opened_at: String,
    pub last_alert_at: String,
}

/// A recorded silence the new one overlaps.
#[derive(Debug, Serialize)]
pub struct Overlap {
    pub id: String,
    pub matchers: Vec<Matcher>,
    pub starts_at: String,
    pub ends_at: String,
    pub created_by: String,
    pub comment: Option<String>,
    pub active: bool,
    /// Matching incidents both silences mute.
    pub shared_incidents: usize,
    pub same_matchers: bool,
}

fn time_text(ms: i64) -> String {
    Timestamp::from_unix_ms(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn incidents_text(n: usize) -> String {
    if n == 1 {
        "the one incident".to_owned()
    } else {
        format!("the {n} incidents")
    }
}

fn listed(inc: &Incident) -> Listed {
    Listed {
        id: inc.id.clone(),
        title: inc.title.clone(),
        state: inc.state.as_str(),
        severity: inc.severity.clone(),
        rule_id: inc.key.rule_id.clone(),
        playbook: inc.key.playbook.clone(),
        group: inc.key.group.clone(),
        alerts: inc.alerts,
        silenced_alerts: inc.silenced_alerts,
        opened_at: time_text(inc.opened_at),
        last_alert_at: time_text(inc.last_alert_at),
    }
}

fn matched(mut incidents: Vec<&Incident>) -> Matched {
    incidents.sort_by(|a, b| {
        b.last_alert_at
            .cmp(&a.last_alert_at)
            .then_with(|| a.id.cmp(&b.id))
    });
    Matched {
        incidents: incidents.len(),
        alerts: incidents.iter().map(|i| i.alerts).sum(),
        listed: incidents
            .iter()
            .take(MAX_LISTED)
            .map(|i| listed(i))
            .collect(),
    }
}

/// What `silence` would mute among the incidents `book` remembers, at `now_ms`.
pub fn preview(book: &Book, silence: &Silence, now_ms: i64) -> Preview {
    let mut open = Vec::new();
    let mut past = Vec::new();
    let mut span: Option<(i64, i64)> = None;
    for inc in book.incidents.values() {
        span = Some(match span {
            None => (inc.opened_at, inc.last_alert_at),
            Some((a, b)) => (a.min(inc.opened_at), b.max(inc.last_alert_at)),
        });
        if silence.matches_signature(&inc.signature()) {
            if inc.state == Lifecycle::Resolved {
                past.push(inc);
            } else {
                open.push(inc);
            }
        }
    }

    let remembered = book.incidents.len();
    let mut warnings = Vec::new();
    if remembered == 0 {
        warnings.push(
            "no incidents are remembered yet: there is nothing to compare the matchers with"
                .to_owned(),
        );
    } else {
        let mut seen = BTreeSet::new();
        for field in silence.fields() {
            if SIGNATURE_FIELDS.contains(&field) || !seen.insert(field) {
                continue;
            }
            if !book
                .incidents
                .values()
                .any(|i| i.key.group.contains_key(field))
            {
                warnings.push(format!(
                    "{field} is on none of {}",
                    incidents_text(remembered)
                ));
            }
        }
    }

    let (starts, ends) = (
        silence.record.starts_at.unix_ms(),
        silence.record.ends_at.unix_ms(),
    );
    let overlaps = book
        .silences
        .iter()
        .filter(|s| s.id() != silence.id() && s.overlaps_window(starts, ends))
        .filter_map(|s| {
            let shared = open
                .iter()
                .chain(past.iter())
                .filter(|i| s.matches_signature(&i.signature()))
                .count();
            let same = s.record.matchers == silence.record.matchers;
            (same || shared > 0).then(|| Overlap {
                id: s.record.id.clone(),
                matchers: s.record.matchers.clone(),
                starts_at: s.record.starts_at.to_string(),
                ends_at: s.record.ends_at.to_string(),
                created_by: s.record.created_by.clone(),
                comment: s.record.comment.clone(),
                active: s.active_at(now_ms),
                shared_incidents: shared,
                same_matchers: same,
            })
        })
        .collect();

    Preview {
        remembered,
        window: span.map(|(from, to)| Window {
            from: time_text(from),
            to: time_text(to),
        }),
        open: matched(open),
        past: matched(past),
        warnings,
        overlaps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::response::record::{IncidentKey, SilenceRecord, Update};
    use crate::response::silence::matcher;

    const HOUR: i64 = 3_600_000;
    const T0: i64 = 1_796_000_000_000;

    fn key(rule: &str, user: &str) -> IncidentKey {
        IncidentKey {
            playbook: "page".into(),
            rule_id: rule.into(),
            group: [("actor.user".to_owned(), user.to_owned())].into(),
        }
    }

    fn open(b: &mut Book, id: &str, rule: &str, user: &str, at: i64) {
        b.apply(
            &Update::Opened {
                incident: id.into(),
                key: key(rule, user),
                title: format!("{rule} by {user}"),
                severity: "high".into(),
                alert: format!("alert-{id}"),
                silenced_by: None,
                overflow: false,
            },
            at,
            None,
            false,
        );
    }

    fn silence(id: &str, matchers: Vec<Matcher>, starts: i64, ends: i64) -> Silence {
        Silence::new(SilenceRecord {
            id: id.into(),
            matchers,
            starts_at: Timestamp::from_unix_ms(starts).unwrap(),
            ends_at: Timestamp::from_unix_ms(ends).unwrap(),
            created_by: "user:ann".into(),
            comment: None,
        })
        .unwrap()
    }

    /// Three brute-force incidents (one resolved, one with a second alert)
    /// and one of another rule.
    fn book() -> Book {
        let mut b = Book::default();
        open(&mut b, "inc-a", "brute-force", "svc-batch", T0);
        open(&mut b, "inc-b", "brute-force", "svc-sync", T0 + HOUR);
        open(&mut b, "inc-c", "brute-force", "u0007", T0 + 2 * HOUR);
        open(&mut b, "inc-d", "after-hours", "svc-batch", T0 + 3 * HOUR);
        b.apply(
            &Update::AlertAdded {
                incident: "inc-a".into(),
                key: key("brute-force", "svc-batch"),
                title: "brute-force by svc-batch".into(),
                severity: "high".into(),
                alert: "alert-a2".into(),
                alerts: 2,
                silenced_by: None,
            },
            T0 + 4 * HOUR,
            None,
            false,
        );
        b.apply(
            &Update::Resolved {
                incident: "inc-b".into(),
                by: "user:ann".into(),
                reason: "api".into(),
                note: None,
            },
            T0 + 5 * HOUR,
            None,
            false,
        );
        b
    }

    #[test]
    fn matching_incidents_are_split_into_open_and_past_newest_first() {
        let b = book();
        let s = silence(
            "preview",
            vec![
                matcher("rule_id", Some("brute-force"), None),
                matcher("group.actor.user", None, Some("svc-.*")),
            ],
            T0 + 6 * HOUR,
            T0 + 7 * HOUR,
        );
        let p = preview(&b, &s, T0 + 6 * HOUR);
        assert_eq!(p.remembered, 4);
        assert_eq!((p.open.incidents, p.open.alerts), (1, 2));
        assert_eq!(p.open.listed[0].id, "inc-a");
        assert_eq!(p.open.listed[0].state, "open");
        assert_eq!(p.open.listed[0].group["actor.user"], "svc-batch");
        assert_eq!((p.past.incidents, p.past.alerts), (1, 1));
        assert_eq!(p.past.listed[0].id, "inc-b");
        assert_eq!(p.past.listed[0].state, "resolved");
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        assert!(p.overlaps.is_empty());
        let w = p.window.unwrap();
        assert_eq!(w.from, time_text(T0));
        assert_eq!(w.to, time_text(T0 + 4 * HOUR));

        // A rule alone: every brute-force incident, newest last alert first.
        let s = silence(
            "preview",
            vec![matcher("rule", Some("brute-force"), None)],
            T0,
            T0 + HOUR,
        );
        let p = preview(&b, &s, T0);
        let ids: Vec<_> = p.open.listed.iter().map(|l| l.id.as_str()).collect();
        assert_eq!(ids, ["inc-a", "inc-c"]);
        assert_eq!(p.past.incidents, 1);
    }

    #[test]
    fn a_matcher_field_no_incident_has_is_named_and_matches_nothing() {
        let b = book();
        let s = silence(
            "preview",
            vec![
                matcher("rule_id", Some("brute-force"), None),
                matcher("actor.usr", Some("svc-batch"), None),
                matcher("group.actor.usr", None, Some(".*")),
            ],
            T0,
            T0 + HOUR,
        );
        let p = preview(&b, &s, T0);
        assert_eq!(p.open.incidents + p.past.incidents, 0);
        assert_eq!(p.warnings, ["actor.usr is on none of the 4 incidents"]);
        let p = preview(&Book::default(), &s, T0);
        assert_eq!(p.warnings.len(), 1);
        assert!(p.warnings[0].contains("no incidents"), "{:?}", p.warnings);
        assert!(p.window.is_none());
    }

    #[test]
    fn overlapping_silences_are_those_muting_the_same_incidents_at_the_same_time() {
        let mut b = book();
        let user = |u: &str| vec![matcher("actor.user", Some(u), None)];
        for (id, m, starts, ends) in [
            ("sil-same-user", user("svc-batch"), T0, T0 + 10 * HOUR),
            (
                "sil-later",
                user("svc-batch"),
                T0 + 20 * HOUR,
                T0 + 30 * HOUR,
            ),
            ("sil-other-user", user("u0007"), T0, T0 + 10 * HOUR),
            ("sil-same-matchers", user("nobody"), T0, T0 + 10 * HOUR),
        ] {
            b.apply(
                &Update::SilenceCreated {
                    silence: silence(id, m, starts, ends).record,
                },
                T0,
                None,
                false,
            );
        }
        let s = silence("preview", user("nobody"), T0 + HOUR, T0 + 2 * HOUR);
        let p = preview(&b, &s, T0 + HOUR);
        let ids: Vec<_> = p.overlaps.iter().map(|o| o.id.as_str()).collect();
        assert_eq!(ids, ["sil-same-matchers"]);
        assert!(p.overlaps[0].same_matchers && p.overlaps[0].active);

        let s = silence(
            "preview",
            vec![matcher("rule_id", Some("brute-force"), None)],
            T0 + HOUR,
            T0 + 2 * HOUR,
        );
        let p = preview(&b, &s, T0 + HOUR);
        let found: Vec<_> = p
            .overlaps
            .iter()
            .map(|o| (o.id.as_str(), o.shared_incidents))
            .collect();
        assert_eq!(found, [("sil-same-user", 1), ("sil-other-user", 1)]);
    }

    #[test]
    fn at_most_twenty_are_listed_and_the_counts_cover_all() {
        let mut b = Book::default();
        for i in 0..45 {
            open(
                &mut b,
                &format!("inc-{i:02}"),
                "r",
                &format!("u{i}"),
                T0 + i,
            );
        }
        let s = silence(
            "preview",
            vec![matcher("rule_id", Some("r"), None)],
            T0,
            T0 + HOUR,
        );
        let p = preview(&b, &s, T0);
        assert_eq!((p.open.incidents, p.open.alerts), (45, 45));
        assert_eq!(p.open.listed.len(), MAX_LISTED);
        assert_eq!(p.open.listed[0].id, "inc-44");
    }
}

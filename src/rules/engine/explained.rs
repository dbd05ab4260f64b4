//! The engine's side of `explain` (`super::super::explain`): a match of a
//! rule with `explain` waits for its verdict, made when the watermark
//! passes the access time plus the rule's grace (interleaved with the
//! timers and hits in that order, see [`Engine::fire_timers`]). An
//! unexplained match then alerts (when the rule alerts on its own) and
//! feeds the correlations it feeds, with its own event time; an explained
//! one does neither. Its alert's group is `{actor.user, patient.id}` (the
//! verdict is about that pair), so the service's suppression window makes
//! it one alert per user and patient.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::reorder::Pending;
use super::{AlertCandidate, Engine, alert};
use crate::rules::explain::{Judged, Verdict};
use crate::rules::field::{Field, Known};
use crate::rules::load::{RuleSet, Source};
use crate::rules::view::EntryView;

/// What a waiting match carries: its event, the alert's group and the
/// hits it would add.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Deferred {
    index: u64,
    group: BTreeMap<String, String>,
    hits: Vec<Pending>,
}

/// An explain rule's alert is about one user and patient: its group.
fn group_of(entry: &EntryView<'_>) -> BTreeMap<String, String> {
    [
        ("actor.user", Known::ActorUser),
        ("patient.id", Known::PatientId),
    ]
    .into_iter()
    .filter_map(|(n, k)| {
        Field::Known(k)
            .get(entry)
            .map(|v| (n.to_owned(), v.text().into_owned()))
    })
    .collect()
}

/// The explanation kinds a correlation's `explain` members try.
pub(super) fn tried(rules: &RuleSet, ci: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for m in &rules.correlations[ci].members {
        if let Source::Detection(d) = m.source
            && let Some(ex) = &rules.detections[d].explain
        {
            for k in ex.tried() {
                if !out.contains(&k) {
                    out.push(k);
                }
            }
        }
    }
    out
}

impl Engine {
    /// Holds detection rule `di`'s match of `entry` (its hits are
    /// `entry_hits[start..]`) for its verdict.
    pub(super) fn defer(
        &mut self,
        di: usize,
        index: u64,
        entry: &EntryView<'_>,
        start: usize,
        out: &mut Vec<AlertCandidate>,
    ) {
        let rules = Arc::clone(&self.rules);
        let rule = &rules.detections[di];
        let (Some(x), Some(ex)) = (self.explain.as_mut(), rule.explain.as_ref()) else {
            return;
        };
        let hits: Vec<Pending> = self.entry_hits.drain(start..).collect();
        let time = entry.time_ms;
        // Only an alert needs the group (a feeding rule's hits carry theirs).
        let group = if rule.meta.standalone {
            group_of(entry)
        } else {
            BTreeMap::new()
        };
        match x.check(entry, time, ex, di, Deferred { index, group, hits }) {
            Ok(()) => {
                while self.explain.as_ref().is_some_and(|x| x.over_capacity()) {
                    if let Some(x) = self.explain.as_mut() {
                        x.count_forced();
                    }
                    self.judge_due(None, out);
                }
            }
            Err(d) => {
                // No user or patient: nothing can explain it.
                self.entry_hits.extend(d.hits);
                if rule.meta.standalone {
                    let mut a = alert(&rule.meta, d.group, time, time, 1, vec![index]);
                    a.explanations_tried = ex.tried();
                    out.push(a);
                }
            }
        }
    }

    /// Makes the earliest waiting verdict when due before `before` (any
    /// with `None`); whether one was made.
    pub(super) fn judge_due(&mut self, before: Option<i64>, out: &mut Vec<AlertCandidate>) -> bool {
        let rules = Arc::clone(&self.rules);
        let Some(x) = self.explain.as_mut() else {
            return false;
        };
        let judged = x.judge_next(before, |di| {
            rules.detections.get(di).and_then(|r| r.explain.as_ref())
        });
        match judged {
            Judged::Nothing => false,
            Judged::Own => true,
            Judged::Rule(v) => {
                if !v.explained {
                    self.unexplained(&rules, v, out);
                }
                true
            }
        }
    }

    fn unexplained(
        &mut self,
        rules: &RuleSet,
        v: Verdict<Deferred>,
        out: &mut Vec<AlertCandidate>,
    ) {
        let rule = &rules.detections[v.rule];
        let Some(ex) = &rule.explain else { return };
        // A replay that starts late may lack the facts: blind, not noisy.
        if let Some(Some(first)) = self.partial
            && v.time - first < ex.window_ms
        {
            return;
        }
        let Deferred { index, group, hits } = v.payload;
        if rule.meta.standalone {
            let mut a = alert(&rule.meta, group, v.time, v.time, 1, vec![index]);
            a.explanations_tried = ex.tried();
            out.push(a);
        }
        for p in hits {
            self.apply_pending(p, out);
        }
    }
}

//! Serde helpers for the engine's state snapshot (`Engine::save_state`,
//! written by `crate::detect::snapshot`). Maps are written as sequences of
//! pairs, so keys that are tuples or group keys survive a text format.

use serde::de::{Deserialize, Deserializer};
use serde::ser::{Serialize, SerializeSeq, Serializer};

/// `#[serde(with = "pairs")]`: any map as a sequence of `(key, value)`.
pub(crate) mod pairs {
    use super::*;

    pub(crate) fn serialize<'a, M, K, V, S>(map: &'a M, s: S) -> Result<S::Ok, S::Error>
    where
        &'a M: IntoIterator<Item = (&'a K, &'a V)>,
        K: Serialize + 'a,
        V: Serialize + 'a,
        S: Serializer,
    {
        let mut seq = s.serialize_seq(None)?;
        for (k, v) in map {
            seq.serialize_element(&(k, v))?;
        }
        seq.end()
    }

    pub(crate) fn deserialize<'de, M, K, V, D>(d: D) -> Result<M, D::Error>
    where
        M: FromIterator<(K, V)>,
        K: Deserialize<'de>,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        let v: Vec<(K, V)> = Vec::deserialize(d)?;
        Ok(v.into_iter().collect())
    }
}

/// `#[serde(with = "vec_opt_pairs")]`: a `Vec` of optional maps, each as a
/// sequence of pairs.
pub(crate) mod vec_opt_pairs {
    use super::*;

    struct Pairs<'a, M>(&'a M);

    impl<'a, M, K, V> Serialize for Pairs<'a, M>
    where
        &'a M: IntoIterator<Item = (&'a K, &'a V)>,
        K: Serialize + 'a,
        V: Serialize + 'a,
    {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            pairs::serialize(self.0, s)
        }
    }

    pub(crate) fn serialize<M, K, V, S>(v: &[Option<M>], s: S) -> Result<S::Ok, S::Error>
    where
        for<'a> &'a M: IntoIterator<Item = (&'a K, &'a V)>,
        K: Serialize,
        V: Serialize,
        S: Serializer,
    {
        let mut seq = s.serialize_seq(Some(v.len()))?;
        for m in v {
            seq.serialize_element(&m.as_ref().map(Pairs))?;
        }
        seq.end()
    }

    pub(crate) fn deserialize<'de, M, K, V, D>(d: D) -> Result<Vec<Option<M>>, D::Error>
    where
        M: FromIterator<(K, V)>,
        K: Deserialize<'de>,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        let v: Vec<Option<Vec<(K, V)>>> = Vec::deserialize(d)?;
        Ok(v.into_iter()
            .map(|m| m.map(|p| p.into_iter().collect()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::event::{Entry, Timestamp, Via};
    use crate::r#gen::{GenConfig, generate, write_dir};
    use crate::rules::{AlertCandidate, Engine, EngineConfig, EngineStateError, RuleSet};
    use crate::transforms::enrich::{Lookups, enrich};

    /// A generated practice (every kind of rule the shipped pack has:
    /// explanations, baselines, absence, relation and state joins) as
    /// ledger entries, arriving in delivery order a little after their
    /// event time.
    fn practice() -> Vec<Entry> {
        let o = generate(&GenConfig {
            days: 4,
            users: 24,
            patients: 300,
            seed: 16,
            start: Timestamp::parse(crate::r#gen::DEFAULT_START).unwrap(),
        })
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        write_dir(&o, dir.path()).unwrap();
        let (lookups, _) = Lookups::load(dir.path()).unwrap();
        let mut received = 0i64;
        o.events
            .iter()
            .map(|e| {
                received = received.max(e.time.unix_ms() + 500);
                Entry {
                    received: Timestamp::from_unix_ms(received).unwrap(),
                    via: Via {
                        kind: "http".into(),
                        peer: None,
                        principal: None,
                    },
                    enriched: enrich(&lookups, e),
                    event: e.clone(),
                }
            })
            .collect()
    }

    fn shipped() -> Arc<RuleSet> {
        Arc::new(RuleSet::load_dir(std::path::Path::new("rules")).unwrap())
    }

    /// Runs entries `from..` with an idle tick every 500 entries, then far
    /// past the end (every window closes).
    fn run(engine: &mut Engine, entries: &[Entry], from: usize) -> Vec<AlertCandidate> {
        let mut out = Vec::new();
        for (i, e) in entries.iter().enumerate().skip(from) {
            engine.process(i as u64, e, &mut out);
            if i % 500 == 499 {
                engine.advance(e.received.unix_ms() + 1000, &mut out);
            }
        }
        out
    }

    fn finish(engine: &mut Engine, entries: &[Entry]) -> Vec<AlertCandidate> {
        let mut out = Vec::new();
        let end = entries.last().map_or(0, |e| e.received.unix_ms());
        engine.advance(end + 40 * 86_400_000, &mut out);
        engine.flush(&mut out);
        out
    }

    /// The property the snapshot rests on: an engine restored from a
    /// saved state, given the rest of the stream, produces exactly the
    /// alerts (and counters) of the engine that never stopped.
    #[test]
    fn a_restored_engine_continues_exactly_like_the_one_that_never_stopped() {
        let entries = practice();
        let rules = shipped();
        let cfg = EngineConfig::default();
        let mut whole = Engine::new(Arc::clone(&rules), cfg.clone());
        let all = run(&mut whole, &entries, 0);
        let all_end = finish(&mut whole, &entries);
        assert!(
            all.len() + all_end.len() >= 5,
            "the practice fires alerts: {}",
            all.len()
        );
        assert!(whole.explain_stats().is_some(), "rules with explain");
        for cut in [
            1,
            entries.len() / 3,
            entries.len() / 2 + 7,
            entries.len() - 1,
        ] {
            let mut first = Engine::new(Arc::clone(&rules), cfg.clone());
            let mut before = Vec::new();
            for (i, e) in entries.iter().enumerate().take(cut) {
                first.process(i as u64, e, &mut before);
                if i % 500 == 499 {
                    first.advance(e.received.unix_ms() + 1000, &mut before);
                }
            }
            let saved = first.save_state().unwrap();
            let mut second = Engine::new(Arc::clone(&rules), cfg.clone());
            second.restore_state(&saved).unwrap();
            assert_eq!(second.stats(), first.stats(), "cut {cut}");
            let after = run(&mut second, &entries, cut);
            let mut joined = before;
            joined.extend(after);
            assert_eq!(joined, all, "cut {cut}");
            assert_eq!(finish(&mut second, &entries), all_end, "cut {cut}");
            assert_eq!(second.stats(), whole.stats(), "cut {cut}");
            assert_eq!(second.explain_stats(), whole.explain_stats(), "cut {cut}");
        }
    }

    /// The restart property as the service sees it: on the same ledger
    /// plus new events, a restart that loads the snapshot taken at `cut`
    /// and one that replays the ledger from the start produce identical
    /// alerts from the new events on (and at the end of time).
    #[test]
    fn restart_with_snapshot_and_restart_with_full_replay_alert_alike() {
        let entries = practice();
        let rules = shipped();
        let cfg = EngineConfig::default();
        for cut in [entries.len() / 4, entries.len() / 2, entries.len() * 4 / 5] {
            let (ledger, new) = entries.split_at(cut);
            // The run before the restart, and its snapshot.
            let mut before = Engine::new(Arc::clone(&rules), cfg.clone());
            let mut sink = Vec::new();
            for (i, e) in ledger.iter().enumerate() {
                before.process(i as u64, e, &mut sink);
            }
            let saved = before.save_state().unwrap();
            // Restart A: the snapshot.
            let mut a = Engine::new(Arc::clone(&rules), cfg.clone());
            a.restore_state(&saved).unwrap();
            // Restart B: a full replay of the ledger (its alerts dropped:
            // the ledger holds them already).
            let mut b = Engine::new(Arc::clone(&rules), cfg.clone());
            for (i, e) in ledger.iter().enumerate() {
                b.replay(i as u64, e);
            }
            let (mut out_a, mut out_b) = (Vec::new(), Vec::new());
            for (i, e) in new.iter().enumerate() {
                a.process((cut + i) as u64, e, &mut out_a);
                b.process((cut + i) as u64, e, &mut out_b);
            }
            assert!(!out_a.is_empty(), "cut {cut}: the new events alert");
            assert_eq!(out_a, out_b, "cut {cut}");
            assert_eq!(
                finish(&mut a, &entries),
                finish(&mut b, &entries),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn a_state_that_does_not_fit_the_rules_is_refused_and_changes_nothing() {
        let entries = practice();
        let mut full = Engine::new(shipped(), EngineConfig::default());
        run(&mut full, &entries[..2000], 0);
        let saved = full.save_state().unwrap();
        let one = RuleSet::from_yaml(
            "x.yml",
            "title: x\nid: x\ndetection:\n  s:\n    action: login\n  condition: s\n",
        )
        .unwrap();
        let mut other = Engine::new(Arc::new(one), EngineConfig::default());
        let before = other.stats();
        assert!(matches!(
            other.restore_state(&saved),
            Err(EngineStateError::Rules)
        ));
        assert_eq!(other.stats(), before);
        let mut same = Engine::new(shipped(), EngineConfig::default());
        assert!(matches!(
            same.restore_state(&saved[..saved.len() / 2]),
            Err(EngineStateError::Format(_))
        ));
        assert!(matches!(
            same.restore_state(b"{}"),
            Err(EngineStateError::Format(_))
        ));
    }
}

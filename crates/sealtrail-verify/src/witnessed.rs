//! `verify --witness-vkey` (LEDGER.md §13.4): the stored cosigned checkpoint
//! `ledger/checkpoint.witnessed` must be signed by the log key of its size,
//! carry valid `cosignature/v1` lines of a quorum of the trusted witnesses,
//! and be extended by the log (its first `size` segments hash to its root).

use crate::hash::Hash;
use crate::keys::KeyChain;
use crate::note::{self, NoteVerifier};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;
use std::path::Path;

/// Name of the cosigned checkpoint under `DATA/ledger/`.
pub const WITNESSED_FILE: &str = "checkpoint.witnessed";
/// More trusted witnesses than this is not a policy we accept.
pub const MAX_WITNESSES: usize = 32;

/// Which witnesses an auditor trusts (`cosignature/v1` vkeys) and how many
/// must have cosigned.
#[derive(Clone, Debug)]
pub struct WitnessPolicy {
    pub witnesses: Vec<NoteVerifier>,
    pub quorum: usize,
}

/// `"witnessed"` of the verify report.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct WitnessedSummary {
    pub size: u64,
    pub root: String,
    /// Names of the trusted witnesses that cosigned it, in policy order.
    pub cosigners: Vec<String>,
}

/// The cosigned checkpoint, read and checked before the log is walked, and
/// its root.
pub(crate) type Witnessed = (WitnessedSummary, Hash);

pub(crate) type Issue = (&'static str, String);

/// Reads `ledger/checkpoint.witnessed` and checks it against the log's keys
/// and `policy`; every failure is a `witness_quorum` issue.
pub(crate) fn load(
    ledger: &Path,
    keys: &KeyChain,
    policy: &WitnessPolicy,
) -> Result<Witnessed, Issue> {
    let quorum = |detail: String| ("witness_quorum", detail);
    let path = ledger.join(WITNESSED_FILE);
    let bytes = crate::dir::read_bounded(&path, note::MAX_NOTE_LEN as u64).map_err(|e| {
        quorum(match e.kind() {
            std::io::ErrorKind::NotFound => format!("no cosigned checkpoint ({})", path.display()),
            _ => format!("{}: {e}", path.display()),
        })
    })?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| quorum(format!("{} is not UTF-8", path.display())))?;
    let ws = &policy.witnesses;
    if ws.len() > MAX_WITNESSES {
        return Err(quorum(format!("more than {MAX_WITNESSES} witness keys")));
    }
    let named_twice =
        |(i, w): &(usize, &NoteVerifier)| ws[..*i].iter().any(|o| o.name() == w.name());
    if let Some((i, w)) = ws.iter().enumerate().find(named_twice) {
        return Err(quorum(format!("two witness keys are named {} (key {i})", w.name())));
    }
    if policy.quorum > ws.len() {
        let (q, n) = (policy.quorum, ws.len());
        return Err(quorum(format!("quorum {q} cannot be met by {n} witness key(s)")));
    }
    // After a rotation the cosigned checkpoint may be the old key's.
    let key = note::parse_unverified_checkpoint(text)
        .ok()
        .and_then(|cp| keys.key_for(cp.size).ok())
        .unwrap_or(keys.current());
    let bad = |e: note::NoteError| quorum(format!("cosigned checkpoint does not verify: {e}"));
    let cp = note::open_checkpoint(text, key).map_err(bad)?;
    let found = note::verify_cosignatures(text, &cp, ws).map_err(bad)?;
    let cosigners: Vec<String> = ws
        .iter()
        .filter(|w| found.iter().any(|c| c.witness == w.name()))
        .map(|w| w.name().to_owned())
        .collect();
    if cosigners.len() < policy.quorum {
        let (n, q) = (cosigners.len(), policy.quorum);
        return Err(quorum(format!("{n} of the required {q} witnesses cosigned")));
    }
    Ok((WitnessedSummary { size: cp.size, root: B64.encode(cp.root), cosigners }, cp.root))
}

/// After the walk: `root_at(size)` is the log root of the first `size`
/// segments (None when the log is shorter or broken before it).
pub(crate) fn finish(
    loaded: Result<Witnessed, Issue>,
    root_at: impl Fn(u64) -> Option<Hash>,
    highest: u64,
) -> (Option<WitnessedSummary>, Option<Issue>) {
    let (summary, root) = match loaded {
        Ok(w) => w,
        Err(issue) => return (None, Some(issue)),
    };
    let size = summary.size;
    let issue = if size > highest {
        Some(format!("witnesses cosigned {size} segments but the log has {highest}"))
    } else if root_at(size) != Some(root) {
        Some(format!("the first {size} segments do not hash to the root the witnesses cosigned"))
    } else {
        None
    };
    (Some(summary), issue.map(|d| ("witness_mismatch", d)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(size: u64, root: Hash) -> Result<Witnessed, Issue> {
        let cosigners = vec!["w.example/a".into()];
        Ok((WitnessedSummary { size, root: B64.encode(root), cosigners }, root))
    }

    #[test]
    fn finish_requires_the_log_to_extend_the_cosigned_checkpoint() {
        let root = [3u8; 32];
        let (s, issue) = finish(loaded(4, root), |_| Some(root), 6);
        assert_eq!(s.map(|s| s.size), Some(4));
        assert!(issue.is_none());
        for (size, at, highest) in [(4, Some([4u8; 32]), 6), (4, None, 6), (7, Some(root), 6)] {
            let (_, issue) = finish(loaded(size, root), |_| at, highest);
            assert_eq!(issue.map(|i| i.0), Some("witness_mismatch"));
        }
        let (s, issue) = finish(Err(("witness_quorum", "x".into())), |_| Some(root), 6);
        assert!(s.is_none());
        assert_eq!(issue.map(|i| i.0), Some("witness_quorum"));
    }
}

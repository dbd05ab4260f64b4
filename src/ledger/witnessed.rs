//! `verify --witness-vkey`: the stored cosigned checkpoint
//! (`ledger/checkpoint.witnessed`) must be signed by the log key, carry a
//! quorum of valid witness cosignatures, and be extended by the log (the
//! first `size` segments hash to its root).

use super::cosignature::{CosignatureError, WitnessVerifier, open_witnessed_checkpoint};
use super::hash::Hash;
use super::keys::NoteVerifier;
use super::note::MAX_NOTE_LEN;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;
use std::path::Path;

/// Name of the cosigned checkpoint under `DATA/ledger/`.
pub const WITNESSED_FILE: &str = "checkpoint.witnessed";

/// Which witnesses an auditor trusts and how many must have cosigned.
#[derive(Clone, Debug)]
pub struct WitnessPolicy {
    pub witnesses: Vec<WitnessVerifier>,
    pub quorum: usize,
}

/// `"witnessed"` of the verify report.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct WitnessedSummary {
    pub size: u64,
    pub root: String,
    /// Names of the trusted witnesses that cosigned it.
    pub cosigners: Vec<String>,
}

/// The cosigned checkpoint read and checked, before the log is walked.
pub type Loaded = Result<WitnessedSummaryAndRoot, (&'static str, String)>;

#[derive(Clone, Debug)]
pub struct WitnessedSummaryAndRoot {
    pub summary: WitnessedSummary,
    pub root: Hash,
}

impl WitnessedSummaryAndRoot {
    pub fn size(&self) -> u64 {
        self.summary.size
    }
}

/// Reads and checks `ledger_dir/checkpoint.witnessed`; an error is an issue
/// (`witness_quorum`) of the report.
pub fn load(ledger_dir: &Path, log: &NoteVerifier, policy: &WitnessPolicy) -> Loaded {
    let path = ledger_dir.join(WITNESSED_FILE);
    let text = match crate::bounded::read_to_string(&path, MAX_NOTE_LEN as u64) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err((
                "witness_quorum",
                format!("no cosigned checkpoint ({})", path.display()),
            ));
        }
        Err(e) => return Err(("witness_quorum", format!("{}: {e}", path.display()))),
    };
    match open_witnessed_checkpoint(&text, log, &policy.witnesses, policy.quorum) {
        Ok(w) => Ok(WitnessedSummaryAndRoot {
            summary: WitnessedSummary {
                size: w.checkpoint().size,
                root: B64.encode(w.checkpoint().root),
                cosigners: w.cosigners().iter().map(|c| c.name.clone()).collect(),
            },
            root: w.checkpoint().root,
        }),
        Err(e @ CosignatureError::Quorum { .. }) => Err(("witness_quorum", e.to_string())),
        Err(e) => Err((
            "witness_quorum",
            format!("cosigned checkpoint does not verify: {e}"),
        )),
    }
}

/// After the walk: `root_at` is the log root of the first `size` segments
/// (None when the log is shorter or broken before it). Returns the summary
/// to report, or the issue.
pub fn finish(
    loaded: Loaded,
    root_at: Option<Hash>,
    highest: u64,
) -> (Option<WitnessedSummary>, Option<(&'static str, String)>) {
    let w = match loaded {
        Ok(w) => w,
        Err(issue) => return (None, Some(issue)),
    };
    if w.size() > highest {
        let detail = format!(
            "witnesses cosigned {} segments but the log has {highest}",
            w.size()
        );
        return (Some(w.summary), Some(("witness_mismatch", detail)));
    }
    if root_at != Some(w.root) {
        let detail = format!(
            "the first {} segments do not hash to the root the witnesses cosigned",
            w.size()
        );
        return (Some(w.summary), Some(("witness_mismatch", detail)));
    }
    (Some(w.summary), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(size: u64, root: Hash) -> Loaded {
        Ok(WitnessedSummaryAndRoot {
            summary: WitnessedSummary {
                size,
                root: B64.encode(root),
                cosigners: vec!["w.example/a".into()],
            },
            root,
        })
    }

    #[test]
    fn finish_requires_the_log_to_extend_the_cosigned_checkpoint() {
        let root = [3u8; 32];
        let (s, issue) = finish(loaded(4, root), Some(root), 6);
        assert_eq!(s.unwrap().size, 4);
        assert!(issue.is_none());
        let (_, issue) = finish(loaded(4, root), Some([4u8; 32]), 6);
        assert_eq!(issue.unwrap().0, "witness_mismatch");
        let (_, issue) = finish(loaded(4, root), None, 6);
        assert_eq!(issue.unwrap().0, "witness_mismatch");
        let (_, issue) = finish(loaded(7, root), None, 6);
        assert_eq!(issue.unwrap().0, "witness_mismatch");
        let (s, issue) = finish(Err(("witness_quorum", "x".into())), Some(root), 6);
        assert!(s.is_none());
        assert_eq!(issue.unwrap().0, "witness_quorum");
    }

    #[test]
    fn load_reports_a_missing_file_as_no_quorum() {
        let dir = tempfile::tempdir().unwrap();
        let log = crate::ledger::keys::NoteSigner::generate("log.example/a").unwrap();
        let policy = WitnessPolicy {
            witnesses: vec![],
            quorum: 0,
        };
        let err = load(dir.path(), &log.verifier(), &policy).unwrap_err();
        assert_eq!(err.0, "witness_quorum");
    }
}

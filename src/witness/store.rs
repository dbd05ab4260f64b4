//! `DATA/ledger/checkpoint.witnessed`: the log's signed checkpoint note with
//! the witnesses' cosignature lines appended (signed-note: extra signature
//! lines). Of the recent checkpoints cosigned, the file holds the one with
//! the most cosigners (the newest on a tie), so a slow witness never lowers
//! the evidence kept. Replaced atomically.

use crate::ledger::cosignature::{self, WitnessVerifier};
use crate::ledger::note;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub use crate::ledger::witnessed::WITNESSED_FILE;
/// Recent checkpoints whose cosignatures are kept in memory.
const RECENT: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {detail}")]
    Write { path: PathBuf, detail: String },
}

#[derive(Debug, Default)]
struct Entry {
    size: u64,
    /// The log-signed checkpoint note.
    checkpoint: String,
    /// (witness name, its cosignature line with newline), one per witness.
    lines: Vec<(String, String)>,
}

impl Entry {
    fn text(&self) -> String {
        let mut out = self.checkpoint.clone();
        for (_, line) in &self.lines {
            out.push_str(line);
        }
        out
    }
}

#[derive(Debug, Default)]
struct Inner {
    entries: Vec<Entry>,
    written: Option<String>,
}

/// Collects cosignatures and keeps the file current. Shared by the
/// submission tasks; `add` blocks (fsync), call it on the blocking pool.
#[derive(Debug)]
pub struct CosignedStore {
    path: PathBuf,
    inner: Mutex<Inner>,
}

impl CosignedStore {
    /// Starts from the file on disk, keeping the lines that still verify
    /// against `witnesses` (the others are dropped at the next write).
    pub fn open(ledger_dir: &Path, witnesses: &[WitnessVerifier]) -> Self {
        let path = ledger_dir.join(WITNESSED_FILE);
        let mut inner = Inner::default();
        if let Ok(text) = crate::bounded::read_to_string(&path, note::MAX_NOTE_LEN as u64)
            && let Some(entry) = load_entry(&text, witnesses)
        {
            inner.written = Some(text);
            inner.entries.push(entry);
        }
        Self {
            path,
            inner: Mutex::new(inner),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records `witness`'s cosignature `line` of the log-signed note
    /// `checkpoint` (of `size`), and rewrites the file when the best
    /// checkpoint or its lines changed.
    pub fn add(
        &self,
        checkpoint: &str,
        size: u64,
        witness: &str,
        line: &str,
    ) -> Result<(), StoreError> {
        let mut inner = self.inner.lock().map_err(|_| StoreError::Write {
            path: self.path.clone(),
            detail: "lock poisoned".into(),
        })?;
        let pos = match inner
            .entries
            .iter()
            .position(|e| e.checkpoint == checkpoint)
        {
            Some(p) => p,
            None => {
                if inner.entries.len() >= RECENT
                    && let Some(oldest) = (0..inner.entries.len())
                        .min_by_key(|&i| inner.entries.get(i).map_or(0, |e| e.size))
                {
                    inner.entries.swap_remove(oldest);
                }
                inner.entries.push(Entry {
                    size,
                    checkpoint: checkpoint.to_owned(),
                    lines: Vec::new(),
                });
                inner.entries.len() - 1
            }
        };
        if let Some(entry) = inner.entries.get_mut(pos) {
            match entry.lines.iter_mut().find(|(w, _)| w == witness) {
                Some(slot) => slot.1 = line.to_owned(),
                None => entry.lines.push((witness.to_owned(), line.to_owned())),
            }
        }
        let best = inner
            .entries
            .iter()
            .max_by_key(|e| (e.lines.len(), e.size))
            .map(Entry::text);
        if let Some(best) = best
            && inner.written.as_deref() != Some(best.as_str())
        {
            crate::auth::journal::write_atomic(&self.path, best.as_bytes()).map_err(|e| {
                StoreError::Write {
                    path: self.path.clone(),
                    detail: e.to_string(),
                }
            })?;
            inner.written = Some(best);
        }
        Ok(())
    }
}

/// The checkpoint part and the verifying lines of a stored file.
fn load_entry(text: &str, witnesses: &[WitnessVerifier]) -> Option<Entry> {
    let checkpoint = note::parse_unverified_checkpoint(text).ok()?;
    let (body, lines) = cosignature::split_note(text).ok()?;
    // The log's own line(s): those of no witness, kept in order.
    let mut log_lines = String::new();
    let mut kept = Vec::new();
    for line in &lines {
        let rendered = format!(
            "\u{2014} {} {}\n",
            line.name,
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &line.blob)
        );
        match witnesses.iter().find(|w| w.name() == line.name) {
            Some(w) => {
                let single = format!("{body}\n{rendered}");
                if cosignature::cosigners(&single, std::slice::from_ref(w))
                    .is_ok_and(|c| !c.is_empty())
                    && !kept.iter().any(|(n, _): &(String, String)| n == &line.name)
                {
                    kept.push((line.name.clone(), rendered));
                }
            }
            None => log_lines.push_str(&rendered),
        }
    }
    Some(Entry {
        size: checkpoint.size,
        checkpoint: format!("{body}\n{log_lines}"),
        lines: kept,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::cosignature::WitnessSigner;
    use crate::ledger::keys::NoteSigner;
    use crate::ledger::note::Checkpoint;

    fn note(log: &NoteSigner, size: u64) -> (String, String) {
        let cp = Checkpoint {
            origin: log.name().into(),
            size,
            root: [size as u8; 32],
            extensions: vec![],
        };
        (note::sign_checkpoint(&cp, log).unwrap(), cp.to_body())
    }

    #[test]
    fn keeps_the_best_checkpoint_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let log = NoteSigner::generate("log.example/a").unwrap();
        let (a, b) = (
            WitnessSigner::generate("w.example/a").unwrap(),
            WitnessSigner::generate("w.example/b").unwrap(),
        );
        let ws = [a.verifier(), b.verifier()];
        let store = CosignedStore::open(dir.path(), &ws);
        let (n5, b5) = note(&log, 5);
        let (n6, b6) = note(&log, 6);
        store
            .add(&n5, 5, "w.example/a", &a.cosign(&b5, 1).unwrap())
            .unwrap();
        store
            .add(&n5, 5, "w.example/b", &b.cosign(&b5, 1).unwrap())
            .unwrap();
        // Only one witness on the newer checkpoint: the file keeps size 5 with two.
        store
            .add(&n6, 6, "w.example/a", &a.cosign(&b6, 2).unwrap())
            .unwrap();
        let text = std::fs::read_to_string(store.path()).unwrap();
        let got = cosignature::open_witnessed_checkpoint(&text, &log.verifier(), &ws, 2).unwrap();
        assert_eq!(got.checkpoint().size, 5);
        store
            .add(&n6, 6, "w.example/b", &b.cosign(&b6, 2).unwrap())
            .unwrap();
        let text = std::fs::read_to_string(store.path()).unwrap();
        let got = cosignature::open_witnessed_checkpoint(&text, &log.verifier(), &ws, 2).unwrap();
        assert_eq!(got.checkpoint().size, 6);
        // Reopened: the same file is reproduced, and a new line is added to it.
        let again = CosignedStore::open(dir.path(), &ws);
        let inner = again.inner.lock().unwrap();
        assert_eq!(inner.entries[0].text(), text);
        assert_eq!(inner.entries[0].lines.len(), 2);
    }
}

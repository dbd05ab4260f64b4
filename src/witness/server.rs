//! `sealtrail witness serve`: the C2SP `tlog-witness` add-checkpoint API.
//!
//! A request is `old <size>\n`, at most 63 base64 consistency-proof lines,
//! an empty line and the checkpoint note. The checks, the state update and
//! the cosignature run on the blocking pool under the log's lock, so two
//! requests can never both pass the `old` check against the same state
//! (the rollback race of the spec).

use super::state::{Latest, LogState, StateError};
use crate::ledger::cosignature::WitnessSigner;
use crate::ledger::hash::{EMPTY_ROOT, Hash};
use crate::ledger::keys::NoteVerifier;
use crate::ledger::merkle;
use crate::ledger::note::{self, NoteError};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Largest request body: 63 proof lines and a checkpoint with a few
/// signatures fit many times over.
pub const MAX_REQUEST: usize = 64 * 1024;
/// Most consistency-proof lines a client may send (spec).
pub const MAX_PROOF_LINES: usize = 63;
/// Most logs one witness serves.
pub const MAX_LOGS: usize = 1024;

/// Why a submission was not cosigned; each maps to the spec's status.
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("unknown log origin {0:?}")]
    UnknownOrigin(String),
    #[error("checkpoint signature: {0}")]
    Signature(NoteError),
    #[error("old size {old} does not match the latest cosigned size {latest}")]
    Conflict { old: u64, latest: u64 },
    #[error("inconsistent: {0}")]
    Inconsistent(String),
    #[error("witness state: {0}")]
    State(#[from] StateError),
    #[error("internal: {0}")]
    Internal(String),
}

impl IntoResponse for AddError {
    fn into_response(self) -> Response {
        let status = match &self {
            AddError::Malformed(_) => StatusCode::BAD_REQUEST,
            AddError::UnknownOrigin(_) => StatusCode::NOT_FOUND,
            AddError::Signature(_) => StatusCode::FORBIDDEN,
            AddError::Conflict { latest, .. } => {
                return (
                    StatusCode::CONFLICT,
                    [(header::CONTENT_TYPE, "text/x.tlog.size")],
                    format!("{latest}\n"),
                )
                    .into_response();
            }
            AddError::Inconsistent(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AddError::State(_) | AddError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, format!("{self}\n")).into_response()
    }
}

/// A parsed add-checkpoint body.
#[derive(Debug, PartialEq, Eq)]
pub struct AddCheckpoint<'a> {
    pub old: u64,
    pub proof: Vec<Hash>,
    pub note: &'a str,
}

/// Canonical decimal: digits, no leading zero except "0" itself.
pub(crate) fn parse_decimal(s: &str) -> Option<u64> {
    match s.as_bytes() {
        [] => None,
        [b'0', _, ..] => None,
        b if !b.iter().all(u8::is_ascii_digit) => None,
        _ => s.parse().ok(),
    }
}

pub fn parse_request(body: &[u8]) -> Result<AddCheckpoint<'_>, AddError> {
    let bad = |m: &str| AddError::Malformed(m.to_owned());
    let text = std::str::from_utf8(body).map_err(|_| bad("body is not utf-8"))?;
    let (first, mut rest) = text.split_once('\n').ok_or(bad("no old size line"))?;
    let old = first
        .strip_prefix("old ")
        .and_then(parse_decimal)
        .ok_or(bad("first line is not `old <size>`"))?;
    let mut proof = Vec::new();
    loop {
        let (line, after) = rest
            .split_once('\n')
            .ok_or(bad("no empty line before the checkpoint"))?;
        rest = after;
        if line.is_empty() {
            break;
        }
        if proof.len() == MAX_PROOF_LINES {
            return Err(bad("more than 63 consistency proof lines"));
        }
        // 32 bytes are 44 base64 characters; bound before decoding.
        let raw = (line.len() == 44)
            .then(|| STANDARD.decode(line).ok())
            .flatten()
            .ok_or(bad("a proof line is not base64 of 32 bytes"))?;
        let hash =
            Hash::try_from(raw.as_slice()).map_err(|_| bad("a proof hash is not 32 bytes"))?;
        proof.push(hash);
    }
    Ok(AddCheckpoint {
        old,
        proof,
        note: rest,
    })
}

struct Log {
    /// The log's keys: one, or the old and new ones across a signing-key
    /// rotation (the history stays pinned by consistency proofs).
    verifiers: Vec<NoteVerifier>,
    state: Mutex<LogState>,
}

/// Opens a checkpoint note signed by any of `verifiers` (one origin's keys);
/// the error is the last key's.
pub(crate) fn open_with_any(
    text: &str,
    verifiers: &[NoteVerifier],
) -> Result<note::Checkpoint, NoteError> {
    let mut last = None;
    for v in verifiers {
        match note::open_checkpoint(text, v) {
            Ok(cp) => return Ok(cp.into_checkpoint()),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or(NoteError::NoSignatureByKey {
        name: String::new(),
        key_id: String::new(),
    }))
}

/// The witness: its key and the logs it knows, by origin.
pub struct Witness {
    signer: WitnessSigner,
    logs: HashMap<String, Log>,
}

impl Witness {
    /// Loads each log's state from `state_dir` (verified with its key).
    pub fn open(
        signer: WitnessSigner,
        state_dir: &Path,
        logs: Vec<NoteVerifier>,
    ) -> Result<Self, StateError> {
        if logs.len() > MAX_LOGS {
            return Err(StateError::TooManyLogs { max: MAX_LOGS });
        }
        // Keys of the same origin (given once each) are one log's.
        let mut by_origin: HashMap<String, Vec<NoteVerifier>> = HashMap::new();
        for verifier in logs {
            by_origin
                .entry(verifier.name().to_owned())
                .or_default()
                .push(verifier);
        }
        let mut map = HashMap::new();
        for (origin, verifiers) in by_origin {
            let state = LogState::load(state_dir, &verifiers)?;
            map.insert(
                origin,
                Log {
                    verifiers,
                    state: Mutex::new(state),
                },
            );
        }
        Ok(Self { signer, logs: map })
    }

    /// The latest cosigned size and root of `origin`, if the log is known.
    pub fn latest(&self, origin: &str) -> Option<Latest> {
        let log = self.logs.get(origin)?;
        log.state.lock().ok().map(|s| s.latest())
    }

    /// Checks a request and, when it passes, records the checkpoint and
    /// returns the cosignature line(s). Blocking (fsync).
    pub fn add_checkpoint(&self, body: &[u8], now: u64) -> Result<String, AddError> {
        let req = parse_request(body)?;
        let unverified = note::parse_unverified_checkpoint(req.note)
            .map_err(|e| AddError::Malformed(format!("checkpoint: {e}")))?;
        let log = self
            .logs
            .get(&unverified.origin)
            .ok_or_else(|| AddError::UnknownOrigin(unverified.origin.clone()))?;
        let cp = match open_with_any(req.note, &log.verifiers) {
            Ok(cp) => cp,
            Err(
                e @ (NoteError::NoSignatureByKey { .. }
                | NoteError::BadSignature { .. }
                | NoteError::SignatureLength { .. }),
            ) => return Err(AddError::Signature(e)),
            Err(e) => return Err(AddError::Malformed(format!("checkpoint: {e}"))),
        };
        if req.old > cp.size {
            return Err(AddError::Malformed(format!(
                "old size {} is larger than the checkpoint size {}",
                req.old, cp.size
            )));
        }
        if cp.size == 0 && cp.root != EMPTY_ROOT {
            return Err(AddError::Inconsistent(
                "a checkpoint of size 0 must have the empty root".into(),
            ));
        }
        // Held for the check and the durable update only; nothing awaits here.
        let mut state = log
            .state
            .lock()
            .map_err(|_| AddError::Internal("log state lock poisoned".into()))?;
        let held = state.latest();
        if req.old != held.size {
            return Err(AddError::Conflict {
                old: req.old,
                latest: held.size,
            });
        }
        if req.old == 0 {
            if !req.proof.is_empty() {
                return Err(AddError::Inconsistent(
                    "a proof from size 0 must be empty".into(),
                ));
            }
        } else {
            merkle::verify_consistency(held.size, cp.size, &req.proof, &held.root, &cp.root)
                .map_err(|e| AddError::Inconsistent(format!("consistency proof: {e}")))?;
        }
        let new = Latest {
            size: cp.size,
            root: cp.root,
        };
        if new != held {
            state.store(req.note, new)?;
        }
        drop(state);
        self.signer
            .cosign(&cp.to_body(), now)
            .map_err(|e| AddError::Internal(e.to_string()))
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_secs().max(1))
}

async fn add_checkpoint(State(witness): State<Arc<Witness>>, body: Bytes) -> Response {
    let result =
        tokio::task::spawn_blocking(move || witness.add_checkpoint(&body, unix_now())).await;
    match result {
        Ok(Ok(lines)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            lines,
        )
            .into_response(),
        Ok(Err(e)) => {
            tracing::info!(error = %e, "add-checkpoint refused");
            e.into_response()
        }
        Err(e) => AddError::Internal(format!("task failed: {e}")).into_response(),
    }
}

/// The witness's HTTP routes.
pub fn app(witness: Arc<Witness>) -> Router {
    Router::new()
        .route("/add-checkpoint", post(add_checkpoint))
        .layer(DefaultBodyLimit::max(MAX_REQUEST))
        .with_state(witness)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::hash::{leaf_hash, merkle_root};
    use crate::ledger::keys::NoteSigner;
    use crate::ledger::merkle::{LeafHashes, consistency_proof};
    use crate::ledger::note::Checkpoint;

    const ORIGIN: &str = "log.example/a";

    struct Fixture {
        _dir: tempfile::TempDir,
        state: std::path::PathBuf,
        log: NoteSigner,
        witness: Witness,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().to_owned();
        let log = NoteSigner::generate(ORIGIN).unwrap();
        let witness = Witness::open(
            WitnessSigner::generate("w.example/1").unwrap(),
            &state,
            vec![log.verifier()],
        )
        .unwrap();
        Fixture {
            _dir: dir,
            state,
            log,
            witness,
        }
    }

    fn leaves(tag: u8, n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&[tag, i as u8])).collect()
    }

    fn signed(log: &NoteSigner, leaves: &[Hash]) -> String {
        let cp = Checkpoint {
            origin: log.name().into(),
            size: leaves.len() as u64,
            root: merkle_root(leaves),
            extensions: vec![],
        };
        note::sign_checkpoint(&cp, log).unwrap()
    }

    fn request(old: u64, leaves: &[Hash], log: &NoteSigner) -> Vec<u8> {
        let mut body = format!("old {old}\n");
        if old > 0 && old < leaves.len() as u64 {
            let mut src = LeafHashes(leaves);
            for h in consistency_proof(old, leaves.len() as u64, &mut src).unwrap() {
                body.push_str(&STANDARD.encode(h));
                body.push('\n');
            }
        }
        body.push('\n');
        body.push_str(&signed(log, leaves));
        body.into_bytes()
    }

    #[test]
    fn first_then_consistent_update_is_cosigned() {
        let f = fixture();
        let l = leaves(1, 7);
        let line = f
            .witness
            .add_checkpoint(&request(0, &l[..3], &f.log), 10)
            .unwrap();
        assert!(line.starts_with("\u{2014} w.example/1 "));
        let line = f
            .witness
            .add_checkpoint(&request(3, &l, &f.log), 11)
            .unwrap();
        // The returned line is a valid cosignature of that checkpoint.
        let note = format!("{}{line}", signed(&f.log, &l));
        let v = [f.witness.signer.verifier()];
        let got = crate::ledger::cosignature::cosigners(&note, &v).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].timestamp, 11);
        assert_eq!(f.witness.latest(ORIGIN).unwrap().size, 7);
        // Same checkpoint again: cosigned again.
        assert!(
            f.witness
                .add_checkpoint(&request(7, &l, &f.log), 12)
                .is_ok()
        );
    }

    #[test]
    fn wrong_old_size_is_a_conflict_naming_the_latest() {
        let f = fixture();
        let l = leaves(1, 5);
        f.witness
            .add_checkpoint(&request(0, &l[..4], &f.log), 1)
            .unwrap();
        let err = f
            .witness
            .add_checkpoint(&request(0, &l, &f.log), 1)
            .unwrap_err();
        assert!(matches!(err, AddError::Conflict { old: 0, latest: 4 }));
        let resp = err.into_response();
        assert_eq!(resp.status(), StatusCode::CONFLICT);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/x.tlog.size");
    }

    #[test]
    fn rollback_and_fork_refused() {
        let f = fixture();
        let l = leaves(1, 6);
        f.witness
            .add_checkpoint(&request(0, &l, &f.log), 1)
            .unwrap();
        // Rolled back: old (the witness's size) above the checkpoint's size.
        let err = f.witness.add_checkpoint(&request(6, &l[..4], &f.log), 1);
        assert!(matches!(err, Err(AddError::Malformed(_))));
        // A fork: same key, other history, proof from the fork's own tree.
        let mut fork = leaves(2, 9);
        let err = f.witness.add_checkpoint(&request(6, &fork, &f.log), 1);
        assert!(matches!(err, Err(AddError::Inconsistent(_))), "{err:?}");
        // Same size, other root.
        fork.truncate(6);
        let err = f.witness.add_checkpoint(&request(6, &fork, &f.log), 1);
        assert!(matches!(err, Err(AddError::Inconsistent(_))));
        assert_eq!(f.witness.latest(ORIGIN).unwrap().size, 6);
        assert_eq!(f.witness.latest(ORIGIN).unwrap().root, merkle_root(&l));
    }

    #[test]
    fn signature_and_origin_checks() {
        let f = fixture();
        let l = leaves(1, 3);
        let other_key = NoteSigner::generate(ORIGIN).unwrap();
        let err = f.witness.add_checkpoint(&request(0, &l, &other_key), 1);
        assert!(matches!(err, Err(AddError::Signature(_))));
        let other_log = NoteSigner::generate("log.example/b").unwrap();
        let err = f.witness.add_checkpoint(&request(0, &l, &other_log), 1);
        assert!(matches!(err, Err(AddError::UnknownOrigin(_))));
        assert_eq!(f.witness.latest(ORIGIN), Some(Latest::EMPTY));
    }

    #[test]
    fn proof_rules() {
        let f = fixture();
        let l = leaves(1, 5);
        // Proof lines with old 0.
        let mut body = b"old 0\n".to_vec();
        body.extend_from_slice(format!("{}\n\n", STANDARD.encode([0u8; 32])).as_bytes());
        body.extend_from_slice(signed(&f.log, &l).as_bytes());
        assert!(matches!(
            f.witness.add_checkpoint(&body, 1),
            Err(AddError::Inconsistent(_))
        ));
        f.witness
            .add_checkpoint(&request(0, &l[..2], &f.log), 1)
            .unwrap();
        // A proof with one hash changed.
        let good = request(2, &l, &f.log);
        let text = String::from_utf8(good).unwrap();
        let (head, tail) = text.split_once('\n').unwrap();
        let (first, rest) = tail.split_once('\n').unwrap();
        let mut h = STANDARD.decode(first).unwrap();
        h[0] ^= 1;
        let bad = format!("{head}\n{}\n{rest}", STANDARD.encode(h));
        assert!(matches!(
            f.witness.add_checkpoint(bad.as_bytes(), 1),
            Err(AddError::Inconsistent(_))
        ));
        // A size-0 checkpoint must carry the empty root.
        let zero = Checkpoint {
            origin: ORIGIN.into(),
            size: 0,
            root: [1; 32],
            extensions: vec![],
        };
        let body = format!("old 0\n\n{}", note::sign_checkpoint(&zero, &f.log).unwrap());
        assert!(matches!(
            f.witness.add_checkpoint(body.as_bytes(), 1),
            Err(AddError::Inconsistent(_))
        ));
    }

    /// Two submissions from the same old size at once: exactly one is
    /// cosigned, the other gets a 409, and the state is the winner's.
    #[test]
    fn racing_submissions_cannot_roll_back() {
        for _ in 0..10 {
            let f = fixture();
            let l = leaves(1, 9);
            f.witness
                .add_checkpoint(&request(0, &l[..3], &f.log), 1)
                .unwrap();
            let (small, big) = (request(3, &l[..5], &f.log), request(3, &l, &f.log));
            let barrier = std::sync::Barrier::new(2);
            let (a, b) = std::thread::scope(|s| {
                let a = s.spawn(|| {
                    barrier.wait();
                    f.witness.add_checkpoint(&small, 2)
                });
                let b = s.spawn(|| {
                    barrier.wait();
                    f.witness.add_checkpoint(&big, 2)
                });
                (a.join().unwrap(), b.join().unwrap())
            });
            let latest = f.witness.latest(ORIGIN).unwrap().size;
            match (a, b) {
                (Ok(_), Err(AddError::Conflict { latest: 5, .. })) => assert_eq!(latest, 5),
                (Err(AddError::Conflict { latest: 9, .. }), Ok(_)) => assert_eq!(latest, 9),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn malformed_requests() {
        for body in [
            &b""[..],
            b"old 1",
            b"old 01\n\n",
            b"old -1\n\n",
            b"new 1\n\n",
            b"old 1\nnot base64\n\n",
            b"old 1\nAAAA\n\n",
            b"old 1\n",
            b"\xff\xfe\n\n",
        ] {
            assert!(
                matches!(parse_request(body), Err(AddError::Malformed(_))),
                "{body:?}"
            );
        }
        let mut many = "old 1\n".to_owned();
        for _ in 0..64 {
            many.push_str(&STANDARD.encode([0u8; 32]));
            many.push('\n');
        }
        many.push('\n');
        assert!(parse_request(many.as_bytes()).is_err());
        let ok = parse_request(b"old 0\n\nrest").unwrap();
        assert_eq!(ok.old, 0);
        assert_eq!(ok.note, "rest");
    }

    #[test]
    fn state_survives_reopen_and_is_verified() {
        let f = fixture();
        let l = leaves(1, 4);
        f.witness
            .add_checkpoint(&request(0, &l, &f.log), 1)
            .unwrap();
        let again = Witness::open(
            WitnessSigner::generate("w.example/1").unwrap(),
            &f.state,
            vec![f.log.verifier()],
        )
        .unwrap();
        assert_eq!(again.latest(ORIGIN).unwrap().size, 4);
        // A state file altered on disk is refused at start.
        let file = std::fs::read_dir(&f.state)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "checkpoint"))
            .unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(&file, text.replacen("\n4\n", "\n3\n", 1)).unwrap();
        let err = Witness::open(
            WitnessSigner::generate("w.example/1").unwrap(),
            &f.state,
            vec![f.log.verifier()],
        );
        assert!(matches!(err, Err(StateError::Corrupt { .. })));
    }

    /// Across a signing-key rotation the witness is given both keys of the
    /// origin: its state, signed by the old key, still loads, checkpoints by
    /// the new key are cosigned when consistent, and a third key is refused.
    #[test]
    fn both_keys_of_a_rotated_log_are_one_log() {
        let f = fixture();
        let l = leaves(2, 9);
        f.witness
            .add_checkpoint(&request(0, &l[..4], &f.log), 10)
            .unwrap();
        let new = NoteSigner::generate(ORIGIN).unwrap();
        let reopen = |keys: Vec<NoteVerifier>| {
            Witness::open(
                WitnessSigner::generate("w.example/1").unwrap(),
                &f.state,
                keys,
            )
        };
        // The new key alone cannot vouch for the state the old key signed.
        assert!(matches!(
            reopen(vec![new.verifier()]),
            Err(StateError::Corrupt { .. })
        ));
        let w = reopen(vec![f.log.verifier(), new.verifier()]).unwrap();
        assert_eq!(w.latest(ORIGIN).unwrap().size, 4);
        w.add_checkpoint(&request(4, &l, &new), 11).unwrap();
        assert_eq!(w.latest(ORIGIN).unwrap().size, 9);
        // Still pinned by consistency: another history by the new key fails.
        let other = leaves(3, 12);
        assert!(matches!(
            w.add_checkpoint(&request(9, &other, &new), 12),
            Err(AddError::Inconsistent(_))
        ));
        let stranger = NoteSigner::generate(ORIGIN).unwrap();
        let more = leaves(2, 11);
        assert!(matches!(
            w.add_checkpoint(&request(9, &more, &stranger), 13),
            Err(AddError::Signature(_))
        ));
    }
}

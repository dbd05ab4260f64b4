//! `POST /v1/integrity/verify` and `GET /v1/integrity/verify`: the console's
//! verification run. A run is the offline `sealtrail verify` of the data
//! directory (the verifier crate's `verify_dir`, through
//! `ledger::verify::verify_data_dir_with`) on a blocking thread, against the
//! log's current verifier key, reporting its progress after each window of
//! segments. `GET /v1/integrity/status` summarises the chain (segments,
//! events, the latest checkpoint and when it was written, witness
//! cosignatures when there are any). One run at a time: a second start while one runs is a 409.
//! The start is recorded in the ledger (`system/siem_verify`, as searches
//! and exports are) before the run begins, and so is its result.

use crate::api::query::{QueryState, audit};
use crate::auth::Principal;
use crate::auth::record::{AuditRecord, record};
use crate::event::{Category, Outcome, Timestamp};
use crate::ledger::verify::{Progress, VerifyReport, verify_data_dir_with};
use axum::extract::{ConnectInfo, Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// The action of the run's audit records.
pub const VERIFY_ACTION: &str = "siem_verify";

/// Where a run is.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    /// Finished with a report (which may say the ledger did not verify).
    Done,
    /// Could not run (no key, not a data directory, task failure).
    Failed,
}

/// The run as the console polls it.
#[derive(Clone, Debug, Serialize)]
pub struct Run {
    pub id: u64,
    pub state: RunState,
    pub started_by: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub segments_done: u64,
    pub segments_total: u64,
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub report: Option<VerifyReport>,
    pub error: Option<String>,
}

#[derive(Clone)]
pub struct IntegrityState {
    query: QueryState,
    /// The latest run (running or finished); `None` before the first.
    run: Arc<Mutex<Option<Run>>>,
}

pub fn routes(query: QueryState) -> Router {
    let state = IntegrityState {
        query,
        run: Arc::new(Mutex::new(None)),
    };
    Router::new()
        .route("/v1/integrity/status", get(get_status))
        .route("/v1/integrity/verify", get(get_run).post(start_run))
        .with_state(state)
}

fn lock(run: &Mutex<Option<Run>>) -> std::sync::MutexGuard<'_, Option<Run>> {
    // A panic while holding the lock leaves plain data behind: keep using it.
    run.lock().unwrap_or_else(|e| e.into_inner())
}

/// `GET /v1/integrity/verify`: the latest run, or `{"state": "idle"}`.
async fn get_run(State(state): State<IntegrityState>) -> Response {
    match lock(&state.run).clone() {
        Some(run) => Json(run).into_response(),
        None => Json(json!({"state": "idle"})).into_response(),
    }
}

/// `POST /v1/integrity/verify`: starts a run (202 with the run), or 409
/// with the running one.
async fn start_run(
    State(state): State<IntegrityState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(principal): Extension<Principal>,
) -> Response {
    let id = {
        let mut guard = lock(&state.run);
        if let Some(run) = guard.as_ref().filter(|r| r.state == RunState::Running) {
            return (
                StatusCode::CONFLICT,
                Json(json!({"error": "a verification is already running", "run": run})),
            )
                .into_response();
        }
        let id = guard.as_ref().map_or(1, |r| r.id + 1);
        *guard = Some(Run {
            id,
            state: RunState::Running,
            started_by: principal.qualified_name(),
            started_at: Timestamp::now().to_string(),
            finished_at: None,
            segments_done: 0,
            segments_total: 0,
            bytes_done: 0,
            bytes_total: 0,
            report: None,
            error: None,
        });
        id
    };
    if let Err(r) = audit(
        &state.query.pipeline,
        &peer,
        &principal,
        VERIFY_ACTION,
        json!({"verify": "started", "run": id}),
        format!("ledger verification {id} started"),
    )
    .await
    {
        // Not recorded, so not run.
        *lock(&state.run) = None;
        return r;
    }
    let snapshot = lock(&state.run).clone();
    tokio::spawn(run_verification(state, id, peer, principal));
    (StatusCode::ACCEPTED, Json(snapshot)).into_response()
}

/// Runs the check on a blocking thread, then records its outcome.
async fn run_verification(state: IntegrityState, id: u64, peer: SocketAddr, principal: Principal) {
    let shared = state.run.clone();
    let data_dir = state.query.data_dir.clone();
    let key_file = state.query.key_file.clone();
    let joined = tokio::task::spawn_blocking(move || {
        let signer = crate::ledger::keys::load_signer(&key_file)
            .map_err(|e| format!("the log's key: {e}"))?;
        let verifier = signer.verifier();
        let mut progress = |p: Progress| {
            if let Some(run) = lock(&shared).as_mut().filter(|r| r.id == id) {
                run.segments_done = p.segments_done;
                run.segments_total = p.segments_total;
                run.bytes_done = p.bytes_done;
                run.bytes_total = p.bytes_total;
            }
        };
        verify_data_dir_with(&data_dir, &verifier, None, None, Some(&mut progress))
            .map_err(|e| e.to_string())
    })
    .await;
    let result = match joined {
        Ok(r) => r,
        Err(e) => Err(format!("verification task failed: {e}")),
    };
    let (outcome, message, attrs) = match &result {
        Ok(report) => (
            if report.ok {
                Outcome::Success
            } else {
                Outcome::Failure
            },
            format!(
                "ledger verification {id}: {} ({} events in {} segments)",
                if report.ok {
                    "verified"
                } else {
                    "NOT verified"
                },
                report.events,
                report.segments
            ),
            json!({"verify": "finished", "run": id, "ok": report.ok, "events": report.events,
                   "segments": report.segments, "errors": report.errors.len()}),
        ),
        Err(e) => (
            Outcome::Failure,
            format!("ledger verification {id} could not run: {e}"),
            json!({"verify": "failed", "run": id, "error": e}),
        ),
    };
    if let Some(run) = lock(&state.run).as_mut().filter(|r| r.id == id) {
        run.finished_at = Some(Timestamp::now().to_string());
        match result {
            Ok(report) => {
                run.state = RunState::Done;
                run.segments_done = run.segments_total.max(report.segments);
                run.segments_total = run.segments_done;
                run.bytes_done = run.bytes_total;
                run.report = Some(report);
            }
            Err(e) => {
                run.state = RunState::Failed;
                run.error = Some(e);
            }
        }
    }
    let rec = AuditRecord {
        category: Category::System,
        action: VERIFY_ACTION,
        outcome,
        attrs,
        message,
        id: None,
    };
    if let Err(e) = record(
        &state.query.pipeline,
        Some(peer.ip()),
        Some(&principal),
        rec,
    )
    .await
    {
        tracing::error!(error = %e, run = id, "could not record the verification's result");
    }
}

/// The chain as of its latest checkpoint.
#[derive(Debug, Serialize)]
pub struct ChainStatus {
    /// The signed checkpoint note, as `GET /v1/checkpoint` serves it.
    pub checkpoint: String,
    pub origin: String,
    /// Sealed segments the checkpoint covers (the log's tree size).
    pub segments: u64,
    /// Events in those segments.
    pub events: u64,
    /// Base64 tree root.
    pub root: String,
    /// When the checkpoint was written (RFC 3339; the file's time).
    pub checkpoint_time: Option<String>,
    /// The latest checkpoint cosigned by witnesses, if any.
    pub witnessed: Option<String>,
}

/// `GET /v1/integrity/status`.
async fn get_status(State(state): State<IntegrityState>) -> Response {
    let data = state.query.data_dir.clone();
    let built = tokio::task::spawn_blocking(move || {
        let reader = crate::ledger::proof::LedgerReader::open(&data).map_err(|e| e.to_string())?;
        let cp = reader.checkpoint();
        let events = reader.covered_events().map_err(|e| e.to_string())?;
        let checkpoint_time = std::fs::metadata(&reader.paths().checkpoint)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_millis()).ok())
            .and_then(|ms| Timestamp::from_unix_ms(ms).ok())
            .map(|t| t.to_string());
        let witnessed_path = reader
            .paths()
            .ledger
            .join(crate::witness::store::WITNESSED_FILE);
        let witnessed = crate::bounded::read_to_string(
            &witnessed_path,
            crate::ledger::note::MAX_NOTE_LEN as u64,
        )
        .ok();
        Ok::<_, String>(ChainStatus {
            checkpoint: reader.checkpoint_text().to_owned(),
            origin: cp.origin.clone(),
            segments: cp.size,
            events,
            root: base64::Engine::encode(&base64::engine::general_purpose::STANDARD, cp.root),
            checkpoint_time,
            witnessed,
        })
    })
    .await;
    match built {
        Ok(Ok(status)) => Json(status).into_response(),
        Ok(Err(e)) => crate::api::query::error(StatusCode::SERVICE_UNAVAILABLE, e),
        Err(e) => crate::api::query::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("status task failed: {e}"),
        ),
    }
}

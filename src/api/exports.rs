//! The console's evidence-bundle exports, as jobs with progress:
//! `POST /v1/exports` starts one (the body of `POST /v1/export`),
//! `GET /v1/exports/{id}` reports it (events matched, proofs built, bytes
//! written) and `GET /v1/exports/{id}/bundle` downloads the finished tar
//! file once. `POST /v1/export` stays as it is (one request, one file);
//! both build the bundle with the same code (`api::query::build_export`).
//!
//! Bounds: one running export per principal (a second start is a 409 with
//! the running one), at most [`MAX_RUNNING`] running at once and
//! [`MAX_JOBS`] remembered; a start is refused while finished bundles
//! waiting for download hold [`MAX_WAITING_BYTES`] or more. Bundles wait in
//! `DATA/exports/` encrypted under a key per file held only in memory
//! (`api::spool`: a file outlives its key only as noise), are deleted when
//! downloaded or [`KEEP_FOR`] after they were finished, and files left by an
//! earlier process are deleted at start-up. Only the principal who started
//! an export sees it or downloads it (anyone else gets a 404).
//!
//! The start is recorded in the ledger as `system/siem_export`, exactly as
//! `POST /v1/export` is, before any work; so is the download.

use crate::api::query::{
    BadRequest, ExportBody, QueryState, audit, build_export, error, export_indices,
};
use crate::api::spool::{SpoolKey, SpoolReader, SpoolWriter};
use crate::auth::Principal;
use crate::event::Timestamp;
use crate::ledger::bundle::BundleProgress;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Extension, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

/// The action of the exports' audit records (as `POST /v1/export`'s).
pub const EXPORT_ACTION: &str = "siem_export";
/// Exports remembered at once (running, finished or downloaded).
pub const MAX_JOBS: usize = 32;
/// Exports running at once, all principals together.
pub const MAX_RUNNING: usize = 2;
/// Finished bundles waiting for download stop new starts at this size.
pub const MAX_WAITING_BYTES: u64 = 2 << 30;
/// How long a finished export is kept (its bundle, then its status).
pub const KEEP_FOR: Duration = Duration::from_secs(3600);
/// How often expired bundles are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// The folder under the data directory where bundles wait.
pub const EXPORTS_DIR: &str = "exports";
/// Hex digits of an export's id.
const ID_LEN: usize = 32;

/// Where an export is.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Running,
    /// The bundle is ready to download.
    Done,
    /// Downloaded (the file is gone).
    Downloaded,
    Failed,
}

/// An export as its principal polls it.
#[derive(Clone, Debug, Serialize)]
pub struct ExportJob {
    pub id: String,
    pub state: JobState,
    pub q: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub started_by: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// Until when the bundle can be downloaded (set when it is done).
    pub expires_at: Option<String>,
    /// Events the query matched: `None` while the search runs.
    pub events_total: Option<u64>,
    /// Events whose inclusion proof is in the bundle so far.
    pub proofs_done: u64,
    /// Bytes written so far (the bundle's size once done).
    pub bytes: u64,
    pub error: Option<String>,
    /// Where to download it, once done.
    pub bundle: Option<String>,
}

struct Slot {
    job: ExportJob,
    owner: String,
    /// The bundle's file while it exists (from the start of the build).
    file: Option<PathBuf>,
    /// The key its file is encrypted under; nowhere else.
    key: Arc<SpoolKey>,
    /// When a finished export is forgotten.
    expires: Option<Instant>,
}

#[derive(Default)]
struct Jobs {
    slots: Vec<Slot>,
}

impl Jobs {
    /// Forgets expired exports; the files to delete.
    fn sweep(&mut self, now: Instant) -> Vec<PathBuf> {
        let mut gone = Vec::new();
        self.slots.retain_mut(|s| {
            let keep = s.expires.is_none_or(|e| e > now);
            if !keep {
                gone.extend(s.file.take());
            }
            keep
        });
        gone
    }

    /// Makes room for one more by forgetting the oldest finished exports;
    /// the files to delete, or `None` when every slot is running.
    fn make_room(&mut self) -> Option<Vec<PathBuf>> {
        let mut gone = Vec::new();
        while self.slots.len() >= MAX_JOBS {
            let oldest = self
                .slots
                .iter()
                .position(|s| s.job.state != JobState::Running)?;
            gone.extend(self.slots.remove(oldest).file);
        }
        Some(gone)
    }

    /// Adds `slot` (a running export) unless a bound refuses it. The files
    /// of exports forgotten meanwhile (expired, or the oldest finished ones
    /// to make room) come back either way, to be deleted.
    fn admit(&mut self, slot: Slot, now: Instant) -> (Result<(), Refusal>, Vec<PathBuf>) {
        let mut gone = self.sweep(now);
        let running = |s: &&Slot| s.job.state == JobState::Running;
        let refusal = if let Some(mine) = self
            .slots
            .iter()
            .filter(running)
            .find(|s| s.owner == slot.owner)
        {
            Some(Refusal::Running(Box::new(mine.job.clone())))
        } else if self.slots.iter().filter(running).count() >= MAX_RUNNING {
            Some(Refusal::Busy)
        } else if self.waiting_bytes() >= MAX_WAITING_BYTES {
            Some(Refusal::Storage)
        } else {
            match self.make_room() {
                Some(more) => {
                    gone.extend(more);
                    None
                }
                None => Some(Refusal::Full),
            }
        };
        match refusal {
            Some(r) => (Err(r), gone),
            None => {
                self.slots.push(slot);
                (Ok(()), gone)
            }
        }
    }

    fn waiting_bytes(&self) -> u64 {
        self.slots
            .iter()
            .filter(|s| s.job.state == JobState::Done)
            .map(|s| s.job.bytes)
            .sum()
    }

    fn get_mut(&mut self, id: &str) -> Option<&mut Slot> {
        self.slots.iter_mut().find(|s| s.job.id == id)
    }

    /// Export `id` if `owner` started it: nobody else learns it exists.
    fn owned(&mut self, id: &str, owner: &str) -> Option<&mut Slot> {
        self.get_mut(id).filter(|s| s.owner == owner)
    }
}

/// Why an export does not start.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("you already have an export running")]
    Running(Box<ExportJob>),
    #[error("other exports are running; retry in a minute")]
    Busy,
    #[error("too many exports are remembered; retry in a minute")]
    Full,
    #[error("too many finished bundles wait for download; retry later")]
    Storage,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Running(ref job) => (
                StatusCode::CONFLICT,
                Json(json!({"error": self.to_string(), "export": job})),
            )
                .into_response(),
            Refusal::Busy | Refusal::Full => busy(&self.to_string()),
            Refusal::Storage => error(StatusCode::INSUFFICIENT_STORAGE, self.to_string()),
        }
    }
}

#[derive(Clone)]
pub struct ExportsState {
    query: QueryState,
    jobs: Arc<Mutex<Jobs>>,
    dir: PathBuf,
}

pub fn routes(query: QueryState) -> Router {
    let dir = query.data_dir.join(EXPORTS_DIR);
    let state = ExportsState {
        query,
        jobs: Arc::new(Mutex::new(Jobs::default())),
        dir,
    };
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(sweeper(Arc::downgrade(&state.jobs), state.dir.clone()));
    }
    Router::new()
        .route("/v1/exports", post(start))
        .route("/v1/exports/{id}", get(status))
        .route("/v1/exports/{id}/bundle", get(download))
        .with_state(state)
        .layer(axum::extract::DefaultBodyLimit::max(
            crate::api::MAX_REQUEST_BODY,
        ))
}

fn lock(jobs: &Mutex<Jobs>) -> MutexGuard<'_, Jobs> {
    // A panic while holding the lock leaves plain data behind: keep using it.
    jobs.lock().unwrap_or_else(|e| e.into_inner())
}

/// Deletes files, off the async threads.
async fn delete(files: Vec<PathBuf>) {
    if files.is_empty() {
        return;
    }
    let _ = tokio::task::spawn_blocking(move || {
        for f in files {
            if let Err(e) = std::fs::remove_file(&f)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(error = %e, file = %f.display(), "could not delete an export bundle");
            }
        }
    })
    .await;
}

/// Every minute: forgets expired exports and deletes their bundles, and any
/// file in the folder no export owns (left by an earlier process). Ends
/// when the routes are dropped.
async fn sweeper(jobs: Weak<Mutex<Jobs>>, dir: PathBuf) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    loop {
        tick.tick().await;
        let Some(jobs) = jobs.upgrade() else { return };
        let (mut gone, owned) = {
            let mut j = lock(&jobs);
            let gone = j.sweep(Instant::now());
            let owned: Vec<PathBuf> = j.slots.iter().filter_map(|s| s.file.clone()).collect();
            (gone, owned)
        };
        drop(jobs);
        let dir = dir.clone();
        let strays = tokio::task::spawn_blocking(move || {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                return Vec::new();
            };
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && !owned.contains(p))
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        gone.extend(strays);
        delete(gone).await;
    }
}

fn new_id() -> String {
    use rand_core::{OsRng, RngCore};
    let mut b = [0u8; ID_LEN / 2];
    OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

fn valid_id(id: &str) -> bool {
    id.len() == ID_LEN && id.bytes().all(|b| b.is_ascii_hexdigit())
}

fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such export")
}

/// `POST /v1/exports`: starts an export (202 with it); 409 with the running
/// one when this principal already runs one; 429 when the service is busy
/// with others' exports; 507 while too many bundles wait for download.
async fn start(
    State(state): State<ExportsState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(principal): Extension<Principal>,
    body: Result<Json<ExportBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => return error(e.status(), e.body_text()),
    };
    let (from, to) = match body.range() {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    let checked = body.bundle_query(&peer).validate();
    if let Err(e) = checked {
        return BadRequest(e.to_string()).into_response();
    }
    let owner = principal.qualified_name();
    let id = new_id();
    let file = state.dir.join(format!("{id}.tar"));
    let job = ExportJob {
        id: id.clone(),
        state: JobState::Running,
        q: body.q.clone(),
        from: body.from.clone(),
        to: body.to.clone(),
        started_by: owner.clone(),
        started_at: Timestamp::now().to_string(),
        finished_at: None,
        expires_at: None,
        events_total: None,
        proofs_done: 0,
        bytes: 0,
        error: None,
        bundle: None,
    };
    let slot = Slot {
        job: job.clone(),
        owner,
        file: Some(file.clone()),
        key: Arc::new(SpoolKey::generate()),
        expires: None,
    };
    let (admitted, gone) = lock(&state.jobs).admit(slot, Instant::now());
    delete(gone).await;
    if let Err(refusal) = admitted {
        return refusal.into_response();
    }
    let mut attrs = body.audit_attrs();
    attrs["export"] = json!(id);
    if let Err(r) = audit(
        &state.query.pipeline,
        &peer,
        &principal,
        EXPORT_ACTION,
        attrs,
        format!("evidence bundle export {id} started: {}", body.q),
    )
    .await
    {
        // Not recorded, so not run.
        lock(&state.jobs).slots.retain(|s| s.job.id != id);
        return r;
    }
    tokio::spawn(run(state, id, body, from, to, peer, file));
    (StatusCode::ACCEPTED, Json(job)).into_response()
}

fn busy(why: &str) -> Response {
    let mut r = error(StatusCode::TOO_MANY_REQUESTS, why);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
    r
}

/// Searches, then builds the bundle into its file, updating the job.
async fn run(
    state: ExportsState,
    id: String,
    body: ExportBody,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
    peer: SocketAddr,
    file: PathBuf,
) {
    let update = |f: &dyn Fn(&mut Slot)| {
        if let Some(slot) = lock(&state.jobs).get_mut(&id) {
            f(slot);
        }
    };
    let result = async {
        let indices = export_indices(&state.query, &body, from, to).await?;
        let total = indices.len() as u64;
        update(&|s| s.job.events_total = Some(total));
        let query = body.bundle_query(&peer);
        let key = lock(&state.jobs)
            .get_mut(&id)
            .map(|s| s.key.clone())
            .ok_or_else(|| {
                crate::api::query::ExportError::Build("the export was forgotten".into())
            })?;
        let (dir, path) = (state.dir.clone(), file.clone());
        let open = move || {
            std::fs::create_dir_all(&dir)?;
            let file = std::fs::File::create(&path)?;
            Ok(SpoolWriter::new(std::io::BufWriter::new(file), &key))
        };
        let (jobs, job_id) = (state.jobs.clone(), id.clone());
        let progress = Arc::new(move |p: BundleProgress| {
            if let Some(slot) = lock(&jobs).get_mut(&job_id) {
                slot.job.proofs_done = p.proofs_done;
                slot.job.bytes = p.bytes;
            }
        });
        let out = build_export(&state.query, query, indices, open, progress).await?;
        // The last chunk and the flush: file I/O, off the runtime.
        let finished = tokio::task::spawn_blocking(move || out.finish().map(|(_, len)| len)).await;
        let build = |e: String| crate::api::query::ExportError::Build(e);
        finished
            .map_err(|e| build(e.to_string()))?
            .map_err(|e| build(e.to_string()))
    }
    .await;
    let now = Timestamp::now();
    let expires_at = Timestamp::from_unix_ms(
        now.unix_ms()
            .saturating_add(i64::try_from(KEEP_FOR.as_millis()).unwrap_or(i64::MAX)),
    )
    .ok()
    .map(|t| t.to_string());
    let mut stray = None;
    {
        let mut jobs = lock(&state.jobs);
        match jobs.get_mut(&id) {
            Some(slot) => {
                slot.job.finished_at = Some(now.to_string());
                slot.expires = Some(Instant::now() + KEEP_FOR);
                match result {
                    Ok(size) => {
                        slot.job.state = JobState::Done;
                        slot.job.bytes = size;
                        slot.job.proofs_done = slot.job.events_total.unwrap_or(0);
                        slot.job.expires_at = expires_at;
                        slot.job.bundle = Some(format!("/v1/exports/{id}/bundle"));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, export = %id, "export failed");
                        slot.job.state = JobState::Failed;
                        slot.job.error = Some(e.to_string());
                        stray = slot.file.take();
                    }
                }
            }
            // Forgotten meanwhile: its file goes too.
            None => stray = Some(file),
        }
    }
    delete(stray.into_iter().collect()).await;
}

/// `GET /v1/exports/{id}`: the export, to the principal who started it.
async fn status(
    State(state): State<ExportsState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    if !valid_id(&id) {
        return not_found();
    }
    let owner = principal.qualified_name();
    let mut jobs = lock(&state.jobs);
    match jobs.owned(&id, &owner) {
        Some(slot) => Json(slot.job.clone()).into_response(),
        None => not_found(),
    }
}

/// `GET /v1/exports/{id}/bundle`: the finished bundle, once, to the
/// principal who started it; its file is deleted as it is sent.
async fn download(
    State(state): State<ExportsState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    if !valid_id(&id) {
        return not_found();
    }
    let owner = principal.qualified_name();
    let ready = {
        let mut jobs = lock(&state.jobs);
        match jobs.owned(&id, &owner) {
            None => return not_found(),
            Some(slot) => slot.job.state,
        }
    };
    match ready {
        JobState::Done => {}
        JobState::Running => return error(StatusCode::CONFLICT, "the export is still running"),
        JobState::Downloaded => {
            return error(StatusCode::GONE, "the bundle was downloaded already");
        }
        JobState::Failed => return error(StatusCode::GONE, "the export failed"),
    }
    if let Err(r) = audit(
        &state.query.pipeline,
        &peer,
        &principal,
        EXPORT_ACTION,
        json!({"export": id, "download": true}),
        format!("evidence bundle export {id} downloaded"),
    )
    .await
    {
        return r;
    }
    // Taken under the lock: a second download at the same time gets a 410.
    let file = {
        let mut jobs = lock(&state.jobs);
        let Some(slot) = jobs
            .owned(&id, &owner)
            .filter(|s| s.job.state == JobState::Done)
        else {
            return error(StatusCode::GONE, "the bundle was downloaded already");
        };
        slot.job.state = JobState::Downloaded;
        slot.job.bundle = None;
        slot.file
            .take()
            .map(|f| (f, slot.key.clone(), slot.job.bytes))
    };
    let Some((path, key, len)) = file else {
        return error(StatusCode::GONE, "the bundle is gone");
    };
    let opened = tokio::fs::File::open(&path).await;
    // Unlinked now: the open handle still reads it; nothing is left behind.
    delete(vec![path]).await;
    let f = match opened {
        Ok(f) => f.into_std().await,
        Err(e) => {
            tracing::error!(error = %e, export = %id, "could not open an export bundle");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the bundle could not be read",
            );
        }
    };
    // Decrypted on a blocking thread, a few chunks ahead of the client.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let mut reader = SpoolReader::new(std::io::BufReader::new(f), &key);
        loop {
            let next = reader.next_chunk();
            let stop = !matches!(next, Ok(Some(_)));
            let item = match next {
                Ok(Some(chunk)) => Ok(Bytes::from(chunk)),
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(error = %e, "an export bundle could not be decrypted");
                    Err(e)
                }
            };
            if tx.blocking_send(item).is_err() || stop {
                break;
            }
        }
    });
    let mut r = Body::new(ChannelBody(rx)).into_response();
    let headers = r.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"sealtrail-evidence.tar\""),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    r
}

/// A response body fed by the decrypting thread; an error ends the
/// response short of its length, so the client sees a failed download.
struct ChannelBody(tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|item| item.map(|r| r.map(http_body::Frame::data)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(id: &str, state: JobState, expires: Option<Instant>) -> Slot {
        Slot {
            job: ExportJob {
                id: id.into(),
                state,
                q: "*".into(),
                from: None,
                to: None,
                started_by: "t".into(),
                started_at: String::new(),
                finished_at: None,
                expires_at: None,
                events_total: None,
                proofs_done: 0,
                bytes: 10,
                error: None,
                bundle: None,
            },
            owner: "t".into(),
            file: Some(PathBuf::from(format!("{id}.tar"))),
            key: Arc::new(SpoolKey::generate()),
            expires,
        }
    }

    #[test]
    fn expired_exports_are_forgotten_with_their_files() {
        let now = Instant::now();
        let mut jobs = Jobs::default();
        jobs.slots.push(slot("a", JobState::Done, Some(now)));
        jobs.slots.push(slot("b", JobState::Running, None));
        jobs.slots
            .push(slot("c", JobState::Done, Some(now + KEEP_FOR)));
        let gone = jobs.sweep(now + Duration::from_secs(1));
        assert_eq!(gone, [PathBuf::from("a.tar")]);
        assert_eq!(jobs.slots.len(), 2);
        assert_eq!(jobs.waiting_bytes(), 10);
    }

    #[test]
    fn room_is_made_from_finished_exports_never_running_ones() {
        let mut jobs = Jobs::default();
        for i in 0..MAX_JOBS {
            jobs.slots
                .push(slot(&i.to_string(), JobState::Running, None));
        }
        assert!(jobs.make_room().is_none());
        jobs.slots[3].job.state = JobState::Downloaded;
        let gone = jobs.make_room().unwrap();
        assert_eq!(gone, [PathBuf::from("3.tar")]);
        assert_eq!(jobs.slots.len(), MAX_JOBS - 1);
    }

    fn running(id: &str, owner: &str) -> Slot {
        let mut s = slot(id, JobState::Running, None);
        s.owner = owner.into();
        s
    }

    #[test]
    fn one_running_export_per_principal_and_two_in_all() {
        let now = Instant::now();
        let mut jobs = Jobs::default();
        let (ok, _) = jobs.admit(running("a1", "alice"), now);
        assert!(ok.is_ok());
        // Alice's second start gets her running export back.
        let (refused, _) = jobs.admit(running("a2", "alice"), now);
        assert!(
            matches!(refused, Err(Refusal::Running(ref j)) if j.id == "a1"),
            "{refused:?}"
        );
        let (ok, _) = jobs.admit(running("b1", "bob"), now);
        assert!(ok.is_ok());
        // A third principal waits for one of the two.
        let (refused, _) = jobs.admit(running("c1", "carol"), now);
        assert!(matches!(refused, Err(Refusal::Busy)), "{refused:?}");
        jobs.get_mut("a1").unwrap().job.state = JobState::Done;
        let (ok, _) = jobs.admit(running("c1", "carol"), now);
        assert!(ok.is_ok());
        assert_eq!(jobs.slots.len(), 3);
        // Refusals add nothing.
        assert_eq!(
            jobs.slots
                .iter()
                .map(|s| s.job.id.as_str())
                .collect::<Vec<_>>(),
            ["a1", "b1", "c1"]
        );
    }

    #[test]
    fn no_start_while_too_many_bytes_wait_and_expired_files_come_back() {
        let now = Instant::now();
        let mut jobs = Jobs::default();
        let mut big = slot("big", JobState::Done, Some(now + KEEP_FOR));
        big.job.bytes = MAX_WAITING_BYTES;
        jobs.slots.push(big);
        jobs.slots.push(slot("old", JobState::Done, Some(now)));
        let (refused, gone) = jobs.admit(running("new", "alice"), now + Duration::from_secs(1));
        assert!(matches!(refused, Err(Refusal::Storage)), "{refused:?}");
        assert_eq!(gone, [PathBuf::from("old.tar")]);
        // Once the big one is downloaded, a start is admitted.
        jobs.get_mut("big").unwrap().job.state = JobState::Downloaded;
        let (ok, _) = jobs.admit(running("new", "alice"), now + Duration::from_secs(2));
        assert!(ok.is_ok());
    }

    #[test]
    fn ids_are_long_random_hex() {
        let (a, b) = (new_id(), new_id());
        assert!(valid_id(&a) && valid_id(&b) && a != b);
        assert!(!valid_id("../etc/passwd"));
        assert!(!valid_id(&"g".repeat(ID_LEN)));
    }
}

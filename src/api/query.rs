//! Analyst endpoints: search, single events and their proofs, checkpoints,
//! consistency proofs, patient-access reports and evidence bundles. Every
//! search, report and export is itself recorded in the ledger
//! (`system/siem_search`, `system/siem_export`): who asked and what they
//! asked, never the results.

use crate::auth::Principal;
use crate::auth::record::{AuditRecord, record};
use crate::event::{Category, Outcome, Timestamp};
use crate::index::{AggRequest, Hit, QueryError, SearchIndex, SearchRequest};
use crate::ledger::bundle::{BundleError, BundleProgress, BundleQuery, build_bundle_with};
use crate::ledger::proof::{LedgerReader, ProofBuildError};
use crate::pipeline::Pipeline;
use crate::pipeline::silence::parse_duration;
use crate::report::patient_access;
use axum::Json;
use axum::extract::{ConnectInfo, Extension, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
pub struct QueryState {
    pub index: Arc<SearchIndex>,
    pub data_dir: PathBuf,
    /// The log's signing key: evidence bundles carry a manifest it signs.
    pub key_file: PathBuf,
    pub pipeline: Pipeline,
}

pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

/// A client error found while reading request parameters.
pub struct BadRequest(pub(crate) String);

impl IntoResponse for BadRequest {
    fn into_response(self) -> Response {
        error(StatusCode::BAD_REQUEST, self.0)
    }
}

pub(crate) fn query_error(e: QueryError) -> Response {
    if e.is_client_error() {
        error(StatusCode::BAD_REQUEST, e.to_string())
    } else if matches!(e, QueryError::TooSlow { .. }) {
        error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
    } else {
        tracing::error!(error = %e, "search failed");
        error(StatusCode::INTERNAL_SERVER_ERROR, "search failed")
    }
}

pub(crate) fn parse_time(field: &str, v: &Option<String>) -> Result<Option<Timestamp>, BadRequest> {
    match v.as_deref() {
        None | Some("") => Ok(None),
        Some(s) => Timestamp::parse(s)
            .map(Some)
            .map_err(|e| BadRequest(format!("`{field}`: {e}"))),
    }
}

/// Records who asked what of the SIEM, before it is answered. A read of
/// patient data that cannot be recorded is not answered: the error is a
/// 503 with `Retry-After` (HIPAA audit controls: every access to ePHI,
/// the SIEM's own included, leaves a record).
pub(crate) async fn audit(
    pipeline: &Pipeline,
    peer: &SocketAddr,
    principal: &Principal,
    action: &'static str,
    attrs: Value,
    message: String,
) -> Result<(), Response> {
    let rec = AuditRecord {
        category: Category::System,
        action,
        outcome: Outcome::Success,
        attrs,
        message,
        id: None,
    };
    match record(pipeline, Some(peer.ip()), Some(principal), rec).await {
        Ok(()) => Ok(()),
        Err(e) => {
            tracing::error!(error = %e, action, "could not record a SIEM audit event; the request is refused");
            Err((
                StatusCode::SERVICE_UNAVAILABLE,
                [(axum::http::header::RETRY_AFTER, "1")],
                Json(json!({"error": format!(
                    "this request could not be recorded in the audit log ({e}), so it was not answered; retry shortly"
                )})),
            )
                .into_response())
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    #[serde(default)]
    q: String,
    from: Option<String>,
    to: Option<String>,
    limit: Option<usize>,
    cursor: Option<u64>,
    /// POST only: aggregations.
    #[serde(default)]
    aggs: Vec<AggSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum AggSpec {
    /// Counts by field: `{"terms": {"field": "actor.ip", "size": 10}}`.
    Terms { field: String, size: Option<usize> },
    /// Counts per interval of event time: `{"date_histogram": {"interval": "1h"}}`.
    DateHistogram { interval: String },
}

fn to_request(p: &SearchParams) -> Result<SearchRequest, BadRequest> {
    let mut aggs = Vec::with_capacity(p.aggs.len());
    for a in &p.aggs {
        aggs.push(match a {
            AggSpec::Terms { field, size } => AggRequest::Terms {
                field: field.clone(),
                size: size.unwrap_or(10),
            },
            AggSpec::DateHistogram { interval } => AggRequest::DateHistogram {
                interval: parse_duration(interval)
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| {
                        BadRequest(format!(
                            "interval {interval:?} is not like 30s, 5m, 1h or 1d"
                        ))
                    })?,
            },
        });
    }
    Ok(SearchRequest {
        q: p.q.clone(),
        from: parse_time("from", &p.from)?,
        to: parse_time("to", &p.to)?,
        limit: p.limit.unwrap_or(100),
        cursor: p.cursor,
        aggs,
    })
}

async fn run_search(
    state: QueryState,
    peer: SocketAddr,
    principal: Principal,
    params: SearchParams,
) -> Response {
    let req = match to_request(&params) {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    if let Err(r) = audit(
        &state.pipeline,
        &peer,
        &principal,
        "siem_search",
        json!({"q": params.q, "from": params.from, "to": params.to, "limit": req.limit, "cursor": params.cursor,
               "aggs": params.aggs.len()}),
        format!("search: {}", params.q),
    )
    .await
    {
        return r;
    }
    let index = state.index.clone();
    match tokio::task::spawn_blocking(move || index.search(&req)).await {
        Ok(Ok(resp)) => Json(resp).into_response(),
        Ok(Err(e)) => query_error(e),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("search task failed: {e}"),
        ),
    }
}

pub async fn get_search(
    State(state): State<QueryState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(principal): Extension<Principal>,
    Query(params): Query<SearchParams>,
) -> Response {
    if !params.aggs.is_empty() {
        return error(StatusCode::BAD_REQUEST, "aggregations need POST /v1/search");
    }
    run_search(state, peer, principal, params).await
}

pub async fn post_search(
    State(state): State<QueryState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(principal): Extension<Principal>,
    body: Result<Json<SearchParams>, axum::extract::rejection::JsonRejection>,
) -> Response {
    match body {
        Ok(Json(params)) => run_search(state, peer, principal, params).await,
        Err(e) => error(e.status(), e.body_text()),
    }
}

/// `GET /v1/search/fields`: the fields a query can name, their kind and
/// whether they can be counted (the console's query completion). The schema
/// only, no events, so nothing to record.
pub async fn get_fields() -> Response {
    Json(json!({"fields": crate::index::searchable_fields()})).into_response()
}

pub async fn get_event(
    State(state): State<QueryState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(principal): Extension<Principal>,
    Path(index): Path<u64>,
) -> Response {
    // One event may be one patient's record: its read is recorded too.
    if let Err(r) = audit(
        &state.pipeline,
        &peer,
        &principal,
        "siem_search",
        json!({"event": index}),
        format!("event {index}"),
    )
    .await
    {
        return r;
    }
    let search = state.index.clone();
    let req = SearchRequest {
        q: format!("index:{index}"),
        limit: 1,
        ..SearchRequest::default()
    };
    match tokio::task::spawn_blocking(move || search.search(&req)).await {
        Ok(Ok(resp)) => match resp.hits.into_iter().next() {
            Some(hit) => Json(hit).into_response(),
            None => error(
                StatusCode::NOT_FOUND,
                format!(
                    "no event {index} (yet: events are searchable about a second after acknowledgement)"
                ),
            ),
        },
        Ok(Err(e)) => query_error(e),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("task failed: {e}"),
        ),
    }
}

fn proof_error(e: ProofBuildError) -> Response {
    match e {
        ProofBuildError::NotSealed(_) | ProofBuildError::NoCheckpoint => {
            let mut r = error(StatusCode::CONFLICT, e.to_string());
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
        ProofBuildError::NoSuchEvent { .. } => error(StatusCode::NOT_FOUND, e.to_string()),
        ProofBuildError::BadSizes { .. } => error(StatusCode::BAD_REQUEST, e.to_string()),
        other => {
            tracing::error!(error = %other, "proof failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "proof could not be built",
            )
        }
    }
}

async fn with_reader<T: Send + 'static>(
    data: PathBuf,
    f: impl FnOnce(&LedgerReader) -> Result<T, ProofBuildError> + Send + 'static,
) -> Result<T, Response> {
    match tokio::task::spawn_blocking(move || LedgerReader::open(&data).and_then(|r| f(&r))).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(proof_error(e)),
        Err(e) => Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("task failed: {e}"),
        )),
    }
}

pub async fn get_proof(
    State(state): State<QueryState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(principal): Extension<Principal>,
    Path(index): Path<u64>,
) -> Response {
    // A proof carries the entry itself: its read is recorded like one.
    if let Err(r) = audit(
        &state.pipeline,
        &peer,
        &principal,
        "siem_search",
        json!({"proof": index}),
        format!("proof of event {index}"),
    )
    .await
    {
        return r;
    }
    match with_reader(state.data_dir.clone(), move |r| r.inclusion_proof(index)).await {
        Ok(p) => Json(p).into_response(),
        Err(r) => r,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointParams {
    /// `witnessed=1`: the checkpoint with its witnesses' cosignatures.
    witnessed: Option<u8>,
}

pub async fn get_checkpoint(
    State(state): State<QueryState>,
    Query(p): Query<CheckpointParams>,
) -> Response {
    if p.witnessed == Some(1) {
        let path = crate::ledger::log::LedgerPaths::new(&state.data_dir)
            .ledger
            .join(crate::witness::store::WITNESSED_FILE);
        let max = crate::ledger::note::MAX_NOTE_LEN as u64;
        return match tokio::task::spawn_blocking(move || crate::bounded::read_to_string(&path, max))
            .await
        {
            Ok(Ok(text)) => {
                ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => error(
                StatusCode::NOT_FOUND,
                "no witness has cosigned a checkpoint yet",
            ),
            Ok(Err(e)) => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("witnessed checkpoint: {e}"),
            ),
            Err(e) => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("task failed: {e}"),
            ),
        };
    }
    match with_reader(state.data_dir.clone(), |r| {
        Ok(r.checkpoint_text().to_owned())
    })
    .await
    {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response(),
        Err(r) => r,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyParams {
    from: u64,
    to: Option<u64>,
}

pub async fn get_consistency(
    State(state): State<QueryState>,
    Query(p): Query<ConsistencyParams>,
) -> Response {
    let result = with_reader(state.data_dir.clone(), move |r| {
        let latest = r.checkpoint().size;
        if p.to.is_some_and(|to| to != latest) {
            return Err(ProofBuildError::BadSizes {
                old: p.from,
                new: p.to.unwrap_or(latest),
                latest,
            });
        }
        r.consistency_proof(p.from)
    })
    .await;
    match result {
        Ok(p) => Json(p).into_response(),
        Err(r) => r,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportParams {
    patient: String,
    from: Option<String>,
    to: Option<String>,
    format: Option<String>,
}

/// Most events a single report or bundle may cover.
pub const MAX_REPORT_EVENTS: usize = 100_000;

pub async fn get_patient_access(
    State(state): State<QueryState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(principal): Extension<Principal>,
    Query(p): Query<ReportParams>,
) -> Response {
    let (from, to) = match (parse_time("from", &p.from), parse_time("to", &p.to)) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(r), _) | (_, Err(r)) => return r.into_response(),
    };
    let format = p.format.clone().unwrap_or_else(|| "json".into());
    if !matches!(format.as_str(), "json" | "csv" | "html") {
        return error(StatusCode::BAD_REQUEST, "format must be json, csv or html");
    }
    if let Err(r) = audit(
        &state.pipeline,
        &peer,
        &principal,
        "siem_search",
        json!({"report": "patient-access", "patient": p.patient, "from": p.from, "to": p.to, "format": format}),
        format!("patient-access report for {}", p.patient),
    )
    .await
    {
        return r;
    }
    let index = state.index.clone();
    let patient = p.patient.clone();
    let built = tokio::task::spawn_blocking(move || {
        let req = SearchRequest {
            q: patient_access::query_for(&patient),
            from,
            to,
            ..SearchRequest::default()
        };
        let hits = Hit::decode_all(&index.search_all(&req, MAX_REPORT_EVENTS)?)?;
        Ok::<_, QueryError>(patient_access::build(
            &patient,
            from.as_ref(),
            to.as_ref(),
            hits,
        ))
    })
    .await;
    let report = match built {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return query_error(e),
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("report task failed: {e}"),
            );
        }
    };
    match format.as_str() {
        "csv" => match patient_access::to_csv(&report) {
            Ok(csv) => ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv).into_response(),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        },
        "html" => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            patient_access::to_html(&report),
        )
            .into_response(),
        _ => Json(report).into_response(),
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportBody {
    pub(crate) q: String,
    pub(crate) from: Option<String>,
    pub(crate) to: Option<String>,
}

/// Why an evidence bundle could not be built (`POST /v1/export` and the
/// console's export jobs, `api::exports`).
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error("event {0} is not sealed yet; retry shortly")]
    NotSealed(u64),
    #[error("export failed: {0}")]
    Build(String),
    #[error("export task failed: {0}")]
    Task(String),
}

impl IntoResponse for ExportError {
    fn into_response(self) -> Response {
        match self {
            ExportError::Query(e) => query_error(e),
            ExportError::NotSealed(_) => error(StatusCode::CONFLICT, self.to_string()),
            ExportError::Build(ref e) => {
                tracing::error!(error = %e, "export failed");
                error(StatusCode::INTERNAL_SERVER_ERROR, self.to_string())
            }
            ExportError::Task(_) => error(StatusCode::INTERNAL_SERVER_ERROR, self.to_string()),
        }
    }
}

impl ExportBody {
    /// The checked range, or the client's mistake.
    pub(crate) fn range(&self) -> Result<(Option<Timestamp>, Option<Timestamp>), BadRequest> {
        Ok((parse_time("from", &self.from)?, parse_time("to", &self.to)?))
    }

    /// The bundle's query as its manifest records it: asked by `peer`, now.
    pub(crate) fn bundle_query(&self, peer: &SocketAddr) -> BundleQuery {
        BundleQuery {
            q: self.q.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
            requested_by: Some(peer.ip().to_string()),
            created: Timestamp::now().to_string(),
        }
    }

    /// The audit record's attributes (who asked is the record's actor).
    pub(crate) fn audit_attrs(&self) -> Value {
        json!({"q": self.q, "from": self.from, "to": self.to})
    }
}

/// The ledger indices of the events an export covers (on a blocking thread).
pub(crate) async fn export_indices(
    state: &QueryState,
    body: &ExportBody,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
) -> Result<Vec<u64>, ExportError> {
    let index = state.index.clone();
    let req = SearchRequest {
        q: body.q.clone(),
        from,
        to,
        ..SearchRequest::default()
    };
    match tokio::task::spawn_blocking(move || index.search_all(&req, MAX_REPORT_EVENTS)).await {
        Ok(Ok(hits)) => Ok(hits.iter().map(|h| h.index).collect()),
        Ok(Err(e)) => Err(ExportError::Query(e)),
        Err(e) => Err(ExportError::Task(e.to_string())),
    }
}

/// Builds the bundle of `indices` into a fresh `open()` (on a blocking
/// thread), reporting progress. Matching events acknowledged in the last
/// second may not be sealed yet: waits for the next checkpoint (up to about
/// five seconds, then [`ExportError::NotSealed`]) rather than leave them
/// out, starting over in a fresh `open()`.
pub(crate) async fn build_export<W, O>(
    state: &QueryState,
    query: BundleQuery,
    indices: Vec<u64>,
    open: O,
    progress: Arc<dyn Fn(BundleProgress) + Send + Sync>,
) -> Result<W, ExportError>
where
    W: std::io::Write + Send + 'static,
    O: Fn() -> std::io::Result<W> + Clone + Send + 'static,
{
    let indices = Arc::new(indices);
    let mut attempts = 0;
    loop {
        let (data, key_file, q, idx, open, progress) = (
            state.data_dir.clone(),
            state.key_file.clone(),
            query.clone(),
            indices.clone(),
            open.clone(),
            progress.clone(),
        );
        let built = tokio::task::spawn_blocking(move || {
            let signer = crate::ledger::keys::load_signer(&key_file).map_err(|e| e.to_string())?;
            let reader = LedgerReader::open(&data).map_err(|e| e.to_string())?;
            let mut out = open().map_err(|e| e.to_string())?;
            match build_bundle_with(&reader, &signer, &q, &idx, &mut out, &mut |p| progress(p)) {
                Ok(_) => Ok(Ok(out)),
                Err(BundleError::NotSealed(i)) => Ok(Err(i)),
                Err(e) => Err(e.to_string()),
            }
        })
        .await;
        match built {
            Ok(Ok(Ok(out))) => return Ok(out),
            Ok(Ok(Err(index))) if attempts < 20 => {
                attempts += 1;
                tracing::debug!(index, "waiting for the next seal before exporting");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Ok(Ok(Err(index))) => return Err(ExportError::NotSealed(index)),
            Ok(Err(e)) => return Err(ExportError::Build(e)),
            Err(e) => return Err(ExportError::Task(e.to_string())),
        }
    }
}

/// `POST /v1/export`: the events matching a query and range, each with its
/// inclusion proof, the checkpoint they prove against, the public key, a
/// signed manifest and a README, as one tar file that `sealtrail verify
/// --bundle` checks offline.
pub async fn post_export(
    State(state): State<QueryState>,
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
    if let Err(r) = audit(
        &state.pipeline,
        &peer,
        &principal,
        "siem_export",
        body.audit_attrs(),
        format!("evidence bundle export: {}", body.q),
    )
    .await
    {
        return r;
    }
    let indices = match export_indices(&state, &body, from, to).await {
        Ok(i) => i,
        Err(e) => return e.into_response(),
    };
    let query = body.bundle_query(&peer);
    match build_export(&state, query, indices, || Ok(Vec::new()), Arc::new(|_| {})).await {
        Ok(tar) => {
            let mut r = tar.into_response();
            let headers = r.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-tar"),
            );
            headers.insert(
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"sealtrail-evidence.tar\""),
            );
            r
        }
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_read_that_cannot_be_recorded_is_not_answered() {
        let pipeline = crate::pipeline::closed_pipeline();
        let peer = SocketAddr::from(([127, 0, 0, 1], 9));
        let principal = Principal {
            name: "analyst-1".into(),
            kind: crate::auth::PrincipalKind::Token,
            roles: crate::auth::RoleSet::of(&[crate::auth::Role::Analyst]),
            authenticated_at_ms: 0,
        };
        let refused = audit(
            &pipeline,
            &peer,
            &principal,
            "siem_search",
            json!({"q": "*"}),
            "search".into(),
        )
        .await
        .expect_err("no audit record, no answer");
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refused.headers()[axum::http::header::RETRY_AFTER], "1");
    }
}

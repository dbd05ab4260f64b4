//! HTTP routes: the ingest endpoints of `sources/` plus service endpoints.
//! `app()` is separate from serving so tests can drive the router directly.

pub mod alerts;
pub mod catchup;
pub mod console;
pub mod dashboards;
pub mod exports;
pub mod headers;
pub mod incidents;
pub mod integrity;
pub mod peer;
pub mod query;
pub mod session;
pub mod silence_preview;
pub mod silences;
pub(crate) mod spool;

pub use peer::ClientCertificate;

use crate::auth::gate::{AuthState, gate};
use crate::pipeline::Metrics;
use crate::sources::http::{HttpSource, post_events, post_fhir};
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub ingest: HttpSource,
    pub metrics: Arc<Metrics>,
    /// Search, proofs and reports; absent where only ingestion is served.
    pub query: Option<query::QueryState>,
    /// Incidents and silences; absent when response is off.
    pub response: Option<crate::response::ResponseHandle>,
    /// Who may call what: every route passes `auth::gate`.
    pub auth: Arc<AuthState>,
    /// Console sign-in (`/v1/session`); absent where people cannot sign in.
    pub people: Option<Arc<crate::auth::people::People>>,
    /// The console shell and what it needs beside the API.
    pub console: ConsoleState,
}

/// What the console needs beside the role-checked API.
#[derive(Clone, Debug, Default)]
pub struct ConsoleState {
    /// The log's verifier key (C2SP vkey line) served at `/v1/log/vkey`,
    /// so the browser can check checkpoint signatures itself.
    pub vkey: Option<String>,
    /// The data directory whose one-time sign-in links are honoured
    /// (`[console] sign_in_links`); `None`: off.
    pub sign_in_links: Option<std::path::PathBuf>,
}

/// Largest body of a search, export, incident or silence request (the
/// query itself is at most `index::query::MAX_QUERY_BYTES`); larger ones
/// are refused with 413 before they are read. Ingest has its own limits.
pub const MAX_REQUEST_BODY: usize = 64 * 1024;

pub fn app(state: AppState) -> Router {
    let ingest = Router::new()
        .route("/v1/events", post(post_events))
        .route("/fhir/AuditEvent", post(post_fhir))
        .with_state(state.ingest.clone());
    let mut router = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state.clone())
        .merge(ingest);
    if let Some(q) = state.query.clone() {
        router = router.merge(
            Router::new()
                .route(
                    "/v1/search",
                    get(query::get_search).post(query::post_search),
                )
                .route("/v1/search/fields", get(query::get_fields))
                .route("/v1/events/{index}", get(query::get_event))
                .route("/v1/events/{index}/proof", get(query::get_proof))
                .route("/v1/checkpoint", get(query::get_checkpoint))
                .route("/v1/consistency", get(query::get_consistency))
                .route("/v1/reports/patient-access", get(query::get_patient_access))
                .route("/v1/export", post(query::post_export))
                .route("/v1/alerts", get(alerts::get_alerts))
                .with_state(q.clone())
                .merge(dashboards::routes())
                .layer(axum::extract::DefaultBodyLimit::max(MAX_REQUEST_BODY)),
        );
        router = router.merge(exports::routes(q.clone()));
        router = router.merge(catchup::routes(q.pipeline.clone()));
        router = router.merge(integrity::routes(q));
    }
    if let Some(r) = state.response.clone() {
        router = router.merge(
            Router::new()
                .route("/v1/incidents", get(incidents::list))
                .route("/v1/incidents/{id}", get(incidents::get_one))
                .route(
                    "/v1/incidents/{id}/ack",
                    get(incidents::link_page).post(incidents::ack),
                )
                .route("/v1/incidents/{id}/resolve", post(incidents::resolve))
                .route("/v1/incidents/{id}/note", post(incidents::note))
                .route("/v1/silences", get(silences::list).post(silences::create))
                .route("/v1/silences/{id}", axum::routing::delete(silences::delete))
                .route("/assets/ack.js", get(incidents::ack_js))
                .with_state(r.clone())
                .layer(axum::extract::DefaultBodyLimit::max(MAX_REQUEST_BODY)),
        );
        router = router.merge(silence_preview::routes(r, state.ingest.pipeline.clone()));
    }
    if let Some(p) = state.people {
        router = router.merge(session::routes(
            p,
            state.ingest.pipeline.clone(),
            state.console.sign_in_links.clone(),
        ));
    }
    router = router.merge(console::routes(state.console.vkey.clone()));
    router
        // Deny by default: every matched route passes the gate, which
        // refuses routes missing from `auth::gate::ROUTES`.
        .route_layer(axum::middleware::from_fn_with_state(state.auth, gate))
        // Bodies are read with our own limit so oversize input can be recorded;
        // axum's default 2 MiB cap would refuse it first.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(axum::middleware::map_response(headers::security_headers))
        .layer(axum::middleware::map_response_with_state(
            state.metrics,
            count_response,
        ))
}

/// Counts every response by status class (`http_responses_total{class}`),
/// refusals by the gate and unknown routes included.
async fn count_response(
    State(metrics): State<Arc<Metrics>>,
    response: axum::response::Response,
) -> axum::response::Response {
    let class = match response.status().as_u16() {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    };
    metrics.http_responses.with_label_values(&[class]).inc();
    response
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

/// Liveness, and readiness too while the ledger cannot write: a probe that
/// restarts the service then loses nothing (restart recovery is the same
/// path the writer heals by) and an operator sees why at once.
async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    match ledger_unwritable(&state) {
        Some(reason) => not_ready(&reason),
        None => (StatusCode::OK, "ok\n".to_owned()),
    }
}

/// Readiness: not ready while the ledger cannot write (DESIGN.md).
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match ledger_unwritable(&state) {
        Some(reason) => not_ready(&reason),
        None => (StatusCode::OK, "ready\n".to_owned()),
    }
}

fn ledger_unwritable(state: &AppState) -> Option<String> {
    state.ingest.pipeline.unwritable_reason()
}

fn not_ready(reason: &str) -> (StatusCode, String) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        format!("not ready: ledger cannot write ({reason})\n"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::extract::connect_info::MockConnectInfo;
    use axum::http::Request;
    use tower::ServiceExt;

    use crate::auth::tokens::{self, Tokens};
    use crate::auth::{Role, RoleSet};

    fn auth_for(pipeline: &crate::pipeline::Pipeline, data: &std::path::Path) -> Arc<AuthState> {
        let tokens = Arc::new(Tokens::open(data).unwrap());
        Arc::new(AuthState::new(
            tokens,
            None,
            pipeline.clone(),
            crate::auth::gate::RateLimits::default(),
        ))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_pipeline_answers_503_with_retry_after() {
        let dir = tempfile::tempdir().unwrap();
        let token = tokens::create(
            dir.path(),
            Some("sender"),
            RoleSet::of(&[Role::Ingest]),
            None,
        )
        .unwrap()
        .secret;
        let (pipeline, _appender, _requests) = crate::pipeline::stalled_pipeline().await;
        let metrics = pipeline.metrics().clone();
        let app = app(AppState {
            auth: auth_for(&pipeline, dir.path()),
            ingest: HttpSource {
                pipeline,
                limits: Arc::new(crate::sources::http::HttpLimits::default()),
            },
            metrics,
            query: None,
            response: None,
            people: None,
            console: ConsoleState::default(),
        })
        .layer(MockConnectInfo(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            9,
        ))));
        let body = r#"{"time":"2026-11-27T14:03:11Z","category":"auth","action":"login","outcome":"success"}"#;
        let response = app
            .oneshot(
                Request::post("/v1/events")
                    .header("authorization", format!("Bearer {token}"))
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(body))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_route_missing_from_the_table_is_refused_whoever_asks() {
        let dir = tempfile::tempdir().unwrap();
        let all = RoleSet::of(&Role::ALL);
        let token = tokens::create(dir.path(), Some("everything"), all, None)
            .unwrap()
            .secret;
        let (pipeline, _appender, _requests) = crate::pipeline::stalled_pipeline().await;
        let auth = auth_for(&pipeline, dir.path());
        // A route someone adds without declaring who may call it.
        let router = Router::new()
            .route("/v1/undeclared", get(|| async { "secret" }))
            .route("/healthz", get(|| async { "ok" }))
            .route_layer(axum::middleware::from_fn_with_state(auth, gate))
            .layer(MockConnectInfo(std::net::SocketAddr::from((
                [127, 0, 0, 1],
                9,
            ))));
        let req = |path: &str| {
            Request::get(path)
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap()
        };
        let r = router.clone().oneshot(req("/v1/undeclared")).await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let r = router.oneshot(req("/healthz")).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
}

//! HTTP routes: the ingest endpoints of `sources/` plus service endpoints.
//! `app()` is separate from serving so tests can drive the router directly.

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
}

pub fn app(state: AppState) -> Router {
    let ingest = Router::new()
        .route("/v1/events", post(post_events))
        .route("/fhir/AuditEvent", post(post_fhir))
        .with_state(state.ingest.clone());
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(state)
        .merge(ingest)
        // Bodies are read with our own limit so oversize input can be recorded;
        // axum's default 2 MiB cap would refuse it first.
        .layer(axum::extract::DefaultBodyLimit::disable())
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

async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, "ok\n")
}

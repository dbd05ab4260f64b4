//! `POST /v1/silences/preview`: what a silence would mute, before it is
//! created. The body and its checks are those of `POST /v1/silences`
//! ([`silence_from_body`]); the answer is `response::preview` over the
//! incidents the engine remembers, beside the silence as it would be
//! recorded. Nothing is recorded in the response state; the request is
//! audited as reads are (`system/siem_search` with
//! `attrs.silence_preview`), before it is answered.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, DefaultBodyLimit, Extension, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;

use crate::api::MAX_REQUEST_BODY;
use crate::api::incidents::error;
use crate::api::query::audit;
use crate::api::silences::{CreateBody, silence_from_body};
use crate::auth::Principal;
use crate::event::Timestamp;
use crate::pipeline::Pipeline;
use crate::response::ResponseHandle;
use crate::response::engine::silence_view;
use crate::response::preview::preview;

#[derive(Clone)]
pub struct PreviewState {
    response: ResponseHandle,
    pipeline: Pipeline,
}

pub fn routes(response: ResponseHandle, pipeline: Pipeline) -> Router {
    Router::new()
        .route("/v1/silences/preview", post(post_preview))
        .with_state(PreviewState { response, pipeline })
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BODY))
}

async fn post_preview(
    State(st): State<PreviewState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(principal): Extension<Principal>,
    body: Option<Json<CreateBody>>,
) -> Response {
    let now = Timestamp::now().unix_ms();
    let silence = match silence_from_body(body.map(|Json(b)| b), principal.qualified_name(), now) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    if let Err(r) = audit(
        &st.pipeline,
        &peer,
        &principal,
        "siem_search",
        json!({
            "silence_preview": true,
            "matchers": silence.record.matchers,
            "starts_at": silence.record.starts_at.to_string(),
            "ends_at": silence.record.ends_at.to_string(),
        }),
        "silence preview".to_owned(),
    )
    .await
    {
        return r;
    }
    // Up to 100,000 incidents through the matchers: off the async threads.
    let response = st.response.clone();
    let found = tokio::task::spawn_blocking(move || {
        let p = preview(&response.shared().book(), &silence, now);
        // As it would be recorded, but for the id creation gives it.
        let mut view = silence_view(&silence.record);
        if let Some(o) = view.as_object_mut() {
            o.remove("id");
        }
        (view, p)
    })
    .await;
    match found {
        Ok((silence, p)) => Json(json!({"silence": silence, "preview": p})).into_response(),
        Err(e) => error(500, format!("preview task failed: {e}")),
    }
}

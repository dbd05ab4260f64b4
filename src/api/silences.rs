//! Silences: `POST /v1/silences`, `GET /v1/silences`,
//! `DELETE /v1/silences/{id}`. Creation and deletion are
//! `system/incident_update` events (`silence_created`, `silence_deleted`).

use crate::auth::Principal;
use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::api::incidents::{error, reply};
use crate::event::Timestamp;
use crate::pipeline::silence::parse_duration;
use crate::response::engine::{MAX_TEXT, silence_view};
use crate::response::record::Matcher;
use crate::response::silence::MAX_SILENCE_DURATION;
use crate::response::{Command, ResponseHandle};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    matchers: Vec<Matcher>,
    /// Default: now.
    starts_at: Option<String>,
    /// One of `ends_at` (RFC 3339) and `duration` (`2h`).
    ends_at: Option<String>,
    duration: Option<String>,
    /// Refused when given: the creator is the authenticated principal.
    created_by: Option<String>,
    comment: Option<String>,
}

pub async fn create(
    State(h): State<ResponseHandle>,
    Extension(principal): Extension<Principal>,
    body: Option<Json<CreateBody>>,
) -> Response {
    let Some(Json(b)) = body else {
        return error(
            400,
            "send a JSON body: {\"matchers\": [{\"field\": \"rule_id\", \"value\": \"...\"}], \"duration\": \"2h\"}",
        );
    };
    if b.created_by.is_some() {
        return error(
            400,
            format!(
                "`created_by` is not taken: the silence is recorded as created by {}, the signed-in principal",
                principal.qualified_name()
            ),
        );
    }
    let by = principal.qualified_name();
    if b.comment
        .as_ref()
        .is_some_and(|c| c.chars().count() > MAX_TEXT)
    {
        return error(
            400,
            format!("`comment` is longer than {MAX_TEXT} characters"),
        );
    }
    let starts_at = match b.starts_at.as_deref().map(Timestamp::parse).transpose() {
        Ok(t) => t,
        Err(e) => return error(400, format!("`starts_at`: {e}")),
    };
    let ends_at = match (b.ends_at.as_deref(), b.duration.as_deref()) {
        (Some(e), None) => match Timestamp::parse(e) {
            Ok(t) => t,
            Err(e) => return error(400, format!("`ends_at`: {e}")),
        },
        (None, Some(d)) => {
            let Some(d) = parse_duration(d).filter(|d| !d.is_zero()) else {
                return error(400, format!("`duration`: {d:?} is not like 30m, 2h or 1d"));
            };
            if d > MAX_SILENCE_DURATION {
                return error(400, "`duration`: a silence lasts at most 30 days");
            }
            let base = starts_at.unwrap_or_else(Timestamp::now).unix_ms();
            match i64::try_from(d.as_millis())
                .ok()
                .and_then(|d| base.checked_add(d))
                .and_then(|ms| Timestamp::from_unix_ms(ms).ok())
            {
                Some(t) => t,
                None => return error(400, "`duration` is too long"),
            }
        }
        _ => return error(400, "give exactly one of `ends_at` and `duration`"),
    };
    reply(
        h.call(Command::CreateSilence {
            matchers: b.matchers,
            starts_at,
            ends_at,
            by,
            comment: b.comment,
        })
        .await,
        true,
    )
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {}

pub async fn list(State(h): State<ResponseHandle>, Query(_p): Query<ListParams>) -> Response {
    let book = h.shared().book();
    let now = Timestamp::now().unix_ms();
    let items: Vec<_> = book
        .silences
        .iter()
        .map(|s| {
            let mut v = silence_view(&s.record);
            v["active"] = json!(s.active_at(now));
            v
        })
        .collect();
    Json(json!({"silences": items})).into_response()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteParams {}

pub async fn delete(
    State(h): State<ResponseHandle>,
    Path(id): Path<String>,
    Extension(principal): Extension<Principal>,
    Query(_p): Query<DeleteParams>,
) -> Response {
    let by = principal.qualified_name();
    reply(h.call(Command::DeleteSilence { id, by }).await, false)
}

//! Silences: `POST /v1/silences`, `GET /v1/silences`,
//! `DELETE /v1/silences/{id}`. Creation and deletion are
//! `system/incident_update` events (`silence_created`, `silence_deleted`).

use crate::auth::Principal;
use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use thiserror::Error;

use crate::api::incidents::{error, reply};
use crate::event::Timestamp;
use crate::pipeline::silence::parse_duration;
use crate::response::engine::{MAX_TEXT, silence_view};
use crate::response::record::{Matcher, SilenceRecord};
use crate::response::silence::{MAX_SILENCE_DURATION, Silence, check_window, new_id};
use crate::response::{Command, ResponseHandle};

/// The body of `POST /v1/silences` and `POST /v1/silences/preview`.
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

/// What is wrong with a silence request (all answered 400).
#[derive(Debug, Error)]
pub enum SilenceRequestError {
    #[error(
        "send a JSON body: {{\"matchers\": [{{\"field\": \"rule_id\", \"value\": \"...\"}}], \"duration\": \"2h\"}}"
    )]
    NoBody,
    #[error(
        "`created_by` is not taken: the silence is recorded as created by {0}, the signed-in principal"
    )]
    CreatedBy(String),
    #[error("`comment` is longer than {MAX_TEXT} characters")]
    Comment,
    #[error("`starts_at`: {0}")]
    StartsAt(String),
    #[error("`ends_at`: {0}")]
    EndsAt(String),
    #[error("`duration`: {0:?} is not like 30m, 2h or 1d")]
    Duration(String),
    #[error("`duration`: a silence lasts at most 30 days")]
    DurationTooLong,
    #[error("give exactly one of `ends_at` and `duration`")]
    EndOrDuration,
    /// The time range (`check_window`) or the matchers (`Silence::new`).
    #[error("{0}")]
    Invalid(String),
}

impl IntoResponse for SilenceRequestError {
    fn into_response(self) -> Response {
        error(400, self.to_string())
    }
}

/// The one check of a silence request, for creation and preview alike:
/// the body as the silence `by` would create at `now_ms` (a new id, its
/// window within `check_window`'s limits, its matchers compiled).
pub fn silence_from_body(
    body: Option<CreateBody>,
    by: String,
    now_ms: i64,
) -> Result<Silence, SilenceRequestError> {
    let b = body.ok_or(SilenceRequestError::NoBody)?;
    if b.created_by.is_some() {
        return Err(SilenceRequestError::CreatedBy(by));
    }
    if b.comment
        .as_ref()
        .is_some_and(|c| c.chars().count() > MAX_TEXT)
    {
        return Err(SilenceRequestError::Comment);
    }
    let starts_at = match b.starts_at.as_deref().map(Timestamp::parse).transpose() {
        Ok(Some(t)) => t,
        Ok(None) => Timestamp::from_unix_ms(now_ms)
            .map_err(|e| SilenceRequestError::StartsAt(e.to_string()))?,
        Err(e) => return Err(SilenceRequestError::StartsAt(e.to_string())),
    };
    let ends_at = match (b.ends_at.as_deref(), b.duration.as_deref()) {
        (Some(e), None) => {
            Timestamp::parse(e).map_err(|e| SilenceRequestError::EndsAt(e.to_string()))?
        }
        (None, Some(d)) => {
            let Some(dur) = parse_duration(d).filter(|d| !d.is_zero()) else {
                return Err(SilenceRequestError::Duration(d.to_owned()));
            };
            if dur > MAX_SILENCE_DURATION {
                return Err(SilenceRequestError::DurationTooLong);
            }
            i64::try_from(dur.as_millis())
                .ok()
                .and_then(|d| starts_at.unix_ms().checked_add(d))
                .and_then(|ms| Timestamp::from_unix_ms(ms).ok())
                .ok_or(SilenceRequestError::DurationTooLong)?
        }
        _ => return Err(SilenceRequestError::EndOrDuration),
    };
    check_window(starts_at.unix_ms(), ends_at.unix_ms(), now_ms)
        .map_err(SilenceRequestError::Invalid)?;
    Silence::new(SilenceRecord {
        id: new_id(),
        matchers: b.matchers,
        starts_at,
        ends_at,
        created_by: by,
        comment: b.comment,
    })
    .map_err(SilenceRequestError::Invalid)
}

pub async fn create(
    State(h): State<ResponseHandle>,
    Extension(principal): Extension<Principal>,
    body: Option<Json<CreateBody>>,
) -> Response {
    let silence = match silence_from_body(
        body.map(|Json(b)| b),
        principal.qualified_name(),
        Timestamp::now().unix_ms(),
    ) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    reply(
        h.call(Command::CreateSilence {
            record: silence.record,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: serde_json::Value) -> Option<CreateBody> {
        Some(serde_json::from_value(v).unwrap())
    }

    #[test]
    fn one_check_turns_a_body_into_a_silence_or_names_what_is_wrong() {
        let now = Timestamp::parse("2026-12-08T10:00:00Z").unwrap().unix_ms();
        let m = json!([{"field": "rule_id", "value": "brute-force"}]);
        let s = silence_from_body(
            body(
                json!({"matchers": m, "starts_at": "2026-12-08T11:00:00Z", "duration": "2h",
                        "comment": "patching"}),
            ),
            "user:ann".into(),
            now,
        )
        .unwrap();
        assert!(s.record.id.starts_with("sil-"));
        assert_eq!(s.record.created_by, "user:ann");
        assert_eq!(s.record.ends_at.to_string(), "2026-12-08T13:00:00Z");
        assert_eq!(s.record.comment.as_deref(), Some("patching"));
        // Without `starts_at` it starts at `now`.
        let s = silence_from_body(
            body(json!({"matchers": m, "duration": "30m"})),
            "u".into(),
            now,
        )
        .unwrap();
        assert_eq!(s.record.starts_at.unix_ms(), now);
        let err = |v| {
            silence_from_body(body(v), "user:ann".into(), now)
                .unwrap_err()
                .to_string()
        };
        assert!(
            err(json!({"matchers": m, "duration": "1h", "created_by": "eve"})).contains("user:ann")
        );
        assert!(err(json!({"matchers": m})).contains("exactly one"));
        assert!(err(json!({"matchers": m, "duration": "soon"})).contains("not like"));
        assert!(err(json!({"matchers": m, "duration": "31d"})).contains("30 days"));
        assert!(err(json!({"matchers": m, "ends_at": "2026-12-08T09:00:00Z"})).contains("past"));
        assert!(err(json!({"matchers": [], "duration": "1h"})).contains("at least one"));
        assert!(
            err(json!({"matchers": m, "duration": "1h", "comment": "x".repeat(MAX_TEXT + 1)}))
                .contains("longer")
        );
        assert!(
            silence_from_body(None, "u".into(), now)
                .unwrap_err()
                .to_string()
                .starts_with("send a JSON body")
        );
    }
}

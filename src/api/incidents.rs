//! Incidents: `GET /v1/incidents`, `GET /v1/incidents/{id}`,
//! `POST /v1/incidents/{id}/ack|resolve|note` and the one-click
//! acknowledgement link `/v1/incidents/{id}/ack?token=...`. Every change
//! is a `system/incident_update` event, durable before the reply.
//!
//! The link acknowledges only on `POST`: mail security gateways (Safe
//! Links, URL Defense, ...) fetch every link in a message with `GET`
//! before a person sees it, and an acknowledgement on `GET` would stop the
//! escalation of every incident unseen. `GET` answers a page whose form
//! posts back to the same address, submitted by the page itself, so a
//! person's click still acknowledges at once (a button when scripts are off).

use crate::auth::Principal;
use crate::html::escape;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::query::parse_time;
use crate::response::engine::MAX_TEXT;
use crate::response::state::Lifecycle;
use crate::response::{ApiError, Command, ResponseHandle};

/// Most incidents one page may hold.
pub const MAX_INCIDENTS_PAGE: usize = 1000;

pub(crate) fn error(status: u16, message: impl Into<String>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(json!({"error": message.into()}))).into_response()
}

pub(crate) fn reply(r: Result<Value, ApiError>, created: bool) -> Response {
    match r {
        Ok(v) if created => (StatusCode::CREATED, Json(v)).into_response(),
        Ok(v) => Json(v).into_response(),
        Err(e) => error(e.status, e.message),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// open | acknowledged | resolved
    state: Option<String>,
    /// Opened at or after / before (RFC 3339).
    from: Option<String>,
    to: Option<String>,
    limit: Option<usize>,
    /// From the previous page's `cursor`.
    cursor: Option<String>,
}

fn parse_cursor(c: &str) -> Option<(i64, String)> {
    let (ms, id) = c.split_once('.')?;
    Some((ms.parse().ok()?, id.to_owned()))
}

pub async fn list(State(h): State<ResponseHandle>, Query(p): Query<ListParams>) -> Response {
    let state = match p.state.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => match Lifecycle::parse(s) {
            Some(l) => Some(l),
            None => {
                return error(400, "`state` must be open, acknowledged or resolved");
            }
        },
    };
    let (from, to) = match (parse_time("from", &p.from), parse_time("to", &p.to)) {
        (Ok(f), Ok(t)) => (f.map(|t| t.unix_ms()), t.map(|t| t.unix_ms())),
        (Err(r), _) | (_, Err(r)) => return r.into_response(),
    };
    let limit = p.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_INCIDENTS_PAGE {
        return error(
            400,
            format!("`limit` must be between 1 and {MAX_INCIDENTS_PAGE}"),
        );
    }
    let cursor = match p.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => match parse_cursor(c) {
            Some(c) => Some(c),
            None => return error(400, "`cursor` is not one this API returned"),
        },
    };
    let shared = h.shared();
    let book = shared.book();
    let mut out = Vec::new();
    let mut next = None;
    for inc in book.list(cursor.as_ref()) {
        if state.is_some_and(|s| inc.state != s)
            || from.is_some_and(|f| inc.opened_at < f)
            || to.is_some_and(|t| inc.opened_at > t)
        {
            continue;
        }
        if out.len() == limit {
            break;
        }
        out.push(inc.view(&shared.oncall, false));
        next = Some(format!("{}.{}", inc.opened_at, inc.id));
    }
    if out.len() < limit {
        next = None;
    }
    Json(json!({"incidents": out, "cursor": next})).into_response()
}

pub async fn get_one(State(h): State<ResponseHandle>, Path(id): Path<String>) -> Response {
    let shared = h.shared();
    let book = shared.book();
    match book.incidents.get(&id) {
        Some(i) => Json(i.view(&shared.oncall, true)).into_response(),
        None => error(404, format!("no incident {id}")),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    /// Refused when given: who acts is the authenticated principal.
    by: Option<String>,
    note: Option<String>,
    assignee: Option<String>,
}

/// A trimmed text field; the error is the 400 message.
fn text(field: &str, v: Option<String>, required: bool) -> Result<Option<String>, String> {
    match v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()) {
        None if required => Err(format!("`{field}` is required")),
        Some(s) if s.chars().count() > MAX_TEXT => {
            Err(format!("`{field}` is longer than {MAX_TEXT} characters"))
        }
        v => Ok(v),
    }
}

fn body(b: Option<Json<ActionBody>>) -> ActionBody {
    b.map(|Json(b)| b).unwrap_or_default()
}

/// The JSON body of `POST .../ack` (read by hand: the same route takes the
/// link's form post, whose body is not JSON). Empty means no fields.
fn ack_body(headers: &HeaderMap, b: &[u8]) -> Result<ActionBody, (u16, String)> {
    if b.iter().all(u8::is_ascii_whitespace) {
        return Ok(ActionBody::default());
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    if !json {
        return Err((415, "the body must be application/json".into()));
    }
    serde_json::from_slice(b).map_err(|e| (400, format!("invalid JSON body: {e}")))
}

/// Who acts (the principal), `note` and `assignee` of an action, trimmed
/// and checked; the error is the 400 message.
fn fields(
    b: ActionBody,
    principal: &Principal,
) -> Result<(String, Option<String>, Option<String>), String> {
    if b.by.is_some() {
        return Err(format!(
            "`by` is not taken: the action is recorded as made by {}, the signed-in principal",
            principal.qualified_name()
        ));
    }
    let by = principal.qualified_name();
    Ok((
        by,
        text("note", b.note, false)?,
        text("assignee", b.assignee, false)?,
    ))
}

/// `POST .../ack`: the API (JSON body), or the link's form post (`token`
/// in the query).
pub async fn ack(
    State(h): State<ResponseHandle>,
    Path(id): Path<String>,
    Query(p): Query<LinkParams>,
    principal: Option<Extension<Principal>>,
    headers: HeaderMap,
    b: Bytes,
) -> Response {
    if let Some(token) = p.token {
        return link_ack(h, id, token, &headers).await;
    }
    // The gate lets a request without credentials through only with a link token.
    let Some(Extension(principal)) = principal else {
        return error(401, "authentication required");
    };
    let b = match ack_body(&headers, &b) {
        Ok(b) => b,
        Err((status, message)) => return error(status, message),
    };
    let (by, note, assignee) = match fields(b, &principal) {
        Ok(f) => f,
        Err(r) => return error(400, r),
    };
    reply(
        h.call(Command::Ack {
            id,
            by,
            note,
            assignee,
        })
        .await,
        false,
    )
}

pub async fn resolve(
    State(h): State<ResponseHandle>,
    Path(id): Path<String>,
    Extension(principal): Extension<Principal>,
    b: Option<Json<ActionBody>>,
) -> Response {
    let b = body(b);
    if b.assignee.is_some() {
        return error(400, "`assignee` is not taken when resolving; use /note");
    }
    let (by, note, _) = match fields(b, &principal) {
        Ok(f) => f,
        Err(r) => return error(400, r),
    };
    reply(h.call(Command::Resolve { id, by, note }).await, false)
}

pub async fn note(
    State(h): State<ResponseHandle>,
    Path(id): Path<String>,
    Extension(principal): Extension<Principal>,
    b: Option<Json<ActionBody>>,
) -> Response {
    let (by, note, assignee) = match fields(body(b), &principal) {
        Ok(f) => f,
        Err(r) => return error(400, r),
    };
    if note.is_none() && assignee.is_none() {
        return error(400, "give a `note`, an `assignee` or both");
    }
    reply(
        h.call(Command::Note {
            id,
            by,
            note: note.unwrap_or_default(),
            assignee,
        })
        .await,
        false,
    )
}

#[derive(Debug, Default, Deserialize)]
pub struct LinkParams {
    token: Option<String>,
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json") && !a.contains("text/html"))
}

/// `GET` of the link: changes nothing (see the module docs). A browser gets
/// a page that posts the link back by itself; JSON clients are told to POST.
pub async fn link_page(
    Path(id): Path<String>,
    Query(p): Query<LinkParams>,
    headers: HeaderMap,
) -> Response {
    if p.token.as_deref().is_none_or(str::is_empty) {
        return page(
            400,
            "Not acknowledged",
            "the acknowledgement link has no token",
        );
    }
    if wants_json(&headers) {
        return error(
            405,
            "the acknowledgement link acknowledges on POST to the same address",
        );
    }
    let id = escape(&id);
    // The empty action posts to this same address, token included.
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\">\
         <meta name=\"robots\" content=\"noindex\">\
         <title>Acknowledge incident {id}</title></head><body>\
         <h1>Acknowledge incident {id}</h1>\
         <form method=\"post\"><button type=\"submit\">Acknowledge</button></form>\
         <script src=\"/assets/ack.js\"></script></body></html>"
    );
    (
        StatusCode::OK,
        [(header::CACHE_CONTROL, "no-store")],
        Html(body),
    )
        .into_response()
}

/// The link page's script, served as a file: the content security policy
/// allows no inline script.
pub async fn ack_js() -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        "document.forms[0].submit();\n",
    )
        .into_response()
}

fn page(status: u16, title: &str, text: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        Html(format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
             <body><h1>{title}</h1><p>{text}</p></body></html>"
        )),
    )
        .into_response()
}

/// The link's `POST`. Answers HTML to a browser, JSON when asked for it.
async fn link_ack(h: ResponseHandle, id: String, token: String, headers: &HeaderMap) -> Response {
    let r = if token.is_empty() {
        Err(ApiError {
            status: 400,
            message: "the acknowledgement link has no token".into(),
        })
    } else {
        h.call(Command::LinkAck {
            id: id.clone(),
            token,
        })
        .await
    };
    if wants_json(headers) {
        return reply(r, false);
    }
    let (status, title, text) = match &r {
        Ok(v) => (
            200,
            "Incident acknowledged",
            format!(
                "Incident {} ({}) is acknowledged. Escalation has stopped.",
                escape(&id),
                escape(v["title"].as_str().unwrap_or_default())
            ),
        ),
        Err(e) => (e.status, "Not acknowledged", escape(&e.message)),
    };
    page(status, title, &text)
}

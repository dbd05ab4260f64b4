//! Console sign-in: `POST /v1/session` (password + TOTP code) sets the
//! session cookie, `GET` says who is signed in, `DELETE` signs out, and
//! `POST /v1/session/reauth` proves identity again (exports will want a
//! recent one). Every outcome is a ledger event (`auth/login`, `logout`,
//! `account_lockout`, `session_timeout`, `mfa_challenge`); when it cannot
//! be recorded the request fails with 503, so no sign-in goes unrecorded.
//!
//! Every failed sign-in gets the same answer, whatever the reason (kept in
//! the ledger only).

use crate::auth::people::{COOKIE_NAME, People, SessionLookup, Verdict};
use crate::auth::record::{AuditRecord, record};
use crate::auth::{Principal, PrincipalKind};
use crate::event::{Category, Outcome, Timestamp};
use crate::pipeline::Pipeline;
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::Path;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Password checks running at once: each holds 19 MiB and a core for tens
/// of milliseconds, so a flood of sign-ins queues here instead of taking
/// the machine's memory.
const CONCURRENT_PASSWORD_CHECKS: usize = 4;

#[derive(Clone)]
pub struct SessionState {
    pub people: Arc<People>,
    pub pipeline: Pipeline,
    checks: Arc<Semaphore>,
    /// The data directory whose one-time sign-in links are honoured;
    /// `None`: links are off (`[console] sign_in_links`), the route is absent.
    links: Option<Arc<std::path::PathBuf>>,
}

pub fn routes(
    people: Arc<People>,
    pipeline: Pipeline,
    links: Option<std::path::PathBuf>,
) -> Router {
    let with_links = links.is_some();
    let state = SessionState {
        people,
        pipeline,
        checks: Arc::new(Semaphore::new(CONCURRENT_PASSWORD_CHECKS)),
        links: links.map(Arc::new),
    };
    let mut router = Router::new()
        .route("/v1/session", post(sign_in).get(who_am_i).delete(sign_out))
        .route("/v1/session/reauth", post(reauth));
    if with_links {
        router = router.route("/v1/session/link/{token}", get(sign_in_link));
    }
    router
        .with_state(state)
        .layer(axum::extract::DefaultBodyLimit::max(
            super::MAX_REQUEST_BODY,
        ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    user: String,
    password: String,
    totp: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reauth {
    password: String,
    totp: String,
}

fn now_ms() -> i64 {
    Timestamp::now().unix_ms()
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

fn refused() -> Response {
    error(StatusCode::UNAUTHORIZED, "sign-in failed")
}

fn not_signed_in() -> Response {
    error(StatusCode::UNAUTHORIZED, "not signed in")
}

fn unrecorded() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "1")],
        Json(json!({"error": "the audit log cannot record this now; retry shortly"})),
    )
        .into_response()
}

fn session_cookie(value: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{COOKIE_NAME}={value}; HttpOnly; Secure; SameSite=Strict; Path=/"
    ))
    .ok()
}

fn cleared_cookie() -> HeaderValue {
    HeaderValue::from_static(
        "sealtrail_session=; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=0",
    )
}

/// The body as `T`, if it is JSON (content type included).
fn parse<T: for<'de> Deserialize<'de>>(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, (StatusCode, &'static str)> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
    if !json {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body must be application/json",
        ));
    }
    serde_json::from_slice(body).map_err(|_| {
        (
            StatusCode::BAD_REQUEST,
            "expected a JSON object with the sign-in fields",
        )
    })
}

fn user_principal(name: &str) -> Principal {
    Principal {
        name: name.to_owned(),
        kind: PrincipalKind::User,
        roles: crate::auth::RoleSet::EMPTY,
        authenticated_at_ms: 0,
    }
}

async fn audit(
    state: &SessionState,
    peer: IpAddr,
    who: Option<&Principal>,
    action: &'static str,
    outcome: Outcome,
    attrs: Value,
    message: String,
) -> Result<(), Response> {
    let rec = AuditRecord {
        category: Category::Auth,
        action,
        outcome,
        attrs,
        message,
        id: None,
    };
    record(&state.pipeline, Some(peer), who, rec)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, action, "could not record a sign-in event; the request is refused");
            unrecorded()
        })
}

/// Records a failed sign-in (and the lockout it caused).
async fn record_failure(
    state: &SessionState,
    peer: IpAddr,
    action: &'static str,
    verdict: Verdict,
) -> Result<(), Response> {
    let Verdict::Failure {
        user,
        attempted,
        reason,
        locked_now,
    } = verdict
    else {
        return Ok(());
    };
    let mut attrs = json!({ "reason": reason.as_str() });
    if user.is_none() {
        attrs["attempted_user"] = json!(attempted);
    }
    let who = user.as_ref().map(|p| p.qualified_name());
    let message = match &who {
        Some(w) => format!("{action} failed for {w}: {}", reason.as_str()),
        None => format!("{action} failed for an unknown user: {}", reason.as_str()),
    };
    audit(
        state,
        peer,
        user.as_ref(),
        action,
        Outcome::Failure,
        attrs,
        message,
    )
    .await?;
    if locked_now && let Some(p) = &user {
        let config = state.people.config();
        audit(
            state,
            peer,
            Some(p),
            "account_lockout",
            Outcome::Success,
            json!({
                "failures": config.lockout_failures,
                "locked_for_s": config.lockout_duration.as_secs(),
            }),
            format!(
                "{} locked for {} s after {} failed sign-ins",
                p.qualified_name(),
                config.lockout_duration.as_secs(),
                config.lockout_failures
            ),
        )
        .await?;
    }
    Ok(())
}

/// Runs the password and code check off the runtime, a few at a time.
async fn check(
    state: &SessionState,
    user: String,
    password: String,
    code: String,
    peer: IpAddr,
) -> Result<Verdict, Response> {
    let _permit = state
        .checks
        .acquire()
        .await
        .map_err(|_| error(StatusCode::SERVICE_UNAVAILABLE, "shutting down"))?;
    let people = state.people.clone();
    tokio::task::spawn_blocking(move || {
        if let Err(e) = people.reload() {
            tracing::warn!(error = %e, "the user store could not be re-read; the users loaded before stay in use");
        }
        people.authenticate(&user, &password, &code, peer, now_ms())
    })
    .await
    .map_err(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "sign-in failed"))
}

/// The session's person, or the answer to give (recording a timeout).
async fn signed_in(
    state: &SessionState,
    headers: &HeaderMap,
    peer: IpAddr,
) -> Result<Principal, Response> {
    match state.people.principal(headers, now_ms()) {
        SessionLookup::Valid(p) => Ok(p),
        SessionLookup::Expired { user } => {
            record_timeout(&state.pipeline, peer, &user).await?;
            Err(not_signed_in())
        }
        SessionLookup::NoCookie | SessionLookup::Invalid => Err(not_signed_in()),
    }
}

/// Records `auth/session_timeout` for `user` (the gate calls this on
/// `SessionLookup::Expired` too); an unrecorded timeout is a 503.
pub async fn record_timeout(pipeline: &Pipeline, peer: IpAddr, user: &str) -> Result<(), Response> {
    let who = user_principal(user);
    let rec = AuditRecord {
        category: Category::Auth,
        action: "session_timeout",
        outcome: Outcome::Success,
        attrs: json!({}),
        message: format!("the session of {} timed out", who.qualified_name()),
        id: None,
    };
    record(pipeline, Some(peer), Some(&who), rec)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "could not record a session timeout");
            unrecorded()
        })
}

async fn sign_in(
    State(state): State<SessionState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req: SignIn = match parse(&headers, &body) {
        Ok(r) => r,
        Err((status, message)) => return error(status, message),
    };
    let peer = peer.ip();
    let verdict = match check(&state, req.user, req.password, req.totp, peer).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let principal = match verdict {
        Verdict::Success(p) => p,
        failure => {
            return match record_failure(&state, peer, "login", failure).await {
                Ok(()) => refused(),
                Err(r) => r,
            };
        }
    };
    // Recorded first: a sign-in the ledger does not hold gets no session.
    if let Err(r) = audit(
        &state,
        peer,
        Some(&principal),
        "login",
        Outcome::Success,
        json!({ "mfa": true, "roles": principal.roles.names() }),
        format!("{} signed in", principal.qualified_name()),
    )
    .await
    {
        return r;
    }
    let cookie = state
        .people
        .start_session(&principal, principal.authenticated_at_ms);
    let Some(set_cookie) = session_cookie(&cookie) else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "sign-in failed");
    };
    (
        StatusCode::OK,
        [(header::SET_COOKIE, set_cookie)],
        Json(json!({
            "user": principal.name,
            "roles": principal.roles.names(),
            "idle_timeout_s": state.people.idle_timeout_s(),
        })),
    )
        .into_response()
}

/// `GET /v1/session/link/{token}`: a one-time sign-in link. Consumed here
/// (a second use is refused), recorded as `auth/login` with
/// `attrs.method = "sign_in_link"`, then a normal session and a 303 to `/`.
async fn sign_in_link(
    State(state): State<SessionState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
) -> Response {
    let Some(data) = state.links.clone() else {
        return error(StatusCode::NOT_FOUND, "not found");
    };
    let peer = peer.ip();
    let now = now_ms();
    let consumed = tokio::task::spawn_blocking(move || {
        crate::auth::people::links::consume(&data, &token, now)
    })
    .await;
    let user = match consumed {
        Ok(Ok(user)) => user,
        Ok(Err(crate::auth::people::links::LinkError::Refused)) => {
            return match audit(
                &state,
                peer,
                None,
                "login",
                Outcome::Failure,
                json!({"method": "sign_in_link", "reason": "invalid_link"}),
                "sign-in link refused: unknown, used or expired".into(),
            )
            .await
            {
                Ok(()) => refused(),
                Err(r) => r,
            };
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "the sign-in link store could not be read");
            return error(StatusCode::INTERNAL_SERVER_ERROR, "sign-in failed");
        }
        Err(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, "sign-in failed"),
    };
    let Some(principal) = state.people.principal_for(&user, now) else {
        return match audit(
            &state,
            peer,
            Some(&user_principal(&user)),
            "login",
            Outcome::Failure,
            json!({"method": "sign_in_link", "reason": "unknown_or_disabled_user"}),
            format!("sign-in link for {user} refused: no such enabled user"),
        )
        .await
        {
            Ok(()) => refused(),
            Err(r) => r,
        };
    };
    if let Err(r) = audit(
        &state,
        peer,
        Some(&principal),
        "login",
        Outcome::Success,
        json!({"method": "sign_in_link", "mfa": false, "roles": principal.roles.names()}),
        format!(
            "{} signed in with a one-time link",
            principal.qualified_name()
        ),
    )
    .await
    {
        return r;
    }
    let cookie = state.people.start_session(&principal, now);
    let Some(set_cookie) = session_cookie(&cookie) else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "sign-in failed");
    };
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, set_cookie),
            (header::LOCATION, HeaderValue::from_static("/")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
    )
        .into_response()
}

async fn who_am_i(
    State(state): State<SessionState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    match signed_in(&state, &headers, peer.ip()).await {
        Ok(p) => Json(json!({
            "user": p.name,
            "roles": p.roles.names(),
            "authenticated_at": Timestamp::from_unix_ms(p.authenticated_at_ms)
                .map(|t| t.to_string())
                .unwrap_or_default(),
            "idle_timeout_s": state.people.idle_timeout_s(),
        }))
        .into_response(),
        Err(r) => r,
    }
}

async fn sign_out(
    State(state): State<SessionState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let peer = peer.ip();
    let principal = match signed_in(&state, &headers, peer).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if let Err(r) = audit(
        &state,
        peer,
        Some(&principal),
        "logout",
        Outcome::Success,
        json!({}),
        format!("{} signed out", principal.qualified_name()),
    )
    .await
    {
        return r;
    }
    state.people.end_session(&headers);
    (
        StatusCode::OK,
        [(header::SET_COOKIE, cleared_cookie())],
        Json(json!({ "signed_out": principal.name })),
    )
        .into_response()
}

async fn reauth(
    State(state): State<SessionState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let peer = peer.ip();
    let principal = match signed_in(&state, &headers, peer).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let req: Reauth = match parse(&headers, &body) {
        Ok(r) => r,
        Err((status, message)) => return error(status, message),
    };
    let verdict = match check(&state, principal.name.clone(), req.password, req.totp, peer).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let proved = match verdict {
        Verdict::Success(p) => p,
        failure => {
            return match record_failure(&state, peer, "mfa_challenge", failure).await {
                Ok(()) => error(StatusCode::UNAUTHORIZED, "re-authentication failed"),
                Err(r) => r,
            };
        }
    };
    if let Err(r) = audit(
        &state,
        peer,
        Some(&proved),
        "mfa_challenge",
        Outcome::Success,
        json!({ "purpose": "reauth" }),
        format!("{} re-authenticated", proved.qualified_name()),
    )
    .await
    {
        return r;
    }
    if !state
        .people
        .mark_reauthenticated(&headers, proved.authenticated_at_ms)
    {
        return not_signed_in();
    }
    Json(json!({
        "user": proved.name,
        "authenticated_at": Timestamp::from_unix_ms(proved.authenticated_at_ms)
            .map(|t| t.to_string())
            .unwrap_or_default(),
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::config::AuthConfig;
    use crate::auth::people::{totp, users};
    use crate::auth::{Role, RoleSet};
    use axum::body::Body;
    use axum::extract::connect_info::MockConnectInfo;
    use axum::http::Request;
    use tower::ServiceExt;

    const PASS: &str = "a long passphrase";

    fn app_over(data: &std::path::Path) -> Router {
        let people = Arc::new(People::open(data, AuthConfig::default()).unwrap());
        routes(people, crate::pipeline::closed_pipeline(), None)
            .layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 9))))
    }

    fn post_json(body: String, content_type: &str) -> Request<Body> {
        Request::post("/v1/session")
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sign_in_the_ledger_cannot_hold_is_refused_with_503() {
        let dir = tempfile::tempdir().unwrap();
        let e = users::add(dir.path(), "alice", RoleSet::of(&[Role::Admin]), PASS).unwrap();
        let app = app_over(dir.path());
        let code = totp::code(&e.totp_secret, now_ms() / 1000).unwrap();
        for password in [PASS, "wrong passphrase"] {
            let body = json!({"user": "alice", "password": password, "totp": code}).to_string();
            let r = app
                .clone()
                .oneshot(post_json(body, "application/json"))
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE, "{password}");
            assert!(r.headers().get(header::SET_COOKIE).is_none());
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bodies_must_be_small_json() {
        let dir = tempfile::tempdir().unwrap();
        let app = app_over(dir.path());
        let body = json!({"user": "a", "password": "b", "totp": "1"}).to_string();
        let r = app
            .clone()
            .oneshot(post_json(body, "text/plain"))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let big = format!(
            r#"{{"user":"a","password":"{}","totp":"1"}}"#,
            "x".repeat(super::super::MAX_REQUEST_BODY)
        );
        let r = app
            .clone()
            .oneshot(post_json(big, "application/json"))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let r = app
            .clone()
            .oneshot(post_json(
                r#"{"user":"a","password":"b","totp":"1","x":1}"#.into(),
                "application/json",
            ))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let r = app
            .oneshot(Request::get("/v1/session").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
}

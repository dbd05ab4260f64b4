//! The deny-by-default gate in front of every HTTP route.
//!
//! [`ROUTES`] is the one place that says which roles may call which route;
//! a matched route missing from it is refused (403), and a test walks the
//! whole route x role matrix. The gate authenticates the request (bearer
//! token, signed-in person, or an ingest client's TLS certificate), checks
//! the principal's roles and its rate limit, and hands the [`Principal`]
//! to the handler as a request extension, so handlers record who acted
//! from the credentials, never from a request field.
//!
//! A token's successful use is not a record of its own: what it did is
//! (an ingested event names it in `via.principal`; a search, report,
//! export or incident change names it as `actor.user` of its audit
//! record), so a busy sender does not double the ledger. People's
//! sign-ins are recorded by `people`.
//!
//! Refusals say no more than "authentication required" or "forbidden";
//! the reason (unknown, expired, revoked, wrong role) goes to the ledger as
//! an `auth/login` or `auth/access_denied` failure, at most
//! [`FAILURE_RECORDS_PER_MINUTE`] per address and reason (the rest are
//! counted and reported with the next record).

use super::limits::{FailureRecord, FailureThrottle, RateLimiter};
use super::people::{People, SessionLookup};
use super::record::{AuditRecord, record};
use super::tokens::{TokenCheck, Tokens};
use super::{Principal, PrincipalKind, Role, RoleSet};
use crate::api::ClientCertificate;
use crate::event::{Category, Outcome, Timestamp};
use crate::pipeline::Pipeline;
use axum::Json;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone: liveness, readiness, signing in.
    Public,
    /// Principals holding one of these roles.
    Roles(RoleSet),
    /// As `Roles`, and a person must have signed in or re-authenticated
    /// within `[auth] reauth_within` (exports of patient data).
    Fresh(RoleSet),
    /// As `Roles`, or anyone holding the route's capability link (an
    /// incident's acknowledgement link carries its own `token`, checked by
    /// the handler).
    RolesOrLink(RoleSet),
}

const INGEST: RoleSet = RoleSet::of(&[Role::Ingest]);
const ANALYST: RoleSet = RoleSet::of(&[Role::Analyst]);
const AUDITOR: RoleSet = RoleSet::of(&[Role::Auditor]);
const RESPONDER: RoleSet = RoleSet::of(&[Role::Responder]);
const READERS: RoleSet = RoleSet::of(&[Role::Analyst, Role::Auditor]);
const ALERT_READERS: RoleSet = RoleSet::of(&[Role::Analyst, Role::Responder]);
/// Integrity checks of the whole ledger: auditors and administrators.
const VERIFIERS: RoleSet = RoleSet::of(&[Role::Auditor, Role::Admin]);
const SCRAPERS: RoleSet = RoleSet::of(&[Role::Metrics, Role::Admin]);
/// People who use the console (every role but ingest and metrics).
const CONSOLE_USERS: RoleSet =
    RoleSet::of(&[Role::Analyst, Role::Responder, Role::Auditor, Role::Admin]);

/// Every route the service serves, with who may call it. A route that is
/// served but missing here is refused.
pub const ROUTES: &[(&str, &str, Access)] = &[
    ("GET", "/healthz", Access::Public),
    ("GET", "/readyz", Access::Public),
    // The acknowledgement page's script (the page itself is a capability link).
    ("GET", "/assets/ack.js", Access::Public),
    ("GET", "/metrics", Access::Roles(SCRAPERS)),
    // The console's static shell: it holds no data; what it shows comes
    // from the role-checked routes below with the session cookie.
    ("GET", "/", Access::Public),
    ("GET", "/console/{file}", Access::Public),
    // One-time sign-in link (only routed when `[console] sign_in_links`).
    ("GET", "/v1/session/link/{token}", Access::Public),
    // The log's public key, for the console's own proof checks.
    ("GET", "/v1/log/vkey", Access::Roles(READERS)),
    // Sign-in for people: open, each handler checks what it needs.
    ("POST", "/v1/session", Access::Public),
    ("GET", "/v1/session", Access::Public),
    ("DELETE", "/v1/session", Access::Public),
    ("POST", "/v1/session/reauth", Access::Public),
    ("POST", "/v1/events", Access::Roles(INGEST)),
    ("POST", "/fhir/AuditEvent", Access::Roles(INGEST)),
    ("GET", "/v1/search", Access::Roles(ANALYST)),
    ("POST", "/v1/search", Access::Roles(ANALYST)),
    ("GET", "/v1/search/fields", Access::Roles(ANALYST)),
    // Dashboard definitions: each panel is a search, so analysts only.
    ("GET", "/v1/dashboards", Access::Roles(ANALYST)),
    ("GET", "/v1/dashboards/{id}", Access::Roles(ANALYST)),
    ("GET", "/v1/events/{index}", Access::Roles(READERS)),
    ("GET", "/v1/events/{index}/proof", Access::Roles(READERS)),
    ("GET", "/v1/checkpoint", Access::Roles(READERS)),
    ("GET", "/v1/consistency", Access::Roles(AUDITOR)),
    ("GET", "/v1/reports/patient-access", Access::Roles(ANALYST)),
    ("POST", "/v1/export", Access::Fresh(AUDITOR)),
    // The console's export jobs (`api::exports`): started fresh like
    // `/v1/export`; each is seen and downloaded only by who started it.
    ("POST", "/v1/exports", Access::Fresh(AUDITOR)),
    ("GET", "/v1/exports/{id}", Access::Roles(AUDITOR)),
    ("GET", "/v1/exports/{id}/bundle", Access::Roles(AUDITOR)),
    // The console's verification run (`api::integrity`).
    // How far the search index is behind the ledger (counts only).
    ("GET", "/v1/catch-up", Access::Roles(CONSOLE_USERS)),
    ("GET", "/v1/integrity/status", Access::Roles(VERIFIERS)),
    ("GET", "/v1/integrity/verify", Access::Roles(VERIFIERS)),
    ("POST", "/v1/integrity/verify", Access::Roles(VERIFIERS)),
    ("GET", "/v1/alerts", Access::Roles(ALERT_READERS)),
    ("GET", "/v1/incidents", Access::Roles(ALERT_READERS)),
    ("GET", "/v1/incidents/{id}", Access::Roles(ALERT_READERS)),
    (
        "GET",
        "/v1/incidents/{id}/ack",
        Access::RolesOrLink(RESPONDER),
    ),
    (
        "POST",
        "/v1/incidents/{id}/ack",
        Access::RolesOrLink(RESPONDER),
    ),
    (
        "POST",
        "/v1/incidents/{id}/resolve",
        Access::Roles(RESPONDER),
    ),
    ("POST", "/v1/incidents/{id}/note", Access::Roles(RESPONDER)),
    ("GET", "/v1/silences", Access::Roles(ALERT_READERS)),
    ("POST", "/v1/silences", Access::Roles(RESPONDER)),
    // What a silence would mute: who may create one may preview it.
    ("POST", "/v1/silences/preview", Access::Roles(RESPONDER)),
    ("DELETE", "/v1/silences/{id}", Access::Roles(RESPONDER)),
];

pub const FAILURE_RECORDS_PER_MINUTE: u32 = 10;
/// Audit records of refusals written at once; more are counted, not queued.
const MAX_RECORDS_IN_FLIGHT: usize = 64;

pub fn access(method: &Method, path: &str) -> Option<Access> {
    ROUTES
        .iter()
        .find(|(m, p, _)| *m == method.as_str() && *p == path)
        .map(|(_, _, a)| *a)
}

/// Request rates per principal.
#[derive(Clone, Copy, Debug)]
pub struct RateLimits {
    /// Requests a minute per principal on every route but ingest.
    pub requests_per_minute: u32,
    /// Ingest requests a second per principal (each may carry many events).
    pub ingest_requests_per_second: u32,
    /// How recent a person's authentication must be for a `Fresh` route.
    pub reauth_within: Duration,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            requests_per_minute: 1200,
            ingest_requests_per_second: 2000,
            reauth_within: Duration::from_secs(5 * 60),
        }
    }
}

pub struct AuthState {
    pub tokens: Arc<Tokens>,
    /// Signed-in people (session cookies); absent where nobody signs in.
    people: Option<Arc<People>>,
    pipeline: Pipeline,
    api_rate: RateLimiter<String>,
    ingest_rate: RateLimiter<String>,
    reauth_within_ms: i64,
    failures: FailureThrottle<(Option<IpAddr>, &'static str)>,
    in_flight: Arc<tokio::sync::Semaphore>,
}

impl AuthState {
    pub fn new(
        tokens: Arc<Tokens>,
        people: Option<Arc<People>>,
        pipeline: Pipeline,
        limits: RateLimits,
    ) -> AuthState {
        let per_minute = f64::from(limits.requests_per_minute.max(1));
        let ingest = f64::from(limits.ingest_requests_per_second.max(1));
        AuthState {
            reauth_within_ms: i64::try_from(limits.reauth_within.as_millis()).unwrap_or(i64::MAX),
            tokens,
            people,
            pipeline,
            api_rate: RateLimiter::new(per_minute / 60.0, (per_minute / 4.0).max(10.0)),
            ingest_rate: RateLimiter::new(ingest, ingest * 2.0),
            failures: FailureThrottle::new(FAILURE_RECORDS_PER_MINUTE, Duration::from_secs(60)),
            in_flight: Arc::new(tokio::sync::Semaphore::new(MAX_RECORDS_IN_FLIGHT)),
        }
    }

    /// Records an audit event without holding up the answer; when too many
    /// are being written already it is counted and dropped.
    fn record_later(&self, peer: Option<IpAddr>, principal: Option<Principal>, rec: AuditRecord) {
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            self.pipeline.metrics().auth.records_dropped.inc();
            return;
        };
        let pipeline = self.pipeline.clone();
        tokio::spawn(async move {
            if let Err(e) = record(&pipeline, peer, principal.as_ref(), rec).await {
                tracing::warn!(error = %e, "could not record an authentication event");
                pipeline.metrics().auth.records_dropped.inc();
            }
            drop(permit);
        });
    }

    fn refuse(
        &self,
        peer: Option<IpAddr>,
        principal: Option<Principal>,
        action: &'static str,
        reason: &'static str,
        method: &Method,
        path: &str,
    ) {
        self.pipeline
            .metrics()
            .auth
            .failures
            .with_label_values(&[reason])
            .inc();
        let FailureRecord::Record { suppressed_before } =
            self.failures.failure(&(peer, reason), Instant::now())
        else {
            return;
        };
        let mut attrs = json!({"reason": reason, "method": method.as_str(), "route": path});
        if suppressed_before > 0 {
            attrs["unrecorded_before"] = json!(suppressed_before);
        }
        let who = principal.as_ref().map_or_else(
            || "an unauthenticated client".to_owned(),
            Principal::qualified_name,
        );
        self.record_later(
            peer,
            principal,
            AuditRecord {
                category: Category::Auth,
                action,
                outcome: Outcome::Failure,
                attrs,
                message: format!("{who} was refused {} {path}: {reason}", method.as_str()),
                id: None,
            },
        );
    }
}

impl AuthState {
    fn session_timed_out(&self, peer: Option<IpAddr>, user: String) {
        let who = Principal {
            name: user,
            kind: PrincipalKind::User,
            roles: RoleSet::EMPTY,
            authenticated_at_ms: 0,
        };
        self.record_later(
            peer,
            Some(who.clone()),
            AuditRecord {
                category: Category::Auth,
                action: "session_timeout",
                outcome: Outcome::Success,
                attrs: json!({}),
                message: format!("the session of {} timed out", who.qualified_name()),
                id: None,
            },
        );
    }
}

/// A cookie-authenticated change must come from the console's own origin:
/// SameSite=Strict keeps the cookie off cross-site requests in current
/// browsers, and this refuses what an older one might still send.
fn same_origin(method: &Method, headers: &HeaderMap) -> bool {
    if matches!(*method, Method::GET | Method::HEAD) {
        return true;
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if header("sec-fetch-site").is_some_and(|s| s != "same-origin" && s != "none") {
        return false;
    }
    match (header("origin"), header("host")) {
        (None, _) => true,
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host)),
        (Some(_), None) => false,
    }
}

fn status(code: StatusCode, message: &str) -> Response {
    (code, Json(json!({"error": message}))).into_response()
}

fn unauthorized() -> Response {
    let mut r = status(StatusCode::UNAUTHORIZED, "authentication required");
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"sealtrail\""),
    );
    r
}

fn has_link_token(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        q.split('&')
            .any(|kv| kv.strip_prefix("token=").is_some_and(|v| !v.is_empty()))
    })
}

enum Credentials<'a> {
    None,
    Bearer(&'a str),
    Malformed,
}

fn credentials(headers: &HeaderMap) -> Credentials<'_> {
    match headers.get(header::AUTHORIZATION) {
        None => Credentials::None,
        Some(v) => match v.to_str().ok().and_then(|s| {
            let (scheme, rest) = s.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        }) {
            Some(t) if !t.is_empty() => Credentials::Bearer(t),
            _ => Credentials::Malformed,
        },
    }
}

/// The middleware (`route_layer`, so the matched route is known).
pub async fn gate(State(auth): State<Arc<AuthState>>, mut req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let Some(access) = access(&method, &path) else {
        // Deny by default: a route nobody declared.
        auth.refuse(
            peer,
            None,
            "access_denied",
            "undeclared_route",
            &method,
            &path,
        );
        return status(StatusCode::FORBIDDEN, "forbidden");
    };
    let allowed = match access {
        Access::Public => return next.run(req).await,
        Access::RolesOrLink(_) if has_link_token(req.uri().query()) => {
            return next.run(req).await;
        }
        Access::Roles(r) | Access::Fresh(r) | Access::RolesOrLink(r) => r,
    };
    let now_ms = Timestamp::now().unix_ms();
    let principal = match credentials(req.headers()) {
        Credentials::Bearer(token) => match auth.tokens.check(token, now_ms) {
            TokenCheck::Valid(p) => p,
            TokenCheck::Unknown => {
                auth.refuse(peer, None, "login", "unknown_token", &method, &path);
                return unauthorized();
            }
            TokenCheck::Expired(name) => {
                auth.refuse(
                    peer,
                    Some(token_named(name)),
                    "login",
                    "expired_token",
                    &method,
                    &path,
                );
                return unauthorized();
            }
            TokenCheck::Revoked(name) => {
                auth.refuse(
                    peer,
                    Some(token_named(name)),
                    "login",
                    "revoked_token",
                    &method,
                    &path,
                );
                return unauthorized();
            }
        },
        Credentials::Malformed => {
            auth.refuse(
                peer,
                None,
                "login",
                "malformed_authorization",
                &method,
                &path,
            );
            return unauthorized();
        }
        Credentials::None => {
            let session = auth.people.as_ref().map_or(SessionLookup::NoCookie, |p| {
                p.principal(req.headers(), now_ms)
            });
            match session {
                SessionLookup::Valid(p) => {
                    if !same_origin(&method, req.headers()) {
                        auth.refuse(
                            peer,
                            Some(p),
                            "access_denied",
                            "cross_origin",
                            &method,
                            &path,
                        );
                        return status(StatusCode::FORBIDDEN, "forbidden");
                    }
                    p
                }
                SessionLookup::Expired { user } => {
                    auth.session_timed_out(peer, user);
                    return unauthorized();
                }
                SessionLookup::Invalid => {
                    auth.refuse(peer, None, "login", "invalid_session", &method, &path);
                    return unauthorized();
                }
                SessionLookup::NoCookie => match req.extensions().get::<ClientCertificate>() {
                    Some(cert) => Principal {
                        name: cert.subject.clone(),
                        kind: PrincipalKind::Certificate,
                        roles: INGEST,
                        authenticated_at_ms: now_ms,
                    },
                    None => {
                        auth.refuse(peer, None, "login", "no_credentials", &method, &path);
                        return unauthorized();
                    }
                },
            }
        }
    };
    if !principal.roles.intersects(allowed) {
        auth.refuse(
            peer,
            Some(principal),
            "access_denied",
            "role",
            &method,
            &path,
        );
        return status(StatusCode::FORBIDDEN, "forbidden");
    }
    if matches!(access, Access::Fresh(_))
        && principal.kind == PrincipalKind::User
        && now_ms.saturating_sub(principal.authenticated_at_ms) > auth.reauth_within_ms
    {
        return status(
            StatusCode::UNAUTHORIZED,
            "re-authenticate (POST /v1/session/reauth) before exporting",
        );
    }
    let limiter = if allowed == INGEST {
        &auth.ingest_rate
    } else {
        &auth.api_rate
    };
    if let Err(wait) = limiter.check(&principal.qualified_name(), Instant::now()) {
        auth.pipeline
            .metrics()
            .auth
            .failures
            .with_label_values(&["rate_limited"])
            .inc();
        let secs = wait.as_secs().max(1).to_string();
        let mut r = status(StatusCode::TOO_MANY_REQUESTS, "too many requests");
        if let Ok(v) = HeaderValue::from_str(&secs) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    req.extensions_mut().insert(principal);
    next.run(req).await
}

fn token_named(name: String) -> Principal {
    Principal {
        name,
        kind: PrincipalKind::Token,
        roles: RoleSet::EMPTY,
        authenticated_at_ms: 0,
    }
}

/// Reloads the token store every `every` until `shutdown` (the CLI may
/// change it while the service runs).
pub async fn watch_tokens(
    tokens: Arc<Tokens>,
    every: Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let t = tokens.clone();
        match tokio::task::spawn_blocking(move || t.reload()).await {
            Ok(Ok(true)) => tracing::info!(tokens = tokens.len(), "API tokens reloaded"),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "the token store could not be read; the tokens loaded before stay in use")
            }
            Err(e) => tracing::error!(error = %e, "token reload task failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_tokens_are_found_in_the_query() {
        assert!(has_link_token(Some("token=abc")));
        assert!(has_link_token(Some("x=1&token=abc")));
        assert!(!has_link_token(Some("token=")));
        assert!(!has_link_token(Some("xtoken=abc")));
        assert!(!has_link_token(None));
    }

    #[test]
    fn cookie_changes_must_come_from_the_same_origin() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(*k, HeaderValue::from_static(v));
            }
            m
        };
        let host = ("host", "siem.clinic.example:8443");
        assert!(same_origin(
            &Method::GET,
            &h(&[("origin", "https://evil.example")])
        ));
        assert!(same_origin(&Method::POST, &h(&[host])));
        assert!(same_origin(
            &Method::POST,
            &h(&[host, ("origin", "https://siem.clinic.example:8443")])
        ));
        assert!(!same_origin(
            &Method::POST,
            &h(&[host, ("origin", "https://evil.example")])
        ));
        assert!(!same_origin(
            &Method::DELETE,
            &h(&[host, ("sec-fetch-site", "cross-site")])
        ));
    }

    #[test]
    fn every_declared_route_is_unique() {
        for (i, (m, p, _)) in ROUTES.iter().enumerate() {
            assert!(
                !ROUTES[i + 1..].iter().any(|(m2, p2, _)| m == m2 && p == p2),
                "{m} {p} declared twice"
            );
        }
    }
}

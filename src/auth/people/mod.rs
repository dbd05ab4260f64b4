//! People: sign-in for the console with a password (argon2id) and a TOTP
//! second factor, in-memory sessions behind a cookie, and lockout after
//! repeated failures.
//!
//! Every person has a TOTP secret (enrolled at `sealtrail user add`) and
//! must give a code at every sign-in: the issue requires it for admin and
//! analyst, and one rule for everyone leaves nothing to get wrong.
//!
//! Time is passed in (`now_ms`) so tests drive the clock.

pub mod links;
mod lockout;
pub mod password;
mod sessions;
pub mod totp;
pub mod users;

pub use sessions::COOKIE_NAME;

use super::config::AuthConfig;
use super::journal::StoreError;
use super::{Principal, PrincipalKind};
use axum::http::HeaderMap;
use lockout::Lockout;
use sessions::{Found, Sessions};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use users::Users;

/// What the cookie of a request turned out to be (the gate's question).
#[derive(Debug, PartialEq, Eq)]
pub enum SessionLookup {
    /// No `sealtrail_session` cookie.
    NoCookie,
    /// A live session (its idle clock restarted).
    Valid(Principal),
    /// The session idled out or passed its lifetime; it is gone now.
    /// Record `auth/session_timeout` for `user`.
    Expired { user: String },
    /// Tampered, unknown, ended, or its user was disabled or reset.
    Invalid,
}

/// Why a sign-in failed: kept in the ledger, never told to the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailReason {
    UnknownUser,
    BadPassword,
    BadTotp,
    ReplayedTotp,
    Locked,
    Disabled,
    AddressThrottled,
}

impl FailReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailReason::UnknownUser => "unknown_user",
            FailReason::BadPassword => "bad_password",
            FailReason::BadTotp => "bad_totp",
            FailReason::ReplayedTotp => "replayed_totp",
            FailReason::Locked => "account_locked",
            FailReason::Disabled => "account_disabled",
            FailReason::AddressThrottled => "address_throttled",
        }
    }
}

/// The outcome of checking a password and code.
#[derive(Debug)]
pub enum Verdict {
    Success(Principal),
    Failure {
        /// The user, when the name is one of ours.
        user: Option<Principal>,
        /// The name as given, at most 64 characters.
        attempted: String,
        reason: FailReason,
        /// This failure locked the account.
        locked_now: bool,
    },
}

/// Sign-in state of the running service.
pub struct People {
    users: Users,
    config: AuthConfig,
    sessions: Mutex<Sessions>,
    lockout: Mutex<Lockout>,
    /// The last TOTP step accepted per user (replay protection); bounded
    /// by the user store (only known users are entered).
    steps: Mutex<HashMap<String, i64>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The `sealtrail_session` cookie's value, if exactly one was sent.
fn cookie_value(headers: &HeaderMap) -> Result<Option<&str>, ()> {
    let mut found = None;
    for header in headers.get_all(axum::http::header::COOKIE) {
        let Ok(text) = header.to_str() else { continue };
        for pair in text.split(';') {
            if let Some(v) = pair
                .trim()
                .strip_prefix(COOKIE_NAME)
                .and_then(|r| r.strip_prefix('='))
            {
                if found.is_some() {
                    // Two session cookies (one planted by a sibling site?):
                    // neither is trusted.
                    return Err(());
                }
                found = Some(v);
            }
        }
    }
    Ok(found)
}

impl People {
    /// Loads `DATA/auth/users.json` (missing: nobody can sign in yet).
    pub fn open(data: &Path, config: AuthConfig) -> Result<People, StoreError> {
        let sessions = Sessions::new(
            AuthConfig::ms(config.session_idle),
            AuthConfig::ms(config.session_max),
            config.max_sessions,
        );
        let lockout = Lockout::new(
            config.lockout_failures,
            config.address_failures,
            AuthConfig::ms(config.lockout_window),
            AuthConfig::ms(config.lockout_duration),
        );
        Ok(People {
            users: Users::open(data)?,
            config,
            sessions: Mutex::new(sessions),
            lockout: Mutex::new(lockout),
            steps: Mutex::new(HashMap::new()),
        })
    }

    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// Re-reads the user store if it changed (blocking I/O); a broken file
    /// keeps the users in use.
    pub fn reload(&self) -> Result<bool, StoreError> {
        self.users.reload()
    }

    /// Checks `user`'s password and TOTP code from `ip` at `now_ms`.
    /// Blocking: argon2 runs here, also for unknown names, so that the time
    /// taken does not tell which names exist.
    pub fn authenticate(
        &self,
        user: &str,
        password_text: &str,
        code: &str,
        ip: IpAddr,
        now_ms: i64,
    ) -> Verdict {
        let attempted: String = user.chars().take(64).collect();
        let fail = |user: Option<Principal>, reason, locked_now| Verdict::Failure {
            user,
            attempted: attempted.clone(),
            reason,
            locked_now,
        };
        if lock(&self.lockout).address_locked(ip, now_ms) {
            // No argon2 work for a throttled address: it is what it wants.
            return fail(None, FailReason::AddressThrottled, false);
        }
        let table = self.users.current();
        let live = table.by_name.get(user);
        let phc: &str = match live {
            Some(l) => &l.password,
            None => password::dummy_hash(),
        };
        let password_ok = password::verify(password_text, phc);
        let Some(live) = live else {
            lock(&self.lockout).fail(None, ip, now_ms);
            return fail(None, FailReason::UnknownUser, false);
        };
        let principal = Principal {
            name: user.to_owned(),
            kind: PrincipalKind::User,
            roles: live.roles,
            authenticated_at_ms: now_ms,
        };
        if live.disabled {
            lock(&self.lockout).fail(None, ip, now_ms);
            return fail(Some(principal), FailReason::Disabled, false);
        }
        if lock(&self.lockout).user_locked(user, now_ms) {
            lock(&self.lockout).fail(None, ip, now_ms);
            return fail(Some(principal), FailReason::Locked, false);
        }
        let reason = if !password_ok {
            Some(FailReason::BadPassword)
        } else {
            let unix_secs = now_ms.div_euclid(1000);
            // Check and take the step under one lock: two requests with the
            // same code cannot both pass.
            let mut steps = lock(&self.steps);
            let last = steps.get(user).copied();
            match totp::matching_step(&live.totp_secret, code, unix_secs, last) {
                Some(step) => {
                    steps.insert(user.to_owned(), step);
                    None
                }
                None if totp::matching_step(&live.totp_secret, code, unix_secs, None).is_some() => {
                    Some(FailReason::ReplayedTotp)
                }
                None => Some(FailReason::BadTotp),
            }
        };
        let mut lockout = lock(&self.lockout);
        match reason {
            None => {
                lockout.succeed(user);
                Verdict::Success(principal)
            }
            Some(reason) => {
                let locked_now = lockout.fail(Some(user), ip, now_ms);
                drop(lockout);
                fail(Some(principal), reason, locked_now)
            }
        }
    }

    /// `user` as a principal authenticated at `now_ms` by other means (a
    /// one-time sign-in link); `None` for an unknown or disabled user.
    pub fn principal_for(&self, user: &str, now_ms: i64) -> Option<Principal> {
        let table = self.users.current();
        let live = table.by_name.get(user).filter(|l| !l.disabled)?;
        Some(Principal {
            name: user.to_owned(),
            kind: PrincipalKind::User,
            roles: live.roles,
            authenticated_at_ms: now_ms,
        })
    }

    /// Starts a session for a signed-in principal; the cookie value.
    pub fn start_session(&self, principal: &Principal, now_ms: i64) -> String {
        let stamp = self
            .users
            .current()
            .by_name
            .get(&principal.name)
            .map_or(0, |l| l.credential_stamp);
        lock(&self.sessions).create(&principal.name, stamp, now_ms)
    }

    /// The person behind a request's session cookie at `now_ms`; a live
    /// session's idle clock restarts. The user's current roles apply; a
    /// disabled or reset user's sessions end.
    pub fn principal(&self, headers: &HeaderMap, now_ms: i64) -> SessionLookup {
        let value = match cookie_value(headers) {
            Ok(Some(v)) => v,
            Ok(None) => return SessionLookup::NoCookie,
            Err(()) => return SessionLookup::Invalid,
        };
        let found = lock(&self.sessions).touch(value, now_ms);
        match found {
            Found::Unknown => SessionLookup::Invalid,
            Found::Expired(user) => SessionLookup::Expired { user },
            Found::Live(s) => {
                let table = self.users.current();
                match table.by_name.get(&s.user) {
                    Some(l) if !l.disabled && l.credential_stamp == s.credential_stamp => {
                        SessionLookup::Valid(Principal {
                            name: s.user,
                            kind: PrincipalKind::User,
                            roles: l.roles,
                            authenticated_at_ms: s.authenticated_at_ms,
                        })
                    }
                    _ => {
                        lock(&self.sessions).remove(value);
                        SessionLookup::Invalid
                    }
                }
            }
        }
    }

    /// Records a fresh proof of identity in the request's session.
    pub fn mark_reauthenticated(&self, headers: &HeaderMap, now_ms: i64) -> bool {
        match cookie_value(headers) {
            Ok(Some(v)) => lock(&self.sessions).reauthenticated(v, now_ms),
            _ => false,
        }
    }

    /// Ends the request's session; the user it belonged to.
    pub fn end_session(&self, headers: &HeaderMap) -> Option<String> {
        match cookie_value(headers) {
            Ok(Some(v)) => lock(&self.sessions).remove(v),
            _ => None,
        }
    }

    /// Opens the store off the runtime and re-reads it every second until
    /// `shutdown` (`sealtrail user ...` works while the service runs).
    pub async fn start(
        data: &Path,
        config: AuthConfig,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Result<std::sync::Arc<People>, StoreError> {
        let data = data.to_path_buf();
        let people = tokio::task::spawn_blocking(move || People::open(&data, config))
            .await
            .map_err(|e| StoreError::Invalid(format!("loading the user store: {e}")))??;
        let people = std::sync::Arc::new(people);
        let reloading = people.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let p = reloading.clone();
                match tokio::task::spawn_blocking(move || p.reload()).await {
                    Ok(Ok(true)) => tracing::info!("user store reloaded"),
                    Ok(Ok(false)) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "the user store could not be re-read; the users loaded before stay in use")
                    }
                    Err(e) => tracing::warn!(error = %e, "user store reload task failed"),
                }
            }
        });
        Ok(people)
    }

    /// The idle timeout in whole seconds (told to the console).
    pub fn idle_timeout_s(&self) -> u64 {
        self.config.session_idle.as_secs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Role, RoleSet};
    use axum::http::HeaderValue;

    const MIN: i64 = 60_000;
    const PASS: &str = "a long passphrase";

    fn setup() -> (tempfile::TempDir, People, String) {
        let dir = tempfile::tempdir().unwrap();
        let e = users::add(dir.path(), "alice", RoleSet::of(&[Role::Analyst]), PASS).unwrap();
        let people = People::open(dir.path(), AuthConfig::default()).unwrap();
        (dir, people, e.totp_secret)
    }

    fn code_at(secret: &str, now_ms: i64) -> String {
        totp::code(secret, now_ms / 1000).unwrap()
    }

    fn headers(cookie: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::COOKIE,
            HeaderValue::from_str(&format!("theme=dark; {COOKIE_NAME}={cookie}")).unwrap(),
        );
        h
    }

    fn reason(v: &Verdict) -> Option<FailReason> {
        match v {
            Verdict::Success(_) => None,
            Verdict::Failure { reason, .. } => Some(*reason),
        }
    }

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 1, 2, 3));

    #[test]
    fn sign_in_needs_password_and_a_fresh_code() {
        let (_dir, people, secret) = setup();
        let t = 1_700_000_000_000;
        let good = code_at(&secret, t);
        assert_eq!(
            reason(&people.authenticate("alice", "wrong passphrase", &good, IP, t)),
            Some(FailReason::BadPassword)
        );
        let wrong = if good == "000000" { "000001" } else { "000000" };
        assert_eq!(
            reason(&people.authenticate("alice", PASS, wrong, IP, t)),
            Some(FailReason::BadTotp)
        );
        let Verdict::Success(p) = people.authenticate("alice", PASS, &good, IP, t) else {
            panic!("the right password and code sign in");
        };
        assert_eq!(p.qualified_name(), "user:alice");
        assert!(p.has(Role::Analyst));
        assert_eq!(
            reason(&people.authenticate("alice", PASS, &good, IP, t + 1000)),
            Some(FailReason::ReplayedTotp),
            "a code is taken once"
        );
        // The previous step's code is at or before the accepted step too.
        assert_eq!(
            reason(&people.authenticate("alice", PASS, &code_at(&secret, t - 30_000), IP, t)),
            Some(FailReason::ReplayedTotp)
        );
        // The next step's code is new.
        assert!(matches!(
            people.authenticate("alice", PASS, &code_at(&secret, t + 30_000), IP, t + 30_000),
            Verdict::Success(_)
        ));
        match people.authenticate(&"m".repeat(100), PASS, &good, IP, t) {
            Verdict::Failure {
                user: None,
                attempted,
                reason: FailReason::UnknownUser,
                ..
            } => assert_eq!(attempted.len(), 64),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn five_failures_lock_then_unlock_after_the_duration() {
        let (_dir, people, secret) = setup();
        let t = 1_700_000_000_000;
        for i in 0..4 {
            match people.authenticate("alice", "wrong passphrase", "123456", IP, t + i) {
                Verdict::Failure { locked_now, .. } => assert!(!locked_now),
                Verdict::Success(_) => panic!(),
            }
        }
        match people.authenticate("alice", "wrong passphrase", "123456", IP, t + 4) {
            Verdict::Failure { locked_now, .. } => assert!(locked_now, "the fifth locks"),
            Verdict::Success(_) => panic!(),
        }
        let t2 = t + 5 * MIN;
        assert_eq!(
            reason(&people.authenticate("alice", PASS, &code_at(&secret, t2), IP, t2)),
            Some(FailReason::Locked),
            "right credentials while locked"
        );
        let t3 = t + 15 * MIN + 5;
        assert!(matches!(
            people.authenticate("alice", PASS, &code_at(&secret, t3), IP, t3),
            Verdict::Success(_)
        ));
    }

    #[test]
    fn sessions_answer_the_gate() {
        let (dir, people, secret) = setup();
        let t = 1_700_000_000_000;
        let Verdict::Success(p) = people.authenticate("alice", PASS, &code_at(&secret, t), IP, t)
        else {
            panic!()
        };
        let cookie = people.start_session(&p, t);
        assert_eq!(
            people.principal(&HeaderMap::new(), t),
            SessionLookup::NoCookie
        );
        match people.principal(&headers(&cookie), t + MIN) {
            SessionLookup::Valid(p) => {
                assert_eq!(p.name, "alice");
                assert_eq!(p.kind, PrincipalKind::User);
                assert_eq!(p.authenticated_at_ms, t);
            }
            other => panic!("{other:?}"),
        }
        assert!(people.mark_reauthenticated(&headers(&cookie), t + 2 * MIN));
        match people.principal(&headers(&cookie), t + 3 * MIN) {
            SessionLookup::Valid(p) => assert_eq!(p.authenticated_at_ms, t + 2 * MIN),
            other => panic!("{other:?}"),
        }
        let mut tampered = cookie.clone();
        tampered.replace_range(0..1, if cookie.starts_with('A') { "B" } else { "A" });
        assert_eq!(
            people.principal(&headers(&tampered), t),
            SessionLookup::Invalid
        );
        let mut two = headers(&cookie);
        two.append(
            axum::http::header::COOKIE,
            HeaderValue::from_str(&format!("{COOKIE_NAME}={tampered}")).unwrap(),
        );
        assert_eq!(people.principal(&two, t), SessionLookup::Invalid);
        // Idle for 15 minutes: expired once, then unknown.
        assert_eq!(
            people.principal(&headers(&cookie), t + 18 * MIN),
            SessionLookup::Expired {
                user: "alice".into()
            }
        );
        assert_eq!(
            people.principal(&headers(&cookie), t + 18 * MIN),
            SessionLookup::Invalid
        );
        // Disabling a user ends their sessions.
        let t4 = t + 20 * MIN;
        let Verdict::Success(p) = people.authenticate("alice", PASS, &code_at(&secret, t4), IP, t4)
        else {
            panic!()
        };
        let cookie = people.start_session(&p, t4);
        users::disable(dir.path(), "alice").unwrap();
        people.reload().unwrap();
        assert_eq!(
            people.principal(&headers(&cookie), t4),
            SessionLookup::Invalid
        );
        assert_eq!(
            reason(&people.authenticate("alice", PASS, &code_at(&secret, t4 + 30_000), IP, t4)),
            Some(FailReason::Disabled)
        );
    }
}

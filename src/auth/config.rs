//! `[auth]`: sessions of people and how failed sign-ins are answered.

use crate::pipeline::silence::duration_text;
use serde::Deserialize;
use std::time::Duration;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// A console session unused this long is ended.
    #[serde(with = "duration_text")]
    pub session_idle: Duration,
    /// A console session ends this long after sign-in, used or not.
    #[serde(with = "duration_text")]
    pub session_max: Duration,
    /// Failed sign-ins for one user within `lockout_window` that lock it.
    pub lockout_failures: u32,
    #[serde(with = "duration_text")]
    pub lockout_window: Duration,
    /// How long a locked account stays locked.
    #[serde(with = "duration_text")]
    pub lockout_duration: Duration,
    /// Failed sign-ins from one address within `lockout_window` after which
    /// that address is refused (one address trying many user names).
    pub address_failures: u32,
    /// Sessions held at most; the oldest is ended to make room.
    pub max_sessions: usize,
    /// A person's export of patient data needs a sign-in or
    /// re-authentication (`POST /v1/session/reauth`) this recent.
    #[serde(with = "duration_text")]
    pub reauth_within: Duration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            session_idle: Duration::from_secs(15 * 60),
            session_max: Duration::from_secs(12 * 3600),
            lockout_failures: 5,
            lockout_window: Duration::from_secs(15 * 60),
            lockout_duration: Duration::from_secs(15 * 60),
            address_failures: 20,
            max_sessions: 10_000,
            reauth_within: Duration::from_secs(5 * 60),
        }
    }
}

impl AuthConfig {
    /// The offending key and why.
    pub fn validate(&self) -> Result<(), (&'static str, &'static str)> {
        if self.session_idle.is_zero() {
            return Err(("auth.session_idle", "must be more than 0"));
        }
        if self.session_max < self.session_idle {
            return Err(("auth.session_max", "must be at least session_idle"));
        }
        if self.lockout_failures == 0 || self.lockout_failures > 1000 {
            return Err(("auth.lockout_failures", "must be between 1 and 1000"));
        }
        if self.lockout_window.is_zero() {
            return Err(("auth.lockout_window", "must be more than 0"));
        }
        if self.lockout_duration.is_zero() {
            return Err(("auth.lockout_duration", "must be more than 0"));
        }
        if self.address_failures == 0 || self.address_failures > 10_000 {
            return Err(("auth.address_failures", "must be between 1 and 10000"));
        }
        if self.max_sessions == 0 || self.max_sessions > 1_000_000 {
            return Err(("auth.max_sessions", "must be between 1 and 1000000"));
        }
        if self.reauth_within.is_zero() {
            return Err(("auth.reauth_within", "must be more than 0"));
        }
        Ok(())
    }

    pub(crate) fn ms(d: Duration) -> i64 {
        i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
    }
}

//! Console sessions, in memory (a restart signs everyone out). The cookie
//! value is 256 random bits; only its SHA-256 is kept, so a memory dump
//! does not hand out live cookies. Bounded: the oldest session is ended to
//! make room.

use base64::Engine;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

pub const COOKIE_NAME: &str = "sealtrail_session";
/// base64url of 32 bytes, without padding.
const COOKIE_VALUE_LEN: usize = 43;

#[derive(Clone, Debug)]
pub(crate) struct Session {
    pub user: String,
    pub created_ms: i64,
    pub last_seen_ms: i64,
    pub authenticated_at_ms: i64,
    pub credential_stamp: u64,
}

/// What a presented cookie value turned out to be.
#[derive(Debug)]
pub(crate) enum Found {
    Live(Session),
    /// Idle too long or past its absolute lifetime (removed now).
    Expired(String),
    Unknown,
}

pub(crate) struct Sessions {
    idle_ms: i64,
    max_ms: i64,
    capacity: usize,
    by_hash: HashMap<[u8; 32], Session>,
}

fn key_of(cookie_value: &str) -> Option<[u8; 32]> {
    // Anything that is not exactly a cookie we could have issued is
    // refused before hashing.
    if cookie_value.len() != COOKIE_VALUE_LEN {
        return None;
    }
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cookie_value)
        .ok()?;
    (raw.len() == 32).then(|| Sha256::digest(cookie_value.as_bytes()).into())
}

impl Sessions {
    pub fn new(idle_ms: i64, max_ms: i64, capacity: usize) -> Sessions {
        Sessions {
            idle_ms,
            max_ms,
            capacity: capacity.max(1),
            by_hash: HashMap::new(),
        }
    }

    fn expired(&self, s: &Session, now_ms: i64) -> bool {
        now_ms.saturating_sub(s.last_seen_ms) >= self.idle_ms
            || now_ms.saturating_sub(s.created_ms) >= self.max_ms
    }

    /// Starts a session; returns the cookie value (never stored).
    pub fn create(&mut self, user: &str, credential_stamp: u64, now_ms: i64) -> String {
        if self.by_hash.len() >= self.capacity {
            self.by_hash.retain(|_, s| {
                now_ms.saturating_sub(s.last_seen_ms) < self.idle_ms
                    && now_ms.saturating_sub(s.created_ms) < self.max_ms
            });
        }
        while self.by_hash.len() >= self.capacity {
            let oldest = self
                .by_hash
                .iter()
                .min_by_key(|(_, s)| s.created_ms)
                .map(|(k, _)| *k);
            match oldest {
                Some(k) => {
                    self.by_hash.remove(&k);
                }
                None => break,
            }
        }
        let mut raw = [0u8; 32];
        OsRng.fill_bytes(&mut raw);
        let value = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let key: [u8; 32] = Sha256::digest(value.as_bytes()).into();
        self.by_hash.insert(
            key,
            Session {
                user: user.to_owned(),
                created_ms: now_ms,
                last_seen_ms: now_ms,
                authenticated_at_ms: now_ms,
                credential_stamp,
            },
        );
        value
    }

    /// Looks a cookie value up; a live session's idle clock restarts.
    pub fn touch(&mut self, cookie_value: &str, now_ms: i64) -> Found {
        let Some(key) = key_of(cookie_value) else {
            return Found::Unknown;
        };
        let Some(s) = self.by_hash.get(&key) else {
            return Found::Unknown;
        };
        if self.expired(s, now_ms) {
            let user = s.user.clone();
            self.by_hash.remove(&key);
            return Found::Expired(user);
        }
        match self.by_hash.get_mut(&key) {
            Some(s) => {
                s.last_seen_ms = now_ms.max(s.last_seen_ms);
                Found::Live(s.clone())
            }
            None => Found::Unknown,
        }
    }

    /// Marks a fresh proof of identity (re-authentication).
    pub fn reauthenticated(&mut self, cookie_value: &str, now_ms: i64) -> bool {
        let Some(key) = key_of(cookie_value) else {
            return false;
        };
        match self.by_hash.get_mut(&key) {
            Some(s) => {
                s.authenticated_at_ms = now_ms;
                true
            }
            None => false,
        }
    }

    /// Ends a session; the user it belonged to.
    pub fn remove(&mut self, cookie_value: &str) -> Option<String> {
        let key = key_of(cookie_value)?;
        self.by_hash.remove(&key).map(|s| s.user)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn idle_and_absolute_expiry() {
        let mut s = Sessions::new(15 * MIN, 12 * 60 * MIN, 100);
        let t0 = 1_000_000;
        let c = s.create("alice", 7, t0);
        assert_eq!(c.len(), 43);
        assert!(matches!(s.touch(&c, t0 + 14 * MIN), Found::Live(_)));
        // Used 14 minutes later: the idle clock restarted.
        assert!(matches!(s.touch(&c, t0 + 28 * MIN), Found::Live(_)));
        match s.touch(&c, t0 + 43 * MIN) {
            Found::Expired(u) => assert_eq!(u, "alice"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(s.touch(&c, t0 + 43 * MIN), Found::Unknown), "gone");

        // Used every 10 minutes, it still ends after 12 hours.
        let c = s.create("bob", 7, t0);
        let mut t = t0;
        while t + 10 * MIN < t0 + 12 * 60 * MIN {
            t += 10 * MIN;
            assert!(matches!(s.touch(&c, t), Found::Live(_)), "at {t}");
        }
        assert!(matches!(s.touch(&c, t0 + 12 * 60 * MIN), Found::Expired(_)));
    }

    #[test]
    fn tampered_or_foreign_cookies_are_unknown() {
        let mut s = Sessions::new(15 * MIN, 60 * MIN, 100);
        let c = s.create("alice", 7, 0);
        let mut chars: Vec<char> = c.chars().collect();
        chars[5] = if chars[5] == 'A' { 'B' } else { 'A' };
        let tampered: String = chars.into_iter().collect();
        assert!(matches!(s.touch(&tampered, 1), Found::Unknown));
        assert!(matches!(s.touch(&format!("{c}A"), 1), Found::Unknown));
        assert!(matches!(s.touch("", 1), Found::Unknown));
        assert!(matches!(s.touch(&"!".repeat(43), 1), Found::Unknown));
        assert!(matches!(s.touch(&c, 1), Found::Live(_)));
        assert_eq!(s.remove(&c).as_deref(), Some("alice"));
        assert!(matches!(s.touch(&c, 2), Found::Unknown));
    }

    #[test]
    fn the_map_is_bounded_and_the_oldest_goes_first() {
        let mut s = Sessions::new(15 * MIN, 60 * MIN, 3);
        let first = s.create("u0", 0, 0);
        let second = s.create("u1", 0, 1);
        let third = s.create("u2", 0, 2);
        let fourth = s.create("u3", 0, 3);
        assert_eq!(s.len(), 3);
        assert!(matches!(s.touch(&first, 4), Found::Unknown));
        for c in [&second, &third, &fourth] {
            assert!(matches!(s.touch(c, 4), Found::Live(_)));
        }
    }
}

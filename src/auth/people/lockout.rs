//! Failed sign-ins: N failures for one user within a window lock the
//! account for a while; M failures from one address within the window
//! refuse that address (one address trying many user names). Both maps are
//! bounded: users by the user store, addresses by `MAX_ADDRESSES`.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

/// Addresses tracked at most; stale ones go first, then the quietest.
const MAX_ADDRESSES: usize = 10_000;

#[derive(Default)]
struct Failures {
    /// Times (ms) of recent failures, at most `limit` of them.
    times: VecDeque<i64>,
    locked_until: Option<i64>,
}

impl Failures {
    fn locked(&self, now_ms: i64) -> bool {
        self.locked_until.is_some_and(|u| now_ms < u)
    }

    /// Counts a failure; whether it locked now.
    fn fail(&mut self, now_ms: i64, limit: usize, window_ms: i64, lock_ms: i64) -> bool {
        while self
            .times
            .front()
            .is_some_and(|t| now_ms.saturating_sub(*t) >= window_ms)
        {
            self.times.pop_front();
        }
        self.times.push_back(now_ms);
        while self.times.len() > limit {
            self.times.pop_front();
        }
        if self.times.len() >= limit && !self.locked(now_ms) {
            self.locked_until = Some(now_ms.saturating_add(lock_ms));
            self.times.clear();
            return true;
        }
        false
    }

    fn newest(&self) -> i64 {
        self.times
            .back()
            .copied()
            .max(self.locked_until)
            .unwrap_or(i64::MIN)
    }
}

pub(crate) struct Lockout {
    user_limit: usize,
    address_limit: usize,
    window_ms: i64,
    lock_ms: i64,
    users: HashMap<String, Failures>,
    addresses: HashMap<IpAddr, Failures>,
}

impl Lockout {
    pub fn new(user_limit: u32, address_limit: u32, window_ms: i64, lock_ms: i64) -> Lockout {
        Lockout {
            user_limit: user_limit.max(1) as usize,
            address_limit: address_limit.max(1) as usize,
            window_ms,
            lock_ms,
            users: HashMap::new(),
            addresses: HashMap::new(),
        }
    }

    pub fn user_locked(&self, user: &str, now_ms: i64) -> bool {
        self.users.get(user).is_some_and(|f| f.locked(now_ms))
    }

    pub fn address_locked(&self, ip: IpAddr, now_ms: i64) -> bool {
        self.addresses.get(&ip).is_some_and(|f| f.locked(now_ms))
    }

    /// Counts a failed sign-in by a known user (`None`: an unknown name,
    /// counted for the address only); whether the user's account locked now.
    pub fn fail(&mut self, user: Option<&str>, ip: IpAddr, now_ms: i64) -> bool {
        let (window, lock) = (self.window_ms, self.lock_ms);
        if !self.addresses.contains_key(&ip) && self.addresses.len() >= MAX_ADDRESSES {
            self.addresses
                .retain(|_, f| now_ms.saturating_sub(f.newest()) < window.max(lock));
            if self.addresses.len() >= MAX_ADDRESSES
                && let Some(quiet) = self
                    .addresses
                    .iter()
                    .min_by_key(|(_, f)| f.newest())
                    .map(|(k, _)| *k)
            {
                self.addresses.remove(&quiet);
            }
        }
        self.addresses
            .entry(ip)
            .or_default()
            .fail(now_ms, self.address_limit, window, lock);
        match user {
            Some(u) => self.users.entry(u.to_owned()).or_default().fail(
                now_ms,
                self.user_limit,
                window,
                lock,
            ),
            None => false,
        }
    }

    /// A successful sign-in clears the user's count.
    pub fn succeed(&mut self, user: &str) {
        self.users.remove(user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn five_failures_in_the_window_lock_for_the_duration() {
        let ip: IpAddr = [10, 0, 0, 1].into();
        let mut l = Lockout::new(5, 100, 15 * MIN, 15 * MIN);
        let t0 = 1_000_000_000;
        // Four failures, then one after the window: no lock.
        for i in 0..4 {
            assert!(!l.fail(Some("alice"), ip, t0 + i));
        }
        assert!(!l.fail(Some("alice"), ip, t0 + 16 * MIN));
        assert!(!l.user_locked("alice", t0 + 16 * MIN));
        // Four more within the window of the last one: the fifth locks.
        for i in 1..4 {
            assert!(!l.fail(Some("alice"), ip, t0 + 16 * MIN + i));
        }
        assert!(l.fail(Some("alice"), ip, t0 + 17 * MIN));
        assert!(l.user_locked("alice", t0 + 17 * MIN));
        assert!(l.user_locked("alice", t0 + 31 * MIN));
        assert!(
            !l.user_locked("alice", t0 + 32 * MIN),
            "unlocked after 15 minutes"
        );
        assert!(!l.user_locked("bob", t0 + 17 * MIN));
        // A success clears the count.
        l.fail(Some("bob"), ip, t0);
        l.succeed("bob");
        for i in 0..4 {
            assert!(!l.fail(Some("bob"), ip, t0 + 1 + i));
        }
    }

    #[test]
    fn one_address_trying_many_names_is_refused() {
        let ip: IpAddr = [10, 0, 0, 2].into();
        let other: IpAddr = [10, 0, 0, 3].into();
        let mut l = Lockout::new(5, 20, 15 * MIN, 15 * MIN);
        for i in 0..19 {
            l.fail(None, ip, i);
            assert!(!l.address_locked(ip, i));
        }
        l.fail(Some(&format!("user{}", 99)), ip, 19);
        assert!(l.address_locked(ip, 20));
        assert!(!l.address_locked(other, 20));
        assert!(!l.address_locked(ip, 20 + 15 * MIN));
    }

    #[test]
    fn the_address_map_is_bounded() {
        let mut l = Lockout::new(5, 20, 15 * MIN, 15 * MIN);
        for i in 0..(MAX_ADDRESSES as u32 + 10) {
            l.fail(None, IpAddr::from(i.to_be_bytes()), i64::from(i));
        }
        assert!(l.addresses.len() <= MAX_ADDRESSES);
    }
}

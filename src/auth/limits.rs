//! Request rate limits per principal, and the throttle that keeps a flood
//! of bad credentials from flooding the ledger with failure records.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most keys any of these maps holds; the entry idle longest goes first.
const MAX_KEYS: usize = 10_000;

/// A token bucket per key: `rate` requests per second on average, bursts
/// of up to `burst`.
pub struct RateLimiter<K> {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<K, (f64, Instant)>>,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    pub fn new(rate_per_second: f64, burst: f64) -> Self {
        RateLimiter {
            rate: rate_per_second.max(0.001),
            burst: burst.max(1.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from `key`'s bucket; `Err(wait)` when it is empty.
    pub fn check(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let mut buckets = match self.buckets.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if buckets.len() >= MAX_KEYS && !buckets.contains_key(key) {
            evict_oldest(&mut buckets, |(_, at)| *at);
        }
        let (tokens, at) = buckets.entry(key.clone()).or_insert((self.burst, now));
        let refill = now.saturating_duration_since(*at).as_secs_f64() * self.rate;
        *tokens = (*tokens + refill).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / self.rate))
        }
    }
}

fn evict_oldest<K: Clone + Hash + Eq, V>(map: &mut HashMap<K, V>, at: impl Fn(&V) -> Instant) {
    if let Some(k) = map
        .iter()
        .min_by_key(|(_, v)| at(v))
        .map(|(k, _)| k.clone())
    {
        map.remove(&k);
    }
}

/// What to do with one more failure from a key.
#[derive(Debug, PartialEq, Eq)]
pub enum FailureRecord {
    /// Record it, with how many were left unrecorded before it.
    Record { suppressed_before: u64 },
    /// Count it only.
    Suppress,
}

/// At most `per_window` failure records per key and window; the rest are
/// counted and reported with the next record.
pub struct FailureThrottle<K> {
    per_window: u32,
    window: Duration,
    seen: Mutex<HashMap<K, (Instant, u32, u64)>>,
}

impl<K: Hash + Eq + Clone> FailureThrottle<K> {
    pub fn new(per_window: u32, window: Duration) -> Self {
        FailureThrottle {
            per_window,
            window,
            seen: Mutex::new(HashMap::new()),
        }
    }

    pub fn failure(&self, key: &K, now: Instant) -> FailureRecord {
        let mut seen = match self.seen.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if seen.len() >= MAX_KEYS && !seen.contains_key(key) {
            evict_oldest(&mut seen, |(start, _, _)| *start);
        }
        let (start, recorded, suppressed) = seen.entry(key.clone()).or_insert((now, 0, 0));
        if now.saturating_duration_since(*start) >= self.window {
            *start = now;
            *recorded = 0;
        }
        if *recorded < self.per_window {
            *recorded += 1;
            let before = std::mem::take(suppressed);
            FailureRecord::Record {
                suppressed_before: before,
            }
        } else {
            *suppressed += 1;
            FailureRecord::Suppress
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let limiter = RateLimiter::new(10.0, 5.0);
        let t0 = Instant::now();
        for _ in 0..5 {
            assert!(limiter.check(&"a", t0).is_ok());
        }
        let wait = limiter.check(&"a", t0).unwrap_err();
        assert!(wait <= Duration::from_millis(100) && wait > Duration::ZERO);
        // Another principal has its own bucket.
        assert!(limiter.check(&"b", t0).is_ok());
        // 100 ms later one more request is allowed, not two.
        let t1 = t0 + Duration::from_millis(100);
        assert!(limiter.check(&"a", t1).is_ok());
        assert!(limiter.check(&"a", t1).is_err());
    }

    #[test]
    fn failures_past_the_window_quota_are_counted_and_reported_later() {
        let throttle = FailureThrottle::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        let ip = "10.0.0.9";
        assert_eq!(
            throttle.failure(&ip, t0),
            FailureRecord::Record {
                suppressed_before: 0
            }
        );
        assert_eq!(
            throttle.failure(&ip, t0),
            FailureRecord::Record {
                suppressed_before: 0
            }
        );
        for _ in 0..7 {
            assert_eq!(throttle.failure(&ip, t0), FailureRecord::Suppress);
        }
        assert_eq!(
            throttle.failure(&ip, t0 + Duration::from_secs(61)),
            FailureRecord::Record {
                suppressed_before: 7
            }
        );
    }

    #[test]
    fn the_maps_are_bounded() {
        let limiter = RateLimiter::new(1.0, 1.0);
        let t = Instant::now();
        for i in 0..(MAX_KEYS + 50) {
            let _ = limiter.check(&i, t);
        }
        assert!(limiter.buckets.lock().unwrap().len() <= MAX_KEYS);
    }
}

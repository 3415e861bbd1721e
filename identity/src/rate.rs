//! Per-host token buckets for outbound lookups, in a bounded map, so one busy or hostile host
//! cannot make us hammer it (or be used to make us hammer someone else).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A token-bucket budget: `burst` lookups at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained lookups per second (must be > 0).
    pub per_second: u32,
    /// Lookups allowed back to back (must be > 0).
    pub burst: u32,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
    limit: RateLimit,
}

impl Bucket {
    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * f64::from(self.limit.per_second))
            .min(f64::from(self.limit.burst));
        self.updated = now;
    }

    fn is_full(&self) -> bool {
        self.tokens >= f64::from(self.limit.burst)
    }
}

/// Token buckets keyed by host, at most `max_hosts` of them.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
    max_hosts: usize,
}

impl RateLimiter {
    pub(crate) fn new(max_hosts: usize) -> RateLimiter {
        RateLimiter {
            buckets: Mutex::new(HashMap::new()),
            max_hosts,
        }
    }

    /// Takes one token for `host`, or says how long until one is available.
    pub(crate) fn try_acquire(&self, host: &str, limit: RateLimit) -> Result<(), Duration> {
        self.try_acquire_at(host, limit, Instant::now())
    }

    /// [`RateLimiter::try_acquire`] at a given time (tests drive the clock).
    fn try_acquire_at(&self, host: &str, limit: RateLimit, now: Instant) -> Result<(), Duration> {
        // A poisoned lock only means another thread panicked mid-update of plain numbers.
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !buckets.contains_key(host) && buckets.len() >= self.max_hosts {
            // Forget hosts whose buckets have refilled: they carry no state.
            buckets.retain(|_, bucket| {
                bucket.refill(now);
                !bucket.is_full()
            });
            if buckets.len() >= self.max_hosts {
                // Every tracked host is mid-burst: too many distinct hosts at once.
                return Err(Duration::from_secs(1));
            }
        }
        let bucket = buckets.entry(host.to_owned()).or_insert(Bucket {
            tokens: f64::from(limit.burst),
            updated: now,
            limit,
        });
        bucket.refill(now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / f64::from(limit.per_second);
            Err(Duration::from_secs_f64(wait))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: RateLimit = RateLimit {
        per_second: 2,
        burst: 3,
    };

    #[test]
    fn burst_then_refill_per_host() {
        let limiter = RateLimiter::new(10);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.try_acquire_at("a.example", LIMIT, t0), Ok(()));
        }
        assert_eq!(
            limiter.try_acquire_at("a.example", LIMIT, t0),
            Err(Duration::from_millis(500))
        );
        // Another host has its own budget.
        assert_eq!(limiter.try_acquire_at("b.example", LIMIT, t0), Ok(()));
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(limiter.try_acquire_at("a.example", LIMIT, t1), Ok(()));
        assert_eq!(
            limiter.try_acquire_at("a.example", LIMIT, t1),
            Err(Duration::from_millis(500))
        );
    }

    #[test]
    fn the_map_is_bounded() {
        let limiter = RateLimiter::new(2);
        let t0 = Instant::now();
        assert_eq!(limiter.try_acquire_at("a.example", LIMIT, t0), Ok(()));
        assert_eq!(limiter.try_acquire_at("b.example", LIMIT, t0), Ok(()));
        // Both buckets are mid-burst, so a third host is refused.
        assert_eq!(
            limiter.try_acquire_at("c.example", LIMIT, t0),
            Err(Duration::from_secs(1))
        );
        // Once they refill they are forgotten and make room.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(limiter.try_acquire_at("c.example", LIMIT, t1), Ok(()));
    }
}

//! A small time-to-live cache for answers that scan (the web API's `/tracks/top` of a period
//! and `/stats`, the first page of getTrending): every visitor's homepage asks for them, and a
//! minute-old answer is as good.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most keys kept; past this the cache is emptied rather than grown (keys are few by
/// construction: a period and a clamped limit).
const MAX_KEYS: usize = 1024;

/// Values by key, each kept for the cache's time to live.
#[derive(Debug)]
pub struct TtlCache<K, V> {
    ttl: Duration,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    /// An empty cache whose entries live `ttl`.
    pub fn new(ttl: Duration) -> TtlCache<K, V> {
        TtlCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The value stored under `key` at most `ttl` before `now`.
    pub fn get(&self, key: &K, now: Instant) -> Option<V> {
        // A poisoned lock only means another request panicked mid-insert; entries are whole.
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (at, value) = entries.get(key)?;
        (now.saturating_duration_since(*at) < self.ttl).then(|| value.clone())
    }

    /// Stores `value` under `key` as of `now`.
    pub fn put(&self, key: K, value: V, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_KEYS && !entries.contains_key(&key) {
            entries.clear();
        }
        entries.insert(key, (now, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_after_the_ttl() {
        let cache = TtlCache::new(Duration::from_secs(60));
        let t0 = Instant::now();
        assert_eq!(cache.get(&1, t0), None);
        cache.put(1, "a", t0);
        assert_eq!(cache.get(&1, t0 + Duration::from_secs(59)), Some("a"));
        assert_eq!(cache.get(&1, t0 + Duration::from_secs(60)), None);
        assert_eq!(cache.get(&2, t0), None);
    }
}

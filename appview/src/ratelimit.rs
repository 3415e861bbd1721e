//! Per-client rate limiting of every route: a token bucket per IP address (IPv6 per /64, the
//! block one host usually holds), in bounded memory. Every answer carries the `RateLimit-*`
//! headers of draft-ietf-httpapi-ratelimit-headers; a refused one is 429 with `Retry-After`,
//! as an XRPC `RateLimitExceeded` error on `/xrpc/` and the web API's body elsewhere.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::XrpcError;
use crate::web::WebError;

/// Most clients tracked at once. Past it, buckets that have refilled are forgotten (they hold
/// nothing a new bucket would not); if all are in use, every bucket is reset, which at worst
/// lets a flood of distinct addresses through for one window.
const MAX_CLIENTS: usize = 100_000;

/// How many requests a client may make in a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Requests allowed per window (also the burst a quiet client may spend at once).
    pub limit: u32,
    /// The window over which `limit` refills.
    pub window: Duration,
    /// Key clients by the last `X-Forwarded-For` entry (the address our reverse proxy saw)
    /// instead of the peer address. Only behind a proxy that sets it: otherwise clients forge it.
    pub trust_forwarded: bool,
}

impl Default for RateLimitConfig {
    /// 3000 requests per 5 minutes, the limit the reference PDS applies per IP to reads.
    fn default() -> RateLimitConfig {
        RateLimitConfig {
            limit: 3000,
            window: Duration::from_secs(300),
            trust_forwarded: false,
        }
    }
}

/// A client's tokens as of `at`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The decision for one request.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Decision {
    allowed: bool,
    /// Whole tokens left after this request.
    remaining: u32,
    /// Seconds until the bucket is full again (allowed), or until one token is (refused).
    reset_secs: u64,
}

/// The buckets of every recent client, shared by all routes.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    config: RateLimitConfig,
    buckets: Arc<Mutex<HashMap<IpAddr, Bucket>>>,
}

impl RateLimiter {
    /// A limiter with no clients yet. A zero `limit` or window is raised to one.
    pub fn new(mut config: RateLimitConfig) -> RateLimiter {
        config.limit = config.limit.max(1);
        config.window = config.window.max(Duration::from_secs(1));
        RateLimiter {
            config,
            buckets: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Tokens per second.
    fn rate(&self) -> f64 {
        f64::from(self.config.limit) / self.config.window.as_secs_f64()
    }

    /// Spends one of `client`'s tokens at `now`, if it has one.
    fn check(&self, client: IpAddr, now: Instant) -> Decision {
        let capacity = f64::from(self.config.limit);
        let rate = self.rate();
        // A poisoned lock only means a panic elsewhere mid-update; buckets stay whole.
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_CLIENTS && !buckets.contains_key(&client) {
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < capacity
            });
            if buckets.len() >= MAX_CLIENTS {
                buckets.clear();
            }
        }
        let bucket = buckets.entry(client).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(capacity);
        bucket.at = now;
        let allowed = bucket.tokens >= 1.0;
        if allowed {
            bucket.tokens -= 1.0;
        }
        let missing = if allowed {
            capacity - bucket.tokens
        } else {
            1.0 - bucket.tokens
        };
        Decision {
            allowed,
            remaining: whole(bucket.tokens),
            reset_secs: secs_ceil(missing / rate),
        }
    }

    /// The headers every answer carries.
    fn headers(&self, decision: Decision) -> [(HeaderName, HeaderValue); 4] {
        let policy = format!("{};w={}", self.config.limit, self.config.window.as_secs());
        [
            (
                HeaderName::from_static("ratelimit-limit"),
                HeaderValue::from(self.config.limit),
            ),
            (
                HeaderName::from_static("ratelimit-remaining"),
                HeaderValue::from(decision.remaining),
            ),
            (
                HeaderName::from_static("ratelimit-reset"),
                HeaderValue::from(decision.reset_secs),
            ),
            (
                HeaderName::from_static("ratelimit-policy"),
                HeaderValue::from_str(&policy).unwrap_or(HeaderValue::from_static("")),
            ),
        ]
    }

    /// Who is asking: the peer, or behind a trusted proxy the address it forwarded for.
    fn client(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> Option<IpAddr> {
        let forwarded = self
            .config
            .trust_forwarded
            .then(|| forwarded_for(headers))
            .flatten();
        forwarded.or(peer).map(key)
    }
}

/// The middleware. Requests without a peer address (in-process calls) are not limited.
pub async fn limit(State(limiter): State<RateLimiter>, request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let Some(client) = limiter.client(request.headers(), peer) else {
        return next.run(request).await;
    };
    let decision = limiter.check(client, Instant::now());
    let mut response = if decision.allowed {
        next.run(request).await
    } else if request.uri().path().starts_with("/xrpc/") {
        XrpcError::RateLimitExceeded.into_response()
    } else {
        WebError::RateLimited("too many requests").into_response()
    };
    let headers = response.headers_mut();
    for (name, value) in limiter.headers(decision) {
        headers.insert(name, value);
    }
    if !decision.allowed {
        headers.insert(
            axum::http::header::RETRY_AFTER,
            HeaderValue::from(decision.reset_secs),
        );
    }
    response
}

/// The last `X-Forwarded-For` entry: the one our proxy appended (earlier ones are the client's
/// own claims).
fn forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    let last = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .next_back()?;
    last.trim().parse().ok()
}

/// The bucket key: IPv4 as is, IPv6 by its /64.
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// `tokens` rounded down, within `u32`.
fn whole(tokens: f64) -> u32 {
    // Tokens never exceed the configured u32 limit nor go negative.
    let floor = tokens.floor().clamp(0.0, f64::from(u32::MAX));
    u32::try_from(floor as u64).unwrap_or(u32::MAX)
}

/// `secs` rounded up to whole seconds.
fn secs_ceil(secs: f64) -> u64 {
    Duration::try_from_secs_f64(secs.max(0.0))
        .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0))
        .unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(limit: u32, secs: u64) -> RateLimiter {
        RateLimiter::new(RateLimitConfig {
            limit,
            window: Duration::from_secs(secs),
            trust_forwarded: false,
        })
    }

    #[test]
    fn buckets_spend_refill_and_refuse() {
        let limiter = limiter(2, 10);
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        let other: IpAddr = "192.0.2.2".parse().expect("ip");
        let t0 = Instant::now();
        let first = limiter.check(ip, t0);
        assert_eq!(
            (first.allowed, first.remaining, first.reset_secs),
            (true, 1, 5)
        );
        let second = limiter.check(ip, t0);
        assert_eq!((second.allowed, second.remaining), (true, 0));
        let refused = limiter.check(ip, t0);
        assert_eq!(
            (refused.allowed, refused.remaining, refused.reset_secs),
            (false, 0, 5)
        );
        assert!(limiter.check(other, t0).allowed, "clients are separate");
        // One token per 5 s comes back.
        assert!(limiter.check(ip, t0 + Duration::from_secs(5)).allowed);
        assert!(!limiter.check(ip, t0 + Duration::from_secs(5)).allowed);
    }

    #[test]
    fn forwarded_addresses_only_when_trusted() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("203.0.113.9, 198.51.100.7"),
        );
        let peer: IpAddr = "10.0.0.1".parse().expect("ip");
        assert_eq!(limiter(1, 1).client(&headers, Some(peer)), Some(peer));
        let trusting = RateLimiter::new(RateLimitConfig {
            trust_forwarded: true,
            ..RateLimitConfig::default()
        });
        let proxied: IpAddr = "198.51.100.7".parse().expect("ip");
        assert_eq!(trusting.client(&headers, Some(peer)), Some(proxied));
        assert_eq!(trusting.client(&HeaderMap::new(), Some(peer)), Some(peer));
        let v6: IpAddr = "2001:db8:1:2:3:4:5:6".parse().expect("ip");
        let block: IpAddr = "2001:db8:1:2::".parse().expect("ip");
        assert_eq!(key(v6), block);
    }
}

//! `POST /tracks/{id}/play`: plays reported by the web client's player (it applies the
//! listening threshold), deduplicated per listener and rate-limited per client address.
//!
//! The listener is the `plyr_play_id` cookie (issued on the first play, as upstream does), else
//! the client address. A listener's plays of one track count once per window: the track's
//! duration clamped to 30 s..1 h, or 5 min when unknown.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{ConnectInfo, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use super::Web;
use super::error::WebError;
use super::track;
use crate::queries;

/// The cookie naming an anonymous listener.
const COOKIE: &str = "plyr_play_id";
/// Its lifetime (180 days, upstream's).
const COOKIE_MAX_AGE_SECS: u64 = 180 * 24 * 3600;
/// Dedup window bounds and the window of a track of unknown duration.
const WINDOW_SECS: (i32, i32) = (30, 3600);
const UNKNOWN_DURATION_WINDOW_SECS: i32 = 300;
/// The rate limit's window.
const RATE_WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked at once; past this, expired entries are dropped, and if none are, all are
/// (a burst from that many addresses resets the limit rather than growing memory).
const MAX_TRACKED: usize = 100_000;

/// Fixed-window play limits per client address.
#[derive(Debug)]
pub struct PlayLimiter {
    per_window: u32,
    windows: Mutex<HashMap<Option<IpAddr>, (Instant, u32)>>,
}

impl PlayLimiter {
    /// A limiter allowing `per_minute` plays per address and minute.
    pub fn new(per_minute: u32) -> PlayLimiter {
        PlayLimiter {
            per_window: per_minute,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one play from `addr`'s allowance; false when it is spent.
    pub fn allow(&self, addr: Option<IpAddr>, now: Instant) -> bool {
        // A poisoned lock only means another request panicked mid-update; the counts are
        // still counts.
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() >= MAX_TRACKED && !windows.contains_key(&addr) {
            windows.retain(|_, (start, _)| now.duration_since(*start) < RATE_WINDOW);
            if windows.len() >= MAX_TRACKED {
                windows.clear();
            }
        }
        let (start, count) = windows.entry(addr).or_insert((now, 0));
        if now.duration_since(*start) >= RATE_WINDOW {
            *start = now;
            *count = 0;
        }
        if *count >= self.per_window {
            return false;
        }
        *count += 1;
        true
    }
}

/// The client's address, when the server was started with connect info (`serve` does).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// The `plyr_play_id` cookie, when it holds a value we could have issued.
fn play_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// A fresh listener id: 128 random bits in hex.
fn new_listener_id() -> Result<String, WebError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| WebError::Internal(format!("no randomness: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The dedup window of a track record.
fn window_secs(record: &Value) -> i32 {
    match record.get("duration").and_then(Value::as_i64) {
        Some(d) => {
            let d = d.clamp(i64::from(WINDOW_SECS.0), i64::from(WINDOW_SECS.1));
            i32::try_from(d).unwrap_or(UNKNOWN_DURATION_WINDOW_SECS)
        }
        None => UNKNOWN_DURATION_WINDOW_SECS,
    }
}

/// Output of a play.
#[derive(Debug, Serialize)]
pub struct PlayCount {
    play_count: i64,
}

/// `POST /tracks/{id}/play`: counts a play unless this listener's last one is inside the
/// window; answers the track's play count. A body (`{"ref": ...}`) is accepted and ignored:
/// share links are upstream's.
pub async fn play(
    State(db): State<PgPool>,
    State(web): State<Web>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let row = track::visible(&db, &id).await?;
    if !web.plays.allow(addr, Instant::now()) {
        return Err(WebError::RateLimited("plays per minute"));
    }
    let cookie = play_cookie(&headers);
    let issued = match cookie {
        Some(_) => None,
        None => Some(new_listener_id()?),
    };
    // Hashed, so the table holds no address. Without a cookie the address decides, and the
    // cookie issued now is marked too, so the next play (which sends it) is deduplicated.
    let listener = match (&cookie, addr) {
        (Some(c), _) => Sha256::digest(format!("cookie:{c}")),
        (None, Some(ip)) => Sha256::digest(format!("ip:{ip}")),
        (None, None) => Sha256::digest("ip:unknown"),
    };
    let alias = issued
        .as_ref()
        .map(|id| Sha256::digest(format!("cookie:{id}")));
    let window = f64::from(window_secs(&row.record));
    let (play_count, _counted) = queries::play::record(
        &db,
        &row.uri,
        &row.did,
        &listener[..],
        alias.as_ref().map(|a| &a[..]),
        window,
    )
    .await?;
    let mut response = Json(PlayCount { play_count }).into_response();
    if let Some(id) = issued {
        let secure = if web.config.public_url.starts_with("https://") {
            "; Secure"
        } else {
            ""
        };
        let cookie = format!(
            "{COOKIE}={id}; Max-Age={COOKIE_MAX_AGE_SECS}; Path=/; HttpOnly; SameSite=Lax{secure}"
        );
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_follow_duration() {
        let cases = [
            (serde_json::json!({"duration": 10}), 30),
            (serde_json::json!({"duration": 200}), 200),
            (serde_json::json!({"duration": 99999}), 3600),
            (serde_json::json!({}), 300),
            (serde_json::json!({"duration": "x"}), 300),
        ];
        for (record, want) in cases {
            assert_eq!(window_secs(&record), want, "{record}");
        }
    }

    #[test]
    fn limiter_resets_each_window() {
        let limiter = PlayLimiter::new(2);
        let t0 = Instant::now();
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        let b = Some(IpAddr::from([10, 0, 0, 2]));
        assert!(limiter.allow(a, t0));
        assert!(limiter.allow(a, t0));
        assert!(!limiter.allow(a, t0));
        assert!(limiter.allow(b, t0));
        assert!(limiter.allow(a, t0 + RATE_WINDOW));
    }

    #[test]
    fn cookies_are_read_only_when_plausible() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; plyr_play_id=abc123"),
        );
        assert_eq!(play_cookie(&headers).as_deref(), Some("abc123"));
        headers.insert(header::COOKIE, HeaderValue::from_static("plyr_play_id=a;b"));
        assert_eq!(play_cookie(&headers).as_deref(), Some("a"));
        headers.insert(header::COOKIE, HeaderValue::from_static("plyr_play_id=<x>"));
        assert_eq!(play_cookie(&headers), None);
    }
}

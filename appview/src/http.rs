//! HTTP caching of read responses: every successful GET gets a strong `ETag` over its body and
//! a `Cache-Control` (public and short for anonymous requests, `private, no-store` for
//! authenticated ones, whose `viewer` fields are the caller's own), and an `If-None-Match`
//! that matches answers 304 without the body.

use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, ETAG, IF_NONE_MATCH, VARY};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// Bodies larger than this are passed through without an ETag: every JSON answer is far
/// smaller (a 100-track page is ~100 KB), and buffering a stream would defeat it.
const MAX_TAGGED_BODY: usize = 4 * 1024 * 1024;

/// How responses may be cached.
#[derive(Debug, Clone, Copy)]
pub struct HttpCacheConfig {
    /// `max-age` of anonymous responses: how stale a shared cache may serve a view (a new
    /// like shows up within it).
    pub max_age: Duration,
}

impl Default for HttpCacheConfig {
    /// Five seconds: long enough for a CDN to absorb a burst on one track, short enough that
    /// a new like or track is visible almost at once.
    fn default() -> HttpCacheConfig {
        HttpCacheConfig {
            max_age: Duration::from_secs(5),
        }
    }
}

/// The middleware: tags and marks successful GET responses that carry neither header yet (blob
/// routes set their own), and answers 304 when the client holds the same body. HEAD is left
/// alone: the router empties its body before we would see it, so a tag would be of nothing.
pub async fn conditional(
    State(config): State<HttpCacheConfig>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() != Method::GET {
        return next.run(request).await;
    }
    let authenticated = request.headers().contains_key(AUTHORIZATION);
    let if_none_match = request.headers().get(IF_NONE_MATCH).cloned();
    let response = next.run(request).await;
    if response.status() != StatusCode::OK
        || response.headers().contains_key(ETAG)
        || response.headers().contains_key(CACHE_CONTROL)
    {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let cache_control = if authenticated {
        HeaderValue::from_static("private, no-store")
    } else {
        cache_control(config.max_age)
    };
    parts.headers.insert(CACHE_CONTROL, cache_control);
    // Shared caches must not hand one caller's viewer state to another.
    parts
        .headers
        .append(VARY, HeaderValue::from_static("Authorization"));
    let bytes = match to_bytes(body, MAX_TAGGED_BODY).await {
        Ok(bytes) => bytes,
        Err(err) => {
            tracing::warn!(error = %err, "response body not tagged");
            return (StatusCode::INTERNAL_SERVER_ERROR, "").into_response();
        }
    };
    let etag = etag(&bytes);
    if if_none_match.is_some_and(|v| matches(&v, &etag)) {
        let mut headers = HeaderMap::new();
        for name in [CACHE_CONTROL, VARY] {
            for value in parts.headers.get_all(&name) {
                headers.append(name.clone(), value.clone());
            }
        }
        headers.insert(ETAG, etag);
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    parts.headers.insert(ETAG, etag);
    Response::from_parts(parts, Body::from(bytes))
}

fn cache_control(max_age: Duration) -> HeaderValue {
    HeaderValue::from_str(&format!("public, max-age={}", max_age.as_secs()))
        .unwrap_or_else(|_| HeaderValue::from_static("no-cache"))
}

/// A strong ETag: 128 bits of the body's SHA-256, base64url.
fn etag(body: &[u8]) -> HeaderValue {
    let digest = Sha256::digest(body);
    let tag = format!("\"{}\"", URL_SAFE_NO_PAD.encode(&digest[..16]));
    HeaderValue::from_str(&tag).unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}

/// Whether an `If-None-Match` list names `etag` (weak comparison, as RFC 9110 asks for
/// If-None-Match), or is `*`.
fn matches(header: &HeaderValue, etag: &HeaderValue) -> bool {
    let Ok(list) = header.to_str() else {
        return false;
    };
    let Ok(etag) = etag.to_str() else {
        return false;
    };
    list.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_lists() {
        let tag = etag(b"{}");
        let tag_text = tag.to_str().expect("ascii").to_owned();
        let cases = [
            (tag_text.clone(), true),
            (format!("W/{tag_text}"), true),
            (format!("\"other\", {tag_text}"), true),
            ("*".to_owned(), true),
            ("\"other\"".to_owned(), false),
            (tag_text.trim_matches('"').to_owned(), false),
        ];
        for (header, want) in cases {
            let header = HeaderValue::from_str(&header).expect("header");
            assert_eq!(matches(&header, &tag), want, "{header:?}");
        }
        assert_ne!(etag(b"{}"), etag(b"{ }"), "the tag follows the bytes");
    }

    #[tokio::test]
    async fn authenticated_responses_are_private() {
        use axum::Router;
        use axum::middleware::from_fn_with_state;
        use axum::routing::get;
        use tower::ServiceExt;

        let app = Router::new()
            .route("/x", get(|| async { "{}" }))
            .layer(from_fn_with_state(HttpCacheConfig::default(), conditional));
        let cases = [
            (None, "public, max-age=5"),
            (Some("Bearer t"), "private, no-store"),
        ];
        for (auth, want) in cases {
            let mut req = Request::get("/x");
            if let Some(auth) = auth {
                req = req.header(AUTHORIZATION, auth);
            }
            let resp = app
                .clone()
                .oneshot(req.body(Body::empty()).expect("request"))
                .await
                .expect("infallible");
            assert_eq!(resp.status(), StatusCode::OK);
            assert_eq!(resp.headers()[CACHE_CONTROL], want, "{auth:?}");
            assert_eq!(resp.headers()[VARY], "Authorization");
            assert!(resp.headers().contains_key(ETAG));
        }
    }
}

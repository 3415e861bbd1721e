//! Credentialed CORS for the web API: the request's Origin is echoed, with
//! `Access-Control-Allow-Credentials: true` and `Vary: Origin`, when it is on the configured
//! list; preflights mirror the requested method and headers (a literal `*` means nothing to a
//! credentialed request).

use axum::http::HeaderValue;
use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer};

use super::WebConfig;

/// The CORS layer for `config.allowed_origins`.
pub fn layer(config: &WebConfig) -> CorsLayer {
    let patterns = config.allowed_origins.clone();
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin: &HeaderValue, _| {
            origin
                .to_str()
                .is_ok_and(|origin| patterns.iter().any(|p| matches(p, origin)))
        }))
        .allow_credentials(true)
        .allow_methods(AllowMethods::mirror_request())
        .allow_headers(AllowHeaders::mirror_request())
}

/// Whether `origin` (as a browser sends it) matches one allowed-origins entry.
pub fn matches(pattern: &str, origin: &str) -> bool {
    if pattern == origin {
        return true;
    }
    if pattern == "https://*" {
        return origin
            .strip_prefix("https://")
            .is_some_and(|host| !host.is_empty() && !host.contains('/'));
    }
    // `scheme://host:*`: that host on any port (or none).
    if let Some(base) = pattern.strip_suffix(":*") {
        return match origin.strip_prefix(base) {
            Some("") => true,
            Some(rest) => rest
                .strip_prefix(':')
                .is_some_and(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())),
            None => false,
        };
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_patterns() {
        let cases = [
            ("http://localhost:*", "http://localhost:5173", true),
            ("http://localhost:*", "http://localhost", true),
            (
                "http://localhost:*",
                "http://localhost.evil.test:5173",
                false,
            ),
            ("http://localhost:*", "http://localhost:51x", false),
            ("http://localhost:*", "https://localhost:5173", false),
            ("https://plyr.example", "https://plyr.example", true),
            ("https://plyr.example", "https://plyr.example.evil", false),
            ("https://*", "https://anything.test", true),
            ("https://*", "http://anything.test", false),
            ("https://*", "https://", false),
            ("null", "null", true),
            ("null", "http://localhost:1", false),
        ];
        for (pattern, origin, want) in cases {
            assert_eq!(matches(pattern, origin), want, "{pattern} vs {origin}");
        }
    }
}

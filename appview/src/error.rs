//! The one error type of the XRPC layer: every failure a handler can meet, rendered as the
//! ATProto error envelope `{"error","message"}` with the matching HTTP status.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A failed XRPC call. Client errors carry a message for the caller; server errors name the
/// error only and send their cause to tracing.
#[derive(Debug, thiserror::Error)]
pub enum XrpcError {
    /// Bad params: missing, malformed, out of range, or a cursor we did not issue.
    #[error("{0}")]
    InvalidRequest(String),
    /// The record asked for is missing, deleted or belongs to a hidden actor.
    #[error("{0}")]
    NotFound(String),
    /// The actor exists but is deactivated.
    #[error("{0}")]
    AccountDeactivated(String),
    /// The actor was taken down or suspended.
    #[error("{0}")]
    AccountTakedown(String),
    /// A `/xrpc/*` method this server does not serve.
    #[error("method not implemented")]
    MethodNotImplemented,
    /// A query failed; the cause is logged, never sent.
    #[error("database query failed")]
    Database(#[from] sqlx::Error),
    /// A failure outside the database (middleware); the cause is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
    /// The health check could not reach the database.
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// The request ran past the router's timeout.
    #[error("request timed out")]
    Timeout,
    /// The client sent more requests than its rate limit allows (see `Retry-After`).
    #[error("rate limit exceeded")]
    RateLimitExceeded,
    /// A service-auth token was required and missing, or did not verify; `name` is the
    /// spec's (AuthMissing, BadJwt, JwtExpired, BadJwtAudience, BadJwtSignature, ...).
    #[error("{message}")]
    Unauthorized {
        /// The XRPC error name.
        name: &'static str,
        /// Why, for the caller.
        message: String,
    },
}

impl XrpcError {
    /// The HTTP status the XRPC spec pairs with this error.
    pub fn status(&self) -> StatusCode {
        match self {
            XrpcError::InvalidRequest(_)
            | XrpcError::AccountDeactivated(_)
            | XrpcError::AccountTakedown(_) => StatusCode::BAD_REQUEST,
            XrpcError::NotFound(_) => StatusCode::NOT_FOUND,
            XrpcError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            XrpcError::MethodNotImplemented => StatusCode::NOT_IMPLEMENTED,
            XrpcError::Database(_) | XrpcError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            XrpcError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            XrpcError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            XrpcError::RateLimitExceeded => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The `error` name of the envelope, as declared in the lexicons.
    pub fn name(&self) -> &'static str {
        match self {
            XrpcError::InvalidRequest(_) => "InvalidRequest",
            XrpcError::NotFound(_) => "NotFound",
            XrpcError::AccountDeactivated(_) => "AccountDeactivated",
            XrpcError::AccountTakedown(_) => "AccountTakedown",
            XrpcError::MethodNotImplemented => "MethodNotImplemented",
            XrpcError::Database(_) | XrpcError::Internal(_) => "InternalServerError",
            XrpcError::Unavailable(_) => "ServiceUnavailable",
            XrpcError::Timeout => "UpstreamTimeout",
            XrpcError::RateLimitExceeded => "RateLimitExceeded",
            XrpcError::Unauthorized { name, .. } => name,
        }
    }
}

/// The chain of `err`'s sources, each after ": ", for the log line of a server error.
pub fn causes(err: &dyn std::error::Error) -> String {
    let mut cause = String::new();
    let mut source = err.source();
    while let Some(err) = source {
        cause.push_str(": ");
        cause.push_str(&err.to_string());
        source = err.source();
    }
    cause
}

/// The wire form of an error.
#[derive(Debug, Serialize)]
struct ErrorBody {
    error: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

impl IntoResponse for XrpcError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = if status.is_server_error() {
            // The cause may hold SQL, hostnames or driver text: it goes to the log only.
            let cause = causes(&self);
            tracing::error!(error = %self, cause = %cause, status = status.as_u16(), "xrpc request failed");
            None
        } else {
            Some(self.to_string())
        };
        let body = ErrorBody {
            error: self.name(),
            message,
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            // The XRPC spec pairs 401 with a challenge naming the scheme.
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_name_follow_the_spec() {
        let cases = [
            (XrpcError::InvalidRequest("x".into()), 400, "InvalidRequest"),
            (XrpcError::NotFound("x".into()), 404, "NotFound"),
            (
                XrpcError::AccountDeactivated("x".into()),
                400,
                "AccountDeactivated",
            ),
            (
                XrpcError::AccountTakedown("x".into()),
                400,
                "AccountTakedown",
            ),
            (XrpcError::MethodNotImplemented, 501, "MethodNotImplemented"),
            (
                XrpcError::Database(sqlx::Error::PoolTimedOut),
                500,
                "InternalServerError",
            ),
            (XrpcError::Internal("x".into()), 500, "InternalServerError"),
            (
                XrpcError::Unavailable(sqlx::Error::PoolClosed),
                503,
                "ServiceUnavailable",
            ),
            (XrpcError::Timeout, 504, "UpstreamTimeout"),
            (XrpcError::RateLimitExceeded, 429, "RateLimitExceeded"),
        ];
        for (err, status, name) in cases {
            assert_eq!(err.status().as_u16(), status, "{err:?}");
            assert_eq!(err.name(), name, "{err:?}");
        }
    }
}

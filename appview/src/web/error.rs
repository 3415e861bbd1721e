//! The web API's error type: upstream's FastAPI bodies (`{"detail": ...}`), so the plyr.fm web
//! client sees the statuses and shapes it was written against.

use std::borrow::Cow;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A failed web API call. Client errors carry the text upstream sends; server errors name the
/// error only and send their cause to tracing.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// 404 with upstream's message (`track not found`, `artist not found`, ...).
    #[error("{0}")]
    NotFound(Cow<'static, str>),
    /// 401: the caller is anonymous (this AppView has no sessions).
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 400 with a message (`invalid cursor format`).
    #[error("{0}")]
    BadRequest(&'static str),
    /// 422: a parameter failed validation, in FastAPI's `detail` list form.
    #[error("{kind} at {location}.{name}: {message}")]
    Validation {
        /// FastAPI's error type (`int_parsing`, `string_too_short`, `missing`, ...).
        kind: &'static str,
        /// `query`, `path` or `body`.
        location: &'static str,
        /// The parameter's name.
        name: &'static str,
        /// What was wrong.
        message: String,
        /// The value sent, null when missing.
        input: Value,
    },
    /// 501 with a message (an oEmbed `format` other than json).
    #[error("{0}")]
    NotImplemented(&'static str),
    /// 429: a listener sent plays faster than the limit.
    #[error("rate limit exceeded: {0}")]
    RateLimited(&'static str),
    /// A query failed; the cause is logged, never sent.
    #[error("database query failed")]
    Database(#[from] sqlx::Error),
    /// The request ran past the router's timeout.
    #[error("request timed out")]
    Timeout,
    /// A failure outside the database (middleware); the cause is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl WebError {
    /// A 422 for query parameter `name`.
    pub fn query(
        name: &'static str,
        kind: &'static str,
        message: String,
        input: Value,
    ) -> WebError {
        WebError::Validation {
            kind,
            location: "query",
            name,
            message,
            input,
        }
    }

    /// A 422 for path parameter `name`.
    pub fn path(name: &'static str, kind: &'static str, message: String, input: Value) -> WebError {
        WebError::Validation {
            kind,
            location: "path",
            name,
            message,
            input,
        }
    }

    /// The HTTP status upstream answers this error with.
    pub fn status(&self) -> StatusCode {
        match self {
            WebError::NotFound(_) => StatusCode::NOT_FOUND,
            WebError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            WebError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            WebError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            WebError::Database(_) | WebError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            WebError::Timeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match &self {
            WebError::Validation {
                kind,
                location,
                name,
                message,
                input,
            } => json!({"detail": [{
                "type": kind,
                "loc": [location, name],
                "msg": message,
                "input": input,
            }]}),
            // slowapi's body: the one upstream error without `detail`.
            WebError::RateLimited(limit) => {
                json!({"error": format!("Rate limit exceeded: {limit}")})
            }
            WebError::Database(_) | WebError::Internal(_) | WebError::Timeout => {
                // The cause may hold SQL, hostnames or driver text: it goes to the log only.
                let cause = crate::error::causes(&self);
                tracing::error!(error = %self, cause = %cause, status = status.as_u16(), "web request failed");
                let detail = if matches!(self, WebError::Timeout) {
                    "Gateway Timeout"
                } else {
                    "Internal Server Error"
                };
                json!({"detail": detail})
            }
            other => json!({"detail": other.to_string()}),
        };
        (status, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_upstream() {
        let cases = [
            (WebError::NotFound("track not found".into()), 404),
            (WebError::Unauthorized("x"), 401),
            (WebError::BadRequest("invalid cursor format"), 400),
            (
                WebError::query("q", "missing", "Field required".into(), Value::Null),
                422,
            ),
            (WebError::NotImplemented("x"), 501),
            (WebError::RateLimited("x"), 429),
            (WebError::Database(sqlx::Error::PoolTimedOut), 500),
            (WebError::Internal("x".into()), 500),
            (WebError::Timeout, 504),
        ];
        for (err, status) in cases {
            assert_eq!(err.status().as_u16(), status, "{err:?}");
        }
    }
}

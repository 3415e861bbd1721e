//! Query and path parameters of the web API, read the way upstream's FastAPI reads them:
//! repeated keys collected, integers validated, and every refusal a 422 naming the parameter.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::WebError;
use crate::cursor::TimeCursor;

/// Query params deserialized with `serde_html_form` (repeated keys into a `Vec`, unknown keys
/// ignored). Declare every field as a string or `Vec<String>` and validate it afterwards, so
/// that a bad value is a 422 naming it rather than a generic parse failure.
#[derive(Debug)]
pub struct WebQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for WebQuery<T> {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, WebError> {
        let query = parts.uri.query().unwrap_or_default();
        serde_html_form::from_str(query).map(WebQuery).map_err(|e| {
            WebError::query(
                "query",
                "value_error",
                format!("invalid query string: {e}"),
                Value::String(query.to_owned()),
            )
        })
    }
}

/// What to do with an integer outside its range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutOfRange {
    /// Bring it into the range (upstream clamps `limit` on the track lists).
    Clamp,
    /// Refuse it with a 422.
    Reject,
}

/// An integer query param: `default` when absent or empty, else an integer in `min..=max`.
pub fn int(
    name: &'static str,
    raw: Option<&str>,
    default: i64,
    (min, max): (i64, i64),
    out_of_range: OutOfRange,
) -> Result<i64, WebError> {
    let Some(raw) = raw.filter(|s| !s.is_empty()) else {
        return Ok(default);
    };
    let n: i64 = raw.trim().parse().map_err(|_| {
        WebError::query(
            name,
            "int_parsing",
            "Input should be a valid integer, unable to parse string as an integer".to_owned(),
            Value::String(raw.to_owned()),
        )
    })?;
    match out_of_range {
        OutOfRange::Clamp => Ok(n.clamp(min, max)),
        OutOfRange::Reject if n < min => Err(WebError::query(
            name,
            "greater_than_equal",
            format!("Input should be greater than or equal to {min}"),
            Value::String(raw.to_owned()),
        )),
        OutOfRange::Reject if n > max => Err(WebError::query(
            name,
            "less_than_equal",
            format!("Input should be less than or equal to {max}"),
            Value::String(raw.to_owned()),
        )),
        OutOfRange::Reject => Ok(n),
    }
}

/// A path segment that must be an integer id.
pub fn path_id(name: &'static str, raw: &str) -> Result<i64, WebError> {
    raw.parse().map_err(|_| {
        WebError::path(
            name,
            "int_parsing",
            "Input should be a valid integer, unable to parse string as an integer".to_owned(),
            Value::String(raw.to_owned()),
        )
    })
}

/// A query param the endpoint cannot do without.
pub fn required(name: &'static str, raw: Option<String>) -> Result<String, WebError> {
    raw.ok_or_else(|| WebError::query(name, "missing", "Field required".to_owned(), Value::Null))
}

/// The `/tracks/` cursor: one this server issued (opaque, keeps ties between tracks of the same
/// instant), or upstream's form, an ISO datetime meaning "strictly older than". Empty is the
/// first page.
pub fn track_cursor(raw: Option<&str>) -> Result<Option<TimeCursor>, WebError> {
    let Some(raw) = raw.filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if let Ok(cursor) = TimeCursor::decode(raw) {
        return Ok(Some(cursor));
    }
    let at = DateTime::parse_from_rfc3339(raw)
        .map_err(|_| WebError::BadRequest("invalid cursor format"))?
        .with_timezone(&Utc);
    // Every URI sorts after '', so (at, '') keeps exactly the rows older than `at`.
    Ok(Some(TimeCursor {
        at,
        uri: String::new(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_clamp_or_reject() {
        let cases: [(Option<&str>, OutOfRange, Option<i64>); 9] = [
            (None, OutOfRange::Clamp, Some(50)),
            (Some(""), OutOfRange::Clamp, Some(50)),
            (Some("7"), OutOfRange::Clamp, Some(7)),
            (Some("0"), OutOfRange::Clamp, Some(1)),
            (Some("1000"), OutOfRange::Clamp, Some(100)),
            (Some("1000"), OutOfRange::Reject, None),
            (Some("0"), OutOfRange::Reject, None),
            (Some("abc"), OutOfRange::Clamp, None),
            (Some("99999999999999999999"), OutOfRange::Clamp, None),
        ];
        for (raw, mode, want) in cases {
            assert_eq!(int("limit", raw, 50, (1, 100), mode).ok(), want, "{raw:?}");
        }
    }

    #[test]
    fn cursors_are_ours_or_iso_datetimes() {
        let ours = TimeCursor::after(DateTime::UNIX_EPOCH, "at://did:plc:a/fm.plyr.track/x");
        assert_eq!(
            track_cursor(Some(&ours)).ok().flatten().map(|c| c.uri),
            Some("at://did:plc:a/fm.plyr.track/x".to_owned())
        );
        let iso = track_cursor(Some("2026-01-01T00:00:00.000000+00:00"))
            .ok()
            .flatten();
        assert_eq!(iso.map(|c| c.at.timestamp()), Some(1_767_225_600));
        assert!(matches!(
            track_cursor(Some("yesterday")),
            Err(WebError::BadRequest(_))
        ));
        assert!(matches!(track_cursor(Some("")), Ok(None)));
    }
}

//! Query-string parsing and bounding for every method: the `XrpcQuery` extractor (repeated
//! keys, unknown keys ignored), `limit`, cursors, actors and record URIs.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use plyr_lexicons::syntax::{self, AtUri};
use serde::de::DeserializeOwned;

use crate::cursor::{PositionCursor, SearchCursor, TimeCursor};
use crate::error::XrpcError;

/// `limit` when the client sends none (the lexicons' default).
pub const DEFAULT_LIMIT: u8 = 50;
/// Largest `limit` accepted; larger values are refused, not clamped.
pub const MAX_LIMIT: u8 = 100;
/// Shortest and longest search query, in characters: one character matches nearly
/// everything, and past 100 nobody is typing a name.
pub const QUERY_CHARS: (usize, usize) = (2, 100);

/// Query params deserialized from the raw query string with `serde_html_form`, which (unlike
/// axum's `Query`) collects repeated keys such as `uris=a&uris=b` into a `Vec`. An empty value
/// (`limit=`) reads as an absent param; a repeated single-valued key is an `InvalidRequest`.
#[derive(Debug)]
pub struct XrpcQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for XrpcQuery<T> {
    type Rejection = XrpcError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, XrpcError> {
        let query = parts.uri.query().unwrap_or_default();
        serde_html_form::from_str(query)
            .map(XrpcQuery)
            .map_err(|e| XrpcError::InvalidRequest(format!("invalid query parameters: {e}")))
    }
}

/// A page size in `1..=MAX_LIMIT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(u8);

impl Limit {
    /// Reads the `limit` param: absent means [`DEFAULT_LIMIT`]; anything but an integer in
    /// `1..=MAX_LIMIT` is refused.
    pub fn parse(raw: Option<&str>) -> Result<Limit, XrpcError> {
        let Some(raw) = raw else {
            return Ok(Limit(DEFAULT_LIMIT));
        };
        let out_of_range =
            || XrpcError::InvalidRequest(format!("limit must be an integer from 1 to {MAX_LIMIT}"));
        // u8's parser also takes "+5"; the wire form of an integer param is plain digits.
        if !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(out_of_range());
        }
        let n: u8 = raw.parse().map_err(|_| out_of_range())?;
        if !(1..=MAX_LIMIT).contains(&n) {
            return Err(out_of_range());
        }
        Ok(Limit(n))
    }

    /// Rows to serve.
    pub fn rows(self) -> usize {
        usize::from(self.0)
    }

    /// Rows to fetch: one more than served, so a next page is known to exist without a count.
    pub fn fetch(self) -> i64 {
        i64::from(self.0) + 1
    }
}

/// The `actor` param: a DID, or a handle normalized to lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActorRef {
    /// `did:method:id`.
    Did(String),
    /// A lowercase handle.
    Handle(String),
}

/// A param the method cannot do without.
pub fn required(name: &str, value: Option<String>) -> Result<String, XrpcError> {
    value.ok_or_else(|| XrpcError::InvalidRequest(format!("missing required parameter {name}")))
}

/// Reads an at-identifier param (DID or handle).
pub fn actor(name: &str, raw: &str) -> Result<ActorRef, XrpcError> {
    if raw.starts_with("did:") {
        syntax::validate_did(raw).map_err(|e| {
            XrpcError::InvalidRequest(format!("{name} must be a did or handle: {e}"))
        })?;
        return Ok(ActorRef::Did(raw.to_owned()));
    }
    syntax::validate_handle(raw)
        .map_err(|e| XrpcError::InvalidRequest(format!("{name} must be a did or handle: {e}")))?;
    Ok(ActorRef::Handle(syntax::normalize_handle(raw)))
}

/// A record's AT-URI with a DID authority (the form the indexer stores).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordUri {
    /// The URI as given.
    pub uri: String,
    /// Its authority, the repo's DID.
    pub did: String,
}

/// Reads a record URI param: `at://<did>/<collection>/<rkey>`.
pub fn record_uri(name: &str, raw: &str) -> Result<RecordUri, XrpcError> {
    let parsed = AtUri::parse(raw)
        .map_err(|e| XrpcError::InvalidRequest(format!("{name} must be an at-uri: {e}")))?;
    if !parsed.authority_is_did() {
        return Err(XrpcError::InvalidRequest(format!(
            "{name} must have a did authority"
        )));
    }
    if parsed.rkey().is_none() {
        return Err(XrpcError::InvalidRequest(format!(
            "{name} must name a record (collection and rkey)"
        )));
    }
    Ok(RecordUri {
        uri: raw.to_owned(),
        did: parsed.authority().to_owned(),
    })
}

/// Reads the `cursor` param of a time-ordered method. An empty cursor is the first page:
/// clients that keep `cursor: ""` between calls send one.
pub fn time_cursor(raw: Option<&str>) -> Result<Option<TimeCursor>, XrpcError> {
    raw.filter(|s| !s.is_empty())
        .map(|s| TimeCursor::decode(s).map_err(invalid_cursor))
        .transpose()
}

/// Reads the `cursor` param of a position-ordered method (empty: the first page).
pub fn position_cursor(raw: Option<&str>) -> Result<Option<PositionCursor>, XrpcError> {
    raw.filter(|s| !s.is_empty())
        .map(|s| PositionCursor::decode(s).map_err(invalid_cursor))
        .transpose()
}

/// Reads the `cursor` param of a search method (empty: the first page).
pub fn search_cursor(raw: Option<&str>) -> Result<Option<SearchCursor>, XrpcError> {
    raw.filter(|s| !s.is_empty())
        .map(|s| SearchCursor::decode(s).map_err(invalid_cursor))
        .transpose()
}

/// Reads the `q` param of a search method: required, [`QUERY_CHARS`] characters after
/// trimming.
pub fn search_query(raw: Option<String>) -> Result<String, XrpcError> {
    let q = required("q", raw)?;
    let q = q.trim();
    let chars = q.chars().count();
    if !(QUERY_CHARS.0..=QUERY_CHARS.1).contains(&chars) {
        return Err(XrpcError::InvalidRequest(format!(
            "q must be {} to {} characters",
            QUERY_CHARS.0, QUERY_CHARS.1
        )));
    }
    Ok(q.to_owned())
}

fn invalid_cursor(e: crate::cursor::CursorError) -> XrpcError {
    XrpcError::InvalidRequest(format!("invalid cursor: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_is_bounded_not_clamped() {
        let cases: [(Option<&str>, Option<usize>); 11] = [
            (None, Some(50)),
            (Some("1"), Some(1)),
            (Some("100"), Some(100)),
            (Some("0"), None),
            (Some("101"), None),
            (Some("-1"), None),
            (Some("abc"), None),
            (Some(""), None),
            (Some("1.5"), None),
            (Some("+5"), None),
            (Some("99999999999"), None),
        ];
        for (raw, want) in cases {
            let got = Limit::parse(raw).ok().map(Limit::rows);
            assert_eq!(got, want, "{raw:?}");
        }
        assert_eq!(Limit::parse(Some("7")).map(Limit::fetch).ok(), Some(8));
    }

    #[test]
    fn search_query_is_two_to_a_hundred_characters() {
        let cases = [
            (None, None),
            (Some(""), None),
            (Some("a"), None),
            (Some(" a "), None),
            (Some("ab"), Some("ab")),
            (Some(" é’ "), Some("é’")),
            (Some("é’"), Some("é’")),
        ];
        for (raw, want) in cases {
            let got = search_query(raw.map(str::to_owned)).ok();
            assert_eq!(got.as_deref(), want, "{raw:?}");
        }
        assert!(search_query(Some("x".repeat(100))).is_ok());
        let too_long = search_query(Some("x".repeat(101)));
        assert!(matches!(too_long, Err(XrpcError::InvalidRequest(_))));
    }

    #[test]
    fn actor_is_a_did_or_lowercased_handle() {
        let cases = [
            (
                "did:plc:abc123",
                Some(ActorRef::Did("did:plc:abc123".into())),
            ),
            ("Alice.Test", Some(ActorRef::Handle("alice.test".into()))),
            ("alice", None),
            ("did:", None),
            ("at://did:plc:abc", None),
            ("", None),
        ];
        for (raw, want) in cases {
            assert_eq!(actor("actor", raw).ok(), want, "{raw}");
        }
    }

    #[test]
    fn record_uri_needs_a_did_and_a_record() {
        let cases = [
            (
                "at://did:plc:abc/fm.plyr.track/3jzfcijpj2z2a",
                Some("did:plc:abc"),
            ),
            ("at://alice.test/fm.plyr.track/3jzfcijpj2z2a", None),
            ("at://did:plc:abc/fm.plyr.track", None),
            ("at://did:plc:abc", None),
            ("https://plyr.fm/track/1", None),
            ("", None),
        ];
        for (raw, want) in cases {
            let got = record_uri("uri", raw).ok().map(|u| u.did);
            assert_eq!(got.as_deref(), want, "{raw}");
        }
    }

    #[test]
    fn query_strings_keep_repeated_keys_and_ignore_unknown_ones() {
        #[derive(serde::Deserialize)]
        struct P {
            #[serde(default)]
            uris: Vec<String>,
            limit: Option<String>,
        }
        let parsed: Result<P, _> = serde_html_form::from_str("uris=a&other=1&uris=b%3Ac&limit=5");
        let Ok(p) = parsed else {
            panic!("query should parse");
        };
        assert_eq!(p.uris, ["a", "b:c"]);
        assert_eq!(p.limit.as_deref(), Some("5"));
    }
}

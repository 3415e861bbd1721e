//! Entry points for the fuzz targets in `fuzz/` (hidden from the docs): query-string parsing
//! and cursor decoding, reached without a router or database.

use serde::Deserialize;

use crate::cursor::{PositionCursor, SearchCursor, TimeCursor};
use crate::params::{self, Limit};

/// The parameters the XRPC methods take between them, read the way `XrpcQuery` reads them.
#[derive(Debug, Deserialize)]
struct AnyParams {
    limit: Option<String>,
    cursor: Option<String>,
    actor: Option<String>,
    uri: Option<String>,
    #[serde(default)]
    uris: Vec<String>,
}

/// Parses `query` as a method's query string, then bounds `limit`, reads `actor`, `uri`,
/// each of `uris` and `cursor` (every cursor shape). Returns how many values were accepted;
/// anything refused must come back as an `XrpcError`, never a panic.
#[doc(hidden)]
pub fn fuzz_xrpc_params(query: &str) -> usize {
    let Ok(p) = serde_html_form::from_str::<AnyParams>(query) else {
        return 0;
    };
    let mut accepted = usize::from(Limit::parse(p.limit.as_deref()).is_ok());
    if let Some(actor) = &p.actor {
        accepted += usize::from(params::actor("actor", actor).is_ok());
    }
    for uri in p.uri.iter().chain(&p.uris) {
        accepted += usize::from(params::record_uri("uri", uri).is_ok());
    }
    accepted += usize::from(matches!(
        params::time_cursor(p.cursor.as_deref()),
        Ok(Some(_))
    ));
    accepted += usize::from(matches!(
        params::position_cursor(p.cursor.as_deref()),
        Ok(Some(_))
    ));
    accepted += usize::from(matches!(
        params::search_cursor(p.cursor.as_deref()),
        Ok(Some(_))
    ));
    accepted
}

/// Decodes `raw` as every cursor shape. Returns false if a cursor decodes but does not
/// re-encode to exactly `raw`: decoding is meant to accept only cursors we issue.
#[doc(hidden)]
pub fn fuzz_cursor(raw: &str) -> bool {
    let time_ok = TimeCursor::decode(raw).map_or(true, |c| TimeCursor::after(c.at, &c.uri) == raw);
    let position_ok =
        PositionCursor::decode(raw).map_or(true, |c| PositionCursor::after(c.key, &c.uri) == raw);
    let search_ok = SearchCursor::decode(raw).map_or(true, |c| c.encode() == raw);
    time_ok && position_ok && search_ok
}

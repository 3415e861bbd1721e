//! Opaque keyset cursors: base64url of `<key>::<uri>`, where the key is the row's sort value
//! (µs since the epoch, or a playback position in ms) and the URI breaks ties. Decoding is
//! strict, so a cursor we did not issue is refused rather than misread.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use plyr_lexicons::syntax::AtUri;

/// Separates the key from the URI. A key never contains ':', so splitting at the first one is
/// exact even when the URI's DID holds "::".
const SEPARATOR: &str = "::";

/// Longest cursor we decode: a 20-digit key, the separator and an 8 KB AT-URI, in base64.
const MAX_CURSOR_LEN: usize = 11 * 1024;

/// Why a cursor was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    /// Longer than any cursor we issue.
    #[error("cursor is too long")]
    TooLong,
    /// Not unpadded base64url.
    #[error("cursor is not base64url")]
    Encoding,
    /// The decoded bytes are not UTF-8.
    #[error("cursor is not utf-8")]
    Utf8,
    /// No `::` between key and URI.
    #[error("cursor has no key separator")]
    Shape,
    /// The key is not an integer in canonical form.
    #[error("cursor key is not a canonical integer")]
    Key,
    /// The key is an integer but no valid time.
    #[error("cursor key is out of range")]
    Range,
    /// The tie-breaker is not the AT-URI of a record with a DID authority.
    #[error("cursor uri is not a record at-uri")]
    Uri,
}

/// Position after a row ordered by a timestamp (`sort_at`), then URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeCursor {
    /// `sort_at` of the last row served (Postgres keeps µs, so this round-trips exactly).
    pub at: DateTime<Utc>,
    /// URI of the last row served.
    pub uri: String,
}

impl TimeCursor {
    /// The opaque cursor handed to clients after a row with this `sort_at` and URI.
    pub fn after(at: DateTime<Utc>, uri: &str) -> String {
        encode(at.timestamp_micros(), uri)
    }

    /// Reads a cursor issued by [`TimeCursor::after`].
    pub fn decode(s: &str) -> Result<TimeCursor, CursorError> {
        let (micros, uri) = decode(s)?;
        let at = DateTime::from_timestamp_micros(micros).ok_or(CursorError::Range)?;
        Ok(TimeCursor { at, uri })
    }
}

/// Position after a row ordered by an integer key (a comment's `timestamp_ms`), then URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PositionCursor {
    /// The key of the last row served.
    pub key: i64,
    /// URI of the last row served.
    pub uri: String,
}

impl PositionCursor {
    /// The opaque cursor handed to clients after a row with this key and URI.
    pub fn after(key: i64, uri: &str) -> String {
        encode(key, uri)
    }

    /// Reads a cursor issued by [`PositionCursor::after`].
    pub fn decode(s: &str) -> Result<PositionCursor, CursorError> {
        let (key, uri) = decode(s)?;
        Ok(PositionCursor { key, uri })
    }
}

/// Position after a search hit: its rank (smaller first; `plyr_search_rank`, migration 0009),
/// then its key, the record's AT-URI or, for an actor, the DID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankCursor {
    /// The rank of the last hit served.
    pub rank: i64,
    /// The key of the last hit served.
    pub key: String,
}

impl RankCursor {
    /// The opaque cursor handed to clients after a hit with this rank and key.
    pub fn after(rank: i64, key: &str) -> String {
        encode(rank, key)
    }

    /// Reads a cursor issued by [`RankCursor::after`]: the key must be a DID or a record AT-URI.
    pub fn decode(s: &str) -> Result<RankCursor, CursorError> {
        let (rank, key) = decode_key(s)?;
        if key.starts_with("did:") {
            plyr_lexicons::syntax::validate_did(&key).map_err(|_| CursorError::Uri)?;
        } else {
            check_record_uri(&key)?;
        }
        Ok(RankCursor { rank, key })
    }
}

/// Splits rows fetched with `limit + 1` into the page to serve and, when the extra row shows
/// that more exist, the cursor after the page's last row.
pub fn paginate<R>(
    mut rows: Vec<R>,
    limit: usize,
    cursor_of: impl Fn(&R) -> String,
) -> (Vec<R>, Option<String>) {
    if rows.len() <= limit {
        return (rows, None);
    }
    rows.truncate(limit);
    let cursor = rows.last().map(cursor_of);
    (rows, cursor)
}

fn encode(key: i64, uri: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{key}{SEPARATOR}{uri}"))
}

fn decode(s: &str) -> Result<(i64, String), CursorError> {
    let (key, uri) = decode_key(s)?;
    check_record_uri(&uri)?;
    Ok((key, uri))
}

fn check_record_uri(uri: &str) -> Result<(), CursorError> {
    let at_uri = AtUri::parse(uri).map_err(|_| CursorError::Uri)?;
    if !at_uri.authority_is_did() || at_uri.rkey().is_none() {
        return Err(CursorError::Uri);
    }
    Ok(())
}

/// The integer key and the unchecked tie-breaker of a cursor.
fn decode_key(s: &str) -> Result<(i64, String), CursorError> {
    if s.len() > MAX_CURSOR_LEN {
        return Err(CursorError::TooLong);
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| CursorError::Encoding)?;
    let text = String::from_utf8(bytes).map_err(|_| CursorError::Utf8)?;
    let (key, uri) = text.split_once(SEPARATOR).ok_or(CursorError::Shape)?;
    let parsed: i64 = key.parse().map_err(|_| CursorError::Key)?;
    // "+5" and "007" parse too; only the form we write is accepted.
    if parsed.to_string() != key {
        return Err(CursorError::Key);
    }
    Ok((parsed, uri.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const URI: &str = "at://did:plc:abc/fm.plyr.track/3jzfcijpj2z2a";

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn time_cursor_round_trips() {
        let cases = [0, 1, 1_764_115_200_123_456, -86_400_000_000];
        for micros in cases {
            let Some(at) = DateTime::from_timestamp_micros(micros) else {
                panic!("{micros} is a valid time");
            };
            let cursor = TimeCursor {
                at,
                uri: URI.to_owned(),
            };
            assert_eq!(TimeCursor::decode(&TimeCursor::after(at, URI)), Ok(cursor));
        }
    }

    #[test]
    fn position_cursor_round_trips_with_colons_in_the_did() {
        let cursor = PositionCursor {
            key: 12_345,
            uri: "at://did:web:a::b/fm.plyr.comment/3jzfcijpj2z2a".to_owned(),
        };
        assert_eq!(
            PositionCursor::decode(&PositionCursor::after(cursor.key, &cursor.uri)),
            Ok(cursor)
        );
    }

    #[test]
    fn forged_cursors_are_refused() {
        let cases = [
            ("not base64 !".to_owned(), CursorError::Encoding),
            (
                format!("{}=", b64(&format!("1::{URI}"))),
                CursorError::Encoding,
            ),
            (URL_SAFE_NO_PAD.encode([0xff, 0xfe]), CursorError::Utf8),
            (b64(URI), CursorError::Shape),
            (b64(&format!("abc::{URI}")), CursorError::Key),
            (b64(&format!("+5::{URI}")), CursorError::Key),
            (b64(&format!("007::{URI}")), CursorError::Key),
            (b64(&format!("::{URI}")), CursorError::Key),
            (
                b64(&format!("99999999999999999999::{URI}")),
                CursorError::Key,
            ),
            (b64("1::https://example.com/x"), CursorError::Uri),
            (
                b64("1::at://alice.test/fm.plyr.track/3jzfcijpj2z2a"),
                CursorError::Uri,
            ),
            (b64("1::at://did:plc:abc"), CursorError::Uri),
            (b64("1::"), CursorError::Uri),
            ("A".repeat(MAX_CURSOR_LEN + 1), CursorError::TooLong),
        ];
        for (input, want) in cases {
            assert_eq!(PositionCursor::decode(&input), Err(want), "{input}");
        }
        let out_of_range = b64(&format!("{}::{URI}", i64::MAX));
        assert_eq!(TimeCursor::decode(&out_of_range), Err(CursorError::Range));
    }

    #[test]
    fn rank_cursor_takes_a_did_or_a_record_uri() {
        for key in ["did:plc:abc", URI] {
            let cursor = RankCursor {
                rank: 2_000_417,
                key: key.to_owned(),
            };
            assert_eq!(
                RankCursor::decode(&RankCursor::after(cursor.rank, key)),
                Ok(cursor)
            );
        }
        let cases = [
            (b64("5::did:"), CursorError::Uri),
            (b64("5::at://did:plc:abc"), CursorError::Uri),
            (b64("5::alice.test"), CursorError::Uri),
            (b64("x::did:plc:abc"), CursorError::Key),
        ];
        for (input, want) in cases {
            assert_eq!(RankCursor::decode(&input), Err(want), "{input}");
        }
    }

    #[test]
    fn paginate_cuts_at_the_limit() {
        // (rows fetched, limit, rows served, cursor)
        let cases = [
            (0, 2, 0, None),
            (2, 2, 2, None),
            (3, 2, 2, Some("2")),
            (1, 1, 1, None),
        ];
        for (fetched, limit, served, want_cursor) in cases {
            let rows: Vec<u32> = (1..=fetched).collect();
            let want_rows: Vec<u32> = (1..=served).collect();
            let (page, cursor) = paginate(rows, limit, |r| r.to_string());
            assert_eq!(page, want_rows);
            assert_eq!(cursor.as_deref(), want_cursor);
        }
    }
}

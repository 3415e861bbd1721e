//! Opaque keyset cursors: base64url of `<key>::<uri>`, where the key is the row's sort value
//! (µs since the epoch, a playback position in ms, a search rank) and the URI breaks ties; a
//! search hit that starts with the query is placed by its name instead (`SearchCursor`).
//! Decoding is strict, so a cursor we did not issue is refused rather than misread.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use plyr_lexicons::syntax::AtUri;

/// Separates the key from the URI. A key never contains ':', so splitting at the first one is
/// exact even when the URI's DID holds "::".
const SEPARATOR: &str = "::";

/// Longest cursor we decode: a 20-digit key, the separator and an 8 KB AT-URI, and for a search
/// a name of up to 1 KB, in base64.
const MAX_CURSOR_LEN: usize = 13 * 1024;

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

/// Position after a search hit. Hits whose name starts with the query come first, in name
/// order (migration 0013), so their position is that name; the rest follow by rank
/// (`plyr_search_rank`, migration 0009: substring, then only similar). The key breaks ties:
/// the record's AT-URI or, for an actor, the DID.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SearchCursor {
    /// After a hit whose (normalized) name starts with the query.
    Name {
        /// The normalized name the hit matched by.
        name: String,
        /// The hit's key.
        key: String,
    },
    /// After a ranked hit.
    Rank {
        /// The hit's rank.
        rank: i64,
        /// The hit's key.
        key: String,
    },
}

/// Ranks a [`SearchCursor::Rank`] can hold: the substring and similar tiers. The exact and
/// prefix tiers are served by name; a rank cursor into them (issued before migration 0013) is
/// refused rather than misread.
const RANKED: std::ops::RangeInclusive<i64> = 2_000_000..=4_000_000;

/// Marks a name cursor: `n<name length in bytes>::<name><key>`. A rank cursor starts with a
/// digit.
const NAME_MARK: &str = "n";

impl SearchCursor {
    /// The opaque cursor handed to clients.
    pub fn encode(&self) -> String {
        match self {
            SearchCursor::Name { name, key } => {
                URL_SAFE_NO_PAD.encode(format!("{NAME_MARK}{}{SEPARATOR}{name}{key}", name.len()))
            }
            SearchCursor::Rank { rank, key } => encode(*rank, key),
        }
    }

    /// Reads a cursor issued by [`SearchCursor::encode`]: the key must be a DID or a record
    /// AT-URI.
    pub fn decode(s: &str) -> Result<SearchCursor, CursorError> {
        let text = decode_text(s)?;
        let cursor = match text.strip_prefix(NAME_MARK) {
            Some(rest) => {
                let (len, rest) = split_key(rest)?;
                let at = usize::try_from(len).map_err(|_| CursorError::Range)?;
                if at == 0 || !rest.is_char_boundary(at) {
                    return Err(CursorError::Range);
                }
                let (name, key) = rest.split_at(at);
                SearchCursor::Name {
                    name: name.to_owned(),
                    key: key.to_owned(),
                }
            }
            None => {
                let (rank, key) = split_key(&text)?;
                if !RANKED.contains(&rank) {
                    return Err(CursorError::Range);
                }
                SearchCursor::Rank {
                    rank,
                    key: key.to_owned(),
                }
            }
        };
        let key = match &cursor {
            SearchCursor::Name { key, .. } | SearchCursor::Rank { key, .. } => key,
        };
        if key.starts_with("did:") {
            plyr_lexicons::syntax::validate_did(key).map_err(|_| CursorError::Uri)?;
        } else {
            check_record_uri(key)?;
        }
        Ok(cursor)
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
    let text = decode_text(s)?;
    let (key, uri) = split_key(&text)?;
    check_record_uri(uri)?;
    Ok((key, uri.to_owned()))
}

fn check_record_uri(uri: &str) -> Result<(), CursorError> {
    let at_uri = AtUri::parse(uri).map_err(|_| CursorError::Uri)?;
    if !at_uri.authority_is_did() || at_uri.rkey().is_none() {
        return Err(CursorError::Uri);
    }
    Ok(())
}

/// The text of a cursor: unpadded base64url of UTF-8, no longer than any we issue.
fn decode_text(s: &str) -> Result<String, CursorError> {
    if s.len() > MAX_CURSOR_LEN {
        return Err(CursorError::TooLong);
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| CursorError::Encoding)?;
    String::from_utf8(bytes).map_err(|_| CursorError::Utf8)
}

/// Splits `<integer>::<rest>` at the first separator; the integer must be in the form we write
/// ("+5" and "007" parse too, but are refused).
fn split_key(text: &str) -> Result<(i64, &str), CursorError> {
    let (key, rest) = text.split_once(SEPARATOR).ok_or(CursorError::Shape)?;
    let parsed: i64 = key.parse().map_err(|_| CursorError::Key)?;
    if parsed.to_string() != key {
        return Err(CursorError::Key);
    }
    Ok((parsed, rest))
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
    fn search_cursor_round_trips_by_name_or_rank() {
        let mut cursors = Vec::new();
        for key in ["did:plc:abc", "did:web:a::b", URI] {
            // Names hold anything, the separator and digits included.
            for name in ["tr", "a::b", "12::at://x", "d\u{e9}j\u{e0} vu \u{2603}"] {
                cursors.push(SearchCursor::Name {
                    name: name.to_owned(),
                    key: key.to_owned(),
                });
            }
            for rank in [2_000_000, 2_000_417, 4_000_000] {
                cursors.push(SearchCursor::Rank {
                    rank,
                    key: key.to_owned(),
                });
            }
        }
        for cursor in cursors {
            assert_eq!(SearchCursor::decode(&cursor.encode()), Ok(cursor));
        }
    }

    #[test]
    fn forged_search_cursors_are_refused() {
        let cases = [
            (b64("2000000::did:"), CursorError::Uri),
            (b64("2000000::at://did:plc:abc"), CursorError::Uri),
            (b64("2000000::alice.test"), CursorError::Uri),
            (b64("x::did:plc:abc"), CursorError::Key),
            // The exact and prefix tiers are placed by name: an old rank cursor into them, or
            // a rank no hit has, is out of range.
            (b64("1000417::did:plc:abc"), CursorError::Range),
            (b64("5::did:plc:abc"), CursorError::Range),
            (b64("4000001::did:plc:abc"), CursorError::Range),
            (b64("n2:tr:did:plc:abc"), CursorError::Shape),
            (b64("nx::trdid:plc:abc"), CursorError::Key),
            (b64("n02::trdid:plc:abc"), CursorError::Key),
            (b64("n0::did:plc:abc"), CursorError::Range),
            (b64("n-1::did:plc:abc"), CursorError::Range),
            (b64("n99::trdid:plc:abc"), CursorError::Range),
            // Two bytes in, "é" is cut in half.
            (b64("n2::d\u{e9}did:plc:abc"), CursorError::Range),
            (b64("n2::trxdid:plc:abc"), CursorError::Uri),
            (b64("n2::tr"), CursorError::Uri),
        ];
        for (input, want) in cases {
            assert_eq!(SearchCursor::decode(&input), Err(want), "{input}");
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

//! Upstream's two datetime spellings: Python's `isoformat()` (tracks, comments, likes,
//! playlists) and pydantic's (artists). The client only hands them to `Date`.

use chrono::{DateTime, Utc};

/// `2026-01-01T00:00:00.000000+00:00`: microseconds and an explicit offset.
pub fn python(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
}

/// `2026-01-01T00:00:00.000000Z`.
pub fn pydantic(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings() {
        let at = DateTime::from_timestamp(1_767_225_600, 123_456_000).unwrap_or_default();
        assert_eq!(python(&at), "2026-01-01T00:00:00.123456+00:00");
        assert_eq!(pydantic(&at), "2026-01-01T00:00:00.123456Z");
    }
}

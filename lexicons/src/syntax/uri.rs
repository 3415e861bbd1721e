//! Generic URIs as Lexicon's `uri` format accepts them: an RFC 3986 scheme, a colon and a
//! non-empty remainder with no whitespace, at most 8 KB.

use super::{SyntaxError, SyntaxKind};

/// The spec caps `uri` strings at 8 KB.
const URI_MAX_LEN: usize = 8 * 1024;

/// Checks a generic URI (`https://…`, `dns:…`, `did:…`, `at://…`).
pub fn validate_uri(s: &str) -> Result<(), SyntaxError> {
    let fail = |reason| Err(SyntaxError::new(SyntaxKind::Uri, reason));
    if s.len() > URI_MAX_LEN {
        return fail("longer than 8 KB");
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return fail("contains whitespace");
    }
    let Some((scheme, rest)) = s.split_once(':') else {
        return fail("missing scheme");
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+.-".contains(&b));
    if !scheme_ok {
        return fail("scheme must be a letter then letters, digits, '+', '.' or '-'");
    }
    let after = rest.strip_prefix("//").unwrap_or(rest);
    if after.is_empty() || after.starts_with('/') {
        return fail("empty or malformed body after the scheme");
    }
    Ok(())
}

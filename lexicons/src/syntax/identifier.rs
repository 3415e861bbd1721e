//! The simple identifiers: DID, handle, NSID, at-identifier, TID, record key and CID string.
//! Rules from the ATProto specs, checked byte by byte (no regex) so they stay cheap per record.

use super::{SyntaxError, SyntaxKind};

/// DIDs are capped at 2 KB by the spec.
const DID_MAX_LEN: usize = 2048;
/// A handle is a domain name, so at most 253 characters.
const HANDLE_MAX_LEN: usize = 253;
/// The whole NSID is capped; the interop vectors accept authorities longer than 253 characters
/// as long as this total holds.
const NSID_MAX_LEN: usize = 317;
/// DNS label limit, shared by handle labels and NSID segments.
const LABEL_MAX_LEN: usize = 63;
const RECORD_KEY_MAX_LEN: usize = 512;
const TID_LEN: usize = 13;
/// Base32 "sortable" alphabet used by TIDs.
const TID_ALPHABET: &[u8] = b"234567abcdefghijklmnopqrstuvwxyz";

/// Checks `did:<method>:<id>`: lowercase method, id of `[A-Za-z0-9._:%-]` not ending in `:` or `%`.
pub fn validate_did(s: &str) -> Result<(), SyntaxError> {
    let fail = |reason| Err(SyntaxError::new(SyntaxKind::Did, reason));
    if s.len() > DID_MAX_LEN {
        return fail("longer than 2048 characters");
    }
    let Some(rest) = s.strip_prefix("did:") else {
        return fail("must start with \"did:\"");
    };
    let Some((method, id)) = rest.split_once(':') else {
        return fail("missing the method-specific identifier");
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_lowercase()) {
        return fail("method must be lowercase letters");
    }
    if id.is_empty() {
        return fail("empty method-specific identifier");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._:%-".contains(&b))
    {
        return fail("disallowed character in the identifier");
    }
    if id.ends_with(':') || id.ends_with('%') {
        return fail("identifier must not end with ':' or '%'");
    }
    Ok(())
}

/// Checks a handle: ASCII domain name with at least two labels and a TLD not starting with a digit.
pub fn validate_handle(s: &str) -> Result<(), SyntaxError> {
    let fail = |reason| Err(SyntaxError::new(SyntaxKind::Handle, reason));
    if s.len() > HANDLE_MAX_LEN {
        return fail("longer than 253 characters");
    }
    let mut labels = 0usize;
    let mut last = "";
    for label in s.split('.') {
        if !is_domain_label(label) {
            return fail("each label must be 1-63 letters, digits or inner hyphens");
        }
        labels += 1;
        last = label;
    }
    if labels < 2 {
        return fail("needs at least two labels");
    }
    if last.starts_with(|c: char| c.is_ascii_digit()) {
        return fail("top-level domain must not start with a digit");
    }
    Ok(())
}

/// Lowercases a handle; handles compare case-insensitively and are stored lowercase.
pub fn normalize_handle(s: &str) -> String {
    s.to_ascii_lowercase()
}

/// Checks an NSID: a reversed domain authority (two or more labels) followed by a name segment
/// of letters and digits that starts with a letter.
pub fn validate_nsid(s: &str) -> Result<(), SyntaxError> {
    let fail = |reason| Err(SyntaxError::new(SyntaxKind::Nsid, reason));
    if s.len() > NSID_MAX_LEN {
        return fail("longer than 317 characters");
    }
    let Some((authority, name)) = s.rsplit_once('.') else {
        return fail("needs at least three segments");
    };
    let mut segments = 0usize;
    for (i, label) in authority.split('.').enumerate() {
        if !is_domain_label(label) {
            return fail("each domain segment must be 1-63 letters, digits or inner hyphens");
        }
        if i == 0 && label.starts_with(|c: char| c.is_ascii_digit()) {
            return fail("first segment must not start with a digit");
        }
        segments += 1;
    }
    if segments < 2 {
        return fail("needs at least three segments");
    }
    if name.is_empty() || name.len() > LABEL_MAX_LEN {
        return fail("name segment must be 1-63 characters");
    }
    if !name.starts_with(|c: char| c.is_ascii_alphabetic())
        || !name.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return fail("name segment must be letters and digits, starting with a letter");
    }
    Ok(())
}

/// Checks an at-identifier: a DID if it starts with `did:`, otherwise a handle.
pub fn validate_at_identifier(s: &str) -> Result<(), SyntaxError> {
    let result = if s.starts_with("did:") {
        validate_did(s)
    } else {
        validate_handle(s)
    };
    result.map_err(|e| SyntaxError::new(SyntaxKind::AtIdentifier, e.reason))
}

/// Checks a TID: 13 characters of sortable base32 with the top bit clear.
pub fn validate_tid(s: &str) -> Result<(), SyntaxError> {
    let fail = |reason| Err(SyntaxError::new(SyntaxKind::Tid, reason));
    let bytes = s.as_bytes();
    if bytes.len() != TID_LEN {
        return fail("must be exactly 13 characters");
    }
    if !bytes.iter().all(|b| TID_ALPHABET.contains(b)) {
        return fail("must use the base32-sortable alphabet");
    }
    // The first character carries the 64th bit, which must be zero.
    if !b"234567abcdefghij".contains(&bytes[0]) {
        return fail("high bit must be zero");
    }
    Ok(())
}

/// Checks a record key: 1-512 of `[A-Za-z0-9._:~-]`, and not `.` or `..`.
pub fn validate_record_key(s: &str) -> Result<(), SyntaxError> {
    let fail = |reason| Err(SyntaxError::new(SyntaxKind::RecordKey, reason));
    if s.is_empty() || s.len() > RECORD_KEY_MAX_LEN {
        return fail("must be 1-512 characters");
    }
    if s == "." || s == ".." {
        return fail("must not be \".\" or \"..\"");
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._:~-".contains(&b))
    {
        return fail("disallowed character");
    }
    Ok(())
}

/// Checks the string form of a CID as Lexicon's `cid` format does: 8-256 multibase characters,
/// not a legacy CIDv0 (`Qm…`). The canonical base32 form (`b…`) must also decode as a CIDv1;
/// other multibase forms are accepted on syntax alone, as the interop vectors require.
pub fn validate_cid(s: &str) -> Result<(), SyntaxError> {
    let fail = |reason| Err(SyntaxError::new(SyntaxKind::Cid, reason));
    if s.len() < 8 || s.len() > 256 {
        return fail("must be 8-256 characters");
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'=')
    {
        return fail("disallowed character");
    }
    if s.len() == 46 && s.starts_with("Qm") {
        return fail("cidv0 is not supported");
    }
    if s.starts_with('b') {
        return parse_cid(s).map(|_| ());
    }
    Ok(())
}

/// Decodes a CID string fully, requiring version 1: what a `$link` or blob `ref` must hold.
pub fn parse_cid(s: &str) -> Result<cid::Cid, SyntaxError> {
    let fail = |reason| Err(SyntaxError::new(SyntaxKind::Cid, reason));
    match cid::Cid::try_from(s) {
        Ok(c) if c.version() == cid::Version::V1 => Ok(c),
        Ok(_) => fail("cidv0 is not supported"),
        Err(_) => fail("not a decodable cid"),
    }
}

/// One DNS label: 1-63 ASCII letters, digits or hyphens, not starting or ending with a hyphen.
fn is_domain_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= LABEL_MAX_LEN
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_handle_lowercases() {
        assert_eq!(normalize_handle("Alice.Example.COM"), "alice.example.com");
    }

    #[test]
    fn at_identifier_reports_its_own_kind() {
        assert_eq!(
            validate_at_identifier("blah").map_err(|e| e.kind),
            Err(SyntaxKind::AtIdentifier)
        );
    }
}

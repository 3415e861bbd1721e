//! AT-URIs in the strict form used by Lexicon: `at://AUTHORITY[/COLLECTION[/RKEY]]`, with no
//! query, fragment or trailing slash.

use std::fmt;
use std::str::FromStr;

use super::identifier::{validate_at_identifier, validate_nsid, validate_record_key};
use super::{SyntaxError, SyntaxKind};

/// AT-URIs are capped at 8 KB by the spec.
const AT_URI_MAX_LEN: usize = 8 * 1024;

/// A parsed AT-URI. Every part has been validated: the authority is a DID or handle, the
/// collection an NSID and the rkey a record key; an rkey implies a collection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AtUri {
    authority: String,
    collection: Option<String>,
    rkey: Option<String>,
}

impl AtUri {
    /// Parses and validates an AT-URI in the strict Lexicon syntax.
    pub fn parse(s: &str) -> Result<AtUri, SyntaxError> {
        let fail = |reason| Err(SyntaxError::new(SyntaxKind::AtUri, reason));
        if s.len() > AT_URI_MAX_LEN {
            return fail("longer than 8 KB");
        }
        let Some(rest) = s.strip_prefix("at://") else {
            return fail("must start with \"at://\"");
        };
        let mut parts = rest.split('/');
        let authority = parts.next().unwrap_or_default();
        let collection = parts.next();
        let rkey = parts.next();
        if parts.next().is_some() {
            return fail("too many path segments");
        }
        if validate_at_identifier(authority).is_err() {
            return fail("authority must be a did or handle");
        }
        if let Some(c) = collection
            && validate_nsid(c).is_err()
        {
            return fail("collection must be an nsid");
        }
        if let Some(k) = rkey
            && validate_record_key(k).is_err()
        {
            return fail("invalid record key");
        }
        Ok(AtUri {
            authority: authority.to_owned(),
            collection: collection.map(str::to_owned),
            rkey: rkey.map(str::to_owned),
        })
    }

    /// The DID or handle the URI points into.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// Whether the authority is a DID (as strong references should use) rather than a handle.
    pub fn authority_is_did(&self) -> bool {
        self.authority.starts_with("did:")
    }

    /// The collection NSID, if the URI has a path.
    pub fn collection(&self) -> Option<&str> {
        self.collection.as_deref()
    }

    /// The record key, if the URI names a record.
    pub fn rkey(&self) -> Option<&str> {
        self.rkey.as_deref()
    }
}

impl FromStr for AtUri {
    type Err = SyntaxError;

    fn from_str(s: &str) -> Result<AtUri, SyntaxError> {
        AtUri::parse(s)
    }
}

impl fmt::Display for AtUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at://{}", self.authority)?;
        if let Some(c) = &self.collection {
            write!(f, "/{c}")?;
            if let Some(k) = &self.rkey {
                write!(f, "/{k}")?;
            }
        }
        Ok(())
    }
}

/// Checks a string is a valid AT-URI without keeping the parts.
pub fn validate_at_uri(s: &str) -> Result<(), SyntaxError> {
    AtUri::parse(s).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_and_display_round_trip() {
        let cases = [
            ("at://did:plc:abc", "did:plc:abc", None, None, true),
            (
                "at://alice.test/fm.plyr.track",
                "alice.test",
                Some("fm.plyr.track"),
                None,
                false,
            ),
            (
                "at://did:plc:abc/fm.plyr.track/3jzfcijpj2z2a",
                "did:plc:abc",
                Some("fm.plyr.track"),
                Some("3jzfcijpj2z2a"),
                true,
            ),
        ];
        for (input, authority, collection, rkey, is_did) in cases {
            let uri = AtUri::parse(input);
            let Ok(uri) = uri else {
                panic!("{input} should parse: {uri:?}");
            };
            assert_eq!(uri.authority(), authority, "{input}");
            assert_eq!(uri.collection(), collection, "{input}");
            assert_eq!(uri.rkey(), rkey, "{input}");
            assert_eq!(uri.authority_is_did(), is_did, "{input}");
            assert_eq!(uri.to_string(), input);
            assert_eq!(input.parse::<AtUri>().as_ref(), Ok(&uri));
        }
    }
}

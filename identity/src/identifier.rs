//! Validated [`Did`] and [`Handle`] strings, so resolution never starts from malformed input.
//! Syntax rules come from `plyr_lexicons::syntax`; handles are normalised to lowercase.

use std::fmt;
use std::str::FromStr;

use plyr_lexicons::syntax::{SyntaxError, normalize_handle, validate_did, validate_handle};

/// A syntactically valid DID (`did:<method>:<id>`), any method.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Did(String);

impl Did {
    /// Parses and validates a DID.
    pub fn new(s: &str) -> Result<Did, SyntaxError> {
        validate_did(s)?;
        Ok(Did(s.to_owned()))
    }

    /// The DID string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The method name (`plc`, `web`, ...).
    pub fn method(&self) -> &str {
        // Validated: `did:<method>:<id>`.
        self.0.split(':').nth(1).unwrap_or_default()
    }
}

impl FromStr for Did {
    type Err = SyntaxError;

    fn from_str(s: &str) -> Result<Did, SyntaxError> {
        Did::new(s)
    }
}

impl fmt::Display for Did {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Did {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A syntactically valid handle, lowercased.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Handle(String);

impl Handle {
    /// The sentinel shown in place of a handle that does not verify.
    pub const INVALID: &'static str = "handle.invalid";

    /// Parses, validates and lowercases a handle.
    pub fn new(s: &str) -> Result<Handle, SyntaxError> {
        validate_handle(s)?;
        Ok(Handle(normalize_handle(s)))
    }

    /// The handle string (lowercase).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The top-level domain (the last label).
    pub fn tld(&self) -> &str {
        self.0.rsplit('.').next().unwrap_or_default()
    }
}

impl FromStr for Handle {
    type Err = SyntaxError;

    fn from_str(s: &str) -> Result<Handle, SyntaxError> {
        Handle::new(s)
    }
}

impl fmt::Display for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Handle {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dids_parse_or_not() {
        let cases = [
            ("did:plc:ewvi7nxzyoun6zhxrhs64oiz", Some("plc")),
            ("did:web:example.com", Some("web")),
            ("did:web:localhost%3A2583", Some("web")),
            ("did:PLC:abc", None),
            ("did:plc:", None),
            ("at://did:plc:abc", None),
            ("", None),
        ];
        for (input, method) in cases {
            let parsed = Did::new(input).ok();
            assert_eq!(parsed.as_ref().map(Did::method), method, "{input}");
        }
    }

    #[test]
    fn handles_are_lowercased_and_validated() {
        let cases = [
            ("Alice.Test", Some("alice.test")),
            ("alice.bsky.social", Some("alice.bsky.social")),
            ("localhost", None),
            ("127.0.0.1", None),
            ("-bad.example", None),
        ];
        for (input, expected) in cases {
            let parsed = Handle::new(input).ok();
            assert_eq!(parsed.as_ref().map(Handle::as_str), expected, "{input}");
        }
        assert_eq!(
            Handle::new("a.b.Onion").map(|h| h.tld().to_owned()),
            Ok("onion".into())
        );
    }
}

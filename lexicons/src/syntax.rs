//! Validators for every ATProto identifier string (DID, handle, NSID, AT-URI, TID, record key,
//! CID, datetime, language, URI), checked against the official interop vectors.

mod at_uri;
mod datetime;
mod identifier;
mod language;
mod uri;

pub use at_uri::{AtUri, validate_at_uri};
pub use datetime::{parse_datetime, validate_datetime};
pub use identifier::{
    normalize_handle, parse_cid, validate_at_identifier, validate_cid, validate_did,
    validate_handle, validate_nsid, validate_record_key, validate_tid,
};
pub use language::{validate_language, validate_language_strict};
pub use uri::validate_uri;

/// Which kind of identifier a [`SyntaxError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SyntaxKind {
    /// A DID, `did:method:id`.
    Did,
    /// A domain-name handle.
    Handle,
    /// A namespaced identifier such as `fm.plyr.track`.
    Nsid,
    /// A DID or a handle.
    AtIdentifier,
    /// An `at://` URI.
    AtUri,
    /// A timestamp identifier.
    Tid,
    /// A record key.
    RecordKey,
    /// A CID in string form.
    Cid,
    /// An RFC 3339 datetime in the ATProto profile.
    Datetime,
    /// A BCP-47 language tag.
    Language,
    /// A generic URI.
    Uri,
}

impl SyntaxKind {
    /// A stable lowercase name, also used as the lexicon `format` name.
    pub fn as_str(self) -> &'static str {
        match self {
            SyntaxKind::Did => "did",
            SyntaxKind::Handle => "handle",
            SyntaxKind::Nsid => "nsid",
            SyntaxKind::AtIdentifier => "at-identifier",
            SyntaxKind::AtUri => "at-uri",
            SyntaxKind::Tid => "tid",
            SyntaxKind::RecordKey => "record-key",
            SyntaxKind::Cid => "cid",
            SyntaxKind::Datetime => "datetime",
            SyntaxKind::Language => "language",
            SyntaxKind::Uri => "uri",
        }
    }
}

impl std::fmt::Display for SyntaxKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not a valid identifier of the given kind. The offending value is not copied
/// in (it may be kilobytes long); callers add it to their own error when it helps.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind}: {reason}")]
pub struct SyntaxError {
    /// The kind of identifier that failed.
    pub kind: SyntaxKind,
    /// Which rule it broke.
    pub reason: &'static str,
}

impl SyntaxError {
    pub(crate) fn new(kind: SyntaxKind, reason: &'static str) -> SyntaxError {
        SyntaxError { kind, reason }
    }
}

//! The one failure classification shared by every error in this crate, so callers can count
//! rejected events under a small, fixed set of labels.

/// Why an input was rejected, for metrics labels and for branching on the cause.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A value breaks the ATProto data model (floats, bad `$link`/`$bytes`/blob shapes).
    InvalidDataModel,
    /// Bytes that are not well-formed DAG-CBOR, or not the expected shape.
    MalformedCbor,
    /// A CAR file whose framing (varints, header, CIDs) is broken.
    MalformedCar,
    /// A block whose bytes do not hash to its CID.
    CidMismatch,
    /// A CID with a hash or codec ATProto does not use.
    UnsupportedCid,
    /// An input over one of the configured size caps.
    TooLarge,
    /// A block the check needs is absent.
    MissingBlock,
    /// An MST node that breaks the tree's structural rules.
    MalformedMst,
    /// The MST does not agree with the claimed operations or previous root.
    MstMismatch,
    /// A `did:key` that cannot be parsed or names an unsupported curve.
    BadKey,
    /// A signature that is malformed, high-S, or does not verify.
    BadSignature,
    /// A commit object that is malformed or has an unsupported version.
    MalformedCommit,
    /// A firehose frame whose framing or body is malformed.
    MalformedFrame,
    /// Message fields disagree with the signed commit.
    FieldsMismatch,
    /// A `#commit` without `prevData`, so it cannot be proven by inversion.
    MissingPrevData,
    /// An operation that is inconsistent (missing CID or prev, duplicate or invalid path).
    InvalidOp,
}

impl ErrorKind {
    /// A short stable label, e.g. `"bad_signature"`, for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidDataModel => "invalid_data_model",
            ErrorKind::MalformedCbor => "malformed_cbor",
            ErrorKind::MalformedCar => "malformed_car",
            ErrorKind::CidMismatch => "cid_mismatch",
            ErrorKind::UnsupportedCid => "unsupported_cid",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::MissingBlock => "missing_block",
            ErrorKind::MalformedMst => "malformed_mst",
            ErrorKind::MstMismatch => "mst_mismatch",
            ErrorKind::BadKey => "bad_key",
            ErrorKind::BadSignature => "bad_signature",
            ErrorKind::MalformedCommit => "malformed_commit",
            ErrorKind::MalformedFrame => "malformed_frame",
            ErrorKind::FieldsMismatch => "fields_mismatch",
            ErrorKind::MissingPrevData => "missing_prev_data",
            ErrorKind::InvalidOp => "invalid_op",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

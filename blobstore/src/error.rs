//! The crate's two failure domains: `StoreError` (a backend could not read or write) and
//! `PutError` (an upload was refused or failed), each with a small kind to branch on.

use std::path::PathBuf;

use crate::cid::BlobCid;
use crate::key::BlobKey;
use crate::media::MediaError;

/// A boxed error from a dependency (the S3 SDK, an upload body).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A backend failed to store, read, list or delete an object.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A filesystem operation failed.
    #[error("{op} {path}")]
    Io {
        /// What was being done (`create`, `write`, `rename`, …).
        op: &'static str,
        /// The file or directory; its name carries the CID.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// An S3 request failed.
    #[error("s3 {op} of {key}")]
    S3 {
        /// The S3 operation (`PutObject`, `UploadPart`, …).
        op: &'static str,
        /// The object key in the bucket.
        key: String,
        /// The store answered and refused: credentials, permissions or the bucket are wrong,
        /// and asking again will not help until an operator fixes them.
        refused: bool,
        /// The SDK error.
        #[source]
        source: BoxError,
    },
    /// The server answered something a correct S3 implementation does not.
    #[error("s3 {op} of {key}: {detail}")]
    UnexpectedResponse {
        /// The S3 operation.
        op: &'static str,
        /// The object key in the bucket.
        key: String,
        /// What was wrong.
        detail: String,
    },
    /// The requested range lies outside the object (HTTP 416).
    #[error("range not satisfiable for {key} of {size} bytes")]
    RangeNotSatisfiable {
        /// The object.
        key: BlobKey,
        /// Its size, for the `Content-Range: bytes */size` answer.
        size: u64,
    },
    /// The backend configuration is unusable.
    #[error("invalid blob store configuration: {0}")]
    Config(String),
}

/// The cause of a [`StoreError`], for callers that branch on it or count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// Local filesystem failure.
    Io,
    /// Remote object store unreachable, failing or answering malformed: worth retrying.
    Remote,
    /// The remote object store refused the request (bad credentials, no access, no such
    /// bucket): a configuration fault that retrying does not cure.
    Refused,
    /// The requested range lies outside the object.
    RangeNotSatisfiable,
    /// Bad configuration.
    Config,
}

impl StoreError {
    /// The cause, without the details.
    pub fn kind(&self) -> StoreErrorKind {
        match self {
            Self::Io { .. } => StoreErrorKind::Io,
            Self::S3 { refused: true, .. } => StoreErrorKind::Refused,
            Self::S3 { .. } | Self::UnexpectedResponse { .. } => StoreErrorKind::Remote,
            Self::RangeNotSatisfiable { .. } => StoreErrorKind::RangeNotSatisfiable,
            Self::Config(_) => StoreErrorKind::Config,
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// An upload was refused or could not be stored. Whatever the cause, no temp object is left
/// behind and no final object is created.
#[derive(Debug, thiserror::Error)]
pub enum PutError {
    /// The body is longer than the limit; reading stopped at the limit.
    #[error("upload exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit in force.
        limit: u64,
    },
    /// The body stream failed (client disconnect, upstream error).
    #[error("upload body failed after {received} bytes")]
    Body {
        /// Bytes received before the failure.
        received: u64,
        /// The stream's error.
        #[source]
        source: BoxError,
    },
    /// The bytes do not hash to the CID the caller expected (e.g. a record's `audioBlob.ref`).
    #[error("bytes hash to {actual}, expected {expected}")]
    CidMismatch {
        /// The CID the caller declared.
        expected: BlobCid,
        /// The CID of the bytes received.
        actual: BlobCid,
    },
    /// The content failed validation (not media, wrong declared type, undecodable).
    #[error("invalid media")]
    Invalid(#[from] MediaError),
    /// The backend failed.
    #[error("storing the upload failed")]
    Store(#[from] StoreError),
}

/// The cause of a [`PutError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PutErrorKind {
    /// Over the size limit.
    TooLarge,
    /// The body stream failed.
    Body,
    /// The content does not match the expected CID.
    CidMismatch,
    /// The content failed validation.
    Invalid,
    /// The backend failed.
    Store,
}

impl PutError {
    /// The cause, without the details.
    pub fn kind(&self) -> PutErrorKind {
        match self {
            Self::TooLarge { .. } => PutErrorKind::TooLarge,
            Self::Body { .. } => PutErrorKind::Body,
            Self::CidMismatch { .. } => PutErrorKind::CidMismatch,
            Self::Invalid(_) => PutErrorKind::Invalid,
            Self::Store(_) => PutErrorKind::Store,
        }
    }
}

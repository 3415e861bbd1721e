//! The identity layer's errors: one [`IdentityError`] for every lookup, classified by a small
//! [`IdentityErrorKind`] that callers branch on and label counters with.

use std::sync::Arc;
use std::time::Duration;

/// Why a DID or handle lookup failed.
///
/// Cheap to clone (sources are shared), so one failed lookup can be handed to every caller that
/// was waiting on it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IdentityError {
    /// The directory or host says the identifier does not exist (404, 410, no such host).
    #[error("{subject} not found")]
    NotFound {
        /// The DID, handle or host that was looked up.
        subject: String,
    },
    /// The response is not a DID document for the DID that was asked for.
    #[error("invalid DID document for {did}: {reason}")]
    InvalidDocument {
        /// The DID being resolved.
        did: String,
        /// What is wrong with the document.
        reason: String,
    },
    /// The target is a private, loopback or otherwise non-public address (or a reserved name),
    /// and was refused before any connection.
    #[error("refused to contact {host}: {reason}")]
    ForbiddenAddress {
        /// The host or handle that was refused.
        host: String,
        /// Which rule refused it, with the address when there is one.
        reason: String,
    },
    /// The host did not answer within the configured timeout.
    #[error("timed out contacting {host}")]
    Timeout {
        /// The host that was slow.
        host: String,
    },
    /// The response body is larger than the configured cap.
    #[error("response from {host} exceeds {limit} bytes")]
    TooLarge {
        /// The host that sent it.
        host: String,
        /// The cap, in bytes.
        limit: usize,
    },
    /// Too many lookups to this host recently; retry later.
    #[error("lookups to {host} are rate limited, retry in {retry_after:?}")]
    RateLimited {
        /// The host whose budget is spent.
        host: String,
        /// When a token will be available again.
        retry_after: Duration,
    },
    /// The host could not be reached or answered with an unexpected status.
    #[error("network error contacting {host}: {detail}")]
    Network {
        /// The host being contacted.
        host: String,
        /// What happened (`status 500`, `connection failed`, ...).
        detail: String,
        /// The underlying error, when there is one.
        #[source]
        source: Option<Arc<dyn std::error::Error + Send + Sync>>,
    },
    /// A DID method (or a form of one) that ATProto does not resolve: only `did:plc` and
    /// hostname-only `did:web` are supported.
    #[error("unsupported DID {did}: {reason}")]
    UnsupportedMethod {
        /// The DID.
        did: String,
        /// What is unsupported about it.
        reason: &'static str,
    },
}

/// The classification of an [`IdentityError`], for branching and metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IdentityErrorKind {
    /// See [`IdentityError::NotFound`].
    NotFound,
    /// See [`IdentityError::InvalidDocument`].
    InvalidDocument,
    /// See [`IdentityError::ForbiddenAddress`].
    ForbiddenAddress,
    /// See [`IdentityError::Timeout`].
    Timeout,
    /// See [`IdentityError::TooLarge`].
    TooLarge,
    /// See [`IdentityError::RateLimited`].
    RateLimited,
    /// See [`IdentityError::Network`].
    Network,
    /// See [`IdentityError::UnsupportedMethod`].
    UnsupportedMethod,
}

impl IdentityErrorKind {
    /// A stable snake_case name, suitable as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityErrorKind::NotFound => "not_found",
            IdentityErrorKind::InvalidDocument => "invalid_document",
            IdentityErrorKind::ForbiddenAddress => "forbidden_address",
            IdentityErrorKind::Timeout => "timeout",
            IdentityErrorKind::TooLarge => "too_large",
            IdentityErrorKind::RateLimited => "rate_limited",
            IdentityErrorKind::Network => "network",
            IdentityErrorKind::UnsupportedMethod => "unsupported_method",
        }
    }
}

impl IdentityError {
    /// The classification of this error.
    pub fn kind(&self) -> IdentityErrorKind {
        match self {
            IdentityError::NotFound { .. } => IdentityErrorKind::NotFound,
            IdentityError::InvalidDocument { .. } => IdentityErrorKind::InvalidDocument,
            IdentityError::ForbiddenAddress { .. } => IdentityErrorKind::ForbiddenAddress,
            IdentityError::Timeout { .. } => IdentityErrorKind::Timeout,
            IdentityError::TooLarge { .. } => IdentityErrorKind::TooLarge,
            IdentityError::RateLimited { .. } => IdentityErrorKind::RateLimited,
            IdentityError::Network { .. } => IdentityErrorKind::Network,
            IdentityError::UnsupportedMethod { .. } => IdentityErrorKind::UnsupportedMethod,
        }
    }

    pub(crate) fn invalid_document(did: &str, reason: impl Into<String>) -> IdentityError {
        IdentityError::InvalidDocument {
            did: did.to_owned(),
            reason: reason.into(),
        }
    }

    pub(crate) fn forbidden(host: &str, reason: impl Into<String>) -> IdentityError {
        IdentityError::ForbiddenAddress {
            host: host.to_owned(),
            reason: reason.into(),
        }
    }

    pub(crate) fn network(host: &str, detail: impl Into<String>) -> IdentityError {
        IdentityError::Network {
            host: host.to_owned(),
            detail: detail.into(),
            source: None,
        }
    }
}

/// Why a [`Resolver`](crate::Resolver) could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A configuration value is out of range.
    #[error("invalid identity config: {0}")]
    Config(&'static str),
    /// The system DNS configuration (resolv.conf) could not be read.
    #[error("reading the system DNS configuration")]
    Dns(#[source] hickory_resolver::ResolveError),
    /// The HTTP client could not be built (TLS setup).
    #[error("building the HTTP client")]
    Http(#[source] reqwest::Error),
}

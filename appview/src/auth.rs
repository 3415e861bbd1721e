//! Service auth on XRPC requests: an `Authorization: Bearer <service JWT>` minted by the
//! caller's PDS is verified for the method being called (`lxm` = the NSID in the path) and its
//! `jti` remembered until the token expires, so a replayed token is refused. Reads without the
//! header stay anonymous; a header that does not verify is a 401, never silently ignored.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use moka::Expiry;
use moka::future::Cache;
use plyr_identity::{AuthError, Did, ServiceAuth};

use crate::error::XrpcError;

/// Most token nonces remembered at once. A nonce lives until its token expires (about a
/// minute for PDS-minted tokens), so this covers far more traffic than one process serves.
const MAX_NONCES: u64 = 1_000_000;
/// Longest a nonce is remembered, whatever `exp` says: bounds a token minted for hours.
const MAX_NONCE_TTL: Duration = Duration::from_secs(3600);

/// Verifies service-auth tokens for this AppView and refuses replays. Cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    verifier: ServiceAuth,
    /// Seen `jti` values, each kept until its token's `exp`.
    nonces: Cache<String, Duration>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("service_did", self.verifier.service_did())
            .finish_non_exhaustive()
    }
}

/// Each nonce expires when its token does (the value is its remaining lifetime).
struct UntilTokenExpiry;

impl Expiry<String, Duration> for UntilTokenExpiry {
    fn expire_after_create(&self, _: &String, ttl: &Duration, _: Instant) -> Option<Duration> {
        Some(*ttl)
    }
}

impl Authenticator {
    /// Accepts tokens `verifier` accepts (audience: our service DID).
    pub fn new(verifier: ServiceAuth) -> Authenticator {
        Authenticator {
            verifier,
            nonces: Cache::builder()
                .max_capacity(MAX_NONCES)
                .expire_after(UntilTokenExpiry)
                .build(),
        }
    }

    /// The DID tokens must be addressed to.
    pub fn service_did(&self) -> &Did {
        self.verifier.service_did()
    }

    /// Verifies `token` for method `lxm` and records its nonce; a nonce seen before is refused.
    pub(crate) async fn authenticate(&self, token: &str, lxm: &str) -> Result<Did, XrpcError> {
        let verified = self
            .verifier
            .verify(token, lxm)
            .await
            .map_err(XrpcError::from)?;
        if let Some(jti) = verified.jti {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default();
            let left = u64::try_from(verified.exp)
                .unwrap_or_default()
                .saturating_sub(now);
            let ttl = Duration::from_secs(left.max(1)).min(MAX_NONCE_TTL);
            // Insert-if-absent is atomic, so two concurrent replays cannot both pass.
            let entry = self.nonces.entry(jti).or_insert(ttl).await;
            if !entry.is_fresh() {
                return Err(XrpcError::Unauthorized {
                    name: "BadJwt",
                    message: "token already used (jti replay)".to_owned(),
                });
            }
        }
        Ok(verified.iss)
    }
}

impl From<AuthError> for XrpcError {
    fn from(e: AuthError) -> XrpcError {
        XrpcError::Unauthorized {
            name: e.name(),
            message: e.to_string(),
        }
    }
}

/// The account a request acts for, if it carried a service-auth token: fills `viewer` fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer(pub Option<Did>);

/// The account a request acts for; the request is refused (401 AuthMissing) without a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated(pub Did);

impl<S> FromRequestParts<S> for Viewer
where
    S: Send + Sync,
    Option<Authenticator>: FromRef<S>,
{
    type Rejection = XrpcError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Viewer, XrpcError> {
        let Some(token) = bearer(parts)? else {
            return Ok(Viewer(None));
        };
        let Some(auth) = Option::<Authenticator>::from_ref(state) else {
            return Err(XrpcError::Unauthorized {
                name: "BadJwtAudience",
                message: "this service has no DID configured (--service-did), so it accepts no \
                          service-auth tokens"
                    .to_owned(),
            });
        };
        let lxm = method(parts)?;
        auth.authenticate(&token, &lxm)
            .await
            .map(|did| Viewer(Some(did)))
    }
}

impl<S> FromRequestParts<S> for Authenticated
where
    S: Send + Sync,
    Option<Authenticator>: FromRef<S>,
{
    type Rejection = XrpcError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Authenticated, XrpcError> {
        match Viewer::from_request_parts(parts, state).await? {
            Viewer(Some(did)) => Ok(Authenticated(did)),
            Viewer(None) => Err(XrpcError::Unauthorized {
                name: "AuthMissing",
                message: "authentication required".to_owned(),
            }),
        }
    }
}

/// The bearer token, if the request has an Authorization header.
fn bearer(parts: &Parts) -> Result<Option<Arc<str>>, XrpcError> {
    let Some(value) = parts.headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| XrpcError::Unauthorized {
            name: "BadJwt",
            message: "Authorization must be `Bearer <token>`".to_owned(),
        })?;
    Ok(Some(Arc::from(token)))
}

/// The NSID being called: the token's `lxm` must name it.
fn method(parts: &Parts) -> Result<String, XrpcError> {
    parts
        .uri
        .path()
        .strip_prefix("/xrpc/")
        .filter(|m| !m.is_empty() && !m.contains('/'))
        .map(str::to_owned)
        .ok_or_else(|| XrpcError::InvalidRequest("service auth applies to /xrpc/ methods".into()))
}

//! Inter-service auth: verifies the JWTs a PDS mints for its accounts (`getServiceAuth`, or on
//! its own when it proxies a request with `atproto-proxy`) against the issuer's DID document.
//!
//! Checks, in the order the reference implementation (`xrpc-server/src/auth.ts`) makes them:
//! shape and `typ`, `exp`, `aud` (our DID, bare or with our service fragment: the reference PDS
//! sends a bare DID when it proxies), `lxm` equal to the method called, then the ES256K/ES256
//! signature by the issuer's `#atproto` key, re-resolving the DID once if it fails (the key may
//! have rotated). The `jti` is returned, not remembered: the caller records it only after the
//! whole request is authorized, and refuses a token whose `jti` it has seen.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use plyr_repo::PublicKey;
use serde::Deserialize;

use crate::error::IdentityError;
use crate::identifier::Did;
use crate::resolver::Resolver;

/// Longest token accepted: real ones are ~500 bytes.
const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// How far in the future `iat` may be (clock skew between hosts).
const MAX_IAT_SKEW_SECS: i64 = 300;

/// Why a service-auth token was refused. [`AuthError::name`] is the XRPC error name for the
/// 401 body.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Not a compact JWS with JSON header and claims, a missing or mistyped claim, an unknown
    /// `alg` or `kid`, or an `iat` in the future.
    #[error("malformed service token: {reason}")]
    Malformed {
        /// What is wrong.
        reason: String,
    },
    /// The `typ` header names an access, refresh or DPoP token, not a service token.
    #[error("wrong token type {typ}")]
    WrongType {
        /// The `typ` sent.
        typ: String,
    },
    /// `exp` has passed.
    #[error("token expired at {exp}")]
    Expired {
        /// The token's `exp`, unix seconds.
        exp: i64,
    },
    /// `aud` is not this service.
    #[error("token is for {aud}, not this service")]
    Audience {
        /// The `aud` sent.
        aud: String,
    },
    /// `lxm` is missing or names another method.
    #[error("token is for method {lxm:?}, not {expected}")]
    LexiconMethod {
        /// The `lxm` sent, if any.
        lxm: Option<String>,
        /// The method called.
        expected: String,
    },
    /// `iss` is not a DID whose document has a usable `#atproto` key.
    #[error("bad issuer {iss}")]
    Issuer {
        /// The `iss` sent.
        iss: String,
        /// Why it could not be used (resolution failure, no key).
        #[source]
        source: Option<IdentityError>,
    },
    /// The signature does not verify with the issuer's key, even after re-resolving it.
    #[error("bad signature for issuer {iss}")]
    Signature {
        /// The `iss` sent.
        iss: String,
    },
}

impl AuthError {
    /// The XRPC error name (`BadJwt`, `JwtExpired`, ...), from the auth spec.
    pub fn name(&self) -> &'static str {
        match self {
            AuthError::Malformed { .. } => "BadJwt",
            AuthError::WrongType { .. } => "BadJwtType",
            AuthError::Expired { .. } => "JwtExpired",
            AuthError::Audience { .. } => "BadJwtAudience",
            AuthError::LexiconMethod { .. } => "BadJwtLexiconMethod",
            AuthError::Issuer { .. } => "BadJwtIss",
            AuthError::Signature { .. } => "BadJwtSignature",
        }
    }
}

/// The claims of a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceToken {
    /// The account the request acts for.
    pub iss: Did,
    /// The method it may call.
    pub lxm: String,
    /// The nonce, for replay protection; record it only once the request is authorized.
    pub jti: Option<String>,
    /// Expiry, unix seconds: how long the `jti` must be remembered.
    pub exp: i64,
}

/// Verifies service-auth tokens addressed to one service. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ServiceAuth {
    resolver: Resolver,
    service_did: Did,
    service_fragment: String,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    typ: Option<String>,
    kid: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    exp: i64,
    iat: Option<i64>,
    lxm: Option<String>,
    jti: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Alg {
    Es256k,
    Es256,
}

impl ServiceAuth {
    /// Tokens must name `service_did` (optionally with `#service_id`, e.g. `plyr_appview`) as
    /// their audience; issuers' keys come from `resolver`.
    pub fn new(resolver: Resolver, service_did: Did, service_id: &str) -> ServiceAuth {
        ServiceAuth {
            resolver,
            service_fragment: format!("{}#{service_id}", service_did.as_str()),
            service_did,
        }
    }

    /// The DID tokens must be addressed to.
    pub fn service_did(&self) -> &Did {
        &self.service_did
    }

    /// Verifies `token` for a call of method `lxm`, now.
    pub async fn verify(&self, token: &str, lxm: &str) -> Result<ServiceToken, AuthError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        self.verify_at(token, lxm, now).await
    }

    /// Verifies `token` for a call of method `lxm` at `now` (unix seconds).
    pub async fn verify_at(
        &self,
        token: &str,
        lxm: &str,
        now: i64,
    ) -> Result<ServiceToken, AuthError> {
        let Unverified {
            claims,
            iss,
            alg,
            signature,
            signed,
        } = check_token(
            token,
            lxm,
            now,
            [self.service_did.as_str(), &self.service_fragment],
        )?;
        let doc = self
            .resolver
            .resolve_did(&iss)
            .await
            .map_err(|e| issuer_error(&claims.iss, e))?;
        let key = doc
            .signing_key()
            .map_err(|e| issuer_error(&claims.iss, e))?;
        if !signature_ok(&key, alg, signed.as_bytes(), &signature) {
            // One fresh resolution: the account may have rotated its key since we cached it.
            let doc = self
                .resolver
                .refresh_did(&iss)
                .await
                .map_err(|e| issuer_error(&claims.iss, e))?;
            let key = doc
                .signing_key()
                .map_err(|e| issuer_error(&claims.iss, e))?;
            if !signature_ok(&key, alg, signed.as_bytes(), &signature) {
                return Err(AuthError::Signature { iss: claims.iss });
            }
        }
        Ok(ServiceToken {
            iss,
            lxm: lxm.to_owned(),
            jti: claims.jti,
            exp: claims.exp,
        })
    }
}

/// A token whose shape, type, times, audience and method passed; its signature is unchecked.
struct Unverified<'t> {
    claims: Claims,
    iss: Did,
    alg: Alg,
    signature: Vec<u8>,
    /// The first two parts exactly as sent: the signed message.
    signed: &'t str,
}

/// The checks made before any network call: everything but the issuer's key and signature.
fn check_token<'t>(
    token: &'t str,
    lxm: &str,
    now: i64,
    audiences: [&str; 2],
) -> Result<Unverified<'t>, AuthError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(malformed("token too long"));
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(claims_b64), Some(sig_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("not three dot-separated parts"));
    };
    let header: Header = decode_json(header_b64, "header")?;
    if let Some(typ) = &header.typ
        && matches!(typ.as_str(), "at+jwt" | "refresh+jwt" | "dpop+jwt")
    {
        return Err(AuthError::WrongType { typ: typ.clone() });
    }
    let alg = match header.alg.as_str() {
        "ES256K" => Alg::Es256k,
        "ES256" => Alg::Es256,
        other => return Err(malformed(format!("unsupported alg {other}"))),
    };
    if let Some(kid) = &header.kid
        && kid != "#atproto"
    {
        return Err(malformed(format!("unsupported kid {kid}")));
    }
    let claims: Claims = decode_json(claims_b64, "claims")?;
    if now > claims.exp {
        return Err(AuthError::Expired { exp: claims.exp });
    }
    match claims.iat {
        Some(iat) if iat > now.saturating_add(MAX_IAT_SKEW_SECS) => {
            return Err(malformed("iat is in the future"));
        }
        Some(_) => {}
        None => return Err(malformed("missing iat")),
    }
    if !audiences.contains(&claims.aud.as_str()) {
        return Err(AuthError::Audience { aud: claims.aud });
    }
    if claims.lxm.as_deref() != Some(lxm) {
        return Err(AuthError::LexiconMethod {
            lxm: claims.lxm,
            expected: lxm.to_owned(),
        });
    }
    let iss = Did::new(&claims.iss).map_err(|_| AuthError::Issuer {
        iss: claims.iss.clone(),
        source: None,
    })?;
    let signature = URL_SAFE_NO_PAD
        .decode(sig_b64)
        .map_err(|_| malformed("signature is not base64url"))?;
    // The signed message is the first two parts exactly as sent.
    let signed = &token[..header_b64.len() + 1 + claims_b64.len()];
    Ok(Unverified {
        claims,
        iss,
        alg,
        signature,
        signed,
    })
}

/// Runs the checks [`ServiceAuth::verify_at`] makes before resolving the issuer, for a service
/// `service_did` (audience bare or `#plyr_appview`). For the fuzz targets in `fuzz/`.
#[doc(hidden)]
pub fn fuzz_service_token(
    token: &str,
    lxm: &str,
    now: i64,
    service_did: &Did,
) -> Result<(), AuthError> {
    let fragment = format!("{}#plyr_appview", service_did.as_str());
    check_token(token, lxm, now, [service_did.as_str(), &fragment]).map(|_| ())
}

/// The key type must match `alg` (a P-256 signature claiming ES256K is refused).
fn signature_ok(key: &PublicKey, alg: Alg, msg: &[u8], sig: &[u8]) -> bool {
    let alg_matches = matches!(
        (key, alg),
        (PublicKey::K256(_), Alg::Es256k) | (PublicKey::P256(_), Alg::Es256)
    );
    alg_matches && key.verify_allowing_high_s(msg, sig).is_ok()
}

fn decode_json<T: for<'de> Deserialize<'de>>(part: &str, what: &str) -> Result<T, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| malformed(format!("{what} is not base64url")))?;
    serde_json::from_slice(&bytes).map_err(|e| malformed(format!("{what}: {e}")))
}

fn malformed(reason: impl Into<String>) -> AuthError {
    AuthError::Malformed {
        reason: reason.into(),
    }
}

fn issuer_error(iss: &str, source: IdentityError) -> AuthError {
    AuthError::Issuer {
        iss: iss.to_owned(),
        source: Some(source),
    }
}

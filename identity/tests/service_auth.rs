//! Service-auth JWTs signed with real secp256k1 and P-256 keys, verified against DID documents
//! served by a loopback PLC directory (axum): every acceptance and refusal rule, key rotation
//! and the one re-resolution after a bad signature.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context as _, Result};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use plyr_identity::{AuthError, Did, Resolver, ResolverConfig, ServiceAuth};
use plyr_repo::PublicKey;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const SERVICE: &str = "did:web:api.plyr.example";
const METHOD: &str = "fm.plyr.feed.getTrack";
const NOW: i64 = 1_800_000_000;

/// Documents served by DID, and how many times each was fetched.
#[derive(Default)]
struct Plc {
    docs: Mutex<HashMap<String, Value>>,
    hits: Mutex<HashMap<String, usize>>,
}

impl Plc {
    fn publish(&self, did: &str, key: &PublicKey) {
        let doc = json!({
            "id": did,
            "alsoKnownAs": [],
            "verificationMethod": [{
                "id": format!("{did}#atproto"),
                "type": "Multikey",
                "controller": did,
                "publicKeyMultibase": key.to_did_key().trim_start_matches("did:key:"),
            }],
            "service": [],
        });
        self.docs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(did.to_owned(), doc);
    }

    fn hits(&self, did: &str) -> usize {
        let hits = self.hits.lock().unwrap_or_else(PoisonError::into_inner);
        hits.get(did).copied().unwrap_or_default()
    }
}

async fn serve_doc(State(plc): State<Arc<Plc>>, Path(did): Path<String>) -> Response {
    *plc.hits
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(did.clone())
        .or_default() += 1;
    let doc = plc
        .docs
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&did)
        .cloned();
    match doc {
        Some(doc) => axum::Json(doc).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

struct World {
    plc: Arc<Plc>,
    auth: ServiceAuth,
    stop: CancellationToken,
}

impl Drop for World {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn world() -> Result<World> {
    let plc = Arc::new(Plc::default());
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let stop = CancellationToken::new();
    let app = Router::new()
        .route("/{did}", axum::routing::get(serve_doc))
        .with_state(plc.clone());
    let shutdown = stop.clone();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
    });
    let config = ResolverConfig {
        plc_url: format!("http://{addr}").parse()?,
        allow_loopback: true,
        ..ResolverConfig::default()
    };
    let resolver = Resolver::new(config)?;
    let auth = ServiceAuth::new(resolver, Did::new(SERVICE)?, "plyr_appview");
    Ok(World { plc, auth, stop })
}

/// A signing key of either curve.
enum Signer {
    K256(secp256k1::SecretKey),
    P256(p256::ecdsa::SigningKey),
}

impl Signer {
    fn k256(seed: u8) -> Result<Signer> {
        Ok(Signer::K256(secp256k1::SecretKey::from_byte_array(
            [seed; 32],
        )?))
    }

    fn p256(seed: u8) -> Result<Signer> {
        Ok(Signer::P256(p256::ecdsa::SigningKey::from_slice(
            &[seed; 32],
        )?))
    }

    fn public(&self) -> PublicKey {
        match self {
            Signer::K256(secret) => PublicKey::K256(secp256k1::PublicKey::from_secret_key(
                secp256k1::SECP256K1,
                secret,
            )),
            Signer::P256(secret) => PublicKey::P256(*secret.verifying_key()),
        }
    }

    fn alg(&self) -> &'static str {
        match self {
            Signer::K256(_) => "ES256K",
            Signer::P256(_) => "ES256",
        }
    }

    /// A compact (r || s) signature over sha256(`msg`), low-S unless `high_s`.
    fn sign(&self, msg: &[u8], high_s: bool) -> Vec<u8> {
        use sha2::Digest as _;
        let digest: [u8; 32] = sha2::Sha256::digest(msg).into();
        let mut compact = match self {
            Signer::K256(secret) => secp256k1::SECP256K1
                .sign_ecdsa(secp256k1::Message::from_digest(digest), secret)
                .serialize_compact()
                .to_vec(),
            Signer::P256(secret) => {
                use p256::ecdsa::signature::hazmat::PrehashSigner as _;
                let sig: p256::ecdsa::Signature =
                    secret.sign_prehash(&digest).expect("p256 signs a digest");
                sig.normalize_s().unwrap_or(sig).to_bytes().to_vec()
            }
        };
        if high_s {
            flip_s(self, &mut compact);
        }
        compact
    }
}

/// Replaces s with n - s: the same signature in its malleable (high-S) form.
fn flip_s(signer: &Signer, compact: &mut [u8]) {
    let order: [u8; 32] = match signer {
        Signer::K256(_) => {
            hex32("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141")
        }
        Signer::P256(_) => {
            hex32("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551")
        }
    };
    let s = &mut compact[32..];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let diff = i16::from(order[i]) - i16::from(s[i]) - borrow;
        borrow = i16::from(diff < 0);
        s[i] = u8::try_from(diff.rem_euclid(256)).expect("a byte");
    }
}

fn hex32(hex: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex");
    }
    out
}

fn token(signer: &Signer, header: Value, claims: Value, high_s: bool) -> String {
    let head = URL_SAFE_NO_PAD.encode(header.to_string());
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signed = format!("{head}.{body}");
    let sig = URL_SAFE_NO_PAD.encode(signer.sign(signed.as_bytes(), high_s));
    format!("{signed}.{sig}")
}

fn claims(iss: &str) -> Value {
    json!({
        "iss": iss,
        "aud": format!("{SERVICE}#plyr_appview"),
        "exp": NOW + 60,
        "iat": NOW,
        "lxm": METHOD,
        "jti": "nonce-1",
    })
}

fn standard(signer: &Signer, claims: Value) -> String {
    token(
        signer,
        json!({"alg": signer.alg(), "typ": "JWT"}),
        claims,
        false,
    )
}

fn name<T: std::fmt::Debug>(result: Result<T, AuthError>) -> &'static str {
    result.expect_err("token must be refused").name()
}

const ALICE: &str = "did:plc:aliceaaaaaaaaaaaaaaaaaaa";

#[tokio::test]
async fn valid_tokens_of_both_curves_and_both_audience_forms() -> Result<()> {
    let w = world().await?;
    for (i, signer) in [Signer::k256(7)?, Signer::p256(9)?].into_iter().enumerate() {
        let did = format!("did:plc:{}", ["k", "p"][i].repeat(24));
        w.plc.publish(&did, &signer.public());
        let verified = w
            .auth
            .verify_at(&standard(&signer, claims(&did)), METHOD, NOW)
            .await
            .with_context(|| format!("{} token", signer.alg()))?;
        assert_eq!(verified.iss.as_str(), did);
        assert_eq!(verified.lxm, METHOD);
        assert_eq!(verified.jti.as_deref(), Some("nonce-1"));
        assert_eq!(verified.exp, NOW + 60);
        // The reference PDS keeps a bare-DID audience on tokens it mints when proxying.
        let mut bare = claims(&did);
        bare["aud"] = json!(SERVICE);
        w.auth
            .verify_at(&standard(&signer, bare), METHOD, NOW)
            .await
            .context("bare audience")?;
        // Some signers do not normalize S; the reference accepts those for JWTs.
        let high = token(&signer, json!({"alg": signer.alg()}), claims(&did), true);
        let (signed, sig) = high.rsplit_once('.').context("three parts")?;
        let sig = URL_SAFE_NO_PAD.decode(sig)?;
        assert!(
            signer.public().verify(signed.as_bytes(), &sig).is_err(),
            "really high-S"
        );
        w.auth
            .verify_at(&high, METHOD, NOW)
            .await
            .context("high-S signature")?;
    }
    Ok(())
}

#[tokio::test]
async fn refusals_carry_the_spec_error_names() -> Result<()> {
    let w = world().await?;
    let signer = Signer::k256(3)?;
    w.plc.publish(ALICE, &signer.public());
    let verify = |t: String, now: i64| {
        let auth = w.auth.clone();
        async move { auth.verify_at(&t, METHOD, now).await }
    };

    assert_eq!(name(verify("not-a-jwt".into(), NOW).await), "BadJwt");
    assert_eq!(name(verify("a.b.c.d".into(), NOW).await), "BadJwt");
    assert_eq!(name(verify("x".repeat(10_000), NOW).await), "BadJwt");
    let no_alg = token(&signer, json!({"alg": "HS256"}), claims(ALICE), false);
    assert_eq!(name(verify(no_alg, NOW).await), "BadJwt");
    let none = token(&signer, json!({"alg": "none"}), claims(ALICE), false);
    assert_eq!(name(verify(none, NOW).await), "BadJwt");
    let other_kid = token(
        &signer,
        json!({"alg": "ES256K", "kid": "#other"}),
        claims(ALICE),
        false,
    );
    assert_eq!(name(verify(other_kid, NOW).await), "BadJwt");
    for typ in ["at+jwt", "refresh+jwt", "dpop+jwt"] {
        let t = token(
            &signer,
            json!({"alg": "ES256K", "typ": typ}),
            claims(ALICE),
            false,
        );
        assert_eq!(name(verify(t, NOW).await), "BadJwtType", "{typ}");
    }
    let t = standard(&signer, claims(ALICE));
    assert_eq!(name(verify(t.clone(), NOW + 61).await), "JwtExpired");
    let mut future = claims(ALICE);
    future["iat"] = json!(NOW + 3600);
    future["exp"] = json!(NOW + 3660);
    assert_eq!(name(verify(standard(&signer, future), NOW).await), "BadJwt");
    let mut no_iat = claims(ALICE);
    no_iat.as_object_mut().expect("object").remove("iat");
    assert_eq!(name(verify(standard(&signer, no_iat), NOW).await), "BadJwt");
    for aud in [
        json!("did:web:other.example"),
        json!(format!("{SERVICE}#other_service")),
        json!(format!("{SERVICE}plyr_appview")),
    ] {
        let mut c = claims(ALICE);
        c["aud"] = aud.clone();
        assert_eq!(
            name(verify(standard(&signer, c), NOW).await),
            "BadJwtAudience",
            "{aud}"
        );
    }
    let mut other_method = claims(ALICE);
    other_method["lxm"] = json!("fm.plyr.feed.getTracks");
    assert_eq!(
        name(verify(standard(&signer, other_method), NOW).await),
        "BadJwtLexiconMethod"
    );
    let mut no_lxm = claims(ALICE);
    no_lxm.as_object_mut().expect("object").remove("lxm");
    assert_eq!(
        name(verify(standard(&signer, no_lxm), NOW).await),
        "BadJwtLexiconMethod"
    );
    assert_eq!(
        name(verify(standard(&signer, claims("alice")), NOW).await),
        "BadJwtIss"
    );
    let unknown = "did:plc:nobodyaaaaaaaaaaaaaaaaaa";
    assert_eq!(
        name(verify(standard(&signer, claims(unknown)), NOW).await),
        "BadJwtIss"
    );

    // Signed by a key the document does not hold.
    let forger = Signer::k256(4)?;
    assert_eq!(
        name(verify(standard(&forger, claims(ALICE)), NOW).await),
        "BadJwtSignature"
    );
    // The right key, but the claims were edited after signing.
    let mut parts: Vec<String> = t.split('.').map(str::to_owned).collect();
    let mut edited = claims(ALICE);
    edited["lxm"] = json!(METHOD);
    edited["jti"] = json!("nonce-2");
    parts[1] = URL_SAFE_NO_PAD.encode(edited.to_string());
    assert_eq!(name(verify(parts.join("."), NOW).await), "BadJwtSignature");
    // A P-256 signature claiming ES256K (and the reverse) never verifies.
    let p = Signer::p256(5)?;
    let bob = "did:plc:bobaaaaaaaaaaaaaaaaaaaaa";
    w.plc.publish(bob, &p.public());
    let mislabelled = token(&p, json!({"alg": "ES256K"}), claims(bob), false);
    assert_eq!(name(verify(mislabelled, NOW).await), "BadJwtSignature");
    Ok(())
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_by_one_fresh_resolution() -> Result<()> {
    let w = world().await?;
    let old = Signer::k256(11)?;
    let new = Signer::k256(12)?;
    w.plc.publish(ALICE, &old.public());
    w.auth
        .verify_at(&standard(&old, claims(ALICE)), METHOD, NOW)
        .await?;
    assert_eq!(w.plc.hits(ALICE), 1);
    // Cached: a second token costs no lookup.
    w.auth
        .verify_at(&standard(&old, claims(ALICE)), METHOD, NOW)
        .await?;
    assert_eq!(w.plc.hits(ALICE), 1);
    w.plc.publish(ALICE, &new.public());
    w.auth
        .verify_at(&standard(&new, claims(ALICE)), METHOD, NOW)
        .await
        .context("the rotated key after one re-resolution")?;
    assert_eq!(w.plc.hits(ALICE), 2);
    // A forged token costs exactly one re-resolution, then is refused.
    let forger = Signer::k256(13)?;
    assert_eq!(
        name(
            w.auth
                .verify_at(&standard(&forger, claims(ALICE)), METHOD, NOW)
                .await
        ),
        "BadJwtSignature"
    );
    assert_eq!(w.plc.hits(ALICE), 3);
    Ok(())
}

//! Service identity and auth: the did:web document at /.well-known/did.json, and viewer state
//! through service-auth tokens signed with a real secp256k1 key whose DID document a loopback
//! PLC directory serves: `viewer.like` filled for the token's account, and every refusal
//! answered 401 with the spec's error name and a `WWW-Authenticate` header.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use plyr_appview_xrpc::{AppState, Authenticator, router};
use plyr_identity::{Did, Resolver, ResolverConfig, ServiceAuth};
use serde_json::{Value, json};
use sha2::Digest as _;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use crate::support::*;

pub(crate) const SERVICE: &str = "did:web:appview.plyr.example";
const BOB: &str = "did:plc:bobbbbbbbbbbbbbbbbbbbbbb";
const ALICE: &str = "did:plc:alice";

pub(crate) struct Plc {
    url: String,
    stop: CancellationToken,
}

impl Drop for Plc {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Serves `doc` at `/{did}` on loopback.
pub(crate) async fn plc(did: &'static str, key: &secp256k1::SecretKey) -> Plc {
    let public = secp256k1::PublicKey::from_secret_key(secp256k1::SECP256K1, key);
    let multibase = plyr_repo::PublicKey::K256(public).to_did_key();
    let doc = json!({
        "id": did,
        "verificationMethod": [{
            "id": format!("{did}#atproto"),
            "type": "Multikey",
            "controller": did,
            "publicKeyMultibase": multibase.trim_start_matches("did:key:"),
        }],
    });
    let app = axum::Router::new().route(
        &format!("/{did}"),
        axum::routing::get(move || async move { axum::Json(doc) }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind plc");
    let url = format!("http://{}", listener.local_addr().expect("plc address"));
    let stop = CancellationToken::new();
    let shutdown = stop.clone();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
    });
    Plc { url, stop }
}

pub(crate) fn state(db: &PgPool, plc: &Plc) -> AppState {
    let config = ResolverConfig {
        plc_url: plc.url.parse().expect("plc url"),
        allow_loopback: true,
        ..ResolverConfig::default()
    };
    let resolver = Resolver::new(config).expect("resolver");
    let did = Did::new(SERVICE).expect("service did");
    AppState::new(db.clone()).with_authenticator(Authenticator::new(ServiceAuth::new(
        resolver,
        did,
        "plyr_appview",
    )))
}

pub(crate) fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    i64::try_from(secs).expect("seconds fit")
}

pub(crate) fn token(
    key: &secp256k1::SecretKey,
    iss: &str,
    lxm: &str,
    jti: &str,
    exp: i64,
) -> String {
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": "ES256K", "typ": "JWT"}).to_string());
    let claims =
        json!({"iss": iss, "aud": SERVICE, "lxm": lxm, "jti": jti, "iat": now(), "exp": exp});
    let signed = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
    let digest: [u8; 32] = sha2::Sha256::digest(signed.as_bytes()).into();
    let sig = secp256k1::SECP256K1
        .sign_ecdsa(secp256k1::Message::from_digest(digest), key)
        .serialize_compact();
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// GET with an optional bearer token; the status, the WWW-Authenticate header and the body.
async fn get(
    state: AppState,
    path: &str,
    token: Option<&str>,
) -> (StatusCode, Option<String>, Value) {
    let mut req = Request::builder().uri(path);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let resp = router(state)
        .oneshot(req.body(Body::empty()).expect("request"))
        .await
        .expect("router is infallible");
    let status = resp.status();
    let challenge = resp
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    (
        status,
        challenge,
        serde_json::from_slice(&bytes).expect("json body"),
    )
}

pub(crate) fn key(seed: u8) -> secp256k1::SecretKey {
    secp256k1::SecretKey::from_byte_array([seed; 32]).expect("valid key")
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn viewer_like_is_filled_for_the_tokens_account(db: PgPool) {
    let bob_key = key(21);
    let plc = plc(BOB, &bob_key).await;
    actor(&db, ALICE, Some("alice.test")).await;
    actor(&db, BOB, Some("bob.test")).await;
    let liked = track(&db, ALICE, "3kaaaaaaaaaa2", 10).await;
    let other = track(&db, ALICE, "3kaaaaaaaaaa3", 20).await;
    like(&db, BOB, "3kbbbbbbbbbb2", &liked, 30).await;
    let newest = like(&db, BOB, "3kbbbbbbbbbb3", &liked, 40).await;
    like(&db, ALICE, "3kbbbbbbbbbb4", &other, 50).await;

    // Anonymous: no viewer field at all.
    let anon = ok(
        &db,
        "fm.plyr.feed.getTrack",
        &format!("uri={}", enc(&liked)),
    )
    .await;
    assert!(anon["track"].get("viewer").is_none(), "{anon}");

    let method = "fm.plyr.feed.getLatestTracks";
    let t = token(&bob_key, BOB, method, "n1", now() + 60);
    let (status, _, body) = get(state(&db, &plc), &format!("/xrpc/{method}"), Some(&t)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    plyr_lexicons::Catalog::plyr()
        .validate_output(method, &body)
        .expect("output matches the lexicon");
    let tracks = body["tracks"].as_array().expect("tracks");
    let by_uri = |uri: &str| {
        tracks
            .iter()
            .find(|t| t["uri"] == uri)
            .expect("track listed")
    };
    // The newest of bob's two likes of the track, and nothing for the one only alice liked.
    assert_eq!(by_uri(&liked)["viewer"], json!({"like": newest}));
    assert_eq!(by_uri(&other)["viewer"], json!({}));

    for method in ["fm.plyr.feed.getTrack", "fm.plyr.feed.getTracks"] {
        let param = if method.ends_with("getTrack") {
            "uri"
        } else {
            "uris"
        };
        let t = token(&bob_key, BOB, method, &format!("{method}-1"), now() + 60);
        let path = format!("/xrpc/{method}?{param}={}", enc(&liked));
        let (status, _, body) = get(state(&db, &plc), &path, Some(&t)).await;
        assert_eq!(status, StatusCode::OK, "{method}: {body}");
        let track = if method.ends_with("getTrack") {
            &body["track"]
        } else {
            &body["tracks"][0]
        };
        assert_eq!(track["viewer"]["like"], newest.as_str(), "{method}: {body}");
    }
    let method = "fm.plyr.feed.getArtistTracks";
    let t = token(&bob_key, BOB, method, "artist-1", now() + 60);
    let path = format!("/xrpc/{method}?actor={ALICE}");
    let (status, _, body) = get(state(&db, &plc), &path, Some(&t)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["tracks"].as_array().map(Vec::len), Some(2), "{body}");
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn bad_tokens_are_refused_with_401_and_the_spec_error(db: PgPool) {
    let bob_key = key(22);
    let plc = plc(BOB, &bob_key).await;
    actor(&db, ALICE, Some("alice.test")).await;
    track(&db, ALICE, "3kaaaaaaaaaa2", 10).await;
    let method = "fm.plyr.feed.getLatestTracks";
    let path = format!("/xrpc/{method}");
    let app = state(&db, &plc);

    // A token is good once: the replay is refused.
    let t = token(&bob_key, BOB, method, "once", now() + 60);
    let (status, _, _) = get(app.clone(), &path, Some(&t)).await;
    assert_eq!(status, StatusCode::OK);
    let cases = [
        (t, "BadJwt"),
        (
            token(&bob_key, BOB, method, "late", now() - 5),
            "JwtExpired",
        ),
        (
            token(&bob_key, BOB, "fm.plyr.feed.getTrack", "lxm", now() + 60),
            "BadJwtLexiconMethod",
        ),
        (
            token(&key(23), BOB, method, "forged", now() + 60),
            "BadJwtSignature",
        ),
        ("garbage".to_owned(), "BadJwt"),
    ];
    for (t, expected) in cases {
        let (status, challenge, body) = get(app.clone(), &path, Some(&t)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{expected}: {body}");
        assert_eq!(body["error"], expected, "{body}");
        assert_eq!(challenge.as_deref(), Some("Bearer"), "{expected}");
    }
    // A token whose signature failed did not burn its nonce: only verified tokens are recorded.
    let forged = token(&key(23), BOB, method, "kept", now() + 60);
    let (status, _, _) = get(app.clone(), &path, Some(&forged)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let genuine = token(&bob_key, BOB, method, "kept", now() + 60);
    let (status, _, body) = get(app.clone(), &path, Some(&genuine)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A service without a DID accepts no tokens, and says so rather than ignoring them.
    let t = token(&bob_key, BOB, method, "no-did", now() + 60);
    let (status, _, body) = get(AppState::new(db.clone()), &path, Some(&t)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "BadJwtAudience");
    let (status, _, body) = get(app, &path, None).await;
    assert_eq!(status, StatusCode::OK, "anonymous reads still work: {body}");
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn the_service_did_document_is_served_for_did_web(db: PgPool) {
    let identity = plyr_appview_xrpc::ServiceIdentity::new(SERVICE, None).expect("did:web");
    let app = AppState::new(db.clone()).with_service(identity);
    let (status, _, doc) = get(app, "/.well-known/did.json", None).await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    assert_eq!(doc["id"], SERVICE);
    assert_eq!(
        doc["service"],
        json!([{
            "id": "#plyr_appview",
            "type": "PlyrAppView",
            "serviceEndpoint": "https://appview.plyr.example",
        }])
    );
    // The document our own resolver would read: it parses and names the endpoint.
    let parsed: plyr_identity::DidDocument = serde_json::from_value(doc).expect("a DID document");
    let endpoint = parsed
        .service_endpoint("#plyr_appview")
        .expect("service entry");
    assert_eq!(endpoint.as_str(), "https://appview.plyr.example/");
    let (status, _, body) = get(AppState::new(db), "/.well-known/did.json", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

//! Hostile service-auth tokens: each is refused by the checks `ServiceAuth::verify_at` makes
//! before resolving the issuer, with the spec's error name. (The signature path is covered
//! against a loopback PLC in `service_auth.rs`.)

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use plyr_identity::{Did, fuzz_service_token};
use serde_json::{Value, json};

const SERVICE: &str = "did:web:api.plyr.example";
const METHOD: &str = "fm.plyr.feed.getTrack";
const NOW: i64 = 1_800_000_000;

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

fn claims() -> Value {
    json!({
        "iss": "did:plc:7iza6de2dwap2sbkpav7c6c6",
        "aud": SERVICE,
        "exp": NOW + 60,
        "iat": NOW,
        "lxm": METHOD,
        "jti": "a"
    })
}

/// `header.claims.signature`, the signature 64 zero bytes.
fn token(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}.{}",
        b64(header),
        b64(claims),
        URL_SAFE_NO_PAD.encode([0u8; 64])
    )
}

fn es256k() -> Value {
    json!({"alg": "ES256K", "typ": "JWT"})
}

fn with(field: &str, value: Value) -> Value {
    let mut c = claims();
    c[field] = value;
    c
}

#[test]
fn hostile_tokens_are_refused_by_name() {
    let service = Did::new(SERVICE).expect("service did");
    let raw = |text: &str| URL_SAFE_NO_PAD.encode(text);
    let deep = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "alg none, no signature",
            format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&claims())),
            "BadJwt",
        ),
        (
            "alg none",
            token(&json!({"alg": "none", "typ": "JWT"}), &claims()),
            "BadJwt",
        ),
        (
            "alg HS256",
            token(&json!({"alg": "HS256"}), &claims()),
            "BadJwt",
        ),
        (
            "alg lowercase",
            token(&json!({"alg": "es256k"}), &claims()),
            "BadJwt",
        ),
        (
            "duplicate alg",
            format!(
                "{}.{}.",
                raw(r#"{"alg":"ES256K","alg":"none"}"#),
                b64(&claims())
            ),
            "BadJwt",
        ),
        (
            "access token type",
            token(&json!({"alg": "ES256K", "typ": "at+jwt"}), &claims()),
            "BadJwtType",
        ),
        (
            "path-like kid",
            token(&json!({"alg": "ES256K", "kid": "../../keys"}), &claims()),
            "BadJwt",
        ),
        (
            "two parts",
            format!("{}.{}", b64(&es256k()), b64(&claims())),
            "BadJwt",
        ),
        (
            "four parts",
            format!("{}.x", token(&es256k(), &claims())),
            "BadJwt",
        ),
        (
            "padded base64",
            format!("{}=.{}.", b64(&es256k()), b64(&claims())),
            "BadJwt",
        ),
        (
            "valid base64 of garbage claims",
            format!("{}.{}.", b64(&es256k()), raw("\u{0}\u{1}garbage")),
            "BadJwt",
        ),
        (
            "deeply nested claims",
            format!("{}.{}.", b64(&es256k()), raw(&deep)),
            "BadJwt",
        ),
        (
            "oversized",
            token(&es256k(), &with("jti", json!("x".repeat(10_000)))),
            "BadJwt",
        ),
        (
            "expired",
            token(&es256k(), &with("exp", json!(NOW - 1))),
            "JwtExpired",
        ),
        (
            "exp past i64",
            format!(
                "{}.{}.",
                b64(&es256k()),
                raw(&claims()
                    .to_string()
                    .replace(&(NOW + 60).to_string(), "1e400"))
            ),
            "BadJwt",
        ),
        (
            "iat in the far future",
            token(&es256k(), &with("iat", json!(i64::MAX))),
            "BadJwt",
        ),
        (
            "sql-looking audience",
            token(
                &es256k(),
                &with("aud", json!(format!("{SERVICE}' or '1'='1"))),
            ),
            "BadJwtAudience",
        ),
        (
            "sql-looking method",
            token(&es256k(), &with("lxm", json!("fm.plyr.feed.getTrack; --"))),
            "BadJwtLexiconMethod",
        ),
        (
            "no method",
            token(&es256k(), &with("lxm", Value::Null)),
            "BadJwtLexiconMethod",
        ),
        (
            "sql-looking issuer",
            token(
                &es256k(),
                &with("iss", json!("did:plc:x'; drop table actor; --")),
            ),
            "BadJwtIss",
        ),
        (
            "signature not base64url",
            format!("{}.{}.!!", b64(&es256k()), b64(&claims())),
            "BadJwt",
        ),
    ];
    for (name, token, expected) in cases {
        match fuzz_service_token(&token, METHOD, NOW, &service) {
            Ok(()) => panic!("{name}: accepted"),
            Err(e) => assert_eq!(e.name(), expected, "{name}: {e}"),
        }
    }
}

#[test]
fn a_well_formed_token_passes_the_checks_before_the_signature() {
    let service = Did::new(SERVICE).expect("service did");
    let token = token(&es256k(), &claims());
    assert!(fuzz_service_token(&token, METHOD, NOW, &service).is_ok());
}

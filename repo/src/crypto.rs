//! `did:key` parsing and ECDSA signature verification for ATProto's two curves: secp256k1 via
//! libsecp256k1 (2.7x faster than RustCrypto here) and P-256 via RustCrypto, low-S enforced.

use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
use sha2::{Digest as _, Sha256};

use crate::error::ErrorKind;

/// Multicodec varint prefix of a compressed secp256k1 public key (0xe7).
const SECP256K1_PREFIX: [u8; 2] = [0xe7, 0x01];
/// Multicodec varint prefix of a compressed P-256 public key (0x1200).
const P256_PREFIX: [u8; 2] = [0x80, 0x24];
const DID_KEY_PREFIX: &str = "did:key:z";
/// A compact `r || s` signature, the only encoding ATProto accepts (DER is invalid).
const SIGNATURE_LEN: usize = 64;

/// Why a key could not be parsed or a signature did not verify.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The string is not a `did:key` with a supported compressed public key.
    #[error("invalid did:key: {reason}")]
    BadKey {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The signature is malformed, high-S, or does not match the message and key.
    #[error("bad signature: {reason}")]
    BadSignature {
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl CryptoError {
    /// The classification of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            CryptoError::BadKey { .. } => ErrorKind::BadKey,
            CryptoError::BadSignature { .. } => ErrorKind::BadSignature,
        }
    }
}

fn bad_signature(reason: &'static str) -> CryptoError {
    CryptoError::BadSignature { reason }
}

fn bad_key(reason: &'static str) -> CryptoError {
    CryptoError::BadKey { reason }
}

/// A repo signing key (from a DID document's `#atproto` verification method).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// secp256k1 (`ES256K`), the key most repos sign with.
    K256(secp256k1::PublicKey),
    /// NIST P-256 (`ES256`).
    P256(p256::ecdsa::VerifyingKey),
}

/// Parses a `did:key` (multibase base58btc, multicodec secp256k1-pub or p256-pub, compressed).
pub fn parse_did_key(did_key: &str) -> Result<PublicKey, CryptoError> {
    let encoded = did_key
        .strip_prefix(DID_KEY_PREFIX)
        .ok_or_else(|| bad_key("not a base58btc did:key"))?;
    let bytes = bs58::decode(encoded)
        .into_vec()
        .map_err(|_| bad_key("invalid base58btc"))?;
    PublicKey::from_multicodec(&bytes)
}

impl PublicKey {
    /// Parses multicodec-prefixed compressed key bytes (the decoded body of a `did:key`).
    pub fn from_multicodec(bytes: &[u8]) -> Result<PublicKey, CryptoError> {
        let (prefix, point) = bytes
            .split_at_checked(2)
            .ok_or_else(|| bad_key("too short"))?;
        // Compressed points only (33 bytes): the did:key spec for these curves requires them.
        let point: [u8; 33] = point
            .try_into()
            .map_err(|_| bad_key("not a 33-byte compressed point"))?;
        match <[u8; 2]>::try_from(prefix) {
            Ok(SECP256K1_PREFIX) => secp256k1::PublicKey::from_byte_array_compressed(point)
                .map(PublicKey::K256)
                .map_err(|_| bad_key("not a secp256k1 point")),
            Ok(P256_PREFIX) => p256::ecdsa::VerifyingKey::from_sec1_bytes(&point)
                .map(PublicKey::P256)
                .map_err(|_| bad_key("not a p-256 point")),
            _ => Err(bad_key("unsupported multicodec")),
        }
    }

    /// The key as a `did:key` string.
    pub fn to_did_key(&self) -> String {
        let mut bytes = Vec::with_capacity(35);
        match self {
            PublicKey::K256(key) => {
                bytes.extend_from_slice(&SECP256K1_PREFIX);
                bytes.extend_from_slice(&key.serialize());
            }
            PublicKey::P256(key) => {
                bytes.extend_from_slice(&P256_PREFIX);
                bytes.extend_from_slice(key.to_encoded_point(true).as_bytes());
            }
        }
        format!("{DID_KEY_PREFIX}{}", bs58::encode(bytes).into_string())
    }

    /// The compressed SEC1 encoding of the point (33 bytes).
    pub fn to_compressed(&self) -> Vec<u8> {
        match self {
            PublicKey::K256(key) => key.serialize().to_vec(),
            PublicKey::P256(key) => key.to_encoded_point(true).as_bytes().to_vec(),
        }
    }

    /// Verifies a 64-byte compact signature over sha256(`msg`), rejecting high-S signatures.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        let sig: &[u8; SIGNATURE_LEN] = sig
            .try_into()
            .map_err(|_| bad_signature("not a 64-byte compact signature"))?;
        let digest: [u8; 32] = Sha256::digest(msg).into();
        match self {
            PublicKey::K256(key) => {
                let sig = secp256k1::ecdsa::Signature::from_compact(sig)
                    .map_err(|_| bad_signature("not a valid secp256k1 signature"))?;
                // libsecp256k1 only accepts normalized (low-S) signatures.
                secp256k1::SECP256K1
                    .verify_ecdsa(secp256k1::Message::from_digest(digest), &sig, key)
                    .map_err(|_| bad_signature("does not verify (or high-S)"))
            }
            PublicKey::P256(key) => {
                let sig = p256::ecdsa::Signature::from_slice(sig)
                    .map_err(|_| bad_signature("not a valid p-256 signature"))?;
                // RustCrypto accepts either S; ATProto requires the low one.
                if sig.normalize_s().is_some() {
                    return Err(bad_signature("high-S signature"));
                }
                key.verify_prehash(&digest, &sig)
                    .map_err(|_| bad_signature("does not verify"))
            }
        }
    }

    /// Like [`PublicKey::verify`] but accepting high-S signatures, as the reference
    /// implementation does for inter-service JWTs (`allowMalleableSig`): some signers (WebCrypto
    /// P-256) do not normalize S, and a JWT's replay protection is its `jti`, not its bytes.
    /// Repo commits must keep using [`PublicKey::verify`].
    pub fn verify_allowing_high_s(&self, msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        let sig: &[u8; SIGNATURE_LEN] = sig
            .try_into()
            .map_err(|_| bad_signature("not a 64-byte compact signature"))?;
        let digest: [u8; 32] = Sha256::digest(msg).into();
        match self {
            PublicKey::K256(key) => {
                let mut sig = secp256k1::ecdsa::Signature::from_compact(sig)
                    .map_err(|_| bad_signature("not a valid secp256k1 signature"))?;
                sig.normalize_s();
                secp256k1::SECP256K1
                    .verify_ecdsa(secp256k1::Message::from_digest(digest), &sig, key)
                    .map_err(|_| bad_signature("does not verify"))
            }
            PublicKey::P256(key) => {
                let sig = p256::ecdsa::Signature::from_slice(sig)
                    .map_err(|_| bad_signature("not a valid p-256 signature"))?;
                let sig = sig.normalize_s().unwrap_or(sig);
                key.verify_prehash(&digest, &sig)
                    .map_err(|_| bad_signature("does not verify"))
            }
        }
    }
}

/// Signs `msg` as ATProto does: ECDSA over sha256(`msg`) with a secp256k1 key, as a 64-byte
/// compact low-S signature (libsecp256k1 always normalizes S).
#[cfg(any(test, feature = "builder"))]
pub(crate) fn sign_k256(secret: &secp256k1::SecretKey, msg: &[u8]) -> [u8; SIGNATURE_LEN] {
    let digest: [u8; 32] = Sha256::digest(msg).into();
    secp256k1::SECP256K1
        .sign_ecdsa(secp256k1::Message::from_digest(digest), secret)
        .serialize_compact()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use serde_json::Value;

    const FIXTURES: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/reference/atproto-interop-tests/crypto"
    );

    fn cases(name: &str) -> Vec<Value> {
        let path = format!("{FIXTURES}/{name}");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
        match serde_json::from_str(&text) {
            Ok(Value::Array(cases)) => cases,
            other => panic!("{path} is not an array: {other:?}"),
        }
    }

    fn field<'a>(case: &'a Value, name: &str) -> &'a str {
        case[name]
            .as_str()
            .unwrap_or_else(|| panic!("fixture field {name} missing"))
    }

    fn b64(s: &str) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(s.trim_end_matches('='))
            .expect("fixture base64")
    }

    #[test]
    fn signature_fixtures() {
        let cases = cases("signature-fixtures.json");
        assert_eq!(cases.len(), 6);
        for case in cases {
            let comment = field(&case, "comment");
            let key = parse_did_key(field(&case, "publicKeyDid")).expect(comment);
            // The multibase form is the bare compressed point.
            let multibase = field(&case, "publicKeyMultibase");
            let raw = bs58::decode(&multibase[1..]).into_vec().expect(comment);
            assert_eq!(key.to_compressed(), raw, "{comment}");
            let algorithm = field(&case, "algorithm");
            match (&key, algorithm) {
                (PublicKey::K256(_), "ES256K") | (PublicKey::P256(_), "ES256") => {}
                _ => panic!("{comment}: key type does not match {algorithm}"),
            }
            let msg = b64(field(&case, "messageBase64"));
            let sig = b64(field(&case, "signatureBase64"));
            let result = key.verify(&msg, &sig);
            if case["validSignature"] == Value::Bool(true) {
                assert!(result.is_ok(), "{comment}: {result:?}");
            } else {
                let err = result.expect_err(comment);
                assert_eq!(err.kind(), ErrorKind::BadSignature, "{comment}");
            }
        }
    }

    #[test]
    fn high_s_signatures_verify_only_when_allowed() {
        for case in cases("signature-fixtures.json") {
            let comment = field(&case, "comment");
            let key = parse_did_key(field(&case, "publicKeyDid")).expect(comment);
            let msg = b64(field(&case, "messageBase64"));
            let sig = b64(field(&case, "signatureBase64"));
            let tags = case["tags"].as_array().expect("fixture tags");
            let high_s = tags.iter().any(|t| t == "high-s");
            let der = tags.iter().any(|t| t == "der-encoded");
            let lenient = key.verify_allowing_high_s(&msg, &sig);
            if der {
                assert_eq!(lenient.expect_err(comment).kind(), ErrorKind::BadSignature);
            } else {
                assert!(lenient.is_ok(), "{comment}: {lenient:?}");
            }
            if high_s {
                assert!(key.verify(&msg, &sig).is_err(), "{comment}");
            }
        }
    }

    #[test]
    fn w3c_k256_did_keys() {
        let cases = cases("w3c_didkey_K256.json");
        assert_eq!(cases.len(), 5);
        for case in cases {
            let did = field(&case, "publicDidKey");
            let secret: [u8; 32] = hex_bytes(field(&case, "privateKeyBytesHex"))
                .try_into()
                .expect("32-byte key");
            let secret = secp256k1::SecretKey::from_byte_array(secret).expect("valid key");
            let expected = secp256k1::PublicKey::from_secret_key(secp256k1::SECP256K1, &secret);
            let parsed = parse_did_key(did).expect(did);
            assert_eq!(parsed, PublicKey::K256(expected), "{did}");
            assert_eq!(parsed.to_did_key(), did);
        }
    }

    #[test]
    fn w3c_p256_did_keys() {
        let cases = cases("w3c_didkey_P256.json");
        assert_eq!(cases.len(), 1);
        for case in cases {
            let did = field(&case, "publicDidKey");
            let secret = bs58::decode(field(&case, "privateKeyBytesBase58"))
                .into_vec()
                .expect("base58");
            let secret = p256::ecdsa::SigningKey::from_slice(&secret).expect("valid key");
            let parsed = parse_did_key(did).expect(did);
            assert_eq!(parsed, PublicKey::P256(*secret.verifying_key()), "{did}");
            assert_eq!(parsed.to_did_key(), did);
        }
    }

    fn hex_bytes(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    #[test]
    fn bad_did_keys() {
        let k256 = "did:key:zQ3shqwJEJyMBsBXCWyCBpUBMqxcon9oHB7mCvx4sSpMdLJwc";
        let ed25519 = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK";
        let truncated = &k256[..k256.len() - 4];
        for bad in [
            "",
            "did:plc:abc",
            "did:key:abc",
            "did:key:z0OIl",
            ed25519,
            truncated,
        ] {
            let err = parse_did_key(bad).expect_err(bad);
            assert_eq!(err.kind(), ErrorKind::BadKey, "{bad}");
        }
    }

    #[test]
    fn signature_by_another_key_is_rejected() {
        let signer = secp256k1::SecretKey::from_byte_array([7u8; 32]).expect("key");
        let other = secp256k1::SecretKey::from_byte_array([8u8; 32]).expect("key");
        let msg = b"commit bytes";
        let digest: [u8; 32] = Sha256::digest(msg).into();
        let sig = secp256k1::SECP256K1
            .sign_ecdsa(secp256k1::Message::from_digest(digest), &signer)
            .serialize_compact();
        let own = PublicKey::K256(secp256k1::PublicKey::from_secret_key(
            secp256k1::SECP256K1,
            &signer,
        ));
        let wrong = PublicKey::K256(secp256k1::PublicKey::from_secret_key(
            secp256k1::SECP256K1,
            &other,
        ));
        assert_eq!(own.verify(msg, &sig).map_err(|e| e.kind()), Ok(()));
        let err = wrong.verify(msg, &sig).expect_err("other key");
        assert_eq!(err.kind(), ErrorKind::BadSignature);
        let err = own.verify(msg, &sig[..63]).expect_err("short");
        assert_eq!(err.kind(), ErrorKind::BadSignature);
    }
}

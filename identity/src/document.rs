//! The DID document as ATProto uses it: the handle claim (`alsoKnownAs`), the `#atproto`
//! signing key, a labeler's `#atproto_label` key and the service endpoints (`#atproto_pds`).
//! Unknown fields are ignored.

use plyr_repo::{PublicKey, parse_did_key};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::IdentityError;
use crate::identifier::Handle;

/// Multicodec prefixes for the legacy verification-method types, whose `publicKeyMultibase` is
/// the bare point, compressed or not (the current `Multikey` type carries the prefix itself).
const LEGACY_K256: (&str, [u8; 2]) = ("EcdsaSecp256k1VerificationKey2019", [0xe7, 0x01]);
const LEGACY_P256: (&str, [u8; 2]) = ("EcdsaSecp256r1VerificationKey2019", [0x80, 0x24]);

/// A DID document (`did:plc` from the PLC directory, `did:web` from `/.well-known/did.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DidDocument {
    /// The DID this document describes; resolution checks it equals the DID asked for.
    pub id: String,
    /// Other identifiers; the first `at://` entry is the claimed handle.
    #[serde(default)]
    pub also_known_as: Vec<String>,
    /// Public keys; `#atproto` signs the repo.
    #[serde(default)]
    pub verification_method: Vec<VerificationMethod>,
    /// Service endpoints; `#atproto_pds` hosts the repo.
    #[serde(default)]
    pub service: Vec<Service>,
}

/// One entry of `verificationMethod`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationMethod {
    /// `#atproto` or `<did>#atproto`.
    pub id: String,
    /// `Multikey`, or a legacy `EcdsaSecp256k1VerificationKey2019`-style type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The DID that controls the key.
    #[serde(default)]
    pub controller: String,
    /// The key, multibase-encoded (base58btc, `z` prefix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_multibase: Option<String>,
}

/// One entry of `service`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    /// `#atproto_pds` or `<did>#atproto_pds`.
    pub id: String,
    /// `AtprotoPersonalDataServer` for a PDS.
    #[serde(rename = "type")]
    pub kind: String,
    /// A URL string in ATProto; the DID core spec also allows maps and sets, kept as JSON.
    pub service_endpoint: serde_json::Value,
}

impl DidDocument {
    /// The claimed handle: the first `at://` entry of `alsoKnownAs`, if it is a valid handle.
    /// A claim only: show it after [`Resolver::verified_handle`](crate::Resolver::verified_handle).
    pub fn handle(&self) -> Option<Handle> {
        let first = self
            .also_known_as
            .iter()
            .find_map(|aka| aka.strip_prefix("at://"))?;
        Handle::new(first).ok()
    }

    /// The repo's host: the `#atproto_pds` service of type `AtprotoPersonalDataServer`.
    pub fn pds_endpoint(&self) -> Option<Url> {
        self.service
            .iter()
            .find(|s| {
                self.is_fragment(&s.id, "#atproto_pds") && s.kind == "AtprotoPersonalDataServer"
            })
            .and_then(|s| endpoint_url(&s.service_endpoint))
    }

    /// The endpoint of the service with this id (`#atproto_pds`, `#plyr_appview`; the leading
    /// `#` is optional), if it is an http(s) URL.
    pub fn service_endpoint(&self, id: &str) -> Option<Url> {
        let fragment = format!("#{}", id.trim_start_matches('#'));
        self.service
            .iter()
            .find(|s| self.is_fragment(&s.id, &fragment))
            .and_then(|s| endpoint_url(&s.service_endpoint))
    }

    /// The repo signing key: the `#atproto` verification method.
    pub fn signing_key(&self) -> Result<PublicKey, IdentityError> {
        self.verification_key("#atproto")
    }

    /// The key a labeler signs its labels with: the `#atproto_label` verification method.
    pub fn label_key(&self) -> Result<PublicKey, IdentityError> {
        self.verification_key("#atproto_label")
    }

    /// The public key of the verification method `fragment` (`#atproto`, `#atproto_label`).
    fn verification_key(&self, fragment: &str) -> Result<PublicKey, IdentityError> {
        let invalid = |reason: String| IdentityError::invalid_document(&self.id, reason);
        let method = self
            .verification_method
            .iter()
            .find(|m| self.is_fragment(&m.id, fragment))
            .ok_or_else(|| invalid(format!("no {fragment} verification method")))?;
        let multibase = method
            .public_key_multibase
            .as_deref()
            .ok_or_else(|| invalid(format!("{fragment} key has no publicKeyMultibase")))?;
        let bad_key = |e: plyr_repo::CryptoError| invalid(format!("{fragment} key: {e}"));
        let legacy = [LEGACY_K256, LEGACY_P256]
            .into_iter()
            .find(|(kind, _)| method.kind == *kind);
        match legacy {
            None => parse_did_key(&format!("did:key:{multibase}")).map_err(bad_key),
            Some((_, prefix)) => {
                let not_base58 = || invalid(format!("{fragment} key is not base58btc"));
                let body = multibase.strip_prefix('z').ok_or_else(not_base58)?;
                let point = bs58::decode(body).into_vec().map_err(|_| not_base58())?;
                let point = compress(point);
                let bytes: Vec<u8> = prefix.iter().chain(&point).copied().collect();
                PublicKey::from_multicodec(&bytes).map_err(bad_key)
            }
        }
    }

    /// Whether `id` names `fragment` of this document, either relative (`#atproto`) or absolute
    /// (`did:plc:...#atproto`).
    fn is_fragment(&self, id: &str, fragment: &str) -> bool {
        id == fragment || id.strip_suffix(fragment).is_some_and(|did| did == self.id)
    }
}

/// Legacy documents may carry the uncompressed SEC1 point (`04 || X || Y`, 65 bytes): the
/// reference PLC server (`@did-plc/server`) writes them so. Compressing is `02|03 || X` by Y's
/// parity; anything else is passed on for the key parser to judge.
fn compress(point: Vec<u8>) -> Vec<u8> {
    match point.split_first() {
        Some((0x04, xy)) if xy.len() == 64 => {
            let (x, y) = xy.split_at(32);
            let parity = y.last().map_or(0, |b| b & 1);
            std::iter::once(0x02 | parity)
                .chain(x.iter().copied())
                .collect()
        }
        _ => point,
    }
}

fn endpoint_url(value: &serde_json::Value) -> Option<Url> {
    let url = Url::parse(value.as_str()?).ok()?;
    matches!(url.scheme(), "https" | "http").then_some(url)
}

#[cfg(test)]
mod tests {
    use plyr_repo::ErrorKind;

    use super::*;
    use crate::error::IdentityErrorKind;

    /// Shaped like a plc.directory answer for an account on a Bluesky PDS (secp256k1 key).
    const PLC_K256: &str = r##"{
        "@context": [
            "https://www.w3.org/ns/did/v1",
            "https://w3id.org/security/multikey/v1",
            "https://w3id.org/security/suites/secp256k1-2019/v1"
        ],
        "id": "did:plc:ewvi7nxzyoun6zhxrhs64oiz",
        "alsoKnownAs": ["at://Atproto.com"],
        "verificationMethod": [{
            "id": "did:plc:ewvi7nxzyoun6zhxrhs64oiz#atproto",
            "type": "Multikey",
            "controller": "did:plc:ewvi7nxzyoun6zhxrhs64oiz",
            "publicKeyMultibase": "zQ3shqwJEJyMBsBXCWyCBpUBMqxcon9oHB7mCvx4sSpMdLJwc"
        }],
        "service": [{
            "id": "#atproto_pds",
            "type": "AtprotoPersonalDataServer",
            "serviceEndpoint": "https://enoki.us-east.host.bsky.network"
        }]
    }"##;

    /// A did:web service document with a P-256 key and relative ids.
    const WEB_P256: &str = r##"{
        "id": "did:web:music.example",
        "alsoKnownAs": ["https://music.example", "at://music.example", "at://second.example"],
        "verificationMethod": [{
            "id": "#atproto",
            "type": "Multikey",
            "controller": "did:web:music.example",
            "publicKeyMultibase": "zDnaembgSGUhZULN2Caob4HLJPaxBh92N7rtH21TErzqf8HQo"
        }],
        "service": [
            {"id": "#plyr_appview", "type": "PlyrAppView", "serviceEndpoint": "https://api.music.example"},
            {"id": "#atproto_pds", "type": "SomethingElse", "serviceEndpoint": "https://wrong.example"},
            {"id": "#map", "type": "X", "serviceEndpoint": {"origins": ["https://a.example"]}}
        ]
    }"##;

    fn doc(json: &str) -> DidDocument {
        match serde_json::from_str(json) {
            Ok(doc) => doc,
            Err(e) => panic!("fixture does not parse: {e}"),
        }
    }

    #[test]
    fn realistic_plc_document_with_secp256k1_key() {
        let d = doc(PLC_K256);
        assert_eq!(
            d.handle().map(|h| h.to_string()),
            Some("atproto.com".into())
        );
        assert_eq!(
            d.pds_endpoint().map(String::from),
            Some("https://enoki.us-east.host.bsky.network/".into())
        );
        let key = d.signing_key().map_err(|e| e.kind());
        assert!(matches!(key, Ok(PublicKey::K256(_))), "{key:?}");
        assert_eq!(
            key.map(|k| k.to_did_key()),
            Ok("did:key:zQ3shqwJEJyMBsBXCWyCBpUBMqxcon9oHB7mCvx4sSpMdLJwc".into())
        );
    }

    #[test]
    fn did_web_document_with_p256_key_and_services() {
        let d = doc(WEB_P256);
        // The first at:// entry wins; https:// entries are skipped.
        assert_eq!(
            d.handle().map(|h| h.to_string()),
            Some("music.example".into())
        );
        // #atproto_pds exists but with the wrong type.
        assert_eq!(d.pds_endpoint(), None);
        let cases = [
            ("#plyr_appview", Some("https://api.music.example/")),
            ("plyr_appview", Some("https://api.music.example/")),
            ("#map", None),
            ("#missing", None),
        ];
        for (id, expected) in cases {
            assert_eq!(
                d.service_endpoint(id).map(String::from).as_deref(),
                expected,
                "{id}"
            );
        }
        let key = d.signing_key().map_err(|e| e.kind());
        assert!(matches!(key, Ok(PublicKey::P256(_))), "{key:?}");
    }

    #[test]
    fn legacy_verification_method_types() {
        // From the interop crypto fixtures: the same keys as bare compressed points; and a
        // real PLC's uncompressed one.
        let cases = [
            (
                "EcdsaSecp256r1VerificationKey2019",
                "zxdM8dSstjrpZaRUwBmDvjGXweKuEMVN95A9oJBFjkWMh",
                "did:key:zDnaembgSGUhZULN2Caob4HLJPaxBh92N7rtH21TErzqf8HQo",
            ),
            (
                "EcdsaSecp256k1VerificationKey2019",
                "z25z9DTpsiYYJKGsWmSPJK2NFN8PcJtZig12K59UgW7q5t",
                "did:key:zQ3shqwJEJyMBsBXCWyCBpUBMqxcon9oHB7mCvx4sSpMdLJwc",
            ),
            // As @did-plc/server 0.0.1 serves it: the uncompressed point (65 bytes).
            (
                "EcdsaSecp256k1VerificationKey2019",
                "zQxaMvytJ1LAvLWFAY1Hb53BjoE4rEoTe4kCYNVvhtmxK4tYrVdFzfcPeBuoEeX9pjdq8KtsHHtTLRvK7svK29pQA",
                "did:key:zQ3shrNZpB8B7vhXHDghtLH56QR6tz81NkFh8ffNS2mcC3k1y",
            ),
        ];
        for (kind, multibase, did_key) in cases {
            let mut d = doc(PLC_K256);
            d.verification_method[0].kind = kind.into();
            d.verification_method[0].public_key_multibase = Some(multibase.into());
            assert_eq!(
                d.signing_key().map(|k| k.to_did_key()).ok().as_deref(),
                Some(did_key),
                "{kind}"
            );
        }
    }

    #[test]
    fn broken_keys_are_invalid_documents() {
        let cases: [(&str, Option<&str>, &str); 4] = [
            (
                "#other",
                Some("zQ3shqwJEJyMBsBXCWyCBpUBMqxcon9oHB7mCvx4sSpMdLJwc"),
                "no method",
            ),
            ("#atproto", None, "no multibase"),
            ("#atproto", Some("zNotBase58!"), "bad base58"),
            (
                "did:plc:someoneelse#atproto",
                Some("zQ3shqwJEJyMBsBXCWyCBpUBMqxcon9oHB7mCvx4sSpMdLJwc"),
                "other did",
            ),
        ];
        for (id, multibase, case) in cases {
            let mut d = doc(PLC_K256);
            d.verification_method[0].id = id.into();
            d.verification_method[0].public_key_multibase = multibase.map(String::from);
            let kind = d.signing_key().map_err(|e| e.kind()).err();
            assert_eq!(kind, Some(IdentityErrorKind::InvalidDocument), "{case}");
        }
        // The key error itself is repo's.
        let err = parse_did_key("did:key:zBad").err().map(|e| e.kind());
        assert_eq!(err, Some(ErrorKind::BadKey));
    }

    #[test]
    fn labeler_documents_keep_the_label_key_apart_from_the_repo_key() {
        let mut d = doc(PLC_K256);
        assert_eq!(
            d.label_key().map_err(|e| e.kind()).err(),
            Some(IdentityErrorKind::InvalidDocument),
            "a repo key is not a label key"
        );
        d.verification_method.push(VerificationMethod {
            id: format!("{}#atproto_label", d.id),
            kind: "Multikey".into(),
            controller: d.id.clone(),
            public_key_multibase: Some("zDnaembgSGUhZULN2Caob4HLJPaxBh92N7rtH21TErzqf8HQo".into()),
        });
        assert_eq!(
            d.label_key().map(|k| k.to_did_key()).ok().as_deref(),
            Some("did:key:zDnaembgSGUhZULN2Caob4HLJPaxBh92N7rtH21TErzqf8HQo")
        );
        assert_eq!(
            d.signing_key().map(|k| k.to_did_key()).ok().as_deref(),
            Some("did:key:zQ3shqwJEJyMBsBXCWyCBpUBMqxcon9oHB7mCvx4sSpMdLJwc")
        );
    }

    #[test]
    fn missing_optional_fields_and_bad_handles() {
        let d =
            doc(r#"{"id":"did:plc:ewvi7nxzyoun6zhxrhs64oiz","alsoKnownAs":["at://not_a_handle"]}"#);
        assert_eq!(d.handle(), None);
        assert_eq!(d.pds_endpoint(), None);
        assert_eq!(
            d.signing_key().map_err(|e| e.kind()).err(),
            Some(IdentityErrorKind::InvalidDocument)
        );
    }
}

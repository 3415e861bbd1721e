//! The signed repository commit (`{did, version: 3, data, rev, prev, sig}`): decoding, and
//! verifying its signature over the DAG-CBOR of the commit without `sig`.

use std::collections::BTreeMap;

use cid::Cid;
use ipld_core::ipld::Ipld;

use crate::crypto::{CryptoError, PublicKey};
use crate::data_model::cid_for_cbor;
use crate::verify::VerifyError;

/// The only commit version sync 1.1 accepts.
const COMMIT_VERSION: i128 = 3;

/// A decoded signed commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// The repository's DID.
    pub did: String,
    /// The MST root after this commit.
    pub data: Cid,
    /// The revision (a TID), increasing with each commit.
    pub rev: String,
    /// The previous commit, usually absent in v3.
    pub prev: Option<Cid>,
    /// The 64-byte compact signature.
    pub sig: Vec<u8>,
    /// The DAG-CBOR of the commit without `sig`: what was signed. Kept from the decoded map so
    /// fields this crate does not know still count.
    unsigned: Vec<u8>,
}

impl Commit {
    /// Decodes a commit block (its signature is not checked here).
    pub fn decode(bytes: &[u8]) -> Result<Commit, VerifyError> {
        Commit::decode_fields(bytes).map_err(|reason| VerifyError::MalformedCommit {
            cid: cid_for_cbor(bytes),
            reason,
        })
    }

    fn decode_fields(bytes: &[u8]) -> Result<Commit, String> {
        let mut map: BTreeMap<String, Ipld> =
            serde_ipld_dagcbor::from_slice(bytes).map_err(|e| format!("not a cbor map: {e}"))?;
        let sig = match map.remove("sig") {
            Some(Ipld::Bytes(sig)) => sig,
            _ => return Err("sig is missing or not bytes".to_owned()),
        };
        let did = match map.get("did") {
            Some(Ipld::String(did)) => did.clone(),
            _ => return Err("did is missing or not a string".to_owned()),
        };
        match map.get("version") {
            Some(Ipld::Integer(COMMIT_VERSION)) => {}
            Some(Ipld::Integer(v)) => return Err(format!("unsupported commit version {v}")),
            _ => return Err("version is missing or not an integer".to_owned()),
        }
        let data = match map.get("data") {
            Some(Ipld::Link(data)) => *data,
            _ => return Err("data is missing or not a link".to_owned()),
        };
        let rev = match map.get("rev") {
            Some(Ipld::String(rev)) => rev.clone(),
            _ => return Err("rev is missing or not a string".to_owned()),
        };
        let prev = match map.get("prev") {
            Some(Ipld::Link(prev)) => Some(*prev),
            Some(Ipld::Null) | None => None,
            Some(_) => return Err("prev is not a link or null".to_owned()),
        };
        let unsigned = serde_ipld_dagcbor::to_vec(&Ipld::Map(map))
            .map_err(|e| format!("cannot re-encode unsigned commit: {e}"))?;
        Ok(Commit {
            did,
            data,
            rev,
            prev,
            sig,
            unsigned,
        })
    }

    /// Verifies the signature with the repository's signing key.
    pub fn verify_signature(&self, key: &PublicKey) -> Result<(), CryptoError> {
        key.verify(&self.unsigned, &self.sig)
    }
}

/// Builds and signs a v3 commit with a secp256k1 key, returning its block bytes.
#[cfg(any(test, feature = "builder"))]
pub(crate) fn sign_commit(
    did: &str,
    data: Cid,
    rev: &str,
    secret: &secp256k1::SecretKey,
) -> Vec<u8> {
    let mut map = BTreeMap::from([
        ("did".to_owned(), Ipld::String(did.to_owned())),
        ("version".to_owned(), Ipld::Integer(COMMIT_VERSION)),
        ("data".to_owned(), Ipld::Link(data)),
        ("rev".to_owned(), Ipld::String(rev.to_owned())),
        ("prev".to_owned(), Ipld::Null),
    ]);
    // Strings, an integer and links always encode.
    let unsigned = serde_ipld_dagcbor::to_vec(&map).expect("commit encodes");
    let sig = crate::crypto::sign_k256(secret, &unsigned);
    map.insert("sig".to_owned(), Ipld::Bytes(sig.to_vec()));
    serde_ipld_dagcbor::to_vec(&map).expect("commit encodes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn key(byte: u8) -> (secp256k1::SecretKey, PublicKey) {
        let secret = secp256k1::SecretKey::from_byte_array([byte; 32]).expect("key");
        let public = secp256k1::PublicKey::from_secret_key(secp256k1::SECP256K1, &secret);
        (secret, PublicKey::K256(public))
    }

    #[test]
    fn signed_commit_round_trip() {
        let (secret, public) = key(1);
        let (_, other) = key(2);
        let data = cid_for_cbor(b"\xa0");
        let bytes = sign_commit("did:plc:abc", data, "3kabcabcabc22", &secret);
        let commit = Commit::decode(&bytes).expect("decodes");
        assert_eq!(commit.did, "did:plc:abc");
        assert_eq!(commit.data, data);
        assert_eq!(commit.rev, "3kabcabcabc22");
        assert_eq!(commit.prev, None);
        assert_eq!(
            commit.verify_signature(&public).map_err(|e| e.kind()),
            Ok(())
        );
        let err = commit.verify_signature(&other).expect_err("other key");
        assert_eq!(err.kind(), ErrorKind::BadSignature);
    }

    #[test]
    fn malformed_commits() {
        let data = cid_for_cbor(b"\xa0");
        let base = || {
            BTreeMap::from([
                ("did".to_owned(), Ipld::String("did:plc:abc".to_owned())),
                ("version".to_owned(), Ipld::Integer(3)),
                ("data".to_owned(), Ipld::Link(data)),
                ("rev".to_owned(), Ipld::String("3kabcabcabc22".to_owned())),
                ("prev".to_owned(), Ipld::Null),
                ("sig".to_owned(), Ipld::Bytes(vec![0; 64])),
            ])
        };
        let edits: [(&str, &str, Option<Ipld>); 5] = [
            ("version 2", "version", Some(Ipld::Integer(2))),
            ("no sig", "sig", None),
            (
                "data not a link",
                "data",
                Some(Ipld::String("x".to_owned())),
            ),
            ("no did", "did", None),
            ("prev a string", "prev", Some(Ipld::String("x".to_owned()))),
        ];
        for (name, field, value) in edits {
            let mut map = base();
            match value {
                Some(value) => map.insert(field.to_owned(), value),
                None => map.remove(field),
            };
            let bytes = serde_ipld_dagcbor::to_vec(&map).expect("encodes");
            let err = Commit::decode(&bytes).expect_err(name);
            assert_eq!(err.kind(), ErrorKind::MalformedCommit, "{name}");
        }
        let bytes = serde_ipld_dagcbor::to_vec(&base()).expect("encodes");
        assert_eq!(Commit::decode(&bytes).expect("valid").rev, "3kabcabcabc22");
        let err = Commit::decode(b"\x01").expect_err("not a map");
        assert_eq!(err.kind(), ErrorKind::MalformedCommit);
    }
}

//! `BlobCid`: the CIDv1 (raw codec, sha2-256) that addresses every stored object, and
//! `CidHasher`, which computes it incrementally while the bytes stream past.

use std::fmt;
use std::str::FromStr;

use cid::Cid;
use cid::multihash::Multihash;
use sha2::{Digest, Sha256};

/// Multicodec code of the `raw` codec: the codec a PDS uses for blobs.
const RAW_CODEC: u64 = 0x55;
/// Multihash code of sha2-256.
const SHA2_256: u64 = 0x12;
/// Length of a sha2-256 digest in bytes.
const DIGEST_LEN: usize = 32;

/// The content address of a blob: CIDv1, raw codec (0x55), sha2-256 over the exact bytes.
///
/// This is the CID a PDS answers from `com.atproto.repo.uploadBlob` (`bafkrei…`), so an
/// `audioBlob.ref` can be compared with our copy. Displayed in the canonical base32 form.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobCid {
    digest: [u8; DIGEST_LEN],
}

impl BlobCid {
    /// The CID of `bytes` held in memory; streams use [`CidHasher`].
    pub fn of(bytes: &[u8]) -> Self {
        Self {
            digest: Sha256::digest(bytes).into(),
        }
    }

    /// Wraps a sha2-256 digest computed elsewhere.
    pub fn from_sha256(digest: [u8; DIGEST_LEN]) -> Self {
        Self { digest }
    }

    /// The sha2-256 digest of the blob's bytes.
    pub fn sha256(&self) -> &[u8; DIGEST_LEN] {
        &self.digest
    }

    /// Converts to a general [`Cid`] for interop with the record decoders.
    pub fn to_cid(&self) -> Cid {
        // `wrap` only fails when the digest exceeds the 64-byte capacity; 32 never does.
        match Multihash::<64>::wrap(SHA2_256, &self.digest) {
            Ok(hash) => Cid::new_v1(RAW_CODEC, hash),
            Err(_) => unreachable!("a 32-byte digest fits a 64-byte multihash"),
        }
    }

    /// Two lowercase hex shard names taken from the digest. The CID string itself cannot be
    /// used: every raw sha2-256 CID starts with `bafkrei`.
    pub(crate) fn shards(&self) -> (String, String) {
        (
            format!("{:02x}", self.digest[0]),
            format!("{:02x}", self.digest[1]),
        )
    }
}

/// Why a string or [`Cid`] is not a blob CID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidParseError {
    /// The text is not a CID in any multibase.
    #[error("not a cid: {0}")]
    Syntax(String),
    /// A CIDv0 (`Qm…`, dag-pb); blobs are CIDv1.
    #[error("cid {0} is version 0; blobs use cidv1")]
    Version0(String),
    /// A CIDv1 with another codec (e.g. dag-cbor `bafyrei…`, a record, not a blob).
    #[error("cid {cid} has codec {codec:#x}; blobs use raw (0x55)")]
    Codec {
        /// The CID as given.
        cid: String,
        /// Its multicodec code.
        codec: u64,
    },
    /// A hash other than sha2-256 with a 32-byte digest.
    #[error("cid {cid} uses multihash {code:#x} of {len} bytes; blobs use sha2-256")]
    Hash {
        /// The CID as given.
        cid: String,
        /// Its multihash code.
        code: u64,
        /// Its digest length.
        len: usize,
    },
}

impl TryFrom<&Cid> for BlobCid {
    type Error = CidParseError;

    fn try_from(cid: &Cid) -> Result<Self, Self::Error> {
        if cid.version() == cid::Version::V0 {
            return Err(CidParseError::Version0(cid.to_string()));
        }
        if cid.codec() != RAW_CODEC {
            return Err(CidParseError::Codec {
                cid: cid.to_string(),
                codec: cid.codec(),
            });
        }
        let hash = cid.hash();
        let digest: [u8; DIGEST_LEN] = match (hash.code(), hash.digest().try_into()) {
            (SHA2_256, Ok(digest)) => digest,
            _ => {
                return Err(CidParseError::Hash {
                    cid: cid.to_string(),
                    code: hash.code(),
                    len: hash.digest().len(),
                });
            }
        };
        Ok(Self { digest })
    }
}

impl FromStr for BlobCid {
    type Err = CidParseError;

    /// Accepts any multibase the `cid` crate knows; [`Display`](fmt::Display) gives the
    /// canonical base32 form, which is what keys are built from.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let cid = Cid::try_from(s).map_err(|_| CidParseError::Syntax(s.to_owned()))?;
        Self::try_from(&cid)
    }
}

impl fmt::Display for BlobCid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.to_cid(), f)
    }
}

impl fmt::Debug for BlobCid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobCid({self})")
    }
}

/// Computes a [`BlobCid`] and the byte count over data fed in chunks, in constant memory.
#[derive(Clone, Default)]
pub struct CidHasher {
    sha: Sha256,
    len: u64,
}

impl CidHasher {
    /// A hasher that has seen no bytes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next chunk.
    pub fn update(&mut self, chunk: &[u8]) {
        self.sha.update(chunk);
        // usize is at most 64 bits on every supported target, so this widening is lossless.
        self.len = self
            .len
            .saturating_add(u64::try_from(chunk.len()).unwrap_or(u64::MAX));
    }

    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when no bytes were fed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The CID of everything fed.
    pub fn finish(self) -> BlobCid {
        BlobCid {
            digest: self.sha.finalize().into(),
        }
    }
}

impl fmt::Debug for CidHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CidHasher").field("len", &self.len).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors checked against an independent sha256 + base32 computation; the same CIDs a
    /// PDS returns from uploadBlob for these bytes.
    const VECTORS: &[(&[u8], &str)] = &[
        (
            b"hello world",
            "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e",
        ),
        (
            b"",
            "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
        ),
    ];

    #[test]
    fn known_vectors_in_one_piece_and_streamed() {
        for (bytes, want) in VECTORS {
            assert_eq!(BlobCid::of(bytes).to_string(), *want);
            for chunk in [1, 3, 64] {
                let mut hasher = CidHasher::new();
                for part in bytes.chunks(chunk) {
                    hasher.update(part);
                }
                assert_eq!(hasher.len(), u64::try_from(bytes.len()).unwrap_or(0));
                assert_eq!(hasher.finish().to_string(), *want, "chunk size {chunk}");
            }
        }
    }

    #[test]
    fn parse_round_trips() {
        for (_, text) in VECTORS {
            let cid: BlobCid = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(cid.to_string(), *text);
        }
    }

    #[test]
    fn parse_normalises_other_bases() {
        let canonical = BlobCid::of(b"hello world");
        let base58 = canonical
            .to_cid()
            .to_string_of_base(cid::multibase::Base::Base58Btc)
            .unwrap_or_default();
        assert!(base58.starts_with('z'));
        assert_eq!(base58.parse::<BlobCid>(), Ok(canonical));
    }

    #[test]
    fn parse_rejects_non_blob_cids() {
        let dag_cbor = Cid::new_v1(0x71, BlobCid::of(b"x").to_cid().hash().to_owned()).to_string();
        let sha512 = Multihash::<64>::wrap(0x13, &[7u8; 64])
            .map(|h| Cid::new_v1(RAW_CODEC, h).to_string())
            .unwrap_or_default();
        let short = Multihash::<64>::wrap(SHA2_256, &[7u8; 20])
            .map(|h| Cid::new_v1(RAW_CODEC, h).to_string())
            .unwrap_or_default();
        type Check = fn(&CidParseError) -> bool;
        let cases: Vec<(&str, Check)> = vec![
            ("", |e| matches!(e, CidParseError::Syntax(_))),
            ("not-a-cid", |e| matches!(e, CidParseError::Syntax(_))),
            ("bafkrei!!", |e| matches!(e, CidParseError::Syntax(_))),
            ("QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n", |e| {
                matches!(e, CidParseError::Version0(_))
            }),
            (&dag_cbor, |e| {
                matches!(e, CidParseError::Codec { codec: 0x71, .. })
            }),
            (&sha512, |e| {
                matches!(
                    e,
                    CidParseError::Hash {
                        code: 0x13,
                        len: 64,
                        ..
                    }
                )
            }),
            (&short, |e| {
                matches!(
                    e,
                    CidParseError::Hash {
                        code: 0x12,
                        len: 20,
                        ..
                    }
                )
            }),
        ];
        for (text, want) in cases {
            match text.parse::<BlobCid>() {
                Ok(cid) => panic!("{text:?} parsed as {cid}"),
                Err(e) => assert!(want(&e), "{text:?}: unexpected {e:?}"),
            }
        }
    }

    #[test]
    fn shards_come_from_the_digest() {
        let cid = BlobCid::from_sha256([0xab; 32]);
        assert_eq!(cid.shards(), ("ab".to_owned(), "ab".to_owned()));
        let hello = BlobCid::of(b"hello world");
        assert_eq!(hello.shards(), ("b9".to_owned(), "4d".to_owned()));
    }
}

//! CARv1 reading (header roots + blocks) with every block's CID checked against its bytes, and
//! the matching writer used to build commits.

use std::collections::HashMap;

use cid::{Cid, Version};
use sha2::{Digest as _, Sha256};

use crate::data_model::{DAG_CBOR, RAW, SHA2_256};
use crate::error::ErrorKind;

/// Size caps applied while reading a CAR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CarLimits {
    /// Largest whole CAR accepted, in bytes.
    pub max_bytes: usize,
    /// Most blocks accepted.
    pub max_blocks: usize,
    /// Largest single block accepted, in bytes.
    pub max_block_bytes: usize,
}

impl CarLimits {
    /// For a `#commit` `blocks` slice: the lexicon caps it at 2,000,000 bytes, and a record at
    /// 1,000,000 bytes (1 MiB allowed here, for slack in what counts as the record).
    pub const COMMIT: CarLimits = CarLimits {
        max_bytes: 2_000_000,
        max_blocks: 10_000,
        max_block_bytes: 1 << 20,
    };
    /// For a `#sync` `blocks` slice, which holds only the commit (at most 10,000 bytes).
    pub const SYNC: CarLimits = CarLimits {
        max_bytes: 10_000,
        max_blocks: 16,
        max_block_bytes: 10_000,
    };
}

/// Why a CAR was rejected.
#[derive(Debug, thiserror::Error)]
pub enum CarError {
    /// Over one of the [`CarLimits`].
    #[error("car {what} over the limit of {limit}")]
    TooLarge {
        /// Which limit: "bytes", "blocks" or "block bytes".
        what: &'static str,
        /// The limit in force.
        limit: usize,
    },
    /// Broken framing at a byte offset.
    #[error("malformed car at byte {offset}: {reason}")]
    Malformed {
        /// Where the problem starts.
        offset: usize,
        /// What is wrong there.
        reason: String,
    },
    /// A CID that is not v1 dag-cbor/raw with a sha2-256 hash.
    #[error("unsupported cid {cid} in car")]
    UnsupportedCid {
        /// The offending CID.
        cid: Cid,
    },
    /// A block whose bytes do not hash to its CID.
    #[error("block bytes do not match cid {cid}")]
    CidMismatch {
        /// The CID the block claimed.
        cid: Cid,
    },
}

impl CarError {
    /// The classification of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            CarError::TooLarge { .. } => ErrorKind::TooLarge,
            CarError::Malformed { .. } => ErrorKind::MalformedCar,
            CarError::UnsupportedCid { .. } => ErrorKind::UnsupportedCid,
            CarError::CidMismatch { .. } => ErrorKind::CidMismatch,
        }
    }
}

/// A parsed CAR: its header roots and its hash-checked blocks, borrowed from the input.
#[derive(Debug, Clone)]
pub struct Car<'a> {
    roots: Vec<Cid>,
    blocks: HashMap<Cid, &'a [u8]>,
}

impl<'a> Car<'a> {
    /// The header's root CIDs, in order.
    pub fn roots(&self) -> &[Cid] {
        &self.roots
    }

    /// The bytes of the block with this CID, if the CAR holds it.
    pub fn get(&self, cid: &Cid) -> Option<&'a [u8]> {
        self.blocks.get(cid).copied()
    }

    /// How many distinct blocks the CAR holds.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// Whether the CAR holds no blocks.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    pub(crate) fn blocks(&self) -> &HashMap<Cid, &'a [u8]> {
        &self.blocks
    }
}

#[derive(serde::Deserialize, serde::Serialize)]
struct Header {
    version: u64,
    roots: Vec<Cid>,
}

/// Reads a CARv1 from bytes, checking the caps and every block's CID.
pub fn read_car<'a>(bytes: &'a [u8], limits: &CarLimits) -> Result<Car<'a>, CarError> {
    if bytes.len() > limits.max_bytes {
        return Err(CarError::TooLarge {
            what: "bytes",
            limit: limits.max_bytes,
        });
    }
    let mut reader = Reader { bytes, offset: 0 };
    let header_bytes = reader.section()?;
    let header: Header =
        serde_ipld_dagcbor::from_slice(header_bytes).map_err(|e| CarError::Malformed {
            offset: 0,
            reason: format!("header: {e}"),
        })?;
    if header.version != 1 {
        return Err(CarError::Malformed {
            offset: 0,
            reason: format!("unsupported car version {}", header.version),
        });
    }
    let mut blocks = HashMap::new();
    let mut count = 0usize;
    while !reader.is_done() {
        count += 1;
        if count > limits.max_blocks {
            return Err(CarError::TooLarge {
                what: "blocks",
                limit: limits.max_blocks,
            });
        }
        let start = reader.offset;
        let section = reader.section()?;
        let mut rest = section;
        let cid = Cid::read_bytes(&mut rest).map_err(|e| CarError::Malformed {
            offset: start,
            reason: format!("block cid: {e}"),
        })?;
        if rest.len() > limits.max_block_bytes {
            return Err(CarError::TooLarge {
                what: "block bytes",
                limit: limits.max_block_bytes,
            });
        }
        check_block(&cid, rest)?;
        blocks.insert(cid, rest);
    }
    Ok(Car {
        roots: header.roots,
        blocks,
    })
}

/// Checks that `bytes` hash to `cid`, which must be a CIDv1 ATProto uses.
pub(crate) fn check_block(cid: &Cid, bytes: &[u8]) -> Result<(), CarError> {
    let hash = cid.hash();
    if cid.version() != Version::V1
        || !matches!(cid.codec(), DAG_CBOR | RAW)
        || hash.code() != SHA2_256
        || hash.size() != 32
    {
        return Err(CarError::UnsupportedCid { cid: *cid });
    }
    if Sha256::digest(bytes)[..] != *hash.digest() {
        return Err(CarError::CidMismatch { cid: *cid });
    }
    Ok(())
}

/// A cursor over CAR bytes that yields varint-length-prefixed sections.
struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    fn is_done(&self) -> bool {
        self.offset >= self.bytes.len()
    }

    fn malformed(&self, reason: &str) -> CarError {
        CarError::Malformed {
            offset: self.offset,
            reason: reason.to_owned(),
        }
    }

    fn varint(&mut self) -> Result<usize, CarError> {
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let Some(&byte) = self.bytes.get(self.offset) else {
                return Err(self.malformed("truncated varint"));
            };
            self.offset += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return usize::try_from(value).map_err(|_| self.malformed("varint too large"));
            }
        }
        Err(self.malformed("varint too long"))
    }

    fn section(&mut self) -> Result<&'a [u8], CarError> {
        let len = self.varint()?;
        if len == 0 {
            return Err(self.malformed("empty section"));
        }
        let end = self
            .offset
            .checked_add(len)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| self.malformed("section runs past the end"))?;
        let section = &self.bytes[self.offset..end];
        self.offset = end;
        Ok(section)
    }
}

/// Writes a CARv1 with the given roots and blocks, in order.
#[cfg(any(test, feature = "builder"))]
pub(crate) fn write_car<'b>(
    roots: &[Cid],
    blocks: impl IntoIterator<Item = (Cid, &'b [u8])>,
) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut value: usize) {
        while value >= 0x80 {
            out.push(u8::try_from(value & 0x7f).unwrap_or(0) | 0x80);
            value >>= 7;
        }
        out.push(u8::try_from(value).unwrap_or(0));
    }
    let header = Header {
        version: 1,
        roots: roots.to_vec(),
    };
    // A struct of a u64 and CIDs always encodes.
    let header = serde_ipld_dagcbor::to_vec(&header).expect("car header encodes");
    let mut out = Vec::new();
    varint(&mut out, header.len());
    out.extend_from_slice(&header);
    for (cid, bytes) in blocks {
        let cid_bytes = cid.to_bytes();
        varint(&mut out, cid_bytes.len() + bytes.len());
        out.extend_from_slice(&cid_bytes);
        out.extend_from_slice(bytes);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data_model::{cid_for_cbor, cid_for_raw};

    fn sample() -> (Cid, Cid, Vec<u8>) {
        let a: &[u8] = b"\xa1\x61\x61\x01"; // {"a": 1}
        let b: &[u8] = b"raw blob bytes";
        let (ca, cb) = (cid_for_cbor(a), cid_for_raw(b));
        (ca, cb, write_car(&[ca], [(ca, a), (cb, b)]))
    }

    #[test]
    fn round_trip() {
        let (ca, cb, car) = sample();
        let parsed = read_car(&car, &CarLimits::COMMIT).expect("reads");
        assert_eq!(parsed.roots(), &[ca]);
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed.get(&ca), Some(&b"\xa1\x61\x61\x01"[..]));
        assert_eq!(parsed.get(&cb), Some(&b"raw blob bytes"[..]));
    }

    #[test]
    fn tampered_block_names_its_cid() {
        let (_, cb, mut car) = sample();
        let last = car.len() - 1;
        car[last] ^= 0x01;
        match read_car(&car, &CarLimits::COMMIT) {
            Err(err @ CarError::CidMismatch { cid }) => {
                assert_eq!(cid, cb);
                assert_eq!(err.kind(), ErrorKind::CidMismatch);
                assert!(err.to_string().contains(&cb.to_string()));
            }
            other => panic!("expected cid mismatch, got {other:?}"),
        }
    }

    #[test]
    fn rejections() {
        let (_, _, car) = sample();
        let tight = |max_bytes, max_blocks, max_block_bytes| CarLimits {
            max_bytes,
            max_blocks,
            max_block_bytes,
        };
        let sha1_cid = Cid::new_v1(
            DAG_CBOR,
            cid::multihash::Multihash::<64>::wrap(0x11, &[0u8; 20]).expect("wraps"),
        );
        let odd = write_car(&[], [(sha1_cid, &b"\xa0"[..])]);
        let table: Vec<(&str, Vec<u8>, CarLimits, ErrorKind)> = vec![
            (
                "over bytes",
                car.clone(),
                tight(car.len() - 1, 10, 100),
                ErrorKind::TooLarge,
            ),
            (
                "over blocks",
                car.clone(),
                tight(1000, 1, 100),
                ErrorKind::TooLarge,
            ),
            (
                "over block bytes",
                car.clone(),
                tight(1000, 10, 4),
                ErrorKind::TooLarge,
            ),
            (
                "truncated",
                car[..car.len() - 3].to_vec(),
                CarLimits::COMMIT,
                ErrorKind::MalformedCar,
            ),
            (
                "empty input",
                Vec::new(),
                CarLimits::COMMIT,
                ErrorKind::MalformedCar,
            ),
            (
                "garbage header",
                vec![2, 0xff, 0xff],
                CarLimits::COMMIT,
                ErrorKind::MalformedCar,
            ),
            (
                "sha1 cid",
                odd,
                CarLimits::COMMIT,
                ErrorKind::UnsupportedCid,
            ),
        ];
        for (name, bytes, limits, kind) in table {
            let err = read_car(&bytes, &limits).expect_err(name);
            assert_eq!(err.kind(), kind, "{name}: {err}");
        }
    }
}

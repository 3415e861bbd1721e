//! The ATProto data model: DAG-CBOR <-> JSON (`$link`, `$bytes`, blobs) conversion with the
//! spec's rejections (floats, malformed links/bytes/blobs, bad `$type`), and CID computation.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use cid::Cid;
use cid::multihash::Multihash;
use ipld_core::ipld::Ipld;
use serde_json::{Map, Number, Value};
use sha2::{Digest as _, Sha256};

use crate::error::ErrorKind;

/// Multicodec for DAG-CBOR blocks (records, MST nodes, commits).
pub(crate) const DAG_CBOR: u64 = 0x71;
/// Multicodec for raw blobs.
pub(crate) const RAW: u64 = 0x55;
/// Multihash code for sha2-256, the only hash ATProto uses.
pub(crate) const SHA2_256: u64 = 0x12;

/// Largest integer JSON consumers can hold exactly (2^53 - 1); integer-like floats beyond it
/// are rejected because their value is already ambiguous.
const MAX_SAFE_FLOAT_INTEGER: f64 = 9_007_199_254_740_991.0;

/// Standard base64 alphabet, unpadded on output; accepts input with or without padding.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A value that breaks the ATProto data model or is not decodable DAG-CBOR.
#[derive(Debug, thiserror::Error)]
pub enum DataModelError {
    /// The bytes are not one well-formed DAG-CBOR value.
    #[error("malformed dag-cbor: {reason}")]
    Cbor {
        /// The decoder's explanation.
        reason: String,
    },
    /// A record must be an object (map) at the top level.
    #[error("top-level value is not an object")]
    NotAnObject,
    /// A value at `path` breaks a data-model rule.
    #[error("invalid value at {path}: {reason}")]
    Invalid {
        /// Dotted path to the offending value (`$` is the top level).
        path: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
}

impl DataModelError {
    /// The classification of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            DataModelError::Cbor { .. } => ErrorKind::MalformedCbor,
            DataModelError::NotAnObject | DataModelError::Invalid { .. } => {
                ErrorKind::InvalidDataModel
            }
        }
    }

    fn invalid(reason: &'static str) -> Self {
        DataModelError::Invalid {
            path: "$".to_owned(),
            reason,
        }
    }

    /// Prefixes the error's path with one segment while unwinding, so the happy path never
    /// builds path strings.
    fn at(self, segment: &str) -> Self {
        match self {
            DataModelError::Invalid { path, reason } => DataModelError::Invalid {
                path: match path.strip_prefix('$') {
                    Some(rest) => format!("$.{segment}{rest}"),
                    None => path,
                },
                reason,
            },
            other => other,
        }
    }
}

/// The CID (v1, dag-cbor, sha2-256) of a DAG-CBOR block.
pub fn cid_for_cbor(bytes: &[u8]) -> Cid {
    cid_for(DAG_CBOR, bytes)
}

/// The CID (v1, raw, sha2-256) of a blob's exact bytes.
pub fn cid_for_raw(bytes: &[u8]) -> Cid {
    cid_for(RAW, bytes)
}

pub(crate) fn cid_for(codec: u64, bytes: &[u8]) -> Cid {
    let digest = Sha256::digest(bytes);
    // A 32-byte digest always fits the 64-byte multihash buffer.
    let hash = Multihash::<64>::wrap(SHA2_256, &digest).expect("sha2-256 digest fits");
    Cid::new_v1(codec, hash)
}

/// Encodes a JSON record (ATProto JSON data model) as canonical DAG-CBOR.
pub fn json_to_cbor(value: &Value) -> Result<Vec<u8>, DataModelError> {
    if !value.is_object() {
        return Err(DataModelError::NotAnObject);
    }
    let ipld = json_to_ipld(value)?;
    serde_ipld_dagcbor::to_vec(&ipld).map_err(|e| DataModelError::Cbor {
        reason: e.to_string(),
    })
}

/// Decodes a DAG-CBOR record into the ATProto JSON data model.
pub fn cbor_to_json(bytes: &[u8]) -> Result<Value, DataModelError> {
    let ipld: Ipld = decode_cbor(bytes)?;
    if !matches!(ipld, Ipld::Map(_)) {
        return Err(DataModelError::NotAnObject);
    }
    ipld_to_json(&ipld)
}

/// Decodes one DAG-CBOR value with nothing after it.
pub(crate) fn decode_cbor<'a, T: serde::Deserialize<'a>>(
    bytes: &'a [u8],
) -> Result<T, DataModelError> {
    serde_ipld_dagcbor::from_slice(bytes).map_err(|e| DataModelError::Cbor {
        reason: e.to_string(),
    })
}

/// Converts a JSON value to IPLD, rejecting what the data model rejects.
pub(crate) fn json_to_ipld(value: &Value) -> Result<Ipld, DataModelError> {
    Ok(match value {
        Value::Null => Ipld::Null,
        Value::Bool(b) => Ipld::Bool(*b),
        Value::Number(n) => Ipld::Integer(json_integer(n)?),
        Value::String(s) => Ipld::String(s.clone()),
        Value::Array(items) => Ipld::List(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| json_to_ipld(item).map_err(|e| e.at(&i.to_string())))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => json_object_to_ipld(map)?,
    })
}

fn json_integer(n: &Number) -> Result<i128, DataModelError> {
    if let Some(i) = n.as_i64() {
        return Ok(i128::from(i));
    }
    if n.is_u64() {
        return Err(DataModelError::invalid(
            "integer out of 64-bit signed range",
        ));
    }
    match n.as_f64() {
        // An integer-like float (`123.0`) is accepted as that integer; the range check makes
        // the cast exact.
        Some(f) if f.fract() == 0.0 && f.abs() <= MAX_SAFE_FLOAT_INTEGER => {
            let i = f as i64;
            Ok(i128::from(i))
        }
        _ => Err(DataModelError::invalid("floats are not allowed")),
    }
}

fn json_object_to_ipld(map: &Map<String, Value>) -> Result<Ipld, DataModelError> {
    if let Some(link) = map.get("$link") {
        if map.len() != 1 {
            return Err(DataModelError::invalid("$link object has extra fields"));
        }
        let Value::String(s) = link else {
            return Err(DataModelError::invalid("$link is not a string"));
        };
        let cid = Cid::try_from(s.as_str())
            .map_err(|_| DataModelError::invalid("$link is not a valid cid"))?;
        return Ok(Ipld::Link(cid));
    }
    if let Some(bytes) = map.get("$bytes") {
        if map.len() != 1 {
            return Err(DataModelError::invalid("$bytes object has extra fields"));
        }
        let Value::String(s) = bytes else {
            return Err(DataModelError::invalid("$bytes is not a string"));
        };
        let decoded = BASE64
            .decode(s)
            .map_err(|_| DataModelError::invalid("$bytes is not valid base64"))?;
        return Ok(Ipld::Bytes(decoded));
    }
    let mut out = BTreeMap::new();
    for (key, value) in map {
        out.insert(key.clone(), json_to_ipld(value).map_err(|e| e.at(key))?);
    }
    check_typed_object(&out)?;
    Ok(Ipld::Map(out))
}

/// Applies the `$type` and blob rules to a map, whichever encoding it came from.
fn check_typed_object(map: &BTreeMap<String, Ipld>) -> Result<(), DataModelError> {
    let Some(kind) = map.get("$type") else {
        return Ok(());
    };
    let Ipld::String(kind) = kind else {
        return Err(DataModelError::invalid("$type is not a string").at("$type"));
    };
    if kind.is_empty() {
        return Err(DataModelError::invalid("$type is empty").at("$type"));
    }
    if kind == "blob" {
        if !matches!(map.get("ref"), Some(Ipld::Link(_))) {
            return Err(DataModelError::invalid("blob ref is not a link").at("ref"));
        }
        if !matches!(map.get("mimeType"), Some(Ipld::String(_))) {
            return Err(DataModelError::invalid("blob mimeType is not a string").at("mimeType"));
        }
        if !matches!(map.get("size"), Some(Ipld::Integer(_))) {
            return Err(DataModelError::invalid("blob size is not an integer").at("size"));
        }
    }
    Ok(())
}

/// Converts IPLD to the ATProto JSON data model, rejecting floats and out-of-range integers.
pub(crate) fn ipld_to_json(ipld: &Ipld) -> Result<Value, DataModelError> {
    Ok(match ipld {
        Ipld::Null => Value::Null,
        Ipld::Bool(b) => Value::Bool(*b),
        Ipld::Integer(i) => {
            let i = i64::try_from(*i)
                .map_err(|_| DataModelError::invalid("integer out of 64-bit signed range"))?;
            Value::Number(i.into())
        }
        Ipld::Float(_) => return Err(DataModelError::invalid("floats are not allowed")),
        Ipld::String(s) => Value::String(s.clone()),
        Ipld::Bytes(bytes) => {
            let mut map = Map::with_capacity(1);
            map.insert("$bytes".to_owned(), Value::String(BASE64.encode(bytes)));
            Value::Object(map)
        }
        Ipld::List(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| ipld_to_json(item).map_err(|e| e.at(&i.to_string())))
                .collect::<Result<_, _>>()?,
        ),
        Ipld::Map(map) => {
            check_typed_object(map)?;
            let mut out = Map::with_capacity(map.len());
            for (key, value) in map {
                out.insert(key.clone(), ipld_to_json(value).map_err(|e| e.at(key))?);
            }
            Value::Object(out)
        }
        Ipld::Link(cid) => {
            let mut map = Map::with_capacity(1);
            map.insert("$link".to_owned(), Value::String(cid.to_string()));
            Value::Object(map)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/reference/atproto-interop-tests/data-model"
    );

    fn fixture(name: &str) -> Value {
        let path = format!("{FIXTURES}/{name}");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {path}: {e}"))
    }

    fn cases(name: &str) -> Vec<Value> {
        match fixture(name) {
            Value::Array(cases) => cases,
            other => panic!("{name} is not an array: {other}"),
        }
    }

    fn str_field<'a>(case: &'a Value, field: &str) -> &'a str {
        case[field]
            .as_str()
            .unwrap_or_else(|| panic!("fixture field {field} missing"))
    }

    #[test]
    fn fixtures_json_to_cbor_to_cid_and_back() {
        let cases = cases("data-model-fixtures.json");
        assert_eq!(cases.len(), 3);
        for case in cases {
            let json = &case["json"];
            let expected_cbor = BASE64
                .decode(str_field(&case, "cbor_base64"))
                .expect("fixture base64");
            let cbor = json_to_cbor(json).expect("fixture json encodes");
            assert_eq!(cbor, expected_cbor, "cbor for {json}");
            assert_eq!(cid_for_cbor(&cbor).to_string(), str_field(&case, "cid"));
            assert_eq!(&cbor_to_json(&cbor).expect("fixture cbor decodes"), json);
        }
    }

    #[test]
    fn valid_fixtures_are_accepted() {
        for case in cases("data-model-valid.json") {
            let cbor =
                json_to_cbor(&case["json"]).unwrap_or_else(|e| panic!("{}: {e}", case["note"]));
            let back = cbor_to_json(&cbor).unwrap_or_else(|e| panic!("{}: {e}", case["note"]));
            assert!(back.is_object(), "{}", case["note"]);
        }
    }

    #[test]
    fn invalid_fixtures_are_rejected() {
        let cases = cases("data-model-invalid.json");
        assert_eq!(cases.len(), 12);
        for case in cases {
            let err = json_to_cbor(&case["json"]).expect_err(str_field(&case, "note"));
            assert_eq!(err.kind(), ErrorKind::InvalidDataModel, "{}", case["note"]);
        }
    }

    #[test]
    fn integer_like_float_becomes_an_integer() {
        let cbor = json_to_cbor(&serde_json::json!({"a": 123.0})).expect("encodes");
        assert_eq!(
            cbor_to_json(&cbor).expect("decodes"),
            serde_json::json!({"a": 123})
        );
    }

    #[test]
    fn cbor_rejections() {
        let float = serde_ipld_dagcbor::to_vec(&Ipld::Map(BTreeMap::from([(
            "a".to_owned(),
            Ipld::Float(1.5),
        )])))
        .expect("encodes");
        let list = serde_ipld_dagcbor::to_vec(&Ipld::List(vec![])).expect("encodes");
        let bad_type = serde_ipld_dagcbor::to_vec(&Ipld::Map(BTreeMap::from([(
            "$type".to_owned(),
            Ipld::Integer(1),
        )])))
        .expect("encodes");
        let table: [(&str, &[u8], ErrorKind); 5] = [
            ("float", &float, ErrorKind::InvalidDataModel),
            ("list at top", &list, ErrorKind::InvalidDataModel),
            ("$type integer", &bad_type, ErrorKind::InvalidDataModel),
            (
                "truncated",
                &float[..float.len() - 1],
                ErrorKind::MalformedCbor,
            ),
            ("trailing byte", &[0xa0, 0x00], ErrorKind::MalformedCbor),
        ];
        for (name, bytes, kind) in table {
            let err = cbor_to_json(bytes).expect_err(name);
            assert_eq!(err.kind(), kind, "{name}");
        }
    }

    #[test]
    fn error_path_names_the_field() {
        let err = json_to_cbor(&serde_json::json!({"a": {"b": [1, 2.5]}})).expect_err("float");
        match err {
            DataModelError::Invalid { path, .. } => assert_eq!(path, "$.a.b.1"),
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn raw_blob_cid() {
        // Any raw blob CID in base32 starts with `bafkrei` (v1, raw, sha2-256).
        let cid = cid_for_raw(b"hello");
        assert!(cid.to_string().starts_with("bafkrei"), "{cid}");
        assert_eq!(cid.codec(), RAW);
        assert!(cid_for_cbor(b"\xa0").to_string().starts_with("bafyrei"));
    }
}

//! ATProto repository verification (pure, no IO): DAG-CBOR, CAR slices, MST inversion proofs,
//! commit signatures and firehose frames.

mod car;
mod crypto;
mod data_model;
mod error;

pub use car::{Car, CarError, CarLimits, read_car};
pub use crypto::{CryptoError, PublicKey, parse_did_key};
pub use data_model::{DataModelError, cbor_to_json, cid_for_cbor, cid_for_raw, json_to_cbor};
pub use error::ErrorKind;

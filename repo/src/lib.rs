//! ATProto repository verification (pure, no IO): DAG-CBOR, CAR slices, MST inversion proofs,
//! commit signatures and firehose frames.
//!
//! Data flow for verified ingestion (sync 1.1):
//!
//! ```text
//! websocket bytes -> decode_frame -> Frame::Commit(CommitEvent)
//!   -> verify_commit(event, signing key from the DID document)
//!        read_car (caps, every block's CID)  -> commit block == event.commit, repo/rev match
//!        signature (did:key, low-S)          -> every op's result is in the new MST
//!        undo the ops on the partial tree    -> root == prevData
//!   -> VerifiedCommit { ops: [VerifiedOp { path, cid, record bytes }] } -> record_json()
//! ```
//!
//! A `getRepo` export goes through [`Repo`] instead; the `builder` feature adds
//! `RepoBuilder`, a signing in-memory repository that emits real frames for tests.
//!
//! ```
//! use plyr_repo::{ErrorKind, cbor_to_json, cid_for_cbor, json_to_cbor, parse_did_key};
//!
//! // Records: JSON data model <-> DAG-CBOR, and their CIDs.
//! let record = serde_json::json!({"$type": "fm.plyr.track", "title": "hello"});
//! let cbor = json_to_cbor(&record)?;
//! assert!(cid_for_cbor(&cbor).to_string().starts_with("bafyrei"));
//! assert_eq!(cbor_to_json(&cbor)?, record);
//! let float = json_to_cbor(&serde_json::json!({"a": 1.5})).expect_err("floats are rejected");
//! assert_eq!(float.kind(), ErrorKind::InvalidDataModel);
//!
//! // Keys: a did:key from a DID document's #atproto verification method.
//! let key = parse_did_key("did:key:zQ3shqwJEJyMBsBXCWyCBpUBMqxcon9oHB7mCvx4sSpMdLJwc")?;
//! let bad = key.verify(b"message", &[0u8; 64]).expect_err("not its signature");
//! assert_eq!(bad.kind().as_str(), "bad_signature");
//!
//! // Frames: decode, then verify commits with the repo's key.
//! fn handle(frame: &[u8], key: &plyr_repo::PublicKey) -> Result<(), Box<dyn std::error::Error>> {
//!     if let plyr_repo::Frame::Commit(event) = plyr_repo::decode_frame(frame)? {
//!         let verified = plyr_repo::verify_commit(&event, key)?;
//!         for op in &verified.ops {
//!             let _record = op.record_json()?; // None for deletes
//!         }
//!     }
//!     Ok(())
//! }
//! # let _ = handle;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#[cfg(any(test, feature = "builder"))]
mod builder;
mod car;
mod commit;
mod crypto;
mod data_model;
mod error;
mod frame;
mod mst;
mod repo;
mod verify;

#[cfg(feature = "builder")]
pub use builder::{BuildError, RepoBuilder, Signer, Write};
pub use car::{Car, CarError, CarLimits, read_car};
pub use cid::Cid;
pub use commit::Commit;
pub use crypto::{CryptoError, PublicKey, parse_did_key};
pub use data_model::{DataModelError, cbor_to_json, cid_for_cbor, cid_for_raw, json_to_cbor};
pub use error::ErrorKind;
pub use frame::{
    AccountEvent, Action, CommitEvent, ErrorEvent, Frame, FrameError, IdentityEvent, InfoEvent,
    MAX_FRAME_BYTES, RepoOp, SyncEvent, decode_frame,
};
pub use mst::MstError;
pub use repo::Repo;
pub use verify::{
    MAX_OPS, VerifiedCommit, VerifiedOp, VerifiedSync, VerifyError, verify_commit, verify_sync,
};

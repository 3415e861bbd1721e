//! ATProto repository verification (pure, no IO): DAG-CBOR, CAR slices, MST inversion proofs,
//! commit signatures and firehose frames.

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
pub use builder::{BuildError, RepoBuilder, Write};
pub use car::{Car, CarError, CarLimits, read_car};
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

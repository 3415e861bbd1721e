//! The indexer's loopback PLC directory + PDS (one HTTP server: DID documents, getRepoStatus,
//! blobs), shared rather than copied: the account checker and handle resolver tests drive it.

#[path = "../../indexer/src/loopback.rs"]
mod loopback;

#[allow(
    unused_imports,
    reason = "the benches include the support module but not these"
)]
pub(crate) use loopback::{Loopback as LoopbackPlc, RepoAnswer, UNREACHABLE_PDS};

/// A did:plc from a short name, padded to the 24 base32 characters PLC identifiers have.
pub fn plc_did(name: &str) -> String {
    format!("did:plc:{name:a<24}")
}

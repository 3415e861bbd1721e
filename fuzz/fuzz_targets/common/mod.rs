//! What more than one target needs.

use plyr_repo::{PublicKey, parse_did_key};
use std::sync::OnceLock;

/// A valid secp256k1 key (the interop fixtures' and the label seeds' labeler key): forged
/// signatures fail against it, and every check before them runs.
const KEY: &str = "did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme";

/// [`KEY`], parsed once.
pub fn fixed_key() -> Option<&'static PublicKey> {
    static KEY_CELL: OnceLock<Option<PublicKey>> = OnceLock::new();
    KEY_CELL.get_or_init(|| parse_did_key(KEY).ok()).as_ref()
}

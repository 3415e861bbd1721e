//! subscribeLabels frame bytes -> the label client's decode and per-label checks, against a
//! fixed key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plyr_repo::{PublicKey, parse_did_key};
use std::sync::OnceLock;

/// The key of the seeds' k256 labeler: their signatures verify, mutations reach every check.
const KEY: &str = "did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme";

fn key() -> Option<&'static PublicKey> {
    static KEY_CELL: OnceLock<Option<PublicKey>> = OnceLock::new();
    KEY_CELL.get_or_init(|| parse_did_key(KEY).ok()).as_ref()
}

fuzz_target!(|data: &[u8]| {
    if let Some(key) = key() {
        let _ = plyr_indexer::fuzz_label_frame(data, key);
    }
});

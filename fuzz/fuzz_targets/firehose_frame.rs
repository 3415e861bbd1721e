//! subscribeRepos frame bytes -> decode_frame -> (commit/sync) verify against a fixed key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plyr_repo::{Frame, PublicKey, parse_did_key};
use std::sync::OnceLock;

/// Any valid key: the signature will not match, but every check before it runs.
const KEY: &str = "did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme";

fn key() -> Option<&'static PublicKey> {
    static KEY_CELL: OnceLock<Option<PublicKey>> = OnceLock::new();
    KEY_CELL.get_or_init(|| parse_did_key(KEY).ok()).as_ref()
}

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = plyr_repo::decode_frame(data) else {
        return;
    };
    let Some(key) = key() else {
        return;
    };
    match frame {
        Frame::Commit(event) => {
            if let Ok(verified) = plyr_repo::verify_commit(&event, key) {
                for op in &verified.ops {
                    let _ = op.record_json();
                }
            }
        }
        Frame::Sync(event) => {
            let _ = plyr_repo::verify_sync(&event, key);
        }
        _ => {}
    }
});

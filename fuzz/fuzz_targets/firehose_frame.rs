//! subscribeRepos frame bytes -> decode_frame -> (commit/sync) verify against a fixed key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plyr_repo::Frame;

#[path = "common/mod.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = plyr_repo::decode_frame(data) else {
        return;
    };
    let Some(key) = common::fixed_key() else {
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

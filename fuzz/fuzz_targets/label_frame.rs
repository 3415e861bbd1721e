//! subscribeLabels frame bytes -> the label client's decode and per-label checks, against a
//! fixed key.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common/mod.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    if let Some(key) = common::fixed_key() {
        let _ = plyr_indexer::fuzz_label_frame(data, key);
    }
});

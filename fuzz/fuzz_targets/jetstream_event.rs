//! Jetstream message bytes -> decode -> classify (lexicon validation, row extraction) -> plan.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let skips = plyr_indexer::fuzz_jetstream_event(data);
    // One event is at most one counted skip.
    assert!(skips.len() <= 1, "{skips:?} for one event");
});

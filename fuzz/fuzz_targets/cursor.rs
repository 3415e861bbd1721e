//! Cursor string -> TimeCursor/PositionCursor/SearchCursor::decode; a decoded cursor must
//! re-encode to the same string (decoding accepts only cursors we issue).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(raw) = std::str::from_utf8(data) {
        assert!(
            plyr_appview_xrpc::fuzz_cursor(raw),
            "cursor {raw:?} does not round-trip"
        );
    }
});

//! Query string -> XrpcQuery's parser -> limit, actor, uri(s), cursor checks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(query) = std::str::from_utf8(data) {
        plyr_appview_xrpc::fuzz_xrpc_params(query);
    }
});

//! Token string -> every service-auth check before the issuer's DID is resolved.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plyr_identity::{Did, fuzz_service_token};
use std::sync::OnceLock;

fn service() -> Option<&'static Did> {
    static SERVICE: OnceLock<Option<Did>> = OnceLock::new();
    SERVICE
        .get_or_init(|| Did::new("did:web:api.plyr.fm").ok())
        .as_ref()
}

fuzz_target!(|data: &[u8]| {
    let (Some(service), Ok(token)) = (service(), std::str::from_utf8(data)) else {
        return;
    };
    let now = 1_750_000_000;
    if let Err(e) = fuzz_service_token(token, "fm.plyr.feed.getTrack", now, service) {
        let _ = e.name();
    }
});

//! `collection \n rkey \n JSON record` -> Namespace::validate (lexicon + app rules).
#![no_main]

use libfuzzer_sys::fuzz_target;
use plyr_lexicons::Namespace;
use std::sync::OnceLock;

fn namespace() -> Option<&'static Namespace> {
    static NAMESPACE: OnceLock<Option<Namespace>> = OnceLock::new();
    NAMESPACE
        .get_or_init(|| Namespace::new("fm.plyr").ok())
        .as_ref()
}

fuzz_target!(|data: &[u8]| {
    let Some(namespace) = namespace() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(3, '\n');
    let (Some(collection), Some(rkey), Some(body)) = (parts.next(), parts.next(), parts.next())
    else {
        return;
    };
    // Let the fuzzer pick any of our collections by its first byte, or spell its own.
    let collections = namespace.collections();
    let collection = match collection.as_bytes() {
        [n] => collections
            .get(usize::from(*n) % collections.len().max(1))
            .cloned()
            .unwrap_or_default(),
        _ => collection.to_owned(),
    };
    let Ok(record) = serde_json::from_str::<serde_json::Value>(body) else {
        return;
    };
    let _ = plyr_lexicons::validate_data(&record);
    if let Err(rejection) = namespace.validate(&collection, rkey, &record) {
        let _ = rejection.kind().as_str();
    }
});

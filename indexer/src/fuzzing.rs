//! Entry points for the fuzz targets in `fuzz/` (hidden from the docs): the pure parts of the
//! Jetstream path, so a fuzzer reaches validation and folding without a socket or database.

use std::sync::OnceLock;

use plyr_lexicons::Namespace;

use crate::{event, fold};

/// Decodes one Jetstream message, classifies it against the `fm.plyr` namespace (lexicon
/// validation, row extraction) and plans it as a one-event batch. Returns the reason of each
/// skip the batch counted (the skip counter's labels); any input must come back here rather
/// than panic.
#[doc(hidden)]
pub fn fuzz_jetstream_event(bytes: &[u8]) -> Vec<&'static str> {
    static NAMESPACE: OnceLock<Option<Namespace>> = OnceLock::new();
    let Some(namespace) = NAMESPACE.get_or_init(|| Namespace::new("fm.plyr").ok()) else {
        return Vec::new();
    };
    let classified = fold::classify(namespace, event::decode(bytes));
    let plan = fold::plan(vec![classified]);
    plan.skips
        .iter()
        .flat_map(|(reason, tally)| {
            std::iter::repeat_n(*reason, usize::try_from(tally.count).unwrap_or(0))
        })
        .collect()
}

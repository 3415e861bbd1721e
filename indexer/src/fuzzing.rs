//! Entry points for the fuzz targets in `fuzz/` (hidden from the docs): the pure parts of the
//! Jetstream path and of the label stream, so a fuzzer reaches validation, folding and label
//! checks without a socket or database.

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

/// Decodes one `subscribeLabels` frame and checks each of its labels as the label client does,
/// with `key` as the labeler's key and the first label's `src` as the labeler (so the checks
/// past `src` are reached). `Err` is a frame the client counts as malformed; `Ok` holds each
/// label's outcome, `"ok"` or its skip reason. Any input must come back here rather than panic.
#[doc(hidden)]
pub fn fuzz_label_frame(
    bytes: &[u8],
    key: &plyr_repo::PublicKey,
) -> Result<Vec<&'static str>, String> {
    match crate::labels::decode(bytes).map_err(|e| e.to_string())? {
        crate::labels::LabelFrame::Labels { labels, .. } => {
            let Some(labeler) = labels.first().map(|l| l.fields.src.clone()) else {
                return Ok(Vec::new());
            };
            Ok(labels
                .iter()
                .map(|label| match crate::labels::check(&labeler, key, label) {
                    Ok(_) => "ok",
                    Err(reason) => reason,
                })
                .collect())
        }
        _ => Ok(Vec::new()),
    }
}

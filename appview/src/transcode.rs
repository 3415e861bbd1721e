//! The transcode worker: blobs browsers can't play (AIFF, ALAC) get a FLAC web rendition,
//! one at a time (each is an ffmpeg subprocess with its own limits), recorded on the blob row
//! so `trackView.audio.webRendition` names it and `/blob/{cid}/{name}` serves it. A failure is
//! recorded and leaves the original intact.

use std::time::Duration;

use plyr_blobstore::{BlobCid, BlobStore, TranscodeLimits, WEB_RENDITION, transcode_web};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::error::causes;
use crate::queries::blob as q;

/// Blobs taken per pass.
const TRANSCODE_BATCH: i64 = 16;

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TranscodeReport {
    /// Renditions stored.
    pub transcoded: u64,
    /// Failures recorded.
    pub failed: u64,
}

/// One pass over the blobs due a web rendition, sequentially.
pub async fn transcode_pending(
    db: &PgPool,
    store: &BlobStore,
    limits: &TranscodeLimits,
) -> Result<TranscodeReport, sqlx::Error> {
    let mut report = TranscodeReport::default();
    for cid in q::transcode_due(db, TRANSCODE_BATCH).await? {
        let Ok(parsed) = cid.parse::<BlobCid>() else {
            q::record_transcode(db, &cid, None, Some("unparsable cid")).await?;
            report.failed += 1;
            continue;
        };
        match transcode_web(store, parsed, limits).await {
            Ok(rendition) => {
                q::record_transcode(db, &cid, Some(WEB_RENDITION), None).await?;
                tracing::info!(%cid, size = rendition.size, "web rendition stored");
                report.transcoded += 1;
            }
            Err(e) => {
                let reason = format!("{e}{}", causes(&e));
                tracing::warn!(%cid, error = %reason, "transcode failed");
                q::record_transcode(db, &cid, None, Some(&reason)).await?;
                report.failed += 1;
            }
        }
    }
    Ok(report)
}

/// Runs [`transcode_pending`] until `shutdown`, pausing `idle` when nothing was due.
pub async fn run_transcoder(
    db: PgPool,
    store: BlobStore,
    limits: TranscodeLimits,
    idle: Duration,
    shutdown: CancellationToken,
) {
    loop {
        let busy = tokio::select! {
            () = shutdown.cancelled() => return,
            report = transcode_pending(&db, &store, &limits) => match report {
                Ok(report) => report != TranscodeReport::default(),
                Err(e) => {
                    tracing::warn!(error = %e, cause = %causes(&e), "transcode pass failed");
                    false
                }
            },
        };
        if !busy {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(idle) => {}
            }
        }
    }
}

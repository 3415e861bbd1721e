//! Blob garbage collection: a blob is deleted only when no indexed track references it (its
//! audioBlob, or a cover imageUrl pointing at `/blob/<cid>`), and has been neither referenced
//! nor re-stored for a whole grace period, re-checked under the blob row's lock, which uploads
//! and mirrors take too. `plyr-appview gc` runs one pass; [`run_gc`] runs passes in the
//! background.

use std::time::{Duration, SystemTime};

use futures_util::TryStreamExt;
use plyr_blobstore::{
    BlobCid, BlobKey, BlobStore, ListScope, RenditionName, StoreError, THUMBNAIL_RENDITION,
};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::queries::blob as q;

/// Candidates examined per pass; the next pass takes the rest.
const GC_BATCH: i64 = 1000;

/// How garbage collection runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcConfig {
    /// How long a blob must have been unreferenced, and not re-stored, before it is deleted.
    /// Covers the window between an upload and the record that uses it reaching the index,
    /// and a record edit that drops a blob and restores it.
    pub grace: Duration,
    /// Time between background passes.
    pub interval: Duration,
}

impl Default for GcConfig {
    fn default() -> Self {
        GcConfig {
            grace: Duration::from_secs(24 * 3600),
            interval: Duration::from_secs(3600),
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Blobs whose grace period started in this pass.
    pub newly_unreferenced: u64,
    /// Blobs referenced again, whose grace period was cancelled.
    pub referenced_again: u64,
    /// Stored objects without a row, recorded so they age like any blob.
    pub orphans_adopted: u64,
    /// Blobs deleted (object, renditions and row).
    pub deleted: u64,
    /// Temp objects of interrupted uploads removed.
    pub temp_swept: u64,
}

/// Why a pass failed.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// A query failed.
    #[error("gc query failed")]
    Database(#[from] sqlx::Error),
    /// The store failed.
    #[error("gc store operation failed")]
    Store(#[from] StoreError),
}

/// One garbage-collection pass over `store`.
#[tracing::instrument(skip_all)]
pub async fn collect_garbage(
    db: &PgPool,
    store: &BlobStore,
    grace: Duration,
) -> Result<GcReport, GcError> {
    let mut report = GcReport::default();
    let grace_secs = grace.as_secs_f64();
    let cutoff = SystemTime::now()
        .checked_sub(grace)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    report.temp_swept = store.sweep_temp(cutoff).await?;
    let mut listed = store.list(ListScope::Blobs);
    while let Some(object) = listed.try_next().await? {
        let BlobKey::Blob(cid) = object.key else {
            continue;
        };
        let text = cid.to_string();
        if object.meta.modified < cutoff && !q::known(db, &text).await? {
            let size = i64::try_from(object.meta.size).unwrap_or(i64::MAX);
            let modified = chrono::DateTime::<chrono::Utc>::from(object.meta.modified);
            if q::adopt_orphan(db, &text, size, modified).await? {
                report.orphans_adopted += 1;
            }
        }
    }
    drop(listed);
    let (unreferenced, referenced) = q::mark_unreferenced(db).await?;
    report.newly_unreferenced = unreferenced;
    report.referenced_again = referenced;
    for cid in q::collectable(db, grace_secs, GC_BATCH).await? {
        if delete_if_collectable(db, store, &cid, grace_secs).await? {
            report.deleted += 1;
        }
    }
    tracing::info!(?report, "gc pass done");
    Ok(report)
}

/// Deletes `cid` if it is still collectable once its row is locked. The row lock is held while
/// the objects are deleted, so an upload of the same bytes waits and then stores them anew.
async fn delete_if_collectable(
    db: &PgPool,
    store: &BlobStore,
    cid: &str,
    grace_secs: f64,
) -> Result<bool, GcError> {
    let Ok(parsed) = cid.parse::<BlobCid>() else {
        tracing::warn!(cid, "blob row with an unparsable cid; left alone");
        return Ok(false);
    };
    let mut tx = db.begin().await?;
    let Some(found) = q::lock_collectable(&mut tx, cid, grace_secs).await? else {
        return Ok(false);
    };
    let mut renditions = vec![THUMBNAIL_RENDITION.to_owned()];
    renditions.extend(found.web_rendition);
    for name in renditions {
        if let Ok(name) = name.parse::<RenditionName>() {
            store.delete(BlobKey::rendition(parsed, name)).await?;
        }
    }
    store.delete(parsed).await?;
    q::delete_blob(&mut tx, cid).await?;
    tx.commit().await?;
    tracing::info!(cid, "blob collected");
    Ok(true)
}

/// Runs [`collect_garbage`] every `config.interval` until `shutdown`; a failed pass is logged
/// and retried at the next interval.
pub async fn run_gc(db: PgPool, store: BlobStore, config: GcConfig, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(config.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        if let Err(e) = collect_garbage(&db, &store, config.grace).await {
            tracing::warn!(error = %e, cause = %crate::error::causes(&e), "gc pass failed");
        }
    }
}

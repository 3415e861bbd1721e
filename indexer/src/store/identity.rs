//! The handle resolver's queue: which actors are due for a two-way handle check, and the
//! outcome of one, written only if no `#identity` event asked for a newer check meanwhile.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::StoreError;

/// An actor due for a check, with the check time it was read at (the compare-and-set token).
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct DueIdentity {
    /// The actor's DID.
    pub did: String,
    /// When its handle was last checked; null when never (or an event asked again).
    pub checked_at: Option<DateTime<Utc>>,
}

/// Up to `limit` actors never checked, or last checked before `stale_before`, oldest first.
pub(crate) async fn identity_due(
    pool: &PgPool,
    stale_before: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<DueIdentity>, StoreError> {
    sqlx::query_as(
        "select did, identity_checked_at as checked_at from actor
         where identity_checked_at is null or identity_checked_at < $1
         order by identity_checked_at nulls first limit $2",
    )
    .bind(stale_before)
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(StoreError::at("reading actors due for a handle check"))
}

/// Records a check. `handle` is `Some(Some(h))` for a verified handle, `Some(None)` when the
/// document's handle did not resolve back (shown as handle.invalid), `None` when the lookup
/// failed (the handle is left as it was). `checked_at` is stored as the new check time. Nothing
/// is written if the actor's check time changed since `due` was read. A changed handle is
/// notified (the actor as an author: every view shows it), in the same transaction.
pub(crate) async fn record_identity(
    pool: &PgPool,
    due: &DueIdentity,
    handle: Option<Option<&str>>,
    checked_at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut tx = pool
        .begin()
        .await
        .map_err(StoreError::at("recording a handle check"))?;
    let changed: Option<bool> = sqlx::query_scalar(
        "with old as (
           select did, handle from actor
           where did = $1 and identity_checked_at is not distinct from $5
           for update)
         update actor a set
           handle = case when $2 then $3 else a.handle end,
           identity_checked_at = $4,
           updated_at = now()
         from old where a.did = old.did
         returning a.handle is distinct from old.handle",
    )
    .bind(&due.did)
    .bind(handle.is_some())
    .bind(handle.flatten())
    .bind(checked_at)
    .bind(due.checked_at)
    .fetch_optional(&mut *tx)
    .await
    .map_err(StoreError::at("recording a handle check"))?;
    if changed == Some(true) {
        let mut changes = super::notify::Changes::default();
        changes.profiles.insert(due.did.clone());
        changes.authors.insert(due.did.clone());
        super::notify::send(&mut tx, &changes).await?;
    }
    tx.commit()
        .await
        .map_err(StoreError::at("recording a handle check"))?;
    Ok(changed.is_some())
}

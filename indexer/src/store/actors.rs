//! Actor-level events: `#identity` sets handles, `#account` hides, restores or purges an
//! actor's content and recounts what its likes and comments counted towards.

use std::collections::HashSet;

use sqlx::PgConnection;

use super::StoreError;
use super::counts::{recount_actor, recount_tracks};
use crate::fold::{AccountChange, IdentityChange};

/// Sets handles of actors already known and queues them for a two-way check by the handle
/// resolver. DIDs never seen in a commit are ignored: Jetstream sends `#identity` for the whole
/// network, and the view only tracks plyr actors (the resolver finds their handles when they
/// first publish).
pub(super) async fn apply_identities(
    tx: &mut PgConnection,
    changes: &[IdentityChange],
) -> Result<(), StoreError> {
    if changes.is_empty() {
        return Ok(());
    }
    let dids: Vec<&str> = changes.iter().map(|c| c.did.as_str()).collect();
    let handles: Vec<Option<&str>> = changes.iter().map(|c| c.handle.as_deref()).collect();
    sqlx::query(
        "update actor a set handle = c.handle, identity_checked_at = null, updated_at = now()
         from unnest($1::text[], $2::text[]) as c(did, handle)
         where a.did = c.did",
    )
    .bind(&dids)
    .bind(&handles)
    .execute(&mut *tx)
    .await
    .map_err(StoreError::at("updating handles"))?;
    Ok(())
}

/// Applies status changes of known actors, in order: hide, restore or purge, then recount what
/// their likes and comments counted towards.
pub(super) async fn apply_accounts(
    tx: &mut PgConnection,
    changes: &[AccountChange],
) -> Result<(), StoreError> {
    if changes.is_empty() {
        return Ok(());
    }
    let dids: Vec<&str> = changes.iter().map(|c| c.did.as_str()).collect();
    let known: Vec<String> = sqlx::query_scalar("select did from actor where did = any($1)")
        .bind(&dids)
        .fetch_all(&mut *tx)
        .await
        .map_err(StoreError::at("looking up account actors"))?;
    let known: HashSet<String> = known.into_iter().collect();
    for change in changes.iter().filter(|c| known.contains(&c.did)) {
        // The tracks this actor's likes and comments count towards, before any purge.
        let subjects: Vec<String> = sqlx::query_scalar(
            "select subject_uri from track_like where did = $1
             union select subject_uri from comment where did = $1",
        )
        .bind(&change.did)
        .fetch_all(&mut *tx)
        .await
        .map_err(StoreError::at("finding an account's subjects"))?;
        sqlx::query("update actor set active = $2, status = $3, updated_at = now() where did = $1")
            .bind(&change.did)
            .bind(change.active)
            .bind(change.status.as_deref())
            .execute(&mut *tx)
            .await
            .map_err(StoreError::at("updating account status"))?;
        if change.is_deletion() {
            purge(tx, &change.did).await?;
            recount_actor(tx, &change.did).await?;
        }
        recount_tracks(tx, &subjects).await?;
        tracing::info!(did = %change.did, active = change.active, status = ?change.status,
                       "account status applied");
    }
    Ok(())
}

/// Removes a deleted account's content; its ledger rows stay, marked deleted, so replays of
/// older commits cannot bring anything back.
async fn purge(tx: &mut PgConnection, did: &str) -> Result<(), StoreError> {
    // The ledger has no DID index: a DID's URIs are the key range from `at://<did>/` up to
    // `at://<did>0` ('0' is the byte after '/'), scanned on the primary key.
    sqlx::query(
        "with l as (delete from track_like where did = $1),
              c as (delete from comment where did = $1),
              t as (delete from track where did = $1),
              li as (delete from list where did = $1),
              p as (delete from profile where did = $1)
         update record set deleted = true, updated_at = now()
         where uri >= $2 and uri < $3 and not deleted",
    )
    .bind(did)
    .bind(format!("at://{did}/"))
    .bind(format!("at://{did}0"))
    .execute(&mut *tx)
    .await
    .map_err(StoreError::at("purging a deleted account"))?;
    Ok(())
}

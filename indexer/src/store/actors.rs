//! Actor-level events: `#identity` sets handles; `#account` restores an actor at once, or
//! records a hide or purge as a pending claim that the account checker settles (hide, restore
//! or purge the actor's content and recount what its likes and comments counted towards).

use std::collections::HashSet;

use chrono::{DateTime, TimeDelta, Utc};
use sqlx::{PgConnection, PgPool};

use super::StoreError;
use super::counts::{recount_actor, recount_tracks};
use crate::fold::{AccountChange, IdentityChange};

/// The status whose confirmation purges an actor's content.
const DELETED: &str = "deleted";

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

/// Takes `#account` events of known actors, in order. An active one is applied at once (and
/// clears any pending claim); an inactive one would hide or purge content on the word of
/// whichever host sent it, so it is only recorded as the actor's pending claim, for the
/// account checker to confirm with the account's current PDS. A claim that matches the status
/// already applied is settled on the spot.
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
        if change.active {
            apply_status(tx, &change.did, true, None).await?;
        } else {
            record_pending(tx, &change.did, change.status.as_deref()).await?;
            tracing::info!(did = %change.did, status = ?change.status, deletion = change.is_deletion(),
                           "account status pending confirmation");
        }
    }
    Ok(())
}

/// Records an inactive status as the actor's pending claim, due for a check now; or, when the
/// actor already shows exactly that status, clears any claim instead.
async fn record_pending(
    tx: &mut PgConnection,
    did: &str,
    status: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "update actor set
           pending_active = case when settled then null else false end,
           pending_status = case when settled then null else $2 end,
           pending_since = case when settled then null else now() end,
           status_checked_at = null
         from (select not active and status is not distinct from $2 as settled
               from actor where did = $1) s
         where did = $1",
    )
    .bind(did)
    .bind(status)
    .execute(&mut *tx)
    .await
    .map_err(StoreError::at("recording a pending account status"))?;
    Ok(())
}

/// Sets an actor's status and clears its pending claim: hide, restore or purge (`deleted`),
/// then recount what its likes and comments counted towards.
async fn apply_status(
    tx: &mut PgConnection,
    did: &str,
    active: bool,
    status: Option<&str>,
) -> Result<(), StoreError> {
    // The tracks this actor's likes and comments count towards, before any purge.
    let subjects: Vec<String> = sqlx::query_scalar(
        "select subject_uri from track_like where did = $1
         union select subject_uri from comment where did = $1",
    )
    .bind(did)
    .fetch_all(&mut *tx)
    .await
    .map_err(StoreError::at("finding an account's subjects"))?;
    sqlx::query(
        "update actor set active = $2, status = $3, pending_active = null,
           pending_status = null, pending_since = null, status_checked_at = null,
           updated_at = now()
         where did = $1",
    )
    .bind(did)
    .bind(active)
    .bind(status)
    .execute(&mut *tx)
    .await
    .map_err(StoreError::at("updating account status"))?;
    if !active && status == Some(DELETED) {
        purge(tx, did).await?;
        recount_actor(tx, did).await?;
    }
    recount_tracks(tx, &subjects).await?;
    tracing::info!(%did, active, status = ?status, "account status applied");
    Ok(())
}

/// A pending `#account` claim, taken by one checker. `claimed_at` is the compare-and-set
/// token: any later event for the actor, or another checker's claim, replaces it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct PendingAccount {
    /// The actor's DID.
    pub did: String,
    /// The inactive status the event claimed.
    pub status: Option<String>,
    /// When the event was stored.
    pub since: DateTime<Utc>,
    /// When this claim was taken (the check time).
    pub claimed_at: DateTime<Utc>,
}

/// What the account's current PDS said about a pending claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Settlement {
    /// Confirmed inactive: apply this status (`deleted` purges).
    Apply(String),
    /// Not confirmed (the account is active, or checks kept failing): drop the claim and leave
    /// the status as it is.
    Drop,
}

/// Claims up to `limit` pending claims that are due: never checked since the event, or last
/// checked longer ago than the backoff (the claim's age so far, between `min_retry` and
/// `max_retry`, so retries space out geometrically). Rows another checker holds are skipped;
/// a claimed row is not due again until its backoff passes, so two checkers never ask twice.
pub(crate) async fn claim_pending_accounts(
    pool: &PgPool,
    min_retry: TimeDelta,
    max_retry: TimeDelta,
    limit: i64,
) -> Result<Vec<PendingAccount>, StoreError> {
    sqlx::query_as(
        "update actor a set status_checked_at = clock_timestamp()
         from (select did from actor
               where pending_since is not null
                 and (status_checked_at is null
                      or status_checked_at + least($2::interval, greatest($1::interval,
                             status_checked_at - pending_since)) <= now())
               order by pending_since limit $3
               for update skip locked) due
         where a.did = due.did
         returning a.did, a.pending_status as status, a.pending_since as since,
                   a.status_checked_at as claimed_at",
    )
    .bind(min_retry)
    .bind(max_retry)
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(StoreError::at("claiming pending account statuses"))
}

/// Settles a claim in one transaction, unless it was superseded since it was taken (a newer
/// event, or another checker): then nothing is written and `false` returned.
pub(crate) async fn settle_account(
    pool: &PgPool,
    claim: &PendingAccount,
    settlement: &Settlement,
) -> Result<bool, StoreError> {
    let mut tx = pool
        .begin()
        .await
        .map_err(StoreError::at("beginning an account settlement"))?;
    let held: Option<String> = sqlx::query_scalar(
        "select did from actor where did = $1 and status_checked_at = $2
           and pending_since is not null for update",
    )
    .bind(&claim.did)
    .bind(claim.claimed_at)
    .fetch_optional(&mut *tx)
    .await
    .map_err(StoreError::at("locking a pending account status"))?;
    if held.is_none() {
        return Ok(false);
    }
    match settlement {
        Settlement::Apply(status) => {
            apply_status(&mut tx, &claim.did, false, Some(status)).await?;
            // The actor's likes and comments stop counting on other actors' tracks too.
            super::notify::send(&mut tx, &super::notify::Changes::everything()).await?;
        }
        Settlement::Drop => {
            sqlx::query(
                "update actor set pending_active = null, pending_status = null,
                   pending_since = null
                 where did = $1",
            )
            .bind(&claim.did)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::at("dropping a pending account status"))?;
        }
    }
    tx.commit()
        .await
        .map_err(StoreError::at("committing an account settlement"))?;
    Ok(true)
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
              p as (delete from profile where did = $1),
              b as (delete from bsky_profile where did = $1)
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

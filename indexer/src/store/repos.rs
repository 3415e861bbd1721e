//! The verified chain of each tracked repo (`repo_state`): loaded whole when the relay starts,
//! advanced by each batch's verified commits and marked desynchronized when the chain breaks,
//! in the batch's transaction.

use sqlx::{PgConnection, PgPool};

use super::StoreError;
use crate::fold::{Desync, RepoAdvance};

/// One `repo_state` row.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct RepoState {
    pub did: String,
    /// The rev of the last verified commit applied.
    pub rev: String,
    /// The MST root after it.
    pub data_cid: String,
    /// `synced` or `desynchronized`.
    pub status: String,
}

impl RepoState {
    /// Whether the repo awaits a resync.
    pub(crate) fn is_desynchronized(&self) -> bool {
        self.status == "desynchronized"
    }
}

/// Every tracked repo. Tracked repos are the DIDs that published in our namespace: thousands,
/// not the network's millions, so the relay keeps them all in memory.
pub(crate) async fn repo_states(pool: &PgPool) -> Result<Vec<RepoState>, StoreError> {
    sqlx::query_as("select did, rev, data_cid, status from repo_state")
        .fetch_all(pool)
        .await
        .map_err(StoreError::at("loading repo states"))
}

/// Moves each repo to its new rev and data root, unless it already holds a greater rev (a
/// resync landed first). A repo's first advance makes it tracked (status `synced`); an advance
/// never changes the status: only a resync clears a desynchronized mark.
pub(super) async fn advance_repos(
    tx: &mut PgConnection,
    advances: &[RepoAdvance],
) -> Result<(), StoreError> {
    if advances.is_empty() {
        return Ok(());
    }
    let dids: Vec<&str> = advances.iter().map(|a| a.did.as_str()).collect();
    let revs: Vec<&str> = advances.iter().map(|a| a.rev.as_str()).collect();
    let data: Vec<&str> = advances.iter().map(|a| a.data_cid.as_str()).collect();
    sqlx::query(
        "insert into repo_state (did, rev, data_cid)
         select * from unnest($1::text[], $2::text[], $3::text[])
         on conflict (did) do update
         set rev = excluded.rev, data_cid = excluded.data_cid, updated_at = now()
         where excluded.rev > repo_state.rev",
    )
    .bind(&dids)
    .bind(&revs)
    .bind(&data)
    .execute(&mut *tx)
    .await
    .map_err(StoreError::at("advancing repo states"))?;
    Ok(())
}

/// After a relay's `FutureCursor`: forgets its cursor and marks every tracked repo
/// desynchronized, in one transaction, so the next start resyncs each from `getRepo` and
/// nothing committed in the gap the lost seqs hid is missed.
pub(crate) async fn restart_relay(
    pool: &PgPool,
    source: &str,
    reason: &str,
) -> Result<u64, StoreError> {
    let mut tx = pool
        .begin()
        .await
        .map_err(StoreError::at("beginning a transaction"))?;
    super::forget_cursor(&mut *tx, source).await?;
    let marked = sqlx::query(
        "update repo_state set status = 'desynchronized', reason = $1, updated_at = now()",
    )
    .bind(reason)
    .execute(&mut *tx)
    .await
    .map_err(StoreError::at("marking every repo desynchronized"))?
    .rows_affected();
    tx.commit()
        .await
        .map_err(StoreError::at("committing the relay restart"))?;
    Ok(marked)
}

/// Marks repos desynchronized, each unless its stored rev already reached the rev that exposed
/// the break (a resync that committed before this batch).
pub(super) async fn mark_desynchronized(
    tx: &mut PgConnection,
    desyncs: &[Desync],
) -> Result<(), StoreError> {
    if desyncs.is_empty() {
        return Ok(());
    }
    let dids: Vec<&str> = desyncs.iter().map(|d| d.did.as_str()).collect();
    let revs: Vec<Option<&str>> = desyncs.iter().map(|d| d.rev.as_deref()).collect();
    let reasons: Vec<&str> = desyncs.iter().map(|d| d.reason.as_str()).collect();
    sqlx::query(
        "update repo_state r
         set status = 'desynchronized', reason = d.reason, updated_at = now()
         from unnest($1::text[], $2::text[], $3::text[]) as d(did, rev, reason)
         where r.did = d.did and (d.rev is null or r.rev < d.rev)",
    )
    .bind(&dids)
    .bind(&revs)
    .bind(&reasons)
    .execute(&mut *tx)
    .await
    .map_err(StoreError::at("marking repos desynchronized"))?;
    Ok(())
}

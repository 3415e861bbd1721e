//! All of the indexer's SQL: applies a [`Plan`] (record writes, identity and account changes,
//! counters, skip counts and the cursor) in one Postgres transaction, with bulk `unnest`
//! statements so a batch costs a handful of round trips whatever its size.

mod actors;
mod blobs;
mod commits;
mod counts;
mod did_doc;
mod identity;
pub(crate) mod labels;
mod notify;
mod repos;
mod snapshot;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use sqlx::{PgConnection, PgPool};

use crate::fold::{Plan, Segment, SkipTally};

pub(crate) use actors::{PendingAccount, Settlement, claim_pending_accounts, settle_account};
pub(crate) use blobs::{
    AudioState, DueAudio, MirroredBlob, due_audio, record_audio, record_mirrored,
};
pub(crate) use did_doc::{fresh_did_doc, upsert_did_doc};
pub(crate) use identity::{DueIdentity, identity_due, record_identity};
pub(crate) use repos::{RepoState, repo_states, restart_relay};
pub(crate) use snapshot::{
    Discovery, Snapshot, apply_snapshot, count_rejection, discovery, pending_repos, queue_counts,
    repo_done, repo_failed, requeue, save_page,
};

/// A failed statement, with what the store was doing.
#[derive(Debug, thiserror::Error)]
#[error("store failed while {action}")]
pub struct StoreError {
    action: &'static str,
    #[source]
    source: sqlx::Error,
}

impl StoreError {
    fn at(action: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
        move |source| StoreError { action, source }
    }

    /// Whether retrying the same batch may succeed (the database was unreachable or busy),
    /// as opposed to Postgres refusing the data.
    pub(crate) fn is_transient(&self) -> bool {
        match &self.source {
            sqlx::Error::Database(db) => {
                // Class 40 (serialization failure, deadlock), 53 (insufficient resources),
                // 57 (operator intervention: shutdown, cancel) and 08 (connection) may pass on retry.
                db.code()
                    .is_some_and(|c| ["40", "53", "57", "08"].iter().any(|p| c.starts_with(p)))
            }
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            _ => false,
        }
    }
}

/// What a committed batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Applied {
    /// Record operations that won (new or newer rev) and changed the view.
    pub written: u64,
    /// Events skipped by reason, including commits of deleted actors found here.
    pub skips: BTreeMap<&'static str, i64>,
}

/// Advisory lock key (`plyrview` in ASCII) held by every transaction that writes the view.
const VIEW_WRITE_LOCK: i64 = 0x706c_7972_7669_6577;

/// Serializes view writers (the batch writer, backfill snapshots) until the transaction ends.
/// Counters move by what each transaction sees: two at once can each miss the other's rows
/// (a snapshot's new track counted no likes while another snapshot committed them: the
/// backfill tests caught it).
async fn lock_view(tx: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query("select pg_advisory_xact_lock($1)")
        .bind(VIEW_WRITE_LOCK)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::at("locking the view for writing"))?;
    Ok(())
}

/// The cursor stored for `source`, if any.
pub(crate) async fn last_cursor(pool: &PgPool, source: &str) -> Result<Option<i64>, StoreError> {
    sqlx::query_scalar("select cursor from consumer_cursor where source = $1")
        .bind(source)
        .fetch_optional(pool)
        .await
        .map_err(StoreError::at("reading the cursor"))
}

/// Forgets `source`'s cursor: the host answered `FutureCursor`, so its seqs started over (a
/// reset host, or another host behind the same name) and the stored one means nothing there.
pub(crate) async fn forget_cursor<'e, E>(db: E, source: &str) -> Result<(), StoreError>
where
    E: sqlx::PgExecutor<'e>,
{
    sqlx::query("delete from consumer_cursor where source = $1")
        .bind(source)
        .execute(db)
        .await
        .map_err(StoreError::at("forgetting the cursor"))?;
    Ok(())
}

/// Applies the plan and moves `source`'s cursor, all in one transaction.
pub(crate) async fn apply(pool: &PgPool, source: &str, plan: &Plan) -> Result<Applied, StoreError> {
    let mut tx = pool
        .begin()
        .await
        .map_err(StoreError::at("beginning a transaction"))?;
    lock_view(&mut tx).await?;
    // jit: the bulk statements' cost estimates cross the JIT threshold, and compiling them
    // cost ~300 ms a batch (measured) for plans that run in milliseconds.
    // synchronous_commit: a batch lost to a Postgres crash takes its cursor with it, so the
    // stream replays it; skipping the WAL flush wait is safe and saves a disk sync per batch.
    // random_page_cost: the view is hot in memory, and at the default (4) a few thousand key
    // lookups were planned as whole-table scans (track, track_like) in every batch.
    sqlx::query(
        "select set_config('jit', 'off', true), set_config('synchronous_commit', 'off', true),
                set_config('random_page_cost', '1.1', true)",
    )
    .execute(&mut *tx)
    .await
    .map_err(StoreError::at("configuring the transaction"))?;
    // Bluesky profiles of actors we do not hold are dropped before anything (notify included)
    // sees them.
    let known = commits::known_bsky_profiles(&mut tx, plan).await?;
    let plan = known.as_ref().unwrap_or(plan);
    let mut changes = notify::Changes::of(plan);
    changes.add_deleted_subjects(&mut tx, plan).await?;
    let mut extra = Plan::default();
    let mut written = 0;
    for segment in &plan.segments {
        match segment {
            Segment::Commits(ops) => {
                written += commits::apply_commits(&mut tx, ops, &mut extra).await?
            }
            Segment::Accounts(changes) => actors::apply_accounts(&mut tx, changes).await?,
        }
    }
    actors::apply_identities(&mut tx, &plan.identities).await?;
    repos::advance_repos(&mut tx, &plan.repos).await?;
    repos::mark_desynchronized(&mut tx, &plan.desyncs).await?;
    let mut skips = plan.skips.clone();
    for (reason, tally) in extra.skips {
        let entry = skips.entry(reason).or_insert(SkipTally {
            count: 0,
            last_detail: String::new(),
        });
        entry.count += tally.count;
        entry.last_detail = tally.last_detail;
    }
    write_skips(&mut tx, &skips).await?;
    if let Some(cursor) = plan.cursor {
        write_cursor(&mut tx, source, cursor).await?;
    }
    // One notify per batch, delivered with the commit: readers drop what it names.
    notify::send(&mut tx, &changes).await?;
    tx.commit()
        .await
        .map_err(StoreError::at("committing the batch"))?;
    Ok(Applied {
        written,
        skips: skips.iter().map(|(r, t)| (*r, t.count)).collect(),
    })
}

async fn write_skips(
    tx: &mut PgConnection,
    skips: &BTreeMap<&'static str, SkipTally>,
) -> Result<(), StoreError> {
    if skips.is_empty() {
        return Ok(());
    }
    let reasons: Vec<&str> = skips.keys().copied().collect();
    let counts: Vec<i64> = skips.values().map(|t| t.count).collect();
    let details: Vec<&str> = skips.values().map(|t| t.last_detail.as_str()).collect();
    sqlx::query(
        "insert into indexer_skip (reason, count, last_detail)
         select * from unnest($1::text[], $2::int8[], $3::text[])
         on conflict (reason) do update
         set count = indexer_skip.count + excluded.count,
             last_detail = excluded.last_detail,
             last_at = now()",
    )
    .bind(&reasons)
    .bind(&counts)
    .bind(&details)
    .execute(&mut *tx)
    .await
    .map_err(StoreError::at("counting skips"))?;
    Ok(())
}

async fn write_cursor(tx: &mut PgConnection, source: &str, cursor: i64) -> Result<(), StoreError> {
    // Never move backwards: a rewound reconnect replays events older than the stored cursor.
    sqlx::query(
        "insert into consumer_cursor (source, cursor) values ($1, $2)
         on conflict (source) do update
         set cursor = greatest(consumer_cursor.cursor, excluded.cursor), updated_at = now()",
    )
    .bind(source)
    .bind(cursor)
    .execute(&mut *tx)
    .await
    .map_err(StoreError::at("writing the cursor"))?;
    Ok(())
}

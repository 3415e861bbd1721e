//! Backfill's SQL: applying one verified repository snapshot (its records, the deletions of
//! records it no longer has, its skips and the repo's chain state) in one transaction, and the
//! backfill's progress (discovery cursors and the per-repo queue) so a killed run resumes.

use std::collections::{BTreeMap, HashSet};

use plyr_lexicons::Namespace;
use sqlx::{PgConnection, PgPool};

use super::{StoreError, commits, lock_view, write_skips};
use crate::fold::{CommitOp, Plan, Skip, SkipTally};

/// Ops handed to the commit store at once: the size of a live batch, whose bulk statements
/// are measured (`writer::MAX_BATCH`); a larger repo takes several, in the same transaction.
const CHUNK: usize = crate::writer::MAX_BATCH;

/// A verified repository, ready to fold.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    /// The repository.
    pub did: String,
    /// The signed commit's rev: every write and deletion carries it, so the ledger keeps
    /// whatever is newer.
    pub rev: String,
    /// The commit's MST root.
    pub data_cid: String,
    /// Valid namespace records (writes, all with `rev`).
    pub writes: Vec<CommitOp>,
    /// Every namespace record URI in the repo, valid or not: those are not deleted.
    pub present: HashSet<String>,
    /// Namespace records that failed validation.
    pub skips: Vec<Skip>,
}

/// What a snapshot changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SnapshotApplied {
    /// Record writes and deletes that won against the ledger.
    pub written: u64,
    /// Deletions of records the snapshot no longer has (before the ledger's rev check).
    pub stale: usize,
}

/// Applies a snapshot in one transaction: the records through the rev-guarded commit store,
/// rev-guarded deletions of this DID's namespace records the snapshot lacks, the skips, and
/// `repo_state` moved to the snapshot unless it already holds a newer rev. A repo with no
/// namespace record gets no `repo_state` row (it is not tracked) unless it already had one.
pub(crate) async fn apply_snapshot(
    pool: &PgPool,
    namespace: &Namespace,
    snapshot: &Snapshot,
) -> Result<SnapshotApplied, StoreError> {
    let mut tx = pool
        .begin()
        .await
        .map_err(StoreError::at("beginning a snapshot"))?;
    lock_view(&mut tx).await?;
    // Same reasons as a live batch (see `store::apply`).
    sqlx::query(
        "select set_config('jit', 'off', true), set_config('random_page_cost', '1.1', true)",
    )
    .execute(&mut *tx)
    .await
    .map_err(StoreError::at("configuring the snapshot transaction"))?;

    let stale = stale_records(&mut tx, namespace, snapshot).await?;
    let stale_count = stale.len();
    let mut extra = Plan::default();
    let mut written = 0;
    let mut ops: Vec<CommitOp> = snapshot.writes.iter().cloned().chain(stale).collect();
    // Its Bluesky profile is kept only if the actor is (or is becoming) ours.
    commits::drop_unknown_bsky_profiles(&mut tx, &mut ops).await?;
    for chunk in ops.chunks(CHUNK) {
        written += commits::apply_commits(&mut tx, chunk, &mut extra).await?;
    }

    let mut skips: BTreeMap<&'static str, SkipTally> = extra.skips;
    for skip in &snapshot.skips {
        let tally = skips.entry(skip.reason).or_insert(SkipTally {
            count: 0,
            last_detail: String::new(),
        });
        tally.count += 1;
        tally.last_detail.clone_from(&skip.detail);
    }
    write_skips(&mut tx, &skips).await?;

    // A Bluesky profile alone does not make a repo ours.
    let bsky_profile = format!("at://{}/{}/self", snapshot.did, crate::fold::BSKY_PROFILE);
    let tracked = snapshot.present.iter().any(|uri| *uri != bsky_profile);
    write_repo_state(&mut tx, snapshot, tracked).await?;
    // A whole repo changed: its tracks, and the counts its likes and comments feed.
    super::notify::send(&mut tx, &super::notify::Changes::everything()).await?;
    tx.commit()
        .await
        .map_err(StoreError::at("committing a snapshot"))?;
    Ok(SnapshotApplied {
        written,
        stale: stale_count,
    })
}

/// Deletions (at the snapshot's rev) of the DID's live namespace records that the snapshot
/// does not hold. Ledger rows at a rev not below the snapshot's are newer than it: kept.
async fn stale_records(
    tx: &mut PgConnection,
    namespace: &Namespace,
    snapshot: &Snapshot,
) -> Result<Vec<CommitOp>, StoreError> {
    let did = &snapshot.did;
    // The ledger's key range of one DID (see `actors::purge`).
    let live: Vec<String> = sqlx::query_scalar(
        "select uri from record
         where uri >= $1 and uri < $2 and not deleted and rev < $3",
    )
    .bind(format!("at://{did}/"))
    .bind(format!("at://{did}0"))
    .bind(&snapshot.rev)
    .fetch_all(&mut *tx)
    .await
    .map_err(StoreError::at("listing a repo's records"))?;
    let prefix = format!("at://{did}/");
    Ok(live
        .into_iter()
        .filter(|uri| !snapshot.present.contains(uri))
        .filter_map(|uri| {
            let (collection, rkey) = uri.strip_prefix(&prefix)?.split_once('/')?;
            let kind = crate::fold::kind_of(namespace, collection)?;
            Some(CommitOp {
                did: did.clone(),
                collection: collection.to_owned(),
                rkey: rkey.to_owned(),
                rev: snapshot.rev.clone(),
                kind,
                write: None,
                uri,
            })
        })
        .collect())
}

async fn write_repo_state(
    tx: &mut PgConnection,
    snapshot: &Snapshot,
    tracked: bool,
) -> Result<(), StoreError> {
    let query = if tracked {
        "insert into repo_state (did, rev, data_cid, status, reason)
         values ($1, $2, $3, 'synced', null)
         on conflict (did) do update
         set rev = excluded.rev, data_cid = excluded.data_cid, status = 'synced',
             reason = null, updated_at = now()
         where excluded.rev >= repo_state.rev"
    } else {
        "update repo_state
         set rev = $2, data_cid = $3, status = 'synced', reason = null, updated_at = now()
         where did = $1 and rev <= $2"
    };
    sqlx::query(query)
        .bind(&snapshot.did)
        .bind(&snapshot.rev)
        .bind(&snapshot.data_cid)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::at("writing the repo state"))?;
    Ok(())
}

/// Counts a rejected repository (bad signature, a block whose CID does not match, ...) under
/// `reason`, in `indexer_skip` like every other skip.
pub(crate) async fn count_rejection(pool: &PgPool, skip: &Skip) -> Result<(), StoreError> {
    let mut conn = pool
        .acquire()
        .await
        .map_err(StoreError::at("counting a rejected repo"))?;
    let skips = BTreeMap::from([(
        skip.reason,
        SkipTally {
            count: 1,
            last_detail: skip.detail.clone(),
        },
    )]);
    write_skips(&mut conn, &skips).await
}

/// A discovery listing's saved position.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct Discovery {
    /// Where the next page starts (`None`: the first page).
    pub cursor: Option<String>,
    /// Whether the listing reached its end.
    pub done: bool,
}

/// The saved position of `host`'s listing of `collection` (`""` for `listRepos`).
pub(crate) async fn discovery(
    pool: &PgPool,
    host: &str,
    collection: &str,
) -> Result<Option<Discovery>, StoreError> {
    sqlx::query_as(
        "select cursor, done from backfill_discovery where host = $1 and collection = $2",
    )
    .bind(host)
    .bind(collection)
    .fetch_optional(pool)
    .await
    .map_err(StoreError::at("reading a discovery cursor"))
}

/// Queues the DIDs of one page and saves the listing's next position, in one transaction, so a
/// resumed listing never skips a page's repos. Returns how many DIDs were new to the queue.
pub(crate) async fn save_page(
    pool: &PgPool,
    host: &str,
    collection: &str,
    dids: &[&str],
    next: &Discovery,
) -> Result<u64, StoreError> {
    let mut tx = pool
        .begin()
        .await
        .map_err(StoreError::at("beginning a discovery page"))?;
    let queued = sqlx::query(
        "insert into backfill_repo (did) select * from unnest($1::text[])
         on conflict (did) do nothing",
    )
    .bind(dids)
    .execute(&mut *tx)
    .await
    .map_err(StoreError::at("queueing discovered repos"))?
    .rows_affected();
    sqlx::query(
        "insert into backfill_discovery (host, collection, cursor, done) values ($1, $2, $3, $4)
         on conflict (host, collection) do update
         set cursor = excluded.cursor, done = excluded.done, updated_at = now()",
    )
    .bind(host)
    .bind(collection)
    .bind(next.cursor.as_deref())
    .bind(next.done)
    .execute(&mut *tx)
    .await
    .map_err(StoreError::at("saving a discovery cursor"))?;
    tx.commit()
        .await
        .map_err(StoreError::at("committing a discovery page"))?;
    Ok(queued)
}

/// Queues DIDs asked for by name: new ones, and done or failed ones again (fresh attempts).
pub(crate) async fn requeue(pool: &PgPool, dids: &[&str]) -> Result<(), StoreError> {
    sqlx::query(
        "insert into backfill_repo (did) select * from unnest($1::text[])
         on conflict (did) do update
         set state = 'queued', attempts = 0, error = null, updated_at = now()",
    )
    .bind(dids)
    .execute(pool)
    .await
    .map_err(StoreError::at("queueing repos"))?;
    Ok(())
}

/// Up to `limit` repos after `after` (in DID order) still to do: queued, or failed fewer than
/// `max_attempts` times.
pub(crate) async fn pending_repos(
    pool: &PgPool,
    after: &str,
    max_attempts: i32,
    limit: i64,
) -> Result<Vec<String>, StoreError> {
    sqlx::query_scalar(
        "select did from backfill_repo
         where did > $1 and (state = 'queued' or (state = 'failed' and attempts < $2))
         order by did limit $3",
    )
    .bind(after)
    .bind(max_attempts)
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(StoreError::at("reading the backfill queue"))
}

/// Counts of the queue by state: (queued or retryable, done, failed for good).
pub(crate) async fn queue_counts(
    pool: &PgPool,
    max_attempts: i32,
) -> Result<(i64, i64, i64), StoreError> {
    sqlx::query_as(
        "select count(*) filter (where state = 'queued'
                                   or (state = 'failed' and attempts < $1)),
                count(*) filter (where state = 'done'),
                count(*) filter (where state = 'failed' and attempts >= $1)
         from backfill_repo",
    )
    .bind(max_attempts)
    .fetch_one(pool)
    .await
    .map_err(StoreError::at("counting the backfill queue"))
}

/// Marks a repo done, with how many records its snapshot held.
pub(crate) async fn repo_done(pool: &PgPool, did: &str, records: i32) -> Result<(), StoreError> {
    sqlx::query(
        "update backfill_repo
         set state = 'done', attempts = attempts + 1, records = $2, error = null,
             updated_at = now()
         where did = $1",
    )
    .bind(did)
    .bind(records)
    .execute(pool)
    .await
    .map_err(StoreError::at("marking a repo done"))?;
    Ok(())
}

/// Marks a repo failed (one more attempt), with why.
pub(crate) async fn repo_failed(pool: &PgPool, did: &str, error: &str) -> Result<(), StoreError> {
    sqlx::query(
        "update backfill_repo
         set state = 'failed', attempts = attempts + 1, error = $2, updated_at = now()
         where did = $1",
    )
    .bind(did)
    .bind(error)
    .execute(pool)
    .await
    .map_err(StoreError::at("marking a repo failed"))?;
    Ok(())
}

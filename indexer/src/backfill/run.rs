//! The backfill run: discovery (for `--all`), then the queue drained by at most `concurrency`
//! [`sync_repo`] tasks at once, each repo marked done or failed as it finishes, progress sent
//! on a watch channel after every repo.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use plyr_identity::Did;
use sqlx::PgPool;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::discover::discover;
use super::sync::{SyncContext, SyncError, Synced, sync_repo};
use super::{BackfillConfig, BackfillError, BackfillProgress, BackfillSummary, BackfillTarget};
use crate::directory::Directory;
use crate::fold::error_chain;
use crate::store;

/// DIDs read from the queue at a time.
const QUEUE_PAGE: i64 = 256;

/// Runs a backfill to the end of its queue, or until `shutdown` (in-flight repos are then
/// abandoned and stay queued). `progress` receives the running counts after every repo.
pub async fn backfill(
    pool: PgPool,
    config: BackfillConfig,
    progress: watch::Sender<BackfillProgress>,
    shutdown: CancellationToken,
) -> Result<BackfillSummary, BackfillError> {
    let started = Instant::now();
    let max_attempts = i32::try_from(config.max_attempts.max(1)).unwrap_or(i32::MAX);
    let (queued, done, failed) = store::queue_counts(&pool, max_attempts).await?;
    progress.send_modify(|p| {
        p.queued = non_negative(queued);
        p.done = non_negative(done);
        p.failed = non_negative(failed);
    });
    let ctx = Arc::new(SyncContext::new(
        pool.clone(),
        Directory::new(pool.clone(), config.resolver),
        config.namespace.clone(),
        config.sync.clone(),
    ));
    let mut summary = BackfillSummary::default();
    let mut drain = Drain {
        ctx: Arc::clone(&ctx),
        concurrency: config.concurrency.max(1),
        tasks: JoinSet::new(),
        summary: &mut summary,
        progress: &progress,
    };
    match config.target {
        BackfillTarget::All { host } => {
            progress.send_modify(|p| p.discovering = true);
            let found = discover(
                &pool,
                &config.sync,
                &host,
                &config.namespace,
                &progress,
                &shutdown,
            )
            .await?;
            progress.send_modify(|p| p.discovering = false);
            drain.summary.inactive = found.inactive;
            tracing::info!(host = %host, queued = found.queued, inactive = found.inactive,
                           complete = found.complete, "discovery finished");
            let mut after = String::new();
            while !shutdown.is_cancelled() {
                let page = store::pending_repos(&pool, &after, max_attempts, QUEUE_PAGE).await?;
                let Some(last) = page.last() else { break };
                after.clone_from(last);
                for did in page {
                    // The queue holds only DIDs that passed `Did::new` when listed.
                    let Ok(did) = Did::new(&did) else { continue };
                    if !drain.push(did, &shutdown).await? {
                        break;
                    }
                }
            }
        }
        BackfillTarget::Dids(dids) => {
            let names: Vec<&str> = dids.iter().map(Did::as_str).collect();
            store::requeue(&pool, &names).await?;
            progress.send_modify(|p| p.queued += u64::try_from(names.len()).unwrap_or(0));
            for did in dids {
                if !drain.push(did, &shutdown).await? {
                    break;
                }
            }
        }
    }
    drain.finish(&shutdown).await?;
    let (remaining, _, _) = store::queue_counts(&pool, max_attempts).await?;
    summary.remaining = non_negative(remaining);
    summary.interrupted = shutdown.is_cancelled();
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// The bounded set of running repo syncs.
struct Drain<'a> {
    ctx: Arc<SyncContext>,
    concurrency: usize,
    tasks: JoinSet<(Did, Result<Synced, SyncError>)>,
    summary: &'a mut BackfillSummary,
    progress: &'a watch::Sender<BackfillProgress>,
}

impl Drain<'_> {
    /// Starts a sync once a slot is free. `false` when shutdown came first.
    async fn push(
        &mut self,
        did: Did,
        shutdown: &CancellationToken,
    ) -> Result<bool, BackfillError> {
        while self.tasks.len() >= self.concurrency {
            let joined = tokio::select! {
                _ = shutdown.cancelled() => return Ok(false),
                joined = self.tasks.join_next() => joined,
            };
            if let Some(joined) = joined {
                self.settle(joined).await?;
            }
        }
        if shutdown.is_cancelled() {
            return Ok(false);
        }
        let ctx = Arc::clone(&self.ctx);
        self.tasks.spawn(async move {
            let result = sync_repo(&ctx, &did).await;
            (did, result)
        });
        Ok(true)
    }

    /// Waits for the running syncs; on shutdown they are aborted (and stay queued).
    async fn finish(&mut self, shutdown: &CancellationToken) -> Result<(), BackfillError> {
        loop {
            let joined = tokio::select! {
                _ = shutdown.cancelled() => {
                    self.tasks.abort_all();
                    while self.tasks.join_next().await.is_some() {}
                    return Ok(());
                }
                joined = self.tasks.join_next() => joined,
            };
            match joined {
                Some(joined) => self.settle(joined).await?,
                None => return Ok(()),
            }
        }
    }

    /// Records one finished sync. A transient database failure stops the run (the repo stays
    /// queued for the next one); anything else marks the repo failed and the run goes on.
    async fn settle(
        &mut self,
        joined: Result<(Did, Result<Synced, SyncError>), tokio::task::JoinError>,
    ) -> Result<(), BackfillError> {
        let (did, result) = joined.map_err(BackfillError::Worker)?;
        let pool = &self.ctx.pool;
        match result {
            Ok(synced) => {
                let records = i32::try_from(synced.records).unwrap_or(i32::MAX);
                store::repo_done(pool, did.as_str(), records).await?;
                self.summary.done += 1;
                self.summary.records += u64::try_from(synced.records).unwrap_or(u64::MAX);
                self.progress.send_modify(|p| {
                    p.done += 1;
                    p.queued = p.queued.saturating_sub(1);
                    p.records += u64::try_from(synced.records).unwrap_or(u64::MAX);
                });
            }
            Err(SyncError::Store(e)) if e.is_transient() => {
                return Err(BackfillError::Store(e));
            }
            Err(e) => {
                let reason = e.reason();
                tracing::warn!(%did, reason, error = %error_chain(&e), "repo failed");
                store::repo_failed(pool, did.as_str(), &error_chain(&e)).await?;
                self.summary.failed += 1;
                *self.summary.failures.entry(reason).or_insert(0) += 1;
                self.progress.send_modify(|p| {
                    p.failed += 1;
                    p.queued = p.queued.saturating_sub(1);
                });
            }
        }
        Ok(())
    }
}

fn non_negative(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Failures by reason, `reason=count ...`, for the exit summary.
pub(super) fn failure_summary(failures: &BTreeMap<&'static str, u64>) -> String {
    let parts: Vec<String> = failures.iter().map(|(r, c)| format!("{r}={c}")).collect();
    parts.join(" ")
}

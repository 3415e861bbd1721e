//! The driver between the reader and the writer: frames go through the verify stage in a
//! bounded window whose output keeps stream order, then through the chain stage one at a time;
//! resyncs run beside it as tasks (bounded, retried with backoff) so other repos keep flowing,
//! and `#identity` refreshes run in their own task.
//!
//! Because the verify stage's output is back in seq order before the chain stage, and every
//! frame yields its writer item in that order, the cursor a batch commits (its greatest seq) is
//! the low-water mark by construction: every frame at or below it has been decided. Commits
//! held for a resync are the one exception, and their repo is marked desynchronized in the same
//! or an earlier batch, so a restart resyncs it from `getRepo` rather than missing them.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use plyr_identity::Did;
use plyr_lexicons::Namespace;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::chain::{Action, Chain};
use super::source::Input;
use super::verify::{Checked, Verifier};
use crate::backfill::{SyncContext, Synced, sync_repo};
use crate::directory::Directory;
use crate::event::Event;
use crate::fold::{self, Classified, Item, error_chain};

/// Frames in the verify stage at once. The CPU part is bounded by cores; the window is wide
/// so DID document fetches (network, on a cache miss) overlap instead of stalling the stream.
pub(super) const VERIFY_WINDOW: usize = 256;
/// Resyncs (`getRepo` + apply) running at once: each holds a whole repo in memory.
const RESYNC_CONCURRENCY: usize = 4;
/// First delay of a repo's resync after one that failed or did not settle it; doubles each
/// time up to [`RESYNC_RETRY_MAX`].
const RESYNC_RETRY_MIN: Duration = Duration::from_secs(5);
/// Longest retry delay: a PDS down for hours is asked a few times an hour.
const RESYNC_RETRY_MAX: Duration = Duration::from_secs(600);
/// How often repos whose backoff passed are looked for.
const RETRY_TICK: Duration = Duration::from_secs(1);
/// `#identity` refreshes waiting for the refresher. When full, a refresh is dropped: the
/// next signature failure refreshes that document anyway.
const REFRESH_CAPACITY: usize = 1024;

/// What the driver needs besides its channels.
pub(super) struct Context {
    /// DID documents.
    pub directory: Directory,
    /// Our namespace.
    pub namespace: Arc<Namespace>,
    /// What resyncs use (`getRepo`, the view).
    pub sync: SyncContext,
    /// CPU workers of the verify stage.
    pub workers: usize,
}

/// Runs until the reader closes the frame channel, the writer goes away, or `shutdown`.
pub(super) async fn run(
    context: Context,
    mut chain: Chain,
    frames: mpsc::Receiver<Input>,
    events: mpsc::Sender<Classified>,
    committed: watch::Receiver<Option<i64>>,
    shutdown: CancellationToken,
) {
    let verifier = Verifier::new(
        context.directory.clone(),
        Arc::clone(&context.namespace),
        context.workers,
    );
    let (refresh_tx, refresh_rx) = mpsc::channel(REFRESH_CAPACITY);
    let refresher = tokio::spawn(refresh_identities(
        context.directory.clone(),
        refresh_rx,
        shutdown.clone(),
    ));
    let mut resyncs = Resyncs::new(Arc::new(context.sync), chain.resyncing(), committed);
    let inputs = futures_util::stream::unfold(frames, |mut frames| async move {
        frames.recv().await.map(|input| (input, frames))
    });
    let checked = inputs
        .map(|input| verifier.check(input))
        .buffered(VERIFY_WINDOW);
    let mut checked = std::pin::pin!(checked);
    let mut tick = tokio::time::interval(RETRY_TICK);
    let mut actions = Vec::new();
    resyncs.start();
    'run: loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            Some(joined) = resyncs.running.join_next() => {
                let now = now_us();
                match joined {
                    Ok((did, Ok(synced))) => {
                        tracing::info!(%did, rev = %synced.rev, records = synced.records,
                                       "repo resynced");
                        resyncs.finished(&did);
                        chain.resynced(&did, synced.rev, synced.data_cid, now, &mut actions);
                    }
                    Ok((did, Err(e))) => {
                        let reason = format!("resync failed: {e}");
                        resyncs.finished(&did);
                        let retry_in = resyncs.queue(did.clone());
                        tracing::warn!(%did, %reason, ?retry_in, "resync failed");
                        chain.resync_failed(&did, reason, &mut actions);
                    }
                    Err(e) => {
                        // A resync task panicked: its DID is lost to this run; the repo stays
                        // desynchronized and is resynced at the next start.
                        tracing::error!(error = %e, "resync task failed");
                    }
                }
            }
            next = checked.next() => match next {
                None => break,
                Some(Checked::Done(classified)) => actions.push(Action::Emit(classified)),
                Some(Checked::Commit(commit)) => chain.commit(commit, now_us(), &mut actions),
                Some(Checked::Sync(sync)) => chain.sync(sync, &mut actions),
                Some(Checked::Identity(event)) => {
                    let tracked = chain.is_tracked(&event.did);
                    if refresh_tx.try_send((event.did.clone(), tracked)).is_err() {
                        tracing::debug!(did = %event.did, "identity refresh queue full");
                    }
                    let identity = Event::Identity {
                        did: event.did,
                        time_us: event.seq,
                        handle: event.handle,
                    };
                    let classified = fold::classify(&context.namespace, identity);
                    actions.push(Action::Emit(classified));
                }
            },
            _ = tick.tick() => resyncs.due(),
        }
        for action in actions.drain(..) {
            match action {
                Action::Resync(did) => {
                    let delay = resyncs.queue(did.clone());
                    if !delay.is_zero() {
                        tracing::info!(%did, ?delay, "resync again after a backoff");
                    }
                }
                Action::Emit(classified) => {
                    if let Item::RepoCommit(commit) = &classified.item {
                        resyncs.settled(&commit.advance.did);
                    }
                    resyncs.emitted = resyncs.emitted.max(classified.time_us);
                    tokio::select! {
                        _ = shutdown.cancelled() => break 'run,
                        sent = events.send(classified) => {
                            if sent.is_err() {
                                break 'run;
                            }
                        }
                    }
                }
            }
        }
        resyncs.start();
    }
    resyncs.running.abort_all();
    while resyncs.running.join_next().await.is_some() {}
    drop(refresh_tx);
    if let Err(e) = refresher.await {
        tracing::error!(error = %e, "identity refresher failed");
    }
}

/// Resyncs queued, running, and waiting to retry. A repo's resyncs back off (like failures)
/// until one of its commits applies after them: a host serving an old snapshot, or a repo
/// whose chain breaks again at once, is not asked for `getRepo` in a loop.
struct Resyncs {
    context: Arc<SyncContext>,
    /// The writer's committed cursor.
    committed: watch::Receiver<Option<i64>>,
    /// The greatest seq handed to the writer so far: a resync starts only once it is
    /// committed (see [`Resyncs::start`]).
    emitted: Option<i64>,
    queued: VecDeque<String>,
    /// Queued, waiting or running, so a repo is never resynced twice at once.
    pending: HashSet<String>,
    running: JoinSet<(String, Result<Synced, String>)>,
    /// Repos waiting for their backoff to pass.
    waiting: HashMap<String, Instant>,
    /// Resyncs started per repo since one of its commits last applied.
    streaks: HashMap<String, u32>,
}

impl Resyncs {
    fn new(
        context: Arc<SyncContext>,
        initial: Vec<String>,
        committed: watch::Receiver<Option<i64>>,
    ) -> Resyncs {
        let mut resyncs = Resyncs {
            context,
            committed,
            emitted: None,
            queued: VecDeque::new(),
            pending: HashSet::new(),
            running: JoinSet::new(),
            waiting: HashMap::new(),
            streaks: HashMap::new(),
        };
        for did in initial {
            resyncs.queue(did);
        }
        resyncs
    }

    /// Queues a resync: now, or after a backoff if the repo's last resync did not settle it.
    /// Returns the delay.
    fn queue(&mut self, did: String) -> Duration {
        if !self.pending.insert(did.clone()) {
            return Duration::ZERO;
        }
        let delay = backoff(self.streaks.get(&did).copied().unwrap_or(0));
        if delay.is_zero() {
            self.queued.push_back(did);
        } else {
            self.waiting.insert(did, Instant::now() + delay);
        }
        delay
    }

    /// Starts queued resyncs up to the concurrency bound.
    fn start(&mut self) {
        while self.running.len() < RESYNC_CONCURRENCY {
            let Some(did) = self.queued.pop_front() else {
                return;
            };
            *self.streaks.entry(did.clone()).or_default() += 1;
            let context = Arc::clone(&self.context);
            let mut committed = self.committed.clone();
            let barrier = self.emitted;
            self.running.spawn(async move {
                // Everything handed to the writer before this resync must be in the view
                // first: the snapshot deletes the repo's records it no longer has, and a create
                // still in the writer's channel would land after it and resurrect a record the
                // repo has since deleted (the snapshot cannot tombstone a URI it never saw).
                if let Some(barrier) = barrier
                    && committed
                        .wait_for(|c| c.is_some_and(|c| c >= barrier))
                        .await
                        .is_err()
                {
                    return (did, Err("the writer stopped before the resync".to_owned()));
                }
                let result = match Did::new(&did) {
                    Ok(parsed) => sync_repo(&context, &parsed)
                        .await
                        .map_err(|e| error_chain(&e)),
                    Err(e) => Err(format!("invalid did: {e}")),
                };
                (did, result)
            });
        }
    }

    fn finished(&mut self, did: &str) {
        self.pending.remove(did);
    }

    /// One of the repo's commits applied: its next resync may start at once.
    fn settled(&mut self, did: &str) {
        if !self.streaks.is_empty() {
            self.streaks.remove(did);
        }
    }

    /// Queues the repos whose backoff has passed.
    fn due(&mut self) {
        let now = Instant::now();
        let due: Vec<String> = self
            .waiting
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(did, _)| did.clone())
            .collect();
        for did in due {
            self.waiting.remove(&did);
            self.queued.push_back(did);
        }
    }
}

/// The wait before a repo's next resync, after `streak` resyncs that did not settle it.
fn backoff(streak: u32) -> Duration {
    if streak == 0 {
        return Duration::ZERO;
    }
    RESYNC_RETRY_MIN
        .saturating_mul(1u32 << streak.min(10).saturating_sub(1))
        .min(RESYNC_RETRY_MAX)
}

/// Refreshes DID documents named by `#identity` events: tracked repos' from the network (their
/// keys may have rotated), others only forgotten from the cache (cheap, no request).
async fn refresh_identities(
    directory: Directory,
    mut dids: mpsc::Receiver<(String, bool)>,
    shutdown: CancellationToken,
) {
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => return,
            next = dids.recv() => next,
        };
        let Some((did, tracked)) = next else { return };
        let Ok(did) = Did::new(&did) else { continue };
        if tracked {
            if let Err(e) = directory.refresh(&did).await {
                tracing::warn!(%did, error = %e, "identity refresh failed");
            }
        } else {
            directory.resolver().invalidate(&did).await;
        }
    }
}

/// Now, in unix µs.
fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resyncs_back_off_until_a_commit_applies() {
        let cases = [
            (0, Duration::ZERO),
            (1, RESYNC_RETRY_MIN),
            (2, RESYNC_RETRY_MIN * 2),
            (4, RESYNC_RETRY_MIN * 8),
            (8, RESYNC_RETRY_MAX),
            (u32::MAX, RESYNC_RETRY_MAX),
        ];
        for (streak, want) in cases {
            assert_eq!(backoff(streak), want, "streak {streak}");
        }
    }
}

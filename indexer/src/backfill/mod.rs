//! Backfill: repositories indexed from their `getRepo` snapshots.
//!
//! ```text
//! --all:  listReposByCollection per namespace collection (or listRepos, inactive left out)
//!           -> backfill_repo queue + backfill_discovery cursor, one transaction per page
//! queue -> at most `concurrency` sync_repo tasks -> backfill_repo done | failed (+attempts)
//! sync_repo: DID doc -> getRepo (capped) -> commit DID, rev, signature (key refreshed once)
//!   -> MST walk (every block hash-checked) -> classify each namespace record
//!   -> one transaction: rev-guarded writes, stale deletions, skips, repo_state
//! ```
//!
//! [`sync_repo`] is also the relay's resync of a desynchronized repo.

mod discover;
mod run;
mod sync;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::Duration;

use plyr_identity::{Did, IdentityError, Resolver, SyncClient};
use plyr_lexicons::Namespace;
use url::Url;

use crate::store::StoreError;

pub use run::backfill;
#[allow(
    unused_imports,
    reason = "SyncError and Synced are named by the relay's resync as it lands"
)]
pub(crate) use sync::{SyncContext, SyncError, Synced, sync_repo};

/// What to backfill.
#[derive(Debug, Clone)]
pub enum BackfillTarget {
    /// Every repo with namespace records that `host` lists (a relay, or a single PDS).
    All {
        /// An http(s) or ws(s) URL of the host.
        host: Url,
    },
    /// These repos, whatever their queue state.
    Dids(Vec<Did>),
}

/// How to backfill.
#[derive(Debug, Clone)]
pub struct BackfillConfig {
    /// Whose records are ours.
    pub namespace: Namespace,
    /// What to backfill.
    pub target: BackfillTarget,
    /// DID documents (signing keys, PDS endpoints).
    pub resolver: Resolver,
    /// `getRepo` and the listings, with their caps and timeouts.
    pub sync: SyncClient,
    /// Repos synced at once (at least 1).
    pub concurrency: usize,
    /// Attempts per repo across runs before it stays failed.
    pub max_attempts: u32,
}

/// Running counts, sent after every repo.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackfillProgress {
    /// Whether discovery is still listing repos.
    pub discovering: bool,
    /// Repos waiting (or retryable).
    pub queued: u64,
    /// Repos applied (this run and earlier ones).
    pub done: u64,
    /// Repos that failed (this run, and earlier ones out of attempts).
    pub failed: u64,
    /// Valid namespace records in the repos applied this run.
    pub records: u64,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackfillSummary {
    /// Repos applied in this run.
    pub done: u64,
    /// Repos that failed in this run.
    pub failed: u64,
    /// Failures by reason (`fetch`, `bad_signature`, `cid_mismatch`, ...).
    pub failures: BTreeMap<&'static str, u64>,
    /// Valid namespace records in the repos applied.
    pub records: u64,
    /// Listed repos left out as inactive.
    pub inactive: u64,
    /// Repos still queued or retryable after the run.
    pub remaining: u64,
    /// Whether shutdown stopped the run early.
    pub interrupted: bool,
    /// How long the run took.
    pub elapsed: Duration,
}

impl BackfillSummary {
    /// Failures by reason as `reason=count ...`.
    pub fn failure_summary(&self) -> String {
        run::failure_summary(&self.failures)
    }
}

/// Why a backfill run stopped.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    /// Postgres failed (the queue and cursors are saved: a rerun resumes).
    #[error("backfill store failed")]
    Store(#[from] StoreError),
    /// A host's listing failed after retries.
    #[error("listing the repos of {host}")]
    Discovery {
        /// The host.
        host: String,
        /// Why.
        #[source]
        source: IdentityError,
    },
    /// A repo sync task panicked.
    #[error("a repo sync task failed")]
    Worker(#[source] tokio::task::JoinError),
}

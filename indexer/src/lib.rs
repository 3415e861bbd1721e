//! Follows the network through Jetstream and folds fm.plyr.* records into the Postgres view
//! (`migrations/sql/0001_view.sql`) that the appview reads.
//!
//! Data flow, like mini-redis's bytes -> frame -> command -> apply:
//! `source` (websocket, zstd) -> `event` (bytes -> typed event) -> `fold::classify` (lexicon
//! validation -> typed `record` rows or a counted skip) -> bounded channel -> `writer` (batches)
//! -> `fold::plan` (ordered segments, one op per URI) -> `store` (every write, the skip counts
//! and the cursor in one transaction). Everything before `store` is pure.
//!
//! Beside the stream, never in it: [`resolve_handles`] verifies handles both ways (and, after an
//! `#identity` event, refreshes the stored DID document), and [`check_accounts`] confirms an
//! inactive `#account` status with the account's current PDS before anything is hidden or
//! purged (the batch only records the claim, in its transaction).
//!
//! The verified path ([`run_relay`], `relay`) reads `com.atproto.sync.subscribeRepos` instead
//! and checks every commit of a tracked repo per sync 1.1 (signature, MST inversion, rev chain)
//! before it reaches the same writer. **Tracking rule:** a DID is tracked once it publishes a
//! record in our namespace: a relay `#commit` with an op in one of its collections, or a
//! backfill that finds such records. Tracked means it has a `repo_state` row. Commits of
//! untracked DIDs with no namespace op are dropped before any block is read; every commit of a
//! tracked DID, whatever its collections, is verified, so its chain (rev, `prevData`) stays
//! continuous. A DID that becomes tracked from the stream is resynced from `getRepo` so its
//! earlier records are indexed too.
//!
//! ```no_run
//! # async fn example(pool: sqlx::PgPool) -> Result<(), plyr_indexer::IndexerError> {
//! use plyr_indexer::{JetstreamConfig, run};
//! let config = JetstreamConfig {
//!     url: "wss://jetstream2.us-east.bsky.network/subscribe".parse().expect("static url"),
//!     namespace: plyr_lexicons::Namespace::new("fm.plyr").expect("static namespace"),
//!     compress: true,
//!     cursor_source: "jetstream".into(),
//! };
//! run(pool, config, tokio_util::sync::CancellationToken::new()).await
//! # }
//! ```

mod accounts;
mod backfill;
mod directory;
mod event;
mod fold;
mod fuzzing;
mod handles;
mod labels;
mod mirror;
mod record;
mod relay;
mod source;
mod store;
mod takedown;
mod websocket;
mod writer;

#[cfg(test)]
mod loopback;
/// Audio fixtures shared with the blobstore's tests.
#[cfg(test)]
#[path = "../../blobstore/tests/media_fixtures.rs"]
mod media_fixtures;
/// The blobstore's S3 harness (a real s3s-fs), for the mirror's store-outage test.
#[cfg(test)]
#[path = "../../blobstore/tests/harness.rs"]
#[allow(dead_code)]
mod s3_harness;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;

pub use accounts::check_accounts;
pub use backfill::{
    BackfillConfig, BackfillError, BackfillProgress, BackfillSummary, BackfillTarget, backfill,
};
pub use handles::resolve_handles;
pub use labels::{LabelerConfig, run_labeler};
pub use mirror::{Mirror, MirrorConfig, MirrorError, MirrorReport};
pub use relay::{RelayConfig, run_relay};
pub use takedown::{SubjectError, TakedownSubject, takedown};

#[doc(hidden)]
pub use fuzzing::{fuzz_jetstream_event, fuzz_label_frame};
#[doc(hidden)]
pub use relay::bench_verify_stage;
pub use source::JetstreamConfig;
pub use store::StoreError;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// Events buffered between the websocket reader and the writer: two full batches, so the
/// reader keeps decoding while a batch commits, and a slow database pushes back on the socket.
const CHANNEL_CAPACITY: usize = 2 * writer::MAX_BATCH;

/// How far before the committed cursor a reconnect resumes, in µs.
pub const REWIND_US: i64 = source::REWIND_US;

/// Why the indexer stopped.
#[derive(Debug, thiserror::Error)]
pub enum IndexerError {
    /// Postgres refused a write for a reason retrying cannot fix.
    #[error("indexer store failed")]
    Store(#[from] StoreError),
    /// The websocket reader task panicked or was aborted.
    #[error("websocket reader task failed")]
    Reader(#[source] tokio::task::JoinError),
    /// The relay's verify-and-chain task panicked or was aborted.
    #[error("relay pipeline task failed")]
    Pipeline(#[source] tokio::task::JoinError),
}

/// Indexes Jetstream into `pool` until `shutdown` is cancelled, resuming from the cursor stored
/// under `config.cursor_source`. Reconnects forever; stops between batches, so each batch is
/// committed whole or not at all.
pub async fn run(
    pool: sqlx::PgPool,
    config: JetstreamConfig,
    shutdown: CancellationToken,
) -> Result<(), IndexerError> {
    let start = store::last_cursor(&pool, &config.cursor_source).await?;
    tracing::info!(source = %config.cursor_source, cursor = ?start, "indexer starting");
    let (committed_tx, committed_rx) = watch::channel(start);
    let (events_tx, events_rx) = mpsc::channel(CHANNEL_CAPACITY);
    // The reader stops with the writer (channel closed) or with shutdown.
    let reader_stop = shutdown.child_token();
    let cursor_source = config.cursor_source.clone();
    let reader = tokio::spawn(source::run(
        config,
        committed_rx,
        events_tx,
        reader_stop.clone(),
    ));
    let written = writer::run(pool, cursor_source, events_rx, committed_tx, shutdown).await;
    reader_stop.cancel();
    let read = reader.await;
    written?;
    read.map_err(IndexerError::Reader)
}

/// The cursor (Jetstream `time_us`) last committed for `source`, if any.
pub async fn last_cursor(pool: &sqlx::PgPool, source: &str) -> Result<Option<i64>, StoreError> {
    store::last_cursor(pool, source).await
}

//! The relay path: `com.atproto.sync.subscribeRepos` from a relay or PDS, every commit of a
//! tracked repo verified per sync 1.1 before anything is stored.
//!
//! Pipeline: `source` (websocket reader: frames, cursor, the cheap untracked-repo filter) ->
//! `verify` (parallel, bounded, output in stream order: DID document, signature, MST inversion,
//! lexicon validation) -> `chain` (sequential: per-repo rev/`since`/`prevData` checks, resyncs)
//! -> the writer channel shared with the Jetstream path (one transaction per batch).
//!
//! Cursor: stored under `relay:<host>` (`relay:<host>:<port>` when the URL names a port). The
//! reference PDS replays `seq > cursor`, so a restart resumes from the last processed seq. With
//! no stored cursor the stream starts at [`RelayConfig::start_cursor`] (`None`: live).

mod chain;
mod pipeline;
mod source;
mod verify;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use plyr_identity::{Resolver, SyncClient};
use plyr_lexicons::Namespace;
use sqlx::PgPool;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::backfill::SyncContext;
use crate::directory::Directory;
use crate::{CHANNEL_CAPACITY, IndexerError, store, websocket, writer};

/// Frames buffered between the websocket reader and the verify stage: enough to keep every
/// verify worker busy while the reader waits on the socket.
const FRAME_CAPACITY: usize = 1024;

/// Where to subscribe and what to index.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// The relay or PDS host, e.g. `wss://bsky.network` (`http(s)`/`ws(s)` accepted); the
    /// client appends `/xrpc/com.atproto.sync.subscribeRepos`.
    pub url: Url,
    /// The lexicon namespace to index (`fm.plyr`, ...).
    pub namespace: Namespace,
    /// The cursor to start from when none is stored: `None` starts live; `Some(0)` asks for the
    /// host's whole window (a single PDS in tests).
    pub start_cursor: Option<i64>,
}

impl RelayConfig {
    /// The `consumer_cursor.source` this relay's seq is stored under: `relay:<host>`, with
    /// `:<port>` when the URL names one (seqs are per host).
    pub fn cursor_source(&self) -> String {
        let host = self.url.host_str().unwrap_or_default();
        match self.url.port() {
            Some(port) => format!("relay:{host}:{port}"),
            None => format!("relay:{host}"),
        }
    }
}

/// Indexes the relay into `pool` until `shutdown` is cancelled, resolving identities with
/// `resolver` (documents persisted in `did_doc`) and resyncing broken repos from their PDS with
/// `sync_client`. Reconnects forever; stops between batches.
///
/// A host that keeps answering `FutureCursor` has started its seqs over (a reset, or another
/// host behind the same name): the stored cursor is forgotten, every tracked repo is marked
/// desynchronized, and the pipeline starts again from [`RelayConfig::start_cursor`], resyncing
/// each repo from `getRepo` so the commits the lost seqs carried are not missed.
pub async fn run_relay(
    pool: PgPool,
    config: RelayConfig,
    resolver: Resolver,
    sync_client: SyncClient,
    shutdown: CancellationToken,
) -> Result<(), IndexerError> {
    let cursor_source = config.cursor_source();
    loop {
        let stopped = run_once(
            &pool,
            &config,
            &cursor_source,
            resolver.clone(),
            sync_client.clone(),
            &shutdown,
        )
        .await?;
        if stopped == source::Stopped::Done || shutdown.is_cancelled() {
            return Ok(());
        }
        let restarted = store::restart_relay(
            &pool,
            &cursor_source,
            "relay seqs started over (FutureCursor)",
        )
        .await;
        match restarted {
            Ok(marked) => {
                tracing::warn!(source = %cursor_source, resync = marked,
                    "relay refused our cursor as a future one: starting over without it");
            }
            // The next run is refused again and tries this again.
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, "could not forget the relay cursor; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// One run of the pipeline, from the stored cursor until shutdown or a `FutureCursor` stop.
/// Everything the reader forwarded is committed before it returns.
async fn run_once(
    pool: &PgPool,
    config: &RelayConfig,
    cursor_source: &str,
    resolver: Resolver,
    sync_client: SyncClient,
    shutdown: &CancellationToken,
) -> Result<source::Stopped, IndexerError> {
    let stored = store::last_cursor(pool, cursor_source).await?;
    let start = stored.or(config.start_cursor);
    let states = store::repo_states(pool).await?;
    tracing::info!(source = %cursor_source, cursor = ?start, tracked = states.len(),
                   "relay indexer starting");
    let directory = Directory::new(pool.clone(), resolver);
    let namespace = Arc::new(config.namespace.clone());
    let tracked = states.iter().map(|s| s.did.clone()).collect();

    // The writer reports committed cursors: resyncs wait for everything emitted before them
    // to be committed. The reader resumes from what it forwarded instead (everything
    // forwarded is processed unless the process dies).
    let (committed_tx, committed_rx) = watch::channel(stored);
    let (frames_tx, frames_rx) = mpsc::channel(FRAME_CAPACITY);
    let (events_tx, events_rx) = mpsc::channel(CHANNEL_CAPACITY);
    let stop = shutdown.child_token();
    let reader = tokio::spawn(source::run(
        source::ReaderConfig {
            url: config.url.clone(),
            namespace: Arc::clone(&namespace),
            start,
        },
        tracked,
        frames_tx,
        stop.clone(),
    ));
    let pipeline = tokio::spawn(pipeline::run(
        pipeline::Context {
            sync: SyncContext::new(
                pool.clone(),
                directory.clone(),
                config.namespace.clone(),
                sync_client,
            ),
            directory,
            namespace,
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
        },
        chain::Chain::new(states),
        frames_rx,
        events_tx,
        committed_rx,
        stop.clone(),
    ));
    // A reader that stops closes the frame channel; the pipeline then drains into the writer,
    // which commits the rest and returns when its channel closes.
    let written = writer::run(
        pool.clone(),
        cursor_source.to_owned(),
        events_rx,
        committed_tx,
        shutdown.clone(),
    )
    .await;
    stop.cancel();
    let read = reader.await;
    let piped = pipeline.await;
    written?;
    let stopped = read.map_err(IndexerError::Reader)?;
    piped.map_err(IndexerError::Pipeline)?;
    Ok(stopped)
}

/// Benchmarks only (`benches/relay.rs`), not a stable API: decodes `frames` (`#commit`s) and
/// runs them through the verify stage as the relay does (ordered window, `workers` CPU
/// workers, documents through the directory over `pool` and `resolver`). Returns how many
/// commits verified.
#[doc(hidden)]
pub async fn bench_verify_stage(
    pool: PgPool,
    resolver: Resolver,
    namespace: Namespace,
    frames: Vec<bytes::Bytes>,
    workers: usize,
) -> usize {
    use futures_util::StreamExt;
    let verifier =
        verify::Verifier::new(Directory::new(pool, resolver), Arc::new(namespace), workers);
    let inputs = frames.into_iter().filter_map(|frame| {
        let (seq, did) = match plyr_repo::decode_frame(&frame) {
            Ok(plyr_repo::Frame::Commit(event)) => (event.seq, event.repo),
            _ => return None,
        };
        Some(source::Input::Commit { seq, did, frame })
    });
    futures_util::stream::iter(inputs)
        .map(|input| verifier.check(input))
        .buffered(pipeline::VERIFY_WINDOW)
        .filter(|checked| std::future::ready(matches!(checked, verify::Checked::Commit(_))))
        .count()
        .await
}

/// The subscribeRepos URL of one connection attempt, from `cursor` when resuming.
pub(crate) fn subscribe_url(host: &Url, cursor: Option<i64>) -> Result<Url, String> {
    websocket::subscription_url(host, "com.atproto.sync.subscribeRepos", cursor)
}

#[cfg(test)]
mod url_tests {
    use super::*;

    #[test]
    fn builds_subscribe_urls() {
        let cases = [
            (
                "wss://bsky.network",
                None,
                "wss://bsky.network/xrpc/com.atproto.sync.subscribeRepos",
            ),
            (
                "https://bsky.network/",
                Some(42),
                "wss://bsky.network/xrpc/com.atproto.sync.subscribeRepos?cursor=42",
            ),
            (
                "http://127.0.0.1:2583",
                Some(0),
                "ws://127.0.0.1:2583/xrpc/com.atproto.sync.subscribeRepos?cursor=0",
            ),
            (
                "ws://host.example/base/?x=1",
                None,
                "ws://host.example/base/xrpc/com.atproto.sync.subscribeRepos",
            ),
        ];
        for (host, cursor, want) in cases {
            let host = Url::parse(host).expect("test url");
            assert_eq!(
                subscribe_url(&host, cursor).map(String::from),
                Ok(want.to_owned())
            );
        }
        let ftp = Url::parse("ftp://example.com").expect("test url");
        assert!(subscribe_url(&ftp, None).is_err_and(|e| e.contains("ftp")));
    }

    #[test]
    fn cursor_source_names_the_host() {
        let config = |url: &str| RelayConfig {
            url: Url::parse(url).expect("test url"),
            namespace: Namespace::new("fm.plyr").expect("namespace"),
            start_cursor: None,
        };
        assert_eq!(
            config("wss://bsky.network").cursor_source(),
            "relay:bsky.network"
        );
        assert_eq!(
            config("http://127.0.0.1:2583/").cursor_source(),
            "relay:127.0.0.1:2583"
        );
    }
}

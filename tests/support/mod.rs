//! Shared pieces of the end-to-end tests: the scripted Jetstream server, event builders and a
//! harness that runs the indexer and the XRPC server in-process against a fresh database.

#![allow(dead_code)]

pub mod appview;
pub mod events;
pub mod faults;
pub mod firehose;
pub mod jetstream;
pub mod pds;
pub mod plc;
pub mod relay;
pub mod scenario;

use std::time::Duration;

use serde_json::Value;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use appview::Appview;
use jetstream::{Frame, ScriptedJetstream};

/// How long a test waits for the indexer to catch up before failing.
pub const CATCH_UP: Duration = Duration::from_secs(20);

/// The channel on which the indexer announces each batch's changes to the server's cache.
const CHANGES: &str = "plyr_view_changed";

/// Indexer + XRPC server in this process, fed by a scripted Jetstream.
pub struct Harness {
    pub pool: PgPool,
    pub jetstream: ScriptedJetstream,
    appview: Appview,
    /// The harness's own subscription to [`CHANGES`], opened before the indexer started, so it
    /// sees the same notifications as the server's, in the same order; and how many so far.
    changes: tokio::sync::Mutex<(PgListener, u64)>,
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
}

impl Harness {
    /// Starts everything for `namespace` with `frames` already scripted.
    pub async fn start(pool: PgPool, namespace: &str, frames: Vec<Frame>) -> Self {
        let jetstream = ScriptedJetstream::start(frames).await;
        Self::start_with(pool, namespace, jetstream).await
    }

    /// Starts the indexer and server against an already configured scripted server.
    pub async fn start_with(pool: PgPool, namespace: &str, jetstream: ScriptedJetstream) -> Self {
        let shutdown = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let appview = Appview::start(pool.clone()).await;
        // Both subscriptions are in place before the indexer can announce anything.
        appview.cache.ready().await;
        let mut changes = PgListener::connect_with(&pool).await.expect("listener");
        changes.listen(CHANGES).await.expect("listen");
        let config = plyr_indexer::JetstreamConfig {
            url: jetstream.url().parse().expect("jetstream url"),
            namespace: plyr_lexicons::Namespace::new(namespace).expect("namespace"),
            compress: false,
            cursor_source: "jetstream".to_owned(),
        };
        {
            let pool = pool.clone();
            let shutdown = shutdown.clone();
            tasks.spawn(async move {
                plyr_indexer::run(pool, config, shutdown)
                    .await
                    .expect("indexer failed");
            });
        }
        Self {
            pool,
            jetstream,
            appview,
            changes: tokio::sync::Mutex::new((changes, 0)),
            shutdown,
            tasks,
        }
    }

    /// Calls `GET /xrpc/<nsid>?<params>` and returns the status and JSON body; a 200 body must
    /// match the method's lexicon output.
    pub async fn xrpc(&self, nsid: &str, params: &[(&str, &str)]) -> (u16, Value) {
        self.appview.xrpc(nsid, params).await
    }

    /// Calls `GET /xrpc/<nsid>?<params>` until `done` holds for the answer (at most
    /// [`CATCH_UP`]) and returns the last answer. The server's view cache applies a batch's
    /// changes when the batch's notification arrives, a moment after the commit that
    /// [`Harness::wait_for_cursor`] sees: a read right after it may still be served the entry
    /// the change replaces.
    pub async fn xrpc_until(
        &self,
        nsid: &str,
        params: &[(&str, &str)],
        done: impl Fn(u16, &Value) -> bool,
    ) -> (u16, Value) {
        let deadline = tokio::time::Instant::now() + CATCH_UP;
        loop {
            let (status, body) = self.xrpc(nsid, params).await;
            if done(status, &body) || tokio::time::Instant::now() >= deadline {
                return (status, body);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the persisted cursor reaches `time_us` and the server's cache has applied
    /// every change committed with it: reads after this see the indexer's writes.
    pub async fn wait_for_cursor(&self, time_us: i64) {
        wait_for_cursor(&self.pool, time_us).await;
        self.settle().await;
    }

    /// Waits until the server's view cache has applied every change notification committed so
    /// far. Notifications reach every listener in commit order, so the harness sends a fence of
    /// its own (an empty change set, which drops nothing), counts what its subscription
    /// receives up to the fence, and waits for the cache to have applied as many.
    pub async fn settle(&self) {
        let mut changes = self.changes.lock().await;
        let (listener, seen) = &mut *changes;
        let fence = format!(r#"{{"fence":{}}}"#, *seen + 1);
        sqlx::query("select pg_notify($1, $2)")
            .bind(CHANGES)
            .bind(&fence)
            .execute(&self.pool)
            .await
            .expect("send fence");
        let counted = async {
            loop {
                let note = listener.recv().await.expect("change notification");
                *seen += 1;
                if note.payload() == fence {
                    return;
                }
            }
        };
        tokio::time::timeout(CATCH_UP, counted)
            .await
            .expect("fence not received");
        tokio::time::timeout(CATCH_UP, self.appview.cache.applied(*seen))
            .await
            .expect("view cache did not apply the changes");
    }

    /// How many times the indexer skipped an event for `reason`.
    pub async fn skips(&self, reason: &str) -> i64 {
        skips(&self.pool, reason).await
    }

    /// Cancels both parts and waits for them.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        while let Some(joined) = self.tasks.join_next().await {
            joined.expect("task panicked");
        }
        self.appview.stop().await;
    }
}

/// The Jetstream cursor the indexer last committed.
pub async fn last_cursor(pool: &PgPool) -> Option<i64> {
    plyr_indexer::last_cursor(pool, "jetstream")
        .await
        .expect("read cursor")
}

/// Polls the persisted cursor until it reaches `time_us` (bounded by [`CATCH_UP`]).
pub async fn wait_for_cursor(pool: &PgPool, time_us: i64) {
    let deadline = tokio::time::Instant::now() + CATCH_UP;
    loop {
        let cursor = last_cursor(pool).await;
        if cursor.is_some_and(|c| c >= time_us) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "indexer did not reach cursor {time_us} (at {cursor:?})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How many times the indexer skipped an event for `reason`.
pub async fn skips(pool: &PgPool, reason: &str) -> i64 {
    sqlx::query_scalar("select count from indexer_skip where reason = $1")
        .bind(reason)
        .fetch_optional(pool)
        .await
        .expect("read skips")
        .unwrap_or(0)
}

/// The URL of the database behind `pool`, for starting the binary against it.
pub fn database_url(pool: &PgPool) -> String {
    let options = pool.connect_options();
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let mut url = url::Url::parse(&base).expect("DATABASE_URL is a URL");
    url.set_path(options.get_database().expect("test database name"));
    url.to_string()
}

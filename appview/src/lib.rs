//! Serves the Postgres view of fm.plyr records over XRPC.
//!
//! Data flow: `GET /xrpc/<nsid>` -> [`router`] (`routes.rs`) -> a handler in the module named
//! after the lexicon noun (`track.rs`, `like.rs`, ...) which bounds its params (`params.rs`,
//! `cursor.rs`) -> one function per SQL query (`queries/`) -> lexicon views (`views.rs`). Every
//! failure becomes an `{"error","message"}` body (`error.rs`). The indexer writes the tables;
//! this crate only reads them, and never serves content of inactive actors. Beside XRPC,
//! `web/` answers the plyr.fm web client's REST API (upstream's paths, JSON and errors) from the
//! same queries, so the unchanged client runs against this index.
//!
//! ```no_run
//! # async fn run(pool: sqlx::PgPool) -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! plyr_appview_xrpc::serve(listener, plyr_appview_xrpc::AppState::new(pool), shutdown).await
//! # }
//! ```

mod actor;
mod auth;
mod blob;
mod cache;
mod comment;
mod cursor;
mod docs;
mod error;
mod feed;
mod fuzzing;
mod gc;
mod health;
mod http;
mod label;
mod like;
mod list;
mod metrics;
mod notify;
mod params;
mod queries;
mod ratelimit;
mod routes;
mod search;
mod track;
mod transcode;
mod ttl;
mod views;
mod web;
mod well_known;

pub use auth::{Authenticated, Authenticator, Viewer};
pub use blob::BlobService;
pub use cache::ViewCache;
#[doc(hidden)]
pub use fuzzing::{fuzz_cursor, fuzz_xrpc_params};
pub use gc::{GcConfig, GcError, GcReport, collect_garbage, run_gc};
pub use http::HttpCacheConfig;
pub use metrics::{Metrics, MetricsError};
pub use notify::follow_changes;
pub use ratelimit::RateLimitConfig;
pub use routes::router;
pub use transcode::{TranscodeReport, run_transcoder, transcode_pending};
pub use web::WebConfig;
pub use well_known::{SERVICE_ID, ServiceIdentity};

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::FromRef;
use axum::serve::ListenerExt as _;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What every handler can reach: the Postgres pool of the view and, when the service has a
/// DID, the service-auth verifier.
#[derive(Debug, Clone)]
pub struct AppState {
    db: PgPool,
    auth: Option<Authenticator>,
    service: Option<ServiceIdentity>,
    web: Arc<web::WebState>,
    blobs: Option<BlobService>,
    cache: ViewCache,
    metrics: Option<Metrics>,
    rate_limit: Option<ratelimit::RateLimiter>,
    http_cache: HttpCacheConfig,
    trending: feed::TrendingCache,
}

impl AppState {
    /// Wraps a pool connected to a database migrated with `plyr_migrations::MIGRATOR`. Without
    /// [`AppState::with_authenticator`] every request is anonymous and tokens are refused.
    pub fn new(pool: PgPool) -> AppState {
        AppState {
            db: pool,
            auth: None,
            service: None,
            web: Arc::new(web::WebState::new(WebConfig::default())),
            blobs: None,
            cache: ViewCache::default(),
            metrics: Metrics::new()
                .inspect_err(|err| tracing::error!(error = %err, "request metrics disabled"))
                .ok(),
            rate_limit: None,
            http_cache: HttpCacheConfig::default(),
            trending: feed::TrendingCache::default(),
        }
    }

    /// Serves profiles and track views from `cache` while [`follow_changes`] keeps it
    /// current ([`serve`] runs it); [`AppState::new`] has a default-sized one.
    pub fn with_cache(mut self, cache: ViewCache) -> AppState {
        self.cache = cache;
        self
    }

    /// Limits every client (by IP) to `config`'s rate; without it nothing is limited.
    pub fn with_rate_limit(mut self, config: RateLimitConfig) -> AppState {
        self.rate_limit = Some(ratelimit::RateLimiter::new(config));
        self
    }

    /// How anonymous responses may be cached by clients and proxies.
    pub fn with_http_cache(mut self, config: HttpCacheConfig) -> AppState {
        self.http_cache = config;
        self
    }

    /// Serves `/blob/{cid}` and accepts `fm.plyr.blob.uploadBlob` (which also needs an
    /// authenticator); without it both answer that there is no blob store.
    pub fn with_blobs(mut self, blobs: BlobService) -> AppState {
        self.blobs = Some(blobs);
        self
    }

    /// Accepts service-auth tokens addressed to the authenticator's service DID.
    pub fn with_authenticator(mut self, auth: Authenticator) -> AppState {
        self.auth = Some(auth);
        self
    }

    /// Publishes the service's did:web document at `/.well-known/did.json`.
    pub fn with_service(mut self, identity: ServiceIdentity) -> AppState {
        self.service = Some(identity);
        self
    }

    /// Configures the web client's REST API (`web/`); [`AppState::new`] gives it the
    /// development [`WebConfig`].
    pub fn with_web(mut self, config: WebConfig) -> AppState {
        self.web = Arc::new(web::WebState::new(config));
        self
    }
}

impl FromRef<AppState> for Arc<web::WebState> {
    fn from_ref(state: &AppState) -> Arc<web::WebState> {
        state.web.clone()
    }
}

impl FromRef<AppState> for Option<ServiceIdentity> {
    fn from_ref(state: &AppState) -> Option<ServiceIdentity> {
        state.service.clone()
    }
}

impl FromRef<AppState> for Option<BlobService> {
    fn from_ref(state: &AppState) -> Option<BlobService> {
        state.blobs.clone()
    }
}

impl FromRef<AppState> for Option<Authenticator> {
    fn from_ref(state: &AppState) -> Option<Authenticator> {
        state.auth.clone()
    }
}

impl FromRef<AppState> for ViewCache {
    fn from_ref(state: &AppState) -> ViewCache {
        state.cache.clone()
    }
}

impl FromRef<AppState> for Option<Metrics> {
    fn from_ref(state: &AppState) -> Option<Metrics> {
        state.metrics.clone()
    }
}

impl FromRef<AppState> for feed::TrendingCache {
    fn from_ref(state: &AppState) -> feed::TrendingCache {
        state.trending.clone()
    }
}

impl FromRef<AppState> for PgPool {
    fn from_ref(state: &AppState) -> PgPool {
        state.db.clone()
    }
}

/// Serves [`router`] on `listener` until `shutdown` is cancelled, then lets in-flight requests
/// finish (each is bounded by the router's request timeout). Beside it, [`follow_changes`]
/// keeps the state's [`ViewCache`] current.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "serving xrpc");
    // Connect info: the web API's play counting keys anonymous listeners by address.
    let stop_follower = shutdown.child_token();
    // The follower gets a thread of its own: at full ingest speed it drops thousands of
    // entries a second, and on the request workers each notification held a worker for as
    // long as it took (a cooperative task does not yield between invalidations), queueing
    // the requests behind it. On its own thread the OS time-slices it against them instead.
    let follower = {
        let (db, cache, stop) = (state.db.clone(), state.cache.clone(), stop_follower.clone());
        std::thread::Builder::new()
            .name("plyr-cache-sync".into())
            .spawn(move || -> std::io::Result<()> {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(follow_changes(db, cache, stop));
                Ok(())
            })?
    };
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    // Answers go out as soon as they are written: with Nagle's algorithm on, a response
    // written in more than one piece can wait for the client's delayed ACK (tens of ms).
    let listener = listener.tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(error = %err, "could not set TCP_NODELAY");
        }
    });
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await;
    // The follower stops with the server, whatever ended it.
    stop_follower.cancel();
    match tokio::task::spawn_blocking(move || follower.join()).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(err))) => tracing::error!(error = %err, "change follower could not start"),
        Ok(Err(_)) | Err(_) => tracing::error!("change follower panicked"),
    }
    served?;
    tracing::info!(%addr, "xrpc server stopped");
    Ok(())
}

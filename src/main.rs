//! `plyr-appview`: the one binary. Reads flags (with env fallbacks), sets up logging, the
//! database and a shutdown token, and wires the indexer and the XRPC server together.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};
use url::Url;

/// The open AppView for plyr.fm: index fm.plyr.* records from the AT Protocol and serve them
/// over XRPC.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, env = "LOG_JSON", global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
// Parsed once at start-up: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Migrate the database, then index Jetstream and serve XRPC in one process.
    Run {
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        identity: IdentityArgs,
        #[command(flatten)]
        index: IndexArgs,
        #[command(flatten)]
        serve: ServeArgs,
        #[command(flatten)]
        mirror: MirrorArgs,
    },
    /// Apply the database migrations and exit.
    Migrate {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Index Jetstream into the database (no HTTP server).
    Index {
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        identity: IdentityArgs,
        #[command(flatten)]
        index: IndexArgs,
    },
    /// Serve XRPC from the database (no indexing).
    Serve {
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        identity: IdentityArgs,
        #[command(flatten)]
        serve: ServeArgs,
    },
    /// One blob garbage-collection pass: delete blobs no indexed track has referenced for the
    /// grace period (never one still referenced), then exit.
    Gc {
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        blob: BlobArgs,
    },
    /// Index repositories from their `getRepo` snapshots (verified), then exit. Resumable:
    /// discovery cursors and the per-repo queue are saved as it goes.
    Backfill(BackfillArgs),
    /// Take down an actor, a record or a blob locally (hidden from every method, the web API
    /// and /blob/{cid}), or with --reverse restore it, then exit.
    Takedown(TakedownArgs),
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("subject").required(true).args(["actor", "record", "blob"])))]
struct TakedownArgs {
    #[command(flatten)]
    db: DbArgs,
    /// An account (and all its content), by DID.
    #[arg(long, value_name = "DID")]
    actor: Option<String>,
    /// One record, by AT-URI.
    #[arg(long, value_name = "AT-URI")]
    record: Option<String>,
    /// One blob, by CID.
    #[arg(long, value_name = "CID")]
    blob: Option<String>,
    /// Lift the takedown instead.
    #[arg(long)]
    reverse: bool,
}

#[derive(Args, Clone, Debug)]
struct DbArgs {
    /// Postgres URL; the database is created if missing.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/plyr_appview"
    )]
    database_url: String,
    /// Maximum connections in the pool.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    database_max_connections: u32,
}

#[derive(Args, Debug)]
struct IndexArgs {
    /// Jetstream websocket URL, including its path.
    #[arg(
        long,
        env = "JETSTREAM_URL",
        default_value = "wss://jetstream2.us-east.bsky.network/subscribe"
    )]
    jetstream_url: Url,
    /// Ask Jetstream for zstd-compressed frames (its v1 dictionary).
    #[arg(long, env = "JETSTREAM_COMPRESS")]
    jetstream_compress: bool,
    /// Record namespace to index: fm.plyr, fm.plyr.stg or fm.plyr.dev.
    #[arg(long, env = "PLYR_NAMESPACE", default_value = "fm.plyr")]
    namespace: String,
    /// Where to follow the network: `jetstream` (JSON, trusted as sent) or `relay` (the
    /// firehose, every commit's signature and MST proof checked).
    #[arg(long, env = "PLYR_SOURCE", value_enum, default_value_t = Source::Jetstream)]
    source: Source,
    /// Relay (or PDS) host for `--source relay`, http(s) or ws(s);
    /// `/xrpc/com.atproto.sync.subscribeRepos` is appended. Its seq is stored as `relay:<host>`.
    #[arg(long, env = "PLYR_RELAY_URL", default_value = "wss://bsky.network")]
    relay_url: Url,
    /// Relay seq to start from when none is stored (`0`: the host's whole window); live
    /// when unset.
    #[arg(long, env = "PLYR_RELAY_CURSOR")]
    relay_cursor: Option<i64>,
    /// A labeler to follow (repeatable, or comma-separated in the env): its labels arrive by
    /// `com.atproto.label.subscribeLabels` at the `#atproto_labeler` endpoint of its DID
    /// document, its seq stored as `labeler:<did>`; only labels signed with the document's
    /// `#atproto_label` key count. Its `!takedown`, `!suspend` and `!hide` labels hide content;
    /// its labels are hydrated on views.
    #[arg(
        long = "labeler",
        env = "PLYR_LABELERS",
        value_delimiter = ',',
        value_name = "DID"
    )]
    labelers: Vec<String>,
}

/// The network source of `run` and `index`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    /// Jetstream v1 JSON.
    Jetstream,
    /// `com.atproto.sync.subscribeRepos`, verified per sync 1.1.
    Relay,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["all", "did"])))]
struct BackfillArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Every repo with records of the namespace that --relay-url lists
    /// (listReposByCollection, or listRepos on a host without it).
    #[arg(long)]
    all: bool,
    /// This repo (repeatable), whether or not it was done before.
    #[arg(long, value_name = "DID")]
    did: Vec<String>,
    /// Host that lists the repos for --all: a relay or a PDS, http(s) or ws(s).
    #[arg(long, env = "PLYR_RELAY_URL", default_value = "wss://bsky.network")]
    relay_url: Url,
    /// Repos synced at once.
    #[arg(long, env = "BACKFILL_CONCURRENCY", default_value_t = 4)]
    concurrency: usize,
    /// Attempts per repo, across runs, before it stays failed.
    #[arg(long, env = "BACKFILL_MAX_ATTEMPTS", default_value_t = 3)]
    max_attempts: u32,
    /// Largest getRepo export accepted, in MiB.
    #[arg(long, env = "BACKFILL_MAX_REPO_MIB", default_value_t = 1024)]
    max_repo_mib: usize,
    /// Time allowed for one getRepo download, in seconds.
    #[arg(long, env = "BACKFILL_REPO_TIMEOUT_SECS", default_value_t = 120)]
    repo_timeout_secs: u64,
    /// Record namespace to index: fm.plyr, fm.plyr.stg or fm.plyr.dev.
    #[arg(long, env = "PLYR_NAMESPACE", default_value = "fm.plyr")]
    namespace: String,
    #[command(flatten)]
    identity: IdentityArgs,
}

/// How identities are resolved: repo signing keys, PDS endpoints, handles and the issuers of
/// service-auth tokens.
#[derive(Args, Debug)]
struct IdentityArgs {
    /// PLC directory used to resolve did:plc identities.
    #[arg(long, env = "PLC_URL", default_value = "https://plc.directory")]
    plc_url: Url,
    /// Let identity lookups and repo downloads reach loopback addresses (local PLC and PDS in
    /// tests). Private ranges stay refused.
    #[arg(long, env = "ALLOW_LOOPBACK")]
    allow_loopback: bool,
}

impl IdentityArgs {
    /// One resolver per process: its clones share caches and rate limits.
    fn resolver(&self) -> Result<plyr_identity::Resolver> {
        plyr_identity::Resolver::new(plyr_identity::ResolverConfig {
            plc_url: self.plc_url.clone(),
            allow_loopback: self.allow_loopback,
            ..plyr_identity::ResolverConfig::default()
        })
        .context("building the identity resolver")
    }
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Address the XRPC server listens on.
    #[arg(long, env = "BIND", default_value = "127.0.0.1:2584")]
    bind: SocketAddr,
    /// This service's DID (`did:web:<host>`): the audience of the service-auth tokens it
    /// accepts (viewer state, uploads) and the id of the document at /.well-known/did.json.
    /// Without it every request is anonymous.
    #[arg(long, env = "SERVICE_DID")]
    service_did: Option<String>,
    /// Origins the web client's REST API answers with credentialed CORS: `scheme://host[:port]`,
    /// `scheme://host:*` (any port), `https://*` (any HTTPS origin) or `null`; comma-separated.
    #[arg(
        long,
        env = "WEB_ORIGINS",
        value_delimiter = ',',
        default_value = "http://localhost:*,http://127.0.0.1:*,null"
    )]
    web_origins: Vec<String>,
    /// This server's URL as browsers reach it (absolute `/audio/...` links in the REST API).
    #[arg(long, env = "PUBLIC_URL", default_value = "http://127.0.0.1:2584")]
    public_url: String,
    /// The web client's URL (oEmbed iframes and links).
    #[arg(long, env = "FRONTEND_URL", default_value = "https://plyr.fm")]
    frontend_url: String,
    /// Hosts a track's `audioUrl` may be redirected to (`host`, or `*.domain`); comma-separated.
    #[arg(
        long,
        env = "AUDIO_HOSTS",
        value_delimiter = ',',
        default_value = "*.plyr.fm,*.r2.dev"
    )]
    audio_hosts: Vec<String>,
    #[command(flatten)]
    blob: BlobArgs,
    /// Largest accepted upload in bytes (`fm.plyr.blob.uploadBlob`); lossless originals exceed
    /// the lexicon's 100 MiB PDS limit.
    #[arg(long, env = "MAX_UPLOAD_BYTES", default_value_t = plyr_blobstore::DEFAULT_MAX_UPLOAD_BYTES)]
    max_upload_bytes: u64,
    /// Answer `GET /blob/{cid}` with a redirect to a presigned URL valid this many seconds
    /// (S3 only); served directly when unset.
    #[arg(long, env = "BLOB_REDIRECT_SECS")]
    blob_redirect_secs: Option<u64>,
    /// The ffmpeg binary that makes web renditions of AIFF and ALAC uploads (a subprocess
    /// with a timeout and CPU/memory limits); `none` turns the transcoder off.
    #[arg(long, env = "FFMPEG", default_value = "ffmpeg")]
    ffmpeg: String,
    /// Minutes between background blob garbage-collection passes.
    #[arg(long, env = "GC_INTERVAL_MINUTES", default_value_t = 60)]
    gc_interval_minutes: u64,
    /// Requests one client IP may make per `--rate-limit-window-secs` (XRPC and web API);
    /// 0 turns rate limiting off.
    #[arg(long, env = "RATE_LIMIT", default_value_t = 3000)]
    rate_limit: u32,
    /// The rate limit's window in seconds.
    #[arg(long, env = "RATE_LIMIT_WINDOW_SECS", default_value_t = 300)]
    rate_limit_window_secs: u64,
    /// Key rate limits by the last `X-Forwarded-For` address. Only behind a reverse proxy that
    /// sets it, or clients choose their own key.
    #[arg(long, env = "TRUST_FORWARDED_FOR")]
    trust_forwarded_for: bool,
    /// `max-age` of anonymous responses' `Cache-Control`, in seconds.
    #[arg(long, env = "CACHE_MAX_AGE_SECS", default_value_t = 5)]
    cache_max_age_secs: u64,
    /// Profiles and track views kept in memory (each; invalidated by the indexer's notifies).
    #[arg(long, env = "VIEW_CACHE_CAPACITY", default_value_t = 100_000)]
    view_cache_capacity: u64,
}

/// The blob mirror that `run` keeps beside the indexer.
#[derive(Args, Debug)]
struct MirrorArgs {
    /// Do not mirror tracks' audio into the blob store.
    #[arg(long, env = "NO_MIRROR")]
    no_mirror: bool,
    /// Origins (`https://host[:port]`) whose `audioUrl`s are mirrored for tracks without an
    /// `audioBlob` (recorded as unverified); comma-separated, none by default.
    #[arg(long, env = "MIRROR_URL_ORIGINS", value_delimiter = ',')]
    mirror_url_origins: Vec<String>,
    /// Largest audio blob mirrored, in bytes (the lexicon's audioBlob cap by default).
    #[arg(long, env = "MIRROR_MAX_BYTES", default_value_t = 100 << 20)]
    mirror_max_bytes: u64,
}

/// Where blobs are stored, and how long unreferenced ones are kept.
#[derive(Args, Debug)]
struct BlobArgs {
    /// Folder of the local blob store (used unless --s3-bucket is set).
    #[arg(long, env = "BLOB_DIR", default_value = plyr_blobstore::DEFAULT_BLOB_DIR)]
    blob_dir: std::path::PathBuf,
    /// Store blobs in this S3/R2 bucket instead (credentials from AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY).
    #[arg(long, env = "S3_BUCKET")]
    s3_bucket: Option<String>,
    /// S3-compatible endpoint URL (R2, MinIO, ...); AWS when unset.
    #[arg(long, env = "S3_ENDPOINT")]
    s3_endpoint: Option<String>,
    /// S3 region (`auto` for R2).
    #[arg(long, env = "S3_REGION", default_value = "us-east-1")]
    s3_region: String,
    /// Hours a blob must have been unreferenced (and not re-uploaded) before GC deletes it.
    #[arg(long, env = "GC_GRACE_HOURS", default_value_t = 24)]
    gc_grace_hours: u64,
}

impl BlobArgs {
    /// The configured store: the S3 bucket, or else the local folder (created if missing).
    async fn open(&self) -> Result<plyr_blobstore::BlobStore> {
        let Some(bucket) = &self.s3_bucket else {
            let backend = plyr_blobstore::FsBackend::open(&self.blob_dir)
                .await
                .with_context(|| format!("opening --blob-dir {}", self.blob_dir.display()))?;
            return Ok(plyr_blobstore::BlobStore::new(backend));
        };
        let key =
            std::env::var("AWS_ACCESS_KEY_ID").context("--s3-bucket needs AWS_ACCESS_KEY_ID")?;
        let secret = std::env::var("AWS_SECRET_ACCESS_KEY")
            .context("--s3-bucket needs AWS_SECRET_ACCESS_KEY")?;
        let mut config = plyr_blobstore::S3Config::new(bucket, key, secret);
        config.endpoint.clone_from(&self.s3_endpoint);
        config.region.clone_from(&self.s3_region);
        let backend = plyr_blobstore::S3Backend::new(config).context("configuring the S3 store")?;
        Ok(plyr_blobstore::BlobStore::new(backend))
    }

    fn grace(&self) -> Duration {
        Duration::from_secs(self.gc_grace_hours.saturating_mul(3600))
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_json);
    // tokio-tungstenite's rustls connector uses the process-wide provider.
    if rustls::crypto::ring::default_provider()
        .install_default()
        .is_err()
    {
        error!("a rustls crypto provider was already installed");
    }
    match run(cli.command).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            error!(error = format!("{err:#}"), "exiting on error");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn run(command: Command) -> Result<()> {
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone());
    match command {
        Command::Migrate { db } => {
            let pool = connect(&db, "migrate").await?;
            migrate(&pool).await
        }
        Command::Run {
            db,
            identity,
            index,
            serve,
            mirror,
        } => {
            let pool = connect(&db, "server").await?;
            migrate(&pool).await?;
            hint_autogroup(&db);
            hint_autovacuum(&pool).await;
            let resolver = identity.resolver()?;
            let mirror_store = if mirror.no_mirror {
                None
            } else {
                Some(serve.blob.open().await?)
            };
            // The indexer and the mirror get a runtime of their own (own worker threads, own
            // connections): on shared workers a burst of ingest work queued requests behind
            // it, and the read p99 under full-speed ingest was 4x that of `serve` and `index`
            // as two processes (`cargo bench --bench load`).
            let background = Background::new()?;
            let index_pool = {
                let db = db.clone();
                background
                    .spawn(async move { connect(&db, "indexer").await })
                    .await
                    .context("connecting the indexer")??
            };
            let mut index_tasks = JoinSet::new();
            {
                // Spawns below land on `background`.
                let _entered = background.enter();
                spawn_indexer(
                    &mut index_tasks,
                    index_pool.clone(),
                    index,
                    &identity,
                    resolver.clone(),
                    shutdown.clone(),
                )?;
                if let Some(store) = mirror_store {
                    let config = plyr_indexer::MirrorConfig {
                        max_bytes: mirror.mirror_max_bytes,
                        url_origins: mirror.mirror_url_origins,
                        ..plyr_indexer::MirrorConfig::default()
                    };
                    let sync = plyr_identity::SyncClient::new(plyr_identity::SyncConfig {
                        allow_loopback: identity.allow_loopback,
                        ..plyr_identity::SyncConfig::default()
                    })
                    .context("building the mirror's sync client")?;
                    let mirror = plyr_indexer::Mirror::new(
                        index_pool,
                        store,
                        resolver.clone(),
                        sync,
                        config,
                    );
                    let stop = shutdown.clone();
                    index_tasks.spawn(async move {
                        mirror.run(stop).await;
                        Ok(())
                    });
                }
            }
            let indexer = background.spawn(supervise(index_tasks, shutdown.clone()));
            let mut tasks = JoinSet::new();
            tasks.spawn(async move { indexer.await.context("the indexer's runtime")? });
            spawn_server(&mut tasks, pool, serve, resolver, shutdown.clone()).await?;
            supervise(tasks, shutdown).await
        }
        Command::Index {
            db,
            identity,
            index,
        } => {
            let pool = connect(&db, "indexer").await?;
            migrate(&pool).await?;
            hint_autovacuum(&pool).await;
            let resolver = identity.resolver()?;
            let mut tasks = JoinSet::new();
            spawn_indexer(
                &mut tasks,
                pool,
                index,
                &identity,
                resolver,
                shutdown.clone(),
            )?;
            supervise(tasks, shutdown).await
        }
        Command::Backfill(args) => backfill(args, shutdown).await,
        Command::Takedown(args) => takedown(args).await,
        Command::Gc { db, blob } => {
            let pool = connect(&db, "gc").await?;
            migrate(&pool).await?;
            let store = blob.open().await?;
            let report = plyr_appview_xrpc::collect_garbage(&pool, &store, blob.grace())
                .await
                .context("blob garbage collection")?;
            info!(?report, "gc done");
            Ok(())
        }
        Command::Serve {
            db,
            identity,
            serve,
        } => {
            let pool = connect(&db, "server").await?;
            let resolver = identity.resolver()?;
            let mut tasks = JoinSet::new();
            spawn_server(&mut tasks, pool, serve, resolver, shutdown.clone()).await?;
            supervise(tasks, shutdown).await
        }
    }
}

/// Cancels the token on Ctrl-C or SIGTERM, so every part stops between batches.
fn spawn_signal_handler(shutdown: CancellationToken) {
    // Detached on purpose: it lives as long as the process and only cancels the token.
    drop(tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {},
            _ = term => {},
        }
        info!("shutdown requested");
        shutdown.cancel();
    }));
}

/// `run`'s second runtime, for the indexer and the mirror. Dropped (on any path out of `run`,
/// errors included) it shuts down without waiting: a runtime may not block in async code.
struct Background(Option<tokio::runtime::Runtime>);

impl Background {
    fn new() -> Result<Background> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .thread_name("plyr-indexer")
            .on_thread_start(lower_priority)
            .enable_all()
            .build()
            .context("building the indexer's runtime")?;
        Ok(Background(Some(runtime)))
    }
}

/// `run`'s indexer threads run under `SCHED_IDLE`: they get a core only when nothing else wants
/// it. Ingest speed is set by Postgres's writer backend, not by these threads (0.15 of a core at
/// full speed), so requests going first costs it little. `SCHED_IDLE` rather than
/// niceness 19 because the kernel counts a core running only `SCHED_IDLE` threads as idle when
/// it places a waking thread: a request's thread lands there at once instead of queueing behind
/// the writer backend on the other core (`cargo bench --bench load`, 1k req/s while ingesting,
/// three runs each: p99 2.02-2.73 -> 1.78-2.13 ms, ingest unchanged; at 5k req/s ingest gave up
/// 5-9%). Neither needs privilege. Where `SCHED_IDLE` is refused, niceness 19 is the fallback.
const INDEXER_NICENESS: i32 = 19;

/// Lowers the calling thread's CPU priority (Linux: per thread): `SCHED_IDLE`, else
/// [`INDEXER_NICENESS`].
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::{
            NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
            set_thread_priority_and_policy, thread_native_id,
        };
        let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        let Err(idle_err) =
            set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle)
        else {
            return;
        };
        let thread = rustix::thread::gettid();
        if let Err(err) = rustix::process::setpriority_process(Some(thread), INDEXER_NICENESS) {
            tracing::warn!(
                sched_idle = ?idle_err,
                niceness = %err,
                "could not lower an indexer thread's priority"
            );
        }
    }
}

impl std::ops::Deref for Background {
    type Target = tokio::runtime::Runtime;

    fn deref(&self) -> &Self::Target {
        // Only `drop` takes it out.
        self.0.as_ref().expect("runtime present until drop")
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Logs advice when Linux groups CPU time by session (autogroup, on by default) and Postgres
/// runs on this host. Each Postgres backend is a session of its own, so under full-speed ingest
/// the indexer's one writer backend gets as much CPU as this whole process: at 5k req/s on 2
/// cores the read p99 grew 3.6-7.3x over idle, against 1.1-2.0x with autogroup off (`cargo
/// bench --bench load`, BENCHMARKS.md).
fn hint_autogroup(db: &DbArgs) {
    let Ok(setting) = std::fs::read_to_string("/proc/sys/kernel/sched_autogroup_enabled") else {
        return;
    };
    if setting.trim() == "1" && postgres_is_local(&db.database_url) {
        info!(
            "Postgres shares this host and kernel.sched_autogroup_enabled is 1: each Postgres \
             backend gets a session's CPU share, as much as this whole process, so reads slow \
             down under full-speed ingest; `sysctl kernel.sched_autogroup_enabled=0` shares \
             CPU by thread (see BENCHMARKS.md)"
        );
    }
}

/// Warns when the server's autovacuum is off. The indexer updates rows in place (counters on
/// `track` and `actor`, `track_rank`), and without vacuum their dead versions pile up: after
/// 1.2 million events in `cargo bench --bench load`, 710k dead rows beside `track_rank`'s 196k
/// live ones (BENCHMARKS.md). Some test set-ups turn it off; a deployment should not.
async fn hint_autovacuum(pool: &PgPool) {
    let setting: Result<String, sqlx::Error> =
        sqlx::query_scalar("select current_setting('autovacuum')")
            .fetch_one(pool)
            .await;
    if setting.is_ok_and(|on| on == "off") {
        tracing::warn!(
            "Postgres runs with autovacuum = off: the indexer updates counters in place, and \
             their dead row versions pile up in tables and indexes; turn it on, or vacuum the \
             database on a schedule"
        );
    }
}

/// Whether the database URL points at this host: a loopback address or a Unix socket.
fn postgres_is_local(database_url: &str) -> bool {
    PgConnectOptions::from_str(database_url).is_ok_and(|options| {
        let host = options.get_host();
        host.starts_with('/') || matches!(host, "localhost" | "127.0.0.1" | "::1" | "[::1]")
    })
}

/// Connects to Postgres, creating the database first when it does not exist. `role` names the
/// pool's connections in `pg_stat_activity` (`plyr-appview <role>`, unless the URL sets an
/// `application_name`), so an operator can tell the indexer's writes from the server's reads.
async fn connect(db: &DbArgs, role: &str) -> Result<PgPool> {
    let mut options =
        PgConnectOptions::from_str(&db.database_url).context("parsing --database-url")?;
    if options.get_application_name().is_none() {
        options = options.application_name(&format!("plyr-appview {role}"));
    }
    let options = options
        // Every statement is prepared and cached per connection, and the keyset queries have
        // the same best plan for any parameters (the sort index, walked from the cursor). Left
        // on `auto`, Postgres re-plans them on every call (1.3 ms of planning for a 0.5 ms
        // getLatestTracks page, measured on the load bench's data); a generic plan is made once.
        .options([("plan_cache_mode", "force_generic_plan")]);
    if !Postgres::database_exists(&db.database_url)
        .await
        .context("checking whether the database exists")?
    {
        info!(database = options.get_database(), "creating database");
        Postgres::create_database(&db.database_url)
            .await
            .context("creating the database")?;
    }
    PgPoolOptions::new()
        .max_connections(db.database_max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .context("connecting to Postgres")
}

async fn migrate(pool: &PgPool) -> Result<()> {
    plyr_migrations::MIGRATOR
        .run(pool)
        .await
        .context("applying migrations")?;
    info!("database migrated");
    Ok(())
}

fn spawn_indexer(
    tasks: &mut JoinSet<Result<()>>,
    pool: PgPool,
    args: IndexArgs,
    identity: &IdentityArgs,
    resolver: plyr_identity::Resolver,
    shutdown: CancellationToken,
) -> Result<()> {
    let namespace = plyr_lexicons::Namespace::new(&args.namespace)
        .with_context(|| format!("invalid --namespace {:?}", args.namespace))?;
    let relay = match args.source {
        Source::Jetstream => None,
        Source::Relay => {
            let client = plyr_identity::SyncClient::new(plyr_identity::SyncConfig {
                allow_loopback: identity.allow_loopback,
                ..plyr_identity::SyncConfig::default()
            })
            .context("building the repo sync client")?;
            let config = plyr_indexer::RelayConfig {
                url: args.relay_url,
                namespace: namespace.clone(),
                start_cursor: args.relay_cursor,
            };
            Some((config, client, resolver.clone()))
        }
    };
    let config = plyr_indexer::JetstreamConfig {
        url: args.jetstream_url,
        namespace,
        compress: args.jetstream_compress,
        cursor_source: "jetstream".to_owned(),
    };
    for labeler in &args.labelers {
        let did = plyr_identity::Did::new(labeler)
            .with_context(|| format!("invalid --labeler {labeler:?}"))?;
        let config = plyr_indexer::LabelerConfig {
            did,
            resolver: resolver.clone(),
        };
        let (pool, shutdown) = (pool.clone(), shutdown.clone());
        tasks.spawn(async move {
            plyr_indexer::run_labeler(pool, config, shutdown)
                .await
                .context("labeler subscription stopped")
        });
    }
    {
        // Confirms inactive #account statuses with the account's PDS, beside the stream.
        let pool = pool.clone();
        let resolver = resolver.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            plyr_indexer::check_accounts(pool, resolver, shutdown)
                .await
                .context("account checker stopped")
        });
    }
    {
        let pool = pool.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            plyr_indexer::resolve_handles(pool, resolver, shutdown)
                .await
                .context("handle resolver stopped")
        });
    }
    tasks.spawn(async move {
        match relay {
            Some((relay, client, resolver)) => {
                plyr_indexer::run_relay(pool, relay, resolver, client, shutdown).await
            }
            None => plyr_indexer::run(pool, config, shutdown).await,
        }
        .context("indexer stopped")
    });
    Ok(())
}

async fn spawn_server(
    tasks: &mut JoinSet<Result<()>>,
    pool: PgPool,
    args: ServeArgs,
    resolver: plyr_identity::Resolver,
    shutdown: CancellationToken,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("binding {}", args.bind))?;
    info!(addr = %listener.local_addr().context("reading bound address")?, "serving XRPC");
    let web = plyr_appview_xrpc::WebConfig {
        allowed_origins: args.web_origins,
        public_url: args.public_url.trim_end_matches('/').to_owned(),
        frontend_url: args.frontend_url.trim_end_matches('/').to_owned(),
        audio_hosts: args.audio_hosts,
        ..plyr_appview_xrpc::WebConfig::default()
    };
    let state_pool = pool.clone();
    let mut state = plyr_appview_xrpc::AppState::new(pool)
        .with_web(web)
        .with_cache(plyr_appview_xrpc::ViewCache::new(args.view_cache_capacity))
        .with_http_cache(plyr_appview_xrpc::HttpCacheConfig {
            max_age: Duration::from_secs(args.cache_max_age_secs),
        });
    if args.rate_limit > 0 {
        state = state.with_rate_limit(plyr_appview_xrpc::RateLimitConfig {
            limit: args.rate_limit,
            window: Duration::from_secs(args.rate_limit_window_secs),
            trust_forwarded: args.trust_forwarded_for,
        });
    }
    if let Some(did) = &args.service_did {
        let service_did = plyr_identity::Did::new(did)
            .with_context(|| format!("invalid --service-did {did:?}"))?;
        let verifier =
            plyr_identity::ServiceAuth::new(resolver, service_did, plyr_appview_xrpc::SERVICE_ID);
        let identity = plyr_appview_xrpc::ServiceIdentity::new(did, None)
            .map_err(anyhow::Error::msg)
            .context("--service-did")?;
        state = state
            .with_authenticator(plyr_appview_xrpc::Authenticator::new(verifier))
            .with_service(identity);
        info!(service_did = %did, "accepting service-auth tokens");
    }
    let store = args.blob.open().await?;
    let mut blobs = plyr_appview_xrpc::BlobService::new(store.clone(), args.max_upload_bytes);
    if let Some(secs) = args.blob_redirect_secs {
        blobs = blobs.with_redirects(Duration::from_secs(secs));
    }
    let state = state.with_blobs(blobs);
    let gc = plyr_appview_xrpc::GcConfig {
        grace: args.blob.grace(),
        interval: Duration::from_secs(args.gc_interval_minutes.max(1).saturating_mul(60)),
    };
    let gc_pool = state_pool.clone();
    let gc_shutdown = shutdown.clone();
    if args.ffmpeg != "none" {
        let limits = plyr_blobstore::TranscodeLimits {
            ffmpeg: args.ffmpeg.clone().into(),
            ..plyr_blobstore::TranscodeLimits::default()
        };
        let (db, store, stop) = (state_pool.clone(), store.clone(), shutdown.clone());
        tasks.spawn(async move {
            plyr_appview_xrpc::run_transcoder(db, store, limits, TRANSCODE_IDLE, stop).await;
            Ok(())
        });
    }
    tasks.spawn(async move {
        plyr_appview_xrpc::run_gc(gc_pool, store, gc, gc_shutdown).await;
        Ok(())
    });
    tasks.spawn(async move {
        plyr_appview_xrpc::serve(listener, state, shutdown)
            .await
            .context("XRPC server stopped")
    });
    Ok(())
}

/// Pause of the transcode worker when nothing is due: uploads needing one are rare.
const TRANSCODE_IDLE: Duration = Duration::from_secs(30);

/// How often progress is logged when stderr is not a terminal.
const BACKFILL_LOG_EVERY: Duration = Duration::from_secs(5);

/// `plyr-appview backfill`: migrate, run the backfill with a progress bar (or progress logs),
/// log the summary. Fails when a repo named with --did failed.
/// `plyr-appview takedown`: one row of the local takedown table written or deleted.
async fn takedown(args: TakedownArgs) -> Result<()> {
    use plyr_indexer::TakedownSubject;
    let subject = match (&args.actor, &args.record, &args.blob) {
        (Some(did), _, _) => TakedownSubject::actor(did),
        (_, Some(uri), _) => TakedownSubject::record(uri),
        (_, _, Some(cid)) => TakedownSubject::blob(cid),
        _ => anyhow::bail!("one of --actor, --record or --blob is required"),
    }?;
    let pool = connect(&args.db, "takedown").await?;
    migrate(&pool).await?;
    let changed = plyr_indexer::takedown(&pool, &subject, args.reverse)
        .await
        .context("writing the takedown")?;
    info!(?subject, reverse = args.reverse, changed, "takedown");
    Ok(())
}

async fn backfill(args: BackfillArgs, shutdown: CancellationToken) -> Result<()> {
    let namespace = plyr_lexicons::Namespace::new(&args.namespace)
        .with_context(|| format!("invalid --namespace {:?}", args.namespace))?;
    let target = if args.all {
        plyr_indexer::BackfillTarget::All {
            host: args.relay_url.clone(),
        }
    } else {
        let dids = args
            .did
            .iter()
            .map(|did| {
                plyr_identity::Did::new(did).with_context(|| format!("invalid --did {did:?}"))
            })
            .collect::<Result<Vec<_>>>()?;
        plyr_indexer::BackfillTarget::Dids(dids)
    };
    let named = !args.all;
    let resolver = args.identity.resolver()?;
    let sync = plyr_identity::SyncClient::new(plyr_identity::SyncConfig {
        allow_loopback: args.identity.allow_loopback,
        max_repo_bytes: args
            .max_repo_mib
            .checked_mul(1 << 20)
            .context("--max-repo-mib is too large")?,
        repo_timeout: Duration::from_secs(args.repo_timeout_secs),
        ..plyr_identity::SyncConfig::default()
    })
    .context("building the repo sync client")?;
    let pool = connect(&args.db, "backfill").await?;
    migrate(&pool).await?;
    let config = plyr_indexer::BackfillConfig {
        namespace,
        target,
        resolver,
        sync,
        concurrency: args.concurrency,
        max_attempts: args.max_attempts,
    };
    let (progress, watched) =
        tokio::sync::watch::channel(plyr_indexer::BackfillProgress::default());
    // Ends when the backfill drops its sender.
    let reporter = tokio::spawn(report_progress(watched));
    let outcome = plyr_indexer::backfill(pool, config, progress, shutdown).await;
    reporter.await.context("the progress reporter panicked")?;
    let summary = outcome.context("backfill failed")?;
    let seconds = summary.elapsed.as_secs_f64();
    info!(
        done = summary.done,
        failed = summary.failed,
        failures = %summary.failure_summary(),
        records = summary.records,
        inactive = summary.inactive,
        remaining = summary.remaining,
        interrupted = summary.interrupted,
        seconds,
        "backfill finished"
    );
    if named && summary.failed > 0 {
        anyhow::bail!("{} of the repos asked for failed", summary.failed);
    }
    Ok(())
}

/// Shows backfill progress: a bar when stderr is a terminal, else a structured log line every
/// [`BACKFILL_LOG_EVERY`].
async fn report_progress(
    mut watched: tokio::sync::watch::Receiver<plyr_indexer::BackfillProgress>,
) {
    use std::io::IsTerminal as _;
    let started = tokio::time::Instant::now();
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(0);
        let style = indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{wide_bar}] {pos}/{len} repos {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        bar.set_style(style);
        bar
    });
    let mut tick = tokio::time::interval(BACKFILL_LOG_EVERY);
    loop {
        tokio::select! {
            changed = watched.changed() => {
                if changed.is_err() {
                    break;
                }
                if let Some(bar) = &bar {
                    let p = watched.borrow_and_update().clone();
                    bar.set_length(p.done + p.failed + p.queued);
                    bar.set_position(p.done + p.failed);
                    let phase = if p.discovering { " (discovering)" } else { "" };
                    bar.set_message(format!("{} failed, {} records{phase}", p.failed, p.records));
                }
            }
            _ = tick.tick(), if bar.is_none() => {
                let p = watched.borrow().clone();
                let millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                info!(
                    discovering = p.discovering,
                    queued = p.queued,
                    done = p.done,
                    failed = p.failed,
                    records = p.records,
                    records_per_second = p.records.saturating_mul(1000) / millis.max(1),
                    "backfill progress"
                );
            }
        }
    }
    if let Some(bar) = bar {
        bar.finish();
    }
}

/// Waits for every part; the first one to stop (or fail) stops the rest.
async fn supervise(mut tasks: JoinSet<Result<()>>, shutdown: CancellationToken) -> Result<()> {
    let mut outcome = Ok(());
    while let Some(joined) = tasks.join_next().await {
        let unexpected = !shutdown.is_cancelled();
        shutdown.cancel();
        let result = joined
            .context("a task panicked")
            .and_then(|r| r)
            .and_then(|()| {
                if unexpected {
                    anyhow::bail!("a part stopped before shutdown was requested")
                }
                Ok(())
            });
        if let Err(err) = result {
            error!(error = format!("{err:#}"), "part stopped with an error");
            if outcome.is_ok() {
                outcome = Err(err);
            }
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::postgres_is_local;

    #[test]
    fn loopback_and_socket_urls_are_local_and_others_are_not() {
        for url in [
            "postgres://postgres@127.0.0.1:5432/plyr_appview",
            "postgres://postgres@localhost/plyr_appview",
            "postgres://postgres@[::1]:5432/plyr_appview",
            "postgres://postgres@%2Fvar%2Frun%2Fpostgresql/plyr_appview",
        ] {
            assert!(postgres_is_local(url), "{url}");
        }
        for url in [
            "postgres://postgres@db.example.com/plyr_appview",
            "postgres://postgres@10.0.0.5:5432/plyr_appview",
            "not a url",
        ] {
            assert!(!postgres_is_local(url), "{url}");
        }
    }
}

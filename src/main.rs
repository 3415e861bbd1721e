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
enum Command {
    /// Migrate the database, then index Jetstream and serve XRPC in one process.
    Run {
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        index: IndexArgs,
        #[command(flatten)]
        serve: ServeArgs,
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
        index: IndexArgs,
    },
    /// Serve XRPC from the database (no indexing).
    Serve {
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        serve: ServeArgs,
    },
}

#[derive(Args, Debug)]
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
    /// PLC directory used to resolve did:plc identities (handles are verified both ways).
    #[arg(long, env = "PLC_URL", default_value = "https://plc.directory")]
    plc_url: Url,
    /// Let identity lookups reach loopback addresses (local PLC and PDS in tests). Private
    /// ranges stay refused.
    #[arg(long, env = "ALLOW_LOOPBACK")]
    allow_loopback: bool,
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Address the XRPC server listens on.
    #[arg(long, env = "BIND", default_value = "127.0.0.1:2584")]
    bind: SocketAddr,
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
            let pool = connect(&db).await?;
            migrate(&pool).await
        }
        Command::Run { db, index, serve } => {
            let pool = connect(&db).await?;
            migrate(&pool).await?;
            let mut tasks = JoinSet::new();
            spawn_indexer(&mut tasks, pool.clone(), index, shutdown.clone())?;
            spawn_server(&mut tasks, pool, serve, shutdown.clone()).await?;
            supervise(tasks, shutdown).await
        }
        Command::Index { db, index } => {
            let pool = connect(&db).await?;
            migrate(&pool).await?;
            let mut tasks = JoinSet::new();
            spawn_indexer(&mut tasks, pool, index, shutdown.clone())?;
            supervise(tasks, shutdown).await
        }
        Command::Serve { db, serve } => {
            let pool = connect(&db).await?;
            let mut tasks = JoinSet::new();
            spawn_server(&mut tasks, pool, serve, shutdown.clone()).await?;
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

/// Connects to Postgres, creating the database first when it does not exist.
async fn connect(db: &DbArgs) -> Result<PgPool> {
    let options = PgConnectOptions::from_str(&db.database_url).context("parsing --database-url")?;
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
    shutdown: CancellationToken,
) -> Result<()> {
    let namespace = plyr_lexicons::Namespace::new(&args.namespace)
        .with_context(|| format!("invalid --namespace {:?}", args.namespace))?;
    let resolver = plyr_identity::Resolver::new(plyr_identity::ResolverConfig {
        plc_url: args.plc_url,
        allow_loopback: args.allow_loopback,
        ..plyr_identity::ResolverConfig::default()
    })
    .context("building the identity resolver")?;
    let config = plyr_indexer::JetstreamConfig {
        url: args.jetstream_url,
        namespace,
        compress: args.jetstream_compress,
        cursor_source: "jetstream".to_owned(),
    };
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
        plyr_indexer::run(pool, config, shutdown)
            .await
            .context("indexer stopped")
    });
    Ok(())
}

async fn spawn_server(
    tasks: &mut JoinSet<Result<()>>,
    pool: PgPool,
    args: ServeArgs,
    shutdown: CancellationToken,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("binding {}", args.bind))?;
    info!(addr = %listener.local_addr().context("reading bound address")?, "serving XRPC");
    let state = plyr_appview_xrpc::AppState::new(pool);
    tasks.spawn(async move {
        plyr_appview_xrpc::serve(listener, state, shutdown)
            .await
            .context("XRPC server stopped")
    });
    Ok(())
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

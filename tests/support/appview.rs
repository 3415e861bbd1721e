//! The XRPC server in this process over a test database, with a client that checks every
//! answer against its lexicon, and the real `plyr-appview` binary as a child process for the
//! subcommands driven through their flags (the relay indexer, backfill).

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::Value;
use sqlx::PgPool;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The XRPC server on 127.0.0.1:0.
pub struct Appview {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    http: reqwest::Client,
    /// The server's view cache: tests wait on it to see what the indexer announced applied.
    pub cache: plyr_appview_xrpc::ViewCache,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Appview {
    /// Serves `pool` (indexing happens elsewhere).
    pub async fn start(pool: PgPool) -> Appview {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let shutdown = CancellationToken::new();
        let cache = plyr_appview_xrpc::ViewCache::default();
        let task = {
            let state = plyr_appview_xrpc::AppState::new(pool).with_cache(cache.clone());
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                plyr_appview_xrpc::serve(listener, state, shutdown)
                    .await
                    .expect("server failed");
            })
        };
        Appview {
            base,
            http: reqwest::Client::new(),
            cache,
            shutdown,
            task,
        }
    }

    /// `GET /xrpc/<nsid>?<params>`: the status and JSON body. A 200 body must match the
    /// method's lexicon output.
    pub async fn xrpc(&self, nsid: &str, params: &[(&str, &str)]) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}/xrpc/{nsid}", self.base))
            .query(params)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let body = response.json::<Value>().await.expect("json body");
        if status == 200
            && let Err(e) = plyr_lexicons::Catalog::plyr().validate_output(nsid, &body)
        {
            panic!("{nsid} {params:?}: output does not match the lexicon: {e}\n{body:#}");
        }
        (status, body)
    }

    /// `xrpc` that must answer 200.
    pub async fn ok(&self, nsid: &str, params: &[(&str, &str)]) -> Value {
        let (status, body) = self.xrpc(nsid, params).await;
        assert_eq!(status, 200, "{nsid} {params:?}: {body}");
        body
    }

    /// Stops the server and waits for it.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.expect("server task");
    }
}

/// `plyr-appview <args>` with its logs on the test's stderr; killed if dropped.
pub fn spawn_binary(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_plyr-appview"))
        .args(args)
        .env("RUST_LOG", "warn")
        // Its log lines (stdout) show up beside a failing test's output.
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start plyr-appview")
}

/// Runs `plyr-appview <args>` to completion (bounded by `limit`) and requires success.
pub async fn run_binary(args: &[&str], limit: Duration) -> Result<()> {
    let mut child = spawn_binary(args);
    let status = tokio::time::timeout(limit, child.wait())
        .await
        .with_context(|| format!("plyr-appview {args:?} still running after {limit:?}"))?
        .context("wait for plyr-appview")?;
    ensure!(status.success(), "plyr-appview {args:?}: {status}");
    Ok(())
}

/// Polls `check` every 50 ms until it returns `Ok` or `limit` passes; then panics naming
/// `what` and the last `Err` (what was still missing).
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let last = match check().await {
            Ok(value) => return value,
            Err(last) => last,
        };
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}: {last}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

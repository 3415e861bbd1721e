//! The reference PDS and a PLC directory from npm (`tests/pds/start.mjs`), started per test on
//! loopback, and the few `com.atproto` calls the tests write records with.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// The PDS measured ~4.4 s to ready when alone; several tests start one at once on 2 cores.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// start.mjs gives the PDS 10 s to shut down before it exits anyway.
const STOP_TIMEOUT: Duration = Duration::from_secs(12);
/// Every account gets the same password: only this process talks to the PDS.
pub const PASSWORD: &str = "plyr-e2e-password";

/// The folder holding package.json and start.mjs.
fn pds_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/pds")
}

/// Node 22: `PLYR_TEST_NODE`, or the copy `tests/pds/install.sh` puts under tests/pds/.node.
fn node_binary() -> PathBuf {
    match std::env::var_os("PLYR_TEST_NODE") {
        Some(path) => PathBuf::from(path),
        None => pds_dir().join(".node/bin/node"),
    }
}

/// A running PDS + PLC; dropping it kills the process and removes its data.
pub struct Pds {
    /// The PDS base URL, `http://localhost:<port>`.
    pub url: String,
    /// The PLC directory base URL.
    pub plc: String,
    http: reqwest::Client,
    child: Child,
    /// Closing it tells start.mjs to shut down.
    stdin: Option<ChildStdin>,
    /// Held open so a late write by the process does not fail on a closed pipe.
    _stdout: BufReader<ChildStdout>,
    _data: tempfile::TempDir,
}

/// A logged-in account.
#[derive(Debug, Clone)]
pub struct Account {
    /// The account's DID (did:plc, registered at the local PLC).
    pub did: String,
    /// Its handle, e.g. `alice.test`.
    pub handle: String,
    access_jwt: String,
}

/// What a record write returned.
#[derive(Debug, Clone, Deserialize)]
pub struct Written {
    /// The record's AT-URI.
    pub uri: String,
    /// The record's CID.
    pub cid: String,
}

impl Written {
    /// The record key (last URI segment).
    pub fn rkey(&self) -> &str {
        self.uri.rsplit('/').next().unwrap_or_default()
    }

    /// A `com.atproto.repo.strongRef` to this record.
    pub fn strong_ref(&self) -> Value {
        json!({"uri": self.uri, "cid": self.cid})
    }
}

#[derive(Deserialize)]
struct Ready {
    pds: String,
    plc: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Session {
    did: String,
    handle: String,
    access_jwt: String,
}

impl Pds {
    /// Starts start.mjs with a fresh data folder and waits for its ready line.
    pub async fn start() -> Result<Pds> {
        let node = node_binary();
        ensure!(
            node.exists() && pds_dir().join("node_modules/@atproto/pds").exists(),
            "Node 22 or the PDS packages are missing ({}): run tests/pds/install.sh \
             (scripts/test does)",
            node.display()
        );
        let data = tempfile::tempdir().context("PDS data folder")?;
        let mut child = Command::new(&node)
            .arg(pds_dir().join("start.mjs"))
            .arg(data.path())
            .current_dir(pds_dir())
            .env("LOG_ENABLED", "false")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {}", node.display()))?;
        let stdin = child.stdin.take().context("PDS stdin")?;
        let mut stdout = BufReader::new(child.stdout.take().context("PDS stdout")?);
        let mut line = String::new();
        let read = tokio::time::timeout(READY_TIMEOUT, stdout.read_line(&mut line))
            .await
            .context("PDS not ready within 60 s")?
            .context("read the PDS ready line")?;
        if read == 0 {
            let status = child.wait().await.context("PDS exit status")?;
            bail!("start.mjs exited before it was ready ({status})");
        }
        let ready: Ready = serde_json::from_str(line.trim())
            .with_context(|| format!("PDS ready line {line:?}"))?;
        Ok(Pds {
            url: ready.pds,
            plc: ready.plc,
            http: reqwest::Client::new(),
            child,
            stdin: Some(stdin),
            _stdout: stdout,
            _data: data,
        })
    }

    /// Closes start.mjs's stdin and waits for it to shut both servers down (killed if slow).
    pub async fn stop(mut self) -> Result<()> {
        drop(self.stdin.take());
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(status) => {
                let status = status.context("wait for the PDS")?;
                ensure!(status.success(), "PDS exited with {status}");
            }
            Err(_) => {
                self.child.start_kill().context("kill the PDS")?;
                self.child.wait().await.context("reap the PDS")?;
            }
        }
        Ok(())
    }

    async fn call(&self, method: &str, token: Option<&str>, body: &Value) -> Result<Value> {
        let mut request = self
            .http
            .post(format!("{}/xrpc/{method}", self.url))
            .json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        read_json(method, request.send().await).await
    }

    /// `com.atproto.server.createAccount` for `handle` (which must end in `.test`).
    pub async fn create_account(&self, handle: &str) -> Result<Account> {
        let body = json!({
            "handle": handle,
            "email": format!("{handle}@example.com"),
            "password": PASSWORD,
        });
        let session: Session = serde_json::from_value(
            self.call("com.atproto.server.createAccount", None, &body)
                .await?,
        )
        .context("createAccount response")?;
        Ok(session.into())
    }

    /// `com.atproto.server.createSession` with the shared password.
    pub async fn create_session(&self, identifier: &str) -> Result<Account> {
        let body = json!({"identifier": identifier, "password": PASSWORD});
        let session: Session = serde_json::from_value(
            self.call("com.atproto.server.createSession", None, &body)
                .await?,
        )
        .context("createSession response")?;
        Ok(session.into())
    }

    /// `com.atproto.repo.createRecord` (the PDS picks a TID record key).
    pub async fn create_record(
        &self,
        account: &Account,
        collection: &str,
        record: Value,
    ) -> Result<Written> {
        let body = json!({"repo": account.did, "collection": collection, "record": record});
        let out = self
            .call(
                "com.atproto.repo.createRecord",
                Some(&account.access_jwt),
                &body,
            )
            .await?;
        serde_json::from_value(out).context("createRecord response")
    }

    /// `com.atproto.repo.putRecord`: creates or replaces the record at `rkey`.
    pub async fn put_record(
        &self,
        account: &Account,
        collection: &str,
        rkey: &str,
        record: Value,
    ) -> Result<Written> {
        let body = json!({
            "repo": account.did, "collection": collection, "rkey": rkey, "record": record,
        });
        let out = self
            .call(
                "com.atproto.repo.putRecord",
                Some(&account.access_jwt),
                &body,
            )
            .await?;
        serde_json::from_value(out).context("putRecord response")
    }

    /// `com.atproto.repo.deleteRecord`.
    pub async fn delete_record(
        &self,
        account: &Account,
        collection: &str,
        rkey: &str,
    ) -> Result<()> {
        let body = json!({"repo": account.did, "collection": collection, "rkey": rkey});
        self.call(
            "com.atproto.repo.deleteRecord",
            Some(&account.access_jwt),
            &body,
        )
        .await?;
        Ok(())
    }

    /// `com.atproto.repo.applyWrites`: several writes in one commit. `writes` are
    /// `com.atproto.repo.applyWrites#create|update|delete` objects.
    pub async fn apply_writes(
        &self,
        account: &Account,
        writes: Vec<Value>,
    ) -> Result<Vec<Written>> {
        let body = json!({"repo": account.did, "writes": writes});
        let out = self
            .call(
                "com.atproto.repo.applyWrites",
                Some(&account.access_jwt),
                &body,
            )
            .await?;
        let results = out
            .get("results")
            .and_then(Value::as_array)
            .context("applyWrites results")?;
        // Deletes have no uri/cid; the caller gets the created and updated records in order.
        Ok(results
            .iter()
            .filter_map(|r| serde_json::from_value::<Written>(r.clone()).ok())
            .collect())
    }

    /// `com.atproto.repo.uploadBlob`; returns the blob reference to put in a record.
    pub async fn upload_blob(
        &self,
        account: &Account,
        bytes: Vec<u8>,
        mime: &str,
    ) -> Result<Value> {
        let response = self
            .http
            .post(format!("{}/xrpc/com.atproto.repo.uploadBlob", self.url))
            .bearer_auth(&account.access_jwt)
            .header("content-type", mime)
            .body(bytes)
            .send()
            .await;
        let out = read_json("com.atproto.repo.uploadBlob", response).await?;
        out.get("blob").cloned().context("uploadBlob response")
    }

    /// `com.atproto.sync.getLatestCommit`: the repo's current (commit CID, rev).
    pub async fn latest_commit(&self, did: &str) -> Result<(String, String)> {
        let response = self
            .http
            .get(format!(
                "{}/xrpc/com.atproto.sync.getLatestCommit",
                self.url
            ))
            .query(&[("did", did)])
            .send()
            .await;
        let out = read_json("com.atproto.sync.getLatestCommit", response).await?;
        let cid = out["cid"].as_str().context("getLatestCommit cid")?;
        let rev = out["rev"].as_str().context("getLatestCommit rev")?;
        Ok((cid.to_owned(), rev.to_owned()))
    }
}

impl From<Session> for Account {
    fn from(s: Session) -> Self {
        Account {
            did: s.did,
            handle: s.handle,
            access_jwt: s.access_jwt,
        }
    }
}

async fn read_json(method: &str, response: reqwest::Result<reqwest::Response>) -> Result<Value> {
    let response = response.with_context(|| format!("{method}: request"))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .with_context(|| format!("{method}: body"))?;
    ensure!(status.is_success(), "{method}: {status}: {text}");
    serde_json::from_str(&text).with_context(|| format!("{method}: JSON body {text:?}"))
}

/// Waits until `pool`'s repo_state holds, for every DID, the PDS's latest rev with status
/// `synced`: the index has verified and applied every commit the PDS made. Fails at once if
/// `indexer` (the process filling `pool`) exits first.
pub async fn wait_until_synced(
    pool: &sqlx::PgPool,
    pds: &Pds,
    dids: &[&str],
    mut indexer: Option<&mut Child>,
    limit: Duration,
) {
    let mut latest = Vec::new();
    for did in dids {
        let (_, rev) = pds.latest_commit(did).await.expect("getLatestCommit");
        latest.push((did.to_string(), rev));
    }
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(status) = indexer.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
            panic!("the indexer exited ({status}) before it caught up");
        }
        let rows: Vec<(String, String, String)> =
            sqlx::query_as("select did, rev, status from repo_state")
                .fetch_all(pool)
                .await
                .expect("read repo_state");
        let done = latest.iter().all(|(did, rev)| {
            rows.iter()
                .any(|(d, r, s)| d == did && r == rev && s == "synced")
        });
        if done {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "repo_state not at the PDS's latest revs after {limit:?}: want {latest:?}, have {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

//! Test harness: builds a `BlobStore` over either backend (the S3 one against a real `s3s-fs`
//! child process), generates payloads and streams them in chunks.

use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt, stream};
use plyr_blobstore::{BlobRead, BlobStore, FsBackend, S3Backend, S3Config};
use tempfile::TempDir;

/// The install command, for the failure message when `s3s-fs` is missing.
pub const S3S_INSTALL: &str = "cargo install s3s-fs@0.14.1 --features binary --locked";
/// Bucket created on every test server.
pub const BUCKET: &str = "plyr-blobs";
/// Smallest part S3 allows, so multi-part paths run with small payloads.
pub const PART: usize = 5 << 20;
/// How long an s3s-fs server may take to answer its first request.
const STARTUP_DEADLINE: Duration = Duration::from_secs(15);
/// Pause between readiness probes (a retry interval, not a wait for start-up).
const PROBE_INTERVAL: Duration = Duration::from_millis(20);

/// Which backend a suite run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Fs,
    S3,
}

/// A store over a fresh, empty backend, and what is needed to inspect it.
pub struct Env {
    pub kind: Kind,
    pub store: BlobStore,
    pub fs: Option<FsBackend>,
    pub s3: Option<S3Backend>,
    pub server: Option<S3sServer>,
    _dir: TempDir,
}

impl Env {
    pub async fn new(kind: Kind) -> anyhow::Result<Self> {
        Self::with_config(kind, |_| {}).await
    }

    /// `tweak` adjusts the S3 settings (ignored for the folder backend).
    pub async fn with_config(
        kind: Kind,
        tweak: impl FnOnce(&mut S3Config),
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("temp dir")?;
        match kind {
            Kind::Fs => {
                let fs = FsBackend::open(dir.path().join("blobs")).await?;
                Ok(Self {
                    kind,
                    store: BlobStore::new(fs.clone()),
                    fs: Some(fs),
                    s3: None,
                    server: None,
                    _dir: dir,
                })
            }
            Kind::S3 => {
                let server = S3sServer::start(&dir.path().join("s3")).await?;
                let mut config = s3_config(&server);
                tweak(&mut config);
                let s3 = S3Backend::new(config)?;
                server.create_bucket(&s3).await?;
                Ok(Self {
                    kind,
                    store: BlobStore::new(s3.clone()),
                    fs: None,
                    s3: Some(s3),
                    server: Some(server),
                    _dir: dir,
                })
            }
        }
    }

    /// Another store on this env's S3 server, with `tweak`ed settings (a wrong secret, say).
    pub fn s3_store_with(&self, tweak: impl FnOnce(&mut S3Config)) -> anyhow::Result<BlobStore> {
        let mut config = s3_config(self.server.as_ref().context("not an S3 env")?);
        tweak(&mut config);
        Ok(BlobStore::new(S3Backend::new(config)?))
    }

    /// Stops the S3 server (an S3 env's), to test how an outage surfaces.
    pub async fn stop_s3(&mut self) -> anyhow::Result<()> {
        self.server.as_mut().context("not an S3 env")?.kill().await
    }

    /// Starts the S3 server again on the same port and folder, once it answers.
    pub async fn restart_s3(&mut self) -> anyhow::Result<()> {
        let s3 = self.s3.as_ref().context("not an S3 env")?;
        let server = self.server.as_mut().context("not an S3 env")?;
        server.restart(s3).await
    }

    /// Temp objects and unfinished uploads still present: must be empty after any put.
    pub async fn leftovers(&self) -> anyhow::Result<Vec<String>> {
        let mut found = Vec::new();
        if let Some(fs) = &self.fs {
            found.extend(file_names(fs.tmp_dir())?);
        }
        if let (Some(s3), Some(server)) = (&self.s3, &self.server) {
            let listed = s3
                .client()
                .list_objects_v2()
                .bucket(BUCKET)
                .prefix("tmp/")
                .send()
                .await
                .context("list tmp/")?;
            found.extend(
                listed
                    .contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
            // s3s-fs keeps parts of unfinished multipart uploads as `.upload_id-*` files.
            found.extend(
                file_names(&server.root)?
                    .into_iter()
                    .filter(|name| name.starts_with(".upload_id-")),
            );
        }
        Ok(found)
    }
}

fn file_names(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        let entry = entry?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    Ok(names)
}

/// The settings every S3 store of the tests starts from: `server`'s endpoint and credentials,
/// the test bucket, small parts.
fn s3_config(server: &S3sServer) -> S3Config {
    let mut config = S3Config::new(BUCKET, "AK", "SK");
    config.endpoint = Some(server.endpoint.clone());
    config.part_size = PART;
    config
}

/// A running `s3s-fs`, killed when dropped.
pub struct S3sServer {
    pub endpoint: String,
    pub root: PathBuf,
    child: tokio::process::Child,
}

impl S3sServer {
    pub async fn start(root: &Path) -> anyhow::Result<Self> {
        let Some(binary) = find_on_path("s3s-fs") else {
            bail!("s3s-fs is not on PATH; the S3 backend tests need it: {S3S_INSTALL}");
        };
        std::fs::create_dir_all(root)?;
        let port = free_port()?;
        let child = spawn_s3s_fs(&binary, port, root)?;
        Ok(Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            root: root.to_path_buf(),
            child,
        })
    }

    /// Creates the bucket, retrying until the server answers or the deadline passes.
    async fn create_bucket(&self, s3: &S3Backend) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + STARTUP_DEADLINE;
        loop {
            let attempt = s3.client().create_bucket().bucket(BUCKET).send().await;
            match attempt {
                Ok(_) => return Ok(()),
                Err(e) if tokio::time::Instant::now() >= deadline => {
                    return Err(anyhow::Error::new(e).context("s3s-fs did not become ready"));
                }
                Err(_) => tokio::time::sleep(PROBE_INTERVAL).await,
            }
        }
    }

    /// Whether the server process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A port that was free a moment ago (the kernel picks it; s3s-fs takes only a port number).
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// `len` deterministic pseudo-random bytes, different per `seed`.
pub fn payload(len: usize, seed: u64) -> Bytes {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        // xorshift64: cheap, and enough to defeat any compression or dedup in the stores.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

/// `data` as a body stream of `chunk`-byte pieces (zero-copy slices).
pub fn body(
    data: &Bytes,
    chunk: usize,
) -> impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static {
    let data = data.clone();
    let chunk = chunk.max(1);
    let count = data.len().div_ceil(chunk);
    stream::iter((0..count).map(move |i| {
        let start = i * chunk;
        Ok(data.slice(start..(start + chunk).min(data.len())))
    }))
}

/// All the bytes of a read.
pub async fn collect(read: BlobRead) -> anyhow::Result<Vec<u8>> {
    let chunks: Vec<Bytes> = read.chunks.try_collect().await?;
    Ok(chunks.concat())
}

/// A body that yields `ok` bytes, then fails.
pub fn failing_body(ok: &Bytes) -> impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static {
    body(ok, 4096).chain(stream::once(async {
        Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "client went away",
        ))
    }))
}

impl S3sServer {
    /// Stops the server, to test how failures surface.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill().await.context("kill s3s-fs")
    }

    /// Starts the server again on the same port and folder (after [`S3sServer::kill`], or to
    /// replace a running one), and waits until `s3` gets an answer from it.
    pub async fn restart(&mut self, s3: &S3Backend) -> anyhow::Result<()> {
        let binary = find_on_path("s3s-fs").context("s3s-fs is not on PATH")?;
        let port = self
            .endpoint
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .context("endpoint port")?;
        // The old process must have let go of the port first.
        let _ = self.child.kill().await;
        self.child = spawn_s3s_fs(&binary, port, &self.root)?;
        let deadline = tokio::time::Instant::now() + STARTUP_DEADLINE;
        while s3
            .client()
            .head_bucket()
            .bucket(BUCKET)
            .send()
            .await
            .is_err()
        {
            if tokio::time::Instant::now() > deadline {
                bail!("s3s-fs did not answer within {STARTUP_DEADLINE:?} of its restart");
            }
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
        Ok(())
    }
}

fn spawn_s3s_fs(binary: &Path, port: u16, root: &Path) -> anyhow::Result<tokio::process::Child> {
    tokio::process::Command::new(binary)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", "AK", "--secret-key", "SK"])
        .arg(root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("spawn s3s-fs")
}

/// A plain HTTP/1.1 GET of `url` (`http://host:port/path?query`): status, headers, body.
pub async fn http_get(url: &str) -> anyhow::Result<(u16, String, Vec<u8>)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").context("http url")?;
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut tcp = tokio::net::TcpStream::connect(host).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    tcp.read_to_end(&mut response).await?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no header end")?;
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .context("no status")?
        .parse()?;
    let mut body = response[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body)?;
    }
    Ok((status, head, body))
}

fn dechunk(mut data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("chunk size line")?;
        let size = usize::from_str_radix(std::str::from_utf8(&data[..line_end])?.trim(), 16)?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(data.get(..size).context("short chunk")?);
        data = data.get(size + 2..).context("chunk trailer")?;
    }
}

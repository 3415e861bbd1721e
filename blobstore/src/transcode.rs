//! Web renditions for formats browsers can't play (AIFF, ALAC): the original is copied to a
//! local temp file and re-encoded to FLAC by an `ffmpeg` subprocess under a wall-clock timeout
//! and `ulimit` CPU and memory caps, so untrusted media is never parsed by C code inside this
//! process. The result is stored as the [`WEB_RENDITION`] rendition; the original is never
//! touched, so a failure leaves it intact.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::cid::BlobCid;
use crate::error::{PutError, StoreError};
use crate::key::RenditionName;
use crate::store::{BlobStore, PutLimits, StoredRendition};

/// Rendition name of the browser-playable transcode.
pub const WEB_RENDITION: &str = "web.flac";

/// MIME type of [`WEB_RENDITION`].
pub const WEB_RENDITION_MIME: &str = "audio/flac";

/// Bounds of one ffmpeg run.
#[derive(Debug, Clone)]
pub struct TranscodeLimits {
    /// The ffmpeg binary (found on `PATH` when bare).
    pub ffmpeg: PathBuf,
    /// Wall-clock budget; the process is killed past it.
    pub timeout: Duration,
    /// CPU seconds (`ulimit -t`).
    pub cpu_secs: u64,
    /// Address-space cap in KiB (`ulimit -v`).
    pub memory_kib: u64,
    /// Largest rendition accepted, in bytes.
    pub max_output_bytes: u64,
}

impl Default for TranscodeLimits {
    fn default() -> Self {
        TranscodeLimits {
            ffmpeg: PathBuf::from("ffmpeg"),
            timeout: Duration::from_secs(600),
            cpu_secs: 600,
            memory_kib: 1 << 20,
            max_output_bytes: 4 << 30,
        }
    }
}

/// Why a transcode failed. The original is intact whatever the cause.
#[derive(Debug, thiserror::Error)]
pub enum TranscodeError {
    /// The original is not stored.
    #[error("original {0} is not stored")]
    Missing(BlobCid),
    /// Reading the original or storing the rendition failed.
    #[error("store")]
    Store(#[from] StoreError),
    /// Storing the rendition failed.
    #[error("storing the rendition")]
    Put(#[from] PutError),
    /// A local temp file could not be written or read.
    #[error("temp file {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// ffmpeg could not be started (not installed?).
    #[error("starting {ffmpeg}")]
    Spawn {
        /// The binary.
        ffmpeg: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// ffmpeg ran past the timeout and was killed.
    #[error("ffmpeg timed out")]
    TimedOut,
    /// ffmpeg exited unsuccessfully (bad input, or killed by a limit).
    #[error("ffmpeg failed ({status}): {stderr}")]
    Failed {
        /// Its exit status.
        status: String,
        /// The end of its stderr.
        stderr: String,
    },
}

/// Transcodes the stored original `source` to FLAC and stores it as [`WEB_RENDITION`].
#[tracing::instrument(skip(store, limits), fields(%source))]
pub async fn transcode_web(
    store: &BlobStore,
    source: BlobCid,
    limits: &TranscodeLimits,
) -> Result<StoredRendition, TranscodeError> {
    let dir = tempdir().await?;
    let result = transcode_in(store, source, limits, &dir).await;
    if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
        tracing::warn!(dir = %dir.display(), error = %e, "could not remove transcode temp dir");
    }
    result
}

async fn transcode_in(
    store: &BlobStore,
    source: BlobCid,
    limits: &TranscodeLimits,
    dir: &Path,
) -> Result<StoredRendition, TranscodeError> {
    let input = dir.join("input");
    let output = dir.join("output.flac");
    let read = store
        .get_range(source, None)
        .await?
        .ok_or(TranscodeError::Missing(source))?;
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| TranscodeError::Io { path, source }
    };
    let mut file = tokio::fs::File::create(&input).await.map_err(io(&input))?;
    let mut chunks = read.chunks;
    while let Some(chunk) = chunks.next().await {
        file.write_all(&chunk.map_err(io(&input))?)
            .await
            .map_err(io(&input))?;
    }
    file.flush().await.map_err(io(&input))?;
    drop(file);

    run_ffmpeg(limits, &input, &output).await?;

    let file = tokio::fs::File::open(&output).await.map_err(io(&output))?;
    let body = tokio_util::io::ReaderStream::new(file);
    let name: RenditionName = WEB_RENDITION
        .parse()
        .map_err(|e| StoreError::Config(format!("rendition name: {e}")))?;
    let stored = store
        .put_rendition(
            source,
            name,
            body,
            PutLimits::max_bytes(limits.max_output_bytes),
        )
        .await?;
    Ok(stored)
}

/// `sh -c 'ulimit ...; exec ffmpeg ...'`: the limits apply to ffmpeg alone, without unsafe
/// `pre_exec` in this process.
async fn run_ffmpeg(
    limits: &TranscodeLimits,
    input: &Path,
    output: &Path,
) -> Result<(), TranscodeError> {
    let mut command = tokio::process::Command::new("sh");
    command
        .arg("-c")
        .arg(r#"ulimit -t "$1" && ulimit -v "$2" && shift 2 && exec "$@""#)
        .arg("sh")
        .arg(limits.cpu_secs.to_string())
        .arg(limits.memory_kib.to_string())
        .arg(&limits.ffmpeg)
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i"])
        .arg(input)
        .args([
            "-map",
            "0:a:0",
            "-vn",
            "-map_metadata",
            "-1",
            "-c:a",
            "flac",
            "-f",
            "flac",
        ])
        .arg(output)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command.spawn().map_err(|source| TranscodeError::Spawn {
        ffmpeg: limits.ffmpeg.clone(),
        source,
    })?;
    let finished = tokio::time::timeout(limits.timeout, child.wait_with_output()).await;
    // On timeout the future (and with it the child) is dropped: kill_on_drop ends it.
    let out = finished
        .map_err(|_| TranscodeError::TimedOut)?
        .map_err(|source| TranscodeError::Spawn {
            ffmpeg: limits.ffmpeg.clone(),
            source,
        })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: String = stderr
        .chars()
        .rev()
        .take(500)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    Err(TranscodeError::Failed {
        status: out.status.to_string(),
        stderr: tail.trim().to_owned(),
    })
}

/// A fresh private directory under the system temp dir.
async fn tempdir() -> Result<PathBuf, TranscodeError> {
    let dir = std::env::temp_dir().join(format!("plyr-transcode-{}", crate::backend::temp_name()));
    tokio::fs::create_dir(&dir)
        .await
        .map_err(|source| TranscodeError::Io {
            path: dir.clone(),
            source,
        })?;
    Ok(dir)
}

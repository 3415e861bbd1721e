//! Upload benchmark (issue 5): streams a generated file (1 GiB by default, `BLOB_BENCH_MIB`
//! to change) through `BlobStore::put_stream` on the folder backend, and on S3 through a local
//! s3s-fs when it is on PATH; compares throughput with `sha256sum` of the same file, reports
//! peak RSS growth and Range read latency, and fails when RSS grows past the budget.
//!
//! Run: `cargo bench -p plyr-blobstore --bench upload`.

#[path = "../tests/harness.rs"]
#[allow(dead_code)]
mod harness;
#[path = "../tests/rss.rs"]
mod rss;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::TryStreamExt;
use plyr_blobstore::{BlobCid, BlobStore, ByteRange, CidHasher, PutLimits};
use tokio_util::io::ReaderStream;

use crate::harness::{Env, Kind};

/// Default upload size: the 1 GiB.
const DEFAULT_MIB: u64 = 1024;
/// Read size of the body, like a network read.
const CHUNK: usize = 64 * 1024;
/// Folder backend: peak RSS growth allowed (write buffer, chunk in flight, allocator slack).
const FS_BUDGET: u64 = 8 << 20;
/// S3 backend: the one part buffer, plus the HTTP client's buffers and allocator slack.
const S3_BUDGET: u64 = harness::PART as u64 + (8 << 20);
/// Range reads timed per backend.
const RANGE_READS: usize = 300;
/// Bytes per timed range read.
const RANGE_LEN: u64 = 64 * 1024;

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

struct Row {
    name: &'static str,
    seconds: f64,
    rss_growth: Option<u64>,
    exact: bool,
}

async fn run() -> anyhow::Result<()> {
    let mib: u64 = match std::env::var("BLOB_BENCH_MIB") {
        Ok(text) => text.parse().context("BLOB_BENCH_MIB")?,
        Err(_) => DEFAULT_MIB,
    };
    let size = mib << 20;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("source.bin");
    write_source(&file, size)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "blob upload benchmark: {mib} MiB, {CHUNK}-byte reads")?;

    // Best of two, so both sides read the file from the page cache.
    let mut sha_best = f64::MAX;
    let mut sha_hex = String::new();
    for _ in 0..2 {
        let (seconds, hex) = sha256sum(&file)?;
        sha_best = sha_best.min(seconds);
        sha_hex = hex;
    }
    let mut rows = vec![Row {
        name: "sha256sum",
        seconds: sha_best,
        rss_growth: None,
        exact: true,
    }];

    let started = Instant::now();
    let mut hasher = CidHasher::new();
    let mut chunks = ReaderStream::with_capacity(tokio::fs::File::open(&file).await?, CHUNK);
    while let Some(chunk) = chunks.try_next().await? {
        hasher.update(&chunk);
    }
    let hashed = hasher.finish();
    rows.push(Row {
        name: "read + CidHasher only",
        seconds: started.elapsed().as_secs_f64(),
        rss_growth: None,
        exact: true,
    });
    if hex(&hashed) != sha_hex {
        bail!("CidHasher {hashed} disagrees with sha256sum {sha_hex}");
    }

    let mut failures = Vec::new();
    let mut latencies = Vec::new();
    for (kind, name, budget) in [
        (Kind::Fs, "put_stream fs", FS_BUDGET),
        (Kind::S3, "put_stream s3 (s3s-fs)", S3_BUDGET),
    ] {
        let env = match Env::new(kind).await {
            Ok(env) => env,
            Err(e) if kind == Kind::S3 => {
                writeln!(out, "skipping S3: {e:#}")?;
                continue;
            }
            Err(e) => return Err(e),
        };
        let (row, cid) = upload(&env.store, &file, name).await?;
        if hex(&cid) != sha_hex {
            bail!("{name}: CID {cid} disagrees with sha256sum {sha_hex}");
        }
        if let Some(growth) = row.rss_growth.filter(|g| *g > budget) {
            failures.push(format!(
                "{name}: RSS grew {} KiB, budget {} KiB",
                growth / 1024,
                budget / 1024
            ));
        }
        rows.push(row);
        latencies.push((name, range_latency(&env.store, cid, size).await?));
    }

    writeln!(
        out,
        "{:<24} {:>9} {:>10} {:>16}",
        "", "seconds", "MiB/s", "peak RSS growth"
    )?;
    for row in &rows {
        let rss = match row.rss_growth {
            Some(bytes) => format!(
                "{} KiB{}",
                bytes / 1024,
                if row.exact { "" } else { " (sampled)" }
            ),
            None => "-".to_owned(),
        };
        let rate = mib_f64(size) / row.seconds;
        writeln!(
            out,
            "{:<24} {:>9.2} {:>10.0} {:>16}",
            row.name, row.seconds, rate, rss
        )?;
    }
    for (name, mut samples) in latencies {
        samples.sort();
        let pick = |q: f64| {
            let index = ((samples.len() - 1) as f64 * q).round() as usize;
            samples[index]
        };
        writeln!(
            out,
            "range read {RANGE_LEN} B, {name}: p50 {:?}, p99 {:?}, max {:?} ({} reads)",
            pick(0.5),
            pick(0.99),
            pick(1.0),
            samples.len()
        )?;
    }
    if !failures.is_empty() {
        bail!("memory budget exceeded: {}", failures.join("; "));
    }
    Ok(())
}

/// Streams `file` into the store, measuring wall time and peak RSS growth.
async fn upload(
    store: &BlobStore,
    file: &Path,
    name: &'static str,
) -> anyhow::Result<(Row, BlobCid)> {
    let source = tokio::fs::File::open(file).await?;
    let body = ReaderStream::with_capacity(source, CHUNK);
    let peak = rss::PeakRss::start()?;
    let exact = peak.exact();
    let started = Instant::now();
    let stored = store
        .put_stream(body, PutLimits::max_bytes(u64::MAX))
        .await?;
    let seconds = started.elapsed().as_secs_f64();
    let growth = peak.finish()?;
    Ok((
        Row {
            name,
            seconds,
            rss_growth: Some(growth),
            exact,
        },
        stored.cid,
    ))
}

/// Latency of whole `RANGE_LEN` reads at spread-out offsets.
async fn range_latency(
    store: &BlobStore,
    cid: BlobCid,
    size: u64,
) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(RANGE_READS);
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    for _ in 0..RANGE_READS {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let start = state % size.saturating_sub(RANGE_LEN).max(1);
        let range = ByteRange::From {
            start,
            last: Some(start + RANGE_LEN - 1),
        };
        let started = Instant::now();
        let read = store
            .get_range(cid, Some(range))
            .await?
            .context("stored blob missing")?;
        let bytes: usize = read
            .chunks
            .map_ok(|c| c.len())
            .try_fold(0, |a, n| async move { Ok(a + n) })
            .await?;
        samples.push(started.elapsed());
        if bytes as u64 != RANGE_LEN.min(size - start) {
            bail!("range read returned {bytes} bytes");
        }
    }
    Ok(samples)
}

fn write_source(path: &Path, size: u64) -> anyhow::Result<()> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    for chunk in rss::Generated::new(size, 1 << 20, 7) {
        file.write_all(&chunk)?;
    }
    file.flush()?;
    Ok(())
}

fn sha256sum(path: &Path) -> anyhow::Result<(f64, String)> {
    let started = Instant::now();
    let output = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .context("run sha256sum")?;
    let seconds = started.elapsed().as_secs_f64();
    if !output.status.success() {
        bail!(
            "sha256sum failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let text = String::from_utf8(output.stdout)?;
    let hex = text
        .split_whitespace()
        .next()
        .context("sha256sum output")?
        .to_owned();
    Ok((seconds, hex))
}

fn hex(cid: &BlobCid) -> String {
    cid.sha256().iter().map(|b| format!("{b:02x}")).collect()
}

fn mib_f64(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

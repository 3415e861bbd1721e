//! The constant-memory guarantee: streaming 256 MiB through `put_stream` on the folder backend
//! must not raise peak RSS by more than a few MiB. Its own test binary, so no other test
//! allocates in the process while it measures.

#[path = "rss.rs"]
mod rss;

use futures_util::stream;
use plyr_blobstore::{BlobStore, FsBackend, PutLimits};

/// Bytes streamed: four times the 64 MiB that would show any buffering in the measurement.
const TOTAL: u64 = 256 << 20;
/// Chunk size of the body, like a network read.
const CHUNK: usize = 64 * 1024;
/// Allowed peak RSS growth: the 1 MiB write buffer, a chunk in flight, allocator slack.
const BUDGET: u64 = 8 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_of_256_mib_keeps_rss_flat() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = BlobStore::new(FsBackend::open(dir.path()).await?);
    // Warm up the runtime, the blocking pool and the allocator before measuring.
    let warm = rss::Generated::new(4 << 20, CHUNK, 2).map(Ok::<_, std::io::Error>);
    store
        .put_stream(stream::iter(warm), PutLimits::default())
        .await?;

    // One generated chunk, copied into a fresh buffer per read as a network body would be;
    // generating 256 MiB of distinct bytes would dominate the run time of a debug build.
    let template = rss::Generated::new(CHUNK as u64, CHUNK, 1)
        .next()
        .ok_or_else(|| anyhow::anyhow!("no chunk"))?;
    let count = TOTAL / CHUNK as u64;

    let peak = rss::PeakRss::start()?;
    assert!(
        peak.exact(),
        "/proc/self/clear_refs is needed to reset the peak"
    );
    let body =
        (0..count).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::copy_from_slice(&template)));
    let stored = store
        .put_stream(stream::iter(body), PutLimits::default())
        .await?;
    let growth = peak.finish()?;

    assert_eq!(stored.size, TOTAL);
    let on_disk = store.head(stored.cid).await?.map(|meta| meta.size);
    assert_eq!(on_disk, Some(TOTAL));
    assert!(
        growth <= BUDGET,
        "peak RSS grew by {} KiB streaming {} MiB (budget {} KiB)",
        growth / 1024,
        TOTAL >> 20,
        BUDGET / 1024
    );
    Ok(())
}

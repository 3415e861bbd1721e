//! Resident-memory measurement from `/proc/self/status`, for the constant-memory test and the
//! upload benchmark: peak RSS growth across one operation.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// How often the fallback sampler reads RSS when the kernel's peak cannot be reset.
const SAMPLE_EVERY: Duration = Duration::from_millis(2);

/// A `kB` field of `/proc/self/status` (`VmRSS`, `VmHWM`), in bytes.
pub fn status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Watches peak RSS from `start()` to `finish()`.
pub struct PeakRss {
    baseline: u64,
    /// Set when `/proc/self/clear_refs` reset the kernel's high-water mark (`VmHWM`).
    kernel_peak: bool,
    sampled: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    sampler: Option<std::thread::JoinHandle<()>>,
}

impl PeakRss {
    pub fn start() -> anyhow::Result<Self> {
        // Writing 5 resets VmHWM to the current RSS (proc(5), Linux >= 4.0).
        let kernel_peak = std::fs::write("/proc/self/clear_refs", "5").is_ok();
        let baseline = status_bytes("VmRSS").ok_or_else(|| anyhow::anyhow!("no VmRSS"))?;
        let sampled = Arc::new(AtomicU64::new(baseline));
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = (!kernel_peak).then(|| {
            let (sampled, stop) = (Arc::clone(&sampled), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(rss) = status_bytes("VmRSS") {
                        sampled.fetch_max(rss, Ordering::Relaxed);
                    }
                    std::thread::sleep(SAMPLE_EVERY);
                }
            })
        });
        Ok(Self {
            baseline,
            kernel_peak,
            sampled,
            stop,
            sampler,
        })
    }

    /// Peak RSS minus the RSS at `start()`, in bytes.
    pub fn finish(mut self) -> anyhow::Result<u64> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(sampler) = self.sampler.take() {
            sampler
                .join()
                .map_err(|_| anyhow::anyhow!("rss sampler panicked"))?;
        }
        let peak = if self.kernel_peak {
            status_bytes("VmHWM").ok_or_else(|| anyhow::anyhow!("no VmHWM"))?
        } else {
            self.sampled.load(Ordering::Relaxed)
        };
        Ok(peak.saturating_sub(self.baseline))
    }

    /// Whether the kernel's exact peak is used (otherwise a 2 ms sampler).
    pub fn exact(&self) -> bool {
        self.kernel_peak
    }
}

/// An endless deterministic byte source, generated chunk by chunk (nothing kept).
pub struct Generated {
    state: u64,
    remaining: u64,
    chunk: usize,
}

impl Generated {
    pub fn new(total: u64, chunk: usize, seed: u64) -> Self {
        Self {
            state: seed | 1,
            remaining: total,
            chunk,
        }
    }
}

impl Iterator for Generated {
    type Item = bytes::Bytes;

    fn next(&mut self) -> Option<bytes::Bytes> {
        if self.remaining == 0 {
            return None;
        }
        let len = usize::try_from(self.remaining.min(u64::try_from(self.chunk).ok()?)).ok()?;
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            out.extend_from_slice(&self.state.to_le_bytes());
        }
        out.truncate(len);
        self.remaining -= u64::try_from(len).ok()?;
        Some(bytes::Bytes::from(out))
    }
}

//! Pieces both root benches use: a fresh migrated database, the Jetstream workload the indexer
//! ingests, and small process helpers. Each bench declares `mod support` (the end-to-end
//! tests' support module) at its root, which this module builds on.

#![allow(dead_code)]

use anyhow::{Context, Result};
use sqlx::PgPool;

use crate::support::events::*;
use crate::support::jetstream::Frame;

pub mod cpu;
mod db;
pub use db::fresh_database;

/// Cores the bench sees, printed with every result (figures mean little without it).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("probe port")?;
    Ok(listener.local_addr()?.port())
}

/// The process's peak resident set (VmHWM), in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The middle value (the mean of the two middle ones for an even count); NaN for none.
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => values[n / 2],
        _ => f64::midpoint(values[n / 2 - 1], values[n / 2]),
    }
}

/// A Jetstream workload; event `i` has `time_us = T0 + i + 1`, so a persisted cursor `c` means
/// `c - T0` events are applied.
pub struct Mix {
    pub frames: Vec<Frame>,
    pub tracks: usize,
    pub likes: usize,
    pub comments: usize,
    pub noise: usize,
}

impl Mix {
    /// The cursor that covers every event.
    pub fn last_time_us(&self) -> i64 {
        self.frames.last().map_or(T0, |f| f.time_us)
    }
}

/// Polls until the persisted Jetstream cursor covers `last`, failing after `within`.
pub async fn wait_for_cursor(pool: &PgPool, last: i64, within: std::time::Duration) -> Result<()> {
    let deadline = std::time::Instant::now() + within;
    while plyr_indexer::last_cursor(pool, "jetstream")
        .await?
        .is_none_or(|c| c < last)
    {
        if std::time::Instant::now() > deadline {
            anyhow::bail!("the indexer did not reach cursor {last} within {within:?}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    Ok(())
}

/// How many events of a [`Mix`] a persisted cursor covers.
pub fn applied(cursor: Option<i64>) -> i64 {
    cursor.map_or(0, |c| c - T0)
}

/// 10% tracks, 70% likes, 10% comments, 10% `fm.plyr.stg` noise the indexer must drop, spread
/// over 2,000 artists and 20,000 fans.
pub fn mix(total: usize) -> Mix {
    let mut frames = Vec::with_capacity(total + 1);
    let (mut tracks, mut likes, mut comments, mut noise) = (0, 0, 0, 0);
    let mut track_uris: Vec<String> = Vec::new();
    let artists = 2_000u32;
    let fans = 20_000u32;
    for i in 0..total {
        let n = u32::try_from(i).unwrap_or(u32::MAX);
        let time = T0 + i64::from(n) + 1;
        let seq = u64::from(n) + 1;
        let slot = i % 10;
        if slot == 0 || track_uris.is_empty() {
            let artist = did(u32::try_from(tracks).unwrap_or(0) % artists);
            let rkey = rkey(tracks as u64);
            let record = track_record(
                "fm.plyr",
                &format!("track {tracks}"),
                "2026-01-01T00:00:00Z",
            );
            let frame = create(time, &artist, "fm.plyr.track", &rkey, &rev(seq), record);
            frames.push(frame);
            track_uris.push(uri(&artist, "fm.plyr.track", &rkey));
            tracks += 1;
        } else if slot <= 7 {
            let fan = did(100_000 + n % fans);
            let subject = &track_uris[(i * 7919) % track_uris.len()];
            let record = like_record("fm.plyr", subject);
            let frame = create(
                time,
                &fan,
                "fm.plyr.like",
                &rkey(u64::from(n)),
                &rev(seq),
                record,
            );
            frames.push(frame);
            likes += 1;
        } else if slot == 8 {
            let fan = did(100_000 + n % fans);
            let subject = &track_uris[(i * 104_729) % track_uris.len()];
            let at_ms = i64::from(n % 300_000);
            let record = comment_record("fm.plyr", subject, "nice drop", at_ms);
            let frame = create(
                time,
                &fan,
                "fm.plyr.comment",
                &rkey(u64::from(n)),
                &rev(seq),
                record,
            );
            frames.push(frame);
            comments += 1;
        } else {
            let artist = did(n % artists);
            let record = track_record("fm.plyr.stg", "staging", "2026-01-01T00:00:00Z");
            let collection = "fm.plyr.stg.track";
            let frame = create(
                time,
                &artist,
                collection,
                &rkey(u64::from(n)),
                &rev(seq),
                record,
            );
            frames.push(frame);
            noise += 1;
        }
    }
    Mix {
        frames,
        tracks,
        likes,
        comments,
        noise,
    }
}

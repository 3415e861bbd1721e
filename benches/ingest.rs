//! Ingest benchmark: replays 200k+ Jetstream events (tracks, likes, comments and another
//! namespace's noise) at full speed into the release `plyr-appview run`, and reports events/s
//! until the cursor covers them all, the peak RSS of the process, how long one fresh record
//! takes to become visible over XRPC afterwards, and the ceiling: this machine's Postgres doing
//! one bulk upsert of as many track rows.
//!
//! Run: `cargo bench --bench ingest` (needs Postgres at DATABASE_URL, see .cargo/config.toml).
//! `BENCH_EVENTS=N` changes the size.

#[path = "../tests/support/mod.rs"]
mod support;

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sqlx::migrate::MigrateDatabase;
use sqlx::{PgPool, Postgres};

use common::{cores, cpu, free_port, fresh_database, median, mix, peak_rss_kib, wait_for_cursor};
use support::events::*;
use support::jetstream::ScriptedJetstream;

/// The ceiling: one `insert ... select from unnest(...) on conflict do update` of `rows` tracks.
async fn bulk_upsert_ceiling(pool: &PgPool, rows: usize) -> Result<f64> {
    sqlx::query("truncate track").execute(pool).await?;
    let uris: Vec<String> = (0..rows)
        .map(|i| format!("at://did:plc:ceiling{}/fm.plyr.track/3kt{i:010}", i % 2000))
        .collect();
    let dids: Vec<String> = (0..rows)
        .map(|i| format!("did:plc:ceiling{}", i % 2000))
        .collect();
    let rkeys: Vec<String> = (0..rows).map(|i| format!("3kt{i:010}")).collect();
    let cids: Vec<String> = (0..rows).map(|i| cid(i as u64)).collect();
    let revs: Vec<String> = (0..rows).map(|i| rev(i as u64)).collect();
    let titles: Vec<String> = (0..rows).map(|i| format!("track {i}")).collect();
    let records: Vec<serde_json::Value> = (0..rows)
        .map(|i| track_record("fm.plyr", &format!("track {i}"), "2026-01-01T00:00:00Z"))
        .collect();
    let started = Instant::now();
    sqlx::query(
        "insert into track (uri, did, rkey, cid, rev, title, artist, created_at, sort_at, record)
         select u, d, k, c, r, t, 'Test Artist', now(), now(), rec
         from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::jsonb[])
              as x(u, d, k, c, r, t, rec)
         on conflict (uri) do update set title = excluded.title, rev = excluded.rev
         where excluded.rev > track.rev",
    )
    .bind(&uris)
    .bind(&dids)
    .bind(&rkeys)
    .bind(&cids)
    .bind(&revs)
    .bind(&titles)
    .bind(&records)
    .execute(pool)
    .await?;
    Ok(started.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> Result<()> {
    let total: usize = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    println!("machine: {} cores", cores());
    let generated = Instant::now();
    let mix = mix(total);
    println!(
        "events: {total} ({} tracks, {} likes, {} comments, {} foreign-namespace), generated in {:.1}s",
        mix.tracks,
        mix.likes,
        mix.comments,
        mix.noise,
        generated.elapsed().as_secs_f64()
    );
    let last = mix.last_time_us();
    let (db_url, pool) = fresh_database("plyr_bench_ingest").await?;
    let jetstream = ScriptedJetstream::start(mix.frames).await;
    let port = free_port()?;

    let started = Instant::now();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_plyr-appview"))
        .args([
            "run",
            "--database-url",
            &db_url,
            "--jetstream-url",
            &jetstream.url(),
            "--bind",
            &format!("127.0.0.1:{port}"),
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting plyr-appview")?;
    let pid = child.id().context("child pid")?;
    let appview = [(pid, cpu::Role::Run)];
    let cpu_from = cpu::Snapshot::take(&appview);
    wait_for_cursor(&pool, last, Duration::from_secs(900)).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let used = cpu_from.until(&cpu::Snapshot::take(&appview), &cpu::backends(&pool).await?);
    let indexed: i64 = sqlx::query_scalar("select count(*) from track")
        .fetch_one(&pool)
        .await?;
    let likes: i64 = sqlx::query_scalar("select count(*) from track_like")
        .fetch_one(&pool)
        .await?;
    if usize::try_from(indexed).ok() != Some(mix.tracks)
        || usize::try_from(likes).ok() != Some(mix.likes)
    {
        bail!("view incomplete: {indexed} tracks, {likes} likes");
    }
    println!(
        "ingest: {total} events in {elapsed:.2}s = {:.0} events/s (all visible; peak RSS {} MiB)",
        total as f64 / elapsed,
        peak_rss_kib(pid).unwrap_or(0) / 1024
    );
    // CPU time per event is steadier than events/s on a shared machine.
    let per_event = |group: &str| used.of(group) * elapsed / total as f64 * 1e6;
    println!(
        "CPU per event: the indexer's threads {:.1} µs, its Postgres backends {:.1} µs, \
         the server's threads {:.1} µs; the machine busy {:.2} of {} cores, {:.2} stolen",
        per_event(cpu::INDEXER),
        per_event(cpu::WRITER),
        per_event(cpu::SERVER),
        used.busy,
        cores(),
        used.steal
    );

    // One fresh record after catch-up: time until getTrack answers 200.
    let http = reqwest::Client::new();
    let mut samples = Vec::new();
    for n in 0..20u64 {
        let rkey = rkey(50_000_000 + n);
        let fresh_uri = uri(&did(1), "fm.plyr.track", &rkey);
        let time = last + 1 + i64::try_from(n).unwrap_or(0);
        let appended = Instant::now();
        jetstream.append(vec![create(
            time,
            &did(1),
            "fm.plyr.track",
            &rkey,
            &rev(10_000_000 + n),
            track_record("fm.plyr", "fresh", "2026-01-01T00:00:00Z"),
        )]);
        loop {
            let status = http
                .get(format!(
                    "http://127.0.0.1:{port}/xrpc/fm.plyr.feed.getTrack"
                ))
                .query(&[("uri", &fresh_uri)])
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0);
            if status == 200 {
                samples.push(appended.elapsed().as_secs_f64() * 1000.0);
                break;
            }
            if appended.elapsed() > Duration::from_secs(10) {
                bail!("{fresh_uri} not visible after 10 s");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let (count, max) = (
        samples.len(),
        samples.iter().copied().fold(f64::NAN, f64::max),
    );
    println!(
        "visibility of one new record over XRPC: median {:.1} ms, max {max:.1} ms ({count} samples)",
        median(samples)
    );
    child.start_kill().context("stopping plyr-appview")?;
    child.wait().await?;

    let rows = total;
    let secs = bulk_upsert_ceiling(&pool, rows).await?;
    let ceiling = rows as f64 / secs;
    println!("ceiling: one bulk upsert of {rows} track rows in {secs:.2}s = {ceiling:.0} rows/s");
    println!(
        "ratio: ingest is {:.2}x the ceiling",
        (total as f64 / elapsed) / ceiling
    );
    pool.close().await;
    Postgres::drop_database(&db_url).await?;
    Ok(())
}

//! Read load benchmark: seeds a fresh database with bulk SQL (100k tracks by 5k artists, 200k
//! likes by 20k fans, profiles), starts the release `plyr-appview serve` (rate limits off,
//! view cache on), and drives a mixed XRPC read workload with `oha`: once at a fixed rate for
//! p50/p99, once at the highest rate it reaches. Prints one markdown table row per run.
//!
//! Run: `cargo bench --bench load` (needs Postgres at DATABASE_URL and `oha` on PATH:
//! `cargo install oha`). `BENCH_RATE` (default 5000 req/s), `BENCH_SECS` (default 20) and
//! `BENCH_CONNECTIONS` (default 50) change the runs.

use std::fmt::Write as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;
use sqlx::migrate::MigrateDatabase;
use sqlx::{PgPool, Postgres};

const TRACKS: i64 = 100_000;
const ARTISTS: i64 = 5_000;
const FANS: i64 = 20_000;
const LIKES: i64 = 200_000;
/// URLs in oha's list: enough that the hot set is realistic, not one cached row.
const URLS: i64 = 20_000;

fn artist(i: i64) -> String {
    format!("did:plc:benchartist{i:012}")
}

fn track_uri(i: i64) -> String {
    format!("at://{}/fm.plyr.track/3kbt{i:09}", artist(i % ARTISTS))
}

async fn fresh_database(name: &str) -> Result<(String, PgPool)> {
    let base = std::env::var("DATABASE_URL").context("DATABASE_URL")?;
    let mut url = url::Url::parse(&base).context("DATABASE_URL")?;
    url.set_path(name);
    let url = url.to_string();
    if Postgres::database_exists(&url).await? {
        Postgres::drop_database(&url).await?;
    }
    Postgres::create_database(&url).await?;
    let pool = PgPool::connect(&url).await?;
    plyr_migrations::MIGRATOR.run(&pool).await?;
    Ok((url, pool))
}

/// The view as the indexer would leave it, in a handful of set-based statements.
async fn seed(pool: &PgPool) -> Result<()> {
    let statements = [
        format!(
            "insert into actor (did, handle) select 'did:plc:benchartist' || lpad(i::text, 12, '0'), \
             'artist' || i || '.bench.test' from generate_series(0, {last}) i",
            last = ARTISTS - 1
        ),
        format!(
            "insert into actor (did, handle) select 'did:plc:benchfan' || lpad(i::text, 12, '0'), \
             'fan' || i || '.bench.test' from generate_series(0, {last}) i",
            last = FANS - 1
        ),
        "insert into profile (did, uri, cid, rev, bio, created_at, record) \
         select did, 'at://' || did || '/fm.plyr.actor.profile/self', \
         'bafyreiclp443lavogvhj3d2ob2cxbfuscni2k5jk7bebjzg7khl3esabwq', '3kaaaaaaaaaaa', \
         'making noise since ' || handle, now(), \
         jsonb_build_object('$type', 'fm.plyr.actor.profile', 'bio', 'hi', 'createdAt', '2026-01-01T00:00:00Z') \
         from actor"
            .to_owned(),
        format!(
            "insert into track (uri, did, rkey, cid, rev, title, artist, created_at, indexed_at, sort_at, record) \
             select 'at://did:plc:benchartist' || lpad((i % {ARTISTS})::text, 12, '0') \
                    || '/fm.plyr.track/3kbt' || lpad(i::text, 9, '0'), \
                    'did:plc:benchartist' || lpad((i % {ARTISTS})::text, 12, '0'), \
                    '3kbt' || lpad(i::text, 9, '0'), \
                    'bafyreiclp443lavogvhj3d2ob2cxbfuscni2k5jk7bebjzg7khl3esabwq', '3kaaaaaaaaaaa', \
                    'track ' || i, 'artist ' || (i % {ARTISTS}), \
                    timestamptz '2026-01-01' + i * interval '1 minute', \
                    timestamptz '2026-01-01' + i * interval '1 minute', \
                    timestamptz '2026-01-01' + i * interval '1 minute', \
                    jsonb_build_object('$type', 'fm.plyr.track', 'title', 'track ' || i, \
                      'artist', 'artist ' || (i % {ARTISTS}), 'fileType', 'mp3', \
                      'audioUrl', 'https://audio.plyr.fm/' || i || '.mp3', \
                      'createdAt', '2026-01-01T00:00:00Z') \
             from generate_series(0, {last}) i",
            last = TRACKS - 1
        ),
        // Like i: fan i % FANS likes track (i * 7919) % TRACKS, a spread with no repeats.
        format!(
            "insert into track_like (uri, did, rkey, cid, rev, subject_uri, created_at, indexed_at, sort_at) \
             select 'at://did:plc:benchfan' || lpad((i % {FANS})::text, 12, '0') \
                    || '/fm.plyr.like/3kbl' || lpad(i::text, 9, '0'), \
                    'did:plc:benchfan' || lpad((i % {FANS})::text, 12, '0'), \
                    '3kbl' || lpad(i::text, 9, '0'), \
                    'bafyreiclp443lavogvhj3d2ob2cxbfuscni2k5jk7bebjzg7khl3esabwq', '3kaaaaaaaaaaa', \
                    'at://did:plc:benchartist' || lpad((((i * 7919) % {TRACKS}) % {ARTISTS})::text, 12, '0') \
                    || '/fm.plyr.track/3kbt' || lpad(((i * 7919) % {TRACKS})::text, 9, '0'), \
                    timestamptz '2026-02-01' + i * interval '1 second', \
                    timestamptz '2026-02-01' + i * interval '1 second', \
                    timestamptz '2026-02-01' + i * interval '1 second' \
             from generate_series(0::int8, {last}::int8) i",
            last = LIKES - 1
        ),
        "update track t set like_count = c.n from (select subject_uri, count(*)::int4 n \
         from track_like group by 1) c where c.subject_uri = t.uri"
            .to_owned(),
        "update actor a set track_count = c.n from (select did, count(*)::int4 n from track \
         group by 1) c where c.did = a.did"
            .to_owned(),
        "update actor a set like_count = c.n from (select did, count(*)::int4 n from track_like \
         group by 1) c where c.did = a.did"
            .to_owned(),
    ];
    for sql in statements {
        // Built from this file's constants only.
        sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .execute(pool)
            .await
            .with_context(|| format!("seeding: {sql}"))?;
    }
    sqlx::query("vacuum analyze").execute(pool).await?;
    Ok(())
}

/// The mix: 40% getTrack, 20% getProfile, 15% getLatestTracks (first pages), 15%
/// getArtistTracks, 10% getLikes; ids spread by a multiplicative hash.
fn urls(base: &str) -> String {
    let mut out = String::new();
    for n in 0..URLS {
        let spread = (n * 48_271) % TRACKS;
        let path = match n % 20 {
            0..=7 => format!(
                "/xrpc/fm.plyr.feed.getTrack?uri={}",
                encode(&track_uri(spread))
            ),
            8..=11 => format!(
                "/xrpc/fm.plyr.actor.getProfile?actor=artist{}.bench.test",
                spread % ARTISTS
            ),
            12..=14 => format!(
                "/xrpc/fm.plyr.feed.getLatestTracks?limit={}",
                [10, 20, 50][usize::try_from(n % 3).unwrap_or(0)]
            ),
            15..=17 => format!(
                "/xrpc/fm.plyr.feed.getArtistTracks?actor={}&limit=20",
                encode(&artist(spread % ARTISTS))
            ),
            _ => format!(
                "/xrpc/fm.plyr.feed.getLikes?uri={}&limit=20",
                encode(&track_uri(spread))
            ),
        };
        let _ = writeln!(out, "{base}{path}");
    }
    out
}

fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// One oha run over the URL list; `rate` None runs flat out.
fn oha(urls_file: &str, secs: u64, connections: u32, rate: Option<u32>) -> Result<Value> {
    let mut cmd = std::process::Command::new("oha");
    cmd.args([
        "--no-tui",
        "--output-format",
        "json",
        "--urls-from-file",
        urls_file,
        "-z",
        &format!("{secs}s"),
        "-c",
        &connections.to_string(),
    ]);
    if let Some(rate) = rate {
        // Latency counted from when each request was due, not sent: a stall shows as the
        // queue it causes (no coordinated omission).
        cmd.args(["-q", &rate.to_string(), "--latency-correction"]);
    }
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .context("running oha (cargo install oha)")?;
    if !out.status.success() {
        bail!("oha failed: {}", String::from_utf8_lossy(&out.stdout));
    }
    serde_json::from_slice(&out.stdout).context("oha's JSON")
}

fn row(label: &str, report: &Value) -> Result<String> {
    let ms = |key: &str| {
        report["latencyPercentiles"][key]
            .as_f64()
            .map(|s| s * 1000.0)
    };
    let rps = report["summary"]["requestsPerSec"]
        .as_f64()
        .context("requestsPerSec")?;
    let statuses = &report["statusCodeDistribution"];
    let non_ok: u64 = statuses
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(code, _)| code.as_str() != "200")
                .filter_map(|(_, n)| n.as_u64())
                .sum()
        })
        .unwrap_or(0);
    let errors = report["errorDistribution"]
        .as_object()
        .map_or(0, |m| m.values().filter_map(Value::as_u64).sum::<u64>());
    Ok(format!(
        "| {label} | {rps:.0} | {:.2} | {:.2} | {:.2} | {non_ok} | {errors} |",
        ms("p50").unwrap_or(f64::NAN),
        ms("p99").unwrap_or(f64::NAN),
        ms("p99.9").unwrap_or(f64::NAN),
    ))
}

fn free_port() -> Result<u16> {
    let socket = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(socket.local_addr()?.port())
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> Result<()> {
    let rate: u32 = env_or("BENCH_RATE", 5000);
    let secs: u64 = env_or("BENCH_SECS", 20);
    let connections: u32 = env_or("BENCH_CONNECTIONS", 50);
    println!(
        "machine: {} cores",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    let (db_url, pool) = fresh_database("plyr_bench_load").await?;
    let seeded = Instant::now();
    seed(&pool).await?;
    println!(
        "seeded {TRACKS} tracks, {LIKES} likes, {} actors in {:.1}s",
        ARTISTS + FANS,
        seeded.elapsed().as_secs_f64()
    );

    let port = free_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let blob_dir = tempfile::tempdir()?;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_plyr-appview"))
        .args([
            "serve",
            "--database-url",
            &db_url,
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--rate-limit",
            "0",
            "--ffmpeg",
            "none",
        ])
        .arg("--blob-dir")
        .arg(blob_dir.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting plyr-appview serve")?;
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = http
            .get(format!("{base}/xrpc/_health"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if up {
            break;
        }
        if Instant::now() > deadline {
            bail!("server did not come up in 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every kind of URL answers 200 before it is timed.
    let list = urls(&base);
    for url in list.lines().take(20) {
        let status = http.get(url).send().await?.status();
        if !status.is_success() {
            bail!("{url}: {status}");
        }
    }
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(file.path(), &list)?;
    let path = file.path().to_str().context("temp path")?.to_owned();

    let warm = tokio::task::spawn_blocking({
        let path = path.clone();
        move || oha(&path, 5, connections, None)
    })
    .await??;
    println!(
        "warm-up: {:.0} req/s",
        warm["summary"]["requestsPerSec"].as_f64().unwrap_or(0.0)
    );
    let fixed = tokio::task::spawn_blocking({
        let path = path.clone();
        move || oha(&path, secs, connections, Some(rate))
    })
    .await??;
    let max = tokio::task::spawn_blocking(move || oha(&path, secs, connections, None)).await??;

    println!("| run | req/s | p50 ms | p99 ms | p99.9 ms | non-200 | errors |");
    println!("|---|---|---|---|---|---|---|");
    println!(
        "{}",
        row(
            &format!("fixed {rate} req/s, {connections} conns, {secs}s"),
            &fixed
        )?
    );
    println!(
        "{}",
        row(&format!("max rate, {connections} conns, {secs}s"), &max)?
    );

    child.kill().await.ok();
    pool.close().await;
    Postgres::drop_database(&db_url).await?;
    Ok(())
}

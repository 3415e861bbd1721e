//! Read load benchmark: seeds a fresh database with bulk SQL (100k tracks by 5k artists, 200k
//! likes by 20k fans, profiles), starts the release `plyr-appview run` (indexer and server in
//! one process, as deployed; rate limits off, view cache on) against a scripted Jetstream that
//! is silent at first, and drives a mixed XRPC read workload with `oha`:
//!
//! 1. the anchor: `_health` flat out (the HTTP stack and oha, no query);
//! 2. idle, flat out: the highest rate it reaches;
//! 3. rounds (default 3) of two windows at one fixed rate: idle, once no autovacuum runs; then
//!    while the indexer ingests a part of a Jetstream backlog appended at the window's start,
//!    at full speed (each part is sized to outlast its window, and the bench checks that it
//!    did). The goal compares the median p99 of the ingesting windows with the median p99 of
//!    the idle ones, and each round's ratio is printed too.
//!
//! Before the rounds, `pgbench` (when installed) sends `select 1` at the same fixed rate: the
//! machine's own Postgres round-trip tail, the floor under the idle windows'.
//!
//! Prints one markdown table row per run, where the CPU went and how long the reads' threads
//! (the server's and oha's) waited for a CPU in the fixed-rate windows, and fails on any error
//! or non-200 answer.
//!
//! Run: `cargo bench --bench load` (needs Postgres at DATABASE_URL and `oha` on PATH:
//! `cargo install oha`). `BENCH_RATE` (default 1000 req/s), `BENCH_SECS` (each window, default
//! 20), `BENCH_CONNECTIONS` (default 50), `BENCH_ROUNDS` (default 3) and `BENCH_EVENTS` (each
//! round's part of the backlog, default 400,000) change the runs; `BENCH_SPLIT=1` runs the
//! server and the indexer as two processes (`serve`, `index`) instead of one `run`;
//! `BENCH_KEEP_DB=1` keeps the database for a closer look; `BENCH_REQUESTS_DB=<dir>` has oha
//! write each request of the fixed-rate windows to `<dir>/idle-<round>.db` and
//! `<dir>/ingesting-<round>.db` (SQLite: when it was due, sent and answered).

#[path = "../tests/support/mod.rs"]
mod support;

mod common;

use std::fmt::Write as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;
use sqlx::migrate::MigrateDatabase;
use sqlx::{PgPool, Postgres};

use common::{
    applied, cores, cpu, env_or, free_port, fresh_database, median, mix, wait_for_cursor,
};
use support::jetstream::ScriptedJetstream;

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

/// What oha requests: the mixed URL list (a file), or one URL.
#[derive(Clone)]
enum Target {
    UrlsFrom(String),
    Url(String),
}

/// One oha run; `rate` None runs flat out. With `BENCH_REQUESTS_DB=<dir>`, fixed-rate runs
/// also write every request (due time, start, end, URL) to `<dir>/<label>.db` (SQLite), for
/// a look at when the slow ones happened.
fn oha(
    target: &Target,
    secs: u64,
    connections: u32,
    rate: Option<u32>,
    label: &str,
) -> Result<Value> {
    let mut cmd = std::process::Command::new("oha");
    match target {
        Target::UrlsFrom(path) => cmd.args(["--urls-from-file", path]),
        Target::Url(url) => cmd.arg(url),
    };
    cmd.args([
        "--no-tui",
        "--output-format",
        "json",
        "-z",
        &format!("{secs}s"),
        "-c",
        &connections.to_string(),
    ]);
    if let Some(rate) = rate {
        // Latency counted from when each request was due, not sent: a stall shows as the
        // queue it causes (no coordinated omission).
        cmd.args(["-q", &rate.to_string(), "--latency-correction"]);
        if let Some(dir) = std::env::var_os("BENCH_REQUESTS_DB") {
            let db = std::path::Path::new(&dir).join(format!("{label}.db"));
            cmd.arg("--db-url").arg(db);
        }
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

/// What one oha run measured.
struct Summary {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    /// Answers other than 200.
    non_ok: u64,
    /// Requests that got no answer (connection errors, timeouts).
    errors: u64,
}

impl Summary {
    fn parse(report: &Value) -> Result<Self> {
        let ms = |key: &str| {
            report["latencyPercentiles"][key]
                .as_f64()
                .map_or(f64::NAN, |s| s * 1000.0)
        };
        let non_ok = report["statusCodeDistribution"].as_object().map_or(0, |m| {
            m.iter()
                .filter(|(code, _)| code.as_str() != "200")
                .filter_map(|(_, n)| n.as_u64())
                .sum()
        });
        // oha cancels the requests in flight when the duration ends and lists them as
        // "aborted due to deadline": not the server's doing.
        let errors = report["errorDistribution"].as_object().map_or(0, |m| {
            m.iter()
                .filter(|(kind, _)| !kind.contains("aborted due to deadline"))
                .filter_map(|(_, n)| n.as_u64())
                .sum()
        });
        Ok(Self {
            rps: report["summary"]["requestsPerSec"]
                .as_f64()
                .context("requestsPerSec")?,
            p50_ms: ms("p50"),
            p99_ms: ms("p99"),
            p999_ms: ms("p99.9"),
            non_ok,
            errors,
        })
    }

    fn row(&self, label: &str) -> String {
        format!(
            "| {label} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {} |",
            self.rps, self.p50_ms, self.p99_ms, self.p999_ms, self.non_ok, self.errors
        )
    }
}

/// Runs oha on a blocking thread.
async fn run_oha(
    target: &Target,
    secs: u64,
    connections: u32,
    rate: Option<u32>,
    label: String,
) -> Result<Summary> {
    let target = target.clone();
    let report = tokio::task::spawn_blocking(move || oha(&target, secs, connections, rate, &label))
        .await??;
    Summary::parse(&report)
}

/// The server's request-time histograms (`/metrics`), by method: cumulative counts per
/// bucket bound, 2xx answers only (the runs fail on any other).
struct Histograms(std::collections::BTreeMap<String, Buckets>);

/// Cumulative counts by upper bound in seconds (`+Inf` last).
#[derive(Clone, Default)]
struct Buckets(Vec<(f64, u64)>);

impl Histograms {
    async fn scrape(http: &reqwest::Client, base: &str) -> Result<Histograms> {
        let text = http
            .get(format!("{base}/metrics"))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        let mut out = std::collections::BTreeMap::<String, Buckets>::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("plyr_http_request_duration_seconds_bucket{") else {
                continue;
            };
            let (labels, count) = rest.split_once("} ").context("histogram line")?;
            let label = |name: &str| {
                labels
                    .split(',')
                    .find_map(|kv| kv.strip_prefix(&format!("{name}=\"")))
                    .map(|v| v.trim_end_matches('"').to_owned())
            };
            if label("status").as_deref() != Some("2xx") {
                continue;
            }
            let (Some(method), Some(le)) = (label("method"), label("le")) else {
                continue;
            };
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse()?
            };
            out.entry(method)
                .or_default()
                .0
                .push((le, count.trim().parse()?));
        }
        Ok(Histograms(out))
    }

    /// Counts of both, method by method.
    fn plus(mut self, other: &Histograms) -> Histograms {
        for (method, buckets) in &other.0 {
            let mine = self.0.entry(method.clone()).or_default();
            if mine.0.is_empty() {
                mine.0.clone_from(&buckets.0);
            } else {
                for ((_, count), (_, more)) in mine.0.iter_mut().zip(&buckets.0) {
                    *count += more;
                }
            }
        }
        self
    }

    /// What was counted between `before` and this scrape.
    fn since(mut self, before: &Histograms) -> Histograms {
        for (method, buckets) in &mut self.0 {
            if let Some(old) = before.0.get(method) {
                for ((_, count), (_, was)) in buckets.0.iter_mut().zip(&old.0) {
                    *count -= was;
                }
            }
        }
        self
    }
}

impl Buckets {
    fn count(&self) -> u64 {
        self.0.last().map_or(0, |(_, n)| *n)
    }

    /// The share of requests over 2 ms and over 5 ms, as percentages.
    fn over_2_and_5(&self) -> String {
        let total = self.count().max(1) as f64;
        let over = |bound: f64| {
            let within = self
                .0
                .iter()
                .find(|(le, _)| *le >= bound)
                .map_or(0, |(_, n)| *n);
            100.0 * (self.count() - within) as f64 / total
        };
        format!("{:.2}% / {:.2}%", over(0.002), over(0.005))
    }
}

/// The machine's own Postgres round trip at `rate`: `pgbench` sending `select 1` over 10
/// connections at the same fixed rate, no HTTP and none of this project's code. It is the
/// floor under any tail that touches Postgres, measured in the same session: on some machines
/// it alone shows stalls of tens of ms. Returns p99 and p99.9 in ms (latency plus schedule lag,
/// the same due-time accounting as oha's `--latency-correction`); `None` without `pgbench`.
fn pgbench_round_trip(db_url: &str, rate: u32, secs: u64) -> Result<Option<(f64, f64)>> {
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("select1.sql");
    std::fs::write(&script, "select 1;\n")?;
    let prefix = dir.path().join("log");
    let run = std::process::Command::new("pgbench")
        .args(["-n", "-c", "10", "-j", "2", "-l"])
        .arg("-f")
        .arg(&script)
        .args(["-R", &rate.to_string(), "-T", &secs.to_string()])
        .arg(format!("--log-prefix={}", prefix.display()))
        .arg(db_url)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    let out = match run {
        Ok(out) => out,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err).context("running pgbench"),
    };
    if !out.status.success() {
        bail!("pgbench failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    // One line per transaction: client, number, latency us, script, epoch s, us, lag us.
    let mut waits = Vec::new();
    for entry in std::fs::read_dir(dir.path())? {
        let path = entry?.path();
        let is_log = path
            .file_name()
            .is_some_and(|name| name.to_string_lossy().starts_with("log."));
        if !is_log {
            continue;
        }
        for line in std::fs::read_to_string(&path)?.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(latency), Some(lag)) = (fields.get(2), fields.get(6)) else {
                continue;
            };
            waits.push(latency.parse::<u64>()? + lag.parse::<u64>()?);
        }
    }
    if waits.is_empty() {
        bail!("pgbench wrote no transaction log");
    }
    waits.sort_unstable();
    let at = |q: f64| waits[((waits.len() as f64 * q) as usize).min(waits.len() - 1)] as f64 / 1e3;
    Ok(Some((at(0.99), at(0.999))))
}

/// Whether Linux groups CPU time by session (autogroup). On, each Postgres backend (a session
/// of its own) gets as much CPU as the whole `plyr-appview` process: the read tail under
/// full-speed ingest is measured both ways in BENCHMARKS.md.
fn autogroup() -> &'static str {
    match std::fs::read_to_string("/proc/sys/kernel/sched_autogroup_enabled").as_deref() {
        Ok("1\n") => "autogroup on (kernel.sched_autogroup_enabled = 1)",
        Ok("0\n") => "autogroup off (kernel.sched_autogroup_enabled = 0)",
        _ => "no autogroup setting",
    }
}

async fn wait_healthy(base: &str) -> Result<()> {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = http
            .get(format!("{base}/xrpc/_health"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if up {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("server did not come up in 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The CPU wait of the reads' threads from one second into a fixed-rate run of `secs` to one
/// second before its end (oha's threads exist only while it runs), with the requests due in
/// that window.
async fn read_waits(watched: &[(u32, cpu::Role)], secs: u64, rate: u32) -> (cpu::ReadWaits, f64) {
    let window = secs.saturating_sub(2).max(1);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let from = cpu::ReadWaits::take(watched);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(window)).await;
    let waits = cpu::ReadWaits::take(watched).since(from);
    (waits, started.elapsed().as_secs_f64() * f64::from(rate))
}

/// The appview children and how their threads are counted (`run`, or `serve` and `index`).
fn appviews(children: &[tokio::process::Child], split: bool) -> Vec<(u32, cpu::Role)> {
    let roles: &[cpu::Role] = if split {
        &[cpu::Role::Serve, cpu::Role::Index]
    } else {
        &[cpu::Role::Run]
    };
    children
        .iter()
        .zip(roles)
        .filter_map(|(child, role)| Some((child.id()?, *role)))
        .collect()
}

/// One fixed-rate window: what oha measured, where the CPU went, how long the reads' threads
/// waited for a core (with the requests due meanwhile) and the server's time by method.
struct Window {
    summary: Summary,
    cpu: cpu::Usage,
    waits: cpu::ReadWaits,
    waited_requests: f64,
    methods: Histograms,
}

/// What every fixed-rate window reads, and how.
struct Reads<'a> {
    target: &'a Target,
    secs: u64,
    connections: u32,
    rate: u32,
    watched: &'a [(u32, cpu::Role)],
    http: &'a reqwest::Client,
    base: &'a str,
    pool: &'a PgPool,
}

impl Reads<'_> {
    async fn window(&self, label: String) -> Result<Window> {
        let before = Histograms::scrape(self.http, self.base).await?;
        let from = cpu::Snapshot::take(self.watched);
        let (summary, (waits, waited_requests)) = tokio::join!(
            run_oha(
                self.target,
                self.secs,
                self.connections,
                Some(self.rate),
                label
            ),
            read_waits(self.watched, self.secs, self.rate)
        );
        let summary = summary?;
        let cpu = from.until(
            &cpu::Snapshot::take(self.watched),
            &cpu::backends(self.pool).await?,
        );
        let methods = Histograms::scrape(self.http, self.base)
            .await?
            .since(&before);
        Ok(Window {
            summary,
            cpu,
            waits,
            waited_requests,
            methods,
        })
    }
}

/// One idle window, then one while the indexer ingests a backlog appended at its start.
struct Round {
    idle: Window,
    loaded: Window,
    /// Events applied during the ingesting window, per second.
    ingest_rate: f64,
    /// Whether the backlog ran out before the ingesting window ended.
    ran_out: bool,
    /// The whole backlog, from append to applied, per second.
    backlog_rate: f64,
    /// How long the database took to settle (autovacuum done) before the idle window.
    settled_secs: f64,
}

/// Waits (at most 120 s) until no autovacuum worker runs in this database, so an idle window
/// is idle: the vacuum the last backlog set off belongs to ingest, not to the idle figure.
/// Returns the seconds waited.
async fn settle(pool: &PgPool) -> Result<f64> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        let workers: i64 = sqlx::query_scalar(
            "select count(*) from pg_stat_activity \
             where backend_type = 'autovacuum worker' and datname = current_database()",
        )
        .fetch_one(pool)
        .await?;
        if workers == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(started.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> Result<()> {
    let rate: u32 = env_or("BENCH_RATE", 1000);
    let secs: u64 = env_or("BENCH_SECS", 20);
    let connections: u32 = env_or("BENCH_CONNECTIONS", 50);
    let rounds: usize = env_or("BENCH_ROUNDS", 3).max(1);
    let events: usize = env_or("BENCH_EVENTS", 400_000);
    println!("machine: {} cores, {}", cores(), autogroup());
    let (db_url, pool) = fresh_database("plyr_bench_load").await?;
    let seeded = Instant::now();
    seed(&pool).await?;
    println!(
        "seeded {TRACKS} tracks, {LIKES} likes, {} actors in {:.1}s",
        ARTISTS + FANS,
        seeded.elapsed().as_secs_f64()
    );
    // One backlog for all rounds, handed out `events` at a time.
    let backlog = mix(events * rounds);
    let (backlog_tracks, backlog_likes) = (backlog.tracks, backlog.likes);
    let mut frames = backlog.frames;

    // Silent until each round's ingesting window appends its part of the backlog.
    let jetstream = ScriptedJetstream::start(Vec::new()).await;
    let port = free_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let blob_dir = tempfile::tempdir()?;
    let split = std::env::var("BENCH_SPLIT").is_ok_and(|v| v == "1");
    let spawn = |args: &[&str]| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_plyr-appview"))
            .args(args)
            .args(["--database-url", &db_url])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting plyr-appview {}", args[0]))
    };
    let bind = format!("127.0.0.1:{port}");
    let blob_dir = blob_dir.path().to_str().context("temp path")?;
    let server = [
        "--bind",
        &bind,
        "--rate-limit",
        "0",
        "--ffmpeg",
        "none",
        "--blob-dir",
        blob_dir,
    ];
    let jetstream_url = jetstream.url();
    let indexer = ["--jetstream-url", jetstream_url.as_str()];
    // One process as deployed by default, or (BENCH_SPLIT=1) `serve` and `index` apart.
    let mut children = if split {
        vec![
            spawn(&[&["serve"][..], &server].concat())?,
            spawn(&[&["index"][..], &indexer].concat())?,
        ]
    } else {
        vec![spawn(&[&["run"][..], &server, &indexer].concat())?]
    };
    wait_healthy(&base).await?;
    // Every kind of URL answers 200 before it is timed.
    let http = reqwest::Client::new();
    let list = urls(&base);
    for url in list.lines().take(20) {
        let status = http.get(url).send().await?.status();
        if !status.is_success() {
            bail!("{url}: {status}");
        }
    }
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(file.path(), &list)?;
    let mixed = Target::UrlsFrom(file.path().to_str().context("temp path")?.to_owned());

    // The anchor: the same server and oha on an answer that needs no query.
    let health = Target::Url(format!("{base}/xrpc/_health"));
    let anchor = run_oha(&health, secs.min(10), connections, None, "anchor".into()).await?;
    let warm = run_oha(&mixed, 5, connections, None, "warm".into()).await?;
    println!("warm-up: {:.0} req/s", warm.rps);
    let max = run_oha(&mixed, secs, connections, None, "max".into()).await?;
    let floor = {
        let db_url = db_url.clone();
        let secs = secs.min(10);
        tokio::task::spawn_blocking(move || pgbench_round_trip(&db_url, rate, secs)).await??
    };

    let watched = appviews(&children, split);
    let reads = Reads {
        target: &mixed,
        secs,
        connections,
        rate,
        watched: &watched,
        http: &http,
        base: &base,
        pool: &pool,
    };
    // Idle and ingesting windows alternate, so both figures come from the same stretch of
    // the machine's time, and each is read as the median over the rounds: a single 20 s
    // window's p99 is its 200th-slowest request, and moved by 2x from run to run.
    let mut results = Vec::with_capacity(rounds);
    for round in 1..=rounds {
        let settled_secs = settle(&pool).await?;
        let idle = reads.window(format!("idle-{round}")).await?;
        let rest = frames.split_off(events.min(frames.len()));
        let part = std::mem::replace(&mut frames, rest);
        let part_last = part.last().context("an empty backlog")?.time_us;
        let before = applied(plyr_indexer::last_cursor(&pool, "jetstream").await?);
        jetstream.append(part);
        let appended = Instant::now();
        let loaded = reads.window(format!("ingesting-{round}")).await?;
        let window = appended.elapsed().as_secs_f64();
        let cursor = plyr_indexer::last_cursor(&pool, "jetstream").await?;
        let during = applied(cursor) - before;
        wait_for_cursor(&pool, part_last, Duration::from_secs(900)).await?;
        results.push(Round {
            idle,
            loaded,
            ingest_rate: during as f64 / window,
            ran_out: cursor.is_some_and(|c| c >= part_last),
            backlog_rate: events as f64 / appended.elapsed().as_secs_f64(),
            settled_secs,
        });
    }

    println!("| run | req/s | p50 ms | p99 ms | p99.9 ms | non-200 | errors |");
    println!("|---|---|---|---|---|---|---|");
    println!(
        "{}",
        anchor.row(&format!("anchor: `_health` flat out, {} s", secs.min(10)))
    );
    println!("{}", max.row(&format!("idle, max rate, {secs} s")));
    for (n, round) in results.iter().enumerate() {
        let n = n + 1;
        println!(
            "{}",
            round
                .idle
                .summary
                .row(&format!("round {n}: idle, fixed {rate} req/s, {secs} s"))
        );
        println!(
            "{}",
            round.loaded.summary.row(&format!(
                "round {n}: ingesting, fixed {rate} req/s, {secs} s"
            ))
        );
    }
    println!(
        "\n| round | settled before idle s | idle p99 ms | ingesting p99 ms | ratio | ingest during the reads events/s | whole part ({events} events) events/s |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (n, round) in results.iter().enumerate() {
        println!(
            "| {} | {:.1} | {:.2} | {:.2} | {:.2}x | {:.0} | {:.0} |",
            n + 1,
            round.settled_secs,
            round.idle.summary.p99_ms,
            round.loaded.summary.p99_ms,
            round.loaded.summary.p99_ms / round.idle.summary.p99_ms,
            round.ingest_rate,
            round.backlog_rate
        );
    }
    let idle_p99 = median(results.iter().map(|r| r.idle.summary.p99_ms).collect());
    let loaded_p99 = median(results.iter().map(|r| r.loaded.summary.p99_ms).collect());
    println!(
        "median p99 over {rounds} rounds: idle {idle_p99:.2} ms, ingesting {loaded_p99:.2} ms: \
         {:.2}x (goal: at most 2x)",
        loaded_p99 / idle_p99
    );
    match floor {
        Some((p99, p999)) => println!(
            "the machine's Postgres round trip alone (pgbench `select 1`, 10 connections, \
             fixed {rate}/s, idle): p99 {p99:.2} ms, p99.9 {p999:.2} ms"
        ),
        None => println!("pgbench not found: no Postgres round-trip floor measured"),
    }
    let idle_cpu = cpu::Usage::mean(
        &results
            .iter()
            .map(|r| r.idle.cpu.clone())
            .collect::<Vec<_>>(),
    );
    let loaded_cpu = cpu::Usage::mean(
        &results
            .iter()
            .map(|r| r.loaded.cpu.clone())
            .collect::<Vec<_>>(),
    );
    println!("\nCPU during the fixed-rate windows (from /proc), mean over the rounds:");
    idle_cpu.print_beside(&loaded_cpu, ["idle", "ingesting"], cores());
    let total = |pick: fn(&Round) -> &Window| {
        results
            .iter()
            .fold((cpu::ReadWaits::default(), 0.0), |(waits, n), r| {
                let w = pick(r);
                (waits.plus(w.waits), n + w.waited_requests)
            })
    };
    let (idle_waits, idle_requests) = total(|r| &r.idle);
    let (loaded_waits, loaded_requests) = total(|r| &r.loaded);
    println!(
        "\nCPU wait of the reads' threads (ready to run, not running: /proc schedstat), \
         seconds 1 to {} of each fixed-rate window, over all rounds:",
        secs.saturating_sub(1)
    );
    println!(
        "| threads | idle: µs per request | idle: µs per run | ingesting: µs per request | ingesting: µs per run |"
    );
    println!("|---|---|---|---|---|");
    for (name, idle, loaded) in [
        ("server", idle_waits.server, loaded_waits.server),
        ("oha", idle_waits.oha, loaded_waits.oha),
    ] {
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.1} |",
            idle.ns as f64 / 1e3 / idle_requests,
            idle.per_run_us(),
            loaded.ns as f64 / 1e3 / loaded_requests,
            loaded.per_run_us()
        );
    }
    let methods = |pick: fn(&Round) -> &Window| {
        results
            .iter()
            .fold(Histograms(Default::default()), |sum, r| {
                sum.plus(&pick(r).methods)
            })
    };
    let (idle_methods, loaded_methods) = (methods(|r| &r.idle), methods(|r| &r.loaded));
    println!(
        "\nserver-side time by method (its `/metrics` histogram), fixed {rate} req/s, all rounds:"
    );
    println!(
        "| method | idle: requests | idle: over 2 / 5 ms | ingesting: requests | ingesting: over 2 / 5 ms |"
    );
    println!("|---|---|---|---|---|");
    // The mix's methods only (not the scrapes themselves).
    let mixed_methods = idle_methods
        .0
        .iter()
        .filter(|(m, _)| m.starts_with("fm.plyr."));
    for (method, idle_buckets) in mixed_methods {
        let loaded_buckets = loaded_methods.0.get(method).cloned().unwrap_or_default();
        println!(
            "| {method} | {} | {} | {} | {} |",
            idle_buckets.count(),
            idle_buckets.over_2_and_5(),
            loaded_buckets.count(),
            loaded_buckets.over_2_and_5()
        );
    }

    let tracks: i64 =
        sqlx::query_scalar("select count(*) from track where did like 'did:plc:test%'")
            .fetch_one(&pool)
            .await?;
    let likes: i64 =
        sqlx::query_scalar("select count(*) from track_like where did like 'did:plc:test%'")
            .fetch_one(&pool)
            .await?;
    for child in &mut children {
        child.kill().await.ok();
    }
    pool.close().await;
    if std::env::var_os("BENCH_KEEP_DB").is_none() {
        Postgres::drop_database(&db_url).await?;
    } else {
        println!("kept the database: {db_url}");
    }

    if usize::try_from(tracks).ok() != Some(backlog_tracks)
        || usize::try_from(likes).ok() != Some(backlog_likes)
    {
        bail!(
            "backlog incomplete: {tracks} of {backlog_tracks} tracks, {likes} of {backlog_likes} likes"
        );
    }
    if results.iter().any(|r| r.ran_out) {
        bail!("a round's backlog ran out before its reads ended: raise BENCH_EVENTS");
    }
    let windows = results.iter().enumerate().flat_map(|(n, r)| {
        [
            (format!("round {}: idle", n + 1), &r.idle.summary),
            (format!("round {}: ingesting", n + 1), &r.loaded.summary),
        ]
    });
    let runs = [("anchor".to_owned(), &anchor), ("max".to_owned(), &max)]
        .into_iter()
        .chain(windows);
    for (name, run) in runs {
        if run.non_ok + run.errors > 0 {
            bail!(
                "{name} run: {} non-200 answers, {} errors",
                run.non_ok,
                run.errors
            );
        }
    }
    Ok(())
}

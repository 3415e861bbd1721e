//! The relay path's throughput: (1) verified commits/s of the verify stage alone (frame decode,
//! DID document from the directory, secp256k1 signature, MST inversion, lexicon validation),
//! on every core of the machine; (2) end-to-end events/s from a local websocket through
//! `run_relay` into Postgres. Repos are built with `RepoBuilder`, commits of 1-3 ops mixing
//! fm.plyr records with app.bsky ones, interleaved across repos as on the network.
//!
//! Run: `cargo bench -p plyr-indexer --bench relay` (needs Postgres at DATABASE_URL, see
//! .cargo/config.toml).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures_util::SinkExt;
use plyr_identity::{Resolver, ResolverConfig, SyncClient, SyncConfig};
use plyr_lexicons::Namespace;
use plyr_repo::{Frame, RepoBuilder, Write, decode_frame};
use serde::Serialize;
use serde_json::json;
use sqlx::migrate::MigrateDatabase;
use sqlx::{PgPool, Postgres};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

#[path = "../../benches/common/db.rs"]
mod db;
use db::fresh_database;

/// Repos in the stream; their documents are in `did_doc`, as after a restart.
const REPOS: usize = 1000;
/// Commits per repo after the untimed first one.
const COMMITS_PER_REPO: usize = 20;
const TIME: &str = "2026-11-30T00:00:00.000Z";
const ALPHABET: &[u8; 32] = b"234567abcdefghijklmnopqrstuvwxyz";

/// `n` in base32-sortable digits, `width` of them.
fn base32(mut n: u64, width: usize) -> String {
    let mut out = vec![b'2'; width];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[usize::try_from(n % 32).unwrap_or(0)];
        n /= 32;
    }
    String::from_utf8(out).unwrap_or_default()
}

fn did(i: usize) -> String {
    format!("did:plc:bench{}", base32(u64::try_from(i).unwrap_or(0), 19))
}

/// A TID-shaped record key, unique per (repo, round, op).
fn rkey(i: usize, round: usize, op: usize) -> String {
    let n = (u64::try_from(i).unwrap_or(0) << 20)
        | (u64::try_from(round).unwrap_or(0) << 4)
        | u64::try_from(op).unwrap_or(0);
    format!("3k{}", base32(n, 11))
}

fn writes(i: usize, round: usize) -> Vec<Write> {
    let track = |op| Write::Create {
        path: format!("fm.plyr.track/{}", rkey(i, round, op)),
        record: json!({"$type": "fm.plyr.track", "title": format!("t{i}-{round}"),
                       "artist": "bench", "fileType": "mp3",
                       "audioUrl": "https://cdn.example/a.mp3", "createdAt": TIME}),
    };
    let post = |op| Write::Create {
        path: format!("app.bsky.feed.post/{}", rkey(i, round, op)),
        record: json!({"$type": "app.bsky.feed.post", "text": "hello", "createdAt": TIME}),
    };
    let like = |op| Write::Create {
        path: format!("fm.plyr.like/{}", rkey(i, round, op)),
        record: json!({"$type": "fm.plyr.like", "createdAt": TIME, "subject": {
            "uri": format!("at://{}/fm.plyr.track/{}", did(i), rkey(i, 0, 0)),
            "cid": "bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"}}),
    };
    match (i + round) % 3 {
        0 => vec![track(0)],
        1 => vec![like(0), post(1)],
        _ => vec![post(0), post(1), track(2)],
    }
}

#[derive(Serialize)]
struct Header {
    op: i64,
    t: &'static str,
}

fn reseq(frame: &[u8], seq: i64) -> Result<Vec<u8>> {
    let Frame::Commit(mut event) = decode_frame(frame)? else {
        anyhow::bail!("not a commit frame");
    };
    event.seq = seq;
    let mut out = serde_ipld_dagcbor::to_vec(&Header {
        op: 1,
        t: "#commit",
    })?;
    out.extend(serde_ipld_dagcbor::to_vec(&event)?);
    Ok(out)
}

/// The stream and the state to track its repos: `(did, rev, data, document)` per repo.
struct Workload {
    frames: Vec<Vec<u8>>,
    repos: Vec<(String, String, String, serde_json::Value)>,
}

fn workload() -> Result<Workload> {
    let mut builders = Vec::with_capacity(REPOS);
    let mut repos = Vec::with_capacity(REPOS);
    for i in 0..REPOS {
        let mut secret = [0x42u8; 32];
        secret[..8].copy_from_slice(&u64::try_from(i + 1)?.to_be_bytes());
        let did = did(i);
        let mut repo = RepoBuilder::new(did.clone(), secret)?;
        let profile = Write::Create {
            path: "app.bsky.actor.profile/self".to_owned(),
            record: json!({"$type": "app.bsky.actor.profile", "displayName": "bench"}),
        };
        repo.commit(&[profile], TIME)?;
        let key = repo.public_key().to_did_key();
        let doc = json!({
            "id": did,
            "alsoKnownAs": [],
            "verificationMethod": [{
                "id": format!("{did}#atproto"), "type": "Multikey", "controller": did,
                "publicKeyMultibase": key.trim_start_matches("did:key:"),
            }],
            "service": [],
        });
        let rev = repo.rev().context("rev")?.to_owned();
        repos.push((did, rev, repo.data().to_string(), doc));
        builders.push(repo);
    }
    let mut frames = Vec::with_capacity(REPOS * COMMITS_PER_REPO);
    for round in 0..COMMITS_PER_REPO {
        for (i, repo) in builders.iter_mut().enumerate() {
            let frame = repo.commit(&writes(i, round), TIME)?;
            let seq = i64::try_from(frames.len() + 1)?;
            frames.push(reseq(&frame, seq)?);
        }
    }
    Ok(Workload { frames, repos })
}

/// Tracks every repo at its first commit and stores its document, as a restart finds them.
async fn seed(pool: &PgPool, work: &Workload) -> Result<()> {
    for (did, rev, data, doc) in &work.repos {
        sqlx::query("insert into repo_state (did, rev, data_cid) values ($1, $2, $3)")
            .bind(did)
            .bind(rev)
            .bind(data)
            .execute(pool)
            .await?;
        sqlx::query("insert into did_doc (did, doc) values ($1, $2)")
            .bind(did)
            .bind(doc)
            .execute(pool)
            .await?;
    }
    Ok(())
}

fn resolver() -> Result<Resolver> {
    // Never contacted: every document is in did_doc.
    Ok(Resolver::new(ResolverConfig {
        plc_url: url::Url::parse("http://127.0.0.1:9")?,
        allow_loopback: true,
        cache_capacity: 100_000,
        ..ResolverConfig::default()
    })?)
}

fn namespace() -> Result<Namespace> {
    Ok(Namespace::new("fm.plyr")?)
}

async fn verify_stage(work: &Workload, workers: usize) -> Result<()> {
    let (url, pool) = fresh_database("plyr_bench_relay_verify").await?;
    seed(&pool, work).await?;
    let resolver = resolver()?;
    let frames: Vec<bytes::Bytes> = work.frames.iter().cloned().map(Into::into).collect();
    // Warm-up: one commit per repo, so documents are in the resolver's cache.
    let warm = frames.iter().take(REPOS).cloned().collect();
    let ns = namespace()?;
    plyr_indexer::bench_verify_stage(pool.clone(), resolver.clone(), ns.clone(), warm, workers)
        .await;
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let verified =
        plyr_indexer::bench_verify_stage(pool.clone(), resolver, ns, frames, workers).await;
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    anyhow::ensure!(
        verified == work.frames.len(),
        "only {verified} commits verified"
    );
    let count = f64::from(u32::try_from(verified)?);
    println!(
        "verify stage: {verified} commits (1-3 ops, secp256k1) in {secs:.2}s = {:.0} verified commits/s on {workers} workers",
        count / secs
    );
    if let Some(cpu) = cpu {
        // The machine is shared: CPU time is the figure that does not depend on the others.
        println!(
            "verify stage: {cpu:.2} CPU-s = {:.0} verified commits per CPU-second (x{workers} cores = {:.0}/s when they are free)",
            count / cpu,
            count / cpu * f64::from(u32::try_from(workers)?)
        );
    }
    pool.close().await;
    Postgres::drop_database(&url).await?;
    Ok(())
}

async fn end_to_end(work: &Workload) -> Result<()> {
    let (url, pool) = fresh_database("plyr_bench_relay_e2e").await?;
    seed(&pool, work).await?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let frames = work.frames.clone();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        let mut ws = tokio_tungstenite::accept_async(tcp).await?;
        for frame in frames {
            ws.feed(Message::Binary(frame.into())).await?;
        }
        ws.flush().await?;
        // Stay open until the indexer hangs up.
        futures_util::StreamExt::next(&mut ws).await;
        anyhow::Ok(())
    });
    let config = plyr_indexer::RelayConfig {
        url: url::Url::parse(&format!("ws://{addr}"))?,
        namespace: namespace()?,
        start_cursor: Some(0),
    };
    let source = config.cursor_source();
    let stop = CancellationToken::new();
    let started = Instant::now();
    let indexer = tokio::spawn(plyr_indexer::run_relay(
        pool.clone(),
        config,
        resolver()?,
        SyncClient::new(SyncConfig::default())?,
        stop.clone(),
    ));
    let last = i64::try_from(work.frames.len())?;
    loop {
        if plyr_indexer::last_cursor(&pool, &source).await? >= Some(last) {
            break;
        }
        anyhow::ensure!(started.elapsed() < Duration::from_secs(600), "timed out");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    stop.cancel();
    indexer.await??;
    server.abort();
    let _ = server.await;
    let tracks: i64 = sqlx::query_scalar("select count(*) from track")
        .fetch_one(&pool)
        .await?;
    println!(
        "end to end: {} commits relay -> Postgres in {secs:.2}s = {:.0} events/s ({tracks} tracks stored)",
        work.frames.len(),
        f64::from(u32::try_from(work.frames.len())?) / secs
    );
    pool.close().await;
    Postgres::drop_database(&url).await?;
    Ok(())
}

/// This process's user + system CPU time, from `/proc/self/stat` (Linux; 100 ticks/s, as
/// `getconf CLK_TCK` reports on these machines).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name (which may hold spaces) start at field 3.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

#[tokio::main]
async fn main() -> Result<()> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let started = Instant::now();
    let work = workload()?;
    println!(
        "built {} commits of {REPOS} repos in {:.1}s",
        work.frames.len(),
        started.elapsed().as_secs_f64()
    );
    verify_stage(&work, workers).await?;
    end_to_end(&work).await?;
    Ok(())
}

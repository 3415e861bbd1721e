//! Backfill benchmark, records/s:
//!
//! - walk: a real Bluesky repo (`repo/tests/fixtures/little.car`, 278 records): read with every
//!   block hash-checked, MST walked, every record decoded to JSON, repeated.
//! - verify + walk + validate: a `RepoBuilder` repo of fm.plyr records (half tracks, half
//!   likes): read, signature, walk, decode, lexicon validation, in memory.
//! - full: the same repo through `plyr_indexer::backfill` for its DID: getRepo from a loopback
//!   PDS (DID document from a loopback PLC), every check above, and one transaction into a
//!   fresh Postgres database.
//!
//! Run: `cargo bench -p plyr-indexer --bench backfill` (Postgres at DATABASE_URL, see
//! .cargo/config.toml). `BENCH_RECORDS=N` sets the repo's size (default 20000).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use plyr_identity::{Did, Resolver, ResolverConfig, SyncClient, SyncConfig};
use plyr_indexer::{BackfillConfig, BackfillProgress, BackfillTarget, backfill};
use plyr_lexicons::Namespace;
use plyr_repo::{CarLimits, Repo, RepoBuilder, Write, cbor_to_json};
use serde_json::{Value, json};
use sqlx::Postgres;
use sqlx::migrate::MigrateDatabase;
use tokio_util::sync::CancellationToken;

#[path = "../../benches/common/db.rs"]
mod db;
use db::fresh_database;

const LITTLE_CAR: &[u8] = include_bytes!("../../repo/tests/fixtures/little.car");
const DID: &str = "did:plc:benchbenchbenchbenchbenc";
/// Writes per commit while building the repo (the builder's cost is per commit).
const WRITES_PER_COMMIT: usize = 500;
const WALK_ROUNDS: usize = 200;

fn limits() -> CarLimits {
    CarLimits {
        max_bytes: 1 << 30,
        max_blocks: 16_000_000,
        max_block_bytes: 2 << 20,
    }
}

fn per_second(count: usize, seconds: f64) -> f64 {
    // Counts here are far below 2^52: exact as f64.
    let count = u32::try_from(count).map_or(f64::MAX, f64::from);
    (count / seconds.max(1e-9)).round()
}

/// Read + walk + decode of the real repo, `WALK_ROUNDS` times.
fn bench_walk() -> Result<()> {
    let started = Instant::now();
    let mut records = 0;
    for _ in 0..WALK_ROUNDS {
        let repo = Repo::read(LITTLE_CAR, &limits()).context("reading little.car")?;
        for (_, cid) in repo.records().context("walking")? {
            cbor_to_json(repo.record(&cid).context("record")?).context("decoding")?;
            records += 1;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "walk (real bsky repo, {} bytes, {WALK_ROUNDS} rounds): {records} records in {seconds:.3} s = {} records/s",
        LITTLE_CAR.len(),
        per_second(records, seconds)
    );
    Ok(())
}

/// A valid TID that sorts like `n` (record keys of tracks and likes are TIDs).
fn tid(n: usize) -> String {
    const CHARS: &[u8; 32] = b"234567abcdefghijklmnopqrstuvwxyz";
    // Offset so the first character is a TID's (its top bit is zero).
    let value = u64::try_from(n).unwrap_or(0) + (1 << 60);
    (0..13)
        .rev()
        .map(|i| {
            let digit = usize::try_from((value >> (5 * i)) & 31).unwrap_or(0);
            char::from(CHARS[digit])
        })
        .collect()
}

/// A repo of `n` fm.plyr records: tracks, and likes of them.
fn build_repo(n: usize) -> Result<RepoBuilder> {
    let mut repo = RepoBuilder::new(DID, [7; 32]).context("builder")?;
    let mut writes = Vec::with_capacity(WRITES_PER_COMMIT);
    for i in 0..n {
        let rkey = tid(i);
        let write = if i % 2 == 0 {
            Write::Create {
                path: format!("fm.plyr.track/{rkey}"),
                record: json!({"$type": "fm.plyr.track", "title": format!("track {i}"),
                    "artist": "Bench", "fileType": "mp3",
                    "audioUrl": "https://cdn.example/a.mp3",
                    "createdAt": "2026-01-01T00:00:00.000Z"}),
            }
        } else {
            let subject = format!("at://{DID}/fm.plyr.track/{}", tid(i - 1));
            Write::Create {
                path: format!("fm.plyr.like/{rkey}"),
                record: json!({"$type": "fm.plyr.like",
                    "subject": {"uri": subject,
                        "cid": "bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"},
                    "createdAt": "2026-01-01T00:00:00.000Z"}),
            }
        };
        writes.push(write);
        if writes.len() == WRITES_PER_COMMIT || i + 1 == n {
            repo.commit(&writes, "2026-01-01T00:00:00Z")
                .context("commit")?;
            writes.clear();
        }
    }
    Ok(repo)
}

/// Everything but the network and the database: read, signature, walk, decode, validate.
fn bench_verify(car: &[u8], repo: &RepoBuilder) -> Result<usize> {
    let namespace = Namespace::new("fm.plyr").context("namespace")?;
    let started = Instant::now();
    let parsed = Repo::read(car, &limits()).context("reading")?;
    parsed
        .verify_signature(&repo.public_key())
        .context("signature")?;
    let mut valid = 0;
    for (path, cid) in parsed.records().context("walking")? {
        let Some((collection, rkey)) = path.split_once('/') else {
            continue;
        };
        let record = cbor_to_json(parsed.record(&cid).context("record")?).context("decoding")?;
        if namespace.validate(collection, rkey, &record).is_ok() {
            valid += 1;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "verify + walk + validate (RepoBuilder repo, {} bytes): {valid} records in {seconds:.3} s = {} records/s",
        car.len(),
        per_second(valid, seconds)
    );
    Ok(valid)
}

#[derive(Clone)]
struct Served {
    doc: Arc<Value>,
    car: Arc<Vec<u8>>,
}

async fn plc_doc(State(served): State<Served>, Path(did): Path<String>) -> Response {
    if did == DID {
        (StatusCode::OK, served.doc.to_string()).into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

async fn get_repo(
    State(served): State<Served>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if query.get("did").map(String::as_str) == Some(DID) {
        (StatusCode::OK, served.car.as_ref().clone()).into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

/// getRepo over loopback, all checks, one transaction into Postgres.
async fn bench_full(car: Vec<u8>, repo: &RepoBuilder, expected: usize) -> Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let key = repo.public_key().to_did_key();
    let doc = json!({
        "id": DID,
        "verificationMethod": [{"id": "#atproto", "type": "Multikey", "controller": DID,
            "publicKeyMultibase": key.trim_start_matches("did:key:")}],
        "service": [{"id": "#atproto_pds", "type": "AtprotoPersonalDataServer",
            "serviceEndpoint": base}],
    });
    let bytes = car.len();
    let served = Served {
        doc: Arc::new(doc),
        car: Arc::new(car),
    };
    let app = axum::Router::new()
        .route("/xrpc/com.atproto.sync.getRepo", get(get_repo))
        .route("/{did}", get(plc_doc))
        .with_state(served);
    let stop = CancellationToken::new();
    let server = tokio::spawn({
        let stop = stop.clone();
        async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
        }
    });

    let (db_url, pool) = fresh_database("plyr_bench_backfill").await?;
    let config = BackfillConfig {
        namespace: Namespace::new("fm.plyr")?,
        target: BackfillTarget::Dids(vec![Did::new(DID)?]),
        resolver: Resolver::new(ResolverConfig {
            plc_url: base.parse()?,
            allow_loopback: true,
            ..ResolverConfig::default()
        })?,
        sync: SyncClient::new(SyncConfig {
            allow_loopback: true,
            ..SyncConfig::default()
        })?,
        concurrency: 1,
        max_attempts: 1,
    };
    let (progress, _watched) = tokio::sync::watch::channel(BackfillProgress::default());
    let started = Instant::now();
    let summary = backfill(pool.clone(), config, progress, CancellationToken::new()).await?;
    let seconds = started.elapsed().as_secs_f64();
    let records = usize::try_from(summary.records).unwrap_or(usize::MAX);
    if summary.done != 1 || records != expected {
        bail!("backfill did not apply the repo: {summary:?}");
    }
    let stored: i64 = sqlx::query_scalar("select count(*) from record")
        .fetch_one(&pool)
        .await?;
    println!(
        "full (getRepo over loopback + verify + walk + validate + Postgres, {bytes} bytes): {records} records ({stored} stored) in {seconds:.3} s = {} records/s",
        per_second(records, seconds)
    );
    pool.close().await;
    Postgres::drop_database(&db_url).await?;
    stop.cancel();
    server.await??;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    // Cargo passes `--bench`; this harness takes no arguments.
    let n: usize = match std::env::var("BENCH_RECORDS") {
        Ok(n) => n.parse().context("BENCH_RECORDS")?,
        Err(_) => 20_000,
    };
    bench_walk()?;
    let started = Instant::now();
    let repo = build_repo(n)?;
    let car = repo.export_car().context("export")?;
    println!(
        "built a {n}-record repo in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let valid = bench_verify(&car, &repo)?;
    if valid != n {
        bail!("{valid} of {n} records valid");
    }
    bench_full(car, &repo, n).await
}

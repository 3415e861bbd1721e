//! Upload benchmark through HTTP (issue 5): a generated WAV (1 GiB by default,
//! `BLOB_BENCH_MIB` to change) is POSTed to `fm.plyr.blob.uploadBlob` on a real server (the
//! appview router on loopback, a local-folder store, Postgres, a service-auth token verified
//! against a loopback PLC); compared with `sha256sum` of the same file, with the process's
//! peak RSS growth during the upload and the latency of 64 KiB Range reads of `/blob/{cid}`.
//!
//! Run: `cargo bench -p plyr-appview-xrpc --bench blob_http` (Postgres on 127.0.0.1:5432).

#[path = "../../blobstore/tests/rss.rs"]
#[allow(dead_code)]
mod rss;

use std::io::Write as _;
use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use plyr_appview_xrpc::{AppState, Authenticator, BlobService};
use plyr_blobstore::{BlobStore, FsBackend};
use plyr_identity::{Did, Resolver, ResolverConfig, ServiceAuth};
use serde_json::json;
use sha2::Digest as _;
use sqlx::migrate::MigrateDatabase as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const DEFAULT_MIB: u64 = 1024;
const DATABASE: &str = "postgres://postgres@127.0.0.1:5432/plyr_bench_blob_http";
const SERVICE: &str = "did:web:bench.plyr.example";
const ISSUER: &str = "did:plc:benchbenchbenchbenchbenc";
/// Range reads timed, and their size.
const RANGE_READS: usize = 300;
const RANGE_LEN: u64 = 64 * 1024;
/// Peak RSS growth allowed during the upload: the 4 MiB validation prefix, socket and write
/// buffers, allocator slack.
const RSS_BUDGET: u64 = 16 << 20;

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let mib: u64 = match std::env::var("BLOB_BENCH_MIB") {
        Ok(text) => text.parse().context("BLOB_BENCH_MIB")?,
        Err(_) => DEFAULT_MIB,
    };
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("upload.wav");
    let size = write_wav(&file, mib << 20)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "blob HTTP upload benchmark: {} MiB WAV", size >> 20)?;

    let mut sha_best = f64::MAX;
    for _ in 0..2 {
        let started = Instant::now();
        let status = std::process::Command::new("sha256sum")
            .arg(&file)
            .stdout(std::process::Stdio::null())
            .status()
            .context("running sha256sum")?;
        if !status.success() {
            bail!("sha256sum failed");
        }
        sha_best = sha_best.min(started.elapsed().as_secs_f64());
    }

    if !sqlx::Postgres::database_exists(DATABASE).await? {
        sqlx::Postgres::create_database(DATABASE).await?;
    }
    let db = sqlx::PgPool::connect(DATABASE).await?;
    plyr_migrations::MIGRATOR.run(&db).await?;
    sqlx::query("truncate blob").execute(&db).await?;

    let key = secp256k1::SecretKey::from_byte_array([7; 32])?;
    let stop = CancellationToken::new();
    let plc = plc(&key, stop.clone()).await?;
    let resolver = Resolver::new(ResolverConfig {
        plc_url: plc.parse()?,
        allow_loopback: true,
        ..ResolverConfig::default()
    })?;
    let verifier = ServiceAuth::new(resolver, Did::new(SERVICE)?, "plyr_appview");
    let store = BlobStore::new(FsBackend::open(dir.path().join("blobs")).await?);
    let state = AppState::new(db.clone())
        .with_authenticator(Authenticator::new(verifier))
        .with_blobs(BlobService::new(store, 4 << 30));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(plyr_appview_xrpc::serve(listener, state, stop.clone()));

    // Warm-up: the pool's connections, the issuer's DID document, the decoders' first use.
    let warm = dir.path().join("warm.wav");
    let warm_size = write_wav(&warm, 8 << 20)?;
    upload(addr, &warm, warm_size, &token(&key, "warm-up")?).await?;

    let peak = rss::PeakRss::start()?;
    let exact = peak.exact();
    let started = Instant::now();
    let answer = upload(addr, &file, size, &token(&key, "bench")?).await?;
    let upload_secs = started.elapsed().as_secs_f64();
    let growth = peak.finish()?;
    let cid = answer["blob"]["ref"]["$link"]
        .as_str()
        .context("no cid in the answer")?
        .to_owned();

    let mut latencies = Vec::with_capacity(RANGE_READS);
    let mut offset = 0u64;
    for i in 0..RANGE_READS {
        // A stride that is not a multiple of any buffer size, across the whole file.
        offset = (offset + 7_919 * RANGE_LEN + u64::try_from(i)?) % (size - RANGE_LEN);
        let started = Instant::now();
        let got = range(addr, &cid, offset, RANGE_LEN).await?;
        latencies.push(started.elapsed());
        if u64::try_from(got)? != RANGE_LEN {
            bail!("range read returned {got} bytes");
        }
    }
    latencies.sort();
    let pct = |p: usize| latencies[(latencies.len() * p / 100).min(latencies.len() - 1)];

    let mibs = |secs: f64| (size as f64 / f64::from(1 << 20)) / secs;
    writeln!(out, "{:<34} {:>9} {:>9}", "", "seconds", "MiB/s")?;
    writeln!(
        out,
        "{:<34} {:>9.2} {:>9.0}",
        "sha256sum",
        sha_best,
        mibs(sha_best)
    )?;
    writeln!(
        out,
        "{:<34} {:>9.2} {:>9.0}",
        "POST uploadBlob (validate + store)",
        upload_secs,
        mibs(upload_secs)
    )?;
    writeln!(
        out,
        "peak RSS growth during upload (after a warm-up upload): {} KiB{}",
        growth / 1024,
        if exact { "" } else { " (sampled)" }
    )?;
    writeln!(
        out,
        "GET /blob Range {} KiB x {RANGE_READS}: p50 {:?}, p99 {:?}, max {:?}",
        RANGE_LEN / 1024,
        pct(50),
        pct(99),
        pct(100)
    )?;
    stop.cancel();
    server.await??;
    if growth > RSS_BUDGET {
        bail!(
            "RSS grew {} KiB, budget {} KiB",
            growth / 1024,
            RSS_BUDGET / 1024
        );
    }
    Ok(())
}

/// A 16-bit mono 44.1 kHz WAV of about `bytes` bytes, noise after a sine start (PCM is
/// validated by decoding packets, and noise is valid PCM).
fn write_wav(path: &Path, bytes: u64) -> anyhow::Result<u64> {
    let data_len = u32::try_from(bytes.min(u64::from(u32::MAX - 64)) & !1)?;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    file.write_all(b"RIFF")?;
    file.write_all(&(36 + data_len).to_le_bytes())?;
    file.write_all(b"WAVEfmt ")?;
    file.write_all(&16u32.to_le_bytes())?;
    file.write_all(&1u16.to_le_bytes())?;
    file.write_all(&1u16.to_le_bytes())?;
    file.write_all(&44_100u32.to_le_bytes())?;
    file.write_all(&88_200u32.to_le_bytes())?;
    file.write_all(&2u16.to_le_bytes())?;
    file.write_all(&16u16.to_le_bytes())?;
    file.write_all(b"data")?;
    file.write_all(&data_len.to_le_bytes())?;
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut block = vec![0u8; 1 << 16];
    let mut left = u64::from(data_len);
    while left > 0 {
        for word in block.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        let n = usize::try_from(left.min(1 << 16))?;
        file.write_all(&block[..n])?;
        left -= u64::try_from(n)?;
    }
    file.flush()?;
    Ok(44 + u64::from(data_len))
}

/// POSTs the file with a Content-Length, streaming it in 64 KiB reads; the JSON answer.
async fn upload(
    addr: std::net::SocketAddr,
    path: &Path,
    size: u64,
    token: &str,
) -> anyhow::Result<serde_json::Value> {
    let mut socket = TcpStream::connect(addr).await?;
    let head = format!(
        "POST /xrpc/fm.plyr.blob.uploadBlob HTTP/1.1\r\nHost: {addr}\r\nContent-Type: audio/wav\r\n\
         Content-Length: {size}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    socket.write_all(head.as_bytes()).await?;
    let mut file = tokio::fs::File::open(path).await?;
    tokio::io::copy(&mut file, &mut socket).await?;
    let mut response = Vec::new();
    socket.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").context("no response head")?;
    if !head.starts_with("HTTP/1.1 200") {
        bail!("upload failed: {head}\n{body}");
    }
    Ok(serde_json::from_str(body)?)
}

/// One `GET /blob/{cid}` with a Range; the body length.
async fn range(
    addr: std::net::SocketAddr,
    cid: &str,
    offset: u64,
    len: u64,
) -> anyhow::Result<usize> {
    let mut socket = TcpStream::connect(addr).await?;
    let request = format!(
        "GET /blob/{cid} HTTP/1.1\r\nHost: {addr}\r\nRange: bytes={offset}-{}\r\n\
         Connection: close\r\n\r\n",
        offset + len - 1
    );
    socket.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    socket.read_to_end(&mut response).await?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no response head")?;
    if !response.starts_with(b"HTTP/1.1 206") {
        bail!(
            "range read: {}",
            String::from_utf8_lossy(&response[..split])
        );
    }
    Ok(response.len() - split - 4)
}

/// An ES256K service-auth token for the upload, from ISSUER to SERVICE.
fn token(key: &secp256k1::SecretKey, jti: &str) -> anyhow::Result<String> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": "ES256K", "typ": "JWT"}).to_string());
    let claims = json!({"iss": ISSUER, "aud": SERVICE, "lxm": "fm.plyr.blob.uploadBlob",
                        "jti": jti, "iat": now, "exp": now + 3600});
    let signed = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
    let digest: [u8; 32] = sha2::Sha256::digest(signed.as_bytes()).into();
    let sig = secp256k1::SECP256K1
        .sign_ecdsa(secp256k1::Message::from_digest(digest), key)
        .serialize_compact();
    Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig)))
}

/// A loopback PLC serving ISSUER's document; its URL.
async fn plc(key: &secp256k1::SecretKey, stop: CancellationToken) -> anyhow::Result<String> {
    let public = secp256k1::PublicKey::from_secret_key(secp256k1::SECP256K1, key);
    let multibase = plyr_repo::PublicKey::K256(public).to_did_key();
    let doc = json!({
        "id": ISSUER,
        "verificationMethod": [{
            "id": format!("{ISSUER}#atproto"), "type": "Multikey", "controller": ISSUER,
            "publicKeyMultibase": multibase.trim_start_matches("did:key:"),
        }],
    });
    let app = axum::Router::new().route(
        &format!("/{ISSUER}"),
        axum::routing::get(move || async move { axum::Json(doc) }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    // Detached: it serves until `stop`, which the benchmark cancels before exiting.
    drop(tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
    }));
    Ok(url)
}

//! [`run`] against a scripted Jetstream inside the test: it indexes what the server sends, and
//! when the server hangs up it reconnects with `cursor=` at the last committed cursor minus
//! [`REWIND_US`], with and without zstd compression.

use std::time::Duration;

use futures_util::SinkExt;
use plyr_lexicons::Namespace;
use sqlx::PgPool;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_util::sync::CancellationToken;

use crate::testing::*;
use crate::{JetstreamConfig, REWIND_US, last_cursor, run};

const SOURCE: &str = "jetstream";
const T0: i64 = 1_732_000_000_000_000;

async fn cursor_is(pool: &PgPool, want: i64) -> bool {
    matches!(last_cursor(pool, SOURCE).await, Ok(Some(c)) if c >= want)
}

async fn track_title(pool: &PgPool, uri: &str) -> Option<String> {
    sqlx::query_scalar("select title from track where uri = $1")
        .bind(uri)
        .fetch_optional(pool)
        .await
        .ok()
        .flatten()
}

/// Accepts one connection, reporting the query string it asked for.
// The handshake callback's signature (and its large error type) is tungstenite's.
#[allow(clippy::result_large_err)]
async fn accept(listener: &TcpListener) -> (WebSocketStream<TcpStream>, String) {
    let (tcp, _) = listener.accept().await.expect("accept");
    let mut query = String::new();
    let ws = tokio_tungstenite::accept_hdr_async(tcp, |req: &Request, resp: Response| {
        query = req.uri().query().unwrap_or_default().to_owned();
        Ok(resp)
    })
    .await
    .expect("websocket handshake");
    (ws, query)
}

async fn send(ws: &mut WebSocketStream<TcpStream>, event: &str, compress: bool) {
    let message = if compress {
        let mut compressor =
            zstd::bulk::Compressor::with_dictionary(3, crate::source::ZSTD_DICTIONARY)
                .expect("compressor");
        Message::Binary(
            compressor
                .compress(event.as_bytes())
                .expect("compress")
                .into(),
        )
    } else {
        Message::Text(event.to_owned().into())
    };
    ws.send(message).await.expect("send");
}

/// Serves two connections: the first sends three events, waits until they are committed and
/// hangs up; the second sends two more and stays open until `done`.
async fn scripted_jetstream(
    listener: TcpListener,
    pool: PgPool,
    compress: bool,
    queries: mpsc::Sender<String>,
    done: CancellationToken,
) {
    let alice_track = uri(ALICE, "track", &tid(100));
    let (mut ws, query) = accept(&listener).await;
    queries.send(query).await.expect("report query");
    for event in [
        track(T0 + 1, ALICE, &tid(100), &tid(1), "First"),
        like(T0 + 2, BOB, &tid(200), &tid(2), &alice_track),
        identity(T0 + 3, ALICE, Some("Alice.Example.com")),
    ] {
        send(&mut ws, &event, compress).await;
    }
    wait_for("the first connection's events to commit", || {
        cursor_is(&pool, T0 + 3)
    })
    .await;
    ws.close(None).await.expect("close");
    drop(ws);

    let (mut ws, query) = accept(&listener).await;
    queries.send(query).await.expect("report query");
    for event in [
        // A replay from the rewind window, then new events.
        track(T0 + 1, ALICE, &tid(100), &tid(1), "First"),
        track(T0 + 4, ALICE, &tid(100), &tid(3), "Second"),
        "garbage".to_owned(),
        track(T0 + 5, BOB, &tid(101), &tid(4), "Bob's"),
    ] {
        send(&mut ws, &event, compress).await;
    }
    done.cancelled().await;
}

async fn indexes_and_resumes(pool: PgPool, compress: bool) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (queries_tx, mut queries) = mpsc::channel(4);
    let done = CancellationToken::new();
    let server = tokio::spawn(scripted_jetstream(
        listener,
        pool.clone(),
        compress,
        queries_tx,
        done.clone(),
    ));
    let shutdown = CancellationToken::new();
    let config = JetstreamConfig {
        url: format!("ws://{addr}/subscribe").parse().expect("url"),
        namespace: Namespace::new("fm.plyr").expect("namespace"),
        compress,
        cursor_source: SOURCE.into(),
    };
    let indexer = tokio::spawn(run(pool.clone(), config, shutdown.clone()));

    let compress_param = if compress { "&compress=true" } else { "" };
    let first = queries.recv().await.expect("first connection");
    assert_eq!(
        first,
        format!(
            "wantedCollections=fm.plyr.*&wantedCollections=app.bsky.actor.profile{compress_param}"
        )
    );
    let second = queries.recv().await.expect("second connection");
    assert_eq!(
        second,
        format!(
            "wantedCollections=fm.plyr.*&wantedCollections=app.bsky.actor.profile&cursor={}{compress_param}",
            T0 + 3 - REWIND_US
        )
    );

    let bob_track = uri(BOB, "track", &tid(101));
    wait_for("the second connection's events", || async {
        track_title(&pool, &bob_track).await.is_some()
    })
    .await;
    let alice_track = uri(ALICE, "track", &tid(100));
    assert_eq!(
        track_title(&pool, &alice_track).await.as_deref(),
        Some("Second")
    );
    let (handle, likes): (Option<String>, i32) = sqlx::query_as(
        "select a.handle, t.like_count from actor a join track t on t.did = a.did
         where t.uri = $1",
    )
    .bind(&alice_track)
    .fetch_one(&pool)
    .await
    .expect("alice");
    assert_eq!(handle.as_deref(), Some("alice.example.com"));
    assert_eq!(likes, 1);
    assert_eq!(
        last_cursor(&pool, SOURCE).await.expect("cursor"),
        Some(T0 + 5)
    );
    let malformed: i64 =
        sqlx::query_scalar("select count from indexer_skip where reason = 'malformed_event'")
            .fetch_one(&pool)
            .await
            .expect("skips");
    assert_eq!(malformed, 1);

    shutdown.cancel();
    let stopped = tokio::time::timeout(WAIT, indexer)
        .await
        .expect("indexer stops on shutdown")
        .expect("indexer task");
    assert!(matches!(stopped, Ok(())), "{stopped:?}");
    done.cancel();
    server.await.expect("server task");
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn indexes_and_resumes_after_a_disconnect(pool: PgPool) {
    indexes_and_resumes(pool, false).await;
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn indexes_and_resumes_compressed(pool: PgPool) {
    indexes_and_resumes(pool, true).await;
}

/// Throughput of the whole pipeline (websocket, decode, validate, fold, store) on a realistic
/// mix, on a multi-threaded runtime like the binary's; run with
/// `cargo test --release -p plyr-indexer -- --ignored --nocapture measure`. It uses its own
/// database, `plyr_indexer_measure`, dropped afterwards unless `KEEP_MEASURE_DB` is set.
#[test]
#[ignore = "measurement, not a check"]
fn measure_ingest_throughput() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let url = std::env::var("DATABASE_URL").expect("DATABASE_URL");
        let admin = PgPool::connect(&url).await.expect("connect");
        sqlx::query("drop database if exists plyr_indexer_measure")
            .execute(&admin)
            .await
            .expect("drop");
        sqlx::query("create database plyr_indexer_measure")
            .execute(&admin)
            .await
            .expect("create");
        let base = url.rsplit_once('/').map_or(url.as_str(), |(b, _)| b);
        let pool = PgPool::connect(&format!("{base}/plyr_indexer_measure"))
            .await
            .expect("connect");
        plyr_migrations::MIGRATOR.run(&pool).await.expect("migrate");
        ingest_throughput(pool.clone()).await;
        pool.close().await;
        if std::env::var_os("KEEP_MEASURE_DB").is_some() {
            return;
        }
        sqlx::query("drop database plyr_indexer_measure")
            .execute(&admin)
            .await
            .expect("drop");
    });
}

async fn ingest_throughput(pool: PgPool) {
    const EVENTS: usize = 200_000;
    let dids: Vec<String> = (0..2000)
        .map(|i| format!("did:plc:{}", tid(i).replace('2', "a")))
        .collect();
    let mut events = Vec::with_capacity(EVENTS);
    let mut tracks: Vec<String> = Vec::new();
    let mut n: u64 = 0;
    while events.len() < EVENTS {
        n += 1;
        let time_us = T0 + i64::try_from(n).unwrap_or(0);
        let did = &dids[usize::try_from(n % 2000).unwrap_or(0)];
        let rkey = tid(1_000_000 + n);
        let rev = tid(n);
        let event = match n % 10 {
            0 | 1 => {
                tracks.push(uri(did, "track", &rkey));
                track(time_us, did, &rkey, &rev, "A track title")
            }
            2 => write(
                time_us,
                did,
                "fm.plyr.comment",
                &rkey,
                &rev,
                CID,
                comment_record(
                    &tracks[usize::try_from(n).unwrap_or(0) % tracks.len()],
                    "so good",
                ),
            ),
            9 if n % 100 == 9 => identity(time_us, did, Some("someone.example.com")),
            _ => like(
                time_us,
                did,
                &rkey,
                &rev,
                &tracks[usize::try_from(n * 7919).unwrap_or(0) % tracks.len()],
            ),
        };
        events.push(event);
    }
    let last = T0 + i64::try_from(n).unwrap_or(0);

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let done = CancellationToken::new();
    let server_done = done.clone();
    let server = tokio::spawn(async move {
        let (mut ws, _) = accept(&listener).await;
        for event in events {
            ws.feed(Message::Text(event.into())).await.expect("feed");
        }
        ws.flush().await.expect("flush");
        server_done.cancelled().await;
    });
    let shutdown = CancellationToken::new();
    let config = JetstreamConfig {
        url: format!("ws://{addr}/subscribe").parse().expect("url"),
        namespace: Namespace::new("fm.plyr").expect("namespace"),
        compress: false,
        cursor_source: SOURCE.into(),
    };
    let started = std::time::Instant::now();
    let indexer = tokio::spawn(run(pool.clone(), config, shutdown.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    while !cursor_is(&pool, last).await {
        assert!(tokio::time::Instant::now() < deadline, "too slow");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let per_second = u128::try_from(EVENTS).unwrap_or(0) * 1000 / elapsed.as_millis().max(1);
    tracing::info!(?elapsed, per_second, "ingested");
    eprintln!("ingested {EVENTS} events in {elapsed:?}: {per_second} events/s");
    shutdown.cancel();
    let _ = indexer.await;
    done.cancel();
    let _ = server.await;
}

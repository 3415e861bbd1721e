//! The relay path against the reference PDS: records written through the PDS's XRPC reach our
//! index over its firehose (`--source relay`), every commit verified against the DID document
//! the local PLC serves, and the XRPC answers match what was written.

use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;

use crate::support::appview::{Appview, spawn_binary};
use crate::support::database_url;
use crate::support::pds::{Pds, wait_until_synced};
use crate::support::scenario::{Scenario, TRACK};

/// Verifying a few dozen commits takes well under a second; a loaded 2-core box is slower.
pub const INDEXED: Duration = Duration::from_secs(60);

/// `plyr-appview index --source relay` on `relay_url`, resolving DIDs at `plc`.
pub fn relay_indexer(db: &str, relay_url: &str, plc: &str) -> tokio::process::Child {
    spawn_binary(&[
        "index",
        "--database-url",
        db,
        "--source",
        "relay",
        "--relay-url",
        relay_url,
        // A fresh database has no stored seq: replay the host's whole window, not just live.
        "--relay-cursor",
        "0",
        "--plc-url",
        plc,
        "--allow-loopback",
    ])
}

/// Skip counters, for failure messages and the no-rejection check.
pub async fn skip_rows(pool: &PgPool) -> Vec<(String, i64)> {
    sqlx::query_as("select reason, count from indexer_skip order by reason")
        .fetch_all(pool)
        .await
        .expect("read indexer_skip")
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn relay_indexes_verified_pds_writes(pool: PgPool) {
    let pds = Pds::start().await.expect("start the PDS");
    let scenario = Scenario::write(&pds).await.expect("write the scenario");

    let mut indexer = relay_indexer(&database_url(&pool), &pds.url, &pds.plc);
    wait_until_synced(&pool, &pds, &scenario.dids(), Some(&mut indexer), INDEXED).await;

    let appview = Appview::start(pool.clone()).await;
    scenario.assert_answers(&appview).await;

    assert_eq!(
        skip_rows(&pool).await,
        [],
        "every commit of the real PDS verifies and every record is valid"
    );
    // The seq is saved with the writes: a restart resumes after it, not from 0 again.
    let cursor: Option<i64> =
        sqlx::query_scalar("select max(cursor) from consumer_cursor where source like 'relay:%'")
            .fetch_one(&pool)
            .await
            .expect("consumer_cursor");
    assert!(cursor.is_some_and(|c| c > 0), "relay cursor {cursor:?}");
    // Signatures were checked with keys from the PLC: the documents are persisted.
    let docs: Vec<String> = sqlx::query_scalar("select did from did_doc order by did")
        .fetch_all(&pool)
        .await
        .expect("did_doc");
    for did in scenario.dids() {
        assert!(docs.iter().any(|d| d == did), "{did} resolved: {docs:?}");
    }

    // Caught up, the stream is live: a new commit arrives on the open connection and chains
    // onto the stored (rev, data) of alice's repo.
    let live = pds
        .create_record(
            &scenario.alice,
            TRACK,
            json!({
                "$type": TRACK, "title": "Live", "artist": "Alice", "fileType": "mp3",
                "audioUrl": "https://cdn.example.com/audio/live.mp3",
                "createdAt": "2026-03-10T00:00:00.000Z",
            }),
        )
        .await
        .expect("live write");
    wait_until_synced(&pool, &pds, &scenario.dids(), Some(&mut indexer), INDEXED).await;
    let track = appview
        .ok("fm.plyr.feed.getTrack", &[("uri", &live.uri)])
        .await;
    assert_eq!(track["track"]["record"]["title"], "Live");
    assert_eq!(skip_rows(&pool).await, [], "the live commit verified too");

    indexer.start_kill().expect("stop the indexer");
    indexer.wait().await.expect("reap the indexer");
    appview.stop().await;
    pds.stop().await.expect("stop the PDS");
}

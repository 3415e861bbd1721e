//! Kill -9 the real `plyr-appview index` process at several points of a long replay, restart it,
//! and check the final view against a model of the stream: nothing lost, nothing applied twice.

use std::collections::HashMap;
use std::process::Stdio;

use sqlx::PgPool;
use tokio::process::{Child, Command};

use crate::support::events::*;
use crate::support::jetstream::{Frame, ScriptedJetstream};
use crate::support::{database_url, last_cursor, wait_for_cursor};

const ARTISTS: u32 = 100;
const TRACKS_PER_ARTIST: u32 = 10;
const FANS: u32 = 400;
/// Fan `f` likes track `i` when `(f * 7 + i) % LIKE_MODULUS == 0`.
const LIKE_MODULUS: u32 = 13;

struct Script {
    frames: Vec<Frame>,
    /// Final title per track URI (deleted tracks absent).
    titles: HashMap<String, String>,
    /// Expected like count per live track URI.
    likes: HashMap<String, i64>,
    /// Like records created (likes of deleted tracks stay stored, they just count nowhere).
    like_records: i64,
}

fn script() -> Script {
    let mut frames = Vec::new();
    let mut time = T0;
    let mut next_time = || {
        // One event a millisecond: a restart rewinds 5 s, about 5,000 events, not the whole stream.
        time += 1_000;
        time
    };
    let mut tracks = Vec::new();
    for a in 0..ARTISTS {
        let artist = did(a);
        for t in 0..TRACKS_PER_ARTIST {
            let rkey = rkey(u64::from(a * 100 + t));
            let record = track_record("fm.plyr", &format!("v1 {a}/{t}"), "2026-01-01T00:00:00Z");
            frames.push(create(
                next_time(),
                &artist,
                "fm.plyr.track",
                &rkey,
                &rev(u64::from(t) * 2 + 1),
                record,
            ));
            tracks.push((artist.clone(), rkey, t));
        }
    }
    let mut likes: HashMap<String, i64> = HashMap::new();
    let mut like_records = 0;
    for f in 0..FANS {
        let fan = did(10_000 + f);
        let mut n = 0u64;
        for (i, (artist, track_rkey, _)) in tracks.iter().enumerate() {
            let i = u32::try_from(i).expect("small");
            if (f * 7 + i) % LIKE_MODULUS != 0 {
                continue;
            }
            let subject = uri(artist, "fm.plyr.track", track_rkey);
            n += 1;
            like_records += 1;
            frames.push(create(
                next_time(),
                &fan,
                "fm.plyr.like",
                &rkey(1_000_000 + u64::from(f * 10_000 + i)),
                &rev(n),
                like_record("fm.plyr", &subject),
            ));
            if n == 1 {
                // A duplicate like of the same track by the same fan: still one like.
                n += 1;
                like_records += 1;
                frames.push(create(
                    next_time(),
                    &fan,
                    "fm.plyr.like",
                    &rkey(2_000_000 + u64::from(f * 10_000 + i)),
                    &rev(n),
                    like_record("fm.plyr", &subject),
                ));
            }
            *likes.entry(subject).or_default() += 1;
        }
    }
    let mut titles = HashMap::new();
    for (artist, rkey, t) in &tracks {
        let subject = uri(artist, "fm.plyr.track", rkey);
        if t % 5 == 4 {
            frames.push(delete(
                next_time(),
                artist,
                "fm.plyr.track",
                rkey,
                &rev(u64::from(*t) * 2 + 2),
            ));
            likes.remove(&subject);
        } else {
            let record = track_record("fm.plyr", &format!("v2 {rkey}"), "2026-01-01T00:00:00Z");
            frames.push(update(
                next_time(),
                artist,
                "fm.plyr.track",
                rkey,
                &rev(u64::from(*t) * 2 + 2),
                record,
            ));
            titles.insert(subject.clone(), format!("v2 {rkey}"));
            likes.entry(subject).or_default();
        }
    }
    Script {
        frames,
        titles,
        likes,
        like_records,
    }
}

fn spawn_indexer(database_url: &str, jetstream_url: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_plyr-appview"))
        .args([
            "index",
            "--database-url",
            database_url,
            "--jetstream-url",
            jetstream_url,
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start plyr-appview")
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn kill_9_and_restart_neither_loses_nor_doubles(pool: PgPool) {
    let script = script();
    let last = script.frames.last().expect("frames").time_us;
    let total = i64::try_from(script.frames.len()).expect("small");
    let jetstream = ScriptedJetstream::start(script.frames).await;
    let db = database_url(&pool);

    // Three times: start, let it commit at least one batch past where it resumed, kill -9.
    // Then a last run to the end of the stream.
    for _ in 0..3 {
        let resumed_at = last_cursor(&pool).await.unwrap_or(T0);
        let mut child = spawn_indexer(&db, &jetstream.url());
        wait_for_cursor(&pool, resumed_at + 1).await;
        child.start_kill().expect("kill -9");
        child.wait().await.expect("reap");
    }
    let before_last_run = last_cursor(&pool).await;
    assert!(
        before_last_run.is_some_and(|c| c < last),
        "the kills all landed before the end of the {total} events ({before_last_run:?})"
    );
    let mut child = spawn_indexer(&db, &jetstream.url());
    wait_for_cursor(&pool, last).await;
    child.start_kill().expect("kill -9");
    child.wait().await.expect("reap");
    let requests = jetstream.requests();
    assert_eq!(requests.len(), 4, "{requests:?}");
    assert!(
        requests[1..].iter().all(|q| q.contains("cursor=")),
        "every restart resumes from the saved cursor: {requests:?}"
    );
    let rows: Vec<(String, String, i32)> =
        sqlx::query_as("select uri, title, like_count from track")
            .fetch_all(&pool)
            .await
            .expect("tracks");
    assert_eq!(rows.len(), script.titles.len(), "live tracks");
    for (uri, title, like_count) in rows {
        assert_eq!(Some(&title), script.titles.get(&uri), "{uri}");
        assert_eq!(
            Some(i64::from(like_count)),
            script.likes.get(&uri).copied(),
            "like count of {uri}"
        );
    }
    let skipped: i64 =
        sqlx::query_scalar("select coalesce(sum(count), 0)::bigint from indexer_skip")
            .fetch_one(&pool)
            .await
            .expect("skips");
    assert_eq!(skipped, 0, "nothing in the script is invalid");
    let likes: i64 = sqlx::query_scalar("select count(*) from track_like")
        .fetch_one(&pool)
        .await
        .expect("likes");
    assert_eq!(likes, script.like_records, "every like record stored once");
}

/// The indexer's connections say who they are in `pg_stat_activity`, so an operator can tell
/// the writer from the server's reads.
#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn the_indexers_connections_are_named_in_pg_stat_activity(pool: PgPool) {
    let jetstream = ScriptedJetstream::start(Vec::new()).await;
    let mut child = spawn_indexer(&database_url(&pool), &jetstream.url());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let named: i64 = sqlx::query_scalar(
            "select count(*) from pg_stat_activity \
             where datname = current_database() and application_name = 'plyr-appview indexer'",
        )
        .fetch_one(&pool)
        .await
        .expect("pg_stat_activity");
        if named > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no connection named 'plyr-appview indexer' after 30 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    child.start_kill().expect("kill");
    child.wait().await.expect("reap");
}

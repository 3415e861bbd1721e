//! Faults under a long replay, each run compared table by table with a reference run of the same
//! stream that met no fault: the real binary killed with SIGKILL at seeded random points, its
//! websocket cut in the middle of a frame, its Postgres stopped and started under it.
//!
//! `FAULTS_SEED=<n>` replays the kill points of a failed run (every test prints its seed).

use std::collections::HashMap;
use std::time::Duration;

use sqlx::PgPool;
use std::process::Stdio;
use tokio::process::{Child, Command};

use crate::support::appview::wait_for;
use crate::support::events::*;
use crate::support::faults::{
    CuttingProxy, PrivatePostgres, Rng, assert_same_view, drop_database, fresh_database,
    unique_name, view_snapshot, wait_cursor,
};
use crate::support::firehose::{
    Account, Network, Script, ScriptedFirehose, put, remove, replace, repo_did,
};
use crate::support::jetstream::{Frame, ScriptedJetstream};
use crate::support::plc::UNREACHABLE_PDS;
use crate::support::{database_url, last_cursor};

/// Generous: two indexers share 2 cores with other tests.
const REPLAY: Duration = Duration::from_secs(90);

/// A long stream touching every table the Jetstream path writes: profiles, tracks created,
/// updated and deleted, likes (duplicates and deletes), comments (edited and deleted), lists,
/// account events. `fans` scales it: 400 fans is about 20,000 events.
fn script(artists: u32, fans: u32) -> Vec<Frame> {
    let mut frames = Vec::new();
    let mut time = T0;
    let mut revs: HashMap<String, u64> = HashMap::new();
    // One event a millisecond: a restart rewinds a few seconds of stream, not all of it.
    let mut next = |did: &str| {
        time += 1_000;
        let n = revs.entry(did.to_owned()).or_default();
        *n += 1;
        (time, rev(*n))
    };
    let mut tracks = Vec::new();
    for a in 0..artists {
        let artist = did(a);
        let (t, r) = next(&artist);
        frames.push(create(
            t,
            &artist,
            "fm.plyr.actor.profile",
            "self",
            &r,
            profile_record("fm.plyr", &format!("artist {a}")),
        ));
        for k in 0..8u32 {
            let key = rkey(u64::from(a * 100 + k));
            let (t, r) = next(&artist);
            frames.push(create(
                t,
                &artist,
                "fm.plyr.track",
                &key,
                &r,
                track_record("fm.plyr", &format!("v1 {a}/{k}"), "2026-01-01T00:00:00Z"),
            ));
            tracks.push((artist.clone(), key, k));
        }
    }
    for f in 0..fans {
        let fan = did(10_000 + f);
        for (i, (artist, track_key, _)) in tracks.iter().enumerate() {
            let i = u32::try_from(i).expect("small");
            if (f * 7 + i) % 11 != 0 {
                continue;
            }
            let subject = uri(artist, "fm.plyr.track", track_key);
            let like_key = rkey(1_000_000 + u64::from(f) * 10_000 + u64::from(i));
            let (t, r) = next(&fan);
            frames.push(create(
                t,
                &fan,
                "fm.plyr.like",
                &like_key,
                &r,
                like_record("fm.plyr", &subject),
            ));
            match i % 9 {
                0 => {
                    // Unliked again.
                    let (t, r) = next(&fan);
                    frames.push(delete(t, &fan, "fm.plyr.like", &like_key, &r));
                }
                1 => {
                    // A duplicate like of the same track: still one like.
                    let (t, r) = next(&fan);
                    frames.push(create(
                        t,
                        &fan,
                        "fm.plyr.like",
                        &rkey(3_000_000 + u64::from(f) * 10_000 + u64::from(i)),
                        &r,
                        like_record("fm.plyr", &subject),
                    ));
                }
                2 => {
                    let comment_key = rkey(5_000_000 + u64::from(f) * 10_000 + u64::from(i));
                    let (t, r) = next(&fan);
                    frames.push(create(
                        t,
                        &fan,
                        "fm.plyr.comment",
                        &comment_key,
                        &r,
                        comment_record("fm.plyr", &subject, "first!", 1_000),
                    ));
                    let (t, r) = next(&fan);
                    if f % 2 == 0 {
                        frames.push(update(
                            t,
                            &fan,
                            "fm.plyr.comment",
                            &comment_key,
                            &r,
                            comment_record("fm.plyr", &subject, "edited", 2_000),
                        ));
                    } else {
                        frames.push(delete(t, &fan, "fm.plyr.comment", &comment_key, &r));
                    }
                }
                _ => {}
            }
        }
        if f % 10 == 0 {
            let (t, _) = next(&fan);
            frames.push(account(t, &fan, true, None));
        }
    }
    for a in 0..artists {
        let artist = did(a);
        let items: Vec<String> = tracks
            .iter()
            .filter(|(d, _, _)| *d == artist)
            .map(|(d, k, _)| uri(d, "fm.plyr.track", k))
            .collect();
        let (t, r) = next(&artist);
        frames.push(create(
            t,
            &artist,
            "fm.plyr.list",
            &rkey(9_000_000 + u64::from(a)),
            &r,
            list_record("fm.plyr", &format!("album {a}"), "album", &items),
        ));
    }
    for (artist, key, k) in &tracks {
        let (t, r) = next(artist);
        if k % 5 == 4 {
            frames.push(delete(t, artist, "fm.plyr.track", key, &r));
        } else {
            frames.push(update(
                t,
                artist,
                "fm.plyr.track",
                key,
                &r,
                track_record("fm.plyr", &format!("v2 {key}"), "2026-01-01T00:00:00Z"),
            ));
        }
    }
    frames
}

fn index(database_url: &str, jetstream_url: &str) -> Child {
    spawn(&[
        "index",
        "--database-url",
        database_url,
        "--jetstream-url",
        jetstream_url,
        // Handle checks go nowhere (refused at once), the same in every run.
        "--plc-url",
        UNREACHABLE_PDS,
        "--allow-loopback",
    ])
}

/// `plyr-appview <args>`, logging errors only (the refused handle checks warn for every DID).
fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_plyr-appview"))
        .args(args)
        .env("RUST_LOG", "error")
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start plyr-appview")
}

/// Waits until the scripted server has seen `n` connections (so a run that starts with the
/// stream already indexed still connects before it is killed).
async fn connected(n: usize, count: impl Fn() -> usize) {
    wait_for(&format!("connection {n}"), REPLAY, || {
        let seen = count();
        async move {
            if seen >= n {
                Ok(())
            } else {
                Err(format!("{seen} connections"))
            }
        }
    })
    .await;
}

async fn kill(mut child: Child) {
    child.start_kill().expect("kill -9");
    child.wait().await.expect("reap");
}

/// The reference: the same frames indexed by the binary from start to end without a fault, in
/// a second database on the shared server. Returns its snapshot.
async fn reference(
    pool: &PgPool,
    frames: Vec<Frame>,
) -> std::collections::BTreeMap<String, Vec<String>> {
    let last = frames.last().expect("frames").time_us;
    let jetstream = ScriptedJetstream::start(frames).await;
    let base = database_url(pool);
    let (url, reference) = fresh_database(&base, &unique_name("faults_ref")).await;
    let child = index(&url, &jetstream.url());
    wait_cursor(&reference, "jetstream", last, REPLAY).await;
    kill(child).await;
    let snapshot = view_snapshot(&reference).await;
    reference.close().await;
    drop_database(&url).await;
    snapshot
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn kill_9_at_random_points_matches_the_reference(pool: PgPool) {
    let mut rng = Rng::from_env("kill_9_at_random_points_matches_the_reference");
    let frames = script(60, 400);
    let total = frames.len();
    assert!(total > 15_000, "a long replay: {total} events");
    let first = frames[0].time_us;
    let last = frames.last().expect("frames").time_us;
    let want = reference(&pool, frames.clone()).await;

    let jetstream = ScriptedJetstream::start(frames).await;
    let db = database_url(&pool);
    // Kill points: cursors spread over the stream, then a random delay of up to 40 ms past the
    // commit that reached each, so some kills land mid-batch rather than just after a commit.
    let mut points: Vec<i64> = (0..5)
        .map(|_| {
            let span = u64::try_from(last - first).expect("ordered");
            first + i64::try_from(rng.range(0, span)).expect("small")
        })
        .collect();
    points.sort_unstable();
    for (k, point) in points.iter().enumerate() {
        let resumed_at = last_cursor(&pool).await.unwrap_or(first);
        let child = index(&db, &jetstream.url());
        connected(k + 1, || jetstream.requests().len()).await;
        // Past the point and past at least one commit of this run.
        wait_cursor(
            &pool,
            "jetstream",
            (*point).max(resumed_at + 1).min(last),
            REPLAY,
        )
        .await;
        let jitter = rng.range(0, 40);
        tokio::time::sleep(Duration::from_millis(jitter)).await;
        kill(child).await;
        eprintln!(
            "kill {k}: at cursor {:?} (point {point}, +{jitter} ms)",
            last_cursor(&pool).await
        );
    }
    let child = index(&db, &jetstream.url());
    connected(points.len() + 1, || jetstream.requests().len()).await;
    wait_cursor(&pool, "jetstream", last, REPLAY).await;
    kill(child).await;
    let requests = jetstream.requests();
    assert_eq!(requests.len(), points.len() + 1, "{requests:?}");
    assert!(
        requests[1..].iter().all(|q| q.contains("cursor=")),
        "every restart resumes from the saved cursor: {requests:?}"
    );
    assert_same_view(&view_snapshot(&pool).await, &want);
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn websocket_cut_mid_frame_loses_nothing(pool: PgPool) {
    let frames = script(20, 120);
    let last = frames.last().expect("frames").time_us;
    let total = frames.len();
    let want = reference(&pool, frames.clone()).await;

    let jetstream = ScriptedJetstream::start(frames).await;
    let upstream: std::net::SocketAddr = jetstream
        .url()
        .trim_start_matches("ws://")
        .trim_end_matches("/subscribe")
        .parse()
        .expect("jetstream addr");
    // Three connections cut, each half-way through a frame; the fourth runs to the end.
    let cuts = vec![total / 10, total / 3, total / 2];
    let proxy = CuttingProxy::start(upstream, cuts.clone()).await;
    let url = format!("ws://{}/subscribe", proxy.addr());
    let child = index(&database_url(&pool), &url);
    wait_cursor(&pool, "jetstream", last, REPLAY).await;
    kill(child).await;
    let done = proxy.cuts();
    assert_eq!(done.len(), cuts.len(), "every cut happened: {done:?}");
    for cut in &done {
        assert!(
            cut.sent > 0 && cut.sent < cut.len,
            "a frame left half-written: {cut:?}"
        );
    }
    assert!(
        proxy.connections() > cuts.len(),
        "reconnected after each cut"
    );
    assert_same_view(&view_snapshot(&pool).await, &want);
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn postgres_restart_mid_ingest_recovers(pool: PgPool) {
    let frames = script(40, 300);
    let first = frames[0].time_us;
    let last = frames.last().expect("frames").time_us;
    let want = reference(&pool, frames.clone()).await;

    let pg = PrivatePostgres::start().await;
    let (url, private) = fresh_database(&pg.url("postgres"), "plyr_faults").await;
    let jetstream = ScriptedJetstream::start(frames).await;
    let child = index(&url, &jetstream.url());
    // A third of the way in, stop the server under the indexer, then bring it back.
    let third = first + (last - first) / 3;
    wait_cursor(&private, "jetstream", third, REPLAY).await;
    private.close().await;
    pg.stop_fast().await;
    let stopped_at = third;
    pg.start_again().await;
    let private = PgPool::connect(&url).await.expect("reconnect");
    let at_restart = last_cursor(&private).await;
    assert!(
        at_restart.is_some_and(|c| c >= stopped_at && c < last),
        "stopped mid-ingest: cursor {at_restart:?}"
    );
    wait_cursor(&private, "jetstream", last, REPLAY).await;
    let mut child = child;
    assert!(
        child.try_wait().expect("poll child").is_none(),
        "the indexer recovered by itself, without exiting"
    );
    kill(child).await;
    assert_same_view(&view_snapshot(&private).await, &want);
}

/// A distinct signing key byte per account.
fn secret(n: u32) -> u8 {
    u8::try_from(2 + n % 250).expect("below 256")
}

/// Signed repositories for the relay path: artists publish a profile and tracks in their first
/// commit, fans like (and unlike) and comment in small commits, artists then update and delete
/// tracks.
fn relay_script(artists: u32, fans: u32, rounds: u32) -> (Vec<Account>, Script) {
    let mut script = Script::default();
    let mut artist_accounts: Vec<Account> = (0..artists)
        .map(|a| Account::new(repo_did("art", a), secret(a)))
        .collect();
    let mut fan_accounts: Vec<Account> = (0..fans)
        .map(|f| Account::new(repo_did("fan", f), secret(500 + f)))
        .collect();
    let mut tracks = Vec::new();
    for (a, artist) in artist_accounts.iter_mut().enumerate() {
        let mut writes = vec![put(
            "fm.plyr.actor.profile",
            "self",
            profile_record("fm.plyr", &format!("artist {a}")),
        )];
        for k in 0..6u64 {
            let key = rkey(u64::try_from(a).expect("small") * 100 + k);
            writes.push(put(
                "fm.plyr.track",
                &key,
                track_record("fm.plyr", &format!("v1 {a}/{k}"), "2026-01-01T00:00:00Z"),
            ));
            tracks.push((artist.uri("fm.plyr.track", &key), a, key, k));
        }
        script.commit(artist, &writes);
    }
    let n_tracks = u32::try_from(tracks.len()).expect("small");
    for round in 0..rounds {
        for (f, fan) in fan_accounts.iter_mut().enumerate() {
            let f = u32::try_from(f).expect("small");
            let mut writes = Vec::new();
            for j in 0..3u32 {
                let i = (f * 5 + round * 3 + j) % n_tracks;
                let subject = &tracks[usize::try_from(i).expect("small")].0;
                let like = rkey(1_000_000 + u64::from(f) * 100_000 + u64::from(round * 3 + j));
                writes.push(put("fm.plyr.like", &like, like_record("fm.plyr", subject)));
                if (round + j) % 7 == 0 {
                    let comment =
                        rkey(5_000_000 + u64::from(f) * 100_000 + u64::from(round * 3 + j));
                    writes.push(put(
                        "fm.plyr.comment",
                        &comment,
                        comment_record("fm.plyr", subject, "nice", 1_000),
                    ));
                }
            }
            if round % 4 == 3 {
                // Unlike one from the previous round.
                let old = rkey(1_000_000 + u64::from(f) * 100_000 + u64::from((round - 1) * 3));
                writes.push(remove("fm.plyr.like", &old));
            }
            script.commit(fan, &writes);
        }
    }
    for (_, a, key, k) in &tracks {
        let artist = &mut artist_accounts[*a];
        let write = if k % 3 == 2 {
            remove("fm.plyr.track", key)
        } else {
            replace(
                "fm.plyr.track",
                key,
                track_record("fm.plyr", &format!("v2 {key}"), "2026-01-01T00:00:00Z"),
            )
        };
        script.commit(artist, &[write]);
    }
    artist_accounts.extend(fan_accounts);
    (artist_accounts, script)
}

/// Waits until every repo's stored chain is at its last commit: the cursor passes commits held
/// while their repo resyncs, so it alone does not say the view is complete.
async fn all_repos_at(pool: &PgPool, accounts: &[Account]) {
    let want: HashMap<String, String> = accounts.iter().map(|a| (a.did.clone(), a.rev())).collect();
    wait_for("every repo at its last rev", REPLAY, || async {
        let rows: Vec<(String, String)> = sqlx::query_as("select did, rev from repo_state")
            .fetch_all(pool)
            .await
            .map_err(|e| e.to_string())?;
        let behind = want
            .iter()
            .filter(|(did, rev)| !rows.iter().any(|(d, r)| d == *did && r == *rev))
            .count();
        if behind == 0 {
            Ok(())
        } else {
            Err(format!("{behind} repos behind"))
        }
    })
    .await;
}

fn index_relay(database_url: &str, hose: &ScriptedFirehose, net: &Network) -> Child {
    spawn(&[
        "index",
        "--database-url",
        database_url,
        "--source",
        "relay",
        "--relay-url",
        &hose.url(),
        "--relay-cursor",
        "0",
        "--plc-url",
        &net.plc_url,
        "--allow-loopback",
    ])
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn relay_kill_9_at_random_points_matches_the_reference(pool: PgPool) {
    let mut rng = Rng::from_env("relay_kill_9_at_random_points_matches_the_reference");
    let (accounts, script) = relay_script(12, 48, 20);
    let last = script.last_seq();
    eprintln!(
        "relay script: {} commits, {} record ops, {} repos",
        script.frames.len(),
        script.ops,
        accounts.len()
    );
    // The reference: the whole firehose, no fault, into a second database.
    let hose = ScriptedFirehose::start(script.frames.clone()).await;
    let net = Network::start(&accounts, &script, hose.sent()).await;
    let base = database_url(&pool);
    let (ref_url, reference) = fresh_database(&base, &unique_name("faults_relay")).await;
    let child = index_relay(&ref_url, &hose, &net);
    wait_cursor(&reference, &hose.source(), last, REPLAY).await;
    all_repos_at(&reference, &accounts).await;
    kill(child).await;
    let want = view_snapshot(&reference).await;
    // The stream's own answer: 6 tracks per artist, 2 of them deleted by a later commit.
    let live: i64 = sqlx::query_scalar("select count(*) from track")
        .fetch_one(&reference)
        .await
        .expect("tracks");
    reference.close().await;
    drop_database(&ref_url).await;
    assert_eq!(live, 12 * 4, "live tracks after the fault-free run");

    // The same firehose on a new port (its cursor key names the port), killed at seeded seqs.
    let hose = ScriptedFirehose::start(script.frames.clone()).await;
    let net = Network::start(&accounts, &script, hose.sent()).await;
    let db = database_url(&pool);
    let source = hose.source();
    let mut points: Vec<i64> = (0..4)
        .map(|_| {
            i64::try_from(rng.range(1, u64::try_from(last).expect("positive"))).expect("small")
        })
        .collect();
    points.sort_unstable();
    for (k, point) in points.iter().enumerate() {
        let resumed_at = plyr_indexer::last_cursor(&pool, &source)
            .await
            .expect("cursor")
            .unwrap_or(0);
        let child = index_relay(&db, &hose, &net);
        connected(k + 1, || hose.cursors().len()).await;
        wait_cursor(
            &pool,
            &source,
            (*point).max(resumed_at + 1).min(last),
            REPLAY,
        )
        .await;
        let jitter = rng.range(0, 40);
        tokio::time::sleep(Duration::from_millis(jitter)).await;
        kill(child).await;
        eprintln!(
            "relay kill {k}: at seq {:?} (point {point}, +{jitter} ms)",
            plyr_indexer::last_cursor(&pool, &source).await
        );
    }
    let child = index_relay(&db, &hose, &net);
    connected(points.len() + 1, || hose.cursors().len()).await;
    wait_cursor(&pool, &source, last, REPLAY).await;
    all_repos_at(&pool, &accounts).await;
    kill(child).await;
    let cursors = hose.cursors();
    assert_eq!(cursors.len(), points.len() + 1, "{cursors:?}");
    assert!(
        cursors[1..].iter().all(|c| c.is_some_and(|c| c > 0)),
        "every restart resumes from the saved seq: {cursors:?}"
    );
    // The cursor rows and the stored DID documents name the two runs' different ports: they
    // must match in number; everything else row for row.
    let mut got = view_snapshot(&pool).await;
    let mut want = want;
    for table in ["consumer_cursor", "did_doc"] {
        let (g, w) = (got.remove(table), want.remove(table));
        assert_eq!(g.map(|r| r.len()), w.map(|r| r.len()), "{table} rows");
    }
    without_resync_bookkeeping(&mut got);
    without_resync_bookkeeping(&mut want);
    assert_same_view(&got, &want);
}

/// Which rev a row carries depends on whether a resync's snapshot (at the repo's newest rev)
/// or the live commit wrote it last, and how many replayed commits were stale depends on where
/// the kills fell: the relay comparison leaves both out. So are the ledger's tombstones: a
/// record created and deleted before its repo's snapshot was read (whose point depends on how
/// far the firehose had got when `getRepo` ran) leaves no row, one deleted by a live commit
/// after it leaves a tombstone. Every live row and every other column must match, and
/// `all_repos_at` has already checked each repo's chain reached its last commit.
fn without_resync_bookkeeping(view: &mut std::collections::BTreeMap<String, Vec<String>>) {
    for (table, rows) in view.iter_mut() {
        let mut kept: Vec<String> = rows
            .iter()
            .filter_map(|row| {
                let mut value: serde_json::Value = serde_json::from_str(row).expect("row json");
                if table == "indexer_skip" && value["reason"] == "stale_rev" {
                    return None;
                }
                if table == "record" && value["deleted"] == true {
                    return None;
                }
                if let Some(object) = value.as_object_mut() {
                    object.remove("rev");
                }
                Some(value.to_string())
            })
            .collect();
        kept.sort();
        *rows = kept;
    }
}

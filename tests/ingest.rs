//! Jetstream -> Postgres -> XRPC, end to end: records replayed by a scripted Jetstream are
//! asserted through the XRPC answers, through updates, deletes, replays, bad input, identity and
//! account events and disconnects.

use std::time::Duration;

use serde_json::Value;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::support::events::*;
use crate::support::jetstream::ScriptedJetstream;
use crate::support::plc::{LoopbackPlc, RepoAnswer, UNREACHABLE_PDS, plc_did};
use crate::support::{CATCH_UP, Harness};

const NS: &str = "fm.plyr";
const TRACK: &str = "fm.plyr.track";
const LIKE: &str = "fm.plyr.like";
const COMMENT: &str = "fm.plyr.comment";
const LIST: &str = "fm.plyr.list";
const PROFILE: &str = "fm.plyr.actor.profile";

fn titles(body: &Value) -> Vec<String> {
    body["tracks"]
        .as_array()
        .expect("tracks array")
        .iter()
        .map(|t| t["record"]["title"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn updates_deletes_and_replays_fold_by_rev(pool: PgPool) {
    let alice = did(1);
    let t = uri(&alice, TRACK, &rkey(1));
    let frames = vec![
        create(
            T0 + 1,
            &alice,
            TRACK,
            &rkey(1),
            &rev(10),
            track_record(NS, "first", "2026-01-01T00:00:00Z"),
        ),
        update(
            T0 + 2,
            &alice,
            TRACK,
            &rkey(1),
            &rev(20),
            track_record(NS, "second", "2026-01-01T00:00:00Z"),
        ),
        // A stale update (older rev) arriving late must not win.
        update(
            T0 + 3,
            &alice,
            TRACK,
            &rkey(1),
            &rev(15),
            track_record(NS, "stale", "2026-01-01T00:00:00Z"),
        ),
    ];
    let h = Harness::start(pool, NS, frames).await;
    h.wait_for_cursor(T0 + 3).await;

    let (status, body) = h.xrpc("fm.plyr.feed.getTrack", &[("uri", &t)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["track"]["record"]["title"], "second");
    assert_eq!(body["track"]["uri"], t.as_str());
    assert_eq!(body["track"]["author"]["did"], alice.as_str());
    assert_eq!(body["track"]["author"]["handle"], "handle.invalid");
    assert_eq!(body["track"]["likeCount"], 0);

    // Delete, then a replay of the original create: the tombstone keeps it deleted.
    h.jetstream.append(vec![
        delete(T0 + 4, &alice, TRACK, &rkey(1), &rev(30)),
        create(
            T0 + 5,
            &alice,
            TRACK,
            &rkey(1),
            &rev(10),
            track_record(NS, "first", "2026-01-01T00:00:00Z"),
        ),
        update(
            T0 + 6,
            &alice,
            TRACK,
            &rkey(1),
            &rev(25),
            track_record(NS, "older than delete", "2026-01-01T00:00:00Z"),
        ),
    ]);
    h.wait_for_cursor(T0 + 6).await;
    let (status, body) = h.xrpc("fm.plyr.feed.getTrack", &[("uri", &t)]).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], "NotFound");
    let (_, latest) = h.xrpc("fm.plyr.feed.getLatestTracks", &[]).await;
    assert!(titles(&latest).is_empty(), "{latest}");

    // A genuinely newer create after the delete brings it back.
    h.jetstream.append(vec![create(
        T0 + 7,
        &alice,
        TRACK,
        &rkey(1),
        &rev(40),
        track_record(NS, "reborn", "2026-01-01T00:00:00Z"),
    )]);
    h.wait_for_cursor(T0 + 7).await;
    let (status, body) = h.xrpc("fm.plyr.feed.getTrack", &[("uri", &t)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["track"]["record"]["title"], "reborn");
    h.stop().await;
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn likes_and_comments_before_their_track_count_once(pool: PgPool) {
    let (artist, fan, other) = (did(1), did(2), did(3));
    let t = uri(&artist, TRACK, &rkey(5));
    let frames = vec![
        // Likes and comments arrive before the track they point at.
        create(T0 + 1, &fan, LIKE, &rkey(10), &rev(1), like_record(NS, &t)),
        // The same actor liking the same track twice counts once.
        create(T0 + 2, &fan, LIKE, &rkey(11), &rev(2), like_record(NS, &t)),
        create(
            T0 + 3,
            &other,
            LIKE,
            &rkey(12),
            &rev(1),
            like_record(NS, &t),
        ),
        create(
            T0 + 4,
            &fan,
            COMMENT,
            &rkey(6),
            &rev(3),
            comment_record(NS, &t, "late drop", 90_000),
        ),
        create(
            T0 + 5,
            &other,
            COMMENT,
            &rkey(7),
            &rev(2),
            comment_record(NS, &t, "intro", 1_000),
        ),
        create(
            T0 + 6,
            &artist,
            TRACK,
            &rkey(5),
            &rev(1),
            track_record(NS, "song", "2026-01-01T00:00:00Z"),
        ),
    ];
    let h = Harness::start(pool, NS, frames).await;
    h.wait_for_cursor(T0 + 6).await;

    let (status, body) = h.xrpc("fm.plyr.feed.getTrack", &[("uri", &t)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["track"]["likeCount"], 2, "{body}");
    assert_eq!(body["track"]["commentCount"], 2, "{body}");

    let (_, comments) = h.xrpc("fm.plyr.feed.getComments", &[("uri", &t)]).await;
    let order: Vec<&str> = comments["comments"]
        .as_array()
        .expect("comments")
        .iter()
        .map(|c| c["record"]["text"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(order, ["intro", "late drop"], "{comments}");

    let (_, fan_likes) = h
        .xrpc("fm.plyr.feed.getActorLikes", &[("actor", &fan)])
        .await;
    assert_eq!(
        titles(&fan_likes),
        ["song"],
        "a track liked twice is listed once: {fan_likes}"
    );
    let (_, likes) = h.xrpc("fm.plyr.feed.getLikes", &[("uri", &t)]).await;
    let mut likers: Vec<&str> = likes["likes"]
        .as_array()
        .expect("likes")
        .iter()
        .map(|l| l["actor"]["did"].as_str().unwrap_or_default())
        .collect();
    likers.sort_unstable();
    assert_eq!(
        likers,
        [fan.as_str(), other.as_str()],
        "each liker once: {likes}"
    );

    // Deleting one of the fan's two likes keeps the count; deleting both drops it.
    h.jetstream
        .append(vec![delete(T0 + 7, &fan, LIKE, &rkey(10), &rev(4))]);
    h.wait_for_cursor(T0 + 7).await;
    let (_, body) = h.xrpc("fm.plyr.feed.getTrack", &[("uri", &t)]).await;
    assert_eq!(body["track"]["likeCount"], 2, "{body}");
    h.jetstream
        .append(vec![delete(T0 + 8, &fan, LIKE, &rkey(11), &rev(5))]);
    h.wait_for_cursor(T0 + 8).await;
    let (_, body) = h.xrpc("fm.plyr.feed.getTrack", &[("uri", &t)]).await;
    assert_eq!(body["track"]["likeCount"], 1, "{body}");
    let (_, likes) = h.xrpc("fm.plyr.feed.getLikes", &[("uri", &t)]).await;
    let likers: Vec<&str> = likes["likes"]
        .as_array()
        .expect("likes")
        .iter()
        .map(|l| l["actor"]["did"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(likers, [other.as_str()], "{likes}");
    h.stop().await;
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn bad_input_is_skipped_counted_and_never_stops_the_stream(pool: PgPool) {
    let alice = did(1);
    let mut missing_title = track_record(NS, "x", "2026-01-01T00:00:00Z");
    missing_title
        .as_object_mut()
        .expect("object")
        .remove("title");
    let mut wrong_type = track_record(NS, "wrong type", "2026-01-01T00:00:00Z");
    wrong_type["$type"] = Value::from("fm.plyr.like");
    let mut no_audio = track_record(NS, "no audio", "2026-01-01T00:00:00Z");
    no_audio.as_object_mut().expect("object").remove("audioUrl");
    let unknown_kind = crate::support::jetstream::Frame {
        time_us: T0 + 6,
        collection: None,
        text: format!(
            r#"{{"did":"{alice}","time_us":{},"kind":"mystery"}}"#,
            T0 + 6
        ),
    };
    let frames = vec![
        create(T0 + 1, &alice, TRACK, &rkey(2), &rev(1), missing_title),
        create(T0 + 2, &alice, TRACK, &rkey(3), &rev(2), wrong_type),
        create(T0 + 3, &alice, TRACK, &rkey(4), &rev(3), no_audio),
        garbage(T0 + 4),
        // Another namespace shares the wire prefix: it belongs to fm.plyr.stg, not us.
        create(
            T0 + 5,
            &alice,
            "fm.plyr.stg.track",
            &rkey(15),
            &rev(4),
            track_record("fm.plyr.stg", "staging", "2026-01-01T00:00:00Z"),
        ),
        unknown_kind,
        create(
            T0 + 7,
            &alice,
            TRACK,
            &rkey(9),
            &rev(5),
            track_record(NS, "good", "2026-01-01T00:00:00Z"),
        ),
        // A like pointing at something that is not a track is invalid.
        create(
            T0 + 8,
            &alice,
            LIKE,
            &rkey(10),
            &rev(6),
            like_record(NS, "at://did:plc:x/app.bsky.feed.post/3kaaaaaaaaaa2"),
        ),
    ];
    let h = Harness::start(pool, NS, frames).await;
    h.wait_for_cursor(T0 + 8).await;

    let (_, latest) = h.xrpc("fm.plyr.feed.getLatestTracks", &[]).await;
    assert_eq!(titles(&latest), ["good"], "{latest}");
    assert!(h.skips("lexicon").await >= 1);
    assert_eq!(h.skips("type_mismatch").await, 1);
    assert_eq!(
        h.skips("app_rule").await,
        2,
        "no audio + like of a non-track"
    );
    assert_eq!(h.skips("malformed_event").await, 1);
    assert_eq!(h.skips("foreign_collection").await, 1);
    assert_eq!(h.skips("unknown_kind").await, 1);
    h.stop().await;
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn identity_and_account_events_govern_visibility(pool: PgPool) {
    // Inactive #account events are confirmed with the account's current PDS before they hide
    // anything: a loopback PLC + PDS answers, and the account checker runs beside the stream.
    let (artist, fan) = (plc_did("artist"), plc_did("fan"));
    let plc = LoopbackPlc::start().await;
    plc.set_handle_doc(&artist, "artist.example.com", None);
    plc.set_handle_doc(&fan, "fan.example.com", None);
    let t = uri(&artist, TRACK, &rkey(16));
    let fan_track = uri(&fan, TRACK, &rkey(17));
    let frames = vec![
        create(
            T0 + 1,
            &artist,
            TRACK,
            &rkey(16),
            &rev(1),
            track_record(NS, "artist song", "2026-01-01T00:00:00Z"),
        ),
        create(
            T0 + 2,
            &artist,
            PROFILE,
            "self",
            &rev(2),
            profile_record(NS, "we make noise"),
        ),
        create(
            T0 + 3,
            &fan,
            TRACK,
            &rkey(17),
            &rev(1),
            track_record(NS, "fan song", "2026-01-01T00:00:00Z"),
        ),
        create(T0 + 4, &fan, LIKE, &rkey(10), &rev(2), like_record(NS, &t)),
        identity(T0 + 5, &artist, Some("Artist.Example.COM")),
    ];
    let h = Harness::start(pool, NS, frames).await;
    let stop = CancellationToken::new();
    let checker = tokio::spawn(plyr_indexer::check_accounts(
        h.pool.clone(),
        plc.resolver(),
        stop.clone(),
    ));
    h.wait_for_cursor(T0 + 5).await;

    let (status, profile) = h
        .xrpc(
            "fm.plyr.actor.getProfile",
            &[("actor", "artist.example.com")],
        )
        .await;
    assert_eq!(status, 200, "{profile}");
    assert_eq!(profile["did"], artist.as_str());
    assert_eq!(profile["handle"], "artist.example.com");
    assert_eq!(profile["bio"], "we make noise");
    assert_eq!(profile["trackCount"], 1);
    let (_, body) = h.xrpc("fm.plyr.feed.getTrack", &[("uri", &t)]).await;
    assert_eq!(body["track"]["author"]["handle"], "artist.example.com");
    assert_eq!(body["track"]["likeCount"], 1);

    // The fan deactivates (their PDS confirms): their track disappears and their like stops
    // counting.
    plc.set_status(&fan, RepoAnswer::Inactive("deactivated"));
    h.jetstream
        .append(vec![account(T0 + 6, &fan, false, Some("deactivated"))]);
    h.wait_for_cursor(T0 + 6).await;
    wait_until_settled(&h.pool, &fan).await;
    let (status, _) = h
        .xrpc_until("fm.plyr.feed.getTrack", &[("uri", &fan_track)], |s, _| {
            s == 404
        })
        .await;
    assert_eq!(status, 404);
    let (_, body) = h
        .xrpc_until("fm.plyr.feed.getTrack", &[("uri", &t)], |_, b| {
            b["track"]["likeCount"] == 0
        })
        .await;
    assert_eq!(body["track"]["likeCount"], 0, "{body}");
    let (status, body) = h
        .xrpc_until("fm.plyr.actor.getProfile", &[("actor", &fan)], |s, _| {
            s == 400
        })
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("AccountDeactivated")),
        "{body}"
    );

    // Reactivation brings everything back.
    h.jetstream.append(vec![account(T0 + 7, &fan, true, None)]);
    h.wait_for_cursor(T0 + 7).await;
    let (status, _) = h
        .xrpc_until("fm.plyr.feed.getTrack", &[("uri", &fan_track)], |s, _| {
            s == 200
        })
        .await;
    assert_eq!(status, 200);
    let (_, body) = h
        .xrpc_until("fm.plyr.feed.getTrack", &[("uri", &t)], |_, b| {
            b["track"]["likeCount"] == 1
        })
        .await;
    assert_eq!(body["track"]["likeCount"], 1, "{body}");

    // A stale deactivation (the old host's; the current PDS says active) is dropped.
    plc.set_status(&artist, RepoAnswer::Active);
    h.jetstream
        .append(vec![account(T0 + 8, &artist, false, Some("deactivated"))]);
    h.wait_for_cursor(T0 + 8).await;
    wait_until_settled(&h.pool, &artist).await;
    let (status, _) = h
        .xrpc("fm.plyr.actor.getProfile", &[("actor", &artist)])
        .await;
    assert_eq!(status, 200);

    // While the PDS is unreachable a takedown is not applied: the status stays.
    plc.set_handle_doc(&artist, "artist.example.com", Some(UNREACHABLE_PDS));
    h.jetstream
        .append(vec![account(T0 + 9, &artist, false, Some("takendown"))]);
    h.wait_for_cursor(T0 + 9).await;
    wait_for_check(&h.pool, &artist).await;
    let (status, _) = h
        .xrpc("fm.plyr.actor.getProfile", &[("actor", &artist)])
        .await;
    assert_eq!(status, 200);

    // The PDS is back and confirms a takedown (re-sent): hidden and named as such.
    plc.set_handle_doc(&artist, "artist.example.com", None);
    plc.set_status(&artist, RepoAnswer::Inactive("takendown"));
    h.jetstream
        .append(vec![account(T0 + 10, &artist, false, Some("takendown"))]);
    h.wait_for_cursor(T0 + 10).await;
    wait_until_settled(&h.pool, &artist).await;
    let (status, body) = h
        .xrpc_until("fm.plyr.actor.getProfile", &[("actor", &artist)], |s, _| {
            s == 400
        })
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("AccountTakedown")),
        "{body}"
    );
    let (_, latest) = h
        .xrpc_until("fm.plyr.feed.getLatestTracks", &[], |_, b| {
            titles(b) == ["fan song"]
        })
        .await;
    assert_eq!(titles(&latest), ["fan song"], "{latest}");

    // Deletion (the PDS no longer has the repo) purges the fan; a replay of their old create
    // stays purged.
    plc.set_status(&fan, RepoAnswer::NotFound);
    h.jetstream.append(vec![
        account(T0 + 11, &fan, false, Some("deleted")),
        create(
            T0 + 12,
            &fan,
            TRACK,
            &rkey(17),
            &rev(1),
            track_record(NS, "fan song", "2026-01-01T00:00:00Z"),
        ),
    ]);
    h.wait_for_cursor(T0 + 12).await;
    wait_until_settled(&h.pool, &fan).await;
    let (status, _) = h
        .xrpc_until("fm.plyr.feed.getTrack", &[("uri", &fan_track)], |s, _| {
            s == 404
        })
        .await;
    assert_eq!(status, 404);
    let remaining: i64 = sqlx::query_scalar("select count(*) from track where did = $1")
        .bind(&fan)
        .fetch_one(&h.pool)
        .await
        .expect("count");
    assert_eq!(remaining, 0);
    stop.cancel();
    checker.await.expect("join").expect("account checker");
    h.stop().await;
    plc.stop().await;
}

/// (claim pending, checked since the claim) of an actor's `#account` claim.
async fn claim(pool: &PgPool, did: &str) -> (bool, bool) {
    sqlx::query_as(
        "select pending_since is not null, status_checked_at is not null from actor
         where did = $1",
    )
    .bind(did)
    .fetch_one(pool)
    .await
    .expect("actor row")
}

/// Waits until the account checker settled `did`'s claim (applied or dropped).
async fn wait_until_settled(pool: &PgPool, did: &str) {
    let deadline = tokio::time::Instant::now() + CATCH_UP;
    while claim(pool, did).await.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{did}: claim not settled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the account checker tried `did`'s claim and left it pending.
async fn wait_for_check(pool: &PgPool, did: &str) {
    let deadline = tokio::time::Instant::now() + CATCH_UP;
    while claim(pool, did).await != (true, true) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{did}: claim not checked"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn lists_keep_record_order_and_hide_missing_items(pool: PgPool) {
    let artist = did(1);
    let a = uri(&artist, TRACK, &rkey(18));
    let b = uri(&artist, TRACK, &rkey(19));
    let missing = uri(&artist, TRACK, &rkey(20));
    let album = uri(&artist, LIST, &rkey(13));
    let frames = vec![
        create(
            T0 + 1,
            &artist,
            TRACK,
            &rkey(18),
            &rev(1),
            track_record(NS, "a", "2026-01-01T00:00:00Z"),
        ),
        create(
            T0 + 2,
            &artist,
            TRACK,
            &rkey(19),
            &rev(2),
            track_record(NS, "b", "2026-01-01T00:00:00Z"),
        ),
        create(
            T0 + 3,
            &artist,
            LIST,
            &rkey(13),
            &rev(3),
            list_record(NS, "The Album", "album", &[b.clone(), missing, a.clone()]),
        ),
    ];
    let h = Harness::start(pool, NS, frames).await;
    h.wait_for_cursor(T0 + 3).await;
    let (status, body) = h.xrpc("fm.plyr.feed.getList", &[("uri", &album)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["list"]["name"], "The Album");
    assert_eq!(body["list"]["listType"], "album");
    let items: Vec<&str> = body["list"]["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|t| t["record"]["title"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(items, ["b", "a"], "{body}");

    // Reordering is an update of the list record.
    h.jetstream.append(vec![update(
        T0 + 4,
        &artist,
        LIST,
        &rkey(13),
        &rev(4),
        list_record(NS, "The Album", "album", &[a, b]),
    )]);
    h.wait_for_cursor(T0 + 4).await;
    let (_, body) = h.xrpc("fm.plyr.feed.getList", &[("uri", &album)]).await;
    let items: Vec<&str> = body["list"]["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|t| t["record"]["title"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(items, ["a", "b"], "{body}");
    let (_, lists) = h
        .xrpc(
            "fm.plyr.feed.getActorLists",
            &[("actor", &artist), ("listType", "album")],
        )
        .await;
    assert_eq!(lists["lists"].as_array().map(Vec::len), Some(1), "{lists}");
    let (_, profile) = h
        .xrpc("fm.plyr.actor.getProfile", &[("actor", &artist)])
        .await;
    assert_eq!(profile["albumCount"], 1, "{profile}");
    h.stop().await;
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn disconnects_mid_stream_resume_from_the_cursor(pool: PgPool) {
    let artist = did(1);
    let frames: Vec<_> = (0..30)
        .map(|i| {
            let rkey = rkey(1_000 + i as u64);
            create(
                T0 + 1 + i,
                &artist,
                TRACK,
                &rkey,
                &rev(i as u64 + 1),
                track_record(NS, &format!("t{i}"), "2026-01-01T00:00:00Z"),
            )
        })
        .collect();
    let jetstream = ScriptedJetstream::start(frames).await;
    jetstream.cut_connections_after(&[7, 11]);
    let h = Harness::start_with(pool, NS, jetstream).await;
    h.wait_for_cursor(T0 + 30).await;

    let count: i64 = sqlx::query_scalar("select count(*) from track")
        .fetch_one(&h.pool)
        .await
        .expect("count");
    assert_eq!(count, 30);
    let requests = h.jetstream.requests();
    assert!(requests.len() >= 3, "{requests:?}");
    assert!(
        requests[0].contains("wantedCollections=fm.plyr.*")
            || requests[0].contains("wantedCollections=fm.plyr.%2A"),
        "{}",
        requests[0]
    );
    assert!(
        !requests[0].contains("cursor="),
        "a fresh start has no cursor: {}",
        requests[0]
    );
    for reconnect in &requests[1..] {
        assert!(
            reconnect.contains("cursor="),
            "reconnects resume: {reconnect}"
        );
    }
    let (_, profile) = h
        .xrpc("fm.plyr.actor.getProfile", &[("actor", &artist)])
        .await;
    assert_eq!(profile["trackCount"], 30, "{profile}");
    h.stop().await;
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn staging_namespace_indexes_only_its_own_collections(pool: PgPool) {
    let alice = did(1);
    let frames = vec![
        create(
            T0 + 1,
            &alice,
            "fm.plyr.track",
            &rkey(14),
            &rev(1),
            track_record("fm.plyr", "prod", "2026-01-01T00:00:00Z"),
        ),
        create(
            T0 + 2,
            &alice,
            "fm.plyr.stg.track",
            &rkey(15),
            &rev(2),
            track_record("fm.plyr.stg", "staging", "2026-01-01T00:00:00Z"),
        ),
        create(
            T0 + 3,
            &alice,
            "fm.plyr.dev.track",
            &rkey(8),
            &rev(3),
            track_record("fm.plyr.dev", "dev", "2026-01-01T00:00:00Z"),
        ),
    ];
    let h = Harness::start(pool, "fm.plyr.stg", frames).await;
    h.wait_for_cursor(T0 + 2).await;
    let (_, latest) = h.xrpc("fm.plyr.feed.getLatestTracks", &[]).await;
    assert_eq!(titles(&latest), ["staging"], "{latest}");
    let stg = uri(&alice, "fm.plyr.stg.track", &rkey(15));
    let (status, _) = h.xrpc("fm.plyr.feed.getTrack", &[("uri", &stg)]).await;
    assert_eq!(status, 200);
    h.stop().await;
}

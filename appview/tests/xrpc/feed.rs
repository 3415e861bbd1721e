//! getTopTracks, getTrending, getActivity, getArtistAlbums, getActorPlaylists and
//! getProfiles.

use serde_json::{Value, json};
use sqlx::PgPool;

use crate::search::bsky_profile;
use crate::support::{self, enc, err, ok, uris, walk};

const ALICE: &str = "did:plc:alice";
const BOB: &str = "did:plc:bob";
const CAROL: &str = "did:plc:carol";
const EVE: &str = "did:plc:eve";

/// A like of `subject` by `did`, created `hours_ago` hours before now and indexed now.
async fn like_ago(db: &PgPool, did: &str, rkey: &str, subject: &str, hours_ago: f64) {
    like_at(db, did, rkey, subject, -hours_ago, 0.0).await;
}

/// A like whose record says it was created `created_in` hours from now (negative: ago),
/// indexed `indexed_ago` hours ago, stored as the indexer stores it: `sort_at` =
/// least(createdAt, indexedAt).
async fn like_at(
    db: &PgPool,
    did: &str,
    rkey: &str,
    subject: &str,
    created_in: f64,
    indexed_ago: f64,
) {
    sqlx::query(
        "with t as (select now() + make_interval(secs => $6) as created, \
                           now() - make_interval(secs => $7) as indexed) \
         insert into track_like (uri, did, rkey, cid, rev, subject_uri, created_at, indexed_at, \
                                 sort_at) \
         select $1, $2, $3, $4, '3kaaaaaaaaaaa', $5, created, indexed, least(created, indexed) \
         from t",
    )
    .bind(format!("at://{did}/fm.plyr.like/{rkey}"))
    .bind(did)
    .bind(rkey)
    .bind(support::CID)
    .bind(subject)
    .bind(created_in * 3600.0)
    .bind(indexed_ago * 3600.0)
    .execute(db)
    .await
    .expect("insert like");
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn top_tracks_by_likes_all_time_and_since(db: PgPool) {
    for did in [ALICE, BOB, CAROL, EVE] {
        support::actor(&db, did, None).await;
    }
    let a = support::track(&db, ALICE, "a", 1).await;
    let b = support::track(&db, ALICE, "b", 2).await;
    let c = support::track(&db, BOB, "c", 3).await;
    let _unliked = support::track(&db, BOB, "d", 4).await;
    let hidden = support::track(&db, EVE, "e", 5).await;
    support::set_counts(&db, &a, 3, 0).await;
    support::set_counts(&db, &b, 1, 0).await;
    support::set_counts(&db, &c, 3, 0).await;
    support::set_counts(&db, &hidden, 9, 0).await;
    support::hide(&db, EVE, Some("takendown")).await;

    let body = ok(&db, "fm.plyr.feed.getTopTracks", "").await;
    // Most liked first, ties by URI descending (c's DID sorts after a's).
    assert_eq!(
        uris(body["tracks"].as_array().expect("tracks")),
        [c.clone(), a.clone(), b.clone()]
    );
    let paged = walk(&db, "fm.plyr.feed.getTopTracks", "", "tracks", 1).await;
    assert_eq!(uris(&paged), [c.clone(), a.clone(), b.clone()]);

    // Since a day ago: b has two fresh likes (Bob's two count once) and Carol's; a has one.
    like_ago(&db, BOB, "l1", &b, 1.0).await;
    like_ago(&db, BOB, "l2", &b, 2.0).await;
    like_ago(&db, CAROL, "l3", &b, 3.0).await;
    like_ago(&db, CAROL, "l4", &a, 3.0).await;
    like_ago(&db, CAROL, "l5", &c, 48.0).await;
    like_ago(&db, EVE, "l6", &c, 1.0).await;
    let since = (chrono::Utc::now() - chrono::TimeDelta::days(1)).to_rfc3339();
    let query = format!("since={}", enc(&since));
    let body = ok(&db, "fm.plyr.feed.getTopTracks", &query).await;
    assert_eq!(
        uris(body["tracks"].as_array().expect("tracks")),
        [b.clone(), a.clone()]
    );
    // likeCount stays the stored all-time count.
    assert_eq!(body["tracks"][0]["likeCount"], 1);
    let paged = walk(&db, "fm.plyr.feed.getTopTracks", &query, "tracks", 1).await;
    assert_eq!(uris(&paged), [b, a]);
    err(
        &db,
        "fm.plyr.feed.getTopTracks",
        "since=yesterday",
        400,
        "InvalidRequest",
    )
    .await;
    err(
        &db,
        "fm.plyr.feed.getTopTracks",
        "cursor=bm9wZQ",
        400,
        "InvalidRequest",
    )
    .await;
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn trending_weighs_recent_likes_over_older_ones(db: PgPool) {
    for did in [ALICE, BOB, CAROL, EVE] {
        support::actor(&db, did, None).await;
    }
    let fresh = support::track(&db, ALICE, "fresh", 1).await;
    let older = support::track(&db, ALICE, "older", 2).await;
    let stale = support::track(&db, ALICE, "stale", 3).await;
    // Two likes 20 hours ago weigh less than one just now (half-life: 6 of the 24 hours).
    like_ago(&db, BOB, "l1", &older, 20.0).await;
    like_ago(&db, CAROL, "l2", &older, 20.0).await;
    like_ago(&db, BOB, "l3", &fresh, 0.0).await;
    // Outside the window.
    like_ago(&db, BOB, "l4", &stale, 30.0).await;
    like_ago(&db, CAROL, "l5", &stale, 30.0).await;
    like_ago(&db, EVE, "l6", &stale, 30.0).await;
    // The hottest track is hidden (its author is): scores are ranked before tracks are
    // joined, so it must still never be listed, nor leave a page short.
    let hot = support::track(&db, EVE, "hot", 4).await;
    for (liker, rkey) in [(BOB, "l7"), (CAROL, "l8"), (ALICE, "l9")] {
        like_ago(&db, liker, rkey, &hot, 0.0).await;
    }
    support::hide(&db, EVE, Some("deactivated")).await;

    let body = ok(&db, "fm.plyr.feed.getTrending", "").await;
    assert_eq!(
        uris(body["tracks"].as_array().expect("tracks")),
        [fresh.clone(), older.clone()]
    );
    let paged = walk(&db, "fm.plyr.feed.getTrending", "hours=48", "tracks", 1).await;
    assert_eq!(uris(&paged), [fresh, older, stale]);
    for hours in ["0", "721", "-1", "x"] {
        err(
            &db,
            "fm.plyr.feed.getTrending",
            &format!("hours={hours}"),
            400,
            "InvalidRequest",
        )
        .await;
    }
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn likes_dated_in_the_future_count_from_when_they_were_indexed(db: PgPool) {
    const TEN_YEARS: f64 = 10.0 * 365.0 * 24.0;
    for did in [ALICE, BOB, CAROL, EVE] {
        support::actor(&db, did, None).await;
    }
    let honest = support::track(&db, ALICE, "honest", 1).await;
    let gamed = support::track(&db, BOB, "gamed", 2).await;
    let old = support::track(&db, BOB, "old", 3).await;
    // Two likes an hour ago against three dated ten years ahead, indexed 12 hours ago: by
    // their `createdAt` those would fall in every window and each weigh 2^40 in trending.
    like_ago(&db, BOB, "l1", &honest, 1.0).await;
    like_ago(&db, CAROL, "l2", &honest, 1.0).await;
    for (liker, rkey) in [(ALICE, "f1"), (CAROL, "f2"), (EVE, "f3")] {
        like_at(&db, liker, rkey, &gamed, TEN_YEARS, 12.0).await;
    }
    // Indexed two days ago: outside a one-day window, whatever its record says.
    like_at(&db, EVE, "f4", &old, TEN_YEARS, 48.0).await;

    let body = ok(&db, "fm.plyr.feed.getTrending", "").await;
    assert_eq!(
        uris(body["tracks"].as_array().expect("tracks")),
        [honest.clone(), gamed.clone()]
    );
    let since = (chrono::Utc::now() - chrono::TimeDelta::days(1)).to_rfc3339();
    let query = format!("since={}", enc(&since));
    let body = ok(&db, "fm.plyr.feed.getTopTracks", &query).await;
    // Counted from when they were indexed, the three likes of `gamed` are in the window;
    // the one of `old` is not.
    assert_eq!(
        uris(body["tracks"].as_array().expect("tracks")),
        [gamed, honest]
    );
}

/// GETs `path` from `app` (one app across calls, so its caches are shared); the JSON body.
async fn get_json(app: &axum::Router, path: &str) -> Value {
    use tower::ServiceExt;
    let req = axum::http::Request::get(path)
        .body(axum::body::Body::empty())
        .expect("request");
    let resp = app.clone().oneshot(req).await.expect("infallible");
    assert_eq!(resp.status(), 200, "{path}");
    let bytes = axum::body::to_bytes(resp.into_body(), 16 << 20)
        .await
        .expect("body");
    serde_json::from_slice(&bytes).expect("json")
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn trending_first_pages_keep_their_ranking_a_minute_but_read_tracks_fresh(db: PgPool) {
    for did in [ALICE, BOB, CAROL, EVE] {
        support::actor(&db, did, None).await;
    }
    let a = support::track(&db, ALICE, "a", 1).await;
    let b = support::track(&db, BOB, "b", 2).await;
    let c = support::track(&db, EVE, "c", 3).await;
    like_ago(&db, BOB, "l1", &a, 0.0).await;
    like_ago(&db, CAROL, "l2", &a, 0.0).await;
    like_ago(&db, CAROL, "l3", &b, 1.0).await;
    like_ago(&db, CAROL, "l4", &c, 2.0).await;
    let app = plyr_appview_xrpc::router(plyr_appview_xrpc::AppState::new(db.clone()));
    let path = "/xrpc/fm.plyr.feed.getTrending?limit=2";
    let first = get_json(&app, path).await;
    assert_eq!(
        uris(first["tracks"].as_array().expect("tracks")),
        [a.clone(), b.clone()]
    );

    // New likes would put b first, but the first page keeps its minute-old order...
    like_ago(&db, ALICE, "l5", &b, 0.0).await;
    like_ago(&db, EVE, "l6", &b, 0.0).await;
    let cached = get_json(&app, path).await;
    assert_eq!(
        uris(cached["tracks"].as_array().expect("tracks")),
        [a.clone(), b.clone()]
    );
    assert_eq!(cached["cursor"], first["cursor"]);
    // ...while the next page is ranked now, and a fresh app ranks the first page now.
    let fresh = ok(&db, "fm.plyr.feed.getTrending", "limit=2").await;
    assert_eq!(
        uris(fresh["tracks"].as_array().expect("tracks")),
        [b.clone(), a.clone()]
    );

    // The tracks themselves are read each time: once a ranked track is hidden, the page is
    // ranked again rather than served short.
    support::hide(&db, ALICE, Some("deactivated")).await;
    let after_hide = get_json(&app, path).await;
    assert_eq!(
        uris(after_hide["tracks"].as_array().expect("tracks")),
        [b, c]
    );
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn activity_merges_every_kind_newest_first(db: PgPool) {
    support::actor(&db, ALICE, Some("alice.test")).await;
    support::actor(&db, BOB, Some("bob.test")).await;
    support::actor(&db, EVE, Some("eve.test")).await;
    let song = support::track(&db, ALICE, "song", 1).await;
    let like = support::like(&db, BOB, "like", &song, 2).await;
    let comment = support::comment(&db, BOB, "c", &song, 500, 3).await;
    let playlist = support::list(&db, BOB, "p", "Mix", "playlist", &[&song], 4).await;
    let album = support::list(&db, ALICE, "a", "LP", "album", &[&song], 5).await;
    support::list(&db, ALICE, "liked", "Likes", "liked", &[&song], 6).await;
    // Eve is hidden: her track and her like of Alice's song are no activity.
    let eve_song = support::track(&db, EVE, "eve", 7).await;
    support::like(&db, EVE, "like", &song, 8).await;
    support::like(&db, BOB, "like2", &eve_song, 9).await;
    support::hide(&db, EVE, Some("deactivated")).await;

    let body = ok(&db, "fm.plyr.feed.getActivity", "").await;
    let items = body["items"].as_array().expect("items");
    let got: Vec<(&str, &str)> = items
        .iter()
        .map(|i| {
            (
                i["type"].as_str().expect("type"),
                i["uri"].as_str().expect("uri"),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("album", album.as_str()),
            ("playlist", playlist.as_str()),
            ("comment", comment.as_str()),
            ("like", like.as_str()),
            ("track", song.as_str()),
        ]
    );
    assert_eq!(items[0]["list"]["name"], "LP");
    assert_eq!(items[2]["text"], "comment c");
    assert_eq!(items[2]["track"]["uri"], song.as_str());
    assert_eq!(items[3]["actor"], json!({"did": BOB, "handle": "bob.test"}));
    assert_eq!(items[3]["createdAt"], support::ts(2));
    let paged = walk(&db, "fm.plyr.feed.getActivity", "", "items", 2).await;
    assert_eq!(uris(&paged), uris(items));
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn albums_and_playlists_of_an_actor(db: PgPool) {
    support::actor(&db, ALICE, Some("alice.test")).await;
    let song = support::track(&db, ALICE, "song", 1).await;
    let mut albums = Vec::new();
    let mut playlists = Vec::new();
    for i in 0..5_i64 {
        let kind = if i % 2 == 0 { "album" } else { "playlist" };
        let uri = support::list(&db, ALICE, &format!("l{i}"), "n", kind, &[&song], i).await;
        if kind == "album" {
            albums.insert(0, uri);
        } else {
            playlists.insert(0, uri);
        }
    }
    support::list(&db, ALICE, "liked", "Likes", "liked", &[&song], 9).await;
    let got = walk(
        &db,
        "fm.plyr.feed.getArtistAlbums",
        "actor=alice.test",
        "albums",
        2,
    )
    .await;
    assert_eq!(uris(&got), albums);
    let got = walk(
        &db,
        "fm.plyr.feed.getActorPlaylists",
        &format!("actor={ALICE}"),
        "playlists",
        1,
    )
    .await;
    assert_eq!(uris(&got), playlists);
    err(
        &db,
        "fm.plyr.feed.getArtistAlbums",
        "",
        400,
        "InvalidRequest",
    )
    .await;
    support::hide(&db, ALICE, Some("takendown")).await;
    err(
        &db,
        "fm.plyr.feed.getActorPlaylists",
        "actor=alice.test",
        400,
        "InvalidRequest",
    )
    .await;
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn profiles_combine_plyr_and_bsky_profiles_with_counts(db: PgPool) {
    support::actor(&db, ALICE, Some("alice.test")).await;
    support::actor(&db, BOB, Some("bob.test")).await;
    support::actor(&db, CAROL, Some("carol.test")).await;
    support::actor(&db, EVE, Some("eve.test")).await;
    support::profile(&db, ALICE, "I sing", "https://img.example/alice.png", 1).await;
    bsky_profile(&db, ALICE, Some("Alice A."), Some("bafkreialice")).await;
    bsky_profile(&db, BOB, Some("Bob"), Some("bafkreibob")).await;
    bsky_profile(&db, CAROL, None, Some("bafkreicarol")).await;
    // Bob's PDS is known; Carol's avatar is in our blob store.
    sqlx::query("insert into did_doc (did, doc) values ($1, $2)")
        .bind(BOB)
        .bind(json!({"id": BOB, "service": [{"id": "#atproto_pds",
        "type": "AtprotoPersonalDataServer", "serviceEndpoint": "https://pds.example"}]}))
        .execute(&db)
        .await
        .expect("did doc");
    sqlx::query(
        "insert into blob (cid, mime, size, origin) values ('bafkreicarol', 'image/png', 1, 'mirror')",
    )
    .execute(&db)
    .await
    .expect("blob");
    let a = support::track(&db, ALICE, "a", 1).await;
    let b = support::track(&db, ALICE, "b", 2).await;
    support::set_counts(&db, &a, 2, 0).await;
    support::set_counts(&db, &b, 3, 0).await;
    sqlx::query("update actor set track_count = 2, like_count = 4 where did = $1")
        .bind(ALICE)
        .execute(&db)
        .await
        .expect("counts");
    support::hide(&db, EVE, Some("deactivated")).await;

    let query = format!(
        "actors=bob.test&actors={ALICE}&actors=did%3Aplc%3Anobody&actors=eve.test\
         &actors=alice.test&actors={CAROL}"
    );
    let body = ok(&db, "fm.plyr.actor.getProfiles", &query).await;
    let profiles = body["profiles"].as_array().expect("profiles");
    let dids: Vec<&str> = profiles.iter().filter_map(|p| p["did"].as_str()).collect();
    assert_eq!(dids, [BOB, ALICE, CAROL]);
    let alice = &profiles[1];
    assert_eq!(alice["displayName"], "Alice A.");
    assert_eq!(alice["bio"], "I sing");
    // The fm.plyr avatar, chosen for plyr.fm, wins.
    assert_eq!(alice["avatar"], "https://img.example/alice.png");
    assert_eq!(alice["trackCount"], 2);
    assert_eq!(alice["likeCount"], 4);
    assert_eq!(alice["receivedLikeCount"], 5);
    assert_eq!(
        profiles[0]["avatar"],
        format!("https://pds.example/xrpc/com.atproto.sync.getBlob?did={BOB}&cid=bafkreibob")
    );
    assert_eq!(
        profiles[2]["avatar"],
        "http://127.0.0.1:2584/blob/bafkreicarol"
    );
    assert!(profiles[2].get("displayName").is_none());
    // getProfile answers the same view.
    let one = ok(&db, "fm.plyr.actor.getProfile", "actor=alice.test").await;
    assert_eq!(&one, alice);

    let many: String = (0..26)
        .map(|i| format!("actors=did%3Aplc%3Ax{i}&"))
        .collect();
    for query in ["".to_owned(), many, "actors=not%20a%20handle".to_owned()] {
        err(
            &db,
            "fm.plyr.actor.getProfiles",
            &query,
            400,
            "InvalidRequest",
        )
        .await;
    }
    let empty: Value = ok(&db, "fm.plyr.actor.getProfiles", "actors=eve.test").await;
    assert_eq!(empty["profiles"], json!([]));
}

//! getLikes and getActorLikes.

use serde_json::json;
use sqlx::PgPool;

use crate::support::{self, CID, enc, err, ok, ts, uris, walk};

const ALICE: &str = "did:plc:alice";
const BOB: &str = "did:plc:bob";
const CAROL: &str = "did:plc:carol";

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn likes_of_a_track_newest_first(db: PgPool) {
    support::actor(&db, ALICE, Some("alice.test")).await;
    support::actor(&db, BOB, Some("bob.test")).await;
    support::actor(&db, CAROL, None).await;
    support::profile(&db, BOB, "bio", "https://img.example/b.png", 0).await;
    let song = support::track(&db, ALICE, "song", 1).await;
    let other = support::track(&db, ALICE, "other", 2).await;
    let by_bob = support::like(&db, BOB, "l1", &song, 10).await;
    let by_carol = support::like(&db, CAROL, "l2", &song, 20).await;
    support::like(&db, CAROL, "l3", &other, 30).await;

    let body = ok(&db, "fm.plyr.feed.getLikes", &format!("uri={}", enc(&song))).await;
    assert_eq!(
        body,
        json!({
            "uri": song,
            "likes": [
                {
                    "uri": by_carol,
                    "cid": CID,
                    "actor": {"did": CAROL, "handle": "handle.invalid"},
                    "createdAt": ts(20),
                    "indexedAt": ts(21),
                },
                {
                    "uri": by_bob,
                    "cid": CID,
                    "actor": {"did": BOB, "handle": "bob.test", "avatar": "https://img.example/b.png"},
                    "createdAt": ts(10),
                    "indexedAt": ts(11),
                },
            ]
        })
    );

    // Likes can arrive before their track: a track not (yet) indexed has none to show.
    let missing = support::track_uri(ALICE, "missing");
    let body = ok(
        &db,
        "fm.plyr.feed.getLikes",
        &format!("uri={}", enc(&missing)),
    )
    .await;
    assert_eq!(body, json!({"uri": missing, "likes": []}));

    for query in [
        "",
        "uri=nope",
        "uri=at%3A%2F%2Falice.test%2Ffm.plyr.track%2Fsong",
    ] {
        err(&db, "fm.plyr.feed.getLikes", query, 400, "InvalidRequest").await;
    }
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn likes_pages_cover_everything_once_in_order(db: PgPool) {
    support::actor(&db, ALICE, Some("alice.test")).await;
    let song = support::track(&db, ALICE, "song", 1).await;
    let mut want = Vec::new();
    for i in 0..9 {
        let did = format!("did:plc:fan{i}");
        support::actor(&db, &did, None).await;
        // Pairs of likes share a time: the URI breaks the tie.
        want.push((i / 2, support::like(&db, &did, "l", &song, i / 2).await));
    }
    want.sort_by(|a, b| b.cmp(a));
    let want: Vec<String> = want.into_iter().map(|(_, uri)| uri).collect();
    let query = format!("uri={}", enc(&song));
    for limit in [1, 2, 4, 9] {
        let got = walk(&db, "fm.plyr.feed.getLikes", &query, "likes", limit).await;
        assert_eq!(uris(&got), want, "limit {limit}");
    }
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn actor_likes_follow_the_likes_order(db: PgPool) {
    support::actor(&db, ALICE, Some("alice.test")).await;
    support::actor(&db, BOB, Some("bob.test")).await;
    // Liked in the opposite order of publication.
    let mut tracks = Vec::new();
    for i in 0..5 {
        tracks.push(support::track(&db, ALICE, &format!("t{i}"), i).await);
    }
    for (i, uri) in tracks.iter().enumerate() {
        let secs = 100 - i64::try_from(i).expect("small");
        support::like(&db, BOB, &format!("l{i}"), uri, secs).await;
    }
    // A like of a track that is not indexed shows nothing.
    support::like(&db, BOB, "lx", &support::track_uri(ALICE, "missing"), 200).await;

    let want = tracks.clone();
    for actor in [BOB, "bob.test"] {
        let query = format!("actor={}", enc(actor));
        let got = walk(&db, "fm.plyr.feed.getActorLikes", &query, "tracks", 2).await;
        assert_eq!(uris(&got), want, "{actor}");
    }
    let body = ok(
        &db,
        "fm.plyr.feed.getActorLikes",
        &format!("actor={BOB}&limit=1"),
    )
    .await;
    assert_eq!(
        body["tracks"][0]["author"],
        json!({"did": ALICE, "handle": "alice.test"})
    );
    assert_eq!(body["tracks"][0]["uri"], tracks[0].as_str());

    let message = err(
        &db,
        "fm.plyr.feed.getActorLikes",
        "actor=nobody.test",
        400,
        "InvalidRequest",
    )
    .await;
    assert_eq!(message, "actor not found");
}

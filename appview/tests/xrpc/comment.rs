//! getComments.

use serde_json::json;
use sqlx::PgPool;

use crate::support::{self, CID, enc, err, ok, ts, uris, walk};

const ALICE: &str = "did:plc:alice";
const BOB: &str = "did:plc:bob";

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn comments_render_in_playback_order(db: PgPool) {
    support::actor(&db, ALICE, Some("alice.test")).await;
    support::actor(&db, BOB, Some("bob.test")).await;
    let song = support::track(&db, ALICE, "song", 1).await;
    // Written late but anchored early: playback position wins over time.
    let late = support::comment(&db, BOB, "c1", &song, 90_000, 10).await;
    let early = support::comment(&db, ALICE, "c2", &song, 1_500, 20).await;

    let body = ok(
        &db,
        "fm.plyr.feed.getComments",
        &format!("uri={}", enc(&song)),
    )
    .await;
    let record = |rkey: &str, ms: i64, secs: i64| {
        json!({
            "$type": "fm.plyr.comment",
            "subject": {"uri": song, "cid": CID},
            "text": format!("comment {rkey}"),
            "timestampMs": ms,
            "createdAt": ts(secs),
        })
    };
    assert_eq!(
        body,
        json!({
            "uri": song,
            "comments": [
                {
                    "uri": early,
                    "cid": CID,
                    "author": {"did": ALICE, "handle": "alice.test"},
                    "record": record("c2", 1_500, 20),
                    "text": "comment c2",
                    "timestampMs": 1_500,
                    "createdAt": ts(20),
                    "indexedAt": ts(21),
                },
                {
                    "uri": late,
                    "cid": CID,
                    "author": {"did": BOB, "handle": "bob.test"},
                    "record": record("c1", 90_000, 10),
                    "text": "comment c1",
                    "timestampMs": 90_000,
                    "createdAt": ts(10),
                    "indexedAt": ts(11),
                },
            ]
        })
    );

    for query in ["", "uri=at%3A%2F%2Fdid%3Aplc%3Aalice"] {
        err(
            &db,
            "fm.plyr.feed.getComments",
            query,
            400,
            "InvalidRequest",
        )
        .await;
    }
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn comment_pages_cover_everything_once_in_order(db: PgPool) {
    support::actor(&db, ALICE, Some("alice.test")).await;
    support::actor(&db, BOB, Some("bob.test")).await;
    let song = support::track(&db, ALICE, "song", 1).await;
    let mut want = Vec::new();
    for i in 0..8_i64 {
        let did = if i % 2 == 0 { ALICE } else { BOB };
        // Positions repeat (0, 0, 1000, 1000, ...): the URI breaks ties.
        let ms = (i / 2) * 1000;
        want.push((
            ms,
            support::comment(&db, did, &format!("c{i}"), &song, ms, 8 - i).await,
        ));
    }
    want.sort();
    let want: Vec<String> = want.into_iter().map(|(_, uri)| uri).collect();
    let query = format!("uri={}", enc(&song));
    for limit in [1, 3, 8] {
        let got = walk(&db, "fm.plyr.feed.getComments", &query, "comments", limit).await;
        assert_eq!(uris(&got), want, "limit {limit}");
    }
}

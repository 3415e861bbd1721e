//! getLatestTracks, getTrack, getTracks and getArtistTracks.

use serde_json::json;
use sqlx::PgPool;

use crate::support::{self, CID, enc, err, ok, track_record, ts, uris, walk};

const ALICE: &str = "did:plc:alice";
const BOB: &str = "did:plc:bob";

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn latest_tracks_render_every_field_newest_first(db: PgPool) {
    support::actor(&db, ALICE, Some("alice.test")).await;
    support::actor(&db, BOB, None).await;
    support::profile(&db, ALICE, "hi", "https://img.example/a.png", 0).await;
    let old = support::track(&db, ALICE, "t1", 10).await;
    let new = support::track(&db, BOB, "t2", 20).await;
    support::set_counts(&db, &old, 3, 2).await;

    let body = ok(&db, "fm.plyr.feed.getLatestTracks", "").await;
    assert_eq!(
        body,
        json!({
            "tracks": [
                {
                    "uri": new,
                    "cid": CID,
                    "author": {"did": BOB, "handle": "handle.invalid"},
                    "record": track_record("t2", 20),
                    "likeCount": 0,
                    "commentCount": 0,
                    "indexedAt": ts(21),
                },
                {
                    "uri": old,
                    "cid": CID,
                    "author": {
                        "did": ALICE,
                        "handle": "alice.test",
                        "avatar": "https://img.example/a.png",
                    },
                    "record": track_record("t1", 10),
                    "likeCount": 3,
                    "commentCount": 2,
                    "indexedAt": ts(11),
                },
            ]
        })
    );
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn latest_tracks_pages_cover_everything_once_in_order(db: PgPool) {
    support::actor(&db, ALICE, Some("alice.test")).await;
    support::actor(&db, BOB, Some("bob.test")).await;
    // Ties on sort_at across authors make the URI tie-breaker matter.
    let mut want = Vec::new();
    for (i, secs) in [5, 5, 5, 9, 1, 7, 7].into_iter().enumerate() {
        let did = if i % 2 == 0 { ALICE } else { BOB };
        want.push((secs, support::track(&db, did, &format!("t{i}"), secs).await));
    }
    want.sort_by(|a, b| b.cmp(a));
    let want: Vec<String> = want.into_iter().map(|(_, uri)| uri).collect();

    for limit in [1, 2, 3, 7, 100] {
        let got = walk(&db, "fm.plyr.feed.getLatestTracks", "", "tracks", limit).await;
        assert_eq!(uris(&got), want, "limit {limit}");
    }
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn get_track_answers_one_track_or_not_found(db: PgPool) {
    support::actor(&db, ALICE, Some("alice.test")).await;
    let uri = support::track(&db, ALICE, "t1", 10).await;

    let body = ok(&db, "fm.plyr.feed.getTrack", &format!("uri={}", enc(&uri))).await;
    assert_eq!(body["track"]["uri"], uri.as_str());
    assert_eq!(
        body["track"]["author"],
        json!({"did": ALICE, "handle": "alice.test"})
    );
    assert_eq!(body["track"]["record"], track_record("t1", 10));
    assert_eq!(body["track"]["indexedAt"], ts(11));

    let missing = support::track_uri(ALICE, "nope");
    err(
        &db,
        "fm.plyr.feed.getTrack",
        &format!("uri={}", enc(&missing)),
        404,
        "NotFound",
    )
    .await;

    let bad = [
        "",
        "uri=",
        "uri=not-a-uri",
        "uri=at%3A%2F%2Falice.test%2Ffm.plyr.track%2Ft1",
        "uri=at%3A%2F%2Fdid%3Aplc%3Aalice",
        "uri=at%3A%2F%2Fdid%3Aplc%3Aalice%2Ffm.plyr.track",
    ];
    for query in bad {
        err(&db, "fm.plyr.feed.getTrack", query, 400, "InvalidRequest").await;
    }
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn get_tracks_keeps_request_order_and_drops_missing(db: PgPool) {
    support::actor(&db, ALICE, Some("alice.test")).await;
    let a = support::track(&db, ALICE, "a", 1).await;
    let b = support::track(&db, ALICE, "b", 2).await;
    let c = support::track(&db, ALICE, "c", 3).await;
    let missing = support::track_uri(ALICE, "missing");

    let requested = [&b, &missing, &c, &a, &b];
    let query: Vec<String> = requested
        .iter()
        .map(|u| format!("uris={}", enc(u)))
        .collect();
    let body = ok(&db, "fm.plyr.feed.getTracks", &query.join("&")).await;
    let got = uris(body["tracks"].as_array().expect("tracks"));
    assert_eq!(got, [b.clone(), c.clone(), a.clone()]);

    // The lexicon's maxLength is 25: at the bound passes, over it is refused.
    let many = |n: usize| -> String {
        (0..n)
            .map(|i| format!("uris={}", enc(&support::track_uri(ALICE, &format!("x{i}")))))
            .collect::<Vec<_>>()
            .join("&")
    };
    let body = ok(&db, "fm.plyr.feed.getTracks", &many(25)).await;
    assert_eq!(body, json!({"tracks": []}));
    err(
        &db,
        "fm.plyr.feed.getTracks",
        &many(26),
        400,
        "InvalidRequest",
    )
    .await;
    err(&db, "fm.plyr.feed.getTracks", "", 400, "InvalidRequest").await;
    let one_bad = format!("uris={}&uris=nope", enc(&a));
    err(
        &db,
        "fm.plyr.feed.getTracks",
        &one_bad,
        400,
        "InvalidRequest",
    )
    .await;
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn artist_tracks_by_did_or_handle(db: PgPool) {
    support::actor(&db, ALICE, Some("alice.test")).await;
    support::actor(&db, BOB, Some("bob.test")).await;
    let mut want = Vec::new();
    for i in 0..5 {
        want.push(support::track(&db, ALICE, &format!("t{i}"), i).await);
        support::track(&db, BOB, &format!("t{i}"), i).await;
    }
    want.reverse();

    for actor in [ALICE, "alice.test", "Alice.TEST"] {
        let query = format!("actor={}", enc(actor));
        let got = walk(&db, "fm.plyr.feed.getArtistTracks", &query, "tracks", 2).await;
        assert_eq!(uris(&got), want, "{actor}");
    }

    let unknown = [
        ("did:plc:nobody", 400),
        ("nobody.test", 400),
        ("handle.invalid", 400),
    ];
    for (actor, status) in unknown {
        let message = err(
            &db,
            "fm.plyr.feed.getArtistTracks",
            &format!("actor={}", enc(actor)),
            status,
            "InvalidRequest",
        )
        .await;
        assert_eq!(message, "actor not found", "{actor}");
    }
    for query in ["", "actor=", "actor=not_a_handle", "actor=did%3A"] {
        err(
            &db,
            "fm.plyr.feed.getArtistTracks",
            query,
            400,
            "InvalidRequest",
        )
        .await;
    }
}

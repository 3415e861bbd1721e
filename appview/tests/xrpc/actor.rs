//! getProfile.

use serde_json::json;
use sqlx::PgPool;

use crate::support::{self, err, ok, ts};

const ALICE: &str = "did:plc:alice";

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn profile_with_record_and_counts(db: PgPool) {
    support::actor(&db, ALICE, Some("alice.test")).await;
    support::profile(&db, ALICE, "making noise", "https://img.example/a.png", 5).await;
    sqlx::query(
        "update actor set track_count = 4, like_count = 3, comment_count = 2, album_count = 1, \
         playlist_count = 5 where did = $1",
    )
    .bind(ALICE)
    .execute(&db)
    .await
    .expect("set counts");

    let want = json!({
        "did": ALICE,
        "handle": "alice.test",
        "bio": "making noise",
        "avatar": "https://img.example/a.png",
        "trackCount": 4,
        "likeCount": 3,
        "commentCount": 2,
        "albumCount": 1,
        "playlistCount": 5,
        // Alice has no tracks, so no likes received.
        "receivedLikeCount": 0,
        "createdAt": ts(5),
        "indexedAt": ts(6),
    });
    for actor in [ALICE, "alice.test", "ALICE.test"] {
        let body = ok(&db, "fm.plyr.actor.getProfile", &format!("actor={actor}")).await;
        assert_eq!(body, want, "{actor}");
    }
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn profile_without_record_or_handle(db: PgPool) {
    support::actor(&db, ALICE, None).await;
    let body = ok(&db, "fm.plyr.actor.getProfile", &format!("actor={ALICE}")).await;
    assert_eq!(
        body,
        json!({
            "did": ALICE,
            "handle": "handle.invalid",
            "trackCount": 0,
            "likeCount": 0,
            "commentCount": 0,
            "albumCount": 0,
            "playlistCount": 0,
            "receivedLikeCount": 0,
        })
    );
    // The sentinel is not a handle anyone holds.
    err(
        &db,
        "fm.plyr.actor.getProfile",
        "actor=handle.invalid",
        400,
        "InvalidRequest",
    )
    .await;
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn inactive_and_unknown_profiles_are_refused(db: PgPool) {
    let cases = [
        (Some("deactivated"), "AccountDeactivated"),
        (None, "AccountDeactivated"),
        (Some("takendown"), "AccountTakedown"),
        (Some("suspended"), "AccountTakedown"),
        // A deleted account looks like one that never existed.
        (Some("deleted"), "InvalidRequest"),
    ];
    for (i, (status, error)) in cases.into_iter().enumerate() {
        let did = format!("did:plc:gone{i}");
        let handle = format!("gone{i}.test");
        support::actor(&db, &did, Some(&handle)).await;
        support::hide(&db, &did, status).await;
        for actor in [&did, &handle] {
            err(
                &db,
                "fm.plyr.actor.getProfile",
                &format!("actor={actor}"),
                400,
                error,
            )
            .await;
        }
    }
    for actor in ["did:plc:nobody", "nobody.test"] {
        let message = err(
            &db,
            "fm.plyr.actor.getProfile",
            &format!("actor={actor}"),
            400,
            "InvalidRequest",
        )
        .await;
        assert_eq!(message, "profile not found");
    }
    for query in [
        "",
        "actor=",
        "actor=at%3A%2F%2Fdid%3Aplc%3Aalice",
        "actor=nodots",
    ] {
        err(
            &db,
            "fm.plyr.actor.getProfile",
            query,
            400,
            "InvalidRequest",
        )
        .await;
    }
}

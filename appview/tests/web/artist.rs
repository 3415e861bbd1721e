use serde_json::{Value, json};
use sqlx::PgPool;

use crate::schema;
use crate::support::{detail, ok, send, track_ids, track_with, web_id};
use crate::xrpc_support::{actor, enc, hide, like, profile, set_counts, track};

const ALICE: &str = "did:plc:alice";
const BOB: &str = "did:plc:bob";

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn artists_by_handle_and_did(db: PgPool) {
    actor(&db, ALICE, Some("alice.test")).await;
    profile(&db, ALICE, "hello", "https://img.test/a.jpg", 0).await;
    track_with(&db, ALICE, "t1", 1, json!({"artist": "Old Name"})).await;
    track_with(&db, ALICE, "t2", 2, json!({"artist": "Alice A."})).await;
    let a = ok(&db, "/artists/by-handle/Alice.Test", &schema::artist()).await;
    assert_eq!(a["did"], ALICE);
    assert_eq!(a["handle"], "alice.test");
    // The name of the newest track.
    assert_eq!(a["display_name"], "Alice A.");
    assert_eq!(a["bio"], "hello");
    assert_eq!(a["avatar_url"], "https://img.test/a.jpg");
    assert_eq!(a["created_at"], "2026-01-01T00:00:00.000000Z");
    assert_eq!(a["show_liked_on_profile"], false);
    assert_eq!(a["support_url"], Value::Null);
    let b = ok(&db, &format!("/artists/{}", enc(ALICE)), &schema::artist()).await;
    assert_eq!(b, a);
    // No tracks, no profile, no handle: the DID stands in.
    actor(&db, BOB, None).await;
    let bob = ok(&db, &format!("/artists/{}", enc(BOB)), &schema::artist()).await;
    assert_eq!(bob["handle"], BOB);
    assert_eq!(bob["display_name"], BOB);
    detail(
        &db,
        "/artists/by-handle/nobody.test",
        404,
        "artist not found",
    )
    .await;
    detail(&db, "/artists/did:plc:nobody", 404, "artist not found").await;
    hide(&db, ALICE, Some("deactivated")).await;
    detail(
        &db,
        "/artists/by-handle/alice.test",
        404,
        "artist not found",
    )
    .await;
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn analytics_totals_and_zeros_for_unknown(db: PgPool) {
    actor(&db, ALICE, Some("alice.test")).await;
    let t1 = track_with(
        &db,
        ALICE,
        "t1",
        1,
        json!({"duration": 100, "title": "One"}),
    )
    .await;
    let t2 = track_with(&db, ALICE, "t2", 2, json!({"duration": 50, "title": "Two"})).await;
    set_counts(&db, &t2, 4, 0).await;
    let before = ok(
        &db,
        &format!("/artists/{}/analytics", enc(ALICE)),
        &schema::analytics(),
    )
    .await;
    assert_eq!(before["total_items"], 2);
    assert_eq!(before["total_duration_seconds"], 150);
    assert_eq!(before["total_plays"], 0);
    assert_eq!(before["top_item"], Value::Null);
    assert_eq!(before["rank"], Value::Null);
    // top_liked.play_count holds the like count (upstream's quirk).
    assert_eq!(
        before["top_liked"],
        json!({"id": web_id(&db, &t2).await, "title": "Two", "play_count": 4})
    );
    let played = send(
        &db,
        "POST",
        &format!("/tracks/{}/play", web_id(&db, &t1).await),
        &[],
    )
    .await;
    assert_eq!(played.status.as_u16(), 200, "{}", played.body);
    let after = ok(
        &db,
        &format!("/artists/{}/analytics", enc(ALICE)),
        &schema::analytics(),
    )
    .await;
    assert_eq!(after["total_plays"], 1);
    assert_eq!(
        after["top_item"],
        json!({"id": web_id(&db, &t1).await, "title": "One", "play_count": 1})
    );
    assert_eq!(after["rank"], 1);
    let unknown = ok(
        &db,
        "/artists/did:plc:nobody/analytics",
        &schema::analytics(),
    )
    .await;
    assert_eq!(
        unknown,
        json!({"total_plays": 0, "total_items": 0, "total_duration_seconds": 0, "top_item": null, "top_liked": null, "rank": null})
    );
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn a_users_likes_newest_first(db: PgPool) {
    actor(&db, ALICE, Some("alice.test")).await;
    actor(&db, BOB, Some("bob.test")).await;
    profile(&db, BOB, "b", "https://img.test/bob.jpg", 0).await;
    let t1 = track(&db, ALICE, "t1", 1).await;
    let t2 = track(&db, ALICE, "t2", 2).await;
    like(&db, BOB, "l1", &t2, 10).await;
    like(&db, BOB, "l2", &t1, 20).await;
    let body = ok(&db, "/users/bob.test/likes", &schema::user_likes()).await;
    assert_eq!(body["user"]["did"], BOB);
    assert_eq!(body["user"]["avatar_url"], "https://img.test/bob.jpg");
    assert_eq!(body["count"], 2);
    let ids = track_ids(&body["tracks"]);
    assert_eq!(ids, [web_id(&db, &t1).await, web_id(&db, &t2).await]);
    assert_eq!(body["tracks"][0]["tags"], json!([]));
    let by_did = ok(
        &db,
        &format!("/users/{}/likes", enc(BOB)),
        &schema::user_likes(),
    )
    .await;
    assert_eq!(by_did, body);
    detail(&db, "/users/nobody.test/likes", 404, "user not found").await;
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn artists_in_a_batch(db: PgPool) {
    actor(&db, ALICE, Some("alice.test")).await;
    actor(&db, BOB, Some("bob.test")).await;
    hide(&db, BOB, None).await;
    let batch = |body: &'static str| {
        crate::support::send_body(
            plyr_appview_xrpc::AppState::new(db.clone()),
            "POST",
            "/artists/batch",
            &[("content-type", "application/json")],
            axum::body::Body::from(body),
        )
    };
    let reply = batch(r#"["did:plc:alice", "did:plc:bob", "did:plc:nobody"]"#).await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.body);
    let map = reply.body.as_object().expect("an object keyed by DID");
    assert_eq!(map.keys().collect::<Vec<_>>(), [ALICE]);
    schema::check(&reply.body[ALICE], &schema::artist());
    assert_eq!(reply.body[ALICE]["handle"], "alice.test");
    let bad = batch(r#"{"not": "a list"}"#).await;
    assert_eq!(bad.status.as_u16(), 422);
    schema::check(&bad.body, &schema::validation());
}

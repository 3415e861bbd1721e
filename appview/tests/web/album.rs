use serde_json::json;
use sqlx::PgPool;

use crate::schema;
use crate::support::{detail, ok, send, track_ids, track_with, web_id};
use crate::xrpc_support::{actor, enc, list, profile};

const ALICE: &str = "did:plc:alice";

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn albums_from_lists_and_track_names_with_unique_slugs(db: PgPool) {
    actor(&db, ALICE, Some("alice.test")).await;
    profile(&db, ALICE, "bio", "https://img.test/alice.jpg", 0).await;
    // An album list "Blue" whose record holds b2 then b1; b3 names the album but is not listed.
    let b1 = track_with(
        &db,
        ALICE,
        "b1",
        1,
        json!({"album": "Blue", "imageUrl": "https://img.test/b1.jpg"}),
    )
    .await;
    let b2 = track_with(&db, ALICE, "b2", 2, json!({"album": "Blue"})).await;
    let b3 = track_with(&db, ALICE, "b3", 3, json!({"album": "Blue"})).await;
    let list_uri = list(&db, ALICE, "l1", "Blue", "album", &[&b2, &b1], 4).await;
    // Implicit albums: "blue!" slugs like "Blue" and, being newer, gets -2; "Red" has no art.
    let x = track_with(&db, ALICE, "x1", 5, json!({"album": "blue!"})).await;
    let r = track_with(&db, ALICE, "r1", 6, json!({"album": "Red"})).await;
    let _single = track_with(&db, ALICE, "s1", 7, json!({})).await;

    let body = ok(&db, "/albums/alice.test", &schema::artist_albums()).await;
    let albums = body["albums"].as_array().expect("albums");
    let summary: Vec<(String, String, i64)> = albums
        .iter()
        .map(|a| {
            (
                a["title"].as_str().unwrap_or_default().to_owned(),
                a["slug"].as_str().unwrap_or_default().to_owned(),
                a["track_count"].as_i64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("Blue".to_owned(), "blue".to_owned(), 3),
            ("blue!".to_owned(), "blue-2".to_owned(), 1),
            ("Red".to_owned(), "red".to_owned(), 1),
        ]
    );
    assert_eq!(
        albums[0]["id"],
        crate::support::list_id(&db, &list_uri).await
    );
    assert_eq!(albums[0]["image_url"], "https://img.test/b1.jpg");
    // No track art: the artist's avatar.
    assert_eq!(albums[2]["image_url"], "https://img.test/alice.jpg");

    let detail_body = ok(&db, "/albums/alice.test/blue", &schema::album_detail()).await;
    let ids = track_ids(&detail_body["tracks"]);
    // Record order first, then unlisted tracks naming the album, oldest first.
    assert_eq!(
        ids,
        [
            web_id(&db, &b2).await,
            web_id(&db, &b1).await,
            web_id(&db, &b3).await
        ]
    );
    let m = &detail_body["metadata"];
    assert_eq!(m["slug"], "blue");
    assert_eq!(m["list_uri"], list_uri);
    assert_eq!(m["artist_handle"], "alice.test");
    assert_eq!(m["artist_did"], ALICE);
    assert_eq!(m["artist"], "someone");
    assert_eq!(m["track_count"], 3);
    assert_eq!(m["total_plays"], 0);
    assert_eq!(m["image_url"], "https://img.test/b1.jpg");
    // The Track's album summary names the same album.
    assert_eq!(detail_body["tracks"][0]["album"]["slug"], "blue");
    assert_eq!(detail_body["tracks"][0]["album"]["id"], m["id"]);

    let implicit = ok(&db, "/albums/alice.test/blue-2", &schema::album_detail()).await;
    assert_eq!(implicit["metadata"]["list_uri"], serde_json::Value::Null);
    assert_eq!(implicit["tracks"][0]["id"], web_id(&db, &x).await);
    // A DID works where a handle does.
    let by_did = ok(
        &db,
        &format!("/albums/{}/red", enc(ALICE)),
        &schema::album_detail(),
    )
    .await;
    assert_eq!(by_did["tracks"][0]["id"], web_id(&db, &r).await);

    // Ids are stable: the same answer twice.
    let again = send(&db, "GET", "/albums/alice.test", &[]).await;
    assert_eq!(again.body, body);

    detail(&db, "/albums/alice.test/green", 404, "album not found").await;
    detail(&db, "/albums/nobody.test", 404, "artist not found").await;
    detail(&db, "/albums/nobody.test/blue", 404, "artist not found").await;
}

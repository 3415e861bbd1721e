use serde_json::{Value, json};
use sqlx::PgPool;

use crate::schema;
use crate::support::{detail, invalid, list_id, ok, track_ids, track_with, web_id};
use crate::xrpc_support::{actor, enc, hide, list, track};

const ALICE: &str = "did:plc:alice";
const BOB: &str = "did:plc:bob";

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn playlists_with_tracks_meta_and_by_artist(db: PgPool) {
    actor(&db, ALICE, Some("alice.test")).await;
    actor(&db, BOB, Some("bob.test")).await;
    let a = track_with(
        &db,
        ALICE,
        "a",
        1,
        json!({"imageUrl": "https://img.test/a.jpg"}),
    )
    .await;
    let b = track_with(
        &db,
        BOB,
        "b",
        2,
        json!({"imageUrl": "https://img.test/b.jpg"}),
    )
    .await;
    let c = track(&db, BOB, "c", 3).await;
    let older = list(&db, ALICE, "p0", "Old mix", "playlist", &[&a], 4).await;
    let mix = list(&db, ALICE, "p1", "Mix", "playlist", &[&b, &a, &c], 5).await;
    let _album = list(&db, ALICE, "al", "An album", "album", &[&a], 6).await;
    let id = list_id(&db, &mix).await;

    let full = ok(
        &db,
        &format!("/lists/playlists/{id}"),
        &schema::playlist_with_tracks(),
    )
    .await;
    assert_eq!(full["id"], id);
    assert_eq!(full["name"], "Mix");
    assert_eq!(full["owner_did"], ALICE);
    assert_eq!(full["owner_handle"], "alice.test");
    assert_eq!(full["atproto_record_uri"], mix);
    assert_eq!(full["is_private"], false);
    assert_eq!(full["show_on_profile"], true);
    assert_eq!(full["image_url"], Value::Null);
    assert_eq!(
        full["preview_thumbnails"],
        json!(["https://img.test/b.jpg", "https://img.test/a.jpg"])
    );
    let ids = track_ids(&full["tracks"]);
    assert_eq!(
        ids,
        [
            web_id(&db, &b).await,
            web_id(&db, &a).await,
            web_id(&db, &c).await
        ]
    );
    assert_eq!(full["track_count"], 3);

    // A hidden member drops out of the tracks and the count; meta keeps the record's count.
    hide(&db, BOB, None).await;
    let fewer = ok(
        &db,
        &format!("/lists/playlists/{id}"),
        &schema::playlist_with_tracks(),
    )
    .await;
    assert_eq!(fewer["track_count"], 1);
    let meta = ok(
        &db,
        &format!("/lists/playlists/{id}/meta"),
        &schema::playlist(),
    )
    .await;
    assert_eq!(meta["track_count"], 3);
    assert_eq!(
        meta["preview_thumbnails"],
        json!(["https://img.test/a.jpg"])
    );

    let mine = ok(
        &db,
        &format!("/lists/playlists/by-artist/{}", enc(ALICE)),
        &schema::S::Arr(Box::new(schema::playlist())),
    )
    .await;
    let names: Vec<&str> = mine
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["Mix", "Old mix"]);
    assert_eq!(mine[1]["id"], list_id(&db, &older).await);

    // og-cover: the first member artwork that is still visible.
    let cover =
        crate::support::send(&db, "GET", &format!("/lists/playlists/{id}/og-cover"), &[]).await;
    assert_eq!(cover.status.as_u16(), 307);
    assert_eq!(cover.header("location"), Some("https://img.test/a.jpg"));
    let empty = list(&db, ALICE, "p2", "Empty", "playlist", &[], 7).await;
    detail(
        &db,
        &format!("/lists/playlists/{}/og-cover", list_id(&db, &empty).await),
        404,
        "no cover image",
    )
    .await;
    detail(
        &db,
        "/lists/playlists/00000000-0000-0000-0000-000000000000",
        404,
        "playlist not found",
    )
    .await;
    detail(
        &db,
        "/lists/playlists/not-a-uuid/meta",
        404,
        "playlist not found",
    )
    .await;
    let album_id = list_id(&db, &_album).await;
    detail(
        &db,
        &format!("/lists/playlists/{album_id}"),
        404,
        "playlist not found",
    )
    .await;
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn lists_by_uri_locate_albums_and_playlists(db: PgPool) {
    actor(&db, ALICE, Some("alice.test")).await;
    let a = track(&db, ALICE, "a", 1).await;
    let mix = list(&db, ALICE, "p1", "Mix", "playlist", &[&a], 2).await;
    let album = list(&db, ALICE, "al", "Blue Sky", "album", &[&a], 3).await;
    let p = ok(
        &db,
        &format!("/lists/by-uri?uri={}", enc(&mix)),
        &schema::list_location(),
    )
    .await;
    assert_eq!(
        p,
        json!({"type": "playlist", "id": list_id(&db, &mix).await, "handle": null, "slug": null})
    );
    let al = ok(
        &db,
        &format!("/lists/by-uri?uri={}", enc(&album)),
        &schema::list_location(),
    )
    .await;
    assert_eq!(
        al,
        json!({"type": "album", "id": list_id(&db, &album).await, "handle": "alice.test", "slug": "blue-sky"})
    );
    detail(
        &db,
        "/lists/by-uri?uri=at%3A%2F%2Fdid%3Aplc%3Ax%2Ffm.plyr.list%2Fy",
        404,
        "list not found",
    )
    .await;
    invalid(&db, "/lists/by-uri", "uri").await;
}

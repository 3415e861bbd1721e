use serde_json::{Value, json};
use sqlx::PgPool;

use crate::schema;
use crate::support::{self, detail, invalid, ok, send, track_ids, track_with, web_id};
use crate::xrpc_support::{actor, comment, enc, hide, like, profile, set_counts, track};

const ALICE: &str = "did:plc:alice";
const BOB: &str = "did:plc:bob";

/// Walks `/tracks/?{query}` with `limit`, checking has_more/next_cursor agree on every page;
/// returns the track ids in order.
async fn walk(db: &PgPool, query: &str, limit: usize) -> Vec<i64> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..50 {
        let mut path = format!("/tracks/?{query}&limit={limit}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={}", enc(c)));
        }
        let body = ok(db, &path, &schema::tracks_page()).await;
        let page = body["tracks"].as_array().expect("tracks");
        ids.extend(page.iter().map(|t| t["id"].as_i64().expect("id")));
        let has_more = body["has_more"].as_bool().expect("has_more");
        cursor = body["next_cursor"].as_str().map(str::to_owned);
        assert_eq!(has_more, cursor.is_some(), "{path}: {body}");
        if !has_more {
            return ids;
        }
        assert_eq!(
            page.len(),
            limit,
            "{path}: a page with more after it is full"
        );
    }
    panic!("more than 50 pages");
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn feed_pages_newest_first_with_stable_ids(db: PgPool) {
    actor(&db, ALICE, Some("alice.test")).await;
    actor(&db, BOB, Some("bob.test")).await;
    let mut uris = Vec::new();
    for i in 0..7 {
        uris.push(
            track(
                &db,
                if i % 2 == 0 { ALICE } else { BOB },
                &format!("t{i}"),
                i,
            )
            .await,
        );
    }
    // Two tracks of the same instant must both survive a page boundary.
    uris.push(track(&db, BOB, "tie", 6).await);
    let mut want = Vec::new();
    for uri in uris.iter().rev() {
        want.push(web_id(&db, uri).await);
    }
    let got = walk(&db, "", 3).await;
    assert_eq!(got.len(), 8);
    let mut sorted_got = got.clone();
    sorted_got.sort();
    let mut sorted_want = want.clone();
    sorted_want.sort();
    assert_eq!(sorted_got, sorted_want, "every track once");
    // Ids: 52 bits of sha256(uri), the same in Rust and SQL, below 2^53.
    for uri in &uris {
        let id = web_id(&db, uri).await;
        assert!((0..(1i64 << 53)).contains(&id));
    }
    // The default page is 50; limit is clamped, not refused.
    let all = ok(&db, "/tracks/", &schema::tracks_page()).await;
    assert_eq!(all["tracks"].as_array().map(Vec::len), Some(8));
    assert_eq!(all["has_more"], false);
    assert_eq!(all["next_cursor"], Value::Null);
    let one = ok(&db, "/tracks?limit=0", &schema::tracks_page()).await;
    assert_eq!(one["tracks"].as_array().map(Vec::len), Some(1));
    assert_eq!(one["has_more"], true);
    invalid(&db, "/tracks/?limit=many", "limit").await;
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn upstream_iso_cursors_and_bad_cursors(db: PgPool) {
    actor(&db, ALICE, Some("alice.test")).await;
    for i in 0..4 {
        track(&db, ALICE, &format!("t{i}"), i * 10).await;
    }
    let first = ok(&db, "/tracks/?limit=2", &schema::tracks_page()).await;
    // Upstream's cursor form: the created_at of the last track, strictly older after it.
    let last_created = first["tracks"][1]["created_at"]
        .as_str()
        .expect("created_at");
    assert!(
        last_created.ends_with("+00:00") && last_created.contains('.'),
        "{last_created}"
    );
    let next = ok(
        &db,
        &format!("/tracks/?limit=2&cursor={}", enc(last_created)),
        &schema::tracks_page(),
    )
    .await;
    let titles: Vec<&str> = next["tracks"]
        .as_array()
        .expect("tracks")
        .iter()
        .filter_map(|t| t["title"].as_str())
        .collect();
    assert_eq!(titles, ["song t1", "song t0"]);
    detail(
        &db,
        "/tracks/?cursor=not-a-cursor",
        400,
        "invalid cursor format",
    )
    .await;
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn discovery_hides_adult_labels_and_artist_pages_show_them(db: PgPool) {
    actor(&db, ALICE, Some("alice.test")).await;
    let labels = json!({"labels": {"$type": "com.atproto.label.defs#selfLabels", "values": [{"val": "porn"}]}});
    let adult = track_with(&db, ALICE, "adult", 1, labels).await;
    let plain = track(&db, ALICE, "plain", 2).await;
    let feed = ok(&db, "/tracks/", &schema::tracks_page()).await;
    let ids = track_ids(&feed["tracks"]);
    assert_eq!(ids, [web_id(&db, &plain).await]);
    let artist = ok(
        &db,
        &format!("/tracks/?artist_did={}", enc(ALICE)),
        &schema::tracks_page(),
    )
    .await;
    let tracks = artist["tracks"].as_array().expect("tracks");
    assert_eq!(tracks.len(), 2);
    let adult_id = web_id(&db, &adult).await;
    let adult_json = tracks
        .iter()
        .find(|t| t["id"] == adult_id)
        .expect("adult track listed");
    assert_eq!(adult_json["labels"], json!(["porn"]));
    assert_eq!(adult_json["self_labels"], json!(["porn"]));
    // Tags are not on the network: a tag filter matches nothing.
    let tagged = ok(&db, "/tracks/?tags=ambient&tags=ai", &schema::tracks_page()).await;
    assert_eq!(tagged["tracks"], json!([]));
    assert_eq!(tagged["has_more"], false);
    // An unknown artist has no tracks.
    let nobody = ok(
        &db,
        "/tracks/?artist_did=did:plc:nobody",
        &schema::tracks_page(),
    )
    .await;
    assert_eq!(nobody["tracks"], json!([]));
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn one_track_field_by_field(db: PgPool) {
    actor(&db, ALICE, Some("alice.test")).await;
    actor(&db, BOB, Some("bob.test")).await;
    profile(&db, ALICE, "bio", "https://img.test/alice.jpg", 0).await;
    support::did_doc(&db, ALICE, "https://pds.alice.test").await;
    let extra = json!({
        "title": "Blue Monday",
        "artist": "Alice A.",
        "album": "Blue",
        "imageUrl": "https://img.test/blue.jpg",
        "description": "notes",
        "duration": 200,
        "audioBlob": support::audio_blob(),
        "audioUrl": "https://audio.plyr.fm/x.mp3",
        "features": [{"did": BOB, "handle": "old.bob.test", "displayName": "Old Bob"}, {"did": "did:plc:ghost", "displayName": "Ghost"}],
    });
    let uri = track_with(&db, ALICE, "blue1", 5, extra).await;
    set_counts(&db, &uri, 3, 2).await;
    let id = web_id(&db, &uri).await;
    let t = ok(&db, &format!("/tracks/{id}"), &schema::track()).await;
    assert_eq!(t["id"], id);
    assert_eq!(t["title"], "Blue Monday");
    assert_eq!(t["artist"], "Alice A.");
    assert_eq!(t["artist_handle"], "alice.test");
    assert_eq!(t["artist_did"], ALICE);
    assert_eq!(t["artist_avatar_url"], "https://img.test/alice.jpg");
    assert_eq!(t["file_id"], "blue1");
    assert_eq!(t["file_type"], "mp3");
    assert_eq!(
        t["r2_url"],
        format!(
            "https://pds.alice.test/xrpc/com.atproto.sync.getBlob?did={ALICE}&cid={}",
            support::AUDIO_CID
        )
    );
    assert_eq!(t["atproto_record_uri"], uri);
    assert_eq!(
        t["atproto_record_url"],
        format!(
            "https://pds.alice.test/xrpc/com.atproto.repo.getRecord?repo={ALICE}&collection=fm.plyr.track&rkey=blue1"
        )
    );
    assert_eq!(t["play_count"], 0);
    assert_eq!(t["like_count"], 3);
    assert_eq!(t["comment_count"], 2);
    assert_eq!(t["is_liked"], false);
    assert_eq!(t["tags"], json!([]));
    assert_eq!(t["album"]["title"], "Blue");
    assert_eq!(t["album"]["slug"], "blue");
    assert_eq!(t["album"]["image_url"], "https://img.test/blue.jpg");
    assert_eq!(t["support_gate"], Value::Null);
    assert_eq!(t["gated"], false);
    assert_eq!(t["visibility"], "public");
    assert_eq!(t["audio_storage"], "both");
    assert_eq!(t["pds_blob_cid"], support::AUDIO_CID);
    assert_eq!(t["description"], "notes");
    assert_eq!(t["downloadable"], false);
    assert_eq!(t["created_at"], "2026-01-01T00:00:05.000000+00:00");
    // Featured artists resolve from the DID when known, else keep the record's snapshot.
    assert_eq!(t["features"][0]["handle"], "bob.test");
    assert_eq!(t["features"][1]["handle"], "did:plc:ghost");
    assert_eq!(t["features"][1]["display_name"], "Ghost");
    // The same track by record URI.
    let by_uri = ok(
        &db,
        &format!("/tracks/by-uri?uri={}", enc(&uri)),
        &schema::track(),
    )
    .await;
    assert_eq!(by_uri["id"], id);
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn missing_hidden_and_malformed_tracks(db: PgPool) {
    actor(&db, ALICE, Some("alice.test")).await;
    let uri = track(&db, ALICE, "t1", 1).await;
    let id = web_id(&db, &uri).await;
    detail(&db, "/tracks/12345", 404, "track not found").await;
    invalid(&db, "/tracks/abc", "track_id").await;
    invalid(&db, "/tracks/by-uri", "uri").await;
    detail(
        &db,
        "/tracks/by-uri?uri=at%3A%2F%2Fdid%3Aplc%3Ax%2Ffm.plyr.track%2Fy",
        404,
        "track not found",
    )
    .await;
    hide(&db, ALICE, Some("takendown")).await;
    detail(&db, &format!("/tracks/{id}"), 404, "track not found").await;
    detail(
        &db,
        &format!("/tracks/{id}/comments"),
        404,
        "track not found",
    )
    .await;
    detail(&db, &format!("/tracks/{id}/likes"), 404, "track not found").await;
    let feed = ok(&db, "/tracks/", &schema::tracks_page()).await;
    assert_eq!(feed["tracks"], json!([]));
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn top_ranks_by_likes_within_the_period(db: PgPool) {
    actor(&db, ALICE, Some("alice.test")).await;
    actor(&db, BOB, Some("bob.test")).await;
    let a = track(&db, ALICE, "a", 1).await;
    let b = track(&db, ALICE, "b", 2).await;
    let _unliked = track(&db, ALICE, "c", 3).await;
    set_counts(&db, &a, 1, 0).await;
    set_counts(&db, &b, 2, 0).await;
    let top = ok(
        &db,
        "/tracks/top",
        &schema::S::Arr(Box::new(schema::track())),
    )
    .await;
    let ids = track_ids(&top);
    assert_eq!(ids, [web_id(&db, &b).await, web_id(&db, &a).await]);
    let one = ok(
        &db,
        "/tracks/top?limit=1",
        &schema::S::Arr(Box::new(schema::track())),
    )
    .await;
    assert_eq!(one.as_array().map(Vec::len), Some(1));
    // Seeded likes are dated 2026-01-01, well over a day before the test runs... unless the
    // clock says otherwise; a fresh like counts for `day`.
    crate::support::fresh_like(&db, BOB, &a).await;
    let day = ok(
        &db,
        "/tracks/top?period=day",
        &schema::S::Arr(Box::new(schema::track())),
    )
    .await;
    let ids = track_ids(&day);
    assert_eq!(ids, [web_id(&db, &a).await]);
    // like_count stays the all-time count.
    assert_eq!(day[0]["like_count"], 1);
    invalid(&db, "/tracks/top?period=year", "period").await;
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn tags_are_empty_and_unknown(db: PgPool) {
    let tags = ok(
        &db,
        "/tracks/tags?limit=15",
        &schema::S::Arr(Box::new(schema::S::AnyObj)),
    )
    .await;
    assert_eq!(tags, json!([]));
    detail(
        &db,
        "/tracks/tags/%20Ambient%2FDrone%20",
        404,
        "tag 'ambient/drone' not found",
    )
    .await;
    invalid(&db, "/tracks/tags?limit=0", "limit").await;
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn comments_in_playback_order_and_likers_newest_first(db: PgPool) {
    actor(&db, ALICE, Some("alice.test")).await;
    actor(&db, BOB, Some("bob.test")).await;
    actor(&db, "did:plc:carol", None).await;
    profile(&db, BOB, "b", "https://img.test/bob.jpg", 0).await;
    let uri = track(&db, ALICE, "t1", 1).await;
    set_counts(&db, &uri, 2, 2).await;
    let id = web_id(&db, &uri).await;
    comment(&db, BOB, "c1", &uri, 9000, 5).await;
    comment(&db, "did:plc:carol", "c2", &uri, 1000, 6).await;
    let body = ok(&db, &format!("/tracks/{id}/comments"), &schema::comments()).await;
    assert_eq!(body["count"], 2);
    assert_eq!(body["comments_enabled"], true);
    assert_eq!(body["comments"][0]["timestamp_ms"], 1000);
    // No handle: upstream falls back to the DID.
    assert_eq!(body["comments"][0]["user_handle"], "did:plc:carol");
    assert_eq!(body["comments"][1]["user_handle"], "bob.test");
    assert_eq!(
        body["comments"][1]["user_avatar_url"],
        "https://img.test/bob.jpg"
    );
    assert_eq!(body["comments"][1]["text"], "comment c1");
    like(&db, BOB, "l1", &uri, 10).await;
    like(&db, "did:plc:carol", "l2", &uri, 20).await;
    let likes = ok(&db, &format!("/tracks/{id}/likes"), &schema::likers()).await;
    assert_eq!(likes["count"], 2);
    let dids: Vec<&str> = likes["users"]
        .as_array()
        .expect("users")
        .iter()
        .filter_map(|u| u["did"].as_str())
        .collect();
    assert_eq!(dids, ["did:plc:carol", BOB]);
    let reply = send(&db, "GET", &format!("/tracks/{id}/likes"), &[]).await;
    assert_eq!(
        reply.body["users"][1]["liked_at"],
        "2026-01-01T00:00:10.000000+00:00"
    );
}

use plyr_appview_xrpc::AppState;
use serde_json::json;
use sqlx::PgPool;

use crate::schema;
use crate::support::{self, AUDIO_CID, detail, send, send_with, track_with, web_id};
use crate::xrpc_support::{actor, hide};

const ALICE: &str = "did:plc:alice";

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn audio_redirects_to_the_pds_blob_then_allowed_urls(db: PgPool) {
    actor(&db, ALICE, Some("alice.test")).await;
    support::did_doc(&db, ALICE, "https://pds.alice.test/").await;
    let both =
        json!({"audioBlob": support::audio_blob(), "audioUrl": "https://audio.plyr.fm/a.mp3"});
    track_with(&db, ALICE, "blob", 1, both).await;
    track_with(
        &db,
        ALICE,
        "url",
        2,
        json!({"audioUrl": "https://audio.plyr.fm/b.mp3"}),
    )
    .await;
    track_with(
        &db,
        ALICE,
        "foreign",
        3,
        json!({"audioUrl": "https://evil.test/c.mp3"}),
    )
    .await;
    track_with(
        &db,
        ALICE,
        "plain",
        4,
        json!({"audioUrl": "http://audio.plyr.fm/d.mp3"}),
    )
    .await;

    let pds =
        format!("https://pds.alice.test/xrpc/com.atproto.sync.getBlob?did={ALICE}&cid={AUDIO_CID}");
    for method in ["GET", "HEAD"] {
        let reply = send(&db, method, "/audio/blob", &[]).await;
        assert_eq!(reply.status.as_u16(), 307, "{method}");
        assert_eq!(reply.header("location"), Some(pds.as_str()), "{method}");
    }
    let url = send(&db, "GET", "/audio/url", &[]).await;
    assert_eq!(url.status.as_u16(), 307);
    assert_eq!(url.header("location"), Some("https://audio.plyr.fm/b.mp3"));
    // Hosts off the allow-list, and plain HTTP, are never redirected to.
    detail(&db, "/audio/foreign", 404, "audio file not found").await;
    detail(&db, "/audio/plain", 404, "audio file not found").await;
    detail(&db, "/audio/nothing", 404, "audio file not found").await;
    // Hidden or taken-down accounts are never served.
    hide(&db, ALICE, Some("takendown")).await;
    detail(&db, "/audio/blob", 404, "audio file not found").await;
    detail(&db, "/audio/url", 404, "audio file not found").await;
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn without_a_known_pds_a_blob_only_track_has_no_source(db: PgPool) {
    actor(&db, ALICE, Some("alice.test")).await;
    let uri = track_with(
        &db,
        ALICE,
        "blob",
        1,
        json!({"audioBlob": support::audio_blob()}),
    )
    .await;
    detail(&db, "/audio/blob", 404, "audio file not found").await;
    let t = send(
        &db,
        "GET",
        &format!("/tracks/{}", web_id(&db, &uri).await),
        &[],
    )
    .await;
    schema::check(&t.body, &schema::track());
    assert_eq!(t.body["r2_url"], serde_json::Value::Null);
    assert_eq!(t.body["audio_storage"], "pds");
    assert_eq!(t.body["atproto_record_url"], serde_json::Value::Null);
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn explicit_tracks_point_r2_url_at_our_audio_route(db: PgPool) {
    actor(&db, ALICE, Some("alice.test")).await;
    let labels = json!({"audioUrl": "https://audio.plyr.fm/x.mp3", "labels": {"$type": "com.atproto.label.defs#selfLabels", "values": [{"val": "sexual"}]}});
    let uri = track_with(&db, ALICE, "x1", 1, labels).await;
    let t = send(
        &db,
        "GET",
        &format!("/tracks/{}", web_id(&db, &uri).await),
        &[],
    )
    .await;
    assert_eq!(t.body["r2_url"], "http://127.0.0.1:2584/audio/x1");
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn plays_count_once_per_listener_window(db: PgPool) {
    actor(&db, ALICE, Some("alice.test")).await;
    let uri = track_with(&db, ALICE, "t1", 1, json!({"duration": 600})).await;
    let path = format!("/tracks/{}/play", web_id(&db, &uri).await);
    let first = send(&db, "POST", &path, &[]).await;
    assert_eq!(first.status.as_u16(), 200, "{}", first.body);
    assert_eq!(first.body, json!({"play_count": 1}));
    // The first anonymous play issues the listener cookie.
    let cookie = first.header("set-cookie").expect("play cookie").to_owned();
    assert!(cookie.starts_with("plyr_play_id="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let id = cookie
        .trim_start_matches("plyr_play_id=")
        .split(';')
        .next()
        .expect("value")
        .to_owned();
    let jar = format!("plyr_play_id={id}");
    // The same cookie inside the window: not counted, no new cookie.
    let again = send(&db, "POST", &path, &[("cookie", &jar)]).await;
    assert_eq!(again.body, json!({"play_count": 1}));
    assert_eq!(again.header("set-cookie"), None);
    // Another listener counts.
    let other = send(&db, "POST", &path, &[("cookie", "plyr_play_id=abcdef")]).await;
    assert_eq!(other.body, json!({"play_count": 2}));
    // Once the listener's window has passed, they count again.
    sqlx::query("update web_play set played_at = played_at - interval '11 minutes'")
        .execute(&db)
        .await
        .expect("age plays");
    let later = send(&db, "POST", &path, &[("cookie", &jar)]).await;
    assert_eq!(later.body, json!({"play_count": 3}));
    // The Track shows the count.
    let t = send(&db, "GET", &path.replace("/play", ""), &[]).await;
    assert_eq!(t.body["play_count"], 3);
    // GET is not a play; a missing track is upstream's 404.
    assert_eq!(send(&db, "GET", &path, &[]).await.status.as_u16(), 405);
    let missing = send(&db, "POST", "/tracks/1/play", &[]).await;
    assert_eq!(missing.status.as_u16(), 404);
    assert_eq!(missing.body, json!({"detail": "track not found"}));
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn plays_are_rate_limited_per_address(db: PgPool) {
    actor(&db, ALICE, Some("alice.test")).await;
    let uri = track_with(&db, ALICE, "t1", 1, json!({})).await;
    let path = format!("/tracks/{}/play", web_id(&db, &uri).await);
    let state = AppState::new(db.clone()).with_web(support::config_with_play_limit(2));
    for cookie in ["plyr_play_id=a1", "plyr_play_id=a2"] {
        let ok = send_with(state.clone(), "POST", &path, &[("cookie", cookie)]).await;
        assert_eq!(ok.status.as_u16(), 200);
    }
    let limited = send_with(state, "POST", &path, &[("cookie", "plyr_play_id=a3")]).await;
    assert_eq!(limited.status.as_u16(), 429);
    assert!(
        limited.body["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("Rate limit exceeded")),
        "{}",
        limited.body
    );
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn gated_tracks_ask_for_sign_in_and_have_no_r2_url(db: PgPool) {
    actor(&db, ALICE, Some("alice.test")).await;
    support::did_doc(&db, ALICE, "https://pds.alice.test").await;
    let gate = json!({
        "supportGate": {"type": "any"},
        "audioBlob": support::audio_blob(),
        "audioUrl": "https://audio.plyr.fm/g.mp3",
    });
    let uri = track_with(&db, ALICE, "gated", 1, gate).await;
    for method in ["GET", "HEAD"] {
        let reply = send(&db, method, "/audio/gated", &[]).await;
        assert_eq!(reply.status.as_u16(), 401, "{method}");
        assert_eq!(reply.header("location"), None, "{method}");
    }
    detail(
        &db,
        "/audio/gated",
        401,
        "authentication required to stream this track",
    )
    .await;
    let t = send(
        &db,
        "GET",
        &format!("/tracks/{}", web_id(&db, &uri).await),
        &[],
    )
    .await;
    schema::check(&t.body, &schema::track());
    assert_eq!(t.body["gated"], true);
    assert_eq!(t.body["support_gate"], json!({"type": "any"}));
    assert_eq!(t.body["visibility"], "supporters");
    assert_eq!(t.body["r2_url"], serde_json::Value::Null);
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn audio_we_hold_is_played_from_our_blob_store(db: PgPool) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = plyr_blobstore::BlobStore::new(
        plyr_blobstore::FsBackend::open(dir.path())
            .await
            .expect("fs backend"),
    );
    let state =
        AppState::new(db.clone()).with_blobs(plyr_appview_xrpc::BlobService::new(store, 1 << 20));
    actor(&db, ALICE, Some("alice.test")).await;
    support::did_doc(&db, ALICE, "https://pds.alice.test").await;
    let uri = track_with(
        &db,
        ALICE,
        "held",
        1,
        json!({"audioBlob": support::audio_blob()}),
    )
    .await;
    let id = web_id(&db, &uri).await;
    // Not held yet: the PDS copy, under the rkey.
    let before = send_with(state.clone(), "GET", &format!("/tracks/{id}"), &[]).await;
    assert_eq!(before.body["file_id"], "held");
    sqlx::query(
        "insert into blob (cid, mime, size, origin) values ($1, 'audio/mpeg', 1000, 'mirror')",
    )
    .bind(AUDIO_CID)
    .execute(&db)
    .await
    .expect("insert blob");
    let ours = format!("http://127.0.0.1:2584/blob/{AUDIO_CID}");
    let after = send_with(state.clone(), "GET", &format!("/tracks/{id}"), &[]).await;
    schema::check(&after.body, &schema::track());
    assert_eq!(after.body["file_id"], AUDIO_CID);
    assert_eq!(after.body["r2_url"], ours.as_str());
    for path in [format!("/audio/{AUDIO_CID}"), "/audio/held".to_owned()] {
        let reply = send_with(state.clone(), "GET", &path, &[]).await;
        assert_eq!(reply.status.as_u16(), 307, "{path}");
        assert_eq!(reply.header("location"), Some(ours.as_str()), "{path}");
    }
    // Without a blob service the server cannot serve /blob: the PDS copy again.
    let pds = send(&db, "GET", "/audio/held", &[]).await;
    assert!(
        pds.header("location")
            .is_some_and(|l| l.starts_with("https://pds.alice.test/"))
    );
}

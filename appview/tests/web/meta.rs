use serde_json::{Value, json};
use sqlx::PgPool;

use crate::schema;
use crate::support::{detail, invalid, list_id, ok, send, track_with, web_id};
use crate::xrpc_support::{actor, list, profile};

const ALICE: &str = "did:plc:alice";

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn every_page_calls(db: PgPool) {
    let config = ok(&db, "/config", &schema::config()).await;
    assert_eq!(config["browser_observability"], false);
    assert_eq!(
        config["default_hidden_tags"],
        json!(["ai", "ai-slop", "suno"])
    );
    let images = ok(&db, "/moderation/sensitive-images", &schema::S::AnyObj).await;
    assert_eq!(images, json!({"image_ids": [], "urls": []}));
    detail(&db, "/auth/me", 401, "not authenticated - login required").await;
    assert_eq!(
        ok(&db, "/health", &schema::S::AnyObj).await,
        json!({"status": "ok"})
    );
    detail(&db, "/no/such/path", 404, "Not Found").await;
    let click = send(&db, "POST", "/tracks/1/ref/abc/click", &[]).await;
    assert_eq!(click.body, json!({"ok": true}));
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn stats_over_visible_tracks(db: PgPool) {
    assert_eq!(
        ok(&db, "/stats", &schema::stats()).await,
        json!({"total_plays": 0, "total_tracks": 0, "total_artists": 0, "total_duration_seconds": 0})
    );
    actor(&db, ALICE, Some("alice.test")).await;
    actor(&db, "did:plc:bob", Some("bob.test")).await;
    track_with(&db, ALICE, "t1", 1, json!({"duration": 61})).await;
    let t2 = track_with(&db, ALICE, "t2", 2, json!({"duration": "long"})).await;
    track_with(&db, "did:plc:bob", "t3", 3, json!({"duration": 9})).await;
    send(
        &db,
        "POST",
        &format!("/tracks/{}/play", web_id(&db, &t2).await),
        &[],
    )
    .await;
    assert_eq!(
        ok(&db, "/stats", &schema::stats()).await,
        json!({"total_plays": 1, "total_tracks": 3, "total_artists": 2, "total_duration_seconds": 70})
    );
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn oembed_for_tracks_playlists_and_albums(db: PgPool) {
    actor(&db, ALICE, Some("alice.test")).await;
    profile(&db, ALICE, "b", "https://img.test/alice.jpg", 0).await;
    let t = track_with(
        &db,
        ALICE,
        "t1",
        1,
        json!({"title": "Song", "imageUrl": "https://img.test/t.jpg", "album": "Blue"}),
    )
    .await;
    let p = list(&db, ALICE, "p1", "Mix", "playlist", &[], 2).await;
    let id = web_id(&db, &t).await;
    let track = ok(
        &db,
        &format!("/oembed?url=https%3A%2F%2Fplyr.fm%2Ftrack%2F{id}"),
        &schema::oembed(),
    )
    .await;
    assert_eq!(track["type"], "rich");
    assert_eq!(track["version"], "1.0");
    assert_eq!(track["title"], "Song");
    assert_eq!(track["width"], 400);
    assert_eq!(track["height"], 165);
    assert_eq!(track["author_url"], "https://plyr.fm/u/alice.test");
    assert_eq!(track["thumbnail_url"], "https://img.test/t.jpg");
    assert_eq!(track["thumbnail_width"], 300);
    let html = track["html"].as_str().expect("html");
    assert!(
        html.contains(&format!("src=\"https://plyr.fm/embed/track/{id}\"")),
        "{html}"
    );
    let wide = ok(
        &db,
        &format!("/oembed?url=https://plyr.fm/track/{id}&maxwidth=2000&maxheight=100"),
        &schema::oembed(),
    )
    .await;
    assert_eq!(
        (wide["width"].clone(), wide["height"].clone()),
        (json!(800), json!(100))
    );
    let playlist = ok(
        &db,
        &format!(
            "/oembed?url=https://plyr.fm/playlist/{}",
            list_id(&db, &p).await
        ),
        &schema::oembed(),
    )
    .await;
    assert_eq!(playlist["height"], 380);
    assert_eq!(playlist["thumbnail_url"], Value::Null);
    assert_eq!(playlist["thumbnail_height"], Value::Null);
    let album = ok(
        &db,
        "/oembed?url=https://plyr.fm/u/alice.test/album/blue",
        &schema::oembed(),
    )
    .await;
    assert_eq!(album["title"], "Blue");
    assert_eq!(album["thumbnail_url"], "https://img.test/t.jpg");
    detail(
        &db,
        "/oembed?url=https://plyr.fm/about",
        404,
        "unsupported URL format",
    )
    .await;
    detail(
        &db,
        "/oembed?url=https://plyr.fm/track/1",
        404,
        "track not found",
    )
    .await;
    let xml = send(
        &db,
        "GET",
        &format!("/oembed?url=https://plyr.fm/track/{id}&format=xml"),
        &[],
    )
    .await;
    assert_eq!(xml.status.as_u16(), 501);
    invalid(&db, "/oembed", "url").await;
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn credentialed_cors_for_allowed_origins_only(db: PgPool) {
    let origin = "http://localhost:5173";
    let reply = send(&db, "GET", "/config", &[("origin", origin)]).await;
    assert_eq!(reply.header("access-control-allow-origin"), Some(origin));
    assert_eq!(
        reply.header("access-control-allow-credentials"),
        Some("true")
    );
    assert!(reply.headers.get_all("vary").iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.to_lowercase().contains("origin"))
    }));
    let ip = send(
        &db,
        "GET",
        "/tracks/",
        &[("origin", "http://127.0.0.1:4173")],
    )
    .await;
    assert_eq!(
        ip.header("access-control-allow-origin"),
        Some("http://127.0.0.1:4173")
    );
    // Another origin gets no CORS grant (the browser then hides the answer).
    let other = send(&db, "GET", "/config", &[("origin", "https://evil.test")]).await;
    assert_eq!(other.header("access-control-allow-origin"), None);
    // A preflight of a play with a JSON body.
    let preflight = send(
        &db,
        "OPTIONS",
        "/tracks/1/play",
        &[
            ("origin", origin),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "content-type"),
        ],
    )
    .await;
    assert!(preflight.status.is_success(), "{}", preflight.status);
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some(origin)
    );
    assert_eq!(
        preflight.header("access-control-allow-methods"),
        Some("POST")
    );
    assert_eq!(
        preflight.header("access-control-allow-headers"),
        Some("content-type")
    );
    assert_eq!(
        preflight.header("access-control-allow-credentials"),
        Some("true")
    );
    // XRPC keeps answering any origin, without credentials.
    let xrpc = send(
        &db,
        "GET",
        "/xrpc/_health",
        &[("origin", "https://evil.test")],
    )
    .await;
    assert_eq!(xrpc.header("access-control-allow-origin"), Some("*"));
    assert_eq!(xrpc.header("access-control-allow-credentials"), None);
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn scans_are_answered_from_a_minute_cache(db: PgPool) {
    let state = plyr_appview_xrpc::AppState::new(db.clone());
    actor(&db, ALICE, Some("alice.test")).await;
    let first = crate::support::send_with(state.clone(), "GET", "/stats", &[]).await;
    assert_eq!(first.body["total_tracks"], 0);
    let t = track_with(&db, ALICE, "t1", 1, json!({})).await;
    crate::xrpc_support::set_counts(&db, &t, 1, 0).await;
    // The same server within the minute: the cached totals and ranking.
    let cached = crate::support::send_with(state.clone(), "GET", "/stats", &[]).await;
    assert_eq!(cached.body, first.body);
    let fresh = send(&db, "GET", "/stats", &[]).await;
    assert_eq!(fresh.body["total_tracks"], 1);
    // All time reads the index every time; a period is cached per (period, limit).
    let all = crate::support::send_with(state.clone(), "GET", "/tracks/top", &[]).await;
    assert_eq!(all.body.as_array().map(Vec::len), Some(1));
    let week =
        crate::support::send_with(state.clone(), "GET", "/tracks/top?period=week", &[]).await;
    assert_eq!(week.body, json!([]));
    crate::support::fresh_like(&db, ALICE, &t).await;
    let still = crate::support::send_with(state, "GET", "/tracks/top?period=week", &[]).await;
    assert_eq!(still.body, json!([]));
    let other = send(&db, "GET", "/tracks/top?period=week", &[]).await;
    assert_eq!(other.body.as_array().map(Vec::len), Some(1));
}

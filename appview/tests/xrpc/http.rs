//! HTTP conventions around every method (issue #4): caching headers and 304s, per-IP rate
//! limits with the spec's headers, `/metrics`, the API docs, and the view cache kept current
//! by the indexer's notifications.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response, StatusCode};
use plyr_appview_xrpc::{AppState, RateLimitConfig, ViewCache, follow_changes, router};
use serde_json::Value;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::support;

const ALICE: &str = "did:plc:alice2ggjmksahdcvelwfyzu";
const BOB: &str = "did:plc:bob2ggjmksahdcvelwfyzuaa";

async fn send(app: &Router, req: Request<Body>) -> (Response<Body>, Vec<u8>) {
    let resp = app.clone().oneshot(req).await.expect("infallible");
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 16 << 20).await.expect("body");
    (Response::from_parts(parts, Body::empty()), bytes.to_vec())
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).expect("request")
}

fn header<'a>(resp: &'a Response<Body>, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("json body")
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn anonymous_reads_are_public_tagged_and_revalidated(db: PgPool) {
    support::actor(&db, ALICE, Some("alice.test")).await;
    support::track(&db, ALICE, "song", 1).await;
    let app = router(AppState::new(db.clone()));
    let path = "/xrpc/fm.plyr.feed.getLatestTracks";
    let (first, body) = send(&app, get(path)).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(header(&first, "cache-control"), Some("public, max-age=5"));
    let etag = header(&first, "etag").expect("etag").to_owned();
    assert!(etag.starts_with('"') && etag.len() > 10, "{etag}");
    assert_eq!(json(&body)["tracks"].as_array().map(Vec::len), Some(1));

    let revalidate = Request::get(path)
        .header("if-none-match", &etag)
        .body(Body::empty())
        .expect("request");
    let (not_modified, empty) = send(&app, revalidate).await;
    assert_eq!(not_modified.status(), StatusCode::NOT_MODIFIED);
    assert!(empty.is_empty());
    assert_eq!(header(&not_modified, "etag"), Some(etag.as_str()));

    // A changed view is a different body, so the old tag no longer matches.
    support::track(&db, ALICE, "other", 2).await;
    let revalidate = Request::get(path)
        .header("if-none-match", &etag)
        .body(Body::empty())
        .expect("request");
    let (changed, body) = send(&app, revalidate).await;
    assert_eq!(changed.status(), StatusCode::OK);
    assert_ne!(header(&changed, "etag"), Some(etag.as_str()));
    assert_eq!(json(&body)["tracks"].as_array().map(Vec::len), Some(2));

    // Errors are not cached.
    let (missing, _) = send(
        &app,
        get("/xrpc/fm.plyr.feed.getTrack?uri=at%3A%2F%2Fdid%3Aplc%3Ax%2Ffm.plyr.track%2Fx"),
    )
    .await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(header(&missing, "etag"), None);
    assert_eq!(header(&missing, "cache-control"), None);
}

fn from(req: Request<Body>, addr: &str) -> Request<Body> {
    let mut req = req;
    let addr: SocketAddr = addr.parse().expect("addr");
    req.extensions_mut().insert(ConnectInfo(addr));
    req
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn clients_past_their_limit_get_429_with_the_spec_headers(db: PgPool) {
    let config = RateLimitConfig {
        limit: 2,
        window: Duration::from_secs(60),
        trust_forwarded: false,
    };
    let app = router(AppState::new(db).with_rate_limit(config));
    let path = "/xrpc/fm.plyr.feed.getLatestTracks";
    let (ok, _) = send(&app, from(get(path), "192.0.2.1:1000")).await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(header(&ok, "ratelimit-limit"), Some("2"));
    assert_eq!(header(&ok, "ratelimit-remaining"), Some("1"));
    assert_eq!(header(&ok, "ratelimit-policy"), Some("2;w=60"));
    assert_eq!(header(&ok, "ratelimit-reset"), Some("30"));
    let (ok, _) = send(&app, from(get(path), "192.0.2.1:1001")).await;
    assert_eq!(header(&ok, "ratelimit-remaining"), Some("0"));

    let (refused, body) = send(&app, from(get(path), "192.0.2.1:1002")).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(json(&body)["error"], "RateLimitExceeded");
    assert_eq!(header(&refused, "retry-after"), Some("30"));
    assert_eq!(header(&refused, "ratelimit-remaining"), Some("0"));
    // The web API shares the client's bucket and answers in its own dialect.
    let (web, body) = send(&app, from(get("/tracks/"), "192.0.2.1:1003")).await;
    assert_eq!(web.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(json(&body)["error"].is_string(), "{:?}", json(&body));
    assert_eq!(header(&web, "retry-after"), Some("30"));

    let (other, _) = send(&app, from(get(path), "192.0.2.2:1000")).await;
    assert_eq!(
        other.status(),
        StatusCode::OK,
        "another client has its own bucket"
    );
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn metrics_show_request_latency_and_indexer_progress(db: PgPool) {
    sqlx::query(
        "insert into consumer_cursor (source, cursor, updated_at) \
         values ('jetstream', (extract(epoch from now() - interval '90 seconds') * 1000000)::int8, now())",
    )
    .execute(&db)
    .await
    .expect("cursor");
    sqlx::query("insert into indexer_skip (reason, count) values ('invalid_record', 3)")
        .execute(&db)
        .await
        .expect("skips");
    sqlx::query("insert into record (uri, rev) values ('at://did:plc:a/fm.plyr.track/a', 'r')")
        .execute(&db)
        .await
        .expect("record");
    let app = router(AppState::new(db.clone()));
    let (ok, _) = send(&app, get("/xrpc/fm.plyr.feed.getLatestTracks")).await;
    assert_eq!(ok.status(), StatusCode::OK);
    let (resp, body) = send(&app, get("/metrics")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let text = String::from_utf8(body).expect("utf-8");
    assert!(
        text.contains(
            "plyr_http_request_duration_seconds_count{method=\"fm.plyr.feed.getLatestTracks\",status=\"2xx\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("plyr_indexer_events_skipped_total{reason=\"invalid_record\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("plyr_indexer_records{state=\"live\"} 1"),
        "{text}"
    );
    let lag: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("plyr_indexer_event_lag_seconds{source=\"jetstream\"} "))
        .expect("lag line")
        .parse()
        .expect("number");
    assert!((89.0..150.0).contains(&lag), "lag {lag}");

    // The next scrape reads skips afresh but shares the record count, a scan of the whole
    // ledger, for a minute.
    sqlx::query("update indexer_skip set count = 4 where reason = 'invalid_record'")
        .execute(&db)
        .await
        .expect("skips");
    sqlx::query("insert into record (uri, rev) values ('at://did:plc:a/fm.plyr.track/b', 'r')")
        .execute(&db)
        .await
        .expect("record");
    let (_, body) = send(&app, get("/metrics")).await;
    let text = String::from_utf8(body).expect("utf-8");
    assert!(
        text.contains("plyr_indexer_events_skipped_total{reason=\"invalid_record\"} 4"),
        "{text}"
    );
    assert!(
        text.contains("plyr_indexer_records{state=\"live\"} 1"),
        "{text}"
    );
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn docs_describe_every_served_method(db: PgPool) {
    let app = router(AppState::new(db));
    let (resp, body) = send(&app, get("/openapi.json")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let api = json(&body);
    assert_eq!(api["openapi"], "3.1.0");
    let paths = api["paths"].as_object().expect("paths");
    for nsid in [
        "fm.plyr.actor.getProfile",
        "fm.plyr.feed.getLatestTracks",
        "fm.plyr.feed.getTrack",
        "fm.plyr.feed.getTracks",
        "fm.plyr.feed.getArtistTracks",
        "fm.plyr.feed.getLikes",
        "fm.plyr.feed.getActorLikes",
        "fm.plyr.feed.getComments",
        "fm.plyr.feed.getList",
        "fm.plyr.feed.getActorLists",
    ] {
        assert!(
            paths.contains_key(&format!("/xrpc/{nsid}")),
            "{nsid} documented"
        );
    }
    // And every documented query is served (not 501).
    for (path, item) in paths {
        if item.get("get").is_none() {
            continue;
        }
        let (resp, body) = send(&app, get(path)).await;
        assert_ne!(
            resp.status(),
            StatusCode::NOT_IMPLEMENTED,
            "{path}: {:?}",
            String::from_utf8_lossy(&body)
        );
    }
    let (page, body) = send(&app, get("/docs")).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(
        header(&page, "content-type"),
        Some("text/html; charset=utf-8")
    );
    let html = String::from_utf8(body).expect("utf-8");
    assert!(html.contains("GET /xrpc/fm.plyr.feed.getArtistTracks"));
    assert!(html.contains("<code>actor</code>"));
}

/// The task keeping a router's view cache in step with the change notifications.
struct Follower {
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Follower {
    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.expect("follower stops");
    }
}

/// A router over a view cache that follows the indexer's notifications as `serve` wires it,
/// listening before it returns.
async fn followed(db: &PgPool) -> (Router, ViewCache, Follower) {
    let cache = ViewCache::new(1000);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(follow_changes(db.clone(), cache.clone(), shutdown.clone()));
    cache.ready().await;
    let app = router(AppState::new(db.clone()).with_cache(cache.clone()));
    (app, cache, Follower { shutdown, task })
}

/// Sends `payload` on the channel the indexer's batches notify, as they do.
async fn send_changes<'e>(payload: &Value, db: impl sqlx::PgExecutor<'e>) {
    sqlx::query("select pg_notify('plyr_view_changed', $1)")
        .bind(payload.to_string())
        .execute(db)
        .await
        .expect("notify");
}

/// Sets a track's like count and notifies as the indexer's batch does (same transaction).
async fn like_and_notify(db: &PgPool, uri: &str, likes: i32, notify: bool) {
    let mut tx = db.begin().await.expect("begin");
    sqlx::query("update track set like_count = $2 where uri = $1")
        .bind(uri)
        .bind(likes)
        .execute(&mut *tx)
        .await
        .expect("count");
    if notify {
        let payload = serde_json::json!({"profiles": [BOB], "authors": [], "tracks": [uri]});
        send_changes(&payload, &mut *tx).await;
    }
    tx.commit().await.expect("commit");
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn indexed_likes_are_counted_on_the_next_request(db: PgPool) {
    support::actor(&db, ALICE, Some("alice.test")).await;
    support::actor(&db, BOB, Some("bob.test")).await;
    let uri = support::track(&db, ALICE, "song", 1).await;
    let (app, cache, follower) = followed(&db).await;
    let path = format!("/xrpc/fm.plyr.feed.getTrack?uri={}", support::enc(&uri));
    let likes = |body: &[u8]| json(body)["track"]["likeCount"].as_i64();

    let (_, body) = send(&app, get(&path)).await;
    assert_eq!(likes(&body), Some(0));
    // Written without a notification, the change is not seen: the view really is cached.
    like_and_notify(&db, &uri, 5, false).await;
    let (_, body) = send(&app, get(&path)).await;
    assert_eq!(likes(&body), Some(0), "served from the cache");
    // With one, it is seen on the next request.
    like_and_notify(&db, &uri, 6, true).await;
    cache.applied(1).await;
    let (_, body) = send(&app, get(&path)).await;
    assert_eq!(likes(&body), Some(6));
    // getTracks shares the entries.
    let (_, body) = send(
        &app,
        get(&format!(
            "/xrpc/fm.plyr.feed.getTracks?uris={}",
            support::enc(&uri)
        )),
    )
    .await;
    assert_eq!(json(&body)["tracks"][0]["likeCount"], 6);

    // `changed` (a batch too big to list) drops everything.
    like_and_notify(&db, &uri, 7, false).await;
    sqlx::query("select pg_notify('plyr_view_changed', 'changed')")
        .execute(&db)
        .await
        .expect("notify");
    cache.applied(2).await;
    let (_, body) = send(&app, get(&path)).await;
    assert_eq!(likes(&body), Some(7));

    // Profiles too: an author change (a takedown) is seen at once.
    let profile = "/xrpc/fm.plyr.actor.getProfile?actor=alice.test";
    let (ok, _) = send(&app, get(profile)).await;
    assert_eq!(ok.status(), StatusCode::OK);
    support::hide(&db, ALICE, Some("takendown")).await;
    let payload = serde_json::json!({"profiles": [ALICE], "authors": [ALICE], "tracks": []});
    send_changes(&payload, &db).await;
    cache.applied(3).await;
    let (gone, _) = send(&app, get(&path)).await;
    assert_eq!(
        gone.status(),
        StatusCode::NOT_FOUND,
        "the author's tracks are dropped"
    );

    follower.stop().await;
}

/// The URIs a page at `path` lists, in order: a track feed's tracks or a search's results.
async fn page_uris(app: &Router, path: &str) -> Vec<String> {
    let (resp, body) = send(app, get(path)).await;
    assert_eq!(resp.status(), StatusCode::OK, "{path}");
    let body = json(&body);
    let items = body["tracks"].as_array().or(body["results"].as_array());
    items
        .expect("tracks or results")
        .iter()
        .map(|t| t["uri"].as_str().expect("uri").to_owned())
        .collect()
}

/// Sends a change set as the indexer's batch does.
async fn notify_changes(db: &PgPool, authors: &[&str], tracks: &[&str]) {
    let payload = serde_json::json!({"profiles": [], "authors": authors, "tracks": tracks});
    send_changes(&payload, db).await;
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn first_pages_of_track_feeds_are_cached_until_a_change_names_a_track_they_could_list(
    db: PgPool,
) {
    support::actor(&db, ALICE, Some("alice.test")).await;
    support::actor(&db, BOB, Some("bob.test")).await;
    let a1 = support::track(&db, ALICE, "a1", 1).await;
    let b1 = support::track(&db, BOB, "b1", 2).await;
    let (app, cache, follower) = followed(&db).await;
    let latest = "/xrpc/fm.plyr.feed.getLatestTracks?limit=10";
    let alice = format!(
        "/xrpc/fm.plyr.feed.getArtistTracks?actor={}&limit=10",
        support::enc(ALICE)
    );
    let page = |path: String| {
        let app = app.clone();
        async move { page_uris(&app, &path).await }
    };

    assert_eq!(page(latest.into()).await, [b1.clone(), a1.clone()]);
    assert_eq!(page(alice.clone()).await, std::slice::from_ref(&a1));
    // Written without a notification, a new track is not listed: the pages really are cached.
    let a2 = support::track(&db, ALICE, "a2", 3).await;
    assert_eq!(page(latest.into()).await, [b1.clone(), a1.clone()]);
    assert_eq!(page(alice.clone()).await, std::slice::from_ref(&a1));
    // Other limits are other pages (and read the new track).
    assert_eq!(
        page("/xrpc/fm.plyr.feed.getLatestTracks?limit=2".into()).await,
        [a2.clone(), b1.clone()]
    );

    // A change naming Bob's track drops every latest page, but not Alice's artist page.
    notify_changes(&db, &[], &[&b1]).await;
    cache.applied(1).await;
    assert_eq!(
        page(latest.into()).await,
        [a2.clone(), b1.clone(), a1.clone()]
    );
    assert_eq!(
        page(alice.clone()).await,
        std::slice::from_ref(&a1),
        "still cached"
    );
    // One naming Alice's track drops hers.
    notify_changes(&db, &[], &[&a2]).await;
    cache.applied(2).await;
    assert_eq!(page(alice.clone()).await, [a2.clone(), a1.clone()]);

    // Counts on a cached page come from the track views, dropped one by one: a like on a1
    // shows without the page being read again.
    like_and_notify(&db, &a1, 4, true).await;
    cache.applied(3).await;
    let (_, body) = send(&app, get(latest)).await;
    assert_eq!(json(&body)["tracks"][2]["likeCount"], 4);

    // A deleted track leaves the page once its deletion is notified.
    sqlx::query("delete from track where uri = $1")
        .bind(&a2)
        .execute(&db)
        .await
        .expect("delete");
    notify_changes(&db, &[], &[&a2]).await;
    cache.applied(4).await;
    assert_eq!(page(latest.into()).await, [b1.clone(), a1.clone()]);
    assert_eq!(page(alice.clone()).await, std::slice::from_ref(&a1));

    // An author change (a takedown) drops the author's pages and tracks.
    support::hide(&db, ALICE, Some("takendown")).await;
    notify_changes(&db, &[ALICE], &[]).await;
    cache.applied(5).await;
    assert_eq!(page(latest.into()).await, std::slice::from_ref(&b1));

    // Cursor pages are read from Postgres every time.
    let b2 = support::track(&db, BOB, "b2", 0).await;
    let (_, body) = send(&app, get("/xrpc/fm.plyr.feed.getLatestTracks?limit=1")).await;
    let cursor = json(&body)["cursor"].as_str().expect("cursor").to_owned();
    let next = format!(
        "/xrpc/fm.plyr.feed.getLatestTracks?limit=1&cursor={}",
        support::enc(&cursor)
    );
    assert_eq!(page(next.clone()).await, [b2]);
    // Written without a notification, between b1 and b2: the next cursor page lists it.
    let b3 = support::track(&db, BOB, "b3", 1).await;
    assert_eq!(page(next).await, [b3]);

    follower.stop().await;
}

/// Sends a change set that wrote or deleted `listed` tracks, the written ones sorting no later
/// than `newest` (as the indexer's batch does; `None`: no bound, as from a delete).
async fn notify_listed(db: &PgPool, listed: &[&str], newest: Option<i64>) {
    let mut payload = serde_json::json!({"profiles": [], "authors": [], "tracks": listed,
                                         "listed": listed});
    if let Some(secs) = newest {
        payload["newest"] = serde_json::json!(support::at(secs).to_rfc3339());
    }
    send_changes(&payload, db).await;
}

/// Catching up on a backlog writes old tracks by the thousand: a first page of the latest feed
/// is kept while every track written sorts below its last row and none it lists changed.
#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn latest_pages_are_kept_through_writes_of_tracks_that_sort_below_them(db: PgPool) {
    support::actor(&db, ALICE, Some("alice.test")).await;
    let a1 = support::track(&db, ALICE, "a1", 10).await;
    let a2 = support::track(&db, ALICE, "a2", 20).await;
    let a3 = support::track(&db, ALICE, "a3", 30).await;
    let (app, cache, follower) = followed(&db).await;
    let page = || {
        let app = app.clone();
        async move { page_uris(&app, "/xrpc/fm.plyr.feed.getLatestTracks?limit=2").await }
    };
    // Two rows and the one after them (for the cursor): a1 is the page's last row read.
    assert_eq!(page().await, [a3.clone(), a2.clone()]);

    // A new track, written without a notification: it shows only once the page is read again.
    let new = support::track(&db, ALICE, "new", 40).await;
    // An old track's write keeps the page: it sorts below a1.
    let old = support::track(&db, ALICE, "old", 5).await;
    notify_listed(&db, &[&old], Some(5)).await;
    cache.applied(1).await;
    assert_eq!(page().await, [a3.clone(), a2.clone()], "kept");
    // A write that may sort at a1's instant drops it (ties go by URI).
    notify_listed(&db, &[&old], Some(10)).await;
    cache.applied(2).await;
    assert_eq!(page().await, [new.clone(), a3.clone()]);

    // A rewrite of a track the page lists drops it, wherever the track now sorts.
    sqlx::query("update track set sort_at = $2 where uri = $1")
        .bind(&a3)
        .bind(support::at(1))
        .execute(&db)
        .await
        .expect("update");
    notify_listed(&db, &[&a3], Some(1)).await;
    cache.applied(3).await;
    assert_eq!(page().await, [new.clone(), a2.clone()]);

    // A delete carries no bound: every latest page goes.
    sqlx::query("delete from track where uri = $1")
        .bind(&new)
        .execute(&db)
        .await
        .expect("delete");
    notify_listed(&db, &[&new], None).await;
    cache.applied(4).await;
    assert_eq!(page().await, [a2.clone(), a1.clone()]);

    follower.stop().await;
}

/// Backfilling an artist's catalogue, or editing an old track, writes tracks that cannot enter
/// the artist's first page: it is kept, as a latest page is.
#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn artist_pages_are_kept_through_writes_of_their_tracks_that_sort_below_them(db: PgPool) {
    support::actor(&db, ALICE, Some("alice.test")).await;
    support::actor(&db, BOB, Some("bob.test")).await;
    let a1 = support::track(&db, ALICE, "a1", 10).await;
    let a2 = support::track(&db, ALICE, "a2", 20).await;
    let a3 = support::track(&db, ALICE, "a3", 30).await;
    let (app, cache, follower) = followed(&db).await;
    let path = |limit: u32| {
        format!(
            "/xrpc/fm.plyr.feed.getArtistTracks?actor={}&limit={limit}",
            support::enc(ALICE)
        )
    };
    let page = |limit| {
        let app = app.clone();
        let path = path(limit);
        async move { page_uris(&app, &path).await }
    };
    // Two rows and the one after them: a1 is the last row read. The whole catalogue is a page
    // the feed ended on.
    assert_eq!(page(2).await, [a3.clone(), a2.clone()]);
    assert_eq!(page(10).await, [a3.clone(), a2.clone(), a1.clone()]);

    // A new track, written without a notification, shows only once the pages are read again.
    let new = support::track(&db, ALICE, "new", 40).await;
    // An old one's write keeps the full page; the short one goes (any track enters it).
    let old = support::track(&db, ALICE, "old", 5).await;
    notify_listed(&db, &[&old], Some(5)).await;
    cache.applied(1).await;
    assert_eq!(page(2).await, [a3.clone(), a2.clone()], "kept");
    assert_eq!(
        page(10).await,
        [new.clone(), a3.clone(), a2.clone(), a1.clone(), old.clone()]
    );
    // Another artist's writes leave Alice's pages alone, bound or none.
    let b1 = support::track(&db, BOB, "b1", 50).await;
    notify_listed(&db, &[&b1], Some(50)).await;
    notify_listed(&db, &[&b1], None).await;
    cache.applied(3).await;
    assert_eq!(page(2).await, [a3.clone(), a2.clone()], "still kept");
    // A write that may sort at a1's instant drops them (ties go by URI).
    notify_listed(&db, &[&old], Some(10)).await;
    cache.applied(4).await;
    assert_eq!(page(2).await, [new.clone(), a3.clone()]);

    // A rewrite of a track the page lists drops it, wherever the track now sorts.
    sqlx::query("update track set sort_at = $2 where uri = $1")
        .bind(&a3)
        .bind(support::at(1))
        .execute(&db)
        .await
        .expect("update");
    notify_listed(&db, &[&a3], Some(1)).await;
    cache.applied(5).await;
    assert_eq!(page(2).await, [new.clone(), a2.clone()]);

    // A delete carries no bound: the artist's pages go.
    sqlx::query("delete from track where uri = $1")
        .bind(&new)
        .execute(&db)
        .await
        .expect("delete");
    notify_listed(&db, &[&new], None).await;
    cache.applied(6).await;
    assert_eq!(page(2).await, [a2.clone(), a1.clone()]);

    // An author change drops them whatever the bound (a takedown hides the whole catalogue).
    support::hide(&db, ALICE, Some("takendown")).await;
    let payload = serde_json::json!({"profiles": [ALICE], "authors": [ALICE], "tracks": [&old],
                                     "listed": [&old], "newest": support::at(5).to_rfc3339()});
    send_changes(&payload, &db).await;
    cache.applied(7).await;
    let (resp, _) = send(&app, get(&path(2))).await;
    assert_ne!(resp.status(), StatusCode::OK, "hidden");

    follower.stop().await;
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn actor_lookups_are_cached_until_a_change_names_the_actor(db: PgPool) {
    support::actor(&db, ALICE, Some("alice.test")).await;
    let (app, cache, follower) = followed(&db).await;
    let status = |path: String| {
        let app = app.clone();
        async move { send(&app, get(&path)).await.0.status() }
    };
    let profile = |actor: &str| {
        format!(
            "/xrpc/fm.plyr.actor.getProfile?actor={}",
            support::enc(actor)
        )
    };

    // An unknown DID stays unknown until a change names it (its first record does).
    assert_eq!(status(profile(BOB)).await, StatusCode::BAD_REQUEST);
    support::actor(&db, BOB, Some("bob.test")).await;
    assert_eq!(
        status(profile(BOB)).await,
        StatusCode::BAD_REQUEST,
        "cached"
    );
    let payload = serde_json::json!({"profiles": [BOB], "authors": [], "tracks": []});
    send_changes(&payload, &db).await;
    cache.applied(1).await;
    assert_eq!(status(profile(BOB)).await, StatusCode::OK);

    // A handle moves: the old one answers until the author change is notified.
    assert_eq!(status(profile("alice.test")).await, StatusCode::OK);
    sqlx::query("update actor set handle = 'alice2.test' where did = $1")
        .bind(ALICE)
        .execute(&db)
        .await
        .expect("new handle");
    assert_eq!(
        status(profile("alice.test")).await,
        StatusCode::OK,
        "cached"
    );
    notify_changes(&db, &[ALICE], &[]).await;
    cache.applied(2).await;
    assert_eq!(status(profile("alice.test")).await, StatusCode::BAD_REQUEST);
    assert_eq!(status(profile("alice2.test")).await, StatusCode::OK);

    follower.stop().await;
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn first_pages_of_likes_are_cached_until_a_change_names_their_track(db: PgPool) {
    support::actor(&db, ALICE, Some("alice.test")).await;
    support::actor(&db, BOB, Some("bob.test")).await;
    let song = support::track(&db, ALICE, "song", 1).await;
    let other = support::track(&db, ALICE, "other", 2).await;
    support::like(&db, BOB, "l1", &song, 3).await;
    let (app, cache, follower) = followed(&db).await;
    let path = format!(
        "/xrpc/fm.plyr.feed.getLikes?uri={}&limit=10",
        support::enc(&song)
    );
    let likers = |body: &[u8]| -> Vec<String> {
        json(body)["likes"]
            .as_array()
            .expect("likes")
            .iter()
            .map(|l| l["actor"]["handle"].as_str().unwrap_or_default().to_owned())
            .collect()
    };

    let (_, body) = send(&app, get(&path)).await;
    assert_eq!(likers(&body), ["bob.test"]);
    // Written without a notification, a new like is not listed: the page really is cached.
    support::like(&db, ALICE, "l2", &song, 4).await;
    let (_, body) = send(&app, get(&path)).await;
    assert_eq!(likers(&body), ["bob.test"], "cached");
    // A change naming another track leaves it; one naming this track drops it.
    notify_changes(&db, &[], &[&other]).await;
    cache.applied(1).await;
    let (_, body) = send(&app, get(&path)).await;
    assert_eq!(likers(&body), ["bob.test"], "still cached");
    notify_changes(&db, &[], &[&song]).await;
    cache.applied(2).await;
    let (_, body) = send(&app, get(&path)).await;
    assert_eq!(likers(&body), ["alice.test", "bob.test"]);
    // A liker's new handle shows once their author change is notified.
    sqlx::query("update actor set handle = 'robert.test' where did = $1")
        .bind(BOB)
        .execute(&db)
        .await
        .expect("new handle");
    notify_changes(&db, &[BOB], &[]).await;
    cache.applied(3).await;
    let (_, body) = send(&app, get(&path)).await;
    assert_eq!(likers(&body), ["alice.test", "robert.test"]);

    follower.stop().await;
}

/// The indexer's payloads say which named tracks were written or deleted (`listed`): a batch
/// that only liked tracks drops their views but keeps the feed pages that list them.
#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn feed_pages_outlive_likes_and_drop_for_written_tracks(db: PgPool) {
    support::actor(&db, ALICE, Some("alice.test")).await;
    let a1 = support::track(&db, ALICE, "a1", 1).await;
    let (app, cache, follower) = followed(&db).await;
    let alice = format!(
        "/xrpc/fm.plyr.feed.getArtistTracks?actor={}&limit=10",
        support::enc(ALICE)
    );
    let notify = |tracks: Vec<String>, listed: Vec<String>| {
        let db = db.clone();
        async move {
            let payload = serde_json::json!({
                "profiles": [], "authors": [], "tracks": tracks, "listed": listed,
            });
            send_changes(&payload, &db).await;
        }
    };
    let page = |path: String| {
        let app = app.clone();
        async move {
            let (resp, body) = send(&app, get(&path)).await;
            assert_eq!(resp.status(), StatusCode::OK, "{path}");
            let tracks = json(&body)["tracks"].as_array().expect("tracks").clone();
            tracks
                .iter()
                .map(|t| {
                    (
                        t["uri"].as_str().expect("uri").to_owned(),
                        t["likeCount"].clone(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    let latest = || page("/xrpc/fm.plyr.feed.getLatestTracks?limit=10".into());

    assert_eq!(latest().await, [(a1.clone(), 0.into())]);
    assert_eq!(page(alice.clone()).await, [(a1.clone(), 0.into())]);
    // A new track written without a notification, then a like of a1 notified: the like shows
    // (a1's view was dropped), the pages stay as they were (nothing was listed).
    let a2 = support::track(&db, ALICE, "a2", 2).await;
    sqlx::query("update track set like_count = 1 where uri = $1")
        .bind(&a1)
        .execute(&db)
        .await
        .expect("count");
    notify(vec![a1.clone()], vec![]).await;
    cache.applied(1).await;
    assert_eq!(latest().await, [(a1.clone(), 1.into())]);
    assert_eq!(page(alice.clone()).await, [(a1.clone(), 1.into())]);
    // Once a2's write is notified as listed, both pages list it.
    notify(vec![a2.clone()], vec![a2.clone()]).await;
    cache.applied(2).await;
    let both = [(a2.clone(), 0.into()), (a1.clone(), 1.into())];
    assert_eq!(latest().await, both);
    assert_eq!(page(alice.clone()).await, both);

    follower.stop().await;
}

/// A search's hits are kept until a name it reads may have changed: a like leaves them, a
/// written track, a list or an author drops them, and a takedown shows at once (hits are
/// hydrated fresh).
#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn search_hits_are_kept_until_a_name_may_have_changed(db: PgPool) {
    support::actor(&db, ALICE, Some("alice.test")).await;
    let one = support::track(&db, ALICE, "one", 10).await;
    let (app, cache, follower) = followed(&db).await;
    let tracks = |q: &str| {
        let app = app.clone();
        let path = format!("/xrpc/fm.plyr.feed.searchTracks?q={q}&limit=10");
        async move { page_uris(&app, &path).await }
    };
    let albums = || {
        let app = app.clone();
        async move { page_uris(&app, "/xrpc/fm.plyr.unspecced.search?q=song&types=albums").await }
    };
    assert_eq!(tracks("song").await, std::slice::from_ref(&one));
    assert_eq!(albums().await, Vec::<String>::new());

    // Written without a notification: the kept hits stand; another query reads afresh.
    let two = support::track(&db, ALICE, "two", 20).await;
    assert_eq!(tracks("song").await, std::slice::from_ref(&one), "kept");
    assert_eq!(tracks("two").await, std::slice::from_ref(&two));

    // A like changes counts, not names.
    let like = serde_json::json!({"profiles": [ALICE, BOB], "authors": [], "tracks": [&one],
                                  "listed": [], "lists": []});
    send_changes(&like, &db).await;
    cache.applied(1).await;
    assert_eq!(
        tracks("song").await,
        std::slice::from_ref(&one),
        "kept through a like"
    );

    // A track written drops them.
    notify_listed(&db, &[&two], Some(20)).await;
    cache.applied(2).await;
    assert_eq!(tracks("song").await, [one.clone(), two.clone()]);

    // So does a list written.
    assert_eq!(albums().await, Vec::<String>::new());
    let book = support::list(&db, ALICE, "book", "song book", "album", &[&one], 30).await;
    assert_eq!(albums().await, Vec::<String>::new(), "kept");
    let list = serde_json::json!({"profiles": [ALICE], "authors": [], "tracks": [],
                                  "listed": [], "lists": [&book]});
    send_changes(&list, &db).await;
    cache.applied(3).await;
    assert_eq!(albums().await, std::slice::from_ref(&book));

    // A takedown hides a kept hit at once.
    sqlx::query("insert into takedown (subject, kind) values ($1, 'record')")
        .bind(&one)
        .execute(&db)
        .await
        .expect("takedown");
    assert_eq!(
        tracks("song").await,
        std::slice::from_ref(&two),
        "hydrated fresh"
    );

    // An older indexer's payload says nothing of lists: any record written may be one.
    sqlx::query("delete from list where uri = $1")
        .bind(&book)
        .execute(&db)
        .await
        .expect("delete list");
    assert_eq!(albums().await, Vec::<String>::new(), "hydrated fresh");
    let older = serde_json::json!({"profiles": [ALICE], "authors": [], "tracks": []});
    let three = support::track(&db, ALICE, "three", 40).await;
    assert_eq!(tracks("song").await, std::slice::from_ref(&two), "kept");
    send_changes(&older, &db).await;
    cache.applied(4).await;
    assert_eq!(tracks("song").await, [three, two]);

    follower.stop().await;
}

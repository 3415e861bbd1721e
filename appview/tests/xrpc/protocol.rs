//! What every method shares: limit bounds, cursor strictness, error envelopes (400, 501, 500
//! without internals, 503), unknown params, CORS, and serving on a socket with shutdown.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use plyr_appview_xrpc::{AppState, router, serve};
use serde_json::json;
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::support::{self, enc, err, ok, request};

const ALICE: &str = "did:plc:alice";

/// Every paginated method with params that make it succeed.
async fn paginated(db: &PgPool) -> Vec<(&'static str, String)> {
    support::actor(db, ALICE, Some("alice.test")).await;
    let song = support::track(db, ALICE, "song", 1).await;
    vec![
        ("fm.plyr.feed.getLatestTracks", "x=1".to_owned()),
        (
            "fm.plyr.feed.getArtistTracks",
            "actor=alice.test".to_owned(),
        ),
        ("fm.plyr.feed.getLikes", format!("uri={}", enc(&song))),
        ("fm.plyr.feed.getActorLikes", "actor=alice.test".to_owned()),
        ("fm.plyr.feed.getComments", format!("uri={}", enc(&song))),
        ("fm.plyr.feed.getActorLists", "actor=alice.test".to_owned()),
    ]
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn limit_outside_1_to_100_is_refused_not_clamped(db: PgPool) {
    for (nsid, query) in paginated(&db).await {
        for limit in ["0", "101", "-1", "abc", "1.5", "1e2", "4294967297", "%2B5"] {
            let q = format!("{query}&limit={limit}");
            err(&db, nsid, &q, 400, "InvalidRequest").await;
        }
        // A repeated single-valued param is ambiguous.
        err(
            &db,
            nsid,
            &format!("{query}&limit=1&limit=2"),
            400,
            "InvalidRequest",
        )
        .await;
        for limit in ["1", "100"] {
            ok(&db, nsid, &format!("{query}&limit={limit}")).await;
        }
        // No value is no param (serde_html_form's reading): the default applies.
        for q in [query.clone(), format!("{query}&limit=")] {
            ok(&db, nsid, &q).await;
        }
    }
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn forged_cursors_are_refused(db: PgPool) {
    let b64 = |s: &str| URL_SAFE_NO_PAD.encode(s);
    let forged = [
        "!!!".to_owned(),
        "AAAA".to_owned(),
        b64("12345"),
        b64("12345::not-a-uri"),
        b64("12345::at://alice.test/fm.plyr.track/song"),
        b64("0x10::at://did:plc:alice/fm.plyr.track/song"),
        format!("{}=", b64("1::at://did:plc:alice/fm.plyr.track/song")),
        // A real cursor cut short: the URI loses its record key.
        b64("1767225601000000::at://did:plc:alice/fm.plyr.track/song")[..60].to_owned(),
    ];
    for (nsid, query) in paginated(&db).await {
        for cursor in &forged {
            let q = format!("{query}&cursor={}", enc(cursor));
            err(&db, nsid, &q, 400, "InvalidRequest").await;
        }
        // An empty cursor is the first page.
        ok(&db, nsid, &format!("{query}&cursor=")).await;
    }
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn unknown_methods_are_not_implemented(db: PgPool) {
    let paths = [
        ("GET", "/xrpc/fm.plyr.feed.getNothing"),
        ("GET", "/xrpc/app.bsky.feed.getTimeline?limit=5"),
        ("POST", "/xrpc/com.atproto.repo.createRecord"),
        ("GET", "/xrpc/fm.plyr.feed.getTrack/extra"),
    ];
    for (method, path) in paths {
        let (status, body) = request(&db, method, path).await;
        assert_eq!(status, StatusCode::NOT_IMPLEMENTED, "{path}");
        assert_eq!(body, json!({"error": "MethodNotImplemented"}), "{path}");
    }
    // A known query with the wrong verb is a bad request, not an unknown method.
    let (status, body) = request(&db, "POST", "/xrpc/fm.plyr.feed.getLatestTracks").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "InvalidRequest");
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn unknown_params_are_ignored(db: PgPool) {
    support::actor(&db, ALICE, Some("alice.test")).await;
    let song = support::track(&db, ALICE, "song", 1).await;
    let body = ok(
        &db,
        "fm.plyr.feed.getLatestTracks",
        "viewer=x&limit=5&foo=%FF&bar",
    )
    .await;
    assert_eq!(body["tracks"][0]["uri"], song.as_str());
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn internal_errors_name_the_error_only(db: PgPool) {
    support::actor(&db, ALICE, Some("alice.test")).await;
    sqlx::query("drop table track cascade")
        .execute(&db)
        .await
        .expect("drop track");
    sqlx::query("drop table profile cascade")
        .execute(&db)
        .await
        .expect("drop profile");
    let paths = [
        "/xrpc/fm.plyr.feed.getLatestTracks",
        "/xrpc/fm.plyr.feed.getTrack?uri=at%3A%2F%2Fdid%3Aplc%3Aalice%2Ffm.plyr.track%2Fx",
        "/xrpc/fm.plyr.actor.getProfile?actor=alice.test",
    ];
    for path in paths {
        let (status, body) = request(&db, "GET", path).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
        assert_eq!(body, json!({"error": "InternalServerError"}), "{path}");
    }
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn health_reports_version_then_unavailable(db: PgPool) {
    let (status, body) = request(&db, "GET", "/xrpc/_health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"version": env!("CARGO_PKG_VERSION")}));

    db.close().await;
    let (status, body) = request(&db, "GET", "/xrpc/_health").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, json!({"error": "ServiceUnavailable"}));
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn cors_allows_any_origin_without_credentials(db: PgPool) {
    let app = router(AppState::new(db.clone()));
    let requests = [
        Request::get("/xrpc/_health")
            .header("origin", "https://plyr.example")
            .body(Body::empty()),
        Request::options("/xrpc/fm.plyr.feed.getLatestTracks")
            .header("origin", "https://plyr.example")
            .header("access-control-request-method", "GET")
            .body(Body::empty()),
    ];
    for req in requests {
        let req = req.expect("valid request");
        let resp = app.clone().oneshot(req).await.expect("infallible");
        assert_eq!(resp.status(), StatusCode::OK);
        let headers = resp.headers();
        assert_eq!(
            headers
                .get("access-control-allow-origin")
                .map(|v| v.as_bytes()),
            Some(&b"*"[..])
        );
        assert_eq!(headers.get("access-control-allow-credentials"), None);
    }
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn serve_answers_on_a_socket_and_stops_on_cancel(db: PgPool) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve(listener, AppState::new(db), shutdown.clone()));

    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"GET /xrpc/_health HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.ends_with(&format!(
        "{{\"version\":\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    )));

    shutdown.cancel();
    let result = server.await.expect("server task");
    assert!(matches!(result, Ok(())), "{result:?}");
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn lexicon_check_is_not_vacuous(db: PgPool) {
    support::actor(&db, ALICE, None).await;
    support::track(&db, ALICE, "song", 1).await;
    let body = ok(&db, "fm.plyr.feed.getLatestTracks", "").await;
    let catalog = plyr_lexicons::Catalog::plyr();
    // (JSON pointer, bad value, the validator's path for it)
    let tampered = [
        (
            "/tracks/0/author/did",
            json!("not-a-did"),
            "tracks[0].author.did",
        ),
        ("/tracks/0/likeCount", json!("3"), "tracks[0].likeCount"),
        (
            "/tracks/0/indexedAt",
            json!("yesterday"),
            "tracks[0].indexedAt",
        ),
        ("/tracks/0/uri", json!("https://plyr.fm"), "tracks[0].uri"),
    ];
    for (pointer, value, path) in tampered {
        let mut bad = body.clone();
        *bad.pointer_mut(pointer).expect("field exists") = value;
        let result = catalog.validate_output("fm.plyr.feed.getLatestTracks", &bad);
        let Err(e) = result else {
            panic!("{pointer} tampered yet valid");
        };
        assert!(e.path.ends_with(path), "{pointer}: error at {}", e.path);
    }
}

//! Web test support: requests through the router with headers and methods, seeding beyond the
//! XRPC helpers (DID documents, records with audio, albums), and the id the web API gives a
//! track.

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use plyr_appview_xrpc::{AppState, WebConfig, router};
use serde_json::{Value, json};
use sqlx::PgPool;
use tower::ServiceExt;

use crate::schema::{self, S};
use crate::xrpc_support::track_record;

/// An audio blob CID for seeded records.
pub const AUDIO_CID: &str = "bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy";

/// A response: status, headers and the JSON body (Null when empty).
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Sends a request through a router built from `state`.
pub async fn send_with(
    state: AppState,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Reply {
    send_body(state, method, path, headers, Body::empty()).await
}

/// Sends a request with a body through a router built from `state`.
pub async fn send_body(
    state: AppState,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Body,
) -> Reply {
    let app = router(state);
    let mut req = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = req.body(body).expect("valid request");
    let resp = app.oneshot(req).await.expect("router is infallible");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 16 << 20)
        .await
        .expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{path}: body is not json ({e}): {bytes:?}"))
    };
    Reply {
        status,
        headers,
        body,
    }
}

/// Sends a request through the development-config router.
pub async fn send(db: &PgPool, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    send_with(AppState::new(db.clone()), method, path, headers).await
}

/// GET `path`, asserting 200 and that the body matches `schema`.
pub async fn ok(db: &PgPool, path: &str, schema: &S) -> Value {
    let reply = send(db, "GET", path, &[]).await;
    assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.body);
    schema::check(&reply.body, schema);
    reply.body
}

/// GET `path`, asserting `status` and upstream's `{"detail": <text>}`.
pub async fn detail(db: &PgPool, path: &str, status: u16, text: &str) {
    let reply = send(db, "GET", path, &[]).await;
    assert_eq!(reply.status.as_u16(), status, "{path}: {}", reply.body);
    schema::check(&reply.body, &schema::detail());
    assert_eq!(reply.body["detail"], text, "{path}");
}

/// GET `path`, asserting a 422 naming parameter `name`.
pub async fn invalid(db: &PgPool, path: &str, name: &str) {
    let reply = send(db, "GET", path, &[]).await;
    assert_eq!(reply.status.as_u16(), 422, "{path}: {}", reply.body);
    schema::check(&reply.body, &schema::validation());
    assert_eq!(reply.body["detail"][0]["loc"][1], name, "{path}");
}

/// The `id` of every track in a JSON array of Tracks, in order.
pub fn track_ids(tracks: &Value) -> Vec<i64> {
    tracks
        .as_array()
        .expect("an array of tracks")
        .iter()
        .filter_map(|t| t["id"].as_i64())
        .collect()
}

/// Likes `subject` as `did` right now (inside every `/tracks/top` period).
pub async fn fresh_like(db: &PgPool, did: &str, subject: &str) {
    sqlx::query(
        "insert into track_like (uri, did, rkey, cid, rev, subject_uri, created_at, sort_at) \
         values ($1 || '/fm.plyr.like/now', $2, 'now', 'c', 'r', $3, now(), now())",
    )
    .bind(format!("at://{did}"))
    .bind(did)
    .bind(subject)
    .execute(db)
    .await
    .expect("fresh like");
}

/// The web id the view stored for a track.
pub async fn web_id(db: &PgPool, uri: &str) -> i64 {
    sqlx::query_scalar("select web_id from track where uri = $1")
        .bind(uri)
        .fetch_one(db)
        .await
        .expect("track web id")
}

/// The web id the view stored for a list.
pub async fn list_id(db: &PgPool, uri: &str) -> String {
    sqlx::query_scalar("select web_id::text from list where uri = $1")
        .bind(uri)
        .fetch_one(db)
        .await
        .expect("list web id")
}

/// A track created at T0 + `secs` (the XRPC helpers' track), its record's fields overridden
/// by `extra`, with the `title`, `artist` and `album` columns following the record.
pub async fn track_with(db: &PgPool, did: &str, rkey: &str, secs: i64, extra: Value) -> String {
    let uri = crate::xrpc_support::track(db, did, rkey, secs).await;
    let mut record = track_record(rkey, secs);
    if let (Some(base), Some(extra)) = (record.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            base.insert(k.clone(), v.clone());
        }
    }
    sqlx::query(
        "update track set record = $2, title = $2->>'title', artist = $2->>'artist', \
         album = $2->>'album' where uri = $1",
    )
    .bind(&uri)
    .bind(record)
    .execute(db)
    .await
    .expect("update track record");
    uri
}

/// A DID document naming `pds` as the actor's PDS, as the indexer stores it.
pub async fn did_doc(db: &PgPool, did: &str, pds: &str) {
    let doc = json!({
        "id": did,
        "alsoKnownAs": [],
        "service": [{"id": "#atproto_pds", "type": "AtprotoPersonalDataServer", "serviceEndpoint": pds}],
    });
    sqlx::query("insert into did_doc (did, doc) values ($1, $2)")
        .bind(did)
        .bind(doc)
        .execute(db)
        .await
        .expect("insert did doc");
}

/// An `audioBlob` value.
pub fn audio_blob() -> Value {
    json!({"$type": "blob", "ref": {"$link": AUDIO_CID}, "mimeType": "audio/mpeg", "size": 1000})
}

/// A config with a small play limit, for rate-limit tests.
pub fn config_with_play_limit(per_minute: u32) -> WebConfig {
    WebConfig {
        plays_per_minute: per_minute,
        ..WebConfig::default()
    }
}

//! Test support: plain-SQL seeding of the view tables and calls through the router.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use plyr_appview_xrpc::{AppState, router};
use serde_json::{Value, json};
use sqlx::PgPool;
use tower::ServiceExt;

/// A valid record CID for every seeded row.
pub const CID: &str = "bafyreiclp443lavogvhj3d2ob2cxbfuscni2k5jk7bebjzg7khl3esabwq";
/// Time zero of every test: seeded rows are placed at T0 + seconds.
const T0: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

/// T0 + `secs`.
pub fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(T0, 0).expect("T0 is a valid time") + TimeDelta::seconds(secs)
}

/// T0 + `secs` as the appview renders datetimes.
pub fn ts(secs: i64) -> String {
    at(secs).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Percent-encodes a query value.
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn track_uri(did: &str, rkey: &str) -> String {
    format!("at://{did}/fm.plyr.track/{rkey}")
}

pub async fn actor(db: &PgPool, did: &str, handle: Option<&str>) {
    sqlx::query("insert into actor (did, handle) values ($1, $2)")
        .bind(did)
        .bind(handle)
        .execute(db)
        .await
        .expect("insert actor");
}

/// Marks an actor inactive with an #account status, as the indexer does.
pub async fn hide(db: &PgPool, did: &str, status: Option<&str>) {
    sqlx::query("update actor set active = false, status = $2 where did = $1")
        .bind(did)
        .bind(status)
        .execute(db)
        .await
        .expect("hide actor");
}

pub fn track_record(rkey: &str, secs: i64) -> Value {
    json!({
        "$type": "fm.plyr.track",
        "title": format!("song {rkey}"),
        "artist": "someone",
        "fileType": "mp3",
        "createdAt": ts(secs),
    })
}

/// A track created at T0 + `secs` (its sort_at) and indexed a second later.
pub async fn track(db: &PgPool, did: &str, rkey: &str, secs: i64) -> String {
    let uri = track_uri(did, rkey);
    sqlx::query(
        "insert into track (uri, did, rkey, cid, rev, title, artist, created_at, indexed_at, \
         sort_at, record) values ($1, $2, $3, $4, '3kaaaaaaaaaaa', $5, 'someone', $6, $7, $6, $8)",
    )
    .bind(&uri)
    .bind(did)
    .bind(rkey)
    .bind(CID)
    .bind(format!("song {rkey}"))
    .bind(at(secs))
    .bind(at(secs + 1))
    .bind(track_record(rkey, secs))
    .execute(db)
    .await
    .expect("insert track");
    uri
}

pub async fn set_counts(db: &PgPool, uri: &str, likes: i32, comments: i32) {
    sqlx::query("update track set like_count = $2, comment_count = $3 where uri = $1")
        .bind(uri)
        .bind(likes)
        .bind(comments)
        .execute(db)
        .await
        .expect("update counts");
}

pub async fn like(db: &PgPool, did: &str, rkey: &str, subject: &str, secs: i64) -> String {
    let uri = format!("at://{did}/fm.plyr.like/{rkey}");
    sqlx::query(
        "insert into track_like (uri, did, rkey, cid, rev, subject_uri, subject_cid, created_at, \
         indexed_at, sort_at) values ($1, $2, $3, $4, '3kaaaaaaaaaaa', $5, $4, $6, $7, $6)",
    )
    .bind(&uri)
    .bind(did)
    .bind(rkey)
    .bind(CID)
    .bind(subject)
    .bind(at(secs))
    .bind(at(secs + 1))
    .execute(db)
    .await
    .expect("insert like");
    uri
}

pub async fn comment(
    db: &PgPool,
    did: &str,
    rkey: &str,
    subject: &str,
    timestamp_ms: i64,
    secs: i64,
) -> String {
    let uri = format!("at://{did}/fm.plyr.comment/{rkey}");
    let record = json!({
        "$type": "fm.plyr.comment",
        "subject": {"uri": subject, "cid": CID},
        "text": format!("comment {rkey}"),
        "timestampMs": timestamp_ms,
        "createdAt": ts(secs),
    });
    sqlx::query(
        "insert into comment (uri, did, rkey, cid, rev, subject_uri, subject_cid, body, \
         timestamp_ms, created_at, indexed_at, sort_at, record) \
         values ($1, $2, $3, $4, '3kaaaaaaaaaaa', $5, $4, $6, $7, $8, $9, $8, $10)",
    )
    .bind(&uri)
    .bind(did)
    .bind(rkey)
    .bind(CID)
    .bind(subject)
    .bind(format!("comment {rkey}"))
    .bind(timestamp_ms)
    .bind(at(secs))
    .bind(at(secs + 1))
    .bind(record)
    .execute(db)
    .await
    .expect("insert comment");
    uri
}

pub fn list_record(name: &str, list_type: &str, items: &[&str], secs: i64) -> Value {
    let items: Vec<Value> = items
        .iter()
        .map(|uri| json!({"subject": {"uri": uri, "cid": CID}}))
        .collect();
    json!({
        "$type": "fm.plyr.list",
        "name": name,
        "listType": list_type,
        "items": items,
        "createdAt": ts(secs),
    })
}

/// A list and its items at positions 0.., as the indexer writes them.
pub async fn list(
    db: &PgPool,
    did: &str,
    rkey: &str,
    name: &str,
    list_type: &str,
    items: &[&str],
    secs: i64,
) -> String {
    let uri = format!("at://{did}/fm.plyr.list/{rkey}");
    let count = i32::try_from(items.len()).expect("few items");
    sqlx::query(
        "insert into list (uri, did, rkey, cid, rev, name, list_type, item_count, created_at, \
         indexed_at, sort_at, record) \
         values ($1, $2, $3, $4, '3kaaaaaaaaaaa', $5, $6, $7, $8, $9, $8, $10)",
    )
    .bind(&uri)
    .bind(did)
    .bind(rkey)
    .bind(CID)
    .bind(name)
    .bind(list_type)
    .bind(count)
    .bind(at(secs))
    .bind(at(secs + 1))
    .bind(list_record(name, list_type, items, secs))
    .execute(db)
    .await
    .expect("insert list");
    for (position, item) in items.iter().enumerate() {
        sqlx::query(
            "insert into list_item (list_uri, position, subject_uri, subject_cid) \
             values ($1, $2, $3, $4)",
        )
        .bind(&uri)
        .bind(i32::try_from(position).expect("few items"))
        .bind(item)
        .bind(CID)
        .execute(db)
        .await
        .expect("insert list item");
    }
    uri
}

pub async fn profile(db: &PgPool, did: &str, bio: &str, avatar: &str, secs: i64) {
    let record = json!({
        "$type": "fm.plyr.actor.profile",
        "bio": bio,
        "avatar": avatar,
        "createdAt": ts(secs),
    });
    sqlx::query(
        "insert into profile (did, uri, cid, rev, bio, avatar, created_at, indexed_at, record) \
         values ($1, $2, $3, '3kaaaaaaaaaaa', $4, $5, $6, $7, $8)",
    )
    .bind(did)
    .bind(format!("at://{did}/fm.plyr.actor.profile/self"))
    .bind(CID)
    .bind(bio)
    .bind(avatar)
    .bind(at(secs))
    .bind(at(secs + 1))
    .bind(record)
    .execute(db)
    .await
    .expect("insert profile");
}

/// Sends a request through a fresh router and returns the status and the JSON body (Null when
/// the body is empty).
pub async fn request(db: &PgPool, method: &str, path: &str) -> (StatusCode, Value) {
    let app = router(AppState::new(db.clone()));
    let req = Request::builder()
        .method(method)
        .uri(path)
        .body(Body::empty())
        .expect("valid request");
    let resp = app.oneshot(req).await.expect("router is infallible");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 16 << 20)
        .await
        .expect("body");
    if bytes.is_empty() {
        return (status, Value::Null);
    }
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{path}: body is not json ({e}): {bytes:?}"));
    (status, body)
}

/// GET `/xrpc/<nsid>?<query>`, asserting 200 and that the body matches the lexicon output.
pub async fn ok(db: &PgPool, nsid: &str, query: &str) -> Value {
    let (status, body) = request(db, "GET", &format!("/xrpc/{nsid}?{query}")).await;
    assert_eq!(status, StatusCode::OK, "{nsid}?{query}: {body}");
    if let Err(e) = plyr_lexicons::Catalog::plyr().validate_output(nsid, &body) {
        panic!("{nsid}?{query}: output does not match the lexicon: {e}\n{body:#}");
    }
    body
}

/// GET `/xrpc/<nsid>?<query>`, asserting the status and error name; returns the message.
pub async fn err(db: &PgPool, nsid: &str, query: &str, status: u16, error: &str) -> String {
    let (got, body) = request(db, "GET", &format!("/xrpc/{nsid}?{query}")).await;
    assert_eq!(got.as_u16(), status, "{nsid}?{query}: {body}");
    assert_eq!(body["error"], error, "{nsid}?{query}: {body}");
    body["message"].as_str().unwrap_or_default().to_owned()
}

/// Walks every page of a method with `limit`, checking page sizes and that only the last page
/// lacks a cursor; returns the items (the `key` array) of all pages in order.
pub async fn walk(db: &PgPool, nsid: &str, query: &str, key: &str, limit: usize) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let mut q = format!("{query}&limit={limit}");
        if let Some(c) = &cursor {
            q.push_str(&format!("&cursor={}", enc(c)));
        }
        let body = ok(db, nsid, &q).await;
        let page = body[key].as_array().expect("items array").clone();
        assert!(page.len() <= limit, "{nsid}: page longer than limit");
        cursor = body
            .get("cursor")
            .and_then(Value::as_str)
            .map(str::to_owned);
        match &cursor {
            Some(_) => assert_eq!(page.len(), limit, "{nsid}: short page with a cursor"),
            None => {
                items.extend(page);
                return items;
            }
        }
        items.extend(page);
    }
    panic!("{nsid}: more than 100 pages");
}

/// The `uri` of every item.
pub fn uris(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|v| v["uri"].as_str().expect("uri").to_owned())
        .collect()
}

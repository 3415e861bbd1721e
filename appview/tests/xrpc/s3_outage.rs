//! Issue #6 ("Faults"), seen from uploadBlob: the router's blob store is S3 on a real `s3s-fs`
//! that is killed before an upload and in the middle of one, then started again on the same
//! port and folder. Down, an upload answers promptly 503 `BlobStoreUnavailable` with
//! `Retry-After` and records nothing; back up, the same upload succeeds and older blobs read
//! back.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use bytes::Bytes;
use plyr_appview_xrpc::{BlobService, router};
use plyr_blobstore::BlobCid;
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::mpsc;
use tower::ServiceExt as _;

use crate::media_fixtures as fx;
use crate::s3_harness::{self, BUCKET, Kind, PART};
use crate::viewer::{key, now, plc, state, token};

const ALICE: &str = "did:plc:aliceaaaaaaaaaaaaaaaaaaa";
const UPLOAD: &str = "fm.plyr.blob.uploadBlob";
/// Bound on any one request while S3 is down: the SDK's retries (3 attempts, backoff) fit.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);
/// Chunk of a streamed body: small enough that the channel's slack is well under one part.
const CHUNK: usize = 256 << 10;

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
    took: Duration,
}

/// Alice's upload of `body` (streamed), bounded by [`ANSWER_WITHIN`].
async fn upload(app: &axum::Router, jti: &str, content_type: &str, body: Body) -> Answer {
    let token = token(&key(1), ALICE, UPLOAD, jti, now() + 60);
    let req = Request::builder()
        .method("POST")
        .uri(format!("/xrpc/{UPLOAD}"))
        .header(header::CONTENT_TYPE, content_type)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(body)
        .expect("request");
    let started = Instant::now();
    let resp = tokio::time::timeout(ANSWER_WITHIN, app.clone().oneshot(req))
        .await
        .expect("uploadBlob answers instead of hanging")
        .expect("router is infallible");
    let took = started.elapsed();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    Answer {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        took,
    }
}

async fn get_blob(app: &axum::Router, cid: &str) -> (StatusCode, Vec<u8>) {
    let req = Request::builder()
        .uri(format!("/blob/{cid}"))
        .body(Body::empty())
        .expect("request");
    let resp = tokio::time::timeout(ANSWER_WITHIN, app.clone().oneshot(req))
        .await
        .expect("GET /blob answers")
        .expect("router is infallible");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20)
        .await
        .expect("body");
    (status, bytes.to_vec())
}

async fn blob_row(db: &PgPool, cid: &str) -> bool {
    sqlx::query_scalar("select exists (select 1 from blob where cid = $1)")
        .bind(cid)
        .fetch_one(db)
        .await
        .expect("blob row")
}

/// The outage answer: 503, the ATProto envelope with a fixed message, and `Retry-After`.
fn assert_unavailable(answer: &Answer, what: &str) {
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{what}: {}",
        answer.body
    );
    assert_eq!(answer.body["error"], "BlobStoreUnavailable", "{what}");
    let message = answer.body["message"].as_str().expect("message");
    // Nothing of the backend (endpoint, bucket, SDK text) reaches the client.
    for leak in ["127.0.0.1", BUCKET, "s3", "dispatch", "tmp/"] {
        assert!(
            !message.to_ascii_lowercase().contains(leak),
            "{what}: {message}"
        );
    }
    let retry_after: u64 = answer
        .headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!(retry_after > 0, "{what}");
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn issue_6_s3_down_during_upload_blob_answers_503_then_recovers(db: PgPool) {
    let mut s3 = s3_harness::Env::new(Kind::S3)
        .await
        .expect("s3s-fs (scripts/test installs it)");
    let plc = plc(ALICE, &key(1)).await;
    let app = router(state(&db, &plc).with_blobs(BlobService::new(s3.store.clone(), 1 << 30)));

    // Up: a blob stored before the outage.
    let flac = Bytes::from_static(fx::FLAC);
    let before = upload(&app, "jti-1", "audio/flac", Body::from(flac.clone())).await;
    assert_eq!(before.status, StatusCode::OK, "{}", before.body);

    // Down before the upload: a small body (one PutObject) and a multi-part one.
    s3.stop_s3().await.expect("stop s3s-fs");
    let small = fx::wav(fx::RATE / 4);
    let answer = upload(&app, "jti-2", "audio/wav", Body::from(small.clone())).await;
    eprintln!(
        "down before a small upload: {} in {:?}: {}",
        answer.status, answer.took, answer.body
    );
    assert_unavailable(&answer, "small upload, S3 down");
    // About 6.6 MB: over one part, so the body streams into a multipart upload.
    let large = fx::wav(fx::RATE * 150);
    assert!(large.len() > PART + CHUNK);
    let answer = upload(&app, "jti-3", "audio/wav", Body::from(large.clone())).await;
    eprintln!(
        "down before a multi-part upload: {} in {:?}: {}",
        answer.status, answer.took, answer.body
    );
    assert_unavailable(&answer, "multi-part upload, S3 down");
    // A read of a blob the store holds is unavailable too, not a 500.
    let flac_cid = BlobCid::of(&flac).to_string();
    assert_eq!(
        get_blob(&app, &flac_cid).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    for bytes in [&small, &large] {
        let cid = BlobCid::of(bytes).to_string();
        assert!(!blob_row(&db, &cid).await, "no row for a failed upload");
        assert_eq!(get_blob(&app, &cid).await.0, StatusCode::NOT_FOUND);
    }

    // Up again, then killed mid-upload: the body is streaming past its first part.
    s3.restart_s3().await.expect("restart s3s-fs");
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let call = {
        let app = app.clone();
        tokio::spawn(
            async move { upload(&app, "jti-4", "audio/wav", Body::from_stream(stream)).await },
        )
    };
    let mut chunks = large.chunks(CHUNK);
    // With 4 chunks of slack in the channel, once these are sent the handler has read at
    // least one part's worth, so the multipart upload is under way.
    for chunk in chunks.by_ref().take(PART / CHUNK + 4) {
        tx.send(Ok(Bytes::copy_from_slice(chunk)))
            .await
            .expect("handler still reading");
    }
    s3.stop_s3().await.expect("stop s3s-fs");
    // The rest; the handler may already have answered and dropped the body.
    for chunk in chunks {
        if tx.send(Ok(Bytes::copy_from_slice(chunk))).await.is_err() {
            break;
        }
    }
    drop(tx);
    let answer = call.await.expect("upload task");
    eprintln!(
        "killed mid-upload: {} in {:?}: {}",
        answer.status, answer.took, answer.body
    );
    assert_unavailable(&answer, "S3 killed mid-upload");
    let large_cid = BlobCid::of(&large).to_string();
    assert!(
        !blob_row(&db, &large_cid).await,
        "no row for the interrupted upload"
    );
    assert_eq!(get_blob(&app, &large_cid).await.0, StatusCode::NOT_FOUND);

    // Back on the same port and folder: the same upload succeeds and both blobs read back.
    s3.restart_s3().await.expect("restart s3s-fs");
    let answer = upload(&app, "jti-5", "audio/wav", Body::from(large.clone())).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["blob"]["ref"]["$link"], large_cid.as_str());
    assert!(blob_row(&db, &large_cid).await);
    assert_eq!(
        get_blob(&app, &large_cid).await,
        (StatusCode::OK, large.to_vec())
    );
    assert_eq!(
        get_blob(&app, &flac_cid).await,
        (StatusCode::OK, flac.to_vec()),
        "the blob stored before the outage is intact"
    );
    // The interrupted multipart upload left nothing behind once swept.
    s3.store
        .sweep_temp(std::time::SystemTime::now() + Duration::from_secs(1))
        .await
        .expect("sweep");
    assert_eq!(
        s3.leftovers().await.expect("leftovers"),
        Vec::<String>::new()
    );
}

/// A store that answers and refuses (wrong secret) is the operator's fault, not an outage:
/// 500 with nothing of the backend in the body and no `Retry-After`, and nothing recorded.
#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn s3_refusing_the_credentials_answers_500_not_503(db: PgPool) {
    let s3 = s3_harness::Env::new(Kind::S3)
        .await
        .expect("s3s-fs (scripts/test installs it)");
    let refusing = s3
        .s3_store_with(|c| c.secret_access_key = "not-the-secret".into())
        .expect("config");
    let plc = plc(ALICE, &key(1)).await;
    let app = router(state(&db, &plc).with_blobs(BlobService::new(refusing, 1 << 30)));

    let small = fx::wav(fx::RATE / 4);
    let cid = BlobCid::of(&small).to_string();
    let answer = upload(&app, "jti-1", "audio/wav", Body::from(small)).await;
    assert_eq!(
        answer.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        answer.body
    );
    assert_eq!(answer.body["error"], "InternalServerError");
    assert!(answer.body.get("message").is_none(), "{}", answer.body);
    assert!(answer.headers.get(header::RETRY_AFTER).is_none());
    assert!(!blob_row(&db, &cid).await, "nothing recorded");
}

//! The blob service over HTTP, on a local-folder store: `fm.plyr.blob.uploadBlob` with real
//! service-auth tokens (answer shaped exactly like com.atproto.repo.uploadBlob, idempotent,
//! validated, size-capped, replay-proof) and `GET`/`HEAD /blob/{cid}` (Range, 416, ETag and
//! 304, caching and lockdown headers, hidden content).

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use bytes::Bytes;
use plyr_appview_xrpc::{AppState, BlobService, router};
use plyr_blobstore::{BlobCid, BlobStore, FsBackend};
use serde_json::{Value, json};
use sqlx::PgPool;
use tower::ServiceExt as _;

use crate::media_fixtures as fx;
use crate::support::*;
use crate::viewer::{Plc, key, now, plc, state, token};

const ALICE: &str = "did:plc:aliceaaaaaaaaaaaaaaaaaaa";
const UPLOAD: &str = "fm.plyr.blob.uploadBlob";

struct Env {
    state: AppState,
    /// Serves Alice's DID document while the test runs.
    _plc: Plc,
    _dir: tempfile::TempDir,
    store: BlobStore,
    jti: std::cell::Cell<u32>,
}

async fn env(db: &PgPool, max_upload_bytes: u64) -> Env {
    let plc = plc(ALICE, &key(1)).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let store = BlobStore::new(FsBackend::open(dir.path()).await.expect("fs backend"));
    let state = state(db, &plc).with_blobs(BlobService::new(store.clone(), max_upload_bytes));
    Env {
        state,
        _plc: plc,
        _dir: dir,
        store,
        jti: std::cell::Cell::new(0),
    }
}

impl Env {
    /// A fresh upload token for Alice.
    fn token(&self) -> String {
        self.jti.set(self.jti.get() + 1);
        token(
            &key(1),
            ALICE,
            UPLOAD,
            &format!("jti-{}", self.jti.get()),
            now() + 60,
        )
    }

    async fn upload(
        &self,
        bytes: &Bytes,
        content_type: Option<&str>,
        bearer: Option<&str>,
        content_length: bool,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder()
            .method("POST")
            .uri(format!("/xrpc/{UPLOAD}"));
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        if let Some(t) = bearer {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if content_length {
            req = req.header(header::CONTENT_LENGTH, bytes.len());
        }
        let resp = router(self.state.clone())
            .oneshot(req.body(Body::from(bytes.clone())).expect("request"))
            .await
            .expect("router is infallible");
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        (status, value)
    }

    async fn read(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Read {
        let mut req = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let resp = router(self.state.clone())
            .oneshot(req.body(Body::empty()).expect("request"))
            .await
            .expect("router is infallible");
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = axum::body::to_bytes(resp.into_body(), 64 << 20)
            .await
            .expect("body")
            .to_vec();
        Read {
            status,
            headers,
            body,
        }
    }
}

struct Read {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Read {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

fn cid_of(bytes: &[u8]) -> String {
    BlobCid::of(bytes).to_string()
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn upload_answers_the_pds_blob_json_and_serves_the_bytes(db: PgPool) {
    let env = env(&db, 1 << 30).await;
    let wav = fx::wav(fx::RATE);
    let cid = cid_of(&wav);
    let (status, body) = env
        .upload(&wav, Some("audio/x-wav"), Some(&env.token()), true)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"blob": {"$type": "blob", "ref": {"$link": cid}, "mimeType": "audio/wav",
                        "size": wav.len()}})
    );
    if let Err(e) = plyr_lexicons::Catalog::plyr().validate_output(UPLOAD, &body) {
        panic!("output does not match the lexicon: {e}");
    }
    let (codec, duration, rate, channels): (Option<String>, Option<i64>, Option<i32>, Option<i16>) =
        sqlx::query_as(
            "select codec, duration_ms, sample_rate, channels from blob \
             where cid = $1 and uploaded_by = $2",
        )
        .bind(&cid)
        .bind(ALICE)
        .fetch_one(&db)
        .await
        .expect("blob row");
    assert_eq!(
        (codec.as_deref(), duration, rate, channels),
        (Some("pcm_s16le"), Some(1000), Some(22_050), Some(1))
    );

    let path = format!("/blob/{cid}");
    let full = env.read("GET", &path, &[]).await;
    assert_eq!(full.status, StatusCode::OK);
    assert_eq!(full.body, wav.to_vec());
    let etag = format!("\"{cid}\"");
    for (name, want) in [
        ("content-type", "audio/wav"),
        ("etag", etag.as_str()),
        ("cache-control", "public, max-age=31536000, immutable"),
        ("content-security-policy", "default-src 'none'; sandbox"),
        ("x-content-type-options", "nosniff"),
        ("accept-ranges", "bytes"),
    ] {
        assert_eq!(full.header(name), Some(want), "{name}");
    }

    let part = env.read("GET", &path, &[("range", "bytes=10-19")]).await;
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.body, wav[10..20].to_vec());
    let total = wav.len();
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 10-19/{total}").as_str())
    );
    let tail = env.read("GET", &path, &[("range", "bytes=-4")]).await;
    assert_eq!(tail.body, wav[total - 4..].to_vec());
    let past = env
        .read("GET", &path, &[("range", &format!("bytes={total}-"))])
        .await;
    assert_eq!(past.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        past.header("content-range"),
        Some(format!("bytes */{total}").as_str())
    );

    let head = env.read("HEAD", &path, &[]).await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
    assert_eq!(
        head.header("content-length"),
        Some(total.to_string().as_str())
    );
    let cached = env.read("GET", &path, &[("if-none-match", &etag)]).await;
    assert_eq!(cached.status, StatusCode::NOT_MODIFIED);
    assert!(cached.body.is_empty());

    let unknown = env
        .read("GET", &format!("/blob/{}", cid_of(b"never uploaded")), &[])
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let garbage = env.read("GET", "/blob/not-a-cid", &[]).await;
    assert_eq!(garbage.status, StatusCode::BAD_REQUEST);
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn the_same_content_uploaded_twice_is_stored_once(db: PgPool) {
    let env = env(&db, 1 << 30).await;
    let flac = Bytes::from_static(fx::FLAC);
    let (first, a) = env
        .upload(&flac, Some("audio/flac"), Some(&env.token()), false)
        .await;
    let (second, b) = env
        .upload(&flac, Some("audio/x-flac"), Some(&env.token()), false)
        .await;
    assert_eq!((first, second), (StatusCode::OK, StatusCode::OK));
    assert_eq!(a, b);
    let rows: i64 = sqlx::query_scalar("select count(*) from blob")
        .fetch_one(&db)
        .await
        .expect("count");
    assert_eq!(rows, 1);
    let objects = futures_util::TryStreamExt::try_collect::<Vec<_>>(
        env.store.list(plyr_blobstore::ListScope::Blobs),
    )
    .await
    .expect("list");
    assert_eq!(objects.len(), 1);
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn cover_art_is_accepted_with_dimensions(db: PgPool) {
    let env = env(&db, 1 << 30).await;
    let png = fx::image(800, 600, image::ImageFormat::Png);
    let (status, body) = env
        .upload(&png, Some("image/png"), Some(&env.token()), true)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["blob"]["mimeType"], "image/png");
    let dims: (Option<i32>, Option<i32>) =
        sqlx::query_as("select width, height from blob where cid = $1")
            .bind(cid_of(&png))
            .fetch_one(&db)
            .await
            .expect("row");
    assert_eq!(dims, (Some(800), Some(600)));
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn bad_uploads_are_refused_and_store_nothing(db: PgPool) {
    let env = env(&db, 64 << 10).await;
    let wav = fx::wav(fx::RATE / 10);
    let noise = Bytes::from(vec![0x5Au8; 10_000]);
    let big = fx::wav(fx::RATE * 2); // 88 KB > 64 KiB

    let (status, body) = env.upload(&wav, Some("audio/wav"), None, true).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("AuthMissing"))
    );

    let wrong_method = token(&key(1), ALICE, "fm.plyr.feed.getTrack", "jti-x", now() + 60);
    let (status, body) = env
        .upload(&wav, Some("audio/wav"), Some(&wrong_method), true)
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("BadJwtLexiconMethod"))
    );

    let once = env.token();
    let (status, _) = env.upload(&wav, Some("audio/wav"), Some(&once), true).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = env.upload(&wav, Some("audio/wav"), Some(&once), true).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("BadJwt"))
    );

    for (bytes, ct) in [
        (&noise, Some("audio/mpeg")),
        (&noise, None),
        (&wav, Some("audio/flac")),
        (&wav, Some("text/html")),
    ] {
        let (status, body) = env.upload(bytes, ct, Some(&env.token()), true).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("InvalidMimeType")),
            "{ct:?}: {body}"
        );
    }
    for content_length in [true, false] {
        let (status, body) = env
            .upload(&big, Some("audio/wav"), Some(&env.token()), content_length)
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::PAYLOAD_TOO_LARGE, Some("PayloadTooLarge")),
            "content-length {content_length}"
        );
    }
    // Only the one valid upload is stored, and no temp object is left behind.
    let rows: Vec<String> = sqlx::query_scalar("select cid from blob")
        .fetch_all(&db)
        .await
        .expect("rows");
    assert_eq!(rows, vec![cid_of(&wav)]);
    let objects = futures_util::TryStreamExt::try_collect::<Vec<_>>(
        env.store.list(plyr_blobstore::ListScope::Blobs),
    )
    .await
    .expect("list");
    assert_eq!(objects.len(), 1);
    assert_eq!(
        env.store
            .sweep_temp(std::time::SystemTime::now())
            .await
            .expect("sweep"),
        0
    );
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn blobs_only_hidden_actors_use_are_not_served(db: PgPool) {
    let env = env(&db, 1 << 30).await;
    let wav = fx::wav(fx::RATE / 10);
    let cid = cid_of(&wav);
    let (status, _) = env
        .upload(&wav, Some("audio/wav"), Some(&env.token()), true)
        .await;
    assert_eq!(status, StatusCode::OK);
    let path = format!("/blob/{cid}");
    let blob_ref = json!({"$type": "blob", "ref": {"$link": cid}, "mimeType": "audio/wav",
                          "size": wav.len()});
    let hidden = "did:plc:hidden";
    actor(&db, hidden, Some("hidden.test")).await;
    let uri = track(&db, hidden, "3kaaaaaaaaaa2", 100).await;
    sqlx::query("update track set record = record || jsonb_build_object('audioBlob', $2::jsonb) where uri = $1")
        .bind(&uri)
        .bind(&blob_ref)
        .execute(&db)
        .await
        .expect("set audioBlob");
    assert_eq!(env.read("GET", &path, &[]).await.status, StatusCode::OK);
    hide(&db, hidden, Some("takendown")).await;
    assert_eq!(
        env.read("GET", &path, &[]).await.status,
        StatusCode::NOT_FOUND
    );

    // Another, visible track using the same audio makes it servable again.
    let visible = "did:plc:visible";
    actor(&db, visible, Some("visible.test")).await;
    let other = track(&db, visible, "3kaaaaaaaaab2", 200).await;
    sqlx::query("update track set record = record || jsonb_build_object('audioBlob', $2::jsonb) where uri = $1")
        .bind(&other)
        .bind(&blob_ref)
        .execute(&db)
        .await
        .expect("set audioBlob");
    assert_eq!(env.read("GET", &path, &[]).await.status, StatusCode::OK);
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn taken_down_blobs_and_blobs_of_taken_down_tracks_are_not_served(db: PgPool) {
    let env = env(&db, 1 << 30).await;
    let wav = fx::wav(fx::RATE / 10);
    let cid = cid_of(&wav);
    let (status, _) = env
        .upload(&wav, Some("audio/wav"), Some(&env.token()), true)
        .await;
    assert_eq!(status, StatusCode::OK);
    let path = format!("/blob/{cid}");
    let artist = "did:plc:artist";
    actor(&db, artist, Some("artist.test")).await;
    let uri = track(&db, artist, "3kaaaaaaaaaa2", 100).await;
    use_audio(&db, &uri, &cid, wav.len()).await;
    assert_eq!(env.read("GET", &path, &[]).await.status, StatusCode::OK);

    // A local takedown of the blob itself (plyr-appview takedown --blob), then its reversal.
    let set = |sql: &'static str, subject: String| {
        let db = db.clone();
        async move {
            sqlx::query(sql)
                .bind(subject)
                .execute(&db)
                .await
                .expect("moderate");
        }
    };
    set(
        "insert into takedown (subject, kind) values ($1, 'blob')",
        cid.clone(),
    )
    .await;
    assert_eq!(
        env.read("GET", &path, &[]).await.status,
        StatusCode::NOT_FOUND
    );
    set("delete from takedown where subject = $1", cid.clone()).await;
    assert_eq!(env.read("GET", &path, &[]).await.status, StatusCode::OK);

    // The only track using it is under a labeler's !takedown.
    set(
        "insert into label (src, uri, val, cts) values ('did:plc:labeler', $1, '!takedown', now())",
        uri.clone(),
    )
    .await;
    assert_eq!(
        env.read("GET", &path, &[]).await.status,
        StatusCode::NOT_FOUND
    );
    set("delete from label where uri = $1", uri).await;
    assert_eq!(env.read("GET", &path, &[]).await.status, StatusCode::OK);
}

/// Points track `uri`'s audioBlob at `cid`.
async fn use_audio(db: &PgPool, uri: &str, cid: &str, size: usize) {
    let blob_ref = json!({"$type": "blob", "ref": {"$link": cid}, "mimeType": "audio/wav",
                          "size": size});
    sqlx::query(
        "update track set record = record || jsonb_build_object('audioBlob', $2::jsonb) \
         where uri = $1",
    )
    .bind(uri)
    .bind(&blob_ref)
    .execute(db)
    .await
    .expect("set audioBlob");
}

async fn stored(env: &Env, db: &PgPool, cid: &str) -> (bool, bool) {
    let object = env
        .store
        .exists(cid.parse::<BlobCid>().expect("cid"))
        .await
        .expect("exists");
    let row: bool = sqlx::query_scalar("select exists (select 1 from blob where cid = $1)")
        .bind(cid)
        .fetch_one(db)
        .await
        .expect("row");
    (object, row)
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn gc_keeps_a_blob_another_track_still_references(db: PgPool) {
    let env = env(&db, 1 << 30).await;
    let wav = fx::wav(fx::RATE / 10);
    let cid = cid_of(&wav);
    let (status, _) = env
        .upload(&wav, Some("audio/wav"), Some(&env.token()), true)
        .await;
    assert_eq!(status, StatusCode::OK);
    actor(&db, "did:plc:a", Some("a.test")).await;
    actor(&db, "did:plc:b", Some("b.test")).await;
    let first = track(&db, "did:plc:a", "3kaaaaaaaaaa2", 100).await;
    let second = track(&db, "did:plc:b", "3kaaaaaaaaab2", 200).await;
    use_audio(&db, &first, &cid, wav.len()).await;
    use_audio(&db, &second, &cid, wav.len()).await;

    // The seed's incident: one track's deletion took audio another track still used.
    sqlx::query("delete from track where uri = $1")
        .bind(&first)
        .execute(&db)
        .await
        .expect("delete");
    let report = plyr_appview_xrpc::collect_garbage(&db, &env.store, Duration::ZERO)
        .await
        .expect("gc");
    assert_eq!(report.deleted, 0);
    assert_eq!(stored(&env, &db, &cid).await, (true, true));

    // Unreferenced: kept through the grace period, collected after it.
    sqlx::query("delete from track where uri = $1")
        .bind(&second)
        .execute(&db)
        .await
        .expect("delete");
    let report = plyr_appview_xrpc::collect_garbage(&db, &env.store, Duration::from_secs(3600))
        .await
        .expect("gc");
    assert_eq!((report.newly_unreferenced, report.deleted), (1, 0));
    assert_eq!(stored(&env, &db, &cid).await, (true, true));
    let report = plyr_appview_xrpc::collect_garbage(&db, &env.store, Duration::ZERO)
        .await
        .expect("gc");
    assert_eq!(report.deleted, 1);
    assert_eq!(stored(&env, &db, &cid).await, (false, false));
    let gone = env.read("GET", &format!("/blob/{cid}"), &[]).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}

/// Track deletes, re-uploads and GC passes (with no grace at all) run concurrently, many times:
/// a blob another track references is never deleted, and a re-upload that answered 200 always
/// leaves both the object and its row, whichever of it and GC took the row lock first.
#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn gc_racing_deletes_and_reuploads_never_loses_a_blob(db: PgPool) {
    let env = env(&db, 1 << 30).await;
    let wav = fx::wav(fx::RATE / 10);
    let cid = cid_of(&wav);
    actor(&db, "did:plc:a", Some("a.test")).await;
    actor(&db, "did:plc:b", Some("b.test")).await;
    let keeper = track(&db, "did:plc:b", "3kaaaaaaaaab2", 200).await;
    let (status, _) = env
        .upload(&wav, Some("audio/wav"), Some(&env.token()), true)
        .await;
    assert_eq!(status, StatusCode::OK);
    use_audio(&db, &keeper, &cid, wav.len()).await;
    for round in 0..20 {
        let doomed = track(&db, "did:plc:a", &format!("3kaaaaaaab{round:02}"), 300).await;
        use_audio(&db, &doomed, &cid, wav.len()).await;
        let delete = async {
            sqlx::query("delete from track where uri = $1")
                .bind(&doomed)
                .execute(&db)
                .await
                .expect("delete");
        };
        let token = env.token();
        let (_, (status, _), gc) = tokio::join!(
            delete,
            env.upload(&wav, Some("audio/wav"), Some(&token), true),
            plyr_appview_xrpc::collect_garbage(&db, &env.store, Duration::ZERO),
        );
        assert_eq!(status, StatusCode::OK, "round {round}");
        assert_eq!(gc.expect("gc").deleted, 0, "round {round}");
        assert_eq!(stored(&env, &db, &cid).await, (true, true), "round {round}");
    }

    // Now nothing references it: GC and a re-upload race for the row lock.
    sqlx::query("delete from track where uri = $1")
        .bind(&keeper)
        .execute(&db)
        .await
        .expect("delete");
    let mut collected = 0;
    for round in 0..20 {
        sqlx::query(
            "update blob set stored_at = now() - interval '2 hours', \
             unreferenced_since = now() - interval '2 hours' where cid = $1",
        )
        .bind(&cid)
        .execute(&db)
        .await
        .expect("age the blob");
        let token = env.token();
        let (gc, (status, _)) = tokio::join!(
            plyr_appview_xrpc::collect_garbage(&db, &env.store, Duration::from_secs(3600)),
            env.upload(&wav, Some("audio/wav"), Some(&token), true),
        );
        collected += gc.expect("gc").deleted;
        assert_eq!(status, StatusCode::OK, "round {round}");
        // The upload answered 200 after or before the GC: either way the blob is there.
        assert_eq!(stored(&env, &db, &cid).await, (true, true), "round {round}");
        let served = env.read("GET", &format!("/blob/{cid}"), &[]).await;
        assert_eq!(served.body, wav.to_vec(), "round {round}");
    }
    tracing::debug!(collected, "rounds where gc won the lock");
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn track_view_says_how_its_audio_was_mirrored(db: PgPool) {
    let env = env(&db, 1 << 30).await;
    let wav = fx::wav(fx::RATE / 10);
    let cid = cid_of(&wav);
    let (status, _) = env
        .upload(&wav, Some("audio/wav"), Some(&env.token()), true)
        .await;
    assert_eq!(status, StatusCode::OK);
    actor(&db, "did:plc:a", Some("a.test")).await;
    let verified = track(&db, "did:plc:a", "3kaaaaaaaaaa2", 100).await;
    let from_url = track(&db, "did:plc:a", "3kaaaaaaaaab2", 200).await;
    let failed = track(&db, "did:plc:a", "3kaaaaaaaaac2", 300).await;
    use_audio(&db, &verified, &cid, wav.len()).await;
    // What the mirror (plyr-indexer) records; the schema is the contract.
    for (uri, source, ok, error) in [
        (&verified, "blob", true, None),
        (&from_url, "url", false, None),
        (&failed, "blob", false, Some("fetch: not found")),
    ] {
        sqlx::query(
            "insert into track_audio (track_uri, cid, source, verified, error) \
             values ($1, $2, $3, $4, $5)",
        )
        .bind(uri)
        .bind(&cid)
        .bind(source)
        .bind(ok)
        .bind(error)
        .execute(&db)
        .await
        .expect("track_audio");
    }
    let body = ok(
        &db,
        "fm.plyr.feed.getTrack",
        &format!("uri={}", enc(&verified)),
    )
    .await;
    assert_eq!(
        body["track"]["audio"],
        json!({"source": "blob", "verified": true, "cid": cid, "mimeType": "audio/wav"})
    );
    let body = ok(
        &db,
        "fm.plyr.feed.getTrack",
        &format!("uri={}", enc(&from_url)),
    )
    .await;
    assert_eq!(body["track"]["audio"]["source"], "url");
    assert_eq!(body["track"]["audio"]["verified"], false);
    // A failed mirror says nothing (yet).
    let body = ok(
        &db,
        "fm.plyr.feed.getTrack",
        &format!("uri={}", enc(&failed)),
    )
    .await;
    assert!(body["track"].get("audio").is_none(), "{body}");
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn aiff_gets_a_web_rendition_served_beside_it(db: PgPool) {
    let env = env(&db, 1 << 30).await;
    let aiff = fx::aiff(fx::RATE / 2);
    let cid = cid_of(&aiff);
    let (status, body) = env
        .upload(&aiff, Some("audio/aiff"), Some(&env.token()), true)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let limits = plyr_blobstore::TranscodeLimits::default();
    let report = plyr_appview_xrpc::transcode_pending(&db, &env.store, &limits)
        .await
        .expect("transcode pass");
    assert_eq!((report.transcoded, report.failed), (1, 0));
    // Done once: nothing is due any more.
    let again = plyr_appview_xrpc::transcode_pending(&db, &env.store, &limits)
        .await
        .expect("transcode pass");
    assert_eq!(again, plyr_appview_xrpc::TranscodeReport::default());

    let web = env.read("GET", &format!("/blob/{cid}/web.flac"), &[]).await;
    assert_eq!(web.status, StatusCode::OK);
    assert_eq!(web.header("content-type"), Some("audio/flac"));
    assert_eq!(&web.body[..4], b"fLaC");
    let part = env
        .read(
            "GET",
            &format!("/blob/{cid}/web.flac"),
            &[("range", "bytes=0-3")],
        )
        .await;
    assert_eq!(
        (part.status, part.body.as_slice()),
        (StatusCode::PARTIAL_CONTENT, &b"fLaC"[..])
    );
    // The original is still served as it was uploaded.
    let original = env.read("GET", &format!("/blob/{cid}"), &[]).await;
    assert_eq!(original.body, aiff.to_vec());
    for unknown in ["web.mp3", "thumb-512.jpg", "..%2Fetc"] {
        let missing = env
            .read("GET", &format!("/blob/{cid}/{unknown}"), &[])
            .await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND, "{unknown}");
    }

    actor(&db, "did:plc:a", Some("a.test")).await;
    let uri = track(&db, "did:plc:a", "3kaaaaaaaaaa2", 100).await;
    use_audio(&db, &uri, &cid, aiff.len()).await;
    sqlx::query(
        "insert into track_audio (track_uri, cid, source, verified) values ($1, $2, 'blob', true)",
    )
    .bind(&uri)
    .bind(&cid)
    .execute(&db)
    .await
    .expect("track_audio");
    let body = ok(&db, "fm.plyr.feed.getTrack", &format!("uri={}", enc(&uri))).await;
    assert_eq!(body["track"]["audio"]["webRendition"], "web.flac");
    assert_eq!(body["track"]["audio"]["mimeType"], "audio/aiff");
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn cover_thumbnails_are_served(db: PgPool) {
    let env = env(&db, 1 << 30).await;
    let png = fx::image(900, 300, image::ImageFormat::Png);
    let cid = cid_of(&png);
    let (status, _) = env
        .upload(&png, Some("image/png"), Some(&env.token()), true)
        .await;
    assert_eq!(status, StatusCode::OK);
    let thumb = env
        .read("GET", &format!("/blob/{cid}/thumb-512.jpg"), &[])
        .await;
    assert_eq!(thumb.status, StatusCode::OK);
    assert_eq!(thumb.header("content-type"), Some("image/jpeg"));
    assert_eq!(
        thumb.header("content-security-policy"),
        Some("default-src 'none'; sandbox")
    );
    let decoded = image::load_from_memory(&thumb.body).expect("thumbnail decodes");
    assert_eq!((decoded.width(), decoded.height()), (512, 512));
}

/// On S3 (a real s3s-fs, as in the blobstore's tests) with redirects on, a read answers 307 to
/// a presigned URL that serves the bytes with the validated Content-Type.
#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn s3_reads_redirect_to_a_presigned_url(db: PgPool) {
    let s3 = crate::s3_harness::Env::new(crate::s3_harness::Kind::S3)
        .await
        .expect("s3s-fs (scripts/test installs it)");
    let plc = plc(ALICE, &key(1)).await;
    let blobs = BlobService::new(s3.store.clone(), 1 << 30).with_redirects(Duration::from_secs(60));
    let env = Env {
        state: state(&db, &plc).with_blobs(blobs),
        _plc: plc,
        _dir: tempfile::tempdir().expect("temp dir"),
        store: s3.store.clone(),
        jti: std::cell::Cell::new(0),
    };
    let flac = Bytes::from_static(fx::FLAC);
    let (status, body) = env
        .upload(&flac, Some("audio/x-flac"), Some(&env.token()), false)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let cid = cid_of(&flac);
    let read = env.read("GET", &format!("/blob/{cid}"), &[]).await;
    assert_eq!(read.status, StatusCode::TEMPORARY_REDIRECT);
    let location = read.header("location").expect("location").to_owned();
    let (status, head, bytes) = crate::s3_harness::http_get(&location)
        .await
        .expect("presigned GET");
    assert_eq!(status, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: audio/flac"),
        "{head}"
    );
    assert_eq!(bytes, fx::FLAC);
}

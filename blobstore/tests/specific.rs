//! Tests of what only one backend has: the folder's layout and temp files, S3's sweeping of
//! temp objects, multipart copy, presigned and public URLs, and how a dead server surfaces.

use std::time::{Duration, SystemTime};

use futures_util::{StreamExt, TryStreamExt};
use plyr_blobstore::{BlobCid, BlobKey, ListScope, PutErrorKind, PutLimits, StoreErrorKind};

use crate::harness::{BUCKET, Env, Kind, PART, body, collect, http_get, payload};

#[tokio::test]
async fn fs_layout_is_sharded_by_digest() -> anyhow::Result<()> {
    let env = Env::new(Kind::Fs).await?;
    let fs = env.fs.as_ref().expect("fs backend");
    let data = bytes::Bytes::from_static(b"hello world");
    let cid = env
        .store
        .put_stream(body(&data, 4), PutLimits::default())
        .await?
        .cid;
    let path = fs.path_of(&BlobKey::Blob(cid));
    let tail: Vec<String> = path
        .iter()
        .rev()
        .take(4)
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        tail,
        [cid.to_string(), "4d".into(), "b9".into(), "blobs".into()]
    );
    assert_eq!(std::fs::read(&path)?, b"hello world");
    // The folder backend cannot serve clients itself.
    assert_eq!(
        env.store
            .presign_get(cid, Duration::from_secs(60), None)
            .await?,
        None
    );
    Ok(())
}

#[tokio::test]
async fn fs_dropped_upload_removes_its_temp_file() -> anyhow::Result<()> {
    let env = Env::new(Kind::Fs).await?;
    let mut temp = env.store.backend().begin().await?;
    temp.write(payload(3 << 20, 1)).await?;
    assert_eq!(env.leftovers().await?.len(), 1);
    drop(temp);
    assert_eq!(env.leftovers().await?, Vec::<String>::new());
    Ok(())
}

#[tokio::test]
async fn fs_sweep_removes_only_old_temp_files() -> anyhow::Result<()> {
    let env = Env::new(Kind::Fs).await?;
    let tmp = env.fs.as_ref().expect("fs backend").tmp_dir().to_path_buf();
    let old = std::fs::File::create(tmp.join("crashed-upload"))?;
    old.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000))?;
    std::fs::write(tmp.join("live-upload"), b"in progress")?;
    let cutoff = SystemTime::now() - Duration::from_secs(3600);
    assert_eq!(env.store.sweep_temp(cutoff).await?, 1);
    assert_eq!(env.leftovers().await?, ["live-upload"]);
    Ok(())
}

#[tokio::test]
async fn fs_list_skips_foreign_files() -> anyhow::Result<()> {
    let env = Env::new(Kind::Fs).await?;
    let fs = env.fs.as_ref().expect("fs backend");
    let cid = env
        .store
        .put_stream(body(&payload(10, 2), 3), PutLimits::default())
        .await?
        .cid;
    let blobs = fs.path_of(&BlobKey::Blob(cid));
    let shard = blobs.parent().expect("shard dir");
    let root = shard.parent().and_then(|p| p.parent()).expect("blobs dir");
    std::fs::write(shard.join("not-a-cid"), b"x")?;
    std::fs::write(root.join("README"), b"x")?;
    // A valid CID in the wrong shard would never be found by `get`: not listed either.
    let misplaced = BlobCid::of(b"elsewhere");
    std::fs::write(shard.join(misplaced.to_string()), b"elsewhere")?;
    let found: Vec<_> = env.store.list(ListScope::Blobs).try_collect().await?;
    let keys: Vec<_> = found.into_iter().map(|o| o.key).collect();
    assert_eq!(keys, [BlobKey::Blob(cid)]);
    Ok(())
}

#[tokio::test]
async fn s3_sweep_removes_old_temp_objects() -> anyhow::Result<()> {
    let env = Env::new(Kind::S3).await?;
    let s3 = env.s3.as_ref().expect("s3 backend");
    s3.client()
        .put_object()
        .bucket(BUCKET)
        .key("tmp/crashed-upload")
        .body(payload(10, 3).into())
        .send()
        .await?;
    assert_eq!(env.leftovers().await?, ["tmp/crashed-upload"]);
    // Nothing is old enough yet.
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    assert_eq!(env.store.sweep_temp(an_hour_ago).await?, 0);
    let later = SystemTime::now() + Duration::from_secs(60);
    assert_eq!(env.store.sweep_temp(later).await?, 1);
    assert_eq!(env.leftovers().await?, Vec::<String>::new());
    Ok(())
}

#[tokio::test]
async fn s3_multipart_copy_promotes_objects_over_the_single_copy_limit() -> anyhow::Result<()> {
    let env = Env::with_config(Kind::S3, |config| config.max_single_copy = PART as u64).await?;
    let data = payload(2 * PART + 7, 4);
    let stored = env
        .store
        .put_stream(body(&data, 65_536), PutLimits::default())
        .await?;
    assert_eq!(stored.cid, BlobCid::of(&data));
    let read = env
        .store
        .get_range(stored.cid, None)
        .await?
        .expect("stored");
    assert_eq!(collect(read).await?, data);
    assert_eq!(env.leftovers().await?, Vec::<String>::new());
    Ok(())
}

#[tokio::test]
async fn s3_presigned_url_serves_the_blob() -> anyhow::Result<()> {
    let env = Env::new(Kind::S3).await?;
    let data = payload(2000, 5);
    let cid = env
        .store
        .put_stream(body(&data, 500), PutLimits::default())
        .await?
        .cid;
    let url = env
        .store
        .presign_get(cid, Duration::from_secs(300), Some("audio/flac"))
        .await?
        .expect("s3 presigns");
    assert!(url.contains(&format!("/{BUCKET}/blobs/{cid}?")), "{url}");
    assert!(url.contains("X-Amz-Signature="), "{url}");
    assert!(url.contains("response-content-type=audio%2Fflac"), "{url}");
    let (status, _, fetched) = http_get(&url).await?;
    assert_eq!(status, 200);
    assert_eq!(fetched, data);
    // A tampered signature is refused, so the URL is what grants access.
    let at = url.find("X-Amz-Signature=").expect("signed") + "X-Amz-Signature=".len();
    let flipped = if url[at..].starts_with('0') { "1" } else { "0" };
    let tampered = format!("{}{flipped}{}", &url[..at], &url[at + 1..]);
    let (status, _, _) = http_get(&tampered).await?;
    assert_eq!(status, 403);
    Ok(())
}

#[tokio::test]
async fn s3_public_base_url_needs_no_signature() -> anyhow::Result<()> {
    let env = Env::with_config(Kind::S3, |config| {
        config.public_base_url = Some("https://cdn.example.test/".to_owned());
    })
    .await?;
    let cid = BlobCid::of(b"hello world");
    let url = env
        .store
        .presign_get(cid, Duration::from_secs(60), None)
        .await?;
    assert_eq!(url, Some(format!("https://cdn.example.test/blobs/{cid}")));
    Ok(())
}

#[tokio::test]
async fn s3_dead_server_is_a_remote_error() -> anyhow::Result<()> {
    let mut env = Env::new(Kind::S3).await?;
    let server = env.server.as_mut().expect("s3 server");
    assert!(server.running());
    server.kill().await?;
    let err = env
        .store
        .put_stream(body(&payload(10, 6), 5), PutLimits::default())
        .await
        .expect_err("server is gone");
    assert_eq!(err.kind(), PutErrorKind::Store);
    let plyr_blobstore::PutError::Store(store) = err else {
        unreachable!()
    };
    assert_eq!(store.kind(), StoreErrorKind::Remote);
    let head = env
        .store
        .head(BlobCid::of(b"x"))
        .await
        .expect_err("server is gone");
    assert_eq!(head.kind(), StoreErrorKind::Remote);
    Ok(())
}

/// A store that answers and refuses (here a bad secret) is a configuration fault, told apart
/// from an outage: retrying it does not help. (s3s-fs creates a missing bucket on write, so the
/// NoSuchBucket case is covered by the unit test beside `sdk_error`.)
#[tokio::test]
async fn s3_refusals_are_not_outages() -> anyhow::Result<()> {
    let env = Env::new(Kind::S3).await?;
    let store = env.s3_store_with(|c| c.secret_access_key = "not-the-secret".into())?;
    let err = store
        .put_stream(body(&payload(10, 7), 5), PutLimits::default())
        .await
        .expect_err("wrong secret");
    let plyr_blobstore::PutError::Store(err) = err else {
        panic!("not a store error: {err}");
    };
    assert_eq!(err.kind(), StoreErrorKind::Refused, "{err}");
    let head = store
        .head(BlobCid::of(b"x"))
        .await
        .expect_err("wrong secret");
    assert_eq!(head.kind(), StoreErrorKind::Refused, "{head}");
    // The right settings on the same server still work.
    env.store
        .put_stream(body(&payload(10, 7), 5), PutLimits::default())
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_cancelled_put_leaves_no_temp_file() -> anyhow::Result<()> {
    let env = Env::new(Kind::Fs).await?;
    let (reached, mut reached_rx) = tokio::sync::mpsc::channel::<()>(1);
    let chunks = payload(3 << 20, 7);
    // Three chunks, then a signal once they were consumed, then a client that never finishes.
    let body = body(&chunks, 1 << 20).chain(futures_util::stream::once(async move {
        let _ = reached.send(()).await;
        futures_util::future::pending::<Result<bytes::Bytes, std::io::Error>>().await
    }));
    let put = env.store.put_stream(body, PutLimits::default());
    tokio::select! {
        result = put => panic!("a body that never ends cannot finish: {result:?}"),
        _ = reached_rx.recv() => {}
    }
    // The put future is dropped here, as when a client disconnects mid-upload.
    assert!(listed_blobs(&env).await?.is_empty());
    assert_eq!(env.leftovers().await?, Vec::<String>::new());
    Ok(())
}

async fn listed_blobs(env: &Env) -> anyhow::Result<Vec<BlobKey>> {
    let found: Vec<_> = env.store.list(ListScope::Blobs).try_collect().await?;
    Ok(found.into_iter().map(|o| o.key).collect())
}

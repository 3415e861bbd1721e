//! S3 unavailable mid-upload: the real `s3s-fs` process is killed while a multi-part upload is
//! streaming. The upload fails with an error (no panic, no hang), no blob is promoted under a
//! CID, and once the server is started again on the same port and folder the next upload
//! succeeds, the earlier blob still reads back, and the interrupted upload's temp object is
//! swept.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use plyr_blobstore::{BlobKey, BlobStore, ListScope, PutLimits};
use tokio::sync::mpsc;

use crate::harness::{Env, Kind, PART, body, payload};

async fn read_all(store: &BlobStore, key: BlobKey) -> Vec<u8> {
    let read = store
        .get_range(key, None)
        .await
        .expect("read")
        .expect("stored");
    read.chunks
        .try_fold(Vec::new(), |mut acc, chunk| async move {
            acc.extend_from_slice(&chunk);
            Ok(acc)
        })
        .await
        .expect("read body")
}

async fn blob_keys(store: &BlobStore) -> Vec<BlobKey> {
    store
        .list(ListScope::Blobs)
        .map(|o| o.expect("list").key)
        .collect()
        .await
}

#[tokio::test]
async fn s3_killed_mid_upload_fails_cleanly_and_recovers_on_restart() {
    let mut env = Env::new(Kind::S3).await.expect("S3 env");
    let store = env.store.clone();

    let before = payload(PART + 1234, 1);
    let stored = store
        .put_stream(body(&before, 64 << 10), PutLimits::max_bytes(1 << 30))
        .await
        .expect("upload while up");

    // A multi-part upload fed by hand: one part's worth goes out, then the server dies.
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let upload = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .put_stream(stream, PutLimits::max_bytes(1 << 30))
                .await
        })
    };
    let interrupted = payload(3 * PART, 2);
    for chunk in interrupted.chunks(1 << 20).take(6) {
        tx.send(Ok(Bytes::copy_from_slice(chunk)))
            .await
            .expect("upload still reading");
    }
    env.stop_s3().await.expect("stop s3s-fs");
    // The rest of the body; the upload may already have failed and dropped the receiver.
    for chunk in interrupted.chunks(1 << 20).skip(6) {
        if tx.send(Ok(Bytes::copy_from_slice(chunk))).await.is_err() {
            break;
        }
    }
    drop(tx);
    let failed = tokio::time::timeout(Duration::from_secs(60), upload)
        .await
        .expect("the upload gives up instead of hanging")
        .expect("upload task");
    let error = failed.expect_err("an upload with S3 down fails");
    eprintln!("upload with S3 down: {error}");

    // Down: a fresh upload fails too, at once.
    let small = payload(1000, 3);
    store
        .put_stream(body(&small, 500), PutLimits::max_bytes(1 << 30))
        .await
        .expect_err("upload with S3 down");

    // Back on the same port and folder.
    env.restart_s3().await.expect("restart s3s-fs");
    let after = store
        .put_stream(body(&small, 500), PutLimits::max_bytes(1 << 30))
        .await
        .expect("upload after the restart");
    let mut keys = blob_keys(&store).await;
    keys.sort_by_key(|k| format!("{k:?}"));
    let mut want = vec![BlobKey::Blob(stored.cid), BlobKey::Blob(after.cid)];
    want.sort_by_key(|k| format!("{k:?}"));
    assert_eq!(keys, want, "only the two complete uploads are blobs");
    assert_eq!(
        read_all(&store, BlobKey::Blob(stored.cid)).await,
        before.to_vec(),
        "the blob stored before the outage is intact"
    );
    // Whatever the interrupted upload left in temp space is swept.
    let swept = store
        .sweep_temp(SystemTime::now() + Duration::from_secs(1))
        .await
        .expect("sweep");
    eprintln!("temp objects swept after the outage: {swept}");
    let left = store
        .sweep_temp(SystemTime::now() + Duration::from_secs(1))
        .await
        .expect("sweep again");
    assert_eq!(left, 0, "nothing left in temp space");
}

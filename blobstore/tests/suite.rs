//! The backend suite: every test here runs once against the local folder and once against S3
//! (a real s3s-fs server), through the same `BlobStore` API.

use std::collections::BTreeSet;

use bytes::Bytes;
use futures_util::TryStreamExt;
use plyr_blobstore::{
    BlobCid, BlobKey, ByteRange, ListScope, Promotion, PutErrorKind, PutLimits, StoreError,
    StoreErrorKind,
};

use crate::harness::{Env, Kind, PART, body, collect, failing_body, payload};

const HELLO_CID: &str = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e";
const EMPTY_CID: &str = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";

on_both_backends!(
    known_vectors,
    put_is_idempotent,
    large_upload_round_trips,
    range_reads,
    too_large_leaves_nothing,
    failed_body_leaves_nothing,
    expected_cid_mismatch_leaves_nothing,
    not_visible_until_promoted,
    delete_removes,
    list_finds_everything,
    concurrent_puts_of_same_content,
    renditions_are_replaced,
);

async fn listed(env: &Env, scope: ListScope) -> anyhow::Result<BTreeSet<(BlobKey, u64)>> {
    let found: Vec<_> = env.store.list(scope).try_collect().await?;
    Ok(found.into_iter().map(|o| (o.key, o.meta.size)).collect())
}

async fn known_vectors(env: Env) -> anyhow::Result<()> {
    let cases: [(&[u8], &str); 2] = [(b"hello world", HELLO_CID), (b"", EMPTY_CID)];
    for (bytes, want) in cases {
        let data = Bytes::from_static(bytes);
        let stored = env
            .store
            .put_stream(body(&data, 3), PutLimits::default())
            .await?;
        assert_eq!(stored.cid.to_string(), want);
        assert_eq!(stored.size, u64::try_from(bytes.len())?);
        assert_eq!(stored.promotion, Promotion::Created);
        let read = env
            .store
            .get_range(stored.cid, None)
            .await?
            .expect("stored blob is readable");
        assert_eq!(read.total_size, u64::try_from(bytes.len())?);
        assert_eq!(collect(read).await?, bytes);
        assert!(env.store.exists(stored.cid).await?);
    }
    Ok(())
}

async fn put_is_idempotent(env: Env) -> anyhow::Result<()> {
    // One single-request size and one multipart size on S3.
    for (len, seed) in [(1000, 1), (2 * PART + 123, 2)] {
        let data = payload(len, seed);
        let first = env
            .store
            .put_stream(body(&data, 64 * 1024), PutLimits::default())
            .await?;
        let second = env
            .store
            .put_stream(body(&data, 7777), PutLimits::default())
            .await?;
        assert_eq!(first.cid, BlobCid::of(&data));
        assert_eq!((first.cid, first.size), (second.cid, second.size));
        assert_eq!(first.promotion, Promotion::Created);
        assert_eq!(second.promotion, Promotion::AlreadyPresent);
        let read = env.store.get_range(first.cid, None).await?.expect("stored");
        assert_eq!(collect(read).await?, data);
    }
    assert_eq!(listed(&env, ListScope::Blobs).await?.len(), 2);
    assert_eq!(env.leftovers().await?, Vec::<String>::new());
    Ok(())
}

async fn large_upload_round_trips(env: Env) -> anyhow::Result<()> {
    // An exact multiple of the part size: the final flush has nothing left to send.
    for (len, chunk) in [(2 * PART, 65_536), (3 * PART + 1, PART + 17)] {
        let data = payload(len, u64::try_from(len)?);
        let stored = env
            .store
            .put_stream(body(&data, chunk), PutLimits::default())
            .await?;
        assert_eq!(stored.cid, BlobCid::of(&data));
        assert_eq!(stored.size, u64::try_from(len)?);
        let read = env
            .store
            .get_range(stored.cid, None)
            .await?
            .expect("stored");
        assert_eq!(read.range, 0..u64::try_from(len)?);
        assert_eq!(collect(read).await?, data);
        // A range across the first part boundary.
        let across = ByteRange::From {
            start: u64::try_from(PART - 3)?,
            last: Some(u64::try_from(PART + 3)?),
        };
        let read = env
            .store
            .get_range(stored.cid, Some(across))
            .await?
            .expect("stored");
        assert_eq!(collect(read).await?, &data[PART - 3..=PART + 3]);
    }
    assert_eq!(env.leftovers().await?, Vec::<String>::new());
    Ok(())
}

async fn range_reads(env: Env) -> anyhow::Result<()> {
    let data = payload(1000, 3);
    let cid = env
        .store
        .put_stream(body(&data, 100), PutLimits::default())
        .await?
        .cid;
    let from = |start, last| ByteRange::From { start, last };
    let ok_cases = [
        ("first byte", from(0, Some(0)), 0..1),
        ("middle", from(500, Some(509)), 500..510),
        ("last byte", from(999, Some(999)), 999..1000),
        ("open end", from(990, None), 990..1000),
        ("past the end is clamped", from(900, Some(5000)), 900..1000),
        ("suffix", ByteRange::Suffix(10), 990..1000),
        (
            "suffix longer than object",
            ByteRange::Suffix(5000),
            0..1000,
        ),
    ];
    for (name, range, want) in ok_cases {
        let read = env
            .store
            .get_range(cid, Some(range))
            .await?
            .expect("stored");
        assert_eq!(read.total_size, 1000, "{name}");
        assert_eq!(read.range, want, "{name}");
        let bytes = collect(read).await?;
        let (start, end) = (usize::try_from(want.start)?, usize::try_from(want.end)?);
        assert_eq!(bytes, &data[start..end], "{name}");
    }
    let bad_cases = [
        ("start at size", from(1000, None)),
        ("start past size", from(2000, Some(3000))),
        ("inverted", from(10, Some(5))),
        ("empty suffix", ByteRange::Suffix(0)),
    ];
    for (name, range) in bad_cases {
        match env.store.get_range(cid, Some(range)).await {
            Err(e @ StoreError::RangeNotSatisfiable { .. }) => {
                assert_eq!(e.kind(), StoreErrorKind::RangeNotSatisfiable, "{name}");
                let StoreError::RangeNotSatisfiable { key, size } = e else {
                    unreachable!()
                };
                assert_eq!((key, size), (BlobKey::Blob(cid), 1000), "{name}");
            }
            Err(e) => panic!("{name}: unexpected error {e:#?}"),
            Ok(read) => panic!("{name}: served {:?}", read.map(|r| r.range)),
        }
    }
    let absent = BlobCid::of(b"never stored");
    assert!(
        env.store
            .get_range(absent, Some(from(0, Some(0))))
            .await?
            .is_none()
    );
    assert!(env.store.get_range(absent, None).await?.is_none());
    assert_eq!(env.store.head(absent).await?, None);
    Ok(())
}

async fn too_large_leaves_nothing(env: Env) -> anyhow::Result<()> {
    // Over the limit within the first part, and after a multipart upload has started.
    for (len, limit) in [(150, 100), (2 * PART + 10, 2 * PART as u64 + 9)] {
        let data = payload(len, 4);
        let err = env
            .store
            .put_stream(body(&data, 4096), PutLimits::max_bytes(limit))
            .await
            .expect_err("over the limit");
        assert_eq!(err.kind(), PutErrorKind::TooLarge);
        assert!(matches!(err, plyr_blobstore::PutError::TooLarge { limit: l } if l == limit));
        assert!(!env.store.exists(BlobCid::of(&data)).await?);
        // Exactly at the limit is accepted.
        let at_limit = data.slice(..usize::try_from(limit)?);
        let stored = env
            .store
            .put_stream(body(&at_limit, 4096), PutLimits::max_bytes(limit))
            .await?;
        assert_eq!(stored.size, limit);
    }
    assert_eq!(env.leftovers().await?, Vec::<String>::new());
    assert_eq!(listed(&env, ListScope::Blobs).await?.len(), 2);
    Ok(())
}

async fn failed_body_leaves_nothing(env: Env) -> anyhow::Result<()> {
    for len in [10, PART + 10] {
        let data = payload(len, 5);
        let err = env
            .store
            .put_stream(failing_body(&data), PutLimits::default())
            .await
            .expect_err("body fails");
        assert_eq!(err.kind(), PutErrorKind::Body);
        assert!(
            matches!(err, plyr_blobstore::PutError::Body { received, .. } if received == u64::try_from(len).unwrap_or(0))
        );
    }
    assert_eq!(env.leftovers().await?, Vec::<String>::new());
    assert!(listed(&env, ListScope::Blobs).await?.is_empty());
    Ok(())
}

async fn expected_cid_mismatch_leaves_nothing(env: Env) -> anyhow::Result<()> {
    let declared = BlobCid::of(b"what the record says");
    for len in [10, PART + 10] {
        let data = payload(len, 6);
        let err = env
            .store
            .put_stream(body(&data, 4096), PutLimits::default().expecting(declared))
            .await
            .expect_err("mismatch");
        assert_eq!(err.kind(), PutErrorKind::CidMismatch);
        assert!(matches!(
            err,
            plyr_blobstore::PutError::CidMismatch { expected, actual }
                if expected == declared && actual == BlobCid::of(&data)
        ));
        // The right expectation is accepted.
        let stored = env
            .store
            .put_stream(
                body(&data, 4096),
                PutLimits::default().expecting(BlobCid::of(&data)),
            )
            .await?;
        assert_eq!(stored.cid, BlobCid::of(&data));
    }
    assert!(!env.store.exists(declared).await?);
    assert_eq!(env.leftovers().await?, Vec::<String>::new());
    Ok(())
}

async fn not_visible_until_promoted(env: Env) -> anyhow::Result<()> {
    let data = payload(PART + 100, 7);
    let cid = BlobCid::of(&data);
    let mut temp = env.store.backend().begin().await?;
    temp.write(data.slice(..PART + 50)).await?;
    assert!(
        !env.store.exists(cid).await?,
        "a partial upload must not be visible"
    );
    temp.write(data.slice(PART + 50..)).await?;
    assert!(
        !env.store.exists(cid).await?,
        "an unpromoted upload must not be visible"
    );
    assert_eq!(temp.promote(BlobKey::Blob(cid)).await?, Promotion::Created);
    let read = env.store.get_range(cid, None).await?.expect("promoted");
    assert_eq!(collect(read).await?, data);
    assert_eq!(env.leftovers().await?, Vec::<String>::new());

    // An aborted upload leaves nothing either.
    let mut temp = env.store.backend().begin().await?;
    temp.write(payload(PART + 1, 8)).await?;
    temp.abort().await?;
    assert_eq!(env.leftovers().await?, Vec::<String>::new());
    Ok(())
}

async fn delete_removes(env: Env) -> anyhow::Result<()> {
    let data = payload(300, 9);
    let cid = env
        .store
        .put_stream(body(&data, 100), PutLimits::default())
        .await?
        .cid;
    let meta = env.store.head(cid).await?.expect("stored");
    assert_eq!(meta.size, 300);
    env.store.delete(cid).await?;
    assert!(!env.store.exists(cid).await?);
    assert!(env.store.get_range(cid, None).await?.is_none());
    // Deleting again (or something never stored) succeeds.
    env.store.delete(cid).await?;
    env.store.delete(BlobCid::of(b"never stored")).await?;
    // And the content can be stored again afterwards.
    let again = env
        .store
        .put_stream(body(&data, 100), PutLimits::default())
        .await?;
    assert_eq!((again.cid, again.promotion), (cid, Promotion::Created));
    Ok(())
}

async fn list_finds_everything(env: Env) -> anyhow::Result<()> {
    assert!(listed(&env, ListScope::Blobs).await?.is_empty());
    let mut want = BTreeSet::new();
    for seed in 0..5u64 {
        let len = 10 + usize::try_from(seed)? * 100;
        let data = payload(len, 100 + seed);
        let stored = env
            .store
            .put_stream(body(&data, 64), PutLimits::default())
            .await?;
        want.insert((BlobKey::Blob(stored.cid), stored.size));
    }
    let source = want
        .iter()
        .next()
        .map(|(k, _)| *k.cid())
        .expect("five blobs");
    let rendition = env
        .store
        .put_rendition(
            source,
            "web.flac".parse()?,
            body(&payload(77, 1), 10),
            PutLimits::default(),
        )
        .await?;
    assert_eq!(listed(&env, ListScope::Blobs).await?, want);
    assert_eq!(
        listed(&env, ListScope::Renditions).await?,
        BTreeSet::from([(rendition.key, 77)])
    );
    let found: Vec<_> = env.store.list(ListScope::Blobs).try_collect().await?;
    let now = std::time::SystemTime::now();
    for object in found {
        let age = now.duration_since(object.meta.modified).unwrap_or_default();
        assert!(
            age.as_secs() < 600,
            "{:?} modified {:?} ago",
            object.key,
            age
        );
    }
    Ok(())
}

async fn concurrent_puts_of_same_content(env: Env) -> anyhow::Result<()> {
    for len in [4096, PART + 4096] {
        let data = payload(len, 10);
        let puts = (0..6).map(|i| {
            let store = env.store.clone();
            let data = data.clone();
            async move {
                store
                    .put_stream(body(&data, 1000 + i * 333), PutLimits::default())
                    .await
            }
        });
        let results = futures_util::future::try_join_all(puts).await?;
        let created = results
            .iter()
            .filter(|r| r.promotion == Promotion::Created)
            .count();
        for stored in &results {
            assert_eq!(
                (stored.cid, stored.size),
                (BlobCid::of(&data), u64::try_from(len)?)
            );
        }
        // The folder links atomically, so exactly one upload creates the object. S3 has no
        // conditional copy: racing multipart uploads may each copy (identical bytes).
        match env.kind {
            Kind::Fs => assert_eq!(created, 1, "len {len}"),
            Kind::S3 => assert!(created >= 1, "len {len}"),
        }
        let read = env
            .store
            .get_range(BlobCid::of(&data), None)
            .await?
            .expect("stored");
        assert_eq!(collect(read).await?, data);
    }
    assert_eq!(listed(&env, ListScope::Blobs).await?.len(), 2);
    assert_eq!(env.leftovers().await?, Vec::<String>::new());
    Ok(())
}

async fn renditions_are_replaced(env: Env) -> anyhow::Result<()> {
    let source = env
        .store
        .put_stream(body(&payload(500, 11), 100), PutLimits::default())
        .await?
        .cid;
    let name: plyr_blobstore::RenditionName = "web.mp3".parse()?;
    let key = BlobKey::rendition(source, name.clone());
    for (len, seed) in [(300, 12), (PART + 5, 13)] {
        let data = payload(len, seed);
        let stored = env
            .store
            .put_rendition(
                source,
                name.clone(),
                body(&data, 1000),
                PutLimits::default(),
            )
            .await?;
        assert_eq!(stored.key, key);
        assert_eq!(
            (stored.cid, stored.size),
            (BlobCid::of(&data), u64::try_from(len)?)
        );
        let read = env
            .store
            .get_range(key.clone(), Some(ByteRange::Suffix(5)))
            .await?
            .expect("stored");
        assert_eq!(read.total_size, u64::try_from(len)?);
        assert_eq!(collect(read).await?, &data[len - 5..]);
    }
    // The source is untouched and deleting the rendition leaves it.
    env.store.delete(key.clone()).await?;
    assert!(!env.store.exists(key).await?);
    assert!(env.store.exists(source).await?);
    assert_eq!(env.leftovers().await?, Vec::<String>::new());
    Ok(())
}

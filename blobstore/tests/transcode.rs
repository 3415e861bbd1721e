//! Web renditions by ffmpeg (installed by scripts/test): an AIFF original gets a FLAC rendition
//! that decodes to the same audio; a failed transcode leaves the original intact and stores
//! nothing. Both backends.

use std::time::{Duration, Instant};

use bytes::Bytes;
use plyr_blobstore::{
    BlobKey, MediaDetails, MediaFormat, PutLimits, TranscodeError, TranscodeLimits, WEB_RENDITION,
    inspect_blocking, transcode_web,
};

use crate::harness::{Env, body, collect, payload};
use crate::media_fixtures::{self as fx, RATE};

on_both_backends!(
    aiff_gets_a_flac_rendition,
    a_failed_transcode_leaves_the_original
);

async fn aiff_gets_a_flac_rendition(env: Env) -> anyhow::Result<()> {
    let aiff = fx::aiff(RATE);
    let stored = env
        .store
        .put_media(
            body(&aiff, 4096),
            PutLimits::default(),
            Some("audio/x-aiff"),
        )
        .await?;
    assert!(stored.media.format.needs_web_rendition());
    let rendition = transcode_web(&env.store, stored.blob.cid, &TranscodeLimits::default()).await?;
    assert_eq!(
        rendition.key,
        BlobKey::rendition(stored.blob.cid, WEB_RENDITION.parse()?)
    );
    let read = env
        .store
        .get_range(rendition.key.clone(), None)
        .await?
        .expect("rendition stored");
    let flac = Bytes::from(collect(read).await?);
    let size = u64::try_from(flac.len())?;
    let info = inspect_blocking(
        flac,
        size,
        Some("audio/flac"),
        Instant::now() + Duration::from_secs(30),
    )?;
    assert_eq!(info.format, MediaFormat::Flac);
    let MediaDetails::Audio(audio) = info.details else {
        panic!("rendition is not audio");
    };
    assert_eq!((audio.sample_rate, audio.channels), (Some(RATE), Some(1)));
    assert_eq!(audio.duration_ms, Some(1000));
    // The original is untouched.
    let original = env
        .store
        .get_range(stored.blob.cid, None)
        .await?
        .expect("original");
    assert_eq!(collect(original).await?, aiff.to_vec());
    Ok(())
}

async fn a_failed_transcode_leaves_the_original(env: Env) -> anyhow::Result<()> {
    let noise = payload(32 << 10, 11);
    let stored = env
        .store
        .put_stream(body(&noise, 4096), PutLimits::default())
        .await?;
    let failed = transcode_web(&env.store, stored.cid, &TranscodeLimits::default()).await;
    assert!(
        matches!(failed, Err(TranscodeError::Failed { .. })),
        "{failed:?}"
    );
    let missing_ffmpeg = TranscodeLimits {
        ffmpeg: "/nonexistent/ffmpeg".into(),
        ..TranscodeLimits::default()
    };
    let aiff = fx::aiff(RATE / 10);
    let real = env
        .store
        .put_stream(body(&aiff, 4096), PutLimits::default())
        .await?;
    let failed = transcode_web(&env.store, real.cid, &missing_ffmpeg).await;
    assert!(
        matches!(failed, Err(TranscodeError::Failed { .. })),
        "{failed:?}"
    );
    for cid in [stored.cid, real.cid] {
        assert!(env.store.exists(cid).await?);
        assert!(
            !env.store
                .exists(BlobKey::rendition(cid, WEB_RENDITION.parse()?))
                .await?
        );
    }
    let original = env
        .store
        .get_range(stored.cid, None)
        .await?
        .expect("original");
    assert_eq!(collect(original).await?, noise.to_vec());
    assert!(env.leftovers().await?.is_empty());
    Ok(())
}

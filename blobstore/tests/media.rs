//! Upload validation: every supported format is accepted with its details, aliases are the
//! same format, and non-media, mismatched or oversized content is refused and never stored.

use std::time::{Duration, Instant};

use bytes::Bytes;
use plyr_blobstore::{
    BlobKey, MediaDetails, MediaErrorKind, MediaFormat, MediaInfo, PutError, PutErrorKind,
    PutLimits, THUMBNAIL_RENDITION, inspect_blocking,
};

use crate::harness::{Env, body, collect, payload};
use crate::media_fixtures::{self as fx, RATE};

fn check(bytes: &Bytes, declared: Option<&str>) -> Result<MediaInfo, MediaErrorKind> {
    let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    let deadline = Instant::now() + Duration::from_secs(30);
    inspect_blocking(bytes.clone(), size, declared, deadline).map_err(|e| e.kind())
}

#[test]
fn accepts_every_supported_audio_format() {
    // (bytes, declared, format, codec, exact duration known from the container)
    let cases: Vec<(Bytes, &str, MediaFormat, &str)> = vec![
        (fx::wav(RATE), "audio/wav", MediaFormat::Wav, "pcm_s16le"),
        (fx::aiff(RATE), "audio/aiff", MediaFormat::Aiff, "pcm_s16be"),
        (
            Bytes::from_static(fx::MP3),
            "audio/mpeg",
            MediaFormat::Mp3,
            "mp3",
        ),
        (
            Bytes::from_static(fx::FLAC),
            "audio/flac",
            MediaFormat::Flac,
            "flac",
        ),
        (
            Bytes::from_static(fx::M4A_AAC),
            "audio/mp4",
            MediaFormat::Mp4,
            "aac",
        ),
        (
            Bytes::from_static(fx::M4A_ALAC),
            "audio/mp4",
            MediaFormat::Mp4,
            "alac",
        ),
        (
            Bytes::from_static(fx::OGG),
            "audio/ogg",
            MediaFormat::Ogg,
            "vorbis",
        ),
    ];
    for (bytes, declared, format, codec) in cases {
        let info = check(&bytes, Some(declared))
            .unwrap_or_else(|e| panic!("{declared} ({codec}) refused: {e:?}"));
        assert_eq!(info.format, format, "{codec}");
        assert_eq!(info.mime(), format.mime());
        let MediaDetails::Audio(audio) = info.details else {
            panic!("{codec}: not audio");
        };
        assert_eq!(audio.codec, codec);
        assert_eq!(audio.sample_rate, Some(RATE), "{codec}");
        assert_eq!(audio.channels, Some(1), "{codec}");
        // One second of audio; encoders pad (priming, final frame), MP3 is estimated.
        let ms = audio
            .duration_ms
            .unwrap_or_else(|| panic!("{codec}: no duration"));
        assert!((900..=1250).contains(&ms), "{codec}: {ms} ms");
        let bitrate = audio
            .bitrate
            .unwrap_or_else(|| panic!("{codec}: no bitrate"));
        assert!(bitrate > 8_000, "{codec}: {bitrate} b/s");
    }
}

#[test]
fn accepts_cover_art_with_dimensions_and_square_thumbnail() {
    let cases = [
        (image::ImageFormat::Png, "image/png", MediaFormat::Png),
        (image::ImageFormat::Jpeg, "image/jpeg", MediaFormat::Jpeg),
        (image::ImageFormat::Gif, "image/gif", MediaFormat::Gif),
        (image::ImageFormat::WebP, "image/webp", MediaFormat::Webp),
    ];
    for (encoding, declared, format) in cases {
        let bytes = fx::image(640, 360, encoding);
        let info =
            check(&bytes, Some(declared)).unwrap_or_else(|e| panic!("{declared} refused: {e:?}"));
        assert_eq!(info.format, format);
        let MediaDetails::Image(img) = info.details else {
            panic!("{declared}: not an image");
        };
        assert_eq!((img.width, img.height), (640, 360), "{declared}");
        let thumb = image::load_from_memory(&img.thumbnail).expect("thumbnail decodes");
        assert_eq!((thumb.width(), thumb.height()), (512, 512), "{declared}");
    }
}

#[test]
fn aliases_and_generic_types_name_the_same_format() {
    let wav = fx::wav(RATE / 4);
    for declared in [
        "audio/wav",
        "audio/x-wav",
        "audio/vnd.wave",
        "audio/wave",
        "Audio/WAV; codecs=1",
        "application/octet-stream",
        "audio/*",
    ] {
        let info = check(&wav, Some(declared)).unwrap_or_else(|e| panic!("{declared}: {e:?}"));
        assert_eq!(info.mime(), "audio/wav", "{declared}");
    }
    let mp3 = Bytes::from_static(fx::MP3);
    for declared in ["audio/mp3", "audio/mpeg", "audio/x-mpeg"] {
        let info = check(&mp3, Some(declared)).unwrap_or_else(|e| panic!("{declared}: {e:?}"));
        assert_eq!(info.mime(), "audio/mpeg");
    }
    assert_eq!(check(&mp3, None).map(|i| i.format), Ok(MediaFormat::Mp3));
}

#[test]
fn refuses_what_is_not_what_it_claims() {
    let mut mp3_header_then_noise = fx::MP3[..64].to_vec();
    mp3_header_then_noise.extend_from_slice(&payload(32 << 10, 7));
    let mut flac_magic_then_noise = b"fLaC".to_vec();
    flac_magic_then_noise.extend_from_slice(&payload(32 << 10, 8));
    let mut wav_cut_in_header = fx::wav(RATE).to_vec();
    wav_cut_in_header.truncate(30);
    let cases: Vec<(Bytes, Option<&str>, MediaErrorKind)> = vec![
        (
            Bytes::from_static(fx::FLAC),
            Some("audio/mpeg"),
            MediaErrorKind::TypeMismatch,
        ),
        (
            fx::wav(RATE),
            Some("audio/flac"),
            MediaErrorKind::TypeMismatch,
        ),
        (
            Bytes::from_static(fx::MP3),
            Some("image/png"),
            MediaErrorKind::TypeMismatch,
        ),
        (
            Bytes::from_static(fx::MP3),
            Some("application/pdf"),
            MediaErrorKind::UnsupportedType,
        ),
        (
            Bytes::from_static(fx::MP3),
            Some("video/mp4"),
            MediaErrorKind::UnsupportedType,
        ),
        (
            payload(64 << 10, 1),
            Some("audio/mpeg"),
            MediaErrorKind::NotMedia,
        ),
        (payload(64 << 10, 2), None, MediaErrorKind::NotMedia),
        (
            Bytes::from_static(b"<html>hello</html>"),
            Some("audio/wav"),
            MediaErrorKind::NotMedia,
        ),
        (Bytes::new(), Some("audio/mpeg"), MediaErrorKind::NotMedia),
        (
            Bytes::from(mp3_header_then_noise),
            Some("audio/mpeg"),
            MediaErrorKind::NotMedia,
        ),
        (
            Bytes::from(flac_magic_then_noise),
            Some("audio/flac"),
            MediaErrorKind::NotMedia,
        ),
        (
            Bytes::from(wav_cut_in_header),
            Some("audio/wav"),
            MediaErrorKind::NotMedia,
        ),
    ];
    for (i, (bytes, declared, want)) in cases.into_iter().enumerate() {
        match check(&bytes, declared) {
            Ok(info) => panic!("case {i} ({declared:?}) accepted as {info:?}"),
            Err(kind) => assert_eq!(kind, want, "case {i} ({declared:?})"),
        }
    }
}

#[test]
fn oversized_images_are_refused_before_decoding_whole() {
    let wide = fx::image(6001, 2, image::ImageFormat::Png);
    assert_eq!(
        check(&wide, Some("image/png")).map(|i| i.format),
        Err(MediaErrorKind::ImageTooLarge)
    );
}

on_both_backends!(
    valid_audio_is_stored_once,
    invalid_upload_stores_nothing,
    cover_art_gets_a_thumbnail_rendition,
);

async fn valid_audio_is_stored_once(env: Env) -> anyhow::Result<()> {
    let flac = Bytes::from_static(fx::FLAC);
    let first = env
        .store
        .put_media(
            body(&flac, 1000),
            PutLimits::default(),
            Some("audio/x-flac"),
        )
        .await?;
    assert_eq!(first.media.format, MediaFormat::Flac);
    assert_eq!(first.blob.promotion, plyr_blobstore::Promotion::Created);
    assert!(first.thumbnail.is_none());
    let again = env
        .store
        .put_media(body(&flac, 4096), PutLimits::default(), Some("audio/flac"))
        .await?;
    assert_eq!(again.blob.cid, first.blob.cid);
    assert_eq!(
        again.blob.promotion,
        plyr_blobstore::Promotion::AlreadyPresent
    );
    let read = env
        .store
        .get_range(first.blob.cid, None)
        .await?
        .expect("stored");
    assert_eq!(collect(read).await?, fx::FLAC);
    assert!(env.leftovers().await?.is_empty());
    Ok(())
}

async fn invalid_upload_stores_nothing(env: Env) -> anyhow::Result<()> {
    let noise = payload(256 << 10, 3);
    let cid = plyr_blobstore::BlobCid::of(&noise);
    let refused = env
        .store
        .put_media(body(&noise, 8192), PutLimits::default(), Some("audio/mpeg"))
        .await;
    assert!(
        matches!(refused, Err(PutError::Invalid(ref e)) if e.kind() == MediaErrorKind::NotMedia),
        "{refused:?}"
    );
    assert!(!env.store.exists(cid).await?);
    let mismatch = env
        .store
        .put_media(
            body(&fx::wav(RATE), 8192),
            PutLimits::default(),
            Some("audio/flac"),
        )
        .await;
    assert_eq!(
        mismatch.map(|v| v.blob.cid).map_err(|e| e.kind()),
        Err(PutErrorKind::Invalid)
    );
    let unsupported = env
        .store
        .put_media(body(&noise, 8192), PutLimits::default(), Some("text/html"))
        .await;
    assert_eq!(
        unsupported.map(|v| v.blob.cid).map_err(|e| e.kind()),
        Err(PutErrorKind::Invalid)
    );
    assert!(env.leftovers().await?.is_empty());
    Ok(())
}

async fn cover_art_gets_a_thumbnail_rendition(env: Env) -> anyhow::Result<()> {
    let png = fx::image(300, 900, image::ImageFormat::Png);
    let stored = env
        .store
        .put_media(body(&png, 4096), PutLimits::default(), Some("image/png"))
        .await?;
    let thumb = stored.thumbnail.expect("images get a thumbnail");
    assert_eq!(
        thumb.key,
        BlobKey::rendition(stored.blob.cid, THUMBNAIL_RENDITION.parse()?)
    );
    let read = env
        .store
        .get_range(thumb.key.clone(), None)
        .await?
        .expect("thumbnail stored");
    let decoded = image::load_from_memory(&collect(read).await?)?;
    assert_eq!((decoded.width(), decoded.height()), (512, 512));
    Ok(())
}

//! Upload validation: sniffs the real format of a blob from its bytes with pure-Rust decoders
//! (symphonia for audio, `image` for cover art), checks it against the declared Content-Type,
//! and records what a player needs (codec, duration, sample rate, ...). Decoding is bounded in
//! bytes, packets, pixels and time, and runs on a blocking thread.

use std::io::Cursor;
use std::time::{Duration, Instant};

use bytes::Bytes;
use symphonia::core::codecs::{CODEC_TYPE_NULL, DecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

/// How much of an audio upload is kept for validation: enough for the tags (ID3v2 and FLAC
/// pictures are usually well under 2 MiB) and several packets of any codec, small enough that
/// a 1 GiB upload raises RSS by a few MiB only.
pub const AUDIO_PREFIX_BYTES: usize = 4 << 20;

/// Largest accepted image: cover art is decoded whole, so the whole file is held in memory.
pub const MAX_IMAGE_BYTES: u64 = 16 << 20;

/// Largest accepted image side in pixels; with [`MAX_IMAGE_ALLOC`] this bounds decode memory.
const MAX_IMAGE_DIMENSION: u32 = 6000;

/// Largest allocation the image decoder may make (a 6000x6000 RGB frame is ~108 MB).
const MAX_IMAGE_ALLOC: u64 = 160 << 20;

/// Side of the square cover thumbnail, in pixels.
pub const THUMBNAIL_SIDE: u32 = 512;

/// Rendition name of the square cover thumbnail.
pub const THUMBNAIL_RENDITION: &str = "thumb-512.jpg";

/// Packets that must decode before audio is accepted: random bytes can hold one valid frame
/// header, not eight consecutive decodable frames.
const MIN_PACKETS: usize = 8;

/// Packets read at most (including skipped ones of other tracks and failures).
const MAX_PACKETS: usize = 64;

/// Wall-clock budget of one validation; a decoder that is slower is not worth waiting for.
pub const VALIDATION_BUDGET: Duration = Duration::from_secs(10);

/// The container/encoding families plyr accepts, each with one canonical MIME type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MediaFormat {
    /// MPEG-1/2 layer III (`audio/mpeg`).
    Mp3,
    /// FLAC (`audio/flac`).
    Flac,
    /// RIFF WAVE (`audio/wav`).
    Wav,
    /// AIFF / AIFF-C (`audio/aiff`): browsers can't play it, so it gets a web rendition.
    Aiff,
    /// Ogg (Vorbis) (`audio/ogg`).
    Ogg,
    /// ISO MP4 / M4A: AAC or ALAC (`audio/mp4`).
    Mp4,
    /// Raw AAC in ADTS frames (`audio/aac`).
    Aac,
    /// JPEG (`image/jpeg`).
    Jpeg,
    /// PNG (`image/png`).
    Png,
    /// WebP (`image/webp`).
    Webp,
    /// GIF (`image/gif`).
    Gif,
}

impl MediaFormat {
    /// Every format, for table-driven callers.
    pub const ALL: [MediaFormat; 11] = [
        Self::Mp3,
        Self::Flac,
        Self::Wav,
        Self::Aiff,
        Self::Ogg,
        Self::Mp4,
        Self::Aac,
        Self::Jpeg,
        Self::Png,
        Self::Webp,
        Self::Gif,
    ];

    /// The canonical MIME type, the one stored and served.
    pub fn mime(self) -> &'static str {
        match self {
            Self::Mp3 => "audio/mpeg",
            Self::Flac => "audio/flac",
            Self::Wav => "audio/wav",
            Self::Aiff => "audio/aiff",
            Self::Ogg => "audio/ogg",
            Self::Mp4 => "audio/mp4",
            Self::Aac => "audio/aac",
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Webp => "image/webp",
            Self::Gif => "image/gif",
        }
    }

    /// Other names clients and PDSes use for the same format.
    fn aliases(self) -> &'static [&'static str] {
        match self {
            Self::Mp3 => &[
                "audio/mp3",
                "audio/mpeg3",
                "audio/x-mpeg",
                "audio/x-mp3",
                "audio/mpg",
            ],
            Self::Flac => &["audio/x-flac"],
            Self::Wav => &["audio/x-wav", "audio/vnd.wave", "audio/wave"],
            Self::Aiff => &["audio/x-aiff"],
            Self::Ogg => &["application/ogg", "audio/vorbis", "audio/x-vorbis+ogg"],
            Self::Mp4 => &["audio/x-m4a", "audio/m4a", "audio/mp4a-latm"],
            Self::Aac => &["audio/x-aac", "audio/aacp"],
            Self::Jpeg => &["image/jpg", "image/pjpeg"],
            Self::Png => &["image/x-png"],
            Self::Webp => &[],
            Self::Gif => &[],
        }
    }

    /// The format a MIME type names (canonical or alias, parameters and case ignored).
    pub fn from_mime(mime: &str) -> Option<MediaFormat> {
        let essence = mime_essence(mime);
        Self::ALL
            .into_iter()
            .find(|f| f.mime() == essence || f.aliases().contains(&essence.as_str()))
    }

    /// Whether this is cover art rather than audio.
    pub fn is_image(self) -> bool {
        matches!(self, Self::Jpeg | Self::Png | Self::Webp | Self::Gif)
    }

    /// Whether browsers generally can't play it, so it needs a web rendition.
    pub fn needs_web_rendition(self) -> bool {
        matches!(self, Self::Aiff)
    }
}

/// `Audio/MPEG; charset=x` -> `audio/mpeg`.
fn mime_essence(mime: &str) -> String {
    mime.split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// A declared Content-Type that says nothing about the format: the bytes decide.
fn is_generic(mime: &str) -> bool {
    matches!(
        mime_essence(mime).as_str(),
        "" | "application/octet-stream" | "*/*" | "audio/*" | "image/*"
    )
}

/// What validation learned about an audio blob.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioInfo {
    /// The decoder's short codec name (`mp3`, `flac`, `pcm_s16le`, `aac`, `alac`, ...).
    pub codec: String,
    /// Duration in milliseconds: from the container when it says, else estimated from size and
    /// bitrate.
    pub duration_ms: Option<u64>,
    /// Samples per second.
    pub sample_rate: Option<u32>,
    /// Channel count.
    pub channels: Option<u16>,
    /// Average bits per second over the whole blob (size / duration).
    pub bitrate: Option<u32>,
}

/// What validation learned about an image blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// A [`THUMBNAIL_SIDE`]-pixel square JPEG cut from the centre, to store as the
    /// [`THUMBNAIL_RENDITION`] rendition.
    pub thumbnail: Bytes,
}

/// The validation record of one blob.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaInfo {
    /// The format found in the bytes.
    pub format: MediaFormat,
    /// Format-specific details.
    pub details: MediaDetails,
}

/// Audio or image details.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaDetails {
    /// An audio blob.
    Audio(AudioInfo),
    /// An image blob.
    Image(ImageInfo),
}

impl MediaInfo {
    /// The canonical MIME type to store and serve.
    pub fn mime(&self) -> &'static str {
        self.format.mime()
    }
}

/// Why a blob was refused.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The declared Content-Type is neither a supported audio nor image format.
    #[error("unsupported content type {0:?}")]
    UnsupportedType(String),
    /// The bytes are not a supported audio or image format.
    #[error("not a supported audio or image file: {0}")]
    NotMedia(String),
    /// The bytes are a supported format, but not the one the Content-Type names.
    #[error("content type {declared:?} does not match the content ({detected})")]
    TypeMismatch {
        /// The Content-Type as declared.
        declared: String,
        /// The canonical MIME type of what the bytes are.
        detected: &'static str,
    },
    /// The container parsed but its audio does not decode.
    #[error("audio does not decode: {0}")]
    Corrupt(String),
    /// An image too large to decode within the limits.
    #[error("image exceeds the limits ({0})")]
    ImageTooLarge(String),
    /// Validation ran past [`VALIDATION_BUDGET`].
    #[error("validation took too long")]
    TimedOut,
}

/// The cause of a [`MediaError`], for callers that count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MediaErrorKind {
    /// Declared type not accepted.
    UnsupportedType,
    /// Content is not media.
    NotMedia,
    /// Declared type names another format.
    TypeMismatch,
    /// Container fine, audio broken.
    Corrupt,
    /// Image over the limits.
    ImageTooLarge,
    /// Over the time budget.
    TimedOut,
}

impl MediaError {
    /// The cause, without the details.
    pub fn kind(&self) -> MediaErrorKind {
        match self {
            Self::UnsupportedType(_) => MediaErrorKind::UnsupportedType,
            Self::NotMedia(_) => MediaErrorKind::NotMedia,
            Self::TypeMismatch { .. } => MediaErrorKind::TypeMismatch,
            Self::Corrupt(_) => MediaErrorKind::Corrupt,
            Self::ImageTooLarge(_) => MediaErrorKind::ImageTooLarge,
            Self::TimedOut => MediaErrorKind::TimedOut,
        }
    }
}

/// How many leading bytes of an upload declared as `declared` [`inspect`] needs: the whole
/// image (up to [`MAX_IMAGE_BYTES`]) for cover art, [`AUDIO_PREFIX_BYTES`] otherwise.
pub fn prefix_len(declared: Option<&str>) -> usize {
    let image = declared.is_some_and(|d| mime_essence(d).starts_with("image/"));
    if image {
        usize::try_from(MAX_IMAGE_BYTES).unwrap_or(usize::MAX)
    } else {
        AUDIO_PREFIX_BYTES
    }
}

/// Refuses a declared Content-Type that can never pass, before any byte is read.
pub fn check_declared(declared: Option<&str>) -> Result<(), MediaError> {
    match declared {
        Some(d) if !is_generic(d) && MediaFormat::from_mime(d).is_none() => {
            Err(MediaError::UnsupportedType(d.to_owned()))
        }
        _ => Ok(()),
    }
}

/// Validates a blob from its first bytes (`prefix`, at most [`prefix_len`] of them) and its
/// full size, on a blocking thread under [`VALIDATION_BUDGET`].
pub async fn inspect(
    prefix: Bytes,
    total_size: u64,
    declared: Option<String>,
) -> Result<MediaInfo, MediaError> {
    let deadline = Instant::now() + VALIDATION_BUDGET;
    let work = tokio::task::spawn_blocking(move || {
        inspect_blocking(prefix, total_size, declared.as_deref(), deadline)
    });
    // The blocking task also checks the deadline itself, so a timeout here does not leave it
    // decoding for long.
    match tokio::time::timeout(VALIDATION_BUDGET, work).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => Err(MediaError::NotMedia(format!("decoder failed: {join}"))),
        Err(_) => Err(MediaError::TimedOut),
    }
}

/// [`inspect`] on the calling thread, stopping at `deadline`.
pub fn inspect_blocking(
    prefix: Bytes,
    total_size: u64,
    declared: Option<&str>,
    deadline: Instant,
) -> Result<MediaInfo, MediaError> {
    check_declared(declared)?;
    let sniffed = sniff(&prefix);
    let format = match sniffed {
        Some(format) => format,
        None => return Err(MediaError::NotMedia("unrecognised leading bytes".into())),
    };
    if let Some(d) = declared.filter(|d| !is_generic(d)) {
        let named = MediaFormat::from_mime(d);
        if named != Some(format) {
            return Err(MediaError::TypeMismatch {
                declared: d.to_owned(),
                detected: format.mime(),
            });
        }
    }
    let details = if format.is_image() {
        MediaDetails::Image(inspect_image(&prefix, total_size, format)?)
    } else {
        MediaDetails::Audio(inspect_audio(prefix, total_size, format, deadline)?)
    };
    Ok(MediaInfo { format, details })
}

/// The format the leading bytes announce. MP3 has no fixed magic: an ID3v2 tag or an MPEG
/// audio frame sync; the decoder then has to agree.
fn sniff(b: &[u8]) -> Option<MediaFormat> {
    let at = |offset: usize, magic: &[u8]| b.get(offset..offset + magic.len()) == Some(magic);
    if at(0, b"RIFF") && at(8, b"WAVE") {
        return Some(MediaFormat::Wav);
    }
    if at(0, b"FORM") && (at(8, b"AIFF") || at(8, b"AIFC")) {
        return Some(MediaFormat::Aiff);
    }
    if at(0, b"fLaC") {
        return Some(MediaFormat::Flac);
    }
    if at(0, b"OggS") {
        return Some(MediaFormat::Ogg);
    }
    if at(4, b"ftyp") {
        return Some(MediaFormat::Mp4);
    }
    if at(0, b"\xFF\xD8\xFF") {
        return Some(MediaFormat::Jpeg);
    }
    if at(0, b"\x89PNG\r\n\x1a\n") {
        return Some(MediaFormat::Png);
    }
    if at(0, b"RIFF") && at(8, b"WEBP") {
        return Some(MediaFormat::Webp);
    }
    if at(0, b"GIF87a") || at(0, b"GIF89a") {
        return Some(MediaFormat::Gif);
    }
    if at(0, b"ID3") {
        // A tagged file is MP3 unless the frames after the tag say ADTS; the decoder decides.
        return Some(MediaFormat::Mp3);
    }
    match b {
        // ADTS: 12-bit sync, layer bits 00.
        [0xFF, second, ..] if second & 0xF6 == 0xF0 => Some(MediaFormat::Aac),
        // MPEG audio: 11-bit sync, layer III (bits 01).
        [0xFF, second, ..] if second & 0xE0 == 0xE0 && second & 0x06 == 0x02 => {
            Some(MediaFormat::Mp3)
        }
        _ => None,
    }
}

fn inspect_audio(
    prefix: Bytes,
    total_size: u64,
    format: MediaFormat,
    deadline: Instant,
) -> Result<AudioInfo, MediaError> {
    let prefix_len = u64::try_from(prefix.len()).unwrap_or(u64::MAX);
    let whole = prefix_len >= total_size;
    let source = MediaSourceStream::new(
        Box::new(Cursor::new(prefix)),
        MediaSourceStreamOptions::default(),
    );
    let mut hint = Hint::new();
    hint.mime_type(format.mime());
    let probed = symphonia::default::get_probe()
        .format(
            &hint,
            source,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .map_err(|e| MediaError::NotMedia(format!("container: {e}")))?;
    let mut reader = probed.format;
    let track = reader
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| MediaError::NotMedia("no audio track".into()))?;
    let track_id = track.id;
    let params = track.codec_params.clone();
    let codec = symphonia::default::get_codecs()
        .get_codec(params.codec)
        .map(|d| d.short_name.to_owned())
        .ok_or_else(|| MediaError::NotMedia("unsupported codec".into()))?;
    let mut decoder = symphonia::default::get_codecs()
        .make(&params, &DecoderOptions::default())
        .map_err(|e| MediaError::NotMedia(format!("codec: {e}")))?;

    let mut decoded = 0usize;
    let mut failed = 0usize;
    let mut sample_rate = params.sample_rate;
    let mut channels = params.channels.and_then(|c| u16::try_from(c.count()).ok());
    let mut ended = false;
    // Decoded packets' bytes and duration (in the track's time base): the average bitrate of
    // streams whose container gives no frame count (plain MP3, ADTS).
    let (mut packet_bytes, mut packet_ticks) = (0u64, 0u64);
    for _ in 0..MAX_PACKETS {
        if decoded >= MIN_PACKETS {
            break;
        }
        if Instant::now() > deadline {
            return Err(MediaError::TimedOut);
        }
        let packet = match reader.next_packet() {
            Ok(packet) => packet,
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                ended = true;
                break;
            }
            Err(e) => return Err(MediaError::Corrupt(format!("packet {decoded}: {e}"))),
        };
        if packet.track_id() != track_id {
            continue;
        }
        match decoder.decode(&packet) {
            Ok(buffer) => {
                let spec = buffer.spec();
                sample_rate = sample_rate.or(Some(spec.rate));
                channels = channels.or_else(|| u16::try_from(spec.channels.count()).ok());
                decoded += 1;
                packet_bytes =
                    packet_bytes.saturating_add(u64::try_from(packet.data.len()).unwrap_or(0));
                packet_ticks = packet_ticks.saturating_add(packet.dur);
            }
            // The first MP3 frames after a cut can reference a bit reservoir that isn't there.
            Err(SymphoniaError::DecodeError(_)) => failed += 1,
            Err(e) => return Err(MediaError::Corrupt(format!("decoder: {e}"))),
        }
    }
    // Fewer packets than MIN_PACKETS pass only when the whole file was seen and it ended.
    let enough = decoded >= MIN_PACKETS || (ended && whole && decoded > 0);
    if !enough || failed * 4 > decoded {
        return Err(MediaError::Corrupt(format!(
            "{decoded} packets decoded, {failed} failed"
        )));
    }
    let ms_of = |ticks: u64| -> Option<u64> {
        match (params.time_base, sample_rate) {
            (Some(tb), _) if tb.denom > 0 => Some(
                ticks
                    .saturating_mul(u64::from(tb.numer))
                    .saturating_mul(1000)
                    / u64::from(tb.denom),
            ),
            (None, Some(rate)) if rate > 0 => Some(ticks.saturating_mul(1000) / u64::from(rate)),
            _ => None,
        }
    };
    let declared_ms = params.n_frames.and_then(ms_of).filter(|ms| *ms > 0);
    let duration_ms = declared_ms.or_else(|| {
        let sampled_ms = ms_of(packet_ticks).filter(|ms| *ms > 0)?;
        // size / (bytes per ms of the decoded packets): tags make it a slight overestimate.
        Some(total_size.saturating_mul(sampled_ms) / packet_bytes.max(1))
    });
    let bitrate = duration_ms
        .filter(|ms| *ms > 0)
        .and_then(|ms| u32::try_from(total_size.saturating_mul(8_000) / ms).ok());
    Ok(AudioInfo {
        codec,
        duration_ms,
        sample_rate,
        channels,
        bitrate,
    })
}

fn inspect_image(
    bytes: &[u8],
    total_size: u64,
    format: MediaFormat,
) -> Result<ImageInfo, MediaError> {
    if total_size > MAX_IMAGE_BYTES || u64::try_from(bytes.len()).unwrap_or(u64::MAX) < total_size {
        return Err(MediaError::ImageTooLarge(format!(
            "{total_size} bytes, at most {MAX_IMAGE_BYTES}"
        )));
    }
    let image_format = match format {
        MediaFormat::Jpeg => image::ImageFormat::Jpeg,
        MediaFormat::Png => image::ImageFormat::Png,
        MediaFormat::Webp => image::ImageFormat::WebP,
        _ => image::ImageFormat::Gif,
    };
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_DIMENSION);
    limits.max_image_height = Some(MAX_IMAGE_DIMENSION);
    limits.max_alloc = Some(MAX_IMAGE_ALLOC);
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), image_format);
    reader.limits(limits);
    let decoded = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(l) => MediaError::ImageTooLarge(l.to_string()),
        other => MediaError::NotMedia(format!("image: {other}")),
    })?;
    let (width, height) = (decoded.width(), decoded.height());
    let square = decoded
        .resize_to_fill(
            THUMBNAIL_SIDE,
            THUMBNAIL_SIDE,
            image::imageops::FilterType::Triangle,
        )
        .to_rgb8();
    let mut thumbnail = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut thumbnail, 85)
        .encode_image(&square)
        .map_err(|e| MediaError::NotMedia(format!("thumbnail: {e}")))?;
    Ok(ImageInfo {
        width,
        height,
        thumbnail: Bytes::from(thumbnail),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mime_names_and_aliases() {
        let cases = [
            ("audio/mpeg", Some(MediaFormat::Mp3)),
            ("audio/mp3", Some(MediaFormat::Mp3)),
            ("AUDIO/MPEG; rate=44100", Some(MediaFormat::Mp3)),
            ("audio/wav", Some(MediaFormat::Wav)),
            ("audio/x-wav", Some(MediaFormat::Wav)),
            ("audio/vnd.wave", Some(MediaFormat::Wav)),
            ("audio/x-flac", Some(MediaFormat::Flac)),
            ("audio/x-aiff", Some(MediaFormat::Aiff)),
            ("audio/x-m4a", Some(MediaFormat::Mp4)),
            ("image/jpg", Some(MediaFormat::Jpeg)),
            ("image/webp", Some(MediaFormat::Webp)),
            ("audio/opus", None),
            ("video/mp4", None),
            ("", None),
        ];
        for (mime, want) in cases {
            assert_eq!(MediaFormat::from_mime(mime), want, "{mime:?}");
        }
        for format in MediaFormat::ALL {
            assert_eq!(MediaFormat::from_mime(format.mime()), Some(format));
        }
    }

    #[test]
    fn sniffs_leading_bytes() {
        let cases: [(&[u8], Option<MediaFormat>); 12] = [
            (b"RIFF\0\0\0\0WAVEfmt ", Some(MediaFormat::Wav)),
            (b"RIFF\0\0\0\0WEBPVP8 ", Some(MediaFormat::Webp)),
            (b"FORM\0\0\0\0AIFC", Some(MediaFormat::Aiff)),
            (b"fLaC\0", Some(MediaFormat::Flac)),
            (b"OggS\0", Some(MediaFormat::Ogg)),
            (b"\0\0\0\x20ftypM4A ", Some(MediaFormat::Mp4)),
            (b"ID3\x04\0", Some(MediaFormat::Mp3)),
            (b"\xFF\xFB\x90\x00", Some(MediaFormat::Mp3)),
            (b"\xFF\xF1\x50\x80", Some(MediaFormat::Aac)),
            (b"\xFF\xD8\xFF\xE0", Some(MediaFormat::Jpeg)),
            (b"%PDF-1.7", None),
            (b"", None),
        ];
        for (bytes, want) in cases {
            assert_eq!(sniff(bytes), want, "{bytes:?}");
        }
    }

    #[test]
    fn declared_types_checked_up_front() {
        assert!(check_declared(None).is_ok());
        assert!(check_declared(Some("application/octet-stream")).is_ok());
        assert!(check_declared(Some("audio/x-wav")).is_ok());
        let refused = check_declared(Some("text/html")).map_err(|e| e.kind());
        assert_eq!(refused, Err(MediaErrorKind::UnsupportedType));
        assert_eq!(prefix_len(Some("image/png")), 16 << 20);
        assert_eq!(prefix_len(Some("audio/flac")), AUDIO_PREFIX_BYTES);
    }
}

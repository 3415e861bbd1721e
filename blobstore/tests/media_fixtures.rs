//! Media fixtures for validation tests: the committed compressed tones (see
//! `fixtures/README.md`) and generators for WAV, AIFF and images. Also included by the
//! appview's blob tests.

#![allow(dead_code)]

use std::io::Cursor;

use bytes::Bytes;

/// One second of 440 Hz MP3 (MPEG-2 layer III, 22.05 kHz mono, 32 kb/s).
pub const MP3: &[u8] = include_bytes!("fixtures/tone.mp3");
/// The same tone as FLAC, 1024-sample frames.
pub const FLAC: &[u8] = include_bytes!("fixtures/tone.flac");
/// The same tone as AAC in a faststart M4A.
pub const M4A_AAC: &[u8] = include_bytes!("fixtures/tone.m4a");
/// The same tone as ALAC in a faststart M4A.
pub const M4A_ALAC: &[u8] = include_bytes!("fixtures/tone-alac.m4a");
/// The same tone as Ogg Vorbis.
pub const OGG: &[u8] = include_bytes!("fixtures/tone.ogg");

/// Sample rate of the generated PCM fixtures.
pub const RATE: u32 = 22_050;

/// `frames` samples of a 440 Hz sine, 16-bit mono.
fn sine(frames: u32) -> Vec<i16> {
    (0..frames)
        .map(|n| {
            let t = f64::from(n) / f64::from(RATE);
            // Amplitude 8000 fits i16; the float-to-int cast saturates anyway.
            ((t * 440.0 * std::f64::consts::TAU).sin() * 8000.0) as i16
        })
        .collect()
}

/// A canonical 16-bit mono PCM WAV of `frames` samples, written by hand.
pub fn wav(frames: u32) -> Bytes {
    let data: Vec<u8> = sine(frames).iter().flat_map(|s| s.to_le_bytes()).collect();
    let data_len = u32::try_from(data.len()).unwrap_or(u32::MAX);
    let mut out = Vec::new();
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&RATE.to_le_bytes());
    out.extend_from_slice(&(RATE * 2).to_le_bytes()); // byte rate
    out.extend_from_slice(&2u16.to_le_bytes()); // block align
    out.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    out.extend_from_slice(&data);
    Bytes::from(out)
}

/// A 16-bit mono AIFF of `frames` samples, written by hand (big-endian PCM, 80-bit rate).
pub fn aiff(frames: u32) -> Bytes {
    let data: Vec<u8> = sine(frames).iter().flat_map(|s| s.to_be_bytes()).collect();
    let data_len = u32::try_from(data.len()).unwrap_or(u32::MAX);
    let mut comm = Vec::new();
    comm.extend_from_slice(&1i16.to_be_bytes());
    comm.extend_from_slice(&frames.to_be_bytes());
    comm.extend_from_slice(&16i16.to_be_bytes());
    // IEEE 754 80-bit extended: 22050 = 1.x * 2^14.
    let exponent: u16 = 16_383 + 14;
    let mantissa: u64 = u64::from(RATE) << (63 - 14);
    comm.extend_from_slice(&exponent.to_be_bytes());
    comm.extend_from_slice(&mantissa.to_be_bytes());
    let mut out = Vec::new();
    out.extend_from_slice(b"FORM");
    out.extend_from_slice(&(4 + 8 + 18 + 8 + 8 + data_len).to_be_bytes());
    out.extend_from_slice(b"AIFF");
    out.extend_from_slice(b"COMM");
    out.extend_from_slice(&18u32.to_be_bytes());
    out.extend_from_slice(&comm);
    out.extend_from_slice(b"SSND");
    out.extend_from_slice(&(8 + data_len).to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes()); // offset
    out.extend_from_slice(&0u32.to_be_bytes()); // block size
    out.extend_from_slice(&data);
    Bytes::from(out)
}

/// A `width` x `height` gradient encoded as `format` by the image crate.
pub fn image(width: u32, height: u32, format: image::ImageFormat) -> Bytes {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        let r = u8::try_from(x % 256).unwrap_or(0);
        let g = u8::try_from(y % 256).unwrap_or(0);
        image::Rgb([r, g, 128])
    });
    let mut out = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut out, format)
        .unwrap_or_else(|e| panic!("encode {format:?}: {e}"));
    Bytes::from(out.into_inner())
}

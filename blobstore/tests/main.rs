//! Integration tests of the blob store: one binary (one link step on 2 cores).

/// Backends under test, a real s3s-fs server, and byte helpers.
mod harness;
/// Upload validation: formats, aliases, refusals, thumbnails, on both backends.
mod media;
/// Audio and image fixtures (also used by the appview's blob tests).
mod media_fixtures;
/// S3 (a real s3s-fs) killed mid-upload and started again: clean failure, then recovery.
mod s3_outage;
/// Behaviour specific to one backend (sweeping, presigned URLs, multipart copy, layout).
mod specific;
/// The shared suite, run against both backends.
mod suite;
/// Web renditions by ffmpeg, and failures that leave the original.
mod transcode;

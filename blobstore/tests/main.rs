//! Integration tests of the blob store: one binary (one link step on 2 cores).

/// Backends under test, a real s3s-fs server, and byte helpers.
mod harness;
/// Behaviour specific to one backend (sweeping, presigned URLs, multipart copy, layout).
mod specific;
/// The shared suite, run against both backends.
mod suite;

//! Content-addressed blob storage for audio and cover art, keyed by CIDv1 (raw, sha2-256).
//!
//! This crate is a placeholder in the workspace layout: the blob service (local folder and
//! S3 backends, streaming uploads, mirroring and garbage collection) is tracked by issue #5.

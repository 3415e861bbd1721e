//! Integration tests of the blob store: one binary (one link step on 2 cores).

/// Generates one test per backend (folder, and S3 on a real s3s-fs) for each named function
/// of the module it is used in; each takes a fresh [`harness::Env`].
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod fs {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() -> anyhow::Result<()> {
                    super::$name(crate::harness::Env::new(crate::harness::Kind::Fs).await?).await
                }
            )*
        }
        mod s3 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() -> anyhow::Result<()> {
                    super::$name(crate::harness::Env::new(crate::harness::Kind::S3).await?).await
                }
            )*
        }
    };
}

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

//! Content-addressed blob storage for plyr.fm audio and cover art, keyed by CIDv1 (raw codec,
//! sha2-256): the same CID a PDS gives a blob, so a record's `audioBlob.ref` can be checked
//! against our copy.
//!
//! Data flow: an upload body (a stream of byte chunks) goes to [`BlobStore::put_stream`], which
//! hashes each chunk with a [`CidHasher`] while a [`BlobBackend`] writes it to a temp object
//! ([`TempUpload`]). When the body ends within the limits, the temp object is promoted to its
//! final key, [`BlobKey::Blob`]; content already stored is not written twice. Reads go through
//! [`BlobStore::get_range`] and come back as a stream. Two backends: [`FsBackend`] (a local
//! folder, the default) and [`S3Backend`] (S3, R2 and other S3-compatible stores).
//! [`BlobStore::put_media`] does the same for uploads, keeping a bounded prefix of the body
//! that [`inspect`] validates (real format, declared type, decodable audio, image limits)
//! before the temp object is promoted. Renditions (transcodes, thumbnails) live under [`BlobKey::Rendition`], derived from the
//! source CID. A failed or cancelled upload leaves at most a temp object, which
//! [`BlobStore::sweep_temp`] removes; [`BlobStore::list`] feeds garbage collection, which
//! decides by reference counts kept elsewhere.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use bytes::Bytes;
//! use plyr_blobstore::{BlobStore, FsBackend, PutLimits};
//!
//! let store = BlobStore::new(FsBackend::open("./data/blobs").await?);
//! let body = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from("hello world"))]);
//! let stored = store.put_stream(body, PutLimits::default()).await?;
//! assert_eq!(
//!     stored.cid.to_string(),
//!     "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
//! );
//! # Ok(())
//! # }
//! ```

mod backend;
mod cid;
mod error;
mod fs;
mod key;
mod media;
mod range;
mod s3;
mod store;
mod transcode;

pub use backend::{
    BlobBackend, BlobRead, ByteChunks, ListScope, ListedObject, ObjectMeta, Promotion, TempUpload,
};
pub use cid::{BlobCid, CidHasher, CidParseError};
pub use error::{BoxError, PutError, PutErrorKind, StoreError, StoreErrorKind};
pub use fs::{DEFAULT_BLOB_DIR, FsBackend};
pub use key::{BlobKey, KeyError, RenditionName};
pub use media::{
    AUDIO_PREFIX_BYTES, AudioInfo, ImageInfo, MAX_IMAGE_BYTES, MediaDetails, MediaError,
    MediaErrorKind, MediaFormat, MediaInfo, THUMBNAIL_RENDITION, THUMBNAIL_SIDE, VALIDATION_BUDGET,
    check_declared, inspect, inspect_blocking, prefix_len,
};
pub use range::ByteRange;
pub use s3::{DEFAULT_PART_SIZE, S3Backend, S3Config};
pub use store::{
    BlobStore, DEFAULT_MAX_UPLOAD_BYTES, PendingMedia, PutLimits, StoredBlob, StoredRendition,
    ValidatedBlob,
};
pub use transcode::{
    TranscodeError, TranscodeLimits, WEB_RENDITION, WEB_RENDITION_MIME, transcode_web,
};

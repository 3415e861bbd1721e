//! The `BlobBackend` trait every storage backend implements, and the value types it speaks:
//! temp uploads, reads with a range, object metadata and listings.

use std::fmt;
use std::ops::Range;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;

use crate::error::StoreError;
use crate::key::BlobKey;
use crate::range::ByteRange;

/// A stream of an object's bytes, in chunks.
pub type ByteChunks = BoxStream<'static, std::io::Result<Bytes>>;

/// Object storage addressed by [`BlobKey`]. Object-safe, so a `BlobStore` can hold either
/// backend chosen at run time.
///
/// Writes go through a [`TempUpload`]: bytes stream into a temp object that only becomes
/// visible under its key when [`TempUpload::promote`] is called with the finished hash.
pub trait BlobBackend: Send + Sync + fmt::Debug {
    /// Starts a temp object for new bytes.
    fn begin(&self) -> BoxFuture<'_, Result<Box<dyn TempUpload>, StoreError>>;

    /// Reads an object, or the part of it selected by `range`. `Ok(None)` when absent.
    fn get<'a>(
        &'a self,
        key: &'a BlobKey,
        range: Option<ByteRange>,
    ) -> BoxFuture<'a, Result<Option<BlobRead>, StoreError>>;

    /// Size and modification time of an object, or `None` when absent.
    fn head<'a>(
        &'a self,
        key: &'a BlobKey,
    ) -> BoxFuture<'a, Result<Option<ObjectMeta>, StoreError>>;

    /// Removes an object. Removing an absent object succeeds.
    fn delete<'a>(&'a self, key: &'a BlobKey) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Every object in `scope`, in no particular order. Names the backend does not recognise
    /// are skipped with a warning.
    fn list(&self, scope: ListScope) -> BoxStream<'_, Result<ListedObject, StoreError>>;

    /// Removes temp objects (and, on S3, unfinished multipart uploads) started before
    /// `older_than`: the leftovers of a process that died mid-upload. Returns how many.
    fn sweep_temp(&self, older_than: SystemTime) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// A URL a client may be redirected to for reading `key` directly, valid for `ttl` and
    /// answering with `content_type` where the backend can set it; `None` when the backend
    /// cannot serve clients itself (the local folder).
    fn presign_get<'a>(
        &'a self,
        key: &'a BlobKey,
        ttl: Duration,
        content_type: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        let _ = (key, ttl, content_type);
        Box::pin(async { Ok(None) })
    }
}

/// Bytes being written to a temp object. Dropping it without [`promote`](Self::promote) or
/// [`abort`](Self::abort) leaves at most a temp object for [`BlobBackend::sweep_temp`].
pub trait TempUpload: Send {
    /// Appends a chunk.
    fn write(&mut self, chunk: Bytes) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Makes the complete temp object visible under `key` and removes the temp object.
    /// For a content-addressed key that already exists, the temp object is discarded and the
    /// existing object kept ([`Promotion::AlreadyPresent`]); a rendition is replaced.
    fn promote(self: Box<Self>, key: BlobKey) -> BoxFuture<'static, Result<Promotion, StoreError>>;

    /// Discards the temp object.
    fn abort(self: Box<Self>) -> BoxFuture<'static, Result<(), StoreError>>;
}

/// What [`TempUpload::promote`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Promotion {
    /// The object now exists under its key because of this upload.
    Created,
    /// An object with this content address already existed; nothing was written.
    AlreadyPresent,
}

/// An open read of an object.
pub struct BlobRead {
    /// The object's full size.
    pub total_size: u64,
    /// The half-open byte range `chunks` yields (the whole object when no range was asked).
    pub range: Range<u64>,
    /// The bytes of `range`.
    pub chunks: ByteChunks,
}

impl fmt::Debug for BlobRead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobRead")
            .field("total_size", &self.total_size)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

/// Metadata of a stored object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Size in bytes.
    pub size: u64,
    /// When the object was last written; the start of a GC grace period.
    pub modified: SystemTime,
}

/// Which objects [`BlobBackend::list`] yields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListScope {
    /// Original blobs, keyed by their own CID.
    Blobs,
    /// Derived renditions.
    Renditions,
}

/// One object found by [`BlobBackend::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    /// Its key.
    pub key: BlobKey,
    /// Its metadata.
    pub meta: ObjectMeta,
}

/// A name for a temp object that no other upload, in this process or another, will pick:
/// per-process random bits (std's `RandomState` seeds from the OS), the pid and a counter.
pub(crate) fn temp_name() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};

    static SALT: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let salt = *SALT.get_or_init(|| {
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{salt:016x}-{:x}-{n:x}", std::process::id())
}

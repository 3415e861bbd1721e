//! `BlobStore`: streams uploads into a backend while hashing them, enforces limits, and
//! promotes the temp object under its CID only once the whole body has arrived.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};

use crate::backend::{
    BlobBackend, BlobRead, ListScope, ListedObject, ObjectMeta, Promotion, TempUpload,
};
use crate::cid::{BlobCid, CidHasher};
use crate::error::{BoxError, PutError, StoreError};
use crate::key::{BlobKey, RenditionName};
use crate::media::{self, MediaDetails, MediaInfo};
use crate::range::ByteRange;

/// Default upload cap: 2 GiB. The lexicon's 100 MiB is a PDS blob limit; lossless originals
/// are larger.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 2 << 30;

/// Limits and expectations for one upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PutLimits {
    /// Largest accepted body in bytes; one byte more fails with [`PutError::TooLarge`].
    pub max_bytes: u64,
    /// The CID the bytes must hash to (a mirrored `audioBlob.ref`); a mismatch stores nothing.
    pub expected: Option<BlobCid>,
}

impl Default for PutLimits {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            expected: None,
        }
    }
}

impl PutLimits {
    /// Limits with the given byte cap and no expected CID.
    pub fn max_bytes(max_bytes: u64) -> Self {
        Self {
            max_bytes,
            expected: None,
        }
    }

    /// The same limits, also requiring the bytes to hash to `cid`.
    pub fn expecting(self, cid: BlobCid) -> Self {
        Self {
            expected: Some(cid),
            ..self
        }
    }
}

/// A blob that is now stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredBlob {
    /// Its content address.
    pub cid: BlobCid,
    /// Its size in bytes.
    pub size: u64,
    /// Whether this upload wrote it or it was already there.
    pub promotion: Promotion,
}

/// A rendition that is now stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRendition {
    /// Where it is stored (derived from the source CID).
    pub key: BlobKey,
    /// The CID of the rendition's own bytes, usable as an `ETag`.
    pub cid: BlobCid,
    /// Its size in bytes.
    pub size: u64,
}

/// An upload that passed validation and is now stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedBlob {
    /// The stored blob.
    pub blob: StoredBlob,
    /// What validation found: format, canonical MIME type, audio or image details.
    pub media: MediaInfo,
    /// The cover thumbnail rendition, for images.
    pub thumbnail: Option<StoredRendition>,
}

/// A validated upload waiting in a temp object: [`promote`](Self::promote) it or
/// [`abort`](Self::abort) it.
pub struct PendingMedia {
    store: BlobStore,
    temp: Box<dyn TempUpload>,
    cid: BlobCid,
    size: u64,
    media: MediaInfo,
}

impl std::fmt::Debug for PendingMedia {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingMedia")
            .field("cid", &self.cid)
            .field("size", &self.size)
            .field("media", &self.media.format)
            .finish_non_exhaustive()
    }
}

impl PendingMedia {
    /// The CID of the bytes received.
    pub fn cid(&self) -> BlobCid {
        self.cid
    }

    /// Their size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// What validation found.
    pub fn media(&self) -> &MediaInfo {
        &self.media
    }

    /// Makes the blob visible under its CID (no second copy if it is already there) and
    /// stores an image's thumbnail rendition.
    pub async fn promote(self) -> Result<ValidatedBlob, PutError> {
        let PendingMedia {
            store,
            temp,
            cid,
            size,
            media,
        } = self;
        let promotion = temp.promote(BlobKey::Blob(cid)).await?;
        let blob = StoredBlob {
            cid,
            size,
            promotion,
        };
        let thumbnail = match &media.details {
            MediaDetails::Image(image) => {
                let name: RenditionName =
                    media::THUMBNAIL_RENDITION
                        .parse()
                        .map_err(|e: crate::key::KeyError| {
                            StoreError::Config(format!("thumbnail rendition name: {e}"))
                        })?;
                let body =
                    futures_util::stream::iter([Ok::<_, std::io::Error>(image.thumbnail.clone())]);
                Some(
                    store
                        .put_rendition(cid, name, body, PutLimits::default())
                        .await?,
                )
            }
            MediaDetails::Audio(_) => None,
        };
        tracing::debug!(%cid, size, ?promotion, mime = media.mime(), "media stored");
        Ok(ValidatedBlob {
            blob,
            media,
            thumbnail,
        })
    }

    /// Discards the temp object.
    pub async fn abort(self) {
        discard(self.temp).await;
    }
}

/// Content-addressed storage over a [`BlobBackend`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct BlobStore {
    backend: Arc<dyn BlobBackend>,
}

impl BlobStore {
    /// A store over `backend`.
    pub fn new(backend: impl BlobBackend + 'static) -> Self {
        Self {
            backend: Arc::new(backend),
        }
    }

    /// A store over a shared backend.
    pub fn from_arc(backend: Arc<dyn BlobBackend>) -> Self {
        Self { backend }
    }

    /// The backend, for operations the store does not wrap.
    pub fn backend(&self) -> &dyn BlobBackend {
        self.backend.as_ref()
    }

    /// Stores `body` under the CID of its bytes, in constant memory. An upload of content that
    /// is already stored writes no second copy. On any error the temp object is removed.
    #[tracing::instrument(skip_all, fields(max_bytes = limits.max_bytes))]
    pub async fn put_stream<S, E>(&self, body: S, limits: PutLimits) -> Result<StoredBlob, PutError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<BoxError>,
    {
        let (temp, cid, size) = self.receive(body, limits, None).await?;
        let promotion = temp.promote(BlobKey::Blob(cid)).await?;
        tracing::debug!(%cid, size, ?promotion, "blob stored");
        Ok(StoredBlob {
            cid,
            size,
            promotion,
        })
    }

    /// Like [`put_stream`](Self::put_stream), but the content must be supported audio or cover
    /// art of the `declared` Content-Type (aliases and generic types accepted); see
    /// [`receive_media`](Self::receive_media). An image also gets its square thumbnail stored
    /// as a rendition.
    pub async fn put_media<S, E>(
        &self,
        body: S,
        limits: PutLimits,
        declared: Option<&str>,
    ) -> Result<ValidatedBlob, PutError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<BoxError>,
    {
        self.receive_media(body, limits, declared)
            .await?
            .promote()
            .await
    }

    /// Streams `body` to a temp object, keeping a bounded prefix ([`media::prefix_len`]) that
    /// [`media::inspect`] validates once the body is complete. Nothing is visible until the
    /// caller [`promote`](PendingMedia::promote)s the result, e.g. under a database row lock
    /// that keeps garbage collection away; dropping it leaves a temp object for
    /// [`sweep_temp`](Self::sweep_temp), [`PendingMedia::abort`] removes it.
    #[tracing::instrument(skip_all, fields(max_bytes = limits.max_bytes, declared))]
    pub async fn receive_media<S, E>(
        &self,
        body: S,
        limits: PutLimits,
        declared: Option<&str>,
    ) -> Result<PendingMedia, PutError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<BoxError>,
    {
        media::check_declared(declared)?;
        let mut prefix = Prefix::new(media::prefix_len(declared));
        let (temp, cid, size) = self.receive(body, limits, Some(&mut prefix)).await?;
        match media::inspect(prefix.into_bytes(), size, declared.map(str::to_owned)).await {
            Ok(media) => Ok(PendingMedia {
                store: self.clone(),
                temp,
                cid,
                size,
                media,
            }),
            Err(e) => {
                discard(temp).await;
                Err(e.into())
            }
        }
    }

    /// Stores (or replaces) the rendition `name` of `source`, e.g. a web transcode.
    #[tracing::instrument(skip_all, fields(%source, %name))]
    pub async fn put_rendition<S, E>(
        &self,
        source: BlobCid,
        name: RenditionName,
        body: S,
        limits: PutLimits,
    ) -> Result<StoredRendition, PutError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<BoxError>,
    {
        let (temp, cid, size) = self.receive(body, limits, None).await?;
        let key = BlobKey::rendition(source, name);
        temp.promote(key.clone()).await?;
        Ok(StoredRendition { key, cid, size })
    }

    /// Streams `body` into a temp object, hashing as it goes; checks the limits.
    async fn receive<S, E>(
        &self,
        body: S,
        limits: PutLimits,
        prefix: Option<&mut Prefix>,
    ) -> Result<(Box<dyn TempUpload>, BlobCid, u64), PutError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<BoxError>,
    {
        let mut temp = self.backend.begin().await?;
        let mut hasher = CidHasher::new();
        if let Err(e) = feed(temp.as_mut(), &mut hasher, body, limits.max_bytes, prefix).await {
            discard(temp).await;
            return Err(e);
        }
        let size = hasher.len();
        let cid = hasher.finish();
        if let Some(expected) = limits.expected.filter(|expected| *expected != cid) {
            discard(temp).await;
            return Err(PutError::CidMismatch {
                expected,
                actual: cid,
            });
        }
        Ok((temp, cid, size))
    }

    /// Reads an object, or `range` of it; `Ok(None)` when absent. An unsatisfiable range is
    /// [`StoreError::RangeNotSatisfiable`].
    pub async fn get_range(
        &self,
        key: impl Into<BlobKey>,
        range: Option<ByteRange>,
    ) -> Result<Option<BlobRead>, StoreError> {
        self.backend.get(&key.into(), range).await
    }

    /// Size and modification time, or `None` when absent.
    pub async fn head(&self, key: impl Into<BlobKey>) -> Result<Option<ObjectMeta>, StoreError> {
        self.backend.head(&key.into()).await
    }

    /// Whether the object is stored.
    pub async fn exists(&self, key: impl Into<BlobKey>) -> Result<bool, StoreError> {
        Ok(self.head(key).await?.is_some())
    }

    /// Removes an object; removing an absent one succeeds. Reference counting is the caller's
    /// job: this deletes unconditionally.
    pub async fn delete(&self, key: impl Into<BlobKey>) -> Result<(), StoreError> {
        self.backend.delete(&key.into()).await
    }

    /// Every stored object in `scope`.
    pub fn list(&self, scope: ListScope) -> BoxStream<'_, Result<ListedObject, StoreError>> {
        self.backend.list(scope)
    }

    /// Removes temp objects older than `older_than` left by interrupted uploads.
    pub async fn sweep_temp(&self, older_than: SystemTime) -> Result<u64, StoreError> {
        self.backend.sweep_temp(older_than).await
    }

    /// A URL valid for `ttl` that serves the object directly (with `content_type` where the
    /// backend can set it), when the backend has one: the target of a redirect.
    pub async fn presign_get(
        &self,
        key: impl Into<BlobKey>,
        ttl: Duration,
        content_type: Option<&str>,
    ) -> Result<Option<String>, StoreError> {
        self.backend
            .presign_get(&key.into(), ttl, content_type)
            .await
    }
}

/// Copies `body` into `temp`, hashing each chunk, stopping at the first byte over `max_bytes`.
async fn feed<S, E>(
    temp: &mut dyn TempUpload,
    hasher: &mut CidHasher,
    body: S,
    max_bytes: u64,
    mut prefix: Option<&mut Prefix>,
) -> Result<(), PutError>
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: Into<BoxError>,
{
    let mut body = std::pin::pin!(body);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| PutError::Body {
            received: hasher.len(),
            source: e.into(),
        })?;
        let len = u64::try_from(chunk.len()).unwrap_or(u64::MAX);
        if hasher.len().saturating_add(len) > max_bytes {
            return Err(PutError::TooLarge { limit: max_bytes });
        }
        hasher.update(&chunk);
        if let Some(prefix) = prefix.as_deref_mut() {
            prefix.extend(&chunk);
        }
        temp.write(chunk).await?;
    }
    Ok(())
}

/// The first `cap` bytes of a body, kept for validation.
struct Prefix {
    cap: usize,
    bytes: Vec<u8>,
}

impl Prefix {
    fn new(cap: usize) -> Self {
        Self {
            cap,
            bytes: Vec::new(),
        }
    }

    fn extend(&mut self, chunk: &[u8]) {
        let room = self.cap.saturating_sub(self.bytes.len());
        self.bytes
            .extend_from_slice(&chunk[..room.min(chunk.len())]);
    }

    fn into_bytes(self) -> Bytes {
        Bytes::from(self.bytes)
    }
}

/// Aborts a temp upload after a failure; the upload's own error is what the caller reports.
async fn discard(temp: Box<dyn TempUpload>) {
    if let Err(e) = temp.abort().await {
        tracing::warn!(error = %e, "could not discard temp upload; sweep_temp will retry");
    }
}

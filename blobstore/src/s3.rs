//! `S3Backend`: objects in an S3 bucket (AWS, Cloudflare R2 or any S3-compatible store),
//! uploaded through a temp object and promoted with a server-side copy.
//!
//! Keys: `blobs/<cid>`, `renditions/<cid>/<name>`, `tmp/<unique>`.
//!
//! Why a temp object and a copy: a multipart upload fixes its key when it starts, but the CID
//! is known only after the last byte. The alternatives were worse: spooling the whole body to
//! local disk first (needs disk as large as the largest upload, and doubles the latency), or
//! keeping it in memory (breaks the constant-memory rule). So a body larger than one part
//! streams as a multipart upload to `tmp/…`, then `CopyObject` (server-side: no bytes through
//! us) writes the final key and the temp object is deleted. A body smaller than one part is
//! already in memory when it ends, so it is written straight to its final key with one
//! `PutObject` (`If-None-Match: *` for content-addressed keys), with no temp object at all.

use std::collections::VecDeque;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Object};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::{self, BoxStream};

use crate::backend::{
    BlobBackend, BlobRead, ListScope, ListedObject, ObjectMeta, Promotion, TempUpload, temp_name,
};
use crate::cid::BlobCid;
use crate::error::StoreError;
use crate::key::BlobKey;
use crate::range::ByteRange;

/// S3's smallest part (except the last).
const MIN_PART: usize = 5 << 20;
/// S3's largest part, and largest single `CopyObject`.
const MAX_PART: usize = 5 << 30;
/// S3's limit on parts in one multipart upload.
const MAX_PARTS: usize = 10_000;
/// Default upload part. One part buffer is in memory per upload, and S3's 10,000-part limit
/// then allows objects up to 78 GiB.
pub const DEFAULT_PART_SIZE: usize = 8 << 20;
/// Part of a multipart server-side copy (objects over `max_single_copy`).
const COPY_PART: u64 = 1 << 30;

/// Settings of an [`S3Backend`]. Only the binary reads them from flags and environment.
#[derive(Clone)]
pub struct S3Config {
    /// The bucket; it must exist.
    pub bucket: String,
    /// Endpoint URL for non-AWS stores (R2: `https://<account>.r2.cloudflarestorage.com`).
    pub endpoint: Option<String>,
    /// Region (`auto` for R2, `us-east-1` for most S3-compatibles).
    pub region: String,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key; never printed by `Debug`.
    pub secret_access_key: String,
    /// Path-style addressing (`endpoint/bucket/key`), needed by most S3-compatibles.
    pub force_path_style: bool,
    /// Upload part size in bytes, 5 MiB ..= 5 GiB: the memory one upload holds.
    pub part_size: usize,
    /// Objects up to this size are promoted with one `CopyObject`; larger ones with a
    /// multipart copy. S3 caps `CopyObject` at 5 GiB.
    pub max_single_copy: u64,
    /// If the bucket is public behind a CDN: its base URL; redirects then use
    /// `<base>/<object key>` instead of a presigned URL. Objects are stored without a
    /// `Content-Type`, so the CDN must set one (presigned URLs carry it in the query).
    pub public_base_url: Option<String>,
}

impl S3Config {
    /// Settings with the defaults for everything but the bucket and credentials.
    pub fn new(
        bucket: impl Into<String>,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
    ) -> Self {
        Self {
            bucket: bucket.into(),
            endpoint: None,
            region: "us-east-1".to_owned(),
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            force_path_style: true,
            part_size: DEFAULT_PART_SIZE,
            max_single_copy: MAX_PART as u64,
            public_base_url: None,
        }
    }
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("force_path_style", &self.force_path_style)
            .field("part_size", &self.part_size)
            .field("max_single_copy", &self.max_single_copy)
            .field("public_base_url", &self.public_base_url)
            .finish()
    }
}

/// A backend storing objects in an S3 bucket.
#[derive(Debug, Clone)]
pub struct S3Backend {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    config: S3Config,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Backend")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl S3Backend {
    /// A backend for `config`. Makes no request; a wrong bucket or credentials show up on the
    /// first operation.
    pub fn new(config: S3Config) -> Result<Self, StoreError> {
        if !(MIN_PART..=MAX_PART).contains(&config.part_size) {
            return Err(StoreError::Config(format!(
                "s3 part size {} outside {MIN_PART}..={MAX_PART}",
                config.part_size
            )));
        }
        let copy_limit = MIN_PART as u64..=MAX_PART as u64;
        if !copy_limit.contains(&config.max_single_copy) {
            return Err(StoreError::Config(format!(
                "s3 single-copy limit {} outside {copy_limit:?}",
                config.max_single_copy
            )));
        }
        if config.bucket.is_empty() {
            return Err(StoreError::Config("empty s3 bucket name".to_owned()));
        }
        // ring, not aws-lc: one crypto provider in the process (see crate-notes).
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let credentials = Credentials::new(
            &config.access_key_id,
            &config.secret_access_key,
            None,
            None,
            "plyr-blobstore-static",
        );
        let mut builder = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(config.region.clone()))
            .credentials_provider(credentials)
            .http_client(http)
            .force_path_style(config.force_path_style)
            // R2 and most S3-compatibles reject the SDK's default CRC trailers.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(endpoint) = &config.endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        Ok(Self {
            inner: Arc::new(Inner {
                client: Client::from_conf(builder.build()),
                config,
            }),
        })
    }

    /// The SDK client, e.g. for creating the bucket in tests.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// The object key of `key` in the bucket.
    pub fn object_key(key: &BlobKey) -> String {
        match key {
            BlobKey::Blob(cid) => format!("{BLOBS}{cid}"),
            BlobKey::Rendition { .. } => key.to_string(),
        }
    }
}

const BLOBS: &str = "blobs/";
const RENDITIONS: &str = "renditions/";
const TMP: &str = "tmp/";

impl Inner {
    fn bucket(&self) -> &str {
        &self.config.bucket
    }

    async fn head_key(&self, object_key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        let head = self
            .client
            .head_object()
            .bucket(self.bucket())
            .key(object_key)
            .send()
            .await;
        match head {
            Ok(out) => Ok(Some(ObjectMeta {
                size: size_of("HeadObject", object_key, out.content_length())?,
                modified: system_time(out.last_modified()),
            })),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(sdk_error("HeadObject", object_key, e)),
        }
    }

    async fn delete_key(&self, object_key: &str) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(self.bucket())
            .key(object_key)
            .send()
            .await
            .map_err(|e| sdk_error("DeleteObject", object_key, e))?;
        Ok(())
    }

    async fn start_multipart(&self, key: &str) -> Result<Multipart, StoreError> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(self.bucket())
            .key(key)
            .send()
            .await
            .map_err(|e| sdk_error("CreateMultipartUpload", key, e))?;
        let upload_id =
            out.upload_id()
                .map(str::to_owned)
                .ok_or_else(|| StoreError::UnexpectedResponse {
                    op: "CreateMultipartUpload",
                    key: key.to_owned(),
                    detail: "no upload id".to_owned(),
                })?;
        Ok(Multipart {
            upload_id,
            parts: Vec::new(),
        })
    }

    async fn upload_part(
        &self,
        key: &str,
        multipart: &mut Multipart,
        data: Bytes,
    ) -> Result<(), StoreError> {
        let number = part_number(multipart.parts.len(), key)?;
        let length = i64::try_from(data.len()).unwrap_or(i64::MAX);
        let out = self
            .client
            .upload_part()
            .bucket(self.bucket())
            .key(key)
            .upload_id(&multipart.upload_id)
            .part_number(number)
            .content_length(length)
            .body(ByteStream::from(data))
            .send()
            .await
            .map_err(|e| sdk_error("UploadPart", key, e))?;
        let etag = out.e_tag().map(str::to_owned);
        multipart
            .parts
            .push(completed_part(number, etag, "UploadPart", key)?);
        Ok(())
    }

    /// Server-side copy of the completed temp object `from` (of `size` bytes) to `to`.
    async fn copy(&self, from: &str, to: &str, size: u64) -> Result<(), StoreError> {
        let source = format!("{}/{from}", self.bucket());
        if size <= self.config.max_single_copy {
            self.client
                .copy_object()
                .bucket(self.bucket())
                .key(to)
                .copy_source(source)
                .send()
                .await
                .map_err(|e| sdk_error("CopyObject", to, e))?;
            return Ok(());
        }
        let Multipart { upload_id, .. } = self.start_multipart(to).await?;
        let copied = self.copy_parts(&source, to, &upload_id, size).await;
        let parts = match copied {
            Ok(parts) => parts,
            Err(e) => {
                self.abort_multipart(to, &upload_id).await;
                return Err(e);
            }
        };
        self.complete(to, &upload_id, parts).await
    }

    async fn copy_parts(
        &self,
        source: &str,
        to: &str,
        upload_id: &str,
        size: u64,
    ) -> Result<Vec<CompletedPart>, StoreError> {
        // At least MIN_PART: `new` checked `max_single_copy`.
        let copy_part = COPY_PART.min(self.config.max_single_copy);
        let mut parts = Vec::new();
        let mut start = 0;
        while start < size {
            let last = start.saturating_add(copy_part).min(size) - 1;
            let number = part_number(parts.len(), to)?;
            let out = self
                .client
                .upload_part_copy()
                .bucket(self.bucket())
                .key(to)
                .upload_id(upload_id)
                .part_number(number)
                .copy_source(source)
                .copy_source_range(format!("bytes={start}-{last}"))
                .send()
                .await
                .map_err(|e| sdk_error("UploadPartCopy", to, e))?;
            let etag = out
                .copy_part_result()
                .and_then(|r| r.e_tag())
                .map(str::to_owned);
            parts.push(completed_part(number, etag, "UploadPartCopy", to)?);
            start = last + 1;
        }
        Ok(parts)
    }

    async fn complete(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> Result<(), StoreError> {
        self.client
            .complete_multipart_upload()
            .bucket(self.bucket())
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| sdk_error("CompleteMultipartUpload", key, e))?;
        Ok(())
    }

    /// Best effort: a failure here leaves work for `sweep_temp`, not a wrong result.
    async fn abort_multipart(&self, key: &str, upload_id: &str) {
        let aborted = self
            .client
            .abort_multipart_upload()
            .bucket(self.bucket())
            .key(key)
            .upload_id(upload_id)
            .send()
            .await;
        if let Err(e) = aborted {
            let e = sdk_error("AbortMultipartUpload", key, e);
            tracing::warn!(error = %e, "multipart upload left for sweep_temp");
        }
    }

    /// One page of `prefix` objects after `token`.
    async fn list_page(
        &self,
        prefix: &str,
        token: Option<String>,
    ) -> Result<(Vec<Object>, Option<String>), StoreError> {
        let out = self
            .client
            .list_objects_v2()
            .bucket(self.bucket())
            .prefix(prefix)
            .set_continuation_token(token)
            .send()
            .await
            .map_err(|e| sdk_error("ListObjectsV2", prefix, e))?;
        let next = if out.is_truncated() == Some(true) {
            out.next_continuation_token().map(str::to_owned)
        } else {
            None
        };
        Ok((out.contents.unwrap_or_default(), next))
    }

    /// Aborts multipart uploads under `tmp/` started before `older_than`.
    async fn sweep_multipart(&self, older_than: SystemTime) -> Result<u64, StoreError> {
        let mut removed = 0;
        let mut key_marker: Option<String> = None;
        let mut id_marker: Option<String> = None;
        loop {
            let listed = self
                .client
                .list_multipart_uploads()
                .bucket(self.bucket())
                .prefix(TMP)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .send()
                .await;
            let out = match listed {
                Ok(out) => out,
                // Some S3-compatibles (s3s-fs) lack this call; a bucket lifecycle rule
                // (AbortIncompleteMultipartUpload) then does the job.
                Err(e) if e.code() == Some("NotImplemented") => {
                    tracing::debug!("ListMultipartUploads not implemented by the store");
                    return Ok(removed);
                }
                Err(e) => return Err(sdk_error("ListMultipartUploads", TMP, e)),
            };
            for upload in out.uploads() {
                let (Some(key), Some(id)) = (upload.key(), upload.upload_id()) else {
                    continue;
                };
                if system_time(upload.initiated()) < older_than {
                    self.client
                        .abort_multipart_upload()
                        .bucket(self.bucket())
                        .key(key)
                        .upload_id(id)
                        .send()
                        .await
                        .map_err(|e| sdk_error("AbortMultipartUpload", key, e))?;
                    removed += 1;
                }
            }
            if out.is_truncated() != Some(true) {
                return Ok(removed);
            }
            key_marker = out.next_key_marker().map(str::to_owned);
            id_marker = out.next_upload_id_marker().map(str::to_owned);
            if key_marker.is_none() && id_marker.is_none() {
                return Ok(removed);
            }
        }
    }
}

impl BlobBackend for S3Backend {
    fn begin(&self) -> BoxFuture<'_, Result<Box<dyn TempUpload>, StoreError>> {
        Box::pin(async move {
            let upload: Box<dyn TempUpload> = Box::new(S3Temp {
                inner: Arc::clone(&self.inner),
                tmp_key: format!("{TMP}{}", temp_name()),
                buf: BytesMut::new(),
                multipart: None,
                size: 0,
            });
            Ok(upload)
        })
    }

    fn get<'a>(
        &'a self,
        key: &'a BlobKey,
        range: Option<ByteRange>,
    ) -> BoxFuture<'a, Result<Option<BlobRead>, StoreError>> {
        Box::pin(async move {
            let inner = &self.inner;
            let object_key = Self::object_key(key);
            let range = match range {
                // Stores disagree on malformed ranges (ignored, 400 or 416) and some fail a
                // suffix longer than the object (s3s-fs answers 500): resolve those against
                // the size here and send an explicit range. Suffix reads are rare (players
                // probing trailing tags); the extra HEAD costs one round trip.
                Some(r) if matches!(r, ByteRange::Suffix(_)) || !r.is_well_formed() => {
                    let Some(meta) = inner.head_key(&object_key).await? else {
                        return Ok(None);
                    };
                    match r.resolve(meta.size) {
                        Some(span) => Some(ByteRange::From {
                            start: span.start,
                            last: Some(span.end - 1),
                        }),
                        None => {
                            return Err(StoreError::RangeNotSatisfiable {
                                key: key.clone(),
                                size: meta.size,
                            });
                        }
                    }
                }
                other => other,
            };
            let got = inner
                .client
                .get_object()
                .bucket(inner.bucket())
                .key(&object_key)
                .set_range(range.map(|r| r.to_header()))
                .send()
                .await;
            let out = match got {
                Ok(out) => out,
                Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                    return Ok(None);
                }
                Err(e) if e.code() == Some("InvalidRange") || status(&e) == Some(416) => {
                    // The 416 carries no size we can rely on across stores; ask for it.
                    return match inner.head_key(&object_key).await? {
                        Some(meta) => Err(StoreError::RangeNotSatisfiable {
                            key: key.clone(),
                            size: meta.size,
                        }),
                        None => Ok(None),
                    };
                }
                Err(e) => return Err(sdk_error("GetObject", &object_key, e)),
            };
            let length = size_of("GetObject", &object_key, out.content_length())?;
            let (served, total) = match out.content_range() {
                Some(header) => {
                    parse_content_range(header).ok_or_else(|| StoreError::UnexpectedResponse {
                        op: "GetObject",
                        key: object_key.clone(),
                        detail: format!("bad Content-Range {header:?}"),
                    })?
                }
                None => (0..length, length),
            };
            let wanted = match range {
                None => Some(0..total),
                Some(range) => range.resolve(total),
            };
            match wanted {
                Some(wanted) if wanted == served && served.end - served.start == length => {}
                None => {
                    return Err(StoreError::RangeNotSatisfiable {
                        key: key.clone(),
                        size: total,
                    });
                }
                Some(wanted) => {
                    return Err(StoreError::UnexpectedResponse {
                        op: "GetObject",
                        key: object_key,
                        detail: format!(
                            "asked for bytes {wanted:?}, got {served:?} ({length} bytes)"
                        ),
                    });
                }
            }
            let chunks = stream::unfold(out.body, |mut body| async move {
                let next = body.next().await?;
                Some((next.map_err(std::io::Error::other), body))
            })
            .boxed();
            Ok(Some(BlobRead {
                total_size: total,
                range: served,
                chunks,
            }))
        })
    }

    fn head<'a>(
        &'a self,
        key: &'a BlobKey,
    ) -> BoxFuture<'a, Result<Option<ObjectMeta>, StoreError>> {
        Box::pin(async move { self.inner.head_key(&Self::object_key(key)).await })
    }

    fn delete<'a>(&'a self, key: &'a BlobKey) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move { self.inner.delete_key(&Self::object_key(key)).await })
    }

    fn list(&self, scope: ListScope) -> BoxStream<'_, Result<ListedObject, StoreError>> {
        struct Pages {
            prefix: &'static str,
            page: VecDeque<Object>,
            /// `Some(None)`: fetch the first page; `Some(Some(t))`: fetch after `t`; `None`: done.
            next: Option<Option<String>>,
        }
        let prefix = match scope {
            ListScope::Blobs => BLOBS,
            ListScope::Renditions => RENDITIONS,
        };
        let start = Pages {
            prefix,
            page: VecDeque::new(),
            next: Some(None),
        };
        let inner = &self.inner;
        stream::unfold(start, move |mut pages| async move {
            loop {
                if let Some(object) = pages.page.pop_front() {
                    match listed(scope, &object) {
                        Some(found) => return Some((Ok(found), pages)),
                        None => {
                            tracing::warn!(key = ?object.key(), "skipping unrecognised object in blob bucket");
                            continue;
                        }
                    }
                }
                let token = pages.next.take()?;
                match inner.list_page(pages.prefix, token).await {
                    Ok((objects, next)) => {
                        pages.page = objects.into();
                        pages.next = next.map(Some);
                    }
                    Err(e) => return Some((Err(e), pages)),
                }
            }
        })
        .boxed()
    }

    fn sweep_temp(&self, older_than: SystemTime) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let inner = &self.inner;
            let mut removed = inner.sweep_multipart(older_than).await?;
            let mut token = None;
            loop {
                let (objects, next) = inner.list_page(TMP, token).await?;
                for object in objects {
                    let Some(key) = object.key() else { continue };
                    if system_time(object.last_modified()) < older_than {
                        inner.delete_key(key).await?;
                        removed += 1;
                    }
                }
                match next {
                    Some(next) => token = Some(next),
                    None => return Ok(removed),
                }
            }
        })
    }

    fn presign_get<'a>(
        &'a self,
        key: &'a BlobKey,
        ttl: Duration,
        content_type: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        Box::pin(async move {
            let object_key = Self::object_key(key);
            if let Some(base) = &self.inner.config.public_base_url {
                return Ok(Some(format!("{}/{object_key}", base.trim_end_matches('/'))));
            }
            let presigning = PresigningConfig::expires_in(ttl).map_err(|e| StoreError::S3 {
                op: "presign GetObject",
                key: object_key.clone(),
                refused: false,
                source: Box::new(e),
            })?;
            let request = self
                .inner
                .client
                .get_object()
                .bucket(self.inner.bucket())
                .key(&object_key)
                .set_response_content_type(content_type.map(str::to_owned))
                .presigned(presigning)
                .await
                .map_err(|e| sdk_error("presign GetObject", &object_key, e))?;
            Ok(Some(request.uri().to_owned()))
        })
    }
}

/// An S3 upload in progress: the current part in memory, earlier parts already sent.
struct S3Temp {
    inner: Arc<Inner>,
    tmp_key: String,
    buf: BytesMut,
    /// Started at the first full part.
    multipart: Option<Multipart>,
    size: u64,
}

struct Multipart {
    upload_id: String,
    parts: Vec<CompletedPart>,
}

impl S3Temp {
    fn part_size(&self) -> usize {
        self.inner.config.part_size
    }

    /// Sends the full buffer as the next part, starting the multipart upload at the first.
    /// Filling waits for the send, so one buffer is enough: it is reused for the next part
    /// (a fresh one each time left ~3 parts resident, the allocator keeping freed ones).
    async fn send_part(&mut self) -> Result<(), StoreError> {
        let data = std::mem::take(&mut self.buf).freeze();
        let multipart = match self.multipart.as_mut() {
            Some(multipart) => multipart,
            None => {
                let started = self.inner.start_multipart(&self.tmp_key).await?;
                self.multipart.insert(started)
            }
        };
        self.inner
            .upload_part(&self.tmp_key, multipart, data.clone())
            .await?;
        // The SDK has dropped its handle once the part is sent; if not, allocate anew.
        if let Ok(mut reused) = data.try_into_mut() {
            reused.clear();
            self.buf = reused;
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>, key: BlobKey) -> Result<Promotion, StoreError> {
        let inner = Arc::clone(&self.inner);
        let dest = S3Backend::object_key(&key);
        let keep_existing = key.is_content_addressed();
        let tmp = self.tmp_key.clone();
        let last = self.buf.split().freeze();
        let Some(mut multipart) = self.multipart.take() else {
            return put_small(&inner, &dest, last, keep_existing).await;
        };
        let mut sent = Ok(());
        if !last.is_empty() {
            sent = inner.upload_part(&tmp, &mut multipart, last).await;
        }
        let Multipart { upload_id, parts } = multipart;
        if let Err(e) = sent {
            inner.abort_multipart(&tmp, &upload_id).await;
            return Err(e);
        }
        if let Err(e) = inner.complete(&tmp, &upload_id, parts).await {
            inner.abort_multipart(&tmp, &upload_id).await;
            return Err(e);
        }
        // From here the temp object is a whole object: remove it whatever happens next.
        let promoted = promote_copy(&inner, &tmp, &dest, self.size, keep_existing).await;
        let cleaned = inner.delete_key(&tmp).await;
        let promotion = promoted?;
        if let Err(e) = cleaned {
            tracing::warn!(error = %e, "temp object left for sweep_temp");
        }
        Ok(promotion)
    }
}

/// Writes a body that fits in one part straight to its final key.
async fn put_small(
    inner: &Inner,
    dest: &str,
    data: Bytes,
    keep_existing: bool,
) -> Result<Promotion, StoreError> {
    let put = |conditional: bool| {
        inner
            .client
            .put_object()
            .bucket(inner.bucket())
            .key(dest)
            .content_length(i64::try_from(data.len()).unwrap_or(i64::MAX))
            .set_if_none_match(conditional.then(|| "*".to_owned()))
            .body(ByteStream::from(data.clone()))
            .send()
    };
    let mut conflicts = 0;
    loop {
        return match put(keep_existing).await {
            Ok(_) => Ok(Promotion::Created),
            Err(e) if e.code() == Some("PreconditionFailed") || status(&e) == Some(412) => {
                Ok(Promotion::AlreadyPresent)
            }
            // AWS: another conditional write of this key is in flight. Ask again once it ends.
            Err(e) if e.code() == Some("ConditionalRequestConflict") && conflicts < 3 => {
                conflicts += 1;
                continue;
            }
            // A store without conditional writes: identical bytes make an overwrite harmless.
            Err(e) if keep_existing && conditional_unsupported(&e) => match put(false).await {
                Ok(_) => Ok(Promotion::Created),
                Err(e) => Err(sdk_error("PutObject", dest, e)),
            },
            Err(e) => Err(sdk_error("PutObject", dest, e)),
        };
    }
}

/// Whether a store refused `If-None-Match` itself rather than the request.
fn conditional_unsupported<E: ProvideErrorMetadata>(
    e: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> bool {
    matches!(
        e.code(),
        Some("NotImplemented" | "InvalidArgument" | "InvalidRequest")
    ) || status(e) == Some(501)
}

/// Copies the completed temp object to `dest` unless a content-addressed copy exists.
async fn promote_copy(
    inner: &Inner,
    tmp: &str,
    dest: &str,
    size: u64,
    keep_existing: bool,
) -> Result<Promotion, StoreError> {
    if keep_existing && inner.head_key(dest).await?.is_some() {
        return Ok(Promotion::AlreadyPresent);
    }
    inner.copy(tmp, dest, size).await?;
    Ok(Promotion::Created)
}

impl TempUpload for S3Temp {
    fn write(&mut self, chunk: Bytes) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.size = self
                .size
                .saturating_add(u64::try_from(chunk.len()).unwrap_or(u64::MAX));
            let mut rest = chunk.as_ref();
            while !rest.is_empty() {
                if self.buf.capacity() == 0 {
                    self.buf.reserve(self.part_size());
                }
                let room = self.part_size() - self.buf.len();
                let (now, later) = rest.split_at(room.min(rest.len()));
                self.buf.extend_from_slice(now);
                rest = later;
                if self.buf.len() == self.part_size() {
                    self.send_part().await?;
                }
            }
            Ok(())
        })
    }

    fn promote(self: Box<Self>, key: BlobKey) -> BoxFuture<'static, Result<Promotion, StoreError>> {
        Box::pin(self.finish(key))
    }

    fn abort(mut self: Box<Self>) -> BoxFuture<'static, Result<(), StoreError>> {
        Box::pin(async move {
            if let Some(multipart) = self.multipart.take() {
                self.inner
                    .abort_multipart(&self.tmp_key, &multipart.upload_id)
                    .await;
            }
            Ok(())
        })
    }
}

impl Drop for S3Temp {
    fn drop(&mut self) {
        if self.multipart.is_some() {
            // Cancelled mid-upload: aborting needs a request, which a destructor cannot await.
            tracing::warn!(key = %self.tmp_key, "multipart upload dropped; sweep_temp will abort it");
        }
    }
}

fn part_number(done: usize, key: &str) -> Result<i32, StoreError> {
    if done >= MAX_PARTS {
        return Err(StoreError::Config(format!(
            "{key}: more than {MAX_PARTS} parts; raise the part size"
        )));
    }
    i32::try_from(done + 1).map_err(|_| StoreError::Config("part number overflow".to_owned()))
}

fn completed_part(
    number: i32,
    etag: Option<String>,
    op: &'static str,
    key: &str,
) -> Result<CompletedPart, StoreError> {
    let etag = etag.ok_or_else(|| StoreError::UnexpectedResponse {
        op,
        key: key.to_owned(),
        detail: format!("no ETag for part {number}"),
    })?;
    Ok(CompletedPart::builder()
        .part_number(number)
        .e_tag(etag)
        .build())
}

fn size_of(op: &'static str, key: &str, length: Option<i64>) -> Result<u64, StoreError> {
    length
        .and_then(|l| u64::try_from(l).ok())
        .ok_or_else(|| StoreError::UnexpectedResponse {
            op,
            key: key.to_owned(),
            detail: format!("bad Content-Length {length:?}"),
        })
}

fn system_time(time: Option<&DateTime>) -> SystemTime {
    // A store that omits a timestamp makes the object look old: safe for temp sweeping only
    // because temp keys are unique and never reused.
    time.and_then(|t| SystemTime::try_from(*t).ok())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

fn status<E, R: HttpStatus>(e: &SdkError<E, R>) -> Option<u16> {
    e.raw_response().map(HttpStatus::status_code)
}

/// The status code of a raw SDK response.
trait HttpStatus {
    fn status_code(&self) -> u16;
}

impl HttpStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

fn sdk_error<E>(
    op: &'static str,
    key: &str,
    e: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> StoreError
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    // Refusals are told apart from outages by the answer itself: 401/403 (credentials,
    // signature, policy) or a bucket that does not exist. Anything else (no answer, 5xx,
    // throttling, a lost multipart upload) may pass.
    let refused = match &e {
        SdkError::ServiceError(service) => {
            matches!(service.raw().status().as_u16(), 401 | 403)
                || service.err().code() == Some("NoSuchBucket")
        }
        _ => false,
    };
    // The SDK's own Display is only "service error"; this form names the code and message.
    StoreError::S3 {
        op,
        key: key.to_owned(),
        refused,
        source: DisplayErrorContext(e).to_string().into(),
    }
}

/// Parses `bytes <first>-<last>/<total>` into the served half-open range and the total size.
fn parse_content_range(header: &str) -> Option<(Range<u64>, u64)> {
    let rest = header.trim().strip_prefix("bytes ")?;
    let (span, total) = rest.split_once('/')?;
    let (first, last) = span.split_once('-')?;
    let (first, last, total): (u64, u64, u64) =
        (first.parse().ok()?, last.parse().ok()?, total.parse().ok()?);
    (first <= last && last < total).then(|| (first..last + 1, total))
}

/// The listing entry for an S3 object, if its key is one this crate writes.
fn listed(scope: ListScope, object: &Object) -> Option<ListedObject> {
    let key = object.key()?;
    let parsed = match scope {
        ListScope::Blobs => {
            let text = key.strip_prefix(BLOBS)?;
            let cid: BlobCid = text.parse().ok()?;
            (cid.to_string() == text).then_some(BlobKey::Blob(cid))?
        }
        ListScope::Renditions => {
            let parsed: BlobKey = key.parse().ok()?;
            (matches!(parsed, BlobKey::Rendition { .. }) && parsed.to_string() == key)
                .then_some(parsed)?
        }
    };
    Some(ListedObject {
        key: parsed,
        meta: ObjectMeta {
            size: object.size().and_then(|s| u64::try_from(s).ok())?,
            modified: system_time(object.last_modified()),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_told_from_outages_by_the_answer() {
        use aws_sdk_s3::error::ErrorMetadata;
        use aws_sdk_s3::operation::put_object::PutObjectError;
        use aws_sdk_s3::primitives::SdkBody;

        let answer = |status: u16, code: &str| {
            let err = PutObjectError::generic(ErrorMetadata::builder().code(code).build());
            let raw = aws_sdk_s3::config::http::HttpResponse::new(
                status.try_into().expect("status"),
                SdkBody::empty(),
            );
            sdk_error("PutObject", "k", SdkError::service_error(err, raw)).kind()
        };
        use crate::StoreErrorKind::{Refused, Remote};
        let cases = [
            (403, "AccessDenied", Refused),
            (403, "SignatureDoesNotMatch", Refused),
            (401, "Unauthorized", Refused),
            (404, "NoSuchBucket", Refused),
            (404, "NoSuchUpload", Remote),
            (500, "InternalError", Remote),
            (503, "SlowDown", Remote),
        ];
        for (status, code, want) in cases {
            assert_eq!(answer(status, code), want, "{status} {code}");
        }
        let timeout: SdkError<PutObjectError, aws_sdk_s3::config::http::HttpResponse> =
            SdkError::timeout_error("no answer");
        assert_eq!(sdk_error("PutObject", "k", timeout).kind(), Remote);
    }

    #[test]
    fn content_range_table() {
        let cases = [
            ("bytes 0-0/10", Some((0..1, 10))),
            ("bytes 3-9/10", Some((3..10, 10))),
            ("bytes 0-9/10", Some((0..10, 10))),
            ("bytes 5-4/10", None),
            ("bytes 0-10/10", None),
            ("bytes */10", None),
            ("bytes 0-1/*", None),
            ("items 0-1/2", None),
            ("", None),
        ];
        for (header, want) in cases {
            assert_eq!(parse_content_range(header), want, "{header:?}");
        }
    }

    #[test]
    fn object_keys() {
        let cid = BlobCid::of(b"hello world");
        assert_eq!(
            S3Backend::object_key(&BlobKey::Blob(cid)),
            "blobs/bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
        );
        let rendition = BlobKey::rendition(cid, "web.flac".parse().expect("name"));
        assert_eq!(
            S3Backend::object_key(&rendition),
            "renditions/bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e/web.flac"
        );
    }

    #[test]
    fn config_is_checked_and_secret_hidden() {
        let base = S3Config::new("bucket", "AK", "very-secret");
        assert!(!format!("{base:?}").contains("very-secret"));
        type Tweak = fn(&mut S3Config);
        let cases: [(&str, Tweak, bool); 7] = [
            ("defaults", |_| {}, true),
            ("smallest part", |c| c.part_size = MIN_PART, true),
            ("part too small", |c| c.part_size = MIN_PART - 1, false),
            ("part too large", |c| c.part_size = MAX_PART + 1, false),
            ("copy limit too small", |c| c.max_single_copy = 1, false),
            (
                "copy limit too large",
                |c| c.max_single_copy = 6 << 30,
                false,
            ),
            ("no bucket", |c| c.bucket.clear(), false),
        ];
        for (name, tweak, ok) in cases {
            let mut config = base.clone();
            tweak(&mut config);
            let built = S3Backend::new(config).map(|_| ()).map_err(|e| e.kind());
            let want = if ok {
                Ok(())
            } else {
                Err(crate::StoreErrorKind::Config)
            };
            assert_eq!(built, want, "{name}");
        }
    }
}

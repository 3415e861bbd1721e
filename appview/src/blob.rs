//! The blob service over HTTP: `POST /xrpc/fm.plyr.blob.uploadBlob` (service-auth, streamed
//! into the store in constant memory, validated before it is stored) and `GET`/`HEAD
//! /blob/{cid}` (Range, immutable caching, a locked-down Content-Security-Policy, or a redirect
//! to a presigned URL). Hidden content (see `queries::blob`) is not served.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::TryStreamExt;
use plyr_blobstore::{
    BlobCid, BlobKey, BlobStore, ByteRange, MediaDetails, PutError, PutLimits, StoreError,
    StoreErrorKind,
};
use serde::Serialize;
use sqlx::PgPool;
use tower_http::cors::CorsLayer;
use tower_http::trace::TraceLayer;

use crate::AppState;
use crate::auth::Authenticated;
use crate::error::{XrpcError, causes};
use crate::queries::blob::{self as q, NewBlob};

/// Served with every blob: content-addressed bytes never change.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// A blob is data, never a document: no scripts, no subresources, no same-origin access.
const CSP: &str = "default-src 'none'; sandbox";
/// `Retry-After` while the object store is unreachable (issue #6): the SDK's own retries are
/// already spent by then, and a restarted store answers well within it.
const STORE_RETRY_AFTER_SECS: u64 = 30;

/// The blob service's parts. Cheap to clone.
#[derive(Debug, Clone)]
pub struct BlobService {
    store: BlobStore,
    max_upload_bytes: u64,
    redirect_ttl: Option<Duration>,
}

impl BlobService {
    /// Serves and stores blobs in `store`, refusing uploads over `max_upload_bytes`.
    pub fn new(store: BlobStore, max_upload_bytes: u64) -> BlobService {
        BlobService {
            store,
            max_upload_bytes,
            redirect_ttl: None,
        }
    }

    /// Answers reads with a redirect to a presigned URL valid for `ttl`, when the backend can
    /// make one (S3); the local folder is always served directly.
    pub fn with_redirects(mut self, ttl: Duration) -> BlobService {
        self.redirect_ttl = Some(ttl);
        self
    }

    /// The store.
    pub fn store(&self) -> &BlobStore {
        &self.store
    }
}

/// The blob routes, beside the XRPC router: without its request timeout (an upload of a
/// lossless album side takes minutes), with permissive CORS (a browser uploads with a bearer
/// token, not cookies; reads are public).
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/xrpc/fm.plyr.blob.uploadBlob",
            post(upload_blob).fallback(wrong_verb),
        )
        .route("/blob/{cid}", get(get_blob))
        .route("/blob/{cid}/{rendition}", get(get_rendition))
        .layer(TraceLayer::new_for_http())
        .layer(CorsLayer::permissive())
}

async fn wrong_verb(method: Method) -> XrpcError {
    XrpcError::InvalidRequest(format!("incorrect HTTP method ({method}), expected POST"))
}

/// A failure of a blob request: XRPC errors plus the two statuses only blobs produce.
#[derive(Debug)]
enum BlobError {
    Xrpc(XrpcError),
    /// 413: over `--max-upload-bytes`.
    TooLarge(u64),
    /// 400 InvalidMimeType: not media, or not the declared format.
    InvalidMedia(String),
    /// 416, with the object's size for `Content-Range: bytes */size`.
    RangeNotSatisfiable(u64),
    /// 503 BlobStoreUnavailable, with `Retry-After`: the object store failed or is
    /// unreachable, a transient outage the client should retry (issue #6).
    StoreUnavailable,
}

impl From<XrpcError> for BlobError {
    fn from(e: XrpcError) -> BlobError {
        BlobError::Xrpc(e)
    }
}

impl From<sqlx::Error> for BlobError {
    fn from(e: sqlx::Error) -> BlobError {
        BlobError::Xrpc(XrpcError::Database(e))
    }
}

#[derive(Serialize)]
struct ErrorBody {
    error: &'static str,
    message: String,
}

impl IntoResponse for BlobError {
    fn into_response(self) -> Response {
        match self {
            BlobError::Xrpc(e) => e.into_response(),
            BlobError::TooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                Json(ErrorBody {
                    error: "PayloadTooLarge",
                    message: format!("upload exceeds the limit of {limit} bytes"),
                }),
            )
                .into_response(),
            BlobError::InvalidMedia(message) => (
                StatusCode::BAD_REQUEST,
                Json(ErrorBody {
                    error: "InvalidMimeType",
                    message,
                }),
            )
                .into_response(),
            BlobError::StoreUnavailable => {
                let mut response = (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(ErrorBody {
                        error: "BlobStoreUnavailable",
                        message: "the blob store is temporarily unavailable; retry later".into(),
                    }),
                )
                    .into_response();
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(STORE_RETRY_AFTER_SECS),
                );
                response
            }
            BlobError::RangeNotSatisfiable(size) => {
                let mut response = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
                if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    response.headers_mut().insert(header::CONTENT_RANGE, value);
                }
                response
            }
        }
    }
}

impl From<PutError> for BlobError {
    fn from(e: PutError) -> BlobError {
        match e {
            PutError::TooLarge { limit } => BlobError::TooLarge(limit),
            PutError::Invalid(media) => BlobError::InvalidMedia(media.to_string()),
            PutError::Body { received, .. } => BlobError::Xrpc(XrpcError::InvalidRequest(format!(
                "upload body failed after {received} bytes"
            ))),
            PutError::Store(e) => e.into(),
            // Not reachable without an expected CID; report as a server fault.
            other => BlobError::Xrpc(XrpcError::Internal(format!("{other}{}", causes(&other)))),
        }
    }
}

impl From<StoreError> for BlobError {
    fn from(e: StoreError) -> BlobError {
        match e.kind() {
            StoreErrorKind::Remote => {
                // The cause names the endpoint, bucket and SDK text: it goes to the log only.
                tracing::error!(error = %e, cause = %causes(&e), "blob store unavailable");
                BlobError::StoreUnavailable
            }
            // Refused (credentials, bucket) is the operator's to fix, not the client's to
            // retry: a 500 whose cause goes to the log like any other.
            _ => BlobError::Xrpc(XrpcError::Internal(format!("{e}{}", causes(&e)))),
        }
    }
}

/// The blob JSON of `com.atproto.repo.uploadBlob`.
#[derive(Debug, Serialize)]
struct UploadOutput {
    blob: BlobRef,
}

#[derive(Debug, Serialize)]
struct BlobRef {
    #[serde(rename = "$type")]
    kind: &'static str,
    #[serde(rename = "ref")]
    link: Link,
    #[serde(rename = "mimeType")]
    mime_type: &'static str,
    size: u64,
}

#[derive(Debug, Serialize)]
struct Link {
    #[serde(rename = "$link")]
    link: String,
}

/// `fm.plyr.blob.uploadBlob`: streams the body into a temp object, validates it, then records
/// the blob and promotes the object under the blob row's lock.
async fn upload_blob(
    State(blobs): State<Option<BlobService>>,
    State(db): State<PgPool>,
    Authenticated(uploader): Authenticated,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<UploadOutput>, BlobError> {
    let blobs = blobs.ok_or(XrpcError::MethodNotImplemented)?;
    // Refuse a declared oversize body before reading any of it.
    let declared_len = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared_len.is_some_and(|len| len > blobs.max_upload_bytes) {
        return Err(BlobError::TooLarge(blobs.max_upload_bytes));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| XrpcError::InvalidRequest("Content-Type is not ASCII".into()))
        })
        .transpose()?;
    let pending = blobs
        .store
        .receive_media(
            body.into_data_stream(),
            PutLimits::max_bytes(blobs.max_upload_bytes),
            content_type.as_deref(),
        )
        .await?;
    let cid = pending.cid().to_string();
    let media = pending.media().clone();
    let mut row = NewBlob {
        cid: &cid,
        mime: media.mime(),
        size: i64::try_from(pending.size())
            .map_err(|_| BlobError::TooLarge(blobs.max_upload_bytes))?,
        codec: None,
        duration_ms: None,
        sample_rate: None,
        channels: None,
        bitrate: None,
        width: None,
        height: None,
        uploaded_by: uploader.as_str(),
    };
    match &media.details {
        MediaDetails::Audio(audio) => {
            row.codec = Some(&audio.codec);
            row.duration_ms = audio.duration_ms.and_then(|ms| i64::try_from(ms).ok());
            row.sample_rate = audio.sample_rate.and_then(|r| i32::try_from(r).ok());
            row.channels = audio.channels.and_then(|c| i16::try_from(c).ok());
            row.bitrate = audio.bitrate.and_then(|b| i32::try_from(b).ok());
        }
        MediaDetails::Image(image) => {
            row.width = i32::try_from(image.width).ok();
            row.height = i32::try_from(image.height).ok();
        }
    }
    let mut tx = match db.begin().await {
        Ok(tx) => tx,
        Err(e) => {
            pending.abort().await;
            return Err(e.into());
        }
    };
    if let Err(e) = q::record_upload(&mut tx, &row).await {
        pending.abort().await;
        return Err(e.into());
    }
    // Promote while holding the row lock; a failure rolls the row back with the transaction.
    let stored = pending.promote().await?;
    tx.commit().await?;
    tracing::info!(cid = %stored.blob.cid, size = stored.blob.size, mime = media.mime(),
        uploader = %uploader, promotion = ?stored.blob.promotion, "blob uploaded");
    Ok(Json(UploadOutput {
        blob: BlobRef {
            kind: "blob",
            link: Link { link: cid },
            mime_type: media.mime(),
            size: stored.blob.size,
        },
    }))
}

/// `GET`/`HEAD /blob/{cid}`.
async fn get_blob(
    State(blobs): State<Option<BlobService>>,
    State(db): State<PgPool>,
    Path(cid): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, BlobError> {
    let blobs = blobs.ok_or_else(|| XrpcError::NotFound("no blob store configured".into()))?;
    let parsed: BlobCid = cid
        .parse()
        .map_err(|e| XrpcError::InvalidRequest(format!("bad blob cid: {e}")))?;
    let not_found = || XrpcError::NotFound(format!("no blob {parsed}"));
    let row = q::blob(&db, &cid).await?.ok_or_else(not_found)?;
    if row.hidden {
        return Err(not_found().into());
    }
    let size = u64::try_from(row.size).map_err(|_| not_found())?;
    let object = Object {
        key: BlobKey::Blob(parsed),
        mime: &row.mime,
        size,
        etag: format!("\"{parsed}\""),
        cache: IMMUTABLE,
    };
    serve(&blobs, object, &method, &headers).await
}

/// `GET`/`HEAD /blob/{cid}/{rendition}`: the web rendition the blob row names, or the cover
/// thumbnail, under the same rules as the blob (hidden blobs' renditions are hidden too).
async fn get_rendition(
    State(blobs): State<Option<BlobService>>,
    State(db): State<PgPool>,
    Path((cid, name)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, BlobError> {
    let blobs = blobs.ok_or_else(|| XrpcError::NotFound("no blob store configured".into()))?;
    let parsed: BlobCid = cid
        .parse()
        .map_err(|e| XrpcError::InvalidRequest(format!("bad blob cid: {e}")))?;
    let not_found = || XrpcError::NotFound(format!("no rendition {name} of {parsed}"));
    let row = q::blob(&db, &cid).await?.ok_or_else(not_found)?;
    let mime = if row.web_rendition.as_deref() == Some(name.as_str()) {
        plyr_blobstore::WEB_RENDITION_MIME
    } else if name == plyr_blobstore::THUMBNAIL_RENDITION {
        "image/jpeg"
    } else {
        return Err(not_found().into());
    };
    if row.hidden {
        return Err(not_found().into());
    }
    let rendition: plyr_blobstore::RenditionName = name.parse().map_err(|_| not_found())?;
    let key = BlobKey::rendition(parsed, rendition);
    let meta = blobs.store.head(key.clone()).await?.ok_or_else(not_found)?;
    let object = Object {
        key,
        mime,
        size: meta.size,
        etag: format!("\"{parsed}/{name}\""),
        // A rendition may be re-encoded: cached for a day, not forever.
        cache: "public, max-age=86400",
    };
    serve(&blobs, object, &method, &headers).await
}

/// What [`serve`] sends.
struct Object<'a> {
    key: BlobKey,
    mime: &'a str,
    size: u64,
    etag: String,
    cache: &'static str,
}

/// Answers a read of `object`: 304 on a matching `If-None-Match`, a redirect to a presigned
/// URL when configured, else the bytes (206 for a satisfiable Range, 416 otherwise).
async fn serve(
    blobs: &BlobService,
    object: Object<'_>,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Response, BlobError> {
    let Object {
        key,
        mime,
        size,
        etag,
        cache,
    } = object;
    let mut response = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::CACHE_CONTROL, cache)
        .header(header::CONTENT_SECURITY_POLICY, CSP)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_TYPE, mime);
    let matches_etag = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if matches_etag {
        return Ok(response
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .map_err(|e| XrpcError::Internal(e.to_string()))?);
    }
    if let Some(ttl) = blobs.redirect_ttl
        && let Some(url) = blobs
            .store
            .presign_get(key.clone(), ttl, Some(mime))
            .await?
    {
        // The presigned URL expires, so the redirect itself must not be cached for long.
        return Ok(Response::builder()
            .status(StatusCode::TEMPORARY_REDIRECT)
            .header(header::LOCATION, url)
            .header(header::CACHE_CONTROL, "private, max-age=60")
            .body(Body::empty())
            .map_err(|e| XrpcError::Internal(e.to_string()))?);
    }
    let range = requested_range(headers);
    if let Some(range) = range
        && range.resolve(size).is_none()
    {
        return Err(BlobError::RangeNotSatisfiable(size));
    }
    if *method == Method::HEAD {
        let (status, span) = match range.and_then(|r| r.resolve(size)) {
            Some(span) => (StatusCode::PARTIAL_CONTENT, span),
            None => (StatusCode::OK, 0..size),
        };
        if status == StatusCode::PARTIAL_CONTENT {
            response = response.header(header::CONTENT_RANGE, content_range(&span, size));
        }
        return Ok(response
            .status(status)
            .header(header::CONTENT_LENGTH, span.end - span.start)
            .body(Body::empty())
            .map_err(|e| XrpcError::Internal(e.to_string()))?);
    }
    let read = match blobs.store.get_range(key.clone(), range).await {
        Ok(Some(read)) => read,
        Ok(None) => {
            tracing::warn!(%key, "blob row without an object");
            return Err(XrpcError::NotFound(format!("no object {key}")).into());
        }
        Err(StoreError::RangeNotSatisfiable { size, .. }) => {
            return Err(BlobError::RangeNotSatisfiable(size));
        }
        Err(e) => return Err(e.into()),
    };
    let status = if range.is_some() {
        response = response.header(
            header::CONTENT_RANGE,
            content_range(&read.range, read.total_size),
        );
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let body = Body::from_stream(read.chunks.map_err(axum::Error::new));
    Ok(response
        .status(status)
        .header(header::CONTENT_LENGTH, read.range.end - read.range.start)
        .body(body)
        .map_err(|e| XrpcError::Internal(e.to_string()))?)
}

fn content_range(span: &std::ops::Range<u64>, size: u64) -> String {
    format!("bytes {}-{}/{size}", span.start, span.end.saturating_sub(1))
}

/// The single range of a `Range: bytes=...` header. A malformed header, another unit or
/// several ranges are ignored and the whole blob is served, as RFC 9110 allows.
fn requested_range(headers: &HeaderMap) -> Option<ByteRange> {
    let value = headers.get(header::RANGE)?.to_str().ok()?;
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (start, last) = spec.trim().split_once('-')?;
    let range = if start.is_empty() {
        ByteRange::Suffix(last.parse().ok()?)
    } else {
        ByteRange::From {
            start: start.parse().ok()?,
            last: if last.is_empty() {
                None
            } else {
                Some(last.parse().ok()?)
            },
        }
    };
    range.is_well_formed().then_some(range)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_headers() {
        let cases = [
            (
                "bytes=0-99",
                Some(ByteRange::From {
                    start: 0,
                    last: Some(99),
                }),
            ),
            (
                "bytes=100-",
                Some(ByteRange::From {
                    start: 100,
                    last: None,
                }),
            ),
            ("bytes=-500", Some(ByteRange::Suffix(500))),
            ("bytes=5-1", None),
            ("bytes=-0", None),
            ("bytes=0-1,4-5", None),
            ("items=0-1", None),
            ("bytes=a-b", None),
            ("bytes=", None),
        ];
        for (value, want) in cases {
            let mut headers = HeaderMap::new();
            headers.insert(header::RANGE, HeaderValue::from_static(value));
            assert_eq!(requested_range(&headers), want, "{value}");
        }
        assert_eq!(requested_range(&HeaderMap::new()), None);
    }
}

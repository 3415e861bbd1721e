//! The blob table (migration 0007): recording an upload under the row's lock, and what a read
//! needs (MIME type, size, and whether the content is hidden).

use sqlx::{PgConnection, PgPool};

/// The references of blob `b.cid` from indexed tracks: the audioBlob, or a cover imageUrl that
/// points at our `/blob/<cid>`. Same expressions as the 0007 indexes. For `concat!`.
macro_rules! references_blob {
    () => {
        " ((t.record -> 'audioBlob' -> 'ref' ->> '$link') = b.cid \
           or substring(t.record ->> 'imageUrl' from '/blob/([a-z2-7]+)$') = b.cid) "
    };
}

/// A validated upload, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NewBlob<'a> {
    pub(crate) cid: &'a str,
    pub(crate) mime: &'a str,
    pub(crate) size: i64,
    pub(crate) codec: Option<&'a str>,
    pub(crate) duration_ms: Option<i64>,
    pub(crate) sample_rate: Option<i32>,
    pub(crate) channels: Option<i16>,
    pub(crate) bitrate: Option<i32>,
    pub(crate) width: Option<i32>,
    pub(crate) height: Option<i32>,
    pub(crate) uploaded_by: &'a str,
}

/// Records an upload, or restarts the grace period of a blob already stored, taking the row's
/// lock: garbage collection deletes an object only under the same lock, so the caller
/// promotes the object inside this transaction and a concurrent GC either finishes first (the
/// object is then stored anew) or sees the fresh `stored_at` and keeps it.
#[tracing::instrument(skip(conn, blob), fields(cid = blob.cid))]
pub(crate) async fn record_upload(
    conn: &mut PgConnection,
    blob: &NewBlob<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into blob (cid, mime, size, codec, duration_ms, sample_rate, channels, bitrate, \
           width, height, origin, uploaded_by) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'upload', $11) \
         on conflict (cid) do update set stored_at = now(), unreferenced_since = null, \
           uploaded_by = coalesce(blob.uploaded_by, excluded.uploaded_by)",
    )
    .bind(blob.cid)
    .bind(blob.mime)
    .bind(blob.size)
    .bind(blob.codec)
    .bind(blob.duration_ms)
    .bind(blob.sample_rate)
    .bind(blob.channels)
    .bind(blob.bitrate)
    .bind(blob.width)
    .bind(blob.height)
    .bind(blob.uploaded_by)
    .execute(conn)
    .await?;
    Ok(())
}

/// What serving a blob needs.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct BlobRow {
    pub(crate) mime: String,
    pub(crate) size: i64,
    /// The web rendition's name, when the original needs one and it exists.
    pub(crate) web_rendition: Option<String>,
    /// True when nothing visible references the blob but something hidden does: every track
    /// using it belongs to an inactive (taken down, deactivated) actor, or, unreferenced, its
    /// uploader is inactive.
    pub(crate) hidden: bool,
}

/// The blob `cid`, or `None` when we hold no such blob.
#[tracing::instrument(skip(db))]
pub(crate) async fn blob(db: &PgPool, cid: &str) -> Result<Option<BlobRow>, sqlx::Error> {
    sqlx::query_as::<_, BlobRow>(concat!(
        "select b.mime, b.size, b.web_rendition, \
           (not exists (select 1 from track t join actor a on a.did = t.did and a.active \
                        where ",
        references_blob!(),
        ") and (exists (select 1 from track t join actor a on a.did = t.did and not a.active \
                        where ",
        references_blob!(),
        ") or exists (select 1 from actor a where a.did = b.uploaded_by and not a.active))) \
           as hidden \
         from blob b where b.cid = $1"
    ))
    .bind(cid)
    .fetch_optional(db)
    .await
}

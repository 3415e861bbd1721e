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
    /// True when the blob is taken down locally (`plyr-appview takedown --blob`), or nothing
    /// visible references it but something hidden does: every track using it belongs to an
    /// inactive (taken down, deactivated) actor or is hidden by moderation, or, unreferenced,
    /// its uploader is inactive or hidden.
    pub(crate) hidden: bool,
}

/// The blob `cid`, or `None` when we hold no such blob.
#[tracing::instrument(skip(db))]
pub(crate) async fn blob(db: &PgPool, cid: &str) -> Result<Option<BlobRow>, sqlx::Error> {
    sqlx::query_as::<_, BlobRow>(concat!(
        "select b.mime, b.size, b.web_rendition, \
           (not exists (select 1 from track t join actor a on a.did = t.did and a.active \
                        where ",
        not_hidden!("t.uri", "t.did"),
        "and",
        references_blob!(),
        ") and (exists (select 1 from track t join actor a on a.did = t.did \
                        where (not a.active or not",
        not_hidden!("t.uri", "t.did"),
        ") and",
        references_blob!(),
        ") or exists (select 1 from actor a where a.did = b.uploaded_by and (not a.active or not",
        actor_not_hidden!("a.did"),
        ")))) or exists (select 1 from takedown d where d.subject = b.cid) \
           as hidden \
         from blob b where b.cid = $1"
    ))
    .bind(cid)
    .fetch_optional(db)
    .await
}

/// Starts the grace period of every blob nothing references any more, and ends it for blobs
/// referenced again. Returns (newly unreferenced, referenced again).
#[tracing::instrument(skip(db))]
pub(crate) async fn mark_unreferenced(db: &PgPool) -> Result<(u64, u64), sqlx::Error> {
    let unreferenced = sqlx::query(concat!(
        "update blob b set unreferenced_since = now() \
         where b.unreferenced_since is null and not exists (select 1 from track t where ",
        references_blob!(),
        ")"
    ))
    .execute(db)
    .await?
    .rows_affected();
    let referenced = sqlx::query(concat!(
        "update blob b set unreferenced_since = null \
         where b.unreferenced_since is not null and exists (select 1 from track t where ",
        references_blob!(),
        ")"
    ))
    .execute(db)
    .await?
    .rows_affected();
    Ok((unreferenced, referenced))
}

/// Blobs unreferenced and not re-stored for longer than `grace_secs`: GC candidates, to be
/// re-checked under their lock by [`lock_collectable`].
#[tracing::instrument(skip(db))]
pub(crate) async fn collectable(
    db: &PgPool,
    grace_secs: f64,
    limit: i64,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "select cid from blob \
         where unreferenced_since < now() - make_interval(secs => $1) \
           and stored_at < now() - make_interval(secs => $1) \
         order by unreferenced_since limit $2",
    )
    .bind(grace_secs)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// A blob about to be deleted: its rendition names.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct Collectable {
    pub(crate) web_rendition: Option<String>,
}

/// Locks blob `cid` if it is still collectable: unreferenced by any track now, and neither
/// unreferenced nor stored within the grace period. An upload or mirror of the same content
/// waits on this lock, so the caller deletes the object and the row before either can store it
/// again.
#[tracing::instrument(skip(conn))]
pub(crate) async fn lock_collectable(
    conn: &mut PgConnection,
    cid: &str,
    grace_secs: f64,
) -> Result<Option<Collectable>, sqlx::Error> {
    sqlx::query_as::<_, Collectable>(concat!(
        "select b.web_rendition from blob b \
         where b.cid = $1 \
           and b.unreferenced_since < now() - make_interval(secs => $2) \
           and b.stored_at < now() - make_interval(secs => $2) \
           and not exists (select 1 from track t where ",
        references_blob!(),
        ") for update of b"
    ))
    .bind(cid)
    .bind(grace_secs)
    .fetch_optional(conn)
    .await
}

/// Removes the row of a collected blob (under the lock [`lock_collectable`] took).
#[tracing::instrument(skip(conn))]
pub(crate) async fn delete_blob(conn: &mut PgConnection, cid: &str) -> Result<(), sqlx::Error> {
    sqlx::query("delete from blob where cid = $1")
        .bind(cid)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records a stored object that has no row (its upload's transaction failed after promotion)
/// so it goes through the same grace period and lock as every blob; `stored_at` is the
/// object's modification time.
#[tracing::instrument(skip(db))]
pub(crate) async fn adopt_orphan(
    db: &PgPool,
    cid: &str,
    size: i64,
    modified: chrono::DateTime<chrono::Utc>,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "insert into blob (cid, mime, size, origin, stored_at) \
         values ($1, 'application/octet-stream', $2, 'upload', $3) on conflict (cid) do nothing",
    )
    .bind(cid)
    .bind(size)
    .bind(modified)
    .execute(db)
    .await?
    .rows_affected();
    Ok(inserted > 0)
}

/// Whether blob `cid` has a row.
#[tracing::instrument(skip(db))]
pub(crate) async fn known(db: &PgPool, cid: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("select exists (select 1 from blob where cid = $1)")
        .bind(cid)
        .fetch_one(db)
        .await
}

/// Blobs that need a web rendition and have neither one nor a failed attempt: AIFF, and ALAC
/// in MP4.
#[tracing::instrument(skip(db))]
pub(crate) async fn transcode_due(db: &PgPool, limit: i64) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "select cid from blob \
         where web_rendition is null and transcode_error is null \
           and (mime = 'audio/aiff' or (mime = 'audio/mp4' and codec = 'alac')) \
         order by stored_at limit $1",
    )
    .bind(limit)
    .fetch_all(db)
    .await
}

/// Records a transcode: the rendition's name, or why it failed (never retried by itself).
#[tracing::instrument(skip(db))]
pub(crate) async fn record_transcode(
    db: &PgPool,
    cid: &str,
    rendition: Option<&str>,
    error: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query("update blob set web_rendition = $2, transcode_error = $3 where cid = $1")
        .bind(cid)
        .bind(rendition)
        .bind(error)
        .execute(db)
        .await?;
    Ok(())
}

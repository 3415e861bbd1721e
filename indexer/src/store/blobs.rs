//! The blob mirror's SQL (migration 0007): which tracks' audio is due, recording a mirrored
//! blob under its row lock (the lock GC and uploads take), and each track's audio state.

use sqlx::{PgConnection, PgPool};

/// A track whose audio the mirror should fetch.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct DueAudio {
    pub(crate) uri: String,
    pub(crate) did: String,
    /// The record's `audioBlob.ref.$link`, if any.
    pub(crate) cid: Option<String>,
    /// The record's `audioBlob.mimeType`, if any.
    pub(crate) mime: Option<String>,
    /// The record's `audioUrl`, if any.
    pub(crate) url: Option<String>,
    /// Whether we already hold a blob with that CID (no fetch needed).
    pub(crate) held: bool,
}

/// Up to `limit` tracks of active actors whose audio was never mirrored, whose record now
/// names another audio blob than the one mirrored, or whose last attempt failed, fewer than
/// `max_attempts` times and longer than `retry_secs` ago.
#[tracing::instrument(skip(db))]
pub(crate) async fn due_audio(
    db: &PgPool,
    limit: i64,
    max_attempts: i32,
    retry_secs: f64,
    url_origins: &[String],
) -> Result<Vec<DueAudio>, sqlx::Error> {
    sqlx::query_as::<_, DueAudio>(
        "select t.uri, t.did, \
           t.record -> 'audioBlob' -> 'ref' ->> '$link' as cid, \
           t.record -> 'audioBlob' ->> 'mimeType' as mime, \
           t.record ->> 'audioUrl' as url, \
           exists (select 1 from blob b \
                   where b.cid = t.record -> 'audioBlob' -> 'ref' ->> '$link') as held \
         from track t \
         join actor a on a.did = t.did and a.active \
         left join track_audio ta on ta.track_uri = t.uri \
         where (t.record ? 'audioBlob' \
                or exists (select 1 from unnest($4::text[]) o \
                           where starts_with(t.record ->> 'audioUrl', o || '/'))) \
           and (ta.track_uri is null \
                or (t.record ? 'audioBlob' \
                    and ta.cid is distinct from t.record -> 'audioBlob' -> 'ref' ->> '$link') \
                or (ta.error is not null and ta.attempts < $2 \
                    and ta.checked_at < now() - make_interval(secs => $3))) \
         order by t.indexed_at, t.uri \
         limit $1",
    )
    .bind(limit)
    .bind(max_attempts)
    .bind(retry_secs)
    .bind(url_origins)
    .fetch_all(db)
    .await
}

/// A fetched blob, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MirroredBlob<'a> {
    pub(crate) cid: &'a str,
    pub(crate) mime: &'a str,
    pub(crate) size: i64,
    pub(crate) codec: Option<&'a str>,
    pub(crate) duration_ms: Option<i64>,
    pub(crate) sample_rate: Option<i32>,
    pub(crate) channels: Option<i16>,
    pub(crate) bitrate: Option<i32>,
}

/// Records a mirrored blob (or restarts the grace period of one already held) and takes its
/// row lock: the caller promotes the object inside this transaction, so a concurrent GC pass
/// cannot delete it in between.
#[tracing::instrument(skip(conn, blob), fields(cid = blob.cid))]
pub(crate) async fn record_mirrored(
    conn: &mut PgConnection,
    blob: &MirroredBlob<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into blob (cid, mime, size, codec, duration_ms, sample_rate, channels, bitrate, \
           origin) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, 'mirror') \
         on conflict (cid) do update set stored_at = now(), unreferenced_since = null",
    )
    .bind(blob.cid)
    .bind(blob.mime)
    .bind(blob.size)
    .bind(blob.codec)
    .bind(blob.duration_ms)
    .bind(blob.sample_rate)
    .bind(blob.channels)
    .bind(blob.bitrate)
    .execute(conn)
    .await?;
    Ok(())
}

/// Where a track's audio stands after a mirror attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AudioState<'a> {
    pub(crate) track_uri: &'a str,
    /// For `source = 'blob'`, the record's CID; for `'url'`, the CID of what was fetched.
    pub(crate) cid: Option<&'a str>,
    /// `blob` or `url`.
    pub(crate) source: &'static str,
    pub(crate) verified: bool,
    pub(crate) error: Option<&'a str>,
    /// Whether a failure spends one of the track's attempts: not when our own store or
    /// database failed (issue #6), which says nothing about the track.
    pub(crate) spends_attempt: bool,
}

/// Records the outcome of one attempt; a failure that spends an attempt counts towards the
/// limit, a success resets it.
#[tracing::instrument(skip(conn, state), fields(uri = state.track_uri))]
pub(crate) async fn record_audio(
    conn: &mut PgConnection,
    state: &AudioState<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into track_audio (track_uri, cid, source, verified, error, attempts, checked_at) \
         values ($1, $2, $3, $4, $5, case when $5::text is null then 0 else $6 end, now()) \
         on conflict (track_uri) do update set cid = excluded.cid, source = excluded.source, \
           verified = excluded.verified, error = excluded.error, checked_at = now(), \
           attempts = case when excluded.error is null then 0 \
                           when track_audio.cid is distinct from excluded.cid then $6 \
                           else track_audio.attempts + $6 end",
    )
    .bind(state.track_uri)
    .bind(state.cid)
    .bind(state.source)
    .bind(state.verified)
    .bind(state.error)
    .bind(i32::from(state.spends_attempt))
    .execute(conn)
    .await?;
    Ok(())
}

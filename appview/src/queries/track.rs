//! Queries returning tracks (fm.plyr.track) of active actors.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tracing::instrument;

use crate::cursor::{PositionCursor, TimeCursor};

/// A track joined with its author.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TrackRow {
    /// The record's AT-URI.
    pub uri: String,
    /// The record's CID.
    pub cid: String,
    /// The author's DID.
    pub did: String,
    /// The author's handle, null when unknown.
    pub handle: Option<String>,
    /// The author's avatar URL, from their profile record.
    pub avatar: Option<String>,
    /// The record as indexed, shared: cached rows hand it to every view without a deep copy.
    #[sqlx(try_from = "serde_json::Value")]
    pub record: Arc<serde_json::Value>,
    /// Likes counted by the indexer.
    pub like_count: i32,
    /// Comments counted by the indexer.
    pub comment_count: i32,
    /// When the indexer first stored the record.
    pub indexed_at: DateTime<Utc>,
    /// The feed position: `least(created_at, indexed_at)`.
    pub sort_at: DateTime<Utc>,
    /// The web API's integer id: 52 bits of sha256(uri) (migration 0003).
    pub web_id: i64,
    /// Where the mirrored audio came from (`blob` or `url`), null until mirrored.
    pub audio_source: Option<String>,
    /// Whether the mirrored audio was checked against the record's CID.
    pub audio_verified: Option<bool>,
    /// The CID of the mirrored copy.
    pub audio_cid: Option<String>,
    /// Its canonical MIME type.
    pub audio_mime: Option<String>,
    /// Its browser-playable rendition, when the original needs one.
    pub audio_web_rendition: Option<String>,
}

/// Every active actor's tracks, newest first, after `after`.
#[instrument(skip(db))]
pub async fn latest(
    db: &PgPool,
    after: Option<&TimeCursor>,
    limit: i64,
) -> Result<Vec<TrackRow>, sqlx::Error> {
    discovery(db, after, &[], limit).await
}

/// [`latest`] without the tracks that carry any of `exclude_labels` among their self-labels.
#[instrument(skip(db))]
pub async fn discovery(
    db: &PgPool,
    after: Option<&TimeCursor>,
    exclude_labels: &[&str],
    limit: i64,
) -> Result<Vec<TrackRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        visible_tracks!(),
        "where (t.sort_at, t.uri) < (coalesce($1, 'infinity'::timestamptz), coalesce($2, '')) ",
        without_labels!("$4"),
        " order by t.sort_at desc, t.uri desc limit $3"
    ))
    .bind(after.map(|c| c.at))
    .bind(after.map(|c| c.uri.as_str()))
    .bind(limit)
    .bind(exclude_labels)
    .fetch_all(db)
    .await
}

/// The visible track with this web id (ids are 52 bits of a hash: on the rare collision the
/// smallest URI answers, the same one every time).
#[instrument(skip(db))]
pub async fn by_web_id(db: &PgPool, web_id: i64) -> Result<Option<TrackRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        visible_tracks!(),
        "where t.web_id = $1 order by t.uri limit 1"
    ))
    .bind(web_id)
    .fetch_optional(db)
    .await
}

/// The visible track whose rkey is `rkey` (the web API's file id); the oldest when two
/// repositories used the same rkey.
#[instrument(skip(db))]
pub async fn by_rkey(db: &PgPool, rkey: &str) -> Result<Option<TrackRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        visible_tracks!(),
        "where t.rkey = $1 order by t.sort_at, t.uri limit 1"
    ))
    .bind(rkey)
    .fetch_optional(db)
    .await
}

/// The visible track whose record's `audioBlob` has this CID (the web API's file id when the
/// blob store holds the blob); the oldest when several records share the audio.
#[instrument(skip(db))]
pub async fn by_audio_cid(db: &PgPool, cid: &str) -> Result<Option<TrackRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        visible_tracks!(),
        "where t.record -> 'audioBlob' -> 'ref' ->> '$link' = $1 \
         order by t.sort_at, t.uri limit 1"
    ))
    .bind(cid)
    .fetch_optional(db)
    .await
}

/// The CIDs among `cids` whose bytes the blob store holds (migration 0007's `blob`): stored
/// under their CID, so a copy matches the record that names it.
#[instrument(skip(db))]
pub async fn held_audio(db: &PgPool, cids: &[String]) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("select cid from blob where cid = any($1)")
        .bind(cids)
        .fetch_all(db)
        .await
}

/// A track with the score a ranked feed orders it by.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ScoredTrackRow {
    /// The track.
    #[sqlx(flatten)]
    pub track: TrackRow,
    /// Larger first: all-time likes, or the likes (weighted, for trending) since a time in
    /// millionths.
    pub score: i64,
}

/// Liked tracks by like count, most liked first (ties by URI, descending), after `after`,
/// without `exclude_labels`. With `since`, only likes created at or after it count, by active
/// actors, an actor's likes of one track once (read through migration 0009's like-time index).
#[instrument(skip(db))]
pub async fn top(
    db: &PgPool,
    since: Option<DateTime<Utc>>,
    exclude_labels: &[&str],
    after: Option<&PositionCursor>,
    limit: i64,
) -> Result<Vec<ScoredTrackRow>, sqlx::Error> {
    match since {
        None => {
            sqlx::query_as(concat!(
                "select ",
                track_columns!(),
                // Migration 0012's ranking table, walked in order; `track` has no index on
                // `like_count`, so that a like updates its track's row in place.
                ", r.like_count::bigint as score \
                 from track_rank r join track t on t.uri = r.uri",
                track_joins!(),
                "where (r.like_count, r.uri) < (coalesce($3, 2147483647), coalesce($4, '')) ",
                without_labels!("$1"),
                " order by r.like_count desc, r.uri desc limit $2"
            ))
            .bind(exclude_labels)
            .bind(limit)
            .bind(after.map(|c| c.key))
            .bind(after.map(|c| c.uri.as_str()))
            .fetch_all(db)
            .await
        }
        Some(since) => recent_likes(db, since, None, exclude_labels, after, limit).await,
    }
}

/// Tracks liked since `since`, each like (by an active actor; an actor's likes of one track
/// once, the newest) weighted 2^((sort_at - since) / half_life), highest score first (ties
/// by URI, descending), after `after`. Growth from a fixed `since` orders tracks as decay from
/// now would, and keeps scores stable between pages while `since` is. Scores are in millionths.
#[instrument(skip(db))]
pub async fn trending(
    db: &PgPool,
    since: DateTime<Utc>,
    half_life_secs: f64,
    exclude_labels: &[&str],
    after: Option<&PositionCursor>,
    limit: i64,
) -> Result<Vec<ScoredTrackRow>, sqlx::Error> {
    recent_likes(
        db,
        since,
        Some(half_life_secs),
        exclude_labels,
        after,
        limit,
    )
    .await
}

/// Tracks by their likes since `since` (active likers, one like per actor and track), each
/// weighing 1, or growing with a `half_life` as [`trending`] explains; the score is the sum
/// of weights in millionths. A like's time is its `sort_at`, least(createdAt, indexedAt): a
/// like dated in the future counts from when it was indexed (migration 0014, whose index this
/// reads).
///
/// The scores are ranked (after the cursor) before any track is joined, so only the page's
/// tracks and the few hidden ones among them are fetched: joining first made Postgres fetch
/// and filter every liked track before its top-N sort (622 ms against 237 ms for a day of
/// 86k likes on the load bench's data).
async fn recent_likes(
    db: &PgPool,
    since: DateTime<Utc>,
    half_life_secs: Option<f64>,
    exclude_labels: &[&str],
    after: Option<&PositionCursor>,
    limit: i64,
) -> Result<Vec<ScoredTrackRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "with pairs as (select distinct on (l.subject_uri, l.did) l.subject_uri, l.sort_at \
           from track_like l join actor la on la.did = l.did and la.active \
           where l.sort_at >= $1 \
           order by l.subject_uri, l.did, l.sort_at desc), \
         recent as (select subject_uri, \
           floor(sum(case when $2::float8 is null then 1 else power(2::float8, \
                 least(extract(epoch from sort_at - $1)::float8 / $2, 40)) end) * 1000000) \
             ::bigint as score \
           from pairs group by subject_uri), \
         ranked as (select subject_uri, score from recent \
           where (score, subject_uri) < (coalesce($5, 9223372036854775807), coalesce($6, '')) \
           order by score desc, subject_uri desc) \
         select ",
        track_columns!(),
        ", r.score from ranked r join track t on t.uri = r.subject_uri",
        track_joins!(),
        "where true ",
        without_labels!("$3"),
        " order by r.score desc, r.subject_uri desc limit $4"
    ))
    .bind(since)
    .bind(half_life_secs)
    .bind(exclude_labels)
    .bind(limit)
    .bind(after.map(|c| c.key))
    .bind(after.map(|c| c.uri.as_str()))
    .fetch_all(db)
    .await
}

/// One actor's tracks whose `album` is `album`, oldest first (an album's running order when it
/// has no list record).
#[instrument(skip(db))]
pub async fn by_album(
    db: &PgPool,
    did: &str,
    album: &str,
    limit: i64,
) -> Result<Vec<TrackRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        visible_tracks!(),
        "where t.did = $1 and t.album = $2 order by t.sort_at, t.uri limit $3"
    ))
    .bind(did)
    .bind(album)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// One visible track.
#[instrument(skip(db))]
pub async fn by_uri(db: &PgPool, uri: &str) -> Result<Option<TrackRow>, sqlx::Error> {
    sqlx::query_as(concat!(visible_tracks!(), "where t.uri = $1"))
        .bind(uri)
        .fetch_optional(db)
        .await
}

/// The visible tracks among `uris`, in no particular order.
#[instrument(skip(db))]
pub async fn by_uris(db: &PgPool, uris: &[String]) -> Result<Vec<TrackRow>, sqlx::Error> {
    sqlx::query_as(concat!(visible_tracks!(), "where t.uri = any($1)"))
        .bind(uris)
        .fetch_all(db)
        .await
}

/// One actor's tracks, newest first, after `after`.
#[instrument(skip(db))]
pub async fn by_author(
    db: &PgPool,
    did: &str,
    after: Option<&TimeCursor>,
    limit: i64,
) -> Result<Vec<TrackRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        visible_tracks!(),
        "where t.did = $1 \
           and (t.sort_at, t.uri) < (coalesce($2, 'infinity'::timestamptz), coalesce($3, '')) \
         order by t.sort_at desc, t.uri desc limit $4"
    ))
    .bind(did)
    .bind(after.map(|c| c.at))
    .bind(after.map(|c| c.uri.as_str()))
    .bind(limit)
    .fetch_all(db)
    .await
}

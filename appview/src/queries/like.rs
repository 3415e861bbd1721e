//! Queries over likes (fm.plyr.like): who liked a track, and which tracks an actor liked.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tracing::instrument;

use super::track::TrackRow;
use crate::cursor::TimeCursor;

/// A like joined with the actor who gave it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LikeRow {
    /// The like record's AT-URI.
    pub uri: String,
    /// The like record's CID.
    pub cid: String,
    /// The liker's DID.
    pub did: String,
    /// The liker's handle, null when unknown.
    pub handle: Option<String>,
    /// The liker's avatar URL.
    pub avatar: Option<String>,
    /// `createdAt` of the like record.
    pub created_at: DateTime<Utc>,
    /// When the indexer stored the like.
    pub indexed_at: DateTime<Utc>,
    /// The list position: `least(created_at, indexed_at)`.
    pub sort_at: DateTime<Utc>,
}

/// A liked track, with the like that placed it in the list.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LikedTrackRow {
    /// The track.
    #[sqlx(flatten)]
    pub track: TrackRow,
    /// The like's AT-URI (the page's tie-breaker).
    pub like_uri: String,
    /// The like's `sort_at` (the page's order).
    pub like_sort_at: DateTime<Utc>,
}

/// Likes of `subject_uri` by active actors, newest first, after `after`; an actor who liked
/// the track twice appears once, with their newest like. Empty when the
/// track's author (`subject_did`, the URI's authority) is hidden.
#[instrument(skip(db))]
pub async fn of_track(
    db: &PgPool,
    subject_uri: &str,
    subject_did: &str,
    after: Option<&TimeCursor>,
    limit: i64,
) -> Result<Vec<LikeRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "select l.uri, l.cid, l.did, a.handle, p.avatar, l.created_at, l.indexed_at, l.sort_at \
         from track_like l \
         join actor a on a.did = l.did and a.active and",
        not_hidden!("l.uri", "l.did"),
        "\
         left join profile p on p.did = l.did \
         where l.subject_uri = $1",
        newest_like_of_pair!(),
        "and not exists (select 1 from actor s where s.did = $2 and not s.active) \
           and",
        not_hidden!("$1", "$2"),
        "\
           and (l.sort_at, l.uri) < (coalesce($3, 'infinity'::timestamptz), coalesce($4, '')) \
         order by l.sort_at desc, l.uri desc limit $5"
    ))
    .bind(subject_uri)
    .bind(subject_did)
    .bind(after.map(|c| c.at))
    .bind(after.map(|c| c.uri.as_str()))
    .bind(limit)
    .fetch_all(db)
    .await
}

/// Visible tracks liked by `did`, newest like first, after `after` (a like's position); a track
/// liked twice appears once, at its newest like.
#[instrument(skip(db))]
pub async fn liked_tracks(
    db: &PgPool,
    did: &str,
    after: Option<&TimeCursor>,
    limit: i64,
) -> Result<Vec<LikedTrackRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "select ",
        track_columns!(),
        ", l.uri as like_uri, l.sort_at as like_sort_at \
         from track_like l join track t on t.uri = l.subject_uri",
        track_joins!(),
        "where l.did = $1",
        newest_like_of_pair!(),
        "and (l.sort_at, l.uri) < (coalesce($2, 'infinity'::timestamptz), coalesce($3, '')) \
         order by l.sort_at desc, l.uri desc limit $4"
    ))
    .bind(did)
    .bind(after.map(|c| c.at))
    .bind(after.map(|c| c.uri.as_str()))
    .bind(limit)
    .fetch_all(db)
    .await
}

/// The viewer's like of each of `subjects` they liked: (track URI, like URI), the newest like
/// of each pair as in the like lists.
#[instrument(skip(db, subjects))]
pub async fn viewer_likes(
    db: &PgPool,
    viewer: &str,
    subjects: &[String],
) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "select distinct on (l.subject_uri) l.subject_uri, l.uri from track_like l
         where l.did = $1 and l.subject_uri = any($2::text[])
         order by l.subject_uri, l.sort_at desc, l.uri desc",
    )
    .bind(viewer)
    .bind(subjects)
    .fetch_all(db)
    .await
}

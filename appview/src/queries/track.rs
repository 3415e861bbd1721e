//! Queries returning tracks (fm.plyr.track) of active actors.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tracing::instrument;

use crate::cursor::TimeCursor;

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
    /// The record as indexed.
    pub record: serde_json::Value,
    /// Likes counted by the indexer.
    pub like_count: i32,
    /// Comments counted by the indexer.
    pub comment_count: i32,
    /// When the indexer first stored the record.
    pub indexed_at: DateTime<Utc>,
    /// The feed position: `least(created_at, indexed_at)`.
    pub sort_at: DateTime<Utc>,
}

/// Every active actor's tracks, newest first, after `after`.
#[instrument(skip(db))]
pub async fn latest(
    db: &PgPool,
    after: Option<&TimeCursor>,
    limit: i64,
) -> Result<Vec<TrackRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "select ",
        track_columns!(),
        " from track t",
        track_joins!(),
        "where (t.sort_at, t.uri) < (coalesce($1, 'infinity'::timestamptz), coalesce($2, '')) \
         order by t.sort_at desc, t.uri desc limit $3"
    ))
    .bind(after.map(|c| c.at))
    .bind(after.map(|c| c.uri.as_str()))
    .bind(limit)
    .fetch_all(db)
    .await
}

/// One visible track.
#[instrument(skip(db))]
pub async fn by_uri(db: &PgPool, uri: &str) -> Result<Option<TrackRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "select ",
        track_columns!(),
        " from track t",
        track_joins!(),
        "where t.uri = $1"
    ))
    .bind(uri)
    .fetch_optional(db)
    .await
}

/// The visible tracks among `uris`, in no particular order.
#[instrument(skip(db))]
pub async fn by_uris(db: &PgPool, uris: &[String]) -> Result<Vec<TrackRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "select ",
        track_columns!(),
        " from track t",
        track_joins!(),
        "where t.uri = any($1)"
    ))
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
        "select ",
        track_columns!(),
        " from track t",
        track_joins!(),
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

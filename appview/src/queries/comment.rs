//! Queries over timed comments (fm.plyr.comment), read in playback order.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tracing::instrument;

use crate::cursor::PositionCursor;

/// A comment joined with its author.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CommentRow {
    /// The comment record's AT-URI.
    pub uri: String,
    /// The comment record's CID.
    pub cid: String,
    /// The author's DID.
    pub did: String,
    /// The author's handle, null when unknown.
    pub handle: Option<String>,
    /// The author's avatar URL.
    pub avatar: Option<String>,
    /// The record as indexed.
    pub record: serde_json::Value,
    /// The comment text.
    pub body: String,
    /// Playback position the comment is anchored to.
    pub timestamp_ms: i64,
    /// `createdAt` of the record.
    pub created_at: DateTime<Utc>,
    /// When the indexer stored the comment.
    pub indexed_at: DateTime<Utc>,
}

/// Comments on `subject_uri` by active actors, by (timestamp_ms, uri), after `after`. Empty
/// when the track's author (`subject_did`) is hidden.
#[instrument(skip(db))]
pub async fn of_track(
    db: &PgPool,
    subject_uri: &str,
    subject_did: &str,
    after: Option<&PositionCursor>,
    limit: i64,
) -> Result<Vec<CommentRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "select c.uri, c.cid, c.did, a.handle, p.avatar, c.record, c.body, c.timestamp_ms, \
                c.created_at, c.indexed_at \
         from comment c \
         join actor a on a.did = c.did and a.active and",
        not_hidden!("c.uri", "c.did"),
        "\
         left join profile p on p.did = c.did \
         where c.subject_uri = $1 \
           and not exists (select 1 from actor s where s.did = $2 and not s.active) \
           and",
        not_hidden!("$1", "$2"),
        "\
           and (c.timestamp_ms, c.uri) \
               > (coalesce($3, '-9223372036854775808'::bigint), coalesce($4, '')) \
         order by c.timestamp_ms, c.uri limit $5"
    ))
    .bind(subject_uri)
    .bind(subject_did)
    .bind(after.map(|c| c.key))
    .bind(after.map(|c| c.uri.as_str()))
    .bind(limit)
    .fetch_all(db)
    .await
}

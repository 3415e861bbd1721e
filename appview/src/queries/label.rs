//! Labels to hydrate (migration 0008), and the labelers this AppView follows.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tracing::instrument;

/// A label in force.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LabelRow {
    /// The labeler's DID.
    pub src: String,
    /// The labelled subject: an AT-URI or a DID.
    pub uri: String,
    /// The version of the record the label applies to, if pinned.
    pub cid: Option<String>,
    /// The label value.
    pub val: String,
    /// When the label was created.
    pub cts: DateTime<Utc>,
    /// When it stops applying, if ever.
    pub exp: Option<DateTime<Utc>>,
    /// The label format version.
    pub ver: Option<i64>,
}

/// The labels by `srcs` on `uris` in force now: not negated, not expired.
#[instrument(skip(db))]
pub async fn of_subjects(
    db: &PgPool,
    uris: &[String],
    srcs: &[String],
) -> Result<Vec<LabelRow>, sqlx::Error> {
    sqlx::query_as(
        "select src, uri, cid, val, cts, exp, ver from label \
         where uri = any($1) and src = any($2) and not neg and (exp is null or exp > now()) \
         order by uri, src, val",
    )
    .bind(uris)
    .bind(srcs)
    .fetch_all(db)
    .await
}

/// The DIDs of the labelers followed: those whose stream stored a cursor (`labeler:<did>`).
#[instrument(skip(db))]
pub async fn labelers(db: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "select substr(source, 9) from consumer_cursor where source like 'labeler:%' \
         order by source",
    )
    .fetch_all(db)
    .await
}

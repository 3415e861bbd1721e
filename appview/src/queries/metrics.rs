//! What `/metrics` reads of the indexer's progress: its cursors, skip counts and records, all
//! from the tables it writes, so the appview needs nothing of the indexer crate.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tracing::instrument;

/// Where one event source stands.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CursorRow {
    /// `jetstream`, `relay:<host>`, ...
    pub source: String,
    /// Jetstream: the last event's `time_us`; relay: its seq.
    pub cursor: i64,
    /// When the indexer last committed a batch of this source.
    pub updated_at: DateTime<Utc>,
}

/// Events skipped for one reason, all time.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SkipRow {
    /// The skip reason (a bounded set of labels).
    pub reason: String,
    /// How many.
    pub count: i64,
}

/// Every source's cursor.
#[instrument(skip(db))]
pub async fn cursors(db: &PgPool) -> Result<Vec<CursorRow>, sqlx::Error> {
    sqlx::query_as("select source, cursor, updated_at from consumer_cursor order by source")
        .fetch_all(db)
        .await
}

/// Skip counts by reason.
#[instrument(skip(db))]
pub async fn skips(db: &PgPool) -> Result<Vec<SkipRow>, sqlx::Error> {
    sqlx::query_as("select reason, count from indexer_skip order by reason")
        .fetch_all(db)
        .await
}

/// Records the indexer holds: (live, deleted). Each event that won writes one ledger row.
#[instrument(skip(db))]
pub async fn records(db: &PgPool) -> Result<(i64, i64), sqlx::Error> {
    sqlx::query_as(
        "select count(*) filter (where not deleted), count(*) filter (where deleted) from record",
    )
    .fetch_one(db)
    .await
}

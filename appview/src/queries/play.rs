//! Plays reported by listeners of the web client: deduplicated per listener, counted per track.

use sqlx::PgPool;
use tracing::instrument;

/// A play older than this never blocks a new one (the longest dedup window); such rows are
/// pruned as plays arrive.
const KEEP_SECS: f64 = 3600.0;

/// Rows pruned per recorded play: enough to keep up with any arrival rate that counts, small
/// enough that no play waits on a large delete.
const PRUNE_BATCH: i64 = 100;

/// Records a play of `track_uri` (by `did`) from `listener` and returns the track's play count,
/// with `true` when this play counted: it counts unless the same listener's previous play of the
/// track is younger than `window_secs`. `alias`, another key of the same listener (a cookie
/// issued with this answer), is marked as having just played, so the listener's next play,
/// made under the alias, is deduplicated too.
#[instrument(skip(db, listener, alias))]
pub async fn record(
    db: &PgPool,
    track_uri: &str,
    did: &str,
    listener: &[u8],
    alias: Option<&[u8]>,
    window_secs: f64,
) -> Result<(i64, bool), sqlx::Error> {
    let mut tx = db.begin().await?;
    sqlx::query(
        "delete from web_play where ctid in (select ctid from web_play \
         where played_at < now() - make_interval(secs => $1) limit $2)",
    )
    .bind(KEEP_SECS)
    .bind(PRUNE_BATCH)
    .execute(&mut *tx)
    .await?;
    let counted = sqlx::query(
        "insert into web_play (track_uri, listener, played_at) values ($1, $2, now()) \
         on conflict (track_uri, listener) do update set played_at = excluded.played_at \
         where web_play.played_at < now() - make_interval(secs => $3)",
    )
    .bind(track_uri)
    .bind(listener)
    .bind(window_secs)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        > 0;
    if let Some(alias) = alias {
        sqlx::query(
            "insert into web_play (track_uri, listener, played_at) values ($1, $2, now()) \
             on conflict (track_uri, listener) do update set played_at = excluded.played_at",
        )
        .bind(track_uri)
        .bind(alias)
        .execute(&mut *tx)
        .await?;
    }
    let plays: Option<i64> = if counted {
        sqlx::query_scalar(
            "insert into web_play_count (track_uri, did, plays) values ($1, $2, 1) \
             on conflict (track_uri) do update set plays = web_play_count.plays + 1 \
             returning plays",
        )
        .bind(track_uri)
        .bind(did)
        .fetch_optional(&mut *tx)
        .await?
    } else {
        sqlx::query_scalar("select plays from web_play_count where track_uri = $1")
            .bind(track_uri)
            .fetch_optional(&mut *tx)
            .await?
    };
    tx.commit().await?;
    Ok((plays.unwrap_or(0), counted))
}

/// Play counts of the tracks among `uris` that have any, as (uri, plays).
#[instrument(skip(db))]
pub async fn counts(db: &PgPool, uris: &[String]) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as("select track_uri, plays from web_play_count where track_uri = any($1)")
        .bind(uris)
        .fetch_all(db)
        .await
}

//! Totals over the whole view, and per artist, for the web client's stats and analytics.

use sqlx::PgPool;
use tracing::instrument;

/// Totals over every visible track.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TotalsRow {
    /// Counted plays.
    pub plays: i64,
    /// Tracks.
    pub tracks: i64,
    /// Distinct artists among them.
    pub artists: i64,
    /// Sum of the records' `duration` (seconds), where given.
    pub duration_seconds: i64,
}

/// One track in an artist's analytics: the most played or the most liked.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TopTrackRow {
    /// The track's web id.
    pub web_id: i64,
    /// The title.
    pub title: String,
    /// Counted plays, or likes for the most liked.
    pub count: i64,
}

/// `select` of [`TotalsRow`] over the visible tracks, for `concat!` before an optional `where`.
macro_rules! totals_of_visible_tracks {
    () => {
        concat!(
            "select coalesce(sum(coalesce(c.plays, 0)), 0)::bigint as plays, \
                    count(*) as tracks, count(distinct t.did) as artists, \
                    coalesce(sum(case when jsonb_typeof(t.record->'duration') = 'number' \
                        and (t.record->>'duration') ~ '^[0-9]{1,9}$' \
                        then (t.record->>'duration')::bigint else 0 end), 0)::bigint \
                      as duration_seconds \
             from track t join actor a on a.did = t.did and a.active and",
            not_hidden!("t.uri", "t.did"),
            " left join web_play_count c on c.track_uri = t.uri "
        )
    };
}

/// The visible tracks of `did` (all artists when null), summed. `duration` is read only when it
/// is a JSON integer in the i32 range: the lexicon makes it an integer, and a hostile value
/// must not fail the sum. Two statements rather than `$1 is null or t.did = $1`: the server's
/// connections use generic plans, which could not use the `did` index for the latter.
#[instrument(skip(db))]
pub async fn totals(db: &PgPool, did: Option<&str>) -> Result<TotalsRow, sqlx::Error> {
    match did {
        Some(did) => {
            sqlx::query_as(concat!(totals_of_visible_tracks!(), "where t.did = $1"))
                .bind(did)
                .fetch_one(db)
                .await
        }
        None => {
            sqlx::query_as(totals_of_visible_tracks!())
                .fetch_one(db)
                .await
        }
    }
}

/// The artist's most played track (with at least one play).
#[instrument(skip(db))]
pub async fn most_played(db: &PgPool, did: &str) -> Result<Option<TopTrackRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "select t.web_id, t.title, c.plays as count \
         from web_play_count c join track t on t.uri = c.track_uri \
         join actor a on a.did = t.did and a.active and",
        not_hidden!("t.uri", "t.did"),
        "\
         where c.did = $1 and c.plays > 0 order by c.plays desc, t.uri limit 1"
    ))
    .bind(did)
    .fetch_optional(db)
    .await
}

/// The artist's most liked track (with at least one like).
#[instrument(skip(db))]
pub async fn most_liked(db: &PgPool, did: &str) -> Result<Option<TopTrackRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "select t.web_id, t.title, t.like_count::bigint as count \
         from track t join actor a on a.did = t.did and a.active and",
        not_hidden!("t.uri", "t.did"),
        "\
         where t.did = $1 and t.like_count > 0 order by t.like_count desc, t.uri limit 1"
    ))
    .bind(did)
    .fetch_optional(db)
    .await
}

/// The artist's place (1-based) among artists ranked by counted plays, if they have any.
#[instrument(skip(db))]
pub async fn play_rank(db: &PgPool, did: &str) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(concat!(
        "with totals as (select c.did, sum(c.plays) as plays from web_play_count c \
                         join actor a on a.did = c.did and a.active \
                         where",
        not_hidden!("c.track_uri", "c.did"),
        "group by c.did) \
         select 1 + (select count(*) from totals o where o.plays > t.plays) \
         from totals t where t.did = $1 and t.plays > 0"
    ))
    .bind(did)
    .fetch_optional(db)
    .await
}

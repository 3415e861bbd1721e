//! The platform activity feed: new tracks, likes, comments, playlists and album releases of
//! everyone, newest first by `sort_at` (`least(createdAt, indexedAt)`), keyset on (sort_at,
//! uri). Each arm reads its table's sort index (migrations 0001, 0009) for one page at most.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tracing::instrument;

use crate::cursor::TimeCursor;

/// One event of the feed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ActivityRow {
    /// `track`, `like`, `comment`, `playlist` or `album`.
    pub kind: String,
    /// The record the event is: the track, like, comment or list.
    pub uri: String,
    /// Who did it.
    pub did: String,
    /// Their handle, null when unknown.
    pub handle: Option<String>,
    /// Their fm.plyr profile avatar.
    pub avatar: Option<String>,
    /// The feed position.
    pub sort_at: DateTime<Utc>,
    /// The track it is about (the new track itself, or the liked or commented one); null for
    /// lists.
    pub subject_uri: Option<String>,
    /// A comment's text.
    pub body: Option<String>,
}

/// Keeps only events whose subject track `$t` is visible. For `concat!` after a `where`.
macro_rules! visible_subject {
    ($t:literal) => {
        concat!(
            " and exists (select 1 from track st join actor sa on sa.did = st.did and sa.active \
               where st.uri = ",
            $t,
            " and",
            not_hidden!("st.uri", "st.did"),
            ") "
        )
    };
}

/// The events after `after`, newest first. Content of inactive or hidden actors, hidden
/// records, and likes and comments of invisible tracks are left out.
#[instrument(skip(db))]
pub async fn feed(
    db: &PgPool,
    after: Option<&TimeCursor>,
    limit: i64,
) -> Result<Vec<ActivityRow>, sqlx::Error> {
    let mut tx = super::serial(db).await?;
    let rows = sqlx::query_as(concat!(
        "select e.kind, e.uri, e.did, e.handle, p.avatar, e.sort_at, e.subject_uri, e.body \
         from ( \
           (select 'track' as kind, t.uri, t.did, a.handle, t.sort_at, t.uri as subject_uri, \
                   null::text as body \
            from track t join actor a on a.did = t.did and a.active \
            where (t.sort_at, t.uri) < (coalesce($1, 'infinity'::timestamptz), \
                                                     coalesce($2, '')) \
            and",
        not_hidden!("t.uri", "t.did"),
        "order by t.sort_at desc, t.uri desc limit $3) \
           union all \
           (select 'like', l.uri, l.did, a.handle, l.sort_at, l.subject_uri, null \
            from track_like l join actor a on a.did = l.did and a.active \
            where (l.sort_at, l.uri) < (coalesce($1, 'infinity'::timestamptz), \
                                                          coalesce($2, '')) \
            and",
        not_hidden!("l.uri", "l.did"),
        visible_subject!("l.subject_uri"),
        "order by l.sort_at desc, l.uri desc limit $3) \
           union all \
           (select 'comment', c.uri, c.did, a.handle, c.sort_at, c.subject_uri, c.body \
            from comment c join actor a on a.did = c.did and a.active \
            where (c.sort_at, c.uri) < (coalesce($1, 'infinity'::timestamptz), \
                                                       coalesce($2, '')) \
            and",
        not_hidden!("c.uri", "c.did"),
        visible_subject!("c.subject_uri"),
        "order by c.sort_at desc, c.uri desc limit $3) \
           union all \
           (select l.list_type, l.uri, l.did, a.handle, l.sort_at, null, null \
            from list l join actor a on a.did = l.did and a.active \
            where (l.sort_at, l.uri) < (coalesce($1, 'infinity'::timestamptz), \
                                                    coalesce($2, '')) \
            and l.list_type in ('playlist', 'album') and",
        not_hidden!("l.uri", "l.did"),
        "order by l.sort_at desc, l.uri desc limit $3) \
         ) e left join profile p on p.did = e.did \
         order by e.sort_at desc, e.uri desc limit $3"
    ))
    .bind(after.map(|c| c.at))
    .bind(after.map(|c| c.uri.as_str()))
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows)
}

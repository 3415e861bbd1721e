//! Queries over albums: `fm.plyr.list` records of type album, and the album names tracks carry
//! (an implicit album per artist and name when no album list has that name).

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tracing::instrument;

/// Most albums read per artist: far above any discography, a bound if one is not.
const MAX_ALBUMS_PER_ARTIST: i64 = 1000;

/// One album of an artist: a list record, or a name their tracks carry.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AlbumRow {
    /// The artist's DID.
    pub did: String,
    /// The album list's AT-URI; null for an implicit album.
    pub list_uri: Option<String>,
    /// The album list's web id (a UUID); null for an implicit album.
    pub list_web_id: Option<String>,
    /// The list's name, or the tracks' `album`. (Rows also carry `created_at`, when the album
    /// appeared, which orders them: older albums keep the plain slug.)
    pub title: String,
}

/// An album found by [`search`].
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AlbumHitRow {
    /// The album.
    #[sqlx(flatten)]
    pub album: AlbumRow,
    /// `plyr_search_rank` of its title (smaller is better).
    pub rank: i64,
}

/// Which track belongs to which album of an artist.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AlbumMemberRow {
    /// The album list's AT-URI, or null for membership by the track's `album` name.
    pub list_uri: Option<String>,
    /// The track's `album`, when membership is by name.
    pub album: Option<String>,
    /// The track.
    pub track_uri: String,
    /// The track's `imageUrl`.
    pub image_url: Option<String>,
    /// The track's counted plays.
    pub plays: i64,
    /// The track's feed position (album art comes from the oldest track).
    pub sort_at: DateTime<Utc>,
}

/// The albums of active actors: named album lists, then the distinct `album` names of tracks
/// that no album list of their artist carries, each with `created_at` (the list's position, or
/// the oldest track's). `$list` filters `list l`, `$track` filters `track t`; for `concat!`
/// before an `order by`. Two filters rather than one optional one, so that each query keeps a
/// plan that uses its index.
macro_rules! albums_where {
    ($list:expr, $track:expr) => {
        concat!(
            "select * from ( \
               select l.did, l.uri as list_uri, l.web_id::text as list_web_id, l.name as title, \
                      l.sort_at as created_at \
               from list l join actor a on a.did = l.did and a.active and",
            not_hidden!("l.uri", "l.did"),
            "\
               where l.list_type = 'album' and coalesce(l.name, '') <> '' and ",
            $list,
            " union all \
               select t.did, null, null, t.album, min(t.sort_at) \
               from track t join actor a on a.did = t.did and a.active and",
            not_hidden!("t.uri", "t.did"),
            "\
               where coalesce(t.album, '') <> '' and ",
            $track,
            " and not exists (select 1 from list l where l.did = t.did \
                                 and l.list_type = 'album' and l.name = t.album) \
               group by t.did, t.album \
             ) albums "
        )
    };
}

/// The albums of the active actors among `dids`, by artist, oldest first.
#[instrument(skip(db))]
pub async fn of_artists(db: &PgPool, dids: &[String]) -> Result<Vec<AlbumRow>, sqlx::Error> {
    let limit = MAX_ALBUMS_PER_ARTIST.saturating_mul(i64::try_from(dids.len()).unwrap_or(i64::MAX));
    sqlx::query_as(concat!(
        albums_where!("l.did = any($1)", "t.did = any($1)"),
        "order by did, created_at, title, list_uri limit $2"
    ))
    .bind(dids)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// Albums whose title matches `q` (migration 0009's ranked search: exact, prefix, substring,
/// similar; ties by word similarity), best first, then newest.
#[instrument(skip(db))]
pub async fn search(db: &PgPool, q: &str, limit: i64) -> Result<Vec<AlbumHitRow>, sqlx::Error> {
    let mut tx = super::custom_plans(db).await?;
    let hits = sqlx::query_as(concat!(
        "select *, ",
        search_rank!("plyr_search_norm(title)"),
        " as rank from (",
        albums_where!(search_match!("l.name_norm"), search_match!("t.album_norm")),
        ") hits order by rank, created_at desc, did, title limit $2"
    ))
    .bind(q)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(hits)
}

/// The visible tracks of an active artist's albums: items of their album lists, and their
/// tracks that name an album.
#[instrument(skip(db))]
pub async fn members(db: &PgPool, did: &str) -> Result<Vec<AlbumMemberRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "select li.list_uri, null as album, t.uri as track_uri, t.record->>'imageUrl' as image_url, \
                coalesce(c.plays, 0) as plays, t.sort_at \
         from list l join list_item li on li.list_uri = l.uri \
         join track t on t.uri = li.subject_uri \
         join actor a on a.did = t.did and a.active and", not_hidden!("t.uri", "t.did"), "\
         left join web_play_count c on c.track_uri = t.uri \
         where l.did = $1 and l.list_type = 'album' \
         union all \
         select null, t.album, t.uri, t.record->>'imageUrl', coalesce(c.plays, 0), t.sort_at \
         from track t join actor a on a.did = t.did and a.active and", not_hidden!("t.uri", "t.did"), "\
         left join web_play_count c on c.track_uri = t.uri \
         where t.did = $1 and coalesce(t.album, '') <> ''"
    ))
    .bind(did)
    .fetch_all(db)
    .await
}

//! Queries over lists (fm.plyr.list: albums, playlists, liked lists) and their items.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tracing::instrument;

use super::track::TrackRow;
use crate::cursor::TimeCursor;

/// Most items a list record may hold (the fm.plyr.list lexicon's `maxLength`); a bound on
/// `items` even if a larger list slipped into the table.
const MAX_LIST_ITEMS: i64 = 500;

/// `select` of [`ListRow`] from `list l` of active authors, for `concat!` before a `where`.
macro_rules! visible_lists {
    () => {
        concat!(
            "select l.uri, l.cid, l.did, a.handle, p.avatar, l.name, l.list_type, l.item_count, \
                l.created_at, l.indexed_at, l.sort_at \
         from list l \
         join actor a on a.did = l.did and a.active and",
            not_hidden!("l.uri", "l.did"),
            "left join profile p on p.did = l.did "
        )
    };
}

/// A list joined with its author, without the record.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ListRow {
    /// The list record's AT-URI.
    pub uri: String,
    /// The list record's CID.
    pub cid: String,
    /// The author's DID.
    pub did: String,
    /// The author's handle, null when unknown.
    pub handle: Option<String>,
    /// The author's avatar URL.
    pub avatar: Option<String>,
    /// The list's name, if the record has one.
    pub name: Option<String>,
    /// album, playlist, liked, or another value the record chose.
    pub list_type: Option<String>,
    /// Items in the record, visible or not.
    pub item_count: i32,
    /// `createdAt` of the record.
    pub created_at: DateTime<Utc>,
    /// When the indexer stored the list.
    pub indexed_at: DateTime<Utc>,
    /// The list position: `least(created_at, indexed_at)`.
    pub sort_at: DateTime<Utc>,
}

/// A list with its record.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ListDetailRow {
    /// The list.
    #[sqlx(flatten)]
    pub list: ListRow,
    /// The record as indexed.
    pub record: serde_json::Value,
}

/// One visible list.
#[instrument(skip(db))]
pub async fn by_uri(db: &PgPool, uri: &str) -> Result<Option<ListDetailRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "select l.uri, l.cid, l.did, a.handle, p.avatar, l.name, l.list_type, l.item_count, \
                l.created_at, l.indexed_at, l.sort_at, l.record \
         from list l \
         join actor a on a.did = l.did and a.active and",
        not_hidden!("l.uri", "l.did"),
        "\
         left join profile p on p.did = l.did \
         where l.uri = $1"
    ))
    .bind(uri)
    .fetch_optional(db)
    .await
}

/// One actor's lists, newest first, after `after`, of `list_type` when given.
#[instrument(skip(db))]
pub async fn by_author(
    db: &PgPool,
    did: &str,
    list_type: Option<&str>,
    after: Option<&TimeCursor>,
    limit: i64,
) -> Result<Vec<ListRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        visible_lists!(),
        "where l.did = $1 \
           and ($2::text is null or l.list_type = $2) \
           and (l.sort_at, l.uri) < (coalesce($3, 'infinity'::timestamptz), coalesce($4, '')) \
         order by l.sort_at desc, l.uri desc limit $5"
    ))
    .bind(did)
    .bind(list_type)
    .bind(after.map(|c| c.at))
    .bind(after.map(|c| c.uri.as_str()))
    .bind(limit)
    .fetch_all(db)
    .await
}

/// The visible tracks of a list, in record order.
#[instrument(skip(db))]
pub async fn items(db: &PgPool, list_uri: &str) -> Result<Vec<TrackRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "select ",
        track_columns!(),
        " from list_item li join track t on t.uri = li.subject_uri",
        track_joins!(),
        "where li.list_uri = $1 order by li.position limit $2"
    ))
    .bind(list_uri)
    .bind(MAX_LIST_ITEMS)
    .fetch_all(db)
    .await
}

/// The visible list whose web id (a UUID, migration 0003) is `web_id`.
#[instrument(skip(db))]
pub async fn by_web_id(db: &PgPool, web_id: &str) -> Result<Option<ListDetailRow>, sqlx::Error> {
    let uri: Option<String> =
        sqlx::query_scalar("select uri from list where web_id = $1::uuid order by uri limit 1")
            .bind(web_id)
            .fetch_optional(db)
            .await?;
    match uri {
        Some(uri) => by_uri(db, &uri).await,
        None => Ok(None),
    }
}

/// Up to `per_list` artworks (`imageUrl`) of the visible tracks of each list among
/// `list_uris`, in record order, as (list uri, image url).
#[instrument(skip(db))]
pub async fn artworks(
    db: &PgPool,
    list_uris: &[String],
    per_list: i64,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as(concat!(
        "select list_uri, image_url from ( \
           select li.list_uri, t.record->>'imageUrl' as image_url, \
                  row_number() over (partition by li.list_uri order by li.position) as n \
           from list_item li join track t on t.uri = li.subject_uri \
           join actor a on a.did = t.did and a.active and",
        not_hidden!("t.uri", "t.did"),
        "\
           where li.list_uri = any($1) and t.record->>'imageUrl' is not null \
         ) art where n <= $2 order by list_uri, n"
    ))
    .bind(list_uris)
    .bind(per_list)
    .fetch_all(db)
    .await
}

/// The visible lists among `uris`, in no particular order.
#[instrument(skip(db))]
pub async fn by_uris(db: &PgPool, uris: &[String]) -> Result<Vec<ListRow>, sqlx::Error> {
    sqlx::query_as(concat!(visible_lists!(), "where l.uri = any($1)"))
        .bind(uris)
        .fetch_all(db)
        .await
}

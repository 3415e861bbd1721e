//! Search over visible tracks, actors, albums and playlists: the hits (kind, key, rank) of
//! one query, found through the indexes on the stored normalized names (migrations 0011,
//! 0013). Names that start with the query come first (`plyr_search_rank`'s exact and prefix
//! tiers, migration 0009), in name order then key, read straight from the name indexes so a
//! page costs its rows however many names match; the rest follow ranked (substring, then only
//! similar; ties by word similarity, then key), which ranks every match. Callers hydrate the
//! hits with the usual view queries.

use sqlx::{PgConnection, PgPool};
use tracing::instrument;

use crate::cursor::SearchCursor;

/// What a search looks through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Kinds {
    /// Tracks, by title.
    pub tracks: bool,
    /// Active actors, by handle and display name.
    pub actors: bool,
    /// Lists of type album, by name.
    pub albums: bool,
    /// Lists of type playlist, by name.
    pub playlists: bool,
}

/// One search hit.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct HitRow {
    /// `track`, `actor`, `album` or `playlist`.
    pub kind: String,
    /// The track's or list's AT-URI, or the actor's DID.
    pub key: String,
    /// Smaller is better: tier (0 exact, 1 prefix, 2 substring, 3 similar) × 10^6 plus
    /// 10^6 − word similarity in millionths.
    pub rank: i64,
    /// For a hit whose normalized name starts with the query, that name (an actor's first in
    /// byte order, of handle and display name), which places it; `None` for a ranked hit.
    pub name: Option<String>,
}

impl HitRow {
    /// The position after this hit.
    pub fn cursor(&self) -> SearchCursor {
        match &self.name {
            Some(name) => SearchCursor::Name {
                name: name.clone(),
                key: self.key.clone(),
            },
            None => SearchCursor::Rank {
                rank: self.rank,
                key: self.key.clone(),
            },
        }
    }
}

/// The hits for `q` among `kinds`, best first, after `after`: those whose name starts with
/// `q` (unless `after` is past them), then, to fill the page, the ranked rest. Hidden content
/// and content of inactive or hidden actors is never a hit.
#[instrument(skip(db))]
pub async fn hits(
    db: &PgPool,
    q: &str,
    kinds: Kinds,
    after: Option<&SearchCursor>,
    limit: i64,
) -> Result<Vec<HitRow>, sqlx::Error> {
    let list_types: Vec<&str> = [("album", kinds.albums), ("playlist", kinds.playlists)]
        .into_iter()
        .filter_map(|(kind, on)| on.then_some(kind))
        .collect();
    let mut tx = super::custom_plans(db).await?;
    let mut hits = match after {
        Some(SearchCursor::Rank { .. }) => Vec::new(),
        Some(SearchCursor::Name { name, key }) => {
            let after = Some((name.as_str(), key.as_str()));
            by_name(&mut tx, q, kinds, &list_types, after, limit).await?
        }
        None => by_name(&mut tx, q, kinds, &list_types, None, limit).await?,
    };
    let room = limit - i64::try_from(hits.len()).unwrap_or(limit);
    if room > 0 {
        let after = match after {
            Some(SearchCursor::Rank { rank, key }) => Some((*rank, key.as_str())),
            _ => None,
        };
        hits.extend(ranked(&mut tx, q, kinds, &list_types, after, room).await?);
    }
    tx.commit().await?;
    Ok(hits)
}

/// `and` the hit (name `$norm`, key `$key`) comes after the cursor ($5, $6), or at or after the
/// query itself when there is none. The bound is never below the query, so that the index
/// scan starts at the query: from a row comparison Postgres takes the scan's start as given,
/// and from `('', '')` (or a forged cursor's name before the query) it walked every name up
/// to the query (13 ms for `zzz` over 102k titles, against 0.03 ms). For `concat!`.
macro_rules! after_name {
    ($norm:literal, $key:literal) => {
        concat!(
            " and (",
            $norm,
            " collate \"C\", ",
            $key,
            ") > (greatest(coalesce($5, '') collate \"C\", plyr_search_norm($1)), \
             coalesce($6, '')) "
        )
    };
}

/// Hits whose normalized name starts with `q`, by (name, key), after `after`. Each arm walks
/// its name index from the query (or the cursor) and stops at `limit` rows. An actor is placed
/// by the first of its two names in that order; the other arm leaves it out.
async fn by_name(
    tx: &mut PgConnection,
    q: &str,
    kinds: Kinds,
    list_types: &[&str],
    after: Option<(&str, &str)>,
    limit: i64,
) -> Result<Vec<HitRow>, sqlx::Error> {
    const SQL: &str = concat!(
        "select kind, key, rank, name from ( \
           (select 'track' as kind, t.uri as key,",
        search_rank!("t.title_norm"),
        "as rank, t.title_norm collate \"C\" as name \
           from track t join actor a on a.did = t.did and a.active and",
        not_hidden!("t.uri", "t.did"),
        "where $2 and",
        starts_with_query!("t.title_norm"),
        after_name!("t.title_norm", "t.uri"),
        "order by t.title_norm collate \"C\", t.uri limit $7) \
         union all \
           (select 'actor', a.did, least(",
        search_rank!("a.handle_norm"),
        ", coalesce(",
        search_rank!("b.display_name_norm"),
        ", 9223372036854775807)), a.handle_norm collate \"C\" \
           from actor a left join bsky_profile b on b.did = a.did \
           where $3 and a.active and",
        actor_not_hidden!("a.did"),
        "and a.handle is not null and",
        starts_with_query!("a.handle_norm"),
        "and not coalesce(",
        starts_with_query!("b.display_name_norm"),
        "and b.display_name_norm collate \"C\" < a.handle_norm collate \"C\", false)",
        after_name!("a.handle_norm", "a.did"),
        "order by a.handle_norm collate \"C\", a.did limit $7) \
         union all \
           (select 'actor', b.did, least(",
        search_rank!("a.handle_norm"),
        ",",
        search_rank!("b.display_name_norm"),
        "), b.display_name_norm collate \"C\" \
           from bsky_profile b join actor a on a.did = b.did \
           where $3 and a.active and",
        actor_not_hidden!("a.did"),
        "and a.handle is not null and b.display_name is not null and",
        starts_with_query!("b.display_name_norm"),
        "and not (",
        starts_with_query!("a.handle_norm"),
        "and a.handle_norm collate \"C\" <= b.display_name_norm collate \"C\")",
        after_name!("b.display_name_norm", "b.did"),
        "order by b.display_name_norm collate \"C\", b.did limit $7) \
         union all \
           (select l.list_type, l.uri,",
        search_rank!("l.name_norm"),
        ", l.name_norm collate \"C\" \
           from list l join actor a on a.did = l.did and a.active and",
        not_hidden!("l.uri", "l.did"),
        "where l.list_type = any($4) and l.name is not null and",
        starts_with_query!("l.name_norm"),
        after_name!("l.name_norm", "l.uri"),
        "order by l.name_norm collate \"C\", l.uri limit $7) \
         ) hits order by name, key limit $7"
    );
    fetch(tx, SQL, q, kinds, list_types, after, limit).await
}

/// Hits whose normalized name contains `q` later or is only similar to it, by (rank, key),
/// after `after`. Every match is ranked to find the best.
async fn ranked(
    tx: &mut PgConnection,
    q: &str,
    kinds: Kinds,
    list_types: &[&str],
    after: Option<(i64, &str)>,
    limit: i64,
) -> Result<Vec<HitRow>, sqlx::Error> {
    const SQL: &str = concat!(
        "select kind, key, rank, null::text as name from ( \
           select 'track' as kind, t.uri as key,",
        search_rank!("t.title_norm"),
        "as rank \
           from track t join actor a on a.did = t.did and a.active and",
        not_hidden!("t.uri", "t.did"),
        "where $2 and",
        search_match!("t.title_norm"),
        "and not",
        starts_with_query!("t.title_norm"),
        // Actors match by handle or by display name, in two tables. One `or` across the join
        // made Postgres scan and test every actor, so each way has an arm of its own that
        // starts from its own trigram index; the second leaves out actors the first found.
        // Over HTTP on the load bench's 25k actors: a name no one matches 61-65 -> 3.3-4.4 ms.
        "union all \
           select 'actor', a.did, least(",
        search_rank!("a.handle_norm"),
        ", coalesce(",
        search_rank!("b.display_name_norm"),
        ", 9223372036854775807)) \
           from actor a left join bsky_profile b on b.did = a.did \
           where $3 and a.active and",
        actor_not_hidden!("a.did"),
        "and a.handle is not null and",
        search_match!("a.handle_norm"),
        "and not",
        starts_with_query!("a.handle_norm"),
        "and not coalesce(",
        starts_with_query!("b.display_name_norm"),
        ", false) \
         union all \
           select 'actor', a.did, least(",
        search_rank!("a.handle_norm"),
        ",",
        search_rank!("b.display_name_norm"),
        ") \
           from bsky_profile b join actor a on a.did = b.did \
           where $3 and a.active and",
        actor_not_hidden!("a.did"),
        "and a.handle is not null and b.display_name is not null and",
        search_match!("b.display_name_norm"),
        "and not",
        starts_with_query!("b.display_name_norm"),
        "and not",
        search_match!("a.handle_norm"),
        "union all \
           select l.list_type, l.uri,",
        search_rank!("l.name_norm"),
        "from list l join actor a on a.did = l.did and a.active and",
        not_hidden!("l.uri", "l.did"),
        "where l.list_type = any($4) and l.name is not null and",
        search_match!("l.name_norm"),
        "and not",
        starts_with_query!("l.name_norm"),
        ") hits \
         where (rank, key) > (coalesce($5, -1), coalesce($6, '')) \
         order by rank, key limit $7"
    );
    fetch(tx, SQL, q, kinds, list_types, after, limit).await
}

/// Runs one of the two search statements: both bind the query, the kinds, the list types, the
/// cursor's position (a name or a rank) and key, and the limit, as $1..$7.
async fn fetch<P>(
    tx: &mut PgConnection,
    sql: &'static str,
    q: &str,
    kinds: Kinds,
    list_types: &[&str],
    after: Option<(P, &str)>,
    limit: i64,
) -> Result<Vec<HitRow>, sqlx::Error>
where
    P: for<'q> sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send,
{
    let (position, key) = after.unzip();
    sqlx::query_as(sql)
        .bind(q)
        .bind(kinds.tracks)
        .bind(kinds.actors)
        .bind(list_types)
        .bind(position)
        .bind(key)
        .bind(limit)
        .fetch_all(tx)
        .await
}

//! Ranked search over visible tracks, actors, albums and playlists: the hits (kind, key,
//! rank) of one query, ranked by `plyr_search_rank` (migration 0009: exact > prefix >
//! substring > trigram similarity, ties by word similarity, then key), found through the
//! trigram indexes on the stored normalized names (migration 0011). Callers hydrate the hits
//! with the usual view queries.

use sqlx::PgPool;
use tracing::instrument;

use crate::cursor::RankCursor;

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
}

/// The hits for `q` among `kinds`, best first, after `after`. Hidden content and content of
/// inactive or hidden actors is never a hit.
#[instrument(skip(db))]
pub async fn hits(
    db: &PgPool,
    q: &str,
    kinds: Kinds,
    after: Option<&RankCursor>,
    limit: i64,
) -> Result<Vec<HitRow>, sqlx::Error> {
    let list_types: Vec<&str> = [("album", kinds.albums), ("playlist", kinds.playlists)]
        .into_iter()
        .filter_map(|(kind, on)| on.then_some(kind))
        .collect();
    let mut tx = super::custom_plans(db).await?;
    let hits = sqlx::query_as(concat!(
        "select kind, key, rank from ( \
           select 'track' as kind, t.uri as key,",
        search_rank!("t.title_norm"),
        "as rank \
           from track t join actor a on a.did = t.did and a.active and",
        not_hidden!("t.uri", "t.did"),
        "where $2 and",
        search_match!("t.title_norm"),
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
        "union all \
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
        search_match!("a.handle_norm"),
        "union all \
           select l.list_type, l.uri,",
        search_rank!("l.name_norm"),
        "from list l join actor a on a.did = l.did and a.active and",
        not_hidden!("l.uri", "l.did"),
        "where l.list_type = any($4) and l.name is not null and",
        search_match!("l.name_norm"),
        ") hits \
         where (rank, key) > (coalesce($5, -1), coalesce($6, '')) \
         order by rank, key limit $7"
    ))
    .bind(q)
    .bind(kinds.tracks)
    .bind(kinds.actors)
    .bind(&list_types)
    .bind(after.map(|c| c.rank))
    .bind(after.map(|c| c.key.as_str()))
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(hits)
}

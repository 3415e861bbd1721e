//! `/search/`: tracks, artists, albums and playlists matching the query (the ranked search
//! XRPC's search methods use: `queries::search`), merged by relevance. Tags are not on the
//! network, so none are found.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgPool;

use super::album;
use super::error::WebError;
use super::id;
use super::params::{self, OutOfRange, WebQuery};
use super::track::{display_names, text};
use crate::ViewCache;
use crate::params::QUERY_CHARS;
use crate::queries;

/// Every result type, and the default of `type`.
const TYPES: [&str; 5] = ["tracks", "artists", "albums", "tags", "playlists"];

/// Params of `/search/`.
#[derive(Debug, Deserialize)]
pub struct SearchParams {
    q: Option<String>,
    #[serde(rename = "type")]
    kinds: Option<String>,
    limit: Option<String>,
}

/// One result; `type` tells the client which fields it has.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SearchResult {
    /// A track.
    Track {
        /// Track id.
        id: i64,
        /// Title.
        title: String,
        /// Artist handle.
        artist_handle: String,
        /// Artist display name.
        artist_display_name: String,
        /// Artwork.
        image_url: Option<String>,
        /// Match quality.
        relevance: f64,
    },
    /// An artist.
    Artist {
        /// DID.
        did: String,
        /// Handle.
        handle: String,
        /// Display name.
        display_name: String,
        /// Avatar.
        avatar_url: Option<String>,
        /// Match quality.
        relevance: f64,
    },
    /// An album.
    Album {
        /// Album id.
        id: String,
        /// Title.
        title: String,
        /// Slug.
        slug: String,
        /// Artist handle.
        artist_handle: String,
        /// Artist display name.
        artist_display_name: String,
        /// Art (none: album records carry none).
        image_url: Option<String>,
        /// Match quality.
        relevance: f64,
    },
    /// A playlist.
    Playlist {
        /// Playlist id.
        id: String,
        /// Name.
        name: String,
        /// Owner handle.
        owner_handle: String,
        /// Owner display name.
        owner_display_name: String,
        /// Cover (none: list records carry none).
        image_url: Option<String>,
        /// Items in the record.
        track_count: i64,
        /// Match quality.
        relevance: f64,
    },
}

impl SearchResult {
    fn relevance(&self) -> f64 {
        match self {
            SearchResult::Track { relevance, .. }
            | SearchResult::Artist { relevance, .. }
            | SearchResult::Album { relevance, .. }
            | SearchResult::Playlist { relevance, .. } => *relevance,
        }
    }
}

/// Hits per type.
#[derive(Debug, Default, Serialize)]
pub struct Counts {
    tracks: usize,
    artists: usize,
    albums: usize,
    tags: usize,
    playlists: usize,
}

/// Output of `/search/`.
#[derive(Debug, Serialize)]
pub struct SearchOutput {
    results: Vec<SearchResult>,
    counts: Counts,
}

/// A hit's rank (`queries::search::HitRow::rank`: smaller is better) as upstream's relevance
/// (larger is better): 1 for an exact name, then down by tier (0.9 prefix, 0.6 substring,
/// 0.4 similar), each tier's word similarity nudging within it.
fn relevance(rank: i64) -> f64 {
    let tier = rank.div_euclid(1_000_000);
    let base = match tier {
        0 => 1.0,
        1 => 0.9,
        2 => 0.6,
        _ => 0.4,
    };
    // Millionths of (1 - word similarity), from the rank; under 0.1 so tiers never overlap.
    let miss = f64::from(u32::try_from(rank.rem_euclid(1_000_000)).unwrap_or(999_999));
    base - miss / 1e7
}

/// Hits of one kind, best first, as (key, rank).
async fn hits(
    db: &PgPool,
    cache: &ViewCache,
    q: &str,
    kinds: queries::search::Kinds,
    limit: i64,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    Ok(cache
        .search(db, q, kinds, None, limit)
        .await?
        .iter()
        .map(|h| (h.key.clone(), h.rank))
        .collect())
}

/// `GET /search/?q=&type=&limit=`.
pub async fn search(
    State(db): State<PgPool>,
    State(cache): State<ViewCache>,
    WebQuery(p): WebQuery<SearchParams>,
) -> Result<Json<SearchOutput>, WebError> {
    let q = params::required("q", p.q)?;
    let chars = q.chars().count();
    if chars < QUERY_CHARS.0 {
        return Err(WebError::query(
            "q",
            "string_too_short",
            format!("String should have at least {} characters", QUERY_CHARS.0),
            Value::String(q),
        ));
    }
    if chars > QUERY_CHARS.1 {
        return Err(WebError::query(
            "q",
            "string_too_long",
            format!("String should have at most {} characters", QUERY_CHARS.1),
            Value::String(q),
        ));
    }
    let limit = params::int("limit", p.limit.as_deref(), 20, (1, 50), OutOfRange::Reject)?;
    let kinds: Vec<&str> = match p.kinds.as_deref().filter(|k| !k.is_empty()) {
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|k| TYPES.contains(k))
            .collect(),
        None => TYPES.to_vec(),
    };
    let mut results = Vec::new();
    let mut counts = Counts::default();
    let only = queries::search::Kinds::default();
    if kinds.contains(&"tracks") {
        let found = hits(
            &db,
            &cache,
            &q,
            queries::search::Kinds {
                tracks: true,
                ..only
            },
            limit,
        )
        .await?;
        let uris: Vec<String> = found.iter().map(|(uri, _)| uri.clone()).collect();
        let mut rows: HashMap<String, _> = queries::track::by_uris(&db, &uris)
            .await?
            .into_iter()
            .map(|r| (r.uri.clone(), r))
            .collect();
        let dids: Vec<String> = rows.values().map(|r| r.did.clone()).collect();
        let names = display_names(&db, &dids).await?;
        for (uri, rank) in found {
            let Some(r) = rows.remove(&uri) else { continue };
            counts.tracks += 1;
            let handle = r.handle.unwrap_or_else(|| r.did.clone());
            results.push(SearchResult::Track {
                id: r.web_id,
                relevance: relevance(rank),
                title: text(&r.record, "title").unwrap_or_default(),
                artist_display_name: names.get(&r.did).cloned().unwrap_or_else(|| handle.clone()),
                artist_handle: handle,
                image_url: text(&r.record, "imageUrl"),
            });
        }
    }
    if kinds.contains(&"artists") {
        let found = hits(
            &db,
            &cache,
            &q,
            queries::search::Kinds {
                actors: true,
                ..only
            },
            limit,
        )
        .await?;
        let dids: Vec<String> = found.iter().map(|(did, _)| did.clone()).collect();
        let mut cards: HashMap<String, _> = queries::actor::cards(&db, &dids)
            .await?
            .into_iter()
            .map(|c| (c.did.clone(), c))
            .collect();
        for (did, rank) in found {
            let Some(c) = cards.remove(&did) else {
                continue;
            };
            counts.artists += 1;
            let handle = c.handle.unwrap_or_else(|| c.did.clone());
            results.push(SearchResult::Artist {
                relevance: relevance(rank),
                display_name: c.display_name.unwrap_or_else(|| handle.clone()),
                handle,
                did: c.did,
                avatar_url: c.avatar,
            });
        }
    }
    if kinds.contains(&"albums") {
        let hits = queries::album::search(&db, &q, limit).await?;
        let mut dids: Vec<String> = hits.iter().map(|h| h.album.did.clone()).collect();
        dids.sort();
        dids.dedup();
        // Slugs depend on the artist's other albums.
        let mut all = album::of_artists(&db, &dids).await?;
        let cards: HashMap<String, _> = queries::actor::cards(&db, &dids)
            .await?
            .into_iter()
            .map(|c| (c.did.clone(), c))
            .collect();
        for hit in hits {
            let row = &hit.album;
            let id = match &row.list_web_id {
                Some(id) => id.clone(),
                None => id::uuid_id(&id::implicit_album_key(&row.did, &row.title)),
            };
            let Some(found) = all
                .get_mut(&row.did)
                .and_then(|albums| albums.iter().find(|a| a.id == id).cloned())
            else {
                continue;
            };
            let card = cards.get(&row.did);
            let handle = card
                .and_then(|c| c.handle.clone())
                .unwrap_or_else(|| row.did.clone());
            counts.albums += 1;
            results.push(SearchResult::Album {
                relevance: relevance(hit.rank),
                id: found.id,
                title: found.title,
                slug: found.slug,
                artist_display_name: card
                    .and_then(|c| c.display_name.clone())
                    .unwrap_or_else(|| handle.clone()),
                artist_handle: handle,
                image_url: None,
            });
        }
    }
    if kinds.contains(&"playlists") {
        let found = hits(
            &db,
            &cache,
            &q,
            queries::search::Kinds {
                playlists: true,
                ..only
            },
            limit,
        )
        .await?;
        let uris: Vec<String> = found.iter().map(|(uri, _)| uri.clone()).collect();
        let mut rows: HashMap<String, _> = queries::list::by_uris(&db, &uris)
            .await?
            .into_iter()
            .map(|r| (r.uri.clone(), r))
            .collect();
        let dids: Vec<String> = rows.values().map(|r| r.did.clone()).collect();
        let names = display_names(&db, &dids).await?;
        for (uri, rank) in found {
            let Some(r) = rows.remove(&uri) else { continue };
            counts.playlists += 1;
            let handle = r.handle.unwrap_or_else(|| r.did.clone());
            results.push(SearchResult::Playlist {
                id: id::uuid_id(&r.uri),
                relevance: relevance(rank),
                name: r.name.unwrap_or_default(),
                owner_display_name: names.get(&r.did).cloned().unwrap_or_else(|| handle.clone()),
                owner_handle: handle,
                image_url: None,
                track_count: i64::from(r.item_count),
            });
        }
    }
    // Stable: equal relevance keeps the per-type order (prefix matches, then newest).
    results.sort_by(|a, b| b.relevance().total_cmp(&a.relevance()));
    Ok(Json(SearchOutput { results, counts }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relevance_falls_by_tier_and_keeps_tiers_apart() {
        // (rank, relevance)
        let cases = [
            (0, 1.0),
            (1_000_000, 0.9),
            (1_500_000, 0.85),
            (2_000_000, 0.6),
            (3_999_999, 0.300_000_1),
            (7_000_000, 0.4),
        ];
        for (rank, want) in cases {
            assert!((relevance(rank) - want).abs() < 1e-9, "{rank}");
        }
        assert!(relevance(1_999_999) > relevance(2_000_000));
    }
}

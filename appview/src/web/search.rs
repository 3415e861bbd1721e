//! `/search/`: tracks, artists, albums and playlists whose names contain the query, merged by
//! relevance. Tags are not on the network, so none are found.

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
use crate::queries;

/// Shortest and longest query, in characters (upstream's bounds).
const QUERY_CHARS: (usize, usize) = (2, 100);

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

/// How well `name` matches `q`: 1 for the whole name, 0.9 for a prefix, 0.6 for a word start,
/// 0.4 anywhere else.
fn relevance(name: &str, q: &str) -> f64 {
    let (name, q) = (name.to_lowercase(), q.to_lowercase());
    if name == q {
        1.0
    } else if name.starts_with(&q) {
        0.9
    } else if name
        .match_indices(&q)
        .any(|(i, _)| name[..i].ends_with(|c: char| !c.is_alphanumeric()))
    {
        0.6
    } else {
        0.4
    }
}

/// `GET /search/?q=&type=&limit=`.
pub async fn search(
    State(db): State<PgPool>,
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
    if kinds.contains(&"tracks") {
        let rows = queries::track::search(&db, &q, limit).await?;
        counts.tracks = rows.len();
        let dids: Vec<String> = rows.iter().map(|r| r.did.clone()).collect();
        let names = display_names(&db, &dids).await?;
        results.extend(rows.into_iter().map(|r| {
            let title = text(&r.record, "title").unwrap_or_default();
            let handle = r.handle.unwrap_or_else(|| r.did.clone());
            SearchResult::Track {
                id: r.web_id,
                relevance: relevance(&title, &q),
                title,
                artist_display_name: names.get(&r.did).cloned().unwrap_or_else(|| handle.clone()),
                artist_handle: handle,
                image_url: text(&r.record, "imageUrl"),
            }
        }));
    }
    if kinds.contains(&"artists") {
        let dids = queries::actor::search(&db, &q, limit).await?;
        let cards = queries::actor::cards(&db, &dids).await?;
        counts.artists = cards.len();
        results.extend(cards.into_iter().map(|c| {
            let handle = c.handle.unwrap_or_else(|| c.did.clone());
            SearchResult::Artist {
                relevance: relevance(&handle, &q),
                display_name: c.display_name.unwrap_or_else(|| handle.clone()),
                handle,
                did: c.did,
                avatar_url: c.avatar,
            }
        }));
    }
    if kinds.contains(&"albums") {
        let rows = queries::album::search(&db, &q, limit).await?;
        let mut dids: Vec<String> = rows.iter().map(|r| r.did.clone()).collect();
        dids.sort();
        dids.dedup();
        // Slugs depend on the artist's other albums.
        let mut all = album::of_artists(&db, &dids).await?;
        let cards: HashMap<String, _> = queries::actor::cards(&db, &dids)
            .await?
            .into_iter()
            .map(|c| (c.did.clone(), c))
            .collect();
        for row in rows {
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
                relevance: relevance(&found.title, &q),
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
        let rows = queries::list::search(&db, "playlist", &q, limit).await?;
        counts.playlists = rows.len();
        let dids: Vec<String> = rows.iter().map(|r| r.did.clone()).collect();
        let names = display_names(&db, &dids).await?;
        results.extend(rows.into_iter().map(|r| {
            let name = r.name.unwrap_or_default();
            let handle = r.handle.unwrap_or_else(|| r.did.clone());
            SearchResult::Playlist {
                id: id::uuid_id(&r.uri),
                relevance: relevance(&name, &q),
                name,
                owner_display_name: names.get(&r.did).cloned().unwrap_or_else(|| handle.clone()),
                owner_handle: handle,
                image_url: None,
                track_count: i64::from(r.item_count),
            }
        }));
    }
    // Stable: equal relevance keeps the per-type order (prefix matches, then newest).
    results.sort_by(|a, b| b.relevance().total_cmp(&a.relevance()));
    Ok(Json(SearchOutput { results, counts }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relevance_prefers_whole_then_prefix_then_word() {
        let cases = [
            ("Blue", "blue", 1.0),
            ("Blue Monday", "blue", 0.9),
            ("Deep Blue", "blue", 0.6),
            ("Bluesblue", "sblue", 0.4),
        ];
        for (name, q, want) in cases {
            assert!(
                (relevance(name, q) - want).abs() < f64::EPSILON,
                "{name} {q}"
            );
        }
    }
}

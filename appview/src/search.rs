//! The search methods: fm.plyr.feed.searchTracks, fm.plyr.actor.searchActors and the unified
//! fm.plyr.unspecced.search. `queries::search` finds the hits a page at a time, keyset on
//! (name, key) while names start with the query and on (rank, key) after; the usual view
//! queries hydrate them in that order.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::ViewCache;
use crate::auth::Viewer;
use crate::cursor::paginate;
use crate::error::XrpcError;
use crate::params::{self, Limit, XrpcQuery};
use crate::queries;
use crate::queries::search::{HitRow, Kinds};
use crate::track::with_viewer;
use crate::views::{ListView, ProfileViewDetailed, TrackView};
use crate::web::WebState;

/// Params of fm.plyr.feed.searchTracks and fm.plyr.actor.searchActors.
#[derive(Debug, Deserialize)]
pub struct SearchParams {
    q: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// Params of fm.plyr.unspecced.search.
#[derive(Debug, Deserialize)]
pub struct UnifiedParams {
    q: Option<String>,
    #[serde(default)]
    types: Vec<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// Output of fm.plyr.feed.searchTracks.
#[derive(Debug, Serialize)]
pub struct TracksPage {
    tracks: Vec<TrackView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cursor: Option<String>,
}

/// Output of fm.plyr.actor.searchActors.
#[derive(Debug, Serialize)]
pub struct ActorsPage {
    actors: Vec<ProfileViewDetailed>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cursor: Option<String>,
}

/// One result of the unified search, tagged with its view's `$type`.
#[derive(Debug, Serialize)]
#[serde(tag = "$type")]
pub enum SearchResult {
    /// A track.
    #[serde(rename = "fm.plyr.feed.defs#trackView")]
    Track(TrackView),
    /// An artist.
    #[serde(rename = "fm.plyr.actor.defs#profileViewDetailed")]
    Actor(ProfileViewDetailed),
    /// An album or a playlist.
    #[serde(rename = "fm.plyr.feed.defs#listView")]
    List(ListView),
}

/// Output of fm.plyr.unspecced.search.
#[derive(Debug, Serialize)]
pub struct ResultsPage {
    results: Vec<SearchResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cursor: Option<String>,
}

/// fm.plyr.feed.searchTracks: tracks by title, best match first.
pub async fn search_tracks(
    State(db): State<PgPool>,
    State(cache): State<ViewCache>,
    State(web): State<Arc<WebState>>,
    viewer: Viewer,
    XrpcQuery(p): XrpcQuery<SearchParams>,
) -> Result<Json<TracksPage>, XrpcError> {
    let kinds = Kinds {
        tracks: true,
        ..Kinds::default()
    };
    let (hits, cursor) = page(&db, &cache, p.q, kinds, p.limit, p.cursor).await?;
    let results = hydrate(&db, &web.config.public_url, &viewer, hits).await?;
    let tracks = results
        .into_iter()
        .filter_map(|r| match r {
            SearchResult::Track(t) => Some(t),
            _ => None,
        })
        .collect();
    Ok(Json(TracksPage { tracks, cursor }))
}

/// fm.plyr.actor.searchActors: active actors by handle or display name, best match first.
pub async fn search_actors(
    State(db): State<PgPool>,
    State(cache): State<ViewCache>,
    State(web): State<Arc<WebState>>,
    viewer: Viewer,
    XrpcQuery(p): XrpcQuery<SearchParams>,
) -> Result<Json<ActorsPage>, XrpcError> {
    let kinds = Kinds {
        actors: true,
        ..Kinds::default()
    };
    let (hits, cursor) = page(&db, &cache, p.q, kinds, p.limit, p.cursor).await?;
    let results = hydrate(&db, &web.config.public_url, &viewer, hits).await?;
    let actors = results
        .into_iter()
        .filter_map(|r| match r {
            SearchResult::Actor(a) => Some(a),
            _ => None,
        })
        .collect();
    Ok(Json(ActorsPage { actors, cursor }))
}

/// fm.plyr.unspecced.search: tracks, artists, albums and playlists in one ranked list.
pub async fn search(
    State(db): State<PgPool>,
    State(cache): State<ViewCache>,
    State(web): State<Arc<WebState>>,
    viewer: Viewer,
    XrpcQuery(p): XrpcQuery<UnifiedParams>,
) -> Result<Json<ResultsPage>, XrpcError> {
    let kinds = kinds(&p.types)?;
    let (hits, cursor) = page(&db, &cache, p.q, kinds, p.limit, p.cursor).await?;
    let results = hydrate(&db, &web.config.public_url, &viewer, hits).await?;
    Ok(Json(ResultsPage { results, cursor }))
}

/// The kinds named by `types` (all when none); an unknown or repeated name is refused.
fn kinds(types: &[String]) -> Result<Kinds, XrpcError> {
    if types.is_empty() {
        return Ok(Kinds {
            tracks: true,
            actors: true,
            albums: true,
            playlists: true,
        });
    }
    let mut kinds = Kinds::default();
    for name in types {
        let slot = match name.as_str() {
            "tracks" => &mut kinds.tracks,
            "artists" => &mut kinds.actors,
            "albums" => &mut kinds.albums,
            "playlists" => &mut kinds.playlists,
            _ => {
                return Err(XrpcError::InvalidRequest(
                    "types must be tracks, artists, albums or playlists".to_owned(),
                ));
            }
        };
        if *slot {
            return Err(XrpcError::InvalidRequest(format!(
                "types names {name} twice"
            )));
        }
        *slot = true;
    }
    Ok(kinds)
}

/// Reads q, limit and cursor and fetches one page of hits, with the cursor after it.
async fn page(
    db: &PgPool,
    cache: &ViewCache,
    q: Option<String>,
    kinds: Kinds,
    limit: Option<String>,
    cursor: Option<String>,
) -> Result<(Vec<HitRow>, Option<String>), XrpcError> {
    let q = params::search_query(q)?;
    let limit = Limit::parse(limit.as_deref())?;
    let after = params::search_cursor(cursor.as_deref())?;
    let rows = cache
        .search(db, &q, kinds, after.as_ref(), limit.fetch())
        .await?
        .to_vec();
    Ok(paginate(rows, limit.rows(), |hit| hit.cursor().encode()))
}

/// The views of `hits`, in hit order: one query per kind present. A hit whose content went
/// away between the two queries is left out.
async fn hydrate(
    db: &PgPool,
    public_url: &str,
    viewer: &Viewer,
    hits: Vec<HitRow>,
) -> Result<Vec<SearchResult>, XrpcError> {
    let keys_of = |kind: &[&str]| -> Vec<String> {
        hits.iter()
            .filter(|h| kind.contains(&h.kind.as_str()))
            .map(|h| h.key.clone())
            .collect()
    };
    let track_uris = keys_of(&["track"]);
    let dids = keys_of(&["actor"]);
    let list_uris = keys_of(&["album", "playlist"]);
    let mut tracks: Vec<TrackView> = if track_uris.is_empty() {
        Vec::new()
    } else {
        queries::track::by_uris(db, &track_uris)
            .await?
            .into_iter()
            .map(TrackView::from)
            .collect()
    };
    with_viewer(db, viewer, &mut tracks).await?;
    let mut tracks: HashMap<String, TrackView> = tracks
        .into_iter()
        .map(|t| (t.uri().to_owned(), t))
        .collect();
    let mut actors: HashMap<String, ProfileViewDetailed> = if dids.is_empty() {
        HashMap::new()
    } else {
        queries::actor::profiles(db, &dids)
            .await?
            .into_iter()
            .map(|row| (row.did.clone(), ProfileViewDetailed::new(row, public_url)))
            .collect()
    };
    let mut lists: HashMap<String, ListView> = if list_uris.is_empty() {
        HashMap::new()
    } else {
        queries::list::by_uris(db, &list_uris)
            .await?
            .into_iter()
            .map(|row| (row.uri.clone(), ListView::from(row)))
            .collect()
    };
    Ok(hits
        .into_iter()
        .filter_map(|hit| match hit.kind.as_str() {
            "track" => tracks.remove(&hit.key).map(SearchResult::Track),
            "actor" => actors.remove(&hit.key).map(SearchResult::Actor),
            _ => lists.remove(&hit.key).map(SearchResult::List),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_select_kinds_once_each() {
        let all = Kinds {
            tracks: true,
            actors: true,
            albums: true,
            playlists: true,
        };
        let cases: [(&[&str], Option<Kinds>); 5] = [
            (&[], Some(all)),
            (
                &["tracks"],
                Some(Kinds {
                    tracks: true,
                    ..Kinds::default()
                }),
            ),
            (
                &["artists", "playlists"],
                Some(Kinds {
                    actors: true,
                    playlists: true,
                    ..Kinds::default()
                }),
            ),
            (&["tags"], None),
            (&["albums", "albums"], None),
        ];
        for (types, want) in cases {
            let types: Vec<String> = types.iter().map(|t| (*t).to_owned()).collect();
            assert_eq!(kinds(&types).ok(), want, "{types:?}");
        }
    }
}

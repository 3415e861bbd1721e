//! fm.plyr.feed handlers that answer tracks: the latest feed, one or several tracks by URI, and
//! an artist's tracks.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use sqlx::PgPool;

use crate::actor::visible_did;
use crate::auth::Viewer;
use crate::cache::ViewCache;
use crate::cursor::{TimeCursor, paginate};
use crate::error::XrpcError;
use crate::params::{self, Limit, XrpcQuery};
use crate::queries;
use crate::queries::track::TrackRow;
use crate::views::{TrackOutput, TrackView, TracksOutput, TracksPage};

/// Most URIs fm.plyr.feed.getTracks takes at once (its lexicon's `maxLength`).
const MAX_URIS: usize = 25;

/// Params of fm.plyr.feed.getLatestTracks.
#[derive(Debug, Deserialize)]
pub struct PageParams {
    limit: Option<String>,
    cursor: Option<String>,
}

/// Params of fm.plyr.feed.getTrack.
#[derive(Debug, Deserialize)]
pub struct UriParams {
    uri: Option<String>,
}

/// Params of fm.plyr.feed.getTracks.
#[derive(Debug, Deserialize)]
pub struct UrisParams {
    #[serde(default)]
    uris: Vec<String>,
}

/// Params of fm.plyr.feed.getArtistTracks.
#[derive(Debug, Deserialize)]
pub struct ActorPageParams {
    actor: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// fm.plyr.feed.getLatestTracks: every active actor's tracks, newest first.
pub async fn get_latest_tracks(
    State(db): State<PgPool>,
    State(cache): State<ViewCache>,
    viewer: Viewer,
    XrpcQuery(p): XrpcQuery<PageParams>,
) -> Result<Json<TracksPage>, XrpcError> {
    let limit = Limit::parse(p.limit.as_deref())?;
    let after = params::time_cursor(p.cursor.as_deref())?;
    let rows = match &after {
        None => cache.latest(&db, limit.fetch()).await?,
        Some(after) => queries::track::latest(&db, Some(after), limit.fetch()).await?,
    };
    let mut page = tracks_page(rows, limit);
    with_viewer(&db, &viewer, &mut page.tracks).await?;
    Ok(Json(page))
}

/// fm.plyr.feed.getTrack: one track, or NotFound when it is missing or hidden.
pub async fn get_track(
    State(db): State<PgPool>,
    State(cache): State<ViewCache>,
    viewer: Viewer,
    XrpcQuery(p): XrpcQuery<UriParams>,
) -> Result<Json<TrackOutput>, XrpcError> {
    let uri = params::record_uri("uri", &params::required("uri", p.uri)?)?;
    let row = cache
        .tracks(&db, std::slice::from_ref(&uri.uri))
        .await?
        .pop()
        .ok_or_else(|| XrpcError::NotFound("track not found".to_owned()))?;
    let mut tracks = [TrackView::from(row)];
    with_viewer(&db, &viewer, &mut tracks).await?;
    let [track] = tracks;
    Ok(Json(TrackOutput { track }))
}

/// fm.plyr.feed.getTracks: up to 25 tracks in request order (repeats answered once), leaving
/// out missing and hidden ones.
pub async fn get_tracks(
    State(db): State<PgPool>,
    State(cache): State<ViewCache>,
    viewer: Viewer,
    XrpcQuery(p): XrpcQuery<UrisParams>,
) -> Result<Json<TracksOutput>, XrpcError> {
    if p.uris.is_empty() {
        return Err(XrpcError::InvalidRequest(
            "missing required parameter uris".to_owned(),
        ));
    }
    if p.uris.len() > MAX_URIS {
        return Err(XrpcError::InvalidRequest(format!(
            "uris takes at most {MAX_URIS} values"
        )));
    }
    let mut uris: Vec<String> = Vec::with_capacity(p.uris.len());
    for raw in &p.uris {
        let uri = params::record_uri("uris", raw)?;
        if !uris.contains(&uri.uri) {
            uris.push(uri.uri);
        }
    }
    let mut found: HashMap<String, TrackRow> = cache
        .tracks(&db, &uris)
        .await?
        .into_iter()
        .map(|row| (row.uri.clone(), row))
        .collect();
    let mut tracks: Vec<TrackView> = uris
        .iter()
        .filter_map(|uri| found.remove(uri))
        .map(TrackView::from)
        .collect();
    with_viewer(&db, &viewer, &mut tracks).await?;
    Ok(Json(TracksOutput { tracks }))
}

/// fm.plyr.feed.getArtistTracks: one active actor's tracks, newest first.
pub async fn get_artist_tracks(
    State(db): State<PgPool>,
    State(cache): State<ViewCache>,
    viewer: Viewer,
    XrpcQuery(p): XrpcQuery<ActorPageParams>,
) -> Result<Json<TracksPage>, XrpcError> {
    let actor = params::actor("actor", &params::required("actor", p.actor)?)?;
    let limit = Limit::parse(p.limit.as_deref())?;
    let after = params::time_cursor(p.cursor.as_deref())?;
    let did = visible_did(&db, &cache, &actor).await?;
    let rows = match &after {
        None => cache.artist_tracks(&db, &did, limit.fetch()).await?,
        Some(after) => queries::track::by_author(&db, &did, Some(after), limit.fetch()).await?,
    };
    let mut page = tracks_page(rows, limit);
    with_viewer(&db, &viewer, &mut page.tracks).await?;
    Ok(Json(page))
}

/// Adds the applied labelers' labels to every track (`label.rs`), and fills `viewer` when the
/// request is authenticated: one query each for the page.
pub(crate) async fn with_viewer(
    db: &PgPool,
    viewer: &Viewer,
    tracks: &mut [TrackView],
) -> Result<(), XrpcError> {
    crate::label::hydrate_tracks(db, tracks).await?;
    let Viewer(Some(did)) = viewer else {
        return Ok(());
    };
    let uris: Vec<String> = tracks.iter().map(|t| t.uri().to_owned()).collect();
    let mut likes: HashMap<String, String> = queries::like::viewer_likes(db, did.as_str(), &uris)
        .await?
        .into_iter()
        .collect();
    for track in tracks {
        let like = likes.remove(track.uri());
        track.set_viewer(like);
    }
    Ok(())
}

/// A page of tracks ordered by (sort_at, uri), with the cursor after its last row.
fn tracks_page(rows: Vec<TrackRow>, limit: Limit) -> TracksPage {
    let (rows, cursor) = paginate(rows, limit.rows(), |row| {
        TimeCursor::after(row.sort_at, &row.uri)
    });
    TracksPage {
        tracks: rows.into_iter().map(TrackView::from).collect(),
        cursor,
    }
}

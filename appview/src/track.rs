//! fm.plyr.feed handlers that answer tracks: the latest feed, one or several tracks by URI, and
//! an artist's tracks.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use sqlx::PgPool;

use crate::actor::visible_did;
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
    XrpcQuery(p): XrpcQuery<PageParams>,
) -> Result<Json<TracksPage>, XrpcError> {
    let limit = Limit::parse(p.limit.as_deref())?;
    let after = params::time_cursor(p.cursor.as_deref())?;
    let rows = queries::track::latest(&db, after.as_ref(), limit.fetch()).await?;
    Ok(Json(tracks_page(rows, limit)))
}

/// fm.plyr.feed.getTrack: one track, or NotFound when it is missing or hidden.
pub async fn get_track(
    State(db): State<PgPool>,
    XrpcQuery(p): XrpcQuery<UriParams>,
) -> Result<Json<TrackOutput>, XrpcError> {
    let uri = params::record_uri("uri", &params::required("uri", p.uri)?)?;
    let row = queries::track::by_uri(&db, &uri.uri)
        .await?
        .ok_or_else(|| XrpcError::NotFound("track not found".to_owned()))?;
    Ok(Json(TrackOutput {
        track: TrackView::from(row),
    }))
}

/// fm.plyr.feed.getTracks: up to 25 tracks in request order (repeats answered once), leaving
/// out missing and hidden ones.
pub async fn get_tracks(
    State(db): State<PgPool>,
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
    let mut found: HashMap<String, TrackRow> = queries::track::by_uris(&db, &uris)
        .await?
        .into_iter()
        .map(|row| (row.uri.clone(), row))
        .collect();
    let tracks = uris
        .iter()
        .filter_map(|uri| found.remove(uri))
        .map(TrackView::from)
        .collect();
    Ok(Json(TracksOutput { tracks }))
}

/// fm.plyr.feed.getArtistTracks: one active actor's tracks, newest first.
pub async fn get_artist_tracks(
    State(db): State<PgPool>,
    XrpcQuery(p): XrpcQuery<ActorPageParams>,
) -> Result<Json<TracksPage>, XrpcError> {
    let actor = params::actor("actor", &params::required("actor", p.actor)?)?;
    let limit = Limit::parse(p.limit.as_deref())?;
    let after = params::time_cursor(p.cursor.as_deref())?;
    let did = visible_did(&db, &actor).await?;
    let rows = queries::track::by_author(&db, &did, after.as_ref(), limit.fetch()).await?;
    Ok(Json(tracks_page(rows, limit)))
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

//! Playlists (`fm.plyr.list` records of type playlist): `/lists/playlists/{id}`, its `/meta`,
//! `/lists/playlists/by-artist/{did}`, and `/lists/by-uri` for any list.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use super::Web;
use super::album;
use super::error::WebError;
use super::id;
use super::params::{self, WebQuery};
use super::time;
use super::track::{self, Track};
use crate::queries;
use crate::queries::list::ListRow;

/// Member artworks a playlist shows as its composite cover.
const PREVIEW_THUMBNAILS: i64 = 4;

/// Most playlists listed for one artist.
const MAX_PLAYLISTS: i64 = 100;

/// Upstream's Playlist; with `tracks` it is PlaylistWithTracks.
#[derive(Debug, Serialize)]
pub struct Playlist {
    id: String,
    name: String,
    owner_did: String,
    owner_handle: String,
    track_count: i64,
    image_url: Option<String>,
    show_on_profile: bool,
    is_private: bool,
    atproto_record_uri: Option<String>,
    created_at: String,
    preview_thumbnails: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tracks: Option<Vec<Track>>,
}

impl Playlist {
    /// A public playlist of the network: shown on its owner's profile, never private, with no
    /// cover of its own (records carry none).
    fn new(row: ListRow, preview_thumbnails: Vec<String>) -> Playlist {
        Playlist {
            id: id::uuid_id(&row.uri),
            name: row.name.unwrap_or_default(),
            owner_handle: row.handle.unwrap_or_else(|| row.did.clone()),
            owner_did: row.did,
            track_count: i64::from(row.item_count),
            image_url: None,
            show_on_profile: true,
            is_private: false,
            atproto_record_uri: Some(row.uri),
            created_at: time::python(&row.sort_at),
            preview_thumbnails,
            tracks: None,
        }
    }
}

/// True for the lists served as playlists: type playlist, or no type.
fn is_playlist(row: &ListRow) -> bool {
    matches!(row.list_type.as_deref(), None | Some("playlist"))
}

/// The visible playlist with web id `id`, or upstream's 404.
async fn visible(db: &PgPool, id: &str) -> Result<ListRow, WebError> {
    let not_found = || WebError::NotFound("playlist not found".into());
    if !id::is_uuid(id) {
        return Err(not_found());
    }
    let row = queries::list::by_web_id(db, &id.to_ascii_lowercase())
        .await?
        .ok_or_else(not_found)?
        .list;
    if !is_playlist(&row) {
        return Err(not_found());
    }
    Ok(row)
}

/// Artworks of `lists`, up to [`PREVIEW_THUMBNAILS`] each, keyed by list URI.
async fn previews(
    db: &PgPool,
    lists: &[String],
) -> Result<HashMap<String, Vec<String>>, sqlx::Error> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for (list, image) in queries::list::artworks(db, lists, PREVIEW_THUMBNAILS).await? {
        out.entry(list).or_default().push(image);
    }
    Ok(out)
}

/// `GET /lists/playlists/{id}`: the playlist with its visible tracks in record order;
/// `track_count` counts them.
pub async fn playlist(
    State(db): State<PgPool>,
    State(web): State<Web>,
    Path(id): Path<String>,
) -> Result<Json<Playlist>, WebError> {
    let row = visible(&db, &id).await?;
    let rows = queries::list::items(&db, &row.uri).await?;
    let tracks = track::build(&db, rows, &web).await?;
    let thumbnails: Vec<String> = tracks
        .iter()
        .filter_map(|t| t.image_url().map(str::to_owned))
        .take(usize::try_from(PREVIEW_THUMBNAILS).unwrap_or(usize::MAX))
        .collect();
    let mut playlist = Playlist::new(row, thumbnails);
    playlist.track_count = i64::try_from(tracks.len()).unwrap_or(i64::MAX);
    playlist.tracks = Some(tracks);
    Ok(Json(playlist))
}

/// `GET /lists/playlists/{id}/meta`: the playlist without tracks (`track_count` is the
/// record's item count).
pub async fn meta(
    State(db): State<PgPool>,
    Path(id): Path<String>,
) -> Result<Json<Playlist>, WebError> {
    let row = visible(&db, &id).await?;
    let mut thumbnails = previews(&db, std::slice::from_ref(&row.uri)).await?;
    let thumbnails = thumbnails.remove(&row.uri).unwrap_or_default();
    Ok(Json(Playlist::new(row, thumbnails)))
}

/// `GET /lists/playlists/{id}/og-cover`: 307 to the first member artwork; 404 when there is
/// none. Upstream draws a 2x2 mosaic from four; this AppView draws nothing and always sends
/// the first.
pub async fn og_cover(
    State(db): State<PgPool>,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let row = visible(&db, &id).await?;
    let (_, image) = queries::list::artworks(&db, std::slice::from_ref(&row.uri), 1)
        .await?
        .pop()
        .ok_or(WebError::NotFound("no cover image".into()))?;
    Ok((StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, image)]).into_response())
}

/// `GET /lists/playlists/by-artist/{did}`: the artist's playlists, newest first.
pub async fn by_artist(
    State(db): State<PgPool>,
    Path(did): Path<String>,
) -> Result<Json<Vec<Playlist>>, WebError> {
    let rows = queries::list::by_author(&db, &did, Some("playlist"), None, MAX_PLAYLISTS).await?;
    let uris: Vec<String> = rows.iter().map(|r| r.uri.clone()).collect();
    let mut thumbnails = previews(&db, &uris).await?;
    Ok(Json(
        rows.into_iter()
            .map(|r| {
                let t = thumbnails.remove(&r.uri).unwrap_or_default();
                Playlist::new(r, t)
            })
            .collect(),
    ))
}

/// Params of `/lists/by-uri`.
#[derive(Debug, Deserialize)]
pub struct UriParams {
    uri: Option<String>,
}

/// Where the web client finds a list.
#[derive(Debug, Serialize)]
pub struct ListLocation {
    #[serde(rename = "type")]
    kind: &'static str,
    id: String,
    handle: Option<String>,
    slug: Option<String>,
}

/// `GET /lists/by-uri?uri=at://...`: an album's id, artist handle and slug, or a playlist's id.
pub async fn list_by_uri(
    State(db): State<PgPool>,
    WebQuery(p): WebQuery<UriParams>,
) -> Result<Json<ListLocation>, WebError> {
    let uri = params::required("uri", p.uri)?;
    let not_found = || WebError::NotFound("list not found".into());
    let row = queries::list::by_uri(&db, &uri)
        .await?
        .ok_or_else(not_found)?
        .list;
    if row.list_type.as_deref() == Some("album") {
        let album = album::of_artists(&db, std::slice::from_ref(&row.did))
            .await?
            .remove(&row.did)
            .unwrap_or_default()
            .into_iter()
            .find(|a| a.list_uri.as_deref() == Some(row.uri.as_str()))
            .ok_or_else(not_found)?;
        return Ok(Json(ListLocation {
            kind: "album",
            id: album.id,
            handle: Some(row.handle.unwrap_or_else(|| row.did.clone())),
            slug: Some(album.slug),
        }));
    }
    if !is_playlist(&row) {
        return Err(not_found());
    }
    Ok(Json(ListLocation {
        kind: "playlist",
        id: id::uuid_id(&row.uri),
        handle: None,
        slug: None,
    }))
}

//! Albums: `fm.plyr.list` records of type album, plus an implicit album per (artist, `album`
//! name) that no album list carries. `/albums/{handle}` and `/albums/{handle}/{slug}`.

use std::collections::{HashMap, HashSet};

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use sqlx::PgPool;

use super::Web;
use super::artist;
use super::error::WebError;
use super::id;
use super::track::{self, MAX_UNPAGED, Track};
use crate::queries;

/// One album of an artist, with its web id and slug.
#[derive(Debug, Clone)]
pub struct Album {
    /// The list's web id, or the hash of the implicit album's key.
    pub id: String,
    /// The list's name, or the tracks' `album`.
    pub title: String,
    /// Unique among the artist's albums.
    pub slug: String,
    /// The album list, when there is one.
    pub list_uri: Option<String>,
}

/// The albums of the artists among `dids`, keyed by DID, oldest first, with their slugs.
pub async fn of_artists(
    db: &PgPool,
    dids: &[String],
) -> Result<HashMap<String, Vec<Album>>, sqlx::Error> {
    let mut rows_by_did: HashMap<String, Vec<queries::album::AlbumRow>> = HashMap::new();
    for row in queries::album::of_artists(db, dids).await? {
        rows_by_did.entry(row.did.clone()).or_default().push(row);
    }
    Ok(rows_by_did
        .into_iter()
        .map(|(did, rows)| {
            let slugs = id::unique_slugs(rows.iter().map(|r| r.title.as_str()));
            let albums = rows
                .into_iter()
                .zip(slugs)
                .map(|(r, slug)| album(r, slug))
                .collect();
            (did, albums)
        })
        .collect())
}

/// The album of artist `did` with this slug, or upstream's 404.
pub async fn by_slug(db: &PgPool, did: &str, slug: &str) -> Result<Album, WebError> {
    of_artists(db, &[did.to_owned()])
        .await?
        .remove(did)
        .unwrap_or_default()
        .into_iter()
        .find(|a| a.slug == slug)
        .ok_or(WebError::NotFound("album not found".into()))
}

/// The Album of a row, given its slug.
pub fn album(row: queries::album::AlbumRow, slug: String) -> Album {
    let id = match &row.list_web_id {
        Some(web_id) => web_id.clone(),
        None => id::uuid_id(&id::implicit_album_key(&row.did, &row.title)),
    };
    Album {
        id,
        title: row.title,
        slug,
        list_uri: row.list_uri,
    }
}

/// One card of `/albums/{handle}`.
#[derive(Debug, Serialize)]
pub struct AlbumListItem {
    id: String,
    title: String,
    slug: String,
    track_count: i64,
    total_plays: i64,
    image_url: Option<String>,
}

/// Output of `/albums/{handle}`.
#[derive(Debug, Serialize)]
pub struct ArtistAlbums {
    albums: Vec<AlbumListItem>,
}

/// `GET /albums/{handle}`: the artist's albums that hold at least one visible track, by
/// lowercased title. Art is the album's oldest track's, else the artist's avatar.
pub async fn artist_albums(
    State(db): State<PgPool>,
    Path(handle): Path<String>,
) -> Result<Json<ArtistAlbums>, WebError> {
    let card = artist::card(&db, &handle).await?;
    let albums = of_artists(&db, std::slice::from_ref(&card.did))
        .await?
        .remove(&card.did)
        .unwrap_or_default();
    let mut members = queries::album::members(&db, &card.did).await?;
    members.sort_by(|a, b| {
        a.sort_at
            .cmp(&b.sort_at)
            .then(a.track_uri.cmp(&b.track_uri))
    });
    let mut items: Vec<AlbumListItem> = albums
        .into_iter()
        .filter_map(|album| {
            let mut seen = HashSet::new();
            let tracks: Vec<_> = members
                .iter()
                .filter(|m| match (&m.list_uri, &album.list_uri) {
                    (Some(member_of), Some(list)) => member_of == list,
                    (None, _) => m.album.as_deref() == Some(album.title.as_str()),
                    (Some(_), None) => false,
                })
                .filter(|m| seen.insert(m.track_uri.as_str()))
                .collect();
            if tracks.is_empty() {
                return None;
            }
            Some(AlbumListItem {
                image_url: tracks
                    .iter()
                    .find_map(|m| m.image_url.clone())
                    .or_else(|| card.avatar.clone()),
                track_count: i64::try_from(tracks.len()).unwrap_or(i64::MAX),
                total_plays: tracks.iter().map(|m| m.plays).sum(),
                id: album.id,
                title: album.title,
                slug: album.slug,
            })
        })
        .collect();
    items.sort_by_key(|a| (a.title.to_lowercase(), a.slug.clone()));
    Ok(Json(ArtistAlbums { albums: items }))
}

/// `metadata` of `/albums/{handle}/{slug}`.
#[derive(Debug, Serialize)]
pub struct AlbumMetadata {
    id: String,
    title: String,
    slug: String,
    description: Option<String>,
    artist: String,
    artist_handle: String,
    artist_did: String,
    track_count: i64,
    total_plays: i64,
    image_url: Option<String>,
    list_uri: Option<String>,
}

/// Output of `/albums/{handle}/{slug}`.
#[derive(Debug, Serialize)]
pub struct AlbumDetail {
    metadata: AlbumMetadata,
    tracks: Vec<Track>,
}

/// `GET /albums/{handle}/{slug}`: the album's tracks in the list record's order, then its
/// artist's other tracks naming the album, oldest first (only those for an implicit album).
pub async fn album_detail(
    State(db): State<PgPool>,
    State(web): State<Web>,
    Path((handle, slug)): Path<(String, String)>,
) -> Result<Json<AlbumDetail>, WebError> {
    let card = artist::card(&db, &handle).await?;
    let album = by_slug(&db, &card.did, &slug).await?;
    let mut rows = match &album.list_uri {
        Some(list) => queries::list::items(&db, list).await?,
        None => Vec::new(),
    };
    let listed: HashSet<String> = rows.iter().map(|r| r.uri.clone()).collect();
    rows.extend(
        queries::track::by_album(&db, &card.did, &album.title, MAX_UNPAGED)
            .await?
            .into_iter()
            .filter(|r| !listed.contains(&r.uri)),
    );
    let tracks = track::build(&db, rows, &web).await?;
    let handle = card.handle.clone().unwrap_or_else(|| card.did.clone());
    let metadata = AlbumMetadata {
        id: album.id,
        title: album.title,
        slug: album.slug,
        description: None,
        artist: card.display_name.clone().unwrap_or_else(|| handle.clone()),
        artist_handle: handle,
        artist_did: card.did.clone(),
        track_count: i64::try_from(tracks.len()).unwrap_or(i64::MAX),
        total_plays: tracks.iter().map(Track::play_count).sum(),
        image_url: tracks
            .iter()
            .find_map(|t| t.image_url().map(str::to_owned))
            .or_else(|| card.avatar.clone()),
        list_uri: album.list_uri,
    };
    Ok(Json(AlbumDetail { metadata, tracks }))
}

//! fm.plyr.feed handlers for lists: one list with its tracks, and an actor's lists.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::actor::visible_did;
use crate::cache::ViewCache;
use crate::cursor::{TimeCursor, paginate};
use crate::error::XrpcError;
use crate::params::{self, Limit, XrpcQuery};
use crate::queries;
use crate::views::{ListOutput, ListView, ListViewDetailed, ListsPage};

/// Longest `listType` accepted: the filter is an open set, but not an unbounded string.
const MAX_LIST_TYPE_LEN: usize = 64;

/// Params of fm.plyr.feed.getList.
#[derive(Debug, Deserialize)]
pub struct GetListParams {
    uri: Option<String>,
}

/// Params of fm.plyr.feed.getActorLists.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetActorListsParams {
    actor: Option<String>,
    list_type: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// fm.plyr.feed.getList: a visible list with its visible tracks in record order; NotFound when
/// the list is missing or hidden.
pub async fn get_list(
    State(db): State<PgPool>,
    XrpcQuery(p): XrpcQuery<GetListParams>,
) -> Result<Json<ListOutput>, XrpcError> {
    let uri = params::record_uri("uri", &params::required("uri", p.uri)?)?;
    let list = queries::list::by_uri(&db, &uri.uri)
        .await?
        .ok_or_else(|| XrpcError::NotFound("list not found".to_owned()))?;
    let items = queries::list::items(&db, &uri.uri).await?;
    Ok(Json(ListOutput {
        list: ListViewDetailed::new(list, items),
    }))
}

/// Params of fm.plyr.feed.getArtistAlbums and fm.plyr.feed.getActorPlaylists.
#[derive(Debug, Deserialize)]
pub struct ActorPageParams {
    actor: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// Output of fm.plyr.feed.getArtistAlbums.
#[derive(Debug, Serialize)]
pub struct AlbumsPage {
    albums: Vec<ListView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cursor: Option<String>,
}

/// Output of fm.plyr.feed.getActorPlaylists.
#[derive(Debug, Serialize)]
pub struct PlaylistsPage {
    playlists: Vec<ListView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cursor: Option<String>,
}

/// fm.plyr.feed.getArtistAlbums: an active artist's album lists, newest first.
pub async fn get_artist_albums(
    State(db): State<PgPool>,
    State(cache): State<ViewCache>,
    XrpcQuery(p): XrpcQuery<ActorPageParams>,
) -> Result<Json<AlbumsPage>, XrpcError> {
    let (albums, cursor) = lists_of_type(&db, &cache, p, "album").await?;
    Ok(Json(AlbumsPage { albums, cursor }))
}

/// fm.plyr.feed.getActorPlaylists: an active actor's playlists, newest first.
pub async fn get_actor_playlists(
    State(db): State<PgPool>,
    State(cache): State<ViewCache>,
    XrpcQuery(p): XrpcQuery<ActorPageParams>,
) -> Result<Json<PlaylistsPage>, XrpcError> {
    let (playlists, cursor) = lists_of_type(&db, &cache, p, "playlist").await?;
    Ok(Json(PlaylistsPage { playlists, cursor }))
}

/// One page of an active actor's lists of `list_type`, with the cursor after it.
async fn lists_of_type(
    db: &PgPool,
    cache: &ViewCache,
    p: ActorPageParams,
    list_type: &str,
) -> Result<(Vec<ListView>, Option<String>), XrpcError> {
    let actor = params::actor("actor", &params::required("actor", p.actor)?)?;
    let limit = Limit::parse(p.limit.as_deref())?;
    let after = params::time_cursor(p.cursor.as_deref())?;
    let did = visible_did(db, cache, &actor).await?;
    let rows =
        queries::list::by_author(db, &did, Some(list_type), after.as_ref(), limit.fetch()).await?;
    let (rows, cursor) = paginate(rows, limit.rows(), |row| {
        TimeCursor::after(row.sort_at, &row.uri)
    });
    Ok((rows.into_iter().map(ListView::from).collect(), cursor))
}

/// fm.plyr.feed.getActorLists: an active actor's lists, newest first, optionally of one type.
pub async fn get_actor_lists(
    State(db): State<PgPool>,
    State(cache): State<ViewCache>,
    XrpcQuery(p): XrpcQuery<GetActorListsParams>,
) -> Result<Json<ListsPage>, XrpcError> {
    let actor = params::actor("actor", &params::required("actor", p.actor)?)?;
    if p.list_type
        .as_ref()
        .is_some_and(|t| t.len() > MAX_LIST_TYPE_LEN)
    {
        return Err(XrpcError::InvalidRequest(format!(
            "listType must be at most {MAX_LIST_TYPE_LEN} bytes"
        )));
    }
    let limit = Limit::parse(p.limit.as_deref())?;
    let after = params::time_cursor(p.cursor.as_deref())?;
    let did = visible_did(&db, &cache, &actor).await?;
    let rows = queries::list::by_author(
        &db,
        &did,
        p.list_type.as_deref(),
        after.as_ref(),
        limit.fetch(),
    )
    .await?;
    let (rows, cursor) = paginate(rows, limit.rows(), |row| {
        TimeCursor::after(row.sort_at, &row.uri)
    });
    Ok(Json(ListsPage {
        lists: rows.into_iter().map(ListView::from).collect(),
        cursor,
    }))
}

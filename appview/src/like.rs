//! fm.plyr.feed handlers about likes: who liked a track, and what an actor liked.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use sqlx::PgPool;

use crate::actor::visible_did;
use crate::cache::ViewCache;
use crate::cursor::{TimeCursor, paginate};
use crate::error::XrpcError;
use crate::params::{self, Limit, XrpcQuery};
use crate::queries;
use crate::views::{LikeView, LikesPage, TrackView, TracksPage};

/// Params of fm.plyr.feed.getLikes.
#[derive(Debug, Deserialize)]
pub struct GetLikesParams {
    uri: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// Params of fm.plyr.feed.getActorLikes.
#[derive(Debug, Deserialize)]
pub struct GetActorLikesParams {
    actor: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// fm.plyr.feed.getLikes: likes of a track by active actors, newest first. A track that is
/// missing (its likes may arrive first) or hidden simply has no likes to show.
pub async fn get_likes(
    State(db): State<PgPool>,
    State(cache): State<ViewCache>,
    XrpcQuery(p): XrpcQuery<GetLikesParams>,
) -> Result<Json<LikesPage>, XrpcError> {
    let subject = params::record_uri("uri", &params::required("uri", p.uri)?)?;
    let limit = Limit::parse(p.limit.as_deref())?;
    let after = params::time_cursor(p.cursor.as_deref())?;
    let rows = match &after {
        None => cache
            .likes(&db, &subject.uri, &subject.did, limit.fetch())
            .await?
            .to_vec(),
        Some(after) => {
            queries::like::of_track(&db, &subject.uri, &subject.did, Some(after), limit.fetch())
                .await?
        }
    };
    let (rows, cursor) = paginate(rows, limit.rows(), |row| {
        TimeCursor::after(row.sort_at, &row.uri)
    });
    Ok(Json(LikesPage {
        uri: subject.uri,
        likes: rows.into_iter().map(LikeView::from).collect(),
        cursor,
    }))
}

/// fm.plyr.feed.getActorLikes: visible tracks an active actor liked, newest like first.
pub async fn get_actor_likes(
    State(db): State<PgPool>,
    State(cache): State<ViewCache>,
    XrpcQuery(p): XrpcQuery<GetActorLikesParams>,
) -> Result<Json<TracksPage>, XrpcError> {
    let actor = params::actor("actor", &params::required("actor", p.actor)?)?;
    let limit = Limit::parse(p.limit.as_deref())?;
    let after = params::time_cursor(p.cursor.as_deref())?;
    let did = visible_did(&db, &cache, &actor).await?;
    let rows = queries::like::liked_tracks(&db, &did, after.as_ref(), limit.fetch()).await?;
    // The cursor follows the likes' order, not the tracks'.
    let (rows, cursor) = paginate(rows, limit.rows(), |row| {
        TimeCursor::after(row.like_sort_at, &row.like_uri)
    });
    Ok(Json(TracksPage {
        tracks: rows
            .into_iter()
            .map(|row| TrackView::from(row.track))
            .collect(),
        cursor,
    }))
}

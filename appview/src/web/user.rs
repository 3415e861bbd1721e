//! `/users/{handle}/likes`: the tracks a user liked, newest like first.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use sqlx::PgPool;

use super::Web;
use super::artist;
use super::error::WebError;
use super::track::{self, MAX_UNPAGED, Track};
use crate::queries;

/// The user a likes list belongs to.
#[derive(Debug, Serialize)]
pub struct User {
    did: String,
    handle: String,
    display_name: String,
    avatar_url: Option<String>,
}

/// Output of `/users/{handle}/likes`.
#[derive(Debug, Serialize)]
pub struct UserLikes {
    user: User,
    tracks: Vec<Track>,
    count: i64,
}

/// `GET /users/{handle}/likes` (`handle` may be a DID): every visible track the user liked,
/// newest like first, unpaginated as upstream (bounded by [`MAX_UNPAGED`]).
pub async fn likes(
    State(db): State<PgPool>,
    State(web): State<Web>,
    Path(handle): Path<String>,
) -> Result<Json<UserLikes>, WebError> {
    let card = artist::find(&db, &handle)
        .await?
        .ok_or(WebError::NotFound("user not found".into()))?;
    let rows = queries::like::liked_tracks(&db, &card.did, None, MAX_UNPAGED).await?;
    let tracks = track::build(&db, rows.into_iter().map(|r| r.track).collect(), &web).await?;
    let handle = card.handle.unwrap_or_else(|| card.did.clone());
    Ok(Json(UserLikes {
        count: i64::try_from(tracks.len()).unwrap_or(i64::MAX),
        tracks,
        user: User {
            display_name: card.display_name.unwrap_or_else(|| handle.clone()),
            handle,
            did: card.did,
            avatar_url: card.avatar,
        },
    }))
}

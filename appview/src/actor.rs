//! fm.plyr.actor.* handlers, and the actor lookup the list methods share.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use sqlx::PgPool;

use crate::cache::ViewCache;
use crate::error::XrpcError;
use crate::params::{self, ActorRef, XrpcQuery};
use crate::queries;
use crate::queries::actor::ActorRow;
use crate::views::{INVALID_HANDLE, ProfileViewDetailed};

/// Params of fm.plyr.actor.getProfile.
#[derive(Debug, Deserialize)]
pub struct GetProfileParams {
    actor: Option<String>,
}

/// fm.plyr.actor.getProfile: an active actor's profile and counts. Inactive actors answer
/// AccountDeactivated or AccountTakedown (as app.bsky.actor.getProfile does); unknown and
/// deleted ones "profile not found", since a deleted account should look like it never existed.
pub async fn get_profile(
    State(db): State<PgPool>,
    State(cache): State<ViewCache>,
    XrpcQuery(p): XrpcQuery<GetProfileParams>,
) -> Result<Json<ProfileViewDetailed>, XrpcError> {
    let actor = params::actor("actor", &params::required("actor", p.actor)?)?;
    let row = lookup(&db, &actor).await?.ok_or_else(profile_not_found)?;
    if !row.active {
        return Err(match row.status.as_deref() {
            // Moderation (a labeler's or a local takedown) reads as a takedown too.
            _ if row.taken_down => {
                XrpcError::AccountTakedown("account has been taken down".to_owned())
            }
            Some("takendown" | "suspended") => {
                XrpcError::AccountTakedown("account has been taken down".to_owned())
            }
            Some("deleted") => profile_not_found(),
            _ => XrpcError::AccountDeactivated("account is deactivated".to_owned()),
        });
    }
    // Null when the actor went inactive since the lookup.
    let profile = cache
        .profile(&db, &row.did)
        .await?
        .ok_or_else(profile_not_found)?;
    Ok(Json(ProfileViewDetailed::from(profile)))
}

/// The DID of an active actor, for methods that list their content. Unknown and hidden actors
/// are both refused alike, as app.bsky.feed.getAuthorFeed answers "Profile not found".
pub async fn visible_did(db: &PgPool, actor: &ActorRef) -> Result<String, XrpcError> {
    match lookup(db, actor).await? {
        Some(row) if row.active => Ok(row.did),
        _ => Err(XrpcError::InvalidRequest("actor not found".to_owned())),
    }
}

async fn lookup(db: &PgPool, actor: &ActorRef) -> Result<Option<ActorRow>, sqlx::Error> {
    match actor {
        ActorRef::Did(did) => queries::actor::by_did(db, did).await,
        // The sentinel names nobody, even if an identity event stored it literally.
        ActorRef::Handle(handle) if handle == INVALID_HANDLE => Ok(None),
        ActorRef::Handle(handle) => queries::actor::by_handle(db, handle).await,
    }
}

fn profile_not_found() -> XrpcError {
    XrpcError::InvalidRequest("profile not found".to_owned())
}

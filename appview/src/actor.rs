//! fm.plyr.actor.* handlers, and the actor lookup the list methods share.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::cache::ViewCache;
use crate::error::XrpcError;
use crate::params::{self, ActorRef, XrpcQuery};
use crate::queries;
use crate::queries::actor::{ActorRow, ProfileRow};
use crate::views::{INVALID_HANDLE, ProfileViewDetailed};
use crate::web::WebState;

/// Most actors fm.plyr.actor.getProfiles takes at once (its lexicon's `maxLength`).
const MAX_ACTORS: usize = 25;

/// Params of fm.plyr.actor.getProfiles.
#[derive(Debug, Deserialize)]
pub struct GetProfilesParams {
    #[serde(default)]
    actors: Vec<String>,
}

/// Output of fm.plyr.actor.getProfiles.
#[derive(Debug, Serialize)]
pub struct ProfilesOutput {
    profiles: Vec<ProfileViewDetailed>,
}

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
    State(web): State<Arc<WebState>>,
    XrpcQuery(p): XrpcQuery<GetProfileParams>,
) -> Result<Json<ProfileViewDetailed>, XrpcError> {
    let actor = params::actor("actor", &params::required("actor", p.actor)?)?;
    let row = lookup(&db, &cache, &actor)
        .await?
        .ok_or_else(profile_not_found)?;
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
    let mut profiles = [ProfileViewDetailed::new(profile, &web.config.public_url)];
    crate::label::hydrate_profiles(&db, &mut profiles).await?;
    let [profile] = profiles;
    Ok(Json(profile))
}

/// fm.plyr.actor.getProfiles: the profiles of up to 25 actors (DIDs or handles), in request
/// order (repeats answered once), leaving out unknown and inactive ones.
pub async fn get_profiles(
    State(db): State<PgPool>,
    State(cache): State<ViewCache>,
    State(web): State<Arc<WebState>>,
    XrpcQuery(p): XrpcQuery<GetProfilesParams>,
) -> Result<Json<ProfilesOutput>, XrpcError> {
    if p.actors.is_empty() {
        return Err(XrpcError::InvalidRequest(
            "missing required parameter actors".to_owned(),
        ));
    }
    if p.actors.len() > MAX_ACTORS {
        return Err(XrpcError::InvalidRequest(format!(
            "actors takes at most {MAX_ACTORS} values"
        )));
    }
    let refs = p
        .actors
        .iter()
        .map(|raw| params::actor("actors", raw))
        .collect::<Result<Vec<_>, _>>()?;
    let mut dids: Vec<String> = Vec::with_capacity(refs.len());
    for actor in &refs {
        let did = match actor {
            ActorRef::Did(did) => Some(did.clone()),
            handle => lookup(&db, &cache, handle).await?.map(|row| row.did),
        };
        if let Some(did) = did.filter(|d| !dids.contains(d)) {
            dids.push(did);
        }
    }
    let mut found: HashMap<String, ProfileRow> = queries::actor::profiles(&db, &dids)
        .await?
        .into_iter()
        .map(|row| (row.did.clone(), row))
        .collect();
    let mut profiles: Vec<ProfileViewDetailed> = dids
        .iter()
        .filter_map(|did| found.remove(did))
        .map(|row| ProfileViewDetailed::new(row, &web.config.public_url))
        .collect();
    crate::label::hydrate_profiles(&db, &mut profiles).await?;
    Ok(Json(ProfilesOutput { profiles }))
}

/// The DID of an active actor, for methods that list their content. Unknown and hidden actors
/// are both refused alike, as app.bsky.feed.getAuthorFeed answers "Profile not found".
pub async fn visible_did(
    db: &PgPool,
    cache: &ViewCache,
    actor: &ActorRef,
) -> Result<String, XrpcError> {
    match lookup(db, cache, actor).await? {
        Some(row) if row.active => Ok(row.did),
        _ => Err(XrpcError::InvalidRequest("actor not found".to_owned())),
    }
}

async fn lookup(
    db: &PgPool,
    cache: &ViewCache,
    actor: &ActorRef,
) -> Result<Option<ActorRow>, sqlx::Error> {
    match actor {
        ActorRef::Did(did) => cache.actor(db, did, false).await,
        // The sentinel names nobody, even if an identity event stored it literally.
        ActorRef::Handle(handle) if handle == INVALID_HANDLE => Ok(None),
        ActorRef::Handle(handle) => cache.actor(db, handle, true).await,
    }
}

fn profile_not_found() -> XrpcError {
    XrpcError::InvalidRequest("profile not found".to_owned())
}

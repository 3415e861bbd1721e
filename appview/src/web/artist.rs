//! Artists: `/artists/by-handle/{handle}`, `/artists/{did}` and `/artists/{did}/analytics`, and
//! the handle-or-DID lookup every artist-scoped endpoint shares.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;

use super::error::WebError;
use super::time;
use crate::queries;
use crate::queries::actor::ActorCardRow;
use crate::views::INVALID_HANDLE;

/// The card of the active actor named by `handle_or_did`, or upstream's 404.
pub async fn card(db: &PgPool, handle_or_did: &str) -> Result<ActorCardRow, WebError> {
    find(db, handle_or_did)
        .await?
        .ok_or(WebError::NotFound("artist not found".into()))
}

/// The card of the active actor named by `handle_or_did` (a DID, or a handle in any case).
pub async fn find(db: &PgPool, handle_or_did: &str) -> Result<Option<ActorCardRow>, sqlx::Error> {
    let actor = if handle_or_did.starts_with("did:") {
        queries::actor::by_did(db, handle_or_did).await?
    } else {
        let handle = handle_or_did.to_lowercase();
        if handle == INVALID_HANDLE {
            return Ok(None);
        }
        queries::actor::by_handle(db, &handle).await?
    };
    let Some(actor) = actor.filter(|a| a.active) else {
        return Ok(None);
    };
    Ok(queries::actor::cards(db, &[actor.did]).await?.pop())
}

/// Upstream's `ArtistResponse`.
#[derive(Debug, Serialize)]
pub struct Artist {
    did: String,
    handle: String,
    display_name: String,
    bio: Option<String>,
    avatar_url: Option<String>,
    created_at: String,
    updated_at: String,
    show_liked_on_profile: bool,
    support_url: Option<String>,
}

impl From<ActorCardRow> for Artist {
    /// The display name is the one the artist publishes tracks under, else the handle.
    /// `show_liked_on_profile` and `support_url` are upstream preferences: off and null.
    fn from(card: ActorCardRow) -> Artist {
        let handle = card.handle.unwrap_or_else(|| card.did.clone());
        Artist {
            display_name: card.display_name.unwrap_or_else(|| handle.clone()),
            handle,
            did: card.did,
            bio: card.bio,
            avatar_url: card.avatar,
            created_at: time::pydantic(&card.created_at),
            updated_at: time::pydantic(&card.updated_at),
            show_liked_on_profile: false,
            support_url: None,
        }
    }
}

/// `GET /artists/by-handle/{handle}`.
pub async fn by_handle(
    State(db): State<PgPool>,
    Path(handle): Path<String>,
) -> Result<Json<Artist>, WebError> {
    Ok(Json(Artist::from(card(&db, &handle).await?)))
}

/// `GET /artists/{did}`.
pub async fn by_did(
    State(db): State<PgPool>,
    Path(did): Path<String>,
) -> Result<Json<Artist>, WebError> {
    if !did.starts_with("did:") {
        return Err(WebError::NotFound("artist not found".into()));
    }
    Ok(Json(Artist::from(card(&db, &did).await?)))
}

/// Most DIDs one `/artists/batch` call may name (a page of supporters is far fewer).
const MAX_BATCH: usize = 100;

/// `POST /artists/batch` with a JSON array of DIDs: an object from each known, active DID to its
/// Artist; unknown DIDs are left out.
pub async fn batch(
    State(db): State<PgPool>,
    body: axum::body::Bytes,
) -> Result<Json<HashMap<String, Artist>>, WebError> {
    let dids: Vec<String> = serde_json::from_slice(&body).map_err(|e| WebError::Validation {
        kind: "list_type",
        location: "body",
        name: "dids",
        message: format!("Input should be a valid list of strings: {e}"),
        input: Value::Null,
    })?;
    if dids.len() > MAX_BATCH {
        return Err(WebError::Validation {
            kind: "too_long",
            location: "body",
            name: "dids",
            message: format!("List should have at most {MAX_BATCH} items"),
            input: Value::Null,
        });
    }
    Ok(Json(
        queries::actor::cards(&db, &dids)
            .await?
            .into_iter()
            .map(|card| (card.did.clone(), Artist::from(card)))
            .collect(),
    ))
}

/// A track in the analytics: `play_count` holds likes in `top_liked` (upstream's quirk).
#[derive(Debug, Serialize)]
pub struct TopItem {
    id: i64,
    title: String,
    play_count: i64,
}

/// Output of `/artists/{did}/analytics`.
#[derive(Debug, Serialize)]
pub struct Analytics {
    total_plays: i64,
    total_items: i64,
    total_duration_seconds: i64,
    top_item: Option<TopItem>,
    top_liked: Option<TopItem>,
    rank: Option<i64>,
}

/// Ranks above this are not reported (upstream reports a top-10 place only).
const MAX_RANK: i64 = 10;

/// `GET /artists/{did}/analytics`: totals over the artist's visible tracks; zeros for an
/// unknown DID, as upstream.
pub async fn analytics(
    State(db): State<PgPool>,
    Path(did): Path<String>,
) -> Result<Json<Analytics>, WebError> {
    let totals = queries::stats::totals(&db, Some(&did)).await?;
    let top = |row: queries::stats::TopTrackRow| TopItem {
        id: row.web_id,
        title: row.title,
        play_count: row.count,
    };
    Ok(Json(Analytics {
        total_plays: totals.plays,
        total_items: totals.tracks,
        total_duration_seconds: totals.duration_seconds,
        top_item: queries::stats::most_played(&db, &did).await?.map(top),
        top_liked: queries::stats::most_liked(&db, &did).await?.map(top),
        rank: queries::stats::play_rank(&db, &did)
            .await?
            .filter(|r| *r <= MAX_RANK),
    }))
}

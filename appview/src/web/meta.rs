//! What every page asks besides content: `/config`, `/auth/me`, `/moderation/sensitive-images`,
//! `/stats`, `/health`, and `/oembed` for embeds.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::PgPool;

use super::Web;
use super::album;
use super::artist;
use super::error::WebError;
use super::id;
use super::params::{self, OutOfRange, WebQuery};
use super::track::text;
use crate::queries;

/// `GET /config`. `browser_observability: false` keeps the client from adding trace headers
/// (and their preflights) and from posting traces. Upload limits and hidden tags are upstream's
/// values; this AppView has no operator contacts or terms, so those are empty.
pub async fn config() -> Json<Value> {
    Json(json!({
        "max_upload_size_mb": 1536,
        "max_image_size_mb": 20,
        "browser_observability": false,
        "default_hidden_tags": ["ai", "ai-slop", "suno"],
        "bufo_exclude_patterns": [],
        "bufo_include_patterns": [],
        "contact_email": "",
        "privacy_email": "",
        "dmca_email": "",
        "dmca_registration_number": "",
        "terms_last_updated": "1970-01-01T00:00:00Z",
    }))
}

/// `GET /health`.
pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /auth/me`: this AppView has no sessions, so every caller is anonymous.
pub async fn auth_me() -> WebError {
    WebError::Unauthorized("not authenticated - login required")
}

/// `GET /moderation/sensitive-images`: no image is flagged here (flags are upstream's).
pub async fn sensitive_images() -> Json<Value> {
    Json(json!({"image_ids": [], "urls": []}))
}

/// Output of `/stats`.
#[derive(Debug, Serialize)]
pub struct Stats {
    total_plays: i64,
    total_tracks: i64,
    total_artists: i64,
    total_duration_seconds: i64,
}

/// `GET /stats`: totals over every visible track (a scan, so cached for a minute).
pub async fn stats(
    State(db): State<PgPool>,
    State(web): State<Web>,
) -> Result<Json<Stats>, WebError> {
    let now = Instant::now();
    let t = match web.totals.get(&(), now) {
        Some(t) => t,
        None => {
            let t = queries::stats::totals(&db, None).await?;
            web.totals.put((), t.clone(), now);
            t
        }
    };
    Ok(Json(Stats {
        total_plays: t.plays,
        total_tracks: t.tracks,
        total_artists: t.artists,
        total_duration_seconds: t.duration_seconds,
    }))
}

/// Params of `/oembed`.
#[derive(Debug, Deserialize)]
pub struct OembedParams {
    url: Option<String>,
    maxwidth: Option<String>,
    maxheight: Option<String>,
    format: Option<String>,
}

/// Embed widths and heights: (default, largest).
const WIDTH: (i64, i64) = (400, 800);
const TRACK_HEIGHT: (i64, i64) = (165, 165);
const COLLECTION_HEIGHT: (i64, i64) = (380, 600);
/// Thumbnail size upstream declares.
const THUMBNAIL_SIZE: i64 = 300;

/// A page the web client can embed.
enum Embeddable {
    Track(i64),
    Playlist(String),
    Album { handle: String, slug: String },
}

/// Reads a web client URL: `/track/{int}`, `/playlist/{uuid}` or `/u/{handle}/album/{slug}`,
/// whatever the host (self-hosted clients have their own).
fn embeddable(url: &str) -> Option<Embeddable> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = rest.find('/').map_or("", |i| &rest[i..]);
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    match parts.as_slice() {
        ["track", id] => id.parse().ok().map(Embeddable::Track),
        ["playlist", id] if id::is_uuid(id) => Some(Embeddable::Playlist(id.to_ascii_lowercase())),
        ["u", handle, "album", slug] => Some(Embeddable::Album {
            handle: (*handle).to_owned(),
            slug: (*slug).to_owned(),
        }),
        _ => None,
    }
}

/// Escapes text for an HTML attribute.
fn attr(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `GET /oembed?url=`: the rich embed of a track, playlist or album page.
pub async fn oembed(
    State(db): State<PgPool>,
    State(web): State<Web>,
    WebQuery(p): WebQuery<OembedParams>,
) -> Result<Json<Value>, WebError> {
    let url = params::required("url", p.url)?;
    if p.format.as_deref().is_some_and(|f| f != "json") {
        return Err(WebError::NotImplemented("only json format is supported"));
    }
    let unsupported = || WebError::NotFound("unsupported URL format".into());
    let target = embeddable(&url).ok_or_else(unsupported)?;
    let maxwidth = params::int(
        "maxwidth",
        p.maxwidth.as_deref(),
        WIDTH.0,
        (1, WIDTH.1),
        OutOfRange::Clamp,
    )?;
    let frontend = web.config.frontend_url.trim_end_matches('/');
    let (path, title, author_name, handle, image, heights) = match target {
        Embeddable::Track(id) => {
            let row = queries::track::by_web_id(&db, id)
                .await?
                .ok_or(WebError::NotFound("track not found".into()))?;
            (
                format!("track/{id}"),
                text(&row.record, "title").unwrap_or_default(),
                text(&row.record, "artist").unwrap_or_default(),
                row.handle.clone().unwrap_or_else(|| row.did.clone()),
                text(&row.record, "imageUrl"),
                TRACK_HEIGHT,
            )
        }
        Embeddable::Playlist(id) => {
            let list = queries::list::by_web_id(&db, &id)
                .await?
                .ok_or(WebError::NotFound("playlist not found".into()))?
                .list;
            let image = queries::list::artworks(&db, std::slice::from_ref(&list.uri), 1)
                .await?
                .pop()
                .map(|(_, image)| image);
            let handle = list.handle.clone().unwrap_or_else(|| list.did.clone());
            (
                format!("playlist/{id}"),
                list.name.unwrap_or_default(),
                handle.clone(),
                handle,
                image,
                COLLECTION_HEIGHT,
            )
        }
        Embeddable::Album { handle, slug } => {
            let card = artist::card(&db, &handle).await?;
            let album = album::by_slug(&db, &card.did, &slug).await?;
            let first = queries::track::by_album(&db, &card.did, &album.title, 1).await?;
            let image = first
                .first()
                .and_then(|t| text(&t.record, "imageUrl"))
                .or_else(|| card.avatar.clone());
            let handle = card.handle.clone().unwrap_or_else(|| card.did.clone());
            (
                format!("album/{handle}/{}", album.slug),
                album.title,
                card.display_name.clone().unwrap_or_else(|| handle.clone()),
                handle,
                image,
                COLLECTION_HEIGHT,
            )
        }
    };
    let height = params::int(
        "maxheight",
        p.maxheight.as_deref(),
        heights.0,
        (1, heights.1),
        OutOfRange::Clamp,
    )?;
    let html = format!(
        "<iframe src=\"{}\" width=\"{maxwidth}\" height=\"{height}\" frameborder=\"0\" \
         allow=\"autoplay; encrypted-media\" loading=\"lazy\"></iframe>",
        attr(&format!("{frontend}/embed/{path}"))
    );
    let thumbnail_size = image.as_ref().map(|_| THUMBNAIL_SIZE);
    Ok(Json(json!({
        "version": "1.0",
        "type": "rich",
        "provider_name": "plyr.fm",
        "provider_url": frontend,
        "title": title,
        "author_name": author_name,
        "author_url": format!("{frontend}/u/{handle}"),
        "width": maxwidth,
        "height": height,
        "html": html,
        "thumbnail_url": image,
        "thumbnail_width": thumbnail_size,
        "thumbnail_height": thumbnail_size,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embeddable_urls() {
        let uuid = "346ece3f-4e66-fa9e-480e-444fcb864fac";
        assert!(matches!(
            embeddable("https://plyr.fm/track/12?t=3"),
            Some(Embeddable::Track(12))
        ));
        assert!(matches!(
            embeddable(&format!("https://x.test/playlist/{uuid}")),
            Some(Embeddable::Playlist(_))
        ));
        assert!(matches!(
            embeddable("https://plyr.fm/u/a.test/album/blue"),
            Some(Embeddable::Album { .. })
        ));
        for bad in [
            "https://plyr.fm/track/abc",
            "https://plyr.fm/playlist/1",
            "https://plyr.fm/",
            "https://plyr.fm/u/a.test",
        ] {
            assert!(embeddable(bad).is_none(), "{bad}");
        }
    }
}

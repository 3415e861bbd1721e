//! The plyr.fm web client's REST API (upstream's FastAPI paths and JSON), served from the same
//! view and the same `queries/` as XRPC, so the unchanged client renders network-wide data
//! (issue #7; the contract is `plyr-web-api.md`).
//!
//! One file per noun: `track.rs` (the Track object and `/tracks/*`), `album.rs`,
//! `artist.rs`, `playlist.rs`, `user.rs`, `search.rs`, `audio.rs` (playback redirects),
//! `play.rs` (play counting), `meta.rs` (config, auth, moderation, stats, oEmbed); `id.rs`
//! derives ids and slugs, `cors.rs` decides origins, `params.rs` and `error.rs` speak FastAPI.

mod album;
mod artist;
mod audio;
mod cors;
mod error;
mod id;
mod meta;
mod params;
mod play;
mod playlist;
mod search;
mod time;
mod track;
mod user;

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::FromRef;
use axum::routing::{get, post};
use tower::ServiceBuilder;
use tower_http::trace::TraceLayer;

use crate::AppState;
pub use error::WebError;
pub use play::PlayLimiter;

/// Longest a web request may run (as XRPC: every endpoint is a few indexed lookups).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How the web API presents itself: who may call it with credentials, where it and the web
/// client live, and which audio hosts it redirects to.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// Origins answered with credentialed CORS: `scheme://host[:port]` exactly, `scheme://host:*`
    /// for any port, `https://*` for any HTTPS origin, or `null` (sandboxed iframes).
    pub allowed_origins: Vec<String>,
    /// This API's base URL as browsers reach it (no trailing slash), for absolute
    /// `/audio/{file_id}` URLs.
    pub public_url: String,
    /// The web client's base URL (no trailing slash): oEmbed iframes and links point there.
    pub frontend_url: String,
    /// Hosts whose `audioUrl` a track may be redirected to: `host` exactly, or `*.domain` for
    /// its subdomains. HTTPS only.
    pub audio_hosts: Vec<String>,
    /// Plays one client address may report per minute; more get 429.
    pub plays_per_minute: u32,
}

impl Default for WebConfig {
    /// Development: a client on localhost or 127.0.0.1 (any port), the API on its default
    /// address, links to plyr.fm, redirects to plyr.fm's and R2's hosts.
    fn default() -> WebConfig {
        WebConfig {
            allowed_origins: vec![
                "http://localhost:*".to_owned(),
                "http://127.0.0.1:*".to_owned(),
                "null".to_owned(),
            ],
            public_url: "http://127.0.0.1:2584".to_owned(),
            frontend_url: "https://plyr.fm".to_owned(),
            audio_hosts: vec!["*.plyr.fm".to_owned(), "*.r2.dev".to_owned()],
            plays_per_minute: 30,
        }
    }
}

/// How long `/tracks/top` of a period and `/stats` are answered from memory: both scan, every
/// homepage asks, and a minute-old ranking or total is as good.
const SCAN_CACHE_TTL: Duration = Duration::from_secs(60);

/// The web API's part of [`AppState`]: its config, the play rate limiter and the caches.
#[derive(Debug)]
pub struct WebState {
    /// How the API presents itself.
    pub config: WebConfig,
    /// Per-address play limits.
    pub plays: PlayLimiter,
    /// `/tracks/top` rows of a period, by (days, limit).
    pub top: crate::ttl::TtlCache<(i64, i64), Vec<crate::queries::track::TrackRow>>,
    /// `/stats` totals.
    pub totals: crate::ttl::TtlCache<(), crate::queries::stats::TotalsRow>,
}

impl WebState {
    /// State for `config`, with empty limiters and caches.
    pub fn new(config: WebConfig) -> WebState {
        let plays = PlayLimiter::new(config.plays_per_minute);
        WebState {
            config,
            plays,
            top: crate::ttl::TtlCache::new(SCAN_CACHE_TTL),
            totals: crate::ttl::TtlCache::new(SCAN_CACHE_TTL),
        }
    }
}

/// What web handlers read of the [`AppState`]: the web state, and whether this server serves
/// `/blob/{cid}` (a blob store is configured), in which case audio we hold is played from it.
#[derive(Debug, Clone)]
pub struct Web {
    state: Arc<WebState>,
    /// True when `/blob/{cid}` is served.
    pub blobs: bool,
}

impl Deref for Web {
    type Target = WebState;

    fn deref(&self) -> &WebState {
        &self.state
    }
}

impl FromRef<AppState> for Web {
    fn from_ref(state: &AppState) -> Web {
        Web {
            state: state.web.clone(),
            blobs: state.blobs.is_some(),
        }
    }
}

/// The web routes with their layers (tracing, credentialed CORS, timeout), to merge beside XRPC.
pub fn router(state: &AppState) -> Router<AppState> {
    routes()
        .layer(
            ServiceBuilder::new()
                .layer(TraceLayer::new_for_http())
                .layer(cors::layer(&state.web.config))
                .layer(HandleErrorLayer::new(timed_out))
                .timeout(REQUEST_TIMEOUT),
        )
        .fallback(not_found)
}

/// Path -> handler. `/tracks/` and `/search/` are the client's spellings; the other spelling of
/// each path is served too (upstream answers it with a redirect).
#[rustfmt::skip]
fn routes() -> Router<AppState> {
    Router::new()
        .route("/config", get(meta::config))
        .route("/health", get(meta::health))
        .route("/auth/me", get(meta::auth_me))
        .route("/moderation/sensitive-images", get(meta::sensitive_images))
        .route("/stats", get(meta::stats))
        .route("/oembed", get(meta::oembed))
        .route("/tracks/", get(track::list_tracks))
        .route("/tracks", get(track::list_tracks))
        .route("/tracks/top", get(track::top_tracks))
        .route("/tracks/top/", get(track::top_tracks))
        .route("/tracks/tags", get(track::tags))
        .route("/tracks/tags/", get(track::tags))
        .route("/tracks/tags/{*name}", get(track::tag))
        .route("/tracks/by-uri", get(track::track_by_uri))
        .route("/tracks/{id}", get(track::get_track))
        .route("/tracks/{id}/comments", get(track::comments))
        .route("/tracks/{id}/likes", get(track::likes))
        .route("/tracks/{id}/play", post(play::play))
        .route("/tracks/{id}/ref/{code}/click", post(track::ref_click))
        .route("/audio/{file_id}", get(audio::audio))
        .route("/artists/by-handle/{handle}", get(artist::by_handle))
        .route("/artists/batch", post(artist::batch))
        .route("/artists/{did}", get(artist::by_did))
        .route("/artists/{did}/analytics", get(artist::analytics))
        .route("/albums/{handle}", get(album::artist_albums))
        .route("/albums/{handle}/{slug}", get(album::album_detail))
        .route("/lists/playlists/by-artist/{did}", get(playlist::by_artist))
        .route("/lists/playlists/{id}", get(playlist::playlist))
        .route("/lists/playlists/{id}/meta", get(playlist::meta))
        .route("/lists/playlists/{id}/og-cover", get(playlist::og_cover))
        .route("/lists/by-uri", get(playlist::list_by_uri))
        .route("/users/{handle}/likes", get(user::likes))
        .route("/search/", get(search::search))
        .route("/search", get(search::search))
}

/// FastAPI's answer to an unknown path.
async fn not_found() -> WebError {
    WebError::NotFound("Not Found".into())
}

/// Turns the timeout layer's error into a web error body.
async fn timed_out(err: axum::BoxError) -> WebError {
    if err.is::<tower::timeout::error::Elapsed>() {
        WebError::Timeout
    } else {
        WebError::Internal(err.to_string())
    }
}

//! Every XRPC method this server answers, mapped to its handler, plus the layers around them
//! (tracing, CORS, request timeout).

use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::handler::Handler;
use axum::http::Method;
use axum::middleware::from_fn_with_state;
use axum::routing::{MethodRouter, any, get};
use axum::{BoxError, Router};
use tower::ServiceBuilder;
use tower_http::cors::CorsLayer;
use tower_http::trace::TraceLayer;

use crate::error::XrpcError;
use crate::{
    AppState, actor, comment, docs, feed, health, http, like, list, metrics, ratelimit, search,
    track, well_known,
};

/// Longest a request may run. Every method is a handful of indexed lookups answered in
/// milliseconds; past this the pool is starved or the database stuck, and holding the client
/// helps nobody.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The XRPC router: `GET /xrpc/<nsid>` for every method below, 501 MethodNotImplemented for
/// any other `/xrpc/*` path, with permissive CORS (any origin, no credentials: every method is
/// a public read) and a request timeout. Beside it, the web client's REST API (`web/`), with
/// its own credentialed CORS. Around everything: request metrics, per-IP rate limiting (when
/// configured) and HTTP caching headers (`http.rs`).
pub fn router(state: AppState) -> Router {
    let web = crate::web::router(&state);
    let mut app = methods()
        .layer(from_fn_with_state(
            crate::label::Labelers::new(state.db.clone()),
            crate::label::layer,
        ))
        .layer(
            ServiceBuilder::new()
                .layer(TraceLayer::new_for_http())
                .layer(CorsLayer::permissive())
                .layer(HandleErrorLayer::new(timed_out))
                .timeout(REQUEST_TIMEOUT),
        )
        .merge(web)
        .merge(crate::blob::router())
        .layer(from_fn_with_state(state.http_cache, http::conditional));
    // Layers added last run first: metrics time everything, 429s included.
    if let Some(limiter) = state.rate_limit.clone() {
        app = app.layer(from_fn_with_state(limiter, ratelimit::limit));
    }
    if let Some(recorder) = state.metrics.clone() {
        app = app.layer(from_fn_with_state(recorder, metrics::track));
    }
    app.with_state(state)
}

/// NSID -> handler, one per line.
#[rustfmt::skip]
fn methods() -> Router<AppState> {
    Router::new()
        .route("/.well-known/did.json", get(well_known::did_json))
        .route("/metrics", get(metrics::serve))
        .route("/openapi.json", get(docs::openapi_json))
        .route("/docs", get(docs::docs_html))
        .route("/xrpc/_health", query(health::health))
        .route("/xrpc/fm.plyr.actor.getProfile", query(actor::get_profile))
        .route("/xrpc/fm.plyr.actor.getProfiles", query(actor::get_profiles))
        .route("/xrpc/fm.plyr.actor.searchActors", query(search::search_actors))
        .route("/xrpc/fm.plyr.feed.searchTracks", query(search::search_tracks))
        .route("/xrpc/fm.plyr.unspecced.search", query(search::search))
        .route("/xrpc/fm.plyr.feed.getTopTracks", query(feed::get_top_tracks))
        .route("/xrpc/fm.plyr.feed.getTrending", query(feed::get_trending))
        .route("/xrpc/fm.plyr.feed.getActivity", query(feed::get_activity))
        .route("/xrpc/fm.plyr.feed.getArtistAlbums", query(list::get_artist_albums))
        .route("/xrpc/fm.plyr.feed.getActorPlaylists", query(list::get_actor_playlists))
        .route("/xrpc/fm.plyr.feed.getLatestTracks", query(track::get_latest_tracks))
        .route("/xrpc/fm.plyr.feed.getTrack", query(track::get_track))
        .route("/xrpc/fm.plyr.feed.getTracks", query(track::get_tracks))
        .route("/xrpc/fm.plyr.feed.getArtistTracks", query(track::get_artist_tracks))
        .route("/xrpc/fm.plyr.feed.getLikes", query(like::get_likes))
        .route("/xrpc/fm.plyr.feed.getActorLikes", query(like::get_actor_likes))
        .route("/xrpc/fm.plyr.feed.getComments", query(comment::get_comments))
        .route("/xrpc/fm.plyr.feed.getList", query(list::get_list))
        .route("/xrpc/fm.plyr.feed.getActorLists", query(list::get_actor_lists))
        .route("/xrpc/{*method}", any(not_implemented))
}

/// An XRPC query: GET (and HEAD); any other verb is an InvalidRequest, as in the reference
/// xrpc-server, rather than a bare 405.
fn query<H, T>(handler: H) -> MethodRouter<AppState>
where
    H: Handler<T, AppState>,
    T: 'static,
{
    get(handler).fallback(wrong_verb)
}

async fn wrong_verb(method: Method) -> XrpcError {
    XrpcError::InvalidRequest(format!("incorrect HTTP method ({method}), expected GET"))
}

async fn not_implemented() -> XrpcError {
    XrpcError::MethodNotImplemented
}

/// Turns the timeout layer's error into an XRPC error body.
async fn timed_out(err: BoxError) -> XrpcError {
    if err.is::<tower::timeout::error::Elapsed>() {
        XrpcError::Timeout
    } else {
        XrpcError::Internal(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn middleware_errors_become_xrpc_errors() {
        let elapsed = timed_out(Box::new(tower::timeout::error::Elapsed::new())).await;
        assert!(matches!(elapsed, XrpcError::Timeout), "{elapsed:?}");
        let other = timed_out("boom".into()).await;
        assert!(matches!(other, XrpcError::Internal(_)), "{other:?}");
    }
}

//! The web client's REST API (issue #7) against real Postgres: each test seeds the view tables
//! with plain SQL, calls the router with `oneshot`, and checks status, body and the body's
//! shape field by field against the reference's objects (`schema.rs`).

/// The XRPC tests' seeding helpers (plain SQL into the view tables), shared, not copied.
#[path = "../xrpc/support.rs"]
#[allow(dead_code)]
mod xrpc_support;

/// Response schemas from plyr-web-api.md sections 3 and 4.
mod schema;
/// Requests with headers, and seeding the XRPC helpers lack.
mod support;

/// Albums: list records and implicit ones, slugs, track order.
mod album;
/// Artists, analytics, a user's likes.
mod artist;
/// `/audio/{file_id}` redirects and play counting.
mod audio;
/// Config, auth, moderation, stats, oEmbed, CORS, unknown paths.
mod meta;
/// Playlists and `/lists/by-uri`.
mod playlist;
/// Search.
mod search;
/// `/tracks/*`: feed, pagination, ids, top, tags, comments, likes.
mod track;

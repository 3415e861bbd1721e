//! The XRPC surface against real Postgres: each test seeds the view tables with plain SQL (the
//! indexer's side of the schema contract), calls the router with `oneshot`, and checks status,
//! body, and that the body validates against the method's lexicon output.
//! Run with `DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres`.

/// Seeding helpers and the request/assert helpers every module uses.
mod support;

/// getProfile: views, inactive and unknown actors.
mod actor;
/// The blob service: uploadBlob and /blob/{cid}.
mod blob;
/// getComments: playback order, pagination, hidden commenters.
mod comment;
/// getTopTracks, getTrending, getActivity, getArtistAlbums, getActorPlaylists, getProfiles.
mod feed;
/// Hidden actors: their content is absent from every method.
mod hidden;
/// Hostile params: AT-URI tricks, SQL-looking strings, huge limits, forged cursors.
mod hostile;
/// HTTP conventions: caching headers, rate limits, metrics, docs, the view cache.
mod http;
/// Labels and takedowns: moderated content is absent everywhere.
mod labels;
/// getLikes and getActorLikes.
mod like;
/// getList and getActorLists.
mod list;
/// Audio and image fixtures, shared with the blobstore's tests.
#[path = "../../../blobstore/tests/media_fixtures.rs"]
mod media_fixtures;
/// Protocol behaviour shared by all methods: limits, cursors, errors, health, CORS, serve.
mod protocol;
/// The blobstore's S3 harness (a real s3s-fs), for the redirect test.
#[path = "../../../blobstore/tests/harness.rs"]
#[allow(dead_code)]
mod s3_harness;
/// Issue #6: S3 killed before and during uploadBlob, then restarted: 503, then recovery; a
/// store refusing the credentials: 500, not 503.
mod s3_outage;
/// searchTracks, searchActors and the unified search.
mod search;
/// getLatestTracks, getTrack, getTracks, getArtistTracks.
mod track;
/// Service identity (did.json) and auth: viewer state and token refusals.
mod viewer;

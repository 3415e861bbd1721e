//! Queries over actors: resolving a DID or handle, and the profile with its counts.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tracing::instrument;

/// An actor as the indexer last saw them.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ActorRow {
    /// The actor's DID.
    pub did: String,
    /// False after an #account event deactivated, took down, suspended or deleted them, or
    /// while moderation hides them.
    pub active: bool,
    /// The #account status (takendown, suspended, deleted, deactivated, ...), if any.
    pub status: Option<String>,
    /// Hidden by moderation (a labeler's `!takedown`/`!suspend`/`!hide`, or a local
    /// takedown); `active` is then false too.
    pub taken_down: bool,
}

/// An active actor's profile record (when they have one) and counts.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProfileRow {
    /// The actor's DID.
    pub did: String,
    /// The handle, null when unknown.
    pub handle: Option<String>,
    /// `bio` of the profile record.
    pub bio: Option<String>,
    /// `avatar` of the profile record.
    pub avatar: Option<String>,
    /// Tracks by the actor.
    pub track_count: i32,
    /// Likes given by the actor.
    pub like_count: i32,
    /// Comments written by the actor.
    pub comment_count: i32,
    /// Lists of type album.
    pub album_count: i32,
    /// Lists of type playlist.
    pub playlist_count: i32,
    /// `createdAt` of the profile record.
    pub created_at: Option<DateTime<Utc>>,
    /// When the profile record was indexed.
    pub indexed_at: Option<DateTime<Utc>>,
}

/// The actor with this DID, active or not.
#[instrument(skip(db))]
pub async fn by_did(db: &PgPool, did: &str) -> Result<Option<ActorRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "select did, active and",
        actor_not_hidden!("did"),
        "as active, status, not",
        actor_not_hidden!("did"),
        "as taken_down from actor where did = $1"
    ))
    .bind(did)
    .fetch_optional(db)
    .await
}

/// The actor holding this (lowercase) handle. Handles move between DIDs; if stale rows still
/// claim it, the active and most recently updated one wins.
#[instrument(skip(db))]
pub async fn by_handle(db: &PgPool, handle: &str) -> Result<Option<ActorRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "select did, active and",
        actor_not_hidden!("did"),
        "as active, status, not",
        actor_not_hidden!("did"),
        "as taken_down from actor where handle = $1 \
         order by active desc, updated_at desc limit 1"
    ))
    .bind(handle)
    .fetch_optional(db)
    .await
}

/// The profile of an active actor.
#[instrument(skip(db))]
pub async fn profile(db: &PgPool, did: &str) -> Result<Option<ProfileRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "select a.did, a.handle, p.bio, p.avatar, a.track_count, a.like_count, a.comment_count, \
                a.album_count, a.playlist_count, p.created_at, p.indexed_at \
         from actor a left join profile p on p.did = a.did \
         where a.did = $1 and a.active and",
        actor_not_hidden!("a.did"),
        ""
    ))
    .bind(did)
    .fetch_optional(db)
    .await
}

/// What the web API shows of an active actor: profile, a display name and their PDS.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ActorCardRow {
    /// The actor's DID.
    pub did: String,
    /// The handle, null when unknown.
    pub handle: Option<String>,
    /// `bio` of the profile record.
    pub bio: Option<String>,
    /// `avatar` of the profile record.
    pub avatar: Option<String>,
    /// The `artist` name of the actor's newest track: the display name they publish under
    /// (profiles carry none). Null for actors without tracks.
    pub display_name: Option<String>,
    /// `createdAt` of the profile record, else when the indexer first saw the actor.
    pub created_at: DateTime<Utc>,
    /// When the indexer last changed the actor row.
    pub updated_at: DateTime<Utc>,
    /// The `#atproto_pds` service endpoint of the stored DID document, if any.
    pub pds: Option<String>,
}

/// Cards of the active actors among `dids`, in no particular order.
#[instrument(skip(db))]
pub async fn cards(db: &PgPool, dids: &[String]) -> Result<Vec<ActorCardRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "select a.did, a.handle, p.bio, p.avatar, \
                (select t.artist from track t where t.did = a.did \
                 order by t.sort_at desc, t.uri desc limit 1) as display_name, \
                coalesce(p.created_at, a.first_seen_at) as created_at, a.updated_at, \
                jsonb_path_query_first(d.doc, \
                  '$.service[*] ? (@.id like_regex \"#atproto_pds$\").serviceEndpoint') #>> '{}' \
                  as pds \
         from actor a left join profile p on p.did = a.did left join did_doc d on d.did = a.did \
         where a.did = any($1) and a.active and",
        actor_not_hidden!("a.did"),
        ""
    ))
    .bind(dids)
    .fetch_all(db)
    .await
}

/// DIDs of active actors whose handle contains `pattern` (case-insensitive), handles starting
/// with it first, then publishers with the most tracks.
#[instrument(skip(db))]
pub async fn search(db: &PgPool, pattern: &str, limit: i64) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(concat!(
        "select a.did from actor a \
         where a.active and",
        actor_not_hidden!("a.did"),
        "and a.handle is not null and strpos(a.handle, lower($1)) > 0 \
         order by strpos(a.handle, lower($1)) = 1 desc, a.track_count desc, a.did limit $2"
    ))
    .bind(pattern)
    .bind(limit)
    .fetch_all(db)
    .await
}

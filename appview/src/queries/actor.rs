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
    /// `displayName` of the actor's app.bsky.actor.profile record.
    pub display_name: Option<String>,
    /// CID of the avatar blob of that record.
    pub bsky_avatar_cid: Option<String>,
    /// Whether our blob store holds that avatar.
    pub bsky_avatar_held: bool,
    /// The `#atproto_pds` service endpoint of the stored DID document, if any.
    pub pds: Option<String>,
    /// Likes the actor's tracks received (the sum of their stored like counts).
    pub liked_count: i64,
}

/// `select` of [`ProfileRow`] from active, unhidden `actor a`, for `concat!` before a
/// condition on `a`.
macro_rules! profile_select {
    () => {
        concat!(
            "select a.did, a.handle, p.bio, p.avatar, a.track_count, a.like_count, \
                    a.comment_count, a.album_count, a.playlist_count, p.created_at, p.indexed_at, \
                    b.display_name, b.avatar_cid as bsky_avatar_cid, \
                    exists (select 1 from blob ob where ob.cid = b.avatar_cid) as bsky_avatar_held, \
                    jsonb_path_query_first(d.doc, \
                      '$.service[*] ? (@.id like_regex \"#atproto_pds$\").serviceEndpoint') #>> '{}' \
                      as pds, \
                    (select coalesce(sum(t.like_count), 0) from track t where t.did = a.did)::bigint \
                      as liked_count \
             from actor a left join profile p on p.did = a.did \
             left join bsky_profile b on b.did = a.did left join did_doc d on d.did = a.did \
             where a.active and",
            actor_not_hidden!("a.did"),
            "and "
        )
    };
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
    sqlx::query_as(concat!(profile_select!(), "a.did = $1"))
        .bind(did)
        .fetch_optional(db)
        .await
}

/// The profiles of the active actors among `dids`, in no particular order.
#[instrument(skip(db))]
pub async fn profiles(db: &PgPool, dids: &[String]) -> Result<Vec<ProfileRow>, sqlx::Error> {
    sqlx::query_as(concat!(profile_select!(), "a.did = any($1)"))
        .bind(dids)
        .fetch_all(db)
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
    /// `displayName` of the actor's app.bsky.actor.profile, else the `artist` name of their
    /// newest track (the name they publish under). Null when neither exists.
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
                coalesce(nullif(b.display_name, ''), \
                  (select t.artist from track t where t.did = a.did \
                   order by t.sort_at desc, t.uri desc limit 1)) as display_name, \
                coalesce(p.created_at, a.first_seen_at) as created_at, a.updated_at, \
                jsonb_path_query_first(d.doc, \
                  '$.service[*] ? (@.id like_regex \"#atproto_pds$\").serviceEndpoint') #>> '{}' \
                  as pds \
         from actor a left join profile p on p.did = a.did left join did_doc d on d.did = a.did \
         left join bsky_profile b on b.did = a.did \
         where a.did = any($1) and a.active and",
        actor_not_hidden!("a.did"),
        ""
    ))
    .bind(dids)
    .fetch_all(db)
    .await
}

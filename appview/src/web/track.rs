//! The Track object (upstream's `TrackResponse`) built from indexed records, and the
//! `/tracks/*` read endpoints.
//!
//! Every field is present. What only upstream's database knows (tags, visibility beyond public,
//! copyright scans, transcodes, download policy) gets the documented empty value; play counts
//! are the plays this AppView received (`play.rs`).

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use axum::Json;
use axum::extract::{Path, State};
use chrono::{TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::PgPool;

use super::Web;
use super::album::{self, Album};
use super::audio;
use super::error::WebError;
use super::id;
use super::params::{self, OutOfRange, WebQuery};
use super::time;
use crate::cursor::TimeCursor;
use crate::queries;
use crate::queries::actor::ActorCardRow;
use crate::queries::track::TrackRow;

/// Self-labels that keep a track out of the discovery feed and `/tracks/top` (upstream hides
/// adult content there); artist pages still list them.
pub const ADULT_LABELS: &[&str] = &["porn", "sexual", "nudity", "graphic-media"];

/// Labels for which `r2_url` points at our `/audio/` route instead of the source (upstream
/// does so to keep such audio off og tags and embeds).
const EXPLICIT_LABELS: &[&str] = &["porn", "sexual"];

/// Most rows an unpaginated track answer holds (a tag, an album, a user's likes): far above
/// what the client renders, a bound on the response if not.
pub const MAX_UNPAGED: i64 = 500;

/// Most likers or comments one track answer lists.
const MAX_PEOPLE: i64 = 1000;

/// A featured artist, resolved from the DID when the view knows them.
#[derive(Debug, Serialize)]
pub struct FeaturedArtist {
    did: String,
    handle: String,
    display_name: String,
    avatar_url: Option<String>,
}

/// A track's album, by its `album` name.
#[derive(Debug, Serialize)]
pub struct AlbumSummary {
    id: String,
    slug: String,
    title: String,
    image_url: Option<String>,
    thumbnail_url: Option<String>,
}

/// Upstream's `TrackResponse`, field for field.
#[derive(Debug, Serialize)]
pub struct Track {
    id: i64,
    title: String,
    artist: String,
    artist_handle: String,
    artist_did: String,
    artist_avatar_url: Option<String>,
    file_id: String,
    file_type: String,
    features: Vec<FeaturedArtist>,
    r2_url: Option<String>,
    atproto_record_uri: Option<String>,
    atproto_record_cid: Option<String>,
    atproto_record_url: Option<String>,
    play_count: i64,
    created_at: String,
    image_url: Option<String>,
    thumbnail_url: Option<String>,
    is_liked: bool,
    like_count: i32,
    comment_count: i32,
    album: Option<AlbumSummary>,
    tags: Vec<String>,
    copyright_flagged: Option<bool>,
    copyright_match: Option<String>,
    support_gate: Option<Value>,
    gated: bool,
    downloadable: bool,
    download_policy: &'static str,
    artist_support_url: Option<String>,
    copyright_song_uri: Option<String>,
    copyright_recording_uri: Option<String>,
    original_file_id: Option<String>,
    original_file_type: Option<String>,
    description: Option<String>,
    audio_storage: &'static str,
    pds_blob_cid: Option<String>,
    is_optimizing: bool,
    visibility: &'static str,
    unlisted: bool,
    self_labels: Vec<String>,
    operator_labels: Vec<String>,
    labels: Vec<String>,
}

impl Track {
    /// The track's artwork.
    pub fn image_url(&self) -> Option<&str> {
        self.image_url.as_deref()
    }

    /// Counted plays.
    pub fn play_count(&self) -> i64 {
        self.play_count
    }
}

/// A string field of a record.
pub fn text(record: &Value, key: &str) -> Option<String> {
    record.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// The self-label values of a record (`labels.values[].val`).
pub fn self_labels(record: &Value) -> Vec<String> {
    record
        .pointer("/labels/values")
        .and_then(Value::as_array)
        .map(|values| {
            values
                .iter()
                .filter_map(|v| v.get("val").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// What a page of tracks needs besides its rows: play counts, the cards of artists and featured
/// artists, the artists' albums, and which audio blobs we hold. Loaded in at most five queries
/// whatever the page size.
#[derive(Debug, Default)]
pub struct TrackContext {
    plays: HashMap<String, i64>,
    cards: HashMap<String, ActorCardRow>,
    albums: HashMap<String, Vec<Album>>,
    held: HashSet<String>,
}

impl TrackContext {
    /// Loads the context of `rows`.
    pub async fn load(
        db: &PgPool,
        rows: &[TrackRow],
        web: &Web,
    ) -> Result<TrackContext, sqlx::Error> {
        if rows.is_empty() {
            return Ok(TrackContext::default());
        }
        let uris: Vec<String> = rows.iter().map(|r| r.uri.clone()).collect();
        let mut artists: Vec<String> = rows.iter().map(|r| r.did.clone()).collect();
        artists.sort();
        artists.dedup();
        let mut people: HashSet<String> = artists.iter().cloned().collect();
        for row in rows {
            people.extend(featured_dids(&row.record));
        }
        let people: Vec<String> = people.into_iter().collect();
        let plays = queries::play::counts(db, &uris)
            .await?
            .into_iter()
            .collect();
        let cards = queries::actor::cards(db, &people)
            .await?
            .into_iter()
            .map(|c| (c.did.clone(), c))
            .collect();
        let albums = album::of_artists(db, &artists).await?;
        let cids: Vec<String> = rows
            .iter()
            .filter_map(|r| audio::blob_cid(&r.record))
            .collect();
        let held = if web.blobs && !cids.is_empty() {
            queries::track::held_audio(db, &cids)
                .await?
                .into_iter()
                .collect()
        } else {
            HashSet::new()
        };
        Ok(TrackContext {
            plays,
            cards,
            albums,
            held,
        })
    }

    /// Builds the Track of `row`.
    pub fn track(&self, row: TrackRow, web: &Web) -> Track {
        let record = &row.record;
        let rkey = row.uri.rsplit('/').next().unwrap_or_default().to_owned();
        let card = self.cards.get(&row.did);
        let pds = card.and_then(|c| c.pds.as_deref());
        let self_labels = self_labels(record);
        let image_url = text(record, "imageUrl");
        let blob_cid = audio::blob_cid(record);
        let held = blob_cid.as_ref().filter(|cid| self.held.contains(*cid));
        // Our verified copy is the file when we hold one (upstream: the content hash).
        let file_id = held.cloned().unwrap_or_else(|| rkey.clone());
        let has_url = text(record, "audioUrl").is_some();
        let mut r2_url = audio::source(&row, pds, held.is_some(), web);
        if r2_url.is_some()
            && self_labels
                .iter()
                .any(|l| EXPLICIT_LABELS.contains(&l.as_str()))
        {
            r2_url = Some(format!("{}/audio/{file_id}", web.config.public_url));
        }
        let album = text(record, "album")
            .filter(|a| !a.is_empty())
            .and_then(|name| {
                let album = self
                    .albums
                    .get(&row.did)?
                    .iter()
                    .find(|a| a.title == name)?;
                Some(AlbumSummary {
                    id: album.id.clone(),
                    slug: album.slug.clone(),
                    title: album.title.clone(),
                    image_url: image_url.clone().or_else(|| row.avatar.clone()),
                    thumbnail_url: None,
                })
            });
        let support_gate = record
            .get("supportGate")
            .filter(|g| g.is_object())
            .map(|g| json!({"type": g.get("type").and_then(Value::as_str).unwrap_or("any")}));
        let features = featured(record)
            .into_iter()
            .map(|(did, handle, name)| {
                let card = self.cards.get(&did);
                let handle = card
                    .and_then(|c| c.handle.clone())
                    .or(handle)
                    .unwrap_or_else(|| did.clone());
                FeaturedArtist {
                    display_name: card
                        .and_then(|c| c.display_name.clone())
                        .or(name)
                        .unwrap_or_else(|| handle.clone()),
                    avatar_url: card.and_then(|c| c.avatar.clone()),
                    handle,
                    did,
                }
            })
            .collect();
        let collection = row.uri.split('/').nth(3).unwrap_or_default();
        let record_url = pds.map(|pds| {
            format!(
                "{}/xrpc/com.atproto.repo.getRecord?repo={}&collection={collection}&rkey={rkey}",
                pds.trim_end_matches('/'),
                row.did
            )
        });
        Track {
            id: row.web_id,
            title: text(record, "title").unwrap_or_default(),
            artist: text(record, "artist").unwrap_or_default(),
            artist_handle: row.handle.clone().unwrap_or_else(|| row.did.clone()),
            artist_did: row.did.clone(),
            artist_avatar_url: row.avatar.clone(),
            file_id,
            file_type: text(record, "fileType").unwrap_or_default(),
            features,
            r2_url,
            atproto_record_url: record_url,
            play_count: self.plays.get(&row.uri).copied().unwrap_or(0),
            created_at: time::python(&row.sort_at),
            thumbnail_url: None,
            is_liked: false,
            like_count: row.like_count,
            comment_count: row.comment_count,
            album,
            tags: Vec::new(),
            copyright_flagged: None,
            copyright_match: None,
            gated: support_gate.is_some(),
            visibility: if support_gate.is_some() {
                "supporters"
            } else {
                "public"
            },
            support_gate,
            downloadable: false,
            download_policy: "off",
            artist_support_url: None,
            copyright_song_uri: None,
            copyright_recording_uri: None,
            original_file_id: None,
            original_file_type: None,
            description: text(record, "description"),
            audio_storage: match (blob_cid.is_some(), has_url) {
                (true, true) => "both",
                (true, false) => "pds",
                _ => "r2",
            },
            pds_blob_cid: blob_cid,
            is_optimizing: false,
            unlisted: false,
            operator_labels: Vec::new(),
            labels: self_labels.clone(),
            self_labels,
            image_url,
            atproto_record_uri: Some(row.uri),
            atproto_record_cid: Some(row.cid),
        }
    }

    /// Builds the Tracks of `rows`, in order.
    pub fn tracks(&self, rows: Vec<TrackRow>, web: &Web) -> Vec<Track> {
        rows.into_iter().map(|r| self.track(r, web)).collect()
    }
}

/// Loads the context of `rows` and builds their Tracks.
pub async fn build(db: &PgPool, rows: Vec<TrackRow>, web: &Web) -> Result<Vec<Track>, sqlx::Error> {
    let context = TrackContext::load(db, &rows, web).await?;
    Ok(context.tracks(rows, web))
}

/// `features[]` of a record as (did, handle snapshot, display name snapshot).
fn featured(record: &Value) -> Vec<(String, Option<String>, Option<String>)> {
    record
        .get("features")
        .and_then(Value::as_array)
        .map(|features| {
            features
                .iter()
                .filter_map(|f| {
                    let did = f.get("did").and_then(Value::as_str)?.to_owned();
                    Some((did, text(f, "handle"), text(f, "displayName")))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn featured_dids(record: &Value) -> impl Iterator<Item = String> {
    featured(record).into_iter().map(|(did, _, _)| did)
}

/// The visible track with this id, or upstream's 404.
pub async fn visible(db: &PgPool, raw_id: &str) -> Result<TrackRow, WebError> {
    let id = params::path_id("track_id", raw_id)?;
    queries::track::by_web_id(db, id)
        .await?
        .ok_or(WebError::NotFound("track not found".into()))
}

/// Params of `GET /tracks/`.
#[derive(Debug, Deserialize)]
pub struct ListParams {
    artist_did: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

/// A page of `/tracks/`.
#[derive(Debug, Serialize)]
pub struct TracksPage {
    tracks: Vec<Track>,
    next_cursor: Option<String>,
    has_more: bool,
}

/// `GET /tracks/`: the discovery feed (adult-labelled tracks left out), or one artist's tracks
/// (`artist_did`), newest first. Tags live only in upstream's database, so a `tags` filter
/// matches nothing.
pub async fn list_tracks(
    State(db): State<PgPool>,
    State(web): State<Web>,
    WebQuery(p): WebQuery<ListParams>,
) -> Result<Json<TracksPage>, WebError> {
    let limit = params::int("limit", p.limit.as_deref(), 50, (1, 100), OutOfRange::Clamp)?;
    let after = params::track_cursor(p.cursor.as_deref())?;
    if p.tags.iter().any(|t| !t.is_empty()) {
        return Ok(Json(TracksPage {
            tracks: Vec::new(),
            next_cursor: None,
            has_more: false,
        }));
    }
    let fetch = limit.saturating_add(1);
    let mut rows = match p.artist_did.as_deref().filter(|d| !d.is_empty()) {
        Some(did) => queries::track::by_author(&db, did, after.as_ref(), fetch).await?,
        None => queries::track::discovery(&db, after.as_ref(), ADULT_LABELS, fetch).await?,
    };
    let served = usize::try_from(limit).unwrap_or(usize::MAX);
    let has_more = rows.len() > served;
    rows.truncate(served);
    let next_cursor = if has_more {
        rows.last().map(|r| TimeCursor::after(r.sort_at, &r.uri))
    } else {
        None
    };
    Ok(Json(TracksPage {
        tracks: build(&db, rows, &web).await?,
        next_cursor,
        has_more,
    }))
}

/// Params of `GET /tracks/top`.
#[derive(Debug, Deserialize)]
pub struct TopParams {
    limit: Option<String>,
    period: Option<String>,
}

/// `GET /tracks/top`: tracks by like count (at least one), all time or within `period`,
/// without adult-labelled ones. A bare array.
pub async fn top_tracks(
    State(db): State<PgPool>,
    State(web): State<Web>,
    WebQuery(p): WebQuery<TopParams>,
) -> Result<Json<Vec<Track>>, WebError> {
    let limit = params::int("limit", p.limit.as_deref(), 10, (1, 50), OutOfRange::Clamp)?;
    let days = match p.period.as_deref().unwrap_or("all_time") {
        "all_time" => None,
        "month" => Some(30),
        "week" => Some(7),
        "day" => Some(1),
        other => {
            return Err(WebError::query(
                "period",
                "enum",
                "Input should be 'all_time', 'month', 'week' or 'day'".to_owned(),
                Value::String(other.to_owned()),
            ));
        }
    };
    let rows = match days {
        // All time reads an index; a period counts recent likes, so its answer is cached.
        None => unscored(queries::track::top(&db, None, ADULT_LABELS, None, limit).await?),
        Some(d) => {
            let now = Instant::now();
            match web.top.get(&(d, limit), now) {
                Some(rows) => rows,
                None => {
                    let since = Utc::now() - TimeDelta::days(d);
                    let rows = unscored(
                        queries::track::top(&db, Some(since), ADULT_LABELS, None, limit).await?,
                    );
                    web.top.put((d, limit), rows.clone(), now);
                    rows
                }
            }
        }
    };
    Ok(Json(build(&db, rows, &web).await?))
}

/// The tracks of a ranked feed, in its order.
fn unscored(rows: Vec<queries::track::ScoredTrackRow>) -> Vec<TrackRow> {
    rows.into_iter().map(|r| r.track).collect()
}

/// `GET /tracks/{id}`.
pub async fn get_track(
    State(db): State<PgPool>,
    State(web): State<Web>,
    Path(id): Path<String>,
) -> Result<Json<Track>, WebError> {
    let row = visible(&db, &id).await?;
    one(&db, row, &web).await
}

/// Params of `GET /tracks/by-uri`.
#[derive(Debug, Deserialize)]
pub struct UriParams {
    uri: Option<String>,
}

/// `GET /tracks/by-uri?uri=at://...`: the track with that record URI.
pub async fn track_by_uri(
    State(db): State<PgPool>,
    State(web): State<Web>,
    WebQuery(p): WebQuery<UriParams>,
) -> Result<Json<Track>, WebError> {
    let uri = params::required("uri", p.uri)?;
    let row = queries::track::by_uri(&db, &uri)
        .await?
        .ok_or(WebError::NotFound("track not found".into()))?;
    one(&db, row, &web).await
}

async fn one(db: &PgPool, row: TrackRow, web: &Web) -> Result<Json<Track>, WebError> {
    let mut tracks = build(db, vec![row], web).await?;
    tracks
        .pop()
        .map(Json)
        .ok_or_else(|| WebError::Internal("track vanished while building".to_owned()))
}

/// `POST /tracks/{id}/ref/{code}/click`: always ok, as upstream for an unknown code (share
/// links are upstream's).
pub async fn ref_click() -> Json<Value> {
    Json(json!({"ok": true}))
}

/// Params of `GET /tracks/tags`.
#[derive(Debug, Deserialize)]
pub struct TagsParams {
    limit: Option<String>,
}

/// A tag with its counts.
#[derive(Debug, Serialize)]
pub struct TagCount {
    name: String,
    track_count: i64,
    total_plays: i64,
}

/// `GET /tracks/tags`: tags exist only in upstream's database, so none.
pub async fn tags(WebQuery(p): WebQuery<TagsParams>) -> Result<Json<Vec<TagCount>>, WebError> {
    params::int(
        "limit",
        p.limit.as_deref(),
        20,
        (1, 100),
        OutOfRange::Reject,
    )?;
    Ok(Json(Vec::new()))
}

/// `GET /tracks/tags/{name}`: upstream's 404 for an unknown tag; tags are not on the network,
/// so every tag is unknown.
pub async fn tag(Path(name): Path<String>) -> WebError {
    let name = name.trim().to_lowercase();
    WebError::NotFound(format!("tag '{name}' not found").into())
}

/// One comment, upstream's shape.
#[derive(Debug, Serialize)]
pub struct Comment {
    id: i64,
    user_did: String,
    user_handle: String,
    user_display_name: String,
    user_avatar_url: Option<String>,
    text: String,
    timestamp_ms: i64,
    created_at: String,
    updated_at: Option<String>,
}

/// Output of `GET /tracks/{id}/comments`.
#[derive(Debug, Serialize)]
pub struct Comments {
    comments: Vec<Comment>,
    count: i64,
    comments_enabled: bool,
}

/// `GET /tracks/{id}/comments`: every comment, in playback order. Comments are records on the
/// network, so they are always enabled here.
pub async fn comments(
    State(db): State<PgPool>,
    Path(id): Path<String>,
) -> Result<Json<Comments>, WebError> {
    let track = visible(&db, &id).await?;
    let rows = queries::comment::of_track(&db, &track.uri, &track.did, None, MAX_PEOPLE).await?;
    let dids: Vec<String> = rows.iter().map(|r| r.did.clone()).collect();
    let names = display_names(&db, &dids).await?;
    let comments: Vec<Comment> = rows
        .into_iter()
        .map(|r| {
            let handle = r.handle.unwrap_or_else(|| r.did.clone());
            Comment {
                id: id::int_id(&r.uri),
                user_display_name: names.get(&r.did).cloned().unwrap_or_else(|| handle.clone()),
                user_handle: handle,
                user_did: r.did,
                user_avatar_url: r.avatar,
                text: r.body,
                timestamp_ms: r.timestamp_ms,
                created_at: time::python(&r.created_at),
                updated_at: None,
            }
        })
        .collect();
    Ok(Json(Comments {
        count: i64::try_from(comments.len()).unwrap_or(i64::MAX),
        comments,
        comments_enabled: true,
    }))
}

/// One liker.
#[derive(Debug, Serialize)]
pub struct Liker {
    did: String,
    handle: String,
    display_name: String,
    avatar_url: Option<String>,
    liked_at: String,
}

/// Output of `GET /tracks/{id}/likes`.
#[derive(Debug, Serialize)]
pub struct Likers {
    users: Vec<Liker>,
    count: i64,
}

/// `GET /tracks/{id}/likes`: who liked the track, newest first.
pub async fn likes(
    State(db): State<PgPool>,
    Path(id): Path<String>,
) -> Result<Json<Likers>, WebError> {
    let track = visible(&db, &id).await?;
    let rows = queries::like::of_track(&db, &track.uri, &track.did, None, MAX_PEOPLE).await?;
    let dids: Vec<String> = rows.iter().map(|r| r.did.clone()).collect();
    let names = display_names(&db, &dids).await?;
    let users: Vec<Liker> = rows
        .into_iter()
        .map(|r| {
            let handle = r.handle.unwrap_or_else(|| r.did.clone());
            Liker {
                display_name: names.get(&r.did).cloned().unwrap_or_else(|| handle.clone()),
                handle,
                did: r.did,
                avatar_url: r.avatar,
                liked_at: time::python(&r.created_at),
            }
        })
        .collect();
    Ok(Json(Likers {
        count: i64::from(track.like_count),
        users,
    }))
}

/// Display names (see [`ActorCardRow::display_name`]) of the actors among `dids` that have one.
pub async fn display_names(
    db: &PgPool,
    dids: &[String],
) -> Result<HashMap<String, String>, sqlx::Error> {
    if dids.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(queries::actor::cards(db, dids)
        .await?
        .into_iter()
        .filter_map(|c| Some((c.did, c.display_name?)))
        .collect())
}

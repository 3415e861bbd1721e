//! The lexicon views (fm.plyr.feed.defs, fm.plyr.actor.defs) and method outputs, built from
//! query rows. Field names follow the lexicons (camelCase); absent optionals are left out.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::queries::actor::ProfileRow;
use crate::queries::comment::CommentRow;
use crate::queries::label::LabelRow;
use crate::queries::like::LikeRow;
use crate::queries::list::{ListDetailRow, ListRow};
use crate::queries::track::TrackRow;

/// What an actor with no known handle is shown as (ATProto's sentinel).
pub const INVALID_HANDLE: &str = "handle.invalid";

/// ATProto's preferred datetime form: UTC, millisecond precision, `Z`.
pub(crate) fn datetime(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn handle_or_invalid(handle: Option<String>) -> String {
    handle.unwrap_or_else(|| INVALID_HANDLE.to_owned())
}

/// fm.plyr.actor.defs#profileViewBasic.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileViewBasic {
    did: String,
    handle: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    avatar: Option<String>,
}

impl ProfileViewBasic {
    /// An actor's basic view; a null handle shows as [`INVALID_HANDLE`].
    pub(crate) fn new(
        did: String,
        handle: Option<String>,
        avatar: Option<String>,
    ) -> ProfileViewBasic {
        ProfileViewBasic {
            did,
            handle: handle_or_invalid(handle),
            avatar,
        }
    }
}

/// fm.plyr.actor.defs#profileViewDetailed, the output of fm.plyr.actor.getProfile.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileViewDetailed {
    did: String,
    /// The applied labelers' labels on the account (`label.rs`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    labels: Vec<LabelView>,
    handle: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    bio: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    avatar: Option<String>,
    track_count: i32,
    like_count: i32,
    comment_count: i32,
    album_count: i32,
    playlist_count: i32,
    received_like_count: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    created_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    indexed_at: Option<String>,
}

/// The URL of an app.bsky.actor.profile avatar: our `/blob/{cid}` when the blob store holds
/// it, else the actor's PDS (`com.atproto.sync.getBlob`), else the Bluesky CDN's form.
pub fn bsky_avatar_url(
    public_url: &str,
    did: &str,
    cid: &str,
    held: bool,
    pds: Option<&str>,
) -> String {
    if held {
        return format!("{}/blob/{cid}", public_url.trim_end_matches('/'));
    }
    match pds.filter(|p| p.starts_with("https://") || p.starts_with("http://")) {
        Some(pds) => format!(
            "{}/xrpc/com.atproto.sync.getBlob?did={did}&cid={cid}",
            pds.trim_end_matches('/')
        ),
        None => format!("https://cdn.bsky.app/img/avatar/plain/{did}/{cid}@jpeg"),
    }
}

impl ProfileViewDetailed {
    /// The actor's DID.
    pub fn did(&self) -> &str {
        &self.did
    }

    /// Adds labelers' labels on the account.
    pub(crate) fn add_labels(&mut self, labels: impl IntoIterator<Item = LabelView>) {
        self.labels.extend(labels);
    }

    /// The view of `row`; `public_url` is this server as clients reach it (for avatars we
    /// hold). The fm.plyr profile's avatar, chosen for plyr.fm, wins over the Bluesky one.
    pub fn new(row: ProfileRow, public_url: &str) -> ProfileViewDetailed {
        let bsky_avatar = row.bsky_avatar_cid.as_deref().map(|cid| {
            bsky_avatar_url(
                public_url,
                &row.did,
                cid,
                row.bsky_avatar_held,
                row.pds.as_deref(),
            )
        });
        ProfileViewDetailed {
            labels: Vec::new(),
            received_like_count: row.liked_count.max(0),
            display_name: row.display_name,
            avatar: row.avatar.or(bsky_avatar),
            did: row.did,
            handle: handle_or_invalid(row.handle),
            bio: row.bio,
            track_count: row.track_count,
            like_count: row.like_count,
            comment_count: row.comment_count,
            album_count: row.album_count,
            playlist_count: row.playlist_count,
            created_at: row.created_at.as_ref().map(datetime),
            indexed_at: row.indexed_at.as_ref().map(datetime),
        }
    }
}

/// fm.plyr.feed.defs#trackView.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackView {
    uri: String,
    cid: String,
    author: ProfileViewBasic,
    record: Arc<serde_json::Value>,
    like_count: i32,
    comment_count: i32,
    indexed_at: String,
    /// Only on authenticated requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    viewer: Option<TrackViewerState>,
    /// The mirror's copy, once there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    audio: Option<AudioState>,
    /// Self-labels of the record, then the applied labelers' labels (`label.rs`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    labels: Vec<LabelView>,
}

/// fm.plyr.feed.defs#audioState.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AudioState {
    source: String,
    verified: bool,
    cid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    mime_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    web_rendition: Option<String>,
}

/// fm.plyr.feed.defs#viewerState.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TrackViewerState {
    #[serde(skip_serializing_if = "Option::is_none")]
    like: Option<String>,
}

impl TrackView {
    /// The track's AT-URI.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// Marks the view as seen by an authenticated viewer, who liked it with `like` (if any).
    pub fn set_viewer(&mut self, like: Option<String>) {
        self.viewer = Some(TrackViewerState { like });
    }

    /// Adds labelers' labels after the self-labels.
    pub(crate) fn add_labels(&mut self, labels: impl IntoIterator<Item = LabelView>) {
        self.labels.extend(labels);
    }
}

impl From<TrackRow> for TrackView {
    fn from(row: TrackRow) -> TrackView {
        let labels = self_labels(&row);
        TrackView {
            uri: row.uri,
            cid: row.cid,
            author: ProfileViewBasic::new(row.did, row.handle, row.avatar),
            record: row.record,
            like_count: row.like_count,
            comment_count: row.comment_count,
            indexed_at: datetime(&row.indexed_at),
            viewer: None,
            labels,
            audio: match (row.audio_source, row.audio_verified, row.audio_cid) {
                (Some(source), Some(verified), Some(cid)) => Some(AudioState {
                    source,
                    verified,
                    cid,
                    mime_type: row.audio_mime,
                    web_rendition: row.audio_web_rendition,
                }),
                _ => None,
            },
        }
    }
}

/// com.atproto.label.defs#label, as hydrated: never a negation (negated labels are not shown),
/// without the signature (clients that verify labels fetch them from the labeler).
#[derive(Debug, Clone, Serialize)]
pub struct LabelView {
    #[serde(skip_serializing_if = "Option::is_none")]
    ver: Option<i64>,
    src: String,
    uri: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    cid: Option<String>,
    val: String,
    cts: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<String>,
}

impl From<LabelRow> for LabelView {
    fn from(row: LabelRow) -> LabelView {
        LabelView {
            ver: row.ver,
            src: row.src,
            uri: row.uri,
            cid: row.cid,
            val: row.val,
            cts: datetime(&row.cts),
            exp: row.exp.as_ref().map(datetime),
        }
    }
}

/// Most self-labels a record may carry (`com.atproto.label.defs#selfLabels`).
const MAX_SELF_LABELS: usize = 10;

/// The record's self-labels (`labels.values[].val`) as labels by its author on this version,
/// created when the record says it was (`createdAt`), else when it was indexed.
fn self_labels(row: &TrackRow) -> Vec<LabelView> {
    let Some(values) = row
        .record
        .pointer("/labels/values")
        .and_then(|v| v.as_array())
    else {
        return Vec::new();
    };
    let cts = row
        .record
        .get("createdAt")
        .and_then(|v| v.as_str())
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map_or_else(
            || datetime(&row.indexed_at),
            |t| datetime(&t.with_timezone(&Utc)),
        );
    values
        .iter()
        .filter_map(|v| v.get("val").and_then(|v| v.as_str()))
        .filter(|val| !val.is_empty() && val.len() <= 128)
        .take(MAX_SELF_LABELS)
        .map(|val| LabelView {
            ver: Some(1),
            src: row.did.clone(),
            uri: row.uri.clone(),
            cid: Some(row.cid.clone()),
            val: val.to_owned(),
            cts: cts.clone(),
            exp: None,
        })
        .collect()
}

/// fm.plyr.feed.defs#likeView.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LikeView {
    uri: String,
    cid: String,
    actor: ProfileViewBasic,
    created_at: String,
    indexed_at: String,
}

impl From<LikeRow> for LikeView {
    fn from(row: LikeRow) -> LikeView {
        LikeView {
            uri: row.uri,
            cid: row.cid,
            actor: ProfileViewBasic::new(row.did, row.handle, row.avatar),
            created_at: datetime(&row.created_at),
            indexed_at: datetime(&row.indexed_at),
        }
    }
}

/// fm.plyr.feed.defs#commentView.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CommentView {
    uri: String,
    cid: String,
    author: ProfileViewBasic,
    record: serde_json::Value,
    text: String,
    timestamp_ms: i64,
    created_at: String,
    indexed_at: String,
}

impl From<CommentRow> for CommentView {
    fn from(row: CommentRow) -> CommentView {
        CommentView {
            uri: row.uri,
            cid: row.cid,
            author: ProfileViewBasic::new(row.did, row.handle, row.avatar),
            record: row.record,
            text: row.body,
            timestamp_ms: row.timestamp_ms,
            created_at: datetime(&row.created_at),
            indexed_at: datetime(&row.indexed_at),
        }
    }
}

/// fm.plyr.feed.defs#listView.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListView {
    uri: String,
    cid: String,
    author: ProfileViewBasic,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    list_type: Option<String>,
    item_count: i32,
    created_at: String,
    indexed_at: String,
}

impl From<ListRow> for ListView {
    fn from(row: ListRow) -> ListView {
        ListView {
            uri: row.uri,
            cid: row.cid,
            author: ProfileViewBasic::new(row.did, row.handle, row.avatar),
            name: row.name,
            list_type: row.list_type,
            item_count: row.item_count,
            created_at: datetime(&row.created_at),
            indexed_at: datetime(&row.indexed_at),
        }
    }
}

/// fm.plyr.feed.defs#listViewDetailed: a list view plus its record and visible tracks.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListViewDetailed {
    #[serde(flatten)]
    list: ListView,
    record: serde_json::Value,
    items: Vec<TrackView>,
}

impl ListViewDetailed {
    /// Joins a list with its visible tracks, already in record order.
    pub fn new(row: ListDetailRow, items: Vec<TrackRow>) -> ListViewDetailed {
        ListViewDetailed {
            list: ListView::from(row.list),
            record: row.record,
            items: items.into_iter().map(TrackView::from).collect(),
        }
    }
}

/// Output of the methods answering a page of tracks.
#[derive(Debug, Serialize)]
pub struct TracksPage {
    /// The page.
    pub tracks: Vec<TrackView>,
    /// Where the next page starts; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// Output of fm.plyr.feed.getTrack.
#[derive(Debug, Serialize)]
pub struct TrackOutput {
    /// The track.
    pub track: TrackView,
}

/// Output of fm.plyr.feed.getTracks.
#[derive(Debug, Serialize)]
pub struct TracksOutput {
    /// The visible tracks, in request order.
    pub tracks: Vec<TrackView>,
}

/// Output of fm.plyr.feed.getLikes.
#[derive(Debug, Serialize)]
pub struct LikesPage {
    /// The track asked about.
    pub uri: String,
    /// The page.
    pub likes: Vec<LikeView>,
    /// Where the next page starts; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// Output of fm.plyr.feed.getComments.
#[derive(Debug, Serialize)]
pub struct CommentsPage {
    /// The track asked about.
    pub uri: String,
    /// The page.
    pub comments: Vec<CommentView>,
    /// Where the next page starts; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// Output of fm.plyr.feed.getList.
#[derive(Debug, Serialize)]
pub struct ListOutput {
    /// The list with its tracks.
    pub list: ListViewDetailed,
}

/// Output of fm.plyr.feed.getActorLists.
#[derive(Debug, Serialize)]
pub struct ListsPage {
    /// The page.
    pub lists: Vec<ListView>,
    /// Where the next page starts; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// Output of the health check.
#[derive(Debug, Serialize)]
pub struct HealthOutput {
    /// This crate's version.
    pub version: &'static str,
}

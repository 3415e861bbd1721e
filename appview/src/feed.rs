//! The ranked and platform-wide feeds: fm.plyr.feed.getTopTracks (by likes, all time or
//! since a time), fm.plyr.feed.getTrending (recent likes, decayed) and fm.plyr.feed.getActivity
//! (everything new, as typed items).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::auth::Viewer;
use crate::cursor::{PositionCursor, TimeCursor, paginate};
use crate::error::XrpcError;
use crate::params::{self, Limit, XrpcQuery};
use crate::queries;
use crate::queries::track::ScoredTrackRow;
use crate::track::with_viewer;
use crate::ttl::TtlCache;
use crate::views::{ListView, ProfileViewBasic, TrackView, TracksPage, datetime};

/// `hours` of getTrending when the client sends none.
const DEFAULT_TRENDING_HOURS: u32 = 24;
/// Longest trending window: a month; past that it is getTopTracks with `since`.
const MAX_TRENDING_HOURS: u32 = 720;
/// A like's weight halves every quarter of the window: a like at the window's start weighs
/// 1/16 of one just now, so fresh likes lead without old ones counting for nothing.
const HALF_LIVES_PER_WINDOW: f64 = 4.0;
/// How long the first page of a trending window keeps its ranking: ranking aggregates every
/// like in the window (over 100 ms for a busy day), and a minute-old order is as good.
const TRENDING_RANKING_TTL: Duration = Duration::from_secs(60);

/// A trending window's first page: its start (Unix seconds), its hours and the rows fetched.
type FirstPage = (i64, u32, i64);

/// The ranking of each trending window's first page: (score, track URI) in order. Only the
/// order is kept: the tracks are read fresh each time, so a deletion or takedown shows at once.
#[derive(Debug, Clone)]
pub struct TrendingCache(Arc<TtlCache<FirstPage, Vec<(i64, String)>>>);

impl Default for TrendingCache {
    fn default() -> TrendingCache {
        TrendingCache(Arc::new(TtlCache::new(TRENDING_RANKING_TTL)))
    }
}

impl TrendingCache {
    /// The first page of the window from `since` (`hours` long, likes halving every
    /// `half_life` seconds), `fetch` rows: the cached order with its tracks read now, or, when
    /// there is none or one of its tracks is gone, ranked afresh.
    async fn first_page(
        &self,
        db: &PgPool,
        since: DateTime<Utc>,
        hours: u32,
        half_life: f64,
        fetch: i64,
    ) -> Result<Vec<ScoredTrackRow>, sqlx::Error> {
        let key = (since.timestamp(), hours, fetch);
        let now = Instant::now();
        if let Some(ranking) = self.0.get(&key, now) {
            let uris: Vec<String> = ranking.iter().map(|(_, uri)| uri.clone()).collect();
            let mut tracks: HashMap<String, _> = queries::track::by_uris(db, &uris)
                .await?
                .into_iter()
                .map(|t| (t.uri.clone(), t))
                .collect();
            let rows: Vec<ScoredTrackRow> = ranking
                .iter()
                .filter_map(|(score, uri)| {
                    tracks.remove(uri).map(|track| ScoredTrackRow {
                        track,
                        score: *score,
                    })
                })
                .collect();
            // A track that left (deleted, hidden) would leave the page short and could drop
            // its cursor: rank again instead.
            if rows.len() == ranking.len() {
                return Ok(rows);
            }
        }
        let rows = queries::track::trending(db, since, half_life, &[], None, fetch).await?;
        let ranking = rows
            .iter()
            .map(|r| (r.score, r.track.uri.clone()))
            .collect();
        self.0.put(key, ranking, now);
        Ok(rows)
    }
}

/// Params of fm.plyr.feed.getTopTracks.
#[derive(Debug, Deserialize)]
pub struct TopParams {
    since: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// Params of fm.plyr.feed.getTrending.
#[derive(Debug, Deserialize)]
pub struct TrendingParams {
    hours: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// Params of fm.plyr.feed.getActivity.
#[derive(Debug, Deserialize)]
pub struct ActivityParams {
    limit: Option<String>,
    cursor: Option<String>,
}

/// fm.plyr.feed.getActivity#activityItem.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivityItem {
    #[serde(rename = "type")]
    kind: String,
    uri: String,
    actor: ProfileViewBasic,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    track: Option<TrackView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    list: Option<ListView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<String>,
}

/// Output of fm.plyr.feed.getActivity.
#[derive(Debug, Serialize)]
pub struct ActivityPage {
    items: Vec<ActivityItem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cursor: Option<String>,
}

/// fm.plyr.feed.getTopTracks: tracks with likes, most liked first; with `since`, by the
/// likes created since then.
pub async fn get_top_tracks(
    State(db): State<PgPool>,
    viewer: Viewer,
    XrpcQuery(p): XrpcQuery<TopParams>,
) -> Result<Json<TracksPage>, XrpcError> {
    let since = p
        .since
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| {
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| XrpcError::InvalidRequest("since must be a datetime".to_owned()))
        })
        .transpose()?;
    let limit = Limit::parse(p.limit.as_deref())?;
    let after = params::position_cursor(p.cursor.as_deref())?;
    let rows = queries::track::top(&db, since, &[], after.as_ref(), limit.fetch()).await?;
    scored_page(&db, &viewer, rows, limit).await
}

/// fm.plyr.feed.getTrending: tracks liked in the last `hours`, recent likes weighing more.
/// The window starts on the hour, so scores (and cursors) hold for an hour.
pub async fn get_trending(
    State(db): State<PgPool>,
    State(cache): State<TrendingCache>,
    viewer: Viewer,
    XrpcQuery(p): XrpcQuery<TrendingParams>,
) -> Result<Json<TracksPage>, XrpcError> {
    let hours = match p.hours.as_deref().filter(|s| !s.is_empty()) {
        None => DEFAULT_TRENDING_HOURS,
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|h| {
                (1..=MAX_TRENDING_HOURS).contains(h) && raw.bytes().all(|b| b.is_ascii_digit())
            })
            .ok_or_else(|| {
                XrpcError::InvalidRequest(format!(
                    "hours must be an integer from 1 to {MAX_TRENDING_HOURS}"
                ))
            })?,
    };
    let limit = Limit::parse(p.limit.as_deref())?;
    let after = params::position_cursor(p.cursor.as_deref())?;
    let hour = TimeDelta::hours(1);
    let now = Utc::now();
    let since = now.duration_trunc(hour).unwrap_or(now) - TimeDelta::hours(i64::from(hours));
    let half_life = f64::from(hours) * 3600.0 / HALF_LIVES_PER_WINDOW;
    let rows = match after {
        None => {
            cache
                .first_page(&db, since, hours, half_life, limit.fetch())
                .await?
        }
        Some(after) => {
            queries::track::trending(&db, since, half_life, &[], Some(&after), limit.fetch())
                .await?
        }
    };
    scored_page(&db, &viewer, rows, limit).await
}

/// A page of a ranked feed, with the cursor after its last (score, uri).
async fn scored_page(
    db: &PgPool,
    viewer: &Viewer,
    rows: Vec<ScoredTrackRow>,
    limit: Limit,
) -> Result<Json<TracksPage>, XrpcError> {
    let (rows, cursor) = paginate(rows, limit.rows(), |row| {
        PositionCursor::after(row.score, &row.track.uri)
    });
    let mut tracks: Vec<TrackView> = rows.into_iter().map(|r| TrackView::from(r.track)).collect();
    with_viewer(db, viewer, &mut tracks).await?;
    Ok(Json(TracksPage { tracks, cursor }))
}

/// fm.plyr.feed.getActivity: new tracks, likes, comments, playlists and albums of everyone,
/// newest first.
pub async fn get_activity(
    State(db): State<PgPool>,
    viewer: Viewer,
    XrpcQuery(p): XrpcQuery<ActivityParams>,
) -> Result<Json<ActivityPage>, XrpcError> {
    let limit = Limit::parse(p.limit.as_deref())?;
    let after = params::time_cursor(p.cursor.as_deref())?;
    let rows = queries::activity::feed(&db, after.as_ref(), limit.fetch()).await?;
    let (rows, cursor) = paginate(rows, limit.rows(), |row| {
        TimeCursor::after(row.sort_at, &row.uri)
    });
    let mut track_uris: Vec<String> = rows.iter().filter_map(|r| r.subject_uri.clone()).collect();
    track_uris.sort();
    track_uris.dedup();
    let list_uris: Vec<String> = rows
        .iter()
        .filter(|r| r.subject_uri.is_none())
        .map(|r| r.uri.clone())
        .collect();
    let mut tracks: Vec<TrackView> = queries::track::by_uris(&db, &track_uris)
        .await?
        .into_iter()
        .map(TrackView::from)
        .collect();
    with_viewer(&db, &viewer, &mut tracks).await?;
    let tracks: HashMap<String, TrackView> = tracks
        .into_iter()
        .map(|t| (t.uri().to_owned(), t))
        .collect();
    let mut lists: HashMap<String, ListView> = queries::list::by_uris(&db, &list_uris)
        .await?
        .into_iter()
        .map(|row| (row.uri.clone(), ListView::from(row)))
        .collect();
    let items = rows
        .into_iter()
        .map(|row| {
            // Several items may show one track (its release and its likes): each gets a copy.
            let track = row
                .subject_uri
                .as_ref()
                .and_then(|uri| tracks.get(uri))
                .cloned();
            let list = match row.subject_uri {
                None => lists.remove(&row.uri),
                Some(_) => None,
            };
            ActivityItem {
                kind: row.kind,
                created_at: datetime(&row.sort_at),
                actor: ProfileViewBasic::new(row.did, row.handle, row.avatar),
                uri: row.uri,
                track,
                list,
                text: row.body,
            }
        })
        .collect();
    Ok(Json(ActivityPage { items, cursor }))
}

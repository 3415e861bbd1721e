//! In-memory hydration caches: profiles by DID and track views by AT-URI (counts included),
//! bounded, and dropped entry by entry as the indexer's notifications name what changed
//! (`notify.rs`). Until the listener is connected (and again whenever it loses its connection)
//! every read goes to Postgres, so a missed notification can never leave a stale entry.
//!
//! First pages of the track feeds (getLatestTracks, getArtistTracks) are kept as the ordered
//! URIs they list, and hydrated through the track cache: a like only drops the liked track's
//! view, while a page is dropped when a track it could list changes. Under full-speed ingest
//! this keeps the busiest reads off a Postgres that is busy writing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use moka::future::Cache;
use serde::Deserialize;
use sqlx::PgPool;
use tokio::sync::watch;

use crate::queries;
use crate::queries::actor::{ActorRow, ProfileRow};
use crate::queries::track::TrackRow;

/// Entries kept of each kind: a profile or track row is ~1 KB, so ~100 MB at most each.
const DEFAULT_CAPACITY: u64 = 100_000;

/// A backstop only: invalidation is by notification, this bounds the damage of a bug in it.
const TIME_TO_LIVE: Duration = Duration::from_secs(300);

/// The indexer's notify payload when a batch changed too much to list.
const EVERYTHING: &str = "changed";

/// Profiles and track views, shared by every request.
#[derive(Debug, Clone)]
pub struct ViewCache {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// `None`: the actor is unknown or hidden (asked again after a change names them).
    profiles: Cache<String, Option<ProfileRow>>,
    /// Actor lookups by DID (status included); `None`: unknown.
    actors: Cache<String, Option<ActorRow>>,
    /// Actor lookups by handle; dropped whole when any author changes (a handle may move).
    handles: Cache<String, Option<ActorRow>>,
    /// `None`: the track is missing or hidden.
    tracks: Cache<String, Option<TrackRow>>,
    /// First pages of getLatestTracks by rows fetched: the URIs, in feed order.
    latest_pages: Cache<i64, Page>,
    /// First pages of getArtistTracks by artist DID, then by rows fetched.
    artist_pages: Cache<String, ArtistPages>,
    /// Bumped by every invalidation, so a read that raced one does not keep its result.
    epoch: AtomicU64,
    /// Whether the listener is connected: only then are entries served.
    live: watch::Sender<bool>,
    /// Notifications applied so far (tests wait on it).
    applied: watch::Sender<u64>,
}

/// A cached first page: its tracks' URIs in order.
type Page = Arc<[String]>;

/// One artist's cached first pages, by rows fetched.
type ArtistPages = Arc<Mutex<HashMap<i64, Page>>>;

/// First pages kept: a few limits of the latest feed, and this many artists.
const PAGE_CAPACITY: u64 = 10_000;

/// The DID of an `at://` URI.
fn did_of(uri: &str) -> Option<&str> {
    uri.strip_prefix("at://")?.split('/').next()
}

/// The indexer's change set (`indexer/src/store/notify.rs` writes it).
#[derive(Debug, Default, Deserialize)]
struct Changes {
    #[serde(default)]
    profiles: Vec<String>,
    #[serde(default)]
    authors: Vec<String>,
    #[serde(default)]
    tracks: Vec<String>,
}

impl Default for ViewCache {
    fn default() -> ViewCache {
        ViewCache::new(DEFAULT_CAPACITY)
    }
}

impl ViewCache {
    /// Caches of at most `capacity` profiles and as many tracks; served once
    /// [`follow_changes`](crate::follow_changes) is listening.
    pub fn new(capacity: u64) -> ViewCache {
        ViewCache {
            inner: Arc::new(Inner {
                profiles: bounded(capacity).build(),
                actors: bounded(capacity).build(),
                handles: bounded(capacity).build(),
                tracks: bounded(capacity).support_invalidation_closures().build(),
                latest_pages: bounded(PAGE_CAPACITY).build(),
                artist_pages: bounded(PAGE_CAPACITY).build(),
                epoch: AtomicU64::new(0),
                live: watch::Sender::new(false),
                applied: watch::Sender::new(0),
            }),
        }
    }

    /// Resolves once the listener is connected and entries are served.
    pub async fn ready(&self) {
        let mut live = self.inner.live.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = live.wait_for(|live| *live).await;
    }

    /// Resolves once `count` notifications have been applied in all.
    pub async fn applied(&self, count: u64) {
        let mut applied = self.inner.applied.subscribe();
        let _ = applied.wait_for(|n| *n >= count).await;
    }

    fn is_live(&self) -> bool {
        *self.inner.live.borrow()
    }

    /// Entries are served from now on (the listener is connected), starting empty.
    pub(crate) fn go_live(&self) {
        self.clear();
        self.inner.live.send_replace(true);
    }

    /// Entries are no longer served, and are dropped: notifications may be missed.
    pub(crate) fn go_dark(&self) {
        self.inner.live.send_replace(false);
        self.clear();
    }

    fn clear(&self) {
        self.inner.epoch.fetch_add(1, Ordering::SeqCst);
        self.inner.profiles.invalidate_all();
        self.inner.actors.invalidate_all();
        self.inner.handles.invalidate_all();
        self.inner.tracks.invalidate_all();
        self.inner.latest_pages.invalidate_all();
        self.inner.artist_pages.invalidate_all();
    }

    /// Drops what one notification names; anything but a change set drops everything.
    pub(crate) async fn apply(&self, payload: &str) {
        let changes = match payload {
            EVERYTHING => None,
            json => serde_json::from_str::<Changes>(json)
                .inspect_err(|err| tracing::warn!(error = %err, "unreadable change notification"))
                .ok(),
        };
        self.inner.epoch.fetch_add(1, Ordering::SeqCst);
        match changes {
            None => self.clear(),
            Some(changes) => {
                for did in changes.profiles.iter().chain(&changes.authors) {
                    self.inner.profiles.invalidate(did).await;
                    // A first record makes an unknown DID known.
                    self.inner.actors.invalidate(did).await;
                }
                if !changes.authors.is_empty() {
                    self.inner.handles.invalidate_all();
                }
                for uri in &changes.tracks {
                    self.inner.tracks.invalidate(uri).await;
                }
                // A named track may have entered, left or moved in any page that could list
                // it (the payload does not say whether it was written or only liked).
                if !changes.tracks.is_empty() || !changes.authors.is_empty() {
                    self.inner.latest_pages.invalidate_all();
                }
                let artists = changes.tracks.iter().filter_map(|uri| did_of(uri));
                for did in artists.chain(changes.authors.iter().map(String::as_str)) {
                    self.inner.artist_pages.invalidate(did).await;
                }
                for did in changes.authors {
                    let prefix = format!("at://{did}/");
                    let dropped = self
                        .inner
                        .tracks
                        .invalidate_entries_if(move |uri, _| uri.starts_with(&prefix));
                    if dropped.is_err() {
                        // Only when the predicate registry is full: drop everything instead.
                        self.clear();
                    }
                }
            }
        }
        self.inner.applied.send_modify(|n| *n += 1);
    }

    /// The profile of an active actor, as `queries::actor::profile`.
    pub(crate) async fn profile(
        &self,
        db: &PgPool,
        did: &str,
    ) -> Result<Option<ProfileRow>, sqlx::Error> {
        let read = queries::actor::profile(db, did);
        self.read_through(&self.inner.profiles, did.to_owned(), read)
            .await
    }

    /// `key`'s entry in `cache`, else what `read` gives (stored unless an invalidation passed
    /// meanwhile). Straight to `read` while the listener is down.
    async fn read_through<K, V>(
        &self,
        cache: &Cache<K, V>,
        key: K,
        read: impl Future<Output = Result<V, sqlx::Error>>,
    ) -> Result<V, sqlx::Error>
    where
        K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
    {
        if !self.is_live() {
            return read.await;
        }
        if let Some(hit) = cache.get(&key).await {
            return Ok(hit);
        }
        let epoch = self.inner.epoch.load(Ordering::SeqCst);
        let value = read.await?;
        cache.insert(key.clone(), value.clone()).await;
        if self.inner.epoch.load(Ordering::SeqCst) != epoch {
            // An invalidation may have passed between our read and our insert.
            cache.invalidate(&key).await;
        }
        Ok(value)
    }

    /// The visible tracks among `uris`, as `queries::track::by_uris`: cached ones from memory,
    /// the rest in one query.
    pub(crate) async fn tracks(
        &self,
        db: &PgPool,
        uris: &[String],
    ) -> Result<Vec<TrackRow>, sqlx::Error> {
        if !self.is_live() {
            return queries::track::by_uris(db, uris).await;
        }
        let mut found = Vec::with_capacity(uris.len());
        let mut missing = Vec::new();
        for uri in uris {
            match self.inner.tracks.get(uri).await {
                Some(hit) => found.extend(hit),
                None => missing.push(uri.clone()),
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        let epoch = self.inner.epoch.load(Ordering::SeqCst);
        let mut rows: HashMap<String, TrackRow> = queries::track::by_uris(db, &missing)
            .await?
            .into_iter()
            .map(|row| (row.uri.clone(), row))
            .collect();
        for uri in &missing {
            let row = rows.remove(uri);
            self.inner.tracks.insert(uri.clone(), row.clone()).await;
            found.extend(row);
        }
        if self.inner.epoch.load(Ordering::SeqCst) != epoch {
            for uri in &missing {
                self.inner.tracks.invalidate(uri).await;
            }
        }
        Ok(found)
    }

    /// The actor a DID (`by_handle` false) or a handle names, as `queries::actor::by_did`
    /// and `by_handle`.
    pub(crate) async fn actor(
        &self,
        db: &PgPool,
        key: &str,
        by_handle: bool,
    ) -> Result<Option<ActorRow>, sqlx::Error> {
        if by_handle {
            let read = queries::actor::by_handle(db, key);
            self.read_through(&self.inner.handles, key.to_owned(), read)
                .await
        } else {
            let read = queries::actor::by_did(db, key);
            self.read_through(&self.inner.actors, key.to_owned(), read)
                .await
        }
    }

    /// The first page of getLatestTracks, `fetch` rows at most, as `queries::track::latest`.
    pub(crate) async fn latest(
        &self,
        db: &PgPool,
        fetch: i64,
    ) -> Result<Vec<TrackRow>, sqlx::Error> {
        let mut fresh = None;
        let read = async {
            let rows = queries::track::latest(db, None, fetch).await?;
            let page = page_of(&rows);
            fresh = Some(rows);
            Ok(page)
        };
        let page = self
            .read_through(&self.inner.latest_pages, fetch, read)
            .await?;
        match fresh {
            Some(rows) => Ok(rows),
            None => self.hydrate(db, &page).await,
        }
    }

    /// The first page of `did`'s getArtistTracks, `fetch` rows at most, as
    /// `queries::track::by_author`.
    pub(crate) async fn artist_tracks(
        &self,
        db: &PgPool,
        did: &str,
        fetch: i64,
    ) -> Result<Vec<TrackRow>, sqlx::Error> {
        if !self.is_live() {
            return queries::track::by_author(db, did, None, fetch).await;
        }
        let cached = self.inner.artist_pages.get(did).await.and_then(|pages| {
            let pages = pages.lock().unwrap_or_else(PoisonError::into_inner);
            pages.get(&fetch).cloned()
        });
        if let Some(page) = cached {
            return self.hydrate(db, &page).await;
        }
        let epoch = self.inner.epoch.load(Ordering::SeqCst);
        let rows = queries::track::by_author(db, did, None, fetch).await?;
        let pages = self
            .inner
            .artist_pages
            .get_with_by_ref(did, async { ArtistPages::default() })
            .await;
        pages
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(fetch, page_of(&rows));
        if self.inner.epoch.load(Ordering::SeqCst) != epoch {
            self.inner.artist_pages.invalidate(did).await;
        }
        Ok(rows)
    }

    /// The rows of a cached page, in its order, through the track cache. A track that went
    /// missing since would have dropped the page; it is skipped all the same.
    async fn hydrate(&self, db: &PgPool, page: &[String]) -> Result<Vec<TrackRow>, sqlx::Error> {
        let mut rows: HashMap<String, TrackRow> = self
            .tracks(db, page)
            .await?
            .into_iter()
            .map(|row| (row.uri.clone(), row))
            .collect();
        Ok(page.iter().filter_map(|uri| rows.remove(uri)).collect())
    }
}

fn page_of(rows: &[TrackRow]) -> Page {
    rows.iter().map(|row| row.uri.clone()).collect()
}

/// A cache builder of `capacity` entries, each kept at most [`TIME_TO_LIVE`].
fn bounded<K, V>(capacity: u64) -> moka::future::CacheBuilder<K, V, Cache<K, V>>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    Cache::builder()
        .max_capacity(capacity)
        .time_to_live(TIME_TO_LIVE)
}

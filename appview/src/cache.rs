//! In-memory hydration caches: profiles by DID and track views by AT-URI (counts included),
//! bounded, and dropped entry by entry as the indexer's notifications name what changed
//! (`notify.rs`). Until the listener is connected (and again whenever it loses its connection)
//! every read goes to Postgres, so a missed notification can never leave a stale entry.
//!
//! First pages of the track feeds (getLatestTracks, getArtistTracks) are kept as the ordered
//! URIs they list, and hydrated through the track cache: a like only drops the liked track's
//! view, while a page is dropped when a track it could list is written or deleted. A page is
//! kept when the tracks written all sort below its last row and none it lists was written or
//! deleted: catching up on a backlog (or backfilling an artist's catalogue) writes old tracks
//! by the thousand, none of which can enter it. First pages of getLikes are kept whole,
//! dropped when their track is named. Under full-speed ingest this keeps the busiest reads off
//! a Postgres that is busy writing.
//!
//! Search hits (the ranked keys of one query's page) are kept until a name that search
//! reads may have changed: a track or list written or deleted, an author changed. Likes and
//! comments, most of what the network writes, leave them be; the hits are hydrated fresh, so
//! a takedown or a delete still shows at once. A short prefix typed into a search box matches
//! most names and costs a ranked scan of all of them: the same one typed by many people is
//! one scan.
//!
//! A read that missed stores its result only if no invalidation of its key passed meanwhile
//! ([`Guarded`]): the check is per key, since under full-speed ingest some invalidation passes
//! every few milliseconds, and a cache-wide check would keep every miss out exactly then.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use moka::future::Cache;
use serde::Deserialize;
use sqlx::PgPool;
use tokio::sync::watch;

use crate::cursor::SearchCursor;
use crate::queries;
use crate::queries::actor::{ActorRow, ProfileRow};
use crate::queries::like::LikeRow;
use crate::queries::search::{HitRow, Kinds};
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
    profiles: Guarded<String, Option<ProfileRow>>,
    /// Actor lookups by DID (status included); `None`: unknown.
    actors: Guarded<String, Option<ActorRow>>,
    /// Actor lookups by handle; dropped whole when any author changes (a handle may move).
    handles: Guarded<String, Option<ActorRow>>,
    /// `None`: the track is missing or hidden.
    tracks: Guarded<String, Option<TrackRow>>,
    /// First pages of getLatestTracks by rows fetched: the URIs, in feed order.
    latest_pages: Guarded<i64, FeedPage>,
    /// First pages of getArtistTracks by artist DID, then by rows fetched.
    artist_pages: Guarded<String, Pages<FeedPage>>,
    /// First pages of getLikes by subject track, then by rows fetched; dropped when a change
    /// names the track (a like of it came or went) and, all of them, when any author changes
    /// (likers' handles and avatars show).
    like_pages: Guarded<String, Pages<Arc<[LikeRow]>>>,
    /// Pages of search hits, by query; dropped whole when a name may have changed.
    search: Guarded<SearchKey, Arc<[HitRow]>>,
    /// Whether the listener is connected: only then are entries served.
    live: watch::Sender<bool>,
    /// Notifications applied so far (tests wait on it).
    applied: watch::Sender<u64>,
}

impl Inner {
    /// Every cache, for what is done to all of them.
    fn all(&self) -> [&dyn Maintained; 8] {
        [
            &self.profiles,
            &self.actors,
            &self.handles,
            &self.tracks,
            &self.latest_pages,
            &self.artist_pages,
            &self.like_pages,
            &self.search,
        ]
    }
}

/// A cached first page of a track feed in `sort_at` then URI order, both descending
/// (getLatestTracks, getArtistTracks), and where its last row sorts.
#[derive(Debug, Clone)]
struct FeedPage {
    /// Its tracks' URIs, in order.
    uris: Arc<[String]>,
    /// The last row's `sort_at` when the page is full; `None` when the feed ended on it, so
    /// any new track would enter.
    floor: Option<DateTime<Utc>>,
}

impl FeedPage {
    fn of(rows: &[TrackRow], fetch: i64) -> FeedPage {
        let full = i64::try_from(rows.len()).is_ok_and(|len| len >= fetch);
        FeedPage {
            uris: rows.iter().map(|row| row.uri.clone()).collect(),
            floor: rows.last().filter(|_| full).map(|row| row.sort_at),
        }
    }

    /// Whether `written` may have changed this page. A track at the floor's instant may still
    /// sort before the last row (ties go by URI). Postgres keeps microseconds, so a finer
    /// `createdAt` may be stored a microsecond later.
    fn may_change(&self, written: &Written) -> bool {
        let reach = written.newest + TimeDelta::microseconds(1);
        self.floor.is_none_or(|floor| reach >= floor)
            || self.uris.iter().any(|uri| written.listed.contains(uri))
    }
}

/// The tracks a change set wrote or deleted, and the latest `createdAt` among the written ones:
/// no written track sorts after it in a feed (a feed position is `least(createdAt, indexedAt)`).
#[derive(Debug)]
struct Written {
    listed: HashSet<String>,
    newest: DateTime<Utc>,
}

/// One page of a search: the query text as the handler read it, what it looks through, the
/// cursor and the rows fetched.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SearchKey {
    q: String,
    kinds: Kinds,
    after: Option<SearchCursor>,
    fetch: i64,
}

/// Search hits kept, counted in hits: ~200 bytes each (key, and the name that places a hit that
/// starts with the query), so ~20 MB at most.
const SEARCH_CAPACITY: u64 = 100_000;

/// One key's cached first pages (an artist's tracks, a track's likes), by rows fetched.
type Pages<V> = Arc<Mutex<HashMap<i64, V>>>;

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
    /// Tracks written or deleted: the ones that may enter, leave or move in a feed. Absent
    /// from older indexers' payloads, where every named track counts.
    #[serde(default)]
    listed: Option<Vec<String>>,
    /// Lists written or deleted. Absent from older indexers' payloads, where any record
    /// written (an actor named in `profiles`) may have been a list.
    #[serde(default)]
    lists: Option<Vec<String>>,
    /// No track written sorts after this (`least(created_at, indexed_at)` <= `createdAt`).
    /// Absent when none was written, and from older indexers' payloads.
    #[serde(default)]
    newest: Option<DateTime<Utc>>,
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
                profiles: Guarded::new(bounded(capacity).build()),
                actors: Guarded::new(bounded(capacity).build()),
                handles: Guarded::new(bounded(capacity).build()),
                tracks: Guarded::new(bounded(capacity).support_invalidation_closures().build()),
                latest_pages: Guarded::new(
                    bounded(PAGE_CAPACITY)
                        .support_invalidation_closures()
                        .build(),
                ),
                artist_pages: Guarded::new(bounded(PAGE_CAPACITY).build()),
                like_pages: Guarded::new(bounded(PAGE_CAPACITY).build()),
                search: Guarded::new(
                    bounded(SEARCH_CAPACITY)
                        .weigher(|_, hits: &Arc<[HitRow]>| {
                            u32::try_from(hits.len())
                                .unwrap_or(u32::MAX)
                                .saturating_add(1)
                        })
                        .build(),
                ),
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
        for cache in self.inner.all() {
            cache.invalidate_all();
        }
    }

    /// Drops what one notification names; anything but a change set drops everything.
    pub(crate) async fn apply(&self, payload: &str) {
        let changes = match payload {
            EVERYTHING => None,
            json => serde_json::from_str::<Changes>(json)
                .inspect_err(|err| tracing::warn!(error = %err, "unreadable change notification"))
                .ok(),
        };
        let inner = &*self.inner;
        match changes {
            None => self.clear(),
            Some(changes) => {
                for did in changes.profiles.iter().chain(&changes.authors) {
                    inner.profiles.invalidate(did).await;
                    // A first record makes an unknown DID known.
                    inner.actors.invalidate(did).await;
                }
                if !changes.authors.is_empty() {
                    inner.handles.invalidate_all();
                    inner.like_pages.invalidate_all();
                }
                for uri in &changes.tracks {
                    inner.tracks.invalidate(uri).await;
                    inner.like_pages.invalidate(uri).await;
                }
                // A written or deleted track may have entered, left or moved in any page that
                // could list it; a liked one only changed its view, hydrated from `tracks`.
                // Without a bound on where the written ones sort (`newest`), that is any page.
                let listed = changes.listed.as_ref().unwrap_or(&changes.tracks);
                // Search reads names: titles, list names, handles and display names.
                let lists = changes
                    .lists
                    .as_ref()
                    .map_or(!changes.profiles.is_empty(), |lists| !lists.is_empty());
                if lists || !listed.is_empty() || !changes.authors.is_empty() {
                    inner.search.invalidate_all();
                }
                let written = changes.newest.filter(|_| !listed.is_empty()).map(|newest| {
                    Arc::new(Written {
                        listed: listed.iter().cloned().collect(),
                        newest,
                    })
                });
                if !changes.authors.is_empty() {
                    inner.latest_pages.invalidate_all();
                } else if !listed.is_empty() {
                    self.drop_latest_pages(written.clone());
                }
                let authors: HashSet<&str> = changes.authors.iter().map(String::as_str).collect();
                let artists: HashSet<&str> = listed.iter().filter_map(|uri| did_of(uri)).collect();
                for did in artists.difference(&authors) {
                    self.drop_artist_pages(did, written.as_deref()).await;
                }
                // An author change (a handle, a takedown) changes every page of theirs.
                for did in &authors {
                    inner.artist_pages.invalidate(*did).await;
                }
                for did in changes.authors {
                    let prefix = format!("at://{did}/");
                    let dropped = inner
                        .tracks
                        .invalidate_if(move |uri, _| uri.starts_with(&prefix));
                    if dropped.is_err() {
                        // Only when the predicate registry is full: drop everything instead.
                        self.clear();
                    }
                }
            }
        }
        // Moka applies removals in batches, on whichever thread next touches the cache: here,
        // not in the middle of a request (under full-speed ingest a batch can take ms).
        for cache in inner.all() {
            cache.run_pending_tasks().await;
        }
        self.inner.applied.send_modify(|n| *n += 1);
    }

    /// Drops the latest pages that `written` may have changed: all of them without a bound.
    fn drop_latest_pages(&self, written: Option<Arc<Written>>) {
        let pages = &self.inner.latest_pages;
        let Some(written) = written else {
            pages.invalidate_all();
            return;
        };
        if pages
            .invalidate_if(move |_, page| page.may_change(&written))
            .is_err()
        {
            pages.invalidate_all();
        }
    }

    /// Drops those of `did`'s artist pages that `written` (tracks of theirs among them) may
    /// have changed, all of them without a bound, and keeps out misses of theirs read before
    /// now. The fence comes first: a miss that stored its page before it is among the pages
    /// examined here; one that stores after it sees the fence and drops them.
    async fn drop_artist_pages(&self, did: &str, written: Option<&Written>) {
        let pages = &self.inner.artist_pages;
        let Some(written) = written else {
            pages.invalidate(did).await;
            return;
        };
        pages.fence(did);
        if let Some(cached) = pages.get(did).await {
            cached
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .retain(|_, page| !page.may_change(written));
        }
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

    /// `key`'s entry in `cache`, else what `read` gives (stored unless an invalidation of
    /// `key` passed meanwhile). Straight to `read` while the listener is down.
    async fn read_through<K, V>(
        &self,
        cache: &Guarded<K, V>,
        key: K,
        read: impl Future<Output = Result<V, sqlx::Error>>,
    ) -> Result<V, sqlx::Error>
    where
        K: Hash + Eq + Clone + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
    {
        if !self.is_live() {
            return read.await;
        }
        if let Some(hit) = cache.get(&key).await {
            return Ok(hit);
        }
        let since = cache.version(&key);
        let value = read.await?;
        cache.insert(key, value.clone(), since).await;
        Ok(value)
    }

    /// Page `fetch` of `key` in `cache`, else what `read` gives (stored unless an
    /// invalidation of `key` passed meanwhile). Straight to `read` while the listener is down.
    async fn page_through<V: Clone + Send + Sync + 'static>(
        &self,
        cache: &Guarded<String, Pages<V>>,
        key: &str,
        fetch: i64,
        read: impl Future<Output = Result<V, sqlx::Error>>,
    ) -> Result<V, sqlx::Error> {
        if !self.is_live() {
            return read.await;
        }
        let cached = cache.get(key).await.and_then(|pages| {
            let pages = pages.lock().unwrap_or_else(PoisonError::into_inner);
            pages.get(&fetch).cloned()
        });
        if let Some(page) = cached {
            return Ok(page);
        }
        let since = cache.version(key);
        let page = read.await?;
        let pages = cache
            .cache
            .get_with_by_ref(key, async { Pages::default() })
            .await;
        pages
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(fetch, page.clone());
        cache.keep_if_unchanged(key, since).await;
        Ok(page)
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
        let tracks = &self.inner.tracks;
        let since: Vec<Version> = missing.iter().map(|uri| tracks.version(uri)).collect();
        let mut rows: HashMap<String, TrackRow> = queries::track::by_uris(db, &missing)
            .await?
            .into_iter()
            .map(|row| (row.uri.clone(), row))
            .collect();
        for (uri, since) in missing.into_iter().zip(since) {
            let row = rows.remove(&uri);
            tracks.insert(uri, row.clone(), since).await;
            found.extend(row);
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
            let page = FeedPage::of(&rows, fetch);
            fresh = Some(rows);
            Ok(page)
        };
        let page = self
            .read_through(&self.inner.latest_pages, fetch, read)
            .await?;
        match fresh {
            Some(rows) => Ok(rows),
            None => self.hydrate(db, &page.uris).await,
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
        let mut fresh = None;
        let read = async {
            let rows = queries::track::by_author(db, did, None, fetch).await?;
            let page = FeedPage::of(&rows, fetch);
            fresh = Some(rows);
            Ok(page)
        };
        let page = self
            .page_through(&self.inner.artist_pages, did, fetch, read)
            .await?;
        match fresh {
            Some(rows) => Ok(rows),
            None => self.hydrate(db, &page.uris).await,
        }
    }

    /// The first page of getLikes of the track `subject_uri` (by `subject_did`), `fetch` rows
    /// at most, as `queries::like::of_track`.
    pub(crate) async fn likes(
        &self,
        db: &PgPool,
        subject_uri: &str,
        subject_did: &str,
        fetch: i64,
    ) -> Result<Arc<[LikeRow]>, sqlx::Error> {
        let read = async {
            let rows = queries::like::of_track(db, subject_uri, subject_did, None, fetch).await?;
            Ok(Arc::from(rows))
        };
        self.page_through(&self.inner.like_pages, subject_uri, fetch, read)
            .await
    }

    /// One page of hits for the search `q` among `kinds`, as `queries::search::hits`.
    pub(crate) async fn search(
        &self,
        db: &PgPool,
        q: &str,
        kinds: Kinds,
        after: Option<&SearchCursor>,
        fetch: i64,
    ) -> Result<Arc<[HitRow]>, sqlx::Error> {
        let key = SearchKey {
            q: q.to_owned(),
            kinds,
            after: after.cloned(),
            fetch,
        };
        let read = async {
            let hits = queries::search::hits(db, q, kinds, after, fetch).await?;
            Ok(Arc::from(hits))
        };
        self.read_through(&self.inner.search, key, read).await
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

/// Keys that share one invalidation counter: a miss read while another key of its stripe was
/// invalidated is not stored, a small cost (under full-speed ingest a few thousand keys an
/// instant, against this many stripes).
const STRIPES: usize = 4096;

/// A moka cache whose misses are stored only if no invalidation of their key passed while
/// they were read. Each invalidation bumps a counter first (the whole cache's, or its key's
/// stripe's) and drops the entry second; a miss notes the counters before its read and checks
/// them after its insert, so either it sees the bump and drops its own entry, or the drop
/// comes after the insert.
struct Guarded<K, V> {
    cache: Cache<K, V>,
    all: AtomicU64,
    stripes: Box<[AtomicU64]>,
    hasher: RandomState,
}

/// What is done to every cache at once, whatever its keys and values.
trait Maintained: Send + Sync {
    /// Drops every entry (and keeps out misses that read before).
    fn invalidate_all(&self);
    /// Applies queued removals and evictions now, on this task.
    fn run_pending_tasks(&self) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

impl<K, V> Maintained for Guarded<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn invalidate_all(&self) {
        self.all.fetch_add(1, Ordering::SeqCst);
        self.cache.invalidate_all();
    }

    fn run_pending_tasks(&self) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(self.cache.run_pending_tasks())
    }
}

impl<K, V> std::fmt::Debug for Guarded<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guarded")
            .field("all", &self.all)
            .finish_non_exhaustive()
    }
}

/// A key's invalidation counters (the whole cache's, its stripe's) as a miss read them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version(u64, u64);

impl<K, V> Guarded<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn new(cache: Cache<K, V>) -> Guarded<K, V> {
        Guarded {
            cache,
            all: AtomicU64::new(0),
            stripes: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            hasher: RandomState::new(),
        }
    }

    fn stripe<Q: Hash + ?Sized>(&self, key: &Q) -> &AtomicU64 {
        // The modulo keeps the index in range; truncating the hash first is harmless.
        let index = (self.hasher.hash_one(key) as usize) % self.stripes.len();
        &self.stripes[index]
    }

    async fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.cache.get(key).await
    }

    /// The counters a miss of `key` notes before reading.
    fn version<Q: Hash + ?Sized>(&self, key: &Q) -> Version {
        Version(
            self.all.load(Ordering::SeqCst),
            self.stripe(key).load(Ordering::SeqCst),
        )
    }

    /// Stores what a miss read, unless `key` was invalidated since `since`.
    async fn insert(&self, key: K, value: V, since: Version)
    where
        K: Clone,
    {
        if self.version(&key) != since {
            return;
        }
        self.cache.insert(key.clone(), value).await;
        // Stored, but perhaps just after an invalidation that came between check and insert.
        self.keep_if_unchanged(&key, since).await;
    }

    /// Drops `key`'s entry if it was invalidated since `since`.
    async fn keep_if_unchanged<Q>(&self, key: &Q, since: Version)
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if self.version(key) != since {
            self.cache.invalidate(key).await;
        }
    }

    async fn invalidate<Q>(&self, key: &Q)
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.fence(key);
        self.cache.invalidate(key).await;
    }

    /// Keeps out misses of `key` read before now, and keeps its entry.
    fn fence<Q: Hash + ?Sized>(&self, key: &Q) {
        self.stripe(key).fetch_add(1, Ordering::SeqCst);
    }

    /// Drops the entries `predicate` picks (the cache must support invalidation closures).
    fn invalidate_if(
        &self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> Result<(), moka::PredicateError> {
        self.all.fetch_add(1, Ordering::SeqCst);
        self.cache.invalidate_entries_if(predicate).map(drop)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn guarded() -> Guarded<String, u32> {
        Guarded::new(bounded(100).build())
    }

    /// A key whose stripe is not `key`'s.
    fn elsewhere(cache: &Guarded<String, u32>, key: &str) -> String {
        (0..)
            .map(|n| format!("other{n}"))
            .find(|other| !std::ptr::eq(cache.stripe(other), cache.stripe(key)))
            .expect("some key lands elsewhere")
    }

    #[tokio::test]
    async fn a_miss_is_kept_unless_its_own_key_was_invalidated_while_it_read() {
        let cache = guarded();
        let other = elsewhere(&cache, "a");

        // Another key's invalidation during the read: kept (ingest invalidates all the time).
        let since = cache.version("a");
        cache.invalidate(&other).await;
        cache.insert("a".into(), 1, since).await;
        assert_eq!(cache.get("a").await, Some(1));

        // Its own: the value may predate the change, so it is not kept.
        let since = cache.version("b");
        cache.invalidate("b").await;
        cache.insert("b".into(), 2, since).await;
        assert_eq!(cache.get("b").await, None);

        // Everything: not kept either.
        let since = cache.version("c");
        cache.invalidate_all();
        cache.insert("c".into(), 3, since).await;
        assert_eq!(cache.get("c").await, None);

        // A miss after the invalidation is kept again.
        let since = cache.version("b");
        cache.insert("b".into(), 4, since).await;
        assert_eq!(cache.get("b").await, Some(4));
    }

    #[test]
    fn a_feed_page_may_change_when_a_written_track_can_reach_its_last_row() {
        let time = |secs| DateTime::from_timestamp(secs, 0).expect("time");
        let listing = "at://did:plc:a/fm.plyr.track/1".to_owned();
        let page = FeedPage {
            uris: Arc::from(vec![listing.clone()]),
            floor: Some(time(100)),
        };
        let elsewhere = |newest| Written {
            listed: HashSet::from(["at://did:plc:a/fm.plyr.track/2".to_owned()]),
            newest,
        };
        assert!(!page.may_change(&elsewhere(time(99))), "sorts below it");
        let just_below = time(100) - TimeDelta::microseconds(1);
        assert!(
            page.may_change(&elsewhere(just_below)),
            "a finer createdAt may be stored a microsecond later"
        );
        assert!(page.may_change(&elsewhere(time(100))), "a tie goes by URI");
        let listed = Written {
            listed: HashSet::from([listing]),
            newest: time(1),
        };
        assert!(page.may_change(&listed), "it lists one");
        let ended = FeedPage {
            floor: None,
            ..page
        };
        assert!(
            ended.may_change(&elsewhere(time(1))),
            "any track enters a short page"
        );
    }

    #[tokio::test]
    async fn a_fence_keeps_the_entry_but_not_a_miss_read_before_it() {
        let cache = guarded();
        let since = cache.version("a");
        cache.insert("a".into(), 1, since).await;
        let since = cache.version("b");
        cache.fence("a");
        cache.fence("b");
        assert_eq!(cache.get("a").await, Some(1), "kept");
        cache.insert("b".into(), 2, since).await;
        assert_eq!(cache.get("b").await, None, "read before the fence");
    }

    #[tokio::test]
    async fn an_entry_stored_before_a_racing_invalidation_is_dropped_after_it() {
        let cache = guarded();
        let since = cache.version("a");
        cache.cache.insert("a".into(), 1).await;
        // The invalidation bumped the counter between the insert and the check.
        cache.stripe("a").fetch_add(1, Ordering::SeqCst);
        cache.keep_if_unchanged("a", since).await;
        assert_eq!(cache.get("a").await, None);
    }
}

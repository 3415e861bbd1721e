//! Backfill against real Postgres and a loopback server playing PLC directory and PDS (DID
//! documents with `RepoBuilder` keys, `getRepo` serving `RepoBuilder` CARs, `listRepos` and
//! optionally `listReposByCollection` pages with cursors).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use plyr_identity::{Did, RateLimit, Resolver, ResolverConfig, SyncClient, SyncConfig};
use plyr_lexicons::Namespace;
use plyr_repo::{RepoBuilder, Write, cid_for_cbor, json_to_cbor};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::*;
use crate::directory::Directory;
use crate::event::decode;
use crate::fold::{classify, plan};
use crate::loopback::Served;
use crate::testing::{
    comment_record, delete, like_record, list_record, lock, profile_record, tid, track_record,
    write,
};

fn ns() -> Namespace {
    Namespace::new("fm.plyr").expect("namespace")
}

/// What the loopback host serves.
#[derive(Default)]
struct World {
    docs: Mutex<HashMap<String, Value>>,
    cars: Mutex<HashMap<String, Vec<u8>>>,
    /// DIDs whose getRepo answers 500.
    broken: Mutex<HashSet<String>>,
    /// listRepos entries: (did, active).
    listed: Mutex<Vec<(String, bool)>>,
    /// listReposByCollection: collection -> DIDs.
    by_collection: Mutex<HashMap<String, Vec<String>>>,
    repo_hits: Mutex<HashMap<String, usize>>,
    doc_hits: Mutex<HashMap<String, usize>>,
    page_size: usize,
}

/// The loopback PLC + PDS (+ relay listing) server.
struct Host {
    url: Url,
    world: Arc<World>,
    server: Served,
}

impl Host {
    /// A host serving `page_size` repos per listing page; without `listReposByCollection`
    /// unless `by_collection` (a single PDS lacks it; a relay has it).
    async fn start(by_collection: bool, page_size: usize) -> Host {
        let world = Arc::new(World {
            page_size,
            ..World::default()
        });
        let mut app = axum::Router::new()
            .route("/xrpc/com.atproto.sync.getRepo", get(get_repo))
            .route("/xrpc/com.atproto.sync.listRepos", get(list_repos));
        if by_collection {
            app = app.route(
                "/xrpc/com.atproto.sync.listReposByCollection",
                get(list_by_collection),
            );
        }
        let app = app
            .route("/{did}", get(plc_doc))
            .with_state(Arc::clone(&world));
        let server = Served::start(app).await;
        Host {
            url: server.url.clone(),
            world,
            server,
        }
    }

    /// Publishes the actor: its DID document (its key, this host as PDS) and its current CAR.
    fn publish(&self, actor: &Actor) {
        self.set_doc(&actor.did, &actor.repo.public_key());
        self.serve_car(&actor.did, actor.car());
    }

    fn set_doc(&self, did: &str, key: &plyr_repo::PublicKey) {
        let key = key.to_did_key();
        let multibase = key.strip_prefix("did:key:").unwrap_or_default();
        let doc = json!({
            "id": did,
            "alsoKnownAs": [],
            "verificationMethod": [{
                "id": format!("{did}#atproto"), "type": "Multikey", "controller": did,
                "publicKeyMultibase": multibase,
            }],
            "service": [{
                "id": "#atproto_pds", "type": "AtprotoPersonalDataServer",
                "serviceEndpoint": self.url.as_str().trim_end_matches('/'),
            }],
        });
        lock(&self.world.docs).insert(did.to_owned(), doc);
    }

    fn serve_car(&self, did: &str, car: Vec<u8>) {
        lock(&self.world.cars).insert(did.to_owned(), car);
    }

    fn list(&self, did: &str, active: bool) {
        lock(&self.world.listed).push((did.to_owned(), active));
    }

    fn list_in(&self, collection: &str, did: &str) {
        lock(&self.world.by_collection)
            .entry(collection.to_owned())
            .or_default()
            .push(did.to_owned());
    }

    fn set_broken(&self, did: &str, broken: bool) {
        let mut set = lock(&self.world.broken);
        if broken {
            set.insert(did.to_owned());
        } else {
            set.remove(did);
        }
    }

    fn repo_hits(&self, did: &str) -> usize {
        lock(&self.world.repo_hits)
            .get(did)
            .copied()
            .unwrap_or_default()
    }

    fn doc_hits(&self, did: &str) -> usize {
        lock(&self.world.doc_hits)
            .get(did)
            .copied()
            .unwrap_or_default()
    }

    fn resolver(&self) -> Resolver {
        Resolver::new(ResolverConfig {
            plc_url: self.url.clone(),
            allow_loopback: true,
            ..ResolverConfig::default()
        })
        .expect("resolver")
    }

    fn sync_client(&self) -> SyncClient {
        SyncClient::new(SyncConfig {
            allow_loopback: true,
            // Every test request goes to this one host.
            host_rate: RateLimit {
                per_second: 10_000,
                burst: 10_000,
            },
            ..SyncConfig::default()
        })
        .expect("sync client")
    }

    fn context(&self, pool: &PgPool) -> SyncContext {
        SyncContext::new(
            pool.clone(),
            Directory::new(pool.clone(), self.resolver()),
            ns(),
            self.sync_client(),
        )
    }

    fn config(&self, target: BackfillTarget, concurrency: usize) -> BackfillConfig {
        BackfillConfig {
            namespace: ns(),
            target,
            resolver: self.resolver(),
            sync: self.sync_client(),
            concurrency,
            max_attempts: 3,
        }
    }

    async fn stop(self) {
        self.server.stop().await;
    }
}

async fn plc_doc(State(world): State<Arc<World>>, Path(did): Path<String>) -> Response {
    *lock(&world.doc_hits).entry(did.clone()).or_default() += 1;
    match lock(&world.docs).get(&did) {
        Some(doc) => (StatusCode::OK, doc.to_string()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn get_repo(
    State(world): State<Arc<World>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let did = query.get("did").cloned().unwrap_or_default();
    *lock(&world.repo_hits).entry(did.clone()).or_default() += 1;
    if lock(&world.broken).contains(&did) {
        return (StatusCode::INTERNAL_SERVER_ERROR, "broken").into_response();
    }
    match lock(&world.cars).get(&did) {
        Some(car) => (
            StatusCode::OK,
            [("content-type", "application/vnd.ipld.car")],
            car.clone(),
        )
            .into_response(),
        None => (
            StatusCode::BAD_REQUEST,
            json!({"error": "RepoNotFound", "message": "no repo"}).to_string(),
        )
            .into_response(),
    }
}

/// One page of `entries` from `cursor` (an index), with the next cursor.
fn page(world: &World, entries: &[Value], query: &HashMap<String, String>) -> Response {
    let start: usize = query
        .get("cursor")
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let end = (start + world.page_size).min(entries.len());
    let repos = entries.get(start..end).unwrap_or_default();
    let mut body = json!({"repos": repos});
    if end < entries.len() {
        body["cursor"] = json!(end.to_string());
    }
    (StatusCode::OK, body.to_string()).into_response()
}

async fn list_repos(
    State(world): State<Arc<World>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let entries: Vec<Value> = lock(&world.listed)
        .iter()
        .map(|(did, active)| {
            let mut entry = json!({"did": did, "head": "bafy", "rev": "3l", "active": active});
            if !active {
                entry["status"] = json!("deactivated");
            }
            entry
        })
        .collect();
    page(&world, &entries, &query)
}

async fn list_by_collection(
    State(world): State<Arc<World>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let collection = query.get("collection").cloned().unwrap_or_default();
    let entries: Vec<Value> = lock(&world.by_collection)
        .get(&collection)
        .map(|dids| dids.iter().map(|did| json!({"did": did})).collect())
        .unwrap_or_default();
    page(&world, &entries, &query)
}

/// A repository written through `RepoBuilder`, with the Jetstream events live indexing would
/// have received for the same writes.
struct Actor {
    did: String,
    repo: RepoBuilder,
    events: Vec<String>,
    clock: i64,
}

impl Actor {
    /// `did:plc:` + 24 times `letter`, signing with `[seed; 32]`.
    fn new(letter: char, seed: u8) -> Actor {
        let did = format!("did:plc:{}", letter.to_string().repeat(24));
        let repo = RepoBuilder::new(did.clone(), [seed; 32]).expect("builder");
        Actor {
            did,
            repo,
            events: Vec::new(),
            clock: i64::from(seed) * 1_000_000,
        }
    }

    fn did(&self) -> Did {
        Did::new(&self.did).expect("did")
    }

    fn uri(&self, collection: &str, rkey: &str) -> String {
        format!("at://{}/{collection}/{rkey}", self.did)
    }

    fn put(&mut self, collection: &str, rkey: &str, record: Value, update: bool) -> String {
        let path = format!("{collection}/{rkey}");
        let write_op = if update {
            Write::Update {
                path,
                record: record.clone(),
            }
        } else {
            Write::Create {
                path,
                record: record.clone(),
            }
        };
        self.repo
            .commit(&[write_op], "2026-01-01T00:00:00Z")
            .expect("commit");
        let cid = cid_for_cbor(&json_to_cbor(&record).expect("cbor")).to_string();
        let rev = self.repo.rev().expect("rev").to_owned();
        self.clock += 1;
        self.events.push(write(
            self.clock, &self.did, collection, rkey, &rev, &cid, record,
        ));
        self.uri(collection, rkey)
    }

    fn create(&mut self, collection: &str, rkey: &str, record: Value) -> String {
        self.put(collection, rkey, record, false)
    }

    fn update(&mut self, collection: &str, rkey: &str, record: Value) -> String {
        self.put(collection, rkey, record, true)
    }

    fn delete(&mut self, collection: &str, rkey: &str) {
        self.repo
            .commit(
                &[Write::Delete {
                    path: format!("{collection}/{rkey}"),
                }],
                "2026-01-01T00:00:00Z",
            )
            .expect("commit");
        let rev = self.repo.rev().expect("rev").to_owned();
        self.clock += 1;
        self.events
            .push(delete(self.clock, &self.did, collection, rkey, &rev));
    }

    fn car(&self) -> Vec<u8> {
        self.repo.export_car().expect("export")
    }

    fn rev(&self) -> String {
        self.repo.rev().expect("rev").to_owned()
    }
}

/// Applies Jetstream events as live indexing does.
async fn index_live(pool: &PgPool, events: &[String]) {
    let planned = plan(
        events
            .iter()
            .map(|e| classify(&ns(), decode(e.as_bytes())))
            .collect(),
    );
    crate::store::apply(pool, "jetstream", &planned)
        .await
        .expect("live batch");
}

/// What XRPC reads, as JSON text per table: every column but bookkeeping times and revs (a
/// snapshot writes every record at its commit's rev, live indexing at each record's own).
async fn visible(pool: &PgPool) -> Vec<String> {
    let queries = [
        ("actor", "did"),
        ("track", "uri"),
        ("track_like", "uri"),
        ("comment", "uri"),
        ("list", "uri"),
        ("list_item", "list_uri, position"),
        ("profile", "did"),
        ("indexer_skip", "reason"),
    ];
    let mut out = Vec::new();
    for (table, order) in queries {
        // Table and column names are constants of this test.
        let text: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "select jsonb_agg(to_jsonb(t) - array['rev', 'indexed_at', 'sort_at',
                   'first_seen_at', 'updated_at', 'identity_checked_at', 'last_at',
                   'last_detail'] order by {order})::text
             from {table} t"
        )))
        .fetch_one(pool)
        .await
        .expect("dump query");
        out.push(format!("{table}: {}", text.unwrap_or_default()));
    }
    out
}

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .expect("count")
}

async fn skip_count(pool: &PgPool, reason: &str) -> i64 {
    sqlx::query_scalar("select coalesce(sum(count), 0)::int8 from indexer_skip where reason = $1")
        .bind(reason)
        .fetch_one(pool)
        .await
        .expect("skip count")
}

async fn title(pool: &PgPool, uri: &str) -> Option<String> {
    sqlx::query_scalar("select title from track where uri = $1")
        .bind(uri)
        .fetch_optional(pool)
        .await
        .expect("track")
}

async fn repo_rev(pool: &PgPool, did: &str) -> Option<String> {
    sqlx::query_scalar("select rev from repo_state where did = $1")
        .bind(did)
        .fetch_optional(pool)
        .await
        .expect("repo_state")
}

async fn run(host: &Host, pool: &PgPool, target: BackfillTarget) -> BackfillSummary {
    let (progress, _watched) = watch::channel(BackfillProgress::default());
    backfill(
        pool.clone(),
        host.config(target, 4),
        progress,
        CancellationToken::new(),
    )
    .await
    .expect("backfill")
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn backfill_all_matches_live_indexing(pool: PgPool) {
    let host = Host::start(true, 1).await;
    let mut alice = Actor::new('a', 1);
    let mut bob = Actor::new('b', 2);
    let mut carol = Actor::new('c', 3);
    let t1 = alice.create("fm.plyr.track", &tid(1), track_record("One"));
    let t2 = alice.create("fm.plyr.track", &tid(2), track_record("Two"));
    alice.update("fm.plyr.track", &tid(2), track_record("Two (edit)"));
    alice.create("fm.plyr.track", &tid(3), track_record("Gone"));
    alice.delete("fm.plyr.track", &tid(3));
    alice.create("fm.plyr.actor.profile", "self", profile_record("hi"));
    alice.create(
        "fm.plyr.list",
        &tid(4),
        list_record("playlist", &[&t1, &t2]),
    );
    bob.create("fm.plyr.like", &tid(10), like_record(&t1));
    bob.create("fm.plyr.like", &tid(11), like_record(&t2));
    bob.create("fm.plyr.comment", &tid(12), comment_record(&t1, "nice"));
    // Invalid: counted as a skip by both paths.
    bob.create("fm.plyr.track", &tid(13), json!({"$type": "fm.plyr.track"}));
    // Another app's record: not ours, not counted.
    carol.create(
        "app.bsky.feed.post",
        &tid(20),
        json!({"$type": "app.bsky.feed.post", "text": "hi", "createdAt": "2026-01-01T00:00:00Z"}),
    );
    for actor in [&alice, &bob, &carol] {
        host.publish(actor);
        host.list(&actor.did, true);
    }
    for (collection, did) in [
        ("fm.plyr.track", &alice.did),
        ("fm.plyr.track", &bob.did),
        ("fm.plyr.like", &bob.did),
        ("fm.plyr.comment", &bob.did),
        ("fm.plyr.list", &alice.did),
        ("fm.plyr.actor.profile", &alice.did),
    ] {
        host.list_in(collection, did);
    }

    let summary = run(
        &host,
        &pool,
        BackfillTarget::All {
            host: host.url.clone(),
        },
    )
    .await;
    assert_eq!((summary.done, summary.failed), (2, 0), "{summary:?}");
    // alice: 2 tracks, a profile, a list; bob: 2 likes, a comment.
    assert_eq!(summary.records, 7);
    assert_eq!(host.repo_hits(&carol.did), 0, "listed by no collection");
    assert_eq!(repo_rev(&pool, &alice.did).await, Some(alice.rev()));
    assert_eq!(repo_rev(&pool, &bob.did).await, Some(bob.rev()));
    assert_eq!(title(&pool, &t2).await.as_deref(), Some("Two (edit)"));
    assert_eq!(skip_count(&pool, "lexicon").await, 1);
    let backfilled = visible(&pool).await;

    // The same writes, indexed live from an empty view.
    sqlx::query(
        "truncate record, track, track_like, comment, list, list_item, profile, actor,
                  indexer_skip cascade",
    )
    .execute(&pool)
    .await
    .expect("truncate");
    let events: Vec<String> = [&alice, &bob, &carol]
        .iter()
        .flat_map(|a| a.events.iter().cloned())
        .collect();
    index_live(&pool, &events).await;
    // Live indexing also counts the foreign post and the deleted track's create.
    sqlx::query("delete from indexer_skip where reason = 'foreign_collection'")
        .execute(&pool)
        .await
        .expect("drop foreign count");
    assert_eq!(visible(&pool).await, backfilled);
    host.stop().await;
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn an_older_snapshot_never_overwrites_newer_live_writes(pool: PgPool) {
    let host = Host::start(false, 10).await;
    let mut alice = Actor::new('a', 1);
    let kept = alice.create("fm.plyr.track", &tid(1), track_record("Old"));
    let doomed = alice.create("fm.plyr.track", &tid(2), track_record("Doomed"));
    host.publish(&alice);
    let old_rev = alice.rev();
    alice.update("fm.plyr.track", &tid(1), track_record("New"));
    alice.delete("fm.plyr.track", &tid(2));
    index_live(&pool, &alice.events).await;
    // The relay path would have moved the chain to the newest commit.
    sqlx::query("insert into repo_state (did, rev, data_cid) values ($1, $2, 'newer')")
        .bind(&alice.did)
        .bind(alice.rev())
        .execute(&pool)
        .await
        .expect("repo_state");

    let synced = sync_repo(&host.context(&pool), &alice.did())
        .await
        .expect("older snapshot syncs");
    assert_eq!(synced.rev, old_rev);
    assert_eq!(synced.records, 2);
    assert_eq!(title(&pool, &kept).await.as_deref(), Some("New"));
    assert_eq!(title(&pool, &doomed).await, None, "not resurrected");
    let deleted: bool = sqlx::query_scalar("select deleted from record where uri = $1")
        .bind(&doomed)
        .fetch_one(&pool)
        .await
        .expect("ledger");
    assert!(deleted);
    assert_eq!(repo_rev(&pool, &alice.did).await, Some(alice.rev()));
    let track_count: i32 = sqlx::query_scalar("select track_count from actor where did = $1")
        .bind(&alice.did)
        .fetch_one(&pool)
        .await
        .expect("actor");
    assert_eq!(track_count, 1);
    host.stop().await;
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn a_snapshot_deletes_records_gone_from_the_repo(pool: PgPool) {
    let host = Host::start(false, 10).await;
    let mut alice = Actor::new('a', 1);
    let mut bob = Actor::new('b', 2);
    let t1 = alice.create("fm.plyr.track", &tid(1), track_record("One"));
    let t2 = alice.create("fm.plyr.track", &tid(2), track_record("Two"));
    let like = bob.create("fm.plyr.like", &tid(10), like_record(&t2));
    let events: Vec<String> = alice.events.iter().chain(&bob.events).cloned().collect();
    index_live(&pool, &events).await;
    // Changes the live path missed: t2 deleted, t3 created.
    alice.delete("fm.plyr.track", &tid(2));
    let t3 = alice.create("fm.plyr.track", &tid(3), track_record("Three"));
    host.publish(&alice);

    let synced = sync_repo(&host.context(&pool), &alice.did())
        .await
        .expect("syncs");
    assert_eq!(synced.records, 2);
    assert_eq!(title(&pool, &t1).await.as_deref(), Some("One"));
    assert_eq!(title(&pool, &t2).await, None);
    assert_eq!(title(&pool, &t3).await.as_deref(), Some("Three"));
    let (deleted, rev): (bool, String) =
        sqlx::query_as("select deleted, rev from record where uri = $1")
            .bind(&t2)
            .fetch_one(&pool)
            .await
            .expect("ledger");
    assert!(deleted);
    assert_eq!(rev, alice.rev());
    let counts: (i32, i32) =
        sqlx::query_as("select track_count, like_count from actor where did = $1")
            .bind(&alice.did)
            .fetch_one(&pool)
            .await
            .expect("actor");
    assert_eq!(counts, (2, 0));
    // Bob's like is his record: untouched by Alice's snapshot.
    let likes = count(&pool, "select count(*) from track_like").await;
    assert_eq!(likes, 1, "{like}");
    host.stop().await;
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn forged_repos_are_rejected_counted_and_write_nothing(pool: PgPool) {
    let host = Host::start(false, 10).await;
    let mut alice = Actor::new('a', 1);
    alice.create("fm.plyr.track", &tid(1), track_record("One"));
    let mut bob = Actor::new('b', 2);
    bob.create("fm.plyr.track", &tid(2), track_record("Two"));
    let mut carol = Actor::new('c', 3);
    carol.create("fm.plyr.track", &tid(3), track_record("Three"));
    let ctx = host.context(&pool);

    // Signed with a key the DID document does not name (even after a refresh).
    host.publish(&alice);
    host.set_doc(&alice.did, &bob.repo.public_key());
    let summary = run(&host, &pool, BackfillTarget::Dids(vec![alice.did()])).await;
    assert_eq!(summary.failed, 1);
    assert_eq!(summary.failures.get("bad_signature"), Some(&1));
    assert_eq!(host.doc_hits(&alice.did), 2, "re-resolved once");
    assert_eq!(skip_count(&pool, "bad_signature").await, 1);

    // A block whose bytes do not match its CID (the last block is a record).
    host.publish(&bob);
    let mut car = bob.car();
    if let Some(last) = car.last_mut() {
        *last ^= 1;
    }
    host.serve_car(&bob.did, car);
    let err = sync_repo(&ctx, &bob.did()).await.expect_err("tampered");
    assert_eq!(err.reason(), "cid_mismatch", "{err}");
    assert_eq!(skip_count(&pool, "cid_mismatch").await, 1);

    // Another repo's (validly signed) export served for Carol.
    host.set_doc(&carol.did, &alice.repo.public_key());
    host.serve_car(&carol.did, alice.car());
    let err = sync_repo(&ctx, &carol.did()).await.expect_err("wrong repo");
    assert_eq!(err.reason(), "fields_mismatch", "{err}");

    let state: String = sqlx::query_scalar("select state from backfill_repo where did = $1")
        .bind(&alice.did)
        .fetch_one(&pool)
        .await
        .expect("queue row");
    assert_eq!(state, "failed");
    assert_eq!(count(&pool, "select count(*) from record").await, 0);
    assert_eq!(count(&pool, "select count(*) from track").await, 0);
    assert_eq!(count(&pool, "select count(*) from repo_state").await, 0);
    host.stop().await;
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn an_interrupted_backfill_resumes(pool: PgPool) {
    // A single PDS: no listReposByCollection, so listRepos (two per page), inactive skipped.
    let host = Host::start(false, 2).await;
    let mut actors: Vec<Actor> = ['a', 'b', 'c', 'd', 'e', 'f']
        .into_iter()
        .zip(1u8..)
        .map(|(letter, seed)| Actor::new(letter, seed))
        .collect();
    for (n, actor) in (100u64..).zip(actors.iter_mut()) {
        actor.create("fm.plyr.track", &tid(n), track_record("T"));
        host.publish(actor);
    }
    let dids: Vec<String> = actors.iter().map(|a| a.did.clone()).collect();
    for (i, did) in dids.iter().enumerate() {
        // The last one is deactivated: never fetched.
        host.list(did, i + 1 < dids.len());
    }
    // The broken one comes late in DID order: run 1 stops before it.
    let (first, broken, inactive) = (&dids[0], &dids[4], &dids[5]);
    host.set_broken(broken, true);
    let all = || BackfillTarget::All {
        host: host.url.clone(),
    };

    // Run 1: stopped once the first repo is done.
    let stop = CancellationToken::new();
    let (progress, mut watched) = watch::channel(BackfillProgress::default());
    let stopper = tokio::spawn({
        let stop = stop.clone();
        async move {
            while watched.changed().await.is_ok() {
                if watched.borrow().done >= 1 {
                    stop.cancel();
                }
            }
        }
    });
    let summary = backfill(pool.clone(), host.config(all(), 1), progress, stop)
        .await
        .expect("run 1");
    stopper.await.expect("stopper");
    assert!(summary.interrupted);
    assert!(summary.done >= 1, "{summary:?}");
    assert_eq!(summary.inactive, 1);

    // Run 2: the rest, with one repo failing.
    let summary = run(&host, &pool, all()).await;
    assert!(!summary.interrupted);
    assert_eq!(summary.failures.get("fetch"), Some(&1), "{summary:?}");

    // Run 3: only the failed repo is fetched again.
    host.set_broken(broken, false);
    let summary = run(&host, &pool, all()).await;
    assert_eq!((summary.done, summary.failed, summary.remaining), (1, 0, 0));

    assert_eq!(
        host.repo_hits(first),
        1,
        "a done repo is never fetched again"
    );
    assert_eq!(host.repo_hits(broken), 2);
    assert_eq!(host.repo_hits(inactive), 0);
    let states: Vec<(String, String, i32)> =
        sqlx::query_as("select did, state, attempts from backfill_repo order by did")
            .fetch_all(&pool)
            .await
            .expect("queue");
    assert_eq!(states.len(), 5);
    assert!(
        states.iter().all(|(_, state, _)| state == "done"),
        "{states:?}"
    );
    assert_eq!(count(&pool, "select count(*) from track").await, 5);
    let listings: Vec<(String, bool)> =
        sqlx::query_as("select collection, done from backfill_discovery order by collection")
            .fetch_all(&pool)
            .await
            .expect("discovery");
    assert_eq!(listings.len(), ns().collections().len() + 1);
    assert!(listings.iter().all(|(_, done)| *done), "{listings:?}");

    // Run 4: nothing left; nothing fetched.
    let summary = run(&host, &pool, all()).await;
    assert_eq!((summary.done, summary.failed), (0, 0));
    assert_eq!(host.repo_hits(first), 1);
    host.stop().await;
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn an_oversized_repo_is_refused_before_it_is_read(pool: PgPool) {
    let host = Host::start(false, 10).await;
    let mut alice = Actor::new('a', 1);
    alice.create("fm.plyr.track", &tid(1), track_record("One"));
    host.publish(&alice);
    let small = SyncClient::new(SyncConfig {
        allow_loopback: true,
        max_repo_bytes: 64,
        ..SyncConfig::default()
    })
    .expect("sync client");
    let ctx = SyncContext::new(
        pool.clone(),
        Directory::new(pool.clone(), host.resolver()),
        ns(),
        small,
    );
    let err = sync_repo(&ctx, &alice.did())
        .await
        .expect_err("over the cap");
    let SyncError::Fetch { source, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(source.kind(), plyr_identity::IdentityErrorKind::TooLarge);
    assert!(
        !err.is_rejection(),
        "not the repo's fault: not counted as forged"
    );
    assert_eq!(count(&pool, "select count(*) from record").await, 0);
    host.stop().await;
}

#[test]
fn a_real_repository_is_checked_against_its_did_and_key() {
    const LITTLE_CAR: &[u8] = include_bytes!("../../../repo/tests/fixtures/little.car");
    let limits = plyr_repo::CarLimits {
        max_bytes: 1 << 20,
        max_blocks: 10_000,
        max_block_bytes: 1 << 20,
    };
    let real = plyr_repo::Repo::read(LITTLE_CAR, &limits).expect("real repo");
    let did = Did::new(&real.commit().did).expect("its DID");
    let other_key = RepoBuilder::new("did:plc:x", [9; 32])
        .expect("builder")
        .public_key();
    let cases = [
        (did.clone(), "bad_signature"),
        (Actor::new('z', 9).did(), "fields_mismatch"),
    ];
    for (asked, reason) in cases {
        let err = super::sync::read_snapshot(LITTLE_CAR, &asked, &other_key, &ns(), &limits)
            .expect_err("not verifiable with this key");
        assert_eq!(err.reason(), reason, "{err}");
    }
    // Cut short: the CAR itself is refused.
    let err = super::sync::read_snapshot(&LITTLE_CAR[..1000], &did, &other_key, &ns(), &limits)
        .expect_err("truncated");
    assert_eq!(err.reason(), "malformed_car", "{err}");
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn backfill_keeps_the_bluesky_profile_of_tracked_repos_only(pool: PgPool) {
    // No listReposByCollection: every listed repo is fetched, so Dan's (a Bluesky profile
    // and nothing of ours) is read too, and must stay untracked.
    let host = Host::start(false, 10).await;
    let mut alice = Actor::new('a', 1);
    let mut dan = Actor::new('d', 4);
    let blob_cid = cid_for_cbor(&json_to_cbor(&json!({"img": 1})).expect("cbor")).to_string();
    let profile = |name: &str| {
        json!({"$type": "app.bsky.actor.profile", "displayName": name,
               "avatar": {"$type": "blob", "ref": {"$link": blob_cid}, "mimeType": "image/png",
                          "size": 10}})
    };
    alice.create("fm.plyr.track", &tid(1), track_record("One"));
    alice.create("app.bsky.actor.profile", "self", profile("Alice"));
    dan.create("app.bsky.actor.profile", "self", profile("Dan"));
    for actor in [&alice, &dan] {
        host.publish(actor);
        host.list(&actor.did, true);
    }
    let summary = run(
        &host,
        &pool,
        BackfillTarget::All {
            host: host.url.clone(),
        },
    )
    .await;
    assert_eq!(summary.failed, 0, "{summary:?}");
    let row: Option<(Option<String>, Option<String>)> =
        sqlx::query_as("select display_name, avatar_cid from bsky_profile where did = $1")
            .bind(&alice.did)
            .fetch_optional(&pool)
            .await
            .expect("bsky_profile");
    assert_eq!(row, Some((Some("Alice".into()), Some(blob_cid.clone()))));
    assert_eq!(repo_rev(&pool, &alice.did).await, Some(alice.rev()));
    // Dan: no profile row, no actor, not tracked.
    assert_eq!(
        count(
            &pool,
            "select count(*) from bsky_profile where did like 'did:plc:ddd%'"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &pool,
            "select count(*) from actor where did like 'did:plc:ddd%'"
        )
        .await,
        0
    );
    assert_eq!(repo_rev(&pool, &dan.did).await, None);

    // A resync of Alice's repo after she removed her Bluesky profile clears it.
    alice.delete("app.bsky.actor.profile", "self");
    host.publish(&alice);
    sync_repo(&host.context(&pool), &alice.did())
        .await
        .expect("resyncs");
    assert_eq!(
        count(&pool, "select count(*) from bsky_profile").await,
        0,
        "the snapshot no longer holds it"
    );
    host.stop().await;
}

//! [`run_relay`] end to end: a scripted firehose (tokio-tungstenite) replaying `seq > cursor`
//! like the reference PDS, and a loopback PLC + PDS (axum) serving DID documents and `getRepo`
//! CARs. Frames come from `plyr_repo::RepoBuilder`: real signatures, real MST proofs, real
//! Postgres.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::SinkExt;
use plyr_identity::{RateLimit, Resolver, ResolverConfig, SyncClient, SyncConfig};
use plyr_lexicons::Namespace;
use plyr_repo::{
    AccountEvent, ErrorEvent, Frame, IdentityEvent, InfoEvent, RepoBuilder, Write, decode_frame,
    json_to_cbor,
};
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response as WsResponse};
use tokio_util::sync::CancellationToken;
use url::Url;

use super::{RelayConfig, run_relay};
use crate::loopback::Served;
use crate::testing::{like_record, lock, tid, track_record, wait_for};
use crate::{IndexerError, last_cursor};

const TIME: &str = "2026-11-30T00:00:00.000Z";

// ---- accounts: a signing repo with its history, so replicas (forks, rotated keys) replay it.

struct Account {
    did: String,
    secret: [u8; 32],
    repo: RepoBuilder,
    history: Vec<Vec<Write>>,
}

impl Account {
    fn new(name: &str, secret: u8) -> Account {
        let did = format!("did:plc:{name:a<24}");
        let secret = [secret; 32];
        let repo = RepoBuilder::new(did.clone(), secret).expect("builder");
        Account {
            did,
            secret,
            repo,
            history: Vec::new(),
        }
    }

    /// One signed commit; returns its `#commit` frame.
    fn commit(&mut self, writes: Vec<Write>) -> Vec<u8> {
        let frame = self.repo.commit(&writes, TIME).expect("commit");
        self.history.push(writes);
        frame
    }

    /// The same repository signed with `secret`: at the same rev and data root.
    fn replica(&self, secret: [u8; 32]) -> RepoBuilder {
        let mut repo = RepoBuilder::new(self.did.clone(), secret).expect("builder");
        for writes in &self.history {
            repo.commit(writes, TIME).expect("replay");
        }
        repo
    }

    /// The `#atproto` key as a multibase string.
    fn multibase(&self) -> String {
        let key = self.repo.public_key().to_did_key();
        key.trim_start_matches("did:key:").to_owned()
    }

    fn rev(&self) -> String {
        self.repo.rev().expect("has a commit").to_owned()
    }

    fn uri(&self, collection: &str, rkey: &str) -> String {
        format!("at://{}/fm.plyr.{collection}/{rkey}", self.did)
    }
}

fn create(path: &str, record: Value) -> Write {
    Write::Create {
        path: path.to_owned(),
        record,
    }
}

fn track(rkey: &str, title: &str) -> Write {
    create(&format!("fm.plyr.track/{rkey}"), track_record(title))
}

fn post(rkey: &str) -> Write {
    create(
        &format!("app.bsky.feed.post/{rkey}"),
        json!({"$type": "app.bsky.feed.post", "text": "hi", "createdAt": TIME}),
    )
}

// ---- frames: re-sequenced for one host-wide seq, tampered, or built from parts.

#[derive(Serialize)]
struct Header<'a> {
    op: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    t: Option<&'a str>,
}

fn encode(op: i64, t: Option<&str>, body: &impl Serialize) -> Vec<u8> {
    let mut out = serde_ipld_dagcbor::to_vec(&Header { op, t }).expect("header");
    out.extend(serde_ipld_dagcbor::to_vec(body).expect("body"));
    out
}

/// The frame with its seq replaced (builders count their own), optionally edited.
fn reseq(frame: &[u8], seq: i64) -> Vec<u8> {
    edit(frame, seq, |_| {})
}

fn edit(frame: &[u8], seq: i64, change: impl FnOnce(&mut plyr_repo::CommitEvent<'_>)) -> Vec<u8> {
    match decode_frame(frame).expect("test frame") {
        Frame::Commit(mut event) => {
            event.seq = seq;
            change(&mut event);
            encode(1, Some("#commit"), &event)
        }
        Frame::Sync(mut event) => {
            event.seq = seq;
            encode(1, Some("#sync"), &event)
        }
        other => panic!("not a commit or sync: {other:?}"),
    }
}

/// A commit frame whose `record` block has one byte flipped (its CID no longer matches).
fn flip_record(frame: &[u8], seq: i64, record: &Value) -> Vec<u8> {
    let cbor = json_to_cbor(record).expect("record");
    let Ok(Frame::Commit(mut event)) = decode_frame(frame) else {
        panic!("not a commit");
    };
    let mut blocks = event.blocks.to_vec();
    let at = blocks
        .windows(cbor.len())
        .position(|w| w == cbor.as_slice())
        .expect("record block in the CAR");
    blocks[at + cbor.len() - 1] ^= 1;
    event.seq = seq;
    event.blocks = &blocks;
    encode(1, Some("#commit"), &event)
}

// ---- the loopback PLC + PDS.

struct World {
    docs: Mutex<HashMap<String, Value>>,
    cars: Mutex<HashMap<String, Vec<u8>>>,
    doc_hits: Mutex<HashMap<String, usize>>,
    repo_hits: Mutex<HashMap<String, usize>>,
    /// getRepo answers only while this is true, so a test can watch a repo mid-resync.
    gate: watch::Sender<bool>,
}

struct Net {
    url: Url,
    world: Arc<World>,
    server: Served,
}

impl Net {
    async fn start() -> Net {
        let world = Arc::new(World {
            docs: Mutex::default(),
            cars: Mutex::default(),
            doc_hits: Mutex::default(),
            repo_hits: Mutex::default(),
            gate: watch::Sender::new(true),
        });
        let app = axum::Router::new()
            .route("/xrpc/com.atproto.sync.getRepo", get(get_repo))
            .route("/{did}", get(plc_doc))
            .with_state(Arc::clone(&world));
        let server = Served::start(app).await;
        Net {
            url: server.url.clone(),
            world,
            server,
        }
    }

    /// Publishes the account's current document (key and PDS = this server).
    fn publish_doc(&self, account: &Account) {
        let did = &account.did;
        let doc = json!({
            "id": did,
            "alsoKnownAs": [format!("at://{}.test", &did[8..13])],
            "verificationMethod": [{
                "id": format!("{did}#atproto"), "type": "Multikey", "controller": did,
                "publicKeyMultibase": account.multibase(),
            }],
            "service": [{
                "id": "#atproto_pds", "type": "AtprotoPersonalDataServer",
                "serviceEndpoint": self.url.as_str().trim_end_matches('/'),
            }],
        });
        lock(&self.world.docs).insert(did.clone(), doc);
    }

    /// Serves the account's current repository as its getRepo answer.
    fn publish_car(&self, account: &Account) {
        let car = account.repo.export_car().expect("has a commit");
        lock(&self.world.cars).insert(account.did.clone(), car);
    }

    fn doc_hits(&self, did: &str) -> usize {
        lock(&self.world.doc_hits).get(did).copied().unwrap_or(0)
    }

    fn repo_hits(&self, did: &str) -> usize {
        lock(&self.world.repo_hits).get(did).copied().unwrap_or(0)
    }

    fn resolver(&self) -> Resolver {
        let fast = RateLimit {
            per_second: 10_000,
            burst: 10_000,
        };
        Resolver::new(ResolverConfig {
            plc_url: self.url.clone(),
            allow_loopback: true,
            plc_rate: fast,
            host_rate: fast,
            ..ResolverConfig::default()
        })
        .expect("resolver")
    }

    fn sync_client(&self) -> SyncClient {
        SyncClient::new(SyncConfig {
            allow_loopback: true,
            host_rate: RateLimit {
                per_second: 10_000,
                burst: 10_000,
            },
            ..SyncConfig::default()
        })
        .expect("sync client")
    }

    async fn stop(self) {
        self.server.stop().await;
    }
}

async fn plc_doc(State(world): State<Arc<World>>, Path(did): Path<String>) -> Response {
    *lock(&world.doc_hits).entry(did.clone()).or_default() += 1;
    match lock(&world.docs).get(&did) {
        Some(doc) => axum::Json(doc.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn get_repo(
    State(world): State<Arc<World>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let did = query.get("did").cloned().unwrap_or_default();
    *lock(&world.repo_hits).entry(did.clone()).or_default() += 1;
    let mut gate = world.gate.subscribe();
    if gate.wait_for(|open| *open).await.is_err() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let car = lock(&world.cars).get(&did).cloned();
    match car {
        Some(car) => ([(header::CONTENT_TYPE, "application/vnd.ipld.car")], car).into_response(),
        None => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "RepoNotFound"})),
        )
            .into_response(),
    }
}

// ---- the scripted firehose: an append-only log, replayed from `cursor` (exclusive).

struct Firehose {
    url: Url,
    log: watch::Sender<Vec<(i64, Vec<u8>)>>,
    /// Bumped to drop every connection, after sending the frame it carries (an error frame).
    kick: watch::Sender<(u64, Option<Vec<u8>>)>,
    /// The `cursor` of each connection, in order.
    cursors: Arc<Mutex<Vec<Option<i64>>>>,
    next_seq: i64,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Firehose {
    async fn start() -> Firehose {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url =
            Url::parse(&format!("http://{}", listener.local_addr().expect("addr"))).expect("url");
        let log = watch::Sender::new(Vec::new());
        let kick = watch::Sender::new((0, None));
        let cursors = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let task = tokio::spawn(accept_loop(
            listener,
            log.clone(),
            kick.clone(),
            Arc::clone(&cursors),
            stop.clone(),
        ));
        Firehose {
            url,
            log,
            kick,
            cursors,
            next_seq: 1,
            stop,
            task,
        }
    }

    /// Appends a `#commit`/`#sync` frame under the next seq; returns the seq.
    fn push(&mut self, frame: &[u8]) -> i64 {
        let seq = self.take_seq();
        self.append(seq, reseq(frame, seq));
        seq
    }

    /// Appends a frame as is (its seq, if any, must be `take_seq`'s).
    fn append(&self, seq: i64, frame: Vec<u8>) {
        self.log.send_modify(|log| log.push((seq, frame)));
    }

    /// The host starts its seqs over, as a reset relay does: its log is gone.
    fn start_over(&mut self) {
        self.log.send_modify(Vec::clear);
        self.next_seq = 1;
    }

    fn take_seq(&mut self) -> i64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    fn identity(&mut self, did: &str, handle: &str) -> i64 {
        let seq = self.take_seq();
        let event = IdentityEvent {
            seq,
            did: did.to_owned(),
            time: TIME.to_owned(),
            handle: Some(handle.to_owned()),
        };
        self.append(seq, encode(1, Some("#identity"), &event));
        seq
    }

    fn account(&mut self, did: &str, active: bool) -> i64 {
        let seq = self.take_seq();
        let event = AccountEvent {
            seq,
            did: did.to_owned(),
            time: TIME.to_owned(),
            active,
            status: None,
        };
        self.append(seq, encode(1, Some("#account"), &event));
        seq
    }

    /// Drops every connection after sending `frame`.
    fn kick(&self, frame: Option<Vec<u8>>) {
        self.kick.send_modify(|(n, f)| {
            *n += 1;
            *f = frame;
        });
    }

    fn cursors(&self) -> Vec<Option<i64>> {
        lock(&self.cursors).clone()
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task.await.expect("firehose task");
    }
}

async fn accept_loop(
    listener: TcpListener,
    log: watch::Sender<Vec<(i64, Vec<u8>)>>,
    kick: watch::Sender<(u64, Option<Vec<u8>>)>,
    cursors: Arc<Mutex<Vec<Option<i64>>>>,
    stop: CancellationToken,
) {
    let mut connections = JoinSet::new();
    loop {
        let tcp = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(_) => continue,
            },
        };
        let (log, kick, cursors, stop) = (
            log.subscribe(),
            kick.subscribe(),
            Arc::clone(&cursors),
            stop.clone(),
        );
        connections.spawn(async move {
            let mut asked = (String::new(), None);
            // The handshake callback's signature (and its large error type) is tungstenite's.
            #[allow(clippy::result_large_err)]
            let callback = |req: &Request, resp: WsResponse| {
                asked.0 = req.uri().path().to_owned();
                asked.1 = req
                    .uri()
                    .query()
                    .and_then(|q| q.strip_prefix("cursor="))
                    .and_then(|c| c.parse::<i64>().ok());
                Ok(resp)
            };
            let Ok(ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
                return;
            };
            assert_eq!(asked.0, "/xrpc/com.atproto.sync.subscribeRepos");
            lock(&cursors).push(asked.1);
            serve(ws, asked.1, log, kick, stop).await;
        });
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}

async fn serve(
    mut ws: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    cursor: Option<i64>,
    mut log: watch::Receiver<Vec<(i64, Vec<u8>)>>,
    mut kick: watch::Receiver<(u64, Option<Vec<u8>>)>,
    stop: CancellationToken,
) {
    kick.borrow_and_update();
    let last = log.borrow().last().map_or(0, |(seq, _)| *seq);
    if cursor.is_some_and(|cursor| cursor > last) {
        // As the reference PDS answers a cursor past its sequence.
        let error = ErrorEvent {
            error: "FutureCursor".to_owned(),
            message: Some("Cursor in the future.".to_owned()),
        };
        let _ = ws
            .send(Message::Binary(encode(-1, None, &error).into()))
            .await;
        let _ = ws.close(None).await;
        return;
    }
    let mut sent = cursor.unwrap_or(last);
    loop {
        let pending: Vec<(i64, Vec<u8>)> = log
            .borrow_and_update()
            .iter()
            .filter(|(seq, _)| *seq > sent)
            .cloned()
            .collect();
        for (seq, frame) in pending {
            if ws.send(Message::Binary(frame.into())).await.is_err() {
                return;
            }
            sent = seq;
        }
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            _ = kick.changed() => {
                let frame = kick.borrow().1.clone();
                if let Some(frame) = frame {
                    let _ = ws.send(Message::Binary(frame.into())).await;
                }
                let _ = ws.close(None).await;
                return;
            }
            changed = log.changed() => if changed.is_err() { return },
        }
    }
}

// ---- the indexer under test, and what it stored.

struct Indexer {
    stop: CancellationToken,
    task: JoinHandle<Result<(), IndexerError>>,
}

impl Indexer {
    fn start(pool: &PgPool, net: &Net, hose: &Firehose, start_cursor: Option<i64>) -> Indexer {
        let config = RelayConfig {
            url: hose.url.clone(),
            namespace: Namespace::new("fm.plyr").expect("namespace"),
            start_cursor,
        };
        let stop = CancellationToken::new();
        let task = tokio::spawn(run_relay(
            pool.clone(),
            config,
            net.resolver(),
            net.sync_client(),
            stop.clone(),
        ));
        Indexer { stop, task }
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task.await.expect("indexer task").expect("indexer");
    }
}

fn source(hose: &Firehose) -> String {
    format!("relay:127.0.0.1:{}", hose.url.port().expect("port"))
}

async fn cursor_reached(pool: &PgPool, hose: &Firehose, seq: i64) -> bool {
    matches!(last_cursor(pool, &source(hose)).await, Ok(Some(c)) if c >= seq)
}

async fn skips(pool: &PgPool) -> HashMap<String, i64> {
    let rows: Vec<(String, i64)> = sqlx::query_as("select reason, count from indexer_skip")
        .fetch_all(pool)
        .await
        .expect("skips");
    rows.into_iter().collect()
}

async fn repo_state(pool: &PgPool, did: &str) -> Option<(String, String, String)> {
    sqlx::query_as("select rev, data_cid, status from repo_state where did = $1")
        .bind(did)
        .fetch_optional(pool)
        .await
        .expect("repo_state")
}

async fn title(pool: &PgPool, uri: &str) -> Option<String> {
    sqlx::query_scalar("select title from track where uri = $1")
        .bind(uri)
        .fetch_optional(pool)
        .await
        .expect("track")
}

/// Tracks `account` at its current commit, as a backfill would have left it.
async fn track_repo(pool: &PgPool, account: &Account) {
    sqlx::query("insert into repo_state (did, rev, data_cid) values ($1, $2, $3)")
        .bind(&account.did)
        .bind(account.rev())
        .bind(account.repo.data().to_string())
        .execute(pool)
        .await
        .expect("repo_state");
}

async fn synced_at(pool: &PgPool, account: &Account) -> bool {
    repo_state(pool, &account.did).await
        == Some((
            account.rev(),
            account.repo.data().to_string(),
            "synced".to_owned(),
        ))
}

// ---- the tests.

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn verified_commits_are_indexed_and_tampered_ones_rejected(pool: PgPool) {
    let net = Net::start().await;
    let mut hose = Firehose::start().await;
    let mut alice = Account::new("alice", 0x11);
    let carol = Account::new("carol", 0x33);
    // Dave has no DID document: had any of his commits been verified, it would be counted
    // as unresolvable.
    let mut dave = Account::new("dave", 0x44);
    alice.commit(vec![post(&tid(1))]);
    track_repo(&pool, &alice).await;
    net.publish_doc(&alice);
    net.publish_doc(&carol);

    let (t1, t2, t3) = (tid(1001), tid(1002), tid(1003));
    hose.push(&alice.commit(vec![track(&t1, "One"), post(&tid(2))]));
    let update = alice.commit(vec![Write::Update {
        path: format!("fm.plyr.track/{t1}"),
        record: track_record("One (edit)"),
    }]);
    hose.push(&update);
    hose.push(&alice.commit(vec![create(
        &format!("fm.plyr.like/{t2}"),
        like_record(&alice.uri("track", &t1)),
    )]));
    hose.push(&dave.commit(vec![post(&tid(3))]));
    // Erin has no DID document either, but publishes in our namespace: verification is tried
    // and fails on the identity.
    let mut erin = Account::new("erin", 0x55);
    hose.push(&erin.commit(vec![track(&tid(4), "Unverifiable")]));

    // Forged: the next commit signed with another key.
    let forged = alice
        .replica([0x99; 32])
        .commit(&[track(&tid(2001), "Forged")], TIME)
        .expect("forged");
    hose.push(&forged);
    // Ops that do not match the MST: a path the tree does not hold.
    let moved = alice
        .replica(alice.secret)
        .commit(&[track(&tid(2002), "Moved")], TIME)
        .expect("moved");
    let seq = hose.take_seq();
    hose.append(
        seq,
        edit(&moved, seq, |e| {
            e.ops[0].path = format!("fm.plyr.track/{}", tid(2003))
        }),
    );
    // A record block whose bytes do not hash to its CID.
    let swapped = alice
        .replica(alice.secret)
        .commit(&[track(&tid(2004), "Swapped")], TIME)
        .expect("swapped");
    let seq = hose.take_seq();
    hose.append(seq, flip_record(&swapped, seq, &track_record("Swapped")));
    // A message naming another repo than the one signed.
    let stolen = alice
        .replica(alice.secret)
        .commit(&[track(&tid(2005), "Stolen")], TIME)
        .expect("stolen");
    let seq = hose.take_seq();
    hose.append(seq, edit(&stolen, seq, |e| e.repo = carol.did.clone()));
    // A replayed commit (stale rev), garbage, an unknown frame type and an #info.
    hose.push(&update);
    let seq = hose.take_seq();
    hose.append(seq, vec![0xa2, 0x01]);
    let seq = hose.take_seq();
    hose.append(seq, encode(1, Some("#future"), &json!({"x": 1})));
    let seq = hose.take_seq();
    let info = InfoEvent {
        name: "OutdatedCursor".to_owned(),
        message: None,
    };
    hose.append(seq, encode(1, Some("#info"), &info));
    // The chain goes on after every rejection.
    let last = hose.push(&alice.commit(vec![track(&t3, "Three")]));

    let indexer = Indexer::start(&pool, &net, &hose, Some(0));
    wait_for("the last commit", || cursor_reached(&pool, &hose, last)).await;
    indexer.stop().await;

    assert_eq!(
        title(&pool, &alice.uri("track", &t1)).await.as_deref(),
        Some("One (edit)")
    );
    assert_eq!(
        title(&pool, &alice.uri("track", &t3)).await.as_deref(),
        Some("Three")
    );
    let likes: i32 = sqlx::query_scalar("select like_count from track where uri = $1")
        .bind(alice.uri("track", &t1))
        .fetch_one(&pool)
        .await
        .expect("likes");
    assert_eq!(likes, 1);
    let stored: i64 = sqlx::query_scalar("select count(*) from track")
        .fetch_one(&pool)
        .await
        .expect("tracks");
    assert_eq!(stored, 2, "no rejected commit left a record");
    assert!(synced_at(&pool, &alice).await);
    assert_eq!(repo_state(&pool, &carol.did).await, None);
    assert_eq!(repo_state(&pool, &dave.did).await, None);
    assert_eq!(repo_state(&pool, &erin.did).await, None);
    assert_eq!(
        net.doc_hits(&dave.did),
        0,
        "untracked commits are never verified"
    );
    let want: HashMap<String, i64> = [
        ("bad_signature", 1),
        ("mst_mismatch", 1),
        ("cid_mismatch", 1),
        ("fields_mismatch", 1),
        ("stale_rev", 1),
        ("malformed_frame", 1),
        ("unknown_kind", 1),
        ("unresolvable_did", 1),
    ]
    .into_iter()
    .map(|(r, c)| (r.to_owned(), c))
    .collect();
    assert_eq!(skips(&pool).await, want);
    // The forged commit made the directory fetch the document again, once.
    assert_eq!(net.doc_hits(&alice.did), 2);

    hose.stop().await;
    net.stop().await;
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn a_broken_chain_is_resynced_and_held_commits_applied(pool: PgPool) {
    let net = Net::start().await;
    let mut hose = Firehose::start().await;
    let mut alice = Account::new("alice", 0x11);
    alice.commit(vec![post(&tid(1))]);
    track_repo(&pool, &alice).await;
    net.publish_doc(&alice);
    net.world.gate.send_replace(false);

    let (t1, t2, t3, t4) = (tid(3001), tid(3002), tid(3003), tid(3004));
    // Commit 1 never reaches us: commit 2's since/prevData expose the gap.
    alice.commit(vec![track(&t1, "Missed")]);
    hose.push(&alice.commit(vec![track(&t2, "Second")]));
    net.publish_car(&alice);
    let held = hose.push(&alice.commit(vec![track(&t3, "Third")]));
    let indexer = Indexer::start(&pool, &net, &hose, Some(0));
    wait_for("the held commit's seq", || {
        cursor_reached(&pool, &hose, held)
    })
    .await;
    wait_for("the resync's getRepo", || async {
        net.repo_hits(&alice.did) == 1
    })
    .await;
    let (_, _, status) = repo_state(&pool, &alice.did).await.expect("tracked");
    assert_eq!(status, "desynchronized");
    assert_eq!(
        title(&pool, &alice.uri("track", &t3)).await,
        None,
        "held, not applied"
    );

    net.world.gate.send_replace(true);
    wait_for("the resync and the held commit", || {
        synced_at(&pool, &alice)
    })
    .await;
    for (rkey, want) in [(&t1, "Missed"), (&t2, "Second"), (&t3, "Third")] {
        assert_eq!(
            title(&pool, &alice.uri("track", rkey)).await.as_deref(),
            Some(want)
        );
    }

    // A #sync naming the state we hold changes nothing.
    let same = alice.repo.sync_frame(TIME).expect("sync");
    let seq = hose.push(&same);
    wait_for("the matching #sync", || cursor_reached(&pool, &hose, seq)).await;
    assert_eq!(net.repo_hits(&alice.did), 1);
    // A #sync to a state we never saw resyncs.
    alice.commit(vec![track(&t4, "Fourth")]);
    net.publish_car(&alice);
    let reset = alice.repo.sync_frame(TIME).expect("sync");
    hose.push(&reset);
    wait_for("the #sync resync", || synced_at(&pool, &alice)).await;
    assert_eq!(
        title(&pool, &alice.uri("track", &t4)).await.as_deref(),
        Some("Fourth")
    );
    assert_eq!(net.repo_hits(&alice.did), 2);
    assert_eq!(skips(&pool).await, HashMap::new());

    indexer.stop().await;
    hose.stop().await;
    net.stop().await;
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn new_repos_rotated_keys_reconnects_and_restarts(pool: PgPool) {
    let net = Net::start().await;
    let mut hose = Firehose::start().await;
    let mut carol = Account::new("carol", 0x33);
    net.publish_doc(&carol);
    let (t0, t1, t2, t3, t4) = (tid(4000), tid(4001), tid(4002), tid(4003), tid(4004));
    // Published before our window: only the resync of a newly tracked repo finds it.
    carol.commit(vec![track(&t0, "Early")]);
    let first = hose.push(&carol.commit(vec![track(&t1, "First"), post(&tid(5))]));
    net.publish_car(&carol);

    let indexer = Indexer::start(&pool, &net, &hose, Some(0));
    wait_for("carol's resync", || async {
        title(&pool, &carol.uri("track", &t0)).await.is_some() && synced_at(&pool, &carol).await
    })
    .await;
    assert_eq!(
        title(&pool, &carol.uri("track", &t1)).await.as_deref(),
        Some("First")
    );

    // The host drops us with an error frame: we reconnect from the last seq we took.
    let error = ErrorEvent {
        error: "ConsumerTooSlow".to_owned(),
        message: None,
    };
    hose.kick(Some(encode(-1, None, &error)));
    wait_for("the reconnect", || async { hose.cursors().len() == 2 }).await;
    hose.push(&carol.commit(vec![track(&t2, "Second")]));
    wait_for("the commit after the reconnect", || async {
        title(&pool, &carol.uri("track", &t2)).await.is_some()
    })
    .await;
    assert_eq!(hose.cursors(), vec![Some(0), Some(first)]);

    // Key rotation: the document changes, an #identity says so, and the next commit is
    // signed with the new key.
    let hits = net.doc_hits(&carol.did);
    carol.repo = carol.replica([0x77; 32]);
    net.publish_doc(&carol);
    hose.identity(&carol.did, "carol.test");
    hose.account(&carol.did, true);
    let rotated = hose.push(&carol.commit(vec![track(&t3, "Third")]));
    wait_for("the commit with the new key", || {
        cursor_reached(&pool, &hose, rotated)
    })
    .await;
    assert_eq!(
        title(&pool, &carol.uri("track", &t3)).await.as_deref(),
        Some("Third")
    );
    assert!(
        net.doc_hits(&carol.did) > hits,
        "the document was fetched again"
    );
    indexer.stop().await;

    // A restart resumes after the stored seq: nothing before it is applied twice.
    let stored = last_cursor(&pool, &source(&hose)).await.expect("cursor");
    assert_eq!(stored, Some(rotated));
    let last = hose.push(&carol.commit(vec![track(&t4, "Fourth")]));
    let indexer = Indexer::start(&pool, &net, &hose, Some(0));
    wait_for("the commit after the restart", || {
        cursor_reached(&pool, &hose, last)
    })
    .await;
    indexer.stop().await;
    assert_eq!(hose.cursors().last(), Some(&Some(rotated)));
    assert_eq!(
        title(&pool, &carol.uri("track", &t4)).await.as_deref(),
        Some("Fourth")
    );
    assert!(synced_at(&pool, &carol).await);
    assert_eq!(
        skips(&pool).await,
        HashMap::new(),
        "no stale replays, no rejections"
    );
    assert_eq!(
        net.repo_hits(&carol.did),
        1,
        "one resync, when carol became tracked"
    );

    hose.stop().await;
    net.stop().await;
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn a_host_whose_seqs_started_over_is_followed_again_and_every_repo_resynced(pool: PgPool) {
    let net = Net::start().await;
    let mut hose = Firehose::start().await;
    let mut dave = Account::new("dave", 0x44);
    net.publish_doc(&dave);
    let (t1, t2, t3) = (tid(7001), tid(7002), tid(7003));
    hose.push(&dave.commit(vec![track(&t1, "Before the reset")]));
    hose.push(&dave.commit(vec![post(&tid(7))]));
    let before = hose.push(&dave.commit(vec![post(&tid(8))]));
    net.publish_car(&dave);
    let indexer = Indexer::start(&pool, &net, &hose, Some(0));
    wait_for("the first run", || cursor_reached(&pool, &hose, before)).await;
    indexer.stop().await;
    let repo_hits = net.repo_hits(&dave.did);

    // The host is reset: its log is gone and its seqs start over. Dave's commit made meanwhile
    // is on no stream we will see (only his repo has it), and nothing of his follows it.
    hose.start_over();
    dave.commit(vec![track(&t2, "Lost in the gap")]);
    net.publish_car(&dave);
    let mut erin = Account::new("erin", 0x45);
    net.publish_doc(&erin);
    let after = hose.push(&erin.commit(vec![track(&t3, "After the reset")]));
    net.publish_car(&erin);
    assert!(after < before);

    let indexer = Indexer::start(&pool, &net, &hose, Some(0));
    wait_for("the commit after the reset", || async {
        title(&pool, &erin.uri("track", &t3)).await.is_some()
    })
    .await;
    wait_for("dave's resync", || synced_at(&pool, &dave)).await;
    wait_for("the new cursor", || async {
        last_cursor(&pool, &source(&hose)).await.ok().flatten() == Some(after)
    })
    .await;
    indexer.stop().await;
    assert_eq!(
        hose.cursors()[1..],
        [Some(before), Some(before), Some(before), Some(0)],
        "three refusals, then the configured start"
    );
    assert_eq!(
        title(&pool, &dave.uri("track", &t2)).await.as_deref(),
        Some("Lost in the gap"),
        "every tracked repo was resynced, so the commit the lost seqs carried is found"
    );
    assert_eq!(
        title(&pool, &dave.uri("track", &t1)).await.as_deref(),
        Some("Before the reset")
    );
    assert!(net.repo_hits(&dave.did) > repo_hits, "dave was resynced");
    assert_eq!(skips(&pool).await, HashMap::new(), "nothing rejected");

    hose.stop().await;
    net.stop().await;
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn repos_left_desynchronized_are_resynced_at_start(pool: PgPool) {
    let net = Net::start().await;
    let hose = Firehose::start().await;
    let mut alice = Account::new("alice", 0x11);
    alice.commit(vec![post(&tid(1))]);
    track_repo(&pool, &alice).await;
    sqlx::query("update repo_state set status = 'desynchronized', reason = 'test'")
        .execute(&pool)
        .await
        .expect("mark");
    let t1 = tid(6001);
    alice.commit(vec![track(&t1, "While we were away")]);
    net.publish_doc(&alice);
    net.publish_car(&alice);

    // No frame at all: the resync comes from repo_state alone.
    let indexer = Indexer::start(&pool, &net, &hose, None);
    wait_for("the resync at start", || synced_at(&pool, &alice)).await;
    wait_for("the connection", || async { !hose.cursors().is_empty() }).await;
    indexer.stop().await;
    assert_eq!(
        title(&pool, &alice.uri("track", &t1)).await.as_deref(),
        Some("While we were away")
    );
    assert_eq!(
        hose.cursors(),
        vec![None],
        "no stored cursor and none configured: live"
    );

    hose.stop().await;
    net.stop().await;
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn tracked_repos_keep_their_bluesky_profile(pool: PgPool) {
    let net = Net::start().await;
    let mut hose = Firehose::start().await;
    let mut alice = Account::new("alice", 0x11);
    // Frank publishes only a Bluesky profile: it must not make his repo tracked.
    let mut frank = Account::new("frank", 0x66);
    alice.commit(vec![post(&tid(1))]);
    track_repo(&pool, &alice).await;
    net.publish_doc(&alice);
    net.publish_doc(&frank);
    let profile = |name: &str| {
        create(
            "app.bsky.actor.profile/self",
            json!({"$type": "app.bsky.actor.profile", "displayName": name}),
        )
    };
    hose.push(&alice.commit(vec![track(&tid(1001), "One"), profile("Alice")]));
    hose.push(&frank.commit(vec![profile("Frank")]));
    let last = hose.push(&alice.commit(vec![Write::Update {
        path: "app.bsky.actor.profile/self".to_owned(),
        record: json!({"$type": "app.bsky.actor.profile", "displayName": "Alice B."}),
    }]));

    let indexer = Indexer::start(&pool, &net, &hose, Some(0));
    wait_for("the last commit", || cursor_reached(&pool, &hose, last)).await;
    indexer.stop().await;

    let names: Vec<(String, Option<String>)> =
        sqlx::query_as("select did, display_name from bsky_profile order by did")
            .fetch_all(&pool)
            .await
            .expect("bsky_profile");
    assert_eq!(
        names,
        vec![(alice.did.clone(), Some("Alice B.".to_owned()))]
    );
    assert!(synced_at(&pool, &alice).await);
    assert_eq!(repo_state(&pool, &frank.did).await, None, "frank untracked");
}

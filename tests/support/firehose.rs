//! A scripted relay for the real binary's `--source relay`: signed repositories built with
//! `RepoBuilder`, their `#commit` frames under one host-wide seq, served as
//! `com.atproto.sync.subscribeRepos` (frames with `seq > cursor`), and a loopback PLC + PDS on
//! several loopback addresses (DID documents with the repos' keys; `getRepo` answering, like a
//! real PDS that is never behind its relay, the repo as of the newest frame the firehose sent).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::SinkExt;
use plyr_repo::{RepoBuilder, Write};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response as WsResponse};

use super::relay::renumber;

/// The `time` of every scripted commit.
pub const TIME: &str = "2026-11-30T00:00:00.000Z";

/// getRepo is rate limited per host (5/s): the PDS answers on this many loopback addresses.
const PDS_HOSTS: u8 = 8;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A did:plc for `kind` and `n`: 24 base32 characters, digits spelled as letters.
pub fn repo_did(kind: &str, n: u32) -> String {
    let digits: String = format!("{n:08}")
        .bytes()
        .map(|d| char::from(b'a' + (d - b'0')))
        .collect();
    format!("did:plc:{:a<24}", format!("{kind}{digits}"))
}

/// One account's signing repository.
pub struct Account {
    pub did: String,
    repo: RepoBuilder,
}

impl Account {
    pub fn new(did: String, secret: u8) -> Account {
        let mut key = [secret; 32];
        key[0] = 1; // never all zero
        let repo = RepoBuilder::new(did.clone(), key).expect("builder");
        Account { did, repo }
    }

    /// The rev of its latest commit.
    pub fn rev(&self) -> String {
        self.repo.rev().expect("has a commit").to_owned()
    }

    pub fn uri(&self, collection: &str, rkey: &str) -> String {
        format!("at://{}/{collection}/{rkey}", self.did)
    }
}

/// A record create at `collection/rkey`.
pub fn put(collection: &str, rkey: &str, record: Value) -> Write {
    Write::Create {
        path: format!("{collection}/{rkey}"),
        record,
    }
}

/// A record replaced at `collection/rkey`.
pub fn replace(collection: &str, rkey: &str, record: Value) -> Write {
    Write::Update {
        path: format!("{collection}/{rkey}"),
        record,
    }
}

/// The record at `collection/rkey` deleted.
pub fn remove(collection: &str, rkey: &str) -> Write {
    Write::Delete {
        path: format!("{collection}/{rkey}"),
    }
}

/// Frames in seq order (1, 2, ...), plus what the loopback network must serve.
#[derive(Default)]
pub struct Script {
    pub frames: Vec<(i64, Vec<u8>)>,
    /// Per DID, the repository CAR after each of its commits, by that commit's seq.
    pub snapshots: HashMap<String, Vec<(i64, Vec<u8>)>>,
    /// Record operations in all commits.
    pub ops: usize,
}

impl Script {
    /// Appends `account`'s signed commit of `writes` under the next seq.
    pub fn commit(&mut self, account: &mut Account, writes: &[Write]) {
        let frame = account.repo.commit(writes, TIME).expect("commit");
        let seq = i64::try_from(self.frames.len()).expect("small") + 1;
        self.frames
            .push((seq, renumber(&frame, seq).expect("renumber")));
        let car = account.repo.export_car().expect("has a commit");
        self.snapshots
            .entry(account.did.clone())
            .or_default()
            .push((seq, car));
        self.ops += writes.len();
    }

    pub fn last_seq(&self) -> i64 {
        self.frames.last().map_or(0, |(seq, _)| *seq)
    }
}

struct World {
    docs: HashMap<String, Value>,
    snapshots: HashMap<String, Vec<(i64, Vec<u8>)>>,
    /// The newest seq the firehose sent: getRepo answers the repo as of then.
    sent: Arc<AtomicI64>,
}

/// The PLC directory (at `plc_url`) and the accounts' PDS, on [`PDS_HOSTS`] loopback addresses.
pub struct Network {
    pub plc_url: String,
    tasks: JoinSet<()>,
}

impl Network {
    /// Serves the documents of `accounts` (account `i` on PDS host `i % 8`) and `script`'s
    /// snapshots as of `sent` (a [`ScriptedFirehose::sent`]).
    pub async fn start(accounts: &[Account], script: &Script, sent: Arc<AtomicI64>) -> Network {
        let mut listeners = Vec::new();
        for h in 0..PDS_HOSTS {
            let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + h));
            let listener = TcpListener::bind(SocketAddr::new(ip, 0))
                .await
                .expect("bind loopback host");
            listeners.push(listener);
        }
        let hosts: Vec<String> = listeners
            .iter()
            .map(|l| format!("http://{}", l.local_addr().expect("addr")))
            .collect();
        let mut world = World {
            docs: HashMap::new(),
            snapshots: script.snapshots.clone(),
            sent,
        };
        for (i, account) in accounts.iter().enumerate() {
            let did = &account.did;
            let key = account.repo.public_key().to_did_key();
            let doc = json!({
                "id": did,
                "alsoKnownAs": [format!("at://{}.test", &did[8..20])],
                "verificationMethod": [{
                    "id": format!("{did}#atproto"), "type": "Multikey", "controller": did,
                    "publicKeyMultibase": key.trim_start_matches("did:key:"),
                }],
                "service": [{
                    "id": "#atproto_pds", "type": "AtprotoPersonalDataServer",
                    "serviceEndpoint": hosts[i % hosts.len()],
                }],
            });
            world.docs.insert(did.clone(), doc);
        }
        let world = Arc::new(world);
        let app = axum::Router::new()
            .route("/xrpc/com.atproto.sync.getRepo", get(get_repo))
            .route("/xrpc/com.atproto.sync.getRepoStatus", get(repo_status))
            .route("/{did}", get(plc_doc))
            .with_state(world);
        let plc_url = format!("{}/", hosts[0]);
        let mut tasks = JoinSet::new();
        for listener in listeners {
            let app = app.clone();
            tasks.spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
        }
        Network { plc_url, tasks }
    }
}

async fn plc_doc(State(world): State<Arc<World>>, Path(did): Path<String>) -> Response {
    match world.docs.get(&did) {
        Some(doc) => axum::Json(doc.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn get_repo(
    State(world): State<Arc<World>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let did = query.get("did").cloned().unwrap_or_default();
    let sent = world.sent.load(Ordering::SeqCst);
    let car = world
        .snapshots
        .get(&did)
        .and_then(|s| s.iter().rev().find(|(seq, _)| *seq <= sent));
    match car {
        Some((_, car)) => (
            [(header::CONTENT_TYPE, "application/vnd.ipld.car")],
            car.clone(),
        )
            .into_response(),
        None => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "RepoNotFound", "message": "no such repo"})),
        )
            .into_response(),
    }
}

async fn repo_status(Query(query): Query<HashMap<String, String>>) -> Response {
    let did = query.get("did").cloned().unwrap_or_default();
    axum::Json(json!({"did": did, "active": true})).into_response()
}

/// `subscribeRepos` over a fixed list of frames: each connection gets every frame with
/// `seq > cursor` (none without a cursor: live at the end), then stays open.
pub struct ScriptedFirehose {
    addr: SocketAddr,
    sent: Arc<AtomicI64>,
    cursors: Arc<Mutex<Vec<Option<i64>>>>,
    task: JoinHandle<()>,
}

impl ScriptedFirehose {
    pub async fn start(frames: Vec<(i64, Vec<u8>)>) -> ScriptedFirehose {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let frames = Arc::new(frames);
        let cursors = Arc::new(Mutex::new(Vec::new()));
        let sent = Arc::new(AtomicI64::new(0));
        let task = {
            let cursors = cursors.clone();
            let sent = sent.clone();
            tokio::spawn(async move {
                let mut connections = JoinSet::new();
                while let Ok((tcp, _)) = listener.accept().await {
                    connections.spawn(serve(tcp, frames.clone(), cursors.clone(), sent.clone()));
                    while connections.try_join_next().is_some() {}
                }
            })
        };
        ScriptedFirehose {
            addr,
            sent,
            cursors,
            task,
        }
    }

    /// The newest seq sent on any connection (for [`Network::start`]).
    pub fn sent(&self) -> Arc<AtomicI64> {
        self.sent.clone()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://127.0.0.1:<port>`, for `--relay-url`.
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// The cursor stored for this host (`relay:127.0.0.1:<port>`).
    pub fn source(&self) -> String {
        format!("relay:127.0.0.1:{}", self.addr.port())
    }

    /// The `cursor` each connection asked for.
    pub fn cursors(&self) -> Vec<Option<i64>> {
        lock(&self.cursors).clone()
    }
}

impl Drop for ScriptedFirehose {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    tcp: tokio::net::TcpStream,
    frames: Arc<Vec<(i64, Vec<u8>)>>,
    cursors: Arc<Mutex<Vec<Option<i64>>>>,
    sent: Arc<AtomicI64>,
) {
    let mut cursor = None;
    // The handshake callback's signature (and its large error type) is tungstenite's.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, resp: WsResponse| {
        cursor = req
            .uri()
            .query()
            .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("cursor=")))
            .and_then(|c| c.parse::<i64>().ok());
        Ok(resp)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
        return;
    };
    lock(&cursors).push(cursor);
    let Some(cursor) = cursor else {
        return;
    };
    for (seq, frame) in frames.iter() {
        if *seq <= cursor {
            continue;
        }
        // Sent one at a time, so the PDS is never ahead of what the relay has sent.
        if ws
            .send(Message::Binary(frame.clone().into()))
            .await
            .is_err()
        {
            return;
        }
        sent.fetch_max(*seq, Ordering::SeqCst);
    }
    // Stay connected and quiet, like a relay with nothing new, until the client leaves.
    use futures_util::StreamExt;
    while let Some(Ok(_)) = ws.next().await {}
}

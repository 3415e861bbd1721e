//! Tests only: a PLC directory and a PDS on one loopback HTTP server (axum), serving DID
//! documents at `/{did}`, `com.atproto.sync.getRepoStatus` and `getBlob` answers, plain files
//! and `/.well-known/atproto-did` by `Host`, counting requests. The end-to-end tests include
//! this file too (`tests/support/plc.rs`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use plyr_identity::{Resolver, ResolverConfig};
use plyr_repo::PublicKey;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use url::Url;

/// Two valid `#atproto` keys (multibase), for documents before and after a rotation.
pub(crate) const KEY_A: &str = "zQ3shqwJEJyMBsBXCWyCBpUBMqxcon9oHB7mCvx4sSpMdLJwc";
pub(crate) const KEY_B: &str = "zDnaembgSGUhZULN2Caob4HLJPaxBh92N7rtH21TErzqf8HQo";
/// A PDS nothing listens on (the discard port): connections are refused at once.
pub(crate) const UNREACHABLE_PDS: &str = "http://127.0.0.1:9";

/// What the PDS answers to getRepoStatus for a DID.
#[derive(Debug, Clone)]
pub(crate) enum RepoAnswer {
    Active,
    Inactive(&'static str),
    NotFound,
}

#[derive(Default)]
struct World {
    docs: Mutex<HashMap<String, Value>>,
    statuses: Mutex<HashMap<String, RepoAnswer>>,
    hits: Mutex<HashMap<String, usize>>,
    /// getBlob answers by `(did, cid)`, and plain files by path (audioUrl).
    blobs: Mutex<HashMap<(String, String), Vec<u8>>>,
    files: Mutex<HashMap<String, Vec<u8>>>,
    blob_hits: Mutex<usize>,
    /// The DID `/.well-known/atproto-did` names, by the handle in the request's `Host`.
    handles: Mutex<HashMap<String, String>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An axum app served on an ephemeral loopback port until [`Served::stop`] is awaited: the
/// body of each of this crate's test servers (this one, the backfill tests' host, the relay
/// tests' network).
pub(crate) struct Served {
    /// `http://127.0.0.1:<port>/`.
    pub url: Url,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Served {
    /// Binds a free loopback port and serves `app` on it.
    pub(crate) async fn start(app: axum::Router) -> Served {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/", listener.local_addr().expect("addr"))
            .parse()
            .expect("url");
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await
                    .expect("loopback server");
            }
        });
        Served { url, stop, task }
    }

    /// Stops serving and waits for the server's task.
    pub(crate) async fn stop(self) {
        self.stop.cancel();
        self.task.await.expect("loopback server task");
    }
}

/// The running server; stops when [`Loopback::stop`] is awaited.
pub(crate) struct Loopback {
    /// `http://127.0.0.1:<port>/`: the PLC URL, and the PDS of documents set with [`Loopback::pds`].
    pub url: Url,
    world: Arc<World>,
    server: Served,
}

impl Loopback {
    pub(crate) async fn start() -> Loopback {
        let world = Arc::new(World::default());
        let app = axum::Router::new()
            .route("/xrpc/com.atproto.sync.getRepoStatus", get(repo_status))
            .route("/xrpc/com.atproto.sync.getBlob", get(get_blob))
            .route("/files/{name}", get(get_file))
            .route("/.well-known/atproto-did", get(well_known_did))
            .route("/{did}", get(plc_doc))
            .with_state(Arc::clone(&world));
        let server = Served::start(app).await;
        Loopback {
            url: server.url.clone(),
            world,
            server,
        }
    }

    /// This server as a PDS endpoint.
    pub(crate) fn pds(&self) -> &str {
        self.url.as_str()
    }

    /// A resolver that uses this server as its PLC directory, with loopback allowed.
    pub(crate) fn resolver(&self) -> Resolver {
        Resolver::new(ResolverConfig {
            plc_url: self.url.clone(),
            allow_loopback: true,
            ..ResolverConfig::default()
        })
        .expect("resolver")
    }

    /// Serves a document for `did` with signing key `key`, hosted on `pds`.
    pub(crate) fn set_doc(&self, did: &str, key: &str, pds: &str) {
        let method = json!({
            "id": format!("{did}#atproto"), "type": "Multikey", "controller": did,
            "publicKeyMultibase": key,
        });
        self.put_doc(did, None, vec![method], pds_service(pds));
    }

    /// Serves a labeler's document: its `#atproto_labeler` service at `endpoint` and, if given,
    /// its `#atproto_label` key.
    pub(crate) fn set_labeler_doc(&self, did: &str, endpoint: &str, key: Option<&PublicKey>) {
        let methods = key
            .map(|key| {
                let did_key = key.to_did_key();
                json!({
                    "id": format!("{did}#atproto_label"), "type": "Multikey", "controller": did,
                    "publicKeyMultibase": did_key.trim_start_matches("did:key:"),
                })
            })
            .into_iter()
            .collect();
        let service = json!({
            "id": "#atproto_labeler", "type": "AtprotoLabeler",
            "serviceEndpoint": endpoint.trim_end_matches('/'),
        });
        self.put_doc(did, None, methods, service);
    }

    fn put_doc(&self, did: &str, handle: Option<&str>, methods: Vec<Value>, service: Value) {
        let aka: Vec<String> = handle.map(|h| format!("at://{h}")).into_iter().collect();
        let doc = json!({
            "@context": ["https://www.w3.org/ns/did/v1"],
            "id": did,
            "alsoKnownAs": aka,
            "verificationMethod": methods,
            "service": [service],
        });
        lock(&self.world.docs).insert(did.to_owned(), doc);
    }

    /// What getRepoStatus answers for `did`.
    pub(crate) fn set_status(&self, did: &str, answer: RepoAnswer) {
        lock(&self.world.statuses).insert(did.to_owned(), answer);
    }

    /// Requests for `did`'s document so far.
    pub(crate) fn doc_hits(&self, did: &str) -> usize {
        lock(&self.world.hits).get(did).copied().unwrap_or_default()
    }

    /// What getBlob answers for `did`'s blob `cid` (any bytes: a lying PDS too).
    pub(crate) fn set_blob(&self, did: &str, cid: &str, bytes: &[u8]) {
        lock(&self.world.blobs).insert((did.to_owned(), cid.to_owned()), bytes.to_vec());
    }

    /// Serves `bytes` at `/files/{name}`.
    pub(crate) fn set_file(&self, name: &str, bytes: &[u8]) {
        lock(&self.world.files).insert(name.to_owned(), bytes.to_vec());
    }

    /// getBlob and file requests so far.
    pub(crate) fn blob_hits(&self) -> usize {
        *lock(&self.world.blob_hits)
    }

    pub(crate) async fn stop(self) {
        self.server.stop().await;
    }
}

/// Identities by handle: what the account checker and the handle resolver read.
#[allow(
    dead_code,
    reason = "used by the end-to-end tests, which include this file"
)]
impl Loopback {
    /// Serves a document for `did` claiming `handle`, with no key, hosted on `pds` (this
    /// server if `None`).
    pub(crate) fn set_handle_doc(&self, did: &str, handle: &str, pds: Option<&str>) {
        let pds = pds.unwrap_or(self.pds());
        self.put_doc(did, Some(handle), Vec::new(), pds_service(pds));
    }

    /// Answers `/.well-known/atproto-did` for `handle` (sent as `Host`) with `did`.
    pub(crate) fn set_handle_did(&self, handle: &str, did: &str) {
        lock(&self.world.handles).insert(handle.to_owned(), did.to_owned());
    }
}

/// The `#atproto_pds` service entry for `pds`.
fn pds_service(pds: &str) -> Value {
    json!({
        "id": "#atproto_pds", "type": "AtprotoPersonalDataServer",
        "serviceEndpoint": pds.trim_end_matches('/'),
    })
}

async fn plc_doc(State(world): State<Arc<World>>, Path(did): Path<String>) -> (StatusCode, String) {
    *lock(&world.hits).entry(did.clone()).or_default() += 1;
    match lock(&world.docs).get(&did) {
        Some(doc) => (StatusCode::OK, doc.to_string()),
        None => (StatusCode::NOT_FOUND, "not found".to_owned()),
    }
}

async fn repo_status(
    State(world): State<Arc<World>>,
    Query(query): Query<HashMap<String, String>>,
) -> (StatusCode, String) {
    let did = query.get("did").cloned().unwrap_or_default();
    let answer = lock(&world.statuses).get(&did).cloned();
    match answer {
        Some(RepoAnswer::Active) => (
            StatusCode::OK,
            json!({"did": did, "active": true, "rev": "3lbbbbbbbbb22"}).to_string(),
        ),
        Some(RepoAnswer::Inactive(status)) => (
            StatusCode::OK,
            json!({"did": did, "active": false, "status": status}).to_string(),
        ),
        Some(RepoAnswer::NotFound) | None => (
            StatusCode::BAD_REQUEST,
            json!({"error": "RepoNotFound", "message": "Could not find repo"}).to_string(),
        ),
    }
}

async fn get_blob(
    State(world): State<Arc<World>>,
    Query(query): Query<HashMap<String, String>>,
) -> (StatusCode, Vec<u8>) {
    *lock(&world.blob_hits) += 1;
    let did = query.get("did").cloned().unwrap_or_default();
    let cid = query.get("cid").cloned().unwrap_or_default();
    match lock(&world.blobs).get(&(did, cid)) {
        Some(bytes) => (StatusCode::OK, bytes.clone()),
        None => (
            StatusCode::BAD_REQUEST,
            json!({"error": "BlobNotFound", "message": "Blob not found"})
                .to_string()
                .into_bytes(),
        ),
    }
}

async fn well_known_did(
    State(world): State<Arc<World>>,
    headers: HeaderMap,
) -> (StatusCode, String) {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    match lock(&world.handles).get(host) {
        Some(did) => (StatusCode::OK, did.clone()),
        None => (StatusCode::NOT_FOUND, String::new()),
    }
}

async fn get_file(
    State(world): State<Arc<World>>,
    Path(name): Path<String>,
) -> (StatusCode, Vec<u8>) {
    *lock(&world.blob_hits) += 1;
    match lock(&world.files).get(&name) {
        Some(bytes) => (StatusCode::OK, bytes.clone()),
        None => (StatusCode::NOT_FOUND, Vec::new()),
    }
}

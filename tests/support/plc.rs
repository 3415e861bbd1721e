//! A PLC directory and a PDS on one loopback HTTP server: DID documents at `/{did}` and
//! `com.atproto.sync.getRepoStatus` answers, changeable while a test runs, for the account
//! checker and the handle resolver.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A PDS nothing listens on (the discard port): connections are refused at once.
pub const UNREACHABLE_PDS: &str = "http://127.0.0.1:9";

/// A did:plc from a short name, padded to the 24 base32 characters PLC identifiers have.
pub fn plc_did(name: &str) -> String {
    format!("did:plc:{name:a<24}")
}

/// What the PDS answers to getRepoStatus for a DID.
#[derive(Debug, Clone)]
pub enum RepoAnswer {
    Active,
    Inactive(&'static str),
    NotFound,
}

#[derive(Default)]
struct World {
    docs: Mutex<HashMap<String, Value>>,
    statuses: Mutex<HashMap<String, RepoAnswer>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub struct LoopbackPlc {
    /// `http://127.0.0.1:<port>/`: the PLC URL, and this server as a PDS.
    pub url: url::Url,
    world: Arc<World>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl LoopbackPlc {
    pub async fn start() -> LoopbackPlc {
        let world = Arc::new(World::default());
        let app = axum::Router::new()
            .route("/xrpc/com.atproto.sync.getRepoStatus", get(repo_status))
            .route("/{did}", get(plc_doc))
            .with_state(Arc::clone(&world));
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
                    .expect("loopback PLC");
            }
        });
        LoopbackPlc {
            url,
            world,
            stop,
            task,
        }
    }

    /// A resolver using this server as its PLC directory, loopback allowed.
    pub fn resolver(&self) -> plyr_identity::Resolver {
        plyr_identity::Resolver::new(plyr_identity::ResolverConfig {
            plc_url: self.url.clone(),
            allow_loopback: true,
            ..plyr_identity::ResolverConfig::default()
        })
        .expect("resolver")
    }

    /// Serves a document for `did` claiming `handle`, hosted on `pds` (this server if `None`).
    pub fn set_doc(&self, did: &str, handle: &str, pds: Option<&str>) {
        let pds = pds.unwrap_or(self.url.as_str()).trim_end_matches('/');
        let doc = json!({
            "@context": ["https://www.w3.org/ns/did/v1"],
            "id": did,
            "alsoKnownAs": [format!("at://{handle}")],
            "verificationMethod": [],
            "service": [{
                "id": "#atproto_pds", "type": "AtprotoPersonalDataServer", "serviceEndpoint": pds,
            }],
        });
        lock(&self.world.docs).insert(did.to_owned(), doc);
    }

    /// What getRepoStatus answers for `did` from now on.
    pub fn set_status(&self, did: &str, answer: RepoAnswer) {
        lock(&self.world.statuses).insert(did.to_owned(), answer);
    }

    pub async fn stop(self) {
        self.stop.cancel();
        self.task.await.expect("loopback PLC task");
    }
}

async fn plc_doc(State(world): State<Arc<World>>, Path(did): Path<String>) -> (StatusCode, String) {
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
            json!({"did": did, "active": true}).to_string(),
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

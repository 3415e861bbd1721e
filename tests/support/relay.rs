//! A stand-in relay: the real PDS firehose captured from `cursor=0`, re-served with forged and
//! tampered frames spliced in, as `com.atproto.sync.subscribeRepos` on 127.0.0.1 (frames with
//! `seq > cursor`, like the reference PDS), plus the frame surgery the forgeries are made with.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use futures_util::{SinkExt, StreamExt};
use plyr_repo::{CarLimits, CommitEvent, Frame, RepoBuilder, Write, decode_frame, read_car};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

/// Capturing a few dozen events from a local PDS takes well under a second.
const CAPTURE_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads the PDS firehose from the start until, for every `(did, commit CID)` in `until`, the
/// commit with that CID went by; returns the binary frames in stream order.
pub async fn capture(pds_url: &str, until: &[(String, String)]) -> Result<Vec<Vec<u8>>> {
    let url = format!(
        "{}/xrpc/com.atproto.sync.subscribeRepos?cursor=0",
        pds_url.replacen("http", "ws", 1)
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(&url)
        .await
        .with_context(|| format!("connect {url}"))?;
    let mut frames = Vec::new();
    let mut missing: Vec<&(String, String)> = until.iter().collect();
    let read = async {
        while !missing.is_empty() {
            let message = ws.next().await.context("firehose closed")??;
            let Message::Binary(bytes) = message else {
                continue;
            };
            if let Frame::Commit(event) = decode_frame(&bytes)? {
                let cid = event.commit.to_string();
                missing.retain(|(did, want)| !(*did == event.repo && *want == cid));
            }
            frames.push(bytes.to_vec());
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(CAPTURE_TIMEOUT, read)
        .await
        .context("the PDS firehose did not reach the latest commits")??;
    Ok(frames)
}

#[derive(Serialize)]
struct Header<'a> {
    op: i64,
    t: &'a str,
}

/// Encodes a message frame: the `{op: 1, t}` header, then the body.
fn encode(t: &str, body: &impl Serialize) -> Result<Vec<u8>> {
    let mut out = serde_ipld_dagcbor::to_vec(&Header { op: 1, t }).context("encode header")?;
    out.extend(serde_ipld_dagcbor::to_vec(body).context("encode body")?);
    Ok(out)
}

/// The same frame with `seq` replaced (every known message type carries one).
pub fn renumber(frame: &[u8], seq: i64) -> Result<Vec<u8>> {
    match decode_frame(frame)? {
        Frame::Commit(mut e) => {
            e.seq = seq;
            encode("#commit", &e)
        }
        Frame::Sync(mut e) => {
            e.seq = seq;
            encode("#sync", &e)
        }
        Frame::Identity(mut e) => {
            e.seq = seq;
            encode("#identity", &e)
        }
        Frame::Account(mut e) => {
            e.seq = seq;
            encode("#account", &e)
        }
        other => bail!("no seq to renumber in {other:?}"),
    }
}

/// The `#commit` inside `frame`, if it is one.
pub fn commit_of(frame: &[u8]) -> Option<CommitEvent<'_>> {
    match decode_frame(frame) {
        Ok(Frame::Commit(event)) => Some(event),
        _ => None,
    }
}

/// A correctly built commit for `did` that creates `path`, signed with a key that is not the
/// one in the DID's document.
pub fn foreign_signature(did: &str, path: &str, record: serde_json::Value) -> Result<Vec<u8>> {
    let mut repo = RepoBuilder::new(did, [0x5a; 32]).context("builder key")?;
    let write = Write::Create {
        path: path.to_owned(),
        record,
    };
    Ok(repo.commit(&[write], "2026-01-01T00:00:00.000Z")?)
}

/// The real commit with one op moved to `new_path`: the signed commit and its blocks are
/// untouched, so only checking the ops against the MST can tell.
pub fn ops_off_the_tree(frame: &[u8], new_path: &str) -> Result<Vec<u8>> {
    let mut event = commit_of(frame).context("not a #commit")?;
    let op = event.ops.first_mut().context("a commit without ops")?;
    op.path = new_path.to_owned();
    encode("#commit", &event)
}

/// The real commit with `from` replaced by `to` (same length) inside one of its CAR's blocks:
/// the block's bytes no longer hash to its CID.
pub fn block_not_matching_its_cid(frame: &[u8], from: &str, to: &str) -> Result<Vec<u8>> {
    ensure!(from.len() == to.len(), "same length keeps the CAR framing");
    let mut event = commit_of(frame).context("not a #commit")?;
    // The original parses and hashes correctly: only our edit breaks it.
    read_car(event.blocks, &CarLimits::COMMIT).context("the real CAR")?;
    let mut blocks = event.blocks.to_vec();
    let at = blocks
        .windows(from.len())
        .position(|w| w == from.as_bytes())
        .with_context(|| format!("{from:?} is in no block"))?;
    blocks[at..at + to.len()].copy_from_slice(to.as_bytes());
    event.blocks = &blocks;
    encode("#commit", &event)
}

#[derive(Default)]
struct State {
    frames: Vec<Vec<u8>>,
    /// Query strings of every connection, in order.
    requests: Vec<String>,
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The running stand-in; dropped, it stops accepting.
pub struct ScriptedRelay {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl ScriptedRelay {
    /// Serves `frames`; each must carry a `seq`, increasing.
    pub async fn start(frames: Vec<Vec<u8>>) -> ScriptedRelay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State {
            frames,
            ..State::default()
        }));
        let task = {
            let state = state.clone();
            tokio::spawn(async move {
                let mut connections = tokio::task::JoinSet::new();
                while let Ok((stream, _)) = listener.accept().await {
                    connections.spawn(serve_connection(stream, state.clone()));
                    while connections.try_join_next().is_some() {}
                }
            })
        };
        ScriptedRelay { addr, state, task }
    }

    /// The host URL to give `--relay-url` (the client adds the XRPC path).
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// The query strings of every connection so far.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.state).requests.clone()
    }
}

impl Drop for ScriptedRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn seq_of(frame: &[u8]) -> Option<i64> {
    match decode_frame(frame).ok()? {
        Frame::Commit(e) => Some(e.seq),
        Frame::Sync(e) => Some(e.seq),
        Frame::Identity(e) => Some(e.seq),
        Frame::Account(e) => Some(e.seq),
        _ => None,
    }
}

// The handshake callback's error type is tungstenite's large `ErrorResponse`; not ours to box.
#[allow(clippy::result_large_err)]
async fn serve_connection(stream: tokio::net::TcpStream, state: Arc<Mutex<State>>) {
    let mut query = String::new();
    let mut path = String::new();
    let callback = |request: &Request, response: Response| {
        query = request.uri().query().unwrap_or_default().to_owned();
        path = request.uri().path().to_owned();
        Ok(response)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    let frames = {
        let mut state = lock(&state);
        state.requests.push(format!("{path}?{query}"));
        state.frames.clone()
    };
    if path != "/xrpc/com.atproto.sync.subscribeRepos" {
        let _ = ws.close(None).await;
        return;
    }
    let cursor = url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "cursor")
        .and_then(|(_, v)| v.parse::<i64>().ok());
    for frame in frames {
        if cursor.is_some_and(|c| seq_of(&frame).is_some_and(|s| s <= c)) {
            continue;
        }
        if ws.feed(Message::binary(frame)).await.is_err() {
            return;
        }
    }
    if ws.flush().await.is_err() {
        return;
    }
    // Like a live relay with nothing new: keep the connection until the client leaves.
    while let Some(Ok(_)) = ws.next().await {}
}

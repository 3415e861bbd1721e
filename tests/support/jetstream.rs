//! A scripted Jetstream v1 server on 127.0.0.1: replays a list of frames from the `cursor` the
//! client asks for, can drop the first connections mid-stream, and records every request.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::SinkExt;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

/// One frame of the script. `time_us` orders it for cursor replay (Jetstream sends every event
/// whose `time_us` is at or after the cursor); malformed frames carry the time of their slot.
#[derive(Clone, Debug)]
pub struct Frame {
    pub time_us: i64,
    pub collection: Option<String>,
    pub text: String,
}

/// Most frames copied out of the script per turn. The load bench appends a backlog of 600,000:
/// copying it whole took most of a core for the first second of the run it measures.
const CHUNK: usize = 1024;

#[derive(Default)]
struct State {
    frames: Vec<Frame>,
    /// Query strings of every connection, in order.
    requests: Vec<String>,
    /// Close connection k after sending this many frames (one entry per connection to cut).
    cut_after: Vec<usize>,
}

/// The running server; dropped, it stops accepting.
pub struct ScriptedJetstream {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    appended: Arc<Notify>,
    task: JoinHandle<()>,
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ScriptedJetstream {
    /// Binds 127.0.0.1:0 and starts serving `frames`.
    pub async fn start(frames: Vec<Frame>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State {
            frames,
            ..State::default()
        }));
        let appended = Arc::new(Notify::new());
        let task = {
            let state = state.clone();
            let appended = appended.clone();
            tokio::spawn(async move {
                let mut connections = tokio::task::JoinSet::new();
                while let Ok((stream, _)) = listener.accept().await {
                    let state = state.clone();
                    let appended = appended.clone();
                    connections.spawn(serve_connection(stream, state, appended));
                    while connections.try_join_next().is_some() {}
                }
            })
        };
        Self {
            addr,
            state,
            appended,
            task,
        }
    }

    /// The websocket URL a client should use, path included.
    pub fn url(&self) -> String {
        format!("ws://{}/subscribe", self.addr)
    }

    /// Makes the next connections close after sending `n` frames each (in order given).
    pub fn cut_connections_after(&self, cuts: &[usize]) {
        lock(&self.state).cut_after.extend_from_slice(cuts);
    }

    /// Appends frames; connected clients receive them at once.
    pub fn append(&self, frames: Vec<Frame>) {
        lock(&self.state).frames.extend(frames);
        self.appended.notify_waiters();
    }

    /// The query strings of every connection so far.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.state).requests.clone()
    }
}

impl Drop for ScriptedJetstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn query_param(query: &str, name: &str) -> Vec<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .collect()
}

fn wanted(filters: &[String], collection: Option<&str>) -> bool {
    let Some(collection) = collection else {
        return true; // identity/account events and malformed frames go to everyone
    };
    filters.is_empty()
        || filters.iter().any(|f| match f.strip_suffix(".*") {
            Some(prefix) => collection
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('.')),
            None => f == collection,
        })
}

// The handshake callback's error type is tungstenite's large `ErrorResponse`; not ours to box.
#[allow(clippy::result_large_err)]
async fn serve_connection(
    stream: tokio::net::TcpStream,
    state: Arc<Mutex<State>>,
    appended: Arc<Notify>,
) {
    let mut query = String::new();
    let callback = |request: &Request, response: Response| {
        query = request.uri().query().unwrap_or_default().to_owned();
        Ok(response)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    let (cursor, filters, cut) = {
        let mut state = lock(&state);
        state.requests.push(query.clone());
        let cut = if state.cut_after.is_empty() {
            None
        } else {
            Some(state.cut_after.remove(0))
        };
        let cursor = query_param(&query, "cursor")
            .first()
            .and_then(|c| c.parse::<i64>().ok());
        (cursor, query_param(&query, "wantedCollections"), cut)
    };
    let mut next = 0usize;
    let mut sent = 0usize;
    loop {
        let notified = appended.notified();
        let (batch, more) = {
            let state = lock(&state);
            let end = state.frames.len().min(next + CHUNK);
            let batch = state.frames[next..end].to_vec();
            next = end;
            (batch, end < state.frames.len())
        };
        for frame in batch {
            if cursor.is_some_and(|c| frame.time_us < c)
                || !wanted(&filters, frame.collection.as_deref())
            {
                continue;
            }
            if cut.is_some_and(|n| sent >= n) {
                let _ = ws.close(None).await;
                return;
            }
            if ws.feed(Message::text(frame.text)).await.is_err() {
                return;
            }
            sent += 1;
        }
        if ws.flush().await.is_err() {
            return;
        }
        if cut.is_some_and(|n| sent >= n) {
            let _ = ws.close(None).await;
            return;
        }
        if !more {
            notified.await;
        }
    }
}

//! The subscribeRepos websocket: connects, decodes each frame, drops commits of untracked repos
//! that touch no record of our namespace (before any CAR is read), and forwards the rest in
//! stream order; reconnects forever with capped backoff from the last seq it forwarded.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use plyr_lexicons::Namespace;
use plyr_repo::{AccountEvent, Frame, IdentityEvent, RepoOp, decode_frame};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::fold::{Classified, Item, MALFORMED_EVENT, Skip, UNKNOWN_KIND};
use crate::websocket::{KeepAlive, Received};

/// First reconnect delay; doubles per failed attempt.
const BACKOFF_MIN: Duration = Duration::from_millis(250);
/// Longest reconnect delay: a restarting relay is back within a minute.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A connection that lived this long resets the backoff.
const HEALTHY_AFTER: Duration = Duration::from_secs(10);
/// `FutureCursor` answers in a row before the reader gives the cursor up: one could come from
/// a host behind a load balancer that lags its peers; several mean the seqs started over.
const FUTURE_CURSOR_STRIKES: u32 = 3;
/// Largest websocket message read. Frames over the spec's 5 MB are refused by `decode_frame`
/// as a counted skip; a message over this cap would drop the connection, and the replay would
/// hit it again, so the margin is wide.
const MAX_MESSAGE_BYTES: usize = 16 << 20;

/// One frame for the verify stage, in stream order.
#[derive(Debug)]
pub(super) enum Input {
    /// A `#commit` worth verifying (tracked repo, or a record in our namespace). The frame is
    /// decoded again by the verify worker: 1.2 µs, cheaper than carrying borrowed parts across
    /// tasks.
    Commit { seq: i64, did: String, frame: Bytes },
    /// A `#sync` of a tracked repo.
    Sync { seq: i64, did: String, frame: Bytes },
    /// An `#identity` event.
    Identity(IdentityEvent),
    /// An `#account` event.
    Account(AccountEvent),
    /// Already decided here: a dropped commit (moves the cursor), a malformed frame (counted).
    Done(Classified),
}

/// What the reader needs.
#[derive(Debug, Clone)]
pub(super) struct ReaderConfig {
    /// The relay host.
    pub url: Url,
    /// Our namespace: a commit touching it makes its repo tracked.
    pub namespace: Arc<Namespace>,
    /// Where the first connection starts (`None`: live).
    pub start: Option<i64>,
}

/// Why a connection ended.
enum End {
    /// Shutdown, or the pipeline is gone: stop for good.
    Stop,
    /// The connection failed, closed or sent an error frame: reconnect.
    Lost(String),
    /// The host answered `FutureCursor`: it has no such seq.
    FutureCursor(String),
}

/// Why the reader stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stopped {
    /// Shutdown, or the pipeline went away.
    Done,
    /// The host kept answering `FutureCursor` for our cursor: its seqs started over, and only
    /// a restart without the cursor (and a resync of every repo) can go on.
    FutureCursor,
}

/// The reader's state across connections.
struct Reader {
    config: ReaderConfig,
    /// Repos whose every commit is verified: those in `repo_state` at start, plus every DID
    /// seen with a namespace record since. A superset of what the chain stage tracks (a
    /// commit that then fails verification stays here), so no tracked commit is dropped.
    tracked: HashSet<String>,
    /// The greatest seq forwarded: reconnects resume here (the server replays `seq >
    /// cursor`), and replayed frames at or below it are dropped.
    last_seq: Option<i64>,
    frames: mpsc::Sender<Input>,
}

/// Reads the relay until `shutdown`, until the pipeline stops taking frames, or until the host
/// keeps refusing the cursor as a future one.
pub(super) async fn run(
    config: ReaderConfig,
    tracked: HashSet<String>,
    frames: mpsc::Sender<Input>,
    shutdown: CancellationToken,
) -> Stopped {
    let mut reader = Reader {
        last_seq: config.start,
        config,
        tracked,
        frames,
    };
    let mut backoff = BACKOFF_MIN;
    let mut strikes = 0;
    loop {
        let started = Instant::now();
        let end = match super::subscribe_url(&reader.config.url, reader.last_seq) {
            Err(reason) => End::Lost(reason),
            Ok(url) => reader.connect(&url, &shutdown).await,
        };
        match end {
            End::Stop => return Stopped::Done,
            End::FutureCursor(reason) => {
                strikes += 1;
                tracing::warn!(%reason, cursor = ?reader.last_seq, strikes,
                               "relay refused the cursor as a future one");
                if strikes >= FUTURE_CURSOR_STRIKES {
                    return Stopped::FutureCursor;
                }
            }
            End::Lost(reason) => {
                strikes = 0;
                if started.elapsed() >= HEALTHY_AFTER {
                    backoff = BACKOFF_MIN;
                }
                tracing::warn!(%reason, retry_in = ?backoff, "relay connection lost");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Stopped::Done,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

impl Reader {
    async fn connect(&mut self, url: &Url, shutdown: &CancellationToken) -> End {
        let ws_config = WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE_BYTES))
            .max_frame_size(Some(MAX_MESSAGE_BYTES));
        let connect =
            tokio_tungstenite::connect_async_with_config(url.as_str(), Some(ws_config), true);
        tokio::select! {
            _ = shutdown.cancelled() => End::Stop,
            connected = connect => match connected {
                Ok((ws, _)) => {
                    tracing::info!(%url, "connected to relay");
                    self.read(ws, shutdown).await
                }
                Err(e) => End::Lost(format!("connect: {e}")),
            },
        }
    }

    async fn read<S>(
        &mut self,
        mut ws: tokio_tungstenite::WebSocketStream<S>,
        shutdown: &CancellationToken,
    ) -> End
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let mut keepalive = KeepAlive::new();
        loop {
            let input = match keepalive.next(&mut ws, shutdown).await {
                Received::Stop => return End::Stop,
                Received::Lost(why) => return End::Lost(why),
                Received::Text(_) => Some(malformed("text message on a binary stream")),
                Received::Binary(bytes) => match self.triage(bytes) {
                    Ok(input) => input,
                    Err(end) => return end,
                },
            };
            let Some(input) = input else { continue };
            tokio::select! {
                _ = shutdown.cancelled() => return End::Stop,
                sent = self.frames.send(input) => {
                    if sent.is_err() {
                        return End::Stop;
                    }
                }
            }
        }
    }

    /// Decides what one frame is: `Ok(None)` for nothing to forward, `Err` to drop the
    /// connection (an error frame).
    fn triage(&mut self, bytes: Bytes) -> Result<Option<Input>, End> {
        let frame = match decode_frame(&bytes) {
            Ok(frame) => frame,
            Err(e) => {
                return Ok(Some(Input::Done(skipped(
                    None,
                    Skip::new(e.kind().as_str(), e.to_string()),
                ))));
            }
        };
        let input = match frame {
            Frame::Commit(event) => {
                if !self.advance(event.seq) {
                    return Ok(None);
                }
                let ours = touches_namespace(&self.config.namespace, &event.ops);
                if ours && !self.tracked.contains(&event.repo) {
                    self.tracked.insert(event.repo.clone());
                }
                if self.tracked.contains(&event.repo) {
                    Input::Commit {
                        seq: event.seq,
                        did: event.repo,
                        frame: bytes.clone(),
                    }
                } else {
                    Input::Done(pass(event.seq))
                }
            }
            Frame::Sync(event) => {
                if !self.advance(event.seq) {
                    return Ok(None);
                }
                if self.tracked.contains(&event.did) {
                    Input::Sync {
                        seq: event.seq,
                        did: event.did,
                        frame: bytes.clone(),
                    }
                } else {
                    Input::Done(pass(event.seq))
                }
            }
            Frame::Identity(event) => {
                if !self.advance(event.seq) {
                    return Ok(None);
                }
                Input::Identity(event)
            }
            Frame::Account(event) => {
                if !self.advance(event.seq) {
                    return Ok(None);
                }
                Input::Account(event)
            }
            Frame::Info(info) => {
                // OutdatedCursor: the cursor is older than the window; the host sends the
                // whole window next, and repos whose chain broke get resynced.
                tracing::warn!(name = %info.name, message = ?info.message, "relay info");
                return Ok(None);
            }
            Frame::Error(error) => {
                let reason = format!(
                    "error frame {}: {}",
                    error.error,
                    error.message.unwrap_or_default()
                );
                return Err(match error.error.as_str() {
                    "FutureCursor" => End::FutureCursor(reason),
                    _ => End::Lost(reason),
                });
            }
            Frame::Unknown { op, t } => {
                let skip = Skip::new(UNKNOWN_KIND, format!("op {op} t {t:?}"));
                tracing::debug!(reason = skip.reason, detail = %skip.detail, "skipped frame");
                Input::Done(skipped(None, skip))
            }
        };
        Ok(Some(input))
    }

    /// Records `seq` as forwarded; false for a replayed or non-positive seq (dropped).
    fn advance(&mut self, seq: i64) -> bool {
        if seq <= 0 || self.last_seq.is_some_and(|last| seq <= last) {
            return false;
        }
        self.last_seq = Some(seq);
        true
    }
}

/// Whether any op writes or deletes a record in our namespace.
fn touches_namespace(namespace: &Namespace, ops: &[RepoOp]) -> bool {
    ops.iter().any(|op| {
        op.path
            .split_once('/')
            .is_some_and(|(collection, _)| namespace.kind_of(collection).is_some())
    })
}

/// Only moves the cursor.
pub(super) fn pass(seq: i64) -> Classified {
    Classified {
        time_us: Some(seq),
        item: Item::Cursor,
    }
}

/// A counted skip, logged.
pub(super) fn skipped(seq: Option<i64>, skip: Skip) -> Classified {
    tracing::warn!(reason = skip.reason, detail = %skip.detail, seq, "skipped relay event");
    Classified {
        time_us: seq,
        item: Item::Skip(skip),
    }
}

fn malformed(reason: &str) -> Input {
    Input::Done(skipped(None, Skip::new(MALFORMED_EVENT, reason)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use plyr_repo::Action;

    #[test]
    fn namespace_ops_are_recognised() {
        let ns = Namespace::new("fm.plyr").expect("namespace");
        let op = |path: &str| RepoOp {
            action: Action::Delete,
            path: path.to_owned(),
            cid: None,
            prev: None,
        };
        let cases = [
            (vec![op("app.bsky.feed.post/3k")], false),
            (vec![op("fm.plyr.stg.track/3k")], false),
            (
                vec![op("app.bsky.feed.post/3k"), op("fm.plyr.track/3k")],
                true,
            ),
            (vec![op("fm.plyr.like/3k")], true),
            (vec![op("no-slash")], false),
            (vec![], false),
        ];
        for (ops, want) in cases {
            assert_eq!(touches_namespace(&ns, &ops), want, "{ops:?}");
        }
    }
}

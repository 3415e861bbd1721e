//! The keepalive every websocket source shares (Jetstream, the relay firehose, labelers): a
//! ping of ours every [`PING_INTERVAL`], the connection called lost after [`IDLE_TIMEOUT`]
//! without a frame, control frames skipped (tungstenite answers pings itself).

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::time::{Instant, Interval};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_util::sync::CancellationToken;
use url::Url;

/// How often we ping: keeps NAT and proxy state alive on quiet streams.
const PING_INTERVAL: Duration = Duration::from_secs(20);
/// A connection with no frame (not even a pong) for this long is dead: reconnect.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The next data message of a connection, or why there is none.
pub(crate) enum Received {
    /// A text message.
    Text(Utf8Bytes),
    /// A binary message.
    Binary(Bytes),
    /// Shutdown was asked for.
    Stop,
    /// The connection is gone (closed, failed or idle); the reason is for the log.
    Lost(String),
}

/// One connection's keepalive state.
pub(crate) struct KeepAlive {
    ping: Interval,
    last_frame: Instant,
}

impl KeepAlive {
    /// For a connection that just opened.
    pub(crate) fn new() -> KeepAlive {
        KeepAlive {
            ping: tokio::time::interval_at(Instant::now() + PING_INTERVAL, PING_INTERVAL),
            last_frame: Instant::now(),
        }
    }

    /// Waits for the next text or binary message, pinging as due.
    pub(crate) async fn next<S>(
        &mut self,
        ws: &mut WebSocketStream<S>,
        shutdown: &CancellationToken,
    ) -> Received
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        loop {
            let message = tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Received::Stop,
                _ = tokio::time::sleep_until(self.last_frame + IDLE_TIMEOUT) => {
                    return Received::Lost("no frame within the idle timeout".into());
                }
                _ = self.ping.tick() => {
                    if let Err(e) = ws.send(Message::Ping(Default::default())).await {
                        return Received::Lost(format!("ping: {e}"));
                    }
                    continue;
                }
                message = ws.next() => message,
            };
            self.last_frame = Instant::now();
            match message {
                None => return Received::Lost("stream ended".into()),
                Some(Err(e)) => return Received::Lost(e.to_string()),
                Some(Ok(Message::Close(frame))) => {
                    return Received::Lost(format!("closed: {frame:?}"));
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Text(text))) => return Received::Text(text),
                Some(Ok(Message::Binary(bytes))) => return Received::Binary(bytes),
            }
        }
    }
}

/// The websocket URL of the XRPC subscription `nsid` on `base` (a relay, a labeler): `ws(s)`
/// for `http(s)` or `ws(s)`, the XRPC path after any path `base` has, no other query, and
/// `cursor` when resuming.
pub(crate) fn subscription_url(base: &Url, nsid: &str, cursor: Option<i64>) -> Result<Url, String> {
    let scheme = match base.scheme() {
        "https" | "wss" => "wss",
        "http" | "ws" => "ws",
        other => {
            return Err(format!(
                "scheme {other:?} of {base} is not http(s) or ws(s)"
            ));
        }
    };
    let mut url = base.clone();
    url.set_scheme(scheme)
        .map_err(|()| format!("cannot use scheme {scheme} for {base}"))?;
    let path = format!("{}/xrpc/{nsid}", base.path().trim_end_matches('/'));
    url.set_path(&path);
    url.set_query(None);
    if let Some(cursor) = cursor {
        url.query_pairs_mut()
            .append_pair("cursor", &cursor.to_string());
    }
    Ok(url)
}

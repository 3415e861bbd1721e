//! The Jetstream v1 websocket: builds the `/subscribe` URL, connects, decompresses (zstd with
//! Jetstream's dictionary when asked), decodes and classifies every message and sends it down a
//! bounded channel; reconnects forever with capped backoff, resuming a few seconds before the
//! last committed cursor.

use std::time::Duration;

use plyr_lexicons::Namespace;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::event;
use crate::fold::{self, Classified, Item, MALFORMED_EVENT, Skip};
use crate::websocket::{KeepAlive, Received};

/// How far before the last committed cursor a reconnect resumes, in µs. Jetstream's `time_us`
/// is only roughly ordered across its ingest workers; replays are harmless (folding is by rev).
pub(crate) const REWIND_US: i64 = 5_000_000;

/// First reconnect delay; doubles per failed attempt.
const BACKOFF_MIN: Duration = Duration::from_millis(250);
/// Longest reconnect delay: a restarting Jetstream is back within a minute.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A connection that lived this long resets the backoff.
const HEALTHY_AFTER: Duration = Duration::from_secs(10);
/// Largest message accepted, compressed or not. Records are at most 1 MB of CBOR (a bit more
/// as JSON); the margin matters because a message over the limit drops the connection, and
/// the replay would hit it again.
const MAX_MESSAGE_BYTES: usize = 16 << 20;

/// Jetstream's v1 zstd dictionary (id 1612007021); see `zstd/README.md`.
pub(crate) const ZSTD_DICTIONARY: &[u8] = include_bytes!("../zstd/dictionary");

/// Where and what to subscribe to.
#[derive(Debug, Clone)]
pub struct JetstreamConfig {
    /// The full websocket URL including the path, e.g.
    /// `wss://jetstream2.us-east.bsky.network/subscribe`.
    pub url: Url,
    /// The lexicon namespace to index (`fm.plyr`, `fm.plyr.stg`, ...).
    pub namespace: Namespace,
    /// Ask for zstd-compressed frames (`compress=true`), about half the bandwidth.
    pub compress: bool,
    /// The `consumer_cursor.source` row this consumer resumes from, e.g. `jetstream`.
    pub cursor_source: String,
}

/// The URL of one connection attempt: `wantedCollections=<namespace>.*` and
/// `app.bsky.actor.profile`, the cursor and the
/// compression flag, after any query the configured URL already has.
pub(crate) fn subscribe_url(config: &JetstreamConfig, cursor: Option<i64>) -> Url {
    let mut url = config.url.clone();
    {
        let mut query = url.query_pairs_mut();
        query.append_pair(
            "wantedCollections",
            &format!("{}.*", config.namespace.as_str()),
        );
        // Tracked actors' display names and avatars (the store keeps only known actors').
        query.append_pair("wantedCollections", crate::fold::BSKY_PROFILE);
        if let Some(cursor) = cursor {
            query.append_pair("cursor", &cursor.to_string());
        }
        if config.compress {
            query.append_pair("compress", "true");
        }
    }
    url
}

/// The cursor to resume from: the committed one, else the first event seen this run, rewound.
pub(crate) fn resume_cursor(committed: Option<i64>, first_seen: Option<i64>) -> Option<i64> {
    committed
        .or(first_seen)
        .map(|c| c.saturating_sub(REWIND_US).max(0))
}

/// Why a connection ended.
enum End {
    /// Shutdown was requested or the writer is gone: stop for good.
    Stop,
    /// The connection failed or closed: reconnect.
    Lost(String),
}

/// Reads Jetstream until `shutdown`, sending classified events to `events`. `committed`
/// carries the last cursor the writer committed.
pub(crate) async fn run(
    config: JetstreamConfig,
    committed: watch::Receiver<Option<i64>>,
    events: mpsc::Sender<Classified>,
    shutdown: CancellationToken,
) {
    let mut backoff = BACKOFF_MIN;
    let mut first_seen = None;
    loop {
        let cursor = resume_cursor(*committed.borrow(), first_seen);
        let url = subscribe_url(&config, cursor);
        let started = Instant::now();
        let ws_config = WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE_BYTES))
            .max_frame_size(Some(MAX_MESSAGE_BYTES));
        let connect =
            tokio_tungstenite::connect_async_with_config(url.as_str(), Some(ws_config), true);
        let end = tokio::select! {
            _ = shutdown.cancelled() => End::Stop,
            connected = connect => match connected {
                Ok((ws, _)) => {
                    tracing::info!(%url, "connected to jetstream");
                    read(ws, &config, &events, &mut first_seen, &shutdown).await
                }
                Err(e) => End::Lost(format!("connect: {e}")),
            },
        };
        match end {
            End::Stop => return,
            End::Lost(reason) => {
                if started.elapsed() >= HEALTHY_AFTER {
                    backoff = BACKOFF_MIN;
                }
                tracing::warn!(%reason, retry_in = ?backoff, "jetstream connection lost");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

async fn read<S>(
    mut ws: tokio_tungstenite::WebSocketStream<S>,
    config: &JetstreamConfig,
    events: &mpsc::Sender<Classified>,
    first_seen: &mut Option<i64>,
    shutdown: &CancellationToken,
) -> End
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let dictionary = zstd::dict::DecoderDictionary::copy(ZSTD_DICTIONARY);
    let mut decompressor = if config.compress {
        match zstd::bulk::Decompressor::with_prepared_dictionary(&dictionary) {
            Ok(d) => Some(d),
            Err(e) => return End::Lost(format!("zstd setup: {e}")),
        }
    } else {
        None
    };
    let mut buffer: Vec<u8> = Vec::new();
    let mut keepalive = KeepAlive::new();
    loop {
        let classified = match keepalive.next(&mut ws, shutdown).await {
            Received::Stop => return End::Stop,
            Received::Lost(why) => return End::Lost(why),
            Received::Text(text) => classify(config, text.as_bytes()),
            Received::Binary(bytes) => match decompressor.as_mut() {
                Some(decompressor) => {
                    buffer.clear();
                    buffer.reserve(MAX_MESSAGE_BYTES);
                    match decompressor.decompress_to_buffer(&bytes, &mut buffer) {
                        Ok(_) => classify(config, &buffer),
                        Err(e) => malformed(format!("zstd: {e}")),
                    }
                }
                None => classify(config, &bytes),
            },
        };
        if first_seen.is_none() {
            *first_seen = classified.time_us;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return End::Stop,
            sent = events.send(classified) => {
                if sent.is_err() {
                    return End::Stop;
                }
            }
        }
    }
}

fn classify(config: &JetstreamConfig, bytes: &[u8]) -> Classified {
    fold::classify(&config.namespace, event::decode(bytes))
}

fn malformed(reason: String) -> Classified {
    let skip = Skip::new(MALFORMED_EVENT, reason);
    tracing::warn!(reason = skip.reason, detail = %skip.detail, "skipped event");
    Classified {
        time_us: None,
        item: Item::Skip(skip),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(compress: bool) -> JetstreamConfig {
        JetstreamConfig {
            url: Url::parse("wss://jetstream.example/subscribe").expect("test url"),
            namespace: Namespace::new("fm.plyr").expect("test namespace"),
            compress,
            cursor_source: "jetstream".into(),
        }
    }

    #[test]
    fn builds_subscribe_urls() {
        let cases = [
            (
                false,
                None,
                "wss://jetstream.example/subscribe?wantedCollections=fm.plyr.*&wantedCollections=app.bsky.actor.profile",
            ),
            (
                true,
                Some(1_700_000_000_000_000),
                "wss://jetstream.example/subscribe?wantedCollections=fm.plyr.*&wantedCollections=app.bsky.actor.profile&cursor=1700000000000000&compress=true",
            ),
        ];
        for (compress, cursor, want) in cases {
            assert_eq!(subscribe_url(&config(compress), cursor).as_str(), want);
        }
    }

    #[test]
    fn resumes_before_the_committed_cursor() {
        let cases = [
            (None, None, None),
            (Some(10_000_000), Some(1), Some(5_000_000)),
            (None, Some(7_000_000), Some(2_000_000)),
            (Some(3), None, Some(0)),
        ];
        for (committed, first_seen, want) in cases {
            assert_eq!(resume_cursor(committed, first_seen), want);
        }
    }
}

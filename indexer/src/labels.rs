//! The `com.atproto.label.subscribeLabels` client: follows one labeler (its `#atproto_labeler`
//! endpoint resolved from its DID document), decodes `#labels` and `#info` frames, keeps the
//! labels whose `src` is that labeler and whose signature verifies against its `#atproto_label`
//! key, and stores each frame's labels with the labeler's seq in one transaction; reconnects
//! forever with capped backoff from the last committed seq.
//!
//! A label is signed over its canonical DAG-CBOR without `sig` (spec `label`). The bytes checked
//! are the label map as received minus `sig`, re-encoded, so fields this client does not know
//! still count. A signature that fails is checked once more against a freshly resolved key (the
//! labeler may have rotated it); labels signed by a key the document no longer names are
//! counted skips, like forged ones.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use ipld_core::ipld::Ipld;
use plyr_identity::{Did, Resolver};
use plyr_repo::PublicKey;
use serde::Deserialize;
use serde::de::IgnoredAny;
use sqlx::PgPool;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::IndexerError;
use crate::store::labels as store;
use crate::websocket::{self, KeepAlive, Received};

/// First reconnect delay; doubles per failed attempt.
const BACKOFF_MIN: Duration = Duration::from_millis(250);
/// Longest reconnect delay: a restarting labeler is back within a minute.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A connection that lived this long resets the backoff.
const HEALTHY_AFTER: Duration = Duration::from_secs(10);
/// Largest frame read: the event-stream spec's 5 MB limit.
const MAX_MESSAGE_BYTES: usize = 5 << 20;
/// Longest label value the spec allows, in bytes.
const MAX_VAL_BYTES: usize = 128;

/// Skip reason of a frame that is not a well-formed label stream frame.
pub(crate) const MALFORMED_LABEL_FRAME: &str = "malformed_label_frame";
/// Skip reason of a label whose `src` is not the labeler we subscribed to.
pub(crate) const FOREIGN_LABEL_SRC: &str = "foreign_label_src";
/// Skip reason of a label with a bad subject, value or timestamp.
pub(crate) const INVALID_LABEL: &str = "invalid_label";
/// Skip reason of a label that carries no signature.
pub(crate) const UNSIGNED_LABEL: &str = "unsigned_label";
/// Skip reason of a label whose signature does not verify against the labeler's key.
pub(crate) const BAD_LABEL_SIGNATURE: &str = "bad_label_signature";
/// A failed signature re-resolves the labeler's key at most this often (besides once per
/// connection), so a labeler sending forgeries cannot make us hammer its DID host.
const KEY_REFRESH_EVERY: Duration = Duration::from_secs(60);

/// Which labeler to follow.
#[derive(Debug, Clone)]
pub struct LabelerConfig {
    /// The labeler's DID: its document names the endpoint, and every label must carry it as
    /// `src`.
    pub did: Did,
    /// Resolves the DID document (PLC or did:web).
    pub resolver: Resolver,
}

impl LabelerConfig {
    /// The `consumer_cursor.source` this labeler's seq is stored under.
    pub fn cursor_source(&self) -> String {
        cursor_source(self.did.as_str())
    }
}

/// `labeler:<did>`: the cursor row of a labeler.
pub(crate) fn cursor_source(did: &str) -> String {
    format!("labeler:{did}")
}

/// A label as the labeler sent it (`com.atproto.label.defs#label`), with the bytes it signed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WireLabel {
    pub fields: LabelFields,
    pub sig: Option<Vec<u8>>,
    /// The label's DAG-CBOR without `sig`: what the labeler signed.
    pub unsigned: Vec<u8>,
}

/// The fields of a label other than `sig`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct LabelFields {
    #[serde(default)]
    pub ver: Option<i64>,
    pub src: String,
    pub uri: String,
    #[serde(default)]
    pub cid: Option<String>,
    pub val: String,
    #[serde(default)]
    pub neg: Option<bool>,
    pub cts: String,
    #[serde(default)]
    pub exp: Option<String>,
}

impl WireLabel {
    /// Splits one label map of a `#labels` frame into its fields, its signature and the bytes
    /// that signature covers.
    fn from_map(mut map: BTreeMap<String, Ipld>) -> Result<WireLabel, String> {
        let sig = match map.remove("sig") {
            None | Some(Ipld::Null) => None,
            Some(Ipld::Bytes(sig)) => Some(sig),
            Some(_) => return Err("label sig is not bytes".into()),
        };
        let unsigned = serde_ipld_dagcbor::to_vec(&map)
            .map_err(|e| format!("cannot re-encode a label: {e}"))?;
        let fields = ipld_core::serde::from_ipld(Ipld::Map(map))
            .map_err(|e| format!("label fields: {e}"))?;
        Ok(WireLabel {
            fields,
            sig,
            unsigned,
        })
    }
}

/// A checked label, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Label {
    pub src: String,
    pub uri: String,
    pub val: String,
    pub cid: Option<String>,
    pub neg: bool,
    pub cts: DateTime<Utc>,
    pub exp: Option<DateTime<Utc>>,
    pub ver: Option<i64>,
    pub sig: Option<Vec<u8>>,
}

/// One decoded frame of the label stream.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum LabelFrame {
    /// `#labels`: labels at `seq`.
    Labels { seq: i64, labels: Vec<WireLabel> },
    /// `#info` (e.g. `OutdatedCursor`).
    Info { name: String },
    /// An error frame; the stream closes after it.
    Error { error: String },
    /// A type this client does not know: ignored (spec `event-stream`).
    Unknown,
}

#[derive(Deserialize)]
struct Header {
    op: i64,
    #[serde(default)]
    t: Option<String>,
}

#[derive(Deserialize)]
struct LabelsBody {
    seq: i64,
    labels: Vec<BTreeMap<String, Ipld>>,
}

#[derive(Deserialize)]
struct InfoBody {
    name: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
}

/// A frame that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("malformed label frame: {0}")]
pub(crate) struct FrameError(String);

/// Decodes one binary frame: a DAG-CBOR header `{op, t}`, then the body.
pub(crate) fn decode(bytes: &[u8]) -> Result<LabelFrame, FrameError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(FrameError(format!("{} bytes", bytes.len())));
    }
    let mut de = serde_ipld_dagcbor::de::Deserializer::from_slice(bytes);
    let header = Header::deserialize(&mut de).map_err(|e| FrameError(format!("header: {e}")))?;
    let body_err = |e: serde_ipld_dagcbor::DecodeError<std::convert::Infallible>| {
        FrameError(format!("body: {e}"))
    };
    let frame = match (header.op, header.t.as_deref()) {
        (1, Some("#labels")) => {
            let body = LabelsBody::deserialize(&mut de).map_err(body_err)?;
            let labels = body
                .labels
                .into_iter()
                .map(WireLabel::from_map)
                .collect::<Result<_, _>>()
                .map_err(|e| FrameError(format!("body: {e}")))?;
            LabelFrame::Labels {
                seq: body.seq,
                labels,
            }
        }
        (1, Some("#info")) => LabelFrame::Info {
            name: InfoBody::deserialize(&mut de).map_err(body_err)?.name,
        },
        (-1, _) => LabelFrame::Error {
            error: ErrorBody::deserialize(&mut de).map_err(body_err)?.error,
        },
        _ => {
            IgnoredAny::deserialize(&mut de).map_err(body_err)?;
            LabelFrame::Unknown
        }
    };
    de.end()
        .map_err(|e| FrameError(format!("after body: {e}")))?;
    Ok(frame)
}

/// Checks a label from the stream of labeler `labeler`, signed with `key`: `Err` names the
/// skip reason.
pub(crate) fn check(
    labeler: &str,
    key: &PublicKey,
    wire: &WireLabel,
) -> Result<Label, &'static str> {
    let fields = &wire.fields;
    if fields.src != labeler {
        return Err(FOREIGN_LABEL_SRC);
    }
    let subject_ok = (fields.uri.starts_with("at://") || fields.uri.starts_with("did:"))
        && fields.uri.len() <= 8192;
    if !subject_ok || fields.val.is_empty() || fields.val.len() > MAX_VAL_BYTES {
        return Err(INVALID_LABEL);
    }
    let cts = timestamp(&fields.cts).ok_or(INVALID_LABEL)?;
    let exp = match fields.exp.as_deref() {
        None => None,
        Some(exp) => Some(timestamp(exp).ok_or(INVALID_LABEL)?),
    };
    let sig = wire.sig.as_deref().ok_or(UNSIGNED_LABEL)?;
    key.verify(&wire.unsigned, sig)
        .map_err(|_| BAD_LABEL_SIGNATURE)?;
    Ok(Label {
        src: fields.src.clone(),
        uri: fields.uri.clone(),
        val: fields.val.clone(),
        cid: fields.cid.clone(),
        neg: fields.neg.unwrap_or(false),
        cts,
        exp,
        ver: fields.ver,
        sig: Some(sig.to_vec()),
    })
}

fn timestamp(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The labels of one frame, checked, one per (src, uri, val): the newest by `cts` wins (a
/// later one in the frame on a tie), as the table keeps them. Skips by reason beside them.
pub(crate) fn prepare(
    labeler: &str,
    key: &PublicKey,
    wire: &[WireLabel],
) -> (Vec<Label>, HashMap<&'static str, i64>) {
    let mut skips: HashMap<&'static str, i64> = HashMap::new();
    let mut newest: HashMap<(String, String, String), Label> = HashMap::new();
    for label in wire {
        match check(labeler, key, label) {
            Err(reason) => *skips.entry(reason).or_default() += 1,
            Ok(label) => {
                let key = (label.src.clone(), label.uri.clone(), label.val.clone());
                match newest.get(&key) {
                    Some(kept) if kept.cts > label.cts => {}
                    _ => {
                        newest.insert(key, label);
                    }
                }
            }
        }
    }
    (newest.into_values().collect(), skips)
}

/// The websocket URL of `endpoint`'s subscribeLabels, from `cursor` when there is one.
pub(crate) fn subscribe_url(endpoint: &Url, cursor: Option<i64>) -> Result<Url, String> {
    websocket::subscription_url(endpoint, "com.atproto.label.subscribeLabels", cursor)
}

/// Why a connection ended.
enum End {
    /// Shutdown: stop for good.
    Stop,
    /// Resolution, connection or a transient database failure: reconnect.
    Lost(String),
    /// Postgres refused a write for good.
    Failed(crate::StoreError),
    /// The labeler answered `FutureCursor`: its seqs started over.
    FutureCursor,
}

/// Follows `config`'s labeler into `pool` until `shutdown`, resuming from the seq stored under
/// `labeler:<did>` (from the start, `cursor=0`, the first time: a labeler's whole history is
/// small and every label in it may still be in force).
pub async fn run_labeler(
    pool: PgPool,
    config: LabelerConfig,
    shutdown: CancellationToken,
) -> Result<(), IndexerError> {
    let source = config.cursor_source();
    let mut cursor = crate::store::last_cursor(&pool, &source).await?;
    tracing::info!(labeler = %config.did, ?cursor, "labeler subscription starting");
    let mut backoff = BACKOFF_MIN;
    loop {
        let started = Instant::now();
        let end = connect(&pool, &config, &source, &mut cursor, &shutdown).await;
        match end {
            End::Stop => return Ok(()),
            End::Failed(e) => return Err(IndexerError::Store(e)),
            End::FutureCursor => {
                // Its history is small and replaying it is idempotent (the newest label per
                // key wins): start over from 0 rather than wait for seqs that may never come.
                tracing::warn!(labeler = %config.did, ?cursor,
                    "labeler refused our cursor as a future one: reading its history again");
                match crate::store::forget_cursor(&pool, &source).await {
                    Ok(()) => cursor = None,
                    // The next connection is refused again and retries this.
                    Err(e) if e.is_transient() => {
                        tracing::warn!(error = %e, "could not forget the labeler cursor");
                    }
                    Err(e) => return Err(IndexerError::Store(e)),
                }
            }
            End::Lost(reason) => {
                if started.elapsed() >= HEALTHY_AFTER {
                    backoff = BACKOFF_MIN;
                }
                tracing::warn!(labeler = %config.did, %reason, retry_in = ?backoff,
                    "labeler connection lost");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

async fn connect(
    pool: &PgPool,
    config: &LabelerConfig,
    source: &str,
    cursor: &mut Option<i64>,
    shutdown: &CancellationToken,
) -> End {
    // Resolved on every connection: a labeler that moved is found at its new endpoint.
    let doc = tokio::select! {
        _ = shutdown.cancelled() => return End::Stop,
        doc = config.resolver.resolve_did(&config.did) => doc,
    };
    let doc = match doc {
        Err(e) => return End::Lost(format!("resolving the labeler: {e}")),
        Ok(doc) => doc,
    };
    // Without its endpoint or its key nothing can be read or checked: wait for a document that
    // names both, fetched afresh on the next try.
    let found = doc
        .service_endpoint("atproto_labeler")
        .ok_or_else(|| "no #atproto_labeler service in its document".to_owned())
        .and_then(|endpoint| {
            let key = doc
                .label_key()
                .map_err(|e| format!("the labeler's label key: {e}"))?;
            Ok((endpoint, LabelKey::new(key)))
        });
    let (endpoint, key) = match found {
        Ok(found) => found,
        Err(reason) => {
            config.resolver.invalidate(&config.did).await;
            return End::Lost(reason);
        }
    };
    let url = match subscribe_url(&endpoint, Some(cursor.unwrap_or(0))) {
        Ok(url) => url,
        Err(reason) => return End::Lost(reason),
    };
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES));
    let connect = tokio_tungstenite::connect_async_with_config(url.as_str(), Some(ws_config), true);
    let ws = tokio::select! {
        _ = shutdown.cancelled() => return End::Stop,
        connected = connect => match connected {
            Ok((ws, _)) => ws,
            Err(e) => return End::Lost(format!("connect: {e}")),
        },
    };
    tracing::info!(labeler = %config.did, %url, "connected to labeler");
    read(pool, config, source, cursor, key, ws, shutdown).await
}

/// The labeler's `#atproto_label` key as last resolved.
struct LabelKey {
    key: PublicKey,
    resolved: Instant,
    /// Whether this connection has re-resolved it yet.
    refreshed: bool,
}

impl LabelKey {
    fn new(key: PublicKey) -> LabelKey {
        LabelKey {
            key,
            resolved: Instant::now(),
            refreshed: false,
        }
    }

    /// Whether a failed signature may re-resolve the key now: once per connection, then at
    /// most every [`KEY_REFRESH_EVERY`].
    fn may_refresh(&self) -> bool {
        !self.refreshed || self.resolved.elapsed() >= KEY_REFRESH_EVERY
    }

    /// Re-resolves the key past the resolver's cache; true if it changed.
    async fn refresh(&mut self, config: &LabelerConfig) -> Result<bool, String> {
        self.refreshed = true;
        self.resolved = Instant::now();
        let doc = config
            .resolver
            .refresh_did(&config.did)
            .await
            .map_err(|e| format!("re-resolving the labeler: {e}"))?;
        let key = doc
            .label_key()
            .map_err(|e| format!("the labeler's label key: {e}"))?;
        let changed = key != self.key;
        if changed {
            tracing::info!(labeler = %config.did, key = %key.to_did_key(), "labeler key rotated");
            self.key = key;
        }
        Ok(changed)
    }
}

async fn read<S>(
    pool: &PgPool,
    config: &LabelerConfig,
    source: &str,
    cursor: &mut Option<i64>,
    mut key: LabelKey,
    mut ws: tokio_tungstenite::WebSocketStream<S>,
    shutdown: &CancellationToken,
) -> End
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let labeler = config.did.as_str();
    let mut keepalive = KeepAlive::new();
    loop {
        let bytes = match keepalive.next(&mut ws, shutdown).await {
            Received::Stop => return End::Stop,
            Received::Lost(why) => return End::Lost(why),
            Received::Binary(bytes) => bytes,
            Received::Text(_) => {
                if let Err(end) = count_malformed(pool, "text message on a binary stream").await {
                    return end;
                }
                continue;
            }
        };
        let frame = match decode(&bytes) {
            Ok(frame) => frame,
            Err(e) => {
                if let Err(end) = count_malformed(pool, &e.to_string()).await {
                    return end;
                }
                continue;
            }
        };
        match frame {
            LabelFrame::Labels { seq, labels } => {
                // A reconnect replays from the stored seq; anything at or below it is stored.
                if cursor.is_some_and(|at| seq <= at) {
                    continue;
                }
                let (mut checked, mut skips) = prepare(labeler, &key.key, &labels);
                if skips.contains_key(BAD_LABEL_SIGNATURE) && key.may_refresh() {
                    let refreshed = tokio::select! {
                        _ = shutdown.cancelled() => return End::Stop,
                        refreshed = key.refresh(config) => refreshed,
                    };
                    match refreshed {
                        Ok(true) => (checked, skips) = prepare(labeler, &key.key, &labels),
                        Ok(false) => {}
                        // Unsure whether the key changed: keep the frame for a later try.
                        Err(reason) => return End::Lost(reason),
                    }
                }
                let labels = checked;
                match store::apply_labels(pool, source, seq, &labels, &skips).await {
                    Ok(()) => *cursor = Some(seq),
                    Err(e) if e.is_transient() => return End::Lost(format!("{:#}", e)),
                    Err(e) => return End::Failed(e),
                }
            }
            LabelFrame::Info { name } => {
                tracing::info!(%labeler, %name, "labeler info");
            }
            LabelFrame::Error { error } if error == "FutureCursor" => return End::FutureCursor,
            LabelFrame::Error { error } => {
                return End::Lost(format!("error frame: {error}"));
            }
            LabelFrame::Unknown => {}
        }
    }
}

async fn count_malformed(pool: &PgPool, detail: &str) -> Result<(), End> {
    tracing::warn!(%detail, "malformed label frame");
    match store::count_skip(pool, MALFORMED_LABEL_FRAME, detail).await {
        Ok(()) => Ok(()),
        Err(e) if e.is_transient() => Err(End::Lost(format!("{e:#}"))),
        Err(e) => Err(End::Failed(e)),
    }
}

#[cfg(test)]
mod tests;

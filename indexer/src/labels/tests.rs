//! The label stream client against a scripted labeler (a websocket server sending DAG-CBOR
//! frames) whose endpoint is found through a loopback PLC directory.

use std::sync::{Arc, Mutex};

use futures_util::SinkExt;
use plyr_identity::Did;
use plyr_repo::{Signer, parse_did_key};
use serde::Serialize;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response as WsResponse};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::loopback::Loopback;
use crate::testing::{lock, wait_for};

const LABELER: &str = "did:plc:labeler2ggjmksahdcvelwfy";
const OTHER: &str = "did:plc:other2ggjmksahdcvelwfyzu";
const TRACK: &str = "at://did:plc:alice2ggjmksahdcvelwfyzu/fm.plyr.track/3kabc";

/// The test labeler's key: its document's `#atproto_label`, and what `labels_frame` signs with.
fn labeler_key() -> Signer {
    Signer::new([0x42; 32]).expect("key")
}

/// A key the labeler's document does not name.
fn other_key() -> Signer {
    Signer::new([0x43; 32]).expect("key")
}

#[derive(Serialize)]
struct TestHeader<'a> {
    op: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    t: Option<&'a str>,
}

#[derive(Serialize, Clone)]
struct TestLabel {
    ver: i64,
    src: String,
    uri: String,
    val: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    neg: bool,
    cts: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sig: Option<serde_bytes::ByteBuf>,
}

impl TestLabel {
    /// Signed as a labeler signs: over the DAG-CBOR of the label without `sig`.
    fn signed_by(self, key: &Signer) -> TestLabel {
        let unsigned = TestLabel { sig: None, ..self };
        let bytes = serde_ipld_dagcbor::to_vec(&unsigned).expect("label encodes");
        TestLabel {
            sig: Some(serde_bytes::ByteBuf::from(key.sign(&bytes).to_vec())),
            ..unsigned
        }
    }
}

fn label(src: &str, uri: &str, val: &str, cts: &str) -> TestLabel {
    TestLabel {
        ver: 1,
        src: src.to_owned(),
        uri: uri.to_owned(),
        val: val.to_owned(),
        neg: false,
        cts: cts.to_owned(),
        exp: None,
        sig: None,
    }
}

fn encode(op: i64, t: Option<&str>, body: &impl Serialize) -> Vec<u8> {
    let mut out = serde_ipld_dagcbor::to_vec(&TestHeader { op, t }).expect("header");
    out.extend(serde_ipld_dagcbor::to_vec(body).expect("body"));
    out
}

/// A `#labels` frame whose unsigned labels are signed with [`labeler_key`].
fn labels_frame(seq: i64, labels: &[TestLabel]) -> Vec<u8> {
    let key = labeler_key();
    let signed: Vec<TestLabel> = labels
        .iter()
        .map(|l| match l.sig {
            Some(_) => l.clone(),
            None => l.clone().signed_by(&key),
        })
        .collect();
    raw_labels_frame(seq, &signed)
}

/// A `#labels` frame with the labels as they are (unsigned ones stay unsigned).
fn raw_labels_frame(seq: i64, labels: &[TestLabel]) -> Vec<u8> {
    #[derive(Serialize)]
    struct Body<'a> {
        seq: i64,
        labels: &'a [TestLabel],
    }
    encode(1, Some("#labels"), &Body { seq, labels })
}

/// The one label of a `#labels` frame.
fn wire(frame: &[u8]) -> WireLabel {
    match decode(frame).expect("decodes") {
        LabelFrame::Labels { mut labels, .. } if labels.len() == 1 => labels.remove(0),
        other => panic!("{other:?}"),
    }
}

fn info_frame(name: &str) -> Vec<u8> {
    #[derive(Serialize)]
    struct Body<'a> {
        name: &'a str,
    }
    encode(1, Some("#info"), &Body { name })
}

// ---- pure parts

#[test]
fn frames_decode() {
    let l = label(LABELER, TRACK, "!takedown", "2026-01-01T00:00:00.000Z");
    match decode(&labels_frame(5, &[l])).expect("labels") {
        LabelFrame::Labels { seq, labels } => {
            assert_eq!(seq, 5);
            assert_eq!(labels.len(), 1);
            assert_eq!(labels[0].fields.val, "!takedown");
            assert_eq!(labels[0].sig.as_ref().map(|s| s.len()), Some(64));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        decode(&info_frame("OutdatedCursor")).expect("info"),
        LabelFrame::Info {
            name: "OutdatedCursor".into()
        }
    );
    #[derive(Serialize)]
    struct Err<'a> {
        error: &'a str,
    }
    assert_eq!(
        decode(&encode(
            -1,
            None,
            &Err {
                error: "FutureCursor"
            }
        ))
        .expect("error"),
        LabelFrame::Error {
            error: "FutureCursor".into()
        }
    );
    assert_eq!(
        decode(&encode(1, Some("#future"), &Err { error: "x" })).expect("unknown"),
        LabelFrame::Unknown
    );
    // Garbage, a truncated frame, trailing bytes, a body of the wrong shape.
    let mut trailing = info_frame("x");
    trailing.push(0);
    let full = labels_frame(1, &[]);
    for bad in [
        b"\xff\x00".to_vec(),
        full[..full.len() - 1].to_vec(),
        trailing,
        encode(1, Some("#labels"), &Err { error: "x" }),
    ] {
        assert!(decode(&bad).is_err(), "{bad:?}");
    }
}

#[test]
fn labels_are_checked() {
    let key = labeler_key().public_key();
    let good = |l: TestLabel| wire(&labels_frame(1, &[l]));
    let base = label(LABELER, TRACK, "porn", "2026-01-01T00:00:00Z");
    let ok = check(LABELER, &key, &good(base.clone())).expect("valid");
    assert!(!ok.neg);
    assert_eq!(ok.cts.to_rfc3339(), "2026-01-01T00:00:00+00:00");
    assert_eq!(ok.sig.map(|s| s.len()), Some(64), "the signature is kept");
    let cases: Vec<(TestLabel, &str)> = vec![
        (
            label(OTHER, TRACK, "porn", "2026-01-01T00:00:00Z"),
            FOREIGN_LABEL_SRC,
        ),
        (
            label(LABELER, "https://x", "porn", "2026-01-01T00:00:00Z"),
            INVALID_LABEL,
        ),
        (
            label(LABELER, TRACK, "", "2026-01-01T00:00:00Z"),
            INVALID_LABEL,
        ),
        (
            label(LABELER, TRACK, &"x".repeat(129), "2026-01-01T00:00:00Z"),
            INVALID_LABEL,
        ),
        (label(LABELER, TRACK, "porn", "yesterday"), INVALID_LABEL),
        (
            TestLabel {
                exp: Some("soon".into()),
                ..base.clone()
            },
            INVALID_LABEL,
        ),
    ];
    for (l, reason) in cases {
        assert_eq!(check(LABELER, &key, &good(l)).map(|_| ()), Err(reason));
    }
    // Signatures: none, another key's, one over other bytes, not 64 bytes.
    let forged = |sig: Vec<u8>| TestLabel {
        sig: Some(serde_bytes::ByteBuf::from(sig)),
        ..base.clone()
    };
    let other = base.clone().signed_by(&other_key());
    let moved = TestLabel {
        val: "!takedown".into(),
        ..base.clone().signed_by(&labeler_key())
    };
    let sig_cases = [
        (base.clone(), UNSIGNED_LABEL),
        (other, BAD_LABEL_SIGNATURE),
        (moved, BAD_LABEL_SIGNATURE),
        (forged(vec![7; 64]), BAD_LABEL_SIGNATURE),
        (forged(vec![7; 3]), BAD_LABEL_SIGNATURE),
    ];
    for (l, reason) in sig_cases {
        let got = check(LABELER, &key, &wire(&raw_labels_frame(1, &[l])));
        assert_eq!(got.map(|_| ()), Err(reason));
    }
}

/// Frames and signatures made by the reference implementation's own encoder and keys
/// (`tests/pds/label-vectors.mjs`), so the bytes checked here are not this crate's.
#[test]
fn reference_signed_labels_verify() {
    #[derive(serde::Deserialize)]
    struct Vectors {
        keys: HashMap<String, String>,
        cases: Vec<Case>,
    }
    #[derive(serde::Deserialize)]
    struct Case {
        name: String,
        expect: String,
        labeler: String,
        frame: String,
    }
    let vectors: Vectors =
        serde_json::from_str(include_str!("atproto-vectors.json")).expect("vectors parse");
    assert!(vectors.cases.len() >= 10);
    for case in vectors.cases {
        let key = parse_did_key(&vectors.keys[&case.labeler]).expect("did:key");
        let frame: Vec<u8> = (0..case.frame.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&case.frame[i..i + 2], 16).expect("hex"))
            .collect();
        let got = match check(&case.labeler, &key, &wire(&frame)) {
            Ok(_) => "ok",
            Err(reason) => reason,
        };
        assert_eq!(got, case.expect, "{}", case.name);
    }
}

#[test]
fn one_label_per_key_newest_wins() {
    let wire = |l: TestLabel| wire(&labels_frame(1, &[l]));
    let newer = TestLabel {
        neg: true,
        ..label(LABELER, TRACK, "!hide", "2026-01-02T00:00:00Z")
    };
    let older = label(LABELER, TRACK, "!hide", "2026-01-01T00:00:00Z");
    let (labels, skips) = prepare(
        LABELER,
        &labeler_key().public_key(),
        &[
            wire(newer),
            wire(older),
            wire(label(OTHER, TRACK, "!hide", "2026-01-01T00:00:00Z")),
        ],
    );
    assert_eq!(labels.len(), 1);
    assert!(
        labels[0].neg,
        "the newer negation wins over the older label after it"
    );
    assert_eq!(skips.get(FOREIGN_LABEL_SRC), Some(&1));
}

#[test]
fn subscribe_urls() {
    let url = |s: &str, c| subscribe_url(&Url::parse(s).expect("url"), c);
    assert_eq!(
        url("https://mod.example.com", Some(0))
            .expect("https")
            .as_str(),
        "wss://mod.example.com/xrpc/com.atproto.label.subscribeLabels?cursor=0"
    );
    assert_eq!(
        url("http://127.0.0.1:7/base/", Some(9))
            .expect("http")
            .as_str(),
        "ws://127.0.0.1:7/base/xrpc/com.atproto.label.subscribeLabels?cursor=9"
    );
    assert!(url("ftp://x", None).is_err());
}

// ---- a scripted labeler

struct Labeler {
    endpoint: String,
    log: watch::Sender<Vec<(i64, Vec<u8>)>>,
    /// Bumped to drop every connection.
    kick: watch::Sender<u64>,
    /// The `cursor` each connection asked for, in order.
    cursors: Arc<Mutex<Vec<Option<i64>>>>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Labeler {
    async fn start() -> Labeler {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let log = watch::Sender::new(Vec::new());
        let kick = watch::Sender::new(0);
        let cursors = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let task = tokio::spawn(accept_loop(
            listener,
            log.clone(),
            kick.clone(),
            Arc::clone(&cursors),
            stop.clone(),
        ));
        Labeler {
            endpoint,
            log,
            kick,
            cursors,
            stop,
            task,
        }
    }

    /// Appends a frame the server sends to every connection whose cursor is below `seq`.
    fn push(&self, seq: i64, frame: Vec<u8>) {
        self.log.send_modify(|log| log.push((seq, frame)));
    }

    fn kick(&self) {
        self.kick.send_modify(|n| *n += 1);
    }

    /// The labeler starts its seqs over (a rebuilt labeler): its log is gone.
    fn start_over(&self) {
        self.log.send_modify(Vec::clear);
    }

    fn cursors(&self) -> Vec<Option<i64>> {
        lock(&self.cursors).clone()
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task.await.expect("labeler task");
    }
}

async fn accept_loop(
    listener: TcpListener,
    log: watch::Sender<Vec<(i64, Vec<u8>)>>,
    kick: watch::Sender<u64>,
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
        let (mut log, mut kick, cursors, stop) = (
            log.subscribe(),
            kick.subscribe(),
            Arc::clone(&cursors),
            stop.clone(),
        );
        connections.spawn(async move {
            let mut asked = (String::new(), None);
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
            let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
                return;
            };
            assert_eq!(asked.0, "/xrpc/com.atproto.label.subscribeLabels");
            lock(&cursors).push(asked.1);
            kick.borrow_and_update();
            let last = log.borrow().last().map_or(0, |(seq, _)| *seq);
            if asked.1.is_some_and(|cursor| cursor > last) {
                #[derive(Serialize)]
                struct Error<'a> {
                    error: &'a str,
                }
                let frame = encode(
                    -1,
                    None,
                    &Error {
                        error: "FutureCursor",
                    },
                );
                let _ = ws.send(Message::Binary(frame.into())).await;
                let _ = ws.close(None).await;
                return;
            }
            let mut sent = asked.1.unwrap_or(0);
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
                    _ = stop.cancelled() => return,
                    changed = log.changed() => if changed.is_err() { return },
                    _ = kick.changed() => {
                        let _ = ws.close(None).await;
                        return;
                    }
                }
            }
        });
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}

struct Running {
    stop: CancellationToken,
    task: JoinHandle<Result<(), IndexerError>>,
}

impl Running {
    fn start(pool: &PgPool, plc: &Loopback) -> Running {
        let config = LabelerConfig {
            did: Did::new(LABELER).expect("did"),
            resolver: plc.resolver(),
        };
        let stop = CancellationToken::new();
        let task = tokio::spawn(run_labeler(pool.clone(), config, stop.clone()));
        Running { stop, task }
    }

    async fn stop(self) {
        self.stop.cancel();
        let result = self.task.await.expect("labeler client task");
        assert!(
            matches!(result, Ok(())),
            "client stopped with {:?}",
            result.err()
        );
    }
}

/// A loopback PLC and a scripted labeler whose document names its endpoint and
/// [`labeler_key`].
async fn published_labeler() -> (Loopback, Labeler) {
    let plc = Loopback::start().await;
    let labeler = Labeler::start().await;
    plc.set_labeler_doc(
        LABELER,
        &labeler.endpoint,
        Some(&labeler_key().public_key()),
    );
    (plc, labeler)
}

async fn stop_all(client: Running, labeler: Labeler, plc: Loopback) {
    client.stop().await;
    labeler.stop().await;
    plc.stop().await;
}

/// Publishes the labeler's document (endpoint and key), then waits for its seq-1 `!hide` of
/// `TRACK` to be stored and in force, and stops everything.
async fn publish_and_see_the_hide(pool: &PgPool, client: Running, labeler: Labeler, plc: Loopback) {
    plc.set_labeler_doc(
        LABELER,
        &labeler.endpoint,
        Some(&labeler_key().public_key()),
    );
    wait_for("seq 1", || async { cursor(pool).await == Some(1) }).await;
    assert_eq!(hidden(pool).await, vec![TRACK.to_owned()]);
    stop_all(client, labeler, plc).await;
}

async fn cursor(pool: &PgPool) -> Option<i64> {
    crate::store::last_cursor(pool, &cursor_source(LABELER))
        .await
        .expect("cursor")
}

/// (uri, val, neg) of every stored label.
async fn stored(pool: &PgPool) -> Vec<(String, String, bool)> {
    sqlx::query_as("select uri, val, neg from label order by uri, val")
        .fetch_all(pool)
        .await
        .expect("labels")
}

async fn skips(pool: &PgPool, reason: &str) -> i64 {
    sqlx::query_scalar("select count from indexer_skip where reason = $1")
        .bind(reason)
        .fetch_optional(pool)
        .await
        .expect("skips")
        .unwrap_or(0)
}

/// URIs the `hidden_subject` view hides now.
async fn hidden(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("select subject from hidden_subject order by subject")
        .fetch_all(pool)
        .await
        .expect("hidden")
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn labels_ingested_with_cursor_and_resumed_after_reconnect(pool: PgPool) {
    let (plc, labeler) = published_labeler().await;
    labeler.push(
        1,
        labels_frame(
            1,
            &[
                label(LABELER, TRACK, "!takedown", "2026-01-01T00:00:00Z"),
                label(OTHER, TRACK, "!hide", "2026-01-01T00:00:00Z"),
            ],
        ),
    );
    labeler.push(2, info_frame("OutdatedCursor"));
    labeler.push(3, b"\x00not cbor".to_vec());
    labeler.push(
        4,
        labels_frame(
            4,
            &[label(
                LABELER,
                "did:plc:bob2ggjmksahdcvelwfyzuaa",
                "!suspend",
                "2026-01-01T00:00:00Z",
            )],
        ),
    );
    let client = Running::start(&pool, &plc);
    wait_for("seq 4", || async { cursor(&pool).await == Some(4) }).await;
    assert_eq!(
        stored(&pool).await,
        vec![
            (TRACK.to_owned(), "!takedown".to_owned(), false),
            (
                "did:plc:bob2ggjmksahdcvelwfyzuaa".to_owned(),
                "!suspend".to_owned(),
                false
            ),
        ]
        .into_iter()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>()
    );
    assert_eq!(
        skips(&pool, FOREIGN_LABEL_SRC).await,
        1,
        "the other labeler's label"
    );
    assert_eq!(skips(&pool, MALFORMED_LABEL_FRAME).await, 1);
    // The stream drops; the client comes back from the stored seq, not from the start.
    labeler.kick();
    labeler.push(
        5,
        labels_frame(5, &[label(LABELER, TRACK, "porn", "2026-01-01T00:00:01Z")]),
    );
    wait_for("seq 5", || async { cursor(&pool).await == Some(5) }).await;
    assert_eq!(
        labeler.cursors()[0],
        Some(0),
        "a first subscription starts from 0"
    );
    assert!(
        labeler.cursors()[1..].iter().all(|c| *c >= Some(4)),
        "reconnects resume from the stored seq: {:?}",
        labeler.cursors()
    );
    client.stop().await;
    // A restarted client resumes from the stored cursor too.
    let client = Running::start(&pool, &plc);
    let connections = labeler.cursors().len();
    wait_for("a new connection", || async {
        labeler.cursors().len() > connections
    })
    .await;
    assert_eq!(labeler.cursors().last().copied().flatten(), Some(5));
    client.stop().await;
    assert_eq!(
        hidden(&pool).await,
        vec![
            TRACK.to_owned(),
            "did:plc:bob2ggjmksahdcvelwfyzuaa".to_owned()
        ]
    );
    labeler.stop().await;
    plc.stop().await;
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn negation_and_expiry_remove_labels(pool: PgPool) {
    let (plc, labeler) = published_labeler().await;
    let other_track = "at://did:plc:alice2ggjmksahdcvelwfyzu/fm.plyr.track/3kdef";
    labeler.push(
        1,
        labels_frame(
            1,
            &[
                label(LABELER, TRACK, "!takedown", "2026-01-01T00:00:00Z"),
                TestLabel {
                    exp: Some("2020-01-01T00:00:00Z".into()),
                    ..label(LABELER, other_track, "!takedown", "2019-01-01T00:00:00Z")
                },
            ],
        ),
    );
    let client = Running::start(&pool, &plc);
    wait_for("seq 1", || async { cursor(&pool).await == Some(1) }).await;
    assert_eq!(
        hidden(&pool).await,
        vec![TRACK.to_owned()],
        "expired label ignored"
    );
    // A negation older than the label changes nothing; a later one removes it.
    labeler.push(
        2,
        labels_frame(
            2,
            &[TestLabel {
                neg: true,
                ..label(LABELER, TRACK, "!takedown", "2025-12-31T00:00:00Z")
            }],
        ),
    );
    wait_for("seq 2", || async { cursor(&pool).await == Some(2) }).await;
    assert_eq!(hidden(&pool).await, vec![TRACK.to_owned()]);
    labeler.push(
        3,
        labels_frame(
            3,
            &[TestLabel {
                neg: true,
                ..label(LABELER, TRACK, "!takedown", "2026-01-02T00:00:00Z")
            }],
        ),
    );
    wait_for("seq 3", || async { cursor(&pool).await == Some(3) }).await;
    assert!(hidden(&pool).await.is_empty());
    assert_eq!(
        stored(&pool).await[0],
        (TRACK.to_owned(), "!takedown".to_owned(), true)
    );
    stop_all(client, labeler, plc).await;
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn labeler_without_endpoint_is_retried(pool: PgPool) {
    // No document yet: the client keeps retrying (backoff) instead of failing, and connects
    // once the document names an endpoint.
    let plc = Loopback::start().await;
    let labeler = Labeler::start().await;
    labeler.push(
        1,
        labels_frame(1, &[label(LABELER, TRACK, "!hide", "2026-01-01T00:00:00Z")]),
    );
    let client = Running::start(&pool, &plc);
    wait_for("a document lookup", || async { plc.doc_hits(LABELER) > 0 }).await;
    publish_and_see_the_hide(&pool, client, labeler, plc).await;
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn forged_and_unsigned_labels_are_skipped_and_counted(pool: PgPool) {
    let (plc, labeler) = published_labeler().await;
    let other_track = "at://did:plc:alice2ggjmksahdcvelwfyzu/fm.plyr.track/3kdef";
    labeler.push(
        1,
        raw_labels_frame(
            1,
            &[
                label(LABELER, TRACK, "!takedown", "2026-01-01T00:00:00Z").signed_by(&other_key()),
                label(LABELER, other_track, "!takedown", "2026-01-01T00:00:00Z"),
                label(LABELER, TRACK, "porn", "2026-01-01T00:00:00Z").signed_by(&labeler_key()),
            ],
        ),
    );
    let client = Running::start(&pool, &plc);
    wait_for("seq 1", || async { cursor(&pool).await == Some(1) }).await;
    assert_eq!(
        stored(&pool).await,
        vec![(TRACK.to_owned(), "porn".to_owned(), false)],
        "only the label the labeler's key signed"
    );
    assert!(hidden(&pool).await.is_empty(), "no forged takedown hides");
    assert_eq!(skips(&pool, BAD_LABEL_SIGNATURE).await, 1);
    assert_eq!(skips(&pool, UNSIGNED_LABEL).await, 1);
    assert_eq!(
        plc.doc_hits(LABELER),
        2,
        "the failed signature re-resolved the key once"
    );
    stop_all(client, labeler, plc).await;
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn a_rotated_label_key_is_picked_up_and_the_old_one_no_longer_counts(pool: PgPool) {
    let plc = Loopback::start().await;
    let labeler = Labeler::start().await;
    let (old, new) = (labeler_key(), other_key());
    plc.set_labeler_doc(LABELER, &labeler.endpoint, Some(&old.public_key()));
    labeler.push(
        1,
        raw_labels_frame(
            1,
            &[label(LABELER, TRACK, "porn", "2026-01-01T00:00:00Z").signed_by(&old)],
        ),
    );
    let client = Running::start(&pool, &plc);
    wait_for("seq 1", || async { cursor(&pool).await == Some(1) }).await;
    // The labeler rotates its key mid-connection and signs with the new one from then on.
    plc.set_labeler_doc(LABELER, &labeler.endpoint, Some(&new.public_key()));
    labeler.push(
        2,
        raw_labels_frame(
            2,
            &[label(LABELER, TRACK, "!takedown", "2026-01-01T00:00:01Z").signed_by(&new)],
        ),
    );
    wait_for("seq 2", || async { cursor(&pool).await == Some(2) }).await;
    assert_eq!(hidden(&pool).await, vec![TRACK.to_owned()]);
    assert_eq!(skips(&pool, BAD_LABEL_SIGNATURE).await, 0);
    // A label still signed with the old key no longer verifies.
    labeler.push(
        3,
        raw_labels_frame(
            3,
            &[label(LABELER, TRACK, "sexual", "2026-01-01T00:00:02Z").signed_by(&old)],
        ),
    );
    wait_for("seq 3", || async { cursor(&pool).await == Some(3) }).await;
    assert_eq!(skips(&pool, BAD_LABEL_SIGNATURE).await, 1);
    assert_eq!(stored(&pool).await.len(), 2, "porn and !takedown");
    stop_all(client, labeler, plc).await;
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn labeler_without_a_label_key_is_retried(pool: PgPool) {
    // A document with an endpoint but no #atproto_label key: no label could be checked, so the
    // client waits (retrying) rather than skipping the labeler's history.
    let plc = Loopback::start().await;
    let labeler = Labeler::start().await;
    plc.set_labeler_doc(LABELER, &labeler.endpoint, None);
    labeler.push(
        1,
        labels_frame(1, &[label(LABELER, TRACK, "!hide", "2026-01-01T00:00:00Z")]),
    );
    let client = Running::start(&pool, &plc);
    wait_for("two document lookups", || async {
        plc.doc_hits(LABELER) >= 2
    })
    .await;
    assert!(labeler.cursors().is_empty(), "no connection without a key");
    assert_eq!(cursor(&pool).await, None);
    publish_and_see_the_hide(&pool, client, labeler, plc).await;
}

#[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
async fn a_labeler_whose_seqs_started_over_is_read_again_from_the_start(pool: PgPool) {
    let (plc, labeler) = published_labeler().await;
    labeler.push(
        3,
        labels_frame(3, &[label(LABELER, TRACK, "porn", "2026-01-01T00:00:00Z")]),
    );
    let client = Running::start(&pool, &plc);
    wait_for("seq 3", || async { cursor(&pool).await == Some(3) }).await;
    client.stop().await;

    // Rebuilt, the labeler numbers its history from 1 again; our stored 3 is in its future.
    labeler.start_over();
    labeler.push(
        1,
        labels_frame(
            1,
            &[TestLabel {
                neg: true,
                ..label(LABELER, TRACK, "porn", "2026-01-02T00:00:00Z")
            }],
        ),
    );
    let client = Running::start(&pool, &plc);
    wait_for("seq 1 of the new history", || async {
        cursor(&pool).await == Some(1)
    })
    .await;
    client.stop().await;
    assert_eq!(
        labeler.cursors(),
        vec![Some(0), Some(3), Some(0)],
        "refused once, then from the start"
    );
    assert_eq!(
        stored(&pool).await,
        vec![(TRACK.to_owned(), "porn".to_owned(), true)],
        "the new history applied"
    );
    labeler.stop().await;
    plc.stop().await;
}

//! `com.atproto.sync.subscribeRepos` binary frames: a DAG-CBOR header `{op, t}` followed by a
//! DAG-CBOR body, decoded one after the other from one reader into typed events.

use cid::Cid;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use crate::error::ErrorKind;

/// Event frames have a hard limit of 5 MB (spec `event-stream`); read as 5 MiB so no valid
/// frame is refused.
pub const MAX_FRAME_BYTES: usize = 5 * 1024 * 1024;

/// Why a frame could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// Over [`MAX_FRAME_BYTES`]; nothing was decoded.
    #[error("frame of {len} bytes is over the {MAX_FRAME_BYTES}-byte limit")]
    TooLarge {
        /// The frame's size.
        len: usize,
    },
    /// Invalid framing or a body that does not fit its type.
    #[error("malformed frame: {reason}")]
    Malformed {
        /// What is wrong.
        reason: String,
    },
}

impl FrameError {
    /// The classification of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            FrameError::TooLarge { .. } => ErrorKind::TooLarge,
            FrameError::Malformed { .. } => ErrorKind::MalformedFrame,
        }
    }
}

fn malformed(what: &str, err: impl std::fmt::Display) -> FrameError {
    FrameError::Malformed {
        reason: format!("{what}: {err}"),
    }
}

/// One decoded frame; the payloads borrow their CAR bytes from the frame.
// `#commit` is both the largest and by far the most common variant: boxing it would add an
// allocation per event and save nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Frame<'a> {
    /// `#commit`: a signed change to a repository.
    Commit(CommitEvent<'a>),
    /// `#sync`: the repository's state was reset to this commit.
    Sync(SyncEvent<'a>),
    /// `#identity`: refresh cached identity (handle, keys).
    Identity(IdentityEvent),
    /// `#account`: the account's hosting status changed at the emitting host.
    Account(AccountEvent),
    /// `#info`: an informational message (e.g. `OutdatedCursor`).
    Info(InfoEvent),
    /// An error frame (`op: -1`); the stream closes after it.
    Error(ErrorEvent),
    /// An `op` or `t` this crate does not know: callers ignore it (spec `event-stream`).
    Unknown {
        /// The header's `op`.
        op: i64,
        /// The header's `t`, if any.
        t: Option<String>,
    },
}

#[derive(Serialize, Deserialize)]
struct Header {
    op: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    t: Option<String>,
}

/// What a `#commit` operation did to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// A new record.
    Create,
    /// A replaced record.
    Update,
    /// A removed record.
    Delete,
}

/// One operation of a `#commit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoOp {
    /// Create, update or delete.
    pub action: Action,
    /// `collection/rkey`.
    pub path: String,
    /// The new record's CID (null for deletes).
    pub cid: Option<Cid>,
    /// The record's previous CID (updates and deletes), needed for inversion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<Cid>,
}

/// A `#commit` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitEvent<'a> {
    /// Stream sequence number.
    pub seq: i64,
    /// The repository's DID.
    pub repo: String,
    /// CID of the commit block.
    pub commit: Cid,
    /// The commit's revision.
    pub rev: String,
    /// The revision of the previous commit, if any.
    #[serde(default)]
    pub since: Option<String>,
    /// A CAR slice: the commit, new MST nodes and records, and the proof blocks.
    #[serde(borrow, with = "serde_bytes")]
    pub blocks: &'a [u8],
    /// The record operations.
    pub ops: Vec<RepoOp>,
    /// The MST root before this commit, which inversion must reproduce.
    #[serde(rename = "prevData", default, skip_serializing_if = "Option::is_none")]
    pub prev_data: Option<Cid>,
    /// When the event was emitted.
    pub time: String,
    /// Deprecated and always false; ignored.
    #[serde(rename = "tooBig", default)]
    pub too_big: bool,
    /// Deprecated; kept because the lexicon still requires it on the wire.
    #[serde(default)]
    pub blobs: Vec<Cid>,
    /// Deprecated and always false; kept for the same reason.
    #[serde(default)]
    pub rebase: bool,
}

/// A `#sync` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncEvent<'a> {
    /// Stream sequence number.
    pub seq: i64,
    /// The repository's DID.
    pub did: String,
    /// A CAR holding only the commit block.
    #[serde(borrow, with = "serde_bytes")]
    pub blocks: &'a [u8],
    /// The commit's revision.
    pub rev: String,
    /// When the event was emitted.
    pub time: String,
}

/// An `#identity` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityEvent {
    /// Stream sequence number.
    pub seq: i64,
    /// The account's DID.
    pub did: String,
    /// When the event was emitted.
    pub time: String,
    /// The current handle, if the host asserts one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
}

/// An `#account` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountEvent {
    /// Stream sequence number.
    pub seq: i64,
    /// The account's DID.
    pub did: String,
    /// When the event was emitted.
    pub time: String,
    /// Whether the account is active at the emitting host.
    pub active: bool,
    /// Why it is inactive (takendown, suspended, deleted, deactivated, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// An `#info` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InfoEvent {
    /// The message name, e.g. `OutdatedCursor`.
    pub name: String,
    /// Human-readable detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// An error frame's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorEvent {
    /// The error name, e.g. `FutureCursor` or `ConsumerTooSlow`.
    pub error: String,
    /// Human-readable detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Decodes one binary frame. Frames over [`MAX_FRAME_BYTES`] are refused before decoding.
pub fn decode_frame(bytes: &[u8]) -> Result<Frame<'_>, FrameError> {
    if bytes.len() > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge { len: bytes.len() });
    }
    // One reader over both values: the header, then the body right where it ended.
    let mut de = serde_ipld_dagcbor::de::Deserializer::from_slice(bytes);
    let header = Header::deserialize(&mut de).map_err(|e| malformed("header", e))?;
    let frame = match (header.op, header.t.as_deref()) {
        (1, Some("#commit")) => Frame::Commit(body(&mut de, "#commit")?),
        (1, Some("#sync")) => Frame::Sync(body(&mut de, "#sync")?),
        (1, Some("#identity")) => Frame::Identity(body(&mut de, "#identity")?),
        (1, Some("#account")) => Frame::Account(body(&mut de, "#account")?),
        (1, Some("#info")) => Frame::Info(body(&mut de, "#info")?),
        (1, None) => {
            return Err(FrameError::Malformed {
                reason: "message frame without t".to_owned(),
            });
        }
        (-1, _) => Frame::Error(body(&mut de, "error")?),
        (op, t) => {
            let t = t.map(str::to_owned);
            body::<IgnoredAny, _>(&mut de, "unknown")?;
            Frame::Unknown { op, t }
        }
    };
    de.end().map_err(|e| malformed("after body", e))?;
    Ok(frame)
}

fn body<'a, T: Deserialize<'a>, D: serde::Deserializer<'a>>(
    de: D,
    what: &str,
) -> Result<T, FrameError> {
    T::deserialize(de).map_err(|e| malformed(&format!("{what} body"), e))
}

/// Encodes a frame: its header, then its body.
#[cfg(any(test, feature = "builder"))]
pub(crate) fn encode_frame(frame: &Frame<'_>) -> Vec<u8> {
    fn two(t: Option<&str>, op: i64, body: &impl Serialize) -> Vec<u8> {
        let header = Header {
            op,
            t: t.map(str::to_owned),
        };
        // Typed events with strings, integers, bytes and CIDs always encode.
        let mut out = serde_ipld_dagcbor::to_vec(&header).expect("header encodes");
        out.extend(serde_ipld_dagcbor::to_vec(body).expect("body encodes"));
        out
    }
    match frame {
        Frame::Commit(event) => two(Some("#commit"), 1, event),
        Frame::Sync(event) => two(Some("#sync"), 1, event),
        Frame::Identity(event) => two(Some("#identity"), 1, event),
        Frame::Account(event) => two(Some("#account"), 1, event),
        Frame::Info(event) => two(Some("#info"), 1, event),
        Frame::Error(event) => two(None, -1, event),
        Frame::Unknown { op, t } => two(
            t.as_deref(),
            *op,
            &std::collections::BTreeMap::<String, i64>::new(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data_model::cid_for_cbor;

    fn cbor(value: &impl Serialize) -> Vec<u8> {
        serde_ipld_dagcbor::to_vec(value).expect("encodes")
    }

    fn header(op: i64, t: Option<&str>) -> Vec<u8> {
        cbor(&Header {
            op,
            t: t.map(str::to_owned),
        })
    }

    #[test]
    fn events_round_trip() {
        let cid = cid_for_cbor(b"\xa0");
        let blocks = [1u8, 2, 3];
        let frames = [
            Frame::Commit(CommitEvent {
                seq: 7,
                repo: "did:plc:abc".to_owned(),
                commit: cid,
                rev: "3kabcabcabc22".to_owned(),
                since: None,
                blocks: &blocks,
                ops: vec![RepoOp {
                    action: Action::Update,
                    path: "fm.plyr.track/3kabc".to_owned(),
                    cid: Some(cid),
                    prev: Some(cid),
                }],
                prev_data: Some(cid),
                time: "2026-01-01T00:00:00.000Z".to_owned(),
                too_big: false,
                blobs: Vec::new(),
                rebase: false,
            }),
            Frame::Sync(SyncEvent {
                seq: 8,
                did: "did:plc:abc".to_owned(),
                blocks: &blocks,
                rev: "3kabcabcabc22".to_owned(),
                time: "t".to_owned(),
            }),
            Frame::Identity(IdentityEvent {
                seq: 9,
                did: "did:plc:abc".to_owned(),
                time: "t".to_owned(),
                handle: Some("a.example.com".to_owned()),
            }),
            Frame::Account(AccountEvent {
                seq: 10,
                did: "did:plc:abc".to_owned(),
                time: "t".to_owned(),
                active: false,
                status: Some("takendown".to_owned()),
            }),
            Frame::Info(InfoEvent {
                name: "OutdatedCursor".to_owned(),
                message: None,
            }),
            Frame::Error(ErrorEvent {
                error: "FutureCursor".to_owned(),
                message: Some("cursor in the future".to_owned()),
            }),
        ];
        for frame in frames {
            let bytes = encode_frame(&frame);
            assert_eq!(decode_frame(&bytes).expect("decodes"), frame);
        }
    }

    #[test]
    fn unknown_types_are_reported_not_rejected() {
        let body = cbor(&std::collections::BTreeMap::from([("x", 1)]));
        let table = [
            (
                1,
                Some("#future"),
                Frame::Unknown {
                    op: 1,
                    t: Some("#future".to_owned()),
                },
            ),
            (2, None, Frame::Unknown { op: 2, t: None }),
        ];
        for (op, t, expected) in table {
            let bytes = [header(op, t), body.clone()].concat();
            assert_eq!(decode_frame(&bytes).expect("decodes"), expected);
        }
    }

    #[test]
    fn error_frame_with_only_error() {
        let body = cbor(&std::collections::BTreeMap::from([(
            "error",
            "ConsumerTooSlow",
        )]));
        let bytes = [header(-1, None), body].concat();
        assert_eq!(
            decode_frame(&bytes).expect("decodes"),
            Frame::Error(ErrorEvent {
                error: "ConsumerTooSlow".to_owned(),
                message: None,
            })
        );
    }

    #[test]
    fn malformed_frames() {
        let info = cbor(&InfoEvent {
            name: "x".to_owned(),
            message: None,
        });
        let commit = |action: &str| {
            let cid = cid_for_cbor(b"\xa0").to_string();
            let json = serde_json::json!({
                "seq": 1, "repo": "did:plc:abc", "rev": "r", "since": null, "time": "t",
                "commit": {"$link": cid}, "blocks": {"$bytes": ""},
                "ops": [{"action": action, "path": "a/b", "cid": null}],
            });
            cbor(&crate::data_model::json_to_ipld(&json).expect("valid"))
        };
        let good = [header(1, Some("#commit")), commit("delete")].concat();
        assert!(matches!(decode_frame(&good), Ok(Frame::Commit(_))));
        let bad_action = commit("rename");
        let table: Vec<(&str, Vec<u8>)> = vec![
            (
                "garbage after the header",
                [header(1, Some("#info")), vec![0xff, 0x00]].concat(),
            ),
            ("header only", header(1, Some("#info"))),
            (
                "trailing data",
                [header(1, Some("#info")), info.clone(), vec![0x01]].concat(),
            ),
            (
                "no t on a message",
                [header(1, None), info.clone()].concat(),
            ),
            (
                "body of the wrong type",
                [header(1, Some("#account")), info.clone()].concat(),
            ),
            ("header not a map", [cbor(&1u8), info.clone()].concat()),
            (
                "unknown action",
                [header(1, Some("#commit")), bad_action].concat(),
            ),
            (
                "unknown t with garbage body",
                [header(1, Some("#x")), vec![0xff]].concat(),
            ),
            ("empty", Vec::new()),
        ];
        for (name, bytes) in table {
            let err = decode_frame(&bytes).expect_err(name);
            assert_eq!(err.kind(), ErrorKind::MalformedFrame, "{name}: {err}");
        }
    }

    #[test]
    fn oversized_frame_is_refused_before_decoding() {
        // Not even a valid header: the size check must come first.
        let bytes = vec![0xffu8; MAX_FRAME_BYTES + 1];
        let err = decode_frame(&bytes).expect_err("too large");
        assert_eq!(err.kind(), ErrorKind::TooLarge);
    }
}

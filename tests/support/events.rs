//! Builders for Jetstream v1 event frames, shaped like the ones jetstream2 sends.

#![allow(dead_code)]

use serde_json::{Value, json};

use super::jetstream::Frame;

/// Microseconds since the epoch at 2026-01-01, a base for scripted `time_us` values.
pub const T0: i64 = 1_767_225_600_000_000;

/// A TID-shaped rev that sorts by `n` (13 base32-sortable chars).
pub fn rev(n: u64) -> String {
    const ALPHABET: &[u8] = b"234567abcdefghijklmnopqrstuvwxyz";
    // 0 top bit, a µs timestamp in the valid range, then n: revs sort as their n do.
    let mut value: u64 = (1_700_000_000_000_000u64 << 10) + n;
    let mut out = [b'2'; 13];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(value & 31) as usize];
        value >>= 5;
    }
    String::from_utf8(out.to_vec()).expect("ascii")
}

/// A valid TID record key, distinct per `n` (record keys of tid-keyed collections must be TIDs).
pub fn rkey(n: u64) -> String {
    rev(1 << 40 | n)
}

pub fn did(n: u32) -> String {
    format!("did:plc:test{n:020}")
}

pub fn uri(did: &str, collection: &str, rkey: &str) -> String {
    format!("at://{did}/{collection}/{rkey}")
}

pub fn track_record(ns: &str, title: &str, created_at: &str) -> Value {
    json!({
        "$type": format!("{ns}.track"),
        "title": title,
        "artist": "Test Artist",
        "audioUrl": "https://cdn.example.com/audio/1.mp3",
        "fileType": "mp3",
        "duration": 180,
        "createdAt": created_at,
    })
}

pub fn like_record(ns: &str, subject: &str) -> Value {
    json!({
        "$type": format!("{ns}.like"),
        "subject": {"uri": subject, "cid": "bafyreiclp443lavogvhj3d2ob2cxbfuscni2k5jk7bebjzg7khl3esabwq"},
        "createdAt": "2026-01-01T00:00:00.000Z",
    })
}

pub fn comment_record(ns: &str, subject: &str, text: &str, timestamp_ms: i64) -> Value {
    json!({
        "$type": format!("{ns}.comment"),
        "subject": {"uri": subject, "cid": "bafyreiclp443lavogvhj3d2ob2cxbfuscni2k5jk7bebjzg7khl3esabwq"},
        "text": text,
        "timestampMs": timestamp_ms,
        "createdAt": "2026-01-01T00:00:00.000Z",
    })
}

pub fn list_record(ns: &str, name: &str, list_type: &str, items: &[String]) -> Value {
    let items: Vec<Value> = items
        .iter()
        .map(|u| json!({"subject": {"uri": u, "cid": "bafyreiclp443lavogvhj3d2ob2cxbfuscni2k5jk7bebjzg7khl3esabwq"}}))
        .collect();
    json!({
        "$type": format!("{ns}.list"),
        "name": name,
        "listType": list_type,
        "items": items,
        "createdAt": "2026-01-01T00:00:00.000Z",
    })
}

pub fn profile_record(ns: &str, bio: &str) -> Value {
    json!({
        "$type": format!("{ns}.actor.profile"),
        "bio": bio,
        "createdAt": "2026-01-01T00:00:00.000Z",
    })
}

/// A well-formed dag-cbor CIDv1 string, distinct per `n` (the digest is not a real hash).
pub fn cid(n: u64) -> String {
    let mut digest = [0u8; 32];
    digest[..8].copy_from_slice(&n.to_be_bytes());
    let hash = cid::multihash::Multihash::<64>::wrap(0x12, &digest).expect("digest fits");
    cid::Cid::new_v1(0x71, hash).to_string()
}

/// A commit event; `body` is the record and its CID (absent for a delete).
pub fn commit(
    time_us: i64,
    did: &str,
    operation: &str,
    collection: &str,
    rkey: &str,
    rev: &str,
    body: Option<(Value, String)>,
) -> Frame {
    let mut commit = json!({
        "rev": rev,
        "operation": operation,
        "collection": collection,
        "rkey": rkey,
    });
    if let Some((record, cid)) = body {
        commit["record"] = record;
        commit["cid"] = json!(cid);
    }
    Frame {
        time_us,
        collection: Some(collection.to_owned()),
        text: json!({"did": did, "time_us": time_us, "kind": "commit", "commit": commit})
            .to_string(),
    }
}

/// A create or update carrying `record`, with a CID derived from `time_us`.
fn write(
    operation: &str,
    time_us: i64,
    did: &str,
    collection: &str,
    rkey: &str,
    rev: &str,
    record: Value,
) -> Frame {
    let cid = cid(time_us as u64);
    commit(
        time_us,
        did,
        operation,
        collection,
        rkey,
        rev,
        Some((record, cid)),
    )
}

pub fn create(
    time_us: i64,
    did: &str,
    collection: &str,
    rkey: &str,
    rev: &str,
    record: Value,
) -> Frame {
    write("create", time_us, did, collection, rkey, rev, record)
}

pub fn update(
    time_us: i64,
    did: &str,
    collection: &str,
    rkey: &str,
    rev: &str,
    record: Value,
) -> Frame {
    write("update", time_us, did, collection, rkey, rev, record)
}

pub fn delete(time_us: i64, did: &str, collection: &str, rkey: &str, rev: &str) -> Frame {
    commit(time_us, did, "delete", collection, rkey, rev, None)
}

pub fn identity(time_us: i64, did: &str, handle: Option<&str>) -> Frame {
    let mut identity = json!({"did": did, "seq": time_us, "time": "2026-01-01T00:00:00.000Z"});
    if let Some(handle) = handle {
        identity["handle"] = json!(handle);
    }
    Frame {
        time_us,
        collection: None,
        text: json!({"did": did, "time_us": time_us, "kind": "identity", "identity": identity})
            .to_string(),
    }
}

pub fn account(time_us: i64, did: &str, active: bool, status: Option<&str>) -> Frame {
    let mut account =
        json!({"active": active, "did": did, "seq": time_us, "time": "2026-01-01T00:00:00.000Z"});
    if let Some(status) = status {
        account["status"] = json!(status);
    }
    Frame {
        time_us,
        collection: None,
        text: json!({"did": did, "time_us": time_us, "kind": "account", "account": account})
            .to_string(),
    }
}

/// A frame that is not valid JSON at all.
pub fn garbage(time_us: i64) -> Frame {
    Frame {
        time_us,
        collection: None,
        text: "{\"did\": \"did:plc:broken\", \"time_us\": ".to_owned(),
    }
}

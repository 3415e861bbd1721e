//! Test fixtures: Jetstream v1 events as the wire carries them, built from a few parameters, and
//! TIDs that sort in the order of the numbers they are made from.

use std::future::Future;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::{Value, json};

/// Upper bound on any wait in a test; polls return as soon as their condition holds.
pub(crate) const WAIT: Duration = Duration::from_secs(30);

/// Polls `check` until it returns true, failing the test after [`WAIT`].
pub(crate) async fn wait_for<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A test's shared state, usable after another test thread panicked holding it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A CID in the form Jetstream sends (dag-cbor, sha-256).
pub(crate) const CID: &str = "bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";
/// Another valid CID, for updates.
pub(crate) const CID2: &str = "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm";

pub(crate) const ALICE: &str = "did:plc:alice2ggjmksahdcvelwfyzu";
pub(crate) const BOB: &str = "did:plc:bob2ggjmksahdcvelwfyzuaa";

const TID_CHARS: &[u8; 32] = b"234567abcdefghijklmnopqrstuvwxyz";

/// A valid TID whose order follows `n`.
pub(crate) fn tid(n: u64) -> String {
    (0..13)
        .rev()
        .map(|i| {
            let digit = (n >> (5 * i)) & 31;
            char::from(TID_CHARS[usize::try_from(digit).unwrap_or(0)])
        })
        .collect()
}

/// `at://{did}/fm.plyr.{collection}/{rkey}`.
pub(crate) fn uri(did: &str, collection: &str, rkey: &str) -> String {
    format!("at://{did}/fm.plyr.{collection}/{rkey}")
}

/// A commit create/update event in namespace `fm.plyr`.
pub(crate) fn write(
    time_us: i64,
    did: &str,
    collection: &str,
    rkey: &str,
    rev: &str,
    cid: &str,
    record: Value,
) -> String {
    json!({
        "did": did, "time_us": time_us, "kind": "commit",
        "commit": {"rev": rev, "operation": "create", "collection": collection, "rkey": rkey,
                   "record": record, "cid": cid}
    })
    .to_string()
}

/// A commit delete event.
pub(crate) fn delete(time_us: i64, did: &str, collection: &str, rkey: &str, rev: &str) -> String {
    json!({
        "did": did, "time_us": time_us, "kind": "commit",
        "commit": {"rev": rev, "operation": "delete", "collection": collection, "rkey": rkey}
    })
    .to_string()
}

pub(crate) fn track_record(title: &str) -> Value {
    json!({"$type": "fm.plyr.track", "title": title, "artist": "Alice", "fileType": "mp3",
           "audioUrl": "https://cdn.example/a.mp3", "createdAt": "2024-11-19T12:00:00.000Z"})
}

pub(crate) fn like_record(subject: &str) -> Value {
    json!({"$type": "fm.plyr.like", "subject": {"uri": subject, "cid": CID},
           "createdAt": "2024-11-19T12:00:00.000Z"})
}

pub(crate) fn comment_record(subject: &str, text: &str) -> Value {
    json!({"$type": "fm.plyr.comment", "subject": {"uri": subject, "cid": CID}, "text": text,
           "timestampMs": 1500, "createdAt": "2024-11-19T12:00:00.000Z"})
}

pub(crate) fn list_record(list_type: &str, subjects: &[&str]) -> Value {
    let items: Vec<Value> = subjects
        .iter()
        .map(|s| json!({"subject": {"uri": s, "cid": CID}}))
        .collect();
    json!({"$type": "fm.plyr.list", "name": "Mix", "listType": list_type, "items": items,
           "createdAt": "2024-11-19T12:00:00.000Z"})
}

pub(crate) fn profile_record(bio: &str) -> Value {
    json!({"$type": "fm.plyr.actor.profile", "bio": bio, "createdAt": "2024-11-19T12:00:00.000Z"})
}

pub(crate) fn track(time_us: i64, did: &str, rkey: &str, rev: &str, title: &str) -> String {
    write(
        time_us,
        did,
        "fm.plyr.track",
        rkey,
        rev,
        CID,
        track_record(title),
    )
}

pub(crate) fn like(time_us: i64, did: &str, rkey: &str, rev: &str, subject: &str) -> String {
    write(
        time_us,
        did,
        "fm.plyr.like",
        rkey,
        rev,
        CID,
        like_record(subject),
    )
}

pub(crate) fn identity(time_us: i64, did: &str, handle: Option<&str>) -> String {
    let mut identity = json!({"did": did, "seq": 1, "time": "2024-11-19T12:00:00.000Z"});
    if let (Some(h), Some(map)) = (handle, identity.as_object_mut()) {
        map.insert("handle".into(), json!(h));
    }
    json!({"did": did, "time_us": time_us, "kind": "identity", "identity": identity}).to_string()
}

pub(crate) fn account(time_us: i64, did: &str, active: bool, status: Option<&str>) -> String {
    let mut account =
        json!({"did": did, "active": active, "seq": 1, "time": "2024-11-19T12:00:00.000Z"});
    if let (Some(s), Some(map)) = (status, account.as_object_mut()) {
        map.insert("status".into(), json!(s));
    }
    json!({"did": did, "time_us": time_us, "kind": "account", "account": account}).to_string()
}

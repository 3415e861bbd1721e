//! Hostile Jetstream messages: each becomes exactly one counted skip with the expected reason
//! (the skip counter's label), never a panic, and a well-formed message none.

use plyr_indexer::fuzz_jetstream_event;
use serde_json::{Value, json};

const DID: &str = "did:plc:7iza6de2dwap2sbkpav7c6c6";
const TID: &str = "3jzfcijpj2z2a";
const CID: &str = "bafyreidbw3bgehdrabnlgsdxvjmppgago5qw3lyeqomvqn7clpr3qjibma";

fn comment(text: Value) -> Value {
    json!({
        "$type": "fm.plyr.comment",
        "subject": {"uri": format!("at://{DID}/fm.plyr.track/{TID}"), "cid": CID},
        "text": text,
        "timestampMs": 1000,
        "createdAt": "2026-08-20T12:00:00Z"
    })
}

/// A Jetstream commit event; `edit` changes any part of it.
fn event(edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut event = json!({
        "did": DID,
        "time_us": 1_725_911_162_329_308_i64,
        "kind": "commit",
        "commit": {
            "rev": TID,
            "operation": "create",
            "collection": "fm.plyr.comment",
            "rkey": TID,
            "record": comment(json!("hi")),
            "cid": CID
        }
    });
    edit(&mut event);
    serde_json::to_vec(&event).expect("test event encodes")
}

/// A record nested `depth` arrays deep, as raw JSON (serde_json's `json!` would recurse).
fn deeply_nested_event(depth: usize) -> Vec<u8> {
    let record = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    format!(
        r#"{{"did":"{DID}","time_us":1,"kind":"commit","commit":{{"rev":"{TID}","operation":"create","collection":"fm.plyr.comment","rkey":"{TID}","record":{record},"cid":"{CID}"}}}}"#
    )
    .into_bytes()
}

#[test]
fn a_well_formed_event_is_not_skipped() {
    assert_eq!(fuzz_jetstream_event(&event(|_| {})), Vec::<&str>::new());
}

#[test]
fn hostile_events_are_counted_skips() {
    let lone_surrogate = String::from_utf8(event(|_| {}))
        .expect("json is utf-8")
        .replace("\"hi\"", "\"\\ud800\"")
        .into_bytes();
    let invalid_utf8 = [&event(|_| {})[..20], b"\xff\xfe", &event(|_| {})[20..]].concat();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("not json", b"{\"did\":".to_vec(), "malformed_event"),
        ("invalid utf-8", invalid_utf8, "malformed_event"),
        (
            "lone surrogate in a record string",
            lone_surrogate,
            "malformed_event",
        ),
        (
            "record nested 100,000 deep",
            deeply_nested_event(100_000),
            "malformed_event",
        ),
        (
            "negative time_us",
            event(|e| e["time_us"] = json!(-1)),
            "malformed_event",
        ),
        (
            "time_us past i64",
            String::from_utf8(event(|_| {}))
                .expect("json is utf-8")
                .replace("1725911162329308", "99999999999999999999")
                .into_bytes(),
            "malformed_event",
        ),
        (
            "sql-looking did",
            event(|e| e["did"] = json!("did:plc:x'; drop table actor; --")),
            "malformed_event",
        ),
        (
            "sql-looking collection",
            event(|e| e["commit"]["collection"] = json!("fm.plyr.comment; drop table comment")),
            "foreign_collection",
        ),
        (
            "rkey with dot segments",
            event(|e| e["commit"]["rkey"] = json!("../../x")),
            "bad_record_key",
        ),
        (
            "garbage cid",
            event(|e| e["commit"]["cid"] = json!("not-a-cid")),
            "malformed_event",
        ),
        (
            "oversized record text",
            event(|e| e["commit"]["record"] = comment(json!("x".repeat(1_000_000)))),
            "lexicon",
        ),
        (
            "record that is not an object",
            event(|e| e["commit"]["record"] = json!("'; drop table track; --")),
            "type_mismatch",
        ),
        (
            "unknown kind",
            event(|e| e["kind"] = json!("commit'--")),
            "unknown_kind",
        ),
        (
            "unknown operation",
            event(|e| e["commit"]["operation"] = json!("truncate")),
            "malformed_event",
        ),
    ];
    for (name, bytes, reason) in cases {
        assert_eq!(fuzz_jetstream_event(&bytes), vec![reason], "{name}");
    }
}

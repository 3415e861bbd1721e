//! Hostile input for the syntax checks and record validation: AT-URIs with tricks, oversized
//! and deeply nested records, SQL-looking strings. Each is refused with its kind, or (for
//! strings that are only data) accepted unchanged.

use plyr_lexicons::syntax::SyntaxKind;
use plyr_lexicons::{AtUri, Namespace, RecordKind, RejectionKind};
use serde_json::{Value, json};

const DID: &str = "did:plc:7iza6de2dwap2sbkpav7c6c6";
const TID: &str = "3jzfcijpj2z2a";

fn namespace() -> Namespace {
    Namespace::new("fm.plyr").expect("fm.plyr is a namespace")
}

fn comment(text: Value) -> Value {
    json!({
        "$type": "fm.plyr.comment",
        "subject": {
            "uri": format!("at://{DID}/fm.plyr.track/{TID}"),
            "cid": "bafyreidbw3bgehdrabnlgsdxvjmppgago5qw3lyeqomvqn7clpr3qjibma"
        },
        "text": text,
        "timestampMs": 1000,
        "createdAt": "2026-08-20T12:00:00Z"
    })
}

/// `depth` nested arrays around an integer.
fn nested(depth: usize) -> Value {
    (0..depth).fold(json!(1), |inner, _| json!([inner]))
}

#[test]
fn at_uri_tricks_are_refused() {
    let overlong = format!("at://{DID}/fm.plyr.track/{}", "a".repeat(9 * 1024));
    let cases = [
        "at://did:plc:x/../",
        "at://did:plc:x/..",
        "at://did:plc:x/fm.plyr.track/..",
        "at://did:plc:x/fm.plyr.track/.",
        "at://did:plc:x/fm.plyr.track/a/b",
        "at://did:plc:x/fm.plyr.track/a%2Fb",
        "at://did%3Aplc%3Ax/fm.plyr.track/a",
        "at://did:plc:x/fm.plyr.tr%61ck/a",
        "at://did:plc:x/fm.plyr.track/t\u{e9}l\u{e9}",
        "at://did:plc:\u{0430}bc/fm.plyr.track/a",
        "at://did:plc:x/fm.plyr.track/a\u{0}",
        "at://did:plc:x/fm.plyr.track/a b",
        "at://did:plc:x/fm.plyr.track/a?q=1",
        "at://did:plc:x/fm.plyr.track/a#frag",
        "at://user:pass@did:plc:x/fm.plyr.track/a",
        "at://did:plc:x/fm.plyr.track/'; drop table track; --",
        "at:///fm.plyr.track/a",
        "AT://did:plc:x/fm.plyr.track/a",
        "https://did:plc:x/fm.plyr.track/a",
        overlong.as_str(),
    ];
    for uri in cases {
        match AtUri::parse(uri) {
            Ok(parsed) => panic!("{uri:?} parsed as {parsed:?}"),
            Err(e) => assert_eq!(e.kind, SyntaxKind::AtUri, "{uri:?}: {e}"),
        }
    }
}

#[test]
fn hostile_records_are_rejected_by_kind() {
    let ns = namespace();
    let sql_in_type = {
        let mut c = comment(json!("hi"));
        c["$type"] = json!("fm.plyr.comment'; drop table comment; --");
        c
    };
    let cases: Vec<(&str, &str, &str, Value, RejectionKind)> = vec![
        (
            "overlong text",
            "fm.plyr.comment",
            TID,
            comment(json!("x".repeat(100_000))),
            RejectionKind::Lexicon,
        ),
        (
            "deeply nested text",
            "fm.plyr.comment",
            TID,
            comment(nested(100)),
            RejectionKind::Lexicon,
        ),
        (
            "rkey ..",
            "fm.plyr.comment",
            "..",
            comment(json!("hi")),
            RejectionKind::BadRecordKey,
        ),
        (
            "rkey with a slash",
            "fm.plyr.comment",
            "a/../b",
            comment(json!("hi")),
            RejectionKind::BadRecordKey,
        ),
        (
            "sql-looking rkey",
            "fm.plyr.comment",
            "1' or '1'='1",
            comment(json!("hi")),
            RejectionKind::BadRecordKey,
        ),
        (
            "sql-looking $type",
            "fm.plyr.comment",
            TID,
            sql_in_type,
            RejectionKind::TypeMismatch,
        ),
        (
            "sql-looking collection",
            "fm.plyr.comment; drop table comment",
            TID,
            comment(json!("hi")),
            RejectionKind::NotOurCollection,
        ),
        (
            "collection with unicode lookalike",
            "fm.plyr.c\u{043e}mment",
            TID,
            comment(json!("hi")),
            RejectionKind::NotOurCollection,
        ),
    ];
    for (name, collection, rkey, record, kind) in cases {
        match ns.validate(collection, rkey, &record) {
            Ok(kind) => panic!("{name}: accepted as {kind:?}"),
            Err(e) => assert_eq!(e.kind(), kind, "{name}: {e}"),
        }
    }
}

#[test]
fn sql_looking_strings_are_only_data() {
    let ns = namespace();
    for text in [
        "'; drop table comment; --",
        "\" or 1=1 --",
        "$1); delete from track where ($1",
        "\\x00\\'",
        "robert'); drop table students;--",
    ] {
        let record = comment(json!(text));
        assert_eq!(
            ns.validate("fm.plyr.comment", TID, &record),
            Ok(RecordKind::Comment),
            "{text:?}"
        );
        assert_eq!(
            record["text"],
            json!(text),
            "validation leaves the text as sent"
        );
    }
}

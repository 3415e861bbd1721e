//! Decodes one Jetstream v1 message (JSON bytes) into a typed [`Event`]. Pure: no IO, and no
//! input makes it fail: anything it cannot read becomes [`Event::Malformed`] so it is counted.

use serde::Deserialize;
use serde_json::value::RawValue;

/// One Jetstream v1 event, as far as the indexer cares.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Event {
    /// A record create, update or delete in a repository.
    Commit(Commit),
    /// A `#identity` event: the DID's handle may have changed.
    Identity {
        /// The account.
        did: String,
        /// Jetstream's receive time, in unix µs: the cursor.
        time_us: i64,
        /// The handle as sent, if any (not yet validated or normalized).
        handle: Option<String>,
    },
    /// A `#account` event: the account's hosting status changed.
    Account {
        /// The account.
        did: String,
        /// Jetstream's receive time, in unix µs: the cursor.
        time_us: i64,
        /// Whether the account is active at its host.
        active: bool,
        /// Why it is inactive (deactivated, takendown, suspended, deleted, ...).
        status: Option<String>,
    },
    /// An event kind this client does not know; skipped but it still moves the cursor.
    Unknown {
        /// Jetstream's receive time, in unix µs.
        time_us: i64,
        /// The `kind` as sent.
        kind: String,
    },
    /// Bytes that are not a well-formed v1 event. Its `time_us` is unknown, so it never moves
    /// the cursor.
    Malformed {
        /// What was wrong, for the skip log.
        reason: String,
    },
}

/// The `commit` part of a commit event, with the envelope's DID and time.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Commit {
    /// The repository.
    pub did: String,
    /// Jetstream's receive time, in unix µs: the cursor.
    pub time_us: i64,
    /// The repository revision (a TID) of the commit that carried this operation.
    pub rev: String,
    /// The collection NSID.
    pub collection: String,
    /// The record key.
    pub rkey: String,
    /// What happened to the record.
    pub op: Operation,
}

/// What a commit did to one record.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Operation {
    /// The record was created or updated (Jetstream tells them apart; folding does not need to).
    Write {
        /// The record's CID, as Jetstream sent it.
        cid: String,
        /// The record, parsed.
        record: serde_json::Value,
    },
    /// The record was deleted.
    Delete,
}

impl Event {
    /// Jetstream's `time_us` of this event, or `None` for a malformed one.
    pub(crate) fn time_us(&self) -> Option<i64> {
        match self {
            Event::Commit(commit) => Some(commit.time_us),
            Event::Identity { time_us, .. }
            | Event::Account { time_us, .. }
            | Event::Unknown { time_us, .. } => Some(*time_us),
            Event::Malformed { .. } => None,
        }
    }
}

#[derive(Deserialize)]
struct WireEvent<'a> {
    did: String,
    time_us: i64,
    #[serde(borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    commit: Option<WireCommit<'a>>,
    identity: Option<WireIdentity>,
    account: Option<WireAccount>,
}

#[derive(Deserialize)]
struct WireCommit<'a> {
    rev: String,
    #[serde(borrow)]
    operation: std::borrow::Cow<'a, str>,
    collection: String,
    rkey: String,
    #[serde(borrow)]
    record: Option<&'a RawValue>,
    cid: Option<String>,
}

#[derive(Deserialize)]
struct WireIdentity {
    handle: Option<String>,
}

#[derive(Deserialize)]
struct WireAccount {
    active: bool,
    status: Option<String>,
}

/// Decodes one message. Never fails: unreadable input becomes [`Event::Malformed`].
pub(crate) fn decode(bytes: &[u8]) -> Event {
    match decode_inner(bytes) {
        Ok(event) => event,
        Err(reason) => Event::Malformed { reason },
    }
}

fn decode_inner(bytes: &[u8]) -> Result<Event, String> {
    let wire: WireEvent<'_> = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if wire.time_us <= 0 {
        return Err(format!("time_us {} is not positive", wire.time_us));
    }
    let WireEvent {
        did,
        time_us,
        kind,
        commit,
        identity,
        account,
    } = wire;
    match kind.as_ref() {
        "commit" => {
            let commit = commit.ok_or("commit event without `commit`")?;
            let op = match commit.operation.as_ref() {
                "create" | "update" => {
                    let record = commit
                        .record
                        .ok_or_else(|| format!("{} without `record`", commit.operation))?;
                    let cid = commit
                        .cid
                        .ok_or_else(|| format!("{} without `cid`", commit.operation))?;
                    let record =
                        serde_json::from_str(record.get()).map_err(|e| format!("record: {e}"))?;
                    Operation::Write { cid, record }
                }
                "delete" => Operation::Delete,
                other => return Err(format!("unknown commit operation {other:?}")),
            };
            Ok(Event::Commit(Commit {
                did,
                time_us,
                rev: commit.rev,
                collection: commit.collection,
                rkey: commit.rkey,
                op,
            }))
        }
        "identity" => {
            let identity = identity.ok_or("identity event without `identity`")?;
            Ok(Event::Identity {
                did,
                time_us,
                handle: identity.handle,
            })
        }
        "account" => {
            let account = account.ok_or("account event without `account`")?;
            Ok(Event::Account {
                did,
                time_us,
                active: account.active,
                status: account.status,
            })
        }
        other => Ok(Event::Unknown {
            time_us,
            kind: other.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // Shapes as Jetstream v1 sends them (internal/corpus/testdata/expected_v1.jsonl), with
    // fm.plyr records.
    const CREATE: &str = r#"{"did":"did:plc:eygmaihciaxprqvxpfvl6flk","time_us":1732000000123456,"kind":"commit","commit":{"rev":"3lbp5n4x7ws2k","operation":"create","collection":"fm.plyr.track","rkey":"3lbp5n4wxqk2c","record":{"$type":"fm.plyr.track","title":"Night Drive","artist":"zzstoatzz","fileType":"mp3","createdAt":"2024-11-19T12:00:00.000Z"},"cid":"bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"}}"#;
    const UPDATE: &str = r#"{"did":"did:plc:eygmaihciaxprqvxpfvl6flk","time_us":1732000000200000,"kind":"commit","commit":{"rev":"3lbp5o2aaaa2k","operation":"update","collection":"fm.plyr.track","rkey":"3lbp5n4wxqk2c","record":{"$type":"fm.plyr.track","title":"Night Drive (edit)","artist":"zzstoatzz","fileType":"mp3","createdAt":"2024-11-19T12:00:00.000Z"},"cid":"bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"}}"#;
    const DELETE: &str = r#"{"did":"did:plc:eygmaihciaxprqvxpfvl6flk","time_us":1732000000300000,"kind":"commit","commit":{"rev":"3lbp5p7bbbb2k","operation":"delete","collection":"fm.plyr.track","rkey":"3lbp5n4wxqk2c"}}"#;
    const IDENTITY: &str = r#"{"did":"did:plc:eygmaihciaxprqvxpfvl6flk","time_us":1732000000400000,"kind":"identity","identity":{"did":"did:plc:eygmaihciaxprqvxpfvl6flk","handle":"Stoat.Example.com","seq":1409752997,"time":"2024-09-05T06:11:04.870Z"}}"#;
    const IDENTITY_NO_HANDLE: &str = r#"{"did":"did:plc:eygmaihciaxprqvxpfvl6flk","time_us":1732000000400001,"kind":"identity","identity":{"did":"did:plc:eygmaihciaxprqvxpfvl6flk","seq":1409752998,"time":"2024-09-05T06:11:04.870Z"}}"#;
    const ACCOUNT: &str = r#"{"did":"did:plc:eygmaihciaxprqvxpfvl6flk","time_us":1732000000500000,"kind":"account","account":{"active":false,"did":"did:plc:eygmaihciaxprqvxpfvl6flk","seq":1409753013,"status":"deactivated","time":"2024-09-05T06:11:04.870Z"}}"#;
    const ACCOUNT_ACTIVE: &str = r#"{"did":"did:plc:eygmaihciaxprqvxpfvl6flk","time_us":1732000000600000,"kind":"account","account":{"active":true,"did":"did:plc:eygmaihciaxprqvxpfvl6flk","seq":1409753014,"time":"2024-09-05T06:11:04.870Z"}}"#;
    const UNKNOWN: &str = r#"{"did":"did:plc:eygmaihciaxprqvxpfvl6flk","time_us":1732000000700000,"kind":"sync","sync":{}}"#;

    fn track(title: &str) -> serde_json::Value {
        json!({"$type":"fm.plyr.track","title":title,"artist":"zzstoatzz","fileType":"mp3","createdAt":"2024-11-19T12:00:00.000Z"})
    }

    #[test]
    fn decodes_well_formed_events() {
        let did = "did:plc:eygmaihciaxprqvxpfvl6flk".to_owned();
        let commit = |time_us, rev: &str, op| {
            Event::Commit(Commit {
                did: did.clone(),
                time_us,
                rev: rev.to_owned(),
                collection: "fm.plyr.track".to_owned(),
                rkey: "3lbp5n4wxqk2c".to_owned(),
                op,
            })
        };
        let cases = [
            (
                CREATE,
                commit(
                    1732000000123456,
                    "3lbp5n4x7ws2k",
                    Operation::Write {
                        cid: "bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy".into(),
                        record: track("Night Drive"),
                    },
                ),
            ),
            (
                UPDATE,
                commit(
                    1732000000200000,
                    "3lbp5o2aaaa2k",
                    Operation::Write {
                        cid: "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm".into(),
                        record: track("Night Drive (edit)"),
                    },
                ),
            ),
            (
                DELETE,
                commit(1732000000300000, "3lbp5p7bbbb2k", Operation::Delete),
            ),
            (
                IDENTITY,
                Event::Identity {
                    did: did.clone(),
                    time_us: 1732000000400000,
                    handle: Some("Stoat.Example.com".into()),
                },
            ),
            (
                IDENTITY_NO_HANDLE,
                Event::Identity {
                    did: did.clone(),
                    time_us: 1732000000400001,
                    handle: None,
                },
            ),
            (
                ACCOUNT,
                Event::Account {
                    did: did.clone(),
                    time_us: 1732000000500000,
                    active: false,
                    status: Some("deactivated".into()),
                },
            ),
            (
                ACCOUNT_ACTIVE,
                Event::Account {
                    did: did.clone(),
                    time_us: 1732000000600000,
                    active: true,
                    status: None,
                },
            ),
            (
                UNKNOWN,
                Event::Unknown {
                    time_us: 1732000000700000,
                    kind: "sync".into(),
                },
            ),
        ];
        for (input, want) in cases {
            assert_eq!(decode(input.as_bytes()), want, "{input}");
        }
    }

    #[test]
    fn malformed_input_becomes_malformed_event() {
        let cases = [
            ("not json", "expected"),
            ("", "EOF"),
            (r#"{"did":"did:plc:a","kind":"commit"}"#, "time_us"),
            (
                r#"{"did":"did:plc:a","time_us":-4,"kind":"identity","identity":{}}"#,
                "not positive",
            ),
            (
                r#"{"did":"did:plc:a","time_us":1,"kind":"commit"}"#,
                "without `commit`",
            ),
            (
                r#"{"did":"did:plc:a","time_us":1,"kind":"commit","commit":{"rev":"3lbp5n4x7ws2k","operation":"create","collection":"fm.plyr.track","rkey":"a","cid":"bafy"}}"#,
                "without `record`",
            ),
            (
                r#"{"did":"did:plc:a","time_us":1,"kind":"commit","commit":{"rev":"3lbp5n4x7ws2k","operation":"update","collection":"fm.plyr.track","rkey":"a","record":{}}}"#,
                "without `cid`",
            ),
            (
                r#"{"did":"did:plc:a","time_us":1,"kind":"commit","commit":{"rev":"3lbp5n4x7ws2k","operation":"upsert","collection":"fm.plyr.track","rkey":"a"}}"#,
                "unknown commit operation",
            ),
            (
                r#"{"did":"did:plc:a","time_us":1,"kind":"account","account":{"status":"deleted"}}"#,
                "active",
            ),
            (
                r#"{"did":"did:plc:a","time_us":1,"kind":"identity"}"#,
                "without `identity`",
            ),
            (r#"[1,2,3]"#, "invalid type"),
        ];
        for (input, needle) in cases {
            match decode(input.as_bytes()) {
                Event::Malformed { reason } => {
                    assert!(reason.contains(needle), "{input}: {reason}")
                }
                other => panic!("{input}: decoded as {other:?}"),
            }
        }
    }

    #[test]
    fn time_us_of_malformed_is_unknown() {
        assert_eq!(decode(b"{").time_us(), None);
        assert_eq!(decode(DELETE.as_bytes()).time_us(), Some(1732000000300000));
    }
}

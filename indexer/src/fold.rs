//! Pure folding: [`classify`] turns one decoded event into a storable item or a counted skip
//! (validation happens here), and [`plan`] turns a batch of items into ordered segments with one
//! operation per record URI, the skip tallies and the cursor the batch covers.

use std::collections::{BTreeMap, HashMap, HashSet};

use plyr_lexicons::syntax::{validate_cid, validate_did, validate_tid};
use plyr_lexicons::{Namespace, RecordKind};

use crate::event::{Commit, Event, Operation};
use crate::record::Row;

/// Longest AT-URI stored (commit or subject). Postgres btree entries top out near 2.7 kB and
/// `comment_subject_idx` holds two URIs; real URIs are ~100 bytes.
const MAX_URI_BYTES: usize = 1024;

/// Longest `listType` stored: it is indexed, and the lexicon sets no bound.
const MAX_LIST_TYPE_BYTES: usize = 128;

/// Longest skip detail kept in `indexer_skip.last_detail`.
const MAX_DETAIL_CHARS: usize = 512;

/// Skip reason of bytes that are not a well-formed v1 event.
pub(crate) const MALFORMED_EVENT: &str = "malformed_event";
/// Skip reason of an event kind this client does not handle.
pub(crate) const UNKNOWN_KIND: &str = "unknown_kind";
/// Skip reason of a collection outside our namespace (`fm.plyr.stg.*` under `fm.plyr`, ...).
pub(crate) const FOREIGN_COLLECTION: &str = "foreign_collection";
/// Skip reason of a commit by an account that is deleted.
pub(crate) const ACTOR_DELETED: &str = "actor_deleted";
/// Skip reason of an AT-URI too long to index.
pub(crate) const UNSTORABLE_RECORD: &str = "unstorable_record";
/// Skip reason of a delete whose record key is malformed (the validator's label for writes).
const BAD_RECORD_KEY: &str = "bad_record_key";
/// Skip reason of an `app.bsky.actor.profile` record that is not a profile we can read.
pub(crate) const INVALID_RECORD: &str = "invalid_record";
/// The one collection kept outside our namespace: tracked actors' Bluesky profiles (display
/// name and avatar), record key `self`.
pub(crate) const BSKY_PROFILE: &str = "app.bsky.actor.profile";
/// Skip reason of an event Postgres refused even when applied alone.
pub(crate) const STORE_REJECTED: &str = "store_rejected";

/// One event after classification, with the time it moves the cursor to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Classified {
    /// Jetstream's `time_us`; `None` when the event was unreadable.
    pub time_us: Option<i64>,
    /// What to do with it.
    pub item: Item,
}

/// What one event asks of the store.
// Commits are nearly every event, so boxing the large variant would only add an allocation each.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Item {
    /// Write or delete one record.
    Commit(CommitOp),
    /// Set (or clear) an actor's handle.
    Identity(IdentityChange),
    /// Change an actor's hosting status.
    Account(AccountChange),
    /// A verified relay commit of a tracked repo: its namespace ops and the repo's chain
    /// advance, applied in the same batch so the chain never runs ahead of the records.
    RepoCommit(RepoCommit),
    /// A tracked repo's chain broke (a `since`/`prevData` gap, a `#sync`, a failed resync).
    Desynchronized(Desync),
    /// Nothing to store; counted by reason.
    Skip(Skip),
    /// Nothing to store and nothing wrong (a commit of an untracked repo, an event held for a
    /// resync): only moves the cursor.
    Cursor,
}

/// A relay `#commit` that passed the sync 1.1 checks, for a tracked repo.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RepoCommit {
    /// The repo's new chain position.
    pub advance: RepoAdvance,
    /// Its valid operations in our namespace (records of other collections are not stored).
    pub ops: Vec<CommitOp>,
    /// Its namespace records that failed validation.
    pub skips: Vec<Skip>,
}

/// Where a tracked repo's verified chain stands after a commit: `repo_state` moves here unless
/// it already holds a greater rev.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RepoAdvance {
    pub did: String,
    /// The commit's rev (a TID).
    pub rev: String,
    /// The MST root after the commit (the next commit's `prevData`).
    pub data_cid: String,
}

/// A tracked repo marked desynchronized (resynced from `getRepo` by the relay).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Desync {
    pub did: String,
    /// The rev that exposed the break: the mark is not written if `repo_state` already holds
    /// this rev or a greater one (a resync that landed first). `None` marks unconditionally.
    pub rev: Option<String>,
    /// Why, for `repo_state.reason` and the log.
    pub reason: String,
}

/// A valid write or delete of one record.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CommitOp {
    /// `at://{did}/{collection}/{rkey}`.
    pub uri: String,
    pub did: String,
    pub collection: String,
    pub rkey: String,
    /// The commit's rev (a TID): the ledger keeps the greatest.
    pub rev: String,
    pub kind: Kind,
    /// `Some` for a create or update, `None` for a delete.
    pub write: Option<Write>,
}

/// What collection a stored record belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// One of our namespace's lexicons.
    Record(RecordKind),
    /// [`BSKY_PROFILE`]: stored only for actors the view already holds.
    BskyProfile,
}

/// The kind of a collection this indexer stores, or `None` for any other.
pub(crate) fn kind_of(namespace: &Namespace, collection: &str) -> Option<Kind> {
    if collection == BSKY_PROFILE {
        return Some(Kind::BskyProfile);
    }
    namespace.kind_of(collection).map(Kind::Record)
}

/// The new version of a record.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Write {
    /// As Jetstream sent it.
    pub cid: String,
    pub row: Row,
}

/// An `#identity` event, its handle already checked.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IdentityChange {
    pub did: String,
    /// Lowercase and syntactically valid, or `None` (served as handle.invalid).
    pub handle: Option<String>,
}

/// An `#account` event.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AccountChange {
    pub did: String,
    pub active: bool,
    /// `None` when active.
    pub status: Option<String>,
}

impl AccountChange {
    /// Whether the account's content must be removed (status `deleted`).
    pub(crate) fn is_deletion(&self) -> bool {
        !self.active && self.status.as_deref() == Some("deleted")
    }
}

/// An event that stores nothing.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Skip {
    /// Counter label: a small fixed set.
    pub reason: &'static str,
    /// Free text for the log and `last_detail` (bounded, NUL-free).
    pub detail: String,
}

impl Skip {
    pub(crate) fn new(reason: &'static str, detail: impl AsRef<str>) -> Skip {
        let detail = detail
            .as_ref()
            .chars()
            .take(MAX_DETAIL_CHARS)
            .map(|c| if c == '\0' { '\u{fffd}' } else { c })
            .collect();
        Skip { reason, detail }
    }
}

/// Classifies one event: validates commits against the namespace's lexicons and extracts their
/// rows, checks identity and account fields. Logs every skip.
pub(crate) fn classify(namespace: &Namespace, event: Event) -> Classified {
    let time_us = event.time_us();
    let item = match event {
        Event::Commit(commit) => classify_commit(namespace, commit),
        Event::Identity { did, handle, .. } => match validate_did(&did) {
            Ok(()) => Item::Identity(IdentityChange {
                did,
                handle: handle.and_then(|h| checked_handle(&h)),
            }),
            Err(e) => Item::Skip(Skip::new(MALFORMED_EVENT, format!("identity: {e}"))),
        },
        Event::Account {
            did,
            active,
            status,
            ..
        } => classify_account(did, active, status),
        Event::Unknown { kind, .. } => Item::Skip(Skip::new(UNKNOWN_KIND, kind)),
        Event::Malformed { reason } => Item::Skip(Skip::new(MALFORMED_EVENT, reason)),
    };
    if let Item::Skip(skip) = &item {
        log_skip(skip);
    }
    Classified { time_us, item }
}

fn log_skip(skip: &Skip) {
    match skip.reason {
        FOREIGN_COLLECTION | UNKNOWN_KIND => {
            tracing::debug!(reason = skip.reason, detail = %skip.detail, "skipped event")
        }
        _ => tracing::warn!(reason = skip.reason, detail = %skip.detail, "skipped event"),
    }
}

fn classify_commit(namespace: &Namespace, commit: Commit) -> Item {
    let Commit {
        did,
        rev,
        collection,
        rkey,
        op,
        ..
    } = commit;
    if let Err(e) = validate_did(&did) {
        return Item::Skip(Skip::new(MALFORMED_EVENT, format!("commit: {e}")));
    }
    if let Err(e) = validate_tid(&rev) {
        return Item::Skip(Skip::new(MALFORMED_EVENT, format!("commit rev: {e}")));
    }
    let Some(kind) = kind_of(namespace, &collection) else {
        return Item::Skip(Skip::new(FOREIGN_COLLECTION, collection));
    };
    let uri = format!("at://{did}/{collection}/{rkey}");
    if kind == Kind::BskyProfile && rkey != "self" {
        return Item::Skip(Skip::new(BAD_RECORD_KEY, uri));
    }
    let write = match op {
        Operation::Delete => {
            if let Err(e) = plyr_lexicons::syntax::validate_record_key(&rkey) {
                return Item::Skip(Skip::new(BAD_RECORD_KEY, format!("{uri}: {e}")));
            }
            None
        }
        Operation::Write { cid, record } => {
            if let Err(e) = validate_cid(&cid) {
                return Item::Skip(Skip::new(MALFORMED_EVENT, format!("{uri}: {e}")));
            }
            let kind = match kind {
                Kind::Record(kind) => kind,
                Kind::BskyProfile => match Row::bsky_profile(&record) {
                    Ok(row) => return bsky_write(uri, did, collection, rkey, rev, cid, row),
                    Err(e) => {
                        return Item::Skip(Skip::new(INVALID_RECORD, format!("{uri}: {e}")));
                    }
                },
            };
            if let Err(rejection) = namespace.validate(&collection, &rkey, &record) {
                return Item::Skip(Skip::new(
                    rejection.kind().as_str(),
                    format!("{uri}: {}", error_chain(&rejection)),
                ));
            }
            match Row::extract(kind, &record).and_then(bounded) {
                Ok(row) => Some(Write { cid, row }),
                Err(e) => return Item::Skip(Skip::new(e.reason(), format!("{uri}: {e}"))),
            }
        }
    };
    if uri.len() > MAX_URI_BYTES {
        return Item::Skip(Skip::new(UNSTORABLE_RECORD, "record uri too long"));
    }
    Item::Commit(CommitOp {
        uri,
        did,
        collection,
        rkey,
        rev,
        kind,
        write,
    })
}

/// A valid `app.bsky.actor.profile/self` write (its URI is short: a DID and a fixed path).
fn bsky_write(
    uri: String,
    did: String,
    collection: String,
    rkey: String,
    rev: String,
    cid: String,
    row: Row,
) -> Item {
    if uri.len() > MAX_URI_BYTES {
        return Item::Skip(Skip::new(UNSTORABLE_RECORD, "record uri too long"));
    }
    Item::Commit(CommitOp {
        uri,
        did,
        collection,
        rkey,
        rev,
        kind: Kind::BskyProfile,
        write: Some(Write { cid, row }),
    })
}

/// `error: cause: cause`, for logs and skip details.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Refuses rows whose indexed columns would not fit a btree entry.
fn bounded(row: Row) -> Result<Row, crate::record::RowError> {
    use crate::record::RowError;
    let too_long = |uri: &str| uri.len() > MAX_URI_BYTES;
    let oversized = match &row {
        Row::Like(like) => too_long(&like.subject_uri),
        Row::Comment(comment) => too_long(&comment.subject_uri),
        Row::List(list) => {
            list.items.iter().any(|item| too_long(&item.subject_uri))
                || list
                    .list_type
                    .as_ref()
                    .is_some_and(|t| t.len() > MAX_LIST_TYPE_BYTES)
        }
        Row::Track(_) | Row::Profile(_) | Row::BskyProfile(_) => false,
    };
    if oversized {
        return Err(RowError::Range {
            field: "indexed string",
        });
    }
    Ok(row)
}

/// A handle fit to store: valid syntax, lowercase, and not the `handle.invalid` sentinel.
fn checked_handle(handle: &str) -> Option<String> {
    plyr_lexicons::syntax::validate_handle(handle).ok()?;
    let handle = plyr_lexicons::syntax::normalize_handle(handle);
    (handle != "handle.invalid").then_some(handle)
}

/// Longest account status kept; known ones are short words.
const MAX_STATUS_CHARS: usize = 64;

fn classify_account(did: String, active: bool, status: Option<String>) -> Item {
    if let Err(e) = validate_did(&did) {
        return Item::Skip(Skip::new(MALFORMED_EVENT, format!("account: {e}")));
    }
    let status = if active {
        None
    } else {
        match status {
            // An inactive account without a reason is still hidden.
            None => Some("inactive".to_owned()),
            Some(s)
                if !s.is_empty()
                    && s.len() <= MAX_STATUS_CHARS
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
            {
                Some(s)
            }
            Some(s) => {
                return Item::Skip(Skip::new(
                    MALFORMED_EVENT,
                    format!("account {did}: bad status {s:?}"),
                ));
            }
        }
    };
    Item::Account(AccountChange {
        did,
        active,
        status,
    })
}

/// A batch, ready for one transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Plan {
    /// Applied in order. Per DID they keep stream order; across DIDs, commits may move ahead
    /// of another DID's account change, since neither affects the other's rows and track
    /// counts are recounted from the final rows.
    pub segments: Vec<Segment>,
    /// Handle changes, the last per DID, applied after the segments (a handle touches no
    /// record, so only its order against other handles of the same DID matters).
    pub identities: Vec<IdentityChange>,
    /// Chain advances of tracked repos (relay), the greatest rev per DID, applied after the
    /// segments in the same transaction.
    pub repos: Vec<RepoAdvance>,
    /// Repos marked desynchronized, applied after `repos`.
    pub desyncs: Vec<Desync>,
    /// Skips by reason.
    pub skips: BTreeMap<&'static str, SkipTally>,
    /// The greatest `time_us` (relay: seq) in the batch: where the stream resumes.
    pub cursor: Option<i64>,
    /// How many events the batch holds (skipped ones included).
    pub events: usize,
}

/// A run of commits or of account changes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Segment {
    /// Record writes and deletes: one per URI (the greatest rev).
    Commits(Vec<CommitOp>),
    /// Status changes, all of them, in order.
    Accounts(Vec<AccountChange>),
}

/// How many events were skipped for one reason, and the last one's detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SkipTally {
    pub count: i64,
    pub last_detail: String,
}

impl Plan {
    /// Counts one skip.
    pub(crate) fn add_skip(&mut self, skip: Skip) {
        let tally = self.skips.entry(skip.reason).or_insert(SkipTally {
            count: 0,
            last_detail: String::new(),
        });
        tally.count += 1;
        tally.last_detail = skip.detail;
    }
}

/// Groups a batch for the store. Commits gather in one segment, one per URI (the greatest
/// rev; the first of equals), until a commit comes from a DID with an account change pending
/// after that segment: then a new commit segment starts after the account changes. Account
/// events are rare next to commits, so a batch is usually one or three segments.
pub(crate) fn plan(items: Vec<Classified>) -> Plan {
    let mut plan = Plan {
        events: items.len(),
        ..Plan::default()
    };
    let mut builder = Builder::default();
    for Classified { time_us, item } in items {
        if let Some(t) = time_us {
            plan.cursor = Some(plan.cursor.map_or(t, |c| c.max(t)));
        }
        match item {
            Item::Skip(skip) => plan.add_skip(skip),
            Item::Cursor => {}
            Item::Commit(op) => builder.commit(&mut plan.segments, op),
            Item::RepoCommit(commit) => {
                for op in commit.ops {
                    builder.commit(&mut plan.segments, op);
                }
                for skip in commit.skips {
                    plan.add_skip(skip);
                }
                let advance = commit.advance;
                match builder.repos.get(&advance.did) {
                    Some(&i) => {
                        if let Some(kept) = plan.repos.get_mut(i)
                            && advance.rev > kept.rev
                        {
                            *kept = advance;
                        }
                    }
                    None => {
                        builder.repos.insert(advance.did.clone(), plan.repos.len());
                        plan.repos.push(advance);
                    }
                }
            }
            Item::Desynchronized(desync) => plan.desyncs.push(desync),
            Item::Account(change) => builder.account(&mut plan.segments, change),
            Item::Identity(change) => match builder.identities.get(&change.did) {
                Some(&i) => {
                    if let Some(kept) = plan.identities.get_mut(i) {
                        *kept = change;
                    }
                }
                None => {
                    builder
                        .identities
                        .insert(change.did.clone(), plan.identities.len());
                    plan.identities.push(change);
                }
            },
        }
    }
    plan
}

/// Where [`plan`] is putting things.
#[derive(Default)]
struct Builder {
    /// Index of the segment commits go to.
    commits: Option<usize>,
    /// Its ops by URI.
    by_uri: HashMap<String, usize>,
    /// Index of the account segment after it, and the DIDs in that segment.
    accounts: Option<usize>,
    account_dids: HashSet<String>,
    /// `Plan::identities` by DID.
    identities: HashMap<String, usize>,
    /// `Plan::repos` by DID.
    repos: HashMap<String, usize>,
}

impl Builder {
    fn commit(&mut self, segments: &mut Vec<Segment>, op: CommitOp) {
        if self.commits.is_none() || self.account_dids.contains(&op.did) {
            segments.push(Segment::Commits(Vec::new()));
            self.commits = Some(segments.len() - 1);
            self.by_uri.clear();
            self.accounts = None;
            self.account_dids.clear();
        }
        let Some(Segment::Commits(ops)) = self.commits.and_then(|i| segments.get_mut(i)) else {
            return;
        };
        match self.by_uri.get(&op.uri) {
            Some(&i) => {
                if let Some(kept) = ops.get_mut(i)
                    && op.rev > kept.rev
                {
                    *kept = op;
                }
            }
            None => {
                self.by_uri.insert(op.uri.clone(), ops.len());
                ops.push(op);
            }
        }
    }

    fn account(&mut self, segments: &mut Vec<Segment>, change: AccountChange) {
        if self.accounts.is_none() {
            segments.push(Segment::Accounts(Vec::new()));
            self.accounts = Some(segments.len() - 1);
            self.account_dids.clear();
        }
        // Until the next commit segment opens, commits go before this account segment, except
        // those by an actor with a change in it.
        self.account_dids.insert(change.did.clone());
        if let Some(Segment::Accounts(changes)) = self.accounts.and_then(|i| segments.get_mut(i)) {
            changes.push(change);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::decode;
    use crate::testing::*;
    use serde_json::json;

    fn ns() -> Namespace {
        Namespace::new("fm.plyr").expect("test namespace")
    }

    fn classify_str(event: &str) -> Classified {
        classify(&ns(), decode(event.as_bytes()))
    }

    fn reason(c: &Classified) -> Option<&'static str> {
        match &c.item {
            Item::Skip(skip) => Some(skip.reason),
            _ => None,
        }
    }

    #[test]
    fn classifies_commits() {
        let t1 = tid(1);
        let track_uri = uri(ALICE, "track", &t1);
        let cases: Vec<(String, Option<&str>)> = vec![
            (track(1, ALICE, &t1, &t1, "a"), None),
            (like(1, BOB, &t1, &t1, &track_uri), None),
            (delete(1, ALICE, "fm.plyr.track", &t1, &t1), None),
            (
                write(
                    1,
                    ALICE,
                    "fm.plyr.stg.track",
                    &t1,
                    &t1,
                    CID,
                    track_record("a"),
                ),
                Some(FOREIGN_COLLECTION),
            ),
            (
                write(1, ALICE, "app.bsky.feed.post", &t1, &t1, CID, json!({})),
                Some(FOREIGN_COLLECTION),
            ),
            (track(1, "not-a-did", &t1, &t1, "a"), Some(MALFORMED_EVENT)),
            (track(1, ALICE, &t1, "notatid", "a"), Some(MALFORMED_EVENT)),
            (
                write(
                    1,
                    ALICE,
                    "fm.plyr.track",
                    &t1,
                    &t1,
                    "nope",
                    track_record("a"),
                ),
                Some(MALFORMED_EVENT),
            ),
            (track(1, ALICE, "self", &t1, "a"), Some("bad_record_key")),
            (
                delete(1, ALICE, "fm.plyr.track", "..", &t1),
                Some(BAD_RECORD_KEY),
            ),
            (
                write(1, ALICE, "fm.plyr.track", &t1, &t1, CID, {
                    let mut r = track_record("a");
                    r["$type"] = json!("fm.plyr.like");
                    r
                }),
                Some("type_mismatch"),
            ),
            (
                write(
                    1,
                    ALICE,
                    "fm.plyr.track",
                    &t1,
                    &t1,
                    CID,
                    json!({"$type": "fm.plyr.track"}),
                ),
                Some("lexicon"),
            ),
            (
                like(1, BOB, &t1, &t1, "https://example.com/x"),
                Some("lexicon"),
            ),
            (
                like(
                    1,
                    BOB,
                    &t1,
                    &t1,
                    &format!("at://{ALICE}/fm.plyr.stg.track/{t1}"),
                ),
                Some("app_rule"),
            ),
            (
                write(1, ALICE, "fm.plyr.track", &t1, &t1, CID, {
                    let mut r = track_record("a");
                    r["title"] = json!("nul\u{0}");
                    r
                }),
                Some("nul_character"),
            ),
            // Valid, but too long to index.
            (
                like(
                    1,
                    BOB,
                    &t1,
                    &t1,
                    &format!("at://did:plc:{}/fm.plyr.track/{t1}", "a".repeat(1100)),
                ),
                Some(UNSTORABLE_RECORD),
            ),
        ];
        for (event, want) in cases {
            let got = classify_str(&event);
            assert_eq!(reason(&got), want, "{event}: {got:?}");
            assert_eq!(got.time_us, Some(1), "{event}");
        }
    }

    #[test]
    fn a_valid_write_carries_its_row() {
        let t1 = tid(7);
        let got = classify_str(&track(9, ALICE, &t1, &tid(8), "Night Drive"));
        let Item::Commit(op) = got.item else {
            panic!("not a commit: {got:?}");
        };
        assert_eq!(op.uri, uri(ALICE, "track", &t1));
        assert_eq!(op.rev, tid(8));
        assert_eq!(op.kind, Kind::Record(RecordKind::Track));
        let Some(Write {
            cid,
            row: Row::Track(row),
        }) = op.write
        else {
            panic!("not a track write");
        };
        assert_eq!(cid, CID);
        assert_eq!(row.title, "Night Drive");
    }

    #[test]
    fn classifies_identity_and_account() {
        let cases = [
            (
                identity(1, ALICE, Some("Alice.Example.COM")),
                Item::Identity(IdentityChange {
                    did: ALICE.into(),
                    handle: Some("alice.example.com".into()),
                }),
            ),
            (
                identity(1, ALICE, Some("handle.invalid")),
                Item::Identity(IdentityChange {
                    did: ALICE.into(),
                    handle: None,
                }),
            ),
            (
                identity(1, ALICE, Some("not a handle")),
                Item::Identity(IdentityChange {
                    did: ALICE.into(),
                    handle: None,
                }),
            ),
            (
                identity(1, ALICE, None),
                Item::Identity(IdentityChange {
                    did: ALICE.into(),
                    handle: None,
                }),
            ),
            (
                account(1, ALICE, false, Some("takendown")),
                Item::Account(AccountChange {
                    did: ALICE.into(),
                    active: false,
                    status: Some("takendown".into()),
                }),
            ),
            (
                account(1, ALICE, false, None),
                Item::Account(AccountChange {
                    did: ALICE.into(),
                    active: false,
                    status: Some("inactive".into()),
                }),
            ),
            (
                account(1, ALICE, true, Some("throttled")),
                Item::Account(AccountChange {
                    did: ALICE.into(),
                    active: true,
                    status: None,
                }),
            ),
        ];
        for (event, want) in cases {
            assert_eq!(classify_str(&event).item, want, "{event}");
        }
        let bad = [
            account(1, ALICE, false, Some("bad status!")),
            account(1, "nope", true, None),
            identity(1, "nope", Some("a.example.com")),
        ];
        for event in bad {
            assert_eq!(
                reason(&classify_str(&event)),
                Some(MALFORMED_EVENT),
                "{event}"
            );
        }
    }

    fn commit(uri: &str, rev: u64) -> Classified {
        commit_by(ALICE, uri, rev)
    }

    fn commit_by(did: &str, uri: &str, rev: u64) -> Classified {
        Classified {
            time_us: Some(i64::try_from(rev).unwrap_or(0)),
            item: Item::Commit(CommitOp {
                uri: uri.into(),
                did: did.into(),
                collection: "fm.plyr.track".into(),
                rkey: "k".into(),
                rev: tid(rev),
                kind: Kind::Record(RecordKind::Track),
                write: None,
            }),
        }
    }

    fn ident(did: &str, handle: &str, time_us: i64) -> Classified {
        Classified {
            time_us: Some(time_us),
            item: Item::Identity(IdentityChange {
                did: did.into(),
                handle: Some(handle.into()),
            }),
        }
    }

    fn acct(did: &str, active: bool, time_us: i64) -> Classified {
        Classified {
            time_us: Some(time_us),
            item: Item::Account(AccountChange {
                did: did.into(),
                active,
                status: (!active).then(|| "deactivated".to_owned()),
            }),
        }
    }

    fn skip(reason: &'static str) -> Classified {
        Classified {
            time_us: None,
            item: Item::Skip(Skip::new(reason, "x")),
        }
    }

    /// `uri@rev` of each commit, `acct:did=active` of each account change, by segment, then
    /// `id:did=handle` of the identities as a last group.
    fn shape(plan: &Plan) -> Vec<Vec<String>> {
        let mut shape: Vec<Vec<String>> = plan
            .segments
            .iter()
            .map(|s| match s {
                Segment::Commits(ops) => ops
                    .iter()
                    .map(|op| format!("{}@{}", op.uri, op.rev))
                    .collect(),
                Segment::Accounts(c) => c
                    .iter()
                    .map(|c| format!("acct:{}={}", c.did, c.active))
                    .collect(),
            })
            .collect();
        if !plan.identities.is_empty() {
            shape.push(
                plan.identities
                    .iter()
                    .map(|c| format!("id:{}={:?}", c.did, c.handle))
                    .collect(),
            );
        }
        shape
    }

    #[test]
    fn plans_segments_in_stream_order() {
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        let at = |u: &str, r: u64| format!("{u}@{}", tid(r));
        // (items, expected shape, expected cursor)
        type Case = (Vec<Classified>, Vec<Vec<String>>, Option<i64>);
        let cases: Vec<Case> = vec![
            (vec![], vec![], None),
            // Highest rev per URI wins within a run, whatever the arrival order.
            (
                vec![
                    commit("a", 2),
                    commit("b", 1),
                    commit("a", 3),
                    commit("a", 1),
                ],
                vec![vec![at("a", 3), at("b", 1)]],
                Some(3),
            ),
            // An account event splits the run: each side is deduplicated on its own.
            (
                vec![
                    commit("a", 1),
                    acct(ALICE, false, 5),
                    commit("a", 2),
                    commit("a", 4),
                ],
                vec![
                    vec![at("a", 1)],
                    s(&[&format!("acct:{ALICE}=false")]),
                    vec![at("a", 4)],
                ],
                Some(5),
            ),
            // Another DID's account change does not split the run: Bob's commit joins the
            // segment before it, and later commits of Alice's go after it.
            (
                vec![
                    commit_by(ALICE, "a", 1),
                    acct(ALICE, false, 5),
                    commit_by(BOB, "b", 2),
                    commit_by(ALICE, "c", 3),
                    acct(BOB, true, 6),
                    commit_by(ALICE, "d", 4),
                    commit_by(BOB, "e", 4),
                ],
                vec![
                    vec![at("a", 1), at("b", 2)],
                    s(&[&format!("acct:{ALICE}=false")]),
                    vec![at("c", 3), at("d", 4)],
                    s(&[&format!("acct:{BOB}=true")]),
                    vec![at("e", 4)],
                ],
                Some(6),
            ),
            // A batch that opens with an account change.
            (
                vec![acct(BOB, false, 1), commit_by(ALICE, "a", 2)],
                vec![s(&[&format!("acct:{BOB}=false")]), vec![at("a", 2)]],
                Some(2),
            ),
            // Identities: the last per DID, after everything else, never splitting commits.
            (
                vec![
                    ident(ALICE, "a.example.com", 1),
                    commit("a", 1),
                    ident(BOB, "b.example.com", 2),
                    commit("b", 2),
                    ident(ALICE, "c.example.com", 3),
                ],
                vec![
                    vec![at("a", 1), at("b", 2)],
                    s(&[
                        &format!("id:{ALICE}=Some(\"c.example.com\")"),
                        &format!("id:{BOB}=Some(\"b.example.com\")"),
                    ]),
                ],
                Some(3),
            ),
            // Accounts keep every change in order.
            (
                vec![acct(ALICE, false, 1), acct(ALICE, true, 2)],
                vec![s(&[
                    &format!("acct:{ALICE}=false"),
                    &format!("acct:{ALICE}=true"),
                ])],
                Some(2),
            ),
            // Skips never open a segment; malformed ones have no time.
            (
                vec![skip(MALFORMED_EVENT), commit("a", 1), skip(UNKNOWN_KIND)],
                vec![vec![at("a", 1)]],
                Some(1),
            ),
        ];
        for (items, want, cursor) in cases {
            let n = items.len();
            let plan = plan(items);
            assert_eq!(shape(&plan), want);
            assert_eq!(plan.cursor, cursor);
            assert_eq!(plan.events, n);
        }
    }

    #[test]
    fn tallies_skips_by_reason() {
        let plan = plan(vec![
            skip(MALFORMED_EVENT),
            skip(FOREIGN_COLLECTION),
            skip(MALFORMED_EVENT),
        ]);
        let counts: Vec<(&str, i64)> = plan.skips.iter().map(|(r, t)| (*r, t.count)).collect();
        assert_eq!(counts, vec![(FOREIGN_COLLECTION, 1), (MALFORMED_EVENT, 2)]);
        assert_eq!(plan.cursor, None);
    }

    #[test]
    fn plan_is_idempotent_under_duplication() {
        // Replaying a batch inside itself (a rewind within one batch) plans the same writes.
        let items = vec![
            commit("a", 2),
            commit("b", 5),
            commit("a", 7),
            commit("c", 1),
        ];
        let once = plan(items.clone());
        let doubled: Vec<Classified> = items.iter().chain(items.iter()).cloned().collect();
        let twice = plan(doubled);
        assert_eq!(shape(&once), shape(&twice));
        assert_eq!(once.cursor, twice.cursor);
    }

    #[test]
    fn skip_details_are_bounded_and_nul_free() {
        let skip = Skip::new(MALFORMED_EVENT, format!("a\u{0}{}", "x".repeat(5000)));
        assert!(!skip.detail.contains('\0'));
        assert_eq!(skip.detail.chars().count(), MAX_DETAIL_CHARS);
    }
}

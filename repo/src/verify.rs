//! The sync 1.1 checks: a `#commit` (CAR slice, message fields, signature, MST inversion
//! against `prevData`) and a `#sync`, each yielding what a caller may index.

use std::collections::HashSet;

use cid::Cid;

use crate::car::{CarError, CarLimits, read_car};
use crate::commit::Commit;
use crate::crypto::{CryptoError, PublicKey};
use crate::data_model::{DataModelError, cbor_to_json};
use crate::error::ErrorKind;
use crate::frame::{Action, CommitEvent, SyncEvent};
use crate::mst::{Change, MstError, invert};

/// At most 200 operations per `#commit` (lexicon `com.atproto.sync.subscribeRepos`).
pub const MAX_OPS: usize = 200;

/// Why a commit, sync or repository failed verification.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The CAR is malformed, over a cap, or holds a block that does not match its CID.
    #[error(transparent)]
    Car(#[from] CarError),
    /// The MST is malformed, incomplete, or disagrees with the operations.
    #[error(transparent)]
    Mst(#[from] MstError),
    /// The signature (or the key) is bad.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// A block the check needs is not in the CAR.
    #[error("missing {what} block {cid}")]
    MissingBlock {
        /// What the block should hold ("commit", "record").
        what: &'static str,
        /// The absent block.
        cid: Cid,
    },
    /// The commit block is malformed or not version 3.
    #[error("malformed commit {cid}: {reason}")]
    MalformedCommit {
        /// The commit block.
        cid: Cid,
        /// What is wrong.
        reason: String,
    },
    /// A message field disagrees with the signed commit or the CAR.
    #[error("{field} mismatch: message says {message}, commit says {commit}")]
    FieldsMismatch {
        /// Which field.
        field: &'static str,
        /// The message's value.
        message: String,
        /// The commit's (or CAR's) value.
        commit: String,
    },
    /// No `prevData`, so the operations cannot be proven.
    #[error("commit has no prevData")]
    MissingPrevData,
    /// An operation is inconsistent.
    #[error("invalid op at {path}: {reason}")]
    InvalidOp {
        /// The op's path.
        path: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// More than [`MAX_OPS`] operations.
    #[error("{count} ops is over the limit of {MAX_OPS}")]
    TooManyOps {
        /// How many the message carried.
        count: usize,
    },
    /// Undoing the operations does not reproduce `prevData`.
    #[error("inverted tree root {computed} does not match prevData {expected}")]
    RootMismatch {
        /// The message's `prevData` (a string: two CIDs would bloat every `Result`).
        expected: String,
        /// What inversion produced.
        computed: String,
    },
}

impl VerifyError {
    /// The classification of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            VerifyError::Car(e) => e.kind(),
            VerifyError::Mst(e) => e.kind(),
            VerifyError::Crypto(e) => e.kind(),
            VerifyError::MissingBlock { .. } => ErrorKind::MissingBlock,
            VerifyError::MalformedCommit { .. } => ErrorKind::MalformedCommit,
            VerifyError::FieldsMismatch { .. } => ErrorKind::FieldsMismatch,
            VerifyError::MissingPrevData => ErrorKind::MissingPrevData,
            VerifyError::InvalidOp { .. } => ErrorKind::InvalidOp,
            VerifyError::TooManyOps { .. } => ErrorKind::TooLarge,
            VerifyError::RootMismatch { .. } => ErrorKind::MstMismatch,
        }
    }
}

fn fields_mismatch(field: &'static str, message: &str, commit: &str) -> VerifyError {
    VerifyError::FieldsMismatch {
        field,
        message: message.to_owned(),
        commit: commit.to_owned(),
    }
}

/// A `#commit` that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCommit<'a> {
    /// Stream sequence number.
    pub seq: i64,
    /// The repository's DID (the message's `repo`, equal to the commit's `did`).
    pub did: String,
    /// The commit's revision.
    pub rev: String,
    /// The previous revision, as the message claims it (compare with stored state).
    pub since: Option<String>,
    /// When the event was emitted.
    pub time: String,
    /// CID of the commit block.
    pub commit: Cid,
    /// The MST root after the commit.
    pub data: Cid,
    /// The MST root before the commit, proven by inversion.
    pub prev_data: Cid,
    /// The operations, in message order.
    pub ops: Vec<VerifiedOp<'a>>,
}

/// One proven operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedOp<'a> {
    /// Create, update or delete.
    pub action: Action,
    /// `collection/rkey`.
    pub path: String,
    /// The new record's CID (creates and updates).
    pub cid: Option<Cid>,
    /// The previous record's CID (updates and deletes).
    pub prev: Option<Cid>,
    /// The new record's DAG-CBOR, hash-checked against `cid` (creates and updates).
    pub record: Option<&'a [u8]>,
}

impl VerifiedOp<'_> {
    /// The collection NSID (the path before `/`).
    pub fn collection(&self) -> &str {
        self.path
            .split_once('/')
            .map_or("", |(collection, _)| collection)
    }

    /// The record key (the path after `/`).
    pub fn rkey(&self) -> &str {
        self.path.split_once('/').map_or("", |(_, rkey)| rkey)
    }

    /// The new record in the ATProto JSON data model (`None` for deletes). Decoding is left to
    /// the caller so records of collections it does not index cost nothing.
    pub fn record_json(&self) -> Result<Option<serde_json::Value>, DataModelError> {
        self.record.map(cbor_to_json).transpose()
    }
}

/// A `#sync` whose commit is signed by the key and matches the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSync {
    /// Stream sequence number.
    pub seq: i64,
    /// The repository's DID.
    pub did: String,
    /// The commit's revision.
    pub rev: String,
    /// CID of the commit block.
    pub commit: Cid,
    /// The MST root the repository was reset to.
    pub data: Cid,
}

/// Finds the CAR's first root (the commit) and decodes it; the signature is checked later,
/// after the cheaper field checks.
pub(crate) fn car_commit(car: &crate::car::Car<'_>) -> Result<(Cid, Commit), VerifyError> {
    let cid = *car.roots().first().ok_or_else(|| CarError::Malformed {
        offset: 0,
        reason: "no root".to_owned(),
    })?;
    let bytes = car.get(&cid).ok_or(VerifyError::MissingBlock {
        what: "commit",
        cid,
    })?;
    let commit = Commit::decode(bytes)?;
    Ok((cid, commit))
}

/// Runs the whole sync 1.1 check of a `#commit` with the repository's signing key.
///
/// Checks, in order: op count, the CAR slice (caps, every block's CID), that its root is the
/// message's `commit`, that `repo` and `rev` match the signed commit, the signature, each op's
/// shape, that every op's result is in the new tree, and that undoing the ops reproduces
/// `prevData`. Returns the ops with their hash-checked record bytes.
pub fn verify_commit<'a>(
    event: &CommitEvent<'a>,
    key: &PublicKey,
) -> Result<VerifiedCommit<'a>, VerifyError> {
    if event.ops.len() > MAX_OPS {
        return Err(VerifyError::TooManyOps {
            count: event.ops.len(),
        });
    }
    let car = read_car(event.blocks, &CarLimits::COMMIT)?;
    if car.roots().first() != Some(&event.commit) {
        let root = car.roots().first().map(Cid::to_string).unwrap_or_default();
        return Err(fields_mismatch("commit", &event.commit.to_string(), &root));
    }
    // Cheap field checks first, so a mismatched message costs no signature check.
    let (commit_cid, commit) = car_commit(&car)?;
    if commit.did != event.repo {
        return Err(fields_mismatch("repo", &event.repo, &commit.did));
    }
    if commit.rev != event.rev {
        return Err(fields_mismatch("rev", &event.rev, &commit.rev));
    }
    commit.verify_signature(key)?;
    let prev_data = event.prev_data.ok_or(VerifyError::MissingPrevData)?;

    let changes = changes(event)?;
    let inversion = invert(car.blocks(), commit.data, &changes)?;
    if inversion.root != prev_data {
        return Err(VerifyError::RootMismatch {
            expected: prev_data.to_string(),
            computed: inversion.root.to_string(),
        });
    }

    let mut ops = Vec::with_capacity(event.ops.len());
    for op in &event.ops {
        let record = match op.cid {
            Some(cid) => Some(car.get(&cid).ok_or(VerifyError::MissingBlock {
                what: "record",
                cid,
            })?),
            None => None,
        };
        ops.push(VerifiedOp {
            action: op.action,
            path: op.path.clone(),
            cid: op.cid,
            prev: op.prev,
            record,
        });
    }
    Ok(VerifiedCommit {
        seq: event.seq,
        did: commit.did,
        rev: commit.rev,
        since: event.since.clone(),
        time: event.time.clone(),
        commit: commit_cid,
        data: commit.data,
        prev_data,
        ops,
    })
}

/// Checks each op's shape and turns it into the change inversion undoes.
fn changes<'e>(event: &'e CommitEvent<'_>) -> Result<Vec<(&'e str, Change)>, VerifyError> {
    let mut seen = HashSet::with_capacity(event.ops.len());
    let mut changes = Vec::with_capacity(event.ops.len());
    for op in &event.ops {
        let invalid = |reason| VerifyError::InvalidOp {
            path: op.path.clone(),
            reason,
        };
        match op.path.split_once('/') {
            Some((collection, rkey))
                if !collection.is_empty() && !rkey.is_empty() && !rkey.contains('/') => {}
            _ => return Err(invalid("path is not collection/rkey")),
        }
        if !seen.insert(op.path.as_str()) {
            return Err(invalid("path appears twice"));
        }
        let change = match (op.action, op.cid, op.prev) {
            (Action::Create, Some(cid), None) => Change::Create { cid },
            (Action::Update, Some(cid), Some(prev)) => Change::Update { cid, prev },
            (Action::Delete, None, Some(prev)) => Change::Delete { prev },
            (Action::Create, _, _) => return Err(invalid("create needs cid and no prev")),
            (Action::Update, _, _) => return Err(invalid("update needs cid and prev")),
            (Action::Delete, _, _) => return Err(invalid("delete needs prev and no cid")),
        };
        changes.push((op.path.as_str(), change));
    }
    Ok(changes)
}

/// Checks a `#sync`: the CAR holds a commit signed by the key whose `did` and `rev` match.
pub fn verify_sync(event: &SyncEvent<'_>, key: &PublicKey) -> Result<VerifiedSync, VerifyError> {
    let car = read_car(event.blocks, &CarLimits::SYNC)?;
    let (commit_cid, commit) = car_commit(&car)?;
    if commit.did != event.did {
        return Err(fields_mismatch("did", &event.did, &commit.did));
    }
    if commit.rev != event.rev {
        return Err(fields_mismatch("rev", &event.rev, &commit.rev));
    }
    commit.verify_signature(key)?;
    Ok(VerifiedSync {
        seq: event.seq,
        did: commit.did,
        rev: commit.rev,
        commit: commit_cid,
        data: commit.data,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::builder::{RepoBuilder, Write};
    use crate::car::{Car, write_car};
    use crate::data_model::cid_for_cbor;
    use crate::frame::{Frame, decode_frame};
    use crate::repo::Repo;

    const DID: &str = "did:plc:verifytest";
    const TIME: &str = "2026-01-01T00:00:00.000Z";

    fn track(title: &str) -> serde_json::Value {
        json!({"$type": "fm.plyr.track", "title": title, "createdAt": TIME})
    }

    fn create(path: &str, title: &str) -> Write {
        Write::Create {
            path: path.to_owned(),
            record: track(title),
        }
    }

    fn commit_event(frame: &[u8]) -> CommitEvent<'_> {
        match decode_frame(frame) {
            Ok(Frame::Commit(event)) => event,
            other => panic!("not a commit frame: {other:?}"),
        }
    }

    /// A repo with a few dozen records, so the tree has several layers.
    fn populated() -> RepoBuilder {
        let mut repo = RepoBuilder::new(DID, [0x11; 32]).expect("builder");
        let writes: Vec<Write> = (0..40)
            .map(|i| create(&format!("fm.plyr.track/3k{i:011}"), &format!("t{i}")))
            .collect();
        repo.commit(&writes, TIME).expect("commit");
        repo
    }

    #[test]
    fn builder_commits_verify() {
        let mut repo = populated();
        let key = repo.public_key();
        let steps: Vec<Vec<Write>> = vec![
            vec![create("fm.plyr.track/3znew0000001", "new")],
            vec![Write::Update {
                path: "fm.plyr.track/3k00000000003".to_owned(),
                record: track("renamed"),
            }],
            vec![
                Write::Delete {
                    path: "fm.plyr.track/3k00000000007".to_owned(),
                },
                create("fm.plyr.like/3zlike0000001", "like"),
            ],
        ];
        for writes in steps {
            let prev_rev = repo.rev().map(str::to_owned);
            let frame = repo.commit(&writes, TIME).expect("commit");
            let event = commit_event(&frame);
            let verified = verify_commit(&event, &key).expect("verifies");
            assert_eq!(verified.did, DID);
            assert_eq!(verified.since, prev_rev);
            assert_eq!(verified.data, repo.data());
            assert_eq!(verified.ops.len(), writes.len());
            for (op, write) in verified.ops.iter().zip(&writes) {
                match write {
                    Write::Create { path, record } | Write::Update { path, record } => {
                        assert_eq!(&op.path, path);
                        assert_eq!(op.record_json().expect("valid"), Some(record.clone()));
                    }
                    Write::Delete { path } => {
                        assert_eq!(&op.path, path);
                        assert_eq!(op.action, Action::Delete);
                        assert_eq!(op.record_json().expect("valid"), None);
                    }
                }
            }
        }
    }

    #[test]
    fn commit_signed_by_another_key_is_rejected() {
        let mut repo = populated();
        let other = RepoBuilder::new(DID, [0x22; 32])
            .expect("builder")
            .public_key();
        let frame = repo
            .commit(&[create("fm.plyr.track/3znew0000001", "x")], TIME)
            .expect("commit");
        let err = verify_commit(&commit_event(&frame), &other).expect_err("wrong key");
        assert_eq!(err.kind(), ErrorKind::BadSignature);
    }

    /// Rebuilds a CAR from `car`, with `edit` choosing and changing blocks.
    fn rebuild(car: &Car<'_>, edit: impl Fn(&Cid, &[u8]) -> Option<Vec<u8>>) -> Vec<u8> {
        let blocks: Vec<(Cid, Vec<u8>)> = car
            .blocks()
            .iter()
            .filter_map(|(cid, bytes)| edit(cid, bytes).map(|bytes| (*cid, bytes)))
            .collect();
        write_car(
            car.roots(),
            blocks.iter().map(|(cid, bytes)| (*cid, bytes.as_slice())),
        )
    }

    #[test]
    fn tampered_commits_are_rejected() {
        let mut repo = populated();
        let key = repo.public_key();
        let frame = repo
            .commit(
                &[
                    create("fm.plyr.track/3znew0000001", "x"),
                    Write::Delete {
                        path: "fm.plyr.track/3k00000000005".to_owned(),
                    },
                ],
                TIME,
            )
            .expect("commit");
        let event = commit_event(&frame);
        let car = read_car(event.blocks, &CarLimits::COMMIT).expect("car");
        let commit_cid = event.commit;
        let record_cid = event.ops[0].cid.expect("create cid");
        let node_cid = Commit::decode(car.get(&commit_cid).expect("commit block"))
            .expect("commit")
            .data;

        let flipped = rebuild(&car, |cid, bytes| {
            let mut bytes = bytes.to_vec();
            if *cid == record_cid
                && let Some(last) = bytes.last_mut()
            {
                *last ^= 1;
            }
            Some(bytes)
        });
        let no_root_node = rebuild(&car, |cid, bytes| {
            (*cid != node_cid).then(|| bytes.to_vec())
        });
        let no_record = rebuild(&car, |cid, bytes| {
            (*cid != record_cid).then(|| bytes.to_vec())
        });
        let other_cid = cid_for_cbor(b"\xa0");

        type Tamper = Box<dyn Fn(&mut CommitEvent<'_>)>;
        let table: Vec<(&str, Tamper, ErrorKind)> = vec![
            (
                "repo differs",
                Box::new(|e| e.repo = "did:plc:other".to_owned()),
                ErrorKind::FieldsMismatch,
            ),
            (
                "rev differs",
                Box::new(|e| e.rev = "3zzzzzzzzzzzz".to_owned()),
                ErrorKind::FieldsMismatch,
            ),
            (
                "commit cid differs",
                Box::new(move |e| e.commit = other_cid),
                ErrorKind::FieldsMismatch,
            ),
            (
                "prevData wrong",
                Box::new(move |e| e.prev_data = Some(other_cid)),
                ErrorKind::MstMismatch,
            ),
            (
                "prevData missing",
                Box::new(|e| e.prev_data = None),
                ErrorKind::MissingPrevData,
            ),
            (
                "op cid wrong",
                Box::new(move |e| e.ops[0].cid = Some(other_cid)),
                ErrorKind::MstMismatch,
            ),
            (
                "op path wrong",
                Box::new(|e| e.ops[0].path = "fm.plyr.track/3zother".to_owned()),
                ErrorKind::MstMismatch,
            ),
            (
                "op dropped",
                Box::new(|e| {
                    e.ops.pop();
                }),
                ErrorKind::MstMismatch,
            ),
            (
                "delete without prev",
                Box::new(|e| e.ops[1].prev = None),
                ErrorKind::InvalidOp,
            ),
            (
                "bad path",
                Box::new(|e| e.ops[0].path = "nopath".to_owned()),
                ErrorKind::InvalidOp,
            ),
            (
                "duplicate op",
                Box::new(|e| {
                    let op = e.ops[0].clone();
                    e.ops.push(op);
                }),
                ErrorKind::InvalidOp,
            ),
            (
                "too many ops",
                Box::new(|e| {
                    let op = e.ops[0].clone();
                    e.ops = vec![op; MAX_OPS + 1];
                }),
                ErrorKind::TooLarge,
            ),
        ];
        for (name, tamper, kind) in table {
            let mut event = event.clone();
            tamper(&mut event);
            let err = verify_commit(&event, &key).expect_err(name);
            assert_eq!(err.kind(), kind, "{name}: {err}");
        }

        let blocks_table: [(&str, &[u8], ErrorKind); 3] = [
            ("record bytes flipped", &flipped, ErrorKind::CidMismatch),
            ("root node missing", &no_root_node, ErrorKind::MissingBlock),
            ("record missing", &no_record, ErrorKind::MissingBlock),
        ];
        for (name, blocks, kind) in blocks_table {
            let mut event = event.clone();
            event.blocks = blocks;
            let err = verify_commit(&event, &key).expect_err(name);
            assert_eq!(err.kind(), kind, "{name}: {err}");
        }
        // The untouched event still verifies, so each rejection above is the tamper's doing.
        assert_eq!(
            verify_commit(&event, &key)
                .map(|v| v.ops.len())
                .map_err(|e| e.kind()),
            Ok(2)
        );
    }

    #[test]
    fn sync_frames_verify() {
        let mut repo = populated();
        let key = repo.public_key();
        let other = RepoBuilder::new(DID, [0x22; 32])
            .expect("builder")
            .public_key();
        let frame = repo.sync_frame(TIME).expect("has a commit");
        let Ok(Frame::Sync(event)) = decode_frame(&frame) else {
            panic!("not a sync frame");
        };
        let verified = verify_sync(&event, &key).expect("verifies");
        assert_eq!(verified.data, repo.data());
        assert_eq!(Some(verified.rev.as_str()), repo.rev());
        let err = verify_sync(&event, &other).expect_err("wrong key");
        assert_eq!(err.kind(), ErrorKind::BadSignature);
        let mut wrong_did = event.clone();
        wrong_did.did = "did:plc:other".to_owned();
        let err = verify_sync(&wrong_did, &key).expect_err("wrong did");
        assert_eq!(err.kind(), ErrorKind::FieldsMismatch);
    }

    #[test]
    fn exported_repository_reads_back() {
        let repo = populated();
        let car = repo.export_car().expect("has a commit");
        let limits = CarLimits {
            max_bytes: 1 << 20,
            ..CarLimits::COMMIT
        };
        let read = Repo::read(&car, &limits).expect("reads");
        assert_eq!(
            read.verify_signature(&repo.public_key())
                .map_err(|e| e.kind()),
            Ok(())
        );
        let records = read.records().expect("walks");
        assert_eq!(records.len(), 40);
        assert_eq!(records[3].0, "fm.plyr.track/3k00000000003");
        let json = crate::cbor_to_json(read.record(&records[3].1).expect("record")).expect("json");
        assert_eq!(json, track("t3"));
    }
}

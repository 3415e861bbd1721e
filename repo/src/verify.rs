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
        /// The message's `prevData`.
        expected: Cid,
        /// What inversion produced.
        computed: Cid,
    },
    /// A record in a repository is not valid data-model DAG-CBOR.
    #[error("record {cid}: {source}")]
    Record {
        /// The record's CID.
        cid: Cid,
        /// Why it was rejected.
        source: DataModelError,
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
            VerifyError::Record { source, .. } => source.kind(),
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
        self.path.split_once('/').map_or("", |(collection, _)| collection)
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

/// Finds the CAR's first root (the commit), decodes it and checks the signature.
pub(crate) fn signed_commit(
    car: &crate::car::Car<'_>,
    key: Option<&PublicKey>,
) -> Result<(Cid, Commit), VerifyError> {
    let cid = *car.roots().first().ok_or_else(|| CarError::Malformed {
        offset: 0,
        reason: "no root".to_owned(),
    })?;
    let bytes = car.get(&cid).ok_or(VerifyError::MissingBlock {
        what: "commit",
        cid,
    })?;
    let commit = Commit::decode(bytes).map_err(|reason| VerifyError::MalformedCommit { cid, reason })?;
    if let Some(key) = key {
        commit.verify_signature(key)?;
    }
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
    let (commit_cid, commit) = signed_commit(&car, None)?;
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
            expected: prev_data,
            computed: inversion.root,
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
    let (commit_cid, commit) = signed_commit(&car, None)?;
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

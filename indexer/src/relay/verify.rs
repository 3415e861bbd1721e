//! The parallel stage: for each commit, the repo's signing key (DID document through the
//! [`Directory`]), then on a CPU worker the sync 1.1 check (`plyr_repo::verify_commit`) and
//! lexicon validation of its namespace records. A signature failure refreshes the document
//! once and retries; any other failure rejects the commit as a counted skip, nothing applied.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use plyr_identity::{Did, DidDocument};
use plyr_lexicons::Namespace;
use plyr_repo::{
    Action, ErrorKind, Frame, FrameError, IdentityEvent, PublicKey, VerifyError, decode_frame,
    verify_commit, verify_sync,
};
use tokio::sync::Semaphore;

use super::source::{Input, skipped};
use crate::directory::Directory;
use crate::event::{self, Event, Operation};
use crate::fold::{self, Classified, CommitOp, Item, MALFORMED_EVENT, Skip};

/// Skip reason of a commit or sync whose DID document could not be fetched.
pub(super) const UNRESOLVABLE_DID: &str = "unresolvable_did";
/// Skip reason of a DID document without a usable `#atproto` key.
pub(super) const NO_SIGNING_KEY: &str = "no_signing_key";
/// Skip reason of a verify worker that panicked (a bug; the event is not applied).
const VERIFY_PANICKED: &str = "verify_panicked";
/// Parsed keys kept: one per repo verified recently. Past this the map starts over.
const MAX_KEYS: usize = 100_000;

/// What the verify stage hands the chain stage, in stream order.
#[derive(Debug)]
pub(super) enum Checked {
    /// A commit that passed every check.
    Commit(CheckedCommit),
    /// A `#sync` whose commit is signed by the repo's key.
    Sync(CheckedSync),
    /// An `#identity` event (the chain stage refreshes the document off the hot path).
    Identity(IdentityEvent),
    /// Decided: a rejected event (counted), an account change, a dropped commit.
    Done(Classified),
}

/// A verified `#commit`, with its namespace records validated.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct CheckedCommit {
    pub seq: i64,
    pub did: String,
    pub rev: String,
    /// The previous rev, as the message claims it.
    pub since: Option<String>,
    /// The MST root after the commit.
    pub data: String,
    /// The MST root before it, proven by inversion.
    pub prev_data: String,
    /// Whether any op touched our namespace (valid or not): what makes a repo tracked.
    pub namespace_ops: bool,
    /// The valid namespace ops.
    pub ops: Vec<CommitOp>,
    /// The namespace records that failed validation.
    pub skips: Vec<Skip>,
}

/// A verified `#sync`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CheckedSync {
    pub seq: i64,
    pub did: String,
    pub rev: String,
    /// The MST root the repo was reset to.
    pub data: String,
}

/// Why a signed event was rejected: the counter label and the detail.
#[derive(Debug)]
struct Rejected {
    reason: &'static str,
    detail: String,
}

impl From<FrameError> for Rejected {
    fn from(e: FrameError) -> Self {
        Rejected {
            reason: e.kind().as_str(),
            detail: e.to_string(),
        }
    }
}

impl From<VerifyError> for Rejected {
    fn from(e: VerifyError) -> Self {
        Rejected {
            reason: e.kind().as_str(),
            detail: e.to_string(),
        }
    }
}

/// The verify stage's shared parts.
pub(super) struct Verifier {
    directory: Directory,
    namespace: Arc<Namespace>,
    /// One permit per core: checks are CPU-bound, so more in flight at once would only
    /// oversubscribe the blocking pool.
    cpu: Arc<Semaphore>,
    /// Parsed `#atproto` keys by DID, with the document each came from: parsing a did:key
    /// (base58, then secp256k1 point decompression) for every commit is wasted work.
    keys: Mutex<HashMap<String, (Arc<DidDocument>, PublicKey)>>,
}

impl Verifier {
    /// A verifier running at most `workers` checks at once.
    pub(super) fn new(directory: Directory, namespace: Arc<Namespace>, workers: usize) -> Self {
        Verifier {
            directory,
            namespace,
            cpu: Arc::new(Semaphore::new(workers.max(1))),
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// Checks one input. Never fails: a rejection is a counted skip at the event's seq.
    pub(super) async fn check(&self, input: Input) -> Checked {
        match input {
            Input::Done(classified) => Checked::Done(classified),
            Input::Identity(event) => Checked::Identity(event),
            Input::Account(event) => Checked::Done(fold::classify(
                &self.namespace,
                Event::Account {
                    did: event.did,
                    time_us: event.seq,
                    active: event.active,
                    status: event.status,
                },
            )),
            Input::Commit { seq, did, frame } => self.check_signed(seq, did, frame, false).await,
            Input::Sync { seq, did, frame } => self.check_signed(seq, did, frame, true).await,
        }
    }

    async fn check_signed(&self, seq: i64, did: String, frame: Bytes, sync: bool) -> Checked {
        let reject = |reason, detail: String| {
            Checked::Done(skipped(
                Some(seq),
                Skip::new(reason, format!("{did} seq {seq}: {detail}")),
            ))
        };
        let parsed = match Did::new(&did) {
            Ok(parsed) => parsed,
            Err(e) => return reject(MALFORMED_EVENT, e.to_string()),
        };
        let key = match self.key(&parsed, false).await {
            Ok(key) => key,
            Err(skip) => return reject(skip.reason, skip.detail),
        };
        let mut outcome = self.run(frame.clone(), key.clone(), sync).await;
        if outcome
            .as_ref()
            .is_err_and(|r| r.reason == ErrorKind::BadSignature.as_str())
        {
            // The key may have rotated since the document was cached: fetch it again, once.
            match self.key(&parsed, true).await {
                Ok(fresh) if fresh != key => outcome = self.run(frame, fresh, sync).await,
                Ok(_) => {}
                Err(skip) => {
                    tracing::warn!(%did, detail = %skip.detail, "refresh after a bad signature failed")
                }
            }
        }
        match outcome {
            Ok(checked) => checked,
            Err(rejected) => reject(rejected.reason, rejected.detail),
        }
    }

    /// The `#atproto` key of the DID's document, cached or (`fresh`) from the network.
    async fn key(&self, did: &Did, fresh: bool) -> Result<PublicKey, Skip> {
        let doc = if fresh {
            self.directory.refresh(did).await
        } else {
            self.directory.document(did).await
        };
        let doc = doc.map_err(|e| Skip::new(UNRESOLVABLE_DID, e.to_string()))?;
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((parsed_from, key)) = keys.get(did.as_str())
            && Arc::ptr_eq(parsed_from, &doc)
        {
            return Ok(key.clone());
        }
        let key = doc
            .signing_key()
            .map_err(|e| Skip::new(NO_SIGNING_KEY, e.to_string()))?;
        if keys.len() >= MAX_KEYS {
            keys.clear();
        }
        keys.insert(did.as_str().to_owned(), (doc, key.clone()));
        Ok(key)
    }

    /// Runs the CPU part on the blocking pool, at most one per permit.
    async fn run(&self, frame: Bytes, key: PublicKey, sync: bool) -> Result<Checked, Rejected> {
        let Ok(_permit) = Arc::clone(&self.cpu).acquire_owned().await else {
            return Err(Rejected {
                reason: VERIFY_PANICKED,
                detail: "verify workers closed".to_owned(),
            });
        };
        let namespace = Arc::clone(&self.namespace);
        let work = tokio::task::spawn_blocking(move || {
            if sync {
                check_sync(&frame, &key).map(Checked::Sync)
            } else {
                check_commit(&frame, &key, &namespace).map(Checked::Commit)
            }
        });
        match work.await {
            Ok(outcome) => outcome,
            Err(e) => Err(Rejected {
                reason: VERIFY_PANICKED,
                detail: e.to_string(),
            }),
        }
    }
}

/// Verifies a `#commit` frame and validates its namespace records.
fn check_commit(
    frame: &[u8],
    key: &PublicKey,
    namespace: &Namespace,
) -> Result<CheckedCommit, Rejected> {
    let Frame::Commit(event) = decode_frame(frame)? else {
        return Err(Rejected {
            reason: MALFORMED_EVENT,
            detail: "frame is no longer a #commit".to_owned(),
        });
    };
    let verified = verify_commit(&event, key)?;
    let mut checked = CheckedCommit {
        seq: verified.seq,
        did: verified.did.clone(),
        rev: verified.rev.clone(),
        since: verified.since.clone(),
        data: verified.data.to_string(),
        prev_data: verified.prev_data.to_string(),
        namespace_ops: false,
        ops: Vec::new(),
        skips: Vec::new(),
    };
    for op in &verified.ops {
        // Tracked repos also keep their app.bsky.actor.profile, but only namespace records
        // make a repo tracked.
        match fold::kind_of(namespace, op.collection()) {
            None => continue,
            Some(fold::Kind::BskyProfile) => {}
            Some(fold::Kind::Record(_)) => checked.namespace_ops = true,
        }
        let operation = match op.action {
            Action::Delete => Operation::Delete,
            Action::Create | Action::Update => match (op.cid, op.record_json()) {
                (Some(cid), Ok(Some(record))) => Operation::Write {
                    cid: cid.to_string(),
                    record,
                },
                (_, Err(e)) => {
                    let detail = format!("at://{}/{}: {e}", verified.did, op.path);
                    checked.skips.push(Skip::new(e.kind().as_str(), detail));
                    continue;
                }
                // verify_commit proves every create and update carries its record.
                _ => {
                    let detail = format!("at://{}/{}: write without record", verified.did, op.path);
                    checked.skips.push(Skip::new(MALFORMED_EVENT, detail));
                    continue;
                }
            },
        };
        let commit = event::Commit {
            did: verified.did.clone(),
            time_us: verified.seq,
            rev: verified.rev.clone(),
            collection: op.collection().to_owned(),
            rkey: op.rkey().to_owned(),
            op: operation,
        };
        match fold::classify(namespace, Event::Commit(commit)).item {
            Item::Commit(op) => checked.ops.push(op),
            Item::Skip(skip) => checked.skips.push(skip),
            _ => {}
        }
    }
    Ok(checked)
}

/// Verifies a `#sync` frame.
fn check_sync(frame: &[u8], key: &PublicKey) -> Result<CheckedSync, Rejected> {
    let Frame::Sync(event) = decode_frame(frame)? else {
        return Err(Rejected {
            reason: MALFORMED_EVENT,
            detail: "frame is no longer a #sync".to_owned(),
        });
    };
    let verified = verify_sync(&event, key)?;
    Ok(CheckedSync {
        seq: verified.seq,
        did: verified.did,
        rev: verified.rev,
        data: verified.data.to_string(),
    })
}

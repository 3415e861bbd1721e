//! [`sync_repo`]: one repository from its PDS into the view. `getRepo` (size-capped), the
//! signed commit checked against the DID document's key (re-resolved once on failure) and the
//! repo's DID, the MST walked with every block hash-checked, each namespace record validated
//! by the same `classify` as live events, then one rev-guarded transaction.

use std::collections::HashSet;
use std::sync::Arc;

use plyr_identity::{Did, IdentityError, SyncClient};
use plyr_lexicons::Namespace;
use plyr_repo::{CarLimits, ErrorKind, Repo, VerifyError, cbor_to_json};
use sqlx::PgPool;

use crate::directory::Directory;
use crate::event::{Commit, Event, Operation};
use crate::fold::{self, Item, Skip};
use crate::store::{self, Snapshot, StoreError};

/// Skip reason of a namespace record whose block is not valid DAG-CBOR in the data model.
const MALFORMED_RECORD: &str = "malformed_record";
/// Largest block accepted in a repo export: records are capped at 1,000,000 bytes by the
/// lexicon rules, MST nodes are far smaller.
const MAX_BLOCK_BYTES: usize = 2 << 20;
/// Most blocks accepted in an export: the smallest blocks (short records, MST leaves) are
/// ~100 bytes, so a full 1 GiB repo stays under this.
const MAX_BLOCKS: usize = 16_000_000;

/// What [`sync_repo`] needs: the database, DID documents, the namespace, and the client for
/// PDS hosts (its config caps and times `getRepo`).
#[derive(Clone)]
pub(crate) struct SyncContext {
    /// The view.
    pub pool: PgPool,
    /// DID documents (cache, `did_doc`, network).
    pub directory: Directory,
    /// Which records are ours.
    pub namespace: Namespace,
    /// `getRepo`, with its size cap and timeout.
    pub client: SyncClient,
}

impl SyncContext {
    /// A context over these parts.
    pub(crate) fn new(
        pool: PgPool,
        directory: Directory,
        namespace: Namespace,
        client: SyncClient,
    ) -> SyncContext {
        SyncContext {
            pool,
            directory,
            namespace,
            client,
        }
    }

    fn car_limits(&self) -> CarLimits {
        CarLimits {
            max_bytes: self.client.config().max_repo_bytes,
            max_blocks: MAX_BLOCKS,
            max_block_bytes: MAX_BLOCK_BYTES,
        }
    }
}

/// A repository applied from its snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Synced {
    /// The snapshot's rev.
    pub rev: String,
    /// Its MST root.
    pub data_cid: String,
    /// Valid namespace records it held.
    pub records: usize,
}

/// Why a repository was not applied.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SyncError {
    /// The DID document could not be had.
    #[error("resolving {did}")]
    Identity {
        /// The repository.
        did: String,
        /// Why.
        #[source]
        source: IdentityError,
    },
    /// The DID document names no PDS.
    #[error("{did} has no #atproto_pds service")]
    NoPds {
        /// The repository.
        did: String,
    },
    /// `getRepo` failed (unreachable, over the cap, timed out, repo not found or inactive).
    #[error("fetching the repo of {did}")]
    Fetch {
        /// The repository.
        did: String,
        /// Why.
        #[source]
        source: IdentityError,
    },
    /// The export failed verification (CAR, CID, signature, MST, commit shape).
    #[error("the repo of {did} failed verification")]
    Verify {
        /// The repository.
        did: String,
        /// Why (boxed: the error is large and rare).
        #[source]
        source: Box<VerifyError>,
    },
    /// The signed commit is another repository's.
    #[error("the repo of {did} holds a commit for {found}")]
    WrongRepo {
        /// The repository asked for.
        did: String,
        /// The DID in the signed commit.
        found: String,
    },
    /// The commit's rev is not a TID, so it cannot be ordered against live revs.
    #[error("the repo of {did} has a malformed rev {rev:?}")]
    BadRev {
        /// The repository.
        did: String,
        /// The rev as signed.
        rev: String,
    },
    /// The verification task panicked.
    #[error("verifying the repo of {did} panicked")]
    Panicked {
        /// The repository.
        did: String,
    },
    /// Postgres failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SyncError {
    /// A short stable label: the skip reason of a rejected repo, and the failure label of
    /// the backfill summary.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            SyncError::Identity { .. } | SyncError::NoPds { .. } => "identity",
            SyncError::Fetch { .. } => "fetch",
            SyncError::Verify { source, .. } => source.kind().as_str(),
            SyncError::WrongRepo { .. } => "fields_mismatch",
            SyncError::BadRev { .. } => "malformed_commit",
            SyncError::Panicked { .. } => "panicked",
            SyncError::Store(_) => "store",
        }
    }

    /// Whether the repository itself is bad (forged or broken), as opposed to unreachable:
    /// such rejections are counted in `indexer_skip`.
    pub(crate) fn is_rejection(&self) -> bool {
        matches!(
            self,
            SyncError::Verify { .. } | SyncError::WrongRepo { .. } | SyncError::BadRev { .. }
        )
    }
}

/// `getRepo` from the DID's current PDS (size-capped), verify the signed commit (re-resolving
/// the DID once if the signature fails), walk the MST, validate every namespace record, then
/// in one transaction: rev-guarded writes through the commit store (a newer live write is
/// never overwritten), rev-guarded deletions of this DID's namespace records the snapshot no
/// longer has, and `repo_state` set to the snapshot's (rev, data_cid, synced) unless the
/// stored rev is newer. A rejected repo writes nothing but its counted skip.
pub(crate) async fn sync_repo(ctx: &SyncContext, did: &Did) -> Result<Synced, SyncError> {
    let result = fetch_and_apply(ctx, did).await;
    if let Err(e) = &result
        && e.is_rejection()
    {
        tracing::warn!(%did, reason = e.reason(), error = %fold::error_chain(e), "repo rejected");
        let skip = Skip::new(e.reason(), format!("{did}: {}", fold::error_chain(e)));
        store::count_rejection(&ctx.pool, &skip).await?;
    }
    result
}

async fn fetch_and_apply(ctx: &SyncContext, did: &Did) -> Result<Synced, SyncError> {
    let identity = |source| SyncError::Identity {
        did: did.to_string(),
        source,
    };
    let doc = ctx.directory.document(did).await.map_err(identity)?;
    let pds = doc.pds_endpoint().ok_or_else(|| SyncError::NoPds {
        did: did.to_string(),
    })?;
    let bytes = ctx
        .client
        .get_repo(&pds, did)
        .await
        .map_err(|source| SyncError::Fetch {
            did: did.to_string(),
            source,
        })?;
    let bytes: Arc<[u8]> = bytes.into();
    let key = doc.signing_key().map_err(identity)?;
    let snapshot = match read_off_thread(ctx, did, &bytes, key).await {
        Err(SyncError::Verify { source, .. }) if source.kind() == ErrorKind::BadSignature => {
            // The key may have rotated since the document was cached or stored.
            let doc = ctx.directory.refresh(did).await.map_err(identity)?;
            let key = doc.signing_key().map_err(identity)?;
            read_off_thread(ctx, did, &bytes, key).await?
        }
        other => other?,
    };
    let records = snapshot.writes.len();
    let applied = store::apply_snapshot(&ctx.pool, &ctx.namespace, &snapshot).await?;
    tracing::debug!(%did, rev = %snapshot.rev, records, written = applied.written,
                    stale = applied.stale, skipped = snapshot.skips.len(), "repo synced");
    Ok(Synced {
        rev: snapshot.rev,
        data_cid: snapshot.data_cid,
        records,
    })
}

/// [`read_snapshot`] on the blocking pool: a large repo is seconds of hashing and decoding.
async fn read_off_thread(
    ctx: &SyncContext,
    did: &Did,
    bytes: &Arc<[u8]>,
    key: plyr_repo::PublicKey,
) -> Result<Snapshot, SyncError> {
    let bytes = Arc::clone(bytes);
    let namespace = ctx.namespace.clone();
    let limits = ctx.car_limits();
    let owned = did.clone();
    tokio::task::spawn_blocking(move || read_snapshot(&bytes, &owned, &key, &namespace, &limits))
        .await
        .map_err(|_| SyncError::Panicked {
            did: did.to_string(),
        })?
}

/// Verifies an export and classifies its namespace records. Pure.
pub(crate) fn read_snapshot(
    bytes: &[u8],
    did: &Did,
    key: &plyr_repo::PublicKey,
    namespace: &Namespace,
    limits: &CarLimits,
) -> Result<Snapshot, SyncError> {
    let verify = |source| SyncError::Verify {
        did: did.to_string(),
        source: Box::new(source),
    };
    let repo = Repo::read(bytes, limits).map_err(verify)?;
    let commit = repo.commit();
    if commit.did != did.as_str() {
        return Err(SyncError::WrongRepo {
            did: did.to_string(),
            found: commit.did.clone(),
        });
    }
    if plyr_lexicons::syntax::validate_tid(&commit.rev).is_err() {
        return Err(SyncError::BadRev {
            did: did.to_string(),
            rev: commit.rev.clone(),
        });
    }
    repo.verify_signature(key).map_err(verify)?;
    let rev = commit.rev.clone();
    let mut snapshot = Snapshot {
        did: did.to_string(),
        rev: rev.clone(),
        data_cid: commit.data.to_string(),
        writes: Vec::new(),
        present: HashSet::new(),
        skips: Vec::new(),
    };
    for (path, cid) in repo.records().map_err(verify)? {
        let Some((collection, rkey)) = path.split_once('/') else {
            continue;
        };
        // Other apps' records are not ours to count (but the actor's Bluesky profile is kept).
        if fold::kind_of(namespace, collection).is_none() {
            continue;
        }
        let uri = format!("at://{did}/{path}");
        let record = repo.record(&cid).map_err(verify)?;
        let record = match cbor_to_json(record) {
            Ok(record) => record,
            Err(e) => {
                snapshot
                    .skips
                    .push(Skip::new(MALFORMED_RECORD, format!("{uri}: {e}")));
                snapshot.present.insert(uri);
                continue;
            }
        };
        let event = Event::Commit(Commit {
            did: did.to_string(),
            time_us: 0,
            rev: rev.clone(),
            collection: collection.to_owned(),
            rkey: rkey.to_owned(),
            op: Operation::Write {
                cid: cid.to_string(),
                record,
            },
        });
        match fold::classify(namespace, event).item {
            Item::Commit(op) => snapshot.writes.push(op),
            Item::Skip(skip) => snapshot.skips.push(skip),
            // A commit classifies as a commit or a skip.
            _ => {}
        }
        snapshot.present.insert(uri);
    }
    Ok(snapshot)
}

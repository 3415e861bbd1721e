//! A signing repository that produces real firehose frames (`#commit` with a minimal proof
//! CAR slice, `#sync`) and `getRepo` CARs, for tests and benchmarks of verified ingestion.

use std::collections::{BTreeSet, HashMap};

use cid::Cid;
use serde_json::Value;

use crate::car::write_car;
use crate::commit::sign_commit;
use crate::crypto::{PublicKey, sign_k256};
use crate::data_model::{DataModelError, cid_for_cbor, json_to_cbor};
use crate::frame::{Action, CommitEvent, Frame, RepoOp, SyncEvent, encode_frame};
use crate::mst::{Change, Mst, MstError, invert};

/// 2026-01-01T00:00:00Z in microseconds: where the builder's revision clock starts.
const REV_CLOCK_START: u64 = 1_767_225_600_000_000;
const TID_ALPHABET: &[u8; 32] = b"234567abcdefghijklmnopqrstuvwxyz";

/// Why a write could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The record is not valid in the data model.
    #[error("record at {path}: {source}")]
    Record {
        /// The write's path.
        path: String,
        /// Why the record was rejected.
        source: DataModelError,
    },
    /// The write does not fit the tree (create of a present path, update/delete of an absent
    /// one).
    #[error(transparent)]
    Mst(#[from] MstError),
    /// The secret is not a valid secp256k1 scalar.
    #[error("invalid secp256k1 secret key")]
    InvalidSecret,
}

/// One record write of a commit.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Create `path` with a JSON record.
    Create {
        /// `collection/rkey`.
        path: String,
        /// The record in the ATProto JSON data model.
        record: Value,
    },
    /// Replace the record at `path`.
    Update {
        /// `collection/rkey`.
        path: String,
        /// The new record.
        record: Value,
    },
    /// Delete the record at `path`.
    Delete {
        /// `collection/rkey`.
        path: String,
    },
}

/// A secp256k1 key that signs as ATProto does (sha256, 64-byte compact low-S): for what tests
/// and benchmarks must sign outside a repository, such as a labeler's labels.
pub struct Signer {
    secret: secp256k1::SecretKey,
}

impl Signer {
    /// A signer with the 32-byte secp256k1 `secret`.
    pub fn new(secret: [u8; 32]) -> Result<Self, BuildError> {
        secp256k1::SecretKey::from_byte_array(secret)
            .map(|secret| Signer { secret })
            .map_err(|_| BuildError::InvalidSecret)
    }

    /// The public half, to publish in a DID document.
    pub fn public_key(&self) -> PublicKey {
        PublicKey::K256(secp256k1::PublicKey::from_secret_key(
            secp256k1::SECP256K1,
            &self.secret,
        ))
    }

    /// The signature of `msg`.
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        sign_k256(&self.secret, msg)
    }
}

/// An in-memory repository signed with a secp256k1 key.
pub struct RepoBuilder {
    did: String,
    signer: Signer,
    tree: Mst<'static, ()>,
    /// Every MST node and record ever written, for proofs and exports.
    blocks: HashMap<Cid, Vec<u8>>,
    root: Cid,
    commit: Option<(Cid, Vec<u8>)>,
    rev: Option<String>,
    clock: u64,
    seq: i64,
}

impl RepoBuilder {
    /// An empty repository for `did`, signing with the 32-byte secp256k1 `secret`.
    pub fn new(did: impl Into<String>, secret: [u8; 32]) -> Result<Self, BuildError> {
        let signer = Signer::new(secret)?;
        let mut tree = Mst::empty(&());
        let mut blocks = HashMap::new();
        let root = tree.root_cid(&mut |cid, bytes| {
            blocks.insert(cid, bytes);
        });
        Ok(RepoBuilder {
            did: did.into(),
            signer,
            tree,
            blocks,
            root,
            commit: None,
            rev: None,
            clock: REV_CLOCK_START,
            seq: 0,
        })
    }

    /// The signing key's public half.
    pub fn public_key(&self) -> PublicKey {
        self.signer.public_key()
    }

    /// The current revision, if any commit was made.
    pub fn rev(&self) -> Option<&str> {
        self.rev.as_deref()
    }

    /// The current MST root.
    pub fn data(&self) -> Cid {
        self.root
    }

    /// Applies `writes` as one signed commit and returns its `#commit` frame, whose CAR slice
    /// holds the commit, the new records, the new MST nodes and the blocks the inversion proof
    /// reads. After an error the tree may be half-updated: discard the builder.
    pub fn commit(&mut self, writes: &[Write], time: &str) -> Result<Vec<u8>, BuildError> {
        let prev_data = self.root;
        let mut records: Vec<(Cid, Vec<u8>)> = Vec::new();
        let mut ops = Vec::with_capacity(writes.len());
        let mut changes = Vec::with_capacity(writes.len());
        for write in writes {
            let (path, action, cid, prev, change) = match write {
                Write::Create { path, record } => {
                    let (cid, bytes) = encode_record(path, record)?;
                    self.tree.insert(path.as_bytes(), cid)?;
                    records.push((cid, bytes));
                    (
                        path,
                        Action::Create,
                        Some(cid),
                        None,
                        Change::Create { cid },
                    )
                }
                Write::Update { path, record } => {
                    let (cid, bytes) = encode_record(path, record)?;
                    let prev = self.tree.update(path.as_bytes(), cid)?;
                    records.push((cid, bytes));
                    let change = Change::Update { cid, prev };
                    (path, Action::Update, Some(cid), Some(prev), change)
                }
                Write::Delete { path } => {
                    let prev = self.tree.delete(path.as_bytes())?;
                    (
                        path,
                        Action::Delete,
                        None,
                        Some(prev),
                        Change::Delete { prev },
                    )
                }
            };
            ops.push(RepoOp {
                action,
                path: path.clone(),
                cid,
                prev,
            });
            changes.push(change);
        }
        let mut new_nodes = Vec::new();
        self.root = self.tree.root_cid(&mut |cid, bytes| {
            new_nodes.push(cid);
            self.blocks.insert(cid, bytes);
        });
        for (cid, bytes) in &records {
            self.blocks.insert(*cid, bytes.clone());
        }

        let rev = self.next_rev();
        let commit_bytes = sign_commit(&self.did, self.root, &rev, &self.signer.secret);
        let commit_cid = cid_for_cbor(&commit_bytes);

        // The proof: whatever inverting the ops reads, plus every new node.
        let keyed: Vec<(&str, Change)> =
            ops.iter().map(|op| op.path.as_str()).zip(changes).collect();
        let proof = invert(&self.blocks, self.root, &keyed)?;
        let mut slice: BTreeSet<Cid> = proof.loaded.into_iter().collect();
        slice.extend(new_nodes);
        slice.extend(records.iter().map(|(cid, _)| *cid));
        let mut car_blocks: Vec<(Cid, &[u8])> = vec![(commit_cid, commit_bytes.as_slice())];
        car_blocks.extend(
            slice
                .iter()
                .filter_map(|cid| self.blocks.get(cid).map(|bytes| (*cid, bytes.as_slice()))),
        );
        let car = write_car(&[commit_cid], car_blocks);

        self.seq += 1;
        let frame = Frame::Commit(CommitEvent {
            seq: self.seq,
            repo: self.did.clone(),
            commit: commit_cid,
            rev: rev.clone(),
            since: self.rev.replace(rev),
            blocks: &car,
            ops,
            prev_data: Some(prev_data),
            time: time.to_owned(),
            too_big: false,
            blobs: Vec::new(),
            rebase: false,
        });
        let encoded = encode_frame(&frame);
        self.commit = Some((commit_cid, commit_bytes));
        Ok(encoded)
    }

    /// A `#sync` frame for the current commit (`None` before the first commit).
    pub fn sync_frame(&mut self, time: &str) -> Option<Vec<u8>> {
        let (cid, bytes) = self.commit.as_ref()?;
        let car = write_car(&[*cid], [(*cid, bytes.as_slice())]);
        self.seq += 1;
        Some(encode_frame(&Frame::Sync(SyncEvent {
            seq: self.seq,
            did: self.did.clone(),
            blocks: &car,
            rev: self.rev.clone()?,
            time: time.to_owned(),
        })))
    }

    /// The whole repository as a `getRepo` CAR (`None` before the first commit, or if the
    /// builder's own tree could not be walked).
    pub fn export_car(&self) -> Option<Vec<u8>> {
        let (cid, bytes) = self.commit.as_ref()?;
        let walk = crate::mst::walk(&self.blocks, self.root).ok()?;
        let mut blocks: Vec<(Cid, &[u8])> = vec![(*cid, bytes.as_slice())];
        blocks.extend(
            walk.nodes
                .iter()
                .chain(walk.records.iter().map(|(_, cid)| cid))
                .filter_map(|cid| self.blocks.get(cid).map(|b| (*cid, b.as_slice()))),
        );
        Some(write_car(&[*cid], blocks))
    }

    fn next_rev(&mut self) -> String {
        self.clock += 1;
        // A TID: 0 top bit, 53 bits of microseconds, 10 bits of clock id (0 here).
        let value = self.clock << 10;
        (0..13)
            .map(|i| {
                let index = usize::try_from((value >> (60 - 5 * i)) & 31).unwrap_or(0);
                char::from(TID_ALPHABET[index])
            })
            .collect()
    }
}

fn encode_record(path: &str, record: &Value) -> Result<(Cid, Vec<u8>), BuildError> {
    let bytes = json_to_cbor(record).map_err(|source| BuildError::Record {
        path: path.to_owned(),
        source,
    })?;
    Ok((cid_for_cbor(&bytes), bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn rejected_writes() {
        let path = "fm.plyr.track/3kaaaaaaaaaa2".to_owned();
        let record = serde_json::json!({"$type": "fm.plyr.track", "title": "a"});
        let table: [(&str, Write, ErrorKind); 4] = [
            (
                "create of a present path",
                Write::Create {
                    path: path.clone(),
                    record: record.clone(),
                },
                ErrorKind::MstMismatch,
            ),
            (
                "update of an absent path",
                Write::Update {
                    path: "fm.plyr.track/3kzzzzzzzzzz2".to_owned(),
                    record: record.clone(),
                },
                ErrorKind::MstMismatch,
            ),
            (
                "delete of an absent path",
                Write::Delete {
                    path: "fm.plyr.track/3kzzzzzzzzzz2".to_owned(),
                },
                ErrorKind::MstMismatch,
            ),
            (
                "record with a float",
                Write::Create {
                    path: "fm.plyr.track/3kbbbbbbbbbb2".to_owned(),
                    record: serde_json::json!({"duration": 1.5}),
                },
                ErrorKind::InvalidDataModel,
            ),
        ];
        for (name, write, kind) in table {
            let mut repo = RepoBuilder::new("did:plc:builder", [0x33; 32]).expect("builder");
            repo.commit(
                &[Write::Create {
                    path: path.clone(),
                    record: record.clone(),
                }],
                "t",
            )
            .expect("first commit");
            let err = repo.commit(&[write], "t").expect_err(name);
            let got = match &err {
                BuildError::Mst(e) => e.kind(),
                BuildError::Record { source, .. } => source.kind(),
                BuildError::InvalidSecret => panic!("{name}: {err}"),
            };
            assert_eq!(got, kind, "{name}: {err}");
        }
        let zero = RepoBuilder::new("did:plc:builder", [0; 32]).err();
        assert!(matches!(zero, Some(BuildError::InvalidSecret)));
    }

    #[test]
    fn revisions_are_increasing_tids() {
        let mut repo = RepoBuilder::new("did:plc:builder", [0x33; 32]).expect("builder");
        let mut last = String::new();
        for i in 0..5 {
            let write = Write::Create {
                path: format!("fm.plyr.track/3k{i:011}"),
                record: serde_json::json!({"$type": "fm.plyr.track"}),
            };
            repo.commit(&[write], "t").expect("commit");
            let rev = repo.rev().expect("rev").to_owned();
            assert_eq!(rev.len(), 13);
            assert!(
                rev.starts_with(|c: char| "234567abcdefghij".contains(c)),
                "{rev}"
            );
            assert!(rev > last, "{rev} after {last}");
            last = rev;
        }
    }
}

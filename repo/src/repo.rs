//! A whole repository export (a `getRepo` CAR): its signed commit and every record, walked from
//! the MST with every block hash-checked.

use cid::Cid;

use crate::car::{Car, CarLimits, read_car};
use crate::commit::Commit;
use crate::crypto::PublicKey;
use crate::mst::walk;
use crate::verify::{VerifyError, car_commit};

/// A repository read from a CAR whose first root is its commit.
#[derive(Debug, Clone)]
pub struct Repo<'a> {
    car: Car<'a>,
    commit_cid: Cid,
    commit: Commit,
}

impl<'a> Repo<'a> {
    /// Reads the CAR (checking caps and every block's CID) and decodes its commit. The
    /// signature is not checked here: see [`Repo::verify_signature`].
    pub fn read(bytes: &'a [u8], limits: &CarLimits) -> Result<Self, VerifyError> {
        let car = read_car(bytes, limits)?;
        let (commit_cid, commit) = car_commit(&car)?;
        Ok(Repo {
            car,
            commit_cid,
            commit,
        })
    }

    /// The decoded commit.
    pub fn commit(&self) -> &Commit {
        &self.commit
    }

    /// The commit block's CID.
    pub fn commit_cid(&self) -> Cid {
        self.commit_cid
    }

    /// Checks the commit's signature with the repository's signing key.
    pub fn verify_signature(&self, key: &PublicKey) -> Result<(), VerifyError> {
        Ok(self.commit.verify_signature(key)?)
    }

    /// Every `(path, record CID)` in the MST, in path order; every node must be present.
    pub fn records(&self) -> Result<Vec<(String, Cid)>, VerifyError> {
        Ok(walk(self.car.blocks(), self.commit.data)?.records)
    }

    /// A record's DAG-CBOR bytes (hash-checked), e.g. for [`crate::cbor_to_json`].
    pub fn record(&self, cid: &Cid) -> Result<&'a [u8], VerifyError> {
        self.car.get(cid).ok_or(VerifyError::MissingBlock {
            what: "record",
            cid: *cid,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data_model::cbor_to_json;
    use crate::error::ErrorKind;

    const LITTLE_CAR: &[u8] = include_bytes!("../tests/fixtures/little.car");

    fn limits() -> CarLimits {
        CarLimits {
            max_bytes: 1 << 20,
            max_blocks: 10_000,
            max_block_bytes: 1 << 20,
        }
    }

    #[test]
    fn real_repository_structure() {
        let repo = Repo::read(LITTLE_CAR, &limits()).expect("reads");
        let commit = repo.commit();
        assert!(commit.did.starts_with("did:"), "{}", commit.did);
        assert_eq!(commit.sig.len(), 64);
        let records = repo.records().expect("walks");
        // Counts cross-checked against repo-stream's own test of this file.
        assert_eq!(records.len(), 278);
        let mut total = 0;
        for (path, cid) in &records {
            let bytes = repo.record(cid).expect("record present");
            total += bytes.len();
            let json = cbor_to_json(bytes).unwrap_or_else(|e| panic!("{path}: {e}"));
            assert!(json.get("$type").is_some_and(|t| t.is_string()), "{path}");
        }
        assert_eq!(total, 246_960);
        assert!(
            records
                .iter()
                .any(|(path, _)| path == "app.bsky.actor.profile/self")
        );
    }

    #[test]
    fn real_nodes_take_the_fast_decoder() {
        let repo = Repo::read(LITTLE_CAR, &limits()).expect("reads");
        let walk = crate::mst::walk(repo.car.blocks(), repo.commit().data).expect("walks");
        assert!(walk.nodes.len() > 50, "{} nodes", walk.nodes.len());
        for cid in &walk.nodes {
            let bytes = repo.car.get(cid).expect("node present");
            assert!(crate::mst::decodes_canonically(bytes), "{cid}");
        }
    }

    #[test]
    fn real_tree_survives_delete_and_reinsert() {
        // Re-encoding real Bluesky nodes must reproduce their exact CIDs: delete a key (which
        // rewrites its path and merges subtrees), put it back, and the root must be unchanged.
        let repo = Repo::read(LITTLE_CAR, &limits()).expect("reads");
        let records = repo.records().expect("walks");
        let root = repo.commit().data;
        for (path, cid) in records.iter().step_by(7) {
            let mut tree = crate::mst::Mst::load(repo.car.blocks(), root).expect("root");
            assert_eq!(
                tree.delete(path.as_bytes()).expect("present"),
                *cid,
                "{path}"
            );
            assert_ne!(tree.root_cid(&mut |_, _| {}), root, "{path}");
            tree.insert(path.as_bytes(), *cid).expect("absent again");
            assert_eq!(tree.root_cid(&mut |_, _| {}), root, "{path}");
        }
    }

    #[test]
    fn real_repository_signature_is_not_ours() {
        let repo = Repo::read(LITTLE_CAR, &limits()).expect("reads");
        let key = crate::parse_did_key("did:key:zQ3shqwJEJyMBsBXCWyCBpUBMqxcon9oHB7mCvx4sSpMdLJwc")
            .expect("key");
        let err = repo.verify_signature(&key).expect_err("unrelated key");
        assert_eq!(err.kind(), ErrorKind::BadSignature);
    }

    #[test]
    fn truncated_repository_is_rejected() {
        let err = Repo::read(&LITTLE_CAR[..LITTLE_CAR.len() / 2], &limits()).expect_err("cut");
        assert_eq!(err.kind(), ErrorKind::MalformedCar);
        let few = CarLimits {
            max_blocks: 100,
            ..limits()
        };
        let err = Repo::read(LITTLE_CAR, &few).expect_err("over 100 blocks");
        assert_eq!(err.kind(), ErrorKind::TooLarge);
    }
}

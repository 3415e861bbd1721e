//! [`Directory`]: DID documents for signature checks and PDS lookups, from the resolver's
//! memory cache, then the `did_doc` table, then the network, so a restart does not re-resolve
//! every tracked repo before it can verify a commit.
//!
//! Freshness: a persisted document is served while it is younger than [`PERSISTED_TTL`]; a
//! hit primes the resolver's cache, where it lives for the resolver's own TTL. A document is
//! thus at most `PERSISTED_TTL` + the resolver TTL old, unless something refreshes it sooner:
//! a signature that fails with the known key, or an `#identity` event ([`Directory::refresh`],
//! which always goes to the network). The table is only a cache: if Postgres fails, lookups
//! fall through to the network and the failure is logged, never returned.

use std::sync::Arc;

use chrono::Utc;
use plyr_identity::{Did, DidDocument, IdentityError, Resolver};
use sqlx::PgPool;

use crate::store;

/// How long a persisted document is trusted without asking the network again. Key rotations
/// and PDS moves come with `#identity` events, which refresh sooner; this bounds the damage of
/// a missed one.
pub(crate) const PERSISTED_TTL: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// DID documents through the resolver's cache and the `did_doc` table. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Directory {
    pool: PgPool,
    resolver: Resolver,
}

impl Directory {
    /// A directory over `pool`'s `did_doc` table, in front of `resolver`.
    pub(crate) fn new(pool: PgPool, resolver: Resolver) -> Directory {
        Directory { pool, resolver }
    }

    /// The resolver (handles, repo status), sharing this directory's memory cache.
    pub(crate) fn resolver(&self) -> &Resolver {
        &self.resolver
    }

    /// The DID's document: the resolver's cache, else a `did_doc` row younger than
    /// [`PERSISTED_TTL`] (which primes the cache), else the network (then stored).
    pub(crate) async fn document(&self, did: &Did) -> Result<Arc<DidDocument>, IdentityError> {
        if let Some(doc) = self.resolver.cached(did).await {
            return Ok(doc);
        }
        if let Some(doc) = self.persisted(did).await {
            self.resolver.prime(did, Arc::clone(&doc)).await;
            return Ok(doc);
        }
        let doc = self.resolver.resolve_did(did).await?;
        self.persist(did, &doc).await;
        Ok(doc)
    }

    /// Fetches the document from the network now, replacing the cached and stored copies:
    /// after a signature fails with the known key, or on an `#identity` event.
    pub(crate) async fn refresh(&self, did: &Did) -> Result<Arc<DidDocument>, IdentityError> {
        let doc = self.resolver.refresh_did(did).await?;
        self.persist(did, &doc).await;
        Ok(doc)
    }

    /// Stores the document the resolver holds for `did`, if any: for lookups that re-resolved
    /// through the resolver itself (`repo_status`).
    pub(crate) async fn persist_cached(&self, did: &Did) {
        if let Some(doc) = self.resolver.cached(did).await {
            self.persist(did, &doc).await;
        }
    }

    /// The stored document if fresh and still a document for `did`; anything else is a miss.
    async fn persisted(&self, did: &Did) -> Option<Arc<DidDocument>> {
        let fresh_after = Utc::now() - PERSISTED_TTL;
        let json = match store::fresh_did_doc(&self.pool, did.as_str(), fresh_after).await {
            Ok(json) => json?,
            Err(error) => {
                tracing::warn!(%did, error = %error, "reading a stored DID document failed");
                return None;
            }
        };
        match serde_json::from_value::<DidDocument>(json) {
            Ok(doc) if doc.id == did.as_str() => Some(Arc::new(doc)),
            Ok(_) => {
                tracing::warn!(%did, "stored DID document names another DID; resolving again");
                None
            }
            Err(error) => {
                tracing::warn!(%did, error = %error, "stored DID document does not parse");
                None
            }
        }
    }

    async fn persist(&self, did: &Did, doc: &DidDocument) {
        let json = match serde_json::to_value(doc) {
            Ok(json) => json,
            Err(error) => {
                tracing::warn!(%did, error = %error, "DID document does not serialize");
                return;
            }
        };
        if let Err(error) = store::upsert_did_doc(&self.pool, did.as_str(), &json).await {
            tracing::warn!(%did, error = %error, "storing a DID document failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use plyr_identity::Did;
    use sqlx::PgPool;

    use super::Directory;
    use crate::loopback::{KEY_A, KEY_B, Loopback};

    const DID: &str = "did:plc:dirdirdirdirdirdirdirdir";

    fn key_of(doc: &plyr_identity::DidDocument) -> Option<String> {
        doc.verification_method
            .first()
            .and_then(|m| m.public_key_multibase.clone())
    }

    /// The stored key of `did`, and whether its row was resolved within the last minute.
    async fn stored(pool: &PgPool, did: &str) -> Option<(String, bool)> {
        sqlx::query_as(
            "select doc #>> '{verificationMethod,0,publicKeyMultibase}',
                    resolved_at > now() - interval '1 minute'
             from did_doc where did = $1",
        )
        .bind(did)
        .fetch_optional(pool)
        .await
        .expect("did_doc query")
    }

    #[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
    async fn a_stored_document_survives_a_restart_until_it_is_stale(pool: PgPool) {
        let plc = Loopback::start().await;
        plc.set_doc(DID, KEY_A, plc.pds());
        let did = Did::new(DID).expect("did");

        let first = Directory::new(pool.clone(), plc.resolver());
        let doc = first.document(&did).await.expect("resolves");
        assert_eq!(key_of(&doc).as_deref(), Some(KEY_A));
        assert_eq!(plc.doc_hits(DID), 1);
        assert_eq!(stored(&pool, DID).await, Some((KEY_A.into(), true)));
        // The resolver's cache answers the next lookup.
        first.document(&did).await.expect("cached");
        assert_eq!(plc.doc_hits(DID), 1);

        // A restart: a new resolver with an empty cache reads the table, not the network,
        // and primes its cache.
        let restarted = Directory::new(pool.clone(), plc.resolver());
        let doc = restarted.document(&did).await.expect("from the table");
        assert_eq!(key_of(&doc).as_deref(), Some(KEY_A));
        assert_eq!(plc.doc_hits(DID), 1);
        assert!(restarted.resolver().cached(&did).await.is_some());

        // A row older than the TTL is fetched again and stored afresh.
        sqlx::query("update did_doc set resolved_at = now() - interval '25 hours'")
            .execute(&pool)
            .await
            .expect("age the row");
        let later = Directory::new(pool.clone(), plc.resolver());
        later.document(&did).await.expect("refetched");
        assert_eq!(plc.doc_hits(DID), 2);
        assert_eq!(stored(&pool, DID).await, Some((KEY_A.into(), true)));
        plc.stop().await;
    }

    #[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
    async fn refresh_picks_up_a_rotated_key(pool: PgPool) {
        let plc = Loopback::start().await;
        plc.set_doc(DID, KEY_A, plc.pds());
        let did = Did::new(DID).expect("did");
        let directory = Directory::new(pool.clone(), plc.resolver());
        directory.document(&did).await.expect("resolves");

        // The key rotates: cached lookups keep the old one until a refresh.
        plc.set_doc(DID, KEY_B, plc.pds());
        let cached = directory.document(&did).await.expect("cached");
        assert_eq!(key_of(&cached).as_deref(), Some(KEY_A));
        let fresh = directory.refresh(&did).await.expect("refreshed");
        assert_eq!(key_of(&fresh).as_deref(), Some(KEY_B));
        assert_eq!(plc.doc_hits(DID), 2);
        assert_eq!(stored(&pool, DID).await, Some((KEY_B.into(), true)));

        // After a restart the stored document has the new key, without a network hit.
        let restarted = Directory::new(pool.clone(), plc.resolver());
        let doc = restarted.document(&did).await.expect("from the table");
        assert_eq!(key_of(&doc).as_deref(), Some(KEY_B));
        assert_eq!(plc.doc_hits(DID), 2);
        plc.stop().await;
    }

    #[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
    async fn failures_are_not_stored(pool: PgPool) {
        let plc = Loopback::start().await;
        let did = Did::new(DID).expect("did");
        let directory = Directory::new(pool.clone(), plc.resolver());
        let kind = directory.document(&did).await.err().map(|e| e.kind());
        assert_eq!(kind, Some(plyr_identity::IdentityErrorKind::NotFound));
        assert_eq!(stored(&pool, DID).await, None);
        // A row for another DID (corrupted by hand) is a miss, not an answer.
        sqlx::query("insert into did_doc (did, doc) values ($1, '{\"id\":\"did:plc:other\"}')")
            .bind(DID)
            .execute(&pool)
            .await
            .expect("seed");
        plc.set_doc(DID, KEY_A, plc.pds());
        let doc = directory.document(&did).await.expect("resolves");
        assert_eq!(doc.id, DID);
        assert_eq!(stored(&pool, DID).await, Some((KEY_A.into(), true)));
        plc.stop().await;
    }
}

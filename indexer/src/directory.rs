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
    #[allow(
        dead_code,
        reason = "called by the relay and backfill paths as they land"
    )]
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

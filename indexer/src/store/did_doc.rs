//! Persisted DID documents (`did_doc`): the copy a restart reads instead of re-resolving every
//! repo before it can verify a signature. The resolver's in-memory cache sits in front.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::StoreError;

/// The stored document of `did` if it was resolved at or after `fresh_after`, as stored JSON.
pub(crate) async fn fresh_did_doc(
    pool: &PgPool,
    did: &str,
    fresh_after: DateTime<Utc>,
) -> Result<Option<serde_json::Value>, StoreError> {
    sqlx::query_scalar("select doc from did_doc where did = $1 and resolved_at >= $2")
        .bind(did)
        .bind(fresh_after)
        .fetch_optional(pool)
        .await
        .map_err(StoreError::at("reading a stored DID document"))
}

/// Stores `doc` as the document of `did`, resolved now.
pub(crate) async fn upsert_did_doc(
    pool: &PgPool,
    did: &str,
    doc: &serde_json::Value,
) -> Result<(), StoreError> {
    sqlx::query(
        "insert into did_doc (did, doc, resolved_at) values ($1, $2, now())
         on conflict (did) do update set doc = excluded.doc, resolved_at = excluded.resolved_at",
    )
    .bind(did)
    .bind(doc)
    .execute(pool)
    .await
    .map_err(StoreError::at("storing a DID document"))?;
    Ok(())
}

//! Labels from a labeler's stream (migration 0008): one frame's labels, its skip counts and the
//! labeler's seq in one transaction; the newest label per (src, uri, val) by `cts` wins.

use std::collections::HashMap;

use sqlx::PgPool;

use super::{StoreError, write_cursor};
use crate::labels::Label;

// Labels change views readers cache (hydrated labels, hidden content): the notify tells them
// to drop everything.
use super::notify::{CHANNEL, EVERYTHING as CHANGED};

/// Stores `labels` (one per key: see `labels::prepare`), counts `skips` and moves `source`'s
/// cursor to `seq`, in one transaction.
pub(crate) async fn apply_labels(
    pool: &PgPool,
    source: &str,
    seq: i64,
    labels: &[Label],
    skips: &HashMap<&'static str, i64>,
) -> Result<(), StoreError> {
    let mut tx = pool
        .begin()
        .await
        .map_err(StoreError::at("beginning a label transaction"))?;
    if !labels.is_empty() {
        let mut src = Vec::with_capacity(labels.len());
        let mut uri = Vec::with_capacity(labels.len());
        let mut val = Vec::with_capacity(labels.len());
        let mut cid = Vec::with_capacity(labels.len());
        let mut neg = Vec::with_capacity(labels.len());
        let mut cts = Vec::with_capacity(labels.len());
        let mut exp = Vec::with_capacity(labels.len());
        let mut ver = Vec::with_capacity(labels.len());
        let mut sig = Vec::with_capacity(labels.len());
        for label in labels {
            src.push(label.src.as_str());
            uri.push(label.uri.as_str());
            val.push(label.val.as_str());
            cid.push(label.cid.as_deref());
            neg.push(label.neg);
            cts.push(label.cts);
            exp.push(label.exp);
            ver.push(label.ver);
            sig.push(label.sig.as_deref());
        }
        // `where`: a replayed or out-of-order older label never undoes a newer one.
        sqlx::query(
            "insert into label (src, uri, val, cid, neg, cts, exp, ver, sig)
             select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bool[],
                                  $6::timestamptz[], $7::timestamptz[], $8::int8[], $9::bytea[])
             on conflict (src, uri, val) do update
             set cid = excluded.cid, neg = excluded.neg, cts = excluded.cts, exp = excluded.exp,
                 ver = excluded.ver, sig = excluded.sig, indexed_at = now()
             where excluded.cts >= label.cts",
        )
        .bind(&src)
        .bind(&uri)
        .bind(&val)
        .bind(&cid)
        .bind(&neg)
        .bind(&cts)
        .bind(&exp)
        .bind(&ver)
        .bind(&sig)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::at("storing labels"))?;
        sqlx::query("select pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(CHANGED)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::at("notifying label changes"))?;
    }
    for (reason, count) in skips {
        add_skip(&mut tx, reason, *count, "label skipped").await?;
    }
    write_cursor(&mut tx, source, seq).await?;
    tx.commit()
        .await
        .map_err(StoreError::at("committing labels"))
}

/// Counts one skipped frame (it has no seq to move the cursor to).
pub(crate) async fn count_skip(
    pool: &PgPool,
    reason: &'static str,
    detail: &str,
) -> Result<(), StoreError> {
    let mut conn = pool
        .acquire()
        .await
        .map_err(StoreError::at("counting a label skip"))?;
    add_skip(&mut conn, reason, 1, detail).await
}

async fn add_skip(
    conn: &mut sqlx::PgConnection,
    reason: &str,
    count: i64,
    detail: &str,
) -> Result<(), StoreError> {
    // Postgres text refuses NUL; the detail is for humans, a bounded prefix does.
    let detail: String = detail.replace('\0', "").chars().take(500).collect();
    sqlx::query(
        "insert into indexer_skip (reason, count, last_detail) values ($1, $2, $3)
         on conflict (reason) do update
         set count = indexer_skip.count + excluded.count,
             last_detail = excluded.last_detail, last_at = now()",
    )
    .bind(reason)
    .bind(count)
    .bind(detail)
    .execute(&mut *conn)
    .await
    .map_err(StoreError::at("counting label skips"))?;
    Ok(())
}

/// Records (or with `reverse` deletes) a local takedown of `subject` (`kind`: actor, record or
/// blob) and tells readers to drop their caches, in one transaction. Returns whether anything
/// changed (false: already taken down, or nothing to reverse).
pub(crate) async fn set_takedown(
    pool: &PgPool,
    subject: &str,
    kind: &str,
    reverse: bool,
) -> Result<bool, StoreError> {
    let mut tx = pool
        .begin()
        .await
        .map_err(StoreError::at("beginning a takedown transaction"))?;
    let changed = if reverse {
        sqlx::query("delete from takedown where subject = $1")
            .bind(subject)
            .execute(&mut *tx)
            .await
    } else {
        sqlx::query(
            "insert into takedown (subject, kind) values ($1, $2) on conflict (subject) do nothing",
        )
        .bind(subject)
        .bind(kind)
        .execute(&mut *tx)
        .await
    }
    .map_err(StoreError::at("writing a takedown"))?
    .rows_affected()
        > 0;
    sqlx::query("select pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(CHANGED)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::at("notifying a takedown"))?;
    tx.commit()
        .await
        .map_err(StoreError::at("committing a takedown"))?;
    Ok(changed)
}

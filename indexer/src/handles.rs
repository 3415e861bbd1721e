//! Verifies actors' handles beside the stream, never in it: a task picks actors that were never
//! checked (new publishers, or an `#identity` event asked again) or whose check is stale,
//! resolves their DID documents and keeps a handle only if it resolves back to the same DID.

use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt;
use plyr_identity::{Did, Resolver};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::directory::Directory;
use crate::store::{self, DueIdentity, StoreError};

/// Actors checked per round; with [`CONCURRENCY`] lookups in flight a round stays short, so
/// new publishers get their handles within seconds.
const ROUND: i64 = 64;
/// Lookups in flight. The resolver rate-limits per host on top (PLC: 50/s).
const CONCURRENCY: usize = 8;
/// How long a verified (or refused) handle is trusted before it is checked again, in case the
/// account changed it without an `#identity` event reaching us.
const REFRESH_AFTER: chrono::TimeDelta = chrono::TimeDelta::hours(24);
/// After a failed lookup (network, rate limit) the actor is due again this much later.
const RETRY_AFTER: chrono::TimeDelta = chrono::TimeDelta::minutes(10);
/// Wait before trying the database again after an error (it may be restarting).
const DB_RETRY: Duration = Duration::from_secs(1);
/// How often an idle resolver looks for new work.
const IDLE_POLL: Duration = Duration::from_secs(2);
/// At most one check per this interval (50/s): PLC's own budget for us, and it keeps the
/// resolver's writes a trickle beside the indexer's batches even when lookups fail instantly.
const CHECK_INTERVAL: Duration = Duration::from_millis(20);

/// Checks handles until `shutdown` is cancelled. Lookup failures leave the handle as it was and
/// retry later; so do database errors (Postgres restarting must not stop the process).
pub async fn resolve_handles(
    pool: PgPool,
    resolver: Resolver,
    shutdown: CancellationToken,
) -> Result<(), StoreError> {
    let directory = Directory::new(pool.clone(), resolver);
    loop {
        let due = match store::identity_due(&pool, Utc::now() - REFRESH_AFTER, ROUND).await {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(error = %error, "picking handle checks failed; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(DB_RETRY) => continue,
                }
            }
        };
        if due.is_empty() {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(IDLE_POLL) => continue,
            }
        }
        let paced_until = tokio::time::Instant::now()
            + CHECK_INTERVAL * u32::try_from(due.len()).unwrap_or(u32::MAX);
        let checks = futures_util::stream::iter(due)
            .map(|due| check(&pool, &directory, due))
            .buffer_unordered(CONCURRENCY);
        tokio::pin!(checks);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                next = checks.next() => match next {
                    Some(Ok(())) => {}
                    // The actor stays due: the next round picks it up again.
                    Some(Err(error)) => {
                        tracing::warn!(error = %error, "recording a handle check failed; retrying later");
                    }
                    None => break,
                },
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep_until(paced_until) => {}
        }
    }
}

/// One actor: resolve its document afresh (and store it: an `#identity` event, which queues
/// this check, may announce a rotated key or a new PDS), verify the handle both ways, record
/// the outcome.
async fn check(pool: &PgPool, directory: &Directory, due: DueIdentity) -> Result<(), StoreError> {
    let now = Utc::now();
    let Ok(did) = Did::new(&due.did) else {
        // Not a DID we can resolve (the indexer only stores valid ones): park it for a day.
        store::record_identity(pool, &due, None, now).await?;
        return Ok(());
    };
    match directory.refresh(&did).await {
        Ok(doc) => {
            let handle = directory.resolver().verified_handle(&doc).await;
            let shown = handle.as_ref().map(|h| h.as_str());
            tracing::debug!(did = %due.did, handle = ?shown, "handle checked");
            store::record_identity(pool, &due, Some(shown), now).await?;
        }
        Err(error) => {
            tracing::warn!(did = %due.did, kind = error.kind().as_str(), error = %error,
                           "identity lookup failed; handle unchanged");
            // Due again after RETRY_AFTER rather than a full REFRESH_AFTER.
            store::record_identity(pool, &due, None, now - REFRESH_AFTER + RETRY_AFTER).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use sqlx::PgPool;

    use crate::store::{self, DueIdentity};

    async fn actor(pool: &PgPool) -> (Option<String>, bool) {
        sqlx::query_as("select handle, identity_checked_at is not null from actor")
            .fetch_one(pool)
            .await
            .expect("actor")
    }

    #[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
    async fn a_changed_handle_is_notified_to_the_view_caches(pool: PgPool) {
        sqlx::query("insert into actor (did, handle) values ('did:plc:a', 'old.example.com')")
            .execute(&pool)
            .await
            .expect("seed");
        let mut listener = sqlx::postgres::PgListener::connect_with(&pool)
            .await
            .expect("listener");
        listener.listen("plyr_view_changed").await.expect("listen");
        let check = |handle: &'static str| {
            let pool = pool.clone();
            async move {
                let due = store::identity_due(&pool, Utc::now(), 10)
                    .await
                    .expect("due");
                sqlx::query("update actor set identity_checked_at = null")
                    .execute(&pool)
                    .await
                    .expect("due again");
                let due = DueIdentity {
                    checked_at: None,
                    ..due[0].clone()
                };
                assert!(
                    store::record_identity(&pool, &due, Some(Some(handle)), Utc::now())
                        .await
                        .expect("record")
                );
            }
        };
        check("new.example.com").await;
        let notified = listener.recv().await.expect("notification");
        let changes: serde_json::Value =
            serde_json::from_str(notified.payload()).expect("json payload");
        assert_eq!(changes["authors"], serde_json::json!(["did:plc:a"]));
        // The same handle again changes nothing: the next notification is our marker.
        check("new.example.com").await;
        sqlx::query("select pg_notify('plyr_view_changed', 'marker')")
            .execute(&pool)
            .await
            .expect("marker");
        let next = listener.recv().await.expect("notification");
        assert_eq!(next.payload(), "marker");
    }

    #[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
    async fn a_check_loses_to_an_identity_event_that_came_meanwhile(pool: PgPool) {
        sqlx::query("insert into actor (did, handle) values ('did:plc:a', 'old.example.com')")
            .execute(&pool)
            .await
            .expect("seed");
        let due: Vec<DueIdentity> = store::identity_due(&pool, Utc::now(), 10)
            .await
            .expect("due");
        assert_eq!(due.len(), 1);

        // Verified: the handle is kept and the actor is no longer due.
        let first = &due[0];
        assert!(
            store::record_identity(&pool, first, Some(Some("new.example.com")), Utc::now())
                .await
                .expect("record")
        );
        assert_eq!(actor(&pool).await, (Some("new.example.com".into()), true));
        let stale_before = Utc::now() - chrono::TimeDelta::hours(1);
        let due_again = store::identity_due(&pool, stale_before, 10)
            .await
            .expect("due");
        assert!(due_again.is_empty());

        // A check read before an #identity event must not overwrite what the event asked for.
        let read = store::identity_due(&pool, Utc::now(), 10)
            .await
            .expect("due");
        sqlx::query("update actor set handle = 'event.example.com', identity_checked_at = null")
            .execute(&pool)
            .await
            .expect("identity event");
        let written = store::record_identity(&pool, &read[0], Some(None), Utc::now())
            .await
            .expect("record");
        assert!(!written);
        assert_eq!(
            actor(&pool).await,
            (Some("event.example.com".into()), false)
        );

        // A failed lookup keeps the handle and only moves the check time.
        let read = store::identity_due(&pool, Utc::now(), 10)
            .await
            .expect("due");
        assert!(
            store::record_identity(&pool, &read[0], None, Utc::now())
                .await
                .expect("record")
        );
        assert_eq!(actor(&pool).await, (Some("event.example.com".into()), true));
    }
}

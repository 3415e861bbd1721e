//! Confirms `#account` events before they hide or purge anything, beside the stream, never in
//! it: old hosts keep sending stale "deactivated" events after an account migrates, so a
//! pending claim (stored by the batch that carried the event) is settled by asking the
//! account's current PDS (`com.atproto.sync.getRepoStatus`).
//!
//! Outcomes: the PDS reports the repo inactive -> apply the status it reports (`deleted`
//! purges); `RepoNotFound` -> deletion confirmed (purge); active -> the event was stale, drop the
//! claim; PDS unreachable or DID unresolvable -> leave the status, retry with backoff, and drop
//! the claim after [`GIVE_UP_AFTER`].

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use futures_util::StreamExt;
use plyr_identity::{Did, RepoStatus, Resolver};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::directory::Directory;
use crate::store::{self, PendingAccount, Settlement, StoreError};

/// Claims checked per round.
const ROUND: i64 = 32;
/// Checks in flight; the resolver rate-limits per host on top.
const CONCURRENCY: usize = 4;
/// First retry after a failed check; later ones wait as long as the claim is old, so retries
/// space out geometrically...
const MIN_RETRY: TimeDelta = TimeDelta::seconds(30);
/// ...up to this.
const MAX_RETRY: TimeDelta = TimeDelta::hours(1);
/// A claim no check could confirm for this long is dropped: the status stays as it was (an
/// account that is really gone answers RepoNotFound once its PDS is back, and hosts re-send
/// `#account` events on changes).
pub(crate) const GIVE_UP_AFTER: TimeDelta = TimeDelta::hours(24);
/// How often an idle checker looks for new claims.
const IDLE_POLL: Duration = Duration::from_secs(2);
/// At most one check per this interval (20/s): each is a PLC lookup and a PDS request.
const CHECK_INTERVAL: Duration = Duration::from_millis(50);
/// Longest status applied as sent; known ones are short words.
const MAX_STATUS_CHARS: usize = 64;
/// What a repo the PDS no longer has is marked as.
const DELETED: &str = "deleted";

/// Settles pending `#account` claims until `shutdown` is cancelled, with `resolver`'s
/// configuration (PLC URL, loopback policy). Lookup failures and transient database errors
/// leave statuses as they are and retry later; only other database errors stop the task.
pub async fn check_accounts(
    pool: PgPool,
    resolver: Resolver,
    shutdown: CancellationToken,
) -> Result<(), StoreError> {
    let directory = Directory::new(pool.clone(), resolver);
    loop {
        let due = match store::claim_pending_accounts(&pool, MIN_RETRY, MAX_RETRY, ROUND).await {
            Ok(due) => due,
            Err(error) if error.is_transient() => {
                tracing::warn!(error = %error, "claiming account statuses failed; retrying");
                Vec::new()
            }
            Err(error) => return Err(error),
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
            .map(|claim| check(&pool, &directory, claim))
            .buffer_unordered(CONCURRENCY);
        tokio::pin!(checks);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                next = checks.next() => match next {
                    Some(Err(error)) if error.is_transient() => {
                        // A settlement can lose a deadlock to a batch recounting the same
                        // tracks: the claim stays and is retried after its backoff.
                        tracing::warn!(error = %error, "settling an account status failed; retrying later");
                    }
                    Some(result) => result?,
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

/// One claim: ask the account's current PDS, then settle or leave it for a retry.
async fn check(
    pool: &PgPool,
    directory: &Directory,
    claim: PendingAccount,
) -> Result<(), StoreError> {
    let Ok(did) = Did::new(&claim.did) else {
        tracing::warn!(did = %claim.did, "pending account status for an unresolvable DID dropped");
        store::settle_account(pool, &claim, &Settlement::Drop).await?;
        return Ok(());
    };
    let answer = directory.resolver().repo_status(&did).await;
    // repo_status re-resolved the DID: keep the fresh document.
    directory.persist_cached(&did).await;
    let settlement = match answer {
        Ok(status) => verdict(&claim, status),
        Err(error) if Utc::now() - claim.since >= GIVE_UP_AFTER => {
            tracing::warn!(did = %claim.did, kind = error.kind().as_str(), error = %error,
                           claimed = ?claim.status, "account status unconfirmed; claim dropped");
            Settlement::Drop
        }
        Err(error) => {
            tracing::warn!(did = %claim.did, kind = error.kind().as_str(), error = %error,
                           "account status check failed; status unchanged, retrying later");
            return Ok(());
        }
    };
    if !store::settle_account(pool, &claim, &settlement).await? {
        tracing::debug!(did = %claim.did, "account claim superseded while checking");
    }
    Ok(())
}

/// What the PDS's answer means for a claim.
fn verdict(claim: &PendingAccount, status: RepoStatus) -> Settlement {
    match status {
        RepoStatus::Inactive { status } => {
            // The PDS's word wins over the event's, if it is a plausible status word.
            let plausible = !status.is_empty()
                && status.len() <= MAX_STATUS_CHARS
                && status
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            let status = match (plausible, &claim.status) {
                (true, _) => status,
                (false, Some(claimed)) => claimed.clone(),
                (false, None) => "inactive".to_owned(),
            };
            Settlement::Apply(status)
        }
        RepoStatus::NotFound => Settlement::Apply(DELETED.to_owned()),
        RepoStatus::Active { .. } => {
            tracing::info!(did = %claim.did, claimed = ?claim.status,
                           "stale account event: the current PDS says active; claim dropped");
            Settlement::Drop
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use plyr_lexicons::Namespace;
    use sqlx::PgPool;
    use tokio_util::sync::CancellationToken;

    use crate::event::decode;
    use crate::fold::{classify, plan};
    use crate::loopback::{KEY_A, Loopback, RepoAnswer, UNREACHABLE_PDS};
    use crate::store;
    use crate::testing::{account, tid, track};

    /// A did:plc made of one repeated letter.
    fn plc(letter: char) -> String {
        format!("did:plc:{}", letter.to_string().repeat(24))
    }

    async fn ingest(pool: &PgPool, events: &[String]) {
        let ns = Namespace::new("fm.plyr").expect("namespace");
        let items = events
            .iter()
            .map(|e| classify(&ns, decode(e.as_bytes())))
            .collect();
        store::apply(pool, "jetstream", &plan(items))
            .await
            .expect("batch applies");
    }

    /// (active, status, claim still pending, checked at least once) of an actor.
    async fn state(pool: &PgPool, did: &str) -> (bool, Option<String>, bool, bool) {
        sqlx::query_as(
            "select active, status, pending_since is not null, status_checked_at is not null
             from actor where did = $1",
        )
        .bind(did)
        .fetch_one(pool)
        .await
        .expect("actor")
    }

    async fn tracks_of(pool: &PgPool, did: &str) -> i64 {
        sqlx::query_scalar("select count(*) from track where did = $1")
            .bind(did)
            .fetch_one(pool)
            .await
            .expect("track count")
    }

    #[sqlx::test(migrator = "plyr_migrations::MIGRATOR")]
    async fn claims_are_settled_by_the_current_pds(pool: PgPool) {
        let world = Loopback::start().await;
        let confirmed = plc('c');
        let stale = plc('s');
        let gone = plc('g');
        let downgraded = plc('d');
        let unreachable = plc('u');
        let unresolvable = plc('x');
        for did in [&confirmed, &stale, &gone, &downgraded] {
            world.set_doc(did, KEY_A, world.pds());
        }
        world.set_doc(&unreachable, KEY_A, UNREACHABLE_PDS);
        world.set_status(&confirmed, RepoAnswer::Inactive("deactivated"));
        // The account moved: its old host sent the event, the new one says active.
        world.set_status(&stale, RepoAnswer::Active);
        world.set_status(&gone, RepoAnswer::NotFound);
        // The event said deleted; the PDS only reports the account deactivated.
        world.set_status(&downgraded, RepoAnswer::Inactive("deactivated"));

        let all = [
            &confirmed,
            &stale,
            &gone,
            &downgraded,
            &unreachable,
            &unresolvable,
        ];
        let mut events: Vec<String> = all
            .iter()
            .zip(1..)
            .map(|(did, n)| track(n, did, &tid(100 + n.unsigned_abs()), &tid(1), "T"))
            .collect();
        events.extend([
            account(10, &confirmed, false, Some("deactivated")),
            account(11, &stale, false, Some("deactivated")),
            account(12, &gone, false, Some("deleted")),
            account(13, &downgraded, false, Some("deleted")),
            account(14, &unreachable, false, Some("takendown")),
            account(15, &unresolvable, false, Some("suspended")),
        ]);
        ingest(&pool, &events).await;
        for did in all {
            assert_eq!(state(&pool, did).await, (true, None, true, false), "{did}");
        }
        // A claim nobody could confirm for longer than the bound is given up.
        sqlx::query("update actor set pending_since = now() - interval '25 hours' where did = $1")
            .bind(&unresolvable)
            .execute(&pool)
            .await
            .expect("age the claim");

        let stop = CancellationToken::new();
        let checker = tokio::spawn(super::check_accounts(
            pool.clone(),
            world.resolver(),
            stop.clone(),
        ));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let mut settled = 0;
            for did in all {
                let (_, _, pending, checked) = state(&pool, did).await;
                if !pending || (did == &unreachable && checked) {
                    settled += 1;
                }
            }
            if settled == all.len() {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "claims not settled");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.cancel();
        checker.await.expect("join").expect("checker");

        let deactivated = Some("deactivated".to_owned());
        assert_eq!(
            state(&pool, &confirmed).await,
            (false, deactivated.clone(), false, false)
        );
        assert_eq!(tracks_of(&pool, &confirmed).await, 1, "hidden, not purged");
        assert_eq!(state(&pool, &stale).await, (true, None, false, true));
        assert_eq!(
            state(&pool, &gone).await,
            (false, Some("deleted".into()), false, false)
        );
        assert_eq!(
            tracks_of(&pool, &gone).await,
            0,
            "RepoNotFound confirms a deletion"
        );
        assert_eq!(
            state(&pool, &downgraded).await,
            (false, deactivated, false, false)
        );
        assert_eq!(tracks_of(&pool, &downgraded).await, 1);
        // Unreachable PDS: status unchanged, the claim kept for a later retry.
        assert_eq!(state(&pool, &unreachable).await, (true, None, true, true));
        assert_eq!(state(&pool, &unresolvable).await, (true, None, false, true));
        // The checker stored the documents it re-resolved.
        let stored: i64 = sqlx::query_scalar("select count(*) from did_doc")
            .fetch_one(&pool)
            .await
            .expect("did_doc count");
        assert_eq!(stored, 5);
        world.stop().await;
    }
}

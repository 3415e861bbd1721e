//! Discovery: which repositories a host holds records of our namespace for.
//! `listReposByCollection` for each collection of the namespace, or, where the host lacks it
//! (a single PDS does), `listRepos` with inactive repos left out. Every page's DIDs are queued
//! together with the listing's next cursor, so a killed discovery resumes at the page it was on.

use std::time::Duration;

use plyr_identity::{IdentityError, Listing, RepoPage, SyncClient};
use plyr_lexicons::Namespace;
use sqlx::PgPool;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::{BackfillError, BackfillProgress};
use crate::store::{self, Discovery};

/// Repos asked for per page: the lexicons' maximum for `listRepos`.
const PAGE_LIMIT: u32 = 1000;
/// Attempts at one page before the run stops (its cursor is saved: a rerun resumes there).
const PAGE_ATTEMPTS: u32 = 3;
/// Wait before retrying a failed page; doubles each attempt.
const PAGE_RETRY: Duration = Duration::from_secs(1);
/// The `backfill_discovery.collection` of the `listRepos` fallback.
const ALL_REPOS: &str = "";

/// What discovery found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Discovered {
    /// DIDs new to the queue.
    pub queued: u64,
    /// Repos listed as inactive, left out.
    pub inactive: u64,
    /// Whether every listing reached its end (false when shutdown interrupted it).
    pub complete: bool,
}

/// Lists `host`'s repos with namespace records into the queue, resuming saved listings.
pub(super) async fn discover(
    pool: &PgPool,
    client: &SyncClient,
    host: &Url,
    namespace: &Namespace,
    progress: &watch::Sender<BackfillProgress>,
    shutdown: &CancellationToken,
) -> Result<Discovered, BackfillError> {
    let key = host_key(host)?;
    let mut found = Discovered::default();
    let collections = namespace.collections();
    for collection in &collections {
        let listing = Listed {
            pool,
            client,
            host,
            key: &key,
            collection,
        };
        match listing.run(&mut found, progress, shutdown).await? {
            Outcome::Done => {}
            Outcome::Interrupted => return Ok(found),
            Outcome::NotImplemented => {
                tracing::info!(host = %key, "host lacks listReposByCollection; listing every repo");
                let all = Listed {
                    collection: ALL_REPOS,
                    ..listing
                };
                match all.run(&mut found, progress, shutdown).await? {
                    Outcome::Done => {}
                    Outcome::Interrupted => return Ok(found),
                    Outcome::NotImplemented => {
                        return Err(BackfillError::Discovery {
                            host: key,
                            source: IdentityError::NotFound {
                                subject: "com.atproto.sync.listRepos".to_owned(),
                            },
                        });
                    }
                }
                // listRepos covered every collection.
                for collection in &collections {
                    all.close(collection).await?;
                }
                break;
            }
        }
    }
    found.complete = true;
    Ok(found)
}

/// The host as stored in `backfill_discovery`: its http(s) origin.
fn host_key(host: &Url) -> Result<String, BackfillError> {
    let url = plyr_identity::xrpc_url(host, "com.atproto.sync.listRepos").map_err(|source| {
        BackfillError::Discovery {
            host: host.to_string(),
            source,
        }
    })?;
    Ok(url.origin().ascii_serialization())
}

enum Outcome {
    Done,
    Interrupted,
    NotImplemented,
}

/// One listing (a collection, or every repo) of one host.
#[derive(Clone, Copy)]
struct Listed<'a> {
    pool: &'a PgPool,
    client: &'a SyncClient,
    host: &'a Url,
    key: &'a str,
    /// The collection, or [`ALL_REPOS`].
    collection: &'a str,
}

impl Listed<'_> {
    async fn run(
        &self,
        found: &mut Discovered,
        progress: &watch::Sender<BackfillProgress>,
        shutdown: &CancellationToken,
    ) -> Result<Outcome, BackfillError> {
        let saved = store::discovery(self.pool, self.key, self.collection).await?;
        let mut cursor = match saved {
            Some(Discovery { done: true, .. }) => return Ok(Outcome::Done),
            Some(Discovery { cursor, .. }) => cursor,
            None => None,
        };
        loop {
            if shutdown.is_cancelled() {
                return Ok(Outcome::Interrupted);
            }
            let page = match self.page(cursor.as_deref(), shutdown).await? {
                Some(Listing::Page(page)) => page,
                Some(Listing::NotImplemented) => return Ok(Outcome::NotImplemented),
                None => return Ok(Outcome::Interrupted),
            };
            let RepoPage {
                repos,
                invalid,
                cursor: next,
            } = page;
            if invalid > 0 {
                tracing::warn!(host = %self.key, invalid, "listing held invalid DIDs");
            }
            let (active, inactive): (Vec<_>, Vec<_>) = repos.into_iter().partition(|r| r.active);
            found.inactive += u64::try_from(inactive.len()).unwrap_or(u64::MAX);
            let dids: Vec<&str> = active.iter().map(|r| r.did.as_str()).collect();
            // A host repeating a cursor would loop forever: treat it as the end.
            let next = next.filter(|n| cursor.as_deref() != Some(n.as_str()));
            let done = next.is_none();
            let queued = store::save_page(
                self.pool,
                self.key,
                self.collection,
                &dids,
                &Discovery {
                    cursor: next.clone(),
                    done,
                },
            )
            .await?;
            found.queued += queued;
            progress.send_modify(|p| p.queued += queued);
            tracing::debug!(host = %self.key, collection = self.collection, listed = dids.len(),
                            queued, "discovery page");
            if done {
                return Ok(Outcome::Done);
            }
            cursor = next;
        }
    }

    /// One page, retried with backoff; `None` if shutdown came first.
    async fn page(
        &self,
        cursor: Option<&str>,
        shutdown: &CancellationToken,
    ) -> Result<Option<Listing>, BackfillError> {
        let mut delay = PAGE_RETRY;
        let mut attempt = 1;
        loop {
            let listing = if self.collection == ALL_REPOS {
                self.client.list_repos(self.host, cursor, PAGE_LIMIT).await
            } else {
                self.client
                    .list_repos_by_collection(self.host, self.collection, cursor, PAGE_LIMIT)
                    .await
            };
            match listing {
                Ok(listing) => return Ok(Some(listing)),
                Err(e) if attempt < PAGE_ATTEMPTS && retryable(&e) => {
                    tracing::warn!(host = %self.key, error = %e, retry_in = ?delay,
                                   "discovery page failed; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ok(None),
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay *= 2;
                    attempt += 1;
                }
                Err(source) => {
                    return Err(BackfillError::Discovery {
                        host: self.key.to_owned(),
                        source,
                    });
                }
            }
        }
    }

    /// Marks `collection`'s listing of this host done.
    async fn close(&self, collection: &str) -> Result<(), BackfillError> {
        let done = Discovery {
            cursor: None,
            done: true,
        };
        store::save_page(self.pool, self.key, collection, &[], &done).await?;
        Ok(())
    }
}

/// Whether a failed page may pass on retry (not an address refusal or a bad answer shape).
fn retryable(e: &IdentityError) -> bool {
    use plyr_identity::IdentityErrorKind as Kind;
    matches!(e.kind(), Kind::Timeout | Kind::Network | Kind::RateLimited)
}

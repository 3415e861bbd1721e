//! [`SyncClient`]: the repository sync calls a backfill makes to PDS and relay hosts
//! (`com.atproto.sync.getRepo`, `listRepos`, `listReposByCollection`), through the same
//! guarded fetcher as identity lookups: address policy, per-host rate limits, timeouts and
//! body caps read in chunks.

use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;
use url::Url;

use crate::config::ResolverConfig;
use crate::error::{BuildError, IdentityError};
use crate::fetch::{Download, FetchOptions, Fetched, Fetcher, Get};
use crate::identifier::Did;
use crate::rate::RateLimit;

/// Longest wait for a host's rate budget before a call gives up with
/// [`IdentityError::RateLimited`]: a backfill paces itself to the host instead of failing.
const MAX_RATE_WAIT: Duration = Duration::from_secs(60);
/// Longest XRPC error name kept in our messages (it comes from the remote).
const MAX_ERROR_NAME_CHARS: usize = 64;

/// Limits of a [`SyncClient`]. Start from `Default` and override fields.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// Test mode: allow loopback addresses (and plain http to them).
    pub allow_loopback: bool,
    /// TCP + TLS connect budget per request.
    pub connect_timeout: Duration,
    /// Whole-request budget of a list page.
    pub page_timeout: Duration,
    /// Whole-request budget of a `getRepo` export, body included.
    pub repo_timeout: Duration,
    /// Largest `getRepo` export accepted, in bytes.
    pub max_repo_bytes: usize,
    /// Largest list page accepted, in bytes.
    pub max_page_bytes: usize,
    /// Budget per host (PDS or relay).
    pub host_rate: RateLimit,
    /// Hosts tracked by the rate limiter at once.
    pub max_rate_limited_hosts: usize,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            allow_loopback: false,
            connect_timeout: Duration::from_secs(10),
            page_timeout: Duration::from_secs(30),
            // A 1 GiB export at ~10 MB/s.
            repo_timeout: Duration::from_secs(120),
            max_repo_bytes: 1 << 30,
            // 1000 entries of ~200 bytes; generous for hosts that add fields.
            max_page_bytes: 4 << 20,
            // getRepo is one of a PDS's costlier calls: stay well under the reference PDS's
            // limits while a few repos of one host download at once.
            host_rate: RateLimit {
                per_second: 5,
                burst: 10,
            },
            max_rate_limited_hosts: 10_000,
        }
    }
}

/// One repository in a list page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedRepo {
    /// The repository's DID.
    pub did: Did,
    /// Whether the host serves it (`listRepos` only; `listReposByCollection` lists active
    /// repos and reports `true`).
    pub active: bool,
    /// Why it is inactive, as sent.
    pub status: Option<String>,
    /// Its current revision, when the host reports it.
    pub rev: Option<String>,
}

/// A page of repositories and the cursor of the next one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepoPage {
    /// The repositories, in the host's order.
    pub repos: Vec<ListedRepo>,
    /// Entries whose DID was not valid, dropped from `repos`.
    pub invalid: usize,
    /// Where the next page starts; `None` on the last page.
    pub cursor: Option<String>,
}

/// A listing answer: a page, or word that the host does not implement the method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listing {
    /// A page of repositories.
    Page(RepoPage),
    /// The host answered 404, 501 or `MethodNotImplemented`: use another method.
    NotImplemented,
}

/// Talks to PDS and relay hosts for repository sync. Cheap to clone: clones share the
/// connection pool and rate budgets.
#[derive(Debug, Clone)]
pub struct SyncClient {
    inner: std::sync::Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: SyncConfig,
    fetcher: Fetcher,
}

#[derive(Deserialize)]
struct PageBody {
    #[serde(default)]
    cursor: Option<String>,
    repos: Vec<RepoEntry>,
}

#[derive(Deserialize)]
struct RepoEntry {
    did: String,
    #[serde(default)]
    active: Option<bool>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    rev: Option<String>,
}

#[derive(Deserialize)]
struct XrpcErrorBody {
    error: String,
}

impl SyncClient {
    /// Builds the HTTP client.
    pub fn new(config: SyncConfig) -> Result<SyncClient, BuildError> {
        if config.host_rate.per_second == 0 || config.host_rate.burst == 0 {
            return Err(BuildError::Config("rate limits must be positive"));
        }
        if config.max_repo_bytes == 0
            || config.max_page_bytes == 0
            || config.max_rate_limited_hosts == 0
        {
            return Err(BuildError::Config(
                "max_repo_bytes, max_page_bytes and max_rate_limited_hosts must be positive",
            ));
        }
        let fetcher = Fetcher::new(&ResolverConfig {
            allow_loopback: config.allow_loopback,
            connect_timeout: config.connect_timeout,
            request_timeout: config.page_timeout,
            max_rate_limited_hosts: config.max_rate_limited_hosts,
            ..ResolverConfig::default()
        })?;
        Ok(SyncClient {
            inner: std::sync::Arc::new(Inner { config, fetcher }),
        })
    }

    /// The limits in force.
    pub fn config(&self) -> &SyncConfig {
        &self.inner.config
    }

    /// `com.atproto.sync.getRepo` from `pds` (the DID document's `#atproto_pds`): the whole
    /// repository as CAR bytes, streamed up to `max_repo_bytes` within `repo_timeout`.
    /// A `RepoNotFound` (or 404) answer is [`IdentityError::NotFound`]; another XRPC error
    /// (`RepoTakendown`, `RepoDeactivated`, ...) is a network error naming it.
    pub async fn get_repo(&self, pds: &Url, did: &Did) -> Result<Vec<u8>, IdentityError> {
        let mut url = xrpc_url(pds, "com.atproto.sync.getRepo")?;
        url.query_pairs_mut().append_pair("did", did.as_str());
        let config = &self.inner.config;
        let fetched = self
            .fetch(
                &url,
                "application/vnd.ipld.car",
                config.max_repo_bytes,
                FetchOptions {
                    timeout: Some(config.repo_timeout),
                    server_errors: false,
                },
            )
            .await?;
        if fetched.status.is_success() {
            return Ok(fetched.body);
        }
        let host = url.host_str().unwrap_or_default();
        match xrpc_error(&fetched.body) {
            Some(error) if error == "RepoNotFound" => Err(IdentityError::NotFound {
                subject: did.to_string(),
            }),
            _ if fetched.status == StatusCode::NOT_FOUND => Err(IdentityError::NotFound {
                subject: did.to_string(),
            }),
            Some(error) => Err(IdentityError::network(
                host,
                format!("getRepo: xrpc error {}", truncate(&error)),
            )),
            None => Err(IdentityError::network(
                host,
                format!("getRepo: status {}", fetched.status),
            )),
        }
    }

    /// `com.atproto.sync.getBlob` from `pds`: the blob `cid` of `did`, streamed, refused past
    /// `max_bytes` (declared or received) and bounded by `timeout` in all. A `BlobNotFound`,
    /// `RepoNotFound` (or 404) answer is [`IdentityError::NotFound`]. The caller checks that
    /// the bytes hash to `cid`.
    pub async fn get_blob(
        &self,
        pds: &Url,
        did: &Did,
        cid: &str,
        max_bytes: u64,
        timeout: Duration,
    ) -> Result<Download, IdentityError> {
        let mut url = xrpc_url(pds, "com.atproto.sync.getBlob")?;
        url.query_pairs_mut()
            .append_pair("did", did.as_str())
            .append_pair("cid", cid);
        let host = url.host_str().unwrap_or_default().to_owned();
        let max_bytes = usize::try_from(max_bytes).unwrap_or(usize::MAX);
        let get = Get {
            url: &url,
            host_header: None,
            accept: "*/*",
            limit: self.inner.config.host_rate,
            max_bytes,
        };
        let options = FetchOptions {
            timeout: Some(timeout),
            server_errors: false,
        };
        let (status, mut response) = self.inner.fetcher.open(get, options).await?;
        if status.is_success() {
            return Ok(Download::new(response, &host, max_bytes));
        }
        // An error answer: read a little of it for the XRPC error name.
        let mut body = Vec::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            body.extend_from_slice(&chunk);
            if body.len() > 4096 {
                break;
            }
        }
        match xrpc_error(&body) {
            Some(error) if error == "BlobNotFound" || error == "RepoNotFound" => {
                Err(IdentityError::NotFound {
                    subject: format!("{did}/{cid}"),
                })
            }
            _ if status == StatusCode::NOT_FOUND => Err(IdentityError::NotFound {
                subject: format!("{did}/{cid}"),
            }),
            Some(error) => Err(IdentityError::network(
                &host,
                format!("getBlob: xrpc error {}", truncate(&error)),
            )),
            None => Err(IdentityError::network(
                &host,
                format!("getBlob: status {status}"),
            )),
        }
    }

    /// A plain GET of `url` (an allow-listed `audioUrl`), streamed under the same guard, cap
    /// and timeout rules as [`get_blob`](Self::get_blob). Any non-2xx answer is an error.
    pub async fn get_file(
        &self,
        url: &Url,
        max_bytes: u64,
        timeout: Duration,
    ) -> Result<Download, IdentityError> {
        let host = url.host_str().unwrap_or_default().to_owned();
        let max_bytes = usize::try_from(max_bytes).unwrap_or(usize::MAX);
        let get = Get {
            url,
            host_header: None,
            accept: "*/*",
            limit: self.inner.config.host_rate,
            max_bytes,
        };
        let options = FetchOptions {
            timeout: Some(timeout),
            server_errors: false,
        };
        let (status, response) = self.inner.fetcher.open(get, options).await?;
        match status {
            s if s.is_success() => Ok(Download::new(response, &host, max_bytes)),
            StatusCode::NOT_FOUND | StatusCode::GONE => Err(IdentityError::NotFound {
                subject: url.to_string(),
            }),
            s => Err(IdentityError::network(&host, format!("status {s}"))),
        }
    }

    /// One page of `com.atproto.sync.listRepos` on `host`, from `cursor`.
    pub async fn list_repos(
        &self,
        host: &Url,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Listing, IdentityError> {
        let mut url = xrpc_url(host, "com.atproto.sync.listRepos")?;
        url.query_pairs_mut()
            .append_pair("limit", &limit.to_string());
        if let Some(cursor) = cursor {
            url.query_pairs_mut().append_pair("cursor", cursor);
        }
        self.list(&url).await
    }

    /// One page of `com.atproto.sync.listReposByCollection` on `host` for `collection`,
    /// from `cursor`. A host without the method answers [`Listing::NotImplemented`].
    pub async fn list_repos_by_collection(
        &self,
        host: &Url,
        collection: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Listing, IdentityError> {
        let mut url = xrpc_url(host, "com.atproto.sync.listReposByCollection")?;
        url.query_pairs_mut()
            .append_pair("collection", collection)
            .append_pair("limit", &limit.to_string());
        if let Some(cursor) = cursor {
            url.query_pairs_mut().append_pair("cursor", cursor);
        }
        self.list(&url).await
    }

    async fn list(&self, url: &Url) -> Result<Listing, IdentityError> {
        let fetched = self
            .fetch(
                url,
                "application/json",
                self.inner.config.max_page_bytes,
                FetchOptions {
                    timeout: None,
                    server_errors: true,
                },
            )
            .await?;
        let host = url.host_str().unwrap_or_default();
        parse_listing(host, fetched.status, &fetched.body)
    }

    /// One guarded GET, waiting out the host's rate budget (up to [`MAX_RATE_WAIT`] in all).
    async fn fetch(
        &self,
        url: &Url,
        accept: &'static str,
        max_bytes: usize,
        options: FetchOptions,
    ) -> Result<Fetched, IdentityError> {
        let mut waited = Duration::ZERO;
        loop {
            let get = Get {
                url,
                host_header: None,
                accept,
                limit: self.inner.config.host_rate,
                max_bytes,
            };
            match self.inner.fetcher.fetch_with(get, options).await {
                Err(IdentityError::RateLimited { retry_after, .. })
                    if waited + retry_after <= MAX_RATE_WAIT =>
                {
                    // A token is due after `retry_after`; a little more so it is there.
                    let wait = retry_after + Duration::from_millis(5);
                    tokio::time::sleep(wait).await;
                    waited += wait;
                }
                other => return other,
            }
        }
    }
}

/// `{host}/xrpc/{method}`, for a host given as http(s) or ws(s) URL (a relay is often named
/// by its websocket URL).
pub fn xrpc_url(host: &Url, method: &str) -> Result<Url, IdentityError> {
    let mut url = host.clone();
    let scheme = match url.scheme() {
        "wss" => "https",
        "ws" => "http",
        other => other,
    }
    .to_owned();
    let name = host.host_str().unwrap_or_default();
    if url.set_scheme(&scheme).is_err() {
        return Err(IdentityError::network(
            name,
            "cannot use as an http(s) host",
        ));
    }
    url.set_query(None);
    url.set_fragment(None);
    url.path_segments_mut()
        .map_err(|()| IdentityError::network(name, "host url cannot take a path"))?
        .clear()
        .extend(["xrpc", method]);
    Ok(url)
}

/// Reads a list answer (2xx page, or the "not implemented" answers of 4xx/5xx).
fn parse_listing(host: &str, status: StatusCode, body: &[u8]) -> Result<Listing, IdentityError> {
    if !status.is_success() {
        let error = xrpc_error(body);
        // The reference PDS proxies methods it lacks (listReposByCollection) to its AppView,
        // which wants auth: an unauthenticated 401 AuthMissing means "not served here".
        if status == StatusCode::NOT_FOUND
            || status == StatusCode::NOT_IMPLEMENTED
            || error.as_deref() == Some("MethodNotImplemented")
            || (status == StatusCode::UNAUTHORIZED && error.as_deref() == Some("AuthMissing"))
        {
            return Ok(Listing::NotImplemented);
        }
        let detail = match error {
            Some(error) => format!("xrpc error {}", truncate(&error)),
            None => format!("status {status}"),
        };
        return Err(IdentityError::network(host, detail));
    }
    let page: PageBody = serde_json::from_slice(body)
        .map_err(|e| IdentityError::network(host, format!("not a repo list page: {e}")))?;
    let mut repos = Vec::with_capacity(page.repos.len());
    let mut invalid = 0;
    for entry in page.repos {
        match Did::new(&entry.did) {
            Ok(did) => repos.push(ListedRepo {
                did,
                active: entry.active.unwrap_or(true),
                status: entry.status,
                rev: entry.rev,
            }),
            Err(_) => invalid += 1,
        }
    }
    // An empty cursor means the end for some hosts.
    let cursor = page.cursor.filter(|c| !c.is_empty());
    Ok(Listing::Page(RepoPage {
        repos,
        invalid,
        cursor,
    }))
}

fn xrpc_error(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<XrpcErrorBody>(body)
        .ok()
        .map(|e| e.error)
}

fn truncate(s: &str) -> &str {
    s.char_indices()
        .nth(MAX_ERROR_NAME_CHARS)
        .map_or(s, |(i, _)| &s[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xrpc_urls() {
        let cases = [
            (
                "wss://bsky.network",
                "https://bsky.network/xrpc/com.atproto.sync.listRepos",
            ),
            (
                "ws://127.0.0.1:8080/xrpc/com.atproto.sync.subscribeRepos?cursor=5",
                "http://127.0.0.1:8080/xrpc/com.atproto.sync.listRepos",
            ),
            (
                "https://pds.example/",
                "https://pds.example/xrpc/com.atproto.sync.listRepos",
            ),
        ];
        for (host, want) in cases {
            let host = Url::parse(host).map_err(|e| e.to_string());
            let got = host.and_then(|h| {
                xrpc_url(&h, "com.atproto.sync.listRepos")
                    .map(String::from)
                    .map_err(|e| e.to_string())
            });
            assert_eq!(got.as_deref(), Ok(want));
        }
    }

    #[test]
    fn parses_listings() {
        let ok = StatusCode::OK;
        let page = parse_listing(
            "h",
            ok,
            br#"{"cursor":"c2","repos":[
                {"did":"did:plc:aaaaaaaaaaaaaaaaaaaaaaaa","head":"x","rev":"3l","active":true},
                {"did":"did:plc:bbbbbbbbbbbbbbbbbbbbbbbb","active":false,"status":"takendown"},
                {"did":"not a did"},
                {"did":"did:web:example.com"}]}"#,
        );
        let Ok(Listing::Page(page)) = page else {
            panic!("{page:?}");
        };
        assert_eq!(page.cursor.as_deref(), Some("c2"));
        assert_eq!(page.invalid, 1);
        let shape: Vec<(&str, bool, Option<&str>)> = page
            .repos
            .iter()
            .map(|r| (r.did.as_str(), r.active, r.status.as_deref()))
            .collect();
        assert_eq!(
            shape,
            [
                ("did:plc:aaaaaaaaaaaaaaaaaaaaaaaa", true, None),
                ("did:plc:bbbbbbbbbbbbbbbbbbbbbbbb", false, Some("takendown")),
                ("did:web:example.com", true, None),
            ]
        );
        let last = parse_listing("h", ok, br#"{"cursor":"","repos":[]}"#);
        assert_eq!(last.ok(), Some(Listing::Page(RepoPage::default())));

        let not_implemented = [
            (StatusCode::NOT_FOUND, &b"<html>"[..]),
            (StatusCode::NOT_IMPLEMENTED, b""),
            (
                StatusCode::BAD_REQUEST,
                br#"{"error":"MethodNotImplemented"}"#,
            ),
            // @atproto/pds 0.5.35 on listReposByCollection.
            (
                StatusCode::UNAUTHORIZED,
                br#"{"error":"AuthMissing","message":"Authentication Required"}"#,
            ),
        ];
        for (status, body) in not_implemented {
            assert_eq!(
                parse_listing("h", status, body).ok(),
                Some(Listing::NotImplemented),
                "{status}"
            );
        }
        let failures = [
            (
                StatusCode::BAD_REQUEST,
                &br#"{"error":"InvalidRequest"}"#[..],
            ),
            (StatusCode::INTERNAL_SERVER_ERROR, b""),
            (ok, b"not json"),
        ];
        for (status, body) in failures {
            let got = parse_listing("h", status, body).map_err(|e| e.kind());
            assert_eq!(got, Err(crate::IdentityErrorKind::Network), "{status}");
        }
    }
}

//! [`Resolver`]: DID documents (did:plc, did:web) and handles, behind bounded TTL caches, with
//! bidirectional handle verification. Every network access goes through the guarded fetcher.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::future::Cache;
use percent_encoding::percent_decode_str;
use url::{Host, Url};

use crate::address::{AddressClass, check_ip};
use crate::config::ResolverConfig;
use crate::dns::TxtResolver;
use crate::document::DidDocument;
use crate::error::{BuildError, IdentityError};
use crate::fetch::{Fetcher, Get, is_loopback_host};
use crate::identifier::{Did, Handle};
use crate::status::{RepoStatus, parse_repo_status};

/// TLDs that handle resolution refuses (the ATProto handle spec; not publicly resolvable).
const RESERVED_TLDS: [&str; 8] = [
    "local",
    "arpa",
    "invalid",
    "localhost",
    "internal",
    "example",
    "onion",
    "alt",
];
/// `/.well-known/atproto-did` holds one DID (at most 2048 characters) and maybe a newline.
const WELL_KNOWN_MAX_BYTES: usize = 4096;
const DID_DOC_ACCEPT: &str = "application/did+ld+json, application/json";
/// did:plc identifiers are 24 characters of base32 (lowercase, digits 2-7).
const PLC_ID_LEN: usize = 24;
/// A handle that does not resolve is retried sooner than one that does: its owner may be
/// setting it up right now (and the identity event may name a handle we never cached).
const NEGATIVE_HANDLE_TTL: Duration = Duration::from_secs(300);
/// A getRepoStatus answer is a few hundred bytes.
const REPO_STATUS_MAX_BYTES: usize = 16 * 1024;

/// Resolves DIDs and handles, with caching, rate limits and the address policy. Cheap to
/// clone: clones share caches and connections.
#[derive(Clone)]
pub struct Resolver {
    inner: Arc<Inner>,
}

struct Inner {
    config: ResolverConfig,
    fetcher: Fetcher,
    dns: TxtResolver,
    docs: Cache<Did, Arc<DidDocument>>,
    handles: Cache<Handle, Option<Did>>,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("config", &self.inner.config)
            .field("cached_docs", &self.inner.docs.entry_count())
            .field("cached_handles", &self.inner.handles.entry_count())
            .finish()
    }
}

impl Resolver {
    /// Builds a resolver: the HTTP client, the DNS resolver and the caches.
    pub fn new(config: ResolverConfig) -> Result<Resolver, BuildError> {
        if !matches!(config.plc_url.scheme(), "https" | "http") || config.plc_url.cannot_be_a_base()
        {
            return Err(BuildError::Config("plc_url must be an http(s) URL"));
        }
        let rates = [config.host_rate, config.plc_rate];
        if rates.iter().any(|r| r.per_second == 0 || r.burst == 0) {
            return Err(BuildError::Config("rate limits must be positive"));
        }
        if config.max_doc_bytes == 0 || config.max_rate_limited_hosts == 0 {
            return Err(BuildError::Config(
                "max_doc_bytes and max_rate_limited_hosts must be positive",
            ));
        }
        let fetcher = Fetcher::new(&config)?;
        let dns = TxtResolver::new(config.dns_nameserver, config.dns_timeout)?;
        let docs = Cache::builder()
            .max_capacity(config.cache_capacity)
            .time_to_live(config.cache_ttl)
            .build();
        let handles = Cache::builder()
            .max_capacity(config.cache_capacity)
            .expire_after(HandleExpiry {
                ttl: config.cache_ttl,
            })
            .build();
        Ok(Resolver {
            inner: Arc::new(Inner {
                config,
                fetcher,
                dns,
                docs,
                handles,
            }),
        })
    }

    /// The DID's document, from the cache or the network. Concurrent calls for one DID share a
    /// single fetch; failures are not cached.
    pub async fn resolve_did(&self, did: &Did) -> Result<Arc<DidDocument>, IdentityError> {
        self.inner
            .docs
            .try_get_with_by_ref(did, self.fetch_did(did))
            .await
            .map_err(|e| IdentityError::clone(&e))
    }

    /// Re-fetches the document, replacing the cached one: call once after a signature fails
    /// to verify with the cached key (the key may have rotated).
    pub async fn refresh_did(&self, did: &Did) -> Result<Arc<DidDocument>, IdentityError> {
        self.inner.docs.invalidate(did).await;
        self.resolve_did(did).await
    }

    /// The cached document, if any, without touching the network.
    pub async fn cached(&self, did: &Did) -> Option<Arc<DidDocument>> {
        self.inner.docs.get(did).await
    }

    /// Puts a document obtained elsewhere (a persisted copy) in the cache, where it lives for
    /// the configured TTL like a fetched one. The caller vouches that `doc.id` is `did`.
    pub async fn prime(&self, did: &Did, doc: Arc<DidDocument>) {
        self.inner.docs.insert(did.clone(), doc).await;
    }

    /// Forgets the cached document (and the answer for the handle it claimed): call on
    /// `#identity` events, with [`Resolver::invalidate_handle`] for the event's handle.
    pub async fn invalidate(&self, did: &Did) {
        if let Some(doc) = self.inner.docs.get(did).await
            && let Some(handle) = doc.handle()
        {
            self.inner.handles.invalidate(&handle).await;
        }
        self.inner.docs.invalidate(did).await;
    }

    /// Forgets the cached answer for a handle (an `#identity` event naming a new handle).
    pub async fn invalidate_handle(&self, handle: &Handle) {
        self.inner.handles.invalidate(handle).await;
    }

    /// The DID a handle points to, by DNS TXT `_atproto.<handle>` and HTTPS
    /// `/.well-known/atproto-did` run concurrently: the first that names a DID wins. `Ok(None)`
    /// when neither does; an error when neither does and a lookup failed (not cached, so a
    /// later call retries). Reserved TLDs are refused unless in test mode on loopback.
    pub async fn resolve_handle(&self, handle: &Handle) -> Result<Option<Did>, IdentityError> {
        self.inner
            .handles
            .try_get_with_by_ref(handle, self.lookup_handle(handle))
            .await
            .map_err(|e| IdentityError::clone(&e))
    }

    /// The document's handle if it resolves back to the document's DID, else `None` (show
    /// `handle.invalid`).
    pub async fn verified_handle(&self, doc: &DidDocument) -> Option<Handle> {
        let handle = doc.handle()?;
        match self.resolve_handle(&handle).await {
            Ok(Some(did)) if did.as_str() == doc.id => Some(handle),
            Ok(_) => None,
            Err(e) => {
                tracing::debug!(%handle, kind = e.kind().as_str(), error = %e, "handle lookup failed");
                None
            }
        }
    }

    /// Asks the account's current PDS for the repo's status. The DID document is re-fetched
    /// first: after a migration the old PDS reports the account deactivated, so a cached
    /// endpoint would confirm exactly the stale event this check exists to catch. An error
    /// means "unknown": leave the stored status unchanged and ask again later.
    pub async fn repo_status(&self, did: &Did) -> Result<RepoStatus, IdentityError> {
        let doc = self.refresh_did(did).await?;
        let pds = doc.pds_endpoint().ok_or_else(|| {
            IdentityError::invalid_document(did.as_str(), "no #atproto_pds service")
        })?;
        let mut url = pds
            .join("/xrpc/com.atproto.sync.getRepoStatus")
            .map_err(|e| {
                IdentityError::invalid_document(did.as_str(), format!("bad PDS url: {e}"))
            })?;
        url.query_pairs_mut().append_pair("did", did.as_str());
        let fetched = self
            .inner
            .fetcher
            .fetch(Get {
                url: &url,
                host_header: None,
                accept: "application/json",
                limit: self.inner.config.host_rate,
                max_bytes: REPO_STATUS_MAX_BYTES,
            })
            .await?;
        parse_repo_status(did.as_str(), fetched.status.is_success(), &fetched.body)
            .map_err(|detail| IdentityError::network(pds.host_str().unwrap_or_default(), detail))
    }

    async fn fetch_did(&self, did: &Did) -> Result<Arc<DidDocument>, IdentityError> {
        let config = &self.inner.config;
        let (url, limit) = match did.method() {
            "plc" => (plc_url(&config.plc_url, did)?, config.plc_rate),
            "web" => (did_web_url(did, config.allow_loopback)?, config.host_rate),
            _ => {
                return Err(IdentityError::UnsupportedMethod {
                    did: did.to_string(),
                    reason: "only did:plc and did:web are resolved",
                });
            }
        };
        let body = self
            .inner
            .fetcher
            .get(Get {
                url: &url,
                host_header: None,
                accept: DID_DOC_ACCEPT,
                limit,
                max_bytes: config.max_doc_bytes,
            })
            .await
            .map_err(|e| match e {
                IdentityError::NotFound { .. } => IdentityError::NotFound {
                    subject: did.to_string(),
                },
                e => e,
            })?;
        let doc: DidDocument = serde_json::from_slice(&body).map_err(|e| {
            IdentityError::invalid_document(did.as_str(), format!("not a DID document: {e}"))
        })?;
        if doc.id != did.as_str() {
            return Err(IdentityError::invalid_document(
                did.as_str(),
                "the document's id is another DID",
            ));
        }
        tracing::debug!(%did, "resolved DID document");
        Ok(Arc::new(doc))
    }

    async fn lookup_handle(&self, handle: &Handle) -> Result<Option<Did>, IdentityError> {
        if RESERVED_TLDS.contains(&handle.tld()) {
            // Test mode may use such names on loopback; only the HTTPS method applies then.
            if !self.inner.config.allow_loopback || !resolves_to_loopback(handle).await {
                return Err(IdentityError::forbidden(
                    handle.as_str(),
                    "reserved top-level domain",
                ));
            }
            return self.well_known_did(handle).await;
        }
        first_did(self.inner.dns.did_for(handle), self.well_known_did(handle)).await
    }

    /// The HTTPS method: the body of `/.well-known/atproto-did`, trimmed, must be a DID.
    async fn well_known_did(&self, handle: &Handle) -> Result<Option<Did>, IdentityError> {
        let config = &self.inner.config;
        let (url, host_header) = match &config.handle_resolution_base {
            Some(base) => (base.join("/.well-known/atproto-did"), Some(handle.as_str())),
            None => (
                Url::parse(&format!("https://{handle}/.well-known/atproto-did")),
                None,
            ),
        };
        let url =
            url.map_err(|e| IdentityError::network(handle.as_str(), format!("bad url: {e}")))?;
        let body = self
            .inner
            .fetcher
            .get(Get {
                url: &url,
                host_header,
                accept: "text/plain",
                limit: config.host_rate,
                max_bytes: WELL_KNOWN_MAX_BYTES,
            })
            .await;
        match body {
            Ok(body) => Ok(std::str::from_utf8(&body)
                .ok()
                .and_then(|text| Did::new(text.trim()).ok())),
            Err(IdentityError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Expiry of handle answers: the configured TTL, shorter for "no DID".
struct HandleExpiry {
    ttl: Duration,
}

impl Expiry<Handle, Option<Did>> for HandleExpiry {
    fn expire_after_create(&self, _: &Handle, did: &Option<Did>, _: Instant) -> Option<Duration> {
        Some(match did {
            Some(_) => self.ttl,
            None => self.ttl.min(NEGATIVE_HANDLE_TTL),
        })
    }
}

/// Runs both handle methods; the first `Some` wins. If neither names a DID, an error from
/// either is returned (the HTTPS one first: it names the host and the address rule).
async fn first_did(
    dns: impl Future<Output = Result<Option<Did>, IdentityError>>,
    https: impl Future<Output = Result<Option<Did>, IdentityError>>,
) -> Result<Option<Did>, IdentityError> {
    tokio::pin!(dns, https);
    let mut dns_result = None;
    let mut https_result = None;
    while dns_result.is_none() || https_result.is_none() {
        tokio::select! {
            result = &mut dns, if dns_result.is_none() => {
                if let Ok(Some(did)) = result {
                    return Ok(Some(did));
                }
                dns_result = Some(result);
            }
            result = &mut https, if https_result.is_none() => {
                if let Ok(Some(did)) = result {
                    return Ok(Some(did));
                }
                https_result = Some(result);
            }
        }
    }
    match (https_result, dns_result) {
        (Some(Err(e)), _) | (_, Some(Err(e))) => Err(e),
        _ => Ok(None),
    }
}

/// Whether every address of the name is loopback (and it has one).
async fn resolves_to_loopback(handle: &Handle) -> bool {
    match tokio::net::lookup_host((handle.as_str(), 0)).await {
        Ok(addrs) => {
            let classes: Vec<AddressClass> =
                addrs.map(|a| crate::address::classify(a.ip())).collect();
            !classes.is_empty() && classes.iter().all(|c| *c == AddressClass::Loopback)
        }
        Err(_) => false,
    }
}

/// `{plc_url}/{did}`, after checking the identifier's shape so nothing odd reaches the path.
fn plc_url(base: &Url, did: &Did) -> Result<Url, IdentityError> {
    let id = did.as_str().strip_prefix("did:plc:").unwrap_or_default();
    let valid = id.len() == PLC_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b));
    if !valid {
        // No directory can hold it.
        return Err(IdentityError::NotFound {
            subject: did.to_string(),
        });
    }
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| IdentityError::network(base.as_str(), "plc_url cannot take a path"))?
        .pop_if_empty()
        .push(did.as_str());
    Ok(url)
}

/// `https://<host>/.well-known/did.json` for a hostname-only did:web (`%3A` may encode a port,
/// accepted in test mode only); `http` for loopback hosts in test mode.
fn did_web_url(did: &Did, allow_loopback: bool) -> Result<Url, IdentityError> {
    let unsupported = |reason| IdentityError::UnsupportedMethod {
        did: did.to_string(),
        reason,
    };
    let id = did.as_str().strip_prefix("did:web:").unwrap_or_default();
    if id.contains(':') {
        return Err(unsupported(
            "did:web with a path (atproto uses hostname-only did:web)",
        ));
    }
    let host = percent_decode_str(id)
        .decode_utf8()
        .map_err(|_| unsupported("did:web host is not UTF-8"))?;
    if host.contains(['/', '\\', '@', '?', '#']) {
        return Err(unsupported("did:web is not a hostname"));
    }
    let mut url = Url::parse(&format!("https://{host}/.well-known/did.json"))
        .map_err(|_| unsupported("did:web is not a hostname"))?;
    let url_host = url
        .host()
        .ok_or_else(|| unsupported("did:web is not a hostname"))?;
    // Address rules first, so a refused target is reported as such whatever else is wrong.
    let literal = match url_host {
        Host::Ipv4(ip) => Some(ip.into()),
        Host::Ipv6(ip) => Some(ip.into()),
        Host::Domain(_) => None,
    };
    if let Some(ip) = literal {
        check_ip(ip, allow_loopback).map_err(|class| {
            IdentityError::forbidden(&host, format!("{ip} is a {} address", class.as_str()))
        })?;
    }
    let loopback = is_loopback_host(&url_host);
    if loopback && !allow_loopback {
        return Err(IdentityError::forbidden(&host, "localhost is loopback"));
    }
    if url.port().is_some() && !allow_loopback {
        return Err(unsupported("did:web with a port (test mode only)"));
    }
    if loopback && url.set_scheme("http").is_err() {
        return Err(unsupported("did:web is not a hostname"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::IdentityErrorKind;

    fn did(s: &str) -> Did {
        match Did::new(s) {
            Ok(did) => did,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn did_web_urls() {
        use IdentityErrorKind::*;
        let cases: [(&str, bool, Result<&str, IdentityErrorKind>); 14] = [
            (
                "did:web:example.com",
                false,
                Ok("https://example.com/.well-known/did.json"),
            ),
            (
                "did:web:Example.COM",
                false,
                Ok("https://example.com/.well-known/did.json"),
            ),
            (
                "did:web:localhost%3A2583",
                true,
                Ok("http://localhost:2583/.well-known/did.json"),
            ),
            (
                "did:web:127.0.0.1%3A80",
                true,
                Ok("http://127.0.0.1/.well-known/did.json"),
            ),
            ("did:web:example.com%3A8443", false, Err(UnsupportedMethod)),
            (
                "did:web:example.com:user:alice",
                false,
                Err(UnsupportedMethod),
            ),
            ("did:web:evil.com%2F%40x", false, Err(UnsupportedMethod)),
            ("did:web:localhost", false, Err(ForbiddenAddress)),
            ("did:web:127.0.0.1", false, Err(ForbiddenAddress)),
            ("did:web:10.0.0.1", true, Err(ForbiddenAddress)),
            ("did:web:192.168.1.1", false, Err(ForbiddenAddress)),
            ("did:web:169.254.169.254", true, Err(ForbiddenAddress)),
            ("did:web:%5B%3A%3A1%5D", false, Err(ForbiddenAddress)),
            (
                "did:web:%5Bfc00%3A%3A1%5D%3A443",
                true,
                Err(ForbiddenAddress),
            ),
        ];
        for (input, allow_loopback, expected) in cases {
            let got = did_web_url(&did(input), allow_loopback)
                .map(String::from)
                .map_err(|e| e.kind());
            assert_eq!(got.as_deref().map_err(|k| *k), expected, "{input}");
        }
    }

    #[test]
    fn plc_urls() {
        let base = Url::parse("https://plc.directory");
        let base = match base {
            Ok(base) => base,
            Err(e) => panic!("{e}"),
        };
        let cases = [
            (
                "did:plc:ewvi7nxzyoun6zhxrhs64oiz",
                Some("https://plc.directory/did:plc:ewvi7nxzyoun6zhxrhs64oiz"),
            ),
            ("did:plc:ewvi7nxzyoun6zhxrhs64oi", None),
            ("did:plc:EWVI7NXZYOUN6ZHXRHS64OIZ", None),
            ("did:plc:ewvi7nxzyoun6zhxrhs64oi1", None),
        ];
        for (input, expected) in cases {
            let got = plc_url(&base, &did(input)).ok().map(String::from);
            assert_eq!(got.as_deref(), expected, "{input}");
        }
    }
}

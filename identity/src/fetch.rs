//! The outbound HTTP GET every lookup uses: SSRF-checked targets, per-host rate limits,
//! timeouts, same-origin redirects only, and bodies read in chunks up to a cap.

use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, HOST};
use reqwest::redirect::{Attempt, Policy};
use url::{Host, Url};

use crate::address::{DnsRefusal, GuardedDns, check_ip};
use crate::config::ResolverConfig;
use crate::error::{BuildError, IdentityError};
use crate::rate::{RateLimit, RateLimiter};

/// A redirect chain longer than this is a misconfiguration (or a loop).
const MAX_REDIRECTS: usize = 3;
const USER_AGENT: &str = concat!("plyr-appview-identity/", env!("CARGO_PKG_VERSION"));

/// One GET: where, which host it is for, its rate budget and body cap.
pub(crate) struct Get<'a> {
    pub(crate) url: &'a Url,
    /// Sent as `Host` (handle lookups through a test base URL); also the rate-limit key.
    pub(crate) host_header: Option<&'a str>,
    pub(crate) accept: &'static str,
    pub(crate) limit: RateLimit,
    pub(crate) max_bytes: usize,
}

impl<'a> Get<'a> {
    /// The host the request is for: the rate-limit key and the name in errors.
    fn host_label(&self) -> &'a str {
        self.host_header
            .or_else(|| self.url.host_str())
            .unwrap_or_default()
    }
}

/// Per-request options beyond [`Get`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FetchOptions {
    /// Whole-request budget (body included) replacing the client's: a repo export takes
    /// longer than a DID document.
    pub(crate) timeout: Option<Duration>,
    /// Hand back 5xx answers instead of failing on them.
    pub(crate) server_errors: bool,
}

/// A 2xx or 4xx answer (or 5xx, when asked for).
pub(crate) struct Fetched {
    pub(crate) status: StatusCode,
    pub(crate) body: Vec<u8>,
}

/// The guarded HTTP client.
#[derive(Debug)]
pub(crate) struct Fetcher {
    client: reqwest::Client,
    allow_loopback: bool,
    limiter: RateLimiter,
}

impl Fetcher {
    pub(crate) fn new(config: &ResolverConfig) -> Result<Fetcher, BuildError> {
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(GuardedDns {
                allow_loopback: config.allow_loopback,
            }))
            // A proxy would connect on our behalf, past the address checks.
            .no_proxy()
            .redirect(Policy::custom(same_origin))
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .user_agent(USER_AGENT)
            .referer(false)
            .build()
            .map_err(BuildError::Http)?;
        Ok(Fetcher {
            client,
            allow_loopback: config.allow_loopback,
            limiter: RateLimiter::new(config.max_rate_limited_hosts),
        })
    }

    /// Fetches a 2xx body. 404 and 410 are [`IdentityError::NotFound`] (subject: the host).
    pub(crate) async fn get(&self, get: Get<'_>) -> Result<Vec<u8>, IdentityError> {
        let host = get.host_label();
        let fetched = self.fetch(get).await?;
        match fetched.status {
            status if status.is_success() => Ok(fetched.body),
            StatusCode::NOT_FOUND | StatusCode::GONE => Err(IdentityError::NotFound {
                subject: host.to_owned(),
            }),
            status => Err(IdentityError::network(host, format!("status {status}"))),
        }
    }

    /// Fetches a 2xx or 4xx answer with its (capped) body, for callers that read error
    /// bodies; redirects not followed and 5xx are errors.
    pub(crate) async fn fetch(&self, get: Get<'_>) -> Result<Fetched, IdentityError> {
        self.fetch_with(get, FetchOptions::default()).await
    }

    /// [`Fetcher::fetch`] with a request budget of its own and, optionally, 5xx answers
    /// handed back (a 501 says an XRPC method is not implemented).
    pub(crate) async fn fetch_with(
        &self,
        get: Get<'_>,
        options: FetchOptions,
    ) -> Result<Fetched, IdentityError> {
        let host = get.host_label();
        let max_bytes = get.max_bytes;
        let (status, mut response) = self.open(get, options).await?;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| classify(host, e))? {
            if body.len().saturating_add(chunk.len()) > max_bytes {
                return Err(IdentityError::TooLarge {
                    host: host.to_owned(),
                    limit: max_bytes,
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched { status, body })
    }

    /// Sends a guarded GET and checks the status and declared length; the body is left
    /// unread for the caller, who must keep to `get.max_bytes` while reading it.
    pub(crate) async fn open(
        &self,
        get: Get<'_>,
        options: FetchOptions,
    ) -> Result<(StatusCode, reqwest::Response), IdentityError> {
        let host = get.host_label();
        self.check_target(get.url, host)?;
        self.limiter
            .try_acquire(host, get.limit)
            .map_err(|retry_after| IdentityError::RateLimited {
                host: host.to_owned(),
                retry_after,
            })?;
        let mut request = self.client.get(get.url.clone()).header(ACCEPT, get.accept);
        if let Some(host_header) = get.host_header {
            request = request.header(HOST, host_header);
        }
        if let Some(timeout) = options.timeout {
            request = request.timeout(timeout);
        }
        let response = request.send().await.map_err(|e| classify(host, e))?;
        let status = response.status();
        if status.is_redirection() {
            // Only left unfollowed when cross-origin or past MAX_REDIRECTS.
            return Err(IdentityError::network(host, "redirect not followed"));
        }
        let handed_back = status.is_success()
            || status.is_client_error()
            || (options.server_errors && status.is_server_error());
        if !handed_back {
            return Err(IdentityError::network(host, format!("status {status}")));
        }
        if response
            .content_length()
            .is_some_and(|len| usize::try_from(len).map_or(true, |len| len > get.max_bytes))
        {
            return Err(IdentityError::TooLarge {
                host: host.to_owned(),
                limit: get.max_bytes,
            });
        }
        Ok((status, response))
    }

    /// Refuses, before any connection: plain http except to loopback in test mode, and IP
    /// literals the address policy refuses. Names are checked when they resolve.
    fn check_target(&self, url: &Url, host: &str) -> Result<(), IdentityError> {
        let url_host = url
            .host()
            .ok_or_else(|| IdentityError::network(host, "url has no host"))?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_loopback && is_loopback_host(&url_host) => {}
            "http" => {
                return Err(IdentityError::forbidden(
                    host,
                    "plain http is only allowed to loopback, in test mode",
                ));
            }
            _ => return Err(IdentityError::network(host, "not an http(s) url")),
        }
        let ip = match url_host {
            Host::Ipv4(ip) => ip.into(),
            Host::Ipv6(ip) => ip.into(),
            Host::Domain(_) => return Ok(()),
        };
        check_ip(ip, self.allow_loopback).map_err(|class| {
            IdentityError::forbidden(host, format!("{ip} is a {} address", class.as_str()))
        })
    }
}

/// A 2xx body being streamed under a byte cap (a blob download).
#[derive(Debug)]
pub struct Download {
    response: reqwest::Response,
    host: String,
    received: usize,
    max_bytes: usize,
}

impl Download {
    pub(crate) fn new(response: reqwest::Response, host: &str, max_bytes: usize) -> Download {
        Download {
            response,
            host: host.to_owned(),
            received: 0,
            max_bytes,
        }
    }

    /// The length the server declared, if any (already checked against the cap).
    pub fn content_length(&self) -> Option<u64> {
        self.response.content_length()
    }

    /// The next chunk of the body, `None` at its end; an error once the body passes the cap.
    pub async fn chunk(&mut self) -> Result<Option<bytes::Bytes>, IdentityError> {
        let Some(chunk) = self
            .response
            .chunk()
            .await
            .map_err(|e| classify(&self.host, e))?
        else {
            return Ok(None);
        };
        self.received = self.received.saturating_add(chunk.len());
        if self.received > self.max_bytes {
            return Err(IdentityError::TooLarge {
                host: self.host.clone(),
                limit: self.max_bytes,
            });
        }
        Ok(Some(chunk))
    }
}

/// A loopback IP literal, or `localhost` / `*.localhost` (RFC 6761 reserves them for loopback).
pub(crate) fn is_loopback_host(host: &Host<&str>) -> bool {
    match host {
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
        Host::Domain(name) => {
            let name = name.trim_end_matches('.');
            name.eq_ignore_ascii_case("localhost")
                || name.to_ascii_lowercase().ends_with(".localhost")
        }
    }
}

/// Follows a redirect only within the origin of the first request.
fn same_origin(attempt: Attempt<'_>) -> reqwest::redirect::Action {
    let same = attempt
        .previous()
        .first()
        .is_some_and(|first| first.origin() == attempt.url().origin());
    if same && attempt.previous().len() <= MAX_REDIRECTS {
        attempt.follow()
    } else {
        attempt.stop()
    }
}

/// Maps a client error to its kind, finding the guarded resolver's refusal in the chain.
fn classify(host: &str, error: reqwest::Error) -> IdentityError {
    let mut source = error.source();
    while let Some(cause) = source {
        match cause.downcast_ref::<DnsRefusal>() {
            Some(refusal @ DnsRefusal::Forbidden { .. }) => {
                return IdentityError::forbidden(host, refusal.to_string());
            }
            Some(DnsRefusal::NoAddress { .. }) => {
                return IdentityError::NotFound {
                    subject: host.to_owned(),
                };
            }
            None => source = cause.source(),
        }
    }
    if error.is_timeout() {
        return IdentityError::Timeout {
            host: host.to_owned(),
        };
    }
    IdentityError::Network {
        host: host.to_owned(),
        detail: "request failed".into(),
        source: Some(Arc::new(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        let cases = [
            ("http://localhost:1/", true),
            ("http://LOCALHOST./", true),
            ("http://alice.localhost/", true),
            ("http://127.0.0.1/", true),
            ("http://127.1.2.3/", true),
            ("http://[::1]/", true),
            ("http://localhost.example/", false),
            ("http://10.0.0.1/", false),
            ("http://example.com/", false),
        ];
        for (url, expected) in cases {
            let parsed = Url::parse(url);
            let host = parsed.as_ref().ok().and_then(Url::host);
            assert_eq!(host.as_ref().map(is_loopback_host), Some(expected), "{url}");
        }
    }
}

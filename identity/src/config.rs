//! [`ResolverConfig`]: where to resolve, what may be contacted, and the timeouts, caps,
//! cache and rate limits, with production defaults.

use std::net::SocketAddr;
use std::time::Duration;

use url::Url;

use crate::rate::RateLimit;

/// Configuration of a [`Resolver`](crate::Resolver). Start from `Default` and override fields.
#[derive(Debug, Clone)]
pub struct ResolverConfig {
    /// The PLC directory; `did:plc` documents are fetched from `{plc_url}/{did}`.
    pub plc_url: Url,
    /// Test mode: allow loopback addresses (and plain http to them). Private, link-local and
    /// other non-public addresses stay refused either way.
    pub allow_loopback: bool,
    /// TCP + TLS connect budget per request.
    pub connect_timeout: Duration,
    /// Whole-request budget, body included.
    pub request_timeout: Duration,
    /// DNS TXT lookup budget.
    pub dns_timeout: Duration,
    /// Largest DID document accepted, in bytes.
    pub max_doc_bytes: usize,
    /// DID documents (and, separately, handle answers) kept in memory.
    pub cache_capacity: u64,
    /// How long a cached document or handle answer is trusted; identity events invalidate
    /// entries sooner.
    pub cache_ttl: Duration,
    /// Budget per host for did:web and handle lookups.
    pub host_rate: RateLimit,
    /// Budget for the PLC directory, which serves every did:plc lookup.
    pub plc_rate: RateLimit,
    /// Hosts tracked by the rate limiter at once (bounds its memory).
    pub max_rate_limited_hosts: usize,
    /// DNS server for TXT lookups; `None` uses the system configuration (resolv.conf).
    pub dns_nameserver: Option<SocketAddr>,
    /// Tests only: send HTTPS handle lookups to `{base}/.well-known/atproto-did` with the
    /// handle as `Host` header, instead of `https://{handle}/...` (a local PDS serving `*.test`
    /// handles). The base is still subject to the address policy.
    pub handle_resolution_base: Option<Url>,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        ResolverConfig {
            plc_url: default_plc_url(),
            allow_loopback: false,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            dns_timeout: Duration::from_secs(5),
            // PLC documents are about 1 KiB; 64 KiB leaves room for big did:web documents.
            max_doc_bytes: 64 * 1024,
            cache_capacity: 50_000,
            cache_ttl: Duration::from_secs(3600),
            host_rate: RateLimit {
                per_second: 5,
                burst: 20,
            },
            // A guess at a polite rate for plc.directory; raise it for a local mirror.
            plc_rate: RateLimit {
                per_second: 50,
                burst: 100,
            },
            max_rate_limited_hosts: 10_000,
            dns_nameserver: None,
            handle_resolution_base: None,
        }
    }
}

fn default_plc_url() -> Url {
    // A constant, so this cannot fail at run time; the unit test below parses it too.
    Url::parse(DEFAULT_PLC_URL).expect("DEFAULT_PLC_URL is a valid URL")
}

/// The public PLC directory.
const DEFAULT_PLC_URL: &str = "https://plc.directory";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_plc_url_parses() {
        assert_eq!(
            Url::parse(DEFAULT_PLC_URL).map(String::from),
            Ok("https://plc.directory/".into())
        );
    }
}

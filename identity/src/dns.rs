//! Handle resolution over DNS: the TXT record `_atproto.<handle>` holding `did=<DID>`, looked
//! up through hickory (resolv.conf, or one configured nameserver for tests).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::ProtoErrorKind;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::{Name, TokioResolver};

use crate::error::{BuildError, IdentityError};
use crate::identifier::{Did, Handle};

/// Looks up `_atproto` TXT records.
#[derive(Debug)]
pub(crate) struct TxtResolver {
    resolver: TokioResolver,
}

impl TxtResolver {
    /// Uses `nameserver` (UDP then TCP) if given, else the system configuration.
    pub(crate) fn new(
        nameserver: Option<SocketAddr>,
        timeout: Duration,
    ) -> Result<Self, BuildError> {
        let mut opts = ResolverOpts::default();
        opts.timeout = timeout;
        // One try: a handle that does not answer quickly is retried by a later lookup anyway.
        opts.attempts = 1;
        // The resolver's own caches hold answers; a record cache here would outlive
        // `invalidate_handle`.
        opts.cache_size = 0;
        let builder = match nameserver {
            Some(addr) => {
                let mut config = ResolverConfig::new();
                for protocol in [Protocol::Udp, Protocol::Tcp] {
                    let mut server = NameServerConfig::new(addr, protocol);
                    // The one configured server is the authority we chose: a "no such name"
                    // from it is final, not a reason to ask elsewhere.
                    server.trust_negative_responses = true;
                    config.add_name_server(server);
                }
                TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
            }
            None => TokioResolver::builder_tokio().map_err(BuildError::Dns)?,
        };
        Ok(TxtResolver {
            resolver: builder.with_options(opts).build(),
        })
    }

    /// The DID the handle's TXT record names; `None` when there is no (single, valid) record.
    pub(crate) async fn did_for(&self, handle: &Handle) -> Result<Option<Did>, IdentityError> {
        // Fully qualified (trailing dot) so resolv.conf search domains are never appended.
        let name = Name::from_ascii(format!("_atproto.{handle}."))
            .map_err(|e| IdentityError::network(handle.as_str(), format!("not a DNS name: {e}")))?;
        match self.resolver.txt_lookup(name).await {
            Ok(lookup) => Ok(did_from_txt(lookup.iter().map(|txt| txt.txt_data()))),
            Err(e) if e.is_nx_domain() || e.is_no_records_found() => Ok(None),
            Err(e)
                if e.proto()
                    .is_some_and(|p| matches!(p.kind(), ProtoErrorKind::Timeout)) =>
            {
                Err(IdentityError::Timeout {
                    host: handle.to_string(),
                })
            }
            Err(e) => Err(IdentityError::Network {
                host: handle.to_string(),
                detail: "dns txt lookup failed".into(),
                source: Some(Arc::new(e)),
            }),
        }
    }
}

/// The DID named by the `did=` TXT records, each given as its character-strings (joined, as a
/// long value is split into 255-byte strings). The spec asks for exactly one such record:
/// zero, several, or one that is not a DID give `None`.
pub(crate) fn did_from_txt<'a>(records: impl IntoIterator<Item = &'a [Box<[u8]>]>) -> Option<Did> {
    let mut found = None;
    for strings in records {
        let value: Vec<u8> = strings.iter().flat_map(|s| s.iter().copied()).collect();
        let Some(did) = value.strip_prefix(b"did=") else {
            continue;
        };
        if found.is_some() {
            return None;
        }
        found = Some(std::str::from_utf8(did).ok().and_then(|s| Did::new(s).ok()));
    }
    found.flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One TXT record: its character-strings.
    type TxtRecord = Vec<Box<[u8]>>;

    fn record(strings: &[&str]) -> TxtRecord {
        strings.iter().map(|s| s.as_bytes().into()).collect()
    }

    #[test]
    fn parses_txt_records() {
        let did = "did:plc:ewvi7nxzyoun6zhxrhs64oiz";
        let cases: [(Vec<TxtRecord>, Option<&str>); 7] = [
            (
                vec![record(&["did=did:plc:ewvi7nxzyoun6zhxrhs64oiz"])],
                Some(did),
            ),
            // Split across character-strings.
            (
                vec![record(&["did=did:plc:ewvi7n", "xzyoun6zhxrhs64oiz"])],
                Some(did),
            ),
            // Unrelated records are ignored.
            (
                vec![
                    record(&["v=spf1 -all"]),
                    record(&["did=did:plc:ewvi7nxzyoun6zhxrhs64oiz"]),
                ],
                Some(did),
            ),
            (vec![], None),
            (vec![record(&["did=not a did"])], None),
            // Two claims are ambiguous, even if one is bad.
            (
                vec![
                    record(&["did=did:plc:ewvi7nxzyoun6zhxrhs64oiz"]),
                    record(&["did=did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"]),
                ],
                None,
            ),
            (vec![vec![Box::from(&b"did=\xff\xfe"[..])]], None),
        ];
        for (records, expected) in cases {
            let got = did_from_txt(records.iter().map(Vec::as_slice));
            assert_eq!(got.as_ref().map(Did::as_str), expected, "{records:?}");
        }
    }
}

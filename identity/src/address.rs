//! SSRF guard: classifies IP addresses and resolves host names for the HTTP client, refusing
//! names with any non-public address. Connections go only to the addresses checked here, so a
//! second DNS answer (rebinding) cannot slip a private address in.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// What kind of network an address belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AddressClass {
    /// Globally routable unicast.
    Public,
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// RFC 1918, carrier-grade NAT (100.64.0.0/10), IPv6 site-local, local-use NAT64.
    Private,
    /// 169.254.0.0/16 (cloud metadata lives here), fe80::/10.
    LinkLocal,
    /// fc00::/7.
    UniqueLocal,
    /// 224.0.0.0/4, ff00::/8.
    Multicast,
    /// 0.0.0.0/8, ::.
    Unspecified,
    /// Documentation, benchmarking, protocol-assignment and future-use ranges; anything in IPv6
    /// outside 2000::/3.
    Reserved,
}

impl AddressClass {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AddressClass::Public => "public",
            AddressClass::Loopback => "loopback",
            AddressClass::Private => "private",
            AddressClass::LinkLocal => "link-local",
            AddressClass::UniqueLocal => "unique-local",
            AddressClass::Multicast => "multicast",
            AddressClass::Unspecified => "unspecified",
            AddressClass::Reserved => "reserved",
        }
    }
}

/// Classifies an address; IPv4 embedded in IPv6 (mapped, NAT64, 6to4) is classified as IPv4.
pub(crate) fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let [a, b, c, _] = ip.octets();
    match (a, b, c) {
        (0, _, _) => AddressClass::Unspecified,
        (10, _, _) | (172, 16..=31, _) | (192, 168, _) | (100, 64..=127, _) => {
            AddressClass::Private
        }
        (127, _, _) => AddressClass::Loopback,
        (169, 254, _) => AddressClass::LinkLocal,
        // IETF assignments, TEST-NET-1/2/3, the 6to4 relay anycast, benchmarking.
        (192, 0, 0 | 2) | (198, 51, 100) | (203, 0, 113) | (192, 88, 99) | (198, 18..=19, _) => {
            AddressClass::Reserved
        }
        (224..=239, _, _) => AddressClass::Multicast,
        (240..=255, _, _) => AddressClass::Reserved,
        _ => AddressClass::Public,
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    if ip.is_unspecified() {
        return AddressClass::Unspecified;
    }
    if ip.is_loopback() {
        return AddressClass::Loopback;
    }
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    match s {
        [0xfc00..=0xfdff, ..] => AddressClass::UniqueLocal,
        [0xfe80..=0xfebf, ..] => AddressClass::LinkLocal,
        [0xfec0..=0xfeff, ..] => AddressClass::Private,
        [0xff00..=0xffff, ..] => AddressClass::Multicast,
        // NAT64 well-known prefix: the IPv4 address behind it decides.
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => classify_v4(embedded(hi, lo)),
        [0x64, 0xff9b, 1, ..] => AddressClass::Private,
        // 6to4 carries an IPv4 address in bits 16..48.
        [0x2002, hi, lo, ..] => classify_v4(embedded(hi, lo)),
        // Documentation, and IETF protocol assignments (Teredo, ORCHID, ...).
        [0x2001, 0x0db8, ..] | [0x2001, 0x0000..=0x01ff, ..] => AddressClass::Reserved,
        [0x2000..=0x3fff, ..] => AddressClass::Public,
        _ => AddressClass::Reserved,
    }
}

/// Whether the policy lets us connect to `ip`: public always, loopback only in test mode.
pub(crate) fn check_ip(ip: IpAddr, allow_loopback: bool) -> Result<(), AddressClass> {
    match classify(ip) {
        AddressClass::Public => Ok(()),
        AddressClass::Loopback if allow_loopback => Ok(()),
        class => Err(class),
    }
}

/// Why the guarded resolver gave the HTTP client no address. Found again in the
/// `reqwest::Error` source chain to report the right error kind.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DnsRefusal {
    /// The name has an address the policy refuses.
    #[error("{host} resolves to {ip}, a {} address", class.as_str())]
    Forbidden {
        host: String,
        ip: IpAddr,
        class: AddressClass,
    },
    /// The name has no address.
    #[error("{host} does not resolve")]
    NoAddress {
        host: String,
        #[source]
        source: Option<std::io::Error>,
    },
}

/// Keeps the resolved addresses only if every one of them is allowed: a name that mixes public
/// and private answers is refused whole.
pub(crate) fn vet(
    host: &str,
    addrs: Vec<SocketAddr>,
    allow_loopback: bool,
) -> Result<Vec<SocketAddr>, DnsRefusal> {
    if addrs.is_empty() {
        return Err(DnsRefusal::NoAddress {
            host: host.to_owned(),
            source: None,
        });
    }
    for addr in &addrs {
        check_ip(addr.ip(), allow_loopback).map_err(|class| DnsRefusal::Forbidden {
            host: host.to_owned(),
            ip: addr.ip(),
            class,
        })?;
    }
    Ok(addrs)
}

/// The HTTP client's resolver: the system resolver (hosts file, resolv.conf), then [`vet`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct GuardedDns {
    pub(crate) allow_loopback: bool,
}

impl Resolve for GuardedDns {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let allow_loopback = self.allow_loopback;
        Box::pin(async move {
            // Port 0: the connector puts the URL's port in.
            let addrs = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| DnsRefusal::NoAddress {
                    host: host.clone(),
                    source: Some(e),
                })?
                .collect();
            let addrs = vet(&host, addrs, allow_loopback)?;
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_addresses() {
        use AddressClass::*;
        let cases = [
            ("8.8.8.8", Public),
            ("1.1.1.1", Public),
            ("127.0.0.1", Loopback),
            ("127.255.0.9", Loopback),
            ("10.0.0.1", Private),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("172.32.0.1", Public),
            ("192.168.1.1", Private),
            ("100.64.0.1", Private),
            ("169.254.169.254", LinkLocal),
            ("0.0.0.0", Unspecified),
            ("224.0.0.1", Multicast),
            ("255.255.255.255", Reserved),
            ("192.0.2.1", Reserved),
            ("198.18.0.1", Reserved),
            ("::1", Loopback),
            ("::", Unspecified),
            ("fc00::1", UniqueLocal),
            ("fd12:3456::1", UniqueLocal),
            ("fe80::1", LinkLocal),
            ("fec0::1", Private),
            ("ff02::1", Multicast),
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:10.0.0.1", Private),
            ("::ffff:8.8.8.8", Public),
            ("64:ff9b::a9fe:a9fe", LinkLocal),
            ("64:ff9b::808:808", Public),
            ("2002:c0a8:0101::1", Private),
            ("2001:db8::1", Reserved),
            ("2001::1", Reserved),
            ("::127.0.0.1", Reserved),
            ("2606:4700:4700::1111", Public),
            ("2a00:1450:4001::200e", Public),
        ];
        for (ip, expected) in cases {
            let parsed: IpAddr = match ip.parse() {
                Ok(ip) => ip,
                Err(e) => panic!("{ip}: {e}"),
            };
            assert_eq!(classify(parsed), expected, "{ip}");
        }
    }

    #[test]
    fn policy_allows_loopback_only_in_test_mode() {
        let cases = [
            ("127.0.0.1", false, Err(AddressClass::Loopback)),
            ("127.0.0.1", true, Ok(())),
            ("::1", true, Ok(())),
            ("10.0.0.1", true, Err(AddressClass::Private)),
            ("169.254.169.254", true, Err(AddressClass::LinkLocal)),
            ("fc00::1", true, Err(AddressClass::UniqueLocal)),
            ("8.8.8.8", false, Ok(())),
        ];
        for (ip, allow_loopback, expected) in cases {
            let parsed: IpAddr = match ip.parse() {
                Ok(ip) => ip,
                Err(e) => panic!("{ip}: {e}"),
            };
            assert_eq!(
                check_ip(parsed, allow_loopback),
                expected,
                "{ip} {allow_loopback}"
            );
        }
    }

    #[test]
    fn a_name_with_any_forbidden_address_is_refused_whole() {
        let public = SocketAddr::from(([8, 8, 8, 8], 0));
        let private = SocketAddr::from(([10, 0, 0, 1], 0));
        let refused = vet("mixed.example", vec![public, private], true);
        assert!(
            matches!(refused, Err(DnsRefusal::Forbidden { ip, class: AddressClass::Private, .. }) if ip == private.ip()),
            "{refused:?}"
        );
        assert!(matches!(
            vet("none.example", vec![], true),
            Err(DnsRefusal::NoAddress { .. })
        ));
        assert_eq!(
            vet("ok.example", vec![public], false).ok(),
            Some(vec![public])
        );
    }
}

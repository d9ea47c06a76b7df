//! The SSRF guard: a destination may not reach an internal address (loopback, private,
//! link-local — where cloud metadata lives —, shared, unspecified, multicast, or their
//! IPv6 forms) unless an allow-list names it. The check runs on the addresses DNS
//! returns, inside the HTTP client's resolver, so the address checked is the address
//! connected to: a name that resolves to 169.254.169.254 is refused, and so is one that
//! changes its answer between a check and the connection.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Which addresses destinations may reach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Guard {
    /// Internal networks allowed anyway (e.g. `127.0.0.0/8` for a local receiver).
    pub allow: Vec<IpNet>,
}

impl Guard {
    pub fn permits(&self, ip: IpAddr) -> bool {
        !is_internal(ip) || self.allow.iter().any(|net| net.contains(&ip))
    }
}

/// Whether `ip` is an address no outbound webhook should reach by default.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => {
            // IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible (::a.b.c.d, which includes
            // :: and ::1) addresses are judged as the IPv4 address they carry.
            if let Some(v4) = v6.to_ipv4() {
                return is_internal_v4(v4);
            }
            let s = v6.segments();
            let first = s[0];
            v6.is_multicast()
                || first & 0xfe00 == 0xfc00 // unique local fc00::/7
                || first & 0xffc0 == 0xfe80 // link-local fe80::/10
                || first & 0xffc0 == 0xfec0 // site-local fec0::/10 (deprecated, still routed inside)
                || s[..3] == [0x64, 0xff9b, 1] // local-use NAT64 64:ff9b:1::/48
                || embedded_v4(v6).is_some_and(is_internal_v4)
        }
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space (carrier NAT)
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240 // reserved
}

/// The IPv4 address some IPv6 forms carry, to be judged instead: NAT64
/// (64:ff9b::/96), IPv4-translated (::ffff:0:a.b.c.d) and 6to4 (2002:AABB:CCDD::/48).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || s[..6] == [0, 0, 0, 0, 0xffff, 0] {
        Some(v4(s[6], s[7]))
    } else if s[0] == 0x2002 {
        Some(v4(s[1], s[2]))
    } else {
        None
    }
}

/// The error the resolver gives for a refused name; the sender recognises it in the
/// error chain and dead-letters instead of retrying.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves only to internal addresses ({addresses}), which are not allow-listed")]
pub struct Refused {
    pub host: String,
    pub addresses: String,
}

/// A DNS resolver that drops the addresses the guard refuses.
#[derive(Debug, Clone)]
pub struct GuardedResolver(pub Arc<Guard>);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let permitted: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| guard.permits(a.ip()))
                .collect();
            if permitted.is_empty() {
                let addresses = found
                    .iter()
                    .map(|a| a.ip().to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(Box::new(Refused { host, addresses }) as _);
            }
            Ok(Box::new(permitted.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn internal_addresses_are_recognised() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "::a9fe:a9fe",
            "::ffff:0:a9fe:a9fe",
            "64:ff9b:1::1",
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::",
        ] {
            assert!(is_internal(ip(internal)), "{internal}");
        }
        for public in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700:4700::1111",
            "64:ff9b::808:808",
        ] {
            assert!(!is_internal(ip(public)), "{public}");
        }
    }

    #[test]
    fn the_allow_list_lets_named_networks_through() {
        let guard = Guard {
            allow: vec!["127.0.0.0/8".parse().unwrap()],
        };
        assert!(guard.permits(ip("127.0.0.1")));
        assert!(!guard.permits(ip("10.0.0.1")));
        assert!(!guard.permits(ip("169.254.169.254")));
        assert!(Guard::default().permits(ip("8.8.8.8")));
        assert!(!Guard::default().permits(ip("127.0.0.1")));
    }

    #[tokio::test]
    async fn the_resolver_refuses_names_of_internal_addresses() {
        let resolver = GuardedResolver(Arc::new(Guard::default()));
        let error = resolver
            .resolve("localhost".parse().unwrap())
            .await
            .err()
            .expect("localhost is internal");
        assert!(error.to_string().contains("internal"), "{error}");
        let allowed = GuardedResolver(Arc::new(Guard {
            allow: vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
        }));
        assert!(allowed.resolve("localhost".parse().unwrap()).await.is_ok());
    }
}

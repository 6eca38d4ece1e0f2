//! Which addresses Herald may connect to. By default only globally routable ones: a
//! webhook URL is typed by a stranger, and without this check it could make Herald call
//! its own admin API, a cloud metadata service or anything on the private network (SSRF).
//! `allow` opens chosen ranges (tests and benchmarks open loopback).
//!
//! The check runs on the addresses a connection will actually use: the HTTP client
//! resolves a host name itself and connects only to the allowed addresses it got, so the
//! connection is pinned to what was checked (no window for DNS rebinding), and IP
//! literals are checked before sending.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

/// Where deliveries may go.
#[derive(Debug, Clone, Default)]
pub struct DestinationPolicy {
    /// Ranges allowed even though they are not global (e.g. `127.0.0.0/8`).
    pub allow: Vec<IpNet>,
    /// Ranges refused even though they are global or allowed (e.g. the operator's own
    /// public addresses). `0.0.0.0/0` with `::/0` refuses every destination, without
    /// resolving any host name (`refuses_everything`).
    pub deny: Vec<IpNet>,
    /// Refuse plain `http://` and `amqp://`.
    pub https_only: bool,
}

/// A destination Herald will not connect to, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

impl DestinationPolicy {
    /// Whether Herald may connect to `ip`.
    pub fn check(&self, ip: IpAddr) -> Result<(), Refused> {
        let reached = match ip {
            IpAddr::V6(v6) => embedded_ipv4(v6).map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        if let Some(net) = self
            .deny
            .iter()
            .find(|net| net.contains(&ip) || reached.is_some_and(|v4| net.contains(&v4)))
        {
            return Err(Refused(format!(
                "destination {ip} is in the denied range {net} (--deny-destination)"
            )));
        }
        if self.allow.iter().any(|net| net.contains(&ip)) {
            return Ok(());
        }
        match non_global(ip) {
            None => Ok(()),
            Some(kind) => Err(Refused(format!(
                "destination {ip} is a {kind} address; Herald delivers only to public \
                 addresses unless the operator allows the range (--allow-destination)"
            ))),
        }
    }

    /// The allowed addresses among `addrs`, or why none is.
    pub fn filter(
        &self,
        host: &str,
        addrs: impl IntoIterator<Item = SocketAddr>,
    ) -> Result<Vec<SocketAddr>, Refused> {
        let mut allowed = Vec::new();
        let mut refused = None;
        for addr in addrs {
            match self.check(addr.ip()) {
                Ok(()) => allowed.push(addr),
                Err(err) => refused = refused.or(Some(err)),
            }
        }
        match (allowed.is_empty(), refused) {
            (false, _) => Ok(allowed),
            (true, Some(Refused(why))) => Err(Refused(format!("{host} resolves to {why}"))),
            (true, None) => Err(Refused(format!("{host} resolves to no address"))),
        }
    }

    /// Why no destination at all may be called, when the denied ranges cover every IPv4
    /// and every IPv6 address: the transports then refuse before resolving a host name,
    /// so not even a DNS query leaves Herald.
    pub fn refuses_everything(&self) -> Option<Refused> {
        let covers = |v4: bool| {
            self.deny
                .iter()
                .any(|net| net.prefix_len() == 0 && matches!(net, IpNet::V4(_)) == v4)
        };
        (covers(true) && covers(false)).then(|| {
            Refused("every destination is denied (--deny-destination 0.0.0.0/0,::/0)".into())
        })
    }

    pub(crate) fn shared(self) -> Arc<Self> {
        Arc::new(self)
    }
}

/// What kind of non-global address `ip` is, or `None` for a global one.
pub fn non_global(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_global_v4(v4),
        IpAddr::V6(v6) => non_global_v6(v6),
    }
}

fn non_global_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, _, _) => "unspecified (\"this network\")",
        (127, _, _) => "loopback",
        (10, _, _) => "private",
        (172, 16..=31, _) => "private",
        (192, 168, _) => "private",
        (169, 254, _) => "link-local",
        (100, 64..=127, _) => "shared (CGNAT)",
        (192, 0, 0) => "IETF protocol assignment",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (198, 18..=19, _) => "benchmarking",
        (192, 88, 99) => "6to4 relay",
        (224..=239, _, _) => "multicast",
        (240..=255, _, _) => "reserved or broadcast",
        _ => return None,
    })
}

fn non_global_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    // Addresses that carry an IPv4 address are judged by it.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return non_global_v4(v4);
    }
    let s = ip.segments();
    Some(match s[0] {
        // IPv4-compatible (deprecated) ::a.b.c.d
        0 if s[1..6] == [0; 5] => {
            return non_global_v4(embedded_v4(&s)).or(Some("IPv4-compatible"));
        }
        0x64 if s[1] == 0xff9b => return non_global_v4(embedded_v4(&s)),
        0x100 if s[1..4] == [0; 3] => "discard-only",
        0x2001 if s[1] == 0 => "Teredo",
        0x2001 if s[1] == 0xdb8 => "documentation",
        0x2001 if s[1] < 0x200 => "IETF protocol assignment",
        0x2002 => "6to4",
        x if x & 0xfe00 == 0xfc00 => "unique local (private)",
        x if x & 0xffc0 == 0xfe80 => "link-local",
        x if x & 0xffc0 == 0xfec0 => "site-local",
        x if x & 0xff00 == 0xff00 => "multicast",
        x if x & 0xe000 != 0x2000 => "reserved",
        _ => return None,
    })
}

/// The IPv4 address an IPv6 address reaches, for the forms that carry one: mapped
/// (`::ffff:a.b.c.d`), compatible (`::a.b.c.d`) and NAT64 (`64:ff9b::a.b.c.d`).
fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let compatible = s[..6] == [0; 6] && !ip.is_unspecified() && !ip.is_loopback();
    let nat64 = s[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
    (compatible || nat64).then(|| embedded_v4(&s))
}

/// The IPv4 address in the last 32 bits.
fn embedded_v4(s: &[u16; 8]) -> Ipv4Addr {
    Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_global_addresses_are_named() {
        for (ip, kind) in [
            ("127.0.0.1", "loopback"),
            ("127.255.0.9", "loopback"),
            ("0.0.0.0", "unspecified (\"this network\")"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("100.64.0.1", "shared (CGNAT)"),
            ("100.127.255.255", "shared (CGNAT)"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "reserved or broadcast"),
            ("198.18.0.1", "benchmarking"),
            ("192.0.2.1", "documentation"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:10.0.0.1", "private"),
            ("::127.0.0.1", "loopback"),
            ("64:ff9b::a9fe:a9fe", "link-local"),
            ("fc00::1", "unique local (private)"),
            ("fd12:3456::1", "unique local (private)"),
            ("fe80::1", "link-local"),
            ("ff02::1", "multicast"),
            ("2001:db8::1", "documentation"),
            ("2001::1", "Teredo"),
            ("2002:7f00:1::", "6to4"),
            ("100::1", "discard-only"),
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(non_global(ip), Some(kind), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "192.169.0.1",
            "2606:4700::1111",
            "2a00:1450::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(non_global(ip), None, "{ip}");
        }
    }

    #[test]
    fn the_allow_list_opens_ranges() {
        let policy = DestinationPolicy {
            allow: vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
            deny: Vec::new(),
            https_only: false,
        };
        assert!(policy.check("127.0.0.1".parse().unwrap()).is_ok());
        assert!(policy.check("::1".parse().unwrap()).is_ok());
        assert!(policy.check("10.0.0.1".parse().unwrap()).is_err());
        let strict = DestinationPolicy::default();
        let err = strict.check("127.0.0.1".parse().unwrap()).unwrap_err();
        assert!(err.0.contains("loopback"), "{err}");

        let addrs = ["127.0.0.1:80".parse().unwrap(), "[::1]:80".parse().unwrap()];
        let err = strict.filter("localhost", addrs).unwrap_err();
        assert!(
            err.0
                .starts_with("localhost resolves to destination 127.0.0.1"),
            "{err}"
        );
        assert_eq!(policy.filter("localhost", addrs).unwrap().len(), 2);
    }

    #[test]
    fn the_deny_list_wins_over_everything() {
        let nets =
            |list: &[&str]| -> Vec<IpNet> { list.iter().map(|n| n.parse().unwrap()).collect() };
        let policy = DestinationPolicy {
            allow: nets(&["127.0.0.0/8"]),
            deny: nets(&["127.0.0.2/32", "8.8.8.0/24", "2606:4700::/32"]),
            https_only: false,
        };
        assert!(policy.check("127.0.0.1".parse().unwrap()).is_ok());
        assert!(policy.check("1.1.1.1".parse().unwrap()).is_ok());
        for ip in [
            "127.0.0.2",
            "8.8.8.8",
            "::ffff:8.8.8.8",
            "::8.8.8.8",
            "64:ff9b::808:808",
            "2606:4700::1111",
        ] {
            let err = policy.check(ip.parse().unwrap()).unwrap_err();
            assert!(err.0.contains("denied range"), "{ip}: {err}");
        }
        assert!(policy.refuses_everything().is_none());

        let v4_only = DestinationPolicy {
            deny: nets(&["0.0.0.0/0"]),
            ..DestinationPolicy::default()
        };
        assert!(v4_only.refuses_everything().is_none());
        assert!(v4_only.check("2606:4700::1111".parse().unwrap()).is_ok());
        let nothing = DestinationPolicy {
            allow: nets(&["127.0.0.0/8"]),
            deny: nets(&["0.0.0.0/0", "::/0"]),
            https_only: false,
        };
        assert!(nothing.refuses_everything().is_some());
        assert!(nothing.check("127.0.0.1".parse().unwrap()).is_err());
        assert!(nothing.check("::1".parse().unwrap()).is_err());
    }
}

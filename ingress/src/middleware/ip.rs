//! The client IP as Træfik's `ipStrategy` finds it, the source key of `rateLimit` and
//! `inFlightReq`, and `ipAllowList`.
//!
//! `X-Forwarded-For` is read as the request arrived: the proxy appends the client only
//! when it forwards, after the middlewares (as Træfik's documentation says). All its
//! fields are read, joined, as one list.

use std::net::IpAddr;

use http::header::HeaderMap;
use http::{Request, Response};
use ipnet::IpNet;

use super::{request_host, status_answer};
use crate::config::middlewares::{IpAllowList, IpStrategy, SourceCriterion};
use crate::proxy::body::ProxyBody;

const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The entries of `X-Forwarded-For`, left to right, trimmed.
fn forwarded_for(headers: &HeaderMap) -> Vec<&str> {
    headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect()
}

/// An address as written in `X-Forwarded-For` (a port, brackets allowed).
fn parse_ip(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = text.parse::<std::net::SocketAddr>() {
        return Some(sa.ip());
    }
    text.strip_prefix('[')?.strip_suffix(']')?.parse().ok()
}

/// IPv4-mapped IPv6 as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// A network as Go's `net.IPNet.Contains` sees it: host bits dropped, and an
/// IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) the IPv4 one it maps
/// (`10.0.0.0/8`), so it holds IPv4 clients, which are compared as IPv4.
pub fn canonical_net(net: IpNet) -> IpNet {
    let net = net.trunc();
    match (net, canonical(net.network())) {
        (IpNet::V6(v6), IpAddr::V4(v4)) if v6.prefix_len() >= 96 => {
            ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96).map_or(net, IpNet::V4)
        }
        _ => net,
    }
}

/// The first address of `ip`'s `/prefix` when it is IPv6.
fn ipv6_subnet(ip: IpAddr, prefix: Option<u8>) -> IpAddr {
    match (ip, prefix) {
        (IpAddr::V6(_), Some(p)) => IpNet::new(ip, p).map_or(ip, |n| n.network()),
        _ => ip,
    }
}

/// The client IP by `strategy`; `None` when there is none to be had (a depth past the
/// list, every entry excluded, an entry that is no address).
pub fn client_ip(strategy: &IpStrategy, headers: &HeaderMap, peer: IpAddr) -> Option<IpAddr> {
    match strategy {
        IpStrategy::RemoteAddr { ipv6_subnet: p } => Some(ipv6_subnet(canonical(peer), *p)),
        IpStrategy::Depth {
            depth,
            ipv6_subnet: p,
        } => {
            let list = forwarded_for(headers);
            let entry = list.len().checked_sub(*depth).map(|i| list[i])?;
            parse_ip(entry).map(|ip| ipv6_subnet(canonical(ip), *p))
        }
        IpStrategy::Excluded(nets) => {
            let list = forwarded_for(headers);
            let entry = list.into_iter().rev().filter(|e| !e.is_empty()).find(|e| {
                parse_ip(e)
                    .map(canonical)
                    .is_none_or(|ip| !contains(nets, ip))
            })?;
            parse_ip(entry).map(canonical)
        }
    }
}

fn contains(nets: &[IpNet], ip: IpAddr) -> bool {
    nets.iter().any(|n| n.contains(&ip))
}

/// The source a request counts against: an IP, a header's value or the host; an IP that
/// cannot be found is the empty source, as in Træfik.
pub fn source_key<B>(criterion: &SourceCriterion, req: &Request<B>, peer: IpAddr) -> String {
    match criterion {
        SourceCriterion::Ip(strategy) => {
            client_ip(strategy, req.headers(), peer).map_or_else(String::new, |ip| ip.to_string())
        }
        SourceCriterion::Header(name) => req
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string(),
        SourceCriterion::Host => request_host(req).to_string(),
    }
}

/// `ipAllowList`, built.
#[derive(Debug)]
pub struct AllowList {
    config: IpAllowList,
}

impl AllowList {
    /// Build from the configuration.
    pub fn new(config: &IpAllowList) -> AllowList {
        AllowList {
            config: config.clone(),
        }
    }

    /// Whether a request from `peer` with `headers` is allowed.
    pub fn allows(&self, headers: &HeaderMap, peer: IpAddr) -> bool {
        client_ip(&self.config.strategy, headers, peer)
            .is_some_and(|ip| contains(&self.config.source_range, ip))
    }

    /// Refuse `req` with the configured status unless allowed.
    pub fn check<B>(&self, req: &Request<B>, peer: IpAddr) -> Option<Response<ProxyBody>> {
        (!self.allows(req.headers(), peer)).then(|| status_answer(self.config.reject_status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    fn xff(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(X_FORWARDED_FOR, value.parse().unwrap());
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    const LIST: &str = "10.0.0.1,11.0.0.1,12.0.0.1,13.0.0.1";
    const PEER: &str = "192.0.2.7";

    /// The tables of Træfik's ipAllowList documentation.
    #[test]
    fn depth_counts_from_the_right() {
        let depth = |d| {
            client_ip(
                &IpStrategy::Depth {
                    depth: d,
                    ipv6_subnet: None,
                },
                &xff(LIST),
                ip(PEER),
            )
        };
        assert_eq!(depth(1), Some(ip("13.0.0.1")));
        assert_eq!(depth(2), Some(ip("12.0.0.1")));
        assert_eq!(depth(3), Some(ip("11.0.0.1")));
        assert_eq!(depth(4), Some(ip("10.0.0.1")));
        assert_eq!(depth(5), None);
    }

    #[test]
    fn excluded_ips_skip_from_the_right() {
        let ex = |list: &[&str], header: &str| {
            client_ip(&IpStrategy::Excluded(nets(list)), &xff(header), ip(PEER))
        };
        assert_eq!(
            ex(&["12.0.0.1/32", "13.0.0.1/32"], LIST),
            Some(ip("11.0.0.1"))
        );
        assert_eq!(
            ex(&["15.0.0.1/32", "13.0.0.1/32"], LIST),
            Some(ip("12.0.0.1"))
        );
        assert_eq!(
            ex(&["10.0.0.1/32", "13.0.0.1/32"], LIST),
            Some(ip("12.0.0.1"))
        );
        assert_eq!(
            ex(&["15.0.0.1/32", "16.0.0.1/32"], LIST),
            Some(ip("13.0.0.1"))
        );
        assert_eq!(
            ex(&["10.0.0.1/32", "11.0.0.1/32"], "10.0.0.1,11.0.0.1"),
            None
        );
    }

    #[test]
    fn ipv6_subnets_group_addresses() {
        let s = |p| {
            client_ip(
                &IpStrategy::RemoteAddr {
                    ipv6_subnet: Some(p),
                },
                &HeaderMap::new(),
                ip("::abcd:1111:2222:3333"),
            )
        };
        assert_eq!(s(64), Some(ip("::")));
        assert_eq!(s(80), Some(ip("::abcd:0:0:0")));
        assert_eq!(s(96), Some(ip("::abcd:1111:0:0")));
        let v4 = client_ip(
            &IpStrategy::RemoteAddr {
                ipv6_subnet: Some(64),
            },
            &HeaderMap::new(),
            ip("::ffff:10.1.2.3"),
        );
        assert_eq!(v4, Some(ip("10.1.2.3")), "IPv4 (mapped too) is left alone");
    }

    #[test]
    fn allow_list_with_depth_and_remote_address() {
        let by_peer = AllowList::new(&IpAllowList {
            source_range: nets(&["127.0.0.1/32", "10.0.0.0/8"]),
            strategy: IpStrategy::RemoteAddr { ipv6_subnet: None },
            reject_status: StatusCode::FORBIDDEN,
        });
        assert!(by_peer.allows(&xff("8.8.8.8"), ip("10.9.9.9")));
        assert!(by_peer.allows(&HeaderMap::new(), ip("::ffff:127.0.0.1")));
        assert!(
            !by_peer.allows(&xff("10.0.0.1"), ip("8.8.8.8")),
            "the header is not the peer"
        );
        let by_depth = AllowList::new(&IpAllowList {
            source_range: nets(&["12.0.0.0/8"]),
            strategy: IpStrategy::Depth {
                depth: 2,
                ipv6_subnet: None,
            },
            reject_status: StatusCode::FORBIDDEN,
        });
        assert!(by_depth.allows(&xff(LIST), ip(PEER)));
        assert!(
            !by_depth.allows(&xff("12.0.0.1"), ip(PEER)),
            "depth past the list"
        );
        assert!(
            !by_depth.allows(&xff("garbage, 12.0.0.1"), ip(PEER)),
            "not an address"
        );
        let mut two = xff("12.0.0.1");
        two.append(X_FORWARDED_FOR, "13.0.0.1".parse().unwrap());
        assert!(
            by_depth.allows(&two, ip(PEER)),
            "several fields are one list"
        );
        let req = Request::builder()
            .header("x-forwarded-for", "1.1.1.1, 2.2.2.2")
            .body(())
            .unwrap();
        let resp = by_depth.check(&req, ip(PEER)).expect("refused");
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    }

    fn allow(ranges: &[&str]) -> AllowList {
        AllowList::new(&IpAllowList {
            source_range: nets(ranges).into_iter().map(canonical_net).collect(),
            strategy: IpStrategy::RemoteAddr { ipv6_subnet: None },
            reject_status: StatusCode::FORBIDDEN,
        })
    }

    /// Træfik's pkg/ip checker cases with IPv6 (TestContainsIsAllowed), by the peer.
    #[test]
    fn allow_lists_hold_ipv6_ranges_beside_ipv4_ones() {
        let list = allow(&[
            "2a03:4000:6:d080::/64",
            "fe80::/16",
            "1.2.3.4/24",
            "8.8.8.8/8",
        ]);
        let none = HeaderMap::new();
        for pass in [
            "2a03:4000:6:d080::",
            "2a03:4000:6:d080:dead:beef:ffff:ffff",
            "fe80:aa00:00bb:4232:ff00:eeee:00ff:1111",
            "fe80::fe80",
            "1.2.3.255",
            "8.32.42.128",
            "::ffff:1.2.3.1",
        ] {
            assert!(list.allows(&none, ip(pass)), "{pass} should pass");
        }
        for reject in [
            "2a03:4000:7:d080::1",
            "4242::1",
            "1.2.16.1",
            "127.0.0.1",
            "::1.2.3.1",
        ] {
            assert!(!list.allows(&none, ip(reject)), "{reject} should not pass");
        }
        let single = allow(&["2a03:4000:6:d080::42/128"]);
        assert!(single.allows(&none, ip("2a03:4000:6:d080::42")));
        assert!(!single.allows(&none, ip("2a03:4000:6:d080::43")));
    }

    /// As Go's `net.IPNet.Contains`: an IPv4-mapped range is the IPv4 range it maps,
    /// and holds IPv4 clients whether they arrive as IPv4 or mapped; `::/0` holds
    /// no IPv4 client.
    #[test]
    fn ipv4_mapped_ranges_and_clients_are_ipv4() {
        assert_eq!(
            canonical_net("::ffff:10.0.0.0/104".parse().unwrap()).to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            canonical_net("::ffff:10.1.2.3/128".parse().unwrap()).to_string(),
            "10.1.2.3/32"
        );
        assert_eq!(
            canonical_net("2001:db8::1/32".parse().unwrap()).to_string(),
            "2001:db8::/32",
            "host bits dropped"
        );
        let none = HeaderMap::new();
        let mapped = allow(&["::ffff:10.0.0.0/104"]);
        assert!(mapped.allows(&none, ip("10.9.9.9")));
        assert!(mapped.allows(&none, ip("::ffff:10.9.9.9")));
        assert!(!mapped.allows(&none, ip("11.0.0.1")));
        let all6 = allow(&["::/0"]);
        assert!(all6.allows(&none, ip("fd00::1")));
        assert!(!all6.allows(&none, ip("10.0.0.1")));
        assert!(!all6.allows(&none, ip("::ffff:10.0.0.1")));
    }

    /// IPv6 clients in `X-Forwarded-For`: bare, bracketed, with a port; depth and
    /// excluded IPs read them as they read IPv4 ones.
    #[test]
    fn ipv6_clients_in_x_forwarded_for() {
        let h = xff("2001:db8::1, [2001:db8::2]:4711, ::ffff:10.0.0.3");
        let depth = |d| {
            client_ip(
                &IpStrategy::Depth {
                    depth: d,
                    ipv6_subnet: None,
                },
                &h,
                ip(PEER),
            )
        };
        assert_eq!(depth(1), Some(ip("10.0.0.3")), "mapped is IPv4");
        assert_eq!(depth(2), Some(ip("2001:db8::2")));
        assert_eq!(depth(3), Some(ip("2001:db8::1")));
        let excluded = client_ip(
            &IpStrategy::Excluded(nets(&["10.0.0.0/8", "2001:db8::2/128"])),
            &h,
            ip(PEER),
        );
        assert_eq!(excluded, Some(ip("2001:db8::1")));
        let by_depth = AllowList::new(&IpAllowList {
            source_range: nets(&["2001:db8::/48"]),
            strategy: IpStrategy::Depth {
                depth: 2,
                ipv6_subnet: Some(64),
            },
            reject_status: StatusCode::FORBIDDEN,
        });
        assert!(by_depth.allows(&h, ip(PEER)));
    }
}

//! Choosing the advertise address when the operator did not, and the control plane's
//! listen address to go with it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use nix::ifaddrs::getifaddrs;
use nix::net::if_::InterfaceFlags;

/// The host's global addresses on interfaces that are up: IPv4 ones, and IPv6 ones
/// that are neither link-local nor multicast (ULAs count: they are an underlay's).
fn candidates() -> Vec<(String, IpAddr)> {
    let Ok(addrs) = getifaddrs() else {
        return Vec::new();
    };
    let mut out: Vec<(String, IpAddr)> = addrs
        .filter(|a| a.flags.contains(InterfaceFlags::IFF_UP))
        .filter(|a| !a.flags.contains(InterfaceFlags::IFF_LOOPBACK))
        .filter_map(|a| {
            let addr = a.address?;
            let ip = match (addr.as_sockaddr_in(), addr.as_sockaddr_in6()) {
                (Some(v4), _) => IpAddr::V4(v4.ip()),
                (_, Some(v6)) => IpAddr::V6(v6.ip()),
                _ => return None,
            };
            global(ip).then_some((a.interface_name, ip))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Whether `ip` can be another node's way to this one.
fn global(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_link_local() && !v4.is_unspecified(),
        IpAddr::V6(v6) => {
            let link_local = v6.segments()[0] & 0xffc0 == 0xfe80;
            !v6.is_loopback() && !v6.is_unspecified() && !v6.is_multicast() && !link_local
        }
    }
}

/// The only global IPv4 address of this host, or, on a host without any, its only
/// global IPv6 address; or an error that says what to pass.
pub fn detect() -> Result<IpAddr, String> {
    choose(&candidates())
}

fn choose(found: &[(String, IpAddr)]) -> Result<IpAddr, String> {
    let v4: Vec<&(String, IpAddr)> = found.iter().filter(|(_, ip)| ip.is_ipv4()).collect();
    let pool = if v4.is_empty() {
        found.iter().collect()
    } else {
        v4
    };
    match pool.as_slice() {
        [(_, ip)] => Ok(*ip),
        [] => Err("this host has no global address to advertise; pass --advertise-addr".into()),
        many => Err(format!(
            "this host has several addresses ({}); choose one with --advertise-addr",
            many.iter()
                .map(|(ifname, ip)| format!("{ip} on {ifname}"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// The control plane's port when `--listen-addr` is not given.
const CONTROL_PORT: u16 = 2377;

/// The control plane's listen address for a node advertising `advertise`: `--listen-addr`
/// as given, else `0.0.0.0:2377` (IPv4) or `[::]:2377` (IPv6). A listen address on which
/// other nodes could not reach the advertised one is refused.
pub fn listen_for(given: Option<SocketAddr>, advertise: IpAddr) -> Result<SocketAddr, String> {
    let Some(listen) = given else {
        let any = match advertise {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        return Ok(SocketAddr::new(any, CONTROL_PORT));
    };
    let ip = listen.ip();
    // `[::]` also takes IPv4 connections (dual-stack sockets, Linux's default).
    let reachable = ip == advertise
        || ip.is_ipv6() && ip.is_unspecified()
        || ip.is_unspecified() && ip.is_ipv4() == advertise.is_ipv4();
    if !reachable {
        return Err(format!(
            "--listen-addr {listen} cannot take the other nodes' connections to the advertised address {advertise}: listen on {} or on it",
            SocketAddr::new(
                match advertise {
                    IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                    IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                },
                listen.port()
            )
        ));
    }
    Ok(listen)
}

#[cfg(test)]
mod tests {
    use super::{choose, global, listen_for};

    #[test]
    fn ipv4_is_advertised_first_and_ipv6_on_hosts_without_it() {
        let at = |list: &[(&str, &str)]| -> Vec<(String, std::net::IpAddr)> {
            list.iter()
                .map(|(i, a)| (i.to_string(), a.parse().unwrap()))
                .collect()
        };
        let dual = at(&[("eth0", "198.18.0.1"), ("eth0", "fd00:5ea1::1")]);
        assert_eq!(choose(&dual).unwrap().to_string(), "198.18.0.1");
        let v6 = at(&[("eth0", "fd00:5ea1::1")]);
        assert_eq!(choose(&v6).unwrap().to_string(), "fd00:5ea1::1");
        let two = at(&[("eth0", "fd00:5ea1::1"), ("eth1", "2001:db8::1")]);
        let e = choose(&two).unwrap_err();
        assert!(
            e.contains("fd00:5ea1::1 on eth0, 2001:db8::1 on eth1"),
            "{e}"
        );
        assert!(choose(&[]).unwrap_err().contains("no global address"));
        for not in ["fe80::1", "::1", "ff02::1", "127.0.0.1", "169.254.0.1"] {
            assert!(!global(not.parse().unwrap()), "{not}");
        }
    }

    #[test]
    fn the_listen_address_follows_the_advertised_family() {
        let v4 = "198.18.0.1".parse().unwrap();
        let v6 = "fd00:5ea1::1".parse().unwrap();
        assert_eq!(listen_for(None, v4).unwrap().to_string(), "0.0.0.0:2377");
        assert_eq!(listen_for(None, v6).unwrap().to_string(), "[::]:2377");
        for (given, adv) in [
            ("[fd00:5ea1::1]:2377", v6),
            ("[::]:2400", v6),
            ("[::]:2400", v4),
            ("0.0.0.0:2377", v4),
            ("198.18.0.1:2377", v4),
        ] {
            assert_eq!(
                listen_for(Some(given.parse().unwrap()), adv)
                    .unwrap()
                    .to_string(),
                given
            );
        }
        for (given, adv) in [
            ("0.0.0.0:2377", v6),
            ("198.18.0.1:2377", v6),
            ("[fd00:5ea1::2]:2377", v6),
        ] {
            let e = listen_for(Some(given.parse().unwrap()), adv).unwrap_err();
            assert!(
                e.contains("cannot take the other nodes' connections"),
                "{e}"
            );
        }
    }
}

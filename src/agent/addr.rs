//! Choosing the advertise address when the operator did not, and the control plane's
//! listen address to go with it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use nix::ifaddrs::getifaddrs;
use nix::net::if_::InterfaceFlags;

/// The host's global IPv4 addresses on interfaces that are up.
fn candidates() -> Vec<(String, Ipv4Addr)> {
    let Ok(addrs) = getifaddrs() else {
        return Vec::new();
    };
    let mut out: Vec<(String, Ipv4Addr)> = addrs
        .filter(|a| a.flags.contains(InterfaceFlags::IFF_UP))
        .filter(|a| !a.flags.contains(InterfaceFlags::IFF_LOOPBACK))
        .filter_map(|a| {
            let ip = a.address?.as_sockaddr_in()?.ip();
            let global = !ip.is_loopback() && !ip.is_link_local() && !ip.is_unspecified();
            global.then_some((a.interface_name, ip))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The only global IPv4 address of this host, or an error that says what to pass.
pub fn detect() -> Result<IpAddr, String> {
    let found = candidates();
    match found.as_slice() {
        [(_, ip)] => Ok(IpAddr::V4(*ip)),
        [] => {
            Err("this host has no global IPv4 address to advertise; pass --advertise-addr".into())
        }
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
    use super::listen_for;

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

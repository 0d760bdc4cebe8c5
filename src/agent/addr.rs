//! Choosing the advertise address when the operator did not.

use std::net::{IpAddr, Ipv4Addr};

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

//! A lab's network: an underlay namespace holding a bridge, and one namespace per host
//! joined to it by a veth pair (`eth0` inside the host).
//!
//! ```text
//!   shl-LAB-ul:  br0 ─┬─ n1 ──veth── eth0 (shl-LAB-n1, 198.18.0.1/15)
//!                     ├─ n2 ──veth── eth0 (shl-LAB-n2, 198.18.0.2/15)
//!                     └─ client ─veth── eth0 (shl-LAB-client, 198.18.0.250/15)
//! ```
//! With `--underlay ipv6` the hosts have fd00:5ea1::N/64 (the client fd00:5ea1::fa)
//! instead; with `--underlay dual` both, and the agents advertise the IPv6 one (and
//! listen on `[::]:2377`, so that they may also advertise the IPv4 one).
//! Nothing is created in the machine's own namespace.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use anyhow::Context;
use shoal_dataplane::netlink::Netlink;
use shoal_dataplane::netns;

/// The underlay prefix length (198.18.0.0/15).
pub const UNDERLAY_PREFIX: u8 = 15;

/// The underlay address of the `i`-th node (1-based).
pub fn node_ip(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(198, 18, 0, i as u8))
}

/// The underlay address of the client host.
pub fn client_ip() -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(198, 18, 0, 250))
}

/// The IPv6 underlay prefix length (fd00:5ea1::/64).
pub const UNDERLAY_PREFIX6: u8 = 64;

/// The address families of a lab's underlay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Underlay {
    /// IPv4 only (198.18.0.0/15).
    #[default]
    Ipv4,
    /// IPv6 only (fd00:5ea1::/64).
    Ipv6,
    /// Both; the agents advertise their IPv6 address.
    Dual,
}

impl Underlay {
    /// The underlay addresses of a host whose IPv4 one would be `v4`, the advertised
    /// one first.
    pub fn addrs(self, v4: IpAddr) -> Vec<IpAddr> {
        let v6 = IpAddr::V6(ipv6_of(v4));
        match self {
            Underlay::Ipv4 => vec![v4],
            Underlay::Ipv6 => vec![v6],
            Underlay::Dual => vec![v6, v4],
        }
    }
}

/// The IPv6 underlay address matching the IPv4 one 198.18.0.N: fd00:5ea1::N.
pub fn ipv6_of(v4: IpAddr) -> Ipv6Addr {
    let last = match v4 {
        IpAddr::V4(v4) => v4.octets()[3],
        IpAddr::V6(v6) => v6.octets()[15],
    };
    Ipv6Addr::new(0xfd00, 0x5ea1, 0, 0, 0, 0, 0, u16::from(last))
}

/// The namespace of host `host` in lab `lab`.
pub fn ns_name(lab: &str, host: &str) -> String {
    format!("shl-{lab}-{host}")
}

/// The WireGuard interface name (UAPI socket) of `host`'s agent in lab `lab`: its
/// namespace's name when that fits wg's 15 characters, else `shl` with a hash of the
/// lab's name, so lab hosts never share a socket in /var/run/wireguard.
pub fn wg_interface(lab: &str, host: &str) -> String {
    let name = ns_name(lab, host);
    if name.len() <= 15 {
        return name;
    }
    // FNV-1a: stable across runs and builds.
    let hash = lab.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    let mut name = format!("shl{:06x}-{host}", hash & 0x00ff_ffff);
    name.truncate(15);
    name
}

/// Every namespace name of lab `lab` starts with this.
pub fn ns_prefix(lab: &str) -> String {
    format!("shl-{lab}-")
}

/// Creates the underlay namespace with its bridge.
pub async fn create_underlay(lab: &str) -> anyhow::Result<()> {
    let name = ns_name(lab, "ul");
    netns::create(&name).with_context(|| format!("create namespace {name}"))?;
    let ns = netns::open(&name)?;
    let nl = Netlink::in_namespace(&ns)?;
    nl.set_up(nl.must_index("lo").await?).await?;
    nl.add_bridge("br0").await?;
    nl.set_up(nl.must_index("br0").await?).await?;
    Ok(())
}

/// Creates host `host` with the addresses `ips`, wired to the underlay bridge.
pub async fn create_host(lab: &str, host: &str, ips: &[IpAddr]) -> anyhow::Result<()> {
    let name = ns_name(lab, host);
    netns::create(&name).with_context(|| format!("create namespace {name}"))?;
    let host_ns = netns::open(&name)?;
    let ul = Netlink::in_namespace(&netns::open(&ns_name(lab, "ul"))?)?;
    let peer = format!("p-{host}");
    ul.add_veth(host, &peer).await?;
    let ul_side = ul.must_index(host).await?;
    ul.set_master(ul_side, ul.must_index("br0").await?).await?;
    ul.set_up(ul_side).await?;
    ul.move_to(ul.must_index(&peer).await?, &host_ns).await?;
    let hn = Netlink::in_namespace(&host_ns)?;
    hn.set_up(hn.must_index("lo").await?).await?;
    let eth = hn.must_index(&peer).await?;
    hn.rename(eth, "eth0").await?;
    for ip in ips {
        match *ip {
            IpAddr::V4(_) => hn.add_address(eth, *ip, UNDERLAY_PREFIX).await?,
            // Without duplicate address detection: usable (bindable) at once.
            IpAddr::V6(v6) => hn.add_address6(eth, v6, UNDERLAY_PREFIX6).await?,
        }
    }
    hn.set_up(eth).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{client_ip, node_ip, wg_interface, Underlay};

    #[test]
    fn underlay_addresses_follow_the_ipv4_numbering() {
        let v4 = node_ip(3);
        assert_eq!(Underlay::Ipv4.addrs(v4), vec![v4]);
        let v6: std::net::IpAddr = "fd00:5ea1::3".parse().unwrap();
        assert_eq!(Underlay::Ipv6.addrs(v4), vec![v6]);
        assert_eq!(Underlay::Dual.addrs(v4), vec![v6, v4]);
        assert_eq!(
            Underlay::Ipv6.addrs(client_ip())[0].to_string(),
            "fd00:5ea1::fa"
        );
    }

    #[test]
    fn lab_wg_interfaces_fit_wg_and_differ_between_labs_and_hosts() {
        assert_eq!(wg_interface("lab", "n1"), "shl-lab-n1");
        let (a, b) = (
            wg_interface("t12345x10", "n1"),
            wg_interface("t12345x11", "n1"),
        );
        assert_ne!(a, b);
        assert_ne!(a, wg_interface("t12345x10", "n2"));
        for name in [a, b, wg_interface("a-very-long-lab-name", "n12")] {
            assert!(name.len() <= 15, "{name}");
            assert_eq!(crate::overlay::uapi::interface_name_error(&name), None);
        }
    }
}

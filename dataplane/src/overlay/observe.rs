//! What the kernel has: shoal's links (by prefix), their addresses, and the FDB and
//! proxy-ARP entries of shoal's VXLAN devices.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo,
};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourState,
};
use netlink_packet_route::AddressFamily;

use super::plan::PREFIX;
use crate::netlink::{Netlink, NetlinkError};

/// The kind of a link, with what matters about VXLAN devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkKind {
    /// A bridge.
    Bridge,
    /// A VXLAN device.
    Vxlan {
        /// Its VNI.
        vni: u32,
        /// Its UDP port.
        port: u16,
        /// Its local tunnel address.
        local: Option<IpAddr>,
        /// Whether it learns MACs (shoal's never do).
        learning: bool,
        /// Whether it answers ARP from its neighbour table.
        proxy: bool,
    },
    /// A veth.
    Veth,
    /// Anything else.
    Other(String),
}

/// One link as the kernel has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Its index.
    pub index: u32,
    /// Its kind.
    pub kind: LinkKind,
    /// Its MTU.
    pub mtu: u32,
    /// Its MAC.
    pub mac: Option<[u8; 6]>,
    /// Its bridge, by name.
    pub master: Option<String>,
    /// Administratively up.
    pub up: bool,
    /// Its IPv4 addresses with prefix lengths.
    pub addrs: BTreeSet<(Ipv4Addr, u8)>,
    /// Its IPv6 addresses with prefix lengths, link-local ones left out (the kernel
    /// makes those).
    pub addrs6: BTreeSet<(Ipv6Addr, u8)>,
}

/// shoal's part of the kernel's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// Links whose names start with `shl-`, by name.
    pub links: BTreeMap<String, Link>,
    /// VXLAN FDB entries (MAC → remote tunnel endpoint) per VXLAN device.
    pub fdb: BTreeMap<String, BTreeSet<([u8; 6], IpAddr)>>,
    /// Proxy-ARP entries (address → MAC) per VXLAN device.
    pub neigh: BTreeMap<String, BTreeSet<(Ipv4Addr, [u8; 6])>>,
    /// Permanent proxy-NDP entries (IPv6 address → MAC) per VXLAN device.
    pub neigh6: BTreeMap<String, BTreeSet<(Ipv6Addr, [u8; 6])>>,
}

fn mac6(b: &[u8]) -> Option<[u8; 6]> {
    b.try_into().ok()
}

fn dump(what: &str) -> impl FnOnce(rtnetlink::Error) -> NetlinkError + '_ {
    move |source| NetlinkError::Request {
        what: format!("dump {what}"),
        source,
    }
}

/// Reads shoal's objects from the namespace `nl` is bound to.
pub async fn observe(nl: &Netlink) -> Result<Observed, NetlinkError> {
    let handle = nl.handle();
    let mut names: BTreeMap<u32, String> = BTreeMap::new();
    let mut raw = Vec::new();
    let mut links = handle.link().get().execute();
    while let Some(msg) = links.try_next().await.map_err(dump("links"))? {
        let mut name = None;
        let mut link = Link {
            index: msg.header.index,
            kind: LinkKind::Other(String::new()),
            mtu: 0,
            mac: None,
            master: None,
            up: msg.header.flags.contains(LinkFlags::Up),
            addrs: BTreeSet::new(),
            addrs6: BTreeSet::new(),
        };
        let mut master = None;
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => name = Some(n.clone()),
                LinkAttribute::Mtu(m) => link.mtu = *m,
                LinkAttribute::Address(a) => link.mac = mac6(a),
                LinkAttribute::Controller(c) => master = Some(*c),
                LinkAttribute::LinkInfo(infos) => link.kind = kind_of(infos),
                _ => {}
            }
        }
        if let Some(name) = name {
            names.insert(link.index, name.clone());
            raw.push((name, link, master));
        }
    }
    let mut observed = Observed::default();
    for (name, mut link, master) in raw {
        if !name.starts_with(PREFIX) {
            continue;
        }
        link.master = master.and_then(|m| names.get(&m).cloned());
        observed.links.insert(name, link);
    }
    let by_index: BTreeMap<u32, String> = observed
        .links
        .iter()
        .map(|(n, l)| (l.index, n.clone()))
        .collect();
    let mut addrs = handle.address().get().execute();
    while let Some(msg) = addrs.try_next().await.map_err(dump("addresses"))? {
        let Some(name) = by_index.get(&msg.header.index) else {
            continue;
        };
        let Some(l) = observed.links.get_mut(name) else {
            continue;
        };
        for attr in &msg.attributes {
            match attr {
                AddressAttribute::Address(IpAddr::V4(ip)) => {
                    l.addrs.insert((*ip, msg.header.prefix_len));
                }
                AddressAttribute::Address(IpAddr::V6(ip)) if !is_link_local(ip) => {
                    l.addrs6.insert((*ip, msg.header.prefix_len));
                }
                _ => {}
            }
        }
    }
    let vxlans: BTreeMap<u32, String> = observed
        .links
        .iter()
        .filter(|(_, l)| matches!(l.kind, LinkKind::Vxlan { .. }))
        .map(|(n, l)| (l.index, n.clone()))
        .collect();
    for family in [AddressFamily::Inet, AddressFamily::Bridge] {
        let mut neigh = handle
            .neighbours()
            .get()
            .set_address_family(family)
            .execute();
        while let Some(msg) = neigh.try_next().await.map_err(dump("neighbours"))? {
            let Some(dev) = vxlans.get(&msg.header.ifindex) else {
                continue;
            };
            let mut mac = None;
            let mut dst = None;
            for attr in &msg.attributes {
                match attr {
                    NeighbourAttribute::LinkLayerAddress(l) => mac = mac6(l),
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => {
                        dst = Some(IpAddr::V4(*ip))
                    }
                    NeighbourAttribute::Destination(NeighbourAddress::Inet6(ip)) => {
                        dst = Some(IpAddr::V6(*ip))
                    }
                    // In AF_BRIDGE messages the destination is not parsed as an address.
                    NeighbourAttribute::Destination(NeighbourAddress::Other(b)) => {
                        dst = raw_ip(b);
                    }
                    _ => {}
                }
            }
            let (Some(mac), Some(ip)) = (mac, dst) else {
                continue;
            };
            match (msg.header.family, ip) {
                (AddressFamily::Inet, IpAddr::V4(ip)) => {
                    observed
                        .neigh
                        .entry(dev.clone())
                        .or_default()
                        .insert((ip, mac));
                }
                (AddressFamily::Bridge, _) if msg.header.flags.contains(NeighbourFlags::Own) => {
                    observed
                        .fdb
                        .entry(dev.clone())
                        .or_default()
                        .insert((mac, ip));
                }
                _ => {}
            }
        }
    }
    neighbours6(nl, &vxlans, &mut observed).await?;
    Ok(observed)
}

/// A raw 4- or 16-byte address.
fn raw_ip(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => <[u8; 4]>::try_from(b).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(b).ok().map(IpAddr::from),
        _ => None,
    }
}

/// fe80::/10.
fn is_link_local(ip: &Ipv6Addr) -> bool {
    ip.segments()[0] & 0xffc0 == 0xfe80
}

/// The permanent IPv6 neighbour entries of the VXLAN devices (the ones shoal makes;
/// the kernel's own, learnt ones are not the plan's business).
async fn neighbours6(
    nl: &Netlink,
    vxlans: &BTreeMap<u32, String>,
    observed: &mut Observed,
) -> Result<(), NetlinkError> {
    let mut neigh = nl
        .handle()
        .neighbours()
        .get()
        .set_address_family(AddressFamily::Inet6)
        .execute();
    while let Some(msg) = neigh.try_next().await.map_err(dump("IPv6 neighbours"))? {
        let Some(dev) = vxlans.get(&msg.header.ifindex) else {
            continue;
        };
        if msg.header.state != NeighbourState::Permanent {
            continue;
        }
        let mut mac = None;
        let mut dst = None;
        for attr in &msg.attributes {
            match attr {
                NeighbourAttribute::LinkLayerAddress(l) => mac = mac6(l),
                NeighbourAttribute::Destination(NeighbourAddress::Inet6(ip)) => dst = Some(*ip),
                _ => {}
            }
        }
        if let (Some(mac), Some(ip)) = (mac, dst) {
            observed
                .neigh6
                .entry(dev.clone())
                .or_default()
                .insert((ip, mac));
        }
    }
    Ok(())
}

fn kind_of(infos: &[LinkInfo]) -> LinkKind {
    let mut kind = LinkKind::Other(String::new());
    for info in infos {
        match info {
            LinkInfo::Kind(InfoKind::Bridge) => kind = LinkKind::Bridge,
            LinkInfo::Kind(InfoKind::Veth) => kind = LinkKind::Veth,
            LinkInfo::Kind(InfoKind::Vxlan) if !matches!(kind, LinkKind::Vxlan { .. }) => {
                kind = LinkKind::Vxlan {
                    vni: 0,
                    port: 0,
                    local: None,
                    learning: true,
                    proxy: false,
                };
            }
            LinkInfo::Kind(InfoKind::Vxlan) => {}
            LinkInfo::Kind(other) => kind = LinkKind::Other(format!("{other:?}")),
            LinkInfo::Data(InfoData::Vxlan(attrs)) => {
                let (mut vni, mut port, mut local, mut learning, mut proxy) =
                    (0, 0, None, true, false);
                for a in attrs {
                    match a {
                        InfoVxlan::Id(v) => vni = *v,
                        InfoVxlan::Port(p) => port = *p,
                        InfoVxlan::Local(l) => local = Some(IpAddr::V4(*l)),
                        InfoVxlan::Local6(l) => local = Some(IpAddr::V6(*l)),
                        InfoVxlan::Learning(l) => learning = *l,
                        InfoVxlan::Proxy(p) => proxy = *p,
                        _ => {}
                    }
                }
                kind = LinkKind::Vxlan {
                    vni,
                    port,
                    local,
                    learning,
                    proxy,
                };
            }
            _ => {}
        }
    }
    kind
}

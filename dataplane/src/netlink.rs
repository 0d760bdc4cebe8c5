//! rtnetlink in any namespace: the socket is opened on a thread inside the target
//! namespace and stays bound to it; the connection is driven by the caller's runtime.

use std::fs::File;
use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;

use futures::TryStreamExt;
use std::net::Ipv4Addr;

use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::AddressFamily;
use rtnetlink::{Handle, LinkBridge, LinkUnspec, LinkVeth, LinkVxlan};

mod routes;
mod v6;

pub use routes::{Route, RouteFamily};

/// A netlink failure, naming what was being done.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The socket could not be opened.
    #[error("netlink: cannot open a socket: {0}")]
    Open(#[from] io::Error),
    /// The kernel refused a request.
    #[error("netlink: {what}: {source}")]
    Request {
        /// What was being done.
        what: String,
        /// The kernel's answer.
        source: rtnetlink::Error,
    },
    /// A link that should exist does not.
    #[error("netlink: no link named {0}")]
    NoSuchLink(String),
}

/// What `link_info` tells about a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkInfo {
    /// Its index.
    pub index: u32,
    /// Its hardware address, if it has a 6-byte one.
    pub mac: Option<[u8; 6]>,
    /// Its MTU.
    pub mtu: u32,
}

/// A route-netlink connection bound to one namespace.
#[derive(Clone)]
pub struct Netlink {
    handle: Handle,
}

pub(crate) fn req(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetlinkError {
    let what = what.into();
    move |source| NetlinkError::Request { what, source }
}

impl Netlink {
    /// A connection in the caller's own namespace. Needs a tokio runtime.
    pub fn current() -> Result<Netlink, NetlinkError> {
        let (conn, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(conn);
        Ok(Netlink { handle })
    }

    /// A connection inside namespace `ns`. Needs a tokio runtime.
    pub fn in_namespace(ns: &File) -> Result<Netlink, NetlinkError> {
        let rt = tokio::runtime::Handle::current();
        let spawner = rt.clone();
        let handle = crate::netns::run_in(ns, move || -> io::Result<Handle> {
            let _guard = spawner.enter();
            let (conn, handle, _) = rtnetlink::new_connection()?;
            spawner.spawn(conn);
            Ok(handle)
        })??;
        drop(rt);
        Ok(Netlink { handle })
    }

    /// The index of link `name`, if it exists.
    pub async fn index(&self, name: &str) -> Result<Option<u32>, NetlinkError> {
        Ok(self.link_info(name).await?.map(|link| link.index))
    }

    /// The index of link `name`, which must exist.
    pub async fn must_index(&self, name: &str) -> Result<u32, NetlinkError> {
        self.index(name)
            .await?
            .ok_or_else(|| NetlinkError::NoSuchLink(name.to_string()))
    }

    /// Creates a veth pair.
    pub async fn add_veth(&self, name: &str, peer: &str) -> Result<(), NetlinkError> {
        self.handle
            .link()
            .add(LinkVeth::new(name, peer).build())
            .execute()
            .await
            .map_err(req(format!("create veth {name}/{peer}")))
    }

    /// Creates a veth pair whose peer is born in namespace `peer_ns` under its final
    /// name, MTU and MAC: moving a link to another namespace afterwards costs the kernel
    /// an RCU grace period (tens of milliseconds), creating it there does not.
    pub async fn add_veth_into(
        &self,
        name: &str,
        mtu: u32,
        peer: &str,
        peer_ns: &File,
        peer_mac: [u8; 6],
    ) -> Result<(), NetlinkError> {
        use netlink_packet_route::link::{InfoData, InfoKind, InfoVeth};
        use rtnetlink::LinkMessageBuilder;
        let peer_msg = LinkMessageBuilder::<LinkUnspec>::new()
            .name(peer.to_string())
            .mtu(mtu)
            .address(peer_mac.to_vec())
            .setns_by_fd(peer_ns.as_raw_fd())
            .build();
        let message = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(name.to_string())
            .mtu(mtu)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg)))
            .build();
        self.handle
            .link()
            .add(message)
            .execute()
            .await
            .map_err(req(format!(
                "add veth {name} with {peer} in another namespace"
            )))
    }

    /// Creates a bridge.
    pub async fn add_bridge(&self, name: &str) -> Result<(), NetlinkError> {
        self.handle
            .link()
            .add(LinkBridge::new(name).build())
            .execute()
            .await
            .map_err(req(format!("create bridge {name}")))
    }

    /// Brings link `index` up.
    pub async fn set_up(&self, index: u32) -> Result<(), NetlinkError> {
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(req(format!("bring link {index} up")))
    }

    /// Enslaves link `index` to bridge `master`.
    pub async fn set_master(&self, index: u32, master: u32) -> Result<(), NetlinkError> {
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(index).controller(master).build())
            .execute()
            .await
            .map_err(req(format!("attach link {index} to bridge {master}")))
    }

    /// Lets bridge port `index` send a frame back out the port it came in on (hairpin
    /// mode, as kubelet's `hairpin-veth`): a sandbox reaching a published port of its
    /// own node that is translated to itself, which `br_netfilter` bridges back to it.
    pub async fn set_hairpin(&self, index: u32) -> Result<(), NetlinkError> {
        use netlink_packet_route::link::{LinkAttribute, LinkMessage, LinkProtoInfoBridge};
        /// `IFLA_BRPORT_MODE`: the port's hairpin mode.
        const IFLA_BRPORT_MODE: u16 = 4;
        let mut msg = LinkMessage::default();
        msg.header.interface_family = AddressFamily::Bridge;
        msg.header.index = index;
        msg.attributes.push(LinkAttribute::ProtoInfoBridge(vec![
            LinkProtoInfoBridge::Other(netlink_packet_core::DefaultNla::new(
                IFLA_BRPORT_MODE,
                vec![1],
            )),
        ]));
        self.handle
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(req(format!("hairpin mode on bridge port {index}")))
    }

    /// Renames link `index` (it must be down).
    pub async fn rename(&self, index: u32, name: &str) -> Result<(), NetlinkError> {
        self.handle
            .link()
            .set(
                LinkUnspec::new_with_index(index)
                    .name(name.to_string())
                    .build(),
            )
            .execute()
            .await
            .map_err(req(format!("rename link {index} to {name}")))
    }

    /// Moves link `index` into namespace `ns`.
    pub async fn move_to(&self, index: u32, ns: &File) -> Result<(), NetlinkError> {
        self.handle
            .link()
            .set(
                LinkUnspec::new_with_index(index)
                    .setns_by_fd(ns.as_raw_fd())
                    .build(),
            )
            .execute()
            .await
            .map_err(req(format!("move link {index} to another namespace")))
    }

    /// Adds `addr/prefix` to link `index`.
    pub async fn add_address(
        &self,
        index: u32,
        addr: IpAddr,
        prefix: u8,
    ) -> Result<(), NetlinkError> {
        self.handle
            .address()
            .add(index, addr, prefix)
            .execute()
            .await
            .map_err(req(format!("add address {addr}/{prefix} to link {index}")))
    }

    /// Deletes link `index`.
    pub async fn delete(&self, index: u32) -> Result<(), NetlinkError> {
        self.handle
            .link()
            .del(index)
            .execute()
            .await
            .map_err(req(format!("delete link {index}")))
    }

    /// Creates a bridge with the given MAC and MTU, up.
    pub async fn add_bridge_with(
        &self,
        name: &str,
        mac: [u8; 6],
        mtu: u32,
    ) -> Result<(), NetlinkError> {
        self.handle
            .link()
            .add(
                LinkBridge::new(name)
                    .address(mac.to_vec())
                    .mtu(mtu)
                    .up()
                    .build(),
            )
            .execute()
            .await
            .map_err(req(format!("create bridge {name}")))
    }

    /// Creates a VXLAN device without learning, in bridge `master`, up; with `proxy`, it
    /// answers ARP from its neighbour table instead of sending requests on.
    #[allow(clippy::too_many_arguments)]
    pub async fn add_vxlan(
        &self,
        name: &str,
        vni: u32,
        local: IpAddr,
        port: u16,
        mtu: u32,
        master: u32,
        proxy: bool,
    ) -> Result<(), NetlinkError> {
        let vxlan = LinkVxlan::new(name, vni);
        let vxlan = match local {
            IpAddr::V4(v4) => vxlan.local(v4),
            IpAddr::V6(v6) => vxlan.local6(v6),
        };
        let msg = vxlan
            .port(port)
            .learning(false)
            .proxy(proxy)
            .mtu(mtu)
            .controller(master)
            .up()
            .build();
        self.handle
            .link()
            .add(msg)
            .execute()
            .await
            .map_err(req(format!("create vxlan {name} (vni {vni})")))
    }

    /// Sets MTU (and MAC, if given) of link `index` and brings it up.
    pub async fn set_link(
        &self,
        index: u32,
        mtu: u32,
        mac: Option<[u8; 6]>,
    ) -> Result<(), NetlinkError> {
        let mut b = LinkUnspec::new_with_index(index).mtu(mtu).up();
        if let Some(m) = mac {
            b = b.address(m.to_vec());
        }
        self.handle
            .link()
            .set(b.build())
            .execute()
            .await
            .map_err(req(format!("set mtu/mac of link {index}")))
    }

    /// Sets only the MTU of link `index`.
    pub async fn set_mtu(&self, index: u32, mtu: u32) -> Result<(), NetlinkError> {
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(index).mtu(mtu).build())
            .execute()
            .await
            .map_err(req(format!("set mtu of link {index}")))
    }

    /// Sets the MAC of link `index`.
    pub async fn set_mac(&self, index: u32, mac: [u8; 6]) -> Result<(), NetlinkError> {
        self.handle
            .link()
            .set(
                LinkUnspec::new_with_index(index)
                    .address(mac.to_vec())
                    .build(),
            )
            .execute()
            .await
            .map_err(req(format!("set mac of link {index}")))
    }

    /// Removes `addr/prefix` from link `index`.
    pub async fn del_address(
        &self,
        index: u32,
        addr: Ipv4Addr,
        prefix: u8,
    ) -> Result<(), NetlinkError> {
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.index = index;
        msg.header.prefix_len = prefix;
        msg.attributes
            .push(AddressAttribute::Local(IpAddr::V4(addr)));
        msg.attributes
            .push(AddressAttribute::Address(IpAddr::V4(addr)));
        self.handle
            .address()
            .del(msg)
            .execute()
            .await
            .map_err(req(format!(
                "remove address {addr}/{prefix} from link {index}"
            )))
    }

    fn fdb_message(index: u32, mac: [u8; 6], dst: IpAddr) -> NeighbourMessage {
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Bridge;
        msg.header.ifindex = index;
        msg.header.state = NeighbourState::Permanent;
        msg.header.flags = NeighbourFlags::Own;
        msg.attributes
            .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
        msg.attributes
            .push(NeighbourAttribute::Destination(match dst {
                IpAddr::V4(v4) => NeighbourAddress::Inet(v4),
                IpAddr::V6(v6) => NeighbourAddress::Inet6(v6),
            }));
        msg
    }

    /// Adds a VXLAN FDB entry: frames for `mac` go to the tunnel endpoint `dst`.
    pub async fn add_fdb(&self, index: u32, mac: [u8; 6], dst: IpAddr) -> Result<(), NetlinkError> {
        self.handle
            .neighbours()
            .add_bridge(index, &mac)
            .destination(dst)
            .flags(NeighbourFlags::Own)
            .state(NeighbourState::Permanent)
            .replace()
            .execute()
            .await
            .map_err(req(format!("add fdb entry to {dst} on link {index}")))
    }

    /// Adds the default VXLAN FDB entry (all-zero MAC): unknown and broadcast frames go
    /// to `dst`. Only hand-built baselines use it; shoal's own networks never flood.
    pub async fn add_default_fdb(&self, index: u32, dst: Ipv4Addr) -> Result<(), NetlinkError> {
        self.handle
            .neighbours()
            .add_bridge(index, &[0; 6])
            .destination(IpAddr::V4(dst))
            .flags(NeighbourFlags::Own)
            .state(NeighbourState::Permanent)
            .execute()
            .await
            .map_err(req(format!(
                "add default fdb entry to {dst} on link {index}"
            )))
    }

    /// Removes a VXLAN FDB entry.
    pub async fn del_fdb(&self, index: u32, mac: [u8; 6], dst: IpAddr) -> Result<(), NetlinkError> {
        self.handle
            .neighbours()
            .del(Self::fdb_message(index, mac, dst))
            .execute()
            .await
            .map_err(req(format!("remove fdb entry to {dst} on link {index}")))
    }

    /// Adds a permanent neighbour entry (`ip` is at `mac`) on link `index`.
    pub async fn add_neigh(
        &self,
        index: u32,
        ip: Ipv4Addr,
        mac: [u8; 6],
    ) -> Result<(), NetlinkError> {
        self.add_neigh_ip(index, IpAddr::V4(ip), mac).await
    }

    /// Removes a neighbour entry.
    pub async fn del_neigh(&self, index: u32, ip: Ipv4Addr) -> Result<(), NetlinkError> {
        self.del_neigh_ip(index, IpAddr::V4(ip)).await
    }

    /// Whether the main table has an IPv4 default route.
    pub async fn has_default_route(&self) -> Result<bool, NetlinkError> {
        self.has_default_route_of::<Ipv4Addr>().await
    }

    /// Adds a default route via `gateway`.
    pub async fn add_default_route(&self, gateway: Ipv4Addr) -> Result<(), NetlinkError> {
        self.add_default_route_via(gateway).await
    }

    /// Every link: (index, name, MTU).
    pub async fn links(&self) -> Result<Vec<(u32, String, u32)>, NetlinkError> {
        use netlink_packet_route::link::LinkAttribute;
        let mut out = Vec::new();
        let mut links = self.handle.link().get().execute();
        while let Some(msg) = links.try_next().await.map_err(req("dump links"))? {
            let mut name = String::new();
            let mut mtu = 0;
            for a in &msg.attributes {
                match a {
                    LinkAttribute::IfName(n) => name = n.clone(),
                    LinkAttribute::Mtu(m) => mtu = *m,
                    _ => {}
                }
            }
            out.push((msg.header.index, name, mtu));
        }
        Ok(out)
    }

    /// The IPv4 and IPv6 addresses of every link: (link index, address).
    pub async fn addresses(&self) -> Result<Vec<(u32, IpAddr)>, NetlinkError> {
        let mut out = Vec::new();
        let mut addrs = self.handle.address().get().execute();
        while let Some(msg) = addrs.try_next().await.map_err(req("dump addresses"))? {
            for a in &msg.attributes {
                if let AddressAttribute::Address(ip) = a {
                    out.push((msg.header.index, *ip));
                }
            }
        }
        Ok(out)
    }

    /// Link `name`'s index, MAC and MTU, if it exists.
    pub async fn link_info(&self, name: &str) -> Result<Option<LinkInfo>, NetlinkError> {
        use netlink_packet_route::link::LinkAttribute;
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        let msg = match links.try_next().await {
            Ok(Some(msg)) => msg,
            Ok(None) => return Ok(None),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => {
                return Ok(None)
            }
            Err(e) => return Err(req(format!("look up link {name}"))(e)),
        };
        let mut info = LinkInfo {
            index: msg.header.index,
            mac: None,
            mtu: 0,
        };
        for a in &msg.attributes {
            match a {
                LinkAttribute::Address(bytes) => info.mac = <[u8; 6]>::try_from(&bytes[..]).ok(),
                LinkAttribute::Mtu(m) => info.mtu = *m,
                _ => {}
            }
        }
        Ok(Some(info))
    }

    /// The addresses (of both families) of link `index` with their prefix lengths.
    pub async fn addresses_of(&self, index: u32) -> Result<Vec<(IpAddr, u8)>, NetlinkError> {
        let mut out = Vec::new();
        let mut addrs = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        while let Some(msg) = addrs.try_next().await.map_err(req("dump addresses"))? {
            for a in &msg.attributes {
                if let AddressAttribute::Address(ip) = a {
                    out.push((*ip, msg.header.prefix_len));
                }
            }
        }
        Ok(out)
    }

    /// The IPv4 routes of the main table with a destination: (destination, prefix,
    /// output link).
    pub async fn routes_v4(&self) -> Result<Vec<(Ipv4Addr, u8, Option<u32>)>, NetlinkError> {
        self.routes_of().await
    }

    /// The raw rtnetlink handle, for requests this wrapper does not cover.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

//! IPv6 requests of [`Netlink`]: addresses without duplicate address detection
//! (the anycast gateway is on every node's bridge by design, and a sandbox's address
//! is leased by the cluster, so DAD could only delay them), neighbour entries on
//! VXLAN devices (the kernel's proxy answers neighbour solicitations from them, as it
//! answers ARP), default routes and the main table's routes.

use std::net::{IpAddr, Ipv6Addr};

use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage,
};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::AddressFamily;

use super::{req, Netlink, NetlinkError};

impl Netlink {
    /// Adds `addr/prefix` to link `index` without duplicate address detection (usable
    /// at once; replaces an equal address).
    pub async fn add_address6(
        &self,
        index: u32,
        addr: Ipv6Addr,
        prefix: u8,
    ) -> Result<(), NetlinkError> {
        let mut request = self
            .handle
            .address()
            .add(index, IpAddr::V6(addr), prefix)
            .replace();
        let msg = request.message_mut();
        msg.header.flags |= AddressHeaderFlags::Nodad;
        msg.attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
        request
            .execute()
            .await
            .map_err(req(format!("add address {addr}/{prefix} to link {index}")))
    }

    /// Removes `addr/prefix` from link `index`.
    pub async fn del_address6(
        &self,
        index: u32,
        addr: Ipv6Addr,
        prefix: u8,
    ) -> Result<(), NetlinkError> {
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet6;
        msg.header.index = index;
        msg.header.prefix_len = prefix;
        msg.attributes
            .push(AddressAttribute::Address(IpAddr::V6(addr)));
        self.handle
            .address()
            .del(msg)
            .execute()
            .await
            .map_err(req(format!(
                "remove address {addr}/{prefix} from link {index}"
            )))
    }

    /// Adds a permanent IPv6 neighbour entry (`ip` is at `mac`) on link `index`.
    pub async fn add_neigh6(
        &self,
        index: u32,
        ip: Ipv6Addr,
        mac: [u8; 6],
    ) -> Result<(), NetlinkError> {
        self.add_neigh_ip(index, IpAddr::V6(ip), mac).await
    }

    /// Removes an IPv6 neighbour entry.
    pub async fn del_neigh6(&self, index: u32, ip: Ipv6Addr) -> Result<(), NetlinkError> {
        self.del_neigh_ip(index, IpAddr::V6(ip)).await
    }

    /// Adds a permanent neighbour entry of either family (`ip` is at `mac`).
    pub(super) async fn add_neigh_ip(
        &self,
        index: u32,
        ip: IpAddr,
        mac: [u8; 6],
    ) -> Result<(), NetlinkError> {
        self.handle
            .neighbours()
            .add(index, ip)
            .link_layer_address(&mac)
            .state(NeighbourState::Permanent)
            .replace()
            .execute()
            .await
            .map_err(req(format!("add neighbour {ip} on link {index}")))
    }

    /// Removes a neighbour entry of either family.
    pub(super) async fn del_neigh_ip(&self, index: u32, ip: IpAddr) -> Result<(), NetlinkError> {
        let mut msg = NeighbourMessage::default();
        msg.header.ifindex = index;
        let (family, dst) = match ip {
            IpAddr::V4(v4) => (AddressFamily::Inet, NeighbourAddress::Inet(v4)),
            IpAddr::V6(v6) => (AddressFamily::Inet6, NeighbourAddress::Inet6(v6)),
        };
        msg.header.family = family;
        msg.attributes.push(NeighbourAttribute::Destination(dst));
        self.handle
            .neighbours()
            .del(msg)
            .execute()
            .await
            .map_err(req(format!("remove neighbour {ip} on link {index}")))
    }

    /// Whether the main table has an IPv6 default route.
    pub async fn has_default_route6(&self) -> Result<bool, NetlinkError> {
        self.has_default_route_of::<Ipv6Addr>().await
    }

    /// Adds an IPv6 default route via `gateway`.
    pub async fn add_default_route6(&self, gateway: Ipv6Addr) -> Result<(), NetlinkError> {
        self.add_default_route_via(gateway).await
    }

    /// The IPv6 routes of the main table other than the default route: (destination,
    /// prefix, output interface).
    pub async fn routes_v6(&self) -> Result<Vec<(Ipv6Addr, u8, Option<u32>)>, NetlinkError> {
        self.routes_of().await
    }
}

//! The main routing table of either family, read one way: every route with its
//! destination (the unspecified address for a default route), prefix, gateway and
//! output link. Adding a default route is the same request for both families too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use rtnetlink::RouteMessageBuilder;

use super::{req, Netlink, NetlinkError};

/// The main routing table.
const MAIN_TABLE: u8 = 254;

/// An address family of the routing table: IPv4 or IPv6.
pub trait RouteFamily: Copy + Into<IpAddr> {
    /// The unspecified address: a default route's destination.
    const UNSPECIFIED: Self;
    /// A dump request for this family's routes, or a route via `gateway`.
    fn message(gateway: Option<Self>) -> RouteMessage;
    /// The address in a route attribute, if it is of this family.
    fn of(address: &RouteAddress) -> Option<Self>;
}

impl RouteFamily for Ipv4Addr {
    const UNSPECIFIED: Self = Ipv4Addr::UNSPECIFIED;

    fn message(gateway: Option<Self>) -> RouteMessage {
        let b = RouteMessageBuilder::<Ipv4Addr>::new();
        match gateway {
            Some(g) => b.gateway(g).build(),
            None => b.build(),
        }
    }

    fn of(address: &RouteAddress) -> Option<Self> {
        match address {
            RouteAddress::Inet(ip) => Some(*ip),
            _ => None,
        }
    }
}

impl RouteFamily for Ipv6Addr {
    const UNSPECIFIED: Self = Ipv6Addr::UNSPECIFIED;

    fn message(gateway: Option<Self>) -> RouteMessage {
        let b = RouteMessageBuilder::<Ipv6Addr>::new();
        match gateway {
            Some(g) => b.gateway(g).build(),
            None => b.build(),
        }
    }

    fn of(address: &RouteAddress) -> Option<Self> {
        match address {
            RouteAddress::Inet6(ip) => Some(*ip),
            _ => None,
        }
    }
}

/// One route of the main table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route<A> {
    /// Its destination; the unspecified address for a default route.
    pub dst: A,
    /// The destination's prefix length.
    pub prefix: u8,
    /// Its next hop, if it has one.
    pub gateway: Option<A>,
    /// Its output link, if it names one.
    pub oif: Option<u32>,
}

impl<A: RouteFamily> Route<A> {
    /// Whether this is a default route.
    pub fn is_default(&self) -> bool {
        self.prefix == 0
    }
}

impl Netlink {
    /// The main table's routes of family `A`, default routes included.
    pub async fn main_routes<A: RouteFamily>(&self) -> Result<Vec<Route<A>>, NetlinkError> {
        let mut out = Vec::new();
        let mut routes = self.handle.route().get(A::message(None)).execute();
        while let Some(r) = routes.try_next().await.map_err(req("dump routes"))? {
            if r.header.table != MAIN_TABLE {
                continue;
            }
            let mut route = Route {
                dst: A::UNSPECIFIED,
                prefix: r.header.destination_prefix_length,
                gateway: None,
                oif: None,
            };
            for a in &r.attributes {
                match a {
                    RouteAttribute::Destination(d) => route.dst = A::of(d).unwrap_or(route.dst),
                    RouteAttribute::Gateway(g) => route.gateway = A::of(g),
                    RouteAttribute::Oif(i) => route.oif = Some(*i),
                    _ => {}
                }
            }
            out.push(route);
        }
        Ok(out)
    }

    /// Whether the main table has a default route of family `A`.
    pub async fn has_default_route_of<A: RouteFamily>(&self) -> Result<bool, NetlinkError> {
        Ok(self.main_routes::<A>().await?.iter().any(Route::is_default))
    }

    /// Adds a default route of `gateway`'s family via it.
    pub async fn add_default_route_via<A: RouteFamily>(
        &self,
        gateway: A,
    ) -> Result<(), NetlinkError> {
        self.handle
            .route()
            .add(A::message(Some(gateway)))
            .execute()
            .await
            .map_err(req(format!("add default route via {}", gateway.into())))
    }

    /// The routes of family `A` other than default routes: (destination, prefix,
    /// output link).
    pub async fn routes_of<A: RouteFamily>(
        &self,
    ) -> Result<Vec<(A, u8, Option<u32>)>, NetlinkError> {
        Ok(self
            .main_routes::<A>()
            .await?
            .into_iter()
            .filter(|r| !r.is_default())
            .map(|r| (r.dst, r.prefix, r.oif))
            .collect())
    }
}

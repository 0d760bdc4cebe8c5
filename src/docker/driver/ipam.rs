//! Docker's IPAM calls: pools are shoal subnets, addresses are leases.

use std::collections::BTreeMap;
use std::time::Duration;

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde_json::{json, Value};
use shoal_control::state::{docker_pool, docker_pool6, ClusterState, Command, Network, Output};

use super::{ip_of, lock, p, CallError, Ctx, GLOBAL_SPACE, LOCAL_SPACE, NETWORK_WAIT};

impl Ctx {
    /// `RequestPool`: the subnet asked for, or the next free one; nothing is held. With
    /// `--ipv6`, Docker asks a second time for the IPv6 subnet.
    pub(super) fn request_pool(&self, r: p::RequestPool) -> Result<Value, CallError> {
        if ![LOCAL_SPACE, GLOBAL_SPACE, ""].contains(&r.address_space.as_str()) {
            return Err(format!(
                "address space {:?} is not shoal's",
                r.address_space
            ));
        }
        // Docker's own markers (com.docker.network.*) come along in a Swarm.
        if let Some(k) = r
            .options
            .keys()
            .find(|k| !k.starts_with("com.docker.network."))
        {
            return Err(format!(
                "--ipam-opt {k}: shoal's IPAM takes no options; give --subnet, --ip-range, --gateway or --aux-address"
            ));
        }
        let family = if r.v6 { "IPv6" } else { "IPv4" };
        let requested = match r.pool.as_str() {
            "" => None,
            s => Some(cidr(s, "--subnet", r.v6)?),
        };
        if let Some(s) = requested.filter(|s| s.trunc() != *s) {
            return Err(format!(
                "--subnet {s} is not a network address; did you mean {}?",
                s.trunc()
            ));
        }
        let subnet: IpNet = match requested {
            Some(IpNet::V6(s)) => {
                docker_pool6(&self.state(), Some(s), &self.driver.pending_subnets6())
                    .map_err(|e| e.to_string())?
                    .into()
            }
            None if r.v6 => docker_pool6(&self.state(), None, &self.driver.pending_subnets6())
                .map_err(|e| e.to_string())?
                .into(),
            Some(IpNet::V4(s)) => {
                docker_pool(&self.state(), Some(s), &self.driver.pending_subnets())
                    .map_err(|e| e.to_string())?
                    .into()
            }
            None => docker_pool(&self.state(), None, &self.driver.pending_subnets())
                .map_err(|e| e.to_string())?
                .into(),
        };
        lock(&self.driver.offered).insert(subnet, tokio::time::Instant::now());
        if !r.sub_pool.is_empty() {
            let range = cidr(&r.sub_pool, "--ip-range", r.v6)?;
            if !subnet.contains(&range) {
                return Err(format!(
                    "--ip-range {range} is not inside the {family} --subnet {subnet}"
                ));
            }
            lock(&self.driver.ranges).insert(subnet, range);
        }
        Ok(json!(p::PoolGranted {
            pool_id: format!("shoal/{subnet}"),
            pool: subnet.to_string(),
            data: BTreeMap::new(),
        }))
    }

    pub(super) fn pool_subnet(pool_id: &str) -> Result<IpNet, CallError> {
        pool_id
            .strip_prefix("shoal/")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("pool {pool_id:?} is not shoal's"))
    }

    /// The network with `subnet` (its IPv4 or its IPv6 one), waiting a moment for one
    /// Docker is making.
    pub(super) async fn network_with(&self, subnet: IpNet) -> Result<Network, CallError> {
        let until = tokio::time::Instant::now() + NETWORK_WAIT;
        loop {
            if let Some(n) = network_of_subnet(&self.state(), subnet) {
                return Ok(n.clone());
            }
            if let Some((_, why)) = lock(&self.driver.failed)
                .values()
                .find(|(s, _)| s.has(subnet))
            {
                return Err(why.clone());
            }
            let being_made = lock(&self.driver.creating).values().any(|s| s.has(subnet));
            if !being_made || tokio::time::Instant::now() >= until {
                return Err(format!(
                    "no shoal network has subnet {subnet}; was the network removed?"
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `RequestAddress`: the gateway of the (future) network, or a lease.
    pub(super) async fn request_address(&self, r: p::RequestAddress) -> Result<Value, CallError> {
        let subnet = Self::pool_subnet(&r.pool_id)?;
        let given = match r.address.as_str() {
            "" => None,
            a => Some(ip_of(a)?),
        };
        if let Some(ip) = given.filter(|ip| !subnet.contains(ip)) {
            return Err(format!(
                "address {ip} is outside the network's subnet {subnet}"
            ));
        }
        let gateway_request =
            r.options.get(p::GATEWAY_REQUEST.0).map(String::as_str) == Some(p::GATEWAY_REQUEST.1);
        let ip = if gateway_request {
            let existing = network_of_subnet(&self.state(), subnet).and_then(|n| match subnet {
                IpNet::V4(_) => n.space.as_ref().map(|s| IpAddr::from(s.gateway())),
                IpNet::V6(_) => n.space6.as_ref().map(|s| IpAddr::from(s.gateway())),
            });
            match (existing, given) {
                (Some(gw), Some(ip)) if gw != ip => {
                    return Err(format!(
                        "the network with subnet {subnet} has gateway {gw}, not {ip}"
                    ))
                }
                (Some(gw), _) => gw,
                (None, Some(ip)) => ip,
                // shoal's default gateway: the first host of an IPv4 subnet, `::1`
                // of an IPv6 one (whose `hosts()` begin with the subnet's own address).
                (None, None) => match subnet {
                    IpNet::V4(s) => s
                        .hosts()
                        .next()
                        .map(IpAddr::V4)
                        .ok_or_else(|| format!("subnet {subnet} has no host addresses"))?,
                    IpNet::V6(s) => IpAddr::V6((u128::from(s.network()) + 1).into()),
                },
            }
        } else if let Some(ip) = given.filter(|_| self.aux_reservation(subnet)) {
            // `--aux-address`: Docker reserves it before CreateNetwork, which then hands
            // the aux addresses over; shoal keeps them out of its pool from there.
            if ip.is_ipv6() {
                return Err(format!(
                    "--aux-address {ip}: shoal keeps aux addresses for IPv4 subnets only"
                ));
            }
            ip
        } else {
            let net = self.network_with(subnet).await?;
            let command = Command::LeaseAddress {
                node: self.member.node_id,
                network: net.name.clone(),
                ip: given,
                ipv6: matches!(subnet, IpNet::V6(_)),
            };
            match self.propose(command).await? {
                Output::Address { ip } => ip,
                other => return Err(format!("unexpected answer to a lease: {other:?}")),
            }
        };
        Ok(json!(p::AddressGranted {
            address: format!("{ip}/{}", subnet.prefix_len()),
            data: BTreeMap::new(),
        }))
    }

    /// Whether an address in `subnet` is asked for before the network exists: the
    /// subnet was offered by RequestPool and CreateNetwork has not come yet.
    fn aux_reservation(&self, subnet: IpNet) -> bool {
        network_of_subnet(&self.state(), subnet).is_none()
            && lock(&self.driver.offered).contains_key(&subnet)
            && !lock(&self.driver.creating).values().any(|s| s.has(subnet))
    }

    pub(super) async fn release_address(&self, r: p::ReleaseAddress) -> Result<Value, CallError> {
        let subnet = Self::pool_subnet(&r.pool_id)?;
        let ip = ip_of(&r.address)?;
        let state = self.state();
        if let Some(net) = network_of_subnet(&state, subnet) {
            let command = Command::ReleaseAddress {
                node: self.member.node_id,
                network: net.name.clone(),
                ip,
            };
            self.propose(command).await?;
        }
        Ok(json!({}))
    }
}

/// The network whose IPv4 or IPv6 subnet is `subnet`.
pub(super) fn network_of_subnet(state: &ClusterState, subnet: IpNet) -> Option<&Network> {
    state.networks.values().find(|n| match subnet {
        IpNet::V4(s) => n.subnet() == Some(s),
        IpNet::V6(s) => n.space6.as_ref().map(|s6| s6.subnet()) == Some(s),
    })
}

/// `s` as a CIDR of the family Docker asked for (`v6`), for `flag`'s error.
fn cidr(s: &str, flag: &str, v6: bool) -> Result<IpNet, CallError> {
    let parsed = if v6 {
        s.parse::<Ipv6Net>().map(IpNet::from).ok()
    } else {
        s.parse::<Ipv4Net>().map(IpNet::from).ok()
    };
    parsed.ok_or_else(|| {
        format!(
            "{flag} {s:?} is not an {} CIDR",
            if v6 { "IPv6" } else { "IPv4" }
        )
    })
}

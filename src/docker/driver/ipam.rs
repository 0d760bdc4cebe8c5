//! Docker's IPAM calls: pools are shoal subnets, addresses are leases.

use std::collections::BTreeMap;
use std::time::Duration;

use ipnet::Ipv4Net;
use serde_json::{json, Value};
use shoal_control::state::{docker_pool, Command, Network, Output};

use super::{addr_of, lock, p, CallError, Ctx, GLOBAL_SPACE, LOCAL_SPACE, NETWORK_WAIT};

impl Ctx {
    /// `RequestPool`: the subnet asked for, or the next free one; nothing is held.
    pub(super) fn request_pool(&self, r: p::RequestPool) -> Result<Value, CallError> {
        if r.v6 {
            return Err("shoal networks are IPv4 only for now: leave out --ipv6".into());
        }
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
        let requested = match r.pool.as_str() {
            "" => None,
            s => {
                let net: Ipv4Net = s
                    .parse()
                    .map_err(|_| format!("--subnet {s:?} is not an IPv4 CIDR"))?;
                if net.trunc() != net {
                    return Err(format!(
                        "--subnet {s} is not a network address; did you mean {}?",
                        net.trunc()
                    ));
                }
                Some(net)
            }
        };
        let pending = self.driver.pending_subnets();
        let subnet = docker_pool(&self.state(), requested, &pending).map_err(|e| e.to_string())?;
        lock(&self.driver.offered).insert(subnet, tokio::time::Instant::now());
        if !r.sub_pool.is_empty() {
            let range: Ipv4Net = r
                .sub_pool
                .parse()
                .map_err(|_| format!("--ip-range {:?} is not an IPv4 CIDR", r.sub_pool))?;
            if !subnet.contains(&range) {
                return Err(format!(
                    "--ip-range {range} is not inside --subnet {subnet}"
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

    pub(super) fn pool_subnet(pool_id: &str) -> Result<Ipv4Net, CallError> {
        pool_id
            .strip_prefix("shoal/")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("pool {pool_id:?} is not shoal's"))
    }

    /// The network with `subnet`, waiting a moment for one Docker is making.
    pub(super) async fn network_with(&self, subnet: Ipv4Net) -> Result<Network, CallError> {
        let until = tokio::time::Instant::now() + NETWORK_WAIT;
        loop {
            if let Some(n) = self
                .state()
                .networks
                .values()
                .find(|n| n.subnet() == Some(subnet))
            {
                return Ok(n.clone());
            }
            if let Some((_, why)) = lock(&self.driver.failed)
                .values()
                .find(|(s, _)| *s == subnet)
            {
                return Err(why.clone());
            }
            let being_made = lock(&self.driver.creating).values().any(|s| *s == subnet);
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
            a => Some(addr_of(a)?),
        };
        if let Some(ip) = given.filter(|ip| !subnet.contains(ip)) {
            return Err(format!(
                "address {ip} is outside the network's subnet {subnet}"
            ));
        }
        let gateway_request =
            r.options.get(p::GATEWAY_REQUEST.0).map(String::as_str) == Some(p::GATEWAY_REQUEST.1);
        let ip = if gateway_request {
            let existing = self
                .state()
                .networks
                .values()
                .find(|n| n.subnet() == Some(subnet))
                .and_then(|n| n.space.as_ref().map(|s| s.gateway()));
            match (existing, given) {
                (Some(gw), Some(ip)) if gw != ip => {
                    return Err(format!(
                        "the network with subnet {subnet} has gateway {gw}, not {ip}"
                    ))
                }
                (Some(gw), _) => gw,
                (None, Some(ip)) => ip,
                (None, None) => subnet
                    .hosts()
                    .next()
                    .ok_or_else(|| format!("subnet {subnet} has no host addresses"))?,
            }
        } else if let Some(ip) = given.filter(|_| self.aux_reservation(subnet)) {
            // `--aux-address`: Docker reserves it before CreateNetwork, which then hands
            // the aux addresses over; shoal keeps them out of its pool from there.
            ip
        } else {
            let net = self.network_with(subnet).await?;
            let command = Command::LeaseAddress {
                node: self.member.node_id,
                network: net.name.clone(),
                ip: given,
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
    fn aux_reservation(&self, subnet: Ipv4Net) -> bool {
        let exists = self
            .state()
            .networks
            .values()
            .any(|n| n.subnet() == Some(subnet));
        !exists
            && lock(&self.driver.offered).contains_key(&subnet)
            && !lock(&self.driver.creating).values().any(|s| *s == subnet)
    }

    pub(super) async fn release_address(&self, r: p::ReleaseAddress) -> Result<Value, CallError> {
        let subnet = Self::pool_subnet(&r.pool_id)?;
        let ip = addr_of(&r.address)?;
        let state = self.state();
        if let Some(net) = state.networks.values().find(|n| n.subnet() == Some(subnet)) {
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

//! The record table: what the resolver knows, as the agent publishes it.
//!
//! ```text
//!  cluster state ──agent──▶ TableBuilder ──build()──▶ RecordTable ──Resolver::update──▶ ArcSwap
//!                                                                  (read per query, no lock)
//! ```
//! Per network: names → IPv4 addresses (service → VIP or task IPs, `tasks.<service>` →
//! task IPs, sandbox names and aliases → their IPs), and the IPv6 addresses of the same
//! names on dual-stack networks (AAAA records). Per client address: the networks
//! that sandbox is attached to, which is the set of networks it may resolve names in.
//! A client the table does not know sees only the network the query arrived on.
//!
//! A name may carry no address: it exists, so an `A` query for it gets NODATA instead
//! of being forwarded (a service whose tasks are all gone). `tasks.<x>` with no entry of
//! its own but a known `<x>` is treated the same way.
//!
//! As in Docker, every name may also be asked for qualified by its network
//! (`web.front`, `tasks.web.front`), and a sandbox's or task's address has a PTR record
//! (`<name>.<network>`); a VIP has none. A client whose networks are all `internal` may
//! not have anything forwarded upstream ([`RecordTable::may_forward`]), and a client may
//! have upstreams of its own (a service's `--dns`).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use crate::name::DnsName;
use crate::Error;

/// TTL of the records we answer, in seconds, unless the builder says otherwise.
pub const DEFAULT_TTL: u32 = 5;
/// Longest network name the table accepts.
pub const MAX_NETWORK_NAME_LEN: usize = 255;

/// An immutable snapshot of every name this node's resolvers answer for.
#[derive(Debug, Default)]
pub struct RecordTable {
    ttl: u32,
    networks: Vec<NetworkRecords>,
    network_ids: HashMap<Box<str>, usize>,
    clients: HashMap<IpAddr, Box<[usize]>>,
    upstreams: HashMap<IpAddr, Arc<[SocketAddr]>>,
}

#[derive(Debug, Default)]
struct NetworkRecords {
    names: HashMap<Box<str>, NameRecords>,
    /// The network's name in table spelling, when it is a valid DNS name: the suffix of
    /// qualified names (`web.<suffix>`).
    suffix: Option<Box<str>>,
    /// Addresses to the name their PTR record gives (`<name>.<network>`).
    ptr: HashMap<IpAddr, Box<str>>,
    /// No way out: names it does not own are not forwarded for its clients.
    internal: bool,
}

/// The addresses of one name, with the round-robin position shared by all queries.
#[derive(Debug)]
pub(crate) struct NameRecords {
    addrs: Box<[Ipv4Addr]>,
    addrs6: Box<[Ipv6Addr]>,
    next: AtomicU32,
}

impl NameRecords {
    /// This query's turn of the round robin of the IPv4 addresses: every address once,
    /// starting one further along than the previous query's answer.
    pub(crate) fn rotation(&self) -> Rotation<'_, Ipv4Addr> {
        self.turn(&self.addrs)
    }

    /// The same for the IPv6 addresses (AAAA).
    pub(crate) fn rotation6(&self) -> Rotation<'_, Ipv6Addr> {
        self.turn(&self.addrs6)
    }

    /// Whether the name has an address of either family.
    fn has_addresses(&self) -> bool {
        !self.addrs.is_empty() || !self.addrs6.is_empty()
    }

    fn turn<'a, A>(&self, addrs: &'a [A]) -> Rotation<'a, A> {
        let len = addrs.len();
        let start = if len > 1 {
            self.next.fetch_add(1, Ordering::Relaxed) as usize % len
        } else {
            0
        };
        let (then, first) = addrs.split_at(start);
        Rotation { first, then }
    }
}

/// What the table says about a name, for one client on one network.
#[derive(Debug)]
pub(crate) enum Lookup<'t> {
    /// The name has addresses.
    Addresses(&'t NameRecords),
    /// The name exists but has no address (or is `tasks.<x>` of a known `<x>`).
    NoRecords,
    /// Not one of ours: forward it.
    Unknown,
}

impl RecordTable {
    /// Starts an empty table.
    pub fn builder() -> TableBuilder {
        TableBuilder::default()
    }

    /// The TTL, in seconds, of every record answered from this table.
    pub fn ttl(&self) -> u32 {
        self.ttl
    }

    /// Number of networks in the table.
    pub fn network_count(&self) -> usize {
        self.networks.len()
    }

    /// Number of names over all networks.
    pub fn name_count(&self) -> usize {
        self.networks.iter().map(|n| n.names.len()).sum()
    }

    /// The addresses `client`, asking on `network`, gets for `name` (in stored order):
    /// `Some(empty)` for a name with no address, `None` when the name is not ours.
    pub fn resolve(&self, network: &str, client: IpAddr, name: &str) -> Option<Vec<Ipv4Addr>> {
        let key = DnsName::new(name).ok()?;
        match self.lookup(network, client, key.as_str()) {
            Lookup::Addresses(records) => Some(records.addrs.to_vec()),
            Lookup::NoRecords => Some(Vec::new()),
            Lookup::Unknown => None,
        }
    }

    /// The IPv6 addresses (AAAA) `client`, asking on `network`, gets for `name`, like
    /// [`RecordTable::resolve`] gives the IPv4 ones.
    pub fn resolve6(&self, network: &str, client: IpAddr, name: &str) -> Option<Vec<Ipv6Addr>> {
        let key = DnsName::new(name).ok()?;
        match self.lookup(network, client, key.as_str()) {
            Lookup::Addresses(records) => Some(records.addrs6.to_vec()),
            Lookup::NoRecords => Some(Vec::new()),
            Lookup::Unknown => None,
        }
    }

    /// Looks `key` (already in table spelling) up in the networks visible to `client`.
    pub(crate) fn lookup(&self, network: &str, client: IpAddr, key: &str) -> Lookup<'_> {
        let mut exists = false;
        for net in self.scope(network, client) {
            if let Some(records) = net.names.get(key) {
                if records.has_addresses() {
                    return Lookup::Addresses(records);
                }
                exists = true;
            }
        }
        if !exists {
            if let Some(service) = key.strip_prefix("tasks.") {
                exists = self
                    .scope(network, client)
                    .any(|net| net.names.contains_key(service));
            }
        }
        if exists {
            return Lookup::NoRecords;
        }
        for net in self.scope(network, client) {
            let stem = net
                .suffix
                .as_deref()
                .and_then(|suffix| key.strip_suffix(suffix))
                .and_then(|stem| stem.strip_suffix('.'));
            if let Some(stem) = stem {
                match net.lookup(stem) {
                    Lookup::Unknown => {}
                    found => return found,
                }
            }
        }
        Lookup::Unknown
    }

    /// The name of `addr`'s PTR record as `client`, asking on `network`, may see it:
    /// `<name>.<network>` of a sandbox or task on one of the client's networks.
    pub fn ptr(&self, network: &str, client: IpAddr, addr: impl Into<IpAddr>) -> Option<&str> {
        let addr = addr.into();
        self.scope(network, client)
            .find_map(|net| net.ptr.get(&addr))
            .map(|name| &**name)
    }

    /// Whether a name the table does not own may be forwarded upstream for `client`:
    /// only if one of its networks (the arrival network for a client the table does not
    /// know) has a way out. Docker answers SERVFAIL on internal networks instead.
    pub fn may_forward(&self, network: &str, client: IpAddr) -> bool {
        self.scope(network, client).any(|net| !net.internal)
    }

    /// The upstream resolvers of `client`, when it has its own (a service's `--dns`).
    pub fn upstreams_for(&self, client: IpAddr) -> Option<Arc<[SocketAddr]>> {
        self.upstreams.get(&client.to_canonical()).cloned()
    }

    /// The networks a client may resolve in: the one the query arrived on first (if the
    /// client is attached to it), then the client's other networks. A client the table
    /// does not know gets the arrival network only.
    fn scope(&self, network: &str, client: IpAddr) -> impl Iterator<Item = &NetworkRecords> {
        let arrived = self.network_ids.get(network).copied();
        let (first, rest): (Option<usize>, &[usize]) =
            match self.clients.get(&client.to_canonical()) {
                Some(attached) => (arrived.filter(|id| attached.contains(id)), attached),
                None => (arrived, &[]),
            };
        let rest = rest.iter().copied().filter(move |&id| Some(id) != first);
        first
            .into_iter()
            .chain(rest)
            .filter_map(|id| self.networks.get(id))
    }
}

impl NetworkRecords {
    /// `key` looked up in this network alone.
    fn lookup(&self, key: &str) -> Lookup<'_> {
        match self.names.get(key) {
            Some(records) if records.has_addresses() => Lookup::Addresses(records),
            Some(_) => Lookup::NoRecords,
            None => match key.strip_prefix("tasks.") {
                Some(service) if self.names.contains_key(service) => Lookup::NoRecords,
                _ => Lookup::Unknown,
            },
        }
    }
}

/// One network as the builder collects it.
#[derive(Debug, Default)]
struct NetworkBuild {
    names: HashMap<Box<str>, Vec<Ipv4Addr>>,
    names6: HashMap<Box<str>, Vec<Ipv6Addr>>,
    suffix: Option<Box<str>>,
    ptr: HashMap<IpAddr, Box<str>>,
    internal: bool,
}

/// Builds a [`RecordTable`]; every name is validated on the way in.
#[derive(Debug)]
pub struct TableBuilder {
    ttl: u32,
    networks: Vec<NetworkBuild>,
    network_ids: HashMap<Box<str>, usize>,
    clients: HashMap<IpAddr, Vec<usize>>,
    upstreams: HashMap<IpAddr, Arc<[SocketAddr]>>,
}

impl Default for TableBuilder {
    fn default() -> Self {
        Self {
            ttl: DEFAULT_TTL,
            networks: Vec::new(),
            network_ids: HashMap::new(),
            clients: HashMap::new(),
            upstreams: HashMap::new(),
        }
    }
}

impl TableBuilder {
    /// Sets the TTL, in seconds, of the records answered from this table.
    pub fn ttl(&mut self, seconds: u32) -> &mut Self {
        self.ttl = seconds;
        self
    }

    /// Declares a network, so that it exists even while it has no names yet.
    pub fn network(&mut self, network: &str) -> Result<&mut Self, Error> {
        self.network_id(network)?;
        Ok(self)
    }

    /// Adds `addrs` to `name` on `network` (creating both as needed). Adding the same
    /// name twice merges the addresses; duplicates are dropped, order is kept. An empty
    /// `addrs` makes the name exist without records (answered with NODATA).
    pub fn add(
        &mut self,
        network: &str,
        name: &str,
        addrs: impl IntoIterator<Item = Ipv4Addr>,
    ) -> Result<&mut Self, Error> {
        let name = DnsName::new(name)?;
        let id = self.network_id(network)?;
        let stored = self.networks[id]
            .names
            .entry(name.into_boxed_str())
            .or_default();
        for addr in addrs {
            if !stored.contains(&addr) {
                stored.push(addr);
            }
        }
        Ok(self)
    }

    /// Adds IPv6 `addrs` to `name` on `network` (its AAAA records), creating both as
    /// needed, like [`TableBuilder::add`] does for IPv4.
    pub fn add6(
        &mut self,
        network: &str,
        name: &str,
        addrs: impl IntoIterator<Item = Ipv6Addr>,
    ) -> Result<&mut Self, Error> {
        let name = DnsName::new(name)?.into_boxed_str();
        let id = self.network_id(network)?;
        let net = &mut self.networks[id];
        net.names.entry(name.clone()).or_default();
        let stored = net.names6.entry(name).or_default();
        for addr in addrs {
            if !stored.contains(&addr) {
                stored.push(addr);
            }
        }
        Ok(self)
    }

    /// Records that the sandbox with address `client` is attached to `network`, so it
    /// may resolve that network's names whichever gateway it asks.
    pub fn attach(&mut self, client: IpAddr, network: &str) -> Result<&mut Self, Error> {
        let id = self.network_id(network)?;
        let attached = self.clients.entry(client.to_canonical()).or_default();
        if !attached.contains(&id) {
            attached.push(id);
        }
        Ok(self)
    }

    /// Marks `network` internal: names it does not own are not forwarded for clients
    /// that have no other network.
    pub fn internal(&mut self, network: &str) -> Result<&mut Self, Error> {
        let id = self.network_id(network)?;
        self.networks[id].internal = true;
        Ok(self)
    }

    /// Gives `addr` (IPv4 or IPv6) on `network` a PTR record naming `name` qualified by the network
    /// (`<name>.<network>`, as Docker answers). The first name given for an address
    /// stays. A network whose name is not a DNS name gives no PTR records.
    pub fn ptr(
        &mut self,
        network: &str,
        addr: impl Into<IpAddr>,
        name: &str,
    ) -> Result<&mut Self, Error> {
        let addr = addr.into();
        let name = DnsName::new(name)?;
        let id = self.network_id(network)?;
        let net = &mut self.networks[id];
        if let Some(suffix) = &net.suffix {
            let full = format!("{name}.{suffix}");
            if DnsName::new(&full).is_ok() {
                net.ptr.entry(addr).or_insert_with(|| full.into_boxed_str());
            }
        }
        Ok(self)
    }

    /// Sends what `client` asks that is not ours to `upstreams` instead of the
    /// resolver's own (a service's `--dns`).
    pub fn upstreams(&mut self, client: IpAddr, upstreams: Vec<SocketAddr>) -> &mut Self {
        self.upstreams
            .insert(client.to_canonical(), upstreams.into());
        self
    }

    /// Freezes the table.
    pub fn build(self) -> RecordTable {
        let networks = self
            .networks
            .into_iter()
            .map(|mut net| NetworkRecords {
                suffix: net.suffix,
                ptr: net.ptr,
                internal: net.internal,
                names: net
                    .names
                    .into_iter()
                    .map(|(name, addrs)| {
                        let addrs6 = net.names6.remove(&name).unwrap_or_default();
                        let records = NameRecords {
                            addrs: addrs.into_boxed_slice(),
                            addrs6: addrs6.into_boxed_slice(),
                            next: AtomicU32::new(0),
                        };
                        (name, records)
                    })
                    .collect(),
            })
            .collect();
        RecordTable {
            ttl: self.ttl,
            networks,
            network_ids: self.network_ids,
            clients: self
                .clients
                .into_iter()
                .map(|(client, ids)| (client, ids.into_boxed_slice()))
                .collect(),
            upstreams: self.upstreams,
        }
    }

    fn network_id(&mut self, network: &str) -> Result<usize, Error> {
        if let Some(&id) = self.network_ids.get(network) {
            return Ok(id);
        }
        let invalid = |reason| Error::InvalidNetwork {
            network: network.to_owned(),
            reason,
        };
        if network.is_empty() {
            return Err(invalid("empty"));
        }
        if network.len() > MAX_NETWORK_NAME_LEN {
            return Err(invalid("longer than 255 bytes"));
        }
        let id = self.networks.len();
        self.networks.push(NetworkBuild {
            suffix: DnsName::new(network).ok().map(DnsName::into_boxed_str),
            ..Default::default()
        });
        self.network_ids.insert(network.into(), id);
        Ok(id)
    }
}

/// One query's turn of a name's round robin: `first`, then `then`.
#[derive(Debug, Clone)]
pub(crate) struct Rotation<'a, A> {
    first: &'a [A],
    then: &'a [A],
}

impl<A: Copy> Iterator for Rotation<'_, A> {
    type Item = A;
    fn next(&mut self) -> Option<A> {
        if self.first.is_empty() {
            std::mem::swap(&mut self.first, &mut self.then);
        }
        let (addr, rest) = self.first.split_first()?;
        self.first = rest;
        Some(*addr)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let len = self.first.len() + self.then.len();
        (len, Some(len))
    }
}

impl<A: Copy> ExactSizeIterator for Rotation<'_, A> {}

#[cfg(test)]
mod tests;

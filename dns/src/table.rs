//! The record table: what the resolver knows, as the agent publishes it.
//!
//! ```text
//!  cluster state ──agent──▶ TableBuilder ──build()──▶ RecordTable ──Resolver::update──▶ ArcSwap
//!                                                                  (read per query, no lock)
//! ```
//! Per network: names → IPv4 addresses (service → VIP or task IPs, `tasks.<service>` →
//! task IPs, sandbox names and aliases → their IPs). Per client address: the networks
//! that sandbox is attached to, which is the set of networks it may resolve names in.
//! A client the table does not know sees only the network the query arrived on.
//!
//! A name may carry no address: it exists, so an `A` query for it gets NODATA instead
//! of being forwarded (a service whose tasks are all gone). `tasks.<x>` with no entry of
//! its own but a known `<x>` is treated the same way.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU32, Ordering};

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
}

#[derive(Debug, Default)]
struct NetworkRecords {
    names: HashMap<Box<str>, NameRecords>,
}

/// The addresses of one name, with the round-robin position shared by all queries.
#[derive(Debug)]
pub(crate) struct NameRecords {
    addrs: Box<[Ipv4Addr]>,
    next: AtomicU32,
}

impl NameRecords {
    /// This query's turn of the round robin: every address once, starting one further
    /// along than the previous query's answer.
    pub(crate) fn rotation(&self) -> Rotation<'_> {
        let len = self.addrs.len();
        let start = if len > 1 {
            self.next.fetch_add(1, Ordering::Relaxed) as usize % len
        } else {
            0
        };
        let (then, first) = self.addrs.split_at(start);
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

    /// Looks `key` (already in table spelling) up in the networks visible to `client`.
    pub(crate) fn lookup(&self, network: &str, client: IpAddr, key: &str) -> Lookup<'_> {
        let mut exists = false;
        for net in self.scope(network, client) {
            if let Some(records) = net.names.get(key) {
                if !records.addrs.is_empty() {
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
            Lookup::NoRecords
        } else {
            Lookup::Unknown
        }
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

/// Builds a [`RecordTable`]; every name is validated on the way in.
#[derive(Debug)]
pub struct TableBuilder {
    ttl: u32,
    networks: Vec<HashMap<Box<str>, Vec<Ipv4Addr>>>,
    network_ids: HashMap<Box<str>, usize>,
    clients: HashMap<IpAddr, Vec<usize>>,
}

impl Default for TableBuilder {
    fn default() -> Self {
        Self {
            ttl: DEFAULT_TTL,
            networks: Vec::new(),
            network_ids: HashMap::new(),
            clients: HashMap::new(),
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
        let stored = self.networks[id].entry(name.into_boxed_str()).or_default();
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

    /// Freezes the table.
    pub fn build(self) -> RecordTable {
        let networks = self
            .networks
            .into_iter()
            .map(|names| NetworkRecords {
                names: names
                    .into_iter()
                    .map(|(name, addrs)| {
                        let records = NameRecords {
                            addrs: addrs.into_boxed_slice(),
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
        self.networks.push(HashMap::new());
        self.network_ids.insert(network.into(), id);
        Ok(id)
    }
}

/// One query's turn of a name's round robin: `first`, then `then`.
#[derive(Debug, Clone)]
pub(crate) struct Rotation<'a> {
    first: &'a [Ipv4Addr],
    then: &'a [Ipv4Addr],
}

impl Iterator for Rotation<'_> {
    type Item = Ipv4Addr;
    fn next(&mut self) -> Option<Ipv4Addr> {
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

impl ExactSizeIterator for Rotation<'_> {}

#[cfg(test)]
mod tests;

//! The cluster's endpoints by ID, with the indexes `attach` looks them up by: who has
//! a name or a MAC on a network, and what a sandbox already has attached. Each is an
//! ordered set (persistent, as the map is), so a lookup costs O(log n) rather than a
//! scan of every endpoint of the cluster.
//!
//! ```text
//!  Endpoints ─ by ID:  OrdMap<id, Endpoint>          (what is serialized)
//!            └ index:  OrdSet<(hash of (kind, key), id)>   kind: name on a network,
//!                                                         MAC on a network, sandbox
//! ```
//! The index holds hashes, not the keys themselves (an endpoint costs three small
//! entries); a lookup checks every candidate against the endpoint, so a collision costs
//! a comparison, never a wrong answer. The index is derived: it is never serialized,
//! and is rebuilt when the map is read back.

use std::hash::{Hash, Hasher};
use std::ops::Deref;

use imbl::{OrdMap, OrdSet};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Endpoint;
use crate::ids::NodeId;

/// What an index entry says of an endpoint.
#[derive(Hash)]
enum Key<'a> {
    /// It has this name on this network.
    Name(&'a str, &'a str),
    /// It has this MAC on this network.
    Mac(&'a str, [u8; 6]),
    /// It is an interface of this sandbox of this node.
    Sandbox(NodeId, &'a str),
}

impl Key<'_> {
    fn hash(&self) -> u64 {
        // A fixed hasher: the same on every run (the index is local, but a fixed one
        // keeps a run repeatable).
        let mut h = std::hash::DefaultHasher::new();
        Hash::hash(self, &mut h);
        h.finish()
    }
}

/// The keys `e` is indexed under.
fn keys(e: &Endpoint) -> impl Iterator<Item = u64> + '_ {
    let name = e.name.as_deref().map(|n| Key::Name(&e.network, n));
    [
        name,
        Some(Key::Mac(&e.network, e.mac)),
        Some(Key::Sandbox(e.node, &e.sandbox)),
    ]
    .into_iter()
    .flatten()
    .map(|k| k.hash())
}

/// Endpoints by ID, indexed (see the module). Reads go to the map (it derefs to it);
/// changes go through [`insert`](Endpoints::insert), [`remove`](Endpoints::remove) and
/// [`update`](Endpoints::update), which keep the index.
#[derive(Debug, Clone, Default)]
pub struct Endpoints {
    by_id: OrdMap<String, Endpoint>,
    index: OrdSet<(u64, String)>,
}

impl Endpoints {
    fn add_keys(&mut self, e: &Endpoint) {
        for k in keys(e) {
            self.index.insert((k, e.id.clone()));
        }
    }

    fn remove_keys(&mut self, e: &Endpoint) {
        for k in keys(e) {
            self.index.remove(&(k, e.id.clone()));
        }
    }

    /// Adds (or replaces) endpoint `e` under its ID; returns the one it replaced.
    pub fn insert(&mut self, e: Endpoint) -> Option<Endpoint> {
        let old = self.remove(&e.id);
        self.add_keys(&e);
        self.by_id.insert(e.id.clone(), e);
        old
    }

    /// Removes endpoint `id`.
    pub fn remove(&mut self, id: &str) -> Option<Endpoint> {
        let old = self.by_id.remove(id)?;
        self.remove_keys(&old);
        Some(old)
    }

    /// Changes endpoint `id` with `f` (which must leave its ID as it is) and returns
    /// what `f` returned; `None` when there is no such endpoint.
    pub fn update<R>(&mut self, id: &str, f: impl FnOnce(&mut Endpoint) -> R) -> Option<R> {
        let mut e = self.by_id.get(id)?.clone();
        let out = f(&mut e);
        debug_assert_eq!(e.id, id, "an update keeps the endpoint's ID");
        self.insert(e);
        Some(out)
    }

    /// The endpoints indexed under `key`.
    fn under<'a>(&'a self, key: &Key<'_>) -> impl Iterator<Item = &'a Endpoint> + 'a {
        let h = key.hash();
        self.index
            .range((h, String::new())..)
            .take_while(move |(k, _)| *k == h)
            .filter_map(|(_, id)| self.by_id.get(id))
    }

    /// The endpoints named `name` on network `network` (its name).
    pub fn named<'a>(
        &'a self,
        network: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Endpoint> + 'a {
        self.under(&Key::Name(network, name))
            .filter(move |e| e.network == network && e.name.as_deref() == Some(name))
    }

    /// The endpoints with MAC `mac` on network `network` (its name).
    pub fn with_mac<'a>(
        &'a self,
        network: &'a str,
        mac: [u8; 6],
    ) -> impl Iterator<Item = &'a Endpoint> + 'a {
        self.under(&Key::Mac(network, mac))
            .filter(move |e| e.network == network && e.mac == mac)
    }

    /// The endpoints of sandbox `sandbox` of node `node`, on any network.
    pub fn of_sandbox<'a>(
        &'a self,
        node: NodeId,
        sandbox: &'a str,
    ) -> impl Iterator<Item = &'a Endpoint> + 'a {
        self.under(&Key::Sandbox(node, sandbox))
            .filter(move |e| e.node == node && e.sandbox == sandbox)
    }
}

impl Deref for Endpoints {
    type Target = OrdMap<String, Endpoint>;

    fn deref(&self) -> &Self::Target {
        &self.by_id
    }
}

impl PartialEq for Endpoints {
    /// The same endpoints (the index follows from them).
    fn eq(&self, other: &Self) -> bool {
        self.by_id == other.by_id
    }
}

impl Eq for Endpoints {}

impl FromIterator<Endpoint> for Endpoints {
    fn from_iter<I: IntoIterator<Item = Endpoint>>(iter: I) -> Self {
        let mut out = Endpoints::default();
        for e in iter {
            out.insert(e);
        }
        out
    }
}

impl Serialize for Endpoints {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.by_id.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Endpoints {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let by_id = OrdMap::<String, Endpoint>::deserialize(d)?;
        let mut out = Endpoints {
            by_id,
            index: OrdSet::new(),
        };
        for e in out.by_id.clone().values() {
            out.add_keys(e);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(id: &str, network: &str, name: Option<&str>, mac: u8, sandbox: &str) -> Endpoint {
        Endpoint {
            id: id.into(),
            network: network.into(),
            node: NodeId(1),
            sandbox: sandbox.into(),
            ifname: "eth0".into(),
            name: name.map(String::from),
            aliases: Vec::new(),
            ip: None,
            ip6: None,
            mac: [2, 0x42, 0, 0, 0, mac],
            service: None,
            task: None,
            ingress: false,
            created_at_ms: 0,
            handoff: false,
            runtime_id: None,
            ports: Vec::new(),
        }
    }

    fn ids<'a>(it: impl Iterator<Item = &'a Endpoint>) -> Vec<&'a str> {
        let mut v: Vec<&str> = it.map(|e| e.id.as_str()).collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn lookups_follow_inserts_updates_and_removals() {
        let mut eps: Endpoints = [
            ep("a", "front", Some("web"), 1, "/run/netns/s1"),
            ep("b", "back", Some("web"), 2, "/run/netns/s1"),
            ep("c", "front", None, 2, "/run/netns/s2"),
        ]
        .into_iter()
        .collect();
        assert_eq!(ids(eps.named("front", "web")), ["a"]);
        assert_eq!(ids(eps.named("back", "web")), ["b"]);
        assert!(eps.named("front", "db").next().is_none());
        assert_eq!(ids(eps.with_mac("front", [2, 0x42, 0, 0, 0, 2])), ["c"]);
        assert!(eps
            .with_mac("front", [2, 0x42, 0, 0, 0, 9])
            .next()
            .is_none());
        assert_eq!(ids(eps.of_sandbox(NodeId(1), "/run/netns/s1")), ["a", "b"]);
        assert!(eps.of_sandbox(NodeId(2), "/run/netns/s1").next().is_none());
        // A rename moves the name; the old one is free again.
        eps.update("a", |e| e.name = Some("api".into())).unwrap();
        assert!(eps.named("front", "web").next().is_none());
        assert_eq!(ids(eps.named("front", "api")), ["a"]);
        assert_eq!(eps.update("zz", |_| ()), None);
        // A replaced endpoint leaves no stale entry.
        eps.insert(ep("c", "front", Some("db"), 3, "/run/netns/s3"));
        assert!(eps
            .with_mac("front", [2, 0x42, 0, 0, 0, 2])
            .next()
            .is_none());
        assert!(eps.of_sandbox(NodeId(1), "/run/netns/s2").next().is_none());
        assert_eq!(ids(eps.named("front", "db")), ["c"]);
        assert_eq!(eps.remove("a").map(|e| e.id), Some("a".into()));
        assert!(eps.named("front", "api").next().is_none());
        assert_eq!(ids(eps.of_sandbox(NodeId(1), "/run/netns/s1")), ["b"]);
        assert_eq!(eps.remove("a"), None);
        assert_eq!(eps.len(), 2);
    }

    #[test]
    fn the_index_is_rebuilt_when_read_back_and_is_not_compared() {
        let eps: Endpoints = (0..50u8)
            .map(|i| {
                ep(
                    &format!("e{i}"),
                    "net",
                    Some(&format!("n{i}")),
                    i,
                    &format!("/s{i}"),
                )
            })
            .collect();
        let json = serde_json::to_string(&eps).unwrap();
        let plain: OrdMap<String, Endpoint> = serde_json::from_str(&json).unwrap();
        assert_eq!(plain, *eps, "serialized as the plain map");
        let back: Endpoints = serde_json::from_str(&json).unwrap();
        assert_eq!(back, eps);
        for i in 0..50u8 {
            assert_eq!(ids(back.named("net", &format!("n{i}"))), [format!("e{i}")]);
            assert_eq!(ids(back.with_mac("net", [2, 0x42, 0, 0, 0, i])).len(), 1);
        }
    }
}

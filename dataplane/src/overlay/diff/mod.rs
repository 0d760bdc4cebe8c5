//! Plan versus kernel: the smallest list of changes that makes the kernel match.
//!
//! Pure: unit-tested without root. Objects that are already right are never touched, so
//! a restarted agent changes nothing and established flows keep flowing. Removals come
//! first (so a recreated object never collides with its stale self), then networks,
//! then forwarding entries, then endpoints.
//!
//! ```text
//!  diff ─┬─ stale_links ─────────────────────────────▶ removals
//!        ├─ network_changes ─┬─ bridge_changes ──────▶ removals, creations
//!        │   (per network)   ├─ tap_changes (encrypted) ─▶ creations
//!        │                   ├─ vxlan_changes ───────▶ removals, creations
//!        │                   └─ forwarding_changes ──▶ forwarding (FDB, neighbours)
//!        └─ endpoint_changes ────────────────────────▶ removals, endpoints
//! ```

mod change;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use change::Change;

use super::observe::{LinkKind, Observed};
use super::plan::{EndpointPlan, NetworkPlan, NodePlan, PREFIX};

/// The changes found so far, by the phase they are carried out in.
#[derive(Default)]
struct Phases {
    removals: Vec<Change>,
    creations: Vec<Change>,
    forwarding: Vec<Change>,
    endpoints: Vec<Change>,
}

impl Phases {
    /// Every change, phase by phase.
    fn in_order(self) -> Vec<Change> {
        let mut out = self.removals;
        out.extend(self.creations);
        out.extend(self.forwarding);
        out.extend(self.endpoints);
        out
    }
}

/// The changes that make `observed` match `plan`.
pub fn diff(plan: &NodePlan, observed: &Observed) -> Vec<Change> {
    let mut out = Phases::default();
    stale_links(plan, observed, &mut out);
    for n in &plan.networks {
        network_changes(plan, n, observed, &mut out);
    }
    for e in &plan.endpoints {
        endpoint_changes(plan, e, observed, &mut out);
    }
    out.in_order()
}

/// The names of every link the plan wants.
fn wanted_links(plan: &NodePlan) -> BTreeSet<String> {
    let mut wanted = BTreeSet::new();
    for n in &plan.networks {
        wanted.insert(n.bridge());
        if n.encrypted {
            wanted.insert(n.tap());
        } else {
            wanted.insert(n.vxlan());
        }
    }
    for e in &plan.endpoints {
        if plan.networks.iter().any(|n| n.vni == e.vni) {
            wanted.insert(e.host_ifname());
            if e.handoff {
                // Waiting for the runtime to move it, or given back by it on Leave.
                wanted.insert(e.peer_ifname());
            }
        }
    }
    wanted
}

/// Deletes the links shoal made that the plan no longer wants.
fn stale_links(plan: &NodePlan, observed: &Observed, out: &mut Phases) {
    let wanted = wanted_links(plan);
    for (name, _) in observed.links.iter().filter(|(n, _)| n.starts_with(PREFIX)) {
        if !wanted.contains(name) {
            out.removals.push(Change::DeleteLink {
                name: name.clone(),
                why: "no longer planned".into(),
            });
        }
    }
}

/// One network: its bridge, then its TAP (encrypted) or its VXLAN device and the
/// forwarding entries on it.
fn network_changes(plan: &NodePlan, n: &NetworkPlan, observed: &Observed, out: &mut Phases) {
    bridge_changes(n, observed, out);
    if n.encrypted {
        tap_changes(n, observed, out);
        return;
    }
    let Some(local) = plan.local_ip else { return };
    let fresh = vxlan_changes(plan, n, local, observed, out);
    forwarding_changes(n, observed, fresh, out);
}

/// The bridge with the anycast gateway's MAC, the network's MTU, up, holding the
/// gateway address (and the node's own address, where it has one).
fn bridge_changes(n: &NetworkPlan, observed: &Observed, out: &mut Phases) {
    let br = n.bridge();
    // No IPv4 address at all on an IPv6-only network's bridge.
    let gateway = n.gateway.map(|g| (g.addr(), g.prefix_len()));
    // A bridge about to be made comes with its gateway address.
    let fresh: BTreeSet<(Ipv4Addr, u8)> = gateway.into_iter().collect();
    let have = match observed.links.get(&br) {
        Some(l) if l.kind == LinkKind::Bridge => {
            if l.mtu != n.mtu || l.mac != Some(n.gateway_mac) || !l.up {
                let mac = (l.mac != Some(n.gateway_mac)).then_some(n.gateway_mac);
                out.creations.push(Change::FixLink {
                    name: br.clone(),
                    mtu: n.mtu,
                    mac,
                });
            }
            &l.addrs
        }
        Some(_) => {
            out.removals.push(Change::DeleteLink {
                name: br.clone(),
                why: "not a bridge".into(),
            });
            out.creations
                .push(Change::CreateBridge { network: n.clone() });
            &fresh
        }
        None => {
            out.creations
                .push(Change::CreateBridge { network: n.clone() });
            &fresh
        }
    };
    let empty6 = BTreeSet::new();
    let have6 = match observed.links.get(&br) {
        Some(l) if l.kind == LinkKind::Bridge => &l.addrs6,
        _ => &empty6,
    };
    address6_changes(&br, n, have6, out);
    let mut want = fresh.clone();
    want.extend(n.node_addr.and_then(|a| a.ip).map(|ip| (ip, 32)));
    for &(ip, prefix) in have.difference(&want) {
        out.removals.push(Change::DelAddress {
            link: br.clone(),
            ip,
            prefix,
        });
    }
    for &(ip, prefix) in want.difference(have) {
        out.creations.push(Change::AddAddress {
            link: br.clone(),
            ip,
            prefix,
        });
    }
}

/// The bridge's IPv6 addresses: the IPv6 anycast gateway of a dual-stack network and
/// the node's own IPv6 address on it (a /128, like the IPv4 one), nothing else.
fn address6_changes(br: &str, n: &NetworkPlan, have: &BTreeSet<(Ipv6Addr, u8)>, out: &mut Phases) {
    let mut want: BTreeSet<(Ipv6Addr, u8)> = n
        .gateway6
        .map(|g| (g.addr(), g.prefix_len()))
        .into_iter()
        .collect();
    if n.gateway6.is_some() {
        want.extend(n.node_addr.and_then(|a| a.ip6).map(|ip| (ip, 128)));
    }
    for &(ip, prefix) in have.difference(&want) {
        let link = br.to_string();
        out.removals.push(Change::DelAddress6 { link, ip, prefix });
    }
    for &(ip, prefix) in want.difference(have) {
        let link = br.to_string();
        out.creations.push(Change::AddAddress6 { link, ip, prefix });
    }
}

/// An encrypted network's TAP is made and owned by the encrypted data path; here it
/// is only plugged into the bridge once it exists.
fn tap_changes(n: &NetworkPlan, observed: &Observed, out: &mut Phases) {
    let br = n.bridge();
    if let Some(l) = observed.links.get(&n.tap()) {
        if l.master.as_deref() != Some(br.as_str()) || l.mtu != n.mtu || !l.up {
            out.creations.push(Change::PlugTap {
                tap: n.tap(),
                bridge: br,
                mtu: n.mtu,
            });
        }
    }
}

/// The VXLAN device: no learning, proxy ARP, in the bridge, with the network's MTU.
/// One that is wrong is made again. Returns whether it is (re)made, so that it starts
/// without forwarding entries.
fn vxlan_changes(
    plan: &NodePlan,
    n: &NetworkPlan,
    local: IpAddr,
    observed: &Observed,
    out: &mut Phases,
) -> bool {
    let vx = n.vxlan();
    let wanted_kind = LinkKind::Vxlan {
        vni: n.vni,
        port: plan.vxlan_port,
        local: Some(local),
        learning: false,
        proxy: true,
    };
    let why = match observed.links.get(&vx) {
        None => None,
        Some(l) if l.kind != wanted_kind => Some("wrong VXLAN settings"),
        Some(l) if l.mtu != n.mtu || !l.up || l.master.as_deref() != Some(n.bridge().as_str()) => {
            Some("wrong MTU, bridge or state")
        }
        Some(_) => return false,
    };
    if let Some(why) = why {
        out.removals.push(Change::DeleteLink {
            name: vx,
            why: why.into(),
        });
    }
    out.creations.push(Change::CreateVxlan {
        network: n.clone(),
        local,
        port: plan.vxlan_port,
    });
    true
}

/// Static FDB entries (remote MAC → its node) and neighbour entries (remote IP → MAC)
/// on the VXLAN device, one pair per remote endpoint. A `fresh` device has none yet.
fn forwarding_changes(n: &NetworkPlan, observed: &Observed, fresh: bool, out: &mut Phases) {
    let vx = n.vxlan();
    let empty_fdb = BTreeSet::new();
    let empty_neigh = BTreeSet::new();
    let (have_fdb, have_neigh) = if fresh {
        (&empty_fdb, &empty_neigh)
    } else {
        (
            observed.fdb.get(&vx).unwrap_or(&empty_fdb),
            observed.neigh.get(&vx).unwrap_or(&empty_neigh),
        )
    };
    let want_fdb: BTreeSet<([u8; 6], IpAddr)> =
        n.remotes.iter().map(|r| (r.mac, r.node_ip)).collect();
    let want_neigh: BTreeSet<(Ipv4Addr, [u8; 6])> = n
        .remotes
        .iter()
        .filter_map(|r| Some((r.ip?, r.mac)))
        .collect();
    for &(mac, dst) in have_fdb.difference(&want_fdb) {
        let vxlan = vx.clone();
        out.forwarding.push(Change::DelFdb { vxlan, mac, dst });
    }
    for &(ip, mac) in have_neigh.difference(&want_neigh) {
        let vxlan = vx.clone();
        out.forwarding.push(Change::DelNeigh { vxlan, ip, mac });
    }
    for &(mac, dst) in want_fdb.difference(have_fdb) {
        let vxlan = vx.clone();
        out.forwarding.push(Change::AddFdb { vxlan, mac, dst });
    }
    for &(ip, mac) in want_neigh.difference(have_neigh) {
        let vxlan = vx.clone();
        out.forwarding.push(Change::AddNeigh { vxlan, ip, mac });
    }
    let empty_neigh6 = BTreeSet::new();
    let have_neigh6 = match fresh {
        true => &empty_neigh6,
        false => observed.neigh6.get(&vx).unwrap_or(&empty_neigh6),
    };
    neigh6_changes(n, &vx, have_neigh6, out);
}

/// Proxy-NDP entries (remote IPv6 address → MAC) on the VXLAN device, one per remote
/// endpoint with an IPv6 address: the device answers neighbour solicitations for them
/// itself, so none crosses to other nodes.
fn neigh6_changes(
    n: &NetworkPlan,
    vx: &str,
    have: &BTreeSet<(Ipv6Addr, [u8; 6])>,
    out: &mut Phases,
) {
    let want: BTreeSet<(Ipv6Addr, [u8; 6])> = n
        .remotes
        .iter()
        .filter_map(|r| Some((r.ip6?, r.mac)))
        .collect();
    for &(ip, _) in have.difference(&want) {
        let vxlan = vx.to_string();
        out.forwarding.push(Change::DelNeigh6 { vxlan, ip });
    }
    for &(ip, mac) in want.difference(have) {
        let vxlan = vx.to_string();
        out.forwarding.push(Change::AddNeigh6 { vxlan, ip, mac });
    }
}

/// One local endpoint: its host-side veth, in the network's bridge, with its MTU, up.
/// One that is wrong is made again (removed first when it is not even a veth).
fn endpoint_changes(plan: &NodePlan, e: &EndpointPlan, observed: &Observed, out: &mut Phases) {
    let Some(n) = plan.networks.iter().find(|n| n.vni == e.vni) else {
        return;
    };
    let bridge = n.bridge();
    let recreate = match observed.links.get(&e.host_ifname()) {
        None => true,
        Some(l) if l.kind != LinkKind::Veth => {
            out.removals.push(Change::DeleteLink {
                name: e.host_ifname(),
                why: "not a veth".into(),
            });
            true
        }
        Some(l) if l.master.as_deref() != Some(bridge.as_str()) || l.mtu != e.mtu || !l.up => {
            out.endpoints.push(Change::DeleteLink {
                name: e.host_ifname(),
                why: "attached to the wrong bridge or with the wrong MTU".into(),
            });
            true
        }
        Some(_) => false,
    };
    if recreate {
        out.endpoints.push(Change::AddEndpoint {
            endpoint: e.clone(),
            bridge,
        });
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests6;

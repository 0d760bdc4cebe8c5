//! Plan versus kernel: the smallest list of changes that makes the kernel match.
//!
//! Pure: unit-tested without root. Objects that are already right are never touched, so
//! a restarted agent changes nothing and established flows keep flowing. Removals come
//! first (so a recreated object never collides with its stale self), then networks,
//! then forwarding entries, then endpoints.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;

use super::observe::{LinkKind, Observed};
use super::plan::{EndpointPlan, NetworkPlan, NodePlan, PREFIX};

/// One change to the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Delete a link shoal made that is no longer wanted, or is wrong beyond repair.
    DeleteLink {
        /// The link.
        name: String,
        /// Why.
        why: String,
    },
    /// Create a network's bridge with the anycast gateway.
    CreateBridge {
        /// The network.
        network: NetworkPlan,
    },
    /// Bring a link to its planned MTU, MAC and up state.
    FixLink {
        /// The link.
        name: String,
        /// Wanted MTU.
        mtu: u32,
        /// Wanted MAC, if it is wrong.
        mac: Option<[u8; 6]>,
    },
    /// Add an address to a link.
    AddAddress {
        /// The link.
        link: String,
        /// The address.
        ip: Ipv4Addr,
        /// Its prefix length.
        prefix: u8,
    },
    /// Remove an address from a link.
    DelAddress {
        /// The link.
        link: String,
        /// The address.
        ip: Ipv4Addr,
        /// Its prefix length.
        prefix: u8,
    },
    /// Create a network's VXLAN device in its bridge.
    CreateVxlan {
        /// The network.
        network: NetworkPlan,
        /// The local tunnel endpoint.
        local: Ipv4Addr,
        /// The UDP port.
        port: u16,
    },
    /// Point a MAC at a remote tunnel endpoint.
    AddFdb {
        /// The VXLAN device.
        vxlan: String,
        /// The remote endpoint's MAC.
        mac: [u8; 6],
        /// Its node's underlay address.
        dst: Ipv4Addr,
    },
    /// Remove such an entry.
    DelFdb {
        /// The VXLAN device.
        vxlan: String,
        /// The MAC.
        mac: [u8; 6],
        /// The tunnel endpoint.
        dst: Ipv4Addr,
    },
    /// Answer ARP for a remote endpoint.
    AddNeigh {
        /// The VXLAN device.
        vxlan: String,
        /// The remote endpoint's address.
        ip: Ipv4Addr,
        /// Its MAC.
        mac: [u8; 6],
    },
    /// Remove such an entry.
    DelNeigh {
        /// The VXLAN device.
        vxlan: String,
        /// The address.
        ip: Ipv4Addr,
        /// The MAC.
        mac: [u8; 6],
    },
    /// Put an encrypted network's TAP into its bridge, with the network's MTU, up.
    PlugTap {
        /// The TAP.
        tap: String,
        /// The bridge.
        bridge: String,
        /// The MTU.
        mtu: u32,
    },
    /// Create an endpoint's veth pair and configure the sandbox side.
    AddEndpoint {
        /// The endpoint.
        endpoint: EndpointPlan,
        /// The bridge it plugs into.
        bridge: String,
    },
}

fn mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::DeleteLink { name, why } => write!(f, "delete {name} ({why})"),
            Change::CreateBridge { network } => write!(
                f,
                "create bridge {} for {} (gateway {}/{}, mtu {})",
                network.bridge(),
                network.name,
                network.gateway,
                network.subnet.prefix_len(),
                network.mtu
            ),
            Change::FixLink { name, mtu, .. } => write!(f, "fix {name} (mtu {mtu}, mac, up)"),
            Change::AddAddress { link, ip, prefix } => write!(f, "add {ip}/{prefix} to {link}"),
            Change::DelAddress { link, ip, prefix } => {
                write!(f, "remove {ip}/{prefix} from {link}")
            }
            Change::CreateVxlan {
                network,
                local,
                port,
            } => write!(
                f,
                "create vxlan {} (vni {}, {local}:{port}, no learning, proxy ARP)",
                network.vxlan(),
                network.vni
            ),
            Change::AddFdb { vxlan, mac: m, dst } => {
                write!(f, "fdb {} -> {dst} on {vxlan}", mac(m))
            }
            Change::DelFdb { vxlan, mac: m, dst } => {
                write!(f, "remove fdb {} -> {dst} on {vxlan}", mac(m))
            }
            Change::AddNeigh { vxlan, ip, mac: m } => {
                write!(f, "neigh {ip} is {} on {vxlan}", mac(m))
            }
            Change::DelNeigh { vxlan, ip, mac: m } => {
                write!(f, "remove neigh {ip} ({}) on {vxlan}", mac(m))
            }
            Change::PlugTap { tap, bridge, mtu } => {
                write!(f, "plug {tap} into {bridge} (mtu {mtu})")
            }
            Change::AddEndpoint { endpoint, bridge } => write!(
                f,
                "attach {} as {} {}/{} in {} to {bridge}",
                endpoint.id,
                endpoint.ifname,
                endpoint.ip,
                endpoint.prefix,
                endpoint.sandbox.display()
            ),
        }
    }
}

/// The changes that make `observed` match `plan`.
pub fn diff(plan: &NodePlan, observed: &Observed) -> Vec<Change> {
    let mut removals = Vec::new();
    let mut creations = Vec::new();
    let mut forwarding = Vec::new();
    let mut endpoints = Vec::new();

    let mut wanted: BTreeSet<String> = BTreeSet::new();
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
    for (name, _) in observed.links.iter().filter(|(n, _)| n.starts_with(PREFIX)) {
        if !wanted.contains(name) {
            removals.push(Change::DeleteLink {
                name: name.clone(),
                why: "no longer planned".into(),
            });
        }
    }

    for n in &plan.networks {
        network_changes(
            plan,
            n,
            observed,
            &mut removals,
            &mut creations,
            &mut forwarding,
        );
    }

    for e in &plan.endpoints {
        let Some(n) = plan.networks.iter().find(|n| n.vni == e.vni) else {
            continue;
        };
        let bridge = n.bridge();
        let recreate = match observed.links.get(&e.host_ifname()) {
            None => true,
            Some(l) if l.kind != LinkKind::Veth => {
                removals.push(Change::DeleteLink {
                    name: e.host_ifname(),
                    why: "not a veth".into(),
                });
                true
            }
            Some(l) => {
                if l.master.as_deref() != Some(bridge.as_str()) || l.mtu != e.mtu || !l.up {
                    endpoints.push(Change::DeleteLink {
                        name: e.host_ifname(),
                        why: "attached to the wrong bridge or with the wrong MTU".into(),
                    });
                    true
                } else {
                    false
                }
            }
        };
        if recreate {
            endpoints.push(Change::AddEndpoint {
                endpoint: e.clone(),
                bridge,
            });
        }
    }

    let mut out = removals;
    out.extend(creations);
    out.extend(forwarding);
    out.extend(endpoints);
    out
}

fn network_changes(
    plan: &NodePlan,
    n: &NetworkPlan,
    observed: &Observed,
    removals: &mut Vec<Change>,
    creations: &mut Vec<Change>,
    forwarding: &mut Vec<Change>,
) {
    let br = n.bridge();
    let gateway = (n.gateway, n.subnet.prefix_len());
    let mut addrs = BTreeSet::from([gateway]);
    addrs.extend(n.node_addr.map(|a| (a.ip, 32)));
    // A bridge about to be made comes with its gateway address.
    let fresh = BTreeSet::from([gateway]);
    let have = match observed.links.get(&br) {
        Some(l) if l.kind == LinkKind::Bridge => {
            if l.mtu != n.mtu || l.mac != Some(n.gateway_mac) || !l.up {
                let mac = (l.mac != Some(n.gateway_mac)).then_some(n.gateway_mac);
                creations.push(Change::FixLink {
                    name: br.clone(),
                    mtu: n.mtu,
                    mac,
                });
            }
            &l.addrs
        }
        Some(_) => {
            removals.push(Change::DeleteLink {
                name: br.clone(),
                why: "not a bridge".into(),
            });
            creations.push(Change::CreateBridge { network: n.clone() });
            &fresh
        }
        None => {
            creations.push(Change::CreateBridge { network: n.clone() });
            &fresh
        }
    };
    for a in have.difference(&addrs) {
        removals.push(Change::DelAddress {
            link: br.clone(),
            ip: a.0,
            prefix: a.1,
        });
    }
    for a in addrs.difference(have) {
        creations.push(Change::AddAddress {
            link: br.clone(),
            ip: a.0,
            prefix: a.1,
        });
    }

    if n.encrypted {
        // The TAP is made and owned by the encrypted data path; here it is only plugged
        // into the bridge once it exists.
        if let Some(l) = observed.links.get(&n.tap()) {
            if l.master.as_deref() != Some(br.as_str()) || l.mtu != n.mtu || !l.up {
                creations.push(Change::PlugTap {
                    tap: n.tap(),
                    bridge: br.clone(),
                    mtu: n.mtu,
                });
            }
        }
        return;
    }
    let vx = n.vxlan();
    let Some(local) = plan.local_ip else { return };
    let right = |k: &LinkKind| {
        *k == LinkKind::Vxlan {
            vni: n.vni,
            port: plan.vxlan_port,
            local: Some(local),
            learning: false,
            proxy: true,
        }
    };
    let fresh = match observed.links.get(&vx) {
        Some(l) if right(&l.kind) => {
            if l.mtu != n.mtu || !l.up || l.master.as_deref() != Some(br.as_str()) {
                removals.push(Change::DeleteLink {
                    name: vx.clone(),
                    why: "wrong MTU, bridge or state".into(),
                });
                creations.push(Change::CreateVxlan {
                    network: n.clone(),
                    local,
                    port: plan.vxlan_port,
                });
                true
            } else {
                false
            }
        }
        Some(_) => {
            removals.push(Change::DeleteLink {
                name: vx.clone(),
                why: "wrong VXLAN settings".into(),
            });
            creations.push(Change::CreateVxlan {
                network: n.clone(),
                local,
                port: plan.vxlan_port,
            });
            true
        }
        None => {
            creations.push(Change::CreateVxlan {
                network: n.clone(),
                local,
                port: plan.vxlan_port,
            });
            true
        }
    };
    let empty = BTreeSet::new();
    let have_fdb = if fresh {
        &empty
    } else {
        observed.fdb.get(&vx).unwrap_or(&empty)
    };
    let empty_n = BTreeSet::new();
    let have_neigh = if fresh {
        &empty_n
    } else {
        observed.neigh.get(&vx).unwrap_or(&empty_n)
    };
    let want_fdb: BTreeSet<([u8; 6], Ipv4Addr)> =
        n.remotes.iter().map(|r| (r.mac, r.node_ip)).collect();
    let want_neigh: BTreeSet<(Ipv4Addr, [u8; 6])> =
        n.remotes.iter().map(|r| (r.ip, r.mac)).collect();
    for (m, dst) in have_fdb.difference(&want_fdb) {
        forwarding.push(Change::DelFdb {
            vxlan: vx.clone(),
            mac: *m,
            dst: *dst,
        });
    }
    for (ip, m) in have_neigh.difference(&want_neigh) {
        forwarding.push(Change::DelNeigh {
            vxlan: vx.clone(),
            ip: *ip,
            mac: *m,
        });
    }
    for (m, dst) in want_fdb.difference(have_fdb) {
        forwarding.push(Change::AddFdb {
            vxlan: vx.clone(),
            mac: *m,
            dst: *dst,
        });
    }
    for (ip, m) in want_neigh.difference(have_neigh) {
        forwarding.push(Change::AddNeigh {
            vxlan: vx.clone(),
            ip: *ip,
            mac: *m,
        });
    }
}

#[cfg(test)]
mod tests;

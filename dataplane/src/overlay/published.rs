//! The routing mesh's published ports, one implementation for both address families:
//! IPv4 in `ip shoal` (with the rest of [`ruleset`](super::ruleset)), IPv6 in a table
//! of its own, `ip6 shoal` ([`ruleset_ip6`]), for services on dual-stack and IPv6-only
//! networks.
//!
//! ```text
//!  prerouting publish ─┬─ daddr == node's underlay address ─▶ pub-P-PORT ─ mark, numgen ─▶ dnat task
//!  output publish-local┴─ fib daddr type local ────────────▶ pub-P-PORT
//!  postrouting: mesh mark ─▶ snat to the node's address on the task's network
//! ```
//! A published port answers on every local address of the node, IPv4 and IPv6, as
//! Docker's does with ip6tables on: an IPv6 connection goes to a task's IPv6 address.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::plan::{NetworkPlan, NodePlan, MESH_MARK, MESH_PRESERVE_MARK, NFT_TABLE};
use crate::nat_lb::Published as Port;
use crate::nft::{
    exprs, BaseChain, Chain, ChainType, CmpOp, CtTimeoutPolicy, Family, Hook, Map, Rule, Table,
    Verdict,
};

/// An address family of the mesh's tables: where its addresses come from in a plan.
pub(super) trait MeshFamily {
    /// The table's family.
    const FAMILY: Family;
    /// The loopback network: the node's own connections to it are left to the agent's
    /// loopback listener (NAT cannot take a loopback source off the host).
    fn loopback() -> (IpAddr, u8);
    /// A network's gateway in this family, if it has one.
    fn gateway(n: &NetworkPlan) -> Option<IpAddr>;
    /// A network's subnet in this family.
    fn subnet(n: &NetworkPlan) -> Option<(IpAddr, u8)>;
    /// The node's own address on a network, in this family.
    fn node_addr(n: &NetworkPlan) -> Option<IpAddr>;
    /// A port's tasks in this family (`None`: the port is not published in it).
    fn backends(p: &Port) -> Option<Vec<(IpAddr, u16)>>;
}

/// IPv4: `ip shoal`.
pub(super) struct V4;
/// IPv6: `ip6 shoal`.
pub(super) struct V6;

impl MeshFamily for V4 {
    const FAMILY: Family = Family::Ip;
    fn loopback() -> (IpAddr, u8) {
        (Ipv4Addr::new(127, 0, 0, 0).into(), 8)
    }
    fn gateway(n: &NetworkPlan) -> Option<IpAddr> {
        n.gateway.map(|g| g.addr().into())
    }
    fn subnet(n: &NetworkPlan) -> Option<(IpAddr, u8)> {
        n.subnet().map(|s| (s.network().into(), s.prefix_len()))
    }
    fn node_addr(n: &NetworkPlan) -> Option<IpAddr> {
        n.node_addr.and_then(|a| a.ip).map(IpAddr::V4)
    }
    fn backends(p: &Port) -> Option<Vec<(IpAddr, u16)>> {
        let b = p.backends.as_ref()?;
        Some(b.iter().map(|(ip, t)| ((*ip).into(), *t)).collect())
    }
}

impl MeshFamily for V6 {
    const FAMILY: Family = Family::Ip6;
    fn loopback() -> (IpAddr, u8) {
        (Ipv6Addr::LOCALHOST.into(), 128)
    }
    fn gateway(n: &NetworkPlan) -> Option<IpAddr> {
        n.gateway6.map(|g| g.addr().into())
    }
    fn subnet(n: &NetworkPlan) -> Option<(IpAddr, u8)> {
        n.subnet6().map(|s| (s.network().into(), s.prefix_len()))
    }
    fn node_addr(n: &NetworkPlan) -> Option<IpAddr> {
        n.node_addr.and_then(|a| a.ip6).map(IpAddr::V6)
    }
    fn backends(p: &Port) -> Option<Vec<(IpAddr, u16)>> {
        let b = p.backends6.as_ref()?;
        Some(b.iter().map(|(ip, t)| ((*ip).into(), *t)).collect())
    }
}

/// What the routing mesh adds to a node's table of one family.
pub(super) struct Published {
    /// Rules of `publish` (prerouting).
    pub arriving: Vec<Rule>,
    /// Rules of `publish-local` (output).
    pub local: Vec<Rule>,
    /// One chain per published port.
    pub chains: Vec<Chain>,
    /// The ports' maps of tasks.
    pub maps: Vec<Map>,
    /// The timeout policies of published connections (an unanswered SYN's, and with
    /// `--lb-idle-timeout` the idle ones) and the rules attaching them.
    pub idle: (Vec<CtTimeoutPolicy>, Vec<Rule>),
    /// How many ports are published in this family.
    pub ports: usize,
}

/// The routing mesh's chains in family `F`. A published port answers on every address
/// of the node, as Docker's does (`-m addrtype --dst-type LOCAL`): arriving connections
/// in `publish` (prerouting), the node's own in `publish-local` (output; loopback is
/// left to the agent's loopback listener). Both jump to one chain per port that marks
/// mesh connections and spreads them over the tasks. DNS on a network's gateway (port
/// 53) is never taken, whatever is published.
pub(super) fn published_chains<F: MeshFamily>(plan: &NodePlan) -> Published {
    let mut keep_dns = Vec::new();
    for n in &plan.networks {
        let Some(gateway) = F::gateway(n) else {
            continue;
        };
        let mut dns = exprs::addr_in(true, CmpOp::Eq, gateway, 128);
        dns.extend(exprs::dport(53));
        dns.extend(exprs::verdict(Verdict::Accept));
        keep_dns.push(Rule {
            exprs: dns,
            comment: format!("{}: DNS on the gateway stays DNS", n.name),
        });
    }
    let mut ports: BTreeMap<(u8, u16), Merged<'_>> = BTreeMap::new();
    for p in &plan.published {
        let Some(backends) = F::backends(p) else {
            continue;
        };
        let entry = ports.entry((p.protocol, p.port)).or_default();
        entry.services.push(&p.service);
        entry
            .backends
            .extend(backends.into_iter().map(|(ip, port)| (ip, Some(port))));
        entry.mesh |= p.mesh;
        entry.preserve |= p.mesh && !p.source_nat;
    }
    let mut out = Published {
        arriving: keep_dns.clone(),
        local: keep_dns,
        chains: Vec::new(),
        maps: Vec::new(),
        idle: (Vec::new(), Vec::new()),
        ports: ports.len(),
    };
    for ((protocol, port), merged) in ports {
        one_port::<F>(plan, (protocol, port), &merged, &mut out);
    }
    out
}

/// The chain of a published port (IP protocol number, port), and the map it draws its
/// tasks from when it has more than one.
pub fn port_chain(protocol: u8, port: u16) -> String {
    format!("pub-{protocol}-{port}")
}

/// What is published on one port, over the services that publish it.
#[derive(Default)]
struct Merged<'p> {
    services: Vec<&'p str>,
    backends: Vec<(IpAddr, Option<u16>)>,
    mesh: bool,
    preserve: bool,
}

/// The rules and the chain of one published port.
fn one_port<F: MeshFamily>(
    plan: &NodePlan,
    (protocol, port): (u8, u16),
    merged: &Merged<'_>,
    out: &mut Published,
) {
    let name = port_chain(protocol, port);
    let mut matching = exprs::l4proto(protocol);
    matching.extend(exprs::dport(port));
    let comment = format!("{}: published {port}", merged.services.join(","));
    // Most connections come to the node's underlay address: matched first without a
    // route lookup; any other local address after one.
    if let Some(local) = plan.local_ip.filter(|ip| F::FAMILY == family_of(*ip)) {
        let mut fast = exprs::addr_in(true, CmpOp::Eq, local, 128);
        fast.extend(matching.iter().cloned());
        fast.extend(exprs::verdict(Verdict::Jump(name.clone())));
        out.arriving.push(Rule {
            exprs: fast,
            comment: comment.clone(),
        });
    }
    matching.extend(exprs::daddr_local());
    if protocol == 6 || plan.lb_idle_timeout.is_some() {
        let (policies, rules) =
            crate::nat_lb::published_timeouts(plan.lb_idle_timeout, &matching, &comment);
        for p in policies {
            if !out.idle.0.contains(&p) {
                out.idle.0.push(p);
            }
        }
        out.idle.1.extend(rules);
    }
    let mut jump = matching;
    jump.extend(exprs::verdict(Verdict::Jump(name.clone())));
    out.arriving.push(Rule {
        exprs: jump.clone(),
        comment: comment.clone(),
    });
    let (lo, lo_prefix) = F::loopback();
    let mut own = exprs::addr_in(true, CmpOp::Neq, lo, lo_prefix);
    own.extend(jump);
    out.local.push(Rule {
        exprs: own,
        comment: comment.clone(),
    });
    // A port with no task (here, for host mode) keeps its chain, empty: nothing is
    // translated and the connection is refused.
    let mark = if merged.preserve {
        exprs::set_mark_bits(MESH_PRESERVE_MARK)
    } else if merged.mesh {
        exprs::set_mark_bits(MESH_MARK)
    } else {
        Vec::new()
    };
    let mut rules = Vec::new();
    if let Some((rule, map)) = crate::nat_lb::spread(&mark, &merged.backends, &name, &comment) {
        rules.push(rule);
        out.maps.extend(map);
    }
    out.chains.push(Chain {
        name,
        base: None,
        rules,
    });
}

fn family_of(ip: IpAddr) -> Family {
    match ip {
        IpAddr::V4(_) => Family::Ip,
        IpAddr::V6(_) => Family::Ip6,
    }
}

/// The postrouting rules of mesh connections in family `F`: marked ones leave
/// source-NATed to the node's address on the task's network (`src=nat`), and so do
/// those that keep the client's address but whose client is on that network itself
/// (the hairpin).
pub(super) fn mesh_snat<F: MeshFamily>(plan: &NodePlan) -> Vec<Rule> {
    let mut mesh = Vec::new();
    for n in &plan.networks {
        let (Some(addr), Some((subnet, prefix))) = (F::node_addr(n), F::subnet(n)) else {
            continue;
        };
        let mut snat = exprs::mark_bits(MESH_MARK);
        snat.extend(exprs::oifname(CmpOp::Eq, &n.bridge()));
        snat.extend(exprs::snat(addr));
        mesh.push(Rule {
            exprs: snat,
            comment: format!("{}: routing mesh, answers come back to this node", n.name),
        });
        let mut hairpin = exprs::mark_bits(MESH_PRESERVE_MARK);
        hairpin.extend(exprs::oifname(CmpOp::Eq, &n.bridge()));
        hairpin.extend(exprs::addr_in(false, CmpOp::Eq, subnet, prefix));
        hairpin.extend(exprs::snat(addr));
        mesh.push(Rule {
            exprs: hairpin,
            comment: format!("{}: routing mesh, clients on the network itself", n.name),
        });
    }
    mesh
}

/// A base chain of the node's table.
pub(super) fn base_chain(
    name: &str,
    hook: Hook,
    kind: ChainType,
    priority: i32,
    rules: Vec<Rule>,
) -> Chain {
    Chain {
        name: name.into(),
        base: Some(BaseChain {
            hook,
            kind,
            priority,
            accept: true,
        }),
        rules,
    }
}

/// The chains every family's table has for the mesh, in order: raw (`untracked-in`,
/// `untracked-out`, with `raw` first in each), `publish`, `publish-local`, the ports'.
pub(super) fn mesh_chains(
    raw: &[Rule],
    published: Published,
) -> (Vec<Chain>, Vec<Map>, Vec<CtTimeoutPolicy>) {
    let Published {
        arriving,
        local,
        chains: ports,
        maps,
        idle: (timeouts, idle_rules),
        ..
    } = published;
    let raw_chain = |name: &str, hook| {
        let mut rules = raw.to_vec();
        rules.extend(idle_rules.iter().cloned());
        crate::nat_lb::raw_chain(name, hook, rules)
    };
    let mut chains = vec![
        raw_chain("untracked-in", Hook::Prerouting),
        raw_chain("untracked-out", Hook::Output),
        base_chain("publish", Hook::Prerouting, ChainType::Nat, -100, arriving),
        base_chain("publish-local", Hook::Output, ChainType::Nat, -100, local),
    ];
    chains.extend(ports);
    (chains, maps, timeouts)
}

/// The node's `ip6 shoal` table: the IPv6 side of the ports published by services on
/// dual-stack and IPv6-only networks (no rules when there is none, and the table is
/// removed).
pub fn ruleset_ip6(plan: &NodePlan) -> Table {
    let published = published_chains::<V6>(plan);
    if published.ports == 0 {
        return Table::with_chains(NFT_TABLE, Family::Ip6, Vec::new());
    }
    let (mut chains, maps, timeouts) = mesh_chains(&[], published);
    chains.push(base_chain(
        "postrouting",
        Hook::Postrouting,
        ChainType::Nat,
        100,
        mesh_snat::<V6>(plan),
    ));
    Table {
        name: NFT_TABLE.into(),
        family: Family::Ip6,
        chains,
        maps,
        timeouts,
    }
}

/// Whether `plan` publishes any port over IPv6 (the node must then forward IPv6 from
/// the underlay to the bridges of its networks with IPv6).
pub fn publishes_ipv6(plan: &NodePlan) -> bool {
    plan.published.iter().any(|p| p.backends6.is_some())
}

#[cfg(test)]
mod tests;

//! The nftables tables a [`NodePlan`] needs: the node's (egress, isolation, the
//! routing mesh's published ports, DNS interception) and the bridge family's.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::plan::{NodePlan, MESH_MARK, MESH_PRESERVE_MARK, NFT_TABLE, PREFIX};
use crate::nft::{
    exprs, BaseChain, Chain, ChainType, CmpOp, CtTimeoutPolicy, Expr, Family, Hook, Map,
    PayloadBase, Rule, Table, Verdict,
};

/// The nftables rules the plan needs: masquerade for egress, isolation between
/// networks, and no way out of (or into) internal networks.
pub fn ruleset(plan: &NodePlan) -> Table {
    let mut forward = Vec::new();
    let mut input = Vec::new();
    let mut post = Vec::new();
    for n in &plan.networks {
        let br = n.bridge();
        if n.encrypted {
            input.push(Rule {
                exprs: cleartext_vxlan(plan.vxlan_port, n.vni),
                comment: format!("{}: encrypted, cleartext VXLAN refused", n.name),
            });
        }
        // An IPv6-only network has no IPv4 to keep in or let out (its IPv6 rules are
        // in `rules6`).
        let Some(gateway) = n.gateway else { continue };
        let mut isolate = exprs::iifname(CmpOp::Eq, &br);
        isolate.extend(exprs::oifname(CmpOp::Eq, &format!("{PREFIX}b*")));
        isolate.extend(exprs::oifname(CmpOp::Neq, &br));
        isolate.extend(exprs::verdict(Verdict::Drop));
        forward.push(Rule {
            exprs: isolate,
            comment: format!("{}: isolated from other networks", n.name),
        });
        if n.internal {
            let mut out = exprs::iifname(CmpOp::Eq, &br);
            out.extend(exprs::oifname(CmpOp::Neq, &br));
            out.extend(exprs::verdict(Verdict::Drop));
            forward.push(Rule {
                exprs: out,
                comment: format!("{}: internal, no egress", n.name),
            });
            let mut inbound = exprs::oifname(CmpOp::Eq, &br);
            inbound.extend(exprs::iifname(CmpOp::Neq, &br));
            inbound.extend(exprs::verdict(Verdict::Drop));
            forward.push(Rule {
                exprs: inbound,
                comment: format!("{}: internal, no ingress", n.name),
            });
            let mut host = exprs::iifname(CmpOp::Eq, &br);
            host.extend(exprs::ip_addr(true, CmpOp::Neq, gateway.addr(), 32));
            host.extend(exprs::verdict(Verdict::Drop));
            input.push(Rule {
                exprs: host,
                comment: format!("{}: internal, only the gateway", n.name),
            });
        } else {
            let subnet = gateway.trunc();
            let mut masq = exprs::ip_addr(false, CmpOp::Eq, subnet.network(), subnet.prefix_len());
            masq.extend(exprs::oifname(CmpOp::Neq, &br));
            masq.push(Expr::Masquerade);
            post.push(Rule {
                exprs: masq,
                comment: format!("{}: egress", n.name),
            });
        }
    }
    let base = |hook, kind, priority| {
        Some(BaseChain {
            hook,
            kind,
            priority,
            accept: true,
        })
    };
    let Published {
        arriving: publish,
        local: publish_local,
        chains: port_chains,
        maps,
        idle: (timeouts, idle_rules),
    } = published_chains(plan);
    let mut mesh = Vec::new();
    for n in &plan.networks {
        let (Some(addr), Some(subnet)) = (n.node_addr, n.subnet()) else {
            continue;
        };
        let mut snat = exprs::mark_bits(MESH_MARK);
        snat.extend(exprs::oifname(CmpOp::Eq, &n.bridge()));
        snat.extend(exprs::snat(addr.ip));
        mesh.push(Rule {
            exprs: snat,
            comment: format!("{}: routing mesh, answers come back to this node", n.name),
        });
        let mut hairpin = exprs::mark_bits(MESH_PRESERVE_MARK);
        hairpin.extend(exprs::oifname(CmpOp::Eq, &n.bridge()));
        hairpin.extend(exprs::ip_addr(
            false,
            CmpOp::Eq,
            subnet.network(),
            subnet.prefix_len(),
        ));
        hairpin.extend(exprs::snat(addr.ip));
        mesh.push(Rule {
            exprs: hairpin,
            comment: format!("{}: routing mesh, clients on the network itself", n.name),
        });
    }
    mesh.extend(post);
    let post = mesh;
    // The tunnel's own UDP packets, in and out, need no connection tracking either; and
    // connections to published ports get their idle timeout policy here, before
    // conntrack sees them.
    let raw = |hook| {
        let mut e = exprs::l4proto(17);
        e.extend(exprs::dport(plan.vxlan_port));
        e.push(Expr::Notrack);
        let mut rules = if plan.networks.is_empty() || plan.vxlan_port == 0 {
            Vec::new()
        } else {
            vec![Rule {
                exprs: e,
                comment: "VXLAN between nodes is not tracked".into(),
            }]
        };
        rules.extend(idle_rules.iter().cloned());
        let name = if hook == Hook::Output {
            "untracked-out"
        } else {
            "untracked-in"
        };
        crate::nat_lb::raw_chain(name, hook, rules)
    };
    let mut chains = vec![
        raw(Hook::Prerouting),
        raw(Hook::Output),
        Chain {
            name: "publish".into(),
            base: base(Hook::Prerouting, ChainType::Nat, -100),
            rules: publish,
        },
        Chain {
            name: "publish-local".into(),
            base: base(Hook::Output, ChainType::Nat, -100),
            rules: publish_local,
        },
    ];
    chains.extend(port_chains);
    chains.extend([
        Chain {
            name: "forward".into(),
            base: base(Hook::Forward, ChainType::Filter, 0),
            rules: forward,
        },
        Chain {
            name: "input".into(),
            base: base(Hook::Input, ChainType::Filter, 0),
            rules: input,
        },
        Chain {
            name: "postrouting".into(),
            base: base(Hook::Postrouting, ChainType::Nat, 100),
            rules: post,
        },
    ]);
    Table {
        name: NFT_TABLE.into(),
        family: Family::Ip,
        chains,
        maps,
        timeouts,
    }
}

/// What the routing mesh adds to the node's table.
struct Published {
    /// Rules of `publish` (prerouting).
    arriving: Vec<Rule>,
    /// Rules of `publish-local` (output).
    local: Vec<Rule>,
    /// One chain per published port.
    chains: Vec<Chain>,
    /// The ports' maps of tasks.
    maps: Vec<Map>,
    /// The timeout policies of published connections (an unanswered SYN's, and with
    /// `--lb-idle-timeout` the idle ones) and the rules attaching them.
    idle: (Vec<CtTimeoutPolicy>, Vec<Rule>),
}

/// The routing mesh's chains. A published port answers on every address of the node,
/// as Docker's does (`-m addrtype --dst-type LOCAL`): arriving connections in
/// `publish` (prerouting), the node's own in `publish-local` (output; 127.0.0.0/8 is
/// left to the agent's loopback listener, since NAT cannot take a loopback source
/// off the host without `route_localnet`). Both jump to one chain per port that marks
/// mesh connections and spreads them over the tasks. DNS on a network's gateway
/// (port 53) is never taken, whatever is published.
fn published_chains(plan: &NodePlan) -> Published {
    let mut keep_dns = Vec::new();
    let mut intercept = Vec::new();
    for n in &plan.networks {
        let Some(gateway) = n.gateway.map(|g| g.addr()) else {
            continue;
        };
        for up in &plan.dns_intercept {
            let mut to = exprs::iifname(CmpOp::Eq, &n.bridge());
            to.extend(exprs::ip_addr(true, CmpOp::Eq, *up, 32));
            to.extend(exprs::dport(53));
            to.push(Expr::Immediate {
                dreg: 2,
                data: gateway.octets().to_vec(),
            });
            to.push(Expr::Dnat {
                addr_reg: 2,
                port_reg: None,
            });
            intercept.push(Rule {
                exprs: to,
                comment: format!(
                    "{}: DNS to {up} is answered by the network's resolver",
                    n.name
                ),
            });
        }
        let mut dns = exprs::ip_addr(true, CmpOp::Eq, gateway, 32);
        dns.extend(exprs::dport(53));
        dns.extend(exprs::verdict(Verdict::Accept));
        keep_dns.push(Rule {
            exprs: dns,
            comment: format!("{}: DNS on the gateway stays DNS", n.name),
        });
    }
    /// What is published on one port, over the services that publish it.
    #[derive(Default)]
    struct Port<'p> {
        services: Vec<&'p str>,
        backends: Vec<(Ipv4Addr, Option<u16>)>,
        mesh: bool,
        preserve: bool,
    }
    let mut ports: BTreeMap<(u8, u16), Port<'_>> = BTreeMap::new();
    for p in &plan.published {
        let entry = ports.entry((p.protocol, p.port)).or_default();
        entry.services.push(&p.service);
        entry
            .backends
            .extend(p.backends.iter().map(|(ip, port)| (*ip, Some(*port))));
        entry.mesh |= p.mesh;
        entry.preserve |= p.mesh && !p.source_nat;
    }
    intercept.extend(keep_dns.iter().cloned());
    let (mut arriving, mut local) = (intercept, keep_dns);
    let mut chains = Vec::new();
    let mut maps = Vec::new();
    let mut idle = (Vec::new(), Vec::new());
    for (
        (protocol, port),
        Port {
            services,
            backends,
            mesh,
            preserve,
        },
    ) in ports
    {
        let name = format!("pub-{protocol}-{port}");
        let mut matching = exprs::l4proto(protocol);
        matching.extend(exprs::dport(port));
        let comment = format!("{}: published {port}", services.join(","));
        // Most connections come to the node's underlay address: matched first without
        // a route lookup; any other local address after one.
        if let Some(std::net::IpAddr::V4(local)) = plan.local_ip {
            let mut fast = exprs::ip_addr(true, CmpOp::Eq, local, 32);
            fast.extend(matching.iter().cloned());
            fast.extend(exprs::verdict(Verdict::Jump(name.clone())));
            arriving.push(Rule {
                exprs: fast,
                comment: comment.clone(),
            });
        }
        matching.extend(exprs::daddr_local());
        if protocol == 6 || plan.lb_idle_timeout.is_some() {
            let (policies, rules) =
                crate::nat_lb::published_timeouts(plan.lb_idle_timeout, &matching, &comment);
            for p in policies {
                if !idle.0.contains(&p) {
                    idle.0.push(p);
                }
            }
            idle.1.extend(rules);
        }
        let mut jump = matching.clone();
        jump.extend(exprs::verdict(Verdict::Jump(name.clone())));
        arriving.push(Rule {
            exprs: jump.clone(),
            comment: comment.clone(),
        });
        let mut own = exprs::ip_addr(true, CmpOp::Neq, Ipv4Addr::new(127, 0, 0, 0), 8);
        own.extend(jump);
        local.push(Rule {
            exprs: own,
            comment: comment.clone(),
        });
        let mark = if preserve {
            exprs::set_mark_bits(MESH_PRESERVE_MARK)
        } else if mesh {
            exprs::set_mark_bits(MESH_MARK)
        } else {
            Vec::new()
        };
        // A port with no task (here, for host mode) keeps its chain, empty: nothing
        // is translated and the connection is refused.
        let mut rules = Vec::new();
        if let Some((rule, map)) = crate::nat_lb::spread(&mark, &backends, &name, &comment) {
            rules.push(rule);
            maps.extend(map);
        }
        chains.push(Chain {
            name,
            base: None,
            rules,
        });
    }
    Published {
        arriving,
        local,
        chains,
        maps,
        idle,
    }
}

/// The bridge-family rules: frames for a node's own address
/// ([`NodeAddr`](super::NodeAddr)) go up to the host, frames from it carry the node MAC;
/// and frames bridged between endpoints (on shoal's ports, for no gateway or node MAC)
/// are not tracked by conntrack, which `br_netfilter` would otherwise do for every one
/// of them once NAT is in use here.
pub fn bridge_ruleset(plan: &NodePlan) -> Table {
    let mut pre = Vec::new();
    let mut out = Vec::new();
    let mut untracked = Vec::new();
    if !plan.networks.is_empty() {
        let mut bridged = exprs::iifname(CmpOp::Eq, &format!("{PREFIX}*"));
        let routed: std::collections::BTreeSet<[u8; 6]> = plan
            .networks
            .iter()
            .flat_map(|n| std::iter::once(n.gateway_mac).chain(n.node_addr.map(|a| a.mac)))
            .collect();
        for mac in routed {
            bridged.extend(ether_daddr_not(mac));
        }
        bridged.push(Expr::Notrack);
        untracked.push(Rule {
            exprs: bridged,
            comment: "frames bridged between endpoints need no connection tracking".into(),
        });
    }
    for n in &plan.networks {
        let (Some(addr), Some(subnet)) = (n.node_addr, n.subnet()) else {
            continue;
        };
        let mut up = exprs::ether_addr(true, addr.mac);
        up.extend(exprs::set_ether_addr(true, n.gateway_mac));
        up.extend(exprs::set_pkttype_host());
        pre.push(Rule {
            exprs: up,
            comment: format!("{}: frames for this node's address go up", n.name),
        });
        let mut own = exprs::ether_type(0x0800);
        own.extend(exprs::ip_addr(false, CmpOp::Eq, addr.ip, 32));
        own.extend(exprs::set_ether_addr(false, addr.mac));
        out.push(Rule {
            exprs: own,
            comment: format!("{}: this node's address has its own MAC", n.name),
        });
        let mut kept = exprs::ether_type(0x0800);
        kept.extend(exprs::mark_bits(MESH_PRESERVE_MARK));
        kept.extend(exprs::ip_addr(
            true,
            CmpOp::Eq,
            subnet.network(),
            subnet.prefix_len(),
        ));
        kept.extend(exprs::set_ether_addr(false, addr.mac));
        out.push(Rule {
            exprs: kept,
            comment: format!(
                "{}: mesh connections that keep the client's address carry this node's MAC",
                n.name
            ),
        });
    }
    let base = |hook| {
        Some(BaseChain {
            hook,
            kind: ChainType::Filter,
            priority: 0,
            accept: true,
        })
    };
    Table::with_chains(
        NFT_TABLE,
        Family::Bridge,
        vec![
            Chain {
                name: "untracked".into(),
                base: Some(BaseChain {
                    hook: Hook::Prerouting,
                    kind: ChainType::Filter,
                    priority: -300,
                    accept: true,
                }),
                rules: untracked,
            },
            Chain {
                name: "prerouting".into(),
                base: base(Hook::Prerouting),
                rules: pre,
            },
            Chain {
                name: "output".into(),
                base: base(Hook::Output),
                rules: out,
            },
        ],
    )
}

/// `ether daddr != MAC`.
fn ether_daddr_not(mac: [u8; 6]) -> Vec<Expr> {
    let mut e = exprs::ether_addr(true, mac);
    if let Some(Expr::Cmp { op, .. }) = e.last_mut() {
        *op = CmpOp::Neq;
    }
    e
}

/// `udp dport PORT @th,96,24 VNI counter drop`: VXLAN in the clear for network `vni`.
fn cleartext_vxlan(port: u16, vni: u32) -> Vec<Expr> {
    let mut exprs = exprs::l4proto(17);
    exprs.extend(exprs::dport(port));
    exprs.push(Expr::Payload {
        base: PayloadBase::Transport,
        offset: 12,
        len: 3,
        dreg: 1,
    });
    exprs.push(Expr::Cmp {
        sreg: 1,
        op: CmpOp::Eq,
        data: vni.to_be_bytes()[1..].to_vec(),
    });
    exprs.push(Expr::Counter);
    exprs.extend(exprs::verdict(Verdict::Drop));
    exprs
}

#[cfg(test)]
mod tests;

//! The nftables tables a [`NodePlan`] needs: the node's (egress, isolation, the
//! routing mesh's published ports, DNS interception) and the bridge family's.

use super::plan::{NodePlan, MESH_PRESERVE_MARK, NFT_TABLE, PREFIX};
use super::published::{base_chain, mesh_chains, mesh_snat, published_chains, MeshFamily, V4, V6};
use crate::nft::{
    exprs, BaseChain, Chain, ChainType, CmpOp, Expr, Family, Hook, PayloadBase, Rule, Table,
    Verdict,
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
    let mut published = published_chains::<V4>(plan);
    let mut arriving = dns_intercept(plan);
    arriving.append(&mut published.arriving);
    published.arriving = arriving;
    let mut post_rules = mesh_snat::<V4>(plan);
    post_rules.extend(post);
    // The tunnel's own UDP packets, in and out, need no connection tracking either; and
    // connections to published ports get their idle timeout policy here, before
    // conntrack sees them.
    let mut untracked = exprs::l4proto(17);
    untracked.extend(exprs::dport(plan.vxlan_port));
    untracked.push(Expr::Notrack);
    let raw = if plan.networks.is_empty() || plan.vxlan_port == 0 {
        Vec::new()
    } else {
        vec![Rule {
            exprs: untracked,
            comment: "VXLAN between nodes is not tracked".into(),
        }]
    };
    let (mut chains, maps, timeouts) = mesh_chains(&raw, published);
    chains.extend([
        base_chain("forward", Hook::Forward, ChainType::Filter, 0, forward),
        base_chain("input", Hook::Input, ChainType::Filter, 0, input),
        base_chain(
            "postrouting",
            Hook::Postrouting,
            ChainType::Nat,
            100,
            post_rules,
        ),
    ]);
    Table {
        name: NFT_TABLE.into(),
        family: Family::Ip,
        chains,
        maps,
        timeouts,
    }
}

/// DNS from a network to one of the node's upstream resolvers is answered by the
/// network's resolver on its gateway (`publish`, before anything else).
fn dns_intercept(plan: &NodePlan) -> Vec<Rule> {
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
    }
    intercept
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
        let Some(addr) = n.node_addr else {
            continue;
        };
        let mut up = exprs::ether_addr(true, addr.mac);
        up.extend(exprs::set_ether_addr(true, n.gateway_mac));
        up.extend(exprs::set_pkttype_host());
        pre.push(Rule {
            exprs: up,
            comment: format!("{}: frames for this node's address go up", n.name),
        });
        // IPv4, and IPv6 on a dual-stack network.
        let families = [
            (0x0800, V4::node_addr(n), V4::subnet(n)),
            (0x86dd, V6::node_addr(n), V6::subnet(n)),
        ];
        for (ethertype, ip, subnet) in families {
            let (Some(ip), Some((subnet, prefix))) = (ip, subnet) else {
                continue;
            };
            let mut own = exprs::ether_type(ethertype);
            own.extend(exprs::addr_in(false, CmpOp::Eq, ip, 128));
            own.extend(exprs::set_ether_addr(false, addr.mac));
            out.push(Rule {
                exprs: own,
                comment: format!("{}: this node's address has its own MAC", n.name),
            });
            let mut kept = exprs::ether_type(ethertype);
            kept.extend(exprs::mark_bits(MESH_PRESERVE_MARK));
            kept.extend(exprs::addr_in(true, CmpOp::Eq, subnet, prefix));
            kept.extend(exprs::set_ether_addr(false, addr.mac));
            out.push(Rule {
                exprs: kept,
                comment: format!(
                    "{}: mesh connections that keep the client's address carry this node's MAC",
                    n.name
                ),
            });
        }
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

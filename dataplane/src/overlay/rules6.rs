//! The node's IPv6 rules for dual-stack and IPv6-only networks (which have no rule in
//! the `ip` table), in an `inet` table of their own
//! (`inet shoal`, beside `ip shoal`), every rule limited to IPv6 (`meta nfproto ipv6`).
//!
//! ```text
//!  forward: translated to a published port's task, underlay ⇄ bridge ─▶ accept
//!  forward: IPv6 in or out of a dual-stack network's bridge, other than within it ─▶ drop
//!  input:   IPv6 from an internal dual-stack network to the node, not its gateway ─▶ drop
//! ```
//! IPv6 is carried within a network (bridge and VXLAN) and to its anycast gateway
//! (DNS); it is not routed between networks or to the underlay, but for connections
//! to the node's published ports translated to a task (`ct status dnat`, both ways,
//! before the drops). These rules keep it so even on a host whose IPv6 forwarding is
//! on, so isolation does not depend on a sysctl.

use super::plan::{NetworkPlan, NodePlan, NFT_TABLE, PREFIX};
use crate::nft::{exprs, BaseChain, Chain, ChainType, CmpOp, Family, Hook, Rule, Table, Verdict};

/// Connections to the node's published ports that were translated to a task on `n`
/// cross between the underlay and the network's bridge, both ways (never to or from
/// another network's bridge: networks stay isolated).
fn published_connections(n: &NetworkPlan) -> Vec<Rule> {
    let br = n.bridge();
    let others = format!("{PREFIX}b*");
    let way = |into: bool| {
        let mut e = exprs::nfproto_ipv6();
        let (ours, theirs) = if into {
            (
                exprs::oifname(CmpOp::Eq, &br),
                exprs::iifname(CmpOp::Neq, &others),
            )
        } else {
            (
                exprs::iifname(CmpOp::Eq, &br),
                exprs::oifname(CmpOp::Neq, &others),
            )
        };
        e.extend(ours);
        e.extend(theirs);
        e.extend(exprs::ct_dnat());
        e.extend(exprs::verdict(Verdict::Accept));
        e
    };
    vec![
        Rule {
            exprs: way(true),
            comment: format!("{}: IPv6 to a published port reaches its task", n.name),
        },
        Rule {
            exprs: way(false),
            comment: format!("{}: and the task's answers leave", n.name),
        },
    ]
}

/// The `inet` table of `plan`'s dual-stack networks (no rules when it has none).
pub fn ruleset6(plan: &NodePlan) -> Table {
    let mut forward = Vec::new();
    let mut input = Vec::new();
    let published = super::publishes_ipv6(plan);
    for n in plan.networks.iter().filter(|n| n.gateway6.is_some()) {
        let br = n.bridge();
        if published && !n.internal {
            forward.extend(published_connections(n));
        }
        let mut out = exprs::nfproto_ipv6();
        out.extend(exprs::iifname(CmpOp::Eq, &br));
        out.extend(exprs::oifname(CmpOp::Neq, &br));
        out.extend(exprs::verdict(Verdict::Drop));
        forward.push(Rule {
            exprs: out,
            comment: format!("{}: IPv6 stays in the network", n.name),
        });
        let mut inbound = exprs::nfproto_ipv6();
        inbound.extend(exprs::oifname(CmpOp::Eq, &br));
        inbound.extend(exprs::iifname(CmpOp::Neq, &br));
        inbound.extend(exprs::verdict(Verdict::Drop));
        forward.push(Rule {
            exprs: inbound,
            comment: format!("{}: no IPv6 into the network from outside", n.name),
        });
        if let (true, Some(gateway6)) = (n.internal, n.gateway6) {
            let mut host = exprs::nfproto_ipv6();
            host.extend(exprs::iifname(CmpOp::Eq, &br));
            host.extend(exprs::ip6_daddr(CmpOp::Neq, gateway6.addr()));
            host.extend(exprs::verdict(Verdict::Drop));
            input.push(Rule {
                exprs: host,
                comment: format!("{}: internal, only the IPv6 gateway", n.name),
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
        Family::Inet,
        vec![
            Chain {
                name: "forward".into(),
                base: base(Hook::Forward),
                rules: forward,
            },
            Chain {
                name: "input".into(),
                base: base(Hook::Input),
                rules: input,
            },
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::overlay::plan::sample_network;

    #[test]
    fn ipv4_only_networks_get_no_ipv6_rules() {
        let plan = NodePlan {
            networks: vec![sample_network(4096, false)],
            ..Default::default()
        };
        assert!(ruleset6(&plan).chains.iter().all(|c| c.rules.is_empty()));
    }

    #[test]
    fn dual_stack_networks_keep_ipv6_inside_and_internal_ones_reach_only_the_gateway() {
        let mut open = sample_network(4096, false);
        open.gateway6 = Some("fd00:1::1/64".parse().unwrap());
        let mut internal = sample_network(4097, true);
        internal.gateway6 = Some("fd00:2::1/64".parse().unwrap());
        let plan = NodePlan {
            networks: vec![open, internal],
            ..Default::default()
        };
        let table = ruleset6(&plan);
        assert_eq!(table.family, Family::Inet);
        let forward = &table.chains[0];
        assert_eq!(forward.rules.len(), 4);
        for rule in &forward.rules {
            assert_eq!(rule.exprs[..2], exprs::nfproto_ipv6()[..], "IPv6 only");
            assert!(rule.exprs.ends_with(&exprs::verdict(Verdict::Drop)));
        }
        let input = &table.chains[1];
        assert_eq!(input.rules.len(), 1);
        let gw = exprs::ip6_daddr(CmpOp::Neq, "fd00:2::1".parse().unwrap());
        assert!(input.rules[0].exprs.windows(gw.len()).any(|w| w == gw));
        assert!(input.rules[0].comment.starts_with("n4097"));
    }
}

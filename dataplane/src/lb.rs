//! Load balancing in the kernel: nftables DNAT that spreads new connections over a
//! service's tasks.
//!
//! ```text
//!  rule 1: match ─ numgen random mod N     == 0 ─▶ dnat backend 1
//!  rule 2: match ─ numgen random mod (N-1) == 0 ─▶ dnat backend 2
//!  …                                              (each rule takes 1/(N-i) of what is left:
//!  rule N: match ───────────────────────────────▶ dnat backend N    a uniform spread)
//! ```
//! NAT chains only see the first packet of a connection, so the draw happens once per
//! connection; conntrack keeps the rest of it on the same backend. A backend removed
//! from the table gets no new connection at once.
//!
//! - [`vip_table`]: in each client sandbox, VIP → task (client-side: no hairpin).
//! - Published ports are spread by the same cascade in the node's own table
//!   ([`ruleset`](crate::overlay::ruleset)): straight to a task on any node, source-NATed
//!   to the node's address on the task's network so replies come back through it.

use std::net::Ipv4Addr;

use crate::nft::{m, BaseChain, Chain, ChainType, CmpOp, Expr, Family, Hook, Rule, Table, Verdict};

/// The nftables table shoal owns inside sandboxes.
pub const LB_TABLE: &str = "shoal-lb";

/// A service VIP as a client sandbox sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Vip {
    /// The service (for comments).
    pub service: String,
    /// The VIP.
    pub vip: Ipv4Addr,
    /// The running tasks' addresses on the VIP's network.
    pub backends: Vec<Ipv4Addr>,
}

/// A port published on a node's underlay address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Published {
    /// The service (for comments).
    pub service: String,
    /// IP protocol number (6 TCP, 17 UDP).
    pub protocol: u8,
    /// The published port.
    pub port: u16,
    /// The tasks: address and target port.
    pub backends: Vec<(Ipv4Addr, u16)>,
    /// Through the routing mesh (ingress mode): the tasks may be on any node, and
    /// connections leave source-NATed to the node's address. Host mode: local tasks only.
    pub mesh: bool,
}

/// The cascade of DNAT rules spreading `matching` over `backends`.
pub fn spread(matching: &[Expr], backends: &[(Ipv4Addr, Option<u16>)], comment: &str) -> Vec<Rule> {
    let n = backends.len();
    backends
        .iter()
        .enumerate()
        .map(|(i, (ip, port))| {
            let mut exprs = matching.to_vec();
            if i + 1 < n {
                exprs.push(Expr::Numgen {
                    dreg: 1,
                    modulus: (n - i) as u32,
                    random: true,
                });
                exprs.push(Expr::Cmp {
                    sreg: 1,
                    op: CmpOp::Eq,
                    data: 0u32.to_ne_bytes().to_vec(),
                });
            }
            exprs.push(Expr::Immediate {
                dreg: 2,
                data: ip.octets().to_vec(),
            });
            if let Some(p) = port {
                exprs.push(Expr::Immediate {
                    dreg: 3,
                    data: p.to_be_bytes().to_vec(),
                });
            }
            exprs.push(Expr::Dnat {
                addr_reg: 2,
                port_reg: port.map(|_| 3),
            });
            Rule {
                exprs,
                comment: format!(
                    "{comment} -> {ip}{}",
                    port.map(|p| format!(":{p}")).unwrap_or_default()
                ),
            }
        })
        .collect()
}

fn nat_chain(name: &str, hook: Hook, priority: i32, rules: Vec<Rule>) -> Chain {
    Chain {
        name: name.into(),
        base: Some(BaseChain {
            hook,
            kind: ChainType::Nat,
            priority,
            accept: true,
        }),
        rules,
    }
}

/// The table of a client sandbox: connections to a VIP (any port) go to a task. A VIP
/// without running tasks refuses connections rather than black-holing them.
pub fn vip_table(vips: &[Vip]) -> Table {
    let mut out = Vec::new();
    let mut filter = Vec::new();
    for v in vips {
        let matching = m::ip_addr(true, CmpOp::Eq, v.vip, 32);
        if v.backends.is_empty() {
            let mut reject = matching.clone();
            reject.push(Expr::Verdict(Verdict::Drop));
            filter.push(Rule {
                exprs: reject,
                comment: format!("{}: no running task", v.service),
            });
            continue;
        }
        let backends: Vec<(Ipv4Addr, Option<u16>)> =
            v.backends.iter().map(|b| (*b, None)).collect();
        out.extend(spread(&matching, &backends, &v.service));
    }
    Table {
        name: LB_TABLE.into(),
        family: Family::Ip,
        chains: vec![
            nat_chain("output", Hook::Output, -100, out),
            Chain {
                name: "filter-output".into(),
                base: Some(BaseChain {
                    hook: Hook::Output,
                    kind: ChainType::Filter,
                    priority: 0,
                    accept: true,
                }),
                rules: filter,
            },
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cascade_draws_from_shrinking_ranges_and_the_last_rule_takes_the_rest() {
        let backends: Vec<(Ipv4Addr, Option<u16>)> = (1..=3)
            .map(|i| (Ipv4Addr::new(10, 0, 0, i), Some(80)))
            .collect();
        let rules = spread(&[], &backends, "web");
        let moduli: Vec<Option<u32>> = rules
            .iter()
            .map(|r| {
                r.exprs.iter().find_map(|e| match e {
                    Expr::Numgen { modulus, .. } => Some(*modulus),
                    _ => None,
                })
            })
            .collect();
        assert_eq!(moduli, vec![Some(3), Some(2), None]);
        assert!(rules.iter().all(|r| matches!(
            r.exprs.last(),
            Some(Expr::Dnat {
                port_reg: Some(3),
                ..
            })
        )));
    }

    #[test]
    fn a_vip_without_tasks_is_dropped_not_forwarded() {
        let t = vip_table(&[Vip {
            service: "db".into(),
            vip: Ipv4Addr::new(10, 0, 0, 9),
            backends: vec![],
        }]);
        assert!(t.chains[0].rules.is_empty());
        assert_eq!(t.chains[1].rules.len(), 1);
        let text = t.to_string();
        assert!(text.contains("db: no running task"), "{text}");
    }
}

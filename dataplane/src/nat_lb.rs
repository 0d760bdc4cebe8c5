//! Load balancing in the kernel: nftables DNAT that spreads new connections over a
//! service's tasks, with one draw and one map lookup whatever their number.
//!
//! ```text
//!  match ─ numgen random mod N ─▶ map { 0: task 1, 1: task 2, … N-1: task N } ─▶ dnat
//!  (one task: match ─▶ dnat task)
//! ```
//! NAT chains only see the first packet of a connection, so the draw happens once per
//! connection; conntrack keeps the rest of it on the same backend. A backend removed
//! from the map gets no new connection at once.
//!
//! - [`vip_table`]: in each client sandbox, VIP → task (client-side: no hairpin).
//! - Published ports are spread the same way in the node's own table
//!   ([`ruleset`](crate::overlay::ruleset)): straight to a task on any node, keeping the
//!   client's address (replies come back through the node by the sandbox's
//!   [`return_path`](crate::return_path)) or, with `src=nat`, source-NATed to the node's
//!   address on the task's network.
//! - [`idle_timeouts`]: with `--lb-idle-timeout`, conntrack timeout policies attached
//!   to load-balanced connections only (priority raw, before conntrack sees them), so no
//!   other flow of the host changes. [`published_timeouts`]: a published TCP port's
//!   connections always get one, whose unanswered SYN expires after
//!   [`SYN_SENT_SECS`] rather than the kernel's 120 s: a SYN sent to a task on a node
//!   that vanished would otherwise pin that client port to the dead task (a later
//!   connection from the same port matches the entry) long after the node is routed
//!   around.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::nft::{
    exprs, BaseChain, Chain, ChainType, CmpOp, CtTimeoutPolicy, Expr, Family, Hook, Map, Rule,
    Table, Verdict, CTA_TIMEOUT_TCP_ESTABLISHED, CTA_TIMEOUT_TCP_RETRANS, CTA_TIMEOUT_TCP_SYN_SENT,
    CTA_TIMEOUT_TCP_UNACK, CTA_TIMEOUT_UDP_REPLIED,
};

/// The nftables table shoal owns inside sandboxes (one `ip`, one `ip6`).
pub const LB_TABLE: &str = "shoal-lb";

/// `NFT_REG32_00`: the first 32-bit register.
const NFT_REG32_00: u32 = 8;

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

/// An IPv6 service VIP as a client sandbox sees it (dual-stack networks).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Vip6 {
    /// The service (for comments).
    pub service: String,
    /// The IPv6 VIP.
    pub vip: Ipv6Addr,
    /// The running tasks' IPv6 addresses on the VIP's network.
    pub backends: Vec<Ipv6Addr>,
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
    /// On a network with IPv4, the tasks' IPv4 addresses and target port: the port
    /// answers on the node's IPv4 addresses. `None` on an IPv6-only network (nothing
    /// IPv4 is published for it).
    pub backends: Option<Vec<(Ipv4Addr, u16)>>,
    /// On a dual-stack or IPv6-only network, the tasks' IPv6 addresses and target
    /// port: the port answers on the node's IPv6 addresses. `None` on an IPv4-only
    /// network.
    pub backends6: Option<Vec<(Ipv6Addr, u16)>>,
    /// Through the routing mesh (ingress mode): the tasks may be on any node. Host
    /// mode: local tasks only.
    pub mesh: bool,
    /// Mesh connections leave source-NATed to the node's address (`src=nat`); without,
    /// they keep the client's address and the tasks' sandboxes send the replies back
    /// through this node ([`return_path`](crate::return_path)).
    pub source_nat: bool,
}

/// The rule spreading `matching` connections over `backends` (all with a port or all
/// without, all of the table's family), and the map named `map` it draws from when
/// there is more than one; `None` with no backend (there is nothing to draw from:
/// `numgen mod 0` is refused).
pub fn spread<A: Into<IpAddr> + Copy>(
    matching: &[Expr],
    backends: &[(A, Option<u16>)],
    map: &str,
    comment: &str,
) -> Option<(Rule, Option<Map>)> {
    let backends: Vec<(IpAddr, Option<u16>)> =
        backends.iter().map(|(ip, p)| ((*ip).into(), *p)).collect();
    spread_any(matching, &backends, map, comment)
}

fn octets(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

fn spread_any(
    matching: &[Expr],
    backends: &[(IpAddr, Option<u16>)],
    map: &str,
    comment: &str,
) -> Option<(Rule, Option<Map>)> {
    let (first, _) = backends.first()?;
    let addr_len = octets(*first).len() as u32;
    let mut exprs = matching.to_vec();
    let with_port = backends.first().is_some_and(|(_, p)| p.is_some());
    if let [(ip, port)] = backends {
        exprs.push(Expr::Immediate {
            dreg: 2,
            data: octets(*ip),
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
        let to = match (ip, port) {
            (IpAddr::V6(v6), Some(p)) => format!("[{v6}]:{p}"),
            (_, Some(p)) => format!("{ip}:{p}"),
            (_, None) => ip.to_string(),
        };
        let rule = Rule {
            exprs,
            comment: format!("{comment} -> {to}"),
        };
        return Some((rule, None));
    }
    let elements = backends
        .iter()
        .enumerate()
        .map(|(i, (ip, port))| {
            let mut value = octets(*ip);
            if with_port {
                // address . inet_service: the port padded to 4 bytes.
                value.extend_from_slice(&port.unwrap_or_default().to_be_bytes());
                value.extend_from_slice(&[0, 0]);
            }
            ((i as u32).to_ne_bytes().to_vec(), value)
        })
        .collect();
    exprs.push(Expr::Numgen {
        dreg: 1,
        modulus: backends.len() as u32,
        random: true,
    });
    exprs.push(Expr::Lookup {
        set: map.to_string(),
        sreg: 1,
        dreg: Some(1),
    });
    exprs.push(Expr::Dnat {
        addr_reg: 1,
        // The port is the 32-bit register right after the address: NFT_REG32_01
        // after an IPv4 address, NFT_REG32_04 after an IPv6 one.
        port_reg: with_port.then_some(NFT_REG32_00 + addr_len / 4),
    });
    let rule = Rule {
        exprs,
        comment: format!("{comment} -> {} tasks", backends.len()),
    };
    let map = Map {
        name: map.to_string(),
        key_len: 4,
        data_len: if with_port { addr_len + 4 } else { addr_len },
        elements,
    };
    Some((rule, Some(map)))
}

/// Names of the idle-timeout policies.
const IDLE_TCP: &str = "lb-idle-tcp";
const IDLE_UDP: &str = "lb-idle-udp";

/// The policy of published TCP connections without an idle timeout.
const PUBLISHED_TCP: &str = "lb-tcp";

/// How long a published connection's unanswered SYN keeps its conntrack entry (the
/// kernel's default is 120 s). A client retransmits its SYN after 1 and 3 s, each
/// refreshing it; a later SYN makes a new entry and a new draw of the task.
pub const SYN_SENT_SECS: u32 = 5;

/// How long a published connection whose packets go unacknowledged (retransmitted, or
/// data the task never acknowledged: the task's node vanished) keeps its entry after
/// its last packet (the kernel's default is 300 s). The entry of a connection that was
/// in flight to a dead task would otherwise send the next connection from the same
/// client port to that task for five minutes.
pub const UNACKNOWLEDGED_SECS: u32 = 10;

/// Conntrack timeout policies that end load-balanced TCP and UDP streams idle `secs`,
/// and the rules attaching them to connections that match `matching` (for a chain at
/// raw priority).
pub fn idle_timeouts(
    secs: u32,
    matching: &[Expr],
    comment: &str,
) -> (Vec<CtTimeoutPolicy>, Vec<Rule>) {
    timeouts(Some(secs), None, matching, comment)
}

/// The conntrack timeout policies of connections to a published port that match
/// `matching`: TCP's unanswered SYN after [`SYN_SENT_SECS`], and with `idle`, TCP and
/// UDP streams idle that many seconds; with the rules attaching them (raw priority).
pub fn published_timeouts(
    idle: Option<u32>,
    matching: &[Expr],
    comment: &str,
) -> (Vec<CtTimeoutPolicy>, Vec<Rule>) {
    timeouts(idle, Some(SYN_SENT_SECS), matching, comment)
}

fn timeouts(
    idle: Option<u32>,
    syn_sent: Option<u32>,
    matching: &[Expr],
    comment: &str,
) -> (Vec<CtTimeoutPolicy>, Vec<Rule>) {
    let mut tcp = Vec::new();
    if let Some(s) = syn_sent {
        tcp.push((CTA_TIMEOUT_TCP_SYN_SENT, s));
    }
    if let Some(s) = idle {
        tcp.push((CTA_TIMEOUT_TCP_ESTABLISHED, s));
    }
    if syn_sent.is_some() {
        tcp.push((CTA_TIMEOUT_TCP_RETRANS, UNACKNOWLEDGED_SECS));
        tcp.push((CTA_TIMEOUT_TCP_UNACK, UNACKNOWLEDGED_SECS));
    }
    let tcp_name = if idle.is_some() {
        IDLE_TCP
    } else {
        PUBLISHED_TCP
    };
    let mut policies = Vec::new();
    if !tcp.is_empty() {
        policies.push(CtTimeoutPolicy {
            name: tcp_name.into(),
            l4proto: 6,
            policy: tcp,
        });
    }
    if let Some(s) = idle {
        policies.push(CtTimeoutPolicy {
            name: IDLE_UDP.into(),
            l4proto: 17,
            policy: vec![(CTA_TIMEOUT_UDP_REPLIED, s)],
        });
    }
    let what = match (idle, syn_sent) {
        (Some(i), Some(s)) => {
            format!("idle {i} s, unanswered SYN {s} s, unacknowledged {UNACKNOWLEDGED_SECS} s")
        }
        (Some(i), None) => format!("idle {i} s"),
        (None, Some(s)) => format!("unanswered SYN {s} s, unacknowledged {UNACKNOWLEDGED_SECS} s"),
        (None, None) => String::new(),
    };
    let rules = policies
        .iter()
        .map(|p| {
            let mut exprs = matching.to_vec();
            exprs.extend(exprs::l4proto(p.l4proto));
            exprs.push(Expr::CtTimeout(p.name.clone()));
            Rule {
                exprs,
                comment: format!("{comment}: {what}"),
            }
        })
        .collect();
    (policies, rules)
}

/// A chain that runs before conntrack (priority raw, -300).
pub fn raw_chain(name: &str, hook: Hook, rules: Vec<Rule>) -> Chain {
    Chain {
        name: name.into(),
        base: Some(BaseChain {
            hook,
            kind: ChainType::Filter,
            priority: -300,
            accept: true,
        }),
        rules,
    }
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

/// The map of a client sandbox's [`LB_TABLE`] that VIP `vip` draws its task from, when
/// it has more than one (`vip-10-0-1-2`, `vip-fd00--2`).
pub fn vip_map(vip: IpAddr) -> String {
    format!("vip-{}", vip.to_string().replace(['.', ':'], "-"))
}

/// The table of a client sandbox: connections to a VIP (any port) go to a task. A VIP
/// without running tasks refuses connections rather than black-holing them. With
/// `idle_secs`, connections to VIPs end after that long idle.
pub fn vip_table(vips: &[Vip], idle_secs: Option<u32>) -> Table {
    let vips: Vec<OneVip> = vips
        .iter()
        .map(|v| OneVip {
            service: &v.service,
            matching: exprs::ip_addr(true, CmpOp::Eq, v.vip, 32),
            map: vip_map(v.vip.into()),
            backends: v.backends.iter().map(|b| (IpAddr::V4(*b), None)).collect(),
        })
        .collect();
    lb_table(Family::Ip, &vips, idle_secs)
}

/// [`vip_table`] for the IPv6 VIPs of a sandbox's dual-stack networks: the sandbox's
/// `ip6` table of the same name.
pub fn vip_table6(vips: &[Vip6], idle_secs: Option<u32>) -> Table {
    let vips: Vec<OneVip> = vips
        .iter()
        .map(|v| OneVip {
            service: &v.service,
            matching: exprs::ip6_daddr(CmpOp::Eq, v.vip),
            map: vip_map(v.vip.into()),
            backends: v.backends.iter().map(|b| (IpAddr::V6(*b), None)).collect(),
        })
        .collect();
    lb_table(Family::Ip6, &vips, idle_secs)
}

/// One VIP of either family, ready for [`lb_table`].
struct OneVip<'a> {
    service: &'a str,
    matching: Vec<Expr>,
    map: String,
    backends: Vec<(IpAddr, Option<u16>)>,
}

fn lb_table(family: Family, vips: &[OneVip<'_>], idle_secs: Option<u32>) -> Table {
    let mut out = Vec::new();
    let mut filter = Vec::new();
    let mut maps = Vec::new();
    let mut raw = Vec::new();
    let mut timeouts = Vec::new();
    for v in vips {
        if v.backends.is_empty() {
            let mut reject = v.matching.clone();
            reject.push(Expr::Verdict(Verdict::Drop));
            filter.push(Rule {
                exprs: reject,
                comment: format!("{}: no running task", v.service),
            });
            continue;
        }
        if let Some((rule, map)) = spread_any(&v.matching, &v.backends, &v.map, v.service) {
            out.push(rule);
            maps.extend(map);
        }
        if let Some(secs) = idle_secs {
            let (policies, rules) = idle_timeouts(secs, &v.matching, v.service);
            timeouts = policies;
            raw.extend(rules);
        }
    }
    let mut chains = vec![
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
    ];
    if !raw.is_empty() {
        chains.push(raw_chain("raw-output", Hook::Output, raw));
    }
    Table {
        name: LB_TABLE.into(),
        family,
        chains,
        maps,
        timeouts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_tasks_are_one_draw_and_one_lookup() {
        let backends: Vec<(Ipv4Addr, Option<u16>)> = (1..=3)
            .map(|i| (Ipv4Addr::new(10, 0, 0, i), Some(80)))
            .collect();
        let (rule, map) = spread(&[], &backends, "pub-6-80", "web").unwrap();
        assert!(matches!(
            rule.exprs.as_slice(),
            [
                Expr::Numgen {
                    modulus: 3,
                    random: true,
                    ..
                },
                Expr::Lookup { dreg: Some(1), .. },
                Expr::Dnat {
                    addr_reg: 1,
                    port_reg: Some(9)
                }
            ]
        ));
        let map = map.unwrap();
        assert_eq!((map.key_len, map.data_len), (4, 8));
        assert_eq!(map.elements.len(), 3);
        assert_eq!(map.elements[2].0, 2u32.to_ne_bytes().to_vec());
        assert_eq!(map.elements[2].1, vec![10, 0, 0, 3, 0, 80, 0, 0]);
        // One task needs no map.
        assert!(
            spread::<Ipv4Addr>(&[], &[], "m", "web").is_none(),
            "nothing to draw from"
        );
        let (one, none) = spread(&[], &backends[..1], "m", "web").unwrap();
        assert!(none.is_none());
        assert!(matches!(
            one.exprs.last(),
            Some(Expr::Dnat {
                addr_reg: 2,
                port_reg: Some(3)
            })
        ));
    }

    #[test]
    fn idle_timeouts_touch_only_load_balanced_connections() {
        let vips = [Vip {
            service: "api".into(),
            vip: Ipv4Addr::new(10, 0, 0, 9),
            backends: vec![Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 3)],
        }];
        assert!(vip_table(&vips, None).timeouts.is_empty());
        let t = vip_table(&vips, Some(30));
        assert_eq!(t.timeouts.len(), 2);
        assert!(t
            .timeouts
            .iter()
            .all(|p| p.policy.iter().all(|(_, s)| *s == 30)));
        let raw = t.chains.iter().find(|c| c.name == "raw-output").unwrap();
        assert_eq!(raw.base.as_ref().unwrap().priority, -300);
        // Every attaching rule matches the VIP first.
        let vip = exprs::ip_addr(true, CmpOp::Eq, Ipv4Addr::new(10, 0, 0, 9), 32);
        assert!(raw.rules.iter().all(|r| r.exprs.starts_with(&vip)));
        assert_eq!(t.maps.len(), 1);
    }

    #[test]
    fn a_vip_without_tasks_is_dropped_not_forwarded() {
        let t = vip_table(
            &[Vip {
                service: "db".into(),
                vip: Ipv4Addr::new(10, 0, 0, 9),
                backends: vec![],
            }],
            None,
        );
        assert!(t.chains[0].rules.is_empty());
        assert_eq!(t.chains[1].rules.len(), 1);
        let text = t.to_string();
        assert!(text.contains("db: no running task"), "{text}");
    }

    #[test]
    fn an_ipv6_vip_spreads_over_ipv6_tasks_in_an_ip6_table() {
        let task = |i: u16| Ipv6Addr::new(0xfd00, 0, 0, 1, 0, 0, 0, i);
        let t = vip_table6(
            &[
                Vip6 {
                    service: "api".into(),
                    vip: task(9),
                    backends: vec![task(2), task(3)],
                },
                Vip6 {
                    service: "db".into(),
                    vip: task(10),
                    backends: vec![],
                },
            ],
            Some(30),
        );
        assert_eq!((t.family, t.name.as_str()), (Family::Ip6, LB_TABLE));
        let map = &t.maps[0];
        assert_eq!(map.name, "vip-fd00-0-0-1--9");
        assert_eq!((map.key_len, map.data_len), (4, 16));
        assert_eq!(map.elements[1].1, task(3).octets().to_vec());
        let rule = &t.chains[0].rules[0];
        assert!(rule
            .exprs
            .starts_with(&exprs::ip6_daddr(CmpOp::Eq, task(9))));
        assert!(matches!(
            rule.exprs.last(),
            Some(Expr::Dnat {
                addr_reg: 1,
                port_reg: None
            })
        ));
        assert_eq!(t.chains[1].rules.len(), 1, "db has no task: dropped");
        assert!(t.to_string().starts_with("table ip6 shoal-lb"));
        // With ports, the port follows the 16-byte address: NFT_REG32_04.
        let with_port = [(task(2), Some(80)), (task(3), Some(80))];
        let (rule, map) = spread(&[], &with_port, "m", "web").unwrap();
        assert_eq!(map.unwrap().data_len, 20);
        assert!(matches!(
            rule.exprs.last(),
            Some(Expr::Dnat {
                addr_reg: 1,
                port_reg: Some(12)
            })
        ));
    }
}

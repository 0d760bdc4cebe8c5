//! The routing mesh's return path inside a task's sandbox, for published ports that
//! keep the client's source address (`src=preserve`).
//!
//! ```text
//!  client ─▶ node A:PUBLISHED ─dnat, no snat; frame from A's node MAC─▶ task on node B
//!    sandbox prerouting: ether saddr == A's node MAC ─▶ ct mark set MARK(A)
//!  task's reply ─▶ sandbox output (type route): ct mark MARK(A) ─▶ meta mark set MARK(A)
//!    ─▶ ip rule fwmark MARK(A) lookup MARK(A) ─▶ default via A's node address
//!    ─▶ A's node MAC ─▶ node A: lifted off its bridge, de-NATed by A's conntrack ─▶ client
//! ```
//! Node A holds the connection's translation, so the reply must go back through A and
//! not out of node B's own gateway. The sandbox tells which node a connection came
//! through by the source MAC of its first packet: every node's address on a network has
//! a MAC of its own ([`NodeAddr`](crate::overlay::NodeAddr)), and node A stamps it on
//! the published connections it forwards without source NAT.
//!
//! One mark, one rule and one routing table per ingress node on the sandbox's network:
//! the mark and the table number are the node's IPv4 address itself as a number
//! (addresses are unique in the cluster, so marks never collide across networks); on an
//! IPv6-only network, the low 31 bits of its IPv6 address with the top bit set (see
//! [`mark`]). Only ingress
//! nodes that are up get them: a node that goes down or leaves loses its mark, rule and
//! table in every sandbox, so no new flow's reply is ever routed to a dead node.
//!
//! - [`chains`]: the nftables chains (added to the sandbox's `shoal-lb` table).
//! - [`routes`], [`diff`]: the policy routes the sandbox should have and the changes to
//!   get there from what it has; `apply` observes and changes them over netlink.
//!
//! IPv6 (dual-stack and IPv6-only networks) takes the same way: the chains in the
//! sandbox's `ip6` table, `ip -6 rule fwmark MARK lookup MARK`, and table MARK's default
//! route via the ingress node's IPv6 address on the network. An IPv6-only network has
//! nothing in the `ip` table and no IPv4 rule.

mod apply;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use apply::{apply, observe};

use crate::nft::{BaseChain, Chain, ChainType, CmpOp, Expr, Hook, MetaKey, PayloadBase, Rule};

/// The priority of the return path's `ip rule`s (before the main table's 32766).
pub const RULE_PRIORITY: u32 = 1000;

/// An ingress node as one sandbox sees it: the node's address and MAC on a network the
/// sandbox is on, and the sandbox's interface on that network.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IngressPeer {
    /// The node's name (for comments).
    pub node: String,
    /// The node's IPv4 address on the network; none on an IPv6-only network.
    pub ip: Option<Ipv4Addr>,
    /// Its IPv6 address on a dual-stack or IPv6-only network: replies over IPv6 go
    /// back through it.
    pub ip6: Option<Ipv6Addr>,
    /// Its MAC.
    pub mac: [u8; 6],
    /// The sandbox's interface on the network.
    pub ifname: String,
}

impl IngressPeer {
    /// The address its mark is made from: its IPv4 one, else (IPv6-only network) its
    /// IPv6 one; none for a peer without either.
    pub fn key(&self) -> Option<IpAddr> {
        self.ip.map(IpAddr::V4).or(self.ip6.map(IpAddr::V6))
    }

    /// Its address in `family`.
    pub fn addr(&self, family: IpFamily) -> Option<IpAddr> {
        match family {
            IpFamily::V4 => self.ip.map(IpAddr::V4),
            IpFamily::V6 => self.ip6.map(IpAddr::V6),
        }
    }
}

/// The connection mark, packet mark and routing table number of replies that go back
/// through the ingress node whose address (its [`IngressPeer::key`]) is `ip`. An IPv4
/// address is its own number. An IPv6 one (an IPv6-only network, whose node addresses
/// are allocated serially from one subnet) is its low 31 bits with the top bit set:
/// distinct for the node addresses of one network (a sandbox's peers are on its
/// service's first network), and never a reserved table (0, 253 to 255).
pub fn mark(ip: IpAddr) -> u32 {
    match ip {
        IpAddr::V4(ip) => u32::from(ip),
        IpAddr::V6(ip) => 0x8000_0000 | (u128::from(ip) as u32 & 0x7fff_ffff),
    }
}

/// An address family of policy routes (`ip rule`, `ip -6 rule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IpFamily {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl IpFamily {
    /// Both, IPv4 first.
    pub const ALL: [IpFamily; 2] = [IpFamily::V4, IpFamily::V6];
    /// The family of `ip`.
    pub fn of(ip: IpAddr) -> IpFamily {
        match ip {
            IpAddr::V4(_) => IpFamily::V4,
            IpAddr::V6(_) => IpFamily::V6,
        }
    }
}

/// A policy route: packets marked `mark` look up table `mark` (of `via`'s family),
/// whose default route goes via `via` on `ifname`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReturnRoute {
    /// Mark and table number.
    pub mark: u32,
    /// The ingress node's address.
    pub via: IpAddr,
    /// The sandbox's interface towards it.
    pub ifname: String,
}

impl ReturnRoute {
    /// The family of its rule and table.
    pub fn family(&self) -> IpFamily {
        IpFamily::of(self.via)
    }
}

/// The return routes a sandbox with `peers` should have: IPv4 ones through peers with
/// an IPv4 address, and IPv6 ones (same marks, in the IPv6 tables) through peers with
/// an IPv6 one.
pub fn routes(peers: &[IngressPeer]) -> Vec<ReturnRoute> {
    let mut out: Vec<ReturnRoute> = peers
        .iter()
        .filter_map(|p| Some((p, mark(p.key()?))))
        .flat_map(|(p, mark)| {
            IpFamily::ALL.into_iter().filter_map(move |f| {
                Some(ReturnRoute {
                    mark,
                    via: p.addr(f)?,
                    ifname: p.ifname.clone(),
                })
            })
        })
        .collect();
    out.sort_by_key(|r| (r.family(), r.mark, r.via, r.ifname.clone()));
    out.dedup_by_key(|r| (r.family(), r.mark));
    out
}

/// The nftables chains of the sandbox's table of `family` that mark connections by the
/// ingress node they came through and give their replies that mark: one rule each for
/// the peers with an address in `family`; no chains without any.
pub fn chains(peers: &[IngressPeer], family: IpFamily) -> Vec<Chain> {
    let mut marking = Vec::new();
    let mut routing = Vec::new();
    for p in peers {
        let (Some(key), Some(ip)) = (p.key(), p.addr(family)) else {
            continue;
        };
        let m = mark(key).to_ne_bytes().to_vec();
        marking.push(Rule {
            exprs: vec![
                Expr::Payload {
                    base: PayloadBase::LinkLayer,
                    offset: 6,
                    len: 6,
                    dreg: 1,
                },
                Expr::Cmp {
                    sreg: 1,
                    op: CmpOp::Eq,
                    data: p.mac.to_vec(),
                },
                Expr::Immediate {
                    dreg: 1,
                    data: m.clone(),
                },
                Expr::CtMarkSet { sreg: 1 },
            ],
            comment: format!("came through node {} ({ip})", p.node),
        });
        routing.push(Rule {
            exprs: vec![
                Expr::CtMark { dreg: 1 },
                Expr::Cmp {
                    sreg: 1,
                    op: CmpOp::Eq,
                    data: m.clone(),
                },
                Expr::Immediate { dreg: 1, data: m },
                Expr::MetaSet {
                    key: MetaKey::Mark,
                    sreg: 1,
                },
            ],
            comment: format!("answers go back through node {} ({ip})", p.node),
        });
    }
    if marking.is_empty() {
        return Vec::new();
    }
    let base = |hook, kind| {
        Some(BaseChain {
            hook,
            kind,
            // mangle: after conntrack (-200), before NAT.
            priority: -150,
            accept: true,
        })
    };
    vec![
        Chain {
            name: "return-mark".into(),
            base: base(Hook::Prerouting, ChainType::Filter),
            rules: marking,
        },
        Chain {
            name: "return-route".into(),
            base: base(Hook::Output, ChainType::Route),
            rules: routing,
        },
    ]
}

/// The return path a sandbox has in one family: its `ip rule`s at [`RULE_PRIORITY`]
/// (fwmark, table) and the default routes of those tables (table, gateway, interface
/// name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObservedReturn {
    /// `(fwmark, table)` of each rule at [`RULE_PRIORITY`].
    pub rules: Vec<(u32, u32)>,
    /// `(table, via, interface)` of each default route in a table those rules name.
    pub routes: Vec<(u32, Option<IpAddr>, Option<String>)>,
}

/// One change to a sandbox's return path, in the family it is applied in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReturnChange {
    /// Remove the rule `fwmark → table`.
    DelRule {
        /// Its mark.
        fwmark: u32,
        /// Its table.
        table: u32,
    },
    /// Remove table `0`'s default route.
    DelRoute(u32),
    /// Add or replace a table's default route.
    SetRoute(ReturnRoute),
    /// Add the rule for a route's mark.
    AddRule(u32),
}

/// The changes that turn `have` into `want` (both of one family): stale rules go first
/// (no new reply takes them), routes are set before the rules that lead to them.
pub fn diff(want: &[ReturnRoute], have: &ObservedReturn) -> Vec<ReturnChange> {
    let mut out = Vec::new();
    for &(fwmark, table) in &have.rules {
        if !want.iter().any(|w| w.mark == fwmark && w.mark == table) {
            out.push(ReturnChange::DelRule { fwmark, table });
        }
    }
    for (table, _, _) in &have.routes {
        if !want.iter().any(|w| w.mark == *table) {
            out.push(ReturnChange::DelRoute(*table));
        }
    }
    for w in want {
        let right = have.routes.iter().any(|(t, via, dev)| {
            *t == w.mark && *via == Some(w.via) && dev.as_deref() == Some(&w.ifname)
        });
        if !right {
            out.push(ReturnChange::SetRoute(w.clone()));
        }
    }
    for w in want {
        if !have.rules.contains(&(w.mark, w.mark)) {
            out.push(ReturnChange::AddRule(w.mark));
        }
    }
    out
}

#[cfg(test)]
mod tests;

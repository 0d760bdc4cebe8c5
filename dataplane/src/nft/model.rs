//! The rules shoal wants, as plain data: tables, chains, rules, expressions.
//!
//! Built by pure code (plans), shown in nft syntax for people (`Display`), encoded to
//! netlink by `encode`.

use std::fmt;

use super::consts::*;

/// Which packets a table sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4 only.
    Ip,
    /// IPv6 only.
    Ip6,
    /// IPv4 and IPv6.
    Inet,
    /// Frames crossing a Linux bridge.
    Bridge,
}

impl Family {
    /// The netlink family number.
    pub fn number(self) -> u8 {
        match self {
            Family::Ip => NFPROTO_IPV4 as u8,
            Family::Ip6 => NFPROTO_IPV6 as u8,
            Family::Inet => NFPROTO_INET as u8,
            Family::Bridge => NFPROTO_BRIDGE as u8,
        }
    }
}

/// Where a base chain hooks in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hook {
    /// Before routing.
    Prerouting,
    /// To this host.
    Input,
    /// Routed through.
    Forward,
    /// From this host.
    Output,
    /// After routing.
    Postrouting,
}

impl Hook {
    /// The hook number.
    pub fn number(self) -> u32 {
        match self {
            Hook::Prerouting => NF_INET_PRE_ROUTING,
            Hook::Input => NF_INET_LOCAL_IN,
            Hook::Forward => NF_INET_FORWARD,
            Hook::Output => NF_INET_LOCAL_OUT,
            Hook::Postrouting => NF_INET_POST_ROUTING,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Hook::Prerouting => "prerouting",
            Hook::Input => "input",
            Hook::Forward => "forward",
            Hook::Output => "output",
            Hook::Postrouting => "postrouting",
        }
    }
}

/// A base chain's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChainType {
    /// Filtering.
    Filter,
    /// Address translation.
    Nat,
    /// Packets from this host routed again when their mark changes (output only).
    Route,
}

impl ChainType {
    /// The type's name, as netlink and nft spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            ChainType::Filter => "filter",
            ChainType::Nat => "nat",
            ChainType::Route => "route",
        }
    }

    /// The type named `name`.
    pub fn from_name(name: &str) -> Option<ChainType> {
        [ChainType::Filter, ChainType::Nat, ChainType::Route]
            .into_iter()
            .find(|t| t.as_str() == name)
    }
}

/// How a base chain attaches to a hook.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BaseChain {
    /// The hook.
    pub hook: Hook,
    /// filter, nat or route.
    pub kind: ChainType,
    /// Priority (srcnat is 100, dstnat -100, filter 0).
    pub priority: i32,
    /// Whether unmatched packets are accepted (true) or dropped.
    pub accept: bool,
}

/// A chain and its rules.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Chain {
    /// Its name.
    pub name: String,
    /// Set for base chains.
    pub base: Option<BaseChain>,
    /// Its rules, in order.
    pub rules: Vec<Rule>,
}

/// A table: the unit shoal replaces atomically.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Table {
    /// Its name.
    pub name: String,
    /// Its family.
    pub family: Family,
    /// Its chains.
    pub chains: Vec<Chain>,
    /// Its named maps, which rules look up ([`Expr::Lookup`]).
    pub maps: Vec<Map>,
    /// Its conntrack timeout policies, which rules attach ([`Expr::CtTimeout`]).
    pub timeouts: Vec<CtTimeoutPolicy>,
}

impl Table {
    /// A table with `chains` and no maps or timeout policies.
    pub fn with_chains(name: &str, family: Family, chains: Vec<Chain>) -> Table {
        Table {
            name: name.to_string(),
            family,
            chains,
            maps: Vec::new(),
            timeouts: Vec::new(),
        }
    }
}

/// A map element: its key and its value, in register byte order.
pub type Element = (Vec<u8>, Vec<u8>);

/// A named map from keys to data, e.g. a draw of `numgen` to a backend's address and
/// port (`map NAME { 0 : 10.0.0.2 . 80, 1 : 10.0.0.3 . 80 }`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Map {
    /// Its name.
    pub name: String,
    /// Bytes per key.
    pub key_len: u32,
    /// Bytes per value (components padded to 4 bytes, as nft concatenates).
    pub data_len: u32,
    /// The elements, keys and values in register byte order.
    pub elements: Vec<Element>,
}

/// A conntrack timeout policy: connections it is attached to time out after these
/// (`ct timeout NAME { protocol tcp; policy = { established: 300 } }`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CtTimeoutPolicy {
    /// Its name.
    pub name: String,
    /// The IP protocol (6 TCP, 17 UDP).
    pub l4proto: u8,
    /// (`CTA_TIMEOUT_*` state, seconds); states left out keep the kernel's defaults.
    pub policy: Vec<(u16, u32)>,
}

/// Operators of [`Expr::Cmp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    /// Equal.
    Eq,
    /// Not equal.
    Neq,
}

/// What to do with a packet.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Let it through.
    Accept,
    /// Drop it.
    Drop,
    /// Continue in another chain, then come back.
    Jump(String),
    /// Continue in another chain, not coming back.
    Goto(String),
    /// Back to the calling chain.
    Return,
}

/// Packet metadata keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetaKey {
    /// Input interface name.
    IifName,
    /// Output interface name.
    OifName,
    /// Layer 4 protocol.
    L4Proto,
    /// Layer 3 protocol family (`meta nfproto`: 2 IPv4, 10 IPv6), in `inet` tables.
    NfProto,
    /// Packet mark.
    Mark,
    /// Packet type (host, broadcast, multicast, other host); settable in bridge
    /// prerouting.
    PktType,
}

/// Header a payload offset is relative to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayloadBase {
    /// Ethernet header.
    LinkLayer,
    /// IP header.
    Network,
    /// TCP/UDP header.
    Transport,
}

/// One nf_tables expression. Registers are netlink numbers: 1..=4 for the 128-bit ones,
/// 8..=23 for their 32-bit parts (8 is the same register as 1, 9 its second word).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Expr {
    /// Load metadata into a register.
    Meta { key: MetaKey, dreg: u32 },
    /// Compare a register with data; the rule stops if false.
    Cmp { sreg: u32, op: CmpOp, data: Vec<u8> },
    /// Load header bytes into a register.
    Payload {
        base: PayloadBase,
        offset: u32,
        len: u32,
        dreg: u32,
    },
    /// reg = (reg & mask) ^ xor.
    Bitwise {
        sreg: u32,
        dreg: u32,
        mask: Vec<u8>,
        xor: Vec<u8>,
    },
    /// Store a register into metadata.
    MetaSet { key: MetaKey, sreg: u32 },
    /// Write a register over header bytes (no checksum to fix: link-layer fields).
    PayloadSet {
        base: PayloadBase,
        offset: u32,
        len: u32,
        sreg: u32,
    },
    /// Load data into a register.
    Immediate { dreg: u32, data: Vec<u8> },
    /// A verdict.
    Verdict(Verdict),
    /// Source-NAT to the outgoing interface's address.
    Masquerade,
    /// Source NAT to the address in a register.
    Snat { addr_reg: u32 },
    /// Destination NAT to the address (and port) in registers.
    Dnat {
        addr_reg: u32,
        port_reg: Option<u32>,
    },
    /// reg = random or incremental number modulo `modulus`.
    Numgen {
        dreg: u32,
        modulus: u32,
        random: bool,
    },
    /// Count packets and bytes.
    Counter,
    /// Do not track the packet in conntrack (raw-priority chains only).
    Notrack,
    /// reg = the routing type (`RTN_*`, host byte order) of the destination address:
    /// nft's `fib daddr type`.
    FibDaddrType { dreg: u32 },
    /// Look the key in `sreg` up in map `set`, its value into `dreg` (the rule stops when
    /// the key is missing).
    Lookup {
        set: String,
        sreg: u32,
        dreg: Option<u32>,
    },
    /// Attach conntrack timeout policy `0` to the packet's (new) connection; in a chain
    /// that runs before conntrack (priority raw).
    CtTimeout(String),
    /// reg = the mark of the packet's connection (`ct mark`).
    CtMark { dreg: u32 },
    /// Store a register into the mark of the packet's connection (`ct mark set`).
    CtMarkSet { sreg: u32 },
    /// reg = the status bits of the packet's connection (`ct status`).
    CtStatus { dreg: u32 },
}

impl Expr {
    /// The expression's netlink name.
    pub fn name(&self) -> &'static str {
        match self {
            Expr::Meta { .. } | Expr::MetaSet { .. } => "meta",
            Expr::Cmp { .. } => "cmp",
            Expr::Payload { .. } | Expr::PayloadSet { .. } => "payload",
            Expr::Bitwise { .. } => "bitwise",
            Expr::Immediate { .. } | Expr::Verdict(_) => "immediate",
            Expr::Masquerade => "masq",
            Expr::Dnat { .. } | Expr::Snat { .. } => "nat",
            Expr::Numgen { .. } => "numgen",
            Expr::Counter => "counter",
            Expr::Notrack => "notrack",
            Expr::FibDaddrType { .. } => "fib",
            Expr::Lookup { .. } => "lookup",
            Expr::CtTimeout(_) => "objref",
            Expr::CtMark { .. } | Expr::CtMarkSet { .. } | Expr::CtStatus { .. } => "ct",
        }
    }
}

/// A rule: expressions evaluated in order, and a comment saying why it exists.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rule {
    /// The expressions.
    pub exprs: Vec<Expr>,
    /// What the rule is for (shown by `nft list` and `shoal status`).
    pub comment: String,
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Meta { key, dreg } => write!(f, "meta load {key:?} => reg {dreg}"),
            Expr::MetaSet { key, sreg } => write!(f, "meta set {key:?} with reg {sreg}"),
            Expr::PayloadSet {
                base,
                offset,
                len,
                sreg,
            } => write!(
                f,
                "payload write reg {sreg} => {len}b @ {base:?} + {offset}"
            ),
            Expr::Cmp { sreg, op, data } => {
                let shown = match std::str::from_utf8(data) {
                    Ok(s) if data.iter().all(|b| b.is_ascii_graphic() || *b == 0) => {
                        format!("{:?}", s.trim_end_matches('\0'))
                    }
                    _ => format!(
                        "0x{}",
                        data.iter().map(|b| format!("{b:02x}")).collect::<String>()
                    ),
                };
                write!(
                    f,
                    "cmp {} reg {sreg} {shown}",
                    if *op == CmpOp::Eq { "eq" } else { "neq" }
                )
            }
            Expr::Payload {
                base,
                offset,
                len,
                dreg,
            } => {
                write!(f, "payload load {len}b @ {base:?} + {offset} => reg {dreg}")
            }
            Expr::Bitwise {
                sreg, mask, xor, ..
            } if xor.iter().any(|b| *b != 0) => {
                write!(f, "bitwise reg {sreg} & 0x{} ^ 0x{}", hex(mask), hex(xor))
            }
            Expr::Bitwise { sreg, mask, .. } => write!(f, "bitwise reg {sreg} & 0x{}", hex(mask)),
            Expr::Immediate { dreg, data } => write!(f, "immediate reg {dreg} 0x{}", hex(data)),
            Expr::Verdict(v) => write!(f, "{}", verdict_text(v)),
            Expr::Masquerade => write!(f, "masquerade"),
            Expr::Snat { addr_reg } => write!(f, "snat addr reg {addr_reg}"),
            Expr::Dnat { addr_reg, port_reg } => match port_reg {
                Some(p) => write!(f, "dnat addr reg {addr_reg} port reg {p}"),
                None => write!(f, "dnat addr reg {addr_reg}"),
            },
            Expr::Numgen {
                dreg,
                modulus,
                random,
            } => write!(
                f,
                "numgen {} mod {modulus} => reg {dreg}",
                if *random { "random" } else { "inc" }
            ),
            Expr::Counter => write!(f, "counter"),
            Expr::Notrack => write!(f, "notrack"),
            Expr::FibDaddrType { dreg } => write!(f, "fib daddr type => reg {dreg}"),
            Expr::Lookup {
                set,
                sreg,
                dreg: Some(d),
            } => write!(f, "lookup reg {sreg} map {set} => reg {d}"),
            Expr::Lookup { set, sreg, .. } => write!(f, "lookup reg {sreg} set {set}"),
            Expr::CtTimeout(name) => write!(f, "ct timeout set {name:?}"),
            Expr::CtMark { dreg } => write!(f, "ct load mark => reg {dreg}"),
            Expr::CtMarkSet { sreg } => write!(f, "ct set mark with reg {sreg}"),
            Expr::CtStatus { dreg } => write!(f, "ct load status => reg {dreg}"),
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

fn verdict_text(v: &Verdict) -> String {
    match v {
        Verdict::Accept => "accept".into(),
        Verdict::Drop => "drop".into(),
        Verdict::Jump(c) => format!("jump {c}"),
        Verdict::Goto(c) => format!("goto {c}"),
        Verdict::Return => "return".into(),
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fam = match self.family {
            Family::Ip => "ip",
            Family::Ip6 => "ip6",
            Family::Inet => "inet",
            Family::Bridge => "bridge",
        };
        writeln!(f, "table {fam} {} {{", self.name)?;
        for t in &self.timeouts {
            let policy: Vec<String> = t.policy.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            writeln!(
                f,
                "  ct timeout {} {{ l4proto {}; policy = {{ {} }} }}",
                t.name,
                t.l4proto,
                policy.join(", ")
            )?;
        }
        for m in &self.maps {
            let elements: Vec<String> = m
                .elements
                .iter()
                .map(|(k, v)| format!("0x{} : 0x{}", hex(k), hex(v)))
                .collect();
            writeln!(f, "  map {} {{ {} }}", m.name, elements.join(", "))?;
        }
        for c in &self.chains {
            writeln!(f, "  chain {} {{", c.name)?;
            if let Some(b) = &c.base {
                let kind = b.kind.as_str();
                let policy = if b.accept { "accept" } else { "drop" };
                writeln!(
                    f,
                    "    type {kind} hook {} priority {}; policy {policy};",
                    b.hook.name(),
                    b.priority
                )?;
            }
            for r in &c.rules {
                let exprs: Vec<String> = r.exprs.iter().map(|e| e.to_string()).collect();
                writeln!(f, "    {}  # {}", exprs.join(" | "), r.comment)?;
            }
            writeln!(f, "  }}")?;
        }
        writeln!(f, "}}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_print_in_nft_style() {
        let t = Table::with_chains(
            "shoal",
            Family::Ip,
            vec![Chain {
                name: "post".into(),
                base: Some(BaseChain {
                    hook: Hook::Postrouting,
                    kind: ChainType::Nat,
                    priority: 100,
                    accept: true,
                }),
                rules: vec![Rule {
                    exprs: vec![Expr::Masquerade],
                    comment: "egress".into(),
                }],
            }],
        );
        let s = t.to_string();
        assert!(
            s.contains("type nat hook postrouting priority 100; policy accept;"),
            "{s}"
        );
        assert!(s.contains("masquerade  # egress"), "{s}");
    }
}

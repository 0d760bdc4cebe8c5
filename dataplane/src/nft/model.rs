//! The rules shoal wants, as plain data: tables, chains, rules, expressions.
//!
//! Built by pure code (plans), shown in nft syntax for people (`Display`), encoded to
//! netlink by [`encode`](super::encode).

use std::fmt;
use std::net::Ipv4Addr;

use super::consts::*;

/// Which packets a table sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4 only.
    Ip,
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
}

/// How a base chain attaches to a hook.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BaseChain {
    /// The hook.
    pub hook: Hook,
    /// filter or nat.
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

/// One nf_tables expression. Registers are 1..=4 (128-bit) here.
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

/// Interface names are compared as NUL-padded 16-byte strings; a prefix match compares
/// only the prefix bytes (nft's `"shl-b*"`).
fn ifname_bytes(name: &str, wildcard: bool) -> Vec<u8> {
    let mut b = name.as_bytes().to_vec();
    if !wildcard {
        b.push(0);
    }
    b
}

/// Rule-building helpers, each one match or action.
pub mod m {
    use super::*;

    /// `iifname NAME` (a trailing `*` matches a prefix).
    pub fn iifname(op: CmpOp, name: &str) -> Vec<Expr> {
        ifname(MetaKey::IifName, op, name)
    }
    /// `oifname NAME` (a trailing `*` matches a prefix).
    pub fn oifname(op: CmpOp, name: &str) -> Vec<Expr> {
        ifname(MetaKey::OifName, op, name)
    }
    fn ifname(key: MetaKey, op: CmpOp, name: &str) -> Vec<Expr> {
        let (base, wildcard) = match name.strip_suffix('*') {
            Some(p) => (p, true),
            None => (name, false),
        };
        vec![
            Expr::Meta { key, dreg: 1 },
            Expr::Cmp {
                sreg: 1,
                op,
                data: ifname_bytes(base, wildcard),
            },
        ]
    }
    /// `ip saddr` or `ip daddr` in (or not in) `addr/prefix`.
    pub fn ip_addr(dst: bool, op: CmpOp, addr: Ipv4Addr, prefix: u8) -> Vec<Expr> {
        let offset = if dst { 16 } else { 12 };
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(prefix))
        };
        let net = u32::from(addr) & mask;
        let mut out = vec![Expr::Payload {
            base: PayloadBase::Network,
            offset,
            len: 4,
            dreg: 1,
        }];
        if prefix < 32 {
            out.push(Expr::Bitwise {
                sreg: 1,
                dreg: 1,
                mask: mask.to_be_bytes().to_vec(),
                xor: vec![0; 4],
            });
        }
        out.push(Expr::Cmp {
            sreg: 1,
            op,
            data: net.to_be_bytes().to_vec(),
        });
        out
    }
    /// `meta l4proto P` (6 tcp, 17 udp).
    pub fn l4proto(proto: u8) -> Vec<Expr> {
        vec![
            Expr::Meta {
                key: MetaKey::L4Proto,
                dreg: 1,
            },
            Expr::Cmp {
                sreg: 1,
                op: CmpOp::Eq,
                data: vec![proto],
            },
        ]
    }
    /// `th sport PORT` (after an l4proto match).
    pub fn sport(port: u16) -> Vec<Expr> {
        vec![
            Expr::Payload {
                base: PayloadBase::Transport,
                offset: 0,
                len: 2,
                dreg: 1,
            },
            Expr::Cmp {
                sreg: 1,
                op: CmpOp::Eq,
                data: port.to_be_bytes().to_vec(),
            },
        ]
    }
    /// `th dport PORT` (after an l4proto match).
    pub fn dport(port: u16) -> Vec<Expr> {
        vec![
            Expr::Payload {
                base: PayloadBase::Transport,
                offset: 2,
                len: 2,
                dreg: 1,
            },
            Expr::Cmp {
                sreg: 1,
                op: CmpOp::Eq,
                data: port.to_be_bytes().to_vec(),
            },
        ]
    }
    /// A verdict.
    pub fn verdict(v: Verdict) -> Vec<Expr> {
        vec![Expr::Verdict(v)]
    }
    /// `meta mark & BITS == BITS`: the packet carries these mark bits, whatever else.
    pub fn mark_bits(bits: u32) -> Vec<Expr> {
        vec![
            Expr::Meta {
                key: MetaKey::Mark,
                dreg: 1,
            },
            Expr::Bitwise {
                sreg: 1,
                dreg: 1,
                mask: bits.to_ne_bytes().to_vec(),
                xor: vec![0; 4],
            },
            Expr::Cmp {
                sreg: 1,
                op: CmpOp::Eq,
                data: bits.to_ne_bytes().to_vec(),
            },
        ]
    }
    /// `meta mark set meta mark | BITS`: the other bits of the mark, which other tools
    /// may use, are kept.
    pub fn set_mark_bits(bits: u32) -> Vec<Expr> {
        vec![
            Expr::Meta {
                key: MetaKey::Mark,
                dreg: 1,
            },
            Expr::Bitwise {
                sreg: 1,
                dreg: 1,
                mask: (!bits).to_ne_bytes().to_vec(),
                xor: bits.to_ne_bytes().to_vec(),
            },
            Expr::MetaSet {
                key: MetaKey::Mark,
                sreg: 1,
            },
        ]
    }
    /// `snat to ADDR`.
    pub fn snat(addr: Ipv4Addr) -> Vec<Expr> {
        vec![
            Expr::Immediate {
                dreg: 1,
                data: addr.octets().to_vec(),
            },
            Expr::Snat { addr_reg: 1 },
        ]
    }
    /// `ether type T` (bridge family).
    pub fn ether_type(ethertype: u16) -> Vec<Expr> {
        vec![
            Expr::Payload {
                base: PayloadBase::LinkLayer,
                offset: 12,
                len: 2,
                dreg: 1,
            },
            Expr::Cmp {
                sreg: 1,
                op: CmpOp::Eq,
                data: ethertype.to_be_bytes().to_vec(),
            },
        ]
    }
    /// `ether daddr MAC` or `ether saddr MAC` (bridge family).
    pub fn ether_addr(dst: bool, mac: [u8; 6]) -> Vec<Expr> {
        vec![
            Expr::Payload {
                base: PayloadBase::LinkLayer,
                offset: if dst { 0 } else { 6 },
                len: 6,
                dreg: 1,
            },
            Expr::Cmp {
                sreg: 1,
                op: CmpOp::Eq,
                data: mac.to_vec(),
            },
        ]
    }
    /// `ether daddr set MAC` or `ether saddr set MAC` (bridge family).
    pub fn set_ether_addr(dst: bool, mac: [u8; 6]) -> Vec<Expr> {
        vec![
            Expr::Immediate {
                dreg: 1,
                data: mac.to_vec(),
            },
            Expr::PayloadSet {
                base: PayloadBase::LinkLayer,
                offset: if dst { 0 } else { 6 },
                len: 6,
                sreg: 1,
            },
        ]
    }
    /// `meta pkttype set host`: a frame the bridge passes up is for this host (bridge
    /// prerouting only).
    pub fn set_pkttype_host() -> Vec<Expr> {
        vec![
            Expr::Immediate {
                dreg: 1,
                data: vec![0],
            },
            Expr::MetaSet {
                key: MetaKey::PktType,
                sreg: 1,
            },
        ]
    }
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
            Family::Inet => "inet",
            Family::Bridge => "bridge",
        };
        writeln!(f, "table {fam} {} {{", self.name)?;
        for c in &self.chains {
            writeln!(f, "  chain {} {{", c.name)?;
            if let Some(b) = &c.base {
                let kind = if b.kind == ChainType::Nat {
                    "nat"
                } else {
                    "filter"
                };
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
    fn prefix_match_masks_and_compares_network() {
        let e = m::ip_addr(false, CmpOp::Eq, Ipv4Addr::new(10, 0, 1, 7), 24);
        assert_eq!(
            e[1],
            Expr::Bitwise {
                sreg: 1,
                dreg: 1,
                mask: vec![255, 255, 255, 0],
                xor: vec![0; 4]
            }
        );
        assert_eq!(
            e[2],
            Expr::Cmp {
                sreg: 1,
                op: CmpOp::Eq,
                data: vec![10, 0, 1, 0]
            }
        );
    }

    /// What the register holds after `exprs` run on a packet with `mark` (a meta load
    /// then bitwise steps), and whether a compare in them held.
    fn run_on_mark(exprs: &[Expr], mark: u32) -> (u32, bool) {
        let mut reg = 0u32;
        let mut held = true;
        let word = |b: &[u8]| u32::from_ne_bytes(b.try_into().unwrap());
        for e in exprs {
            match e {
                Expr::Meta { .. } => reg = mark,
                Expr::Bitwise { mask, xor, .. } => reg = (reg & word(mask)) ^ word(xor),
                Expr::Cmp { data, .. } => held &= reg == word(data),
                _ => {}
            }
        }
        (reg, held)
    }

    #[test]
    fn mark_bits_are_set_and_tested_without_touching_the_other_bits() {
        let bit = 0x2000;
        let set = m::set_mark_bits(bit);
        assert!(matches!(set.last(), Some(Expr::MetaSet { .. })));
        assert_eq!(run_on_mark(&set, 0).0, 0x2000);
        assert_eq!(
            run_on_mark(&set, 0x4000_00ca).0,
            0x4000_20ca,
            "others' bits stay"
        );
        assert_eq!(
            run_on_mark(&set, 0x2000).0,
            0x2000,
            "setting twice is harmless"
        );
        let test = m::mark_bits(bit);
        assert!(run_on_mark(&test, 0x2000).1);
        assert!(run_on_mark(&test, 0xffff_ffff).1);
        assert!(!run_on_mark(&test, 0x4000).1);
        assert!(!run_on_mark(&test, 0xdfff).1);
    }

    #[test]
    fn interface_wildcards_compare_only_the_prefix() {
        let exact = m::iifname(CmpOp::Eq, "shl-b4096");
        let wild = m::iifname(CmpOp::Eq, "shl-b*");
        assert_eq!(
            exact[1],
            Expr::Cmp {
                sreg: 1,
                op: CmpOp::Eq,
                data: b"shl-b4096\0".to_vec()
            }
        );
        assert_eq!(
            wild[1],
            Expr::Cmp {
                sreg: 1,
                op: CmpOp::Eq,
                data: b"shl-b".to_vec()
            }
        );
    }

    #[test]
    fn tables_print_in_nft_style() {
        let t = Table {
            name: "shoal".into(),
            family: Family::Ip,
            chains: vec![Chain {
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
        };
        let s = t.to_string();
        assert!(
            s.contains("type nat hook postrouting priority 100; policy accept;"),
            "{s}"
        );
        assert!(s.contains("masquerade  # egress"), "{s}");
    }
}

//! Rule-building helpers, each one match or action as the expressions that make it.

use std::net::{IpAddr, Ipv4Addr};

use super::model::{CmpOp, Expr, MetaKey, PayloadBase, Verdict};

/// Interface names are compared as NUL-padded 16-byte strings; a prefix match compares
/// only the prefix bytes (nft's `"shl-b*"`).
fn ifname_bytes(name: &str, wildcard: bool) -> Vec<u8> {
    let mut b = name.as_bytes().to_vec();
    if !wildcard {
        b.push(0);
    }
    b
}

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
    addr_in(dst, op, addr.into(), prefix)
}
/// `ip saddr`/`ip daddr` or `ip6 saddr`/`ip6 daddr` (by `addr`'s family, in a table of
/// that family) in (or not in) `addr/prefix`.
pub fn addr_in(dst: bool, op: CmpOp, addr: IpAddr, prefix: u8) -> Vec<Expr> {
    let (offset, bytes) = match (addr, dst) {
        (IpAddr::V4(a), false) => (12, a.octets().to_vec()),
        (IpAddr::V4(a), true) => (16, a.octets().to_vec()),
        (IpAddr::V6(a), false) => (8, a.octets().to_vec()),
        (IpAddr::V6(a), true) => (24, a.octets().to_vec()),
    };
    let bits = bytes.len() * 8;
    let prefix = usize::from(prefix).min(bits);
    let mask: Vec<u8> = (0..bytes.len())
        .map(|i| {
            let on = prefix.saturating_sub(i * 8).min(8);
            if on == 0 {
                0
            } else {
                0xffu8 << (8 - on)
            }
        })
        .collect();
    let net: Vec<u8> = bytes.iter().zip(&mask).map(|(b, m)| b & m).collect();
    let mut out = vec![Expr::Payload {
        base: PayloadBase::Network,
        offset,
        len: bytes.len() as u32,
        dreg: 1,
    }];
    if prefix < bits {
        out.push(Expr::Bitwise {
            sreg: 1,
            dreg: 1,
            mask,
            xor: vec![0; bytes.len()],
        });
    }
    out.push(Expr::Cmp {
        sreg: 1,
        op,
        data: net,
    });
    out
}
/// `fib daddr type local`: the destination is one of this host's addresses.
pub fn daddr_local() -> Vec<Expr> {
    vec![
        Expr::FibDaddrType { dreg: 1 },
        Expr::Cmp {
            sreg: 1,
            op: CmpOp::Eq,
            data: super::consts::RTN_LOCAL.to_ne_bytes().to_vec(),
        },
    ]
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
/// `meta nfproto ipv6`: an IPv6 packet (in an `inet` table).
pub fn nfproto_ipv6() -> Vec<Expr> {
    vec![
        Expr::Meta {
            key: MetaKey::NfProto,
            dreg: 1,
        },
        Expr::Cmp {
            sreg: 1,
            op: CmpOp::Eq,
            data: vec![10],
        },
    ]
}

/// `ip6 daddr` compared with one address (after an nfproto match).
pub fn ip6_daddr(op: CmpOp, addr: std::net::Ipv6Addr) -> Vec<Expr> {
    addr_in(true, op, addr.into(), 128)
}

/// `ct status dnat`: the packet's connection had its destination translated (either
/// direction of it).
pub fn ct_dnat() -> Vec<Expr> {
    let bit = super::consts::IPS_DST_NAT.to_ne_bytes().to_vec();
    vec![
        Expr::CtStatus { dreg: 1 },
        Expr::Bitwise {
            sreg: 1,
            dreg: 1,
            mask: bit.clone(),
            xor: vec![0; 4],
        },
        Expr::Cmp {
            sreg: 1,
            op: CmpOp::Eq,
            data: bit,
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
/// `snat to ADDR` (in a table of `addr`'s family).
pub fn snat(addr: impl Into<IpAddr>) -> Vec<Expr> {
    let data = match addr.into() {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    vec![
        Expr::Immediate { dreg: 1, data },
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nft::exprs;

    #[test]
    fn prefix_match_masks_and_compares_network() {
        let e = exprs::ip_addr(false, CmpOp::Eq, Ipv4Addr::new(10, 0, 1, 7), 24);
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
        let set = exprs::set_mark_bits(bit);
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
        let test = exprs::mark_bits(bit);
        assert!(run_on_mark(&test, 0x2000).1);
        assert!(run_on_mark(&test, 0xffff_ffff).1);
        assert!(!run_on_mark(&test, 0x4000).1);
        assert!(!run_on_mark(&test, 0xdfff).1);
    }

    #[test]
    fn interface_wildcards_compare_only_the_prefix() {
        let exact = exprs::iifname(CmpOp::Eq, "shl-b4096");
        let wild = exprs::iifname(CmpOp::Eq, "shl-b*");
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
}

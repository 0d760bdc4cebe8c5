//! Encoding tables as one nf_tables netlink batch (a single kernel transaction).
//!
//! ```text
//!  BATCH_BEGIN | NEWTABLE | DELTABLE | NEWTABLE | NEWOBJ... | NEWSET NEWSETELEM...
//!            | NEWCHAIN... | NEWRULE... | BATCH_END
//! ```
//! "add, delete, add" replaces the table whether or not it existed, atomically: packets
//! see the old rules or the new ones, never none. Conntrack entries (and so established
//! NAT flows) are not touched by replacing rules.

use super::consts::*;
use super::model::*;

const NLA_F_NESTED: u16 = 0x8000;
const NLMSG_HDRLEN: usize = 16;
/// nft's user-data TLV type for rule comments (libnftnl NFTNL_UDATA_RULE_COMMENT).
const UDATA_RULE_COMMENT: u8 = 0;

/// The part of a rule comment stored in the kernel (nft's user data holds 255 bytes
/// with the NUL), cut on a character boundary.
pub fn stored_comment(comment: &str) -> &str {
    let mut n = comment.len().min(254);
    while !comment.is_char_boundary(n) {
        n -= 1;
    }
    &comment[..n]
}

fn align(n: usize) -> usize {
    (n + 3) & !3
}

/// Netlink attributes being written into a buffer.
pub struct Attrs<'a>(&'a mut Vec<u8>);

impl<'a> Attrs<'a> {
    /// Attributes appended to `buf`.
    pub fn new(buf: &'a mut Vec<u8>) -> Attrs<'a> {
        Attrs(buf)
    }

    /// A raw attribute.
    pub fn put(&mut self, ty: u16, data: &[u8]) {
        let len = 4 + data.len();
        self.0.extend_from_slice(&(len as u16).to_ne_bytes());
        self.0.extend_from_slice(&ty.to_ne_bytes());
        self.0.extend_from_slice(data);
        self.0.resize(self.0.len() + align(len) - len, 0);
    }
    /// A NUL-terminated string.
    pub fn string(&mut self, ty: u16, s: &str) {
        let mut b = s.as_bytes().to_vec();
        b.push(0);
        self.put(ty, &b);
    }
    /// A big-endian u32.
    pub fn be32(&mut self, ty: u16, v: u32) {
        self.put(ty, &v.to_be_bytes());
    }
    /// A u8.
    pub fn u8(&mut self, ty: u16, v: u8) {
        self.put(ty, &[v]);
    }
    /// A nested attribute.
    pub fn nested(&mut self, ty: u16, f: impl FnOnce(&mut Attrs<'_>)) {
        let start = self.0.len();
        self.0.extend_from_slice(&[0, 0]);
        self.0.extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        f(&mut Attrs(self.0));
        let len = (self.0.len() - start) as u16;
        self.0[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }
    fn data(&mut self, ty: u16, value: &[u8]) {
        self.nested(ty, |a| a.put(NFTA_DATA_VALUE, value));
    }
}

/// A batch of nf_tables messages and what each one does (for error messages).
pub struct Batch {
    buf: Vec<u8>,
    next_seq: u32,
    /// (sequence number, description) of every message that expects an acknowledgement.
    pub steps: Vec<(u32, String)>,
}

impl Batch {
    /// An empty batch starting at sequence number `seq`.
    pub fn new(seq: u32) -> Batch {
        let mut b = Batch {
            buf: Vec::new(),
            next_seq: seq,
            steps: Vec::new(),
        };
        b.raw(
            NFNL_MSG_BATCH_BEGIN,
            NLM_F_REQUEST,
            0,
            NFNL_SUBSYS_NFTABLES,
            |_| {},
        );
        b
    }

    fn raw(
        &mut self,
        ty: u16,
        flags: u16,
        family: u8,
        res_id: u16,
        attrs: impl FnOnce(&mut Attrs<'_>),
    ) -> u32 {
        let seq = self.next_seq;
        self.next_seq += 1;
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0; NLMSG_HDRLEN]);
        self.buf.extend_from_slice(&[family, NFNETLINK_V0]);
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        attrs(&mut Attrs(&mut self.buf));
        let len = (self.buf.len() - start) as u32;
        let hdr = &mut self.buf[start..start + NLMSG_HDRLEN];
        hdr[0..4].copy_from_slice(&len.to_ne_bytes());
        hdr[4..6].copy_from_slice(&ty.to_ne_bytes());
        hdr[6..8].copy_from_slice(&flags.to_ne_bytes());
        hdr[8..12].copy_from_slice(&seq.to_ne_bytes());
        seq
    }

    fn msg(
        &mut self,
        msg: u16,
        flags: u16,
        family: Family,
        what: String,
        attrs: impl FnOnce(&mut Attrs<'_>),
    ) {
        let ty = (NFNL_SUBSYS_NFTABLES << 8) | msg;
        let seq = self.raw(
            ty,
            NLM_F_REQUEST | NLM_F_ACK | flags,
            family.number(),
            0,
            attrs,
        );
        self.steps.push((seq, what));
    }

    /// Closes the batch and returns its bytes.
    pub fn finish(mut self) -> (Vec<u8>, Vec<(u32, String)>) {
        self.raw(
            NFNL_MSG_BATCH_END,
            NLM_F_REQUEST,
            0,
            NFNL_SUBSYS_NFTABLES,
            |_| {},
        );
        (self.buf, self.steps)
    }

    /// Removes table `name` whether or not it exists.
    pub fn delete_table(&mut self, name: &str, family: Family) {
        self.msg(
            NFT_MSG_NEWTABLE,
            NLM_F_CREATE,
            family,
            format!("ensure table {name}"),
            |a| a.string(NFTA_TABLE_NAME, name),
        );
        self.msg(
            NFT_MSG_DELTABLE,
            0,
            family,
            format!("delete table {name}"),
            |a| a.string(NFTA_TABLE_NAME, name),
        );
    }

    /// Replaces `table` atomically.
    pub fn replace_table(&mut self, table: &Table) {
        let family = table.family;
        self.delete_table(&table.name, family);
        self.msg(
            NFT_MSG_NEWTABLE,
            NLM_F_CREATE | NLM_F_EXCL,
            family,
            format!("create table {}", table.name),
            |a| a.string(NFTA_TABLE_NAME, &table.name),
        );
        for t in &table.timeouts {
            self.msg(
                NFT_MSG_NEWOBJ,
                NLM_F_CREATE | NLM_F_EXCL,
                family,
                format!("create ct timeout {}", t.name),
                |a| {
                    a.string(NFTA_OBJ_TABLE, &table.name);
                    a.string(NFTA_OBJ_NAME, &t.name);
                    a.be32(NFTA_OBJ_TYPE, NFT_OBJECT_CT_TIMEOUT);
                    a.nested(NFTA_OBJ_DATA, |d| {
                        d.u8(NFTA_CT_TIMEOUT_L4PROTO, t.l4proto);
                        d.nested(NFTA_CT_TIMEOUT_DATA, |p| {
                            for (state, secs) in &t.policy {
                                p.be32(*state, *secs);
                            }
                        });
                    });
                },
            );
        }
        for (id, m) in (1u32..).zip(&table.maps) {
            self.msg(
                NFT_MSG_NEWSET,
                NLM_F_CREATE | NLM_F_EXCL,
                family,
                format!("create map {}", m.name),
                |a| {
                    a.string(NFTA_SET_TABLE, &table.name);
                    a.string(NFTA_SET_NAME, &m.name);
                    // The kernel wants an id for every set a batch creates.
                    a.be32(NFTA_SET_ID, id);
                    a.be32(NFTA_SET_FLAGS, NFT_SET_MAP);
                    a.be32(NFTA_SET_KEY_TYPE, NFT_TYPE_MARK);
                    a.be32(NFTA_SET_KEY_LEN, m.key_len);
                    // The value is an address, with a port or not (each part
                    // padded to 4 bytes): its length says which.
                    let data_type = match m.data_len {
                        8 => NFT_TYPE_IPADDR_INET_SERVICE,
                        16 => NFT_TYPE_IP6ADDR,
                        20 => NFT_TYPE_IP6ADDR_INET_SERVICE,
                        _ => NFT_TYPE_IPADDR,
                    };
                    a.be32(NFTA_SET_DATA_TYPE, data_type);
                    a.be32(NFTA_SET_DATA_LEN, m.data_len);
                },
            );
            if m.elements.is_empty() {
                continue;
            }
            self.msg(
                NFT_MSG_NEWSETELEM,
                NLM_F_CREATE | NLM_F_EXCL,
                family,
                format!("fill map {}", m.name),
                |a| {
                    a.string(NFTA_SET_ELEM_LIST_TABLE, &table.name);
                    a.string(NFTA_SET_ELEM_LIST_SET, &m.name);
                    a.nested(NFTA_SET_ELEM_LIST_ELEMENTS, |list| {
                        for (key, value) in &m.elements {
                            list.nested(NFTA_LIST_ELEM, |el| {
                                el.data(NFTA_SET_ELEM_KEY, key);
                                el.data(NFTA_SET_ELEM_DATA, value);
                            });
                        }
                    });
                },
            );
        }
        for chain in &table.chains {
            self.msg(
                NFT_MSG_NEWCHAIN,
                NLM_F_CREATE | NLM_F_EXCL,
                family,
                format!("create chain {}", chain.name),
                |a| {
                    a.string(NFTA_CHAIN_TABLE, &table.name);
                    a.string(NFTA_CHAIN_NAME, &chain.name);
                    if let Some(b) = &chain.base {
                        a.nested(NFTA_CHAIN_HOOK, |h| {
                            h.be32(NFTA_HOOK_HOOKNUM, b.hook.number());
                            h.be32(NFTA_HOOK_PRIORITY, b.priority as u32);
                        });
                        a.be32(
                            NFTA_CHAIN_POLICY,
                            if b.accept { NF_ACCEPT } else { NF_DROP },
                        );
                        a.string(NFTA_CHAIN_TYPE, b.kind.as_str());
                    }
                },
            );
        }
        for chain in &table.chains {
            for (i, rule) in chain.rules.iter().enumerate() {
                let what = format!("add rule {} #{} ({})", chain.name, i + 1, rule.comment);
                self.msg(
                    NFT_MSG_NEWRULE,
                    NLM_F_CREATE | NLM_F_APPEND,
                    family,
                    what,
                    |a| {
                        a.string(NFTA_RULE_TABLE, &table.name);
                        a.string(NFTA_RULE_CHAIN, &chain.name);
                        a.nested(NFTA_RULE_EXPRESSIONS, |list| {
                            for e in &rule.exprs {
                                list.nested(NFTA_LIST_ELEM, |el| expr(el, e, family));
                            }
                        });
                        let comment = stored_comment(&rule.comment).as_bytes();
                        let mut ud = vec![UDATA_RULE_COMMENT, (comment.len() + 1) as u8];
                        ud.extend_from_slice(comment);
                        ud.push(0);
                        a.put(NFTA_RULE_USERDATA, &ud);
                    },
                );
            }
        }
    }
}

fn verdict_code(v: &Verdict) -> (u32, Option<&str>) {
    match v {
        Verdict::Accept => (NF_ACCEPT, None),
        Verdict::Drop => (NF_DROP, None),
        Verdict::Jump(c) => (NFT_JUMP, Some(c)),
        Verdict::Goto(c) => (NFT_GOTO, Some(c)),
        Verdict::Return => (NFT_RETURN, None),
    }
}

fn meta_key(k: MetaKey) -> u32 {
    match k {
        MetaKey::IifName => NFT_META_IIFNAME,
        MetaKey::OifName => NFT_META_OIFNAME,
        MetaKey::L4Proto => NFT_META_L4PROTO,
        MetaKey::NfProto => NFT_META_NFPROTO,
        MetaKey::Mark => NFT_META_MARK,
        MetaKey::PktType => NFT_META_PKTTYPE,
    }
}

fn payload_place(d: &mut Attrs<'_>, base: PayloadBase, offset: u32, len: u32) {
    let b = match base {
        PayloadBase::LinkLayer => NFT_PAYLOAD_LL_HEADER,
        PayloadBase::Network => NFT_PAYLOAD_NETWORK_HEADER,
        PayloadBase::Transport => NFT_PAYLOAD_TRANSPORT_HEADER,
    };
    d.be32(NFTA_PAYLOAD_BASE, b);
    d.be32(NFTA_PAYLOAD_OFFSET, offset);
    d.be32(NFTA_PAYLOAD_LEN, len);
}

/// A NAT expression; its addresses are IPv6 in an `ip6` table, IPv4 elsewhere.
fn nat(d: &mut Attrs<'_>, family: Family, kind: u32, addr_reg: u32, port_reg: Option<u32>) {
    d.be32(NFTA_NAT_TYPE, kind);
    let nat_family = if family == Family::Ip6 {
        NFPROTO_IPV6
    } else {
        NFPROTO_IPV4
    };
    d.be32(NFTA_NAT_FAMILY, nat_family);
    d.be32(NFTA_NAT_REG_ADDR_MIN, addr_reg);
    if let Some(p) = port_reg {
        d.be32(NFTA_NAT_REG_PROTO_MIN, p);
    }
}

fn expr(a: &mut Attrs<'_>, e: &Expr, family: Family) {
    a.string(NFTA_EXPR_NAME, e.name());
    a.nested(NFTA_EXPR_DATA, |d| match e {
        Expr::Meta { key, dreg } => {
            d.be32(NFTA_META_KEY, meta_key(*key));
            d.be32(NFTA_META_DREG, *dreg);
        }
        Expr::Cmp { sreg, op, data } => {
            d.be32(NFTA_CMP_SREG, *sreg);
            d.be32(
                NFTA_CMP_OP,
                if *op == CmpOp::Eq {
                    NFT_CMP_EQ
                } else {
                    NFT_CMP_NEQ
                },
            );
            d.data(NFTA_CMP_DATA, data);
        }
        Expr::Payload {
            base,
            offset,
            len,
            dreg,
        } => {
            d.be32(NFTA_PAYLOAD_DREG, *dreg);
            payload_place(d, *base, *offset, *len);
        }
        Expr::PayloadSet {
            base,
            offset,
            len,
            sreg,
        } => {
            d.be32(NFTA_PAYLOAD_SREG, *sreg);
            payload_place(d, *base, *offset, *len);
            d.be32(NFTA_PAYLOAD_CSUM_TYPE, NFT_PAYLOAD_CSUM_NONE);
        }
        Expr::MetaSet { key, sreg } => {
            d.be32(NFTA_META_KEY, meta_key(*key));
            d.be32(NFTA_META_SREG, *sreg);
        }
        Expr::Bitwise {
            sreg,
            dreg,
            mask,
            xor,
        } => {
            d.be32(NFTA_BITWISE_SREG, *sreg);
            d.be32(NFTA_BITWISE_DREG, *dreg);
            d.be32(NFTA_BITWISE_LEN, mask.len() as u32);
            d.data(NFTA_BITWISE_MASK, mask);
            d.data(NFTA_BITWISE_XOR, xor);
        }
        Expr::Immediate { dreg, data } => {
            d.be32(NFTA_IMMEDIATE_DREG, *dreg);
            d.data(NFTA_IMMEDIATE_DATA, data);
        }
        Expr::Verdict(v) => {
            d.be32(NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
            d.nested(NFTA_IMMEDIATE_DATA, |data| {
                data.nested(NFTA_DATA_VERDICT, |vd| {
                    let (code, chain) = verdict_code(v);
                    vd.be32(NFTA_VERDICT_CODE, code);
                    if let Some(c) = chain {
                        vd.string(NFTA_VERDICT_CHAIN, c);
                    }
                });
            });
        }
        Expr::Masquerade | Expr::Counter | Expr::Notrack => {}
        Expr::Dnat { addr_reg, port_reg } => nat(d, family, NFT_NAT_DNAT, *addr_reg, *port_reg),
        Expr::Snat { addr_reg } => nat(d, family, NFT_NAT_SNAT, *addr_reg, None),
        Expr::Numgen {
            dreg,
            modulus,
            random,
        } => {
            d.be32(NFTA_NG_DREG, *dreg);
            d.be32(NFTA_NG_MODULUS, *modulus);
            d.be32(
                NFTA_NG_TYPE,
                if *random {
                    NFT_NG_RANDOM
                } else {
                    NFT_NG_INCREMENTAL
                },
            );
            d.be32(NFTA_NG_OFFSET, 0);
        }
        Expr::FibDaddrType { dreg } => {
            d.be32(NFTA_FIB_DREG, *dreg);
            d.be32(NFTA_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE);
            d.be32(NFTA_FIB_FLAGS, NFTA_FIB_F_DADDR);
        }
        Expr::Lookup { set, sreg, dreg } => {
            d.string(NFTA_LOOKUP_SET, set);
            d.be32(NFTA_LOOKUP_SREG, *sreg);
            if let Some(r) = dreg {
                d.be32(NFTA_LOOKUP_DREG, *r);
            }
        }
        Expr::CtTimeout(name) => {
            d.be32(NFTA_OBJREF_IMM_TYPE, NFT_OBJECT_CT_TIMEOUT);
            d.string(NFTA_OBJREF_IMM_NAME, name);
        }
        Expr::CtMark { dreg } => {
            d.be32(NFTA_CT_KEY, NFT_CT_MARK);
            d.be32(NFTA_CT_DREG, *dreg);
        }
        Expr::CtMarkSet { sreg } => {
            d.be32(NFTA_CT_KEY, NFT_CT_MARK);
            d.be32(NFTA_CT_SREG, *sreg);
        }
        Expr::CtStatus { dreg } => {
            d.be32(NFTA_CT_KEY, NFT_CT_STATUS);
            d.be32(NFTA_CT_DREG, *dreg);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nft::exprs;

    fn walk(buf: &[u8]) -> Vec<(u16, u16, u32)> {
        let mut out = Vec::new();
        let mut at = 0;
        while at + 16 <= buf.len() {
            let len = u32::from_ne_bytes(buf[at..at + 4].try_into().unwrap()) as usize;
            let ty = u16::from_ne_bytes(buf[at + 4..at + 6].try_into().unwrap());
            let flags = u16::from_ne_bytes(buf[at + 6..at + 8].try_into().unwrap());
            let seq = u32::from_ne_bytes(buf[at + 8..at + 12].try_into().unwrap());
            out.push((ty, flags, seq));
            at += align(len);
        }
        assert_eq!(at, buf.len(), "messages tile the batch exactly");
        out
    }

    #[test]
    fn replace_is_one_framed_transaction() {
        let table = Table::with_chains(
            "t",
            Family::Ip,
            vec![Chain {
                name: "c".into(),
                base: Some(BaseChain {
                    hook: Hook::Forward,
                    kind: ChainType::Filter,
                    priority: 0,
                    accept: true,
                }),
                rules: vec![Rule {
                    exprs: exprs::iifname(CmpOp::Eq, "x")
                        .into_iter()
                        .chain(exprs::verdict(Verdict::Drop))
                        .collect(),
                    comment: "r".into(),
                }],
            }],
        );
        let mut b = Batch::new(100);
        b.replace_table(&table);
        let (bytes, steps) = b.finish();
        let msgs = walk(&bytes);
        let types: Vec<u16> = msgs.iter().map(|m| m.0).collect();
        let nft = |m: u16| (NFNL_SUBSYS_NFTABLES << 8) | m;
        assert_eq!(
            types,
            vec![
                NFNL_MSG_BATCH_BEGIN,
                nft(NFT_MSG_NEWTABLE),
                nft(NFT_MSG_DELTABLE),
                nft(NFT_MSG_NEWTABLE),
                nft(NFT_MSG_NEWCHAIN),
                nft(NFT_MSG_NEWRULE),
                NFNL_MSG_BATCH_END
            ]
        );
        assert_eq!(steps.len(), 5);
        let seqs: Vec<u32> = msgs.iter().map(|m| m.2).collect();
        assert_eq!(seqs, (100..107).collect::<Vec<_>>());
        assert!(msgs[1..6].iter().all(|m| m.1 & NLM_F_ACK != 0));
    }

    /// The connection-mark expressions the return path uses read back as written, so
    /// a table holding them is not rewritten on every pass.
    #[test]
    fn ct_mark_expressions_read_back_as_written() {
        for e in [
            Expr::CtMark { dreg: 1 },
            Expr::CtMarkSet { sreg: 1 },
            Expr::CtStatus { dreg: 1 },
        ] {
            let mut buf = Vec::new();
            expr(&mut Attrs::new(&mut buf), &e, Family::Ip);
            assert_eq!(super::super::decode::expr(&buf), Some(e.clone()), "{e}");
        }
        assert_eq!(ChainType::from_name("route"), Some(ChainType::Route));
        assert_eq!(ChainType::from_name("bogus"), None);
    }
}

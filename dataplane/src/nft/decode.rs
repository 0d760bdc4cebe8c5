//! Reading nf_tables dumps back into the model, so what the kernel holds can be compared
//! with what shoal wants, rule by rule.
//!
//! ```text
//!  GETCHAIN / GETRULE / GETSET / GETSETELEM / GETOBJ dump (one table)
//!    ─▶ chain(), rule(), set(), elements(), object() ─▶ Table
//!  kernel Table == wanted Table (registers canonical, counters ignored)? nothing to do
//! ```
//! Anything the model cannot say (an expression shoal never writes, an attribute with a
//! value shoal does not use) decodes to `None`: such a rule, made by hand, is drift, and
//! the table is replaced.

use super::consts::*;
use super::model::*;

/// Netlink attributes of a message payload: (type without flags, value).
pub fn attrs(mut buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while buf.len() >= 4 {
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        let ty = u16::from_ne_bytes([buf[2], buf[3]]) & 0x3fff;
        if len < 4 || len > buf.len() {
            break;
        }
        out.push((ty, &buf[4..len]));
        buf = &buf[((len + 3) & !3).min(buf.len())..];
    }
    out
}

fn get<'a>(attrs: &[(u16, &'a [u8])], ty: u16) -> Option<&'a [u8]> {
    attrs.iter().find(|(t, _)| *t == ty).map(|(_, v)| *v)
}

fn be32(attrs: &[(u16, &[u8])], ty: u16) -> Option<u32> {
    let v = get(attrs, ty)?;
    Some(u32::from_be_bytes(v.get(..4)?.try_into().ok()?))
}

fn string(attrs: &[(u16, &[u8])], ty: u16) -> Option<String> {
    let v = get(attrs, ty)?;
    let v = v.split(|b| *b == 0).next().unwrap_or_default();
    String::from_utf8(v.to_vec()).ok()
}

/// The bytes of an `NFTA_DATA_VALUE` nested in attribute `ty`.
fn data(attrs: &[(u16, &[u8])], ty: u16) -> Option<Vec<u8>> {
    get(&self::attrs(get(attrs, ty)?), NFTA_DATA_VALUE).map(<[u8]>::to_vec)
}

/// A register as the model writes it: `NFT_REG32_xx` on a 128-bit boundary is the same
/// register as `NFT_REG_n`, and the kernel dumps it that way.
pub fn canonical_reg(reg: u32) -> u32 {
    if (NFT_REG32_00..NFT_REG32_00 + 16).contains(&reg) && (reg - NFT_REG32_00) % 4 == 0 {
        NFT_REG_1 + (reg - NFT_REG32_00) / 4
    } else {
        reg
    }
}

/// A chain from a `NEWCHAIN` dump message's attributes (after the 4-byte nfgenmsg).
pub fn chain(payload: &[u8]) -> Option<Chain> {
    let a = attrs(payload);
    let name = string(&a, NFTA_CHAIN_NAME)?;
    let base = match get(&a, NFTA_CHAIN_HOOK) {
        None => None,
        Some(hook) => {
            let h = attrs(hook);
            let hook = match be32(&h, NFTA_HOOK_HOOKNUM)? {
                NF_INET_PRE_ROUTING => Hook::Prerouting,
                NF_INET_LOCAL_IN => Hook::Input,
                NF_INET_FORWARD => Hook::Forward,
                NF_INET_LOCAL_OUT => Hook::Output,
                NF_INET_POST_ROUTING => Hook::Postrouting,
                _ => return None,
            };
            let kind = ChainType::from_name(&string(&a, NFTA_CHAIN_TYPE)?)?;
            Some(BaseChain {
                hook,
                kind,
                priority: be32(&h, NFTA_HOOK_PRIORITY)? as i32,
                accept: be32(&a, NFTA_CHAIN_POLICY).unwrap_or(NF_ACCEPT) == NF_ACCEPT,
            })
        }
    };
    Some(Chain {
        name,
        base,
        rules: Vec::new(),
    })
}

/// A rule and its chain's name from a `NEWRULE` dump message; `None` when it holds an
/// expression shoal does not write.
pub fn rule(payload: &[u8]) -> Option<(String, Rule)> {
    let a = attrs(payload);
    let chain = string(&a, NFTA_RULE_CHAIN)?;
    let exprs = attrs(get(&a, NFTA_RULE_EXPRESSIONS).unwrap_or_default())
        .into_iter()
        .filter(|(t, _)| *t == NFTA_LIST_ELEM)
        .map(|(_, e)| expr(e))
        .collect::<Option<Vec<Expr>>>()?;
    let comment = get(&a, NFTA_RULE_USERDATA)
        .and_then(comment)
        .unwrap_or_default();
    Some((chain, Rule { exprs, comment }))
}

/// The comment TLV of nft's rule user data.
fn comment(mut ud: &[u8]) -> Option<String> {
    while ud.len() >= 2 {
        let (ty, len) = (ud[0], ud[1] as usize);
        let value = ud.get(2..2 + len)?;
        if ty == 0 {
            let text = value.split(|b| *b == 0).next().unwrap_or_default();
            return String::from_utf8(text.to_vec()).ok();
        }
        ud = &ud[2 + len..];
    }
    None
}

/// One expression (an `NFTA_LIST_ELEM`'s contents), if it is one shoal writes.
pub fn expr(elem: &[u8]) -> Option<Expr> {
    let a = attrs(elem);
    let name = string(&a, NFTA_EXPR_NAME)?;
    let d = attrs(get(&a, NFTA_EXPR_DATA).unwrap_or_default());
    known(&name, &d)
}

fn meta_key(k: u32) -> Option<MetaKey> {
    Some(match k {
        NFT_META_IIFNAME => MetaKey::IifName,
        NFT_META_OIFNAME => MetaKey::OifName,
        NFT_META_L4PROTO => MetaKey::L4Proto,
        NFT_META_NFPROTO => MetaKey::NfProto,
        NFT_META_MARK => MetaKey::Mark,
        NFT_META_PKTTYPE => MetaKey::PktType,
        _ => return None,
    })
}

fn payload_base(b: u32) -> Option<PayloadBase> {
    Some(match b {
        NFT_PAYLOAD_LL_HEADER => PayloadBase::LinkLayer,
        NFT_PAYLOAD_NETWORK_HEADER => PayloadBase::Network,
        NFT_PAYLOAD_TRANSPORT_HEADER => PayloadBase::Transport,
        _ => return None,
    })
}

fn reg(d: &[(u16, &[u8])], ty: u16) -> Option<u32> {
    be32(d, ty).map(canonical_reg)
}

fn verdict(d: &[(u16, &[u8])]) -> Option<Verdict> {
    let v = attrs(get(d, NFTA_DATA_VERDICT)?);
    let chain = || string(&v, NFTA_VERDICT_CHAIN);
    Some(match be32(&v, NFTA_VERDICT_CODE)? {
        NF_ACCEPT => Verdict::Accept,
        NF_DROP => Verdict::Drop,
        NFT_RETURN => Verdict::Return,
        NFT_JUMP => Verdict::Jump(chain()?),
        NFT_GOTO => Verdict::Goto(chain()?),
        _ => return None,
    })
}

/// The expressions shoal writes, with the attributes it writes them with.
fn known(name: &str, d: &[(u16, &[u8])]) -> Option<Expr> {
    Some(match name {
        "meta" => {
            let key = meta_key(be32(d, NFTA_META_KEY)?)?;
            match (reg(d, NFTA_META_DREG), reg(d, NFTA_META_SREG)) {
                (Some(dreg), None) => Expr::Meta { key, dreg },
                (None, Some(sreg)) => Expr::MetaSet { key, sreg },
                _ => return None,
            }
        }
        "cmp" => Expr::Cmp {
            sreg: reg(d, NFTA_CMP_SREG)?,
            op: match be32(d, NFTA_CMP_OP)? {
                NFT_CMP_EQ => CmpOp::Eq,
                NFT_CMP_NEQ => CmpOp::Neq,
                _ => return None,
            },
            data: data(d, NFTA_CMP_DATA)?,
        },
        "payload" => {
            let base = payload_base(be32(d, NFTA_PAYLOAD_BASE)?)?;
            let offset = be32(d, NFTA_PAYLOAD_OFFSET)?;
            let len = be32(d, NFTA_PAYLOAD_LEN)?;
            match (reg(d, NFTA_PAYLOAD_DREG), reg(d, NFTA_PAYLOAD_SREG)) {
                (Some(dreg), None) => Expr::Payload {
                    base,
                    offset,
                    len,
                    dreg,
                },
                (None, Some(sreg))
                    if be32(d, NFTA_PAYLOAD_CSUM_TYPE).unwrap_or(NFT_PAYLOAD_CSUM_NONE)
                        == NFT_PAYLOAD_CSUM_NONE =>
                {
                    Expr::PayloadSet {
                        base,
                        offset,
                        len,
                        sreg,
                    }
                }
                _ => return None,
            }
        }
        "bitwise" => {
            if be32(d, NFTA_BITWISE_OP).unwrap_or(NFT_BITWISE_BOOL) != NFT_BITWISE_BOOL {
                return None;
            }
            Expr::Bitwise {
                sreg: reg(d, NFTA_BITWISE_SREG)?,
                dreg: reg(d, NFTA_BITWISE_DREG)?,
                mask: data(d, NFTA_BITWISE_MASK)?,
                xor: data(d, NFTA_BITWISE_XOR)?,
            }
        }
        "immediate" => {
            let dreg = reg(d, NFTA_IMMEDIATE_DREG)?;
            let value = attrs(get(d, NFTA_IMMEDIATE_DATA)?);
            if dreg == NFT_REG_VERDICT {
                Expr::Verdict(verdict(&value)?)
            } else {
                Expr::Immediate {
                    dreg,
                    data: get(&value, NFTA_DATA_VALUE)?.to_vec(),
                }
            }
        }
        "masq" => {
            if get(d, NFTA_MASQ_REG_PROTO_MIN).is_some() {
                return None;
            }
            Expr::Masquerade
        }
        "nat" => {
            // The family follows the table's (IPv6 in an `ip6` table).
            if ![NFPROTO_IPV4, NFPROTO_IPV6].contains(&be32(d, NFTA_NAT_FAMILY)?) {
                return None;
            }
            let addr_reg = reg(d, NFTA_NAT_REG_ADDR_MIN)?;
            let port_reg = reg(d, NFTA_NAT_REG_PROTO_MIN);
            // The kernel fills in the range's top (same register) and the flags.
            if reg(d, NFTA_NAT_REG_ADDR_MAX).is_some_and(|r| r != addr_reg)
                || reg(d, NFTA_NAT_REG_PROTO_MAX) != port_reg
            {
                return None;
            }
            match be32(d, NFTA_NAT_TYPE)? {
                NFT_NAT_DNAT => Expr::Dnat { addr_reg, port_reg },
                NFT_NAT_SNAT if port_reg.is_none() => Expr::Snat { addr_reg },
                _ => return None,
            }
        }
        "numgen" => {
            if be32(d, NFTA_NG_OFFSET).unwrap_or(0) != 0 {
                return None;
            }
            Expr::Numgen {
                dreg: reg(d, NFTA_NG_DREG)?,
                modulus: be32(d, NFTA_NG_MODULUS)?,
                random: match be32(d, NFTA_NG_TYPE)? {
                    NFT_NG_RANDOM => true,
                    NFT_NG_INCREMENTAL => false,
                    _ => return None,
                },
            }
        }
        "counter" => Expr::Counter,
        "notrack" => Expr::Notrack,
        "fib" => {
            if be32(d, NFTA_FIB_RESULT)? != NFT_FIB_RESULT_ADDRTYPE
                || be32(d, NFTA_FIB_FLAGS)? != NFTA_FIB_F_DADDR
            {
                return None;
            }
            Expr::FibDaddrType {
                dreg: reg(d, NFTA_FIB_DREG)?,
            }
        }
        "lookup" => {
            if be32(d, NFTA_LOOKUP_FLAGS).unwrap_or(0) != 0 {
                return None;
            }
            Expr::Lookup {
                set: string(d, NFTA_LOOKUP_SET)?,
                sreg: reg(d, NFTA_LOOKUP_SREG)?,
                dreg: reg(d, NFTA_LOOKUP_DREG),
            }
        }
        "objref" => {
            if be32(d, NFTA_OBJREF_IMM_TYPE)? != NFT_OBJECT_CT_TIMEOUT {
                return None;
            }
            Expr::CtTimeout(string(d, NFTA_OBJREF_IMM_NAME)?)
        }
        "ct" => match (
            be32(d, NFTA_CT_KEY)?,
            reg(d, NFTA_CT_DREG),
            reg(d, NFTA_CT_SREG),
        ) {
            (NFT_CT_MARK, Some(dreg), None) => Expr::CtMark { dreg },
            (NFT_CT_MARK, None, Some(sreg)) => Expr::CtMarkSet { sreg },
            (NFT_CT_STATUS, Some(dreg), None) => Expr::CtStatus { dreg },
            _ => return None,
        },
        _ => return None,
    })
}

/// A map from a `NEWSET` dump message (its elements come from [`elements`]).
pub fn set(payload: &[u8]) -> Option<Map> {
    let a = attrs(payload);
    let flags = be32(&a, NFTA_SET_FLAGS).unwrap_or(0);
    if flags & NFT_SET_MAP == 0 || flags & NFT_SET_ANONYMOUS != 0 {
        return None;
    }
    Some(Map {
        name: string(&a, NFTA_SET_NAME)?,
        key_len: be32(&a, NFTA_SET_KEY_LEN)?,
        data_len: be32(&a, NFTA_SET_DATA_LEN)?,
        elements: Vec::new(),
    })
}

/// The set's name and its elements from a `NEWSETELEM` dump message.
pub fn elements(payload: &[u8]) -> Option<(String, Vec<Element>)> {
    let a = attrs(payload);
    let set = string(&a, NFTA_SET_ELEM_LIST_SET)?;
    let mut out = Vec::new();
    for (ty, elem) in attrs(get(&a, NFTA_SET_ELEM_LIST_ELEMENTS).unwrap_or_default()) {
        if ty != NFTA_LIST_ELEM {
            continue;
        }
        let e = attrs(elem);
        out.push((
            data(&e, NFTA_SET_ELEM_KEY)?,
            data(&e, NFTA_SET_ELEM_DATA).unwrap_or_default(),
        ));
    }
    Some((set, out))
}

/// A conntrack timeout policy from a `NEWOBJ` dump message.
pub fn object(payload: &[u8]) -> Option<CtTimeoutPolicy> {
    let a = attrs(payload);
    if be32(&a, NFTA_OBJ_TYPE)? != NFT_OBJECT_CT_TIMEOUT {
        return None;
    }
    let d = attrs(get(&a, NFTA_OBJ_DATA)?);
    let l4proto = *get(&d, NFTA_CT_TIMEOUT_L4PROTO)?.first()?;
    let policy = attrs(get(&d, NFTA_CT_TIMEOUT_DATA)?)
        .into_iter()
        .filter_map(|(state, v)| Some((state, u32::from_be_bytes(v.get(..4)?.try_into().ok()?))))
        .collect();
    Some(CtTimeoutPolicy {
        name: string(&a, NFTA_OBJ_NAME)?,
        l4proto,
        policy,
    })
}

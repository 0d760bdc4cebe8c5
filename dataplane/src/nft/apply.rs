//! Sending batches to the kernel and reading tables back, over a NETLINK_NETFILTER socket.

use std::io;

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

use super::consts::*;
use super::decode;
use super::encode::{stored_comment, Attrs, Batch};
use super::model::{Expr, Family, Map, Rule, Table};

/// An nf_tables request the kernel refused.
#[derive(Debug, thiserror::Error)]
#[error("nftables: {step}: {source}")]
pub struct NftError {
    /// Which message of the batch.
    pub step: String,
    /// The kernel's error.
    #[source]
    pub source: io::Error,
}

fn socket() -> io::Result<Socket> {
    let mut s = Socket::new(NETLINK_NETFILTER)?;
    s.bind_auto()?;
    s.connect(&SocketAddr::new(0, 0))?;
    Ok(s)
}

fn seq_base() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(1)
        .wrapping_mul(1000)
}

/// Sends a batch and waits for every acknowledgement; the first error names its step.
fn send(batch: Batch) -> Result<(), NftError> {
    let (bytes, steps) = batch.finish();
    let io_err = |step: &str, e: io::Error| NftError {
        step: step.to_string(),
        source: e,
    };
    let s = socket().map_err(|e| io_err("open netlink socket", e))?;
    s.send(&bytes, 0).map_err(|e| io_err("send batch", e))?;
    let mut pending: Vec<(u32, String)> = steps;
    let mut buf = vec![0u8; 1 << 16];
    while !pending.is_empty() {
        let n = s
            .recv(&mut &mut buf[..], 0)
            .map_err(|e| io_err("read acknowledgements", e))?;
        for (ty, seq, payload) in messages(&buf[..n]) {
            if ty != NLMSG_ERROR {
                continue;
            }
            let code = payload
                .get(0..4)
                .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                .unwrap_or(0);
            let Some(pos) = pending.iter().position(|(s, _)| *s == seq) else {
                continue;
            };
            let (_, step) = pending.remove(pos);
            if code != 0 {
                return Err(io_err(&step, io::Error::from_raw_os_error(-code)));
            }
        }
    }
    Ok(())
}

/// Splits a netlink read into (type, seq, payload) messages.
fn messages(buf: &[u8]) -> Vec<(u16, u32, &[u8])> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 16 <= buf.len() {
        let len = u32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]) as usize;
        if len < 16 || at + len > buf.len() {
            break;
        }
        let ty = u16::from_ne_bytes([buf[at + 4], buf[at + 5]]);
        let seq = u32::from_ne_bytes([buf[at + 8], buf[at + 9], buf[at + 10], buf[at + 11]]);
        out.push((ty, seq, &buf[at + 16..at + len]));
        at += (len + 3) & !3;
    }
    out
}

/// A dump or get request: `msg` with `attrs`, for `family`.
fn request(msg: u16, flags: u16, family: Family, attrs: impl FnOnce(&mut Attrs<'_>)) -> Vec<u8> {
    let mut body = Vec::new();
    attrs(&mut Attrs::new(&mut body));
    let mut req = Vec::with_capacity(20 + body.len());
    let len = 16 + 4 + body.len();
    req.extend_from_slice(&(len as u32).to_ne_bytes());
    req.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | msg).to_ne_bytes());
    req.extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
    req.extend_from_slice(&1u32.to_ne_bytes());
    req.extend_from_slice(&0u32.to_ne_bytes());
    req.extend_from_slice(&[family.number(), NFNETLINK_V0, 0, 0]);
    req.extend_from_slice(&body);
    req
}

/// Sends `req` and returns the payloads (after the nfgenmsg) of the answers of type
/// `answer`, until the dump is done or the request acknowledged. `Ok(None)` when the
/// kernel says the object does not exist.
fn exchange(s: &Socket, req: &[u8], answer: u16) -> io::Result<Option<Vec<Vec<u8>>>> {
    s.send(req, 0)?;
    let want = (NFNL_SUBSYS_NFTABLES << 8) | answer;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = s.recv(&mut &mut buf[..], 0)?;
        for (ty, _, payload) in messages(&buf[..n]) {
            match ty {
                NLMSG_DONE => return Ok(Some(out)),
                NLMSG_ERROR => {
                    let code = payload
                        .get(0..4)
                        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                        .unwrap_or(0);
                    return match -code {
                        0 => Ok(Some(out)),
                        libc::ENOENT => Ok(None),
                        c => Err(io::Error::from_raw_os_error(c)),
                    };
                }
                t if t == want => out.push(payload.get(4..).unwrap_or_default().to_vec()),
                _ => {}
            }
        }
    }
}

/// Whether table `name` exists.
pub fn table_exists(name: &str, family: Family) -> Result<bool, NftError> {
    let io_err = |e: io::Error| NftError {
        step: format!("read table {name}"),
        source: e,
    };
    let s = socket().map_err(io_err)?;
    let req = request(NFT_MSG_GETTABLE, NLM_F_ACK, family, |a| {
        a.string(NFTA_TABLE_NAME, name)
    });
    Ok(exchange(&s, &req, NFT_MSG_NEWTABLE)
        .map_err(io_err)?
        .is_some_and(|t| !t.is_empty()))
}

/// What the kernel holds as table `name`: `None` if there is no such table, and a
/// table with `foreign` set when some of it is nothing shoal writes.
pub fn read_table(name: &str, family: Family) -> Result<Option<KernelTable>, NftError> {
    if !table_exists(name, family)? {
        return Ok(None);
    }
    let io_err = |what: &str, e: io::Error| NftError {
        step: format!("read {what} of table {name}"),
        source: e,
    };
    let s = socket().map_err(|e| io_err("socket", e))?;
    let dump = |msg: u16, answer: u16, what: &str, attrs: &dyn Fn(&mut Attrs<'_>)| {
        exchange(&s, &request(msg, NLM_F_DUMP, family, attrs), answer)
            .map(Option::unwrap_or_default)
            .map_err(|e| io_err(what, e))
    };
    let in_table = |payload: &[u8], ty: u16| {
        decode::attrs(payload)
            .iter()
            .any(|(t, v)| *t == ty && v.split(|b| *b == 0).next() == Some(name.as_bytes()))
    };
    let mut table = Table::with_chains(name, family, Vec::new());
    let mut foreign = false;
    for c in dump(NFT_MSG_GETCHAIN, NFT_MSG_NEWCHAIN, "chains", &|a| {
        a.string(NFTA_CHAIN_TABLE, name)
    })? {
        if !in_table(&c, NFTA_CHAIN_TABLE) {
            continue;
        }
        match decode::chain(&c) {
            Some(chain) => table.chains.push(chain),
            None => foreign = true,
        }
    }
    for r in dump(NFT_MSG_GETRULE, NFT_MSG_NEWRULE, "rules", &|a| {
        a.string(NFTA_RULE_TABLE, name)
    })? {
        if !in_table(&r, NFTA_RULE_TABLE) {
            continue;
        }
        match decode::rule(&r) {
            Some((chain, rule)) => match table.chains.iter_mut().find(|c| c.name == chain) {
                Some(c) => c.rules.push(rule),
                None => foreign = true,
            },
            None => foreign = true,
        }
    }
    for set in dump(NFT_MSG_GETSET, NFT_MSG_NEWSET, "sets", &|a| {
        a.string(NFTA_SET_TABLE, name)
    })? {
        if !in_table(&set, NFTA_SET_TABLE) {
            continue;
        }
        match decode::set(&set) {
            Some(map) => table.maps.push(map),
            None => foreign = true,
        }
    }
    for map in &mut table.maps {
        let set_name = map.name.clone();
        for e in dump(
            NFT_MSG_GETSETELEM,
            NFT_MSG_NEWSETELEM,
            "map elements",
            &|a| {
                a.string(NFTA_SET_ELEM_LIST_TABLE, name);
                a.string(NFTA_SET_ELEM_LIST_SET, &set_name);
            },
        )? {
            match decode::elements(&e) {
                Some((set, elements)) if set == map.name => map.elements.extend(elements),
                _ => foreign = true,
            }
        }
    }
    for o in dump(NFT_MSG_GETOBJ, NFT_MSG_NEWOBJ, "objects", &|a| {
        a.string(NFTA_OBJ_TABLE, name)
    })? {
        if !in_table(&o, NFTA_OBJ_TABLE) {
            continue;
        }
        match decode::object(&o) {
            Some(t) => table.timeouts.push(t),
            None => foreign = true,
        }
    }
    Ok(Some(KernelTable { table, foreign }))
}

/// A table as read back from the kernel.
#[derive(Debug, Clone)]
pub struct KernelTable {
    /// What of it the model can say.
    pub table: Table,
    /// Whether it also holds things shoal never writes (hand-made rules, other objects).
    pub foreign: bool,
}

impl KernelTable {
    /// Whether the kernel's table is `wanted`: the same chains with the same rules in
    /// order (registers compared canonically, counters' values ignored), the same maps
    /// and the same timeout policies, and nothing else.
    pub fn matches(&self, wanted: &Table) -> bool {
        !self.foreign && same_table(&self.table, wanted)
    }
}

fn canonical(e: &Expr) -> Expr {
    use decode::canonical_reg as r;
    match e.clone() {
        Expr::Meta { key, dreg } => Expr::Meta { key, dreg: r(dreg) },
        Expr::MetaSet { key, sreg } => Expr::MetaSet { key, sreg: r(sreg) },
        Expr::Cmp { sreg, op, data } => Expr::Cmp {
            sreg: r(sreg),
            op,
            data,
        },
        Expr::Payload {
            base,
            offset,
            len,
            dreg,
        } => Expr::Payload {
            base,
            offset,
            len,
            dreg: r(dreg),
        },
        Expr::PayloadSet {
            base,
            offset,
            len,
            sreg,
        } => Expr::PayloadSet {
            base,
            offset,
            len,
            sreg: r(sreg),
        },
        Expr::Bitwise {
            sreg,
            dreg,
            mask,
            xor,
        } => Expr::Bitwise {
            sreg: r(sreg),
            dreg: r(dreg),
            mask,
            xor,
        },
        Expr::Immediate { dreg, data } => Expr::Immediate {
            dreg: r(dreg),
            data,
        },
        Expr::Snat { addr_reg } => Expr::Snat {
            addr_reg: r(addr_reg),
        },
        Expr::Dnat { addr_reg, port_reg } => Expr::Dnat {
            addr_reg: r(addr_reg),
            port_reg: port_reg.map(r),
        },
        Expr::Numgen {
            dreg,
            modulus,
            random,
        } => Expr::Numgen {
            dreg: r(dreg),
            modulus,
            random,
        },
        Expr::FibDaddrType { dreg } => Expr::FibDaddrType { dreg: r(dreg) },
        Expr::Lookup { set, sreg, dreg } => Expr::Lookup {
            set,
            sreg: r(sreg),
            dreg: dreg.map(r),
        },
        other => other,
    }
}

fn same_rule(have: &Rule, want: &Rule) -> bool {
    have.comment == stored_comment(&want.comment)
        && have.exprs.len() == want.exprs.len()
        && have
            .exprs
            .iter()
            .zip(&want.exprs)
            .all(|(a, b)| canonical(a) == canonical(b))
}

fn same_table(have: &Table, want: &Table) -> bool {
    let same_chains = have.chains.len() == want.chains.len()
        && want.chains.iter().all(|w| {
            have.chains.iter().any(|h| {
                h.name == w.name
                    && h.base == w.base
                    && h.rules.len() == w.rules.len()
                    && h.rules.iter().zip(&w.rules).all(|(a, b)| same_rule(a, b))
            })
        });
    let sorted = |m: &Map| {
        let mut e = m.elements.clone();
        e.sort();
        (m.name.clone(), m.key_len, m.data_len, e)
    };
    let same_maps = have.maps.len() == want.maps.len()
        && want
            .maps
            .iter()
            .all(|w| have.maps.iter().any(|h| sorted(h) == sorted(w)));
    // The kernel fills in the states a policy leaves out.
    let same_timeouts = have.timeouts.len() == want.timeouts.len()
        && want.timeouts.iter().all(|w| {
            have.timeouts.iter().any(|h| {
                h.name == w.name
                    && h.l4proto == w.l4proto
                    && w.policy.iter().all(|p| h.policy.contains(p))
            })
        });
    same_chains && same_maps && same_timeouts
}

/// Makes the kernel's table `table.name` equal `table`: reads it back and, when it
/// differs in any way (a rule flushed or edited by hand, a map changed, the table
/// gone), replaces it in one transaction. Returns whether it changed anything.
pub fn ensure_table(table: &Table) -> Result<bool, NftError> {
    if read_table(&table.name, table.family)?.is_some_and(|k| k.matches(table)) {
        return Ok(false);
    }
    let mut b = Batch::new(seq_base());
    b.replace_table(table);
    send(b)?;
    Ok(true)
}

/// Removes table `name` if it exists.
pub fn remove_table(name: &str, family: Family) -> Result<bool, NftError> {
    if !table_exists(name, family)? {
        return Ok(false);
    }
    let mut b = Batch::new(seq_base());
    b.delete_table(name, family);
    send(b)?;
    Ok(true)
}

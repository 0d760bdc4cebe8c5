//! What the kernel announces to nf_tables listeners (`NFNLGRP_NFTABLES`): enough to
//! follow one map's elements from outside, as a benchmark watching a node does.
//!
//! ```text
//!  one transaction ─▶ DELTABLE / DELSET … NEWSETELEM … DELSETELEM … ─▶ NEWGEN (its end)
//! ```
//! The kernel sends a transaction's notifications in order and ends them with `NEWGEN`,
//! so a listener that applies them to its copy holds the committed map at each `NEWGEN`.

use super::consts::*;
use super::decode;
use super::model::{Element, Family};

/// The multicast group of nf_tables changes (`NFNLGRP_NFTABLES`): bind to
/// `1 << (NFNLGRP_NFTABLES - 1)`.
pub const NFNLGRP_NFTABLES: u32 = 7;

const NFT_MSG_DELSET: u16 = 11;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFT_MSG_NEWGEN: u16 = 15;

/// One announced change, as far as following a map needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A transaction ended (committed).
    Generation,
    /// A table was deleted (with everything in it).
    TableGone {
        /// Its family.
        family: Family,
        /// Its name.
        table: String,
    },
    /// A set or map was deleted.
    SetGone {
        /// Its family.
        family: Family,
        /// Its table.
        table: String,
        /// Its name.
        set: String,
    },
    /// Elements were added to (`added`) or removed from a set or map.
    Elements {
        /// Its family.
        family: Family,
        /// Its table.
        table: String,
        /// Its name.
        set: String,
        /// Added, else removed.
        added: bool,
        /// (key, value) of each, in register byte order.
        elements: Vec<Element>,
    },
}

fn family_of(number: u8) -> Option<Family> {
    [Family::Ip, Family::Ip6, Family::Inet, Family::Bridge]
        .into_iter()
        .find(|f| f.number() == number)
}

/// The events in one datagram read from a `NETLINK_NETFILTER` socket bound to
/// [`NFNLGRP_NFTABLES`]; messages of other kinds are skipped.
pub fn events(mut buf: &[u8]) -> Vec<Event> {
    let mut out = Vec::new();
    while buf.len() >= 16 {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len < 16 || len > buf.len() {
            break;
        }
        let kind = u16::from_ne_bytes([buf[4], buf[5]]);
        let body = &buf[16..len];
        buf = &buf[((len + 3) & !3).min(buf.len())..];
        if kind >> 8 != NFNL_SUBSYS_NFTABLES || body.len() < 4 {
            continue;
        }
        let payload = &body[4..];
        let family = family_of(body[0]);
        let name = |ty: u16| {
            decode::attrs(payload)
                .into_iter()
                .find(|(t, _)| *t == ty)
                .and_then(|(_, v)| v.split(|b| *b == 0).next())
                .and_then(|v| String::from_utf8(v.to_vec()).ok())
        };
        let event = match (kind & 0xff, family) {
            (NFT_MSG_NEWGEN, _) => Some(Event::Generation),
            (NFT_MSG_DELTABLE, Some(family)) => {
                name(NFTA_TABLE_NAME).map(|table| Event::TableGone { family, table })
            }
            (NFT_MSG_DELSET, Some(family)) => name(NFTA_SET_TABLE)
                .zip(name(NFTA_SET_NAME))
                .map(|(table, set)| Event::SetGone { family, table, set }),
            (k @ (NFT_MSG_NEWSETELEM | NFT_MSG_DELSETELEM), Some(family)) => {
                name(NFTA_SET_ELEM_LIST_TABLE)
                    .zip(decode::elements(payload))
                    .map(|(table, (set, elements))| Event::Elements {
                        family,
                        table,
                        set,
                        added: k == NFT_MSG_NEWSETELEM,
                        elements,
                    })
            }
            _ => None,
        };
        out.extend(event);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::encode::Attrs;
    use super::*;

    fn msg(kind: u16, family: u8, attrs: impl FnOnce(&mut Attrs<'_>)) -> Vec<u8> {
        let mut body = vec![family, 0, 0, 0];
        attrs(&mut Attrs::new(&mut body));
        let mut m = ((16 + body.len()) as u32).to_ne_bytes().to_vec();
        m.extend(((NFNL_SUBSYS_NFTABLES << 8) | kind).to_ne_bytes());
        m.extend([0u8; 10]);
        m.extend(body);
        m.resize((m.len() + 3) & !3, 0);
        m
    }

    fn elements(added: bool, values: &[[u8; 8]]) -> Vec<u8> {
        let kind = if added {
            NFT_MSG_NEWSETELEM
        } else {
            NFT_MSG_DELSETELEM
        };
        msg(kind, 2, |a| {
            a.string(NFTA_SET_ELEM_LIST_TABLE, "shoal");
            a.string(NFTA_SET_ELEM_LIST_SET, "pub-6-80");
            a.nested(NFTA_SET_ELEM_LIST_ELEMENTS, |list| {
                for (i, v) in values.iter().enumerate() {
                    list.nested(NFTA_LIST_ELEM, |el| {
                        el.nested(NFTA_SET_ELEM_KEY, |k| {
                            k.put(NFTA_DATA_VALUE, &(i as u32).to_ne_bytes())
                        });
                        el.nested(NFTA_SET_ELEM_DATA, |d| d.put(NFTA_DATA_VALUE, v));
                    });
                }
            });
        })
    }

    #[test]
    fn a_transaction_reads_as_its_events_and_its_end() {
        let v1 = [10, 0, 0, 2, 0, 80, 0, 0];
        let v2 = [10, 0, 0, 3, 0, 80, 0, 0];
        let mut buf = msg(NFT_MSG_DELTABLE, 2, |a| a.string(NFTA_TABLE_NAME, "shoal"));
        buf.extend(msg(NFT_MSG_DELSET, 10, |a| {
            a.string(NFTA_SET_TABLE, "shoal");
            a.string(NFTA_SET_NAME, "pub-6-80");
        }));
        buf.extend(elements(true, &[v1, v2]));
        buf.extend(elements(false, &[v2]));
        // Another subsystem's message and an unknown kind are skipped.
        let mut other = msg(NFT_MSG_NEWGEN, 2, |_| {});
        other[5] = 3;
        buf.extend(other);
        buf.extend(msg(NFT_MSG_NEWCHAIN, 2, |a| a.string(1, "shoal")));
        buf.extend(msg(NFT_MSG_NEWGEN, 0, |a| a.be32(1, 7)));
        let got = events(&buf);
        let el = |added, values: &[[u8; 8]]| Event::Elements {
            family: Family::Ip,
            table: "shoal".into(),
            set: "pub-6-80".into(),
            added,
            elements: values
                .iter()
                .enumerate()
                .map(|(i, v)| ((i as u32).to_ne_bytes().to_vec(), v.to_vec()))
                .collect(),
        };
        assert_eq!(
            got,
            vec![
                Event::TableGone {
                    family: Family::Ip,
                    table: "shoal".into()
                },
                Event::SetGone {
                    family: Family::Ip6,
                    table: "shoal".into(),
                    set: "pub-6-80".into()
                },
                el(true, &[v1, v2]),
                el(false, &[v2]),
                Event::Generation,
            ]
        );
        assert!(events(&buf[..20]).is_empty(), "a cut message is no event");
    }
}

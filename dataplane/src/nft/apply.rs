//! Sending batches to the kernel and reading tables back, over a NETLINK_NETFILTER socket.

use std::io;

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

use super::consts::*;
use super::encode::Batch;
use super::model::{Family, Table};

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

/// The user data of table `name`, or `None` if it does not exist.
pub fn table_userdata(name: &str, family: Family) -> Result<Option<Vec<u8>>, NftError> {
    let io_err = |e: io::Error| NftError {
        step: format!("read table {name}"),
        source: e,
    };
    let s = socket().map_err(io_err)?;
    let mut req = Vec::new();
    let ty = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE;
    let mut attrs = Vec::new();
    {
        let mut b = name.as_bytes().to_vec();
        b.push(0);
        let len = 4 + b.len();
        attrs.extend_from_slice(&(len as u16).to_ne_bytes());
        attrs.extend_from_slice(&NFTA_TABLE_NAME.to_ne_bytes());
        attrs.extend_from_slice(&b);
        attrs.resize((attrs.len() + 3) & !3, 0);
    }
    let len = 16 + 4 + attrs.len();
    req.extend_from_slice(&(len as u32).to_ne_bytes());
    req.extend_from_slice(&ty.to_ne_bytes());
    req.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    req.extend_from_slice(&1u32.to_ne_bytes());
    req.extend_from_slice(&0u32.to_ne_bytes());
    req.extend_from_slice(&[family.number(), NFNETLINK_V0, 0, 0]);
    req.extend_from_slice(&attrs);
    s.send(&req, 0).map_err(io_err)?;
    let mut buf = vec![0u8; 1 << 16];
    let mut found = None;
    loop {
        let n = s.recv(&mut &mut buf[..], 0).map_err(io_err)?;
        for (ty, _, payload) in messages(&buf[..n]) {
            if ty == NLMSG_ERROR {
                let code = payload
                    .get(0..4)
                    .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                    .unwrap_or(0);
                return match code {
                    0 => Ok(found),
                    c if -c == libc::ENOENT => Ok(None),
                    c => Err(io_err(io::Error::from_raw_os_error(-c))),
                };
            }
            if ty == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWTABLE {
                found = Some(
                    attr(payload.get(4..).unwrap_or_default(), NFTA_TABLE_USERDATA)
                        .unwrap_or_default(),
                );
            }
        }
    }
}

fn attr(mut attrs: &[u8], want: u16) -> Option<Vec<u8>> {
    while attrs.len() >= 4 {
        let len = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
        let ty = u16::from_ne_bytes([attrs[2], attrs[3]]) & 0x3fff;
        if len < 4 || len > attrs.len() {
            return None;
        }
        if ty == want {
            return Some(attrs[4..len].to_vec());
        }
        attrs = &attrs[((len + 3) & !3).min(attrs.len())..];
    }
    None
}

/// Makes the kernel's table `table.name` equal `table`. Does nothing when the table's
/// stored digest equals `digest` (the rules are already right); otherwise replaces the
/// table in one transaction. Returns whether it changed anything.
pub fn ensure_table(table: &Table, digest: &[u8]) -> Result<bool, NftError> {
    if table_userdata(&table.name, table.family)?.as_deref() == Some(digest) {
        return Ok(false);
    }
    let mut b = Batch::new(seq_base());
    b.replace_table(table, digest);
    send(b)?;
    Ok(true)
}

/// Removes table `name` if it exists.
pub fn remove_table(name: &str, family: Family) -> Result<bool, NftError> {
    if table_userdata(name, family)?.is_none() {
        return Ok(false);
    }
    let mut b = Batch::new(seq_base());
    b.delete_table(name, family);
    send(b)?;
    Ok(true)
}

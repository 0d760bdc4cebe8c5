//! The resolver's decision, free of IO: given the table and one query, answer it,
//! forward it, or drop it (STYLE §1).
//!
//! ```text
//!  parse ─▶ Ignore ───────────────────────────────────────────▶ Drop
//!        ─▶ Reject(rcode) ────────────────────────────────────▶ Reply FORMERR / NOTIMP
//!        ─▶ Query ─▶ EDNS version > 0 ────────────────────────▶ Reply BADVERS
//!                  ─▶ PTR for a sandbox or task address ─────▶ Reply NOERROR, AA, PTR record
//!                  ─▶ lookup(name, client, network)
//!                        Addresses + A/ANY ───────────────────▶ Reply NOERROR, AA, A records
//!                        Addresses + AAAA ────────────────────▶ Reply NOERROR, AA, AAAA records
//!                        Addresses + other type, NoRecords ───▶ Reply NODATA (NOERROR, AA)
//!                        Unknown, or class not IN ────────────▶ Forward
//!                          … from a client on internal networks only ▶ Reply SERVFAIL
//! ```
//! A name we own is answered for every type: what we hold for it, or NODATA. Docker
//! forwards types it does not serve (TXT, CAA, …) even for its own names; an upstream
//! then says NXDOMAIN for a name that has addresses here, and a cache that takes
//! NXDOMAIN to mean "no types at all" (RFC 8020) would drop the A record too.
//! The reply is written into the caller's buffer, so a serving loop reuses one buffer
//! and a query answered from the table allocates nothing.

use std::net::IpAddr;

use hickory_proto::op::{Header, ResponseCode};
use hickory_proto::rr::{DNSClass, RecordType};

use crate::name::{lookup_key, KeyBuf};
use crate::request::{self, DropReason, Parsed, Request, HEADER_LEN};
use crate::table::{Lookup, RecordTable};
use crate::wire::{self, OptReply, ReplyFlags, CLASSIC_UDP_LIMIT, TCP_LIMIT};

/// Largest UDP payload we accept and offer by default: the DNS Flag Day 2020 value,
/// which avoids IP fragmentation on any sane path.
pub const DEFAULT_MAX_UDP_PAYLOAD: u16 = 1232;

/// The transport a query came over; it sets the reply size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP: 512 bytes, or the client's EDNS size up to our own.
    Udp,
    /// TCP: a whole message, up to 65535 bytes.
    Tcp,
}

/// Who asked, where, and how.
#[derive(Debug, Clone, Copy)]
pub struct QueryContext<'a> {
    /// The client's address (a sandbox IP).
    pub client: IpAddr,
    /// The network whose gateway address the query arrived on.
    pub network: &'a str,
    /// UDP or TCP.
    pub transport: Transport,
    /// The largest UDP payload we offer (RFC 6891); replies to EDNS clients never
    /// exceed the smaller of this and the client's size.
    pub max_udp_payload: u16,
}

/// What the caller should do with a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Outcome {
    /// Send the bytes written into the output buffer.
    Reply(Reply),
    /// Not ours: send the query bytes to the upstream resolvers.
    Forward(ForwardQuery),
    /// Send nothing.
    Drop(DropReason),
}

/// A reply that was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// Its response code.
    pub rcode: ResponseCode,
    /// Whether records were left out to fit the client's size (TC set).
    pub truncated: bool,
}

/// A query to forward, with what the forwarder needs to check and relay the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardQuery {
    /// The query's header (its ID goes back on the relayed answer).
    pub header: Header,
    /// Length of the question section, which starts at byte 12; an upstream answer
    /// must carry the same question.
    pub question_len: usize,
}

impl ForwardQuery {
    /// The question section of `query` (the bytes this was decided on).
    pub fn question<'q>(&self, query: &'q [u8]) -> &'q [u8] {
        query
            .get(HEADER_LEN..HEADER_LEN + self.question_len)
            .unwrap_or_default()
    }
}

/// Decides what to do with `query` and, for [`Outcome::Reply`], writes the reply into
/// `out` (cleared first).
pub fn answer(
    table: &RecordTable,
    query: &[u8],
    ctx: &QueryContext<'_>,
    out: &mut Vec<u8>,
) -> Outcome {
    out.clear();
    match request::parse(query) {
        Parsed::Ignore(reason) => Outcome::Drop(reason),
        Parsed::Reject { header, rcode } => {
            let flags = ReplyFlags {
                rcode,
                authoritative: false,
                truncated: false,
            };
            wire::write_empty_reply(out, &header, flags, None, None);
            Outcome::Reply(Reply {
                rcode,
                truncated: false,
            })
        }
        Parsed::Query(req) => answer_query(table, &req, ctx, out),
    }
}

fn answer_query(
    table: &RecordTable,
    req: &Request<'_>,
    ctx: &QueryContext<'_>,
    out: &mut Vec<u8>,
) -> Outcome {
    let opt = req.edns.map(|_| OptReply {
        max_payload: ctx.max_udp_payload,
    });
    if req.edns.is_some_and(|e| e.version > 0) {
        return empty_reply(req, ResponseCode::BADVERS, false, opt, out);
    }
    match answer_from_table(table, req, ctx, opt, out) {
        Some(reply) => reply,
        // Docker: the resolver of a client with only internal networks is no way out.
        None if !table.may_forward(ctx.network, ctx.client) => {
            empty_reply(req, ResponseCode::ServFail, false, opt, out)
        }
        None => Outcome::Forward(ForwardQuery {
            header: req.header,
            question_len: req.question.len(),
        }),
    }
}

/// The reply from the table, or `None` when the name is not ours.
fn answer_from_table(
    table: &RecordTable,
    req: &Request<'_>,
    ctx: &QueryContext<'_>,
    opt: Option<OptReply>,
    out: &mut Vec<u8>,
) -> Option<Outcome> {
    if !matches!(req.query.query_class(), DNSClass::IN | DNSClass::ANY) {
        return None;
    }
    let mut key_buf: KeyBuf = [0; std::mem::size_of::<KeyBuf>()];
    let key = lookup_key(req.query.name(), &mut key_buf)?;
    if req.query.query_type() == RecordType::PTR {
        let addr = reverse_v4(key)
            .map(std::net::IpAddr::V4)
            .or_else(|| reverse_v6(key).map(std::net::IpAddr::V6));
        if let Some(target) = addr.and_then(|a| table.ptr(ctx.network, ctx.client, a)) {
            let truncated = wire::write_ptr_reply(
                out,
                &req.header,
                req.question,
                target,
                table.ttl(),
                opt,
                reply_limit(req, ctx),
            );
            return Some(Outcome::Reply(Reply {
                rcode: ResponseCode::NoError,
                truncated,
            }));
        }
    }
    match table.lookup(ctx.network, ctx.client, key) {
        Lookup::Unknown => None,
        Lookup::NoRecords => Some(empty_reply(req, ResponseCode::NoError, true, opt, out)),
        Lookup::Addresses(records) => Some(match req.query.query_type() {
            // ANY gets the one RRset we have (RFC 8482 allows answering with a subset).
            RecordType::A | RecordType::ANY => {
                records_reply(table, req, ctx, opt, records.rotation(), out)
            }
            // Dual-stack networks: the name's IPv6 addresses (none: NODATA).
            RecordType::AAAA => records_reply(table, req, ctx, opt, records.rotation6(), out),
            _ => empty_reply(req, ResponseCode::NoError, true, opt, out),
        }),
    }
}

/// An authoritative reply with the A or AAAA records of `addrs` that fit.
fn records_reply<A: wire::RecordAddr>(
    table: &RecordTable,
    req: &Request<'_>,
    ctx: &QueryContext<'_>,
    opt: Option<OptReply>,
    addrs: impl ExactSizeIterator<Item = A>,
    out: &mut Vec<u8>,
) -> Outcome {
    let limit = reply_limit(req, ctx);
    let truncated = wire::write_a_reply(
        out,
        &req.header,
        req.question,
        addrs,
        table.ttl(),
        opt,
        limit,
    );
    Outcome::Reply(Reply {
        rcode: ResponseCode::NoError,
        truncated,
    })
}

/// The IPv4 address a reverse name (`4.3.2.1.in-addr.arpa`, in table spelling) stands
/// for; `None` for anything else (fewer or more labels, a label that is not 0–255 in
/// decimal without leading zeros).
fn reverse_v4(key: &str) -> Option<std::net::Ipv4Addr> {
    let labels = key.strip_suffix(".in-addr.arpa")?;
    let mut octets = [0u8; 4];
    let mut parts = labels.split('.');
    for slot in octets.iter_mut().rev() {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 || (part.len() > 1 && part.starts_with('0')) {
            return None;
        }
        *slot = part.parse().ok()?;
    }
    parts
        .next()
        .is_none()
        .then(|| std::net::Ipv4Addr::from(octets))
}

/// The IPv6 address a reverse name (`b.a.9.8...ip6.arpa`: 32 hex nibbles, lowest
/// first, in table spelling) stands for; `None` for anything else.
fn reverse_v6(key: &str) -> Option<std::net::Ipv6Addr> {
    let labels = key.strip_suffix(".ip6.arpa")?;
    let mut value: u128 = 0;
    let mut count = 0;
    for (i, part) in labels.split('.').enumerate() {
        let [c] = part.as_bytes() else { return None };
        let nibble = (*c as char).to_digit(16)?;
        if i >= 32 {
            return None;
        }
        value |= u128::from(nibble) << (4 * i);
        count += 1;
    }
    (count == 32).then(|| std::net::Ipv6Addr::from(value))
}

/// The most bytes a reply to `req` may have.
fn reply_limit(req: &Request<'_>, ctx: &QueryContext<'_>) -> usize {
    match (ctx.transport, req.edns) {
        (Transport::Tcp, _) => TCP_LIMIT,
        (Transport::Udp, None) => CLASSIC_UDP_LIMIT,
        (Transport::Udp, Some(edns)) => {
            usize::from(edns.max_payload.min(ctx.max_udp_payload)).max(CLASSIC_UDP_LIMIT)
        }
    }
}

fn empty_reply(
    req: &Request<'_>,
    rcode: ResponseCode,
    authoritative: bool,
    opt: Option<OptReply>,
    out: &mut Vec<u8>,
) -> Outcome {
    let flags = ReplyFlags {
        rcode,
        authoritative,
        truncated: false,
    };
    wire::write_empty_reply(out, &req.header, flags, Some(req.question), opt);
    Outcome::Reply(Reply {
        rcode,
        truncated: false,
    })
}

/// Writes SERVFAIL for a query that could not be forwarded (no upstream answered).
pub fn write_servfail(query: &[u8], forward: &ForwardQuery, out: &mut Vec<u8>) {
    let flags = ReplyFlags {
        rcode: ResponseCode::ServFail,
        authoritative: false,
        truncated: false,
    };
    let question = forward.question(query);
    let question = (!question.is_empty()).then_some(question);
    wire::write_empty_reply(out, &forward.header, flags, question, None);
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod tests6;

#[cfg(test)]
mod fuzz;

//! The edge where untrusted query bytes become a validated [`Request`] (STYLE §6).
//!
//! ```text
//!  bytes ─▶ header readable? ─no─▶ Ignore(Unreadable)
//!             │ QR set ──────────▶ Ignore(Response)      (never answer a response)
//!             │ opcode ≠ QUERY ──▶ Reject(NOTIMP)
//!             │ counts wrong ────▶ Reject(FORMERR)       (QD ≠ 1, AN or NS ≠ 0)
//!             │ question bad ────▶ Reject(FORMERR)       (hickory decode, compressed)
//!             │ additional bad ──▶ Reject(FORMERR)       (two OPTs, OPT not at root)
//!             ▼
//!          Request { header, query, question bytes, edns }
//! ```
//! Parsing uses `hickory-proto`'s decoder for the header and the question; additional
//! records are walked, not materialised, so a normal query does not allocate.

use hickory_proto::op::{Header, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

/// Length of the DNS header (RFC 1035 §4.1.1); the question starts here.
pub(crate) const HEADER_LEN: usize = 12;
/// Top two bits of a length octet that mark a compression pointer.
const POINTER_BITS: u8 = 0b1100_0000;

/// A query we can answer or forward.
#[derive(Debug)]
pub(crate) struct Request<'q> {
    /// The query's header, as decoded.
    pub header: Header,
    /// The one question.
    pub query: Query,
    /// The question section exactly as received; replies echo it (and so keep the
    /// asker's letter case, which DNS 0x20 clients check).
    pub question: &'q [u8],
    /// The client's EDNS(0) OPT record, if it sent one.
    pub edns: Option<EdnsRequest>,
}

/// What a client's OPT record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EdnsRequest {
    /// The largest UDP reply the client accepts (values below 512 mean 512).
    pub max_payload: u16,
    /// EDNS version; only 0 exists.
    pub version: u8,
}

/// Why a datagram got no reply at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropReason {
    /// Shorter than a DNS header: there is no ID to answer to.
    Unreadable,
    /// The QR bit is set: it is a response. Answering it (even with FORMERR, itself a
    /// response) could start a loop between two servers.
    Response,
}

/// The outcome of parsing.
#[derive(Debug)]
pub(crate) enum Parsed<'q> {
    /// A well-formed query.
    Query(Request<'q>),
    /// The header is readable but the message is not acceptable: reply with `rcode`
    /// and no question.
    Reject { header: Header, rcode: ResponseCode },
    /// Send nothing.
    Ignore(DropReason),
}

/// Parses one query message.
pub(crate) fn parse(bytes: &[u8]) -> Parsed<'_> {
    let mut decoder = BinDecoder::new(bytes);
    let Ok(header) = Header::read(&mut decoder) else {
        return Parsed::Ignore(DropReason::Unreadable);
    };
    if header.message_type == MessageType::Response {
        return Parsed::Ignore(DropReason::Response);
    }
    let reject = |rcode| Parsed::Reject { header, rcode };
    if header.op_code != OpCode::Query {
        return reject(ResponseCode::NotImp);
    }
    let counts = header.counts;
    if counts.queries != 1 || counts.answers != 0 || counts.authorities != 0 {
        return reject(ResponseCode::FormErr);
    }
    let Ok(query) = Query::read(&mut decoder) else {
        return reject(ResponseCode::FormErr);
    };
    let question = &bytes[HEADER_LEN..decoder.index()];
    if is_compressed(question) {
        return reject(ResponseCode::FormErr);
    }
    let mut edns = None;
    for _ in 0..counts.additionals {
        match read_additional(&mut decoder) {
            Ok(None) => {}
            Ok(Some(opt)) if edns.is_none() => edns = Some(opt),
            // RFC 6891 §6.1.1: more than one OPT is FORMERR; so is an unreadable record.
            Ok(Some(_)) | Err(()) => return reject(ResponseCode::FormErr),
        }
    }
    Parsed::Query(Request {
        header,
        query,
        question,
        edns,
    })
}

/// Whether the (already decoded) question name uses a compression pointer. A pointer
/// here could only point into the header, which a reply rewrites, so the echoed
/// question would change meaning.
fn is_compressed(question: &[u8]) -> bool {
    let mut at = 0;
    while let Some(&len) = question.get(at) {
        if len == 0 {
            return false;
        }
        if len & POINTER_BITS != 0 {
            return true;
        }
        at += 1 + usize::from(len);
    }
    true
}

/// Reads one additional record without keeping its data: `Some` for an OPT.
fn read_additional(decoder: &mut BinDecoder<'_>) -> Result<Option<EdnsRequest>, ()> {
    let name = Name::read(decoder).map_err(drop)?;
    let rtype = RecordType::read(decoder).map_err(drop)?;
    let class = read_u16(decoder)?;
    let ttl = decoder.read_u32().map_err(drop)?.unverified(/*bit fields*/);
    let rdlen = read_u16(decoder)?;
    decoder
        .read_slice(usize::from(rdlen))
        .map_err(drop)?
        .unverified(/*skipped: we send no OPT options back*/);
    if rtype != RecordType::OPT {
        return Ok(None);
    }
    if !name.is_root() {
        return Err(());
    }
    Ok(Some(EdnsRequest {
        max_payload: class.max(512),
        version: ttl.to_be_bytes()[1],
    }))
}

fn read_u16(decoder: &mut BinDecoder<'_>) -> Result<u16, ()> {
    Ok(decoder.read_u16().map_err(drop)?.unverified(/*any u16*/))
}

#[cfg(test)]
mod tests;

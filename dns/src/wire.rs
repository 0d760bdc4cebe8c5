//! Writing replies: header, the echoed question, A or AAAA records, an OPT record.
//!
//! ```text
//!  ┌────────┬─────────────────────┬──────────────────────────┬───────────┐
//!  │ header │ question (as asked) │ A records, name → 0xC00C │ OPT (EDNS)│
//!  └────────┴─────────────────────┴──────────────────────────┴───────────┘
//! ```
//! Every answer's owner name is a compression pointer to the question name at offset
//! 12, so an A record is always 16 bytes (AAAA: 28) and the reply's size is known before a byte is
//! written: whatever does not fit the client's limit is left out and TC is set.
//! Writes go into the caller's buffer (cleared first); nothing here allocates once the
//! buffer has grown to its working size.

use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::op::{Header, ResponseCode};
use hickory_proto::rr::{DNSClass, RecordType};

use crate::request::HEADER_LEN;

/// Bytes of one A record with a compressed owner name.
pub(crate) const A_RECORD_LEN: usize = 16;
/// An address an answer record carries: IPv4 in A records, IPv6 in AAAA records.
pub(crate) trait RecordAddr: Copy {
    /// A or AAAA.
    const TYPE: RecordType;
    /// Bytes of the address.
    const LEN: usize;
    /// The address's bytes (the record's data).
    fn rdata(&self) -> impl AsRef<[u8]>;
}

impl RecordAddr for Ipv4Addr {
    const TYPE: RecordType = RecordType::A;
    const LEN: usize = 4;
    fn rdata(&self) -> impl AsRef<[u8]> {
        self.octets()
    }
}

impl RecordAddr for Ipv6Addr {
    const TYPE: RecordType = RecordType::AAAA;
    const LEN: usize = 16;
    fn rdata(&self) -> impl AsRef<[u8]> {
        self.octets()
    }
}

/// Bytes of an OPT record without options.
pub(crate) const OPT_LEN: usize = 11;
/// Largest reply to a UDP query without EDNS (RFC 1035 §4.2.1).
pub(crate) const CLASSIC_UDP_LIMIT: usize = 512;
/// Largest DNS message over TCP (a 16-bit length prefix).
pub(crate) const TCP_LIMIT: usize = u16::MAX as usize;
/// Pointer to the question name, which always starts right after the header.
const QUESTION_NAME_POINTER: u16 = 0xC000 | HEADER_LEN as u16;

// Header flag bits (RFC 1035 §4.1.1), byte 2 then byte 3.
const QR: u8 = 0b1000_0000;
const OPCODE_SHIFT: u8 = 3;
const AA: u8 = 0b0000_0100;
const TC: u8 = 0b0000_0010;
const RD: u8 = 0b0000_0001;
const RA: u8 = 0b1000_0000;
const CD: u8 = 0b0001_0000;

/// The reply header's variable parts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReplyFlags {
    pub rcode: ResponseCode,
    pub authoritative: bool,
    pub truncated: bool,
}

/// What to put in a reply's OPT record, if the client sent one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OptReply {
    /// The UDP payload size we accept.
    pub max_payload: u16,
}

/// Writes the reply header for `query`: ID, opcode, RD and CD copied; RA set, since
/// this resolver recurses for the client by forwarding.
pub(crate) fn write_header(out: &mut Vec<u8>, query: &Header, flags: ReplyFlags, counts: [u16; 4]) {
    let mut b2 = QR | (u8::from(query.op_code) << OPCODE_SHIFT) & 0b0111_1000;
    if flags.authoritative {
        b2 |= AA;
    }
    if flags.truncated {
        b2 |= TC;
    }
    if query.recursion_desired {
        b2 |= RD;
    }
    let mut b3 = RA | flags.rcode.low();
    if query.checking_disabled {
        b3 |= CD;
    }
    out.extend_from_slice(&query.id.to_be_bytes());
    out.extend_from_slice(&[b2, b3]);
    for count in counts {
        out.extend_from_slice(&count.to_be_bytes());
    }
}

/// Writes a reply with the records of `addrs` that fit in `limit` bytes; returns
/// whether some were left out (and TC was set).
pub(crate) fn write_a_reply<A: RecordAddr>(
    out: &mut Vec<u8>,
    query: &Header,
    question: &[u8],
    addrs: impl ExactSizeIterator<Item = A>,
    ttl: u32,
    opt: Option<OptReply>,
    limit: usize,
) -> bool {
    let fixed = HEADER_LEN + question.len() + if opt.is_some() { OPT_LEN } else { 0 };
    let record_len = A_RECORD_LEN - 4 + A::LEN;
    let room = limit.saturating_sub(fixed) / record_len;
    let count = addrs.len().min(room).min(usize::from(u16::MAX));
    let truncated = count < addrs.len();
    let flags = ReplyFlags {
        rcode: ResponseCode::NoError,
        authoritative: true,
        truncated,
    };
    out.clear();
    out.reserve(fixed + count * record_len);
    let ancount = u16::try_from(count).unwrap_or(u16::MAX);
    write_header(out, query, flags, [1, ancount, 0, u16::from(opt.is_some())]);
    out.extend_from_slice(question);
    for addr in addrs.take(count) {
        out.extend_from_slice(&QUESTION_NAME_POINTER.to_be_bytes());
        let rdata = addr.rdata();
        let rdata = rdata.as_ref();
        out.extend_from_slice(&u16::from(A::TYPE).to_be_bytes());
        out.extend_from_slice(&u16::from(DNSClass::IN).to_be_bytes());
        out.extend_from_slice(&ttl.to_be_bytes());
        out.extend_from_slice(&(A::LEN as u16).to_be_bytes());
        out.extend_from_slice(rdata);
    }
    if let Some(opt) = opt {
        write_opt(out, opt, ResponseCode::NoError);
    }
    truncated
}

/// Writes a reply with one PTR record naming `target` (a valid table name), if it fits
/// in `limit` bytes; otherwise no answer and TC set. Returns whether it was left out.
pub(crate) fn write_ptr_reply(
    out: &mut Vec<u8>,
    query: &Header,
    question: &[u8],
    target: &str,
    ttl: u32,
    opt: Option<OptReply>,
    limit: usize,
) -> bool {
    // Each label gets a length octet in place of its dot, plus the root's zero octet.
    let rdata_len = target.len() + 2;
    let fixed = HEADER_LEN + question.len() + if opt.is_some() { OPT_LEN } else { 0 };
    let record_len = 2 + 2 + 2 + 4 + 2 + rdata_len;
    let truncated = fixed + record_len > limit;
    let flags = ReplyFlags {
        rcode: ResponseCode::NoError,
        authoritative: true,
        truncated,
    };
    out.clear();
    let ancount = u16::from(!truncated);
    write_header(out, query, flags, [1, ancount, 0, u16::from(opt.is_some())]);
    out.extend_from_slice(question);
    if !truncated {
        out.extend_from_slice(&QUESTION_NAME_POINTER.to_be_bytes());
        out.extend_from_slice(&u16::from(RecordType::PTR).to_be_bytes());
        out.extend_from_slice(&u16::from(DNSClass::IN).to_be_bytes());
        out.extend_from_slice(&ttl.to_be_bytes());
        out.extend_from_slice(&u16::try_from(rdata_len).unwrap_or(u16::MAX).to_be_bytes());
        for label in target.split('.') {
            out.push(u8::try_from(label.len()).unwrap_or(u8::MAX));
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
    }
    if let Some(opt) = opt {
        write_opt(out, opt, ResponseCode::NoError);
    }
    truncated
}

/// Writes a reply without answers: NODATA (`NoError`, authoritative), SERVFAIL,
/// BADVERS, or, with no question, FORMERR/NOTIMP.
pub(crate) fn write_empty_reply(
    out: &mut Vec<u8>,
    query: &Header,
    flags: ReplyFlags,
    question: Option<&[u8]>,
    opt: Option<OptReply>,
) {
    out.clear();
    let qdcount = u16::from(question.is_some());
    write_header(out, query, flags, [qdcount, 0, 0, u16::from(opt.is_some())]);
    if let Some(question) = question {
        out.extend_from_slice(question);
    }
    if let Some(opt) = opt {
        write_opt(out, opt, flags.rcode);
    }
}

/// Appends an OPT record (RFC 6891 §6.1.2) with no options and the DO bit clear (no
/// DNSSEC here); carries the upper 8 bits of `rcode` (BADVERS needs them).
fn write_opt(out: &mut Vec<u8>, opt: OptReply, rcode: ResponseCode) {
    out.push(0); // root owner name
    out.extend_from_slice(&u16::from(RecordType::OPT).to_be_bytes());
    out.extend_from_slice(&opt.max_payload.to_be_bytes());
    // TTL field: extended rcode, version 0, flags 0.
    out.extend_from_slice(&[rcode.high(), 0, 0, 0]);
    out.extend_from_slice(&0u16.to_be_bytes()); // no options
}

#[cfg(test)]
mod tests {
    use hickory_proto::op::Message;

    use super::*;

    fn query_header() -> Header {
        let mut msg = Message::query();
        msg.metadata.id = 0xBEEF;
        msg.metadata.recursion_desired = true;
        Header {
            metadata: msg.metadata,
            counts: Default::default(),
        }
    }

    /// `web.` IN A
    const QUESTION: &[u8] = &[3, b'w', b'e', b'b', 0, 0, 1, 0, 1];

    #[test]
    fn a_reply_parses_back_with_every_record() {
        let addrs = [Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)];
        let mut out = Vec::new();
        let opt = Some(OptReply { max_payload: 1232 });
        let tc = write_a_reply(
            &mut out,
            &query_header(),
            QUESTION,
            addrs.into_iter(),
            5,
            opt,
            512,
        );
        assert!(!tc);
        assert_eq!(
            out.len(),
            HEADER_LEN + QUESTION.len() + 2 * A_RECORD_LEN + OPT_LEN
        );
        let msg = Message::from_vec(&out).unwrap();
        assert_eq!(msg.metadata.id, 0xBEEF);
        assert!(msg.metadata.authoritative && msg.metadata.recursion_desired);
        assert!(msg.metadata.recursion_available && !msg.metadata.truncation);
        let got: Vec<_> = msg
            .answers
            .iter()
            .map(|r| (r.data.clone(), r.ttl))
            .collect();
        assert_eq!(got.len(), 2);
        assert_eq!(msg.answers[0].name.to_ascii(), "web.");
        assert_eq!(got[1].1, 5);
        assert_eq!(msg.edns.as_ref().map(|e| e.max_payload()), Some(1232));
    }

    #[test]
    fn records_that_do_not_fit_are_left_out_and_tc_set() {
        let addrs = (0..100).map(|i| Ipv4Addr::new(10, 0, 1, i));
        let mut out = Vec::new();
        let tc = write_a_reply(&mut out, &query_header(), QUESTION, addrs, 5, None, 512);
        assert!(tc);
        assert!(out.len() <= 512);
        let msg = Message::from_vec(&out).unwrap();
        assert!(msg.metadata.truncation);
        assert_eq!(
            msg.answers.len(),
            (512 - HEADER_LEN - QUESTION.len()) / A_RECORD_LEN
        );
    }

    #[test]
    fn a_ptr_reply_parses_back_and_is_left_out_when_it_does_not_fit() {
        let mut out = Vec::new();
        let tc = write_ptr_reply(
            &mut out,
            &query_header(),
            QUESTION,
            "web.1.x.front",
            5,
            None,
            512,
        );
        assert!(!tc);
        let msg = Message::from_vec(&out).unwrap();
        assert_eq!(msg.answers.len(), 1);
        assert_eq!(msg.answers[0].data.to_string(), "web.1.x.front.");
        let tc = write_ptr_reply(
            &mut out,
            &query_header(),
            QUESTION,
            "web.1.x.front",
            5,
            None,
            40,
        );
        assert!(tc);
        let msg = Message::from_vec(&out).unwrap();
        assert!(msg.metadata.truncation && msg.answers.is_empty());
    }

    #[test]
    fn badvers_carries_its_upper_bits_in_the_opt_record() {
        let mut out = Vec::new();
        let flags = ReplyFlags {
            rcode: ResponseCode::BADVERS,
            authoritative: false,
            truncated: false,
        };
        let opt = Some(OptReply { max_payload: 1232 });
        write_empty_reply(&mut out, &query_header(), flags, Some(QUESTION), opt);
        let msg = Message::from_vec(&out).unwrap();
        // 16 is both BADVERS (in an OPT) and BADSIG (in TSIG); hickory names it BADSIG.
        assert_eq!(u16::from(msg.metadata.response_code), 16);
        assert_eq!(msg.edns.as_ref().map(|e| e.rcode_high()), Some(1));
    }
}

//! Unit tests of query parsing: what is accepted, rejected (and with what rcode), ignored.

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

use super::*;

fn query_bytes(name: &str, rtype: RecordType, edns: Option<u16>) -> Vec<u8> {
    let mut msg = Message::query();
    msg.metadata.id = 7;
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        msg.set_edns(e);
    }
    msg.to_vec().unwrap()
}

fn rejected_with(bytes: &[u8]) -> Option<ResponseCode> {
    match parse(bytes) {
        Parsed::Reject { rcode, .. } => Some(rcode),
        _ => None,
    }
}

#[test]
fn a_plain_query_parses_with_its_raw_question() {
    let bytes = query_bytes("Web.Front.", RecordType::A, None);
    let Parsed::Query(req) = parse(&bytes) else {
        panic!("not parsed");
    };
    assert_eq!(req.header.id, 7);
    assert_eq!(req.query.query_type(), RecordType::A);
    assert_eq!(req.question, &bytes[HEADER_LEN..]);
    assert_eq!(req.edns, None);
}

#[test]
fn the_clients_edns_size_is_read() {
    let bytes = query_bytes("web.", RecordType::A, Some(4000));
    let Parsed::Query(req) = parse(&bytes) else {
        panic!("not parsed");
    };
    assert_eq!(req.edns.map(|e| e.max_payload), Some(4000));
    let bytes = query_bytes("web.", RecordType::A, Some(100));
    let Parsed::Query(req) = parse(&bytes) else {
        panic!("not parsed");
    };
    assert_eq!(req.edns.map(|e| e.max_payload), Some(512));
}

#[test]
fn a_short_datagram_is_ignored() {
    assert!(matches!(
        parse(&[1, 2, 3]),
        Parsed::Ignore(DropReason::Unreadable)
    ));
    assert!(matches!(parse(&[]), Parsed::Ignore(DropReason::Unreadable)));
}

#[test]
fn a_response_is_ignored_never_answered() {
    let mut msg = Message::new(9, MessageType::Response, OpCode::Query);
    msg.add_query(Query::query(
        Name::from_ascii("web.").unwrap(),
        RecordType::A,
    ));
    let bytes = msg.to_vec().unwrap();
    assert!(matches!(
        parse(&bytes),
        Parsed::Ignore(DropReason::Response)
    ));
}

#[test]
fn another_opcode_is_notimp() {
    let mut bytes = query_bytes("web.", RecordType::A, None);
    bytes[2] |= u8::from(OpCode::Notify) << 3;
    assert_eq!(rejected_with(&bytes), Some(ResponseCode::NotImp));
}

#[test]
fn two_questions_or_none_is_formerr() {
    let mut bytes = query_bytes("web.", RecordType::A, None);
    bytes[5] = 2;
    assert_eq!(rejected_with(&bytes), Some(ResponseCode::FormErr));
    bytes[5] = 0;
    assert_eq!(rejected_with(&bytes), Some(ResponseCode::FormErr));
}

#[test]
fn answers_in_a_query_are_formerr() {
    let mut bytes = query_bytes("web.", RecordType::A, None);
    bytes[7] = 1;
    assert_eq!(rejected_with(&bytes), Some(ResponseCode::FormErr));
}

#[test]
fn a_name_longer_than_255_bytes_is_formerr() {
    let mut bytes = query_bytes("a.", RecordType::A, None);
    bytes.truncate(HEADER_LEN);
    for _ in 0..5 {
        bytes.push(60);
        bytes.extend_from_slice(&[b'x'; 60]);
    }
    bytes.extend_from_slice(&[0, 0, 1, 0, 1]);
    assert_eq!(rejected_with(&bytes), Some(ResponseCode::FormErr));
}

#[test]
fn a_label_length_with_reserved_bits_is_formerr() {
    let mut bytes = query_bytes("a.", RecordType::A, None);
    bytes[HEADER_LEN] = 0b0100_0001;
    assert_eq!(rejected_with(&bytes), Some(ResponseCode::FormErr));
}

#[test]
fn a_truncated_question_is_formerr() {
    let bytes = query_bytes("web.", RecordType::A, None);
    assert_eq!(
        rejected_with(&bytes[..bytes.len() - 1]),
        Some(ResponseCode::FormErr)
    );
}

#[test]
fn a_compressed_question_is_formerr() {
    let mut bytes = query_bytes("a.", RecordType::A, None);
    bytes.truncate(HEADER_LEN);
    bytes.extend_from_slice(&[0xC0, 0x00, 0, 1, 0, 1]);
    assert_eq!(rejected_with(&bytes), Some(ResponseCode::FormErr));
}

#[test]
fn two_opt_records_are_formerr() {
    let mut bytes = query_bytes("web.", RecordType::A, Some(1232));
    let opt = bytes[bytes.len() - OPT_LEN..].to_vec();
    bytes.extend_from_slice(&opt);
    bytes[11] = 2;
    assert_eq!(rejected_with(&bytes), Some(ResponseCode::FormErr));
}

#[test]
fn an_additional_count_past_the_end_is_formerr() {
    let mut bytes = query_bytes("web.", RecordType::A, None);
    bytes[11] = 1;
    assert_eq!(rejected_with(&bytes), Some(ResponseCode::FormErr));
}

#[test]
fn a_non_opt_additional_record_is_skipped() {
    let mut bytes = query_bytes("web.", RecordType::A, None);
    // root, type TXT, class IN, TTL 0, rdlen 2, rdata.
    bytes.extend_from_slice(&[0, 0, 16, 0, 1, 0, 0, 0, 0, 0, 2, 1, b'x']);
    bytes[11] = 1;
    let Parsed::Query(req) = parse(&bytes) else {
        panic!("not parsed");
    };
    assert_eq!(req.edns, None);
}

/// Length of an OPT record without options.
const OPT_LEN: usize = 11;

//! Unit tests of the answer rules, one test per rule.

use std::net::{IpAddr, Ipv4Addr};

use hickory_proto::op::{Edns, Message, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};

use super::*;

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 1, 50));

fn table() -> RecordTable {
    let mut b = RecordTable::builder();
    b.add("front", "web", [Ipv4Addr::new(10, 0, 1, 2)]).unwrap();
    b.add(
        "front",
        "tasks.web",
        [Ipv4Addr::new(10, 0, 1, 3), Ipv4Addr::new(10, 0, 1, 4)],
    )
    .unwrap();
    b.add("front", "idle", []).unwrap();
    b.add("front", "big", (0..100).map(|i| Ipv4Addr::new(10, 0, 9, i)))
        .unwrap();
    b.add("back", "db", [Ipv4Addr::new(10, 0, 2, 2)]).unwrap();
    b.ptr("front", Ipv4Addr::new(10, 0, 1, 3), "web.1.abc")
        .unwrap();
    b.ptr("back", Ipv4Addr::new(10, 0, 2, 7), "hidden").unwrap();
    b.add("locked", "vault", [Ipv4Addr::new(10, 0, 3, 2)])
        .unwrap();
    b.internal("locked").unwrap();
    b.attach(CLIENT, "front").unwrap();
    b.attach(INSIDER, "locked").unwrap();
    b.build()
}

/// A client whose only network is internal.
const INSIDER: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 3, 50));

fn ask_as(bytes: &[u8], client: IpAddr, network: &str) -> (Outcome, Option<Message>) {
    let mut out = Vec::new();
    let ctx = QueryContext {
        client,
        network,
        transport: Transport::Udp,
        max_udp_payload: DEFAULT_MAX_UDP_PAYLOAD,
    };
    let outcome = answer(&table(), bytes, &ctx, &mut out);
    let reply = matches!(outcome, Outcome::Reply(_)).then(|| Message::from_vec(&out).unwrap());
    (outcome, reply)
}

fn ctx(transport: Transport) -> QueryContext<'static> {
    QueryContext {
        client: CLIENT,
        network: "front",
        transport,
        max_udp_payload: DEFAULT_MAX_UDP_PAYLOAD,
    }
}

fn query(name: &str, rtype: RecordType, edns: Option<u16>) -> Vec<u8> {
    let mut msg = Message::query();
    msg.metadata.id = 0x1234;
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        msg.set_edns(e);
    }
    msg.to_vec().unwrap()
}

/// Answers `bytes` over UDP and decodes the reply.
fn ask(bytes: &[u8], transport: Transport) -> (Outcome, Option<Message>) {
    let mut out = Vec::new();
    let outcome = answer(&table(), bytes, &ctx(transport), &mut out);
    let reply = matches!(outcome, Outcome::Reply(_)).then(|| Message::from_vec(&out).unwrap());
    (outcome, reply)
}

fn addrs(msg: &Message) -> Vec<Ipv4Addr> {
    msg.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

#[test]
fn a_known_name_gets_its_address_authoritatively_with_a_short_ttl() {
    let (outcome, reply) = ask(&query("web.", RecordType::A, None), Transport::Udp);
    let reply = reply.unwrap();
    assert_eq!(
        outcome,
        Outcome::Reply(Reply {
            rcode: ResponseCode::NoError,
            truncated: false
        })
    );
    assert_eq!(addrs(&reply), [Ipv4Addr::new(10, 0, 1, 2)]);
    assert_eq!(reply.metadata.id, 0x1234);
    assert!(reply.metadata.authoritative);
    assert!(reply.metadata.recursion_desired && reply.metadata.recursion_available);
    assert_eq!(reply.answers[0].ttl, crate::DEFAULT_TTL);
    assert_eq!(reply.answers[0].dns_class, DNSClass::IN);
}

#[test]
fn the_question_is_echoed_in_the_askers_letter_case() {
    let (_, reply) = ask(&query("WeB.", RecordType::A, None), Transport::Udp);
    let reply = reply.unwrap();
    assert_eq!(reply.queries[0].name().to_ascii(), "WeB.");
    assert_eq!(addrs(&reply), [Ipv4Addr::new(10, 0, 1, 2)]);
}

#[test]
fn tasks_name_gets_every_task_in_rotating_order() {
    let bytes = query("tasks.web.", RecordType::A, None);
    let first = addrs(&ask(&bytes, Transport::Udp).1.unwrap());
    let t = table();
    let mut out = Vec::new();
    let mut turns = Vec::new();
    for _ in 0..2 {
        let _ = answer(&t, &bytes, &ctx(Transport::Udp), &mut out);
        turns.push(addrs(&Message::from_vec(&out).unwrap()));
    }
    assert_eq!(first.len(), 2);
    assert_eq!(
        turns[0],
        [Ipv4Addr::new(10, 0, 1, 3), Ipv4Addr::new(10, 0, 1, 4)]
    );
    assert_eq!(
        turns[1],
        [Ipv4Addr::new(10, 0, 1, 4), Ipv4Addr::new(10, 0, 1, 3)]
    );
}

#[test]
fn aaaa_and_other_types_for_a_known_name_are_nodata() {
    for rtype in [
        RecordType::AAAA,
        RecordType::MX,
        RecordType::TXT,
        RecordType::SRV,
    ] {
        let (outcome, reply) = ask(&query("web.", rtype, None), Transport::Udp);
        let reply = reply.unwrap();
        assert_eq!(
            outcome,
            Outcome::Reply(Reply {
                rcode: ResponseCode::NoError,
                truncated: false
            })
        );
        assert!(reply.answers.is_empty(), "{rtype}");
        assert!(reply.metadata.authoritative);
        assert_eq!(reply.queries.len(), 1);
    }
}

#[test]
fn any_gets_the_a_records() {
    let (_, reply) = ask(&query("web.", RecordType::ANY, None), Transport::Udp);
    assert_eq!(addrs(&reply.unwrap()), [Ipv4Addr::new(10, 0, 1, 2)]);
}

#[test]
fn a_name_without_addresses_is_nodata() {
    let (_, reply) = ask(&query("idle.", RecordType::A, None), Transport::Udp);
    let reply = reply.unwrap();
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert!(reply.answers.is_empty());
}

#[test]
fn tasks_of_a_service_without_running_tasks_is_nodata() {
    let (_, reply) = ask(&query("tasks.idle.", RecordType::A, None), Transport::Udp);
    let reply = reply.unwrap();
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert!(reply.answers.is_empty());
}

#[test]
fn an_unknown_name_is_forwarded() {
    let bytes = query("example.com.", RecordType::A, None);
    let (outcome, _) = ask(&bytes, Transport::Udp);
    let Outcome::Forward(fq) = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(fq.header.id, 0x1234);
    assert_eq!(fq.question(&bytes), &bytes[HEADER_LEN..]);
}

#[test]
fn a_name_on_a_network_the_client_is_not_on_is_forwarded() {
    let (outcome, _) = ask(&query("db.", RecordType::A, None), Transport::Udp);
    assert!(matches!(outcome, Outcome::Forward(_)), "{outcome:?}");
}

#[test]
fn another_class_is_forwarded() {
    let mut bytes = query("web.", RecordType::A, None);
    let len = bytes.len();
    bytes[len - 1] = 3; // CHAOS
    let (outcome, _) = ask(&bytes, Transport::Udp);
    assert!(matches!(outcome, Outcome::Forward(_)), "{outcome:?}");
}

#[test]
fn garbage_with_a_readable_header_is_formerr_with_the_id() {
    let mut bytes = vec![0xAB, 0xCD, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
    bytes.extend_from_slice(&[0xFF; 40]);
    let (outcome, reply) = ask(&bytes, Transport::Udp);
    let reply = reply.unwrap();
    assert_eq!(
        outcome,
        Outcome::Reply(Reply {
            rcode: ResponseCode::FormErr,
            truncated: false
        })
    );
    assert_eq!(reply.metadata.id, 0xABCD);
    assert!(reply.queries.is_empty());
}

#[test]
fn bytes_without_a_header_are_dropped() {
    let (outcome, _) = ask(&[0x12, 0x34, 0x01], Transport::Udp);
    assert_eq!(outcome, Outcome::Drop(DropReason::Unreadable));
}

#[test]
fn a_response_is_dropped() {
    let mut bytes = query("web.", RecordType::A, None);
    bytes[2] |= 0x80;
    assert_eq!(
        ask(&bytes, Transport::Udp).0,
        Outcome::Drop(DropReason::Response)
    );
}

#[test]
fn another_opcode_is_notimp() {
    let mut bytes = query("web.", RecordType::A, None);
    bytes[2] |= u8::from(OpCode::Update) << 3;
    let (_, reply) = ask(&bytes, Transport::Udp);
    let reply = reply.unwrap();
    assert_eq!(reply.metadata.response_code, ResponseCode::NotImp);
    assert_eq!(reply.metadata.op_code, OpCode::Update);
}

#[test]
fn without_edns_a_udp_reply_fits_512_bytes_with_tc() {
    let mut out = Vec::new();
    let outcome = answer(
        &table(),
        &query("big.", RecordType::A, None),
        &ctx(Transport::Udp),
        &mut out,
    );
    assert_eq!(
        outcome,
        Outcome::Reply(Reply {
            rcode: ResponseCode::NoError,
            truncated: true
        })
    );
    assert!(out.len() <= 512, "{}", out.len());
    let reply = Message::from_vec(&out).unwrap();
    assert!(reply.metadata.truncation);
    assert!(reply.edns.is_none());
    assert!(!addrs(&reply).is_empty());
}

#[test]
fn the_clients_edns_size_is_honoured_up_to_ours() {
    let mut out = Vec::new();
    let small = query("big.", RecordType::A, Some(600));
    let _ = answer(&table(), &small, &ctx(Transport::Udp), &mut out);
    assert!(out.len() <= 600 && out.len() > 512, "{}", out.len());
    let reply = Message::from_vec(&out).unwrap();
    assert!(reply.metadata.truncation);
    assert_eq!(
        reply.edns.as_ref().map(|e| e.max_payload()),
        Some(DEFAULT_MAX_UDP_PAYLOAD)
    );

    let large = query("big.", RecordType::A, Some(4096));
    let outcome = answer(&table(), &large, &ctx(Transport::Udp), &mut out);
    assert!(
        out.len() <= usize::from(DEFAULT_MAX_UDP_PAYLOAD),
        "{}",
        out.len()
    );
    // 100 records need 1600+ bytes: still truncated at our own 1232.
    assert!(matches!(
        outcome,
        Outcome::Reply(Reply {
            truncated: true,
            ..
        })
    ));
}

#[test]
fn tcp_carries_the_full_answer() {
    let (outcome, reply) = ask(&query("big.", RecordType::A, None), Transport::Tcp);
    let reply = reply.unwrap();
    assert_eq!(
        outcome,
        Outcome::Reply(Reply {
            rcode: ResponseCode::NoError,
            truncated: false
        })
    );
    assert_eq!(addrs(&reply).len(), 100);
    assert!(!reply.metadata.truncation);
}

#[test]
fn an_unknown_edns_version_is_badvers() {
    let mut bytes = query("web.", RecordType::A, Some(1232));
    let len = bytes.len();
    bytes[len - 5] = 1; // version octet of the OPT TTL
    let (outcome, reply) = ask(&bytes, Transport::Udp);
    assert!(matches!(
        outcome,
        Outcome::Reply(Reply {
            rcode: ResponseCode::BADVERS,
            ..
        })
    ));
    assert_eq!(reply.unwrap().edns.map(|e| e.rcode_high()), Some(1));
}

#[test]
fn servfail_carries_the_question_and_the_clients_id() {
    let bytes = query("example.com.", RecordType::A, None);
    let Outcome::Forward(fq) = ask(&bytes, Transport::Udp).0 else {
        panic!("not forwarded");
    };
    let mut out = Vec::new();
    write_servfail(&bytes, &fq, &mut out);
    let reply = Message::from_vec(&out).unwrap();
    assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(reply.metadata.id, 0x1234);
    assert_eq!(reply.queries[0].name().to_ascii(), "example.com.");
}

#[test]
fn a_reused_buffer_holds_only_the_latest_reply() {
    let t = table();
    let mut out = Vec::new();
    let _ = answer(
        &t,
        &query("big.", RecordType::A, None),
        &ctx(Transport::Tcp),
        &mut out,
    );
    let _ = answer(
        &t,
        &query("web.", RecordType::A, None),
        &ctx(Transport::Udp),
        &mut out,
    );
    assert_eq!(addrs(&Message::from_vec(&out).unwrap()).len(), 1);
    let _ = answer(&t, &[1, 2], &ctx(Transport::Udp), &mut out);
    assert!(out.is_empty());
}

/// Docker's embedded DNS (libnetwork resolver.go, handlePTRQuery): a container's
/// address answers `<name>.<network>.`.
#[test]
fn a_task_address_has_a_ptr_record_naming_it_on_its_network() {
    let (outcome, reply) = ask(
        &query("3.1.0.10.in-addr.arpa.", RecordType::PTR, None),
        Transport::Udp,
    );
    assert!(matches!(outcome, Outcome::Reply(_)), "{outcome:?}");
    let reply = reply.unwrap();
    assert!(reply.metadata.authoritative);
    let names: Vec<String> = reply
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::PTR(p) => Some(p.0.to_ascii()),
            _ => None,
        })
        .collect();
    assert_eq!(names, ["web.1.abc.front."]);
    assert_eq!(reply.answers[0].ttl, 5);
}

#[test]
fn a_vip_or_unknown_address_has_no_ptr_of_ours_and_is_forwarded() {
    for name in ["2.1.0.10.in-addr.arpa.", "9.9.9.10.in-addr.arpa."] {
        let (outcome, _) = ask(&query(name, RecordType::PTR, None), Transport::Udp);
        assert!(
            matches!(outcome, Outcome::Forward(_)),
            "{name}: {outcome:?}"
        );
    }
}

#[test]
fn a_ptr_of_a_network_the_client_is_not_on_is_not_answered() {
    let (outcome, _) = ask(
        &query("7.2.0.10.in-addr.arpa.", RecordType::PTR, None),
        Transport::Udp,
    );
    assert!(matches!(outcome, Outcome::Forward(_)), "{outcome:?}");
}

#[test]
fn reverse_names_parse_only_as_four_decimal_octets() {
    assert_eq!(
        reverse_v4("4.3.2.1.in-addr.arpa"),
        Some(Ipv4Addr::new(1, 2, 3, 4))
    );
    for bad in [
        "3.2.1.in-addr.arpa",
        "5.4.3.2.1.in-addr.arpa",
        "256.3.2.1.in-addr.arpa",
        "04.3.2.1.in-addr.arpa",
        "a.3.2.1.in-addr.arpa",
        "4.3.2.1.ip6.arpa",
        "in-addr.arpa",
    ] {
        assert_eq!(reverse_v4(bad), None, "{bad}");
    }
}

#[test]
fn ipv6_reverse_names_parse_only_as_32_nibbles() {
    let name = "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.0.0.1.2.3.4.ip6.arpa";
    assert_eq!(
        reverse_v6(name),
        Some("4321:0:1:2:3:4:567:89ab".parse().unwrap())
    );
    let short = &name[2..];
    let long = format!("0.{name}");
    let wide = name.replacen("b.a", "bb.a", 1);
    let hex = name.replacen("b.a", "g.a", 1);
    for bad in [
        short,
        &long,
        &wide,
        &hex,
        "ip6.arpa",
        "4.3.2.1.in-addr.arpa",
    ] {
        assert_eq!(reverse_v6(bad), None, "{bad}");
    }
}

/// Docker documents `<name>.<network>` as a name on user-defined networks.
#[test]
fn a_name_qualified_by_its_network_resolves_like_the_name() {
    let (_, reply) = ask(&query("web.front.", RecordType::A, None), Transport::Udp);
    assert_eq!(addrs(&reply.unwrap()), [Ipv4Addr::new(10, 0, 1, 2)]);
    let (_, reply) = ask(
        &query("tasks.web.front.", RecordType::A, None),
        Transport::Udp,
    );
    assert_eq!(addrs(&reply.unwrap()).len(), 2);
    // Not a network of the client's: not ours.
    let (outcome, _) = ask(&query("db.back.", RecordType::A, None), Transport::Udp);
    assert!(matches!(outcome, Outcome::Forward(_)), "{outcome:?}");
}

/// moby: a sandbox without external access gets SERVFAIL for what it would forward
/// (resolver.go, forwardExtDNS with proxyDNS false).
#[test]
fn a_client_on_internal_networks_only_gets_servfail_instead_of_forwarding() {
    let (outcome, reply) = ask_as(
        &query("example.com.", RecordType::A, None),
        INSIDER,
        "locked",
    );
    assert_eq!(
        outcome,
        Outcome::Reply(Reply {
            rcode: ResponseCode::ServFail,
            truncated: false
        })
    );
    assert!(reply.unwrap().answers.is_empty());
    // Its own names still answer.
    let (_, reply) = ask_as(&query("vault.", RecordType::A, None), INSIDER, "locked");
    assert_eq!(addrs(&reply.unwrap()), [Ipv4Addr::new(10, 0, 3, 2)]);
    // A stranger asking on the internal network's gateway gets nothing out either.
    let stranger = IpAddr::V4(Ipv4Addr::new(10, 0, 3, 99));
    let (outcome, _) = ask_as(
        &query("example.com.", RecordType::A, None),
        stranger,
        "locked",
    );
    assert!(matches!(outcome, Outcome::Reply(_)), "{outcome:?}");
}

//! Property tests ("fuzzing") of the request handler: arbitrary bytes, and well-formed
//! queries that are then bent out of shape, never panic, and every outcome keeps the
//! protocol's promises.

use std::net::{IpAddr, Ipv4Addr};

use hickory_proto::op::{Edns, Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};
use proptest::prelude::*;

use super::*;

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 1, 50));

fn table() -> RecordTable {
    let mut b = RecordTable::builder();
    b.add("net", "web", [Ipv4Addr::new(10, 0, 1, 2)]).unwrap();
    b.add(
        "net",
        "tasks.web",
        (1..=60).map(|i| Ipv4Addr::new(10, 0, 1, i)),
    )
    .unwrap();
    b.add("net", "a.b.c", [Ipv4Addr::new(10, 0, 1, 9)]).unwrap();
    b.build()
}

fn ctx(transport: Transport) -> QueryContext<'static> {
    QueryContext {
        client: CLIENT,
        network: "net",
        transport,
        max_udp_payload: DEFAULT_MAX_UDP_PAYLOAD,
    }
}

/// Checks what must hold for any input, and returns the outcome.
fn check_invariants(table: &RecordTable, bytes: &[u8], transport: Transport) -> Outcome {
    let mut out = Vec::new();
    let outcome = answer(table, bytes, &ctx(transport), &mut out);
    match outcome {
        Outcome::Drop(DropReason::Unreadable) => assert!(bytes.len() < HEADER_LEN),
        Outcome::Drop(DropReason::Response) => assert!(bytes[2] & 0x80 != 0),
        Outcome::Forward(fq) => {
            assert_eq!(fq.question(bytes).len(), fq.question_len);
            assert!(fq.question_len >= 5);
        }
        Outcome::Reply(reply) => {
            let msg = Message::from_vec(&out).expect("our reply must decode");
            assert_eq!(msg.metadata.message_type, MessageType::Response);
            assert_eq!(msg.metadata.id.to_be_bytes(), [bytes[0], bytes[1]]);
            assert_eq!(
                u16::from(msg.metadata.response_code),
                u16::from(reply.rcode)
            );
            if transport == Transport::Udp {
                assert!(out.len() <= usize::from(DEFAULT_MAX_UDP_PAYLOAD));
            }
            if reply.rcode == ResponseCode::FormErr || reply.rcode == ResponseCode::NotImp {
                assert!(msg.queries.is_empty());
            }
        }
    }
    outcome
}

/// A label of any bytes (including dots, spaces, high bytes), 1–63 long.
fn label() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 1..=63),
        "[a-zA-Z0-9_-]{1,63}".prop_map(String::into_bytes),
        Just(b"tasks".to_vec()),
        Just(b"WEB".to_vec()),
    ]
}

fn name() -> impl Strategy<Value = Name> {
    proptest::collection::vec(label(), 0..8).prop_filter_map("name too long", |labels| {
        Name::from_labels(labels).ok().map(|mut n| {
            n.set_fqdn(true);
            n
        })
    })
}

/// A well-formed query of any type, class, flags and EDNS size.
fn query() -> impl Strategy<Value = Vec<u8>> {
    (
        name(),
        any::<u16>(),
        prop_oneof![Just(1u16), Just(255), any::<u16>()],
        any::<u16>(),
        any::<bool>(),
        proptest::option::of(any::<u16>()),
    )
        .prop_map(|(name, rtype, class, id, rd, edns)| {
            let mut q = Query::query(name, RecordType::from(rtype));
            q.set_query_class(DNSClass::from(class));
            let mut msg = Message::query();
            msg.metadata.id = id;
            msg.metadata.recursion_desired = rd;
            msg.add_query(q);
            if let Some(size) = edns {
                let mut e = Edns::new();
                e.set_max_payload(size);
                msg.set_edns(e);
            }
            msg.to_vec().unwrap_or_default()
        })
}

/// One way of bending a message: overwrite a byte, cut it short, or grow it.
#[derive(Debug, Clone)]
enum Mutation {
    Set(usize, u8),
    Truncate(usize),
    Append(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        proptest::collection::vec(any::<u8>(), 1..64).prop_map(Mutation::Append),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    match m {
        Mutation::Set(i, b) if !bytes.is_empty() => {
            let at = i % bytes.len();
            bytes[at] = *b;
        }
        Mutation::Set(..) => {}
        Mutation::Truncate(n) => bytes.truncate(n % (bytes.len() + 1)),
        Mutation::Append(more) => bytes.extend_from_slice(more),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..700)) {
        let t = table();
        let _ = check_invariants(&t, &bytes, Transport::Udp);
        let _ = check_invariants(&t, &bytes, Transport::Tcp);
    }

    #[test]
    fn a_readable_header_with_a_wrong_question_count_is_formerr(
        mut bytes in proptest::collection::vec(any::<u8>(), 12..300),
        qdcount in 2u16..,
    ) {
        bytes[2] &= 0b0000_0111; // QR clear, opcode QUERY
        bytes[4..6].copy_from_slice(&qdcount.to_be_bytes());
        let outcome = check_invariants(&table(), &bytes, Transport::Udp);
        let formerr = matches!(outcome, Outcome::Reply(Reply { rcode: ResponseCode::FormErr, .. }));
        prop_assert!(formerr, "{:?}", outcome);
    }

    #[test]
    fn hostile_well_formed_queries_never_panic(
        bytes in query(),
        mutations in proptest::collection::vec(mutation(), 0..4),
    ) {
        let t = table();
        let mut bytes = bytes;
        for m in &mutations {
            apply(&mut bytes, m);
        }
        let _ = check_invariants(&t, &bytes, Transport::Udp);
        let _ = check_invariants(&t, &bytes, Transport::Tcp);
    }

    #[test]
    fn a_well_formed_query_for_a_known_name_round_trips(
        upper in proptest::collection::vec(any::<bool>(), 9),
        edns in proptest::option::of(512u16..),
        name_ix in 0usize..3,
    ) {
        let names = ["web", "tasks.web", "a.b.c"];
        // Random letter case: the lookup must fold it, the echo must keep it.
        let asked: String = names[name_ix]
            .chars()
            .zip(upper.iter().cycle())
            .map(|(c, &u)| if u { c.to_ascii_uppercase() } else { c })
            .collect();
        let mut msg = Message::query();
        msg.add_query(Query::query(Name::from_ascii(format!("{asked}.")).unwrap(), RecordType::A));
        if let Some(size) = edns {
            let mut e = Edns::new();
            e.set_max_payload(size);
            msg.set_edns(e);
        }
        let bytes = msg.to_vec().unwrap();
        let t = table();
        let mut out = Vec::new();
        let outcome = answer(&t, &bytes, &ctx(Transport::Tcp), &mut out);
        let full = matches!(outcome, Outcome::Reply(Reply { rcode: ResponseCode::NoError, truncated: false }));
        prop_assert!(full, "{:?}", outcome);
        let reply = Message::from_vec(&out).unwrap();
        prop_assert_eq!(reply.queries[0].name().to_ascii(), format!("{asked}."));
        let mut got: Vec<Ipv4Addr> = reply.answers.iter().filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        }).collect();
        got.sort();
        let mut want = t.resolve("net", CLIENT, names[name_ix]).unwrap();
        want.sort();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn table_names_round_trip_through_the_wire_spelling(
        labels in proptest::collection::vec("[a-zA-Z0-9_-]{1,20}", 1..6),
    ) {
        let text = labels.join(".");
        let stored = crate::DnsName::new(&text).unwrap();
        prop_assert_eq!(crate::DnsName::new(stored.as_str()).unwrap(), stored.clone());
        let wire = Name::from_labels(labels.iter().map(|l| l.as_bytes())).unwrap();
        let mut buf: KeyBuf = [0; std::mem::size_of::<KeyBuf>()];
        prop_assert_eq!(lookup_key(&wire, &mut buf), Some(stored.as_str()));
    }
}

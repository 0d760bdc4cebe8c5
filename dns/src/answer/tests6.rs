//! AAAA records of dual-stack names.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

use super::*;

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 1, 50));

fn v6(last: u16) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, last)
}

fn table() -> RecordTable {
    let mut b = RecordTable::builder();
    b.add("front", "sb", [Ipv4Addr::new(10, 0, 1, 2)]).unwrap();
    b.add6("front", "sb", [v6(2)]).unwrap();
    b.add(
        "front",
        "tasks.web",
        [Ipv4Addr::new(10, 0, 1, 3), Ipv4Addr::new(10, 0, 1, 4)],
    )
    .unwrap();
    b.add6("front", "tasks.web", [v6(3), v6(4), v6(3)]).unwrap();
    b.add("front", "web", [Ipv4Addr::new(10, 0, 1, 9)]).unwrap();
    b.add6("front", "only6", [v6(7)]).unwrap();
    b.add6("front", "many", (0..100).map(v6)).unwrap();
    b.attach(CLIENT, "front").unwrap();
    b.build()
}

fn ask(table: &RecordTable, name: &str, rtype: RecordType) -> (Outcome, Message) {
    let mut msg = Message::query();
    msg.metadata.id = 7;
    msg.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    let ctx = QueryContext {
        client: CLIENT,
        network: "front",
        transport: Transport::Udp,
        max_udp_payload: DEFAULT_MAX_UDP_PAYLOAD,
    };
    let mut out = Vec::new();
    let outcome = answer(table, &msg.to_vec().unwrap(), &ctx, &mut out);
    (outcome, Message::from_vec(&out).unwrap())
}

fn aaaa(reply: &Message) -> Vec<Ipv6Addr> {
    reply
        .answers
        .iter()
        .map(|r| match &r.data {
            RData::AAAA(a) => a.0,
            other => panic!("not AAAA: {other:?}"),
        })
        .collect()
}

#[test]
fn aaaa_gives_the_ipv6_addresses_and_a_the_ipv4_ones() {
    let t = table();
    let (_, reply) = ask(&t, "sb.", RecordType::AAAA);
    assert_eq!(aaaa(&reply), [v6(2)]);
    assert!(reply.metadata.authoritative);
    let (_, reply) = ask(&t, "sb.front.", RecordType::AAAA);
    assert_eq!(aaaa(&reply), [v6(2)], "qualified by the network");
    let (_, reply) = ask(&t, "sb.", RecordType::A);
    assert_eq!(reply.answers.len(), 1);
    assert!(matches!(reply.answers[0].data, RData::A(_)));
}

#[test]
fn task_aaaa_records_rotate_without_duplicates() {
    let t = table();
    let (_, first) = ask(&t, "tasks.web.", RecordType::AAAA);
    let (_, second) = ask(&t, "tasks.web.", RecordType::AAAA);
    assert_eq!(aaaa(&first).len(), 2);
    let mut a = aaaa(&first);
    let mut b = aaaa(&second);
    assert_ne!(a, b, "round robin");
    a.sort();
    b.sort();
    assert_eq!(a, b);
}

#[test]
fn a_name_of_one_family_is_nodata_for_the_other() {
    let t = table();
    for (name, rtype) in [("web.", RecordType::AAAA), ("only6.", RecordType::A)] {
        let (outcome, reply) = ask(&t, name, rtype);
        assert_eq!(
            outcome,
            Outcome::Reply(Reply {
                rcode: ResponseCode::NoError,
                truncated: false
            }),
            "{name} {rtype}"
        );
        assert!(reply.answers.is_empty(), "{name} {rtype}");
        assert!(reply.metadata.authoritative);
    }
    let (_, reply) = ask(&t, "only6.", RecordType::AAAA);
    assert_eq!(aaaa(&reply), [v6(7)]);
}

#[test]
fn aaaa_records_that_do_not_fit_512_bytes_are_left_out_with_tc() {
    let t = table();
    let (outcome, reply) = ask(&t, "many.", RecordType::AAAA);
    assert!(matches!(
        outcome,
        Outcome::Reply(Reply {
            truncated: true,
            ..
        })
    ));
    // 512 - 12 header - 10 question ("many." + type + class) = 490 → 17 records of 28.
    assert_eq!(reply.answers.len(), 17);
    assert!(reply.metadata.truncation);
}

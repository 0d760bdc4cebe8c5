//! Unit tests of the record table: scoping by client and network, names, rotation.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;

fn ip(a: u8, b: u8, c: u8, d: u8) -> Ipv4Addr {
    Ipv4Addr::new(a, b, c, d)
}

const FRONT_CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 1, 50));
const BOTH_CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 1, 51));
const STRANGER: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 1, 99));

/// `front` has `web` (VIP) and `tasks.web`; `back` has `db` and its own `web`.
fn two_networks() -> RecordTable {
    let mut b = RecordTable::builder();
    b.add("front", "web", [ip(10, 0, 1, 2)]).unwrap();
    b.add("front", "tasks.web", [ip(10, 0, 1, 3), ip(10, 0, 1, 4)])
        .unwrap();
    b.add("back", "db", [ip(10, 0, 2, 2)]).unwrap();
    b.add("back", "web", [ip(10, 0, 2, 9)]).unwrap();
    b.attach(FRONT_CLIENT, "front").unwrap();
    b.attach(BOTH_CLIENT, "back").unwrap();
    b.attach(BOTH_CLIENT, "front").unwrap();
    b.build()
}

#[test]
fn client_on_one_network_does_not_see_another_networks_names() {
    let t = two_networks();
    assert_eq!(
        t.resolve("front", FRONT_CLIENT, "web"),
        Some(vec![ip(10, 0, 1, 2)])
    );
    assert_eq!(t.resolve("front", FRONT_CLIENT, "db"), None);
}

#[test]
fn client_attached_to_two_networks_sees_both_from_either_gateway() {
    let t = two_networks();
    assert_eq!(
        t.resolve("front", BOTH_CLIENT, "db"),
        Some(vec![ip(10, 0, 2, 2)])
    );
    assert_eq!(
        t.resolve("back", BOTH_CLIENT, "tasks.web"),
        Some(vec![ip(10, 0, 1, 3), ip(10, 0, 1, 4)])
    );
}

#[test]
fn arrival_network_wins_when_both_networks_hold_the_name() {
    let t = two_networks();
    assert_eq!(
        t.resolve("front", BOTH_CLIENT, "web"),
        Some(vec![ip(10, 0, 1, 2)])
    );
    assert_eq!(
        t.resolve("back", BOTH_CLIENT, "web"),
        Some(vec![ip(10, 0, 2, 9)])
    );
}

#[test]
fn unknown_client_sees_only_the_arrival_network() {
    let t = two_networks();
    assert_eq!(
        t.resolve("back", STRANGER, "db"),
        Some(vec![ip(10, 0, 2, 2)])
    );
    // back knows a `web` but has no tasks for it; front's task IPs stay invisible.
    assert_eq!(t.resolve("back", STRANGER, "tasks.web"), Some(vec![]));
    assert_eq!(t.resolve("nowhere", STRANGER, "db"), None);
}

#[test]
fn known_client_does_not_see_a_network_it_is_not_attached_to() {
    let t = two_networks();
    // FRONT_CLIENT asking on back's gateway still sees only front.
    assert_eq!(t.resolve("back", FRONT_CLIENT, "db"), None);
    assert_eq!(
        t.resolve("back", FRONT_CLIENT, "web"),
        Some(vec![ip(10, 0, 1, 2)])
    );
}

#[test]
fn ipv4_mapped_client_addresses_are_the_same_client() {
    let t = two_networks();
    let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 1, 51).to_ipv6_mapped());
    assert_eq!(
        t.resolve("front", mapped, "db"),
        Some(vec![ip(10, 0, 2, 2)])
    );
    let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    assert_eq!(t.resolve("front", v6, "db"), None);
}

#[test]
fn names_are_case_insensitive_and_take_a_trailing_dot() {
    let mut b = RecordTable::builder();
    b.add("n", "My-Svc.", [ip(1, 1, 1, 1)]).unwrap();
    let t = b.build();
    assert_eq!(
        t.resolve("n", STRANGER, "MY-SVC"),
        Some(vec![ip(1, 1, 1, 1)])
    );
    assert_eq!(
        t.resolve("n", STRANGER, "my-svc."),
        Some(vec![ip(1, 1, 1, 1)])
    );
}

#[test]
fn adding_a_name_twice_merges_addresses_without_duplicates() {
    let mut b = RecordTable::builder();
    b.add("n", "alias", [ip(1, 1, 1, 1), ip(2, 2, 2, 2)])
        .unwrap();
    b.add("n", "ALIAS", [ip(2, 2, 2, 2), ip(3, 3, 3, 3)])
        .unwrap();
    let t = b.build();
    assert_eq!(
        t.resolve("n", STRANGER, "alias"),
        Some(vec![ip(1, 1, 1, 1), ip(2, 2, 2, 2), ip(3, 3, 3, 3)])
    );
    assert_eq!(t.name_count(), 1);
    assert_eq!(t.network_count(), 1);
}

#[test]
fn a_name_without_addresses_exists_with_no_records() {
    let mut b = RecordTable::builder();
    b.add("n", "tasks.idle", []).unwrap();
    let t = b.build();
    assert!(matches!(
        t.lookup("n", STRANGER, "tasks.idle"),
        Lookup::NoRecords
    ));
}

#[test]
fn tasks_of_a_known_service_without_an_entry_have_no_records() {
    let t = two_networks();
    assert!(matches!(
        t.lookup("back", STRANGER, "tasks.db"),
        Lookup::NoRecords
    ));
    assert!(matches!(
        t.lookup("back", STRANGER, "tasks.nope"),
        Lookup::Unknown
    ));
    assert!(matches!(
        t.lookup("back", STRANGER, "tasks."),
        Lookup::Unknown
    ));
}

#[test]
fn a_network_with_addresses_beats_one_where_the_name_is_empty() {
    let mut b = RecordTable::builder();
    b.add("a", "tasks.web", []).unwrap();
    b.add("b", "tasks.web", [ip(9, 9, 9, 9)]).unwrap();
    b.attach(STRANGER, "a")
        .unwrap()
        .attach(STRANGER, "b")
        .unwrap();
    let t = b.build();
    assert_eq!(
        t.resolve("a", STRANGER, "tasks.web"),
        Some(vec![ip(9, 9, 9, 9)])
    );
}

#[test]
fn each_query_starts_one_address_further_round_the_robin() {
    let mut b = RecordTable::builder();
    b.add("n", "rr", [ip(1, 0, 0, 1), ip(1, 0, 0, 2), ip(1, 0, 0, 3)])
        .unwrap();
    let t = b.build();
    let Lookup::Addresses(records) = t.lookup("n", STRANGER, "rr") else {
        panic!("rr not found");
    };
    let turns: Vec<Vec<u8>> = (0..4)
        .map(|_| records.rotation().map(|a| a.octets()[3]).collect())
        .collect();
    assert_eq!(
        turns,
        [vec![1, 2, 3], vec![2, 3, 1], vec![3, 1, 2], vec![1, 2, 3]]
    );
    assert_eq!(records.rotation().len(), 3);
}

#[test]
fn invalid_input_is_refused_with_context() {
    let mut b = RecordTable::builder();
    let err = b.add("n", "bad name", [ip(1, 1, 1, 1)]).unwrap_err();
    assert!(matches!(err, Error::InvalidName { .. }), "{err}");
    let err = b.add("", "ok", []).unwrap_err();
    assert!(matches!(err, Error::InvalidNetwork { .. }), "{err}");
    let err = b.attach(STRANGER, &"x".repeat(300)).unwrap_err();
    assert!(matches!(err, Error::InvalidNetwork { .. }), "{err}");
}

#[test]
fn ttl_defaults_to_a_few_seconds_and_can_be_set() {
    assert_eq!(RecordTable::builder().build().ttl(), DEFAULT_TTL);
    let mut b = RecordTable::builder();
    b.ttl(1);
    assert_eq!(b.build().ttl(), 1);
}

#[test]
fn qualified_names_resolve_only_on_the_clients_own_networks() {
    let t = two_networks();
    assert_eq!(
        t.resolve("front", FRONT_CLIENT, "web.front"),
        Some(vec![ip(10, 0, 1, 2)])
    );
    assert_eq!(t.resolve("front", FRONT_CLIENT, "db.back"), None);
    // Qualified by the other network, the other network's `web` is meant.
    assert_eq!(
        t.resolve("front", BOTH_CLIENT, "web.back"),
        Some(vec![ip(10, 0, 2, 9)])
    );
    assert_eq!(t.resolve("front", BOTH_CLIENT, "nothing.back"), None);
}

#[test]
fn ptr_names_are_qualified_by_network_and_scoped_by_client() {
    let mut b = RecordTable::builder();
    b.ptr("front", ip(10, 0, 1, 3), "web.1.abc").unwrap();
    b.ptr("front", ip(10, 0, 1, 3), "second").unwrap();
    b.ptr("Back", ip(10, 0, 2, 3), "db").unwrap();
    b.attach(FRONT_CLIENT, "front").unwrap();
    b.attach(BOTH_CLIENT, "front").unwrap();
    b.attach(BOTH_CLIENT, "Back").unwrap();
    let t = b.build();
    assert_eq!(
        t.ptr("front", FRONT_CLIENT, ip(10, 0, 1, 3)),
        Some("web.1.abc.front")
    );
    assert_eq!(t.ptr("front", FRONT_CLIENT, ip(10, 0, 2, 3)), None);
    assert_eq!(
        t.ptr("front", BOTH_CLIENT, ip(10, 0, 2, 3)),
        Some("db.back")
    );
}

#[test]
fn forwarding_needs_a_network_with_a_way_out() {
    let mut b = RecordTable::builder();
    b.network("open").unwrap();
    b.internal("closed").unwrap();
    b.attach(FRONT_CLIENT, "closed").unwrap();
    b.attach(BOTH_CLIENT, "closed").unwrap();
    b.attach(BOTH_CLIENT, "open").unwrap();
    let t = b.build();
    assert!(!t.may_forward("closed", FRONT_CLIENT));
    assert!(t.may_forward("closed", BOTH_CLIENT));
    assert!(!t.may_forward("closed", STRANGER));
    assert!(t.may_forward("open", STRANGER));
}

#[test]
fn a_client_may_have_upstreams_of_its_own() {
    let mut b = RecordTable::builder();
    let up: std::net::SocketAddr = "192.0.2.53:53".parse().unwrap();
    b.upstreams(FRONT_CLIENT, vec![up]);
    let t = b.build();
    assert_eq!(t.upstreams_for(FRONT_CLIENT).as_deref(), Some(&[up][..]));
    assert_eq!(t.upstreams_for(STRANGER), None);
}

//! ADD/DEL idempotency, CHECK, GC and STATUS decisions.

use super::*;
use crate::cni::env::ContainerId;
use crate::cni::result::{Interface, IpConfig};
use crate::cni::version::CniVersion;
use serde_json::json;

const NETNS: &str = "/var/run/netns/blue";

fn key(id: &str, ifname: &str) -> AttachmentKey {
    AttachmentKey {
        container_id: ContainerId::parse(id).unwrap(),
        ifname: IfName::parse(ifname).unwrap(),
    }
}

fn record(id: &str, ifname: &str, network: &str) -> RecordedAttachment {
    RecordedAttachment {
        key: key(id, ifname),
        network: network.into(),
        netns: NETNS.into(),
    }
}

fn eth0() -> IfName {
    IfName::parse("eth0").unwrap()
}

#[test]
fn add_creates_when_nothing_is_there() {
    assert_eq!(
        decide_add(NETNS, &eth0(), None, false),
        Ok(AddDecision::Create)
    );
}

#[test]
fn add_refuses_an_existing_interface() {
    // Spec: "If an interface of the requested name already exists in the container,
    // the CNI plugin MUST return with an error" -- with or without a record.
    for recorded in [None, Some(record("c1", "eth0", "dbnet"))] {
        let error = decide_add(NETNS, &eth0(), recorded.as_ref(), true).unwrap_err();
        assert_eq!(error.code(), 100);
        assert_eq!(
            error.to_string(),
            format!("interface eth0 already exists in {NETNS}")
        );
    }
}

#[test]
fn add_replaces_a_stale_record() {
    let stale = record("c1", "eth0", "dbnet");
    assert_eq!(
        decide_add(NETNS, &eth0(), Some(&stale), false),
        Ok(AddDecision::ReplaceStale(stale))
    );
}

#[test]
fn del_of_something_never_added_succeeds_with_nothing_to_do() {
    assert!(decide_del(Some(NETNS), None, false).is_noop());
    assert!(decide_del(None, None, false).is_noop());
}

#[test]
fn del_undoes_what_is_there() {
    let recorded = record("c1", "eth0", "dbnet");
    let plan = decide_del(Some(NETNS), Some(&recorded), true);
    assert_eq!(plan.release, Some(recorded.clone()));
    assert_eq!(plan.remove_interface_in.as_deref(), Some(NETNS));
    // The sandbox is gone (no CNI_NETNS): the record is still released.
    let plan = decide_del(None, Some(&recorded), false);
    assert_eq!(
        plan,
        DelPlan {
            release: Some(recorded),
            remove_interface_in: None
        }
    );
    // The agent lost the record but the interface is there: remove it.
    let plan = decide_del(Some(NETNS), None, true);
    assert_eq!(plan.remove_interface_in.as_deref(), Some(NETNS));
}

#[test]
fn repeated_del_converges_to_noop() {
    let recorded = record("c1", "eth0", "dbnet");
    let first = decide_del(Some(NETNS), Some(&recorded), true);
    assert!(!first.is_noop());
    // After the first DEL is carried out, nothing is recorded or present.
    assert!(decide_del(Some(NETNS), None, false).is_noop());
}

/// The final result of the SPEC.md "Add example" (after `tuning` changed the MAC).
fn spec_prev_result() -> CniResult {
    let value = json!({
        "ips": [{ "address": "10.1.0.5/16", "gateway": "10.1.0.1", "interface": 2 }],
        "routes": [{ "dst": "0.0.0.0/0" }],
        "interfaces": [
            { "name": "cni0", "mac": "00:11:22:33:44:55" },
            { "name": "veth3243", "mac": "55:44:33:22:11:11" },
            { "name": "eth0", "mac": "00:11:22:33:44:66", "sandbox": NETNS }
        ],
        "dns": { "nameservers": ["10.1.0.1"] }
    });
    CniResult::from_prev_result(&value, CniVersion::V1_1_0).unwrap()
}

fn healthy_sandbox() -> ObservedSandbox {
    ObservedSandbox {
        interface: Some(ObservedInterface {
            mac: "00:11:22:33:44:66".into(),
            mtu: 1450,
            addresses: vec![
                "10.1.0.5/16".parse().unwrap(),
                "fe80::1/64".parse().unwrap(),
            ],
        }),
        routes: vec![
            ObservedRoute {
                dst: "0.0.0.0/0".parse().unwrap(),
                gw: Some("10.1.0.1".parse().unwrap()),
            },
            ObservedRoute {
                dst: "10.1.0.0/16".parse().unwrap(),
                gw: None,
            },
        ],
    }
}

#[test]
fn check_expectation_comes_from_the_sandbox_interface() {
    let expected = expect_from(&spec_prev_result(), &eth0(), NETNS).unwrap();
    assert_eq!(expected.mac.as_deref(), Some("00:11:22:33:44:66"));
    assert_eq!(
        expected.addresses,
        ["10.1.0.5/16".parse::<IpNet>().unwrap()]
    );
    assert_eq!(expected.routes.len(), 1);
    // Wrong ifname or netns: the result does not describe this attachment.
    let error =
        expect_from(&spec_prev_result(), &IfName::parse("net1").unwrap(), NETNS).unwrap_err();
    assert_eq!(error.code(), 7);
    assert_eq!(
        expect_from(&spec_prev_result(), &eth0(), "/var/run/netns/red")
            .unwrap_err()
            .code(),
        7
    );
}

#[test]
fn check_passes_when_the_sandbox_matches() {
    let expected = expect_from(&spec_prev_result(), &eth0(), NETNS).unwrap();
    let differences = check_differences(&expected, &healthy_sandbox());
    assert_eq!(differences, []);
    assert_eq!(check_verdict(&expected, &differences), Ok(()));
}

#[test]
fn check_reports_every_difference() {
    let mut prev = spec_prev_result();
    prev.interfaces[2].mtu = Some(1500);
    prev.routes.push(Route {
        gw: Some("10.1.0.254".parse().unwrap()),
        ..prev.routes[0]
    });
    let expected = expect_from(&prev, &eth0(), NETNS).unwrap();
    let mut sandbox = healthy_sandbox();
    let interface = sandbox.interface.as_mut().unwrap();
    interface.mac = "00:11:22:33:44:77".into();
    interface.addresses.clear();
    sandbox.routes.clear();
    let differences = check_differences(&expected, &sandbox);
    let lines: Vec<String> = differences.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "MAC is 00:11:22:33:44:77, the result says 00:11:22:33:44:66",
            "MTU is 1450, the result says 1500",
            "address 10.1.0.5/16 is missing",
            "route to 0.0.0.0/0 is missing",
            "route to 0.0.0.0/0 via 10.1.0.254 is missing",
        ]
    );
    let error = check_verdict(&expected, &differences).unwrap_err();
    assert_eq!(error.code(), 101);
    assert_eq!(error.details().lines().count(), 5);
}

#[test]
fn check_of_a_missing_interface_says_only_that() {
    let expected = expect_from(&spec_prev_result(), &eth0(), NETNS).unwrap();
    let differences = check_differences(&expected, &ObservedSandbox::default());
    assert_eq!(differences, [CheckDifference::InterfaceMissing]);
}

#[test]
fn check_ignores_case_of_mac_and_extra_state() {
    let expected = expect_from(&spec_prev_result(), &eth0(), NETNS).unwrap();
    let mut sandbox = healthy_sandbox();
    sandbox.interface.as_mut().unwrap().mac = "00:11:22:33:44:66".to_uppercase();
    sandbox.routes.push(ObservedRoute {
        dst: "192.168.0.0/24".parse().unwrap(),
        gw: None,
    });
    assert_eq!(check_differences(&expected, &sandbox), []);
}

#[test]
fn check_uses_only_addresses_of_the_sandbox_interface() {
    let mut prev = spec_prev_result();
    prev.interfaces.push(Interface {
        name: "host0".into(),
        ..Interface::default()
    });
    prev.ips.push(IpConfig {
        address: "192.0.2.1/24".parse().unwrap(),
        gateway: None,
        interface: Some(3),
    });
    prev.ips.push(IpConfig {
        address: "192.0.2.2/24".parse().unwrap(),
        gateway: None,
        interface: None,
    });
    let expected = expect_from(&prev, &eth0(), NETNS).unwrap();
    assert_eq!(expected.addresses.len(), 1);
}

#[test]
fn gc_selects_attachments_no_longer_valid_on_this_network() {
    let recorded = [
        record("c1", "eth0", "dbnet"),
        record("c2", "eth0", "dbnet"),
        record("c2", "net1", "dbnet"),
        record("c3", "eth0", "other"),
        record("c0", "eth0", "dbnet"),
    ];
    let valid = [key("c1", "eth0"), key("c2", "net1"), key("c9", "eth0")];
    let stale: Vec<String> = gc_stale("dbnet", &recorded, &valid)
        .iter()
        .map(|r| r.key.to_string())
        .collect();
    assert_eq!(stale, ["c0/eth0", "c2/eth0"]);
}

#[test]
fn gc_with_an_empty_list_removes_all_of_this_network_only() {
    let recorded = [record("c1", "eth0", "dbnet"), record("c3", "eth0", "other")];
    let stale = gc_stale("dbnet", &recorded, &[]);
    assert_eq!(stale, [record("c1", "eth0", "dbnet")]);
    assert_eq!(gc_stale("dbnet", &[], &[]), []);
}

#[test]
fn status_maps_agent_health_to_codes() {
    assert_eq!(status_verdict(&AgentHealth::Ready), Ok(()));
    let code = |h: AgentHealth| status_verdict(&h).unwrap_err().code();
    assert_eq!(
        code(AgentHealth::Unreachable("connection refused".into())),
        50
    );
    assert_eq!(code(AgentHealth::NetworkUnknown("dbnet".into())), 50);
    assert_eq!(code(AgentHealth::AddressesExhausted("dbnet".into())), 50);
}

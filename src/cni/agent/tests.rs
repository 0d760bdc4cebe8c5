//! The agent-facing conversions: owners, records, attach requests, results, errors.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde_json::json;
use shoal_control::api::{EndpointInfo, NetworkInfo};
use shoal_control::state::{EndpointPort, Protocol as ShoalProtocol};

use super::*;
use crate::cni::decide::{ObservedRoute, ObservedSandbox};
use crate::cni::env::{CniCommand, Invocation};
use crate::cni::version::CniVersion;

const NETNS: &str = "/run/netns/cni-1234";

fn env_of(args: &str) -> AttachmentEnv {
    let mut vars = BTreeMap::new();
    for (k, v) in [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "c0ffee"),
        ("CNI_NETNS", NETNS),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin"),
        ("CNI_ARGS", args),
    ] {
        vars.insert(k.to_string(), v.to_string());
    }
    match Invocation::from_env(&vars).unwrap() {
        Invocation::Add(env) => env,
        other => panic!("not an ADD: {other:?}"),
    }
}

fn config_of(extra: serde_json::Value) -> NetworkConfig {
    let mut value = json!({"cniVersion": "1.0.0", "name": "web", "type": "shoal"});
    for (k, v) in extra.as_object().unwrap() {
        value[k] = v.clone();
    }
    NetworkConfig::parse(&serde_json::to_vec(&value).unwrap(), CniCommand::Add).unwrap()
}

fn endpoint(node: &str, owner: Option<&str>) -> EndpointInfo {
    EndpointInfo {
        id: "0123456789abcdef".into(),
        network: "web".into(),
        node: node.into(),
        sandbox: NETNS.into(),
        ifname: "eth0".into(),
        address: Some("10.0.9.5/24".into()),
        address6: None,
        mac: "02:42:0a:00:09:05".into(),
        gateway: Some(Ipv4Addr::new(10, 0, 9, 1)),
        gateway6: None,
        dns: Ipv4Addr::new(10, 0, 9, 1).into(),
        name: None,
        aliases: vec![],
        service: None,
        owner: owner.map(str::to_string),
        ports: vec![],
        mtu: 1450,
    }
}

#[test]
fn owners_round_trip_and_others_are_not_ours() {
    let env = env_of("");
    let text = owner(&env.key);
    assert_eq!(text, "cni:c0ffee/eth0");
    assert_eq!(parse_owner(&text), Some(env.key));
    // A Docker endpoint ID, or a mangled owner, is no CNI attachment.
    for other in [
        "4f1c9e",
        "cni:",
        "cni:/eth0",
        "cni:abc/",
        "cni:abc/a b",
        "cni:-x/eth0",
    ] {
        assert_eq!(parse_owner(other), None, "{other}");
    }
}

#[test]
fn records_are_this_nodes_cni_attachments_only() {
    let network = NetworkInfo {
        id: "n".into(),
        name: "web".into(),
        driver: "overlay".into(),
        vni: 4097,
        subnet: Some("10.0.9.0/24".into()),
        gateway: Some(Ipv4Addr::new(10, 0, 9, 1)),
        ip_range: Some("10.0.9.0/24".into()),
        aux_addresses: BTreeMap::new(),
        attachable: true,
        internal: false,
        encrypted: false,
        mtu: 1450,
        labels: BTreeMap::new(),
        in_use: 3,
        capacity: 253,
        endpoints: vec![
            endpoint("n1", Some("cni:c0ffee/eth0")),
            endpoint("n2", Some("cni:beef/eth0")),
            endpoint("n1", None),
            endpoint("n1", Some("dockerendpoint")),
        ],
        enable_ipv6: false,
        enable_ipv4: true,
        ipam_config: vec![],
    };
    let found = records(&network, "n1");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].key.to_string(), "c0ffee/eth0");
    assert_eq!(found[0].network, "web");
    assert_eq!(found[0].netns, NETNS);
}

#[test]
fn podmans_args_become_the_attach_request() {
    // podman: IgnoreUnknown, the container's name, --ip and --mac-address.
    let env = env_of("IgnoreUnknown=1;K8S_POD_NAME=db;IP=10.0.9.7;MAC=02:00:00:00:00:07");
    let config = config_of(json!({
        "network": "back",
        "runtimeConfig": {
            "aliases": {"web": ["primary"]},
            "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]
        }
    }));
    let request = attach_request(&config, &env, NETNS).unwrap();
    assert_eq!(request.network, "back");
    assert_eq!(request.netns, NETNS);
    assert_eq!(request.name.as_deref(), Some("db"));
    assert_eq!(request.aliases, ["primary"]);
    assert_eq!(request.ip, Some(Ipv4Addr::new(10, 0, 9, 7)));
    assert_eq!(request.mac.as_deref(), Some("02:00:00:00:00:07"));
    assert_eq!(request.ifname.as_deref(), Some("eth0"));
    assert_eq!(request.owner.as_deref(), Some("cni:c0ffee/eth0"));
    assert_eq!(
        request.ports,
        [EndpointPort {
            protocol: ShoalProtocol::Tcp,
            host_port: 8080,
            port: 80
        }]
    );
}

#[test]
fn the_mac_capability_wins_over_cni_args() {
    let env = env_of("MAC=02:00:00:00:00:07");
    let config = config_of(json!({"runtimeConfig": {"mac": "02:00:00:00:00:08"}}));
    let request = attach_request(&config, &env, NETNS).unwrap();
    assert_eq!(request.mac.as_deref(), Some("02:00:00:00:00:08"));
}

#[test]
fn what_a_shoal_interface_cannot_have_is_refused_with_code_2() {
    let env = env_of("");
    let cases = [
        (
            json!({"runtimeConfig": {"ips": ["10.0.9.7", "10.0.9.8"]}}),
            "ips",
        ),
        (
            json!({"runtimeConfig": {"ips": ["fd00::7", "10.0.9.7", "fd00::8"]}}),
            "ips",
        ),
        (
            json!({"runtimeConfig": {"portMappings": [
                {"hostPort": 53, "containerPort": 53, "protocol": "sctp"}]}}),
            "runtimeConfig.portMappings[0].protocol",
        ),
        (
            json!({"runtimeConfig": {"portMappings": [
                {"hostPort": 80, "containerPort": 80, "hostIP": "127.0.0.1"}]}}),
            "runtimeConfig.portMappings[0].hostIP",
        ),
    ];
    for (extra, key) in cases {
        let error = attach_request(&config_of(extra.clone()), &env, NETNS).unwrap_err();
        assert_eq!(error.code(), 2, "{extra}: {error}");
        assert!(error.to_string().contains(key), "{extra}: {error}");
    }
    // 0.0.0.0 is "every address", which is what shoal does.
    let any = json!({"runtimeConfig": {"portMappings": [
        {"hostPort": 80, "containerPort": 80, "hostIP": "0.0.0.0"}]}});
    assert_eq!(
        attach_request(&config_of(any), &env, NETNS)
            .unwrap()
            .ports
            .len(),
        1
    );
}

#[test]
fn the_result_lists_both_ends_the_address_route_and_resolver() {
    let observed = ObservedSandbox {
        interface: None,
        routes: vec![ObservedRoute {
            dst: "0.0.0.0/0".parse().unwrap(),
            gw: Some("10.0.9.1".parse().unwrap()),
        }],
    };
    let host = HostSide {
        name: "shle01234567".into(),
        mac: "aa:bb:cc:dd:ee:ff".into(),
    };
    let result = add_result(&endpoint("n1", None), Some(host), NETNS, &observed).unwrap();
    let printed = result.to_json(CniVersion::V1_0_0);
    assert_eq!(
        printed,
        json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "shle01234567", "mac": "aa:bb:cc:dd:ee:ff"},
                {"name": "eth0", "mac": "02:42:0a:00:09:05", "sandbox": NETNS}
            ],
            "ips": [{"address": "10.0.9.5/24", "gateway": "10.0.9.1", "interface": 1}],
            "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.9.1"}],
            "dns": {"nameservers": ["10.0.9.1"]}
        })
    );
    // 1.1.0 results carry the MTU: the observed one, else the network's.
    let v11 = result.to_json(CniVersion::V1_1_0);
    assert_eq!(v11["interfaces"][1]["mtu"], 1450);
}

#[test]
fn one_address_of_each_family_is_asked_for() {
    let env = env_of("");
    let both = json!({"runtimeConfig": {"ips": ["fd00:9::7/64", "10.0.9.7/24"]}});
    let request = attach_request(&config_of(both), &env, NETNS).unwrap();
    assert_eq!(request.ip, Some(Ipv4Addr::new(10, 0, 9, 7)));
    assert_eq!(request.ip6, Some("fd00:9::7".parse().unwrap()));
    let only6 = json!({"runtimeConfig": {"ips": ["fd00:9::7"]}});
    let request = attach_request(&config_of(only6), &env, NETNS).unwrap();
    assert_eq!((request.ip, request.ip6.is_some()), (None, true));
}

/// A dual-stack endpoint: both addresses with their gateways, and a default route of
/// each family the sandbox has through them (as the bridge plugin reports).
#[test]
fn a_dual_stack_result_has_both_families() {
    let dual = EndpointInfo {
        address6: Some("fd00:9::5/64".into()),
        gateway6: Some("fd00:9::1".parse().unwrap()),
        ..endpoint("n1", None)
    };
    let observed = ObservedSandbox {
        interface: None,
        routes: vec![
            ObservedRoute {
                dst: "0.0.0.0/0".parse().unwrap(),
                gw: Some("10.0.9.1".parse().unwrap()),
            },
            ObservedRoute {
                dst: "::/0".parse().unwrap(),
                gw: Some("fd00:9::1".parse().unwrap()),
            },
        ],
    };
    let printed = add_result(&dual, None, NETNS, &observed)
        .unwrap()
        .to_json(CniVersion::V1_0_0);
    assert_eq!(
        printed["ips"],
        json!([
            {"address": "10.0.9.5/24", "gateway": "10.0.9.1", "interface": 0},
            {"address": "fd00:9::5/64", "gateway": "fd00:9::1", "interface": 0}
        ])
    );
    assert_eq!(
        printed["routes"],
        json!([{"dst": "0.0.0.0/0", "gw": "10.0.9.1"}, {"dst": "::/0", "gw": "fd00:9::1"}])
    );
    // 0.3.x results say each address's family.
    let old = add_result(&dual, None, NETNS, &observed)
        .unwrap()
        .to_json(CniVersion::V0_3_1);
    assert_eq!(old["ips"][1]["version"], "6");
}

#[test]
fn an_ipv6_only_endpoint_has_its_ipv6_address_only() {
    let only6 = EndpointInfo {
        address: None,
        address6: Some("fd00:9::5/64".into()),
        gateway: None,
        gateway6: Some("fd00:9::1".parse().unwrap()),
        dns: "fd00:9::1".parse().unwrap(),
        ..endpoint("n1", None)
    };
    let observed = ObservedSandbox {
        interface: None,
        routes: vec![],
    };
    let printed = add_result(&only6, None, NETNS, &observed)
        .unwrap()
        .to_json(CniVersion::V1_0_0);
    assert_eq!(
        printed["ips"],
        json!([{"address": "fd00:9::5/64", "gateway": "fd00:9::1", "interface": 0}])
    );
    assert_eq!(printed["dns"]["nameservers"][0], "fd00:9::1");
    let none = EndpointInfo {
        address6: None,
        ..only6
    };
    assert!(add_result(&none, None, NETNS, &observed).is_err());
}

#[test]
fn no_default_route_is_claimed_that_the_sandbox_does_not_have() {
    // A second network: the sandbox's default route goes elsewhere.
    let observed = ObservedSandbox {
        interface: None,
        routes: vec![ObservedRoute {
            dst: "0.0.0.0/0".parse().unwrap(),
            gw: Some("172.16.0.1".parse().unwrap()),
        }],
    };
    let result = add_result(&endpoint("n1", None), None, NETNS, &observed).unwrap();
    assert!(result.routes.is_empty());
    assert_eq!(result.interfaces.len(), 1);
    assert_eq!(result.ips[0].interface, Some(0));
}

#[test]
fn agent_answers_map_to_the_specs_codes() {
    let code = |command, status| agent_error(command, "/s.sock", "web", status, "why").code();
    assert_eq!(code(CniCommand::Add, None), 11);
    assert_eq!(code(CniCommand::Del, None), 11);
    assert_eq!(code(CniCommand::Status, None), 50);
    assert_eq!(code(CniCommand::Add, Some(503)), 11);
    assert_eq!(code(CniCommand::Add, Some(421)), 11);
    assert_eq!(code(CniCommand::Add, Some(400)), 7);
    assert_eq!(code(CniCommand::Add, Some(409)), 7);
    assert_eq!(code(CniCommand::Add, Some(500)), 5);
    let refused = agent_error(
        CniCommand::Add,
        "/s.sock",
        "web",
        Some(400),
        "address taken",
    );
    assert!(refused.details().contains("address taken"), "{refused:?}");
}

//! Result printing and reading: the cases of libcni's `pkg/types/100` tests and the
//! SPEC.md appendix.

use super::*;
use serde_json::json;

/// Every field set, as libcni's `testResult()` sets them.
fn full_result() -> CniResult {
    CniResult {
        interfaces: vec![Interface {
            name: "eth0".into(),
            mac: Some("00:11:22:33:44:55".into()),
            mtu: Some(1500),
            sandbox: Some("/proc/3553/ns/net".into()),
            socket_path: Some("/path/to/vhost/fd".into()),
            pci_id: Some("8086:9a01".into()),
        }],
        ips: vec![
            IpConfig {
                address: "1.2.3.30/24".parse().unwrap(),
                gateway: Some("1.2.3.1".parse().unwrap()),
                interface: Some(0),
            },
            IpConfig {
                address: "abcd:1234:ffff::cdde/64".parse().unwrap(),
                gateway: Some("abcd:1234:ffff::1".parse().unwrap()),
                interface: Some(0),
            },
        ],
        routes: vec![
            route("15.5.6.8/24", Some("15.5.6.8")),
            route("1111:dddd::aaaa/80", Some("1111:dddd::aaaa")),
        ],
        dns: Dns {
            nameservers: vec!["1.2.3.4".parse().unwrap(), "1::cafe".parse().unwrap()],
            domain: Some("acompany.com".into()),
            search: vec!["somedomain.com".into(), "otherdomain.net".into()],
            options: vec!["foo".into(), "bar".into()],
        },
    }
}

fn route(dst: &str, gw: Option<&str>) -> Route {
    Route {
        dst: dst.parse().unwrap(),
        gw: gw.map(|g| g.parse().unwrap()),
        mtu: None,
        advmss: None,
        priority: None,
        table: None,
        scope: None,
    }
}

fn dns_json() -> Value {
    json!({
        "nameservers": ["1.2.3.4", "1::cafe"],
        "domain": "acompany.com",
        "search": ["somedomain.com", "otherdomain.net"],
        "options": ["foo", "bar"]
    })
}

#[test]
fn prints_a_1_1_0_result() {
    assert_eq!(
        full_result().to_json(CniVersion::V1_1_0),
        json!({
            "cniVersion": "1.1.0",
            "interfaces": [{
                "name": "eth0",
                "mac": "00:11:22:33:44:55",
                "mtu": 1500,
                "sandbox": "/proc/3553/ns/net",
                "pciID": "8086:9a01",
                "socketPath": "/path/to/vhost/fd"
            }],
            "ips": [
                { "interface": 0, "address": "1.2.3.30/24", "gateway": "1.2.3.1" },
                { "interface": 0, "address": "abcd:1234:ffff::cdde/64", "gateway": "abcd:1234:ffff::1" }
            ],
            "routes": [
                { "dst": "15.5.6.0/24", "gw": "15.5.6.8" },
                { "dst": "1111:dddd::/80", "gw": "1111:dddd::aaaa" }
            ],
            "dns": dns_json()
        })
    );
}

#[test]
fn prints_a_1_0_0_result_without_the_1_1_additions() {
    let mut result = full_result();
    result.routes[0].mtu = Some(1400);
    result.routes[0].table = Some(100);
    let printed = result.to_json(CniVersion::V1_0_0);
    assert_eq!(printed["cniVersion"], "1.0.0");
    assert_eq!(
        printed["interfaces"],
        json!([{ "name": "eth0", "mac": "00:11:22:33:44:55", "sandbox": "/proc/3553/ns/net" }])
    );
    assert_eq!(
        printed["routes"][0],
        json!({ "dst": "15.5.6.0/24", "gw": "15.5.6.8" })
    );
    assert_eq!(
        printed["ips"],
        full_result().to_json(CniVersion::V1_1_0)["ips"]
    );
}

#[test]
fn prints_a_0_4_0_result_with_ip_versions() {
    for version in [CniVersion::V0_3_0, CniVersion::V0_3_1, CniVersion::V0_4_0] {
        assert_eq!(
            full_result().to_json(version),
            json!({
                "cniVersion": version.as_str(),
                "interfaces": [
                    { "name": "eth0", "mac": "00:11:22:33:44:55", "sandbox": "/proc/3553/ns/net" }
                ],
                "ips": [
                    { "interface": 0, "version": "4", "address": "1.2.3.30/24", "gateway": "1.2.3.1" },
                    { "interface": 0, "version": "6", "address": "abcd:1234:ffff::cdde/64", "gateway": "abcd:1234:ffff::1" }
                ],
                "routes": [
                    { "dst": "15.5.6.0/24", "gw": "15.5.6.8" },
                    { "dst": "1111:dddd::/80", "gw": "1111:dddd::aaaa" }
                ],
                "dns": dns_json()
            })
        );
    }
}

#[test]
fn interface_index_zero_is_printed_and_a_missing_one_is_not() {
    let mut result = CniResult::default();
    result.ips.push(IpConfig {
        address: "10.1.2.3/24".parse().unwrap(),
        gateway: None,
        interface: Some(0),
    });
    result.ips.push(IpConfig {
        address: "10.1.2.4/24".parse().unwrap(),
        gateway: None,
        interface: None,
    });
    let printed = result.to_json(CniVersion::V1_1_0);
    assert_eq!(
        printed["ips"],
        json!([{ "interface": 0, "address": "10.1.2.3/24" }, { "address": "10.1.2.4/24" }])
    );
}

#[test]
fn empty_parts_are_left_out() {
    assert_eq!(
        CniResult::default().to_json(CniVersion::V1_1_0),
        json!({ "cniVersion": "1.1.0" })
    );
}

#[test]
fn every_version_round_trips() {
    for version in crate::cni::version::SUPPORTED {
        let printed = full_result().to_json(version);
        let read = CniResult::from_prev_result(&printed, version).unwrap();
        assert_eq!(read.to_json(version), printed, "{version}");
    }
    let read = CniResult::from_prev_result(
        &full_result().to_json(CniVersion::V1_1_0),
        CniVersion::V1_1_0,
    )
    .unwrap();
    let mut expected = full_result();
    expected.routes[0].dst = "15.5.6.0/24".parse().unwrap();
    expected.routes[1].dst = "1111:dddd::/80".parse().unwrap();
    assert_eq!(read, expected);
}

/// The bridge plugin's result in the SPEC.md "Add example".
fn spec_bridge_result() -> Value {
    json!({
        "ips": [{ "address": "10.1.0.5/16", "gateway": "10.1.0.1", "interface": 2 }],
        "routes": [{ "dst": "0.0.0.0/0" }],
        "interfaces": [
            { "name": "cni0", "mac": "00:11:22:33:44:55" },
            { "name": "veth3243", "mac": "55:44:33:22:11:11" },
            { "name": "eth0", "mac": "99:88:77:66:55:44", "sandbox": "/var/run/netns/blue" }
        ],
        "dns": { "nameservers": ["10.1.0.1"] }
    })
}

#[test]
fn reads_the_spec_example_prev_result() {
    let result = CniResult::from_prev_result(&spec_bridge_result(), CniVersion::V1_1_0).unwrap();
    assert_eq!(result.interfaces.len(), 3);
    assert_eq!(result.interfaces[0].sandbox, None);
    assert_eq!(result.ips[0].interface, Some(2));
    assert_eq!(result.routes[0].gw, None);
    assert_eq!(
        result.dns.nameservers,
        ["10.1.0.1".parse::<IpAddr>().unwrap()]
    );
}

#[test]
fn reads_libcni_prev_result_with_a_version_key() {
    // libcni's version_test: a 1.0.0 prevResult that still carries ips[].version.
    let prev = json!({
        "cniVersion": "1.0.0",
        "interfaces": [{ "name": "eth0", "mac": "00:11:22:33:44:55", "sandbox": "/proc/3553/ns/net",
                         "pciID": "8086:9a01", "socketPath": "/path/to/vhost/fd" }],
        "ips": [{ "version": "4", "interface": 0, "address": "1.2.3.30/24", "gateway": "1.2.3.1" }]
    });
    let result = CniResult::from_prev_result(&prev, CniVersion::V1_0_0).unwrap();
    assert_eq!(result.interfaces[0].pci_id.as_deref(), Some("8086:9a01"));
    assert_eq!(result.ips[0].address.to_string(), "1.2.3.30/24");
}

#[test]
fn refuses_bad_prev_results() {
    let code = |v: Value| {
        CniResult::from_prev_result(&v, CniVersion::V1_1_0)
            .unwrap_err()
            .code()
    };
    // libcni: an unknown prevResult version, and a 0.2.0 one.
    assert_eq!(code(json!({ "cniVersion": "5678.456" })), 6);
    assert_eq!(
        code(json!({ "cniVersion": "0.2.0", "ip4": { "ip": "1.2.3.30/24" } })),
        6
    );
    // libcni: `{"address": 5}` does not unmarshal.
    assert_eq!(code(json!({ "ips": [{ "address": 5 }] })), 6);
    assert_eq!(
        code(json!({ "ips": [{ "address": "10.0.0.1/24", "interface": 1 }] })),
        7
    );
    assert_eq!(
        code(json!({ "ips": [{ "address": "10.0.0.1/24", "version": "6" }] })),
        7
    );
    assert_eq!(code(json!("a string")), 6);
}

#[test]
fn chaining_appends_and_reindexes() {
    let prev = CniResult::from_prev_result(&spec_bridge_result(), CniVersion::V1_1_0).unwrap();
    let ours = CniResult {
        interfaces: vec![Interface {
            name: "net1".into(),
            sandbox: Some("/var/run/netns/blue".into()),
            ..Interface::default()
        }],
        ips: vec![IpConfig {
            address: "10.9.0.2/24".parse().unwrap(),
            gateway: None,
            interface: Some(0),
        }],
        routes: vec![
            route("0.0.0.0/0", None),
            route("10.9.0.0/16", Some("10.9.0.1")),
        ],
        dns: Dns {
            nameservers: vec!["10.1.0.1".parse().unwrap(), "10.9.0.1".parse().unwrap()],
            ..Dns::default()
        },
    };
    let merged = CniResult::chained_after(prev, ours);
    assert_eq!(merged.interfaces.len(), 4);
    assert_eq!(merged.ips[1].interface, Some(3));
    assert_eq!(merged.routes.len(), 2, "the default route is not repeated");
    assert_eq!(merged.dns.nameservers.len(), 2);
}

//! Reading the request configuration: the SPEC.md examples, libcni's checks, and
//! shoal's own keys.

use super::*;
use serde_json::json;

fn parse(value: Value, command: CniCommand) -> Result<NetworkConfig, CniError> {
    NetworkConfig::parse(value.to_string().as_bytes(), command)
}

fn minimal() -> Value {
    json!({ "cniVersion": "1.1.0", "name": "dbnet", "type": "shoal" })
}

fn with(key: &str, value: Value) -> Value {
    let mut config = minimal();
    config[key] = value;
    config
}

fn code(value: Value, command: CniCommand) -> u32 {
    parse(value, command).unwrap_err().code()
}

#[test]
fn minimal_config_takes_defaults() {
    let config = parse(minimal(), CniCommand::Add).unwrap();
    assert_eq!(config.cni_version, CniVersion::V1_1_0);
    assert_eq!(config.name, "dbnet");
    assert_eq!(config.plugin_type, "shoal");
    assert_eq!(config.network, "dbnet", "network defaults to name");
    assert_eq!(config.socket, crate::client::DEFAULT_SOCKET);
    assert_eq!(config.runtime, RuntimeConfig::default());
    assert_eq!(config.prev_result, None);
    assert_eq!(config.valid_attachments, None);
}

#[test]
fn shoal_keys_are_read() {
    let mut value = with("network", json!("backend"));
    value["socket"] = json!("/run/shoal/other.sock");
    let config = parse(value, CniCommand::Add).unwrap();
    assert_eq!(config.network, "backend");
    assert_eq!(config.socket, "/run/shoal/other.sock");
    assert_eq!(code(with("network", json!("")), CniCommand::Add), 7);
    assert_eq!(code(with("network", json!("a/b")), CniCommand::Add), 7);
    assert_eq!(
        code(with("socket", json!("shoal.sock")), CniCommand::Add),
        7
    );
    assert_eq!(code(with("socket", json!(5)), CniCommand::Add), 6);
}

#[test]
fn spec_example_request_for_portmap_parses() {
    // SPEC.md "Add example", step 3, with shoal's type.
    let value = json!({
        "cniVersion": "1.1.0",
        "name": "dbnet",
        "type": "shoal",
        "runtimeConfig": { "portMappings": [{ "hostPort": 8080, "containerPort": 80, "protocol": "tcp" }] },
        "prevResult": {
            "ips": [{ "address": "10.1.0.5/16", "gateway": "10.1.0.1", "interface": 2 }],
            "routes": [{ "dst": "0.0.0.0/0" }],
            "interfaces": [
                { "name": "cni0", "mac": "00:11:22:33:44:55" },
                { "name": "veth3243", "mac": "55:44:33:22:11:11" },
                { "name": "eth0", "mac": "00:11:22:33:44:66", "sandbox": "/var/run/netns/blue" }
            ],
            "dns": { "nameservers": ["10.1.0.1"] }
        }
    });
    for command in [CniCommand::Add, CniCommand::Check, CniCommand::Del] {
        let config = parse(value.clone(), command).unwrap();
        assert_eq!(config.runtime.port_mappings.len(), 1);
        assert_eq!(config.prev_result.as_ref().unwrap().interfaces.len(), 3);
    }
}

#[test]
fn versions_are_checked_first() {
    assert_eq!(code(with("cniVersion", json!("0.2.0")), CniCommand::Add), 1);
    assert_eq!(code(with("cniVersion", json!("2.0.0")), CniCommand::Add), 1);
    let mut no_version = minimal();
    no_version.as_object_mut().unwrap().remove("cniVersion");
    let error = parse(no_version, CniCommand::Add).unwrap_err();
    assert_eq!(error.code(), 1);
    assert!(error.details().contains("0.1.0"));
    assert_eq!(code(with("cniVersion", json!(1.1)), CniCommand::Add), 6);
    // An unsupported version wins over any other problem in the config.
    let mut both = with("cniVersion", json!("0.1.0"));
    both["ipam"] = json!({});
    assert_eq!(code(both, CniCommand::Add), 1);
}

#[test]
fn commands_need_their_versions() {
    // libcni's skel: CHECK needs 0.4.0, GC and STATUS 1.1.0.
    let prev = json!({ "interfaces": [{ "name": "eth0" }] });
    let check = |v: &str| {
        let mut value = with("cniVersion", json!(v));
        value["prevResult"] = prev.clone();
        parse(value, CniCommand::Check)
    };
    assert_eq!(check("0.3.1").unwrap_err().code(), 1);
    assert!(check("0.4.0").is_ok());
    for command in [CniCommand::Gc, CniCommand::Status] {
        let mut value = with("cniVersion", json!("1.0.0"));
        value[VALID_ATTACHMENTS] = json!([]);
        let error = parse(value.clone(), command).unwrap_err();
        assert_eq!(error.code(), 1);
        assert!(error.details().contains(command.as_str()));
        value["cniVersion"] = json!("1.1.0");
        assert!(parse(value, command).is_ok());
    }
    assert!(parse(with("cniVersion", json!("0.3.0")), CniCommand::Add).is_ok());
}

#[test]
fn names_and_types_are_validated() {
    // libcni's network name cases.
    assert_eq!(code(with("name", json!("")), CniCommand::Add), 7);
    assert_eq!(code(with("name", json!("1234%%%")), CniCommand::Add), 7);
    assert!(parse(with("name", json!("eth0")), CniCommand::Add).is_ok());
    let mut no_name = minimal();
    no_name.as_object_mut().unwrap().remove("name");
    assert_eq!(code(no_name, CniCommand::Add), 7);
    assert_eq!(code(with("type", json!("../shoal")), CniCommand::Add), 7);
    assert_eq!(code(with("type", json!("a\\b")), CniCommand::Add), 7);
    assert_eq!(code(with("type", json!("")), CniCommand::Add), 7);
}

#[test]
fn unknown_keys_are_code_2_with_key_and_value() {
    let error = parse(
        with("ipam", json!({ "type": "host-local" })),
        CniCommand::Add,
    )
    .unwrap_err();
    assert_eq!(error.code(), 2);
    assert_eq!(
        error.to_string(),
        r#"unsupported field ipam: {"type":"host-local"}"#
    );
    assert!(error.details().contains("remove \"ipam\""));
    assert_eq!(
        code(
            with("dns", json!({ "nameservers": ["10.1.0.1"] })),
            CniCommand::Add
        ),
        2
    );
    assert_eq!(code(with("bridge", json!("cni0")), CniCommand::Add), 2);
}

#[test]
fn reserved_and_runtime_keys_are_accepted() {
    let mut value = with("capabilities", json!({ "portMappings": true }));
    value["cni.dev/some-future-key"] = json!({ "x": 1 });
    value["args"] = json!({ "cni": { "labels": [{ "key": "app", "value": "myapp" }] } });
    assert!(parse(value, CniCommand::Add).is_ok());
    assert_eq!(
        code(
            with("capabilities", json!({ "mac": "yes" })),
            CniCommand::Add
        ),
        6
    );
    assert_eq!(code(with("args", json!([])), CniCommand::Add), 6);
}

#[test]
fn undecodable_stdin_is_code_6() {
    assert_eq!(
        NetworkConfig::parse(b"{{{", CniCommand::Add)
            .unwrap_err()
            .code(),
        6
    );
    assert_eq!(
        NetworkConfig::parse(b"", CniCommand::Del)
            .unwrap_err()
            .code(),
        6
    );
    assert_eq!(code(json!(["cniVersion"]), CniCommand::Add), 6);
}

#[test]
fn check_needs_a_prev_result() {
    assert_eq!(code(minimal(), CniCommand::Check), 7);
    // DEL without prevResult is fine (spec: plugins should still succeed).
    assert!(parse(minimal(), CniCommand::Del).is_ok());
    assert!(parse(with("prevResult", Value::Null), CniCommand::Del).is_ok());
}

#[test]
fn gc_reads_valid_attachments() {
    let value = with(
        VALID_ATTACHMENTS,
        json!([{ "containerID": "a51debf7e1eb", "ifname": "eth0" }, { "containerID": "b2", "ifname": "net1" }]),
    );
    let config = parse(value.clone(), CniCommand::Gc).unwrap();
    let keys: Vec<String> = config
        .valid_attachments
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(keys, ["a51debf7e1eb/eth0", "b2/net1"]);
    // Other commands ignore the key.
    assert_eq!(
        parse(value, CniCommand::Add).unwrap().valid_attachments,
        None
    );
    // GC without the list, or with a bad entry, is refused rather than releasing everything.
    assert_eq!(code(minimal(), CniCommand::Gc), 7);
    assert_eq!(
        code(
            with(VALID_ATTACHMENTS, json!([{ "containerID": "x" }])),
            CniCommand::Gc
        ),
        6
    );
    assert_eq!(
        code(
            with(
                VALID_ATTACHMENTS,
                json!([{ "containerID": "%", "ifname": "eth0" }])
            ),
            CniCommand::Gc
        ),
        7
    );
    assert_eq!(code(with(VALID_ATTACHMENTS, json!({})), CniCommand::Gc), 6);
    let empty = parse(with(VALID_ATTACHMENTS, json!([])), CniCommand::Gc).unwrap();
    assert_eq!(empty.valid_attachments, Some(vec![]));
}

#[test]
fn requested_ips_follow_the_conventions_precedence() {
    let cni_args_ip = RequestedIp::parse("10.0.0.9").ok();
    let plain = parse(minimal(), CniCommand::Add).unwrap();
    assert_eq!(plain.requested_ips(cni_args_ip), [cni_args_ip.unwrap()]);
    let args = parse(
        with(
            "args",
            json!({ "cni": { "ips": ["10.2.2.42/24", "2001:db8::5"] } }),
        ),
        CniCommand::Add,
    )
    .unwrap();
    assert_eq!(
        args.requested_ips(cni_args_ip).len(),
        2,
        "args wins over CNI_ARGS"
    );
    let mut both = with("args", json!({ "cni": { "ips": ["10.2.2.42/24"] } }));
    both["runtimeConfig"] = json!({ "ips": ["10.3.3.3"] });
    let both = parse(both, CniCommand::Add).unwrap();
    assert_eq!(
        both.requested_ips(cni_args_ip),
        [RequestedIp::parse("10.3.3.3").unwrap()]
    );
    assert_eq!(
        code(
            with("args", json!({ "cni": { "ips": ["nope"] } })),
            CniCommand::Add
        ),
        7
    );
}

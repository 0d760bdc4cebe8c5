//! Reading the CNI_* variables: the spec's per-command requirements and libcni's
//! validation cases.

use super::*;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn add_env() -> BTreeMap<String, String> {
    env(&[
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "a51debf7e1eb"),
        ("CNI_NETNS", "/var/run/netns/blue"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin::/usr/libexec/cni"),
    ])
}

fn names(error: CniError) -> Vec<&'static str> {
    assert_eq!(error.code(), 4, "{error:?}");
    match error {
        CniError::InvalidEnvironment { names, .. } => names,
        other => panic!("{other:?}"),
    }
}

#[test]
fn add_reads_every_parameter() {
    let Invocation::Add(env) = Invocation::from_env(&add_env()).unwrap() else {
        panic!()
    };
    assert_eq!(env.key.container_id.to_string(), "a51debf7e1eb");
    assert_eq!(env.key.ifname.as_str(), "eth0");
    assert_eq!(env.netns.as_deref(), Some("/var/run/netns/blue"));
    assert_eq!(env.path, ["/opt/cni/bin", "/usr/libexec/cni"]);
}

#[test]
fn missing_variables_are_all_named() {
    let mut vars = add_env();
    vars.remove("CNI_CONTAINERID");
    vars.insert("CNI_IFNAME".into(), String::new()); // empty counts as unset
    vars.remove("CNI_NETNS");
    let error = Invocation::from_env(&vars).unwrap_err();
    assert!(error.details().contains("CNI_NETNS is required for ADD"));
    assert_eq!(names(error), ["CNI_CONTAINERID", "CNI_IFNAME", "CNI_NETNS"]);
}

#[test]
fn del_does_not_need_netns() {
    let mut vars = add_env();
    vars.insert("CNI_COMMAND".into(), "DEL".into());
    vars.remove("CNI_NETNS");
    let Invocation::Del(env) = Invocation::from_env(&vars).unwrap() else {
        panic!()
    };
    assert_eq!(env.netns, None);
}

#[test]
fn check_needs_netns() {
    let mut vars = add_env();
    vars.insert("CNI_COMMAND".into(), "CHECK".into());
    vars.remove("CNI_NETNS");
    assert_eq!(
        names(Invocation::from_env(&vars).unwrap_err()),
        ["CNI_NETNS"]
    );
}

#[test]
fn gc_needs_path_and_nothing_else() {
    let vars = env(&[("CNI_COMMAND", "GC")]);
    assert_eq!(
        names(Invocation::from_env(&vars).unwrap_err()),
        ["CNI_PATH"]
    );
    let vars = env(&[("CNI_COMMAND", "GC"), ("CNI_PATH", "/opt/cni/bin")]);
    assert_eq!(
        Invocation::from_env(&vars).unwrap(),
        Invocation::Gc {
            path: vec!["/opt/cni/bin".into()]
        }
    );
}

#[test]
fn status_and_version_need_only_the_command() {
    let status = Invocation::from_env(&env(&[("CNI_COMMAND", "STATUS")])).unwrap();
    assert_eq!(status.command(), CniCommand::Status);
    let version = Invocation::from_env(&env(&[("CNI_COMMAND", "VERSION")])).unwrap();
    assert_eq!(version.command(), CniCommand::Version);
}

#[test]
fn command_missing_or_unknown_is_code_4() {
    assert_eq!(
        names(Invocation::from_env(&env(&[])).unwrap_err()),
        ["CNI_COMMAND"]
    );
    let error = Invocation::from_env(&env(&[("CNI_COMMAND", "add")])).unwrap_err();
    assert_eq!(names(error), ["CNI_COMMAND"]);
}

#[test]
fn container_ids_follow_the_spec_rule() {
    // libcni's utils_test cases.
    assert!(ContainerId::parse("a51debf7e1eb").is_ok());
    assert!(ContainerId::parse("1234%%%").is_err());
    assert!(ContainerId::parse("").is_err());
    assert!(ContainerId::parse("_abc").is_err());
    assert!(ContainerId::parse("a.b-c_d").is_ok());
    let mut vars = add_env();
    vars.insert("CNI_CONTAINERID".into(), "1234%%%".into());
    let error = Invocation::from_env(&vars).unwrap_err();
    assert!(error.details().contains("1234%%%"));
    assert_eq!(names(error), ["CNI_CONTAINERID"]);
}

#[test]
fn interface_names_follow_the_kernel_rule() {
    // libcni's utils_test cases, plus the 15-byte edge.
    assert!(IfName::parse("testname").is_ok());
    assert!(IfName::parse("a23456789012345").is_ok());
    for bad in [
        "",
        "testnamemorethan16",
        "a234567890123456",
        ".",
        "..",
        "/testname",
        "test name",
        "eth:0",
        "eth\t0",
    ] {
        assert!(IfName::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn cni_args_follow_load_args() {
    assert_eq!(CniArgs::parse(""), Ok(CniArgs::default()));
    assert!(CniArgs::parse("IgnoreUnknown=True;Unk=nown").is_ok());
    assert!(CniArgs::parse("Unk=nown").is_err());
    assert!(CniArgs::parse("IgnoreUnknown=0;Unk=nown").is_err());
    assert!(CniArgs::parse("IgnoreUnknown=0, Unk=nown").is_err()); // one pair, two '='
    assert!(CniArgs::parse("IgnoreUnknown=1").is_ok());
    assert!(CniArgs::parse("IgnoreUnknown=maybe").is_err());
    assert!(
        CniArgs::parse("A=1;").is_err(),
        "an empty pair is not KEY=VALUE"
    );
    assert!(CniArgs::parse("=1").is_err());
}

#[test]
fn cni_args_carry_a_requested_ip() {
    let args = CniArgs::parse("IgnoreUnknown=1;K8S_POD_NAME=web;IP=10.0.0.5/24;X=1").unwrap();
    assert_eq!(args.ip, Some(RequestedIp::parse("10.0.0.5/24").unwrap()));
    assert_eq!(args.pod_name.as_deref(), Some("web"));
    assert_eq!(args.other, [("X".to_string(), "1".to_string())]);
    // podman's own keys need no IgnoreUnknown.
    let podman = CniArgs::parse("K8S_POD_NAME=db;MAC=02:00:00:00:00:07").unwrap();
    assert_eq!(
        podman.mac.map(|m| m.to_string()).as_deref(),
        Some("02:00:00:00:00:07")
    );
    assert!(
        CniArgs::parse("MAC=01:00:00:00:00:07").is_err(),
        "a group MAC"
    );
    assert!(CniArgs::parse("IP=10.0.0.0/33").is_err());
    let mut vars = add_env();
    vars.insert("CNI_ARGS".into(), "IP=nope".into());
    assert_eq!(
        names(Invocation::from_env(&vars).unwrap_err()),
        ["CNI_ARGS"]
    );
}

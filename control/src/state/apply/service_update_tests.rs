//! `service create` and `service update` as Docker's CLI and swarmkit define them:
//! dynamic ports, `--publish-add/-rm`, `--network-add/-rm`, endpoint mode changes,
//! network options, placement and resolver settings.

use super::service_tests::{cluster, run, web};
use super::*;
use crate::state::{
    Constraint, EndpointMode, NetworkAttachment, NetworkSpec, PortRemoval, PortSpec, PublishMode,
    ServiceChanges, ServiceMode, ServiceSpec,
};

fn create(s: &mut ClusterState, id: &str, spec: ServiceSpec) -> Result<Applied, ApplyError> {
    run(
        s,
        Command::CreateService {
            id: id.into(),
            spec,
        },
    )
}

fn update(s: &mut ClusterState, changes: ServiceChanges) -> Result<Applied, ApplyError> {
    run(
        s,
        Command::UpdateService {
            name: "web".into(),
            changes,
        },
    )
}

fn published(s: &ClusterState, svc: &str) -> Vec<String> {
    s.services[svc]
        .spec
        .publish
        .iter()
        .map(|p| p.to_string())
        .collect()
}

fn port(s: &str) -> PortSpec {
    PortSpec::parse(s).unwrap()
}

fn removal(s: &str) -> PortRemoval {
    PortRemoval::Spec(port(s))
}

fn second_network(s: &mut ClusterState) {
    run(
        s,
        Command::CreateNetwork {
            id: "aaaaaaaa02".into(),
            spec: NetworkSpec {
                name: "back".into(),
                ..Default::default()
            },
        },
    )
    .unwrap();
}

/// swarmkit portallocator.go: ingress ports without a number come from 30000-32767,
/// serially and per protocol.
#[test]
fn ports_without_a_number_are_assigned_serially_from_the_dynamic_range() {
    let mut s = cluster(1);
    create(&mut s, "bbbbbbbb01", web(1, &["80", "8080:81", "53/udp"])).unwrap();
    assert_eq!(
        published(&s, "web"),
        ["30000:80/tcp", "8080:81/tcp", "30000:53/udp"]
    );
    let other = ServiceSpec {
        name: "api".into(),
        ..web(1, &["80"])
    };
    create(&mut s, "bbbbbbbb02", other).unwrap();
    assert_eq!(published(&s, "api"), ["30001:80/tcp"]);
    run(&mut s, Command::RemoveService { name: "api".into() }).unwrap();
    let again = ServiceSpec {
        name: "api".into(),
        ..web(1, &["80"])
    };
    create(&mut s, "bbbbbbbb03", again).unwrap();
    assert_eq!(
        published(&s, "api"),
        ["30002:80/tcp"],
        "a freed port is not handed out at once"
    );
}

/// docker/cli update_test.go: TestUpdatePortsDuplicate.
#[test]
fn publishing_a_port_already_published_changes_nothing() {
    let mut s = cluster(1);
    create(&mut s, "bbbbbbbb01", web(1, &["8080:80", "90"])).unwrap();
    let rev = s.revision;
    for add in ["8080:80", "90"] {
        update(
            &mut s,
            ServiceChanges {
                publish_add: vec![port(add)],
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(s.revision, rev, "--publish-add {add}");
    }
    let e = update(
        &mut s,
        ServiceChanges {
            publish_add: vec![port("8080:81")],
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("published twice"), "{e}");
}

/// `--publish-add` of a published port with another `src=` switches its mode in place
/// (one port, same number); `--publish-rm` takes it whatever its `src=`.
#[test]
fn publish_add_switches_a_ports_source_mode() {
    use crate::state::SourceMode;
    let mut s = cluster(1);
    create(&mut s, "bbbbbbbb01", web(1, &["8080:80"])).unwrap();
    let src = |s: &ClusterState| s.services["web"].spec.publish[0].src;
    assert_eq!(src(&s), SourceMode::Preserve, "preserve is the default");
    for (add, want) in [
        ("published=8080,target=80,src=nat", SourceMode::Nat),
        ("src=preserve,8080:80", SourceMode::Preserve),
        ("src=nat,80", SourceMode::Nat),
    ] {
        update(
            &mut s,
            ServiceChanges {
                publish_add: vec![port(add)],
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(src(&s), want, "--publish-add {add}");
        assert_eq!(s.services["web"].spec.publish.len(), 1, "{add}");
        assert_eq!(s.services["web"].spec.publish[0].published, 8080);
    }
    assert_eq!(published(&s, "web"), ["src=nat,8080:80/tcp"]);
    update(
        &mut s,
        ServiceChanges {
            publish_rm: vec![removal("8080:80")],
            ..Default::default()
        },
    )
    .unwrap();
    assert!(published(&s, "web").is_empty());
}

/// docker/cli update_test.go: TestUpdatePortsRmWithProtocol — by target port,
/// protocol and mode; shoal also says when nothing matched.
#[test]
fn publish_rm_takes_the_target_port_and_says_when_nothing_matched() {
    let mut s = cluster(1);
    create(
        &mut s,
        "bbbbbbbb01",
        web(1, &["8080:80", "8081:80/udp", "mode=host,9000:90"]),
    )
    .unwrap();
    update(
        &mut s,
        ServiceChanges {
            publish_rm: vec![removal("80")],
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        published(&s, "web"),
        ["8081:80/udp", "mode=host,9000:90/tcp"]
    );
    let before = s.clone();
    for (rm, why) in [
        ("8081", "publishes no such port"),
        ("90", "add mode=host"),
        ("9999:80/udp", "it publishes: 8081:80/udp"),
    ] {
        let e = update(
            &mut s,
            ServiceChanges {
                publish_rm: vec![removal(rm)],
                ..Default::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains(why), "{rm}: {e}");
        assert_eq!(s, before);
    }
    update(
        &mut s,
        ServiceChanges {
            publish_rm: vec![removal("8081:80/udp"), removal("mode=host,90")],
            // Removal comes first, so a port can be moved in one update.
            publish_add: vec![port("7000:80")],
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(published(&s, "web"), ["7000:80/tcp"]);
}

/// swarmkit controlapi: checkPortConflicts.
#[test]
fn host_ports_may_repeat_across_services_but_ingress_ports_may_not() {
    let mut s = cluster(2);
    create(&mut s, "bbbbbbbb01", web(1, &["mode=host,8080:80"])).unwrap();
    let twin = ServiceSpec {
        name: "twin".into(),
        ..web(1, &["mode=host,8080:80"])
    };
    create(&mut s, "bbbbbbbb02", twin).unwrap();
    let mesh = ServiceSpec {
        name: "mesh".into(),
        ..web(1, &["8080:80"])
    };
    let e = create(&mut s, "bbbbbbbb03", mesh).unwrap_err().to_string();
    assert!(e.contains("as a host-published port"), "{e}");
    let taken = ServiceSpec {
        name: "ingress".into(),
        ..web(1, &["9090:80"])
    };
    create(&mut s, "bbbbbbbb04", taken).unwrap();
    let host = ServiceSpec {
        name: "host".into(),
        ..web(1, &["mode=host,9090:80"])
    };
    let e = create(&mut s, "bbbbbbbb05", host).unwrap_err().to_string();
    assert!(
        e.contains(
            "port '9090' is already in use by service 'ingress' (bbbbbbbb04) as an ingress port"
        ),
        "{e}"
    );
}

/// docker/cli update.go: updateNetworks; the VIP follows the networks.
#[test]
fn networks_are_added_and_removed_with_their_vips() {
    let mut s = cluster(1);
    second_network(&mut s);
    create(&mut s, "bbbbbbbb01", web(1, &[])).unwrap();
    let mut attach = NetworkAttachment::parse("name=back,alias=API").unwrap();
    attach.target = "back".into();
    update(
        &mut s,
        ServiceChanges {
            networks_add: vec![attach.clone()],
            ..Default::default()
        },
    )
    .unwrap();
    let svc = &s.services["web"];
    assert_eq!(svc.spec.networks, ["net", "back"]);
    assert_eq!(svc.spec.network_options["back"].aliases, ["api"]);
    let vip = svc.vips["back"];
    assert_eq!(
        s.networks["back"].space.as_ref().unwrap().owner_of(vip),
        Some("vip:web")
    );
    let e = update(
        &mut s,
        ServiceChanges {
            networks_add: vec![attach],
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("service is already attached to network back"),
        "{e}"
    );
    update(
        &mut s,
        ServiceChanges {
            networks_rm: vec!["back".into()],
            ..Default::default()
        },
    )
    .unwrap();
    let svc = &s.services["web"];
    assert_eq!(svc.spec.networks, ["net"]);
    assert!(!svc.vips.contains_key("back"));
    assert!(svc.spec.network_options.is_empty());
    assert_eq!(
        s.networks["back"].space.as_ref().unwrap().owner_of(vip),
        None,
        "the VIP is freed"
    );
    // Leaving a network the service is not on is nothing; one that does not exist is.
    let rev = s.revision;
    update(
        &mut s,
        ServiceChanges {
            networks_rm: vec!["back".into()],
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(s.revision, rev);
    let e = update(
        &mut s,
        ServiceChanges {
            networks_rm: vec!["gone".into()],
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(e, ApplyError::NoSuchNetwork(_)), "{e}");
}

#[test]
fn the_endpoint_mode_changes_with_its_vips_and_checks_ingress_ports() {
    let mut s = cluster(1);
    create(&mut s, "bbbbbbbb01", web(1, &[])).unwrap();
    let vip = s.services["web"].vips["net"];
    update(
        &mut s,
        ServiceChanges {
            endpoint_mode: Some(EndpointMode::Dnsrr),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(s.services["web"].vips.is_empty());
    assert_eq!(
        s.networks["net"].space.as_ref().unwrap().owner_of(vip),
        None
    );
    let e = update(
        &mut s,
        ServiceChanges {
            publish_add: vec![port("8080:80")],
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("can't be used with dnsrr mode"), "{e}");
    update(
        &mut s,
        ServiceChanges {
            endpoint_mode: Some(EndpointMode::Vip),
            publish_add: vec![port("8080:80")],
            ..Default::default()
        },
    )
    .unwrap();
    assert!(s.services["web"].vips.contains_key("net"));
    assert_eq!(s.services["web"].spec.publish[0].mode, PublishMode::Ingress);
}

#[test]
fn bad_options_are_refused_and_change_nothing() {
    let mut s = cluster(1);
    let before = s.clone();
    let with = |f: &dyn Fn(&mut ServiceSpec)| {
        let mut spec = web(1, &[]);
        f(&mut spec);
        spec
    };
    let cases: Vec<(ServiceSpec, &str)> = vec![
        (
            with(&|s| {
                s.network_options.insert(
                    "other".into(),
                    NetworkAttachment::parse("name=net,alias=a")
                        .unwrap()
                        .options,
                );
            }),
            "no such network",
        ),
        (
            with(&|s| {
                s.network_options.insert(
                    "net".into(),
                    NetworkAttachment::parse("name=net,alias=bad name")
                        .unwrap()
                        .options,
                );
            }),
            "invalid alias",
        ),
        (
            with(&|s| {
                s.network_options.insert(
                    "net".into(),
                    NetworkAttachment::parse("name=net,driver-opt=foo=bar")
                        .unwrap()
                        .options,
                );
            }),
            "unknown driver option",
        ),
        (
            with(&|s| s.hostname = Some("{{.Nope}}".into())),
            "unknown placeholder",
        ),
        (
            with(&|s| {
                s.mode = ServiceMode::Global;
                s.placement.max_replicas_per_node = Some(2);
            }),
            "only be used with replicated mode",
        ),
        (
            with(&|s| s.dns.search = vec!["bad domain".into()]),
            "is not a valid domain",
        ),
        (
            with(&|s| s.dns.options = vec!["two words".into()]),
            "one word",
        ),
        (
            with(&|s| {
                s.dns.nameservers = ["1.1.1.1", "1.0.0.1", "8.8.8.8", "8.8.4.4"]
                    .iter()
                    .map(|i| i.parse().unwrap())
                    .collect()
            }),
            "at most 3",
        ),
    ];
    for (spec, why) in cases {
        let e = create(&mut s, "bbbbbbbb01", spec).unwrap_err().to_string();
        assert!(e.contains(why), "{e} (wanted {why})");
        assert_eq!(s, before);
    }
    let good = with(&|s| {
        s.placement.constraints = vec![Constraint::parse("node.role==manager").unwrap()];
        s.hostname = Some("{{.Service.Name}}-{{.Task.Slot}}".into());
        s.dns.search = vec!["example.com".into()];
    });
    create(&mut s, "bbbbbbbb01", good).unwrap();
}

/// The Raft log holds what older agents committed: an update of theirs still applies.
#[test]
fn an_update_in_the_first_releases_spelling_still_applies() {
    let old = r#"{"op":"update_service","name":"web","replicas":3,"labels_add":{"a":"b"},"labels_rm":[],"publish_add":[],"publish_rm":[8080]}"#;
    let command: Command = serde_json::from_str(old).unwrap();
    let Command::UpdateService { name, changes } = &command else {
        panic!("{command:?}");
    };
    assert_eq!(name, "web");
    assert_eq!(changes.replicas, Some(3));
    assert_eq!(changes.publish_rm, [PortRemoval::Published(8080)]);
    let mut s = cluster(1);
    create(&mut s, "bbbbbbbb01", web(1, &["8080:80"])).unwrap();
    run(&mut s, command).unwrap();
    assert!(s.services["web"].spec.publish.is_empty());
    let round = serde_json::to_string(&Command::UpdateService {
        name: "web".into(),
        changes: ServiceChanges::default(),
    })
    .unwrap();
    assert!(serde_json::from_str::<Command>(&round).is_ok(), "{round}");
}

#[test]
fn shoals_own_ports_cannot_be_published() {
    let mut s = cluster(1);
    for (port, why) in [
        ("2377:80", "the control port of node n1"),
        ("4789:80/udp", "VXLAN's port"),
    ] {
        let e = create(&mut s, "bbbbbbbb01", web(1, &[port]))
            .unwrap_err()
            .to_string();
        assert!(e.contains(why), "{port}: {e}");
    }
    create(&mut s, "bbbbbbbb01", web(1, &["2377:80/udp"])).unwrap();
}

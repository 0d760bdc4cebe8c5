//! Services, VIPs, ports and the scheduler.

use super::*;
use crate::ids::NodeId;
use crate::state::{
    schedule, Availability, EndpointMode, NetworkSpec, Node, NodeStatus, PortSpec, Role, Secrets,
    ServiceChanges, ServiceMode, ServiceSpec, Task, TaskState,
};
use shoal_ipam::PoolConfig;

fn node(id: u64) -> Node {
    Node {
        report: Default::default(),
        ..crate::state::fixtures::node(id, Role::Manager, &[])
    }
}

pub(super) fn run(s: &mut ClusterState, command: Command) -> Result<Applied, ApplyError> {
    apply(s, None, &Proposal { at_ms: 7, command })
}

pub(super) fn cluster(nodes: u64) -> ClusterState {
    let mut s = ClusterState::default();
    run(
        &mut s,
        Command::Bootstrap {
            cluster_id: "c".into(),
            ca_cert_pem: String::new(),
            secrets: Secrets::default(),
            addr_pools: PoolConfig::default(),
            node: node(1),
        },
    )
    .unwrap();
    for i in 2..=nodes {
        run(&mut s, Command::AddNode { node: node(i) }).unwrap();
    }
    let spec = NetworkSpec {
        name: "net".into(),
        ..Default::default()
    };
    run(
        &mut s,
        Command::CreateNetwork {
            id: "aaaaaaaa01".into(),
            spec,
        },
    )
    .unwrap();
    s
}

pub(super) fn web(replicas: u32, publish: &[&str]) -> ServiceSpec {
    ServiceSpec {
        name: "web".into(),
        networks: vec!["net".into()],
        mode: ServiceMode::Replicated { replicas },
        publish: publish
            .iter()
            .map(|p| PortSpec::parse(p).unwrap())
            .collect(),
        endpoint_mode: EndpointMode::Vip,
        labels: Default::default(),
        command: vec!["server".into()],
        ..Default::default()
    }
}

fn place(s: &mut ClusterState) {
    let p = schedule(s, 0);
    let create = p
        .create
        .iter()
        .enumerate()
        .map(|(i, (svc, slot, node))| Task {
            updated_at_ms: 0,
            ..Task::new(
                &format!("{:016x}", s.revision * 1000 + i as u64 + 1),
                svc,
                *slot,
                *node,
                0,
                s.revision,
            )
        })
        .collect();
    run(
        s,
        Command::PlaceTasks {
            create,
            remove: p.remove,
            shutdown: vec![],
        },
    )
    .unwrap();
}

fn per_node(s: &ClusterState) -> Vec<usize> {
    s.nodes
        .keys()
        .map(|n| s.tasks.values().filter(|t| t.node == *n).count())
        .collect()
}

#[test]
fn a_service_gets_a_vip_per_network_and_releases_it() {
    let mut s = cluster(1);
    run(
        &mut s,
        Command::CreateService {
            id: "bbbbbbbb01".into(),
            spec: web(1, &["8080:80"]),
        },
    )
    .unwrap();
    let vip = s.services["web"].vips["net"];
    assert_eq!(
        s.networks["net"].space.as_ref().unwrap().owner_of(vip),
        Some("vip:web")
    );
    run(&mut s, Command::RemoveService { name: "web".into() }).unwrap();
    assert_eq!(s.networks["net"].space.as_ref().unwrap().in_use(), 0);
    let dns = ServiceSpec {
        endpoint_mode: EndpointMode::Dnsrr,
        publish: vec![],
        ..web(1, &[])
    };
    run(
        &mut s,
        Command::CreateService {
            id: "bbbbbbbb02".into(),
            spec: dns,
        },
    )
    .unwrap();
    assert!(s.services["web"].vips.is_empty(), "dnsrr has no VIP");
}

#[test]
fn bad_services_are_refused_without_change() {
    let mut s = cluster(1);
    run(
        &mut s,
        Command::CreateService {
            id: "bbbbbbbb01".into(),
            spec: web(1, &["8080:80"]),
        },
    )
    .unwrap();
    let before = s.clone();
    let cases = [
        (
            ServiceSpec {
                name: "other".into(),
                ..web(1, &["8080:80"])
            },
            "already in use by service 'web'",
        ),
        (
            ServiceSpec {
                name: "other".into(),
                ..web(1, &["9000:80", "9000:81"])
            },
            "published twice",
        ),
        (
            ServiceSpec {
                name: "other".into(),
                networks: vec!["nope".into()],
                ..web(1, &[])
            },
            "no such network",
        ),
        (
            ServiceSpec {
                name: "web".into(),
                ..web(1, &[])
            },
            "already exists",
        ),
        (
            ServiceSpec {
                name: "bad.name".into(),
                ..web(1, &[])
            },
            "invalid service name",
        ),
        (
            ServiceSpec {
                name: "x".into(),
                networks: vec![],
                ..web(1, &["9100:80"])
            },
            "needs a network",
        ),
        (
            ServiceSpec {
                name: "x".into(),
                endpoint_mode: EndpointMode::Dnsrr,
                ..web(1, &["9200:80"])
            },
            "can't be used with dnsrr mode",
        ),
        (
            ServiceSpec {
                name: "x".into(),
                ..web(5000, &[])
            },
            "at most",
        ),
    ];
    for (spec, want) in cases {
        let e = run(
            &mut s,
            Command::CreateService {
                id: "bbbbbbbb09".into(),
                spec,
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains(want), "{e} (wanted {want})");
        assert_eq!(s, before);
    }
    let udp = ServiceSpec {
        name: "dns".into(),
        ..web(1, &["8080:80/udp"])
    };
    run(
        &mut s,
        Command::CreateService {
            id: "bbbbbbbb03".into(),
            spec: udp,
        },
    )
    .unwrap();
}

#[test]
fn replicas_spread_and_scale() {
    let mut s = cluster(3);
    run(
        &mut s,
        Command::CreateService {
            id: "bbbbbbbb01".into(),
            spec: web(5, &[]),
        },
    )
    .unwrap();
    place(&mut s);
    assert_eq!(s.tasks.len(), 5);
    assert_eq!(per_node(&s), vec![2, 2, 1]);
    assert!(schedule(&s, 0).is_empty(), "a placed service is stable");
    let update = |r| Command::UpdateService {
        name: "web".into(),
        changes: ServiceChanges {
            replicas: Some(r),
            ..Default::default()
        },
    };
    run(&mut s, update(2)).unwrap();
    place(&mut s);
    assert_eq!(s.tasks.len(), 2);
    let slots: Vec<u32> = s.tasks.values().map(|t| t.slot).collect();
    assert!(slots.contains(&0) && slots.contains(&1));
}

#[test]
fn tasks_leave_down_and_drained_nodes_and_global_follows_nodes() {
    let mut s = cluster(3);
    run(
        &mut s,
        Command::CreateService {
            id: "bbbbbbbb01".into(),
            spec: web(3, &[]),
        },
    )
    .unwrap();
    let global = ServiceSpec {
        name: "agent".into(),
        mode: ServiceMode::Global,
        ..web(0, &[])
    };
    run(
        &mut s,
        Command::CreateService {
            id: "bbbbbbbb02".into(),
            spec: global,
        },
    )
    .unwrap();
    place(&mut s);
    assert_eq!(per_node(&s), vec![2, 2, 2]);
    run(
        &mut s,
        Command::SetNodeStatus {
            id: NodeId(3),
            status: NodeStatus::Down,
        },
    )
    .unwrap();
    place(&mut s);
    assert_eq!(
        per_node(&s),
        vec![3, 2, 0],
        "web's task moved; the global task left"
    );
    let drain = Command::UpdateNode {
        id: NodeId(2),
        availability: Some(Availability::Drain),
        labels_add: Default::default(),
        labels_rm: vec![],
    };
    run(&mut s, drain).unwrap();
    place(&mut s);
    assert_eq!(
        per_node(&s),
        vec![4, 1, 0],
        "the drained node's web task waits for its replacement; its global task goes"
    );
    crate::state::each_mut(&mut s.tasks, |t| t.state = TaskState::Running);
    place(&mut s);
    assert_eq!(per_node(&s), vec![4, 0, 0]);
    run(
        &mut s,
        Command::SetNodeStatus {
            id: NodeId(3),
            status: NodeStatus::Ready,
        },
    )
    .unwrap();
    place(&mut s);
    assert_eq!(
        per_node(&s),
        vec![4, 0, 1],
        "only the global task comes back; replicas stay put"
    );
}

#[test]
fn task_state_is_reported_by_its_node_only() {
    let mut s = cluster(2);
    run(
        &mut s,
        Command::CreateService {
            id: "bbbbbbbb01".into(),
            spec: web(1, &[]),
        },
    )
    .unwrap();
    place(&mut s);
    let t = s.tasks.values().next().unwrap().clone();
    let other = NodeId(if t.node == NodeId(1) { 2 } else { 1 });
    let report = |node| Command::SetTaskState {
        id: t.id.clone(),
        node,
        state: TaskState::Running,
        message: String::new(),
        restarts: 0,
        health: None,
    };
    assert!(run(&mut s, report(other)).is_err());
    run(&mut s, report(t.node)).unwrap();
    assert_eq!(s.tasks[&t.id].state, TaskState::Running);
    assert_eq!(report(t.node).self_scope(), Some(t.node));
}

#[test]
fn a_service_on_a_dual_stack_network_gets_an_ipv6_vip_too_and_gives_it_back() {
    let mut s = cluster(1);
    let spec = NetworkSpec {
        name: "dual".into(),
        ipv6: true,
        ..Default::default()
    };
    run(
        &mut s,
        Command::CreateNetwork {
            id: "aaaaaaaa02".into(),
            spec,
        },
    )
    .unwrap();
    let both = ServiceSpec {
        networks: vec!["net".into(), "dual".into()],
        ..web(1, &[])
    };
    run(
        &mut s,
        Command::CreateService {
            id: "bbbbbbbb01".into(),
            spec: both,
        },
    )
    .unwrap();
    let svc = &s.services["web"];
    assert_eq!(svc.vips.len(), 2, "an IPv4 VIP on both networks");
    assert!(!svc.vips6.contains_key("net"), "net is IPv4 only");
    let vip6 = svc.vips6["dual"];
    let space6 = s.networks["dual"].space6.as_ref().unwrap();
    assert!(space6.subnet().contains(&vip6));
    assert_eq!(space6.owner_of(vip6), Some("vip:web"));
    // Leaving the network gives the IPv6 VIP back; joining again leases one.
    let leave = ServiceChanges {
        networks_rm: vec!["dual".into()],
        ..Default::default()
    };
    run(
        &mut s,
        Command::UpdateService {
            name: "web".into(),
            changes: leave,
        },
    )
    .unwrap();
    assert!(s.services["web"].vips6.is_empty());
    let space6 = s.networks["dual"].space6.as_ref().unwrap();
    assert_eq!(space6.owner_of(vip6), None);
    // DNS round robin has none; removing the service frees every lease.
    let dnsrr = ServiceSpec {
        name: "rr".into(),
        networks: vec!["dual".into()],
        endpoint_mode: EndpointMode::Dnsrr,
        ..web(1, &[])
    };
    run(
        &mut s,
        Command::CreateService {
            id: "bbbbbbbb02".into(),
            spec: dnsrr,
        },
    )
    .unwrap();
    assert!(s.services["rr"].vips6.is_empty(), "dnsrr has no VIP");
    let back = ServiceChanges {
        networks_add: vec![crate::state::NetworkAttachment::parse("dual").unwrap()],
        ..Default::default()
    };
    run(
        &mut s,
        Command::UpdateService {
            name: "web".into(),
            changes: back,
        },
    )
    .unwrap();
    let again = s.services["web"].vips6["dual"];
    run(&mut s, Command::RemoveService { name: "web".into() }).unwrap();
    let space6 = s.networks["dual"].space6.as_ref().unwrap();
    assert_eq!(space6.owner_of(again), None);
    assert_eq!(space6.leases().count(), 0);
}

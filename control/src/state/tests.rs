use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::*;

fn node(id: u64, name: &str, role: Role) -> Node {
    let ip = IpAddr::V4(Ipv4Addr::new(198, 18, 0, id as u8));
    Node {
        id: NodeId(id),
        name: name.into(),
        role,
        availability: Availability::Active,
        status: NodeStatus::Ready,
        addr: ip,
        control_addr: SocketAddr::new(ip, 2377),
        joined_at_ms: 0,
        status_since_ms: 0,
        availability_since_ms: 0,
        labels: Default::default(),
        report: Default::default(),
        wireguard: None,
    }
}

fn at(ms: u64, command: Command) -> Proposal {
    Proposal { at_ms: ms, command }
}

fn bootstrap() -> Command {
    Command::Bootstrap {
        cluster_id: "c1".into(),
        ca_cert_pem: "CA".into(),
        secrets: Secrets {
            ca_key_pem: "KEY".into(),
            worker_secret: "w".repeat(20),
            manager_secret: "m".repeat(20),
        },
        addr_pools: PoolConfig::default(),
        node: node(1, "n1", Role::Manager),
    }
}

fn cluster() -> (ClusterState, Secrets) {
    let mut state = ClusterState::default();
    let mut secrets = Secrets::default();
    apply(&mut state, Some(&mut secrets), &at(1, bootstrap())).unwrap();
    (state, secrets)
}

#[test]
fn commands_before_init_are_refused() {
    let mut state = ClusterState::default();
    let err = apply(&mut state, None, &at(1, Command::Noop)).unwrap_err();
    assert_eq!(err, ApplyError::NotInitialised);
    assert_eq!(state.revision, 0);
}

#[test]
fn bootstrap_sets_cluster_and_secrets_once() {
    let (mut state, mut secrets) = cluster();
    assert_eq!(state.cluster_id, "c1");
    assert_eq!(secrets.ca_key_pem, "KEY");
    assert_eq!(state.revision, 1);
    let err = apply(&mut state, Some(&mut secrets), &at(2, bootstrap())).unwrap_err();
    assert!(matches!(err, ApplyError::AlreadyInitialised(_)));
    assert_eq!(state.revision, 1);
}

#[test]
fn duplicate_node_name_is_refused_without_change() {
    let (mut state, _) = cluster();
    let before = state.clone();
    let err = apply(
        &mut state,
        None,
        &at(
            2,
            Command::AddNode {
                node: node(2, "n1", Role::Worker),
            },
        ),
    )
    .unwrap_err();
    assert!(matches!(err, ApplyError::NodeNameTaken { .. }));
    assert_eq!(state, before);
}

#[test]
fn last_manager_cannot_be_demoted_or_removed() {
    let (mut state, _) = cluster();
    let demote = at(
        2,
        Command::SetRole {
            id: NodeId(1),
            role: Role::Worker,
        },
    );
    assert!(matches!(
        apply(&mut state, None, &demote),
        Err(ApplyError::LastManager(_))
    ));
    let rm = at(2, Command::RemoveNode { id: NodeId(1) });
    assert!(matches!(
        apply(&mut state, None, &rm),
        Err(ApplyError::LastManager(_))
    ));
}

#[test]
fn managers_must_be_demoted_before_removal_and_removed_ids_stay_out() {
    let (mut state, _) = cluster();
    apply(
        &mut state,
        None,
        &at(
            2,
            Command::AddNode {
                node: node(2, "n2", Role::Manager),
            },
        ),
    )
    .unwrap();
    let rm = at(3, Command::RemoveNode { id: NodeId(2) });
    assert!(matches!(
        apply(&mut state, None, &rm),
        Err(ApplyError::IsManager(_))
    ));
    apply(
        &mut state,
        None,
        &at(
            3,
            Command::SetRole {
                id: NodeId(2),
                role: Role::Worker,
            },
        ),
    )
    .unwrap();
    apply(&mut state, None, &rm).unwrap();
    assert!(state.removed.contains(&NodeId(2)));
    let back = at(
        4,
        Command::AddNode {
            node: node(2, "n2", Role::Worker),
        },
    );
    assert!(matches!(
        apply(&mut state, None, &back),
        Err(ApplyError::Removed(_))
    ));
}

#[test]
fn status_change_records_leader_time() {
    let (mut state, _) = cluster();
    let down = at(
        50,
        Command::SetNodeStatus {
            id: NodeId(1),
            status: NodeStatus::Down,
        },
    );
    apply(&mut state, None, &down).unwrap();
    assert_eq!(state.nodes[&NodeId(1)].status, NodeStatus::Down);
    assert_eq!(state.nodes[&NodeId(1)].status_since_ms, 50);
}

#[test]
fn redacted_replay_gives_the_same_public_state() {
    let log = vec![
        at(1, bootstrap()),
        at(
            2,
            Command::AddNode {
                node: node(2, "n2", Role::Worker),
            },
        ),
        at(
            3,
            Command::RotateToken {
                role: Role::Worker,
                secret: "x".repeat(24),
            },
        ),
        at(
            4,
            Command::SetLeader {
                id: NodeId(1),
                term: 3,
            },
        ),
        at(5, Command::RemoveNode { id: NodeId(9) }),
    ];
    let mut manager = ClusterState::default();
    let mut secrets = Secrets::default();
    let mut follower = ClusterState::default();
    for p in &log {
        let a = apply(&mut manager, Some(&mut secrets), p);
        let redacted = Proposal {
            at_ms: p.at_ms,
            command: p.command.redacted(),
        };
        let b = apply(&mut follower, None, &redacted);
        assert_eq!(a, b);
    }
    assert_eq!(manager, follower);
    assert_eq!(secrets.worker_secret, "x".repeat(24));
    assert!(serde_json::to_string(&log[0].command.redacted())
        .unwrap()
        .contains("\"ca_key_pem\":\"\""));
}

#[test]
fn find_node_by_name_id_and_prefix() {
    let (mut state, _) = cluster();
    let mut n = node(0xabcd_0000_0000_0002, "n2", Role::Worker);
    n.addr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2));
    apply(&mut state, None, &at(2, Command::AddNode { node: n })).unwrap();
    assert_eq!(state.find_node("n2").unwrap().name, "n2");
    assert_eq!(state.find_node("abcd000000000002").unwrap().name, "n2");
    assert_eq!(state.find_node("abcd").unwrap().name, "n2");
    assert!(matches!(
        state.find_node("nope"),
        Err(ApplyError::NoSuchNode(_))
    ));
}

#[test]
fn node_update_sets_availability_and_labels_atomically() {
    let (mut state, _) = cluster();
    let mut add = std::collections::BTreeMap::new();
    add.insert("zone".to_string(), "a".to_string());
    let update = |add, rm: Vec<String>| Command::UpdateNode {
        id: NodeId(1),
        availability: Some(Availability::Drain),
        labels_add: add,
        labels_rm: rm,
    };
    apply(&mut state, None, &at(2, update(add, vec![]))).unwrap();
    assert_eq!(state.nodes[&NodeId(1)].availability, Availability::Drain);
    assert_eq!(state.nodes[&NodeId(1)].labels["zone"], "a");
    let mut bad = std::collections::BTreeMap::new();
    bad.insert("a=b".to_string(), "x".to_string());
    let before = state.clone();
    assert!(apply(&mut state, None, &at(3, update(bad, vec![]))).is_err());
    assert_eq!(state, before);
    apply(
        &mut state,
        None,
        &at(4, update(Default::default(), vec!["zone".into()])),
    )
    .unwrap();
    assert!(state.nodes[&NodeId(1)].labels.is_empty());
}

//! Docker's network and IPAM drivers against the state: mapping Docker networks,
//! leases taken over by endpoints, and names.

use super::service_tests::{cluster, run};
use super::*;
use crate::ids::NodeId;
use crate::state::{docker_pool, docker_pool6, AttachSpec, NetworkSpec};

const DOCKER_A: &str = "a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2";
const DOCKER_B: &str = "b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3";

fn docker_net(
    s: &mut ClusterState,
    id: &str,
    docker_id: &str,
    subnet: &str,
) -> Result<Applied, ApplyError> {
    run(
        s,
        Command::CreateNetwork {
            id: id.into(),
            spec: NetworkSpec {
                name: "web".into(),
                subnet: Some(subnet.parse().unwrap()),
                docker: Some((docker_id.into(), NodeId(1))),
                ..Default::default()
            },
        },
    )
}

fn lease(s: &mut ClusterState, node: u64, ip: Option<&str>) -> Result<Applied, ApplyError> {
    run(
        s,
        Command::LeaseAddress {
            node: NodeId(node),
            network: "10.9.0.0/24".into(),
            ip: ip.map(|i| i.parse().unwrap()),
            ipv6: false,
        },
    )
}

fn address(a: Applied) -> std::net::Ipv4Addr {
    match a.output {
        Output::Address {
            ip: std::net::IpAddr::V4(ip),
        } => ip,
        other => panic!("{other:?}"),
    }
}

fn address6(a: Applied) -> std::net::Ipv6Addr {
    match a.output {
        Output::Address {
            ip: std::net::IpAddr::V6(ip),
        } => ip,
        other => panic!("{other:?}"),
    }
}

/// Docker's `--ipv6` (`docker network create -d shoal --ipam-driver shoal --ipv6`):
/// IPv6 leases come from the network's IPv6 subnet, are taken over by the endpoint in
/// Join as IPv4 ones are, are freed by ReleaseAddress while still leases, and go with
/// a removed node.
#[test]
fn ipv6_leases_work_as_ipv4_ones() {
    let mut s = cluster(2);
    let subnet6: ipnet::Ipv6Net = "fd00:9::/64".parse().unwrap();
    run(
        &mut s,
        Command::CreateNetwork {
            id: "cccccccc01".into(),
            spec: NetworkSpec {
                name: "web".into(),
                subnet: Some("10.9.0.0/24".parse().unwrap()),
                ipv6: true,
                subnet6: Some(subnet6),
                docker: Some((DOCKER_A.into(), NodeId(1))),
                ..Default::default()
            },
        },
    )
    .unwrap();
    let lease6 = |s: &mut ClusterState, node: u64, ip: Option<&str>| {
        run(
            s,
            Command::LeaseAddress {
                node: NodeId(node),
                network: subnet6.to_string(),
                ip: ip.map(|i| i.parse().unwrap()),
                ipv6: true,
            },
        )
    };
    let ip6 = address6(lease6(&mut s, 1, None).unwrap());
    assert!(subnet6.contains(&ip6));
    let rev = s.revision;
    assert_eq!(
        address6(lease6(&mut s, 2, Some(&ip6.to_string())).unwrap()),
        ip6,
        "asking again is a replay"
    );
    assert_eq!(s.revision, rev);
    let space6 = |s: &ClusterState| s.networks["web"].space6.clone().unwrap();
    assert!(space6(&s).owner_of(ip6).unwrap().starts_with("lease:"));
    // IPv4 from the IPv6 pool, and IPv6 on an IPv4-only network, are refused.
    let e = lease6(&mut s, 1, Some("10.9.0.7")).unwrap_err().to_string();
    assert!(e.contains("IPv4") && e.contains("IPv6 pool"), "{e}");
    let ip = address(lease(&mut s, 1, None).unwrap());
    let e = join(&mut s, ip, Some(ip6));
    assert_eq!(e.ip6, Some(ip6));
    assert_eq!(space6(&s).owner_of(ip6), Some(e.id.as_str()));
    let release6 = |s: &mut ClusterState, ip: std::net::Ipv6Addr| {
        run(
            s,
            Command::ReleaseAddress {
                node: NodeId(1),
                network: "web".into(),
                ip: ip.into(),
            },
        )
        .unwrap()
    };
    // Taken over: a late ReleaseAddress leaves it alone; a lease it frees.
    release6(&mut s, ip6);
    assert_eq!(space6(&s).owner_of(ip6), Some(e.id.as_str()));
    let other = address6(lease6(&mut s, 1, None).unwrap());
    release6(&mut s, other);
    assert_eq!(space6(&s).owner_of(other), None);
    // A removed node's IPv6 leases are freed too.
    let held = address6(lease6(&mut s, 2, None).unwrap());
    remove_node(&mut s, 2);
    assert_eq!(space6(&s).owner_of(held), None);
}

#[test]
fn ipv6_docker_pools_are_a_networks_subnet_or_free_space() {
    let mut s = cluster(1);
    let first = docker_pool6(&s, None, &[]).unwrap();
    assert_eq!(first.prefix_len(), 64);
    // Offered and not made yet: taken for the next.
    let next = docker_pool6(&s, None, &[first]).unwrap();
    assert_ne!(next, first);
    assert_eq!(docker_pool6(&s, Some(first), &[first]).unwrap(), first);
    let inside = ipnet::Ipv6Net::new(first.network(), 80).unwrap();
    let e = docker_pool6(&s, Some(inside), &[first]).unwrap_err();
    assert!(e.to_string().contains("being made"), "{e}");
    run(
        &mut s,
        Command::CreateNetwork {
            id: "cccccccc01".into(),
            spec: NetworkSpec {
                name: "web".into(),
                ipv6: true,
                subnet6: Some(first),
                ..Default::default()
            },
        },
    )
    .unwrap();
    // The same network on another host gets its subnet; a new one the next.
    assert_eq!(docker_pool6(&s, Some(first), &[]).unwrap(), first);
    assert_ne!(docker_pool6(&s, None, &[]).unwrap(), first);
    let e = lease_on_v4_only(&mut s);
    assert!(e.contains("without --ipv6"), "{e}");
}

/// An IPv6 lease on the fixture's IPv4-only network `net`.
fn lease_on_v4_only(s: &mut ClusterState) -> String {
    run(
        s,
        Command::LeaseAddress {
            node: NodeId(1),
            network: "net".into(),
            ip: None,
            ipv6: true,
        },
    )
    .unwrap_err()
    .to_string()
}

/// "The same name on another host maps to the same network" (issue 12).
#[test]
fn a_docker_network_of_the_same_name_and_subnet_maps_to_the_same_network() {
    let mut s = cluster(2);
    docker_net(&mut s, "cccccccc01", DOCKER_A, "10.9.0.0/24").unwrap();
    docker_net(&mut s, "cccccccc02", DOCKER_B, "10.9.0.0/24").unwrap();
    let web = &s.networks["web"];
    assert!(web.from_docker);
    assert_eq!(web.docker.len(), 2);
    let e = docker_net(&mut s, "cccccccc03", "c3", "10.9.1.0/24")
        .unwrap_err()
        .to_string();
    assert!(e.contains("--subnet 10.9.0.0/24 --gateway 10.9.0.1"), "{e}");
    run(
        &mut s,
        Command::UnmapDockerNetwork {
            node: NodeId(1),
            docker_id: DOCKER_A.into(),
        },
    )
    .unwrap();
    assert!(s.networks.contains_key("web"), "still Docker network B's");
    let unmap_b = |node| Command::UnmapDockerNetwork {
        node: NodeId(node),
        docker_id: DOCKER_B.into(),
    };
    run(&mut s, unmap_b(2)).unwrap();
    assert!(
        s.networks.contains_key("web"),
        "node 2 never had Docker network B"
    );
    run(&mut s, unmap_b(1)).unwrap();
    assert!(
        !s.networks.contains_key("web"),
        "Docker made it, Docker removed it"
    );
}

#[test]
fn a_network_shoal_made_outlives_its_docker_networks() {
    let mut s = cluster(1);
    run(
        &mut s,
        Command::MapDockerNetwork {
            node: NodeId(1),
            network: "net".into(),
            docker_id: DOCKER_A.into(),
        },
    )
    .unwrap();
    assert!(s.networks["net"].docker[DOCKER_A].contains(&NodeId(1)));
    run(
        &mut s,
        Command::UnmapDockerNetwork {
            node: NodeId(1),
            docker_id: DOCKER_A.into(),
        },
    )
    .unwrap();
    assert!(s.networks.contains_key("net"));
}

/// Docker's IPAM leases an address before the endpoint exists; the endpoint takes the
/// lease over in Join, and ReleaseAddress after that frees nothing twice.
#[test]
fn leases_are_taken_over_by_endpoints_and_replays_are_harmless() {
    let mut s = cluster(2);
    docker_net(&mut s, "cccccccc01", DOCKER_A, "10.9.0.0/24").unwrap();
    let ip = address(lease(&mut s, 1, None).unwrap());
    assert_eq!(ip.to_string(), "10.9.0.2");
    // A Swarm worker asks again for what the manager leased.
    let rev = s.revision;
    assert_eq!(address(lease(&mut s, 2, Some("10.9.0.2")).unwrap()), ip);
    assert_eq!(s.revision, rev);
    let fixed = address(lease(&mut s, 1, Some("10.9.0.9")).unwrap());
    assert_eq!(fixed.to_string(), "10.9.0.9");
    let e = join(&mut s, ip, None);
    assert!(e.handoff);
    assert_eq!(
        s.networks["web"].space.as_ref().unwrap().owner_of(ip),
        Some(e.id.as_str())
    );
    // Taken by an endpoint: not leasable, and a late ReleaseAddress leaves it alone.
    let taken = lease(&mut s, 2, Some("10.9.0.2")).unwrap_err().to_string();
    assert!(taken.contains("10.9.0.2"), "{taken}");
    let release = |s: &mut ClusterState, ip: &str| {
        run(
            s,
            Command::ReleaseAddress {
                node: NodeId(1),
                network: "web".into(),
                ip: ip.parse().unwrap(),
            },
        )
        .unwrap()
    };
    release(&mut s, "10.9.0.2");
    assert_eq!(
        s.networks["web"].space.as_ref().unwrap().owner_of(ip),
        Some(e.id.as_str())
    );
    release(&mut s, "10.9.0.9");
    assert_eq!(
        s.networks["web"].space.as_ref().unwrap().owner_of(fixed),
        None
    );
    // A removed node's leases are freed.
    let held = address(lease(&mut s, 2, Some("10.9.0.20")).unwrap());
    remove_node(&mut s, 2);
    assert_eq!(
        s.networks["web"].space.as_ref().unwrap().owner_of(held),
        None
    );
}

/// Docker's Join on node 1 of "web" for the addresses its IPAM leased.
fn join(
    s: &mut ClusterState,
    ip: std::net::Ipv4Addr,
    ip6: Option<std::net::Ipv6Addr>,
) -> crate::state::Endpoint {
    let attached = run(
        s,
        Command::Attach {
            spec: AttachSpec {
                network: "web".into(),
                node: NodeId(1),
                sandbox: "/var/run/docker/netns/abc".into(),
                ip: Some(ip),
                ip6,
                handoff: true,
                runtime_id: Some("ep1".into()),
                ..Default::default()
            },
        },
    )
    .unwrap();
    match attached.output {
        Output::Endpoint(e) => *e,
        other => panic!("{other:?}"),
    }
}

/// Demotes node `id` (a manager in the fixture) and removes it.
fn remove_node(s: &mut ClusterState, id: u64) {
    let demote = Command::SetRole {
        id: NodeId(id),
        role: crate::state::Role::Worker,
    };
    run(s, demote).unwrap();
    run(s, Command::RemoveNode { id: NodeId(id) }).unwrap();
}

#[test]
fn docker_pools_are_a_networks_subnet_or_free_space() {
    let mut s = cluster(1);
    let net = s.networks["net"].space.as_ref().unwrap().subnet();
    assert_eq!(docker_pool(&s, Some(net), &[]).unwrap(), net);
    let overlap = docker_pool(&s, Some("10.0.0.0/16".parse().unwrap()), &[]).unwrap_err();
    assert!(overlap.to_string().contains("overlaps"), "{overlap}");
    let next = docker_pool(&s, None, &[]).unwrap();
    assert_ne!(next, net);
    // Offered to one `docker network create` and not made yet: taken for the next.
    let after = docker_pool(&s, None, &[next]).unwrap();
    assert_ne!(after, next);
    let half = ipnet::Ipv4Net::new(next.network(), 25).unwrap();
    let e = docker_pool(&s, Some(half), &[next]).unwrap_err();
    assert!(e.to_string().contains("being made"), "{e}");
    assert_eq!(docker_pool(&s, Some(next), &[next]).unwrap(), next);
    docker_net(&mut s, "cccccccc01", DOCKER_A, &next.to_string()).unwrap();
    assert_ne!(docker_pool(&s, None, &[]).unwrap(), next);
}

#[test]
fn endpoint_names_are_set_by_their_node_and_checked() {
    let mut s = cluster(2);
    let a = run(
        &mut s,
        Command::Attach {
            spec: AttachSpec {
                network: "net".into(),
                node: NodeId(1),
                sandbox: "/run/netns/x".into(),
                service: Some("web".into()),
                ..Default::default()
            },
        },
    );
    // `net` is not attachable and `web` does not exist: use an attachable network.
    assert!(a.is_err());
    run(
        &mut s,
        Command::CreateNetwork {
            id: "cccccccc09".into(),
            spec: NetworkSpec {
                name: "open".into(),
                attachable: true,
                ..Default::default()
            },
        },
    )
    .unwrap();
    let Output::Endpoint(e) = run(
        &mut s,
        Command::Attach {
            spec: AttachSpec {
                network: "open".into(),
                node: NodeId(1),
                sandbox: "/run/netns/x".into(),
                ..Default::default()
            },
        },
    )
    .unwrap()
    .output
    else {
        panic!()
    };
    let names = |node: u64, name: &str| Command::SetEndpointNames {
        node: NodeId(node),
        endpoint: e.id.clone(),
        name: Some(name.into()),
        aliases: vec!["db".into()],
    };
    run(&mut s, names(1, "pg")).unwrap();
    assert_eq!(s.endpoints[&e.id].name.as_deref(), Some("pg"));
    assert!(
        run(&mut s, names(2, "pg")).is_err(),
        "another node's endpoint"
    );
    assert!(run(&mut s, names(1, "bad name")).is_err());
    assert_eq!(names(1, "x").self_scope(), Some(NodeId(1)));
}

/// In a Swarm one Docker network ID is on every node that runs a task on it: a worker
/// dropping it (its last task left) leaves the network to the others.
#[test]
fn a_swarm_network_stays_while_any_node_has_it() {
    let mut s = cluster(2);
    docker_net(&mut s, "cccccccc01", DOCKER_A, "10.9.0.0/24").unwrap();
    let map = |node| Command::MapDockerNetwork {
        node: NodeId(node),
        network: "web".into(),
        docker_id: DOCKER_A.into(),
    };
    let unmap = |node| Command::UnmapDockerNetwork {
        node: NodeId(node),
        docker_id: DOCKER_A.into(),
    };
    run(&mut s, map(2)).unwrap();
    run(&mut s, unmap(2)).unwrap();
    assert!(s.networks.contains_key("web"));
    run(&mut s, unmap(1)).unwrap();
    assert!(!s.networks.contains_key("web"));
}

/// A worker's lease goes through the leader, so its answer crosses the network as JSON.
#[test]
fn a_lease_answer_survives_the_trip_from_the_leader() {
    let out = Output::Address {
        ip: "10.9.0.2".parse().unwrap(),
    };
    let json = serde_json::to_string(&out).unwrap();
    assert_eq!(serde_json::from_str::<Output>(&json).unwrap(), out);
}

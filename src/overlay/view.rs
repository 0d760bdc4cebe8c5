//! A node's view of the cluster: the overlay it should have, derived from the state.
//!
//! A node carries a network when it has an endpoint on it. Remote endpoints of such a
//! network become FDB and proxy-ARP entries; local ones become veths in their sandboxes.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::Ipv4Net;

use shoal_control::state::{
    ClusterState, Endpoint, Network, Node, NodeStatus, PublishMode, SourceMode,
};
use shoal_control::NodeId;
use shoal_dataplane::nat_lb::Published;
use shoal_dataplane::overlay::{EndpointPlan, NetworkPlan, NodeAddr, NodePlan, Remote, ResolvConf};
use shoal_dataplane::wg::plan::{EncryptedNetwork, PeerPlan, WgPlan};

/// The overlay node `me` should have.
pub fn node_plan(state: &ClusterState, me: NodeId, vxlan_port: u16) -> NodePlan {
    let local_ip = state.nodes.get(&me).map(|n| n.addr);
    let mine: Vec<&Endpoint> = state.endpoints.values().filter(|e| e.node == me).collect();
    let mut networks = Vec::new();
    for net in state.networks.values() {
        if !mine.iter().any(|e| e.network == net.name) {
            continue;
        }
        let mut remotes: Vec<Remote> = state
            .endpoints_on(&net.name)
            .filter(|e| e.node != me)
            .filter_map(|e| {
                let node_ip = state.nodes.get(&e.node)?.addr;
                Some(Remote {
                    ip: e.ip,
                    ip6: e.ip6,
                    mac: e.mac,
                    node_ip,
                })
            })
            .collect();
        remotes.sort();
        networks.push(NetworkPlan {
            name: net.name.clone(),
            vni: net.vni,
            gateway: net
                .space
                .as_ref()
                .and_then(|s| Ipv4Net::new(s.gateway(), s.subnet().prefix_len()).ok()),
            gateway_mac: net.gateway_mac(),
            gateway6: net
                .space6
                .as_ref()
                .and_then(|s| ipnet::Ipv6Net::new(s.gateway(), s.subnet().prefix_len()).ok()),
            mtu: net.mtu,
            internal: net.internal,
            encrypted: net.encrypted,
            remotes,
            node_addr: mine
                .iter()
                .find(|e| e.ingress && e.network == net.name)
                .filter(|e| e.ip.is_some() || e.ip6.is_some())
                .map(|e| NodeAddr {
                    ip: e.ip,
                    ip6: e.ip6,
                    mac: e.mac,
                }),
        });
    }
    // A sandbox's default routes go through its first non-internal network of each
    // family (as Docker picks a gateway per family): IPv4 through the first with IPv4,
    // IPv6 through the first with IPv6. The node's own addresses (ingress endpoints)
    // live on its bridges, not in a sandbox; state-only endpoints (benchmarks) have
    // none: the node only carries their network.
    let mut default_for: BTreeMap<(&str, bool), &str> = BTreeMap::new();
    let mut ordered: Vec<&Endpoint> = mine
        .iter()
        .copied()
        .filter(|e| !e.ingress && !e.is_state_only())
        .collect();
    ordered.sort_by_key(|e| (e.sandbox.clone(), ifname_order(&e.ifname), e.created_at_ms));
    for e in &ordered {
        let Some(net) = state.networks.get(&e.network).filter(|n| !n.internal) else {
            continue;
        };
        let families = [(false, e.ip.is_some()), (true, net.space6.is_some())];
        for (v6, has) in families {
            if has {
                default_for
                    .entry((e.sandbox.as_str(), v6))
                    .or_insert(e.id.as_str());
            }
        }
    }
    let endpoints = ordered
        .iter()
        .filter_map(|e| {
            let net = state.networks.get(&e.network)?;
            Some(EndpointPlan {
                id: e.id.clone(),
                vni: net.vni,
                sandbox: e.sandbox.clone().into(),
                ifname: e.ifname.clone(),
                ip: net
                    .space
                    .as_ref()
                    .zip(e.ip)
                    .and_then(|(s, ip)| Ipv4Net::new(ip, s.subnet().prefix_len()).ok()),
                mac: e.mac,
                gateway: net.space.as_ref().map(|s| s.gateway()),
                ip6: net
                    .space6
                    .as_ref()
                    .zip(e.ip6)
                    .and_then(|(s, ip)| ipnet::Ipv6Net::new(ip, s.subnet().prefix_len()).ok()),
                gateway6: net.space6.as_ref().map(|s| s.gateway()),
                mtu: net.mtu,
                default_route: default_for.get(&(e.sandbox.as_str(), false))
                    == Some(&e.id.as_str()),
                default_route6: default_for.get(&(e.sandbox.as_str(), true))
                    == Some(&e.id.as_str()),
                handoff: e.handoff,
            })
        })
        .collect();
    let published = published(state, me);
    NodePlan {
        local_ip,
        vxlan_port,
        networks,
        endpoints,
        published,
        dns_intercept: Vec::new(),
        lb_idle_timeout: None,
    }
}

/// The resolv.conf of every named sandbox of `plan`, by namespace name: the resolver on
/// the gateway of its IPv4 default-route network (else its IPv6 one's, else its
/// first), and the search domains and options of the service whose task it is.
pub fn resolv_confs(state: &ClusterState, plan: &NodePlan) -> BTreeMap<String, ResolvConf> {
    let mut out: BTreeMap<String, ResolvConf> = BTreeMap::new();
    let mut conf_rank: BTreeMap<String, u8> = BTreeMap::new();
    for e in &plan.endpoints {
        let Some(name) = e.netns_name() else { continue };
        let conf = out.entry(name.clone()).or_default();
        // The resolver listens on the IPv4 gateway, and on the IPv6 one (the only
        // one of an IPv6-only network).
        let resolver = e.gateway.map(IpAddr::V4).or(e.gateway6.map(IpAddr::V6));
        let rank = match (e.default_route, e.default_route6) {
            (true, _) => 0,
            (false, true) => 1,
            (false, false) => 2,
        };
        if resolver.is_some() && rank < conf_rank.get(&name).copied().unwrap_or(u8::MAX) {
            conf_rank.insert(name, rank);
            conf.nameserver = resolver;
        }
        let dns = state
            .endpoints
            .get(&e.id)
            .and_then(|ep| ep.task.as_ref())
            .and_then(|t| state.tasks.get(t))
            .and_then(|t| state.services.get(&t.service))
            .map(|s| &s.spec.dns);
        if let Some(dns) = dns {
            conf.search = dns.search.clone();
            conf.options = dns.options.clone();
        }
    }
    out
}

/// The addresses of `service`'s tasks that take traffic on `network` (and of sandboxes
/// attached to it from outside, which count as running), with their nodes: running,
/// not shut down (a task being removed drains: its established connections go on,
/// conntrack keeps them, but it gets no new one), healthy when the service has a
/// health check, and on a node that serves (not Down, Leaving or drained). The VIPs,
/// the mesh, DNS and the ingress all draw from here.
/// The IPv4 addresses only: none on an IPv6-only network ([`backends6`] has theirs).
pub fn backends(state: &ClusterState, service: &str, network: &str) -> Vec<(Ipv4Addr, NodeId)> {
    let mut out: Vec<_> = serving(state, service, network)
        .filter_map(|e| Some((e.ip?, e.node)))
        .collect();
    out.sort();
    out
}

/// The IPv6 addresses of the endpoints [`backends`] draws from, on a dual-stack or
/// IPv6-only `network` (none on an IPv4-only one), sorted.
pub fn backends6(state: &ClusterState, service: &str, network: &str) -> Vec<Ipv6Addr> {
    let mut out: Vec<Ipv6Addr> = serving(state, service, network)
        .filter_map(|e| e.ip6)
        .collect();
    out.sort();
    out
}

/// The endpoints of `service` on `network` that take traffic (see [`backends`]).
fn serving<'s>(
    state: &'s ClusterState,
    service: &'s str,
    network: &'s str,
) -> impl Iterator<Item = &'s Endpoint> {
    let checked = state
        .services
        .get(service)
        .is_some_and(|s| s.spec.healthcheck.is_some());
    state
        .endpoints_on(network)
        .filter(move |e| e.service.as_deref() == Some(service))
        .filter(|e| state.nodes.get(&e.node).is_some_and(Node::serves))
        .filter(move |e| match &e.task {
            None => true,
            Some(t) => state.tasks.get(t).is_some_and(|t| t.takes_traffic(checked)),
        })
}

/// Backends of this node's published ports in `before` that `now` no longer has and
/// that are gone: no endpoint has the address any more, or its node is Down. Their
/// conntrack entries can go (a client reusing the port of a connection that was in
/// flight to them would be sent there again). A task that drains keeps its endpoint
/// until it stopped, so its connections are never cut here.
pub fn vanished_backends(before: &NodePlan, now: &NodePlan, state: &ClusterState) -> Vec<IpAddr> {
    let ips = |plan: &NodePlan| -> std::collections::BTreeSet<IpAddr> {
        plan.published
            .iter()
            .flat_map(|p| {
                let v4 = p.backends.iter().flatten().map(|(ip, _)| IpAddr::V4(*ip));
                let v6 = p.backends6.iter().flatten().map(|(ip, _)| IpAddr::V6(*ip));
                v4.chain(v6)
            })
            .collect()
    };
    let current = ips(now);
    ips(before)
        .into_iter()
        .filter(|ip| !current.contains(ip))
        .filter(|ip| {
            !state.endpoints.values().any(|e| {
                (e.ip.map(IpAddr::V4) == Some(*ip) || e.ip6.map(IpAddr::V6) == Some(*ip))
                    && state
                        .nodes
                        .get(&e.node)
                        .is_some_and(|n| n.status != NodeStatus::Down)
            })
        })
        .collect()
}

/// Whether node `me` has its own address on `network` (its routing mesh and L7 ingress
/// endpoint, with an address in some family).
pub fn has_own_address(state: &ClusterState, me: NodeId, network: &str) -> bool {
    state
        .endpoints_on(network)
        .any(|e| e.node == me && e.ingress && (e.ip.is_some() || e.ip6.is_some()))
}

/// Ports published on node `me`: ingress-mode ports go to the running tasks on any node
/// (once the node has its own address on the service's network to answer from),
/// host-mode ports to its own running tasks, and ports forwarded to its endpoints
/// (Docker's `-p`) to them.
fn published(state: &ClusterState, me: NodeId) -> Vec<Published> {
    let mut out: Vec<Published> = state
        .endpoints
        .values()
        .filter(|e| e.node == me)
        .flat_map(|e| {
            // Forwarded ports answer in each family the endpoint has an address in.
            e.ports.iter().map(move |p| Published {
                service: format!("container {}", e.name.as_deref().unwrap_or(&e.id)),
                protocol: p.protocol.number(),
                port: p.host_port,
                backends: e.ip.map(|ip| vec![(ip, p.port)]),
                backends6: e.ip6.map(|ip6| vec![(ip6, p.port)]),
                mesh: false,
                source_nat: false,
            })
        })
        .collect();
    for s in state.services.values() {
        let Some(network) = s.spec.networks.first() else {
            continue;
        };
        let Some(net) = state.networks.get(network) else {
            continue;
        };
        let tasks = with_family(state, &s.spec.name, net, |n| n.space.is_some(), |e| e.ip);
        let tasks6 = with_family(state, &s.spec.name, net, |n| n.space6.is_some(), |e| e.ip6);
        let reachable = has_own_address(state, me, network);
        for p in &s.spec.publish {
            let mesh = p.mode == PublishMode::Ingress;
            let serves = |node: &NodeId| if mesh { reachable } else { *node == me };
            let backends = for_port(tasks.as_deref(), serves, p.target);
            let backends6 = for_port(tasks6.as_deref(), serves, p.target);
            out.push(Published {
                service: s.spec.name.clone(),
                protocol: p.protocol.number(),
                port: p.published,
                backends,
                backends6,
                mesh,
                source_nat: p.src == SourceMode::Nat,
            });
        }
    }
    out
}

/// On network `net`, if it `has` addresses of a family, the addresses of that family
/// (`addr`) of the endpoints [`backends`] draws from, with their nodes, sorted; `None`
/// on a network without that family.
fn with_family<A: Ord>(
    state: &ClusterState,
    service: &str,
    net: &Network,
    has: impl Fn(&Network) -> bool,
    addr: impl Fn(&Endpoint) -> Option<A>,
) -> Option<Vec<(A, NodeId)>> {
    if !has(net) {
        return None;
    }
    let mut out: Vec<(A, NodeId)> = serving(state, service, &net.name)
        .filter_map(|e| Some((addr(e)?, e.node)))
        .collect();
    out.sort();
    Some(out)
}

/// A published port's backends in one family: the `tasks` on the nodes it `serves`
/// from, with the target port; `None` where the network has no such family.
fn for_port<A: Copy>(
    tasks: Option<&[(A, NodeId)]>,
    serves: impl Fn(&NodeId) -> bool,
    target: u16,
) -> Option<Vec<(A, u16)>> {
    tasks.map(|tasks| {
        tasks
            .iter()
            .filter(|(_, node)| serves(node))
            .map(|(ip, _)| (*ip, target))
            .collect()
    })
}

/// The encrypted data path node `me` should run, with its private key `private_key`:
/// a peer for every other node with a WireGuard key, and the encrypted networks the
/// node carries with their remote endpoints.
pub fn wg_plan(state: &ClusterState, me: NodeId, private_key: &str, vxlan_port: u16) -> WgPlan {
    let my = state.nodes.get(&me).and_then(|n| n.wireguard.as_ref());
    let peers = state
        .nodes
        .values()
        .filter(|n| n.id != me)
        .filter_map(|n| {
            let wg = n.wireguard.as_ref()?;
            Some(PeerPlan {
                name: n.name.clone(),
                public_key: wg.public_key.clone(),
                endpoint: SocketAddr::new(n.addr, wg.port),
                mesh_ip: wg.mesh_ip,
            })
        })
        .collect();
    let plan = node_plan(state, me, vxlan_port);
    let networks = plan
        .networks
        .iter()
        .filter(|n| n.encrypted)
        .map(|n| {
            let remotes = state
                .endpoints_on(&n.name)
                .filter(|e| e.node != me)
                .filter_map(|e| {
                    let mesh = state.nodes.get(&e.node)?.wireguard.as_ref()?.mesh_ip;
                    Some((e.mac, e.ip, mesh))
                })
                .collect();
            let neighbours6 = n
                .remotes
                .iter()
                .filter_map(|r| Some((r.ip6?, r.mac)))
                .collect();
            EncryptedNetwork {
                vni: n.vni,
                tap: n.tap(),
                mtu: n.mtu,
                remotes,
                neighbours6,
            }
        })
        .collect();
    WgPlan {
        private_key: private_key.to_string(),
        port: my.map(|w| w.port).unwrap_or(0),
        mesh_ip: my.map(|w| w.mesh_ip),
        vxlan_port,
        peers,
        networks,
    }
}

fn ifname_order(name: &str) -> u32 {
    name.trim_start_matches("eth").parse().unwrap_or(u32::MAX)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use shoal_control::state::{apply, AttachSpec, Command, NetworkSpec, Node, Proposal, Secrets};
    use shoal_control::state::{Availability, Role};

    /// A Ready manager `n<id>` at 198.18.0.<id>.
    pub(crate) fn node(id: u64) -> Node {
        let ip: std::net::IpAddr = [198, 18, 0, id as u8].into();
        Node {
            id: NodeId(id),
            name: format!("n{id}"),
            role: Role::Manager,
            availability: Availability::Active,
            status: NodeStatus::Ready,
            addr: ip,
            control_addr: (ip, 2377).into(),
            joined_at_ms: 0,
            status_since_ms: 0,
            availability_since_ms: 0,
            labels: Default::default(),
            report: Default::default(),
            wireguard: None,
        }
    }

    /// A cluster bootstrapped by node 1 ([`node`]).
    pub(crate) fn bootstrapped() -> ClusterState {
        let mut s = ClusterState::default();
        run(
            &mut s,
            Command::Bootstrap {
                cluster_id: "c".into(),
                ca_cert_pem: String::new(),
                secrets: Secrets::default(),
                addr_pools: Default::default(),
                node: node(1),
            },
        );
        s
    }

    /// Applies `command` to `s`.
    pub(crate) fn run(s: &mut ClusterState, command: Command) {
        apply(s, None, &Proposal { at_ms: 1, command }).unwrap();
    }

    /// Nodes 1 and 2; networks a, b (internal) and c; endpoints: a on 1 and 2, b on 1,
    /// c on 2.
    pub(crate) fn state() -> ClusterState {
        let mut s = bootstrapped();
        run(&mut s, Command::AddNode { node: node(2) });
        for (id, name, internal) in [
            ("aaaaaaaa01", "a", false),
            ("aaaaaaaa02", "b", true),
            ("aaaaaaaa03", "c", false),
        ] {
            run(
                &mut s,
                Command::CreateNetwork {
                    id: id.into(),
                    spec: NetworkSpec {
                        name: name.into(),
                        attachable: true,
                        internal,
                        ..Default::default()
                    },
                },
            );
        }
        let attach = |net: &str, node: u64, sandbox: &str| Command::Attach {
            spec: AttachSpec {
                network: net.into(),
                node: NodeId(node),
                sandbox: sandbox.into(),
                ..Default::default()
            },
        };
        run(&mut s, attach("b", 1, "/run/netns/x"));
        run(&mut s, attach("a", 1, "/run/netns/x"));
        run(&mut s, attach("a", 2, "/run/netns/y"));
        run(&mut s, attach("c", 2, "/run/netns/z"));
        s
    }

    #[test]
    fn only_backends_that_are_gone_or_on_a_down_node_lose_their_connections() {
        let mut s = state();
        let published = |ips: &[[u8; 4]]| NodePlan {
            published: vec![Published {
                service: "web".into(),
                protocol: 6,
                port: 8080,
                backends: Some(ips.iter().map(|ip| (Ipv4Addr::from(*ip), 80)).collect()),
                backends6: None,
                mesh: true,
                source_nat: false,
            }],
            ..Default::default()
        };
        let on_node2 = s
            .endpoints
            .values()
            .find(|e| e.node == NodeId(2))
            .and_then(|e| e.ip)
            .unwrap()
            .octets();
        let before = published(&[[10, 9, 9, 9], on_node2, [10, 9, 9, 8]]);
        let now = published(&[[10, 9, 9, 8]]);
        // 10.9.9.9 belongs to no endpoint; node 2's endpoint still lives (draining).
        assert_eq!(
            vanished_backends(&before, &now, &s),
            [IpAddr::from([10, 9, 9, 9])]
        );
        s.nodes.get_mut(&NodeId(2)).unwrap().status = NodeStatus::Down;
        let mut gone = vanished_backends(&before, &now, &s);
        gone.sort();
        let mut want = vec![IpAddr::from([10, 9, 9, 9]), IpAddr::from(on_node2)];
        want.sort();
        assert_eq!(gone, want);
        assert!(
            vanished_backends(&now, &before, &s).is_empty(),
            "added ones stay"
        );
        // IPv6 backends of a dual-stack network are forgotten alike.
        let gone6: Ipv6Addr = "fd00:9::9".parse().unwrap();
        let mut before6 = now.clone();
        before6.published[0].backends6 = Some(vec![(gone6, 80)]);
        assert_eq!(vanished_backends(&before6, &now, &s), [IpAddr::V6(gone6)]);
    }

    #[test]
    fn a_node_carries_only_networks_it_has_endpoints_on() {
        let plan = node_plan(&state(), NodeId(1), 4789);
        let names: Vec<&str> = plan.networks.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, vec!["a", "b"]);
        assert_eq!(plan.local_ip, Some("198.18.0.1".parse().unwrap()));
        let a = &plan.networks[0];
        assert_eq!(a.remotes.len(), 1);
        assert_eq!(a.remotes[0].node_ip.to_string(), "198.18.0.2");
        assert_eq!(
            a.gateway_mac,
            shoal_ipam::mac_for(a.gateway.unwrap().addr())
        );
        assert!(plan.networks[1].internal);
    }

    #[test]
    fn the_default_route_goes_through_the_first_non_internal_network() {
        let plan = node_plan(&state(), NodeId(1), 4789);
        let x: Vec<(&str, bool)> = plan
            .endpoints
            .iter()
            .map(|e| (e.ifname.as_str(), e.default_route))
            .collect();
        assert_eq!(
            x,
            vec![("eth0", false), ("eth1", true)],
            "eth0 is on the internal network"
        );
    }

    #[test]
    fn a_node_without_endpoints_carries_nothing() {
        let mut s = state();
        run(&mut s, Command::AddNode { node: node(3) });
        assert_eq!(node_plan(&s, NodeId(3), 4789).networks, vec![]);
    }
}

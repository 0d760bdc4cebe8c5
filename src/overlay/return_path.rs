//! Which ingress nodes each local sandbox sends replies back through, and keeping its
//! policy routes equal to that (see `shoal_dataplane::return_path` for the data path).
//!
//! ```text
//!  ClusterState ─ peers() ─▶ {sandbox: [IngressPeer]} ─┬─▶ nft chains in the sandbox's shoal-lb table (mesh::program)
//!                                                      └─▶ program(): observe ─ diff ─ apply (ip rules, tables)
//! ```
//! A sandbox gets peers only for a network that a service of its publishes a
//! `src=preserve` ingress port from (its first network), and only for ingress nodes
//! other than this one (replies to a connection that came through this node go out of
//! its own gateway, which is this node anyway) that are not Down (a Leaving or drained one still forwards its connections): when a node goes Down
//! or is removed, its marks, rules and tables leave every sandbox on the next pass.

use std::collections::BTreeMap;

use shoal_control::state::{ClusterState, NodeStatus, PublishMode, SourceMode};
use shoal_control::NodeId;
use shoal_dataplane::netlink::Netlink;
use shoal_dataplane::netns;
use shoal_dataplane::return_path::{self, IngressPeer, IpFamily};

/// The ingress peers of every sandbox on node `me` that receives mesh connections
/// keeping the client's address.
pub fn peers(state: &ClusterState, me: NodeId) -> BTreeMap<String, Vec<IngressPeer>> {
    let mut out: BTreeMap<String, Vec<IngressPeer>> = BTreeMap::new();
    for e in state
        .endpoints
        .values()
        .filter(|e| e.node == me && !e.ingress)
    {
        let Some(service) = e.service.as_ref().and_then(|s| state.services.get(s)) else {
            continue;
        };
        let preserves = service
            .spec
            .publish
            .iter()
            .any(|p| p.mode == PublishMode::Ingress && p.src == SourceMode::Preserve);
        if !preserves || service.spec.networks.first() != Some(&e.network) {
            continue;
        }
        let peers = out.entry(e.sandbox.clone()).or_default();
        for node_addr in state
            .endpoints_on(&e.network)
            .filter(|a| a.ingress && a.node != me)
        {
            // IPv4 and IPv6 on a dual-stack network, IPv6 alone on an IPv6-only one.
            let Some(node) = state.nodes.get(&node_addr.node) else {
                continue;
            };
            if node_addr.ip.is_none() && node_addr.ip6.is_none() {
                continue;
            }
            // A Leaving node still forwards the connections it has: they keep their way
            // back until it is Down.
            if node.status == NodeStatus::Down {
                continue;
            }
            peers.push(IngressPeer {
                node: node.name.clone(),
                ip: node_addr.ip,
                ip6: node_addr.ip6,
                mac: node_addr.mac,
                ifname: e.ifname.clone(),
            });
        }
        peers.sort();
        peers.dedup();
    }
    out
}

/// Makes the policy routes of every sandbox in `sandboxes` (this node's) what `peers`
/// says: removes the return routes of sandboxes without peers, and of nodes gone. False
/// when any could not be programmed.
pub async fn program(sandboxes: &[String], peers: &BTreeMap<String, Vec<IngressPeer>>) -> bool {
    let mut clean = true;
    for sandbox in sandboxes {
        let want = return_path::routes(peers.get(sandbox).map_or(&[][..], |p| p.as_slice()));
        if let Err(e) = program_one(sandbox, &want).await {
            clean = false;
            tracing::warn!(sandbox = %sandbox, error = %e, "cannot program the return path");
        }
    }
    clean
}

async fn program_one(sandbox: &str, want: &[return_path::ReturnRoute]) -> anyhow::Result<()> {
    let Ok(ns) = netns::open(sandbox) else {
        return Ok(());
    };
    let nl = Netlink::in_namespace(&ns)?;
    for family in IpFamily::ALL {
        let want: Vec<_> = want
            .iter()
            .filter(|r| r.family() == family)
            .cloned()
            .collect();
        let have = return_path::observe(&nl, family).await?;
        let changes = return_path::diff(&want, &have);
        if changes.is_empty() {
            continue;
        }
        tracing::debug!(sandbox, ?family, ?changes, "return path");
        if let Some(e) = return_path::apply(&nl, family, &changes)
            .await
            .into_iter()
            .next()
        {
            return Err(e.into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::overlay::view::tests::{bootstrapped, node, run};
    use shoal_control::state::{AttachSpec, Command, NetworkSpec, PortSpec, ServiceSpec};

    /// Three nodes with an address each on network `web`; service `www` publishes
    /// `publish` and has a task sandbox on n2; an unrelated sandbox sits on n2 too.
    fn state(publish: &str) -> ClusterState {
        state_on(publish, false)
    }

    /// [`state`], `web` dual-stack with `ipv6`.
    fn state_on(publish: &str, ipv6: bool) -> ClusterState {
        state_with(
            publish,
            NetworkSpec {
                ipv6,
                ..Default::default()
            },
        )
    }

    /// [`state`], `web` made with `spec` (its name and attachability set here).
    fn state_with(publish: &str, spec: NetworkSpec) -> ClusterState {
        let mut s = bootstrapped();
        for id in [2, 3] {
            run(&mut s, Command::AddNode { node: node(id) });
        }
        run(
            &mut s,
            Command::CreateNetwork {
                id: "aaaaaaaa01".into(),
                spec: NetworkSpec {
                    name: "web".into(),
                    attachable: true,
                    ..spec
                },
            },
        );
        run(
            &mut s,
            Command::CreateService {
                id: "bbbbbbbb01".into(),
                spec: ServiceSpec {
                    name: "www".into(),
                    networks: vec!["web".into()],
                    publish: vec![PortSpec::parse(publish).unwrap()],
                    ..Default::default()
                },
            },
        );
        let attach =
            |node: u64, sandbox: &str, service: Option<&str>, ingress: bool| Command::Attach {
                spec: AttachSpec {
                    network: "web".into(),
                    node: NodeId(node),
                    sandbox: sandbox.into(),
                    service: service.map(String::from),
                    ingress,
                    ..Default::default()
                },
            };
        for id in 1..=3 {
            run(
                &mut s,
                attach(id, crate::overlay::mesh::NODE_SANDBOX, None, true),
            );
        }
        run(&mut s, attach(2, "/run/netns/task", Some("www"), false));
        run(&mut s, attach(2, "/run/netns/other", None, false));
        s
    }

    #[test]
    fn a_task_sandbox_returns_through_every_other_ready_ingress_node() {
        let s = state("8080:80");
        let peers = peers(&s, NodeId(2));
        assert_eq!(peers.len(), 1, "only the task's sandbox: {peers:?}");
        let task = &peers["/run/netns/task"];
        let names: Vec<&str> = task.iter().map(|p| p.node.as_str()).collect();
        assert_eq!(names, ["n1", "n3"], "not this node's own address");
        let n1 = s
            .endpoints
            .values()
            .find(|e| e.ingress && e.node == NodeId(1))
            .unwrap();
        assert_eq!((task[0].ip, task[0].mac), (n1.ip, n1.mac));
        assert_eq!(task[0].ifname, "eth0");
    }

    #[test]
    fn on_a_dual_stack_network_ipv6_replies_return_through_the_same_nodes() {
        let s = state_on("8080:80", true);
        let peers = peers(&s, NodeId(2));
        let task = &peers["/run/netns/task"];
        assert!(task.iter().all(|p| p.ip6.is_some()), "{task:?}");
        let routes = return_path::routes(task);
        let v6: Vec<_> = routes
            .iter()
            .filter(|r| r.family() == IpFamily::V6)
            .collect();
        assert_eq!((routes.len(), v6.len()), (4, 2));
        assert_eq!(v6[0].via, std::net::IpAddr::V6(task[0].ip6.unwrap()));
        assert_eq!(v6[0].mark, return_path::mark(task[0].ip.unwrap().into()));
        let plan = crate::overlay::mesh::lb_plan(&s, NodeId(2), None);
        let (_, [ip, ip6]) = plan
            .tables
            .iter()
            .find(|(sandbox, _)| sandbox == "/run/netns/task")
            .unwrap();
        for t in [ip, ip6] {
            assert!(t.chains.iter().any(|c| c.name == "return-mark"), "{t:?}");
        }
        // An IPv4-only network: no IPv6 return path.
        let v4 = crate::overlay::mesh::lb_plan(&state("8080:80"), NodeId(2), None);
        let (_, [_, ip6]) = v4
            .tables
            .iter()
            .find(|(sandbox, _)| sandbox == "/run/netns/task")
            .unwrap();
        assert!(ip6.chains.iter().all(|c| c.rules.is_empty()));
    }

    #[test]
    fn on_an_ipv6_only_network_ports_answer_and_replies_return_over_ipv6_alone() {
        let only6 = NetworkSpec {
            ipv6: true,
            ipv4: Some(false),
            ..Default::default()
        };
        let s = state_with("8080:80", only6);
        // Every node has an address of its own on it, IPv6 alone.
        let plan = crate::overlay::view::node_plan(&s, NodeId(1), 4789);
        let own = plan.networks[0].node_addr.expect("n1's own address");
        assert!(own.ip.is_none() && own.ip6.is_some(), "{own:?}");
        // The port answers over IPv6 only, from the task on n2.
        let port = &plan.published[0];
        let task6 = s
            .endpoints
            .values()
            .find(|e| e.service.as_deref() == Some("www"))
            .and_then(|e| e.ip6)
            .unwrap();
        assert_eq!(
            (&port.backends, &port.backends6),
            (&None, &Some(vec![(task6, 80)]))
        );
        // Replies go back through n1 and n3 over IPv6, marked by their IPv6 addresses.
        let peers = peers(&s, NodeId(2));
        let task = &peers["/run/netns/task"];
        let names: Vec<&str> = task.iter().map(|p| p.node.as_str()).collect();
        assert_eq!(names, ["n1", "n3"]);
        let routes = return_path::routes(task);
        assert_eq!(routes.len(), 2);
        assert!(routes.iter().all(|r| r.family() == IpFamily::V6));
        assert_eq!(
            routes[0].mark,
            return_path::mark(task[0].ip6.unwrap().into())
        );
        let lb = crate::overlay::mesh::lb_plan(&s, NodeId(2), None);
        let (_, [ip, ip6]) = lb
            .tables
            .iter()
            .find(|(sandbox, _)| sandbox == "/run/netns/task")
            .unwrap();
        assert!(ip.chains.iter().all(|c| c.rules.is_empty()), "{ip:?}");
        assert!(ip6.chains.iter().any(|c| c.name == "return-mark"));
    }

    #[test]
    fn a_node_that_goes_down_loses_its_return_routes() {
        let mut s = state("8080:80");
        run(
            &mut s,
            Command::SetNodeStatus {
                id: NodeId(1),
                status: NodeStatus::Down,
            },
        );
        let peers = peers(&s, NodeId(2));
        let names: Vec<&str> = peers["/run/netns/task"]
            .iter()
            .map(|p| p.node.as_str())
            .collect();
        assert_eq!(names, ["n3"]);
    }

    #[test]
    fn a_leaving_or_drained_node_keeps_its_return_routes_for_the_connections_it_has() {
        let mut s = state("8080:80");
        s.nodes.get_mut(&NodeId(1)).unwrap().status = NodeStatus::Leaving;
        s.nodes.get_mut(&NodeId(3)).unwrap().availability =
            shoal_control::state::Availability::Drain;
        let peers = peers(&s, NodeId(2));
        let names: Vec<&str> = peers["/run/netns/task"]
            .iter()
            .map(|p| p.node.as_str())
            .collect();
        assert_eq!(names, ["n1", "n3"]);
    }

    #[test]
    fn balancers_choose_only_tasks_on_nodes_that_serve() {
        use crate::overlay::view::backends;
        use shoal_control::state::Availability;
        let mut s = state("8080:80");
        let ready = backends(&s, "www", "web");
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].1, NodeId(2));
        for (status, availability) in [
            (NodeStatus::Ready, Availability::Drain),
            (NodeStatus::Leaving, Availability::Active),
            (NodeStatus::Down, Availability::Active),
        ] {
            let n2 = s.nodes.get_mut(&NodeId(2)).unwrap();
            n2.status = status;
            n2.availability = availability;
            assert!(
                backends(&s, "www", "web").is_empty(),
                "{status:?} {availability:?}"
            );
        }
        let n2 = s.nodes.get_mut(&NodeId(2)).unwrap();
        n2.status = NodeStatus::Ready;
        n2.availability = Availability::Pause;
        assert_eq!(backends(&s, "www", "web"), ready, "pause keeps serving");
    }

    #[test]
    fn source_nat_ports_need_no_return_path() {
        let s = state("src=nat,8080:80");
        assert!(peers(&s, NodeId(2)).is_empty());
        let host = state("mode=host,8080:80");
        assert!(peers(&host, NodeId(2)).is_empty());
    }
}

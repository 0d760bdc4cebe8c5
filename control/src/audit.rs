//! Checks of a cluster state against a Jepsen-style history, for the simulated Raft
//! tier (`sim`) and for tests on real labs: how a client's object key reads in a state
//! ([`value_of`]), no address handed out twice ([`duplicate_addresses`]) and no
//! acknowledged write missing ([`lost_writes`]).
//!
//! Object keys, as histories of [`shoal_lincheck::kv`] operations name them:
//!
//! | key | object | value |
//! | --- | --- | --- |
//! | `net/NAME` | network NAME | its label `v` |
//! | `svc/NAME` | service NAME | its label `v` |
//! | `label/ID` | node ID (decimal) | its label [`LABEL`] |
//! | `ep/SANDBOX` | an endpoint of sandbox SANDBOX | `attached` |

use std::collections::BTreeMap;
use std::net::IpAddr;

use shoal_lincheck::kv::{Object, Op, Reply};
use shoal_lincheck::{Operation, Outcome};

use crate::ids::NodeId;
use crate::state::ClusterState;

/// The node label clients write and read.
pub const LABEL: &str = "jepsen";

/// The value a client reads for `key` in `state` (see the table above).
pub fn value_of(state: &ClusterState, key: &str) -> Option<String> {
    let (kind, name) = key.split_once('/')?;
    match kind {
        "net" => state.networks.get(name)?.labels.get("v").cloned(),
        "svc" => state.services.get(name)?.spec.labels.get("v").cloned(),
        "label" => {
            let id = NodeId(name.parse().ok()?);
            state.nodes.get(&id)?.labels.get(LABEL).cloned()
        }
        "ep" => state
            .endpoints
            .values()
            .any(|e| e.sandbox == name)
            .then(|| "attached".to_string()),
        _ => None,
    }
}

/// Addresses held twice in `state`: overlapping subnets, or one address (IPv4 or IPv6)
/// held by two of a network's gateways, endpoints and service VIPs, or held without a
/// lease.
pub fn duplicate_addresses(state: &ClusterState) -> Vec<String> {
    let mut problems = Vec::new();
    let nets: Vec<_> = state.networks.values().collect();
    for (i, a) in nets.iter().enumerate() {
        for b in &nets[i + 1..] {
            let (Some(sa), Some(sb)) = (a.subnet(), b.subnet()) else {
                continue;
            };
            if sa.contains(&sb.network()) || sb.contains(&sa.network()) {
                problems.push(format!(
                    "networks {} ({sa}) and {} ({sb}) overlap",
                    a.name, b.name
                ));
            }
        }
    }
    for net in nets {
        // IPv4 and IPv6, whichever the network has: the gateways, endpoints and VIPs.
        let mut holders: BTreeMap<IpAddr, Vec<String>> = BTreeMap::new();
        let gateway = net.space.as_ref().map(|s| IpAddr::V4(s.gateway()));
        let gateway6 = net.space6.as_ref().map(|s| IpAddr::V6(s.gateway()));
        for gw in gateway.into_iter().chain(gateway6) {
            holders.entry(gw).or_default().push("gateway".into());
        }
        for e in state.endpoints_on(&net.name) {
            let ip6 = e.ip6.map(IpAddr::V6);
            for ip in e.ip.map(IpAddr::V4).into_iter().chain(ip6) {
                holders
                    .entry(ip)
                    .or_default()
                    .push(format!("endpoint {}", e.id));
            }
        }
        for s in state.services.values() {
            let vip = s.vips.get(&net.name).map(|v| IpAddr::V4(*v));
            let vip6 = s.vips6.get(&net.name).map(|v| IpAddr::V6(*v));
            for ip in vip.into_iter().chain(vip6) {
                holders
                    .entry(ip)
                    .or_default()
                    .push(format!("VIP of {}", s.spec.name));
            }
        }
        for (ip, who) in holders {
            if who.len() > 1 {
                problems.push(format!(
                    "{ip} on {} is held by {}",
                    net.name,
                    who.join(", ")
                ));
            }
            let leased = match ip {
                IpAddr::V4(v4) => net.space.as_ref().is_some_and(|s| s.owner_of(v4).is_some()),
                IpAddr::V6(v6) => net
                    .space6
                    .as_ref()
                    .is_some_and(|s| s.owner_of(v6).is_some()),
            };
            if !who.iter().any(|w| w == "gateway") && !leased {
                problems.push(format!(
                    "{ip} on {} is held by {} without a lease",
                    net.name,
                    who.join(", ")
                ));
            }
        }
    }
    problems
}

/// Writes acknowledged in `history` that `state` lacks: an object created, updated or
/// put with an acknowledgement and never deleted (whatever the delete's outcome) must
/// exist.
pub fn lost_writes(history: &[Operation<Object, Reply>], state: &ClusterState) -> Vec<String> {
    let mut acked: BTreeMap<&str, &Object> = BTreeMap::new();
    let mut deleted: Vec<&str> = Vec::new();
    for op in history {
        match (&op.input.op, &op.outcome) {
            (Op::Delete, _) => deleted.push(&op.input.key),
            (
                Op::Create(_) | Op::Update(_) | Op::Put(_),
                Outcome::Returned {
                    output: Reply::Ok, ..
                },
            ) => {
                acked.insert(&op.input.key, &op.input);
            }
            _ => {}
        }
    }
    acked
        .into_iter()
        .filter(|(key, _)| !deleted.contains(key))
        .filter(|(key, _)| value_of(state, key).is_none())
        .map(|(key, op)| format!("{key}: acknowledged {op:?}, missing from the final state"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{apply, AttachSpec, Command, NetworkSpec, Proposal, Secrets};

    fn run(s: &mut ClusterState, command: Command) {
        apply(s, None, &Proposal { at_ms: 1, command }).unwrap();
    }

    fn cluster() -> ClusterState {
        let mut s = ClusterState::default();
        run(
            &mut s,
            Command::Bootstrap {
                cluster_id: "c".into(),
                ca_cert_pem: "CA".into(),
                secrets: Secrets::default(),
                addr_pools: Default::default(),
                node: crate::state::fixtures::node(1, crate::state::Role::Manager, &[]),
            },
        );
        for (id, name) in [("aaaaaaaa", "x"), ("bbbbbbbb", "y")] {
            run(
                &mut s,
                Command::CreateNetwork {
                    id: id.into(),
                    spec: NetworkSpec {
                        name: name.into(),
                        attachable: true,
                        labels: [("v".to_string(), "1".to_string())].into(),
                        ..Default::default()
                    },
                },
            );
        }
        for sandbox in ["/s1", "/s2"] {
            run(
                &mut s,
                Command::Attach {
                    spec: AttachSpec {
                        network: "x".into(),
                        node: crate::ids::NodeId(1),
                        sandbox: sandbox.into(),
                        ..Default::default()
                    },
                },
            );
        }
        s
    }

    #[test]
    fn a_consistent_state_has_no_duplicates() {
        assert_eq!(duplicate_addresses(&cluster()), Vec::<String>::new());
    }

    #[test]
    fn duplicate_endpoint_addresses_and_overlapping_subnets_are_found() {
        let mut s = cluster();
        let ips: Vec<_> = s.endpoints.values().map(|e| e.ip).collect();
        let first = s.endpoints.keys().next().cloned().unwrap();
        s.endpoints.update(&first, |e| e.ip = ips[1]).unwrap();
        let p = duplicate_addresses(&s);
        assert!(p.iter().any(|p| p.contains("is held by endpoint")), "{p:?}");
        let x = s.networks["x"].clone();
        s.networks.get_mut("y").unwrap().space = x.space;
        let p = duplicate_addresses(&s);
        assert!(p.iter().any(|p| p.contains("overlap")), "{p:?}");
    }

    #[test]
    fn ipv6_addresses_are_audited_too() {
        let mut s = cluster();
        run(
            &mut s,
            Command::CreateNetwork {
                id: "cccccccc".into(),
                spec: NetworkSpec {
                    name: "v6".into(),
                    attachable: true,
                    ipv6: true,
                    ..Default::default()
                },
            },
        );
        run(
            &mut s,
            Command::CreateService {
                id: "dddddddd".into(),
                spec: crate::state::ServiceSpec {
                    name: "web".into(),
                    networks: vec!["v6".into()],
                    ..Default::default()
                },
            },
        );
        run(
            &mut s,
            Command::Attach {
                spec: AttachSpec {
                    network: "v6".into(),
                    node: crate::ids::NodeId(1),
                    sandbox: "/s3".into(),
                    ..Default::default()
                },
            },
        );
        assert_eq!(duplicate_addresses(&s), Vec::<String>::new());
        let vip6 = s.services["web"].vips6["v6"];
        let id = s
            .endpoints
            .values()
            .find(|e| e.ip6.is_some())
            .unwrap()
            .id
            .clone();
        s.endpoints.update(&id, |e| e.ip6 = Some(vip6)).unwrap();
        let p = duplicate_addresses(&s);
        assert!(
            p.iter().any(
                |p| p.contains(&format!("{vip6} on v6 is held by")) && p.contains("VIP of web")
            ),
            "{p:?}"
        );
        s.services.get_mut("web").unwrap().vips6.clear();
        s.networks
            .get_mut("v6")
            .unwrap()
            .space6
            .as_mut()
            .unwrap()
            .release(vip6);
        let p = duplicate_addresses(&s);
        assert!(
            p.iter().any(|p| p.contains("without a lease")),
            "an IPv6 address without its lease: {p:?}"
        );
    }

    #[test]
    fn acknowledged_writes_must_survive_unless_deleted() {
        let s = cluster();
        let ok = |o: Object| Operation::returned(1, o, 1, 2, Reply::Ok);
        let h = vec![
            ok(Object::create("net/x", "1")),
            ok(Object::create("net/z", "1")),
        ];
        // x exists; z never made it.
        let lost = lost_writes(&h, &s);
        assert_eq!(lost.len(), 1, "{lost:?}");
        assert!(lost[0].starts_with("net/z"));
        let mut h = h;
        h.push(Operation::unknown(2, Object::delete("net/z"), 3));
        assert_eq!(lost_writes(&h, &s), Vec::<String>::new());
    }
}

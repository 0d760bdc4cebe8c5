//! Engine API objects → the ingress crate's [`Workload`]s: a running container's name,
//! labels, exposed ports, addresses and health; a Swarm service's own labels with its
//! tasks' addresses and state. Pure, so the mapping is tested on Docker's JSON.

use std::collections::BTreeMap;
use std::net::IpAddr;

use shoal_ingress::config::docker::{Health, Instance, Kind, Workload};

use super::objects::{InspectedContainer, NetworkRow, SwarmService, SwarmTask};

/// `10.0.1.3/24` or `10.0.1.3` → the address.
fn address(text: &str) -> Option<IpAddr> {
    text.split('/').next()?.parse().ok()
}

/// The TCP ports in `"80/tcp"` keys.
fn tcp_ports<'a>(keys: impl Iterator<Item = &'a String>) -> Vec<u16> {
    let mut ports: Vec<u16> = keys
        .filter_map(|k| match k.split_once('/') {
            Some((p, "tcp")) => p.parse().ok(),
            None => k.parse().ok(),
            Some(_) => None,
        })
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// Whether a container is a Swarm task (its labels are handled with its service's).
pub fn is_swarm_task(c: &InspectedContainer) -> bool {
    c.config.labels.contains_key("com.docker.swarm.task.id")
}

/// A container's addresses by network name.
fn addresses(c: &InspectedContainer) -> BTreeMap<String, Option<IpAddr>> {
    c.network_settings
        .networks
        .iter()
        .map(|(name, n)| {
            let ip = address(&n.ip_address).or_else(|| address(&n.global_ipv6_address));
            (name.clone(), ip)
        })
        .collect()
}

/// The workload of container `c`; `peer` finds the container whose network a
/// `--network container:<id>` container shares.
pub fn container(
    c: &InspectedContainer,
    peer: impl Fn(&str) -> Option<InspectedContainer>,
) -> Workload {
    let mode = c.host_config.network_mode.as_str();
    let addresses = match mode.strip_prefix("container:") {
        Some(other) => peer(other).map(|p| addresses(&p)).unwrap_or_default(),
        None => addresses(c),
    };
    Workload {
        kind: Kind::Container,
        id: c.id.clone(),
        name: c.name.trim_start_matches('/').to_string(),
        labels: c.config.labels.clone(),
        exposed_ports: tcp_ports(
            c.config
                .exposed_ports
                .keys()
                .chain(c.network_settings.ports.keys()),
        ),
        instances: vec![Instance {
            addresses,
            host_network: mode == "host",
            running: c.state.status == "running",
            health: Health::from_docker(c.state.health.as_ref().map(|h| h.status.as_str())),
        }],
        virtual_ips: BTreeMap::new(),
    }
}

/// A task's addresses: those Swarm allocated (overlay networks), completed by those of
/// its container where this daemon runs it (networks of local drivers, such as a
/// Swarm-scoped bridge, are addressed by the node, not by Swarm). The routing mesh's
/// `ingress` network is no way to a task and is left out.
fn task_addresses(
    t: &SwarmTask,
    local: &impl Fn(&str) -> Option<InspectedContainer>,
) -> BTreeMap<String, Option<IpAddr>> {
    let mut out: BTreeMap<String, Option<IpAddr>> = t
        .networks_attachments
        .iter()
        .filter(|a| !a.network.spec.ingress)
        .map(|a| {
            let ip = a.addresses.first().and_then(|x| address(x));
            (a.network.spec.name.clone(), ip)
        })
        .collect();
    let container = t
        .status
        .container_status
        .as_ref()
        .map(|c| c.container_id.as_str());
    if let Some(c) = container.filter(|c| !c.is_empty()).and_then(local) {
        for (name, ip) in addresses(&c) {
            let slot = out.entry(name).or_default();
            if slot.is_none() {
                *slot = ip;
            }
        }
        out.remove("ingress");
    }
    out
}

/// The workloads of Swarm `services`, with their `tasks` (meant to run), the daemon's
/// `networks` (to name the networks of virtual IPs) and its containers (`local`).
pub fn swarm(
    services: &[SwarmService],
    tasks: &[SwarmTask],
    networks: &[NetworkRow],
    local: impl Fn(&str) -> Option<InspectedContainer>,
) -> Vec<Workload> {
    let names: BTreeMap<&str, &NetworkRow> = networks.iter().map(|n| (n.id.as_str(), n)).collect();
    services
        .iter()
        .map(|s| Workload {
            kind: Kind::SwarmService,
            id: s.id.clone(),
            name: s.spec.name.clone(),
            labels: s.spec.labels.clone(),
            exposed_ports: Vec::new(),
            instances: tasks
                .iter()
                .filter(|t| t.service_id == s.id && t.desired_state == "running")
                .map(|t| Instance {
                    addresses: task_addresses(t, &local),
                    host_network: false,
                    running: t.status.state == "running",
                    health: Health::None,
                })
                .collect(),
            virtual_ips: s
                .endpoint
                .virtual_ips
                .iter()
                .filter_map(|v| {
                    let net = names.get(v.network_id.as_str()).filter(|n| !n.ingress)?;
                    Some((net.name.clone(), address(&v.addr)?))
                })
                .collect(),
        })
        .collect()
}

/// Whether every replicated service has as many running tasks as it wants (while
/// not, Swarm is still placing or starting them and the provider looks again).
pub fn converged(services: &[SwarmService], tasks: &[SwarmTask]) -> bool {
    services.iter().all(|s| {
        let running = tasks
            .iter()
            .filter(|t| t.service_id == s.id && t.status.state == "running")
            .count() as u64;
        let meant = tasks
            .iter()
            .filter(|t| t.service_id == s.id && t.desired_state == "running")
            .count() as u64;
        let wanted = s
            .spec
            .mode
            .replicated
            .as_ref()
            .map_or(meant, |r| r.replicas);
        running >= wanted && running >= meant
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTAINER: &str = r#"{
        "Id": "abc", "Name": "/web-1",
        "State": {"Status": "running", "Running": true, "Health": {"Status": "starting", "FailingStreak": 0}},
        "Config": {"Labels": {"traefik.http.routers.x.rule": "Host(`x.test`)"},
                   "ExposedPorts": {"8080/tcp": {}, "53/udp": {}}},
        "HostConfig": {"NetworkMode": "web"},
        "NetworkSettings": {"Ports": {"80/tcp": null},
            "Networks": {"web": {"IPAddress": "10.5.0.2", "IPPrefixLen": 24, "GlobalIPv6Address": ""},
                         "v6": {"IPAddress": "", "GlobalIPv6Address": "fd00::5"},
                         "none": {"IPAddress": ""}}}
    }"#;

    #[test]
    fn a_container_as_docker_inspects_it() {
        let c: InspectedContainer = serde_json::from_str(CONTAINER).unwrap();
        let w = container(&c, |_| None);
        assert_eq!(w.name, "web-1");
        assert_eq!(w.exposed_ports, vec![80, 8080]);
        let i = &w.instances[0];
        assert!(i.running && !i.host_network);
        assert_eq!(i.health, Health::Starting);
        assert_eq!(i.addresses["web"], Some("10.5.0.2".parse().unwrap()));
        assert_eq!(i.addresses["v6"], Some("fd00::5".parse().unwrap()));
        assert_eq!(i.addresses["none"], None);
        assert!(!is_swarm_task(&c));
    }

    #[test]
    fn a_container_sharing_another_ones_network_takes_its_addresses() {
        let mut c: InspectedContainer = serde_json::from_str(CONTAINER).unwrap();
        let peer = c.clone();
        c.host_config.network_mode = "container:def".into();
        c.network_settings.networks.clear();
        let w = container(&c, |id| (id == "def").then(|| peer.clone()));
        assert_eq!(w.instances[0].addresses.len(), 3);
        c.host_config.network_mode = "host".into();
        assert!(container(&c, |_| None).instances[0].host_network);
    }

    #[test]
    fn a_swarm_service_with_its_tasks() {
        let services: Vec<SwarmService> = serde_json::from_str(
            r#"[{"ID": "s1", "Spec": {"Name": "app", "Labels": {"a": "b"},
                  "Mode": {"Replicated": {"Replicas": 2}}},
                 "Endpoint": {"VirtualIPs": [{"NetworkID": "n1", "Addr": "10.0.1.2/24"},
                                             {"NetworkID": "ing", "Addr": "10.255.0.5/16"}]}}]"#,
        )
        .unwrap();
        let task = |state: &str, addr: &str| {
            format!(
                r#"{{"ServiceID": "s1", "Status": {{"State": "{state}"}}, "DesiredState": "running",
                    "NetworksAttachments": [
                      {{"Network": {{"Spec": {{"Name": "ingress", "Ingress": true}}}}, "Addresses": ["10.255.0.9/16"]}},
                      {{"Network": {{"Spec": {{"Name": "web"}}}}, "Addresses": ["{addr}"]}}]}}"#
            )
        };
        let tasks: Vec<SwarmTask> = serde_json::from_str(&format!(
            "[{}, {}]",
            task("running", "10.0.1.3/24"),
            task("starting", "10.0.1.4/24")
        ))
        .unwrap();
        let networks: Vec<NetworkRow> = serde_json::from_str(
            r#"[{"Id": "n1", "Name": "web"}, {"Id": "ing", "Name": "ingress", "Ingress": true}]"#,
        )
        .unwrap();
        let w = &swarm(&services, &tasks, &networks, |_| None)[0];
        assert_eq!(w.kind, Kind::SwarmService);
        assert_eq!(w.instances.len(), 2);
        assert_eq!(w.instances[0].addresses.len(), 1);
        assert_eq!(
            w.instances[0].addresses["web"],
            Some("10.0.1.3".parse().unwrap())
        );
        assert!(!w.instances[1].running);
        assert_eq!(
            w.virtual_ips,
            [("web".to_string(), "10.0.1.2".parse().unwrap())].into()
        );
        assert!(!converged(&services, &tasks));
        let both: Vec<SwarmTask> = serde_json::from_str(&format!(
            "[{}, {}]",
            task("running", "10.0.1.3/24"),
            task("running", "10.0.1.4/24")
        ))
        .unwrap();
        assert!(converged(&services, &both));
    }

    #[test]
    fn a_task_on_a_local_driver_network_takes_its_containers_address() {
        let services: Vec<SwarmService> =
            serde_json::from_str(r#"[{"ID": "s1", "Spec": {"Name": "app"}}]"#).unwrap();
        let tasks: Vec<SwarmTask> = serde_json::from_str(
            r#"[{"ServiceID": "s1", "DesiredState": "running",
                 "Status": {"State": "running", "ContainerStatus": {"ContainerID": "abc"}},
                 "NetworksAttachments": [{"Network": {"Spec": {"Name": "web"}}, "Addresses": []}]}]"#,
        )
        .unwrap();
        let c: InspectedContainer = serde_json::from_str(CONTAINER).unwrap();
        let w = &swarm(&services, &tasks, &[], |id| {
            (id == "abc").then(|| c.clone())
        })[0];
        assert_eq!(
            w.instances[0].addresses["web"],
            Some("10.5.0.2".parse().unwrap())
        );
    }
}

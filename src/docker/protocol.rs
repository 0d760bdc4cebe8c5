//! The messages of Docker's remote network-driver and IPAM-driver protocols
//! (libnetwork `drivers/remote/api` and `ipams/remote/api`), as dockerd sends and reads
//! them: JSON over HTTP POST, one URL per call (`/NetworkDriver.Join`).
//!
//! Unknown fields are tolerated (dockerd adds some over releases); fields dockerd may
//! leave out default to empty. Addresses arrive in CIDR form (`10.0.0.1/24`) except
//! where noted.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

/// dockerd sends `null` for an empty map or list now and then: read it as empty.
pub(super) fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `Plugin.Activate` (legacy plugins only).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Activate {
    /// The protocols served.
    pub implements: Vec<&'static str>,
}

/// `NetworkDriver.GetCapabilities`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Capabilities {
    /// `local` (each daemon keeps its own networks) or `global` (a Swarm's).
    pub scope: &'static str,
    /// Whether endpoints reach across hosts: `global`.
    pub connectivity_scope: &'static str,
}

/// One address pool of a network, as Docker's IPAM handed it out.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpamData {
    /// The address space of the IPAM driver that handed it out.
    #[serde(default)]
    pub address_space: String,
    /// The subnet, `10.0.5.0/24`.
    #[serde(default)]
    pub pool: String,
    /// The gateway, `10.0.5.1/24`.
    #[serde(default)]
    pub gateway: String,
    /// Reserved addresses by name, in CIDR form.
    #[serde(default, deserialize_with = "nullable")]
    pub aux_addresses: BTreeMap<String, String>,
}

/// `NetworkDriver.CreateNetwork` and `AllocateNetwork`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateNetwork {
    /// Docker's network ID.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// `com.docker.network.generic` (the `--opt` map), `com.docker.network.internal`,
    /// `com.docker.network.enable_ipv6`; in `AllocateNetwork`, the `--opt` map itself.
    #[serde(default, deserialize_with = "nullable")]
    pub options: BTreeMap<String, serde_json::Value>,
    /// IPv4 pools.
    #[serde(default, rename = "IPv4Data", deserialize_with = "nullable")]
    pub ipv4_data: Vec<IpamData>,
    /// IPv6 pools.
    #[serde(default, rename = "IPv6Data", deserialize_with = "nullable")]
    pub ipv6_data: Vec<IpamData>,
}

/// `AllocateNetwork`'s answer: the options every node's daemon gets with the network.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Allocated {
    /// The options to keep.
    pub options: BTreeMap<String, String>,
}

/// `DeleteNetwork`, `FreeNetwork`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkRef {
    /// Docker's network ID.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
}

/// An endpoint's interface.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Interface {
    /// IPv4 address with prefix.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub address: String,
    /// IPv6 address with prefix.
    #[serde(
        default,
        rename = "AddressIPv6",
        skip_serializing_if = "String::is_empty"
    )]
    pub address_ipv6: String,
    /// MAC address, `02:42:0a:00:05:02`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac_address: String,
}

/// `NetworkDriver.CreateEndpoint`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateEndpoint {
    /// Docker's network ID.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// Docker's endpoint ID.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// The address Docker's IPAM gave, and a MAC if the user chose one.
    #[serde(default)]
    pub interface: Option<Interface>,
}

/// `CreateEndpoint`'s answer: only what Docker left empty.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointCreated {
    /// The MAC shoal gives the endpoint, when Docker gave none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<Interface>,
}

/// `EndpointOperInfo`, `DeleteEndpoint`, `Leave`, `RevokeExternalConnectivity`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointRef {
    /// Docker's endpoint ID.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
}

/// `EndpointOperInfo`'s answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct OperInfo {
    /// Shown by `docker network inspect`: shoal's endpoint ID, node, ...
    pub value: BTreeMap<String, String>,
}

/// `NetworkDriver.Join`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Join {
    /// Docker's network ID.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// Docker's endpoint ID.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// The container's network namespace (made later by runc, for a new container).
    #[serde(default)]
    pub sandbox_key: String,
}

/// The interface dockerd moves into the container.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InterfaceName {
    /// Its name in the host's namespace.
    pub src_name: String,
    /// The prefix of its name in the container (`eth` gives `eth0`, `eth1`, ...).
    pub dst_prefix: String,
}

/// `Join`'s answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Joined {
    /// The interface to move.
    pub interface_name: InterfaceName,
    /// The default gateway (a plain address); with it, Docker adds no
    /// `docker_gwbridge`.
    pub gateway: String,
    /// The IPv6 default gateway, on a dual-stack network.
    #[serde(rename = "GatewayIPv6", skip_serializing_if = "String::is_empty")]
    pub gateway_ipv6: String,
    /// No extra routes.
    pub static_routes: Vec<serde_json::Value>,
}

/// `ProgramExternalConnectivity`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExternalConnectivity {
    /// Docker's endpoint ID.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// `com.docker.network.portmap` among others.
    #[serde(default, deserialize_with = "nullable")]
    pub options: BTreeMap<String, serde_json::Value>,
}

/// One `-p` mapping (`com.docker.network.portmap`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct PortBinding {
    /// IP protocol number (6 TCP, 17 UDP, 132 SCTP).
    pub proto: u8,
    /// The container's port.
    pub port: u16,
    /// The first host port (0: any).
    #[serde(default)]
    pub host_port: u16,
    /// The last host port of a range (0 or equal: one port).
    #[serde(default)]
    pub host_port_end: u16,
    /// The host address to publish on (empty: every address).
    #[serde(default, rename = "HostIP")]
    pub host_ip: String,
}

/// `IpamDriver.GetCapabilities`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpamCapabilities {
    /// Whether RequestAddress needs the endpoint's MAC.
    #[serde(rename = "RequiresMACAddress")]
    pub requires_mac_address: bool,
}

/// `IpamDriver.GetDefaultAddressSpaces`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AddressSpaces {
    /// For local-scope networks.
    pub local_default_address_space: &'static str,
    /// For global-scope (Swarm) networks.
    pub global_default_address_space: &'static str,
}

/// `IpamDriver.RequestPool`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RequestPool {
    /// The address space.
    #[serde(default)]
    pub address_space: String,
    /// `--subnet`, or empty.
    #[serde(default)]
    pub pool: String,
    /// `--ip-range`, or empty.
    #[serde(default)]
    pub sub_pool: String,
    /// `--ipam-opt`.
    #[serde(default, deserialize_with = "nullable")]
    pub options: BTreeMap<String, String>,
    /// An IPv6 pool.
    #[serde(default, rename = "V6")]
    pub v6: bool,
}

/// `RequestPool`'s answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PoolGranted {
    /// What ReleasePool and RequestAddress will name.
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    /// The subnet.
    pub pool: String,
    /// Nothing more.
    pub data: BTreeMap<String, String>,
}

/// `IpamDriver.ReleasePool`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReleasePool {
    /// The pool.
    #[serde(rename = "PoolID")]
    pub pool_id: String,
}

/// `IpamDriver.RequestAddress`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RequestAddress {
    /// The pool.
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    /// A given address (`--ip`, `--gateway`, Swarm's replay), or empty.
    #[serde(default)]
    pub address: String,
    /// `RequestAddressType: com.docker.network.gateway` for the gateway.
    #[serde(default, deserialize_with = "nullable")]
    pub options: BTreeMap<String, String>,
}

/// `RequestAddress`'s answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AddressGranted {
    /// With the pool's prefix, `10.0.5.2/24`.
    pub address: String,
    /// Nothing more.
    pub data: BTreeMap<String, String>,
}

/// `IpamDriver.ReleaseAddress`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReleaseAddress {
    /// The pool.
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    /// The address (plain, no prefix).
    pub address: String,
}

/// The marker of a gateway request in RequestAddress options.
pub const GATEWAY_REQUEST: (&str, &str) = ("RequestAddressType", "com.docker.network.gateway");

/// The error answer (dockerd reads `Err` from any non-200 reply).
#[derive(Debug, Serialize)]
pub struct ErrorReply {
    /// What went wrong, for the user.
    #[serde(rename = "Err")]
    pub err: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What dockerd 20.10 sent for `docker network create -d shoal --ipam-driver shoal`
    /// (captured in the lab).
    #[test]
    fn dockerds_requests_parse() {
        let create = r#"{"NetworkID":"314dfbd4e61fca1425716370281e2757d7a49b2559ffabd0ec8fecb949d7d4a9","Options":{"com.docker.network.enable_ipv6":false,"com.docker.network.generic":{}},"IPv4Data":[{"AddressSpace":"g","Gateway":"10.99.0.1/24","Pool":"10.99.0.0/24"}],"IPv6Data":[]}"#;
        let c: CreateNetwork = serde_json::from_str(create).unwrap();
        assert_eq!(c.ipv4_data[0].gateway, "10.99.0.1/24");
        assert!(c.ipv6_data.is_empty());
        let pool = r#"{"AddressSpace":"shoal","Pool":"","SubPool":"","Options":null,"V6":false}"#;
        let p: RequestPool = serde_json::from_str(pool).unwrap();
        assert!(p.options.is_empty() && !p.v6);
        let gw = r#"{"PoolID":"shoal/10.99.0.0/24","Address":"","Options":{"RequestAddressType":"com.docker.network.gateway"}}"#;
        let g: RequestAddress = serde_json::from_str(gw).unwrap();
        assert_eq!(
            g.options.get(GATEWAY_REQUEST.0).map(String::as_str),
            Some(GATEWAY_REQUEST.1)
        );
        let plain = r#"{"PoolID":"shoal/10.99.0.0/24","Address":"","Options":null}"#;
        assert!(serde_json::from_str::<RequestAddress>(plain)
            .unwrap()
            .options
            .is_empty());
        let join = r#"{"NetworkID":"n","EndpointID":"e","SandboxKey":"/var/run/docker/netns/abc","Options":{"com.docker.network.portmap":null}}"#;
        assert_eq!(
            serde_json::from_str::<Join>(join).unwrap().sandbox_key,
            "/var/run/docker/netns/abc"
        );
        let ports =
            r#"[{"Proto":6,"IP":"","Port":80,"HostIP":"","HostPort":8080,"HostPortEnd":8080}]"#;
        let b: Vec<PortBinding> = serde_json::from_str(ports).unwrap();
        assert_eq!((b[0].proto, b[0].port, b[0].host_port), (6, 80, 8080));
    }

    #[test]
    fn answers_have_dockers_field_names() {
        let joined = serde_json::to_value(Joined {
            interface_name: InterfaceName {
                src_name: "shl-pabc".into(),
                dst_prefix: "eth".into(),
            },
            gateway: "10.0.0.1".into(),
            gateway_ipv6: String::new(),
            static_routes: vec![],
        })
        .unwrap();
        assert_eq!(joined["InterfaceName"]["SrcName"], "shl-pabc");
        assert_eq!(joined["Gateway"], "10.0.0.1");
        assert!(joined.get("GatewayIPv6").is_none(), "{joined}");
        let dual = serde_json::to_value(Joined {
            interface_name: InterfaceName {
                src_name: "shl-pabc".into(),
                dst_prefix: "eth".into(),
            },
            gateway: "10.0.0.1".into(),
            gateway_ipv6: "fd00::1".into(),
            static_routes: vec![],
        })
        .unwrap();
        assert_eq!(dual["GatewayIPv6"], "fd00::1");
        let caps = serde_json::to_value(Capabilities {
            scope: "local",
            connectivity_scope: "global",
        })
        .unwrap();
        assert_eq!(caps["ConnectivityScope"], "global");
        let err = serde_json::to_value(ErrorReply { err: "x".into() }).unwrap();
        assert_eq!(err["Err"], "x");
        let granted = serde_json::to_value(PoolGranted {
            pool_id: "shoal/10.0.0.0/24".into(),
            pool: "10.0.0.0/24".into(),
            data: BTreeMap::new(),
        })
        .unwrap();
        assert_eq!(granted["PoolID"], "shoal/10.0.0.0/24");
    }
}

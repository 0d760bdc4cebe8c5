//! `runtimeConfig`: the capability arguments a runtime fills in (CONVENTIONS.md).
//!
//! Shoal acts on `ips`, `mac`, `aliases` and `portMappings`. A runtime only inserts a
//! capability the network config declares, so any other key means the admin declared
//! one shoal cannot honour: code 2, naming it.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{Map, Value};

use super::error::{shown, CniError};

/// An address asked for: `<ip>[/<prefix>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestedIp {
    /// The address.
    pub addr: IpAddr,
    /// Its prefix length, if given.
    pub prefix: Option<u8>,
}

impl RequestedIp {
    /// Parses `10.1.2.3` or `10.1.2.3/24`; the address must be unicast.
    pub fn parse(text: &str) -> Result<RequestedIp, String> {
        let ip = if text.contains('/') {
            let net: IpNet = text
                .parse()
                .map_err(|_| format!("{text:?} is not <ip>[/<prefix>]"))?;
            RequestedIp {
                addr: net.addr(),
                prefix: Some(net.prefix_len()),
            }
        } else {
            let addr: IpAddr = text
                .parse()
                .map_err(|_| format!("{text:?} is not <ip>[/<prefix>]"))?;
            RequestedIp { addr, prefix: None }
        };
        if ip.addr.is_unspecified() || ip.addr.is_multicast() || ip.addr.is_loopback() {
            return Err(format!(
                "{text:?} is not a unicast address a container can hold"
            ));
        }
        Ok(ip)
    }
}

impl fmt::Display for RequestedIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.prefix {
            Some(prefix) => write!(f, "{}/{prefix}", self.addr),
            None => write!(f, "{}", self.addr),
        }
    }
}

/// An Ethernet address for the container's interface: unicast, not all zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// Parses `c2:11:22:33:44:55` (or with `-`), any case: shoal's own reading of an
    /// interface's MAC (`shoal attach --mac`), the same rules.
    pub fn parse(text: &str) -> Result<MacAddr, String> {
        shoal_ipam::parse_mac(text)
            .map(MacAddr)
            .map_err(|e| e.to_string())
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&shoal_ipam::format_mac(self.0))
    }
}

/// A port mapping's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP (also when `protocol` is absent or empty).
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

/// One `portMappings` entry: `{hostPort, containerPort, protocol, hostIP}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortMapping {
    /// The port on the host, 1–65535.
    pub host_port: u16,
    /// The port in the container, 1–65535.
    pub container_port: u16,
    /// The protocol.
    pub protocol: Protocol,
    /// The host address to bind, or all when absent (or `""`).
    pub host_ip: Option<IpAddr>,
}

/// The capability arguments shoal acts on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RuntimeConfig {
    /// `ips`: addresses the runtime asks for.
    pub ips: Vec<RequestedIp>,
    /// `mac`: the container interface's address.
    pub mac: Option<MacAddr>,
    /// `aliases`: DNS names for the container on this network.
    pub aliases: Vec<String>,
    /// `portMappings`.
    pub port_mappings: Vec<PortMapping>,
}

fn invalid(field: impl Into<String>, details: impl Into<String>) -> CniError {
    CniError::InvalidConfig {
        field: field.into(),
        details: details.into(),
    }
}

/// Decode errors for a field of the wrong JSON type.
pub(crate) fn wrong_type(field: &str, expected: &str, value: &Value) -> CniError {
    CniError::Decode {
        what: format!("network configuration field {field}"),
        details: format!("{field} must be {expected}, got {}", shown(value)),
    }
}

pub(crate) fn strings<'a>(field: &str, value: &'a Value) -> Result<Vec<&'a str>, CniError> {
    let list = value
        .as_array()
        .ok_or_else(|| wrong_type(field, "a list of strings", value))?;
    list.iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_str()
                .ok_or_else(|| wrong_type(&format!("{field}[{i}]"), "a string", v))
        })
        .collect()
}

impl RuntimeConfig {
    /// Reads `runtimeConfig` of CNI network `network` (the config's `name`).
    pub fn parse(value: &Value, network: &str) -> Result<RuntimeConfig, CniError> {
        let object = value
            .as_object()
            .ok_or_else(|| wrong_type("runtimeConfig", "an object", value))?;
        let mut config = RuntimeConfig::default();
        for (key, value) in object {
            let field = format!("runtimeConfig.{key}");
            match key.as_str() {
                "ips" => config.ips = parse_ips(&field, value)?,
                "mac" => {
                    let text = value
                        .as_str()
                        .ok_or_else(|| wrong_type(&field, "a string", value))?;
                    config.mac = Some(MacAddr::parse(text).map_err(|d| invalid(&field, d))?);
                }
                "aliases" => config.aliases = parse_aliases(&field, value, network)?,
                "portMappings" => config.port_mappings = parse_port_mappings(&field, value)?,
                _ => {
                    return Err(CniError::UnsupportedField {
                        key: field,
                        value: shown(value),
                        details:
                            "shoal acts on the capabilities ips, mac, aliases and portMappings; \
                                  remove the others from the network config's \"capabilities\""
                                .into(),
                    })
                }
            }
        }
        Ok(config)
    }
}

/// A list of `<ip>[/<prefix>]` strings (`runtimeConfig.ips`, `args.cni.ips`).
pub(crate) fn parse_ips(field: &str, value: &Value) -> Result<Vec<RequestedIp>, CniError> {
    let mut ips = Vec::new();
    for (i, text) in strings(field, value)?.into_iter().enumerate() {
        ips.push(RequestedIp::parse(text).map_err(|d| invalid(format!("{field}[{i}]"), d))?);
    }
    Ok(ips)
}

/// Aliases are DNS names: dot-separated labels of 1–63 letters, digits, `-` or `_`,
/// not starting or ending with `-`, 253 bytes at most. CONVENTIONS.md gives them as a
/// list; podman gives a map from the CNI network's name to the list (as its dnsname
/// plugin reads them), and only this network's entry counts.
fn parse_aliases(field: &str, value: &Value, network: &str) -> Result<Vec<String>, CniError> {
    if let Some(by_network) = value.as_object() {
        return match by_network.get(network) {
            Some(list) => parse_aliases(&format!("{field}.{network}"), list, network),
            None => Ok(Vec::new()),
        };
    }
    let mut aliases = Vec::new();
    for (i, alias) in strings(field, value)?.into_iter().enumerate() {
        let label_ok = |l: &str| {
            (1..=63).contains(&l.len())
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if alias.len() > 253 || !alias.split('.').all(label_ok) {
            return Err(invalid(
                format!("{field}[{i}]"),
                format!("{alias:?} is not a DNS name (labels of letters, digits, '-' or '_', joined by '.')"),
            ));
        }
        if !aliases
            .iter()
            .any(|a: &String| a.eq_ignore_ascii_case(alias))
        {
            aliases.push(alias.to_string());
        }
    }
    Ok(aliases)
}

fn parse_port_mappings(field: &str, value: &Value) -> Result<Vec<PortMapping>, CniError> {
    let list = value
        .as_array()
        .ok_or_else(|| wrong_type(field, "a list", value))?;
    let mut mappings = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, entry) in list.iter().enumerate() {
        let field = format!("{field}[{i}]");
        let object = entry
            .as_object()
            .ok_or_else(|| wrong_type(&field, "an object", entry))?;
        let mapping = parse_port_mapping(&field, object)?;
        if !seen.insert((mapping.host_ip, mapping.host_port, mapping.protocol)) {
            return Err(invalid(
                field,
                format!(
                    "host port {} ({:?}) is mapped twice",
                    mapping.host_port, mapping.protocol
                ),
            ));
        }
        mappings.push(mapping);
    }
    Ok(mappings)
}

fn parse_port_mapping(field: &str, object: &Map<String, Value>) -> Result<PortMapping, CniError> {
    let port = |key: &str| -> Result<u16, CniError> {
        let field = format!("{field}.{key}");
        let value = object
            .get(key)
            .ok_or_else(|| invalid(&field, format!("{key} is required")))?;
        let number = value
            .as_i64()
            .ok_or_else(|| wrong_type(&field, "an integer", value))?;
        u16::try_from(number)
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| invalid(&field, format!("{number} is not a port (1-65535)")))
    };
    let host_port = port("hostPort")?;
    let container_port = port("containerPort")?;
    let protocol = match object.get("protocol") {
        None => Protocol::Tcp,
        Some(value) => {
            let text = value
                .as_str()
                .ok_or_else(|| wrong_type(&format!("{field}.protocol"), "a string", value))?;
            match text.to_ascii_lowercase().as_str() {
                "" | "tcp" => Protocol::Tcp,
                "udp" => Protocol::Udp,
                "sctp" => Protocol::Sctp,
                _ => {
                    return Err(CniError::UnsupportedField {
                        key: format!("{field}.protocol"),
                        value: shown(value),
                        details: "shoal maps tcp, udp and sctp".into(),
                    })
                }
            }
        }
    };
    let host_ip = match object.get("hostIP") {
        None => None,
        Some(value) => {
            let hfield = format!("{field}.hostIP");
            let text = value
                .as_str()
                .ok_or_else(|| wrong_type(&hfield, "a string", value))?;
            if text.is_empty() {
                None
            } else {
                let ip: IpAddr = text
                    .parse()
                    .map_err(|_| invalid(&hfield, format!("{text:?} is not an IP address")))?;
                Some(ip).filter(|ip| !ip.is_unspecified())
            }
        }
    };
    if let Some(key) = object
        .keys()
        .find(|k| !["hostPort", "containerPort", "protocol", "hostIP"].contains(&k.as_str()))
    {
        return Err(CniError::UnsupportedField {
            key: format!("{field}.{key}"),
            value: shown(&object[key]),
            details: "a port mapping has hostPort, containerPort, protocol and hostIP".into(),
        });
    }
    Ok(PortMapping {
        host_port,
        container_port,
        protocol,
        host_ip,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn code(value: Value) -> u32 {
        RuntimeConfig::parse(&value, "net").unwrap_err().code()
    }

    #[test]
    fn reads_every_capability() {
        // The CONVENTIONS.md examples.
        let config = RuntimeConfig::parse(&json!({
            "ips": ["192.168.0.1", "10.10.0.1/24", "3ffe:ffff:0:01ff::2", "3ffe:ffff:0:01ff::1/64"],
            "mac": "c2:11:22:33:44:55",
            "aliases": ["my-container", "primary-db"],
            "portMappings": [
                { "hostPort": 8080, "containerPort": 80, "protocol": "tcp" },
                { "hostPort": 8000, "containerPort": 8001, "protocol": "udp", "hostIP": "127.0.0.1" }
            ]
        }), "net")
        .unwrap();
        let ips: Vec<String> = config.ips.iter().map(ToString::to_string).collect();
        assert_eq!(
            ips,
            [
                "192.168.0.1",
                "10.10.0.1/24",
                "3ffe:ffff:0:1ff::2",
                "3ffe:ffff:0:1ff::1/64"
            ]
        );
        assert_eq!(config.mac.unwrap().to_string(), "c2:11:22:33:44:55");
        assert_eq!(config.aliases, ["my-container", "primary-db"]);
        assert_eq!(
            config.port_mappings,
            [
                PortMapping {
                    host_port: 8080,
                    container_port: 80,
                    protocol: Protocol::Tcp,
                    host_ip: None
                },
                PortMapping {
                    host_port: 8000,
                    container_port: 8001,
                    protocol: Protocol::Udp,
                    host_ip: Some("127.0.0.1".parse().unwrap())
                },
            ]
        );
    }

    #[test]
    fn port_mappings_are_validated() {
        let pm = |entry: Value| code(json!({ "portMappings": [entry] }));
        assert_eq!(pm(json!({"hostPort": 0, "containerPort": 80})), 7);
        assert_eq!(pm(json!({"hostPort": -1, "containerPort": 80})), 7);
        assert_eq!(pm(json!({"hostPort": 70000, "containerPort": 80})), 7);
        assert_eq!(pm(json!({"hostPort": 80})), 7, "containerPort is required");
        assert_eq!(pm(json!({"hostPort": "80", "containerPort": 80})), 6);
        assert_eq!(
            pm(json!({"hostPort": 80, "containerPort": 80, "protocol": "icmp"})),
            2
        );
        assert_eq!(
            pm(json!({"hostPort": 80, "containerPort": 80, "hostIP": "nope"})),
            7
        );
        assert_eq!(
            pm(json!({"hostPort": 80, "containerPort": 80, "name": "web"})),
            2
        );
        let twice = json!({"portMappings": [
            {"hostPort": 80, "containerPort": 80, "protocol": "TCP"},
            {"hostPort": 80, "containerPort": 81}
        ]});
        assert_eq!(code(twice), 7);
        let both_protocols = json!({"portMappings": [
            {"hostPort": 53, "containerPort": 53, "protocol": "tcp", "hostIP": ""},
            {"hostPort": 53, "containerPort": 53, "protocol": "udp", "hostIP": "0.0.0.0"}
        ]});
        let config = RuntimeConfig::parse(&both_protocols, "net").unwrap();
        assert!(config.port_mappings.iter().all(|m| m.host_ip.is_none()));
    }

    #[test]
    fn unknown_capabilities_are_code_2_naming_them() {
        let error =
            RuntimeConfig::parse(&json!({"bandwidth": {"ingressRate": 2048}}), "net").unwrap_err();
        assert_eq!(error.code(), 2);
        assert_eq!(
            error.to_string(),
            r#"unsupported field runtimeConfig.bandwidth: {"ingressRate":2048}"#
        );
    }

    #[test]
    fn macs_and_ips_are_validated() {
        assert_eq!(code(json!({"mac": "c3:11:22:33:44:55"})), 7, "multicast");
        assert_eq!(code(json!({"mac": "00:00:00:00:00:00"})), 7);
        assert_eq!(code(json!({"mac": "c2:11:22:33:44"})), 7);
        assert_eq!(code(json!({"mac": 5})), 6);
        assert_eq!(
            MacAddr::parse("C2-11-22-33-44-5F").unwrap().to_string(),
            "c2:11:22:33:44:5f"
        );
        assert_eq!(code(json!({"ips": ["10.0.0.1/33"]})), 7);
        assert_eq!(code(json!({"ips": ["224.0.0.1"]})), 7);
        assert_eq!(code(json!({"ips": "10.0.0.1"})), 6);
        assert_eq!(code(json!({"aliases": ["-bad"]})), 7);
        assert_eq!(code(json!({"aliases": ["a b"]})), 7);
        assert_eq!(code(json!([])), 6);
    }

    #[test]
    fn duplicate_aliases_are_kept_once() {
        let config =
            RuntimeConfig::parse(&json!({"aliases": ["db", "DB", "db.internal"]}), "net").unwrap();
        assert_eq!(config.aliases, ["db", "db.internal"]);
    }

    #[test]
    fn podman_gives_aliases_by_network_and_only_ours_count() {
        let given = json!({"aliases": {"net": ["web", "www"], "other": ["elsewhere"]}});
        let config = RuntimeConfig::parse(&given, "net").unwrap();
        assert_eq!(config.aliases, ["web", "www"]);
        let elsewhere = RuntimeConfig::parse(&json!({"aliases": {"other": ["x"]}}), "net");
        assert!(elsewhere.unwrap().aliases.is_empty());
        let bad = RuntimeConfig::parse(&json!({"aliases": {"net": ["-x"]}}), "net");
        let error = bad.unwrap_err();
        assert_eq!(error.code(), 7);
        assert!(
            error.to_string().contains("runtimeConfig.aliases.net[0]"),
            "{error}"
        );
    }
}

//! The ADD result (spec 1.1 section 5, "ADD Success"), how it prints at each version
//! shoal speaks, and how a `prevResult` reads back.
//!
//! ```text
//!   CniResult ──to_json(1.1.0)──▶ interfaces[{name,mac,mtu,sandbox,socketPath,pciID}],
//!                                 ips[{address,gateway,interface}], routes[{dst,gw,mtu,
//!                                 advmss,priority,table,scope}], dns{...}
//!             ──to_json(1.0.0)──▶ the same without the 1.1 additions (mtu, socketPath,
//!                                 pciID, route attributes)
//!             ──to_json(0.3.x/0.4.0)▶ as 1.0.0, plus ips[].version "4"/"6"
//! ```
//!
//! A result's version must be the config's (spec: "the same version supplied on
//! input"), so the driver prints with the config's `cniVersion`. Empty lists and an
//! empty `dns` are left out, as libcni prints them. Route destinations are networks
//! (host bits cleared, as Go's `net.ParseCIDR` gives them); addresses keep theirs.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::error::CniError;
use super::version::CniVersion;

/// An interface the attachment made (or a chained plugin reported).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Interface {
    /// Its name.
    pub name: String,
    /// Its hardware address, as text (other plugins may report non-Ethernet ones).
    #[serde(default)]
    pub mac: Option<String>,
    /// Its MTU (1.1).
    #[serde(default)]
    pub mtu: Option<u32>,
    /// The sandbox (netns path) it is in; `None` on the host.
    #[serde(default)]
    pub sandbox: Option<String>,
    /// A socket for it (1.1).
    #[serde(default)]
    pub socket_path: Option<String>,
    /// Its PCI device (1.1).
    #[serde(default, rename = "pciID")]
    pub pci_id: Option<String>,
}

/// An address the attachment assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct IpConfig {
    /// The address with its prefix, e.g. `10.1.0.5/16`.
    pub address: IpNet,
    /// The subnet's gateway, if any.
    #[serde(default)]
    pub gateway: Option<IpAddr>,
    /// The index into `interfaces` of the interface holding it.
    #[serde(default)]
    pub interface: Option<usize>,
}

/// A route the attachment made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Route {
    /// The destination network.
    pub dst: IpNet,
    /// The next hop; unset means an `ips` gateway may be used.
    #[serde(default)]
    pub gw: Option<IpAddr>,
    /// Path MTU (1.1).
    #[serde(default)]
    pub mtu: Option<u32>,
    /// MSS to advertise (1.1).
    #[serde(default)]
    pub advmss: Option<u32>,
    /// Priority, lower first (1.1).
    #[serde(default)]
    pub priority: Option<u32>,
    /// Routing table (1.1).
    #[serde(default)]
    pub table: Option<u32>,
    /// Scope: 0 global, 253 link, 254 host (1.1).
    #[serde(default)]
    pub scope: Option<u32>,
}

/// Resolver settings for the container.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct Dns {
    /// Name servers, in order of preference.
    #[serde(default)]
    pub nameservers: Vec<IpAddr>,
    /// The local domain.
    #[serde(default)]
    pub domain: Option<String>,
    /// Search domains, in order.
    #[serde(default)]
    pub search: Vec<String>,
    /// Resolver options.
    #[serde(default)]
    pub options: Vec<String>,
}

impl Dns {
    /// Whether nothing is set (then `dns` is left out).
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.as_deref().unwrap_or_default().is_empty()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

/// The ADD result, independent of version.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CniResult {
    /// Interfaces made, host side included.
    pub interfaces: Vec<Interface>,
    /// Addresses assigned.
    pub ips: Vec<IpConfig>,
    /// Routes made.
    pub routes: Vec<Route>,
    /// Resolver settings.
    pub dns: Dns,
}

/// How a result (or `prevResult`) is on the wire; unknown keys are ignored, as
/// libcni does, since other plugins in a chain may add their own.
#[derive(Deserialize)]
struct WireResult {
    #[serde(default, rename = "cniVersion")]
    cni_version: Option<String>,
    #[serde(default)]
    interfaces: Vec<Interface>,
    #[serde(default)]
    ips: Vec<WireIp>,
    #[serde(default)]
    routes: Vec<Route>,
    #[serde(default)]
    dns: Option<Dns>,
}

#[derive(Deserialize)]
struct WireIp {
    #[serde(flatten)]
    ip: IpConfig,
    /// 0.3.x/0.4.0 only: "4" or "6".
    #[serde(default)]
    version: Option<String>,
}

fn put<T: serde::Serialize>(object: &mut Map<String, Value>, key: &str, value: Option<T>) {
    if let Some(value) = value {
        object.insert(key.to_string(), json!(value));
    }
}

impl CniResult {
    /// The result as spec `version` prints it.
    pub fn to_json(&self, version: CniVersion) -> Value {
        let v11 = version.has_v1_1_fields();
        let mut out = Map::new();
        out.insert("cniVersion".into(), json!(version.as_str()));
        if !self.interfaces.is_empty() {
            let list: Vec<Value> = self
                .interfaces
                .iter()
                .map(|i| interface_json(i, v11))
                .collect();
            out.insert("interfaces".into(), Value::Array(list));
        }
        if !self.ips.is_empty() {
            let list: Vec<Value> = self.ips.iter().map(|ip| ip_json(ip, version)).collect();
            out.insert("ips".into(), Value::Array(list));
        }
        if !self.routes.is_empty() {
            let list: Vec<Value> = self.routes.iter().map(|r| route_json(r, v11)).collect();
            out.insert("routes".into(), Value::Array(list));
        }
        if !self.dns.is_empty() {
            out.insert("dns".into(), dns_json(&self.dns));
        }
        Value::Object(out)
    }

    /// Reads a `prevResult` given with a config of `version`: code 6 if it does not
    /// decode, 7 if it contradicts itself (an `interface` index past the list, an
    /// `ips[].version` that is not the address's family).
    pub fn from_prev_result(value: &Value, version: CniVersion) -> Result<CniResult, CniError> {
        let decode = |details: String| CniError::Decode {
            what: "prevResult".into(),
            details,
        };
        let invalid = |field: String, details: String| CniError::InvalidConfig { field, details };
        let wire = WireResult::deserialize(value).map_err(|e| decode(e.to_string()))?;
        if let Some(text) = wire.cni_version.as_deref().filter(|t| !t.is_empty()) {
            CniVersion::parse(text).map_err(|_| {
                decode(format!(
                    "prevResult has cniVersion {text:?}, the config has {version}"
                ))
            })?;
        }
        let mut ips = Vec::with_capacity(wire.ips.len());
        for (
            i,
            WireIp {
                ip,
                version: family,
            },
        ) in wire.ips.into_iter().enumerate()
        {
            if let Some(index) = ip.interface.filter(|n| *n >= wire.interfaces.len()) {
                return Err(invalid(
                    format!("prevResult.ips[{i}].interface"),
                    format!(
                        "index {index} is past the {} interfaces listed",
                        wire.interfaces.len()
                    ),
                ));
            }
            let expected = if ip.address.addr().is_ipv4() {
                "4"
            } else {
                "6"
            };
            if let Some(family) = family.filter(|f| f != expected) {
                return Err(invalid(
                    format!("prevResult.ips[{i}].version"),
                    format!("version {family:?} but {} is IPv{expected}", ip.address),
                ));
            }
            ips.push(ip);
        }
        let routes = wire
            .routes
            .into_iter()
            .map(|r| Route {
                dst: r.dst.trunc(),
                ..r
            })
            .collect();
        Ok(CniResult {
            interfaces: wire.interfaces,
            ips,
            routes,
            dns: wire.dns.unwrap_or_default(),
        })
    }

    /// Adds what this plugin made to a `prevResult` (ADD in a chain: "pass it through or
    /// modify it"): interfaces go after the previous ones and `ips` indexes shift with
    /// them; routes and DNS entries already there are not repeated.
    pub fn chained_after(mut prev: CniResult, ours: CniResult) -> CniResult {
        let shift = prev.interfaces.len();
        prev.interfaces.extend(ours.interfaces);
        prev.ips.extend(ours.ips.into_iter().map(|ip| IpConfig {
            interface: ip.interface.map(|i| i + shift),
            ..ip
        }));
        for route in ours.routes {
            if !prev.routes.contains(&route) {
                prev.routes.push(route);
            }
        }
        fn union<T: PartialEq>(into: &mut Vec<T>, from: Vec<T>) {
            for item in from {
                if !into.contains(&item) {
                    into.push(item);
                }
            }
        }
        union(&mut prev.dns.nameservers, ours.dns.nameservers);
        union(&mut prev.dns.search, ours.dns.search);
        union(&mut prev.dns.options, ours.dns.options);
        if prev.dns.domain.as_deref().unwrap_or_default().is_empty() {
            prev.dns.domain = ours.dns.domain;
        }
        prev
    }
}

fn interface_json(i: &Interface, v11: bool) -> Value {
    let mut o = Map::new();
    o.insert("name".into(), json!(i.name));
    put(&mut o, "mac", i.mac.as_ref().filter(|m| !m.is_empty()));
    put(
        &mut o,
        "sandbox",
        i.sandbox.as_ref().filter(|s| !s.is_empty()),
    );
    if v11 {
        put(&mut o, "mtu", i.mtu.filter(|m| *m != 0));
        put(
            &mut o,
            "socketPath",
            i.socket_path.as_ref().filter(|s| !s.is_empty()),
        );
        put(&mut o, "pciID", i.pci_id.as_ref().filter(|s| !s.is_empty()));
    }
    Value::Object(o)
}

fn ip_json(ip: &IpConfig, version: CniVersion) -> Value {
    let mut o = Map::new();
    if version.has_ip_version_key() {
        o.insert(
            "version".into(),
            json!(if ip.address.addr().is_ipv4() {
                "4"
            } else {
                "6"
            }),
        );
    }
    put(&mut o, "interface", ip.interface);
    o.insert("address".into(), json!(ip.address.to_string()));
    put(&mut o, "gateway", ip.gateway);
    Value::Object(o)
}

fn route_json(r: &Route, v11: bool) -> Value {
    let mut o = Map::new();
    o.insert("dst".into(), json!(r.dst.trunc().to_string()));
    put(&mut o, "gw", r.gw);
    if v11 {
        put(&mut o, "mtu", r.mtu.filter(|m| *m != 0));
        put(&mut o, "advmss", r.advmss.filter(|m| *m != 0));
        put(&mut o, "priority", r.priority.filter(|p| *p != 0));
        put(&mut o, "table", r.table);
        put(&mut o, "scope", r.scope);
    }
    Value::Object(o)
}

fn dns_json(dns: &Dns) -> Value {
    let mut o = Map::new();
    if !dns.nameservers.is_empty() {
        o.insert("nameservers".into(), json!(dns.nameservers));
    }
    put(
        &mut o,
        "domain",
        dns.domain.as_ref().filter(|d| !d.is_empty()),
    );
    if !dns.search.is_empty() {
        o.insert("search".into(), json!(dns.search));
    }
    if !dns.options.is_empty() {
        o.insert("options".into(), json!(dns.options));
    }
    Value::Object(o)
}

#[cfg(test)]
mod tests;

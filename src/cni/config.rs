//! The request configuration on stdin: the plugin's object of the network config
//! list, as the runtime derives it (spec 1.1 section 3), for ADD, DEL, CHECK, STATUS
//! and GC.
//!
//! ```text
//! stdin ─▶ JSON object ─▶ cniVersion (code 1) ─▶ every key known? (code 2)
//!       ─▶ name, type, network, socket (code 7) ─▶ runtimeConfig, args,
//!          prevResult, cni.dev/valid-attachments ─▶ NetworkConfig
//! ```
//!
//! Keys: `cniVersion`, `name`, `type`; shoal's `network` (default: `name`) and
//! `socket` (default: the agent's socket); the runtime's `runtimeConfig`, `args`,
//! `prevResult` and `cni.dev/valid-attachments`. `capabilities` is accepted and
//! ignored (the runtime should strip it; older ones pass it on). Other `cni.dev/`
//! keys are reserved to runtimes and ignored, so a newer runtime does not break shoal.
//! Anything else, `ipam`, `dns` and `ipMasq` included, is code 2: shoal allocates
//! addresses and serves DNS itself and would otherwise silently not do what they ask.

use serde_json::{Map, Value};

use super::env::{is_cni_name, AttachmentKey, CniCommand, ContainerId, IfName};
use super::error::{shown, CniError};
use super::result::CniResult;
use super::runtime::{parse_ips, wrong_type, RequestedIp, RuntimeConfig};
use super::version::CniVersion;

/// The keys the config may have besides reserved `cni.dev/` ones.
const KNOWN_KEYS: [&str; 9] = [
    "cniVersion",
    "name",
    "type",
    "network",
    "socket",
    "runtimeConfig",
    "args",
    "prevResult",
    "capabilities",
];

/// The GC key listing attachments still in use.
const VALID_ATTACHMENTS: &str = "cni.dev/valid-attachments";

/// A validated request configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    /// The version; results and errors are printed at it.
    pub cni_version: CniVersion,
    /// The CNI network's `name`.
    pub name: String,
    /// The plugin `type` (the binary's name).
    pub plugin_type: String,
    /// The shoal network to attach to.
    pub network: String,
    /// The agent's API socket.
    pub socket: String,
    /// Capability arguments.
    pub runtime: RuntimeConfig,
    /// `args.cni.ips`: addresses asked for through `args`.
    pub args_ips: Vec<RequestedIp>,
    /// The previous result (ADD in a chain, DEL, CHECK).
    pub prev_result: Option<CniResult>,
    /// GC: the attachments still valid; `None` for other commands.
    pub valid_attachments: Option<Vec<AttachmentKey>>,
}

fn invalid(field: impl Into<String>, details: impl Into<String>) -> CniError {
    CniError::InvalidConfig {
        field: field.into(),
        details: details.into(),
    }
}

fn string<'a>(object: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, CniError> {
    match object.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(wrong_type(key, "a string", other)),
    }
}

impl NetworkConfig {
    /// Reads stdin for `command` (not VERSION: see `version::version_reply`).
    pub fn parse(stdin: &[u8], command: CniCommand) -> Result<NetworkConfig, CniError> {
        let value: Value = serde_json::from_slice(stdin).map_err(|e| CniError::Decode {
            what: "the network configuration on stdin".into(),
            details: e.to_string(),
        })?;
        let object = value
            .as_object()
            .ok_or_else(|| wrong_type("the network configuration", "a JSON object", &value))?;
        let cni_version = match string(object, "cniVersion")? {
            Some(text) => CniVersion::parse(text)?,
            None => return Err(CniError::IncompatibleVersion {
                version: String::new(),
                details:
                    "the config has no cniVersion, which means 0.1.0; set \"cniVersion\": \"1.1.0\""
                        .into(),
            }),
        };
        check_command_version(command, cni_version)?;
        check_known_keys(object)?;

        let name = string(object, "name")?
            .ok_or_else(|| invalid("name", "the network name is missing"))?;
        if !is_cni_name(name) {
            return Err(invalid(
                "name",
                format!("{name:?} must start with a letter or digit, followed by letters, digits, '_', '.' or '-'"),
            ));
        }
        let plugin_type =
            string(object, "type")?.ok_or_else(|| invalid("type", "the plugin type is missing"))?;
        if plugin_type.is_empty() || plugin_type.contains(['/', '\\']) {
            return Err(invalid(
                "type",
                format!("{plugin_type:?} must be a file name (no '/' or '\\')"),
            ));
        }
        let network = string(object, "network")?.unwrap_or(name);
        if !is_cni_name(network) {
            return Err(invalid(
                "network",
                format!("{network:?} is not a shoal network name (a letter or digit, then letters, digits, '_', '.' or '-')"),
            ));
        }
        let socket = string(object, "socket")?.unwrap_or(crate::client::DEFAULT_SOCKET);
        if !socket.starts_with('/') || socket.contains('\0') {
            return Err(invalid(
                "socket",
                format!("{socket:?} must be an absolute path to the agent's API socket"),
            ));
        }
        if let Some(capabilities) = object.get("capabilities") {
            let all_bools = capabilities
                .as_object()
                .is_some_and(|c| c.values().all(Value::is_boolean));
            if !all_bools {
                return Err(wrong_type(
                    "capabilities",
                    "an object of booleans",
                    capabilities,
                ));
            }
        }
        let runtime = object
            .get("runtimeConfig")
            .map(|v| RuntimeConfig::parse(v, name))
            .transpose()?
            .unwrap_or_default();
        let args_ips = object
            .get("args")
            .map(parse_args)
            .transpose()?
            .unwrap_or_default();
        let prev_result = object
            .get("prevResult")
            .filter(|v| !v.is_null())
            .map(|v| CniResult::from_prev_result(v, cni_version))
            .transpose()?;
        let valid_attachments = match command {
            CniCommand::Gc => Some(parse_valid_attachments(object.get(VALID_ATTACHMENTS))?),
            _ => None,
        };
        if command == CniCommand::Check && prev_result.is_none() {
            return Err(invalid(
                "prevResult",
                "CHECK needs the ADD result as prevResult; the runtime must pass it",
            ));
        }
        Ok(NetworkConfig {
            cni_version,
            name: name.to_string(),
            plugin_type: plugin_type.to_string(),
            network: network.to_string(),
            socket: socket.to_string(),
            runtime,
            args_ips,
            prev_result,
            valid_attachments,
        })
    }

    /// The addresses the runtime asks for. CONVENTIONS.md: `args` wins over CNI_ARGS;
    /// the `ips` capability, which the admin declared for this network, wins over both.
    pub fn requested_ips(&self, cni_args_ip: Option<RequestedIp>) -> Vec<RequestedIp> {
        if !self.runtime.ips.is_empty() {
            self.runtime.ips.clone()
        } else if !self.args_ips.is_empty() {
            self.args_ips.clone()
        } else {
            cni_args_ip.into_iter().collect()
        }
    }
}

/// CHECK came with 0.4.0; STATUS and GC with 1.1.0 (libcni's `skel` refuses them
/// below that with code 1, and so does shoal).
fn check_command_version(command: CniCommand, version: CniVersion) -> Result<(), CniError> {
    let needs = match command {
        CniCommand::Check => CniVersion::V0_4_0,
        CniCommand::Gc | CniCommand::Status => CniVersion::V1_1_0,
        _ => return Ok(()),
    };
    if version >= needs {
        return Ok(());
    }
    Err(CniError::IncompatibleVersion {
        version: version.to_string(),
        details: format!(
            "config version {version} does not allow {}; it needs {needs} or later",
            command.as_str()
        ),
    })
}

fn check_known_keys(object: &Map<String, Value>) -> Result<(), CniError> {
    let unknown = object
        .iter()
        .find(|(key, _)| !KNOWN_KEYS.contains(&key.as_str()) && !key.starts_with("cni.dev/"));
    let Some((key, value)) = unknown else {
        return Ok(());
    };
    let details = match key.as_str() {
        "ipam" => "shoal allocates addresses from the shoal network's subnets; remove \"ipam\""
            .to_string(),
        "dns" => "shoal serves DNS for the shoal network itself; remove \"dns\"".to_string(),
        "ipMasq" => {
            "outbound NAT is a property of the shoal network; remove \"ipMasq\"".to_string()
        }
        _ => format!(
            "shoal's plugin config takes {} and nothing else",
            KNOWN_KEYS.join(", ")
        ),
    };
    Err(CniError::UnsupportedField {
        key: key.clone(),
        value: shown(value),
        details,
    })
}

/// `args` is optional metadata (CONVENTIONS.md): only `args.cni.ips` is read; anything
/// else is ignored, as the conventions ask.
fn parse_args(value: &Value) -> Result<Vec<RequestedIp>, CniError> {
    let object = value
        .as_object()
        .ok_or_else(|| wrong_type("args", "an object", value))?;
    match object.get("cni").and_then(|cni| cni.get("ips")) {
        Some(ips) => parse_ips("args.cni.ips", ips),
        None => Ok(Vec::new()),
    }
}

/// GC without the list would mean "nothing is valid"; refusing is safer than
/// releasing every attachment of the network.
fn parse_valid_attachments(value: Option<&Value>) -> Result<Vec<AttachmentKey>, CniError> {
    let value = value.ok_or_else(|| {
        invalid(
            VALID_ATTACHMENTS,
            "GC needs the list of valid attachments (it may be empty: [])",
        )
    })?;
    let list = value
        .as_array()
        .ok_or_else(|| wrong_type(VALID_ATTACHMENTS, "a list", value))?;
    let mut keys = Vec::with_capacity(list.len());
    for (i, entry) in list.iter().enumerate() {
        let field = format!("{VALID_ATTACHMENTS}[{i}]");
        let get = |key: &str| entry.get(key).and_then(Value::as_str);
        let (Some(id), Some(ifname)) = (get("containerID"), get("ifname")) else {
            return Err(wrong_type(
                &field,
                "an object with string containerID and ifname",
                entry,
            ));
        };
        let container_id = ContainerId::parse(id).map_err(|d| invalid(&field, d))?;
        let ifname = IfName::parse(ifname).map_err(|d| invalid(&field, d))?;
        keys.push(AttachmentKey {
            container_id,
            ifname,
        });
    }
    Ok(keys)
}

#[cfg(test)]
mod tests;

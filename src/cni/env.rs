//! The CNI_* parameters a runtime passes in the environment, given here as a map
//! (the driver reads `std::env`; this code does not).
//!
//! Which variables each command needs is spec 1.1 section 2: ADD and CHECK need
//! CNI_CONTAINERID, CNI_NETNS and CNI_IFNAME; DEL needs CNI_CONTAINERID and
//! CNI_IFNAME (the namespace may be gone); GC needs CNI_PATH; STATUS and VERSION need
//! only CNI_COMMAND. An empty variable counts as unset (libcni's `skel` reads them so).

use std::collections::BTreeMap;
use std::fmt;

use super::error::CniError;
use super::runtime::{MacAddr, RequestedIp};

/// `CNI_COMMAND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CniCommand {
    /// Attach a container to the network.
    Add,
    /// Detach it (best effort, idempotent).
    Del,
    /// Verify an attachment against its ADD result.
    Check,
    /// Whether the plugin can serve ADD.
    Status,
    /// Which spec versions the plugin speaks.
    Version,
    /// Remove what no valid attachment owns.
    Gc,
}

impl CniCommand {
    /// The command as the environment spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            CniCommand::Add => "ADD",
            CniCommand::Del => "DEL",
            CniCommand::Check => "CHECK",
            CniCommand::Status => "STATUS",
            CniCommand::Version => "VERSION",
            CniCommand::Gc => "GC",
        }
    }

    fn parse(text: &str) -> Option<CniCommand> {
        [
            Self::Add,
            Self::Del,
            Self::Check,
            Self::Status,
            Self::Version,
            Self::Gc,
        ]
        .into_iter()
        .find(|c| c.as_str() == text)
    }
}

/// Whether `text` is a CNI name: an alphanumeric, then alphanumerics, `_`, `.` or `-`
/// (the spec's rule for container IDs and network names).
pub fn is_cni_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// A `CNI_CONTAINERID` that follows the spec's rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContainerId(String);

impl ContainerId {
    /// The ID, or why it is not one.
    pub fn parse(text: &str) -> Result<ContainerId, String> {
        if is_cni_name(text) {
            Ok(ContainerId(text.to_string()))
        } else {
            Err(format!(
                "CNI_CONTAINERID {text:?} must start with a letter or digit, followed by \
                 letters, digits, '_', '.' or '-'"
            ))
        }
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Linux interface name (`CNI_IFNAME`): 1 to 15 bytes, not `.` or `..`, without
/// `/`, `:` or whitespace (the kernel's `dev_valid_name`, as libcni checks it).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IfName(String);

/// The longest interface name the kernel takes (IFNAMSIZ - 1).
pub const MAX_IFNAME_LEN: usize = 15;

impl IfName {
    /// The name, or why it is not one.
    pub fn parse(text: &str) -> Result<IfName, String> {
        let problem = if text.is_empty() {
            Some("is empty".to_string())
        } else if text.len() > MAX_IFNAME_LEN {
            Some(format!("is longer than {MAX_IFNAME_LEN} bytes"))
        } else if text == "." || text == ".." {
            Some("is . or ..".to_string())
        } else if text
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace())
        {
            Some("contains '/', ':' or whitespace".to_string())
        } else {
            None
        };
        match problem {
            Some(problem) => Err(format!("CNI_IFNAME {text:?} {problem}")),
            None => Ok(IfName(text.to_string())),
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `CNI_ARGS`: `K=V;K2=V2`, as libcni's `LoadArgs` reads it.
///
/// Shoal knows `IgnoreUnknown` and `IP` (CONVENTIONS.md), `MAC` (the reference
/// plugins' and podman's `--mac-address`) and `K8S_POD_NAME` (podman's container name,
/// which its dnsname plugin serves); any other key is an error unless `IgnoreUnknown`
/// is true (runtimes such as the kubelet set it, since they pass `K8S_POD_*` to every
/// plugin). The others are kept for the driver to log or use.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CniArgs {
    /// `IP=<ip>[/<prefix>]`: an address the runtime asks for.
    pub ip: Option<RequestedIp>,
    /// `MAC=<mac>`: the interface's address.
    pub mac: Option<MacAddr>,
    /// `K8S_POD_NAME`: the container's name, a DNS name on the network.
    pub pod_name: Option<String>,
    /// Every other pair, in order.
    pub other: Vec<(String, String)>,
}

impl CniArgs {
    /// Parses the variable; errors name CNI_ARGS and the bad pair.
    pub fn parse(text: &str) -> Result<CniArgs, String> {
        let mut args = CniArgs::default();
        if text.is_empty() {
            return Ok(args);
        }
        let mut ignore_unknown = false;
        for pair in text.split(';') {
            let (key, value) = match pair.split('=').collect::<Vec<_>>()[..] {
                [key, value] if !key.is_empty() => (key, value),
                _ => return Err(format!("CNI_ARGS pair {pair:?} is not KEY=VALUE")),
            };
            match key {
                "IgnoreUnknown" => {
                    ignore_unknown = match value.to_ascii_lowercase().as_str() {
                        "1" | "true" => true,
                        "0" | "false" => false,
                        _ => {
                            return Err(format!(
                                "CNI_ARGS IgnoreUnknown={value:?} is not a boolean"
                            ))
                        }
                    }
                }
                "IP" => {
                    let ip = RequestedIp::parse(value)
                        .map_err(|problem| format!("CNI_ARGS IP={value:?}: {problem}"))?;
                    args.ip = Some(ip);
                }
                "MAC" => {
                    let mac = MacAddr::parse(value)
                        .map_err(|problem| format!("CNI_ARGS MAC={value:?}: {problem}"))?;
                    args.mac = Some(mac);
                }
                "K8S_POD_NAME" => {
                    args.pod_name = Some(value.to_string()).filter(|v| !v.is_empty());
                }
                _ => args.other.push((key.to_string(), value.to_string())),
            }
        }
        if !ignore_unknown && !args.other.is_empty() {
            let keys: Vec<&str> = args.other.iter().map(|(k, _)| k.as_str()).collect();
            return Err(format!(
                "CNI_ARGS has keys shoal does not know ({}); add IgnoreUnknown=1 to pass them anyway",
                keys.join(", ")
            ));
        }
        Ok(args)
    }
}

/// What identifies one attachment: `(CNI_CONTAINERID, CNI_IFNAME)`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AttachmentKey {
    /// The container.
    pub container_id: ContainerId,
    /// Its interface on this network.
    pub ifname: IfName,
}

impl fmt::Display for AttachmentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.container_id, self.ifname)
    }
}

/// The parameters of ADD, DEL or CHECK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentEnv {
    /// Container and interface.
    pub key: AttachmentKey,
    /// `CNI_NETNS`; always set for ADD and CHECK, maybe not for DEL.
    pub netns: Option<String>,
    /// `CNI_ARGS`.
    pub args: CniArgs,
    /// `CNI_PATH`, split on `:`.
    pub path: Vec<String>,
}

/// A validated environment, one variant per command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// `ADD`.
    Add(AttachmentEnv),
    /// `DEL`.
    Del(AttachmentEnv),
    /// `CHECK`.
    Check(AttachmentEnv),
    /// `STATUS`.
    Status,
    /// `VERSION`.
    Version,
    /// `GC`, with `CNI_PATH`.
    Gc {
        /// `CNI_PATH`, split on `:`.
        path: Vec<String>,
    },
}

impl Invocation {
    /// The command.
    pub fn command(&self) -> CniCommand {
        match self {
            Invocation::Add(_) => CniCommand::Add,
            Invocation::Del(_) => CniCommand::Del,
            Invocation::Check(_) => CniCommand::Check,
            Invocation::Status => CniCommand::Status,
            Invocation::Version => CniCommand::Version,
            Invocation::Gc { .. } => CniCommand::Gc,
        }
    }

    /// Reads the CNI_* variables; one code-4 error names every bad one.
    pub fn from_env(vars: &BTreeMap<String, String>) -> Result<Invocation, CniError> {
        let get = |name: &str| vars.get(name).map(String::as_str).filter(|v| !v.is_empty());
        let mut bad = Problems::default();
        let command = match get("CNI_COMMAND") {
            None => {
                bad.add("CNI_COMMAND", "CNI_COMMAND is not set".into());
                return Err(bad.into_error());
            }
            Some(text) => {
                match CniCommand::parse(text) {
                    Some(command) => command,
                    None => {
                        bad.add(
                        "CNI_COMMAND",
                        format!("CNI_COMMAND {text:?} is none of ADD, DEL, CHECK, STATUS, VERSION, GC"),
                    );
                        return Err(bad.into_error());
                    }
                }
            }
        };
        let path = || get("CNI_PATH").map(split_path).unwrap_or_default();
        match command {
            CniCommand::Version => Ok(Invocation::Version),
            CniCommand::Status => Ok(Invocation::Status),
            CniCommand::Gc => match get("CNI_PATH") {
                Some(_) => Ok(Invocation::Gc { path: path() }),
                None => {
                    bad.add("CNI_PATH", "CNI_PATH is required for GC".into());
                    Err(bad.into_error())
                }
            },
            CniCommand::Add | CniCommand::Del | CniCommand::Check => {
                let container_id = bad.required(
                    get("CNI_CONTAINERID"),
                    "CNI_CONTAINERID",
                    command,
                    ContainerId::parse,
                );
                let ifname = bad.required(get("CNI_IFNAME"), "CNI_IFNAME", command, IfName::parse);
                let netns = get("CNI_NETNS").map(str::to_string);
                if netns.is_none() && command != CniCommand::Del {
                    bad.add(
                        "CNI_NETNS",
                        format!("CNI_NETNS is required for {}", command.as_str()),
                    );
                }
                let args = match CniArgs::parse(get("CNI_ARGS").unwrap_or_default()) {
                    Ok(args) => args,
                    Err(problem) => {
                        bad.add("CNI_ARGS", problem);
                        CniArgs::default()
                    }
                };
                let (Some(container_id), Some(ifname), true) =
                    (container_id, ifname, bad.names.is_empty())
                else {
                    return Err(bad.into_error());
                };
                let env = AttachmentEnv {
                    key: AttachmentKey {
                        container_id,
                        ifname,
                    },
                    netns,
                    args,
                    path: path(),
                };
                Ok(match command {
                    CniCommand::Add => Invocation::Add(env),
                    CniCommand::Del => Invocation::Del(env),
                    _ => Invocation::Check(env),
                })
            }
        }
    }
}

fn split_path(text: &str) -> Vec<String> {
    text.split(':')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// The bad variables found so far, for one error naming them all.
#[derive(Default)]
struct Problems {
    names: Vec<&'static str>,
    lines: Vec<String>,
}

impl Problems {
    fn add(&mut self, name: &'static str, line: String) {
        self.names.push(name);
        self.lines.push(line);
    }

    fn required<T>(
        &mut self,
        value: Option<&str>,
        name: &'static str,
        command: CniCommand,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        match value.map(parse) {
            Some(Ok(v)) => Some(v),
            Some(Err(problem)) => {
                self.add(name, problem);
                None
            }
            None => {
                self.add(name, format!("{name} is required for {}", command.as_str()));
                None
            }
        }
    }

    fn into_error(self) -> CniError {
        CniError::InvalidEnvironment {
            names: self.names,
            details: self.lines.join("; "),
        }
    }
}

#[cfg(test)]
mod tests;

//! Why a command was refused by the state machine ([`ApplyError`]), and why a value
//! given for a spec — a CLI flag, an API body, a certificate's subject — could not be
//! read ([`SpecError`]).

use serde::{Deserialize, Serialize};

/// A command that could not be applied. The state is unchanged when this is returned.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum ApplyError {
    /// Every command but `Bootstrap` needs an initialised cluster.
    #[error("the cluster is not initialised: run `shoal cluster init` on the first manager")]
    NotInitialised,
    /// `Bootstrap` on a cluster that exists.
    #[error("the cluster is already initialised (cluster {0})")]
    AlreadyInitialised(String),
    /// A node reference matched nothing.
    #[error("no such node: {0}")]
    NoSuchNode(String),
    /// A network reference matched nothing.
    #[error("no such network: {0}")]
    NoSuchNetwork(String),
    /// A service reference matched nothing.
    #[error("no such service: {0}")]
    NoSuchService(String),
    /// Something with that name exists already.
    #[error("{0}")]
    Conflict(String),
    /// A node name is in use by another node.
    #[error("a node named {name:?} is already in the cluster ({id}); remove it first with `shoal node rm {name}`")]
    NodeNameTaken {
        /// The name asked for.
        name: String,
        /// The node that has it.
        id: String,
    },
    /// The change would leave the cluster without a manager.
    #[error("{0} is the last manager; a cluster needs at least one manager")]
    LastManager(String),
    /// Managers must be demoted before removal.
    #[error("{0} is a manager; demote it first with `shoal node demote {0}` (or use --force)")]
    IsManager(String),
    /// A removed node cannot come back under the same ID.
    #[error("node {0} was removed from the cluster; it must leave and join again")]
    Removed(String),
    /// The command is malformed or contradicts the state.
    #[error("{0}")]
    Invalid(String),
}

impl ApplyError {
    /// The HTTP status that fits the error.
    pub fn http_status(&self) -> u16 {
        match self {
            ApplyError::NoSuchNode(_)
            | ApplyError::NoSuchNetwork(_)
            | ApplyError::NoSuchService(_) => 404,
            ApplyError::Conflict(_) => 409,
            ApplyError::NotInitialised
            | ApplyError::AlreadyInitialised(_)
            | ApplyError::NodeNameTaken { .. }
            | ApplyError::LastManager(_)
            | ApplyError::IsManager(_)
            | ApplyError::Removed(_) => 409,
            ApplyError::Invalid(_) => 400,
        }
    }
}

/// A value that could not be read into a spec type (a name, a role, a `--publish`,
/// `--network`, `--constraint` or `--placement-pref` value, a `--hostname` template).
/// The message quotes the input and says what would be accepted.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// A node, network or service name breaks the naming rule.
    #[error("invalid {kind} name {name:?}: use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit")]
    InvalidName {
        /// What was being named: `node`, `network`, `service`.
        kind: &'static str,
        /// The name as given.
        name: String,
    },
    /// Not 16 hex digits.
    #[error("{0:?} is not a node ID (16 hex digits)")]
    NotNodeId(String),
    /// A role other than `manager` or `worker`.
    #[error("unknown role {0:?}: use manager or worker")]
    UnknownRole(String),
    /// An availability other than `active`, `pause` or `drain`.
    #[error("unknown availability {0:?}: use active, pause or drain")]
    UnknownAvailability(String),
    /// A `--hostname` template that is empty or too long.
    #[error("a hostname template has 1-256 characters")]
    HostnameTemplateLength,
    /// A `--hostname` template with an unknown placeholder, an unbalanced brace or a
    /// character no host name may hold.
    #[error("hostname template {template:?}: {reason}")]
    HostnameTemplate {
        /// The template as given.
        template: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A template filled in for one task gave no valid host name.
    #[error("expanding hostname failed: {0:?} is not a host name of 1-{max} letters, digits, '-', '_' and '.'", max = super::hostname::MAX_HOSTNAME_LEN)]
    NotAHostname(String),
    /// A `--constraint` that has no operator, an unknown key or a value the key
    /// cannot take.
    #[error("constraint {constraint:?}: {reason}")]
    Constraint {
        /// The constraint as given.
        constraint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `--placement-pref` without `=`.
    #[error("placement preference {0:?} must be of the format \"<strategy>=<arg>\"")]
    PreferenceFormat(String),
    /// A placement strategy other than `spread`.
    #[error("unsupported placement preference {0} (only spread is supported)")]
    UnsupportedPreference(String),
    /// `spread=` with something other than `node.labels.<name>`.
    #[error("placement preference {0:?}: spread takes node.labels.<name>")]
    SpreadArgument(String),
    /// A `--publish` value that is not a port specification.
    #[error("--publish {spec:?}: {reason}; use [mode=host,][PUBLISHED:]TARGET[/tcp|/udp] or published=P,target=T,protocol=tcp|udp,mode=ingress|host")]
    Publish {
        /// The value as given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `--publish` value that names several ports where one is wanted.
    #[error("--publish {0:?}: give one port here, not a range")]
    PublishRange(String),
    /// A `--network` value that is not a network name or `name=N[,alias=A]...`.
    #[error("--network {spec:?}: {reason}")]
    Network {
        /// The value as given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `--update-*`, `--health-*` or duration value that does not read; the message
    /// quotes it and says what is accepted.
    #[error("{0}")]
    Invalid(String),
}

impl From<SpecError> for ApplyError {
    fn from(e: SpecError) -> ApplyError {
        ApplyError::Invalid(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use crate::ids::{validate_name, NodeId};
    use crate::state::{Constraint, NetworkAttachment, PortSpec, Role, Spread};

    /// The messages operators saw when these were plain strings.
    #[test]
    fn spec_errors_quote_the_input_and_say_what_is_accepted() {
        let cases = [
            (
                validate_name("network", "-x").unwrap_err(),
                "invalid network name \"-x\": use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit",
            ),
            (
                "xyz".parse::<NodeId>().unwrap_err(),
                "\"xyz\" is not a node ID (16 hex digits)",
            ),
            (
                Role::parse("boss").unwrap_err(),
                "unknown role \"boss\": use manager or worker",
            ),
            (
                Constraint::parse("node.role=manager").unwrap_err(),
                "constraint \"node.role=manager\": constraint expected one operator from ==, !=",
            ),
            (
                Spread::parse("spread").unwrap_err(),
                "placement preference \"spread\" must be of the format \"<strategy>=<arg>\"",
            ),
            (
                PortSpec::parse("8080-8081:80-81").unwrap_err(),
                "--publish \"8080-8081:80-81\": give one port here, not a range",
            ),
            (
                PortSpec::parse_all("x:80").unwrap_err(),
                "--publish \"x:80\": invalid hostPort: x; use [mode=host,][PUBLISHED:]TARGET[/tcp|/udp] or published=P,target=T,protocol=tcp|udp,mode=ingress|host",
            ),
            (
                NetworkAttachment::parse("alias=a").unwrap_err(),
                "--network \"alias=a\": network name/id is not specified",
            ),
        ];
        for (err, message) in cases {
            assert_eq!(err.to_string(), message);
        }
    }
}

//! Why a command was refused by the state machine.

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

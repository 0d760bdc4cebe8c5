//! Identifiers of cluster objects.
//!
//! A node ID is a random non-zero 64-bit number chosen by the leader when the node joins;
//! it doubles as the node's Raft ID. It is shown as 16 hex digits, and users may name a
//! node by its name, its full ID or a unique prefix of the ID (like Docker).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::state::SpecError;

/// The identity of a node, also its Raft node ID.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub u64);

impl NodeId {
    /// A fresh random ID, never zero and never one of `taken`.
    pub fn random(taken: impl Fn(NodeId) -> bool) -> NodeId {
        loop {
            let id = NodeId(rand::random::<u64>());
            if id.0 != 0 && !taken(id) {
                return id;
            }
        }
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({self})")
    }
}

impl FromStr for NodeId {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let not_an_id = || SpecError::NotNodeId(s.to_string());
        if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(not_an_id());
        }
        u64::from_str_radix(s, 16)
            .map(NodeId)
            .map_err(|_| not_an_id())
    }
}

/// Checks a user-chosen object name (node, network, service): 1–63 characters of
/// letters, digits, `.`, `_` and `-`, starting with a letter or digit.
pub fn validate_name(kind: &'static str, name: &str) -> Result<(), SpecError> {
    let ok_first = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    let ok_rest = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if name.is_empty() || name.len() > 63 || !ok_first || !ok_rest {
        return Err(SpecError::InvalidName {
            kind,
            name: name.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_id_round_trips_through_hex() {
        let id = NodeId(0x00ab_cdef_0123_4567);
        assert_eq!(id.to_string(), "00abcdef01234567");
        assert_eq!("00abcdef01234567".parse::<NodeId>().unwrap(), id);
    }

    #[test]
    fn node_id_rejects_non_hex_and_wrong_length() {
        assert!("xyz".parse::<NodeId>().is_err());
        assert!("00abcdef0123456".parse::<NodeId>().is_err());
        assert!("00abcdef0123456g".parse::<NodeId>().is_err());
    }

    #[test]
    fn random_ids_avoid_taken_and_zero() {
        let id = NodeId::random(|id| id.0 % 2 == 0);
        assert_eq!(id.0 % 2, 1);
    }

    #[test]
    fn names_are_validated() {
        assert!(validate_name("node", "n1").is_ok());
        assert!(validate_name("node", "web.prod_1-a").is_ok());
        assert!(validate_name("node", "").is_err());
        assert!(validate_name("node", "-x").is_err());
        assert!(validate_name("node", "a b").is_err());
        assert!(validate_name("node", &"a".repeat(64)).is_err());
    }
}

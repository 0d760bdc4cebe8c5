//! Where a service's tasks may run: constraints, spread preferences and a per-node
//! cap, as Docker Swarm spells them (`--constraint`, `--placement-pref`,
//! `--replicas-max-per-node`).
//!
//! ```text
//!  "node.labels.zone==east" ──parse──▶ Constraint { key: Label("zone"), op: Eq, value }
//!                                        │ matches(node) ─▶ bool (values case-folded)
//!  "spread=node.labels.zone" ──parse──▶ Spread { label: "zone" }
//!                                        │ value_of(node) ─▶ "" when the node lacks it
//! ```
//! Matching follows swarmkit's `manager/constraint`: keys and values compare without
//! regard to case, label names with it; a label a node does not have is the empty
//! string, so `==` fails and `!=` holds. Unlike swarmkit, an unknown key is refused
//! when the service is created rather than matching no node forever.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{Node, SpecError};

/// The placement of a service's tasks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Placement {
    /// Every one must hold on a node for a task to be placed there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<Constraint>,
    /// Spread tasks evenly over the values of these node labels, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preferences: Vec<Spread>,
    /// At most this many tasks of the service on one node (replicated services).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replicas_per_node: Option<u32>,
}

impl Placement {
    /// Whether nothing restricts placement.
    pub fn is_empty(&self) -> bool {
        *self == Placement::default()
    }

    /// Whether `node` satisfies every constraint.
    pub fn allows(&self, node: &Node) -> bool {
        self.constraints.iter().all(|c| c.matches(node))
    }
}

/// `==` or `!=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConstraintOp {
    /// The node's value equals the constraint's.
    Eq,
    /// It does not.
    Neq,
}

/// What a constraint looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConstraintKey {
    /// `node.id`: the node's ID (a prefix is not enough).
    Id,
    /// `node.hostname`: the node's name.
    Hostname,
    /// `node.role`: `manager` or `worker`.
    Role,
    /// `node.ip`: the node's underlay address, against an address or a CIDR.
    Ip,
    /// `node.platform.os`: always `linux` for a shoal node.
    Os,
    /// `node.platform.arch`: the machine architecture the node reports (`x86_64`).
    Arch,
    /// `node.labels.<name>`: an operator label (`node update --label-add`).
    Label(String),
}

/// One `--constraint`, e.g. `node.role==manager`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Constraint {
    /// What is compared.
    pub key: ConstraintKey,
    /// How.
    pub op: ConstraintOp,
    /// With what (as given).
    pub value: String,
}

/// The keys a constraint may use, for error messages.
const KEYS: &str = "node.id, node.hostname, node.role, node.ip, node.platform.os, node.platform.arch, node.labels.<name>";

impl Constraint {
    /// Parses `KEY==VALUE` or `KEY!=VALUE` (spaces around each side allowed).
    pub fn parse(s: &str) -> Result<Constraint, SpecError> {
        let bad = |reason: String| SpecError::Constraint {
            constraint: s.to_string(),
            reason,
        };
        let (op, (key, value)) = if let Some(parts) = s.split_once("==") {
            (ConstraintOp::Eq, parts)
        } else if let Some(parts) = s.split_once("!=") {
            (ConstraintOp::Neq, parts)
        } else {
            return Err(bad("constraint expected one operator from ==, !=".into()));
        };
        let (key, value) = (key.trim(), value.trim());
        let valid_value = !value.is_empty()
            && value.len() <= 1024
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == ' ' || ":-_.*()?+[]\\^$|/".contains(c));
        if !valid_value {
            return Err(bad(format!("value '{value}' is invalid")));
        }
        let lower = key.to_ascii_lowercase();
        let key = match lower.as_str() {
            "node.id" => ConstraintKey::Id,
            "node.hostname" => ConstraintKey::Hostname,
            "node.role" => ConstraintKey::Role,
            "node.ip" => ConstraintKey::Ip,
            "node.platform.os" => ConstraintKey::Os,
            "node.platform.arch" => ConstraintKey::Arch,
            _ if lower.starts_with("node.labels.") && key.len() > "node.labels.".len() => {
                // The label's own name keeps its case, as in swarmkit.
                ConstraintKey::Label(key["node.labels.".len()..].to_string())
            }
            _ if lower.starts_with("engine.labels.") => {
                return Err(bad(
                    "shoal nodes have no engine labels; label nodes with `shoal node update --label-add` and use node.labels.<name>".into()
                ))
            }
            _ => {
                return Err(bad(format!("key '{key}' is invalid; use one of {KEYS}")))
            }
        };
        if key == ConstraintKey::Role
            && !matches!(value.to_ascii_lowercase().as_str(), "manager" | "worker")
        {
            return Err(bad(format!(
                "node.role is manager or worker, not {value:?}"
            )));
        }
        if key == ConstraintKey::Ip
            && value.parse::<IpAddr>().is_err()
            && value.parse::<IpNet>().is_err()
        {
            return Err(bad(format!(
                "node.ip takes an address or a CIDR, not {value:?}"
            )));
        }
        Ok(Constraint {
            key,
            op,
            value: value.to_string(),
        })
    }

    /// Whether `node` satisfies the constraint.
    pub fn matches(&self, node: &Node) -> bool {
        let same = |have: &str| have.eq_ignore_ascii_case(&self.value);
        let equal = match &self.key {
            ConstraintKey::Id => same(&node.id.to_string()),
            ConstraintKey::Hostname => same(&node.name),
            ConstraintKey::Role => same(node.role.as_str()),
            ConstraintKey::Os => same("linux"),
            ConstraintKey::Arch => same(&node.report.arch),
            ConstraintKey::Label(l) => same(node.labels.get(l).map_or("", String::as_str)),
            ConstraintKey::Ip => match self.value.parse::<IpNet>() {
                Ok(net) => net.contains(&node.addr),
                Err(_) => self.value.parse::<IpAddr>() == Ok(node.addr),
            },
        };
        match self.op {
            ConstraintOp::Eq => equal,
            ConstraintOp::Neq => !equal,
        }
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = match &self.key {
            ConstraintKey::Id => "node.id".to_string(),
            ConstraintKey::Hostname => "node.hostname".into(),
            ConstraintKey::Role => "node.role".into(),
            ConstraintKey::Ip => "node.ip".into(),
            ConstraintKey::Os => "node.platform.os".into(),
            ConstraintKey::Arch => "node.platform.arch".into(),
            ConstraintKey::Label(l) => format!("node.labels.{l}"),
        };
        let op = match self.op {
            ConstraintOp::Eq => "==",
            ConstraintOp::Neq => "!=",
        };
        write!(f, "{key}{op}{}", self.value)
    }
}

impl TryFrom<String> for Constraint {
    type Error = SpecError;
    fn try_from(s: String) -> Result<Self, SpecError> {
        Constraint::parse(&s)
    }
}

impl From<Constraint> for String {
    fn from(c: Constraint) -> String {
        c.to_string()
    }
}

/// One `--placement-pref spread=node.labels.<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Spread {
    /// The node label whose values tasks spread over.
    pub label: String,
}

impl Spread {
    /// Parses `spread=node.labels.<name>`.
    pub fn parse(s: &str) -> Result<Spread, SpecError> {
        let Some((strategy, arg)) = s.split_once('=') else {
            return Err(SpecError::PreferenceFormat(s.to_string()));
        };
        if !strategy.eq_ignore_ascii_case("spread") {
            return Err(SpecError::UnsupportedPreference(strategy.to_string()));
        }
        let lower = arg.to_ascii_lowercase();
        match lower.strip_prefix("node.labels.") {
            Some(rest) if !rest.is_empty() && arg.len() <= 140 => Ok(Spread {
                label: arg["node.labels.".len()..].to_string(),
            }),
            _ => Err(SpecError::SpreadArgument(s.to_string())),
        }
    }

    /// The group `node` belongs to: its value of the label, empty when it has none
    /// (nodes without the label form one group of their own, as in Swarm).
    pub fn value_of<'n>(&self, node: &'n Node) -> &'n str {
        node.labels.get(&self.label).map_or("", String::as_str)
    }
}

impl fmt::Display for Spread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "spread=node.labels.{}", self.label)
    }
}

impl TryFrom<String> for Spread {
    type Error = SpecError;
    fn try_from(s: String) -> Result<Self, SpecError> {
        Spread::parse(&s)
    }
}

impl From<Spread> for String {
    fn from(s: Spread) -> String {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::NodeId;
    use crate::state::Role;

    fn node(name: &str, role: Role, labels: &[(&str, &str)]) -> Node {
        Node {
            id: NodeId(0xabcd),
            name: name.into(),
            addr: "198.18.0.7".parse().unwrap(),
            ..crate::state::fixtures::node(7, role, labels)
        }
    }

    fn holds(c: &str, n: &Node) -> bool {
        Constraint::parse(c).unwrap().matches(n)
    }

    /// swarmkit manager/constraint/constraint_test.go: TestMatch and the docs'
    /// examples (`node.role==manager`, `node.labels.type==queue`).
    #[test]
    fn constraints_match_as_in_swarmkit() {
        let m = node("n1", Role::Manager, &[("zone", "East"), ("Type", "queue")]);
        assert!(holds("node.role==manager", &m));
        assert!(holds("node.role == MANAGER", &m), "values fold case");
        assert!(holds("NODE.ROLE==manager", &m), "keys fold case");
        assert!(!holds("node.role!=manager", &m));
        assert!(holds("node.hostname==N1", &m));
        assert!(holds("node.id==000000000000abcd", &m));
        assert!(holds("node.labels.zone==east", &m));
        assert!(
            !holds("node.labels.ZONE==east", &m),
            "label names keep case"
        );
        assert!(holds("node.labels.Type==queue", &m));
        // A label the node lacks is empty: == fails, != holds.
        assert!(!holds("node.labels.disk==ssd", &m));
        assert!(holds("node.labels.disk!=ssd", &m));
        assert!(holds("node.platform.os==linux", &m));
        assert!(holds("node.platform.arch==x86_64", &m));
        assert!(holds("node.ip==198.18.0.7", &m));
        assert!(holds("node.ip==198.18.0.0/16", &m));
        assert!(holds("node.ip!=10.0.0.0/8", &m));
    }

    #[test]
    fn malformed_constraints_say_what_is_wrong() {
        let cases = [
            ("node.role", "expected one operator from ==, !="),
            ("node.role=manager", "expected one operator"),
            ("node.foo==x", "key 'node.foo' is invalid"),
            ("node.labels.==x", "key 'node.labels.' is invalid"),
            ("node.role==", "value '' is invalid"),
            ("node.role==boss", "manager or worker"),
            ("node.ip==nowhere", "address or a CIDR"),
            ("engine.labels.a==b", "no engine labels"),
            ("node.hostname==a\"b", "is invalid"),
        ];
        for (c, why) in cases {
            let err = Constraint::parse(c).unwrap_err().to_string();
            assert!(err.contains(why), "{c}: {err}");
        }
    }

    #[test]
    fn constraints_and_preferences_round_trip_through_their_text() {
        for c in [
            "node.role==manager",
            "node.labels.Zone!=a b",
            "node.ip==10.0.0.0/8",
        ] {
            let parsed = Constraint::parse(c).unwrap();
            assert_eq!(Constraint::parse(&parsed.to_string()).unwrap(), parsed);
            let json = serde_json::to_string(&parsed).unwrap();
            assert_eq!(serde_json::from_str::<Constraint>(&json).unwrap(), parsed);
        }
        assert!(serde_json::from_str::<Constraint>("\"node.x==1\"").is_err());
        let s = Spread::parse("spread=node.labels.datacenter").unwrap();
        assert_eq!(s.label, "datacenter");
        assert_eq!(Spread::parse(&s.to_string()).unwrap(), s);
    }

    #[test]
    fn preferences_other_than_spread_over_a_label_are_refused() {
        for (p, why) in [
            ("spread", "<strategy>=<arg>"),
            ("binpack=node.labels.a", "only spread is supported"),
            ("spread=node.id", "node.labels.<name>"),
            ("spread=node.labels.", "node.labels.<name>"),
        ] {
            let err = Spread::parse(p).unwrap_err().to_string();
            assert!(err.contains(why), "{p}: {err}");
        }
        let n = node("n1", Role::Worker, &[("dc", "a")]);
        assert_eq!(
            Spread::parse("spread=node.labels.dc").unwrap().value_of(&n),
            "a"
        );
        assert_eq!(
            Spread::parse("spread=node.labels.rack")
                .unwrap()
                .value_of(&n),
            ""
        );
    }
}

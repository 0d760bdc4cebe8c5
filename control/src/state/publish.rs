//! Published ports: `--publish` as Docker's CLI reads it, and the dynamic range a
//! port without a published number is given one from.
//!
//! ```text
//!  "8080:80/udp"                         ─▶ [8080 → 80 udp ingress]
//!  "80"                                  ─▶ [0 → 80 tcp ingress]   (0: the manager picks)
//!  "8080-8081:80-81"                     ─▶ [8080 → 80, 8081 → 81]
//!  "published=53,target=53,protocol=udp" ─▶ [53 → 53 udp ingress]
//!  "mode=host,8080:80"                   ─▶ [8080 → 80 tcp host]   (shoal's mixed form)
//!  "published=80,target=8080,src=nat"    ─▶ [80 → 8080 tcp ingress, source NAT]
//!  "src=preserve,8080:80"                ─▶ [8080 → 80 tcp ingress, client address kept]
//! ```
//! `src=` is shoal's own: whether a routing-mesh connection reaches the task with the
//! client's address (`preserve`, the default) or the ingress node's (`nat`, what
//! Docker's mesh always does).
//! The rules and messages follow docker/cli's `opts/swarmopts/port.go` (`PortOpt.Set`)
//! and go-connections' `nat.ParsePortSpecs`; shoal publishes TCP and UDP, not SCTP.

use std::fmt;
use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

use super::SpecError;

/// Ports the manager hands out to a port published without a number (swarmkit's
/// `dynamicPortStart`..=`dynamicPortEnd`).
pub const DYNAMIC_PORTS: RangeInclusive<u16> = 30000..=32767;
/// The most ports one `--publish` may expand to.
const MAX_RANGE: usize = 1024;

/// Transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
        }
    }

    /// `tcp` or `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }

    fn parse(s: &str) -> Result<Protocol, String> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            "sctp" => Err("shoal publishes tcp and udp ports, not sctp".into()),
            _ => Err(format!("invalid protocol value '{s}'")),
        }
    }
}

/// Where a published port answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PublishMode {
    /// On every node, reaching a task on any node (the routing mesh).
    Ingress,
    /// Only on nodes that run a task, reaching that task.
    Host,
}

/// Which source address a routing-mesh connection reaches its task with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceMode {
    /// The client's own address and port; replies go back through the ingress node.
    #[default]
    Preserve,
    /// The ingress node's address on the service's network (Docker's routing mesh).
    Nat,
}

impl SourceMode {
    /// `preserve` or `nat`.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceMode::Preserve => "preserve",
            SourceMode::Nat => "nat",
        }
    }

    fn parse(s: &str) -> Result<SourceMode, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "preserve" => Ok(SourceMode::Preserve),
            "nat" => Ok(SourceMode::Nat),
            _ => Err(format!(
                "invalid src value ({s}): must be either 'preserve' (the task sees the client's address) or 'nat' (it sees the ingress node's)"
            )),
        }
    }
}

/// One published port: `--publish [mode=host,]PUBLISHED:TARGET[/tcp|/udp]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSpec {
    /// The port on the nodes. 0 in a request: the manager assigns one from
    /// [`DYNAMIC_PORTS`]; never 0 in the cluster state.
    pub published: u16,
    /// The port of the tasks.
    pub target: u16,
    /// TCP or UDP.
    pub protocol: Protocol,
    /// Ingress (routing mesh) or host.
    pub mode: PublishMode,
    /// Ingress mode: whether tasks see the client's address (specs stored before it
    /// existed read as the default, `preserve`). Always the default in host mode.
    #[serde(default)]
    pub src: SourceMode,
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mode == PublishMode::Host {
            f.write_str("mode=host,")?;
        }
        if self.src == SourceMode::Nat {
            f.write_str("src=nat,")?;
        }
        if self.published != 0 {
            write!(f, "{}:", self.published)?;
        }
        write!(f, "{}/{}", self.target, self.protocol.as_str())
    }
}

impl PortSpec {
    /// How `service ls` and `inspect` show the port: `8080:80/tcp (ingress,
    /// src=preserve)`, `mode=host,8080:80/tcp (host)`.
    pub fn summary(&self) -> String {
        match self.mode {
            PublishMode::Host => format!("{self} (host)"),
            PublishMode::Ingress => {
                let port = if self.published != 0 {
                    format!(
                        "{}:{}/{}",
                        self.published,
                        self.target,
                        self.protocol.as_str()
                    )
                } else {
                    format!("{}/{}", self.target, self.protocol.as_str())
                };
                format!("{port} (ingress, src={})", self.src.as_str())
            }
        }
    }

    /// Whether `add` (from `--publish-add`) is this port again, maybe with another
    /// `src=`: the same target, protocol and mode, and the same published port unless
    /// `add` leaves it to the manager.
    pub fn same_port(&self, add: &PortSpec) -> bool {
        (self.target, self.protocol, self.mode) == (add.target, add.protocol, add.mode)
            && (add.published == 0 || add.published == self.published)
    }

    /// Parses one `--publish` value that names one port (no ranges).
    pub fn parse(s: &str) -> Result<PortSpec, SpecError> {
        match PortSpec::parse_all(s)?.as_slice() {
            [one] => Ok(*one),
            _ => Err(SpecError::PublishRange(s.to_string())),
        }
    }

    /// Parses one `--publish` value: the short form `[PUBLISHED:]TARGET[/PROTO]`
    /// (ranges allowed), the long form `published=,target=,protocol=,mode=`, or both
    /// mixed (`mode=host,8080:80`).
    pub fn parse_all(s: &str) -> Result<Vec<PortSpec>, SpecError> {
        let bad = |reason: String| SpecError::Publish {
            spec: s.to_string(),
            reason,
        };
        let port = |v: &str, what: &str| -> Result<u16, SpecError> {
            v.trim().parse::<u16>().map_err(|_| {
                bad(format!(
                    "invalid {what} port ({v}): value must be an integer from 0 to 65535"
                ))
            })
        };
        let mut mode = PublishMode::Ingress;
        let mut src = None;
        let mut protocol = None;
        let (mut published, mut target) = (None, None);
        let mut short = None;
        for field in s.split(',') {
            match field.split_once('=') {
                Some((key, value)) => match key.trim().to_ascii_lowercase().as_str() {
                    "mode" => {
                        mode = match value.trim().to_ascii_lowercase().as_str() {
                            "ingress" => PublishMode::Ingress,
                            "host" => PublishMode::Host,
                            _ => {
                                return Err(bad(format!(
                                    "invalid publish mode value ({value}): must be either 'ingress' or 'host'"
                                )))
                            }
                        }
                    }
                    "src" if src.is_some() => {
                        return Err(bad("the field 'src' is given twice".into()))
                    }
                    "src" => src = Some(SourceMode::parse(value).map_err(bad)?),
                    "published" => published = Some(port(value, "published")?),
                    "target" => target = Some(port(value, "target")?),
                    "protocol" => protocol = Some(Protocol::parse(value.trim()).map_err(bad)?),
                    other => {
                        return Err(bad(format!(
                            "invalid field key {other} (known keys: mode, published, target, protocol, src)"
                        )))
                    }
                },
                None if short.is_none() && !field.trim().is_empty() => short = Some(field.trim()),
                None => return Err(bad(format!("invalid field {field:?}"))),
            }
        }
        if mode == PublishMode::Host && src.is_some() {
            return Err(bad(
                "src= applies to ports published through the routing mesh (mode=ingress); a host-mode port always keeps the client's address".into(),
            ));
        }
        let src = src.unwrap_or_default();
        let specs = match short {
            Some(short) => {
                if published.is_some() || target.is_some() {
                    return Err(bad(format!(
                        "invalid field {short:?} (give the ports either as PUBLISHED:TARGET or as published=/target=, not both)"
                    )));
                }
                short_form(short, protocol).map_err(bad)?
            }
            None => {
                let target = match target {
                    Some(t) if t > 0 => t,
                    _ => return Err(bad("missing mandatory field 'target'".into())),
                };
                vec![(
                    published.unwrap_or(0),
                    target,
                    protocol.unwrap_or(Protocol::Tcp),
                )]
            }
        };
        Ok(specs
            .into_iter()
            .map(|(published, target, protocol)| PortSpec {
                published,
                target,
                protocol,
                mode,
                src,
            })
            .collect())
    }

    /// Whether `self`, a port to withdraw (`--publish-rm`), names `published`: the same
    /// target, protocol and mode, and the same published port when one is given.
    pub fn names(&self, published: &PortSpec) -> bool {
        self.target == published.target
            && self.protocol == published.protocol
            && self.mode == published.mode
            && (self.published == 0 || self.published == published.published)
    }
}

/// `[PUBLISHED:]TARGET[/PROTO]` with ranges, as (published, target, protocol).
fn short_form(s: &str, given: Option<Protocol>) -> Result<Vec<(u16, u16, Protocol)>, String> {
    let (ports, proto) = match s.rsplit_once('/') {
        Some((ports, proto)) => (ports, Some(Protocol::parse(proto)?)),
        None => (s, None),
    };
    if given.is_some() && proto.is_some() && given != proto {
        return Err("the protocol is given twice, differently".into());
    }
    let protocol = proto.or(given).unwrap_or(Protocol::Tcp);
    let parts: Vec<&str> = ports.split(':').collect();
    let (published, target) = match parts.as_slice() {
        [target] => (None, *target),
        [published, target] => (Some(*published), *target),
        [_, _, _] => return Err("hostip is not supported".into()),
        _ => return Err(format!("invalid port specification {ports:?}")),
    };
    let targets = range(target, "containerPort")?;
    if *targets.start() == 0 {
        return Err(format!("invalid containerPort: {target}"));
    }
    let published = match published {
        None | Some("") => None,
        Some(p) => Some(range(p, "hostPort")?),
    };
    let count = targets.len();
    if count > MAX_RANGE || published.as_ref().is_some_and(|p| p.len() > MAX_RANGE) {
        return Err(format!("at most {MAX_RANGE} ports in one --publish"));
    }
    let out = match published {
        None => targets.map(|t| (0, t, protocol)).collect(),
        Some(p) if p.len() == count => p.zip(targets).map(|(p, t)| (p, t, protocol)).collect(),
        // Many published ports to one target port: one entry each (go-connections).
        Some(p) if count == 1 => p.map(|p| (p, *targets.start(), protocol)).collect(),
        Some(_) => {
            return Err(format!(
                "invalid ranges specified for container and host Ports: {target} and {}",
                parts[0]
            ))
        }
    };
    Ok(out)
}

/// `N` or `N-M` (N ≤ M).
fn range(s: &str, what: &str) -> Result<RangeInclusive<u16>, String> {
    let num = |v: &str| v.parse::<u16>().map_err(|_| format!("invalid {what}: {s}"));
    match s.split_once('-') {
        None => num(s).map(|n| n..=n),
        Some((a, b)) => {
            let (a, b) = (num(a)?, num(b)?);
            if a > b {
                return Err(format!("invalid {what}: {s} (the range runs backwards)"));
            }
            Ok(a..=b)
        }
    }
}

/// A port to stop publishing, as `service update --publish-rm` sent it: a published
/// port number (what older shoal CLIs sent), or a port spec matched by
/// [`PortSpec::names`] (Docker's meaning: by target port).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PortRemoval {
    /// Every port published on this number.
    Published(u16),
    /// The ports this spec names.
    Spec(PortSpec),
}

impl PortRemoval {
    /// Whether this removal takes `port` away.
    pub fn takes(&self, port: &PortSpec) -> bool {
        match self {
            PortRemoval::Published(p) => port.published == *p,
            PortRemoval::Spec(spec) => spec.names(port),
        }
    }
}

impl fmt::Display for PortRemoval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortRemoval::Published(p) => write!(f, "published port {p}"),
            PortRemoval::Spec(spec) => write!(f, "{spec}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> (u16, u16, Protocol, PublishMode) {
        let p = PortSpec::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        (p.published, p.target, p.protocol, p.mode)
    }

    /// docker/cli opts/swarmopts/port_test.go: TestPortOptValidSimpleSyntax.
    #[test]
    fn the_short_form_as_docker_reads_it() {
        use {Protocol::*, PublishMode::*};
        assert_eq!(one("80"), (0, 80, Tcp, Ingress));
        assert_eq!(one("80:8080"), (80, 8080, Tcp, Ingress));
        assert_eq!(one("8080:80/tcp"), (8080, 80, Tcp, Ingress));
        assert_eq!(one("80:8080/udp"), (80, 8080, Udp, Ingress));
        assert_eq!(one("80:8080/UDP"), (80, 8080, Udp, Ingress));
        assert_eq!(one("mode=host,8080:80/udp"), (8080, 80, Udp, Host));
        let range = PortSpec::parse_all("80-81:8080-8081/tcp").unwrap();
        let pairs: Vec<_> = range.iter().map(|p| (p.published, p.target)).collect();
        assert_eq!(pairs, [(80, 8080), (81, 8081)]);
        let fan = PortSpec::parse_all("80-82:8080/udp").unwrap();
        let pairs: Vec<_> = fan.iter().map(|p| (p.published, p.target)).collect();
        assert_eq!(pairs, [(80, 8080), (81, 8080), (82, 8080)]);
        let dynamic = PortSpec::parse_all("80-81").unwrap();
        assert!(dynamic.iter().all(|p| p.published == 0));
        assert_eq!(dynamic.len(), 2);
    }

    /// docker/cli port_test.go: TestPortOptValidComplexSyntax.
    #[test]
    fn the_long_form_as_docker_reads_it() {
        use {Protocol::*, PublishMode::*};
        assert_eq!(one("target=80"), (0, 80, Tcp, Ingress));
        assert_eq!(one("target=80,protocol=tcp"), (0, 80, Tcp, Ingress));
        assert_eq!(
            one("target=80,published=8080,protocol=tcp"),
            (8080, 80, Tcp, Ingress)
        );
        assert_eq!(
            one("published=80,target=8080,protocol=tcp"),
            (80, 8080, Tcp, Ingress)
        );
        assert_eq!(
            one("published=80,target=8080,protocol=udp,mode=host"),
            (80, 8080, Udp, Host)
        );
        assert_eq!(
            one("target=80,published=8080,mode=ingress"),
            (8080, 80, Tcp, Ingress)
        );
        assert_eq!(one("TARGET=80,Protocol=UDP"), (0, 80, Udp, Ingress));
    }

    /// docker/cli port_test.go: TestPortOptInvalidComplexSyntax and
    /// TestPortOptInvalidSimpleSyntax.
    #[test]
    fn invalid_ports_say_what_is_wrong() {
        for (s, why) in [
            ("invalid,target=80", "invalid field"),
            ("invalid=field", "invalid field key invalid"),
            ("invalid=field,target=80", "invalid field key"),
            (
                "target=80,protocol=invalid",
                "invalid protocol value 'invalid'",
            ),
            ("target=invalid", "invalid target port (invalid)"),
            ("published=invalid", "invalid published port (invalid)"),
            (
                "target=80,mode=invalid",
                "must be either 'ingress' or 'host'",
            ),
            ("published=80", "missing mandatory field 'target'"),
            ("9999999", "invalid containerPort: 9999999"),
            ("80/xyz", "invalid protocol value 'xyz'"),
            ("tcp", "invalid containerPort: tcp"),
            ("", "invalid field"),
            ("1.1.1.1:80:80", "hostip is not supported"),
            ("8080:80-81", "invalid ranges specified"),
            ("80:80/sctp", "not sctp"),
            ("82-80:80", "runs backwards"),
            ("0", "invalid containerPort"),
            ("8080:80,9090:90", "invalid field"),
            ("1-2000", "at most 1024"),
        ] {
            let err = PortSpec::parse_all(s).unwrap_err().to_string();
            assert!(err.contains(why), "{s:?}: {err}");
        }
        assert!(PortSpec::parse("80-81")
            .unwrap_err()
            .to_string()
            .contains("not a range"));
    }

    #[test]
    fn ports_print_as_they_parse() {
        for s in [
            "8080:80/tcp",
            "80/udp",
            "mode=host,53:53/udp",
            "src=nat,8080:80/tcp",
        ] {
            assert_eq!(PortSpec::parse(s).unwrap().to_string(), s);
        }
        let summary = |s: &str| PortSpec::parse(s).unwrap().summary();
        assert_eq!(summary("8080:80"), "8080:80/tcp (ingress, src=preserve)");
        assert_eq!(summary("src=nat,53:53/udp"), "53:53/udp (ingress, src=nat)");
        assert_eq!(summary("mode=host,8080:80"), "mode=host,8080:80/tcp (host)");
    }

    /// shoal's `src=`: preserve by default, nat on request, in both forms; refused in
    /// host mode, twice, or with another value.
    #[test]
    fn the_source_mode_is_read_in_both_forms_and_checked() {
        let src = |s: &str| {
            PortSpec::parse(s)
                .unwrap_or_else(|e| panic!("{s}: {e}"))
                .src
        };
        assert_eq!(src("8080:80"), SourceMode::Preserve);
        assert_eq!(
            src("mode=ingress,published=8080,target=80,src=nat"),
            SourceMode::Nat
        );
        assert_eq!(
            src("published=8080,target=80,protocol=udp,src=preserve"),
            SourceMode::Preserve
        );
        assert_eq!(src("src=NAT,8080:80/udp"), SourceMode::Nat);
        let all = PortSpec::parse_all("src=nat,8080-8081:80-81").unwrap();
        assert!(all.iter().all(|p| p.src == SourceMode::Nat));
        for (s, why) in [
            (
                "target=80,src=keep",
                "invalid src value (keep): must be either 'preserve'",
            ),
            ("target=80,src=", "invalid src value ()"),
            (
                "mode=host,target=80,src=nat",
                "src= applies to ports published through the routing mesh",
            ),
            ("src=nat,src=preserve,80", "the field 'src' is given twice"),
            (
                "target=80,source=nat",
                "invalid field key source (known keys: mode, published, target, protocol, src)",
            ),
        ] {
            let err = PortSpec::parse_all(s).unwrap_err().to_string();
            assert!(err.contains(why), "{s:?}: {err}");
        }
    }

    /// Specs stored before `src=` existed read as preserve.
    #[test]
    fn a_port_stored_without_src_reads_as_preserve() {
        let old: PortSpec = serde_json::from_value(serde_json::json!({
            "published": 8080, "target": 80, "protocol": "tcp", "mode": "ingress"
        }))
        .unwrap();
        assert_eq!(old.src, SourceMode::Preserve);
        let json = serde_json::to_value(PortSpec::parse("src=nat,8080:80").unwrap()).unwrap();
        assert_eq!(json["src"], "nat");
    }

    /// docker/cli cli/command/service/update_test.go: TestUpdatePortsRmWithProtocol —
    /// removal goes by target port, protocol and mode.
    #[test]
    fn a_removal_names_ports_by_target_protocol_and_mode() {
        let published = PortSpec::parse("8080:80/tcp").unwrap();
        let take = |s: &str| PortRemoval::Spec(PortSpec::parse(s).unwrap()).takes(&published);
        assert!(take("80"));
        assert!(take("8080:80"));
        assert!(!take("9090:80"), "a published port given must match");
        assert!(!take("80/udp"));
        assert!(!take("mode=host,80"));
        assert!(!take("8080"));
        assert!(PortRemoval::Published(8080).takes(&published));
        let legacy: PortRemoval = serde_json::from_str("8080").unwrap();
        assert_eq!(legacy, PortRemoval::Published(8080));
        let spec: PortRemoval = serde_json::from_value(serde_json::json!({
            "published": 0, "target": 80, "protocol": "tcp", "mode": "ingress"
        }))
        .unwrap();
        assert!(spec.takes(&published));
    }
}

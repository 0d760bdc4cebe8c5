//! Flags of the Docker route provider, shared by `shoal proxy --docker` and
//! `shoal agent --ingress-docker` (Træfik's `providers.docker.*` settings).

use std::net::SocketAddr;

use clap::Args;
use shoal_ingress::config::docker::{DefaultRule, DockerSettings, DEFAULT_RULE};

/// How containers and Swarm services become routes.
#[derive(Debug, Clone, Args)]
pub struct DockerRoutesArgs {
    /// Route containers and Swarm services that lack traefik.enable=true too (Træfik's
    /// exposedByDefault); docker-flow-proxy's com.df.notify=true opts in either way.
    #[arg(long, value_name = "true|false", default_value_t = true, action = clap::ArgAction::Set)]
    pub docker_exposed_by_default: bool,
    /// Reach containers on this Docker network unless their traefik.docker.network label
    /// names another (default: a network this host has an address on, else their only one).
    #[arg(long, value_name = "NETWORK")]
    pub docker_network: Option<String>,
    /// The rule of a router that has none (Træfik's defaultRule); understood:
    /// {{ .Name }}, {{ normalize .Name }}, {{ .ContainerName }},
    /// {{ normalize .ContainerName }}, {{ index .Labels "KEY" }}.
    #[arg(long, value_name = "TEMPLATE", default_value = DEFAULT_RULE)]
    pub docker_default_rule: String,
}

impl DockerRoutesArgs {
    /// The provider's settings, or what is wrong with the flags.
    pub fn settings(&self) -> Result<DockerSettings, String> {
        let default_rule = DefaultRule::parse(&self.docker_default_rule)
            .map_err(|e| format!("--docker-default-rule: {e}"))?;
        if self.docker_network.as_deref() == Some("") {
            return Err("--docker-network: empty network name".into());
        }
        Ok(DockerSettings {
            exposed_by_default: self.docker_exposed_by_default,
            network: self.docker_network.clone(),
            default_rule,
            local_networks: Vec::new(),
        })
    }
}

/// The daemon `--docker` names: its value, else DOCKER_HOST, else Docker's default
/// socket (as Træfik's client does).
pub fn docker_endpoint(value: &str) -> String {
    if !value.is_empty() {
        return value.to_string();
    }
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string())
}

/// `NAME=IP:PORT` of `--entrypoint`.
pub fn parse_entrypoint(s: &str) -> Result<(String, SocketAddr), String> {
    let (name, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=IP:PORT, e.g. web=0.0.0.0:80; got {s:?}"))?;
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b));
    if !ok {
        return Err(format!(
            "entrypoint name {name:?}: letters, digits, `_-` only"
        ));
    }
    let addr = shoal_ingress::proxy::listen::parse_address(addr).ok_or_else(|| {
        format!("entrypoint {name}: {addr:?} is not IP:PORT, [IPv6]:PORT or :PORT")
    })?;
    Ok((name.to_string(), addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entrypoints_and_endpoints() {
        assert_eq!(
            parse_entrypoint("web=127.0.0.1:8080").unwrap(),
            ("web".to_string(), "127.0.0.1:8080".parse().unwrap())
        );
        assert!(parse_entrypoint("web")
            .unwrap_err()
            .contains("NAME=IP:PORT"));
        assert!(parse_entrypoint("w b=1.2.3.4:1").is_err());
        assert!(parse_entrypoint("web=localhost:80")
            .unwrap_err()
            .contains("not IP:PORT"));
        assert_eq!(docker_endpoint("unix:///x.sock"), "unix:///x.sock");
    }

    #[test]
    fn a_bad_default_rule_names_the_flag() {
        let args = DockerRoutesArgs {
            docker_exposed_by_default: true,
            docker_network: None,
            docker_default_rule: "Host(`{{ .Toto }}`)".into(),
        };
        assert!(args
            .settings()
            .unwrap_err()
            .starts_with("--docker-default-rule: default rule"));
    }
}

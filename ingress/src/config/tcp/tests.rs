use std::collections::BTreeMap;
use std::net::IpAddr;

use super::*;
use crate::config::{from_labels, ProxyConfig};

const FILE: &str = r#"
[entrypoints.web]
address = "127.0.0.1:80"

[tcp.entrypoints.postgres]
address = "127.0.0.1:5432"
tls = { certificates = [{ cert_file = "db.crt", key_file = "db.key" }] }

[tcp.entrypoints.raw]
address = "127.0.0.1:6379"

[tcp.routers.db]
rule = "HostSNI(`db.example.com`)"
entrypoints = ["postgres"]
service = "db"
tls = { passthrough = true }

[tcp.routers.db-terminated]
rule = "HostSNI(`plain.example.com`)"
service = "db"
priority = 7
tls = true

[tcp.routers.redis]
rule = "HostSNI(`*`)"
entrypoints = ["raw"]
service = "redis"

[tcp.services.db]
servers = [{ address = "10.0.0.5:5432" }, { address = "10.0.0.6:5432", weight = 2 }]

[tcp.services.redis]
servers = [{ address = "10.0.0.7:6379" }]
"#;

fn err(toml: &str) -> String {
    ProxyConfig::from_toml(toml, "f.toml")
        .unwrap_err()
        .to_string()
}

#[test]
fn the_file_defines_tcp_entrypoints_routers_and_services() {
    let c = ProxyConfig::from_toml(FILE, "f.toml").unwrap();
    assert_eq!(c.entrypoints.len(), 1);
    assert_eq!(c.tcp_entrypoints.len(), 2);
    assert_eq!(c.tcp_entrypoints["postgres"].certificates.len(), 1);
    let tcp = &c.routes.tcp;
    let db = &tcp.routers["db"];
    assert_eq!(db.tls, TlsMode::Passthrough);
    assert_eq!(db.entrypoints, vec!["postgres"]);
    assert_eq!(db.priority, "HostSNI(`db.example.com`)".len() as i64);
    assert_eq!(tcp.routers["db-terminated"].tls, TlsMode::Terminate);
    assert_eq!(tcp.routers["db-terminated"].priority, 7);
    let redis = &tcp.routers["redis"];
    assert_eq!((redis.tls, redis.priority), (TlsMode::Off, -1));
    assert_eq!(tcp.services["db"].servers[1].weight, 2);
    assert_eq!(tcp.services["redis"].servers[0].addr.port(), 6379);
}

#[test]
fn file_errors_name_the_path() {
    let base = "[tcp.services.s]\nservers = [{ address = \"10.0.0.1:1\" }]\n[tcp.routers.r]\nservice = \"s\"\n";
    for (extra, expected) in [
        (
            "rule = \"HostSNI(`a.test`)\"\n",
            "tcp.routers.r.rule: HostSNI names a server",
        ),
        (
            "rule = \"HostSNI(`*`) &&\"\n",
            "tcp.routers.r.rule: at 15: expected a matcher",
        ),
        (
            "rule = \"HostSNI(`*`)\"\ntls = 1\n",
            "tcp.routers.r.tls: expected true, false",
        ),
        (
            "rule = \"HostSNI(`*`)\"\ntls = { options = \"x\" }\n",
            "tcp.routers.r.tls.options: unknown TLS setting",
        ),
        (
            "rule = \"HostSNI(`*`)\"\ntls = { passthrough = \"yes\" }\n",
            "tcp.routers.r.tls.passthrough: must be true or false",
        ),
        (
            "rule = \"HostSNI(`a.test`)\"\ntls = true\n",
            "tcp.routers.r.tls: terminating TLS needs certificates",
        ),
        (
            "rule = \"HostSNI(`*`)\"\nentrypoints = [\"nope\"]\n",
            "tcp.routers.r.entrypoints: unknown TCP entrypoint `nope`",
        ),
        (
            "rule = \"HostSNI(`*`)\"\ncolour = 1\n",
            "unknown field `colour`",
        ),
    ] {
        let e = err(&format!("{base}{extra}"));
        assert!(e.contains(expected), "{extra}: {e}");
    }
    let e = err("[tcp.routers.r]\nrule = \"HostSNI(`*`)\"\nservice = \"nope\"\n");
    assert_eq!(e, "tcp.routers.r.service: unknown TCP service `nope`");
    let e = err("[tcp.services.s]\nservers = [{ address = \"db:5432\" }]\n");
    assert!(
        e.contains("tcp.services.s.servers[0].address: `db:5432` is not IP:PORT"),
        "{e}"
    );
    let e = err("[tcp.services.s]\nservers = [{ address = \"10.0.0.1:1\" }, { address = \"10.0.0.1:1\" }]\n");
    assert!(e.contains("is listed twice"), "{e}");
    let e = err("[entrypoints.a]\naddress = \"127.0.0.1:1\"\n[tcp.entrypoints.a]\naddress = \"127.0.0.1:2\"\n");
    assert_eq!(e, "tcp.entrypoints.a: an HTTP entrypoint has this name");
    let e = err("[tcp.entrypoints.a]\naddress = \"nowhere\"\n");
    assert_eq!(
        e,
        "tcp.entrypoints.a.address: `nowhere` is not IP:PORT, [IPv6]:PORT or :PORT"
    );
    let e = err("[tcp.udp]\n");
    assert!(e.contains("unknown field `udp`"), "{e}");
}

fn labels(pairs: &[(&str, &str)]) -> Result<crate::config::Routes, String> {
    let map: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let backends: Vec<IpAddr> = vec!["10.0.0.5".parse().unwrap(), "10.0.0.6".parse().unwrap()];
    from_labels("pg", &map, &backends).map_err(|e| e.to_string())
}

#[test]
fn labels_define_tcp_routers_and_services() {
    let r = labels(&[
        ("traefik.tcp.routers.db.rule", "HostSNI(`db.test`)"),
        ("traefik.tcp.routers.db.entryPoints", "postgres, other"),
        ("traefik.tcp.routers.db.tls.passthrough", "true"),
        ("traefik.tcp.routers.db.priority", "42"),
        (
            "traefik.tcp.services.pgsvc.loadBalancer.server.port",
            "5432",
        ),
        ("shoal.tcp.routers.all.rule", "HostSNI(`*`)"),
        ("shoal.tcp.routers.all.tls", "true"),
        ("shoal.tcp.routers.all.tls.certresolver", "le"),
    ])
    .unwrap();
    assert!(r.routers.is_empty() && r.services.is_empty());
    let db = &r.tcp.routers["db@pg"];
    assert_eq!(db.tls, TlsMode::Passthrough);
    assert_eq!(db.priority, 42);
    assert_eq!(db.entrypoints, vec!["postgres", "other"]);
    assert_eq!(db.service, "pgsvc@pg");
    assert_eq!(r.tcp.routers["all@pg"].tls, TlsMode::Terminate);
    assert_eq!(r.tcp.routers["all@pg"].priority, -1);
    let servers: Vec<String> = r.tcp.services["pgsvc@pg"]
        .servers
        .iter()
        .map(|s| s.addr.to_string())
        .collect();
    assert_eq!(servers, vec!["10.0.0.5:5432", "10.0.0.6:5432"]);
}

#[test]
fn services_send_the_proxy_protocol_by_label_and_file() {
    use crate::proxy_protocol::Version;
    let svc = |name: &str, key: &str, value: &str| {
        let rule = format!("traefik.tcp.routers.{name}.rule");
        let port = format!("traefik.tcp.services.{name}.loadbalancer.server.port");
        let routes = labels(&[
            (rule.as_str(), "HostSNI(`*`)"),
            (port.as_str(), "5432"),
            (key, value),
        ])
        .unwrap();
        routes.tcp.services[&format!("{name}@pg")].proxy_protocol
    };
    assert_eq!(
        svc(
            "a",
            "traefik.tcp.services.a.loadBalancer.proxyProtocol.version",
            "1"
        ),
        Some(Version::V1)
    );
    assert_eq!(
        svc(
            "b",
            "shoal.tcp.services.b.loadbalancer.proxyprotocol.version",
            "2"
        ),
        Some(Version::V2)
    );
    assert_eq!(
        svc("c", "traefik.tcp.services.c.loadbalancer.proxyprotocol", ""),
        Some(Version::V2),
        "the option alone takes Træfik's default version"
    );
    let file = "[tcp.services.s]\nservers = [{ address = \"10.0.0.1:1\" }]\nproxyProtocol = { version = 1 }\n";
    let c = ProxyConfig::from_toml(file, "f.toml").unwrap();
    assert_eq!(c.routes.tcp.services["s"].proxy_protocol, Some(Version::V1));
    let file = "[tcp.services.s]\nservers = [{ address = \"10.0.0.1:1\" }]\nproxyProtocol = {}\n";
    let c = ProxyConfig::from_toml(file, "f.toml").unwrap();
    assert_eq!(c.routes.tcp.services["s"].proxy_protocol, Some(Version::V2));
    let e = err("[tcp.services.s]\nservers = [{ address = \"10.0.0.1:1\" }]\nproxyProtocol = { version = 3 }\n");
    assert!(
        e.contains(
            "tcp.services.s.proxyProtocol.version: PROXY protocol version 3: must be 1 or 2"
        ),
        "{e}"
    );
}

#[test]
fn http_and_tcp_labels_live_together() {
    let r = labels(&[
        ("traefik.http.routers.web.rule", "Host(`a.test`)"),
        ("traefik.tcp.routers.db.rule", "HostSNI(`*`)"),
        ("traefik.tcp.services.db.loadbalancer.server.port", "5432"),
    ])
    .unwrap();
    assert_eq!(r.routers.len(), 1);
    assert_eq!(r.tcp.routers.len(), 1);
}

#[test]
fn bad_tcp_labels_are_refused_with_the_label() {
    let svc = ("traefik.tcp.services.s.loadbalancer.server.port", "5432");
    let rule = ("traefik.tcp.routers.r.rule", "HostSNI(`*`)");
    for (pairs, expected) in [
        (vec![svc], ""),
        (
            vec![("traefik.tcp.routers.r.service", "s"), svc],
            "label traefik.tcp.routers.r.rule: a TCP router needs a rule",
        ),
        (
            vec![("traefik.tcp.routers.r.rule", "HostSNI(`a.test`)"), svc],
            "HostSNI names a server",
        ),
        (
            vec![rule],
            "label traefik.tcp.routers.r.service: name the TCP service",
        ),
        (
            vec![rule, ("traefik.tcp.routers.r.service", "nope"), svc],
            "unknown TCP service `nope`",
        ),
        (
            vec![
                rule,
                ("traefik.tcp.services.s.loadbalancer.server.weight", "2"),
            ],
            "needs loadbalancer.server.port",
        ),
        (
            vec![
                rule,
                ("traefik.tcp.services.s.loadbalancer.server.port", "0"),
            ],
            "port 0",
        ),
        (
            vec![
                rule,
                ("traefik.tcp.services.s.loadbalancer.server.port", "x"),
            ],
            "`x` is not a valid number",
        ),
        (
            vec![rule, svc, ("traefik.tcp.routers.r.middlewares", "a")],
            "TCP middlewares are not supported",
        ),
        (
            vec![
                rule,
                svc,
                (
                    "traefik.tcp.middlewares.a.ipallowlist.sourcerange",
                    "10.0.0.0/8",
                ),
            ],
            "TCP middlewares are not supported",
        ),
        (
            vec![
                rule,
                svc,
                (
                    "traefik.tcp.services.s.loadbalancer.proxyprotocol.version",
                    "3",
                ),
            ],
            "label traefik.tcp.services.s.loadbalancer.proxyprotocol.version: PROXY protocol version 3: must be 1 or 2",
        ),
        (
            vec![
                rule,
                svc,
                ("traefik.tcp.services.s.loadbalancer.proxyprotocol", "no"),
            ],
            "is not true or false",
        ),
        (
            vec![rule, svc, ("traefik.tcp.routers.r.colour", "red")],
            "unknown TCP router setting",
        ),
        (
            vec![rule, svc, ("traefik.tcp.routers.r.tls", "maybe")],
            "is not true or false",
        ),
        (
            vec![rule, svc, ("traefik.tcp.routers.r.ruleSyntax", "v2")],
            "only Træfik v3",
        ),
        (
            vec![rule, svc, ("traefik.tcp.routers.r.priority", "high")],
            "is not a valid number",
        ),
        (
            vec![rule, svc, ("traefik.tcp.nothing", "x")],
            "unknown label",
        ),
        (
            vec![rule, svc, ("traefik.tcp.routers.bad!name.rule", "x")],
            "is not a valid name",
        ),
    ] {
        let result = labels(&pairs);
        if expected.is_empty() {
            assert!(result.is_ok(), "{pairs:?}: {result:?}");
            continue;
        }
        let e = result.unwrap_err();
        assert!(e.contains(expected), "{pairs:?}: {e}");
    }
}

#[test]
fn the_example_file_has_tcp_routers() {
    let text = include_str!("../../../examples/routes.toml");
    let c = ProxyConfig::from_toml(text, "routes.toml").unwrap();
    assert_eq!(c.tcp_entrypoints.len(), 2);
    let tcp = &c.routes.tcp;
    assert_eq!(tcp.routers["db"].tls, TlsMode::Passthrough);
    assert_eq!(tcp.routers["reports"].tls, TlsMode::Terminate);
    assert_eq!(tcp.routers["reports"].priority, 100);
    assert_eq!(tcp.routers["cache"].priority, -1);
}

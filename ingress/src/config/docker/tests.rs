//! Cases derived from Træfik's `pkg/provider/docker/config_test.go` (the facts, written
//! anew for shoal's route model) and from its Docker provider documentation.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use super::*;

pub(super) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub(super) fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A running container `name` at `addr` on network `bridge`, exposing port 80.
pub(super) fn container(name: &str, addr: &str, l: &[(&str, &str)]) -> Workload {
    Workload {
        kind: Kind::Container,
        id: format!("id-{name}-{addr}"),
        name: name.to_string(),
        labels: labels(l),
        exposed_ports: vec![80],
        instances: vec![Instance {
            addresses: [("bridge".to_string(), Some(ip(addr)))].into(),
            running: true,
            ..Default::default()
        }],
        virtual_ips: BTreeMap::new(),
    }
}

pub(super) fn build_one(w: Workload) -> DockerRoutes {
    build(&[w], &DockerSettings::default())
}

pub(super) fn servers(r: &DockerRoutes, service: &str) -> Vec<SocketAddr> {
    r.routes.services[service]
        .servers
        .iter()
        .map(|s| s.addr)
        .collect()
}

pub(super) fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub(super) fn errors(r: &DockerRoutes) -> Vec<String> {
    r.problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .map(|p| p.to_string())
        .collect()
}

#[test]
fn normalize_is_traefiks() {
    assert_eq!(normalize("Test"), "Test");
    assert_eq!(normalize("/my_app.1"), "my-app-1");
    assert_eq!(normalize("a--b__c"), "a-b-c");
    assert_eq!(normalize("-x-"), "x");
    assert_eq!(normalize("héllo wörld"), "héllo-wörld");
    assert_eq!(normalize("___"), "");
}

#[test]
fn default_rule_templates() {
    let l = labels(&[("traefik.domain", "foo.bar")]);
    let render = |t: &str| DefaultRule::parse(t).unwrap().render("Test", "test_1", &l);
    assert_eq!(render(DEFAULT_RULE), "Host(`Test`)");
    assert_eq!(render("Host(`foo.bar`)"), "Host(`foo.bar`)");
    assert_eq!(
        render("Host(`{{ .Name }}.foo.bar`)"),
        "Host(`Test.foo.bar`)"
    );
    assert_eq!(
        render(r#"Host("{{ .Name }}.{{ index .Labels "traefik.domain" }}")"#),
        r#"Host("Test.foo.bar")"#
    );
    assert_eq!(
        render("Host(`{{ normalize .ContainerName }}.x`)"),
        "Host(`test-1.x`)"
    );
    assert_eq!(
        render(r#"Host(`{{ index .Labels "missing" }}`)"#),
        "Host(``)"
    );
    for bad in ["Host(`{{ .Toto }}`)", "Host(`{{ .Name `)", "Host(`}}`)"] {
        let e = DefaultRule::parse(bad).unwrap_err();
        assert!(e.contains(bad), "{e}");
    }
}

#[test]
fn one_container_no_label_gets_the_default_router_and_service() {
    let r = build_one(container("Test", "127.0.0.1", &[]));
    assert_eq!(r.problems, vec![]);
    let router = &r.routes.routers["Test@docker"];
    assert_eq!(router.rule_text, "Host(`Test`)");
    assert_eq!(router.service, "Test@docker");
    assert_eq!(servers(&r, "Test@docker"), vec![addr("127.0.0.1:80")]);
}

#[test]
fn two_containers_no_label_get_one_router_each() {
    let r = build(
        &[
            container("Test", "127.0.0.1", &[]),
            container("Test2", "127.0.0.2", &[]),
        ],
        &DockerSettings::default(),
    );
    assert_eq!(r.routes.routers.len(), 2);
    assert_eq!(r.routes.routers["Test2@docker"].rule_text, "Host(`Test2`)");
    assert_eq!(servers(&r, "Test2@docker"), vec![addr("127.0.0.2:80")]);
}

#[test]
fn replicas_of_one_compose_service_share_router_and_service() {
    let compose = [
        ("com.docker.compose.project", "shop"),
        ("com.docker.compose.service", "web"),
    ];
    let r = build(
        &[
            container("shop-web-1", "10.0.0.1", &compose),
            container("shop-web-2", "10.0.0.2", &compose),
        ],
        &DockerSettings::default(),
    );
    assert_eq!(r.problems, vec![]);
    assert_eq!(r.routes.routers.len(), 1);
    assert_eq!(
        r.routes.routers["web-shop@docker"].rule_text,
        "Host(`web-shop`)"
    );
    assert_eq!(
        servers(&r, "web-shop@docker"),
        vec![addr("10.0.0.1:80"), addr("10.0.0.2:80")]
    );
}

#[test]
fn a_lone_service_label_names_the_service_of_the_default_router() {
    let r = build_one(container(
        "Test",
        "127.0.0.1",
        &[(
            "traefik.http.services.Service1.loadbalancer.server.port",
            "8080",
        )],
    ));
    assert_eq!(r.routes.routers["Test@docker"].service, "Service1@docker");
    assert_eq!(servers(&r, "Service1@docker"), vec![addr("127.0.0.1:8080")]);
    assert!(!r.routes.services.contains_key("Test@docker"));
}

#[test]
fn router_and_service_labels() {
    let r = build_one(container(
        "Test",
        "127.0.0.1",
        &[
            (
                "traefik.http.services.Service1.loadbalancer.server.port",
                "8080",
            ),
            ("traefik.http.routers.Router1.rule", "Host(`foo.com`)"),
            ("traefik.http.routers.Router1.service", "Service1"),
        ],
    ));
    assert_eq!(r.routes.routers.len(), 1);
    let router = &r.routes.routers["Router1@docker"];
    assert_eq!(router.rule_text, "Host(`foo.com`)");
    assert_eq!(router.service, "Service1@docker");
}

#[test]
fn a_rule_label_alone_binds_to_the_automatic_service() {
    let r = build_one(container(
        "Test",
        "127.0.0.1",
        &[("traefik.http.routers.Router1.rule", "Host(`foo.com`)")],
    ));
    assert_eq!(r.routes.routers["Router1@docker"].service, "Test@docker");
    assert_eq!(servers(&r, "Test@docker"), vec![addr("127.0.0.1:80")]);
}

#[test]
fn a_router_without_service_and_two_services_is_left_out_with_an_error() {
    let r = build_one(container(
        "Test",
        "127.0.0.1",
        &[
            ("traefik.http.routers.Router1.rule", "Host(`foo.com`)"),
            (
                "traefik.http.services.Service1.loadbalancer.server.port",
                "80",
            ),
            (
                "traefik.http.services.Service2.loadbalancer.server.port",
                "81",
            ),
        ],
    ));
    // Træfik keeps the two services; in shoal's model a service no router names
    // serves nothing and is not made.
    assert!(r.routes.routers.is_empty());
    assert!(r.routes.services.is_empty());
    let e = errors(&r);
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("container Test: router `Router1` cannot be bound"),
        "{e:?}"
    );
    assert!(
        e[0].contains("traefik.http.routers.Router1.service"),
        "{e:?}"
    );
}

#[test]
fn two_services_and_no_router_make_no_routes() {
    let r = build_one(container(
        "Test",
        "127.0.0.1",
        &[
            (
                "traefik.http.services.Service1.loadbalancer.server.port",
                "80",
            ),
            (
                "traefik.http.services.Service2.loadbalancer.server.port",
                "81",
            ),
        ],
    ));
    assert!(r.routes.routers.is_empty());
    assert!(r.routes.services.is_empty());
    assert_eq!(r.problems, vec![]);
}

#[test]
fn a_router_may_name_a_service_of_another_container() {
    let r = build(
        &[
            container(
                "front",
                "10.0.0.1",
                &[
                    ("traefik.http.routers.r.rule", "Host(`a.com`)"),
                    ("traefik.http.routers.r.service", "api"),
                ],
            ),
            container(
                "back",
                "10.0.0.2",
                &[("traefik.http.services.api.loadbalancer.server.port", "9000")],
            ),
        ],
        &DockerSettings::default(),
    );
    assert_eq!(r.problems, vec![]);
    assert_eq!(r.routes.routers["r@docker"].service, "api@docker");
    assert_eq!(servers(&r, "api@docker"), vec![addr("10.0.0.2:9000")]);
    // The automatic service of the router's own container is made too, as in Træfik.
    assert!(r.routes.services.contains_key("front@docker"));
}

#[test]
fn a_router_naming_a_service_nobody_defines_is_dropped() {
    let r = build_one(container(
        "Test",
        "127.0.0.1",
        &[
            ("traefik.http.routers.Router1.rule", "Host(`foo.com`)"),
            ("traefik.http.routers.Router1.service", "Service1"),
        ],
    ));
    assert!(r.routes.routers.is_empty());
    let e = errors(&r);
    assert!(e[0].contains("names service `Service1@docker`"), "{e:?}");
}

#[test]
fn a_router_may_name_a_file_service() {
    let r = build_one(container(
        "Test",
        "127.0.0.1",
        &[
            ("traefik.http.routers.r.rule", "Host(`foo.com`)"),
            ("traefik.http.routers.r.service", "legacy@file"),
        ],
    ));
    assert_eq!(r.routes.routers["r@docker"].service, "legacy");
    let mut file = Routes::default();
    let (all, messages) = combine(&file, &r.routes);
    assert!(!all.routers.contains_key("r@docker"));
    assert!(messages[0].contains("defined nowhere"), "{messages:?}");
    file.services.insert(
        "legacy".into(),
        crate::config::Service::over(&[addr("10.9.9.9:80")]),
    );
    let (all, messages) = combine(&file, &r.routes);
    assert!(messages.is_empty(), "{messages:?}");
    assert_eq!(all.routers["r@docker"].service, "legacy");
    all.validate().unwrap();
    let e = build_one(container(
        "Test",
        "127.0.0.1",
        &[
            ("traefik.http.routers.r.rule", "Host(`foo.com`)"),
            ("traefik.http.routers.r.service", "x@kubernetes"),
        ],
    ));
    assert!(errors(&e)[0].contains("no provider `kubernetes`"), "{e:?}");
}

#[test]
fn identical_routers_from_two_containers_are_kept_once() {
    let l = [
        ("traefik.http.routers.r.rule", "Host(`foo.com`)"),
        ("traefik.http.routers.r.service", "s"),
        ("traefik.http.services.s.loadbalancer.server.port", "80"),
    ];
    let r = build(
        &[
            container("a", "10.0.0.1", &l),
            container("b", "10.0.0.2", &l),
        ],
        &DockerSettings::default(),
    );
    assert_eq!(r.problems, vec![]);
    assert_eq!(r.routes.routers.len(), 1);
    assert_eq!(servers(&r, "s@docker").len(), 2);
}

#[test]
fn different_routers_with_the_same_name_are_both_dropped() {
    let r = build(
        &[
            container(
                "a",
                "10.0.0.1",
                &[("traefik.http.routers.r.rule", "Host(`a.com`)")],
            ),
            container(
                "b",
                "10.0.0.2",
                &[("traefik.http.routers.r.rule", "Host(`b.com`)")],
            ),
            container(
                "c",
                "10.0.0.3",
                &[("traefik.http.routers.r.rule", "Host(`c.com`)")],
            ),
        ],
        &DockerSettings::default(),
    );
    assert!(!r.routes.routers.contains_key("r@docker"));
    let e = errors(&r);
    assert_eq!(e.len(), 3, "{e:?}");
    assert!(
        e[0].contains("container a and container b and container c"),
        "{e:?}"
    );
}

#[test]
fn services_with_the_same_name_and_different_settings_are_dropped() {
    let r = build(
        &[
            container(
                "a",
                "10.0.0.1",
                &[("traefik.http.services.s.loadbalancer.strategy", "p2c")],
            ),
            container(
                "b",
                "10.0.0.2",
                &[("traefik.http.services.s.loadbalancer.strategy", "wrr")],
            ),
        ],
        &DockerSettings::default(),
    );
    assert!(r.routes.services.is_empty());
    // Their routers (a, b) named the dropped service.
    assert!(r.routes.routers.is_empty());
    assert!(errors(&r)
        .iter()
        .any(|e| e.contains("service `s@docker` is defined differently")));
}

#[test]
fn a_bad_label_takes_out_only_its_container() {
    let r = build(
        &[
            container(
                "good",
                "10.0.0.1",
                &[("traefik.http.routers.g.rule", "Host(`g.com`)")],
            ),
            container(
                "bad",
                "10.0.0.2",
                &[("traefik.http.routers.b.rule", "Hots(`b.com`)")],
            ),
            container(
                "worse",
                "10.0.0.3",
                &[("traefik.http.services.w.loadbalancer.server.port", "http")],
            ),
        ],
        &DockerSettings::default(),
    );
    assert_eq!(r.routes.routers.len(), 1);
    assert!(r.routes.routers.contains_key("g@docker"));
    let e = errors(&r);
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].starts_with("container bad: label traefik.http.routers.b.rule:"),
        "{e:?}"
    );
    assert!(
        e[1].starts_with(
            "container worse: label traefik.http.services.w.loadbalancer.server.port:"
        ),
        "{e:?}"
    );
}

#[test]
fn port_comes_from_the_label_else_the_lowest_exposed_port() {
    let mut w = container("Test", "127.0.0.1", &[]);
    w.exposed_ports = vec![8080, 443, 9000];
    let r = build_one(w.clone());
    assert_eq!(servers(&r, "Test@docker"), vec![addr("127.0.0.1:443")]);
    w.labels = labels(&[("traefik.http.services.s.loadbalancer.server.port", "9000")]);
    let r = build_one(w.clone());
    assert_eq!(servers(&r, "s@docker"), vec![addr("127.0.0.1:9000")]);
    // Label port on one service; the other takes the exposed port.
    w.labels = labels(&[
        ("traefik.http.services.a.loadbalancer.server.port", "9000"),
        ("traefik.http.services.b.loadbalancer.strategy", "p2c"),
        ("traefik.http.routers.ra.service", "a"),
        ("traefik.http.routers.rb.service", "b"),
    ]);
    let r = build_one(w);
    assert_eq!(servers(&r, "a@docker"), vec![addr("127.0.0.1:9000")]);
    assert_eq!(servers(&r, "b@docker"), vec![addr("127.0.0.1:443")]);
}

#[test]
fn a_container_without_any_port_is_an_error_naming_the_label() {
    let mut w = container(
        "Test",
        "127.0.0.1",
        &[("traefik.http.routers.r.rule", "Host(`a`)")],
    );
    w.exposed_ports.clear();
    let r = build_one(w);
    assert!(r.routes.routers.is_empty());
    let e = errors(&r);
    assert!(
        e[0].contains("service `Test` has no port: set label traefik.http.services.Test.loadbalancer.server.port"),
        "{e:?}"
    );
}

#[test]
fn traefik_enable_and_exposed_by_default() {
    let off = DockerSettings {
        exposed_by_default: false,
        ..Default::default()
    };
    let plain = container("plain", "10.0.0.1", &[]);
    let on = container("on", "10.0.0.2", &[("traefik.enable", "true")]);
    let no = container("no", "10.0.0.3", &[("traefik.enable", "false")]);
    let r = build(&[plain.clone(), on.clone(), no.clone()], &off);
    assert_eq!(r.routes.routers.keys().collect::<Vec<_>>(), ["on@docker"]);
    let r = build(&[plain, on, no], &DockerSettings::default());
    assert_eq!(
        r.routes.routers.keys().collect::<Vec<_>>(),
        ["on@docker", "plain@docker"]
    );
    // Go's ParseBool spellings, and a clear error for anything else.
    let r = build_one(container("x", "10.0.0.1", &[("traefik.enable", "1")]));
    assert_eq!(r.routes.routers.len(), 1);
    let r = build_one(container("x", "10.0.0.1", &[("traefik.enable", "yes")]));
    assert_eq!(
        errors(&r),
        ["container x: label traefik.enable: `yes` is not true or false"]
    );
}

#[test]
fn unhealthy_starting_and_stopped_containers_get_no_routes() {
    for (health, running, routed) in [
        (Health::None, true, true),
        (Health::Healthy, true, true),
        (Health::Starting, true, false),
        (Health::Unhealthy, true, false),
        (Health::None, false, false),
    ] {
        let mut w = container("Test", "10.0.0.1", &[]);
        w.instances[0].health = health;
        w.instances[0].running = running;
        let r = build_one(w);
        assert_eq!(!r.routes.routers.is_empty(), routed, "{health:?} {running}");
        assert_eq!(r.problems, vec![]);
    }
    assert_eq!(Health::from_docker(Some("starting")), Health::Starting);
    assert_eq!(Health::from_docker(Some("none")), Health::None);
    assert_eq!(Health::from_docker(None), Health::None);
    assert_eq!(Health::from_docker(Some("something-new")), Health::Starting);
}

#[test]
fn tcp_only_labels_make_no_http_defaults() {
    let r = build_one(container(
        "db",
        "10.0.0.1",
        &[("traefik.tcp.routers.db.rule", "HostSNI(`*`)")],
    ));
    // No HTTP router was invented for a TCP-only container.
    assert!(r
        .routes
        .routers
        .values()
        .all(|r| r.rule_text != "Host(`db`)"));
}

fn on_networks(nets: &[(&str, &str)]) -> Workload {
    let mut w = container("Test", "10.0.0.1", &[]);
    w.instances[0].addresses = nets
        .iter()
        .map(|(n, a)| (n.to_string(), Some(ip(a))))
        .collect();
    w
}

#[test]
fn network_choice_label_then_shared_then_only() {
    let two = on_networks(&[("back", "10.1.0.2"), ("front", "10.2.0.2")]);
    let shared = DockerSettings {
        local_networks: vec!["10.2.0.1/24".parse().unwrap()],
        ..Default::default()
    };
    // The one this proxy is on.
    let r = build(std::slice::from_ref(&two), &shared);
    assert_eq!(servers(&r, "Test@docker"), vec![addr("10.2.0.2:80")]);
    assert_eq!(r.problems, vec![]);
    // The label wins.
    let mut labelled = two.clone();
    labelled
        .labels
        .insert("traefik.docker.network".into(), "back".into());
    let r = build(std::slice::from_ref(&labelled), &shared);
    assert_eq!(servers(&r, "Test@docker"), vec![addr("10.1.0.2:80")]);
    // So does the provider's default network.
    let default_net = DockerSettings {
        network: Some("back".into()),
        ..shared.clone()
    };
    let r = build(std::slice::from_ref(&two), &default_net);
    assert_eq!(servers(&r, "Test@docker"), vec![addr("10.1.0.2:80")]);
    // A label naming a network it is not on falls back, with a warning.
    labelled
        .labels
        .insert("traefik.docker.network".into(), "shop_back".into());
    let r = build(std::slice::from_ref(&labelled), &shared);
    assert_eq!(servers(&r, "Test@docker"), vec![addr("10.2.0.2:80")]);
    assert_eq!(r.problems[0].severity, Severity::Warning);
    assert!(r.problems[0]
        .message
        .contains("no address on network `shop_back`"));
    // Two networks, none shared: the first by name, with a warning.
    let r = build_one(two);
    assert_eq!(servers(&r, "Test@docker"), vec![addr("10.1.0.2:80")]);
    assert!(
        r.problems[0].message.contains("none of them shared"),
        "{:?}",
        r.problems
    );
    // The only network, shared or not.
    let r = build_one(on_networks(&[("solo", "fd00::2")]));
    assert_eq!(servers(&r, "Test@docker"), vec![addr("[fd00::2]:80")]);
    assert_eq!(r.problems, vec![]);
}

#[test]
fn host_mode_is_loopback_and_no_address_is_an_error() {
    let mut w = on_networks(&[]);
    w.instances[0].host_network = true;
    let r = build_one(w.clone());
    assert_eq!(servers(&r, "Test@docker"), vec![addr("127.0.0.1:80")]);
    w.instances[0].host_network = false;
    w.instances[0].addresses = [("none".to_string(), None)].into();
    let r = build_one(w);
    assert_eq!(
        errors(&r),
        ["container Test: it has no address on any network"]
    );
}

#[test]
fn provider_labels_are_checked() {
    let bad = [
        ("traefik.docker.colour", "blue", "unknown provider setting"),
        ("traefik.docker.lbswarm", "maybe", "is not true or false"),
        ("traefik.swarm.network", "web", "belong on Swarm services"),
    ];
    for (k, v, want) in bad {
        let r = build_one(container("x", "10.0.0.1", &[(k, v)]));
        assert!(r.routes.routers.is_empty());
        let e = errors(&r);
        assert!(e[0].contains(want) && e[0].contains(k), "{e:?}");
    }
}

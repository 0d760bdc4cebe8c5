//! Swarm services and docker-flow-proxy labels through the Docker provider's build.

use super::tests::{addr, build_one, container, errors, ip, labels, servers};
use super::*;

fn swarm_service(name: &str, l: &[(&str, &str)], tasks: &[(&str, bool)]) -> Workload {
    Workload {
        kind: Kind::SwarmService,
        id: format!("svc-{name}"),
        name: name.to_string(),
        labels: labels(l),
        exposed_ports: Vec::new(),
        instances: tasks
            .iter()
            .map(|(a, running)| Instance {
                addresses: [("web".to_string(), Some(ip(a)))].into(),
                running: *running,
                ..Default::default()
            })
            .collect(),
        virtual_ips: [("web".to_string(), ip("10.0.9.2"))].into(),
    }
}

#[test]
fn a_swarm_service_is_balanced_over_its_running_tasks() {
    let l = [
        ("traefik.http.routers.app.rule", "Host(`app.test`)"),
        ("traefik.http.services.app.loadbalancer.server.port", "8080"),
    ];
    let r = build_one(swarm_service(
        "app",
        &l,
        &[("10.0.9.3", true), ("10.0.9.4", false), ("10.0.9.5", true)],
    ));
    assert_eq!(r.problems, vec![]);
    assert_eq!(r.routes.routers["app@swarm"].service, "app@swarm");
    assert_eq!(
        servers(&r, "app@swarm"),
        vec![addr("10.0.9.3:8080"), addr("10.0.9.5:8080")]
    );
    // lbswarm: the service's VIP.
    let mut lb = l.to_vec();
    lb.push(("traefik.swarm.lbswarm", "true"));
    let r = build_one(swarm_service("app", &lb, &[("10.0.9.3", true)]));
    assert_eq!(servers(&r, "app@swarm"), vec![addr("10.0.9.2:8080")]);
    // No running task: no routes, and nothing wrong.
    let r = build_one(swarm_service("app", &l, &[("10.0.9.3", false)]));
    assert!(r.routes.routers.is_empty());
    assert_eq!(r.problems, vec![]);
}

#[test]
fn a_swarm_service_needs_a_port_label_and_gets_the_default_rule() {
    let r = build_one(swarm_service("api", &[], &[("10.0.9.3", true)]));
    assert!(errors(&r)[0].contains("Swarm service api: service `api` has no port"));
    let r = build_one(swarm_service(
        "api",
        &[("traefik.http.services.api.loadbalancer.server.port", "80")],
        &[("10.0.9.3", true)],
    ));
    assert_eq!(r.routes.routers["api@swarm"].rule_text, "Host(`api`)");
    // Both spellings of the provider labels at once are refused.
    let r = build_one(swarm_service(
        "api",
        &[
            ("traefik.http.services.api.loadbalancer.server.port", "80"),
            ("traefik.docker.network", "web"),
            ("traefik.swarm.network", "web"),
        ],
        &[("10.0.9.3", true)],
    ));
    assert!(errors(&r)[0].contains("both traefik.docker.* and traefik.swarm.*"));
}

#[test]
fn a_container_and_a_swarm_service_of_the_same_name_do_not_clash() {
    let r = build(
        &[
            container("app", "10.0.0.1", &[]),
            swarm_service(
                "app",
                &[("traefik.http.services.app.loadbalancer.server.port", "80")],
                &[("10.0.9.3", true)],
            ),
        ],
        &DockerSettings::default(),
    );
    assert!(r.routes.routers.contains_key("app@docker"));
    assert!(r.routes.routers.contains_key("app@swarm"));
}

#[test]
fn df_labels_route_a_container() {
    let r = build_one(container(
        "books",
        "10.0.0.1",
        &[
            ("com.df.notify", "true"),
            ("com.df.servicePath", "/api/v1/books"),
            ("com.df.port", "8080"),
        ],
    ));
    assert_eq!(r.problems, vec![]);
    let router = &r.routes.routers["books-df@docker"];
    assert_eq!(router.rule_text, "PathPrefix(`/api/v1/books`)");
    assert_eq!(servers(&r, "books-df@docker"), vec![addr("10.0.0.1:8080")]);
    // No default Host(`books`) router besides.
    assert_eq!(r.routes.routers.len(), 1);
}

#[test]
fn df_labels_opt_in_when_not_exposed_by_default_and_take_the_exposed_port() {
    let off = DockerSettings {
        exposed_by_default: false,
        ..Default::default()
    };
    let w = container(
        "books",
        "10.0.0.1",
        &[
            ("com.df.notify", "true"),
            ("com.df.serviceDomain", "books.test"),
        ],
    );
    let r = build(&[w], &off);
    assert_eq!(r.problems, vec![]);
    assert_eq!(
        r.routes.routers["books-df@docker"].rule_text,
        "Host(`books.test`)"
    );
    assert_eq!(servers(&r, "books-df@docker"), vec![addr("10.0.0.1:80")]);
    let r = build_one(container("x", "10.0.0.1", &[("com.df.notify", "true")]));
    assert!(errors(&r)[0].contains("needs com.df.servicePath or com.df.serviceDomain"));
    let r = build_one(container(
        "x",
        "10.0.0.1",
        &[
            ("com.df.notify", "true"),
            ("com.df.servicePath", "/x"),
            ("com.df.denyHttp", "true"),
        ],
    ));
    assert!(errors(&r)[0].contains("label com.df.denyHttp: not supported"));
}

//! The L7 ingress on real labs: host and path rules from service labels (shoal's and
//! Træfik's spelling) answer on every node, label changes apply without a restart, and
//! bad labels are refused with the position of the mistake. Retries, breakers, outlier
//! ejection, TLS and request hardening are proven in-process in `ingress/tests`.

use std::net::SocketAddr;
use std::time::Duration;

use shoal_tests::net::http_request;
use shoal_tests::{require_root, wait_until, Lab};

const BIN: &str = env!("CARGO_BIN_EXE_shoal");

/// GET `path` with `Host: host` from the client host to `node`'s ingress on port 80;
/// returns (status, body).
fn get(lab: &Lab, node: &str, host: &str, path: &str) -> Option<(u16, String)> {
    let addr: SocketAddr = format!("{}:80", lab.ip(node)).parse().unwrap();
    http_request(&lab.host_ns("client"), addr, host, path)
}

fn routed_to(lab: &Lab, node: &str, host: &str, path: &str, service: &str) {
    wait_until(
        &format!("{host}{path} on {node} to reach {service}"),
        Duration::from_secs(10),
        || match get(lab, node, host, path) {
            Some((200, body)) if body.contains(&format!("service={service} ")) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
}

fn create(lab: &Lab, name: &str, port: u16, replicas: &str, labels: &[&str]) {
    let port_arg = port.to_string();
    let mut args = vec![
        "service",
        "create",
        "--name",
        name,
        "--network",
        "web",
        "--replicas",
        replicas,
    ];
    for l in labels {
        args.extend(["--label", l]);
    }
    args.extend(["--", BIN, "tool", "http", "--port", &port_arg]);
    lab.ok("n1", &args);
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn host_and_path_rules_route_to_services_from_every_node() {
    require_root("host_and_path_rules_route_to_services_from_every_node");
    let lab = Lab::up(BIN, 3, 1);
    lab.ok("n1", &["network", "create", "--attachable", "web"]);
    create(
        &lab,
        "shop",
        80,
        "2",
        &["shoal.http.routers.shop.rule=Host(`shop.example.com`)"],
    );
    create(
        &lab,
        "blog",
        8081,
        "1",
        &[
            "traefik.http.routers.blog.rule=Host(`blog.example.com`) || PathPrefix(`/blog`)",
            "traefik.http.services.blog.loadbalancer.server.port=8081",
        ],
    );
    create(
        &lab,
        "wild",
        80,
        "1",
        &["shoal.http.routers.any.rule=Host(`*.example.org`)"],
    );
    create(
        &lab,
        "api",
        80,
        "1",
        &["shoal.http.routers.api.rule=Host(`shop.example.com`) && PathPrefix(`/api`)"],
    );
    for node in ["n1", "n2", "n3"] {
        routed_to(&lab, node, "shop.example.com", "/", "shop");
        routed_to(&lab, node, "blog.example.com", "/", "blog");
        routed_to(&lab, node, "anything.else", "/blog/post", "blog");
        routed_to(&lab, node, "a.example.org", "/", "wild");
        // The longer rule wins.
        routed_to(&lab, node, "shop.example.com", "/api/items", "api");
        assert_eq!(
            get(&lab, node, "nobody.example.net", "/").map(|r| r.0),
            Some(404)
        );
    }
    wait_until(
        "n2 to route shop to two healthy tasks",
        Duration::from_secs(10),
        || {
            let routes = lab.json("n2", &["route", "ls"]);
            let routes = routes.as_array().cloned().unwrap_or_default();
            let shop = routes.iter().find(|r| r["router"] == "shop@shop");
            let healthy = shop
                .and_then(|s| s["backends"].as_array())
                .map(|bs| bs.iter().filter(|b| b["health"] == "healthy").count());
            if routes.len() == 4 && healthy == Some(2) {
                Ok(())
            } else {
                Err(format!("{routes:?}"))
            }
        },
    );
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn label_changes_apply_at_once_and_bad_labels_are_refused() {
    require_root("label_changes_apply_at_once_and_bad_labels_are_refused");
    let lab = Lab::up(BIN, 2, 1);
    lab.ok("n1", &["network", "create", "--attachable", "web"]);
    create(
        &lab,
        "shop",
        80,
        "1",
        &["shoal.http.routers.shop.rule=Host(`shop.example.com`)"],
    );
    routed_to(&lab, "n2", "shop.example.com", "/", "shop");

    lab.ok(
        "n1",
        &[
            "service",
            "update",
            "--label-add",
            "shoal.http.routers.shop.rule=Host(`store.example.com`)",
            "shop",
        ],
    );
    routed_to(&lab, "n2", "store.example.com", "/", "shop");
    assert_eq!(
        get(&lab, "n2", "shop.example.com", "/").map(|r| r.0),
        Some(404)
    );

    // A malformed rule names where it goes wrong, and changes nothing.
    let err = lab.fails(
        "n1",
        &[
            "service",
            "update",
            "--label-add",
            "shoal.http.routers.shop.rule=Host(`a.com`) &&",
            "shop",
        ],
    );
    assert!(err.contains("at "), "{err}");
    routed_to(&lab, "n1", "store.example.com", "/", "shop");
    let err = lab.fails(
        "n1",
        &[
            "service",
            "create",
            "--name",
            "bad",
            "--network",
            "web",
            "--label",
            "shoal.http.routers.x.rule=Hots(`a.com`)",
            "--",
            BIN,
            "tool",
            "http",
        ],
    );
    assert!(err.contains("at 0"), "{err}");
    assert!(lab
        .fails("n1", &["service", "inspect", "bad"])
        .contains("bad"));
}

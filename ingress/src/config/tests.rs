use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use super::*;
use crate::balancer::LbAlgorithm;

const EXAMPLE: &str = include_str!("../../examples/routes.toml");

#[test]
fn example_config_parses() {
    let c = ProxyConfig::from_toml(EXAMPLE, "routes.toml").unwrap();
    assert_eq!(c.entrypoints.len(), 2);
    assert_eq!(c.entrypoints["websecure"].certificates.len(), 2);
    let api = &c.routes.routers["shop-api"];
    assert_eq!(api.priority, 100);
    assert_eq!(api.entrypoints, vec!["web", "websecure"]);
    let retry = api.retry.as_ref().unwrap();
    assert_eq!(retry.num_retries, 2);
    assert!(retry.methods.contains("POST"));
    assert_eq!(retry.per_try_timeout, Some(Duration::from_secs(2)));
    let shop = &c.routes.routers["shop"];
    assert_eq!(shop.priority, "Host(`shop.example.com`)".len() as i64);
    let svc = &c.routes.services["shop-api"];
    assert_eq!(svc.lb, LbAlgorithm::P2c);
    assert_eq!(svc.servers[0].weight, 2);
    assert_eq!(svc.breaker.max_requests, 512);
    assert_eq!(c.routes.services["shop-web"].servers[0].addr.port(), 80);
    assert_eq!(c.routes.services["docs"].protocol, UpstreamProtocol::H2c);
    assert!(c.routes.routers["docs"].tls);
    let shop_keys = c.routes.router_middlewares(shop).unwrap();
    assert_eq!(shop_keys, ["shop-headers", "compress"]);
    assert_eq!(api.middlewares, ["api-limit"]);
}

fn err(toml: &str) -> String {
    ProxyConfig::from_toml(toml, "f.toml")
        .unwrap_err()
        .to_string()
}

/// The error for a file with entrypoint `web`, service `s` and router `shop` whose
/// body is `rule`, `service` and `extra` lines.
fn router_err(rule: &str, service: &str, extra: &str) -> String {
    err(&format!(
        "[entrypoints.web]\naddress = \"127.0.0.1:80\"\n[services.s]\nservers = [{{ url = \"http://10.0.0.1:80\" }}]\n\
         [routers.shop]\nrule = \"{rule}\"\nservice = \"{service}\"\n{extra}"
    ))
}

#[test]
fn file_errors_name_the_path() {
    let e = router_err("Host(`a`) && ", "s", "");
    assert!(e.starts_with("routers.shop.rule: at 13: expected"), "{e}");
    let e = router_err("Host(`a`)", "nope", "");
    assert_eq!(e, "routers.shop.service: unknown service `nope`");
    let e = router_err("Host(`a`)", "s", "entrypoints = [\"x\"]\n");
    assert_eq!(e, "routers.shop.entrypoints: unknown entrypoint `x`");
    let e = router_err("Host(`a`)", "s", "tls = true\n");
    assert!(e.contains("routers.shop.tls"), "{e}");
    let e = router_err("Host(`a`)", "s", "colour = 1\n");
    assert!(e.contains("unknown field `colour`"), "{e}");
    let e = err("[entrypoints.web]\naddress = \"localhost:80\"\n");
    assert!(e.starts_with("entrypoints.web.address:"), "{e}");
    let e = err("[services.s]\nservers = [{ url = \"http://db.local:80\" }]\n");
    assert!(e.starts_with("services.s.servers[0].url:"), "{e}");
    let e = err("[services.s]\nservers = [{ url = \"http://10.0.0.1\", weight = 0 }]\n");
    assert_eq!(e, "services.s.servers[0].weight: must be at least 1");
    let e = err("[services.s]\nservers = []\nretry = { on = [\"sometimes\"] }\n");
    assert!(
        e.starts_with("services.s.retry.on: unknown retry condition `sometimes`"),
        "{e}"
    );
    let e = err("[services.s]\nservers = []\noutlier = { interval = \"10\" }\n");
    assert!(e.starts_with("services.s.outlier.interval:"), "{e}");
    let e = err("[services.s]\nservers = []\nlb = \"random\"\n");
    assert!(e.starts_with("services.s.lb:"), "{e}");
}

#[test]
fn durations() {
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
    assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
    assert!(parse_duration("2").is_err());
    assert!(parse_duration("s").is_err());
    assert!(parse_duration("-1s").is_err());
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn ips() -> Vec<IpAddr> {
    vec!["10.0.0.2".parse().unwrap(), "10.0.0.3".parse().unwrap()]
}

#[test]
fn shoal_labels_make_namespaced_routes() {
    let l = labels(&[
        (
            "shoal.http.routers.api.rule",
            "Host(`shop.example.com`) && PathPrefix(`/api`)",
        ),
        ("shoal.http.routers.api.entrypoints", "web, websecure"),
        ("shoal.http.routers.api.priority", "7"),
        ("shoal.http.routers.api.tls", "true"),
        ("shoal.http.routers.api.retry.on", "5xx,reset"),
        ("shoal.http.routers.api.retry.attempts", "3"),
        ("shoal.http.routers.api.retry.per_try_timeout", "2s"),
        ("shoal.http.routers.api.retry.methods", "POST"),
        (
            "shoal.http.services.backend.loadbalancer.server.port",
            "8080",
        ),
        (
            "shoal.http.services.backend.loadbalancer.sticky.cookie.name",
            "pin",
        ),
        ("shoal.http.services.backend.loadbalancer.strategy", "p2c"),
        (
            "shoal.http.services.backend.circuitbreaker.max_requests",
            "2",
        ),
        (
            "shoal.http.services.backend.outlier.base_ejection_time",
            "5s",
        ),
        ("com.example.unrelated", "x"),
    ]);
    let r = from_labels("shop", &l, &ips()).unwrap();
    let router = &r.routers["api@shop"];
    assert_eq!(router.service, "backend@shop");
    assert_eq!(router.entrypoints, vec!["web", "websecure"]);
    assert_eq!(router.priority, 7);
    assert!(router.tls);
    let retry = router.retry.as_ref().unwrap();
    assert_eq!(retry.num_retries, 2);
    assert!(retry.retry_on.five_xx && retry.retry_on.reset && !retry.retry_on.connect_failure);
    let svc = &r.services["backend@shop"];
    assert_eq!(svc.servers.len(), 2);
    assert_eq!(svc.servers[1].addr, "10.0.0.3:8080".parse().unwrap());
    assert_eq!(svc.sticky_cookie.as_deref(), Some("pin"));
    assert_eq!(svc.lb, LbAlgorithm::P2c);
    assert_eq!(svc.breaker.max_requests, 2);
    assert_eq!(svc.outlier.base_ejection_time, Duration::from_secs(5));
    assert_eq!(svc.retry_budget, None, "no budget unless configured");
}

/// Envoy's default: no retry budget, concurrent retries capped by the breaker's
/// max_retries (3); a budget only when one of its settings is given.
#[test]
fn retry_budget_only_when_configured() {
    let port = ("shoal.http.services.s.loadbalancer.server.port", "80");
    let svc = |extra: &[(&str, &str)]| {
        let mut pairs = vec![
            port,
            ("shoal.http.routers.r.rule", "Host(`a`)"),
            ("shoal.http.routers.r.service", "s"),
        ];
        pairs.extend_from_slice(extra);
        from_labels("x", &labels(&pairs), &ips()).unwrap().services["s@x"].clone()
    };
    let plain = svc(&[]);
    assert_eq!(plain.retry_budget, None);
    assert_eq!(plain.breaker.max_retries, 3);
    let b = svc(&[("shoal.http.services.s.retry_budget.percent", "25")]);
    assert_eq!(b.retry_budget.map(|b| b.percent), Some(25.0));
    let b = svc(&[("shoal.http.services.s.retry_budget.min_concurrency", "5")]);
    assert_eq!(b.retry_budget.map(|b| b.min_concurrency), Some(5));
    let b = svc(&[
        ("shoal.http.services.s.retry_budget.percent", "25"),
        ("shoal.http.services.s.retry_budget.disabled", "true"),
    ]);
    assert_eq!(b.retry_budget, None);
    assert_eq!(Service::new(Vec::new()).retry_budget, None);
}

#[test]
fn traefik_labels_default_service_and_port() {
    let l = labels(&[
        ("traefik.enable", "true"),
        ("traefik.http.routers.web.rule", "Host(`a.com`)"),
        ("traefik.http.routers.web.tls.certresolver", "le"),
        ("traefik.docker.network", "proxy"),
    ]);
    let r = from_labels("blog", &l, &ips()).unwrap();
    let router = &r.routers["web@blog"];
    assert_eq!(router.service, "blog@blog");
    assert!(router.tls);
    assert_eq!(r.services["blog@blog"].servers[0].addr.port(), 80);

    let l = labels(&[
        ("traefik.http.routers.web.rule", "Host(`a.com`)"),
        (
            "traefik.http.services.only.loadbalancer.server.port",
            "3000",
        ),
    ]);
    let r = from_labels("blog", &l, &ips()).unwrap();
    assert_eq!(r.routers["web@blog"].service, "only@blog");
    assert_eq!(r.services["only@blog"].servers[0].addr.port(), 3000);

    let l = labels(&[
        ("traefik.enable", "false"),
        ("traefik.http.routers.web.rule", "Host(`a.com`)"),
    ]);
    assert_eq!(from_labels("blog", &l, &ips()).unwrap(), Routes::default());
}

/// The error for service `s` with `pairs` as labels.
fn label_err(pairs: &[(&str, &str)]) -> LabelError {
    from_labels("s", &labels(pairs), &ips()).unwrap_err()
}

#[test]
fn label_errors_name_the_key() {
    let e = label_err(&[("shoal.http.routers.r.rule", "Host(`a`) ||")]);
    assert_eq!(e.key, "shoal.http.routers.r.rule");
    assert!(e.message.starts_with("at 12: expected"), "{e}");
    let e = label_err(&[("shoal.http.routers.r.entrypoints", "web")]);
    assert_eq!(e.key, "shoal.http.routers.r.rule");
    let e = label_err(&[
        ("shoal.http.routers.r.rule", "Host(`a`)"),
        ("shoal.http.routers.r.middlewares", "auth"),
    ]);
    assert!(e.message.contains("middlewares"), "{e}");
    let e = label_err(&[
        ("shoal.http.routers.r.rule", "Host(`a`)"),
        ("traefik.http.routers.r.rule", "Host(`b`)"),
    ]);
    assert!(e.message.contains("conflicts"), "{e}");
    let e = label_err(&[
        ("shoal.http.routers.r.rule", "Host(`a`)"),
        ("shoal.http.routers.r.service", "other"),
    ]);
    assert_eq!(
        e.to_string(),
        "label shoal.http.routers.r.service: unknown service `other`"
    );
    let e = label_err(&[
        ("shoal.http.routers.r.rule", "Host(`a`)"),
        ("shoal.http.services.s.loadbalancer.server.port", "http"),
    ]);
    assert_eq!(e.key, "shoal.http.services.s.loadbalancer.server.port");
    let e = label_err(&[
        ("shoal.http.routers.r.rule", "Host(`a`)"),
        ("shoal.http.routers.r.retry.on", "5xx,always"),
    ]);
    assert_eq!(e.key, "shoal.http.routers.r.retry.on");
}

#[test]
fn merging_services_detects_clashes() {
    let l = labels(&[("shoal.http.routers.r.rule", "Host(`a`)")]);
    let mut all = from_labels("one", &l, &ips()).unwrap();
    all.merge(from_labels("two", &l, &ips()).unwrap()).unwrap();
    assert_eq!(all.routers.len(), 2);
    let e = all
        .merge(from_labels("two", &l, &ips()).unwrap())
        .unwrap_err();
    assert_eq!(e.to_string(), "routers.r@two: defined twice");
}

use super::*;
use crate::config::ProxyConfig;

fn labels(pairs: &[(&str, &str)]) -> Result<HealthCheck, String> {
    let spec =
        HealthCheckSpec::from_labels(pairs.iter().map(|(o, v)| (*o, *o, *v)).collect::<Vec<_>>())
            .map_err(|e| e.to_string())?;
    spec.to_check("hc").map_err(|e| e.to_string())
}

#[test]
fn defaults_are_traefiks() {
    let c = labels(&[("path", "/health")]).unwrap();
    assert_eq!(c, HealthCheck::new("/health"));
    assert_eq!(c.interval, Duration::from_secs(30));
    assert_eq!(c.unhealthy_interval, Duration::from_secs(30));
    assert_eq!(c.timeout, Duration::from_secs(5));
    assert_eq!(c.method, Method::GET);
    assert!(c.follow_redirects);
    assert_eq!((c.healthy_threshold, c.unhealthy_threshold), (1, 1));
}

#[test]
fn every_option_is_read() {
    let c = labels(&[
        ("path", "/ready?full=1"),
        ("interval", "10s"),
        ("unhealthyInterval", "2s"),
        ("timeout", "1500ms"),
        ("scheme", "h2c"),
        ("mode", "http"),
        ("port", "8081"),
        ("hostname", "shop.test"),
        ("status", "204"),
        ("headers.X-Probe", "yes"),
        ("method", "head"),
        ("followRedirects", "false"),
        ("healthyThreshold", "2"),
        ("unhealthythreshold", "3"),
    ])
    .unwrap();
    assert_eq!(c.path, "/ready?full=1");
    assert_eq!(c.interval, Duration::from_secs(10));
    assert_eq!(c.unhealthy_interval, Duration::from_secs(2));
    assert_eq!(c.timeout, Duration::from_millis(1500));
    assert_eq!(c.protocol, Some(UpstreamProtocol::H2c));
    assert_eq!(c.port, Some(8081));
    assert_eq!(c.hostname.as_deref(), Some("shop.test"));
    assert_eq!(c.status, Some(204));
    assert_eq!(c.headers.len(), 1);
    assert_eq!(c.headers[0].0.as_str(), "x-probe");
    assert_eq!(c.method, Method::HEAD);
    assert!(!c.follow_redirects);
    assert_eq!((c.healthy_threshold, c.unhealthy_threshold), (2, 3));
    // The unhealthy interval follows the interval unless given.
    let c = labels(&[("path", "/h"), ("interval", "7")]).unwrap();
    assert_eq!(c.unhealthy_interval, Duration::from_secs(7));
}

#[test]
fn bad_values_are_refused_with_the_reason() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("interval", "10s")],
            "hc.path: a health check needs a path",
        ),
        (
            &[("path", "http://other/health")],
            "is not a relative URL path",
        ),
        (&[("path", "/a b")], "is not a relative URL path"),
        (
            &[("path", "/h"), ("interval", "0s")],
            "hc.interval: must be greater",
        ),
        (
            &[("path", "/h"), ("timeout", "soon")],
            "hc.timeout: `soon` is not a duration",
        ),
        (
            &[("path", "/h"), ("scheme", "https")],
            "https is not supported",
        ),
        (&[("path", "/h"), ("scheme", "ftp")], "unknown scheme `ftp`"),
        (
            &[("path", "/h"), ("mode", "grpc")],
            "gRPC health checks are not supported",
        ),
        (
            &[("path", "/h"), ("port", "70000")],
            "`70000` is not a valid port",
        ),
        (&[("path", "/h"), ("port", "0")], "hc.port: port 0"),
        (
            &[("path", "/h"), ("status", "42")],
            "42 is not an HTTP status",
        ),
        (
            &[("path", "/h"), ("status", "ok")],
            "`ok` is not a valid status",
        ),
        (&[("path", "/h"), ("method", "GE T")], "is not a method"),
        (
            &[("path", "/h"), ("followredirects", "yes")],
            "is not true or false",
        ),
        (
            &[("path", "/h"), ("healthythreshold", "0")],
            "thresholds must be at least 1",
        ),
        (
            &[("path", "/h"), ("headers.X", "a\nb")],
            "is not a header value",
        ),
        (&[("path", "/h"), ("hostname", "a b")], "is not a host name"),
        (
            &[("path", "/h"), ("colour", "red")],
            "colour: unknown health check setting",
        ),
    ];
    for (pairs, expected) in cases {
        let e = labels(pairs).unwrap_err();
        assert!(e.contains(expected), "{pairs:?}: {e}");
    }
}

#[test]
fn go_durations() {
    assert_eq!(parse_go_duration("10"), Ok(Duration::from_secs(10)));
    assert_eq!(parse_go_duration("1m30s"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_go_duration("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_go_duration("1h"), Ok(Duration::from_secs(3600)));
    for bad in ["", "s", "1.5s", "-1s", "10x", "1m30"] {
        assert!(parse_go_duration(bad).is_err(), "{bad}");
    }
}

#[test]
fn only_reported_trouble_stops_traffic() {
    use ReportedHealth::*;
    for (state, traffic) in [
        (NotReported, true),
        (Starting, false),
        (Healthy, true),
        (Unhealthy, false),
    ] {
        assert_eq!(state.takes_traffic(), traffic, "{state:?}");
    }
}

fn routes_from(pairs: &[(&str, &str)]) -> Result<crate::config::Routes, String> {
    let map: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let backends: Vec<std::net::IpAddr> = vec!["10.0.0.5".parse().unwrap()];
    crate::config::from_labels("pg", &map, &backends).map_err(|e| e.to_string())
}

#[test]
fn the_example_file_has_a_health_check() {
    let text = include_str!("../../../examples/routes.toml");
    let c = ProxyConfig::from_toml(text, "routes.toml").unwrap();
    let check = c.routes.services["shop-api"].health_check.as_ref().unwrap();
    assert_eq!(check.path, "/health");
    assert_eq!(check.interval, Duration::from_secs(10));
    assert_eq!(check.unhealthy_interval, Duration::from_secs(5));
    assert_eq!((check.healthy_threshold, check.unhealthy_threshold), (2, 3));
    assert_eq!(check.headers[0].0.as_str(), "x-probe");
}

#[test]
fn health_checks_from_labels_and_the_file() {
    let r = routes_from(&[
        ("traefik.http.routers.web.rule", "Host(`a.test`)"),
        (
            "traefik.http.services.web.loadBalancer.healthCheck.path",
            "/ready",
        ),
        (
            "traefik.http.services.web.loadbalancer.healthcheck.interval",
            "5s",
        ),
        (
            "shoal.http.services.web.loadbalancer.healthcheck.unhealthythreshold",
            "3",
        ),
    ])
    .unwrap();
    let check = r.services["web@pg"].health_check.as_ref().unwrap();
    assert_eq!(check.path, "/ready");
    assert_eq!(check.interval, Duration::from_secs(5));
    assert_eq!(check.unhealthy_threshold, 3);
    let e = routes_from(&[
        ("traefik.http.routers.web.rule", "Host(`a.test`)"),
        (
            "traefik.http.services.web.loadbalancer.healthcheck.interval",
            "5s",
        ),
    ])
    .unwrap_err();
    assert_eq!(
        e,
        "label traefik.http.services.web.loadbalancer.healthcheck.path: a health check needs a path, like /health"
    );
    let e = routes_from(&[
        ("traefik.http.routers.web.rule", "Host(`a.test`)"),
        (
            "traefik.http.services.web.loadbalancer.healthcheck.path",
            "/h",
        ),
        (
            "traefik.http.services.web.loadbalancer.healthcheck.grpcservice",
            "x",
        ),
    ])
    .unwrap_err();
    assert_eq!(
        e,
        "label traefik.http.services.web.loadbalancer.healthcheck.grpcservice: unknown health check setting"
    );
    let file = |hc: &str| {
        ProxyConfig::from_toml(
            &format!("[services.s]\nservers = [{{ url = \"http://10.0.0.1:80\" }}]\nhealthcheck = {hc}\n"),
            "f.toml",
        )
    };
    let c = file("{ path = \"/h\", followRedirects = false, method = \"HEAD\" }").unwrap();
    let check = c.routes.services["s"].health_check.as_ref().unwrap();
    assert!(!check.follow_redirects);
    assert_eq!(check.method, http::Method::HEAD);
    let e = file("{ path = \"/h\", interval = \"soon\" }")
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "services.s.healthcheck.interval: `soon` is not a duration like 10s, 1m30s, 250ms"
    );
    let e = file("{ path = \"/h\", colour = 1 }")
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown field `colour`"), "{e}");
}

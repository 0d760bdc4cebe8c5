//! Middlewares from labels and from the file: every type, defaults, references, and
//! refusals that name what is wrong.

use std::collections::BTreeMap;
use std::time::Duration;

use http::StatusCode;

use super::*;
use crate::config::{from_labels, ProxyConfig, Routes};
use crate::middleware::compress::Encoding;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const ROUTER: (&str, &str) = ("traefik.http.routers.web.rule", "Host(`shop.test`)");

fn from(pairs: &[(&str, &str)]) -> Result<Routes, String> {
    let mut all = vec![ROUTER];
    all.extend_from_slice(pairs);
    from_labels("shop", &labels(&all), &["10.0.0.5".parse().unwrap()]).map_err(|e| e.to_string())
}

fn one(pairs: &[(&str, &str)]) -> MiddlewareConfig {
    let routes = from(pairs).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        routes.middlewares.len(),
        1,
        "{:?}",
        routes.middlewares.keys()
    );
    routes.middlewares.into_values().next().unwrap()
}

#[test]
fn every_type_from_labels() {
    let MiddlewareConfig::RedirectScheme(r) = one(&[
        (
            "traefik.http.middlewares.https.redirectscheme.scheme",
            "https",
        ),
        (
            "traefik.http.middlewares.https.redirectscheme.permanent",
            "true",
        ),
        ("traefik.http.middlewares.https.redirectscheme.port", "8443"),
    ]) else {
        panic!()
    };
    assert_eq!(
        (r.scheme.as_str(), r.port.as_deref(), r.permanent),
        ("https", Some("8443"), true)
    );
    let MiddlewareConfig::StripPrefix(s) = one(&[(
        "traefik.http.middlewares.strip.stripPrefix.prefixes",
        "/api,/v1",
    )]) else {
        panic!()
    };
    assert_eq!(s.prefixes, ["/api", "/v1"]);
    assert!(!s.force_slash, "v3 default");
    assert!(matches!(
        one(&[("shoal.http.middlewares.x.addprefix.prefix", "/p")]),
        MiddlewareConfig::AddPrefix(_)
    ));
    assert!(matches!(
        one(&[("traefik.http.middlewares.x.replacepath.path", "/p")]),
        MiddlewareConfig::ReplacePath(_)
    ));
    assert!(matches!(
        one(&[
            (
                "traefik.http.middlewares.x.replacepathregex.regex",
                "^/a/(.*)"
            ),
            (
                "traefik.http.middlewares.x.replacepathregex.replacement",
                "/b/$1"
            ),
        ]),
        MiddlewareConfig::ReplacePathRegex(_)
    ));
    assert!(matches!(
        one(&[(
            "traefik.http.middlewares.x.stripprefixregex.regex",
            "^/[a-z]+"
        )]),
        MiddlewareConfig::StripPrefixRegex(_)
    ));
    assert!(matches!(
        one(&[
            (
                "traefik.http.middlewares.x.redirectregex.regex",
                "^http://(.*)"
            ),
            (
                "traefik.http.middlewares.x.redirectregex.replacement",
                "https://$1"
            ),
        ]),
        MiddlewareConfig::RedirectRegex(_)
    ));
    let MiddlewareConfig::Headers(h) = one(&[
        (
            "traefik.http.middlewares.h.headers.customrequestheaders.X-Script-Name",
            "test",
        ),
        (
            "traefik.http.middlewares.h.headers.customresponseheaders.X-Custom-Response-Header",
            "",
        ),
        (
            "traefik.http.middlewares.h.headers.accesscontrolalloworiginlist",
            "https://foo.bar.org,https://example.org",
        ),
        (
            "traefik.http.middlewares.h.headers.accesscontrolmaxage",
            "100",
        ),
        ("traefik.http.middlewares.h.headers.framedeny", "true"),
        ("traefik.http.middlewares.h.headers.stsSeconds", "31536000"),
    ]) else {
        panic!()
    };
    assert_eq!(h.custom_request_headers[0].0, "x-script-name");
    assert_eq!(h.custom_response_headers[0].1, None, "empty value removes");
    assert_eq!(h.access_control_allow_origin_list.len(), 2);
    assert_eq!(
        (h.access_control_max_age, h.frame_deny, h.sts_seconds),
        (Some(100), true, 31_536_000)
    );
    let MiddlewareConfig::BasicAuth(a) = one(&[(
        "traefik.http.middlewares.auth.basicauth.users",
        "test:$apr1$H6uskkkW$IgXLP6ewTrSuBkTrqE8wj/,test2:{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=",
    )]) else {
        panic!()
    };
    assert_eq!(
        (a.users.len(), a.realm.as_str(), a.remove_header),
        (2, "traefik", false)
    );
    let MiddlewareConfig::IpAllowList(ip) = one(&[
        (
            "traefik.http.middlewares.ip.ipallowlist.sourcerange",
            "127.0.0.1/32, 192.168.1.7, 10.1.2.3/8",
        ),
        (
            "traefik.http.middlewares.ip.ipallowlist.ipstrategy.depth",
            "2",
        ),
    ]) else {
        panic!()
    };
    assert_eq!(ip.source_range[2].to_string(), "10.0.0.0/8");
    let MiddlewareConfig::IpAllowList(ip6) = one(&[(
        "traefik.http.middlewares.ip.ipallowlist.sourcerange",
        "2001:db8::1/48, ::ffff:10.0.0.0/104, ::ffff:192.0.2.7",
    )]) else {
        panic!()
    };
    let ranges: Vec<String> = ip6.source_range.iter().map(|n| n.to_string()).collect();
    assert_eq!(
        ranges,
        ["2001:db8::/48", "10.0.0.0/8", "192.0.2.7/32"],
        "host bits dropped; IPv4-mapped ranges are IPv4, as Go reads them"
    );
    assert_eq!(
        ip.strategy,
        IpStrategy::Depth {
            depth: 2,
            ipv6_subnet: None
        }
    );
    assert_eq!(ip.reject_status, StatusCode::FORBIDDEN);
    let MiddlewareConfig::IpAllowList(old) = one(&[(
        "traefik.http.middlewares.ip.ipwhitelist.sourcerange",
        "10.0.0.0/8",
    )]) else {
        panic!()
    };
    assert_eq!(old.strategy, IpStrategy::RemoteAddr { ipv6_subnet: None });
    let MiddlewareConfig::RateLimit(rl) = one(&[
        ("traefik.http.middlewares.rl.ratelimit.average", "100"),
        ("traefik.http.middlewares.rl.ratelimit.period", "1m"),
        (
            "traefik.http.middlewares.rl.ratelimit.sourcecriterion.requestheadername",
            "X-Api-Key",
        ),
    ]) else {
        panic!()
    };
    assert_eq!(
        (rl.average, rl.period, rl.burst),
        (100, Duration::from_secs(60), 1)
    );
    assert!(matches!(rl.source, SourceCriterion::Header(_)));
    let MiddlewareConfig::InFlightReq(f) =
        one(&[("traefik.http.middlewares.f.inflightreq.amount", "10")])
    else {
        panic!()
    };
    assert_eq!((f.amount, &f.source), (10, &SourceCriterion::Host));
    let MiddlewareConfig::Compress(c) = one(&[("traefik.http.middlewares.gz.compress", "true")])
    else {
        panic!()
    };
    assert_eq!(
        (c.min_response_body_bytes, c.encodings.clone()),
        (1024, vec![Encoding::Gzip, Encoding::Brotli, Encoding::Zstd])
    );
    let MiddlewareConfig::Retry(p) = one(&[
        ("traefik.http.middlewares.r.retry.attempts", "4"),
        ("traefik.http.middlewares.r.retry.initialinterval", "100ms"),
        ("traefik.http.middlewares.r.retry.status", "500-503,429"),
    ]) else {
        panic!()
    };
    assert_eq!(
        (p.num_retries, p.backoff_base),
        (3, Duration::from_millis(100))
    );
    assert!(
        p.retry_on.connect_failure
            && p.retry_on.status_codes.contains(&502)
            && p.retry_on.status_codes.contains(&429)
    );
    assert!(!p.retry_on.status_codes.contains(&504));
    let MiddlewareConfig::CircuitBreaker(cb) = one(&[(
        "traefik.http.middlewares.cb.circuitbreaker.expression",
        "LatencyAtQuantileMS(50.0) > 100",
    )]) else {
        panic!()
    };
    assert_eq!(
        (cb.check_period, cb.fallback_duration, cb.response_code),
        (
            Duration::from_millis(100),
            Duration::from_secs(10),
            StatusCode::SERVICE_UNAVAILABLE
        )
    );
    let MiddlewareConfig::Buffering(b) = one(&[(
        "traefik.http.middlewares.b.buffering.maxrequestbodybytes",
        "2000000",
    )]) else {
        panic!()
    };
    assert_eq!(
        (b.max_request_body_bytes, b.max_response_body_bytes),
        (Some(2_000_000), None)
    );
}

#[test]
fn routers_name_middlewares_in_order_and_chains_expand() {
    let routes = from(&[
        ("traefik.http.routers.web.middlewares", "secured, gz@docker"),
        (
            "traefik.http.middlewares.secured.chain.middlewares",
            "auth,strip",
        ),
        (
            "traefik.http.middlewares.auth.basicauth.users",
            "test:$apr1$H6uskkkW$IgXLP6ewTrSuBkTrqE8wj/",
        ),
        (
            "traefik.http.middlewares.strip.stripprefix.prefixes",
            "/api",
        ),
        ("traefik.http.middlewares.gz.compress", "true"),
    ])
    .unwrap();
    let router = &routes.routers["web@shop"];
    assert_eq!(router.middlewares, ["secured@shop", "gz@docker"]);
    assert_eq!(
        routes.router_middlewares(router).unwrap(),
        ["auth@shop", "strip@shop", "gz@shop"]
    );
}

#[test]
fn references_resolve_across_providers() {
    let mut all = from(&[(
        "traefik.http.routers.web.middlewares",
        "auth@docker, strip@file",
    )])
    .unwrap();
    let other = from_labels(
        "login",
        &labels(&[(
            "traefik.http.middlewares.auth.basicauth.users",
            "test:$apr1$H6uskkkW$IgXLP6ewTrSuBkTrqE8wj/",
        )]),
        &[],
    )
    .unwrap();
    all.merge(other).unwrap();
    let e = all.validate().unwrap_err().to_string();
    assert_eq!(
        e,
        "routers.web@shop.middlewares: unknown middleware `strip@file` (no `strip` in the file)"
    );
    all.middlewares.insert(
        "strip".into(),
        MiddlewareConfig::StripPrefix(StripPrefix {
            prefixes: vec!["/a".into()],
            force_slash: false,
        }),
    );
    all.validate().unwrap();
    assert_eq!(
        all.router_middlewares(&all.routers["web@shop"]).unwrap(),
        ["auth@login", "strip"]
    );
    // The same name from two services is ambiguous for `@docker`.
    let twin = from_labels(
        "admin",
        &labels(&[("traefik.http.middlewares.auth.compress", "true")]),
        &[],
    )
    .unwrap();
    all.merge(twin).unwrap();
    let e = all.validate().unwrap_err().to_string();
    assert!(
        e.contains("`auth@docker` is ambiguous: auth@admin, auth@login"),
        "{e}"
    );
}

#[test]
fn unknown_types_and_options_are_refused_by_name() {
    let cases = [
        (("traefik.http.middlewares.m.stripprefix.prefix", "/a"), "label traefik.http.middlewares.m.stripprefix.prefix: unknown stripPrefix option `prefix`"),
        (("traefik.http.middlewares.m.teleport.to", "mars"), "label traefik.http.middlewares.m.teleport: unknown middleware type `teleport`"),
        (("traefik.http.middlewares.m.forwardauth.address", "http://a"), "the Træfik middleware `forwardAuth` is not supported by shoal"),
        (("traefik.http.middlewares.m.headers.customrequestheaders", "x"), "expected a table of names and values"),
        (("traefik.http.middlewares.m.ratelimit.redis.endpoints", "a:6379"), "Redis is not supported"),
        (("traefik.http.middlewares.m.buffering.retryexpression", "IsNetworkError()"), "retryExpression is not supported"),
        (("traefik.http.middlewares.m.ratelimit.sourcecriterion.requesthost", "maybe"), "`maybe` is not true or false"),
        (("traefik.http.middlewares.m.basicauth.users", "test:test"), "plain text is not accepted"),
        (("traefik.http.middlewares.m.ipallowlist.sourcerange", "10.0.0.300"), "`10.0.0.300` is not an IP address or CIDR range"),
        (("traefik.http.middlewares.m.ipallowlist.sourcerange", "fd00::/64, 2001:db8::/129"), "`2001:db8::/129` is not an IP address or CIDR range"),
        (("traefik.http.middlewares.m.ipwhitelist.sourcerange", "fe:::80"), "`fe:::80` is not an IP address or CIDR range"),
        (("traefik.http.middlewares.m.circuitbreaker.expression", "NetworkErrorRatio() >> 1"), "expected a number"),
        (("traefik.http.middlewares.m.redirectscheme.port", "443"), "redirectscheme.scheme: is required"),
        (("traefik.http.middlewares.m.compress.encodings", "gzip,lz4"), "unsupported encoding `lz4`"),
        (("traefik.http.middlewares.m", "true"), "expected a middleware type after the name"),
        (("traefik.http.middlewares.m.stripprefix.prefixes", "api"), "does not start with `/`"),
        (("traefik.http.middlewares.m.retry.attempts", "0"), "must be at least 1"),
        (("traefik.http.routers.web.middlewares", "no@such@thing"), "is not a middleware name"),
    ];
    for (label, needle) in cases {
        let e = from(&[label]).unwrap_err();
        assert!(e.contains(needle), "{label:?}: {e}");
    }
    let e = from(&[
        ("traefik.http.middlewares.m.stripprefix.prefixes", "/a"),
        ("traefik.http.middlewares.m.addprefix.prefix", "/b"),
    ])
    .unwrap_err();
    assert!(e.contains("one middleware has one type"), "{e}");
    let e = from(&[
        (
            "traefik.http.middlewares.l.ratelimit.sourcecriterion.requesthost",
            "true",
        ),
        (
            "traefik.http.middlewares.l.ratelimit.sourcecriterion.requestheadername",
            "X-Key",
        ),
    ])
    .unwrap_err();
    assert!(e.contains("exclude each other"), "{e}");
}

#[test]
fn chains_that_contain_themselves_are_refused() {
    let mut all = from(&[
        ("traefik.http.middlewares.a.chain.middlewares", "b"),
        ("traefik.http.middlewares.b.chain.middlewares", "a"),
    ])
    .unwrap();
    let e = all.validate().unwrap_err().to_string();
    assert!(e.contains("contains itself"), "{e}");
    all.middlewares.clear();
    all.validate().unwrap();
}

const FILE: &str = r#"
[entrypoints.web]
address = "127.0.0.1:8080"

[routers.shop]
rule = "Host(`shop.test`)"
service = "shop"
middlewares = ["secured", "gz"]

[services.shop]
servers = [{ url = "http://10.0.0.5:8080" }]

[middlewares.secured.chain]
middlewares = ["auth", "strip-api"]

[middlewares.auth.basicAuth]
users = ["test:$apr1$H6uskkkW$IgXLP6ewTrSuBkTrqE8wj/"]
realm = "shop"
headerField = "X-WebAuth-User"

[middlewares.strip-api.stripPrefix]
prefixes = ["/api"]

[middlewares.gz.compress]
minResponseBodyBytes = 512
encodings = ["br", "gzip"]

[middlewares.rl.rateLimit]
average = 100
burst = 50
period = "10s"
sourceCriterion = { ipStrategy = { depth = 1, excludedIPs = ["10.0.0.0/8"] } }

[middlewares.hdr.headers]
customRequestHeaders = { X-Script-Name = "test", X-Drop = "" }
accessControlAllowMethods = ["GET", "OPTIONS"]
"#;

#[test]
fn middlewares_from_the_file() {
    let c = ProxyConfig::from_toml(FILE, "f.toml").unwrap_or_else(|e| panic!("{e}"));
    let r = &c.routes;
    assert_eq!(
        r.router_middlewares(&r.routers["shop"]).unwrap(),
        ["auth", "strip-api", "gz"]
    );
    let MiddlewareConfig::Compress(gz) = &r.middlewares["gz"] else {
        panic!()
    };
    assert_eq!(
        (gz.min_response_body_bytes, gz.encodings.clone()),
        (512, vec![Encoding::Brotli, Encoding::Gzip])
    );
    let MiddlewareConfig::RateLimit(rl) = &r.middlewares["rl"] else {
        panic!()
    };
    assert_eq!(
        (rl.average, rl.burst, rl.period),
        (100, 50, Duration::from_secs(10))
    );
    assert_eq!(
        rl.source,
        SourceCriterion::Ip(IpStrategy::Depth {
            depth: 1,
            ipv6_subnet: None
        }),
        "depth wins over excludedIPs"
    );
    let MiddlewareConfig::Headers(h) = &r.middlewares["hdr"] else {
        panic!()
    };
    assert_eq!(h.custom_request_headers.len(), 2);
}

#[test]
fn file_errors_name_the_middleware_and_option() {
    let e = |extra: &str| {
        ProxyConfig::from_toml(&format!("{FILE}\n{extra}"), "f.toml")
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        e("[middlewares.x.stripPrefix]\nprefixes = [\"/a\"]\ncolour = \"red\"\n"),
        "middlewares.x.stripPrefix.colour: unknown stripPrefix option `colour`"
    );
    assert_eq!(
        e("[middlewares.x.Teleport]\nto = 1\n")
            .split(" (")
            .next()
            .unwrap(),
        "middlewares.x.Teleport: unknown middleware type `Teleport`"
    );
    assert_eq!(
        e("[middlewares.x]\n"),
        "middlewares.x: a middleware needs a type, like stripPrefix"
    );
    assert_eq!(
        e("[middlewares.x.rateLimit]\naverage = \"lots\"\n"),
        "middlewares.x.rateLimit.average: `lots` is not a whole number"
    );
    assert_eq!(
        e("[middlewares.x.rateLimit]\nperiod = \"soon\"\n"),
        "middlewares.x.rateLimit.period: `soon` is not a duration like 100ms, 1.5s or 1m30s"
    );
    let unknown = FILE.replace(
        r#"middlewares = ["secured", "gz"]"#,
        r#"middlewares = ["secured", "nope"]"#,
    );
    let e = ProxyConfig::from_toml(&unknown, "f.toml")
        .unwrap_err()
        .to_string();
    assert_eq!(e, "routers.shop.middlewares: unknown middleware `nope`");
    let twice = FILE.replace(
        r#"middlewares = ["secured", "gz"]"#,
        "middlewares = [\"secured\", \"gz\"]\nretry = { attempts = 2 }",
    );
    let retry = format!("{twice}\n[middlewares.r.retry]\nattempts = 3\n")
        .replace(r#"["secured", "gz"]"#, r#"["secured", "r"]"#);
    let e = ProxyConfig::from_toml(&retry, "f.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("at most one retry setting"), "{e}");
}

//! Cases from docker-flow-proxy's documentation (docs/usage.md: the reconfigure
//! parameters) and its `getServiceDestList` rules; the middleware cases go through the
//! label parser too, so they hold once it reads Træfik's middlewares.

use std::collections::BTreeMap;

use super::*;
use crate::config::labels::from_labels;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn df(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut l = labels(pairs);
    l.insert("com.df.notify".into(), "true".into());
    translate("go-demo", &l).unwrap()
}

fn err(pairs: &[(&str, &str)]) -> String {
    let mut l = labels(pairs);
    l.insert("com.df.notify".into(), "true".into());
    translate("go-demo", &l).unwrap_err().to_string()
}

fn rule(t: &BTreeMap<String, String>, router: &str) -> String {
    t[&format!("traefik.http.routers.{router}.rule")].clone()
}

#[test]
fn notify_opts_in() {
    assert!(!notified(&labels(&[])).unwrap());
    assert!(notified(&labels(&[("com.df.notify", "true")])).unwrap());
    assert!(!notified(&labels(&[("com.df.notify", "false")])).unwrap());
    let e = notified(&labels(&[("com.df.notify", "yes")])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "label com.df.notify: `yes` is not true or false"
    );
}

#[test]
fn service_path_is_a_path_prefix_list() {
    let t = df(&[("com.df.servicePath", "/demo"), ("com.df.port", "8080")]);
    assert_eq!(t["traefik.enable"], "true");
    assert_eq!(rule(&t, "go-demo-df"), "PathPrefix(`/demo`)");
    assert_eq!(t["traefik.http.routers.go-demo-df.service"], "go-demo-df");
    assert_eq!(
        t["traefik.http.services.go-demo-df.loadbalancer.server.port"],
        "8080"
    );
    let t = df(&[("com.df.servicePath", "/api/v1/books, /api/v2/books")]);
    assert_eq!(
        rule(&t, "go-demo-df"),
        "(PathPrefix(`/api/v1/books`) || PathPrefix(`/api/v2/books`))"
    );
}

#[test]
fn service_domain_alone_means_every_path() {
    let t = df(&[("com.df.serviceDomain", "ecme.com,something.else.com")]);
    assert_eq!(
        rule(&t, "go-demo-df"),
        "(Host(`ecme.com`) || Host(`something.else.com`))"
    );
    let t = df(&[
        ("com.df.serviceDomain", "ecme.com"),
        ("com.df.servicePath", "/demo"),
    ]);
    assert_eq!(
        rule(&t, "go-demo-df"),
        "Host(`ecme.com`) && PathPrefix(`/demo`)"
    );
}

#[test]
fn domain_algorithms_and_wildcards() {
    let t = df(&[("com.df.serviceDomain", "*.acme.com")]);
    assert_eq!(rule(&t, "go-demo-df"), r"HostRegexp(`^.*\.acme\.com$`)");
    let t = df(&[
        ("com.df.serviceDomain", "acme.com"),
        ("com.df.serviceDomainAlgo", "hdr_dom(host)"),
    ]);
    assert_eq!(
        rule(&t, "go-demo-df"),
        "Host(`acme.com`) || Host(`*.acme.com`)"
    );
    let t = df(&[
        ("com.df.serviceDomain", "acme.com"),
        ("com.df.serviceDomainAlgo", "hdr(host)"),
    ]);
    assert_eq!(rule(&t, "go-demo-df"), "Host(`acme.com`)");
    let e = err(&[
        ("com.df.serviceDomain", "acme.com"),
        ("com.df.serviceDomainAlgo", "req.ssl_sni"),
    ]);
    assert!(
        e.starts_with("label com.df.serviceDomainAlgo: `req.ssl_sni` is not supported"),
        "{e}"
    );
}

#[test]
fn path_types_and_excludes() {
    let t = df(&[
        ("com.df.servicePath", "/demo"),
        ("com.df.servicePathExclude", "/demo/metrics,/demo/admin"),
    ]);
    assert_eq!(
        rule(&t, "go-demo-df"),
        "PathPrefix(`/demo`) && !PathPrefix(`/demo/metrics`) && !PathPrefix(`/demo/admin`)"
    );
    let t = df(&[
        ("com.df.servicePath", "/exact"),
        ("com.df.pathType", "path"),
    ]);
    assert_eq!(rule(&t, "go-demo-df"), "Path(`/exact`)");
    let t = df(&[
        ("com.df.servicePath", "^/v[0-9]+/"),
        ("com.df.pathType", "path_reg"),
    ]);
    assert_eq!(rule(&t, "go-demo-df"), "PathRegexp(`^/v[0-9]+/`)");
    let t = df(&[
        ("com.df.servicePath", ".json"),
        ("com.df.pathType", "path_end"),
    ]);
    assert_eq!(rule(&t, "go-demo-df"), r"PathRegexp(`\.json$`)");
    let e = err(&[("com.df.servicePath", "demo")]);
    assert_eq!(e, "label com.df.servicePath: `demo` does not start with /");
    let e = err(&[
        ("com.df.servicePath", "/d"),
        ("com.df.pathType", "path_dir"),
    ]);
    assert!(
        e.starts_with("label com.df.pathType: `path_dir` is not supported"),
        "{e}"
    );
}

#[test]
fn indexed_destinations_inherit_the_unindexed_labels() {
    let t = df(&[
        ("com.df.serviceDomain", "acme.com"),
        ("com.df.servicePath.1", "/api"),
        ("com.df.port.1", "8080"),
        ("com.df.servicePath.2", "/admin"),
        ("com.df.port.2", "9090"),
        ("com.df.servicePath.4", "/ignored"),
    ]);
    assert_eq!(
        rule(&t, "go-demo-df-1"),
        "Host(`acme.com`) && PathPrefix(`/api`)"
    );
    assert_eq!(
        rule(&t, "go-demo-df-2"),
        "Host(`acme.com`) && PathPrefix(`/admin`)"
    );
    assert_eq!(
        t["traefik.http.services.go-demo-df-2.loadbalancer.server.port"],
        "9090"
    );
    // Destinations stop at the first gap, as docker-flow-proxy's loop does.
    assert!(!t.contains_key("traefik.http.routers.go-demo-df-4.rule"));
    assert!(!t.contains_key("traefik.http.routers.go-demo-df.rule"));
    let e = err(&[("com.df.servicePath.11", "/x")]);
    assert_eq!(e, "label com.df.servicePath.11: index 11 is outside 1..=10");
}

#[test]
fn the_translation_parses_as_routes() {
    let t = df(&[
        ("com.df.serviceDomain", "acme.com"),
        ("com.df.servicePath.1", "/api"),
        ("com.df.port.1", "8080"),
        ("com.df.servicePath.2", "/admin"),
        ("com.df.port.2", "9090"),
        ("com.df.isDefaultBackend.2", "false"),
        ("com.df.distribute", "true"),
    ]);
    let routes = from_labels("docker", &t, &["10.0.0.7".parse().unwrap()]).unwrap();
    assert_eq!(routes.routers.len(), 2);
    assert_eq!(
        routes.services["go-demo-df-1@docker"].servers[0].addr,
        "10.0.0.7:8080".parse().unwrap()
    );
}

#[test]
fn default_backend_catches_everything_last() {
    let t = df(&[("com.df.isDefaultBackend", "true"), ("com.df.port", "80")]);
    assert_eq!(rule(&t, "go-demo-df"), "PathPrefix(`/`)");
    assert_eq!(t["traefik.http.routers.go-demo-df.priority"], "1");
}

#[test]
fn unsupported_parameters_are_refused_not_dropped() {
    for p in [
        "denyHttp",
        "allowedMethods",
        "serviceHeader",
        "usersSecret",
        "redirectFromDomain",
    ] {
        let key = format!("com.df.{p}");
        let e = err(&[("com.df.servicePath", "/x"), (&key, "x")]);
        assert!(e.starts_with(&format!("label {key}: not supported")), "{e}");
    }
    let e = err(&[("com.df.servicePath", "/x"), ("com.df.reqMode", "tcp")]);
    assert!(e.contains("reqMode `tcp` is not supported"), "{e}");
    let e = err(&[("com.df.servicePath", "/x"), ("com.df.port", "http")]);
    assert_eq!(e, "label com.df.port: `http` is not a port");
    let e = err(&[("com.df.servicePath", "/x"), ("com.df.servicePath.x", "/y")]);
    assert!(e.contains("com.df.PARAMETER.INDEX"), "{e}");
}

#[test]
fn https_only_is_a_redirect_scheme_middleware() {
    let t = df(&[("com.df.servicePath", "/x"), ("com.df.httpsOnly", "true")]);
    let m = "traefik.http.middlewares.go-demo-df-https.redirectscheme";
    assert_eq!(t[&format!("{m}.scheme")], "https");
    assert_eq!(t[&format!("{m}.permanent")], "false");
    assert_eq!(
        t["traefik.http.routers.go-demo-df.middlewares"],
        "go-demo-df-https"
    );
    let t = df(&[
        ("com.df.servicePath", "/x"),
        ("com.df.httpsOnly", "true"),
        ("com.df.httpsRedirectCode", "301"),
    ]);
    assert_eq!(t[&format!("{m}.permanent")], "true");
    let e = err(&[
        ("com.df.servicePath", "/x"),
        ("com.df.httpsOnly", "true"),
        ("com.df.httpsRedirectCode", "200"),
    ]);
    assert!(e.contains("`200` is not a redirect code"), "{e}");
}

#[test]
fn req_path_search_replace_is_a_chain_of_replace_path_regex() {
    let t = df(&[
        ("com.df.servicePath", "/demo"),
        (
            "com.df.reqPathSearchReplace",
            "/replace-something/,/with-else/:^/demo/(.*),/\\1",
        ),
    ]);
    let m = |n: u32, f: &str| {
        t[&format!("traefik.http.middlewares.go-demo-df-rewrite-{n}.replacepathregex.{f}")].clone()
    };
    assert_eq!(m(1, "regex"), "/replace-something/");
    assert_eq!(m(1, "replacement"), "/with-else/");
    assert_eq!(m(2, "regex"), "^/demo/(.*)");
    assert_eq!(m(2, "replacement"), "/${1}");
    assert_eq!(
        t["traefik.http.routers.go-demo-df.middlewares"],
        "go-demo-df-rewrite-1,go-demo-df-rewrite-2"
    );
    let e = err(&[
        ("com.df.servicePath", "/x"),
        ("com.df.reqPathSearchReplace", "/a"),
    ]);
    assert!(e.contains("`/a` is not SEARCH,REPLACE"), "{e}");
}

#[test]
fn users_are_a_basic_auth_middleware_with_hashed_passwords() {
    let t = df(&[
        ("com.df.servicePath", "/x"),
        ("com.df.users", "usr1:pwd1, usr2:pwd2"),
    ]);
    let users = &t["traefik.http.middlewares.go-demo-df-auth.basicauth.users"];
    // htpasswd -nbs usr1 pwd1
    assert_eq!(
        users,
        "usr1:{SHA}pj1LEyqaHTQw+a5QeCX1ckSeDRc=,usr2:{SHA}yItchBiX2v51zdn4upizLwB9a8M="
    );
    assert!(!users.contains("pwd1"));
    let t = df(&[
        ("com.df.servicePath", "/x"),
        ("com.df.users", "usr1:$6$salt$hash"),
        ("com.df.usersPassEncrypted", "true"),
        ("com.df.httpsOnly", "true"),
        ("com.df.reqPathSearchReplace", "a,b"),
    ]);
    assert_eq!(
        t["traefik.http.middlewares.go-demo-df-auth.basicauth.users"],
        "usr1:$6$salt$hash"
    );
    // Redirect first, then authentication, then the rewrite.
    assert_eq!(
        t["traefik.http.routers.go-demo-df.middlewares"],
        "go-demo-df-https,go-demo-df-auth,go-demo-df-rewrite-1"
    );
    let e = err(&[("com.df.servicePath", "/x"), ("com.df.users", "usr1")]);
    assert!(e.contains("`usr1` is not USER:PASSWORD"), "{e}");
    let e = err(&[("com.df.servicePath", "/x"), ("com.df.users.1", "a:b")]);
    assert!(e.contains("not supported"), "{e}");
}

/// These go through the label parser: they pass once it reads Træfik's middlewares.
#[test]
fn middleware_translations_parse_as_routes() {
    let t = df(&[
        ("com.df.servicePath", "/demo"),
        ("com.df.port", "8080"),
        ("com.df.httpsOnly", "true"),
        ("com.df.users", "usr1:pwd1"),
        ("com.df.reqPathSearchReplace", "^/demo/(.*),/\\1"),
    ]);
    let routes = from_labels("docker", &t, &["10.0.0.7".parse().unwrap()]);
    assert!(routes.is_ok(), "{routes:?}");
}

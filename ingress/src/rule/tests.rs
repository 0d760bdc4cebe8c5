use std::net::IpAddr;

use proptest::prelude::*;

use super::*;

struct Req {
    host: &'static str,
    path: &'static str,
    method: &'static str,
    headers: http::HeaderMap,
    query: Option<&'static str>,
    ip: IpAddr,
}

fn req(host: &'static str, path: &'static str) -> Req {
    Req {
        host,
        path,
        method: "GET",
        headers: http::HeaderMap::new(),
        query: None,
        ip: "10.1.2.3".parse().unwrap(),
    }
}

impl Req {
    fn view(&self) -> RequestView<'_> {
        RequestView {
            host: self.host,
            path: self.path,
            method: self.method,
            headers: &self.headers,
            query: self.query,
            client_ip: self.ip,
        }
    }
    fn hits(&self, rule: &str) -> bool {
        parse(rule).unwrap().matches(&self.view())
    }
}

#[test]
fn host_is_case_insensitive_and_ignores_port() {
    let r = req("Shop.Example.COM:8080", "/");
    assert!(r.hits("Host(`shop.example.com`)"));
    assert!(r.hits("Host(`SHOP.example.com`)"));
    assert!(!r.hits("Host(`example.com`)"));
    assert!(req("shop.example.com.", "/").hits("Host(`shop.example.com`)"));
    assert!(req("[::1]:80", "/").hits("HostRegexp(`^::1$`)"));
}

#[test]
fn wildcard_host_needs_a_label_in_front() {
    assert!(req("a.example.com", "/").hits("Host(`*.example.com`)"));
    assert!(req("a.b.example.com", "/").hits("Host(`*.example.com`)"));
    assert!(!req("example.com", "/").hits("Host(`*.example.com`)"));
    assert!(!req("badexample.com", "/").hits("Host(`*.example.com`)"));
}

#[test]
fn host_regexp_and_paths() {
    let r = req("api.example.com", "/api/v1/items");
    assert!(r.hits(r"HostRegexp(`^.+\.example\.com$`)"));
    assert!(r.hits("PathPrefix(`/api`)"));
    assert!(!r.hits("Path(`/api`)"));
    assert!(r.hits("Path(`/api/v1/items`)"));
    assert!(r.hits(r"PathRegexp(`^/api/v[0-9]+/`)"));
    assert!(!r.hits(r"PathRegexp(`^/v[0-9]+/`)"));
}

#[test]
fn method_header_query_client_ip() {
    let mut r = req("a", "/");
    r.method = "POST";
    r.headers.insert("x-env", "canary".parse().unwrap());
    r.query = Some("debug&user=j%C3%BCrgen+x&a=1");
    assert!(r.hits("Method(`POST`)"));
    assert!(r.hits("Method(`post`)"));
    assert!(!r.hits("Method(`GET`)"));
    assert!(r.hits("Header(`X-Env`, `canary`)"));
    assert!(!r.hits("Header(`X-Env`, `prod`)"));
    assert!(r.hits("HeaderRegexp(`x-env`, `^can`)"));
    assert!(r.hits("Query(`debug`)"));
    assert!(!r.hits("Query(`verbose`)"));
    assert!(r.hits("Query(`user`, `jürgen x`)"));
    assert!(r.hits("QueryRegexp(`a`, `^[0-9]$`)"));
    assert!(r.hits("ClientIP(`10.0.0.0/8`)"));
    assert!(r.hits("ClientIP(`10.1.2.3`)"));
    assert!(!r.hits("ClientIP(`192.168.0.0/16`)"));
    r.ip = "::ffff:10.1.2.3".parse().unwrap();
    assert!(r.hits("ClientIP(`10.0.0.0/8`)"));
}

#[test]
fn operators_and_precedence() {
    let r = req("a.com", "/x");
    assert!(r.hits("Host(`a.com`) && Path(`/x`)"));
    assert!(!r.hits("Host(`a.com`) && !Path(`/x`)"));
    assert!(r.hits("Host(`b.com`) || Path(`/x`)"));
    // && binds tighter: false || (true && true)
    assert!(r.hits("Host(`b.com`) || Host(`a.com`) && Path(`/x`)"));
    // (false || true) && false
    assert!(!r.hits("(Host(`b.com`) || Host(`a.com`)) && Path(`/y`)"));
    assert!(r.hits("!(Host(`b.com`) || Path(`/y`))"));
    assert!(r.hits("Host(\"a.com\")"));
    assert!(r.hits("  Host( `a.com` )  "));
}

#[test]
fn errors_name_the_position() {
    let e = parse("Host(`a.com`) && (Path(`/x`)").unwrap_err();
    assert_eq!(
        e.to_string(),
        "at 28: expected `)`, found the end of the rule"
    );
    let e = parse("Host(`a.com`").unwrap_err();
    assert_eq!(e.pos, 12);
    assert!(e.message.contains("expected `,` or `)`"), "{e}");
    let e = parse("Hots(`a.com`)").unwrap_err();
    assert_eq!(e.pos, 0);
    assert!(e.message.contains("unknown matcher `Hots`"), "{e}");
    let e = parse("Host(`a.com`) & Path(`/`)").unwrap_err();
    assert_eq!(
        e.to_string(),
        "at 14: expected `&&`, `||` or the end of the rule, found `&`"
    );
    let e = parse("Path(`x`)").unwrap_err();
    assert_eq!(e.pos, 5);
    let e = parse("PathRegexp(`(`)").unwrap_err();
    assert_eq!(e.pos, 11);
    assert!(e.message.contains("regular expression"), "{e}");
    let e = parse("Header(`a`)").unwrap_err();
    assert!(e.message.contains("takes 2 argument"), "{e}");
    let e = parse("ClientIP(`10.0.0.300`)").unwrap_err();
    assert_eq!(e.pos, 9);
    let e = parse("Host(`a b`)").unwrap_err();
    assert_eq!(e.pos, 5);
    let e = parse("Host(\"abc").unwrap_err();
    assert_eq!(e.pos, 5);
    assert!(e.message.contains("closing"));
    assert_eq!(parse("").unwrap_err().pos, 0);
    assert!(parse(&"(".repeat(500)).is_err());
    assert!(parse(&"!".repeat(500)).is_err());
}

#[test]
fn printing_is_canonical() {
    let r = parse("Host( \"A.com\" )").unwrap();
    assert_eq!(r.to_string(), "Host(`a.com`)");
    let r = parse("Host(`a`) && (Path(`/a`) || Path(`/b`)) && !Method(`get`)").unwrap();
    assert_eq!(
        r.to_string(),
        "Host(`a`) && (Path(`/a`) || Path(`/b`)) && !Method(`GET`)"
    );
    let r = parse("Header(`k`, \"a`b\\\"c\")").unwrap();
    assert_eq!(r.to_string(), "Header(`k`, \"a`b\\\"c\")");
    assert_eq!(parse(&r.to_string()).unwrap(), r);
}

fn leaf() -> impl Strategy<Value = Rule> {
    let label = "[a-z0-9][a-z0-9-]{0,8}";
    let text = "[ -~\u{e9}\n\t]{0,12}";
    prop_oneof![
        (proptest::collection::vec(label, 1..4), any::<bool>()).prop_map(|(labels, wild)| {
            let name = labels.join(".");
            Rule::Host(if wild {
                HostPattern::Wildcard(name)
            } else {
                HostPattern::Exact(name)
            })
        }),
        text.prop_map(|t| Rule::Path(format!("/{t}"))),
        text.prop_map(|t| Rule::PathPrefix(format!("/{t}"))),
        text.prop_map(|t| Rule::PathRegexp(Regex::new(&regex::escape(&t)).unwrap())),
        text.prop_map(|t| Rule::HostRegexp(
            Regex::new(&format!("^{}$", regex::escape(&t))).unwrap()
        )),
        prop_oneof![Just("GET"), Just("POST"), Just("PURGE")].prop_map(|m| Rule::Method(m.into())),
        ("[a-z][a-z0-9-]{0,8}", text).prop_map(|(k, v)| Rule::Header(k, v)),
        ("[a-z][a-z0-9-]{0,8}", text)
            .prop_map(|(k, v)| Rule::HeaderRegexp(k, Regex::new(&regex::escape(&v)).unwrap())),
        ("[a-z_]{1,8}", proptest::option::of(text)).prop_map(|(k, v)| Rule::Query(k, v)),
        ("[a-z_]{1,8}", text)
            .prop_map(|(k, v)| Rule::QueryRegexp(k, Regex::new(&regex::escape(&v)).unwrap())),
        (any::<[u8; 4]>(), 0u8..=32).prop_map(|(o, len)| {
            let net = ipnet::Ipv4Net::new(o.into(), len).unwrap().trunc();
            Rule::ClientIp(net.into())
        }),
        (any::<[u8; 16]>(), 0u8..=128).prop_map(|(o, len)| {
            let net = ipnet::Ipv6Net::new(o.into(), len).unwrap().trunc();
            Rule::ClientIp(net.into())
        }),
    ]
}

fn rule() -> impl Strategy<Value = Rule> {
    leaf().prop_recursive(5, 32, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Rule::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Rule::Or(Box::new(a), Box::new(b))),
            inner.prop_map(|a| Rule::Not(Box::new(a))),
        ]
    })
}

proptest! {
    #[test]
    fn parse_never_panics(s in "\\PC{0,80}") {
        let _ = parse(&s);
    }

    #[test]
    fn parse_never_panics_on_rule_like_text(
        parts in proptest::collection::vec(
            prop_oneof![
                Just("Host("), Just("Path("), Just("Query("), Just("ClientIP("), Just(")"),
                Just("`"), Just("\""), Just("\\"), Just("&&"), Just("||"), Just("!"), Just("("),
                Just(","), Just(" "), Just("a.com"), Just("/x"), Just("é"), Just("10.0.0.0/8"),
            ],
            0..24,
        )
    ) {
        let text = parts.concat();
        if let Err(e) = parse(&text) {
            prop_assert!(e.pos <= text.len());
        }
    }

    #[test]
    fn print_then_parse_round_trips(r in rule()) {
        let printed = r.to_string();
        let reparsed = parse(&printed);
        prop_assert_eq!(reparsed.as_ref(), Ok(&r), "printed: {}", printed);
    }
}

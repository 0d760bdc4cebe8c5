//! Unit tests of the rule language. The submodules hold table-driven cases whose
//! expectations come from Træfik's own tests and code (`pkg/muxer/http/matcher_test.go`,
//! `mux_test.go`, `pkg/rules/parser_test.go`, `matcher.go`, `mux.go`) and from Go's
//! `regexp/syntax` and `go/scanner` rules that Træfik inherits.

use std::net::IpAddr;

use proptest::prelude::*;

use super::*;

mod go_regexp;
mod requests;
mod syntax;
mod traefik_hosts;
mod traefik_matchers;
mod traefik_mux;

pub(super) struct Req {
    pub(super) host: &'static str,
    pub(super) path: &'static str,
    pub(super) method: &'static str,
    pub(super) headers: http::HeaderMap,
    pub(super) query: Option<&'static str>,
    pub(super) ip: IpAddr,
}

pub(super) fn req(host: &'static str, path: &'static str) -> Req {
    Req {
        host,
        path,
        method: "GET",
        headers: http::HeaderMap::new(),
        query: None,
        ip: "10.1.2.3".parse().unwrap(),
    }
}

/// A GET request for `url` (`https://host[:port][/path][?query]`), as Go's
/// `httptest.NewRequest` would make it: the path as written, `/` when there is none.
pub(super) fn url(url: &'static str) -> Req {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (host, target) = rest.split_at(end);
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    Req {
        query,
        ..req(host, if path.is_empty() { "/" } else { path })
    }
}

impl Req {
    pub(super) fn view(&self) -> RequestView<'_> {
        RequestView {
            host: self.host,
            path: self.path,
            method: self.method,
            headers: &self.headers,
            query: self.query,
            client_ip: self.ip,
        }
    }
    pub(super) fn hits(&self, rule: &str) -> bool {
        let parsed = parse(rule).unwrap_or_else(|e| panic!("{rule}: {e}"));
        parsed.matches(&self.view())
    }
    pub(super) fn with_header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers
            .append(name, http::HeaderValue::from_static(value));
        self
    }
}

/// Each `(url, expected)` of a table for one rule.
pub(super) fn check_urls(rule: &str, cases: &[(&'static str, bool)]) {
    let parsed = parse(rule).unwrap_or_else(|e| panic!("{rule}: {e}"));
    for &(u, expected) in cases {
        let got = parsed.matches(&url(u).view());
        assert_eq!(got, expected, "{rule} on {u}");
    }
}

/// Each rule must be refused by the parser.
pub(super) fn check_refused(rules: &[&str]) {
    for rule in rules {
        assert!(
            parse(rule).is_err(),
            "{rule} should be refused, got {:?}",
            parse(rule)
        );
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
    // HostRegexp sees the trailing dot (Træfik strips it only for Host).
    assert!(!req("shop.example.com.", "/").hits(r"HostRegexp(`^shop\.example\.com$`)"));
}

#[test]
fn wildcard_host_stands_for_exactly_one_label() {
    assert!(req("a.example.com", "/").hits("Host(`*.example.com`)"));
    assert!(!req("a.b.example.com", "/").hits("Host(`*.example.com`)"));
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
    r.method = "post";
    assert!(
        !r.hits("Method(`POST`)"),
        "the request's method is compared exactly"
    );
    assert!(!r.hits("Method(`post`)"));
    assert!(r.hits("Header(`X-Env`, `canary`)"));
    assert!(!r.hits("Header(`X-Env`, `prod`)"));
    assert!(r.hits("HeaderRegexp(`x-env`, `^can`)"));
    assert!(r.hits("Query(`debug`)"));
    assert!(
        !r.hits("Query(`a`)"),
        "one argument means present with an empty value"
    );
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
fn client_ip_with_ipv6_clients_and_ranges() {
    let mut r = req("a", "/");
    r.ip = "2001:db8:0:1::7".parse().unwrap();
    assert!(r.hits("ClientIP(`2001:db8::/32`)"));
    assert!(r.hits("ClientIP(`2001:db8:0:1::7`)"));
    assert!(
        r.hits("ClientIP(`2001:db8:0:1::ffff/64`)"),
        "host bits dropped"
    );
    assert!(!r.hits("ClientIP(`2001:db8:0:2::/64`)"));
    assert!(!r.hits("ClientIP(`10.0.0.0/8`)"));
    assert!(r.hits("ClientIP(`::/0`)"));
    // A mapped range is the IPv4 range; IPv4 clients (mapped or not) are IPv4, and
    // no IPv6 range holds them.
    r.ip = "10.1.2.3".parse().unwrap();
    assert!(r.hits("ClientIP(`::ffff:10.0.0.0/104`)"));
    assert!(r.hits("ClientIP(`::ffff:10.1.2.3`)"));
    assert!(!r.hits("ClientIP(`::/0`)"));
    r.ip = "::ffff:10.1.2.3".parse().unwrap();
    assert!(r.hits("ClientIP(`::ffff:10.0.0.0/104`)"));
    assert!(!r.hits("ClientIP(`::/0`)"));
    assert_eq!(
        parse("ClientIP(`::ffff:10.0.0.0/104`)")
            .unwrap()
            .to_string(),
        "ClientIP(`10.0.0.0/8`)"
    );
}

#[test]
fn bad_ipv6_client_ip_arguments_are_refused_clearly() {
    for bad in [
        "fd00::/129",
        "fe:::80",
        "2001:db8::1/",
        "[2001:db8::1]",
        "2001:db8::g",
    ] {
        let e = parse(&format!("ClientIP(`{bad}`)")).unwrap_err();
        assert_eq!(e.pos, 9, "{bad}: {e}");
        assert_eq!(
            e.message,
            format!("ClientIP: expected an IP address or CIDR, got `{bad}`")
        );
    }
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
    let e = parse("Header(`a`, ``)").unwrap_err();
    assert_eq!(e.to_string(), "at 12: Header: argument 2 is empty");
    let e = parse("pathPrefix(`/a`)").unwrap_err();
    assert!(
        e.message
            .contains("PathPrefix, pathprefix, PATHPREFIX or Pathprefix"),
        "{e}"
    );
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
    let text = "[ -~\u{e9}\n\t\r]{1,12}";
    prop_oneof![
        (proptest::collection::vec(label, 1..4), any::<bool>()).prop_map(|(labels, wild)| {
            let name = labels.join(".");
            Rule::Host(if wild {
                HostPattern::Wildcard(format!("*.{name}"))
            } else {
                HostPattern::Exact(name)
            })
        }),
        Just(Rule::Host(HostPattern::Any)),
        text.prop_map(|t| Rule::Path(format!("/{t}"))),
        text.prop_map(|t| Rule::PathPrefix(format!("/{t}"))),
        text.prop_map(|t| Rule::PathRegexp(Regex::new(&regex::escape(&t)).unwrap())),
        "[ -~]{0,12}".prop_map(|t| Rule::HostRegexp(
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
        (any::<[u8; 16]>(), 0u8..=128)
            .prop_map(|(o, len)| ipnet::Ipv6Net::new(o.into(), len).unwrap().trunc())
            // IPv4-mapped networks read back as IPv4 ones, as in Go.
            .prop_filter("not IPv4-mapped", |net| net
                .network()
                .to_ipv4_mapped()
                .is_none())
            .prop_map(|net| Rule::ClientIp(net.into())),
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

    #[test]
    fn go_regexp_translation_never_panics(s in "\\PC{0,40}") {
        let _ = Regex::new(&s);
    }

    #[test]
    fn go_regexp_of_rule_like_text_never_panics(
        parts in proptest::collection::vec(
            prop_oneof![
                Just("{"), Just("}"), Just("1"), Just(","), Just("["), Just("]"), Just("^"),
                Just("-"), Just("\\"), Just("d"), Just("p"), Just("Q"), Just("E"), Just("x"),
                Just("("), Just(")"), Just("?"), Just("*"), Just("|"), Just(":"), Just("P<"),
                Just(">"), Just("é"),
            ],
            0..24,
        )
    ) {
        let text = parts.concat();
        if let Err(e) = Regex::new(&text) {
            prop_assert!(e.offset <= text.len());
        }
    }

    #[test]
    fn escaped_text_matches_where_it_occurs(needle in "\\PC{1,8}", hay in "\\PC{0,16}") {
        let re = Regex::new(&regex::escape(&needle)).unwrap();
        prop_assert_eq!(re.is_match(&hay), hay.contains(&needle));
    }

    #[test]
    fn encoding_unreserved_characters_keeps_the_routing_path(
        chars in proptest::collection::vec(("[a-zA-Z0-9._~ -]", any::<bool>()), 0..16)
    ) {
        let plain: String = chars.iter().map(|(c, _)| c.as_str()).collect();
        let encoded: String = chars
            .iter()
            .map(|(c, enc)| if *enc || c == " " { format!("%{:02X}", c.as_bytes()[0]) } else { c.clone() })
            .collect();
        let (sent, want) = (format!("/{encoded}"), format!("/{plain}"));
        let routed = request::routing_path(&sent).unwrap();
        prop_assert_eq!(&*routed, want.as_bytes());
    }
}

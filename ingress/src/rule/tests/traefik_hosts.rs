//! `ClientIP`, `Method`, `Host` and `HostRegexp`, with the expectations of Træfik's
//! `pkg/muxer/http/matcher_test.go` (which rules are refused; which requests a valid rule
//! routes and which get 404) plus cases read from `matcher.go`.

use super::{check_refused, check_urls, req, url};
use crate::rule::{parse, RequestError};

#[test]
fn client_ip_refuses_bad_arguments() {
    check_refused(&[
        "ClientIP(`1`)",
        "ClientIP()",
        "ClientIP(``)",
        "ClientIP(`127.0.0.1`, `192.168.1.0/24`)",
        "ClientIP(`10.0.0.0/33`)",
        "ClientIP(`fe80::1%eth0`)",
    ]);
}

#[test]
fn client_ip_matches_addresses_and_networks() {
    let table: &[(&str, &[(&str, bool)])] = &[
        (
            "ClientIP(`127.0.0.1`)",
            &[("127.0.0.1", true), ("192.168.1.1", false)],
        ),
        (
            "ClientIP(`192.168.1.0/24`)",
            &[
                ("192.168.1.1", true),
                ("192.168.1.100", true),
                ("192.168.2.1", false),
            ],
        ),
        // Host bits of a CIDR are dropped, as by Go's ParseCIDR.
        (
            "ClientIP(`192.168.1.7/24`)",
            &[("192.168.1.200", true), ("192.168.0.1", false)],
        ),
        // IPv4-mapped IPv6 is IPv4, on either side.
        ("ClientIP(`127.0.0.1`)", &[("::ffff:127.0.0.1", true)]),
        (
            "ClientIP(`::ffff:127.0.0.1`)",
            &[("127.0.0.1", true), ("127.0.0.2", false)],
        ),
        (
            "ClientIP(`::ffff:10.0.0.0/104`)",
            &[("10.9.8.7", true), ("11.0.0.1", false)],
        ),
        // An IPv6 network never holds an IPv4 client (Go compares address lengths).
        (
            "ClientIP(`::/0`)",
            &[("10.1.2.3", false), ("2001:db8::1", true)],
        ),
        (
            "ClientIP(`0.0.0.0/0`)",
            &[("10.1.2.3", true), ("2001:db8::1", false)],
        ),
        (
            "ClientIP(`2001:db8::/32`)",
            &[("2001:db8:1::5", true), ("2001:db9::1", false)],
        ),
    ];
    for (rule, clients) in table {
        let parsed = parse(rule).unwrap();
        for (client, expected) in *clients {
            let mut r = url("https://example.com");
            r.ip = client.parse().unwrap();
            assert_eq!(parsed.matches(&r.view()), *expected, "{rule} from {client}");
        }
    }
}

#[test]
fn method_refuses_bad_arguments() {
    check_refused(&[
        "Method()",
        "Method(``)",
        "Method(`GET`, `POST`)",
        "Method(`GE T`)",
    ]);
}

#[test]
fn method_upper_cases_the_rule_and_compares_the_request_exactly() {
    for rule in ["Method(`GET`)", "Method(`get`)", "method(`Get`)"] {
        for (method, expected) in [
            ("GET", true),
            ("POST", false),
            ("get", false),
            ("Get", false),
        ] {
            let mut r = url("https://example.com");
            r.method = method;
            assert_eq!(r.hits(rule), expected, "{rule} for {method}");
        }
    }
    let mut r = url("https://example.com");
    r.method = "PURGE";
    assert!(r.hits("Method(`purge`)"), "extension methods work too");
}

#[test]
fn host_refuses_bad_arguments() {
    check_refused(&[
        "Host()",
        "Host(``)",
        "Host(`🦭.com`)",
        "Host(`example.com`, `example.org`)",
        "Host(`example.com/path`)",
        "Host(`exa mple.com`)",
    ]);
}

#[test]
fn host_matches_ignoring_case_port_and_trailing_dots() {
    check_urls(
        "Host(`example.com`)",
        &[
            ("https://example.com", true),
            ("https://example.com:8080", true),
            ("https://example.com/path", true),
            ("https://EXAMPLE.COM/path", true),
            ("https://example.org", false),
            ("https://example.org/path", false),
            ("https://example.com.", true),
            ("https://example.com./path", true),
            ("https://example.com.:8080", true),
            ("https://example.org.", false),
            ("https://example.com..", false),
            ("https://sub.example.com", false),
        ],
    );
    check_urls(
        "Host(`example.com.`)",
        &[
            ("https://example.com", true),
            ("https://example.com/path", true),
            ("https://example.org", false),
            ("https://example.com.", true),
            ("https://example.com./path", true),
            ("https://example.org.", false),
            ("https://example.org./path", false),
        ],
    );
    check_urls(
        "Host(`EXAMPLE.COM`)",
        &[
            ("https://example.com", true),
            ("https://example.com/path", true),
            ("https://example.org", false),
        ],
    );
}

#[test]
fn host_in_punycode_matches_only_punycode_requests() {
    check_urls(
        "Host(`xn--9t9h.com`)",
        &[
            ("https://xn--9t9h.com", true),
            ("https://xn--9t9h.com/path", true),
            ("https://example.com", false),
        ],
    );
    let raw = req("🦭.com", "/");
    assert!(!raw.hits("Host(`xn--9t9h.com`)"));
    let e = parse("Host(`xn--9t9h.com`)")
        .unwrap()
        .try_matches(&raw.view())
        .unwrap_err();
    assert!(matches!(e, RequestError::NonAsciiHost { .. }), "{e:?}");
}

#[test]
fn wildcard_host_stands_for_one_label() {
    check_urls(
        "Host(`*.example.com`)",
        &[
            ("https://test.example.com", true),
            ("https://other.example.com", true),
            ("https://OTHER.Example.com:443", true),
            ("https://test.example.com.", true),
            ("https://example.com", false),
            ("https://test.otherexample.com", false),
            ("https://a.b.example.com", false),
        ],
    );
    check_urls(
        "Host(`*.example.com.`)",
        &[
            ("https://test.example.com", true),
            ("https://example.com", false),
        ],
    );
}

#[test]
fn star_host_matches_every_request() {
    check_urls(
        "Host(`*`)",
        &[
            ("https://test.example.com", true),
            ("https://other.example.com", true),
            ("https://example.com", true),
            ("https://test.otherexample.com", true),
            ("https://localhost", true),
            ("http://[::1]:8080", true),
        ],
    );
    assert!(req("", "/").hits("Host(`*`)"), "even one without a host");
    assert!(!req("", "/").hits("Host(`example.com`)"));
}

#[test]
fn host_regexp_refuses_bad_arguments() {
    check_refused(&[
        "HostRegexp()",
        "HostRegexp(``)",
        "HostRegexp(`🦭.com`)",
        "HostRegexp(`(example.com`)",
        "HostRegexp(`example.com`, `example.org`)",
    ]);
}

#[test]
fn host_regexp_sees_the_lowercased_host_without_port() {
    check_urls(
        r"HostRegexp(`^[a-zA-Z-]+\.com$`)",
        &[
            ("https://example.com", true),
            ("https://example.com:8080", true),
            ("https://example.com/path", true),
            ("https://example.org", false),
            ("https://example.org/path", false),
        ],
    );
    check_urls(
        r"HostRegexp(`^[A-Z]+\.com$`)",
        &[
            ("https://example.com", false),
            ("https://EXAMPLE.com", false),
            ("https://example.com/path", false),
            ("https://example.org", false),
        ],
    );
    // Træfik v2's `{name:re}` is no template in v3: braces are literal characters.
    check_urls(
        r"HostRegexp(`{domain:[a-zA-Z-]+\.com}`)",
        &[
            ("https://example.com", false),
            ("https://example.com/path", false),
            ("https://example.org", false),
        ],
    );
    check_urls(
        r"HostRegexp(`^10::10$`)",
        &[("http://[10::10]:80", true), ("http://[10::10]", true)],
    );
}

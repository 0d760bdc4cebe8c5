//! `Path`, `PathPrefix`, `PathRegexp`, `Header`, `HeaderRegexp`, `Query` and
//! `QueryRegexp`, with the expectations of Træfik's `pkg/muxer/http/matcher_test.go`
//! plus cases read from `matcher.go` and `mux.go`.

use super::{check_refused, check_urls, req, url, Req};
use crate::rule::parse;

#[test]
fn path_refuses_bad_arguments() {
    check_refused(&["Path()", "Path(``)", "Path(`css`)", "Path(`/css`, `/js`)"]);
}

#[test]
fn path_compares_the_whole_path() {
    check_urls(
        "Path(`/css`)",
        &[
            ("https://example.com", false),
            ("https://example.com/html", false),
            ("https://example.org/css", true),
            ("https://example.com/css", true),
            ("https://example.com/css/", false),
            ("https://example.com/css/main.css", false),
            ("https://example.com/CSS", false),
            ("https://example.com/%63ss", true),
            ("https://example.com/css?x=1", true),
        ],
    );
}

#[test]
fn path_regexp_refuses_bad_arguments() {
    check_refused(&[
        "PathRegexp()",
        "PathRegexp(``)",
        "PathRegexp(`/(css`)",
        "PathRegexp(`/css`, `/js`)",
    ]);
}

#[test]
fn path_regexp_searches_the_routing_path() {
    check_urls(
        "PathRegexp(`^/(css|js)`)",
        &[
            ("https://example.com", false),
            ("https://example.com/html", false),
            ("https://example.org/css", true),
            ("https://example.com/CSS", false),
            ("https://example.com/css", true),
            ("https://example.com/css/", true),
            ("https://example.com/css/main.css", true),
            ("https://example.com/js", true),
            ("https://example.com/js/", true),
            ("https://example.com/js/main.js", true),
        ],
    );
    // `{` that starts no repetition is a literal, as in Go: Træfik v2's template syntax
    // now only matches paths holding those braces, sent raw or percent-encoded.
    check_urls(
        r#"PathRegexp("/{path:(css|js)}")"#,
        &[
            ("https://example.com", false),
            ("https://example.com/html", false),
            ("https://example.org/css", false),
            ("https://example.com/{path:css}", true),
            ("https://example.com/{path:css}/", true),
            ("https://example.com/%7Bpath:css%7D", true),
            ("https://example.com/%7Bpath:css%7D/", true),
            ("https://example.com/{path:js}", true),
            ("https://example.com/{path:js}/", true),
            ("https://example.com/%7Bpath:js%7D", true),
            ("https://example.com/%7Bpath:js%7D/", true),
            ("https://example.com/%7bpath:js%7d", true),
        ],
    );
}

#[test]
fn path_prefix_refuses_bad_arguments() {
    check_refused(&[
        "PathPrefix()",
        "PathPrefix(``)",
        "PathPrefix(`css`)",
        "PathPrefix(`/css`, `/js`)",
    ]);
}

#[test]
fn path_prefix_compares_the_start_of_the_path() {
    check_urls(
        r#"PathPrefix("/css")"#,
        &[
            ("https://example.com", false),
            ("https://example.com/html", false),
            ("https://example.org/css", true),
            ("https://example.com/css", true),
            ("https://example.com/css/", true),
            ("https://example.com/css/main.css", true),
            ("https://example.com/cssx", true),
            ("https://example.com/%63ss/x", true),
            ("https://example.com/c", false),
        ],
    );
}

/// `(headers sent, expected)` for one rule.
type HeaderCase = (&'static [(&'static str, &'static str)], bool);

fn check_headers(rule: &str, cases: &[HeaderCase]) {
    for (headers, expected) in cases {
        let r = headers
            .iter()
            .fold(url("https://example.com"), |r, (k, v)| r.with_header(k, v));
        assert_eq!(r.hits(rule), *expected, "{rule} with {headers:?}");
    }
}

#[test]
fn header_refuses_bad_arguments() {
    check_refused(&[
        "Header()",
        "Header(`X-Forwarded-Host`)",
        "Header(`X-Forwarded-Host`, ``)",
        "Header(``, `example.com`)",
        "Header(`X-Forwarded-Host`, `example.com`, `example.org`)",
        "Header(`X Forwarded`, `a`)",
    ]);
}

#[test]
fn header_compares_any_value_exactly() {
    for rule in [
        "Header(`X-Forwarded-Proto`, `https`)",
        "Header(`x-forwarded-proto`, `https`)",
        "HEADER(`X-FORWARDED-PROTO`, `https`)",
    ] {
        check_headers(
            rule,
            &[
                (&[("x-forwarded-proto", "https")], true),
                (
                    &[
                        ("x-forwarded-proto", "http"),
                        ("x-forwarded-proto", "https"),
                    ],
                    true,
                ),
                (
                    &[
                        ("x-forwarded-proto", "https"),
                        ("x-forwarded-proto", "http"),
                    ],
                    true,
                ),
                (&[("x-forwarded-proto", "HTTPS")], false),
                (&[("x-forwarded-proto", "http, https")], false),
                (&[("x-forwarded-host", "example.com")], false),
                (&[], false),
            ],
        );
    }
}

#[test]
fn header_matchers_never_see_host_or_transfer_encoding() {
    // Go's server takes both out of the header map before Træfik routes.
    let r = url("https://example.com")
        .with_header("host", "example.com")
        .with_header("transfer-encoding", "chunked");
    assert!(!r.hits("Header(`Host`, `example.com`)"));
    assert!(!r.hits("HeaderRegexp(`Host`, `.`)"));
    assert!(!r.hits("Header(`Transfer-Encoding`, `chunked`)"));
    assert!(r.hits("!Header(`Host`, `example.com`)"));
}

#[test]
fn header_regexp_refuses_bad_arguments() {
    check_refused(&[
        "HeaderRegexp()",
        "HeaderRegexp(`X-Forwarded-Host`)",
        "HeaderRegexp(`X-Forwarded-Host`, ``)",
        "HeaderRegexp(``, `example.com`)",
        "HeaderRegexp(`X-Forwarded-Host`,`(example.com`)",
        "HeaderRegexp(`X-Forwarded-Host`, `example.com`, `example.org`)",
    ]);
}

#[test]
fn header_regexp_searches_any_value() {
    for rule in [
        "HeaderRegexp(`X-Forwarded-Proto`, `^https?$`)",
        "HeaderRegexp(`x-forwarded-proto`, `^https?$`)",
    ] {
        check_headers(
            rule,
            &[
                (&[("x-forwarded-proto", "http")], true),
                (&[("x-forwarded-proto", "https")], true),
                (&[("x-forwarded-proto", "HTTPS")], false),
                (
                    &[("x-forwarded-proto", "ws"), ("x-forwarded-proto", "https")],
                    true,
                ),
                (&[("x-forwarded-host", "example.com")], false),
            ],
        );
    }
    check_headers(
        "HeaderRegexp(`X-Forwarded-Proto`, `http{secure:s?}`)",
        &[
            (&[("x-forwarded-proto", "http")], false),
            (&[("x-forwarded-proto", "https")], false),
            (&[("x-forwarded-proto", "http{secure:}")], true),
            (&[("x-forwarded-proto", "HTTP{secure:}")], false),
            (&[("x-forwarded-proto", "http{secure:s}")], true),
            (&[("x-forwarded-proto", "http{secure:S}")], false),
            (&[("x-forwarded-proto", "HTTPS")], false),
            (
                &[
                    ("x-forwarded-proto", "ws"),
                    ("x-forwarded-proto", "http{secure:s}"),
                ],
                true,
            ),
            (&[("x-forwarded-host", "example.com")], false),
        ],
    );
}

#[test]
fn header_values_are_compared_as_bytes() {
    let mut r = url("https://example.com");
    r.headers.insert(
        "x-name",
        http::HeaderValue::from_bytes("jürgen".as_bytes()).unwrap(),
    );
    assert!(r.hits("Header(`X-Name`, `jürgen`)"));
    assert!(r.hits("HeaderRegexp(`X-Name`, `^j.rgen$`)"));
    r.headers.insert(
        "x-name",
        http::HeaderValue::from_bytes(b"j\xFFrgen").unwrap(),
    );
    assert!(
        r.hits("HeaderRegexp(`X-Name`, `^j\\x{FFFD}rgen$`)"),
        "a bad byte reads as U+FFFD"
    );
}

#[test]
fn query_refuses_bad_arguments() {
    check_refused(&[
        "Query()",
        "Query(``)",
        "Query(``, `traefik`)",
        "Query(`q`, ``)",
        "Query(`q`, `traefik`, `proxy`)",
    ]);
}

#[test]
fn query_with_a_value_matches_any_value() {
    check_urls(
        "Query(`q`, `traefik`)",
        &[
            ("https://example.com", false),
            ("https://example.com?q=traefik", true),
            ("https://example.com?rel=ddg&q=traefik", true),
            ("https://example.com?q=traefik&q=proxy", true),
            ("https://example.com?q=awesome&q=traefik", true),
            ("https://example.com?q=nginx", false),
            ("https://example.com?rel=ddg", false),
            ("https://example.com?q=TRAEFIK", false),
            ("https://example.com?Q=traefik", false),
            ("https://example.com?rel=traefik", false),
            ("https://example.com?q=tra%65fik", true),
            ("https://example.com?%71=traefik", true),
        ],
    );
}

#[test]
fn query_with_one_argument_wants_an_empty_value() {
    check_urls(
        "Query(`mobile`)",
        &[
            ("https://example.com", false),
            ("https://example.com?mobile", true),
            ("https://example.com?mobile=", true),
            ("https://example.com?mobile=true", false),
            ("https://example.com?mobile=true&mobile", true),
            ("https://example.com?mobiles", false),
        ],
    );
}

#[test]
fn query_regexp_refuses_bad_arguments() {
    check_refused(&[
        "QueryRegexp()",
        "QueryRegexp(``)",
        "QueryRegexp(`q`, `(traefik`)",
        "QueryRegexp(`q`, `traefik`, `proxy`)",
        "QueryRegexp(`q`, ``)",
    ]);
}

#[test]
fn query_regexp_searches_any_value() {
    let base: &[(&str, bool)] = &[
        ("https://example.com", false),
        ("https://example.com?q=traefik", true),
        ("https://example.com?rel=ddg&q=traefik", true),
        ("https://example.com?q=traefik&q=proxy", true),
        ("https://example.com?q=awesome&q=traefik", true),
        ("https://example.com?Q=traefik", false),
        ("https://example.com?rel=traefik", false),
        ("https://example.com?q=nginx", true),
        ("https://example.com?rel=ddg&q=nginx", true),
        ("https://example.com?q=nginx&q=proxy", true),
        ("https://example.com?q=awesome&q=nginx", true),
        ("https://example.com?Q=nginx", false),
        ("https://example.com?rel=nginx", false),
        ("https://example.com?rel=ddg", false),
    ];
    let strict: &[(&str, bool)] = &[
        ("https://example.com?q=TRAEFIK", false),
        ("https://example.com?q=NGINX", false),
        ("https://example.com?q=haproxy", false),
    ];
    let loose: &[(&str, bool)] = &[
        ("https://example.com?q=TRAEFIK", true),
        ("https://example.com?q=NGINX", true),
        ("https://example.com?q=haproxy", true),
    ];
    check_urls("QueryRegexp(`q`, `^(traefik|nginx)$`)", base);
    check_urls("QueryRegexp(`q`, `^(traefik|nginx)$`)", strict);
    check_urls("QueryRegexp(`q`, `^.*$`)", base);
    check_urls("QueryRegexp(`q`, `^.*$`)", loose);
    check_urls(
        "QueryRegexp(`q`, `{value:(traefik|nginx)}`)",
        &[
            ("https://example.com?q=traefik", false),
            ("https://example.com?q={value:traefik}", true),
            ("https://example.com?q=%7Bvalue:nginx%7D", true),
        ],
    );
}

#[test]
fn query_regexp_with_one_argument_is_query() {
    let rule = parse("QueryRegexp(`mobile`)").unwrap();
    assert_eq!(rule, parse("Query(`mobile`)").unwrap());
    check_urls(
        "QueryRegexp(`mobile`)",
        &[
            ("https://example.com?mobile", true),
            ("https://example.com?mobile=1", false),
        ],
    );
}

#[test]
fn a_rule_refused_for_an_empty_argument_names_it() {
    for (rule, pos) in [
        ("HostRegexp(``)", 11),
        ("PathRegexp(``)", 11),
        ("Header(`X`, ``)", 12),
        ("QueryRegexp(`q`, ``)", 17),
        ("Host(``)", 5),
    ] {
        let e = parse(rule).unwrap_err();
        assert_eq!(e.pos, pos, "{rule}: {e}");
        assert!(e.message.contains("is empty"), "{rule}: {e}");
    }
}

/// Every request that `Req` can build matches no rule when it is one Træfik refuses.
#[test]
fn refused_requests_match_no_rule() {
    let refused: [Req; 3] = [req("🦭.com", "/"), req("a b", "/"), req("a.com", "/%zz")];
    for r in &refused {
        for rule in [
            "Host(`*`)",
            "!Host(`x.com`)",
            "PathPrefix(`/`)",
            "!Path(`/x`)",
        ] {
            assert!(!r.hits(rule), "{rule} on {}{}", r.host, r.path);
        }
    }
}

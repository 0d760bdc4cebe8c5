//! Whole rules, with the expectations of Træfik's `pkg/muxer/http/mux_test.go` (operators,
//! precedence, negation, matcher name spellings, IP literals in `Host`, the routing path)
//! and `pkg/rules/parser_test.go` (what the parser refuses, how negation distributes).

use super::{check_refused, check_urls};
use crate::rule::{parse, request, Rule};

#[test]
fn rules_without_a_matcher_are_refused() {
    check_refused(&[
        "",
        "   ",
        "rulewithnotmatcher",
        "Host(example.com)",
        "Path(`/1`) &&",
        "Path(`/1`) ||",
        "Path(`/1)",
        "Path(`/1`))",
        "(Path(`/1`)",
        "w(`1`)",
        "Foobar(`foo.bar`,`test.bar`)",
        "&& Path(`/1`)",
        "!",
        "()",
        "Host(`a`) Host(`b`)",
    ]);
}

#[test]
fn superfluous_parentheses_and_negation_parse() {
    assert_eq!(parse("(Path(`/1`))").unwrap(), parse("Path(`/1`)").unwrap());
    assert_eq!(
        parse("((Path(`/1`)))").unwrap(),
        parse("Path(`/1`)").unwrap()
    );
    assert!(matches!(parse("!Path(`/1`)").unwrap(), Rule::Not(_)));
    assert_eq!(
        parse("Query(`1`, `2`)").unwrap(),
        Rule::Query("1".into(), Some("2".into()))
    );
}

#[test]
fn host_accepts_ip_literals() {
    check_urls(
        "Host(`127.0.0.1`)",
        &[
            ("http://127.0.0.1/foo", true),
            ("http://127.0.0.1:8080/foo", true),
            ("http://127.0.0.2/foo", false),
        ],
    );
    check_urls(
        "Host(`10::10`)",
        &[
            ("http://[10::10]/foo", true),
            ("http://[10::10]:8080/foo", true),
            ("http://10::10/foo", true),
            ("http://[10::11]/foo", false),
        ],
    );
    check_urls(
        "Host(`::1`)",
        &[("http://[::1]:80/", true), ("http://[0::1]/", false)],
    );
    // Træfik compares with the host whose brackets are gone: a bracketed rule never matches.
    check_urls(
        "Host(`[10::10]`)",
        &[
            ("http://[10::10]/foo", false),
            ("http://[10::10]:80/foo", false),
        ],
    );
}

#[test]
fn host_and_path_prefix() {
    check_urls(
        "Host(`localhost`) && PathPrefix(`/css`)",
        &[
            ("https://localhost/css", true),
            ("https://localhost/js", false),
        ],
    );
}

#[test]
fn or_and_precedence_and_grouping() {
    check_urls(
        "Host(`example.com`) || Host(`example.org`)",
        &[
            ("https://example.com/css", true),
            ("https://example.org/js", true),
            ("https://example.eu/html", false),
        ],
    );
    let or_of_and: &[(&str, bool)] = &[
        ("https://example.com/css", true),
        ("https://example.com/js", true),
        ("https://example.org/css", true),
        ("https://example.org/js", false),
        ("https://example.eu/css", false),
    ];
    check_urls(
        r#"Host("example.com") || (Host("example.org") && Path("/css"))"#,
        or_of_and,
    );
    check_urls(
        r#"Host("example.com") || Host("example.org") && Path("/css")"#,
        or_of_and,
    );
    check_urls(
        r#"(Host("example.com") || Host("example.org")) && Path("/css")"#,
        &[
            ("https://example.com/css", true),
            ("https://example.com/js", false),
            ("https://example.org/css", true),
            ("https://example.org/js", false),
            ("https://example.eu/css", false),
        ],
    );
    check_urls(
        r#"(Host("example.com") && Path("/js")) || ((Host("example.org")) && Path("/css"))"#,
        &[
            ("https://example.com/css", false),
            ("https://example.com/js", true),
            ("https://example.org/css", true),
            ("https://example.org/js", false),
            ("https://example.eu/css", false),
        ],
    );
}

#[test]
fn matcher_names_in_each_accepted_spelling() {
    let cases: &[(&str, bool)] = &[
        ("https://example.com/css", true),
        ("https://example.com/js", false),
    ];
    for rule in [
        r#"PATHPREFIX("/css")"#,
        r#"pathprefix("/css")"#,
        r#"PathPrefix("/css")"#,
        r#"Pathprefix("/css")"#,
    ] {
        check_urls(rule, cases);
    }
    for rule in [
        "HOST(`a`)",
        "host(`a`)",
        "Host(`a`)",
        "HOSTREGEXP(`a`)",
        "hostregexp(`a`)",
        "Hostregexp(`a`)",
        "HostRegexp(`a`)",
        "PATH(`/`)",
        "path(`/`)",
        "PATHREGEXP(`a`)",
        "Pathregexp(`a`)",
        "METHOD(`GET`)",
        "method(`GET`)",
        "HEADER(`a`, `b`)",
        "header(`a`, `b`)",
        "HEADERREGEXP(`a`, `b`)",
        "Headerregexp(`a`, `b`)",
        "QUERY(`a`)",
        "query(`a`)",
        "QUERYREGEXP(`a`, `b`)",
        "Queryregexp(`a`, `b`)",
        "ClientIP(`1.2.3.4`)",
        "CLIENTIP(`1.2.3.4`)",
        "clientip(`1.2.3.4`)",
        "Clientip(`1.2.3.4`)",
    ] {
        assert!(parse(rule).is_ok(), "{rule}: {:?}", parse(rule));
    }
    check_refused(&[
        "pathPrefix(`/css`)",
        "PathprefiX(`/css`)",
        "PAthPrefix(`/css`)",
        "ClientIp(`1.2.3.4`)",
        "clientIP(`1.2.3.4`)",
        "hostRegexp(`a`)",
        "HostRegExp(`a`)",
    ]);
}

#[test]
fn negation() {
    let table: &[(&str, &[(&str, bool)])] = &[
        (
            r#"!Host("example.com")"#,
            &[
                ("https://example.org", true),
                ("https://example.com", false),
            ],
        ),
        (
            r#"!(Host("example.com") || Host("example.org"))"#,
            &[
                ("https://example.eu/js", true),
                ("https://example.com/css", false),
                ("https://example.org/js", false),
            ],
        ),
        (
            r#"!(Host("example.com") && Path("/css"))"#,
            &[
                ("https://example.com/js", true),
                ("https://example.eu/css", true),
                ("https://example.com/css", false),
            ],
        ),
        (
            r#"!(Host("example.com") && !Path("/css"))"#,
            &[
                ("https://example.com/css", true),
                ("https://example.org/css", true),
                ("https://example.com/js", false),
            ],
        ),
        (
            r#"!Host("example.com") || !Path("/css")"#,
            &[
                ("https://example.com/js", true),
                ("https://example.org/css", true),
                ("https://example.com/css", false),
            ],
        ),
        (
            r#"!(!(Host("example.com") && Pathprefix("/css")))"#,
            &[
                ("https://example.com/css", true),
                ("https://example.com/js", false),
                ("https://example.org/css", false),
            ],
        ),
        (
            r#"!Host("example.com") && Pathprefix("/css")"#,
            &[
                ("https://example.org/css", true),
                ("https://example.org/js", false),
                ("https://example.com/css", false),
                ("https://example.com/js", false),
            ],
        ),
        (
            r#"!(Host("example.com") && Path("/js"))"#,
            &[
                ("https://example.com/js", false),
                ("https://example.com/html", true),
                ("https://example.org/js", true),
                ("https://example.com/css", true),
                ("https://example.org/css", true),
                ("https://example.org/html", true),
                ("https://example.eu/images", true),
            ],
        ),
        (
            "!!Path(`/a`)",
            &[("https://x/a", true), ("https://x/b", false)],
        ),
    ];
    for (rule, cases) in table {
        check_urls(rule, cases);
    }
}

#[test]
fn negated_groups_follow_de_morgan() {
    // Træfik pushes `!` down to the matchers; the truth tables must agree.
    let pairs = [
        ("!(Path(`/1`) && Host(`2`))", "!Path(`/1`) || !Host(`2`)"),
        ("!(Path(`/1`) || Host(`2`))", "!Path(`/1`) && !Host(`2`)"),
        (
            "!(Path(`/1`) && !(Host(`2`) || Method(`PUT`)))",
            "!Path(`/1`) || Host(`2`) || Method(`PUT`)",
        ),
    ];
    for (left, right) in pairs {
        for host in ["2", "3"] {
            for path in ["/1", "/2"] {
                for method in ["GET", "PUT"] {
                    let mut r = super::req(host, path);
                    r.method = method;
                    assert_eq!(
                        r.hits(left),
                        r.hits(right),
                        "{left} vs {right} on {host}{path} {method}"
                    );
                }
            }
        }
    }
}

#[test]
fn routing_path_decodes_all_but_reserved_characters() {
    let table = [
        ("/foo%20bar", "/foo bar"),
        ("/foo%2Fbar", "/foo%2Fbar"),
        ("/foo%20bar%2Fbaz%23qux", "/foo bar%2Fbaz%23qux"),
        ("/%41%42c", "/ABc"),
        ("/a%7Eb%2db%5fc%2E", "/a~b-b_c."),
        ("/%25", "/%25"),
        (
            "/%3A%40%21%24%26%27%28%29%2A%2B%2C%3B%3D%3F%5B%5D",
            "/%3A%40%21%24%26%27%28%29%2A%2B%2C%3B%3D%3F%5B%5D",
        ),
        // Træfik's list of kept encodings is upper-case only.
        ("/a%2fb", "/a/b"),
        ("/caf%C3%A9", "/café"),
        ("/plain/path", "/plain/path"),
        ("/(x)[y]!*'", "/(x)[y]!*'"),
        // A target Go must re-encode comes out in Go's encoding.
        ("/{a}", "/{a}"),
        ("/{a}%2Fb", "/{a}/b"),
        ("/(x){y}", "/%28x%29{y}"),
        ("/é", "/é"),
    ];
    for (sent, routed) in table {
        let got = request::routing_path(sent).unwrap();
        assert_eq!(String::from_utf8_lossy(&got), routed, "{sent}");
    }
    check_urls(
        "PathPrefix(`/foo bar`)",
        &[
            ("https://a/foo%20bar/x", true),
            ("https://a/foo+bar", false),
        ],
    );
    check_urls(
        "Path(`/foo%2Fbar`)",
        &[
            ("https://a/foo%2Fbar", true),
            ("https://a/foo/bar", false),
            ("https://a/foo%2fbar", false),
        ],
    );
}

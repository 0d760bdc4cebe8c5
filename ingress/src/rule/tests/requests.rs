//! How a request is read before any matcher runs: the canonical host (Træfik's
//! `requestdecorator.parseHost` over Go's `net.SplitHostPort`), the query (Go's
//! `url.ParseQuery`), and the requests Go's server refuses.

use super::{check_urls, req};
use crate::rule::{normalize_host, parse, RequestError};

#[test]
fn canonical_host_strips_ports_as_go_does() {
    let table = [
        ("example.com", "example.com"),
        ("Example.COM:8080", "example.com"),
        ("example.com:", "example.com"),
        ("example.com.", "example.com."),
        ("example.com.:443", "example.com."),
        ("127.0.0.1:80", "127.0.0.1"),
        ("[::1]:80", "::1"),
        ("[::1]", "::1"),
        ("[FE80::1]", "fe80::1"),
        ("::1", "::1"),
        ("10::10", "10::10"),
        ("a:b:c", "a:b:c"),
        ("[::1]:80:90", "[::1]:80:90"),
        ("[a]b:80", "[a]b:80"),
        ("a]:80", "a]:80"),
        ("[a:80", "[a:80"),
        ("", ""),
    ];
    for (sent, seen) in table {
        assert_eq!(normalize_host(sent), seen, "{sent}");
    }
}

#[test]
fn requests_go_would_refuse_are_errors() {
    let rule = parse("PathPrefix(`/`)").unwrap();
    let table = [
        (req("🦭.com", "/"), "non-ASCII"),
        (req("bücher.example", "/"), "punycode"),
        (req("a b", "/"), "cannot carry"),
        (req("a/b", "/"), "cannot carry"),
        (req("a.com", "/a%zz"), "invalid percent-encoding at byte 2"),
        (req("a.com", "/a%4"), "invalid percent-encoding at byte 2"),
        (req("a.com", "/a%"), "invalid percent-encoding"),
    ];
    for (r, says) in table {
        let e = rule.try_matches(&r.view()).unwrap_err();
        assert!(e.to_string().contains(says), "{}{}: {e}", r.host, r.path);
        assert!(!rule.matches(&r.view()));
    }
    let e = rule.try_matches(&req("🦭.com", "/").view()).unwrap_err();
    assert_eq!(
        e,
        RequestError::NonAsciiHost {
            host: "🦭.com".into()
        }
    );
    assert!(rule.try_matches(&req("a.com", "/%41").view()).unwrap());
    assert!(
        rule.try_matches(&req("", "/").view()).unwrap(),
        "no host is no error"
    );
    // A bad escape in the query is no error: Go drops that pair only.
    let mut r = req("a.com", "/");
    r.query = Some("q=%zz&q=ok");
    assert!(r.hits("Query(`q`, `ok`)"));
}

#[test]
fn query_is_read_as_go_reads_it() {
    let table: &[(&str, &[(&str, bool)])] = &[
        (
            "Query(`q`, `a b`)",
            &[
                ("https://x?q=a+b", true),
                ("https://x?q=a%20b", true),
                ("https://x?q=a%2Bb", false),
            ],
        ),
        (
            "Query(`q`, `a+b`)",
            &[("https://x?q=a%2Bb", true), ("https://x?q=a+b", false)],
        ),
        (
            "Query(`q`, `x`)",
            &[
                ("https://x?q=x", true),
                ("https://x?a=1;b=2&q=x", true),
                ("https://x?q=x;y", false),
                ("https://x?q=x;", false),
                ("https://x?q=%zz&q=x", true),
                ("https://x?&&q=x&", true),
                ("https://x?q=x=y", false),
                ("https://x?q%3Dx", false),
            ],
        ),
        ("Query(`q`, `x=y`)", &[("https://x?q=x=y", true)]),
        // Go drops a pair holding `;` (no longer a separator) instead of reading it.
        (
            "Query(`q`, `x;y`)",
            &[("https://x?q=x;y", false), ("https://x?q=x%3By", true)],
        ),
        ("Query(`q=x`)", &[("https://x?q%3Dx", true)]),
        ("Query(`é`, `ü`)", &[("https://x?%C3%A9=%C3%BC", true)]),
        (
            "QueryRegexp(`q`, `^.$`)",
            &[("https://x?q=%FF", true), ("https://x?q=%C3%BC", true)],
        ),
    ];
    for (rule, cases) in table {
        check_urls(rule, cases);
    }
}

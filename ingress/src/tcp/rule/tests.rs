//! Cases from Træfik's `pkg/muxer/tcp/matcher_test.go` and `mux_test.go`.

use super::*;

fn facts<'a>(server_name: Option<&'a str>, alpn: &'a [String], ip: &str) -> ConnFacts<'a> {
    ConnFacts {
        server_name,
        alpn,
        client_ip: ip.parse().unwrap(),
    }
}

fn sni_matches(rule: &str, name: &str) -> bool {
    let r = TcpRule::parse(rule).unwrap();
    let name = (!name.is_empty()).then_some(name);
    r.matches(&facts(name, &[], "10.0.0.1"))
}

#[test]
fn host_sni() {
    for (rule, name, want) in [
        ("HostSNI(`example.com`)", "example.com", true),
        ("HostSNI(`example.com`)", "example.org", false),
        ("HostSNI(`example.com.`)", "example.com", true),
        ("HostSNI(`EXAMPLE.com`)", "example.com", true),
        (
            "HostSNI(`foo_bar.example.com`)",
            "foo_bar.example.com",
            true,
        ),
        ("HostSNI(`xn--9t9h.com`)", "xn--9t9h.com", true),
        ("HostSNI(`*`)", "example.com", true),
        ("HostSNI(`*`)", "", true),
        ("HostSNI(`example.com`)", "", false),
        ("HostSNI(`*.example.com`)", "foo.example.com", true),
        ("HostSNI(`*.example.com`)", "foo.bar.example.com", false),
        ("HostSNI(`*.example.com`)", "example.com", false),
        ("hostsni(`a.test`)", "a.test", true),
    ] {
        assert_eq!(sni_matches(rule, name), want, "{rule} {name}");
    }
}

#[test]
fn host_sni_regexp() {
    let rule = "HostSNIRegexp(`^example\\.(com|org)$`)";
    for (name, want) in [
        ("example.com", true),
        ("example.com.", false),
        ("EXAMPLE.com", false),
        ("example.org", true),
        ("exampleuorg", false),
        ("", false),
    ] {
        assert_eq!(sni_matches(rule, name), want, "{name}");
    }
    assert!(sni_matches("HostSNIRegexp(`^.*$`)", ""));
}

#[test]
fn client_ip() {
    for (rule, ip, want) in [
        ("ClientIP(`20.20.20.20`)", "20.20.20.20", true),
        ("ClientIP(`20.20.20.20`)", "10.10.10.10", false),
        ("ClientIP(`20.20.20.20/24`)", "20.20.20.40", true),
        ("ClientIP(`20.20.20.20/24`)", "10.10.10.10", false),
        ("ClientIP(`fe80::/10`)", "fe80::1", true),
        ("ClientIP(`::1`)", "::1", true),
    ] {
        let r = TcpRule::parse(rule).unwrap();
        assert_eq!(r.matches(&facts(None, &[], ip)), want, "{rule} {ip}");
    }
}

#[test]
fn alpn() {
    let r = TcpRule::parse("ALPN(`h2`)").unwrap();
    for (offered, want) in [(&["h2"][..], true), (&["mqtt"], false), (&[], false)] {
        let offered: Vec<String> = offered.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            r.matches(&facts(None, &offered, "10.0.0.1")),
            want,
            "{offered:?}"
        );
    }
}

#[test]
fn operators_and_precedence() {
    let rule = "HostSNI(`example.com`) || (HostSNI(`example.org`) && !ALPN(`h2`))";
    let r = TcpRule::parse(rule).unwrap();
    let h2 = vec!["h2".to_string()];
    assert!(r.matches(&facts(Some("example.com"), &h2, "10.0.0.1")));
    assert!(r.matches(&facts(Some("example.org"), &[], "10.0.0.1")));
    assert!(!r.matches(&facts(Some("example.org"), &h2, "10.0.0.1")));
    // && binds tighter than ||.
    let r = TcpRule::parse("HostSNI(`a`) || HostSNI(`b`) && ClientIP(`1.1.1.1`)").unwrap();
    assert!(r.matches(&facts(Some("a"), &[], "10.0.0.1")));
    assert!(!r.matches(&facts(Some("b"), &[], "10.0.0.1")));
    let r = TcpRule::parse("HostSNI(\"a.test\") && ClientIP(\"10.0.0.0/8\")").unwrap();
    assert!(r.matches(&facts(Some("a.test"), &[], "10.1.2.3")));
}

#[test]
fn catch_all_and_server_names() {
    assert!(TcpRule::parse("HostSNI(`*`)").unwrap().is_catch_all());
    assert!(!TcpRule::parse("HostSNIRegexp(`.*`)")
        .unwrap()
        .is_catch_all());
    assert!(!TcpRule::parse("HostSNI(`*`) && ClientIP(`::1`)")
        .unwrap()
        .is_catch_all());
    assert!(!TcpRule::parse("HostSNI(`*`)").unwrap().names_a_server());
    assert!(!TcpRule::parse("ClientIP(`::1`)").unwrap().names_a_server());
    assert!(TcpRule::parse("ClientIP(`::1`) || !HostSNI(`a`)")
        .unwrap()
        .names_a_server());
}

#[test]
fn bad_rules_are_refused_with_the_reason() {
    for (rule, expected) in [
        ("", "expected a matcher"),
        ("HostSNI(``)", "is not a host name"),
        ("HostSNI(`example.com`, `example.org`)", "takes one value"),
        ("HostSNI(`🦭.com`)", "is not a host name"),
        ("HostSNI(`*.*.example.com`)", "is not a host name"),
        ("HostSNIRegexp(``)", "not an ASCII regular expression"),
        ("HostSNIRegexp(`(example.com`)", "bad regular expression"),
        ("ClientIP(``)", "not an IP address"),
        ("ClientIP(`🦭/32`)", "not an IP address"),
        ("ALPN(`acme-tls/1`)", "acme-tls/1"),
        ("ALPN(``)", "empty ALPN"),
        ("Host(`a`)", "unknown matcher `Host`"),
        ("HostSNI(`a`) &&", "expected a matcher"),
        ("HostSNI(`a`) HostSNI(`b`)", "expected `&&`"),
        ("(HostSNI(`a`)", "expected `)`"),
        ("HostSNI(`a)", "unterminated value"),
        ("HostSNI('a')", "backticks or double quotes"),
        ("HostSNI(\"a\\n\")", "escapes"),
    ] {
        let e = TcpRule::parse(rule).unwrap_err().to_string();
        assert!(e.contains(expected), "{rule}: {e}");
    }
    let e = TcpRule::parse("HostSNI(`a`) && Nope(`x`)").unwrap_err();
    assert_eq!(e.at, 16);
}

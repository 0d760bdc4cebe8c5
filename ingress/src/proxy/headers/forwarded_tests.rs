//! The forwarding headers against the expectations of Træfik's
//! `pkg/middlewares/forwardedheaders` tests (cases written anew from them).

use super::*;
use crate::config::Trust;

/// A request's case: the entrypoint's trust, the peer, TLS, WebSocket, `Host`, and the
/// request's headers.
struct Case<'a> {
    insecure: bool,
    trusted: &'a [&'a str],
    remote: &'a str,
    tls: bool,
    websocket: bool,
    host: &'a str,
    incoming: &'a [(&'a str, &'a str)],
}

const BASE: Case<'static> = Case {
    insecure: false,
    trusted: &[],
    remote: "10.0.1.101",
    tls: false,
    websocket: false,
    host: "a.test",
    incoming: &[],
};

/// The headers the backend gets.
fn run(case: &Case<'_>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (k, v) in case.incoming {
        headers.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    if case.websocket {
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    }
    let trust = Trust::new("t", case.insecure, case.trusted).unwrap();
    let remote: IpAddr = case.remote.parse().unwrap();
    if !trust.trusts(remote) {
        strip_untrusted(&mut headers);
    }
    strip_hop_by_hop(&mut headers, case.websocket);
    let client = forwarded_for(remote);
    let server = HeaderValue::from_static("edge-1");
    let origin = Origin {
        client: &client,
        tls: case.tls,
        server: &server,
    };
    add_forwarded(&mut headers, origin, case.host);
    headers
}

fn get<'h>(h: &'h HeaderMap, name: &str) -> Option<&'h str> {
    h.get(name).map(|v| v.to_str().unwrap())
}

const SPOOFED: &[(&str, &str)] = &[
    ("x-forwarded-for", "10.0.1.0, 10.0.1.12"),
    ("x-forwarded-uri", "/bar"),
    ("x-forwarded-method", "GET"),
    ("x-forwarded-tls-client-cert", "Cert"),
    ("x-forwarded-tls-client-cert-info", "CertInfo"),
    ("x-forwarded-prefix", "/prefix"),
    ("x-forwarded-proto", "https"),
    ("x-forwarded-host", "evil.example"),
    ("x-forwarded-port", "8443"),
    ("x-forwarded-server", "elsewhere"),
    ("x-forwarded-scheme", "https"),
    ("x-scheme", "https"),
    ("x-real-ip", "1.1.1.1"),
    ("x_forwarded_proto", "https"),
    ("x_forwarded_for", "10.0.0.1"),
    ("forwarded", "for=192.0.2.60;proto=https"),
];

#[test]
fn an_untrusted_client_s_claims_are_replaced_by_the_proxy_s_own() {
    for case in [
        // Træfik's default: not insecure, no trusted IPs.
        Case {
            incoming: SPOOFED,
            ..BASE
        },
        // Trusted IPs that do not hold the peer.
        Case {
            trusted: &["10.0.1.100", "1.2.3.4/24"],
            incoming: SPOOFED,
            ..BASE
        },
    ] {
        let h = run(&case);
        assert_eq!(get(&h, "x-forwarded-for"), Some("10.0.1.101"));
        assert_eq!(get(&h, "x-real-ip"), Some("10.0.1.101"));
        assert_eq!(get(&h, "x-forwarded-proto"), Some("http"));
        assert_eq!(get(&h, "x-forwarded-host"), Some("a.test"));
        assert_eq!(get(&h, "x-forwarded-port"), Some("80"));
        assert_eq!(get(&h, "x-forwarded-server"), Some("edge-1"));
        for gone in [
            "x-forwarded-uri",
            "x-forwarded-method",
            "x-forwarded-tls-client-cert",
            "x-forwarded-tls-client-cert-info",
            "x-forwarded-prefix",
            "x-forwarded-scheme",
            "x-scheme",
            "x_forwarded_proto",
            "x_forwarded_for",
        ] {
            assert_eq!(get(&h, gone), None, "{gone}");
        }
        assert_eq!(
            get(&h, "forwarded"),
            Some("for=192.0.2.60;proto=https"),
            "Træfik leaves Forwarded alone"
        );
    }
}

#[test]
fn a_trusted_client_s_claims_are_kept_and_extended() {
    for case in [
        Case {
            insecure: true,
            incoming: SPOOFED,
            ..BASE
        },
        Case {
            trusted: &["10.0.1.101"],
            incoming: SPOOFED,
            ..BASE
        },
        Case {
            trusted: &["10.0.1.4/24"],
            incoming: SPOOFED,
            ..BASE
        },
    ] {
        let h = run(&case);
        assert_eq!(
            get(&h, "x-forwarded-for"),
            Some("10.0.1.0, 10.0.1.12, 10.0.1.101")
        );
        assert_eq!(get(&h, "x-real-ip"), Some("1.1.1.1"));
        assert_eq!(get(&h, "x-forwarded-proto"), Some("https"));
        assert_eq!(get(&h, "x-forwarded-host"), Some("evil.example"));
        assert_eq!(get(&h, "x-forwarded-port"), Some("8443"));
        assert_eq!(
            get(&h, "x-forwarded-server"),
            Some("edge-1"),
            "always the proxy's"
        );
        for kept in [
            ("x-forwarded-uri", "/bar"),
            ("x-forwarded-method", "GET"),
            ("x-forwarded-tls-client-cert", "Cert"),
            ("x-forwarded-prefix", "/prefix"),
            ("x_forwarded_proto", "https"),
            ("x_forwarded_for", "10.0.0.1"),
        ] {
            assert_eq!(get(&h, kept.0), Some(kept.1), "{}", kept.0);
        }
    }
}

#[test]
fn several_x_forwarded_for_fields_join_in_order() {
    let h = run(&Case {
        insecure: true,
        incoming: &[
            ("x-forwarded-for", "10.0.0.4, 10.0.0.3"),
            ("x-forwarded-for", "10.0.0.2, 10.0.0.1"),
            ("x-forwarded-for", "10.0.0.0"),
        ],
        ..BASE
    });
    assert_eq!(
        get(&h, "x-forwarded-for"),
        Some("10.0.0.4, 10.0.0.3, 10.0.0.2, 10.0.0.1, 10.0.0.0, 10.0.1.101")
    );
}

#[test]
fn proto_and_port_follow_tls_websockets_and_the_host() {
    let proto = |tls, websocket| {
        let h = run(&Case {
            tls,
            websocket,
            ..BASE
        });
        (
            get(&h, "x-forwarded-proto").unwrap().to_string(),
            get(&h, "x-forwarded-port").unwrap().to_string(),
        )
    };
    assert_eq!(proto(false, false), ("http".into(), "80".into()));
    assert_eq!(proto(true, false), ("https".into(), "443".into()));
    assert_eq!(proto(false, true), ("ws".into(), "80".into()));
    assert_eq!(proto(true, true), ("wss".into(), "443".into()));
    let port = |host| {
        let h = run(&Case { host, ..BASE });
        get(&h, "x-forwarded-port").map(str::to_string)
    };
    assert_eq!(port("a.test:8080").as_deref(), Some("8080"));
    assert_eq!(port("[::1]:9090").as_deref(), Some("9090"));
    assert_eq!(port("[::1]").as_deref(), Some("80"));
    assert_eq!(port("a.test:8080").as_deref(), Some("8080"), "cached value");
    // A trusted https claim makes the default port 443.
    let h = run(&Case {
        insecure: true,
        incoming: &[("x-forwarded-proto", "https")],
        ..BASE
    });
    assert_eq!(get(&h, "x-forwarded-port"), Some("443"));
    // A trusted wss claim on a WebSocket is kept.
    let h = run(&Case {
        insecure: true,
        tls: true,
        websocket: true,
        incoming: &[("x-forwarded-proto", "wss")],
        ..BASE
    });
    assert_eq!(get(&h, "x-forwarded-proto"), Some("wss"));
}

#[test]
fn empty_values_count_as_absent_and_no_host_sends_no_x_forwarded_host() {
    let h = run(&Case {
        insecure: true,
        host: "",
        incoming: &[("x-real-ip", ""), ("x-forwarded-proto", "")],
        ..BASE
    });
    assert_eq!(get(&h, "x-real-ip"), Some("10.0.1.101"));
    assert_eq!(get(&h, "x-forwarded-proto"), Some("http"));
    assert_eq!(get(&h, "x-forwarded-host"), None);
}

#[test]
fn connection_cannot_remove_the_forwarding_headers() {
    let listed = "x-forwarded-for, x-forwarded-proto, x-real-ip, x-forwarded-prefix, x-other";
    let incoming = [
        ("connection", listed),
        ("x-forwarded-for", "foo"),
        ("x-forwarded-proto", "foo"),
        ("x-real-ip", "foo"),
        ("x-forwarded-prefix", "foo"),
        ("x-other", "gone"),
    ];
    let h = run(&Case {
        insecure: true,
        incoming: &incoming,
        ..BASE
    });
    assert_eq!(get(&h, "x-forwarded-for"), Some("foo, 10.0.1.101"));
    assert_eq!(get(&h, "x-forwarded-proto"), Some("foo"));
    assert_eq!(get(&h, "x-real-ip"), Some("foo"));
    assert_eq!(get(&h, "x-forwarded-prefix"), Some("foo"));
    assert_eq!(get(&h, "x-other"), None);
    assert_eq!(get(&h, "connection"), None);
    let h = run(&Case {
        incoming: &incoming,
        ..BASE
    });
    assert_eq!(get(&h, "x-forwarded-for"), Some("10.0.1.101"));
    assert_eq!(get(&h, "x-forwarded-proto"), Some("http"));
    assert_eq!(get(&h, "x-forwarded-prefix"), None);
}

#[test]
fn ipv4_mapped_clients_are_written_as_ipv4() {
    let h = run(&Case {
        remote: "::ffff:10.0.0.9",
        ..BASE
    });
    assert_eq!(get(&h, "x-forwarded-for"), Some("10.0.0.9"));
    assert_eq!(get(&h, "x-real-ip"), Some("10.0.0.9"));
}

#[test]
fn only_managed_names_are_stripped() {
    let mut h = HeaderMap::new();
    for name in ["x-forwarded-foo", "x-request-id", "x-real-ipx", "x_real_ip"] {
        h.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_static("1"),
        );
    }
    strip_untrusted(&mut h);
    let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
    left.sort();
    assert_eq!(left, vec!["x-forwarded-foo", "x-real-ipx", "x-request-id"]);
}

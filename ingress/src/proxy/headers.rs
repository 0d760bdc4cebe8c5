//! Header rewriting between client and backend: hop-by-hop headers are dropped,
//! `X-Forwarded-*` and `X-Real-Ip` are added as Træfik adds them (an untrusted client's
//! own removed first); and the checks on a request's framing and `Host`. Pure
//! functions over `HeaderMap`.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that describe one connection, never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: &[HeaderName] = &[
    header::CONNECTION,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const CLOSE: HeaderName = HeaderName::from_static("close");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
const X_FORWARDED_SERVER: HeaderName = HeaderName::from_static("x-forwarded-server");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// Remove hop-by-hop headers, including those named in `Connection`. With `upgrade`,
/// keep `Connection: upgrade` and `Upgrade` so a WebSocket handshake passes through.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    // Most messages carry none: one pass over the names is cheaper than a lookup for
    // each. (Names listed in `Connection` need a `Connection` header.)
    let hop_by_hop = |name: &HeaderName| {
        HOP_BY_HOP.contains(name) || name == KEEP_ALIVE || name == PROXY_CONNECTION
    };
    if !headers.keys().any(hop_by_hop) {
        return;
    }
    let upgrade_value = if upgrade {
        headers.get(header::UPGRADE).cloned()
    } else {
        None
    };
    // Only the names present are removed (a removal is a lookup).
    let mut doomed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| connection_option(name.trim()))
        // As Træfik: `Connection` cannot remove the forwarding headers (RFC 9110 §7.6.1
        // lets a proxy replace them with its own).
        .filter(|name| !is_managed(name))
        .collect();
    doomed.extend(headers.keys().filter(|n| hop_by_hop(n)).cloned());
    for name in &doomed {
        headers.remove(name);
    }
    if let Some(v) = upgrade_value {
        headers.insert(header::UPGRADE, v);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// The field a `Connection` option names; the usual ones without an allocation.
fn connection_option(token: &str) -> Option<HeaderName> {
    if token.eq_ignore_ascii_case("keep-alive") {
        Some(KEEP_ALIVE)
    } else if token.eq_ignore_ascii_case("close") {
        Some(CLOSE)
    } else if token.eq_ignore_ascii_case("upgrade") {
        Some(header::UPGRADE)
    } else {
        HeaderName::from_bytes(token.as_bytes()).ok()
    }
}

/// Whether the request asks to switch protocols (HTTP/1.1 `Connection: upgrade`).
pub fn wants_upgrade(headers: &HeaderMap) -> bool {
    super::wire::connection_has(headers, "upgrade") && headers.contains_key(header::UPGRADE)
}

/// What the proxy knows of a request's origin, for its forwarding headers.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// The client's address as an `X-Forwarded-For` entry (see [`forwarded_for`]).
    pub client: &'a HeaderValue,
    /// Whether the request came over TLS.
    pub tls: bool,
    /// This host's name, for `X-Forwarded-Server`.
    pub server: &'a HeaderValue,
}

/// Set the forwarding headers as Træfik does (its `forwardedheaders` middleware, then
/// its reverse proxy): append the client to `X-Forwarded-For`; set `X-Forwarded-Proto`,
/// `-Port`, `-Host` and `X-Real-Ip` unless the request has them (call
/// [`strip_untrusted`] first for a client whose values are not believed); set
/// `X-Forwarded-Server`.
pub fn add_forwarded(headers: &mut HeaderMap, origin: Origin<'_>, host: &str) {
    let host = HeaderValue::from_str(host).unwrap_or(HeaderValue::from_static(""));
    let websocket = is_websocket(headers);
    Forwarded::new(headers, origin, &host, websocket).apply(headers);
}

/// The client's address as an `X-Forwarded-For` entry (IPv4-mapped IPv6 as IPv4).
pub fn forwarded_for(client: IpAddr) -> HeaderValue {
    let client = match client {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(client, IpAddr::V4),
        v4 => v4,
    };
    HeaderValue::from_str(&client.to_string()).unwrap_or(HeaderValue::from_static("unknown"))
}

/// The headers a client's forwarding claims are in, as Træfik's
/// `forwardedheaders.XHeadersSet` lists them.
const MANAGED: [&str; 13] = [
    "x-forwarded-proto",
    "x-forwarded-scheme",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-server",
    "x-forwarded-uri",
    "x-forwarded-method",
    "x-forwarded-prefix",
    "x-forwarded-tls-client-cert",
    "x-forwarded-tls-client-cert-info",
    "x-scheme",
    "x-real-ip",
];

/// Whether `name` is one of [`MANAGED`], `_` read as `-` (a client may spell
/// `X_Forwarded_For`, which some servers read as `X-Forwarded-For`).
fn is_managed(name: &HeaderName) -> bool {
    let name = name.as_str().as_bytes();
    if name.len() < 8 || name[0] != b'x' || !matches!(name[1], b'-' | b'_') {
        return false;
    }
    MANAGED.iter().any(|m| {
        m.len() == name.len()
            && m.bytes()
                .zip(name)
                .all(|(a, &b)| a == b || (a == b'-' && b == b'_'))
    })
}

/// Remove the forwarding headers of a client that is not trusted (Træfik's
/// `DeleteXForwardedHeaders`); `Forwarded` (RFC 7239) is left alone, as Træfik leaves
/// it. Without such headers, nothing is allocated.
pub fn strip_untrusted(headers: &mut HeaderMap) {
    if !headers.keys().any(is_managed) {
        return;
    }
    let doomed: Vec<HeaderName> = headers.keys().filter(|n| is_managed(n)).cloned().collect();
    for name in &doomed {
        headers.remove(name);
    }
}

/// A WebSocket handshake (`Connection: upgrade` and `Upgrade: websocket`).
pub(super) fn is_websocket(headers: &HeaderMap) -> bool {
    super::wire::connection_has(headers, "upgrade")
        && headers
            .get(header::UPGRADE)
            .is_some_and(|v| super::wire::lists(v, "websocket"))
}

/// The first value of `name`, when it is not empty (Go's `Header.Get(name) != ""`).
fn present<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Option<&'h HeaderValue> {
    headers.get(name).filter(|v| !v.is_empty())
}

/// The port of a `Host` value, when it names one (Go's `net.SplitHostPort`).
fn host_port(host: &[u8]) -> Option<u16> {
    let colon = host.iter().rposition(|b| *b == b':')?;
    let (name, port) = (&host[..colon], &host[colon + 1..]);
    let bracketed = name.first() == Some(&b'[') && name.last() == Some(&b']');
    if (!bracketed && name.contains(&b':')) || port.is_empty() || port.len() > 5 {
        return None;
    }
    std::str::from_utf8(port).ok()?.parse().ok()
}

/// `X-Forwarded-Port` for `port`; the last one made is kept per thread, so the usual
/// request (the same port as the one before it) allocates nothing.
fn port_value(port: u16) -> HeaderValue {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(u16, HeaderValue)>> =
            const { std::cell::RefCell::new(None) };
    }
    match port {
        80 => HeaderValue::from_static("80"),
        443 => HeaderValue::from_static("443"),
        _ => LAST.with(|last| {
            let mut last = last.borrow_mut();
            match &*last {
                Some((p, v)) if *p == port => v.clone(),
                _ => {
                    let v = HeaderValue::from(port);
                    *last = Some((port, v.clone()));
                    v
                }
            }
        }),
    }
}

/// The forwarding fields of a request, kept apart from its headers so that the HTTP/1
/// client writes them straight into the backend's request.
pub(super) struct Forwarded {
    fields: [(HeaderName, HeaderValue); 6],
    /// How many of `fields` are sent.
    len: usize,
}

impl Forwarded {
    /// For a request with `headers` (already stripped if its client is not trusted)
    /// from `origin` for `host`; `websocket` for a WebSocket handshake.
    pub(super) fn new(
        headers: &HeaderMap,
        origin: Origin<'_>,
        host: &HeaderValue,
        websocket: bool,
    ) -> Self {
        let mut prior = headers.get_all(&X_FORWARDED_FOR).iter().peekable();
        let xff = if prior.peek().is_some() {
            let mut entries: Vec<&[u8]> = prior
                .filter(|v| v.to_str().is_ok())
                .map(HeaderValue::as_bytes)
                .collect();
            entries.push(origin.client.as_bytes());
            // Visible ASCII joined by ", " is always a valid value.
            HeaderValue::from_bytes(&entries.join(&b", "[..]))
                .unwrap_or_else(|_| origin.client.clone())
        } else {
            origin.client.clone()
        };
        let proto = present(headers, &X_FORWARDED_PROTO)
            .cloned()
            .unwrap_or_else(|| {
                HeaderValue::from_static(match (websocket, origin.tls) {
                    (true, true) => "wss",
                    (true, false) => "ws",
                    (false, true) => "https",
                    (false, false) => "http",
                })
            });
        let port = present(headers, &X_FORWARDED_PORT)
            .cloned()
            .unwrap_or_else(|| {
                let secure = origin.tls || proto == "https" || proto == "wss";
                let default = if secure { 443 } else { 80 };
                port_value(host_port(host.as_bytes()).unwrap_or(default))
            });
        let real_ip = present(headers, &X_REAL_IP)
            .unwrap_or(origin.client)
            .clone();
        let forwarded_host = present(headers, &X_FORWARDED_HOST)
            .or((!host.is_empty()).then_some(host))
            .cloned();
        let mut fields = [
            (X_FORWARDED_FOR, xff),
            (X_FORWARDED_PROTO, proto),
            (X_FORWARDED_PORT, port),
            (X_FORWARDED_SERVER, origin.server.clone()),
            (X_REAL_IP, real_ip),
            (X_FORWARDED_HOST, HeaderValue::from_static("")),
        ];
        let len = match forwarded_host {
            Some(h) => {
                fields[5].1 = h;
                6
            }
            None => 5,
        };
        Forwarded { fields, len }
    }

    /// The fields, in the order they are written.
    pub(super) fn fields(&self) -> &[(HeaderName, HeaderValue)] {
        &self.fields[..self.len]
    }

    /// Set fields to a middleware's values (`customRequestHeaders`); `None` leaves one
    /// out. `X-Forwarded-For` is the request's own (with the client appended) and
    /// leaving it out means sending none.
    pub(super) fn override_fields(&mut self, overrides: &[(HeaderName, Option<HeaderValue>)]) {
        for (name, value) in overrides {
            let Some(i) = self.fields[..self.len].iter().position(|(n, _)| n == name) else {
                continue;
            };
            match value {
                Some(v) if *name != X_FORWARDED_FOR => self.fields[i].1 = v.clone(),
                Some(_) => {}
                None => {
                    self.fields[i..self.len].rotate_left(1);
                    self.len -= 1;
                }
            }
        }
    }

    /// Put the fields into `headers`, replacing the request's own.
    pub(super) fn apply(self, headers: &mut HeaderMap) {
        for (name, value) in self.fields.into_iter().take(self.len) {
            headers.insert(name, value);
        }
    }
}

/// Both `Content-Length` and `Transfer-Encoding`, or several different
/// `Content-Length`s: a request that could be framed two ways (smuggling).
///
/// A check in depth: HTTP/1 requests never reach it so framed. The fast path leaves them
/// to hyper, whose parser answers 400 to conflicting lengths and to a non-chunked final
/// coding, and for `Content-Length` plus `Transfer-Encoding` drops the length, frames by
/// chunks and closes the connection after the response (RFC 9112 §6.1); HTTP/2 frames
/// its own messages.
pub fn ambiguous_framing(headers: &HeaderMap) -> bool {
    let mut lengths = headers.get_all(header::CONTENT_LENGTH).iter();
    let Some(first) = lengths.next() else {
        return false;
    };
    headers.contains_key(header::TRANSFER_ENCODING) || lengths.any(|l| l != first)
}

/// Whether the request's transfer codings, over all its `Transfer-Encoding` fields, are
/// none or exactly `chunked` (any case): the only coding the proxy implements. A body
/// in any other (`gzip, chunked`) would go on de-chunked with its coding's name lost.
pub(super) fn only_chunked(headers: &HeaderMap) -> bool {
    let mut codings = headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|c| !c.is_empty());
    match (codings.next(), codings.next()) {
        (None, _) => true,
        (Some(c), None) => c.eq_ignore_ascii_case(b"chunked"),
        (Some(_), Some(_)) => false,
    }
}

/// Whether the `Host` fields are one valid `uri-host [ ":" port ]` (or an empty value),
/// or absent: more than one, or an invalid one, is a bad request (RFC 9112 §3.2).
pub(super) fn host_fields_valid(headers: &HeaderMap) -> bool {
    let mut hosts = headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) => true,
        (Some(_), Some(_)) => false,
        (Some(host), None) => is_host(host.as_bytes()),
    }
}

/// `uri-host [ ":" port ]` (RFC 3986 §3.2.2–3.2.3; the inside of an IP literal is
/// only checked for its characters).
fn is_host(text: &[u8]) -> bool {
    let (host, port) = match text.iter().rposition(|b| *b == b':') {
        Some(colon) if !text[colon..].contains(&b']') => (&text[..colon], &text[colon + 1..]),
        _ => (text, &b""[..]),
    };
    let reg_name = |b: &u8| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(b);
    let ip_literal = |h: &[u8]| {
        h.len() > 2
            && h[0] == b'['
            && h[h.len() - 1] == b']'
            && h[1..h.len() - 1]
                .iter()
                .all(|b| b.is_ascii_hexdigit() || b":.vV".contains(b))
    };
    port.iter().all(u8::is_ascii_digit) && (host.iter().all(reg_name) || ip_literal(host))
}

#[cfg(test)]
mod forwarded_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn hop_by_hop_headers_are_removed_including_connection_named_ones() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("accept", "*/*"),
        ]);
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("accept"));
    }

    #[test]
    fn upgrade_headers_survive_for_websockets() {
        let mut h = map(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        assert!(wants_upgrade(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "upgrade");
    }

    #[test]
    fn ambiguous_framing_is_detected() {
        assert!(ambiguous_framing(&map(&[
            ("content-length", "4"),
            ("transfer-encoding", "chunked")
        ])));
        assert!(ambiguous_framing(&map(&[
            ("content-length", "4"),
            ("content-length", "5")
        ])));
        assert!(!ambiguous_framing(&map(&[("content-length", "4")])));
    }

    #[test]
    fn chunked_is_the_only_coding_taken() {
        assert!(only_chunked(&map(&[])));
        assert!(only_chunked(&map(&[("transfer-encoding", "chunked")])));
        assert!(only_chunked(&map(&[("transfer-encoding", " CHUNKED ")])));
        assert!(only_chunked(&map(&[("transfer-encoding", "chunked,")])));
        for bad in [
            &[("transfer-encoding", "gzip, chunked")][..],
            &[
                ("transfer-encoding", "gzip"),
                ("transfer-encoding", "chunked"),
            ],
            &[("transfer-encoding", "chunked, chunked")],
            &[("transfer-encoding", "identity")],
        ] {
            assert!(!only_chunked(&map(bad)), "{bad:?}");
        }
    }

    #[test]
    fn one_valid_host_or_none() {
        for good in [
            "a.com",
            "a.com:8080",
            "127.0.0.1:1",
            "[::1]:443",
            "xn--bcher-kva.example",
            "",
        ] {
            assert!(host_fields_valid(&map(&[("host", good)])), "{good:?}");
        }
        assert!(host_fields_valid(&HeaderMap::new()));
        for bad in [
            "exa mple.com",
            "user@a.com",
            "a.com:80x",
            "a.com/path",
            "[::1",
            "a\"b",
        ] {
            assert!(!host_fields_valid(&map(&[("host", bad)])), "{bad:?}");
        }
        assert!(!host_fields_valid(&map(&[
            ("host", "a.com"),
            ("host", "a.com")
        ])));
    }
}

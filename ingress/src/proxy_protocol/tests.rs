use super::*;
use proptest::prelude::*;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn proxy(source: &str, destination: &str) -> Header {
    Header::Proxy {
        source: addr(source),
        destination: addr(destination),
    }
}

#[test]
fn v1_examples_from_the_specification() {
    let tcp4 = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\n";
    assert_eq!(
        parse(tcp4),
        Ok(Parsed::Header(
            proxy("192.168.0.1:56324", "192.168.0.11:443"),
            47
        ))
    );
    let tcp6 = b"PROXY TCP6 ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n";
    assert!(
        parse(tcp6).is_err(),
        "the spec's elided worst case is no address"
    );
    let tcp6 = b"PROXY TCP6 2001:db8::1 2001:db8::2 65535 0\r\n";
    assert_eq!(
        parse(tcp6),
        Ok(Parsed::Header(
            proxy("[2001:db8::1]:65535", "[2001:db8::2]:0"),
            tcp6.len()
        ))
    );
    let unknown = b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n";
    assert_eq!(
        parse(unknown),
        Ok(Parsed::Header(Header::Local, unknown.len()))
    );
    assert_eq!(
        parse(b"PROXY UNKNOWN\r\n"),
        Ok(Parsed::Header(Header::Local, 15))
    );
}

#[test]
fn v1_malformed_headers_are_errors() {
    for bad in [
        &b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"[..],
        b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
        b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 ::1 ::1 1 2\r\n",
        b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
        b"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",
        b"PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n",
    ] {
        assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
    }
    let long = format!("PROXY UNKNOWN {}\r\n", "x".repeat(100));
    assert_eq!(parse(long.as_bytes()), Err(ProxyProtocolError::V1TooLong));
}

#[test]
fn prefixes_of_a_header_need_more_and_other_bytes_are_absent() {
    let v1 = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
    let v2 = encode(Version::V2, &proxy("[::1]:1", "[::2]:2"));
    for whole in [&v1[..], &v2[..]] {
        for n in 1..whole.len() {
            assert_eq!(parse(&whole[..n]), Ok(Parsed::Incomplete), "{n}");
        }
    }
    for other in [
        &b"GET / HTTP/1.1\r\n"[..],
        b"\x16\x03\x01",
        b"PROX-",
        b"\r\n\r\n\0\r\nQUIX",
        b"P ",
    ] {
        assert_eq!(parse(other), Ok(Parsed::Absent), "{other:?}");
    }
    assert_eq!(parse(b""), Ok(Parsed::Incomplete), "nothing read yet");
}

#[test]
fn v2_examples() {
    // PROXY, TCP over IPv4, 127.0.0.1:12345 → 127.0.0.2:443, then a TLV and data.
    let mut v4 = V2_SIGNATURE.to_vec();
    v4.extend_from_slice(&[0x21, 0x11, 0x00, 0x0f]);
    v4.extend_from_slice(&[127, 0, 0, 1, 127, 0, 0, 2, 0x30, 0x39, 0x01, 0xbb]);
    v4.extend_from_slice(&[0x04, 0x00, 0x00]); // PP2_TYPE_NOOP, empty
    v4.extend_from_slice(b"data");
    assert_eq!(
        parse(&v4),
        Ok(Parsed::Header(
            proxy("127.0.0.1:12345", "127.0.0.2:443"),
            31
        ))
    );
    // LOCAL with IPv4 addresses: they are ignored.
    let mut local = v4.clone();
    local[V2_VERSION_COMMAND] = 0x20;
    assert_eq!(parse(&local), Ok(Parsed::Header(Header::Local, 31)));
    // LOCAL, unspecified, no addresses: what a relay's health check sends.
    let bare = encode(Version::V2, &Header::Local);
    assert_eq!(bare.len(), 16);
    assert_eq!(parse(&bare), Ok(Parsed::Header(Header::Local, 16)));
    // PROXY over a Unix socket: the connection's own addresses stand.
    let mut unix = V2_SIGNATURE.to_vec();
    unix.extend_from_slice(&[0x21, 0x31, 0x00, 216]);
    unix.extend_from_slice(&[0; 216]);
    assert_eq!(parse(&unix), Ok(Parsed::Header(Header::Local, 232)));
}

#[test]
fn v2_malformed_headers_are_errors() {
    let good = encode(Version::V2, &proxy("1.2.3.4:1", "5.6.7.8:2"));
    let with = |at: usize, byte: u8| {
        let mut b = good.clone();
        b[at] = byte;
        b
    };
    assert_eq!(
        parse(&with(V2_VERSION_COMMAND, 0x11)),
        Err(ProxyProtocolError::V2Version(1))
    );
    assert_eq!(
        parse(&with(V2_VERSION_COMMAND, 0x22)),
        Err(ProxyProtocolError::V2Command(2))
    );
    assert_eq!(
        parse(&with(V2_FAMILY, 0x41)),
        Err(ProxyProtocolError::V2Family(0x41))
    );
    assert_eq!(
        parse(&with(V2_FAMILY, 0x13)),
        Err(ProxyProtocolError::V2Family(0x13))
    );
    // IPv6 family with an IPv4-sized block.
    assert_eq!(
        parse(&with(V2_FAMILY, 0x21)),
        Err(ProxyProtocolError::V2Short(12, 36))
    );
}

#[test]
fn encoding_follows_the_specification() {
    assert_eq!(
        encode(Version::V1, &proxy("192.168.0.1:56324", "192.168.0.11:443")),
        b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
    );
    assert_eq!(
        encode(Version::V1, &proxy("[::ffff:10.0.0.1]:5", "10.0.0.2:6")),
        b"PROXY TCP4 10.0.0.1 10.0.0.2 5 6\r\n",
        "mapped IPv4 goes as IPv4"
    );
    assert_eq!(
        encode(Version::V1, &proxy("10.0.0.1:5", "[2001:db8::2]:6")),
        b"PROXY TCP6 ::ffff:10.0.0.1 2001:db8::2 5 6\r\n",
        "mixed families go as IPv6"
    );
    assert_eq!(encode(Version::V1, &Header::Local), b"PROXY UNKNOWN\r\n");
    let v2 = encode(Version::V2, &proxy("127.0.0.1:12345", "127.0.0.2:443"));
    let mut expected = V2_SIGNATURE.to_vec();
    expected.extend_from_slice(&[0x21, 0x11, 0, 12, 127, 0, 0, 1, 127, 0, 0, 2]);
    expected.extend_from_slice(&[0x30, 0x39, 0x01, 0xbb]);
    assert_eq!(v2, expected);
}

#[test]
fn versions_other_than_1_and_2_are_refused() {
    assert_eq!(Version::try_from(1), Ok(Version::V1));
    assert_eq!(Version::try_from(2), Ok(Version::V2));
    for n in [0, 3, 255] {
        let e = Version::try_from(n).unwrap_err();
        assert!(e.contains("must be 1 or 2"), "{e}");
    }
}

fn socket_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::new(IpAddr::from(ip), p)),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::new(IpAddr::from(ip), p)),
    ]
}

proptest! {
    #[test]
    fn encode_then_parse_gives_the_addresses_back(
        source in socket_addr(),
        destination in socket_addr(),
        v2 in any::<bool>(),
        rest in proptest::collection::vec(any::<u8>(), 0..32),
    ) {
        let version = if v2 { Version::V2 } else { Version::V1 };
        let header = Header::Proxy { source, destination };
        let mut bytes = encode(version, &header);
        let len = bytes.len();
        bytes.extend_from_slice(&rest);
        let (s, d) = same_family(source, destination);
        prop_assert_eq!(
            parse(&bytes),
            Ok(Parsed::Header(Header::Proxy { source: s, destination: d }, len))
        );
        prop_assert_eq!(s.ip().to_canonical(), source.ip().to_canonical());
        prop_assert_eq!(d.ip().to_canonical(), destination.ip().to_canonical());
        prop_assert_eq!((s.port(), d.port()), (source.port(), destination.port()));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(Parsed::Header(_, len)) = parse(&bytes) {
            prop_assert!(len <= bytes.len());
        }
    }

    #[test]
    fn arbitrary_bytes_after_a_signature_never_panic(
        v2 in any::<bool>(),
        tail in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut bytes = if v2 { V2_SIGNATURE.to_vec() } else { b"PROXY ".to_vec() };
        bytes.extend_from_slice(&tail);
        if let Ok(Parsed::Header(_, len)) = parse(&bytes) {
            prop_assert!(len <= bytes.len());
        }
    }
}

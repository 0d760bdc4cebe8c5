use std::sync::Arc;

use proptest::prelude::*;

use super::*;

/// A ClientHello body with `server_name` and `alpn` extensions (when given) and one
/// unrelated extension.
fn hello_body(server_name: Option<&str>, alpn: &[&str]) -> Vec<u8> {
    let mut b = vec![3, 3];
    b.extend([7u8; RANDOM]);
    b.push(0); // session id
    b.extend([0, 2, 0x13, 0x01]); // one cipher suite
    b.extend([1, 0]); // null compression
    let mut ext = Vec::new();
    ext.extend([0x00, 0x2b, 0, 3, 2, 3, 4]); // supported_versions: TLS 1.3
    if let Some(name) = server_name {
        let n = name.as_bytes();
        let entry_len = 3 + n.len();
        ext.extend(EXT_SERVER_NAME.to_be_bytes());
        ext.extend(((entry_len + 2) as u16).to_be_bytes());
        ext.extend((entry_len as u16).to_be_bytes());
        ext.push(NAME_TYPE_HOST);
        ext.extend((n.len() as u16).to_be_bytes());
        ext.extend(n);
    }
    if !alpn.is_empty() {
        let list: Vec<u8> = alpn
            .iter()
            .flat_map(|p| std::iter::once(p.len() as u8).chain(p.bytes()))
            .collect();
        ext.extend(EXT_ALPN.to_be_bytes());
        ext.extend(((list.len() + 2) as u16).to_be_bytes());
        ext.extend((list.len() as u16).to_be_bytes());
        ext.extend(list);
    }
    b.extend((ext.len() as u16).to_be_bytes());
    b.extend(ext);
    b
}

/// `body` as a ClientHello handshake message in records of at most `chunk` bytes.
fn records(body: &[u8], chunk: usize) -> Vec<u8> {
    let mut msg = vec![HANDSHAKE_CLIENT_HELLO];
    msg.extend(&(body.len() as u32).to_be_bytes()[1..]);
    msg.extend(body);
    let mut out = Vec::new();
    for part in msg.chunks(chunk) {
        out.extend([CONTENT_HANDSHAKE, 3, 1]);
        out.extend((part.len() as u16).to_be_bytes());
        out.extend(part);
    }
    out
}

fn hello(server_name: Option<&str>, alpn: &[&str]) -> ClientHello {
    ClientHello {
        server_name: server_name.map(str::to_string),
        alpn: alpn.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn reads_the_name_and_protocols() {
    let bytes = records(
        &hello_body(Some("DB.Example.com."), &["h2", "postgresql"]),
        1 << 14,
    );
    assert_eq!(
        peek(&bytes),
        Ok(Peek::Hello(hello(
            Some("db.example.com"),
            &["h2", "postgresql"]
        )))
    );
    let bytes = records(&hello_body(None, &[]), 1 << 14);
    assert_eq!(peek(&bytes), Ok(Peek::Hello(ClientHello::default())));
}

#[test]
fn every_prefix_is_incomplete_and_records_may_split_the_hello() {
    let bytes = records(&hello_body(Some("a.test"), &["x"]), 7);
    for end in 0..bytes.len() {
        assert_eq!(peek(&bytes[..end]), Ok(Peek::Incomplete), "{end}");
    }
    assert_eq!(peek(&bytes), Ok(Peek::Hello(hello(Some("a.test"), &["x"]))));
    // Bytes after the ClientHello (the client's next flight) are not looked at.
    let mut more = bytes.clone();
    more.extend(b"trailing");
    assert!(matches!(peek(&more), Ok(Peek::Hello(_))));
}

#[test]
fn plain_tcp_is_told_by_the_first_byte() {
    assert_eq!(peek(b"GET / HTTP/1.1\r\n"), Ok(Peek::NotTls));
    assert_eq!(peek(b"\x00\x00\x00\x08\x04\xd2\x16\x2f"), Ok(Peek::NotTls));
    assert_eq!(peek(b""), Ok(Peek::Incomplete));
}

#[test]
fn broken_hellos_are_refused() {
    let good = records(&hello_body(Some("a.test"), &[]), 1 << 14);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        // An alert record after the first one.
        (
            {
                let mut b = records(&hello_body(Some("a.test"), &[]), 10)[..15].to_vec();
                b.extend([0x15, 3, 3, 0, 2, 2, 40]);
                b
            },
            "another type",
        ),
        (
            {
                let mut b = good.clone();
                b[1] = 2;
                b
            },
            "record version",
        ),
        (vec![0x16, 3, 1, 0, 0], "record length"),
        (vec![0x16, 3, 1, 0x40, 0x01], "record length"),
        (
            {
                let mut b = good.clone();
                b[5] = 2;
                b
            },
            "not a ClientHello",
        ),
        (
            records(&hello_body(Some("a.test"), &[])[..40], 1 << 14),
            "truncated",
        ),
        (records(&hello_body(Some("a b"), &[]), 1 << 14), "printable"),
        (records(&hello_body(Some(""), &[]), 1 << 14), "printable"),
        (records(&hello_body(None, &[""]), 1 << 14), "empty ALPN"),
        (
            {
                let mut body = hello_body(None, &[]);
                body.push(0);
                records(&body, 1 << 14)
            },
            "bytes after the extensions",
        ),
    ];
    for (bytes, expected) in cases {
        match peek(&bytes) {
            Err(HelloError::Malformed(m)) => assert!(m.contains(expected), "{m} vs {expected}"),
            other => panic!("{expected}: {other:?}"),
        }
    }
    let huge = [
        CONTENT_HANDSHAKE,
        3,
        1,
        0,
        4,
        HANDSHAKE_CLIENT_HELLO,
        0x10,
        0,
        0,
    ];
    assert_eq!(peek(&huge), Err(HelloError::TooLarge));
}

#[test]
fn duplicate_extensions_are_refused() {
    let mut body = hello_body(Some("a.test"), &[]);
    // Append a second server_name extension and fix the extensions' length.
    let sni = [0, 0, 0, 6, 0, 4, 0, 0, 1, b'b'];
    body.extend(sni);
    let ext_at = 2 + RANDOM + 1 + 4 + 2;
    let len = u16::from_be_bytes([body[ext_at], body[ext_at + 1]]) + sni.len() as u16;
    body[ext_at..ext_at + 2].copy_from_slice(&len.to_be_bytes());
    assert_eq!(
        peek(&records(&body, 1 << 14)),
        Err(HelloError::Malformed("an extension appears twice"))
    );
}

#[test]
fn reads_a_real_rustls_client_hello() {
    let mut config = shoal_tests::tls::trust_any_server();
    config.alpn_protocols = vec![b"h2".to_vec(), b"imap".to_vec()];
    let name = rustls::pki_types::ServerName::try_from("Mail.Example.org").unwrap();
    let mut client = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut bytes = Vec::new();
    while client.wants_write() {
        client.write_tls(&mut bytes).unwrap();
    }
    assert_eq!(
        peek(&bytes),
        Ok(Peek::Hello(hello(
            Some("mail.example.org"),
            &["h2", "imap"]
        )))
    );
}

proptest! {
    #[test]
    fn any_bytes_are_judged_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = peek(&bytes);
        let mut tls = vec![CONTENT_HANDSHAKE, 3, 1];
        tls.extend(&bytes);
        let _ = peek(&tls);
    }

    #[test]
    fn encoded_hellos_decode_to_what_was_encoded(
        name in proptest::option::of("[a-z0-9-]{1,20}(\\.[a-z0-9-]{1,20}){0,3}"),
        alpn in proptest::collection::vec("[a-z0-9/.]{1,12}", 0..4),
        chunk in 1usize..300,
    ) {
        let protos: Vec<&str> = alpn.iter().map(String::as_str).collect();
        let bytes = records(&hello_body(name.as_deref(), &protos), chunk);
        prop_assert_eq!(peek(&bytes), Ok(Peek::Hello(hello(name.as_deref(), &protos))));
    }
}

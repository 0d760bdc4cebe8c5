//! The server name (SNI) and ALPN protocols of a TLS ClientHello, read from the first
//! bytes of a connection without terminating TLS (RFC 8446 §4.1.2, RFC 6066 §3,
//! RFC 7301). Pure: the caller reads, [`peek`] says whether it has enough.
//!
//! ```text
//!  record: type(0x16) version(2) length(2) fragment ─┐  the ClientHello may span
//!  record: …                                        ─┤  several records
//!  handshake: type(0x01) length(3) body ◀────────────┘
//!  body: version(2) random(32) session_id<0..32> cipher_suites<2..> compression<1..>
//!        extensions<..>: server_name(0): list<name_type(0) host_name<1..>>
//!                        alpn(16): list<protocol<1..255>>
//! ```

/// Bytes of a TLS record header.
pub const RECORD_HEADER: usize = 5;
/// The largest ClientHello message read (its length field allows 16 MiB; real ones,
/// even with post-quantum key shares, are a few KiB).
pub const MAX_HELLO: usize = 64 * 1024;
/// Largest plaintext record fragment (RFC 8446 §5.1).
const MAX_FRAGMENT: usize = 1 << 14;
const CONTENT_HANDSHAKE: u8 = 0x16;
const HANDSHAKE_CLIENT_HELLO: u8 = 0x01;
const HANDSHAKE_HEADER: usize = 4;
const RANDOM: usize = 32;
const EXT_SERVER_NAME: u16 = 0;
const EXT_ALPN: u16 = 16;
const NAME_TYPE_HOST: u8 = 0;

/// What the first bytes of a connection are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peek {
    /// Not a TLS handshake record: plain TCP.
    NotTls,
    /// A TLS handshake that needs more bytes to tell.
    Incomplete,
    /// A complete ClientHello.
    Hello(ClientHello),
}

/// What a router may look at in a ClientHello.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientHello {
    /// The host name asked for, lowercase, without a trailing dot.
    pub server_name: Option<String>,
    /// The ALPN protocols offered, in the client's order.
    pub alpn: Vec<String>,
}

/// A TLS handshake that cannot be routed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HelloError {
    /// The bytes break the TLS framing or the ClientHello's structure.
    #[error("malformed ClientHello: {0}")]
    Malformed(&'static str),
    /// The ClientHello is longer than [`MAX_HELLO`].
    #[error("ClientHello longer than {MAX_HELLO} bytes")]
    TooLarge,
}

/// Look at the bytes read so far from a connection.
pub fn peek(buf: &[u8]) -> Result<Peek, HelloError> {
    match buf.first() {
        None => return Ok(Peek::Incomplete),
        Some(&CONTENT_HANDSHAKE) => {}
        Some(_) => return Ok(Peek::NotTls),
    }
    let mut handshake = Vec::new();
    let mut rest = buf;
    loop {
        if rest.len() < RECORD_HEADER {
            return Ok(Peek::Incomplete);
        }
        if rest[0] != CONTENT_HANDSHAKE {
            return Err(HelloError::Malformed(
                "a record of another type inside the ClientHello",
            ));
        }
        if rest[1] != 3 {
            return Err(HelloError::Malformed("not a TLS record version"));
        }
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        if len == 0 || len > MAX_FRAGMENT {
            return Err(HelloError::Malformed("bad record length"));
        }
        let Some(fragment) = rest.get(RECORD_HEADER..RECORD_HEADER + len) else {
            return Ok(Peek::Incomplete);
        };
        handshake.extend_from_slice(fragment);
        rest = &rest[RECORD_HEADER + len..];
        if handshake.len() < HANDSHAKE_HEADER {
            continue;
        }
        if handshake[0] != HANDSHAKE_CLIENT_HELLO {
            return Err(HelloError::Malformed(
                "the first handshake message is not a ClientHello",
            ));
        }
        let msg_len = usize::from(handshake[1]) << 16
            | usize::from(handshake[2]) << 8
            | usize::from(handshake[3]);
        if msg_len > MAX_HELLO {
            return Err(HelloError::TooLarge);
        }
        if let Some(body) = handshake.get(HANDSHAKE_HEADER..HANDSHAKE_HEADER + msg_len) {
            return parse_body(body).map(Peek::Hello);
        }
    }
}

/// A cursor over length-prefixed TLS structures.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], HelloError> {
        if self.0.len() < n {
            return Err(HelloError::Malformed(what));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, HelloError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, HelloError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    /// A vector with a one-byte length.
    fn vec8(&mut self, what: &'static str) -> Result<Reader<'a>, HelloError> {
        let n = usize::from(self.u8(what)?);
        self.take(n, what).map(Reader)
    }
    /// A vector with a two-byte length.
    fn vec16(&mut self, what: &'static str) -> Result<Reader<'a>, HelloError> {
        let n = usize::from(self.u16(what)?);
        self.take(n, what).map(Reader)
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn parse_body(body: &[u8]) -> Result<ClientHello, HelloError> {
    let mut r = Reader(body);
    r.take(2 + RANDOM, "truncated version or random")?;
    if r.vec8("truncated session id")?.0.len() > 32 {
        return Err(HelloError::Malformed("session id longer than 32 bytes"));
    }
    let suites = r.vec16("truncated cipher suites")?;
    if suites.is_empty() || suites.0.len() % 2 != 0 {
        return Err(HelloError::Malformed("bad cipher suite list"));
    }
    if r.vec8("truncated compression methods")?.is_empty() {
        return Err(HelloError::Malformed("no compression method"));
    }
    let mut hello = ClientHello::default();
    if r.is_empty() {
        // A TLS 1.2 ClientHello may end here, without extensions.
        return Ok(hello);
    }
    let mut extensions = r.vec16("truncated extensions")?;
    if !r.is_empty() {
        return Err(HelloError::Malformed("bytes after the extensions"));
    }
    let mut seen = Vec::new();
    while !extensions.is_empty() {
        let kind = extensions.u16("truncated extension")?;
        let data = extensions.vec16("truncated extension")?;
        if seen.contains(&kind) {
            return Err(HelloError::Malformed("an extension appears twice"));
        }
        seen.push(kind);
        match kind {
            EXT_SERVER_NAME => hello.server_name = server_name(data)?,
            EXT_ALPN => hello.alpn = alpn(data)?,
            _ => {}
        }
    }
    Ok(hello)
}

fn server_name(mut data: Reader<'_>) -> Result<Option<String>, HelloError> {
    let mut list = data.vec16("truncated server name list")?;
    if !data.is_empty() {
        return Err(HelloError::Malformed("bytes after the server name list"));
    }
    let mut host = None;
    while !list.is_empty() {
        let kind = list.u8("truncated server name")?;
        let name = list.vec16("truncated server name")?.0;
        if kind != NAME_TYPE_HOST {
            continue;
        }
        if host.is_some() {
            return Err(HelloError::Malformed("two host names"));
        }
        let valid = !name.is_empty() && name.iter().all(|b| b.is_ascii_graphic());
        if !valid {
            return Err(HelloError::Malformed(
                "the host name is not printable ASCII",
            ));
        }
        let text: String = name
            .iter()
            .map(|&b| char::from(b.to_ascii_lowercase()))
            .collect();
        host = Some(text.trim_end_matches('.').to_string());
    }
    Ok(host)
}

fn alpn(mut data: Reader<'_>) -> Result<Vec<String>, HelloError> {
    let mut list = data.vec16("truncated ALPN list")?;
    if !data.is_empty() {
        return Err(HelloError::Malformed("bytes after the ALPN list"));
    }
    let mut protocols = Vec::new();
    while !list.is_empty() {
        let p = list.vec8("truncated ALPN protocol")?.0;
        if p.is_empty() {
            return Err(HelloError::Malformed("an empty ALPN protocol"));
        }
        protocols.push(String::from_utf8_lossy(p).into_owned());
    }
    Ok(protocols)
}

#[cfg(test)]
mod tests;

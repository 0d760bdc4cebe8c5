//! Response body framing without IO: how a response head delimits its body
//! (RFC 9112 §6.3), and the decoder that takes the body, chunked or not, from the front
//! of a read buffer. [`H1Body`](super::H1Body) drives it from the connection.
//!
//! ```text
//!  head ─▶ framing() ─▶ Length(n) │ Chunked(Size) │ UntilClose │ no body: Length(0)
//!  buf  ─▶ Framing::decode ─▶ Data │ Trailer │ More (read; at end of stream: at_eof) │ End
//!  chunked: Size ─▶ Data(n) ─▶ DataEnd ─▶ Size … last chunk ─▶ Trailers ─▶ empty line: End
//! ```
//! Chunk sizes are hex digits (any leading zeros, no sign, no `0x`), optionally followed
//! by whitespace and `;` extensions, which are read and ignored; every line ends in
//! CRLF (a bare LF or CR is malformed). Trailer lines must be header fields.

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};

use super::{H1Error, MAX_LINE};

/// How a response body is delimited, and how much of it is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// This many bytes are left.
    Length(u64),
    /// Chunked, in the given state.
    Chunked(Chunk),
    /// Until the backend closes the connection.
    UntilClose,
    /// Ended.
    Done,
}

/// Where chunked decoding stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// This many data bytes of the chunk are left.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one.
    Trailers,
}

/// One step of decoding.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Decoded {
    /// Body data (never empty).
    Data(Bytes),
    /// A trailer field of a chunked body.
    Trailer(HeaderName, HeaderValue),
    /// The buffer holds nothing more of the body: read more, or at the end of the
    /// stream call [`Framing::at_eof`].
    More,
    /// The body has ended; what follows it in the buffer is not touched.
    End,
}

/// How the body of a response to `method` with this head is delimited.
pub(super) fn framing(
    method: &Method,
    status: StatusCode,
    headers: &HeaderMap,
) -> Result<Framing, H1Error> {
    if *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(Framing::Length(0));
    }
    if headers.contains_key(header::TRANSFER_ENCODING) {
        // An unreadable value counts as an unknown coding: read until close.
        let last = headers
            .get_all(header::TRANSFER_ENCODING)
            .iter()
            .map(|v| v.to_str().unwrap_or("?"))
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .rfind(|c| !c.is_empty());
        return Ok(match last {
            Some(c) if c.eq_ignore_ascii_case("chunked") => Framing::Chunked(Chunk::Size),
            _ => Framing::UntilClose,
        });
    }
    let mut length: Option<u64> = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        let text = value
            .to_str()
            .map_err(|_| H1Error::Malformed("bad content-length"))?;
        for part in text.split(',') {
            let part = part.trim();
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(H1Error::Malformed("bad content-length"));
            }
            let n: u64 = part
                .parse()
                .map_err(|_| H1Error::Malformed("bad content-length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(H1Error::Malformed("conflicting content-length"));
            }
            length = Some(n);
        }
    }
    Ok(length.map_or(Framing::UntilClose, Framing::Length))
}

impl Framing {
    /// Takes the next piece of the body from the front of `buf`.
    pub(super) fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, H1Error> {
        loop {
            match *self {
                Framing::Done => return Ok(Decoded::End),
                Framing::Length(0) => *self = Framing::Done,
                Framing::Length(left) => {
                    let Some(data) = take_data(buf, left) else {
                        return Ok(Decoded::More);
                    };
                    *self = Framing::Length(left - data.len() as u64);
                    return Ok(Decoded::Data(data));
                }
                Framing::UntilClose if buf.is_empty() => return Ok(Decoded::More),
                Framing::UntilClose => return Ok(Decoded::Data(buf.split().freeze())),
                Framing::Chunked(Chunk::Data(left)) => {
                    let Some(data) = take_data(buf, left) else {
                        return Ok(Decoded::More);
                    };
                    *self = Framing::Chunked(match left - data.len() as u64 {
                        0 => Chunk::DataEnd,
                        rest => Chunk::Data(rest),
                    });
                    return Ok(Decoded::Data(data));
                }
                Framing::Chunked(Chunk::DataEnd) => match buf.get(..2) {
                    Some(b"\r\n") => {
                        buf.advance(2);
                        *self = Framing::Chunked(Chunk::Size);
                    }
                    None if buf.first().is_none_or(|b| *b == b'\r') => return Ok(Decoded::More),
                    _ => return Err(H1Error::Malformed("chunk data not followed by CRLF")),
                },
                Framing::Chunked(Chunk::Size) => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(Decoded::More);
                    };
                    *self = Framing::Chunked(match chunk_size(&line)? {
                        0 => Chunk::Trailers,
                        n => Chunk::Data(n),
                    });
                }
                Framing::Chunked(Chunk::Trailers) => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(Decoded::More);
                    };
                    if line.is_empty() {
                        *self = Framing::Done;
                        return Ok(Decoded::End);
                    }
                    let (name, value) = trailer(&line)?;
                    return Ok(Decoded::Trailer(name, value));
                }
            }
        }
    }

    /// The stream ended where [`Framing::decode`] wanted more: the end of a body read
    /// until close, or a truncated one.
    pub(super) fn at_eof(&mut self) -> Result<(), H1Error> {
        match *self {
            Framing::UntilClose | Framing::Done | Framing::Length(0) => {
                *self = Framing::Done;
                Ok(())
            }
            Framing::Length(_) => Err(H1Error::Malformed("connection closed within the body")),
            Framing::Chunked(_) => Err(H1Error::Malformed(
                "connection closed within a chunked body",
            )),
        }
    }
}

/// Up to `left` bytes from the front of `buf`; `None` if it is empty.
fn take_data(buf: &mut BytesMut, left: u64) -> Option<Bytes> {
    if buf.is_empty() {
        return None;
    }
    let n = (buf.len() as u64).min(left) as usize;
    Some(buf.split_to(n).freeze())
}

/// A CRLF-terminated line from the front of `buf` (without the CRLF), or `None` while
/// it is incomplete.
fn take_line(buf: &mut BytesMut) -> Result<Option<BytesMut>, H1Error> {
    let Some(lf) = buf.iter().position(|b| *b == b'\n') else {
        if buf.len() > MAX_LINE {
            return Err(H1Error::Malformed("chunk line too long"));
        }
        return Ok(None);
    };
    if lf == 0 || buf[lf - 1] != b'\r' {
        return Err(H1Error::Malformed("bare LF in a chunked body"));
    }
    if lf > MAX_LINE {
        return Err(H1Error::Malformed("chunk line too long"));
    }
    let mut line = buf.split_to(lf + 1);
    line.truncate(lf - 1);
    Ok(Some(line))
}

/// Optional whitespace (RFC 9110 §5.6.3).
fn is_ows(b: &u8) -> bool {
    *b == b' ' || *b == b'\t'
}

/// The size in a chunk-size line (extensions after `;` checked for stray control
/// characters and ignored).
pub(super) fn chunk_size(line: &[u8]) -> Result<u64, H1Error> {
    let bad = || H1Error::Malformed("bad chunk size");
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let (size, rest) = line.split_at(digits);
    let rest = &rest[rest.iter().take_while(|b| is_ows(b)).count()..];
    let extensions_ok = match rest.split_first() {
        None => true,
        Some((b';', ext)) => ext
            .iter()
            .all(|b| *b == b'\t' || (*b >= b' ' && *b != 0x7f)),
        Some(_) => false,
    };
    if size.is_empty() || !extensions_ok {
        return Err(bad());
    }
    size.iter().try_fold(0u64, |n, b| {
        let digit = (*b as char).to_digit(16).ok_or_else(bad)?;
        n.checked_mul(16)
            .and_then(|n| n.checked_add(u64::from(digit)))
            .ok_or_else(bad)
    })
}

/// A trailer line as a header field.
fn trailer(line: &[u8]) -> Result<(HeaderName, HeaderValue), H1Error> {
    let bad = || H1Error::Malformed("bad trailer field");
    let colon = line.iter().position(|b| *b == b':').ok_or_else(bad)?;
    let name = HeaderName::from_bytes(&line[..colon]).map_err(|_| bad())?;
    let value = &line[colon + 1..];
    let start = value.iter().take_while(|b| is_ows(b)).count();
    let end = value.len() - value.iter().rev().take_while(|b| is_ows(b)).count();
    let value = HeaderValue::from_bytes(&value[start..end.max(start)]).map_err(|_| bad())?;
    Ok((name, value))
}

#[cfg(test)]
mod tests;

//! The reference reading of a byte stream of requests: heads by httparse alone (its
//! default, strict settings), bodies framed by RFC 9112 §6 read to the letter. Slow
//! and simple; no proxy code.

/// One request as a backend should receive it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub method: String,
    /// Path and query, as the proxy sends them on (origin form).
    pub target: String,
    pub body: Vec<u8>,
}

/// Where the reading stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// At the end of the bytes, after a whole message.
    End,
    /// Within a message that needs more bytes.
    Incomplete,
    /// At something RFC 9112 does not allow.
    Invalid(String),
}

/// The messages `bytes` holds, in order, and why reading stopped.
pub fn read(bytes: &[u8]) -> (Vec<Message>, Stop) {
    let mut messages = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        match message(rest) {
            Ok(Some((m, used))) => {
                messages.push(m);
                rest = &rest[used..];
            }
            Ok(None) => return (messages, Stop::Incomplete),
            Err(why) => return (messages, Stop::Invalid(why)),
        }
    }
    (messages, Stop::End)
}

/// Whether httparse refuses the first head outright.
pub fn first_head_refused(bytes: &[u8]) -> bool {
    let mut slots = [httparse::EMPTY_HEADER; 128];
    httparse::Request::new(&mut slots).parse(bytes).is_err()
}

/// How a body is delimited.
enum Framing {
    Length(usize),
    Chunked,
}

/// One message from the front of `bytes` and how many bytes it took; `None` if
/// incomplete.
fn message(bytes: &[u8]) -> Result<Option<(Message, usize)>, String> {
    let mut slots = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut slots);
    let len = match req.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("head: {e}")),
    };
    let framing = framing(&req)?;
    let method = req.method.unwrap_or_default().to_string();
    let target = origin_form(req.path.unwrap_or_default())?;
    let (body, used) = match framing {
        Framing::Length(n) if bytes.len() - len < n => return Ok(None),
        Framing::Length(n) => (bytes[len..len + n].to_vec(), n),
        Framing::Chunked => match chunked(&bytes[len..])? {
            Some(read) => read,
            None => return Ok(None),
        },
    };
    Ok(Some((
        Message {
            method,
            target,
            body,
        },
        len + used,
    )))
}

/// RFC 9112 §6.1–6.3 for requests.
fn framing(req: &httparse::Request<'_, '_>) -> Result<Framing, String> {
    let values = |name: &str| -> Vec<&[u8]> {
        req.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
            .collect()
    };
    let te = values("transfer-encoding");
    let cl = values("content-length");
    if !te.is_empty() {
        if req.version == Some(0) {
            return Err("Transfer-Encoding in HTTP/1.0".into());
        }
        if !cl.is_empty() {
            return Err("Transfer-Encoding and Content-Length".into());
        }
        let codings: Vec<String> = te
            .iter()
            .flat_map(|v| v.split(|b| *b == b','))
            .map(|c| String::from_utf8_lossy(c.trim_ascii()).to_ascii_lowercase())
            .filter(|c| !c.is_empty())
            .collect();
        let chunked_last = codings.last().is_some_and(|c| c == "chunked");
        let chunked_once = codings.iter().filter(|c| *c == "chunked").count() == 1;
        if !(chunked_last && chunked_once) {
            return Err(format!("Transfer-Encoding {codings:?}"));
        }
        return Ok(Framing::Chunked);
    }
    let mut length = None;
    for part in cl.iter().flat_map(|v| v.split(|b| *b == b',')) {
        let part = part.trim_ascii();
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return Err("Content-Length not digits".into());
        }
        let n: usize = std::str::from_utf8(part)
            .ok()
            .and_then(|p| p.parse().ok())
            .ok_or("Content-Length too large")?;
        if length.is_some_and(|l| l != n) {
            return Err("Content-Length values differ".into());
        }
        length = Some(n);
    }
    Ok(Framing::Length(length.unwrap_or(0)))
}

/// The target as sent on in origin form: path (at least `/`) and query; `*` as it is.
fn origin_form(target: &str) -> Result<String, String> {
    let uri: http::Uri = target.parse().map_err(|e| format!("target: {e}"))?;
    if target == "*" {
        return Ok("*".into());
    }
    Ok(match uri.query() {
        Some(q) => format!("{}?{q}", uri.path()),
        None => uri.path().to_string(),
    })
}

/// A chunked body (RFC 9112 §7.1) from the front of `bytes`: its data and the bytes it
/// took; `None` if incomplete.
fn chunked(bytes: &[u8]) -> Result<Option<(Vec<u8>, usize)>, String> {
    let mut at = 0;
    let mut data = Vec::new();
    loop {
        let Some(line) = line(&bytes[at..])? else {
            return Ok(None);
        };
        at += line.len() + 2;
        let size = chunk_size(line)?;
        if size == 0 {
            break;
        }
        if bytes.len() < at + size + 2 {
            return Ok(None);
        }
        data.extend_from_slice(&bytes[at..at + size]);
        at += size;
        if &bytes[at..at + 2] != b"\r\n" {
            return Err("chunk data not followed by CRLF".into());
        }
        at += 2;
    }
    // Trailer fields until an empty line.
    loop {
        let Some(line) = line(&bytes[at..])? else {
            return Ok(None);
        };
        at += line.len() + 2;
        if line.is_empty() {
            return Ok(Some((data, at)));
        }
        let colon = line.iter().position(|b| *b == b':');
        let name_ok = colon.is_some_and(|c| c > 0 && line[..c].iter().all(|b| is_tchar(*b)));
        if !name_ok || line.iter().any(|b| b.is_ascii_control() && *b != b'\t') {
            return Err("bad trailer field".into());
        }
    }
}

/// A line ended by CRLF (a bare LF is an error); `None` if unended.
fn line(bytes: &[u8]) -> Result<Option<&[u8]>, String> {
    match bytes.iter().position(|b| *b == b'\n') {
        None => Ok(None),
        Some(lf) if lf > 0 && bytes[lf - 1] == b'\r' => Ok(Some(&bytes[..lf - 1])),
        Some(_) => Err("bare LF".into()),
    }
}

/// `1*HEXDIG [ BWS ";" ext ]`, extensions without control characters (their inner
/// grammar is not checked).
fn chunk_size(line: &[u8]) -> Result<usize, String> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let after = &line[digits..];
    let bws = after
        .iter()
        .take_while(|b| **b == b' ' || **b == b'\t')
        .count();
    let ext_ok = after.is_empty()
        || (after[bws..].first() == Some(&b';')
            && !after.iter().any(|b| b.is_ascii_control() && *b != b'\t'));
    if digits == 0 || !ext_ok {
        return Err(format!("chunk size {:?}", String::from_utf8_lossy(line)));
    }
    usize::from_str_radix(std::str::from_utf8(&line[..digits]).unwrap_or("x"), 16)
        .map_err(|_| "chunk size overflows".into())
}

/// RFC 9110 §5.6.2 token characters.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

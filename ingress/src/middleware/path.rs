//! Path rewriting: `stripPrefix`, `stripPrefixRegex`, `addPrefix`, `replacePath`,
//! `replacePathRegex`, as Træfik v3 does them.
//!
//! Prefixes are matched against the decoded path and cut from the path as received
//! (percent escapes kept: `/ap%69/a%2Fb` less `/api/` is `/a%2Fb`). A path that a cut
//! or a replacement leaves unclean (`//`, `.` or `..` segments) is refused with 400,
//! as Træfik does, so that a rewrite cannot reach outside the prefix.

use http::header::{HeaderName, HeaderValue};
use http::uri::{PathAndQuery, Uri};
use http::{Request, StatusCode};

use super::{status_answer, text_answer, Answer};
use crate::config::middlewares::{
    AddPrefix, ReplacePath, ReplacePathRegex, StripPrefix, StripPrefixRegex,
};
use crate::proxy::body::ProxyBody;

/// Where the stripped prefix goes.
pub const X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");
/// Where the replaced path goes.
pub const X_REPLACED_PATH: HeaderName = HeaderName::from_static("x-replaced-path");

/// One of the path middlewares.
#[derive(Debug)]
pub enum PathRewrite {
    /// `stripPrefix`.
    StripPrefix(StripPrefix),
    /// `stripPrefixRegex`.
    StripPrefixRegex(StripPrefixRegex),
    /// `addPrefix`.
    AddPrefix(AddPrefix),
    /// `replacePath`.
    ReplacePath(ReplacePath),
    /// `replacePathRegex`.
    ReplacePathRegex(ReplacePathRegex),
}

/// What a rewrite decided: the new path (as sent) and a header to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    /// The path to send (never empty).
    pub path: String,
    /// `X-Forwarded-Prefix` or `X-Replaced-Path` with its value.
    pub header: Option<(HeaderName, String)>,
}

/// Why a rewrite refused the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The result is not a clean path (400).
    Unclean,
    /// The result has a bad percent escape (500, as in Træfik).
    BadEscape,
}

impl PathRewrite {
    /// The rewrite of `raw` (the path as received); `Ok(None)` leaves it alone.
    pub fn rewrite(&self, raw: &str) -> Result<Option<Rewritten>, Refused> {
        match self {
            PathRewrite::StripPrefix(c) => strip_prefix(c, raw),
            PathRewrite::StripPrefixRegex(c) => strip_prefix_regex(c, raw),
            PathRewrite::AddPrefix(c) => Ok(Some(Rewritten {
                path: ensure_leading_slash(format!("{}{raw}", c.prefix)),
                header: None,
            })),
            PathRewrite::ReplacePath(c) => Ok(Some(Rewritten {
                path: non_empty(c.path.clone()),
                header: Some((X_REPLACED_PATH, raw.to_string())),
            })),
            PathRewrite::ReplacePathRegex(c) => {
                if !c.regex.0.is_match(raw) {
                    return Ok(None);
                }
                let replaced = c
                    .regex
                    .0
                    .replace_all(raw, c.replacement.as_str())
                    .into_owned();
                let path = encode_invalid(&replaced);
                if !valid_escapes(&path) {
                    return Err(Refused::BadEscape);
                }
                if !path.is_empty() && !is_clean(&path) {
                    return Err(Refused::Unclean);
                }
                Ok(Some(Rewritten {
                    path: non_empty(path),
                    header: Some((X_REPLACED_PATH, raw.to_string())),
                }))
            }
        }
    }

    /// Rewrite `req`'s path (keeping its query); a refusal is the answer.
    pub fn apply(&self, req: &mut Request<ProxyBody>) -> Result<(), Answer> {
        let rewritten = match self.rewrite(req.uri().path()) {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(()),
            Err(Refused::Unclean) => return Err(Box::new(status_answer(StatusCode::BAD_REQUEST))),
            Err(Refused::BadEscape) => {
                return Err(Box::new(status_answer(StatusCode::INTERNAL_SERVER_ERROR)))
            }
        };
        let Some(uri) = with_path(req.uri(), &rewritten.path) else {
            return Err(Box::new(text_answer(
                StatusCode::BAD_REQUEST,
                "bad request target",
            )));
        };
        *req.uri_mut() = uri;
        if let Some((name, value)) = rewritten.header {
            if let Ok(v) = HeaderValue::from_str(&value) {
                req.headers_mut().append(name, v);
            }
        }
        Ok(())
    }
}

fn strip_prefix(c: &StripPrefix, raw: &str) -> Result<Option<Rewritten>, Refused> {
    let decoded = percent_decode(raw);
    let Some(prefix) = c
        .prefixes
        .iter()
        .find(|p| decoded.starts_with(p.as_bytes()))
    else {
        return Ok(None);
    };
    let rest = &raw[encoded_len(raw, prefix.len())..];
    let path = if c.force_slash {
        format!("/{}", rest.strip_prefix('/').unwrap_or(rest))
    } else {
        ensure_leading_slash(rest.to_string())
    };
    if !path.is_empty() && !is_clean(&path) {
        return Err(Refused::Unclean);
    }
    Ok(Some(Rewritten {
        path: non_empty(path),
        header: Some((X_FORWARDED_PREFIX, prefix.clone())),
    }))
}

fn strip_prefix_regex(c: &StripPrefixRegex, raw: &str) -> Result<Option<Rewritten>, Refused> {
    let decoded = percent_decode(raw);
    let Ok(decoded) = String::from_utf8(decoded) else {
        return Ok(None);
    };
    for re in &c.regex {
        let Some(m) = re.0.find(&decoded) else {
            continue;
        };
        let prefix = m.as_str();
        if prefix.is_empty() || !decoded.starts_with(prefix) {
            continue;
        }
        let rest = &raw[encoded_len(raw, prefix.len())..];
        let path = ensure_leading_slash(rest.to_string());
        if !path.is_empty() && !is_clean(&path) {
            return Err(Refused::Unclean);
        }
        return Ok(Some(Rewritten {
            path: non_empty(path),
            header: Some((X_FORWARDED_PREFIX, prefix.to_string())),
        }));
    }
    Ok(None)
}

/// `uri` with its path replaced (query, scheme and authority kept).
pub fn with_path(uri: &Uri, path: &str) -> Option<Uri> {
    let pq = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::from_maybe_shared(pq).ok()?);
    Uri::from_parts(parts).ok()
}

fn ensure_leading_slash(path: String) -> String {
    if path.is_empty() || path.starts_with('/') {
        path
    } else {
        format!("/{path}")
    }
}

/// An empty path goes out as `/` (a request target cannot be empty).
fn non_empty(path: String) -> String {
    if path.is_empty() {
        "/".to_string()
    } else {
        path
    }
}

/// The bytes `%XX` escapes stand for (a `%` not followed by two hex digits stays).
pub fn percent_decode(raw: &str) -> Vec<u8> {
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(high), Some(low)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(high << 4 | low);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// How many bytes of `raw` make up its first `decoded` decoded bytes.
fn encoded_len(raw: &str, decoded: usize) -> usize {
    let b = raw.as_bytes();
    let (mut i, mut n) = (0, 0);
    while i < b.len() && n < decoded {
        i += if b[i] == b'%' && i + 2 < b.len() {
            3
        } else {
            1
        };
        n += 1;
    }
    i.min(b.len())
}

/// Whether every `%` starts an escape of two hex digits.
fn valid_escapes(path: &str) -> bool {
    let b = path.as_bytes();
    b.iter().enumerate().all(|(i, c)| {
        *c != b'%'
            || (b.get(i + 1).and_then(|x| hex(*x)).is_some()
                && b.get(i + 2).and_then(|x| hex(*x)).is_some())
    })
}

/// Percent-encode what may not stand in a path as it is (spaces, controls, non-ASCII).
fn encode_invalid(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_graphic() && !b"?#\"<>\\^`{|}".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether `path` is what Go's `path.Clean` leaves it (a trailing slash kept): rooted,
/// no empty, `.` or `..` segments.
pub fn is_clean(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    if rest.is_empty() {
        return true;
    }
    let segments: Vec<&str> = rest.split('/').collect();
    let last = segments.len() - 1;
    segments
        .iter()
        .enumerate()
        .all(|(i, s)| *s != "." && *s != ".." && (!s.is_empty() || i == last))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::middlewares::Pattern;

    fn strip(prefixes: &[&str], path: &str) -> Result<Option<(String, String)>, Refused> {
        let m = PathRewrite::StripPrefix(StripPrefix {
            prefixes: prefixes.iter().map(|p| p.to_string()).collect(),
            force_slash: false,
        });
        m.rewrite(path)
            .map(|r| r.map(|r| (r.path, r.header.map(|h| h.1).unwrap_or_default())))
    }

    fn some(path: &str, header: &str) -> Result<Option<(String, String)>, Refused> {
        Ok(Some((path.to_string(), header.to_string())))
    }

    /// Træfik's own stripPrefix cases (`strip_prefix_test.go`); an empty result path is
    /// sent as `/`.
    #[test]
    fn strip_prefix_as_træfik_v3() {
        assert_eq!(strip(&[], "/noprefixes"), Ok(None));
        assert_eq!(strip(&["/"], "/"), some("/", "/"));
        assert_eq!(strip(&["/stat"], "/stat"), some("/", "/stat"));
        assert_eq!(strip(&["/stat/"], "/stat/"), some("/", "/stat/"));
        assert_eq!(strip(&["/stat/"], "/stat/us"), some("/us", "/stat/"));
        assert_eq!(strip(&["/stat/"], "/status"), Ok(None));
        assert_eq!(strip(&["/stat"], "/stat/"), some("/", "/stat"));
        assert_eq!(
            strip(&["/stat", "/stat/us"], "/stat/us"),
            some("/us", "/stat")
        );
        assert_eq!(strip(&["/mismatch", "/stat"], "/stat"), some("/", "/stat"));
        assert_eq!(strip(&["/stat"], "/status"), some("/us", "/stat"));
        assert_eq!(strip(&["/stat"], "/stat/a%2Fb"), some("/a%2Fb", "/stat"));
        assert_eq!(strip(&["/api/"], "/ap%69/a%2Fb"), some("/a%2Fb", "/api/"));
        assert_eq!(strip(&["/api"], "/api./foo"), Err(Refused::Unclean));
        assert_eq!(strip(&["/api"], "/api../foo"), Err(Refused::Unclean));
        assert_eq!(strip(&["/api"], "/api//foo"), Err(Refused::Unclean));
    }

    #[test]
    fn force_slash_strips_a_following_slash_first() {
        let m = PathRewrite::StripPrefix(StripPrefix {
            prefixes: vec!["/api".into()],
            force_slash: true,
        });
        assert_eq!(m.rewrite("/api").unwrap().unwrap().path, "/");
        assert_eq!(m.rewrite("/api/x").unwrap().unwrap().path, "/x");
        assert_eq!(m.rewrite("/apix").unwrap().unwrap().path, "/x");
    }

    #[test]
    fn strip_prefix_regex_cuts_a_leading_match() {
        let m = PathRewrite::StripPrefixRegex(StripPrefixRegex {
            regex: vec![
                Pattern(regex::Regex::new("/a/api/").unwrap()),
                Pattern(regex::Regex::new("/b/[a-z0-9]+/").unwrap()),
            ],
        });
        let r = m.rewrite("/b/123/api/x").unwrap().unwrap();
        assert_eq!(
            (r.path.as_str(), r.header.unwrap().1.as_str()),
            ("/api/x", "/b/123/")
        );
        assert_eq!(
            m.rewrite("/x/b/123/").unwrap(),
            None,
            "a match that is no prefix"
        );
        assert_eq!(m.rewrite("/a/api/").unwrap().unwrap().path, "/");
        assert_eq!(m.rewrite("/b/1/../x").unwrap_err(), Refused::Unclean);
    }

    #[test]
    fn add_and_replace() {
        let add = PathRewrite::AddPrefix(AddPrefix {
            prefix: "/api".into(),
        });
        assert_eq!(add.rewrite("/x").unwrap().unwrap().path, "/api/x");
        let add = PathRewrite::AddPrefix(AddPrefix {
            prefix: "api".into(),
        });
        assert_eq!(add.rewrite("/x").unwrap().unwrap().path, "/api/x");
        let rep = PathRewrite::ReplacePath(ReplacePath {
            path: "/foo".into(),
        });
        let r = rep.rewrite("/a%20b").unwrap().unwrap();
        assert_eq!(r.path, "/foo");
        assert_eq!(r.header, Some((X_REPLACED_PATH, "/a%20b".into())));
        let re = PathRewrite::ReplacePathRegex(ReplacePathRegex {
            regex: Pattern(regex::Regex::new("^/foo/(.*)").unwrap()),
            replacement: "/bar/$1".into(),
        });
        assert_eq!(
            re.rewrite("/foo/x%2Fy").unwrap().unwrap().path,
            "/bar/x%2Fy"
        );
        assert_eq!(re.rewrite("/other").unwrap(), None);
        assert_eq!(re.rewrite("/foo/../x").unwrap_err(), Refused::Unclean);
        let bad = PathRewrite::ReplacePathRegex(ReplacePathRegex {
            regex: Pattern(regex::Regex::new("^/(.*)").unwrap()),
            replacement: "/%zz/$1".into(),
        });
        assert_eq!(bad.rewrite("/x").unwrap_err(), Refused::BadEscape);
    }

    #[test]
    fn clean_paths() {
        for p in ["/", "/a", "/a/", "/a/b/", "/a.b/..c", "/%2e%2e/x"] {
            assert!(is_clean(p), "{p}");
        }
        for p in ["", "a", "//", "/a//b", "/./a", "/a/..", "/a/.", "/a//"] {
            assert!(!is_clean(p), "{p}");
        }
    }

    #[test]
    fn the_query_stays() {
        let uri: Uri = "/stat/x?a=1&b".parse().unwrap();
        assert_eq!(with_path(&uri, "/x").unwrap().to_string(), "/x?a=1&b");
        let abs: Uri = "http://h:8/stat?q".parse().unwrap();
        assert_eq!(with_path(&abs, "/y").unwrap().to_string(), "http://h:8/y?q");
    }
}

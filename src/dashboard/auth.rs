//! Who may see the dashboard: anyone who can reach a loopback address, and beyond
//! loopback (or with `--dashboard-token-file`) only a request carrying the token — as
//! `Authorization: Bearer TOKEN` (scripts), or `?token=TOKEN` once on the page, which
//! then sets an HttpOnly, SameSite=Strict cookie for its own requests (browsers cannot
//! put a header on a server-sent event stream).

use std::net::SocketAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::Dashboard;

/// The cookie the page's own requests carry.
const COOKIE: &str = "shoal_dashboard";
/// The file a token is made in when none is given.
pub const TOKEN_FILE: &str = "dashboard.token";

/// What a request needs.
#[derive(Clone, PartialEq, Eq)]
pub enum Access {
    /// Nothing: the dashboard is on loopback and no token was asked for.
    Open,
    /// The bearer token.
    Token(String),
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Access::Open => f.write_str("Open"),
            Access::Token(_) => f.write_str("Token(…)"),
        }
    }
}

/// A token read from `text`: one line of at least 16 characters, printable ASCII
/// without spaces (it travels in a header, a cookie and a query).
pub fn parse_token(text: &str) -> Result<String, String> {
    let token = text.trim();
    if token.len() < 16 {
        return Err(format!(
            "the token has {} characters; use at least 16",
            token.len()
        ));
    }
    if let Some(c) = token
        .chars()
        .find(|c| !c.is_ascii_graphic() || matches!(c, ';' | ',' | '&' | '=' | '"'))
    {
        return Err(format!(
            "the token holds {c:?}; use letters, digits and -._~+/ only"
        ));
    }
    Ok(token.to_string())
}

/// What requests to `addr` need: the token of `token_file` if given; else nothing on
/// loopback; else the token in `data_dir`/[`TOKEN_FILE`], made (random, mode 0600) if
/// absent. Returns where the token is, to tell the operator.
pub fn access(
    addr: SocketAddr,
    token_file: Option<&Path>,
    data_dir: &Path,
) -> anyhow::Result<(Access, Option<PathBuf>)> {
    let read = |path: &Path| -> anyhow::Result<String> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the dashboard token file {}", path.display()))?;
        parse_token(&text)
            .map_err(|e| anyhow::anyhow!("dashboard token file {}: {e}", path.display()))
    };
    if let Some(path) = token_file {
        return Ok((Access::Token(read(path)?), Some(path.to_path_buf())));
    }
    if addr.ip().is_loopback() {
        return Ok((Access::Open, None));
    }
    let path = data_dir.join(TOKEN_FILE);
    if !path.exists() {
        let token: String = {
            use rand::Rng;
            let bytes: [u8; 24] = rand::thread_rng().gen();
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        std::io::Write::write_all(&mut f, format!("{token}\n").as_bytes())?;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok((Access::Token(read(&path)?), Some(path)))
}

/// Equal, in time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Where a request carries a token: `Bearer` header, the page's cookie or `?token=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carried {
    /// Not at all.
    No,
    /// In the `Authorization` header or the cookie.
    Header,
    /// In the query (the page then sets the cookie).
    Query,
}

/// Whether `headers`/`query` carry `token`, and how.
pub fn carried(token: &str, headers: &HeaderMap, query: Option<&str>) -> Carried {
    let bearer = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.strip_prefix("Bearer "))
        .any(|t| same(t.trim().as_bytes(), token.as_bytes()));
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .any(|(k, v)| k == COOKIE && same(v.as_bytes(), token.as_bytes()));
    if bearer || cookie {
        return Carried::Header;
    }
    let in_query = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter_map(|kv| kv.split_once('='))
        .any(|(k, v)| k == "token" && same(v.as_bytes(), token.as_bytes()));
    if in_query {
        Carried::Query
    } else {
        Carried::No
    }
}

/// The middleware: refuses a request without the token with 401.
pub async fn check(State(d): State<Arc<Dashboard>>, req: Request, next: Next) -> Response {
    let Access::Token(token) = &d.access else {
        return next.run(req).await;
    };
    match carried(token, req.headers(), req.uri().query()) {
        Carried::Header => next.run(req).await,
        Carried::Query => {
            let cookie = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict");
            let mut response = next.run(req).await;
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                response.headers_mut().append(header::SET_COOKIE, v);
            }
            response
        }
        Carried::No => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"shoal dashboard\"")],
            "this dashboard needs its token: send `Authorization: Bearer TOKEN`, or open /?token=TOKEN (the token is in the agent's --dashboard-token-file, else in DATA_DIR/dashboard.token)\n",
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "0123456789abcdef0123";

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_token_is_taken_from_the_header_the_cookie_or_the_query() {
        let none = HeaderMap::new();
        assert_eq!(carried(T, &none, None), Carried::No);
        let h = headers(&[(header::AUTHORIZATION, &format!("Bearer {T}"))]);
        assert_eq!(carried(T, &h, None), Carried::Header);
        let h = headers(&[(header::AUTHORIZATION, "Bearer 0123456789abcdef0124")]);
        assert_eq!(carried(T, &h, None), Carried::No, "one character off");
        let h = headers(&[(header::AUTHORIZATION, &format!("Basic {T}"))]);
        assert_eq!(carried(T, &h, None), Carried::No, "not a bearer token");
        let h = headers(&[(header::COOKIE, &format!("a=b; {COOKIE}={T}"))]);
        assert_eq!(carried(T, &h, None), Carried::Header);
        let h = headers(&[(header::COOKIE, &format!("other={T}"))]);
        assert_eq!(carried(T, &h, None), Carried::No, "another cookie");
        assert_eq!(
            carried(T, &none, Some(&format!("x=1&token={T}"))),
            Carried::Query
        );
        assert_eq!(carried(T, &none, Some("token=")), Carried::No);
        assert_eq!(carried(T, &none, Some(&format!("token={T}x"))), Carried::No);
    }

    #[test]
    fn tokens_are_long_and_plain() {
        assert_eq!(parse_token(&format!("  {T}\n")), Ok(T.to_string()));
        assert!(parse_token("short").unwrap_err().contains("at least 16"));
        assert!(parse_token("0123456789abcdef;x")
            .unwrap_err()
            .contains("';'"));
        assert!(parse_token("0123456789 abcdef0")
            .unwrap_err()
            .contains("' '"));
    }

    #[test]
    fn loopback_is_open_and_other_addresses_get_a_token_made_once() {
        let dir = std::env::temp_dir().join(format!("shoal-dash-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, at) = access("127.0.0.1:6790".parse().unwrap(), None, &dir).unwrap();
        assert_eq!((a, at), (Access::Open, None));
        let (a, at) = access("0.0.0.0:6790".parse().unwrap(), None, &dir).unwrap();
        let path = dir.join(TOKEN_FILE);
        assert_eq!(at.as_deref(), Some(path.as_path()));
        let Access::Token(made) = a else {
            panic!("beyond loopback a token is needed")
        };
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (again, _) = access("[::]:6790".parse().unwrap(), None, &dir).unwrap();
        assert_eq!(
            again,
            Access::Token(made),
            "the same token on the next start"
        );
        // A given file is needed on loopback too, and a bad one is refused by name.
        let given = dir.join("given");
        std::fs::write(&given, "tiny").unwrap();
        let e = access("127.0.0.1:1".parse().unwrap(), Some(&given), &dir).unwrap_err();
        assert!(
            format!("{e:#}").contains("given: the token has 4 characters"),
            "{e:#}"
        );
        std::fs::write(&given, T).unwrap();
        let (a, _) = access("127.0.0.1:1".parse().unwrap(), Some(&given), &dir).unwrap();
        assert_eq!(a, Access::Token(T.into()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! `basicAuth`: `Authorization: Basic …` checked against htpasswd hashes (bcrypt,
//! apr1/MD5-crypt, SHA-1). A failure is 401 with `WWW-Authenticate: Basic
//! realm="…"`; a success may name the user in `headerField` and drop `Authorization`.
//!
//! bcrypt is slow on purpose (tens of milliseconds): it runs on the blocking pool, and
//! a verified user and password are remembered (by a SHA-256 of both) so that a client
//! that keeps sending them is not hashed again, as Caddy does.

use std::collections::HashSet;
use std::sync::Mutex;

use base64::Engine;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use md5::{Digest, Md5};
use sha2::Sha256;

use super::text_answer;
use crate::config::middlewares::{BasicAuth, PasswordHash};
use crate::proxy::body::ProxyBody;

/// Verified credentials remembered at most.
const REMEMBERED: usize = 1024;

/// `basicAuth`, built.
pub struct BasicAuthMiddleware {
    config: BasicAuth,
    challenge: HeaderValue,
    verified: Mutex<HashSet<[u8; 32]>>,
}

impl std::fmt::Debug for BasicAuthMiddleware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuthMiddleware")
            .field("realm", &self.config.realm)
            .finish()
    }
}

impl BasicAuthMiddleware {
    /// Build from the configuration.
    pub fn new(config: &BasicAuth) -> BasicAuthMiddleware {
        let challenge = HeaderValue::from_str(&format!("Basic realm=\"{}\"", config.realm))
            .unwrap_or(HeaderValue::from_static("Basic realm=\"traefik\""));
        BasicAuthMiddleware {
            config: config.clone(),
            challenge,
            verified: Mutex::new(HashSet::new()),
        }
    }

    /// Admit `req` (adjusting its headers) or answer 401.
    pub async fn check(&self, req: &mut Request<ProxyBody>) -> Option<Response<ProxyBody>> {
        let user = match basic_credentials(req.headers().get(header::AUTHORIZATION)) {
            Some((user, password)) if self.verify(&user, &password).await => user,
            _ => return Some(self.unauthorized()),
        };
        if let Some(field) = &self.config.header_field {
            if let Ok(v) = HeaderValue::from_str(&user) {
                req.headers_mut().insert(field.clone(), v);
            }
        }
        if self.config.remove_header {
            req.headers_mut().remove(header::AUTHORIZATION);
        }
        None
    }

    fn unauthorized(&self) -> Response<ProxyBody> {
        let mut resp = text_answer(StatusCode::UNAUTHORIZED, "401 Unauthorized\n");
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, self.challenge.clone());
        resp
    }

    /// Whether `password` is `user`'s. An unknown user still costs a hash (of the first
    /// user's kind), so that timing does not tell which users exist.
    pub async fn verify(&self, user: &str, password: &str) -> bool {
        let known = self.config.users.iter().find(|(u, _)| u == user);
        let Some((_, hash)) = known.or(self.config.users.first()) else {
            return false;
        };
        let key = remember_key(user, password, hash);
        if known.is_some() && crate::proxy::lock(&self.verified).contains(&key) {
            return true;
        }
        let matched = match hash {
            PasswordHash::Bcrypt(h) => {
                let (h, p) = (h.clone(), password.to_string());
                tokio::task::spawn_blocking(move || bcrypt::verify(p, &h).unwrap_or(false))
                    .await
                    .unwrap_or(false)
            }
            other => check_password(other, password),
        };
        let ok = matched && known.is_some();
        if ok {
            let mut verified = crate::proxy::lock(&self.verified);
            if verified.len() >= REMEMBERED {
                verified.clear();
            }
            verified.insert(key);
        }
        ok
    }
}

fn remember_key(user: &str, password: &str, hash: &PasswordHash) -> [u8; 32] {
    let mut d = Sha256::new();
    for part in [
        user.as_bytes(),
        password.as_bytes(),
        format!("{hash:?}").as_bytes(),
    ] {
        d.update((part.len() as u64).to_be_bytes());
        d.update(part);
    }
    d.finalize().into()
}

/// The user and password of a `Basic` authorization (scheme without case, base64,
/// split at the first colon), as Go's `Request.BasicAuth` reads it.
pub fn basic_credentials(value: Option<&HeaderValue>) -> Option<(String, String)> {
    let text = value?.to_str().ok()?;
    let (scheme, encoded) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// Check a password against an MD5-crypt or SHA-1 hash (bcrypt is checked by the
/// `bcrypt` crate).
pub fn check_password(hash: &PasswordHash, password: &str) -> bool {
    match hash {
        PasswordHash::Bcrypt(h) => bcrypt::verify(password, h).unwrap_or(false),
        PasswordHash::Md5Crypt { hash, magic, salt } => {
            let computed = md5_crypt(password.as_bytes(), salt.as_bytes(), magic.as_bytes());
            same(computed.as_bytes(), hash.as_bytes())
        }
        PasswordHash::Sha1(digest) => {
            let computed = sha1::Sha1::digest(password.as_bytes());
            same(&computed, digest)
        }
    }
}

/// Compare without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The crypt alphabet.
const CRYPT64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Poul-Henning Kamp's MD5-crypt (`$1$`), which Apache's `$apr1$` is with another
/// magic string: `magic salt $ hash`.
pub fn md5_crypt(password: &[u8], salt: &[u8], magic: &[u8]) -> String {
    let salt = &salt[..salt.len().min(8)];
    let alternate = Md5::new()
        .chain_update(password)
        .chain_update(salt)
        .chain_update(password)
        .finalize();
    let mut ctx = Md5::new()
        .chain_update(password)
        .chain_update(magic)
        .chain_update(salt);
    for chunk in password.chunks(16) {
        ctx.update(&alternate[..chunk.len()]);
    }
    let mut bits = password.len();
    while bits != 0 {
        if bits & 1 == 1 {
            ctx.update([0u8]);
        } else {
            ctx.update(&password[..1]);
        }
        bits >>= 1;
    }
    let mut digest = ctx.finalize();
    for round in 0..1000 {
        let mut c = Md5::new();
        if round & 1 == 1 {
            c.update(password);
        } else {
            c.update(digest);
        }
        if round % 3 != 0 {
            c.update(salt);
        }
        if round % 7 != 0 {
            c.update(password);
        }
        if round & 1 == 1 {
            c.update(digest);
        } else {
            c.update(password);
        }
        digest = c.finalize();
    }
    let mut out = Vec::with_capacity(magic.len() + salt.len() + 23);
    out.extend_from_slice(magic);
    out.extend_from_slice(salt);
    out.push(b'$');
    let mut put = |value: u32, chars: usize| {
        let mut v = value;
        for _ in 0..chars {
            out.push(CRYPT64[(v & 0x3f) as usize]);
            v >>= 6;
        }
    };
    for [a, b, c] in [[0, 6, 12], [1, 7, 13], [2, 8, 14], [3, 9, 15], [4, 10, 5]] {
        put(
            u32::from(digest[a]) << 16 | u32::from(digest[b]) << 8 | u32::from(digest[c]),
            4,
        );
    }
    put(u32::from(digest[11]), 2);
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::body;

    fn hash(h: &str) -> PasswordHash {
        PasswordHash::parse("u", h).unwrap()
    }

    #[test]
    fn all_three_hash_kinds() {
        // Træfik's test users: test/test and test2/test2 (apr1), test/test (bcrypt).
        assert!(check_password(
            &hash("$apr1$H6uskkkW$IgXLP6ewTrSuBkTrqE8wj/"),
            "test"
        ));
        assert!(!check_password(
            &hash("$apr1$H6uskkkW$IgXLP6ewTrSuBkTrqE8wj/"),
            "tesT"
        ));
        assert!(check_password(
            &hash("$apr1$d9hr9HBB$4HxwgUir3HP4EsggP/QNo0"),
            "test2"
        ));
        let bcrypt = "$2a$04$.8sTYfcxbSplCtoxt5TdJOgpBYkarKtZYsYfYxQ1edbYRuO1DNi0e";
        assert!(check_password(&hash(bcrypt), "test"));
        assert!(!check_password(&hash(bcrypt), "nope"));
        let y = bcrypt::hash_with_result("s3cret", 4)
            .unwrap()
            .format_for_version(bcrypt::Version::TwoY);
        assert!(y.starts_with("$2y$"));
        assert!(check_password(&hash(&y), "s3cret"));
        // htpasswd -nbs test test
        assert!(check_password(
            &hash("{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M="),
            "test"
        ));
        assert!(!check_password(
            &hash("{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M="),
            "test "
        ));
        // MD5-crypt's classic vector (`openssl passwd -1 -salt saltsalt password`).
        assert_eq!(
            md5_crypt(b"password", b"saltsalt", b"$1$"),
            "$1$saltsalt$qjXMvbEw8oaL.CzflDtaK/"
        );
    }

    #[test]
    fn plain_text_and_unknown_schemes_are_refused() {
        assert!(PasswordHash::parse("test", "test")
            .unwrap_err()
            .contains("plain text"));
        assert!(PasswordHash::parse("t", "$5$rounds=5000$x$y").is_err());
        assert!(PasswordHash::parse("t", "$apr1$short$x").is_err());
        assert!(PasswordHash::parse("t", "{SHA}notbase64!").is_err());
    }

    #[test]
    fn credentials_are_read_like_go() {
        let v = |s: &str| HeaderValue::from_str(s).unwrap();
        assert_eq!(
            basic_credentials(Some(&v("Basic dGVzdDp0ZXN0"))),
            Some(("test".into(), "test".into()))
        );
        assert_eq!(
            basic_credentials(Some(&v("basic dTpwOnE="))),
            Some(("u".into(), "p:q".into()))
        );
        assert_eq!(basic_credentials(Some(&v("Bearer dGVzdDp0ZXN0"))), None);
        assert_eq!(basic_credentials(Some(&v("Basic !!!"))), None);
        assert_eq!(basic_credentials(None), None);
    }

    fn middleware(header_field: Option<&str>, remove: bool) -> BasicAuthMiddleware {
        BasicAuthMiddleware::new(&BasicAuth {
            users: vec![("test".into(), hash("$apr1$H6uskkkW$IgXLP6ewTrSuBkTrqE8wj/"))],
            realm: "shop".into(),
            header_field: header_field.map(|h| h.parse().unwrap()),
            remove_header: remove,
        })
    }

    fn request(auth: Option<&str>) -> Request<ProxyBody> {
        let mut b = Request::builder()
            .uri("/")
            .header("x-webauth-user", "admin");
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        b.body(body::empty()).unwrap()
    }

    #[tokio::test]
    async fn failures_get_401_with_the_realm() {
        let m = middleware(None, false);
        for auth in [
            None,
            Some("Basic dGVzdDp3cm9uZw=="),
            Some("Basic bm9ib2R5OnRlc3Q="),
        ] {
            let resp = m.check(&mut request(auth)).await.expect("refused");
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
            assert_eq!(resp.headers()["www-authenticate"], "Basic realm=\"shop\"");
        }
    }

    #[tokio::test]
    async fn success_names_the_user_and_may_drop_the_header() {
        let m = middleware(Some("X-WebAuth-User"), true);
        let mut req = request(Some("Basic dGVzdDp0ZXN0"));
        assert!(m.check(&mut req).await.is_none());
        assert_eq!(
            req.headers()
                .get_all("x-webauth-user")
                .iter()
                .collect::<Vec<_>>(),
            ["test"]
        );
        assert!(!req.headers().contains_key("authorization"));
        let kept = middleware(None, false);
        let mut req = request(Some("Basic dGVzdDp0ZXN0"));
        assert!(kept.check(&mut req).await.is_none());
        assert!(req.headers().contains_key("authorization"));
        // Remembered: the second time needs no hash.
        assert!(kept.verify("test", "test").await);
    }
}

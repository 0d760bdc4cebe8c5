//! Join tokens: `SHOAL-1-<sha256 of the CA certificate, hex>-<secret>`.
//!
//! The digest lets a joining node pin the cluster CA before it sends anything secret;
//! the secret proves to the manager that the joiner was invited, and which role the
//! invitation is for (workers and managers have different secrets).

use std::fmt;
use std::str::FromStr;

use rand::Rng;

/// The length of a generated secret.
const SECRET_LEN: usize = 32;
/// The shortest secret accepted in a token.
const MIN_SECRET_LEN: usize = 16;
/// The token format version this code writes and reads.
const VERSION: &str = "1";

/// How a well-formed token looks, for error messages.
const SHAPE: &str = "expected SHOAL-1-<64 hex digits of the CA digest>-<secret>, as printed by `shoal cluster join-token`";

/// Why a string is not a join token.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not four `-`-separated parts.
    #[error("malformed join token: {SHAPE}")]
    Shape,
    /// The first part is not `SHOAL`.
    #[error("malformed join token: it does not start with SHOAL-; {SHAPE}")]
    Prefix,
    /// A token format this shoal does not read.
    #[error("join token version {0:?} is not supported (this shoal reads version {VERSION})")]
    Version(String),
    /// The CA digest is not 64 hex digits.
    #[error("malformed join token: the CA digest must be 64 hex digits, found {0:?}; {SHAPE}")]
    Digest(String),
    /// The secret is too short or holds more than letters and digits.
    #[error(
        "malformed join token: the secret must be at least {MIN_SECRET_LEN} letters or digits"
    )]
    Secret,
}

/// A parsed, well-formed join token.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// SHA-256 of the CA certificate's DER, lower-case hex (64 digits).
    pub ca_digest: String,
    /// The invitation secret.
    pub secret: String,
}

impl JoinToken {
    /// A token for the CA with `ca_digest` carrying `secret`.
    pub fn new(ca_digest: &str, secret: &str) -> JoinToken {
        JoinToken {
            ca_digest: ca_digest.to_string(),
            secret: secret.to_string(),
        }
    }
}

/// A fresh random secret of lower-case letters and digits.
pub fn new_secret() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..SECRET_LEN)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Compares two secrets in time that does not depend on where they differ.
pub fn secrets_match(a: &str, b: &str) -> bool {
    if a.len() != b.len() || a.is_empty() {
        return false;
    }
    a.bytes()
        .zip(b.bytes())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

impl fmt::Display for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SHOAL-{VERSION}-{}-{}", self.ca_digest, self.secret)
    }
}

impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JoinToken(SHOAL-{VERSION}-{}-<secret>)", self.ca_digest)
    }
}

impl FromStr for JoinToken {
    type Err = TokenError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let parts: Vec<&str> = s.split('-').collect();
        let [prefix, version, digest, secret] = parts.as_slice() else {
            return Err(TokenError::Shape);
        };
        if *prefix != "SHOAL" {
            return Err(TokenError::Prefix);
        }
        if *version != VERSION {
            return Err(TokenError::Version(version.to_string()));
        }
        if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(TokenError::Digest(digest.to_string()));
        }
        if secret.len() < MIN_SECRET_LEN || !secret.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(TokenError::Secret);
        }
        Ok(JoinToken {
            ca_digest: digest.to_ascii_lowercase(),
            secret: secret.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn digest() -> String {
        "ab".repeat(32)
    }

    #[test]
    fn token_round_trips() {
        let t = JoinToken::new(&digest(), &new_secret());
        let parsed: JoinToken = t.to_string().parse().unwrap();
        assert_eq!(parsed, t);
    }

    #[test]
    fn malformed_tokens_say_what_is_wrong() {
        let e = "hello".parse::<JoinToken>().unwrap_err().to_string();
        assert!(e.contains("malformed join token"), "{e}");
        let e = format!("SHOAL-2-{}-{}", digest(), new_secret())
            .parse::<JoinToken>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("version"), "{e}");
        let e = format!("SHOAL-1-abc-{}", new_secret())
            .parse::<JoinToken>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("64 hex digits"), "{e}");
        let e = format!("SHOAL-1-{}-short", digest())
            .parse::<JoinToken>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("at least"), "{e}");
    }

    #[test]
    fn secrets_compare_exactly() {
        assert!(secrets_match("abcdef", "abcdef"));
        assert!(!secrets_match("abcdef", "abcdeg"));
        assert!(!secrets_match("abc", "abcd"));
        assert!(!secrets_match("", ""));
    }

    #[test]
    fn debug_does_not_print_the_secret() {
        let t = JoinToken::new(&digest(), "supersecretsupersecret");
        assert!(!format!("{t:?}").contains("supersecret"));
    }

    proptest! {
        #[test]
        fn parsing_arbitrary_text_never_panics(s in ".{0,200}") {
            let _ = s.parse::<JoinToken>();
        }
    }
}

//! TLS termination: a rustls server configuration that picks the certificate by SNI.
//!
//! ```text
//!  ClientHello(SNI) ─▶ exact name ─▶ *.parent wildcard ─▶ first certificate
//! ```
//! Names come from each certificate's subject alternative names (DNS), falling back to
//! the subject common name. ALPN offers `h2` and `http/1.1`.
//!
//! Sessions resume as with Go's `crypto/tls` (Træfik's): stateless session tickets
//! (ChaCha20-Poly1305 under a key made at start and replaced every 6 hours, rustls's
//! `Ticketer`), one ticket after each handshake in TLS 1.3 (Go sends one; rustls's
//! default is two, each an encryption and a record). TLS 1.2 clients resume by ticket
//! too, or by session ID from rustls's in-memory cache.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

/// A certificate or key that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The PEM holds no usable certificate or key, or they do not parse.
    #[error("{what}: {message}")]
    Invalid {
        /// Which certificate (file or index).
        what: String,
        /// What is wrong.
        message: String,
    },
    /// No certificates were given.
    #[error("no certificates given")]
    Empty,
}

fn invalid(what: &str, message: impl std::fmt::Display) -> TlsError {
    TlsError::Invalid {
        what: what.to_string(),
        message: message.to_string(),
    }
}

/// Session tickets sent after each TLS 1.3 handshake (full or resumed), as Go does.
const TLS13_TICKETS: usize = 1;

/// Build a server configuration from `(certificate chain PEM file, key PEM file)` pairs.
pub fn server_config(files: &[(PathBuf, PathBuf)]) -> Result<Arc<ServerConfig>, TlsError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| TlsError::Read {
            path: p.to_path_buf(),
            source,
        })
    };
    let mut pems = Vec::new();
    for (cert, key) in files {
        pems.push((cert.display().to_string(), read(cert)?, read(key)?));
    }
    server_config_from_pem(&pems)
}

/// Build a server configuration from `(name for errors, chain PEM, key PEM)` triples.
pub fn server_config_from_pem(
    pems: &[(String, Vec<u8>, Vec<u8>)],
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut resolver = SniResolver::default();
    for (what, cert_pem, key_pem) in pems {
        let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &cert_pem[..])
            .collect::<Result<_, _>>()
            .map_err(|e| invalid(what, format!("certificate PEM: {e}")))?;
        let Some(leaf) = certs.first() else {
            return Err(invalid(what, "no certificate in PEM"));
        };
        let names = dns_names(leaf).map_err(|m| invalid(what, m))?;
        let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut &key_pem[..])
            .map_err(|e| invalid(what, format!("key PEM: {e}")))?
            .ok_or_else(|| invalid(what, "no private key in PEM"))?;
        let signing = provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| invalid(what, format!("key: {e}")))?;
        let certified = Arc::new(CertifiedKey::new(certs, signing));
        certified
            .keys_match()
            .map_err(|e| invalid(what, format!("key does not match certificate: {e}")))?;
        resolver.add(names, certified);
    }
    if resolver.default.is_none() {
        return Err(TlsError::Empty);
    }
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("protocol versions", e))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.ticketer =
        rustls::crypto::ring::Ticketer::new().map_err(|e| invalid("session tickets", e))?;
    config.send_tls13_tickets = TLS13_TICKETS;
    Ok(Arc::new(config))
}

/// DNS names a certificate is for, lowercased.
fn dns_names(cert: &CertificateDer<'_>) -> Result<Vec<String>, String> {
    use x509_parser::extensions::GeneralName;
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| format!("certificate does not parse: {e}"))?;
    let mut names: Vec<String> = Vec::new();
    if let Ok(Some(san)) = parsed.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(n) = name {
                names.push(n.to_ascii_lowercase());
            }
        }
    }
    if names.is_empty() {
        for cn in parsed.subject().iter_common_name() {
            if let Ok(s) = cn.as_str() {
                names.push(s.to_ascii_lowercase());
            }
        }
    }
    Ok(names)
}

/// Picks a certificate by the client's SNI.
#[derive(Debug, Default)]
pub struct SniResolver {
    by_name: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl SniResolver {
    /// Serve `key` for `names` (exact or `*.` wildcards); the first key added is the
    /// default for clients without SNI or with an unknown name.
    pub fn add(&mut self, names: Vec<String>, key: Arc<CertifiedKey>) {
        for n in names {
            self.by_name.entry(n).or_insert_with(|| key.clone());
        }
        self.default.get_or_insert(key);
    }

    /// The key for `server_name`.
    pub fn lookup(&self, server_name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = server_name.map(|n| n.trim_end_matches('.').to_ascii_lowercase()) {
            if let Some(k) = self.by_name.get(&name) {
                return Some(k.clone());
            }
            if let Some((_, parent)) = name.split_once('.') {
                if let Some(k) = self.by_name.get(&format!("*.{parent}")) {
                    return Some(k.clone());
                }
            }
        }
        self.default.clone()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.lookup(hello.server_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem(names: &[&str]) -> (String, Vec<u8>, Vec<u8>) {
        let c = rcgen::generate_simple_self_signed(
            names.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        )
        .unwrap();
        (
            names[0].to_string(),
            c.cert.pem().into_bytes(),
            c.signing_key.serialize_pem().into_bytes(),
        )
    }

    #[test]
    fn lookup_prefers_exact_then_wildcard_then_default() {
        let provider = rustls::crypto::ring::default_provider();
        let mut r = SniResolver::default();
        let mut keys = Vec::new();
        for names in [&["a.test"][..], &["*.b.test", "b.test"][..]] {
            let (_, cert, key) = pem(names);
            let certs: Vec<_> = rustls_pemfile::certs(&mut &cert[..])
                .collect::<Result<_, _>>()
                .unwrap();
            let key = rustls_pemfile::private_key(&mut &key[..]).unwrap().unwrap();
            let signing = provider.key_provider.load_private_key(key).unwrap();
            let ck = Arc::new(CertifiedKey::new(certs.clone(), signing));
            r.add(dns_names(&certs[0]).unwrap(), ck.clone());
            keys.push(ck);
        }
        assert!(Arc::ptr_eq(&r.lookup(Some("A.TEST")).unwrap(), &keys[0]));
        assert!(Arc::ptr_eq(&r.lookup(Some("x.b.test")).unwrap(), &keys[1]));
        assert!(Arc::ptr_eq(&r.lookup(Some("b.test")).unwrap(), &keys[1]));
        assert!(
            Arc::ptr_eq(&r.lookup(Some("y.x.b.test")).unwrap(), &keys[0]),
            "default"
        );
        assert!(Arc::ptr_eq(&r.lookup(None).unwrap(), &keys[0]));
    }

    #[test]
    fn bad_pem_and_mismatched_keys_are_reported() {
        let (name, cert, _) = pem(&["a.test"]);
        let (_, _, other_key) = pem(&["b.test"]);
        let e = server_config_from_pem(&[(name.clone(), cert.clone(), other_key)]).unwrap_err();
        assert!(e.to_string().contains("does not match"), "{e}");
        let e = server_config_from_pem(&[(name.clone(), b"junk".to_vec(), b"junk".to_vec())])
            .unwrap_err();
        assert!(e.to_string().starts_with("a.test: no certificate"), "{e}");
        assert!(matches!(server_config_from_pem(&[]), Err(TlsError::Empty)));
        let e =
            server_config(&[("/nonexistent.crt".into(), "/nonexistent.key".into())]).unwrap_err();
        assert!(e.to_string().starts_with("/nonexistent.crt:"), "{e}");
    }
}

//! rustls configurations for node-to-node mutual TLS, and for joining.
//!
//! - Servers present `[node cert, CA cert]` and ask for a client certificate, but accept
//!   connections without one: only the join endpoint serves those.
//! - Clients verify the server chain against the cluster CA and the fixed
//!   [`PEER_NAME`], whatever address they dialled.
//! - A joining node has no CA yet: [`pinned_client_config`] accepts a server only if its
//!   chain contains a CA whose SHA-256 matches the join token, and the server's
//!   certificate verifies against exactly that CA.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

use crate::pki::{certs_from_pem, digest_der, PEER_NAME};

/// Marker in the TLS error a joiner gets when the CA does not match the token.
pub const PIN_MISMATCH: &str = "shoal-ca-digest-mismatch";

/// TLS set-up problems.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key could not be read.
    #[error(transparent)]
    Pki(#[from] crate::pki::PkiError),
    /// The private key PEM held no key.
    #[error("the node key is not a PEM private key")]
    BadKey,
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The verifier could not be built.
    #[error("TLS verifier: {0}")]
    Verifier(String),
}

/// The crypto provider everything here uses (ring: no C++ build, no aws-lc).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A node's TLS material: the CA it trusts and its own certificate and key.
#[derive(Clone)]
pub struct NodeTls {
    /// The cluster CA (PEM).
    pub ca_pem: String,
    /// This node's certificate (PEM).
    pub cert_pem: String,
    /// This node's private key (PEM).
    pub key_pem: String,
}

impl NodeTls {
    fn roots(&self) -> Result<Arc<RootCertStore>, TlsError> {
        let mut roots = RootCertStore::empty();
        for ca in certs_from_pem(&self.ca_pem, "CA certificate")? {
            roots.add(ca)?;
        }
        Ok(Arc::new(roots))
    }

    fn chain_and_key(
        &self,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
        let mut chain = certs_from_pem(&self.cert_pem, "node certificate")?;
        chain.extend(certs_from_pem(&self.ca_pem, "CA certificate")?);
        let key = rustls_pemfile::private_key(&mut self.key_pem.as_bytes())
            .map_err(|_| TlsError::BadKey)?
            .ok_or(TlsError::BadKey)?;
        Ok((chain, key))
    }

    /// The control server's configuration.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let verifier = WebPkiClientVerifier::builder_with_provider(self.roots()?, provider())
            .allow_unauthenticated()
            .build()
            .map_err(|e| TlsError::Verifier(e.to_string()))?;
        let (chain, key) = self.chain_and_key()?;
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// The configuration for calling other nodes.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        let inner = WebPkiServerVerifier::builder_with_provider(self.roots()?, provider())
            .build()
            .map_err(|e| TlsError::Verifier(e.to_string()))?;
        let (chain, key) = self.chain_and_key()?;
        let config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PeerVerifier { inner }))
            .with_client_auth_cert(chain, key)?;
        Ok(Arc::new(config))
    }
}

/// Verifies a peer against the cluster CA under [`PEER_NAME`].
#[derive(Debug)]
struct PeerVerifier {
    inner: Arc<WebPkiServerVerifier>,
}

fn peer_name() -> ServerName<'static> {
    ServerName::try_from(PEER_NAME).expect("PEER_NAME is a valid DNS name")
}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _dialled: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &peer_name(), ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Accepts a server only if it proves a chain to the CA with `ca_digest`.
#[derive(Debug)]
struct PinnedVerifier {
    ca_digest: String,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _dialled: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(ca) = intermediates
            .iter()
            .find(|c| digest_der(c) == self.ca_digest)
        else {
            let presented: Vec<String> = intermediates.iter().map(|c| digest_der(c)).collect();
            return Err(rustls::Error::General(format!(
                "{PIN_MISMATCH}: the server presented CA digest(s) [{}]",
                presented.join(", ")
            )));
        };
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?;
        verifier.verify_server_cert(end_entity, &[], &peer_name(), ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A client configuration for joining: no client certificate, CA pinned by digest.
pub fn pinned_client_config(ca_digest: &str) -> Result<Arc<ClientConfig>, TlsError> {
    let verifier = PinnedVerifier {
        ca_digest: ca_digest.to_ascii_lowercase(),
        provider: provider(),
    };
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

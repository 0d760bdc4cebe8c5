//! The cluster CA and node certificates.
//!
//! `cluster init` makes an ECDSA P-256 CA. Every node makes its own key and sends a
//! certificate signing request when it joins; a manager signs a certificate whose subject
//! says the node's ID (CN) and role (OU), and whose SAN is the fixed name every node
//! verifies peers by ([`PEER_NAME`]). Private keys of nodes never leave the node.

use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use rustls::pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::ids::NodeId;
use crate::state::{Role, SpecError};

/// The DNS name in every node certificate; peers verify each other against it.
pub const PEER_NAME: &str = "node.shoal.internal";

/// How long a node certificate is valid.
const NODE_CERT_LIFETIME: Duration = Duration::from_secs(5 * 365 * 24 * 3600);
/// How long the cluster CA is valid.
const CA_LIFETIME: Duration = Duration::from_secs(20 * 365 * 24 * 3600);

/// Certificate and key problems.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen could not build or sign a certificate.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// A PEM document held no certificate or could not be read.
    #[error("{what}: not a PEM certificate")]
    NotPem {
        /// Which document.
        what: &'static str,
    },
    /// A certificate did not have the subject a node certificate must have.
    #[error("not a shoal node certificate: {0}")]
    NotNodeCert(String),
}

/// A certificate and its private key, both PEM.
#[derive(Clone)]
pub struct CertAndKey {
    /// The certificate.
    pub cert_pem: String,
    /// The private key (PKCS#8).
    pub key_pem: String,
}

/// What a node certificate says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The node's ID (subject CN).
    pub node_id: NodeId,
    /// The role it was issued for (subject OU).
    pub role: Role,
}

fn lifetime(params: &mut CertificateParams, valid_for: Duration) {
    let now = SystemTime::now();
    let start = now - Duration::from_secs(3600);
    params.not_before = OffsetDateTime::from(start);
    params.not_after = OffsetDateTime::from(now + valid_for);
}

/// Makes a new cluster CA.
pub fn new_ca(cluster_id: &str) -> Result<CertAndKey, PkiError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, format!("shoal cluster CA {cluster_id}"));
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    lifetime(&mut params, CA_LIFETIME);
    let cert = params.self_signed(&key)?;
    Ok(CertAndKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A fresh node key and a CSR for it (the subject is decided by the signer).
pub fn new_node_key() -> Result<(KeyPair, String), PkiError> {
    let key = KeyPair::generate()?;
    let params = CertificateParams::new(vec![PEER_NAME.to_string()])?;
    let csr = params.serialize_request(&key)?.pem()?;
    Ok((key, csr))
}

/// Signs a node certificate for `node_id` in `role` over the public key in `csr_pem`.
pub fn sign_node_cert(
    ca: &CertAndKey,
    csr_pem: &str,
    node_id: NodeId,
    role: Role,
    cluster_id: &str,
) -> Result<String, PkiError> {
    let ca_key = KeyPair::from_pem(&ca.key_pem)?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key)?;
    let mut csr = CertificateSigningRequestParams::from_pem(csr_pem)?;
    let mut params = CertificateParams::new(vec![PEER_NAME.to_string()])?;
    params
        .distinguished_name
        .push(DnType::CommonName, node_id.to_string());
    params
        .distinguished_name
        .push(DnType::OrganizationalUnitName, role.as_str());
    params.distinguished_name.push(
        DnType::OrganizationName,
        format!("shoal cluster {cluster_id}"),
    );
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.serial_number = Some(SerialNumber::from_slice(&rand::random::<[u8; 16]>()));
    lifetime(&mut params, NODE_CERT_LIFETIME);
    csr.params = params;
    Ok(csr.signed_by(&issuer)?.pem())
}

/// Reads every certificate in a PEM document.
pub fn certs_from_pem(
    pem: &str,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|_| PkiError::NotPem { what })?;
    if certs.is_empty() {
        return Err(PkiError::NotPem { what });
    }
    Ok(certs)
}

/// SHA-256 of a certificate's DER, lower-case hex: the digest in join tokens.
pub fn digest_der(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// The digest of the (first) certificate in a PEM document.
pub fn digest_pem(pem: &str) -> Result<String, PkiError> {
    let certs = certs_from_pem(pem, "CA certificate")?;
    Ok(digest_der(&certs[0]))
}

/// Reads the node ID and role out of a node certificate.
pub fn identity_of(der: &[u8]) -> Result<PeerIdentity, PkiError> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| PkiError::NotNodeCert(e.to_string()))?;
    let subject = cert.subject();
    let cn = subject
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .ok_or_else(|| PkiError::NotNodeCert("no common name".into()))?;
    let ou = subject
        .iter_organizational_unit()
        .next()
        .and_then(|a| a.as_str().ok())
        .ok_or_else(|| PkiError::NotNodeCert("no organizational unit".into()))?;
    let not_node_cert = |e: SpecError| PkiError::NotNodeCert(e.to_string());
    let node_id = cn.parse::<NodeId>().map_err(not_node_cert)?;
    let role = Role::parse(ou).map_err(not_node_cert)?;
    Ok(PeerIdentity { node_id, role })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_node_cert_carries_id_and_role() {
        let ca = new_ca("c1").unwrap();
        let (_key, csr) = new_node_key().unwrap();
        let pem = sign_node_cert(&ca, &csr, NodeId(42), Role::Worker, "c1").unwrap();
        let der = certs_from_pem(&pem, "node").unwrap();
        let id = identity_of(&der[0]).unwrap();
        assert_eq!(
            id,
            PeerIdentity {
                node_id: NodeId(42),
                role: Role::Worker
            }
        );
    }

    #[test]
    fn ca_digest_is_stable_and_hex() {
        let ca = new_ca("c1").unwrap();
        let d = digest_pem(&ca.cert_pem).unwrap();
        assert_eq!(d.len(), 64);
        assert_eq!(d, digest_pem(&ca.cert_pem).unwrap());
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(certs_from_pem("hello", "x").is_err());
        assert!(identity_of(b"not der").is_err());
    }
}

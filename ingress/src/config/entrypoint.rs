//! Entrypoints: where the proxy listens, and whom it believes there — Træfik's
//! `entryPoints.<name>.proxyProtocol` and `.forwardedHeaders`.
//!
//! ```toml
//! [entrypoints.web]
//! address = ":80"                                       # IPv6 and IPv4; or IP:PORT
//! proxyProtocol = { trustedIPs = ["10.0.0.0/8"] }        # or { insecure = true }
//! forwardedHeaders = { trustedIPs = ["10.0.0.0/8", "192.0.2.7"] }  # or { insecure = true }
//! ```
//! With no `proxyProtocol`, PROXY headers are not read. With one, a header is read if
//! the peer sends one: from a trusted peer its client becomes the connection's client;
//! from another it is dropped unread (Træfik's `IGNORE`). `insecure` trusts every
//! peer; otherwise `trustedIPs` is required (Træfik: "no trusted IPs provided"). The
//! header is waited for up to the proxy's header read timeout (Træfik: the
//! entrypoint's read timeout); none by then is no header, so on a TCP entrypoint a
//! client that waits for the server to speak first is routed after that wait.
//! With no `forwardedHeaders`, as with no trusted IP, a request's `X-Forwarded-*` and
//! `X-Real-Ip` headers are removed and the proxy's own sent (Træfik's default).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use ipnet::IpNet;
use serde::Deserialize;

use super::{invalid, ConfigError};

/// A listening address, optionally terminating TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entrypoint {
    /// Address to bind.
    pub address: SocketAddr,
    /// Certificate and key PEM files; empty means plain HTTP.
    pub certificates: Vec<(PathBuf, PathBuf)>,
    /// PROXY headers are read from connections (`None`: not read; the bytes are the
    /// client's), and believed from these peers.
    pub proxy_protocol: Option<Trust>,
    /// Peers whose `X-Forwarded-*` headers are kept and extended.
    pub forwarded_headers: Trust,
}

impl Entrypoint {
    /// Plain, at `address`, reading no PROXY headers and trusting no forwarded headers.
    pub fn new(address: SocketAddr) -> Entrypoint {
        Entrypoint {
            address,
            certificates: Vec::new(),
            proxy_protocol: None,
            forwarded_headers: Trust::default(),
        }
    }
}

/// The peers an entrypoint believes: all (`insecure`) or those in `trusted_ips`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trust {
    /// Every peer.
    pub insecure: bool,
    /// Networks of trusted peers (a plain IP is a /32 or /128).
    pub trusted_ips: Vec<IpNet>,
}

impl Trust {
    /// Whether a peer at `ip` is believed.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.insecure || self.trusted_ips.iter().any(|n| n.contains(&ip))
    }

    /// From `insecure` and a list of IPs and CIDRs; `path` names the list in errors.
    pub fn new(
        path: &str,
        insecure: bool,
        trusted_ips: &[impl AsRef<str>],
    ) -> Result<Trust, ConfigError> {
        let mut nets = Vec::with_capacity(trusted_ips.len());
        for text in trusted_ips {
            let text = text.as_ref().trim();
            let net = match text.parse::<IpAddr>() {
                Ok(ip) => IpNet::from(ip.to_canonical()),
                Err(_) => text
                    .parse::<IpNet>()
                    .map(crate::middleware::ip::canonical_net)
                    .map_err(|_| {
                        invalid(path, format!("`{text}` is not an IP address or a CIDR"))
                    })?,
            };
            nets.push(net);
        }
        Ok(Trust {
            insecure,
            trusted_ips: nets,
        })
    }

    /// As [`Trust::new`], for reading PROXY headers: someone must be trusted.
    pub fn for_proxy_protocol(
        path: &str,
        insecure: bool,
        trusted_ips: &[impl AsRef<str>],
    ) -> Result<Trust, ConfigError> {
        if !insecure && trusted_ips.is_empty() {
            return Err(invalid(
                path,
                "no trusted IPs provided: list the relays that send PROXY headers, or set \
                 insecure to believe every peer",
            ));
        }
        Trust::new(path, insecure, trusted_ips)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EntrypointFile {
    address: String,
    tls: Option<TlsFile>,
    #[serde(rename = "proxyProtocol", alias = "proxy_protocol")]
    proxy_protocol: Option<TrustFile>,
    #[serde(rename = "forwardedHeaders", alias = "forwarded_headers")]
    forwarded_headers: Option<TrustFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrustFile {
    #[serde(default)]
    insecure: bool,
    #[serde(default, rename = "trustedIPs", alias = "trusted_ips")]
    trusted_ips: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    certificates: Vec<CertFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CertFile {
    cert_file: PathBuf,
    key_file: PathBuf,
}

impl EntrypointFile {
    /// The entrypoint; `path` (like `entrypoints.web`) prefixes errors.
    pub(super) fn validate(self, path: &str) -> Result<Entrypoint, ConfigError> {
        let address = crate::proxy::listen::parse_address(&self.address).ok_or_else(|| {
            invalid(
                format!("{path}.address"),
                format!("`{}` is not IP:PORT, [IPv6]:PORT or :PORT", self.address),
            )
        })?;
        let certificates: Vec<_> = self
            .tls
            .map(|t| {
                t.certificates
                    .into_iter()
                    .map(|c| (c.cert_file, c.key_file))
                    .collect()
            })
            .unwrap_or_default();
        let proxy_protocol = match self.proxy_protocol {
            Some(t) => Some(Trust::for_proxy_protocol(
                &format!("{path}.proxyProtocol.trustedIPs"),
                t.insecure,
                &t.trusted_ips,
            )?),
            None => None,
        };
        let forwarded_headers = match self.forwarded_headers {
            Some(t) => Trust::new(
                &format!("{path}.forwardedHeaders.trustedIPs"),
                t.insecure,
                &t.trusted_ips,
            )?,
            None => Trust::default(),
        };
        Ok(Entrypoint {
            address,
            certificates,
            proxy_protocol,
            forwarded_headers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entrypoint(toml_text: &str) -> Result<Entrypoint, String> {
        let file: EntrypointFile = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        file.validate("entrypoints.web").map_err(|e| e.to_string())
    }

    #[test]
    fn trust_is_by_network_or_everyone() {
        let t = Trust::new("x", false, &["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"]).unwrap();
        assert!(t.trusts("10.1.2.3".parse().unwrap()));
        assert!(t.trusts("::ffff:10.1.2.3".parse().unwrap()), "mapped IPv4");
        assert!(t.trusts("192.0.2.7".parse().unwrap()));
        assert!(!t.trusts("192.0.2.8".parse().unwrap()));
        assert!(t.trusts("2001:db8::1".parse().unwrap()));
        assert!(!Trust::default().trusts("10.0.0.1".parse().unwrap()));
        let all = Trust::new("x", true, &[] as &[&str]).unwrap();
        assert!(all.trusts("203.0.113.1".parse().unwrap()));
    }

    #[test]
    fn entrypoint_trust_from_the_file_in_traefik_spelling() {
        let ep = entrypoint(
            r#"address = "127.0.0.1:80"
               proxyProtocol = { trustedIPs = ["10.0.0.0/8"] }
               forwardedHeaders = { insecure = true }"#,
        )
        .unwrap();
        assert_eq!(
            ep.proxy_protocol.unwrap().trusted_ips,
            vec!["10.0.0.0/8".parse::<IpNet>().unwrap()]
        );
        assert!(ep.forwarded_headers.insecure);
        let plain = entrypoint(r#"address = "127.0.0.1:80""#).unwrap();
        assert_eq!(plain, Entrypoint::new("127.0.0.1:80".parse().unwrap()));
    }

    #[test]
    fn bad_trust_settings_name_the_option() {
        let e = entrypoint(
            r#"address = "127.0.0.1:80"
               proxyProtocol = { trustedIPs = ["10.0.0.0/33"] }"#,
        )
        .unwrap_err();
        assert!(
            e.contains("entrypoints.web.proxyProtocol.trustedIPs")
                && e.contains("`10.0.0.0/33` is not an IP address or a CIDR"),
            "{e}"
        );
        let e = entrypoint(
            r#"address = "127.0.0.1:80"
               proxyProtocol = {}"#,
        )
        .unwrap_err();
        assert!(
            e.contains("entrypoints.web.proxyProtocol.trustedIPs: no trusted IPs provided"),
            "{e}"
        );
        let e = entrypoint(
            r#"address = "127.0.0.1:80"
               forwardedHeaders = { trustedIPs = ["bogus"] }"#,
        )
        .unwrap_err();
        assert!(
            e.contains("entrypoints.web.forwardedHeaders.trustedIPs: `bogus`"),
            "{e}"
        );
        let e = entrypoint(
            r#"address = "127.0.0.1:80"
               forwardedHeaders = { trusted = ["10.0.0.1"] }"#,
        )
        .unwrap_err();
        assert!(e.contains("unknown field `trusted`"), "{e}");
    }
}

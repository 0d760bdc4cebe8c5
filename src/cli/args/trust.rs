//! Whom the proxy's entrypoints believe: Træfik's `entryPoints.<name>.proxyProtocol`
//! and `.forwardedHeaders` as flags, for `shoal proxy` (its `--entrypoint`s) and
//! `shoal agent` (the ingress's entrypoints, `--ingress-…`).

use clap::Args;
use shoal_ingress::config::Trust;

/// The trust flags of `shoal proxy`'s `--entrypoint`s.
#[derive(Debug, Args, Default)]
pub struct EntrypointTrustArgs {
    /// Read PROXY protocol headers (v1, v2) on the --entrypoint entrypoints and believe
    /// those from these addresses (IPs or CIDRs, comma-separated or repeated).
    #[arg(long, value_name = "CIDR,...", value_delimiter = ',')]
    pub proxy_protocol_trusted: Vec<String>,
    /// Read PROXY protocol headers and believe them from every peer.
    #[arg(long)]
    pub proxy_protocol_insecure: bool,
    /// Keep the X-Forwarded-* and X-Real-Ip headers of clients at these addresses
    /// (IPs or CIDRs); others' are replaced by the proxy's own.
    #[arg(long, value_name = "CIDR,...", value_delimiter = ',')]
    pub forwarded_headers_trusted: Vec<String>,
    /// Keep every client's X-Forwarded-* and X-Real-Ip headers.
    #[arg(long)]
    pub forwarded_headers_insecure: bool,
}

impl EntrypointTrustArgs {
    /// The PROXY protocol trust (`None`: headers are not read) and the forwarded
    /// headers trust.
    pub fn trust(&self) -> anyhow::Result<(Option<Trust>, Trust)> {
        trust(
            ("--proxy-protocol-trusted", "--forwarded-headers-trusted"),
            (&self.proxy_protocol_trusted, self.proxy_protocol_insecure),
            (
                &self.forwarded_headers_trusted,
                self.forwarded_headers_insecure,
            ),
        )
    }
}

/// The trust flags of `shoal agent`'s ingress.
#[derive(Debug, Args, Default)]
pub struct IngressTrustArgs {
    /// Read PROXY protocol headers (v1, v2) on the ingress's entrypoints (HTTP, HTTPS
    /// and TCP) and believe those from these addresses (IPs or CIDRs).
    #[arg(long, value_name = "CIDR,...", value_delimiter = ',')]
    pub ingress_proxy_protocol_trusted: Vec<String>,
    /// Read PROXY protocol headers on the ingress's entrypoints, believing every peer.
    #[arg(long)]
    pub ingress_proxy_protocol_insecure: bool,
    /// Keep the X-Forwarded-* and X-Real-Ip headers of clients at these addresses
    /// (IPs or CIDRs); others' are replaced by the ingress's own.
    #[arg(long, value_name = "CIDR,...", value_delimiter = ',')]
    pub ingress_forwarded_headers_trusted: Vec<String>,
    /// Keep every client's X-Forwarded-* and X-Real-Ip headers.
    #[arg(long)]
    pub ingress_forwarded_headers_insecure: bool,
}

impl IngressTrustArgs {
    /// As [`EntrypointTrustArgs::trust`].
    pub fn trust(&self) -> anyhow::Result<(Option<Trust>, Trust)> {
        trust(
            (
                "--ingress-proxy-protocol-trusted",
                "--ingress-forwarded-headers-trusted",
            ),
            (
                &self.ingress_proxy_protocol_trusted,
                self.ingress_proxy_protocol_insecure,
            ),
            (
                &self.ingress_forwarded_headers_trusted,
                self.ingress_forwarded_headers_insecure,
            ),
        )
    }
}

/// The two trusts from their flags' values; `names` name the lists in errors.
fn trust(
    names: (&str, &str),
    proxy_protocol: (&[String], bool),
    forwarded: (&[String], bool),
) -> anyhow::Result<(Option<Trust>, Trust)> {
    let (pp_ips, pp_insecure) = proxy_protocol;
    let pp = if pp_insecure || !pp_ips.is_empty() {
        Some(Trust::for_proxy_protocol(names.0, pp_insecure, pp_ips)?)
    } else {
        None
    };
    let fh = Trust::new(names.1, forwarded.1, forwarded.0)?;
    Ok((pp, fh))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_give_the_trust_and_bad_values_name_the_flag() {
        let args = IngressTrustArgs {
            ingress_proxy_protocol_trusted: vec!["10.0.0.0/8".into(), "192.0.2.1".into()],
            ingress_forwarded_headers_insecure: true,
            ..Default::default()
        };
        let (pp, fh) = args.trust().unwrap();
        assert_eq!(pp.unwrap().trusted_ips.len(), 2);
        assert!(fh.insecure);
        let (pp, fh) = EntrypointTrustArgs::default().trust().unwrap();
        assert!(pp.is_none() && fh == Trust::default());
        let bad = EntrypointTrustArgs {
            forwarded_headers_trusted: vec!["10.0.0.0/40".into()],
            ..Default::default()
        };
        let e = bad.trust().unwrap_err().to_string();
        assert!(
            e.contains("--forwarded-headers-trusted: `10.0.0.0/40` is not an IP address or a CIDR"),
            "{e}"
        );
    }
}

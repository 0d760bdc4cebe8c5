//! The request target sent upstream: origin form for HTTP/1, absolute for h2c.

use std::net::SocketAddr;

use http::{Uri, Version};

use crate::config::UpstreamProtocol;

/// The request target sent upstream: origin form for HTTP/1, absolute for h2c.
pub(super) struct UpstreamTarget {
    /// The client's target when it can be sent as it is.
    origin: Option<Uri>,
    path_and_query: String,
    pub(super) version: Version,
}

impl UpstreamTarget {
    pub(super) fn new(uri: &Uri, protocol: UpstreamProtocol) -> Self {
        let version = match protocol {
            UpstreamProtocol::Http1 => Version::HTTP_11,
            UpstreamProtocol::H2c => Version::HTTP_2,
        };
        let origin_form = uri.scheme().is_none() && uri.authority().is_none();
        let origin =
            (protocol == UpstreamProtocol::Http1 && origin_form && uri.path_and_query().is_some())
                .then(|| uri.clone());
        let path_and_query = match origin {
            Some(_) => String::new(),
            None => origin_target(uri),
        };
        UpstreamTarget {
            origin,
            path_and_query,
            version,
        }
    }

    pub(super) fn uri(&self, addr: SocketAddr) -> Option<Uri> {
        if let Some(uri) = &self.origin {
            return Some(uri.clone());
        }
        match self.version {
            Version::HTTP_2 => format!("http://{addr}{}", self.path_and_query).parse().ok(),
            _ => self.path_and_query.parse().ok(),
        }
    }
}

/// The path and query of `uri` as an origin-form target; an absolute target's path may
/// be empty (`http://a?q`), and is sent as `/` (`/?q`).
pub(super) fn origin_target(uri: &Uri) -> String {
    match uri.query() {
        Some(query) => format!("{}?{query}", uri.path()),
        None => uri.path().to_string(),
    }
}

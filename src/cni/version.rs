//! CNI spec versions: which shoal speaks, and the VERSION reply.
//!
//! Shoal answers configs of 0.3.0, 0.3.1, 0.4.0, 1.0.0 and 1.1.0. The spec leaves the
//! list to the plugin ("a list of supported specification versions"); a runtime
//! selects the highest version both the config and the plugin name. 0.3.x and 0.4.0
//! share one result form, 1.0.0 and 1.1.0 another, so each older version costs one
//! conversion of the result (see `result.rs`). 0.1.0 and 0.2.0 are left out: their
//! result (`ip4`/`ip6` objects, no `interfaces`) cannot say which interface shoal
//! made, and no runtime maintained today writes them. A config without `cniVersion`
//! is 0.1.0 (libcni's reading), so it is refused with code 1 too.

use std::fmt;

use serde::Serialize;

use super::error::CniError;

/// A CNI spec version shoal speaks, oldest first (so `<` compares versions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CniVersion {
    /// 0.3.0: rich results, plugin chaining.
    V0_3_0,
    /// 0.3.1: a typo fix of 0.3.0.
    V0_3_1,
    /// 0.4.0: CHECK, `prevResult` on DEL.
    V0_4_0,
    /// 1.0.0: `version` gone from `ips`.
    V1_0_0,
    /// 1.1.0: STATUS, GC, interface MTU, route attributes.
    V1_1_0,
}

/// Every version shoal speaks, in the order VERSION reports them.
pub const SUPPORTED: [CniVersion; 5] = [
    CniVersion::V0_3_0,
    CniVersion::V0_3_1,
    CniVersion::V0_4_0,
    CniVersion::V1_0_0,
    CniVersion::V1_1_0,
];

impl CniVersion {
    /// The version this plugin implements.
    pub const CURRENT: CniVersion = CniVersion::V1_1_0;

    /// The version as the JSON carries it.
    pub fn as_str(self) -> &'static str {
        match self {
            CniVersion::V0_3_0 => "0.3.0",
            CniVersion::V0_3_1 => "0.3.1",
            CniVersion::V0_4_0 => "0.4.0",
            CniVersion::V1_0_0 => "1.0.0",
            CniVersion::V1_1_0 => "1.1.0",
        }
    }

    /// A config's `cniVersion`; anything shoal does not speak is code 1.
    pub fn parse(text: &str) -> Result<CniVersion, CniError> {
        SUPPORTED
            .into_iter()
            .find(|v| v.as_str() == text)
            .ok_or_else(|| CniError::IncompatibleVersion {
                version: text.to_string(),
                details: format!(
                    "config is {text:?}, shoal supports {}; set \"cniVersion\" to one of them",
                    supported_list()
                ),
            })
    }

    /// Whether results of this version carry the `version` key in `ips` (0.3.x, 0.4.0).
    pub fn has_ip_version_key(self) -> bool {
        self < CniVersion::V1_0_0
    }

    /// Whether this version has the 1.1 additions (interface MTU, route attributes).
    pub fn has_v1_1_fields(self) -> bool {
        self >= CniVersion::V1_1_0
    }
}

impl fmt::Display for CniVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn supported_list() -> String {
    SUPPORTED.map(CniVersion::as_str).join(", ")
}

/// The VERSION reply: `{cniVersion, supportedVersions}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionReply {
    /// The `cniVersion` given on stdin (the current version if none was).
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    /// Every version shoal speaks.
    #[serde(rename = "supportedVersions")]
    pub supported_versions: Vec<&'static str>,
}

/// The answer to VERSION for what the runtime put on stdin.
///
/// The spec asks to echo the input's `cniVersion`; it need not be one shoal speaks
/// (the runtime compares the lists). Empty stdin (libcni's `skel` sends none) gets the
/// current version; stdin that is not a JSON object with a string `cniVersion` is code 6.
pub fn version_reply(stdin: &[u8]) -> Result<VersionReply, CniError> {
    let cni_version = if stdin.iter().all(u8::is_ascii_whitespace) {
        CniVersion::CURRENT.as_str().to_string()
    } else {
        let decode = |details: String| CniError::Decode {
            what: "the VERSION request on stdin".into(),
            details,
        };
        let value: serde_json::Value =
            serde_json::from_slice(stdin).map_err(|e| decode(e.to_string()))?;
        let object = value
            .as_object()
            .ok_or_else(|| decode(format!("expected a JSON object, got {value}")))?;
        match object.get("cniVersion") {
            Some(serde_json::Value::String(v)) if !v.is_empty() => v.clone(),
            None => CniVersion::CURRENT.as_str().to_string(),
            Some(other) => {
                return Err(decode(format!(
                    "cniVersion is {other}, not a version string"
                )))
            }
        }
    };
    Ok(VersionReply {
        cni_version,
        supported_versions: SUPPORTED.map(CniVersion::as_str).to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn supported_versions_parse_and_print() {
        for v in SUPPORTED {
            assert_eq!(CniVersion::parse(v.as_str()), Ok(v));
        }
        assert!(CniVersion::V0_4_0 < CniVersion::V1_0_0);
        assert!(CniVersion::V0_3_1 > CniVersion::V0_3_0);
    }

    #[test]
    fn unsupported_versions_are_code_1() {
        // 0.1.0/0.2.0 (legacy), a future version, garbage (libcni's bad-version cases)
        // and the empty string (a config without cniVersion).
        for text in [
            "0.1.0", "0.2.0", "1.2.0", "2.0.0", "5678.456", "asdf.", "1.1", "",
        ] {
            let error = CniVersion::parse(text).unwrap_err();
            assert_eq!(error.code(), 1, "{text}");
            assert!(error.details().contains("1.1.0"), "{}", error.details());
        }
    }

    #[test]
    fn version_reply_echoes_input_and_lists_versions() {
        let reply = version_reply(br#"{"cniVersion": "1.0.0"}"#).unwrap();
        assert_eq!(
            serde_json::to_value(reply).unwrap(),
            json!({
                "cniVersion": "1.0.0",
                "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
            })
        );
    }

    #[test]
    fn version_reply_echoes_versions_shoal_does_not_speak() {
        // The runtime decides from supportedVersions; VERSION itself succeeds.
        let reply = version_reply(br#"{"cniVersion": "0.2.0"}"#).unwrap();
        assert_eq!(reply.cni_version, "0.2.0");
    }

    #[test]
    fn version_reply_without_input_is_current() {
        assert_eq!(version_reply(b"").unwrap().cni_version, "1.1.0");
        assert_eq!(version_reply(b" \n").unwrap().cni_version, "1.1.0");
        assert_eq!(version_reply(b"{}").unwrap().cni_version, "1.1.0");
    }

    #[test]
    fn version_reply_refuses_undecodable_input() {
        for bad in [&b"{{{"[..], br#"{"cniVersion": 1}"#, b"[1]"] {
            assert_eq!(version_reply(bad).unwrap_err().code(), 6);
        }
    }
}

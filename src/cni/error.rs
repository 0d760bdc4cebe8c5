//! The plugin's one error type and its JSON form (spec 1.1 section 5, "Error").
//!
//! Every variant maps to a well-known code (0–99) or to a shoal code (100+). `msg`
//! is the `Display` text (for code 2 it names the key and value, as the spec asks);
//! `details` says what the user can do about it.

use serde::Serialize;

/// Shoal's code for "an interface of that name already exists in the container".
pub const CODE_INTERFACE_EXISTS: u32 = 100;
/// Shoal's code for "CHECK found the attachment not as `prevResult` describes it".
pub const CODE_CHECK_FAILED: u32 = 101;

/// Why a CNI request failed, as a runtime is told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CniError {
    /// Code 1: the config's `cniVersion` (or the command at that version) is not supported.
    #[error("incompatible CNI version {version:?}")]
    IncompatibleVersion {
        /// The version the config gave (or `""` if none).
        version: String,
        /// Why, and which versions would do.
        details: String,
    },
    /// Code 2: a key shoal does not act on (or a value of it shoal cannot act on).
    #[error("unsupported field {key}: {value}")]
    UnsupportedField {
        /// Where the key is, e.g. `ipam` or `runtimeConfig.portMappings[0].protocol`.
        key: String,
        /// The value as given (JSON, shortened).
        value: String,
        /// What to do instead.
        details: String,
    },
    /// Code 3: the container is unknown; the runtime need not clean up.
    #[error("container {container_id} unknown")]
    UnknownContainer {
        /// The `CNI_CONTAINERID`.
        container_id: String,
        /// How that was found out.
        details: String,
    },
    /// Code 4: CNI_* environment variables missing or invalid.
    #[error("invalid environment variables: {}", names.join(", "))]
    InvalidEnvironment {
        /// The names of the bad variables.
        names: Vec<&'static str>,
        /// What is wrong with each.
        details: String,
    },
    /// Code 5: reading the config or talking to the agent failed.
    #[error("I/O failure: {what}")]
    Io {
        /// What was being read or written.
        what: String,
        /// The underlying error.
        details: String,
    },
    /// Code 6: bytes that do not decode (not JSON, wrong JSON type).
    #[error("cannot decode {what}")]
    Decode {
        /// What was being decoded.
        what: String,
        /// The decoder's complaint.
        details: String,
    },
    /// Code 7: a field that decodes but is not a valid value.
    #[error("invalid network configuration: {field}")]
    InvalidConfig {
        /// The field, e.g. `name` or `runtimeConfig.mac`.
        field: String,
        /// What is wrong and what a valid value looks like.
        details: String,
    },
    /// Code 11: a transient condition; the runtime should retry later.
    #[error("try again later: {reason}")]
    TryAgainLater {
        /// What is transient.
        reason: String,
    },
    /// Code 50: the plugin cannot service ADD (e.g. the agent is down).
    #[error("plugin not available: {reason}")]
    PluginNotAvailable {
        /// Why.
        reason: String,
        /// What to do about it.
        details: String,
    },
    /// Code 100: ADD found an interface named `CNI_IFNAME` already in the container.
    #[error("interface {ifname} already exists in {netns}")]
    InterfaceExists {
        /// `CNI_IFNAME`.
        ifname: String,
        /// `CNI_NETNS`.
        netns: String,
    },
    /// Code 101: CHECK found differences from `prevResult`.
    #[error("attachment {ifname} in {netns} differs from its ADD result")]
    CheckFailed {
        /// `CNI_IFNAME`.
        ifname: String,
        /// `CNI_NETNS`.
        netns: String,
        /// Each difference, one per line.
        differences: Vec<String>,
    },
}

impl CniError {
    /// The numeric code of the spec's error table (or shoal's, 100+).
    pub fn code(&self) -> u32 {
        match self {
            CniError::IncompatibleVersion { .. } => 1,
            CniError::UnsupportedField { .. } => 2,
            CniError::UnknownContainer { .. } => 3,
            CniError::InvalidEnvironment { .. } => 4,
            CniError::Io { .. } => 5,
            CniError::Decode { .. } => 6,
            CniError::InvalidConfig { .. } => 7,
            CniError::TryAgainLater { .. } => 11,
            CniError::PluginNotAvailable { .. } => 50,
            CniError::InterfaceExists { .. } => CODE_INTERFACE_EXISTS,
            CniError::CheckFailed { .. } => CODE_CHECK_FAILED,
        }
    }

    /// The longer text for `details`: what happened and what to do.
    pub fn details(&self) -> String {
        match self {
            CniError::IncompatibleVersion { details, .. }
            | CniError::UnsupportedField { details, .. }
            | CniError::UnknownContainer { details, .. }
            | CniError::InvalidEnvironment { details, .. }
            | CniError::Io { details, .. }
            | CniError::Decode { details, .. }
            | CniError::InvalidConfig { details, .. }
            | CniError::PluginNotAvailable { details, .. } => details.clone(),
            CniError::TryAgainLater { .. } => "the runtime should retry the operation".into(),
            CniError::InterfaceExists { .. } => {
                "the runtime called ADD twice for this container and interface without a DEL \
                 in between; DEL the attachment first, or ask for another CNI_IFNAME"
                    .into()
            }
            CniError::CheckFailed { differences, .. } => differences.join("\n"),
        }
    }

    /// The error as the plugin prints it; `cni_version` is the config's, or the
    /// current version when the config could not be read.
    pub fn reply(&self, cni_version: &str) -> ErrorReply {
        ErrorReply {
            cni_version: cni_version.to_string(),
            code: self.code(),
            msg: self.to_string(),
            details: self.details(),
        }
    }
}

/// The error JSON: `{cniVersion, code, msg, details}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorReply {
    /// The protocol version in use.
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    /// The error code.
    pub code: u32,
    /// A short message.
    pub msg: String,
    /// A longer description; left out when empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub details: String,
}

/// A JSON value as an error message shows it: compact and at most 80 characters.
pub(crate) fn shown(value: &serde_json::Value) -> String {
    const MAX: usize = 80;
    let text = value.to_string();
    if text.chars().count() <= MAX {
        return text;
    }
    let mut cut: String = text.chars().take(MAX).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn codes_are_the_specs_well_known_codes() {
        let s = String::new;
        let cases: Vec<(CniError, u32)> = vec![
            (
                CniError::IncompatibleVersion {
                    version: s(),
                    details: s(),
                },
                1,
            ),
            (
                CniError::UnsupportedField {
                    key: s(),
                    value: s(),
                    details: s(),
                },
                2,
            ),
            (
                CniError::UnknownContainer {
                    container_id: s(),
                    details: s(),
                },
                3,
            ),
            (
                CniError::InvalidEnvironment {
                    names: vec![],
                    details: s(),
                },
                4,
            ),
            (
                CniError::Io {
                    what: s(),
                    details: s(),
                },
                5,
            ),
            (
                CniError::Decode {
                    what: s(),
                    details: s(),
                },
                6,
            ),
            (
                CniError::InvalidConfig {
                    field: s(),
                    details: s(),
                },
                7,
            ),
            (CniError::TryAgainLater { reason: s() }, 11),
            (
                CniError::PluginNotAvailable {
                    reason: s(),
                    details: s(),
                },
                50,
            ),
            (
                CniError::InterfaceExists {
                    ifname: s(),
                    netns: s(),
                },
                100,
            ),
            (
                CniError::CheckFailed {
                    ifname: s(),
                    netns: s(),
                    differences: vec![],
                },
                101,
            ),
        ];
        for (error, code) in cases {
            assert_eq!(error.code(), code, "{error:?}");
        }
    }

    #[test]
    fn error_json_is_the_specs_shape() {
        // The spec's example: code 7 with a message and details.
        let error = CniError::InvalidConfig {
            field: "subnet".into(),
            details: "Network 192.168.0.0/31 too small to allocate from.".into(),
        };
        let reply = serde_json::to_value(error.reply("1.1.0")).unwrap();
        assert_eq!(
            reply,
            json!({
                "cniVersion": "1.1.0",
                "code": 7,
                "msg": "invalid network configuration: subnet",
                "details": "Network 192.168.0.0/31 too small to allocate from."
            })
        );
    }

    #[test]
    fn unsupported_field_message_names_key_and_value() {
        let error = CniError::UnsupportedField {
            key: "ipam".into(),
            value: shown(&json!({"type": "host-local"})),
            details: String::new(),
        };
        let reply = serde_json::to_value(error.reply("1.0.0")).unwrap();
        assert_eq!(
            reply["msg"],
            r#"unsupported field ipam: {"type":"host-local"}"#
        );
        assert_eq!(reply["cniVersion"], "1.0.0");
        assert!(reply.get("details").is_none(), "empty details are left out");
    }

    #[test]
    fn environment_error_names_every_variable() {
        let error = CniError::InvalidEnvironment {
            names: vec!["CNI_CONTAINERID", "CNI_IFNAME"],
            details: String::new(),
        };
        assert_eq!(
            error.to_string(),
            "invalid environment variables: CNI_CONTAINERID, CNI_IFNAME"
        );
    }

    #[test]
    fn long_values_are_shortened() {
        let long = json!("x".repeat(200));
        let text = shown(&long);
        assert_eq!(text.chars().count(), 81);
        assert!(text.ends_with('…'));
    }
}

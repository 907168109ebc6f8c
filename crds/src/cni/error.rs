//! The CNI error object a plugin prints on failure (CNI spec §"Error"): `cniVersion`, `code`,
//! `msg`, `details`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A CNI error code. Codes 1–99 are the spec's; 100 and above are the plugin's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 1: incompatible CNI version.
    IncompatibleVersion,
    /// 2: unsupported field in the network configuration.
    UnsupportedField,
    /// 3: container unknown or does not exist.
    UnknownContainer,
    /// 4: invalid necessary environment variables (`CNI_COMMAND`, `CNI_CONTAINERID`, ...).
    InvalidEnvironmentVariables,
    /// 5: I/O failure (e.g. reading the config from stdin).
    IoFailure,
    /// 6: failed to decode content (e.g. unmarshalling the config).
    DecodingFailure,
    /// 7: invalid network configuration.
    InvalidNetworkConfig,
    /// 11: try again later; the runtime should retry.
    TryAgainLater,
    /// 50: the plugin is not available (STATUS).
    PluginNotAvailable,
    /// 51: the plugin is not available and existing containers may have limited connectivity.
    PluginNotAvailableLimitedConnectivity,
    /// A code below 100 the spec does not (yet) assign; kept as is.
    Unassigned(u32),
    /// 100 and above: plugin-specific.
    Plugin(u32),
}

impl ErrorCode {
    pub fn from_u32(code: u32) -> Self {
        match code {
            1 => Self::IncompatibleVersion,
            2 => Self::UnsupportedField,
            3 => Self::UnknownContainer,
            4 => Self::InvalidEnvironmentVariables,
            5 => Self::IoFailure,
            6 => Self::DecodingFailure,
            7 => Self::InvalidNetworkConfig,
            11 => Self::TryAgainLater,
            50 => Self::PluginNotAvailable,
            51 => Self::PluginNotAvailableLimitedConnectivity,
            c if c >= 100 => Self::Plugin(c),
            c => Self::Unassigned(c),
        }
    }

    pub fn as_u32(self) -> u32 {
        match self {
            Self::IncompatibleVersion => 1,
            Self::UnsupportedField => 2,
            Self::UnknownContainer => 3,
            Self::InvalidEnvironmentVariables => 4,
            Self::IoFailure => 5,
            Self::DecodingFailure => 6,
            Self::InvalidNetworkConfig => 7,
            Self::TryAgainLater => 11,
            Self::PluginNotAvailable => 50,
            Self::PluginNotAvailableLimitedConnectivity => 51,
            Self::Unassigned(c) | Self::Plugin(c) => c,
        }
    }

    /// Whether the code is plugin-specific (≥ 100).
    pub fn is_plugin_specific(self) -> bool {
        self.as_u32() >= 100
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_u32())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u32(self.as_u32())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        u32::deserialize(deserializer).map(Self::from_u32)
    }
}

/// A CNI error, as printed on stdout with a non-zero exit status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{msg}{}", details_suffix(.details))]
pub struct CniError {
    /// The version the error is reported in; the request's, or ours when the request was unreadable.
    #[serde(
        rename = "cniVersion",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cni_version: Option<String>,
    pub code: ErrorCode,
    #[serde(default)]
    pub msg: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

fn details_suffix(details: &str) -> String {
    if details.is_empty() {
        String::new()
    } else {
        format!("; {details}")
    }
}

/// Why a plugin's output is not a CNI error object.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a CNI error object: {0}")]
pub struct ErrorParseError(String);

impl CniError {
    pub fn new(code: ErrorCode, msg: impl Into<String>) -> Self {
        Self {
            cni_version: None,
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    #[must_use]
    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    #[must_use]
    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        self.cni_version = Some(version.into());
        self
    }

    /// Read an error object from a plugin's output.
    pub fn parse(text: &str) -> Result<Self, ErrorParseError> {
        serde_json::from_str(text).map_err(|e| ErrorParseError(e.to_string()))
    }

    /// The JSON text to print.
    pub fn to_json_string(&self) -> String {
        // A struct of strings and a number always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_both_ways() {
        for c in [1, 2, 3, 4, 5, 6, 7, 11, 50, 51] {
            let code = ErrorCode::from_u32(c);
            assert!(
                !matches!(code, ErrorCode::Unassigned(_) | ErrorCode::Plugin(_)),
                "{c}"
            );
            assert_eq!(code.as_u32(), c);
        }
        assert_eq!(ErrorCode::from_u32(8), ErrorCode::Unassigned(8));
        assert_eq!(ErrorCode::from_u32(100), ErrorCode::Plugin(100));
        assert!(ErrorCode::Plugin(120).is_plugin_specific());
        assert!(!ErrorCode::TryAgainLater.is_plugin_specific());
    }

    #[test]
    fn prints_and_parses_the_spec_shape() {
        let e = CniError::new(ErrorCode::InvalidNetworkConfig, "invalid config")
            .with_details("plugins[0].type is required")
            .with_version("1.1.0");
        let text = e.to_json_string();
        assert_eq!(
            text,
            r#"{"cniVersion":"1.1.0","code":7,"msg":"invalid config","details":"plugins[0].type is required"}"#
        );
        assert_eq!(CniError::parse(&text).unwrap(), e);
        assert_eq!(e.to_string(), "invalid config; plugins[0].type is required");
        let bare = CniError::parse(r#"{"code":11,"msg":"busy"}"#).unwrap();
        assert_eq!(bare.code, ErrorCode::TryAgainLater);
        assert_eq!(bare.to_json_string(), r#"{"code":11,"msg":"busy"}"#);
    }

    #[test]
    fn rejects_non_errors() {
        for bad in [
            "",
            "{}",
            r#"{"code":"7","msg":"x"}"#,
            r#"{"code":-1,"msg":"x"}"#,
            r#"{"msg":"x"}"#,
        ] {
            assert!(CniError::parse(bad).is_err(), "{bad}");
        }
    }
}

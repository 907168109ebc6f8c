//! CNI wire formats: network configurations, results, errors (CNI spec v1.1.0 and libcni).
//!
//! - [`version`]: `cniVersion` values, feature gates, `cniVersions` selection.
//! - [`config`] and [`plugin`]: network configuration lists and plugin objects, unknown keys kept.
//! - [`result`]: ADD results in every shape the spec has had, with libcni's conversions.
//! - [`error`]: the error object plugins print.
//! - [`delegate`]: the config Multus hands a delegate for a NAD.
//! - [`capabilities`]: the capabilities a config declares.

pub mod capabilities;
pub mod config;
pub mod delegate;
pub mod error;
pub(crate) mod json;
pub mod plugin;
pub mod result;
pub mod version;

pub use config::{ConfigError, ConfigErrorKind, ConfigForm, NetworkConfigList};
pub use error::{CniError, ErrorCode};
pub use plugin::{Dns, PluginConfig};
pub use result::{CniResult, Interface, IpConfig, IpNet, Route};
pub use version::{CniVersion, select_version};

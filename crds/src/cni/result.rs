//! CNI results: what an ADD prints on success, in the three shapes the spec has had.
//!
//! - 0.1.0 / 0.2.0: `ip4` and `ip6`, one address each, routes per family.
//! - 0.3.0 / 0.3.1 / 0.4.0: `interfaces`, `ips` (with `version` and an `interface` index),
//!   `routes` (`dst`, `gw`).
//! - 1.0.0 / 1.1.0: as 0.4.0 without `ips[].version`; interfaces gain `mtu`, `socketPath`,
//!   `pciID`; routes gain `mtu`, `advmss`, `priority`, `table`, `scope`.
//!
//! [`CniResult`] holds the newest shape; reading an older one converts up and printing in an
//! older version converts down, as libcni's `types020`/`types040`/`types100` converters do.

use std::{fmt, net::IpAddr, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::{
    plugin::Dns,
    version::{CniVersion, VersionError},
};

/// An address with its prefix length (`192.0.2.10/24`): the host address is kept, not masked,
/// as Go's `types.IPNet` keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl FromStr for IpNet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match crate::names::parse_ip_or_cidr(s)? {
            (addr, Some(prefix)) => Ok(Self { addr, prefix }),
            (_, None) => Err(format!("{s:?} is not a CIDR: the prefix length is missing")),
        }
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for IpNet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IpNet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// An interface a plugin created or configured.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Interface {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    /// 1.1.0; 0 means unset.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mtu: u32,
    /// The netns path for interfaces inside the container; empty for host interfaces.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sandbox: String,
    /// 1.1.0: vhost-user and similar socket-based interfaces.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub socket_path: String,
    /// 1.1.0: the PCI address of a device-backed interface.
    #[serde(default, rename = "pciID", skip_serializing_if = "String::is_empty")]
    pub pci_id: String,
}

/// An address assigned to an interface.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    pub address: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<u32>,
}

/// A route. Fields after `gw` are 1.1.0; 0 / absent means unset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub dst: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mtu: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub advmss: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub priority: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<u8>,
}

impl Route {
    /// A route with only a destination and gateway (all a pre-1.1 result can hold).
    pub fn new(dst: IpNet, gw: Option<IpAddr>) -> Self {
        Self {
            dst,
            gw,
            mtu: 0,
            advmss: 0,
            priority: 0,
            table: None,
            scope: None,
        }
    }

    fn basic(&self) -> Self {
        Self::new(self.dst, self.gw)
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A CNI result, in the newest shape, with the version it was read in (or converted to).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CniResult {
    pub cni_version: CniVersion,
    pub interfaces: Vec<Interface>,
    pub ips: Vec<IpConfig>,
    pub routes: Vec<Route>,
    pub dns: Dns,
}

/// Why a result could not be read or printed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResultError {
    #[error("result is not valid JSON: {0}")]
    Json(String),
    #[error("result has no cniVersion and the request's version is unknown")]
    MissingVersion,
    #[error("result cniVersion: {0}")]
    InvalidVersion(#[from] VersionError),
    #[error("unsupported CNI result version {0}")]
    UnsupportedVersion(String),
    #[error("result for version {version} is malformed: {message}")]
    Decode {
        version: CniVersion,
        message: String,
    },
    #[error(
        "cannot convert result to version {0}: it has no IP addresses, which that version requires"
    )]
    NoAddressForLegacyVersion(CniVersion),
}

/// The wire shape of each version family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    V02,
    V04,
    V1,
}

fn shape(version: CniVersion) -> Result<Shape, ResultError> {
    match version {
        v if v == CniVersion::V0_1_0 || v == CniVersion::V0_2_0 => Ok(Shape::V02),
        v if v == CniVersion::V0_3_0 || v == CniVersion::V0_3_1 || v == CniVersion::V0_4_0 => {
            Ok(Shape::V04)
        }
        v if v == CniVersion::V1_0_0 || v == CniVersion::V1_1_0 => Ok(Shape::V1),
        v => Err(ResultError::UnsupportedVersion(v.to_string())),
    }
}

// === wire types ===

#[derive(Serialize, Deserialize)]
struct Legacy {
    #[serde(rename = "cniVersion", default)]
    cni_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ip4: Option<LegacyIp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ip6: Option<LegacyIp>,
    #[serde(default)]
    dns: Dns,
}

#[derive(Serialize, Deserialize)]
struct LegacyIp {
    ip: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    routes: Vec<BasicRoute>,
}

#[derive(Serialize, Deserialize)]
struct BasicRoute {
    dst: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gw: Option<IpAddr>,
}

#[derive(Serialize, Deserialize)]
struct V04 {
    #[serde(rename = "cniVersion", default)]
    cni_version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    interfaces: Vec<V04Interface>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ips: Vec<V04Ip>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    routes: Vec<BasicRoute>,
    #[serde(default)]
    dns: Dns,
}

#[derive(Serialize, Deserialize)]
struct V04Interface {
    #[serde(default)]
    name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    mac: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    sandbox: String,
}

#[derive(Serialize, Deserialize)]
struct V04Ip {
    /// "4" or "6"; derived from the address when printing, ignored when reading.
    #[serde(default)]
    version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    interface: Option<u32>,
    address: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gateway: Option<IpAddr>,
}

#[derive(Serialize, Deserialize)]
struct V1 {
    #[serde(rename = "cniVersion", default)]
    cni_version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    interfaces: Vec<Interface>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ips: Vec<IpConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    routes: Vec<Route>,
    #[serde(default)]
    dns: Dns,
}

impl CniResult {
    /// An empty result in `version`.
    pub fn new(cni_version: CniVersion) -> Self {
        Self {
            cni_version,
            interfaces: Vec::new(),
            ips: Vec::new(),
            routes: Vec::new(),
            dns: Dns::default(),
        }
    }

    /// Read a delegate's stdout. A result without `cniVersion` is read in `request_version`
    /// (the version of the config the plugin was given), as libcni does.
    pub fn parse(text: &str, request_version: Option<CniVersion>) -> Result<Self, ResultError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| ResultError::Json(e.to_string()))?;
        Self::from_value(value, request_version)
    }

    /// [`parse`](Self::parse) on a JSON value.
    pub fn from_value(
        value: Value,
        request_version: Option<CniVersion>,
    ) -> Result<Self, ResultError> {
        if !value.is_object() {
            return Err(ResultError::Json(format!(
                "a result must be a JSON object, not {}",
                super::json::json_type(&value)
            )));
        }
        let declared = match value.get("cniVersion") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => Some(CniVersion::parse(s)?),
            Some(other) => {
                return Err(ResultError::Json(format!(
                    "cniVersion must be a string, not {}",
                    super::json::json_type(other)
                )));
            }
        };
        let version = declared
            .or(request_version)
            .ok_or(ResultError::MissingVersion)?;
        let decode = |e: serde_json::Error| ResultError::Decode {
            version,
            message: e.to_string(),
        };
        let mut result = match shape(version)? {
            Shape::V02 => Self::from_legacy(serde_json::from_value(value).map_err(decode)?),
            Shape::V04 => Self::from_v04(serde_json::from_value(value).map_err(decode)?),
            Shape::V1 => Self::from_v1(serde_json::from_value(value).map_err(decode)?),
        };
        result.cni_version = version;
        Ok(result)
    }

    fn from_legacy(w: Legacy) -> Self {
        let mut r = Self::new(CniVersion::V0_2_0);
        for ip in [w.ip4, w.ip6].into_iter().flatten() {
            r.ips.push(IpConfig {
                address: ip.ip,
                gateway: ip.gateway,
                interface: None,
            });
            r.routes
                .extend(ip.routes.into_iter().map(|rt| Route::new(rt.dst, rt.gw)));
        }
        r.dns = w.dns;
        r
    }

    fn from_v04(w: V04) -> Self {
        Self {
            cni_version: CniVersion::V0_4_0,
            interfaces: w
                .interfaces
                .into_iter()
                .map(|i| Interface {
                    name: i.name,
                    mac: i.mac,
                    sandbox: i.sandbox,
                    ..Interface::default()
                })
                .collect(),
            ips: w
                .ips
                .into_iter()
                .map(|ip| IpConfig {
                    address: ip.address,
                    gateway: ip.gateway,
                    interface: ip.interface,
                })
                .collect(),
            routes: w
                .routes
                .into_iter()
                .map(|rt| Route::new(rt.dst, rt.gw))
                .collect(),
            dns: w.dns,
        }
    }

    fn from_v1(w: V1) -> Self {
        Self {
            cni_version: CniVersion::V1_0_0,
            interfaces: w.interfaces,
            ips: w.ips,
            routes: w.routes,
            dns: w.dns,
        }
    }

    /// The result as JSON in `version`, converting as libcni does: down to 0.3.x/0.4.0 drops the
    /// 1.1 interface and route fields and adds `ips[].version`; down to 0.1.0/0.2.0 keeps the first
    /// address of each family as `ip4`/`ip6`, with the routes of that family, and fails when there
    /// is no address at all.
    pub fn to_value(&self, version: CniVersion) -> Result<Value, ResultError> {
        let cni_version = version.to_string();
        let value = match shape(version)? {
            Shape::V1 => serde_json::to_value(V1 {
                cni_version,
                interfaces: self.interfaces.clone(),
                ips: self.ips.clone(),
                routes: self.routes.clone(),
                dns: self.dns.clone(),
            }),
            Shape::V04 => serde_json::to_value(self.to_v04(cni_version)),
            Shape::V02 => serde_json::to_value(self.to_legacy(version, cni_version)?),
        };
        value.map_err(|e| ResultError::Decode {
            version,
            message: e.to_string(),
        })
    }

    /// Compact JSON text in `version`, for printing to the runtime.
    pub fn to_json_string(&self, version: CniVersion) -> Result<String, ResultError> {
        self.to_value(version).map(|v| v.to_string())
    }

    /// This result as it would read after printing in `version`: what survives the conversion.
    pub fn convert(&self, version: CniVersion) -> Result<Self, ResultError> {
        Self::from_value(self.to_value(version)?, None)
    }

    fn to_v04(&self, cni_version: String) -> V04 {
        V04 {
            cni_version,
            interfaces: self
                .interfaces
                .iter()
                .map(|i| V04Interface {
                    name: i.name.clone(),
                    mac: i.mac.clone(),
                    sandbox: i.sandbox.clone(),
                })
                .collect(),
            ips: self
                .ips
                .iter()
                .map(|ip| V04Ip {
                    version: if ip.address.addr.is_ipv4() { "4" } else { "6" }.to_owned(),
                    interface: ip.interface,
                    address: ip.address,
                    gateway: ip.gateway,
                })
                .collect(),
            routes: self
                .routes
                .iter()
                .map(|rt| BasicRoute {
                    dst: rt.dst,
                    gw: rt.gw,
                })
                .collect(),
            dns: self.dns.clone(),
        }
    }

    fn to_legacy(&self, version: CniVersion, cni_version: String) -> Result<Legacy, ResultError> {
        let first = |v4: bool| {
            self.ips
                .iter()
                .find(|ip| ip.address.addr.is_ipv4() == v4)
                .map(|ip| LegacyIp {
                    ip: ip.address,
                    gateway: ip.gateway,
                    routes: self
                        .routes
                        .iter()
                        .filter(|rt| rt.dst.addr.is_ipv4() == v4)
                        .map(|rt| {
                            let rt = rt.basic();
                            BasicRoute {
                                dst: rt.dst,
                                gw: rt.gw,
                            }
                        })
                        .collect(),
                })
        };
        let (ip4, ip6) = (first(true), first(false));
        if ip4.is_none() && ip6.is_none() {
            return Err(ResultError::NoAddressForLegacyVersion(version));
        }
        Ok(Legacy {
            cni_version,
            ip4,
            ip6,
            dns: self.dns.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const V1_RESULT: &str = r#"{"cniVersion":"1.1.0","interfaces":[{"name":"eth0","mac":"0a:58:0a:f4:00:05","mtu":1400,"sandbox":"/var/run/netns/x","pciID":"0000:3b:02.1"}],"ips":[{"address":"10.244.0.5/24","gateway":"10.244.0.1","interface":0},{"address":"2001:db8::5/64","interface":0}],"routes":[{"dst":"0.0.0.0/0","gw":"10.244.0.1","mtu":1400,"table":100,"scope":0},{"dst":"::/0"}],"dns":{"nameservers":["10.96.0.10"],"search":["svc.cluster.local"]}}"#;

    fn v(s: &str) -> CniVersion {
        CniVersion::parse(s).unwrap()
    }

    #[test]
    fn reads_and_prints_1x_unchanged() {
        let r = CniResult::parse(V1_RESULT, None).unwrap();
        assert_eq!(r.cni_version, CniVersion::V1_1_0);
        assert_eq!(r.interfaces[0].pci_id, "0000:3b:02.1");
        assert_eq!(r.ips[1].interface, Some(0));
        assert_eq!(r.routes[0].table, Some(100));
        assert_eq!(r.routes[0].scope, Some(0));
        assert_eq!(r.to_json_string(CniVersion::V1_1_0).unwrap(), V1_RESULT);
    }

    #[test]
    fn converts_down_to_040_like_libcni() {
        let r = CniResult::parse(V1_RESULT, None).unwrap();
        let out = r.to_value(CniVersion::V0_4_0).unwrap();
        assert_eq!(
            out,
            json!({"cniVersion":"0.4.0",
                "interfaces":[{"name":"eth0","mac":"0a:58:0a:f4:00:05","sandbox":"/var/run/netns/x"}],
                "ips":[{"version":"4","interface":0,"address":"10.244.0.5/24","gateway":"10.244.0.1"},
                       {"version":"6","interface":0,"address":"2001:db8::5/64"}],
                "routes":[{"dst":"0.0.0.0/0","gw":"10.244.0.1"},{"dst":"::/0"}],
                "dns":{"nameservers":["10.96.0.10"],"search":["svc.cluster.local"]}})
        );
        // and back up: 1.x drops `version`; the 1.1-only fields are gone.
        let back = r
            .convert(CniVersion::V0_4_0)
            .unwrap()
            .to_value(CniVersion::V1_0_0)
            .unwrap();
        assert!(back["ips"][0].get("version").is_none());
        assert!(back["interfaces"][0].get("mtu").is_none());
    }

    #[test]
    fn converts_down_to_020_picking_one_address_per_family() {
        let mut r = CniResult::parse(V1_RESULT, None).unwrap();
        r.ips.push(IpConfig {
            address: "10.244.0.6/24".parse().unwrap(),
            gateway: None,
            interface: None,
        });
        let out = r.to_value(CniVersion::V0_2_0).unwrap();
        assert_eq!(
            out,
            json!({"cniVersion":"0.2.0",
                "ip4":{"ip":"10.244.0.5/24","gateway":"10.244.0.1","routes":[{"dst":"0.0.0.0/0","gw":"10.244.0.1"}]},
                "ip6":{"ip":"2001:db8::5/64","routes":[{"dst":"::/0"}]},
                "dns":{"nameservers":["10.96.0.10"],"search":["svc.cluster.local"]}})
        );
        let empty = CniResult::new(CniVersion::V1_0_0);
        assert_eq!(
            empty.to_value(CniVersion::V0_1_0),
            Err(ResultError::NoAddressForLegacyVersion(CniVersion::V0_1_0))
        );
    }

    #[test]
    fn reads_020_and_converts_up() {
        let text = r#"{"cniVersion":"0.2.0","ip4":{"ip":"192.0.2.7/24","gateway":"192.0.2.1","routes":[{"dst":"0.0.0.0/0"}]},"dns":{}}"#;
        let r = CniResult::parse(text, None).unwrap();
        assert_eq!(r.ips.len(), 1);
        assert_eq!(r.routes[0].dst.to_string(), "0.0.0.0/0");
        assert_eq!(
            r.to_value(CniVersion::V1_0_0).unwrap(),
            json!({"cniVersion":"1.0.0","ips":[{"address":"192.0.2.7/24","gateway":"192.0.2.1"}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{}})
        );
        assert_eq!(r.to_json_string(CniVersion::V0_2_0).unwrap(), text);
    }

    #[test]
    fn version_comes_from_the_result_or_the_request() {
        let text = r#"{"ips":[{"version":"4","address":"192.0.2.7/24"}]}"#;
        assert_eq!(
            CniResult::parse(text, None),
            Err(ResultError::MissingVersion)
        );
        let r = CniResult::parse(text, Some(CniVersion::V0_3_1)).unwrap();
        assert_eq!(r.cni_version, CniVersion::V0_3_1);
        assert!(matches!(
            CniResult::parse(r#"{"cniVersion":"0.5.0"}"#, None),
            Err(ResultError::UnsupportedVersion(_))
        ));
        assert!(matches!(
            CniResult::parse(r#"{"cniVersion":"1.0.0.0"}"#, None),
            Err(ResultError::InvalidVersion(_))
        ));
        // "1.0" reads as 1.0.0.
        assert_eq!(
            CniResult::parse(r#"{"cniVersion":"1.0"}"#, None)
                .unwrap()
                .cni_version,
            v("1.0.0")
        );
    }

    #[test]
    fn rejects_malformed_results() {
        for bad in [
            "",
            "[]",
            r#"{"cniVersion":1}"#,
            r#"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.1"}]}"#,
            r#"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.1/24","interface":-1}]}"#,
            r#"{"cniVersion":"1.0.0","routes":[{"dst":"x/0"}]}"#,
            r#"{"cniVersion":"0.2.0","ip4":{"gateway":"10.0.0.1"}}"#,
            r#"{"cniVersion":"1.0.0","dns":{"nameservers":"10.0.0.1"}}"#,
        ] {
            assert!(CniResult::parse(bad, None).is_err(), "{bad}");
        }
    }
}

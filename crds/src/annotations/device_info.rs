//! The device-info object (device-info-spec v1.1.0): which device backs an attachment, as the
//! device plugin or CNI plugin describes it. It travels in the CNI devinfo file and in the
//! `device-info` key of a network-status entry.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Diagnostics, FieldPath};

/// The device-info spec version we write.
pub const DEVICE_INFO_VERSION: &str = "1.1.0";

/// Versions we know the shape of; others are read but flagged.
const KNOWN_VERSIONS: [&str; 2] = ["1.0.0", "1.1.0"];

/// The kinds of device the spec defines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceInfoType {
    Pci,
    Vdpa,
    VhostUser,
    Memif,
}

impl DeviceInfoType {
    pub const ALL: [DeviceInfoType; 4] = [Self::Pci, Self::Vdpa, Self::VhostUser, Self::Memif];

    /// The `type` value, which is also the key of the type's object.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pci => "pci",
            Self::Vdpa => "vdpa",
            Self::VhostUser => "vhost-user",
            Self::Memif => "memif",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == value)
    }
}

/// A device-info object. `type` and `version` stay strings so an unknown value is read (and
/// reported by [`DeviceInfo::validate`]) rather than failing the whole status annotation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceInfo {
    #[serde(rename = "type", default, skip_serializing_if = "String::is_empty")]
    pub device_type: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pci: Option<PciDevice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vdpa: Option<VdpaDevice>,
    #[serde(
        rename = "vhost-user",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub vhost_user: Option<VhostUserDevice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memif: Option<MemifDevice>,
    /// Keys the spec does not define, kept so reading and writing loses nothing.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct PciDevice {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pci_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vhost_net: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rdma_device: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pf_pci_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub representor_device: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct VdpaDevice {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_device: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pci_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pf_pci_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub representor_device: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VhostUserDevice {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemifDevice {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

impl DeviceInfo {
    /// A PCI device-info of the current spec version.
    pub fn pci(pci_address: impl Into<String>) -> Self {
        Self {
            device_type: DeviceInfoType::Pci.as_str().to_owned(),
            version: DEVICE_INFO_VERSION.to_owned(),
            pci: Some(PciDevice {
                pci_address: Some(pci_address.into()),
                ..PciDevice::default()
            }),
            ..Self::default()
        }
    }

    /// The type, if it is one the spec defines.
    pub fn kind(&self) -> Option<DeviceInfoType> {
        DeviceInfoType::parse(&self.device_type)
    }

    /// Check the object against device-info-spec v1.1.0; `path` is where it sits (e.g.
    /// `...[1].device-info`).
    pub fn validate(&self, path: &FieldPath) -> Diagnostics {
        let mut d = Diagnostics::new();
        let kind = match (self.device_type.as_str(), self.kind()) {
            ("", _) => {
                d.error(
                    path.field("type"),
                    "missing: one of pci, vdpa, vhost-user, memif",
                );
                None
            }
            (other, None) => {
                d.error(
                    path.field("type"),
                    format!("{other:?} is not a device type: use pci, vdpa, vhost-user or memif"),
                );
                None
            }
            (_, kind) => kind,
        };
        self.validate_version(path, &mut d);
        for present in DeviceInfoType::ALL
            .into_iter()
            .filter(|t| self.has_object(*t))
        {
            if Some(present) != kind && kind.is_some() {
                d.warning(
                    path.field(present.as_str()),
                    format!(
                        "ignored: the device type is {:?}, not {:?}",
                        self.device_type,
                        present.as_str()
                    ),
                );
            }
        }
        match kind {
            Some(DeviceInfoType::Pci) => {
                validate_pci(self.pci.as_ref(), &path.field("pci"), &mut d)
            }
            Some(DeviceInfoType::Vdpa) => {
                validate_vdpa(self.vdpa.as_ref(), &path.field("vdpa"), &mut d)
            }
            Some(DeviceInfoType::VhostUser) => {
                validate_vhost_user(self.vhost_user.as_ref(), &path.field("vhost-user"), &mut d)
            }
            Some(DeviceInfoType::Memif) => {
                validate_memif(self.memif.as_ref(), &path.field("memif"), &mut d)
            }
            None => {}
        }
        d
    }

    fn has_object(&self, kind: DeviceInfoType) -> bool {
        match kind {
            DeviceInfoType::Pci => self.pci.is_some(),
            DeviceInfoType::Vdpa => self.vdpa.is_some(),
            DeviceInfoType::VhostUser => self.vhost_user.is_some(),
            DeviceInfoType::Memif => self.memif.is_some(),
        }
    }

    fn validate_version(&self, path: &FieldPath, d: &mut Diagnostics) {
        let version = self.version.as_str();
        if version.is_empty() {
            d.error(
                path.field("version"),
                format!("missing: write {DEVICE_INFO_VERSION:?}"),
            );
        } else if !is_semver_core(version) {
            d.error(
                path.field("version"),
                format!("{version:?} is not MAJOR.MINOR.PATCH (current: {DEVICE_INFO_VERSION})"),
            );
        } else if !KNOWN_VERSIONS.contains(&version) {
            d.warning(
                path.field("version"),
                format!("unknown device-info version {version:?} (current: {DEVICE_INFO_VERSION})"),
            );
        }
    }
}

fn is_semver_core(v: &str) -> bool {
    let mut parts = 0;
    for part in v.split('.') {
        parts += 1;
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    parts == 3
}

/// A PCI address in BDF notation with domain: `dddd:BB:DD.f`, hexadecimal, function 0-7.
pub fn is_pci_address(value: &str) -> bool {
    let b = value.as_bytes();
    b.len() == 12
        && b[..4].iter().all(u8::is_ascii_hexdigit)
        && b[4] == b':'
        && b[5..7].iter().all(u8::is_ascii_hexdigit)
        && b[7] == b':'
        && b[8..10].iter().all(u8::is_ascii_hexdigit)
        && b[10] == b'.'
        && (b'0'..=b'7').contains(&b[11])
}

fn require<'a>(
    value: &'a Option<String>,
    path: &FieldPath,
    key: &str,
    d: &mut Diagnostics,
) -> Option<&'a str> {
    match value.as_deref().filter(|s| !s.is_empty()) {
        Some(v) => Some(v),
        None => {
            d.error(path.field(key), "missing: required for this device type");
            None
        }
    }
}

fn check_pci(value: Option<&str>, path: &FieldPath, key: &str, d: &mut Diagnostics) {
    if let Some(v) = value.filter(|v| !is_pci_address(v)) {
        d.error(
            path.field(key),
            format!("{v:?} is not a PCI address (expected dddd:BB:DD.f, e.g. 0000:3b:02.1)"),
        );
    }
}

fn check_one_of(
    value: Option<&str>,
    allowed: &[&str],
    path: &FieldPath,
    key: &str,
    d: &mut Diagnostics,
) {
    if let Some(v) = value.filter(|v| !allowed.contains(v)) {
        d.error(
            path.field(key),
            format!("{v:?} is not one of {}", allowed.join(", ")),
        );
    }
}

fn missing_object(path: &FieldPath, d: &mut Diagnostics) {
    d.error(path.clone(), "missing: required for this device type");
}

fn validate_pci(pci: Option<&PciDevice>, path: &FieldPath, d: &mut Diagnostics) {
    let Some(pci) = pci else {
        return missing_object(path, d);
    };
    let address = require(&pci.pci_address, path, "pci-address", d);
    check_pci(address, path, "pci-address", d);
    check_pci(pci.pf_pci_address.as_deref(), path, "pf-pci-address", d);
}

fn validate_vdpa(vdpa: Option<&VdpaDevice>, path: &FieldPath, d: &mut Diagnostics) {
    let Some(vdpa) = vdpa else {
        return missing_object(path, d);
    };
    require(&vdpa.parent_device, path, "parent-device", d);
    let driver = require(&vdpa.driver, path, "driver", d);
    check_one_of(driver, &["vhost", "virtio"], path, "driver", d);
    require(&vdpa.path, path, "path", d);
    check_pci(vdpa.pci_address.as_deref(), path, "pci-address", d);
    check_pci(vdpa.pf_pci_address.as_deref(), path, "pf-pci-address", d);
}

fn validate_vhost_user(vhost: Option<&VhostUserDevice>, path: &FieldPath, d: &mut Diagnostics) {
    let Some(vhost) = vhost else {
        return missing_object(path, d);
    };
    let mode = require(&vhost.mode, path, "mode", d);
    check_one_of(mode, &["client", "server"], path, "mode", d);
    require(&vhost.path, path, "path", d);
}

fn validate_memif(memif: Option<&MemifDevice>, path: &FieldPath, d: &mut Diagnostics) {
    let Some(memif) = memif else {
        return missing_object(path, d);
    };
    let role = require(&memif.role, path, "role", d);
    check_one_of(role, &["master", "slave"], path, "role", d);
    require(&memif.path, path, "path", d);
    let mode = require(&memif.mode, path, "mode", d);
    check_one_of(mode, &["ethernet", "ip", "inject-punt"], path, "mode", d);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn info(v: Value) -> DeviceInfo {
        serde_json::from_value(v).unwrap()
    }

    fn messages(d: &Diagnostics) -> Vec<String> {
        d.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn valid_objects_of_every_type() {
        let p = FieldPath::new("device-info");
        for v in [
            json!({"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:3b:02.1","pf-pci-address":"0000:3b:00.0"}}),
            json!({"type":"vdpa","version":"1.1.0","vdpa":{"parent-device":"vdpa:0000:65:00.3","driver":"vhost","path":"/dev/vhost-vdpa-1"}}),
            json!({"type":"vhost-user","version":"1.0.0","vhost-user":{"mode":"server","path":"/var/run/vhost/s1"}}),
            json!({"type":"memif","version":"1.1.0","memif":{"role":"master","path":"/run/memif.sock","mode":"ethernet"}}),
        ] {
            let d = info(v.clone()).validate(&p);
            assert!(d.is_empty(), "{v}: {:?}", messages(&d));
        }
        assert!(DeviceInfo::pci("0000:3b:02.1").validate(&p).is_empty());
    }

    #[test]
    fn missing_and_wrong_fields_are_reported_with_paths() {
        let p = FieldPath::new("device-info");
        let d = info(json!({"type":"pci","version":"1.1","pci":{"pci-address":"3b:02.1"}}))
            .validate(&p);
        assert_eq!(
            messages(&d),
            vec![
                "device-info.version: \"1.1\" is not MAJOR.MINOR.PATCH (current: 1.1.0)",
                "device-info.pci.pci-address: \"3b:02.1\" is not a PCI address (expected dddd:BB:DD.f, e.g. 0000:3b:02.1)",
            ]
        );
        let d = info(json!({"type":"vdpa","version":"1.1.0"})).validate(&p);
        assert_eq!(
            messages(&d),
            vec!["device-info.vdpa: missing: required for this device type"]
        );
        let d =
            info(json!({"type":"memif","version":"1.1.0","memif":{"role":"leader","path":"/x"}}))
                .validate(&p);
        assert_eq!(d.errors().count(), 2, "{:?}", messages(&d));
        let d = info(json!({"type":"usb","version":"2.0.0"})).validate(&p);
        assert_eq!(d.errors().count(), 1);
        assert_eq!(d.warnings().count(), 1);
        let d = info(json!({"version":"1.1.0","pci":{"pci-address":"0000:3b:02.1"}})).validate(&p);
        assert!(d.has_errors());
    }

    #[test]
    fn an_object_for_another_type_is_a_warning() {
        let v = json!({"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:3b:02.1"},"memif":{"role":"master"}});
        let d = info(v).validate(&FieldPath::new("x"));
        assert!(!d.has_errors());
        assert_eq!(d.warnings().count(), 1);
    }

    #[test]
    fn round_trips_with_unknown_keys() {
        let v = json!({"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:3b:02.1","rdma-device":"mlx5_0"},"org.example.numa":1});
        assert_eq!(serde_json::to_value(info(v.clone())).unwrap(), v);
    }
}

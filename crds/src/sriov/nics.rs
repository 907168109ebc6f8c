//! The supported-NIC list (sriov-spec §2.5): which PF models the operator manages, and which VF
//! device ID each PF model's VFs have.
//!
//! Text format, one entry per line: `<vendor> <PF device> <VF device>`, each 4 hex digits
//! (`8086 159b 1889`); `#` starts a comment, blank lines are ignored. The same entries are the
//! values of upstream's `supported-nic-ids` ConfigMap (keys are free-form labels).

use std::collections::BTreeMap;
use std::fmt;

/// One supported model: vendor, PF device ID and the device ID of its VFs, all lower-case hex.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NicId {
    pub vendor: String,
    pub pf_device: String,
    pub vf_device: String,
}

impl fmt::Display for NicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.vendor, self.pf_device, self.vf_device)
    }
}

/// Why a supported-NIC list did not parse. `line` is 1-based; for a ConfigMap the `key` names
/// the data entry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NicListError {
    #[error("line {line}: {message}")]
    Line { line: usize, message: String },
    #[error("ConfigMap key {key:?}: {message}")]
    ConfigMapKey { key: String, message: String },
}

/// A set of supported NIC models, in the order they were added, without duplicates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SupportedNics {
    entries: Vec<NicId>,
}

/// Upstream's shipped list (the Helm chart's `supported-nic-ids` ConfigMap).
const BUILTIN: &[(&str, &str, &str)] = &[
    // Intel i40e (700 series): VF 154c
    ("8086", "158a", "154c"), // XXV710
    ("8086", "158b", "154c"), // XXV710 25G SFP28
    ("8086", "1572", "154c"), // X710 10G SFP+
    ("8086", "1589", "154c"), // X710/X557-AT 10GBASE-T
    ("8086", "1581", "154c"), // X710 10G backplane
    ("8086", "15ff", "154c"), // X710 10GBASE-T
    ("8086", "0d58", "154c"), // XXV710 in N3000
    ("8086", "1583", "154c"), // XL710 40G QSFP+
    // Intel ixgbe / igb
    ("8086", "1563", "1565"), // X550
    ("8086", "10c9", "10ca"), // 82576 (also QEMU's igb)
    // Intel ice (800 series): VF 1889
    ("8086", "1592", "1889"), // E810-C QSFP
    ("8086", "1593", "1889"), // E810-XXVDA4
    ("8086", "159b", "1889"), // E810-XXVDA2
    ("8086", "1599", "1889"), // E810-XXV backplane
    ("8086", "1591", "1889"), // E810-C backplane
    ("8086", "188a", "1889"), // E823-C
    ("8086", "124d", "1889"), // E823-L SFP
    ("8086", "124c", "1889"), // E823-L backplane
    ("8086", "579c", "1889"), // E825-C backplane
    ("8086", "579d", "1889"), // E825-C QSFP
    ("8086", "579e", "1889"), // E825-C SFP
    ("8086", "12d2", "1889"), // E830 QSFP
    ("8086", "12d3", "1889"), // E830 SFP
    // NVIDIA (Mellanox) mlx5
    ("15b3", "1013", "1014"), // ConnectX-4
    ("15b3", "1015", "1016"), // ConnectX-4 Lx
    ("15b3", "1017", "1018"), // ConnectX-5
    ("15b3", "1019", "101a"), // ConnectX-5 Ex
    ("15b3", "101b", "101c"), // ConnectX-6
    ("15b3", "101d", "101e"), // ConnectX-6 Dx
    ("15b3", "101f", "101e"), // ConnectX-6 Lx
    ("15b3", "1021", "101e"), // ConnectX-7
    ("15b3", "1023", "101e"), // ConnectX-8
    ("15b3", "a2d6", "101e"), // BlueField-2 (integrated ConnectX-6 Dx)
    ("15b3", "a2dc", "101e"), // BlueField-3 (integrated ConnectX-7)
    // Broadcom bnxt
    ("14e4", "16d7", "16dc"), // BCM57414 2x25G
    ("14e4", "1750", "1806"), // BCM57508 2x100G
    // QLogic qede
    ("1077", "1654", "1664"), // QL45000 50G
    // Red Hat virtio-net (VMs)
    ("1af4", "1000", "1000"), // virtio legacy
    ("1af4", "1041", "1041"), // virtio 1.0
    // Marvell OCTEON
    ("177d", "b200", "b203"), // OCTEON TX2 CN96XX
    ("177d", "b100", "b103"), // OCTEON TX2 CN98XX
    ("177d", "b600", "b603"), // OCTEON Fusion CNF95XX
    ("177d", "b900", "b903"), // OCTEON 10 CN10XXX
    ("177d", "ba00", "ba03"), // OCTEON Fusion CNF105XX
    // Amazon Elastic Network Adapter
    ("1d0f", "ec20", "ec20"),
];

impl SupportedNics {
    /// An empty list (everything unsupported). See also [`Self::builtin`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Upstream's shipped list.
    pub fn builtin() -> Self {
        let mut nics = Self::new();
        for (vendor, pf, vf) in BUILTIN {
            nics.insert(NicId {
                vendor: (*vendor).to_owned(),
                pf_device: (*pf).to_owned(),
                vf_device: (*vf).to_owned(),
            });
        }
        nics
    }

    /// Parse the text format (see the module docs). Errors name the 1-based line.
    pub fn parse(text: &str) -> Result<Self, NicListError> {
        let mut nics = Self::new();
        for (index, raw) in text.lines().enumerate() {
            let content = raw.split_once('#').map_or(raw, |(before, _)| before).trim();
            if content.is_empty() {
                continue;
            }
            let id = parse_entry(content).map_err(|message| NicListError::Line {
                line: index + 1,
                message,
            })?;
            nics.insert(id);
        }
        Ok(nics)
    }

    /// Build from the `data` of a `supported-nic-ids` ConfigMap: each value one entry.
    pub fn from_config_map_data(data: &BTreeMap<String, String>) -> Result<Self, NicListError> {
        let mut nics = Self::new();
        for (key, value) in data {
            let id = parse_entry(value.trim()).map_err(|message| NicListError::ConfigMapKey {
                key: key.clone(),
                message,
            })?;
            nics.insert(id);
        }
        Ok(nics)
    }

    /// Add `other`'s entries after ours, skipping ones we already have (Helm's
    /// `supportedExtraNICs`, or `multusctl --supported-nics FILE` on top of the built-in list).
    pub fn extend(&mut self, other: SupportedNics) {
        for id in other.entries {
            self.insert(id);
        }
    }

    /// Replace our entries by `other`'s (a site list that is the whole truth).
    pub fn replace(&mut self, other: SupportedNics) {
        *self = other;
    }

    fn insert(&mut self, id: NicId) {
        if !self.entries.contains(&id) {
            self.entries.push(id);
        }
    }

    pub fn entries(&self) -> &[NicId] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether any supported model has this vendor (policy `nicSelector.vendor`).
    pub fn has_vendor(&self, vendor: &str) -> bool {
        self.entries.iter().any(|e| e.vendor == vendor)
    }

    /// Whether this vendor + PF device pair is supported (a discovered PF, or a policy with both
    /// `vendor` and `deviceID`).
    pub fn has_pf(&self, vendor: &str, pf_device: &str) -> bool {
        self.entries
            .iter()
            .any(|e| e.vendor == vendor && e.pf_device == pf_device)
    }

    /// Whether some vendor has a PF model with this device ID (policy `deviceID` alone).
    pub fn has_pf_device(&self, pf_device: &str) -> bool {
        self.entries.iter().any(|e| e.pf_device == pf_device)
    }

    /// The VF device ID of a supported PF model (device-plugin `devices` selector).
    pub fn vf_device(&self, vendor: &str, pf_device: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|e| e.vendor == vendor && e.pf_device == pf_device)
            .map(|e| e.vf_device.as_str())
    }

    /// Whether this vendor + VF device pair is a supported VF model (cloud nodes, where the
    /// "PF" the daemon sees is itself a VF).
    pub fn has_vf(&self, vendor: &str, vf_device: &str) -> bool {
        self.entries
            .iter()
            .any(|e| e.vendor == vendor && e.vf_device == vf_device)
    }

    /// The distinct vendors, in list order (for messages).
    pub fn vendors(&self) -> Vec<&str> {
        let mut vendors: Vec<&str> = Vec::new();
        for e in &self.entries {
            if !vendors.contains(&e.vendor.as_str()) {
                vendors.push(&e.vendor);
            }
        }
        vendors
    }

    /// The text format, one entry per line; parses back to an equal list.
    pub fn to_text(&self) -> String {
        self.entries.iter().map(|e| format!("{e}\n")).collect()
    }
}

/// Whether `value` is a PCI ID as the list and sysfs write it: 4 lower-case hex digits.
pub fn is_pci_id(value: &str) -> bool {
    value.len() == 4
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn parse_entry(content: &str) -> Result<NicId, String> {
    let fields: Vec<&str> = content.split_whitespace().collect();
    let [vendor, pf, vf] = fields.as_slice() else {
        return Err(format!(
            "expected \"<vendor> <PF device> <VF device>\" (3 fields), found {} in {content:?}",
            fields.len()
        ));
    };
    for (what, sysfs_file, id) in [
        ("vendor", "vendor", vendor),
        ("PF device", "device", pf),
        ("VF device", "device", vf),
    ] {
        if !is_pci_id(id) {
            return Err(format!(
                "{what} ID {id:?} must be 4 lower-case hex digits without 0x, as in /sys/bus/pci/devices/*/{sysfs_file}"
            ));
        }
    }
    Ok(NicId {
        vendor: (*vendor).to_owned(),
        pf_device: (*pf).to_owned(),
        vf_device: (*vf).to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_list_has_the_upstream_models() {
        let nics = SupportedNics::builtin();
        assert!(nics.has_pf("8086", "158b") && nics.vf_device("8086", "158b") == Some("154c"));
        assert_eq!(nics.vf_device("8086", "159b"), Some("1889"));
        assert_eq!(nics.vf_device("8086", "10c9"), Some("10ca"));
        assert_eq!(nics.vf_device("15b3", "1017"), Some("1018"));
        assert_eq!(nics.vf_device("15b3", "101d"), Some("101e"));
        assert_eq!(nics.vf_device("1af4", "1041"), Some("1041"));
        assert_eq!(nics.vf_device("1d0f", "ec20"), Some("ec20"));
        for vendor in ["8086", "15b3", "14e4", "1077", "1af4", "177d", "1d0f"] {
            assert!(nics.has_vendor(vendor), "{vendor}");
        }
        assert!(!nics.has_vendor("10ec"));
        assert!(nics.has_pf_device("101b") && !nics.has_pf_device("ffff"));
        assert!(nics.has_vf("15b3", "101e") && !nics.has_vf("15b3", "1017"));
        assert!(
            nics.entries().iter().all(|e| is_pci_id(&e.vendor)
                && is_pci_id(&e.pf_device)
                && is_pci_id(&e.vf_device))
        );
        assert_eq!(SupportedNics::parse(&nics.to_text()).unwrap(), nics);
    }

    #[test]
    fn text_format_allows_comments_and_blank_lines() {
        let nics = SupportedNics::parse(
            "# site extras\n\n10ec 8168 8169   # a comment after the entry\n  8086 1572 154c\n",
        )
        .unwrap();
        assert_eq!(nics.len(), 2);
        assert!(nics.has_pf("10ec", "8168"));
        assert_eq!(nics.vendors(), vec!["10ec", "8086"]);
    }

    #[test]
    fn text_format_errors_name_the_line() {
        let err = SupportedNics::parse("8086 1572 154c\n\n8086 1572\n").unwrap_err();
        assert!(matches!(err, NicListError::Line { line: 3, .. }), "{err}");
        assert!(err.to_string().starts_with("line 3: expected"), "{err}");
        let err = SupportedNics::parse("8086 15B3 154c").unwrap_err();
        assert!(
            err.to_string()
                .contains("\"15B3\" must be 4 lower-case hex"),
            "{err}"
        );
        let err = SupportedNics::parse("0x8086 1572 154c").unwrap_err();
        assert!(matches!(err, NicListError::Line { line: 1, .. }));
    }

    #[test]
    fn config_map_values_are_entries_and_errors_name_the_key() {
        let data = BTreeMap::from([
            ("Intel_ice".to_owned(), "8086 159b 1889".to_owned()),
            ("Custom".to_owned(), " 10ec 8168 8169 ".to_owned()),
        ]);
        let nics = SupportedNics::from_config_map_data(&data).unwrap();
        assert!(nics.has_pf("10ec", "8168") && nics.has_pf("8086", "159b"));
        let bad = BTreeMap::from([("Broken".to_owned(), "8086".to_owned())]);
        let err = SupportedNics::from_config_map_data(&bad).unwrap_err();
        assert!(
            err.to_string().starts_with("ConfigMap key \"Broken\""),
            "{err}"
        );
    }

    #[test]
    fn extend_appends_without_duplicates_and_replace_discards() {
        let mut nics = SupportedNics::builtin();
        let before = nics.len();
        nics.extend(SupportedNics::parse("10ec 8168 8169\n8086 159b 1889\n").unwrap());
        assert_eq!(nics.len(), before + 1);
        assert!(nics.has_pf("10ec", "8168"));
        nics.replace(SupportedNics::parse("10ec 8168 8169").unwrap());
        assert_eq!(nics.len(), 1);
        assert!(!nics.has_vendor("8086"));
    }
}

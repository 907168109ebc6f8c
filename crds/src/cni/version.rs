//! CNI specification versions (`cniVersion`): parsing, ordering, the versions we speak, the
//! features each enables, and the `cniVersions` selection of CNI 1.1.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A CNI spec version, `major.minor.patch`. Written forms with fewer parts (`"1.0"`) parse with
/// the missing parts as zero, as libcni's `version.ParseVersion` does; it always displays with
/// three parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CniVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

/// Why a version string is not a version.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("invalid version {0:?}: must not be empty")]
    Empty(String),
    #[error("invalid version {0:?}: too many parts (at most major.minor.patch)")]
    TooManyParts(String),
    #[error("invalid version {version:?}: {part} part {value:?} is not a number")]
    NotANumber {
        version: String,
        part: &'static str,
        value: String,
    },
}

impl CniVersion {
    pub const V0_1_0: Self = Self::new(0, 1, 0);
    pub const V0_2_0: Self = Self::new(0, 2, 0);
    pub const V0_3_0: Self = Self::new(0, 3, 0);
    pub const V0_3_1: Self = Self::new(0, 3, 1);
    pub const V0_4_0: Self = Self::new(0, 4, 0);
    pub const V1_0_0: Self = Self::new(1, 0, 0);
    pub const V1_1_0: Self = Self::new(1, 1, 0);

    /// Every version we read and write, oldest first (libcni `version.All`).
    pub const SUPPORTED: [Self; 7] = [
        Self::V0_1_0,
        Self::V0_2_0,
        Self::V0_3_0,
        Self::V0_3_1,
        Self::V0_4_0,
        Self::V1_0_0,
        Self::V1_1_0,
    ];

    /// The newest spec version we implement.
    pub const CURRENT: Self = Self::V1_1_0;

    /// What libcni assumes when a config has no (or an empty) `cniVersion`.
    pub const IMPLIED: Self = Self::V0_1_0;

    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    /// An entry of `cniVersions`: as [`parse`](Self::parse), but an empty one is 0.1.0, as
    /// libcni's `ParseVersion` reads it there.
    pub fn parse_listed(text: &str) -> Result<Self, VersionError> {
        if text.is_empty() {
            return Ok(Self::IMPLIED);
        }
        Self::parse(text)
    }

    /// Parse `"1"`, `"1.0"` or `"1.0.0"`. Four parts, signs, spaces or an empty string are errors.
    pub fn parse(text: &str) -> Result<Self, VersionError> {
        if text.is_empty() {
            return Err(VersionError::Empty(text.to_owned()));
        }
        let mut numbers = [0u32; 3];
        let names = ["major", "minor", "patch"];
        for (i, part) in text.split('.').enumerate() {
            let Some(slot) = numbers.get_mut(i) else {
                return Err(VersionError::TooManyParts(text.to_owned()));
            };
            // Digits only: `str::parse::<u32>` would accept a leading `+`.
            let number = (!part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
                .then(|| part.parse::<u32>().ok())
                .flatten();
            *slot = number.ok_or_else(|| VersionError::NotANumber {
                version: text.to_owned(),
                part: names[i],
                value: part.to_owned(),
            })?;
        }
        Ok(Self::new(numbers[0], numbers[1], numbers[2]))
    }

    /// Whether this is one of the [`SUPPORTED`](Self::SUPPORTED) versions.
    pub fn is_supported(self) -> bool {
        Self::SUPPORTED.contains(&self)
    }

    /// CHECK exists from 0.4.0 on.
    pub fn supports_check(self) -> bool {
        self >= Self::V0_4_0
    }

    /// DEL receives `prevResult` from 0.4.0 on.
    pub fn supports_prev_result_on_del(self) -> bool {
        self >= Self::V0_4_0
    }

    /// GC exists from 1.1.0 on.
    pub fn supports_gc(self) -> bool {
        self >= Self::V1_1_0
    }

    /// STATUS exists from 1.1.0 on.
    pub fn supports_status(self) -> bool {
        self >= Self::V1_1_0
    }
}

impl fmt::Display for CniVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl FromStr for CniVersion {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for CniVersion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CniVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The version a runtime uses for a configuration (CNI 1.1 `cniVersions`): the highest supported
/// version among `cniVersion` and the `cniVersions` entries.
///
/// Like libcni, every `cniVersions` entry must parse, and versions newer than ours are skipped
/// rather than rejected (a config may list versions from the future). Unlike libcni, which keeps
/// any version up to its own (e.g. `0.5.0`), we pick only among versions we actually speak, so
/// the choice is always usable. When nothing in the list is supported, `cniVersion` is used as
/// written; a missing or empty `cniVersion` means 0.1.0, as in libcni.
pub fn select_version(
    cni_version: Option<&str>,
    cni_versions: &[&str],
) -> Result<CniVersion, VersionError> {
    let declared = match cni_version.filter(|v| !v.is_empty()) {
        Some(v) => Some(CniVersion::parse(v)?),
        None => None,
    };
    let mut best: Option<CniVersion> = None;
    for text in cni_versions {
        let v = CniVersion::parse_listed(text)?;
        if v.is_supported() && best.is_none_or(|b| v > b) {
            best = Some(v);
        }
    }
    if let Some(d) = declared.filter(|d| d.is_supported())
        && best.is_none_or(|b| d > b)
    {
        best = Some(d);
    }
    Ok(best.or(declared).unwrap_or(CniVersion::IMPLIED))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_short_and_full_forms() {
        assert_eq!(CniVersion::parse("1.0").unwrap(), CniVersion::V1_0_0);
        assert_eq!(CniVersion::parse("1.0.0").unwrap(), CniVersion::V1_0_0);
        assert_eq!(CniVersion::parse("1").unwrap(), CniVersion::V1_0_0);
        assert_eq!(CniVersion::parse("0.3.1").unwrap().to_string(), "0.3.1");
        assert_eq!("1.1".parse::<CniVersion>().unwrap().to_string(), "1.1.0");
    }

    #[test]
    fn rejects_malformed_versions() {
        assert!(matches!(
            CniVersion::parse("1.0.0.0"),
            Err(VersionError::TooManyParts(_))
        ));
        for bad in [
            "",
            "x",
            "1.x",
            "1..0",
            "+1.0",
            "-1",
            " 1",
            "1.0.",
            "99999999999",
        ] {
            assert!(CniVersion::parse(bad).is_err(), "{bad:?}");
        }
        let err = CniVersion::parse("1.a").unwrap_err().to_string();
        assert!(err.contains("minor"), "{err}");
    }

    #[test]
    fn orders_numerically_not_lexically() {
        assert!(CniVersion::parse("0.10.0").unwrap() > CniVersion::V0_4_0);
        assert!(CniVersion::V0_3_1 < CniVersion::V0_4_0);
        assert!(CniVersion::V1_0_0 < CniVersion::V1_1_0);
    }

    #[test]
    fn knows_supported_versions_and_feature_gates() {
        assert!(CniVersion::V0_3_1.is_supported());
        assert!(!CniVersion::new(0, 5, 0).is_supported());
        assert!(!CniVersion::new(2, 0, 0).is_supported());
        assert!(!CniVersion::V0_3_1.supports_check());
        assert!(CniVersion::V0_4_0.supports_check());
        assert!(!CniVersion::V1_0_0.supports_gc());
        assert!(CniVersion::V1_1_0.supports_gc());
        assert!(CniVersion::V1_1_0.supports_status());
        assert!(!CniVersion::V0_4_0.supports_status());
    }

    #[test]
    fn serde_uses_the_string_form() {
        let v: CniVersion = serde_json::from_str("\"1.0\"").unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), "\"1.0.0\"");
        assert!(serde_json::from_str::<CniVersion>("\"1.0.0.0\"").is_err());
    }

    #[test]
    fn selection_picks_the_highest_supported() {
        let pick = |v: Option<&str>, vs: &[&str]| select_version(v, vs).unwrap();
        assert_eq!(
            pick(Some("0.4.0"), &["1.0.0", "1.1.0", "2.0.0"]),
            CniVersion::V1_1_0
        );
        assert_eq!(pick(Some("1.0.0"), &["0.3.1"]), CniVersion::V1_0_0);
        assert_eq!(pick(None, &["0.3.1", "0.5.0"]), CniVersion::V0_3_1);
        assert_eq!(pick(None, &[]), CniVersion::IMPLIED);
        assert_eq!(pick(Some(""), &[]), CniVersion::IMPLIED);
        // An empty `cniVersions` entry is 0.1.0, as libcni reads it.
        assert_eq!(pick(None, &[""]), CniVersion::IMPLIED);
        assert_eq!(pick(None, &["", "0.4.0"]), CniVersion::V0_4_0);
        // Nothing supported: the declared version stands, for the caller to reject.
        assert_eq!(pick(Some("3.0.0"), &["2.0.0"]), CniVersion::new(3, 0, 0));
        assert!(select_version(Some("1.0.0"), &["bogus"]).is_err());
        assert!(select_version(Some("x"), &[]).is_err());
    }
}

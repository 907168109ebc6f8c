//! VF index ranges: the `"<start>-<end>"` of a NodeState VF group and the `#<first>-<last>`
//! suffix of a policy `pfNames` entry (`ens1f0#8-15`). Both bounds are inclusive, 0-based.

use std::fmt;
use std::str::FromStr;

/// An inclusive range of VF indices, written `start-end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VfRange {
    pub start: u32,
    pub end: u32,
}

/// Why a VF range did not parse. Upstream accepts only `start-end`; comma lists such as `0,2-5`
/// (which the device plugin understands) are rejected by the operator.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VfRangeError {
    #[error(
        "VF range {0:?} must be written <first>-<last>, e.g. 0-7 (comma lists are not supported)"
    )]
    NotStartDashEnd(String),
    #[error("VF range {range:?}: {part:?} is not a VF index (a non-negative integer)")]
    NotAnIndex { range: String, part: String },
    #[error(
        "VF range {range:?} ends before it starts: the last VF ({end}) must not be below the first ({start})"
    )]
    Reversed { range: String, start: u32, end: u32 },
}

impl VfRange {
    /// A range from `start` to `end`, both inclusive; `None` when `end < start`.
    pub fn new(start: u32, end: u32) -> Option<Self> {
        (start <= end).then_some(Self { start, end })
    }

    /// All VFs of a PF with `num_vfs` VFs (`0..=num_vfs-1`); `None` for zero VFs.
    pub fn all(num_vfs: u32) -> Option<Self> {
        num_vfs.checked_sub(1).map(|end| Self { start: 0, end })
    }

    /// Parse `start-end`, each a decimal integer, `start <= end`.
    pub fn parse(text: &str) -> Result<Self, VfRangeError> {
        let mut parts = text.split('-');
        let (Some(first), Some(last), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(VfRangeError::NotStartDashEnd(text.to_owned()));
        };
        let index = |part: &str| -> Result<u32, VfRangeError> {
            // Digits only: Go's Atoi would also take a sign, which no VF index needs.
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(VfRangeError::NotAnIndex {
                    range: text.to_owned(),
                    part: part.to_owned(),
                });
            }
            part.parse().map_err(|_| VfRangeError::NotAnIndex {
                range: text.to_owned(),
                part: part.to_owned(),
            })
        };
        let (start, end) = (index(first)?, index(last)?);
        Self::new(start, end).ok_or(VfRangeError::Reversed {
            range: text.to_owned(),
            start,
            end,
        })
    }

    /// Whether the two ranges share at least one VF.
    pub fn overlaps(&self, other: &VfRange) -> bool {
        self.start <= other.end && other.start <= self.end
    }

    pub fn contains(&self, vf: u32) -> bool {
        self.start <= vf && vf <= self.end
    }

    /// Number of VFs in the range.
    pub fn len(&self) -> u32 {
        self.end - self.start + 1
    }

    /// Never true: a range holds at least one VF. Present for API symmetry with `len`.
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl fmt::Display for VfRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

impl FromStr for VfRange {
    type Err = VfRangeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// One `nicSelector.pfNames` entry: a PF name (or alternative name) and an optional VF range.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PfNameSelector {
    pub name: String,
    pub range: Option<VfRange>,
}

/// Why a `pfNames` entry did not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PfNameError {
    #[error("pfNames entry must not be empty")]
    Empty,
    #[error("pfNames entry {0:?} has no interface name before '#'")]
    NoName(String),
    #[error(
        "pfNames entry {0:?} has more than one '#'; write <pf>#<first>-<last>, e.g. ens1f0#0-7"
    )]
    SeveralHashes(String),
    #[error("pfNames entry {entry:?}: {source}")]
    Range {
        entry: String,
        #[source]
        source: VfRangeError,
    },
}

impl PfNameSelector {
    /// Parse `name` or `name#first-last` with the operator's grammar: at most one `#`, and after
    /// it exactly `first-last` with `first <= last`.
    pub fn parse(entry: &str) -> Result<Self, PfNameError> {
        if entry.is_empty() {
            return Err(PfNameError::Empty);
        }
        let Some((name, range)) = entry.split_once('#') else {
            return Ok(Self {
                name: entry.to_owned(),
                range: None,
            });
        };
        if range.contains('#') {
            return Err(PfNameError::SeveralHashes(entry.to_owned()));
        }
        if name.is_empty() {
            return Err(PfNameError::NoName(entry.to_owned()));
        }
        let range = VfRange::parse(range).map_err(|source| PfNameError::Range {
            entry: entry.to_owned(),
            source,
        })?;
        Ok(Self {
            name: name.to_owned(),
            range: Some(range),
        })
    }

    /// The interface name without any `#range` suffix, without validating the suffix. This is
    /// what upstream compares against a PF's name and alternative names.
    pub fn name_of(entry: &str) -> &str {
        entry.split_once('#').map_or(entry, |(name, _)| name)
    }
}

impl fmt::Display for PfNameSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.range {
            Some(range) => write!(f, "{}#{range}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_print_as_start_dash_end() {
        let r = VfRange::parse("8-15").unwrap();
        assert_eq!((r.start, r.end, r.len()), (8, 15, 8));
        assert_eq!(r.to_string(), "8-15");
        assert_eq!(
            "0-0".parse::<VfRange>().unwrap(),
            VfRange { start: 0, end: 0 }
        );
        assert_eq!(VfRange::all(8), VfRange::new(0, 7));
        assert_eq!(VfRange::all(0), None);
    }

    #[test]
    fn malformed_ranges_are_rejected_with_reasons() {
        assert!(matches!(
            VfRange::parse("0,2-5"),
            Err(VfRangeError::NotAnIndex { .. })
        ));
        assert!(matches!(
            VfRange::parse("3"),
            Err(VfRangeError::NotStartDashEnd(_))
        ));
        assert!(matches!(
            VfRange::parse("1-2-3"),
            Err(VfRangeError::NotStartDashEnd(_))
        ));
        assert!(matches!(
            VfRange::parse("-1-3"),
            Err(VfRangeError::NotStartDashEnd(_))
        ));
        assert!(matches!(
            VfRange::parse("a-3"),
            Err(VfRangeError::NotAnIndex { .. })
        ));
        assert!(matches!(
            VfRange::parse("+1-3"),
            Err(VfRangeError::NotAnIndex { .. })
        ));
        assert!(matches!(
            VfRange::parse("7-3"),
            Err(VfRangeError::Reversed {
                start: 7,
                end: 3,
                ..
            })
        ));
        assert!(matches!(
            VfRange::parse("0-99999999999"),
            Err(VfRangeError::NotAnIndex { .. })
        ));
    }

    #[test]
    fn overlap_is_inclusive() {
        let a = VfRange::parse("0-3").unwrap();
        assert!(a.overlaps(&VfRange::parse("3-5").unwrap()));
        assert!(!a.overlaps(&VfRange::parse("4-5").unwrap()));
        assert!(a.contains(3) && !a.contains(4));
    }

    #[test]
    fn pf_names_split_into_name_and_range() {
        let p = PfNameSelector::parse("ens1f0#8-15").unwrap();
        assert_eq!(p.name, "ens1f0");
        assert_eq!(p.range, VfRange::new(8, 15));
        assert_eq!(p.to_string(), "ens1f0#8-15");
        let p = PfNameSelector::parse("enp-59s0").unwrap();
        assert_eq!((p.name.as_str(), p.range), ("enp-59s0", None));
        assert_eq!(PfNameSelector::name_of("eth0#x"), "eth0");
    }

    #[test]
    fn malformed_pf_names_are_rejected() {
        assert_eq!(PfNameSelector::parse(""), Err(PfNameError::Empty));
        assert!(matches!(
            PfNameSelector::parse("#0-3"),
            Err(PfNameError::NoName(_))
        ));
        assert!(matches!(
            PfNameSelector::parse("a#0-1#2-3"),
            Err(PfNameError::SeveralHashes(_))
        ));
        assert!(matches!(
            PfNameSelector::parse("eth0#0,2-5"),
            Err(PfNameError::Range { .. })
        ));
        assert!(matches!(
            PfNameSelector::parse("eth0#5-2"),
            Err(PfNameError::Range { .. })
        ));
        assert!(matches!(
            PfNameSelector::parse("eth0#"),
            Err(PfNameError::Range { .. })
        ));
    }
}

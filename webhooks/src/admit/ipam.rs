//! Overlapping IPAM ranges between NADs on the same host link: two NADs that put pods on the
//! same `master` (macvlan, ipvlan) or the same `bridge`, with address ranges that overlap, will
//! hand out the same address twice. It is a warning, not an error: the ranges may be meant for
//! different nodes, or be excluded from each other with `exclude` lists.
//!
//! This rule compares a NAD with the others, so the comparison lives with the NAD cache
//! ([`crate::cache::NadCache::overlap_warnings`]); the computation of a NAD's footprint here is
//! pure and could move to `multus-crds` if `multusctl` wants it for a directory of NADs.

use std::net::IpAddr;

use multus_crds::names::parse_ip_or_cidr;
use serde_json::Value;

/// An address prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub len: u8,
}

impl Cidr {
    fn parse(text: &str) -> Option<Self> {
        match parse_ip_or_cidr(text).ok()? {
            (addr, Some(len)) => Some(Self { addr, len }),
            _ => None,
        }
    }

    /// Two prefixes overlap when the shorter one contains the other's network address.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        let len = u32::from(self.len.min(other.len));
        match (self.addr, other.addr) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
                u32::from(a) & mask == u32::from(b) & mask
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
                u128::from(a) & mask == u128::from(b) & mask
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// The host links a NAD's plugins attach to, and the ranges its IPAM allocates from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Footprint {
    /// `master <if>` or `bridge <br>`.
    pub links: Vec<String>,
    pub ranges: Vec<Cidr>,
}

/// The footprint of a CNI config (single plugin or list); `None` when it uses no shared link or
/// allocates from no range, so there is nothing to compare.
pub fn footprint(config: &str) -> Option<Footprint> {
    footprint_of(&serde_json::from_str(config).ok()?)
}

/// [`footprint`] of a config already parsed (the cache parses each NAD's config once).
pub fn footprint_of(value: &Value) -> Option<Footprint> {
    let plugins: Vec<&Value> = match value.get("plugins").and_then(Value::as_array) {
        Some(list) => list.iter().collect(),
        None => vec![&value],
    };
    let mut fp = Footprint::default();
    for plugin in plugins {
        for (key, label) in [("master", "master"), ("bridge", "bridge")] {
            if let Some(name) = plugin
                .get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            {
                fp.links.push(format!("{label} {name}"));
            }
        }
        if let Some(ipam) = plugin.get("ipam") {
            ipam_ranges(ipam, &mut fp.ranges);
        }
    }
    (!fp.links.is_empty() && !fp.ranges.is_empty()).then_some(fp)
}

/// Ranges of host-local (`subnet`, `ranges[][].subnet`) and whereabouts (`range`,
/// `ipRanges[].range`).
fn ipam_ranges(ipam: &Value, out: &mut Vec<Cidr>) {
    let mut push = |v: Option<&Value>| {
        if let Some(cidr) = v.and_then(Value::as_str).and_then(Cidr::parse) {
            out.push(cidr);
        }
    };
    push(ipam.get("subnet"));
    push(ipam.get("range"));
    for set in ipam
        .get("ranges")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for r in set.as_array().into_iter().flatten() {
            push(r.get("subnet"));
        }
    }
    for r in ipam
        .get("ipRanges")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        push(r.get("range"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        Cidr::parse(s).unwrap_or_else(|| unreachable!("{s}"))
    }

    #[test]
    fn prefixes_overlap_when_one_contains_the_other() {
        assert!(cidr("10.1.0.0/16").overlaps(&cidr("10.1.2.0/24")));
        assert!(cidr("10.1.2.0/24").overlaps(&cidr("10.1.0.0/16")));
        assert!(!cidr("10.1.2.0/24").overlaps(&cidr("10.1.3.0/24")));
        assert!(cidr("0.0.0.0/0").overlaps(&cidr("192.168.0.0/16")));
        assert!(!cidr("10.0.0.0/8").overlaps(&cidr("fd00::/8")));
        assert!(cidr("fd00::/64").overlaps(&cidr("fd00::1/128")));
    }

    #[test]
    fn footprints_cover_host_local_and_whereabouts_on_masters_and_bridges() {
        let fp = footprint(
            r#"{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"macvlan","master":"eth1","ipam":{"type":"host-local","ranges":[[{"subnet":"10.1.0.0/24"}]]}}]}"#,
        );
        assert_eq!(
            fp.map(|f| (f.links, f.ranges.len())),
            Some((vec!["master eth1".to_owned()], 1))
        );
        let fp = footprint(
            r#"{"cniVersion":"1.0.0","type":"bridge","bridge":"br0","ipam":{"type":"whereabouts","range":"10.2.0.0/24","ipRanges":[{"range":"fd00::/64"}]}}"#,
        );
        assert_eq!(fp.map(|f| f.ranges.len()), Some(2));
        assert_eq!(
            footprint(r#"{"type":"macvlan","master":"eth1","ipam":{"type":"dhcp"}}"#),
            None
        );
    }
}

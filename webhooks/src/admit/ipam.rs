//! Overlapping IPAM ranges between NADs on the same host link: two NADs that put pods on the
//! same `master` (macvlan, ipvlan) or the same `bridge`, with address ranges that overlap, will
//! hand out the same address twice. It is a warning, not an error: the ranges may be meant for
//! different nodes, or be excluded from each other with `exclude` lists.
//!
//! This rule compares a NAD with the others, so it lives here with the index it needs; the
//! computation of a NAD's footprint is pure and could move to `multus-crds` if `multusctl` wants
//! it for a directory of NADs.

use std::collections::BTreeMap;
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
    let value: Value = serde_json::from_str(config).ok()?;
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

/// Footprints of the cached NADs by link, for the comparison on each NAD review.
#[derive(Clone, Debug, Default)]
pub struct IpamIndex {
    by_link: BTreeMap<String, BTreeMap<(String, String), Vec<Cidr>>>,
    links_of: BTreeMap<(String, String), Vec<String>>,
}

impl IpamIndex {
    pub fn insert(&mut self, namespace: &str, name: &str, config: Option<&str>) {
        self.remove(namespace, name);
        let Some(fp) = config.and_then(footprint) else {
            return;
        };
        let key = (namespace.to_owned(), name.to_owned());
        for link in &fp.links {
            self.by_link
                .entry(link.clone())
                .or_default()
                .insert(key.clone(), fp.ranges.clone());
        }
        self.links_of.insert(key, fp.links);
    }

    pub fn remove(&mut self, namespace: &str, name: &str) {
        let key = (namespace.to_owned(), name.to_owned());
        for link in self.links_of.remove(&key).unwrap_or_default() {
            if let Some(nads) = self.by_link.get_mut(&link) {
                nads.remove(&key);
                if nads.is_empty() {
                    self.by_link.remove(&link);
                }
            }
        }
    }

    /// One warning per other NAD whose range overlaps, on a link both use.
    pub fn overlap_warnings(&self, namespace: &str, name: &str, fp: &Footprint) -> Vec<String> {
        let mut out = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for link in &fp.links {
            let Some(nads) = self.by_link.get(link) else {
                continue;
            };
            for ((ns, other), ranges) in nads {
                if (ns.as_str(), other.as_str()) == (namespace, name) || seen.contains(&(ns, other))
                {
                    continue;
                }
                let hit = fp
                    .ranges
                    .iter()
                    .find_map(|mine| ranges.iter().find(|r| r.overlaps(mine)).map(|r| (mine, r)));
                if let Some((mine, theirs)) = hit {
                    seen.insert((ns, other));
                    out.push(format!(
                        "spec.config.ipam: range {mine} overlaps {theirs} of NAD {ns}/{other} on the same {link}; pods of both networks may get the same address"
                    ));
                }
            }
        }
        out
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

    #[test]
    fn overlaps_on_the_same_link_warn_once_per_other_nad() {
        let mut index = IpamIndex::default();
        let a = r#"{"type":"macvlan","master":"eth1","ipam":{"type":"host-local","subnet":"10.1.0.0/16"}}"#;
        index.insert("ns", "a", Some(a));
        index.insert("ns", "elsewhere", Some(r#"{"type":"macvlan","master":"eth2","ipam":{"type":"host-local","subnet":"10.1.0.0/16"}}"#));
        let b = footprint(r#"{"type":"macvlan","master":"eth1","ipam":{"type":"whereabouts","range":"10.1.5.0/24"}}"#)
            .unwrap_or_default();
        let warnings = index.overlap_warnings("ns", "b", &b);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("NAD ns/a") && warnings[0].contains("master eth1"));
        // A NAD is not compared with its own stored version; removal forgets it.
        assert!(index.overlap_warnings("ns", "a", &b).is_empty());
        index.remove("ns", "a");
        assert!(index.overlap_warnings("ns", "b", &b).is_empty());
    }
}

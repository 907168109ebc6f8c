//! Syntax of the names and addresses that appear in every wire format: Kubernetes object names,
//! interface names, CNI network names and plugin types, hardware and IP addresses.
//!
//! Hand-written checks rather than regexes: these run on every CNI ADD and admission review, and
//! each returns the reason a person needs to fix the value.

use std::net::IpAddr;

/// Longest Linux interface name (IFNAMSIZ - 1).
pub const MAX_IFNAME_LEN: usize = 15;
/// Longest DNS-1123 label.
pub const MAX_DNS1123_LABEL_LEN: usize = 63;
/// Longest DNS-1123 subdomain.
pub const MAX_DNS1123_SUBDOMAIN_LEN: usize = 253;

/// A DNS-1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters. Namespaces and NAD
/// names in network references must be labels.
pub fn validate_dns1123_label(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.len() > MAX_DNS1123_LABEL_LEN {
        return Err(format!(
            "{value:?} is longer than {MAX_DNS1123_LABEL_LEN} characters"
        ));
    }
    let bytes = value.as_bytes();
    let ok_inner = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-';
    let ok_edge = |b: Option<&u8>| b.is_some_and(|&b| b != b'-');
    if !bytes.iter().all(|&b| ok_inner(b)) || !ok_edge(bytes.first()) || !ok_edge(bytes.last()) {
        return Err(format!(
            "{value:?} is not a DNS-1123 label: use lower-case letters, digits and '-', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// A DNS-1123 subdomain: dot-separated labels, at most 253 characters (object names of most kinds).
pub fn validate_dns1123_subdomain(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.len() > MAX_DNS1123_SUBDOMAIN_LEN {
        return Err(format!(
            "{value:?} is longer than {MAX_DNS1123_SUBDOMAIN_LEN} characters"
        ));
    }
    let bytes = value.as_bytes();
    let ok_inner = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.';
    let ok_edge = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let labels_ok = value.split('.').all(|l| !l.is_empty());
    if !bytes.iter().all(|&b| ok_inner(b))
        || !ok_edge(bytes[0])
        || !ok_edge(bytes[bytes.len() - 1])
        || !labels_ok
    {
        return Err(format!(
            "{value:?} is not a DNS-1123 subdomain: use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// A Linux interface name as libcni accepts it: 1..=15 bytes, not `.` or `..`, and no `/`, `:`
/// or whitespace.
pub fn validate_ifname(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("interface name must not be empty".into());
    }
    if value.len() > MAX_IFNAME_LEN {
        return Err(format!(
            "interface name {value:?} is longer than {MAX_IFNAME_LEN} bytes"
        ));
    }
    if value == "." || value == ".." {
        return Err(format!("interface name {value:?} is not allowed"));
    }
    if let Some(c) = value
        .chars()
        .find(|c| *c == '/' || *c == ':' || c.is_whitespace() || *c == '\0')
    {
        return Err(format!("interface name {value:?} must not contain {c:?}"));
    }
    Ok(())
}

/// A CNI network name or container ID: `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`.
pub fn validate_cni_name(value: &str) -> Result<(), String> {
    let bytes = value.as_bytes();
    let Some(&first) = bytes.first() else {
        return Err("must not be empty".into());
    };
    if !first.is_ascii_alphanumeric()
        || !bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err(format!(
            "{value:?} must start with a letter or digit and contain only letters, digits, '_', '.' and '-'"
        ));
    }
    Ok(())
}

/// A CNI plugin `type` must be a bare binary name. The runtime looks it up in its plugin path and
/// executes it as root, so a path (`/tmp/x`, `../../bin/sh`) in a NAD would let whoever can create
/// a NAD run any file on the node.
pub fn validate_plugin_type(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("plugin type must not be empty".into());
    }
    if value == "." || value.contains("..") {
        return Err(format!(
            "plugin type {value:?} must be a bare binary name, not a path ('..' is not allowed)"
        ));
    }
    if let Some(c) = value
        .chars()
        .find(|c| *c == '/' || *c == '\\' || *c == '\0' || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "plugin type {value:?} must be a bare binary name, not a path ({c:?} is not allowed)"
        ));
    }
    Ok(())
}

/// A parsed hardware address: 6, 8 or 20 octets, kept inline (no allocation: the webhook parses
/// one per `mac` of every pod it admits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HardwareAddr {
    octets: [u8; 20],
    len: u8,
}

impl HardwareAddr {
    /// The octets, in order.
    pub fn as_bytes(&self) -> &[u8] {
        self.octets.get(..usize::from(self.len)).unwrap_or_default()
    }

    fn push(&mut self, octet: u8) {
        if let Some(slot) = self.octets.get_mut(usize::from(self.len)) {
            *slot = octet;
            self.len += 1;
        }
    }
}

/// Parse a hardware address as Go's `net.ParseMAC` does: 6 (MAC-48), 8 (EUI-64) or 20
/// (InfiniBand) octets, written `xx:xx:..`, `xx-xx-..` or `xxxx.xxxx.xxxx`.
pub fn parse_hardware_addr(value: &str) -> Result<HardwareAddr, String> {
    let bad = || {
        format!(
            "{value:?} is not a hardware address (expected e.g. 02:00:5e:10:00:01, 02-00-5e-10-00-01 or 0200.5e10.0001)"
        )
    };
    let bytes = value.as_bytes();
    let hex = |i: usize| hex_digit(*bytes.get(i)?);
    let octet = |i: usize| u8::try_from(hex(i)? << 4 | hex(i + 1)?).ok();
    let mut out = HardwareAddr {
        octets: [0; 20],
        len: 0,
    };
    if value.len() < 14 {
        return Err(bad());
    }
    match bytes.get(2).copied() {
        Some(sep @ (b':' | b'-')) => {
            if !(value.len() + 1).is_multiple_of(3) {
                return Err(bad());
            }
            let n = (value.len() + 1) / 3;
            if !matches!(n, 6 | 8 | 20) {
                return Err(bad());
            }
            for i in 0..n {
                let at = i * 3;
                out.push(octet(at).ok_or_else(bad)?);
                if i + 1 < n && bytes.get(at + 2) != Some(&sep) {
                    return Err(bad());
                }
            }
            Ok(out)
        }
        _ if bytes.get(4) == Some(&b'.') => {
            if !(value.len() + 1).is_multiple_of(5) {
                return Err(bad());
            }
            let n = 2 * (value.len() + 1) / 5;
            if !matches!(n, 6 | 8 | 20) {
                return Err(bad());
            }
            for g in 0..n / 2 {
                let at = g * 5;
                out.push(octet(at).ok_or_else(bad)?);
                out.push(octet(at + 2).ok_or_else(bad)?);
                if g + 1 < n / 2 && bytes.get(at + 4) != Some(&b'.') {
                    return Err(bad());
                }
            }
            Ok(out)
        }
        _ => Err(bad()),
    }
}

/// An IP address, or a CIDR (`addr/prefix`) when the value contains `/`.
pub fn validate_ip_or_cidr(value: &str) -> Result<(), String> {
    parse_ip_or_cidr(value).map(|_| ())
}

/// An IP address exactly as `IpAddr::from_str` reads it: IPv4, else IPv6. The IPv4 reader
/// stops at the first byte that is neither a digit nor a dot, so an IPv6 text costs it little.
pub fn parse_ip(text: &str) -> Option<IpAddr> {
    parse_ipv4(text)
        .map(IpAddr::V4)
        .or_else(|| parse_ipv6(text).map(IpAddr::V6))
}

/// Parse an IP address with an optional prefix length.
pub fn parse_ip_or_cidr(value: &str) -> Result<(IpAddr, Option<u8>), String> {
    match value.bytes().position(|b| b == b'/') {
        None => parse_ip(value)
            .map(|ip| (ip, None))
            .ok_or_else(|| format!("{value:?} is not an IP address")),
        Some(slash) => {
            let (addr, prefix) = (
                value.get(..slash).unwrap_or_default(),
                value.get(slash + 1..).unwrap_or_default(),
            );
            let ip = parse_ip(addr)
                .ok_or_else(|| format!("{value:?} is not a CIDR: {addr:?} is not an IP address"))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            // Digits only, as Go's `net.ParseCIDR` reads it (`u8::from_str` takes a `+` too).
            let digits = !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_digit());
            let len: u8 = digits
                .then(|| prefix.parse().ok())
                .flatten()
                .filter(|l| *l <= max)
                .ok_or_else(|| {
                    format!("{value:?} is not a CIDR: prefix length must be 0..={max}")
                })?;
            Ok((ip, Some(len)))
        }
    }
}

/// Dotted-quad IPv4 exactly as `Ipv4Addr::from_str` reads it (four decimal octets of at most
/// three digits, no leading zero, each at most 255), in one pass: the webhook parses one per
/// `ips` entry of every pod it admits.
pub fn parse_ipv4(text: &str) -> Option<std::net::Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut done = 0; // octets finished
    let mut value: u16 = 0;
    let mut digits = 0;
    for &b in text.as_bytes() {
        if b == b'.' {
            if digits == 0 || done == 3 {
                return None;
            }
            *octets.get_mut(done)? = u8::try_from(value).ok()?;
            done += 1;
            value = 0;
            digits = 0;
        } else if b.is_ascii_digit() {
            // At most three digits, and no leading zero.
            if digits == 3 || (digits == 1 && value == 0) {
                return None;
            }
            value = value * 10 + u16::from(b - b'0');
            digits += 1;
        } else {
            return None;
        }
    }
    if done != 3 || digits == 0 {
        return None;
    }
    octets[3] = u8::try_from(value).ok()?;
    Some(std::net::Ipv4Addr::from(octets))
}

fn hex_digit(c: u8) -> Option<u16> {
    let d = match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => return None,
    };
    Some(u16::from(d))
}

/// IPv6 exactly as `Ipv6Addr::from_str` reads it. Without an embedded IPv4 part (no `.`) it is
/// read here in one pass: std's parser tries an IPv4 address at every group before reading the
/// group as hex, which made one IPv6 address cost as much as the rest of an element's checks.
pub fn parse_ipv6(text: &str) -> Option<std::net::Ipv6Addr> {
    let b = text.as_bytes();
    if b.contains(&b'.') {
        return text.parse().ok();
    }
    // Groups before `::` (or all eight), then those after it.
    let mut groups = [0u16; 8];
    let mut head = 0;
    let mut tail = [0u16; 8];
    let mut tail_len = 0;
    let mut compressed = false;
    let mut i = 0;
    if b.starts_with(b"::") {
        compressed = true;
        i = 2;
    }
    while i < b.len() {
        let start = i;
        let mut group: u16 = 0;
        while let Some(digit) = b.get(i).and_then(|&c| hex_digit(c)) {
            if i - start == 4 {
                return None; // a fifth digit
            }
            group = (group << 4) | digit;
            i += 1;
        }
        if i == start || head + tail_len == 8 {
            return None;
        }
        if compressed {
            *tail.get_mut(tail_len)? = group;
            tail_len += 1;
        } else {
            *groups.get_mut(head)? = group;
            head += 1;
        }
        match b.get(i) {
            None => break,
            Some(b':') => i += 1,
            Some(_) => return None,
        }
        if b.get(i) == Some(&b':') {
            if compressed {
                return None; // a second `::`
            }
            compressed = true;
            i += 1;
        } else if i == b.len() {
            return None; // a trailing single `:`
        }
    }
    if compressed {
        // `::` stands for at least one group of zeros.
        if head + tail_len > 7 {
            return None;
        }
        let at = 8 - tail_len;
        groups.get_mut(at..)?.copy_from_slice(tail.get(..tail_len)?);
    } else if head != 8 {
        return None;
    }
    Some(std::net::Ipv6Addr::from(groups))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        assert!(validate_dns1123_label("storage-net").is_ok());
        assert!(validate_dns1123_label("0net").is_ok());
        assert!(validate_dns1123_label("-net").is_err());
        assert!(validate_dns1123_label("net-").is_err());
        assert!(validate_dns1123_label("Net").is_err());
        assert!(validate_dns1123_label("a.b").is_err());
        assert!(validate_dns1123_label("").is_err());
        assert!(validate_dns1123_label(&"a".repeat(64)).is_err());
        assert!(validate_dns1123_subdomain("a.b-c.d").is_ok());
        assert!(validate_dns1123_subdomain("a..b").is_err());
    }

    #[test]
    fn interface_names_follow_libcni() {
        assert!(validate_ifname("net1").is_ok());
        assert!(validate_ifname("mgmt0.100").is_ok());
        for bad in ["", ".", "..", "a/b", "a:b", "a b", "sixteen-chars-xx"] {
            assert!(validate_ifname(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cni_names() {
        assert!(validate_cni_name("cbr0").is_ok());
        assert!(validate_cni_name("my_net.v1-2").is_ok());
        assert!(validate_cni_name("-x").is_err());
        assert!(validate_cni_name("a b").is_err());
        assert!(validate_cni_name("").is_err());
    }

    #[test]
    fn plugin_types_are_bare_binary_names() {
        assert!(validate_plugin_type("macvlan").is_ok());
        assert!(validate_plugin_type("host-local").is_ok());
        for bad in [
            "", "/bin/sh", "../sh", "..", "a\\b", "a b", "a\0b", "x/..", "sh\n",
        ] {
            assert!(validate_plugin_type(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hardware_addresses_like_go_parse_mac() {
        assert_eq!(
            parse_hardware_addr("02:00:5e:10:00:01").unwrap().as_bytes(),
            [2, 0, 0x5e, 0x10, 0, 1]
        );
        assert_eq!(
            parse_hardware_addr("02-00-5E-10-00-01")
                .unwrap()
                .as_bytes()
                .len(),
            6
        );
        assert_eq!(
            parse_hardware_addr("0200.5e10.0001")
                .unwrap()
                .as_bytes()
                .len(),
            6
        );
        assert_eq!(
            parse_hardware_addr("00:11:22:33:44:55:66:77")
                .unwrap()
                .as_bytes()
                .len(),
            8
        );
        assert_eq!(
            parse_hardware_addr(&vec!["aa"; 20].join(":"))
                .unwrap()
                .as_bytes()
                .len(),
            20
        );
        for bad in [
            "",
            "02:00:5e:10:00",
            "02:00:5e:10:00:0g",
            "02:00-5e:10:00:01",
            "0200.5e10.00011",
            "zz:zz:zz:zz:zz:zz",
        ] {
            assert!(parse_hardware_addr(bad).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        /// The one-pass IPv4 reader accepts exactly what the standard library accepts.
        #[test]
        fn parse_ipv4_agrees_with_std(text in "[0-9.]{0,16}|[0-9a-f.: +-]{0,8}") {
            proptest::prop_assert_eq!(parse_ipv4(&text), text.parse::<std::net::Ipv4Addr>().ok());
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]
        #[test]
        fn parse_ipv6_agrees_with_std(text in "[0-9a-fA-F:]{0,24}|([0-9a-f]{1,5}|:|::){0,10}|[0-9a-f:.]{0,20}") {
            proptest::prop_assert_eq!(parse_ipv6(&text), text.parse::<std::net::Ipv6Addr>().ok());
            proptest::prop_assert_eq!(parse_ip(&text), text.parse::<IpAddr>().ok());
        }

        #[test]
        fn parse_ipv6_reads_every_written_address(groups in proptest::array::uniform8(proptest::prelude::prop_oneof![proptest::strategy::Just(0u16), proptest::prelude::any::<u16>()])) {
            let ip = std::net::Ipv6Addr::from(groups);
            for text in [ip.to_string(), format!("{:x}:{:x}:{:x}:{:x}:{:x}:{:x}:{:x}:{:x}", groups[0], groups[1], groups[2], groups[3], groups[4], groups[5], groups[6], groups[7]).to_uppercase()] {
                proptest::prop_assert_eq!(parse_ipv6(&text), Some(ip), "{}", text);
            }
        }
    }

    #[test]
    fn ipv6_corners_agree_with_std() {
        for text in [
            "::",
            "::1",
            "1::",
            "1:2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7::",
            "::2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7:8::",
            "::1:2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7::8",
            "1::2::3",
            ":::",
            ":1::",
            "1:",
            ":1",
            "1:2:3:4:5:6:7",
            "12345::",
            "0000:0:00:000::",
            "2001:db8:1::10",
            "::ffff:192.0.2.1",
            "1::2:",
            "",
            ":",
            "g::",
        ] {
            assert_eq!(parse_ipv6(text), text.parse().ok(), "{text}");
        }
    }

    #[test]
    fn ipv4_corners_agree_with_std() {
        for text in [
            "0.0.0.0",
            "255.255.255.255",
            "256.0.0.1",
            "01.2.3.4",
            "1.2.3",
            "1.2.3.4.",
            "1..2.3",
            "1.2.3.4.5",
            "+1.2.3.4",
            "1.2.3.0000",
            "192.0.2.10",
            "1.2.3.00",
        ] {
            assert_eq!(parse_ipv4(text), text.parse().ok(), "{text}");
        }
    }

    #[test]
    fn ip_and_cidr() {
        assert!(validate_ip_or_cidr("192.0.2.1").is_ok());
        assert!(validate_ip_or_cidr("192.0.2.1/24").is_ok());
        assert!(validate_ip_or_cidr("2001:db8::1/64").is_ok());
        assert!(validate_ip_or_cidr("192.0.2.1/33").is_err());
        assert!(validate_ip_or_cidr("192.0.2").is_err());
        assert!(validate_ip_or_cidr("x/24").is_err());
        // Go's net.ParseCIDR takes digits only: the IPAM plugin would refuse these at ADD.
        for bad in [
            "192.0.2.1/+24",
            "192.0.2.1/",
            "192.0.2.1/ 24",
            "2001:db8::1/+64",
        ] {
            assert!(validate_ip_or_cidr(bad).is_err(), "{bad}");
        }
    }
}

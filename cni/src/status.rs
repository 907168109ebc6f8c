//! network-status entries from a delegate's result, as nad-client's `CreateNetworkStatuses`
//! builds them (multus-spec §3.7): one entry per sandbox interface, none for a result without
//! interfaces, bare IPs, default-route gateways, `default: true` on the cluster network.

use multus_crds::annotations::{DeviceInfo, Dns, NetworkStatus};
use multus_crds::cni::{CniResult, IpConfig};

fn is_default_route(r: &multus_crds::cni::Route) -> bool {
    r.dst.prefix == 0
}

fn dns(result: &CniResult) -> Dns {
    Dns {
        nameservers: result.dns.nameservers.clone(),
        domain: result.dns.domain.clone().unwrap_or_default(),
        search: result.dns.search.clone(),
        options: result.dns.options.clone(),
    }
}

fn bare(ip: &IpConfig) -> String {
    ip.address.addr.to_string()
}

/// The status entries of one attachment.
pub fn statuses(
    name: &str,
    result: &CniResult,
    master: bool,
    device_info: Option<&DeviceInfo>,
) -> Vec<NetworkStatus> {
    let gateways: Vec<String> = result
        .routes
        .iter()
        .filter(|r| is_default_route(r))
        .filter_map(|r| r.gw.map(|g| g.to_string()))
        .collect();
    let entry = |interface: &str, mac: &str, mtu: u32| NetworkStatus {
        name: name.to_owned(),
        interface: interface.to_owned(),
        mac: mac.to_owned(),
        mtu: i64::from(mtu),
        dns: dns(result),
        device_info: device_info.cloned(),
        ..NetworkStatus::default()
    };
    match result.interfaces.len() {
        0 => Vec::new(),
        1 => {
            let i = &result.interfaces[0];
            let mut e = if i.sandbox.is_empty() {
                entry("", "", 0)
            } else {
                entry(&i.name, &i.mac, i.mtu)
            };
            e.ips = result.ips.iter().map(bare).collect();
            e.gateway = gateways;
            e.default = master;
            vec![e]
        }
        _ => {
            let sandboxed: Vec<usize> = result
                .interfaces
                .iter()
                .enumerate()
                .filter(|(_, i)| !i.sandbox.is_empty())
                .map(|(n, _)| n)
                .collect();
            // Every entry has the default routes' gateways, as nad-client gives them.
            let mut out: Vec<NetworkStatus> = sandboxed
                .iter()
                .map(|&n| {
                    let i = &result.interfaces[n];
                    NetworkStatus {
                        gateway: gateways.clone(),
                        ..entry(&i.name, &i.mac, i.mtu)
                    }
                })
                .collect();
            // An address goes to the sandbox interface it names; one naming another interface
            // (the host's side) is left out; one naming none goes to the last entry.
            for ip in &result.ips {
                let slot = match ip.interface {
                    Some(idx) => sandboxed.iter().position(|&n| n == idx as usize),
                    None => out.len().checked_sub(1),
                };
                if let Some(e) = slot.and_then(|s| out.get_mut(s)) {
                    e.ips.push(bare(ip));
                }
            }
            if master {
                // The interface of the first address with a gateway, else the first: exactly
                // one default entry (nad-client marks none when that address's interface is not
                // the pod's).
                let with_gateway = result
                    .ips
                    .iter()
                    .find(|ip| ip.gateway.is_some())
                    .and_then(|ip| ip.interface)
                    .and_then(|idx| sandboxed.iter().position(|&n| n == idx as usize))
                    .unwrap_or(0);
                if let Some(e) = out.get_mut(with_gateway) {
                    e.default = true;
                }
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use multus_crds::cni::CniVersion;

    #[test]
    fn one_entry_per_sandbox_interface_with_bare_ips() {
        let text = r#"{"cniVersion":"1.0.0",
            "interfaces":[{"name":"cni0","mac":"aa:00:00:00:00:01"},{"name":"veth1"},{"name":"eth0","mac":"02:00:00:00:00:02","sandbox":"/run/netns/p"}],
            "ips":[{"address":"10.1.0.5/24","gateway":"10.1.0.1","interface":2}],
            "routes":[{"dst":"0.0.0.0/0","gw":"10.1.0.1"}],
            "dns":{"nameservers":["10.0.0.10"]}}"#;
        let r = CniResult::parse(text, Some(CniVersion::V1_0_0)).unwrap();
        let s = statuses("cbr0", &r, true, None);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].interface, "eth0");
        assert_eq!(s[0].ips, vec!["10.1.0.5"]);
        assert_eq!(s[0].gateway, vec!["10.1.0.1"]);
        assert!(s[0].default);
        assert_eq!(s[0].dns.nameservers, vec!["10.0.0.10"]);
        let none = CniResult::parse(
            r#"{"cniVersion":"1.0.0","ips":[{"address":"10.1.0.5/24"}]}"#,
            None,
        )
        .unwrap();
        assert!(statuses("x", &none, false, None).is_empty());
    }

    /// Several pod interfaces (nad-client's `CreateNetworkStatuses`): each entry has the
    /// gateways; an address goes to the pod interface it names, is left out when it names the
    /// host's side, and goes to the last entry when it names none.
    #[test]
    fn several_pod_interfaces_each_have_the_gateways_and_their_own_addresses() {
        let text = r#"{"cniVersion":"1.0.0",
            "interfaces":[{"name":"br0"},{"name":"eth0","sandbox":"/run/netns/p"},{"name":"eth1","sandbox":"/run/netns/p"}],
            "ips":[{"address":"10.1.0.5/24","interface":1},{"address":"10.2.0.5/24","gateway":"10.2.0.1","interface":2},
                   {"address":"10.9.0.1/24","interface":0},{"address":"10.3.0.5/24"}],
            "routes":[{"dst":"0.0.0.0/0","gw":"10.2.0.1"}]}"#;
        let r = CniResult::parse(text, Some(CniVersion::V1_0_0)).unwrap();
        let s = statuses("multi", &r, true, None);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].ips, vec!["10.1.0.5"]);
        assert_eq!(s[1].ips, vec!["10.2.0.5", "10.3.0.5"]);
        for e in &s {
            assert_eq!(e.gateway, vec!["10.2.0.1"], "{}", e.interface);
        }
        assert_eq!((s[0].default, s[1].default), (false, true));
    }
}
